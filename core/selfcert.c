/* core/selfcert.c: an ephemeral self-signed certificate (see selfcert.h). */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <time.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "core/selfcert.h"

int kc_selfcert_generate(struct kc_selfcert *out, struct kc_err *err)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	unsigned char serial[16], v4[4], v6[16];
	time_t now = time(NULL);
	int rc;

	memset(out, 0, sizeof *out);
#define TRY(call)                                                            \
	do {                                                                 \
		if ((rc = (call)) < 0)                                       \
			goto fail;                                           \
	} while (0)
	TRY(gnutls_x509_privkey_init(&key));
	TRY(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
					 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
	TRY(gnutls_x509_crt_init(&crt));
	TRY(gnutls_x509_crt_set_version(crt, 3));
	TRY(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial));
	serial[0] &= 0x7f;   /* a positive serial number */
	TRY(gnutls_x509_crt_set_serial(crt, serial, sizeof serial));
	TRY(gnutls_x509_crt_set_activation_time(crt, now - 60));
	TRY(gnutls_x509_crt_set_expiration_time(crt, now + 24 * 3600));
	TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
					  "ktlsctl selftest", strlen("ktlsctl selftest")));
	TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost",
						 strlen("localhost"), GNUTLS_FSAN_APPEND));
	inet_pton(AF_INET, "127.0.0.1", v4);
	inet_pton(AF_INET6, "::1", v6);
	TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, sizeof v4,
						 GNUTLS_FSAN_APPEND));
	TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, sizeof v6,
						 GNUTLS_FSAN_APPEND));
	/* Self-signed and used as its own trust anchor: it must be a CA. */
	TRY(gnutls_x509_crt_set_basic_constraints(crt, 1, -1));
	TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
					       GNUTLS_KEY_KEY_CERT_SIGN));
	TRY(gnutls_x509_crt_set_key(crt, key));
	TRY(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
	TRY(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out->cert_pem));
	TRY(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out->key_pem));
#undef TRY
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return 0;
fail:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	kc_selfcert_free(out);
	return kc_err_set(err, KC_E_INTERNAL, "cannot create a self-signed certificate: %s",
			  gnutls_strerror(rc));
}

void kc_selfcert_free(struct kc_selfcert *sc)
{
	if (sc->key_pem.data) {
		gnutls_memset(sc->key_pem.data, 0, sc->key_pem.size);
		gnutls_free(sc->key_pem.data);
	}
	gnutls_free(sc->cert_pem.data);
	memset(sc, 0, sizeof *sc);
}
