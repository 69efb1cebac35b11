/* core/serve.c: many TLS sessions at once, in one loop (see serve.h). */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cipher.h"
#include "core/keys.h"
#include "core/loop.h"
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

/* ST_COMMAND: the TLS side is over, the session waits for its command to
 * exit (exec), so that its report can say how. */
enum state { ST_HANDSHAKE, ST_CONNECTING, ST_RELAY, ST_COMMAND };

struct server;

struct session {
	struct server *srv;
	struct session *prev, *next;
	enum state state;
	int fd, bfd;
	struct kc_loop_item client, backend;   /* the client item also keeps the deadline */
	/* exec: the command (bfd is our end of its socketpair) and its pidfd */
	struct kc_child child;
	struct kc_loop_item proc;
	bool command_in_gone;        /* it stopped reading: drop what the client sends */
	struct kc_hs *hs;
	gnutls_session_t tls;
	struct kc_creds *creds;      /* a reference: what its handshake started with */
	struct kc_conn *conn;
	bool kernel;                 /* the kernel's ULP is attached */
	const struct addrinfo *next_ai;
	/* c2b: from the client (to the backend, or back to the client when
	 * echoing); b2c: from the backend to the client. */
	struct kc_buf c2b, b2c;
	bool client_eof;             /* its close_notify came */
	bool truncated;              /* it ended without one */
	bool backend_eof, backend_shut;
	bool draining;               /* the stop: read no more from the backend */
	/* A socket reported an error or hangup while we waited for nothing
	 * on it: epoll would report it on every turn, so it is no longer
	 * watched (what it did shows in the next read or write). */
	bool client_hup, backend_hup;
	bool at_stop;
	long long started;
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
	unsigned long n, next_id;
	struct session *sessions;
	struct kc_serve_result *res;
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
	if (want && kc_loop_watch(srv->loop, &srv->listener, EPOLLIN) < 0)
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

static void start_session(struct server *srv, int fd, const char *peer)
{
	const struct kc_serve_opts *o = srv->o;
	struct session *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		notice(srv, "out of memory: dropped the connection from %s", peer);
		return;
	}
	s->srv = srv;
	s->fd = fd;
	s->bfd = -1;
	s->started = kc_loop_now();
	s->rep.id = ++srv->next_id;
	snprintf(s->rep.peer, sizeof s->rep.peer, "%s", peer);
	if (o->mode == KC_SERVE_FORWARD)
		snprintf(s->rep.backend, sizeof s->rep.backend, "%s", o->backend_name);
	kc_loop_item_init(&s->client, fd, on_client, s);
	kc_loop_item_init(&s->backend, -1, on_backend, s);
	kc_loop_item_init(&s->proc, -1, on_proc, s);
	s->child.pidfd = -1;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->n++;
	srv->res->sessions++;

	struct kc_err err = { 0 };
	if (o->ktls != KC_KTLS_OFF) {
		if (kc_kernel_attach(fd, &err) == 0) {
			s->kernel = true;
		} else if (o->ktls == KC_KTLS_REQUIRE) {
			struct kc_err e2;
			kc_err_set(&e2, KC_E_KTLS, "kernel TLS unavailable and --ktls require "
				   "given: %.440s", err.msg);
			fail(s, KC_END_HANDSHAKE, &e2);
			return;
		}
	}
	s->creds = kc_creds_ref(srv->creds);
	if (kc_hs_start(fd, &o->tls, s->creds, &s->hs, &err) < 0) {
		fail(s, KC_END_HANDSHAKE, &err);
		return;
	}
	unsigned limit = o->tls.handshake_timeout_ms ? o->tls.handshake_timeout_ms : 30000;
	kc_loop_deadline(srv->loop, &s->client, limit);
	session_run(s);
}

static void on_listener(struct kc_loop_item *item, uint32_t events)
{
	struct server *srv = item->ctx;
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
	}
	if (events & KC_LOOP_TIMER)
		srv->emfile_paused = false;
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
	s->rep.channel = kc_conn_channel_name(s->conn);
	s->rep.rx = kc_conn_stats(s->conn, KC_RX)->bytes;
	s->rep.tx = kc_conn_stats(s->conn, KC_TX)->bytes;
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

/* The backend: the next address that takes a connect, or the end. */
static void connect_backend(struct session *s, int last_errno)
{
	const struct kc_serve_opts *o = s->srv->o;
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
		s->bfd = fd;
		snprintf(s->rep.backend, sizeof s->rep.backend, "%s", addr);
		kc_loop_item_init(&s->backend, fd, on_backend, s);
		if (kc_loop_watch(s->srv->loop, &s->backend, EPOLLOUT) < 0) {
			last_errno = errno;
			close(fd);
			s->bfd = -1;
			continue;
		}
		kc_loop_deadline(s->srv->loop, &s->backend, o->connect_timeout_ms);
		return;
	}
	struct kc_err err;
	kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
	if (last_errno == ETIMEDOUT)
		kc_err_set(&err, KC_E_TIMEOUT,
			   "backend %s did not answer within %u ms: check it, or raise "
			   "--connect-timeout", o->backend_name, o->connect_timeout_ms);
	else
		kc_err_errno(&err, KC_E_CONNECT, last_errno, "cannot connect to backend %s",
			     o->backend_name);
	fail(s, KC_END_BACKEND, &err);
}

