/* core/handshake.c: GnuTLS credentials, session setup and the handshake. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>

#include "core/handshake.h"
#include "core/hsinfo.h"
#include "core/keys.h"

struct kc_creds {
	unsigned refs;
	gnutls_certificate_credentials_t x509;
	size_t n_certs;                /* chains loaded, in --cert order */
	/* Server: each pair as choose_pair hands it to GnuTLS, taken from
	 * x509 (the files are read once): the chain, the key, the leaf (for
	 * its names) and the --ocsp-response staple when it is about this
	 * pair.  GnuTLS's own choice compares SNI with names exactly, so a
	 * wildcard name never matched; ours matches as certificate
	 * verification does, and the staple goes with whichever pair. */
	struct pair {
		gnutls_pcert_st *chain;
		unsigned chain_len;
		gnutls_privkey_t key;
		gnutls_x509_crt_t leaf;
		gnutls_digest_algorithm_t ecdsa_hash;   /* TLS 1.3: the curve's */
		gnutls_ocsp_data_st staple;             /* response.data NULL: none */
	} pair[KC_MAX_CERTS];
	gnutls_datum_t ticket_key;     /* server: shared by all connections */
	/* server: the ClientHellos whose early data was taken, so that a
	 * replayed one is refused it (only while these credentials live) */
	gnutls_anti_replay_t anti_replay;
	struct seen {
		unsigned char key[64];
		unsigned len;
		time_t expires;
	} seen[256];
	size_t next_seen;
};

static int check_readable(const char *what, const char *path, struct kc_err *err)
{
	if (access(path, R_OK) < 0)
		return kc_err_errno(err, KC_E_CREDENTIALS, errno, "cannot read %s '%s'",
				    what, path);
	return 0;
}

static int load_trust(const struct kc_tls_opts *o, gnutls_certificate_credentials_t x509,
		      struct kc_err *err)
{
	int rc;

	if (o->ca_pem) {
		rc = gnutls_certificate_set_x509_trust_mem(x509, o->ca_pem, GNUTLS_X509_FMT_PEM);
	} else if (o->cafile) {
		if (check_readable("CA file", o->cafile, err) < 0)
			return -1;
		rc = gnutls_certificate_set_x509_trust_file(x509, o->cafile,
							    GNUTLS_X509_FMT_PEM);
		if (rc == 0)
			return kc_err_set(err, KC_E_CREDENTIALS,
					  "CA file '%s' holds no PEM certificate", o->cafile);
	} else if (o->role == KC_CLIENT && !o->insecure) {
		rc = gnutls_certificate_set_x509_system_trust(x509);
		if (rc == 0)
			return kc_err_set(err, KC_E_CREDENTIALS,
					  "the system trust store is empty: install "
					  "ca-certificates or pass --cafile");
	} else {
		return 0;
	}
	if (rc < 0)
		return kc_err_set(err, KC_E_CREDENTIALS, "cannot load CA certificates%s%s: %s",
				  o->cafile ? " from " : "", o->cafile ? o->cafile : "",
				  gnutls_strerror(rc));
	return 0;
}

static int pair_error(int rc, const char *certname, const char *keyname, struct kc_err *err)
{
	if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "the key in '%s' does not belong to the certificate in '%s'",
				  keyname, certname);
	return kc_err_set(err, KC_E_CREDENTIALS,
			  "cannot load certificate '%s' with key '%s': %s (both must be PEM)",
			  certname, keyname, gnutls_strerror(rc));
}

static int load_one_pair(const char *certfile, const char *keyfile, struct kc_creds *c,
			 struct kc_err *err)
{
	if (check_readable("certificate file", certfile, err) < 0 ||
	    check_readable("key file", keyfile, err) < 0)
		return -1;
	int rc = gnutls_certificate_set_x509_key_file(c->x509, certfile, keyfile,
						      GNUTLS_X509_FMT_PEM);
	return rc < 0 ? pair_error(rc, certfile, keyfile, err) : 0;
}

/* Every pair goes into the one credentials structure: GnuTLS then picks,
 * for each client, the chain whose names match its SNI and whose key its
 * signature algorithms allow, and the first one when no name matches. */
static int load_key_pairs(const struct kc_tls_opts *o, struct kc_creds *c, struct kc_err *err)
{
	if (o->cert_pem && o->key_pem) {
		int rc = gnutls_certificate_set_x509_key_mem(c->x509, o->cert_pem, o->key_pem,
							     GNUTLS_X509_FMT_PEM);
		if (rc < 0)
			return pair_error(rc, "(memory)", "(memory)", err);
		c->n_certs = 1;
		return 0;
	}
	if (o->n_certfiles != o->n_keyfiles)
		return kc_err_set(err, KC_E_USAGE, "--cert and --key go together: give one --key "
				  "for each --cert, in the same order");
	for (size_t i = 0; i < o->n_certfiles; i++) {
		if (load_one_pair(o->certfile[i], o->keyfile[i], c, err) < 0)
			return -1;
		c->n_certs++;
	}
	return 0;
}

/* The credentials the session's handshake started with, and what its
 * ClientHello's cipher suites allow (SUITES_*; below). */
static struct kc_creds *hs_creds(gnutls_session_t s);
static unsigned hs_suite_keys(gnutls_session_t s);
static int choose_pair(gnutls_session_t s, const struct gnutls_cert_retr_st *info,
		       gnutls_pcert_st **chain, unsigned *chain_len,
		       gnutls_ocsp_data_st **staple, unsigned *n_staples,
		       gnutls_privkey_t *key, unsigned *flags);

/* Pair i of x509 as choose_pair gives it: its chain and key copied out
 * of the credentials structure. */
