/* tests/unit/test_commands.c: session command parsing. */
#include "config.h"

#include <criterion/criterion.h>
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

Test(commands, names_complete_every_command)
{
	size_t n = 0;
	for (const char *const *p = cli_command_names; *p; p++, n++) {
		struct cli_parsed pc = parse(*p);
		cr_assert(pc.cmd != CLI_C_INVALID || !strstr(pc.error, "unknown"), "%s", *p);
	}
	cr_assert_eq(n, 7);
}
