/* core/peercheck.c: checks of a server's behaviour after the handshake
 * (see peercheck.h).  The table at the end is the one list of checks. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/cipher.h"
#include "core/peercheck.h"
#include "core/probe.h"

/* pc_send/pc_read: the server did not move within the timeout. */
#define TIMED_OUT (-5)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

const char *kc_pc_result_name(enum kc_pc_result r)
{
	switch (r) {
	case KC_PC_PASS: return "pass";
	case KC_PC_FAIL: return "fail";
	case KC_PC_NA: return "n/a";
	case KC_PC_UNKNOWN: break;
	}
	return "unknown";
}

/* One run: its options, its report, and whether a connection worked yet
 * (before that, a failure means the server cannot be probed at all). */
struct pc_run {
	const struct kc_pc_opts *o;
	struct kc_pc_report *r;
	bool connected;
};

/* One connection of a check, and what the server did on it. */
struct pc {
	const struct kc_pc_opts *o;
	int fd;
	gnutls_session_t s;
	struct kc_conn *c;
	char why[512];            /* why the user-space channel ("" when none) */
	bool rekey_fallback;      /* on user space because the kernel cannot rekey */
	double handshake_ms;
	unsigned peer_ku;         /* KeyUpdates from the server */
	uint64_t rx_before_ku;    /* data bytes received before its first */
	double ku_at;             /* when that one arrived */
};

static void on_event(void *ctx, const struct kc_event *ev)
{
	struct pc *p = ctx;
	if (ev->kind == KC_EV_PEER_KEY_UPDATE && p->peer_ku++ == 0) {
		p->rx_before_ku = kc_conn_stats(p->c, KC_RX)->bytes;
		p->ku_at = now_ms();
	}
}

/* Close politely (close_notify, best effort) and free. */
static void pc_close(struct pc *p)
{
	if (p->c)
		kc_conn_close(p->c, NULL);
	kc_conn_free(p->c);
	if (p->s)
		gnutls_deinit(p->s);
	if (p->fd >= 0)
		close(p->fd);
	p->c = NULL;
	p->s = NULL;
	p->fd = -1;
}

/* Connect, handshake (resuming from resume when given) and hand over, on
 * the channel connect would use; for a check that updates keys, on the
 * user-space channel when this kernel cannot rekey.  -1 with *err. */
static int pc_open(struct pc_run *run, struct pc *p, bool rekey, const gnutls_datum_t *resume,
		   int *resume_status, struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	enum kc_ktls_mode mode = o->ktls;
	struct kc_soft_opts soft = { .no_rekey = o->soft_no_rekey };
	char peer[KC_ADDRSTR_MAX];

	memset(p, 0, sizeof *p);
	p->o = o;
	p->fd = -1;
	if (rekey && (o->soft_no_rekey ||
		      (mode != KC_KTLS_OFF && kc_probe_kernel_rekey_quietly() == 0))) {
		mode = KC_KTLS_OFF;
		soft.no_rekey = false;
		p->rekey_fallback = true;
	}
	p->fd = kc_tcp_connect(o->hp, o->connect_timeout_ms, peer, err);
	if (p->fd < 0)
		return -1;
	if (o->starttls && kc_starttls_run(p->fd, o->starttls, err) < 0)
		goto fail;
	/* Each record on its way at once, so timings are the server's. */
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	int kernel = kc_conn_choose_channel(p->fd, mode, p->why, sizeof p->why, err);
	if (kernel < 0)
		goto fail;
	struct kc_tls_opts tls = *o->tls;
	tls.stop = o->stop;
	tls.stop_fd = o->stop_fd;
	tls.resume_data = resume;
	tls.resume_status = resume_status;
	double t0 = now_ms();
	if (kc_tls_handshake(p->fd, &tls, o->creds, &p->s, err) < 0)
		goto fail;
	p->handshake_ms = now_ms() - t0;
	struct kc_conn_opts co = {
		.role = KC_CLIENT,
		.kernel = kernel == 1,
		.fallback = mode == KC_KTLS_AUTO,
		.soft = soft,
		.record_size_limit = tls.record_size_limit != 0,
		.on_event = on_event,
		.event_ctx = p,
	};
	if (kc_conn_open(p->s, p->fd, &co, &p->c, err) < 0)
		goto fail;
	if (kc_conn_fallback_reason(p->c))
		snprintf(p->why, sizeof p->why, "%s", kc_conn_fallback_reason(p->c));
	if (!run->connected) {
		struct kc_pc_report *r = run->r;
		snprintf(r->peer, sizeof r->peer, "%s", peer);
		kc_tls_describe(p->s, r->session, sizeof r->session);
		snprintf(r->channel, sizeof r->channel, "%s", kc_conn_channel_name(p->c));
		run->connected = true;
	}
	return 0;
fail:
	pc_close(p);
	return -1;
}

