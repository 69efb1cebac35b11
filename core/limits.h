/* core/limits.h: how many records one traffic key may protect, per cipher,
 * and where to refresh the key before that.
 *
 * A limit counts records protected under ONE key in ONE direction: the
 * kernel's rec_seq on the kernel channel, the channel's own count in user
 * space.  It resets to 0 at each TLS 1.3 key update.  The same table serves
 * both directions: on receive it bounds the records the peer encrypted
 * under its current key.  The values and their sources are in the cipher
 * table (core/cipher.c). */
#ifndef KC_LIMITS_H
#define KC_LIMITS_H

#include <stdint.h>
#include <gnutls/gnutls.h>

#include "core/cipher.h"   /* struct kc_limit */

/* Largest plaintext of one TLS record (RFC 8446 §5.1, 2^14). */
#define KC_LIMIT_RECORD_PAYLOAD 16384u

/* The fewest records kept between the rekey point and the limit, whatever
 * the limit.  The default margin is limit/64 (262144 records for AES-GCM,
 * 131072 for AES-CCM), never less than this.  It is room for:
 *   - the KeyUpdate record itself (sent under the old key) and a
 *     close_notify when the connection is ended instead (TLS 1.2);
 *   - the write in flight when the point is crossed (KC_LIMIT_MAX_OVERSHOOT,
 *     and records the kernel closes early, below);
 *   - on receive, the time the peer takes to answer our KeyUpdate with
 *     update_requested while it keeps sending under its old key. */
#define KC_LIMIT_MARGIN 4096u

/* How far past the rekey point one write can take the count when writes
 * are cut with kc_limit_write_budget(): at most 1 record.  Why: a send of
 * N bytes with no record open yields ceil(N / 16384) records
 * (net/tls/tls_sw.c, tls_sw_sendmsg), and the budget is a whole number
 * of full records, so only a record left open by an earlier MSG_MORE write
 * (topped up first, closed by this one) can add one.  The kernel can also
 * close records early (splice/sendfile filling the scatterlist, memory
 * pressure); that is not bounded by the byte count, so the caller re-reads
 * the real count (getsockopt rec_seq) after every write and keeps writes to
 * its normal buffer size: the KC_LIMIT_MARGIN records before the limit
 * absorb what early closes add. */
#define KC_LIMIT_MAX_OVERSHOOT 1u

/* The cipher table's limit for cipher, NULL for a cipher not in it. */
const struct kc_limit *kc_limit_for(gnutls_cipher_algorithm_t cipher);

/* The record count at which to update the key (or, in TLS 1.2, end the
 * connection):
 *   - the limit minus max(limit/64, KC_LIMIT_MARGIN), or key_update_after
 *     when that is nonzero and lower (--key-update-after can move the point
 *     down, never past the safe default);
 *   - for a cipher without a limit (or unknown): key_update_after if
 *     nonzero, else UINT64_MAX (never). */
uint64_t kc_limit_rekey_point(gnutls_cipher_algorithm_t cipher, uint64_t key_update_after);

/* records as a percentage of the cipher's limit (may exceed 100); 0 when
 * the cipher has no limit or is unknown. */
double kc_limit_percent(gnutls_cipher_algorithm_t cipher, uint64_t records);

/* The most plaintext bytes the next write may carry so that the record
 * count, now `current`, passes `rekey_point` by at most
 * KC_LIMIT_MAX_OVERSHOOT: (rekey_point - current) * 16384, 0 when the point
 * is reached, UINT64_MAX (saturating) when there is no point. */
uint64_t kc_limit_write_budget(uint64_t rekey_point, uint64_t current);

#endif
