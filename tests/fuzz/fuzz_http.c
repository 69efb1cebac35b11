/* tests/fuzz/fuzz_http.c: libFuzzer target for core/http.c
 * (kc_http_parse: the request head `stats --serve` reads from scrapers).
 *
 * Input: the bytes a client sent, copied to an exactly sized buffer so that
 * ASan sees any read past its end.  Checks the promises http.h makes: a
 * complete head ends with an empty line inside the input; a bad one has a
 * status and a reason; the target is printable; "need more" only while under the head limit; and a
 * prefix of a complete head never parses as complete. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"

static void die(const char *what, long rc)
{
	fprintf(stderr, "fuzz_http: %s (rc %ld)\n", what, rc);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);

	struct kc_http_request req;
	memset(&req, 0xa5, sizeof req);
	long rc = kc_http_parse(buf, size, &req);
	if (rc > 0) {
		if ((size_t)rc > size || rc < 2 || buf[rc - 1] != '\n')
			die("a complete head that does not end with a newline in the input", rc);
		if (req.method != KC_HTTP_GET && req.method != KC_HTTP_HEAD &&
		    req.method != KC_HTTP_OTHER)
			die("method out of range", rc);
		const char *nul = memchr(req.target, '\0', sizeof req.target);
		if (!nul || nul == req.target)
			die("an empty or unterminated target", rc);
		for (const char *c = req.target; c < nul; c++)
			if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
				die("a space, control or non-ASCII byte in the target", rc);
		/* One byte short of the head is never complete. */
		struct kc_http_request shorter;
		if (kc_http_parse(buf, (size_t)rc - 1, &shorter) > 0)
			die("a head complete one byte early", rc);
	} else if (rc < 0) {
		if (!req.why || !*req.why || !kc_http_reason(req.status))
			die("an error without a status or a reason", rc);
		if (req.status != 400 && req.status != 414 && req.status != 431 &&
		    req.status != 505)
			die("an error status http.h does not list", rc);
	} else if (size >= KC_HTTP_HEAD_MAX) {
		die("more needed past the head limit", rc);
	}
	free(buf);
	return 0;
}
