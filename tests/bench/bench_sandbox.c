/*
 * bench_sandbox.c — what a sandbox's network costs to build and remove:
 * fb_sandbox_create + fb_sandbox_destroy (namespaces, two veth pairs,
 * addresses, routes, the sandbox, guest-NAT and uplink tables), next to
 * a baseline from the same run: the same links, addresses and routes made
 * by `ip -batch` (no tables).  Target: create + destroy < 50 ms median.
 *
 * Then the curve: sandboxes kept alive, up to 500, and what one more
 * costs at 10, 100, 300 and 500 alive.  Besides the wall clock, the
 * creating thread's CPU time (CLOCK_THREAD_CPUTIME_ID: its own code and
 * the kernel's work inside its system calls), which other load on the
 * machine barely moves: work that grows with the number alive shows
 * there first.
 *
 * Runs in network and mount namespaces of its own, so it touches neither
 * the machine's network nor its /run/netns mounts.  Needs root.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "vmhost/sandbox.h"

#define RUNS          50
#define BASELINE_RUNS 10
#define ALIVE_MAX     500

/* The curve's rows: the creates that brought the count up to each. */
static const int alive_marks[] = { 10, 100, 300, ALIVE_MAX };

static double clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void row(const char *what, double *ms, int n)
{
	qsort(ms, n, sizeof *ms, cmp_double);
	printf("%-44s %5d %10.2f %10.2f %10.2f\n", what, n, ms[n / 2],
	       ms[(n * 9) / 10], ms[n - 1]);
}

/* The topology of sandbox.h with ip(8): one process per namespace. */
static const char baseline[] =
	"set -e\n"
	"ip netns add fbb-s; ip netns add fbb-g\n"
	"ip -batch - <<EOF\n"
	"link add fbb-up type veth peer name uplink0 netns fbb-s\n"
	"addr add 100.127.0.1/30 dev fbb-up\n"
	"link set fbb-up up\n"
	"EOF\n"
	"ip -n fbb-s -batch - <<EOF\n"
	"link set lo up\n"
	"link add guest0 type veth peer name eth0 netns fbb-g\n"
	"addr add 10.200.0.1/30 dev guest0\n"
	"addr add fd00:fb::1/64 dev guest0 nodad\n"
	"link set guest0 up\n"
	"addr add 100.127.0.2/30 dev uplink0\n"
	"link set uplink0 up\n"
	"route add default via 100.127.0.1\n"
	"EOF\n"
	"ip -n fbb-g -batch - <<EOF\n"
	"link set lo up\n"
	"addr add 10.200.0.2/30 dev eth0\n"
	"addr add fd00:fb::2/64 dev eth0 nodad\n"
	"link set eth0 up\n"
	"route add default via 10.200.0.1\n"
	"route add default via fd00:fb::1\n"
	"EOF\n"
	"ip link del fbb-up; ip netns del fbb-s; ip netns del fbb-g\n";

/* Four descriptors a sandbox: 500 of them need more than the usual 1024. */
static int raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) < 0)
		return -1;
	r.rlim_cur = r.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &r);
}

/*
 * Create ALIVE_MAX sandboxes and keep them; a row per mark with the wall
 * and CPU time of the creates since the previous mark, then remove all.
 */
static int curve(const struct fb_sandbox_opts *o)
{
	static struct fb_sandbox sb[ALIVE_MAX];
	static double wall[ALIVE_MAX], cpu[ALIVE_MAX], gone[ALIVE_MAX];
	char err[512];
	int alive = 0, from = 0, rc = -1;

	printf("\n%-9s %11s %11s %11s %11s\n", "alive", "create p50",
	       "create max", "CPU p50", "CPU max");
	for (size_t m = 0; m < sizeof alive_marks / sizeof alive_marks[0]; m++) {
		for (; alive < alive_marks[m]; alive++) {
			double t0 = now_ms(), c0 = clock_ms(CLOCK_THREAD_CPUTIME_ID);

			if (fb_sandbox_create(&sb[alive], o, err, sizeof err) < 0) {
				fprintf(stderr, "bench_sandbox: sandbox %d: %s\n",
					alive + 1, err);
				goto out;
			}
			wall[alive] = now_ms() - t0;
			cpu[alive] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
		}
		qsort(wall + from, alive - from, sizeof *wall, cmp_double);
		qsort(cpu + from, alive - from, sizeof *cpu, cmp_double);
		printf("%-9d %8.2f ms %8.2f ms %8.2f ms %8.2f ms\n", alive,
		       wall[from + (alive - from) / 2], wall[alive - 1],
		       cpu[from + (alive - from) / 2], cpu[alive - 1]);
		from = alive;
	}
	rc = 0;
out:
	for (int i = alive - 1; i >= 0; i--) {
		double t0 = now_ms();

		fb_sandbox_destroy(&sb[i]);
		gone[i] = now_ms() - t0;
	}
	if (alive) {
		qsort(gone, alive, sizeof *gone, cmp_double);
		printf("destroy, %d down to 0: median %.2f ms, max %.2f ms\n",
		       alive, gone[alive / 2], gone[alive - 1]);
	}
	return rc;
}

static int isolate(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 ||
	    mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		fprintf(stderr, "bench_sandbox: namespaces of its own: %s "
			"(needs root)\n", strerror(errno));
		return -1;
	}
	return system("ip link set lo up") == 0 ? 0 : -1;
}

int main(void)
{
	static double create[RUNS], destroy[RUNS], both[RUNS], base[BASELINE_RUNS];
	char state[] = "/tmp/fbbench.XXXXXX", err[512];
	struct fb_diags diags = { 0 };
	struct fb_policy *deny_all;
	struct fb_sandbox_opts o = { .state_dir = state };
	struct fb_sandbox sb;
	int rc = 1;

	if (isolate() < 0 || !mkdtemp(state))
		return 1;
	deny_all = fb_policy_load("deny-all", 8, NULL, &diags);
	if (!deny_all) {
		fb_diags_print(&diags, stderr);
		fb_diags_free(&diags);
		return 1;
	}
	o.policy = deny_all;

	for (int i = 0; i < RUNS; i++) {
		double t0 = now_ms(), t1, t2;

		if (fb_sandbox_create(&sb, &o, err, sizeof err) < 0) {
			fprintf(stderr, "bench_sandbox: %s\n", err);
			goto out;
		}
		t1 = now_ms();
		fb_sandbox_destroy(&sb);
		t2 = now_ms();
		create[i] = t1 - t0;
		destroy[i] = t2 - t1;
		both[i] = t2 - t0;
	}
	for (int i = 0; i < BASELINE_RUNS; i++) {
		double t0 = now_ms();

		if (system(baseline) != 0) {
			fprintf(stderr, "bench_sandbox: the ip(8) baseline failed\n");
			goto out;
		}
		base[i] = now_ms() - t0;
	}

	printf("%-44s %5s %10s %10s %10s\n", "sandbox network (ms)", "runs",
	       "median", "p90", "max");
	row("create (links, addresses, routes, 3 tables)", create, RUNS);
	row("destroy", destroy, RUNS);
	row("create + destroy", both, RUNS);
	row("baseline: ip -batch, links only, + delete", base, BASELINE_RUNS);
	printf("target: create + destroy < 50 ms median: %s\n",
	       both[RUNS / 2] < 50 ? "met" : "NOT met");
	if (raise_nofile() < 0 || curve(&o) < 0)
		goto out;
	rc = 0;
out:
	fb_policy_unref(deny_all);
	snprintf(err, sizeof err, "%s/slots", state);
	rmdir(err);
	rmdir(state);
	return rc;
}
