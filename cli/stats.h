/* cli/stats.h: `ktlsctl stats`, `keyupdate` and `tickets`: kTLS on this
 * machine and the running ktlsctl sessions, through their control
 * sockets. */
#ifndef CLI_STATS_H
#define CLI_STATS_H

#include "cli/opts.h"
#include "core/diag/view.h"

int cli_stats(const struct cli_opts *o);
/* The stats report tree (what --json prints), NULL when out of memory
 * (said); *rc is -1 when a part of it could not be had (said on stderr,
 * the rest is there), else 0.  The kernel is probed on the first call
 * only: its capabilities do not change, and each probe moves its
 * counters. */
struct kc_view *cli_stats_report(const struct cli_opts *o, int *rc);
/* stats --serve: the metrics over HTTP until a stop signal (cli/stats_serve.c). */
int cli_stats_serve(const struct cli_opts *o);
int cli_keyupdate(const struct cli_opts *o);
int cli_tickets(const struct cli_opts *o);

#endif
