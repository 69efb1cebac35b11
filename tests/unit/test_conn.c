/* tests/unit/test_conn.c: core/conn over real GnuTLS sessions and the
 * user-space record channel.
 *
 * Every test does a real GnuTLS handshake (core/handshake, an ephemeral
 * core/selfcert certificate) on a socketpair (loopback TCP where a real
 * connection reset is wanted), the server in a thread, then
 * hands the socket over with kc_conn_open(opts.kernel = false).  From there
 * on everything runs on the test's one thread: both conns are non-blocking
 * and are pumped in turn, waiting in poll() with a deadline, so a hang
 * fails the test instead of blocking it (and Criterion's .timeout backs
 * that up).
 *
 * Misbehaving peers are played by an "attacker": instead of a conn, the
 * peer side takes its GnuTLS session's keys (kc_keys_from_session) into a
 * bare user-space channel and sends whatever records it likes, or writes
 * raw bytes on the socket.
 *
 * Tests marked BUG assert the correct behaviour and fail against the
 * current core/conn.c; the comment above each says what goes wrong. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "core/channel.h"
#include "core/conn.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/selfcert.h"

#define CLI 0
#define SRV 1

#define AL_WARNING 1
#define AL_FATAL 2

/* How long one wait for the peer may take before the test fails. */
#define WAIT_MS 4000

/* Which case of a table-driven test is running, for failure messages. */
static char g_ctx[64] = "";

/* Criterion hands parameters to the test process by copying their bytes,
 * so they hold no pointers: strings are inline arrays. */
struct combo {
	unsigned vers;                     /* KC_VERS_12 or KC_VERS_13 */
	gnutls_cipher_algorithm_t cipher;
	char name[32];
};

static struct combo combos[] = {
	{ KC_VERS_12, GNUTLS_CIPHER_AES_128_GCM, "TLS1.2 AES-128-GCM" },
	{ KC_VERS_12, GNUTLS_CIPHER_AES_256_GCM, "TLS1.2 AES-256-GCM" },
	{ KC_VERS_12, GNUTLS_CIPHER_CHACHA20_POLY1305, "TLS1.2 CHACHA20-POLY1305" },
	{ KC_VERS_12, GNUTLS_CIPHER_AES_128_CCM, "TLS1.2 AES-128-CCM" },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, "TLS1.3 AES-128-GCM" },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_256_GCM, "TLS1.3 AES-256-GCM" },
	{ KC_VERS_13, GNUTLS_CIPHER_CHACHA20_POLY1305, "TLS1.3 CHACHA20-POLY1305" },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_128_CCM, "TLS1.3 AES-128-CCM" },
};
#define NCOMBOS (sizeof combos / sizeof combos[0])
#define TLS12_COMBOS (&combos[0])
#define TLS13_COMBOS (&combos[4])

/* ---- small helpers ---------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
	uint32_t x = 0x9e3779b9u * (seed + 1);

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

static const char *alert_str(int desc)
{
	static char buf[4][64];
	static unsigned k;
	char *b = buf[k++ % 4];
	return kc_alert_name(desc, b, 64);
}

/* ---- events ----------------------------------------------------------- */

#define MAX_EV 128

struct evlog {
	struct kc_event ev[MAX_EV];
	unsigned n;
};

static void on_event(void *ctx, const struct kc_event *ev)
{
	struct evlog *l = ctx;

	if (l->n < MAX_EV)
		l->ev[l->n] = *ev;
	l->n++;
}

static unsigned ev_count(const struct evlog *l, enum kc_event_kind kind)
{
	unsigned k = 0;

	for (unsigned i = 0; i < l->n && i < MAX_EV; i++)
		k += l->ev[i].kind == kind;
	return k;
}

/* The i-th event of a kind (0-based), or NULL. */
static const struct kc_event *ev_nth(const struct evlog *l, enum kc_event_kind kind,
				     unsigned nth)
{
	for (unsigned i = 0; i < l->n && i < MAX_EV; i++)
		if (l->ev[i].kind == kind && nth-- == 0)
			return &l->ev[i];
	return NULL;
}

/* ---- credentials and handshake ---------------------------------------- */

/* One certificate and one pair of credentials per test process (Criterion
 * forks per test); the server's creds hold the ticket key, so a resumed
 * handshake must use the same ones. */
static struct kc_selfcert g_sc;
static struct kc_creds *g_creds[2];

static void creds_once(void)
{
	struct kc_err err = { 0 };

	if (g_creds[SRV])
		return;
	cr_assert_eq(kc_selfcert_generate(&g_sc, &err), 0, "selfcert: %s", err.msg);
	struct kc_tls_opts so = { .role = KC_SERVER, .cert_pem = &g_sc.cert_pem,
				  .key_pem = &g_sc.key_pem };
	struct kc_tls_opts co = { .role = KC_CLIENT, .verify_name = "localhost",
				  .ca_pem = &g_sc.cert_pem };
	cr_assert_eq(kc_creds_new(&so, &g_creds[SRV], &err), 0, "server creds: %s", err.msg);
	cr_assert_eq(kc_creds_new(&co, &g_creds[CLI], &err), 0, "client creds: %s", err.msg);
}

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

/* A client handshake resuming a saved session, done with GnuTLS directly
 * (kc_tls_handshake has no resumption input) but with the same priority
 * string and verification. */
static gnutls_certificate_credentials_t g_resume_cred;

static void resume_client(struct hs_side *h, const gnutls_datum_t *data, int *set_status)
{
	char prio[512];
	gnutls_session_t s;
	int rc;

	if (!g_resume_cred) {
		cr_assert_eq(gnutls_certificate_allocate_credentials(&g_resume_cred), 0);
		cr_assert_eq(gnutls_certificate_set_x509_trust_mem(g_resume_cred, &g_sc.cert_pem,
								   GNUTLS_X509_FMT_PEM), 1);
	}
	cr_assert_eq(kc_tls_priority(&h->o, prio, sizeof prio, &h->err), 0, "%s", h->err.msg);
	cr_assert_eq(gnutls_init(&s, GNUTLS_CLIENT), 0);
	cr_assert_eq(gnutls_priority_set_direct(s, prio, NULL), 0, "%s", prio);
	cr_assert_eq(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, g_resume_cred), 0);
	gnutls_session_set_verify_cert(s, "localhost", 0);
	*set_status = gnutls_session_set_data(s, data->data, data->size);
	gnutls_transport_set_int(s, h->fd);
	gnutls_handshake_set_timeout(s, WAIT_MS);
	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0) {
		gnutls_deinit(s);
		h->rc = kc_err_set(&h->err, KC_E_HANDSHAKE, "resumed handshake: %s",
				   gnutls_strerror(rc));
		return;
	}
	h->s = s;
	h->rc = 0;
}

/* What sits on each end of the socketpair: a conn or an attacker channel. */
struct attacker {
	struct kc_channel *ch;
	struct kc_key_material tx;    /* for records the channel won't build */
	uint16_t version;
};

struct tls_pair {
	int fd[2];
	gnutls_session_t s[2];
	struct kc_conn *c[2];
	struct attacker att[2];
	struct evlog ev[2];
	uint16_t version;
};

static const char *side_name[2] = { "client", "server" };

/* Set by a test that wants loopback TCP instead of a socketpair (for a
 * real connection reset). */
static bool g_use_tcp;
/* record_size_limit each side announces (by side; 0: none), for the next
 * handshake. */
static unsigned g_rsl[2];

static void tcp_pair(int fd[2])
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int l = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(l >= 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	fd[CLI] = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd[CLI] >= 0);
	cr_assert_eq(connect(fd[CLI], (struct sockaddr *)&sa, sizeof sa), 0);
	fd[SRV] = accept(l, NULL, NULL);
	cr_assert(fd[SRV] >= 0);
	close(l);
}

static void tls_pair_close(struct tls_pair *p);

/* Everything a test opened, released after it even when an assertion
 * ended it early (the suites' .fini), so the sanitizer build reports leaks
 * of the code under test only.  Pairs are static in the tests for this. */
static struct tls_pair *g_pairs[4];
static void *g_allocs[8];

static void *test_alloc(size_t n)
{
	for (size_t i = 0; i < sizeof g_allocs / sizeof g_allocs[0]; i++)
		if (!g_allocs[i]) {
			g_allocs[i] = malloc(n ? n : 1);
			cr_assert_not_null(g_allocs[i]);
			return g_allocs[i];
		}
	cr_assert_fail("test_alloc: too many buffers");
	return NULL;
}

static void test_free(void *ptr)
{
	for (size_t i = 0; i < sizeof g_allocs / sizeof g_allocs[0]; i++)
		if (g_allocs[i] == ptr)
			g_allocs[i] = NULL;
	free(ptr);
}

static void teardown(void)
{
	for (size_t i = 0; i < sizeof g_pairs / sizeof g_pairs[0]; i++)
		if (g_pairs[i])
			tls_pair_close(g_pairs[i]);
	for (size_t i = 0; i < sizeof g_allocs / sizeof g_allocs[0]; i++)
		test_free(g_allocs[i]);
	if (g_creds[SRV] || g_creds[CLI]) {
		kc_creds_free(g_creds[SRV]);
		kc_creds_free(g_creds[CLI]);
		g_creds[SRV] = g_creds[CLI] = NULL;
		kc_selfcert_free(&g_sc);
	}
	if (g_resume_cred)
		gnutls_certificate_free_credentials(g_resume_cred);
	g_resume_cred = NULL;
}

static void teardown_limits(void)
{
	g_rsl[0] = g_rsl[1] = 0;
	teardown();
}

TestSuite(conn, .fini = teardown_limits);
TestSuite(hostile, .fini = teardown_limits);

static void tls_pair_handshake_ex(struct tls_pair *p, unsigned vers,
				  gnutls_cipher_algorithm_t cipher,
				  const gnutls_datum_t *resume, int *resume_status)
{
	struct hs_side h[2];
	pthread_t th;

	creds_once();
	memset(p, 0, sizeof *p);
	p->fd[0] = p->fd[1] = -1;
	for (size_t i = 0; ; i++) {
		cr_assert(i < sizeof g_pairs / sizeof g_pairs[0], "too many pairs");
		if (!g_pairs[i] || g_pairs[i] == p) {
			g_pairs[i] = p;
			break;
		}
	}
	if (g_use_tcp)
		tcp_pair(p->fd);
	else
		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	memset(h, 0, sizeof h);
	for (int i = 0; i < 2; i++) {
		h[i].fd = p->fd[i];
		h[i].creds = g_creds[i];
		h[i].o.role = i == CLI ? KC_CLIENT : KC_SERVER;
		h[i].o.versions = vers;
		h[i].o.handshake_timeout_ms = WAIT_MS;
		h[i].o.record_size_limit = g_rsl[i];
		if (cipher != GNUTLS_CIPHER_UNKNOWN) {
			h[i].o.ciphers[0] = cipher;
			h[i].o.n_ciphers = 1;
		}
	}
	h[CLI].o.verify_name = "localhost";
	h[CLI].o.ca_pem = &g_sc.cert_pem;
	h[SRV].o.cert_pem = &g_sc.cert_pem;
	h[SRV].o.key_pem = &g_sc.key_pem;

	cr_assert_eq(pthread_create(&th, NULL, hs_thread, &h[SRV]), 0);
	if (resume)
		resume_client(&h[CLI], resume, resume_status);
	else
		hs_thread(&h[CLI]);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_eq(h[CLI].rc, 0, "client handshake: %s", h[CLI].err.msg);
	cr_assert_eq(h[SRV].rc, 0, "server handshake: %s", h[SRV].err.msg);
	p->s[CLI] = h[CLI].s;
	p->s[SRV] = h[SRV].s;
	p->version = vers == KC_VERS_12 ? KC_TLS12 : KC_TLS13;
	cr_assert_eq(gnutls_protocol_get_version(p->s[CLI]),
		     p->version == KC_TLS12 ? GNUTLS_TLS1_2 : GNUTLS_TLS1_3);
	if (cipher != GNUTLS_CIPHER_UNKNOWN)
		cr_assert_eq(gnutls_cipher_get(p->s[CLI]), cipher, "negotiated %s",
			     gnutls_cipher_get_name(gnutls_cipher_get(p->s[CLI])));
}

