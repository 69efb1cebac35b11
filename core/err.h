/* core/err.h: the error value every core function fills in.
 *
 * core/ never prints and never exits.  A failing function returns -1 (or
 * NULL) and leaves a one-line message plus a status in a struct kc_err; the
 * cli prints the message and exits with the status.  The numeric values of
 * enum kc_status ARE the documented exit statuses (man/ktlsctl.1, EXIT
 * STATUS), so never renumber them. */
#ifndef KC_ERR_H
#define KC_ERR_H

#include <stddef.h>

enum kc_status {
	KC_OK = 0,
	KC_E_INTERNAL = 1,     /* a bug or resource exhaustion */
	KC_E_USAGE = 2,        /* bad command line or option value */
	KC_E_CONNECT = 3,      /* resolve, connect, bind, listen or accept failed */
	KC_E_VERIFY = 4,       /* the peer's certificate was not accepted */
	KC_E_CREDENTIALS = 5,  /* our certificate, key, CA or session file is unusable */
	KC_E_HANDSHAKE = 6,    /* the TLS handshake failed */
	KC_E_KTLS = 7,         /* kernel TLS unavailable under --ktls require */
	KC_E_TRUNCATED = 8,    /* the connection ended without close_notify */
	KC_E_PROTOCOL = 9,     /* after the handshake: fatal alert, bad record, unexpected message */
	KC_E_NOREKEY = 10,     /* the peer updated its keys and this kernel cannot follow */
	KC_E_IO = 11,          /* local input/output or socket error */
	KC_E_TIMEOUT = 12,     /* a connect, handshake or close timeout expired */
	KC_E_LIMIT = 13,       /* TLS 1.2 session closed at the cipher's record limit */
	KC_E_CHECK = 14,       /* probe: a check of the peer failed */
	KC_E_STARTTLS = 15,    /* --starttls: the server refused it, or broke off the preamble */
};

struct kc_err {
	enum kc_status status;
	int sys_errno;         /* errno behind the failure, 0 when none */
	char msg[512];
};

/* Fill *e (which may be NULL) and return -1, so callers can write
 * `return kc_err_set(e, KC_E_IO, "...")`. */
int kc_err_set(struct kc_err *e, enum kc_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Same, appending ": strerror(errnum)" and recording errnum. */
int kc_err_errno(struct kc_err *e, enum kc_status status, int errnum,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void kc_err_clear(struct kc_err *e);

/* "ENOENT", "EINVAL", ... for the errnos the kernel probes meet; "errno N"
 * otherwise (into buf). */
const char *kc_errno_name(int e, char *buf, size_t len);

#endif
