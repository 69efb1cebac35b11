/* core/conn.c: the kernel connection (see conn.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/crypto.h>

#include "core/conn.h"
#include "core/limits.h"
#include "core/net.h"

#define HS_KEY_UPDATE 24
#define HS_NEW_SESSION_TICKET 4
#define HS_HELLO_REQUEST 0
#define ALERT_WARNING 1
#define ALERT_FATAL 2

/* How long a control record (alert, KeyUpdate) may wait for room in the
 * socket's send buffer before we give up on the peer. */
#define CONTROL_SEND_TIMEOUT_MS 30000

struct kc_conn {
	gnutls_session_t session;
	struct kc_channel *ch;
	int fd;
	enum kc_role role;
	uint16_t version;
	kc_event_fn on_event;
	void *event_ctx;
	char fallback_reason[512];

	/* One control record being assembled from channel pieces. */
	unsigned char ctrl[KC_MAX_PLAINTEXT + 256];
	size_t ctrl_len;

	/* Handshake-message framing across records (a message may span
	 * records; a KeyUpdate must stand alone in its record). */
	unsigned char hs_hdr[4];
	size_t hs_hdr_len;
	size_t hs_body_left;

	/* Handshake messages GnuTLS wants sent (via the read function). */
	unsigned char hs_out[1024];
	size_t hs_out_len;
	bool hs_out_overflow;

	/* Plaintext GnuTLS had already decrypted at the handover. */
	unsigned char *early;
	size_t early_len, early_off;

	/* The NewSessionTicket being received, for the ticket store. */
	unsigned char nst[8192];
	size_t nst_len;
	bool nst_capturing;
	struct kc_ticket_info nst_done[4];   /* completed in the current record */
	unsigned nst_done_n;

	bool peer_closed, close_sent, wr_shut, failed;
	int peer_alert;            /* the fatal alert the peer sent; -1: none */
	bool close_unanswered;     /* the peer ended the stream after our close_notify */
	uint64_t rx_bytes_at_close;
	struct kc_err failure;     /* repeated on every call after a failure */
	struct kc_dir_stats stats[2];
	unsigned tickets;
	struct kc_ticket_store store;
	gnutls_cipher_algorithm_t cipher;
	uint64_t rekey_point;      /* send-side records under one key */
	bool rx_limit_asked;       /* we asked the peer to update its keys */
	/* Never wait for socket room (kc_conn_opts.nonblocking): a KeyUpdate
	 * the channel cannot take now is owed, prepared in ku_out (GnuTLS
	 * already moved on to the new send key), and goes out before any
	 * more data. */
	bool nonblocking;
	bool ku_owed, ku_owed_requested, ku_owed_automatic;
	unsigned char ku_out[5];
	struct kc_record_limits limits;   /* record sizes agreed, as kept */
};

static void emit_ev(struct kc_conn *c, const struct kc_event *ev)
{
	if (c->on_event)
		c->on_event(c->event_ctx, ev);
}

static void emit(struct kc_conn *c, enum kc_event_kind kind, bool requested, int alert)
{
	struct kc_event ev = { .kind = kind, .requested = requested, .alert = alert };
	emit_ev(c, &ev);
}

const char *kc_alert_name(int desc, char *buf, size_t len)
{
	const char *n = gnutls_alert_get_strname((gnutls_alert_description_t)desc);
	if (!n) {
		snprintf(buf, len, "alert %d", desc);
		return buf;
	}
	if (strncmp(n, "GNUTLS_A_", 9) == 0)
		n += 9;
	size_t i = 0;
	for (; n[i] && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)n[i]);
	buf[i] = '\0';
	return buf;
}

/* Remember a failure so later calls report it again instead of touching a
 * broken channel. */
static int fail(struct kc_conn *c, struct kc_err *err)
{
	c->failed = true;
	if (err && err != &c->failure)
		c->failure = *err;
	return -1;
}

/* How every public call that can fail starts: without an err from the
 * caller, *spare takes the message (a failure is latched with it either
 * way); after a failure, the call reports that failure again (-1). */
static int enter(const struct kc_conn *c, struct kc_err **err, struct kc_err *spare)
{
	if (!*err)
		*err = spare;
	if (c->failed)
		return kc_err_set(*err, c->failure.status, "%s", c->failure.msg);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_writable(struct kc_conn *c, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static int on_alert(struct kc_conn *c, const unsigned char *p, size_t n, struct kc_err *err);

/* After the peer reset the connection under one of our sends: a fatal
 * alert it sent before it went (a server refusing too many KeyUpdates)
 * may still wait in our receive queue, and says more than the reset.
 * Records before it are passed over: the connection is lost either way.
 * 1 and *err when there was one, else 0. */
static int alert_before_reset(struct kc_conn *c, struct kc_err *err)
{
	unsigned char buf[KC_MAX_PLAINTEXT];
	for (int i = 0; i < 256; i++) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		uint8_t type;
		bool eor;
		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
			return 0;
		ssize_t n = c->ch->ops->recv(c->ch, buf, sizeof buf, &type, &eor);
		if (n <= 0)
			return 0;
		if (type == KC_REC_ALERT && n == 2 && buf[1] != GNUTLS_A_CLOSE_NOTIFY &&
		    on_alert(c, buf, 2, err) < 0)
			return 1;
	}
	return 0;
}

/* Send one control message completely, waiting for socket room if needed:
 * the message must go out before anything else is written. */
static int send_control(struct kc_conn *c, uint8_t type, const void *buf, size_t len,
			struct kc_err *err)
{
	const unsigned char *p = buf;
	long long deadline = now_ms() + CONTROL_SEND_TIMEOUT_MS;

	while (len > 0) {
		ssize_t n = c->ch->ops->send(c->ch, type, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_writable(c, deadline) == 0)
				continue;
			if (errno == ETIMEDOUT)
				return kc_err_set(err, KC_E_TIMEOUT,
						  "the peer stopped reading: could not send a "
						  "control record for %d s", CONTROL_SEND_TIMEOUT_MS / 1000);
		}
		int e = errno;
		if ((e == EPIPE || e == ECONNRESET) && c->peer_closed)
			return kc_err_set(err, KC_E_TRUNCATED,
					  "the peer reset the connection after its close_notify, "
					  "before it read ours: it may not have read all we sent");
		if ((e == EPIPE || e == ECONNRESET) && alert_before_reset(c, err))
			return -1;
		if (e == EPIPE || e == ECONNRESET)
			return kc_err_set(err, KC_E_TRUNCATED,
					  "connection reset by the peer (no close_notify received)");
		return kc_err_errno(err, KC_E_IO, e, "cannot send a %s record",
				    type == KC_REC_ALERT ? "alert" : "handshake");
	}
	return 0;
}

