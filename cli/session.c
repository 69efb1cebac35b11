/* cli/session.c: the connect and listen subcommands: TCP, handshake,
 * handover, then the pump; everything a user sees about it. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/console.h"
#include "cli/hsreport.h"
#include "cli/report.h"
#include "cli/serve.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "core/atomicfile.h"
#include "core/conn.h"
#include "core/ctl.h"
#include "core/net.h"
#include "core/pump.h"
#include "core/sessfile.h"

struct session_ctx {
	const struct cli_opts *o;
	gnutls_session_t session;
};

static void on_event(void *ctx, const struct kc_event *ev)
{
	struct session_ctx *sx = ctx;
	char name[64];

	switch (ev->kind) {
	case KC_EV_TICKET:
		if (ev->ticket)
			cli_event("session ticket received (lifetime %us)", ev->ticket->lifetime);
		else
			cli_event("session ticket received");
		if (sx->o->session_out) {
			struct kc_err err = { 0 };
			if (cli_save_session(sx->session, sx->o, sx->o->session_out, &err) < 0)
				cli_error("%s", err.msg);
		}
		break;
	case KC_EV_PEER_KEY_UPDATE:
		cli_event("peer updated its keys%s", ev->requested ? " and asked us to update ours" : "");
		break;
	case KC_EV_KEY_UPDATE_SENT:
		if (ev->automatic)
			cli_event("updated our send keys after %llu records (limit reached)",
				  (unsigned long long)ev->records);
		else
			cli_event("updated our send keys%s",
				  ev->requested ? " and asked the peer to update" : "");
		break;
	case KC_EV_PEER_CLOSE:
		cli_event("peer sent close_notify");
		break;
	case KC_EV_WARNING_ALERT:
		cli_notice("peer sent warning alert '%s' (ignored)",
			   kc_alert_name(ev->alert, name, sizeof name));
		break;
	case KC_EV_RX_LIMIT:
		cli_notice("warning: the peer sent %llu records under one key, past the cipher's "
			   "limit; asked it to update its keys", (unsigned long long)ev->records);
		break;
	}
}

/* What --eof does once our input has ended, said as it happens. */
static void on_pump_note(void *ctx, enum kc_pump_note n)
{
	const struct cli_opts *o = ctx;
	double secs = o->linger_ms / 1000.0;

	if (n == KC_PUMP_NOTE_QUIET)
		cli_event("the peer was quiet for %g s: close_notify sent", secs);
	else if (o->eof == KC_EOF_CLOSE)
		cli_event("end of input: close_notify sent; reading until the peer closes");
	else if (o->eof == KC_EOF_WAIT)
		cli_event("end of input: waiting for the peer to close (--eof wait)");
	else
		cli_event("end of input: waiting for the peer to close, or to be quiet for %g s",
			  secs);
}

/* The control socket rides on the pump's loop. */
struct ctl_ctx {
	struct kc_ctl_server *server;
	struct kc_conn *conn;
	struct kc_session_info info;
};

static int ctl_fds(void *ctx, struct pollfd *fds, int max)
{
	struct ctl_ctx *cc = ctx;
	return kc_ctl_server_fds(cc->server, fds, max);
}

static void ctl_ready(void *ctx, struct kc_pump *p, const struct pollfd *fds, int n)
{
	struct ctl_ctx *cc = ctx;
	kc_ctl_server_ready(cc->server, cc->conn, &cc->info, fds, n);
}

/* A session file that cannot be used is worth a message, not a failure:
 * the handshake goes on without it. */
static bool load_session(const struct cli_opts *o, gnutls_datum_t *saved)
{
	struct kc_err err = { 0 };
	char peer[KC_HOST_MAX + KC_PORT_MAX + 4];

	cli_peer_name(o, peer, sizeof peer);
	if (kc_sessfile_load(o->session_in, peer, saved, &err) == 0)
		return true;
	cli_notice("%s; doing a full handshake", err.msg);
	return false;
}

