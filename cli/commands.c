/* cli/commands.c: parsing of session commands. */
#include "config.h"

#include <string.h>

#include "cli/commands.h"

static const struct {
	const char *name;
	enum cli_command cmd;
	int args;             /* 0 none, 1 optional "request", 2 one required */
} table[] = {
	{ "help", CLI_C_HELP, 0 },
	{ "keyupdate", CLI_C_KEYUPDATE, 1 },
	{ "stats", CLI_C_STATS, 0 },
	{ "tickets", CLI_C_TICKETS, 0 },
	{ "save", CLI_C_SAVE, 2 },
	{ "close", CLI_C_CLOSE, 0 },
	{ "quit", CLI_C_QUIT, 0 },
};

const char *const cli_command_names[] = {
	"/help", "/keyupdate", "/stats", "/tickets", "/save", "/close", "/quit", NULL,
};

const char cli_command_help[] =
	"Session commands (a line starting with // sends a literal /):\n"
	"  /keyupdate [request]  update our TLS 1.3 send keys (request: ask the peer too)\n"
	"  /stats                records, bytes and key usage against the cipher's limit\n"
	"  /tickets              the session tickets received from the server\n"
	"  /save FILE            save the session for resumption (--session-in FILE)\n"
	"  /close                end the input (close_notify as --eof says), keep reading\n"
	"  /quit                 send close_notify and exit\n"
	"  /help                 this list\n";

static bool blank(char c)
{
	return c == ' ' || c == '\t';
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
	out->error = "unknown command (try /help; // sends a line starting with /)";
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strlen(table[i].name) != name_len || memcmp(table[i].name, name, name_len))
			continue;
		if (table[i].args == 0 && arg_len) {
			out->error = "this command takes no argument";
		} else if (table[i].args == 1 && arg_len &&
			   !(arg_len == 7 && memcmp(arg, "request", 7) == 0)) {
			out->error = "usage: /keyupdate [request]";
		} else if (table[i].args == 2 && !arg_len) {
			out->error = "usage: /save FILE";
		} else {
			out->cmd = table[i].cmd;
			out->arg_flag = table[i].args == 1 && arg_len;
			out->arg = arg;
			out->arg_len = arg_len;
			out->error = NULL;
		}
		return;
	}
}
