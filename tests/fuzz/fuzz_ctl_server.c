/* tests/fuzz/fuzz_ctl_server.c: libFuzzer target for the server side of
 * the control-socket protocol (core/ctl.c: accept_clients, serve_client,
 * respond, and what STATS, TICKETS and KEYUPDATE report), driven the way
 * hostile local clients would: any bytes, partial and oversized lines,
 * several requests on one connection, half-closed and vanished clients,
 * more clients than the server has slots.
 *
 * Setup: a real session to report on, as fuzz_conn makes it (a GnuTLS
 * handshake on a socketpair with an ephemeral certificate, the victim's
 * side handed to a kc_conn over the user-space channel), and a real
 * kc_ctl_server listening in a private runtime directory.  The harness
 * polls the server's fds and calls kc_ctl_server_ready as a session's
 * event loop does.
 *
 * Input:
 *   byte 0   the session (bits 0-1): TLS 1.3 AES-256-GCM client (it holds
 *            the server's tickets), TLS 1.2 AES-128-GCM server, TLS 1.3
 *            CHACHA20-POLY1305 server (no record limit), TLS 1.3
 *            AES-128-CCM client
 *   then     ops, one byte each: bits 0-2 what, bits 3-7 which client
 *            (32 of them: one more than the server's 31 slots):
 *              0 connect (a new connection; the old one is closed)
 *              1 send: a length byte, then that many bytes
 *              2 send a real request: a byte picks it (STATS, TICKETS,
 *                KEYUPDATE, KEYUPDATE request, with CR LF, version 1's,
 *                a piece of one, with a serving session's id)
 *              3 shut down the writing side
 *              4 close
 *              5 the session's event loop runs once (poll, then
 *                kc_ctl_server_ready)
 *              6 read what the server sent
 *              7 send a long line: a byte k, then 4k bytes of 'A'
 *   At the end the event loop runs until nothing moves, every answer is
 *   read and checked, all clients close, and the server must let go of
 *   all of them.
 *
 * Checks: a client gets exactly one answer, then the end of the stream,
 * when the first 256 bytes it sent hold a line (nothing, and the server
 * keeps waiting, while they do not and it has not closed; an end of
 * stream and nothing else when it closed first); "request too long" when
 * they hold no line end; the answer is the one ctl.h gives for that line
 * (OK only for exactly one of the four requests, CR LF allowed; a NUL
 * byte in the line refused; "unsupported protocol version" for another
 * KTLSCTL/ version; "not a ktlsctl request"; "unknown request"; KEYUPDATE
 * refused on TLS 1.2; a KTLSCTL/1 request refused in version 1's words);
 * an OK answer is the OK line and one line of JSON that the client's
 * parser (kc_ctl_parse_response) reads back into a tree that writes the
 * same JSON and has exactly the documented members in order
 * (core/diag/session_view.h), with the session's values (pid, role, peer,
 * channel, version, cipher, suite, resumed, record counts, limit and
 * limit_used, record sizes, rekey point and what happens there, tickets
 * and every ticket's fields, uptime); key updates reported and done
 * agree; at most
 * 31 clients are held, evicting only when all slots are busy; the server
 * never blocks and ends holding no client. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/ctl.h"
#include "core/diag/view_json.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/limits.h"
#include "core/selfcert.h"
#include "core/ticket.h"

#define CLI 0
#define SRV 1
#define NCLIENTS 32
#define SLOTS (KC_CTL_MAX_FDS - 1)
#define REQ_MAX 256
#define RBUF 20000
#define REUSE_MAX 500

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ctl_server: %s\n", what);
	abort();
}

/* ---- the session ------------------------------------------------------- */

static const struct {
	unsigned vers;
	gnutls_cipher_algorithm_t cipher;
	int victim;
} configs[4] = {
	{ KC_VERS_13, GNUTLS_CIPHER_AES_256_GCM, CLI },
	{ KC_VERS_12, GNUTLS_CIPHER_AES_128_GCM, SRV },
	{ KC_VERS_13, GNUTLS_CIPHER_CHACHA20_POLY1305, SRV },
	{ KC_VERS_13, GNUTLS_CIPHER_AES_128_CCM, CLI },
};

