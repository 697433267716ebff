/*
 * cli_policy.c — `firebreak policy check | explain | dump` on policy files,
 * and the hand-off of `get | set | patch` to a running sandbox.
 *
 * Exit status everywhere: 0 done, 1 a policy failed to load (its
 * FILE:LINE:COL diagnostics on stderr), 2 a usage error.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "proxy/broker.h"
#include "vmhost/vmhost.h"

#define MAX_PUBLICS 64
#define MAX_HEADERS 64

static const char check_usage[] =
	"usage: firebreak policy check FILE...\n"
	"\n"
	"Load and validate each policy file.  Prints one summary line per valid\n"
	"file; for an invalid one, every problem as FILE:LINE:COL: message.\n"
	"Exit 0 when all are valid, 1 otherwise.\n";

static const char explain_usage[] =
	"usage: firebreak policy explain FILE HOST [OPTION]...\n"
	"\n"
	"Say what the policy in FILE decides for a connection to HOST (a name,\n"
	"an IP address, or - for traffic without a name) and, on a brokered\n"
	"name, for one request.  Prints one line:\n"
	"  VERDICT key=KEY rule=INDEX reason=REASON [block=BLOCK] [ip=IP] ...\n"
	"where VERDICT is allow, deny, broker, forward or respond, or refuse\n"
	"(with status=CODE) for a request the broker refuses before any rule.\n"
	"The request is read as the broker reads a guest's.\n"
	"\n"
	"  --ip IP          the destination address the guest dialled\n"
	"  --port N         the destination port (shown; policies have no ports)\n"
	"  --method M       request method (default GET when a request is given)\n"
	"  --path P         request target; a query follows the first '?'\n"
	"                   (default /)\n"
	"  --header K:V     a request header; repeatable\n"
	"  --public CIDR    treat a non-public range as public, as the proxy's\n"
	"                   --public does; repeatable\n";

static const char dump_usage[] =
	"usage: firebreak policy dump FILE [--legacy]\n"
	"\n"
	"Print the policy as firebreak reads it back: JSON, secrets shown as\n"
	"<redacted>.  --legacy prints Vercel's read-back shape (mode: custom,\n"
	"allowedDomains, injectionRules, ...).\n";

static const char policy_usage[] =
	"usage: firebreak policy COMMAND [ARGS]...\n"
	"\n"
	"commands:\n"
	"  check FILE...        validate policy files\n"
	"  explain FILE HOST    show the decision for a connection or request\n"
	"  dump FILE            print the redacted read-back\n"
	"  get SANDBOX          a running sandbox's policy\n"
	"  set SANDBOX FILE     replace a running sandbox's policy\n"
	"  patch SANDBOX FILE   merge-patch a running sandbox's policy\n"
	"\n"
	"'firebreak policy COMMAND --help' describes each.\n";

static int usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "firebreak policy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* the usage line alone; --help has the rest */
	fprintf(stderr, "\n%.*s", (int)(strchr(usage, '\n') - usage + 1), usage);
	return 2;
}

/* Load FILE, printing its diagnostics; NULL on failure. */
static struct fb_policy *load(const char *path, const struct fb_load_opts *opts)
{
	struct fb_diags diags = { 0 };
	struct fb_policy *p = fb_policy_load_file(path, opts, &diags);

	if (!p)
		fb_diags_print(&diags, stderr);
	fb_diags_free(&diags);
	return p;
}

static const char *mode_name(enum fb_mode m)
{
	switch (m) {
	case FB_MODE_ALLOW_ALL:
		return "allow-all";
	case FB_MODE_DENY_ALL:
		return "deny-all";
	case FB_MODE_CUSTOM:
		break;
	}
	return "custom";
}

