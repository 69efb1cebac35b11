/* core/serve.c: many TLS sessions at once, in one loop (see serve.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cipher.h"
#include "core/ctl.h"
#include "core/keys.h"
#include "core/loop.h"
#include "core/pump.h"
#include "core/serve.h"
#include "core/spawn.h"

/* Bytes buffered each way per session: the bound on what one session
 * holds in user space, whatever its peers do. */
#define SESSION_BUF (32 * 1024)
/* Moves per wake-up before a session yields to the others. */
#define ROUNDS_PER_TURN 8
#define ACCEPTS_PER_TURN 64
/* How long accepting pauses when the process is out of descriptors. */
#define EMFILE_PAUSE_MS 1000
#define DEFAULT_MAX_CONNS 1024
/* After the drain timeout's SIGTERM, how long commands get before SIGKILL. */
#define KILL_GRACE_MS 1000

/* ST_DIALING: originate's TCP connect to the TLS server, before its
 * handshake; ST_CONNECTING: forward's to the backend, after it.
 * ST_COMMAND: the TLS side is over, the session waits for its command to
 * exit (exec), so that its report can say how. */
enum state { ST_DIALING, ST_HANDSHAKE, ST_CONNECTING, ST_RELAY, ST_COMMAND };

struct server;

/* One way of a spliced session: a pipe and the bytes in it (its capacity
 * counts pages, not bytes: "full" is what splice said). */
struct pipe_leg {
	int r, w;
	size_t len;
	bool full;
};

struct session {
	struct server *srv;
	struct session *prev, *next;
	enum state state;
	/* fd: the TLS side; bfd: the plain one (forward's backend, exec's
	 * socketpair, originate's accepted client) */
	int fd, bfd;
	struct kc_loop_item client, backend;   /* the client item also keeps the deadline */
	/* exec: the command (bfd is our end of its socketpair) and its pidfd */
	struct kc_child child;
	struct kc_loop_item proc;
	/* exec, socket: the command or the caller stopped reading: drop
	 * what the client sends */
	bool command_in_gone;
	struct kc_hs *hs;
	gnutls_session_t tls;
	struct kc_creds *creds;      /* a reference: what its handshake started with */
	struct kc_conn *conn;
	bool kernel;                 /* the kernel's ULP is attached */
	const struct addrinfo *next_ai;
	/* c2b: from the client (to the backend, or back to the client when
	 * echoing); b2c: from the backend to the client. */
	struct kc_buf c2b, b2c;
	/* zc: the same two ways through pipes, by splice (data the record
	 * path reads, after a control record, still goes through c2b,
	 * behind what the pipe holds) */
	bool zc;
	struct pipe_leg c2bp, b2cp;
	bool client_eof;             /* its close_notify came */
	bool truncated;              /* it ended without one */
	bool backend_eof, backend_shut;
	/* The backend's last read said EAGAIN and epoll has not called it
	 * readable since: no read is tried (a syscall saved each round of a
	 * client-to-backend transfer). */
	bool backend_dry;
	bool draining;               /* the stop: read no more from the backend */
	/* A socket reported an error or hangup while we waited for nothing
	 * on it: epoll would report it on every turn, so it is no longer
	 * watched (what it did shows in the next read or write). */
	bool client_hup, backend_hup;
	bool at_stop;
	long long started;
	time_t established;          /* for the control socket's uptime */
	struct kc_session_report rep;
};

struct server {
	const struct kc_serve_opts *o;
	struct kc_loop *loop;
	struct kc_loop_item listener, stop, reload;
	struct kc_creds *creds;      /* a reference: for handshakes that start now */
	int lfd;
	bool listening;              /* the listener is watched */
	bool emfile_paused;
	bool stopping;
	bool killing;                /* the drain timeout passed: SIGKILL next */
	unsigned max;
	unsigned long n, next_id, id_step;
	struct session *sessions;    /* the newest first */
	struct session *oldest;      /* the list's tail */
	struct kc_serve_result *res;
	/* originate: the newest session a server gave us (its latest
	 * ticket), offered by every handshake that starts after it */
	gnutls_datum_t resume;
	/* The control socket: its fds (listener and clients) in an epoll
	 * set of their own, watched by one item of the loop. */
	struct kc_loop_item ctl;
	struct kc_ctl_many many;
	int ctl_fds[KC_CTL_MAX_FDS];
	int ctl_n;
	/* reload_keys: the ticket key the next reload takes */
	unsigned char key[KC_TICKET_KEY_SIZE];
	size_t key_len;
};

const char *kc_session_end_name(enum kc_session_end end)
{
	switch (end) {
	case KC_END_CLOSED: return "closed";
	case KC_END_TRUNCATED: return "truncated";
	case KC_END_HANDSHAKE: return "handshake-failed";
	case KC_END_BACKEND: return "backend-failed";
	case KC_END_COMMAND: return "command-failed";
	case KC_END_ERROR: return "error";
	case KC_END_STOPPED: return "stopped";
	case KC_END_CUT_OFF: return "drain-timeout";
	}
	return "?";
}

/* Whether the backend is our end of a local socketpair: a command's
 * (exec) or the caller's (socket), which behave alike. */
static bool local(const struct session *s)
{
	enum kc_serve_mode mode = s->srv->o->mode;
	return mode == KC_SERVE_EXEC || mode == KC_SERVE_SOCKET;
}

