/* cli/stats.c: `ktlsctl stats`, `keyupdate` and `tickets`. */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "cli/signals.h"
#include "cli/stats.h"
#include "core/atomicfile.h"
#include "core/ctl.h"
#include "core/diag/caps.h"
#include "core/diag/metrics.h"
#include "core/diag/session_view.h"
#include "core/diag/sockdiag.h"
#include "core/diag/tls_stat.h"

#define MAX_SESSIONS 256

/* A session's words: its title ("session PID", "session PID #ID" for a
 * serving process's: the id in its report, else the --session asked for),
 * labels and summary line. */
static void label_session(struct kc_view *s, pid_t pid, unsigned long asked, bool tickets)
{
	if (!s)
		return;
	const struct kc_view *id = kc_view_get(s, "session");
	unsigned long n = id && id->kind == KC_VIEW_UINT ? (unsigned long)id->num : asked;
	if (n)
		kc_view_set_label(s, "session %d #%lu", (int)pid, n);
	else
		kc_view_set_label(s, "session %d", (int)pid);
	if (tickets)
		kc_tickets_view_label(s);
	else
		kc_session_view_label(s);
}

/* One process's answer, as the next elements of list: a single
 * session's report, or each of a serving process's sessions (its STATS
 * has them in "sessions", core/ctl.h).  The number of sessions added, or
 * -1 with *err. */
static int ask_session(struct kc_view *list, pid_t pid, const struct cli_opts *o, bool tickets,
		       struct kc_err *err)
{
	struct kc_view *answer;
	char request[32] = "STATS";

	if (o->session_id)
		snprintf(request, sizeof request, "%s %lu", tickets ? "TICKETS" : "STATS",
			 o->session_id);
	else if (tickets)
		strcpy(request, "TICKETS");
	if (kc_ctl_request(pid, request, &answer, err) < 0)
		return -1;
	struct kc_view *served = (struct kc_view *)kc_view_get(answer, "sessions");
	if (!tickets && served && served->kind == KC_VIEW_ARRAY) {
		int n = 0;
		for (struct kc_view *s = served->first; s; s = s->next, n++)
			label_session(s, pid, 0, false);
		kc_view_move_children(list, served);
		kc_view_free(answer);
		return n;
	}
	label_session(kc_view_adopt(list, NULL, answer), pid, o->session_id, tickets);
	return 1;
}

/* The "sessions" list of root: the one process asked for, or every one. */
static int report_sessions(struct kc_view *root, const struct cli_opts *opts, bool tickets)
{
	pid_t pids[MAX_SESSIONS];
	size_t n = 0, answered = 0, sessions = 0;
	struct kc_err err = { 0 };
	struct kc_view *list = kc_view_array(root, "sessions", "sessions");

	if (opts->target_pid) {
		pids[0] = opts->target_pid;
		n = 1;
	} else if (kc_ctl_list(pids, MAX_SESSIONS, &n, &err) < 0) {
		cli_error("%s", err.msg);
		return -1;
	} else {
		char dir[256];
		if (kc_ctl_dir(dir, sizeof dir, false, &err) == 0)
			cli_info("%zu session control socket%s in %s", n, n == 1 ? "" : "s", dir);
	}
	for (size_t i = 0; i < n; i++) {
		int got = ask_session(list, pids[i], opts, tickets, &err);
		if (got >= 0) {
			answered++;
			sessions += (size_t)got;
		} else {   /* a session may end while we ask: say so, go on */
			cli_error("%s", err.msg);
		}
	}
	if (!sessions)
		kc_view_set_text(list, !n ? "none running" : answered ? "none established"
								      : "none answered");
	if (sessions)
		kc_view_set_summary(list, "sessions: %zu running", sessions);
	else
		kc_view_set_summary(list, "sessions: %s", list->text);
	return opts->target_pid && !answered ? -1 : 0;
}

/* Kernel capabilities are probed once per run: each probe bumps the
 * kernel's counters, and they do not change under --watch. */
static struct kc_ktls_caps caps;
static bool caps_done;

static int kernel_report(struct kc_view *root, bool probe)
{
	struct kc_err err = { 0 };
	struct kc_tls_stat st = { 0 };
	struct kc_sockdiag sd = { 0 };
	int rc = 0;

	/* Counters first: the probes below add to them. */
	cli_info("reading /proc/net/tls_stat");
	if (kc_tls_stat_read(NULL, &st, &err) < 0 || kc_tls_stat_view(&st, root, &err) < 0)
		rc = -1;
	/* A stop (Ctrl-C ends --watch) skips what is left of the report. */
	if (probe && !caps_done && !cli_stop_signal) {
		cli_info("probing kernel TLS on fresh loopback sockets");
		caps_done = kc_ktls_caps_probe(&caps, &err) == 0;
	}
	if (caps_done && kc_ktls_caps_view(&caps, root, &err) < 0)
		rc = -1;
	if (!cli_stop_signal)
		cli_info("listing kTLS sockets through sock_diag (NETLINK_SOCK_DIAG)");
	if (!cli_stop_signal &&
	    (kc_sockdiag_dump(NULL, &sd, &err) < 0 || kc_sockdiag_view(&sd, root, &err) < 0))
		rc = -1;
	if (rc < 0)
		cli_error("%s", err.msg);
	kc_sockdiag_free(&sd);
	kc_tls_stat_free(&st);
	return rc;
}

