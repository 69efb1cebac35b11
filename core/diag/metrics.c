/* core/diag/metrics.c: the stats report as Prometheus metrics (see
 * metrics.h): one table of families, each with the function that finds
 * its samples in the report. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/metrics.h"

enum type { COUNTER, GAUGE, INFO };

/* One label: name="value"; a list ends at a NULL name. */
struct label {
	const char *name;
	const char *value;
};
#define MAX_LABELS 12

struct out {
	FILE *f;
	enum kc_metrics_format fmt;
};

struct family;
typedef void samples_fn(struct out *o, const struct family *fam, const struct kc_view *report);

struct family {
	const char *name;      /* without _total or _info */
	enum type type;
	const char *unit;      /* OpenMetrics UNIT: the name's last word, or NULL */
	const char *help;
	samples_fn *samples;
	const char *arg;       /* what samples reads, by its rules */
};

/* ------------------------------------------------------------ writing */

/* Label values: backslash, double quote and line feed escaped (both
 * formats).  HELP text: backslash and line feed; OpenMetrics also the
 * double quote. */
static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '"' && quote)
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

static const char *type_name(enum type t, enum kc_metrics_format fmt)
{
	if (t == COUNTER)
		return "counter";
	if (t == INFO && fmt == KC_METRICS_OPENMETRICS)
		return "info";
	return "gauge";
}

/* What a sample's name adds to its family's. */
static const char *sample_suffix(enum type t)
{
	return t == COUNTER ? "_total" : t == INFO ? "_info" : "";
}

static void put_header(struct out *o, const struct family *fam)
{
	/* The classic format names the family as its samples are named. */
	const char *suffix = o->fmt == KC_METRICS_PROMETHEUS ? sample_suffix(fam->type) : "";
	fprintf(o->f, "# HELP %s%s ", fam->name, suffix);
	put_escaped(o->f, fam->help, o->fmt == KC_METRICS_OPENMETRICS);
	fprintf(o->f, "\n# TYPE %s%s %s\n", fam->name, suffix, type_name(fam->type, o->fmt));
	if (fam->unit && o->fmt == KC_METRICS_OPENMETRICS)
		fprintf(o->f, "# UNIT %s %s\n", fam->name, fam->unit);
}

static void put_sample(struct out *o, const struct family *fam, const struct label *labels,
		       const char *value)
{
	fprintf(o->f, "%s%s", fam->name, sample_suffix(fam->type));
	const char *sep = "{";
	for (const struct label *l = labels; l && l->name; l++) {
		if (!l->value)
			continue;
		fprintf(o->f, "%s%s=\"", sep, l->name);
		put_escaped(o->f, l->value, true);
		fputc('"', o->f);
		sep = ",";
	}
	fprintf(o->f, "%s %s\n", *sep == ',' ? "}" : "", value);
}

static void put_uint(struct out *o, const struct family *fam, const struct label *labels,
		     uint64_t v)
{
	char b[24];
	snprintf(b, sizeof b, "%llu", (unsigned long long)v);
	put_sample(o, fam, labels, b);
}

/* ------------------------------------------------------ report reading */

static const struct kc_view *at(const struct kc_view *v, const char *key)
{
	return v ? kc_view_get(v, key) : NULL;
}

static const char *str_at(const struct kc_view *v, const char *key)
{
	const struct kc_view *s = at(v, key);
	return s && s->kind == KC_VIEW_STRING ? s->str : NULL;
}

static bool uint_at(const struct kc_view *v, const char *key, uint64_t *out)
{
	const struct kc_view *n = at(v, key);
	if (!n || n->kind != KC_VIEW_UINT)
		return false;
	*out = n->num;
	return true;
}

/* ------------------------------------------------- /proc/net/tls_stat */

/* The counters of /proc/net/tls_stat (Linux's net/tls/tls_proc.c), each
 * as a sample of a family with labels; a counter not listed here goes to
 * ktls_tls_stat_other under its own name. */
