/* tests/fuzz/fuzz_conn.c: libFuzzer target for core/conn.c, the kernel
 * connection's handling of what a hostile (authenticated) peer sends after
 * the handover: alerts, handshake messages of any type and length split or
 * glued across records, KeyUpdates, NewSessionTickets, records of unknown
 * content types, empty and oversized records, raw bytes.
 *
 * Setup (as tests/unit/test_conn.c does): a real GnuTLS handshake on a
 * socketpair with an ephemeral core/selfcert certificate made once per
 * process, the victim's side handed to a kc_conn over the user-space
 * channel (kc_conn_open, kernel = false).  The attacker takes the other
 * session's send keys and seals whatever records the input says
 * (fuzz_seal.h); it follows its own KeyUpdates through its GnuTLS session
 * so that records after an accepted KeyUpdate still authenticate.
 *
 * Input:
 *   byte 0   bits 0-2  version and cipher (TLS 1.2 / 1.3 x AES-128-GCM,
 *                      AES-256-GCM, CHACHA20-POLY1305, AES-128-CCM)
 *            bit 3     the victim is the server (else the client)
 *            bits 4-5  kc_conn_read buffer: 1, 7, 300 or 20000 bytes
 *            bit 6     no_rekey (a channel like Linux < 6.14)
 *   then     a record program (fuzz_seal.h), where a mode 3 (raw) op of
 *            length 0 is instead an action of the victim's own, by its
 *            type byte mod 8: 0 kc_conn_write, 1 kc_conn_key_update, 2 the
 *            same asking the peer to update too, 3 kc_conn_close,
 *            4 kc_conn_flush, 5 the statistics getters, 6-7 nothing
 * After each record or action the victim reads until KC_CONN_AGAIN or an
 * error.
 *
 * Pairs are kept per configuration and reused while the conn is healthy:
 * after each input a probe record of application data must come through
 * intact, else (failure, close_notify, a stream out of step) the pair is
 * made again.  Set FUZZ_CONN_FRESH=1 for a new pair on every input (what
 * run-fuzz.sh does when replaying saved inputs, so a crash reproduces from
 * its input alone).
 *
 * Checks beyond the sanitizers: application data comes out exactly as
 * sealed, in order; an error is never KC_E_TRUNCATED while the peer's
 * socket is open; a failure is sticky. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/channel.h"
#include "core/conn.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/selfcert.h"
#include "core/ticket.h"
#include "fuzz_seal.h"

#define CLI 0
#define SRV 1
#define NCFG 128
#define REUSE_MAX 2000          /* inputs per pair before a fresh one anyway */
#define WIRE_BUDGET (1u << 20)

static const struct {
	unsigned vers;
	gnutls_cipher_algorithm_t cipher;
} combos[8] = {
	{ KC_VERS_12, GNUTLS_CIPHER_AES_128_GCM },
	{ KC_VERS_12, GNUTLS_CIPHER_AES_256_GCM },
	{ KC_VERS_12, GNUTLS_CIPHER_CHACHA20_POLY1305 },
	{ KC_VERS_12, GNUTLS_CIPHER_AES_128_CCM },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_256_GCM },
	{ KC_VERS_13, GNUTLS_CIPHER_CHACHA20_POLY1305 },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_128_CCM },
};

static const size_t read_sizes[4] = { 1, 7, 300, 20000 };

static void die(const char *what)
{
	fprintf(stderr, "fuzz_conn: %s\n", what);
	abort();
}

/* ---- credentials, once per process ------------------------------------ */

static struct kc_selfcert g_sc;
static struct kc_creds *g_creds[2];
static bool g_fresh;
static bool g_debug;   /* FUZZ_DEBUG=1: say what the victim did */

/* FUZZ_TOLERATE=type0: see fuzz_record.c; the conn consequence is a
 * KC_E_TRUNCATED "peer closed" error while the peer is still there. */
