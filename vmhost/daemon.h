/*
 * daemon.h — firebreak-vmhost, the long-running launcher; internal to
 * vmhost/.
 *
 *   daemon.c     the unix socket: accept (peer root or our uid), read one
 *                HTTP/1.1 request, answer, close
 *   api.c        the routes under /sandboxes
 *   supervise.c  SIGCHLD: restart a dead proxy, record a guest's exit
 *   state.c      <state dir>/<id>/state.json, written atomically; the
 *                audit logs kept after their sandbox
 *   recover.c    at start: remove what a previous daemon left
 *   json.c       JSON out (escaped strings) and in (policy/doc.h trees)
 */
#ifndef FB_VMHOST_DAEMON_H
#define FB_VMHOST_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "proxy/accept_pause.h"
#include "proxy/http.h"
#include "proxy/loop.h"
#include "vmhost/launch.h"

#define FB_VMHOST_SOCKET "/run/firebreak/vmhost.sock"
#define FB_STATE_FILE "state.json"
#define FB_POLICY_FILE "policy.current" /* the policy in force, as text */
#define FB_AUDIT_FILE "audit.log"
/* <state dir>/audit.d/<id>.<UTC time>.log: a removed sandbox's audit log.
 * The '.' keeps the name from ever being a sandbox id. */
#define FB_AUDIT_KEPT_DIR "audit.d"
/* Held by the daemon that owns the state directory: a second one would
 * take the first one's live sandboxes for remains and remove them. */
#define FB_DAEMON_LOCK "vmhost.lock"
#define FB_MAX_PUBLICS 64
/* <state dir>/<id>/control.sock must fit a unix socket address */
#define FB_STATE_DIR_MAX 80

enum fb_sbx_status { FB_SBX_RUNNING, FB_SBX_STOPPED, FB_SBX_FAILED };

/* What a state file holds: enough to find and remove everything. */
struct fb_state {
	char id[FB_SANDBOX_ID_MAX + 1];
	char backend[16];
	enum fb_sbx_status status;
	int exit_status;            /* -1 while running */
	char netns[16];             /* fb-<id> */
	char table[32];             /* firebreak-<id>, launcher's namespace */
	unsigned slot;
	pid_t proxy, guest;         /* 0: none */
	unsigned long long proxy_start, guest_start; /* /proc starttime */
};

/* One sandbox the daemon owns. */
struct fb_managed {
	struct fb_managed *next;
	struct fb_launch launch;
	struct fb_state st;
	char dir[PATH_MAX];         /* <state dir>/<id> */
	char policy_path[PATH_MAX + 32];
	char audit_path[PATH_MAX + 32];
	char **argv, **env;         /* owned, NULL-terminated */
	char *image;                /* a VM backend's guest directory */
	unsigned vcpus, memory_mib;
	unsigned proxy_restarts;
	/* The highest generation an ETag passed on has named: a restarted
	 * proxy counts on from the next, so no tag from before matches. */
	unsigned generation_seen;
};

struct fb_daemon {
	struct fb_loop *loop;
	const char *state_dir;
	const char *socket_path;
	const char *resolver;
	struct fb_cidr publics[FB_MAX_PUBLICS];
	size_t npublics;
	int listen_fd, sig_fd;
	int lock_fd;                /* FB_DAEMON_LOCK's, -1 when not held */
	char lock_path[PATH_MAX];
	struct fb_accept_pause pause; /* of listen_fd, out of descriptors */
	struct fb_managed *sandboxes;
	struct fb_client *clients;
	struct fb_timer *retry;     /* the next round of proxy restarts */
	unsigned retry_ms;          /* its delay, doubled while they fail */
};

/* daemon.c */
struct fb_client;
/* Take the state directory's lock; -1 with err when another daemon holds
 * it.  fb_daemon_unlock removes the file and lets go. */
int fb_daemon_lock(struct fb_daemon *d, char *err, size_t errsize);
void fb_daemon_unlock(struct fb_daemon *d);
/* Listen on d->socket_path, unless a daemon already answers there. */
int fb_daemon_listen(struct fb_daemon *d, char *err, size_t errsize);
void fb_daemon_close(struct fb_daemon *d);
/* A complete response with Content-Length; `extra` header lines end in
 * CRLF.  The client is closed once it is sent. */
void fb_client_respond(struct fb_client *c, int status, const char *type,
		       const char *extra, const char *body, size_t len);
void fb_client_error(struct fb_client *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Begin a body of unknown length (Connection: close); then stream. */
int fb_client_stream_begin(struct fb_client *c, const char *type);
int fb_client_stream(struct fb_client *c, const char *p, size_t len);
/* Bytes queued for the client and not yet sent. */
size_t fb_client_queued(const struct fb_client *c);
/* Call fn every `ms` while it returns 0: 1 ends the answer and closes
 * the client, -1 says the client was closed already (a failed send).
 * arg is malloc'd and freed with the client. */
typedef int fb_client_tick_fn(struct fb_client *c, void *arg);
void fb_client_follow(struct fb_client *c, unsigned ms,
		      fb_client_tick_fn *fn, void *arg);
void fb_client_close(struct fb_client *c);
struct fb_daemon *fb_client_daemon(struct fb_client *c);
/* The client's credentials, from the socket (SO_PEERCRED). */
const struct ucred *fb_client_peer(const struct fb_client *c);

/* api.c: route one request; answers through the client. */
void fb_api_handle(struct fb_client *c, const struct fb_http_req *req,
		   const char *body, size_t body_len);
struct fb_managed *fb_api_find(struct fb_daemon *d, const char *id);
/* Stop and remove a sandbox completely, files included. */
void fb_api_remove(struct fb_daemon *d, struct fb_managed *m);

/* supervise.c */
int fb_supervise_start(struct fb_daemon *d, char *err, size_t errsize);
/* The state file after a change; failures go to stderr. */
void fb_managed_save(struct fb_managed *m);

/* state.c */
int fb_state_write(const char *path, const struct fb_state *s, char *err,
		   size_t errsize);
int fb_state_read(const char *path, struct fb_state *s, char *err,
		  size_t errsize);
const char *fb_sbx_status_str(enum fb_sbx_status s);
/* Move <dir>/audit.log of sandbox `id` to FB_AUDIT_KEPT_DIR, where it
 * outlives the sandbox (a proxy still writing goes on into it); failures
 * go to stderr. */
void fb_audit_keep(const char *state_dir, const char *dir, const char *id);
/* Field 22 of /proc/PID/stat: with the pid, names one process for good;
 * 0 when there is no such process. */
unsigned long long fb_proc_starttime(pid_t pid);

/* recover.c: every sandbox a previous daemon left under the state dir is
 * removed (its processes died with that daemon). */
void fb_recover(struct fb_daemon *d);

/* json.c */
void fb_json_put_str(FILE *f, const char *s);
void fb_json_put_strv(FILE *f, char *const *v);
struct fb_node;
/* Any JSON value, or NULL with "LINE:COL: problem" in err (the first
 * problem: a duplicate key is one). */
struct fb_node *fb_json_parse(const char *text, size_t len, char *err,
			      size_t errsize);
void fb_json_free(struct fb_node *n);

#endif /* FB_VMHOST_DAEMON_H */
