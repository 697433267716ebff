/*
 * state.c — a sandbox's state file, <state dir>/<id>/state.json: what a
 * daemon restarted after a crash needs to find everything the sandbox
 * held.  Written to a temporary file, synced and renamed over the old one,
 * so a reader sees the old state or the new, never half of either.
 *
 * And the audit log a sandbox leaves: it is the record of what the
 * sandbox did, wanted most after the sandbox is gone (removed, or lost
 * with a daemon that crashed), so it is moved aside, never deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy/doc.h"
#include "vmhost/daemon.h"

static const char *const status_names[] = {
	[FB_SBX_RUNNING] = "running",
	[FB_SBX_STOPPED] = "stopped",
	[FB_SBX_FAILED] = "failed",
};

const char *fb_sbx_status_str(enum fb_sbx_status s)
{
	return status_names[s];
}

void fb_audit_keep(const char *state_dir, const char *dir, const char *id)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 64], when[32];
	struct timespec ts;
	struct tm tm;

	snprintf(from, sizeof from, "%s/%s", dir, FB_AUDIT_FILE);
	if (access(from, F_OK) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm);
	snprintf(to, sizeof to, "%s/%s", state_dir, FB_AUDIT_KEPT_DIR);
	if (mkdir(to, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "firebreak-vmhost: sandbox %s: keeping its audit "
			"log: mkdir %s: %s\n", id, to, strerror(errno));
		return;
	}
	snprintf(to, sizeof to, "%s/%s/%s.%s.%03ldZ.log", state_dir,
		 FB_AUDIT_KEPT_DIR, id, when, ts.tv_nsec / 1000000);
	if (rename(from, to) < 0)
		fprintf(stderr, "firebreak-vmhost: sandbox %s: keeping its audit "
			"log: %s: %s\n", id, to, strerror(errno));
}

unsigned long long fb_proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: skip past the
	 * last ')', then field 3 (state) is first; starttime is field 22 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			 "%*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

int fb_state_write(const char *path, const struct fb_state *s, char *err,
		   size_t errsize)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		snprintf(err, errsize, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		snprintf(err, errsize, "create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "{\"id\":");
	fb_json_put_str(f, s->id);
	fprintf(f, ",\"backend\":");
	fb_json_put_str(f, s->backend);
	fprintf(f, ",\"status\":\"%s\",\"exit_status\":", fb_sbx_status_str(s->status));
	if (s->exit_status >= 0)
		fprintf(f, "%d", s->exit_status);
	else
		fprintf(f, "null");
	fprintf(f, ",\"namespace\":\"%s\",\"table\":\"%s\",\"slot\":%u,"
		"\"pids\":{\"proxy\":%d,\"guest\":%d},"
		"\"starttimes\":{\"proxy\":%llu,\"guest\":%llu}}\n",
		s->netns, s->table, s->slot, (int)s->proxy, (int)s->guest,
		s->proxy_start, s->guest_start);
	if (fflush(f) != 0 || fsync(fd) < 0) {
		snprintf(err, errsize, "write %s: %s", tmp, strerror(errno));
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path) < 0) {
		snprintf(err, errsize, "rename %s to %s: %s", tmp, path,
			 strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* A string under `key` into buf; -1 if absent, not a string or too long. */
static int get_str(const struct fb_node *map, const char *key, char *buf,
		   size_t size)
{
	const struct fb_node *n = fb_node_get(map, key);

	if (!n || n->kind != FB_NODE_SCALAR || n->len >= size ||
	    strlen(n->text) != n->len)
		return -1;
	memcpy(buf, n->text, n->len + 1);
	return 0;
}

static int get_num(const struct fb_node *map, const char *key,
		   unsigned long long *v)
{
	const struct fb_node *n = fb_node_get(map, key);
	char *end;

	if (!n || n->kind != FB_NODE_SCALAR || n->quoted)
		return -1;
	errno = 0;
	*v = strtoull(n->text, &end, 10);
	return errno || end == n->text || *end ? -1 : 0;
}

int fb_state_read(const char *path, struct fb_state *s, char *err,
		  size_t errsize)
{
	char *text = NULL, status[16], perr[256];
	const struct fb_node *pids, *starts, *ex;
	unsigned long long slot, proxy, guest;
	struct fb_node *doc = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");
	int rc = -1;

	memset(s, 0, sizeof *s);
	if (!f) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	text = malloc(64 * 1024);
	if (text)
		len = fread(text, 1, 64 * 1024, f);
	fclose(f);
	if (!text || len == 0) {
		snprintf(err, errsize, "%s: empty or unreadable", path);
		goto out;
	}
	doc = fb_json_parse(text, len, perr, sizeof perr);
	if (doc && doc->kind != FB_NODE_MAP)
		snprintf(perr, sizeof perr, "not a JSON object");
	if (!doc || doc->kind != FB_NODE_MAP) {
		snprintf(err, errsize, "%s: %s", path, perr);
		goto out;
	}
	pids = fb_node_get(doc, "pids");
	starts = fb_node_get(doc, "starttimes");
	ex = fb_node_get(doc, "exit_status");
	if (get_str(doc, "id", s->id, sizeof s->id) < 0 ||
	    !fb_sandbox_id_valid(s->id) ||
	    get_str(doc, "backend", s->backend, sizeof s->backend) < 0 ||
	    get_str(doc, "status", status, sizeof status) < 0 ||
	    get_str(doc, "namespace", s->netns, sizeof s->netns) < 0 ||
	    get_str(doc, "table", s->table, sizeof s->table) < 0 ||
	    get_num(doc, "slot", &slot) < 0 || slot >= FB_SLOTS ||
	    !pids || get_num(pids, "proxy", &proxy) < 0 ||
	    get_num(pids, "guest", &guest) < 0 || !starts ||
	    get_num(starts, "proxy", &s->proxy_start) < 0 ||
	    get_num(starts, "guest", &s->guest_start) < 0) {
		snprintf(err, errsize, "%s: not a sandbox state file", path);
		goto out;
	}
	/* only names this daemon would have given: the file decides what
	 * recovery deletes */
	if (strcmp(s->netns + 3, s->id) || strncmp(s->netns, "fb-", 3) ||
	    strncmp(s->table, "firebreak-", 10) || strcmp(s->table + 10, s->id)) {
		snprintf(err, errsize, "%s: names that are not sandbox %s's",
			 path, s->id);
		goto out;
	}
	s->slot = (unsigned)slot;
	s->proxy = (pid_t)proxy;
	s->guest = (pid_t)guest;
	s->status = !strcmp(status, "stopped") ? FB_SBX_STOPPED :
		    !strcmp(status, "failed") ? FB_SBX_FAILED : FB_SBX_RUNNING;
	s->exit_status = ex && ex->kind == FB_NODE_SCALAR ? atoi(ex->text) : -1;
	rc = 0;
out:
	fb_node_free(doc);
	free(text);
	return rc;
}
