/* core/handshake.h: GnuTLS credentials, session setup and the handshake.
 *
 * The handshake runs in user space on a blocking socket with GnuTLS's own
 * transport; GnuTLS reads exactly one record at a time, so nothing is left
 * stranded when the socket is handed to the record channel afterwards. */
#ifndef KC_HANDSHAKE_H
#define KC_HANDSHAKE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

#include "core/cipher.h"
#include "core/err.h"

enum kc_role { KC_CLIENT, KC_SERVER };

#define KC_VERS_12 1u
#define KC_VERS_13 2u
#define KC_MAX_ALPN 8
#define KC_MAX_CERTS 8

struct kc_tls_opts {
	enum kc_role role;
	/* Client: the name sent as SNI and checked against the certificate.
	 * verify_name is what the certificate must match (a DNS name or IP
	 * literal); sni is sent when non-NULL (never an IP literal). */
	const char *verify_name;
	const char *sni;
	bool insecure;                 /* client: no certificate verification */
	bool verify_client;            /* server: require a client certificate */
	const char *cafile;            /* NULL: system trust (client) */
	/* Certificate chains and their keys, paired in order.  A client has
	 * at most one pair; a server with several picks, for each client, the
	 * one whose SAN DNS names match its SNI and whose key suits its
	 * signature algorithms (GnuTLS's own selection), the first by default. */
	const char *certfile[KC_MAX_CERTS], *keyfile[KC_MAX_CERTS];
	size_t n_certfiles, n_keyfiles;
	/* In-memory PEM alternatives (selftest's ephemeral certificate). */
	const gnutls_datum_t *ca_pem, *cert_pem, *key_pem;
	/* ALPN protocols: a client offers them in this order; a server takes
	 * the first of them the client offers (ours is the order that
	 * counts), and with alpn_strict refuses a client that offers none of
	 * them (alert no_application_protocol). */
	const char *alpn[KC_MAX_ALPN];
	size_t n_alpn;
	bool alpn_strict;
	/* TLS 1.3 0-RTT.  Client: early_data (with resume_data) is sent as
	 * early data when the ticket allows that much, before the handshake;
	 * *early_status gets KC_EARLY_* (KC_EARLY_ACCEPTED: the server took
	 * it; else it must be sent again after the handshake).  Server:
	 * accept_early_data takes up to KC_EARLY_MAX bytes of it, read with
	 * kc_tls_early_data once the handshake is done. */
	const gnutls_datum_t *early_data;
	int *early_status;
	bool accept_early_data;
	const char *priority;          /* replaces the built-in priority string */
	unsigned versions;             /* KC_VERS_* mask, 0 = both */
	gnutls_cipher_algorithm_t ciphers[KC_NCIPHERS];
	size_t n_ciphers;              /* 0 = the whole cipher table */
	unsigned handshake_timeout_ms;
	/* RFC 8449 record_size_limit to announce, as it goes on the wire
	 * (TLS 1.3: the content type byte included); 0: none. */
	unsigned record_size_limit;
	/* As in kc_pump_opts: the handshake ends (GNUTLS_E_INTERRUPTED, sys
	 * errno EINTR) only when *stop is set; any other signal that cuts a
	 * wait short is waited out.  stop_fd is watched only with stop. */
	volatile sig_atomic_t *stop;
	int stop_fd;
	/* Client: a saved session to resume (gnutls_session_get_data2 data);
	 * *resume_status gets gnutls_session_set_data's result: a session
	 * GnuTLS refuses means a full handshake, not a failure. */
	const gnutls_datum_t *resume_data;
	int *resume_status;
	/* Client: ask for a stapled OCSP response (RFC 6066 status_request);
	 * with ocsp_require, a handshake whose response is not a good one
	 * (core/hsinfo.h: kc_ocsp_check) fails as a verification failure.
	 * Server: the DER OCSP response file to staple when asked. */
	bool ocsp, ocsp_require;
	const char *ocsp_response;
};

enum { KC_EARLY_NONE, KC_EARLY_TOO_BIG, KC_EARLY_NOT_ALLOWED, KC_EARLY_REJECTED,
       KC_EARLY_ACCEPTED };
/* What a server announces in its tickets and accepts as early data. */
#define KC_EARLY_MAX 16384u

/* Credentials outlive one connection (a listening server reuses them, and
 * its session-ticket key, for every accepted connection).  They are
 * reference-counted: a GnuTLS session points into them until it is
 * deinitialised, so a server that loads new ones (SIGHUP, core/serve.h)
 * keeps the old ones alive for the sessions that started with them.
 * kc_creds_new loads everything opts names (files are read again at each
 * call) and gives one reference; kc_creds_ref adds one and returns creds;
 * kc_creds_free drops one and frees them with the last. */
struct kc_creds;

int kc_creds_new(const struct kc_tls_opts *opts, struct kc_creds **out,
		 struct kc_err *err);
struct kc_creds *kc_creds_ref(struct kc_creds *creds);
void kc_creds_free(struct kc_creds *creds);