/* The report as asked for: text like ss or ip -br (a short summary,
 * unless asked for everything with -v or for one session), JSON, or
 * metrics.  malloc'd; NULL with *err. */
static char *render(const struct kc_view *root, const struct cli_opts *o, struct kc_err *err)
{
	switch (o->stats_format) {
	case CLI_STATS_OPENMETRICS:
		return kc_metrics_render(root, KC_METRICS_OPENMETRICS, err);
	case CLI_STATS_PROMETHEUS:
		return kc_metrics_render(root, KC_METRICS_PROMETHEUS, err);
	case CLI_STATS_JSON:
		return cli_render_view(root, CLI_JSON, err);
	case CLI_STATS_TEXT:
		break;
	}
	return cli_render_view(root, o->target_pid || o->verbosity == CLI_VERBOSE ? CLI_FULL
				     : CLI_BRIEF, err);
}

struct kc_view *cli_stats_report(const struct cli_opts *o, int *rc)
{
	struct kc_view *root = kc_view_new();
	if (!root) {
		cli_error("out of memory");
		*rc = -1;
		return NULL;
	}
	kc_view_uint(root, "format", "ktlsctl stats format", 1);
	/* ktlsctl stats PID is about that session alone. */
	int krc = o->target_pid ? 0 : kernel_report(root, true);
	int src = cli_stop_signal ? 0 : report_sessions(root, o, false);
	*rc = src < 0 ? src : krc;
	return root;
}

static int stats_once(const struct cli_opts *o)
{
	struct kc_err err = { 0 };
	int rc;
	struct kc_view *root = cli_stats_report(o, &rc);
	if (!root)
		return -1;
	char *text = render(root, o, &err);
	kc_view_free(root);
	if (!text) {
		cli_error("%s", err.msg);
		return -1;
	}
	/* 0644: the collector reading it runs as another user. */
	if (o->output) {
		if (kc_atomic_write(o->output, text, strlen(text), 0644, "write", &err) < 0) {
			cli_error("%s", err.msg);
			rc = -1;
		}
	} else {
		fputs(text, stdout);
		fflush(stdout);
	}
	free(text);
	return rc;
}

int cli_stats(const struct cli_opts *o)
{
	if (o->serve)
		return cli_stats_serve(o);
	for (;;) {
		int rc = stats_once(o);
		if (rc < 0 && o->target_pid)
			return KC_E_CONNECT;
		if (rc < 0 && !o->watch_ms)
			return KC_E_IO;
		if (o->watch_ms && cli_stop_signal)
			return 0;   /* Ctrl-C is how --watch ends, even mid-report */
		if (!o->watch_ms)
			return cli_stop_signal ? cli_interrupted_status() : 0;
		struct pollfd p = { .fd = cli_stop_fd, .events = POLLIN };
		poll(&p, cli_stop_fd >= 0 ? 1 : 0, (int)o->watch_ms);
		if (cli_stop_signal)
			return 0;   /* Ctrl-C is how --watch ends */
		if (o->stats_format == CLI_STATS_TEXT && !o->output)
			fputc('\n', stdout);
	}
}

int cli_keyupdate(const struct cli_opts *o)
{
	struct kc_view *answer = NULL;
	struct kc_err err = { 0 };
	char request[64], who[48];
	int n = snprintf(request, sizeof request, "KEYUPDATE");
	int w = snprintf(who, sizeof who, "session %d", (int)o->target_pid);
	if (o->session_id) {
		n += snprintf(request + n, sizeof request - (size_t)n, " %lu", o->session_id);
		snprintf(who + w, sizeof who - (size_t)w, " #%lu", o->session_id);
	}
	if (o->request_peer)
		snprintf(request + n, sizeof request - (size_t)n, " request");
	if (kc_ctl_request(o->target_pid, request, &answer, &err) < 0)
		return cli_fail(&err);
	kc_view_free(answer);
	cli_notice("%s updated its send keys%s", who,
		   o->request_peer ? " and asked the peer to update" : "");
	return 0;
}

int cli_tickets(const struct cli_opts *o)
{
	struct kc_view *root = kc_view_new();
	if (!root) {
		cli_error("out of memory");
		return KC_E_INTERNAL;
	}
	int rc = report_sessions(root, o, true);
	int prc = cli_print_view(stdout, root, o->json ? CLI_JSON : CLI_FULL);
	kc_view_free(root);
	return rc < 0 ? KC_E_CONNECT : prc < 0 ? KC_E_INTERNAL : 0;
}
