/* cli/stats.c: `ktlsctl stats`, `keyupdate` and `tickets`. */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "cli/session.h"
#include "cli/stats.h"
#include "core/ctl.h"
#include "core/diag/caps.h"
#include "core/diag/sockdiag.h"
#include "core/diag/tls_stat.h"

#define MAX_SESSIONS 256

/* Text labels of the fields a session reports; JSON uses the keys. */
static const struct { const char *key, *label; } labels[] = {
	{ "pid", "pid" }, { "role", "role" }, { "peer", "peer" },
	{ "channel", "record channel" }, { "version", "version" }, { "cipher", "cipher" },
	{ "suite", "cipher suite" }, { "resumed", "resumed" },
	{ "records_key", "records under the current key" }, { "records", "records in all" },
	{ "bytes", "bytes" }, { "key_updates", "key updates" },
	{ "limit", "confidentiality limit (records, 0 = none)" },
	{ "limit_used", "limit used (%)" }, { "rekey_point", "key update after (records)" },
	{ "tickets", "tickets held" }, { "uptime", "uptime (s)" }, { "count", "tickets" },
	{ "arrived", "arrived (unix time)" }, { "lifetime", "lifetime (s)" },
	{ "age_add", "age_add" }, { "nonce_len", "nonce length" }, { "length", "ticket length" },
	{ "sha256", "sha256[0..8]" }, { "in_use", "used to resume" },
	{ "max_early_data", "max_early_data" },
	{ "record_size", "record size limit (bytes)" },
	{ "record_size_by", "record size kept by" },
	{ "record_size_exact", "every record checked" },
	{ "no_pad", "TLS_RX_EXPECT_NO_PAD" },
};

static const char *label_for(const char *key)
{
	for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
		if (strcmp(labels[i].key, key) == 0)
			return labels[i].label;
	return key;
}

/* A session's answer as fields, emitted in order; "a.b c" lines are
 * grouped into an object "a" (a run of equal prefixes), and "a.N.b c"
 * lines into the items of an array "as" (N = 0, 1, ...: "ticket.N" makes
 * "tickets"). */
struct fields {
	char *key[128], *value[128];
	size_t n;
};

static void collect(void *ctx, const char *key, const char *value)
{
	struct fields *f = ctx;
	if (f->n < 128) {
		f->key[f->n] = strdup(key);
		f->value[f->n] = strdup(value);
		if (f->key[f->n] && f->value[f->n])
			f->n++;
	}
}

static void fields_free(struct fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->key[i]);
		free(f->value[i]);
	}
	f->n = 0;
}

static void emit_value(struct cli_out *o, const char *key, const char *value)
{
	if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0)
		out_bool(o, key, label_for(key), value[0] == 'y');
	else
		out_num_text(o, key, label_for(key), value);
}

/* "name.N" (an array item) gives name's length, else 0. */
static size_t item_name_len(const char *prefix)
{
	const char *dot = strrchr(prefix, '.');
	if (!dot || !dot[1] || strspn(dot + 1, "0123456789") != strlen(dot + 1))
		return 0;
	return (size_t)(dot - prefix);
}

static void emit_fields(struct cli_out *o, const struct fields *f)
{
	char group[64] = "", list[64] = "";
	for (size_t i = 0; i < f->n; i++) {
		const char *dot = strrchr(f->key[i], '.');
		char prefix[64] = "";
		if (dot)
			snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - f->key[i]), f->key[i]);
		if (strcmp(prefix, group) != 0) {
			size_t nl = item_name_len(prefix);
			if (group[0])
				out_end(o);
			if (list[0] && (nl == 0 || strncmp(prefix, list, nl) != 0 || list[nl])) {
				out_end(o);
				list[0] = '\0';
			}
			if (nl) {
				char title[96];
				if (!list[0]) {
					char key[80];
					snprintf(list, sizeof list, "%.*s", (int)nl, prefix);
					snprintf(key, sizeof key, "%ss", list);
					snprintf(title, sizeof title, "%s list", list);
					out_list(o, key, title);
				}
				/* People count from 1 (as /tickets does). */
				snprintf(title, sizeof title, "%s %llu", list,
					 strtoull(prefix + nl + 1, NULL, 10) + 1);
				out_item(o, title);
			} else if (prefix[0]) {
				out_object(o, prefix,
					   strcmp(prefix, "tx") == 0 ? "send" :
					   strcmp(prefix, "rx") == 0 ? "receive" : prefix);
			}
			snprintf(group, sizeof group, "%s", prefix);
		}
		emit_value(o, dot ? dot + 1 : f->key[i], f->value[i]);
	}
	if (group[0])
		out_end(o);
	if (list[0])
		out_end(o);
}

