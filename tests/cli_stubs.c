/* tests/cli_stubs.c: the subcommand handlers that the table in
 * cli/opts.c names, for the tests that parse command lines but never run
 * a subcommand (tests/unit/test_opts.c, tests/fuzz/fuzz_opts.c): they
 * link the parser without the rest of the program.  Each aborts. */
#include "config.h"

#include <stdlib.h>

#include "cli/probe.h"
#include "cli/selftest.h"
#include "cli/session.h"
#include "cli/stats.h"

int cli_connect(const struct cli_opts *o) { abort(); }
int cli_listen(const struct cli_opts *o) { abort(); }
int cli_selftest(const struct cli_opts *o) { abort(); }
int cli_stats(const struct cli_opts *o) { abort(); }
int cli_keyupdate(const struct cli_opts *o) { abort(); }
int cli_tickets(const struct cli_opts *o) { abort(); }
int cli_probe(const struct cli_opts *o) { abort(); }
