/* core/cipher.h: the AEAD ciphers ktlsctl hands to kernel TLS, one table.
 *
 * Every fact about a cipher lives in its row (core/cipher.c), as in the
 * kernel's own CIPHER_DESC table (net/tls): the GnuTLS algorithm and
 * priority keyword, the name users type and see, the AEAD sizes, whether a
 * TLS 1.2 record carries an explicit nonce, the kernel's TLS_CIPHER_* id
 * with its crypto algorithm and crypto_info size, and the confidentiality
 * limit with its source.  The rows are the four ciphers both GnuTLS and
 * Linux kTLS do, in the order reports list them: AES-128-GCM, AES-256-GCM,
 * CHACHA20-POLY1305, AES-128-CCM. */
#ifndef KC_CIPHER_H
#define KC_CIPHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>

#define KC_TLS12 0x0303
#define KC_TLS13 0x0304

/* A cipher as the kernel knows it.  core/probe.c lists the kernel ciphers
 * ktlsctl cannot use (SM4, ARIA) with the same struct. */
struct kc_ktls_cipher {
	uint16_t id;          /* TLS_CIPHER_* */
	const char *name;     /* "aes-gcm-128", ..., as ss(8) names the AES-GCM ones */
	const char *crypto;   /* "gcm(aes)", "rfc7539(chacha20,poly1305)", ... */
	socklen_t info_size;  /* sizeof(struct tls12_crypto_info_...) */
};

/* How many records one traffic key may protect (core/limits.h applies it). */
struct kc_limit {
	uint64_t records;     /* confidentiality limit, full-size records; 0 = none that matters */
	uint64_t forgeries;   /* integrity limit, failed decryptions; 0 = none that matters.
	                       * Informational: TLS over TCP closes on the first failure. */
	const char *source;   /* short citation, fit to show to a user */
};

struct kc_cipher {
	gnutls_cipher_algorithm_t gnutls;
	const char *name;          /* "AES-128-GCM": what users type and see */
	const char *priority;      /* the GnuTLS priority keyword (after the '+') */
	unsigned preference;       /* place in the default priority list, 1 first */
	/* Sizes in bytes, named as the kernel's crypto_info fields: the
	 * 12-byte nonce base is salt || iv; rec_seq is the sequence number. */
	uint8_t key_size, salt_size, iv_size, tag_size, rec_seq_size;
	uint8_t tls12_explicit_nonce;   /* nonce bytes each TLS 1.2 record carries */
	struct kc_ktls_cipher kernel;
	struct kc_limit limit;
};

#define KC_NCIPHERS 4
extern const struct kc_cipher kc_ciphers[KC_NCIPHERS];

/* Lookups; NULL for a cipher not in the table. */
const struct kc_cipher *kc_cipher_by_gnutls(gnutls_cipher_algorithm_t alg);
const struct kc_cipher *kc_cipher_by_name(const char *name);   /* any case */
const struct kc_cipher *kc_cipher_by_kernel_id(unsigned int id);
/* The i-th (from 0) of the default priority list, NULL past its end. */
const struct kc_cipher *kc_cipher_preferred(size_t i);

/* Per TLS version (KC_TLS12, KC_TLS13): the explicit nonce each record
 * carries; the iv GnuTLS reports for a direction (kc_key_material.iv_len:
 * the salt alone when records carry the rest, else the whole 12 bytes);
 * what a record adds on the wire to its plaintext (header, explicit nonce,
 * tag, TLS 1.3 inner content type). */
size_t kc_cipher_explicit_nonce(const struct kc_cipher *c, uint16_t version);
size_t kc_cipher_iv_len(const struct kc_cipher *c, uint16_t version);
size_t kc_cipher_record_overhead(const struct kc_cipher *c, uint16_t version);

/* "AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305 or AES-128-CCM", for
 * messages that say what to use instead. */
const char *kc_cipher_names(char *buf, size_t len);

/* Shorthands by GnuTLS algorithm.  kc_cipher_name gives GnuTLS's own name
 * for a cipher not in the table; kc_cipher_from_name gives
 * GNUTLS_CIPHER_UNKNOWN and kc_cipher_kernel_id 0 for one. */
bool kc_cipher_supported(gnutls_cipher_algorithm_t alg);
const char *kc_cipher_name(gnutls_cipher_algorithm_t alg);
gnutls_cipher_algorithm_t kc_cipher_from_name(const char *name);
int kc_cipher_kernel_id(gnutls_cipher_algorithm_t alg);

#endif
