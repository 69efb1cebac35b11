/* tests/fuzz/fuzz_record.c: libFuzzer target for the user-space record
 * channel's receive side (core/channel_soft.c: want_record, check_header,
 * open_record, soft_recv), fed bytes on a socketpair.
 *
 * Input:
 *   byte 0   bits 0-2  version and cipher (TLS 1.2 / 1.3 x AES-128-GCM,
 *                      AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM)
 *            bit 3     no_rekey (behave like Linux < 6.14)
 *            bit 4     start the sequence numbers 3 below 2^64 - 1
 *            bit 5     shut the writing side down at the end (EOF)
 *            bit 6     batch: write every record first, read only when the
 *                      socket is full and at the end (records merge and
 *                      pile up in the channel's buffer); else read after
 *                      each record
 *   byte 1   read sizes: recv() buffer lengths alternate between
 *            sizes[b & 7] and sizes[(b >> 3) & 7]
 *   then     a record program (fuzz_seal.h): sealed records of any type,
 *            length and TLS 1.3 padding, and raw bytes.
 *
 * The peer's keys are fixed (one set per key generation), so sealed
 * records authenticate and the fuzzer reaches everything after the AEAD.
 * While the program has written no raw bytes, every recv() result is
 * checked against a model of the contract in core/channel.h: the content
 * and type of every record, data merged only with data, control records
 * alone and in pieces no shorter than the buffer allows, *eor exactly at
 * record ends, empty data records skipped, empty control records as 0 with
 * their type, the pause after a TLS 1.3 KeyUpdate, and EBADMSG / EMSGSIZE
 * only where a record deserves it.  A violation aborts (a crash for
 * libFuzzer) with a message saying what differed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/channel.h"
#include "core/keys.h"
#include "fuzz_seal.h"

static const struct {
	uint16_t version;
	gnutls_cipher_algorithm_t cipher;
} combos[8] = {
	{ KC_TLS12, GNUTLS_CIPHER_AES_128_GCM },
	{ KC_TLS12, GNUTLS_CIPHER_AES_256_GCM },
	{ KC_TLS12, GNUTLS_CIPHER_CHACHA20_POLY1305 },
	{ KC_TLS12, GNUTLS_CIPHER_AES_128_CCM },
	{ KC_TLS13, GNUTLS_CIPHER_AES_128_GCM },
	{ KC_TLS13, GNUTLS_CIPHER_AES_256_GCM },
	{ KC_TLS13, GNUTLS_CIPHER_CHACHA20_POLY1305 },
	{ KC_TLS13, GNUTLS_CIPHER_AES_128_CCM },
};

static const size_t read_sizes[8] = { 1, 2, 5, 64, 4096, 16384, 16385, 70000 };

#define WIRE_BUDGET (2u << 20)   /* bytes written per input, at most */
#define MAXQ 4096                /* records in flight, at most */

/* FUZZ_TOLERATE=type0 lets a long run go past the known issue named in
 * the report (tests/fuzz/regress/fuzz_record/): an empty TLS 1.2 record of
 * content type 0 reads as end of stream.  Unset (the default), it fails. */
static bool tolerate_type0;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *t = getenv("FUZZ_TOLERATE");
	tolerate_type0 = t && strstr(t, "type0");
	return 0;
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_record: contract violation: %s\n", what);
	abort();
}

static void key_for(uint16_t version, gnutls_cipher_algorithm_t cipher, unsigned gen,
		    uint64_t seq, struct kc_key_material *km)
{
	memset(km, 0, sizeof *km);
	km->version = version;
	km->cipher = cipher;
	km->key_len = gnutls_cipher_get_key_size(cipher);
	for (size_t i = 0; i < km->key_len; i++)
		km->key[i] = (unsigned char)(i * 7 + gen * 13 + 1);
	km->iv_len = version == KC_TLS12 && cipher != GNUTLS_CIPHER_CHACHA20_POLY1305 ? 4 : 12;
	for (size_t i = 0; i < km->iv_len; i++)
		km->iv[i] = (unsigned char)(0xa0 + i + gen);
	km->seq = seq;
}

