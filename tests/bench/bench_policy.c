/*
 * bench_policy.c — policy load/compile time and decision latency as the
 * policy grows, next to a naive linear scan over the same keys or prefixes
 * measured in the same run, so the flat curve of the compiled lookups shows.
 *
 * Policies are generated as YAML and go through fb_policy_load, so the
 * "load" column includes the loader; "compile" is fb_policy_compile alone.
 * Every name the benchmark asks is also answered by the naive scan
 * (tests/lib/name_oracle.c), and the two must agree: a disagreement is a
 * bug and fails the run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "policy/internal.h"
#include "tests/lib/name_oracle.h"

#define QUERIES 20000       /* timed compiled lookups per row */
#define NAIVE_BUDGET 2e8    /* rough bound on naive label comparisons per row */

struct buf {
	char *s;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 64;
		if (!(b->s = realloc(b->s, b->cap))) {
			perror("realloc");
			exit(1);
		}
	}
	b->len += (size_t)n;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double median, p99;
};

static struct stats summarize(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return (struct stats){ v[n / 2], v[n * 99 / 100] };
}

/* The cost of reading the clock twice, taken off every sample. */
static double clock_overhead(void)
{
	double v[1001];

	for (int i = 0; i < 1001; i++) {
		double t = now_ns();

		v[i] = now_ns() - t;
	}
	return summarize(v, 1001).median;
}

static void print_row(const char *label, double load_ms, double compile_ms,
		      double *fast, size_t nfast, double *slow, size_t nslow)
{
	struct stats f = summarize(fast, nfast), s = summarize(slow, nslow);

	printf("%-20s %9.1f %9.1f %9.0f %9.0f %12.0f %12.0f\n", label, load_ms,
	       compile_ms, f.median, f.p99, s.median, s.p99);
}

static struct fb_policy *load(const struct buf *yaml)
{
	struct fb_diags diags = { 0 };
	struct fb_policy *p = fb_policy_load(yaml->s, yaml->len, NULL, &diags);

	if (!p) {
		fb_diags_print(&diags, stderr);
		exit(1);
	}
	fb_diags_free(&diags);
	return p;
}

/* ---- names -------------------------------------------------------------- */

/* Key i: a third exact, a third leading wildcards, a third inner ones. */
static void key_name(size_t i, char *out, size_t size)
{
	switch (i % 3) {
	case 0:
		snprintf(out, size, "host%zu.svc%zu.example.net", i, i / 7);
		break;
	case 1:
		snprintf(out, size, "*.zone%zu.example.com", i);
		break;
	default:
		snprintf(out, size, "api.*.region%zu.example.org", i);
		break;
	}
}

/* A query: mostly names some key matches, some that none does. */
static void query_name(size_t nkeys, char *out, size_t size)
{
	size_t i = next_random() % nkeys;

	switch (next_random() % 4) {
	case 0:
		snprintf(out, size, "host%zu.svc%zu.example.net", i, i / 7);
		break;
	case 1:
		snprintf(out, size, "a.b.zone%zu.example.com", i);
		break;
	case 2:
		snprintf(out, size, "api.eu.region%zu.example.org", i);
		break;
	default:
		snprintf(out, size, "nothing%zu.example.io", i);
		break;
	}
}

static void bench_names(size_t nkeys, double overhead)
{
	struct buf yaml = { 0 };
	char name[FB_NAME_MAX];
	double t, load_ms, compile_ms;
	static double fast[QUERIES], slow[QUERIES];
	size_t nslow, nd;
	struct fb_policy *p;
	const struct fb_domain *d;
	struct fb_diags diags = { 0 };

	put(&yaml, "allow:\n");
	for (size_t i = 0; i < nkeys; i++) {
		key_name(i, name, sizeof name);
		put(&yaml, "  \"%s\": []\n", name);
	}
	t = now_ns();
	p = load(&yaml);
	load_ms = (now_ns() - t) / 1e6;
	fb_policy_uncompile(p);
	t = now_ns();
	if (fb_policy_compile(p, &diags, "bench") < 0) {
		fb_diags_print(&diags, stderr);
		exit(1);
	}
	compile_ms = (now_ns() - t) / 1e6;

	d = fb_policy_domains(p, &nd);
	nslow = (size_t)(NAIVE_BUDGET / 20 / (double)nd);
	if (nslow > QUERIES)
		nslow = QUERIES;
	if (nslow < 50)
		nslow = 50;

	for (size_t q = 0; q < QUERIES; q++) {
		const struct fb_domain *got;
		struct fb_decision dec;

		query_name(nkeys, name, sizeof name);
		t = now_ns();
		fb_policy_decide(p, name, NULL, &dec);
		fast[q] = now_ns() - t - overhead;
		got = dec.domain;
		if (q < nslow) {
			const struct fb_domain *want;

			t = now_ns();
			want = name_oracle_lookup(d, nd, name);
			slow[q] = now_ns() - t - overhead;
			if (got != want) {
				fprintf(stderr, "bench_policy: %s: index says %s, scan says %s\n",
					name, got ? got->pattern : "none",
					want ? want->pattern : "none");
				exit(1);
			}
		}
	}
	snprintf(name, sizeof name, "%zu domain patterns", nkeys);
	print_row(name, load_ms, compile_ms, fast, QUERIES, slow, nslow);
	free(yaml.s);
	fb_policy_unref(p);
}