static int take_pair(struct kc_creds *c, unsigned i, struct kc_err *err)
{
	struct pair *p = &c->pair[i];
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_datum_t der;
	unsigned n = 0, bits = 0;
	int rc;

	while (gnutls_certificate_get_crt_raw(c->x509, i, n, &der) == 0)
		n++;
	if (!n || !(p->chain = calloc(n, sizeof *p->chain)))
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	for (; p->chain_len < n; p->chain_len++)
		if ((rc = gnutls_certificate_get_crt_raw(c->x509, i, p->chain_len, &der)) < 0 ||
		    (rc = gnutls_pcert_import_x509_raw(&p->chain[p->chain_len], &der,
						       GNUTLS_X509_FMT_DER, 0)) < 0)
			goto fail;
	if ((rc = gnutls_x509_crt_init(&p->leaf)) < 0 ||
	    (rc = gnutls_x509_crt_import(p->leaf, &p->chain[0].cert, GNUTLS_X509_FMT_DER)) < 0 ||
	    (rc = gnutls_certificate_get_x509_key(c->x509, i, &xkey)) < 0 ||
	    (rc = gnutls_privkey_init(&p->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(p->key, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0)
		goto fail;
	xkey = NULL;   /* p->key's now */
	if (gnutls_pubkey_get_pk_algorithm(p->chain[0].pubkey, &bits) == GNUTLS_PK_ECDSA)
		p->ecdsa_hash = bits <= 256 ? GNUTLS_DIG_SHA256
			      : bits <= 384 ? GNUTLS_DIG_SHA384 : GNUTLS_DIG_SHA512;
	return 0;
fail:
	if (xkey)
		gnutls_x509_privkey_deinit(xkey);
	return kc_err_set(err, KC_E_CREDENTIALS, "cannot take certificate pair %u for serving: %s",
			  i + 1, gnutls_strerror(rc));
}

/* A server presents the pair choose_pair picks for each client. */
static int take_pairs(struct kc_creds *c, struct kc_err *err)
{
	for (unsigned i = 0; i < c->n_certs; i++)
		if (take_pair(c, i, err) < 0)
			return -1;
	gnutls_certificate_set_retrieve_function3(c->x509, choose_pair);
	return 0;
}

/* GnuTLS's anti-replay asks whether it saw this ClientHello before, for
 * as long as the ticket's age window: a ring of the last ones seen (a
 * replay older than the ring's memory still gets its early data: the
 * man page says so). */
static int anti_replay_add(void *ptr, time_t expires, const gnutls_datum_t *key,
			   const gnutls_datum_t *data)
{
	struct kc_creds *c = ptr;
	time_t now = time(NULL);
	unsigned len = key->size < sizeof c->seen[0].key ? key->size
							: (unsigned)sizeof c->seen[0].key;
	for (size_t i = 0; i < sizeof c->seen / sizeof c->seen[0]; i++)
		if (c->seen[i].len == len && c->seen[i].expires >= now &&
		    memcmp(c->seen[i].key, key->data, len) == 0)
			return GNUTLS_E_DB_ENTRY_EXISTS;
	struct seen *e = &c->seen[c->next_seen++ % (sizeof c->seen / sizeof c->seen[0])];
	memcpy(e->key, key->data, len);
	e->len = len;
	e->expires = expires;
	return 0;
}

static int anti_replay_init(struct kc_creds *c, struct kc_err *err)
{
	int rc = gnutls_anti_replay_init(&c->anti_replay);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS anti-replay: %s", gnutls_strerror(rc));
	gnutls_anti_replay_set_add_function(c->anti_replay, anti_replay_add);
	gnutls_anti_replay_set_ptr(c->anti_replay, c);
	return 0;
}

/* Whether the DER OCSP response raw (from file) is about pair idx's
 * certificate: 1 yes, 0 no, -1 with *err when it cannot be read. */
static int ocsp_matches(const char *file, const gnutls_datum_t *raw, const struct kc_creds *c,
			unsigned idx, struct kc_err *err)
{
	gnutls_datum_t der;
	gnutls_ocsp_resp_t resp = NULL;
	gnutls_x509_crt_t crt = NULL;
	int rc;
	if ((rc = gnutls_ocsp_resp_init(&resp)) < 0 ||
	    (rc = gnutls_ocsp_resp_import(resp, raw)) < 0) {
		kc_err_set(err, KC_E_CREDENTIALS, "cannot load the OCSP response '%s': %s (it must "
			   "be DER, as 'openssl ocsp -respout' writes it)", file, gnutls_strerror(rc));
		rc = -1;
	} else if ((rc = gnutls_certificate_get_crt_raw(c->x509, idx, 0, &der)) < 0 ||
		   (rc = gnutls_x509_crt_init(&crt)) < 0 ||
		   (rc = gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER)) < 0) {
		kc_err_set(err, KC_E_CREDENTIALS, "cannot read our certificate: %s",
			   gnutls_strerror(rc));
		rc = -1;
	} else {
		rc = gnutls_ocsp_resp_check_crt(resp, 0, crt) == 0;
	}
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (resp)
		gnutls_ocsp_resp_deinit(resp);
	return rc;
}

/* listen --ocsp-response: stapled as it is, whatever it says (a revoked
 * or expired response too: clients under test are to judge it, and
 * GnuTLS would refuse those), so long as it is about our certificate. */
static int load_ocsp_response(const struct kc_tls_opts *o, struct kc_creds *c,
			      struct kc_err *err)
{
	if (o->role != KC_SERVER || !o->ocsp_response)
		return 0;
	if (check_readable("OCSP response file", o->ocsp_response, err) < 0)
		return -1;
	gnutls_datum_t raw = { 0 };
	int rc = gnutls_load_file(o->ocsp_response, &raw);
	if (rc < 0)
		return kc_err_set(err, KC_E_CREDENTIALS, "cannot read the OCSP response '%s': %s",
				  o->ocsp_response, gnutls_strerror(rc));
	/* Stapled for the pair it is about (with several --cert). */
	rc = 0;
	unsigned idx = 0;
	for (; idx < c->n_certs && rc == 0; idx += rc == 0)
		rc = ocsp_matches(o->ocsp_response, &raw, c, idx, err);
	if (rc <= 0) {
		gnutls_free(raw.data);
		if (rc < 0)
			return -1;
		return kc_err_set(err, KC_E_CREDENTIALS,
				  "the OCSP response in '%s' is not about the certificate in '%s'%s",
				  o->ocsp_response, o->n_certfiles ? o->certfile[0] : "(memory)",
				  o->n_certfiles > 1 ? " or any other --cert" : "");
	}
	/* No expiry time: GnuTLS would stop stapling it then. */
	c->pair[idx].staple.response = raw;
	c->pair[idx].staple.exptime = 0;
	return 0;
}

int kc_creds_new(const struct kc_tls_opts *o, struct kc_creds **out, struct kc_err *err)
{
	struct kc_creds *c = calloc(1, sizeof *c);
	int rc;

	if (!c)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	c->refs = 1;
	rc = gnutls_certificate_allocate_credentials(&c->x509);
	if (rc < 0) {
		free(c);
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS: %s", gnutls_strerror(rc));
	}
	if (o->role == KC_SERVER && !o->cert_pem && (!o->n_certfiles || !o->n_keyfiles)) {
		kc_creds_free(c);
		return kc_err_set(err, KC_E_USAGE, "listen needs --cert FILE and --key FILE");
	}
	if (o->role == KC_SERVER && o->verify_client && !o->cafile && !o->ca_pem) {
		kc_creds_free(c);
		return kc_err_set(err, KC_E_USAGE,
				  "--verify-client needs --cafile FILE with the CA that signs "
				  "client certificates");
	}
	if (load_trust(o, c->x509, err) < 0 || load_key_pairs(o, c, err) < 0 ||
	    (o->role == KC_SERVER && take_pairs(c, err) < 0) || load_ocsp_response(o, c, err) < 0)
		goto fail;
	if (o->role == KC_SERVER) {
		rc = gnutls_session_ticket_key_generate(&c->ticket_key);
		if (rc < 0) {
			kc_err_set(err, KC_E_INTERNAL, "cannot create a ticket key: %s",
				   gnutls_strerror(rc));
			goto fail;
		}
		if (o->accept_early_data && anti_replay_init(c, err) < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	kc_creds_free(c);
	return -1;
}

struct kc_creds *kc_creds_ref(struct kc_creds *c)
{
	if (c)
		c->refs++;
	return c;
}

void kc_creds_free(struct kc_creds *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->anti_replay)
		gnutls_anti_replay_deinit(c->anti_replay);
	for (size_t i = 0; i < KC_MAX_CERTS; i++) {
		struct pair *p = &c->pair[i];
		for (unsigned k = 0; k < p->chain_len; k++)
			gnutls_pcert_deinit(&p->chain[k]);
		free(p->chain);
		if (p->key)
			gnutls_privkey_deinit(p->key);
		if (p->leaf)
			gnutls_x509_crt_deinit(p->leaf);
		gnutls_free(p->staple.response.data);
	}
	if (c->ticket_key.data) {
		gnutls_memset(c->ticket_key.data, 0, c->ticket_key.size);
		gnutls_free(c->ticket_key.data);
	}
	free(c);
}

int kc_creds_ticket_key(const struct kc_creds *c, unsigned char key[KC_TICKET_KEY_SIZE],
			struct kc_err *err)
{
	if (c->ticket_key.size != KC_TICKET_KEY_SIZE)
		return kc_err_set(err, KC_E_INTERNAL, "no session-ticket key of %d bytes",
				  KC_TICKET_KEY_SIZE);
	memcpy(key, c->ticket_key.data, KC_TICKET_KEY_SIZE);
	return 0;
}

int kc_creds_set_ticket_key(struct kc_creds *c, const unsigned char key[KC_TICKET_KEY_SIZE],
			    struct kc_err *err)
{
	if (c->ticket_key.size != KC_TICKET_KEY_SIZE)
		return kc_err_set(err, KC_E_INTERNAL, "no session-ticket key of %d bytes",
				  KC_TICKET_KEY_SIZE);
	memcpy(c->ticket_key.data, key, KC_TICKET_KEY_SIZE);
	return 0;
}

size_t kc_creds_count(const struct kc_creds *c)
{
	return c->n_certs;
}

int kc_creds_cert_info(const struct kc_creds *c, size_t i, char *subject, size_t len,
		       char sha256[KC_SHA256_HEX], struct kc_err *err)
{
	gnutls_datum_t der;
	int rc = gnutls_certificate_get_crt_raw(c->x509, (unsigned)i, 0, &der);
	if (rc < 0)
		return kc_err_set(err, KC_E_CREDENTIALS, "no certificate: %s", gnutls_strerror(rc));
	unsigned char md[32];
	size_t mdlen = sizeof md;
	rc = gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, md, &mdlen);
	if (rc < 0 || mdlen != sizeof md)
		return kc_err_set(err, KC_E_INTERNAL, "cannot hash the certificate: %s",
				  gnutls_strerror(rc));
	for (size_t j = 0; j < sizeof md; j++)
		snprintf(sha256 + 2 * j, 3, "%02x", md[j]);
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { 0 };
	if ((rc = gnutls_x509_crt_init(&crt)) < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS: %s", gnutls_strerror(rc));
	rc = gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_dn3(crt, &dn, 0);
	gnutls_x509_crt_deinit(crt);
	if (rc < 0)
		return kc_err_set(err, KC_E_CREDENTIALS, "cannot read the certificate's subject: %s",
				  gnutls_strerror(rc));
	snprintf(subject, len, "%.*s", (int)dn.size, (const char *)dn.data);
	gnutls_free(dn.data);
	/* It goes into one log line: nothing that could end or forge one. */
	for (char *p = subject; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return 0;
}

/* The i-th cipher to offer: those asked for, else the whole table in its
 * order of preference; NULL after the last. */
static const struct kc_cipher *offered(const struct kc_tls_opts *o, size_t i)
{
	if (!o->n_ciphers)
		return kc_cipher_preferred(i);
	return i < o->n_ciphers ? kc_cipher_by_gnutls(o->ciphers[i]) : NULL;
}

int kc_tls_priority(const struct kc_tls_opts *o, char *buf, size_t len,
		    struct kc_err *err)
{
	unsigned v = o->versions ? o->versions : KC_VERS_12 | KC_VERS_13;
	const struct kc_cipher *c;
	int off;

	if (o->priority) {
		off = snprintf(buf, len, "%s:%%ALLOW_SMALL_RECORDS", o->priority);
		return (size_t)off < len ? 0 : kc_err_set(err, KC_E_USAGE, "priority string too long");
	}
	/* Only ciphers the kernel can take; the version list as asked. */
	off = snprintf(buf, len, "NORMAL:-VERS-ALL%s%s:-CIPHER-ALL",
		       v & KC_VERS_13 ? ":+VERS-TLS1.3" : "",
		       v & KC_VERS_12 ? ":+VERS-TLS1.2" : "");
	for (size_t i = 0; (c = offered(o, i)) && (size_t)off < len; i++)
		off += snprintf(buf + off, len - (size_t)off, ":+%s", c->priority);
	if ((size_t)off < len)
		off += snprintf(buf + off, len - (size_t)off, ":%%ALLOW_SMALL_RECORDS");
	if ((size_t)off >= len)
		return kc_err_set(err, KC_E_INTERNAL, "priority string too long");
	return 0;
}

int kc_tls_recv_size(const struct kc_tls_opts *o, size_t *size, struct kc_err *err)
{
	unsigned v = o->versions ? o->versions : KC_VERS_12 | KC_VERS_13;
	/* GnuTLS puts its size + 1 on the wire whenever TLS 1.3 may be the
	 * version, and takes sizes of 64 to 16384 only. */
	unsigned tls13 = o->priority || (v & KC_VERS_13) ? 1 : 0;
	unsigned n = o->record_size_limit;

	*size = 0;
	if (!n)
		return 0;
	if (n - tls13 < 64 || n - tls13 > 16384)
		return kc_err_set(err, KC_E_USAGE,
				  "--record-size-limit %u cannot be announced %s: give %u to %u",
				  n, tls13 ? "while TLS 1.3 is allowed" : "in TLS 1.2 only",
				  64 + tls13, 16384 + tls13);
	*size = n - tls13;
	return 0;
}

/* TLS 1.2: which keys the client's cipher suites allow (on_handshake
 * notes them from its ClientHello). */
enum { SUITES_SEEN = 1, SUITES_RSA = 2, SUITES_ECDSA = 4 };

/* SUITES_RSA/SUITES_ECDSA of every suite GnuTLS knows, by its two-byte
 * id: read from GnuTLS's table once, not per ClientHello. */
static unsigned char suite_key_of[1 << 16];
static pthread_once_t suite_key_once = PTHREAD_ONCE_INIT;

static void suite_key_table(void)
{
	unsigned char id[2];
	gnutls_kx_algorithm_t kx;
	for (size_t k = 0; gnutls_cipher_suite_info(k, id, &kx, NULL, NULL, NULL); k++)
		suite_key_of[id[0] << 8 | id[1]] =
			kx == GNUTLS_KX_ECDHE_ECDSA ? SUITES_ECDSA
			: kx == GNUTLS_KX_ECDHE_RSA || kx == GNUTLS_KX_DHE_RSA || kx == GNUTLS_KX_RSA
			? SUITES_RSA : 0;
}

static unsigned suite_keys(const gnutls_datum_t *hello)
{
	/* version, random, session id, then the cipher suites */
	const unsigned char *m = hello->data;
	size_t n = hello->size, at = 2 + 32;
	if (n < at + 1 || n < at + 1 + m[at] + 2)
		return 0;
	at += 1 + m[at];
	size_t len = (size_t)m[at] << 8 | m[at + 1];
	at += 2;
	if (n < at + len)
		return 0;
	pthread_once(&suite_key_once, suite_key_table);
	unsigned keys = SUITES_SEEN;
	for (size_t i = 0; i + 1 < len; i += 2)
		keys |= suite_key_of[m[at + i] << 8 | m[at + i + 1]];
	return keys;
}

/* Whether the client lets p's key sign: one of its signature algorithms
 * fits the key (in TLS 1.3 not RSA PKCS#1 v1.5, and ECDSA only with the
 * key's curve's hash, as GnuTLS then requires; in TLS 1.2 one of its
 * cipher suites must take the key too).  A TLS 1.2 client that sent no
 * signature algorithms takes any key its suites allow. */
static bool key_fits(gnutls_session_t s, const struct pair *p)
{
	bool tls13 = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3;
	unsigned bits;
	int pk = gnutls_pubkey_get_pk_algorithm(p->chain[0].pubkey, &bits);
	unsigned suites = hs_suite_keys(s);
	if (!tls13 && (suites & SUITES_SEEN) &&
	    !(suites & (pk == GNUTLS_PK_RSA || pk == GNUTLS_PK_RSA_PSS ? SUITES_RSA : SUITES_ECDSA)))
		return false;
	gnutls_sign_algorithm_t sig;
	if (gnutls_sign_algorithm_get_requested(s, 0, &sig) < 0)
		return !tls13;
	for (size_t i = 0; gnutls_sign_algorithm_get_requested(s, i, &sig) == 0; i++) {
		if (!gnutls_sign_supports_pk_algorithm(sig, (gnutls_pk_algorithm_t)pk))
			continue;
		if (tls13 && gnutls_sign_get_pk_algorithm(sig) == GNUTLS_PK_RSA)
			continue;
		if (tls13 && p->ecdsa_hash && gnutls_sign_get_hash_algorithm(sig) != p->ecdsa_hash)
			continue;
		return true;
	}
	return false;
}

/* The pair for this client, in --cert order: the first whose names
 * match its SNI exactly and whose key it allows, else the same by a
 * wildcard name (as certificate verification matches them), else the
 * first whose key it allows, else the first. */
static struct pair *pick_pair(gnutls_session_t s, struct kc_creds *c)
{
	static const unsigned matching[] = { GNUTLS_VERIFY_DO_NOT_ALLOW_WILDCARDS, 0 };
	char name[256];
	if (c->n_certs == 1)
		return &c->pair[0];   /* no choice: GnuTLS refuses a client it does not suit */
	bool sni = kc_tls_server_name(s, name, sizeof name);
	for (size_t m = 0; sni && m < sizeof matching / sizeof matching[0]; m++)
		for (size_t i = 0; i < c->n_certs; i++)
			if (gnutls_x509_crt_check_hostname2(c->pair[i].leaf, name, matching[m]) &&
			    key_fits(s, &c->pair[i]))
				return &c->pair[i];
	for (size_t i = 0; i < c->n_certs; i++)
		if (key_fits(s, &c->pair[i]))
			return &c->pair[i];
	return &c->pair[0];
}

/* GnuTLS asks once a handshake, after the ClientHello, which chain to
 * present; the pair stays c's (no GNUTLS_CERT_RETR_DEINIT_ALL), which
 * outlives the session. */
static int choose_pair(gnutls_session_t s, const struct gnutls_cert_retr_st *info,
		       gnutls_pcert_st **chain, unsigned *chain_len,
		       gnutls_ocsp_data_st **staple, unsigned *n_staples,
		       gnutls_privkey_t *key, unsigned *flags)
{
	struct kc_creds *c = hs_creds(s);
	if (!c || !c->n_certs)
		return -1;
	struct pair *p = pick_pair(s, c);
	*chain = p->chain;
	*chain_len = p->chain_len;
	*key = p->key;
	*staple = p->staple.response.data ? &p->staple : NULL;
	*n_staples = p->staple.response.data ? 1 : 0;
	*flags = 0;
	return 0;
}

/* A server's one handshake hook (GnuTLS keeps one), before each message:
 * notes which keys the ClientHello's cipher suites allow; under
 * --alpn-strict, refuses before the ServerHello (the ClientHello's ALPN
 * extension read by then) a client that offered none of our protocols,
 * or none at all. */
static int on_handshake(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
			const gnutls_datum_t *msg);

/* The client's 0-RTT data, queued to go out with the ClientHello when
 * the saved session's ticket allows that much (else it waits for the
 * handshake: *early_status says which). */
static int send_early_data(gnutls_session_t s, const struct kc_tls_opts *o, struct kc_err *err)
{
	size_t max = gnutls_record_get_max_early_data_size(s);
	if (max == 0) {   /* a TLS 1.2 session, or a ticket without early_data */
		*o->early_status = KC_EARLY_NOT_ALLOWED;
		return 0;
	}
	if (o->early_data->size > max) {
		*o->early_status = KC_EARLY_TOO_BIG;
		return 0;
	}
	ssize_t rc = gnutls_record_send_early_data(s, o->early_data->data, o->early_data->size);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS early data: %s",
				  gnutls_strerror((int)rc));
	/* rejected until the handshake says otherwise */
	*o->early_status = KC_EARLY_REJECTED;
	return 0;
}

static int setup_session(gnutls_session_t s, int fd, const struct kc_tls_opts *o,
			 struct kc_creds *c, struct kc_err *err)
{
	char prio[512];
	const char *errpos = NULL;
	int rc;

	if (kc_tls_priority(o, prio, sizeof prio, err) < 0)
		return -1;
	rc = gnutls_priority_set_direct(s, prio, &errpos);
	if (rc < 0)
		return kc_err_set(err, KC_E_USAGE, "invalid priority string at '%s': %s",
				  errpos ? errpos : prio, gnutls_strerror(rc));
	rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->x509);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS: %s", gnutls_strerror(rc));
	size_t recv_size;
	if (kc_tls_recv_size(o, &recv_size, err) < 0)
		return -1;
	if (recv_size && (rc = (int)gnutls_record_set_max_recv_size(s, recv_size)) < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS cannot limit records to %zu bytes: %s",
				  recv_size, gnutls_strerror(rc));
	if (o->role == KC_CLIENT) {
		if (o->sni && (rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, o->sni,
							   strlen(o->sni))) < 0)
			return kc_err_set(err, KC_E_USAGE, "invalid server name '%s': %s",
					  o->sni, gnutls_strerror(rc));
		if (!o->insecure)
			gnutls_session_set_verify_cert(s, o->verify_name, 0);
		if (o->ocsp && (rc = gnutls_ocsp_status_request_enable_client(s, NULL, 0,
									     NULL)) < 0)
			return kc_err_set(err, KC_E_INTERNAL, "GnuTLS cannot ask for OCSP: %s",
					  gnutls_strerror(rc));
	} else {
		rc = gnutls_session_ticket_enable_server(s, &c->ticket_key);
		if (rc < 0)
			return kc_err_set(err, KC_E_INTERNAL, "GnuTLS tickets: %s",
					  gnutls_strerror(rc));
		if (o->verify_client) {
			gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
			gnutls_session_set_verify_cert(s, NULL, 0);
		}
	}
	if (o->n_alpn) {
		gnutls_datum_t protos[KC_MAX_ALPN];
		for (size_t i = 0; i < o->n_alpn; i++) {
			protos[i].data = (unsigned char *)o->alpn[i];
			protos[i].size = (unsigned)strlen(o->alpn[i]);
		}
		/* A server takes the first of ours the client offers. */
		rc = gnutls_alpn_set_protocols(s, protos, (unsigned)o->n_alpn,
					       o->role == KC_SERVER ? GNUTLS_ALPN_SERVER_PRECEDENCE
								    : 0);
		if (rc < 0)
			return kc_err_set(err, KC_E_USAGE, "invalid ALPN protocol: %s",
					  gnutls_strerror(rc));
	}
	if (o->role == KC_SERVER)
		gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_PRE,
						   on_handshake);
	if (o->role == KC_SERVER && o->accept_early_data) {
		rc = gnutls_record_set_max_early_data_size(s, KC_EARLY_MAX);
		if (rc < 0)
			return kc_err_set(err, KC_E_INTERNAL, "GnuTLS early data: %s",
					  gnutls_strerror(rc));
		if (c->anti_replay)
			gnutls_anti_replay_enable(s, c->anti_replay);
	}
	if (o->early_status)
		*o->early_status = KC_EARLY_NONE;
	if (o->role == KC_CLIENT && o->resume_data) {
		rc = gnutls_session_set_data(s, o->resume_data->data, o->resume_data->size);
		if (o->resume_status)
			*o->resume_status = rc;
		if (rc == 0 && o->early_data && o->early_status && send_early_data(s, o, err) < 0)
			return -1;
	}
	gnutls_transport_set_int(s, fd);
	gnutls_handshake_set_timeout(s, o->handshake_timeout_ms ? o->handshake_timeout_ms
							       : GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT);
	return 0;
}