static void notice(struct server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notice(struct server *srv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (srv->o->on_notice)
		srv->o->on_notice(srv->o->ctx, msg);
}

/* ------------------------------------------------------------ accepting */

static void update_listener(struct server *srv)
{
	bool want = !srv->stopping && !srv->emfile_paused && srv->n < srv->max && srv->lfd >= 0;
	if (want == srv->listening)
		return;
	/* EPOLLEXCLUSIVE: other processes may wait on the same listener;
	 * one of them is woken for a client, not all. */
	if (want && kc_loop_watch(srv->loop, &srv->listener, EPOLLIN | EPOLLEXCLUSIVE) < 0)
		return;
	if (!want)
		kc_loop_unwatch(srv->loop, &srv->listener);
	srv->listening = want;
}

static void session_end(struct session *s, enum kc_session_end end, const struct kc_err *why);
static void session_run(struct session *s);
static void on_client(struct kc_loop_item *item, uint32_t events);
static void on_backend(struct kc_loop_item *item, uint32_t events);
static void on_proc(struct kc_loop_item *item, uint32_t events);

static void fail(struct session *s, enum kc_session_end end, const struct kc_err *why)
{
	session_end(s, end, why);
}

static void dial(struct session *s, int last_errno);

/* The TLS side's socket is connected: the kernel's ULP (when it can be
 * had) and the first step of the handshake, under its deadline. */
static void start_tls(struct session *s)
{
	struct server *srv = s->srv;
	const struct kc_serve_opts *o = srv->o;
	int fd = s->fd;
	struct kc_err err = { 0 };
	int kernel = kc_conn_choose_channel(fd, o->ktls, NULL, 0, &err);
	if (kernel < 0) {
		fail(s, KC_END_HANDSHAKE, &err);
		return;
	}
	s->kernel = kernel == 1;
	s->creds = kc_creds_ref(srv->creds);
	struct kc_tls_opts tls = o->tls;
	if (o->mode == KC_SERVE_ORIGINATE && srv->resume.size)
		tls.resume_data = &srv->resume;   /* copied by GnuTLS before this returns */
	if (kc_hs_start(fd, &tls, s->creds, &s->hs, &err) < 0) {
		fail(s, KC_END_HANDSHAKE, &err);
		return;
	}
	s->state = ST_HANDSHAKE;
	unsigned limit = o->tls.handshake_timeout_ms ? o->tls.handshake_timeout_ms : 30000;
	kc_loop_deadline(srv->loop, &s->client, limit);
	session_run(s);
}

static void start_session(struct server *srv, int fd, const char *peer)
{
	const struct kc_serve_opts *o = srv->o;
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		notice(srv, "out of memory: dropped the connection from %s", peer);
		return;
	}
	bool originate = o->mode == KC_SERVE_ORIGINATE;
	s->srv = srv;
	s->fd = originate ? -1 : fd;
	s->bfd = originate ? fd : -1;
	s->c2bp.r = s->c2bp.w = s->b2cp.r = s->b2cp.w = -1;
	s->started = kc_loop_now();
	s->rep.id = srv->next_id;
	srv->next_id += srv->id_step;
	srv->many.accepted++;
	snprintf(s->rep.peer, sizeof s->rep.peer, "%s", peer);
	if (o->mode == KC_SERVE_FORWARD || originate)
		snprintf(s->rep.backend, sizeof s->rep.backend, "%s", o->backend_name);
	kc_loop_item_init(&s->client, s->fd, on_client, s);
	kc_loop_item_init(&s->backend, s->bfd, on_backend, s);
	kc_loop_item_init(&s->proc, -1, on_proc, s);
	s->child.pidfd = -1;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	else
		srv->oldest = s;
	srv->sessions = s;
	srv->n++;
	srv->res->sessions++;
	if (originate) {
		/* The plain client waits, unread, until the server's session
		 * is established. */
		s->state = ST_DIALING;
		s->next_ai = o->backend;
		dial(s, EHOSTUNREACH);
		return;
	}
	start_tls(s);
}

static void on_reload(struct kc_loop_item *item, uint32_t events);

static void on_listener(struct kc_loop_item *item, uint32_t events)
{
	struct server *srv = item->ctx;
	/* A reload that came in the same turn goes first: a client that
	 * connects after it was asked for (and, with workers, after the
	 * main process said so) gets the new credentials. */
	struct pollfd rp = { .fd = srv->reload.in_epoll ? srv->reload.fd : -1, .events = POLLIN };
	if (rp.fd >= 0 && poll(&rp, 1, 0) > 0 && (rp.revents & POLLIN))
		on_reload(&srv->reload, EPOLLIN);
	/* Workers share the listener, and EPOLLEXCLUSIVE wakes the first idle
	 * one in its wait queue, so that one would take every client.  After
	 * taking what waits, a worker registers again, which puts it at the
	 * back of the queue: the next clients wake another.  (One client per
	 * wake would deal a burst more evenly, but a worker busy relaying
	 * many sessions comes back to accept only after a long turn, and
	 * clients waited in the backlog past their handshake timeout.) */
	bool shared = srv->id_step > 1;
	int took = 0;
	for (int i = 0; i < ACCEPTS_PER_TURN && srv->n < srv->max && !srv->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				break;
			int e = errno;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				notice(srv, "cannot accept: %s with %lu sessions open; not accepting "
				       "for %d s or until a session ends (raise 'ulimit -n' or lower "
				       "--max-conns)", strerror(e), srv->n, EMFILE_PAUSE_MS / 1000);
				srv->emfile_paused = true;
				kc_loop_deadline(srv->loop, &srv->listener, EMFILE_PAUSE_MS);
			} else {
				notice(srv, "accept failed: %s", strerror(e));
			}
			break;
		}
		char peer[KC_ADDRSTR_MAX];
		kc_sockaddr_str(&ss, peer);
		start_session(srv, fd, peer);
		took++;
	}
	if (events & KC_LOOP_TIMER)
		srv->emfile_paused = false;
	if (shared && took && srv->listening) {
		kc_loop_unwatch(srv->loop, &srv->listener);
		srv->listening = false;
	}
	update_listener(srv);
}

/* ------------------------------------------------------------- sessions */

static void fill_report(struct session *s)
{
	if (!s->conn)
		return;
	snprintf(s->rep.version, sizeof s->rep.version, "%s",
		 gnutls_protocol_get_name(gnutls_protocol_get_version(s->tls)));
	snprintf(s->rep.cipher, sizeof s->rep.cipher, "%s", kc_cipher_name(kc_conn_cipher(s->conn)));
	s->rep.resumed = gnutls_session_is_resumed(s->tls) != 0;
	if (s->srv->o->tls.role == KC_SERVER &&
	    !kc_tls_server_name(s->tls, s->rep.sni, sizeof s->rep.sni))
		s->rep.sni[0] = '\0';
	if (!kc_tls_alpn(s->tls, s->rep.alpn, sizeof s->rep.alpn))
		s->rep.alpn[0] = '\0';
	s->rep.channel = kc_conn_channel_name(s->conn);
	s->rep.rx = kc_conn_stats(s->conn, KC_RX)->bytes;
	s->rep.tx = kc_conn_stats(s->conn, KC_TX)->bytes;
}

static void pipe_leg_close(struct pipe_leg *pl)
{
	if (pl->r >= 0)
		close(pl->r);
	if (pl->w >= 0)
		close(pl->w);
	pl->r = pl->w = -1;
	pl->len = 0;
}

static bool pipe_leg_open(struct pipe_leg *pl)
{
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return false;
	pl->r = fds[0];
	pl->w = fds[1];
	return true;
}

/* What goes to the backend, and to the client, still queued here. */
static size_t c2b_queued(const struct session *s)
{
	return s->c2b.len + s->c2bp.len;
}

static size_t b2c_queued(const struct session *s)
{
	const struct kc_buf *to_client = s->srv->o->mode == KC_SERVE_ECHO ? &s->c2b : &s->b2c;
	return to_client->len + s->b2cp.len;
}

