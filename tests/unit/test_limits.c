/* tests/unit/test_limits.c: the key usage limits table and rekey points. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "core/keys.h"
#include "core/limits.h"

static const gnutls_cipher_algorithm_t supported[] = {
	GNUTLS_CIPHER_AES_128_GCM, GNUTLS_CIPHER_AES_256_GCM,
	GNUTLS_CIPHER_AES_128_CCM, GNUTLS_CIPHER_CHACHA20_POLY1305,
};

Test(limits, table_values)
{
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_AES_128_GCM)->records, 16777216u);
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_AES_256_GCM)->records, 16777216u);
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_AES_128_CCM)->records, 8388608u);
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_CHACHA20_POLY1305)->records, 0);
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_AES_128_CCM)->forgeries, 11863283u);
	cr_assert_eq(kc_limit_for(GNUTLS_CIPHER_AES_128_GCM)->forgeries, UINT64_C(1) << 36);
}

Test(limits, every_supported_cipher_has_a_cited_row)
{
	for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++) {
		cr_assert(kc_cipher_supported(supported[i]));
		const struct kc_limit *l = kc_limit_for(supported[i]);
		cr_assert_not_null(l, "%s", kc_cipher_name(supported[i]));
		cr_assert(l->source && strstr(l->source, "RFC"), "%s", kc_cipher_name(supported[i]));
	}
}

Test(limits, unknown_cipher)
{
	cr_assert_null(kc_limit_for(GNUTLS_CIPHER_UNKNOWN));
	cr_assert_null(kc_limit_for(GNUTLS_CIPHER_AES_128_CBC));
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_UNKNOWN, 0), UINT64_MAX);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_UNKNOWN, 500), 500);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_UNKNOWN, 1000), 0.0, 1e-12);
}

Test(limits, default_rekey_points_keep_the_margin)
{
	/* limit - limit/64 */
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_GCM, 0), 16777216u - 262144u);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_256_GCM, 0), 16515072u);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_CCM, 0), 8388608u - 131072u);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_CHACHA20_POLY1305, 0), UINT64_MAX);
	for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++) {
		const struct kc_limit *l = kc_limit_for(supported[i]);
		if (!l->records)
			continue;
		uint64_t p = kc_limit_rekey_point(supported[i], 0);
		cr_assert_lt(p, l->records);
		cr_assert_geq(l->records - p, KC_LIMIT_MARGIN);
		/* the overshoot of one cut write stays far inside the limit */
		cr_assert_lt(p + KC_LIMIT_MAX_OVERSHOOT, l->records);
	}
}

Test(limits, key_update_after_only_lowers_the_point)
{
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_GCM, 1000), 1000);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_GCM, 1), 1);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_CCM, 8000000), 8000000);
	/* above the safe default, or above the limit: the default wins */
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_GCM, 16700000), 16515072u);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_GCM, UINT64_C(1) << 30), 16515072u);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_AES_128_CCM, UINT64_MAX), 8257536u);
	/* no limit: the user's point, if any */
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_CHACHA20_POLY1305, 1000), 1000);
	cr_assert_eq(kc_limit_rekey_point(GNUTLS_CIPHER_CHACHA20_POLY1305, UINT64_C(1) << 40),
		     UINT64_C(1) << 40);
}

Test(limits, percent)
{
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_AES_128_GCM, 0), 0.0, 1e-12);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_AES_128_GCM, 1u << 23), 50.0, 1e-9);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_AES_128_CCM, 1u << 23), 100.0, 1e-9);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_AES_256_GCM, 1u << 25), 200.0, 1e-9);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_CHACHA20_POLY1305, UINT64_MAX), 0.0, 1e-12);
	cr_assert_float_eq(kc_limit_percent(GNUTLS_CIPHER_AES_128_GCM, 16515072u), 98.4375, 1e-9);
}

Test(limits, write_budget)
{
	cr_assert_eq(kc_limit_write_budget(1000, 1000), 0);
	cr_assert_eq(kc_limit_write_budget(1000, 1001), 0);
	cr_assert_eq(kc_limit_write_budget(1000, 999), 16384);
	cr_assert_eq(kc_limit_write_budget(1000, 0), 1000u * 16384u);
	cr_assert_eq(kc_limit_write_budget(UINT64_MAX, 0), UINT64_MAX);
	cr_assert_eq(kc_limit_write_budget(UINT64_MAX / 16384, 0), (UINT64_MAX / 16384) * 16384);
	cr_assert_eq(kc_limit_write_budget(UINT64_MAX / 16384 + 1, 0), UINT64_MAX);
}

/* The overshoot bound: records a send of `budget` bytes makes, with an
 * `open` byte record left open by MSG_MORE, modelled as the kernel splits
 * (tls_sw_sendmsg: the open record is topped up first). */
static uint64_t records_for_send(uint64_t open, uint64_t n)
{
	return (open + n + KC_LIMIT_RECORD_PAYLOAD - 1) / KC_LIMIT_RECORD_PAYLOAD;
}

Test(limits, cut_writes_overshoot_by_at_most_one_record)
{
	uint64_t point = 1000;
	for (uint64_t cur = 990; cur <= point; cur++) {
		uint64_t b = kc_limit_write_budget(point, cur);
		cr_assert_leq(cur + records_for_send(0, b), point);
		for (uint64_t open = 1; open < KC_LIMIT_RECORD_PAYLOAD; open += 4093)
			cr_assert_leq(cur + records_for_send(open, b), point + KC_LIMIT_MAX_OVERSHOOT);
	}
}
