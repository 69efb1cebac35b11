/* core/diag/view.h: one tree per report, built in core and rendered as
 * text or JSON from the same nodes, so the two cannot drift (the idea of
 * iproute2's print_* helpers).  Nothing here prints or exits. */
#ifndef KC_DIAG_VIEW_H
#define KC_DIAG_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* A JSON-shaped tree with text labels.  JSON: objects, arrays, strings,
 * unsigned integers, numbers with a fraction, booleans, null; `key` is the
 * member name inside an object (stable, snake_case, documented in the man
 * page) and NULL inside an array.
 * Text (core/diag/view_text.h): `label` is what a person reads ("kTLS
 * available"; for an array element, its title); `text`, when set on an
 * object or array, is a complete one-line rendering of it, so the text
 * shows "label: text" and not the children.  `brief` marks what the short
 * summary shows, as its `summary` line when it has one.
 * Every value has one format, whichever way it is rendered.
 * All strings are printable ASCII. */
enum kc_view_kind {
	KC_VIEW_OBJECT,
	KC_VIEW_ARRAY,
	KC_VIEW_STRING,
	KC_VIEW_UINT,
	KC_VIEW_NUMBER,               /* str is a JSON number: "0.0123" */
	KC_VIEW_BOOL,
	KC_VIEW_NULL,
};

struct kc_view {
	enum kc_view_kind kind;
	char *key;
	char *label;
	char *text;                   /* objects/arrays: optional one-liner */
	char *summary;                /* the brief text's line for this node */
	bool brief;                   /* shown in the brief text */
	char *str;                    /* KC_VIEW_STRING, KC_VIEW_NUMBER */
	uint64_t num;                 /* KC_VIEW_UINT */
	bool flag;                    /* KC_VIEW_BOOL */
	struct kc_view *first, *last; /* children, in order */
	struct kc_view *next;         /* next sibling */
	struct kc_view *root;         /* the tree's root (for the oom flag) */
	bool oom;                     /* on the root: an allocation failed */
};

/* A new empty root object; NULL when out of memory. */
struct kc_view *kc_view_new(void);
/* Frees a tree made by kc_view_new (the root, never a child alone). */
void kc_view_free(struct kc_view *root);
/* Moves the tree made by kc_view_new into parent, as member key of an
 * object or element of an array (key NULL), and returns its node; with
 * no parent (or out of memory) the tree is freed and NULL returned. */
struct kc_view *kc_view_adopt(struct kc_view *parent, const char *key, struct kc_view *tree);
/* Moves the children of from (a node of any tree) to the end of to's, in
 * order, leaving from empty: the elements of one array into another. */
void kc_view_move_children(struct kc_view *to, struct kc_view *from);

/* Builders: add a child to parent (an object: key required; an array: key
 * NULL) and return it.  They accept parent == NULL (and then do nothing),
 * so a chain of calls needs no checks; an allocation failure marks the
 * root (kc_view_ok() is then false). */
struct kc_view *kc_view_object(struct kc_view *parent, const char *key, const char *label);
struct kc_view *kc_view_array(struct kc_view *parent, const char *key, const char *label);
struct kc_view *kc_view_string(struct kc_view *parent, const char *key, const char *label,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
struct kc_view *kc_view_uint(struct kc_view *parent, const char *key, const char *label,
			     uint64_t value);
struct kc_view *kc_view_bool(struct kc_view *parent, const char *key, const char *label,
			     bool value);
struct kc_view *kc_view_null(struct kc_view *parent, const char *key, const char *label);
/* value with exactly `decimals` digits after the point, in text and JSON. */
struct kc_view *kc_view_decimal(struct kc_view *parent, const char *key, const char *label,
				double value, int decimals);
/* A string, or null when s is NULL or empty. */
struct kc_view *kc_view_string_or_null(struct kc_view *parent, const char *key,
				       const char *label, const char *s);
void kc_view_set_text(struct kc_view *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kc_view_set_label(struct kc_view *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Shows v in the brief text: as its summary line (which says what it is,
 * label included), or, with kc_view_mark_brief, as in the full text. */
void kc_view_set_summary(struct kc_view *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kc_view_mark_brief(struct kc_view *v);

/* A scalar's value as the text shows it: the string or number, "yes" or
 * "no", "-" for null (in buf when it must be formatted; containers: ""). */
const char *kc_view_value_text(const struct kc_view *v, char *buf, size_t len);

/* The child of an object by key, NULL if none. */
const struct kc_view *kc_view_get(const struct kc_view *obj, const char *key);
/* False when an allocation in v's tree failed. */
bool kc_view_ok(const struct kc_view *v);
/* 0, or -1 with *err ("out of memory building the report") when not ok. */
int kc_view_status(const struct kc_view *v, struct kc_err *err);

/* Replace each byte of s that is not printable ASCII with '?': what
 * every string in a tree is made of. */
void kc_view_printable(char *s);

#endif