static struct kc_selfcert g_sc;
static struct kc_creds *g_creds[2];
static bool g_fresh;
static bool g_debug;   /* FUZZ_DEBUG=1: say what each client got */

struct session {
	bool live;
	unsigned uses;
	int fd[2];
	gnutls_session_t s[2];
	int victim;
	struct kc_conn *c;
	struct kc_session_info info;
};

static struct session sessions[4];

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

static void session_free(struct session *se)
{
	kc_conn_free(se->c);
	se->c = NULL;
	for (int i = 0; i < 2; i++) {
		if (se->s[i])
			gnutls_deinit(se->s[i]);
		se->s[i] = NULL;
		if (se->fd[i] >= 0)
			close(se->fd[i]);
		se->fd[i] = -1;
	}
	se->live = false;
}

/* The peer's side: throw away what the session sends (KeyUpdates). */
static void peer_drain(struct session *se)
{
	unsigned char b[65536];
	while (recv(se->fd[1 - se->victim], b, sizeof b, MSG_DONTWAIT) > 0)
		;
}

static void session_new(struct session *se, unsigned cfg)
{
	struct hs_side h[2];
	pthread_t th;
	struct kc_err err = { 0 };

	memset(se, 0, sizeof *se);
	se->fd[0] = se->fd[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, se->fd) < 0)
		die("socketpair");
	memset(h, 0, sizeof h);
	for (int i = 0; i < 2; i++) {
		h[i].fd = se->fd[i];
		h[i].creds = g_creds[i];
		h[i].o.role = i == CLI ? KC_CLIENT : KC_SERVER;
		h[i].o.versions = configs[cfg].vers;
		h[i].o.handshake_timeout_ms = 10000;
		h[i].o.ciphers[0] = configs[cfg].cipher;
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
	se->s[CLI] = h[CLI].s;
	se->s[SRV] = h[SRV].s;
	se->victim = configs[cfg].victim;
	struct kc_conn_opts o = {
		.role = se->victim == CLI ? KC_CLIENT : KC_SERVER,
		.kernel = false,
	};
	if (kc_conn_open(se->s[se->victim], se->fd[se->victim], &o, &se->c, &err) < 0)
		die(err.msg);
	fcntl(se->fd[1 - se->victim], F_SETFL, O_NONBLOCK);
	/* A TLS 1.3 client has the server's tickets to read. */
	unsigned char b[256];
	ssize_t n;
	while ((n = kc_conn_read(se->c, b, sizeof b, &err)) > 0)
		;
	if (n != KC_CONN_AGAIN)
		die("the session failed before the test");
	se->info.role = se->victim == CLI ? "client" : "server";
	se->info.peer = se->victim == CLI ? "127.0.0.1:8443" : "[::1]:50000";
	se->info.session = se->s[se->victim];
	se->info.started = time(NULL);
	se->live = true;
}

/* ---- the server and its clients ------------------------------------------ */

static char rt[256];
static struct kc_ctl_server *srv;
static struct sockaddr_un srv_addr = { .sun_family = AF_UNIX };

struct client {
	int fd;                  /* -1: none */
	unsigned char sent[REQ_MAX + 1];
	size_t nsent;            /* bytes sent, in all (sent[] holds the first) */
	bool shut;
	unsigned char r[RBUF];
	size_t nr;
	bool eof, reset;
};

