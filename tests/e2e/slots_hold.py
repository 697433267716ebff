"""slots_hold.py DIR FREE READY — lock every uplink slot file under DIR
(a state directory's slots/) but slot FREE, as that many live launchers
would, create READY, and hold them until killed."""
import fcntl
import os
import resource
import sys
import time

slots, free, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
os.makedirs(slots, mode=0o755, exist_ok=True)
held = []
for i in range(16384):
    if i != free:
        fd = os.open("%s/%d" % (slots, i), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
open(ready, "w").close()
while True:
    time.sleep(60)
