/* core/hsinfo.c: the facts of a finished handshake (see hsinfo.h). */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>

#include "core/cipher.h"
#include "core/hsinfo.h"

/* A name, or "" (GnuTLS gives NULL for what it cannot name). */
static void copy_name(char *dst, size_t len, const char *name)
{
	snprintf(dst, len, "%s", name ? name : "");
}

/* Everything that reaches a report is printable ASCII. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static void copy_datum(char *dst, size_t len, const gnutls_datum_t *d)
{
	snprintf(dst, len, "%.*s", (int)d->size, (const char *)d->data);
	printable(dst);
}

static const char *key_type_name(gnutls_pk_algorithm_t pk)
{
	switch (pk) {
	case GNUTLS_PK_RSA: return "RSA";
	case GNUTLS_PK_RSA_PSS: return "RSA-PSS";
	case GNUTLS_PK_DSA: return "DSA";
	case GNUTLS_PK_ECDSA: return "ECDSA";
	case GNUTLS_PK_EDDSA_ED25519: return "Ed25519";
	case GNUTLS_PK_EDDSA_ED448: return "Ed448";
	default: return gnutls_pk_get_name(pk);
	}
}

/* The subject alternative names, as "TYPE:value". */
static void read_sans(gnutls_x509_crt_t crt, struct kc_cert_info *ci)
{
	for (unsigned i = 0; ci->n_sans < KC_HSINFO_MAX_SANS; i++) {
		unsigned char buf[256];
		size_t size = sizeof buf;
		unsigned critical;
		int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, &critical);
		if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue;   /* too long for a report line: left out */
		if (type < 0)
			break;      /* the last one, or an extension GnuTLS cannot read */
		char *out = ci->sans[ci->n_sans];
		char addr[INET6_ADDRSTRLEN];
		switch (type) {
		case GNUTLS_SAN_DNSNAME:
			snprintf(out, 256, "DNS:%.*s", (int)size, (const char *)buf);
			break;
		case GNUTLS_SAN_RFC822NAME:
			snprintf(out, 256, "email:%.*s", (int)size, (const char *)buf);
			break;
		case GNUTLS_SAN_URI:
			snprintf(out, 256, "URI:%.*s", (int)size, (const char *)buf);
			break;
		case GNUTLS_SAN_IPADDRESS:
			if ((size != 4 && size != 16) ||
			    !inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, addr, sizeof addr))
				continue;
			snprintf(out, 256, "IP:%s", addr);
			break;
		default:
			continue;   /* other names (directory, otherName) are rare here */
		}
		printable(out);
		ci->n_sans++;
	}
}

static int read_cert(const gnutls_datum_t *der, struct kc_cert_info *ci, struct kc_err *err)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { 0 };
	unsigned char md[32];
	size_t mdlen = sizeof md;
	int rc;

	memset(ci, 0, sizeof *ci);
	if ((rc = gnutls_fingerprint(GNUTLS_DIG_SHA256, der, md, &mdlen)) < 0 ||
	    mdlen != sizeof md)
		return kc_err_set(err, KC_E_INTERNAL, "cannot hash the peer's certificate: %s",
				  gnutls_strerror(rc));
	for (size_t i = 0; i < sizeof md; i++)
		snprintf(ci->sha256 + 2 * i, 3, "%02x", md[i]);
	if ((rc = gnutls_x509_crt_init(&crt)) < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS: %s", gnutls_strerror(rc));
	if ((rc = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER)) < 0) {
		gnutls_x509_crt_deinit(crt);
		return kc_err_set(err, KC_E_PROTOCOL, "cannot read the peer's certificate: %s",
				  gnutls_strerror(rc));
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		copy_datum(ci->subject, sizeof ci->subject, &dn);
		gnutls_free(dn.data);
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0) == 0) {
		copy_datum(ci->issuer, sizeof ci->issuer, &dn);
		gnutls_free(dn.data);
	}
	ci->not_before = gnutls_x509_crt_get_activation_time(crt);
	ci->not_after = gnutls_x509_crt_get_expiration_time(crt);
	int pk = gnutls_x509_crt_get_pk_algorithm(crt, &ci->key_bits);
	copy_name(ci->key_type, sizeof ci->key_type,
		  pk < 0 ? "unknown" : key_type_name((gnutls_pk_algorithm_t)pk));
	read_sans(crt, ci);
	gnutls_x509_crt_deinit(crt);
	return 0;
}