static void tls_pair_handshake(struct tls_pair *p, const struct combo *co)
{
	tls_pair_handshake_ex(p, co->vers, co->cipher, NULL, NULL);
}

static struct kc_conn *open_conn_opts(struct tls_pair *p, int side,
				      struct kc_conn_opts *o)
{
	struct kc_err err = { 0 };

	o->role = side == CLI ? KC_CLIENT : KC_SERVER;
	o->kernel = false;
	o->record_size_limit = g_rsl[side] != 0;
	o->on_event = on_event;
	o->event_ctx = &p->ev[side];
	cr_assert_eq(kc_conn_open(p->s[side], p->fd[side], o, &p->c[side], &err), 0,
		     "kc_conn_open(%s): %s", side_name[side], err.msg);
	cr_assert_str_eq(kc_conn_channel_name(p->c[side]), "user-space");
	cr_assert_eq(kc_conn_channel_kind(p->c[side]), KC_CHANNEL_USER_SPACE);
	cr_assert_eq(kc_conn_channel_caps(p->c[side])->rekey, !o->soft.no_rekey);
	cr_assert_null(kc_conn_fallback_reason(p->c[side]));
	cr_assert_eq(kc_conn_fd(p->c[side]), p->fd[side]);
	cr_assert_eq(kc_conn_version(p->c[side]), p->version);
	cr_assert(fcntl(p->fd[side], F_GETFL) & O_NONBLOCK, "socket left blocking");
	return p->c[side];
}

static struct kc_conn *open_conn(struct tls_pair *p, int side, bool no_rekey)
{
	struct kc_conn_opts o = { .soft.no_rekey = no_rekey };
	return open_conn_opts(p, side, &o);
}

/* The attacker takes its session's keys into a bare channel. */
static struct attacker *open_attacker(struct tls_pair *p, int side)
{
	struct attacker *a = &p->att[side];
	struct kc_key_material rx;
	struct kc_soft_opts so = { .no_rekey = false };
	struct kc_err err = { 0 };
	int fl = fcntl(p->fd[side], F_GETFL);

	cr_assert(fl >= 0 && fcntl(p->fd[side], F_SETFL, fl | O_NONBLOCK) == 0);
	cr_assert_eq(kc_keys_from_session(p->s[side], KC_RX, &rx, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_keys_from_session(p->s[side], KC_TX, &a->tx, &err), 0, "%s", err.msg);
	a->version = a->tx.version;
	a->ch = kc_channel_soft_new(p->fd[side], &so, &err);
	cr_assert_not_null(a->ch, "%s", err.msg);
	cr_assert_eq(a->ch->ops->set_key(a->ch, KC_RX, &rx, &err), 0, "%s", err.msg);
	cr_assert_eq(a->ch->ops->set_key(a->ch, KC_TX, &a->tx, &err), 0, "%s", err.msg);
	kc_keys_wipe(&rx);
	return a;
}

static void tls_pair_close(struct tls_pair *p)
{
	for (size_t i = 0; i < sizeof g_pairs / sizeof g_pairs[0]; i++)
		if (g_pairs[i] == p)
			g_pairs[i] = NULL;
	for (int i = 0; i < 2; i++) {
		kc_conn_free(p->c[i]);
		p->c[i] = NULL;
		kc_channel_free(p->att[i].ch);
		p->att[i].ch = NULL;
		kc_keys_wipe(&p->att[i].tx);
	}
	for (int i = 0; i < 2; i++) {
		if (p->s[i])
			gnutls_deinit(p->s[i]);
		p->s[i] = NULL;
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
}

/* ---- driving conns ---------------------------------------------------- */

static void wait_fd(int fd, short events, long long deadline, const char *what)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	long long left = deadline - now_ms();

	cr_assert(left > 0, "%s: nothing happened within %d ms", what, WAIT_MS);
	int r = poll(&pfd, 1, (int)left);
	cr_assert(r >= 0 || errno == EINTR, "%s: poll: %s", what, strerror(errno));
}

/* kc_conn_read until it says something other than KC_CONN_AGAIN. */
static ssize_t read_wait(struct kc_conn *c, void *buf, size_t len, struct kc_err *err)
{
	long long deadline = now_ms() + WAIT_MS;

	for (;;) {
		ssize_t n = kc_conn_read(c, buf, len, err);
		if (n != KC_CONN_AGAIN)
			return n;
		wait_fd(kc_conn_fd(c), POLLIN, deadline, "kc_conn_read");
	}
}

/* Read everything available; nothing but control records may come. */
static void read_idle(struct kc_conn *c, const char *who)
{
	for (int i = 0; i < 10000; i++) {
		struct kc_err err = { 0 };
		uint8_t buf[256];
		ssize_t n = kc_conn_read(c, buf, sizeof buf, &err);
		if (n == KC_CONN_AGAIN)
			return;
		cr_assert_fail("%s: kc_conn_read = %zd while only control records were due (%s)",
			who, n, n < 0 ? err.msg : n == 0 ? "close_notify" : "data");
	}
	cr_assert_fail("%s: kc_conn_read never said AGAIN", who);
}

/* Pump both conns until neither has anything left to handle. */
static void settle(struct tls_pair *p)
{
	for (int round = 0; round < 200; round++) {
		unsigned before = p->ev[CLI].n + p->ev[SRV].n;
		struct pollfd pfd[2];
		int np = 0;

		for (int i = 0; i < 2; i++)
			if (p->c[i]) {
				read_idle(p->c[i], side_name[i]);
				pfd[np].fd = p->fd[i];
				pfd[np].events = POLLIN;
				np++;
			}
		if (p->ev[CLI].n + p->ev[SRV].n != before)
			continue;
		if (poll(pfd, (nfds_t)np, 20) == 0)
			return;
	}
	cr_assert_fail("settle: the conns never went quiet");
}

/* Read exactly len bytes and compare them. */
static void expect_data(struct kc_conn *c, const void *want, size_t len, const char *who)
{
	uint8_t *got = test_alloc(len + 64);
	size_t have = 0;

	cr_assert_not_null(got);
	while (have < len) {
		struct kc_err err = { 0 };
		ssize_t n = read_wait(c, got + have, len + 64 - have, &err);
		cr_assert(n > 0, "%s: kc_conn_read = %zd after %zu of %zu bytes: %s", who, n,
			  have, len, n < 0 ? err.msg : "close_notify");
		have += (size_t)n;
	}
	cr_assert_eq(have, len, "%s: %zu bytes, want %zu", who, have, len);
	cr_assert(memcmp(got, want, len) == 0, "%s: bytes differ", who);
	test_free(got);
}

static void write_all_conn(struct kc_conn *c, const void *buf, size_t len, const char *who)
{
	const uint8_t *p = buf;
	long long deadline = now_ms() + WAIT_MS;

	while (len) {
		struct kc_err err = { 0 };
		ssize_t n = kc_conn_write(c, p, len, &err);
		if (n == KC_CONN_AGAIN) {
			wait_fd(kc_conn_fd(c), POLLOUT, deadline, who);
			if (kc_conn_tx_pending(c)) {
				int r = kc_conn_flush(c, &err);
				cr_assert(r == 0 || r == KC_CONN_AGAIN, "%s: flush: %s", who, err.msg);
			}
			continue;
		}
		cr_assert(n > 0, "%s: kc_conn_write = %zd: %s", who, n, err.msg);
		p += n;
		len -= (size_t)n;
	}
	while (kc_conn_tx_pending(c)) {
		struct kc_err err = { 0 };
		int r = kc_conn_flush(c, &err);
		if (r == 0)
			break;
		cr_assert_eq(r, KC_CONN_AGAIN, "%s: flush: %s", who, err.msg);
		wait_fd(kc_conn_fd(c), POLLOUT, deadline, who);
	}
}

/* Move c2s bytes client -> server and s2c bytes server -> client at the
 * same time, on one thread, and check every byte. */
static void exchange(struct tls_pair *p, size_t c2s, size_t s2c, unsigned seed)
{
	struct flow {
		uint8_t *src;
		size_t len, sent, rcvd;
	} f[2];
	size_t lens[2] = { c2s, s2c };
	static uint8_t buf[3 * KC_MAX_PLAINTEXT + 100];
	long long deadline = now_ms() + 8000;

	for (int i = 0; i < 2; i++) {
		f[i].src = test_alloc(lens[i]);
		fill_pattern(f[i].src, lens[i], seed * 2 + (unsigned)i);
		f[i].len = lens[i];
		f[i].sent = f[i].rcvd = 0;
	}
	for (;;) {
		bool progress = false, want_out[2] = { false, false };

		for (int i = 0; i < 2; i++) {
			struct kc_conn *c = p->c[i];
			struct flow *out = &f[i], *in = &f[1 - i];
			struct kc_err err = { 0 };

			if (out->sent < out->len) {
				size_t chunk = out->len - out->sent;
				if (chunk > 300000)
					chunk = 300000;
				ssize_t n = kc_conn_write(c, out->src + out->sent, chunk, &err);
				if (n > 0) {
					out->sent += (size_t)n;
					progress = true;
				} else {
					cr_assert_eq(n, KC_CONN_AGAIN, "%s: kc_conn_write = %zd: %s",
						     side_name[i], n, err.msg);
					want_out[i] = true;
				}
			}
			if (kc_conn_tx_pending(c)) {
				int r = kc_conn_flush(c, &err);
				if (r == KC_CONN_AGAIN)
					want_out[i] = true;
				else
					cr_assert_eq(r, 0, "%s: kc_conn_flush: %s", side_name[i],
						     err.msg);
			}
			for (;;) {
				ssize_t n = kc_conn_read(c, buf, sizeof buf, &err);
				if (n == KC_CONN_AGAIN)
					break;
				cr_assert(n > 0, "%s: kc_conn_read = %zd after %zu of %zu bytes: %s",
					  side_name[i], n, in->rcvd, in->len,
					  n < 0 ? err.msg : "close_notify");
				cr_assert(in->rcvd + (size_t)n <= in->len,
					  "%s: %zu bytes too many", side_name[i],
					  in->rcvd + (size_t)n - in->len);
				cr_assert(memcmp(buf, in->src + in->rcvd, (size_t)n) == 0,
					  "%s: bytes differ in [%zu, %zu)", side_name[i], in->rcvd,
					  in->rcvd + (size_t)n);
				in->rcvd += (size_t)n;
				progress = true;
			}
		}
		if (f[0].rcvd == f[0].len && f[1].rcvd == f[1].len &&
		    !kc_conn_tx_pending(p->c[0]) && !kc_conn_tx_pending(p->c[1]))
			break;
		if (!progress) {
			struct pollfd pfd[2];
			long long left = deadline - now_ms();

			cr_assert(left > 0, "exchange stalled: c2s %zu/%zu, s2c %zu/%zu", f[0].rcvd,
				  f[0].len, f[1].rcvd, f[1].len);
			for (int i = 0; i < 2; i++) {
				pfd[i].fd = p->fd[i];
				pfd[i].events = POLLIN;
				if (want_out[i] || kc_conn_tx_pending(p->c[i]))
					pfd[i].events |= POLLOUT;
			}
			poll(pfd, 2, (int)left);
		}
	}
	test_free(f[0].src);
	test_free(f[1].src);
}

/* After a failure every call repeats it: same status, same message. */
static void check_sticky(struct kc_conn *c, const struct kc_err *first)
{
	uint8_t buf[64] = "x";

	for (int i = 0; i < 2; i++) {
		struct kc_err e = { 0 };
		cr_assert_eq(kc_conn_read(c, buf, sizeof buf, &e), -1, "read after failure");
		cr_assert_eq(e.status, first->status, "read after failure: status %d (%s), want %d",
			     e.status, e.msg, first->status);
		cr_assert_str_eq(e.msg, first->msg);
	}
	struct kc_err e = { 0 };
	cr_assert_eq(kc_conn_write(c, buf, sizeof buf, &e), -1, "write after failure");
	cr_assert_eq(e.status, first->status, "write after failure: %d (%s)", e.status, e.msg);
	cr_assert_str_eq(e.msg, first->msg);
	memset(&e, 0, sizeof e);
	cr_assert_eq(kc_conn_key_update(c, true, &e), -1, "key update after failure");
	cr_assert_eq(e.status, first->status, "key update after failure: %d (%s)", e.status,
		     e.msg);
	memset(&e, 0, sizeof e);
	cr_assert_eq(kc_conn_flush(c, &e), -1, "flush after failure");
	cr_assert_eq(e.status, first->status);
	memset(&e, 0, sizeof e);
	cr_assert_eq(kc_conn_close(c, &e), -1, "close after failure");
	cr_assert_eq(e.status, first->status);
	/* and without an error struct */
	cr_assert_eq(kc_conn_read(c, buf, 1, NULL), -1);
	cr_assert_eq(kc_conn_write(c, buf, 1, NULL), -1);
}

/* Read until the conn fails; check status, phrase, stickiness. */
static void expect_fail(struct kc_conn *c, enum kc_status status, const char *phrase,
			struct kc_err *out)
{
	struct kc_err err = { 0 };
	uint8_t buf[4096];
	ssize_t n = read_wait(c, buf, sizeof buf, &err);

