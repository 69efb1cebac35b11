/* core/diag/view_json.h: a view tree as JSON, and JSON back into a tree
 * (what a session's control socket carries, core/ctl.h).
 *
 * Writing: keys and values only (labels and texts are for people), one
 * line, numbers as the tree holds them.
 * Reading: one JSON object (RFC 8259), with the limits of a report: at
 * most KC_VIEW_JSON_DEPTH levels, keys unique within an object.  Integers
 * from 0 to 2^64-1 become KC_VIEW_UINT, other numbers KC_VIEW_NUMBER
 * (their text kept); strings keep printable ASCII, every other byte or
 * \u escape becomes '?'.  Labels are the keys, until a report's own
 * labels are set (core/diag/session_view.h).
 * Nothing here prints or exits. */
#ifndef KC_DIAG_VIEW_JSON_H
#define KC_DIAG_VIEW_JSON_H

#include <stddef.h>

#include "core/diag/view.h"
#include "core/err.h"

#define KC_VIEW_JSON_DEPTH 8
/* kc_view_from_json: the text ended inside the document. */
#define KC_VIEW_JSON_TRUNCATED (-2)

/* v (its value: the key is the parent's business) as JSON, malloc'd and
 * NUL terminated, without a final newline; NULL with *err when out of
 * memory. */
char *kc_view_json(const struct kc_view *v, struct kc_err *err);

/* Parse s[0..len) (no NUL needed), one JSON object with optional white
 * space around it, into a new tree (*out, free with kc_view_free).  0; or
 * KC_VIEW_JSON_TRUNCATED or -1 (not such a document) with *err
 * (KC_E_PROTOCOL: what is wrong, and at which byte) and *out NULL;
 * KC_E_INTERNAL when out of memory. */
int kc_view_from_json(const char *s, size_t len, struct kc_view **out, struct kc_err *err);

#endif