const char *kc_ocsp_status_name(enum kc_ocsp_status st)
{
	static const char *const names[] = {
		[KC_OCSP_NOT_REQUESTED] = "not requested", [KC_OCSP_GOOD] = "good",
		[KC_OCSP_REVOKED] = "revoked", [KC_OCSP_UNKNOWN] = "unknown",
		[KC_OCSP_MISSING] = "missing", [KC_OCSP_INVALID] = "invalid",
		[KC_OCSP_STAPLED] = "stapled", [KC_OCSP_NOT_STAPLED] = "not stapled",
	};
	return names[st];
}

const char *kc_verify_status_name(enum kc_verify_status st)
{
	static const char *const names[] = {
		[KC_VERIFY_TRUSTED] = "trusted", [KC_VERIFY_SKIPPED] = "skipped",
		[KC_VERIFY_NOT_REQUESTED] = "not requested", [KC_VERIFY_FAILED] = "failed",
	};
	return names[st];
}

/* The certificate that issued the peer's: the next one of the chain it
 * sent when that one did, else one of our trusted CAs.  *owned: the
 * caller deinitialises it. */
static gnutls_x509_crt_t find_issuer(gnutls_session_t s, gnutls_x509_crt_t leaf,
				     const gnutls_datum_t *chain, unsigned n, bool *owned)
{
	gnutls_x509_crt_t issuer = NULL;
	*owned = false;
	for (unsigned i = 1; i < n; i++) {
		if (gnutls_x509_crt_init(&issuer) < 0)
			return NULL;
		if (gnutls_x509_crt_import(issuer, &chain[i], GNUTLS_X509_FMT_DER) == 0 &&
		    gnutls_x509_crt_check_issuer(leaf, issuer)) {
			*owned = true;
			return issuer;
		}
		gnutls_x509_crt_deinit(issuer);
		issuer = NULL;
	}
	void *cred = NULL;
	if (gnutls_credentials_get(s, GNUTLS_CRD_CERTIFICATE, &cred) < 0 || !cred ||
	    gnutls_certificate_get_issuer(cred, leaf, &issuer, 0) < 0)
		return NULL;
	return issuer;   /* GnuTLS's own copy: not ours to free */
}

