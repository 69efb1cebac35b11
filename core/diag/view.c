/* core/diag/view.c: the view tree (see view.h). */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/view.h"

void kc_view_printable(char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static char *dup_clean(const char *s)
{
	char *d = strdup(s);
	kc_view_printable(d);
	return d;
}

struct kc_view *kc_view_new(void)
{
	struct kc_view *v = calloc(1, sizeof *v);
	if (v) {
		v->kind = KC_VIEW_OBJECT;
		v->root = v;
	}
	return v;
}

static void free_one(struct kc_view *v)
{
	free(v->key);
	free(v->label);
	free(v->text);
	free(v->summary);
	free(v->str);
	free(v);
}

/* v, its siblings after it, and everything below them. */
static void free_list(struct kc_view *v)
{
	while (v) {
		struct kc_view *next = v->next;
		free_list(v->first);
		free_one(v);
		v = next;
	}
}

void kc_view_free(struct kc_view *v)
{
	if (v) {
		free_list(v->first);
		free_one(v);
	}
}

static void append(struct kc_view *parent, struct kc_view *v)
{
	if (parent->last)
		parent->last->next = v;
	else
		parent->first = v;
	parent->last = v;
}

/* Allocate a child of parent; NULL (and the root marked) on failure. */
static struct kc_view *add_node(struct kc_view *parent, enum kc_view_kind kind,
				const char *key, const char *label)
{
	if (!parent)
		return NULL;
	struct kc_view *v = calloc(1, sizeof *v);
	if (!v)
		goto oom;
	v->kind = kind;
	v->root = parent->root;
	if ((key && !(v->key = dup_clean(key))) ||
	    !(v->label = dup_clean(label ? label : key ? key : ""))) {
		free(v->key);
		free(v);
		goto oom;
	}
	append(parent, v);
	return v;
oom:
	parent->root->oom = true;
	return NULL;
}

static void set_root(struct kc_view *v, struct kc_view *root)
{
	for (; v; v = v->next) {
		v->root = root;
		set_root(v->first, root);
	}
}

struct kc_view *kc_view_adopt(struct kc_view *parent, const char *key, struct kc_view *tree)
{
	if (!parent || !tree) {
		kc_view_free(tree);
		return NULL;
	}
	if (tree->oom || (key && !(tree->key = dup_clean(key))) ||
	    (!tree->label && !(tree->label = dup_clean(key ? key : "")))) {
		kc_view_free(tree);
		parent->root->oom = true;
		return NULL;
	}
	tree->root = parent->root;
	set_root(tree->first, parent->root);
	append(parent, tree);
	return tree;
}

void kc_view_move_children(struct kc_view *to, struct kc_view *from)
{
	if (!to || !from || !from->first)
		return;
	set_root(from->first, to->root);
	if (to->last)
		to->last->next = from->first;
	else
		to->first = from->first;
	to->last = from->last;
	from->first = from->last = NULL;
}

struct kc_view *kc_view_object(struct kc_view *parent, const char *key, const char *label)
{
	return add_node(parent, KC_VIEW_OBJECT, key, label);
}

struct kc_view *kc_view_array(struct kc_view *parent, const char *key, const char *label)
{
	return add_node(parent, KC_VIEW_ARRAY, key, label);
}

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	kc_view_printable(s);
	return s;
}

struct kc_view *kc_view_string(struct kc_view *parent, const char *key, const char *label,
			       const char *fmt, ...)
{
	struct kc_view *v = add_node(parent, KC_VIEW_STRING, key, label);
	if (!v)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	v->str = vformat(fmt, ap);
	va_end(ap);
	if (!v->str) {
		v->kind = KC_VIEW_NULL;
		v->root->oom = true;
	}
	return v;
}

struct kc_view *kc_view_uint(struct kc_view *parent, const char *key, const char *label,
			     uint64_t value)
{
	struct kc_view *v = add_node(parent, KC_VIEW_UINT, key, label);
	if (v)
		v->num = value;
	return v;
}

struct kc_view *kc_view_bool(struct kc_view *parent, const char *key, const char *label,
			     bool value)
{
	struct kc_view *v = add_node(parent, KC_VIEW_BOOL, key, label);
	if (v)
		v->flag = value;
	return v;
}

struct kc_view *kc_view_null(struct kc_view *parent, const char *key, const char *label)
{
	return add_node(parent, KC_VIEW_NULL, key, label);
}

struct kc_view *kc_view_string_or_null(struct kc_view *parent, const char *key,
				       const char *label, const char *s)
{
	if (!s || !*s)
		return kc_view_null(parent, key, label);
	return kc_view_string(parent, key, label, "%s", s);
}

struct kc_view *kc_view_decimal(struct kc_view *parent, const char *key, const char *label,
				double value, int decimals)
{
	struct kc_view *v = kc_view_string(parent, key, label, "%.*f", decimals, value);
	if (v && v->kind == KC_VIEW_STRING)
		v->kind = KC_VIEW_NUMBER;
	return v;
}

static void set_field(struct kc_view *v, char **field, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void set_field(struct kc_view *v, char **field, const char *fmt, va_list ap)
{
	char *s = vformat(fmt, ap);
	if (!s) {
		v->root->oom = true;
		return;
	}
	free(*field);
	*field = s;
}

void kc_view_set_text(struct kc_view *v, const char *fmt, ...)
{
	if (!v)
		return;
	va_list ap;
	va_start(ap, fmt);
	set_field(v, &v->text, fmt, ap);
	va_end(ap);
}

void kc_view_set_label(struct kc_view *v, const char *fmt, ...)
{
	if (!v)
		return;
	va_list ap;
	va_start(ap, fmt);
	set_field(v, &v->label, fmt, ap);
	va_end(ap);
}

void kc_view_set_summary(struct kc_view *v, const char *fmt, ...)
{
	if (!v)
		return;
	va_list ap;
	va_start(ap, fmt);
	set_field(v, &v->summary, fmt, ap);
	va_end(ap);
	v->brief = true;
}

void kc_view_mark_brief(struct kc_view *v)
{
	if (v)
		v->brief = true;
}

const char *kc_view_value_text(const struct kc_view *v, char *buf, size_t len)
{
	switch (v->kind) {
	case KC_VIEW_STRING:
	case KC_VIEW_NUMBER: return v->str;
	case KC_VIEW_UINT: snprintf(buf, len, "%" PRIu64, v->num); return buf;
	case KC_VIEW_BOOL: return v->flag ? "yes" : "no";
	case KC_VIEW_NULL: return "-";
	default: return "";
	}
}

const struct kc_view *kc_view_get(const struct kc_view *obj, const char *key)
{
	for (const struct kc_view *c = obj ? obj->first : NULL; c; c = c->next)
		if (c->key && strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

bool kc_view_ok(const struct kc_view *v)
{
	return v && !v->root->oom;
}

int kc_view_status(const struct kc_view *v, struct kc_err *err)
{
	if (!v || v->root->oom)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory building the report");
	return 0;
}
