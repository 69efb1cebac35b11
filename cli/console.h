/* cli/console.h: the session's input side: plain pipe, pipe with
 * --commands, or the interactive terminal (GNU readline in callback mode
 * inside the pump's event loop). */
#ifndef CLI_CONSOLE_H
#define CLI_CONSOLE_H

#include "cli/opts.h"
#include "core/diag/session_view.h"
#include "core/pump.h"

struct cli_console;

/* Fill po's hooks for the mode the options and stdin call for (info is
 * the session /stats and /save are about; it must outlive the console).
 * Returns NULL when the plain pipe needs no console. */
struct cli_console *cli_console_new(const struct cli_opts *o, const struct kc_session_info *info,
				    struct kc_pump_opts *po);
void cli_console_free(struct cli_console *c);

/* Whether events are shown (interactive sessions show them always). */
bool cli_console_interactive(const struct cli_console *c);

#endif
