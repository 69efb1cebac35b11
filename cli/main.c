/* cli/main.c: ktlsctl's entry point: parse, dispatch, exit. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>

#include "cli/complete.h"
#include "cli/msg.h"
#include "cli/opts.h"
#include "cli/session.h"
#include "cli/signals.h"

int main(int argc, char **argv)
{
	struct cli_opts o;
	struct kc_err err;

	/* Before parsing: the words after it are a command line to complete,
	 * not options (cli/complete.h). */
	if (argc > 1 && strcmp(argv[1], "--complete") == 0) {
		cli_complete(argc - 2, argv + 2, stdout);
		return 0;
	}
	if (cli_parse(argc, argv, &o, &err) < 0)
		return cli_fail(&err);
	if (o.help) {
		cli_usage(o.cmd, stdout);
		return 0;
	}
	if (o.version) {
		printf("ktlsctl %s (GnuTLS %s)\n", PACKAGE_VERSION, gnutls_check_version(NULL));
		return 0;
	}
	cli_msg_set_verbosity(o.verbosity);
	cli_install_signals();
	int rc = gnutls_global_init();
	if (rc < 0) {
		cli_error("cannot initialise GnuTLS: %s", gnutls_strerror(rc));
		return KC_E_INTERNAL;
	}
	int status = cli_subcommand_of(o.cmd)->run(&o);
	gnutls_global_deinit();
	return status;
}