static void print_count(size_t n, const char *what, const char *sep)
{
	printf("%s%zu %s%s", sep, n, what, n == 1 ? "" : "s");
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(check_usage, stdout);
			return 0;
		}
		return usage_error(check_usage, "check: see --help");
	}
	if (optind == argc)
		return usage_error(check_usage, "check: no FILE given");
	for (int i = optind; i < argc; i++) {
		struct fb_load_opts lo = { .filename = argv[i] };
		struct fb_policy_summary s;
		struct fb_policy *p = load(argv[i], &lo);

		if (!p) {
			status = 1;
			continue;
		}
		fb_policy_summarize(p, &s);
		printf("%s: ok: %s", argv[i], mode_name(s.mode));
		if (s.mode == FB_MODE_CUSTOM) {
			print_count(s.domains, "domain", ", ");
			print_count(s.rules, "rule", ", ");
			print_count(s.cidr_allow, "allowed CIDR", ", ");
			print_count(s.cidr_deny, "denied CIDR", ", ");
		}
		putchar('\n');
		fb_policy_unref(p);
	}
	return status;
}

/* ---- explain -------------------------------------------------------- */

struct explain_args {
	const char *file, *host;
	const char *ip, *method, *path;
	long port;
	struct fb_http_header headers[MAX_HEADERS];
	size_t nheaders;
	struct fb_cidr publics[MAX_PUBLICS];
	size_t npublics;
};

static int add_header(struct explain_args *a, const char *kv)
{
	const char *colon = strchr(kv, ':');
	const char *v;

	if (!colon || colon == kv)
		return usage_error(explain_usage,
				   "--header \"%s\": expected NAME:VALUE", kv);
	if (strpbrk(kv, "\r\n"))
		return usage_error(explain_usage,
				   "--header: a CR or LF would make another "
				   "line of the request");
	if (a->nheaders == MAX_HEADERS)
		return usage_error(explain_usage, "too many --header options");
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	a->headers[a->nheaders++] = (struct fb_http_header){
		.name = kv, .name_len = (size_t)(colon - kv),
		.value = v, .value_len = strlen(v),
	};
	return 0;
}

static int parse_explain(int argc, char **argv, struct explain_args *a)
{
	static const struct option opts[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "method", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 'P' },
		{ "header", required_argument, NULL, 'H' },
		{ "public", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	char err[200], *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			a->ip = optarg;
			break;
		case 'p':
			a->port = strtol(optarg, &end, 10);
			if (*end || end == optarg || a->port < 1 || a->port > 65535)
				return usage_error(explain_usage,
						   "--port \"%s\": expected 1-65535", optarg);
			break;
		case 'm':
			a->method = optarg;
			break;
		case 'P':
			a->path = optarg;
			break;
		case 'H':
			if (add_header(a, optarg))
				return 2;
			break;
		case 'u':
			if (a->npublics == MAX_PUBLICS)
				return usage_error(explain_usage,
						   "too many --public options");
			if (fb_cidr_parse(optarg, &a->publics[a->npublics], err,
					  sizeof err) < 0)
				return usage_error(explain_usage, "--public: %s", err);
			a->npublics++;
			break;
		case 'h':
			fputs(explain_usage, stdout);
			return -1;
		default:
			return usage_error(explain_usage, "explain: see --help");
		}
	}
	if (argc - optind != 2)
		return usage_error(explain_usage,
				   "explain: expected FILE and HOST");
	/* the request line is written as given: a space, CR or LF in
	 * either would make it another request */
	if (a->method && strpbrk(a->method, " \t\r\n"))
		return usage_error(explain_usage, "--method \"%s\": a method "
				   "has no white space", a->method);
	if (a->path && strpbrk(a->path, " \t\r\n"))
		return usage_error(explain_usage, "--path: a request target has "
				   "no white space (write a space as %%20)");
	a->file = argv[optind];
	a->host = argv[optind + 1];
	return 0;
}

/*
 * HOST as the proxy would see it: "-" is domain-less, an IP literal is a
 * destination without a name (and the address when --ip is absent), and
 * anything else must normalise as a name.
 */
