/* tests/unit/test_view.c: the view tree's builders, its JSON both ways and
 * its text in both styles. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/view.h"
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"

Test(view, builders)
{
	struct kc_view *root = kc_view_new();

	/* A NULL parent is a no-op all the way down. */
	cr_assert_null(kc_view_string(kc_view_object(NULL, "a", NULL), "b", NULL, "x"));
	kc_view_set_text(NULL, "x");
	kc_view_set_summary(NULL, "x");
	struct kc_view *o = kc_view_object(root, "obj", "Object");
	kc_view_string(o, "s", "S", "bad\x01\x7f\xc3\xa9 \"q\"");
	kc_view_string_or_null(o, "empty", NULL, "");
	kc_view_uint(o, "n", NULL, UINT64_MAX);
	kc_view_bool(o, "b", NULL, true);
	struct kc_view *a = kc_view_array(o, "arr", NULL);
	kc_view_uint(a, NULL, "one", 1);
	kc_view_uint(a, NULL, "two", 2);
	kc_view_set_text(a, "1, 2");
	kc_view_decimal(o, "d", NULL, 1.0 / 3, 4);
	kc_view_decimal(o, "whole", NULL, 2, 2);
	cr_assert(kc_view_ok(root));
	char *j = kc_view_json(root, NULL);
	cr_assert_str_eq(j, "{\"obj\":{\"s\":\"bad???? \\\"q\\\"\",\"empty\":null,"
			 "\"n\":18446744073709551615,\"b\":true,\"arr\":[1,2],"
			 "\"d\":0.3333,\"whole\":2.00}}");
	free(j);
	cr_assert_str_eq(kc_view_get(o, "s")->label, "S");
	cr_assert_str_eq(kc_view_get(o, "n")->label, "n");   /* defaults to the key */
	cr_assert_str_eq(kc_view_get(o, "arr")->text, "1, 2");
	cr_assert_eq(kc_view_get(o, "d")->kind, KC_VIEW_NUMBER);
	cr_assert_null(kc_view_get(o, "nope"));
	kc_view_free(root);
}

static struct kc_view *parse_ok(const char *s)
{
	struct kc_view *v = (struct kc_view *)1;
	struct kc_err err = { 0 };
	int rc = kc_view_from_json(s, strlen(s), &v, &err);
	cr_assert_eq(rc, 0, "%s: %s", s, err.msg);
	cr_assert_not_null(v);
	return v;
}

/* What comes back out, as JSON, of what went in. */
static void round_trip(const char *in, const char *out)
{
	struct kc_view *v = parse_ok(in);
	char *j = kc_view_json(v, NULL);
	cr_assert_str_eq(j, out, "%s", in);
	free(j);
	kc_view_free(v);
}

Test(view_json, round_trips)
{
	round_trip("{}", "{}");
	round_trip(" \r\n\t{ \"a\" : [ ] , \"b\" : { } }\n", "{\"a\":[],\"b\":{}}");
	round_trip("{\"pid\":4242,\"ok\":true,\"no\":false,\"x\":null,\"s\":\"a \\\"b\\\" \\\\ \\/\"}",
		   "{\"pid\":4242,\"ok\":true,\"no\":false,\"x\":null,\"s\":\"a \\\"b\\\" \\\\ /\"}");
	/* Numbers: integers that fit 64 bits are counts, the rest kept as
	 * written. */
	round_trip("{\"a\":[0,18446744073709551615,18446744073709551616,-1,0.0000,1e5,-0.5E-3]}",
		   "{\"a\":[0,18446744073709551615,18446744073709551616,-1,0.0000,1e5,-0.5E-3]}");
	/* Only printable ASCII: other bytes and escapes become '?'. */
	round_trip("{\"k\\u0001\":\"\\u0041\\n\xc3\xa9\\ud83d\\ude00\x7f\"}", "{\"k?\":\"A??????\"}");

	struct kc_view *v = parse_ok("{\"n\":18446744073709551615,\"f\":0.25,\"t\":{\"u\":[1,\"2\"]}}");
	cr_assert_eq(kc_view_get(v, "n")->kind, KC_VIEW_UINT);
	cr_assert_eq(kc_view_get(v, "n")->num, UINT64_MAX);
	cr_assert_eq(kc_view_get(v, "f")->kind, KC_VIEW_NUMBER);
	cr_assert_str_eq(kc_view_get(v, "f")->str, "0.25");
	const struct kc_view *u = kc_view_get(kc_view_get(v, "t"), "u");
	cr_assert_eq(u->kind, KC_VIEW_ARRAY);
	cr_assert_null(u->first->key);
	cr_assert_str_eq(u->last->str, "2");
	cr_assert_str_eq(kc_view_get(v, "t")->label, "t");
	kc_view_free(v);
}

