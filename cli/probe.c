/* cli/probe.c: the probe subcommand: what the checks send, the run, and
 * the report (see core/peercheck.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "cli/probe.h"
#include "cli/session.h"
#include "cli/signals.h"
#include "core/diag/peercheck_view.h"
#include "core/peercheck.h"

/* A --send file larger than this is not a request. */
#define SEND_MAX (1u << 20)

/* What makes the server talk (malloc'd into *buf): --send FILE's bytes,
 * with --http a GET of /, else a line of text.  0, or -1 with *err. */
static int make_request(const struct cli_opts *o, char **buf, size_t *len, struct kc_err *err)
{
	if (o->probe_send) {
		FILE *f = fopen(o->probe_send, "rb");
		if (!f)
			return kc_err_errno(err, KC_E_IO, errno, "cannot open --send file %s",
					    o->probe_send);
		*buf = malloc(SEND_MAX + 1);
		*len = *buf ? fread(*buf, 1, SEND_MAX + 1, f) : 0;
		bool bad = ferror(f);
		fclose(f);
		if (!*buf)
			return kc_err_set(err, KC_E_INTERNAL, "out of memory");
		if (bad)
			return kc_err_set(err, KC_E_IO, "cannot read --send file %s", o->probe_send);
		if (*len == 0 || *len > SEND_MAX)
			return kc_err_set(err, KC_E_USAGE, "--send file %s must hold 1 byte to 1 MiB",
					  o->probe_send);
		return 0;
	}
	int n = o->probe_http
		? asprintf(buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			   o->sni ? o->sni : o->hp.host)
		: asprintf(buf, "ktlsctl probe\n");
	if (n < 0) {
		*buf = NULL;
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	*len = (size_t)n;
	return 0;
}

static int list_checks(void)
{
	for (size_t i = 0; i < kc_pc_count(); i++)
		printf("%-22s %s\n", kc_pc_name(i), kc_pc_summary(i));
	return 0;
}

int cli_probe(const struct cli_opts *o)
{
	struct kc_err err = { 0 };
	struct kc_creds *creds = NULL;
	struct kc_pc_report r;
	char *request = NULL;
	size_t request_len = 0;
	int status;

	if (o->probe_list)
		return list_checks();
	if (make_request(o, &request, &request_len, &err) < 0 ||
	    kc_creds_new(&o->tls, &creds, &err) < 0) {
		free(request);
		return cli_fail(&err);
	}
	if (o->tls.insecure)
		cli_notice("warning: --insecure: the server's certificate is NOT verified");
	/* Every check's connection speaks it: -v would repeat it each time. */
	struct kc_starttls_opts so;
	char me[256];
	if (o->starttls)
		cli_starttls_opts(o, false, &so, me);
	struct kc_pc_opts po = {
		.hp = &o->hp,
		.connect_timeout_ms = o->connect_timeout_ms,
		.tls = &o->tls,
		.creds = creds,
		.ktls = o->ktls,
		.soft_no_rekey = o->soft_no_rekey,
		.request = request,
		.request_len = request_len,
		.talk = o->probe_send ? KC_PC_TALK_FILE
		      : o->probe_http ? KC_PC_TALK_HTTP : KC_PC_TALK_LINE,
		.volume = o->probe_volume,
		.timeout_ms = o->probe_timeout_ms,
		.only = o->probe_only,
		.starttls = o->starttls ? &so : NULL,
		.stop = &cli_stop_signal,
		.stop_fd = cli_stop_fd,
	};
	if (kc_peercheck_run(&po, &r, &err) < 0) {
		status = cli_stop_signal ? cli_interrupted_status() : cli_fail(&err);
		goto out;
	}
	if (cli_stop_signal) {
		status = cli_interrupted_status();
		goto out;
	}
	cli_info("probed %s: %s, %s channel", r.peer, r.session, r.channel);
	struct kc_view *v = kc_peercheck_view(&r);
	if (!v || cli_print_view(stdout, v, o->json ? CLI_JSON : CLI_BRIEF) < 0)
		status = KC_E_INTERNAL;
	else
		status = r.failed ? KC_E_CHECK : 0;
	kc_view_free(v);
out:
	kc_creds_free(creds);
	free(request);
	return status;
}
