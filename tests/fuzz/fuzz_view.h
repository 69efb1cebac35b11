/* tests/fuzz/fuzz_view.h: what core/diag/view.h promises about a kc_view
 * tree, checked on every tree a harness builds from hostile input
 * (fuzz_tls_stat, fuzz_sockdiag).
 *
 *   - members of an object have a key, elements of an array have none,
 *     and the keys of one object are distinct (it is rendered as JSON);
 *   - every string (key, label, text, summary, string value) is printable
 *     ASCII, and only nodes in the brief text have a summary;
 *   - every node but the root has a label; scalars have no children;
 *     every node points to the tree's root;
 *   - the root is not marked out of memory.
 * fzv_check aborts with the path of the first node that breaks a rule. */
#ifndef FUZZ_VIEW_H
#define FUZZ_VIEW_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/view.h"

static void fzv_fail(const char *path, const char *what)
{
	fprintf(stderr, "view: %s: %s\n", path, what);
	abort();
}

static void fzv_printable(const char *path, const char *s, const char *what)
{
	if (!s)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			fzv_fail(path, what);
}

static void fzv_node(const struct kc_view *v, const struct kc_view *root, const char *path,
		     unsigned depth)
{
	char sub[512];

	if (depth > 16)
		fzv_fail(path, "deeper than any report");
	if (v->root != root)
		fzv_fail(path, "a node that does not point to its root");
	if (!v->label && v != root)
		fzv_fail(path, "no label");
	fzv_printable(path, v->key, "a key that is not printable ASCII");
	fzv_printable(path, v->label, "a label that is not printable ASCII");
	fzv_printable(path, v->text, "a text that is not printable ASCII");
	fzv_printable(path, v->summary, "a summary that is not printable ASCII");
	if (v->summary && !v->brief)
		fzv_fail(path, "a summary line outside the brief text");
	switch (v->kind) {
	case KC_VIEW_STRING:
	case KC_VIEW_NUMBER:
		if (!v->str)
			fzv_fail(path, "a string or number node without its text");
		fzv_printable(path, v->str, "a string that is not printable ASCII");
		/* fall through */
	case KC_VIEW_UINT:
	case KC_VIEW_BOOL:
	case KC_VIEW_NULL:
		if (v->first || v->last)
			fzv_fail(path, "a scalar with children");
		return;
	case KC_VIEW_OBJECT:
	case KC_VIEW_ARRAY:
		break;
	default:
		fzv_fail(path, "unknown kind");
	}
	unsigned i = 0;
	const struct kc_view *prev = NULL;
	for (const struct kc_view *c = v->first; c; prev = c, c = c->next, i++) {
		if (v->kind == KC_VIEW_OBJECT) {
			if (!c->key)
				fzv_fail(path, "an object member without a key");
			for (const struct kc_view *d = v->first; d != c; d = d->next)
				if (strcmp(d->key, c->key) == 0) {
					snprintf(sub, sizeof sub, "%s.%s", path, c->key);
					fzv_fail(sub, "a key repeated in one object");
				}
			snprintf(sub, sizeof sub, "%s.%s", path, c->key);
		} else {
			if (c->key)
				fzv_fail(path, "an array element with a key");
			snprintf(sub, sizeof sub, "%s[%u]", path, i);
		}
		fzv_node(c, root, sub, depth + 1);
	}
	if (v->last != prev)
		fzv_fail(path, "last is not the last child");
}

static void fzv_check(const struct kc_view *root)
{
	if (!root || root->root != root)
		fzv_fail("$", "not a root");
	if (!kc_view_ok(root))
		fzv_fail("$", "marked out of memory");
	if (root->kind != KC_VIEW_OBJECT)
		fzv_fail("$", "the root is not an object");
	fzv_node(root, root, "$", 0);
}

#endif
