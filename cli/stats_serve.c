/* cli/stats_serve.c: `ktlsctl stats --serve [ADDR]:PORT`: the metrics of
 * `stats --format openmetrics|prometheus` over HTTP at /metrics, to many
 * scrapers at once.
 *
 * One poll loop, no threads.  Each connection gets one request and one
 * answer (Connection: close).  A scraper that is slow to send its request
 * or to take the answer holds only its own slot until its deadline; the
 * sessions are other processes, asked through their control sockets, so
 * nothing here can hold them up.  At MAX_CLIENTS open connections the
 * listener rests until one ends; accept failing for want of descriptors
 * (EMFILE, ENFILE) rests it for a second, logged once, never a busy loop. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/signals.h"
#include "cli/stats.h"
#include "core/diag/metrics.h"
#include "core/http.h"
#include "core/net.h"

#define MAX_CLIENTS 256
#define CLIENT_DEADLINE_MS 10000   /* to send the request and take the answer */
#define ACCEPT_REST_MS 1000        /* after EMFILE/ENFILE */

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
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0) {
			clients[i] = (struct client){ .fd = fd,
						      .deadline = now_ms() + CLIENT_DEADLINE_MS };
			kc_sockaddr_str(&ss, clients[i].peer);
			return;
		}
	}
	close(fd);   /* cannot happen: the listener rests when every slot is taken */
}

int cli_stats_serve(const struct cli_opts *o)
{
	struct kc_err err = { 0 };
	char bound[KC_ADDRSTR_MAX];
	int lfd = kc_tcp_listen(&o->serve_hp, bound, &err);
	if (lfd < 0)
		return cli_fail(&err);
	/* Probe the kernel now, not at the first scrape: it takes a moment. */
	int rc;
	kc_view_free(cli_stats_report(o, &rc));
	cli_notice("serving metrics on http://%s/metrics", bound);

	static struct client clients[MAX_CLIENTS];
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	long long rest_until = 0;
	while (!cli_stop_signal) {
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
		bool listening = open < MAX_CLIENTS && now >= rest_until;
		if (listening)
			p[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		else if (open < MAX_CLIENTS)
			next = rest_until < next ? rest_until : next;
		if (cli_stop_fd >= 0)
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
		}
	}
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		drop(&clients[i]);
	close(lfd);
	return cli_stop_signal ? 0 : rc;
}
