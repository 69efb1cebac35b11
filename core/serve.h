/* core/serve.h: many TLS sessions at once, in one loop (core/loop.h).
 *
 * kc_serve_run accepts clients on a listening socket and runs each as its
 * own session: a non-blocking handshake under its own deadline, the
 * handover to a kc_conn, then the session's plaintext joined to its
 * endpoint, with a bounded buffer each way (a side that cannot take more
 * stops the other being read):
 *
 *   echo     the client's data goes back to it; after its close_notify,
 *            what was read is echoed, then ours goes out.
 *   forward  a new non-blocking TCP connection to the backend for each
 *            client, made after the handshake.  The client's close_notify
 *            becomes a FIN to the backend (TLS 1.3: the backend may still
 *            answer; TLS 1.2: RFC 5246 §7.2.1, we stop reading it and
 *            answer at once); the backend's end becomes our close_notify
 *            once its data is out (the client may go on sending); a client
 *            that ends without close_notify (truncated) becomes a FIN too.
 *            A backend that refuses, resets or does not answer in time
 *            ends that session with a fatal alert.  On the kernel
 *            channel the bytes go through a pipe each way with splice,
 *            never through user space (control records still come up
 *            through the record path); elsewhere through a buffer.
 *   exec     a command for each client (core/spawn.h), started after the
 *            handshake on one end of a socketpair that then takes the
 *            backend's place: the client's close_notify becomes EOF on
 *            its standard input, the end of its standard output (or its
 *            exit, once what it wrote is read) our close_notify.  Its
 *            environment says who the client is (kc_serve_opts.command).
 *            When the command stops reading, what the client sends is
 *            dropped.  A session lasts until its command has exited too
 *            (the report says how): when the TLS side ends first, the
 *            socketpair is closed (EOF in, EPIPE out) and the session
 *            waits.  A command that cannot be started ends the session
 *            with a fatal alert.
 *   originate  the other way round (TLS origination): the listening
 *            socket takes plain TCP clients, and each gets its own TLS
 *            connection, as the TLS client (tls.role), to the backend,
 *            made and handshaken without blocking, then relayed as in
 *            forward with the roles of the two sides swapped: the plain
 *            client's end becomes our close_notify, the server's
 *            close_notify a FIN to the plain client, a server that ends
 *            without one a FIN too (the report says truncated).  A
 *            server that cannot be reached, or whose handshake fails,
 *            ends that session; the plain client's connection is reset
 *            (so that it cannot take the end for an empty answer).
 *   socket   as exec, with the caller in the command's place: the other
 *            end of the socketpair goes to on_socket (with the report as
 *            it stands: id, peer, version, cipher, channel), which owns
 *            it from then on.  The caller reads the client's plaintext
 *            from it and writes its answer to it; closing it (or
 *            shutting down its write side) becomes our close_notify once
 *            what it wrote is out.  The client's close_notify, and the
 *            stop, become EOF on it.  on_socket refusing ends the session
 *            with a fatal alert.
 *
 * At max_conns sessions the listener is set aside until one ends; when
 * accept runs out of file descriptors (EMFILE, ENFILE) accepting pauses
 * for a second (and until a session ends).  When stop_fd becomes
 * readable: no more accepting, sessions still in the handshake or
 * connecting end, every other one sends close_notify once what it has
 * read is delivered, and the loop waits up to drain_timeout_ms for the
 * peers before cutting off the rest.  Commands (exec) get EOF on their
 * standard input at the stop, and their output still goes out; those
 * still running at the drain timeout get SIGTERM, and SIGKILL a second
 * later.
 *
 * Several processes may serve the same listening socket at once (listen
 * --workers): each waits for it with EPOLLEXCLUSIVE, so that a client
 * wakes one of them, and one that finds nothing to accept (EAGAIN) waits
 * again.  id_first and id_step keep their session ids apart.
 *
 * When reload_fd becomes readable (SIGHUP), the credentials are loaded
 * again from the files tls names (kc_creds_new: --cert, --key, --cafile)
 * and used for every handshake that starts after it, with a new
 * session-ticket key (tickets issued before do not resume: a full
 * handshake with the new certificate instead).  Sessions already in
 * their handshake or established keep the credentials they started
 * with, which live on until the last of them ends.  When the files
 * cannot be loaded, the old credentials stay.  With reload_keys, what
 * the pipe carries are session-ticket keys (KC_TICKET_KEY_SIZE bytes
 * each, written whole): the new credentials take the last one, so that
 * processes reloading together keep resuming each other's tickets.  Either way on_reload
 * says how it went.  During the drain, requests are ignored.
 *
 * With ctl, the process's control socket (core/ctl.h) is served in the
 * same loop: `ktlsctl stats` sees every established session, each by its
 * report's id, and keyupdate and tickets reach one by that id.
 *
 * Nothing here prints: each session's end comes to on_end, notices
 * (accepting paused, ...) to on_notice and reloads to on_reload. */
#ifndef KC_SERVE_H
#define KC_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/conn.h"
#include "core/err.h"
#include "core/handshake.h"
#include "core/net.h"

struct addrinfo;
struct kc_ctl_server;

enum kc_serve_mode { KC_SERVE_ECHO, KC_SERVE_FORWARD, KC_SERVE_EXEC, KC_SERVE_SOCKET,
		    KC_SERVE_ORIGINATE };

