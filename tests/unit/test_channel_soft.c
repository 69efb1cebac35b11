/* tests/unit/test_channel_soft.c: the user-space record channel.
 *
 * Two soft channels face each other over a non-blocking socketpair with
 * matching keys (one's TX is the other's RX), for TLS 1.2 and 1.3 with each
 * of the four ciphers; records are also built by hand here (padding, empty
 * records, bad headers, tampering) and, most importantly, exchanged with a
 * real GnuTLS peer whose keys we take over after its handshake. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "core/channel.h"

struct combo {
	uint16_t version;
	gnutls_cipher_algorithm_t cipher;
	const char *name;
	const char *prio;   /* GnuTLS priority string selecting exactly this */
};

static const struct combo combos[] = {
	{ KC_TLS12, GNUTLS_CIPHER_AES_128_GCM, "TLS1.2 AES-128-GCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM" },
	{ KC_TLS12, GNUTLS_CIPHER_AES_256_GCM, "TLS1.2 AES-256-GCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM" },
	{ KC_TLS12, GNUTLS_CIPHER_CHACHA20_POLY1305, "TLS1.2 CHACHA20-POLY1305",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305" },
	{ KC_TLS12, GNUTLS_CIPHER_AES_128_CCM, "TLS1.2 AES-128-CCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CCM" },
	{ KC_TLS13, GNUTLS_CIPHER_AES_128_GCM, "TLS1.3 AES-128-GCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM" },
	{ KC_TLS13, GNUTLS_CIPHER_AES_256_GCM, "TLS1.3 AES-256-GCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM" },
	{ KC_TLS13, GNUTLS_CIPHER_CHACHA20_POLY1305, "TLS1.3 CHACHA20-POLY1305",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305" },
	{ KC_TLS13, GNUTLS_CIPHER_AES_128_CCM, "TLS1.3 AES-128-CCM",
	  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-CCM" },
};
#define NCOMBOS (sizeof combos / sizeof combos[0])

static const uint8_t KEY_UPDATE[5] = { 0x18, 0x00, 0x00, 0x01, 0x00 };

/* ---- helpers ---------------------------------------------------------- */

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31u + seed * 7u + (i >> 9));
}

static void make_km(struct kc_key_material *km, const struct combo *co,
		    uint64_t seq)
{
	memset(km, 0, sizeof *km);
	km->version = co->version;
	km->cipher = co->cipher;
	km->key_len = gnutls_cipher_get_key_size(co->cipher);
	km->iv_len = co->version == KC_TLS13 ||
		     co->cipher == GNUTLS_CIPHER_CHACHA20_POLY1305 ? 12 : 4;
	cr_assert_eq(gnutls_rnd(GNUTLS_RND_NONCE, km->key, km->key_len), 0);
	cr_assert_eq(gnutls_rnd(GNUTLS_RND_NONCE, km->iv, km->iv_len), 0);
	km->seq = seq;
}

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static struct kc_channel *new_soft(int fd, bool no_rekey)
{
	struct kc_soft_opts o = { .no_rekey = no_rekey };
	struct kc_err err = { 0 };
	struct kc_channel *ch = kc_channel_soft_new(fd, &o, &err);

	cr_assert_not_null(ch, "kc_channel_soft_new: %s", err.msg);
	cr_assert_eq(ch->kind, KC_CHANNEL_USER_SPACE);
	cr_assert_str_eq(kc_channel_kind_name(ch->kind), "user-space");
	cr_assert_eq(ch->caps.rekey, !no_rekey);
	cr_assert_not(ch->caps.send_file || ch->caps.send_pipe || ch->caps.recv_pipe);
	cr_assert_null(ch->ops->send_from);
	cr_assert_null(ch->ops->recv_to);
	cr_assert_eq(ch->fd, fd);
	return ch;
}

static void set_key_ok(struct kc_channel *ch, enum kc_dir dir,
		       const struct kc_key_material *km)
{
	struct kc_err err = { 0 };
	int r = ch->ops->set_key(ch, dir, km, &err);

	cr_assert_eq(r, 0, "set_key(%s): %s", dir == KC_RX ? "rx" : "tx",
		     err.msg);
}

static uint64_t seq_of(struct kc_channel *ch, enum kc_dir dir)
{
	uint64_t seq = 12345;

	cr_assert_eq(ch->ops->rec_seq(ch, dir, &seq), 0);
	return seq;
}

/* Two channels on a socketpair; km[i] is what ch[i] sends with. */
struct pair {
	int fd[2];
	struct kc_channel *ch[2];
	struct kc_key_material km[2];
	const struct combo *co;
};

static void pair_open(struct pair *p, const struct combo *co, bool no_rekey)
{
	memset(p, 0, sizeof *p);
	p->co = co;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	for (int i = 0; i < 2; i++) {
		nonblock(p->fd[i]);
		p->ch[i] = new_soft(p->fd[i], no_rekey);
		make_km(&p->km[i], co, (uint64_t)i * 1000);
	}
	for (int i = 0; i < 2; i++) {
		set_key_ok(p->ch[i], KC_TX, &p->km[i]);
		set_key_ok(p->ch[1 - i], KC_RX, &p->km[i]);
	}
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		kc_channel_free(p->ch[i]);
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	}
}

static ssize_t ch_recv(struct kc_channel *ch, void *buf, size_t len,
		       uint8_t *type, bool *eor)
{
	return ch->ops->recv(ch, buf, len, type, eor);
}

/* Send all of buf (one call must accept it; the tests keep it small). */
static void send_ok(struct kc_channel *ch, uint8_t type, const void *buf,
		    size_t len)
{
	ssize_t n = ch->ops->send(ch, type, buf, len);

	cr_assert_eq(n, (ssize_t)len, "send(%u, %zu) = %zd (errno %d)",
		     type, len, n, errno);
	cr_assert_eq(ch->ops->flush(ch), 0);
	cr_assert(!ch->ops->tx_pending(ch));
}

/* Expect exactly one recv result. */
static void expect(struct kc_channel *ch, size_t buflen, uint8_t want_type,
		   const void *want, size_t want_len, bool want_eor,
		   const char *what)
{
	uint8_t buf[KC_MAX_PLAINTEXT + 64];
	uint8_t type = 99;
	bool eor = !want_eor;
	ssize_t n;

	cr_assert(buflen <= sizeof buf);
	n = ch_recv(ch, buf, buflen, &type, &eor);
	cr_assert_eq(n, (ssize_t)want_len, "%s: recv = %zd (errno %d), want %zu",
		     what, n, n < 0 ? errno : 0, want_len);
	cr_assert_eq(type, want_type, "%s: type %u, want %u", what, type,
		     want_type);
	cr_assert_eq(eor, want_eor, "%s: eor %d", what, eor);
	if (want_len)
		cr_assert(memcmp(buf, want, want_len) == 0, "%s: bytes differ",
			  what);
}

static void expect_err(struct kc_channel *ch, int want_errno, const char *what)
{
	uint8_t buf[256];
	uint8_t type = 99;
	bool eor = true;
	ssize_t n = ch_recv(ch, buf, sizeof buf, &type, &eor);

	cr_assert_eq(n, -1, "%s: recv = %zd, want -1", what, n);
	cr_assert_eq(errno, want_errno, "%s: errno %d (%s), want %d (%s)", what,
		     errno, strerror(errno), want_errno, strerror(want_errno));
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { fd, POLLOUT, 0 };
			cr_assert_eq(poll(&pfd, 1, 5000), 1);
			continue;
		}
		cr_assert(n > 0, "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Everything now readable on a raw fd. */
static size_t read_avail(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EAGAIN)
			return got;
		cr_assert(n > 0, "read: %s", n ? strerror(errno) : "EOF");
		got += (size_t)n;
		cr_assert(got < cap);
	}
}