static struct client cl[NCLIENTS];
static bool evict_possible;      /* all slots were busy with a client waiting */
static unsigned connects;        /* connections made by this input */
static unsigned ku_requests;     /* complete KEYUPDATE lines sent */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kc_err err = { 0 };
	const char *f = getenv("FUZZ_CONN_FRESH");
	g_fresh = f && *f && strcmp(f, "0") != 0;
	g_debug = getenv("FUZZ_DEBUG") != NULL;

	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(rt, sizeof rt, "%s/ktlsctl-fuzz-ctl-server.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(rt))
		die("mkdtemp");
	setenv("XDG_RUNTIME_DIR", rt, 1);
	if (kc_ctl_server_open(&srv, &err) < 0)
		die(err.msg);
	snprintf(srv_addr.sun_path, sizeof srv_addr.sun_path, "%s", kc_ctl_server_path(srv));

	if (kc_selfcert_generate(&g_sc, &err) < 0)
		die(err.msg);
	struct kc_tls_opts so = { .role = KC_SERVER, .cert_pem = &g_sc.cert_pem,
				  .key_pem = &g_sc.key_pem };
	struct kc_tls_opts co = { .role = KC_CLIENT, .verify_name = "localhost",
				  .ca_pem = &g_sc.cert_pem };
	if (kc_creds_new(&so, &g_creds[SRV], &err) < 0 || kc_creds_new(&co, &g_creds[CLI], &err) < 0)
		die(err.msg);
	for (int i = 0; i < NCLIENTS; i++)
		cl[i].fd = -1;
	return 0;
}

static void client_reset(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static int server_clients(void)
{
	struct pollfd fds[KC_CTL_MAX_FDS + 8];
	int n = kc_ctl_server_fds(srv, fds, KC_CTL_MAX_FDS);
	if (n < 1 || n > KC_CTL_MAX_FDS)
		die("kc_ctl_server_fds: not 1 to KC_CTL_MAX_FDS fds");
	return n - 1;
}

/* One turn of the session's event loop; true if anything was ready. */
static bool serve(struct session *se)
{
	struct pollfd fds[KC_CTL_MAX_FDS];
	int n = kc_ctl_server_fds(srv, fds, KC_CTL_MAX_FDS);
	if (n < 1 || n > KC_CTL_MAX_FDS)
		die("kc_ctl_server_fds: not 1 to KC_CTL_MAX_FDS fds");
	int r = poll(fds, (nfds_t)n, 0);
	if (r < 0 && errno != EINTR)
		die("poll");
	if (r <= 0)
		return false;
	/* Eviction is allowed only when every slot is busy: with the clients
	 * held and those that may wait in the backlog, more than the slots. */
	if ((fds[0].revents & POLLIN) && (unsigned)(n - 1) + connects > SLOTS)
		evict_possible = true;
	kc_ctl_server_ready(srv, se->c, &se->info, fds, n);
	peer_drain(se);
	if (server_clients() > SLOTS)
		die("the server holds more clients than it has slots");
	return true;
}

static void client_send(struct client *c, const void *p, size_t n)
{
	if (c->fd < 0 || c->shut || n == 0)
		return;
	ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w <= 0)
		return;
	size_t keep = c->nsent < sizeof c->sent ? sizeof c->sent - c->nsent : 0;
	if (keep)
		memcpy(c->sent + c->nsent, p, (size_t)w < keep ? (size_t)w : keep);
	/* KEYUPDATE lines that reach the server whole (for the count). */
	size_t before = c->nsent;
	c->nsent += (size_t)w;
	if (before < REQ_MAX) {
		const unsigned char *nl = memchr(c->sent, '\n',
						 c->nsent < REQ_MAX ? c->nsent : REQ_MAX);
		if (nl && (size_t)(nl - c->sent) >= before &&
		    (size_t)(nl - c->sent) >= 19 && memcmp(c->sent, "KTLSCTL/2 KEYUPDATE", 19) == 0)
			ku_requests++;
	}
}

static bool client_read(struct client *c)
{
	bool moved = false;
	while (c->fd >= 0 && !c->eof) {
		if (c->nr == sizeof c->r)
			die("a client received more than any answer can be");
		ssize_t n = recv(c->fd, c->r + c->nr, sizeof c->r - c->nr, MSG_DONTWAIT);
		if (n > 0) {
			c->nr += (size_t)n;
			moved = true;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			c->eof = true;
			c->reset = n < 0;
			moved = true;
		}
		break;
	}
	return moved;
}

/* ---- what the answer must be --------------------------------------------- */

enum want { W_NOTHING_YET, W_EOF, W_ANSWER };