	cr_assert_eq(n, -1, "%skc_conn_read = %zd, want a failure mentioning '%s'", g_ctx, n,
		     phrase);
	cr_assert_eq(err.status, status, "%sstatus %d, want %d: %s", g_ctx, err.status, status,
		     err.msg);
	cr_assert_not_null(strstr(err.msg, phrase), "%smessage '%s' lacks '%s'", g_ctx, err.msg,
			   phrase);
	check_sticky(c, &err);
	if (out)
		*out = err;
}

/* ---- the attacker's side ---------------------------------------------- */

static void att_send(struct attacker *a, uint8_t type, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	long long deadline = now_ms() + WAIT_MS;

	while (len) {
		ssize_t n = a->ch->ops->send(a->ch, type, p, len);
		if (n < 0 && errno == EAGAIN) {
			wait_fd(a->ch->fd, POLLOUT, deadline, "attacker send");
			continue;
		}
		cr_assert(n > 0, "attacker send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	while (a->ch->ops->flush(a->ch) < 0) {
		cr_assert_eq(errno, EAGAIN, "attacker flush: %s", strerror(errno));
		wait_fd(a->ch->fd, POLLOUT, deadline, "attacker flush");
	}
}

static void raw_write(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	long long deadline = now_ms() + WAIT_MS;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EAGAIN) {
			wait_fd(fd, POLLOUT, deadline, "raw write");
			continue;
		}
		cr_assert(n > 0, "raw write: %s", strerror(errno));
		p += (size_t)n;
		len -= (size_t)n;
	}
}

/* Seal one record by hand (the channel refuses empty ones) with the
 * attacker's send key at the channel's current sequence number. */
static size_t raw_seal(struct attacker *a, uint8_t type, const void *pt, size_t n,
		       uint8_t *out)
{
	struct kc_key_material *km = &a->tx;
	gnutls_aead_cipher_hd_t h;
	gnutls_datum_t key = { km->key, (unsigned)km->key_len };
	uint8_t nonce[12], aad[13], inner[KC_MAX_PLAINTEXT + 1];
	bool tls13 = km->version == KC_TLS13;
	bool expl = !tls13 && km->iv_len == 4;
	size_t off = 5, ilen, len, ctlen, aadlen;
	uint64_t seq;

	cr_assert_eq(a->ch->ops->rec_seq(a->ch, KC_TX, &seq), 0);
	cr_assert(n <= KC_MAX_PLAINTEXT);
	cr_assert_eq(gnutls_aead_cipher_init(&h, km->cipher, &key), 0);
	if (expl) {
		memcpy(nonce, km->iv, 4);
		for (int i = 0; i < 8; i++)
			nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
		memcpy(out + 5, nonce + 4, 8);
		off += 8;
	} else {
		memcpy(nonce, km->iv, 12);
		for (int i = 0; i < 8; i++)
			nonce[11 - i] ^= (uint8_t)(seq >> (8 * i));
	}
	if (n)
		memcpy(inner, pt, n);
	ilen = n;
	if (tls13)
		inner[ilen++] = type;
	len = off - 5 + ilen + 16;
	out[0] = tls13 ? KC_REC_DATA : type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	if (tls13) {
		memcpy(aad, out, 5);
		aadlen = 5;
	} else {
		for (int i = 0; i < 8; i++)
			aad[i] = (uint8_t)(seq >> (56 - 8 * i));
		aad[8] = type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (uint8_t)(n >> 8);
		aad[12] = (uint8_t)n;
		aadlen = 13;
	}
	ctlen = ilen + 16;
	cr_assert_eq(gnutls_aead_cipher_encrypt(h, nonce, 12, aad, aadlen, 16, inner, ilen,
						out + off, &ctlen), 0);
	gnutls_aead_cipher_deinit(h);
	return 5 + len;
}

/* Wait for the victim's alert (skipping handshake records: a client
 * attacker has the server's NewSessionTickets queued first). */
static void att_expect_alert(struct attacker *a, int level, int desc)
{
	uint8_t buf[KC_MAX_PLAINTEXT + 64];
	long long deadline = now_ms() + WAIT_MS;

	for (;;) {
		uint8_t type = 0;
		bool eor = false;
		ssize_t n = a->ch->ops->recv(a->ch, buf, sizeof buf, &type, &eor);
		if (n < 0 && errno == EAGAIN) {
			wait_fd(a->ch->fd, POLLIN, deadline, "attacker waiting for an alert");
			continue;
		}
		cr_assert(n > 0, "%sattacker: recv = %zd (%s) while waiting for alert %s", g_ctx, n,
			  n < 0 ? strerror(errno) : "end of stream", alert_str(desc));
		if (type == KC_REC_HANDSHAKE)
			continue;
		cr_assert_eq(type, KC_REC_ALERT, "attacker: record type %u, want an alert", type);
		cr_assert_eq(n, 2, "attacker: alert of %zd bytes", n);
		cr_assert_eq(buf[1], desc, "%sattacker: got alert %s, want %s", g_ctx,
			     alert_str(buf[1]), alert_str(desc));
		cr_assert_eq(buf[0], level, "attacker: alert %s at level %u, want %d",
			     alert_str(buf[1]), buf[0], level);
		return;
	}
}

/* Nothing (but handshake records) has come from the victim. */
static void att_expect_silence(struct attacker *a)
{
	uint8_t buf[KC_MAX_PLAINTEXT + 64];

	for (;;) {
		uint8_t type = 0;
		bool eor = false;
		ssize_t n = a->ch->ops->recv(a->ch, buf, sizeof buf, &type, &eor);
		if (n > 0 && type == KC_REC_HANDSHAKE)
			continue;
		cr_assert(n < 0 && errno == EAGAIN, "attacker: the victim sent something "
			  "(recv = %zd, type %u, first byte %u)", n, type, n > 0 ? buf[0] : 0);
		return;
	}
}

static void att_expect_data(struct attacker *a, const void *want, size_t len)
{
	uint8_t buf[KC_MAX_PLAINTEXT + 64];
	long long deadline = now_ms() + WAIT_MS;
	size_t have = 0;

	cr_assert(len <= sizeof buf);
	while (have < len) {
		uint8_t type = 0;
		bool eor = false;
		ssize_t n = a->ch->ops->recv(a->ch, buf + have, sizeof buf - have, &type, &eor);
		if (n < 0 && errno == EAGAIN) {
			wait_fd(a->ch->fd, POLLIN, deadline, "attacker waiting for data");
			continue;
		}
		cr_assert(n > 0, "attacker: recv = %zd (%s)", n, n < 0 ? strerror(errno) : "EOF");
		if (type == KC_REC_HANDSHAKE)
			continue;
		cr_assert_eq(type, KC_REC_DATA, "attacker: type %u (first byte %u), want data",
			     type, buf[have]);
		have += (size_t)n;
	}
	cr_assert_eq(have, len);
	cr_assert(memcmp(buf, want, len) == 0, "attacker: data differs");
}

/* A victim conn on one side, an attacker on the other. */
static struct attacker *hostile_setup(struct tls_pair *p, unsigned vers,
				      gnutls_cipher_algorithm_t cipher, int victim)
{
	tls_pair_handshake_ex(p, vers, cipher, NULL, NULL);
	open_conn(p, victim, false);
	return open_attacker(p, 1 - victim);
}

/* A syntactically valid TLS 1.3 NewSessionTicket (RFC 8446 §4.6.1) whose
 * opaque ticket is tlen bytes of fill; the client stores anything. */
static size_t make_nst(uint8_t *out, size_t tlen, uint8_t fill)
{
	size_t body = 4 + 4 + 1 + 1 + 2 + tlen + 2;
	uint8_t *q = out;

	*q++ = 4;
	*q++ = (uint8_t)(body >> 16);
	*q++ = (uint8_t)(body >> 8);
	*q++ = (uint8_t)body;
	memcpy(q, "\x00\x00\x0e\x10", 4);   /* lifetime 3600 s */
	q += 4;
	memcpy(q, "\x12\x34\x56\x78", 4);   /* age_add */
	q += 4;
	*q++ = 1;                            /* nonce */
	*q++ = 0x2a;
	*q++ = (uint8_t)(tlen >> 8);
	*q++ = (uint8_t)tlen;
	memset(q, fill, tlen);
	q += tlen;
	*q++ = 0;                            /* no extensions */
	*q++ = 0;
	return (size_t)(q - out);
}

/* ====================================================================== */
/* 1. Data both ways, then close_notify in turn.                          */
/* ====================================================================== */

ParameterizedTestParameters(conn, data_and_close)
{
	return cr_make_param_array(struct combo, combos, NCOMBOS);
}

ParameterizedTest(struct combo *co, conn, data_and_close, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	const size_t c2s = 2u << 20, s2c = (3u << 20) / 2 + 7;
	static const char tail[] = "the server's last words after the client's close_notify";
	uint8_t buf[256];

	tls_pair_handshake(&p, co);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);

	exchange(&p, c2s, s2c, 1);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_TX)->bytes, c2s);
	cr_assert_eq(kc_conn_stats(p.c[SRV], KC_RX)->bytes, c2s);
	cr_assert_eq(kc_conn_stats(p.c[SRV], KC_TX)->bytes, s2c);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_RX)->bytes, s2c);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_TX)->key_updates, 0);

	/* The client closes; the server sees end of data, then may still
	 * write (half-close), then closes too. */
	cr_assert_eq(kc_conn_close(p.c[CLI], &err), 0, "close: %s", err.msg);
	cr_assert(kc_conn_close_sent(p.c[CLI]));
	cr_assert_eq(kc_conn_close(p.c[CLI], &err), 0, "a second close is a no-op");
	cr_assert_eq(kc_conn_read(p.c[CLI], buf, sizeof buf, &err), KC_CONN_AGAIN,
		     "the client can still read after its close_notify");
	cr_assert_eq(read_wait(p.c[SRV], buf, sizeof buf, &err), 0, "%s: server read: %s",
		     co->name, err.msg);
	cr_assert(kc_conn_peer_closed(p.c[SRV]));
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_PEER_CLOSE), 1);
	cr_assert_eq(kc_conn_read(p.c[SRV], buf, sizeof buf, &err), 0, "0 again after close");
	cr_assert(!kc_conn_peer_closed(p.c[CLI]));

	write_all_conn(p.c[SRV], tail, sizeof tail, "server tail");
	cr_assert_eq(kc_conn_close(p.c[SRV], &err), 0, "server close: %s", err.msg);
	while (kc_conn_tx_pending(p.c[SRV])) {
		int r = kc_conn_flush(p.c[SRV], &err);
		cr_assert(r == 0 || r == KC_CONN_AGAIN, "%s", err.msg);
	}
	expect_data(p.c[CLI], tail, sizeof tail, "client tail");
	cr_assert_eq(read_wait(p.c[CLI], buf, sizeof buf, &err), 0, "client read: %s", err.msg);
	cr_assert(kc_conn_peer_closed(p.c[CLI]));
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_PEER_CLOSE), 1);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_RX)->bytes, s2c + sizeof tail);

	/* Writing after our own close_notify is refused, and does not crash. */
	cr_assert_eq(kc_conn_write(p.c[CLI], "x", 1, &err), -1);
	/* Both sides shut TCP down after their close_notify. */
	cr_assert_eq(recv(p.fd[SRV], buf, sizeof buf, MSG_DONTWAIT), 0,
		     "server socket: no end of stream after the client's close");
	tls_pair_close(&p);
}

