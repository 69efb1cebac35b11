/* tests/unit/view_json.h: a minimal JSON writer for the unit tests, to
 * check a view tree's shape. */
#ifndef TEST_VIEW_JSON_H
#define TEST_VIEW_JSON_H

#include <inttypes.h>
#include <stdio.h>

#include "core/diag/view.h"


static void json(FILE *f, const struct kc_view *v)
{
	switch (v->kind) {
	case KC_VIEW_OBJECT:
	case KC_VIEW_ARRAY:
		fputc(v->kind == KC_VIEW_OBJECT ? '{' : '[', f);
		for (const struct kc_view *c = v->first; c; c = c->next) {
			if (v->kind == KC_VIEW_OBJECT)
				fprintf(f, "\"%s\":", c->key);
			json(f, c);
			if (c->next)
				fputc(',', f);
		}
		fputc(v->kind == KC_VIEW_OBJECT ? '}' : ']', f);
		break;
	case KC_VIEW_STRING:
		fputc('"', f);
		for (const char *p = v->str; *p; p++)
			fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
		fputc('"', f);
		break;
	case KC_VIEW_UINT: fprintf(f, "%" PRIu64, v->num); break;
	case KC_VIEW_BOOL: fputs(v->flag ? "true" : "false", f); break;
	case KC_VIEW_NULL: fputs("null", f); break;
	}
}

static char *to_json(const struct kc_view *v)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	json(f, v);
	fclose(f);
	return s;
}

#endif
