/* tests/unit/test_caps.c: the capability probe (on this machine: whatever
 * its kernel has, including no kTLS at all), the probe primitives, the
 * capabilities' view and errno names. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/caps.h"
#include "core/diag/view_text.h"
#include "core/probe.h"

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

Test(caps, view_shape)
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
	/* The brief text: is kTLS available, and the command that fixes it. */
	char *brief = kc_view_text(root, KC_VIEW_BRIEF, NULL);
	char want[600];
	snprintf(want, sizeof want, "kTLS available: %s\n%s%s%s", av->text,
		 caps.fix[0] ? "to fix it, run: " : "", caps.fix, caps.fix[0] ? "\n" : "");
	cr_assert_str_eq(brief, want);
	free(brief);
	if (caps.available.state == KC_CAP_YES)
		cr_assert_str_eq(caps.fix, "");
	const struct kc_view *f = kc_view_get(k, "features");
	cr_assert_not_null(kc_view_get(f, "tx_max_payload_len"));
	cr_assert_not_null(kc_view_get(k, "rekey"));
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
		/* Only root can load it: the fix says so, unless there is no
		 * module to load. */
		if (e == ENOENT && caps.module.state != KC_CAP_NO)
			cr_assert_str_eq(caps.fix, "sudo modprobe tls");
		cr_assert_neq(caps.module.reason[0], '\0');
	} else {
		cr_assert_eq(caps.available.state, KC_CAP_YES);
	}
}