static int resolve_host(struct explain_args *a, char name[FB_NAME_MAX],
			const char **namep, struct fb_addr *dst, bool *have_dst)
{
	const char *why;
	struct fb_addr literal;

	*namep = NULL;
	*have_dst = false;
	if (a->ip) {
		if (fb_addr_parse(a->ip, dst) < 0)
			return usage_error(explain_usage,
					   "--ip \"%s\": not an IPv4 or IPv6 address",
					   a->ip);
		*have_dst = true;
	}
	if (!strcmp(a->host, "-"))
		return 0;
	if (fb_addr_parse(a->host, &literal) == 0) {
		if (!*have_dst)
			*dst = literal;
		*have_dst = true;
		return 0;
	}
	if (fb_name_normalize(a->host, strlen(a->host), name, &why) < 0) {
		fprintf(stderr, "firebreak policy: \"%s\": %s\n", a->host, why);
		return 2;
	}
	*namep = name;
	return 0;
}

/* d, or (status > 0) the broker's refusal of the request for `why` */
static void print_decision(const struct fb_decision *d,
			   const struct explain_args *a,
			   const struct fb_addr *dst, int status,
			   const char *why)
{
	const struct fb_rule *rule = NULL;
	char ip[64];

	printf("%s key=", status > 0 ? "refuse" : fb_verdict_str(d->verdict));
	if (d->domain)
		printf("\"%s\"", d->domain->pattern);
	else
		putchar('-');
	if (d->rule >= 0) {
		printf(" rule=%d", d->rule);
		rule = &d->domain->rules[d->rule];
	} else {
		printf(" rule=-");
	}
	if (status > 0)
		printf(strchr(why, ' ') ? " reason=\"%s\"" : " reason=%s", why);
	else
		printf(" reason=%s", fb_reason_str(d->reason));
	if (d->block)
		printf(" block=%s", d->block);
	if (dst) {
		fb_addr_format(dst, ip, sizeof ip);
		printf(" ip=%s", ip);
	}
	if (a->port)
		printf(" port=%ld", a->port);
	/* what the rule does, with header names only: never a secret */
	if (rule && d->verdict == FB_VERDICT_BROKER)
		for (size_t i = 0; i < rule->nset; i++)
			printf(" set=%s", rule->set[i].name);
	if (rule && d->verdict == FB_VERDICT_FORWARD)
		printf(" url=%s", rule->forward_url);
	if (rule && d->verdict == FB_VERDICT_RESPOND)
		printf(" status=%d", rule->status);
	if (status > 0)
		printf(" status=%d", status);
	putchar('\n');
}

/* Does a --header give the Host? */
static bool has_host(const struct explain_args *a)
{
	for (size_t i = 0; i < a->nheaders; i++)
		if (fb_header_name_is(a->headers[i].name,
				      a->headers[i].name_len, "host"))
			return true;
	return false;
}

/*
 * The request of --method, --path and --header on a connection to
 * name:port, as the broker reads a guest's: the head they make (with
 * the Host the guest would send, unless a --header gives one), parsed
 * and judged as the broker does (fb_broker_judge).  0 with *d decided,
 * the status of a refusal with *why its reason, or -1 (out of memory).
 */
