/* test_kvm.c — whether the hypervisor, dropped to nobody, can open
 * /dev/kvm, and which group it keeps for that.  A device node of the
 * test's own stands in for /dev/kvm, owned and moded case by case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vmhost/kvm.h"

#define NOBODY 65534
#define KVM_GID 36

static char dir[] = "/tmp/fbkvm.XXXXXX";
static char dev[64];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(dev, sizeof dev, "%s/kvm", dir);
	return mknod(dev, S_IFCHR | 0600, makedev(1, 3)); /* /dev/null's */
}

static int teardown(void **state)
{
	(void)state;
	unlink(dev);
	return rmdir(dir);
}

static void test_modes(void **state)
{
	static const struct {
		uid_t owner;
		gid_t group;
		mode_t mode;
		bool usable;
		gid_t keep;
	} cases[] = {
		/* root-only, as some hosts leave it: TCG, no root group */
		{ 0, 0, 0600, false, FB_KVM_NO_GROUP },
		{ 0, 0, 0660, false, FB_KVM_NO_GROUP },
		/* Debian's udev rule: root:kvm 0660, the group kept */
		{ 0, KVM_GID, 0660, true, KVM_GID },
		{ 0, KVM_GID, 0640, false, FB_KVM_NO_GROUP },
		{ 0, 0, 0666, true, FB_KVM_NO_GROUP },
		/* the hypervisor's own group or user: nothing to keep */
		{ 0, NOBODY, 0660, true, FB_KVM_NO_GROUP },
		{ NOBODY, 0, 0600, true, FB_KVM_NO_GROUP },
		/* the first class it is in decides, as in the kernel */
		{ 0, NOBODY, 0606, false, FB_KVM_NO_GROUP },
		{ NOBODY, 0, 0066, false, FB_KVM_NO_GROUP },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gid_t keep = 7;

		assert_int_equal(chown(dev, cases[i].owner, cases[i].group), 0);
		assert_int_equal(chmod(dev, cases[i].mode), 0);
		if (fb_kvm_usable(dev, NOBODY, NOBODY, &keep) != cases[i].usable ||
		    keep != cases[i].keep)
			fail_msg("%u:%u %04o: wanted %s, group %d; got group %d",
				 (unsigned)cases[i].owner, (unsigned)cases[i].group,
				 (unsigned)cases[i].mode,
				 cases[i].usable ? "usable" : "not usable",
				 (int)cases[i].keep, (int)keep);
	}
}

/* No device, or a file that is not a character device: not usable. */
static void test_not_a_device(void **state)
{
	char file[80];
	gid_t keep;
	FILE *f;

	(void)state;
	snprintf(file, sizeof file, "%s/file", dir);
	assert_false(fb_kvm_usable(file, NOBODY, NOBODY, &keep));
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(file, 0666), 0);
	assert_false(fb_kvm_usable(file, NOBODY, NOBODY, &keep));
	assert_int_equal(keep, FB_KVM_NO_GROUP);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_not_a_device),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
