/* core/pump.c: the session's event loop in pipe mode (see pump.h). */
#include "config.h"

#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/pump.h"
#include "core/keys.h"

#define PUMP_BUF (64 * 1024)
/* Bytes per sendfile/splice call: large enough that syscalls are rare,
 * small enough that limit metering and stop requests stay prompt. */
#define ZC_CHUNK (1024 * 1024)
#define KC_PUMP_SIDE_FDS 32
/* After a stop request or a broken output, how long we keep trying to get
 * close_notify out before giving up on a peer that does not read. */
#define CLOSE_FLUSH_MS 2000
/* Lingering, how often to look again while the peer's TCP has not yet
 * acknowledged all we sent (no event wakes poll for that). */
#define UNACKED_RECHECK_MS 50

struct kc_pump {
	struct kc_conn *c;
	const struct kc_pump_opts *o;
	struct kc_buf up, down;        /* to the peer / from the peer */
	bool in_eof;                /* no more input will be read */
	bool rx_maybe;              /* the conn may have data without POLLIN */
	bool tx_blocked;            /* the last write would have blocked */
	bool output_gone;
	bool quit;
	bool in_ready;              /* poll said the input fd is readable */
	bool input_end_noted;       /* on_note(KC_PUMP_NOTE_INPUT_END) was called */
	long long quiet_since;      /* linger: ms the peer has been quiet since (0: not) */
	/* Zero-copy: input sent by sendfile (file) or splice, peer data
	 * spliced to the output pipe (out_blocked: that pipe is full). */
	bool zc_in, zc_in_file, zc_out, out_blocked;
};

struct kc_conn *kc_pump_conn(struct kc_pump *p)
{
	return p->c;
}

size_t kc_pump_unsent(const struct kc_pump *p)
{
	return p->up.len;
}

void kc_pump_end_input(struct kc_pump *p)
{
	p->in_eof = true;
}

void kc_pump_quit(struct kc_pump *p)
{
	p->quit = true;
}

/* Whether fd is ready for events now, without waiting. */
static bool ready_now(int fd, short events)
{
	struct pollfd pf = { .fd = fd, .events = events };
	return poll(&pf, 1, 0) > 0;
}

/* Splice peer data to the output pipe: 1 when that settled this turn,
 * 0 when the record path must read (control record, end, error). */
static int splice_conn(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	ssize_t n = kc_conn_read_to(p->c, p->o->out_fd, ZC_CHUNK, err);
	if (n == KC_CONN_USE_READ)
		return 0;
	if (n == -1)
		return -1;
	if (n > 0)
		*progress = true;
	else if (!ready_now(p->o->out_fd, POLLOUT))
		p->out_blocked = true;    /* the pipe is full */
	else
		p->rx_maybe = false;      /* nothing to read */
	return 1;
}

static int read_conn(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	struct kc_buf *dst = p->o->echo ? &p->up : &p->down;
	if (!p->rx_maybe || kc_conn_peer_closed(p->c) || kc_buf_space(dst) == 0)
		return 0;
	if (p->zc_out && p->down.len == 0) {
		if (p->out_blocked)
			return 0;
		int rc = splice_conn(p, progress, err);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
	}
	unsigned char *t = kc_buf_tail(dst);
	ssize_t n = kc_conn_read(p->c, t, kc_buf_space(dst), err);
	if (n == KC_CONN_AGAIN) {
		p->rx_maybe = false;
		return 0;
	}
	if (n < 0)
		return -1;
	*progress = true;
	if (n == 0) {
		/* The peer's close_notify.  Echo has nothing more to echo;
		 * TLS 1.2 takes no more input (RFC 5246 §7.2.1). */
		if (p->o->echo || kc_conn_version(p->c) == KC_TLS12)
			p->in_eof = true;
		return 0;
	}
	dst->len += (size_t)n;
	return 0;
}

