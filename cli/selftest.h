/* cli/selftest.h: `ktlsctl selftest`, kTLS end to end on loopback. */
#ifndef CLI_SELFTEST_H
#define CLI_SELFTEST_H

#include "cli/opts.h"

int cli_selftest(const struct cli_opts *o);

#endif