/* Best effort: tell the peer why we are leaving.  A kernel channel that
 * failed to decrypt refuses to send until SO_ERROR has been read. */
static void send_fatal_alert(struct kc_conn *c, int desc)
{
	int soerr;
	socklen_t len = sizeof soerr;
	unsigned char a[2] = { ALERT_FATAL, (unsigned char)desc };

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (c->ch->ops->send(c->ch, KC_REC_ALERT, a, sizeof a) == (ssize_t)sizeof a)
		c->ch->ops->flush(c->ch);
}

/* End the connection with a fatal alert; the message names the alert. */
static int protocol_error(struct kc_conn *c, int alert, struct kc_err *err, const char *what)
{
	char name[64];
	send_fatal_alert(c, alert);
	kc_err_set(err, KC_E_PROTOCOL, "%s (sent alert %s)", what,
		   kc_alert_name(alert, name, sizeof name));
	return fail(c, err);
}

/* GnuTLS's outgoing handshake messages land here instead of the socket. */
static int hs_read_cb(gnutls_session_t s, gnutls_record_encryption_level_t level,
		      gnutls_handshake_description_t htype, const void *data, size_t size)
{
	struct kc_conn *c = gnutls_session_get_ptr(s);
	if (size > sizeof c->hs_out - c->hs_out_len) {
		c->hs_out_overflow = true;
		return GNUTLS_E_INTERNAL_ERROR;
	}
	memcpy(c->hs_out + c->hs_out_len, data, size);
	c->hs_out_len += size;
	return 0;
}

/* Alerts GnuTLS decides to send go out through the channel. */
static int alert_read_cb(gnutls_session_t s, gnutls_record_encryption_level_t level,
			 gnutls_alert_level_t alert_level, gnutls_alert_description_t desc)
{
	struct kc_conn *c = gnutls_session_get_ptr(s);
	unsigned char a[2] = { (unsigned char)alert_level, (unsigned char)desc };
	return send_control(c, KC_REC_ALERT, a, sizeof a, NULL) < 0 ? GNUTLS_E_PUSH_ERROR : 0;
}

/* Before a direction gets a new key, add what the old key protected. */
static void close_key_generation(struct kc_conn *c, enum kc_dir dir)
{
	uint64_t seq;
	if (c->ch->ops->rec_seq(c->ch, dir, &seq) == 0)
		c->stats[dir].records_prev += seq;
}

int kc_conn_records(struct kc_conn *c, enum kc_dir dir, uint64_t *current_key,
		    uint64_t *total)
{
	uint64_t seq;
	if (c->ch->ops->rec_seq(c->ch, dir, &seq) < 0)
		return -1;
	*current_key = seq;
	*total = c->stats[dir].records_prev + seq;
	return 0;
}

static int key_update(struct kc_conn *c, bool request_peer, bool automatic,
		      struct kc_err *err);
static int send_owed_key_update(struct kc_conn *c, bool wait, struct kc_err *err);
static int settle_key_update(struct kc_conn *c, struct kc_err *err);

int kc_conn_key_update(struct kc_conn *c, bool request_peer, struct kc_err *err)
{
	struct kc_err spare;
	if (enter(c, &err, &spare) < 0)
		return -1;
	return key_update(c, request_peer, false, err);
}

/* Our KeyUpdate, then our new send key (send_owed_key_update).  Whether
 * the channel can take a second key is asked first: once the KeyUpdate is
 * out, the key must follow. */
static int key_update(struct kc_conn *c, bool request_peer, bool automatic,
		      struct kc_err *err)
{
	if (c->version != KC_TLS13)
		return kc_err_set(err, KC_E_USAGE,
				  "key updates are not in TLS 1.2 (only TLS 1.3 can change keys)");
	if (c->close_sent)
		return kc_err_set(err, KC_E_USAGE, "close_notify already sent: no more key updates");
	if (!c->ch->caps.rekey)
		return kc_err_set(err, KC_E_NOREKEY,
				  "this kernel cannot update kTLS keys (Linux 6.14 or later "
				  "needed): no KeyUpdate was sent");
	if (c->ku_owed) {
		/* One KeyUpdate answers every request (RFC 8446 §4.6.3). */
		c->ku_owed_requested |= request_peer;
		return 0;
	}
	c->hs_out_len = 0;
	/* Ask GnuTLS for a plain KeyUpdate and set update_requested in the
	 * message ourselves: with GNUTLS_KU_PEER, GnuTLS would reject a
	 * request from the peer crossing ours, which RFC 8446 §4.6.3 allows. */
	int rc = gnutls_session_key_update(c->session, 0);
	if (rc < 0 || c->hs_out_len != sizeof c->ku_out || c->hs_out[0] != HS_KEY_UPDATE ||
	    c->hs_out_overflow) {
		kc_err_set(err, KC_E_INTERNAL, "GnuTLS could not prepare a KeyUpdate: %s",
			   rc < 0 ? gnutls_strerror(rc) : "not the message expected");
		return fail(c, err);
	}
	memcpy(c->ku_out, c->hs_out, sizeof c->ku_out);
	c->hs_out_len = 0;
	c->ku_owed = true;
	c->ku_owed_requested = request_peer;
	c->ku_owed_automatic = automatic;
	return send_owed_key_update(c, !c->nonblocking, err);
}

