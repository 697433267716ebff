# firecracker_lib.sh — what the firecracker backend's tests share; source
# it after lib.sh and fb_world.
#
#   $FAKE        fake_firecracker.py, started in the binary's place
#   $GUEST       a guest image the fake only opens and reads: a "kernel"
#                and a base initramfs, behind which the launcher appends
#                the sandbox's piece
#   $USER_ARGS   --user for firebreak run, and $RUN_UID the uid it means:
#                Firecracker runs as the run's user and opens
#                /dev/net/tun itself; Debian makes that device 0666, and
#                where only root may open it, the run is root's

FAKE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fake_firecracker.py
GUEST=$FB_TMP/guest
mkdir -p "$GUEST"
head -c 4096 /dev/urandom >"$GUEST/vmlinux"
printf 'base image\n' >"$GUEST/initramfs.cpio.gz"
chmod -R a+rX "$GUEST"

USER_ARGS=()
RUN_UID=65534
if ! setpriv --reuid 65534 --regid 65534 --clear-groups \
	"$PY" -c 'open("/dev/net/tun", "rb+")' 2>/dev/null; then
	echo "# /dev/net/tun is root's here: firecracker runs as root"
	USER_ARGS=(--user root)
	RUN_UID=0
fi
