/* tests/unit/test_tls_stat.c: /proc/net/tls_stat parsing and its view. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/tls_stat.h"
#include "core/diag/view_json.h"

/* What Linux 7.2 prints (seq_printf "%-32s\t%lu\n"), plus two counters of
 * a newer kernel, junk, blank lines and a CRLF line. */
static const char real_text[] =
	"TlsCurrTxSw                     \t2\n"
	"TlsCurrRxSw                     \t2\n"
	"TlsCurrTxDevice                 \t0\n"
	"TlsCurrRxDevice                 \t0\n"
	"TlsTxSw                         \t17\n"
	"TlsRxSw                         \t16\n"
	"TlsTxDevice                     \t0\n"
	"TlsRxDevice                     \t0\n"
	"TlsDecryptError                 \t3\n"
	"TlsRxDeviceResync               \t0\n"
	"TlsDecryptRetry                 \t0\n"
	"TlsRxNoPadViolation             \t0\n"
	"TlsRxRekeyOk                    \t5\n"
	"TlsRxRekeyError                 \t0\n"
	"TlsTxRekeyOk                    \t6\n"
	"TlsTxRekeyError                 \t0\n"
	"TlsRxRekeyReceived              \t5\n"
	"TlsRxRekeyFallback              \t1\n"       /* unknown today: kept */
	"\n"
	"this line is junk\n"                         /* skipped */
	"TlsNoValue\n"                                /* skipped */
	"TlsNegative\t-5\n"                           /* skipped */
	"TlsHex\t0x10\n"                              /* skipped */
	"TlsTrailing\t12 extra\n"                     /* skipped */
	"TlsOverflow\t18446744073709551616\n"         /* 2^64: skipped */
	"Tls-Dash\t1\n"                               /* skipped */
	"TlsMax\t18446744073709551615\n"              /* 2^64 - 1: kept */
	"   \t  \n"                                   /* blank: ignored */
	"TlsCrlf\t7\r\n"                              /* kept */
	"TlsCurrTxRekey\t9";                          /* no final newline: kept */

Test(tls_stat, parses_real_looking_text_in_order)
{
	struct kc_tls_stat st = { 0 };
	struct kc_err err;

	cr_assert_eq(kc_tls_stat_parse(real_text, strlen(real_text), &st, &err), 0);
	cr_assert(st.present);
	cr_assert_eq(st.n, 21, "n = %zu", st.n);
	cr_assert_eq(st.skipped, 7, "skipped = %zu", st.skipped);
	cr_assert_str_eq(st.entries[0].name, "TlsCurrTxSw");
	cr_assert_eq(st.entries[0].value, 2);
	cr_assert_str_eq(st.entries[4].name, "TlsTxSw");
	cr_assert_eq(st.entries[4].value, 17);
	cr_assert_str_eq(st.entries[17].name, "TlsRxRekeyFallback");
	cr_assert_eq(st.entries[17].value, 1);
	cr_assert_str_eq(st.entries[18].name, "TlsMax");
	cr_assert_eq(st.entries[18].value, UINT64_MAX);
	cr_assert_str_eq(st.entries[19].name, "TlsCrlf");
	cr_assert_eq(st.entries[19].value, 7);
	cr_assert_str_eq(st.entries[20].name, "TlsCurrTxRekey");
	cr_assert_eq(st.entries[20].value, 9);
	cr_assert_eq(kc_tls_stat_find(&st, "TlsDecryptError")->value, 3);
	cr_assert_null(kc_tls_stat_find(&st, "TlsOverflow"));
	cr_assert_null(kc_tls_stat_find(&st, "TlsNoValue"));
	kc_tls_stat_free(&st);
}

Test(tls_stat, buffer_without_terminator_and_edge_lines)
{
	static const char text[] = "TlsTxSw 1\nTlsRxSw\t\t22";
	/* Exactly the bytes, no NUL after them: ASan catches any overread. */
	char *buf = malloc(sizeof text - 1);
	struct kc_tls_stat st = { 0 };

	memcpy(buf, text, sizeof text - 1);
	cr_assert_eq(kc_tls_stat_parse(buf, sizeof text - 1, &st, NULL), 0);
	cr_assert_eq(st.n, 2);
	cr_assert_eq(st.entries[1].value, 22);
	kc_tls_stat_free(&st);

	free(buf);

	/* Empty input; a name of 63 characters is kept, 64 is junk; a NUL
	 * byte inside a line makes it junk. */
	char name63[64], line[300];
	size_t len = 0;
	memset(name63, 'A', 63);
	name63[63] = '\0';
	memset(&st, 0, sizeof st);
	cr_assert_eq(kc_tls_stat_parse("", 0, &st, NULL), 0);
	cr_assert(st.present);
	cr_assert_eq(st.n, 0);
	len += (size_t)sprintf(line + len, "%s 1\n", name63);
	len += (size_t)sprintf(line + len, "%sA 2\n", name63);
	memcpy(line + len, "Tls\0Nul 3\n", 10);
	len += 10;
	cr_assert_eq(kc_tls_stat_parse(line, len, &st, NULL), 0);
	cr_assert_eq(st.n, 1, "n = %zu", st.n);
	cr_assert_str_eq(st.entries[0].name, name63);
	cr_assert_eq(st.skipped, 2, "skipped = %zu", st.skipped);
	kc_tls_stat_free(&st);
}

