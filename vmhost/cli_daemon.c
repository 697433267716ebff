/*
 * cli_daemon.c — `firebreak create|ls|rm|logs`: the command line of
 * firebreak-vmhost, one HTTP/1.1 request each on its unix socket.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "policy/doc.h"
#include "proxy/fdio.h"
#include "vmhost/daemon.h"
#include "vmhost/vmhost.h"

#define FILE_MAX (16 * 1024 * 1024)

struct reply {
	int status;
	char *body;  /* NUL-terminated */
	size_t len;
};

static int connect_daemon(const char *cmd, const char *path)
{
	int fd = fb_unix_connect(path);

	if (fd < 0 && errno == ENAMETOOLONG)
		fprintf(stderr, "firebreak %s: --socket %s: path too long\n",
			cmd, path);
	else if (fd < 0)
		fprintf(stderr, "firebreak %s: %s: %s (is firebreak-vmhost "
			"running?)\n", cmd, path, strerror(errno));
	return fd;
}

/*
 * Send one request and read the answer.  With `stream` set the body is
 * copied to stdout as it arrives until the daemon ends it; otherwise it
 * is read up to its Content-Length into r.  0, or -1 after a message.
 */
static int request(const char *cmd, const char *sock, const char *method,
		   const char *target, const char *body, size_t body_len,
		   bool stream, struct reply *r)
{
	char head[1024], *buf = NULL, *end = NULL;
	size_t len = 0, cap = 0, want = (size_t)-1;
	int fd, n;

	memset(r, 0, sizeof *r);
	n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: firebreak\r\n"
		     "Connection: close\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n", method, target, body_len);
	fd = connect_daemon(cmd, sock);
	if (fd < 0)
		return -1;
	if (fb_write_all(fd, head, (size_t)n) < 0 ||
	    (body_len && fb_write_all(fd, body, body_len) < 0)) {
		fprintf(stderr, "firebreak %s: %s: %s\n", cmd, sock,
			strerror(errno));
		goto fail;
	}
	for (;;) {
		ssize_t got;

		/* a stream has no length; an error answer to one does */
		if (end && (len >= want || (stream && want == (size_t)-1)))
			break;
		if (cap - len < 4096) {
			char *grown = realloc(buf, cap = cap ? 2 * cap : 16384);

			if (!grown)
				goto nomem;
			buf = grown;
		}
		got = recv(fd, buf + len, cap - len - 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
		buf[len] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			end += 4;
			if (cl && cl < end)
				want = (size_t)(end - buf) +
				       strtoul(cl + 17, NULL, 10);
		}
	}
	if (!end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) {
		fprintf(stderr, "firebreak %s: no valid answer from %s\n", cmd,
			sock);
		goto fail;
	}
	if (stream && want == (size_t)-1) {
		fwrite(end, 1, len - (size_t)(end - buf), stdout);
		fflush(stdout);
		while ((n = (int)recv(fd, head, sizeof head, 0)) > 0 ||
		       (n < 0 && errno == EINTR))
			if (n > 0 && (fwrite(head, 1, (size_t)n, stdout) != (size_t)n ||
				      fflush(stdout) != 0))
				break; /* stdout closed: stop following */
		len = (size_t)(end - buf);
	}
	if (want != (size_t)-1 && len > want)
		len = want;
	r->len = len - (size_t)(end - buf);
	memmove(buf, end, r->len);
	buf[r->len] = '\0';
	r->body = buf;
	close(fd);
	return 0;
nomem:
	fprintf(stderr, "firebreak %s: out of memory\n", cmd);
fail:
	close(fd);
	free(buf);
	return -1;
}

/* An answer that is not 2xx: its body (the daemon's message) on stderr,
 * with the policy `file` named where the daemon says "<policy>". */
static int check_named(const char *cmd, struct reply *r, const char *file)
{
	if (r->status / 100 == 2)
		return 0;
	fprintf(stderr, "firebreak %s: ", cmd);
	fb_print_named(stderr, r->body, "<policy>", file ? file : "<policy>");
	if (!r->len || r->body[r->len - 1] != '\n')
		fputc('\n', stderr);
	return -1;
}

static int check(const char *cmd, struct reply *r)
{
	return check_named(cmd, r, NULL);
}

