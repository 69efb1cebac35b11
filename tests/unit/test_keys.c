/* tests/unit/test_keys.c: GnuTLS key material to the kernel's crypto_info.
 *
 * The expected layouts are the ones tlshd and GnuTLS's own kTLS
 * (lib/system/ktls.c) use, checked against real records. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "core/keys.h"

static struct kc_key_material km_for(uint16_t version, gnutls_cipher_algorithm_t cipher)
{
	struct kc_key_material km = { .version = version, .cipher = cipher };
	km.key_len = (cipher == GNUTLS_CIPHER_AES_256_GCM ||
		      cipher == GNUTLS_CIPHER_CHACHA20_POLY1305) ? 32 : 16;
	km.iv_len = (version == KC_TLS12 && cipher != GNUTLS_CIPHER_CHACHA20_POLY1305) ? 4 : 12;
	for (size_t i = 0; i < km.key_len; i++)
		km.key[i] = (unsigned char)(0xa0 + i);
	for (size_t i = 0; i < km.iv_len; i++)
		km.iv[i] = (unsigned char)(0x10 + i);
	km.seq = 0x0102030405060708ull;
	return km;
}

static const unsigned char seq_be[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

Test(keys, tls13_aes_gcm_128)
{
	struct kc_key_material km = km_for(KC_TLS13, GNUTLS_CIPHER_AES_128_GCM);
	union kc_crypto_info ci;
	socklen_t len;
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, NULL), 0);
	cr_assert_eq(len, sizeof(struct tls12_crypto_info_aes_gcm_128));
	cr_assert_eq(ci.info.version, TLS_1_3_VERSION);
	cr_assert_eq(ci.info.cipher_type, TLS_CIPHER_AES_GCM_128);
	cr_assert_arr_eq(ci.aes_gcm_128.salt, km.iv, 4);          /* iv[0..4] */
	cr_assert_arr_eq(ci.aes_gcm_128.iv, km.iv + 4, 8);        /* iv[4..12] */
	cr_assert_arr_eq(ci.aes_gcm_128.key, km.key, 16);
	cr_assert_arr_eq(ci.aes_gcm_128.rec_seq, seq_be, 8);
}

Test(keys, tls13_aes_gcm_256_and_ccm)
{
	struct kc_key_material km = km_for(KC_TLS13, GNUTLS_CIPHER_AES_256_GCM);
	union kc_crypto_info ci;
	socklen_t len;
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, NULL), 0);
	cr_assert_eq(len, sizeof(struct tls12_crypto_info_aes_gcm_256));
	cr_assert_eq(ci.info.cipher_type, TLS_CIPHER_AES_GCM_256);
	cr_assert_arr_eq(ci.aes_gcm_256.key, km.key, 32);
	cr_assert_arr_eq(ci.aes_gcm_256.salt, km.iv, 4);
	cr_assert_arr_eq(ci.aes_gcm_256.iv, km.iv + 4, 8);

	km = km_for(KC_TLS13, GNUTLS_CIPHER_AES_128_CCM);
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, NULL), 0);
	cr_assert_eq(len, sizeof(struct tls12_crypto_info_aes_ccm_128));
	cr_assert_eq(ci.info.cipher_type, TLS_CIPHER_AES_CCM_128);
	cr_assert_arr_eq(ci.aes_ccm_128.salt, km.iv, 4);
	cr_assert_arr_eq(ci.aes_ccm_128.iv, km.iv + 4, 8);
}

Test(keys, chacha_uses_the_whole_iv_in_both_versions)
{
	for (int v = 0; v < 2; v++) {
		struct kc_key_material km =
			km_for(v ? KC_TLS13 : KC_TLS12, GNUTLS_CIPHER_CHACHA20_POLY1305);
		union kc_crypto_info ci;
		socklen_t len;
		cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, NULL), 0);
		cr_assert_eq(len, sizeof(struct tls12_crypto_info_chacha20_poly1305));
		cr_assert_eq(ci.info.cipher_type, TLS_CIPHER_CHACHA20_POLY1305);
		/* TLS 1.2 too: not the sequence number (GnuTLS < 3.8.13 got this wrong). */
		cr_assert_arr_eq(ci.chacha20_poly1305.iv, km.iv, 12);
		cr_assert_arr_eq(ci.chacha20_poly1305.rec_seq, seq_be, 8);
	}
}

Test(keys, tls12_gcm_explicit_iv_is_the_sequence_number)
{
	struct kc_key_material km = km_for(KC_TLS12, GNUTLS_CIPHER_AES_128_GCM);
	union kc_crypto_info ci;
	socklen_t len;
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, NULL), 0);
	cr_assert_eq(ci.info.version, TLS_1_2_VERSION);
	cr_assert_arr_eq(ci.aes_gcm_128.salt, km.iv, 4);
	cr_assert_arr_eq(ci.aes_gcm_128.iv, seq_be, 8);
	cr_assert_arr_eq(ci.aes_gcm_128.rec_seq, seq_be, 8);
}

Test(keys, wrong_sizes_and_ciphers_are_refused)
{
	struct kc_key_material km = km_for(KC_TLS12, GNUTLS_CIPHER_AES_128_GCM);
	union kc_crypto_info ci;
	socklen_t len;
	struct kc_err err = { 0 };

	km.iv_len = 12;   /* a TLS 1.3 iv under TLS 1.2 GCM */
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, &err), -1);
	cr_assert(strstr(err.msg, "wrong size"));

	km = km_for(KC_TLS13, GNUTLS_CIPHER_AES_256_CCM);
	cr_assert_eq(kc_keys_to_crypto_info(&km, &ci, &len, &err), -1);
	cr_assert(strstr(err.msg, "no kernel TLS mapping"));
}

Test(keys, names)
{
	cr_assert_eq(kc_cipher_from_name("aes-128-gcm"), GNUTLS_CIPHER_AES_128_GCM);
	cr_assert_eq(kc_cipher_from_name("CHACHA20-POLY1305"), GNUTLS_CIPHER_CHACHA20_POLY1305);
	cr_assert_eq(kc_cipher_from_name("AES-256-CCM"), GNUTLS_CIPHER_UNKNOWN);
	cr_assert_str_eq(kc_cipher_name(GNUTLS_CIPHER_AES_128_CCM), "AES-128-CCM");
	cr_assert(kc_cipher_supported(GNUTLS_CIPHER_AES_256_GCM));
	cr_assert_not(kc_cipher_supported(GNUTLS_CIPHER_AES_128_CCM_8));
	cr_assert_eq(kc_cipher_kernel_id(GNUTLS_CIPHER_CHACHA20_POLY1305), TLS_CIPHER_CHACHA20_POLY1305);
}
