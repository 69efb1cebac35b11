/* cli/out.c: structured output as text or JSON (see out.h). */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "cli/out.h"

void out_init(struct cli_out *o, FILE *f, bool json)
{
	memset(o, 0, sizeof *o);
	o->f = f;
	o->json = json;
	if (json)
		fputc('{', f);
}

void out_finish(struct cli_out *o)
{
	while (o->depth > 0)
		out_end(o);
	if (o->json)
		fputs("}\n", o->f);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Open a JSON member or array element at the current depth. */
static void json_key(struct cli_out *o, const char *key)
{
	if (o->need_comma[o->depth])
		fputc(',', o->f);
	o->need_comma[o->depth] = true;
	if (!o->in_list[o->depth]) {
		json_string(o->f, key);
		fputc(':', o->f);
	}
}

static void indent(struct cli_out *o)
{
	for (int i = 0; i < o->depth; i++)
		fputs("  ", o->f);
}

static void open_level(struct cli_out *o, bool list)
{
	if (o->depth + 1 < (int)(sizeof o->need_comma / sizeof o->need_comma[0]))
		o->depth++;
	o->need_comma[o->depth] = false;
	o->in_list[o->depth] = list;
}

void out_object(struct cli_out *o, const char *key, const char *title)
{
	if (o->json) {
		json_key(o, key);
		fputc('{', o->f);
	} else {
		indent(o);
		fprintf(o->f, "%s:\n", title);
	}
	open_level(o, false);
}

void out_list(struct cli_out *o, const char *key, const char *title)
{
	if (o->json) {
		json_key(o, key);
		fputc('[', o->f);
	} else {
		indent(o);
		fprintf(o->f, "%s:\n", title);
	}
	open_level(o, true);
}

void out_item(struct cli_out *o, const char *title)
{
	if (o->json) {
		json_key(o, NULL);
		fputc('{', o->f);
	} else {
		indent(o);
		fprintf(o->f, "%s\n", title);
	}
	open_level(o, false);
}

void out_end(struct cli_out *o)
{
	if (o->depth == 0)
		return;
	bool list = o->in_list[o->depth];
	o->depth--;
	if (o->json)
		fputc(list ? ']' : '}', o->f);
}

static void text_field(struct cli_out *o, const char *label)
{
	indent(o);
	fprintf(o->f, "%s: ", label);
}

void out_str(struct cli_out *o, const char *key, const char *label, const char *value)
{
	if (o->json) {
		json_key(o, key);
		json_string(o->f, value ? value : "");
	} else {
		text_field(o, label);
		fprintf(o->f, "%s\n", value ? value : "-");
	}
}

void out_u64(struct cli_out *o, const char *key, const char *label, uint64_t value)
{
	if (o->json) {
		json_key(o, key);
		fprintf(o->f, "%" PRIu64, value);
	} else {
		text_field(o, label);
		fprintf(o->f, "%" PRIu64 "\n", value);
	}
}

void out_bool(struct cli_out *o, const char *key, const char *label, bool value)
{
	if (o->json) {
		json_key(o, key);
		fputs(value ? "true" : "false", o->f);
	} else {
		text_field(o, label);
		fputs(value ? "yes\n" : "no\n", o->f);
	}
}

void out_null(struct cli_out *o, const char *key, const char *label)
{
	if (o->json) {
		json_key(o, key);
		fputs("null", o->f);
	} else {
		text_field(o, label);
		fputs("-\n", o->f);
	}
}

void out_f64(struct cli_out *o, const char *key, const char *label, double value)
{
	if (o->json) {
		json_key(o, key);
		fprintf(o->f, "%.4f", value);
	} else {
		text_field(o, label);
		fprintf(o->f, "%.2f\n", value);
	}
}

/* JSON's number grammar without exponents: -?(0|[1-9][0-9]*)(\.[0-9]+)?
 * (a session's answer may hold "007", "1." or "1.2.3": those stay text,
 * or stats --json would not be JSON). */
static bool json_number(const char *v)
{
	if (*v == '-')
		v++;
	if (*v == '0')
		v++;
	else if (*v >= '1' && *v <= '9')
		while (*v >= '0' && *v <= '9')
			v++;
	else
		return false;
	if (*v == '.') {
		if (!(*++v >= '0' && *v <= '9'))
			return false;
		while (*v >= '0' && *v <= '9')
			v++;
	}
	return *v == '\0';
}

void out_num_text(struct cli_out *o, const char *key, const char *label, const char *value)
{
	if (o->json && json_number(value)) {
		json_key(o, key);
		fputs(value, o->f);
	} else {
		out_str(o, key, label, value);
	}
}
