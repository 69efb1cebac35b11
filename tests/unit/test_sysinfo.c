/* tests/unit/test_sysinfo.c: /proc/net/tls_stat parsing, the capability
 * probe (on this machine: whatever its kernel has, including no kTLS at
 * all), the probe primitives and the view tree. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/probe.h"
#include "core/sysinfo.h"

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

/* ---------------------------------------------------------------- probes */

Test(probe, kernel_cipher_table)
{
	static const char *const names[] = {
		"aes-gcm-128", "aes-gcm-256", "aes-ccm-128", "chacha20-poly1305",
		"sm4-gcm", "sm4-ccm", "aria-gcm-128", "aria-gcm-256",
	};
	for (unsigned id = 51; id <= 58; id++) {
		const struct kc_ktls_cipher *c = kc_ktls_cipher_by_id(id);
		cr_assert_not_null(c, "%u", id);
		cr_assert_str_eq(c->name, names[id - 51]);
	}
	cr_assert_eq(kc_ktls_cipher_by_id(51)->info_size, sizeof(struct tls12_crypto_info_aes_gcm_128));
	cr_assert_eq(kc_ktls_cipher_by_id(52)->info_size, sizeof(struct tls12_crypto_info_aes_gcm_256));
	cr_assert_eq(kc_ktls_cipher_by_id(53)->info_size, sizeof(struct tls12_crypto_info_aes_ccm_128));
	cr_assert_eq(kc_ktls_cipher_by_id(54)->info_size,
		     sizeof(struct tls12_crypto_info_chacha20_poly1305));
#ifdef TLS_CIPHER_ARIA_GCM_256
	cr_assert_eq(kc_ktls_cipher_by_id(57)->info_size, sizeof(struct tls12_crypto_info_aria_gcm_128));
	cr_assert_eq(kc_ktls_cipher_by_id(58)->info_size, sizeof(struct tls12_crypto_info_aria_gcm_256));
#endif
	cr_assert_null(kc_ktls_cipher_by_id(50));
	cr_assert_null(kc_ktls_cipher_by_id(59));
	/* Every cipher core/keys.h hands the kernel has a row. */
	cr_assert_not_null(kc_ktls_cipher_by_id((unsigned)kc_cipher_kernel_id(GNUTLS_CIPHER_AES_128_CCM)));
}

Test(probe, loopback_pair)
{
	int fds[2];
	char c = 'x';
	cr_assert_eq(kc_probe_loopback_pair(fds, NULL), 0);
	cr_assert_eq(write(fds[0], &c, 1), 1);
	c = 0;
	cr_assert_eq(read(fds[1], &c, 1), 1);
	cr_assert_eq(c, 'x');
	close(fds[0]);
	close(fds[1]);
}

/* Whether this kernel lets us attach the TLS ULP (as root this may load
 * tls.ko, exactly as the probe would). */
static bool kernel_has_ktls(int *e)
{
	return kc_probe_kernel_ulp(e, NULL) == 1;
}

Test(probe, primitives_agree_with_the_kernel)
{
	int e = 0, e2 = 0;
	struct kc_err err;

	if (kernel_has_ktls(&e)) {
		cr_log_info("kernel has kTLS");
		cr_assert_eq(kc_probe_kernel_key(KC_TLS13, 51, KC_TX, &e2, &err), 1);
		cr_assert_eq(kc_probe_kernel_key(KC_TLS12, 51, KC_RX, &e2, &err), 1);
		/* ARIA is TLS 1.2 only: EINVAL in 1.3 whatever the crypto. */
		cr_assert_eq(kc_probe_kernel_key(KC_TLS13, 57, KC_TX, &e2, &err), 0);
		cr_assert_eq(e2, EINVAL);
		/* An option that no kernel has. */
		cr_assert_eq(kc_probe_kernel_option(99, &e2, &err), 0);
		cr_assert_eq(e2, ENOPROTOOPT);
		int r = kc_probe_kernel_option(TLS_TX_ZEROCOPY_RO, &e2, &err);
		cr_assert(r == 0 || r == 1);
	} else {
		cr_log_info("kernel has no kTLS: %s", strerror(e));
		cr_assert_neq(e, 0);
		kc_err_clear(&err);
		cr_assert_eq(kc_probe_kernel_key(KC_TLS13, 51, KC_TX, &e2, &err), -1);
		cr_assert_eq(err.status, KC_E_KTLS);
		cr_assert(strstr(err.msg, "modprobe tls"), "%s", err.msg);
		kc_err_clear(&err);
		cr_assert_eq(kc_probe_kernel_option(TLS_TX_MAX_PAYLOAD_LEN, &e2, &err), -1);
		cr_assert_neq(err.msg[0], '\0');
	}
	kc_err_clear(&err);
	cr_assert_eq(kc_probe_kernel_key(KC_TLS13, 77, KC_TX, &e2, &err), -1);
	cr_assert_eq(err.status, KC_E_INTERNAL);
}

