/* tests/fuzz/fuzz_seal.h: a hand-made TLS record sealer and the record
 * program format shared by fuzz_conn.c and fuzz_record.c.
 *
 * The sealer plays the peer: it protects records exactly as RFC 5246 /
 * RFC 8446 say (the same construction as tests/unit/test_conn.c's
 * raw_seal), independently of core/channel_soft.c, and can build what no
 * channel's send() will: empty records, TLS 1.3 inner plaintexts with any
 * padding or none, records past the size limit.
 *
 * Record program: after the harness's own leading bytes, the input is a
 * sequence of
 *
 *     type (1 byte)   content type (TLS 1.3: the inner type)
 *     ctl  (2 bytes)  big endian: mode = ctl >> 14, len = ctl & 0x3fff
 *     payload         mode-dependent, cut short at the end of the input
 *
 *   mode 0  sealed record, content = the next len bytes
 *   mode 1  sealed record; TLS 1.3: the next len bytes are the whole inner
 *           plaintext (content, type, zero padding: all up to the fuzzer),
 *           the outer header type is `type`; TLS 1.2: as mode 0
 *   mode 2  sealed record of len + 64 copies of the next byte (large and
 *           over-limit records from small inputs)
 *   mode 3  the next len bytes written to the socket as they are */
#ifndef FUZZ_SEAL_H
#define FUZZ_SEAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/channel.h"
#include "core/keys.h"

#define FZ_HDR 5
#define FZ_TAG 16
#define FZ_EXPLICIT 8
/* The largest plaintext a program can ask for (mode 2: 0x3fff + 64), plus
 * TLS 1.3's content type byte. */
#define FZ_PT_MAX (0x3fff + 64 + 1)
#define FZ_REC_MAX (FZ_HDR + FZ_EXPLICIT + FZ_PT_MAX + FZ_TAG)

enum { FZ_MODE_SEALED = 0, FZ_MODE_INNER = 1, FZ_MODE_FILL = 2, FZ_MODE_RAW = 3 };

struct fz_sealer {
	bool set;
	uint16_t version;
	gnutls_cipher_algorithm_t cipher;
	gnutls_aead_cipher_hd_t h;
	unsigned char iv[12];
	size_t iv_len;
	uint64_t seq;
};

static void fz_sealer_clear(struct fz_sealer *s)
{
	if (s->set)
		gnutls_aead_cipher_deinit(s->h);
	memset(s, 0, sizeof *s);
}

static int fz_sealer_set(struct fz_sealer *s, const struct kc_key_material *km)
{
	gnutls_datum_t key = { (unsigned char *)km->key, (unsigned)km->key_len };
	gnutls_aead_cipher_hd_t h;

	if (gnutls_aead_cipher_init(&h, km->cipher, &key) < 0)
		return -1;
	fz_sealer_clear(s);
	s->set = true;
	s->h = h;
	s->version = km->version;
	s->cipher = km->cipher;
	memcpy(s->iv, km->iv, km->iv_len);
	s->iv_len = km->iv_len;
	s->seq = km->seq;
	return 0;
}

/* Seal one record: TLS 1.2 protects pt[0..n) as content of type `type`;
 * TLS 1.3 protects pt[0..n) as the complete inner plaintext under an outer
 * header of type `type`.  Returns the record's length at out (which has
 * room for FZ_REC_MAX bytes); aborts if GnuTLS refuses, which would be a
 * harness bug. */