static int session_report(struct cli_out *o, pid_t pid, const char *request, struct kc_err *err)
{
	char *resp;
	struct fields f = { 0 };
	char title[64];

	if (kc_ctl_request(pid, request, &resp, err) < 0)
		return -1;
	kc_ctl_fields(resp, collect, &f);
	free(resp);
	snprintf(title, sizeof title, "session %d", (int)pid);
	out_item(o, title);
	emit_fields(o, &f);
	out_end(o);
	fields_free(&f);
	return 0;
}

static int report_sessions(struct cli_out *o, const struct cli_opts *opts, const char *request)
{
	pid_t pids[MAX_SESSIONS];
	size_t n = 0;
	struct kc_err err = { 0 };
	int failures = 0;

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
	if (n == 0 && !o->json) {
		fputs("sessions: none running\n", o->f);
		return 0;
	}
	out_list(o, "sessions", "sessions");
	for (size_t i = 0; i < n; i++) {
		if (session_report(o, pids[i], request, &err) < 0) {
			/* A session may end while we ask: say so, go on. */
			cli_error("%s", err.msg);
			failures++;
		}
	}
	out_end(o);
	return opts->target_pid && failures ? -1 : 0;
}

/* A capability {state, reason, errno} reads best as one text line. */
static bool render_cap(struct cli_out *o, const struct kc_view *v)
{
	const struct kc_view *state = kc_view_get(v, "state"), *reason = kc_view_get(v, "reason");
	/* A socket has a "state" too (its TCP state): a capability is the
	 * object with state, reason and errno. */
	if (o->json || !state || state->kind != KC_VIEW_STRING || !kc_view_get(v, "errno"))
		return false;
	char line[600];
	if (reason && reason->kind == KC_VIEW_STRING && strcmp(state->str, "yes") != 0)
		snprintf(line, sizeof line, "%s (%s)", state->str, reason->str);
	else
		snprintf(line, sizeof line, "%s", state->str);
	out_str(o, v->key, v->label ? v->label : v->key, line);
	return true;
}

/* The core's view trees, through the same emitter as everything else. */
static void render_view(struct cli_out *o, const struct kc_view *v)
{
	const char *label = v->label ? v->label : v->key ? v->key : "";
	switch (v->kind) {
	case KC_VIEW_OBJECT:
		if (render_cap(o, v))
			return;
		if (v->key) {
			out_object(o, v->key, label);
		} else {
			/* A list element: its summary, after its name if it has one. */
			const struct kc_view *name = kc_view_get(v, "name");
			char title[700];
			snprintf(title, sizeof title, "%s%s%s",
				 name && name->kind == KC_VIEW_STRING ? name->str : "",
				 name && name->kind == KC_VIEW_STRING && v->text ? ": " : "",
				 v->text ? v->text : name ? "" : label);
			out_item(o, title);
		}
		/* In text, a list element with a one-line summary says enough. */
		if (o->json || !v->text || v->key)
			for (const struct kc_view *c = v->first; c; c = c->next)
				render_view(o, c);
		out_end(o);
		return;
	case KC_VIEW_ARRAY:
		out_list(o, v->key, label);
		for (const struct kc_view *c = v->first; c; c = c->next)
			render_view(o, c);
		out_end(o);
		return;
	case KC_VIEW_STRING: out_str(o, v->key, label, v->str); return;
	case KC_VIEW_UINT: out_u64(o, v->key, label, v->num); return;
	case KC_VIEW_NUMBER: out_num_text(o, v->key, label, v->str); return;
	case KC_VIEW_BOOL: out_bool(o, v->key, label, v->flag); return;
	case KC_VIEW_NULL: out_null(o, v->key, label); return;
	}
}

