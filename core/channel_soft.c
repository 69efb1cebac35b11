/* core/channel_soft.c: the record channel contract (core/channel.h) in user
 * space, on GnuTLS's AEAD functions.  It reproduces what Linux kTLS does
 * (net/tls/tls_sw.c; Documentation/networking/tls.rst), so that core/conn
 * can run unchanged on kernels without kTLS and in tests:
 *
 *   - one content type per recv; consecutive data records merged; control
 *     records alone, in pieces when the buffer is short, MSG_EOR-like *eor
 *     only on the piece that ends a record; empty data records skipped,
 *     empty control records returned as 0 with a type;
 *   - framing checks in the kernel's order (EMSGSIZE, EBADMSG, EINVAL) as
 *     soon as a header is buffered; authentication failure is sticky;
 *   - TLS 1.3: reads pause with EKEYEXPIRED after a KeyUpdate until the new
 *     receive key is installed (unless opts->no_rekey, which leaves
 *     caps.rekey false: Linux < 6.14);
 *   - records are sealed when send() accepts them, so set_key(KC_TX) only
 *     affects what is accepted after it.
 *
 * Memory is allocated once, in kc_channel_soft_new: an input buffer for a
 * few maximal records (large reads), a plaintext buffer for the record being
 * handed out in pieces, and a bounded ciphertext queue.  Data is accepted
 * while the queue holds at most OUT_DATA_CAP bytes; control records may use
 * a reserve beyond that, because they are small and their order matters
 * (KeyUpdate, then the new key).
 *
 * Before set_key(KC_RX) recv fails with ENOKEY (the kernel would pass plain
 * TCP through, which no caller wants); before set_key(KC_TX) send does too. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/channel.h"

/* The sizes this record layer is built for: those of every row of the
 * cipher table (core/cipher.h). */
#define HDR_LEN 5
#define TAG_LEN 16
#define EXPLICIT_LEN 8 /* TLS 1.2 AES-GCM/CCM explicit nonce */
#define SALT_LEN 4     /* the fixed part of such a nonce */
#define CT_HANDSHAKE_KEY_UPDATE 24

/* The largest record the receive checks let through, header included
 * (TLS 1.2 GCM/CCM: nonce + 2^14 + tag is the worst case; TLS 1.3 adds one
 * byte but has no explicit nonce). */
#define REC_MAX (HDR_LEN + EXPLICIT_LEN + KC_MAX_PLAINTEXT + TAG_LEN)
#define IN_CAP (4 * REC_MAX)
#define OUT_DATA_CAP (4 * REC_MAX)
#define OUT_CAP (OUT_DATA_CAP + 2 * REC_MAX)
#define PT_CAP (KC_MAX_PLAINTEXT + 1) /* TLS 1.3 inner plaintext: + type */

/* tests/integration/test_secrets.py finds this struct in memory by its
 * layout (set, version, then aead right before iv): new fields go last. */
struct soft_key {
	bool set;
	bool explicit_nonce;            /* TLS 1.2 AES-GCM/CCM */
	uint16_t version;
	gnutls_cipher_algorithm_t cipher;
	gnutls_aead_cipher_hd_t aead;
	unsigned char iv[12];           /* full IV, or the 4-byte salt */
	uint64_t seq;
	size_t overhead;                /* bytes a record adds on the wire */
};

struct soft_channel {
	struct kc_channel base;         /* first: the ops cast back to us */
	struct soft_key rx, tx;

	/* Record size limits (set_limits): plaintext bytes per record. */
	size_t tx_max, rx_max;
	bool pad_data;                  /* kc_soft_opts.pad_data */

	/* receive */
	int rx_err;                     /* sticky EBADMSG / EMSGSIZE / EINVAL */
	bool rx_eof;
	bool key_pending;               /* KeyUpdate decrypted, new RX key due */
	bool held;                      /* held_buf has a record (rest) to hand out */
	uint8_t held_type;
	size_t held_off, held_len;
	size_t in_off, in_len;          /* unparsed bytes in in[] */

	/* send */
	size_t out_off, out_len;        /* queued ciphertext in out[] */

	unsigned char in[IN_CAP];
	unsigned char held_buf[PT_CAP];
	unsigned char out[OUT_CAP];
};

static inline struct soft_channel *soft(struct kc_channel *ch)
{
	return (struct soft_channel *)ch;
}

