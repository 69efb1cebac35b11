/* core/diag/hsinfo_view.c: the handshake report as a view tree (see
 * hsinfo_view.h). */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/diag/hsinfo_view.h"

/* ISO 8601 in UTC: what people and scripts both read without a zone. */
static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "unknown");
}

static void time_or_null(struct kc_view *obj, const char *key, const char *label, time_t t)
{
	char when[32];
	if (!t) {
		kc_view_null(obj, key, label);
		return;
	}
	iso_time(t, when, sizeof when);
	kc_view_string(obj, key, label, "%s", when);
}

static void certificate(struct kc_view *arr, const struct kc_cert_info *c, size_t i)
{
	char from[32], to[32], sans[1024] = "";
	size_t off = 0;

	struct kc_view *o = kc_view_object(arr, NULL, NULL);
	kc_view_string(o, "subject", "subject", "%s", c->subject);
	kc_view_string(o, "issuer", "issuer", "%s", c->issuer);
	iso_time(c->not_before, from, sizeof from);
	iso_time(c->not_after, to, sizeof to);
	kc_view_string(o, "not_before", "valid from", "%s", from);
	kc_view_string(o, "not_after", "valid until", "%s", to);
	kc_view_string(o, "key_type", "key type", "%s", c->key_type);
	kc_view_uint(o, "key_bits", "key bits", c->key_bits);
	struct kc_view *s = kc_view_array(o, "sans", "subject alternative names");
	for (size_t j = 0; j < c->n_sans; j++) {
		kc_view_string(s, NULL, NULL, "%s", c->sans[j]);
		int n = snprintf(sans + off, sizeof sans - off, "%s%s", j ? "," : "", c->sans[j]);
		if (n > 0 && (size_t)n < sizeof sans - off)
			off += (size_t)n;
	}
	kc_view_string(o, "sha256", "SHA-256", "%s", c->sha256);
	kc_view_set_text(o, "%zu: %s; issuer %s; %s to %s; %s %u; SAN %s; SHA-256 %s", i,
			 c->subject, c->issuer, from, to, c->key_type, c->key_bits,
			 off ? sans : "none", c->sha256);
}

int kc_hsinfo_view(struct kc_view *o, const struct kc_hsinfo *h, const char *peer,
		   struct kc_err *err)
{
	bool client = h->role == KC_CLIENT;

	kc_view_string(o, "role", "role", "%s", client ? "client" : "server");
	kc_view_string(o, "peer", "peer", "%s", peer);
	kc_view_string(o, "version", "version", "%s", h->version);
	kc_view_string(o, "suite", "cipher suite", "%s", h->suite);
	kc_view_string(o, "cipher", "record cipher", "%s", h->cipher);
	kc_view_string_or_null(o, "group", "key exchange group", h->group);
	kc_view_string_or_null(o, "signature", client ? "server's signature"
						      : "client's signature", h->signature);
	kc_view_string_or_null(o, "alpn", "ALPN", h->alpn);
	kc_view_string_or_null(o, "sni", client ? "SNI sent" : "SNI received", h->sni);
	kc_view_bool(o, "resumed", "resumed", h->resumed);
	kc_view_bool(o, "early_data", "early data accepted", h->early_data);
	kc_view_uint(o, "chain_length", client ? "server's chain length"
					       : "client's chain length", h->chain_len);
	struct kc_view *certs = kc_view_array(o, "certificates", client ? "server's certificates"
									: "client's certificates");
	for (size_t i = 0; i < h->n_certs; i++)
		certificate(certs, &h->certs[i], i);

	struct kc_view *v = kc_view_object(o, "verification", "verification");
	kc_view_string(v, "status", "status", "%s", kc_verify_status_name(h->verify));
	kc_view_string(v, "reason", "reason", "%s", h->verify_reason);
	kc_view_set_text(v, "%s: %s", kc_verify_status_name(h->verify), h->verify_reason);

	struct kc_view *oc = kc_view_object(o, "ocsp", "OCSP stapling");
	kc_view_string(oc, "status", "status", "%s", kc_ocsp_status_name(h->ocsp));
	kc_view_string_or_null(oc, "detail", "detail", h->ocsp_detail);
	time_or_null(oc, "this_update", "this update", h->ocsp_this_update);
	time_or_null(oc, "next_update", "next update", h->ocsp_next_update);
	kc_view_set_text(oc, "%s%s%s%s", kc_ocsp_status_name(h->ocsp),
			 h->ocsp_detail[0] ? " (" : "", h->ocsp_detail,
			 h->ocsp_detail[0] ? ")" : "");
	return kc_view_status(o, err);
}
