/* core/pump.h: the session's event loop in pipe mode.
 *
 * Moves bytes between a local input/output pair and a kc_conn, losslessly
 * and with bounded memory (two fixed buffers; a slow side stops the other
 * through backpressure):
 *   - every byte of input reaches the peer before our close_notify, which
 *     goes out after the end of input when the eof mode says (below); we
 *     keep reading until the peer's close_notify;
 *   - when the peer closes first: TLS 1.3 keeps sending input until EOF;
 *     TLS 1.2 stops reading input, sends what was already read, then
 *     close_notify (RFC 5246 §7.2.1);
 *   - every byte from the peer reaches the output; a broken output (EPIPE)
 *     ends the session cleanly with close_notify. */
#ifndef KC_PUMP_H
#define KC_PUMP_H

#include <signal.h>
#include <poll.h>
#include <stdbool.h>

#include "core/conn.h"
#include "core/err.h"

struct kc_pump;

/* When our close_notify goes out once the input has ended.  Many servers
 * take a close_notify as the end of the whole connection and drop what
 * they still had to send (TLS 1.2 requires it, RFC 5246 §7.2.1), so
 * closing at once can cut off the answer to what we sent. */
enum kc_eof_mode {
	KC_EOF_CLOSE = 0,   /* at once (TLS 1.3 half-close) */
	KC_EOF_LINGER,      /* when the peer closes, or once it has been quiet
			       (nothing to read, nothing unacknowledged, our
			       output drained) for linger_ms */
	KC_EOF_WAIT,        /* only when the peer closes */
};

/* What the loop tells its owner about the end of the input. */
enum kc_pump_note {
	KC_PUMP_NOTE_INPUT_END,   /* all input handed over; close_notify per eof */
	KC_PUMP_NOTE_QUIET,       /* linger: the peer was quiet; closing now */
};

struct kc_pump_opts {
	int in_fd;                      /* -1: no input */
	int out_fd;                     /* -1: discard peer data */
	bool echo;                      /* send peer data back (server demo/test) */
	/* The kernel channel moves data by sendfile (in_fd a regular file)
	 * and splice (pipes) without copying it through user space; copy
	 * forces read/write, as on the user-space channel. */
	bool copy;
	enum kc_eof_mode eof;
	unsigned linger_ms;             /* KC_EOF_LINGER's quiet time */
	volatile sig_atomic_t *stop;    /* nonzero: close and finish (signals) */
	int stop_fd;                    /* with stop: readable when *stop was set
					   (-1: none), so no stop is missed before poll */

	/* Optional hooks that take over the input or the output (the
	 * interactive session, --commands).  input is called when in_fd is
	 * readable (readable=true: one read will not block) or
	 * input_pending() says it holds something: it puts up
	 * to `space` bytes to send into buf and returns their count, 0 at
	 * the end of input, KC_CONN_AGAIN when it has nothing to send now,
	 * or -1 with *err.  output consumes peer data: bytes taken or -1
	 * with errno (EPIPE: the output is gone). */
	ssize_t (*input)(void *ctx, struct kc_pump *p, bool readable, unsigned char *buf,
			 size_t space, struct kc_err *err);
	bool (*input_pending)(void *ctx);
	bool (*input_full)(void *ctx);  /* true: do not poll in_fd for now */
	ssize_t (*output)(void *ctx, const unsigned char *buf, size_t len);
	void *ctx;

	/* Optional side channel served by the same loop (the session's
	 * control socket): side_fds fills up to max pollfds, side_ready is
	 * called with them after each poll.  It must never block. */
	int (*side_fds)(void *side_ctx, struct pollfd *fds, int max);
	void (*side_ready)(void *side_ctx, struct kc_pump *p, const struct pollfd *fds, int n);
	void *side_ctx;

	/* Optional: told about the end of the input (not in echo mode). */
	void (*on_note)(void *note_ctx, enum kc_pump_note note);
	void *note_ctx;
};

enum kc_pump_end {
	KC_PUMP_CLOSED = 0,     /* both close_notify exchanged */
	KC_PUMP_OUTPUT_GONE,    /* output closed (EPIPE); we sent close_notify */
	KC_PUMP_STOPPED,        /* *stop was set; close_notify sent if possible */
	KC_PUMP_QUIT,           /* kc_pump_quit(); close_notify sent */
};

/* How bytes move between a local fd and the connection: through our
 * buffers, or straight by sendfile (input, a regular file) or splice (a
 * pipe), as the channel allows (kc_conn_channel_caps). */
enum kc_data_path { KC_PATH_COPY, KC_PATH_SENDFILE, KC_PATH_SPLICE };

/* "copy", "sendfile", "splice" (for reports) */
const char *kc_data_path_name(enum kc_data_path path);

/* How kc_pump_run will move the input to the peer and the peer's data to
 * the output. */
void kc_pump_data_path(const struct kc_conn *c, const struct kc_pump_opts *o,
		       enum kc_data_path *in, enum kc_data_path *out);

/* Returns an enum kc_pump_end (>= 0) or -1 with *err. */
int kc_pump_run(struct kc_conn *c, const struct kc_pump_opts *opts, struct kc_err *err);

/* For the hooks: the connection; end the input as if at EOF (send what
 * is queued, then close_notify as the eof mode says, keep reading); close
 * now and finish. */
struct kc_conn *kc_pump_conn(struct kc_pump *p);
/* Input bytes taken but not yet handed to the connection. */
size_t kc_pump_unsent(const struct kc_pump *p);
void kc_pump_end_input(struct kc_pump *p);
void kc_pump_quit(struct kc_pump *p);

#endif