/* GnuTLS's handshake timeout bounds each wait, not the handshake: a peer
 * that sends a byte now and then (slowloris) kept it going for ever.
 * These transport functions hold the whole handshake to one deadline, and
 * let only a stop end it: any other signal (a profiler's, a fuzzer's
 * timer) that cuts a wait or a read short is waited out. */
struct deadline_io {
	int fd;
	long long deadline_ms;
	volatile sig_atomic_t *stop;
	int stop_fd;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopped(const struct deadline_io *d)
{
	return d->stop && *d->stop;
}

/* 1 readable, 0 timed out, -1 with errno EINTR when stopped. */
static int deadline_wait(gnutls_transport_ptr_t p, unsigned ms)
{
	const struct deadline_io *d = p;
	long long until = d->deadline_ms, now = mono_ms();
	if (ms != GNUTLS_INDEFINITE_TIMEOUT && now + ms < until)
		until = now + ms;
	struct pollfd pf[2] = { { .fd = d->fd, .events = POLLIN },
				{ .fd = d->stop_fd, .events = POLLIN } };
	nfds_t n = d->stop && d->stop_fd >= 0 ? 2 : 1;
	for (;;) {
		if (stopped(d)) {
			errno = EINTR;
			return -1;
		}
		long long left = until - mono_ms();
		if (left <= 0)
			return 0;   /* GnuTLS then fails with GNUTLS_E_TIMEDOUT */
		int r = poll(pf, n, (int)left);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0 && pf[0].revents)
			return 1;
	}
}