static int write_output(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	if (p->down.len == 0)
		return 0;
	if (p->o->out_fd < 0 && !p->o->output) {
		p->down.len = 0;   /* nowhere to go: discard */
		return 0;
	}
	ssize_t n = p->o->output ? p->o->output(p->o->ctx, p->down.p + p->down.off, p->down.len)
				 : write(p->o->out_fd, p->down.p + p->down.off, p->down.len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		if (errno == EPIPE) {
			p->output_gone = true;
			p->down.len = 0;
			return 0;
		}
		return kc_err_errno(err, KC_E_IO, errno, "cannot write to standard output");
	}
	p->down.off += (size_t)n;
	p->down.len -= (size_t)n;
	*progress = true;
	return 0;
}

/* Send input straight from the file or pipe. */
static int send_input(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	if (p->in_eof || p->tx_blocked || !(p->in_ready || p->zc_in_file))
		return 0;
	ssize_t n = kc_conn_write_from(p->c, p->o->in_fd, p->zc_in_file, ZC_CHUNK, err);
	if (n == -1)
		return -1;
	if (n >= 0) {
		p->in_eof = n == 0;
		*progress = true;
	} else if (p->zc_in_file || !ready_now(kc_conn_fd(p->c), POLLOUT)) {
		p->tx_blocked = true;     /* the socket is full */
	} else {
		p->in_ready = false;      /* the pipe is empty */
	}
	return 0;
}

static int read_input(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	if (p->zc_in)
		return send_input(p, progress, err);
	bool pending = p->o->input_pending && p->o->input_pending(p->o->ctx);
	if (p->in_eof || p->o->echo || kc_buf_space(&p->up) == 0 || !(p->in_ready || pending))
		return 0;
	bool readable = p->in_ready;
	p->in_ready = false;   /* reads never block: only after poll says so */
	if (p->o->input) {
		bool was_eof = p->in_eof;
		ssize_t n = p->o->input(p->o->ctx, p, readable, kc_buf_tail(&p->up),
					 kc_buf_space(&p->up), err);
		/* A command (/close, /quit) may have changed the state: that is
		 * progress too, or the loop would sleep in poll over it. */
		*progress = p->in_eof != was_eof || p->quit;
		if (n == KC_CONN_AGAIN)
			return 0;
		if (n < 0)
			return -1;
		if (n == 0)
			p->in_eof = true;
		p->up.len += (size_t)n;
		*progress = *progress || n > 0 || p->in_eof;
		return 0;
	}
	if (!readable || p->o->in_fd < 0)
		return 0;
	ssize_t n = read(p->o->in_fd, kc_buf_tail(&p->up), kc_buf_space(&p->up));
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		return kc_err_errno(err, KC_E_IO, errno, "cannot read standard input");
	}
	if (n == 0)
		p->in_eof = true;
	p->up.len += (size_t)n;
	*progress = true;
	return 0;
}

static int write_conn(struct kc_pump *p, bool *progress, struct kc_err *err)
{
	if (p->up.len == 0 || p->tx_blocked)
		return 0;
	ssize_t n = kc_conn_write(p->c, p->up.p + p->up.off, p->up.len, err);
	if (n == KC_CONN_AGAIN) {
		p->tx_blocked = true;
		return 0;
	}
	if (n < 0)
		return -1;
	p->up.off += (size_t)n;
	p->up.len -= (size_t)n;
	*progress = n > 0;
	return 0;
}

/* Wait for the fds the state asks for; clears the "would block" flags of
 * whatever became ready. */