static char *read_file(const char *cmd, const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = f ? malloc(FILE_MAX + 1) : NULL;
	size_t n = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;

	if (!f || !buf || ferror(f) || n > FILE_MAX) {
		fprintf(stderr, "firebreak %s: --policy %s: %s\n", cmd, path,
			!f ? strerror(errno) : n > FILE_MAX ? "too large" :
			"cannot read");
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* A number as written; anything else as a string, which the daemon
 * refuses naming the field. */
static void put_number(FILE *f, const char *key, const char *v, bool comma)
{
	if (!v)
		return;
	fprintf(f, "%s\"%s\":", comma ? "," : "", key);
	if (*v && strspn(v, "0123456789") == strlen(v) && strlen(v) < 10)
		fputs(v, f);
	else
		fb_json_put_str(f, v);
}

/* ---- create ----------------------------------------------------------- */

static const char create_usage[] =
	"usage: firebreak create [--socket PATH] [--id ID] "
	"[--policy FILE|allow-all|deny-all]\n"
	"                        [--backend process|qemu|firecracker] "
	"[--image FILE] [--jailer PATH]\n"
	"                        [--user NAME|UID] [--env NAME=VALUE]... "
	"[--vcpus N] [--memory-mib N]\n"
	"                        -- COMMAND [ARG]...\n"
	"\n"
	"Asks firebreak-vmhost for a sandbox running COMMAND under the policy "
	"(default\ndeny-all) and prints its id.\n";

static int cmd_create(int argc, char **argv, const char *sock)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "id", required_argument, NULL, 'i' },
		{ "policy", required_argument, NULL, 'p' },
		{ "backend", required_argument, NULL, 'b' },
		{ "image", required_argument, NULL, 'I' },
		{ "jailer", required_argument, NULL, 'J' },
		{ "user", required_argument, NULL, 'u' },
		{ "env", required_argument, NULL, 'e' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "memory-mib", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *id = NULL, *policy = NULL, *backend = NULL, *image = NULL;
	const char *user = NULL, *vcpus = NULL, *memory = NULL, *jailer = NULL;
	char **envs = calloc((size_t)argc + 1, sizeof *envs);
	char *text = NULL, *body = NULL, image_abs[PATH_MAX];
	size_t nenv = 0, len = 0;
	struct reply r = { 0 };
	FILE *f;
	int c, rc = 1;

	if (!envs)
		return 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'S': sock = optarg; break;
		case 'i': id = optarg; break;
		case 'p': policy = optarg; break;
		case 'b': backend = optarg; break;
		case 'I': image = optarg; break;
		case 'J': jailer = optarg; break;
		case 'u': user = optarg; break;
		case 'c': vcpus = optarg; break;
		case 'm': memory = optarg; break;
		case 'e':
			if (!strchr(optarg, '=')) {
				fprintf(stderr, "firebreak create: --env '%s': "
					"expected NAME=VALUE\n", optarg);
				goto usage;
			}
			envs[nenv++] = optarg;
			break;
		case 'h':
			fputs(create_usage, stdout);
			free(envs);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "firebreak create: no COMMAND given\n");
		goto usage;
	}
	if (policy && strcmp(policy, "allow-all") && strcmp(policy, "deny-all") &&
	    !(text = read_file("create", policy)))
		goto out;
	/* the daemon works from "/": a relative --image is the caller's */
	if (image && fb_path_absolute(image, image_abs, sizeof image_abs) < 0) {
		fprintf(stderr, "firebreak create: --image %s: %s\n", image,
			strerror(errno));
		goto out;
	}
	if (image)
		image = image_abs;
	f = open_memstream(&body, &len);
	if (!f)
		goto out;
	fputc('{', f);
	fputs("\"command\":", f);
	fb_json_put_strv(f, argv + optind);
	if (id) {
		fputs(",\"id\":", f);
		fb_json_put_str(f, id);
	}
	if (policy) {
		fputs(",\"policy\":", f);
		fb_json_put_str(f, text ? text : policy);
	}
	if (backend) {
		fputs(",\"backend\":", f);
		fb_json_put_str(f, backend);
	}
	if (image) {
		fputs(",\"image\":", f);
		fb_json_put_str(f, image);
	}
	if (jailer) {
		fputs(",\"jailer\":", f);
		fb_json_put_str(f, jailer);
	}
	if (user) {
		fputs(",\"user\":", f);
		fb_json_put_str(f, user);
	}
	if (nenv) {
		fputs(",\"env\":{", f);
		for (size_t i = 0; i < nenv; i++) {
			char *eq = strchr(envs[i], '=');

			*eq = '\0';
			fputs(i ? "," : "", f);
			fb_json_put_str(f, envs[i]);
			fputc(':', f);
			fb_json_put_str(f, eq + 1);
			*eq = '=';
		}
		fputc('}', f);
	}
	if (vcpus || memory) {
		fputs(",\"resources\":{", f);
		put_number(f, "vcpus", vcpus, false);
		put_number(f, "memory_mib", memory, vcpus != NULL);
		fputc('}', f);
	}
	fputs("}", f);
	if (fclose(f) != 0)
		goto out;
	if (request("create", sock, "POST", "/sandboxes", body, len, false,
		    &r) < 0 || check_named("create", &r, text ? policy : NULL) < 0)
		goto out;
	{
		char err[256];
		struct fb_node *doc = fb_json_parse(r.body, r.len, err,
						    sizeof err);
		const struct fb_node *n = doc && doc->kind == FB_NODE_MAP ?
					  fb_node_get(doc, "id") : NULL;

		if (n && n->kind == FB_NODE_SCALAR) {
			printf("%s\n", n->text);
			rc = 0;
		} else {
			fprintf(stderr, "firebreak create: unexpected answer: "
				"%s", r.body);
		}
		fb_json_free(doc);
	}
	goto out;
