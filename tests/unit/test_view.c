/* tests/unit/test_view.c: the view tree's builders. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/view.h"
#include "view_json.h"

Test(view, builders)
{
	struct kc_view *root = kc_view_new();

	/* A NULL parent is a no-op all the way down. */
	cr_assert_null(kc_view_string(kc_view_object(NULL, "a", NULL), "b", NULL, "x"));
	kc_view_set_text(NULL, "x");
	struct kc_view *o = kc_view_object(root, "obj", "Object");
	kc_view_string(o, "s", "S", "bad\x01\x7f\xc3\xa9 \"q\"");
	kc_view_string_or_null(o, "empty", NULL, "");
	kc_view_uint(o, "n", NULL, UINT64_MAX);
	kc_view_bool(o, "b", NULL, true);
	struct kc_view *a = kc_view_array(o, "arr", NULL);
	kc_view_uint(a, NULL, "one", 1);
	kc_view_uint(a, NULL, "two", 2);
	kc_view_set_text(a, "1, 2");
	cr_assert(kc_view_ok(root));
	char *j = to_json(root);
	cr_assert_str_eq(j, "{\"obj\":{\"s\":\"bad???? \\\"q\\\"\",\"empty\":null,"
			 "\"n\":18446744073709551615,\"b\":true,\"arr\":[1,2]}}");
	free(j);
	cr_assert_str_eq(kc_view_get(o, "s")->label, "S");
	cr_assert_str_eq(kc_view_get(o, "n")->label, "n");   /* defaults to the key */
	cr_assert_str_eq(kc_view_get(o, "arr")->text, "1, 2");
	cr_assert_null(kc_view_get(o, "nope"));
	kc_view_free(root);
}
