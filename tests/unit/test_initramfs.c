/*
 * test_initramfs.c — the cpio "newc" writer read back by a parser of the
 * format written here from the kernel's description, and the qemu
 * backend's per-run initramfs: the base image, zeros to a multiple of 4,
 * then the sandbox's piece, whose /fb/cmd a shell turns back into exactly
 * the argv given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "vmhost/initramfs.h"
#include "vmhost/qemu.h"

struct entry {
	char name[256];
	unsigned mode, nlink;
	const unsigned char *data;
	size_t size;
};

/* The whole content of fd. */
static unsigned char *slurp(int fd, size_t *len)
{
	struct stat st;
	unsigned char *buf;

	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, st.st_size, 0), st.st_size);
	*len = st.st_size;
	return buf;
}

static unsigned hex8(const unsigned char *p)
{
	char field[9];

	memcpy(field, p, 8);
	field[8] = '\0';
	assert_int_equal(strspn(field, "0123456789ABCDEF"), 8);
	return (unsigned)strtoul(field, NULL, 16);
}

/*
 * Parse the archive at buf[*off]: each header at a multiple of 4, the
 * name NUL-terminated, the data at the next multiple of 4.  Returns the
 * number of entries before the trailer, *off just past the trailer's
 * padding.
 */
static size_t parse(const unsigned char *buf, size_t len, size_t *off,
		    struct entry *out, size_t max)
{
	size_t n = 0;

	for (;;) {
		size_t p = *off, namesize;
		struct entry e = { 0 };

		assert_int_equal(p % 4, 0);
		assert_true(p + 110 <= len);
		assert_memory_equal(buf + p, "070701", 6);
		e.mode = hex8(buf + p + 14);
		e.nlink = hex8(buf + p + 38);
		e.size = hex8(buf + p + 54);
		namesize = hex8(buf + p + 94);
		assert_int_equal(hex8(buf + p + 102), 0); /* check */
		assert_true(namesize >= 2 && namesize <= sizeof e.name);
		assert_true(p + 110 + namesize <= len);
		assert_int_equal(buf[p + 110 + namesize - 1], '\0');
		memcpy(e.name, buf + p + 110, namesize);
		p = (p + 110 + namesize + 3) & ~(size_t)3;
		e.data = buf + p;
		assert_true(p + e.size <= len);
		*off = (p + e.size + 3) & ~(size_t)3;
		for (size_t i = p + e.size; i < *off; i++)
			assert_int_equal(buf[i], 0);
		if (!strcmp(e.name, "TRAILER!!!"))
			return n;
		assert_true(n < max);
		out[n++] = e;
	}
}

static void test_archive_round_trip(void **state)
{
	struct fb_initramfs a;
	struct entry e[4];
	char err[128] = "";
	int fd = memfd_create("t", 0);
	unsigned char *buf;
	size_t len, off = 0;

	(void)state;
	fb_initramfs_begin(&a, fd, err, sizeof err);
	assert_int_equal(fb_initramfs_dir(&a, "fb", 0755), 0);
	assert_int_equal(fb_initramfs_file(&a, "fb/odd", 0600, "12345", 5), 0);
	assert_int_equal(fb_initramfs_file(&a, "fb/empty", 0644, NULL, 0), 0);
	assert_int_equal(fb_initramfs_file(&a, "fb/x", 0644, "abcd", 4), 0);
	assert_int_equal(fb_initramfs_end(&a), 0);
	assert_string_equal(err, "");

	buf = slurp(fd, &len);
	assert_int_equal(len, a.offset);
	assert_int_equal(parse(buf, len, &off, e, 4), 4);
	assert_int_equal(off, len);
	assert_string_equal(e[0].name, "fb");
	assert_int_equal(e[0].mode, 040755);
	assert_int_equal(e[0].nlink, 2);
	assert_string_equal(e[1].name, "fb/odd");
	assert_int_equal(e[1].mode, 0100600);
	assert_int_equal(e[1].size, 5);
	assert_memory_equal(e[1].data, "12345", 5);
	assert_string_equal(e[2].name, "fb/empty");
	assert_int_equal(e[2].size, 0);
	assert_string_equal(e[3].name, "fb/x");
	assert_memory_equal(e[3].data, "abcd", 4);
	free(buf);
	close(fd);
}

