/* core/cipher.c: the cipher table (see cipher.h).
 *
 * Sizes: RFC 5288 (AES-GCM), RFC 6655 (AES-CCM) and RFC 7905 (ChaCha20-
 * Poly1305) for TLS 1.2, RFC 8446 for TLS 1.3, and the kernel's
 * include/uapi/linux/tls.h; tests/unit/test_cipher.c checks every row
 * against GnuTLS and the kernel headers.
 *
 * Confidentiality limits (checked against the documents' text unless
 * noted):
 *
 * AES-128-GCM, AES-256-GCM: 2^24 records.
 *   RFC 8446 §5.5: "up to 2^24.5 full-size records (about 24 million) may
 *   be encrypted ... safety margin of approximately 2^-57 for AE security".
 *   GnuTLS 3.7.9 rekeys by itself after 2^24 sent records in TLS 1.3
 *   (lib/record.c:611-617, sequence_number & 0xffffff == 0xfffffd; read in
 *   the source) -- a path kTLS bypasses, hence core/limits.  rustls sets
 *   CipherSuiteCommon::confidentiality_limit to 2^24 for AES-GCM, from
 *   draft-irtf-cfrg-aead-limits with p = 2^-60 and l = 2^10 blocks (read in
 *   its documentation).  We take the rounder, lower 2^24.
 *
 * AES-128-CCM: 2^23 records.
 *   RFC 8446 gives no CCM limit.  RFC 9147 (DTLS 1.3) §4.5.3: "the analysis
 *   in Appendix B shows that a limit of 2^23 packets can be used to obtain
 *   the same confidentiality protection as the limits specified in TLS".
 *   Appendix B.1 derives it from [CCM-ANALYSIS] Theorem 2: advantage
 *   (2l * q)^2 / 2^128 with l = 2^10 blocks (2^14-byte records) and target
 *   2^-60 gives q <= 2^23.  draft-irtf-cfrg-aead-limits-13 §6.4.1 states the
 *   same bound as q <= sqrt(p) * 2^63 / L, which is 2^23 for p = 2^-60,
 *   L = 2^10.  NOTE: 2^23.5 in RFC 9147 is the CCM *integrity* limit
 *   (failed decryptions, §4.5.3 and Appendix B.2), not the confidentiality
 *   one.  GnuTLS itself treats CCM like GCM (2^24); we are stricter.
 *
 * CHACHA20-POLY1305: none that matters (0 in the table).
 *   RFC 8446 §5.5: "the record sequence number would wrap before the safety
 *   limit is reached"; draft-irtf-cfrg-aead-limits-13 §6.3.1: CA <= 0, no
 *   limit beyond the PRF security of ChaCha20.  rustls uses u64::MAX;
 *   GnuTLS 3.7.9 flags it GNUTLS_CIPHER_FLAG_NO_REKEY (ciphers.c:193).
 *
 * Integrity limits (failed decryptions, RFC 9147 §4.5.3): 2^36 for AES-GCM
 * and ChaCha20-Poly1305, 2^23.5 (11863283) for AES-128-CCM.  TLS over TCP
 * ends the connection at the first record that fails authentication, so
 * these never bind here; they are kept for display.
 *
 * These are single-key bounds, the way RFC 8446 §5.5 sets them; the
 * draft's multi-key bounds (§7, stricter) are not applied. */
#include "config.h"

#include <stdio.h>
#include <strings.h>
#include <linux/tls.h>

#include "core/cipher.h"

#define GCM_LIMIT { UINT64_C(1) << 24, UINT64_C(1) << 36, \
	"2^24 records (RFC 8446 5.5 allows 2^24.5; GnuTLS and rustls use 2^24)" }

