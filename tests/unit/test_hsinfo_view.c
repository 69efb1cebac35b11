/* tests/unit/test_hsinfo_view.c: the handshake report's view tree: its
 * JSON keys and values (what --info-json promises scripts) and -v's text,
 * both from the same facts. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/diag/hsinfo_view.h"
#include "core/diag/view_json.h"
#include "core/diag/view_text.h"

/* A TLS 1.3 client's report with one certificate and a good staple. */
static void fill(struct kc_hsinfo *h)
{
	memset(h, 0, sizeof *h);
	h->role = KC_CLIENT;
	strcpy(h->version, "TLS1.3");
	strcpy(h->suite, "TLS_AES_128_GCM_SHA256");
	strcpy(h->cipher, "AES-128-GCM");
	strcpy(h->group, "X25519");
	strcpy(h->signature, "ECDSA-SECP256R1-SHA256");
	strcpy(h->sni, "localhost");
	h->chain_len = h->n_certs = 1;
	struct kc_cert_info *c = &h->certs[0];
	strcpy(c->subject, "CN=localhost");
	strcpy(c->issuer, "CN=CA");
	c->not_before = 0;             /* 1970-01-01T00:00:00Z */
	c->not_after = 86400;
	strcpy(c->key_type, "ECDSA");
	c->key_bits = 256;
	strcpy(c->sans[0], "DNS:localhost");
	strcpy(c->sans[1], "IP:127.0.0.1");
	c->n_sans = 2;
	strcpy(c->sha256, "ab01");
	h->verify = KC_VERIFY_TRUSTED;
	strcpy(h->verify_reason, "The certificate is trusted.");
	h->ocsp = KC_OCSP_GOOD;
	h->ocsp_this_update = 3600;
}

Test(hsinfo_view, json_keys_and_values)
{
	struct kc_hsinfo h;
	struct kc_view *root = kc_view_new();
	struct kc_err err = { 0 };

	fill(&h);
	cr_assert_eq(kc_hsinfo_view(root, &h, "127.0.0.1:443", &err), 0);
	char *j = kc_view_json(root, &err);
	cr_assert_str_eq(j,
		"{\"role\":\"client\",\"peer\":\"127.0.0.1:443\",\"version\":\"TLS1.3\","
		"\"suite\":\"TLS_AES_128_GCM_SHA256\",\"cipher\":\"AES-128-GCM\","
		"\"group\":\"X25519\",\"signature\":\"ECDSA-SECP256R1-SHA256\",\"alpn\":null,"
		"\"sni\":\"localhost\",\"resumed\":false,\"early_data\":false,\"chain_length\":1,"
		"\"certificates\":[{\"subject\":\"CN=localhost\",\"issuer\":\"CN=CA\","
		"\"not_before\":\"1970-01-01T00:00:00Z\",\"not_after\":\"1970-01-02T00:00:00Z\","
		"\"key_type\":\"ECDSA\",\"key_bits\":256,"
		"\"sans\":[\"DNS:localhost\",\"IP:127.0.0.1\"],\"sha256\":\"ab01\"}],"
		"\"verification\":{\"status\":\"trusted\",\"reason\":\"The certificate is trusted.\"},"
		"\"ocsp\":{\"status\":\"good\",\"detail\":null,\"this_update\":\"1970-01-01T01:00:00Z\","
		"\"next_update\":null}}");
	free(j);
	kc_view_free(root);
}

Test(hsinfo_view, text)
{
	struct kc_hsinfo h;
	struct kc_view *root = kc_view_new();
	struct kc_err err = { 0 };

	fill(&h);
	h.role = KC_SERVER;
	h.ocsp = KC_OCSP_NOT_REQUESTED;
	cr_assert_eq(kc_hsinfo_view(root, &h, "127.0.0.1:5555", &err), 0);
	char *t = kc_view_text(root, KC_VIEW_FULL, &err);
	cr_assert_str_eq(t,
		"role: server\n"
		"peer: 127.0.0.1:5555\n"
		"version: TLS1.3\n"
		"cipher suite: TLS_AES_128_GCM_SHA256\n"
		"record cipher: AES-128-GCM\n"
		"key exchange group: X25519\n"
		"client's signature: ECDSA-SECP256R1-SHA256\n"
		"ALPN: -\n"
		"SNI received: localhost\n"
		"resumed: no\n"
		"early data accepted: no\n"
		"client's chain length: 1\n"
		"client's certificates:\n"
		"  0: CN=localhost; issuer CN=CA; 1970-01-01T00:00:00Z to 1970-01-02T00:00:00Z; "
		"ECDSA 256; SAN DNS:localhost,IP:127.0.0.1; SHA-256 ab01\n"
		"verification: trusted: The certificate is trusted.\n"
		"OCSP stapling: not requested\n");
	free(t);
	kc_view_free(root);
}

Test(hsinfo_view, names)
{
	cr_assert_str_eq(kc_ocsp_status_name(KC_OCSP_REVOKED), "revoked");
	cr_assert_str_eq(kc_ocsp_status_name(KC_OCSP_INVALID), "invalid");
	cr_assert_str_eq(kc_ocsp_status_name(KC_OCSP_NOT_STAPLED), "not stapled");
	cr_assert_str_eq(kc_verify_status_name(KC_VERIFY_SKIPPED), "skipped");
}
