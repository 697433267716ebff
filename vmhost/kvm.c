/* kvm.c — see kvm.h. */
#include <sys/stat.h>

#include "vmhost/kvm.h"

static bool rw(mode_t mode, mode_t r, mode_t w)
{
	return (mode & (r | w)) == (r | w);
}

bool fb_kvm_usable(const char *dev, uid_t uid, gid_t gid, gid_t *group)
{
	struct stat st;

	*group = FB_KVM_NO_GROUP;
	if (stat(dev, &st) < 0 || !S_ISCHR(st.st_mode))
		return false;
	/* the kernel judges by the first class the process is in: owner,
	 * then group, then other */
	if (st.st_uid == uid)
		return rw(st.st_mode, S_IRUSR, S_IWUSR);
	if (st.st_gid == gid)
		return rw(st.st_mode, S_IRGRP, S_IWGRP);
	if (st.st_gid != 0 && rw(st.st_mode, S_IRGRP, S_IWGRP)) {
		*group = st.st_gid;
		return true;
	}
	return rw(st.st_mode, S_IROTH, S_IWOTH);
}
