/* tests/unit/test_cipher.c: the cipher table against GnuTLS and the
 * kernel's own headers, and its lookups. */
#include "config.h"

#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <linux/tls.h>

#include "core/cipher.h"
#include "core/limits.h"
#include "core/probe.h"

/* What <linux/tls.h> says of one kernel cipher. */
struct uapi {
	unsigned id;
	size_t iv, key, salt, tag, rec_seq, info;
	size_t iv_off, key_off, salt_off, rec_seq_off;
};

#define UAPI(ID, P, S)                                                        \
	{ ID, P##_IV_SIZE, P##_KEY_SIZE, P##_SALT_SIZE, P##_TAG_SIZE,         \
	  P##_REC_SEQ_SIZE, sizeof(struct S), offsetof(struct S, iv),         \
	  offsetof(struct S, key), offsetof(struct S, salt),                  \
	  offsetof(struct S, rec_seq) }

static const struct uapi uapi[] = {
	UAPI(TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_128, tls12_crypto_info_aes_gcm_128),
	UAPI(TLS_CIPHER_AES_GCM_256, TLS_CIPHER_AES_GCM_256, tls12_crypto_info_aes_gcm_256),
	UAPI(TLS_CIPHER_AES_CCM_128, TLS_CIPHER_AES_CCM_128, tls12_crypto_info_aes_ccm_128),
	UAPI(TLS_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305,
	     tls12_crypto_info_chacha20_poly1305),
};

static const struct uapi *uapi_for(unsigned id)
{
	for (size_t i = 0; i < sizeof uapi / sizeof uapi[0]; i++)
		if (uapi[i].id == id)
			return &uapi[i];
	return NULL;
}

Test(cipher, rows_in_report_order)
{
	static const char *const names[KC_NCIPHERS] = {
		"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM",
	};
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		cr_assert_str_eq(kc_ciphers[i].name, names[i]);
}

Test(cipher, sizes_agree_with_gnutls)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++) {
		const struct kc_cipher *c = &kc_ciphers[i];
		cr_assert_eq(gnutls_cipher_get_key_size(c->gnutls), c->key_size, "%s", c->name);
		/* GnuTLS's iv is the whole nonce base: salt || iv */
		cr_assert_eq(gnutls_cipher_get_iv_size(c->gnutls), c->salt_size + c->iv_size,
			     "%s", c->name);
		cr_assert_eq(gnutls_cipher_get_tag_size(c->gnutls), c->tag_size, "%s", c->name);
		cr_assert_str_eq(gnutls_cipher_get_name(c->gnutls), c->name);
		/* the priority keyword names the same algorithm */
		cr_assert_eq(gnutls_cipher_get_id(c->priority), c->gnutls, "%s", c->name);
	}
}

Test(cipher, sizes_agree_with_the_kernel)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++) {
		const struct kc_cipher *c = &kc_ciphers[i];
		const struct uapi *u = uapi_for(c->kernel.id);
		cr_assert_not_null(u, "%s: kernel id %u", c->name, c->kernel.id);
		cr_assert_eq(c->iv_size, u->iv, "%s", c->name);
		cr_assert_eq(c->key_size, u->key, "%s", c->name);
		cr_assert_eq(c->salt_size, u->salt, "%s", c->name);
		cr_assert_eq(c->tag_size, u->tag, "%s", c->name);
		cr_assert_eq(c->rec_seq_size, u->rec_seq, "%s", c->name);
		cr_assert_eq(c->kernel.info_size, u->info, "%s", c->name);
		/* the layout core/keys.c writes: header, iv, key, salt, rec_seq */
		size_t hdr = sizeof(struct tls_crypto_info);
		cr_assert_eq(u->iv_off, hdr, "%s", c->name);
		cr_assert_eq(u->key_off, hdr + c->iv_size, "%s", c->name);
		cr_assert_eq(u->salt_off, hdr + c->iv_size + c->key_size, "%s", c->name);
		cr_assert_eq(u->rec_seq_off, c->kernel.info_size - c->rec_seq_size, "%s", c->name);
		cr_assert_eq(u->rec_seq_off, u->salt_off + c->salt_size, "%s", c->name);
	}
	cr_assert_str_eq(kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_256_GCM)->kernel.crypto, "gcm(aes)");
	cr_assert_str_eq(kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_128_CCM)->kernel.crypto, "ccm(aes)");
	cr_assert_str_eq(kc_cipher_by_gnutls(GNUTLS_CIPHER_CHACHA20_POLY1305)->kernel.crypto,
			 "rfc7539(chacha20,poly1305)");
	cr_assert_str_eq(kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_128_GCM)->kernel.name, "aes-gcm-128");
}

/* The probe's list of kernel ciphers hands out the table's rows for the
 * four, its own for the rest. */