static void assert_cap_formed(const struct kc_cap *c, const char *what)
{
	cr_assert(c->state == KC_CAP_YES || c->state == KC_CAP_NO || c->state == KC_CAP_UNKNOWN,
		  "%s", what);
	if (c->state != KC_CAP_YES)
		cr_assert_neq(c->reason[0], '\0', "%s has no reason", what);
}

Test(caps, probe_on_this_machine)
{
	struct kc_ktls_caps caps;
	struct kc_err err;
	int e = 0;

	kc_err_clear(&err);
	cr_assert_eq(kc_ktls_caps_probe(&caps, &err), 0);
	assert_cap_formed(&caps.available, "available");
	assert_cap_formed(&caps.module, "module");
	assert_cap_formed(&caps.rekey, "rekey");
	assert_cap_formed(&caps.rx_expect_no_pad, "rx_expect_no_pad");
	assert_cap_formed(&caps.tx_zerocopy_ro, "tx_zerocopy_ro");
	assert_cap_formed(&caps.tx_max_payload_len, "tx_max_payload_len");
	for (size_t i = 0; i < KC_CAPS_NCIPHERS; i++) {
		const struct kc_cipher_caps *cc = &caps.ciphers[i];
		cr_assert_not_null(cc->name);
		cr_assert_geq(cc->kernel_id, 51);
		assert_cap_formed(&cc->tls12_tx, cc->name);
		assert_cap_formed(&cc->tls12_rx, cc->name);
		assert_cap_formed(&cc->tls13_tx, cc->name);
		assert_cap_formed(&cc->tls13_rx, cc->name);
	}
	cr_assert_str_eq(caps.ciphers[0].name, "AES-128-GCM");
	cr_assert_str_eq(caps.ciphers[0].kernel_name, "aes-gcm-128");
	cr_assert_str_eq(caps.ciphers[2].kernel_name, "chacha20-poly1305");

	if (!kernel_has_ktls(&e)) {
		/* This development machine: CONFIG_TLS off, ENOENT for everyone. */
		cr_log_info("kTLS unavailable: %s", caps.available.reason);
		cr_assert_eq(caps.available.state, KC_CAP_NO);
		cr_assert_eq(caps.available.sys_errno, e);
		cr_assert_not(caps.ulp_registered);
		if (e == ENOENT && caps.net_admin) {
			cr_assert(strstr(caps.available.reason, "CONFIG_TLS"), "%s",
				  caps.available.reason);
			cr_assert_eq(caps.module.state, KC_CAP_NO);
		} else if (e == ENOENT) {
			cr_assert(strstr(caps.available.reason, "modprobe tls"), "%s",
				  caps.available.reason);
		}
		cr_assert_eq(caps.ciphers[0].tls13_tx.state, KC_CAP_UNKNOWN);
		cr_assert(strstr(caps.ciphers[0].tls13_tx.reason, "not probed"));
		cr_assert_eq(caps.rekey.state, KC_CAP_UNKNOWN);
		cr_assert_eq(caps.tx_max_payload_len.state, KC_CAP_UNKNOWN);
	} else {
		/* A kernel with kTLS (the VM tier): AES-128-GCM works everywhere
		 * the kernel has had kTLS, and every answer is a real one. */
		cr_log_info("kTLS available");
		cr_assert_eq(caps.available.state, KC_CAP_YES);
		cr_assert_eq(caps.module.state, KC_CAP_YES);
		cr_assert_eq(caps.ciphers[0].tls12_tx.state, KC_CAP_YES);
		cr_assert_eq(caps.ciphers[0].tls12_rx.state, KC_CAP_YES);
		cr_assert_neq(caps.rekey.state, KC_CAP_UNKNOWN, "%s", caps.rekey.reason);
		cr_assert_neq(caps.rx_expect_no_pad.state, KC_CAP_UNKNOWN);
		cr_assert_neq(caps.tx_zerocopy_ro.state, KC_CAP_UNKNOWN);
		cr_assert_neq(caps.tx_max_payload_len.state, KC_CAP_UNKNOWN);
		if (caps.tx_max_payload_len.state == KC_CAP_NO)
			cr_assert_eq(caps.tx_max_payload_len.sys_errno, ENOPROTOOPT);
	}
}

/* ------------------------------------------------------------------ view */