static inline size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/* RFC 8446 §5.3 / RFC 7905: iv XOR the sequence number, right-aligned. */
static void xor_nonce(unsigned char nonce[12], const struct soft_key *k)
{
	memcpy(nonce, k->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (unsigned char)(k->seq >> (8 * i));
}

/* RFC 5246 §6.2.3.3: seq || type || version || plaintext length. */
static void tls12_aad(unsigned char aad[13], uint64_t seq, uint8_t type,
		      size_t ptlen)
{
	put_be64(aad, seq);
	aad[8] = type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (unsigned char)(ptlen >> 8);
	aad[12] = (unsigned char)ptlen;
}

static void key_clear(struct soft_key *k)
{
	if (k->set)
		gnutls_aead_cipher_deinit(k->aead);
	gnutls_memset(k, 0, sizeof *k);
}

/* ---- set_key ---------------------------------------------------------- */

static const char *cipher_str(gnutls_cipher_algorithm_t c)
{
	const char *n = gnutls_cipher_get_name(c);
	return n ? n : "unknown cipher";
}

static int check_material(const struct kc_key_material *km, const char *dname,
			  struct kc_err *err)
{
	const struct kc_cipher *c = kc_cipher_by_gnutls(km->cipher);

	if (km->version != KC_TLS12 && km->version != KC_TLS13)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: TLS version 0x%04x is not supported by the user-space record layer (only 1.2 and 1.3)",
				  dname, km->version);
	if (!c)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: %s is not supported by the user-space record layer",
				  dname, cipher_str(km->cipher));
	if (km->key_len != c->key_size || km->key_len > sizeof km->key)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: %zu-byte key for %s",
				  dname, km->key_len, cipher_str(km->cipher));
	size_t want_iv = kc_cipher_iv_len(c, km->version);
	if (km->iv_len != want_iv)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: %zu-byte IV for %s under TLS 1.%d (expected %zu)",
				  dname, km->iv_len, cipher_str(km->cipher),
				  km->version == KC_TLS13 ? 3 : 2, want_iv);
	if (c->tag_size != TAG_LEN)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: %s has no 16-byte tag",
				  dname, cipher_str(km->cipher));
	return 0;
}

static int soft_set_key(struct kc_channel *ch, enum kc_dir dir,
			const struct kc_key_material *km, struct kc_err *err)
{
	struct soft_channel *s = soft(ch);
	struct soft_key *k;
	const char *dname;
	gnutls_aead_cipher_hd_t h;
	gnutls_datum_t key;
	int ret;

	if (dir == KC_RX) {
		k = &s->rx;
		dname = "receive";
	} else if (dir == KC_TX) {
		k = &s->tx;
		dname = "send";
	} else {
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install keys: bad direction %d", (int)dir);
	}
	if (check_material(km, dname, err) < 0)
		return -1;
	if (k->set) {
		/* A second key for a direction is a key update. */
		if (!ch->caps.rekey)
			return kc_err_set(err, KC_E_NOREKEY,
					  "cannot install new keys: this TLS record layer cannot change the %s key of a live connection (like Linux kTLS before 6.14)",
					  dname);
		if (k->version != KC_TLS13)
			return kc_err_set(err, KC_E_PROTOCOL,
					  "cannot install new keys: TLS 1.2 has no key update (%s direction)",
					  dname);
		if (km->version != k->version || km->cipher != k->cipher)
			return kc_err_set(err, KC_E_INTERNAL,
					  "cannot install new keys: a key update must keep the TLS version and cipher (%s, %s direction)",
					  cipher_str(k->cipher), dname);
	}

	/* Set up the new context before touching the old one, so that a
	 * failure leaves the channel as it was (as the kernel does). */
	key.data = (unsigned char *)km->key;
	key.size = (unsigned)km->key_len;
	ret = gnutls_aead_cipher_init(&h, km->cipher, &key);
	if (ret < 0)
		return kc_err_set(err, KC_E_INTERNAL,
				  "cannot install %s keys: %s: %s", dname,
				  cipher_str(km->cipher), gnutls_strerror(ret));

	key_clear(k);
	k->set = true;
	k->aead = h;
	k->version = km->version;
	k->cipher = km->cipher;
	const struct kc_cipher *c = kc_cipher_by_gnutls(km->cipher);
	k->explicit_nonce = kc_cipher_explicit_nonce(c, km->version) != 0;
	k->overhead = kc_cipher_record_overhead(c, km->version);
	memcpy(k->iv, km->iv, km->iv_len);
	k->seq = km->seq;
	if (dir == KC_RX)
		s->key_pending = false;
	return 0;
}

