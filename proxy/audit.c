/* audit.c — JSON-lines audit log (see audit.h for the guarantees). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"
#include "proxy/audit.h"
#include "proxy/fdio.h"
#include "proxy/loop.h"

/* Room for a busy iteration's lines; a line that does not fit first
 * sends the others on their way. */
#define BATCH_MAX 32768
_Static_assert(sizeof(((struct fb_audit_line *)0)->buf) <= BATCH_MAX,
	       "a line fits an empty batch");

struct fb_audit {
	int fd;
	char *path;       /* NULL for stdout */
	struct fb_audit_health health;
	bool torn;        /* a write stopped inside a line: start a new one */
	time_t checked;   /* when the file was last seen still linked */
	bool lost;        /* removed, and could not be made again: said */
	char *sandbox_id; /* escaped once, at open */
	struct fb_loop *loop;   /* flushes at the end of its iterations */
	size_t waiting;         /* bytes of whole lines in batch */
	char batch[BATCH_MAX];
};

/* ---- the fatal-signal flush -------------------------------------------- */

/*
 * Lines waiting for the end of an iteration would die with the process
 * on a crash.  The signals that mean a crash write them first: write(2)
 * is async-signal-safe, and `waiting` only ever covers whole lines, so
 * the handler writes whole lines whatever it interrupted.  Then the
 * signal takes its previous course: a fault returns to the faulting
 * instruction, which faults again into the old action (a sanitizer's
 * report, or the core dump); a signal sent by kill or abort is raised
 * again.  One log per process, the one with lines waiting.
 */
static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
#define NFATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction fatal_old[NFATAL];
static struct fb_audit *volatile fatal_log;
static bool fatal_armed;

static void on_fatal(int sig, siginfo_t *si, void *uctx)
{
	struct fb_audit *a = fatal_log;
	int saved = errno;

	(void)uctx;
	if (a && a->waiting > 0 && write(a->fd, a->batch, a->waiting) >= 0)
		a->waiting = 0;
	for (size_t i = 0; i < NFATAL; i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &fatal_old[i], NULL);
	if (si->si_code <= 0)
		raise(sig); /* sent, not a fault: delivered again on return */
	errno = saved;
}

static void arm_fatal_flush(struct fb_audit *a)
{
	struct sigaction sa = { .sa_sigaction = on_fatal,
				.sa_flags = SA_SIGINFO };

	fatal_log = a;
	if (fatal_armed)
		return;
	fatal_armed = true;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NFATAL; i++)
		sigaction(fatal_signals[i], &sa, &fatal_old[i]);
}

/* ---- the file ------------------------------------------------------------ */

static void on_flush(struct fb_loop *l, void *arg)
{
	(void)l;
	fb_audit_flush(arg);
}

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

/* From now on the log is `fd`, a file just opened at its path. */
static void use_fd(struct fb_audit *a, int fd)
{
	int old = a->fd;

	a->fd = fd; /* before the close: the crash flush reads a->fd */
	a->torn = false;
	a->lost = false;
	close(old);
}

int fb_audit_reopen(struct fb_audit *a, char *err, size_t errsize)
{
	int fd;

	if (!a || !a->path)
		return 0;
	fd = open_log(a->path, err, errsize);
	a->health.reopen_failed = fd < 0;
	if (fd < 0)
		return -1;
	fb_audit_flush(a);
	use_fd(a, fd);
	return 0;
}

struct fb_audit_health fb_audit_health(const struct fb_audit *a)
{
	return a ? a->health : (struct fb_audit_health){ 0 };
}