static bool g_tolerate_type0;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kc_err err = { 0 };
	const char *f = getenv("FUZZ_CONN_FRESH");
	const char *t = getenv("FUZZ_TOLERATE");

	g_fresh = f && *f && strcmp(f, "0") != 0;
	g_debug = getenv("FUZZ_DEBUG") != NULL;
	g_tolerate_type0 = t && strstr(t, "type0");
	if (kc_selfcert_generate(&g_sc, &err) < 0)
		die(err.msg);
	struct kc_tls_opts so = { .role = KC_SERVER, .cert_pem = &g_sc.cert_pem,
				  .key_pem = &g_sc.key_pem };
	struct kc_tls_opts co = { .role = KC_CLIENT, .verify_name = "localhost",
				  .ca_pem = &g_sc.cert_pem };
	if (kc_creds_new(&so, &g_creds[SRV], &err) < 0 || kc_creds_new(&co, &g_creds[CLI], &err) < 0)
		die(err.msg);
	return 0;
}

/* ---- a pair: victim conn + attacker ----------------------------------- */

struct pair {
	bool live;
	unsigned uses;
	int fd[2];
	gnutls_session_t s[2];
	int victim;
	uint16_t version;
	struct kc_conn *c;
	struct fz_sealer att;
	/* what the attacker's GnuTLS session wanted to send (ignored) */
	unsigned char hs_sink[1024];
	size_t hs_sink_len;
};

static struct pair pairs[NCFG];

struct hs_side {
	int fd;
	struct kc_tls_opts o;
	struct kc_creds *creds;
	gnutls_session_t s;
	struct kc_err err;
	int rc;
};

static void *hs_thread(void *arg)
{
	struct hs_side *h = arg;
	h->rc = kc_tls_handshake(h->fd, &h->o, h->creds, &h->s, &h->err);
	return NULL;
}

static int att_hs_cb(gnutls_session_t s, gnutls_record_encryption_level_t level,
		     gnutls_handshake_description_t htype, const void *data, size_t size)
{
	struct pair *p = gnutls_session_get_ptr(s);
	if (size > sizeof p->hs_sink - p->hs_sink_len)
		p->hs_sink_len = 0;
	if (size <= sizeof p->hs_sink - p->hs_sink_len) {
		memcpy(p->hs_sink + p->hs_sink_len, data, size);
		p->hs_sink_len += size;
	}
	return 0;
}

static int att_alert_cb(gnutls_session_t s, gnutls_record_encryption_level_t level,
			gnutls_alert_level_t alert_level, gnutls_alert_description_t desc)
{
	return 0;
}

/* Events: touch what they point to, so a stale pointer shows. */
static volatile unsigned g_sink;

static void on_event(void *ctx, const struct kc_event *ev)
{
	if (ev->kind == KC_EV_TICKET && ev->ticket) {
		const struct kc_ticket_info *t = ev->ticket;
		char hex[17];
		if (t->nonce_len > sizeof t->nonce || t->ticket_len == 0 ||
		    t->lifetime > KC_TICKET_LIFETIME_MAX)
			die("a stored ticket breaks kc_ticket_parse's promises");
		kc_ticket_format_hash(t, hex);
		g_sink += (unsigned)hex[0] + t->nonce[t->nonce_len ? t->nonce_len - 1 : 0];
	}
	g_sink += (unsigned)ev->kind + (unsigned)ev->alert;
}

