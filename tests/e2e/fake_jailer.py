#!/usr/bin/python3
"""fake_jailer.py — Firecracker's jailer, as far as the launcher drives it.

  fake_jailer.py --id ID --exec-file FILE --uid UID --gid GID
                 --chroot-base-dir DIR --netns PATH -- [FIRECRACKER ARGS]

Started in the jailer's place (`firebreak run --backend firecracker
--jailer tests/e2e/fake_jailer.py`).  It checks its arguments strictly,
each flag given once and all of them given: the id as the jailer takes it
(1 to 64 of alphanumerics and '-'), --exec-file absolute, executable and
named like Firecracker, the chroot base <FAKE_JAILER_STATE_DIR>/<id>/jail
(the sandbox's state dir), --netns an existing namespace under /run/netns,
and the chroot <base>/<exec file's name>/<id>/root holding /vmlinux and
/initrd.  Any fault: one line on stderr, exit 1, nothing done.

Then, as the jailer does, it copies the exec file into the chroot and
makes dev/ there (nothing outside that tree), enters the namespace, drops
to --uid/--gid and execs the exec file.  It cannot chroot a Python
program, so the fake Firecracker it runs gets the chroot in
FAKE_FC_CHROOT, against which it resolves its --api-sock and the kernel
and initrd paths it is given.

  FAKE_JAILER_LOG=FILE   one JSON line: {"argv", "uid", "gid"}
  FAKE_JAILER_STATE_DIR  the firebreak state dir (required)
"""
import ctypes
import json
import os
import re
import shutil
import sys

CLONE_NEWNET = 0x40000000
FLAGS = ("--id", "--exec-file", "--uid", "--gid", "--chroot-base-dir",
         "--netns")


def fail(msg):
    sys.exit("fake jailer: " + msg)


def parse(argv):
    if "--" not in argv:
        fail("no -- before firecracker's arguments")
    i = argv.index("--")
    own, rest = argv[:i], argv[i + 1:]
    opts = {}
    if len(own) % 2:
        fail("flag without a value: %s" % own[-1])
    for flag, val in zip(own[::2], own[1::2]):
        if flag not in FLAGS:
            fail("unknown flag %s" % flag)
        if flag in opts:
            fail("%s given twice" % flag)
        opts[flag] = val
    for flag in FLAGS:
        if flag not in opts:
            fail("missing %s" % flag)
    return opts, rest


def check(opts, rest):
    jid, exe = opts["--id"], opts["--exec-file"]
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", jid):
        fail("--id %r: 1 to 64 of alphanumerics and '-'" % jid)
    if not os.path.isabs(exe) or not os.access(exe, os.X_OK):
        fail("--exec-file %s: not an absolute path to an executable" % exe)
    if "firecracker" not in os.path.basename(exe):
        fail("--exec-file %s: the name must hold 'firecracker'" % exe)
    for flag in ("--uid", "--gid"):
        if not re.fullmatch(r"[0-9]+", opts[flag]):
            fail("%s %r: not a number" % (flag, opts[flag]))
    state = os.environ.get("FAKE_JAILER_STATE_DIR")
    if not state:
        fail("FAKE_JAILER_STATE_DIR is not set")
    base = opts["--chroot-base-dir"]
    want = os.path.join(os.path.realpath(state), jid, "jail")
    if base != want or os.path.realpath(base) != want:
        fail("--chroot-base-dir %s: expected %s" % (base, want))
    netns = opts["--netns"]
    if os.path.dirname(netns) != "/run/netns" or not os.path.exists(netns):
        fail("--netns %s: no such namespace" % netns)
    root = os.path.join(base, os.path.basename(exe), jid, "root")
    for f in ("vmlinux", "initrd"):
        if not os.path.isfile(os.path.join(root, f)):
            fail("%s/%s: missing from the chroot" % (root, f))
    if len(rest) != 2 or rest[0] != "--api-sock" or \
            not os.path.isabs(rest[1]):
        fail("firecracker's arguments %r: expected --api-sock /PATH" % rest)
    if os.getuid() != 0:
        fail("not started as root")
    return root


def main():
    argv = sys.argv[1:]
    opts, rest = parse(argv)
    root = check(opts, rest)
    path = os.environ.get("FAKE_JAILER_LOG")
    uid, gid = int(opts["--uid"]), int(opts["--gid"])
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"argv": argv, "uid": uid, "gid": gid}) + "\n")
    exe = opts["--exec-file"]
    os.makedirs(os.path.join(root, "dev", "net"))
    shutil.copy(exe, os.path.join(root, os.path.basename(exe)))
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(opts["--netns"], os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) < 0:
        fail("setns %s: %s" % (opts["--netns"],
                               os.strerror(ctypes.get_errno())))
    os.close(fd)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    env = dict(os.environ, FAKE_FC_CHROOT=root)
    os.execve(exe, [exe] + rest, env)


if __name__ == "__main__":
    main()