static void report_resumption(const struct cli_opts *o, gnutls_session_t session,
			      int resume_status)
{
	if (!o->session_in || resume_status == 1)
		return;
	if (resume_status < 0)
		cli_notice("the session in %s is not usable (%s); did a full handshake",
			   o->session_in, gnutls_strerror(resume_status));
	else if (gnutls_session_is_resumed(session))
		cli_notice("session resumed from %s", o->session_in);
	else
		cli_notice("session in %s not resumed (the server did not accept it: expired "
			   "or unknown to it); did a full handshake", o->session_in);
}

/* 0-RTT: what the client sends as early data, and what became of it. */
struct early {
	gnutls_datum_t data;           /* connect --early-data FILE's bytes */
	int status;                    /* KC_EARLY_* */
};

/* connect --early-data FILE's bytes, read before connecting so that a
 * file that cannot be read fails at once.  0 or the exit status. */
static int load_early_data(const struct cli_opts *o, gnutls_datum_t *data)
{
	struct kc_err err = { 0 };
	if (!o->early_data)
		return 0;
	int rc = gnutls_load_file(o->early_data, data);
	if (rc < 0) {
		kc_err_set(&err, KC_E_IO, "cannot read --early-data file '%s': %s",
			   o->early_data, rc == GNUTLS_E_FILE_ERROR ? strerror(errno)
								    : gnutls_strerror(rc));
		return cli_fail(&err);
	}
	return 0;
}

/* The handshake on a connected socket, resuming from --session-in when
 * that file can be used (and sending --early-data with it).  Returns 0
 * or the exit status (said why). */
static int handshake(int fd, const struct cli_opts *o, struct kc_creds *creds,
		     gnutls_session_t *session, int *resume_status, struct early *early)
{
	struct kc_err err = { 0 };
	struct kc_tls_opts tls = o->tls;
	gnutls_datum_t saved = { 0 };

	*resume_status = 1;   /* 1: nothing offered */
	if (o->session_in && load_session(o, &saved))
		tls.resume_data = &saved;
	tls.resume_status = resume_status;
	if (early->data.data) {
		tls.early_data = &early->data;
		tls.early_status = &early->status;
	}
	tls.stop = &cli_stop_signal;
	tls.stop_fd = cli_stop_fd;
	int hs = kc_tls_handshake(fd, &tls, creds, session, &err);
	kc_sessfile_free(&saved);
	if (hs < 0)
		return cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
	return 0;
}

/* Every byte of buf through the connection, before the pump starts;
 * a stop signal ends the wait for a peer that does not read. */
