/* cli/hsreport.c: the handshake report (see hsreport.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/hsreport.h"
#include "cli/msg.h"
#include "cli/out.h"
#include "core/atomicfile.h"
#include "core/diag/hsinfo_view.h"
#include "core/hsinfo.h"

/* -v: the report's text, a line each, under a heading. */
static int print_text(const struct kc_view *root, struct kc_err *err)
{
	char *text = cli_render_view(root, CLI_FULL, err);
	if (!text)
		return -1;
	cli_info("handshake report:");
	for (char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		cli_info("  %s", line);
		if (!nl)
			break;
	}
	free(text);
	return 0;
}

/* --show-certs and --save-certs: the chain as the peer sent it.  A peer
 * without one (a client not asked for it) is said, not a failure. */
static int write_chain(const struct cli_opts *o, gnutls_session_t s, struct kc_err *err)
{
	size_t len = 0;
	char *pem = kc_hsinfo_chain_pem(s, &len, err);
	if (!pem) {
		if (err->status != KC_E_USAGE)
			return -1;
		cli_notice("the %s sent no certificate: nothing for --show-certs or --save-certs",
			   o->tls.role == KC_CLIENT ? "server" : "client");
		return 0;
	}
	if (o->show_certs) {
		fputs(pem, stderr);
		fflush(stderr);
	}
	int rc = o->save_certs ? kc_atomic_write(o->save_certs, pem, len, 0644,
						 "write the certificates to", err) : 0;
	free(pem);
	return rc;
}

static int write_json(const char *path, const struct kc_view *root, struct kc_err *err)
{
	char *json = cli_render_view(root, CLI_JSON, err);
	if (!json)
		return -1;
	int rc = kc_atomic_write(path, json, strlen(json), 0644, "write the report to", err);
	free(json);
	return rc;
}

int cli_hsreport(const struct cli_opts *o, gnutls_session_t s, const char *peer)
{
	struct kc_err err = { 0 };
	bool verbose = o->verbosity == CLI_VERBOSE;
	int rc = -1;

	bool ocsp_line = o->tls.ocsp && o->tls.role == KC_CLIENT && !verbose;

	if (!verbose && !ocsp_line && !o->show_certs && !o->save_certs && !o->info_json)
		return 0;
	struct kc_hsinfo *h = malloc(sizeof *h);
	struct kc_view *root = kc_view_new();
	if (!h || !root) {
		kc_err_set(&err, KC_E_INTERNAL, "out of memory building the handshake report");
		goto out;
	}
	if (kc_hsinfo_collect(s, &o->tls, h, &err) < 0 ||
	    kc_hsinfo_view(root, h, peer, &err) < 0)
		goto out;
	/* --ocsp reports what came even without -v (which has it already). */
	if (ocsp_line)
		cli_notice("server's OCSP status: %s",
			   kc_view_get(root, "ocsp")->text);
	if ((verbose && print_text(root, &err) < 0) ||
	    ((o->show_certs || o->save_certs) && write_chain(o, s, &err) < 0) ||
	    (o->info_json && write_json(o->info_json, root, &err) < 0))
		goto out;
	rc = 0;
out:
	kc_view_free(root);
	free(h);
	return rc < 0 ? cli_fail(&err) : 0;
}
