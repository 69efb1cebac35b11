/* core/diag/view_text.c: view trees as text (see view_text.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/diag/view_text.h"

static bool is_container(const struct kc_view *v)
{
	return v->kind == KC_VIEW_OBJECT || v->kind == KC_VIEW_ARRAY;
}

/* v's own line in the full style; true when its children follow it. */
static bool put_line(FILE *f, const struct kc_view *v, int depth)
{
	bool element = !v->key;
	bool open = is_container(v) && !v->text && v->first;
	char num[24];

	fprintf(f, "%*s", 2 * depth, "");
	if (!element || open)
		fputs(v->label, f);
	if (!element && open)
		fputc(':', f);
	else if (!element)
		fputs(": ", f);
	if (!is_container(v))
		fputs(kc_view_value_text(v, num, sizeof num), f);
	else if (v->text)
		fputs(v->text, f);
	else if (!open)
		fputs("none", f);
	fputc('\n', f);
	return open;
}

static void put_full(FILE *f, const struct kc_view *v, int depth)
{
	if (put_line(f, v, depth))
		for (const struct kc_view *c = v->first; c; c = c->next)
			put_full(f, c, depth + 1);
}

static void put_brief(FILE *f, const struct kc_view *v, int depth)
{
	for (const struct kc_view *c = v->first; c; c = c->next) {
		if (!c->brief) {
			put_brief(f, c, depth);
			continue;
		}
		if (c->summary)
			fprintf(f, "%*s%s\n", 2 * depth, "", c->summary);
		else
			put_line(f, c, depth);
		put_brief(f, c, depth + 1);
	}
}

char *kc_view_text(const struct kc_view *root, enum kc_view_style style, struct kc_err *err)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	if (!f)
		goto oom;
	if (style == KC_VIEW_BRIEF)
		put_brief(f, root, 0);
	else
		for (const struct kc_view *c = root->first; c; c = c->next)
			put_full(f, c, 0);
	if (fclose(f) == 0 && s)
		return s;
oom:
	free(s);
	kc_err_set(err, KC_E_INTERNAL, "out of memory writing the report");
	return NULL;
}