static int send_all(struct kc_conn *conn, const unsigned char *buf, size_t len,
		    struct kc_err *err)
{
	while (len > 0 || kc_conn_tx_pending(conn)) {
		if (cli_stop_signal)
			return kc_err_set(err, KC_E_IO, "stopped while sending the early data");
		ssize_t n = len ? kc_conn_write(conn, buf, len, err) : kc_conn_flush(conn, err);
		if (n == -1)
			return -1;
		if (n == KC_CONN_AGAIN) {
			struct pollfd pf[2] = { { .fd = kc_conn_fd(conn), .events = POLLOUT },
						{ .fd = cli_stop_fd, .events = POLLIN } };
			if (poll(pf, cli_stop_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
				return kc_err_errno(err, KC_E_IO, errno, "poll");
			continue;
		}
		if (len) {
			buf += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* Client: say what became of the early data, and send it again after
 * the handshake unless the server took it, so that nothing is lost. */
static int early_data_after(const struct cli_opts *o, struct kc_conn *conn,
			    const struct early *e, struct kc_err *err)
{
	if (!e->data.data)
		return 0;
	static const char *const why[] = {
		[KC_EARLY_NONE] = "the session in the --session-in file is not usable",
		[KC_EARLY_TOO_BIG] = "it is larger than the ticket allows",
		[KC_EARLY_NOT_ALLOWED] = "the ticket does not allow early data",
		[KC_EARLY_REJECTED] = "the server refused it",
	};
	if (e->status == KC_EARLY_ACCEPTED) {
		cli_info("early data accepted: %u bytes sent in 0-RTT", e->data.size);
		return 0;
	}
	cli_info("early data not sent in 0-RTT (%s): sending its %u bytes after the handshake",
		 why[e->status], e->data.size);
	return send_all(conn, e->data.data, e->data.size, err);
}

/* Server: the client's early data goes first, to standard output (or
 * back to it under --echo). */
static int early_data_received(const struct cli_opts *o, gnutls_session_t session,
			       struct kc_conn *conn, struct kc_err *err)
{
	unsigned char buf[4096];
	size_t n, total = 0;
	while ((n = kc_tls_early_data(session, buf, sizeof buf)) > 0) {
		total += n;
		if (o->echo) {
			if (send_all(conn, buf, n, err) < 0)
				return -1;
		} else if (kc_write_all(STDOUT_FILENO, buf, n) < 0) {
			return kc_err_errno(err, KC_E_IO, errno, "cannot write to standard output");
		}
	}
	if (o->tls.accept_early_data && total)
		cli_info("early data accepted: %zu bytes received in 0-RTT", total);
	else if (o->tls.accept_early_data)
		cli_info("no early data received");
	return 0;
}

/* What the session is, said once it runs: at a terminal the summary is
 * worth showing, in a pipe only with -v. */
static void announce(const struct cli_opts *o, gnutls_session_t session,
		     const struct kc_conn *conn, const char *peer, const char *why)
{
	char desc[256];

	if (kc_conn_fallback_reason(conn))
		why = kc_conn_fallback_reason(conn);
	if (why[0])
		cli_notice("notice: kernel TLS unavailable (%s); using the user-space record channel",
			   why);
	kc_tls_describe(session, desc, sizeof desc);
	char sni[256] = "";
	if (o->tls.role == KC_SERVER && kc_tls_server_name(session, sni + 6, sizeof sni - 6))
		memcpy(sni, ", SNI ", 6);
	(!o->echo && isatty(STDIN_FILENO) ? cli_notice : cli_info)(
		"%s %s: %s%s, %s channel", o->tls.role == KC_CLIENT ? "connected to" : "accepted",
		peer, desc, sni, kc_conn_channel_name(conn));
	cli_describe_limits(conn, desc, sizeof desc);
	cli_info("record size: %s", desc);
}

/* The pump between stdin/stdout (or the echo) and the connection, with
 * the control socket riding on its loop and the console at a terminal.
 * Returns what kc_pump_run returns. */
static int pump(const struct cli_opts *o, gnutls_session_t session, struct kc_conn *conn,
		const char *peer, struct kc_err *err)
{
	struct kc_pump_opts po = {
		.in_fd = o->echo ? -1 : STDIN_FILENO,
		.out_fd = o->echo ? -1 : STDOUT_FILENO,
		.echo = o->echo,
		.copy = o->no_zerocopy,
		.eof = o->eof,
		.linger_ms = o->linger_ms,
		.stop = &cli_stop_signal,
		.stop_fd = cli_stop_fd,
		.on_note = on_pump_note,
		.note_ctx = (void *)o,
	};
	char role_peer[KC_ADDRSTR_MAX];
	snprintf(role_peer, sizeof role_peer, "%s", peer);
	struct ctl_ctx cc = {
		.conn = conn,
		.info = { .role = o->tls.role == KC_CLIENT ? "client" : "server",
			  .peer = role_peer, .session = session, .started = time(NULL) },
	};
	struct kc_ctl_server *ctl = cli_ctl_open("this session");
	if (ctl) {
		cc.server = ctl;
		po.side_fds = ctl_fds;
		po.side_ready = ctl_ready;
		po.side_ctx = &cc;
	}
	struct cli_console *console = cli_console_new(o, &cc.info, &po);
	cli_msg_set_interactive(cli_console_interactive(console));
	if (!o->echo) {
		enum kc_data_path in, out;
		kc_pump_data_path(conn, &po, &in, &out);
		cli_info("data path: standard input by %s, standard output by %s",
			 kc_data_path_name(in), kc_data_path_name(out));
	}
	int end = kc_pump_run(conn, &po, err);
	cli_console_free(console);
	cli_msg_set_interactive(false);
	kc_ctl_server_close(ctl);
	return end;
}

/* Handshake, handover and pump on a connected socket; the exit status. */
static int run_session(int fd, const struct cli_opts *o, struct kc_creds *creds,
		       const char *peer, const gnutls_datum_t *early_data)
{
	struct kc_err err = { 0 };
	gnutls_session_t session = NULL;
	struct kc_conn *conn = NULL;
	char why[512];
	int resume_status, status;
	struct early early = { .status = KC_EARLY_NONE };
	if (early_data)
		early.data = *early_data;

	int kernel = kc_conn_choose_channel(fd, o->ktls, why, sizeof why, &err);
	if (kernel < 0)
		return cli_fail(&err);
	if ((status = handshake(fd, o, creds, &session, &resume_status, &early)) != 0)
		goto out;
	struct session_ctx sx = { .o = o, .session = session };
	struct kc_conn_opts co = {
		.role = o->tls.role,
		.kernel = kernel == 1,
		.fallback = o->ktls == KC_KTLS_AUTO,
		.soft = { .no_rekey = o->soft_no_rekey },
		.key_update_after = o->key_update_after,
		.record_size_limit = o->tls.record_size_limit != 0,
		.on_event = on_event,
		.event_ctx = &sx,
	};
	if (kc_conn_open(session, fd, &co, &conn, &err) < 0) {
		status = cli_fail(&err);
		goto out;
	}
	announce(o, session, conn, peer, why);
	if ((status = cli_hsreport(o, session, peer)) != 0)
		goto out;
	report_resumption(o, session, resume_status);
	if ((o->tls.role == KC_CLIENT ? early_data_after(o, conn, &early, &err)
				      : early_data_received(o, session, conn, &err)) < 0) {
		status = cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
		goto out;
	}
	/* TLS 1.2 has no tickets after the handshake: save right away. */
	if (o->session_out && gnutls_protocol_get_version(session) == GNUTLS_TLS1_2 &&
	    cli_save_session(session, o, o->session_out, &err) < 0)
		cli_error("%s", err.msg);

	int end = pump(o, session, conn, peer, &err);
	if (end < 0) {
		status = cli_fail(&err);
		goto out;
	}
	/* Ended by the peer, by the end of our input or by /quit: 0, unless
	 * a stop signal cut it short. */
	status = end == KC_PUMP_STOPPED ? cli_interrupted_status() : 0;
	if (kc_conn_close_unanswered(conn))
		cli_notice("the peer closed without answering our close_notify: whatever it "
			   "had not sent by then is lost (nothing arrived after ours)");
	cli_info("session closed: %llu bytes sent, %llu received",
		 (unsigned long long)kc_conn_stats(conn, KC_TX)->bytes,
		 (unsigned long long)kc_conn_stats(conn, KC_RX)->bytes);
out:
	kc_conn_free(conn);
	if (session)
		gnutls_deinit(session);
	return status;
}

static int load_creds(const struct cli_opts *o, struct kc_creds **creds)
{
	struct kc_err err;
	if (kc_creds_new(&o->tls, creds, &err) < 0)
		return cli_fail(&err);
	return 0;
}

/* --starttls: each line of the preamble with -v, as it happens. */
static void on_starttls_line(void *ctx, bool from_server, const char *line)
{
	const struct cli_opts *o = ctx;
	cli_info("%s %s %s", kc_starttls_name(o->starttls), from_server ? "S:" : "C:", line);
}

void cli_starttls_opts(const struct cli_opts *o, bool transcript, struct kc_starttls_opts *so,
		       char me[256])
{
	/* EHLO and LHLO name us: this host's name, as mail clients do. */
	if (gethostname(me, 256) < 0 || !me[0] || strpbrk(me, " \t\r\n"))
		snprintf(me, 256, "localhost");
	me[255] = '\0';
	*so = (struct kc_starttls_opts){
		.proto = o->starttls,
		.server_name = o->tls.verify_name,
		.client_name = me,
		.timeout_ms = o->tls.handshake_timeout_ms,
		.on_line = transcript ? on_starttls_line : NULL,
		.line_ctx = (void *)o,
		.stop = &cli_stop_signal,
		.stop_fd = cli_stop_fd,
	};
}

/* The plain-text preamble of --starttls on a connected socket; 0 or the
 * exit status (said why). */
static int starttls(int fd, const struct cli_opts *o)
{
	struct kc_err err = { 0 };
	struct kc_starttls_opts so;
	char me[256];
	cli_starttls_opts(o, true, &so, me);
	if (kc_starttls_run(fd, &so, &err) < 0)
		return cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
	cli_info("%s: the server agreed to TLS", kc_starttls_name(o->starttls));
	return 0;
}

/* connect --accept: plain clients in, a TLS connection out for each. */
static int originate(const struct cli_opts *o, struct kc_creds *creds)
{
	struct kc_err err;
	char bound[KC_ADDRSTR_MAX];
	int lfd = kc_tcp_listen(&o->accept_hp, bound, &err);
	if (lfd < 0)
		return cli_fail(&err);
	cli_notice("listening on %s for plain TCP clients, each with its own TLS connection "
		   "to %s", bound, o->target_arg);
	return cli_serve(o, lfd, creds);
}

int cli_connect(const struct cli_opts *o)
{
	struct kc_err err;
	struct kc_creds *creds;
	char peer[KC_ADDRSTR_MAX];
	int status;

	gnutls_datum_t early = { 0 };
	if ((status = load_early_data(o, &early)) != 0)
		return status;
	if ((status = load_creds(o, &creds)) != 0) {
		gnutls_free(early.data);
		return status;
	}
	if (o->tls.insecure)
		cli_notice("warning: --insecure: the server's certificate is NOT verified; "
			   "anyone on the path can read and change this session");
	if (o->accept) {
		status = originate(o, creds);
		kc_creds_free(creds);
		return status;
	}
	int fd = kc_tcp_connect(&o->hp, o->connect_timeout_ms, peer, &err);
	if (fd < 0) {
		kc_creds_free(creds);
		gnutls_free(early.data);
		return cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
	}
	status = o->starttls ? starttls(fd, o) : 0;
	if (status == 0)
		status = run_session(fd, o, creds, peer, early.data ? &early : NULL);
	close(fd);
	kc_creds_free(creds);
	gnutls_free(early.data);
	return status;
}

int cli_listen(const struct cli_opts *o)
{
	struct kc_err err;
	struct kc_creds *creds;
	char bound[KC_ADDRSTR_MAX], peer[KC_ADDRSTR_MAX];
	int status;

	if ((status = load_creds(o, &creds)) != 0)
		return status;
	if (cli_serves_many(o) && cli_install_reload_signal() < 0) {
		kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot set up SIGHUP (reload)");
		kc_creds_free(creds);
		return cli_fail(&err);
	}
	int lfd = kc_tcp_listen(&o->hp, bound, &err);
	if (lfd < 0) {
		kc_creds_free(creds);
		return cli_fail(&err);
	}
	cli_notice("listening on %s", bound);
	if (cli_serves_many(o)) {
		status = cli_serve(o, lfd, creds);
		kc_creds_free(creds);
		return status;
	}
	do {
		int fd = kc_tcp_accept(lfd, cli_stop_fd, peer, &err);
		if (fd < 0) {
			status = cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
			break;
		}
		cli_info("connection from %s", peer);
		status = run_session(fd, o, creds, peer, NULL);
		close(fd);
	} while (o->keep_open && !cli_stop_signal);
	if (cli_stop_signal)
		status = cli_interrupted_status();
	close(lfd);
	kc_creds_free(creds);
	return status;
}