/* ---- addresses ------------------------------------------------------------ */

static void bench_cidrs(size_t n, double overhead)
{
	struct buf yaml = { 0 };
	struct fb_cidr *cidrs = malloc(n * sizeof *cidrs);
	static double fast[QUERIES], slow[QUERIES];
	size_t nslow = 2000;
	double t, load_ms, compile_ms;
	struct fb_diags diags = { 0 };
	struct fb_policy *p;

	put(&yaml, "allow: [example.com]\nsubnets:\n  deny:\n");
	for (size_t i = 0; i < n; i++) {
		uint32_t v = (uint32_t)next_random();
		struct fb_cidr *c = &cidrs[i];

		/* /24s and /16s in 1.0.0.0-99.255.255.255, some IPv6 /48s */
		if (i % 8 == 7) {
			*c = (struct fb_cidr){ .family = AF_INET6, .len = 48,
					       .b = { 0x2a, 0x00, (uint8_t)(v >> 24),
						      (uint8_t)(v >> 16), (uint8_t)(v >> 8),
						      (uint8_t)v } };
		} else {
			uint8_t len = i % 8 == 0 ? 16 : 24;

			v = (1 + v % 99) << 24 | (v & 0x00ffff00);
			if (len == 16)
				v &= 0xffff0000;
			*c = (struct fb_cidr){ .family = AF_INET, .len = len,
					       .b = { v >> 24, v >> 16 & 0xff,
						      v >> 8 & 0xff, v & 0xff } };
		}
		char text[FB_CIDR_STRLEN];

		fb_cidr_format(c, text, sizeof text);
		put(&yaml, "    - \"%s\"\n", text);
	}
	t = now_ns();
	p = load(&yaml);
	load_ms = (now_ns() - t) / 1e6;
	fb_policy_uncompile(p);
	t = now_ns();
	if (fb_policy_compile(p, &diags, "bench") < 0)
		exit(1);
	compile_ms = (now_ns() - t) / 1e6;

	for (size_t q = 0; q < QUERIES; q++) {
		struct fb_addr a = { .family = AF_INET };
		uint32_t v = (uint32_t)next_random();
		struct fb_decision dec;
		bool denied = false;

		v = (1 + v % 99) << 24 | (v & 0xffffff);
		memcpy(a.b, (uint8_t[]){ v >> 24, v >> 16, v >> 8, v }, 4);
		t = now_ns();
		fb_policy_decide(p, "example.com", &a, &dec);
		fast[q] = now_ns() - t - overhead;
		if (q < nslow) {
			t = now_ns();
			for (size_t i = 0; i < n && !denied; i++)
				denied = fb_cidr_contains(&cidrs[i], &a);
			slow[q] = now_ns() - t - overhead;
			if (denied != (dec.reason == FB_REASON_DENIED_CIDR)) {
				fprintf(stderr, "bench_policy: prefix set and scan disagree\n");
				exit(1);
			}
		}
	}
	char label[40];

	snprintf(label, sizeof label, "%zu CIDRs", n);
	print_row(label, load_ms, compile_ms, fast, QUERIES, slow, nslow);
	free(cidrs);
	free(yaml.s);
	fb_policy_unref(p);
}

int main(void)
{
	static const size_t sizes[] = { 10, 1000, 100000 };
	double overhead = clock_overhead();

	printf("bench_policy: load and compile in ms; decisions in ns, compiled vs a linear\n"
	       "scan of the same keys (clock overhead of %.0f ns removed)\n",
	       overhead);
	printf("%-20s %9s %9s %9s %9s %12s %12s\n", "workload", "load ms",
	       "compile", "median", "p99", "scan median", "scan p99");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		bench_names(sizes[i], overhead);
	bench_cidrs(100000, overhead);
	return 0;
}
