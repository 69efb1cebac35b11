/* cli/stats.h: `ktlsctl stats`, `keyupdate` and `tickets`: kTLS on this
 * machine and the running ktlsctl sessions, through their control
 * sockets. */
#ifndef CLI_STATS_H
#define CLI_STATS_H

#include "cli/opts.h"

int cli_stats(const struct cli_opts *o);
int cli_keyupdate(const struct cli_opts *o);
int cli_tickets(const struct cli_opts *o);

#endif
