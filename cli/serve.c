/* cli/serve.c: serving many sessions; what a user sees of it. */
#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/serve.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "cli/workers.h"
#include "core/ctl.h"
#include "core/diag/view.h"
#include "core/diag/hsinfo_view.h"
#include "core/diag/view_json.h"
#include "core/hsinfo.h"
#include "core/serve.h"

/* How a session went, once: the text line and the JSON object are both
 * rendered from this tree (fields without a value are left out). */
static struct kc_view *report_view(const struct kc_session_report *r)
{
	struct kc_view *v = kc_view_new();
	kc_view_string(v, "event", NULL, "session");
	kc_view_uint(v, "session", NULL, r->id);
	kc_view_string(v, "peer", NULL, "%s", r->peer);
	if (r->backend[0])
		kc_view_string(v, "backend", NULL, "%s", r->backend);
	if (r->command_pid)
		kc_view_uint(v, "pid", NULL, (uint64_t)r->command_pid);
	if (r->version[0])
		kc_view_string(v, "version", NULL, "%s", r->version);
	if (r->cipher[0])
		kc_view_string(v, "cipher", NULL, "%s", r->cipher);
	if (r->resumed)
		kc_view_string(v, "resumed", NULL, "yes");
	if (r->sni[0])
		kc_view_string(v, "sni", NULL, "%s", r->sni);
	if (r->alpn[0])
		kc_view_string(v, "alpn", NULL, "%s", r->alpn);
	if (r->early)
		kc_view_uint(v, "early", NULL, r->early);
	if (r->channel)
		kc_view_string(v, "channel", NULL, "%s", r->channel);
	if (r->path)
		kc_view_string(v, "path", NULL, "%s", r->path);
	kc_view_uint(v, "rx", NULL, r->rx);
	kc_view_uint(v, "tx", NULL, r->tx);
	kc_view_decimal(v, "duration", NULL, (double)r->duration_ms / 1000, 3);
	/* The command's exit is part of how the session went. */
	if (r->command_ended && WIFSIGNALED(r->command_status)) {
		const char *name = sigabbrev_np(WTERMSIG(r->command_status));
		if (name)
			kc_view_string(v, "signal", NULL, "%s", name);
		else
			kc_view_uint(v, "signal", NULL, (uint64_t)WTERMSIG(r->command_status));
	} else if (r->command_ended) {
		kc_view_uint(v, "exit", NULL, (uint64_t)WEXITSTATUS(r->command_status));
	}
	kc_view_string(v, "end", NULL, "%s", kc_session_end_name(r->end));
	if (r->end != KC_END_CLOSED && r->err.msg[0])
		kc_view_string(v, "reason", NULL, "%s", r->err.msg);
	return v;
}

/* The text line: "session N", then key=value; the duration (the one
 * number with a fraction) in seconds, the reason quoted. */
