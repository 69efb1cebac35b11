/* cli/msg.c: what ktlsctl says on stderr. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli/msg.h"

static enum cli_verbosity verbosity = CLI_NORMAL;
static bool interactive;
static void (*hook_before)(void), (*hook_after)(void);

void cli_msg_set_interactive(bool on)
{
	interactive = on;
}

void cli_msg_set_hooks(void (*before)(void), void (*after)(void))
{
	hook_before = before;
	hook_after = after;
}

void cli_msg_set_verbosity(enum cli_verbosity v)
{
	verbosity = v;
}

/* text and its end (newline, after a colour reset when one was set) in
 * one write(), whole, so that other processes' lines (listen --workers)
 * never come between their parts; stdio's own buffer goes first. */
static void write_line(const char *text, const char *end)
{
	struct iovec iov[] = { { (void *)text, strlen(text) }, { (void *)end, strlen(end) } };
	fflush(stderr);
	(void)!writev(STDERR_FILENO, iov, 2);
}

static void say(const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof line, "%sktlsctl: ", prefix);
	if (n >= 0 && (size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	if (hook_before)
		hook_before();
	write_line(line, prefix[0] ? "\033[0m\n" : "\n");
	if (hook_after)
		hook_after();
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

void cli_log_line(const char *line)
{
	if (verbosity < CLI_NORMAL)
		return;
	write_line(line, "\n");
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

void cli_event(const char *fmt, ...)
{
	if (!interactive && verbosity < CLI_VERBOSE)
		return;
	va_list ap;
	va_start(ap, fmt);
	/* Bold on a terminal, so events never pass for peer data. */
	say(interactive && isatty(STDERR_FILENO) ? "\033[1m" : "", fmt, ap);
	va_end(ap);
}

int cli_fail(const struct kc_err *err)
{
	cli_error("%s", err->msg[0] ? err->msg : "failed");
	return err->status ? (int)err->status : KC_E_INTERNAL;
}
