/* core/diag/peercheck_view.h: a probe report (core/peercheck.h) as a view
 * tree, so that its text and its JSON come from the same nodes.
 *
 * JSON: {"server": "ADDR:PORT", "session": "TLS1.3 ...", "channel":
 * "kernel"|"user-space", "checks": [{"name", "result", "reason",
 * "elapsed_ms"}], "failed": N} (result: pass, fail, n/a, unknown).
 * Brief text: one line per check, "NAME RESULT REASON" in columns. */
#ifndef KC_DIAG_PERCHECK_VIEW_H
#define KC_DIAG_PERCHECK_VIEW_H

#include "core/diag/view.h"
#include "core/peercheck.h"

/* NULL when out of memory. */
struct kc_view *kc_peercheck_view(const struct kc_pc_report *r);

#endif