/* exec: the command on one end of a socketpair, the other end ours in
 * the backend's place. */
static int start_command(struct session *s, struct kc_err *err)
{
	const struct kc_serve_opts *o = s->srv->o;
	int sp[2];
	/* The command's end blocks, as a program expects of its stdin. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return kc_err_errno(err, KC_E_IO, errno, "cannot start the command: socketpair");
	fill_report(s);
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
	int rc = kc_spawn(o->command, sp[1], env, sizeof env / sizeof env[0], &s->child, err);
	close(sp[1]);
	if (rc < 0) {
		close(sp[0]);
		return -1;
	}
	s->rep.command_pid = (long)s->child.pid;
	kc_set_nonblocking(sp[0], 1);
	s->bfd = sp[0];
	kc_loop_item_init(&s->backend, sp[0], on_backend, s);
	kc_loop_item_init(&s->proc, s->child.pidfd, on_proc, s);
	if (kc_loop_watch(s->srv->loop, &s->proc, EPOLLIN) < 0) {
		int e = errno;
		kc_child_kill_wait(&s->child);
		return kc_err_errno(err, KC_E_INTERNAL, e, "epoll refused the command's pidfd");
	}
	return 0;
}

static int established(struct session *s, struct kc_err *err)
{
	const struct kc_serve_opts *o = s->srv->o;
	s->tls = kc_hs_take(s->hs);
	kc_hs_free(s->hs);
	s->hs = NULL;
	kc_loop_deadline(s->srv->loop, &s->client, -1);
	struct kc_conn_opts co = {
		.role = KC_SERVER,
		.kernel = s->kernel,
		.fallback = o->ktls == KC_KTLS_AUTO,
		.soft = o->soft,
		.key_update_after = o->key_update_after,
		.record_size_limit = o->tls.record_size_limit != 0,
	};
	if (kc_conn_open(s->tls, s->fd, &co, &s->conn, err) < 0)
		return -1;
	s->c2b.cap = s->b2c.cap = SESSION_BUF;
	s->c2b.p = malloc(SESSION_BUF);
	s->b2c.p = o->mode != KC_SERVE_ECHO ? malloc(SESSION_BUF) : NULL;
	if (!s->c2b.p || (o->mode != KC_SERVE_ECHO && !s->b2c.p))
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	if (s->srv->stopping) {
		kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
		return kc_err_set(err, KC_E_INTERNAL, "stopping: no new sessions");
	}
	if (o->mode == KC_SERVE_FORWARD) {
		/* The client waits until the backend answers. */
		kc_loop_unwatch(s->srv->loop, &s->client);
		s->state = ST_CONNECTING;
		s->next_ai = o->backend;
		connect_backend(s, EHOSTUNREACH);
		return 1;
	}
	if (o->mode == KC_SERVE_EXEC && start_command(s, err) < 0) {
		kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
		fail(s, KC_END_COMMAND, err);
		return 1;
	}
	s->state = ST_RELAY;
	return 0;
}