/* How a session ended. */
enum kc_session_end {
	KC_END_CLOSED,        /* close_notify both ways (and the backend closed) */
	KC_END_TRUNCATED,     /* the TLS peer ended without close_notify */
	KC_END_HANDSHAKE,     /* the handshake failed or timed out */
	KC_END_BACKEND,       /* the backend refused, timed out or failed (originate: the
			       * TLS server could not be reached) */
	KC_END_COMMAND,       /* the command could not be started */
	KC_END_ERROR,         /* any other failure (protocol, I/O) */
	KC_END_STOPPED,       /* a stop came before the session was established */
	KC_END_CUT_OFF,       /* still open when the drain timeout expired */
};

/* "closed", "truncated", "handshake-failed", "backend-failed",
 * "command-failed", "error", "stopped", "drain-timeout" */
const char *kc_session_end_name(enum kc_session_end end);

struct kc_session_report {
	unsigned long id;                 /* id_first, + id_step, ... in the order accepted */
	char peer[KC_ADDRSTR_MAX];        /* who connected (originate: the plain client) */
	char backend[KC_ADDRSTR_MAX];     /* "" without one (originate: the TLS server) */
	char version[16];                 /* "TLS1.3"; "" before the handshake */
	char cipher[32];                  /* "AES-256-GCM"; "" before the handshake */
	bool resumed;                     /* the handshake resumed a session */
	char sni[256];                    /* the server name the client sent; "" none */
	char alpn[256];                   /* the ALPN protocol negotiated; "" none */
	size_t early;                     /* bytes of early data (0-RTT) taken */
	const char *channel;              /* "kernel", "user-space"; NULL before */
	const char *path;                 /* "splice", "copy" (kc_data_path_name); NULL before */
	uint64_t rx, tx;                  /* application bytes from / to the TLS peer */
	long long duration_ms;
	enum kc_session_end end;
	struct kc_err err;                /* why, unless closed */
	/* exec: the command's process id (0: never started) and, once it
	 * ended, waitpid's status */
	long command_pid;
	bool command_ended;
	int command_status;
};

struct kc_serve_opts {
	enum kc_serve_mode mode;
	int listen_fd;                    /* listening; kc_serve_run closes it */
	/* the server role, the client's for originate; handshake_timeout_ms
	 * each */
	struct kc_tls_opts tls;
	struct kc_creds *creds;           /* borrowed: kc_serve_run takes its own reference */
	enum kc_ktls_mode ktls;
	struct kc_soft_opts soft;
	uint64_t key_update_after;
	/* forward and exec on a channel that can splice both ways (the
	 * kernel's): bytes go socket to pipe to socket, never through user
	 * space, unless copy */
	bool copy;
	/* forward and originate: where to, tried in order for each client */
	const struct addrinfo *backend;
	const char *backend_name;         /* as given, for messages */
	unsigned connect_timeout_ms;
	/* exec: run with sh -c for each client, with KTLSCTL_SESSION (the
	 * report's id), KTLSCTL_PEER, KTLSCTL_VERSION, KTLSCTL_CIPHER and
	 * KTLSCTL_CHANNEL (as in the report), and, when there is one,
	 * KTLSCTL_SNI, KTLSCTL_ALPN and KTLSCTL_CLIENT_SUBJECT (under
	 * tls.verify_client) in its environment */
	const char *command;
	/* socket: fd is the caller's (to close) whatever it returns; -1
	 * with *err to refuse the session.  Called in kc_serve_run's thread:
	 * it must not block. */
	int (*on_socket)(void *ctx, int fd, const struct kc_session_report *r,
			 struct kc_err *err);
	unsigned max_conns;               /* 0: 1024 */
	unsigned drain_timeout_ms;
	/* After our close_notify, how long the client has to answer it
	 * before the session ends (truncated, not waiting for a silent
	 * client any longer); 0: as long as it takes. */
	unsigned close_timeout_ms;
	int stop_fd;                      /* readable: stop */
	/* readable: reload the credentials (-1: never); non-blocking, and
	 * read until empty at each reload */
	int reload_fd;
	/* After each handshake, before the session relays (NULL: none): the
	 * session as GnuTLS negotiated it, for a report (core/hsinfo.h; -v).
	 * Only for the call; it must not block. */
	void (*on_handshake)(void *ctx, const struct kc_session_report *r,
			     gnutls_session_t tls);
	bool reload_keys;                 /* the pipe carries ticket keys (above) */
	/* Session ids: id_first, id_first + id_step, ... (0: 1 and 1) */
	unsigned long id_first, id_step;
	void (*on_end)(void *ctx, const struct kc_session_report *r);
	void (*on_notice)(void *ctx, const char *msg);
	/* After a reload: the new credentials (only for the call), or NULL
	 * and why not (the old ones stay). */
	void (*on_reload)(void *ctx, const struct kc_creds *creds, const struct kc_err *err);
	void *ctx;
	/* The control socket to serve (the caller's, open; NULL: none). */
	struct kc_ctl_server *ctl;
};

struct kc_serve_result {
	unsigned long sessions;           /* accepted */
	unsigned long at_stop;            /* running when the stop came */
	unsigned long unclean;            /* of those, ended other than closed */
	unsigned long cut_off;            /* of those, cut off at the drain timeout */
};

/* Serve until a stop and the drain after it.  -1 with *err only when
 * the loop itself fails (epoll); every session's failure is its own. */
int kc_serve_run(const struct kc_serve_opts *opts, struct kc_serve_result *res,
		 struct kc_err *err);

#endif
