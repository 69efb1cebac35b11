/* core/diag/caps.h: is kTLS available here (ULP registered, module
 * loadable, why not), which ciphers work in TLS 1.2/1.3 for TX and RX,
 * TLS 1.3 rekey, optional socket options.  Everything is found by
 * experiment on fresh loopback sockets (core/probe.h), never by kernel version and never on a
 * live connection.  Nothing here prints or exits. */
#ifndef KC_DIAG_CAPS_H
#define KC_DIAG_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/diag/view.h"
#include "core/err.h"
#include "core/cipher.h"
#include "core/keys.h"

enum kc_cap_state { KC_CAP_UNKNOWN = -1, KC_CAP_NO = 0, KC_CAP_YES = 1 };

/* One answer.  reason: for NO/UNKNOWN a short "why" (always set); for YES
 * an optional note ("loaded on demand by this probe"), usually "". */
struct kc_cap {
	enum kc_cap_state state;
	int sys_errno;        /* the errno behind the answer, 0 when none */
	char reason[200];
};

/* "yes", "no", "unknown" */
const char *kc_cap_state_name(enum kc_cap_state s);

#define KC_CAPS_NCIPHERS KC_NCIPHERS   /* a row per core/cipher.h row, in its order */

struct kc_cipher_caps {
	gnutls_cipher_algorithm_t cipher;
	const char *name;         /* "AES-128-GCM" (core/keys.h names) */
	uint16_t kernel_id;       /* TLS_CIPHER_* */
	const char *kernel_name;  /* "aes-gcm-128" (core/probe.h names) */
	struct kc_cap tls12_tx, tls12_rx, tls13_tx, tls13_rx;
};

struct kc_ktls_caps {
	bool net_admin;            /* caller has CAP_NET_ADMIN ("root") */
	bool ulp_registered;       /* "tls" in tcp_available_ulp before probing */
	char available_ulps[128];  /* that file's contents, "" if unreadable */
	struct kc_cap available;   /* TCP_ULP "tls" works for this caller */
	char fix[32];              /* when it does not: the one command that would
				      make it ("sudo modprobe tls"), "" if none */
	struct kc_cap module;      /* tls.ko loaded or loadable */
	struct kc_cipher_caps ciphers[KC_CAPS_NCIPHERS]; /* AES-128-GCM, AES-256-GCM,
							    CHACHA20-POLY1305, AES-128-CCM */
	struct kc_cap rekey;              /* TLS 1.3 key update (TX) */
	struct kc_cap rx_expect_no_pad;   /* TLS_RX_EXPECT_NO_PAD */
	struct kc_cap tx_zerocopy_ro;     /* TLS_TX_ZEROCOPY_RO */
	struct kc_cap tx_max_payload_len; /* TLS_TX_MAX_PAYLOAD_LEN */
};

/* Probe everything (about 20 throw-away loopback pairs).  Returns 0 and a
 * filled *caps whenever the answers could be formed, including "kTLS is
 * not available, because ..." (caps->available.state == KC_CAP_NO); -1
 * only on a bug (NULL caps).  When kTLS is unavailable, every per-cipher
 * and feature answer is KC_CAP_UNKNOWN "not probed: ...".  See probe.h for
 * the side effects (tls_stat counters, module autoload as root). */
int kc_ktls_caps_probe(struct kc_ktls_caps *caps, struct kc_err *err);

/* Adds object "kernel" to parent:
 *   available            {state, reason, errno}   (a "cap" object)
 *   fix                  string|null: the command that makes kTLS available
 *   net_admin            bool
 *   ulp_registered       bool
 *   available_ulps       string|null
 *   module               cap
 *   ciphers              [ {name, kernel_name, kernel_id,
 *                           tls12: {tx: cap, rx: cap}, tls13: {tx: cap, rx: cap}} ]
 *   rekey                cap
 *   features             {rx_expect_no_pad: cap, tx_zerocopy_ro: cap,
 *                         tx_max_payload_len: cap}
 * where cap = {state: "yes"|"no"|"unknown", reason: string|null,
 *              errno: "ENOENT"|...|null}.
 * The brief text shows `available` and, when there is one, `fix`.
 * 0, or -1 with *err when out of memory. */
int kc_ktls_caps_view(const struct kc_ktls_caps *caps, struct kc_view *parent,
		      struct kc_err *err);

#endif
