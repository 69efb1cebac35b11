/* core/diag/session_view.c: a session's report as a view tree (see
 * session_view.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/diag/session_view.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/limits.h"

static void direction(struct kc_view *parent, struct kc_conn *conn, enum kc_dir dir)
{
	gnutls_cipher_algorithm_t cipher = kc_conn_cipher(conn);
	const struct kc_limit *lim = kc_limit_for(cipher);
	const struct kc_record_limits *rl = kc_conn_limits(conn);
	const struct kc_dir_stats *st = kc_conn_stats(conn, dir);
	uint64_t cur = 0, total = 0;

	kc_conn_records(conn, dir, &cur, &total);
	struct kc_view *d = kc_view_object(parent, dir == KC_TX ? "tx" : "rx", NULL);
	kc_view_uint(d, "records_key", NULL, cur);
	kc_view_uint(d, "records", NULL, total);
	kc_view_uint(d, "bytes", NULL, st->bytes);
	kc_view_uint(d, "key_updates", NULL, st->key_updates);
	kc_view_uint(d, "limit", NULL, lim ? lim->records : 0);
	kc_view_decimal(d, "limit_used", NULL, kc_limit_percent(cipher, cur), 4);
	if (dir == KC_TX) {
		kc_view_uint(d, "record_size", NULL, rl->tx);
		kc_view_string(d, "record_size_by", NULL, "%s", kc_tx_limit_how_name(rl->tx_how));
	} else {
		kc_view_uint(d, "record_size", NULL, rl->rx);
		kc_view_bool(d, "record_size_exact", NULL, rl->rx_exact);
		kc_view_bool(d, "no_pad", NULL, rl->rx_no_pad);
	}
}

static const char *or_unknown(const char *s)
{
	return s ? s : "unknown";
}

int kc_session_view(struct kc_view *o, struct kc_conn *conn,
		    const struct kc_session_info *info, struct kc_err *err)
{
	time_t now = time(NULL);

	kc_view_uint(o, "pid", NULL, (uint64_t)getpid());
	if (info->id)
		kc_view_uint(o, "session", NULL, info->id);
	kc_view_string(o, "role", NULL, "%s", info->role);
	kc_view_string(o, "peer", NULL, "%s", info->peer);
	kc_view_string(o, "channel", NULL, "%s", kc_conn_channel_name(conn));
	kc_view_string(o, "version", NULL, "%s",
		       or_unknown(gnutls_protocol_get_name(gnutls_protocol_get_version(info->session))));
	kc_view_string(o, "cipher", NULL, "%s", kc_cipher_name(kc_conn_cipher(conn)));
#ifdef HAVE_GNUTLS_CIPHERSUITE_GET
	kc_view_string(o, "suite", NULL, "%s", or_unknown(gnutls_ciphersuite_get(info->session)));
#endif
	kc_view_bool(o, "resumed", NULL, gnutls_session_is_resumed(info->session));
	char name[256];
	if (strcmp(info->role, "server") == 0 && kc_tls_server_name(info->session, name, sizeof name))
		kc_view_string(o, "sni", NULL, "%s", name);
	if (kc_tls_alpn(info->session, name, sizeof name))
		kc_view_string(o, "alpn", NULL, "%s", name);
	direction(o, conn, KC_TX);
	direction(o, conn, KC_RX);
	uint64_t point = kc_conn_rekey_point(conn);
	if (point != UINT64_MAX) {
		kc_view_uint(o, "rekey_point", NULL, point);
		/* TLS 1.2 cannot update keys: the session closes there. */
		kc_view_string(o, "at_rekey_point", NULL, "%s",
			       kc_conn_version(conn) == KC_TLS13 ? "update" : "close");
	}
	kc_view_uint(o, "tickets", NULL, kc_conn_tickets(conn));
	kc_view_uint(o, "uptime", NULL, now > info->started ? (uint64_t)(now - info->started) : 0);
	return kc_view_status(o, err);
}

