/* core/hsinfo.h: what a handshake negotiated and what the peer showed,
 * collected from the GnuTLS session once it is over: the facts behind
 * -v's handshake report, --info-json, --show-certs and --save-certs
 * (core/diag/hsinfo_view.h makes the report's view tree of them), and
 * the stapled OCSP response's verdict that --ocsp-require enforces.
 * Nothing here prints or exits. */
#ifndef KC_HSINFO_H
#define KC_HSINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "core/err.h"
#include "core/handshake.h"

#define KC_HSINFO_MAX_CERTS 8
#define KC_HSINFO_MAX_SANS 16

/* One certificate of the peer's chain, as it was sent (index 0: the
 * peer's own).  Strings are printable ASCII (anything else is '?'). */
struct kc_cert_info {
	char subject[512], issuer[512];      /* RFC 4514 DNs */
	time_t not_before, not_after;
	char key_type[32];                   /* "RSA", "ECDSA", "Ed25519", ... */
	unsigned key_bits;
	char sans[KC_HSINFO_MAX_SANS][256];  /* "DNS:name", "IP:addr", "email:", "URI:" */
	size_t n_sans;
	char sha256[KC_SHA256_HEX];          /* of the DER, lowercase hex */
};

/* The stapled OCSP response, as the client judges it (the server says
 * whether it stapled one). */
enum kc_ocsp_status {
	KC_OCSP_NOT_REQUESTED,   /* server: the client did not ask */
	KC_OCSP_GOOD,
	KC_OCSP_REVOKED,
	KC_OCSP_UNKNOWN,         /* the responder does not know the certificate */
	KC_OCSP_MISSING,         /* asked for, none stapled */
	KC_OCSP_INVALID,         /* unreadable, not for this certificate, badly
				  * signed, or out of its validity */
	KC_OCSP_STAPLED,         /* server: the client asked and got ours */
	KC_OCSP_NOT_STAPLED,     /* server: the client asked, we have none */
};

/* How the peer's certificate was checked. */
enum kc_verify_status {
	KC_VERIFY_TRUSTED,       /* verified in the handshake (against the name) */
	KC_VERIFY_SKIPPED,       /* client with --insecure */
	KC_VERIFY_NOT_REQUESTED, /* server without --verify-client */
	KC_VERIFY_FAILED,        /* (a handshake that failed has no report) */
};

struct kc_hsinfo {
	enum kc_role role;
	char version[16];
	char suite[96];                     /* IANA name when GnuTLS knows it */
	char cipher[32];                    /* the record cipher: "AES-256-GCM" */
	char group[32];                     /* "" when none (TLS 1.2 RSA kx, resumption) */
	char signature[64];                 /* the peer's handshake signature; "" none */
	char alpn[256];                     /* "" none */
	char sni[256];                      /* client: sent; server: received; "" none */
	bool resumed, early_data;
	struct kc_cert_info certs[KC_HSINFO_MAX_CERTS];
	size_t n_certs;                     /* as many of the chain as fit */
	size_t chain_len;                   /* the chain's length as sent */
	enum kc_verify_status verify;
	char verify_reason[256];            /* GnuTLS's words for the result */
	enum kc_ocsp_status ocsp;
	char ocsp_detail[256];              /* why invalid, when revoked; "" */
	time_t ocsp_this_update, ocsp_next_update;   /* 0: not known / none */
};

/* Collect the report of the finished handshake on s, made with opts.
 * 0, or -1 with *err (a certificate GnuTLS cannot read, out of memory). */
int kc_hsinfo_collect(gnutls_session_t s, const struct kc_tls_opts *opts,
		      struct kc_hsinfo *info, struct kc_err *err);

/* The client's verdict on the stapled OCSP response (what
 * kc_hsinfo_collect puts in ocsp and ocsp_detail): missing when none came
 * (GnuTLS asks for one in every client handshake). */
enum kc_ocsp_status kc_ocsp_check(gnutls_session_t s, char *detail, size_t len,
				  time_t *this_update, time_t *next_update);

/* "good", "revoked", "not requested", ...: the words of the report. */
const char *kc_ocsp_status_name(enum kc_ocsp_status st);
const char *kc_verify_status_name(enum kc_verify_status st);

/* The peer's certificate chain as sent, as PEM blocks one after the other
 * (malloc'd, NUL terminated, *len without the NUL); NULL with *err when
 * the peer sent none (status KC_E_USAGE) or out of memory. */
char *kc_hsinfo_chain_pem(gnutls_session_t s, size_t *len, struct kc_err *err);

#endif