/* GnuTLS already moved records before the handover: the server's GnuTLS
 * sent two, the client's GnuTLS decrypted the first but handed out only 4
 * bytes of it.  The conn must give the rest of that record first (the
 * drained plaintext), then continue at the right sequence numbers. */
ParameterizedTestParameters(conn, handover_mid_stream)
{
	return cr_make_param_array(struct combo, combos, NCOMBOS);
}

ParameterizedTest(struct combo *co, conn, handover_mid_stream, .timeout = 10)
{
	static struct tls_pair p;
	static const char r1[] = "first record, partly read through GnuTLS";
	static const char r2[] = "second record, all for the conn";
	static const char c1[] = "the client's GnuTLS wrote this one";
	uint8_t b[8];
	ssize_t n;

	tls_pair_handshake(&p, co);
	cr_assert_eq(gnutls_record_send(p.s[SRV], r1, sizeof r1), (ssize_t)sizeof r1);
	cr_assert_eq(gnutls_record_send(p.s[SRV], r2, sizeof r2), (ssize_t)sizeof r2);
	cr_assert_eq(gnutls_record_send(p.s[CLI], c1, sizeof c1), (ssize_t)sizeof c1);
	do
		n = gnutls_record_recv(p.s[CLI], b, 4);
	while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	cr_assert_eq(n, 4, "%s: gnutls_record_recv: %s", co->name,
		     n < 0 ? gnutls_strerror((int)n) : "short");
	cr_assert(memcmp(b, r1, 4) == 0);
	cr_assert_eq(gnutls_record_check_pending(p.s[CLI]), sizeof r1 - 4);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	expect_data(p.c[CLI], r1 + 4, sizeof r1 - 4, "client, the drained rest");
	expect_data(p.c[CLI], r2, sizeof r2, "client, the next record");
	expect_data(p.c[SRV], c1, sizeof c1, "server");
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_RX)->bytes, sizeof r1 - 4 + sizeof r2);
	exchange(&p, 100000, 100000, 90);
	tls_pair_close(&p);
}

/* ====================================================================== */
/* 2. TLS 1.3 tickets after the handover, and resumption with them.       */
/* ====================================================================== */

ParameterizedTestParameters(conn, tickets_and_resumption)
{
	return cr_make_param_array(struct combo, TLS13_COMBOS, 4);
}

ParameterizedTest(struct combo *co, conn, tickets_and_resumption, .timeout = 10)
{
	static struct tls_pair p, q;
	gnutls_datum_t data = { 0 };
	int resume_status = 12345;

	tls_pair_handshake(&p, co);
	cr_assert_eq(gnutls_session_get_flags(p.s[CLI]) & GNUTLS_SFLAGS_SESSION_TICKET, 0,
		     "the client had the tickets before the handover");
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_TICKET), 2, "%s: %u ticket events", co->name,
		     ev_count(&p.ev[CLI], KC_EV_TICKET));
	cr_assert_eq(kc_conn_tickets(p.c[CLI]), 2);
	cr_assert_eq(kc_conn_tickets(p.c[SRV]), 0);
	cr_assert_eq(p.ev[SRV].n, 0, "the server saw events");
	cr_assert_neq(gnutls_session_get_flags(p.s[CLI]) & GNUTLS_SFLAGS_SESSION_TICKET, 0,
		      "GnuTLS did not take the ticket");
	/* the session goes on as usual */
	exchange(&p, 50000, 50000, 2);

	cr_assert_eq(gnutls_session_get_data2(p.s[CLI], &data), 0);
	cr_assert_gt(data.size, 100u);
	tls_pair_close(&p);

	tls_pair_handshake_ex(&q, co->vers, co->cipher, &data, &resume_status);
	gnutls_free(data.data);
	cr_assert_eq(resume_status, 0, "gnutls_session_set_data: %s",
		     gnutls_strerror(resume_status));
	cr_assert(gnutls_session_is_resumed(q.s[CLI]), "%s: the client did not resume",
		  co->name);
	cr_assert(gnutls_session_is_resumed(q.s[SRV]), "%s: the server did not resume",
		  co->name);
	open_conn(&q, CLI, false);
	open_conn(&q, SRV, false);
	exchange(&q, 20000, 30000, 3);
	tls_pair_close(&q);
}

/* ====================================================================== */
/* 3. Key updates.                                                        */
/* ====================================================================== */

static void ku(struct tls_pair *p, int side, bool request)
{
	struct kc_err err = { 0 };

	cr_assert_eq(kc_conn_key_update(p->c[side], request, &err), 0, "%s key update: %s",
		     side_name[side], err.msg);
}

static void check_ku_counts(struct tls_pair *p, unsigned ctx, unsigned crx, unsigned stx,
			    unsigned srx)
{
	cr_assert_eq(kc_conn_stats(p->c[CLI], KC_TX)->key_updates, ctx, "client tx updates %u",
		     kc_conn_stats(p->c[CLI], KC_TX)->key_updates);
	cr_assert_eq(kc_conn_stats(p->c[CLI], KC_RX)->key_updates, crx, "client rx updates %u",
		     kc_conn_stats(p->c[CLI], KC_RX)->key_updates);
	cr_assert_eq(kc_conn_stats(p->c[SRV], KC_TX)->key_updates, stx, "server tx updates %u",
		     kc_conn_stats(p->c[SRV], KC_TX)->key_updates);
	cr_assert_eq(kc_conn_stats(p->c[SRV], KC_RX)->key_updates, srx, "server rx updates %u",
		     kc_conn_stats(p->c[SRV], KC_RX)->key_updates);
}

ParameterizedTestParameters(conn, key_update)
{
	return cr_make_param_array(struct combo, TLS13_COMBOS, 4);
}

ParameterizedTest(struct combo *co, conn, key_update, .timeout = 10)
{
	static struct tls_pair p;
	const struct kc_event *e;

	tls_pair_handshake(&p, co);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	exchange(&p, 100000, 100000, 10);

	/* client, no request */
	ku(&p, CLI, false);
	e = ev_nth(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT, 0);
	cr_assert_not_null(e);
	cr_assert(!e->requested);
	exchange(&p, 70000, 70000, 11);
	settle(&p);
	e = ev_nth(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE, 0);
	cr_assert_not_null(e, "%s: the server saw no KeyUpdate", co->name);
	cr_assert(!e->requested);
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_KEY_UPDATE_SENT), 0, "unrequested: no answer");
	check_ku_counts(&p, 1, 0, 0, 1);

	/* client, with request: the server answers by itself */
	ku(&p, CLI, true);
	cr_assert(ev_nth(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT, 1)->requested);
	exchange(&p, 70000, 70000, 12);
	settle(&p);
	e = ev_nth(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE, 1);
	cr_assert_not_null(e);
	cr_assert(e->requested);
	e = ev_nth(&p.ev[SRV], KC_EV_KEY_UPDATE_SENT, 0);
	cr_assert_not_null(e, "%s: the server did not answer the request", co->name);
	cr_assert(!e->requested, "the answer must not request again");
	e = ev_nth(&p.ev[CLI], KC_EV_PEER_KEY_UPDATE, 0);
	cr_assert_not_null(e);
	cr_assert(!e->requested);
	check_ku_counts(&p, 2, 1, 1, 2);

	/* server, no request */
	ku(&p, SRV, false);
	exchange(&p, 70000, 70000, 13);
	settle(&p);
	check_ku_counts(&p, 2, 2, 2, 2);
	cr_assert(!ev_nth(&p.ev[CLI], KC_EV_PEER_KEY_UPDATE, 1)->requested);

	/* server, with request */
	ku(&p, SRV, true);
	exchange(&p, 70000, 70000, 14);
	settle(&p);
	check_ku_counts(&p, 3, 3, 3, 3);
	cr_assert(ev_nth(&p.ev[CLI], KC_EV_PEER_KEY_UPDATE, 2)->requested);
	e = ev_nth(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT, 2);
	cr_assert_not_null(e, "%s: the client did not answer the request", co->name);
	cr_assert(!e->requested);
	cr_assert(!ev_nth(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE, 2)->requested);

	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_TX)->bytes,
		     kc_conn_stats(p.c[SRV], KC_RX)->bytes);
	tls_pair_close(&p);
}

/* Control records handed out one byte at a time (a 1-byte read buffer). */
Test(conn, key_update_one_byte_reads, .timeout = 10)
{
	static struct tls_pair p;
	static const char msg[] = "after two key updates";
	uint8_t b;
	char got[sizeof msg];

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	ku(&p, SRV, true);
	ku(&p, SRV, false);
	write_all_conn(p.c[SRV], msg, sizeof msg, "server");
	for (size_t i = 0; i < sizeof msg; i++) {
		struct kc_err err = { 0 };
		ssize_t n = read_wait(p.c[CLI], &b, 1, &err);
		cr_assert_eq(n, 1, "byte %zu: %zd: %s", i, n, err.msg);
		got[i] = (char)b;
	}
	cr_assert_str_eq(got, msg);
	cr_assert_eq(kc_conn_tickets(p.c[CLI]), 2);
	settle(&p);
	check_ku_counts(&p, 1, 2, 2, 1);
	tls_pair_close(&p);
}

/* A key update while the channel still holds queued ciphertext (the peer
 * is not reading): the KeyUpdate is queued behind the old-key records and
 * the new key applies only to what is written after it; then close_notify
 * is queued behind everything and goes out, with the TCP shutdown, once
 * the peer reads. */
