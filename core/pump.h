/* core/pump.h: the session's event loop in pipe mode.
 *
 * Moves bytes between a local input/output pair and a kc_conn, losslessly
 * and with bounded memory (two fixed buffers; a slow side stops the other
 * through backpressure):
 *   - every byte of input reaches the peer before our close_notify, which
 *     goes out at input EOF; then we keep reading until the peer's
 *     close_notify (TLS 1.3 half-close);
 *   - when the peer closes first: TLS 1.3 keeps sending input until EOF;
 *     TLS 1.2 stops reading input, sends what was already read, then
 *     close_notify (RFC 5246 §7.2.1);
 *   - every byte from the peer reaches the output; a broken output (EPIPE)
 *     ends the session cleanly with close_notify. */
#ifndef KC_PUMP_H
#define KC_PUMP_H

#include <signal.h>
#include <stdbool.h>

#include "core/conn.h"
#include "core/err.h"

struct kc_pump_opts {
	int in_fd;                      /* -1: no input */
	int out_fd;                     /* -1: discard peer data */
	bool echo;                      /* send peer data back (server demo/test) */
	volatile sig_atomic_t *stop;    /* nonzero: close and finish (signals) */
};

enum kc_pump_end {
	KC_PUMP_CLOSED = 0,     /* both close_notify exchanged */
	KC_PUMP_OUTPUT_GONE,    /* output closed (EPIPE); we sent close_notify */
	KC_PUMP_STOPPED,        /* *stop was set; close_notify sent if possible */
};

/* Returns an enum kc_pump_end (>= 0) or -1 with *err. */
int kc_pump_run(struct kc_conn *c, const struct kc_pump_opts *opts, struct kc_err *err);

#endif
