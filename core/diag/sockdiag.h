/* core/diag/sockdiag.h: every kTLS socket on the machine, through sock_diag.
 *
 * One NETLINK_SOCK_DIAG dump of TCP sockets per address family (AF_INET,
 * then AF_INET6), requesting INET_DIAG_INFO: the kernel adds the
 * INET_DIAG_ULP_INFO attribute (ULP name, and for "tls" the nested
 * TLS_INFO_* attributes) only when that extension is asked for
 * (net/ipv4/inet_diag.c; net/tls/tls_main.c, tls_get_info).  Before Linux
 * 6.15 the kernel sends ULP info only to CAP_NET_ADMIN callers; then the
 * result says so rather than pretending there is nothing.  To tell, an
 * unprivileged dump runs with a throw-away loopback pair whose one end has
 * the TLS ULP (no keys): if that socket comes back without ULP info the
 * kernel withholds it; if the ULP cannot even be attached (ENOENT) no socket can be kTLS.
 * The pair is left out of the results (tcp_seen still counts it).
 * Owning processes come from /proc/PID/fd (best effort).  Nothing here
 * prints or exits. */
#ifndef KC_DIAG_SOCKDIAG_H
#define KC_DIAG_SOCKDIAG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/diag/view.h"

/* Attribute ids (include/uapi/linux/inet_diag.h and tls.h), spelled out
 * because older headers lack some and enums cannot be #ifdef'd. */
#define KC_INET_DIAG_INFO 2
#define KC_INET_DIAG_ULP_INFO 19
#define KC_INET_ULP_INFO_NAME 1
#define KC_INET_ULP_INFO_TLS 2
#define KC_TLS_INFO_VERSION 1
#define KC_TLS_INFO_CIPHER 2
#define KC_TLS_INFO_TXCONF 3
#define KC_TLS_INFO_RXCONF 4
#define KC_TLS_INFO_ZC_RO_TX 5
#define KC_TLS_INFO_RX_NO_PAD 6
#define KC_TLS_INFO_TX_MAX_PAYLOAD_LEN 7

struct kc_ktls_sock {
	int family;                       /* AF_INET or AF_INET6 */
	char local_addr[INET6_ADDRSTRLEN];
	uint16_t local_port;
	char remote_addr[INET6_ADDRSTRLEN];
	uint16_t remote_port;
	char local[INET6_ADDRSTRLEN + 8]; /* "127.0.0.1:443", "[::1]:443" */
	char remote[INET6_ADDRSTRLEN + 8];
	uint8_t state;                    /* TCP_ESTABLISHED, ... */
	const char *state_name;           /* "ESTAB", "LISTEN", ... (ss names) */
	uint32_t uid;
	uint32_t inode;

	char ulp[16];                     /* "tls"; "" when none (all_tcp only) */
	bool has_version, has_cipher, has_txconf, has_rxconf, has_tx_max_payload_len;
	uint16_t version;                 /* 0x0303 / 0x0304 (once a key is set) */
	uint16_t cipher;                  /* TLS_CIPHER_* (once a key is set) */
	uint16_t txconf, rxconf;          /* TLS_CONF_*: 1 none, 2 sw, 3 hw, 4 hw-record */
	uint16_t tx_max_payload_len;      /* Linux 6.19+ */
	bool zc_ro_tx;                    /* TLS_INFO_ZC_RO_TX flag */
	bool rx_no_pad;                   /* TLS_INFO_RX_NO_PAD flag */
	/* Display forms: "" when the kernel did not send the attribute. */
	char version_name[24];            /* "TLS1.2", "TLS1.3", "unknown(0x0302)" */
	char cipher_name[24];             /* "aes-gcm-128" ... "aria-gcm-256", "unknown(N)" */
	char txconf_name[24], rxconf_name[24]; /* "none", "sw", "hw", "hw-record", "unknown(N)" */

	pid_t pid;                        /* an owning process, 0 if not found */
	char comm[17];                    /* its /proc/PID/comm */
	unsigned int other_owners;        /* more processes holding the socket */
};