static void parse_fails(const char *s, size_t len, int want, const char *msg)
{
	struct kc_view *v = (struct kc_view *)1;
	struct kc_err err = { 0 };
	int rc = kc_view_from_json(s, len, &v, &err);
	cr_assert_eq(rc, want, "%.*s: rc %d (%s)", (int)len, s, rc, err.msg);
	cr_assert_null(v);
	cr_assert_eq(err.status, KC_E_PROTOCOL);
	cr_assert_str_eq(err.msg, msg, "%.*s", (int)len, s);
}

#define BAD(s, msg) parse_fails(s, sizeof s - 1, -1, msg)
#define CUT(s, msg) parse_fails(s, sizeof s - 1, KC_VIEW_JSON_TRUNCATED, msg)

Test(view_json, refuses_what_is_not_one_object)
{
	CUT("", "the JSON document ends early, at byte 0");
	CUT("  ", "the JSON document ends early, at byte 2");
	CUT("{\"pid\":42", "the JSON document ends early, at byte 9");
	CUT("{\"pid\":4", "the JSON document ends early, at byte 8");
	CUT("{\"s\":\"abc", "the JSON document ends early, at byte 9");
	CUT("{\"s\":\"\\u00", "the JSON document ends early, at byte 10");
	CUT("{\"a\":tru", "the JSON document ends early, at byte 8");
	CUT("{\"a\":[1,", "the JSON document ends early, at byte 8");
	BAD("[]", "not a JSON object at byte 0");
	BAD("pid 4242\n", "not a JSON object at byte 0");
	BAD("{}{}", "text after the JSON document at byte 2");
	BAD("{\"a\":1,}", "expected a member name at byte 7");
	BAD("{\"a\" 1}", "expected ':' at byte 5");
	BAD("{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7");
	BAD("{\"a\":[1 2]}", "expected ',' or ']' at byte 8");
	BAD("{\"a\":01}", "expected ',' or '}' at byte 6");
	BAD("{\"a\":1.}", "a malformed number at byte 7");
	BAD("{\"a\":-}", "a malformed number at byte 6");
	BAD("{\"a\":+1}", "not a JSON value at byte 5");
	BAD("{\"a\":trux}", "not a JSON value at byte 8");
	BAD("{\"a\":\"x\ty\"}", "a control character in a string at byte 7");
	BAD("{\"a\":\"\\x\"}", "a bad escape in a string at byte 7");
	BAD("{\"a\":\"\\u00g0\"}", "a bad \\u escape at byte 10");
	BAD("{\"a\":1,\"b\":2,\"a\":3}", "a member name repeated in the object at byte 0");
	BAD("{\"x\":[{\"a\":1,\"a\":1}]}", "a member name repeated in the object at byte 6");
	/* A NUL byte is no white space. */
	parse_fails("{}\0", 3, -1, "text after the JSON document at byte 2");
	BAD("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}",
	    "nested too deep at byte 40");
}

Test(view_json, depth_limit_is_exact)
{
	/* KC_VIEW_JSON_DEPTH levels of objects pass, one more does not. */
	char ok[256] = "", deep[256] = "";
	for (int i = 1; i < KC_VIEW_JSON_DEPTH; i++)
		strcat(ok, "{\"a\":");
	strcat(ok, "{}");
	for (int i = 1; i < KC_VIEW_JSON_DEPTH; i++)
		strcat(ok, "}");
	kc_view_free(parse_ok(ok));
	snprintf(deep, sizeof deep, "{\"a\":%s}", ok);
	struct kc_view *v;
	cr_assert_eq(kc_view_from_json(deep, strlen(deep), &v, NULL), -1);
}

