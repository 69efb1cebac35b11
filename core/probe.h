/* core/probe.h: what this kernel's TLS layer can do, found by trying it on
 * fresh loopback sockets (never by kernel version, and never on a live
 * connection: re-setting a key there would corrupt the stream).
 *
 * Every probe makes its own connected loopback pair (127.0.0.1), tries one
 * thing on it and closes it.  Nothing is ever sent on a probe socket.
 * Installing a key counts in /proc/net/tls_stat (TlsTxSw, TlsRxSw, and
 * TlsTxRekeyOk for the rekey probe), so read that file before probing when
 * its counters matter.  As root, the first TCP_ULP "tls" loads tls.ko if it
 * is not loaded yet (as any kTLS user would). */
#ifndef KC_PROBE_H
#define KC_PROBE_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/channel.h"
#include "core/err.h"
#include "core/keys.h"

/* The kernel's cipher ids (TLS_CIPHER_*, 51..58): the four of the cipher
 * table (core/cipher.h, their kc_cipher.kernel) and those ktlsctl cannot
 * use (SM4, ARIA), which `stats` shows all the same.  NULL for an id the
 * kernel does not have. */
const struct kc_ktls_cipher *kc_ktls_cipher_by_id(unsigned int id);

/* A connected loopback TCP pair: fds[0] the connecting end, fds[1] the
 * accepted one (both SOCK_CLOEXEC).  0, or -1 with *err (KC_E_IO). */
int kc_probe_loopback_pair(int fds[2], struct kc_err *err);

/* TCP_ULP "tls" on a fresh pair.  1: attached; 0: refused, *sys_errno
 * says why (ENOENT: no TLS ULP registered, and this caller could not load
 * it; ENOPROTOOPT: no TCP_ULP at all); -1: could not try (no loopback
 * pair), *err says why. */
int kc_probe_kernel_ulp(int *sys_errno, struct kc_err *err);

/* setsockopt(SOL_TLS, TLS_TX or TLS_RX) with an all-zero key of the exact
 * struct size for cipher_id (a kernel TLS_CIPHER_* id) and version
 * (KC_TLS12/KC_TLS13), on a fresh ULP'd pair.  1: accepted; 0: refused,
 * *sys_errno says why (EINVAL: the kernel does not know this cipher or
 * version; ENOENT: it knows the cipher but its crypto algorithm is missing;
 * ENOPROTOOPT for RX: no kTLS receive path); -1: could not try (no pair,
 * no TLS ULP, cipher id not in the table), *err says why. */
int kc_probe_kernel_key(uint16_t version, uint16_t cipher_id, enum kc_dir dir,
			int *sys_errno, struct kc_err *err);

/* getsockopt(SOL_TLS, optname) on a fresh ULP'd pair (for
 * TLS_RX_EXPECT_NO_PAD a TLS 1.3 receive key is installed first, since the
 * kernel answers that option only then).  1: the kernel knows the option
 * (it returned 0, or an error other than ENOPROTOOPT: *sys_errno);
 * 0: ENOPROTOOPT, the option does not exist; -1: could not try, *err. */
int kc_probe_kernel_option(int optname, int *sys_errno, struct kc_err *err);

/* 1: the kernel accepts a second TLS 1.3 TLS_TX key on a socket (the key
 * update support of Linux 6.14 and backports); 0: it refuses (EBUSY);
 * -1: could not tell (no kTLS at all, ...), with *err saying why. */
int kc_probe_kernel_rekey(struct kc_err *err);

/* The same answer without a probe socket, so without touching a counter:
 * the rekey counters (TlsTxRekeyOk) came with the key update support in
 * Linux 6.14, and /proc/net/tls_stat lists them once tls.ko is loaded.
 * 1: it can; 0: it cannot; -1: that file cannot be read. */
int kc_probe_kernel_rekey_quietly(void);

#endif
