/* core/ticket.h: TLS 1.3 NewSessionTicket messages, parsed for display,
 * and the bounded list of the ones that arrived.
 *
 * GnuTLS stays the ticket store that matters (it resumes from the ticket it
 * keeps, gnutls_session_get_data2); this module only reads the
 * message so that /tickets can show what arrived.  It keeps no ticket and
 * no secret: only the ticket's length and a short hash. */
#ifndef KC_TICKET_H
#define KC_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

#define KC_TICKET_LIFETIME_MAX 604800u  /* 7 days, RFC 8446 §4.6.1 */
#define KC_TICKET_STORE_MAX 16

struct kc_ticket_info {
	uint32_t lifetime;              /* seconds */
	uint32_t age_add;
	unsigned char nonce[255];
	size_t nonce_len;
	size_t ticket_len;
	unsigned char ticket_hash[8];   /* first 8 bytes of SHA-256(ticket) */
	bool has_max_early_data;        /* an early_data extension was present */
	uint32_t max_early_data;
};

/* Parse one NewSessionTicket handshake message (RFC 8446 §4.6.1), header
 * included: msg_type 4, uint24 length, then
 *   uint32 ticket_lifetime; uint32 ticket_age_add;
 *   opaque ticket_nonce<0..255>; opaque ticket<1..2^16-1>;
 *   Extension extensions<0..2^16-2>;
 * Strict: every length is checked, bytes after the message or inside it
 * after the extensions are rejected, as are a lifetime over 7 days, an empty
 * ticket, an extension that appears twice and an early_data extension whose
 * body is not exactly a uint32.  Unknown extensions are skipped.
 * Errors have status KC_E_PROTOCOL (KC_E_INTERNAL if hashing fails) and
 * name the field; *out is written only on success. */
int kc_ticket_parse(const unsigned char *msg, size_t len,
		    struct kc_ticket_info *out, struct kc_err *err);

/* The ticket hash as 16 lowercase hex digits and a NUL. */
void kc_ticket_format_hash(const struct kc_ticket_info *t, char out[17]);

struct kc_ticket_entry {
	struct kc_ticket_info info;
	time_t arrived;
};

/* The tickets seen on one connection, oldest first, at most
 * KC_TICKET_STORE_MAX; `total` counts every ticket ever added, so entry i
 * is ticket number total - n + i + 1 of the connection.  Zero-initialise
 * (or kc_ticket_store_clear) before use. */
struct kc_ticket_store {
	struct kc_ticket_entry e[KC_TICKET_STORE_MAX];
	size_t n;
	uint64_t total;
};

/* Append a parsed ticket, dropping the oldest when full; returns the new
 * entry.  The last one added is the one GnuTLS will resume with: each
 * NewSessionTicket fed to GnuTLS overwrites the single ticket it keeps
 * (tls13/session_ticket.c, _gnutls13_recv_session_ticket), and
 * gnutls_session_get_data2 packs that one.  This holds only for tickets
 * GnuTLS accepted too; it is laxer than kc_ticket_parse (it takes a 0-byte
 * ticket and a lifetime over 7 days), and it clears its stored ticket
 * before parsing, so a message it rejects leaves it with none. */
const struct kc_ticket_entry *kc_ticket_store_add(struct kc_ticket_store *s,
						  const struct kc_ticket_info *info,
						  time_t arrived);

/* The newest entry (the one GnuTLS uses), NULL when empty. */
const struct kc_ticket_entry *kc_ticket_store_latest(const struct kc_ticket_store *s);

void kc_ticket_store_clear(struct kc_ticket_store *s);

#endif
