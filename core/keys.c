/* core/keys.c: traffic keys out of GnuTLS and into the kernel's format. */
#include "config.h"

#include <string.h>
#include <strings.h>
#include <gnutls/crypto.h>

#include "core/keys.h"

struct cipher_row {
	gnutls_cipher_algorithm_t cipher;
	const char *name;          /* what users type and see */
	int kernel_id;             /* TLS_CIPHER_* */
};

static const struct cipher_row ciphers[] = {
	{ GNUTLS_CIPHER_AES_128_GCM, "AES-128-GCM", TLS_CIPHER_AES_GCM_128 },
	{ GNUTLS_CIPHER_AES_256_GCM, "AES-256-GCM", TLS_CIPHER_AES_GCM_256 },
	{ GNUTLS_CIPHER_CHACHA20_POLY1305, "CHACHA20-POLY1305", TLS_CIPHER_CHACHA20_POLY1305 },
	{ GNUTLS_CIPHER_AES_128_CCM, "AES-128-CCM", TLS_CIPHER_AES_CCM_128 },
};

static const struct cipher_row *find(gnutls_cipher_algorithm_t cipher)
{
	for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
		if (ciphers[i].cipher == cipher)
			return &ciphers[i];
	return NULL;
}

bool kc_cipher_supported(gnutls_cipher_algorithm_t cipher)
{
	return find(cipher) != NULL;
}

const char *kc_cipher_name(gnutls_cipher_algorithm_t cipher)
{
	const struct cipher_row *r = find(cipher);
	return r ? r->name : gnutls_cipher_get_name(cipher);
}

const char *kc_cipher_priority_name(gnutls_cipher_algorithm_t cipher)
{
	/* The GnuTLS priority keywords happen to be our display names. */
	const struct cipher_row *r = find(cipher);
	return r ? r->name : NULL;
}

gnutls_cipher_algorithm_t kc_cipher_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
		if (strcasecmp(ciphers[i].name, name) == 0)
			return ciphers[i].cipher;
	return GNUTLS_CIPHER_UNKNOWN;
}

int kc_cipher_kernel_id(gnutls_cipher_algorithm_t cipher)
{
	const struct cipher_row *r = find(cipher);
	return r ? r->kernel_id : 0;
}

static void put_be64(unsigned char out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (unsigned char)v;
}

int kc_keys_from_session(gnutls_session_t session, enum kc_dir dir,
			 struct kc_key_material *km, struct kc_err *err)
{
	gnutls_datum_t mac = { 0 }, iv = { 0 }, key = { 0 };
	unsigned char seq[8];
	int ver = gnutls_protocol_get_version(session);

	memset(km, 0, sizeof *km);
	if (ver == GNUTLS_TLS1_2)
		km->version = KC_TLS12;
	else if (ver == GNUTLS_TLS1_3)
		km->version = KC_TLS13;
	else
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "negotiated %s, but kernel TLS needs TLS 1.2 or 1.3",
				  gnutls_protocol_get_name(ver));
	km->cipher = gnutls_cipher_get(session);
	if (!kc_cipher_supported(km->cipher))
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "negotiated cipher %s cannot be handed to kernel TLS; "
				  "use AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305 or AES-128-CCM",
				  gnutls_cipher_get_name(km->cipher));

	/* The datums point into GnuTLS's epoch: copy them at once. */
	int rc = gnutls_record_get_state(session, dir == KC_RX, &mac, &iv, &key, seq);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "cannot read %s keys from GnuTLS: %s",
				  dir == KC_RX ? "receive" : "send", gnutls_strerror(rc));
	if (key.size > sizeof km->key || iv.size > sizeof km->iv || mac.size != 0)
		return kc_err_set(err, KC_E_INTERNAL,
				  "unexpected key material sizes from GnuTLS (key %u, iv %u, mac %u)",
				  key.size, iv.size, mac.size);
	memcpy(km->key, key.data, key.size);
	km->key_len = key.size;
	memcpy(km->iv, iv.data, iv.size);
	km->iv_len = iv.size;
	km->seq = 0;
	for (int i = 0; i < 8; i++)
		km->seq = km->seq << 8 | seq[i];
	gnutls_memset(seq, 0, sizeof seq);
	/* Our caller has just had GnuTLS derive these keys (the handshake,
	 * gnutls_session_key_update, gnutls_handshake_write): wipe what that
	 * left on the stack. */
	kc_burn_stack(KC_BURN_HANDSHAKE);
	return 0;
}

