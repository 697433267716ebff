#!/usr/bin/python3
"""fake_firecracker.py --api-sock PATH — Firecracker's API, and no VM.

Started exactly as the real binary is, in its place (`firebreak run
--backend firecracker --firecracker tests/e2e/fake_firecracker.py`).  It
serves the part of the Firecracker API the launcher uses, over HTTP/1.1 on
the unix socket PATH, and checks every request the way Firecracker does:

  PUT /boot-source              {kernel_image_path, boot_args, initrd_path?}
  PUT /drives/{id}              {drive_id, path_on_host, is_root_device,
                                 is_read_only}
  PUT /network-interfaces/{id}  {iface_id, host_dev_name, guest_mac?}
  PUT /machine-config           {vcpu_count, mem_size_mib, smt?}
  PUT /actions                  {action_type: "InstanceStart"}
  GET /

A body with an unknown or missing field, a value of the wrong type, an id
that differs from the path's, a file that cannot be opened, a tap that
cannot be attached, configuration after the start, or a start without a
kernel is answered 400 with {"fault_message": ...}, as the real one does;
success is 204.  Like Firecracker, it opens the kernel and initrd when
/boot-source is set, and attaches to the tap (TUNSETIFF, IFF_VNET_HDR) when
the interface is set: so the tap must exist in its network namespace and
be free.

On InstanceStart the "guest" logs the files under fb/ that the initrd's
cpio archives carry (the sandbox's piece: command, environment, CA),
prints a console line and then the status line the guest's init writes,
"FB_EXIT=<n>", and the process exits 0, as Firecracker does when its
guest reboots.

The environment steers it:
  FAKE_FC_LOG=FILE     one JSON object per line: first {"argv", "uid",
                       "fds", "netdevs"} (fds: what its open descriptors
                       name; netdevs: the interfaces of its network
                       namespace), then per
                       request {"method", "path", "body", "status", "fault"},
                       last {"initrd": {NAME: TEXT}}
  FAKE_FC_EXIT=N       the guest's status (default 0); "none": the guest
                       stops without reporting one
  FAKE_FC_CONSOLE=TEXT more console output before the status line
  FAKE_FC_FAIL="PUT /machine-config"  answer that request 400
  FAKE_FC_HANG=1       after the status line keep running, as a guest that
                       never powers off would
  FAKE_FC_CHROOT=DIR   started by fake_jailer.py: DIR is its chroot, and
                       the socket, kernel and initrd paths must be absolute
                       paths in it (/vmlinux), found under DIR
"""
import fcntl
import json
import os
import re
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000

SCHEMAS = {
    # field: (type, required)
    "boot-source": {"kernel_image_path": (str, True), "boot_args": (str, True),
                    "initrd_path": (str, False)},
    "drives": {"drive_id": (str, True), "path_on_host": (str, True),
               "is_root_device": (bool, True), "is_read_only": (bool, True)},
    "network-interfaces": {"iface_id": (str, True), "host_dev_name": (str, True),
                           "guest_mac": (str, False)},
    "machine-config": {"vcpu_count": (int, True), "mem_size_mib": (int, True),
                       "smt": (bool, False)},
    "actions": {"action_type": (str, True)},
}
TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer"}


class Fault(Exception):
    pass