static int wait_events(struct kc_pump *p, int timeout_ms, struct kc_err *err)
{
	struct pollfd fds[4 + KC_PUMP_SIDE_FDS];
	int n = 0, sock_i, in_i = -1, out_i = -1, side_i, side_n = 0;
	int fd = kc_conn_fd(p->c);

	/* Zero-copy input waits for the socket, not for a file (always
	 * readable) or a pipe it could not send from anyway. */
	bool want_in = p->zc_in ? !p->zc_in_file && !p->tx_blocked : kc_buf_space(&p->up) > 0;
	if (!p->in_eof && p->o->in_fd >= 0 && !p->o->echo && want_in) {
		if (p->o->input_pending && p->o->input_pending(p->o->ctx))
			timeout_ms = 0;
		if (!p->o->input_full || !p->o->input_full(p->o->ctx)) {
			in_i = n;
			fds[n++] = (struct pollfd){ .fd = p->o->in_fd, .events = POLLIN };
		}
	}
	if ((p->down.len > 0 || p->out_blocked) && p->o->out_fd >= 0) {
		out_i = n;
		fds[n++] = (struct pollfd){ .fd = p->o->out_fd, .events = POLLOUT };
	}
	sock_i = n;
	fds[n] = (struct pollfd){ .fd = fd };
	struct kc_buf *dst = p->o->echo ? &p->up : &p->down;
	if (!kc_conn_peer_closed(p->c) && kc_buf_space(dst) > 0 && !p->out_blocked)
		fds[n].events |= POLLIN;
	bool to_send = p->up.len > 0 || (p->zc_in && !p->in_eof);
	if ((to_send && p->tx_blocked) || kc_conn_tx_pending(p->c))
		fds[n].events |= POLLOUT;
	n++;

	if (p->o->stop && p->o->stop_fd >= 0)
		fds[n++] = (struct pollfd){ .fd = p->o->stop_fd, .events = POLLIN };
	side_i = n;
	if (p->o->side_fds)
		side_n = p->o->side_fds(p->o->side_ctx, fds + n, KC_PUMP_SIDE_FDS);
	n += side_n;

	/* The user-space channel's AEAD calls leave nonces in dead frames that
	 * a burn from their own caller does not always reach (the frames differ
	 * with the build): wipe below the loop before sleeping in it. */
	if (kc_conn_channel_kind(p->c) == KC_CHANNEL_USER_SPACE)
		kc_burn_stack(KC_BURN_RECORD);
	int rc = poll(fds, (nfds_t)n, timeout_ms);
	if (rc < 0) {
		if (errno == EINTR)
			return 0;
		return kc_err_errno(err, KC_E_IO, errno, "poll failed");
	}
	if (side_n)
		p->o->side_ready(p->o->side_ctx, p, fds + side_i, side_n);
	/* Errors and hangups surface through the next read or write. */
	if (in_i >= 0 && fds[in_i].revents)
		p->in_ready = true;
	if (out_i >= 0 && fds[out_i].revents)
		p->out_blocked = false;
	if (fds[sock_i].revents & (POLLIN | POLLERR | POLLHUP))
		p->rx_maybe = true;
	if (fds[sock_i].revents & (POLLOUT | POLLERR | POLLHUP))
		p->tx_blocked = false;
	return 0;
}