/* The prepared KeyUpdate (ku_out) under the old key, then the new key,
 * with no data write in between (we are single-threaded).  Unless wait,
 * a channel with no room now leaves it owed: 0 either way, -1 failed. */
static int send_owed_key_update(struct kc_conn *c, bool wait, struct kc_err *err)
{
	struct kc_key_material km;
	size_t sent = 0;

	c->ku_out[4] = c->ku_owed_requested;   /* request_update */
	if (!wait) {
		ssize_t n = c->ch->ops->send(c->ch, KC_REC_HANDSHAKE, c->ku_out, sizeof c->ku_out);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;     /* still owed: kc_conn_flush tries again */
		if (n > 0)
			sent = (size_t)n;
	}
	/* What is left (rare: a part went), or the error, the waiting way. */
	if (sent < sizeof c->ku_out &&
	    send_control(c, KC_REC_HANDSHAKE, c->ku_out + sent, sizeof c->ku_out - sent, err) < 0)
		return fail(c, err);
	c->ku_owed = false;
	bool request_peer = c->ku_owed_requested, automatic = c->ku_owed_automatic;
	if (kc_keys_from_session(c->session, KC_TX, &km, err) < 0)
		return fail(c, err);
	km.seq = 0;
	uint64_t old_records = 0, total;
	kc_conn_records(c, KC_TX, &old_records, &total);
	close_key_generation(c, KC_TX);
	int rc = c->ch->ops->set_key(c->ch, KC_TX, &km, err);
	kc_keys_wipe(&km);
	if (rc < 0)
		return fail(c, err);
	c->stats[KC_TX].key_updates++;
	struct kc_event ev = { .kind = KC_EV_KEY_UPDATE_SENT, .requested = request_peer,
			       .automatic = automatic, .records = old_records };
	emit_ev(c, &ev);
	return 0;
}

static int on_alert(struct kc_conn *c, const unsigned char *p, size_t n, struct kc_err *err)
{
	char name[64];

	if (n != 2)
		return protocol_error(c, GNUTLS_A_DECODE_ERROR, err,
				      "the peer sent a malformed alert record");
	int level = p[0], desc = p[1];
	if (desc == GNUTLS_A_CLOSE_NOTIFY) {
		c->peer_closed = true;
		emit(c, KC_EV_PEER_CLOSE, false, desc);
		return 1;
	}
	/* TLS 1.3 (RFC 8446 §6): every alert but close_notify and user_canceled
	 * is fatal whatever its level; TLS 1.2 honours the level. */
	bool warning = c->version == KC_TLS13 ? desc == GNUTLS_A_USER_CANCELED
					      : level == ALERT_WARNING;
	if (warning) {
		emit(c, KC_EV_WARNING_ALERT, false, desc);
		return 0;
	}
	c->peer_alert = desc;
	kc_err_set(err, KC_E_PROTOCOL, "the peer ended the connection with fatal alert '%s'",
		   kc_alert_name(desc, name, sizeof name));
	return fail(c, err);
}

struct hs_scan {
	unsigned tickets;          /* NewSessionTickets completed in this record */
	bool key_update;
	bool ku_requested;
	int bad_alert;             /* nonzero: reject the record with this alert */
	const char *why;
};

/* Walk the handshake messages in one record, keeping framing state across
 * records, to find NewSessionTickets and KeyUpdates before GnuTLS sees them. */
static void scan_handshake(struct kc_conn *c, const unsigned char *p, size_t n,
			   struct hs_scan *sc)
{
	bool record_starts_message = c->hs_hdr_len == 0 && c->hs_body_left == 0;
	size_t i = 0, msg_start = 0;

	memset(sc, 0, sizeof *sc);
	c->nst_done_n = 0;
	while (i < n) {
		if (c->hs_body_left == 0) {
			if (c->hs_hdr_len == 0)
				msg_start = i;
			c->hs_hdr[c->hs_hdr_len++] = p[i++];
			if (c->hs_hdr_len < 4)
				continue;
			c->hs_body_left = (size_t)c->hs_hdr[1] << 16 | (size_t)c->hs_hdr[2] << 8 |
					  c->hs_hdr[3];
			c->nst_capturing = c->hs_hdr[0] == HS_NEW_SESSION_TICKET &&
					   c->hs_body_left + 4 <= sizeof c->nst;
			if (c->nst_capturing) {
				memcpy(c->nst, c->hs_hdr, 4);
				c->nst_len = 4;
			}
		} else {
			size_t take = n - i < c->hs_body_left ? n - i : c->hs_body_left;
			if (c->nst_capturing) {
				memcpy(c->nst + c->nst_len, p + i, take);
				c->nst_len += take;
			}
			i += take;
			c->hs_body_left -= take;
		}
		if (c->hs_hdr_len < 4 || c->hs_body_left > 0)
			continue;
		/* a message just completed */
		unsigned char type = c->hs_hdr[0];
		size_t body_len = (size_t)c->hs_hdr[1] << 16 | (size_t)c->hs_hdr[2] << 8 | c->hs_hdr[3];
		c->hs_hdr_len = 0;
		if (type == HS_NEW_SESSION_TICKET) {
			sc->tickets++;
			/* Parsed for display only; GnuTLS judges the ticket. */
			if (c->nst_capturing && c->nst_done_n < 4 &&
			    kc_ticket_parse(c->nst, c->nst_len, &c->nst_done[c->nst_done_n], NULL) == 0)
				c->nst_done_n++;
			c->nst_capturing = false;
		} else if (type == HS_KEY_UPDATE) {
			if (!record_starts_message || msg_start != 0 || i != n) {
				sc->bad_alert = GNUTLS_A_UNEXPECTED_MESSAGE;
				sc->why = "the peer sent a KeyUpdate that does not stand alone in its record";
			} else if (body_len != 1) {
				sc->bad_alert = GNUTLS_A_DECODE_ERROR;
				sc->why = "the peer sent a malformed KeyUpdate";
			} else if (p[n - 1] > 1) {
				sc->bad_alert = GNUTLS_A_ILLEGAL_PARAMETER;
				sc->why = "the peer sent a KeyUpdate with an invalid request value";
			} else {
				sc->key_update = true;
				sc->ku_requested = p[n - 1] == 1;
			}
			return;
		}
	}
	/* A KeyUpdate split across records would straddle the key change. */
	if (c->hs_hdr_len > 0 && c->hs_hdr[0] == HS_KEY_UPDATE) {
		sc->bad_alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		sc->why = "the peer sent a KeyUpdate split across records";
	}
}