/* An independent record encoder (RFC 8446 §5.2, RFC 5246 §6.2.3.3):
 * builds records the channel never sends itself (padding, empty records,
 * an all-zero inner plaintext with type 0).  TLS 1.2 GCM/CCM records get an
 * explicit nonce that is NOT the sequence number, to prove the receiver
 * takes it from the wire. */
static size_t raw_seal(struct kc_key_material *km, uint8_t type,
		       const void *p, size_t n, size_t pad, uint8_t *out)
{
	gnutls_aead_cipher_hd_t h;
	gnutls_datum_t key = { km->key, (unsigned)km->key_len };
	uint8_t nonce[12], aad[13], inner[KC_MAX_PLAINTEXT + 300];
	bool tls13 = km->version == KC_TLS13;
	bool expl = !tls13 && km->iv_len == 4;
	size_t len, ilen, ctlen, aadlen, off = 5;
	const uint8_t *pt;

	cr_assert_eq(gnutls_aead_cipher_init(&h, km->cipher, &key), 0);
	if (expl) {
		uint64_t e = km->seq ^ 0x0123456789abcdefULL;
		memcpy(nonce, km->iv, 4);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] = (uint8_t)(e >> (56 - 8 * i));
		memcpy(out + 5, nonce + 4, 8);
		off += 8;
	} else {
		memcpy(nonce, km->iv, 12);
		for (int i = 0; i < 8; i++)
			nonce[11 - i] ^= (uint8_t)(km->seq >> (8 * i));
	}
	if (tls13) {
		cr_assert(n + 1 + pad <= sizeof inner);
		if (n)
			memcpy(inner, p, n);
		inner[n] = type;
		memset(inner + n + 1, 0, pad);
		pt = inner;
		ilen = n + 1 + pad;
	} else {
		pt = p;
		ilen = n;
	}
	len = off - 5 + ilen + 16;
	out[0] = tls13 ? 23 : type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	if (tls13) {
		memcpy(aad, out, 5);
		aadlen = 5;
	} else {
		for (int i = 0; i < 8; i++)
			aad[i] = (uint8_t)(km->seq >> (56 - 8 * i));
		aad[8] = type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (uint8_t)(n >> 8);
		aad[12] = (uint8_t)n;
		aadlen = 13;
	}
	ctlen = ilen + 16;
	cr_assert_eq(gnutls_aead_cipher_encrypt(h, nonce, 12, aad, aadlen, 16,
						pt ? pt : (const uint8_t *)"",
						ilen, out + off, &ctlen), 0);
	gnutls_aead_cipher_deinit(h);
	km->seq++;
	return 5 + len;
}

/* Move len bytes a -> b through the channels, interleaving send, flush
 * and recv on one thread until everything arrived. */
static void xfer(struct kc_channel *a, struct kc_channel *b, const uint8_t *data,
		 size_t len, uint8_t *got, const char *what)
{
	size_t sent = 0, rcvd = 0;
	long spins = 0;

	while (rcvd < len) {
		if (sent < len) {
			ssize_t n = a->ops->send(a, KC_REC_DATA, data + sent,
						 len - sent);
			if (n > 0)
				sent += (size_t)n;
			else
				cr_assert(n == -1 && errno == EAGAIN,
					  "%s: send %zd errno %d", what, n, errno);
		} else if (a->ops->tx_pending(a)) {
			int r = a->ops->flush(a);
			cr_assert(r == 0 || errno == EAGAIN);
		}
		for (;;) {
			uint8_t t = 0;
			bool e;
			/* room beyond the end catches over-delivery */
			ssize_t r = ch_recv(b, got + rcvd, len - rcvd + 64, &t, &e);
			if (r > 0) {
				cr_assert_eq(t, KC_REC_DATA, "%s: type %u", what, t);
				rcvd += (size_t)r;
				cr_assert(rcvd <= len, "%s: too many bytes", what);
				continue;
			}
			cr_assert(r == -1 && errno == EAGAIN,
				  "%s: recv %zd errno %d", what, r, errno);
			break;
		}
		cr_assert(++spins < 1000000, "%s: no progress", what);
	}
	cr_assert(!a->ops->tx_pending(a), "%s: still queued", what);
	cr_assert(memcmp(data, got, len) == 0, "%s: bytes differ", what);
}

/* ---- round trips ------------------------------------------------------ */

Test(soft, roundtrip, .timeout = 60)
{
	static const size_t sizes[] = { 0, 1, 16384, 16385, 200000 };
	size_t max = 200000;
	uint8_t *data = malloc(max), *got = malloc(max + 64);

	cr_assert(data && got);
	pattern(data, max, 1);
	for (size_t c = 0; c < NCOMBOS; c++) {
		struct pair p;

		pair_open(&p, &combos[c], false);
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			for (int d = 0; d < 2; d++) {
				struct kc_channel *a = p.ch[d], *b = p.ch[1 - d];
				uint64_t tx0 = seq_of(a, KC_TX), rx0 = seq_of(b, KC_RX);
				uint64_t recs = (sizes[i] + KC_MAX_PLAINTEXT - 1) /
						KC_MAX_PLAINTEXT;
				char what[96];

				snprintf(what, sizeof what, "%s %zu bytes dir %d",
					 combos[c].name, sizes[i], d);
				if (sizes[i] == 0)
					cr_assert_eq(a->ops->send(a, KC_REC_DATA,
								  data, 0), 0);
				xfer(a, b, data, sizes[i], got, what);
				expect_err(b, EAGAIN, what);
				cr_assert_eq(seq_of(a, KC_TX), tx0 + recs, "%s", what);
				cr_assert_eq(seq_of(b, KC_RX), rx0 + recs, "%s", what);
			}
		}
		pair_close(&p);
	}
	free(data);
	free(got);
}

Test(soft, merge_and_split)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		struct pair p;
		const char *n = combos[c].name;

		pair_open(&p, &combos[c], false);
		/* three records, one read */
		send_ok(p.ch[0], KC_REC_DATA, "abcd", 4);
		send_ok(p.ch[0], KC_REC_DATA, "efghi", 5);
		send_ok(p.ch[0], KC_REC_DATA, "jklmno", 6);
		expect(p.ch[1], 100, KC_REC_DATA, "abcdefghijklmno", 15, true, n);
		cr_assert_eq(seq_of(p.ch[1], KC_RX), 3);
		expect_err(p.ch[1], EAGAIN, n);

		/* a read ending inside the second record: no eor */
		send_ok(p.ch[0], KC_REC_DATA, "0123456789", 10);
		send_ok(p.ch[0], KC_REC_DATA, "ABCDEFGHIJ", 10);
		send_ok(p.ch[0], KC_REC_DATA, "klmnopqrst", 10);
		expect(p.ch[1], 15, KC_REC_DATA, "0123456789ABCDE", 15, false, n);
		expect(p.ch[1], 100, KC_REC_DATA, "FGHIJklmnopqrst", 15, true, n);

		/* a data record in pieces */
		send_ok(p.ch[0], KC_REC_DATA, "0123456789", 10);
		expect(p.ch[1], 4, KC_REC_DATA, "0123", 4, false, n);
		expect(p.ch[1], 4, KC_REC_DATA, "4567", 4, false, n);
		expect(p.ch[1], 4, KC_REC_DATA, "89", 2, true, n);

		/* a buffer ending exactly at a record boundary */
		send_ok(p.ch[0], KC_REC_DATA, "wxyz", 4);
		send_ok(p.ch[0], KC_REC_DATA, "WXYZ", 4);
		expect(p.ch[1], 4, KC_REC_DATA, "wxyz", 4, true, n);
		expect(p.ch[1], 4, KC_REC_DATA, "WXYZ", 4, true, n);
		expect_err(p.ch[1], EAGAIN, n);
		pair_close(&p);
	}
}

