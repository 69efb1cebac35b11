/* cli/serve.c: serving many sessions; what a user sees of it. */
#include "config.h"

#include <netdb.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/serve.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "core/serve.h"
#include "core/spawn.h"

bool cli_serves_many(const struct cli_opts *o)
{
	return o->forward || o->exec_command || (o->echo && o->keep_open);
}

/* A field of the log line, when there is something to say. */
static int field(char *buf, size_t len, int off, const char *name, const char *value)
{
	if (!value || !value[0] || off < 0 || (size_t)off >= len)
		return off;
	return off + snprintf(buf + off, len - (size_t)off, " %s=%s", name, value);
}

/* One line per session, key=value, the reason last and quoted. */
static void on_end(void *ctx, const struct kc_session_report *r)
{
	char line[1024];
	int off = snprintf(line, sizeof line, "session %lu", r->id);
	off = field(line, sizeof line, off, "peer", r->peer);
	off = field(line, sizeof line, off, "backend", r->backend);
	char pid[24] = "";
	if (r->command_pid)
		snprintf(pid, sizeof pid, "%ld", r->command_pid);
	off = field(line, sizeof line, off, "pid", pid);
	off = field(line, sizeof line, off, "version", r->version);
	off = field(line, sizeof line, off, "cipher", r->cipher);
	off = field(line, sizeof line, off, "channel", r->channel);
	if (off >= 0 && (size_t)off < sizeof line)
		off += snprintf(line + off, sizeof line - (size_t)off,
				" rx=%llu tx=%llu duration=%lld.%03llds",
				(unsigned long long)r->rx, (unsigned long long)r->tx,
				r->duration_ms / 1000, r->duration_ms % 1000);
	/* The command's exit is part of how the session went. */
	char status[32] = "";
	if (r->command_ended)
		kc_child_status_str(r->command_status, status, sizeof status);
	if (status[0] && off >= 0 && (size_t)off < sizeof line)
		off += snprintf(line + off, sizeof line - (size_t)off, " %s", status);
	if (off >= 0 && (size_t)off < sizeof line)
		off += snprintf(line + off, sizeof line - (size_t)off, " end=%s",
				kc_session_end_name(r->end));
	if (r->end != KC_END_CLOSED && r->err.msg[0] && off >= 0 && (size_t)off < sizeof line)
		snprintf(line + off, sizeof line - (size_t)off, " reason=\"%s\"", r->err.msg);
	cli_notice("%s", line);
}

static void on_notice(void *ctx, const char *msg)
{
	cli_notice("%s", msg);
}

/* One line either way, after SIGHUP. */
static void on_reload(void *ctx, const struct kc_creds *creds, const struct kc_err *err)
{
	const struct cli_opts *o = ctx;
	if (!creds) {
		cli_error("cannot reload credentials: %s; new handshakes still use the old ones",
			  err->msg);
		return;
	}
	char from[3 * 1024];
	if (o->tls.cafile)
		snprintf(from, sizeof from, "'%s', '%s' and '%s'", o->tls.certfile,
			 o->tls.keyfile, o->tls.cafile);
	else
		snprintf(from, sizeof from, "'%s' and '%s'", o->tls.certfile, o->tls.keyfile);
	char subject[512], sha[KC_SHA256_HEX];
	struct kc_err e;
	if (kc_creds_cert_info(creds, subject, sizeof subject, sha, &e) < 0)
		cli_notice("reloaded credentials from %s: new handshakes use them", from);
	else
		cli_notice("reloaded credentials from %s: new handshakes use them "
			   "(certificate subject '%s', SHA-256 %s)", from, subject, sha);
}

int cli_serve(const struct cli_opts *o, int lfd, struct kc_creds *creds)
{
	struct kc_err err = { 0 };
	struct addrinfo *backend = NULL;

	if (o->forward && kc_tcp_resolve(&o->forward_hp, false, &backend, &err) < 0) {
		close(lfd);
		return cli_fail(&err);
	}
	struct kc_serve_opts so = {
		.mode = o->forward ? KC_SERVE_FORWARD : o->exec_command ? KC_SERVE_EXEC
								       : KC_SERVE_ECHO,
		.listen_fd = lfd,
		.tls = o->tls,
		.creds = creds,
		.ktls = o->ktls,
		.soft = { .no_rekey = o->soft_no_rekey },
		.key_update_after = o->key_update_after,
		.backend = backend,
		.backend_name = o->forward_arg,
		.connect_timeout_ms = o->connect_timeout_ms,
		.command = o->exec_command,
		.max_conns = o->max_conns,
		.drain_timeout_ms = o->drain_timeout_ms,
		.stop_fd = cli_stop_fd,
		.reload_fd = cli_reload_fd,
		.on_end = on_end,
		.on_notice = on_notice,
		.on_reload = on_reload,
		.ctx = (void *)o,
	};
	struct kc_serve_result res;
	int rc = kc_serve_run(&so, &res, &err);
	if (backend)
		freeaddrinfo(backend);
	if (rc < 0)
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