enum kc_ocsp_status kc_ocsp_check(gnutls_session_t s, char *detail, size_t len,
				  time_t *this_update, time_t *next_update)
{
	gnutls_datum_t raw = { 0 };
	gnutls_ocsp_resp_t resp = NULL;
	gnutls_x509_crt_t leaf = NULL, issuer = NULL;
	bool owned = false;
	enum kc_ocsp_status st = KC_OCSP_INVALID;
	unsigned n = 0, verify = 0;
	int rc;

	detail[0] = '\0';
	*this_update = *next_update = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
	if (gnutls_ocsp_status_request_get2(s, 0, &raw) < 0 || raw.size == 0)
		return KC_OCSP_MISSING;
	if (!chain || n == 0) {
		snprintf(detail, len, "no certificate to check it against");
		return KC_OCSP_INVALID;
	}
	if (gnutls_ocsp_resp_init(&resp) < 0 || gnutls_x509_crt_init(&leaf) < 0 ||
	    gnutls_x509_crt_import(leaf, &chain[0], GNUTLS_X509_FMT_DER) < 0) {
		snprintf(detail, len, "cannot read the certificate");
		goto out;
	}
	if ((rc = gnutls_ocsp_resp_import(resp, &raw)) < 0) {
		snprintf(detail, len, "unreadable response: %s", gnutls_strerror(rc));
		goto out;
	}
	if ((rc = gnutls_ocsp_resp_get_status(resp)) != GNUTLS_OCSP_RESP_SUCCESSFUL) {
		snprintf(detail, len, "the responder answered with error %d", rc);
		goto out;
	}
	if (gnutls_ocsp_resp_check_crt(resp, 0, leaf) != 0) {
		snprintf(detail, len, "the response is about another certificate");
		goto out;
	}
	issuer = find_issuer(s, leaf, chain, n, &owned);
	if (!issuer) {
		snprintf(detail, len, "the certificate's issuer is unknown: cannot check the "
			 "response's signature");
		goto out;
	}
	if ((rc = gnutls_ocsp_resp_verify_direct(resp, issuer, &verify, 0)) < 0 || verify) {
		snprintf(detail, len, "the response's signature does not verify (%s)",
			 rc < 0 ? gnutls_strerror(rc) : "not signed by the issuer or its responder");
		goto out;
	}
	unsigned cert_status = 0, reason = 0;
	time_t revoked_at = 0;
	rc = gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cert_status,
					 this_update, next_update, &revoked_at, &reason);
	if (rc < 0) {
		snprintf(detail, len, "the response has no status: %s", gnutls_strerror(rc));
		goto out;
	}
	if (*next_update == (time_t)-1)
		*next_update = 0;
	time_t now = time(NULL);
	/* A few minutes of leeway for clocks that disagree, as GnuTLS allows. */
	if (*this_update > now + 300) {
		snprintf(detail, len, "the response is not valid yet");
		goto out;
	}
	if (*next_update && *next_update < now - 300) {
		snprintf(detail, len, "the response has expired");
		goto out;
	}
	if (cert_status == GNUTLS_OCSP_CERT_GOOD) {
		st = KC_OCSP_GOOD;
	} else if (cert_status == GNUTLS_OCSP_CERT_REVOKED) {
		struct tm tm;
		char when[32] = "";
		if (gmtime_r(&revoked_at, &tm))
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(detail, len, "revoked at %s", when);
		st = KC_OCSP_REVOKED;
	} else {
		st = KC_OCSP_UNKNOWN;
	}
out:
	if (owned)
		gnutls_x509_crt_deinit(issuer);
	if (leaf)
		gnutls_x509_crt_deinit(leaf);
	if (resp)
		gnutls_ocsp_resp_deinit(resp);
	return st;
}

static void collect_ocsp(gnutls_session_t s, const struct kc_tls_opts *o,
			 struct kc_hsinfo *h)
{
	unsigned flags = gnutls_session_get_flags(s);
	if (o->role == KC_SERVER) {
		if (!(flags & GNUTLS_SFLAGS_CLI_REQUESTED_OCSP))
			h->ocsp = KC_OCSP_NOT_REQUESTED;
		else
			h->ocsp = o->ocsp_response ? KC_OCSP_STAPLED : KC_OCSP_NOT_STAPLED;
		return;
	}
	/* GnuTLS asks for a staple in every client handshake, --ocsp or not
	 * (and rejects a certificate it says is revoked): report what came. */
	h->ocsp = kc_ocsp_check(s, h->ocsp_detail, sizeof h->ocsp_detail, &h->ocsp_this_update,
				&h->ocsp_next_update);
}

static void collect_verify(gnutls_session_t s, const struct kc_tls_opts *o, struct kc_hsinfo *h)
{
	gnutls_datum_t out = { 0 };
	unsigned status = gnutls_session_get_verify_cert_status(s);

	if (o->role == KC_CLIENT ? o->insecure : !o->verify_client) {
		h->verify = o->role == KC_CLIENT ? KC_VERIFY_SKIPPED : KC_VERIFY_NOT_REQUESTED;
		snprintf(h->verify_reason, sizeof h->verify_reason, "%s",
			 o->role == KC_CLIENT ? "not verified (--insecure)"
					      : "no client certificate asked for (--verify-client)");
		return;
	}
	h->verify = status == 0 ? KC_VERIFY_TRUSTED : KC_VERIFY_FAILED;
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0 &&
	    out.data) {
		copy_datum(h->verify_reason, sizeof h->verify_reason, &out);
		/* GnuTLS ends it with a space */
		size_t l = strlen(h->verify_reason);
		while (l && h->verify_reason[l - 1] == ' ')
			h->verify_reason[--l] = '\0';
	}
	gnutls_free(out.data);
}