Test(soft, control_records_alone)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		struct pair p;
		const char *n = combos[c].name;
		static const uint8_t nst[6] = { 4, 0, 0, 2, 0xaa, 0xbb };
		static const uint8_t alert[2] = { 1, 0 };

		pair_open(&p, &combos[c], false);
		send_ok(p.ch[0], KC_REC_DATA, "data", 4);
		send_ok(p.ch[0], KC_REC_HANDSHAKE, nst, 6);
		send_ok(p.ch[0], KC_REC_DATA, "more", 4);
		expect(p.ch[1], 100, KC_REC_DATA, "data", 4, true, n);
		/* like the kernel, the record that ended the read was
		 * decrypted (and counted) already */
		cr_assert_eq(seq_of(p.ch[1], KC_RX), 2, "%s", n);
		expect(p.ch[1], 100, KC_REC_HANDSHAKE, nst, 6, true, n);
		expect(p.ch[1], 100, KC_REC_DATA, "more", 4, true, n);
		expect_err(p.ch[1], EAGAIN, n);

		/* two control records of one type are not merged */
		send_ok(p.ch[0], KC_REC_ALERT, alert, 2);
		send_ok(p.ch[0], KC_REC_ALERT, alert, 2);
		expect(p.ch[1], 100, KC_REC_ALERT, alert, 2, true, n);
		expect(p.ch[1], 100, KC_REC_ALERT, alert, 2, true, n);

		/* a control record longer than the buffer comes in pieces */
		send_ok(p.ch[0], KC_REC_ALERT, "0123456789", 10);
		send_ok(p.ch[0], KC_REC_DATA, "after", 5);
		expect(p.ch[1], 3, KC_REC_ALERT, "012", 3, false, n);
		expect(p.ch[1], 3, KC_REC_ALERT, "345", 3, false, n);
		expect(p.ch[1], 3, KC_REC_ALERT, "678", 3, false, n);
		expect(p.ch[1], 3, KC_REC_ALERT, "9", 1, true, n);
		expect(p.ch[1], 100, KC_REC_DATA, "after", 5, true, n);

		/* a maximal control record, read in 1000-byte pieces */
		{
			uint8_t big[KC_MAX_PLAINTEXT];
			pattern(big, sizeof big, 5);
			big[0] = 4;   /* not a KeyUpdate */
			send_ok(p.ch[0], KC_REC_HANDSHAKE, big, sizeof big);
			for (size_t off = 0; off < sizeof big; off += 1000) {
				size_t k = sizeof big - off < 1000 ?
					   sizeof big - off : 1000;
				expect(p.ch[1], 1000, KC_REC_HANDSHAKE, big + off,
				       k, off + k == sizeof big, n);
			}
		}
		/* a control message over 2^14 bytes is cut into records */
		{
			static uint8_t huge[20000];
			pattern(huge, sizeof huge, 6);
			huge[0] = 4;
			send_ok(p.ch[0], KC_REC_HANDSHAKE, huge, sizeof huge);
			expect(p.ch[1], KC_MAX_PLAINTEXT + 64, KC_REC_HANDSHAKE,
			       huge, KC_MAX_PLAINTEXT, true, n);
			expect(p.ch[1], KC_MAX_PLAINTEXT + 64, KC_REC_HANDSHAKE,
			       huge + KC_MAX_PLAINTEXT,
			       sizeof huge - KC_MAX_PLAINTEXT, true, n);
		}
		expect_err(p.ch[1], EAGAIN, n);
		pair_close(&p);
	}
}

/* ---- hand-made records ------------------------------------------------ */

Test(soft, empty_and_padded_records)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		struct pair p;
		const char *n = combos[c].name;
		struct kc_key_material km;
		uint8_t rec[3][KC_MAX_PLAINTEXT + 400];
		size_t l0, l1, l2;

		pair_open(&p, &combos[c], false);
		km = p.km[0];   /* we write ch[0]'s records by hand */

		/* empty data records are skipped silently */
		l0 = raw_seal(&km, KC_REC_DATA, NULL, 0, 0, rec[0]);
		l1 = raw_seal(&km, KC_REC_DATA, NULL, 0, 0, rec[1]);
		l2 = raw_seal(&km, KC_REC_DATA, "xyz", 3, 0, rec[2]);
		write_all(p.fd[0], rec[0], l0);
		write_all(p.fd[0], rec[1], l1);
		write_all(p.fd[0], rec[2], l2);
		expect(p.ch[1], 100, KC_REC_DATA, "xyz", 3, true, n);
		cr_assert_eq(seq_of(p.ch[1], KC_RX), km.seq, "%s", n);

		/* only empty data records: nothing to return */
		l0 = raw_seal(&km, KC_REC_DATA, NULL, 0, 0, rec[0]);
		write_all(p.fd[0], rec[0], l0);
		expect_err(p.ch[1], EAGAIN, n);

		/* an empty control record: 0 with its type */
		l0 = raw_seal(&km, KC_REC_ALERT, NULL, 0, 0, rec[0]);
		l1 = raw_seal(&km, KC_REC_DATA, NULL, 0, 0, rec[1]);
		l2 = raw_seal(&km, KC_REC_HANDSHAKE, NULL, 0, 0, rec[2]);
		write_all(p.fd[0], rec[0], l0);
		write_all(p.fd[0], rec[1], l1);
		write_all(p.fd[0], rec[2], l2);
		expect(p.ch[1], 100, KC_REC_ALERT, NULL, 0, true, n);
		expect(p.ch[1], 100, KC_REC_HANDSHAKE, NULL, 0, true, n);
		expect_err(p.ch[1], EAGAIN, n);

		/* data, then an empty control record: data first, held one next */
		l0 = raw_seal(&km, KC_REC_DATA, "ab", 2, 0, rec[0]);
		l1 = raw_seal(&km, KC_REC_ALERT, NULL, 0, 0, rec[1]);
		write_all(p.fd[0], rec[0], l0);
		write_all(p.fd[0], rec[1], l1);
		expect(p.ch[1], 100, KC_REC_DATA, "ab", 2, true, n);
		expect(p.ch[1], 100, KC_REC_ALERT, NULL, 0, true, n);

		/* TLS 1.2 passes any outer type through */
		if (combos[c].version == KC_TLS12) {
			l0 = raw_seal(&km, 100, "odd", 3, 0, rec[0]);
			write_all(p.fd[0], rec[0], l0);
			expect(p.ch[1], 100, 100, "odd", 3, true, n);
		}

		if (combos[c].version == KC_TLS13) {
			/* padding is stripped, whatever its length */
			l0 = raw_seal(&km, KC_REC_DATA, "pad", 3, 100, rec[0]);
			l1 = raw_seal(&km, KC_REC_ALERT, "\x01\x00", 2, 1, rec[1]);
			l2 = raw_seal(&km, KC_REC_DATA, "x", 1,
				      KC_MAX_PLAINTEXT - 1, rec[2]);
			write_all(p.fd[0], rec[0], l0);
			write_all(p.fd[0], rec[1], l1);
			write_all(p.fd[0], rec[2], l2);
			expect(p.ch[1], 100, KC_REC_DATA, "pad", 3, true, n);
			expect(p.ch[1], 100, KC_REC_ALERT, "\x01\x00", 2, true, n);
			expect(p.ch[1], 100, KC_REC_DATA, "x", 1, true, n);
			/* an all-zero inner plaintext has no type */
			l0 = raw_seal(&km, 0, NULL, 0, 7, rec[0]);
			write_all(p.fd[0], rec[0], l0);
			expect_err(p.ch[1], EBADMSG, n);
			expect_err(p.ch[1], EBADMSG, n);
		}
		pair_close(&p);
	}
}