static void report_text(const struct kc_view *v, char *line, size_t len)
{
	size_t off = 0;
	line[0] = '\0';
	for (const struct kc_view *f = v->first; f && off < len; f = f->next) {
		int n = 0;
		if (!strcmp(f->key, "event"))
			continue;
		if (!strcmp(f->key, "session"))
			n = snprintf(line + off, len - off, "session %llu", (unsigned long long)f->num);
		else if (f->kind == KC_VIEW_UINT)
			n = snprintf(line + off, len - off, " %s=%llu", f->key,
				     (unsigned long long)f->num);
		else if (f->kind == KC_VIEW_NUMBER)
			n = snprintf(line + off, len - off, " %s=%ss", f->key, f->str);
		else if (!strcmp(f->key, "reason"))
			n = snprintf(line + off, len - off, " %s=\"%s\"", f->key, f->str);
		else
			n = snprintf(line + off, len - off, " %s=%s", f->key, f->str);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

static void log_view(const struct kc_view *v)
{
	struct kc_err err;
	char *json = kc_view_json(v, &err);
	if (json)
		cli_log_line(json);
	else
		cli_error("%s", err.msg);
	free(json);
}

void cli_serve_on_end(void *ctx, const struct kc_session_report *r)
{
	const struct cli_opts *o = ctx;
	struct kc_view *v = report_view(r);
	if (!kc_view_ok(v)) {
		cli_error("out of memory: no log line for session %lu", r->id);
	} else if (o->log_json) {
		log_view(v);
	} else {
		char line[1024];
		report_text(v, line, sizeof line);
		cli_notice("%s", line);
	}
	kc_view_free(v);
}

/* -v: a line per handshake, key=value as the end line ("session 3
 * handshake version=TLS1.3 ..."), or with --log-format json the whole
 * handshake report (core/diag/hsinfo_view.h) with event "handshake". */
static void handshake_text(const struct kc_session_report *r, const struct kc_hsinfo *h)
{
	char line[2048];
	size_t off = 0;
	const struct kc_cert_info *c = h->n_certs ? &h->certs[0] : NULL;
#define ADD(...)                                                              \
	do {                                                                  \
		int n_ = snprintf(line + off, sizeof line - off, __VA_ARGS__); \
		if (n_ > 0 && (size_t)n_ < sizeof line - off)                 \
			off += (size_t)n_;                                    \
	} while (0)
	ADD("session %lu handshake version=%s suite=%s", r->id, h->version, h->suite);
	if (h->group[0])
		ADD(" group=%s", h->group);
	if (h->signature[0])
		ADD(" signature=%s", h->signature);
	if (h->alpn[0])
		ADD(" alpn=%s", h->alpn);
	if (h->sni[0])
		ADD(" sni=%s", h->sni);
	if (h->resumed)
		ADD(" resumed=yes");
	ADD(" certificates=%zu", h->chain_len);
	if (c)
		ADD(" subject=\"%s\" sha256=%s", c->subject, c->sha256);
	/* One word each, as the end line's values: "not-stapled". */
	char verify[32], ocsp[32];
	snprintf(verify, sizeof verify, "%s", kc_verify_status_name(h->verify));
	snprintf(ocsp, sizeof ocsp, "%s", kc_ocsp_status_name(h->ocsp));
	for (char *p = verify; (p = strchr(p, ' ')); )
		*p = '-';
	for (char *p = ocsp; (p = strchr(p, ' ')); )
		*p = '-';
	ADD(" verification=%s ocsp=%s", verify, ocsp);
#undef ADD
	cli_notice("%s", line);
}

static void cli_serve_on_handshake(void *ctx, const struct kc_session_report *r,
				   gnutls_session_t tls)
{
	const struct cli_opts *o = ctx;
	struct kc_err err = { 0 };

	if (o->verbosity != CLI_VERBOSE)
		return;
	struct kc_hsinfo *h = malloc(sizeof *h);
	if (!h || kc_hsinfo_collect(tls, &o->tls, h, &err) < 0) {
		cli_error("no handshake report for session %lu: %s", r->id,
			  h ? err.msg : "out of memory");
		free(h);
		return;
	}
	if (!o->log_json) {
		handshake_text(r, h);
	} else {
		struct kc_view *v = kc_view_new();
		kc_view_string(v, "event", NULL, "handshake");
		kc_view_uint(v, "session", NULL, r->id);
		/* originate: the TLS peer is the server, the report's backend */
		if (kc_hsinfo_view(v, h, o->accept ? r->backend : r->peer, &err) == 0)
			log_view(v);
		else
			cli_error("%s", err.msg);
		kc_view_free(v);
	}
	free(h);
}

void cli_serve_on_notice(void *ctx, const char *msg)
{
	const struct cli_opts *o = ctx;
	if (!o->log_json) {
		cli_notice("%s", msg);
		return;
	}
	struct kc_view *v = kc_view_new();
	kc_view_string(v, "event", NULL, "notice");
	kc_view_string(v, "message", NULL, "%s", msg);
	if (kc_view_ok(v))
		log_view(v);
	kc_view_free(v);
}

/* A spliced session holds six descriptors (client, backend, two pipes):
 * the usual soft limit of 1024 would stop accepting long before
 * --max-conns.  Raise it to the hard limit, as servers do; running out
 * anyway pauses accepting (core/serve.h).  Not for --exec: commands
 * would inherit it, and programs that select() or close every
 * descriptor up to the limit break on a large one. */
void cli_raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* One line either way, after SIGHUP. */
void cli_serve_on_reload(void *ctx, const struct kc_creds *creds, const struct kc_err *err)
{
	const struct cli_opts *o = ctx;
	if (!creds) {
		cli_error("cannot reload credentials: %s; new handshakes still use the old ones",
			  err->msg);
		return;
	}
	/* "'c1', 'k1', 'c2', 'k2' and 'ca'": every file read, in order;
	 * then what each certificate is, in the same order. */
	const char *files[2 * KC_MAX_CERTS + 1];
	size_t n = 0;
	for (size_t i = 0; i < o->tls.n_certfiles; i++) {
		files[n++] = o->tls.certfile[i];
		files[n++] = o->tls.keyfile[i];
	}
	if (o->tls.cafile)
		files[n++] = o->tls.cafile;
	char from[4 * 1024] = "", certs[2 * 1024] = "", msg[7 * 1024];
	size_t off = 0, coff = 0;
	for (size_t i = 0; i < n && off < sizeof from; i++)
		off += (size_t)snprintf(from + off, sizeof from - off, "%s'%s'",
					i == 0 ? "" : i + 1 == n ? " and " : ", ", files[i]);
	for (size_t i = 0; i < kc_creds_count(creds) && coff < sizeof certs; i++) {
		char subject[512], sha[KC_SHA256_HEX];
		struct kc_err e;
		if (kc_creds_cert_info(creds, i, subject, sizeof subject, sha, &e) < 0)
			break;
		coff += (size_t)snprintf(certs + coff, sizeof certs - coff,
					 "%scertificate subject '%s', SHA-256 %s", i ? "; " : "",
					 subject, sha);
	}
	if (certs[0])
		snprintf(msg, sizeof msg, "reloaded credentials from %s: new handshakes use them "
			 "(%s)", from, certs);
	else
		snprintf(msg, sizeof msg, "reloaded credentials from %s: new handshakes use them",
			 from);
	cli_serve_on_notice(ctx, msg);
}

struct kc_ctl_server *cli_ctl_open(const char *whose)
{
	struct kc_ctl_server *ctl = NULL;
	struct kc_err err = { 0 };
	if (kc_ctl_server_open(&ctl, &err) == 0)
		cli_info("control socket %s", kc_ctl_server_path(ctl));
	else
		cli_notice("no control socket (ktlsctl stats will not see %s): %s", whose, err.msg);
	return ctl;
}

int cli_serve_loop(const struct kc_serve_opts *so)
{
	struct kc_err err = { 0 };
	struct kc_serve_result res;
	if (kc_serve_run(so, &res, &err) < 0)
		return cli_fail(&err);
	if (res.cut_off) {
		cli_error("%lu of %lu sessions were still open at the drain timeout and were cut "
			  "off (raise --drain-timeout to wait longer)", res.cut_off, res.at_stop);
		return KC_E_TIMEOUT;
	}
	if (res.unclean) {
		cli_error("%lu of %lu sessions open at the stop did not end with close_notify "
			  "both ways (see their log lines)", res.unclean, res.at_stop);
		return KC_E_TRUNCATED;
	}
	return cli_interrupted_status();
}

int cli_serve(const struct cli_opts *o, int lfd, struct kc_creds *creds)
{
	struct kc_err err = { 0 };
	struct addrinfo *backend = NULL;

	if (!o->exec_command)
		cli_raise_fd_limit();

	/* forward's backend, or the server each of --accept's clients gets */
	const struct kc_hostport *to = o->accept ? &o->hp : o->forward ? &o->forward_hp : NULL;
	if (to && kc_tcp_resolve(to, false, &backend, &err) < 0) {
		close(lfd);
		return cli_fail(&err);
	}
	struct kc_serve_opts so = {
		.mode = o->accept ? KC_SERVE_ORIGINATE : o->forward ? KC_SERVE_FORWARD
			: o->exec_command ? KC_SERVE_EXEC : KC_SERVE_ECHO,
		.listen_fd = lfd,
		.tls = o->tls,
		.creds = creds,
		.ktls = o->ktls,
		.soft = { .no_rekey = o->soft_no_rekey },
		.key_update_after = o->key_update_after,
		.copy = o->no_zerocopy,
		.backend = backend,
		.backend_name = o->accept ? o->target_arg : o->forward_arg,
		.connect_timeout_ms = o->connect_timeout_ms,
		.command = o->exec_command,
		.max_conns = o->max_conns,
		.drain_timeout_ms = o->drain_timeout_ms,
		.stop_fd = cli_stop_fd,
		/* a client's credentials are not reloaded */
		.reload_fd = o->accept ? -1 : cli_reload_fd,
		.on_handshake = cli_serve_on_handshake,
		.on_end = cli_serve_on_end,
		.on_notice = cli_serve_on_notice,
		.on_reload = cli_serve_on_reload,
		.ctx = (void *)o,
	};
	int status;
	if (o->workers > 1) {
		status = cli_serve_workers(o, &so);
	} else {
		so.ctl = cli_ctl_open("these sessions");
		status = cli_serve_loop(&so);
		kc_ctl_server_close(so.ctl);   /* its socket file goes too */
	}
	if (backend)
		freeaddrinfo(backend);
	return status;
}