/* The TLS side and the backend (or the command's socketpair) let go. */
static void release_sockets(struct session *s)
{
	struct server *srv = s->srv;
	kc_loop_forget(srv->loop, &s->client);
	kc_loop_forget(srv->loop, &s->backend);
	kc_conn_free(s->conn);
	s->conn = NULL;
	kc_hs_free(s->hs);
	s->hs = NULL;
	if (s->tls)
		gnutls_deinit(s->tls);
	s->tls = NULL;
	/* No GnuTLS session points into them any more. */
	kc_creds_free(s->creds);
	s->creds = NULL;
	if (s->bfd >= 0)
		close(s->bfd);
	s->bfd = -1;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->c2b.p);
	free(s->b2c.p);
	s->c2b.p = s->b2c.p = NULL;
	pipe_leg_close(&s->c2bp);
	pipe_leg_close(&s->b2cp);
}

/* The report, and the session gone. */
static void finish(struct session *s)
{
	struct server *srv = s->srv;
	enum kc_session_end end = s->rep.end;
	s->rep.duration_ms = kc_loop_now() - s->started;
	s->rep.command_ended = s->child.reaped;
	s->rep.command_status = s->child.status;
	if (s->at_stop && end != KC_END_CLOSED) {
		srv->res->unclean++;
		if (end == KC_END_CUT_OFF)
			srv->res->cut_off++;
	}
	if (srv->o->on_end)
		srv->o->on_end(srv->o->ctx, &s->rep);

	kc_loop_forget(srv->loop, &s->proc);
	if (s->child.pidfd >= 0)
		close(s->child.pidfd);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		srv->oldest = s->prev;
	free(s);
	srv->n--;
	srv->emfile_paused = false;
	update_listener(srv);
}

/* How the session ended; it is gone when this returns, unless its command
 * still runs: then the socketpair closes (EOF on the command's input,
 * EPIPE on its output, as when a pipe's other end goes), the session
 * waits in ST_COMMAND for the exit, and its slot stays taken. */