/* pad_data: TLS 1.3 data records go out padded to the send limit (the
 * header's length says so), control records and TLS 1.2 ones as they are;
 * a plain channel reads the content back. */
Test(soft, pad_data)
{
	static const size_t limits[] = { KC_MAX_PLAINTEXT, 1000 };

	for (size_t c = 0; c < NCOMBOS; c++)
		for (size_t l = 0; l < 2; l++) {
			struct pair p;
			const char *n = combos[c].name;
			struct kc_soft_opts o = { .pad_data = true };
			struct kc_record_limits lim = { .tx = limits[l], .rx = KC_MAX_PLAINTEXT };
			struct kc_err err = { 0 };
			uint8_t raw[2 * (KC_MAX_PLAINTEXT + 400)];
			bool t13 = combos[c].version == KC_TLS13;

			pair_open(&p, &combos[c], false);
			kc_channel_free(p.ch[0]);
			p.ch[0] = kc_channel_soft_new(p.fd[0], &o, &err);
			cr_assert_not_null(p.ch[0], "%s", err.msg);
			set_key_ok(p.ch[0], KC_TX, &p.km[0]);
			cr_assert_eq(p.ch[0]->ops->set_limits(p.ch[0], &lim, &err), 0);

			send_ok(p.ch[0], KC_REC_DATA, "abc", 3);
			send_ok(p.ch[0], KC_REC_ALERT, "\x01\x00", 2);
			size_t got = read_avail(p.fd[1], raw, sizeof raw);
			size_t ovh = t13 ? 1 + 16 : combos[c].cipher ==
				     GNUTLS_CIPHER_CHACHA20_POLY1305 ? 16 : 8 + 16;
			size_t len0 = (size_t)raw[3] << 8 | raw[4];
			cr_assert_eq(len0, (t13 ? limits[l] : 3) + ovh,
				     "%s, limit %zu: data record of %zu bytes", n, limits[l], len0);
			size_t len1 = (size_t)raw[5 + len0 + 3] << 8 | raw[5 + len0 + 4];
			cr_assert_eq(len1, 2 + ovh, "%s: the alert was padded", n);
			cr_assert_eq(got, 10 + len0 + len1, "%s", n);
			/* the same bytes, through the other end, read back */
			write_all(p.fd[0], raw, got);
			expect(p.ch[1], 100, KC_REC_DATA, "abc", 3, true, n);
			expect(p.ch[1], 100, KC_REC_ALERT, "\x01\x00", 2, true, n);
			pair_close(&p);
		}
}

Test(soft, end_of_stream)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		struct pair p;
		const char *n = combos[c].name;
		struct kc_key_material km;
		uint8_t rec[100];
		size_t l;

		/* data, close_notify, FIN */
		pair_open(&p, &combos[c], false);
		send_ok(p.ch[0], KC_REC_DATA, "bye", 3);
		send_ok(p.ch[0], KC_REC_ALERT, "\x01\x00", 2);
		cr_assert_eq(shutdown(p.fd[0], SHUT_WR), 0);
		expect(p.ch[1], 100, KC_REC_DATA, "bye", 3, true, n);
		expect(p.ch[1], 100, KC_REC_ALERT, "\x01\x00", 2, true, n);
		expect(p.ch[1], 100, 0, NULL, 0, false, n);
		expect(p.ch[1], 100, 0, NULL, 0, false, n);
		pair_close(&p);

		/* a partial record, then FIN: just end of stream */
		pair_open(&p, &combos[c], false);
		km = p.km[0];
		l = raw_seal(&km, KC_REC_DATA, "cut", 3, 0, rec);
		write_all(p.fd[0], rec, l - 4);
		expect_err(p.ch[1], EAGAIN, n);
		cr_assert_eq(shutdown(p.fd[0], SHUT_WR), 0);
		expect(p.ch[1], 100, 0, NULL, 0, false, n);
		pair_close(&p);

		/* nothing, then FIN */
		pair_open(&p, &combos[c], false);
		cr_assert_eq(shutdown(p.fd[0], SHUT_WR), 0);
		expect(p.ch[1], 100, 0, NULL, 0, false, n);
		pair_close(&p);
	}
}

/* ---- errors ----------------------------------------------------------- */

Test(soft, tampered_records)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		const struct combo *co = &combos[c];
		const char *n = co->name;
		bool expl = co->version == KC_TLS12 &&
			    co->cipher != GNUTLS_CIPHER_CHACHA20_POLY1305;

		for (int where = 0; where < 4; where++) {
			int a[2], b[2];
			struct kc_channel *tx, *rx;
			struct kc_key_material km;
			static uint8_t wire[4096];
			size_t len, r1, r2, pos;

			/* tx writes into a[], we read its records raw and
			 * pass them (one of them damaged) to rx over b[]. */
			cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
			cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
			for (int i = 0; i < 2; i++) {
				nonblock(a[i]);
				nonblock(b[i]);
			}
			tx = new_soft(a[0], false);
			rx = new_soft(b[1], false);
			make_km(&km, co, 77);
			set_key_ok(tx, KC_TX, &km);
			set_key_ok(rx, KC_RX, &km);
			send_ok(tx, KC_REC_DATA, "good1", 5);
			send_ok(tx, KC_REC_DATA, "good2", 5);
			send_ok(tx, KC_REC_DATA, "bad!!", 5);
			len = read_avail(a[1], wire, sizeof wire);
			r1 = 5 + (size_t)(wire[3] << 8 | wire[4]);
			r2 = r1 + 5 + (size_t)(wire[r1 + 3] << 8 | wire[r1 + 4]);
			cr_assert(r2 < len);
			if (expl) {
				/* explicit nonce = the sequence number */
				static const uint8_t s77[8] = { 0, 0, 0, 0, 0, 0, 0, 77 };
				cr_assert(memcmp(wire + 5, s77, 8) == 0, "%s", n);
			}
			/* damage the third record: its type (part of the AAD),
			 * its first body byte (explicit nonce in 1.2 GCM/CCM),
			 * a ciphertext byte, the last tag byte */
			pos = where == 0 ? r2 : where == 1 ? r2 + 5 :
			      where == 2 ? r2 + 5 + (expl ? 8 : 0) + 2 : len - 1;
			wire[pos] ^= 0x01;
			write_all(b[0], wire, len);
			expect(rx, 100, KC_REC_DATA, "good1good2", 10, true, n);
			expect_err(rx, EBADMSG, n);
			expect_err(rx, EBADMSG, n);
			cr_assert_eq(seq_of(rx, KC_RX), 79);
			kc_channel_free(tx);
			kc_channel_free(rx);
			for (int i = 0; i < 2; i++) {
				close(a[i]);
				close(b[i]);
			}
		}
	}
}

