/* audit.c — JSON-lines audit log (see audit.h for the guarantees). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"
#include "proxy/audit.h"

struct fb_audit {
	int fd;
	char *path;       /* NULL for stdout */
	char *sandbox_id; /* escaped once, at open */
};

static int open_log(const char *path, char *err, size_t errsize)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		snprintf(err, errsize, "audit log %s: %s", path, strerror(errno));
	return fd;
}

struct fb_audit *fb_audit_open(const char *path, const char *sandbox_id,
			       char *err, size_t errsize)
{
	struct fb_audit *a = calloc(1, sizeof(*a));
	char id[256];

	if (!a) {
		snprintf(err, errsize, "audit log: out of memory");
		return NULL;
	}
	if (sandbox_id && fb_json_escape(sandbox_id, strlen(sandbox_id), id,
					 sizeof(id)) < 0) {
		snprintf(err, errsize, "sandbox id too long for the audit log");
		free(a);
		return NULL;
	}
	if (strcmp(path, "-") == 0) {
		a->fd = STDOUT_FILENO;
	} else {
		a->fd = open_log(path, err, errsize);
		a->path = strdup(path);
		if (a->fd < 0 || !a->path) {
			if (a->fd >= 0)
				close(a->fd);
			free(a->path);
			free(a);
			return NULL;
		}
	}
	a->sandbox_id = sandbox_id ? strdup(id) : NULL;
	return a;
}

int fb_audit_reopen(struct fb_audit *a, char *err, size_t errsize)
{
	int fd;

	if (!a || !a->path)
		return 0;
	fd = open_log(a->path, err, errsize);
	if (fd < 0)
		return -1;
	close(a->fd);
	a->fd = fd;
	return 0;
}

void fb_audit_close(struct fb_audit *a)
{
	if (!a)
		return;
	if (a->path)
		close(a->fd);
	free(a->path);
	free(a->sandbox_id);
	free(a);
}

static void append(struct fb_audit_line *ln, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append a whole field or nothing: a field that does not fit is dropped
 * and the line flagged, so the line stays well-formed JSON. */
static void append(struct fb_audit_line *ln, const char *fmt, ...)
{
	size_t room = sizeof(ln->buf) - ln->len - 2; /* keep "}\n" */
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(ln->buf + ln->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		ln->buf[ln->len] = '\0';
		ln->full = true;
		return;
	}
	ln->len += (size_t)n;
}

void fb_audit_begin(const struct fb_audit *a, struct fb_audit_line *ln,
		    const char *action, const char *outcome,
		    uint64_t generation)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	ln->len = 0;
	ln->full = false;
	append(ln, "{\"@timestamp\":\"%s.%03ldZ\",\"event.action\":\"%s\"",
	       when, ts.tv_nsec / 1000000, action);
	if (outcome)
		fb_audit_str(ln, "event.outcome", outcome);
	if (a && a->sandbox_id)
		append(ln, ",\"sandbox.id\":\"%s\"", a->sandbox_id);
	if (generation)
		fb_audit_uint(ln, "policy.generation", generation);
}

void fb_audit_str(struct fb_audit_line *ln, const char *key, const char *val)
{
	char esc[1024];

	if (fb_json_escape(val, strlen(val), esc, sizeof(esc)) < 0) {
		ln->full = true;
		return;
	}
	append(ln, ",\"%s\":\"%s\"", key, esc);
}

void fb_audit_guest(struct fb_audit_line *ln, const char *key,
		    const char *val, size_t len)
{
	char esc[FB_AUDIT_GUEST_MAX * 6 + 1];
	bool cut = len > FB_AUDIT_GUEST_MAX;
	size_t keep = cut ? FB_AUDIT_GUEST_MAX : len;

	/* Cut before a UTF-8 character, not through it: a cut character
	 * would be logged as U+FFFD, a byte the guest did not send. */
	while (cut && keep > FB_AUDIT_GUEST_MAX - 3 &&
	       ((unsigned char)val[keep] & 0xc0) == 0x80)
		keep--;
	fb_json_escape(val, keep, esc, sizeof(esc));
	append(ln, ",\"%s\":\"%s\"", key, esc);
	if (cut)
		append(ln, ",\"%s_truncated\":true", key);
}

void fb_audit_uint(struct fb_audit_line *ln, const char *key, uint64_t v)
{
	append(ln, ",\"%s\":%llu", key, (unsigned long long)v);
}

void fb_audit_bool(struct fb_audit_line *ln, const char *key, bool v)
{
	append(ln, ",\"%s\":%s", key, v ? "true" : "false");
}

void fb_audit_sockaddr(struct fb_audit_line *ln, const char *prefix,
		       const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];
	struct fb_addr a;
	unsigned port = fb_addr_from_sockaddr(ss, &a);

	if (!a.family)
		return;
	fb_addr_format(&a, ip, sizeof(ip));
	append(ln, ",\"%s.ip\":\"%s\",\"%s.port\":%u", prefix, ip, prefix, port);
}

void fb_audit_emit(struct fb_audit *a, struct fb_audit_line *ln)
{
	ssize_t n;

	if (!a)
		return;
	if (ln->full)
		append(ln, ",\"event.incomplete\":true");
	/* append() always leaves room for these two bytes */
	ln->buf[ln->len++] = '}';
	ln->buf[ln->len++] = '\n';
	do
		n = write(a->fd, ln->buf, ln->len);
	while (n < 0 && errno == EINTR);
	/* A full disk must not stop the proxy; the loss is reported once per
	 * line on stderr, which the launcher collects. */
	if (n != (ssize_t)ln->len)
		fprintf(stderr, "firebreak-proxy: audit log write failed: %s\n",
			n < 0 ? strerror(errno) : "short write");
}