void fb_audit_close(struct fb_audit *a)
{
	if (!a)
		return;
	fb_audit_flush(a);
	if (a->loop)
		fb_loop_unhook(a->loop, on_flush, a);
	if (fatal_log == a)
		fatal_log = NULL;
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

/* "YYYY-MM-DDTHH:MM:SS" of `sec`, formatted once a second rather than
 * once a line (the proxy is one thread). */
static const char *second_str(time_t sec)
{
	static time_t last = -1;
	static char when[32];
	struct tm tm;

	if (sec != last) {
		gmtime_r(&sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		last = sec;
	}
	return when;
}

void fb_audit_begin(const struct fb_audit *a, struct fb_audit_line *ln,
		    const char *action, const char *outcome,
		    uint64_t generation)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ln->len = 0;
	ln->full = false;
	append(ln, "{\"@timestamp\":\"%s.%03ldZ\",\"event.action\":\"%s\"",
	       second_str(ts.tv_sec), ts.tv_nsec / 1000000, action);
	if (outcome)
		fb_audit_str(ln, "event.outcome", outcome);
	if (a && a->sandbox_id)
		append(ln, ",\"sandbox.id\":\"%s\"", a->sandbox_id);
	if (generation)
		fb_audit_uint(ln, "policy.generation", generation);
}

/* `val` escaped, cut at `max` bytes and flagged "<key>_truncated". */
static void put_cut(struct fb_audit_line *ln, const char *key,
		    const char *val, size_t len, size_t max)
{
	char esc[FB_AUDIT_STR_MAX * 6 + 1];
	bool cut = len > max;
	size_t keep = cut ? max : len;

	/* Cut before a UTF-8 character, not through it: a cut character
	 * would be logged as U+FFFD, a byte that was never sent. */
	while (cut && keep > max - 3 &&
	       ((unsigned char)val[keep] & 0xc0) == 0x80)
		keep--;
	fb_json_escape(val, keep, esc, sizeof(esc));
	append(ln, ",\"%s\":\"%s\"", key, esc);
	if (cut)
		append(ln, ",\"%s_truncated\":true", key);
}

void fb_audit_str(struct fb_audit_line *ln, const char *key, const char *val)
{
	put_cut(ln, key, val, strlen(val), FB_AUDIT_STR_MAX);
}

void fb_audit_guest(struct fb_audit_line *ln, const char *key,
		    const char *val, size_t len)
{
	_Static_assert(FB_AUDIT_GUEST_MAX <= FB_AUDIT_STR_MAX, "room to escape");
	put_cut(ln, key, val, len, FB_AUDIT_GUEST_MAX);
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

static void finish(struct fb_audit_line *ln)
{
	if (ln->full)
		append(ln, ",\"event.incomplete\":true");
	/* append() always leaves room for these two bytes */
	ln->buf[ln->len++] = '}';
	ln->buf[ln->len++] = '\n';
}

/*
 * A log file removed under the proxy (rm, where logrotate renames) would
 * take every later line with it, unseen: looked at before a write, at
 * most once a second, it is made again at its path, and the removal said
 * on stderr.  If it cannot be, the lines go on to the removed file as
 * before and reopen_failed says so.
 */
static void check_removed(struct fb_audit *a)
{
	time_t now = time(NULL);
	char err[256];
	struct stat st;
	int fd;

	if (!a->path || now == a->checked)
		return;
	a->checked = now;
	if (fstat(a->fd, &st) < 0 || st.st_nlink > 0)
		return;
	fd = open_log(a->path, err, sizeof(err));
	a->health.reopen_failed = fd < 0;
	/* said once, not once a second for as long as it lasts */
	if (fd < 0 && a->lost)
		return;
	a->lost = fd < 0;
	fprintf(stderr, "firebreak-proxy: audit log %s was removed; %s%s\n",
		a->path, fd < 0 ? "cannot make it again: " : "made again",
		fd < 0 ? err : "");
	if (fd >= 0)
		use_fd(a, fd);
}

/*
 * Whole lines, in one write(2) unless the file takes only part of them
 * (a disk filling up).  A full disk must not stop the proxy: the lines
 * that did not go out are counted (/stats, /metrics) and reported on
 * stderr, which the launcher collects; a line cut short is ended by the
 * next write's leading newline, so the lines after it stay whole.
 */
static void write_lines(struct fb_audit *a, const char *buf, size_t len)
{
	size_t done = 0;

	check_removed(a);
	if (a->torn && fb_write_upto(a->fd, "\n", 1) == 1)
		a->torn = false;
	if (!a->torn)
		done = fb_write_upto(a->fd, buf, len);
	if (done == len)
		return;
	if (done > 0 && buf[done - 1] != '\n')
		a->torn = true;
	for (size_t i = done; i < len; i++)
		a->health.lines_lost += buf[i] == '\n';
	fprintf(stderr, "firebreak-proxy: audit log write failed: %s\n",
		strerror(errno));
}

/* Add a finished line to the batch; false if it does not fit. */
static bool batch_add(struct fb_audit *a, const struct fb_audit_line *ln)
{
	if (ln->len > sizeof(a->batch) - a->waiting)
		return false;
	memcpy(a->batch + a->waiting, ln->buf, ln->len);
	a->waiting += ln->len; /* only now: the crash handler sees whole lines */
	return true;
}

void fb_audit_flush(struct fb_audit *a)
{
	if (!a || a->waiting == 0)
		return;
	write_lines(a, a->batch, a->waiting);
	a->waiting = 0;
}

void fb_audit_emit(struct fb_audit *a, struct fb_audit_line *ln)
{
	if (!a)
		return;
	finish(ln);
	/* behind the lines waiting, in the same write when it fits */
	if (a->waiting > 0 && batch_add(a, ln)) {
		fb_audit_flush(a);
		return;
	}
	fb_audit_flush(a);
	write_lines(a, ln->buf, ln->len);
}

void fb_audit_defer(struct fb_audit *a, struct fb_loop *l,
		    struct fb_audit_line *ln)
{
	if (!a)
		return;
	finish(ln);
	if (!batch_add(a, ln)) {
		fb_audit_flush(a);
		batch_add(a, ln); /* fits an empty batch (asserted above) */
	}
	arm_fatal_flush(a);
	if (a->loop == l)
		return;
	if (a->loop)
		fb_loop_unhook(a->loop, on_flush, a);
	a->loop = fb_loop_hook(l, on_flush, a) == 0 ? l : NULL;
	if (!a->loop)
		fb_audit_flush(a); /* no hook left: no waiting either */
}
