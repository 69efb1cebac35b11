/* cli/msg.c: what ktlsctl says on stderr. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "cli/msg.h"

static enum cli_verbosity verbosity = CLI_NORMAL;

void cli_msg_set_verbosity(enum cli_verbosity v)
{
	verbosity = v;
}

static void say(const char *prefix, const char *fmt, va_list ap)
{
	/* One write per line so lines from concurrent processes stay whole. */
	char line[1024];
	int n = snprintf(line, sizeof line, "ktlsctl: %s", prefix);
	if (n >= 0 && (size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say("", fmt, ap);
	va_end(ap);
}

void cli_notice(const char *fmt, ...)
{
	if (verbosity < CLI_NORMAL)
		return;
	va_list ap;
	va_start(ap, fmt);
	say("", fmt, ap);
	va_end(ap);
}

void cli_info(const char *fmt, ...)
{
	if (verbosity < CLI_VERBOSE)
		return;
	va_list ap;
	va_start(ap, fmt);
	say("", fmt, ap);
	va_end(ap);
}

int cli_fail(const struct kc_err *err)
{
	cli_error("%s", err->msg[0] ? err->msg : "failed");
	return err->status ? (int)err->status : KC_E_INTERNAL;
}
