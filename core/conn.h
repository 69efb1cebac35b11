/* core/conn.h: the kernel connection.
 *
 * After the handshake, a kc_conn owns the socket through a record channel
 * (core/channel.h) and does what the record layer cannot do by itself, as
 * rustls's KernelConnection does: it handles every control record the
 * channel passes up (alerts, close_notify, KeyUpdate, NewSessionTicket),
 * feeds post-handshake messages to GnuTLS (which stays the key schedule
 * and ticket store), installs the keys GnuTLS then reports, and answers
 * with the right alert when a peer misbehaves.  GnuTLS never touches the
 * socket again after kc_conn_open(). */
#ifndef KC_CONN_H
#define KC_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <gnutls/gnutls.h>

#include "core/channel.h"
#include "core/err.h"
#include "core/handshake.h"
#include "core/ticket.h"

/* kc_conn_read/kc_conn_write/kc_conn_flush: would block; poll and retry. */
#define KC_CONN_AGAIN (-2)

enum kc_ktls_mode { KC_KTLS_AUTO, KC_KTLS_REQUIRE, KC_KTLS_OFF };

/* The record channel for a connected socket, chosen before the handshake
 * as mode says: the kernel's TLS ULP is attached first (plain TCP passes
 * through until keys are installed), so a kernel without kTLS is known
 * before any TLS byte is spent.  1: kernel (attached, for kc_conn_opts
 * .kernel); 0: user space, why says why ("" under KC_KTLS_OFF); -1 with
 * *err (KC_E_KTLS) when the kernel refused under KC_KTLS_REQUIRE.  Every
 * subcommand chooses here, so they all fall back alike. */
int kc_conn_choose_channel(int fd, enum kc_ktls_mode mode, char *why, size_t why_len,
			   struct kc_err *err);

enum kc_event_kind {
	KC_EV_TICKET,            /* a NewSessionTicket was stored by GnuTLS */
	KC_EV_PEER_KEY_UPDATE,   /* the peer updated its keys; .requested */
	KC_EV_KEY_UPDATE_SENT,   /* we updated our send keys; .requested */
	KC_EV_PEER_CLOSE,        /* close_notify received */
	KC_EV_WARNING_ALERT,     /* a non-fatal alert was ignored; .alert */
	KC_EV_RX_LIMIT,          /* the peer passed the limit without updating;
				    we asked it to (.records) */
};

struct kc_ticket_info;

struct kc_event {
	enum kc_event_kind kind;
	bool requested;          /* KeyUpdate with update_requested */
	bool automatic;          /* KEY_UPDATE_SENT: forced by the record limit */
	int alert;               /* alert description */
	uint64_t records;        /* RX_LIMIT, KEY_UPDATE_SENT: records under the old key */
	const struct kc_ticket_info *ticket;   /* TICKET: parsed, or NULL */
};

typedef void (*kc_event_fn)(void *ctx, const struct kc_event *ev);

struct kc_conn_opts {
	enum kc_role role;
	/* Use the kernel channel (TCP_ULP "tls" already attached by
	 * kc_kernel_attach).  With fallback, a kernel that refuses the keys
	 * (cipher not available) leaves the socket to the user-space channel
	 * and kc_conn_fallback_reason() says why. */
	bool kernel;
	bool fallback;
	struct kc_soft_opts soft;
	/* Update our send keys after this many records (0: shortly before the
	 * cipher's confidentiality limit, core/limits.h). */
	uint64_t key_update_after;
	/* We announced a record_size_limit in the handshake (kc_tls_opts). */
	bool record_size_limit;
	/* Never wait for socket room, for loops that serve many sessions: a
	 * KeyUpdate (ours, or the answer to the peer's request) that the
	 * channel cannot take now is owed, kc_conn_tx_pending() says so, and
	 * kc_conn_flush() or the next write sends it before any data.  Other
	 * control records still wait (an alert: up to 30 s). */
	bool nonblocking;
	kc_event_fn on_event;
	void *event_ctx;
};

struct kc_dir_stats {
	uint64_t bytes;          /* application data bytes */
	unsigned key_updates;    /* keys installed after the first */
	uint64_t records_prev;   /* records protected by earlier keys */
};

struct kc_conn;

/* The handover: check that GnuTLS holds nothing, take the keys of both
 * directions, install them in the channel (receive first, so a refusal
 * leaves no direction keyed), and route GnuTLS's post-handshake output to
 * us.  fd must be the handshake's socket; it becomes non-blocking.  The
 * session stays owned by the caller and must outlive the conn. */
int kc_conn_open(gnutls_session_t session, int fd, const struct kc_conn_opts *opts,
		 struct kc_conn **out, struct kc_err *err);
void kc_conn_free(struct kc_conn *c);