/* A minimal JSON writer, as the cli would have, to check the tree's shape. */
static void json(FILE *f, const struct kc_view *v)
{
	switch (v->kind) {
	case KC_VIEW_OBJECT:
	case KC_VIEW_ARRAY:
		fputc(v->kind == KC_VIEW_OBJECT ? '{' : '[', f);
		for (const struct kc_view *c = v->first; c; c = c->next) {
			if (v->kind == KC_VIEW_OBJECT)
				fprintf(f, "\"%s\":", c->key);
			json(f, c);
			if (c->next)
				fputc(',', f);
		}
		fputc(v->kind == KC_VIEW_OBJECT ? '}' : ']', f);
		break;
	case KC_VIEW_STRING:
		fputc('"', f);
		for (const char *p = v->str; *p; p++)
			fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		fputc('"', f);
		break;
	case KC_VIEW_UINT: fprintf(f, "%" PRIu64, v->num); break;
	case KC_VIEW_BOOL: fputs(v->flag ? "true" : "false", f); break;
	case KC_VIEW_NULL: fputs("null", f); break;
	}
}

static char *to_json(const struct kc_view *v)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	json(f, v);
	fclose(f);
	return s;
}

Test(view, tls_stat_json)
{
	static const char text[] = "TlsTxSw\t4\nTlsRxSw\t5\njunk\nTlsTxSw\t9\nTlsNew\t1\n";
	struct kc_tls_stat st = { 0 };
	struct kc_view *root = kc_view_new();

	cr_assert_eq(kc_tls_stat_parse(text, sizeof text - 1, &st, NULL), 0);
	cr_assert_eq(kc_tls_stat_view(&st, root, NULL), 0);
	char *j = to_json(root);
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

Test(view, caps_shape)
{
	struct kc_ktls_caps caps;
	struct kc_view *root = kc_view_new();

	cr_assert_eq(kc_ktls_caps_probe(&caps, NULL), 0);
	cr_assert_eq(kc_ktls_caps_view(&caps, root, NULL), 0);
	const struct kc_view *k = kc_view_get(root, "kernel");
	cr_assert_not_null(k);
	const struct kc_view *av = kc_view_get(k, "available");
	cr_assert_str_eq(kc_view_get(av, "state")->str, kc_cap_state_name(caps.available.state));
	cr_assert_not_null(av->text);
	if (caps.available.state == KC_CAP_NO) {
		cr_assert(strncmp(av->text, "no: ", 4) == 0, "%s", av->text);
		cr_assert_eq(kc_view_get(av, "reason")->kind, KC_VIEW_STRING);
	}
	const struct kc_view *ciphers = kc_view_get(k, "ciphers");
	size_t n = 0;
	for (const struct kc_view *c = ciphers->first; c; c = c->next, n++) {
		cr_assert_null(c->key);
		cr_assert_not_null(c->text);
		const struct kc_view *t13 = kc_view_get(c, "tls13");
		cr_assert_not_null(kc_view_get(kc_view_get(t13, "rx"), "state"));
	}
	cr_assert_eq(n, KC_CAPS_NCIPHERS);
	cr_assert_str_eq(kc_view_get(ciphers->first, "name")->str, "AES-128-GCM");
	cr_assert_eq(kc_view_get(ciphers->first, "kernel_id")->num, 51);
	const struct kc_view *f = kc_view_get(k, "features");
	cr_assert_not_null(kc_view_get(f, "tx_max_payload_len"));
	cr_assert_not_null(kc_view_get(k, "rekey"));
	char *j = to_json(root);
	cr_log_info("%s", j);
	free(j);
	kc_view_free(root);
}

Test(misc, errno_names)
{
	char b[32];
	cr_assert_str_eq(kc_errno_name(ENOENT, b, sizeof b), "ENOENT");
	cr_assert_str_eq(kc_errno_name(ENOPROTOOPT, b, sizeof b), "ENOPROTOOPT");
	cr_assert_str_eq(kc_errno_name(524, b, sizeof b), "ENOTSUPP");
	cr_assert_str_eq(kc_errno_name(4242, b, sizeof b), "errno 4242");
	cr_assert_str_eq(kc_cap_state_name(KC_CAP_UNKNOWN), "unknown");
}

/* The same probe as an unprivileged user (Criterion runs each test in its
 * own process, so dropping privileges here affects nothing else). */
Test(caps, unprivileged_caller)
{
	struct kc_ktls_caps caps;
	int e = 0;

	if (geteuid() == 0)
		cr_assert_eq(setgid(65534) | setuid(65534), 0);
	cr_assert_eq(kc_ktls_caps_probe(&caps, NULL), 0);
	cr_assert_not(caps.net_admin);
	if (!kernel_has_ktls(&e)) {
		cr_assert_eq(caps.available.state, KC_CAP_NO);
		if (e == ENOENT)
			cr_assert(strstr(caps.available.reason, "load it: modprobe tls"), "%s",
				  caps.available.reason);
		cr_assert_neq(caps.module.reason[0], '\0');
	} else {
		cr_assert_eq(caps.available.state, KC_CAP_YES);
	}
}