static int on_peer_key_update(struct kc_conn *c, bool requested, struct kc_err *err)
{
	struct kc_key_material km;

	if (kc_keys_from_session(c->session, KC_RX, &km, err) < 0)
		return fail(c, err);
	km.seq = 0;
	close_key_generation(c, KC_RX);
	int rc = c->ch->ops->set_key(c->ch, KC_RX, &km, err);
	kc_keys_wipe(&km);
	c->rx_limit_asked = false;
	if (rc < 0) {
		if (err && err->status == KC_E_NOREKEY)
			snprintf(err->msg, sizeof err->msg,
				 "the peer updated its TLS 1.3 keys and this kernel cannot follow "
				 "(kTLS rekey needs Linux 6.14 or later): use --ktls off with this peer");
		return fail(c, err);
	}
	c->stats[KC_RX].key_updates++;
	emit(c, KC_EV_PEER_KEY_UPDATE, requested, 0);
	/* Nothing may follow our close_notify, not even the answer. */
	if (requested && !c->close_sent)
		return kc_conn_key_update(c, false, err);
	return 0;
}

/* The kernel pauses reading after any handshake record whose first byte
 * is 24 (KeyUpdate), even when that byte continues a split message.  Give
 * it its current key back, at its current sequence number, to resume. */
static int release_false_pause(struct kc_conn *c, struct kc_err *err)
{
	struct kc_key_material km;
	uint64_t seq;

	if (!c->ch->caps.rekey)   /* kernels that cannot rekey never pause */
		return 0;
	if (c->ch->ops->rec_seq(c->ch, KC_RX, &seq) < 0) {
		kc_err_errno(err, KC_E_IO, errno, "cannot read the receive sequence number");
		return fail(c, err);
	}
	if (kc_keys_from_session(c->session, KC_RX, &km, err) < 0)
		return fail(c, err);
	km.seq = seq;
	int rc = c->ch->ops->set_key(c->ch, KC_RX, &km, err);
	kc_keys_wipe(&km);
	return rc < 0 ? fail(c, err) : 0;
}

static int on_handshake(struct kc_conn *c, const unsigned char *p, size_t n, struct kc_err *err)
{
	char detail[256];
	struct hs_scan sc;

	if (n == 0)
		return protocol_error(c, GNUTLS_A_UNEXPECTED_MESSAGE, err,
				      "the peer sent an empty handshake record");
	if (c->version == KC_TLS12) {
		/* TLS 1.2 has nothing after the handshake but renegotiation,
		 * which we decline politely (RFC 5246 §7.4.1.1). */
		if (n == 4 && p[0] == HS_HELLO_REQUEST && !p[1] && !p[2] && !p[3]) {
			unsigned char a[2] = { ALERT_WARNING, GNUTLS_A_NO_RENEGOTIATION };
			return send_control(c, KC_REC_ALERT, a, 2, err) < 0 ? fail(c, err) : 0;
		}
		return protocol_error(c, GNUTLS_A_UNEXPECTED_MESSAGE, err,
				      "the peer sent a handshake message after the TLS 1.2 "
				      "handshake");
	}
	scan_handshake(c, p, n, &sc);
	if (sc.bad_alert)
		return protocol_error(c, sc.bad_alert, err, sc.why);
	int rc = gnutls_handshake_write(c->session, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, p, n);
	if (rc < 0 && rc != GNUTLS_E_AGAIN) {
		int level;
		int alert = rc == GNUTLS_E_PARSING_ERROR ? GNUTLS_A_DECODE_ERROR
							 : gnutls_error_to_alert(rc, &level);
		if (rc == GNUTLS_E_TOO_MANY_HANDSHAKE_PACKETS)
			/* GnuTLS takes at most 8 KeyUpdates a second (a DoS
			 * guard; test_conn key_update_rate_limit): a flood. */
			snprintf(detail, sizeof detail,
				 "the peer flooded the session with KeyUpdates (more "
				 "than GnuTLS accepts in a second)");
		else
			snprintf(detail, sizeof detail,
				 "the peer sent a handshake message we cannot accept: %s",
				 gnutls_strerror(rc));
		return protocol_error(c, alert < 0 ? GNUTLS_A_UNEXPECTED_MESSAGE : alert, err,
				      detail);
	}
	for (unsigned i = 0; i < sc.tickets; i++) {
		struct kc_event ev = { .kind = KC_EV_TICKET };
		c->tickets++;
		if (i < c->nst_done_n)
			ev.ticket = &kc_ticket_store_add(&c->store, &c->nst_done[i], time(NULL))->info;
		emit_ev(c, &ev);
	}
	if (sc.key_update)
		return on_peer_key_update(c, sc.ku_requested, err);
	if (p[0] == HS_KEY_UPDATE && c->version == KC_TLS13)
		return release_false_pause(c, err);
	return 0;
}