/* ---- receive ---------------------------------------------------------- */

/* The kernel's tls_rx_msg_size() checks, in its order; the size checked
 * against the limit we announced (max bytes of content; TLS 1.3 counts
 * the inner plaintext, type and padding, RFC 8449 §4, so one more). */
static int check_header(const struct soft_key *k, const unsigned char *h, size_t max)
{
	size_t len = (size_t)h[3] << 8 | h[4];
	size_t overhead = TAG_LEN + (k->explicit_nonce ? EXPLICIT_LEN : 0);
	size_t tail = k->version == KC_TLS13 ? 1 : 0;

	if (len > max + overhead + tail)
		return EMSGSIZE;
	if (len < overhead)
		return EBADMSG;
	if (h[1] != 3 || h[2] != 3)
		return EINVAL;
	return 0;
}

/* Make sure a whole record is buffered at in + in_off; reads the socket
 * only when may_read.  Returns the record's length (header included), 0 at
 * end of stream, or -1 with errno (EAGAIN: not yet; a framing error, which
 * is also latched in rx_err). */
static ssize_t want_record(struct soft_channel *s, bool may_read)
{
	for (;;) {
		size_t need = HDR_LEN;
		size_t tail;
		ssize_t n;

		if (s->in_len >= HDR_LEN) {
			const unsigned char *h = s->in + s->in_off;
			int e = check_header(&s->rx, h, s->rx_max);

			if (e) {
				s->rx_err = e;
				errno = e;
				return -1;
			}
			need = HDR_LEN + ((size_t)h[3] << 8 | h[4]);
			if (s->in_len >= need)
				return (ssize_t)need;
		}
		if (!may_read) {
			errno = EAGAIN;
			return -1;
		}
		if (s->rx_eof)
			return 0;   /* a partial record before EOF is just EOF */
		/* Keep room for a whole record and a large read behind it. */
		if (s->in_len == 0) {
			s->in_off = 0;
		} else if (IN_CAP - s->in_off - s->in_len < REC_MAX) {
			memmove(s->in, s->in + s->in_off, s->in_len);
			s->in_off = 0;
		}
		tail = IN_CAP - s->in_off - s->in_len;
		n = recv(s->base.fd, s->in + s->in_off + s->in_len, tail,
			 MSG_DONTWAIT);
		if (n > 0) {
			s->in_len += (size_t)n;
		} else if (n == 0) {
			s->rx_eof = true;
			return 0;
		} else if (errno != EINTR) {
			return -1;
		}
	}
}

/* Decrypt the record rec[0..rlen) under k into dst, which has room for
 * every plaintext byte the record carries (TLS 1.3: with type and padding).
 * Returns the content length and *rtype, or -1 when the record is bad. */
static ssize_t open_record(struct soft_key *k, const unsigned char *rec,
			   size_t rlen, unsigned char *dst, uint8_t *rtype)
{
	unsigned char nonce[12], aad[13];
	const unsigned char *ct = rec + HDR_LEN;
	size_t ctlen = rlen - HDR_LEN;
	size_t ptlen, aadlen;

	if (k->seq == UINT64_MAX)
		return -1;  /* sequence number would wrap */
	if (k->version == KC_TLS13) {
		xor_nonce(nonce, k);
		memcpy(aad, rec, HDR_LEN);
		aadlen = HDR_LEN;
	} else {
		if (k->explicit_nonce) {
			memcpy(nonce, k->iv, SALT_LEN);
			memcpy(nonce + SALT_LEN, ct, EXPLICIT_LEN);
			ct += EXPLICIT_LEN;
			ctlen -= EXPLICIT_LEN;
		} else {
			xor_nonce(nonce, k);
		}
		tls12_aad(aad, k->seq, rec[0], ctlen - TAG_LEN);
		aadlen = 13;
	}
	ptlen = ctlen - TAG_LEN;
	int rc = gnutls_aead_cipher_decrypt(k->aead, nonce, sizeof nonce, aad, aadlen,
					    TAG_LEN, ct, ctlen, dst, &ptlen);
	gnutls_memset(nonce, 0, sizeof nonce);   /* iv ^ seq: gives the iv away */
	kc_burn_stack(KC_BURN_RECORD);           /* and so do nettle's frames */
	if (rc < 0)
		return -1;
	if (k->version == KC_TLS13) {
		/* Strip the zero padding; the last non-zero byte is the type. */
		while (ptlen > 0 && dst[ptlen - 1] == 0)
			ptlen--;
		if (ptlen == 0)
			return -1;
		*rtype = dst[--ptlen];
	} else {
		*rtype = rec[0];
	}
	k->seq++;
	return (ssize_t)ptlen;
}

