/* cli/stats_serve.c: `ktlsctl stats --serve [ADDR]:PORT`: the metrics of
 * `stats --format openmetrics|prometheus` over HTTP at /metrics, to many
 * scrapers at once, and over TLS with --cert and --key.
 *
 * One poll loop answers HTTP.  Each connection gets one request and one
 * answer (Connection: close).  A scraper that is slow to send its request
 * or to take the answer holds only its own slot until its deadline; the
 * sessions are other processes, asked through their control sockets, so
 * nothing here can hold them up.  At MAX_CLIENTS open connections the
 * loop takes no more until one ends.
 *
 * Plain HTTP: the loop accepts the connections itself; accept failing
 * for want of descriptors (EMFILE, ENFILE) rests it for a second, logged
 * once, never a busy loop.  A stop ends it at once.
 *
 * TLS: the engine of `listen --exec` (core/serve.h, socket mode) runs in
 * the main thread: non-blocking handshakes under a deadline, the kernel
 * channel when it can, SIGHUP reloading the credentials.  It hands each
 * established session's plaintext end, a socket, to the HTTP loop,
 * which runs in a second thread (building the metrics takes a while, and
 * the engine must not wait for it), through a pipe.  At a stop the engine
 * stops accepting and lets the scrapes in flight finish; the loop ends
 * when the engine has. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/serve.h"
#include "cli/signals.h"
#include "cli/stats.h"
#include "core/diag/metrics.h"
#include "core/http.h"
#include "core/net.h"
#include "core/serve.h"

#define MAX_CLIENTS 256
#define CLIENT_DEADLINE_MS 10000   /* to send the request and take the answer */
#define ACCEPT_REST_MS 1000        /* after EMFILE/ENFILE */
/* TLS */
#define HANDSHAKE_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 5000      /* for the scraper's close_notify, after ours */
#define DRAIN_TIMEOUT_MS 10000     /* after a stop, for the scrapes in flight */

struct client {
	int fd;                        /* -1: a free slot */
	char peer[KC_ADDRSTR_MAX];
	char in[KC_HTTP_HEAD_MAX];
	size_t in_len;
	char *out;                     /* the answer, once known */
	size_t out_len, out_off;
	int status;                    /* of the answer */
	long long deadline;            /* ms, monotonic */
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drop(struct client *c)
{
	if (c->fd >= 0) {
		shutdown(c->fd, SHUT_WR);
		close(c->fd);
	}
	free(c->out);
	*c = (struct client){ .fd = -1 };
}

/* Set c's answer: the head, and the body unless the request was HEAD. */
static void answer(struct client *c, int status, const char *type, const char *extra,
		   const char *body, size_t body_len, bool head_only)
{
	char *out = NULL;
	int n = asprintf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "%sConnection: close\r\n\r\n%.*s", status, kc_http_reason(status), type,
			 body_len, extra ? extra : "", head_only ? 0 : (int)body_len, body);
	if (n < 0) {
		cli_error("out of memory answering %s", c->peer);
		drop(c);
		return;
	}
	c->out = out;
	c->status = status;
	c->out_len = (size_t)n;
	c->out_off = 0;
}

static void answer_text(struct client *c, int status, const char *text, bool head_only)
{
	answer(c, status, "text/plain; charset=utf-8", status == 405 ? "Allow: GET, HEAD\r\n" : NULL,
	       text, strlen(text), head_only);
}

static void answer_metrics(struct client *c, const struct cli_opts *o, bool openmetrics,
			   bool head_only)
{
	enum kc_metrics_format fmt = o->stats_format == CLI_STATS_OPENMETRICS ? KC_METRICS_OPENMETRICS
		: o->stats_format == CLI_STATS_PROMETHEUS ? KC_METRICS_PROMETHEUS
		: openmetrics ? KC_METRICS_OPENMETRICS : KC_METRICS_PROMETHEUS;
	struct kc_err err = { 0 };
	int rc;
	struct kc_view *report = cli_stats_report(o, &rc);
	char *text = report ? kc_metrics_render(report, fmt, &err) : NULL;
	kc_view_free(report);
	if (!text) {
		answer_text(c, 500, "ktlsctl could not build the metrics (out of memory)\n", head_only);
		return;
	}
	answer(c, 200, kc_metrics_content_type(fmt), NULL, text, strlen(text), head_only);
	free(text);
}

/* What c's request asks for, once its head is in. */
static void respond(struct client *c, const struct cli_opts *o, const struct kc_http_request *req)
{
	bool head_only = req->method == KC_HTTP_HEAD;
	size_t path_len = strcspn(req->target, "?");

	if (req->method == KC_HTTP_OTHER)
		answer_text(c, 405, "only GET and HEAD\n", false);
	else if (path_len == 8 && strncmp(req->target, "/metrics", 8) == 0)
		answer_metrics(c, o, req->openmetrics, head_only);
	else if (path_len == 1 && req->target[0] == '/')
		answer_text(c, 200, "ktlsctl metrics: GET /metrics\n", head_only);
	else
		answer_text(c, 404, "not found: the metrics are at /metrics\n", head_only);
	if (c->fd >= 0)
		cli_info("%s: %s %s: %d", c->peer, req->method == KC_HTTP_GET ? "GET"
			 : req->method == KC_HTTP_HEAD ? "HEAD" : "(another method)", req->target,
			 c->status);
}

