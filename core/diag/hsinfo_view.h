/* core/diag/hsinfo_view.h: the handshake report (core/hsinfo.h) as a view
 * tree, the one source of -v's lines and of --info-json's document.
 *
 * Keys (man/ktlsctl.1, HANDSHAKE REPORT): role, peer, version, suite,
 * cipher, group, signature, alpn, sni (null when none), resumed,
 * early_data, chain_length, certificates: [{subject, issuer, not_before,
 * not_after (ISO 8601 UTC), key_type, key_bits, sans: ["DNS:name", ...],
 * sha256}], verification: {status, reason}, ocsp: {status, detail,
 * this_update, next_update (null when none)}.
 * Nothing here prints or exits. */
#ifndef KC_DIAG_HSINFO_VIEW_H
#define KC_DIAG_HSINFO_VIEW_H

#include "core/diag/view.h"
#include "core/hsinfo.h"

/* Add the report's members, with their labels and one-line texts, to the
 * object obj; peer is "addr:port".  0, or -1 with *err (out of memory). */
int kc_hsinfo_view(struct kc_view *obj, const struct kc_hsinfo *h, const char *peer,
		   struct kc_err *err);

#endif
