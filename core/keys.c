/* core/keys.c: traffic keys out of GnuTLS and into the kernel's format. */
#include "config.h"

#include <string.h>
#include <gnutls/crypto.h>

#include "core/keys.h"

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
	if (!kc_cipher_supported(km->cipher)) {
		char names[80];
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "negotiated cipher %s cannot be handed to kernel TLS; use %s",
				  gnutls_cipher_get_name(km->cipher),
				  kc_cipher_names(names, sizeof names));
	}

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

/* Every crypto_info is struct tls_crypto_info, then iv, key, salt and
 * rec_seq, each as long as the cipher's row says. */
int kc_keys_to_crypto_info(const struct kc_key_material *km,
			   union kc_crypto_info *ci, socklen_t *len,
			   struct kc_err *err)
{
	const struct kc_cipher *c = kc_cipher_by_gnutls(km->cipher);

	memset(ci, 0, sizeof *ci);
	if (!c)
		return kc_err_set(err, KC_E_INTERNAL, "cipher %s has no kernel TLS mapping",
				  kc_cipher_name(km->cipher));
	if (km->key_len != c->key_size || km->iv_len != kc_cipher_iv_len(c, km->version))
		return kc_err_set(err, KC_E_INTERNAL,
				  "key material of the wrong size for %s (key %zu, iv %zu)",
				  c->name, km->key_len, km->iv_len);

	unsigned char *iv = (unsigned char *)ci + sizeof ci->info;
	unsigned char *key = iv + c->iv_size, *salt = key + c->key_size;
	ci->info.version = km->version;
	ci->info.cipher_type = c->kernel.id;
	memcpy(salt, km->iv, c->salt_size);
	if (kc_cipher_explicit_nonce(c, km->version))
		put_be64(iv, km->seq);   /* TLS 1.2: the explicit nonce starts at seq */
	else
		memcpy(iv, km->iv + c->salt_size, c->iv_size);
	memcpy(key, km->key, c->key_size);
	put_be64(salt + c->salt_size, km->seq);
	*len = c->kernel.info_size;
	return 0;
}

uint64_t kc_crypto_info_rec_seq(const union kc_crypto_info *ci, const struct kc_cipher *c)
{
	const unsigned char *rs = (const unsigned char *)ci + c->kernel.info_size - c->rec_seq_size;
	uint64_t seq = 0;

	for (int i = 0; i < c->rec_seq_size; i++)
		seq = seq << 8 | rs[i];
	return seq;
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