Test(conn, key_update_under_backpressure, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	size_t len = 4u << 20, sent = 0, rcvd = 0, before_ku = 0;
	uint8_t *data = test_alloc(len), *buf = test_alloc(65536);
	long long deadline = now_ms() + 8000;
	bool updated = false, closed = false, eof = false;

	cr_assert(data && buf);
	fill_pattern(data, len, 80);
	tls_pair_handshake(&p, &TLS13_COMBOS[3]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	while (!eof) {
		cr_assert(now_ms() < deadline, "stalled: sent %zu, received %zu", sent, rcvd);
		if (sent < len) {
			ssize_t n = kc_conn_write(p.c[CLI], data + sent, len - sent, &err);
			cr_assert(n > 0 || n == KC_CONN_AGAIN, "write: %s", err.msg);
			if (n > 0)
				sent += (size_t)n;
			if (n == KC_CONN_AGAIN && !updated) {
				/* the socket is full and the channel holds records */
				cr_assert(kc_conn_tx_pending(p.c[CLI]));
				ku(&p, CLI, true);
				updated = true;
				before_ku = sent;
			}
			if (n == KC_CONN_AGAIN && updated && sent >= before_ku)
				goto read_some;   /* let the server catch up */
			continue;
		}
		if (!closed) {
			cr_assert_eq(kc_conn_close(p.c[CLI], &err), 0, "close: %s", err.msg);
			closed = true;
		}
		if (kc_conn_tx_pending(p.c[CLI])) {
			int r = kc_conn_flush(p.c[CLI], &err);
			cr_assert(r == 0 || r == KC_CONN_AGAIN, "flush: %s", err.msg);
		}
read_some:
		for (int i = 0; i < 4; i++) {
			ssize_t n = kc_conn_read(p.c[SRV], buf, 65536, &err);
			if (n == KC_CONN_AGAIN)
				break;
			cr_assert(n >= 0, "server read: %s", err.msg);
			if (n == 0) {
				cr_assert(closed, "close_notify before the client closed");
				eof = true;
				break;
			}
			cr_assert(rcvd + (size_t)n <= sent, "more bytes than were written");
			cr_assert(memcmp(buf, data + rcvd, (size_t)n) == 0, "bytes differ at %zu",
				  rcvd);
			rcvd += (size_t)n;
		}
		/* the server answered the request; let the client take it */
		kc_conn_read(p.c[CLI], buf, 16, &err);
		if (!eof) {
			struct pollfd pfd[2] = { { p.fd[SRV], POLLIN, 0 },
						 { p.fd[CLI], POLLIN | POLLOUT, 0 } };
			poll(pfd, 2, 50);
		}
	}
	cr_assert(updated, "the socket never filled up");
	cr_assert_eq(rcvd, len);
	cr_assert(!kc_conn_tx_pending(p.c[CLI]));
	check_ku_counts(&p, 1, 1, 1, 1);
	cr_assert(ev_nth(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE, 0)->requested);
	cr_assert_eq(recv(p.fd[SRV], buf, 16, MSG_DONTWAIT), 0, "no TCP shutdown after close");
	test_free(data);
	test_free(buf);
	tls_pair_close(&p);
}

/* A burst of 8 KeyUpdates (GnuTLS's limit for received ones is 8 within
 * 1000 ms) is fine. */
Test(conn, key_update_burst, .timeout = 10)
{
	static struct tls_pair p;

	tls_pair_handshake(&p, &TLS13_COMBOS[1]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	for (int i = 0; i < 8; i++)
		ku(&p, CLI, false);
	exchange(&p, 40000, 40000, 20);
	settle(&p);
	check_ku_counts(&p, 8, 0, 0, 8);
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE), 8);
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_KEY_UPDATE_SENT), 0);
	tls_pair_close(&p);
}

/* A burst of requests gets one answer each. */
Test(conn, key_update_request_burst, .timeout = 10)
{
	static struct tls_pair p;

	tls_pair_handshake(&p, &TLS13_COMBOS[2]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	for (int i = 0; i < 4; i++)
		ku(&p, SRV, true);
	exchange(&p, 40000, 40000, 21);
	settle(&p);
	check_ku_counts(&p, 4, 4, 4, 4);
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT), 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert(ev_nth(&p.ev[CLI], KC_EV_PEER_KEY_UPDATE, i)->requested);
		cr_assert(!ev_nth(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE, i)->requested);
	}
	tls_pair_close(&p);
}

/* More than 8 KeyUpdates within a second exceed GnuTLS's rate limit: the
 * receiver fails with KC_E_PROTOCOL (and tells the sender), nobody
 * crashes.  (The second burst alone is over the limit, so a slow machine
 * that lets the window roll over between the bursts still trips it.) */
Test(conn, key_update_rate_limit, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	uint8_t buf[64];

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	for (int i = 0; i < 8; i++)
		ku(&p, CLI, false);
	write_all_conn(p.c[CLI], "A", 1, "client");
	expect_data(p.c[SRV], "A", 1, "server");
	for (int i = 0; i < 9; i++)
		ku(&p, CLI, false);
	write_all_conn(p.c[CLI], "B", 1, "client");
	expect_fail(p.c[SRV], KC_E_PROTOCOL, "flooded the session with KeyUpdates", &err);
	unsigned rx = kc_conn_stats(p.c[SRV], KC_RX)->key_updates;
	cr_assert(rx >= 8 && rx < 17, "%u key updates installed", rx);
	/* the client learns of it through the server's fatal alert */
	ssize_t n = read_wait(p.c[CLI], buf, sizeof buf, &err);
	cr_assert_eq(n, -1, "the client saw no alert (%zd)", n);
	cr_assert_eq(err.status, KC_E_PROTOCOL, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "fatal alert"), "%s", err.msg);
	check_sticky(p.c[CLI], &err);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, key_update): both sides ask for a key update at the
 * same time, which RFC 8446 §4.6.3 allows (the requests cross in flight).
 * kc_conn_key_update(request_peer = true) calls
 * gnutls_session_key_update(GNUTLS_KU_PEER), which sets GnuTLS's
 * HSK_KEY_UPDATE_ASKED; the peer's crossing request is then rejected by
 * _gnutls13_recv_key_update with GNUTLS_E_ILLEGAL_PARAMETER, and conn kills
 * the connection with alert illegal_parameter. */
Test(conn, key_update_crossing_requests, .timeout = 10)
{
	static struct tls_pair p;

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	ku(&p, CLI, true);
	ku(&p, SRV, true);
	exchange(&p, 30000, 30000, 30);
	settle(&p);
	/* each side updated twice: once by itself, once to answer */
	check_ku_counts(&p, 2, 2, 2, 2);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, on_peer_key_update): after our close_notify we may
 * still read (half-close), and the peer, which has not seen our close yet,
 * may ask for a key update.  conn answers through kc_conn_key_update, which
 * refuses after close_notify, and kc_conn_read fails with KC_E_USAGE
 * ("close_notify already sent") without even latching the failure.  It
 * must skip the answer (nothing may follow close_notify) and go on
 * reading: here the data, then the peer's close_notify. */
Test(conn, key_update_request_after_close, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	static const char msg[] = "data after the requested key update";
	uint8_t buf[64];

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	settle(&p);
	ku(&p, SRV, true);
	write_all_conn(p.c[SRV], msg, sizeof msg, "server");
	cr_assert_eq(kc_conn_close(p.c[SRV], &err), 0, "%s", err.msg);
	cr_assert_eq(kc_conn_close(p.c[CLI], &err), 0, "%s", err.msg);
	expect_data(p.c[CLI], msg, sizeof msg, "client");
	cr_assert_eq(read_wait(p.c[CLI], buf, sizeof buf, &err), 0, "client: %s", err.msg);
	cr_assert(kc_conn_peer_closed(p.c[CLI]));
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_RX)->key_updates, 1);
	tls_pair_close(&p);
}

/* ====================================================================== */
/* 4. TLS 1.2: no key updates; HelloRequest declined politely.            */
/* ====================================================================== */