/* Application data from the peer: > 0 bytes, 0 when the peer sent
 * close_notify (or, after ours, ended the stream without answering and
 * without sending data since: kc_conn_close_unanswered()), KC_CONN_AGAIN,
 * or -1 with *err (KC_E_TRUNCATED when the stream ended without
 * close_notify otherwise, KC_E_PROTOCOL, KC_E_NOREKEY, ...).
 * Control records are handled inside.  buf must hold at least 1 byte. */
ssize_t kc_conn_read(struct kc_conn *c, void *buf, size_t len, struct kc_err *err);

/* Send application data: bytes accepted, KC_CONN_AGAIN, or -1. */
ssize_t kc_conn_write(struct kc_conn *c, const void *buf, size_t len, struct kc_err *err);

/* Zero-copy variants, on channels that have them (kc_conn_channel_caps():
 * the kernel's).  kc_conn_write_from sends up to len bytes straight from
 * a regular file (file=true) or pipe in_fd: bytes sent, 0 at the end of
 * in_fd, KC_CONN_AGAIN (the socket is full, or the pipe empty), or -1
 * (KC_E_IO naming the input when in_fd failed).  The record limit is
 * metered as for kc_conn_write, except that a pipe carrying small writes
 * can make the kernel cut records short, so one call may overshoot the
 * rekey point by more than one record (the margin of core/limits.h
 * still holds for calls of up to a few MiB).
 * kc_conn_read_to moves peer data straight into the pipe out_fd: bytes
 * moved, KC_CONN_AGAIN (nothing to read, or the pipe is full),
 * KC_CONN_USE_READ when what comes next (a control record, the end, an
 * error) must go through kc_conn_read, or -1. */
#define KC_CONN_USE_READ (-3)
ssize_t kc_conn_write_from(struct kc_conn *c, int in_fd, bool file, size_t len,
			   struct kc_err *err);
ssize_t kc_conn_read_to(struct kc_conn *c, int out_fd, size_t len, struct kc_err *err);

/* Push out what the channel still holds; after close, also shut down the
 * TCP write side once everything is out.  0 done, KC_CONN_AGAIN, -1. */
int kc_conn_flush(struct kc_conn *c, struct kc_err *err);
bool kc_conn_tx_pending(const struct kc_conn *c);

/* Send close_notify (after any pending data).  Reading may continue. */
int kc_conn_close(struct kc_conn *c, struct kc_err *err);

/* End the connection for a reason of ours (a backend that cannot be
 * reached): a fatal alert, best effort, and no more data either way. */
void kc_conn_abort(struct kc_conn *c, int alert);

/* TLS 1.3 key update of our send keys, asking the peer to update too when
 * request_peer.  The KeyUpdate goes out under the old key, then the new
 * key is installed, with nothing written in between. */
int kc_conn_key_update(struct kc_conn *c, bool request_peer, struct kc_err *err);

int kc_conn_fd(const struct kc_conn *c);
/* The record channel in use: its kind, named for reports ("kernel",
 * "user-space"), and what it can do (core/channel.h). */
enum kc_channel_kind kc_conn_channel_kind(const struct kc_conn *c);
const char *kc_conn_channel_name(const struct kc_conn *c);
const struct kc_channel_caps *kc_conn_channel_caps(const struct kc_conn *c);
const char *kc_conn_fallback_reason(const struct kc_conn *c);  /* NULL if none */
bool kc_conn_peer_closed(const struct kc_conn *c);
/* The fatal alert the peer ended the connection with; -1: none. */
int kc_conn_peer_alert(const struct kc_conn *c);
bool kc_conn_close_sent(const struct kc_conn *c);
/* The peer ended the stream after our close_notify without its own. */
bool kc_conn_close_unanswered(const struct kc_conn *c);
uint16_t kc_conn_version(const struct kc_conn *c);
const struct kc_dir_stats *kc_conn_stats(const struct kc_conn *c, enum kc_dir dir);
unsigned kc_conn_tickets(const struct kc_conn *c);

gnutls_cipher_algorithm_t kc_conn_cipher(const struct kc_conn *c);

/* Records protected by the current key (the channel's sequence number:
 * the kernel's rec_seq on kTLS) and in total, for one direction. */
int kc_conn_records(struct kc_conn *c, enum kc_dir dir, uint64_t *current_key,
		    uint64_t *total);

/* The send-side record count at which keys are updated (TLS 1.3) or the
 * session is closed (TLS 1.2); UINT64_MAX when the cipher has no limit. */
uint64_t kc_conn_rekey_point(const struct kc_conn *c);

/* The record size limits agreed in the handshake and how the channel
 * keeps them, with the kernel options in force (see core/channel.h). */
const struct kc_record_limits *kc_conn_limits(const struct kc_conn *c);

/* Tickets received after the handover, parsed (client, TLS 1.3). */
const struct kc_ticket_store *kc_conn_ticket_store(const struct kc_conn *c);

/* Lowercase RFC name of an alert ("bad_record_mac"). */
const char *kc_alert_name(int desc, char *buf, size_t len);

#endif
