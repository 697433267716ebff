/*
 * kvm.h — can a hypervisor dropped to uid:gid open /dev/kvm, and with
 * which supplementary group.
 *
 * The launcher is root and may open /dev/kvm whatever its mode; the
 * hypervisor it starts may not.  A root-only /dev/kvm (mode 0600, as some
 * hosts leave it) must send qemu to TCG rather than to a failed start, and
 * the device's group is kept for the hypervisor only when that group is
 * what grants the access, and never when it is root's.
 */
#ifndef FB_VMHOST_KVM_H
#define FB_VMHOST_KVM_H

#include <stdbool.h>
#include <sys/types.h>

#define FB_KVM_DEVICE "/dev/kvm"
#define FB_KVM_NO_GROUP ((gid_t)-1)

/*
 * True when a process of uid:gid, given *group as its one supplementary
 * group (FB_KVM_NO_GROUP: none), can open the character device `dev`
 * (FB_KVM_DEVICE) for reading and writing.  False when there is no such
 * device or it does not let them.
 */
bool fb_kvm_usable(const char *dev, uid_t uid, gid_t gid, gid_t *group);

#endif /* FB_VMHOST_KVM_H */
