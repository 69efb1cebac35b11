/* cli/commands.h: the session commands (/keyupdate, /stats, ...), parsed
 * from a line typed at the terminal or read with --commands. */
#ifndef CLI_COMMANDS_H
#define CLI_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cli_command {
	CLI_C_NONE,        /* not a command: send the line (see text/len) */
	CLI_C_HELP,
	CLI_C_KEYUPDATE,   /* arg_flag: request the peer to update too */
	CLI_C_STATS,
	CLI_C_TICKETS,
	CLI_C_SAVE,        /* arg: file name */
	CLI_C_CLOSE,
	CLI_C_QUIT,
	CLI_C_INVALID,     /* a command line we cannot run; error says why */
};

/* One session command: the table that /help, completion and the parser
 * are made from. */
struct cli_session_command {
	const char *name;          /* typed after the '/' */
	enum cli_command cmd;
	/* What may follow the name, as /help shows it: NULL nothing,
	 * "[word]" that one word or nothing (arg_flag says which), anything
	 * else ("FILE") a required argument, the rest of the line. */
	const char *arg;
	const char *help;
};

/* In /help's order, ending with an entry whose name is NULL. */
extern const struct cli_session_command cli_session_commands[];

struct cli_parsed {
	enum cli_command cmd;
	bool arg_flag;
	const char *arg;       /* points into the line */
	size_t arg_len;
	const char *text;      /* CLI_C_NONE: bytes to send ("//x" gives "/x") */
	size_t text_len;
	char error[80];        /* CLI_C_INVALID: why; else empty */
};

/* Parse one line without its line ending.  Lines that do not start with
 * '/' are data; "//..." is data with one leading slash removed. */
void cli_command_parse(const char *line, size_t len, struct cli_parsed *out);

/* The /help text. */
void cli_command_help(FILE *out);

#endif