static enum want expected(const struct client *c, const unsigned char **line, size_t *len)
{
	size_t have = c->nsent < REQ_MAX ? c->nsent : REQ_MAX;
	const unsigned char *nl = memchr(c->sent, '\n', have);
	if (nl) {
		*line = c->sent;
		*len = (size_t)(nl - c->sent);
		if (*len && c->sent[*len - 1] == '\r')
			(*len)--;
		return W_ANSWER;
	}
	if (c->nsent >= REQ_MAX) {
		*line = NULL;   /* too long */
		return W_ANSWER;
	}
	return c->shut ? W_EOF : W_NOTHING_YET;
}

static bool is(const unsigned char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

static bool starts(const unsigned char *p, size_t n, const char *s)
{
	return n >= strlen(s) && memcmp(p, s, strlen(s)) == 0;
}

/* The members of an OK answer, checked in order: `at` is the next one. */
static const struct kc_view *at;

static const struct kc_view *member(const char *key, enum kc_view_kind kind)
{
	if (!at || !at->key || strcmp(at->key, key) != 0) {
		fprintf(stderr, "fuzz_ctl_server: member '%s', expected '%s'\n",
			at && at->key ? at->key : "(none)", key);
		die("an answer's members are not the documented ones, in order");
	}
	if (at->kind != kind) {
		fprintf(stderr, "fuzz_ctl_server: %s is of kind %d, expected %d\n", key, at->kind, kind);
		die("an answer's member of the wrong type");
	}
	const struct kc_view *v = at;
	at = at->next;
	return v;
}

static void want_str(const char *key, const char *want)
{
	const char *v = member(key, KC_VIEW_STRING)->str;
	if (strcmp(v, want) != 0) {
		fprintf(stderr, "fuzz_ctl_server: %s is '%s', expected '%s'\n", key, v, want);
		die("a reported value is not the session's");
	}
}

static uint64_t num(const char *key)
{
	return member(key, KC_VIEW_UINT)->num;
}

static void want_num(const char *key, uint64_t want)
{
	uint64_t v = num(key);
	if (v != want) {
		fprintf(stderr, "fuzz_ctl_server: %s is %" PRIu64 ", expected %" PRIu64 "\n", key,
			v, want);
		die("a reported count is not the session's");
	}
}

static void want_bool(const char *key, bool want)
{
	if (member(key, KC_VIEW_BOOL)->flag != want) {
		fprintf(stderr, "fuzz_ctl_server: %s is %s\n", key, want ? "false" : "true");
		die("a reported flag is not the session's");
	}
}

/* Into an object member: its members are checked next, then `at` goes on
 * after it (object_end). */
static const struct kc_view *object_begin(const char *key)
{
	const struct kc_view *o = member(key, KC_VIEW_OBJECT);
	const struct kc_view *after = at;
	at = o->first;
	return after;
}

static void object_end(const struct kc_view *after, const char *what)
{
	if (at)
		die(what);
	at = after;
}

static unsigned ku_at_start;

static void check_stats(struct session *se, const struct kc_view *tree)
{
	struct kc_conn *c = se->c;
	char b[64];
	gnutls_cipher_algorithm_t ci = kc_conn_cipher(c);
	const struct kc_limit *lim = kc_limit_for(ci);
	const struct kc_record_limits *rl = kc_conn_limits(c);

	at = tree->first;
	want_num("pid", (uint64_t)getpid());
	want_str("role", se->info.role);
	want_str("peer", se->info.peer);
	want_str("channel", kc_conn_channel_name(c));
	want_str("version", gnutls_protocol_get_name(gnutls_protocol_get_version(se->info.session)));
	want_str("cipher", kc_cipher_name(ci));
#ifdef HAVE_GNUTLS_CIPHERSUITE_GET
	want_str("suite", gnutls_ciphersuite_get(se->info.session));
#endif
	want_bool("resumed", false);
	for (int d = 0; d < 2; d++) {
		enum kc_dir dir = d == 0 ? KC_TX : KC_RX;
		uint64_t cur, total;
		kc_conn_records(c, dir, &cur, &total);
		const struct kc_dir_stats *st = kc_conn_stats(c, dir);
		const struct kc_view *after = object_begin(d == 0 ? "tx" : "rx");
		uint64_t rcur = num("records_key");
		uint64_t rtotal = num("records");
		if (rcur > rtotal || rtotal > total || (dir == KC_RX && (rcur != cur || rtotal != total)))
			die("record counts out of step with the session");
		want_num("bytes", st->bytes);
		uint64_t ku = num("key_updates");
		if (dir == KC_RX ? ku != st->key_updates : ku < ku_at_start || ku > st->key_updates)
			die("key updates reported that the session did not do");
		want_num("limit", lim ? lim->records : 0);
		snprintf(b, sizeof b, "%.4f", kc_limit_percent(ci, rcur));
		if (strcmp(member("limit_used", KC_VIEW_NUMBER)->str, b) != 0)
			die("limit_used is not the part of the limit used, with 4 decimals");
		if (dir == KC_TX) {
			want_num("record_size", rl->tx);
			want_str("record_size_by", kc_tx_limit_how_name(rl->tx_how));
		} else {
			want_num("record_size", rl->rx);
			want_bool("record_size_exact", rl->rx_exact);
			want_bool("no_pad", rl->rx_no_pad);
		}
		object_end(after, "members after the last documented one of a direction");
	}
	uint64_t point = kc_conn_rekey_point(c);
	if (point != UINT64_MAX) {
		want_num("rekey_point", point);
		want_str("at_rekey_point", kc_conn_version(c) == KC_TLS13 ? "update" : "close");
	}
	want_num("tickets", kc_conn_tickets(c));
	uint64_t up = num("uptime");
	if (up > (uint64_t)(time(NULL) - se->info.started) + 1)
		die("uptime longer than the session");
	if (at)
		die("members after the last documented one");
}

static void check_tickets(struct session *se, const struct kc_view *tree)
{
	const struct kc_ticket_store *st = kc_conn_ticket_store(se->c);
	char hash[17];

	at = tree->first;
	want_num("count", st->n);
	const struct kc_view *list = member("tickets", KC_VIEW_ARRAY);
	if (at)
		die("members after the ticket list");
	const struct kc_view *t = list->first;
	for (size_t i = 0; i < st->n; i++, t = t->next) {
		const struct kc_ticket_entry *e = &st->e[i];
		if (!t || t->kind != KC_VIEW_OBJECT || t->key)
			die("fewer tickets than the session holds");
		at = t->first;
		want_num("arrived", (uint64_t)e->arrived);
		want_num("lifetime", e->info.lifetime);
		want_num("age_add", e->info.age_add);
		want_num("nonce_len", e->info.nonce_len);
		want_num("length", e->info.ticket_len);
		kc_ticket_format_hash(&e->info, hash);
		want_str("sha256", hash);
		want_bool("in_use", i + 1 == st->n);
		if (e->info.has_max_early_data)
			want_num("max_early_data", e->info.max_early_data);
		if (at)
			die("members after the last documented one of a ticket");
	}
	if (t)
		die("more tickets than the session holds");
}

static unsigned ku_ok;   /* KEYUPDATE answered OK */

static void check_err(const struct client *c, const char *what)
{
	static const char pre[] = "KTLSCTL/2 ERR ";
	if (c->nr < sizeof pre || memcmp(c->r, pre, sizeof pre - 1) != 0 || c->r[c->nr - 1] != '\n' ||
	    memchr(c->r, '\n', c->nr) != c->r + c->nr - 1) {
		fprintf(stderr, "fuzz_ctl_server: answer '%.*s', expected an ERR (%s)\n",
			(int)(c->nr > 300 ? 300 : c->nr), (const char *)c->r, what);
		die("not a one-line ERR answer where one is due");
	}
	for (size_t i = 0; i + 1 < c->nr; i++)
		if (c->r[i] < 0x20 || c->r[i] >= 0x7f)
			die("an ERR message that is not printable ASCII");
	if (what && !memmem(c->r, c->nr, what, strlen(what))) {
		fprintf(stderr, "fuzz_ctl_server: answer '%.*s', expected '%s'\n", (int)c->nr,
			(const char *)c->r, what);
		die("an ERR answer for the wrong reason");
	}
}

static void check_answer(struct session *se, const struct client *c, const unsigned char *line,
			 size_t len)
{
	if (!c->eof)
		die("the server did not close after its answer");
	if (c->nr > KC_CTL_RESPONSE_MAX)
		die("an answer longer than KC_CTL_RESPONSE_MAX");
	if (evict_possible && c->nr == 0)
		return;   /* evicted before its turn: allowed when slots ran out */
	if (!line) {
		check_err(c, "request too long");
		return;
	}
	if (memchr(line, '\0', len)) {
		check_err(c, "not a ktlsctl request");   /* ctl.h has no such request */
		return;
	}
	static const char proto[] = "KTLSCTL/2 ", v1_refusal[] =
		"KTLSCTL/1 ERR this session speaks KTLSCTL/2: ask it with the ktlsctl that "
		"started it\n";
	if (starts(line, len, "KTLSCTL/1 ")) {
		if (!is(c->r, c->nr, v1_refusal))
			die("a version 1 request not refused in version 1's words");
		return;
	}
	if (!starts(line, len, proto)) {
		check_err(c, starts(line, len, "KTLSCTL/") ? "unsupported protocol version"
							    : "not a ktlsctl request");
		return;
	}
	const unsigned char *cmd = line + 10;
	size_t cl_ = len - 10;
	bool stats = is(cmd, cl_, "STATS"), tickets = is(cmd, cl_, "TICKETS");
	bool ku = is(cmd, cl_, "KEYUPDATE") || is(cmd, cl_, "KEYUPDATE request");
	if (!stats && !tickets && !ku) {
		/* A serving session's id (tests/unit/test_ctl.c checks the
		 * reading of requests): a single session refuses it. */
		char words[REQ_MAX + 1];
		struct kc_ctl_req rq;
		memcpy(words, cmd, cl_);
		words[cl_] = '\0';
		check_err(c, kc_ctl_parse_request(words, &rq) == 0 && rq.id ? "give no --session"
									     : "unknown request");
		return;
	}
	if (ku && kc_conn_version(se->c) != KC_TLS13) {
		check_err(c, "not in TLS 1.2");
		return;
	}
	/* OK: one line of JSON, through the client's parser. */
	static const char ok[] = "KTLSCTL/2 OK\n";
	if (c->nr < sizeof ok || !starts(c->r, c->nr, ok) || c->r[c->nr - 1] != '\n' ||
	    memchr(c->r + sizeof ok - 1, '\n', c->nr - sizeof ok) != NULL)
		die("an OK answer that is not the OK line and one line of JSON");
	struct kc_view *tree = NULL;
	struct kc_err err = { 0 };
	if (kc_ctl_parse_response((const char *)c->r, c->nr, 4242, &tree, &err) < 0) {
		fprintf(stderr, "fuzz_ctl_server: %s: '%.*s'\n", err.msg,
			(int)(c->nr > 300 ? 300 : c->nr), (const char *)c->r);
		die("the client's parser refuses the server's answer to a valid request");
	}
	char *json = kc_view_json(tree, NULL);
	size_t jl = c->nr - sizeof ok;   /* without the final line end */
	if (!json || strlen(json) != jl || memcmp(json, c->r + sizeof ok - 1, jl) != 0)
		die("the answer's JSON is not what its tree writes back");
	free(json);
	if (ku) {
		if (tree->first)
			die("members in a KEYUPDATE answer");
		ku_ok++;
	} else if (stats) {
		check_stats(se, tree);
	} else {
		check_tickets(se, tree);
	}
	kc_view_free(tree);
}

/* ---- running an input ----------------------------------------------------- */

static const char *const canned[16] = {
	"KTLSCTL/2 STATS\n", "KTLSCTL/2 TICKETS\n", "KTLSCTL/2 KEYUPDATE\n",
	"KTLSCTL/2 KEYUPDATE request\n", "KTLSCTL/2 STATS\r\n", "KTLSCTL/1 STATS\n",
	"KTLSCTL/2 ST", "ATS\n",
	"KTLSCTL/2 TICKETS 7\n", "KTLSCTL/2 KEYUPDATE 7 request\n", "KTLSCTL/2 KEYUPDATE 07\n",
	"KTLSCTL/2 STATS 7\n", "KTLSCTL/2 TICKETS", " 1\n", "KTLSCTL/2 KEYUPDATE 1\n",
	"KTLSCTL/2 KEYUPDATE 1 2\n",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned cfg = data[0] & 3;
	struct session *se = &sessions[cfg];
	if (se->live && (g_fresh || se->uses >= REUSE_MAX))
		session_free(se);
	if (!se->live)
		session_new(se, cfg);
	se->uses++;
	evict_possible = false;
	connects = 0;
	ku_requests = ku_ok = 0;
	ku_at_start = kc_conn_stats(se->c, KC_TX)->key_updates;

	const uint8_t *p = data + 1, *end = data + size;
	static unsigned char buf[1024];
	while (p < end) {
		unsigned what = *p & 7;
		struct client *c = &cl[*p >> 3];
		p++;
		switch (what) {
		case 0:
			client_reset(c);
			c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (c->fd < 0)
				die("socket");
			if (connect(c->fd, (struct sockaddr *)&srv_addr, sizeof srv_addr) < 0)
				client_reset(c);   /* the backlog is full */
			else
				connects++;
			break;
		case 1: {
			size_t n = p < end ? *p++ : 0;
			if (n > (size_t)(end - p))
				n = (size_t)(end - p);
			client_send(c, p, n);
			p += n;
			break;
		}
		case 2: {
			const char *r = canned[(p < end ? *p++ : 0) & 15];
			client_send(c, r, strlen(r));
			break;
		}
		case 3:
			if (c->fd >= 0 && !c->shut) {
				shutdown(c->fd, SHUT_WR);
				c->shut = true;
			}
			break;
		case 4:
			client_reset(c);
			break;
		case 5:
			serve(se);
			break;
		case 6:
			client_read(c);
			break;
		case 7: {
			size_t n = 4 * (size_t)(p < end ? *p++ : 0);
			memset(buf, 'A', n);
			client_send(c, buf, n);
			break;
		}
		}
	}

	/* The event loop runs until nothing moves. */
	for (int round = 0;; round++) {
		if (round > 200)
			die("the server is still busy after 200 turns of the event loop");
		bool moved = serve(se);
		for (int i = 0; i < NCLIENTS; i++)
			moved |= client_read(&cl[i]);
		if (!moved)
			break;
	}

	for (int i = 0; i < NCLIENTS; i++) {
		struct client *c = &cl[i];
		const unsigned char *line = NULL;
		size_t len = 0;
		if (c->fd < 0)
			continue;
		if (g_debug)
			fprintf(stderr, "fuzz_ctl_server: client %d: sent %zu, got %zu%s: %.*s\n", i,
				c->nsent, c->nr, c->eof ? " and the end" : "",
				(int)(c->nr > 60 ? 60 : c->nr), (const char *)c->r);
		switch (expected(c, &line, &len)) {
		case W_NOTHING_YET:
			if (c->nr)
				die("an answer before a whole request line");
			if (c->eof && !evict_possible)
				die("the server closed on a client still sending its request");
			break;
		case W_EOF:
			if (c->nr)
				die("an answer to a request cut by the end of the stream");
			if (!c->eof)
				die("the server keeps a client that closed without a request");
			break;
		case W_ANSWER:
			check_answer(se, c, line, len);
			break;
		}
	}
	unsigned ku_done = kc_conn_stats(se->c, KC_TX)->key_updates - ku_at_start;
	if (ku_done < ku_ok || ku_done > ku_requests)
		die("key updates done disagree with the KEYUPDATE requests and answers");

	/* Everyone leaves; the server must let go of every client. */
	for (int i = 0; i < NCLIENTS; i++)
		client_reset(&cl[i]);
	for (int round = 0; server_clients() > 0; round++) {
		if (round > 50)
			die("the server holds clients that have all gone");
		serve(se);
	}
	/* Anything queued in the backlog (connected, then closed) is taken
	 * and dropped the same way. */
	while (serve(se))
		;
	if (server_clients() != 0)
		die("the server holds clients that have all gone");
	return 0;
}