/* 1: close_notify received; 0: handled, keep reading; -1: failed. */
static int on_control(struct kc_conn *c, uint8_t type, struct kc_err *err)
{
	const unsigned char *p = c->ctrl;
	size_t n = c->ctrl_len;

	c->ctrl_len = 0;
	switch (type) {
	case KC_REC_ALERT:
		return on_alert(c, p, n, err);
	case KC_REC_HANDSHAKE:
		return on_handshake(c, p, n, err);
	default: {
		char detail[96];
		snprintf(detail, sizeof detail,
			 "the peer sent a record of unexpected content type %u", type);
		return protocol_error(c, GNUTLS_A_UNEXPECTED_MESSAGE, err, detail);
	}
	}
}

/* The stream ended (FIN or reset) without the peer's close_notify.  Before
 * ours that is truncation.  After ours, many servers simply close (TLS
 * 1.2 lets the closer's peer discard what it had left to send): with
 * nothing received since our close_notify nothing can be missing from
 * what we did get, so the session ends as closed; with data received
 * since, that data may have been cut short.  0 or -1 as kc_conn_read. */
static int stream_ended(struct kc_conn *c, bool reset, struct kc_err *err)
{
	const char *how = reset ? "reset the connection" : "closed";
	uint64_t after = c->stats[KC_RX].bytes - c->rx_bytes_at_close;

	if (c->close_sent && after == 0) {
		c->peer_closed = true;
		c->close_unanswered = true;
		return 0;
	}
	/* Only a single session chooses when its close_notify goes (--eof);
	 * a served one sends it when the other side has ended. */
	if (c->close_sent)
		kc_err_set(err, KC_E_TRUNCATED,
			   "connection truncated: the peer sent %llu bytes after our close_notify, "
			   "then %s without its own: they may be incomplete%s",
			   (unsigned long long)after, how,
			   c->nonblocking ? "" : " (--eof linger or wait lets it finish first)");
	else if (reset)
		kc_err_set(err, KC_E_TRUNCATED,
			   "connection truncated: reset by the peer before close_notify");
	else
		kc_err_set(err, KC_E_TRUNCATED,
			   "connection truncated: the peer closed without close_notify");
	return fail(c, err);
}

static int recv_error(struct kc_conn *c, int e, struct kc_err *err)
{
	switch (e) {
	case EBADMSG:
		return protocol_error(c, GNUTLS_A_BAD_RECORD_MAC, err,
				      "a record from the peer failed authentication: the data "
				      "was corrupted or forged");
	case EMSGSIZE:
		if (c->limits.rx < KC_MAX_PLAINTEXT) {
			char what[128];
			snprintf(what, sizeof what, "the peer sent a record larger than the %zu "
				 "bytes we announced (record size limit)", c->limits.rx);
			return protocol_error(c, GNUTLS_A_RECORD_OVERFLOW, err, what);
		}
		return protocol_error(c, GNUTLS_A_RECORD_OVERFLOW, err,
				      "the peer sent an oversized record");
	case EINVAL:
		return protocol_error(c, GNUTLS_A_DECODE_ERROR, err,
				      "the peer sent a malformed record header");
	case EKEYEXPIRED:
		kc_err_set(err, KC_E_PROTOCOL,
			   "the kernel paused on a KeyUpdate that was never delivered");
		return fail(c, err);
	case ECONNRESET:
	case EPIPE:
		return stream_ended(c, true, err);
	default:
		kc_err_errno(err, KC_E_IO, e, "cannot read from the connection");
		return fail(c, err);
	}
}

/* A channel that cannot see each record (the kernel merges data records)
 * still catches a peer over the record size limit we announced whenever
 * its records are over it on average: n bytes took at least n / limit
 * records. */
static int check_rx_size(struct kc_conn *c, struct kc_err *err)
{
	uint64_t cur, total;
	if (c->limits.rx_exact || c->limits.rx >= KC_MAX_PLAINTEXT ||
	    kc_conn_records(c, KC_RX, &cur, &total) < 0 ||
	    c->stats[KC_RX].bytes <= total * c->limits.rx)
		return 0;
	errno = EMSGSIZE;
	return recv_error(c, EMSGSIZE, err);
}

/* The peer must update its keys before its records reach the limit; if it
 * does not, ask it to (once per key) and let the caller warn. */
static int check_rx_limit(struct kc_conn *c, struct kc_err *err)
{
	uint64_t seq;
	if (c->version != KC_TLS13 || c->rx_limit_asked || c->close_sent ||
	    c->ch->ops->rec_seq(c->ch, KC_RX, &seq) < 0 ||
	    seq < kc_limit_rekey_point(c->cipher, 0))
		return 0;
	c->rx_limit_asked = true;
	struct kc_event ev = { .kind = KC_EV_RX_LIMIT, .records = seq };
	emit_ev(c, &ev);
	return key_update(c, true, true, err);
}

/* Cut a write so the send key never protects more records than the
 * rekey point (plus the margin limits.h documents), updating the key
 * first when it is due; TLS 1.2 cannot, so it closes instead. */