Test(cipher, probe_reads_the_table)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		cr_assert_eq(kc_ktls_cipher_by_id(kc_ciphers[i].kernel.id), &kc_ciphers[i].kernel);
	cr_assert_null(kc_cipher_by_kernel_id(55));
	cr_assert_str_eq(kc_ktls_cipher_by_id(55)->name, "sm4-gcm");
}

Test(cipher, per_version)
{
	const struct kc_cipher *gcm = kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_128_GCM);
	const struct kc_cipher *ccm = kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_128_CCM);
	const struct kc_cipher *chacha = kc_cipher_by_gnutls(GNUTLS_CIPHER_CHACHA20_POLY1305);

	/* the iv GnuTLS reports (research: gnutls_record_get_state) */
	cr_assert_eq(kc_cipher_iv_len(gcm, KC_TLS12), 4);
	cr_assert_eq(kc_cipher_iv_len(ccm, KC_TLS12), 4);
	cr_assert_eq(kc_cipher_iv_len(chacha, KC_TLS12), 12);
	for (size_t i = 0; i < KC_NCIPHERS; i++) {
		cr_assert_eq(kc_cipher_iv_len(&kc_ciphers[i], KC_TLS13), 12);
		cr_assert_eq(kc_cipher_explicit_nonce(&kc_ciphers[i], KC_TLS13), 0);
	}
	cr_assert_eq(kc_cipher_explicit_nonce(gcm, KC_TLS12), 8);
	cr_assert_eq(kc_cipher_explicit_nonce(chacha, KC_TLS12), 0);
	/* header 5, tag 16; TLS 1.2 GCM/CCM + 8 nonce; TLS 1.3 + 1 type */
	cr_assert_eq(kc_cipher_record_overhead(gcm, KC_TLS13), 22);
	cr_assert_eq(kc_cipher_record_overhead(gcm, KC_TLS12), 29);
	cr_assert_eq(kc_cipher_record_overhead(ccm, KC_TLS12), 29);
	cr_assert_eq(kc_cipher_record_overhead(chacha, KC_TLS12), 21);
	cr_assert_eq(kc_cipher_record_overhead(chacha, KC_TLS13), 22);
}

Test(cipher, lookups)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++) {
		const struct kc_cipher *c = &kc_ciphers[i];
		cr_assert_eq(kc_cipher_by_gnutls(c->gnutls), c);
		cr_assert_eq(kc_cipher_by_name(c->name), c);
		cr_assert_eq(kc_cipher_by_kernel_id(c->kernel.id), c);
		cr_assert_eq(kc_cipher_kernel_id(c->gnutls), c->kernel.id);
	}
	cr_assert_eq(kc_cipher_by_name("chacha20-poly1305"),
		     kc_cipher_by_gnutls(GNUTLS_CIPHER_CHACHA20_POLY1305));
	cr_assert_eq(kc_cipher_by_name("Aes-256-Gcm")->gnutls, GNUTLS_CIPHER_AES_256_GCM);
	/* GnuTLS ciphers the kernel lacks, and nonsense */
	cr_assert_null(kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_256_CCM));
	cr_assert_null(kc_cipher_by_gnutls(GNUTLS_CIPHER_AES_128_CCM_8));
	cr_assert_null(kc_cipher_by_gnutls(GNUTLS_CIPHER_UNKNOWN));
	cr_assert_null(kc_cipher_by_name("AES-256-CCM"));
	cr_assert_null(kc_cipher_by_name(""));
	cr_assert_null(kc_cipher_by_kernel_id(0));
	cr_assert_null(kc_cipher_by_kernel_id(58));
	cr_assert_str_eq(kc_cipher_name(GNUTLS_CIPHER_AES_256_CCM), "AES-256-CCM");
	cr_assert_eq(kc_cipher_kernel_id(GNUTLS_CIPHER_AES_256_CCM), 0);
}

Test(cipher, default_preference)
{
	static const gnutls_cipher_algorithm_t order[KC_NCIPHERS] = {
		GNUTLS_CIPHER_AES_256_GCM, GNUTLS_CIPHER_AES_128_GCM,
		GNUTLS_CIPHER_CHACHA20_POLY1305, GNUTLS_CIPHER_AES_128_CCM,
	};
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		cr_assert_eq(kc_cipher_preferred(i)->gnutls, order[i], "%zu", i);
	cr_assert_null(kc_cipher_preferred(KC_NCIPHERS));
}

Test(cipher, limits_cite_their_source)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++) {
		const struct kc_cipher *c = &kc_ciphers[i];
		cr_assert_eq(kc_limit_for(c->gnutls), &c->limit, "%s", c->name);
		cr_assert(c->limit.source && strstr(c->limit.source, "RFC"), "%s", c->name);
	}
}

Test(cipher, names_for_messages)
{
	char buf[80], small[8];
	cr_assert_str_eq(kc_cipher_names(buf, sizeof buf),
			 "AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305 or AES-128-CCM");
	cr_assert_str_eq(kc_cipher_names(small, sizeof small), "AES-128");
}
