/*
 * fuzz_http.c — the request-head parser and the chunked decoder must give
 * the same answer whole, split at an input-chosen point, and fed one byte
 * more per call; so must the check of a body that reads as a request.
 * The hosts of forwarding fields lie inside the head, and fewer slots
 * give a prefix of them or -1.  Any difference aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http.h"

static void same_slice(struct fb_http_slice a, struct fb_http_slice b)
{
	if (a.ptr != b.ptr || a.len != b.len)
		abort();
}

static void same(const struct fb_http_req *a, const struct fb_http_req *b)
{
	if (a->status != b->status || a->error != b->error ||
	    a->line_done != b->line_done)
		abort();
	if (a->status != FB_HTTP_DONE)
		return;
	same_slice(a->method, b->method);
	same_slice(a->target, b->target);
	same_slice(a->authority, b->authority);
	same_slice(a->path, b->path);
	same_slice(a->query, b->query);
	same_slice(a->host, b->host);
	if (a->form != b->form || a->minor != b->minor ||
	    a->nfields != b->nfields || a->content_length != b->content_length ||
	    a->chunked != b->chunked || a->flags != b->flags ||
	    a->head_len != b->head_len)
		abort();
	for (size_t i = 0; i < a->nfields; i++)
		if (a->fields[i].name != b->fields[i].name ||
		    a->fields[i].name_len != b->fields[i].name_len ||
		    a->fields[i].value != b->fields[i].value ||
		    a->fields[i].value_len != b->fields[i].value_len)
			abort();
}

struct dechunked {
	enum fb_chunked_status st;
	enum fb_http_error error;
	size_t used, out_len;
};

/* Decode in[0..len) delivered `step` bytes at a time (0: all at once). */
static void dechunk(const char *in, size_t len, size_t step, char *out,
		    struct dechunked *r)
{
	struct fb_chunked dec;
	size_t off = 0, avail = step ? 0 : len;

	fb_chunked_init(&dec);
	r->out_len = 0;
	for (;;) {
		const char *data;
		size_t n, used;

		r->st = fb_chunked_decode(&dec, in + off, avail - off, &used,
					  &data, &n);
		off += used;
		if (r->st == FB_CHUNKED_DATA) {
			if (data < in || data + n > in + avail)
				abort();
			memcpy(out + r->out_len, data, n);
			r->out_len += n;
			continue;
		}
		if (r->st != FB_CHUNKED_NEED_MORE || avail == len)
			break;
		avail = avail + step < len ? avail + step : len;
	}
	r->used = off;
	r->error = dec.error;
}

static void chunked_both_ways(const char *in, size_t len, size_t step)
{
	char *o1 = malloc(len + 1), *o2 = malloc(len + 1);
	struct dechunked a, b;

	if (!o1 || !o2)
		abort();
	dechunk(in, len, 0, o1, &a);
	dechunk(in, len, step, o2, &b);
	if (a.st != b.st || a.error != b.error || a.used != b.used ||
	    a.out_len != b.out_len || memcmp(o1, o2, a.out_len) != 0)
		abort();
	free(o1);
	free(o2);
}

#define HOSTS_MAX 8

static void forwarded_hosts(const struct fb_http_req *req, const char *buf)
{
	struct fb_http_slice all[HOSTS_MAX], few[2];
	int n = fb_http_forwarded_hosts(req, all, HOSTS_MAX);
	int k = fb_http_forwarded_hosts(req, few, 2);

	if (n < -1 || n > HOSTS_MAX || (n >= 0 && n <= 2 ? k != n : k != -1))
		abort();
	for (int i = 0; i < n; i++) {
		if (all[i].len == 0 || all[i].ptr < buf ||
		    all[i].ptr + all[i].len > buf + req->head_len)
			abort();
		if (i < k && (few[i].ptr != all[i].ptr || few[i].len != all[i].len))
			abort();
	}
}

/* A prefix says NEED_MORE or what the whole body says. */
static void body_start(const char *body, size_t len, size_t split)
{
	enum fb_http_status whole = fb_http_body_start(body, len, true), st;

	if (whole == FB_HTTP_NEED_MORE)
		abort();
	for (size_t k = 0; k < len && k <= 300; k++) {
		st = fb_http_body_start(body, k, false);
		if (st != FB_HTTP_NEED_MORE && st != whole)
			abort();
	}
	if (split < len) {
		st = fb_http_body_start(body, split, false);
		if (st != FB_HTTP_NEED_MORE && st != whole)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_http_req *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	char *buf = malloc(size ? size : 1);
	size_t split = size ? (data[0] | (size_t)data[size - 1] << 8) % (size + 1) : 0;

	if (!a || !b || !buf)
		abort();
	memcpy(buf, data, size);

	fb_http_req_init(a);
	fb_http_parse_head(a, buf, size, NULL);
	fb_http_req_init(b);
	if (fb_http_parse_head(b, buf, split, NULL) == FB_HTTP_NEED_MORE)
		fb_http_parse_head(b, buf, size, NULL);
	same(a, b);
	fb_http_req_init(b);
	for (size_t k = 0; k <= size; k++)
		if (fb_http_parse_head(b, buf, k, NULL) != FB_HTTP_NEED_MORE)
			break;
	same(a, b);

	/* the body after a head, or the whole input, as chunked */
	if (a->status == FB_HTTP_DONE) {
		chunked_both_ways(buf + a->head_len, size - a->head_len, 1);
		forwarded_hosts(a, buf);
		body_start(buf + a->head_len, size - a->head_len, split);
	}
	chunked_both_ways(buf, size, 1 + split % 7);
	body_start(buf, size, split);

	free(buf);
	free(a);
	free(b);
	return 0;
}