static int explain_request(const struct explain_args *a, const char *name,
			   struct fb_decision *d, const char **why)
{
	const char *method = a->method ? a->method : "GET";
	uint16_t port = a->port ? (uint16_t)a->port : 443;
	struct fb_http_req *req = malloc(sizeof(*req));
	char *head = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (!req || !(f = open_memstream(&head, &len))) {
		free(req);
		return -1;
	}
	fprintf(f, "%s %s HTTP/1.1\r\n", method, a->path ? a->path : "/");
	if (!has_host(a)) {
		fprintf(f, "Host: %s", name);
		if (port != 443)
			fprintf(f, ":%u", port);
		fputs("\r\n", f);
	}
	for (size_t i = 0; i < a->nheaders; i++)
		fprintf(f, "%.*s: %.*s\r\n", (int)a->headers[i].name_len,
			a->headers[i].name, (int)a->headers[i].value_len,
			a->headers[i].value);
	fputs("\r\n", f);
	if (fclose(f) != 0 || !head)
		goto out;
	fb_http_req_init(req);
	switch (fb_http_parse_head(req, head, len, NULL)) {
	case FB_HTTP_DONE:
		rc = fb_broker_judge(d->domain, name, port, head, len, req, d,
				     why);
		break;
	case FB_HTTP_ERROR:
		*why = fb_http_error_str(req->error);
		rc = fb_http_error_status(req->error);
		break;
	case FB_HTTP_NEED_MORE:
		*why = "head-too-large";
		rc = 431;
		break;
	}
out:
	free(head);
	free(req);
	return rc;
}

static int cmd_explain(int argc, char **argv)
{
	struct explain_args a = { 0 };
	struct fb_load_opts lo = { 0 };
	struct fb_decision d;
	struct fb_policy *p;
	struct fb_addr dst;
	char name[FB_NAME_MAX];
	const char *namep, *why = NULL;
	bool have_dst;
	int rc, status = 0;

	if ((rc = parse_explain(argc, argv, &a)))
		return rc < 0 ? 0 : rc;
	if ((rc = resolve_host(&a, name, &namep, &dst, &have_dst)))
		return rc;
	lo.filename = a.file;
	lo.publics = a.publics;
	lo.npublics = a.npublics;
	if (!(p = load(a.file, &lo)))
		return 1;
	fb_policy_decide(p, namep, have_dst ? &dst : NULL, &d);
	if (d.verdict == FB_VERDICT_BROKER &&
	    (a.method || a.path || a.nheaders) &&
	    (status = explain_request(&a, namep, &d, &why)) < 0) {
		fprintf(stderr, "firebreak policy explain: out of memory\n");
		fb_policy_unref(p);
		return 1;
	}
	print_decision(&d, &a, have_dst ? &dst : NULL, status, why);
	fb_policy_unref(p);
	return 0;
}

/* ---- dump ----------------------------------------------------------- */

static int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "legacy", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	bool legacy = false;
	struct fb_load_opts lo = { 0 };
	struct fb_policy *p;
	char *text;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'l') {
			legacy = true;
			continue;
		}
		if (c == 'h') {
			fputs(dump_usage, stdout);
			return 0;
		}
		return usage_error(dump_usage, "dump: see --help");
	}
	if (argc - optind != 1)
		return usage_error(dump_usage, "dump: expected one FILE");
	lo.filename = argv[optind];
	if (!(p = load(argv[optind], &lo)))
		return 1;
	text = fb_policy_dump(p, legacy);
	fb_policy_unref(p);
	if (!text) {
		fprintf(stderr, "firebreak policy dump: out of memory\n");
		return 1;
	}
	fputs(text, stdout);
	if (!*text || text[strlen(text) - 1] != '\n')
		putchar('\n');
	free(text);
	return 0;
}

int fb_cmd_policy(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} commands[] = {
		{ "check", cmd_check },
		{ "explain", cmd_explain },
		{ "dump", cmd_dump },
		{ "get", fb_cmd_policy_remote },
		{ "set", fb_cmd_policy_remote },
		{ "patch", fb_cmd_policy_remote },
	};

	if (argc < 2) {
		fputs(policy_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(policy_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		/*
		 * Each sub-command parses its own argv from the start; getopt
		 * names argv[0] in its messages, so make that the full command.
		 */
		char prog[32], **sub = argv + 1;

		snprintf(prog, sizeof prog, "firebreak policy %s", argv[1]);
		optind = 0;
		if (commands[i].fn != fb_cmd_policy_remote)
			sub[0] = prog; /* the remote commands name themselves */
		return commands[i].fn(argc - 1, sub);
	}
	return usage_error(policy_usage, "unknown command \"%s\"", argv[1]);
}
