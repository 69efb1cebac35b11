/* core/starttls.h: the plain-text preamble of protocols that switch a
 * connection to TLS in mid-stream (SMTP's STARTTLS, PostgreSQL's
 * SSLRequest, ...), run on a connected socket before the TLS handshake.
 *
 * The preamble is read exactly: byte by byte for the line protocols, by
 * the lengths the binary ones announce, so that not one byte past the
 * server's last plain-text reply is taken from the socket (what follows
 * is the TLS handshake, GnuTLS's to read).  Every reply is bounded
 * (KC_STARTTLS_LINE_MAX a line, KC_STARTTLS_LINES a reply,
 * KC_STARTTLS_TOTAL the whole preamble). */
#ifndef KC_STARTTLS_H
#define KC_STARTTLS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define KC_STARTTLS_LINE_MAX 4096
#define KC_STARTTLS_LINES 256
#define KC_STARTTLS_TOTAL (64 * 1024)

struct kc_starttls_proto;

/* The protocol called name (case-insensitive), or NULL. */
const struct kc_starttls_proto *kc_starttls_find(const char *name);
/* The i-th protocol of the table, NULL after the last; its name. */
const struct kc_starttls_proto *kc_starttls_at(size_t i);
const char *kc_starttls_name(const struct kc_starttls_proto *p);

struct kc_starttls_opts {
	const struct kc_starttls_proto *proto;
	/* The server's name as the user gave it (XMPP's stream 'to'). */
	const char *server_name;
	/* Our own name, for SMTP's EHLO and LMTP's LHLO (NULL: "localhost"). */
	const char *client_name;
	unsigned timeout_ms;            /* the whole preamble */
	/* Each line of the transcript as it happens, printable ASCII without
	 * its line end: sent (from_server false) or received.  Binary
	 * protocols are described in words.  NULL: no transcript. */
	void (*on_line)(void *ctx, bool from_server, const char *line);
	void *line_ctx;
	/* As in kc_tls_opts: *stop set (and stop_fd readable) ends the
	 * preamble with sys_errno EINTR. */
	volatile sig_atomic_t *stop;
	int stop_fd;
};

/* Run the preamble on fd (a connected blocking socket).  0: the server
 * agreed, and the next byte on fd is its TLS handshake.  -1 with *err:
 * KC_E_STARTTLS (refused, not offered, a reply that breaks the protocol
 * or its limits, the connection closed mid-preamble; the message quotes
 * the server's reply), KC_E_TIMEOUT, or KC_E_IO. */
int kc_starttls_run(int fd, const struct kc_starttls_opts *opts, struct kc_err *err);

#endif