int kc_hsinfo_collect(gnutls_session_t s, const struct kc_tls_opts *o, struct kc_hsinfo *h,
		      struct kc_err *err)
{
	gnutls_datum_t alpn = { 0 };
	const char *suite = NULL;

	memset(h, 0, sizeof *h);
	h->role = o->role;
	copy_name(h->version, sizeof h->version,
		  gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
#ifdef HAVE_GNUTLS_CIPHERSUITE_GET
	suite = gnutls_ciphersuite_get(s);
#endif
	copy_name(h->cipher, sizeof h->cipher, kc_cipher_name(gnutls_cipher_get(s)));
	copy_name(h->suite, sizeof h->suite, suite ? suite : h->cipher);
	gnutls_group_t group = gnutls_group_get(s);
	if (group != GNUTLS_GROUP_INVALID)
		copy_name(h->group, sizeof h->group, gnutls_group_get_name(group));
	/* The peer's signature in the handshake: the server's for a client,
	 * the client's CertificateVerify for a server. */
	int sign = o->role == KC_CLIENT ? gnutls_sign_algorithm_get(s)
					: gnutls_sign_algorithm_get_client(s);
	if (sign > 0)
		copy_name(h->signature, sizeof h->signature,
			  gnutls_sign_get_name((gnutls_sign_algorithm_t)sign));
	if (gnutls_alpn_get_selected_protocol(s, &alpn) == 0)
		copy_datum(h->alpn, sizeof h->alpn, &alpn);
	if (o->role == KC_CLIENT) {
		copy_name(h->sni, sizeof h->sni, o->sni);
	} else {
		size_t n = sizeof h->sni;
		unsigned type;
		if (gnutls_server_name_get(s, h->sni, &n, &type, 0) < 0 || type != GNUTLS_NAME_DNS)
			h->sni[0] = '\0';
	}
	printable(h->sni);
	h->resumed = gnutls_session_is_resumed(s) != 0;
	h->early_data = (gnutls_session_get_flags(s) & GNUTLS_SFLAGS_EARLY_DATA) != 0;

	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_type_get(s) == GNUTLS_CRT_X509
					      ? gnutls_certificate_get_peers(s, &n) : NULL;
	h->chain_len = chain ? n : 0;
	for (unsigned i = 0; i < h->chain_len && i < KC_HSINFO_MAX_CERTS; i++) {
		if (read_cert(&chain[i], &h->certs[i], err) < 0)
			return -1;
		h->n_certs++;
	}
	collect_verify(s, o, h);
	collect_ocsp(s, o, h);
	return 0;
}

char *kc_hsinfo_chain_pem(gnutls_session_t s, size_t *len, struct kc_err *err)
{
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
	char *all = NULL;
	size_t size = 0;

	if (!chain || n == 0) {
		kc_err_set(err, KC_E_USAGE, "the peer sent no certificate");
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		gnutls_datum_t pem = { 0 };
		int rc = gnutls_pem_base64_encode2("CERTIFICATE", &chain[i], &pem);
		char *grown = rc < 0 ? NULL : realloc(all, size + pem.size + 1);
		if (!grown) {
			gnutls_free(pem.data);
			free(all);
			kc_err_set(err, KC_E_INTERNAL, "cannot write the certificates as PEM: %s",
				   rc < 0 ? gnutls_strerror(rc) : "out of memory");
			return NULL;
		}
		all = grown;
		memcpy(all + size, pem.data, pem.size);
		size += pem.size;
		all[size] = '\0';
		gnutls_free(pem.data);
	}
	*len = size;
	return all;
}
