/* core/diag/metrics.h: the stats report as Prometheus metrics.
 *
 * Every metric is a row of one table (core/diag/metrics.c): its name,
 * type, unit and help, and which part of the report it reads.  The input
 * is the tree `ktlsctl stats --json` renders (core/diag/tls_stat.h,
 * caps.h, sockdiag.h, session_view.h), so metrics and JSON carry the same
 * values.  Two exposition formats:
 *   KC_METRICS_PROMETHEUS   the classic text format 0.0.4 (counters named
 *                           with _total, info metrics as gauges)
 *   KC_METRICS_OPENMETRICS  OpenMetrics 1.0.0 text (UNIT lines, info
 *                           type, "# EOF" at the end)
 * Nothing here prints or exits. */
#ifndef KC_DIAG_METRICS_H
#define KC_DIAG_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/diag/view.h"
#include "core/err.h"

enum kc_metrics_format { KC_METRICS_PROMETHEUS, KC_METRICS_OPENMETRICS };

/* The Content-Type each format is served with over HTTP. */
const char *kc_metrics_content_type(enum kc_metrics_format fmt);

/* The metrics of a stats report, malloc'd; NULL with *err when out of
 * memory.  Parts missing from the report give no samples. */
char *kc_metrics_render(const struct kc_view *report, enum kc_metrics_format fmt,
			struct kc_err *err);

/* The metric families, for the man page test: name (without _total),
 * type name ("counter", "gauge", "info"), help; false past the end. */
struct kc_metric_info {
	const char *name, *type, *unit, *help;
};
bool kc_metrics_family(size_t i, struct kc_metric_info *out);

#endif
