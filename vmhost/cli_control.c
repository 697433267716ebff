/*
 * cli_control.c — `firebreak policy get|set|patch SANDBOX [FILE]`: the
 * policy of a running sandbox, through its proxy's control socket
 * (<state dir>/<id>/control.sock).  A thin HTTP/1.1 client: the proxy
 * does the validation, and its answer is printed as it comes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/fdio.h"
#include "vmhost/proxy_start.h"
#include "vmhost/sandbox.h"
#include "vmhost/vmhost.h"

#define BODY_MAX (16 * 1024 * 1024)

static const char usage[] =
	"usage: firebreak policy get SANDBOX [--state-dir DIR]\n"
	"       firebreak policy set SANDBOX FILE [--if-match GENERATION] [--state-dir DIR]\n"
	"       firebreak policy patch SANDBOX FILE [--if-match GENERATION] [--state-dir DIR]\n"
	"\n"
	"   (each also takes --socket PATH: through firebreak-vmhost's socket instead)\n"
	"\n"
	"get prints the policy in force (secrets redacted), and its generation on\n"
	"stderr; set replaces it with FILE (YAML or JSON, - for stdin); patch\n"
	"merges FILE into it as an RFC 7396 JSON merge patch.  Both answer once\n"
	"the new policy is enforced and say how many connections it closed.\n"
	"--if-match refuses the change when the policy in force is no longer that\n"
	"generation (the one get printed).  A sandbox of firebreak-vmhost\n"
	"is best changed through its --socket: the daemon then keeps the change for\n"
	"the proxy it may have to restart.\n";

/* The whole of a file or stdin, NUL-terminated; NULL after a message. */
static char *read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f) {
		fprintf(stderr, "firebreak policy: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - n < 4096) {
			char *grown;

			cap = cap ? cap * 2 : 8192;
			grown = cap <= BODY_MAX + 1 ? realloc(buf, cap) : NULL;
			if (!grown) {
				fprintf(stderr, "firebreak policy: %s: over %d bytes\n",
					path, BODY_MAX);
				goto fail;
			}
			buf = grown;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);

		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "firebreak policy: %s: read error\n", path);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	if (f != stdin)
		fclose(f);
	free(buf);
	return NULL;
}

static int connect_control(const char *path)
{
	int fd = fb_unix_connect(path);

	if (fd < 0 && errno == ENAMETOOLONG)
		fprintf(stderr, "firebreak policy: %s: path too long\n", path);
	else if (fd < 0)
		fprintf(stderr, "firebreak policy: %s: %s (is the sandbox running?)\n",
			path, strerror(errno));
	return fd;
}

void fb_print_named(FILE *out, const char *text, const char *stand_in,
		    const char *file)
{
	size_t n = strlen(stand_in);

	for (const char *p = text, *hit; *p; p = hit + n) {
		hit = strstr(p, stand_in);
		if (!hit) {
			fputs(p, out);
			return;
		}
		fwrite(p, 1, (size_t)(hit - p), out);
		if (hit[n] == ':')
			fputs(file, out);
		else
			fwrite(hit, 1, n, out);
	}
}

/*
 * Read the response to EOF (the proxy closes after one), print its body
 * to stdout on success or stderr on failure, and with `generation` its
 * ETag's generation on stderr; the exit status.  `file` is the policy
 * sent, which the proxy's messages call `stand_in`; `server` who
 * answered.
 */
