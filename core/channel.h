/* core/channel.h: the record channel contract.
 *
 * A channel is what sits on the TCP socket after the handover and turns
 * plaintext into TLS records and back.  Two implementations share this
 * contract, which is the Linux kernel's kTLS semantics exactly, so that
 * core/conn runs the same code on both:
 *
 *   kernel (channel_kernel.c)  Linux kTLS: TCP_ULP "tls", SOL_TLS TLS_TX/RX.
 *   soft   (channel_soft.c)    the same in user space on GnuTLS's AEAD API,
 *                              for kernels without kTLS and for tests.
 *
 * The socket is non-blocking (the caller sets O_NONBLOCK before creating
 * the channel); every call here is non-blocking.
 *
 * recv(ch, buf, len, &type, &eor)
 *   Returns > 0: bytes of exactly ONE content type, *type set.  Consecutive
 *     application-data records may be merged into one call; a control
 *     record (alert, handshake, anything not 23) is always returned alone,
 *     in several pieces if buf is shorter than the record.  *eor is true
 *     when the returned bytes end a record (for data: the last record
 *     returned was consumed to its end).
 *   Returns 0 with *type != 0: an empty control record.
 *   Returns 0 with *type == 0: end of stream (TCP FIN, nothing buffered).
 *   Returns -1 with errno:
 *     EAGAIN       no complete record available now (poll the fd, but only
 *                  after a recv returned EAGAIN: the kernel may hold a
 *                  decrypted record without raising POLLIN, see
 *                  net/tls/tls_sw.c tls_sw_sock_is_readable)
 *     EKEYEXPIRED  a TLS 1.3 KeyUpdate record (a handshake record whose
 *                  first byte is 24) was returned to the end; no more
 *                  records until set_key(KC_RX) installs the new key.
 *                  Kernels before 6.14 never pause (and refuse the second
 *                  set_key with EBUSY).
 *     EBADMSG      a record failed authentication (sticky: every later
 *                  recv fails the same way; records before it are still
 *                  delivered first)
 *     EMSGSIZE     a record header announced more than 2^14 + overhead
 *     EINVAL       a record header with the wrong version bytes, or len 0
 *                  (both fatal: later reads may repeat the error or give
 *                  EAGAIN, as the kernel's parser does)
 *     ENOKEY       (user space) no receive key installed yet
 *     other        socket errors (ECONNRESET, ...)
 *   After set_key(KC_RX) call recv again before polling: the channel may
 *   hold complete records the fd will not signal.
 *
 * send(ch, type, buf, len)
 *   Sends len bytes as records of the given content type, at most 2^14
 *   plaintext bytes per record, the last record closed at the end of the
 *   call (no MSG_MORE).  Returns the number of bytes accepted (possibly
 *   fewer than len for data; a control message of at most 2^14 bytes is
 *   all or nothing) or -1 with errno (EAGAIN: wait for POLLOUT and retry).
 *   Records already accepted are sent in order even across set_key(KC_TX):
 *   bytes accepted before set_key use the old key.
 *
 * flush(ch)
 *   Push out anything the channel still holds (the soft channel's queued
 *   ciphertext; the kernel's open MSG_MORE record).  0 when nothing is
 *   left, -1/EAGAIN when the socket is full (poll POLLOUT, call again).
 *
 * tx_pending(ch): true while flush() still has work (poll POLLOUT then).
 *
 *   After a failed decryption the kernel refuses sends until SO_ERROR has
 *   been read; the user-space channel keeps sending.  Read SO_ERROR before
 *   a fatal alert and rely on neither.  A broken socket fails send even
 *   if records were queued in the same call.
 *
 * set_key(ch, dir, km)
 *   Install keys for a direction.  A second call for the same direction is
 *   a TLS 1.3 key update (km->seq is then 0); on a channel that cannot
 *   rekey it fails with status KC_E_NOREKEY; a second call under TLS 1.2
 *   fails with KC_E_PROTOCOL, and one that changes version or cipher with
 *   KC_E_INTERNAL (the kernel: EINVAL).
 *
 * rec_seq(ch, dir, &seq): the sequence number of the next record in that
 *   direction (records protected under the current key, after a rekey);
 *   -1/EBUSY before that direction has a key.
 *
 * set_limits(ch, lim)
 *   Record sizes agreed in the handshake (RFC 8449, RFC 6066), after both
 *   keys are installed: from then on no record sent carries more than
 *   lim->tx bytes of plaintext, and a received record with more than
 *   lim->rx bytes of content (TLS 1.3: content type and padding aside)
 *   fails recv with EMSGSIZE where the channel sees each record
 *   (lim->rx_exact; the kernel merges data records, so it cannot).  The
 *   channel fills in how it keeps them (tx_how) and whether the kernel's
 *   TLS_RX_EXPECT_NO_PAD is in force (TLS 1.3).
 *
 * free(ch): releases the channel, wiping key material; does not close fd.
 *
 * Zero-copy paths (NULL on channels without them; ch->caps says which a
 * channel has):
 *
 * send_from(ch, in_fd, len, file)
 *   Sends up to len bytes of application data read straight from in_fd,
 *   a regular file (file=true: sendfile from its current offset) or a pipe
 *   (splice), never through user space.  Returns the bytes sent, 0 at the
 *   end of in_fd, or -1 with errno; EAGAIN means the socket is full or (a
 *   pipe) empty.  A short count may leave the last record open: it is
 *   closed by the next send, a control record or flush().
 *
 * recv_to(ch, out_fd, len)
 *   Moves decrypted application data straight into the pipe out_fd
 *   (splice), at most one record per call.  Returns the bytes moved or -1
 *   with errno: EINVAL when the next record is not application data (it
 *   stays queued: recv() returns it), EAGAIN when nothing is ready or the
 *   pipe is full, EPROTO for a malformed record header, otherwise as
 *   recv().  An error that ends the stream (EBADMSG, EMSGSIZE, EPROTO) may
 *   be reported to this call only.  0: end of stream or nothing spliced;
 *   recv() tells which. */
