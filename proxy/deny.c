/* deny.c — the refusal messages a guest receives. */
#include <stdio.h>

#include "proxy/deny.h"
#include "proxy/http.h"

/*
 * Hand-built rather than produced by an SSL object: the guest's
 * ClientHello is never answered by a handshake of ours, and the record
 * version 3.3 is what every TLS 1.2 and 1.3 peer accepts.
 */
const unsigned char fb_tls_alert_access_denied[FB_TLS_ALERT_LEN] = {
	0x15,       /* content type: alert */
	0x03, 0x03, /* legacy record version: TLS 1.2 */
	0x00, 0x02, /* length */
	0x02,       /* level: fatal */
	0x31,       /* description: access_denied (49) */
};

/* A complete response that closes the connection: status, our reason word
 * in a header and a one-line body for a person reading curl's output. */
static int http_refusal(char *buf, size_t size, int status,
			const char *what, const char *reason)
{
	char body[200];
	int blen, n;

	blen = snprintf(body, sizeof(body), "firebreak: %s (%s)\n", what, reason);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		return -1;
	n = snprintf(buf, size,
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: text/plain; charset=utf-8\r\n"
		     "Content-Length: %d\r\n"
		     "X-Firebreak-Reason: %s\r\n"
		     "Connection: close\r\n"
		     "\r\n%s",
		     status, fb_http_status_text(status), blen, reason, body);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return n;
}

int fb_http_forbidden(char *buf, size_t size, const char *reason)
{
	return http_refusal(buf, size, 403,
			    "refused by the sandbox's egress policy", reason);
}

int fb_http_misdirected(char *buf, size_t size, const char *reason)
{
	return http_refusal(buf, size, 421,
			    "this connection serves another host; retry on a new connection",
			    reason);
}