static ssize_t deadline_recv(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	const struct deadline_io *d = p;
	for (;;) {
		int w = deadline_wait(p, GNUTLS_INDEFINITE_TIMEOUT);
		if (w == 0)
			errno = ETIMEDOUT;
		if (w <= 0)
			return -1;
		ssize_t r = recv(d->fd, buf, len, MSG_DONTWAIT);
		if (r >= 0 || (errno != EINTR && errno != EAGAIN))
			return r;
	}
}

static ssize_t deadline_send(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	const struct deadline_io *d = p;
	ssize_t r;
	while ((r = send(d->fd, buf, len, MSG_NOSIGNAL)) < 0 && errno == EINTR && !stopped(d))
		;
	return r;
}

/* After the handshake the transport is the plain fd again (GnuTLS does
 * not touch it once the conn owns the socket, but must never see a
 * pointer to a dead stack frame). */
static int fd_of(gnutls_transport_ptr_t p)
{
	return (int)(intptr_t)p;
}

static int fd_wait(gnutls_transport_ptr_t p, unsigned ms)
{
	struct pollfd pf = { .fd = fd_of(p), .events = POLLIN };
	return poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

static ssize_t fd_recv(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	return recv(fd_of(p), buf, len, 0);
}

static ssize_t fd_send(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	return send(fd_of(p), buf, len, MSG_NOSIGNAL);
}

static void set_transport(gnutls_session_t s, void *ptr, bool deadline)
{
	gnutls_transport_set_ptr(s, ptr);
	gnutls_transport_set_pull_function(s, deadline ? deadline_recv : fd_recv);
	gnutls_transport_set_pull_timeout_function(s, deadline ? deadline_wait : fd_wait);
	gnutls_transport_set_push_function(s, deadline ? deadline_send : fd_send);
}

static int handshake_error(gnutls_session_t s, const struct kc_tls_opts *o, int rc,
			   struct kc_err *err)
{
	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t out = { 0 };
		unsigned status = gnutls_session_get_verify_cert_status(s);
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
		while (out.data && out.size && out.data[out.size - 1] == ' ')
			out.data[--out.size] = '\0';   /* GnuTLS ends it with a space */
		/* GnuTLS checks the stapled OCSP response as part of the chain:
		 * no other CA or --cafile helps against a revoked or broken one. */
		gnutls_datum_t staple;
		bool revoked = (status & GNUTLS_CERT_REVOKED) &&
			       gnutls_ocsp_status_request_get(s, &staple) == 0;
		const char *hint = o->role != KC_CLIENT ? ""
			: revoked ? " (the server's stapled OCSP response says so)"
			: status & GNUTLS_CERT_INVALID_OCSP_STATUS
				? " (the server stapled it: see 'ktlsctl connect --ocsp --insecure')"
			: " (--cafile FILE to trust another CA, --insecure to skip the check)";
		kc_err_set(err, KC_E_VERIFY, "%s certificate rejected: %s%s",
			   o->role == KC_CLIENT ? "server" : "client",
			   out.data ? (char *)out.data : "verification failed", hint);
		gnutls_free(out.data);
		return -1;
	}
	if (rc == GNUTLS_E_TIMEDOUT)
		return kc_err_set(err, KC_E_TIMEOUT,
				  "TLS handshake timed out after %u ms: the peer stopped answering "
				  "(raise --handshake-timeout if it is just slow)",
				  o->handshake_timeout_ms);
	if (rc == GNUTLS_E_WARNING_ALERT_RECEIVED || rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(s);
		return kc_err_set(err, a == GNUTLS_A_BAD_CERTIFICATE ||
				       a == GNUTLS_A_UNKNOWN_CA ||
				       a == GNUTLS_A_CERTIFICATE_REQUIRED ? KC_E_VERIFY : KC_E_HANDSHAKE,
				  "TLS handshake failed: the peer sent alert '%s'",
				  gnutls_alert_get_name(a));
	}
	if (rc == GNUTLS_E_NO_APPLICATION_PROTOCOL)
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "TLS handshake refused: the client offered none of the --alpn "
				  "protocols (--alpn-strict); sent alert no_application_protocol");
	if (rc == GNUTLS_E_UNEXPECTED_PACKET_LENGTH || rc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
	    rc == GNUTLS_E_UNEXPECTED_PACKET)
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "TLS handshake failed: %s (is the peer speaking TLS on this port?)",
				  gnutls_strerror(rc));
	if (rc == GNUTLS_E_NO_PRIORITIES_WERE_SET || rc == GNUTLS_E_INSUFFICIENT_CREDENTIALS ||
	    rc == GNUTLS_E_NO_CIPHER_SUITES || rc == GNUTLS_E_UNKNOWN_CIPHER_SUITE)
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "TLS handshake failed: %s (no common version or cipher: "
				  "check --tls1.2/--tls1.3/--cipher)", gnutls_strerror(rc));
	if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PULL_ERROR ||
	    rc == GNUTLS_E_PUSH_ERROR)
		return kc_err_set(err, KC_E_HANDSHAKE,
				  "TLS handshake failed: the peer closed the connection (%s)",
				  gnutls_strerror(rc));
	return kc_err_set(err, KC_E_HANDSHAKE, "TLS handshake failed: %s", gnutls_strerror(rc));
}