#ifndef KC_CHANNEL_H
#define KC_CHANNEL_H

#include <netinet/tcp.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/keys.h"

#define KC_REC_CCS 20
#define KC_REC_ALERT 21
#define KC_REC_HANDSHAKE 22
#define KC_REC_DATA 23

#define KC_MAX_PLAINTEXT 16384

/* Older libc and kernel headers lack these kernel constants. */
#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef TLS_TX_ZEROCOPY_RO
#define TLS_TX_ZEROCOPY_RO 3        /* Linux 5.19 */
#endif
#ifndef TLS_RX_EXPECT_NO_PAD
#define TLS_RX_EXPECT_NO_PAD 4      /* Linux 6.0 */
#endif
#ifndef TLS_TX_MAX_PAYLOAD_LEN
#define TLS_TX_MAX_PAYLOAD_LEN 5    /* Linux 6.19 */
#endif

struct kc_channel;

/* How the channel keeps the send limit. */
enum kc_tx_limit_how {
	KC_TXLIM_RECORDS,        /* it builds the records itself (user space) */
	KC_TXLIM_KERNEL_OPTION,  /* the kernel's TLS_TX_MAX_PAYLOAD_LEN (6.19+) */
	KC_TXLIM_WRITES,         /* each write at most tx bytes, the record it
				    opened closed before the next (older kernels) */
};

struct kc_record_limits {
	size_t tx;               /* plaintext bytes per record we send, at most */
	size_t rx;               /* content bytes per record we accept, at most */
	enum kc_tx_limit_how tx_how;
	bool rx_exact;           /* every received record is checked */
	bool rx_no_pad;          /* the kernel's TLS_RX_EXPECT_NO_PAD is on */
};

/* Stable names for reports: "records", "kernel-option", "writes". */
static inline const char *kc_tx_limit_how_name(enum kc_tx_limit_how how)
{
	return how == KC_TXLIM_KERNEL_OPTION ? "kernel-option"
	     : how == KC_TXLIM_WRITES ? "writes" : "records";
}

struct kc_channel_ops {
	int (*set_key)(struct kc_channel *ch, enum kc_dir dir,
		       const struct kc_key_material *km, struct kc_err *err);
	ssize_t (*recv)(struct kc_channel *ch, void *buf, size_t len,
			uint8_t *type, bool *eor);
	ssize_t (*send)(struct kc_channel *ch, uint8_t type, const void *buf,
			size_t len);
	int (*flush)(struct kc_channel *ch);
	bool (*tx_pending)(const struct kc_channel *ch);
	int (*rec_seq)(struct kc_channel *ch, enum kc_dir dir, uint64_t *seq);
	int (*set_limits)(struct kc_channel *ch, struct kc_record_limits *lim,
			  struct kc_err *err);
	void (*free)(struct kc_channel *ch);
	ssize_t (*send_from)(struct kc_channel *ch, int in_fd, size_t len, bool file);
	ssize_t (*recv_to)(struct kc_channel *ch, int out_fd, size_t len);
};

enum kc_channel_kind { KC_CHANNEL_KERNEL, KC_CHANNEL_USER_SPACE };

/* "kernel", "user-space" */
static inline const char *kc_channel_kind_name(enum kc_channel_kind kind)
{
	return kind == KC_CHANNEL_KERNEL ? "kernel" : "user-space";
}

/* What a channel can do, fixed when it is made. */
struct kc_channel_caps {
	bool rekey;       /* a second set_key per direction: TLS 1.3 key update */
	bool send_file;   /* send_from a regular file (sendfile) */
	bool send_pipe;   /* send_from a pipe (splice) */
	bool recv_pipe;   /* recv_to a pipe (splice) */
};

struct kc_channel {
	const struct kc_channel_ops *ops;
	int fd;
	enum kc_channel_kind kind;
	struct kc_channel_caps caps;
};

/* Kernel channel.  kc_kernel_attach() sets TCP_ULP "tls" on a connected
 * socket, before the handshake (plain TCP passes through until keys are
 * installed); on failure the status is KC_E_KTLS and the message says why
 * and what to do (for example "load the tls module: modprobe tls").
 * kc_channel_kernel_new finds out once whether this kernel can rekey
 * (core/probe.h); every zero-copy path is there. */
int kc_kernel_attach(int fd, struct kc_err *err);
struct kc_channel *kc_channel_kernel_new(int fd, struct kc_err *err);

/* User-space channel, without zero-copy paths.  no_rekey makes it behave
 * like a kernel before 6.14 (caps.rekey false: no pause after a KeyUpdate,
 * second set_key fails with KC_E_NOREKEY), so that path can be tested on
 * any machine. */
struct kc_soft_opts {
	bool no_rekey;
	/* TLS 1.3: pad every data record sent with zeros to the largest
	 * inner plaintext the send limit allows (2^14 + 1 without one), so a
	 * peer's handling of maximum-size padded records can be tried
	 * (`ktlsctl probe`'s max-record check).  The kernel never pads. */
	bool pad_data;
};
struct kc_channel *kc_channel_soft_new(int fd, const struct kc_soft_opts *opts,
				       struct kc_err *err);

static inline void kc_channel_free(struct kc_channel *ch)
{
	if (ch)
		ch->ops->free(ch);
}

#endif
