/* cli/report.c: what /stats and /tickets show, and saving the session. */
#include "config.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/msg.h"
#include "cli/out.h"
#include "cli/report.h"
#include "core/sessfile.h"

void cli_describe_limits(const struct kc_conn *conn, char *buf, size_t len)
{
	const struct kc_record_limits *l = kc_conn_limits(conn);
	static const char *const how[] = {
		[KC_TXLIM_RECORDS] = "",
		[KC_TXLIM_KERNEL_OPTION] = " (kernel TLS_TX_MAX_PAYLOAD_LEN)",
		[KC_TXLIM_WRITES] = " (writes of at most that: this kernel has no "
				    "TLS_TX_MAX_PAYLOAD_LEN)",
	};

	snprintf(buf, len, "send up to %zu bytes a record%s, receive up to %zu%s%s", l->tx,
		 l->tx < KC_MAX_PLAINTEXT ? how[l->tx_how] : "", l->rx,
		 l->rx < KC_MAX_PLAINTEXT && !l->rx_exact ? " (checked on average: the kernel "
							     "merges records)" : "",
		 l->rx_no_pad ? "; TLS_RX_EXPECT_NO_PAD on" : "");
}

void cli_print_stats(FILE *out, struct kc_conn *conn, const struct kc_session_info *info)
{
	struct kc_err err = { 0 };
	struct kc_view *root = kc_view_new();
	struct kc_view *s = kc_view_object(root, "session", NULL);

	if (kc_session_view(s, conn, info, &err) < 0) {
		cli_error("%s", err.msg);
	} else {
		kc_session_view_label(s);
		kc_view_set_label(s, "session %d", (int)getpid());
		cli_print_view(out, root, CLI_FULL);
	}
	kc_view_free(root);
}

void cli_print_tickets(FILE *out, const struct kc_conn *conn)
{
	const struct kc_ticket_store *st = kc_conn_ticket_store(conn);

	if (st->n == 0) {
		fprintf(out, "no session tickets received%s\n",
			kc_conn_version(conn) == KC_TLS12
				? " after the handshake (TLS 1.2 tickets come inside it)" : "");
		return;
	}
	fprintf(out, "  %-3s %-8s %9s %-10s %-18s %7s %-16s %s\n", "#", "arrived", "lifetime",
		"age_add", "nonce", "length", "sha256[0..8]", "max_early_data");
	for (size_t i = 0; i < st->n; i++) {
		const struct kc_ticket_entry *e = &st->e[i];
		char when[16], nonce[19], hash[17], early[16] = "-";
		struct tm tm;
		localtime_r(&e->arrived, &tm);
		strftime(when, sizeof when, "%H:%M:%S", &tm);
		size_t k = 0;
		for (size_t j = 0; j < e->info.nonce_len && k + 3 <= sizeof nonce; j++)
			k += (size_t)snprintf(nonce + k, sizeof nonce - k, "%02x", e->info.nonce[j]);
		if (e->info.nonce_len * 2 + 1 > sizeof nonce)
			memcpy(nonce + sizeof nonce - 3, "..", 3);
		if (k == 0)
			snprintf(nonce, sizeof nonce, "(empty)");
		kc_ticket_format_hash(&e->info, hash);
		if (e->info.has_max_early_data)
			snprintf(early, sizeof early, "%" PRIu32, e->info.max_early_data);
		fprintf(out, "%s %-3zu %-8s %8" PRIu32 "s 0x%08" PRIx32 " %-18s %7zu %-16s %s\n",
			i + 1 == st->n ? "*" : " ", i + 1, when, e->info.lifetime, e->info.age_add,
			nonce, e->info.ticket_len, hash, early);
	}
	fprintf(out, "  * the ticket GnuTLS will offer to resume (each new one replaces the last)%s\n",
		st->total > st->n ? "; older tickets dropped from this list" : "");
}

void cli_peer_name(const struct cli_opts *o, char *buf, size_t len)
{
	bool v6 = strchr(o->hp.host, ':') != NULL;
	snprintf(buf, len, "%s%s%s:%s", v6 ? "[" : "", o->hp.host, v6 ? "]" : "", o->hp.port);
}

int cli_save_session(gnutls_session_t session, const struct cli_opts *o, const char *file,
		     struct kc_err *err)
{
	gnutls_datum_t data = { 0 };
	char peer[KC_HOST_MAX + KC_PORT_MAX + 4];

	if (o->tls.role != KC_CLIENT)
		return kc_err_set(err, KC_E_USAGE, "only a client can save a session to resume");
	/* Under TLS 1.3, asking GnuTLS before a ticket arrived would make it
	 * read from the socket, which belongs to the channel now. */
	if (gnutls_protocol_get_version(session) == GNUTLS_TLS1_3 &&
	    !(gnutls_session_get_flags(session) & GNUTLS_SFLAGS_SESSION_TICKET))
		return kc_err_set(err, KC_E_USAGE,
				  "no session ticket received yet: nothing to save");
	int rc = gnutls_session_get_data2(session, &data);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "cannot get the session from GnuTLS: %s",
				  gnutls_strerror(rc));
	cli_peer_name(o, peer, sizeof peer);
	rc = kc_sessfile_save(file, peer, &data, err);
	gnutls_memset(data.data, 0, data.size);
	gnutls_free(data.data);
	return rc;
}