const struct kc_cipher kc_ciphers[KC_NCIPHERS] = {
	{
		.gnutls = GNUTLS_CIPHER_AES_128_GCM, .name = "AES-128-GCM",
		.priority = "AES-128-GCM", .preference = 2,
		.key_size = 16, .salt_size = 4, .iv_size = 8, .tag_size = 16, .rec_seq_size = 8,
		.tls12_explicit_nonce = 8,
		.kernel = { TLS_CIPHER_AES_GCM_128, "aes-gcm-128", "gcm(aes)",
			    sizeof(struct tls12_crypto_info_aes_gcm_128) },
		.limit = GCM_LIMIT,
	},
	{
		.gnutls = GNUTLS_CIPHER_AES_256_GCM, .name = "AES-256-GCM",
		.priority = "AES-256-GCM", .preference = 1,
		.key_size = 32, .salt_size = 4, .iv_size = 8, .tag_size = 16, .rec_seq_size = 8,
		.tls12_explicit_nonce = 8,
		.kernel = { TLS_CIPHER_AES_GCM_256, "aes-gcm-256", "gcm(aes)",
			    sizeof(struct tls12_crypto_info_aes_gcm_256) },
		.limit = GCM_LIMIT,
	},
	{
		/* The whole 12-byte nonce base is the iv; no explicit nonce
		 * on the wire, in TLS 1.2 either (RFC 7905). */
		.gnutls = GNUTLS_CIPHER_CHACHA20_POLY1305, .name = "CHACHA20-POLY1305",
		.priority = "CHACHA20-POLY1305", .preference = 3,
		.key_size = 32, .salt_size = 0, .iv_size = 12, .tag_size = 16, .rec_seq_size = 8,
		.tls12_explicit_nonce = 0,
		.kernel = { TLS_CIPHER_CHACHA20_POLY1305, "chacha20-poly1305",
			    "rfc7539(chacha20,poly1305)",
			    sizeof(struct tls12_crypto_info_chacha20_poly1305) },
		.limit = { 0, UINT64_C(1) << 36,
			   "none that matters (RFC 8446 5.5: the sequence number wraps first)" },
	},
	{
		.gnutls = GNUTLS_CIPHER_AES_128_CCM, .name = "AES-128-CCM",
		.priority = "AES-128-CCM", .preference = 4,
		.key_size = 16, .salt_size = 4, .iv_size = 8, .tag_size = 16, .rec_seq_size = 8,
		.tls12_explicit_nonce = 8,
		.kernel = { TLS_CIPHER_AES_CCM_128, "aes-ccm-128", "ccm(aes)",
			    sizeof(struct tls12_crypto_info_aes_ccm_128) },
		.limit = { UINT64_C(1) << 23, UINT64_C(11863283),
			   "2^23 records (RFC 9147 4.5.3 and appendix B.1; "
			   "draft-irtf-cfrg-aead-limits 6.4.1)" },
	},
};

const struct kc_cipher *kc_cipher_by_gnutls(gnutls_cipher_algorithm_t alg)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		if (kc_ciphers[i].gnutls == alg)
			return &kc_ciphers[i];
	return NULL;
}

const struct kc_cipher *kc_cipher_by_name(const char *name)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		if (strcasecmp(kc_ciphers[i].name, name) == 0)
			return &kc_ciphers[i];
	return NULL;
}

const struct kc_cipher *kc_cipher_by_kernel_id(unsigned int id)
{
	for (size_t i = 0; i < KC_NCIPHERS; i++)
		if (kc_ciphers[i].kernel.id == id)
			return &kc_ciphers[i];
	return NULL;
}

const struct kc_cipher *kc_cipher_preferred(size_t i)
{
	for (size_t j = 0; j < KC_NCIPHERS; j++)
		if (kc_ciphers[j].preference == i + 1)
			return &kc_ciphers[j];
	return NULL;
}

size_t kc_cipher_explicit_nonce(const struct kc_cipher *c, uint16_t version)
{
	return version == KC_TLS12 ? c->tls12_explicit_nonce : 0;
}

size_t kc_cipher_iv_len(const struct kc_cipher *c, uint16_t version)
{
	return kc_cipher_explicit_nonce(c, version) ? c->salt_size
						    : (size_t)c->salt_size + c->iv_size;
}

size_t kc_cipher_record_overhead(const struct kc_cipher *c, uint16_t version)
{
	return 5 + kc_cipher_explicit_nonce(c, version) + c->tag_size +
	       (version == KC_TLS13 ? 1 : 0);   /* header, TLS 1.3 inner type */
}

const char *kc_cipher_names(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < KC_NCIPHERS && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					i == 0 ? "" : i + 1 == KC_NCIPHERS ? " or " : ", ",
					kc_ciphers[i].name);
	return buf;
}

bool kc_cipher_supported(gnutls_cipher_algorithm_t alg)
{
	return kc_cipher_by_gnutls(alg) != NULL;
}

const char *kc_cipher_name(gnutls_cipher_algorithm_t alg)
{
	const struct kc_cipher *c = kc_cipher_by_gnutls(alg);
	return c ? c->name : gnutls_cipher_get_name(alg);
}

gnutls_cipher_algorithm_t kc_cipher_from_name(const char *name)
{
	const struct kc_cipher *c = kc_cipher_by_name(name);
	return c ? c->gnutls : GNUTLS_CIPHER_UNKNOWN;
}

int kc_cipher_kernel_id(gnutls_cipher_algorithm_t alg)
{
	const struct kc_cipher *c = kc_cipher_by_gnutls(alg);
	return c ? c->kernel.id : 0;
}
