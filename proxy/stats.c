/* stats.c — counters and their two read-back formats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/stats.h"

/*
 * The last slot is "other": once the others are taken, a reason not among
 * them is counted there rather than not at all, so that the totals stay
 * whole however many reasons the guest manages to provoke first.
 */
void fb_stats_outcome(struct fb_stats *s, bool allowed, const char *reason)
{
	size_t i;

	for (i = 0; i < FB_STATS_REASONS - 1; i++) {
		if (!s->outcome[i].reason)
			s->outcome[i].reason = reason;
		else if (strcmp(s->outcome[i].reason, reason) != 0)
			continue;
		break;
	}
	if (i == FB_STATS_REASONS - 1)
		s->outcome[i].reason = "other";
	if (allowed)
		s->outcome[i].allowed++;
	else
		s->outcome[i].denied++;
}

/* The outcome pairs of one kind as "reason":count, comma-separated. */
static void json_outcomes(FILE *f, const struct fb_stats *s, bool allowed)
{
	const char *sep = "";

	for (size_t i = 0; i < FB_STATS_REASONS && s->outcome[i].reason; i++) {
		uint64_t n = allowed ? s->outcome[i].allowed : s->outcome[i].denied;

		if (!n)
			continue;
		fprintf(f, "%s\"%s\":%llu", sep, s->outcome[i].reason,
			(unsigned long long)n);
		sep = ",";
	}
}

static void put_json(FILE *f, const struct fb_stats *s)
{
	fprintf(f, "{\"policy\":{\"generation\":%llu,\"updates\":%llu,"
		"\"flow_cut_failures\":%llu,\"flows_uncut\":%s},"
		"\"connections\":{\"accepted\":%llu,\"open\":%llu,"
		"\"peeking\":%llu,\"allowed\":{",
		(unsigned long long)s->generation,
		(unsigned long long)s->policy_updates,
		(unsigned long long)s->flow_cut_failures,
		s->flows_uncut ? "true" : "false",
		(unsigned long long)s->accepted, (unsigned long long)s->open,
		(unsigned long long)s->peeking);
	json_outcomes(f, s, true);
	fputs("},\"denied\":{", f);
	json_outcomes(f, s, false);
	fprintf(f, "}},\"bytes\":{\"up\":%llu,\"down\":%llu},"
		"\"dns\":{\"queries\":%llu,\"denied\":%llu,"
		"\"upstream\":{\"queries\":%llu,\"failed\":%llu,"
		"\"rate_limited\":%llu}},"
		"\"brokered\":{\"requests\":%llu,\"upstream_reused\":%llu},"
		"\"audit\":{\"lines_lost\":%llu,\"reopen_failed\":%s}}\n",
		(unsigned long long)s->bytes_up,
		(unsigned long long)s->bytes_down,
		(unsigned long long)s->dns_queries,
		(unsigned long long)s->dns_denied,
		(unsigned long long)s->upstream_queries,
		(unsigned long long)s->upstream_failed,
		(unsigned long long)s->upstream_rate_limited,
		(unsigned long long)s->brokered_requests,
		(unsigned long long)s->upstream_reused,
		(unsigned long long)s->audit_lines_lost,
		s->audit_reopen_failed ? "true" : "false");
}

