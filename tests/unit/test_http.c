/* tests/unit/test_http.c: the HTTP request head parser (core/http.h). */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "core/http.h"

static long parse(const char *s, struct kc_http_request *req)
{
	return kc_http_parse(s, strlen(s), req);
}

Test(http, get_with_headers)
{
	struct kc_http_request r;
	const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\nrest";
	cr_assert_eq(parse(s, &r), (long)(strlen(s) - 4));
	cr_assert_eq(r.method, KC_HTTP_GET);
	cr_assert_str_eq(r.target, "/metrics?x=1");
	cr_assert_not(r.openmetrics);
}

Test(http, accept_openmetrics_any_case_among_others)
{
	struct kc_http_request r;
	cr_assert_gt(parse("GET / HTTP/1.0\r\naccept: text/plain;q=0.5,Application/OpenMetrics-Text;"
			   "version=1.0.0\r\n\r\n", &r), 0);
	cr_assert(r.openmetrics);
	/* the media type in another header does not count */
	cr_assert_gt(parse("GET / HTTP/1.0\r\nX-Accept: application/openmetrics-text\r\n\r\n", &r), 0);
	cr_assert_not(r.openmetrics);
}

Test(http, bare_lf_and_head)
{
	struct kc_http_request r;
	cr_assert_eq(parse("HEAD /metrics HTTP/1.0\n\n", &r), 24);
	cr_assert_eq(r.method, KC_HTTP_HEAD);
}

Test(http, incomplete_needs_more)
{
	struct kc_http_request r;
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", &r), 0);
	cr_assert_eq(parse("GET /metr", &r), 0);
	cr_assert_eq(parse("", &r), 0);
}

Test(http, other_method_is_parsed_not_refused)
{
	struct kc_http_request r;
	cr_assert_gt(parse("DELETE /metrics HTTP/1.1\r\n\r\n", &r), 0);
	cr_assert_eq(r.method, KC_HTTP_OTHER);
}

static void bad(const char *s, size_t len, int status)
{
	struct kc_http_request r;
	cr_assert_eq(kc_http_parse(s, len, &r), -1, "%.40s", s);
	cr_assert_eq(r.status, status, "%.40s: %d", s, r.status);
	cr_assert(r.why && *r.why);
}

Test(http, bad_requests)
{
	static const struct { const char *s; int status; } cases[] = {
		{ "GARBAGE\r\n\r\n", 400 },
		{ "\r\n\r\n", 400 },
		{ "GET\r\n\r\n", 400 },
		{ "GET /metrics\r\n\r\n", 400 },
		{ "GET  /metrics HTTP/1.1\r\n\r\n", 400 },
		{ "G(T / HTTP/1.1\r\n\r\n", 400 },
		{ "GET /a\x01 HTTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/2.0\r\n\r\n", 505 },
		{ "GET / HTTP/1.10\r\n\r\n", 505 },
		{ "GET / FTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nName : x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		bad(cases[i].s, strlen(cases[i].s), cases[i].status);
	bad("GET / HTTP/1.1\r\nA: \0\r\n\r\n", 24, 400);
}

Test(http, limits)
{
	static char big[KC_HTTP_HEAD_MAX + 100];
	/* a head that does not end within 8 KiB */
	memset(big, 'a', sizeof big);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	bad(big, KC_HTTP_HEAD_MAX, 431);
	/* one that ends just past it */
	memcpy(big + KC_HTTP_HEAD_MAX - 2, "\r\n\r\n", 4);
	bad(big, KC_HTTP_HEAD_MAX + 2, 431);
	/* a target longer than the buffer, whole or still arriving */
	memset(big, 'a', sizeof big);
	memcpy(big, "GET /", 5);
	memcpy(big + 1500, " HTTP/1.1\r\n\r\n", 13);
	bad(big, 1513, 414);
	bad(big, 1200, 414);
}

Test(http, reasons)
{
	cr_assert_str_eq(kc_http_reason(404), "Not Found");
	cr_assert_str_eq(kc_http_reason(431), "Request Header Fields Too Large");
}
