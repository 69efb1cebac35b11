/* tests/unit/test_commands.c: session command parsing. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

static struct cli_parsed parse(const char *line)
{
	struct cli_parsed pc;
	cli_command_parse(line, strlen(line), &pc);
	return pc;
}

Test(commands, data_lines)
{
	struct cli_parsed pc = parse("hello /world");
	cr_assert_eq(pc.cmd, CLI_C_NONE);
	cr_assert_eq(pc.text_len, strlen("hello /world"));

	pc = parse("");
	cr_assert_eq(pc.cmd, CLI_C_NONE);
	cr_assert_eq(pc.text_len, 0);

	pc = parse("//keyupdate");
	cr_assert_eq(pc.cmd, CLI_C_NONE);
	cr_assert_eq(pc.text_len, strlen("/keyupdate"));
	cr_assert_eq(memcmp(pc.text, "/keyupdate", pc.text_len), 0);
}

Test(commands, each_command)
{
	cr_assert_eq(parse("/help").cmd, CLI_C_HELP);
	cr_assert_eq(parse("/stats").cmd, CLI_C_STATS);
	cr_assert_eq(parse("/tickets").cmd, CLI_C_TICKETS);
	cr_assert_eq(parse("/close").cmd, CLI_C_CLOSE);
	cr_assert_eq(parse("/quit  ").cmd, CLI_C_QUIT);
	cr_assert_eq(parse("/quit\r").cmd, CLI_C_QUIT);

	struct cli_parsed pc = parse("/keyupdate");
	cr_assert_eq(pc.cmd, CLI_C_KEYUPDATE);
	cr_assert_not(pc.arg_flag);
	pc = parse("/keyupdate request");
	cr_assert_eq(pc.cmd, CLI_C_KEYUPDATE);
	cr_assert(pc.arg_flag);

	pc = parse("/save  /tmp/s ession");
	cr_assert_eq(pc.cmd, CLI_C_SAVE);
	cr_assert_eq(pc.arg_len, strlen("/tmp/s ession"));
	cr_assert_eq(memcmp(pc.arg, "/tmp/s ession", pc.arg_len), 0);
}

Test(commands, invalid)
{
	struct cli_parsed pc = parse("/keyupdat");
	cr_assert_eq(pc.cmd, CLI_C_INVALID);
	cr_assert(strstr(pc.error, "unknown command"));

	pc = parse("/keyupdate now");
	cr_assert_eq(pc.cmd, CLI_C_INVALID);
	cr_assert(strstr(pc.error, "[request]"));

	pc = parse("/save");
	cr_assert_eq(pc.cmd, CLI_C_INVALID);
	cr_assert(strstr(pc.error, "FILE"));

	pc = parse("/stats x");
	cr_assert_eq(pc.cmd, CLI_C_INVALID);

	pc = parse("/");
	cr_assert_eq(pc.cmd, CLI_C_INVALID);
}

Test(commands, invalid_messages)
{
	cr_assert_str_eq(parse("/keyupdat").error,
			 "unknown command (try /help; // sends a line starting with /)");
	cr_assert_str_eq(parse("/keyupdate now").error, "usage: /keyupdate [request]");
	cr_assert_str_eq(parse("/keyupdate requests").error, "usage: /keyupdate [request]");
	cr_assert_str_eq(parse("/save  ").error, "usage: /save FILE");
	cr_assert_str_eq(parse("/quit now").error, "this command takes no argument");
	cr_assert_str_eq(parse("/stats").error, "");
}

/* Each entry of the table parses as itself, with and without what its
 * argument allows, and /help lists it as "/name ARG". */
Test(commands, every_entry_of_the_table)
{
	char *help = NULL;
	size_t help_len = 0, n = 0;
	FILE *f = open_memstream(&help, &help_len);
	cli_command_help(f);
	fclose(f);

	for (const struct cli_session_command *c = cli_session_commands; c->name; c++, n++) {
		char line[80];
		bool optional = c->arg && c->arg[0] == '[';
		snprintf(line, sizeof line, "/%s", c->name);
		struct cli_parsed pc = parse(line);
		cr_assert_eq(pc.cmd, c->arg && !optional ? CLI_C_INVALID : c->cmd, "%s", line);
		snprintf(line, sizeof line, "/%s %.*s", c->name,
			 c->arg ? (int)strlen(c->arg) - 2 * optional : 1,
			 c->arg ? c->arg + optional : "x");
		pc = parse(line);
		cr_assert_eq(pc.cmd, c->arg ? c->cmd : CLI_C_INVALID, "%s", line);
		cr_assert_eq(pc.arg_flag, optional, "%s", line);

		snprintf(line, sizeof line, "\n  /%s%s%s ", c->name, c->arg ? " " : "",
			 c->arg ? c->arg : "");
		cr_assert(strstr(help, line), "/help lacks '%s':\n%s", line + 1, help);
	}
	cr_assert_eq(n, 7);
	free(help);
}
