/* core/http.h: the request head of HTTP/1.0 and 1.1, as much of it as a
 * metrics endpoint needs (RFC 9112): the request line and the Accept
 * header.  Strict: anything it does not understand is an error with the
 * status code to answer.  Nothing here prints or exits. */
#ifndef KC_HTTP_H
#define KC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* The most a request head may take; past it, 431. */
#define KC_HTTP_HEAD_MAX 8192

enum kc_http_method { KC_HTTP_GET, KC_HTTP_HEAD, KC_HTTP_OTHER };

struct kc_http_request {
	enum kc_http_method method;
	char target[1024];         /* the path, query included */
	bool openmetrics;          /* Accept names application/openmetrics-text */
	int status;                /* on error: 400, 414, 431, 505 */
	const char *why;           /* on error: a short reason for the log */
};

/* Parse the head at the start of buf[0..len).  Returns the length of the
 * head (through its empty line) when it is complete and valid; 0 when
 * more bytes are needed (and the limit is not reached); -1 with
 * req->status and req->why when the request is bad. */
long kc_http_parse(const char *buf, size_t len, struct kc_http_request *req);

/* The reason phrase of a status code this module uses ("Not Found"). */
const char *kc_http_reason(int status);

#endif