int kc_tickets_view(struct kc_view *o, const struct kc_conn *conn, struct kc_err *err)
{
	const struct kc_ticket_store *st = kc_conn_ticket_store(conn);

	kc_view_uint(o, "count", NULL, st->n);
	struct kc_view *list = kc_view_array(o, "tickets", NULL);
	for (size_t i = 0; i < st->n; i++) {
		const struct kc_ticket_entry *e = &st->e[i];
		char hash[17];
		struct kc_view *t = kc_view_object(list, NULL, NULL);
		kc_ticket_format_hash(&e->info, hash);
		kc_view_uint(t, "arrived", NULL, e->arrived > 0 ? (uint64_t)e->arrived : 0);
		kc_view_uint(t, "lifetime", NULL, e->info.lifetime);
		kc_view_uint(t, "age_add", NULL, e->info.age_add);
		kc_view_uint(t, "nonce_len", NULL, e->info.nonce_len);
		kc_view_uint(t, "length", NULL, e->info.ticket_len);
		kc_view_string(t, "sha256", NULL, "%s", hash);
		kc_view_bool(t, "in_use", NULL, i + 1 == st->n);
		if (e->info.has_max_early_data)
			kc_view_uint(t, "max_early_data", NULL, e->info.max_early_data);
	}
	return kc_view_status(o, err);
}

/* ------------------------------------------------------- words for people */

struct label {
	const char *key, *label;
};

static const struct label session_labels[] = {
	{ "pid", "pid" }, { "session", "serving session" }, { "role", "role" }, { "peer", "peer" },
	{ "channel", "record channel" }, { "version", "version" }, { "cipher", "cipher" },
	{ "suite", "cipher suite" }, { "resumed", "resumed" },
	{ "sni", "server name (SNI)" }, { "alpn", "ALPN protocol" },
	{ "tx", "send" }, { "rx", "receive" },
	{ "records_key", "records under the current key" }, { "records", "records in all" },
	{ "bytes", "bytes" }, { "key_updates", "key updates" },
	{ "limit", "confidentiality limit (records, 0 = none)" },
	{ "limit_used", "limit used (%)" },
	{ "record_size", "record size limit (bytes)" }, { "record_size_by", "record size kept by" },
	{ "record_size_exact", "every record checked" }, { "no_pad", "TLS_RX_EXPECT_NO_PAD" },
	{ "rekey_point", "rekey point (records under one key)" },
	{ "at_rekey_point", "at the rekey point" },
	{ "tickets", "tickets held" }, { "uptime", "uptime (s)" },
	{ NULL, NULL },
};

static const struct label ticket_labels[] = {
	{ "count", "tickets" }, { "tickets", "ticket list" },
	{ "arrived", "arrived (unix time)" }, { "lifetime", "lifetime (s)" },
	{ "age_add", "age_add" }, { "nonce_len", "nonce length" }, { "length", "ticket length" },
	{ "sha256", "sha256[0..8]" }, { "in_use", "used to resume" },
	{ "max_early_data", "max_early_data" },
	{ NULL, NULL },
};

/* The members of v and of the objects and arrays below it. */
static void set_labels(struct kc_view *v, const struct label *table)
{
	for (struct kc_view *c = v->first; c; c = c->next) {
		for (const struct label *l = table; c->key && l->key; l++)
			if (strcmp(c->key, l->key) == 0)
				kc_view_set_label(c, "%s", l->label);
		set_labels(c, table);
	}
}

/* A member's value as the text shows it, "?" when it is missing. */
static const char *member(const struct kc_view *o, const char *key, char *buf, size_t len)
{
	const struct kc_view *v = kc_view_get(o, key);
	return v ? kc_view_value_text(v, buf, len) : "?";
}

void kc_session_view_label(struct kc_view *o)
{
	char pid[24], num[24], id[32] = "", role[16], peer[64], version[16], cipher[32],
		channel[16], sent[24], received[24], up[24];
	const struct kc_view *tx = kc_view_get(o, "tx"), *rx = kc_view_get(o, "rx");

	set_labels(o, session_labels);
	if (kc_view_get(o, "session"))
		snprintf(id, sizeof id, " #%s", member(o, "session", num, sizeof num));
	kc_view_set_summary(o, "session %s%s: %s %s %s %s, %s channel, %s bytes sent, %s received, "
			    "up %ss", member(o, "pid", pid, sizeof pid), id,
			    member(o, "role", role, sizeof role), member(o, "peer", peer, sizeof peer),
			    member(o, "version", version, sizeof version),
			    member(o, "cipher", cipher, sizeof cipher),
			    member(o, "channel", channel, sizeof channel),
			    member(tx, "bytes", sent, sizeof sent),
			    member(rx, "bytes", received, sizeof received),
			    member(o, "uptime", up, sizeof up));
}

void kc_tickets_view_label(struct kc_view *o)
{
	unsigned n = 0;

	set_labels(o, ticket_labels);
	const struct kc_view *list = kc_view_get(o, "tickets");
	for (struct kc_view *t = list ? list->first : NULL; t; t = t->next)
		kc_view_set_label(t, "ticket %u", ++n);
}
