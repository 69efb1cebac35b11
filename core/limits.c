/* core/limits.c: rekey points from the per-cipher key usage limits, which
 * live in the cipher table with their sources (core/cipher.c). */
#include "config.h"

#include <stddef.h>

#include "core/limits.h"

const struct kc_limit *kc_limit_for(gnutls_cipher_algorithm_t cipher)
{
	const struct kc_cipher *c = kc_cipher_by_gnutls(cipher);
	return c ? &c->limit : NULL;
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