static void hold(struct soft_channel *s, uint8_t type, size_t off, size_t len)
{
	s->held = true;
	s->held_type = type;
	s->held_off = off;
	s->held_len = len;
}

static ssize_t soft_recv(struct kc_channel *ch, void *buf, size_t len,
			 uint8_t *type, bool *eor)
{
	struct soft_channel *s = soft(ch);
	unsigned char *out = buf;
	size_t got = 0;

	*type = 0;
	*eor = false;
	if (len == 0) {
		errno = EINVAL;   /* a 0 return would read as end of stream */
		return -1;
	}

	/* First what is left of a record already decrypted. */
	if (s->held) {
		size_t n = min_sz(len, s->held_len - s->held_off);

		memcpy(out, s->held_buf + s->held_off, n);
		s->held_off += n;
		*type = s->held_type;
		if (s->held_off < s->held_len)
			return (ssize_t)n;
		s->held = false;
		*eor = true;
		if (s->held_type != KC_REC_DATA || n == len)
			return (ssize_t)n;
		got = n;
	}
	if (s->rx_err) {
		if (got)
			return (ssize_t)got;
		errno = s->rx_err;
		return -1;
	}
	if (!s->rx.set) {
		errno = ENOKEY;
		return -1;
	}

	while (got < len && !s->key_pending) {
		struct soft_key *k = &s->rx;
		const unsigned char *rec;
		unsigned char *dst;
		size_t room = len - got, maxpt, c;
		ssize_t rlen, n;
		uint8_t rt;
		bool direct;

		/* Once something is in hand, only records already buffered
		 * join it: the caller comes back before polling anyway. */
		rlen = want_record(s, got == 0);
		if (rlen <= 0) {
			if (got)
				break;
			return rlen;   /* 0: end of stream, *type == 0 */
		}
		rec = s->in + s->in_off;
		maxpt = (size_t)rlen - HDR_LEN - TAG_LEN -
			(k->explicit_nonce ? EXPLICIT_LEN : 0);
		direct = maxpt <= room;
		dst = direct ? out + got : s->held_buf;
		n = open_record(k, rec, (size_t)rlen, dst, &rt);
		/* Content type 0 is invalid in both versions; the kernel's
		 * tls_record_content_type() fails it with EBADMSG too (and a 0
		 * type would read as end of stream here). */
		if (n < 0 || rt == 0) {
			s->rx_err = EBADMSG;
			if (got)
				break;
			errno = EBADMSG;
			return -1;
		}
		s->in_off += (size_t)rlen;
		s->in_len -= (size_t)rlen;
		if (s->in_len == 0)
			s->in_off = 0;
		/* The kernel looks at the first byte of every decrypted TLS 1.3
		 * handshake record and pauses after a KeyUpdate. */
		if (k->version == KC_TLS13 && rt == KC_REC_HANDSHAKE && n > 0 &&
		    dst[0] == CT_HANDSHAKE_KEY_UPDATE && s->base.caps.rekey)
			s->key_pending = true;

		if (rt == KC_REC_DATA) {
			if (n == 0)
				continue;   /* empty data records are skipped */
			*type = KC_REC_DATA;
			if (direct) {
				got += (size_t)n;
				*eor = true;
				continue;
			}
			c = min_sz((size_t)n, room);
			memcpy(out + got, s->held_buf, c);
			got += c;
			*eor = c == (size_t)n;
			if (!*eor)
				hold(s, KC_REC_DATA, c, (size_t)n);
			continue;
		}

		/* A control record is returned alone; one met after data is
		 * kept decrypted for the next call (the kernel decrypts before
		 * it looks at the type, in TLS 1.2 as well). */
		if (got) {
			if (direct)
				memcpy(s->held_buf, dst, (size_t)n);
			hold(s, rt, 0, (size_t)n);
			break;
		}
		*type = rt;
		if (direct) {
			*eor = true;
			return n;
		}
		c = min_sz((size_t)n, len);
		memcpy(out, s->held_buf, c);
		*eor = c == (size_t)n;
		if (!*eor)
			hold(s, rt, c, (size_t)n);
		return (ssize_t)c;
	}
	if (got)
		return (ssize_t)got;
	errno = EKEYEXPIRED;
	return -1;
}

