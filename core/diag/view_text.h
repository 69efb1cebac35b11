/* core/diag/view_text.h: a view tree as text for people, in one of two
 * styles, from the same nodes as its JSON.
 *
 * KC_VIEW_FULL, every node, two spaces of indent per level:
 *   "label: value"      a scalar (yes/no for booleans, "-" for null)
 *   "label: text"       an object or array with a one-line text
 *   "label: none"       an empty object or array without one
 *   "label:"            any other object or array, its children below
 * an array's elements show without "label: ": their value or text, or
 * their label as the title over their children.
 * KC_VIEW_BRIEF, only the nodes marked brief: each as its summary line
 * when it has one, else as its first line in the full style; a brief
 * node's brief descendants are indented under it.
 * The root itself has no line.  Nothing here prints or exits. */
#ifndef KC_DIAG_VIEW_TEXT_H
#define KC_DIAG_VIEW_TEXT_H

#include "core/diag/view.h"
#include "core/err.h"

enum kc_view_style { KC_VIEW_FULL, KC_VIEW_BRIEF };

/* The text of root's children, malloc'd ("" for none); NULL with *err
 * when out of memory. */
char *kc_view_text(const struct kc_view *root, enum kc_view_style style, struct kc_err *err);

#endif