Test(view, adopt)
{
	struct kc_view *root = kc_view_new();
	struct kc_view *list = kc_view_array(root, "sessions", "sessions");
	struct kc_view *t = parse_ok("{\"pid\":1,\"tx\":{\"bytes\":2}}");
	struct kc_view *s = kc_view_adopt(list, NULL, t);
	cr_assert_eq(s, t);
	cr_assert_null(s->key);
	cr_assert_eq(kc_view_get(kc_view_get(s, "tx"), "bytes")->root, root);
	kc_view_adopt(root, "again", parse_ok("{\"x\":true}"));
	kc_view_adopt(NULL, "dropped", parse_ok("{}"));   /* freed: no leak */
	char *j = kc_view_json(root, NULL);
	cr_assert_str_eq(j, "{\"sessions\":[{\"pid\":1,\"tx\":{\"bytes\":2}}],\"again\":{\"x\":true}}");
	free(j);
	kc_view_free(root);
}

/* A small report: the same nodes in both styles. */
static struct kc_view *report(void)
{
	struct kc_view *root = kc_view_new();
	kc_view_uint(root, "format", "report format", 1);
	struct kc_view *k = kc_view_object(root, "kernel", "Kernel");
	struct kc_view *av = kc_view_object(k, "available", "kTLS available");
	kc_view_string(av, "state", NULL, "no");
	kc_view_set_text(av, "no: not loaded");
	kc_view_mark_brief(av);
	kc_view_bool(k, "net_admin", "root", false);
	kc_view_null(k, "ulps", "ULPs");
	kc_view_object(k, "features", "Features");
	struct kc_view *s = kc_view_array(root, "sessions", "sessions");
	kc_view_set_summary(s, "sessions: 1 running");
	struct kc_view *e = kc_view_object(s, NULL, "session 7");
	kc_view_set_summary(e, "session 7: client");
	kc_view_uint(e, "pid", NULL, 7);
	kc_view_decimal(e, "used", "limit used (%)", 0.5, 4);
	struct kc_view *socks = kc_view_array(root, "socks", "kTLS sockets");
	struct kc_view *one = kc_view_object(socks, NULL, "socket");
	kc_view_set_text(one, "1.2.3.4:5 -> 6.7.8.9:10");
	kc_view_mark_brief(one);
	cr_assert(kc_view_ok(root));
	return root;
}

Test(view_text, full_and_brief)
{
	struct kc_view *root = report();
	char *full = kc_view_text(root, KC_VIEW_FULL, NULL);
	cr_assert_str_eq(full,
			 "report format: 1\n"
			 "Kernel:\n"
			 "  kTLS available: no: not loaded\n"
			 "  root: no\n"
			 "  ULPs: -\n"
			 "  Features: none\n"
			 "sessions:\n"
			 "  session 7\n"
			 "    pid: 7\n"
			 "    limit used (%): 0.5000\n"
			 "kTLS sockets:\n"
			 "  1.2.3.4:5 -> 6.7.8.9:10\n");
	char *brief = kc_view_text(root, KC_VIEW_BRIEF, NULL);
	/* The socket's brief ancestors: none, so it is not indented. */
	cr_assert_str_eq(brief,
			 "kTLS available: no: not loaded\n"
			 "sessions: 1 running\n"
			 "  session 7: client\n"
			 "1.2.3.4:5 -> 6.7.8.9:10\n");
	free(full);
	free(brief);
	/* The JSON of the same tree: keys and values only. */
	char *j = kc_view_json(root, NULL);
	cr_assert_str_eq(j, "{\"format\":1,\"kernel\":{\"available\":{\"state\":\"no\"},"
			 "\"net_admin\":false,\"ulps\":null,\"features\":{}},"
			 "\"sessions\":[{\"pid\":7,\"used\":0.5000}],"
			 "\"socks\":[{}]}");
	free(j);
	kc_view_free(root);
	struct kc_view *empty = kc_view_new();
	char *t = kc_view_text(empty, KC_VIEW_FULL, NULL);
	cr_assert_str_eq(t, "");
	free(t);
	kc_view_free(empty);
}
