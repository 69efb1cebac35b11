/* cli/probe.h: the probe subcommand (core/peercheck.h does the checks). */
#ifndef CLI_PROBE_H
#define CLI_PROBE_H

#include "cli/opts.h"

/* The exit status: 0 when every check that applies passed, 14 when one
 * failed, the connection's status when the server cannot be probed. */
int cli_probe(const struct cli_opts *o);

#endif