static const struct stat_row {
	const char *counter, *family;
	struct label labels[3];
} stat_rows[] = {
	{ "TlsCurrTxSw", "ktls_kernel_sessions", { { "direction", "tx" }, { "offload", "sw" } } },
	{ "TlsCurrRxSw", "ktls_kernel_sessions", { { "direction", "rx" }, { "offload", "sw" } } },
	{ "TlsCurrTxDevice", "ktls_kernel_sessions", { { "direction", "tx" }, { "offload", "device" } } },
	{ "TlsCurrRxDevice", "ktls_kernel_sessions", { { "direction", "rx" }, { "offload", "device" } } },
	{ "TlsTxSw", "ktls_kernel_sessions_installed", { { "direction", "tx" }, { "offload", "sw" } } },
	{ "TlsRxSw", "ktls_kernel_sessions_installed", { { "direction", "rx" }, { "offload", "sw" } } },
	{ "TlsTxDevice", "ktls_kernel_sessions_installed", { { "direction", "tx" }, { "offload", "device" } } },
	{ "TlsRxDevice", "ktls_kernel_sessions_installed", { { "direction", "rx" }, { "offload", "device" } } },
	{ "TlsDecryptError", "ktls_kernel_decrypt_errors", { { 0 } } },
	{ "TlsRxDeviceResync", "ktls_kernel_rx_device_resyncs", { { 0 } } },
	{ "TlsDecryptRetry", "ktls_kernel_decrypt_retries", { { 0 } } },
	{ "TlsRxNoPadViolation", "ktls_kernel_rx_no_pad_violations", { { 0 } } },
	{ "TlsTxRekeyOk", "ktls_kernel_rekeys", { { "direction", "tx" }, { "result", "ok" } } },
	{ "TlsRxRekeyOk", "ktls_kernel_rekeys", { { "direction", "rx" }, { "result", "ok" } } },
	{ "TlsTxRekeyError", "ktls_kernel_rekeys", { { "direction", "tx" }, { "result", "error" } } },
	{ "TlsRxRekeyError", "ktls_kernel_rekeys", { { "direction", "rx" }, { "result", "error" } } },
	{ "TlsRxRekeyReceived", "ktls_kernel_rx_rekeys_received", { { 0 } } },
};
#define NSTAT_ROWS (sizeof stat_rows / sizeof stat_rows[0])

static const struct kc_view *tls_stat_counters(const struct kc_view *report)
{
	return at(at(report, "tls_stat"), "counters");
}

static void tls_stat_present(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *p = at(at(report, "tls_stat"), "present");
	if (p && p->kind == KC_VIEW_BOOL)
		put_sample(o, fam, NULL, p->flag ? "1" : "0");
}

/* The rows of stat_rows whose family is this one. */
static void tls_stat_samples(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *counters = tls_stat_counters(report);
	uint64_t v;
	for (size_t i = 0; i < NSTAT_ROWS; i++)
		if (strcmp(stat_rows[i].family, fam->name) == 0 &&
		    uint_at(counters, stat_rows[i].counter, &v))
			put_uint(o, fam, stat_rows[i].labels, v);
}

static void tls_stat_other(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *counters = tls_stat_counters(report);
	for (const struct kc_view *c = counters ? counters->first : NULL; c; c = c->next) {
		size_t i = 0;
		while (i < NSTAT_ROWS && strcmp(stat_rows[i].counter, c->key) != 0)
			i++;
		if (i == NSTAT_ROWS && c->kind == KC_VIEW_UINT)
			put_uint(o, fam, (struct label[]){ { "counter", c->key }, { 0 } }, c->num);
	}
}

/* ------------------------------------------------ kernel capabilities */

static const struct kc_view *kernel(const struct kc_view *report)
{
	return at(report, "kernel");
}