Test(soft, bad_headers)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		const struct combo *co = &combos[c];
		const char *n = co->name;
		size_t ovh = 16 + (co->version == KC_TLS12 &&
				   co->cipher != GNUTLS_CIPHER_CHACHA20_POLY1305 ? 8 : 0);
		size_t maxlen = KC_MAX_PLAINTEXT + ovh +
				(co->version == KC_TLS13 ? 1 : 0);
		struct pair p;
		uint8_t h[5] = { 23, 3, 3, 0, 0 };

		/* 20000 bytes announced */
		pair_open(&p, co, false);
		h[3] = 20000 >> 8;
		h[4] = 20000 & 0xff;
		write_all(p.fd[0], h, 5);
		expect_err(p.ch[1], EMSGSIZE, n);
		expect_err(p.ch[1], EMSGSIZE, n);
		pair_close(&p);

		/* one byte over the limit; the limit itself is fine */
		pair_open(&p, co, false);
		h[3] = (uint8_t)((maxlen + 1) >> 8);
		h[4] = (uint8_t)(maxlen + 1);
		write_all(p.fd[0], h, 5);
		expect_err(p.ch[1], EMSGSIZE, n);
		pair_close(&p);
		pair_open(&p, co, false);
		h[3] = (uint8_t)(maxlen >> 8);
		h[4] = (uint8_t)maxlen;
		write_all(p.fd[0], h, 5);
		expect_err(p.ch[1], EAGAIN, n);
		pair_close(&p);

		/* shorter than the overhead */
		pair_open(&p, co, false);
		h[3] = 0;
		h[4] = (uint8_t)(ovh - 1);
		write_all(p.fd[0], h, 5);
		expect_err(p.ch[1], EBADMSG, n);
		expect_err(p.ch[1], EBADMSG, n);
		pair_close(&p);

		/* wrong version bytes, after a good record */
		pair_open(&p, co, false);
		send_ok(p.ch[0], KC_REC_DATA, "ok", 2);
		h[2] = 1;
		h[3] = 0;
		h[4] = 40;
		write_all(p.fd[0], h, 5);
		expect(p.ch[1], 100, KC_REC_DATA, "ok", 2, true, n);
		expect_err(p.ch[1], EINVAL, n);
		expect_err(p.ch[1], EINVAL, n);
		h[2] = 3;
		pair_close(&p);
	}
}

/* ---- keys ------------------------------------------------------------- */

Test(soft, key_update)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		const struct combo *co = &combos[c];
		const char *n = co->name;
		struct kc_key_material nk, nk2;
		struct kc_err err = { 0 };
		struct pair p;

		pair_open(&p, co, false);
		if (co->version == KC_TLS12) {
			/* no pause in TLS 1.2, and no second key */
			send_ok(p.ch[0], KC_REC_HANDSHAKE, KEY_UPDATE, 5);
			send_ok(p.ch[0], KC_REC_DATA, "go on", 5);
			expect(p.ch[1], 100, KC_REC_HANDSHAKE, KEY_UPDATE, 5, true, n);
			expect(p.ch[1], 100, KC_REC_DATA, "go on", 5, true, n);
			make_km(&nk, co, 0);
			cr_assert_eq(p.ch[0]->ops->set_key(p.ch[0], KC_TX, &nk, &err), -1);
			cr_assert_eq(err.status, KC_E_PROTOCOL, "%s: %s", n, err.msg);
			cr_assert_eq(p.ch[1]->ops->set_key(p.ch[1], KC_RX, &nk, &err), -1);
			send_ok(p.ch[0], KC_REC_DATA, "still", 5);
			expect(p.ch[1], 100, KC_REC_DATA, "still", 5, true, n);
			pair_close(&p);
			continue;
		}

		/* data, KeyUpdate under the old key, new TX key, data */
		send_ok(p.ch[0], KC_REC_DATA, "before", 6);
		send_ok(p.ch[0], KC_REC_HANDSHAKE, KEY_UPDATE, 5);
		make_km(&nk, co, 0);
		set_key_ok(p.ch[0], KC_TX, &nk);
		cr_assert_eq(seq_of(p.ch[0], KC_TX), 0);
		send_ok(p.ch[0], KC_REC_DATA, "after", 5);
		cr_assert_eq(seq_of(p.ch[0], KC_TX), 1);

		expect(p.ch[1], 100, KC_REC_DATA, "before", 6, true, n);
		expect(p.ch[1], 100, KC_REC_HANDSHAKE, KEY_UPDATE, 5, true, n);
		expect_err(p.ch[1], EKEYEXPIRED, n);
		expect_err(p.ch[1], EKEYEXPIRED, n);
		cr_assert_eq(seq_of(p.ch[1], KC_RX), 2);
		set_key_ok(p.ch[1], KC_RX, &nk);
		cr_assert_eq(seq_of(p.ch[1], KC_RX), 0);
		expect(p.ch[1], 100, KC_REC_DATA, "after", 5, true, n);
		cr_assert_eq(seq_of(p.ch[1], KC_RX), 1);

		/* again, the KeyUpdate read in pieces: the pause starts
		 * only after its last byte */
		send_ok(p.ch[0], KC_REC_HANDSHAKE, KEY_UPDATE, 5);
		make_km(&nk2, co, 0);
		set_key_ok(p.ch[0], KC_TX, &nk2);
		send_ok(p.ch[0], KC_REC_DATA, "third", 5);
		expect(p.ch[1], 2, KC_REC_HANDSHAKE, KEY_UPDATE, 2, false, n);
		expect(p.ch[1], 2, KC_REC_HANDSHAKE, KEY_UPDATE + 2, 2, false, n);
		expect(p.ch[1], 2, KC_REC_HANDSHAKE, KEY_UPDATE + 4, 1, true, n);
		expect_err(p.ch[1], EKEYEXPIRED, n);
		set_key_ok(p.ch[1], KC_RX, &nk2);
		expect(p.ch[1], 100, KC_REC_DATA, "third", 5, true, n);

		/* the other direction counts on its own */
		send_ok(p.ch[1], KC_REC_DATA, "back", 4);
		expect(p.ch[0], 100, KC_REC_DATA, "back", 4, true, n);
		cr_assert_eq(seq_of(p.ch[1], KC_TX), 1001);
		cr_assert_eq(seq_of(p.ch[0], KC_RX), 1001);

		/* a key update must keep version and cipher; a failed one
		 * leaves the old key working */
		make_km(&nk, &combos[c == 4 ? 5 : 4], 0);
		cr_assert_eq(p.ch[0]->ops->set_key(p.ch[0], KC_TX, &nk, &err), -1);
		cr_assert_eq(err.status, KC_E_INTERNAL, "%s: %s", n, err.msg);
		send_ok(p.ch[0], KC_REC_DATA, "same", 4);
		expect(p.ch[1], 100, KC_REC_DATA, "same", 4, true, n);
		pair_close(&p);
	}
}

Test(soft, no_rekey)
{
	for (size_t c = 0; c < NCOMBOS; c++) {
		const struct combo *co = &combos[c];
		const char *n = co->name;
		struct kc_key_material nk;
		struct kc_err err = { 0 };
		struct pair p;

		pair_open(&p, co, true);
		send_ok(p.ch[0], KC_REC_HANDSHAKE, KEY_UPDATE, 5);
		send_ok(p.ch[0], KC_REC_DATA, "old key", 7);
		expect(p.ch[1], 100, KC_REC_HANDSHAKE, KEY_UPDATE, 5, true, n);
		expect(p.ch[1], 100, KC_REC_DATA, "old key", 7, true, n);
		expect_err(p.ch[1], EAGAIN, n);

		make_km(&nk, co, 0);
		for (int i = 0; i < 2; i++) {
			struct kc_channel *ch = p.ch[i];
			enum kc_dir dir = i ? KC_RX : KC_TX;

			memset(&err, 0, sizeof err);
			cr_assert_eq(ch->ops->set_key(ch, dir, &nk, &err), -1);
			cr_assert_eq(err.status, KC_E_NOREKEY, "%s: %s", n, err.msg);
			cr_assert(strncmp(err.msg, "cannot install new keys: ", 25) == 0,
				  "%s: %s", n, err.msg);
		}
		send_ok(p.ch[0], KC_REC_DATA, "still", 5);
		expect(p.ch[1], 100, KC_REC_DATA, "still", 5, true, n);
		pair_close(&p);
	}
}