/* Kernel capabilities are probed once per run: each probe bumps the
 * kernel's counters, and they do not change under --watch. */
static struct kc_ktls_caps caps;
static bool caps_done;

static int kernel_report(struct cli_out *o, bool probe)
{
	struct kc_err err = { 0 };
	struct kc_tls_stat st = { 0 };
	struct kc_sockdiag sd = { 0 };
	struct kc_view *v = kc_view_new();
	int rc = 0;

	if (!v)
		return -1;
	/* Counters first: the probes below add to them. */
	cli_info("reading /proc/net/tls_stat");
	if (kc_tls_stat_read(NULL, &st, &err) < 0 || kc_tls_stat_view(&st, v, &err) < 0)
		rc = -1;
	/* A stop (Ctrl-C ends --watch) skips what is left of the report. */
	if (probe && !caps_done && !cli_stop_signal) {
		cli_info("probing kernel TLS on fresh loopback sockets");
		caps_done = kc_ktls_caps_probe(&caps, &err) == 0;
	}
	if (caps_done && kc_ktls_caps_view(&caps, v, &err) < 0)
		rc = -1;
	if (!cli_stop_signal)
		cli_info("listing kTLS sockets through sock_diag (NETLINK_SOCK_DIAG)");
	if (!cli_stop_signal &&
	    (kc_sockdiag_dump(NULL, &sd, &err) < 0 || kc_sockdiag_view(&sd, v, &err) < 0))
		rc = -1;
	if (rc < 0)
		cli_error("%s", err.msg);
	for (const struct kc_view *c = v->first; c; c = c->next)
		render_view(o, c);
	kc_sockdiag_free(&sd);
	kc_tls_stat_free(&st);
	kc_view_free(v);
	return rc;
}

static int stats_once(const struct cli_opts *o)
{
	struct cli_out out;
	out_init(&out, stdout, o->json);
	out_u64(&out, "format", "ktlsctl stats format", 1);
	/* ktlsctl stats PID is about that session alone. */
	int krc = o->target_pid ? 0 : kernel_report(&out, true);
	int rc = cli_stop_signal ? 0 : report_sessions(&out, o, "STATS");
	out_finish(&out);
	fflush(stdout);
	return rc < 0 ? rc : krc;
}

int cli_stats(const struct cli_opts *o)
{
	for (;;) {
		int rc = stats_once(o);
		if (rc < 0 && o->target_pid)
			return KC_E_CONNECT;
		if (rc < 0 && !o->watch_ms)
			return KC_E_IO;
		if (o->watch_ms && cli_stop_signal)
			return 0;   /* Ctrl-C is how --watch ends, even mid-report */
		if (!o->watch_ms)
			return cli_stop_signal ? 128 + (int)cli_stop_signal : 0;
		struct pollfd p = { .fd = cli_stop_fd, .events = POLLIN };
		poll(&p, cli_stop_fd >= 0 ? 1 : 0, (int)o->watch_ms);
		if (cli_stop_signal)
			return 0;   /* Ctrl-C is how --watch ends */
		if (!o->json)
			fputc('\n', stdout);
	}
}

int cli_keyupdate(const struct cli_opts *o)
{
	char *resp = NULL;
	struct kc_err err = { 0 };
	if (kc_ctl_request(o->target_pid, o->request_peer ? "KEYUPDATE request" : "KEYUPDATE",
			   &resp, &err) < 0)
		return cli_fail(&err);
	free(resp);
	cli_notice("session %d updated its send keys%s", (int)o->target_pid,
		   o->request_peer ? " and asked the peer to update" : "");
	return 0;
}

int cli_tickets(const struct cli_opts *o)
{
	struct cli_out out;
	out_init(&out, stdout, o->json);
	int rc = report_sessions(&out, o, "TICKETS");
	out_finish(&out);
	return rc < 0 ? KC_E_CONNECT : 0;
}