static void test_write_error_is_reported(void **state)
{
	struct fb_initramfs a;
	char err[128] = "";
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	fb_initramfs_begin(&a, fds[1], err, sizeof err);
	/* EPIPE, not SIGPIPE: the test runner must live to see it */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(fb_initramfs_dir(&a, "fb", 0755), -1);
	assert_string_equal(err, "write the initramfs: Broken pipe");
	close(fds[1]);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* What a shell makes of /fb/cmd, as the guest's init does, one word a line. */
static char *shell_words(const struct entry *cmd, const char *dir)
{
	char path[300], script[700], *out = calloc(1, 4096);
	FILE *p;
	size_t n;

	assert_non_null(out);
	snprintf(path, sizeof path, "%s/cmd", dir);
	write_file(path, (const char *)cmd->data, cmd->size);
	snprintf(script, sizeof script,
		 "sh -c 'eval \"set -- $(cat %s)\"; printf \"[%%s]\\n\" \"$@\"'",
		 path);
	p = popen(script, "r");
	assert_non_null(p);
	n = fread(out, 1, 4095, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	return out;
}

static void test_run_initramfs(void **state)
{
	char dir[] = "/tmp/fb-initramfs-XXXXXX", path[300], ca[300],
	     bundle[300], err[512] = "", *words;
	char *argv[] = { "sh", "-c", "echo 'quoted' \"$HOME\" `x`\nnext",
			 "it's", "", NULL };
	char *env[] = { "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			"Q=a'b", NULL };
	struct fb_qemu_opts o = { .argv = argv, .env = env, .guest_dir = dir,
				  .ca_cert = ca, .trust_bundle = bundle };
	struct entry e[5];
	unsigned char *buf;
	size_t len, off = 8;
	int fd = memfd_create("t", 0);

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/" FB_GUEST_INITRD, dir);
	write_file(path, "abcde", 5);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	write_file(ca, "CA\n", 3);
	snprintf(bundle, sizeof bundle, "%s/trust.pem", dir);
	write_file(bundle, "ROOTS\nCA\n", 9);

	assert_int_equal(fb_qemu_write_initrd(&o, fd, err, sizeof err), 0);
	buf = slurp(fd, &len);
	/* the base as it is, zeros to 8, then the piece */
	assert_memory_equal(buf, "abcde\0\0\0", 8);
	assert_int_equal(parse(buf, len, &off, e, 5), 5);
	assert_int_equal(off, len);
	assert_string_equal(e[0].name, "fb");
	assert_string_equal(e[1].name, "fb/cmd");
	assert_string_equal(e[2].name, "fb/env");
	assert_int_equal(e[2].size, strlen("export 'SSL_CERT_FILE=/etc/ssl/"
		"certs/ca-certificates.crt'\nexport 'Q=a'\\''b'\n"));
	assert_memory_equal(e[2].data, "export 'SSL_CERT_FILE=/etc/ssl/certs/"
		"ca-certificates.crt'\nexport 'Q=a'\\''b'\n", e[2].size);
	assert_string_equal(e[3].name, "fb/ca.pem");
	assert_memory_equal(e[3].data, "CA\n", 3);
	assert_string_equal(e[4].name, "fb/trust.pem");
	assert_memory_equal(e[4].data, "ROOTS\nCA\n", 9);

	words = shell_words(&e[1], dir);
	assert_string_equal(words, "[sh]\n[-c]\n"
		"[echo 'quoted' \"$HOME\" `x`\nnext]\n[it's]\n[]\n");
	free(words);
	free(buf);
	close(fd);

	/* a missing CA file: an error naming it */
	fd = memfd_create("t", 0);
	unlink(ca);
	assert_int_equal(fb_qemu_write_initrd(&o, fd, err, sizeof err), -1);
	assert_non_null(strstr(err, ca));
	assert_non_null(strstr(err, ": No such file or directory"));
	close(fd);

	snprintf(path, sizeof path, "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_archive_round_trip),
		cmocka_unit_test(test_write_error_is_reported),
		cmocka_unit_test(test_run_initramfs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