Test(soft, key_checks)
{
	struct kc_key_material km;
	struct kc_err err = { 0 };
	struct kc_channel *ch;
	uint8_t buf[16], type = 9;
	bool eor = true;
	uint64_t seq;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	nonblock(sv[0]);
	nonblock(sv[1]);
	ch = new_soft(sv[0], false);

	/* nothing works before the keys */
	cr_assert_eq(ch_recv(ch, buf, sizeof buf, &type, &eor), -1);
	cr_assert_eq(errno, ENOKEY);
	cr_assert_eq(type, 0);
	cr_assert_eq(ch->ops->send(ch, KC_REC_DATA, "x", 1), -1);
	cr_assert_eq(errno, ENOKEY);
	cr_assert_eq(ch->ops->rec_seq(ch, KC_TX, &seq), -1);
	cr_assert_eq(ch->ops->rec_seq(ch, KC_RX, &seq), -1);
	cr_assert(!ch->ops->tx_pending(ch));
	cr_assert_eq(ch->ops->flush(ch), 0);

	make_km(&km, &combos[4], 0);
	km.version = 0x0302;
	cr_assert_eq(ch->ops->set_key(ch, KC_TX, &km, &err), -1);
	cr_assert_eq(err.status, KC_E_INTERNAL);
	cr_assert(strstr(err.msg, "0x0302"), "%s", err.msg);

	make_km(&km, &combos[4], 0);
	km.cipher = GNUTLS_CIPHER_AES_256_CCM;
	cr_assert_eq(ch->ops->set_key(ch, KC_TX, &km, &err), -1);
	make_km(&km, &combos[4], 0);
	km.cipher = GNUTLS_CIPHER_AES_128_CBC;
	cr_assert_eq(ch->ops->set_key(ch, KC_TX, &km, &err), -1);

	make_km(&km, &combos[0], 0);   /* TLS 1.2 GCM wants a 4-byte salt */
	km.iv_len = 12;
	cr_assert_eq(ch->ops->set_key(ch, KC_TX, &km, &err), -1);
	make_km(&km, &combos[4], 0);
	km.key_len = 32;               /* AES-128 */
	cr_assert_eq(ch->ops->set_key(ch, KC_TX, &km, &err), -1);
	make_km(&km, &combos[4], 0);
	cr_assert_eq(ch->ops->set_key(ch, (enum kc_dir)7, &km, &err), -1);

	/* the caller's struct may go away: nothing points into it */
	make_km(&km, &combos[4], 5);
	set_key_ok(ch, KC_TX, &km);
	set_key_ok(ch, KC_RX, &km);
	{
		struct kc_key_material copy = km;
		memset(&km, 0xa5, sizeof km);
		send_ok(ch, KC_REC_DATA, "hi", 2);
		cr_assert_eq(seq_of(ch, KC_TX), 6);
		/* a channel on the other end decrypts it with the copy */
		struct kc_channel *peer = new_soft(sv[1], false);
		set_key_ok(peer, KC_RX, &copy);
		expect(peer, 16, KC_REC_DATA, "hi", 2, true, "copy");
		kc_channel_free(peer);
	}
	/* zero-length recv buffers are refused (0 means end of stream) */
	cr_assert_eq(ch_recv(ch, buf, 0, &type, &eor), -1);
	cr_assert_eq(errno, EINVAL);
	kc_channel_free(ch);
	/* free() does not close the fd */
	cr_assert(fcntl(sv[0], F_GETFD) >= 0);
	close(sv[0]);
	close(sv[1]);
}

/* The queue is bounded for data but still takes control records, and
 * ciphertext queued before set_key(KC_TX) keeps its old key. */
Test(soft, backpressure_and_ordering, .timeout = 60)
{
	static const size_t pick[] = { 0, 3, 4, 6 };

	for (size_t k = 0; k < sizeof pick / sizeof pick[0]; k++) {
		const struct combo *co = &combos[pick[k]];
		const char *n = co->name;
		static uint8_t data[4 << 20], got[4 << 20], big[KC_MAX_PLAINTEXT];
		size_t sent = 0, rcvd = 0;
		struct kc_key_material nk;
		struct pair p;
		ssize_t r;
		uint8_t t;
		bool e;

		pattern(data, sizeof data, 9);
		pattern(big, sizeof big, 10);
		pair_open(&p, co, false);
		for (;;) {
			r = p.ch[0]->ops->send(p.ch[0], KC_REC_DATA, data + sent,
					       sizeof data - sent);
			if (r < 0)
				break;
			sent += (size_t)r;
			cr_assert(sent < sizeof data, "%s: socket never filled", n);
		}
		cr_assert_eq(errno, EAGAIN);
		cr_assert(p.ch[0]->ops->tx_pending(p.ch[0]));
		cr_assert_eq(p.ch[0]->ops->flush(p.ch[0]), -1);
		cr_assert_eq(errno, EAGAIN);
		/* control records still go in, all or nothing */
		cr_assert_eq(p.ch[0]->ops->send(p.ch[0], KC_REC_ALERT, "\x01\x00", 2), 2);
		big[0] = 4;   /* a maximal handshake record, not a KeyUpdate */
		cr_assert_eq(p.ch[0]->ops->send(p.ch[0], KC_REC_HANDSHAKE, big,
						 sizeof big), (ssize_t)sizeof big);
		cr_assert_eq(p.ch[0]->ops->send(p.ch[0], KC_REC_DATA, data + sent,
						 KC_MAX_PLAINTEXT), -1);
		cr_assert_eq(errno, EAGAIN);
		if (co->version == KC_TLS13) {
			cr_assert_eq(p.ch[0]->ops->send(p.ch[0], KC_REC_HANDSHAKE,
							 KEY_UPDATE, 5), 5);
			make_km(&nk, co, 0);
			set_key_ok(p.ch[0], KC_TX, &nk);
		}
		/* drain: all data in order, then the alert, then the KeyUpdate */
		while (rcvd < sent) {
			r = ch_recv(p.ch[1], got + rcvd, sizeof got - rcvd, &t, &e);
			if (r > 0) {
				cr_assert_eq(t, KC_REC_DATA, "%s", n);
				rcvd += (size_t)r;
				continue;
			}
			cr_assert(r < 0 && errno == EAGAIN, "%s", n);
			r = p.ch[0]->ops->flush(p.ch[0]);
			cr_assert(r == 0 || errno == EAGAIN);
		}
		cr_assert_eq(rcvd, sent);
		cr_assert(memcmp(got, data, sent) == 0, "%s", n);
		while (p.ch[0]->ops->flush(p.ch[0]) != 0)
			cr_assert_eq(errno, EAGAIN);
		expect(p.ch[1], 100, KC_REC_ALERT, "\x01\x00", 2, true, n);
		expect(p.ch[1], sizeof big, KC_REC_HANDSHAKE, big, sizeof big,
		       true, n);
		if (co->version == KC_TLS13) {
			send_ok(p.ch[0], KC_REC_DATA, "new key", 7);
			expect(p.ch[1], 100, KC_REC_HANDSHAKE, KEY_UPDATE, 5, true, n);
			expect_err(p.ch[1], EKEYEXPIRED, n);
			set_key_ok(p.ch[1], KC_RX, &nk);
			expect(p.ch[1], 100, KC_REC_DATA, "new key", 7, true, n);
		}
		expect_err(p.ch[1], EAGAIN, n);
		pair_close(&p);
	}
}

