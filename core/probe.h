/* core/probe.h: what this kernel's TLS layer can do, found by trying it on
 * fresh loopback sockets (never by kernel version, and never on a live
 * connection: re-setting a key there would corrupt the stream). */
#ifndef KC_PROBE_H
#define KC_PROBE_H

#include "core/err.h"

/* 1: the kernel accepts a second TLS 1.3 TLS_TX key on a socket (the key
 * update support of Linux 6.14 and backports); 0: it refuses (EBUSY);
 * -1: could not tell (no kTLS at all, ...), with *err saying why. */
int kc_probe_kernel_rekey(struct kc_err *err);

#endif