static void pair_free(struct pair *p)
{
	kc_conn_free(p->c);
	p->c = NULL;
	fz_sealer_clear(&p->att);
	for (int i = 0; i < 2; i++) {
		if (p->s[i])
			gnutls_deinit(p->s[i]);
		p->s[i] = NULL;
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
	p->live = false;
}

static void pair_new(struct pair *p, unsigned cfg)
{
	struct hs_side h[2];
	pthread_t th;
	struct kc_err err = { 0 };

	memset(p, 0, sizeof *p);
	p->fd[0] = p->fd[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) < 0)
		die("socketpair");
	memset(h, 0, sizeof h);
	for (int i = 0; i < 2; i++) {
		h[i].fd = p->fd[i];
		h[i].creds = g_creds[i];
		h[i].o.role = i == CLI ? KC_CLIENT : KC_SERVER;
		h[i].o.versions = combos[cfg & 7].vers;
		h[i].o.handshake_timeout_ms = 10000;
		h[i].o.ciphers[0] = combos[cfg & 7].cipher;
		h[i].o.n_ciphers = 1;
	}
	h[CLI].o.verify_name = "localhost";
	h[CLI].o.ca_pem = &g_sc.cert_pem;
	h[SRV].o.cert_pem = &g_sc.cert_pem;
	h[SRV].o.key_pem = &g_sc.key_pem;
	if (pthread_create(&th, NULL, hs_thread, &h[SRV]) != 0)
		die("pthread_create");
	hs_thread(&h[CLI]);
	pthread_join(th, NULL);
	if (h[CLI].rc < 0)
		die(h[CLI].err.msg);
	if (h[SRV].rc < 0)
		die(h[SRV].err.msg);
	p->s[CLI] = h[CLI].s;
	p->s[SRV] = h[SRV].s;
	p->victim = (cfg & 8) ? SRV : CLI;
	int att = 1 - p->victim;

	struct kc_conn_opts o = {
		.role = p->victim == CLI ? KC_CLIENT : KC_SERVER,
		.kernel = false,
		.soft.no_rekey = (cfg & 64) != 0,
		.on_event = on_event,
	};
	if (kc_conn_open(p->s[p->victim], p->fd[p->victim], &o, &p->c, &err) < 0)
		die(err.msg);
	p->version = kc_conn_version(p->c);

	struct kc_key_material km;
	if (kc_keys_from_session(p->s[att], KC_TX, &km, &err) < 0)
		die(err.msg);
	if (fz_sealer_set(&p->att, &km) < 0)
		die("attacker keys");
	kc_keys_wipe(&km);
	gnutls_session_set_ptr(p->s[att], p);
	gnutls_handshake_set_read_function(p->s[att], att_hs_cb);
	gnutls_alert_set_read_function(p->s[att], att_alert_cb);
	fcntl(p->fd[att], F_SETFL, fcntl(p->fd[att], F_GETFL) | O_NONBLOCK);
	p->live = true;
}

/* The attacker's next send key, after a KeyUpdate it sent was accepted. */
static void att_key_update(struct pair *p)
{
	int att = 1 - p->victim;
	struct kc_key_material km;
	struct kc_err err = { 0 };

	if (gnutls_session_key_update(p->s[att], 0) < 0)
		die("attacker: gnutls_session_key_update");
	if (kc_keys_from_session(p->s[att], KC_TX, &km, &err) < 0)
		die(err.msg);
	km.seq = 0;
	if (fz_sealer_set(&p->att, &km) < 0)
		die("attacker keys");
	kc_keys_wipe(&km);
}

/* Throw away whatever the victim sent (alerts, KeyUpdates, tickets). */
static void att_drain(struct pair *p)
{
	unsigned char b[65536];
	while (recv(p->fd[1 - p->victim], b, sizeof b, MSG_DONTWAIT) > 0)
		;
}

/* ---- running an input -------------------------------------------------- */

struct run {
	struct pair *p;
	size_t rlen;
	bool failed;          /* the conn reported an error (or close_notify) */
	bool closed;          /* close_notify */
	/* application data sealed and not yet read back */
	unsigned char *want;
	size_t want_len, want_off, want_cap;
	bool data_exact;      /* no raw bytes: data must match */
	bool dirty;           /* we sent close_notify: do not reuse the pair */
	unsigned char buf[20000];
};

static void want_add(struct run *r, const unsigned char *b, size_t n)
{
	if (!r->data_exact || n == 0)
		return;
	if (r->want_off == r->want_len)
		r->want_off = r->want_len = 0;
	if (r->want_len + n > r->want_cap) {
		size_t cap = (r->want_len + n) * 2;
		unsigned char *w = realloc(r->want, cap);
		if (!w)
			die("out of memory");
		r->want = w;
		r->want_cap = cap;
	}
	memcpy(r->want + r->want_len, b, n);
	r->want_len += n;
}

