/* core/diag/view_json.c: view trees to JSON and back (see view_json.h). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/view_json.h"

/* ------------------------------------------------------------- writing */

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_value(FILE *f, const struct kc_view *v)
{
	switch (v->kind) {
	case KC_VIEW_OBJECT:
	case KC_VIEW_ARRAY:
		fputc(v->kind == KC_VIEW_OBJECT ? '{' : '[', f);
		for (const struct kc_view *c = v->first; c; c = c->next) {
			if (c != v->first)
				fputc(',', f);
			if (v->kind == KC_VIEW_OBJECT) {
				put_string(f, c->key ? c->key : "");
				fputc(':', f);
			}
			put_value(f, c);
		}
		fputc(v->kind == KC_VIEW_OBJECT ? '}' : ']', f);
		return;
	case KC_VIEW_STRING: put_string(f, v->str); return;
	case KC_VIEW_UINT: fprintf(f, "%" PRIu64, v->num); return;
	case KC_VIEW_NUMBER: fputs(v->str, f); return;
	case KC_VIEW_BOOL: fputs(v->flag ? "true" : "false", f); return;
	case KC_VIEW_NULL: fputs("null", f); return;
	}
}

char *kc_view_json(const struct kc_view *v, struct kc_err *err)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	if (!f)
		goto oom;
	put_value(f, v);
	if (fclose(f) == 0 && s)
		return s;
oom:
	free(s);
	kc_err_set(err, KC_E_INTERNAL, "out of memory writing the report as JSON");
	return NULL;
}

/* ------------------------------------------------------------- reading */

struct parser {
	const char *start, *p, *end;
	char *key, *val;     /* decoded strings, each as long as the input */
	int rc;              /* the first failure: -1 or KC_VIEW_JSON_TRUNCATED */
	struct kc_err *err;
};

/* Where p stands says which failure it is: at the end of the text, the
 * document was cut short. */
static bool fail(struct parser *ps, const char *what)
{
	if (ps->rc)
		return false;
	if (ps->p >= ps->end) {
		ps->rc = KC_VIEW_JSON_TRUNCATED;
		kc_err_set(ps->err, KC_E_PROTOCOL, "the JSON document ends early, at byte %zu",
			   (size_t)(ps->end - ps->start));
	} else {
		ps->rc = -1;
		kc_err_set(ps->err, KC_E_PROTOCOL, "%s at byte %zu", what,
			   (size_t)(ps->p - ps->start));
	}
	return false;
}

