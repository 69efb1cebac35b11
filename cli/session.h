/* cli/session.h: the connect and listen subcommands. */
#ifndef CLI_SESSION_H
#define CLI_SESSION_H

#include <signal.h>

#include "cli/opts.h"

/* Set by SIGINT/SIGTERM to the signal number; cli_stop_fd becomes
 * readable at the same time, for waits that must not miss it. */
extern volatile sig_atomic_t cli_stop_signal;
extern int cli_stop_fd;
void cli_install_signals(void);

/* Each returns the process exit status (and has printed why). */
int cli_connect(const struct cli_opts *o);
int cli_listen(const struct cli_opts *o);

#endif