static ssize_t send_budget(struct kc_conn *c, size_t len, struct kc_err *err)
{
	uint64_t seq;
	int owed = settle_key_update(c, err);
	if (owed < 0)
		return owed;
	if (c->rekey_point == UINT64_MAX || c->ch->ops->rec_seq(c->ch, KC_TX, &seq) < 0)
		return (ssize_t)len;
	if (seq >= c->rekey_point) {
		if (c->version == KC_TLS13 && c->ch->caps.rekey) {
			if (key_update(c, false, true, err) < 0)
				return -1;
			if (c->ku_owed)
				return KC_CONN_AGAIN;
			seq = 0;
		} else {
			char lim[64];
			snprintf(lim, sizeof lim, "%llu", (unsigned long long)c->rekey_point);
			kc_conn_close(c, NULL);
			kc_err_set(err, KC_E_LIMIT,
				   "closed the session after %s records under one key: %s "
				   "and %s allows no more (use TLS 1.3, on a kernel that can "
				   "rekey, for long sessions)", lim,
				   c->version == KC_TLS12 ? "TLS 1.2 cannot update keys"
							  : "this kernel cannot update keys",
				   kc_cipher_name(c->cipher));
			return fail(c, err);
		}
	}
	uint64_t budget = kc_limit_write_budget(c->rekey_point, seq);
	return (ssize_t)(len < budget ? len : budget);
}