/* kc_conn_read until it would block; false when the conn is done. */
static bool victim_read(struct run *r)
{
	struct pair *p = r->p;

	while (!r->failed) {
		struct kc_err err = { 0 };
		ssize_t n = kc_conn_read(p->c, r->buf, r->rlen, &err);
		if (n == KC_CONN_AGAIN)
			break;
		if (n > 0) {
			if ((size_t)n > r->rlen)
				die("kc_conn_read returned more than the buffer holds");
			if (g_debug)
				fprintf(stderr, "fuzz_conn: victim: %zd bytes of data\n", n);
			if (r->data_exact) {
				if ((size_t)n > r->want_len - r->want_off)
					die("kc_conn_read returned data that was never sent");
				if (memcmp(r->buf, r->want + r->want_off, (size_t)n) != 0)
					die("kc_conn_read returned data that differs from what was sent");
				r->want_off += (size_t)n;
			}
			continue;
		}
		r->failed = true;
		if (g_debug)
			fprintf(stderr, "fuzz_conn: victim: %s\n", n == 0 ? "close_notify" : err.msg);
		if (n == 0) {
			r->closed = true;
			if (!kc_conn_peer_closed(p->c))
				die("kc_conn_read returned 0 but the conn says no close_notify");
			if (kc_conn_read(p->c, r->buf, r->rlen, &err) != 0)
				die("kc_conn_read after close_notify did not return 0 again");
			break;
		}
		if (n != -1)
			die("kc_conn_read returned a negative value other than -1 and AGAIN");
		if (err.status == KC_OK || !err.msg[0])
			die("kc_conn_read failed without a status or message");
		if (err.status == KC_E_TRUNCATED && !g_tolerate_type0) {
			fprintf(stderr, "fuzz_conn: %s\n", err.msg);
			die("KC_E_TRUNCATED while the peer's socket is open");
		}
		/* Sticky: the same status again, without touching the socket. */
		struct kc_err again = { 0 };
		if (kc_conn_read(p->c, r->buf, r->rlen, &again) != -1 || again.status != err.status ||
		    strcmp(again.msg, err.msg) != 0)
			die("a conn failure is not sticky");
		break;
	}
	att_drain(p);
	return !r->failed;
}

/* Write n bytes from the attacker's side, letting the victim read when the
 * socket is full. */
static bool att_write(struct run *r, const unsigned char *b, size_t n)
{
	struct pair *p = r->p;
	int fd = p->fd[1 - p->victim];
	int stuck = 0;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			stuck = 0;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* The victim reads what it can; a socket still full
			 * after that will stay full (it waits for a record
			 * that raw bytes never finish): give up. */
			if (!victim_read(r) || ++stuck > 3)
				return false;
			continue;
		}
		return false;   /* the victim closed its end */
	}
	return true;
}

/* One application data record through the pair: true when the conn hands
 * it back intact. */
static bool probe(struct run *r)
{
	static const unsigned char ping[] = "probe\n";
	unsigned char wire[64];
	struct pair *p = r->p;

	r->data_exact = true;
	r->want_off = r->want_len = 0;
	uint8_t type = KC_REC_DATA;
	unsigned char pt[sizeof ping];
	size_t n = sizeof ping - 1;
	memcpy(pt, ping, n);
	if (p->version == KC_TLS13)
		pt[n++] = KC_REC_DATA;
	size_t w = fz_seal(&p->att, type, pt, n, wire);
	want_add(r, ping, sizeof ping - 1);
	if (!att_write(r, wire, w))
		return false;
	/* A socketpair delivers at once: the victim has the record now, or
	 * never will (it waits for the rest of a record raw bytes began). */
	for (int i = 0; i < 3; i++) {
		if (!victim_read(r))
			return false;
		if (r->want_off == r->want_len)
			return true;
	}
	return false;
}

