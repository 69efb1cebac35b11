/* core/http.c: an HTTP/1.x request head (see http.h). */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "core/http.h"

static long bad(struct kc_http_request *req, int status, const char *why)
{
	req->status = status;
	req->why = why;
	return -1;
}

/* RFC 9110 tchar: what a method or a header name is made of. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the head: the first empty line (CRLF CRLF, or bare LF LF
 * as RFC 9112 section 2.2 lets a server accept).  NULL if not there yet. */
static const char *head_end(const char *buf, size_t len, size_t *head_len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n') {
			*head_len = i + 2;
			return buf + i;
		}
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n') {
			*head_len = i + 3;
			return buf + i;
		}
	}
	return NULL;
}

/* Does the Accept value [v, end) list the OpenMetrics media type? */
static bool accepts_openmetrics(const char *v, const char *end)
{
	static const char type[] = "application/openmetrics-text";
	for (const char *p = v; p + sizeof type - 1 <= end; p++)
		if (strncasecmp(p, type, sizeof type - 1) == 0)
			return true;
	return false;
}

static long request_line(const char *p, const char *eol, struct kc_http_request *req)
{
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || sp1 == p)
		return bad(req, 400, "no method in the request line");
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar(*c))
			return bad(req, 400, "a method that is not a token");
	size_t mlen = (size_t)(sp1 - p);
	req->method = mlen == 3 && memcmp(p, "GET", 3) == 0 ? KC_HTTP_GET
		: mlen == 4 && memcmp(p, "HEAD", 4) == 0 ? KC_HTTP_HEAD : KC_HTTP_OTHER;
	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || sp2 == target)
		return bad(req, 400, "no target in the request line");
	size_t tlen = (size_t)(sp2 - target);
	if (tlen >= sizeof req->target)
		return bad(req, 414, "request target too long");
	for (const char *c = target; c < sp2; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			return bad(req, 400, "a control or non-ASCII byte in the target");
	memcpy(req->target, target, tlen);
	req->target[tlen] = '\0';
	const char *version = sp2 + 1;
	size_t vlen = (size_t)(eol - version);
	if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
	    (version[7] != '0' && version[7] != '1')) {
		if (vlen >= 5 && memcmp(version, "HTTP/", 5) == 0)
			return bad(req, 505, "an HTTP version other than 1.0 and 1.1");
		return bad(req, 400, "no HTTP version in the request line");
	}
	return 0;
}

long kc_http_parse(const char *buf, size_t len, struct kc_http_request *req)
{
	size_t head_len = 0;
	memset(req, 0, sizeof *req);
	if (!head_end(buf, len, &head_len)) {
		if (len >= KC_HTTP_HEAD_MAX)
			return bad(req, 431, "request head larger than 8 KiB");
		/* A request line longer than any target we take need not
		 * wait for its end. */
		if (!memchr(buf, '\n', len) && len > sizeof req->target + 32)
			return bad(req, 414, "request target too long");
		return 0;
	}
	if (head_len > KC_HTTP_HEAD_MAX)
		return bad(req, 431, "request head larger than 8 KiB");

	const char *p = buf, *end = buf + head_len;
	bool first = true;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		if (memchr(p, '\0', (size_t)(eol - p)) || memchr(p, '\r', (size_t)(eol - p)))
			return bad(req, 400, "a NUL or bare CR in the request head");
		if (eol == p)   /* the empty line */
			break;
		if (first) {
			if (request_line(p, eol, req) < 0)
				return -1;
			first = false;
		} else {
			const char *colon = memchr(p, ':', (size_t)(eol - p));
			if (!colon || colon == p)
				return bad(req, 400, "a header line without a name");
			for (const char *c = p; c < colon; c++)
				if (!is_tchar(*c))   /* includes "name :" (RFC 9112 5.1) */
					return bad(req, 400, "a header name that is not a token");
			if (colon - p == 6 && strncasecmp(p, "accept", 6) == 0 &&
			    accepts_openmetrics(colon + 1, eol))
				req->openmetrics = true;
		}
		p = nl + 1;
	}
	if (first)
		return bad(req, 400, "an empty request");
	return (long)head_len;
}

const char *kc_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}