def log(entry):
    path = os.environ.get("FAKE_FC_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def json_type(v):
    if isinstance(v, bool):
        return "boolean `%s`" % str(v).lower()
    if isinstance(v, int):
        return "integer `%d`" % v
    if isinstance(v, str):
        return "string %s" % json.dumps(v)
    return type(v).__name__


def check_body(resource, body):
    """Firecracker's structs deny unknown fields; so does this."""
    schema = SCHEMAS[resource]
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise Fault("An error occurred when deserializing the json body of "
                    "a request: %s." % e)
    if not isinstance(obj, dict):
        raise Fault("An error occurred when deserializing the json body of "
                    "a request: expected a map.")
    for key, val in obj.items():
        if key not in schema:
            raise Fault("An error occurred when deserializing the json body "
                        "of a request: unknown field `%s`, expected one of %s."
                        % (key, ", ".join("`%s`" % k for k in schema)))
        want = schema[key][0]
        if type(val) is not want:
            raise Fault("An error occurred when deserializing the json body "
                        "of a request: invalid type: %s, expected %s."
                        % (json_type(val), TYPE_NAMES[want]))
    for key, (_, required) in schema.items():
        if required and key not in obj:
            raise Fault("An error occurred when deserializing the json body "
                        "of a request: missing field `%s`." % key)
    return obj


def in_chroot(path, what):
    """Under the jailer, a file's path as Firecracker would open it in
    its chroot: absolute, and not leaving it."""
    root = os.environ.get("FAKE_FC_CHROOT")
    if not root:
        return path
    rel = os.path.normpath(path).lstrip("/")
    if not path.startswith("/") or rel.startswith("..") or \
            path.startswith("/proc/"):
        raise Fault("The %s file cannot be opened: %s is not in the chroot "
                    "(os error 2)" % (what, path))
    return os.path.join(root, rel)


def readable(path, what):
    path = in_chroot(path, what)
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as e:
        raise Fault("The %s file cannot be opened: %s (os error %d)"
                    % (what, e.strerror, e.errno))


class Vmm:
    def __init__(self):
        self.started = False
        self.boot = None
        self.taps = {}
        self.machine = {"vcpu_count": 1, "mem_size_mib": 128, "smt": False}

    def same_id(self, path_id, obj, key):
        if obj[key] != path_id:
            raise Fault("The id from the path [%s] does not match the id "
                        "from the body [%s]!" % (path_id, obj[key]))

    def put(self, path, body):
        parts = path.strip("/").split("/")
        resource = parts[0]
        if resource not in SCHEMAS or len(parts) != (
                2 if resource in ("drives", "network-interfaces") else 1):
            raise Fault("Invalid request method and/or path: PUT %s." % path)
        obj = check_body(resource, body)
        if resource == "actions":
            return self.action(obj)
        if self.started:
            raise Fault("The requested operation is not supported after "
                        "starting the microVM.")
        if resource == "boot-source":
            readable(obj["kernel_image_path"], "kernel")
            if "initrd_path" in obj:
                readable(obj["initrd_path"], "initrd")
            self.boot = obj
        elif resource == "drives":
            self.same_id(parts[1], obj, "drive_id")
            readable(obj["path_on_host"], "drive")
        elif resource == "network-interfaces":
            self.same_id(parts[1], obj, "iface_id")
            if "guest_mac" in obj and not re.fullmatch(
                    r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", obj["guest_mac"]):
                raise Fault("An error occurred when deserializing the json "
                            "body of a request: invalid MAC address.")
            self.attach_tap(parts[1], obj["host_dev_name"])
        elif resource == "machine-config":
            if not 1 <= obj["vcpu_count"] <= 32:
                raise Fault("The vCPU number is invalid! The vCPU number can "
                            "only be 1 or an even number when SMT is enabled.")
            if obj["mem_size_mib"] <= 0:
                raise Fault("The memory size (MiB) is invalid.")
            self.machine.update(obj)

    def attach_tap(self, iface_id, name):
        ifr = struct.pack("16sH22x", name.encode(),
                          IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fd = -1
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as e:
            if fd >= 0:
                os.close(fd)
            raise Fault("Could not create the network device: Open tap "
                        "device failed: Error while creating ifreq "
                        "structure: %s (os error %d). Invalid TUN/TAP "
                        "Backend provided by %s. Check our documentation on "
                        "setting up the network devices."
                        % (e.strerror, e.errno, name))
        if iface_id in self.taps:
            os.close(self.taps[iface_id])
        self.taps[iface_id] = fd

    def action(self, obj):
        if obj["action_type"] != "InstanceStart":
            raise Fault("An error occurred when deserializing the json body "
                        "of a request: unknown variant `%s`, expected one of "
                        "`FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`."
                        % obj["action_type"])
        if self.started:
            raise Fault("The requested operation is not supported after "
                        "starting the microVM.")
        if self.boot is None:
            raise Fault("Cannot start microvm without kernel configuration.")
        self.started = True


def read_request(f):
    line = f.readline()
    if not line:
        return None
    method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ")
    if version != "HTTP/1.1":
        raise ValueError("not HTTP/1.1: %r" % line)
    headers = {}
    while True:
        h = f.readline().decode("latin-1").rstrip("\r\n")
        if not h:
            break
        k, v = h.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return method, path, headers, body


def reply(conn, status, body=b""):
    reason = {200: "OK", 204: "No Content", 400: "Bad Request"}[status]
    head = "HTTP/1.1 %d %s\r\nServer: Firecracker API\r\n" % (status, reason)
    if body:
        head += "Content-Type: application/json\r\n"
    head += "Content-Length: %d\r\n\r\n" % len(body)
    conn.sendall(head.encode() + body)


def serve(conn, vmm):
    f = conn.makefile("rb")
    while True:
        req = read_request(f)
        if req is None:
            return
        method, path, headers, body = req
        entry = {"method": method, "path": path}
        fault = None
        try:
            if method == "GET" and path == "/":
                reply(conn, 200, json.dumps({
                    "id": "anonymous-instance", "app_name": "Firecracker",
                    "vmm_version": "fake",
                    "state": "Running" if vmm.started else "Not started",
                }).encode())
                entry["status"] = 200
                log(entry)
                continue
            if method != "PUT":
                raise Fault("Invalid request method and/or path: %s %s."
                            % (method, path))
            try:
                entry["body"] = json.loads(body)
            except ValueError:
                entry["body"] = body.decode("latin-1")
            if os.environ.get("FAKE_FC_FAIL") == "%s %s" % (method, path):
                raise Fault("refused by the test for %s %s" % (method, path))
            vmm.put(path, body)
        except Fault as e:
            fault = str(e)
        entry["status"] = 400 if fault else 204
        entry["fault"] = fault
        log(entry)
        if fault:
            reply(conn, 400, json.dumps({"fault_message": fault}).encode())
        else:
            reply(conn, 204)
        if vmm.started:
            return


def initrd_files(path):
    """fb/* in the newc archives of the initrd: headers are found by their
    magic, so whatever base image comes first does not matter."""
    data = open(path, "rb").read()
    files, i = {}, data.find(b"070701")
    while i >= 0:
        try:
            fields = [int(data[i + 6 + 8 * k:i + 14 + 8 * k], 16)
                      for k in range(13)]
        except ValueError:
            i = data.find(b"070701", i + 1)
            continue
        filesize, namesize = fields[6], fields[11]
        name = data[i + 110:i + 110 + namesize - 1].decode("latin-1")
        start = (i + 110 + namesize + 3) & ~3
        if name.startswith("fb/"):
            files[name] = data[start:start + filesize].decode("latin-1")
        i = data.find(b"070701", max(i + 1, start + filesize))
    return files


def boot(vmm):
    """What a guest would show on the console, then its status."""
    log({"initrd": initrd_files(in_chroot(vmm.boot["initrd_path"],
                                          "initrd"))})
    text = "fake guest: booted %s\n" % vmm.boot["kernel_image_path"]
    text += os.environ.get("FAKE_FC_CONSOLE", "")
    status = os.environ.get("FAKE_FC_EXIT", "0")
    if status != "none":
        text += "FB_EXIT=%s\n" % status
    # a byte at a time, as a serial console goes: the reader sees lines
    # in pieces
    for ch in text:
        sys.stdout.write(ch)
        sys.stdout.flush()
        time.sleep(0.001)
    while os.environ.get("FAKE_FC_HANG"):
        time.sleep(1)
    sys.exit(0)


def main():
    argv = sys.argv[1:]
    if len(argv) != 2 or argv[0] != "--api-sock":
        sys.exit("usage: fake_firecracker.py --api-sock PATH")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fds = []
    for f in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            fds.append(os.readlink("/proc/self/fd/" + f))
        except OSError:
            pass  # the listing's own descriptor, closed by now
    log({"argv": argv, "uid": os.getuid(), "cwd": os.getcwd(), "fds": fds,
         "netdevs": sorted(n for _, n in socket.if_nameindex()),
         "chroot": os.environ.get("FAKE_FC_CHROOT")})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # in a chroot the socket's path is the chroot's, however long the
        # chroot's own path is: bind it from there
        root = os.environ.get("FAKE_FC_CHROOT")
        if root:
            os.chdir(root)
        s.bind(argv[1].lstrip("/") if root else argv[1])
    except OSError as e:
        sys.exit("Failed to open the API socket at %s: %s" % (argv[1], e))
    s.listen(4)
    vmm = Vmm()
    while not vmm.started:
        conn, _ = s.accept()
        with conn:
            try:
                serve(conn, vmm)
            except (ValueError, OSError) as e:
                sys.stderr.write("fake firecracker: bad request: %s\n" % e)
    s.close()
    boot(vmm)


if __name__ == "__main__":
    main()