Test(tls_stat, many_entries_grow)
{
	char *buf = malloc(1000 * 32);
	size_t len = 0;
	struct kc_tls_stat st = { 0 };

	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(buf + len, "Counter%d\t%d\n", i, i * 3);
	cr_assert_eq(kc_tls_stat_parse(buf, len, &st, NULL), 0);
	cr_assert_eq(st.n, 1000);
	cr_assert_str_eq(st.entries[999].name, "Counter999");
	cr_assert_eq(st.entries[999].value, 2997);
	kc_tls_stat_free(&st);
	free(buf);
}

Test(tls_stat, missing_file_is_a_reason_not_an_error)
{
	struct kc_tls_stat st;
	struct kc_err err;

	kc_err_clear(&err);
	cr_assert_eq(kc_tls_stat_read("/nonexistent/tls_stat", &st, &err), 0);
	cr_assert_not(st.present);
	cr_assert(strstr(st.reason, "tls module not loaded"), "%s", st.reason);
	cr_assert_eq(st.n, 0);
	kc_tls_stat_free(&st);
}

Test(tls_stat, reads_a_file)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/ktlsctl-tls_stat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, real_text, strlen(real_text)), (ssize_t)strlen(real_text));
	close(fd);

	struct kc_tls_stat st;
	cr_assert_eq(kc_tls_stat_read(path, &st, NULL), 0);
	unlink(path);
	cr_assert(st.present);
	cr_assert_eq(st.n, 21);
	cr_assert_eq(kc_tls_stat_find(&st, "TlsRxRekeyReceived")->value, 5);
	kc_tls_stat_free(&st);
}

Test(tls_stat, this_machine)
{
	struct kc_tls_stat st;
	struct kc_err err;

	cr_assert_eq(kc_tls_stat_read(NULL, &st, &err), 0);
	if (access(KC_TLS_STAT_PATH, F_OK) == 0) {
		cr_assert(st.present);
		cr_assert_not_null(kc_tls_stat_find(&st, "TlsCurrTxSw"));
		cr_assert_eq(st.skipped, 0);
	} else {
		cr_assert_not(st.present);
		cr_assert_str_eq(st.reason, "tls module not loaded (no /proc/net/tls_stat)");
	}
	kc_tls_stat_free(&st);
}

/* ------------------------------------------------------------------ view */

Test(view, tls_stat_json)
{
	static const char text[] = "TlsTxSw\t4\nTlsRxSw\t5\njunk\nTlsTxSw\t9\nTlsNew\t1\n";
	struct kc_tls_stat st = { 0 };
	struct kc_view *root = kc_view_new();

	cr_assert_eq(kc_tls_stat_parse(text, sizeof text - 1, &st, NULL), 0);
	cr_assert_eq(kc_tls_stat_view(&st, root, NULL), 0);
	char *j = kc_view_json(root, NULL);
	cr_assert_str_eq(j, "{\"tls_stat\":{\"present\":true,\"reason\":null,\"counters\":"
			 "{\"TlsTxSw\":4,\"TlsRxSw\":5,\"TlsNew\":1},\"skipped_lines\":1}}");
	free(j);
	kc_view_free(root);
	kc_tls_stat_free(&st);

	root = kc_view_new();
	cr_assert_eq(kc_tls_stat_read("/nonexistent", &st, NULL), 0);
	cr_assert_eq(kc_tls_stat_view(&st, root, NULL), 0);
	const struct kc_view *o = kc_view_get(root, "tls_stat");
	cr_assert_str_eq(o->text, "tls module not loaded (no /nonexistent)");
	cr_assert_eq(kc_view_get(o, "present")->flag, false);
	cr_assert_str_eq(kc_view_get(o, "reason")->str, "tls module not loaded (no /nonexistent)");
	kc_view_free(root);
	kc_tls_stat_free(&st);
}

/* A file as large as kc_tls_stat_read takes (1 MB) of distinct names:
 * the view used to look each name up again among all the entries before
 * it, about 30 s for this; repeats must still keep their first value. */
Test(view, tls_stat_many_names_in_linear_time, .timeout = 20)
{
	size_t cap = 1u << 20, len = 0;
	char *buf = malloc(cap);
	struct kc_tls_stat st = { 0 };
	struct kc_view *root = kc_view_new();

	len += (size_t)sprintf(buf + len, "Twice 1\n");
	for (unsigned i = 0; len + 32 < cap; i++)
		len += (size_t)sprintf(buf + len, "N%x 1\n", i);
	len += (size_t)sprintf(buf + len, "Twice 2\n");
	cr_assert_eq(kc_tls_stat_parse(buf, len, &st, NULL), 0);
	cr_assert_gt(st.n, 100000);
	cr_assert_eq(kc_tls_stat_view(&st, root, NULL), 0);
	const struct kc_view *c = kc_view_get(kc_view_get(root, "tls_stat"), "counters");
	size_t n = 0;
	for (const struct kc_view *v = c->first; v; v = v->next)
		n++;
	cr_assert_eq(n, st.n - 1);
	cr_assert_eq(kc_view_get(c, "Twice")->num, 1);
	cr_assert_str_eq(c->first->key, "Twice");
	cr_assert_str_eq(c->last->key, st.entries[st.n - 2].name);
	kc_view_free(root);
	kc_tls_stat_free(&st);
	free(buf);
}
