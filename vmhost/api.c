/*
 * api.c — firebreak-vmhost's routes:
 *
 *   POST   /sandboxes                 create (JSON body, below); 201
 *   GET    /sandboxes                 every sandbox
 *   GET    /sandboxes/{id}            one
 *   DELETE /sandboxes/{id}            stop it and remove everything it held
 *   GET|PUT|PATCH /sandboxes/{id}/policy   the sandbox's proxy control API,
 *                                     status and body passed back
 *   GET    /sandboxes/{id}/logs       its audit log; ?follow=1 streams new
 *                                     lines until the client goes away
 *
 * The create body: {"id", "policy" (YAML/JSON text, or allow-all /
 * deny-all; default deny-all), "backend" (process | qemu | firecracker),
 * "command" [argv], "env" {NAME: value}, "user", "image" (a VM backend's
 * directory of kernel and initrd), "jailer" (firecracker: the absolute
 * path of Firecracker's jailer to start it under; the socket's peers are
 * root or the daemon's user already), "resources" {"vcpus",
 * "memory_mib"}: a VM's size; the process backend records them only}.  Everything is checked before
 * anything is made; a failed create leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "policy/doc.h"
#include "proxy/ctlsock.h"
#include "proxy/proxy.h"
#include "vmhost/daemon.h"
#include "vmhost/qemu.h"

#define MAX_ARGS 256
#define MAX_ENV 256
#define MAX_VCPUS 64
#define MIN_MEMORY_MIB 16
#define MAX_MEMORY_MIB (1024 * 1024)
#define FOLLOW_MS 200
#define FOLLOW_QUEUED_MAX (1024 * 1024)
#define LOG_MAX (64 * 1024 * 1024)
#define FORWARD_TIMEOUT_S 15
/* the proxy's biggest answer: a policy of FB_CONTROL_BODY_MAX, read back
 * in JSON (which may spell it longer than the YAML it came as) */
#define ANSWER_MAX (FB_CTLSOCK_HEAD_MAX + 4 * FB_CONTROL_BODY_MAX)

static bool slice_is(const struct fb_http_slice *s, const char *lit)
{
	return s->ptr && s->len == strlen(lit) && !memcmp(s->ptr, lit, s->len);
}

struct fb_managed *fb_api_find(struct fb_daemon *d, const char *id)
{
	for (struct fb_managed *m = d->sandboxes; m; m = m->next)
		if (!strcmp(m->st.id, id))
			return m;
	return NULL;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* ---- reading the create body ------------------------------------------ */

struct create {
	char id[FB_SANDBOX_ID_MAX + 1];
	const char *policy;
	const char *backend;
	const char *user;
	const char *image;         /* a VM backend's guest directory */
	const char *jailer;        /* firecracker under this jailer, or NULL */
	enum fb_backend kind;
	char **argv, **env;
	unsigned vcpus, memory_mib;
	uid_t uid;
	gid_t gid;
};

static const char *str_of(const struct fb_node *n)
{
	return n && n->kind == FB_NODE_SCALAR && strlen(n->text) == n->len ?
	       n->text : NULL;
}

/* An integer field in [lo, hi]; 0, or -1 with the message in err. */
static int get_uint(const struct fb_node *map, const char *key,
		    const char *where, unsigned lo, unsigned hi, unsigned *v,
		    char *err, size_t errsize)
{
	const struct fb_node *n = fb_node_get(map, key);
	unsigned long x;
	char *end;

	if (!n)
		return 0;
	errno = 0;
	x = n->kind == FB_NODE_SCALAR && !n->quoted ?
	    strtoul(n->text, &end, 10) : 0;
	if (n->kind != FB_NODE_SCALAR || n->quoted || errno ||
	    end == n->text || *end || x < lo || x > hi) {
		snprintf(err, errsize, "%s.%s: expected an integer from %u "
			 "to %u, found %s%s%s", where, key, lo, hi,
			 n->kind == FB_NODE_SCALAR ? "\"" : "",
			 n->kind == FB_NODE_SCALAR ? n->text : fb_node_what(n),
			 n->kind == FB_NODE_SCALAR ? "\"" : "");
		return -1;
	}
	*v = (unsigned)x;
	return 0;
}

static int read_command(const struct fb_node *n, struct create *c, char *err,
			size_t errsize)
{
	if (!n || n->kind != FB_NODE_SEQ || n->n == 0 || n->n > MAX_ARGS) {
		snprintf(err, errsize, "command: expected a list of 1 to %d "
			 "strings (the guest's argv)", MAX_ARGS);
		return -1;
	}
	c->argv = calloc(n->n + 1, sizeof *c->argv);
	for (size_t i = 0; c->argv && i < n->n; i++) {
		const char *s = str_of(n->vals[i]);

		if (!s) {
			snprintf(err, errsize, "command[%zu]: expected a "
				 "string, found %s", i, fb_node_what(n->vals[i]));
			return -1;
		}
		if (!(c->argv[i] = strdup(s)))
			break;
	}
	if (!c->argv || !c->argv[n->n - 1]) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	return 0;
}

static bool env_name_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 256 && !(s[0] >= '0' && s[0] <= '9') &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_") == n;
}