Test(conn, tls12_key_update_refused, .timeout = 10)
{
	static struct tls_pair p;

	tls_pair_handshake(&p, &TLS12_COMBOS[0]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	for (int side = 0; side < 2; side++)
		for (int req = 0; req < 2; req++) {
			struct kc_err err = { 0 };
			cr_assert_eq(kc_conn_key_update(p.c[side], req, &err), -1);
			cr_assert_eq(err.status, KC_E_USAGE, "%s: %d %s", side_name[side],
				     err.status, err.msg);
			cr_assert_not_null(strstr(err.msg, "TLS 1.2"), "%s", err.msg);
		}
	/* a refused call leaves the connection working */
	exchange(&p, 100000, 100000, 50);
	cr_assert_eq(p.ev[CLI].n + p.ev[SRV].n, 0);
	check_ku_counts(&p, 0, 0, 0, 0);
	tls_pair_close(&p);
}

ParameterizedTestParameters(conn, tls12_hello_request)
{
	return cr_make_param_array(struct combo, TLS12_COMBOS, 4);
}

ParameterizedTest(struct combo *co, conn, tls12_hello_request, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t hello_request[4] = { 0, 0, 0, 0 };
	static const char s2c[] = "still here after the HelloRequest";
	static const char c2s[] = "the client too";
	struct attacker *a = hostile_setup(&p, co->vers, co->cipher, CLI);
	struct kc_conn *v = p.c[CLI];

	att_send(a, KC_REC_HANDSHAKE, hello_request, 4);
	att_send(a, KC_REC_DATA, s2c, sizeof s2c);
	expect_data(v, s2c, sizeof s2c, "client");
	att_expect_alert(a, AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
	write_all_conn(v, c2s, sizeof c2s, "client");
	att_expect_data(a, c2s, sizeof c2s);
	/* twice is as fine as once */
	att_send(a, KC_REC_HANDSHAKE, hello_request, 4);
	att_send(a, KC_REC_DATA, s2c, sizeof s2c);
	expect_data(v, s2c, sizeof s2c, "client");
	att_expect_alert(a, AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
	tls_pair_close(&p);
}

/* Any other handshake message after a TLS 1.2 handshake ends it. */
Test(conn, tls12_other_handshake_message, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t client_hello_ish[6] = { 1, 0, 0, 2, 3, 3 };
	struct attacker *a = hostile_setup(&p, KC_VERS_12, GNUTLS_CIPHER_AES_128_GCM, CLI);

	att_send(a, KC_REC_HANDSHAKE, client_hello_ish, sizeof client_hello_ish);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "handshake message after the TLS 1.2", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* TLS 1.2 honours the alert level: a warning is reported and ignored. */
Test(conn, tls12_warning_alert_ignored, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t warn[2] = { AL_WARNING, GNUTLS_A_NO_RENEGOTIATION };
	struct attacker *a = hostile_setup(&p, KC_VERS_12, GNUTLS_CIPHER_CHACHA20_POLY1305, CLI);

	att_send(a, KC_REC_ALERT, warn, 2);
	att_send(a, KC_REC_DATA, "ok", 2);
	expect_data(p.c[CLI], "ok", 2, "client");
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_WARNING_ALERT), 1);
	cr_assert_eq(ev_nth(&p.ev[CLI], KC_EV_WARNING_ALERT, 0)->alert,
		     GNUTLS_A_NO_RENEGOTIATION);
	att_expect_silence(a);
	tls_pair_close(&p);
}

/* ====================================================================== */
/* 5. Hostile records.                                                    */
/* ====================================================================== */

struct hostile {
	char name[40];
	unsigned vers;
	int victim;                 /* CLI or SRV */
	uint8_t type;               /* record content type */
	uint8_t body[40];
	size_t len;
	enum kc_status status;
	char phrase[48];
	int alert;                  /* what the attacker gets back; -1: nothing */
};

#define HS KC_REC_HANDSHAKE
static struct hostile hostiles[] = {
	{ "unknown type 1.3", KC_VERS_13, CLI, 99, "hello", 5, KC_E_PROTOCOL,
	  "unexpected content type 99", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "unknown type 1.2", KC_VERS_12, CLI, 99, "hello", 5, KC_E_PROTOCOL,
	  "unexpected content type 99", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "unknown type to server", KC_VERS_13, SRV, 99, "hello", 5, KC_E_PROTOCOL,
	  "unexpected content type 99", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "CCS 1.3", KC_VERS_13, CLI, KC_REC_CCS, { 1 }, 1, KC_E_PROTOCOL,
	  "unexpected content type 20", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "CCS 1.2", KC_VERS_12, CLI, KC_REC_CCS, { 1 }, 1, KC_E_PROTOCOL,
	  "unexpected content type 20", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "KeyUpdate + NST fragment", KC_VERS_13, CLI, HS,
	  { 0x18, 0, 0, 1, 0, 4, 0, 0 }, 8, KC_E_PROTOCOL, "does not stand alone",
	  GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "KeyUpdate + KeyUpdate", KC_VERS_13, SRV, HS,
	  { 0x18, 0, 0, 1, 0, 0x18, 0, 0, 1, 0 }, 10, KC_E_PROTOCOL, "does not stand alone",
	  GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "NST + KeyUpdate", KC_VERS_13, CLI, HS,
	  { 4, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 0x41, 0, 0,
	    0x18, 0, 0, 1, 0 }, 23, KC_E_PROTOCOL, "does not stand alone",
	  GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "KeyUpdate length 2", KC_VERS_13, CLI, HS, { 0x18, 0, 0, 2, 0, 0 }, 6,
	  KC_E_PROTOCOL, "malformed KeyUpdate", GNUTLS_A_DECODE_ERROR },
	{ "KeyUpdate length 0", KC_VERS_13, CLI, HS, { 0x18, 0, 0, 0 }, 4,
	  KC_E_PROTOCOL, "malformed KeyUpdate", GNUTLS_A_DECODE_ERROR },
	{ "KeyUpdate value 5", KC_VERS_13, CLI, HS, { 0x18, 0, 0, 1, 5 }, 5,
	  KC_E_PROTOCOL, "invalid request value", GNUTLS_A_ILLEGAL_PARAMETER },
	{ "KeyUpdate value 2 to server", KC_VERS_13, SRV, HS, { 0x18, 0, 0, 1, 2 }, 5,
	  KC_E_PROTOCOL, "invalid request value", GNUTLS_A_ILLEGAL_PARAMETER },
	{ "KeyUpdate cut short", KC_VERS_13, CLI, HS, { 0x18, 0, 0, 1 }, 4,
	  KC_E_PROTOCOL, "split across records", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "NST to a server", KC_VERS_13, SRV, HS,
	  { 4, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 0x41, 0, 0 }, 18,
	  KC_E_PROTOCOL, "cannot accept", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "unknown handshake type 1.3", KC_VERS_13, CLI, HS, { 99, 0, 0, 1, 0 }, 5,
	  KC_E_PROTOCOL, "cannot accept", GNUTLS_A_UNEXPECTED_MESSAGE },
	{ "fatal alert 1.3", KC_VERS_13, CLI, KC_REC_ALERT, { AL_FATAL, 40 }, 2,
	  KC_E_PROTOCOL, "handshake_failure", -1 },
	{ "fatal alert 1.2", KC_VERS_12, CLI, KC_REC_ALERT, { AL_FATAL, 40 }, 2,
	  KC_E_PROTOCOL, "handshake_failure", -1 },
	{ "fatal alert to server", KC_VERS_13, SRV, KC_REC_ALERT, { AL_FATAL, 20 }, 2,
	  KC_E_PROTOCOL, "bad_record_mac", -1 },
	{ "1.3 warning is fatal", KC_VERS_13, CLI, KC_REC_ALERT,
	  { AL_WARNING, GNUTLS_A_NO_RENEGOTIATION }, 2, KC_E_PROTOCOL, "no_renegotiation", -1 },
	{ "alert of 3 bytes 1.3", KC_VERS_13, CLI, KC_REC_ALERT, { AL_FATAL, 40, 0 }, 3,
	  KC_E_PROTOCOL, "malformed alert", GNUTLS_A_DECODE_ERROR },
	{ "alert of 1 byte 1.2", KC_VERS_12, CLI, KC_REC_ALERT, { AL_FATAL }, 1,
	  KC_E_PROTOCOL, "malformed alert", GNUTLS_A_DECODE_ERROR },
};
#undef HS

ParameterizedTestParameters(hostile, record)
{
	return cr_make_param_array(struct hostile, hostiles,
				   sizeof hostiles / sizeof hostiles[0]);
}

ParameterizedTest(struct hostile *h, hostile, record, .timeout = 10)
{
	static struct tls_pair p;
	struct attacker *a = hostile_setup(&p, h->vers, GNUTLS_CIPHER_AES_128_GCM, h->victim);
	struct kc_conn *v = p.c[h->victim];
	unsigned tickets_before;

	if (h->victim == CLI && h->vers == KC_VERS_13) {
		read_idle(v, "victim");   /* the server's two tickets */
		cr_assert_eq(kc_conn_tickets(v), 2);
	}
	tickets_before = kc_conn_tickets(v);
	snprintf(g_ctx, sizeof g_ctx, "%s: ", h->name);
	att_send(a, h->type, h->body, h->len);
	expect_fail(v, h->status, h->phrase, NULL);
	if (h->alert >= 0)
		att_expect_alert(a, AL_FATAL, h->alert);
	else
		att_expect_silence(a);   /* no answer to a fatal alert */
	cr_assert_eq(kc_conn_tickets(v), tickets_before, "%s: a rejected record counted a "
		     "ticket", h->name);
	cr_assert_eq(ev_count(&p.ev[h->victim], KC_EV_PEER_KEY_UPDATE), 0);
	tls_pair_close(&p);
}

/* Empty records of a control type (the channel refuses to build them, so
 * they are sealed here by hand). */
Test(hostile, empty_handshake_record_13, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t rec[64];
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_CHACHA20_POLY1305, CLI);

	raw_write(p.fd[SRV], rec, raw_seal(a, KC_REC_HANDSHAKE, NULL, 0, rec));
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "empty handshake record", NULL);
	/* (the channel's send sequence is now one behind; only receive) */
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

Test(hostile, empty_handshake_record_12, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t rec[64];
	struct attacker *a = hostile_setup(&p, KC_VERS_12, GNUTLS_CIPHER_AES_256_GCM, CLI);

	raw_write(p.fd[SRV], rec, raw_seal(a, KC_REC_HANDSHAKE, NULL, 0, rec));
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "empty handshake record", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* An empty alert record is a malformed alert. */
Test(hostile, empty_alert_record, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t rec[64];
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	raw_write(p.fd[SRV], rec, raw_seal(a, KC_REC_ALERT, NULL, 0, rec));
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "malformed alert", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_DECODE_ERROR);
	tls_pair_close(&p);
}

/* TLS 1.3: user_canceled is the one alert besides close_notify that is
 * not fatal; it is reported and the session goes on. */
Test(hostile, user_canceled_ignored, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t uc[2] = { AL_WARNING, GNUTLS_A_USER_CANCELED };
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	att_send(a, KC_REC_ALERT, uc, 2);
	att_send(a, KC_REC_DATA, "more", 4);
	expect_data(p.c[CLI], "more", 4, "client");
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_WARNING_ALERT), 1);
	cr_assert_eq(ev_nth(&p.ev[CLI], KC_EV_WARNING_ALERT, 0)->alert, GNUTLS_A_USER_CANCELED);
	att_expect_silence(a);
	write_all_conn(p.c[CLI], "reply", 5, "client");
	att_expect_data(a, "reply", 5);
	tls_pair_close(&p);
}

/* Records that fail before or at decryption: bad tag, bad header version,
 * oversized header; raw bytes on the socket. */
struct bad_record {
	char name[40];
	unsigned vers;
	uint8_t hdr[5];
	size_t body;                /* bytes of junk after the header */
	char phrase[48];
	int alert;
};

static struct bad_record bad_records[] = {
	{ "bad tag 1.3", KC_VERS_13, { 23, 3, 3, 0, 48 }, 48, "failed authentication",
	  GNUTLS_A_BAD_RECORD_MAC },
	{ "bad tag 1.2", KC_VERS_12, { 23, 3, 3, 0, 48 }, 48, "failed authentication",
	  GNUTLS_A_BAD_RECORD_MAC },
	{ "bad tag on an alert 1.2", KC_VERS_12, { 21, 3, 3, 0, 26 }, 26,
	  "failed authentication", GNUTLS_A_BAD_RECORD_MAC },
	{ "too short for a tag", KC_VERS_13, { 23, 3, 3, 0, 8 }, 8, "failed authentication",
	  GNUTLS_A_BAD_RECORD_MAC },
	{ "wrong version", KC_VERS_13, { 23, 3, 1, 0, 48 }, 48, "malformed record header",
	  GNUTLS_A_DECODE_ERROR },
	{ "oversized", KC_VERS_13, { 23, 3, 3, 0x48, 0 }, 0, "oversized record",
	  GNUTLS_A_RECORD_OVERFLOW },
	{ "oversized 1.2", KC_VERS_12, { 23, 3, 3, 0x41, 0x19 }, 0, "oversized record",
	  GNUTLS_A_RECORD_OVERFLOW },
};

ParameterizedTestParameters(hostile, bad_record)
{
	return cr_make_param_array(struct bad_record, bad_records,
				   sizeof bad_records / sizeof bad_records[0]);
}

ParameterizedTest(struct bad_record *b, hostile, bad_record, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t raw[5 + 64];
	struct attacker *a = hostile_setup(&p, b->vers, GNUTLS_CIPHER_AES_128_GCM, CLI);

	snprintf(g_ctx, sizeof g_ctx, "%s: ", b->name);
	memcpy(raw, b->hdr, 5);
	memset(raw + 5, 0x41, b->body);
	att_send(a, KC_REC_DATA, "good", 4);      /* a good record first */
	raw_write(p.fd[SRV], raw, 5 + b->body);
	expect_data(p.c[CLI], "good", 4, b->name);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, b->phrase, NULL);
	att_expect_alert(a, AL_FATAL, b->alert);
	tls_pair_close(&p);
}

/* The peer closes TCP without close_notify: truncation, whether at a
 * record boundary or in the middle of one. */
ParameterizedTestParameters(hostile, truncated)
{
	static int cuts[] = { 0, 1, 2 };
	return cr_make_param_array(int, cuts, 3);
}

ParameterizedTest(int *cut, hostile, truncated, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t rec[128];
	struct attacker *a = hostile_setup(&p, *cut == 2 ? KC_VERS_12 : KC_VERS_13,
					   GNUTLS_CIPHER_AES_128_GCM, CLI);
	struct kc_err err = { 0 };

	att_send(a, KC_REC_DATA, "last", 4);
	if (*cut) {
		size_t n = raw_seal(a, KC_REC_DATA, "partial", 7, rec);
		raw_write(p.fd[SRV], rec, n / 2);
	}
	kc_channel_free(a->ch);
	a->ch = NULL;
	close(p.fd[SRV]);
	p.fd[SRV] = -1;
	expect_data(p.c[CLI], "last", 4, "client");
	expect_fail(p.c[CLI], KC_E_TRUNCATED, "truncated", &err);
	cr_assert(!kc_conn_peer_closed(p.c[CLI]));
	tls_pair_close(&p);
}

/* Writing to a peer that is gone is a truncation too, not a signal. */
Test(hostile, write_to_closed_peer, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	static uint8_t big[1 << 20];
	long long deadline = now_ms() + WAIT_MS;
	ssize_t n;

	hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);
	kc_channel_free(p.att[SRV].ch);
	p.att[SRV].ch = NULL;
	close(p.fd[SRV]);
	p.fd[SRV] = -1;
	do {
		n = kc_conn_write(p.c[CLI], big, sizeof big, &err);
		cr_assert(now_ms() < deadline, "writes never failed");
	} while (n > 0 || (n == KC_CONN_AGAIN && kc_conn_flush(p.c[CLI], &err) != -1));
	cr_assert_eq(err.status, KC_E_TRUNCATED, "%d: %s", err.status, err.msg);
	check_sticky(p.c[CLI], &err);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, on_handshake): a NewSessionTicket too short to parse.
 * GnuTLS rejects it with GNUTLS_E_PARSING_ERROR, which
 * gnutls_error_to_alert() maps to internal_error, so conn tells the peer
 * that the fault is ours.  RFC 8446 §6.2: a message that cannot be decoded
 * gets decode_error.  Fix: map GNUTLS_E_PARSING_ERROR (like
 * GNUTLS_E_UNEXPECTED_PACKET_LENGTH) to GNUTLS_A_DECODE_ERROR before falling
 * back to gnutls_error_to_alert(). */
