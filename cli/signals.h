/* cli/signals.h: how a stop (SIGINT, SIGTERM) reaches every subcommand. */
#ifndef CLI_SIGNALS_H
#define CLI_SIGNALS_H

#include <signal.h>

/* Set by SIGINT/SIGTERM to the signal number; cli_stop_fd becomes
 * readable at the same time, for waits that must not miss it. */
extern volatile sig_atomic_t cli_stop_signal;
extern int cli_stop_fd;

/* The handlers, without SA_RESTART (a blocking connect, accept or
 * handshake returns EINTR so it can stop), and SIGPIPE ignored. */
void cli_install_signals(void);

/* SIGHUP, for a listen that serves many (cli/serve.h) and stats --serve
 * over TLS (cli/stats_serve.c), and nothing else:
 * each one makes cli_reload_fd (non-blocking) readable, and the server
 * loads its credentials again.  Everywhere else SIGHUP keeps its default
 * action (the process ends, as when its terminal hangs up).  Installed
 * before the server says it listens, so that a SIGHUP sent once it has
 * cannot end it.  -1 with errno when the pipe or handler fails. */
extern int cli_reload_fd;
int cli_install_reload_signal(void);

/* In a worker process (cli/workers.h), just forked: a stop pipe of its
 * own, so that only a signal to this process stops it (its main process
 * passes the stop on), and SIGHUP ignored (reloads come from the main
 * process).  -1 with errno when the pipe fails. */
int cli_signals_for_worker(void);

/* The exit status of a run the stop signal ended: 128 + its number. */
int cli_interrupted_status(void);

#endif
