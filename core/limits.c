/* core/limits.c: the per-cipher key usage limits, in one table.
 *
 * Sources (checked against the documents' text for this module unless
 * noted):
 *
 * AES-128-GCM, AES-256-GCM: 2^24 records.
 *   RFC 8446 §5.5: "up to 2^24.5 full-size records (about 24 million) may
 *   be encrypted ... safety margin of approximately 2^-57 for AE security".
 *   GnuTLS 3.7.9 rekeys by itself after 2^24 sent records in TLS 1.3
 *   (lib/record.c:611-617, sequence_number & 0xffffff == 0xfffffd; read in
 *   the source) -- a path kTLS bypasses, hence this module.  rustls sets
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

#include <stddef.h>

#include "core/limits.h"

struct limit_row {
	gnutls_cipher_algorithm_t cipher;
	struct kc_limit limit;
};

static const struct limit_row rows[] = {
	{ GNUTLS_CIPHER_AES_128_GCM,
	  { UINT64_C(1) << 24, UINT64_C(1) << 36,
	    "2^24 records (RFC 8446 5.5 allows 2^24.5; GnuTLS and rustls use 2^24)" } },
	{ GNUTLS_CIPHER_AES_256_GCM,
	  { UINT64_C(1) << 24, UINT64_C(1) << 36,
	    "2^24 records (RFC 8446 5.5 allows 2^24.5; GnuTLS and rustls use 2^24)" } },
	{ GNUTLS_CIPHER_AES_128_CCM,
	  { UINT64_C(1) << 23, UINT64_C(11863283),
	    "2^23 records (RFC 9147 4.5.3 and appendix B.1; draft-irtf-cfrg-aead-limits 6.4.1)" } },
	{ GNUTLS_CIPHER_CHACHA20_POLY1305,
	  { 0, UINT64_C(1) << 36,
	    "none that matters (RFC 8446 5.5: the sequence number wraps first)" } },
};

const struct kc_limit *kc_limit_for(gnutls_cipher_algorithm_t cipher)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].cipher == cipher)
			return &rows[i].limit;
	return NULL;
}

uint64_t kc_limit_rekey_point(gnutls_cipher_algorithm_t cipher, uint64_t key_update_after)
{
	const struct kc_limit *l = kc_limit_for(cipher);
	if (!l || l->records == 0)
		return key_update_after ? key_update_after : UINT64_MAX;

	uint64_t margin = l->records / 64;
	if (margin < KC_LIMIT_MARGIN)
		margin = KC_LIMIT_MARGIN;
	/* Every row's limit is far above the margin; guard anyway so a
	 * future tiny limit cannot wrap around. */
	uint64_t point = l->records > margin ? l->records - margin : 1;
	if (key_update_after && key_update_after < point)
		point = key_update_after;
	return point;
}

double kc_limit_percent(gnutls_cipher_algorithm_t cipher, uint64_t records)
{
	const struct kc_limit *l = kc_limit_for(cipher);
	if (!l || l->records == 0)
		return 0.0;
	return (double)records * 100.0 / (double)l->records;
}

uint64_t kc_limit_write_budget(uint64_t rekey_point, uint64_t current)
{
	if (current >= rekey_point)
		return 0;
	uint64_t left = rekey_point - current;
	if (left > UINT64_MAX / KC_LIMIT_RECORD_PAYLOAD)
		return UINT64_MAX;
	return left * KC_LIMIT_RECORD_PAYLOAD;
}