Test(soft, socket_errors)
{
	struct pair p;
	uint8_t big[100000];

	/* a peer that is gone: EPIPE (no SIGPIPE), and no hang */
	pair_open(&p, &combos[4], false);
	close(p.fd[1]);
	p.fd[1] = -1;
	memset(big, 7, sizeof big);
	cr_assert_eq(p.ch[0]->ops->send(p.ch[0], KC_REC_DATA, big, sizeof big), -1);
	cr_assert_eq(errno, EPIPE);
	pair_close(&p);
}

/* ---- against real GnuTLS ---------------------------------------------- */

#define S1_LEN 100000
#define C1_LEN 70000
#define S2_LEN 30000
#define C2_LEN 40000

struct server {
	int fd;
	const struct combo *co;
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t ticket_key;
	char why[256];   /* empty when all went well */
};

static gnutls_certificate_credentials_t make_cred(void)
{
	gnutls_certificate_credentials_t cred;
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[8] = { 0x11, 2, 3, 4, 5, 6, 7, 8 };
	time_t now = time(NULL);

	/* ECDSA: TLS 1.2 AES-128-CCM exists only with ECDHE-ECDSA here */
	cr_assert_eq(gnutls_x509_privkey_init(&key), 0);
	cr_assert_eq(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
		GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	cr_assert_eq(gnutls_x509_crt_set_version(crt, 3), 0);
	cr_assert_eq(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), 0);
	cr_assert_eq(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
	cr_assert_eq(gnutls_x509_crt_set_expiration_time(crt, now + 86400), 0);
	cr_assert_eq(gnutls_x509_crt_set_dn(crt, "CN=ktlsctl-test", NULL), 0);
	cr_assert_eq(gnutls_x509_crt_set_key(crt, key), 0);
	cr_assert_eq(gnutls_x509_crt_set_key_usage(crt,
		GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	cr_assert_eq(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	cr_assert_eq(gnutls_certificate_allocate_credentials(&cred), 0);
	cr_assert_eq(gnutls_certificate_set_x509_key(cred, &crt, 1, key), 0);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return cred;
}

#define SRV_FAIL(sv, ...) do { \
		snprintf((sv)->why, sizeof (sv)->why, __VA_ARGS__); \
		goto out; \
	} while (0)

static int gt_send_all(gnutls_session_t s, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = gnutls_record_send(s, p, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int gt_recv_all(gnutls_session_t s, uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = gnutls_record_recv(s, p, len);
		/* GNUTLS_E_AGAIN also follows a post-handshake message */
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n == 0)
			return GNUTLS_E_PREMATURE_TERMINATION;
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	gnutls_session_t s = NULL;
	uint8_t *buf = malloc(S1_LEN), *want = malloc(S1_LEN);
	int ret;

	if (!buf || !want)
		SRV_FAIL(sv, "malloc");
	if ((ret = gnutls_init(&s, GNUTLS_SERVER)) < 0 ||
	    (ret = gnutls_priority_set_direct(s, sv->co->prio, NULL)) < 0 ||
	    (ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, sv->cred)) < 0 ||
	    (ret = gnutls_session_ticket_enable_server(s, &sv->ticket_key)) < 0)
		SRV_FAIL(sv, "server setup: %s", gnutls_strerror(ret));
	gnutls_transport_set_int(s, sv->fd);
	do
		ret = gnutls_handshake(s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0)
		SRV_FAIL(sv, "server handshake: %s", gnutls_strerror(ret));

	pattern(want, S1_LEN, 1);
	if ((ret = gt_send_all(s, want, S1_LEN)) < 0)
		SRV_FAIL(sv, "server send S1: %s", gnutls_strerror(ret));
	if ((ret = gt_recv_all(s, buf, C1_LEN)) < 0)
		SRV_FAIL(sv, "server recv C1: %s", gnutls_strerror(ret));
	pattern(want, C1_LEN, 2);
	if (memcmp(buf, want, C1_LEN))
		SRV_FAIL(sv, "server: C1 differs");
	if (sv->co->version == KC_TLS13) {
		if ((ret = gnutls_session_key_update(s, 0)) < 0)
			SRV_FAIL(sv, "server key update: %s", gnutls_strerror(ret));
		pattern(want, S2_LEN, 3);
		if ((ret = gt_send_all(s, want, S2_LEN)) < 0)
			SRV_FAIL(sv, "server send S2: %s", gnutls_strerror(ret));
		if ((ret = gt_recv_all(s, buf, C2_LEN)) < 0)
			SRV_FAIL(sv, "server recv C2: %s", gnutls_strerror(ret));
		pattern(want, C2_LEN, 4);
		if (memcmp(buf, want, C2_LEN))
			SRV_FAIL(sv, "server: C2 differs");
	}
	if ((ret = gnutls_bye(s, GNUTLS_SHUT_WR)) < 0)
		SRV_FAIL(sv, "server bye: %s", gnutls_strerror(ret));
out:
	/* FIN either way, so the client never waits for nothing */
	shutdown(sv->fd, SHUT_WR);
	if (s)
		gnutls_deinit(s);
	free(buf);
	free(want);
	return NULL;
}

/* Outgoing handshake messages of the client session after the handover. */
static uint8_t hs_out[256];
static size_t hs_out_len;

static int hs_read_cb(gnutls_session_t s, gnutls_record_encryption_level_t level,
		      gnutls_handshake_description_t htype, const void *data,
		      size_t len)
{
	if (hs_out_len + len > sizeof hs_out)
		return GNUTLS_E_SHORT_MEMORY_BUFFER;
	memcpy(hs_out + hs_out_len, data, len);
	hs_out_len += len;
	return 0;
}

/* As gnutls_record_get_state reports them: key, IV, next sequence. */
static void km_from_session(gnutls_session_t s, int read,
			    struct kc_key_material *km)
{
	gnutls_datum_t mac, iv, key;
	unsigned char seq[8];

	cr_assert_eq(gnutls_record_get_state(s, read, &mac, &iv, &key, seq), 0);
	memset(km, 0, sizeof *km);
	km->version = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 ?
		      KC_TLS13 : KC_TLS12;
	km->cipher = gnutls_cipher_get(s);
	cr_assert(key.size <= sizeof km->key && iv.size <= sizeof km->iv);
	memcpy(km->key, key.data, key.size);
	km->key_len = key.size;
	memcpy(km->iv, iv.data, iv.size);
	km->iv_len = iv.size;
	for (int i = 0; i < 8; i++)
		km->seq = km->seq << 8 | seq[i];
}

static ssize_t recv_wait(struct kc_channel *ch, void *buf, size_t len,
			 uint8_t *type, bool *eor)
{
	for (;;) {
		ssize_t r = ch_recv(ch, buf, len, type, eor);
		struct pollfd pfd = { ch->fd, POLLIN, 0 };

		if (r >= 0 || errno != EAGAIN)
			return r;
		if (poll(&pfd, 1, 5000) != 1) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

static void send_wait(struct kc_channel *ch, uint8_t type, const void *buf,
		      size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	while (done < len || ch->ops->tx_pending(ch)) {
		struct pollfd pfd = { ch->fd, POLLOUT, 0 };
		if (done < len) {
			ssize_t n = ch->ops->send(ch, type, p + done, len - done);
			if (n > 0) {
				done += (size_t)n;
				continue;
			}
			cr_assert(n == -1 && errno == EAGAIN, "send: %s",
				  strerror(errno));
		} else if (ch->ops->flush(ch) == 0) {
			break;
		} else {
			cr_assert_eq(errno, EAGAIN, "flush: %s", strerror(errno));
		}
		cr_assert_eq(poll(&pfd, 1, 5000), 1, "send: timed out");
	}
}

/* Receive exactly len data bytes, skipping handshake records (the
 * server's NewSessionTickets); returns how many of those were seen. */
static int recv_data(struct kc_channel *ch, uint8_t *buf, size_t len,
		     const struct server *sv)
{
	size_t got = 0;
	int skipped = 0;

	while (got < len) {
		uint8_t t, tmp[1024];
		bool e;
		ssize_t r = recv_wait(ch, buf + got, len - got, &t, &e);

		cr_assert(r > 0, "recv: %zd %s (server: %s)", r,
			  r ? strerror(errno) : "EOF", sv->why);
		if (t == KC_REC_HANDSHAKE) {
			cr_assert_neq(buf[got], 24, "unexpected KeyUpdate");
			/* the rest of a long NewSessionTicket */
			while (!e)
				cr_assert(recv_wait(ch, tmp, sizeof tmp, &t, &e) > 0);
			skipped++;
			continue;
		}
		cr_assert_eq(t, KC_REC_DATA, "type %u", t);
		got += (size_t)r;
	}
	return skipped;
}

ParameterizedTestParameters(interop, gnutls)
{
	static size_t idx[NCOMBOS];

	for (size_t i = 0; i < NCOMBOS; i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, NCOMBOS);
}

ParameterizedTest(size_t *ci, interop, gnutls, .timeout = 30)
{
	const struct combo *co = &combos[*ci];
	struct server sv = { .co = co };
	gnutls_session_t c;
	struct kc_key_material rx, tx;
	struct kc_channel *ch;
	pthread_t th;
	uint8_t *buf = malloc(S1_LEN), *want = malloc(S1_LEN);
	uint8_t t, alert[8];
	bool e;
	int sv_fd[2], ret, nst;

	cr_assert(buf && want);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv_fd), 0);
	sv.fd = sv_fd[1];
	sv.cred = make_cred();
	cr_assert_eq(gnutls_session_ticket_key_generate(&sv.ticket_key), 0);
	cr_assert_eq(pthread_create(&th, NULL, server_main, &sv), 0);

	/* an ordinary GnuTLS client handshake on a blocking socket */
	gnutls_certificate_credentials_t ccred;
	cr_assert_eq(gnutls_certificate_allocate_credentials(&ccred), 0);
	cr_assert_eq(gnutls_init(&c, GNUTLS_CLIENT), 0);
	cr_assert_eq(gnutls_priority_set_direct(c, co->prio, NULL), 0);
	cr_assert_eq(gnutls_credentials_set(c, GNUTLS_CRD_CERTIFICATE, ccred), 0);
	gnutls_transport_set_int(c, sv_fd[0]);
	do
		ret = gnutls_handshake(c);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	cr_assert_eq(ret, 0, "%s: handshake: %s", co->name, gnutls_strerror(ret));
	cr_assert_eq(gnutls_protocol_get_version(c),
		     co->version == KC_TLS13 ? GNUTLS_TLS1_3 : GNUTLS_TLS1_2);
	cr_assert_eq(gnutls_cipher_get(c), co->cipher, "%s: got %s", co->name,
		     gnutls_cipher_get_name(gnutls_cipher_get(c)));
	cr_assert_eq(gnutls_record_check_pending(c), 0);

	/* the handover */
	km_from_session(c, 1, &rx);
	km_from_session(c, 0, &tx);
	cr_assert_eq(tx.iv_len, co->version == KC_TLS12 &&
		     co->cipher != GNUTLS_CIPHER_CHACHA20_POLY1305 ? 4u : 12u);
	nonblock(sv_fd[0]);
	ch = new_soft(sv_fd[0], false);
	set_key_ok(ch, KC_RX, &rx);
	set_key_ok(ch, KC_TX, &tx);

	/* GnuTLS -> soft, soft -> GnuTLS */
	nst = recv_data(ch, buf, S1_LEN, &sv);
	pattern(want, S1_LEN, 1);
	cr_assert(memcmp(buf, want, S1_LEN) == 0, "%s: S1 differs", co->name);
	if (co->version == KC_TLS13)
		cr_assert_eq(nst, 2, "%s: %d tickets", co->name, nst);
	pattern(want, C1_LEN, 2);
	send_wait(ch, KC_REC_DATA, want, C1_LEN);

	if (co->version == KC_TLS13) {
		struct kc_key_material nrx, ntx;
		ssize_t r;

		/* the server's KeyUpdate, then the pause */
		r = recv_wait(ch, buf, 100, &t, &e);
		cr_assert_eq(r, 5, "%s: %zd %s (server: %s)", co->name, r,
			     r < 0 ? strerror(errno) : "", sv.why);
		cr_assert(t == KC_REC_HANDSHAKE && e && buf[0] == 24);
		r = ch_recv(ch, buf, 100, &t, &e);
		cr_assert(r == -1 && errno == EKEYEXPIRED, "%s", co->name);
		/* GnuTLS derives the next key; we install it */
		gnutls_handshake_set_read_function(c, hs_read_cb);
		cr_assert_eq(gnutls_handshake_write(c,
			GNUTLS_ENCRYPTION_LEVEL_APPLICATION, buf, 5), 0);
		km_from_session(c, 1, &nrx);
		cr_assert_eq(nrx.seq, 0);
		set_key_ok(ch, KC_RX, &nrx);
		cr_assert_eq(recv_data(ch, buf, S2_LEN, &sv), 0);
		pattern(want, S2_LEN, 3);
		cr_assert(memcmp(buf, want, S2_LEN) == 0, "%s: S2 differs", co->name);

		/* our own KeyUpdate: old key, then the new one */
		hs_out_len = 0;
		cr_assert_eq(gnutls_session_key_update(c, 0), 0);
		cr_assert_eq(hs_out_len, 5);
		cr_assert(memcmp(hs_out, KEY_UPDATE, 5) == 0);
		send_wait(ch, KC_REC_HANDSHAKE, hs_out, hs_out_len);
		km_from_session(c, 0, &ntx);
		cr_assert_eq(ntx.seq, 0);
		set_key_ok(ch, KC_TX, &ntx);
		pattern(want, C2_LEN, 4);
		send_wait(ch, KC_REC_DATA, want, C2_LEN);
	}

	/* close_notify, then end of stream */
	cr_assert_eq(recv_wait(ch, alert, sizeof alert, &t, &e), 2,
		     "%s: (server: %s)", co->name, sv.why);
	cr_assert(t == KC_REC_ALERT && e && alert[0] == 1 && alert[1] == 0);
	cr_assert_eq(recv_wait(ch, alert, sizeof alert, &t, &e), 0);
	cr_assert_eq(t, 0);

	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_str_empty(sv.why, "%s: %s", co->name, sv.why);
	kc_channel_free(ch);
	gnutls_deinit(c);
	gnutls_certificate_free_credentials(ccred);
	gnutls_certificate_free_credentials(sv.cred);
	gnutls_free(sv.ticket_key.data);
	close(sv_fd[0]);
	close(sv_fd[1]);
	free(buf);
	free(want);
}