static void put_metrics(FILE *f, const struct fb_stats *s)
{
	fputs("# HELP firebreak_connections_total Connections decided, by outcome and reason.\n"
	      "# TYPE firebreak_connections_total counter\n", f);
	for (size_t i = 0; i < FB_STATS_REASONS && s->outcome[i].reason; i++) {
		if (s->outcome[i].allowed)
			fprintf(f, "firebreak_connections_total{outcome=\"allowed\",reason=\"%s\"} %llu\n",
				s->outcome[i].reason,
				(unsigned long long)s->outcome[i].allowed);
		if (s->outcome[i].denied)
			fprintf(f, "firebreak_connections_total{outcome=\"denied\",reason=\"%s\"} %llu\n",
				s->outcome[i].reason,
				(unsigned long long)s->outcome[i].denied);
	}
	fprintf(f,
		"# HELP firebreak_connections_accepted_total Connections accepted.\n"
		"# TYPE firebreak_connections_accepted_total counter\n"
		"firebreak_connections_accepted_total %llu\n"
		"# HELP firebreak_connections_open Connections open now.\n"
		"# TYPE firebreak_connections_open gauge\n"
		"firebreak_connections_open %llu\n"
		"# HELP firebreak_peeks_in_flight Connections still being peeked.\n"
		"# TYPE firebreak_peeks_in_flight gauge\n"
		"firebreak_peeks_in_flight %llu\n"
		"# HELP firebreak_bytes_total Bytes relayed, by direction.\n"
		"# TYPE firebreak_bytes_total counter\n"
		"firebreak_bytes_total{direction=\"up\"} %llu\n"
		"firebreak_bytes_total{direction=\"down\"} %llu\n"
		"# HELP firebreak_dns_queries_total DNS queries, by outcome.\n"
		"# TYPE firebreak_dns_queries_total counter\n"
		"firebreak_dns_queries_total{outcome=\"allowed\"} %llu\n"
		"firebreak_dns_queries_total{outcome=\"denied\"} %llu\n"
		"# HELP firebreak_dns_upstream_queries_total Queries to the upstream resolver (the guest's and the connections'), by outcome.\n"
		"# TYPE firebreak_dns_upstream_queries_total counter\n"
		"firebreak_dns_upstream_queries_total{outcome=\"answered\"} %llu\n"
		"firebreak_dns_upstream_queries_total{outcome=\"failed\"} %llu\n"
		"firebreak_dns_upstream_queries_total{outcome=\"rate_limited\"} %llu\n"
		"# HELP firebreak_policy_generation The policy generation in force.\n"
		"# TYPE firebreak_policy_generation gauge\n"
		"firebreak_policy_generation %llu\n"
		"# HELP firebreak_policy_updates_total Policy changes applied.\n"
		"# TYPE firebreak_policy_updates_total counter\n"
		"firebreak_policy_updates_total %llu\n"
		"# HELP firebreak_flow_cut_failures_total Attempts to cut the forwarded flows a policy change denied that failed.\n"
		"# TYPE firebreak_flow_cut_failures_total counter\n"
		"firebreak_flow_cut_failures_total %llu\n"
		"# HELP firebreak_flows_uncut 1 while forwarded flows the policy denies may still run (their cut failed).\n"
		"# TYPE firebreak_flows_uncut gauge\n"
		"firebreak_flows_uncut %d\n"
		"# HELP firebreak_brokered_requests_total Requests on brokered connections.\n"
		"# TYPE firebreak_brokered_requests_total counter\n"
		"firebreak_brokered_requests_total %llu\n"
		"# HELP firebreak_upstream_reused_total Brokered connections that took a parked upstream connection.\n"
		"# TYPE firebreak_upstream_reused_total counter\n"
		"firebreak_upstream_reused_total %llu\n"
		"# HELP firebreak_audit_lines_lost_total Audit lines the log did not take (a full or failing disk).\n"
		"# TYPE firebreak_audit_lines_lost_total counter\n"
		"firebreak_audit_lines_lost_total %llu\n"
		"# HELP firebreak_audit_reopen_failed 1 while the audit log could not be reopened (SIGHUP): lines go to the file before.\n"
		"# TYPE firebreak_audit_reopen_failed gauge\n"
		"firebreak_audit_reopen_failed %d\n",
		(unsigned long long)s->accepted, (unsigned long long)s->open,
		(unsigned long long)s->peeking,
		(unsigned long long)s->bytes_up,
		(unsigned long long)s->bytes_down,
		(unsigned long long)(s->dns_queries - s->dns_denied),
		(unsigned long long)s->dns_denied,
		(unsigned long long)(s->upstream_queries - s->upstream_failed),
		(unsigned long long)s->upstream_failed,
		(unsigned long long)s->upstream_rate_limited,
		(unsigned long long)s->generation,
		(unsigned long long)s->policy_updates,
		(unsigned long long)s->flow_cut_failures,
		s->flows_uncut ? 1 : 0,
		(unsigned long long)s->brokered_requests,
		(unsigned long long)s->upstream_reused,
		(unsigned long long)s->audit_lines_lost,
		s->audit_reopen_failed ? 1 : 0);
}

/* What put writes, as a string of its own; NULL when out of memory. */
static char *render(const struct fb_stats *s,
		    void (*put)(FILE *f, const struct fb_stats *s))
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	put(f, s);
	/* open_memstream() publishes the buffer only when the stream is closed */
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *fb_stats_json(const struct fb_stats *s)
{
	return render(s, put_json);
}

char *fb_stats_metrics(const struct fb_stats *s)
{
	return render(s, put_metrics);
}