static bool oom(struct parser *ps)
{
	if (!ps->rc) {
		ps->rc = -1;
		kc_err_set(ps->err, KC_E_INTERNAL, "out of memory reading a JSON document");
	}
	return false;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool is_digit(struct parser *ps)
{
	return ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9';
}

static bool literal(struct parser *ps, const char *word)
{
	for (; *word; word++, ps->p++)
		if (ps->p == ps->end || *ps->p != *word)
			return fail(ps, "not a JSON value");
	return true;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string at p (the opening quote) into out, as printable ASCII. */
static bool string(struct parser *ps, char *out)
{
	size_t n = 0;
	ps->p++;
	for (;;) {
		if (ps->p == ps->end)
			return fail(ps, "");
		unsigned char c = (unsigned char)*ps->p;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(ps, "a control character in a string");
		ps->p++;
		if (c != '\\') {
			out[n++] = c < 0x7f ? (char)c : '?';
			continue;
		}
		if (ps->p == ps->end)
			return fail(ps, "");
		c = (unsigned char)*ps->p;
		if (c == '"' || c == '\\' || c == '/') {
			out[n++] = (char)c;
		} else if (strchr("bfnrt", c) && c) {
			out[n++] = '?';
		} else if (c == 'u') {
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				ps->p++;
				if (ps->p == ps->end)
					return fail(ps, "");
				int d = hex_digit(*ps->p);
				if (d < 0)
					return fail(ps, "a bad \\u escape");
				cp = cp << 4 | (unsigned)d;
			}
			out[n++] = cp >= 0x20 && cp < 0x7f ? (char)cp : '?';
		} else {
			return fail(ps, "a bad escape in a string");
		}
		ps->p++;
	}
	ps->p++;
	out[n] = '\0';
	return true;
}

/* JSON's number grammar; a plain integer that fits 64 bits is a UINT. */
static bool number(struct parser *ps, struct kc_view *parent, const char *key)
{
	const char *s = ps->p;
	bool plain = true;

	if (*ps->p == '-') {
		ps->p++;
		plain = false;
	}
	if (ps->p < ps->end && *ps->p == '0')
		ps->p++;
	else if (is_digit(ps))
		while (is_digit(ps))
			ps->p++;
	else
		return fail(ps, "a malformed number");
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		plain = false;
		if (!is_digit(ps))
			return fail(ps, "a malformed number");
		while (is_digit(ps))
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		plain = false;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (!is_digit(ps))
			return fail(ps, "a malformed number");
		while (is_digit(ps))
			ps->p++;
	}
	uint64_t v = 0;
	for (const char *d = s; plain && d < ps->p; d++) {
		unsigned digit = (unsigned)(*d - '0');
		if (v > (UINT64_MAX - digit) / 10)
			plain = false;
		v = v * 10 + digit;
	}
	if (plain)
		return kc_view_uint(parent, key, NULL, v) ? true : oom(ps);
	struct kc_view *n = kc_view_string(parent, key, NULL, "%.*s", (int)(ps->p - s), s);
	if (!n || n->kind != KC_VIEW_STRING)
		return oom(ps);
	n->kind = KC_VIEW_NUMBER;
	return true;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A report is rendered as JSON again: its members must be distinct.
 * Sorted, not compared pairwise: a long object must not take quadratic
 * time. */
static bool unique_keys(struct parser *ps, const struct kc_view *o, const char *open)
{
	size_t n = 0, i = 0;
	for (const struct kc_view *c = o->first; c; c = c->next)
		n++;
	if (n < 2)
		return true;
	const char **keys = malloc(n * sizeof *keys);
	if (!keys)
		return oom(ps);
	for (const struct kc_view *c = o->first; c; c = c->next)
		keys[i++] = c->key;
	qsort(keys, n, sizeof *keys, cmp_key);
	bool repeated = false;
	for (i = 1; i < n && !repeated; i++)
		repeated = strcmp(keys[i - 1], keys[i]) == 0;
	free(keys);
	if (!repeated)
		return true;
	ps->p = open;   /* the whole object is at fault */
	return fail(ps, "a member name repeated in the object");
}

static bool value(struct parser *ps, struct kc_view *parent, const char *key, unsigned depth);

/* The members or elements of o, from its opening bracket. */
static bool container(struct parser *ps, struct kc_view *o, unsigned depth)
{
	bool object = o->kind == KC_VIEW_OBJECT;
	char close = object ? '}' : ']';
	const char *open = ps->p;

	if (depth > KC_VIEW_JSON_DEPTH)
		return fail(ps, "nested too deep");
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		skip_ws(ps);
		if (object) {
			if (ps->p == ps->end || *ps->p != '"')
				return fail(ps, "expected a member name");
			if (!string(ps, ps->key))
				return false;
			skip_ws(ps);
			if (ps->p == ps->end || *ps->p != ':')
				return fail(ps, "expected ':'");
			ps->p++;
		}
		if (!value(ps, o, object ? ps->key : NULL, depth))
			return false;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return object ? unique_keys(ps, o, open) : true;
		}
		return fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool value(struct parser *ps, struct kc_view *parent, const char *key, unsigned depth)
{
	struct kc_view *v;

	skip_ws(ps);
	if (ps->p == ps->end)
		return fail(ps, "");
	switch (*ps->p) {
	case '{':
	case '[':
		v = *ps->p == '{' ? kc_view_object(parent, key, NULL) : kc_view_array(parent, key, NULL);
		return v ? container(ps, v, depth + 1) : oom(ps);
	case '"':
		if (!string(ps, ps->val))
			return false;
		return kc_view_string(parent, key, NULL, "%s", ps->val) ? true : oom(ps);
	case 't':
	case 'f':
		v = kc_view_bool(parent, key, NULL, *ps->p == 't');
		return v ? literal(ps, v->flag ? "true" : "false") : oom(ps);
	case 'n':
		return kc_view_null(parent, key, NULL) ? literal(ps, "null") : oom(ps);
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return number(ps, parent, key);
		return fail(ps, "not a JSON value");
	}
}

int kc_view_from_json(const char *s, size_t len, struct kc_view **out, struct kc_err *err)
{
	struct parser ps = { .start = s, .p = s, .end = s + len, .err = err };

	*out = NULL;
	ps.key = malloc(len + 1);
	ps.val = malloc(len + 1);
	struct kc_view *root = kc_view_new();
	if (!ps.key || !ps.val || !root) {
		oom(&ps);
	} else {
		skip_ws(&ps);
		if (ps.p == ps.end || *ps.p != '{')
			fail(&ps, "not a JSON object");
		else if (container(&ps, root, 1)) {
			skip_ws(&ps);
			if (ps.p != ps.end)
				fail(&ps, "text after the JSON document");
			else if (!kc_view_ok(root))
				oom(&ps);
		}
	}
	free(ps.key);
	free(ps.val);
	if (ps.rc) {
		kc_view_free(root);
		return ps.rc;
	}
	*out = root;
	return 0;
}
