/* cli/report.h: what /stats and /tickets show, and saving the session. */
#ifndef CLI_REPORT_H
#define CLI_REPORT_H

#include <stdio.h>
#include <gnutls/gnutls.h>

#include "cli/opts.h"
#include "core/conn.h"
#include "core/diag/session_view.h"

/* The session's report (core/diag/session_view.h), in full, as `ktlsctl
 * stats PID` shows it. */
void cli_print_stats(FILE *out, struct kc_conn *conn, const struct kc_session_info *info);

/* "send up to 512 bytes a record (kernel TLS_TX_MAX_PAYLOAD_LEN), receive
 * up to 16384; TLS_RX_EXPECT_NO_PAD on": the record sizes in force. */
void cli_describe_limits(const struct kc_conn *conn, char *buf, size_t len);
void cli_print_tickets(FILE *out, const struct kc_conn *conn);

/* The peer a saved session belongs to: "host:port" as given. */
void cli_peer_name(const struct cli_opts *o, char *buf, size_t len);

/* Save the resumable session to file (0600, atomically). */
int cli_save_session(gnutls_session_t session, const struct cli_opts *o, const char *file,
		     struct kc_err *err);

#endif