usage:
	fputs(create_usage, stderr);
	rc = 2;
out:
	free(r.body);
	free(body);
	free(text);
	free(envs);
	return rc;
}

/* ---- ls, rm, logs ------------------------------------------------------ */

static const char *field(const struct fb_node *map, const char *key)
{
	const struct fb_node *n = fb_node_get(map, key);

	return n && n->kind == FB_NODE_SCALAR ? n->text : "-";
}

static int print_list(const struct reply *r)
{
	struct fb_node *doc;
	char err[256];

	doc = fb_json_parse(r->body, r->len, err, sizeof err);
	if (!doc || doc->kind != FB_NODE_SEQ) {
		fprintf(stderr, "firebreak ls: unexpected answer: %s", r->body);
		fb_json_free(doc);
		return 1;
	}
	printf("%-12s %-8s %-8s %-7s %-7s %-4s %s\n", "ID", "BACKEND", "STATUS",
	       "PROXY", "GUEST", "EXIT", "COMMAND");
	for (size_t i = 0; i < doc->n; i++) {
		const struct fb_node *s = doc->vals[i];
		const struct fb_node *pids = fb_node_get(s, "pids");
		const struct fb_node *cmd = fb_node_get(s, "command");
		const char *ex = field(s, "exit_status");

		printf("%-12s %-8s %-8s %-7s %-7s %-4s", field(s, "id"),
		       field(s, "backend"), field(s, "status"),
		       pids ? field(pids, "proxy") : "-",
		       pids ? field(pids, "guest") : "-", ex);
		for (size_t j = 0; cmd && cmd->kind == FB_NODE_SEQ && j < cmd->n;
		     j++)
			printf(" %s", cmd->vals[j]->text);
		putchar('\n');
	}
	fb_json_free(doc);
	return 0;
}

static const char daemon_usage[] =
	"usage: firebreak ls [--socket PATH]\n"
	"       firebreak rm [--socket PATH] ID...\n"
	"       firebreak logs [--socket PATH] [--follow] ID\n"
	"\n"
	"ls lists firebreak-vmhost's sandboxes; rm stops sandboxes and removes "
	"everything\nthey held; logs prints a sandbox's audit log, and with "
	"--follow keeps printing\nnew lines.  The socket defaults to "
	FB_VMHOST_SOCKET ".\n";

int fb_cmd_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = argv[0], *sock = FB_VMHOST_SOCKET;
	char target[128];
	struct reply r;
	bool follow = false;
	int c, rc = 0, nargs;

	if (!strcmp(cmd, "create")) {
		optind = 1;
		return cmd_create(argc, argv, sock);
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'S': sock = optarg; break;
		case 'f': follow = true; break;
		case 'h': fputs(daemon_usage, stdout); return 0;
		default: fputs(daemon_usage, stderr); return 2;
		}
	}
	nargs = argc - optind;
	if ((!strcmp(cmd, "ls") && nargs != 0) ||
	    (!strcmp(cmd, "rm") && nargs < 1) ||
	    (!strcmp(cmd, "logs") && nargs != 1) ||
	    (follow && strcmp(cmd, "logs"))) {
		fputs(daemon_usage, stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++)
		if (!fb_sandbox_id_valid(argv[i])) {
			fprintf(stderr, "firebreak %s: \"%s\" is not a sandbox "
				"id\n", cmd, argv[i]);
			return 2;
		}
	if (!strcmp(cmd, "ls")) {
		if (request(cmd, sock, "GET", "/sandboxes", NULL, 0, false,
			    &r) < 0)
			return 1;
		rc = check(cmd, &r) < 0 ? 1 : print_list(&r);
		free(r.body);
		return rc;
	}
	if (!strcmp(cmd, "logs")) {
		snprintf(target, sizeof target, "/sandboxes/%s/logs%s",
			 argv[optind], follow ? "?follow=1" : "");
		if (request(cmd, sock, "GET", target, NULL, 0, follow, &r) < 0)
			return 1;
		if (check(cmd, &r) < 0)
			rc = 1;
		else
			fwrite(r.body, 1, r.len, stdout);
		free(r.body);
		return rc;
	}
	for (int i = optind; i < argc; i++) {
		snprintf(target, sizeof target, "/sandboxes/%s", argv[i]);
		if (request(cmd, sock, "DELETE", target, NULL, 0, false,
			    &r) < 0) {
			rc = 1;
			continue;
		}
		if (check(cmd, &r) < 0)
			rc = 1;
		free(r.body);
	}
	return rc;
}