static void session_end(struct session *s, enum kc_session_end end, const struct kc_err *why)
{
	/* originate: a plain client whose server never came is reset, so
	 * that it cannot take the end for an empty answer. */
	if (s->srv->o->mode == KC_SERVE_ORIGINATE && s->bfd >= 0 &&
	    (s->state == ST_DIALING || s->state == ST_HANDSHAKE)) {
		struct linger reset = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(s->bfd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
	}
	fill_report(s);
	s->rep.end = end;
	if (why)
		s->rep.err = *why;
	release_sockets(s);
	if (s->child.pid && !kc_child_reap(&s->child)) {
		s->state = ST_COMMAND;
		return;
	}
	finish(s);
}

/* The side being connected: forward's backend, or originate's TLS side. */
static int *dialed_fd(struct session *s)
{
	return s->state == ST_DIALING ? &s->fd : &s->bfd;
}

static struct kc_loop_item *dialed_item(struct session *s)
{
	return s->state == ST_DIALING ? &s->client : &s->backend;
}

/* The backend: the next address that takes a connect, or the end. */
static void dial(struct session *s, int last_errno)
{
	const struct kc_serve_opts *o = s->srv->o;
	struct kc_loop_item *item = dialed_item(s);
	int *dfd = dialed_fd(s);
	char addr[KC_ADDRSTR_MAX] = "";

	while (s->next_ai) {
		const struct addrinfo *ai = s->next_ai;
		s->next_ai = ai->ai_next;
		kc_sockaddr_str(ai->ai_addr, addr);
		int fd = kc_tcp_connect_start(ai);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		*dfd = fd;
		snprintf(s->rep.backend, sizeof s->rep.backend, "%s", addr);
		kc_loop_item_init(item, fd, item->fn, s);
		if (kc_loop_watch(s->srv->loop, item, EPOLLOUT) < 0) {
			last_errno = errno;
			close(fd);
			*dfd = -1;
			continue;
		}
		kc_loop_deadline(s->srv->loop, item, o->connect_timeout_ms);
		return;
	}
	struct kc_err err;
	if (s->conn)
		kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
	const char *what = o->mode == KC_SERVE_ORIGINATE ? "server" : "backend";
	if (last_errno == ETIMEDOUT)
		kc_err_set(&err, KC_E_TIMEOUT,
			   "%s %s did not answer within %u ms: check it, or raise "
			   "--connect-timeout", what, o->backend_name, o->connect_timeout_ms);
	else
		kc_err_errno(&err, KC_E_CONNECT, last_errno, "cannot connect to %s %s",
			     what, o->backend_name);
	fail(s, KC_END_BACKEND, &err);
}

/* exec: the command on fd, the other end of our socketpair. */
static int start_command(struct session *s, int fd, struct kc_err *err)
{
	const struct kc_serve_opts *o = s->srv->o;
	char id[24], sni[256], alpn[256], subject[1024];
	snprintf(id, sizeof id, "%lu", s->rep.id);
	const struct kc_env_var env[] = {
		{ "KTLSCTL_SESSION", id },
		{ "KTLSCTL_PEER", s->rep.peer },
		{ "KTLSCTL_VERSION", s->rep.version },
		{ "KTLSCTL_CIPHER", s->rep.cipher },
		{ "KTLSCTL_CHANNEL", s->rep.channel },
		{ "KTLSCTL_SNI", kc_tls_server_name(s->tls, sni, sizeof sni) ? sni : NULL },
		{ "KTLSCTL_ALPN", kc_tls_alpn(s->tls, alpn, sizeof alpn) ? alpn : NULL },
		{ "KTLSCTL_CLIENT_SUBJECT", o->tls.verify_client &&
		  kc_tls_peer_subject(s->tls, subject, sizeof subject) ? subject : NULL },
	};
	int rc = kc_spawn(o->command, fd, env, sizeof env / sizeof env[0], &s->child, err);
	close(fd);
	if (rc < 0)
		return -1;
	s->rep.command_pid = (long)s->child.pid;
	kc_loop_item_init(&s->proc, s->child.pidfd, on_proc, s);
	if (kc_loop_watch(s->srv->loop, &s->proc, EPOLLIN) < 0) {
		int e = errno;
		kc_child_kill_wait(&s->child);
		return kc_err_errno(err, KC_E_INTERNAL, e, "epoll refused the command's pidfd");
	}
	return 0;
}

/* exec and socket: a socketpair, one end ours in the backend's place,
 * the other the command's (exec) or the caller's (socket). */
static int start_local(struct session *s, struct kc_err *err)
{
	const struct kc_serve_opts *o = s->srv->o;
	int sp[2];
	/* Their end blocks, as a program expects of its stdin. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return kc_err_errno(err, KC_E_IO, errno, "cannot start the %s: socketpair",
				    o->mode == KC_SERVE_EXEC ? "command" : "session's endpoint");
	fill_report(s);
	int rc = o->mode == KC_SERVE_EXEC ? start_command(s, sp[1], err)
					  : o->on_socket(o->ctx, sp[1], &s->rep, err);
	if (rc < 0) {
		close(sp[0]);
		return -1;
	}
	kc_set_nonblocking(sp[0], 1);
	s->bfd = sp[0];
	kc_loop_item_init(&s->backend, sp[0], on_backend, s);
	return 0;
}

/* originate: keep the session the server just made resumable. */
static void keep_for_resumption(struct session *s)
{
	gnutls_datum_t d;
	if (gnutls_session_get_data2(s->tls, &d) < 0)
		return;     /* none to keep: the next handshake is full */
	struct server *srv = s->srv;
	gnutls_free(srv->resume.data);
	srv->resume = d;
}

static void on_conn_event(void *ctx, const struct kc_event *ev)
{
	if (ev->kind == KC_EV_TICKET)
		keep_for_resumption(ctx);
}

static int established(struct session *s, struct kc_err *err)
{
	const struct kc_serve_opts *o = s->srv->o;
	s->tls = kc_hs_take(s->hs);
	kc_hs_free(s->hs);
	s->hs = NULL;
	kc_loop_deadline(s->srv->loop, &s->client, -1);
	struct kc_conn_opts co = {
		.role = o->tls.role,
		.kernel = s->kernel,
		.fallback = o->ktls == KC_KTLS_AUTO,
		.soft = o->soft,
		.key_update_after = o->key_update_after,
		.record_size_limit = o->tls.record_size_limit != 0,
		.nonblocking = true,
		.on_event = o->mode == KC_SERVE_ORIGINATE ? on_conn_event : NULL,
		.event_ctx = s,
	};
	if (kc_conn_open(s->tls, s->fd, &co, &s->conn, err) < 0)
		return -1;
	if (o->on_handshake)
		o->on_handshake(o->ctx, &s->rep, s->tls);
	/* TLS 1.2 resumes by what the handshake made; TLS 1.3 by the tickets
	 * that come after it (on_conn_event). */
	if (o->mode == KC_SERVE_ORIGINATE && kc_conn_version(s->conn) == KC_TLS12)
		keep_for_resumption(s);
	s->established = time(NULL);
	/* The client's early data (0-RTT) goes first, as if read first: the
	 * buffer holds all GnuTLS accepts (KC_EARLY_MAX). */
	s->c2b.cap = SESSION_BUF;
	if (o->tls.accept_early_data) {
		if (!(s->c2b.p = malloc(SESSION_BUF)))
			return kc_err_set(err, KC_E_INTERNAL, "out of memory");
		s->c2b.len = kc_tls_early_data(s->tls, s->c2b.p, SESSION_BUF);
		s->rep.early = s->c2b.len;
	}
	/* Without pipes (out of descriptors) the session copies instead. */
	const struct kc_channel_caps *can = kc_conn_channel_caps(s->conn);
	if (o->mode != KC_SERVE_ECHO && !o->copy && can->recv_pipe && can->send_pipe) {
		s->zc = pipe_leg_open(&s->c2bp) && pipe_leg_open(&s->b2cp);
		if (!s->zc) {
			pipe_leg_close(&s->c2bp);
			pipe_leg_close(&s->b2cp);
		}
	}
	/* Spliced, the backend's bytes never pass through us, and the
	 * client's only after a control record: c2b is made when first
	 * needed (read_client), b2c never, so that an idle session costs
	 * its pipes, not 64 KiB of buffers. */
	if (!s->zc) {
		s->b2c.cap = o->mode != KC_SERVE_ECHO ? SESSION_BUF : 0;
		if ((!s->c2b.p && !(s->c2b.p = malloc(SESSION_BUF))) ||
		    (s->b2c.cap && !(s->b2c.p = malloc(SESSION_BUF))))
			return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	s->rep.path = kc_data_path_name(s->zc ? KC_PATH_SPLICE : KC_PATH_COPY);
	if (s->srv->stopping) {
		kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
		return kc_err_set(err, KC_E_INTERNAL, "stopping: no new sessions");
	}
	if (o->mode == KC_SERVE_FORWARD) {
		/* The client waits until the backend answers. */
		kc_loop_unwatch(s->srv->loop, &s->client);
		s->state = ST_CONNECTING;
		s->next_ai = o->backend;
		dial(s, EHOSTUNREACH);
		return 1;
	}
	if (local(s) && start_local(s, err) < 0) {
		kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
		fail(s, o->mode == KC_SERVE_EXEC ? KC_END_COMMAND : KC_END_ERROR, err);
		return 1;
	}
	s->state = ST_RELAY;
	return 0;
}

/* One step of the handshake; true when the session is established and
 * relays.  last: its deadline has passed, so a step that cannot finish
 * ends it. */
static bool handshake(struct session *s, bool last)
{
	struct kc_err err = { 0 };
	bool want_write = false;
	int rc = kc_hs_step(s->hs, &want_write, &err);
	if (rc == KC_HS_AGAIN && last) {
		kc_hs_timed_out(s->hs, &err);
		fail(s, KC_END_HANDSHAKE, &err);
		return false;
	}
	if (rc == KC_HS_AGAIN) {
		if (kc_loop_watch(s->srv->loop, &s->client, want_write ? EPOLLOUT : EPOLLIN) < 0) {
			kc_err_errno(&err, KC_E_INTERNAL, errno, "epoll refused a socket");
			fail(s, KC_END_ERROR, &err);
		}
		return false;
	}
	if (rc < 0) {
		fail(s, KC_END_HANDSHAKE, &err);
		return false;
	}
	rc = established(s, &err);
	if (rc < 0) {
		fail(s, KC_END_ERROR, &err);
		return false;
	}
	return rc == 0;   /* 1: connecting, or already ended */
}

/* Whether the socket has room now (close_notify is sent whole, waiting
 * if it must: only send it when it will not wait). */
static bool writable(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLOUT };
	return poll(&pf, 1, 0) > 0 && (pf.revents & POLLOUT);
}

static bool fatal_errno(int e)
{
	return e != EAGAIN && e != EINTR;
}

/* Whether our close_notify is due once what goes before it is out: the
 * TLS peer's own (echo; TLS 1.2 answers at once, RFC 5246 §7.2.1), the
 * plain side's end (backend, command, originate's client), the stop (not
 * for a local end: it gets EOF and finishes its output). */
static bool close_due(const struct session *s)
{
	enum kc_serve_mode mode = s->srv->o->mode;
	bool tls12 = kc_conn_version(s->conn) == KC_TLS12;
	if (mode == KC_SERVE_ECHO)
		return s->client_eof || s->draining;
	return s->backend_eof || (tls12 && s->client_eof) ||
	       (!local(s) && s->draining);
}

/* Whether the backend's (or the command's) output is still read. */
static bool reads_backend(const struct session *s)
{
	enum kc_serve_mode mode = s->srv->o->mode;
	bool tls12 = kc_conn_version(s->conn) == KC_TLS12;
	return mode != KC_SERVE_ECHO && !s->backend_eof && !(tls12 && s->client_eof) &&
	       (local(s) || !s->draining);
}

/* Whether the client's data goes into the pipe now: splicing, the pipe
 * has room, nothing read by the record path waits in c2b (it is behind
 * the pipe), and the data is wanted (see relay_round). */
static bool splices_from_client(const struct session *s)
{
	return s->zc && s->c2b.len == 0 &&
	       !(local(s) && (s->command_in_gone || s->draining));
}

/* Drop what waits for a command that stopped reading. */
static void drop_c2b(struct session *s)
{
	char sink[4096];
	s->c2b.len = s->c2b.off = 0;
	while (s->c2bp.len > 0) {
		ssize_t n = read(s->c2bp.r, sink, sizeof sink);
		if (n <= 0)
			break;
		s->c2bp.len -= (size_t)n < s->c2bp.len ? (size_t)n : s->c2bp.len;
	}
	s->c2bp.len = 0;
	s->c2bp.full = false;
}

/* Sending to the backend (or the command) failed with e: a command that
 * stopped reading gets nothing more; anything else ends the session
 * (-1).  0 when it goes on. */
static int backend_send_failed(struct session *s, int e)
{
	bool exec = s->srv->o->mode == KC_SERVE_EXEC;
	struct kc_err err;
	if (local(s) && (e == EPIPE || e == ECONNRESET)) {
		s->command_in_gone = true;
		drop_c2b(s);
		return 0;
	}
	if (exec)
		kc_err_errno(&err, KC_E_IO, e, "cannot write to the command");
	else if (local(s))
		kc_err_errno(&err, KC_E_IO, e, "cannot write to the session's endpoint");
	else
		kc_err_errno(&err, KC_E_IO, e, "backend %s failed while we sent to it",
			     s->rep.backend);
	kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
	fail(s, KC_END_BACKEND, &err);
	return -1;
}

/* From the client, into the pipe or c2b: 1 when something moved or
 * changed, 0 when nothing could, -1 when the session ended. */
static int read_client(struct session *s)
{
	bool echo = s->srv->o->mode == KC_SERVE_ECHO;
	struct kc_err err = { 0 };
	ssize_t n;

	if (s->client_eof || s->truncated || (s->zc && s->c2bp.full) || kc_buf_space(&s->c2b) == 0)
		return 0;
	if (splices_from_client(s)) {
		n = kc_conn_read_to(s->conn, s->c2bp.w, SESSION_BUF, &err);
		if (n > 0) {
			s->c2bp.len += (size_t)n;
			return 1;
		}
		if (n == KC_CONN_AGAIN) {
			s->c2bp.full = s->c2bp.len > 0 && !writable(s->c2bp.w);
			return 0;
		}
		if (n == -1) {
			fail(s, KC_END_ERROR, &err);
			return -1;
		}
		/* KC_CONN_USE_READ: a control record, the end, an error */
	}
	if (!s->c2b.p && !(s->c2b.p = malloc(SESSION_BUF))) {
		kc_err_set(&err, KC_E_INTERNAL, "out of memory");
		fail(s, KC_END_ERROR, &err);
		return -1;
	}
	n = kc_conn_read(s->conn, kc_buf_tail(&s->c2b), kc_buf_space(&s->c2b), &err);
	if (n > 0) {
		/* After our close_notify there is nowhere to echo to; a
		 * command that stopped reading, or whose input closed at the
		 * stop, takes nothing more. */
		if (!(echo && kc_conn_close_sent(s->conn)) &&
		    !(local(s) && (s->command_in_gone || s->draining)))
			s->c2b.len += (size_t)n;
		return 1;
	}
	if (n == 0) {
		s->client_eof = true;
		return 1;
	}
	if (n == KC_CONN_AGAIN)
		return 0;
	if (err.status != KC_E_TRUNCATED) {
		fail(s, KC_END_ERROR, &err);
		return -1;
	}
	s->truncated = true;
	s->rep.err = err;
	return 1;
}

/* To the backend: the pipe first (it holds the older bytes), then c2b. */
static int write_backend(struct session *s)
{
	ssize_t n;
	if (s->c2bp.len > 0) {
		n = splice(s->c2bp.r, NULL, s->bfd, NULL, s->c2bp.len, SPLICE_F_NONBLOCK);
		if (n > 0) {
			s->c2bp.len -= (size_t)n;
			s->c2bp.full = false;
			return 1;
		}
	} else if (s->c2b.len > 0) {
		n = send(s->bfd, s->c2b.p + s->c2b.off, s->c2b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			kc_buf_consumed(&s->c2b, (size_t)n);
			return 1;
		}
	} else {
		return 0;
	}
	if (n < 0 && fatal_errno(errno))
		return backend_send_failed(s, errno) < 0 ? -1 : 1;
	return 0;
}

/* From the backend (or the command's output), into the pipe or b2c. */
static int read_backend(struct session *s)
{
	bool exec = s->srv->o->mode == KC_SERVE_EXEC;
	struct kc_err err;
	ssize_t n;

	if (!reads_backend(s) || s->backend_dry ||
	    (s->zc ? s->b2cp.full : kc_buf_space(&s->b2c) == 0))
		return 0;
	if (s->zc)
		n = splice(s->bfd, NULL, s->b2cp.w, NULL, SESSION_BUF, SPLICE_F_NONBLOCK);
	else
		n = recv(s->bfd, kc_buf_tail(&s->b2c), kc_buf_space(&s->b2c), MSG_DONTWAIT);
	if (n > 0) {
		if (s->zc)
			s->b2cp.len += (size_t)n;
		else
			s->b2c.len += (size_t)n;
		return 1;
	}
	/* splice says EAGAIN for a full pipe too; an empty one is not */
	if (n < 0 && errno == EAGAIN && s->zc && s->b2cp.len > 0 && !writable(s->b2cp.w)) {
		s->b2cp.full = true;
		return 0;
	}
	if (n == 0 || (local(s) && errno == ECONNRESET) ||
	    (exec && errno == EAGAIN && s->child.reaped)) {
		/* A command's output ends at its exit too, once what it
		 * wrote is read: what it started may hold the socket. */
		s->backend_eof = true;
		return 1;
	}
	if (!fatal_errno(errno)) {
		s->backend_dry = errno == EAGAIN && !s->backend_hup;   /* unwatched: read on */
		return 0;
	}
	if (exec)
		kc_err_errno(&err, KC_E_IO, errno, "cannot read from the command");
	else if (local(s))
		kc_err_errno(&err, KC_E_IO, errno, "cannot read from the session's endpoint");
	else
		kc_err_errno(&err, KC_E_IO, errno, "backend %s failed", s->rep.backend);
	kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
	fail(s, KC_END_BACKEND, &err);
	return -1;
}

/* To the client: the pipe first, then the buffer (echo: c2b, else b2c). */
static int write_client(struct session *s)
{
	struct kc_buf *to_client = s->srv->o->mode == KC_SERVE_ECHO ? &s->c2b : &s->b2c;
	struct kc_err err = { 0 };
	ssize_t n = 0;

	if (kc_conn_close_sent(s->conn))
		return 0;
	if (s->b2cp.len > 0) {
		n = kc_conn_write_from(s->conn, s->b2cp.r, false, s->b2cp.len, &err);
		if (n > 0) {
			s->b2cp.len -= (size_t)n;
			s->b2cp.full = false;
		}
	} else if (to_client->len > 0) {
		n = kc_conn_write(s->conn, to_client->p + to_client->off, to_client->len, &err);
		if (n > 0)
			kc_buf_consumed(to_client, (size_t)n);
	}
	if (n == -1) {
		fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
		return -1;
	}
	return n > 0;
}

/* One round of moving bytes; returns 1 when something moved, 0 when
 * nothing could, -1 when the session ended. */
static int relay_round(struct session *s)
{
	bool echo = s->srv->o->mode == KC_SERVE_ECHO;
	struct kc_err err = { 0 };
	bool moved = false;
	int rc;

	if ((rc = read_client(s)) < 0)
		return -1;
	moved |= rc > 0;
	if (!echo) {
		if ((rc = write_backend(s)) < 0)
			return -1;
		moved |= rc > 0;
	}
	/* The client's end goes on to the backend once its data has. */
	if (!echo && (s->client_eof || s->truncated || (local(s) && s->draining)) &&
	    c2b_queued(s) == 0 && !s->backend_shut) {
		shutdown(s->bfd, SHUT_WR);
		s->backend_shut = true;
		moved = true;
	}
	if (s->truncated && (echo || c2b_queued(s) == 0)) {
		err = s->rep.err;
		fail(s, KC_END_TRUNCATED, &err);
		return -1;
	}
	if ((rc = read_backend(s)) < 0)
		return -1;
	moved |= rc > 0;
	if (s->truncated)
		return moved ? 1 : 0;   /* nothing more goes to the client */
	if ((rc = write_client(s)) < 0)
		return -1;
	moved |= rc > 0;
	if (kc_conn_tx_pending(s->conn)) {
		rc = kc_conn_flush(s->conn, &err);
		if (rc == -1) {
			fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
			return -1;
		}
	}
	/* Our close_notify, once everything before it is out. */
	if (close_due(s) && b2c_queued(s) == 0 && !kc_conn_close_sent(s->conn) &&
	    !kc_conn_tx_pending(s->conn) && writable(s->fd)) {
		if (kc_conn_close(s->conn, &err) < 0) {
			fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
			return -1;
		}
		if (s->srv->o->close_timeout_ms)
			kc_loop_deadline(s->srv->loop, &s->client, s->srv->o->close_timeout_ms);
		moved = true;
	}
	/* Done: close_notify both ways, everything delivered. */
	if (kc_conn_close_sent(s->conn) && !kc_conn_tx_pending(s->conn) && s->client_eof &&
	    (echo || (c2b_queued(s) == 0 && s->backend_shut))) {
		if (kc_conn_close_unanswered(s->conn)) {
			kc_err_set(&err, KC_E_TRUNCATED, "the client closed without answering our "
				   "close_notify");
			fail(s, KC_END_TRUNCATED, &err);
		} else {
			fail(s, KC_END_CLOSED, NULL);
		}
		return -1;
	}
	return moved ? 1 : 0;
}

/* What each socket waits for now. */
static int rearm(struct session *s)
{
	bool echo = s->srv->o->mode == KC_SERVE_ECHO;
	uint32_t cev = 0, bev = 0;

	if (!s->client_eof && !s->truncated && !(s->zc && s->c2bp.full) &&
	    kc_buf_space(&s->c2b) > 0)
		cev |= EPOLLIN;
	if (!s->truncated && (b2c_queued(s) > 0 || kc_conn_tx_pending(s->conn) ||
	    (close_due(s) && !kc_conn_close_sent(s->conn))))
		cev |= EPOLLOUT;
	if (s->client_hup)
		kc_loop_unwatch(s->srv->loop, &s->client);
	else if (kc_loop_watch(s->srv->loop, &s->client, cev) < 0)
		return -1;
	if (echo)
		return 0;
	if (reads_backend(s) && (s->zc ? !s->b2cp.full : kc_buf_space(&s->b2c) > 0))
		bev |= EPOLLIN;
	if (c2b_queued(s) > 0)
		bev |= EPOLLOUT;
	if (s->backend_hup) {
		kc_loop_unwatch(s->srv->loop, &s->backend);
		return 0;
	}
	return kc_loop_watch(s->srv->loop, &s->backend, bev);
}

/* -1 when the session ended. */
static int relay(struct session *s)
{
	for (int round = 0;; round++) {
		int rc = relay_round(s);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (round == ROUNDS_PER_TURN) {
			kc_loop_again(s->srv->loop, &s->client);
			break;
		}
	}
	if (rearm(s) < 0) {
		struct kc_err err;
		kc_err_errno(&err, KC_E_INTERNAL, errno, "epoll refused a socket");
		fail(s, KC_END_ERROR, &err);
		return -1;
	}
	return 0;
}

static void session_run(struct session *s)
{
	if (s->state == ST_HANDSHAKE && !handshake(s, false))
		return;
	if (s->state == ST_RELAY)
		relay(s);
}

/* Whether the handshake's socket has what its next step waits for. */
static bool handshake_moves(const struct session *s)
{
	struct pollfd pf = { .fd = s->fd, .events = s->client.watched & (EPOLLIN | EPOLLOUT) };
	return poll(&pf, 1, 0) > 0;
}

/* An error or hangup on a socket watched for nothing else. */
static bool hung_up(const struct kc_loop_item *item, uint32_t events)
{
	return (events & (EPOLLERR | EPOLLHUP)) && !(item->watched & (EPOLLIN | EPOLLOUT));
}

/* A connect in progress (dial) has an outcome: true when it is made;
 * otherwise the next address is tried, or the session has ended. */
static bool dialed(struct session *s, uint32_t events)
{
	struct kc_loop_item *item = dialed_item(s);
	int *dfd = dialed_fd(s);
	/* At the deadline, a connect that finished in time but waits in a
	 * busy loop's queue still counts (writable: done). */
	bool late = events & KC_LOOP_TIMER && !writable(*dfd);
	int e = late ? ETIMEDOUT : kc_tcp_connect_result(*dfd);
	if (e) {
		kc_loop_forget(s->srv->loop, item);
		close(*dfd);
		*dfd = -1;
		/* A timeout ends the session; a refusal tries the next address. */
		if (e == ETIMEDOUT)
			s->next_ai = NULL;
		dial(s, e);
		return false;
	}
	kc_loop_deadline(s->srv->loop, item, -1);
	return true;
}

static void on_client(struct kc_loop_item *item, uint32_t events)
{
	struct session *s = item->ctx;
	if (s->state == ST_DIALING) {
		if (dialed(s, events))
			start_tls(s);
		return;
	}
	if (events & KC_LOOP_TIMER && s->state == ST_RELAY) {
		/* close_timeout_ms after our close_notify: what came in time
		 * gets its turn, then the session ends. */
		if (relay(s) == 0) {
			struct kc_err err;
			kc_err_set(&err, KC_E_TIMEOUT, "the client did not answer our close_notify "
				   "within %u ms", s->srv->o->close_timeout_ms);
			fail(s, KC_END_TRUNCATED, &err);
		}
		return;
	}
	if (events & KC_LOOP_TIMER) {
		/* A busy loop can reach the deadline before an event that
		 * came in time (a turn takes EVENTS_PER_TURN at most): what
		 * is there gets one last step, never more (a client that
		 * dribbles still ends). */
		if (!handshake_moves(s)) {
			struct kc_err err = { 0 };
			kc_hs_timed_out(s->hs, &err);
			fail(s, KC_END_HANDSHAKE, &err);
		} else if (handshake(s, true)) {
			relay(s);
		}
		return;
	}
	if (hung_up(item, events))
		s->client_hup = true;
	session_run(s);
}

static void on_backend(struct kc_loop_item *item, uint32_t events)
{
	struct session *s = item->ctx;
	if (s->state == ST_CONNECTING) {
		if (!dialed(s, events))
			return;
		s->state = ST_RELAY;
	} else if (hung_up(item, events)) {
		s->backend_hup = true;
	}
	s->backend_dry = false;
	relay(s);
}

/* The command exited: its session ends if it only waited for that;
 * otherwise the end of its output is near (see relay_round). */
static void on_proc(struct kc_loop_item *item, uint32_t events)
{
	struct session *s = item->ctx;
	if (!kc_child_reap(&s->child))
		return;             /* not yet: the pidfd said so too early */
	kc_loop_forget(s->srv->loop, &s->proc);
	s->backend_dry = false;   /* a read now tells the end of its output */
	if (s->state == ST_COMMAND)
		finish(s);
	else
		relay(s);
}

/* ------------------------------------------------------------- stopping */

static void begin_stop(struct server *srv)
{
	srv->stopping = true;
	update_listener(srv);
	kc_loop_forget(srv->loop, &srv->listener);
	close(srv->lfd);
	srv->lfd = -1;
	srv->res->at_stop = srv->n;
	for (struct session *s = srv->sessions, *next; s; s = next) {
		next = s->next;
		s->at_stop = true;
		if (s->state == ST_COMMAND)
			continue;   /* its command's exit ends it */
		if (s->state != ST_RELAY) {
			struct kc_err err;
			kc_err_set(&err, KC_E_IO, "stopped before the session was "
				   "established");
			if (s->conn)
				kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
			fail(s, KC_END_STOPPED, &err);
			continue;
		}
		s->draining = true;
		kc_loop_again(srv->loop, &s->client);
	}
}

static void on_stop(struct kc_loop_item *item, uint32_t events)
{
	struct server *srv = item->ctx;
	if (events & KC_LOOP_TIMER && srv->killing) {
		/* Commands that outlived SIGTERM's grace. */
		for (struct session *s = srv->sessions; s; s = s->next)
			kc_child_signal(&s->child, SIGKILL);
		return;
	}
	if (events & KC_LOOP_TIMER) {
		/* The drain timeout: cut off whoever is left, and tell the
		 * commands still running to end (each session goes when its
		 * command has). */
		for (struct session *s = srv->sessions, *next; s; s = next) {
			next = s->next;
			struct kc_err err;
			if (s->state == ST_COMMAND) {
				if (s->rep.end == KC_END_CLOSED) {
					s->rep.end = KC_END_CUT_OFF;
					kc_err_set(&s->rep.err, KC_E_TIMEOUT, "the command was still "
						   "running %u ms after the stop (--drain-timeout)",
						   srv->o->drain_timeout_ms);
				}
				continue;
			}
			kc_err_set(&err, KC_E_TIMEOUT, "still open %u ms after the stop "
				   "(--drain-timeout)", srv->o->drain_timeout_ms);
			fail(s, KC_END_CUT_OFF, &err);
		}
		for (struct session *s = srv->sessions; s; s = s->next)
			kc_child_signal(&s->child, SIGTERM);
		if (srv->sessions) {
			srv->killing = true;
			kc_loop_deadline(srv->loop, item, KILL_GRACE_MS);
		}
		return;
	}
	kc_loop_unwatch(srv->loop, item);
	if (!srv->stopping) {
		begin_stop(srv);
		kc_loop_deadline(srv->loop, item, srv->o->drain_timeout_ms);
	}
}

/* ------------------------------------------------------------ reloading */

/* Everything the pipe holds is one request: signals that came together
 * reload once. */
static void on_reload(struct kc_loop_item *item, uint32_t events)
{
	struct server *srv = item->ctx;
	unsigned char buf[KC_TICKET_KEY_SIZE];
	ssize_t r;
	bool asked = false;
	srv->key_len = 0;
	/* Keys are written whole (a pipe write under PIPE_BUF is never
	 * split): the last one wins. */
	while ((r = read(item->fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR)) {
		asked |= r > 0;
		if (r == (ssize_t)sizeof buf) {
			memcpy(srv->key, buf, sizeof buf);
			srv->key_len = sizeof buf;
		}
	}
	gnutls_memset(buf, 0, sizeof buf);
	if (r == 0 || (r < 0 && errno != EAGAIN)) {
		/* the writer is gone or the pipe broke: no more requests */
		kc_loop_forget(srv->loop, item);
		return;
	}
	/* nothing (on_listener took this request already), or the stop:
	 * no handshake will start again */
	if (!asked || srv->stopping)
		return;
	struct kc_err err = { 0 };
	struct kc_creds *c;
	if (srv->o->reload_keys && !srv->key_len)
		return;   /* no whole key yet */
	if (kc_creds_new(&srv->o->tls, &c, &err) < 0 ||
	    (srv->o->reload_keys && kc_creds_set_ticket_key(c, srv->key, &err) < 0)) {
		if (srv->o->on_reload)
			srv->o->on_reload(srv->o->ctx, NULL, &err);
		return;
	}
	/* Sessions that started with the old ones hold their own reference. */
	kc_creds_free(srv->creds);
	srv->creds = c;
	if (srv->o->on_reload)
		srv->o->on_reload(srv->o->ctx, c, NULL);
}

/* ------------------------------------------------------ control socket */

static const char *mode_name(enum kc_serve_mode mode)
{
	switch (mode) {
	case KC_SERVE_ECHO: return "echo";
	case KC_SERVE_FORWARD: return "forward";
	case KC_SERVE_EXEC: return "exec";
	case KC_SERVE_SOCKET: return "socket";
	case KC_SERVE_ORIGINATE: return "originate";
	}
	return "?";
}

/* The established sessions, oldest first (kc_ctl_many.next). */
static bool ctl_next(void *ctx, void **cursor, struct kc_conn **conn,
		     struct kc_session_info *info)
{
	struct server *srv = ctx;
	struct session *s = *cursor ? ((struct session *)*cursor)->prev : srv->oldest;
	while (s && !s->conn)
		s = s->prev;
	if (!s)
		return false;
	*cursor = s;
	*conn = s->conn;
	bool originate = srv->o->mode == KC_SERVE_ORIGINATE;
	*info = (struct kc_session_info){
		.role = srv->o->tls.role == KC_CLIENT ? "client" : "server",
		/* the TLS peer: originate's is the server it dialed */
		.peer = originate ? s->rep.backend : s->rep.peer,
		.session = s->tls,
		.started = s->established,
		.id = s->rep.id,
	};
	return true;
}

/* After a key update: the KeyUpdate the channel could not take yet goes
 * out with the session's next turn. */
static void ctl_kick(void *ctx, void *cursor)
{
	struct server *srv = ctx;
	struct session *s = cursor;
	kc_loop_again(srv->loop, &s->client);
}

/* The epoll set follows the control socket's fds (few, and only after
 * control traffic): emptied and filled again.  A closed fd has left it
 * already; one that is not there is added. */
static int ctl_sync(struct server *srv)
{
	struct pollfd fds[KC_CTL_MAX_FDS];
	for (int i = 0; i < srv->ctl_n; i++)
		epoll_ctl(srv->ctl.fd, EPOLL_CTL_DEL, srv->ctl_fds[i], NULL);
	srv->ctl_n = kc_ctl_server_fds(srv->o->ctl, fds, KC_CTL_MAX_FDS);
	for (int i = 0; i < srv->ctl_n; i++) {
		struct epoll_event ev = { .events = (uint32_t)fds[i].events, .data.fd = fds[i].fd };
		srv->ctl_fds[i] = fds[i].fd;
		if (epoll_ctl(srv->ctl.fd, EPOLL_CTL_ADD, fds[i].fd, &ev) < 0)
			return -1;
	}
	return 0;
}

/* Something is ready on the control socket: answered without blocking,
 * as a single session's pump does. */
static void on_ctl(struct kc_loop_item *item, uint32_t events)
{
	struct server *srv = item->ctx;
	struct pollfd fds[KC_CTL_MAX_FDS];
	int n = kc_ctl_server_fds(srv->o->ctl, fds, KC_CTL_MAX_FDS);
	if (poll(fds, (nfds_t)n, 0) > 0)
		kc_ctl_server_ready_many(srv->o->ctl, &srv->many, fds, n);
	if (ctl_sync(srv) < 0) {
		notice(srv, "the control socket stopped answering: epoll refused it (%s)",
		       strerror(errno));
		kc_loop_forget(srv->loop, item);
	}
}

static int ctl_start(struct server *srv, struct kc_err *err)
{
	srv->many = (struct kc_ctl_many){ .mode = mode_name(srv->o->mode), .next = ctl_next,
					  .kick = ctl_kick, .ctx = srv };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	kc_loop_item_init(&srv->ctl, ep, on_ctl, srv);
	if (ep < 0 || ctl_sync(srv) < 0 || kc_loop_watch(srv->loop, &srv->ctl, EPOLLIN) < 0)
		return kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the control socket");
	return 0;
}

int kc_serve_run(const struct kc_serve_opts *o, struct kc_serve_result *res,
		 struct kc_err *err)
{
	struct server srv = { .o = o, .lfd = o->listen_fd, .res = res,
			      .max = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS,
			      .next_id = o->id_first ? o->id_first : 1,
			      .id_step = o->id_step ? o->id_step : 1 };
	memset(res, 0, sizeof *res);
	if (kc_loop_new(&srv.loop, err) < 0) {
		close(o->listen_fd);
		return -1;
	}
	kc_set_nonblocking(srv.lfd, 1);
	kc_loop_item_init(&srv.listener, srv.lfd, on_listener, &srv);
	kc_loop_item_init(&srv.stop, o->stop_fd, on_stop, &srv);
	kc_loop_item_init(&srv.reload, o->reload_fd, on_reload, &srv);
	kc_loop_item_init(&srv.ctl, -1, on_ctl, &srv);
	srv.creds = kc_creds_ref(o->creds);
	int rc = 0;
	if (o->stop_fd >= 0 && kc_loop_watch(srv.loop, &srv.stop, EPOLLIN) < 0)
		rc = kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the stop pipe");
	if (rc == 0 && o->reload_fd >= 0 && kc_loop_watch(srv.loop, &srv.reload, EPOLLIN) < 0)
		rc = kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the reload pipe");
	if (rc == 0 && o->ctl)
		rc = ctl_start(&srv, err);
	update_listener(&srv);
	if (rc == 0 && !srv.listening)
		rc = kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the listening socket");
	while (rc == 0 && !(srv.stopping && srv.n == 0)) {
		/* Handshakes and the user-space channel's AEAD calls leave key
		 * material in dead frames below the loop (see core/pump.c):
		 * wipe them before sleeping. */
		kc_burn_stack(KC_BURN_RECORD);
		rc = kc_loop_turn(srv.loop, -1, err);
	}
	while (srv.sessions) {
		struct session *s = srv.sessions;
		if (s->state == ST_COMMAND) {
			/* No loop left to wait in. */
			kc_child_kill_wait(&s->child);
			finish(s);
			continue;
		}
		struct kc_err e;
		kc_err_set(&e, KC_E_INTERNAL, "the loop failed");
		fail(s, KC_END_ERROR, &e);
	}
	kc_loop_forget(srv.loop, &srv.stop);
	kc_loop_forget(srv.loop, &srv.reload);
	kc_loop_forget(srv.loop, &srv.listener);
	kc_loop_forget(srv.loop, &srv.ctl);
	if (srv.ctl.fd >= 0)
		close(srv.ctl.fd);
	kc_creds_free(srv.creds);
	gnutls_memset(srv.key, 0, sizeof srv.key);
	gnutls_free(srv.resume.data);
	if (srv.lfd >= 0)
		close(srv.lfd);
	kc_loop_free(srv.loop);
	return rc;
}