static size_t fz_seal(struct fz_sealer *s, uint8_t type, const unsigned char *pt, size_t n,
		      unsigned char *out)
{
	bool tls13 = s->version == KC_TLS13;
	bool expl = !tls13 && s->iv_len == 4;
	unsigned char nonce[12], aad[13];
	size_t off = FZ_HDR, len, ctlen, aadlen;

	if (expl) {
		memcpy(nonce, s->iv, 4);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] = (unsigned char)(s->seq >> (56 - 8 * i));
		memcpy(out + FZ_HDR, nonce + 4, FZ_EXPLICIT);
		off += FZ_EXPLICIT;
	} else {
		memcpy(nonce, s->iv, 12);
		for (int i = 0; i < 8; i++)
			nonce[11 - i] ^= (unsigned char)(s->seq >> (8 * i));
	}
	len = off - FZ_HDR + n + FZ_TAG;
	out[0] = type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (unsigned char)(len >> 8);
	out[4] = (unsigned char)len;
	if (tls13) {
		memcpy(aad, out, FZ_HDR);
		aadlen = FZ_HDR;
	} else {
		for (int i = 0; i < 8; i++)
			aad[i] = (unsigned char)(s->seq >> (56 - 8 * i));
		aad[8] = type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (unsigned char)(n >> 8);
		aad[12] = (unsigned char)n;
		aadlen = 13;
	}
	ctlen = n + FZ_TAG;
	if (gnutls_aead_cipher_encrypt(s->h, nonce, 12, aad, aadlen, FZ_TAG, pt, n,
				       out + off, &ctlen) < 0 || ctlen != n + FZ_TAG)
		abort();
	s->seq++;
	return FZ_HDR + len;
}

/* One step of a record program, decoded. */
struct fz_op {
	int mode;
	uint8_t type;            /* the content type (TLS 1.3: inner) */
	uint8_t outer;           /* header type of a sealed record */
	const unsigned char *raw;   /* mode 3 */
	size_t raw_len;
	/* Sealed modes: the plaintext handed to fz_seal and what the reader
	 * should see (content and type after TLS 1.3 padding removal;
	 * valid == false when the inner plaintext has no content type). */
	unsigned char *pt;
	size_t pt_len;
	const unsigned char *content;
	size_t content_len;
	uint8_t content_type;
	bool valid;
};

/* Decode the op at *p (advancing it) into op, using scratch (FZ_PT_MAX
 * bytes) for the plaintext.  false when fewer than 3 bytes are left. */
static bool fz_next_op(const uint8_t **p, const uint8_t *end, uint16_t version,
		       unsigned char *scratch, struct fz_op *op)
{
	const uint8_t *q = *p;
	bool tls13 = version == KC_TLS13;

	if (end - q < 3)
		return false;
	memset(op, 0, sizeof *op);
	op->type = q[0];
	op->mode = q[1] >> 6;
	size_t len = ((size_t)(q[1] & 0x3f) << 8) | q[2];
	q += 3;
	size_t avail = (size_t)(end - q);
	size_t take = len < avail ? len : avail;

	switch (op->mode) {
	case FZ_MODE_RAW:
		op->raw = q;
		op->raw_len = take;
		*p = q + take;
		return true;
	case FZ_MODE_FILL: {
		uint8_t fill = avail ? q[0] : 0;
		len += 64;
		memset(scratch, fill, len);
		op->content_len = len;
		*p = q + (avail ? 1 : 0);
		break;
	}
	case FZ_MODE_INNER:
		if (tls13) {
			memcpy(scratch, q, take);
			*p = q + take;
			op->pt = scratch;
			op->pt_len = take;
			op->outer = op->type;
			/* What the reader makes of it: strip zeros, the last
			 * non-zero byte is the type. */
			size_t k = take;
			while (k > 0 && scratch[k - 1] == 0)
				k--;
			op->valid = k > 0;
			if (op->valid) {
				op->content_type = scratch[k - 1];
				op->content = scratch;
				op->content_len = k - 1;
			}
			return true;
		}
		/* TLS 1.2 has no inner plaintext: as mode 0 */
		__attribute__((fallthrough));
	default:
		memcpy(scratch, q, take);
		op->content_len = take;
		*p = q + take;
		break;
	}
	/* modes 0 and 2 (and 1 under TLS 1.2) */
	op->content = scratch;
	op->content_type = op->type;
	op->pt = scratch;
	op->pt_len = op->content_len;
	op->valid = true;
	if (tls13) {
		if (op->type == 0) {
			/* a type 0 "content type" is padding: the reader sees
			 * the last non-zero content byte as the type */
			scratch[op->pt_len++] = 0;
			size_t k = op->content_len;
			while (k > 0 && scratch[k - 1] == 0)
				k--;
			op->valid = k > 0;
			if (op->valid) {
				op->content_type = scratch[k - 1];
				op->content_len = k - 1;
			}
		} else {
			scratch[op->pt_len++] = op->type;
		}
		op->outer = KC_REC_DATA;
	} else {
		op->outer = op->type;
	}
	return true;
}

#endif
