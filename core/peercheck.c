/* core/peercheck.c: checks of a server's behaviour after the handshake
 * (see peercheck.h).  The table at the end is the one list of checks. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
	bool user_space_forced;   /* on user space for the check's sake (pc_how) */
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

/* How a check wants its connection; all zero: as connect would make it. */
struct pc_how {
	bool rekey;                      /* it updates keys (see pc_open) */
	bool user_space;                 /* it must see each record: user space */
	bool pad;                        /* TLS 1.3 data records padded to the limit */
	const struct kc_tls_opts *tls;   /* instead of the options' */
	const gnutls_datum_t *resume;    /* a saved session to offer */
	int *resume_status;
};

/* Connect, handshake (resuming from how->resume when given) and hand over,
 * on the channel connect would use; for a check that updates keys, on the
 * user-space channel when this kernel cannot rekey; for one that must see
 * each record or pad them, on the user-space channel always.  -1 with
 * *err. */
static int pc_open_how(struct pc_run *run, struct pc *p, const struct pc_how *how,
		       struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	enum kc_ktls_mode mode = o->ktls;
	struct kc_soft_opts soft = { .no_rekey = o->soft_no_rekey, .pad_data = how->pad };
	char peer[KC_ADDRSTR_MAX];

	memset(p, 0, sizeof *p);
	p->o = o;
	p->fd = -1;
	if (how->rekey && (o->soft_no_rekey ||
			   (mode != KC_KTLS_OFF && kc_probe_kernel_rekey_quietly() == 0))) {
		mode = KC_KTLS_OFF;
		soft.no_rekey = false;
		p->rekey_fallback = true;
	}
	if (how->user_space || how->pad) {
		p->user_space_forced = mode != KC_KTLS_OFF;
		mode = KC_KTLS_OFF;
	}
	p->fd = kc_tcp_connect(o->hp, o->connect_timeout_ms, peer, err);
	if (p->fd < 0)
		return -1;
	if (!run->connected)
		snprintf(run->r->peer, sizeof run->r->peer, "%s", peer);
	if (o->starttls && kc_starttls_run(p->fd, o->starttls, err) < 0)
		goto fail;
	/* Each record on its way at once, so timings are the server's. */
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	int kernel = kc_conn_choose_channel(p->fd, mode, p->why, sizeof p->why, err);
	if (kernel < 0)
		goto fail;
	struct kc_tls_opts tls = how->tls ? *how->tls : *o->tls;
	tls.stop = o->stop;
	tls.stop_fd = o->stop_fd;
	tls.resume_data = how->resume;
	tls.resume_status = how->resume_status;
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

static int pc_open(struct pc_run *run, struct pc *p, bool rekey, const gnutls_datum_t *resume,
		   int *resume_status, struct kc_err *err)
{
	struct pc_how how = { .rekey = rekey, .resume = resume, .resume_status = resume_status };
	return pc_open_how(run, p, &how, err);
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

	if (sent < n && n == KC_PC_KU_BURST && kc_conn_peer_alert(p.c) >= 0)
		/* Ours came in parts (slow to make), and the server's alert
		 * was waiting under the reset of a later one. */
		set(out, KC_PC_PASS, "sent %s: the server refused them with alert '%s' after "
		    "%.1f ms, before KeyUpdate %u (it limits KeyUpdates)%s", what,
		    kc_alert_name(kc_conn_peer_alert(p.c), buf, sizeof buf), ms, sent + 1, note);
	else if (sent < n)
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

/* ------------------------------------------------- echo and record sizes */

/* The bytes the echo-based checks send: lines of 64, so that line-based
 * echo servers answer them too. */
static unsigned char pattern(uint64_t i)
{
	return i % 64 == 63 ? '\n' : (unsigned char)('a' + i % 26);
}

/* A flow of pattern bytes out and its echo back (pc_echo). */
struct pc_flow {
	uint64_t sent, got;
	bool differs;             /* an echoed byte was not the one sent */
	uint64_t differs_at;
	uint64_t ku_got;          /* got when the server's first KeyUpdate came */
};

#define ECHO_DONE 1
/* Echo ahead of us by at most this: a server that echoes as it reads
 * never has both directions full. */
#define ECHO_WINDOW (1u << 20)

/* Send total bytes of the pattern in writes of up to chunk bytes while
 * reading back the echo, each wait bounded by the timeout (counted again
 * whenever bytes move).  With until_ku, stop sending once the server has
 * updated its keys, and read back what was sent.  ECHO_DONE when every
 * byte sent came back (f says whether intact), else as pc_read (0: the
 * server closed). */
static ssize_t pc_echo(struct pc *p, uint64_t total, size_t chunk, bool until_ku,
		       struct pc_flow *f, struct kc_err *err)
{
	static unsigned char out[KC_MAX_PLAINTEXT], in[KC_MAX_PLAINTEXT];
	double deadline = now_ms() + p->o->timeout_ms;

	memset(f, 0, sizeof *f);
	if (chunk > sizeof out)
		chunk = sizeof out;
	for (;;) {
		bool moved = false;
		if (until_ku && p->peer_ku) {
			if (!f->ku_got)
				f->ku_got = f->got ? f->got : 1;
			total = f->sent;
		}
		if (f->got >= total && !kc_conn_tx_pending(p->c))
			return ECHO_DONE;
		if (f->sent < total && f->sent - f->got < ECHO_WINDOW) {
			size_t n = total - f->sent < chunk ? (size_t)(total - f->sent) : chunk;
			for (size_t i = 0; i < n; i++)
				out[i] = pattern(f->sent + i);
			ssize_t w = kc_conn_write(p->c, out, n, err);
			if (w > 0) {
				f->sent += (uint64_t)w;
				moved = true;
			} else if (w != KC_CONN_AGAIN) {
				return -1;
			}
		} else if (kc_conn_tx_pending(p->c) && kc_conn_flush(p->c, err) == -1) {
			return -1;
		}
		ssize_t r = kc_conn_read(p->c, in, sizeof in, err);
		if (r > 0) {
			for (size_t i = 0; i < (size_t)r && !f->differs; i++)
				if (in[i] != pattern(f->got + i)) {
					f->differs = true;
					f->differs_at = f->got + i;
				}
			f->got += (uint64_t)r;
			moved = true;
		} else if (r != KC_CONN_AGAIN) {
			return r;
		}
		if (moved) {
			deadline = now_ms() + p->o->timeout_ms;
			continue;
		}
		if (!pc_wait(p, f->sent < total ? POLLIN | POLLOUT : POLLIN, deadline))
			return TIMED_OUT;
	}
}

/* Read until more than want bytes came or the server stops: the bytes,
 * or (none came) as pc_read. */
static ssize_t pc_read_more(struct pc *p, size_t want, struct kc_err *err)
{
	size_t got = 0;
	ssize_t rc;

	while ((rc = pc_read(p, err)) > 0) {
		got += (size_t)rc;
		if (got > want)
			break;
	}
	return got ? (ssize_t)got : rc;
}

/* The note of a check that runs on the user-space channel for its own
 * sake, when the options would have had the kernel's. */
static const char *user_space_note(const struct pc *p, const char *why)
{
	static char note[160];
	if (!p->user_space_forced)
		return "";
	snprintf(note, sizeof note, " (on the user-space channel: %s)", why);
	return note;
}

static int check_record_size_limit(struct pc_run *run, struct kc_pc_outcome *out,
				   struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	struct kc_tls_opts tls = *o->tls;
	struct kc_err e = { 0 };
	struct pc p;
	char buf[KC_PC_REASON_MAX];

	if (!tls.record_size_limit)
		tls.record_size_limit = KC_PC_RSL_DEFAULT;
	struct pc_how how = { .user_space = true, .tls = &tls };
	if (pc_open_how(run, &p, &how, err) < 0)
		return -1;
	const char *note = user_space_note(&p, "it sees each record, the kernel merges them");
	size_t limit = kc_conn_limits(p.c)->rx;
	unsigned announced = tls.record_size_limit;
	if (limit >= KC_MAX_PLAINTEXT) {
		set(out, KC_PC_NA, "announced a record_size_limit of %u: the server did not take "
		    "the extension (RFC 8449), so records up to 16384 bytes are its right%s",
		    announced, note);
		goto out;
	}
	/* The server must send more than the limit: an echo of a line four
	 * times as long, or the answer to the request. */
	size_t len = o->request_len;
	const void *req = o->request;
	static unsigned char line[4 * KC_MAX_PLAINTEXT];
	if (o->talk == KC_PC_TALK_LINE) {
		len = 4 * limit < sizeof line ? 4 * limit : sizeof line;
		for (size_t i = 0; i < len; i++)
			line[i] = i + 1 == len ? '\n' : pattern(i) == '\n' ? '-' : pattern(i);
		req = line;
	}
	double t0 = now_ms();
	ssize_t rc = pc_send(&p, req, len, &e);
	/* An echo is read whole, so the count shown does not vary. */
	if (rc == 0)
		rc = pc_read_more(&p, o->talk == KC_PC_TALK_LINE ? len - 1 : limit, &e);
	double ms = now_ms() - t0;
	if (rc > (ssize_t)limit)
		set(out, KC_PC_PASS, "announced a record_size_limit of %u (%zu bytes of content) "
		    "and sent %zu bytes: %zd bytes came back, every record within the limit "
		    "(%.1f ms)%s", announced, limit, len, rc, ms, note);
	else if (rc > 0)
		set(out, KC_PC_UNKNOWN, "announced a record_size_limit of %u (%zu bytes of "
		    "content) and sent %zu bytes: only %zd bytes came back, no more than the "
		    "limit (an echo server, or --send with a request of a longer answer, "
		    "tells)%s", announced, limit, len, rc, note);
	else
		set(out, KC_PC_FAIL, "announced a record_size_limit of %u and sent %zu bytes: "
		    "%s%s", announced, len, said(&p, rc, &e, buf, sizeof buf), note);
out:
	pc_close(&p);
	return 0;
}

/* The request of the max-record check: with a line of text, a line of
 * 4 x 2^14 bytes (sent in full records, echoed back); with HTTP, the
 * request with a header that pads it to 2^14 bytes; a --send file as
 * it is.  Its length in *len; NULL when out of memory. */
static unsigned char *max_request(const struct kc_pc_opts *o, size_t *len)
{
	static const char hdr[] = "X-Ktlsctl-Padding: ";
	const char *r = o->request;
	size_t n = o->request_len;
	unsigned char *b;

	if (o->talk == KC_PC_TALK_LINE) {
		*len = 4 * KC_MAX_PLAINTEXT;
		if (!(b = malloc(*len)))
			return NULL;
		for (size_t i = 0; i < *len; i++)
			b[i] = pattern(i);
		return b;
	}
	bool http = o->talk == KC_PC_TALK_HTTP && n >= 4 && n + sizeof hdr + 2 < KC_MAX_PLAINTEXT &&
		    memcmp(r + n - 4, "\r\n\r\n", 4) == 0;
	*len = http ? KC_MAX_PLAINTEXT : n;
	if (!(b = malloc(*len)))
		return NULL;
	if (!http) {
		memcpy(b, r, n);
		return b;
	}
	/* request without its empty line, the header, its value, CRLF CRLF */
	size_t head = n - 2, val = *len - head - (sizeof hdr - 1) - 4;
	memcpy(b, r, head);
	memcpy(b + head, hdr, sizeof hdr - 1);
	memset(b + head + sizeof hdr - 1, 'a', val);
	memcpy(b + *len - 4, "\r\n\r\n", 4);
	return b;
}

/* Part of max-record: one connection, the request in records of
 * 2^14 bytes (or padded up to the limit), the answer read.  Returns the
 * result, with the evidence in buf. */
static enum kc_pc_result max_records(struct pc_run *run, bool pad, char *buf, size_t blen,
				     struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	struct kc_err e = { 0 };
	struct pc p;
	struct pc_how how = { .pad = pad };
	enum kc_pc_result res;
	char why[KC_PC_REASON_MAX];
	size_t len;
	ssize_t rc;

	if (pc_open_how(run, &p, &how, err) < 0) {
		snprintf(buf, blen, "%.*s", (int)blen - 1, err->msg);
		return KC_PC_UNKNOWN;
	}
	if (pad && !tls13(&p)) {
		pc_close(&p);
		snprintf(buf, blen, "TLS 1.2 has no padding");
		return KC_PC_NA;
	}
	double t0 = now_ms();
	if (pad) {
		len = o->request_len;
		rc = pc_send(&p, o->request, len, &e);
		if (rc == 0)
			rc = pc_read(&p, &e);
		double ms = now_ms() - t0;
		size_t tx = kc_conn_limits(p.c)->tx;
		if (rc > 0)
			snprintf(buf, blen, "%zu bytes padded to a %zu-byte inner plaintext: %zd "
				 "bytes came back (%.1f ms)", len, tx + 1, rc, ms);
		else
			snprintf(buf, blen, "%zu bytes padded to a %zu-byte inner plaintext: %s", len,
				 tx + 1, said(&p, rc, &e, why, sizeof why));
		res = rc > 0 ? KC_PC_PASS : KC_PC_FAIL;
	} else if (o->talk == KC_PC_TALK_LINE) {
		struct pc_flow f;
		len = 4 * KC_MAX_PLAINTEXT;
		rc = pc_echo(&p, len, KC_MAX_PLAINTEXT, false, &f, &e);
		double ms = now_ms() - t0;
		if (rc == ECHO_DONE && !f.differs) {
			snprintf(buf, blen, "%zu bytes in records of 16384: echoed intact (%.1f ms)",
				 len, ms);
			res = KC_PC_PASS;
		} else if (rc == ECHO_DONE || (f.differs && f.differs_at == 0)) {
			snprintf(buf, blen, "%zu bytes in records of 16384: the echo differs from "
				 "byte %llu", len, (unsigned long long)f.differs_at);
			res = f.differs_at == 0 ? KC_PC_UNKNOWN : KC_PC_FAIL;
		} else {
			snprintf(buf, blen, "%zu bytes in records of 16384: %llu bytes came back, "
				 "then %s", len, (unsigned long long)f.got,
				 said(&p, rc, &e, why, sizeof why));
			res = KC_PC_FAIL;
		}
	} else {
		unsigned char *req = max_request(o, &len);
		if (!req) {
			pc_close(&p);
			snprintf(buf, blen, "out of memory");
			return KC_PC_UNKNOWN;
		}
		rc = pc_send(&p, req, len, &e);
		free(req);
		if (rc == 0)
			rc = pc_read(&p, &e);
		double ms = now_ms() - t0;
		if (rc > 0)
			snprintf(buf, blen, "a request of %zu bytes%s: %zd bytes came back "
				 "(%.1f ms)", len, len == KC_MAX_PLAINTEXT ? " in one record" : "",
				 rc, ms);
		else
			snprintf(buf, blen, "a request of %zu bytes%s: %s", len,
				 len == KC_MAX_PLAINTEXT ? " in one record" : "",
				 said(&p, rc, &e, why, sizeof why));
		res = rc > 0 ? KC_PC_PASS : KC_PC_FAIL;
	}
	pc_close(&p);
	return res;
}

static int check_max_record(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	char full[KC_PC_REASON_MAX / 2], padded[KC_PC_REASON_MAX / 2];
	enum kc_pc_result a = max_records(run, false, full, sizeof full, err);
	if (a == KC_PC_UNKNOWN && !run->connected)
		return -1;
	enum kc_pc_result b = max_records(run, true, padded, sizeof padded, err);
	enum kc_pc_result r = a == KC_PC_FAIL || b == KC_PC_FAIL ? KC_PC_FAIL
			    : a == KC_PC_UNKNOWN || b == KC_PC_UNKNOWN ? KC_PC_UNKNOWN
			    : KC_PC_PASS;
	set(out, r, "%s; %s%s", full, padded,
	    b == KC_PC_NA || run->o->ktls == KC_KTLS_OFF ? ""
	    : " (padded on the user-space channel: the kernel never pads)");
	return 0;
}

/* -------------------------------------------------------- tickets again */

/* The first connection's session, to resume with: 0 with *data, or the
 * result to report (evidence in out) when there is none. */
static int first_session(struct pc_run *run, struct kc_pc_outcome *out, gnutls_datum_t *data,
			 bool *t13, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	char buf[KC_PC_REASON_MAX];

	if (pc_open(run, &p, false, NULL, NULL, err) < 0)
		return -1;
	ssize_t rc = pc_exchange(&p, &e);
	*t13 = tls13(&p);
	if (*t13 && !(gnutls_session_get_flags(p.s) & GNUTLS_SFLAGS_SESSION_TICKET)) {
		set(out, KC_PC_NA, "no ticket came on the first connection (by the time %s): "
		    "nothing to offer twice",
		    rc > 0 ? "data came back" : said(&p, rc, &e, buf, sizeof buf));
		pc_close(&p);
		return 1;
	}
	int grc = gnutls_session_get_data2(p.s, data);
	pc_close(&p);
	if (grc < 0) {
		set(out, KC_PC_UNKNOWN, "cannot take the session from GnuTLS: %s",
		    gnutls_strerror(grc));
		return 1;
	}
	return 0;
}

/* A connection offering data, then the request and its answer: 0 with
 * whether it resumed in *resumed and the exchange's result (as pc_read's;
 * when not > 0, what happened in why), or -1 with *err when the
 * connection or its handshake failed. */
static int offer(struct pc_run *run, const gnutls_datum_t *data, bool *resumed, ssize_t *xrc,
		 char *why, size_t wlen, struct kc_err *err)
{
	struct kc_err e = { 0 };
	struct pc p;
	int status = 1;
	struct pc_how how = { .resume = data, .resume_status = &status };

	*resumed = false;
	if (pc_open_how(run, &p, &how, err) < 0)
		return -1;
	*resumed = status >= 0 && gnutls_session_is_resumed(p.s);
	*xrc = pc_exchange(&p, &e);
	if (*xrc <= 0)
		said(&p, *xrc, &e, why, wlen);
	pc_close(&p);
	return 0;
}

static int check_ticket_reuse(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	gnutls_datum_t data = { 0 };
	char why[KC_PC_REASON_MAX / 2];
	bool t13, first = false, second = false;
	ssize_t x1 = 0, x2 = 0;
	int frc = first_session(run, out, &data, &t13, err);

	if (frc != 0)
		return frc < 0 ? -1 : 0;
	const char *what = t13 ? "ticket" : "session";
	struct kc_err e = { 0 };
	int o1 = offer(run, &data, &first, &x1, why, sizeof why, &e);
	int o2 = o1 == 0 && x1 > 0 && first
		 ? offer(run, &data, &second, &x2, why, sizeof why, &e) : 0;
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	if (o1 < 0)
		set(out, KC_PC_UNKNOWN, "could not connect to offer the %s: %s", what, e.msg);
	else if (x1 <= 0)
		set(out, KC_PC_UNKNOWN, "the first offer of the %s (resumed: %s): %s", what,
		    first ? "yes" : "no", why);
	else if (!first)
		set(out, KC_PC_NA, "the %s did not resume even once (see the resume check)", what);
	else if (o2 < 0)
		set(out, KC_PC_FAIL, "the %s resumed once; offered again: %s", what, e.msg);
	else if (x2 <= 0)
		set(out, KC_PC_FAIL, "the %s resumed once; offered again, the connection %s: %s",
		    what, second ? "resumed" : "did a full handshake", why);
	else if (second)
		set(out, KC_PC_PASS, "the %s resumed twice, data flowing both times: the server "
		    "takes it more than once (%s)", what,
		    t13 ? "RFC 8446 asks single use only for 0-RTT data"
			: "as TLS 1.2 resumption allows");
	else
		set(out, KC_PC_PASS, "the %s resumed once; offered again, the server did a full "
		    "handshake and data flowed (single-use %ss)", what, what);
	return 0;
}

/* ------------------------------------------------- the server's KeyUpdate */

static int check_server_keyupdate(struct pc_run *run, struct kc_pc_outcome *out,
				  struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	struct kc_err e = { 0 };
	struct pc p;
	struct pc_flow f;
	char buf[KC_PC_REASON_MAX];

	if (pc_open(run, &p, true, NULL, NULL, err) < 0)
		return -1;
	const char *note = p.rekey_fallback ? " (on the user-space channel: this kernel cannot "
					      "update kTLS keys)" : "";
	if (!tls13(&p)) {
		set(out, KC_PC_NA, "TLS 1.2 has no KeyUpdate");
		goto out;
	}
	if (o->talk != KC_PC_TALK_LINE) {
		set(out, KC_PC_NA, "needs an echo server (the default request) to make the server "
		    "send up to %llu bytes", (unsigned long long)o->volume);
		goto out;
	}
	double t0 = now_ms();
	ssize_t rc = pc_echo(&p, o->volume, KC_MAX_PLAINTEXT, true, &f, &e);
	double ms = now_ms() - t0;
	unsigned long long sent = f.sent, got = f.got;
	if (f.differs && f.differs_at == 0)
		set(out, KC_PC_UNKNOWN, "sent %llu bytes: what came back is not their echo (this "
		    "check needs an echo server)%s", sent, note);
	else if (f.differs)
		set(out, KC_PC_FAIL, "sent %llu bytes: the echo differs from byte %llu%s", sent,
		    (unsigned long long)f.differs_at, note);
	else if (rc == ECHO_DONE && p.peer_ku)
		set(out, KC_PC_PASS, "sent %llu bytes: the server updated its keys after %llu bytes "
		    "of its data (%.1f ms), and all %llu bytes came back intact%s", sent,
		    (unsigned long long)p.rx_before_ku, p.ku_at - t0, got, note);
	else if (rc == ECHO_DONE)
		set(out, KC_PC_NA, "sent %llu bytes, all echoed intact: the server did not update "
		    "its keys within them (--volume sets how many)%s", sent, note);
	else
		set(out, KC_PC_FAIL, "sent %llu bytes, %llu bytes came back%s, then %s (%.1f ms)%s",
		    sent, got, p.peer_ku ? " (the server had updated its keys)" : "",
		    said(&p, rc, &e, buf, sizeof buf), ms, note);
out:
	pc_close(&p);
	return 0;
}

/* ---------------------------------------------------- ciphers and TLS 1.2 */

/* One handshake offering only cipher c under version v (KC_VERS_*):
 * 1 accepted, 0 refused by the server, -1 could not tell; why in *e. */
static int try_cipher(struct pc_run *run, const struct kc_cipher *c, unsigned v,
		      struct kc_err *e)
{
	struct kc_tls_opts tls = *run->o->tls;
	struct pc p;

	tls.priority = NULL;
	tls.versions = v;
	tls.ciphers[0] = c->gnutls;
	tls.n_ciphers = 1;
	struct pc_how how = { .tls = &tls };
	if (pc_open_how(run, &p, &how, e) == 0) {
		pc_close(&p);
		return 1;
	}
	return e->status == KC_E_HANDSHAKE ? 0 : -1;
}

/* Whether this kernel takes cipher c under version both ways (asked on
 * fresh loopback sockets): 1 yes, 0 no, -1 cannot tell (no kTLS at all:
 * why in buf, once). */
static int kernel_takes(const struct kc_cipher *c, uint16_t version, char *why, size_t wlen)
{
	static const enum kc_dir dirs[] = { KC_TX, KC_RX };
	for (size_t i = 0; i < 2; i++) {
		struct kc_err e = { 0 };
		int sys = 0;
		int rc = kc_probe_kernel_key(version, c->kernel.id, dirs[i], &sys, &e);
		if (rc < 0 && !why[0])
			snprintf(why, wlen, "%.*s", (int)wlen - 1, e.msg);
		if (rc <= 0)
			return rc;
	}
	return 1;
}

static int check_ciphers(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	static const struct { unsigned vers; uint16_t version; const char *name; } vs[] = {
		{ KC_VERS_13, KC_TLS13, "TLS 1.3" }, { KC_VERS_12, KC_TLS12, "TLS 1.2" },
	};
	char list[KC_PC_REASON_MAX], nokernel[KC_PC_REASON_MAX / 2];
	size_t off = 0;
	unsigned accepted = 0, fit = 0, unknown = 0;

	list[0] = nokernel[0] = 0;
	for (size_t i = 0; i < 2; i++) {
		unsigned here = 0;
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? "; " : "",
					vs[i].name);
		for (size_t j = 0; j < KC_NCIPHERS && off < sizeof list; j++) {
			const struct kc_cipher *c = &kc_ciphers[j];
			struct kc_err e = { 0 };
			int rc = try_cipher(run, c, vs[i].vers, &e);
			if (stopped(run->o))
				return kc_err_set(err, KC_E_IO, "interrupted");
			if (rc < 0 && !run->connected) {
				*err = e;    /* the server cannot be probed at all */
				return -1;
			}
			if (rc == 0)
				continue;
			int k = rc > 0 ? kernel_takes(c, vs[i].version, nokernel, sizeof nokernel)
				       : -1;
			unknown += rc < 0;
			accepted += rc > 0;
			fit += rc > 0 && k > 0;
			off += (size_t)snprintf(list + off, sizeof list - off, "%s %s%s",
						here++ ? "," : ":", c->name,
						rc < 0 ? " (could not tell)" : k == 0 ?
						" (not this kernel)" : "");
		}
		if (!here && off < sizeof list)
			off += (size_t)snprintf(list + off, sizeof list - off, ": none");
	}
	if (accepted == 0)
		set(out, unknown ? KC_PC_UNKNOWN : KC_PC_FAIL, "the server accepts none of the "
		    "kTLS cipher suites, offered one at a time (%s)", list);
	else if (fit == 0)
		set(out, KC_PC_NA, "accepted: %s; this kernel takes none of them%s%.*s", list,
		    nokernel[0] ? ": " : "", (int)sizeof nokernel, nokernel);
	else
		set(out, KC_PC_PASS, "accepted: %s; this kernel takes all%s", list,
		    fit < accepted ? " but those marked" : "");
	return 0;
}

static int check_tls12(struct pc_run *run, struct kc_pc_outcome *out, struct kc_err *err)
{
	const struct kc_pc_opts *o = run->o;
	struct kc_tls_opts tls = *o->tls;
	struct kc_err e = { 0 };
	struct pc p;
	struct pc_flow f;
	char buf[KC_PC_REASON_MAX], moved[KC_PC_REASON_MAX / 2];

	tls.priority = NULL;
	tls.versions = KC_VERS_12;
	struct pc_how how = { .tls = &tls };
	if (pc_open_how(run, &p, &how, &e) < 0) {
		if (e.status != KC_E_HANDSHAKE) {
			*err = e;
			return -1;
		}
		set(out, KC_PC_NA, "the server does not speak TLS 1.2 with a kTLS cipher: %s",
		    e.msg);
		return 0;
	}
	bool safe = gnutls_safe_renegotiation_status(p.s) != 0;
	/* The transfer's verdict, with what moved said in moved. */
	enum kc_pc_result transfer;
	double t0 = now_ms();
	if (o->talk == KC_PC_TALK_LINE) {
		ssize_t rc = pc_echo(&p, KC_PC_TLS12_VOLUME, KC_MAX_PLAINTEXT, false, &f, &e);
		transfer = rc == ECHO_DONE && !f.differs ? KC_PC_PASS
			 : f.differs && f.differs_at == 0 ? KC_PC_UNKNOWN : KC_PC_FAIL;
		if (transfer == KC_PC_PASS)
			snprintf(moved, sizeof moved, "%u bytes each way, echoed intact (%.1f ms)",
				 KC_PC_TLS12_VOLUME, now_ms() - t0);
		else if (f.differs)
			snprintf(moved, sizeof moved, "%llu bytes sent: the echo differs from byte "
				 "%llu%s", (unsigned long long)f.sent,
				 (unsigned long long)f.differs_at, transfer == KC_PC_UNKNOWN ?
				 " (the transfer needs an echo server)" : "");
		else
			snprintf(moved, sizeof moved, "%llu bytes sent, %llu bytes came back, then %s",
				 (unsigned long long)f.sent, (unsigned long long)f.got,
				 said(&p, rc, &e, buf, sizeof buf));
	} else {
		ssize_t rc = pc_exchange(&p, &e);
		transfer = rc > 0 ? KC_PC_PASS : KC_PC_FAIL;
		if (rc > 0)
			snprintf(moved, sizeof moved, "%zd bytes came back (a long transfer needs "
				 "an echo server)", rc);
		else
			snprintf(moved, sizeof moved, "%s", said(&p, rc, &e, buf, sizeof buf));
	}
	set(out, safe ? transfer : KC_PC_FAIL, "TLS 1.2 %s %s; %s",
	    kc_cipher_name(kc_conn_cipher(p.c)), safe ? "with secure renegotiation"
	    : "without the secure renegotiation indication (RFC 5746)", moved);
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
	{ "ticket-reuse", "the first's ticket offered on two more connections: taken twice, "
	  "or once and then a full handshake", check_ticket_reuse },
	{ "record-size-limit", "with a record_size_limit announced (512 unless given), every "
	  "record the server sends keeps it", check_record_size_limit },
	{ "max-record", "the server takes records of 2^14 bytes, and TLS 1.3 records padded "
	  "to the limit", check_max_record },
	{ "server-keyupdate", "whether the server updates its keys by itself within --volume "
	  "bytes (echo)", check_server_keyupdate },
	{ "ciphers", "each kTLS cipher suite the server accepts (TLS 1.3, 1.2) and whether "
	  "this kernel takes it", check_ciphers },
	{ "tls12", "TLS 1.2: secure renegotiation indication, and a 4 MiB transfer each way "
	  "(echo)", check_tls12 },
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