Test(hostile, malformed_nst, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t nst[7] = { 4, 0, 0, 3, 0, 0, 0 };
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	read_idle(p.c[CLI], "client");
	att_send(a, KC_REC_HANDSHAKE, nst, sizeof nst);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "cannot accept", NULL);
	cr_assert_eq(kc_conn_tickets(p.c[CLI]), 2, "a rejected ticket was counted");
	att_expect_alert(a, AL_FATAL, GNUTLS_A_DECODE_ERROR);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, kc_conn_read): RFC 8446 §5.1: "if a handshake message
 * is split over two or more records, there MUST NOT be any other records
 * between them" (unexpected_message).  conn keeps the framing state
 * (hs_hdr_len, hs_body_left) but never looks at it when a record of
 * another type arrives, so the data record is handed to the application
 * and the rest of the ticket is accepted afterwards.  Fix: in
 * kc_conn_read (TLS 1.3), fail with unexpected_message when a non-handshake
 * record arrives while a handshake message is incomplete. */
Test(hostile, record_inside_split_handshake_message, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t nst[300];
	size_t n = make_nst(nst, 200, 0x77);
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	read_idle(p.c[CLI], "client");
	att_send(a, KC_REC_HANDSHAKE, nst, 60);
	att_send(a, KC_REC_DATA, "between", 7);
	att_send(a, KC_REC_HANDSHAKE, nst + 60, n - 60);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* A reset connection (TCP RST, not just FIN) is a truncation too. */
Test(hostile, connection_reset, .timeout = 10)
{
	static struct tls_pair p;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct kc_err err = { 0 };

	g_use_tcp = true;
	hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);
	read_idle(p.c[CLI], "client");
	write_all_conn(p.c[CLI], "unread", 6, "client");
	cr_assert_eq(setsockopt(p.fd[SRV], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	kc_channel_free(p.att[SRV].ch);
	p.att[SRV].ch = NULL;
	close(p.fd[SRV]);
	p.fd[SRV] = -1;
	expect_fail(p.c[CLI], KC_E_TRUNCATED, "reset by the peer", &err);
	tls_pair_close(&p);
}

/* A peer that sends a fatal alert and resets the connection before our
 * next control record (a server refusing a burst of KeyUpdates): the
 * send fails on the reset, and the alert waiting in the receive queue,
 * behind data, is what the failure says. */
Test(hostile, alert_then_reset_under_our_send, .timeout = 10)
{
	static struct tls_pair p;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct kc_err err = { 0 };
	uint8_t buf[64];

	g_use_tcp = true;
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);
	read_idle(p.c[CLI], "client");
	/* Both records leave at once (no Nagle): the reset drops what waits. */
	cr_assert_eq(setsockopt(p.fd[SRV], IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)), 0);
	att_send(a, KC_REC_DATA, "passed over", 11);
	att_send(a, KC_REC_ALERT, (uint8_t[]){ AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE }, 2);
	long long deadline = now_ms() + WAIT_MS;
	int queued = 0;
	while (ioctl(p.fd[CLI], FIONREAD, &queued) == 0 && queued < 33 + 24 && now_ms() < deadline)
		wait_fd(p.fd[CLI], POLLIN, deadline, "the alert");
	cr_assert_eq(queued, 33 + 24, "the data record and the alert, queued");
	cr_assert_eq(setsockopt(p.fd[SRV], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	kc_channel_free(p.att[SRV].ch);
	p.att[SRV].ch = NULL;
	close(p.fd[SRV]);
	p.fd[SRV] = -1;
	int rc;
	for (int i = 0; i < 1000 && (rc = kc_conn_key_update(p.c[CLI], false, &err)) == 0; i++)
		;
	cr_assert_eq(rc, -1, "every KeyUpdate went out after the reset");
	cr_assert_eq(err.status, KC_E_PROTOCOL, "status %d: %s", err.status, err.msg);
	cr_assert_str_eq(err.msg, "the peer ended the connection with fatal alert "
			 "'unexpected_message'");
	cr_assert_eq(kc_conn_peer_alert(p.c[CLI]), GNUTLS_A_UNEXPECTED_MESSAGE);
	cr_assert_eq(kc_conn_read(p.c[CLI], buf, sizeof buf, &err), -1);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, fail): a failure first met by a call given err == NULL
 * is latched without its status and message (fail() copies only a non-NULL
 * err into c->failure), so every later call returns -1 with status KC_OK
 * and an empty message.  fail() should record the failure in c->failure
 * even when the caller passed no err (e.g. build it there and copy out). */
Test(hostile, failure_latched_without_err, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };
	uint8_t buf[64];
	long long deadline = now_ms() + WAIT_MS;
	ssize_t n;
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	att_send(a, 99, "x", 1);
	while ((n = kc_conn_read(p.c[CLI], buf, sizeof buf, NULL)) == KC_CONN_AGAIN)
		wait_fd(p.fd[CLI], POLLIN, deadline, "victim");
	cr_assert_eq(n, -1);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	cr_assert_eq(kc_conn_read(p.c[CLI], buf, sizeof buf, &err), -1);
	cr_assert_eq(err.status, KC_E_PROTOCOL, "the latched failure has status %d ('%s')",
		     err.status, err.msg);
	cr_assert_not_null(strstr(err.msg, "unexpected content type"), "'%s'", err.msg);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, scan_handshake): a KeyUpdate whose 4-byte header is
 * itself split across records ("18" | "00 00 01 00").  The record starts
 * with byte 24, so the channel (like the kernel) pauses after it; the
 * "split across records" check only looks at hs_hdr_len == 4, so conn
 * feeds the fragment to GnuTLS, reads on, gets EKEYEXPIRED and fails with
 * "the kernel paused on a KeyUpdate that was never delivered" without
 * telling the peer.  RFC 8446 §5.1: unexpected_message.  Fix: treat any
 * unfinished message whose type byte is 24 at the end of a record
 * (hs_hdr_len >= 1 && hs_hdr[0] == 24) as split. */
Test(hostile, key_update_header_split, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t part1[1] = { 0x18 }, part2[4] = { 0, 0, 1, 0 };
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	att_send(a, KC_REC_HANDSHAKE, part1, 1);
	att_send(a, KC_REC_HANDSHAKE, part2, 4);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "split across records", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* A KeyUpdate body in a record of its own after a header-only record. */
Test(hostile, key_update_body_split, .timeout = 10)
{
	static struct tls_pair p;
	static const uint8_t part1[4] = { 0x18, 0, 0, 1 }, part2[1] = { 0 };
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_256_GCM, SRV);

	att_send(a, KC_REC_HANDSHAKE, part1, 4);
	att_send(a, KC_REC_HANDSHAKE, part2, 1);
	expect_fail(p.c[SRV], KC_E_PROTOCOL, "split across records", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* A KeyUpdate preceded, in the same record, by the end of a message that
 * began in the previous record. */
Test(hostile, key_update_after_continuation, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t nst[64], rec2[64];
	size_t n = make_nst(nst, 20, 0x33);
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	memcpy(rec2, nst + 10, n - 10);
	memcpy(rec2 + n - 10, "\x18\x00\x00\x01\x00", 5);
	att_send(a, KC_REC_HANDSHAKE, nst, 10);
	att_send(a, KC_REC_HANDSHAKE, rec2, n - 10 + 5);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, "does not stand alone", NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_UNEXPECTED_MESSAGE);
	tls_pair_close(&p);
}

/* ====================================================================== */
/* 6. A channel that cannot rekey (Linux before 6.14).                    */
/* ====================================================================== */

/* The peer updates its keys and our channel cannot follow (a kernel before
 * 6.14): KC_E_NOREKEY, saying so. */
Test(conn, no_rekey_peer_update, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, true);
	open_conn(&p, SRV, false);
	settle(&p);
	cr_assert_eq(kc_conn_tickets(p.c[CLI]), 2);
	exchange(&p, 30000, 30000, 70);
	ku(&p, SRV, false);
	write_all_conn(p.c[SRV], "lost", 4, "server");
	expect_fail(p.c[CLI], KC_E_NOREKEY, "6.14", &err);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_RX)->key_updates, 0);
	tls_pair_close(&p);
}

/* The same for a requested update: we cannot follow, so we must not answer. */
Test(conn, no_rekey_peer_request, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };

	tls_pair_handshake(&p, &TLS13_COMBOS[2]);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, true);
	ku(&p, CLI, true);
	expect_fail(p.c[SRV], KC_E_NOREKEY, "6.14", &err);
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_KEY_UPDATE_SENT), 0);
	tls_pair_close(&p);
}

/* BUG (core/conn.c, kc_conn_key_update, in the committed version): on a
 * channel that cannot rekey, our own key update sends the KeyUpdate first
 * and only then fails in set_key(KC_TX) with KC_E_NOREKEY; the failure is
 * latched and the peer has already moved to a key we will never use, so
 * the session is lost although nothing forced an update.  It must refuse
 * (KC_E_NOREKEY, "6.14") before anything goes out and leave the session
 * working.  Fix: ask whether the channel can take a second key before
 * gnutls_session_key_update (soft: !no_rekey; kernel: probe on a fresh
 * socket), as the uncommitted conn.c seen during this work does. */
Test(conn, no_rekey_own_update, .timeout = 10)
{
	static struct tls_pair p;
	struct kc_err err = { 0 };

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn(&p, CLI, true);
	open_conn(&p, SRV, false);
	settle(&p);
	cr_assert_eq(kc_conn_key_update(p.c[CLI], false, &err), -1);
	cr_assert_eq(err.status, KC_E_NOREKEY, "%d: %s", err.status, err.msg);
	cr_assert_not_null(strstr(err.msg, "6.14"), "%s", err.msg);
	cr_assert_eq(kc_conn_stats(p.c[CLI], KC_TX)->key_updates, 0);
	/* nothing went out and the session goes on */
	exchange(&p, 30000, 30000, 71);
	cr_assert_eq(ev_count(&p.ev[SRV], KC_EV_PEER_KEY_UPDATE), 0);
	tls_pair_close(&p);
}

/* ====================================================================== */
/* 7. Handshake messages across records.                                  */
/* ====================================================================== */

struct nst_split {
	char name[48];
	size_t tlen;                /* ticket length */
	uint8_t fill;
	size_t cut[2];              /* record boundaries (0: none) */
};

static struct nst_split nst_splits[] = {
	{ "whole", 200, 0xab, { 0, 0 } },
	{ "in the body", 200, 0xab, { 50, 0 } },
	{ "in the header", 200, 0xab, { 2, 0 } },
	{ "after the header", 200, 0xab, { 4, 0 } },
	{ "three records", 200, 0xab, { 1, 100 } },
	{ "larger than a record", 20000, 0x5c, { 0, 0 } },
	/* BUG (core/conn.c, on_handshake): the second record starts with
	 * byte 24 (ticket bytes), so the channel, like the kernel, which only
	 * looks at the first byte, pauses as if for a KeyUpdate.  conn knows
	 * it is a continuation, accepts it, then reads on, gets EKEYEXPIRED
	 * and fails with "the kernel paused on a KeyUpdate that was never
	 * delivered": a legitimate peer's large ticket (1 in 256 splits) kills
	 * the connection.  Fix: when a handshake record starting with 24 was
	 * not a KeyUpdate, re-install the current receive key (GnuTLS's
	 * current read key at the channel's rec_seq) to release the pause. */
	{ "continuation starting with 24", 200, 0x18, { 50, 0 } },
	{ "large, continuation starting with 24", 20000, 0x18, { 0, 0 } },
};

ParameterizedTestParameters(conn, nst_split)
{
	return cr_make_param_array(struct nst_split, nst_splits,
				   sizeof nst_splits / sizeof nst_splits[0]);
}