/* TLS 1.3 secrets that only the handshake needs.  GnuTLS 3.7.9 (and 3.8)
 * keeps them in the session (session->key.proto.tls13.hs_ckey, hs_skey,
 * e_ckey, ap_expkey) until gnutls_deinit, although nothing uses them once
 * the handshake is over: ktlsctl never exports keying material, and
 * post-handshake messages only use the application traffic secrets.  The
 * key log callback is handed a pointer to each of them as it is made, so
 * we note where they are and wipe them when the handshake succeeded.  The
 * application traffic secrets stay (GnuTLS needs them for KeyUpdate), and
 * so does the TLS 1.2 master secret (CLIENT_RANDOM: it goes into the saved
 * session). */
static const char *const handshake_only[] = {
	"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
	"CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET", "EXPORTER_SECRET",
};

#define HS_SECRETS_MAX 8

struct hs_secrets {
	gnutls_keylog_func chain;      /* GnuTLS's own: SSLKEYLOGFILE */
	struct kc_creds *creds;        /* for choose_pair */
	bool alpn_strict;              /* for on_handshake */
	unsigned suite_keys;           /* SUITES_* of the ClientHello */
	unsigned n;
	struct {
		unsigned char *p;
		unsigned size;
		unsigned char digest[32];  /* SHA-256 of what *p held */
	} s[HS_SECRETS_MAX];
};

