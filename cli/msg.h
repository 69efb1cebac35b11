/* cli/msg.h: what ktlsctl says on stderr, at which verbosity. */
#ifndef CLI_MSG_H
#define CLI_MSG_H

#include <stdbool.h>

#include "core/err.h"

enum cli_verbosity { CLI_QUIET = -1, CLI_NORMAL = 0, CLI_VERBOSE = 1 };

void cli_msg_set_verbosity(enum cli_verbosity v);

/* "ktlsctl: MESSAGE" on stderr: errors always, notices unless quiet,
 * info only when verbose. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A line for programs (--log-format json), as it is: no prefix; not
 * when quiet. */
void cli_log_line(const char *line);

/* Session events (key updates, tickets, limits): shown as they happen in
 * an interactive session, visually set apart; in pipe mode only with -v. */
void cli_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_msg_set_interactive(bool on);

/* Called around every message, so the interactive console can take its
 * input line off the screen and put it back. */
void cli_msg_set_hooks(void (*before)(void), void (*after)(void));

/* Print err's message and return its status, for `return cli_fail(&e)`. */
int cli_fail(const struct kc_err *err);

#endif
