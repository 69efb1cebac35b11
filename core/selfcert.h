/* core/selfcert.h: an ephemeral self-signed certificate for loopback use
 * (selftest): ECDSA P-256, valid for localhost, 127.0.0.1 and ::1 for one
 * day.  It is its own CA, so a client can verify it normally. */
#ifndef KC_SELFCERT_H
#define KC_SELFCERT_H

#include <gnutls/gnutls.h>

#include "core/err.h"

struct kc_selfcert {
	gnutls_datum_t cert_pem;
	gnutls_datum_t key_pem;
};

int kc_selfcert_generate(struct kc_selfcert *out, struct kc_err *err);
void kc_selfcert_free(struct kc_selfcert *sc);

#endif