static struct kc_creds *hs_creds(gnutls_session_t s)
{
	struct hs_secrets *hs = gnutls_session_get_ptr(s);
	return hs ? hs->creds : NULL;
}

static unsigned hs_suite_keys(gnutls_session_t s)
{
	struct hs_secrets *hs = gnutls_session_get_ptr(s);
	return hs ? hs->suite_keys : 0;
}

static int on_handshake(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
			const gnutls_datum_t *msg)
{
	struct hs_secrets *hs = gnutls_session_get_ptr(s);
	gnutls_datum_t p;
	if (!hs)
		return 0;
	/* Only a choice between pairs needs the suites. */
	if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && incoming && hs->creds &&
	    hs->creds->n_certs > 1)
		hs->suite_keys = suite_keys(msg);
	if (htype == GNUTLS_HANDSHAKE_SERVER_HELLO && !incoming && hs->alpn_strict &&
	    gnutls_alpn_get_selected_protocol(s, &p) < 0)
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	return 0;
}

static int note_secret(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
	struct hs_secrets *hs = gnutls_session_get_ptr(s);
	int rc = hs && hs->chain ? hs->chain(s, label, secret) : 0;

	if (!hs || hs->n == HS_SECRETS_MAX || !secret->data || !secret->size)
		return rc;
	for (size_t i = 0; i < sizeof handshake_only / sizeof handshake_only[0]; i++) {
		if (strcmp(label, handshake_only[i]) != 0)
			continue;
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, secret->data, secret->size,
				     hs->s[hs->n].digest) == 0) {
			hs->s[hs->n].p = secret->data;
			hs->s[hs->n].size = secret->size;
			hs->n++;
		}
		break;
	}
	return rc;
}