ssize_t kc_conn_read(struct kc_conn *c, void *buf, size_t len, struct kc_err *err)
{
	struct kc_err spare;
	if (enter(c, &err, &spare) < 0)
		return -1;
	if (c->early_off < c->early_len) {
		size_t n = c->early_len - c->early_off;
		if (n > len)
			n = len;
		memcpy(buf, c->early + c->early_off, n);
		c->early_off += n;
		c->stats[KC_RX].bytes += n;
		return (ssize_t)n;
	}
	for (;;) {
		if (c->peer_closed)
			return 0;
		uint8_t type;
		bool eor;
		ssize_t n = c->ch->ops->recv(c->ch, buf, len, &type, &eor);
		if (n < 0) {
			if (errno == EAGAIN)
				return KC_CONN_AGAIN;
			if (errno == EINTR)
				continue;
			return recv_error(c, errno, err);
		}
		if (n == 0 && type == 0)
			return stream_ended(c, false, err);
		/* RFC 8446 §5.1: nothing may come between the records of
		 * one handshake message. */
		if (type != KC_REC_HANDSHAKE && (c->hs_hdr_len || c->hs_body_left))
			return protocol_error(c, GNUTLS_A_UNEXPECTED_MESSAGE, err,
					      "the peer sent another record inside a split "
					      "handshake message");
		if (type == KC_REC_DATA) {
			if (c->ctrl_len)   /* channels never mix types mid-record */
				return protocol_error(c, GNUTLS_A_UNEXPECTED_MESSAGE, err,
						      "interleaved records");
			c->stats[KC_RX].bytes += (size_t)n;
			if (check_rx_size(c, err) < 0 || check_rx_limit(c, err) < 0)
				return -1;
			return n;
		}
		if ((size_t)n > sizeof c->ctrl - c->ctrl_len)
			return protocol_error(c, GNUTLS_A_RECORD_OVERFLOW, err,
					      "the peer sent an oversized control record");
		memcpy(c->ctrl + c->ctrl_len, buf, (size_t)n);
		c->ctrl_len += (size_t)n;
		if (!eor)
			continue;
		int rc = on_control(c, type, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return 0;
	}
}

static int send_error(struct kc_conn *c, int e, struct kc_err *err)
{
	if (e == EPIPE || e == ECONNRESET)
		kc_err_set(err, KC_E_TRUNCATED,
			   "connection truncated: reset by the peer before close_notify");
	else
		kc_err_errno(err, KC_E_IO, e, "cannot send to the peer");
	return fail(c, err);
}

/* An owed KeyUpdate goes before any data: 0 when none is owed (any
 * more), KC_CONN_AGAIN while it still is, -1 failed. */
static int settle_key_update(struct kc_conn *c, struct kc_err *err)
{
	if (c->ku_owed && send_owed_key_update(c, false, err) < 0)
		return -1;
	return c->ku_owed ? KC_CONN_AGAIN : 0;
}

ssize_t kc_conn_write(struct kc_conn *c, const void *buf, size_t len, struct kc_err *err)
{
	struct kc_err spare;
	if (enter(c, &err, &spare) < 0)
		return -1;
	if (c->close_sent)
		return kc_err_set(err, KC_E_INTERNAL, "write after close_notify");
	ssize_t budget = send_budget(c, len, err);
	if (budget < 0)
		return budget;
	len = (size_t)budget;
	for (;;) {
		ssize_t n = c->ch->ops->send(c->ch, KC_REC_DATA, buf, len);
		if (n >= 0) {
			c->stats[KC_TX].bytes += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return KC_CONN_AGAIN;
		return send_error(c, errno, err);
	}
}

ssize_t kc_conn_write_from(struct kc_conn *c, int in_fd, bool file, size_t len,
			   struct kc_err *err)
{
	struct kc_err spare;
	if (enter(c, &err, &spare) < 0)
		return -1;
	if (c->close_sent)
		return kc_err_set(err, KC_E_INTERNAL, "write after close_notify");
	ssize_t budget = send_budget(c, len, err);
	if (budget < 0)
		return budget;
	for (;;) {
		ssize_t n = c->ch->ops->send_from(c->ch, in_fd, (size_t)budget, file);
		if (n >= 0) {
			c->stats[KC_TX].bytes += (size_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return KC_CONN_AGAIN;
		/* Which side failed?  A socket error is latched in SO_ERROR or
		 * shows as EPIPE; anything else is the input's. */
		int e = errno, soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr || e == EPIPE || e == ECONNRESET)
			return send_error(c, soerr ? soerr : e, err);
		return kc_err_errno(err, KC_E_IO, e, "cannot read standard input");
	}
}

ssize_t kc_conn_read_to(struct kc_conn *c, int out_fd, size_t len, struct kc_err *err)
{
	struct kc_err spare;
	/* Anything but plain data next goes through kc_conn_read. */
	if (enter(c, &err, &spare) < 0 || c->peer_closed || c->early_off < c->early_len ||
	    c->ctrl_len || c->hs_hdr_len || c->hs_body_left)
		return KC_CONN_USE_READ;
	for (;;) {
		ssize_t n = c->ch->ops->recv_to(c->ch, out_fd, len);
		if (n > 0) {
			c->stats[KC_RX].bytes += (size_t)n;
			return check_rx_size(c, err) < 0 || check_rx_limit(c, err) < 0 ? -1 : n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return KC_CONN_AGAIN;
		/* A framing or authentication error: the kernel reports it to
		 * the read that meets it, this one (the next says EAGAIN). */
		if (n < 0 && (errno == EBADMSG || errno == EMSGSIZE))
			return recv_error(c, errno, err);
		if (n < 0 && errno == EPROTO)
			return recv_error(c, EINVAL, err);
		/* A control record (EINVAL), a KeyUpdate pause, the end of
		 * the stream: the record path sorts it out. */
		return KC_CONN_USE_READ;
	}
}

int kc_conn_flush(struct kc_conn *c, struct kc_err *err)
{
	struct kc_err spare;
	if (enter(c, &err, &spare) < 0)
		return -1;
	if (c->ch->ops->flush(c->ch) < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return KC_CONN_AGAIN;
		return send_error(c, errno, err);
	}
	int owed = settle_key_update(c, err);
	if (owed < 0)
		return owed;
	if (c->close_sent && !c->wr_shut) {
		/* Everything including close_notify is out: tell TCP too, for
		 * peers that wait for end of stream. */
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	return 0;
}

bool kc_conn_tx_pending(const struct kc_conn *c)
{
	return c->ch->ops->tx_pending(c->ch) || c->ku_owed || (c->close_sent && !c->wr_shut);
}

int kc_conn_close(struct kc_conn *c, struct kc_err *err)
{
	static const unsigned char close_notify[2] = { ALERT_WARNING, GNUTLS_A_CLOSE_NOTIFY };
	struct kc_err spare;

	if (enter(c, &err, &spare) < 0)
		return -1;
	if (c->close_sent)
		return 0;
	/* Data accepted earlier is queued (soft) or open (kernel MSG_MORE)
	 * ahead of the alert; the channel keeps the order, flush pushes it. */
	if (c->ch->ops->flush(c->ch) < 0 && errno != EAGAIN)
		return send_error(c, errno, err);
	if (c->ku_owed && send_owed_key_update(c, true, err) < 0)
		return -1;
	if (send_control(c, KC_REC_ALERT, close_notify, sizeof close_notify, err) < 0)
		return fail(c, err);
	c->close_sent = true;
	c->rx_bytes_at_close = c->stats[KC_RX].bytes;
	int rc = kc_conn_flush(c, err);
	return rc == KC_CONN_AGAIN ? 0 : rc;
}

/* Take anything GnuTLS decrypted but did not hand out yet (it never
 * should: it reads one record at a time), so no byte is lost. */
static int drain_gnutls(struct kc_conn *c, struct kc_err *err)
{
	size_t pending;

	while ((pending = gnutls_record_check_pending(c->session)) > 0) {
		unsigned char *p = realloc(c->early, c->early_len + pending);
		if (!p)
			return kc_err_set(err, KC_E_INTERNAL, "out of memory");
		c->early = p;
		ssize_t n = gnutls_record_recv(c->session, p + c->early_len, pending);
		if (n <= 0)
			return kc_err_set(err, KC_E_INTERNAL,
					  "cannot drain GnuTLS before the handover: %s",
					  gnutls_strerror((int)n));
		c->early_len += (size_t)n;
	}
	if (gnutls_record_check_corked(c->session) > 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS holds corked data at the handover");
	return 0;
}

/* The record sizes the handshake agreed (RFC 8449 record_size_limit, RFC
 * 6066 max_fragment_length), as GnuTLS holds them: what we may send is
 * how GnuTLS would cut a long write (gnutls_range_split: GnuTLS 3.7 has no
 * other public view of it), what we take is what we announced.  Two
 * GnuTLS 3.7.9 quirks, on the server side:
 *   - it forgets a client's max_fragment_length for sending (only the
 *     receive size survives): without a record_size_limit of our own, a
 *     receive size below 2^14 is that fragment length, which binds both
 *     directions;
 *   - a client that offers TLS 1.3 counts the content type byte in its
 *     record_size_limit even when TLS 1.2 is negotiated (GnuTLS's does, and
 *     then refuses a record that uses that byte): in TLS 1.2 we send one
 *     byte less, which is within the limit either way. */
static void agreed_limits(gnutls_session_t s, enum kc_role role, uint16_t version,
			  bool announced, struct kc_record_limits *lim)
{
	gnutls_range_st all = { KC_MAX_PLAINTEXT, KC_MAX_PLAINTEXT }, next, rest;
	size_t rx = gnutls_record_get_max_size(s);

	memset(lim, 0, sizeof *lim);
	lim->tx = gnutls_range_split(s, &all, &next, &rest) == 0 && next.high > 0 &&
		  next.high < KC_MAX_PLAINTEXT ? next.high : KC_MAX_PLAINTEXT;
	lim->rx = rx > 0 && rx < KC_MAX_PLAINTEXT ? rx : KC_MAX_PLAINTEXT;
	if (role == KC_SERVER && !announced && lim->rx < lim->tx)
		lim->tx = lim->rx;
	if (role == KC_SERVER && version == KC_TLS12 && lim->tx < KC_MAX_PLAINTEXT)
		lim->tx--;
}

static int install_keys(struct kc_conn *c, struct kc_channel *ch, struct kc_key_material km[2],
			struct kc_err *err)
{
	if (ch->ops->set_key(ch, KC_RX, &km[KC_RX], err) < 0)
		return -1;
	/* no fallback after this: the receive side is keyed */
	if (ch->ops->set_key(ch, KC_TX, &km[KC_TX], err) < 0 ||
	    ch->ops->set_limits(ch, &c->limits, err) < 0) {
		if (err)
			err->status = KC_E_KTLS;
		return -2;
	}
	return 0;
}

int kc_conn_choose_channel(int fd, enum kc_ktls_mode mode, char *why, size_t why_len,
			   struct kc_err *err)
{
	struct kc_err e;

	if (why_len)
		why[0] = '\0';
	if (mode == KC_KTLS_OFF)
		return 0;
	if (kc_kernel_attach(fd, &e) == 0)
		return 1;
	if (mode == KC_KTLS_REQUIRE)
		return kc_err_set(err, KC_E_KTLS,
				  "kernel TLS unavailable and --ktls require given: %.440s", e.msg);
	snprintf(why, why_len, "%s", e.msg);
	return 0;
}

int kc_conn_open(gnutls_session_t session, int fd, const struct kc_conn_opts *opts,
		 struct kc_conn **out, struct kc_err *err)
{
	struct kc_key_material km[2];
	struct kc_conn *c = calloc(1, sizeof *c);
	int rc = -1;

	if (!c)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	c->session = session;
	c->fd = fd;
	c->peer_alert = -1;
	c->role = opts->role;
	c->nonblocking = opts->nonblocking;
	c->on_event = opts->on_event;
	c->event_ctx = opts->event_ctx;
	memset(km, 0, sizeof km);
	if (drain_gnutls(c, err) < 0 ||
	    kc_keys_from_session(session, KC_RX, &km[KC_RX], err) < 0 ||
	    kc_keys_from_session(session, KC_TX, &km[KC_TX], err) < 0)
		goto out;
	c->version = km[KC_TX].version;
	c->cipher = km[KC_TX].cipher;
	agreed_limits(session, opts->role, c->version, opts->record_size_limit, &c->limits);
	c->rekey_point = kc_limit_rekey_point(c->cipher, opts->key_update_after);
	if (kc_set_nonblocking(fd, 1) < 0) {
		kc_err_errno(err, KC_E_IO, errno, "cannot make the socket non-blocking");
		goto out;
	}
	if (opts->kernel) {
		c->ch = kc_channel_kernel_new(fd, err);
		if (!c->ch)
			goto out;
		rc = install_keys(c, c->ch, km, err);
		if (rc == -1 && opts->fallback && err && err->status == KC_E_KTLS) {
			snprintf(c->fallback_reason, sizeof c->fallback_reason, "%s", err->msg);
			kc_channel_free(c->ch);
			c->ch = NULL;
		} else if (rc < 0) {
			goto out;
		}
	}
	if (!c->ch) {
		c->ch = kc_channel_soft_new(fd, &opts->soft, err);
		if (!c->ch || (rc = install_keys(c, c->ch, km, err)) < 0) {
			rc = -1;
			goto out;
		}
	}
	gnutls_session_set_ptr(session, c);
	gnutls_handshake_set_read_function(session, hs_read_cb);
	gnutls_alert_set_read_function(session, alert_read_cb);
	rc = 0;
out:
	kc_keys_wipe(&km[KC_RX]);
	kc_keys_wipe(&km[KC_TX]);
	if (rc < 0) {
		kc_conn_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void kc_conn_free(struct kc_conn *c)
{
	if (!c)
		return;
	kc_channel_free(c->ch);
	if (c->early) {
		gnutls_memset(c->early, 0, c->early_len);
		free(c->early);
	}
	gnutls_memset(c->ctrl, 0, sizeof c->ctrl);
	free(c);
}

void kc_conn_abort(struct kc_conn *c, int alert)
{
	if (c->failed || c->close_sent)
		return;
	send_fatal_alert(c, alert);
	kc_err_set(&c->failure, KC_E_INTERNAL, "the connection was aborted");
	c->failed = true;
}

int kc_conn_fd(const struct kc_conn *c) { return c->fd; }
enum kc_channel_kind kc_conn_channel_kind(const struct kc_conn *c) { return c->ch->kind; }
const char *kc_conn_channel_name(const struct kc_conn *c) { return kc_channel_kind_name(c->ch->kind); }
const struct kc_channel_caps *kc_conn_channel_caps(const struct kc_conn *c) { return &c->ch->caps; }
bool kc_conn_peer_closed(const struct kc_conn *c) { return c->peer_closed; }
bool kc_conn_close_sent(const struct kc_conn *c) { return c->close_sent; }
bool kc_conn_close_unanswered(const struct kc_conn *c) { return c->close_unanswered; }
uint16_t kc_conn_version(const struct kc_conn *c) { return c->version; }
unsigned kc_conn_tickets(const struct kc_conn *c) { return c->tickets; }
gnutls_cipher_algorithm_t kc_conn_cipher(const struct kc_conn *c) { return c->cipher; }
uint64_t kc_conn_rekey_point(const struct kc_conn *c) { return c->rekey_point; }

const struct kc_record_limits *kc_conn_limits(const struct kc_conn *c)
{
	return &c->limits;
}

const struct kc_ticket_store *kc_conn_ticket_store(const struct kc_conn *c)
{
	return &c->store;
}

int kc_conn_peer_alert(const struct kc_conn *c) { return c->peer_alert; }

const char *kc_conn_fallback_reason(const struct kc_conn *c)
{
	return c->fallback_reason[0] ? c->fallback_reason : NULL;
}

const struct kc_dir_stats *kc_conn_stats(const struct kc_conn *c, enum kc_dir dir)
{
	return &c->stats[dir];
}