static void on_readable(struct client *c, const struct cli_opts *o)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {   /* gone before its request was whole */
		drop(c);
		return;
	}
	c->in_len += (size_t)n;
	struct kc_http_request req;
	long head = kc_http_parse(c->in, c->in_len, &req);
	if (head == 0)
		return;
	if (head < 0) {
		cli_info("%s: bad request (%s): answered %d", c->peer, req.why, req.status);
		answer_text(c, req.status, "bad request\n", false);
		return;
	}
	respond(c, o, &req);
}

static void on_writable(struct client *c)
{
	ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		drop(c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off == c->out_len)
		drop(c);
}

/* A new connection in a free slot (there is one: the loop takes no more
 * when every slot is taken). */
static void add_client(struct client *clients, int fd, const char *peer)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0) {
			clients[i] = (struct client){ .fd = fd,
						      .deadline = now_ms() + CLIENT_DEADLINE_MS };
			snprintf(clients[i].peer, sizeof clients[i].peer, "%s", peer);
			return;
		}
	}
	close(fd);
}

static void accept_one(int lfd, struct client *clients, long long *rest_until)
{
	static bool said_emfile;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			if (!said_emfile)
				cli_notice("out of file descriptors (%s): not accepting for a while",
					   strerror(errno));
			said_emfile = true;
			*rest_until = now_ms() + ACCEPT_REST_MS;
		}
		return;   /* EAGAIN, ECONNABORTED, ...: nothing to do */
	}
	said_emfile = false;
	char peer[KC_ADDRSTR_MAX];
	kc_sockaddr_str(&ss, peer);
	add_client(clients, fd, peer);
}

/* What the TLS engine hands the HTTP loop for each session, written
 * whole to a pipe (one write, under PIPE_BUF: never split). */
struct handover {
	int fd;                        /* the session's plaintext end */
	char peer[KC_ADDRSTR_MAX];
};

/* The next session from the engine; false once the engine is done. */
static bool take_one(int feed, struct client *clients)
{
	struct handover h;
	ssize_t n = read(feed, &h, sizeof h);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n != (ssize_t)sizeof h)
		return false;
	add_client(clients, h.fd, h.peer);
	return true;
}

/* Answer HTTP on the connections accepted on lfd (plain: until a stop)
 * or handed over through feed (TLS: until the engine closes it); the
 * other is -1.  Returns the exit status. */
static int http_loop(const struct cli_opts *o, int lfd, int feed)
{
	struct kc_err err = { 0 };
	int rc = 0;
	static struct client clients[MAX_CLIENTS];
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	long long rest_until = 0;
	bool fed = true;               /* the engine still hands over */
	while (lfd >= 0 ? !cli_stop_signal : fed) {
		struct pollfd p[MAX_CLIENTS + 2];
		struct client *who[MAX_CLIENTS + 2] = { 0 };
		nfds_t n = 0;
		long long now = now_ms(), next = now + 60000;
		size_t open = 0;
		for (size_t i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			if (c->fd < 0)
				continue;
			if (now >= c->deadline) {
				cli_info("%s: too slow (%d s to send a request and take the answer): "
					 "closed", c->peer, CLIENT_DEADLINE_MS / 1000);
				drop(c);
				continue;
			}
			open++;
			next = c->deadline < next ? c->deadline : next;
			who[n] = c;
			p[n++] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
		}
		bool taking = open < MAX_CLIENTS && now >= rest_until;
		if (taking)
			p[n++] = (struct pollfd){ .fd = lfd >= 0 ? lfd : feed, .events = POLLIN };
		else if (open < MAX_CLIENTS)
			next = rest_until < next ? rest_until : next;
		if (lfd >= 0 && cli_stop_fd >= 0)
			p[n++] = (struct pollfd){ .fd = cli_stop_fd, .events = POLLIN };
		int ready = poll(p, n, (int)(next - now));
		if (ready < 0 && errno != EINTR) {
			kc_err_errno(&err, KC_E_IO, errno, "poll failed serving metrics");
			rc = cli_fail(&err);
			break;
		}
		for (nfds_t i = 0; ready > 0 && i < n; i++) {
			if (!p[i].revents)
				continue;
			if (who[i] && who[i]->out)
				on_writable(who[i]);
			else if (who[i])
				on_readable(who[i], o);
			else if (p[i].fd == lfd)
				accept_one(lfd, clients, &rest_until);
			else if (p[i].fd == feed)
				fed = take_one(feed, clients);
		}
	}
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		drop(&clients[i]);
	return lfd >= 0 && cli_stop_signal ? 0 : rc;
}

