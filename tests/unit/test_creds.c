/* tests/unit/test_creds.c: credentials shared by many sessions (a server
 * that reloads them on SIGHUP keeps the old ones for the sessions that
 * started with them), and what they say of their certificate. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <gnutls/x509.h>

#include "core/handshake.h"
#include "core/selfcert.h"

static struct kc_tls_opts server_opts(const struct kc_selfcert *cert,
				      const struct kc_selfcert *key)
{
	struct kc_tls_opts o = { .role = KC_SERVER, .cert_pem = &cert->cert_pem,
				 .key_pem = &key->key_pem };
	return o;
}

/* The SHA-256 of the certificate's DER, computed apart from core. */
static void der_sha256(const gnutls_datum_t *pem, char hex[KC_SHA256_HEX])
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t der;
	unsigned char md[32];
	size_t len = sizeof md;
	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	cr_assert_eq(gnutls_x509_crt_import(crt, pem, GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
	cr_assert_eq(gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, md, &len), 0);
	for (size_t i = 0; i < sizeof md; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	gnutls_free(der.data);
	gnutls_x509_crt_deinit(crt);
}

Test(creds, cert_info_subject_and_sha256)
{
	struct kc_selfcert sc;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_selfcert_generate(&sc, &err), 0, "%s", err.msg);
	struct kc_tls_opts o = server_opts(&sc, &sc);
	struct kc_creds *c;
	cr_assert_eq(kc_creds_new(&o, &c, &err), 0, "%s", err.msg);
	char subject[256], sha[KC_SHA256_HEX], want[KC_SHA256_HEX];
	cr_assert_eq(kc_creds_cert_info(c, 0, subject, sizeof subject, sha, &err), 0, "%s", err.msg);
	cr_assert_str_eq(subject, "CN=ktlsctl selftest");
	der_sha256(&sc.cert_pem, want);
	cr_assert_str_eq(sha, want);
	kc_creds_free(c);
	kc_selfcert_free(&sc);
}

/* Each reference is dropped on its own; the credentials stay usable
 * until the last one goes (ASan and valgrind see the rest). */
Test(creds, references)
{
	struct kc_selfcert sc;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_selfcert_generate(&sc, &err), 0, "%s", err.msg);
	struct kc_tls_opts o = server_opts(&sc, &sc);
	struct kc_creds *c;
	cr_assert_eq(kc_creds_new(&o, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_creds_ref(c), c);
	cr_assert_eq(kc_creds_ref(c), c);
	kc_creds_free(c);
	kc_creds_free(c);
	char subject[256], sha[KC_SHA256_HEX];
	cr_assert_eq(kc_creds_cert_info(c, 0, subject, sizeof subject, sha, &err), 0, "%s", err.msg);
	kc_creds_free(c);
	cr_assert_null(kc_creds_ref(NULL));
	kc_creds_free(NULL);
	kc_selfcert_free(&sc);
}

/* What a reload with a key of another certificate says. */
Test(creds, key_of_another_certificate)
{
	struct kc_selfcert a, b;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_selfcert_generate(&a, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_selfcert_generate(&b, &err), 0, "%s", err.msg);
	struct kc_tls_opts o = server_opts(&a, &b);
	struct kc_creds *c = NULL;
	cr_assert_eq(kc_creds_new(&o, &c, &err), -1);
	cr_assert_null(c);
	cr_assert_eq(err.status, KC_E_CREDENTIALS);
	cr_assert_str_eq(err.msg, "the key in '(memory)' does not belong to the certificate "
			 "in '(memory)'");
	kc_selfcert_free(&a);
	kc_selfcert_free(&b);
}

/* Processes serving one listener (listen --workers) share a ticket key:
 * one's key, copied out, replaces another's. */
Test(creds, ticket_key_shared)
{
	struct kc_selfcert sc;
	struct kc_err err = { 0 };
	cr_assert_eq(kc_selfcert_generate(&sc, &err), 0, "%s", err.msg);
	struct kc_tls_opts o = server_opts(&sc, &sc);
	struct kc_creds *a, *b;
	cr_assert_eq(kc_creds_new(&o, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_creds_new(&o, &b, &err), 0, "%s", err.msg);
	unsigned char ka[KC_TICKET_KEY_SIZE], kb[KC_TICKET_KEY_SIZE];
	cr_assert_eq(kc_creds_ticket_key(a, ka, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_creds_ticket_key(b, kb, &err), 0, "%s", err.msg);
	cr_assert_neq(memcmp(ka, kb, sizeof ka), 0, "two credentials made the same key");
	cr_assert_eq(kc_creds_set_ticket_key(b, ka, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_creds_ticket_key(b, kb, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(ka, kb, sizeof ka), 0);
	kc_creds_free(a);
	kc_creds_free(b);
	/* a client's credentials have none */
	struct kc_tls_opts co = { .role = KC_CLIENT, .insecure = true };
	struct kc_creds *c;
	cr_assert_eq(kc_creds_new(&co, &c, &err), 0, "%s", err.msg);
	cr_assert_eq(kc_creds_ticket_key(c, ka, &err), -1);
	cr_assert_eq(kc_creds_set_ticket_key(c, ka, &err), -1);
	kc_creds_free(c);
	kc_selfcert_free(&sc);
}