/* Wipe each noted secret that its memory still holds (checked against
 * the digest, so nothing GnuTLS reused for something else is touched: the
 * early exporter secret, for one, is overwritten by the exporter secret in
 * the same buffer). */
static void wipe_handshake_secrets(struct hs_secrets *hs)
{
	unsigned char now[32];

	for (unsigned i = 0; i < hs->n; i++) {
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, hs->s[i].p, hs->s[i].size, now) == 0 &&
		    memcmp(now, hs->s[i].digest, sizeof now) == 0)
			gnutls_memset(hs->s[i].p, 0, hs->s[i].size);
	}
	gnutls_memset(now, 0, sizeof now);
	gnutls_memset(hs, 0, sizeof *hs);
}

/* Start a session on fd with the key log hook that notes the secrets to
 * wipe (hs must stay where it is until hs_end). */
static int hs_begin(int fd, const struct kc_tls_opts *o, struct kc_creds *c, unsigned flags,
		    struct hs_secrets *hs, gnutls_session_t *out, struct kc_err *err)
{
	gnutls_session_t s;
	/* No false start before a handover: the handshake must be over.
	 * 0-RTT data (when asked for) is all sent, or all received, within
	 * the handshake, under its own keys. */
	if ((o->role == KC_CLIENT && o->early_data && o->resume_data) ||
	    (o->role == KC_SERVER && o->accept_early_data))
		flags |= GNUTLS_ENABLE_EARLY_DATA;
	int rc = gnutls_init(&s, (o->role == KC_CLIENT ? GNUTLS_CLIENT : GNUTLS_SERVER) | flags);
	if (rc < 0)
		return kc_err_set(err, KC_E_INTERNAL, "GnuTLS: %s", gnutls_strerror(rc));
	if (setup_session(s, fd, o, c, err) < 0) {
		gnutls_deinit(s);
		return -1;
	}
	memset(hs, 0, sizeof *hs);
	hs->creds = c;
	hs->alpn_strict = o->role == KC_SERVER && o->n_alpn && o->alpn_strict;
	hs->chain = gnutls_session_get_keylog_function(s);
	gnutls_session_set_ptr(s, hs);
	gnutls_session_set_keylog_function(s, note_secret);
	*out = s;
	return 0;
}

/* --ocsp-require: a handshake that succeeded without a good stapled
 * response is refused as an unverified certificate. */
static int require_ocsp(gnutls_session_t s, const struct kc_tls_opts *o,
			gnutls_alert_description_t *alert, struct kc_err *err)
{
	char detail[256];
	time_t this_update, next_update;

	if (o->role != KC_CLIENT || !o->ocsp_require)
		return 0;
	enum kc_ocsp_status st = kc_ocsp_check(s, detail, sizeof detail, &this_update,
					       &next_update);
	*alert = st == KC_OCSP_REVOKED ? GNUTLS_A_CERTIFICATE_REVOKED : GNUTLS_A_BAD_CERTIFICATE;
	switch (st) {
	case KC_OCSP_GOOD:
		return 0;
	case KC_OCSP_MISSING:
		return kc_err_set(err, KC_E_VERIFY, "server certificate rejected: the server "
				  "stapled no OCSP response (--ocsp-require)");
	case KC_OCSP_REVOKED:
		return kc_err_set(err, KC_E_VERIFY, "server certificate rejected: its stapled "
				  "OCSP response says it was %s (--ocsp-require)", detail);
	case KC_OCSP_UNKNOWN:
		return kc_err_set(err, KC_E_VERIFY, "server certificate rejected: its stapled "
				  "OCSP response says unknown (the responder does not know it; "
				  "--ocsp-require)");
	default:
		return kc_err_set(err, KC_E_VERIFY, "server certificate rejected: its stapled "
				  "OCSP response is invalid: %s (--ocsp-require)", detail);
	}
}

/* The handshake ended with rc: wipe what only it needed, and on failure
 * say why and free the session. */
static int hs_end(gnutls_session_t s, int fd, const struct kc_tls_opts *o, int rc,
		  struct hs_secrets *hs, struct kc_err *err)
{
	gnutls_session_set_keylog_function(s, hs->chain);
	gnutls_session_set_ptr(s, NULL);
	set_transport(s, (void *)(intptr_t)fd, false);
	if (rc < 0) {
		/* GnuTLS leaves the alert to us; the one a client must see. */
		if (rc == GNUTLS_E_NO_APPLICATION_PROTOCOL)
			gnutls_alert_send(s, GNUTLS_AL_FATAL, GNUTLS_A_NO_APPLICATION_PROTOCOL);
		gnutls_memset(hs, 0, sizeof *hs);
		kc_burn_stack(KC_BURN_HANDSHAKE);
		handshake_error(s, o, rc, err);
		gnutls_deinit(s);
		return -1;
	}
	if (o->early_status && *o->early_status == KC_EARLY_REJECTED &&
	    (gnutls_session_get_flags(s) & GNUTLS_SFLAGS_EARLY_DATA))
		*o->early_status = KC_EARLY_ACCEPTED;
	wipe_handshake_secrets(hs);
	kc_burn_stack(KC_BURN_HANDSHAKE);   /* the key exchange's dead frames */
	gnutls_alert_description_t alert;
	if (require_ocsp(s, o, &alert, err) < 0) {
		/* Tell the server why (best effort: the socket may be full). */
		gnutls_alert_send(s, GNUTLS_AL_FATAL, alert);
		gnutls_deinit(s);
		return -1;
	}
	return 0;
}

int kc_tls_handshake(int fd, const struct kc_tls_opts *o, struct kc_creds *c,
		     gnutls_session_t *out, struct kc_err *err)
{
	gnutls_session_t s;
	struct hs_secrets hs;
	if (hs_begin(fd, o, c, 0, &hs, &s, err) < 0)
		return -1;
	unsigned limit = o->handshake_timeout_ms ? o->handshake_timeout_ms
						 : GNUTLS_DEFAULT_HANDSHAKE_TIMEOUT;
	struct deadline_io dio = { .fd = fd, .deadline_ms = mono_ms() + limit,
				 .stop = o->stop, .stop_fd = o->stop_fd };
	set_transport(s, &dio, true);
	int rc;
	do {
		rc = gnutls_handshake(s);
	} while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_INTERRUPTED);
	if (rc < 0 && mono_ms() >= dio.deadline_ms)
		rc = GNUTLS_E_TIMEDOUT;
	if (hs_end(s, fd, o, rc, &hs, err) < 0)
		return -1;
	*out = s;
	return 0;
}