/* A server's session-ticket key, made by kc_creds_new (GnuTLS's size):
 * copied out, or replaced, so that processes serving the same listener
 * (listen --workers) resume each other's tickets.  Replace it before the
 * first handshake with creds.  -1 with *err when creds have none (a
 * client's) or len is not the size. */
#define KC_TICKET_KEY_SIZE 64
int kc_creds_ticket_key(const struct kc_creds *creds, unsigned char key[KC_TICKET_KEY_SIZE],
			struct kc_err *err);
int kc_creds_set_ticket_key(struct kc_creds *creds, const unsigned char key[KC_TICKET_KEY_SIZE],
			    struct kc_err *err);

/* How many certificate chains creds hold (--cert pairs, in order). */
size_t kc_creds_count(const struct kc_creds *creds);

/* The i-th certificate creds present (the first of its chain): its
 * subject DN (RFC 4514; control characters replaced by '?') in subject,
 * and the SHA-256 of its DER encoding as lowercase hex in sha256.  -1
 * with *err when there is none. */
#define KC_SHA256_HEX 65
int kc_creds_cert_info(const struct kc_creds *creds, size_t i, char *subject, size_t len,
		       char sha256[KC_SHA256_HEX], struct kc_err *err);

/* The priority string built from opts (exposed for tests and -v).
 * %ALLOW_SMALL_RECORDS is always added: record size limits down to 64
 * bytes, announced by either side, are honoured (RFC 8449 allows them). */
int kc_tls_priority(const struct kc_tls_opts *opts, char *buf, size_t len,
		    struct kc_err *err);

/* Create a session on fd (blocking socket) and run the handshake.  On
 * success *out is ready for the handover.  Verification failures have
 * status KC_E_VERIFY and GnuTLS's reason in the message (and so has a
 * stapled OCSP response that ocsp_require refuses).
 *
 * Once the handshake succeeded, the TLS 1.3 secrets that only the
 * handshake needs are wiped inside GnuTLS (handshake traffic, early
 * traffic and exporter secrets, which it would otherwise keep until
 * gnutls_deinit), and so is the stack the handshake used: keying material
 * exporters (gnutls_prf_rfc5705) do not work on the session.  GnuTLS's key
 * log (SSLKEYLOGFILE) still sees every secret. */
int kc_tls_handshake(int fd, const struct kc_tls_opts *opts,
		     struct kc_creds *creds, gnutls_session_t *out,
		     struct kc_err *err);

/* The same handshake on a non-blocking socket, one step at a time, for
 * a loop that serves many (core/serve.h).  kc_hs_start copies opts (the
 * strings it points to must live on); the caller keeps the deadline
 * (opts' handshake_timeout_ms is only used in the timeout's message) and
 * calls kc_hs_timed_out when it passes.  kc_hs_step returns 0 when the
 * handshake is done (kc_hs_take then gives the session, ready for the
 * handover), KC_HS_AGAIN when it waits for the socket (*want_write: for
 * room to write, else for data), or -1 with *err as kc_tls_handshake's;
 * after -1 or kc_hs_timed_out only kc_hs_free is left to call. */
#define KC_HS_AGAIN (-2)
struct kc_hs;
int kc_hs_start(int fd, const struct kc_tls_opts *opts, struct kc_creds *creds,
		struct kc_hs **out, struct kc_err *err);
int kc_hs_step(struct kc_hs *h, bool *want_write, struct kc_err *err);
int kc_hs_timed_out(struct kc_hs *h, struct kc_err *err);
gnutls_session_t kc_hs_session(const struct kc_hs *h);
gnutls_session_t kc_hs_take(struct kc_hs *h);
void kc_hs_free(struct kc_hs *h);

/* The record_size_limit opts asks for, as GnuTLS's plaintext size for
 * gnutls_record_set_max_recv_size (which adds the content type byte on
 * the wire when TLS 1.3 may be negotiated); 0: none.  Fails (KC_E_USAGE)
 * when GnuTLS cannot announce it with the versions allowed. */
int kc_tls_recv_size(const struct kc_tls_opts *opts, size_t *size, struct kc_err *err);

/* One line describing the session: "TLS1.3 TLS_AES_128_GCM_SHA256, ALPN h2". */
void kc_tls_describe(gnutls_session_t session, char *buf, size_t len);

/* What a server learnt in the handshake, as NUL-terminated printable
 * ASCII in buf; false when there is none (or it would not fit, or is
 * not printable): the server name the client sent (SNI), the ALPN
 * protocol negotiated, and the subject DN (RFC 4514) of the client's
 * certificate when it was verified (--verify-client). */
bool kc_tls_server_name(gnutls_session_t session, char *buf, size_t len);
bool kc_tls_alpn(gnutls_session_t session, char *buf, size_t len);
bool kc_tls_peer_subject(gnutls_session_t session, char *buf, size_t len);

/* Server: the early data the client sent (0-RTT) and the handshake
 * accepted, moved into buf (at most len bytes; what does not fit is
 * left for the next call).  The bytes, 0 when there is no more. */
size_t kc_tls_early_data(gnutls_session_t session, void *buf, size_t len);

#endif
