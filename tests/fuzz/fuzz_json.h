/* tests/fuzz/fuzz_json.h: a strict JSON checker (RFC 8259: the grammar,
 * numbers as -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, strings of
 * valid UTF-8 without raw control characters), for harnesses that feed
 * hostile text into the cli's JSON output.  fzj_valid() returns NULL when
 * s[0..n) is one JSON value with optional white space around it, else
 * what is wrong; fzj_valid_depth also how deeply it nests. */
#ifndef FUZZ_JSON_H
#define FUZZ_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct fzj {
	const unsigned char *p, *end;
	const char *why;
	unsigned depth, max_depth;
};

static bool fzj_value(struct fzj *j);

static void fzj_ws(struct fzj *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool fzj_fail(struct fzj *j, const char *why)
{
	if (!j->why)
		j->why = why;
	return false;
}

static bool fzj_lit(struct fzj *j, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return fzj_fail(j, "bad literal");
	j->p += n;
	return true;
}

static bool fzj_digits(struct fzj *j)
{
	if (j->p == j->end || *j->p < '0' || *j->p > '9')
		return fzj_fail(j, "a number without digits where it needs them");
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return true;
}

static bool fzj_number(struct fzj *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0') {
		j->p++;
	} else if (!fzj_digits(j)) {
		return false;
	}
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!fzj_digits(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!fzj_digits(j))
			return false;
	}
	/* A number ends the value: "01" is 0 followed by junk. */
	if (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.'))
		return fzj_fail(j, "a malformed number (leading zero, second point, ...)");
	return true;
}

static bool fzj_hex4(struct fzj *j)
{
	for (int i = 0; i < 4; i++, j->p++) {
		if (j->p == j->end)
			return fzj_fail(j, "short \\u escape");
		unsigned char c = *j->p;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return fzj_fail(j, "bad \\u escape");
	}
	return true;
}

static bool fzj_utf8(struct fzj *j)
{
	unsigned char c = *j->p;
	size_t n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
		 : c >= 0xf0 && c <= 0xf4 ? 3 : 9;
	if (n == 9 || (size_t)(j->end - j->p) <= n)
		return fzj_fail(j, "invalid UTF-8 in a string");
	unsigned cp = c & (0x3f >> n);
	for (size_t i = 1; i <= n; i++) {
		if ((j->p[i] & 0xc0) != 0x80)
			return fzj_fail(j, "invalid UTF-8 in a string");
		cp = cp << 6 | (j->p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return fzj_fail(j, "invalid UTF-8 in a string");
	j->p += n + 1;
	return true;
}

static bool fzj_string(struct fzj *j)
{
	j->p++;   /* the opening quote */
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = *j->p;
		if (c < 0x20)
			return fzj_fail(j, "a raw control character in a string");
		if (c == '\\') {
			j->p++;
			if (j->p == j->end)
				return fzj_fail(j, "a string ending in a backslash");
			c = *j->p++;
			if (c == 'u') {
				if (!fzj_hex4(j))
					return false;
			} else if (!strchr("\"\\/bfnrt", c) || !c) {
				return fzj_fail(j, "a bad escape");
			}
		} else if (c >= 0x80) {
			if (!fzj_utf8(j))
				return false;
		} else {
			j->p++;
		}
	}
	if (j->p == j->end)
		return fzj_fail(j, "an unterminated string");
	j->p++;
	return true;
}

static bool fzj_members(struct fzj *j, bool object)
{
	unsigned char close = object ? '}' : ']';
	j->p++;
	if (++j->depth > 64)
		return fzj_fail(j, "nested too deep");
	if (j->depth > j->max_depth)
		j->max_depth = j->depth;
	fzj_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return true;
	}
	for (;;) {
		fzj_ws(j);
		if (object) {
			if (j->p == j->end || *j->p != '"')
				return fzj_fail(j, "an object member without a string key");
			if (!fzj_string(j))
				return false;
			fzj_ws(j);
			if (j->p == j->end || *j->p != ':')
				return fzj_fail(j, "no ':' after a key");
			j->p++;
		}
		if (!fzj_value(j))
			return false;
		fzj_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			j->depth--;
			return true;
		}
		return fzj_fail(j, object ? "no ',' or '}' after a member" : "no ',' or ']'");
	}
}

static bool fzj_value(struct fzj *j)
{
	fzj_ws(j);
	if (j->p == j->end)
		return fzj_fail(j, "a value missing");
	switch (*j->p) {
	case '{': return fzj_members(j, true);
	case '[': return fzj_members(j, false);
	case '"': return fzj_string(j);
	case 't': return fzj_lit(j, "true");
	case 'f': return fzj_lit(j, "false");
	case 'n': return fzj_lit(j, "null");
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return fzj_number(j);
		return fzj_fail(j, "not a value");
	}
}

/* Also says how deeply objects and arrays nest (*depth, may be NULL). */
static const char *fzj_valid_depth(const char *s, size_t n, unsigned *depth)
{
	struct fzj j = { (const unsigned char *)s, (const unsigned char *)s + n, NULL, 0, 0 };
	bool ok = fzj_value(&j);
	if (depth)
		*depth = j.max_depth;
	if (!ok)
		return j.why;
	fzj_ws(&j);
	return j.p == j.end ? NULL : "text after the value";
}

static const char *fzj_valid(const char *s, size_t n)
{
	return fzj_valid_depth(s, n, NULL);
}

#endif