/* ------------------------------------------------ non-blocking handshake */

struct kc_hs {
	gnutls_session_t session;
	int fd;
	struct kc_tls_opts opts;
	struct hs_secrets secrets;
};

static ssize_t nb_recv(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct kc_hs *h = p;
	ssize_t r;
	while ((r = recv(h->fd, buf, len, MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (r < 0)
		gnutls_transport_set_errno(h->session, errno);
	return r;
}

static ssize_t nb_send(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct kc_hs *h = p;
	ssize_t r;
	while ((r = send(h->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (r < 0)
		gnutls_transport_set_errno(h->session, errno);
	return r;
}

/* GnuTLS asks whether data is there; it must never wait here. */
static int nb_wait(gnutls_transport_ptr_t p, unsigned ms)
{
	struct kc_hs *h = p;
	struct pollfd pf = { .fd = h->fd, .events = POLLIN };
	return poll(&pf, 1, 0);
}

int kc_hs_start(int fd, const struct kc_tls_opts *o, struct kc_creds *c, struct kc_hs **out,
		struct kc_err *err)
{
	struct kc_hs *h = calloc(1, sizeof *h);
	if (!h)
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	h->fd = fd;
	h->opts = *o;
	if (hs_begin(fd, o, c, GNUTLS_NONBLOCK, &h->secrets, &h->session, err) < 0) {
		free(h);
		return -1;
	}
	/* The caller keeps the deadline (its loop has every session's). */
	gnutls_handshake_set_timeout(h->session, 0);
	gnutls_transport_set_ptr(h->session, h);
	gnutls_transport_set_pull_function(h->session, nb_recv);
	gnutls_transport_set_pull_timeout_function(h->session, nb_wait);
	gnutls_transport_set_push_function(h->session, nb_send);
	*out = h;
	return 0;
}

int kc_hs_step(struct kc_hs *h, bool *want_write, struct kc_err *err)
{
	int rc;
	do {
		rc = gnutls_handshake(h->session);
	} while (rc == GNUTLS_E_INTERRUPTED);
	if (rc == GNUTLS_E_AGAIN || (rc < 0 && !gnutls_error_is_fatal(rc))) {
		*want_write = gnutls_record_get_direction(h->session) == 1;
		return KC_HS_AGAIN;
	}
	gnutls_session_t s = h->session;
	h->session = NULL;
	if (hs_end(s, h->fd, &h->opts, rc, &h->secrets, err) < 0)
		return -1;
	h->session = s;
	return 0;
}

int kc_hs_timed_out(struct kc_hs *h, struct kc_err *err)
{
	gnutls_session_t s = h->session;
	h->session = NULL;
	return hs_end(s, h->fd, &h->opts, GNUTLS_E_TIMEDOUT, &h->secrets, err);
}

gnutls_session_t kc_hs_session(const struct kc_hs *h)
{
	return h->session;
}

gnutls_session_t kc_hs_take(struct kc_hs *h)
{
	gnutls_session_t s = h->session;
	h->session = NULL;
	return s;
}

void kc_hs_free(struct kc_hs *h)
{
	if (!h)
		return;
	if (h->session) {
		gnutls_session_set_keylog_function(h->session, h->secrets.chain);
		gnutls_session_set_ptr(h->session, NULL);
		gnutls_deinit(h->session);
	}
	gnutls_memset(&h->secrets, 0, sizeof h->secrets);
	free(h);
}

void kc_tls_describe(gnutls_session_t s, char *buf, size_t len)
{
	gnutls_datum_t alpn = { 0 };
	const char *suite = NULL;
#ifdef HAVE_GNUTLS_CIPHERSUITE_GET
	suite = gnutls_ciphersuite_get(s);
#endif
	int off = snprintf(buf, len, "%s %s",
			   gnutls_protocol_get_name(gnutls_protocol_get_version(s)),
			   suite ? suite : kc_cipher_name(gnutls_cipher_get(s)));
	if ((size_t)off < len && gnutls_alpn_get_selected_protocol(s, &alpn) == 0)
		off += snprintf(buf + off, len - (size_t)off, ", ALPN %.*s", (int)alpn.size,
				alpn.data);
	if ((size_t)off < len && gnutls_session_is_resumed(s))
		snprintf(buf + off, len - (size_t)off, ", resumed");
}

/* Printable ASCII only (spaces where allowed): these go into a command's
 * environment, where a control byte or a lone NUL would be trouble. */
static bool printable(const unsigned char *p, size_t n, bool spaces)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] > 0x7e || p[i] < (spaces ? 0x20 : 0x21))
			return false;
	return n > 0;
}

bool kc_tls_server_name(gnutls_session_t s, char *buf, size_t len)
{
	unsigned type;
	size_t n = len;
	if (gnutls_server_name_get(s, buf, &n, &type, 0) < 0 || type != GNUTLS_NAME_DNS)
		return false;
	/* GnuTLS's n excludes the terminating NUL it wrote. */
	return n < len && printable((const unsigned char *)buf, n, false);
}

bool kc_tls_alpn(gnutls_session_t s, char *buf, size_t len)
{
	gnutls_datum_t alpn = { 0 };
	if (gnutls_alpn_get_selected_protocol(s, &alpn) < 0 || alpn.size >= len ||
	    !printable(alpn.data, alpn.size, false))
		return false;
	memcpy(buf, alpn.data, alpn.size);
	buf[alpn.size] = '\0';
	return true;
}

bool kc_tls_peer_subject(gnutls_session_t s, char *buf, size_t len)
{
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
	/* Only a verified certificate says who the peer is. */
	if (!chain || n == 0 || gnutls_certificate_type_get(s) != GNUTLS_CRT_X509 ||
	    gnutls_session_get_verify_cert_status(s) != 0)
		return false;
	gnutls_x509_crt_t crt;
	if (gnutls_x509_crt_init(&crt) < 0)
		return false;
	gnutls_datum_t dn = { 0 };
	bool ok = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0 &&
		  gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 && dn.size < len &&
		  printable(dn.data, dn.size, true);
	if (ok) {
		memcpy(buf, dn.data, dn.size);
		buf[dn.size] = '\0';
	}
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
	return ok;
}

size_t kc_tls_early_data(gnutls_session_t s, void *buf, size_t len)
{
	ssize_t n = gnutls_record_recv_early_data(s, buf, len);
	return n > 0 ? (size_t)n : 0;
}