static void kernel_info(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *k = kernel(report);
	if (!k)
		return;
	const struct kc_view *ulp = at(k, "ulp_registered"), *admin = at(k, "net_admin");
	struct label l[] = {
		{ "available", str_at(at(k, "available"), "state") },
		{ "module", str_at(at(k, "module"), "state") },
		{ "rekey", str_at(at(k, "rekey"), "state") },
		{ "ulp_registered", ulp && ulp->flag ? "yes" : "no" },
		{ "net_admin", admin && admin->flag ? "yes" : "no" },
		{ 0 },
	};
	put_sample(o, fam, l, "1");
}

static void cipher_info(struct out *o, const struct family *fam, const struct kc_view *report)
{
	static const char *const versions[][2] = { { "tls12", "TLS1.2" }, { "tls13", "TLS1.3" } };
	static const char *const dirs[] = { "tx", "rx" };
	const struct kc_view *list = at(kernel(report), "ciphers");
	for (const struct kc_view *c = list ? list->first : NULL; c; c = c->next)
		for (size_t v = 0; v < 2; v++)
			for (size_t d = 0; d < 2; d++) {
				const char *state = str_at(at(at(c, versions[v][0]), dirs[d]), "state");
				if (!state)
					continue;
				struct label l[] = {
					{ "cipher", str_at(c, "name") }, { "version", versions[v][1] },
					{ "direction", dirs[d] }, { "state", state }, { 0 },
				};
				put_sample(o, fam, l, "1");
			}
}

static void feature_info(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *f = at(kernel(report), "features");
	for (const struct kc_view *c = f ? f->first : NULL; c; c = c->next) {
		const char *state = str_at(c, "state");
		if (state)
			put_sample(o, fam, (struct label[]){ { "feature", c->key }, { "state", state },
							     { 0 } }, "1");
	}
}

/* ----------------------------------------------------- kTLS sockets */

/* Sockets counted by owner: the list is one entry per socket. */
static void sockets_by_owner(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *list = at(at(report, "sockets"), "list");
	if (!list)
		return;
	/* Owners in order of first appearance; a socket whose owner is not
	 * known (hidden, or gone) counts under pid "" and process "". */
	struct owner { uint64_t pid; const char *comm; uint64_t n; } owners[256];
	size_t n = 0;
	for (const struct kc_view *s = list->first; s; s = s->next) {
		uint64_t pid = 0;
		uint_at(s, "pid", &pid);
		const char *comm = str_at(s, "comm");
		size_t i = 0;
		while (i < n && owners[i].pid != pid)
			i++;
		if (i == n) {
			if (n == sizeof owners / sizeof owners[0])
				i = 0;   /* beyond 256 owners, the first one counts the rest */
			else
				owners[n++] = (struct owner){ pid, comm ? comm : "", 0 };
		}
		owners[i].n++;
	}
	for (size_t i = 0; i < n; i++) {
		char pid[24] = "";
		if (owners[i].pid)
			snprintf(pid, sizeof pid, "%llu", (unsigned long long)owners[i].pid);
		put_uint(o, fam, (struct label[]){ { "pid", pid }, { "process", owners[i].comm },
						   { 0 } }, owners[i].n);
	}
}

/* ------------------------------------------------- ktlsctl sessions */

static const struct kc_view *sessions(const struct kc_view *report)
{
	return at(report, "sessions");
}

static void sessions_running(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *list = sessions(report);
	uint64_t n = 0;
	if (!list)
		return;
	for (const struct kc_view *s = list->first; s; s = s->next)
		n++;
	put_uint(o, fam, NULL, n);
}

/* The labels every session sample has (session: a serving process's
 * session id), and a direction when dir is set.  pid and id hold the
 * numbers' text. */