static bool stopped(const struct kc_pc_opts *o)
{
	return o->stop && *o->stop;
}

/* Wait until fd is ready for events (or has our pending bytes to push),
 * or the deadline passes or a stop comes: false then. */
static bool pc_wait(struct pc *p, short events, double deadline)
{
	for (;;) {
		double left = deadline - now_ms();
		if (left <= 0 || stopped(p->o))
			return false;
		struct pollfd pf[2] = {
			{ .fd = p->fd, .events = events },
			{ .fd = p->o->stop ? p->o->stop_fd : -1, .events = POLLIN },
		};
		if (kc_conn_tx_pending(p->c))
			pf[0].events |= POLLOUT;
		int n = poll(pf, 2, (int)left + 1);
		if (pf[0].revents || (n < 0 && errno != EINTR))
			return true;     /* the next call says what happened */
	}
}

/* Send len bytes and push them out: 0, TIMED_OUT or -1 with *err. */
static int pc_send(struct pc *p, const void *buf, size_t len, struct kc_err *err)
{
	double deadline = now_ms() + p->o->timeout_ms;
	const unsigned char *b = buf;

	while (len > 0) {
		ssize_t n = kc_conn_write(p->c, b, len, err);
		if (n == KC_CONN_AGAIN) {
			if (!pc_wait(p, POLLOUT, deadline))
				return TIMED_OUT;
			continue;
		}
		if (n < 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	for (;;) {
		int rc = kc_conn_flush(p->c, err);
		if (rc != KC_CONN_AGAIN)
			return rc;
		if (!pc_wait(p, POLLOUT, deadline))
			return TIMED_OUT;
	}
}

/* Wait for the server's data and take all that is there: bytes (> 0),
 * 0 at its close_notify (or its close after ours), TIMED_OUT, or -1 with
 * *err.  An end after data is left for the next call to report. */
static ssize_t pc_read(struct pc *p, struct kc_err *err)
{
	double deadline = now_ms() + p->o->timeout_ms;
	unsigned char buf[KC_MAX_PLAINTEXT];
	size_t got = 0;

	for (;;) {
		ssize_t n = kc_conn_read(p->c, buf, sizeof buf, err);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (got)
			return (ssize_t)got;
		if (n != KC_CONN_AGAIN)
			return n;
		if (!pc_wait(p, POLLIN, deadline))
			return TIMED_OUT;
	}
}

/* The request, then the answer: as pc_read. */
static ssize_t pc_exchange(struct pc *p, struct kc_err *err)
{
	int rc = pc_send(p, p->o->request, p->o->request_len, err);
	return rc < 0 ? rc : pc_read(p, err);
}

static void set(struct kc_pc_outcome *out, enum kc_pc_result result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set(struct kc_pc_outcome *out, enum kc_pc_result result, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof out->reason, fmt, ap);
	va_end(ap);
	out->result = result;
}

/* What the server did instead of sending data (rc as pc_read's). */
static const char *said(const struct pc *p, ssize_t rc, const struct kc_err *e, char *buf,
			size_t len)
{
	if (rc == TIMED_OUT)
		snprintf(buf, len, "nothing came back within %g s", p->o->timeout_ms / 1000.0);
	else if (rc == 0)
		snprintf(buf, len, "the server closed the connection (close_notify) without data");
	else
		snprintf(buf, len, "%.*s", (int)len - 1, e->msg);
	return buf;
}

static bool tls13(const struct pc *p)
{
	return kc_conn_version(p->c) == KC_TLS13;
}

static const char *version_name(const struct pc *p)
{
	return tls13(p) ? "TLS 1.3" : "TLS 1.2";
}

/* ------------------------------------------------------------ the checks */

/* Whether this kernel would take the session's keys both ways (asked on
 * fresh loopback sockets, core/probe.h), said in buf. */
static void kernel_fit(const struct pc *p, char *buf, size_t len)
{
	static const enum kc_dir dirs[] = { KC_TX, KC_RX };
	int id = kc_cipher_kernel_id(kc_conn_cipher(p->c));
	char name[32];

	for (size_t i = 0; i < 2; i++) {
		struct kc_err e = { 0 };
		int sys = 0;
		int rc = kc_probe_kernel_key(kc_conn_version(p->c), (uint16_t)id, dirs[i], &sys, &e);
		if (rc < 0) {
			snprintf(buf, len, "%.*s", (int)len - 1, e.msg);
			return;
		}
		if (rc == 0) {
			snprintf(buf, len, "this kernel refuses it for %s: %s",
				 dirs[i] == KC_TX ? "sending" : "receiving",
				 kc_errno_name(sys, name, sizeof name));
			return;
		}
	}
	snprintf(buf, len, "this kernel could carry it");
}

static int check_ktls(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	struct pc p;
	char fit[KC_PC_REASON_MAX];

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	const char *cipher = kc_cipher_name(kc_conn_cipher(p.c));
	if (kc_conn_channel_kind(p.c) == KC_CHANNEL_KERNEL) {
		set(out, KC_PC_PASS, "%s %s runs on the kernel channel (kTLS both ways)",
		    version_name(&p), cipher);
	} else if (p.why[0]) {
		set(out, KC_PC_NA, "%s %s runs on the user-space channel: %s", version_name(&p),
		    cipher, p.why);
	} else {
		kernel_fit(&p, fit, sizeof fit);
		set(out, KC_PC_NA, "%s %s runs on the user-space channel: --ktls off given (%s)",
		    version_name(&p), cipher, fit);
	}
	pc_close(&p);
	return 0;
}

/* The KeyUpdate checks: n KeyUpdates in a row (the first with
 * update_requested when requested), then the request; then the answer. */
static int keyupdates(struct pc_run *run, struct kc_pc_outcome *out, unsigned n, bool requested,
		      struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	char what[64], buf[KC_PC_REASON_MAX];

	if (pc_open(run, &p, true, NULL, NULL, err) < 0)
		return -1;
	if (!tls13(&p)) {
		set(out, KC_PC_NA, "TLS 1.2 has no KeyUpdate");
		goto out;
	}
	const char *note = p.rekey_fallback ? " (on the user-space channel: this kernel cannot "
					      "update kTLS keys)" : "";
	if (n == 1)
		snprintf(what, sizeof what, "KeyUpdate(%s)",
			 requested ? "update_requested" : "update_not_requested");
	else
		snprintf(what, sizeof what, "%u KeyUpdates", n);
	/* One flight: corked, nothing leaves before the request is queued
	 * too, so a server that stops at the ninth (GnuTLS) cannot reset the
	 * connection under our later sends and hide its alert. */
	setsockopt(p.fd, IPPROTO_TCP, TCP_CORK, &(int){ 1 }, sizeof(int));
	double t0 = now_ms();
	unsigned sent = 0;
	while (sent < n && kc_conn_key_update(p.c, requested && sent == 0, &e) == 0)
		sent++;
	ssize_t rc = sent < n ? -1 : pc_send(&p, run->o->request, run->o->request_len, &e);
	setsockopt(p.fd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int));
	if (rc == 0)
		rc = pc_read(&p, &e);
	double ms = now_ms() - t0;
	size_t len = run->o->request_len;

	if (sent < n)
		set(out, KC_PC_FAIL, "sending KeyUpdate %u of %u failed: %s%s", sent + 1, n, e.msg,
		    note);
	else if (rc > 0 && !requested)
		set(out, KC_PC_PASS, "sent %s and %zu bytes: %zd bytes came back after %.1f ms%s",
		    what, len, rc, ms, note);
	else if (rc > 0 && p.peer_ku && p.rx_before_ku == 0)
		set(out, KC_PC_PASS, "sent %s and %zu bytes: the server's KeyUpdate came after "
		    "%.1f ms, before its %zd bytes of data%s", what, len, p.ku_at - t0, rc, note);
	else if (rc > 0 && p.peer_ku)
		set(out, KC_PC_FAIL, "sent %s and %zu bytes: the server's KeyUpdate came only "
		    "after %llu bytes of its data%s", what, len,
		    (unsigned long long)p.rx_before_ku, note);
	else if (rc > 0)
		set(out, KC_PC_FAIL, "sent %s and %zu bytes: %zd bytes of data came back after "
		    "%.1f ms without the server's KeyUpdate before them%s", what, len, rc, ms,
		    note);
	else if (n == KC_PC_KU_BURST && rc == -1 && kc_conn_peer_alert(p.c) >= 0)
		/* A server may bound the KeyUpdates it takes (GnuTLS: 8 a
		 * second); a named alert is that limit, not a crash. */
		set(out, KC_PC_PASS, "sent %s and %zu bytes: the server refused them with "
		    "alert '%s' after %.1f ms (it limits KeyUpdates)%s", what, len,
		    kc_alert_name(kc_conn_peer_alert(p.c), buf, sizeof buf), ms, note);
	else if (n == KC_PC_KU_BURST && rc == TIMED_OUT)
		/* Slow or hung: a server may take its time over each one
		 * (s_server -www sleeps a second after each). */
		set(out, KC_PC_UNKNOWN, "sent %s and %zu bytes: nothing came back within %g s "
		    "(still working through them, or hung: a longer --timeout tells)%s", what,
		    len, run->o->timeout_ms / 1000.0, note);
	else
		set(out, KC_PC_FAIL, "sent %s and %zu bytes: %s%s", what, len,
		    said(&p, rc, &e, buf, sizeof buf), note);
out:
	pc_close(&p);
	return 0;
}

static int check_keyupdate(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	return keyupdates(run, out, 1, true, err);
}

static int check_keyupdate_unrequested(struct pc_run *run, struct kc_pc_outcome *out,
				       struct kc_err *err)
{
	return keyupdates(run, out, 1, false, err);
}

static int check_keyupdate_repeat(struct pc_run *run, struct kc_pc_outcome *out,
				  struct kc_err *err)
{
	return keyupdates(run, out, KC_PC_KU_REPEAT, false, err);
}

static int check_keyupdate_burst(struct pc_run *run, struct kc_pc_outcome *out,
				 struct kc_err *err)
{
	return keyupdates(run, out, KC_PC_KU_BURST, false, err);
}

static int check_close_notify(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	char buf[KC_PC_REASON_MAX];

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	double t0 = now_ms();
	ssize_t rc = kc_conn_close(p.c, &e);
	/* Data may still come (TLS 1.3 half-close): read to the end. */
	while (rc >= 0 && (rc = pc_read(&p, &e)) > 0)
		;
	double ms = now_ms() - t0;
	if (rc == 0 && !kc_conn_close_unanswered(p.c))
		set(out, KC_PC_PASS, "sent close_notify: the server answered with its own after "
		    "%.1f ms", ms);
	else if (rc == 0)
		set(out, KC_PC_FAIL, "sent close_notify: the server closed the connection after "
		    "%.1f ms without its own", ms);
	else if (rc == TIMED_OUT)
		set(out, KC_PC_FAIL, "sent close_notify: no close_notify came back within %g s",
		    run->o->timeout_ms / 1000.0);
	else
		set(out, KC_PC_FAIL, "sent close_notify: %s", said(&p, rc, &e, buf, sizeof buf));
	pc_close(&p);
	return 0;
}

static int check_half_close(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	char buf[KC_PC_REASON_MAX];
	size_t got = 0, len = run->o->request_len;
	ssize_t rc;

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	if (!tls13(&p)) {
		set(out, KC_PC_NA, "TLS 1.2 has no half-close (a close_notify ends both ways)");
		goto out;
	}
	double t0 = now_ms();
	rc = pc_send(&p, run->o->request, len, &e);
	if (rc == 0)
		rc = kc_conn_close(p.c, &e);
	while (rc >= 0 && (rc = pc_read(&p, &e)) > 0)
		got += (size_t)rc;
	double ms = now_ms() - t0;
	if (got && rc == 0 && !kc_conn_close_unanswered(p.c))
		set(out, KC_PC_PASS, "sent %zu bytes and close_notify at once: %zu bytes came back "
		    "after it, then the server's close_notify (%.1f ms)", len, got, ms);
	else if (got)
		set(out, KC_PC_PASS, "sent %zu bytes and close_notify at once: %zu bytes came back "
		    "after it (%.1f ms), then: %s", len, got, ms,
		    rc == 0 ? "the server closed without close_notify" : said(&p, rc, &e, buf,
									      sizeof buf));
	else if (rc == 0)
		set(out, KC_PC_FAIL, "sent %zu bytes and close_notify at once: the server closed "
		    "after %.1f ms without sending data", len, ms);
	else
		set(out, KC_PC_FAIL, "sent %zu bytes and close_notify at once: %s", len,
		    said(&p, rc, &e, buf, sizeof buf));
out:
	pc_close(&p);
	return 0;
}

static int check_tickets(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	char buf[KC_PC_REASON_MAX], early[32];

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	if (!tls13(&p)) {
		set(out, KC_PC_NA, "TLS 1.2 has no tickets after the handshake");
		goto out;
	}
	/* Servers send their tickets before the answer to our request. */
	ssize_t rc = pc_exchange(&p, &e);
	const struct kc_ticket_store *st = kc_conn_ticket_store(p.c);
	const struct kc_ticket_entry *last = kc_ticket_store_latest(st);
	unsigned n = kc_conn_tickets(p.c);
	if (rc > 0)
		snprintf(buf, sizeof buf, "%zd bytes of data came back", rc);
	else
		said(&p, rc, &e, buf, sizeof buf);
	if (n == 0)
		set(out, KC_PC_FAIL, "no NewSessionTicket after the handshake (by the time %s)",
		    buf);
	else if (!last)
		set(out, KC_PC_FAIL, "%u NewSessionTicket%s after the handshake, none well-formed",
		    n, n == 1 ? "" : "s");
	else {
		const struct kc_ticket_info *t = &last->info;
		if (t->has_max_early_data)
			snprintf(early, sizeof early, "%u", t->max_early_data);
		else
			snprintf(early, sizeof early, "none");
		set(out, t->lifetime ? KC_PC_PASS : KC_PC_FAIL,
		    "%u NewSessionTicket%s after the handshake; the last: lifetime %u s%s, "
		    "age_add %s, max_early_data %s", n, n == 1 ? "" : "s", t->lifetime,
		    t->lifetime ? "" : " (unusable)", t->age_add ? "set" : "zero", early);
	}
out:
	pc_close(&p);
	return 0;
}

static int check_resume(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	gnutls_datum_t data = { 0 };
	char buf[KC_PC_REASON_MAX];
	int status = 1;

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	ssize_t rc = pc_exchange(&p, &e);
	bool t13 = tls13(&p);
	const char *what = t13 ? "ticket" : "session";
	double first_ms = p.handshake_ms;
	/* Under TLS 1.3, asking GnuTLS before a ticket came would make it
	 * read the socket, which is the channel's now. */
	if (t13 && !(gnutls_session_get_flags(p.s) & GNUTLS_SFLAGS_SESSION_TICKET)) {
		set(out, KC_PC_FAIL, "no ticket came on the first connection (by the time %s): "
		    "nothing to resume with",
		    rc > 0 ? "data came back" : said(&p, rc, &e, buf, sizeof buf));
		pc_close(&p);
		return 0;
	}
	int grc = gnutls_session_get_data2(p.s, &data);
	pc_close(&p);
	if (grc < 0) {
		set(out, KC_PC_UNKNOWN, "cannot take the session from GnuTLS: %s",
		    gnutls_strerror(grc));
		return 0;
	}
	int orc = pc_open(run, &p, false, &data, &status, err);
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	if (orc < 0)
		return -1;
	if (status < 0)
		set(out, KC_PC_UNKNOWN, "GnuTLS could not offer the saved %s: %s", what,
		    gnutls_strerror(status));
	else if (gnutls_session_is_resumed(p.s))
		set(out, KC_PC_PASS, "a second connection resumed with the first's %s (handshake "
		    "%.1f ms, the first's %.1f ms)", what, p.handshake_ms, first_ms);
	else
		set(out, KC_PC_FAIL, "a second connection offered the first's %s: the server did a "
		    "full handshake", what);
	pc_close(&p);
	return 0;
}

/* The checks, in the order they run: the one list (--list, --only, the
 * man page's PROBE section follow it). */
static const struct check {
	const char *name;
	const char *summary;
	int (*run)(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err);
} checks[] = {
	{ "ktls", "the session runs on the kernel channel (kTLS) on this machine",
	  check_ktls },
	{ "keyupdate", "the server answers KeyUpdate(update_requested) with its own, "
	  "before its data", check_keyupdate },
	{ "keyupdate-unrequested", "data flows both ways after KeyUpdate(update_not_requested)",
	  check_keyupdate_unrequested },
	{ "keyupdate-repeat", "data flows both ways after 4 KeyUpdates in a row",
	  check_keyupdate_repeat },
	{ "keyupdate-burst", "the server survives 100 KeyUpdates in one flight, or refuses "
	  "them with an alert", check_keyupdate_burst },
	{ "close-notify", "the server answers our close_notify with its own",
	  check_close_notify },
	{ "half-close", "after our request and close_notify, the server still sends "
	  "(TLS 1.3)", check_half_close },
	{ "tickets", "NewSessionTickets after the handshake: count, lifetime, age_add, "
	  "max_early_data", check_tickets },
	{ "resume", "a second connection resumes with the first's ticket (or session)",
	  check_resume },
};

#define NCHECKS (sizeof checks / sizeof checks[0])
_Static_assert(NCHECKS <= KC_PC_MAX, "KC_PC_MAX holds every check");
_Static_assert(KC_PC_KU_REPEAT == 4 && KC_PC_KU_BURST == 100, "the summaries say 4 and 100");

size_t kc_pc_count(void)
{
	return NCHECKS;
}

const char *kc_pc_name(size_t i)
{
	return i < NCHECKS ? checks[i].name : NULL;
}

const char *kc_pc_summary(size_t i)
{
	return i < NCHECKS ? checks[i].summary : NULL;
}

int kc_pc_index(const char *name, size_t len)
{
	for (size_t i = 0; i < NCHECKS; i++)
		if (strlen(checks[i].name) == len && strncmp(checks[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

int kc_peercheck_run(const struct kc_pc_opts *o, struct kc_pc_report *r, struct kc_err *err)
{
	struct pc_run run = { .o = o, .r = r };

	memset(r, 0, sizeof *r);
	for (size_t i = 0; i < NCHECKS; i++) {
		if (o->only && !(o->only & 1u << i))
			continue;
		if (stopped(o))
			return kc_err_set(err, KC_E_IO, "interrupted");
		struct kc_pc_outcome *out = &r->out[r->n++];
		struct kc_err e = { 0 };
		double t0 = now_ms();
		out->name = checks[i].name;
		if (checks[i].run(&run, out, &e) < 0) {
			if (!run.connected)
				return kc_err_set(err, e.status, "%s", e.msg);
			set(out, KC_PC_UNKNOWN, "could not connect for this check: %s", e.msg);
		}
		out->elapsed_ms = now_ms() - t0;
		if (out->result == KC_PC_FAIL)
			r->failed++;
	}
	return 0;
}
