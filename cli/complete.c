/* cli/complete.c: the completion helper (see complete.h), read from the
 * subcommand and option tables of cli/opts.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/complete.h"
#include "cli/opts.h"
#include "core/ctl.h"

/* "PREFIX WORD<TAB>DESCRIPTION" when WORD starts with part; the
 * description on one line. */
static void offer(FILE *out, const char *prefix, const char *word, size_t word_len,
		  const char *desc, const char *part, bool any_case)
{
	size_t n = strlen(part);
	if (n > word_len || (any_case ? strncasecmp(word, part, n) : strncmp(word, part, n)))
		return;
	fprintf(out, "%s%.*s", prefix, (int)word_len, word);
	if (desc) {
		fputc('\t', out);
		for (; *desc; desc++)
			fputc(*desc == '\n' ? ' ' : *desc, out);
	}
	fputc('\n', out);
}

static int by_number(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

static void offer_hint(FILE *out, enum cli_hint hint, const char *prefix, const char *part)
{
	switch (hint) {
	case CLI_HINT_FILE:
		fputs(":file\n", out);
		break;
	case CLI_HINT_HOST:
		fputs(":host\n", out);
		break;
	case CLI_HINT_PID: {
		/* The sessions' control sockets; stale ones are dropped there.
		 * Nothing is offered when they cannot be listed. */
		pid_t pids[1024];
		size_t n = 0;
		char word[16];
		if (kc_ctl_list(pids, sizeof pids / sizeof pids[0], &n, NULL) < 0)
			return;
		qsort(pids, n, sizeof pids[0], by_number);
		for (size_t i = 0; i < n; i++) {
			snprintf(word, sizeof word, "%d", (int)pids[i]);
			offer(out, prefix, word, strlen(word), "ktlsctl session", part, false);
		}
		break;
	}
	case CLI_HINT_NONE:
		break;
	}
}

/* What may follow opt: its fixed values (a value with a parameter as
 * "name="), else what its hint says. */
static void offer_values(FILE *out, const struct cli_option *opt, const char *prefix,
			 const char *part)
{
	if (!opt->values) {
		offer_hint(out, opt->hint, prefix, part);
		return;
	}
	for (const struct cli_value *v = opt->values; v->name; v++) {
		const char *eq = strchr(v->name, '=');
		size_t len = eq ? (size_t)(eq - v->name) + 1 : strlen(v->name);
		offer(out, prefix, v->name, len, v->help, part, true);
	}
}

static void offer_options(FILE *out, const struct cli_subcommand *sub, const char *part)
{
	char word[64];
	for (const struct cli_option *const *p = sub->options; *p; p++) {
		const struct cli_option *opt = *p;
		if (opt->short_name) {
			snprintf(word, sizeof word, "-%c", opt->short_name);
			offer(out, "", word, strlen(word), opt->help, part, false);
		}
		snprintf(word, sizeof word, "--%s", opt->name);
		offer(out, "", word, strlen(word), opt->help, part, false);
	}
}

/* The option whose argument is the word after w ("--cafile", "-X" or a
 * cluster "-qX" ending in an option that takes one), or NULL. */
static const struct cli_option *wants_argument(const struct cli_subcommand *sub, const char *w)
{
	if (w[1] == '-') {
		if (strchr(w, '='))
			return NULL;
		const struct cli_option *opt = cli_option_named(sub, w + 2, strlen(w + 2));
		return opt && opt->metavar ? opt : NULL;
	}
	for (const char *c = w + 1; *c; c++) {
		const struct cli_option *opt = cli_option_short(sub, *c);
		if (opt && opt->metavar)
			return c[1] ? NULL : opt;   /* "-Xvalue" holds its own */
	}
	return NULL;
}

void cli_complete(int nwords, char **words, FILE *out)
{
	const char *part = nwords ? words[nwords - 1] : "";

	if (nwords <= 1) {
		if (part[0] == '-')
			offer_options(out, &cli_program, part);
		else
			for (const struct cli_subcommand *s = cli_subcommands; s->name; s++)
				offer(out, "", s->name, strlen(s->name), s->summary, part, false);
		return;
	}
	const struct cli_subcommand *sub = cli_subcommand_named(words[0]);
	if (!sub)
		return;

	/* The words between the subcommand and the one being completed:
	 * positional arguments, options, and the options' arguments. */
	const struct cli_option *pending = NULL;
	bool options_end = false;
	int npos = 0;
	for (int i = 1; i < nwords - 1; i++) {
		const char *w = words[i];
		if (pending)
			pending = NULL;
		else if (options_end || w[0] != '-' || !w[1])
			npos++;
		else if (strcmp(w, "--") == 0)
			options_end = true;
		else
			pending = wants_argument(sub, w);
	}

	const char *eq = strchr(part, '=');
	if (pending) {
		offer_values(out, pending, "", part);
	} else if (!options_end && strncmp(part, "--", 2) == 0 && eq) {
		const struct cli_option *opt = cli_option_named(sub, part + 2, (size_t)(eq - part - 2));
		char prefix[80];
		snprintf(prefix, sizeof prefix, "%.*s", (int)(eq - part + 1), part);
		if (opt && opt->metavar)
			offer_values(out, opt, prefix, eq + 1);
	} else if (!options_end && part[0] == '-') {
		offer_options(out, sub, part);
	} else if (sub->args && npos == 0) {
		offer_hint(out, sub->args_hint, "", part);
	}
}