static bool handshake(struct session *s)
{
	struct kc_err err = { 0 };
	bool want_write = false;
	int rc = kc_hs_step(s->hs, &want_write, &err);
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

/* One round of moving bytes; returns 1 when something moved, 0 when
 * nothing could, -1 when the session ended. */
/* Whether our close_notify is due once what goes before it is out: the
 * client's own (echo; TLS 1.2 answers at once, RFC 5246 §7.2.1), the
 * backend's or the command's end, the stop (not for a command: it gets
 * EOF and finishes its output). */
static bool close_due(const struct session *s)
{
	enum kc_serve_mode mode = s->srv->o->mode;
	bool tls12 = kc_conn_version(s->conn) == KC_TLS12;
	if (mode == KC_SERVE_ECHO)
		return s->client_eof || s->draining;
	return s->backend_eof || (tls12 && s->client_eof) ||
	       (mode == KC_SERVE_FORWARD && s->draining);
}

/* Whether the backend's (or the command's) output is still read. */
static bool reads_backend(const struct session *s)
{
	enum kc_serve_mode mode = s->srv->o->mode;
	bool tls12 = kc_conn_version(s->conn) == KC_TLS12;
	return mode != KC_SERVE_ECHO && !s->backend_eof && !(tls12 && s->client_eof) &&
	       !(mode == KC_SERVE_FORWARD && s->draining);
}

static int relay_round(struct session *s)
{
	bool echo = s->srv->o->mode == KC_SERVE_ECHO;
	bool exec = s->srv->o->mode == KC_SERVE_EXEC;
	struct kc_buf *to_client = echo ? &s->c2b : &s->b2c;
	struct kc_err err = { 0 };
	bool moved = false;
	ssize_t n;

	/* From the client. */
	if (!s->client_eof && !s->truncated && kc_buf_space(&s->c2b) > 0) {
		n = kc_conn_read(s->conn, kc_buf_tail(&s->c2b), kc_buf_space(&s->c2b), &err);
		if (n > 0) {
			/* After our close_notify there is nowhere to echo to;
			 * a command that stopped reading, or whose input
			 * closed at the stop, takes nothing more. */
			if (!(echo && kc_conn_close_sent(s->conn)) &&
			    !(exec && (s->command_in_gone || s->draining)))
				s->c2b.len += (size_t)n;
			moved = true;
		} else if (n == 0) {
			s->client_eof = true;
			moved = true;
		} else if (n != KC_CONN_AGAIN) {
			if (err.status != KC_E_TRUNCATED) {
				fail(s, KC_END_ERROR, &err);
				return -1;
			}
			s->truncated = true;
			s->rep.err = err;
			moved = true;
		}
	}
	/* To the backend, and its end when the client's came. */
	if (!echo && s->c2b.len > 0) {
		n = send(s->bfd, s->c2b.p + s->c2b.off, s->c2b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			kc_buf_consumed(&s->c2b, (size_t)n);
			moved = true;
		} else if (n < 0 && exec && (errno == EPIPE || errno == ECONNRESET)) {
			s->command_in_gone = true;
			s->c2b.len = s->c2b.off = 0;
			moved = true;
		} else if (n < 0 && fatal_errno(errno)) {
			if (exec)
				kc_err_errno(&err, KC_E_IO, errno, "cannot write to the command");
			else
				kc_err_errno(&err, KC_E_IO, errno, "backend %s failed while we sent "
					     "to it", s->rep.backend);
			kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
			fail(s, KC_END_BACKEND, &err);
			return -1;
		}
	}
	if (!echo && (s->client_eof || s->truncated || (exec && s->draining)) && s->c2b.len == 0 &&
	    !s->backend_shut) {
		shutdown(s->bfd, SHUT_WR);
		s->backend_shut = true;
		moved = true;
	}
	if (s->truncated && (echo || s->c2b.len == 0)) {
		err = s->rep.err;
		fail(s, KC_END_TRUNCATED, &err);
		return -1;
	}
	/* From the backend. */
	if (reads_backend(s) && kc_buf_space(&s->b2c) > 0) {
		n = recv(s->bfd, kc_buf_tail(&s->b2c), kc_buf_space(&s->b2c), MSG_DONTWAIT);
		if (n > 0) {
			s->b2c.len += (size_t)n;
			moved = true;
		} else if (n == 0 || (exec && errno == ECONNRESET) ||
			   (exec && errno == EAGAIN && s->child.reaped)) {
			/* A command's output ends at its exit too, once what it
			 * wrote is read: what it started may hold the socket. */
			s->backend_eof = true;
			moved = true;
		} else if (fatal_errno(errno)) {
			if (exec)
				kc_err_errno(&err, KC_E_IO, errno, "cannot read from the command");
			else
				kc_err_errno(&err, KC_E_IO, errno, "backend %s failed", s->rep.backend);
			kc_conn_abort(s->conn, GNUTLS_A_INTERNAL_ERROR);
			fail(s, KC_END_BACKEND, &err);
			return -1;
		}
	}
	if (s->truncated)
		return moved ? 1 : 0;   /* nothing more goes to the client */
	/* To the client. */
	if (to_client->len > 0 && !kc_conn_close_sent(s->conn)) {
		n = kc_conn_write(s->conn, to_client->p + to_client->off, to_client->len, &err);
		if (n > 0) {
			kc_buf_consumed(to_client, (size_t)n);
			moved = true;
		} else if (n == -1) {
			fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
			return -1;
		}
	}
	if (kc_conn_tx_pending(s->conn)) {
		int rc = kc_conn_flush(s->conn, &err);
		if (rc == -1) {
			fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
			return -1;
		}
	}
	/* Our close_notify, once everything before it is out. */
	if (close_due(s) && to_client->len == 0 && !kc_conn_close_sent(s->conn) &&
	    !kc_conn_tx_pending(s->conn) && writable(s->fd)) {
		if (kc_conn_close(s->conn, &err) < 0) {
			fail(s, err.status == KC_E_TRUNCATED ? KC_END_TRUNCATED : KC_END_ERROR, &err);
			return -1;
		}
		moved = true;
	}
	/* Done: close_notify both ways, everything delivered. */
	if (kc_conn_close_sent(s->conn) && !kc_conn_tx_pending(s->conn) && s->client_eof &&
	    (echo || (s->c2b.len == 0 && s->backend_shut))) {
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
	struct kc_buf *to_client = echo ? &s->c2b : &s->b2c;
	uint32_t cev = 0, bev = 0;

	if (!s->client_eof && !s->truncated && kc_buf_space(&s->c2b) > 0)
		cev |= EPOLLIN;
	if (!s->truncated && (to_client->len > 0 || kc_conn_tx_pending(s->conn) ||
	    (close_due(s) && !kc_conn_close_sent(s->conn))))
		cev |= EPOLLOUT;
	if (s->client_hup)
		kc_loop_unwatch(s->srv->loop, &s->client);
	else if (kc_loop_watch(s->srv->loop, &s->client, cev) < 0)
		return -1;
	if (echo)
		return 0;
	if (reads_backend(s) && kc_buf_space(&s->b2c) > 0)
		bev |= EPOLLIN;
	if (s->c2b.len > 0)
		bev |= EPOLLOUT;
	if (s->backend_hup) {
		kc_loop_unwatch(s->srv->loop, &s->backend);
		return 0;
	}
	return kc_loop_watch(s->srv->loop, &s->backend, bev);
}

static void relay(struct session *s)
{
	for (int round = 0;; round++) {
		int rc = relay_round(s);
		if (rc < 0)
			return;
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
	}
}

static void session_run(struct session *s)
{
	if (s->state == ST_HANDSHAKE && !handshake(s))
		return;
	if (s->state == ST_RELAY)
		relay(s);
}

/* An error or hangup on a socket watched for nothing else. */
static bool hung_up(const struct kc_loop_item *item, uint32_t events)
{
	return (events & (EPOLLERR | EPOLLHUP)) && !(item->watched & (EPOLLIN | EPOLLOUT));
}

static void on_client(struct kc_loop_item *item, uint32_t events)
{
	struct session *s = item->ctx;
	if (events & KC_LOOP_TIMER) {
		struct kc_err err = { 0 };
		kc_hs_timed_out(s->hs, &err);
		fail(s, KC_END_HANDSHAKE, &err);
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
		int e = events & KC_LOOP_TIMER ? ETIMEDOUT : kc_tcp_connect_result(s->bfd);
		if (e) {
			kc_loop_forget(s->srv->loop, &s->backend);
			close(s->bfd);
			s->bfd = -1;
			/* A timeout ends the session; a refusal tries the next address. */
			if (e == ETIMEDOUT)
				s->next_ai = NULL;
			connect_backend(s, e);
			return;
		}
		kc_loop_deadline(s->srv->loop, &s->backend, -1);
		s->state = ST_RELAY;
	} else if (hung_up(item, events)) {
		s->backend_hup = true;
	}
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
	char buf[64];
	ssize_t r;
	while ((r = read(item->fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
		;
	if (r == 0 || (r < 0 && errno != EAGAIN)) {
		/* the writer is gone or the pipe broke: no more requests */
		kc_loop_forget(srv->loop, item);
		return;
	}
	if (srv->stopping)
		return;   /* no handshake will start again */
	struct kc_err err = { 0 };
	struct kc_creds *c;
	if (kc_creds_new(&srv->o->tls, &c, &err) < 0) {
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

int kc_serve_run(const struct kc_serve_opts *o, struct kc_serve_result *res,
		 struct kc_err *err)
{
	struct server srv = { .o = o, .lfd = o->listen_fd, .res = res,
			      .max = o->max_conns ? o->max_conns : DEFAULT_MAX_CONNS };
	memset(res, 0, sizeof *res);
	if (kc_loop_new(&srv.loop, err) < 0) {
		close(o->listen_fd);
		return -1;
	}
	kc_set_nonblocking(srv.lfd, 1);
	kc_loop_item_init(&srv.listener, srv.lfd, on_listener, &srv);
	kc_loop_item_init(&srv.stop, o->stop_fd, on_stop, &srv);
	kc_loop_item_init(&srv.reload, o->reload_fd, on_reload, &srv);
	srv.creds = kc_creds_ref(o->creds);
	int rc = 0;
	if (o->stop_fd >= 0 && kc_loop_watch(srv.loop, &srv.stop, EPOLLIN) < 0)
		rc = kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the stop pipe");
	if (rc == 0 && o->reload_fd >= 0 && kc_loop_watch(srv.loop, &srv.reload, EPOLLIN) < 0)
		rc = kc_err_errno(err, KC_E_INTERNAL, errno, "epoll refused the reload pipe");
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
	kc_creds_free(srv.creds);
	if (srv.lfd >= 0)
		close(srv.lfd);
	kc_loop_free(srv.loop);
	return rc;
}
