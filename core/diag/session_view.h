/* core/diag/session_view.h: one running session's report, as a view tree.
 *
 * The one description of a session: what its control socket answers
 * (core/ctl.h: the tree as JSON), what its /stats command shows, and what
 * `ktlsctl stats` and `tickets` print, as text or JSON.  The values are
 * built here from the connection (kc_session_view, kc_tickets_view); the
 * words for people (labels, titles, the summary line) are set from the
 * values by kc_*_view_label, on a tree just built as on one read back from
 * a session's JSON, so both read the same.
 *
 * Session (keys of man/ktlsctl.1, JSON OUTPUT):
 *   pid, session (a serving process's session id, when it has one), role,
 *   peer, channel, version, cipher, suite (when GnuTLS has
 *   gnutls_ciphersuite_get), resumed, sni (a server's, when the client
 *   sent one), alpn (when negotiated),
 *   tx, rx: {records_key, records, bytes, key_updates, limit,
 *            limit_used (percent, 4 decimals), record_size,
 *            tx: record_size_by; rx: record_size_exact, no_pad},
 *   rekey_point, at_rekey_point ("update" | "close"; both absent when
 *   the cipher has no limit), tickets, uptime.
 * Tickets: count, tickets: [{arrived, lifetime, age_add, nonce_len,
 *   length, sha256, in_use, max_early_data (when the ticket has it)}].
 * Nothing here prints or exits. */
#ifndef KC_DIAG_SESSION_VIEW_H
#define KC_DIAG_SESSION_VIEW_H

#include <time.h>
#include <gnutls/gnutls.h>

#include "core/conn.h"
#include "core/diag/view.h"
#include "core/err.h"

/* What the connection does not know about its session. */
struct kc_session_info {
	const char *role;             /* "client" / "server" */
	const char *peer;             /* "addr:port" */
	gnutls_session_t session;
	time_t started;
	unsigned long id;             /* a serving process's session id; 0: none */
};

/* Add the session's members (this process's) to the object obj, values
 * only.  0, or -1 with *err when out of memory. */
int kc_session_view(struct kc_view *obj, struct kc_conn *conn,
		    const struct kc_session_info *info, struct kc_err *err);
int kc_tickets_view(struct kc_view *obj, const struct kc_conn *conn, struct kc_err *err);

/* Labels for the members of obj (a session or tickets report), titles
 * for the tickets, and the session's one-line summary for the brief text
 * ("session 4242: client of 127.0.0.1:8443, ...", with " #7" after the
 * pid for a serving process's session 7).  Members this version
 * does not know keep their key as label. */
void kc_session_view_label(struct kc_view *obj);
void kc_tickets_view_label(struct kc_view *obj);

#endif