static int read_env(const struct fb_node *n, struct create *c, char *err,
		    size_t errsize)
{
	if (!n)
		return 0;
	if (n->kind != FB_NODE_MAP || n->n > MAX_ENV) {
		snprintf(err, errsize, "env: expected an object of at most %d "
			 "NAME: value pairs", MAX_ENV);
		return -1;
	}
	c->env = calloc(n->n + 1, sizeof *c->env);
	if (!c->env) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n->n; i++) {
		const char *k = str_of(n->keys[i]), *v = str_of(n->vals[i]);

		if (!k || !env_name_valid(k)) {
			snprintf(err, errsize, "env: \"%s\" is not a variable "
				 "name", k ? k : "?");
			return -1;
		}
		if (!v) {
			snprintf(err, errsize, "env.%s: expected a string, "
				 "found %s", k, fb_node_what(n->vals[i]));
			return -1;
		}
		if (asprintf(&c->env[i], "%s=%s", k, v) < 0) {
			c->env[i] = NULL;
			snprintf(err, errsize, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* The body into `c`; -1 with (status, err) for the answer. */
static int read_create(const struct fb_node *doc, struct create *c,
		       int *status, char *err, size_t errsize)
{
	static const char *const known[] = { "id", "policy", "backend",
		"command", "env", "user", "image", "jailer", "resources",
		NULL };
	const struct fb_node *res = fb_node_get(doc, "resources");
	const char *id = str_of(fb_node_get(doc, "id"));

	*status = 400;
	for (size_t i = 0; i < doc->n; i++) {
		size_t k = 0;

		while (known[k] && !fb_node_is(doc->keys[i], known[k]))
			k++;
		if (!known[k]) {
			snprintf(err, errsize, "unknown field \"%s\" (expected "
				 "id, policy, backend, command, env, user, "
				 "image, jailer, resources)",
				 doc->keys[i]->text);
			return -1;
		}
	}
	if (fb_node_get(doc, "id") && (!id || !fb_sandbox_id_valid(id))) {
		snprintf(err, errsize, "id: " FB_SANDBOX_ID_RULE);
		return -1;
	}
	if (id)
		snprintf(c->id, sizeof c->id, "%s", id);
	c->policy = fb_node_get(doc, "policy") ?
		    str_of(fb_node_get(doc, "policy")) : "deny-all";
	if (!c->policy || !*c->policy) {
		snprintf(err, errsize, "policy: expected YAML or JSON text, "
			 "allow-all or deny-all");
		return -1;
	}
	c->backend = fb_node_get(doc, "backend") ?
		     str_of(fb_node_get(doc, "backend")) : "process";
	if (!c->backend || (strcmp(c->backend, "process") &&
			    strcmp(c->backend, "qemu") &&
			    strcmp(c->backend, "firecracker"))) {
		snprintf(err, errsize, "backend \"%s\": expected process, qemu "
			 "or firecracker", c->backend ? c->backend : "?");
		return -1;
	}
	c->vcpus = 1;
	c->memory_mib = 256;
	if (res && res->kind != FB_NODE_MAP) {
		snprintf(err, errsize, "resources: expected an object "
			 "{vcpus, memory_mib}, found %s", fb_node_what(res));
		return -1;
	}
	for (size_t i = 0; res && i < res->n; i++)
		if (!fb_node_is(res->keys[i], "vcpus") &&
		    !fb_node_is(res->keys[i], "memory_mib")) {
			snprintf(err, errsize, "resources: unknown field "
				 "\"%s\" (expected vcpus, memory_mib)",
				 res->keys[i]->text);
			return -1;
		}
	if (res && (get_uint(res, "vcpus", "resources", 1, MAX_VCPUS,
			     &c->vcpus, err, errsize) < 0 ||
		    get_uint(res, "memory_mib", "resources", MIN_MEMORY_MIB,
			     MAX_MEMORY_MIB, &c->memory_mib, err, errsize) < 0))
		return -1;
	c->user = fb_node_get(doc, "user") ? str_of(fb_node_get(doc, "user"))
					   : "nobody";
	if (!c->user || fb_launch_resolve_user(c->user, &c->uid, &c->gid) < 0) {
		snprintf(err, errsize, "user \"%s\": no such user",
			 c->user ? c->user : "?");
		return -1;
	}
	if (read_command(fb_node_get(doc, "command"), c, err, errsize) < 0 ||
	    read_env(fb_node_get(doc, "env"), c, err, errsize) < 0)
		return -1;
	c->kind = !strcmp(c->backend, "qemu") ? FB_BACKEND_QEMU :
		  !strcmp(c->backend, "firecracker") ? FB_BACKEND_FIRECRACKER :
		  FB_BACKEND_PROCESS;
	c->image = fb_node_get(doc, "image") ?
		   str_of(fb_node_get(doc, "image")) : NULL;
	if (c->kind == FB_BACKEND_PROCESS && fb_node_get(doc, "image")) {
		snprintf(err, errsize, "image: the process backend runs the "
			 "host's programs and takes no image");
		return -1;
	}
	if (c->kind != FB_BACKEND_PROCESS && fb_node_get(doc, "image") &&
	    (!c->image || !*c->image)) {
		snprintf(err, errsize, "image: expected the directory of the "
			 "guest's kernel and initrd");
		return -1;
	}
	c->jailer = fb_node_get(doc, "jailer") ?
		    str_of(fb_node_get(doc, "jailer")) : NULL;
	if (fb_node_get(doc, "jailer") && c->kind != FB_BACKEND_FIRECRACKER) {
		snprintf(err, errsize, "jailer: only the firecracker backend "
			 "runs under a jailer");
		return -1;
	}
	/* the daemon's working directory is not the client's */
	if (fb_node_get(doc, "jailer") && (!c->jailer || c->jailer[0] != '/')) {
		snprintf(err, errsize, "jailer: expected the absolute path of "
			 "Firecracker's jailer");
		return -1;
	}
	if (c->kind != FB_BACKEND_PROCESS && !c->image)
		c->image = getenv("FIREBREAK_GUEST_DIR") ?
			   getenv("FIREBREAK_GUEST_DIR") : FB_GUEST_DIR_DEFAULT;
	return 0;
}

/* ---- answers ------------------------------------------------------------ */

static void put_sandbox(FILE *f, const struct fb_managed *m)
{
	fprintf(f, "{\"id\":\"%s\",\"backend\":\"%s\",\"status\":\"%s\","
		"\"exit_status\":", m->st.id, m->st.backend,
		fb_sbx_status_str(m->st.status));
	if (m->st.exit_status >= 0)
		fprintf(f, "%d", m->st.exit_status);
	else
		fputs("null", f);
	fprintf(f, ",\"command\":");
	fb_json_put_strv(f, m->argv);
	fprintf(f, ",\"namespace\":\"%s\",\"table\":\"%s\",\"slot\":%u,"
		"\"pids\":{\"proxy\":%d,\"guest\":%d},\"proxy_restarts\":%u,"
		"\"resources\":{\"vcpus\":%u,\"memory_mib\":%u},"
		"\"setup_ms\":%.1f}",
		m->st.netns, m->st.table, m->st.slot,
		m->launch.proxy > 0 ? (int)m->launch.proxy : 0,
		m->launch.guest > 0 ? (int)m->launch.guest : 0,
		m->proxy_restarts, m->vcpus, m->memory_mib,
		m->launch.ready_ms);
}

/* A JSON answer: one sandbox, or all of them (m NULL). */
static void answer_json(struct fb_client *c, int status,
			const struct fb_managed *m)
{
	struct fb_daemon *d = fb_client_daemon(c);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		fb_client_error(c, 500, "out of memory");
		return;
	}
	if (m) {
		put_sandbox(f, m);
	} else {
		fputc('[', f);
		for (const struct fb_managed *s = d->sandboxes; s; s = s->next) {
			put_sandbox(f, s);
			if (s->next)
				fputc(',', f);
		}
		fputc(']', f);
	}
	fputc('\n', f);
	if (fclose(f) != 0)
		fb_client_error(c, 500, "out of memory");
	else
		fb_client_respond(c, status, "application/json", NULL, buf, len);
	free(buf);
}

/* ---- create and remove ------------------------------------------------- */

static void random_id(char id[FB_SANDBOX_ID_MAX + 1])
{
	unsigned char r[4] = { 0 };

	if (getrandom(r, sizeof r, 0) != sizeof r) {
		unsigned x = (unsigned)getpid() ^ (unsigned)time(NULL);

		memcpy(r, &x, sizeof r);
	}
	snprintf(id, FB_SANDBOX_ID_MAX + 1, "%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3]);
}

/*
 * Replacing a file in two halves, so that what may fail (a full disk)
 * fails before the change the file records is made: the new text to
 * <path>.tmp, synced; then, once the change is made, renamed over path.
 */
#define TMP_PATH_MAX (PATH_MAX + 64)

static void staged_path(const char *path, char tmp[TMP_PATH_MAX])
{
	snprintf(tmp, TMP_PATH_MAX, "%s.tmp", path);
}

static int stage_file(const char *path, const char *p, size_t len, char *err,
		      size_t errsize)
{
	char tmp[TMP_PATH_MAX];
	int fd, rc;

	staged_path(path, tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errsize, "write %s: %s", path, strerror(errno));
		return -1;
	}
	rc = write(fd, p, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : -1;
	if (rc < 0)
		snprintf(err, errsize, "write %s: %s", path, strerror(errno));
	if (close(fd) < 0 && rc == 0) {
		snprintf(err, errsize, "write %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int commit_file(const char *path, char *err, size_t errsize)
{
	char tmp[TMP_PATH_MAX];

	staged_path(path, tmp);
	if (rename(tmp, path) == 0)
		return 0;
	snprintf(err, errsize, "write %s: %s", path, strerror(errno));
	unlink(tmp);
	return -1;
}

static void drop_staged(const char *path)
{
	char tmp[TMP_PATH_MAX];

	staged_path(path, tmp);
	unlink(tmp);
}

/* Both halves at once. */
static int write_file(const char *path, const char *p, size_t len, char *err,
		      size_t errsize)
{
	return stage_file(path, p, len, err, errsize) < 0 ? -1 :
	       commit_file(path, err, errsize);
}

/* The daemon's own files in the sandbox's directory; the audit log is
 * kept. */
static void remove_files(struct fb_daemon *d, const struct fb_managed *m)
{
	char path[PATH_MAX + 16];
	const char *const files[] = { FB_STATE_FILE, FB_POLICY_FILE };

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", m->dir, files[i]);
		unlink(path);
	}
	fb_audit_keep(d->state_dir, m->dir, m->st.id);
}

static void managed_free(struct fb_managed *m)
{
	strv_free(m->argv);
	strv_free(m->env);
	free(m->image);
	free(m);
}

void fb_api_remove(struct fb_daemon *d, struct fb_managed *m)
{
	struct fb_managed **pp = &d->sandboxes;

	while (*pp && *pp != m)
		pp = &(*pp)->next;
	if (*pp)
		*pp = m->next;
	remove_files(d, m);
	fb_launch_stop(&m->launch);
	/* the launch removes the directory when it made it; a start that
	 * failed early did not */
	rmdir(m->dir);
	managed_free(m);
}

static void create(struct fb_client *c, const char *body, size_t len)
{
	struct fb_daemon *d = fb_client_daemon(c);
	struct create cr = { 0 };
	struct fb_managed *m = NULL;
	struct fb_node *doc;
	char err[4096];
	int status;

	doc = fb_json_parse(body, len, err, sizeof err);
	if (!doc) {
		fb_client_error(c, 400, "body: %s", err);
		return;
	}
	if (doc->kind != FB_NODE_MAP) {
		fb_client_error(c, 400, "body: expected a JSON object, found %s",
				fb_node_what(doc));
		fb_json_free(doc);
		return;
	}
	if (read_create(doc, &cr, &status, err, sizeof err) < 0) {
		fb_client_error(c, status, "%s", err);
		goto out;
	}
	if (!cr.id[0])
		random_id(cr.id);
	if (fb_api_find(d, cr.id)) {
		fb_client_error(c, 409, "sandbox %s exists", cr.id);
		goto out;
	}
	m = calloc(1, sizeof *m);
	if (!m) {
		fb_client_error(c, 500, "out of memory");
		goto out;
	}
	m->argv = cr.argv;
	m->env = cr.env;
	cr.argv = cr.env = NULL;
	m->vcpus = cr.vcpus;
	m->memory_mib = cr.memory_mib;
	if (cr.image && !(m->image = strdup(cr.image))) {
		fb_client_error(c, 500, "out of memory");
		managed_free(m);
		goto out;
	}
	snprintf(m->st.id, sizeof m->st.id, "%s", cr.id);
	snprintf(m->dir, sizeof m->dir, "%s/%s", d->state_dir, cr.id);
	snprintf(m->policy_path, sizeof m->policy_path, "%s/%s", m->dir,
		 FB_POLICY_FILE);
	snprintf(m->audit_path, sizeof m->audit_path, "%s/%s", m->dir,
		 FB_AUDIT_FILE);
	/* The directory is the claim on the id among launchers sharing the
	 * state directory: it exists only while some sandbox holds it. */
	if (mkdir(m->dir, 0755) < 0) {
		int e = errno;

		if (e == EEXIST)
			fb_client_error(c, 409, "sandbox %s exists (%s)", cr.id,
					m->dir);
		else
			fb_client_error(c, 500, "sandbox %s: mkdir %s: %s",
					cr.id, m->dir, strerror(e));
		managed_free(m);
		goto out;
	}
	if (write_file(m->policy_path, cr.policy, strlen(cr.policy), err,
		       sizeof err) < 0) {
		fb_client_error(c, 500, "sandbox %s: %s", cr.id, err);
		goto fail;
	}
	struct fb_launch_opts lo = {
		.id = cr.id,
		.state_dir = d->state_dir,
		.policy = m->policy_path,
		.policy_name = "<policy>",
		.publics = d->publics,
		.npublics = d->npublics,
		.resolver = d->resolver,
		.audit_log = m->audit_path,
		.argv = m->argv,
		.uid = cr.uid,
		.gid = cr.gid,
		.clean_env = true,
		.no_stdio = true,
		.env = m->env,
		.backend = cr.kind,
		.guest_dir = m->image,
		.jailer = cr.jailer,
		.vcpus = cr.kind == FB_BACKEND_PROCESS ? 0 : m->vcpus,
		.mem_mib = cr.kind == FB_BACKEND_PROCESS ? 0 : m->memory_mib,
	};
	if (fb_launch_start(&lo, &m->launch, err, sizeof err) < 0) {
		/* EINVAL: the policy; ENOENT: the backend's hypervisor,
		 * kernel or image is missing */
		fb_client_error(c, errno == EEXIST ? 409 :
				errno == EINVAL || errno == ENOENT ? 400 : 500,
				"sandbox %s: %s", cr.id, err);
		goto fail;
	}
	snprintf(m->st.backend, sizeof m->st.backend, "%s", cr.backend);
	snprintf(m->st.netns, sizeof m->st.netns, "%s", m->launch.sb.name);
	snprintf(m->st.table, sizeof m->st.table, "%s", m->launch.sb.table);
	m->st.slot = m->launch.sb.slot.index;
	m->st.status = FB_SBX_RUNNING;
	m->st.exit_status = -1;
	m->next = d->sandboxes;
	d->sandboxes = m;
	fb_managed_save(m);
	answer_json(c, 201, m);
	goto out;
fail:
	remove_files(d, m);
	rmdir(m->dir);
	managed_free(m);
out:
	strv_free(cr.argv);
	strv_free(cr.env);
	fb_json_free(doc);
}

/* ---- the policy, through the sandbox's proxy ---------------------------- */

/* Until fd is ready for `events` or the deadline passes (ETIMEDOUT). */
static int wait_ready(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		uint64_t now = fb_monotonic_ms();
		int n;

		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static int send_by(int fd, const char *p, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EAGAIN) {
			if (wait_ready(fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Send a request to the proxy's control socket and read the whole answer
 * (it closes after one).  NULL with err.  The daemon's one loop waits
 * here, for every sandbox: the proxy parses what its guest sends, and
 * one that was taken over must not hold the daemon longer than
 * FORWARD_TIMEOUT_S in all, however it drips its answer, nor grow it
 * past what a policy's answer can be.
 */
static char *control_call(const struct fb_managed *m, const char *request,
			  size_t rlen, const char *body, size_t blen,
			  size_t *out_len, char *err, size_t errsize)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = fb_monotonic_ms() + FORWARD_TIMEOUT_S * 1000;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd;

	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s",
		     m->launch.sb.dir, FB_CONTROL_SOCK) >= (int)sizeof sa.sun_path) {
		snprintf(err, errsize, "control socket path too long");
		return NULL;
	}
	/* non-blocking: a full backlog fails at once instead of waiting */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send_by(fd, request, rlen, deadline) < 0 ||
	    send_by(fd, body, blen, deadline) < 0) {
		snprintf(err, errsize, "proxy control socket %s: %s",
			 sa.sun_path, strerror(errno));
		goto fail;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			size_t want = cap ? 2 * cap : 16384;
			char *grown;

			if (want > ANSWER_MAX + 1)
				want = ANSWER_MAX + 1;
			if (want <= cap) {
				snprintf(err, errsize, "proxy control socket "
					 "%s: an answer over %d bytes",
					 sa.sun_path, ANSWER_MAX);
				goto fail;
			}
			grown = realloc(buf, want);
			if (!grown) {
				snprintf(err, errsize, "out of memory");
				goto fail;
			}
			buf = grown;
			cap = want;
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			if (wait_ready(fd, POLLIN, deadline) < 0) {
				snprintf(err, errsize, "proxy control socket "
					 "%s: no whole answer in %d s",
					 sa.sun_path, FORWARD_TIMEOUT_S);
				goto fail;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errsize, "proxy control socket %s: %s",
				 sa.sun_path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out_len = len;
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/*
 * The value of header `name` in a raw response head, copied into buf:
 * only visible ASCII, spaces and tabs, for it goes into the daemon's own
 * answer, where a bare LF or a control byte from a proxy gone wrong would
 * start a field of its own.
 */
static bool head_field(const char *head, size_t head_len, const char *name,
		       char *buf, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *p = head; p && p < head + head_len;) {
		const char *eol = strstr(p, "\r\n");

		if (!eol)
			break;
		if ((size_t)(eol - p) > nlen + 1 && !strncasecmp(p, name, nlen) &&
		    p[nlen] == ':') {
			const char *v = p + nlen + 1;

			while (*v == ' ')
				v++;
			for (const char *q = v; q < eol; q++)
				if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
					return false;
			snprintf(buf, size, "%.*s", (int)(eol - v), v);
			return true;
		}
		p = eol + 2;
	}
	return false;
}

/*
 * Keep the file the proxy is restarted with equal to the policy it
 * enforces: after a PUT it is the body; after a PATCH the merge, which
 * the daemon works out the way the proxy will, from the same file.  It is
 * staged before the change goes to the proxy, and put in place once the
 * proxy has made it (commit_file).  0 staged; 1 nothing staged: the patch
 * does not apply, which the proxy will say in its own words; -1 with err.
 */
static int stage_policy(struct fb_daemon *d, struct fb_managed *m,
			bool patch, const char *body, size_t len, char *err,
			size_t errsize)
{
	struct fb_load_opts lo = {
		.filename = m->policy_path,
		.publics = d->publics,
		.npublics = d->npublics,
	};
	struct fb_diags diags = { 0 };
	struct fb_policy *base = NULL, *merged = NULL;
	char *text = NULL;
	int rc = -1;

	if (!patch)
		return stage_file(m->policy_path, body, len, err, errsize);
	base = fb_policy_load_file(m->policy_path, &lo, &diags);
	merged = base ? fb_policy_patch(base, body, len, &lo, &diags) : NULL;
	text = merged ? fb_policy_source(merged) : NULL;
	if (base && !merged && diags.n)
		rc = 1;
	else if (!text)
		snprintf(err, errsize, "cannot rebuild %s after the patch",
			 FB_POLICY_FILE);
	else
		rc = stage_file(m->policy_path, text, strlen(text), err,
				errsize);
	free(text);
	fb_policy_unref(merged);
	fb_policy_unref(base);
	fb_diags_free(&diags);
	return rc;
}

/*
 * Every line of the request's field `name` (If-Match, If-None-Match), as
 * one list in `out`: the proxy judges them together, as it would were
 * they sent to it directly (a list matches when any of its tags does).
 * NULL when there is none or they do not fit.
 */
static const char *field_list(const struct fb_http_req *req, const char *name,
			      char *out, size_t size, bool *too_long)
{
	size_t n = 0, name_len = strlen(name);
	bool any = false;

	*too_long = false;
	for (size_t i = 0; i < req->nfields; i++) {
		const struct fb_http_header *h = &req->fields[i];
		int w;

		if (h->name_len != name_len || strncasecmp(h->name, name, name_len))
			continue;
		w = snprintf(out + n, size - n, "%s%.*s", any ? ", " : "",
			     (int)h->value_len, h->value);
		if (w < 0 || (size_t)w >= size - n) {
			*too_long = true;
			return NULL;
		}
		n += (size_t)w;
		any = true;
	}
	return any ? out : NULL;
}

/* Keep the generation of an ETag `"N"` the proxy sent, if the highest. */
static void note_generation(struct fb_managed *m, const char *etag)
{
	unsigned long v;
	char *end;

	if (etag[0] != '"' || etag[1] < '0' || etag[1] > '9')
		return;
	errno = 0;
	v = strtoul(etag + 1, &end, 10);
	if (errno || strcmp(end, "\"") != 0 || v > UINT_MAX)
		return;
	if (v > m->generation_seen)
		m->generation_seen = (unsigned)v;
}

/* The proxy made the change staged (stage_policy's 0) or not (1): put
 * the file in place.  false with err when it is not saved. */
static bool saved(const struct fb_managed *m, int staged, char *err,
		  size_t errsize)
{
	if (staged) {
		snprintf(err, errsize, "the daemon could not merge the patch "
			 "the proxy applied");
		return false;
	}
	return commit_file(m->policy_path, err, errsize) == 0;
}

static void forward_policy(struct fb_client *c, struct fb_managed *m,
			   const struct fb_http_req *req, const char *body,
			   size_t len)
{
	bool get = slice_is(&req->method, "GET");
	bool patch = slice_is(&req->method, "PATCH");
	char head[4096], type[128] = "text/plain", extra[160] = "", etag[96];
	char err[512], list[1024], nlist[1024], *resp, *rbody;
	const char *im, *inm;
	bool too_long, inm_too_long;
	size_t rlen;
	int n, status, staged = 1;

	if (!get && !patch && !slice_is(&req->method, "PUT")) {
		fb_client_respond(c, 405, "text/plain; charset=utf-8",
				  "Allow: GET, PUT, PATCH\r\n",
				  "method not allowed\n", 19);
		return;
	}
	im = field_list(req, "if-match", list, sizeof list, &too_long);
	inm = field_list(req, "if-none-match", nlist, sizeof nlist,
			 &inm_too_long);
	if (too_long || inm_too_long) {
		fb_client_error(c, 400, "%s: longer than %zu bytes in all",
				too_long ? "If-Match" : "If-None-Match",
				sizeof list - 1);
		return;
	}
	if (m->launch.proxy < 0) {
		fb_client_error(c, 503, "sandbox %s: its proxy is restarting; "
				"try again", m->st.id);
		return;
	}
	/* a change that cannot be saved is not made: a proxy restarted
	 * later would bring back the policy before it */
	if (!get && (staged = stage_policy(fb_client_daemon(c), m, patch, body,
					    len, err, sizeof err)) < 0) {
		fb_client_error(c, 500, "sandbox %s: the policy cannot be "
				"saved, so it was not changed: %s", m->st.id,
				err);
		return;
	}
	/* the proxy's audit line names our client, not just us */
	n = snprintf(head, sizeof head, "%s /policy HTTP/1.1\r\nHost: "
		     "firebreak\r\nConnection: close\r\n%s%s%s%s%s%s"
		     "Firebreak-On-Behalf-Of: uid=%u pid=%d\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     get ? "GET" : patch ? "PATCH" : "PUT",
		     im ? "If-Match: " : "", im ? im : "", im ? "\r\n" : "",
		     inm ? "If-None-Match: " : "", inm ? inm : "",
		     inm ? "\r\n" : "",
		     (unsigned)fb_client_peer(c)->uid,
		     (int)fb_client_peer(c)->pid, get ? 0 : len);
	resp = control_call(m, head, (size_t)n, body, get ? 0 : len, &rlen,
			    err, sizeof err);
	rbody = resp ? strstr(resp, "\r\n\r\n") : NULL;
	if (!rbody || sscanf(resp, "HTTP/1.1 %d", &status) != 1) {
		if (!staged)
			drop_staged(m->policy_path);
		if (resp)
			snprintf(err, sizeof err, "no valid answer from its proxy");
		fb_client_error(c, 502, "sandbox %s: %s", m->st.id, err);
		free(resp);
		return;
	}
	rbody += 4;
	head_field(resp, (size_t)(rbody - resp), "Content-Type", type,
		   sizeof type);
	if (head_field(resp, (size_t)(rbody - resp), "ETag", etag, sizeof etag)) {
		snprintf(extra, sizeof extra, "ETag: %s\r\n", etag);
		note_generation(m, etag);
	}
	if (!get && status / 100 != 2 && !staged)
		drop_staged(m->policy_path);
	if (!get && status / 100 == 2 && !saved(m, staged, err, sizeof err)) {
		/* in force, not saved: the client must know */
		fprintf(stderr, "firebreak-vmhost: sandbox %s: %s\n", m->st.id,
			err);
		fb_client_error(c, 500, "sandbox %s: the policy is in force but "
				"was not saved (a restarted proxy would bring "
				"back the one before): %s", m->st.id, err);
	} else {
		fb_client_respond(c, status, type, extra, rbody,
				  rlen - (size_t)(rbody - resp));
	}
	free(resp);
}

/* ---- the audit log ------------------------------------------------------ */

struct follow {
	char id[FB_SANDBOX_ID_MAX + 1];
	char path[PATH_MAX + 32];
	off_t off;
	ino_t ino; /* of the file `off` is in */
};

/*
 * New bytes of the log since the last tick; nonzero ends the stream.  The
 * guest decides how fast the log grows, and a follower that stops
 * reading (a paused pipe) must not have the daemon hold all of it: past
 * FOLLOW_QUEUED_MAX unsent, the rest waits in the file for a later tick.
 */
static int follow_tick(struct fb_client *c, void *arg)
{
	struct follow *fw = arg;
	char buf[65536];
	struct stat st;
	ssize_t n;
	int fd;

	if (!fb_api_find(fb_client_daemon(c), fw->id))
		return 1; /* removed: the log is gone with it */
	fd = open(fw->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* rotated (a new file) or truncated in place (copytruncate): the
	 * new lines start at its beginning */
	if (fstat(fd, &st) == 0 && (st.st_ino != fw->ino || st.st_size < fw->off)) {
		fw->ino = st.st_ino;
		fw->off = 0;
	}
	while (fb_client_queued(c) < FOLLOW_QUEUED_MAX &&
	       (n = pread(fd, buf, sizeof buf, fw->off)) > 0) {
		fw->off += n;
		if (fb_client_stream(c, buf, (size_t)n) < 0) {
			close(fd);
			return -1; /* the client is gone; so is fw */
		}
	}
	close(fd);
	return 0;
}

static void logs(struct fb_client *c, struct fb_managed *m,
		 const struct fb_http_req *req)
{
	bool follow = slice_is(&req->query, "follow=1");
	struct follow *fw;
	char *buf = NULL;
	ssize_t n = 0;
	struct stat st;
	int fd;

	if (!slice_is(&req->method, "GET")) {
		fb_client_respond(c, 405, "text/plain; charset=utf-8",
				  "Allow: GET\r\n", "method not allowed\n", 19);
		return;
	}
	if (req->query.ptr && !follow && !slice_is(&req->query, "follow=0")) {
		fb_client_error(c, 400, "query: expected follow=1 or nothing");
		return;
	}
	if (follow) {
		fw = calloc(1, sizeof *fw);
		if (!fw || fb_client_stream_begin(c, "application/x-ndjson") < 0) {
			free(fw);
			fb_client_error(c, 500, "out of memory");
			return;
		}
		snprintf(fw->id, sizeof fw->id, "%s", m->st.id);
		snprintf(fw->path, sizeof fw->path, "%s", m->audit_path);
		fb_client_follow(c, FOLLOW_MS, follow_tick, fw);
		follow_tick(c, fw);
		return;
	}
	fd = open(m->audit_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size <= LOG_MAX &&
	    (buf = malloc((size_t)st.st_size + 1)))
		n = read(fd, buf, (size_t)st.st_size);
	if (fd >= 0)
		close(fd);
	if (fd >= 0 && (!buf || n < 0)) {
		fb_client_error(c, 500, "sandbox %s: cannot read %s", m->st.id,
				m->audit_path);
	} else {
		fb_client_respond(c, 200, "application/x-ndjson", NULL,
				  buf ? buf : "", buf ? (size_t)n : 0);
	}
	free(buf);
}

/* ---- routing ------------------------------------------------------------ */

void fb_api_handle(struct fb_client *c, const struct fb_http_req *req,
		   const char *body, size_t len)
{
	struct fb_daemon *d = fb_client_daemon(c);
	const struct fb_http_slice *p = &req->path;
	const char *rest, *slash;
	char id[FB_SANDBOX_ID_MAX + 1];
	struct fb_managed *m;
	size_t idlen;

	if (slice_is(p, "/sandboxes")) {
		if (slice_is(&req->method, "POST"))
			create(c, body, len);
		else if (slice_is(&req->method, "GET"))
			answer_json(c, 200, NULL);
		else
			fb_client_respond(c, 405, "text/plain; charset=utf-8",
					  "Allow: GET, POST\r\n",
					  "method not allowed\n", 19);
		return;
	}
	if (p->len <= 11 || memcmp(p->ptr, "/sandboxes/", 11)) {
		fb_client_error(c, 404, "no such resource");
		return;
	}
	rest = p->ptr + 11;
	slash = memchr(rest, '/', p->len - 11);
	idlen = slash ? (size_t)(slash - rest) : p->len - 11;
	if (idlen == 0 || idlen > FB_SANDBOX_ID_MAX) {
		fb_client_error(c, 404, "no such sandbox");
		return;
	}
	memcpy(id, rest, idlen);
	id[idlen] = '\0';
	m = fb_api_find(d, id);
	if (!m) {
		fb_client_error(c, 404, "no such sandbox: %s", id);
		return;
	}
	if (!slash) {
		if (slice_is(&req->method, "GET")) {
			answer_json(c, 200, m);
		} else if (slice_is(&req->method, "DELETE")) {
			fb_api_remove(d, m);
			fb_client_respond(c, 200, "application/json", NULL,
					  "{\"removed\":true}\n", 17);
		} else {
			fb_client_respond(c, 405, "text/plain; charset=utf-8",
					  "Allow: GET, DELETE\r\n",
					  "method not allowed\n", 19);
		}
		return;
	}
	if (slice_is(&(struct fb_http_slice){ slash, p->ptr + p->len - slash },
		     "/policy"))
		forward_policy(c, m, req, body, len);
	else if (slice_is(&(struct fb_http_slice){ slash,
						    p->ptr + p->len - slash },
			  "/logs"))
		logs(c, m, req);
	else
		fb_client_error(c, 404, "no such resource");
}
