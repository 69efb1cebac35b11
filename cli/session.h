/* cli/session.h: the connect and listen subcommands. */
#ifndef CLI_SESSION_H
#define CLI_SESSION_H

#include "cli/opts.h"

/* Each returns the process exit status (and has printed why). */
int cli_connect(const struct cli_opts *o);
int cli_listen(const struct cli_opts *o);

/* The --starttls preamble's options for o (o->starttls set), bounded by
 * --handshake-timeout; with transcript, -v shows its lines.  me holds our
 * name for EHLO and LHLO, and must live as long as *so. */
void cli_starttls_opts(const struct cli_opts *o, bool transcript, struct kc_starttls_opts *so,
		       char me[256]);

#endif