/* Fill the iv/key/salt/rec_seq arrays common to every struct. */
#define FILL(ci, km, salt_len)                                                  \
	do {                                                                    \
		memcpy((ci).key, (km)->key, sizeof (ci).key);                   \
		put_be64((ci).rec_seq, (km)->seq);                              \
		if ((salt_len) == 0) {                                          \
			memcpy((ci).iv, (km)->iv, sizeof (ci).iv);              \
		} else {                                                        \
			memcpy((ci).salt, (km)->iv, 4);                         \
			if ((km)->version == KC_TLS13)                          \
				memcpy((ci).iv, (km)->iv + 4, 8);               \
			else                                                    \
				put_be64((ci).iv, (km)->seq);                   \
		}                                                               \
	} while (0)

int kc_keys_to_crypto_info(const struct kc_key_material *km,
			   union kc_crypto_info *ci, socklen_t *len,
			   struct kc_err *err)
{
	size_t want_key, want_iv;

	memset(ci, 0, sizeof *ci);
	switch (km->cipher) {
	case GNUTLS_CIPHER_AES_128_GCM:
	case GNUTLS_CIPHER_AES_128_CCM:
		want_key = 16;
		break;
	case GNUTLS_CIPHER_AES_256_GCM:
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		want_key = 32;
		break;
	default:
		return kc_err_set(err, KC_E_INTERNAL, "cipher %s has no kernel TLS mapping",
				  kc_cipher_name(km->cipher));
	}
	want_iv = (km->version == KC_TLS12 && km->cipher != GNUTLS_CIPHER_CHACHA20_POLY1305)
		  ? 4 : 12;
	if (km->key_len != want_key || km->iv_len != want_iv)
		return kc_err_set(err, KC_E_INTERNAL,
				  "key material of the wrong size for %s (key %zu, iv %zu)",
				  kc_cipher_name(km->cipher), km->key_len, km->iv_len);

	ci->info.version = km->version;
	ci->info.cipher_type = (uint16_t)kc_cipher_kernel_id(km->cipher);
	switch (km->cipher) {
	case GNUTLS_CIPHER_AES_128_GCM:
		FILL(ci->aes_gcm_128, km, 4);
		*len = sizeof ci->aes_gcm_128;
		break;
	case GNUTLS_CIPHER_AES_256_GCM:
		FILL(ci->aes_gcm_256, km, 4);
		*len = sizeof ci->aes_gcm_256;
		break;
	case GNUTLS_CIPHER_AES_128_CCM:
		FILL(ci->aes_ccm_128, km, 4);
		*len = sizeof ci->aes_ccm_128;
		break;
	default: /* ChaCha20-Poly1305: the whole 12-byte iv, no salt */
		FILL(ci->chacha20_poly1305, km, 0);
		*len = sizeof ci->chacha20_poly1305;
		break;
	}
	return 0;
}

size_t kc_keys_record_overhead(uint16_t version, gnutls_cipher_algorithm_t cipher)
{
	size_t o = 5 + 16;   /* header + tag */
	if (version == KC_TLS13)
		o += 1;      /* inner content type */
	else if (cipher != GNUTLS_CIPHER_CHACHA20_POLY1305)
		o += 8;      /* explicit nonce */
	return o;
}

void kc_keys_wipe(struct kc_key_material *km)
{
	gnutls_memset(km, 0, sizeof *km);
}

void kc_crypto_info_wipe(union kc_crypto_info *ci)
{
	gnutls_memset(ci, 0, sizeof *ci);
}

__attribute__((noinline)) void kc_burn_stack(size_t n)
{
	unsigned char buf[n];

	/* gnutls_memset writes through a volatile pointer, and buf escapes
	 * to it: neither the writes nor the array can be optimised away. */
	gnutls_memset(buf, 0, n);
	__asm__ __volatile__("" : : "r"(buf) : "memory");
}
