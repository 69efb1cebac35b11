/* cli/serve.h: listen --forward, --exec and --echo --keep-open: every
 * client at once (core/serve.h), one log line per session. */
#ifndef CLI_SERVE_H
#define CLI_SERVE_H

#include <stdbool.h>

#include "cli/opts.h"
#include "core/handshake.h"

/* Whether o asks for serving many rather than one session at a time. */
bool cli_serves_many(const struct cli_opts *o);

/* Serve on the listening socket lfd (taken over) until a stop; returns
 * the exit status. */
int cli_serve(const struct cli_opts *o, int lfd, struct kc_creds *creds);

#endif
