/* tests/fuzz/fuzz_commands.c: libFuzzer target for cli/commands.c
 * (cli_command_parse: one session command line, without its line ending).
 *
 * The whole input is the line, in an exactly sized buffer with no NUL
 * after it (the parser takes a length, as the session reads raw bytes).
 * Checks: every pointer in the result lies inside the line, data lines
 * come back as themselves ("//x" as "/x"), commands have an error only
 * when invalid, and a command's argument is what its entry in
 * cli_session_commands allows. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_commands: %s\n", what);
	abort();
}

static bool inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && n <= len && (size_t)(p - line) <= len - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	if (size)
		memcpy(line, data, size);

	struct cli_parsed out;
	memset(&out, 0xa5, sizeof out);
	cli_command_parse(line, size, &out);
	if (!memchr(out.error, '\0', sizeof out.error))
		die("an error message without its NUL");

	const struct cli_session_command *c = cli_session_commands;
	while (c->name && c->cmd != out.cmd)
		c++;
	switch (out.cmd) {
	case CLI_C_NONE:
		if (!inside(out.text, out.text_len, line, size))
			die("data text outside the line");
		if (size >= 2 && line[0] == '/' && line[1] == '/') {
			if (out.text != line + 1 || out.text_len != size - 1)
				die("\"//\" line not returned minus one slash");
		} else if (size && line[0] == '/') {
			die("a '/' line taken as data");
		} else if (out.text != line || out.text_len != size) {
			die("a data line not returned whole");
		}
		break;
	case CLI_C_INVALID:
		if (!out.error[0])
			die("an invalid command without an error message");
		break;
	default:
		/* A command of the table, with what its arg allows. */
		if (!c->name)
			die("an unknown command value");
		if (out.error[0])
			die("a valid command with an error");
		if (!size || line[0] != '/')
			die("a command from a line that does not start with '/'");
		if (out.arg_len && !inside(out.arg, out.arg_len, line, size))
			die("argument outside the line");
		if (!c->arg && out.arg_len)
			die("an argument to a command that takes none");
		if (c->arg && c->arg[0] != '[' && out.arg_len == 0)
			die("a command without its required argument");
		if (out.arg_flag != (c->arg && c->arg[0] == '[' && out.arg_len))
			die("arg_flag but for a given optional word");
		break;
	}
	free(line);
	return 0;
}
