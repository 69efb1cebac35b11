/* cli/commands.c: the session commands: their table, /help and the
 * parser. */
#include "config.h"

#include <string.h>

#include "cli/commands.h"

const struct cli_session_command cli_session_commands[] = {
	{ "keyupdate", CLI_C_KEYUPDATE, "[request]",
	  "update our TLS 1.3 send keys (request: ask the peer too)" },
	{ "stats", CLI_C_STATS, NULL, "records, bytes and key usage against the cipher's limit" },
	{ "tickets", CLI_C_TICKETS, NULL, "the session tickets received from the server" },
	{ "save", CLI_C_SAVE, "FILE", "save the session for resumption (--session-in FILE)" },
	{ "close", CLI_C_CLOSE, NULL, "end the input (close_notify as --eof says), keep reading" },
	{ "quit", CLI_C_QUIT, NULL, "send close_notify and exit" },
	{ "help", CLI_C_HELP, NULL, "this list" },
	{ 0 },
};

void cli_command_help(FILE *out)
{
	fputs("Session commands (a line starting with // sends a literal /):\n", out);
	for (const struct cli_session_command *c = cli_session_commands; c->name; c++) {
		char usage[64];
		snprintf(usage, sizeof usage, "/%s%s%s", c->name, c->arg ? " " : "",
			 c->arg ? c->arg : "");
		fprintf(out, "  %-20s  %s\n", usage, c->help);
	}
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Whether arg (arg_len bytes) may follow c: an error in out->error if not. */
static bool arg_fits(const struct cli_session_command *c, const char *arg, size_t arg_len,
		     struct cli_parsed *out)
{
	bool optional = c->arg && c->arg[0] == '[';
	if (!c->arg && arg_len) {
		snprintf(out->error, sizeof out->error, "this command takes no argument");
		return false;
	}
	if ((optional && arg_len && (arg_len != strlen(c->arg) - 2 ||
				     memcmp(arg, c->arg + 1, arg_len) != 0)) ||
	    (c->arg && !optional && !arg_len)) {
		snprintf(out->error, sizeof out->error, "usage: /%s %s", c->name, c->arg);
		return false;
	}
	out->arg_flag = optional && arg_len;
	return true;
}

void cli_command_parse(const char *line, size_t len, struct cli_parsed *out)
{
	memset(out, 0, sizeof *out);
	if (len == 0 || line[0] != '/') {
		out->text = line;
		out->text_len = len;
		return;
	}
	if (len >= 2 && line[1] == '/') {
		out->text = line + 1;
		out->text_len = len - 1;
		return;
	}
	/* Trailing blanks (and a stray CR) are not part of the command. */
	while (len > 1 && (blank(line[len - 1]) || line[len - 1] == '\r'))
		len--;
	size_t n = 1;
	while (n < len && !blank(line[n]))
		n++;
	const char *name = line + 1;
	size_t name_len = n - 1;
	while (n < len && blank(line[n]))
		n++;
	const char *arg = line + n;
	size_t arg_len = len - n;

	out->cmd = CLI_C_INVALID;
	for (const struct cli_session_command *c = cli_session_commands; c->name; c++) {
		if (strlen(c->name) != name_len || memcmp(c->name, name, name_len))
			continue;
		if (arg_fits(c, arg, arg_len, out)) {
			out->cmd = c->cmd;
			out->arg = arg;
			out->arg_len = arg_len;
		}
		return;
	}
	snprintf(out->error, sizeof out->error,
		 "unknown command (try /help; // sends a line starting with /)");
}