/* ---- the model -------------------------------------------------------- */

enum rec_kind { REC_GOOD, REC_BADMAC, REC_TOOBIG };

struct rec {
	enum rec_kind kind;
	uint8_t type;
	unsigned char *content;
	size_t len, off;
	bool key_update;     /* the reader must pause after it */
};

struct state {
	struct kc_channel *ch;
	int fd[2];
	uint16_t version;
	gnutls_cipher_algorithm_t cipher;
	bool no_rekey;
	unsigned rx_gen;
	bool checking;       /* no raw bytes written: the model holds */
	bool dead;           /* the channel reported an error or EOF */
	bool paused;         /* the model expects EKEYEXPIRED next */
	bool eof_sent;       /* the writing side was shut down */
	struct rec q[MAXQ];
	size_t qh, qt;       /* queue head and tail */
	size_t sizes[2];
	unsigned nread;
	unsigned char buf[70000];
};

static void q_push(struct state *st, const struct rec *r)
{
	if (st->qh == st->qt) {
		st->qh = st->qt = 0;
	} else if (st->qt == MAXQ && st->qh > 0) {
		memmove(st->q, st->q + st->qh, (st->qt - st->qh) * sizeof st->q[0]);
		st->qt -= st->qh;
		st->qh = 0;
	}
	if (st->qt == MAXQ)
		die("harness queue full");
	st->q[st->qt++] = *r;
}

/* Take the head record off the queue. */
static struct rec *q_pop(struct state *st)
{
	struct rec *r = &st->q[st->qh++];
	free(r->content);
	r->content = NULL;
	return r;
}

static void q_free(struct state *st)
{
	for (size_t i = st->qh; i < st->qt; i++)
		free(st->q[i].content);
	st->qh = st->qt = 0;
}

/* Skip empty data records: the channel never reports them. */
static void q_skip_empty_data(struct state *st)
{
	while (st->qh < st->qt && st->q[st->qh].kind == REC_GOOD &&
	       st->q[st->qh].type == KC_REC_DATA && st->q[st->qh].len == 0) {
		if (st->q[st->qh].key_update)
			die("harness: empty record marked as KeyUpdate");
		q_pop(st);
	}
}

/* A record has been handed out to its end. */
static void q_done(struct state *st)
{
	if (q_pop(st)->key_update)
		st->paused = true;
}

static void check_data(struct state *st, const unsigned char *b, size_t n, bool eor)
{
	size_t i = 0;
	bool at_end = false;

	while (i < n) {
		q_skip_empty_data(st);
		if (st->paused)
			die("data returned after a KeyUpdate, before the new key");
		if (st->qh == st->qt)
			die("more data returned than was sent");
		struct rec *r = &st->q[st->qh];
		if (r->kind != REC_GOOD)
			die("data returned from a record that should have failed");
		if (r->type != KC_REC_DATA)
			die("data merged with a control record");
		size_t k = n - i < r->len - r->off ? n - i : r->len - r->off;
		if (memcmp(b + i, r->content + r->off, k) != 0)
			die("data bytes differ from what was sent");
		r->off += k;
		i += k;
		at_end = r->off == r->len;
		if (at_end)
			q_done(st);
	}
	if (eor != at_end)
		die(eor ? "eor set in the middle of a data record"
			: "eor not set at the end of a data record");
}