static size_t session_labels(const struct kc_view *s, struct label *l, char pid[24], char id[24],
			     const char *dir)
{
	static const char *const keys[] = { "role", "peer", "version", "cipher", "channel" };
	size_t n = 0;
	uint64_t p;
	if (uint_at(s, "pid", &p)) {
		snprintf(pid, 24, "%llu", (unsigned long long)p);
		l[n++] = (struct label){ "pid", pid };
	}
	if (uint_at(s, "session", &p)) {
		snprintf(id, 24, "%llu", (unsigned long long)p);
		l[n++] = (struct label){ "session", id };
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (str_at(s, keys[i]))
			l[n++] = (struct label){ keys[i], str_at(s, keys[i]) };
	if (dir)
		l[n++] = (struct label){ "direction", dir };
	l[n] = (struct label){ 0 };
	return n;
}

/* A session sample's value, in buf; false for none.  fam->arg names a
 * member of obj (a session, or its "tx" or "rx"); "limit_used" is the
 * share of the limit as a ratio (the report gives a percentage, metrics
 * want 0..1).  A limit of 0 (none that matters) gives no sample, nor
 * does the share of it. */
static bool session_value(const struct family *fam, const struct kc_view *obj, char *buf,
			  size_t len)
{
	const char *key = fam->arg[0] == '.' ? fam->arg + 1 : fam->arg;
	uint64_t v, limit = 0;
	bool has_limit = uint_at(obj, "limit", &limit) && limit;

	if (strcmp(key, "limit_used") == 0) {
		if (!has_limit || !uint_at(obj, "records_key", &v))
			return false;
		snprintf(buf, len, "%.9g", (double)v / (double)limit);
		return true;
	}
	if ((strcmp(key, "limit") == 0 && !has_limit) || !uint_at(obj, key, &v))
		return false;
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return true;
}

/* fam->arg: a member of each session's "tx" and "rx" objects (a sample
 * per direction), or of the session itself when it starts with '.'. */
static void session_samples(struct out *o, const struct family *fam, const struct kc_view *report)
{
	const struct kc_view *list = sessions(report);
	bool own = fam->arg[0] == '.';
	for (const struct kc_view *s = list ? list->first : NULL; s; s = s->next) {
		for (int d = 0; d < (own ? 1 : 2); d++) {
			const char *dir = own ? NULL : d == 0 ? "tx" : "rx";
			char value[32], pid[24], id[24];
			struct label l[MAX_LABELS];
			if (!session_value(fam, own ? s : at(s, dir), value, sizeof value))
				continue;
			session_labels(s, l, pid, id, dir);
			put_sample(o, fam, l, value);
		}
	}
}

/* --------------------------------------------------------- the table */

static const struct family families[] = {
	{ "ktls_tls_stat_present", GAUGE, NULL,
	  "1 when /proc/net/tls_stat could be read (the tls module is loaded)", tls_stat_present, NULL },
	{ "ktls_kernel_sessions", GAUGE, NULL,
	  "kTLS sessions open now, by direction and offload (TlsCurr* in /proc/net/tls_stat)",
	  tls_stat_samples, NULL },
	{ "ktls_kernel_sessions_installed", COUNTER, NULL,
	  "kTLS sessions installed since boot (TlsTxSw, TlsRxSw, TlsTxDevice, TlsRxDevice)",
	  tls_stat_samples, NULL },
	{ "ktls_kernel_decrypt_errors", COUNTER, NULL,
	  "records the kernel failed to decrypt (TlsDecryptError)", tls_stat_samples, NULL },
	{ "ktls_kernel_rx_device_resyncs", COUNTER, NULL,
	  "receive resyncs requested of offload devices (TlsRxDeviceResync)", tls_stat_samples, NULL },
	{ "ktls_kernel_decrypt_retries", COUNTER, NULL,
	  "TLS 1.3 records decrypted twice because padding defeated TLS_RX_EXPECT_NO_PAD "
	  "(TlsDecryptRetry)", tls_stat_samples, NULL },
	{ "ktls_kernel_rx_no_pad_violations", COUNTER, NULL,
	  "padded records met under TLS_RX_EXPECT_NO_PAD (TlsRxNoPadViolation)", tls_stat_samples, NULL },
	{ "ktls_kernel_rekeys", COUNTER, NULL,
	  "TLS 1.3 key updates installed, by direction and result (Tls*Rekey*)", tls_stat_samples, NULL },
	{ "ktls_kernel_rx_rekeys_received", COUNTER, NULL,
	  "KeyUpdate messages received that paused decryption (TlsRxRekeyReceived)",
	  tls_stat_samples, NULL },
	{ "ktls_tls_stat_other", GAUGE, NULL,
	  "a /proc/net/tls_stat counter this ktlsctl has no metric for, by name", tls_stat_other, NULL },
	{ "ktls_kernel", INFO, NULL,
	  "whether kernel TLS is usable here (yes, no, unknown), found on loopback sockets",
	  kernel_info, NULL },
	{ "ktls_kernel_cipher", INFO, NULL,
	  "whether the kernel takes each cipher, per TLS version and direction", cipher_info, NULL },
	{ "ktls_kernel_feature", INFO, NULL,
	  "whether the kernel has each optional kTLS socket option", feature_info, NULL },
	{ "ktls_sockets", GAUGE, NULL,
	  "kTLS sockets on the machine, by owner process (sock_diag)", sockets_by_owner, NULL },
	{ "ktls_sessions_running", GAUGE, NULL,
	  "ktlsctl sessions that answered on their control sockets", sessions_running, NULL },
	{ "ktls_session_records_current_key", GAUGE, NULL,
	  "records protected by the current traffic key", session_samples, "records_key" },
	{ "ktls_session_key_record_limit", GAUGE, NULL,
	  "the cipher's confidentiality limit: records one key may protect", session_samples,
	  "limit" },
	{ "ktls_session_key_limit_used_ratio", GAUGE, "ratio",
	  "records under the current key as a share of the cipher's limit (alert at 0.9)",
	  session_samples, "limit_used" },
	{ "ktls_session_records", COUNTER, NULL,
	  "records since the handshake", session_samples, "records" },
	{ "ktls_session_bytes", COUNTER, "bytes",
	  "application data bytes since the handshake", session_samples, "bytes" },
	{ "ktls_session_key_updates", COUNTER, NULL,
	  "TLS 1.3 key updates since the handshake", session_samples, "key_updates" },
	{ "ktls_session_tickets", COUNTER, NULL,
	  "session tickets received", session_samples, ".tickets" },
	{ "ktls_session_uptime_seconds", GAUGE, "seconds",
	  "seconds since the handshake", session_samples, ".uptime" },
};
#define NFAMILIES (sizeof families / sizeof families[0])

const char *kc_metrics_content_type(enum kc_metrics_format fmt)
{
	return fmt == KC_METRICS_OPENMETRICS
		? "application/openmetrics-text; version=1.0.0; charset=utf-8"
		: "text/plain; version=0.0.4; charset=utf-8";
}

char *kc_metrics_render(const struct kc_view *report, enum kc_metrics_format fmt,
			struct kc_err *err)
{
	char *text = NULL;
	size_t len = 0;
	struct out o = { .f = open_memstream(&text, &len), .fmt = fmt };
	if (!o.f) {
		kc_err_set(err, KC_E_INTERNAL, "out of memory rendering the metrics");
		return NULL;
	}
	for (size_t i = 0; i < NFAMILIES; i++) {
		put_header(&o, &families[i]);
		families[i].samples(&o, &families[i], report);
	}
	if (fmt == KC_METRICS_OPENMETRICS)
		fputs("# EOF\n", o.f);
	if (fclose(o.f) != 0) {
		free(text);
		kc_err_set(err, KC_E_INTERNAL, "out of memory rendering the metrics");
		return NULL;
	}
	return text;
}

bool kc_metrics_family(size_t i, struct kc_metric_info *out)
{
	if (i >= NFAMILIES)
		return false;
	*out = (struct kc_metric_info){
		.name = families[i].name,
		.type = families[i].type == COUNTER ? "counter" : families[i].type == INFO ? "info" : "gauge",
		.unit = families[i].unit,
		.help = families[i].help,
	};
	return true;
}
