/* cli/session.h: the connect and listen subcommands. */
#ifndef CLI_SESSION_H
#define CLI_SESSION_H

#include "cli/opts.h"

/* Each returns the process exit status (and has printed why). */
int cli_connect(const struct cli_opts *o);
int cli_listen(const struct cli_opts *o);

#endif
