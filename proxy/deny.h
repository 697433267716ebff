/*
 * deny.h — what a refused guest sees: never a silent hang (design.md,
 * decision 5).  TLS clients get a fatal access_denied alert, HTTP
 * clients a 403 naming the reason; the connection is then closed.
 */
#ifndef FB_DENY_H
#define FB_DENY_H

#include <stddef.h>

#define FB_TLS_ALERT_LEN 7

/* A TLS record: alert, fatal, access_denied (RFC 8446 §6). */
extern const unsigned char fb_tls_alert_access_denied[FB_TLS_ALERT_LEN];

/*
 * A complete HTTP/1.1 403 response with an X-Firebreak-Reason header and
 * a one-line body.  `reason` is one of our own reason words, never guest
 * text.  Returns the length, or -1 if buf is too small.
 */
int fb_http_forbidden(char *buf, size_t size, const char *reason);

/*
 * The same, as 421 Misdirected Request (RFC 9110 §15.5.20): the request
 * is allowed, but not on this connection, which was dialled for another
 * name.  Clients retry 421 on a new connection, decided afresh.
 */
int fb_http_misdirected(char *buf, size_t size, const char *reason);

#endif /* FB_DENY_H */
