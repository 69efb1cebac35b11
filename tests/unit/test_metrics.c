/* tests/unit/test_metrics.c: the stats report as metrics
 * (core/diag/metrics.h), from hand-built reports: names, types, label
 * escaping, what gives no sample. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/diag/metrics.h"
#include "core/diag/view_json.h"

static struct kc_view *from_json(const char *json)
{
	struct kc_view *v = NULL;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_view_from_json(json, strlen(json), &v, &err), 0, "%s", err.msg);
	return v;
}

static char *render(const char *json, enum kc_metrics_format fmt)
{
	struct kc_view *v = from_json(json);
	struct kc_err err = { 0 };
	char *text = kc_metrics_render(v, fmt, &err);
	cr_assert(text, "%s", err.msg);
	kc_view_free(v);
	return text;
}

#define SESSION(extra)                                                                   \
	"{\"sessions\":[{\"pid\":42,\"role\":\"client\",\"peer\":\"[::1]:443\","       \
	"\"channel\":\"kernel\",\"version\":\"TLS1.3\",\"cipher\":\"AES-128-GCM\","      \
	"\"tx\":{\"records_key\":100,\"records\":300,\"bytes\":5000,\"key_updates\":2,"  \
	"\"limit\":1000,\"limit_used\":10.0},"                                           \
	"\"rx\":{\"records_key\":7,\"records\":7,\"bytes\":70,\"key_updates\":0,"        \
	"\"limit\":0,\"limit_used\":0.0},\"tickets\":2,\"uptime\":9" extra "}]}"

Test(metrics, session_samples_and_names)
{
	char *t = render(SESSION(""), KC_METRICS_PROMETHEUS);
	const char *labels = "pid=\"42\",role=\"client\",peer=\"[::1]:443\",version=\"TLS1.3\","
			     "cipher=\"AES-128-GCM\",channel=\"kernel\"";
	char want[512];
	snprintf(want, sizeof want, "\nktls_session_records_current_key{%s,direction=\"tx\"} 100\n", labels);
	cr_assert(strstr(t, want), "%s", t);
	snprintf(want, sizeof want, "\nktls_session_bytes_total{%s,direction=\"rx\"} 70\n", labels);
	cr_assert(strstr(t, want), "%s", t);
	snprintf(want, sizeof want, "\nktls_session_key_limit_used_ratio{%s,direction=\"tx\"} 0.1\n", labels);
	cr_assert(strstr(t, want), "%s", t);
	snprintf(want, sizeof want, "\nktls_session_tickets_total{%s} 2\n", labels);
	cr_assert(strstr(t, want), "%s", t);
	/* rx has no limit: neither the limit nor its share */
	cr_assert_null(strstr(t, "ktls_session_key_record_limit{pid=\"42\",role=\"client\",peer=\"[::1]:443\","
			       "version=\"TLS1.3\",cipher=\"AES-128-GCM\",channel=\"kernel\",direction=\"rx\"}"));
	cr_assert(strstr(t, "\n# TYPE ktls_session_bytes_total counter\n"));
	cr_assert(strstr(t, "\nktls_sessions_running 1\n"));
	cr_assert_null(strstr(t, "# EOF"));
	cr_assert_null(strstr(t, "# UNIT"));
	free(t);
}

/* A serving process's session: its id as the session label, after pid. */
Test(metrics, served_session_label)
{
	char *t = render("{\"sessions\":[{\"pid\":42,\"session\":7,\"role\":\"server\","
			 "\"tickets\":0}]}", KC_METRICS_OPENMETRICS);
	cr_assert(strstr(t, "\nktls_session_tickets_total{pid=\"42\",session=\"7\",role=\"server\"} 0\n"),
		  "%s", t);
	free(t);
}

Test(metrics, openmetrics_metadata)
{
	char *t = render(SESSION(""), KC_METRICS_OPENMETRICS);
	cr_assert(strstr(t, "\n# TYPE ktls_session_bytes counter\n# UNIT ktls_session_bytes bytes\n"), "%s", t);
	cr_assert(strstr(t, "\n# TYPE ktls_kernel info\n"));
	size_t n = strlen(t);
	cr_assert(n > 6 && strcmp(t + n - 6, "# EOF\n") == 0);
	free(t);
}

Test(metrics, label_values_escaped)
{
	char *t = render("{\"sockets\":{\"list\":[{\"pid\":7,\"comm\":\"a\\\"b\\\\c\\nd\"},"
			 "{\"pid\":7,\"comm\":\"a\\\"b\\\\c\\nd\"},{\"comm\":null}]},"
			 "\"tls_stat\":{\"present\":true,\"counters\":{\"TlsTxSw\":5,\"TlsNew\":3}}}",
			 KC_METRICS_PROMETHEUS);
	/* The JSON reader turns control characters into '?' (no newline can
	 * reach a label); quote and backslash are escaped. */
	cr_assert(strstr(t, "\nktls_sockets{pid=\"7\",process=\"a\\\"b\\\\c?d\"} 2\n"), "%s", t);
	cr_assert(strstr(t, "\nktls_sockets{pid=\"\",process=\"\"} 1\n"), "%s", t);
	cr_assert(strstr(t, "\nktls_kernel_sessions_installed_total{direction=\"tx\",offload=\"sw\"} 5\n"));
	cr_assert(strstr(t, "\nktls_tls_stat_other{counter=\"TlsNew\"} 3\n"), "%s", t);
	cr_assert(strstr(t, "\nktls_tls_stat_present 1\n"));
	free(t);
}

Test(metrics, empty_report_has_metadata_only)
{
	char *t = render("{}", KC_METRICS_OPENMETRICS);
	for (const char *line = t; *line; line = strchr(line, '\n') + 1)
		cr_assert_eq(line[0], '#', "a sample from an empty report: %.60s", line);
	free(t);
}

Test(metrics, family_table)
{
	struct kc_metric_info mi;
	size_t n = 0;
	while (kc_metrics_family(n, &mi)) {
		cr_assert(strncmp(mi.name, "ktls_", 5) == 0, "%s", mi.name);
		cr_assert(!mi.unit || strstr(mi.name, mi.unit), "%s", mi.name);
		cr_assert(mi.help && *mi.help && !strchr(mi.help, '\n'));
		n++;
	}
	cr_assert_gt(n, 20);
}