/* ---- send ------------------------------------------------------------- */

/* The zero padding a record of n plaintext bytes of type gets: with
 * pad_data, TLS 1.3 data records are filled up to the send limit. */
static size_t pad_len(const struct soft_channel *s, uint8_t type, size_t n)
{
	return s->pad_data && type == KC_REC_DATA && s->tx.version == KC_TLS13 && n < s->tx_max
		? s->tx_max - n : 0;
}

/* Seal one record of n <= tx_max plaintext bytes at dst; returns its length
 * on the wire or -1 with errno. */
static ssize_t seal_record(struct soft_channel *s, uint8_t type,
			   const unsigned char *p, size_t n, unsigned char *dst)
{
	static const unsigned char zeros[KC_MAX_PLAINTEXT];
	struct soft_key *k = &s->tx;
	unsigned char nonce[12], aad[13];
	unsigned char *ct = dst + HDR_LEN;
	size_t pad = pad_len(s, type, n);
	size_t wire = n + k->overhead + pad;
	size_t len = wire - HDR_LEN, ctlen;
	/* TLS 1.3's inner plaintext is content || type || zeros: sealed from
	 * pieces, so the content is never copied. */
	giovec_t pt[3] = { { (void *)p, n }, { &type, 1 }, { (void *)zeros, pad } };
	int ptn = 1;
	size_t aadlen = HDR_LEN;

	if (k->seq == UINT64_MAX) {
		errno = EBADMSG;  /* as the kernel: never wrap the sequence */
		return -1;
	}
	dst[0] = k->version == KC_TLS13 ? KC_REC_DATA : type;
	dst[1] = 3;
	dst[2] = 3;
	dst[3] = (unsigned char)(len >> 8);
	dst[4] = (unsigned char)len;
	if (k->version == KC_TLS13) {
		ptn = pad ? 3 : 2;
		xor_nonce(nonce, k);
		memcpy(aad, dst, HDR_LEN);
	} else {
		if (k->explicit_nonce) {
			/* Explicit nonce = the sequence number, like the kernel. */
			memcpy(nonce, k->iv, SALT_LEN);
			put_be64(nonce + SALT_LEN, k->seq);
			memcpy(ct, nonce + SALT_LEN, EXPLICIT_LEN);
			ct += EXPLICIT_LEN;
		} else {
			xor_nonce(nonce, k);
		}
		tls12_aad(aad, k->seq, type, n);
		aadlen = 13;
	}
	size_t ptlen = n + (ptn > 1 ? 1 + pad : 0);
	giovec_t auth = { aad, aadlen };
	ctlen = ptlen + TAG_LEN;
	int rc = gnutls_aead_cipher_encryptv(k->aead, nonce, sizeof nonce, &auth, 1, TAG_LEN,
					     pt, ptn, ct, &ctlen);
	gnutls_memset(nonce, 0, sizeof nonce);   /* iv ^ seq: gives the iv away */
	kc_burn_stack(KC_BURN_RECORD);           /* and so do nettle's frames */
	if (rc < 0 || ctlen != ptlen + TAG_LEN) {
		errno = EIO;
		return -1;
	}
	k->seq++;
	return (ssize_t)wire;
}