/* Get close_notify (and what precedes it) out within CLOSE_FLUSH_MS. */
static int close_quickly(struct kc_pump *p, struct kc_err *err)
{
	if (kc_conn_close(p->c, err) < 0)
		return -1;
	for (int waited = 0; kc_conn_tx_pending(p->c) && waited < CLOSE_FLUSH_MS; waited += 50) {
		int rc = kc_conn_flush(p->c, err);
		if (rc < 0 && rc != KC_CONN_AGAIN)
			return -1;
		if (rc == 0)
			break;
		struct pollfd pf = { .fd = kc_conn_fd(p->c), .events = POLLOUT };
		poll(&pf, 1, 50);
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note(struct kc_pump *p, enum kc_pump_note n)
{
	if (p->o->on_note)
		p->o->on_note(p->o->note_ctx, n);
}

/* Bytes we sent that the peer's TCP has not acknowledged yet. */
static int unacked(struct kc_pump *p)
{
	int n = 0;
	return ioctl(kc_conn_fd(p->c), SIOCOUTQ, &n) == 0 ? n : 0;
}

/* The input has ended and everything is handed over: whether our
 * close_notify may go now.  For linger, *timeout_ms becomes how long
 * the loop may sleep before asking again. */
static bool may_close(struct kc_pump *p, bool progress, int *timeout_ms)
{
	if (kc_conn_peer_closed(p->c))
		return true;
	if (!p->input_end_noted && !p->o->echo) {
		p->input_end_noted = true;
		note(p, KC_PUMP_NOTE_INPUT_END);
	}
	if (p->o->eof != KC_EOF_LINGER)
		return p->o->eof == KC_EOF_CLOSE;
	/* The peer counts as quiet only when nothing of it waits on our
	 * side either: a slow reader of our output must not look like a
	 * silent peer. */
	bool quiet = !progress && !p->rx_maybe && p->down.len == 0 && !p->out_blocked &&
		     !kc_conn_tx_pending(p->c);
	if (quiet && unacked(p) > 0) {
		*timeout_ms = UNACKED_RECHECK_MS;
		quiet = false;
	}
	if (!quiet) {
		p->quiet_since = 0;
		return false;
	}
	long long now = now_ms();
	if (!p->quiet_since)
		p->quiet_since = now;
	long long left = p->quiet_since + (long long)p->o->linger_ms - now;
	if (left > 0) {
		*timeout_ms = (int)left;
		return false;
	}
	note(p, KC_PUMP_NOTE_QUIET);
	return true;
}

static int run(struct kc_pump *p, struct kc_err *err)
{
	for (;;) {
		bool progress = false;
		int timeout_ms = -1;

		if (p->o->stop && *p->o->stop)
			return close_quickly(p, err) < 0 ? -1 : KC_PUMP_STOPPED;
		if (p->quit)
			return close_quickly(p, err) < 0 ? -1 : KC_PUMP_QUIT;
		if (read_conn(p, &progress, err) < 0 || write_output(p, &progress, err) < 0)
			return -1;
		if (p->output_gone)
			return close_quickly(p, err) < 0 ? -1 : KC_PUMP_OUTPUT_GONE;
		if (read_input(p, &progress, err) < 0 || write_conn(p, &progress, err) < 0)
			return -1;
		if (p->in_eof && p->up.len == 0 && !kc_conn_close_sent(p->c) &&
		    may_close(p, progress, &timeout_ms)) {
			if (kc_conn_close(p->c, err) < 0)
				return -1;
			progress = true;
		}
		if (kc_conn_tx_pending(p->c)) {
			int rc = kc_conn_flush(p->c, err);
			if (rc < 0 && rc != KC_CONN_AGAIN)
				return -1;
		}
		if (kc_conn_close_sent(p->c) && !kc_conn_tx_pending(p->c) &&
		    kc_conn_peer_closed(p->c) && p->down.len == 0)
			return KC_PUMP_CLOSED;
		if (!progress && wait_events(p, timeout_ms, err) < 0)
			return -1;
	}
}

const char *kc_data_path_name(enum kc_data_path path)
{
	return path == KC_PATH_SENDFILE ? "sendfile" : path == KC_PATH_SPLICE ? "splice" : "copy";
}

/* Zero copy where the channel has it and the fds allow it: the plain
 * stdin/stdout pipe mode only (hooks and echo need the bytes). */
void kc_pump_data_path(const struct kc_conn *c, const struct kc_pump_opts *o,
		       enum kc_data_path *in, enum kc_data_path *out)
{
	const struct kc_channel_caps *can = kc_conn_channel_caps(c);
	bool zc = !o->copy && !o->echo;
	struct stat st;

	*in = *out = KC_PATH_COPY;
	if (zc && !o->input && o->in_fd >= 0 && fstat(o->in_fd, &st) == 0) {
		if (S_ISREG(st.st_mode) && can->send_file)
			*in = KC_PATH_SENDFILE;
		else if (S_ISFIFO(st.st_mode) && can->send_pipe)
			*in = KC_PATH_SPLICE;
	}
	if (zc && !o->output && o->out_fd >= 0 && fstat(o->out_fd, &st) == 0 &&
	    S_ISFIFO(st.st_mode) && can->recv_pipe)
		*out = KC_PATH_SPLICE;
}

int kc_pump_run(struct kc_conn *c, const struct kc_pump_opts *opts, struct kc_err *err)
{
	struct kc_pump p = { .c = c, .o = opts, .rx_maybe = true };
	enum kc_data_path in, out;
	kc_pump_data_path(c, opts, &in, &out);
	p.zc_in = in != KC_PATH_COPY;
	p.zc_in_file = in == KC_PATH_SENDFILE;
	p.zc_out = out == KC_PATH_SPLICE;

	p.up.p = malloc(PUMP_BUF);
	p.down.p = malloc(PUMP_BUF);
	p.up.cap = p.down.cap = PUMP_BUF;
	int rc = p.up.p && p.down.p ? run(&p, err)
				    : kc_err_set(err, KC_E_INTERNAL, "out of memory");
	free(p.up.p);
	free(p.down.p);
	return rc;
}
