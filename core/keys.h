/* core/keys.h: traffic key material taken from GnuTLS at the handover and
 * after each key update, and its mapping to the kernel's crypto_info.
 *
 * The mapping (as tlshd and GnuTLS's own lib/system/ktls.c make it):
 *   TLS 1.3 AES-GCM/CCM:  salt = iv[0..4], iv = iv[4..12], rec_seq = seq
 *   TLS 1.3 ChaCha20:     iv = iv[0..12], no salt
 *   TLS 1.2 AES-GCM/CCM:  GnuTLS gives a 4-byte iv (the implicit salt);
 *                         explicit iv = seq (big endian), rec_seq = seq
 *   TLS 1.2 ChaCha20:     iv = the 12-byte iv GnuTLS gives (NOT seq)  */
#ifndef KC_KEYS_H
#define KC_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <linux/tls.h>
#include <gnutls/gnutls.h>

#include "core/cipher.h"
#include "core/err.h"

enum kc_dir { KC_RX = 0, KC_TX = 1 };

struct kc_key_material {
	uint16_t version;                   /* KC_TLS12 or KC_TLS13 */
	gnutls_cipher_algorithm_t cipher;   /* one of the table's (core/cipher.h) */
	unsigned char key[32];
	size_t key_len;
	unsigned char iv[12];               /* as GnuTLS reports it */
	size_t iv_len;                      /* kc_cipher_iv_len(): 4 or 12 */
	uint64_t seq;                       /* sequence number of the next record */
};

/* Everything the kernel accepts, by size. */
union kc_crypto_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 aes_gcm_128;
	struct tls12_crypto_info_aes_gcm_256 aes_gcm_256;
	struct tls12_crypto_info_aes_ccm_128 aes_ccm_128;
	struct tls12_crypto_info_chacha20_poly1305 chacha20_poly1305;
};

/* Copy the current state of one direction out of GnuTLS, then wipe the
 * stack below the caller's frame (kc_burn_stack), where GnuTLS has just
 * derived these keys.  Once
 * gnutls_handshake_write() has been used, GnuTLS's read sequence number is
 * meaningless (it counts the handshake messages we fed it): the caller sets
 * km->seq itself (0 after a TLS 1.3 key update). */
int kc_keys_from_session(gnutls_session_t session, enum kc_dir dir,
			 struct kc_key_material *km, struct kc_err *err);

/* Build the kernel's crypto_info for km; *len gets the exact struct size. */
int kc_keys_to_crypto_info(const struct kc_key_material *km,
			   union kc_crypto_info *ci, socklen_t *len,
			   struct kc_err *err);

/* The rec_seq of a crypto_info of cipher c (as getsockopt returns it). */
uint64_t kc_crypto_info_rec_seq(const union kc_crypto_info *ci, const struct kc_cipher *c);

void kc_keys_wipe(struct kc_key_material *km);
void kc_crypto_info_wipe(union kc_crypto_info *ci);

/* Overwrite n bytes of the stack below the caller's frame.  GnuTLS and
 * nettle leave key material in the frames of calls that have returned
 * (nonces, nettle's CCM state, key derivation temporaries): called right
 * after such calls, from the frame that made them, this wipes what they
 * left.  Measured on GnuTLS 3.7.9 / x86_64: one AEAD seal or open uses at
 * most 3.3 KiB below its caller, a handshake about 6 KiB; the sizes leave
 * room for bigger keys (GMP allocates temporaries of up to 32 KiB on the
 * stack) and other builds. */
#define KC_BURN_RECORD (8u << 10)      /* one AEAD seal or open */
#define KC_BURN_HANDSHAKE (64u << 10)  /* a handshake, a key update */
void kc_burn_stack(size_t n);

#endif