struct kc_sockdiag {
	bool available;           /* the sock_diag query could be made */
	struct kc_ktls_sock *socks;
	size_t n;
	size_t socks_cap;         /* internal: allocated entries */
	size_t tcp_seen;          /* TCP sockets in the dump, kTLS or not */
	size_t ulp_seen;          /* of those, with an INET_DIAG_ULP_INFO attribute */
	bool net_admin;           /* caller has CAP_NET_ADMIN */
	bool withheld;            /* the kernel (before 6.15) hides ULP info from
				     this unprivileged caller, or may be hiding it */
	bool withheld_confirmed;  /* ... known for sure: our own throw-away kTLS
				     socket was listed without ULP info */
	bool interrupted;         /* NLM_F_DUMP_INTR: the table changed mid-dump */
	size_t owners_denied;     /* processes whose fds we could not read */
	char note[256];           /* e.g. "no kTLS sockets visible; before Linux
				     6.15 only root can see them" */
	char owner_note[160];     /* e.g. owners unknown: permission denied */
};

struct kc_sockdiag_opts {
	bool all_tcp;             /* debug: list every TCP socket, not only kTLS */
	bool no_owners;           /* skip the /proc scan */
	const char *proc_root;    /* NULL: "/proc" (tests point it elsewhere) */
};

/* Dump (opts may be NULL).  Returns 0 with *d filled (free it with
 * kc_sockdiag_free), also when sock_diag itself is missing (available =
 * false, note says why) and when there are no kTLS sockets (n = 0, note
 * says so: "no kTLS sockets", "no kTLS sockets (the tls module is not
 * loaded)", or, with withheld set, "no kTLS sockets visible; before Linux
 * 6.15 only root can see them").
 * -1 with *err (KC_E_IO) for a failing or malformed netlink exchange. */
int kc_sockdiag_dump(const struct kc_sockdiag_opts *opts, struct kc_sockdiag *d,
		     struct kc_err *err);

/* Parse one received netlink buffer of SOCK_DIAG_BY_FAMILY replies,
 * appending kTLS sockets (every TCP socket with opts->all_tcp) to *d, and
 * counting tcp_seen/ulp_seen.  *done is set at NLMSG_DONE.  Every length
 * is checked: a message or attribute running past its container, a short
 * inet_diag_msg or a truncated nested attribute makes it return -1 with
 * *err (KC_E_IO), never read out of bounds.  An NLMSG_ERROR (or an
 * NLMSG_DONE) with an error returns -1 with err->sys_errno set; an error
 * code below -4095 (MAX_ERRNO) is no errno and counts as malformed. */
int kc_sockdiag_parse(const void *buf, size_t len, const struct kc_sockdiag_opts *opts,
		      struct kc_sockdiag *d, bool *done, struct kc_err *err);

/* Fill pid/comm/other_owners of d's sockets from <proc_root>/PID/fd
 * (NULL: "/proc") and set owners_denied/owner_note. */
void kc_sockdiag_find_owners(struct kc_sockdiag *d, const char *proc_root);

void kc_sockdiag_free(struct kc_sockdiag *d);

/* Display names; "unknown(N)" forms go to buf. */
const char *kc_tls_version_name(uint16_t version, char *buf, size_t len);
const char *kc_tls_conf_name(uint16_t conf, char *buf, size_t len);
const char *kc_tcp_state_name(uint8_t state);

/* Adds object "sockets" to parent:
 *   available      bool
 *   net_admin      bool
 *   withheld       bool
 *   withheld_confirmed bool
 *   interrupted    bool
 *   note           string|null
 *   owner_note     string|null
 *   tcp_sockets_seen uint
 *   list           [ {family: "inet"|"inet6", local, remote (addr:port),
 *                     local_addr, local_port, remote_addr, remote_port,
 *                     state, uid, inode, ulp, version|null, cipher|null,
 *                     cipher_id|null, tx|null, rx|null, zc_ro_tx, rx_no_pad,
 *                     tx_max_payload_len|null, pid|null, comm|null,
 *                     other_owners} ]
 * Each list element has a one-line text, shown in the brief text under
 * "kTLS sockets: N" (or the note, when there are none).
 * 0, or -1 with *err (memory). */
int kc_sockdiag_view(const struct kc_sockdiag *d, struct kc_view *parent,
		     struct kc_err *err);

#endif