static void check_control(struct state *st, uint8_t type, const unsigned char *b, size_t n,
			  size_t buflen, bool eor)
{
	q_skip_empty_data(st);
	if (st->paused)
		die("a record returned after a KeyUpdate, before the new key");
	if (st->qh == st->qt)
		die("a control record returned that was never sent");
	struct rec *r = &st->q[st->qh];
	if (r->kind != REC_GOOD)
		die("a control record returned from a record that should have failed");
	if (r->type != type) {
		fprintf(stderr, "fuzz_record: type %u returned, %u sent\n", type, r->type);
		die("wrong content type");
	}
	size_t left = r->len - r->off;
	size_t want = left < buflen ? left : buflen;
	if (n != want) {
		fprintf(stderr, "fuzz_record: %zu bytes of a control record returned, %zu expected "
			"(%zu left, buffer %zu)\n", n, want, left, buflen);
		die("control record piece of the wrong size");
	}
	if (n && memcmp(b, r->content + r->off, n) != 0)
		die("control record bytes differ from what was sent");
	r->off += n;
	bool at_end = r->off == r->len;
	if (eor != at_end)
		die(eor ? "eor set in the middle of a control record"
			: "eor not set at the end of a control record");
	if (at_end)
		q_done(st);
}

/* recv() until it would block, checking each result. */
static void drain(struct state *st)
{
	while (!st->dead) {
		size_t len = st->sizes[st->nread++ & 1];
		uint8_t type = 0xee;
		bool eor = false;
		ssize_t n = st->ch->ops->recv(st->ch, st->buf, len, &type, &eor);

		if (n > 0) {
			if ((size_t)n > len)
				die("recv returned more bytes than the buffer holds");
			if (!st->checking)
				continue;
			if (type == KC_REC_DATA)
				check_data(st, st->buf, (size_t)n, eor);
			else
				check_control(st, type, st->buf, (size_t)n, len, eor);
			continue;
		}
		if (n == 0) {
			if (st->checking) {
				q_skip_empty_data(st);
				/* An empty control record and end of stream
				 * look alike when the type is 0 (TLS 1.2). */
				if (st->qh < st->qt && !st->paused && st->q[st->qh].kind == REC_GOOD &&
				    st->q[st->qh].len == 0 && type == st->q[st->qh].type) {
					if (type == 0 && tolerate_type0) {
						st->dead = true;
						return;
					}
					if (type == 0)
						die("an empty TLS 1.2 record of content type 0 "
						    "reads as end of stream (recv returns 0 "
						    "with *type == 0)");
					check_control(st, type, st->buf, 0, len, eor);
					continue;
				}
				if (type != 0)
					die("an empty control record returned that was never sent");
				if (st->qh != st->qt || st->paused)
					die("end of stream reported before every record was read");
			}
			if (type != 0)
				continue;
			if (!st->eof_sent) {
				/* Only the type-0 confusion can do this. */
				if (tolerate_type0) {
					st->dead = true;
					return;
				}
				die("end of stream reported while the peer's socket is open");
			}
			/* End of stream is sticky.  (Without the model, an
			 * empty type-0 record cannot be told from it.) */
			if (!st->checking && tolerate_type0) {
				st->dead = true;
				return;
			}
			ssize_t again = st->ch->ops->recv(st->ch, st->buf, len, &type, &eor);
			if (again != 0 || type != 0) {
				fprintf(stderr, "fuzz_record: recv after end of stream: %zd (%s), type %u\n",
					again, again < 0 ? strerror(errno) : "-", type);
				die("end of stream is not sticky (was it an empty record of "
				    "content type 0?)");
			}
			st->dead = true;
			return;
		}
		int e = errno, errno_first = errno;
		if (e == EAGAIN)
			return;
		if (e == EKEYEXPIRED) {
			if (st->checking) {
				if (!st->paused)
					die("EKEYEXPIRED without a KeyUpdate");
				st->paused = false;
			}
			if (st->no_rekey)
				die("EKEYEXPIRED on a no_rekey channel");
			struct kc_key_material km;
			struct kc_err err = { 0 };
			key_for(st->version, st->cipher, ++st->rx_gen, 0, &km);
			if (st->ch->ops->set_key(st->ch, KC_RX, &km, &err) < 0) {
				fprintf(stderr, "fuzz_record: %s\n", err.msg);
				die("the channel refused the next receive key");
			}
			continue;
		}
		if (e == EBADMSG || e == EMSGSIZE || e == EINVAL || e == EPROTO) {
			if (st->checking) {
				q_skip_empty_data(st);
				if (st->paused)
					die("a record error reported during a KeyUpdate pause");
				if (st->qh == st->qt)
					die("a record error with no record in flight");
				enum rec_kind k = st->q[st->qh].kind;
				/* A TLS 1.2 record of content type 0 (invalid):
				 * the kernel refuses it with EBADMSG
				 * (tls_record_content_type); once the channel
				 * does too, any record error is accepted here. */
				bool type0 = k == REC_GOOD && st->version == KC_TLS12 &&
					     st->q[st->qh].type == 0 && st->q[st->qh].off == 0;
				if (type0)
					k = REC_BADMAC, e = EBADMSG;
				else if (e == EPROTO)
					die("EPROTO for a record that is not of content type 0");
				if (e == EINVAL)
					die("EINVAL for a well-formed record header");
				if (k == REC_GOOD) {
					fprintf(stderr, "fuzz_record: %s for a valid record of type %u, "
						"%zu bytes\n", strerror(e), st->q[st->qh].type,
						st->q[st->qh].len);
					die("a valid record was rejected");
				}
				if ((k == REC_BADMAC) != (e == EBADMSG))
					die("the wrong error for a bad record");
				if (st->q[st->qh].off)
					die("an error after part of the record was returned");
			}
			/* Sticky: the next call must say the same. */
			if (st->ch->ops->recv(st->ch, st->buf, 16, &type, &eor) != -1 ||
			    errno != errno_first)
				die("a record error is not sticky");
			st->dead = true;
			return;
		}
		fprintf(stderr, "fuzz_record: recv: %s\n", strerror(e));
		die("unexpected errno from recv");
	}
}