/* Something the victim does on its own (see the input format). */
static void victim_action(struct run *r, unsigned what)
{
	struct pair *p = r->p;
	struct kc_err err = { 0 };
	uint64_t cur, total;

	switch (what % 8) {
	case 0: {
		ssize_t n = kc_conn_write(p->c, "w", 1, &err);
		if (n != 1 && n != KC_CONN_AGAIN && n != -1)
			die("kc_conn_write returned something else than 1, AGAIN or -1");
		break;
	}
	case 1:
	case 2:
		kc_conn_key_update(p->c, what % 8 == 2, &err);
		break;
	case 3:
		r->dirty = true;
		if (kc_conn_close(p->c, &err) == 0 && !kc_conn_close_sent(p->c))
			die("kc_conn_close succeeded but close_sent is false");
		break;
	case 4:
		kc_conn_flush(p->c, &err);
		break;
	case 5:
		for (int d = KC_RX; d <= KC_TX; d++) {
			const struct kc_dir_stats *st = kc_conn_stats(p->c, (enum kc_dir)d);
			g_sink += (unsigned)st->bytes + st->key_updates;
			if (kc_conn_records(p->c, (enum kc_dir)d, &cur, &total) == 0 && total < cur)
				die("total records below the current key's");
		}
		{
			const struct kc_ticket_store *ts = kc_conn_ticket_store(p->c);
			if (ts->n > KC_TICKET_STORE_MAX || ts->total < ts->n ||
			    ts->total > kc_conn_tickets(p->c))
				die("ticket store counts out of range");
			for (size_t i = 0; i < ts->n; i++)
				g_sink += ts->e[i].info.ticket_hash[0];
		}
		g_sink += (unsigned)kc_conn_rekey_point(p->c) + kc_conn_tx_pending(p->c);
		break;
	default:
		break;
	}
}

static unsigned char scratch[FZ_PT_MAX];
static unsigned char wire[FZ_REC_MAX];
static struct run g_run;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned cfg = data[0] & (NCFG - 1);
	struct pair *p = &pairs[cfg];
	struct run *r = &g_run;

	if (p->live && (g_fresh || p->uses >= REUSE_MAX))
		pair_free(p);
	if (!p->live)
		pair_new(p, cfg);
	p->uses++;

	r->p = p;
	r->rlen = read_sizes[(cfg >> 4) & 3];
	r->failed = r->closed = r->dirty = false;
	r->data_exact = true;
	r->want_off = r->want_len = 0;
	att_drain(p);
	/* A fresh TLS 1.3 client has the server's tickets to read first. */
	victim_read(r);

	const uint8_t *q = data + 1, *end = data + size;
	size_t budget = WIRE_BUDGET;
	struct fz_op op;

	while (!r->failed && fz_next_op(&q, end, p->version, scratch, &op)) {
		if (op.mode == FZ_MODE_RAW && op.raw_len == 0) {
			victim_action(r, op.type);
			victim_read(r);
			continue;
		}
		if (op.mode == FZ_MODE_RAW) {
			r->data_exact = false;
			if (op.raw_len > budget)
				break;
			budget -= op.raw_len;
			if (!att_write(r, op.raw, op.raw_len))
				break;
			victim_read(r);
			continue;
		}
		size_t n = fz_seal(&p->att, op.outer, op.pt, op.pt_len, wire);
		if (n > budget)
			break;
		budget -= n;
		if (op.valid && op.content_type == KC_REC_DATA)
			want_add(r, op.content, op.content_len);
		/* A standalone KeyUpdate: if the victim takes it, the attacker
		 * sends under its next key from then on. */
		bool ku = p->version == KC_TLS13 && op.valid &&
			  op.content_type == KC_REC_HANDSHAKE && op.content_len == 5 &&
			  op.content[0] == 24 && op.content[1] == 0 && op.content[2] == 0 &&
			  op.content[3] == 1 && op.content[4] <= 1;
		if (!att_write(r, wire, n))
			break;
		victim_read(r);
		if (ku && !r->failed)
			att_key_update(p);
	}

	/* Keep the pair only if the stream is still in step. */
	if (r->failed || r->dirty || g_fresh || !probe(r)) {
		if (g_debug)
			fprintf(stderr, "fuzz_conn: pair %u dropped%s\n", cfg,
				r->failed ? " (conn done)" : g_fresh ? "" : " (probe failed)");
		pair_free(p);
	} else if (g_debug) {
		fprintf(stderr, "fuzz_conn: pair %u kept\n", cfg);
	}
	return 0;
}
