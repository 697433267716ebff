/*
 * audit.h — the audit log: one JSON object per line, Elastic Common Schema
 * names (design.md "Audit log").
 *
 * A line is built in a fixed buffer and written with a single write(2) on
 * an O_APPEND descriptor, so concurrent writers never interleave and a
 * crash never leaves half a line.  Lines can also wait and go out
 * together with the others of the same event-loop iteration, still whole
 * lines in one write(2): a busy proxy then spends one system call on the
 * log per iteration rather than two per connection.  Every value is JSON-escaped; values the
 * guest chose (SNI, Host, DNS names) go through fb_audit_guest(), which
 * also truncates them at FB_AUDIT_GUEST_MAX bytes (before a UTF-8
 * character, not through it) and flags the field, so the guest can neither
 * forge a line nor flood the log.
 */
#ifndef FB_AUDIT_H
#define FB_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FB_AUDIT_GUEST_MAX 255
/* Longer values of any kind (an error quoting a path) are cut there. */
#define FB_AUDIT_STR_MAX 1024

struct fb_audit;
struct fb_loop;

/* path "-" is stdout.  The sandbox id goes on every line (may be NULL). */
struct fb_audit *fb_audit_open(const char *path, const char *sandbox_id,
			       char *err, size_t errsize);
/* Reopen the same path (after logrotate moved it); stdout is left alone.
 * Waiting lines go to the old file first.  On failure the old descriptor
 * stays in use. */
int fb_audit_reopen(struct fb_audit *a, char *err, size_t errsize);

/* What a security team must know of the log itself. */
struct fb_audit_health {
	uint64_t lines_lost; /* not written: the disk was full, or failed */
	bool reopen_failed;  /* the last reopen failed: lines go to the old file */
};
struct fb_audit_health fb_audit_health(const struct fb_audit *a);

/* Writes the waiting lines; the loop they wait on must still exist. */
void fb_audit_close(struct fb_audit *a);

struct fb_audit_line {
	char buf[8192];
	size_t len;
	bool full; /* a field did not fit and was left out */
};

/* @timestamp, event.action, event.outcome (NULL: none), sandbox.id,
 * policy.generation (0: none).  `a` may be NULL (no audit log). */
void fb_audit_begin(const struct fb_audit *a, struct fb_audit_line *ln,
		    const char *action, const char *outcome,
		    uint64_t generation);
/* Values are cut at FB_AUDIT_STR_MAX bytes, and the field flagged
 * "<key>_truncated"; guest values at FB_AUDIT_GUEST_MAX. */
void fb_audit_str(struct fb_audit_line *ln, const char *key, const char *val);
void fb_audit_guest(struct fb_audit_line *ln, const char *key,
		    const char *val, size_t len);
void fb_audit_uint(struct fb_audit_line *ln, const char *key, uint64_t v);
void fb_audit_bool(struct fb_audit_line *ln, const char *key, bool v);
/* "<prefix>.ip" and "<prefix>.port" from a socket address. */
void fb_audit_sockaddr(struct fb_audit_line *ln, const char *prefix,
		       const struct sockaddr_storage *ss);
/* Close the object and write it, after the lines waiting; a NULL `a`
 * discards the line. */
void fb_audit_emit(struct fb_audit *a, struct fb_audit_line *ln);
/*
 * Close the object and let it wait: it is written with the other lines of
 * this iteration of loop `l`, when the iteration ends, or sooner by
 * fb_audit_emit, fb_audit_flush, fb_audit_reopen or fb_audit_close.  A
 * fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) writes them
 * before the process dies.  Use it where the line's moment does not
 * matter to anyone outside; flush before telling the peer the outcome.
 */
void fb_audit_defer(struct fb_audit *a, struct fb_loop *l,
		    struct fb_audit_line *ln);
/* Write the waiting lines now (one write(2)). */
void fb_audit_flush(struct fb_audit *a);

#endif /* FB_AUDIT_H */