/* Write all of b, reading the channel when the socket is full. */
static void put(struct state *st, const unsigned char *b, size_t n)
{
	while (n > 0 && !st->dead) {
		ssize_t w = write(st->fd[1], b, n);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			drain(st);
			if (st->dead)
				return;
			struct pollfd p = { .fd = st->fd[1], .events = POLLOUT };
			if (poll(&p, 1, 0) == 0) {
				/* The channel holds a partial record (raw
				 * bytes) and cannot make room: give up. */
				st->dead = true;
			}
			continue;
		}
		die("write to the socketpair failed");
	}
}

static struct state st;
static unsigned char scratch[FZ_PT_MAX];
static unsigned char wire[FZ_REC_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned cfg = data[0], rs = data[1];
	struct kc_err err = { 0 };
	struct kc_key_material km;
	struct kc_soft_opts so = { .no_rekey = (cfg & 8) != 0 };
	uint64_t seq0 = (cfg & 16) ? UINT64_MAX - 3 : 0;
	bool batch = (cfg & 64) != 0;

	st.qh = st.qt = 0;
	st.version = combos[cfg & 7].version;
	st.cipher = combos[cfg & 7].cipher;
	st.no_rekey = so.no_rekey;
	st.rx_gen = 0;
	st.checking = true;
	st.dead = false;
	st.paused = false;
	st.eof_sent = false;
	st.sizes[0] = read_sizes[rs & 7];
	st.sizes[1] = read_sizes[(rs >> 3) & 7];
	st.nread = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st.fd) < 0)
		abort();
	fcntl(st.fd[0], F_SETFL, O_NONBLOCK);
	fcntl(st.fd[1], F_SETFL, O_NONBLOCK);
	st.ch = kc_channel_soft_new(st.fd[0], &so, &err);
	if (!st.ch)
		abort();

	/* Nothing can be read before a key is installed. */
	{
		uint8_t t;
		bool eor;
		if (st.ch->ops->recv(st.ch, st.buf, 1, &t, &eor) != -1 || errno != ENOKEY)
			die("recv without a key did not fail with ENOKEY");
	}
	key_for(st.version, st.cipher, 0, seq0, &km);
	if (st.ch->ops->set_key(st.ch, KC_RX, &km, &err) < 0) {
		fprintf(stderr, "fuzz_record: %s\n", err.msg);
		abort();
	}
	struct fz_sealer sealer = { 0 };
	unsigned tx_gen = 0;
	if (fz_sealer_set(&sealer, &km) < 0)
		abort();

	size_t overhead = FZ_TAG + (km.iv_len == 4 && st.version == KC_TLS12 ? FZ_EXPLICIT : 0);
	size_t tail = st.version == KC_TLS13 ? 1 : 0;
	size_t budget = WIRE_BUDGET;
	const uint8_t *p = data + 2, *end = data + size;
	struct fz_op op;

	while (!st.dead && fz_next_op(&p, end, st.version, scratch, &op)) {
		if (op.mode == FZ_MODE_RAW) {
			st.checking = false;
			if (op.raw_len > budget)
				break;
			budget -= op.raw_len;
			put(&st, op.raw, op.raw_len);
			if (!batch)
				drain(&st);
			continue;
		}
		struct rec r = { 0 };
		uint64_t seq = sealer.seq;
		size_t n = fz_seal(&sealer, op.outer, op.pt, op.pt_len, wire);
		size_t reclen = n - FZ_HDR;
		if (n > budget)
			break;
		budget -= n;
		if (reclen > KC_MAX_PLAINTEXT + overhead + tail)
			r.kind = REC_TOOBIG;
		else if (!op.valid || seq == UINT64_MAX)
			r.kind = REC_BADMAC;
		r.type = op.content_type;
		r.len = op.content_len;
		if (r.kind == REC_GOOD && r.len) {
			r.content = malloc(r.len);
			if (!r.content)
				abort();
			memcpy(r.content, op.content, r.len);
		}
		/* The kernel (and so the channel) pauses after a TLS 1.3
		 * handshake record whose first byte is 24 (KeyUpdate); the
		 * peer sends under its next key from then on. */
		r.key_update = r.kind == REC_GOOD && st.version == KC_TLS13 &&
			       r.type == KC_REC_HANDSHAKE && r.len > 0 && op.content[0] == 24 &&
			       !st.no_rekey;
		if (st.checking)
			q_push(&st, &r);
		else
			free(r.content);
		put(&st, wire, n);
		if (r.key_update) {
			struct kc_key_material next;
			key_for(st.version, st.cipher, ++tx_gen, 0, &next);
			if (fz_sealer_set(&sealer, &next) < 0)
				abort();
			kc_keys_wipe(&next);
		}
		if (!batch)
			drain(&st);
	}
	if (!st.dead && (cfg & 32)) {
		shutdown(st.fd[1], SHUT_WR);
		st.eof_sent = true;
		drain(&st);
	}
	if (!st.dead)
		drain(&st);
	if (st.checking && !st.dead) {
		/* Every complete record was written: all must be out. */
		q_skip_empty_data(&st);
		if (st.qh != st.qt)
			die("complete records were written but recv says EAGAIN");
	}

	/* The rest of the contract: rec_seq on a keyed direction, EBUSY on
	 * an unkeyed one. */
	uint64_t s;
	if (st.ch->ops->rec_seq(st.ch, KC_TX, &s) != -1 || errno != EBUSY)
		die("rec_seq(TX) without a send key did not fail with EBUSY");
	if (st.ch->ops->rec_seq(st.ch, KC_RX, &s) != 0)
		die("rec_seq(RX) failed with a receive key");

	fz_sealer_clear(&sealer);
	kc_keys_wipe(&km);
	kc_channel_free(st.ch);
	close(st.fd[0]);
	close(st.fd[1]);
	q_free(&st);
	return 0;
}