static int print_response(int fd, bool generation, const char *stand_in,
			  const char *file, const char *server)
{
	char *buf = NULL, *body;
	size_t cap = 0, n = 0;
	int status = 0;

	for (;;) {
		ssize_t got;

		if (cap - n < 4096) {
			char *grown = realloc(buf, cap = cap ? cap * 2 : 16384);

			if (!grown) {
				free(buf);
				fprintf(stderr, "firebreak policy: out of memory\n");
				return 1;
			}
			buf = grown;
		}
		got = recv(fd, buf + n, cap - n - 1, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	if (buf)
		buf[n] = '\0';
	body = buf ? strstr(buf, "\r\n\r\n") : NULL;
	if (!body || sscanf(buf, "HTTP/1.1 %d", &status) != 1) {
		fprintf(stderr, "firebreak policy: no valid answer from the proxy\n");
		free(buf);
		return 1;
	}
	body += 4;
	/* the generation, for --if-match, where the policy's text is not */
	for (const char *h = strstr(buf, "\r\n"); generation && h && h + 2 < body;
	     h = strstr(h + 2, "\r\n"))
		if (!strncasecmp(h + 2, "ETag: \"", 7))
			fprintf(stderr, "generation %.*s\n",
				(int)strcspn(h + 9, "\"\r"), h + 9);
	if (status / 100 == 2)
		fputs(body, stdout);
	else if (file)
		fb_print_named(stderr, body, stand_in, file);
	else
		fputs(body, stderr);
	if (status / 100 != 2)
		fprintf(stderr, "firebreak policy: %s answered %d\n", server,
			status);
	free(buf);
	return status / 100 == 2 ? 0 : 1;
}

int fb_cmd_policy_remote(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "if-match", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = argv[0], *state_dir = FB_STATE_DIR, *if_match = NULL;
	const char *daemon = NULL;
	char target[64];
	bool get = strcmp(cmd, "get") == 0;
	char sock[512], head[1024], *body = NULL;
	size_t body_len = 0;
	int c, fd, rc, n;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': state_dir = optarg; break;
		case 'm': if_match = optarg; break;
		case 'S': daemon = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (argc - optind != (get ? 1 : 2)) {
		fprintf(stderr, "firebreak policy %s: expected SANDBOX%s\n", cmd,
			get ? "" : " and FILE");
		fputs(usage, stderr);
		return 2;
	}
	if (if_match && strspn(if_match, "0123456789") != strlen(if_match)) {
		fprintf(stderr, "firebreak policy %s: --if-match \"%s\": expected a generation number\n",
			cmd, if_match);
		return 2;
	}
	if (!fb_sandbox_id_valid(argv[optind])) {
		fprintf(stderr, "firebreak policy %s: \"%s\" is not a sandbox id\n",
			cmd, argv[optind]);
		return 2;
	}
	if (daemon) {
		snprintf(sock, sizeof(sock), "%s", daemon);
		snprintf(target, sizeof(target), "/sandboxes/%s/policy", argv[optind]);
	} else if (fb_control_sock_path(state_dir, argv[optind], sock, sizeof(sock)) < 0) {
		fprintf(stderr, "firebreak policy %s: --state-dir too long\n", cmd);
		return 2;
	} else {
		snprintf(target, sizeof(target), "/policy");
	}
	if (!get && !(body = read_all(argv[optind + 1], &body_len)))
		return 1;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: firebreak\r\nConnection: close\r\n"
		     "%s%s%s"
		     "Content-Length: %zu\r\n\r\n",
		     get ? "GET" : strcmp(cmd, "set") == 0 ? "PUT" : "PATCH", target,
		     if_match ? "If-Match: \"" : "", if_match ? if_match : "",
		     if_match ? "\"\r\n" : "", body_len);
	fd = connect_control(sock);
	if (fd < 0) {
		free(body);
		return 1;
	}
	if (fb_write_all(fd, head, (size_t)n) < 0 ||
	    (body_len && fb_write_all(fd, body, body_len) < 0)) {
		fprintf(stderr, "firebreak policy %s: %s: %s\n", cmd, sock,
			strerror(errno));
		rc = 1;
	} else {
		rc = print_response(fd, get,
				    strcmp(cmd, "patch") ? "<body>" : "<patch>",
				    get ? NULL : strcmp(argv[optind + 1], "-") ?
				    argv[optind + 1] : "<stdin>",
				    daemon ? "firebreak-vmhost" : "the proxy");
	}
	close(fd);
	free(body);
	return rc;
}