/* ------------------------------------------------------------------ TLS */

/* The pipe's end the engine writes (one server per process, as the
 * loop's clients). */
static int feed_w = -1;

static int on_socket(void *ctx, int fd, const struct kc_session_report *r, struct kc_err *err)
{
	struct handover h = { .fd = fd };
	snprintf(h.peer, sizeof h.peer, "%s", r->peer);
	if (write(feed_w, &h, sizeof h) != (ssize_t)sizeof h) {
		int e = errno;
		close(fd);
		return kc_err_errno(err, KC_E_INTERNAL, e, "cannot hand the session to the "
				    "HTTP side");
	}
	return 0;
}

/* A scraper comes every few seconds: a line for each is noise, so only
 * sessions that failed get one, unless -v. */
static void on_end(void *ctx, const struct kc_session_report *r)
{
	const struct cli_opts *o = ctx;
	if (o->verbosity == CLI_VERBOSE || (r->end != KC_END_CLOSED && r->end != KC_END_TRUNCATED))
		cli_serve_on_end(ctx, r);
}

struct http_thread {
	const struct cli_opts *o;
	int feed;                      /* the pipe's end the loop reads */
	int rc;
};

static void *http_thread_main(void *arg)
{
	struct http_thread *h = arg;
	h->rc = http_loop(h->o, -1, h->feed);
	return NULL;
}

/* Serve on lfd (taken over) with creds (loaded from tls, taken over). */
static int serve_tls(const struct cli_opts *o, const struct kc_tls_opts *tls,
		     struct kc_creds *creds, int lfd, const char *bound)
{
	struct kc_err err = { 0 };
	int feed[2] = { -1, -1 };
	if (cli_install_reload_signal() < 0)
		kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot set up SIGHUP (reload)");
	else if (pipe2(feed, O_CLOEXEC | O_NONBLOCK) < 0)
		kc_err_errno(&err, KC_E_INTERNAL, errno, "cannot serve metrics over TLS: pipe");
	if (feed[0] < 0) {
		kc_creds_free(creds);
		close(lfd);
		return cli_fail(&err);
	}
	cli_raise_fd_limit();

	/* The HTTP thread takes no signal: they stop the engine, here. */
	struct http_thread h = { .o = o, .feed = feed[0] };
	pthread_t thread;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&thread, NULL, http_thread_main, &h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		close(feed[0]);
		close(feed[1]);
		kc_creds_free(creds);
		close(lfd);
		kc_err_errno(&err, KC_E_INTERNAL, e, "cannot serve metrics over TLS: no thread");
		return cli_fail(&err);
	}
	cli_notice("serving metrics on https://%s/metrics", bound);
	feed_w = feed[1];
	struct kc_serve_opts so = {
		.mode = KC_SERVE_SOCKET,
		.listen_fd = lfd,
		.tls = *tls,
		.creds = creds,
		.ktls = o->ktls,
		.on_socket = on_socket,
		.max_conns = MAX_CLIENTS,
		.drain_timeout_ms = DRAIN_TIMEOUT_MS,
		.close_timeout_ms = CLOSE_TIMEOUT_MS,
		.stop_fd = cli_stop_fd,
		.reload_fd = cli_reload_fd,
		.on_end = on_end,
		.on_notice = cli_serve_on_notice,
		.on_reload = cli_serve_on_reload,
		.ctx = (void *)o,
	};
	struct kc_serve_result res;
	int rc = kc_serve_run(&so, &res, &err);
	/* Every session has ended: the loop's connections are done too. */
	close(feed[1]);
	pthread_join(thread, NULL);
	close(feed[0]);
	kc_creds_free(creds);
	return rc < 0 ? cli_fail(&err) : h.rc;
}

int cli_stats_serve(const struct cli_opts *o)
{
	struct kc_err err = { 0 };
	struct kc_tls_opts tls = o->tls;
	tls.role = KC_SERVER;
	tls.handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS;
	struct kc_creds *creds = NULL;
	if (o->tls.n_certfiles && kc_creds_new(&tls, &creds, &err) < 0)
		return cli_fail(&err);
	char bound[KC_ADDRSTR_MAX];
	int lfd = kc_tcp_listen(&o->serve_hp, bound, &err);
	if (lfd < 0) {
		kc_creds_free(creds);
		return cli_fail(&err);
	}
	/* Probe the kernel now, not at the first scrape: it takes a moment. */
	int rc;
	kc_view_free(cli_stats_report(o, &rc));
	if (creds)
		return serve_tls(o, &tls, creds, lfd, bound);
	cli_notice("serving metrics on http://%s/metrics", bound);
	rc = http_loop(o, lfd, -1);
	close(lfd);
	return rc;
}