/* Seal as many records of p[0..len) as the queue bound allows. */
static ssize_t enqueue(struct soft_channel *s, uint8_t type,
		       const unsigned char *p, size_t len)
{
	size_t limit = type == KC_REC_DATA ? OUT_DATA_CAP : OUT_CAP;
	size_t ovh = s->tx.overhead;
	size_t done = 0;

	while (done < len) {
		size_t n = min_sz(len - done, s->tx_max);
		size_t rec = n + ovh + pad_len(s, type, n);
		ssize_t w;

		if (s->out_len + rec > limit)
			break;
		if (s->out_off + s->out_len + rec > OUT_CAP) {
			memmove(s->out, s->out + s->out_off, s->out_len);
			s->out_off = 0;
		}
		w = seal_record(s, type, p + done, n,
				s->out + s->out_off + s->out_len);
		if (w < 0)
			return done ? (ssize_t)done : -1;
		s->out_len += (size_t)w;
		done += n;
	}
	return (ssize_t)done;
}

static int soft_flush(struct kc_channel *ch)
{
	struct soft_channel *s = soft(ch);

	while (s->out_len) {
		ssize_t n = send(s->base.fd, s->out + s->out_off, s->out_len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s->out_off += (size_t)n;
		s->out_len -= (size_t)n;
	}
	s->out_off = 0;
	return 0;
}

static ssize_t soft_send(struct kc_channel *ch, uint8_t type, const void *buf,
			 size_t len)
{
	struct soft_channel *s = soft(ch);
	const unsigned char *p = buf;
	size_t done = 0;

	if (!s->tx.set) {
		errno = ENOKEY;
		return -1;
	}
	if (len == 0)
		return 0;   /* the kernel sends no empty record either */
	for (;;) {
		ssize_t n = enqueue(s, type, p + done, len - done);

		if (n < 0) {
			if (done)
				break;
			return -1;
		}
		done += (size_t)n;
		if (soft_flush(ch) < 0) {
			/* A full socket is not an error; a broken one is, even
			 * after sealing records: they can never leave now. */
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != ENOBUFS && errno != ENOMEM)
				return -1;
			break;
		}
		/* The queue is empty now, so the next round makes progress. */
		if (done == len)
			break;
	}
	if (!done) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)done;
}

static bool soft_tx_pending(const struct kc_channel *ch)
{
	return ((const struct soft_channel *)ch)->out_len > 0;
}

static int soft_rec_seq(struct kc_channel *ch, enum kc_dir dir, uint64_t *seq)
{
	struct soft_channel *s = soft(ch);
	const struct soft_key *k = dir == KC_RX ? &s->rx : &s->tx;

	if (!k->set) {
		errno = EBUSY;   /* as getsockopt(TLS_RX/TX) without a key */
		return -1;
	}
	*seq = k->seq;
	return 0;
}

static int soft_set_limits(struct kc_channel *ch, struct kc_record_limits *lim,
			   struct kc_err *err)
{
	struct soft_channel *s = soft(ch);

	s->tx_max = min_sz(lim->tx, KC_MAX_PLAINTEXT);
	s->rx_max = min_sz(lim->rx, KC_MAX_PLAINTEXT);
	lim->tx_how = KC_TXLIM_RECORDS;
	lim->rx_exact = true;
	lim->rx_no_pad = false;
	return 0;
}

static void soft_free(struct kc_channel *ch)
{
	struct soft_channel *s = soft(ch);

	key_clear(&s->rx);
	key_clear(&s->tx);
	/* The buffers hold plaintext and sealed records' inner plaintext. */
	gnutls_memset(s, 0, sizeof *s);
	free(s);
}

static const struct kc_channel_ops soft_ops = {
	.set_key = soft_set_key,
	.recv = soft_recv,
	.send = soft_send,
	.flush = soft_flush,
	.tx_pending = soft_tx_pending,
	.rec_seq = soft_rec_seq,
	.set_limits = soft_set_limits,
	.free = soft_free,
};

struct kc_channel *kc_channel_soft_new(int fd, const struct kc_soft_opts *opts,
				       struct kc_err *err)
{
	struct soft_channel *s;

	if (fd < 0) {
		kc_err_set(err, KC_E_INTERNAL,
			   "cannot create the user-space TLS channel: no socket");
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		kc_err_errno(err, KC_E_INTERNAL, ENOMEM,
			     "cannot create the user-space TLS channel");
		return NULL;
	}
	s->base.ops = &soft_ops;
	s->base.fd = fd;
	s->base.kind = KC_CHANNEL_USER_SPACE;
	s->base.caps.rekey = !(opts && opts->no_rekey);
	s->tx_max = s->rx_max = KC_MAX_PLAINTEXT;
	s->pad_data = opts && opts->pad_data;
	return &s->base;
}