ParameterizedTest(struct nst_split *t, conn, nst_split, .timeout = 10)
{
	static struct tls_pair p;
	static uint8_t nst[20100];
	size_t n = make_nst(nst, t->tlen, t->fill), at = 0;
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);
	struct kc_conn *v = p.c[CLI];

	read_idle(v, "client");
	cr_assert_eq(kc_conn_tickets(v), 2);
	for (int i = 0; i < 2 && t->cut[i]; i++) {
		att_send(a, KC_REC_HANDSHAKE, nst + at, t->cut[i] - at);
		at = t->cut[i];
		read_idle(v, "client");
		cr_assert_eq(kc_conn_tickets(v), 2, "%s: a ticket counted before it was complete",
			     t->name);
	}
	att_send(a, KC_REC_HANDSHAKE, nst + at, n - at);
	att_send(a, KC_REC_DATA, "after", 5);
	expect_data(v, "after", 5, t->name);
	cr_assert_eq(kc_conn_tickets(v), 3, "%s: %u tickets", t->name, kc_conn_tickets(v));
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_TICKET), 3);
	cr_assert_neq(gnutls_session_get_flags(p.s[CLI]) & GNUTLS_SFLAGS_SESSION_TICKET, 0);
	att_expect_silence(a);
	/* the session is intact both ways */
	write_all_conn(v, "still fine", 10, "client");
	att_expect_data(a, "still fine", 10);
	tls_pair_close(&p);
}

/* Two tickets in one record count twice. */
Test(conn, two_nsts_in_one_record, .timeout = 10)
{
	static struct tls_pair p;
	uint8_t rec[600];
	size_t n = make_nst(rec, 100, 1);
	struct attacker *a = hostile_setup(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, CLI);

	n += make_nst(rec + n, 150, 2);
	read_idle(p.c[CLI], "client");
	att_send(a, KC_REC_HANDSHAKE, rec, n);
	att_send(a, KC_REC_DATA, "z", 1);
	expect_data(p.c[CLI], "z", 1, "client");
	cr_assert_eq(kc_conn_tickets(p.c[CLI]), 4);
	cr_assert_eq(ev_count(&p.ev[CLI], KC_EV_TICKET), 4);
	tls_pair_close(&p);
}
/* Automatic key updates at opts.key_update_after records. */
Test(conn, key_update_automatic, .timeout = 10)
{
	struct tls_pair p;
	struct kc_conn_opts o = { .key_update_after = 4 };
	const struct kc_event *e;

	tls_pair_handshake(&p, &TLS13_COMBOS[0]);
	open_conn_opts(&p, CLI, &o);
	open_conn(&p, SRV, false);
	cr_assert_eq(kc_conn_rekey_point(p.c[CLI]), 4);
	exchange(&p, 20 * KC_MAX_PLAINTEXT + 5, 1000, 40);
	settle(&p);
	unsigned n = ev_count(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT);
	cr_assert_geq(n, 4, "only %u automatic key updates for 21 records", n);
	for (unsigned i = 0; i < n; i++) {
		e = ev_nth(&p.ev[CLI], KC_EV_KEY_UPDATE_SENT, i);
		cr_assert(e->automatic);
		cr_assert(!e->requested);
		/* 4 data records and the KeyUpdate itself */
		cr_assert_leq(e->records, 5, "a key protected %llu records",
			      (unsigned long long)e->records);
	}
	check_ku_counts(&p, n, 0, 0, n);
	tls_pair_close(&p);
}


/* TLS 1.2 has no key update: opts.key_update_after closes the session at
 * the limit with KC_E_LIMIT, after sending close_notify. */
Test(conn, tls12_record_limit_closes, .timeout = 10)
{
	struct tls_pair p;
	struct kc_conn_opts o = { .key_update_after = 4 };
	struct kc_err err = { 0 };
	size_t len = 10 * KC_MAX_PLAINTEXT, sent = 0;
	uint8_t *data = malloc(len);
	long long deadline = now_ms() + WAIT_MS;
	ssize_t n;

	cr_assert_not_null(data);
	fill_pattern(data, len, 60);
	tls_pair_handshake(&p, &TLS12_COMBOS[0]);
	open_conn_opts(&p, CLI, &o);
	open_conn(&p, SRV, false);
	for (;;) {
		n = kc_conn_write(p.c[CLI], data + sent, len - sent, &err);
		if (n == KC_CONN_AGAIN) {
			wait_fd(p.fd[CLI], POLLOUT, deadline, "client write");
			continue;
		}
		if (n < 0)
			break;
		sent += (size_t)n;
		cr_assert_leq(sent, 4 * KC_MAX_PLAINTEXT, "more than 4 records under one key");
	}
	cr_assert_eq(err.status, KC_E_LIMIT, "%d: %s", err.status, err.msg);
	cr_assert_not_null(strstr(err.msg, "TLS 1.2"), "%s", err.msg);
	cr_assert(kc_conn_close_sent(p.c[CLI]));
	check_sticky(p.c[CLI], &err);
	expect_data(p.c[SRV], data, sent, "server");
	cr_assert_eq(read_wait(p.c[SRV], data, 16, &err), 0, "no close_notify: %s", err.msg);
	free(data);
	tls_pair_close(&p);
}

/* ---- signals during the handshake --------------------------------------- */

/* (Every test here has .timeout = 10: with another value in the same run,
 * Criterion 2.4's runner leaks 48 bytes per such test, which LeakSanitizer
 * then reports as a failure of the whole binary.) */

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal that is not a stop (here a fast interval timer, as a fuzzer or
 * a profiler sets, installed without SA_RESTART so every blocking call it
 * lands in fails with EINTR) must not end the handshake. */
Test(conn, handshake_waits_out_other_signals, .timeout = 10)
{
	static struct tls_pair p;
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval every = { .it_interval = { 0, 100 }, .it_value = { 0, 100 } };
	struct itimerval off = { 0 };

	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, &old), 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
	for (int i = 0; i < 20; i++) {
		tls_pair_handshake(&p, i % 2 ? &TLS12_COMBOS[0] : &TLS13_COMBOS[0]);
		tls_pair_close(&p);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
}

struct stop_later {
	volatile sig_atomic_t flag;
	int pipe[2];
};

static void *stop_after_50ms(void *arg)
{
	struct stop_later *st = arg;

	usleep(50000);
	st->flag = SIGTERM;
	cr_assert_eq(write(st->pipe[1], "", 1), 1);
	return NULL;
}

/* A stop ends a handshake that waits on a silent peer at once, long
 * before its timeout (the test's own timeout is the bound). */
Test(conn, handshake_ends_on_stop, .timeout = 10)
{
	struct stop_later st = { 0 };
	struct kc_err err = { 0 };
	gnutls_session_t s = NULL;
	pthread_t th;
	int fd[2];

	creds_once();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0);
	cr_assert_eq(pipe(st.pipe), 0);
	struct kc_tls_opts o = { .role = KC_CLIENT, .verify_name = "localhost",
				 .ca_pem = &g_sc.cert_pem, .handshake_timeout_ms = 60000,
				 .stop = &st.flag, .stop_fd = st.pipe[0] };
	cr_assert_eq(pthread_create(&th, NULL, stop_after_50ms, &st), 0);
	cr_assert_eq(kc_tls_handshake(fd[0], &o, g_creds[CLI], &s, &err), -1);
	cr_assert_null(s);
	cr_assert_neq(err.status, KC_E_TIMEOUT, "%s", err.msg);
	cr_assert_eq(pthread_join(th, NULL), 0);
	close(fd[0]);
	close(fd[1]);
	close(st.pipe[0]);
	close(st.pipe[1]);
}

/* ---- record size limits (RFC 8449) ------------------------------------- */

static uint64_t records_now(struct kc_conn *c, enum kc_dir dir)
{
	uint64_t cur, total;
	cr_assert_eq(kc_conn_records(c, dir, &cur, &total), 0);
	return total;
}

/* Each side announces a limit; each sends within the other's, counted in
 * records, and takes the other's records.  TLS 1.3 announces one byte
 * more on the wire (the content type) than it lets through as content. */
ParameterizedTestParameters(conn, record_size_limit_both_ways)
{
	static unsigned vers[] = { KC_VERS_12, KC_VERS_13 };
	return cr_make_param_array(unsigned, vers, 2);
}

ParameterizedTest(unsigned *vers, conn, record_size_limit_both_ways, .timeout = 10)
{
	static struct tls_pair p;
	unsigned t13 = *vers == KC_VERS_13 ? 1 : 0;

	g_rsl[CLI] = 200;
	g_rsl[SRV] = 300;
	tls_pair_handshake_ex(&p, *vers, GNUTLS_CIPHER_AES_128_GCM, NULL, NULL);
	open_conn(&p, CLI, false);
	open_conn(&p, SRV, false);
	const struct kc_record_limits *lc = kc_conn_limits(p.c[CLI]), *ls = kc_conn_limits(p.c[SRV]);
	cr_assert_eq(lc->rx, 200 - t13, "client takes %zu", lc->rx);
	/* TLS 1.2 servers send one byte less (conn.c agreed_limits). */
	cr_assert_eq(ls->tx, 199, "server sends %zu", ls->tx);
	cr_assert_eq(ls->rx, 300 - t13, "server takes %zu", ls->rx);
	cr_assert_eq(lc->tx, 300 - t13, "client sends %zu", lc->tx);
	cr_assert_eq(lc->tx_how, KC_TXLIM_RECORDS);
	cr_assert(lc->rx_exact && !lc->rx_no_pad);

	uint64_t c0 = records_now(p.c[CLI], KC_TX), s0 = records_now(p.c[SRV], KC_TX);
	exchange(&p, 10 * lc->tx, 10 * ls->tx, 7);
	cr_assert_eq(records_now(p.c[CLI], KC_TX) - c0, 10, "client records");
	cr_assert_eq(records_now(p.c[SRV], KC_TX) - s0, 10, "server records");
	tls_pair_close(&p);
}

/* Without an announced limit nothing changes: full records both ways. */
Test(conn, record_size_no_limit, .timeout = 10)
{
	static struct tls_pair p;
	tls_pair_handshake_ex(&p, KC_VERS_13, GNUTLS_CIPHER_AES_128_GCM, NULL, NULL);
	open_conn(&p, CLI, false);
	cr_assert_eq(kc_conn_limits(p.c[CLI])->tx, KC_MAX_PLAINTEXT);
	cr_assert_eq(kc_conn_limits(p.c[CLI])->rx, KC_MAX_PLAINTEXT);
	tls_pair_close(&p);
}

/* A peer that ignores the limit we announced: a record at the limit is
 * taken, one byte over is record_overflow, naming the limit. */
ParameterizedTestParameters(hostile, record_over_announced_limit)
{
	static unsigned vers[] = { KC_VERS_12, KC_VERS_13 };
	return cr_make_param_array(unsigned, vers, 2);
}

ParameterizedTest(unsigned *vers, hostile, record_over_announced_limit, .timeout = 10)
{
	static struct tls_pair p;
	static uint8_t big[KC_MAX_PLAINTEXT];
	unsigned t13 = *vers == KC_VERS_13 ? 1 : 0;

	g_rsl[CLI] = 100;
	struct attacker *a = hostile_setup(&p, *vers, GNUTLS_CIPHER_AES_256_GCM, CLI);
	size_t lim = kc_conn_limits(p.c[CLI])->rx;
	cr_assert_eq(lim, 100 - t13);
	fill_pattern(big, sizeof big, 3);
	att_send(a, KC_REC_DATA, big, lim);
	expect_data(p.c[CLI], big, lim, "client");
	att_send(a, KC_REC_DATA, big, lim + 1);
	char phrase[96];
	snprintf(phrase, sizeof phrase, "a record larger than the %zu bytes we announced", lim);
	expect_fail(p.c[CLI], KC_E_PROTOCOL, phrase, NULL);
	att_expect_alert(a, AL_FATAL, GNUTLS_A_RECORD_OVERFLOW);
	tls_pair_close(&p);
}

