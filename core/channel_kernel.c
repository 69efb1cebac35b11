/* core/channel_kernel.c: the record channel on Linux kernel TLS.
 *
 * The kernel encrypts and decrypts; this file only speaks its socket API
 * (Documentation/networking/tls.rst): every read through recvmsg with room for the
 * record-type cmsg, control records sent with TLS_SET_RECORD_TYPE, keys
 * through setsockopt(SOL_TLS), sequence numbers through getsockopt. */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/channel.h"
#include "core/probe.h"

#ifndef TLS_SET_RECORD_TYPE
#define TLS_SET_RECORD_TYPE 1
#endif
#ifndef TLS_GET_RECORD_TYPE
#define TLS_GET_RECORD_TYPE 2
#endif

struct kernel_channel {
	struct kc_channel base;
	bool keyed[2];                 /* by enum kc_dir */
	uint16_t version;
	const struct kc_cipher *cipher;
	bool open_record;              /* a short send may have left the last
					  record open (more data may join it) */
	size_t write_max;              /* KC_TXLIM_WRITES: bytes per send, at
					  most; 0: no limit of our own */
};

int kc_kernel_attach(int fd, struct kc_err *err)
{
	if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0)
		return 0;
	int e = errno;
	if (e == ENOENT)
		return kc_err_set(err, KC_E_KTLS,
				  "this kernel has no TLS ULP (tls module not loaded or "
				  "CONFIG_TLS off): try 'modprobe tls'");
	if (e == ENOTCONN) {
		/* The kernel takes only an established connection: a client
		 * that sent its flight and closed at once is past that. */
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) == 0 &&
		    ti.tcpi_state == TCP_CLOSE_WAIT)
			return kc_err_set(err, KC_E_KTLS, "the peer had already closed its side of "
					  "the connection (the kernel enables TLS only on an open one)");
		return kc_err_set(err, KC_E_KTLS, "the socket is not connected");
	}
	if (e == EEXIST)
		return kc_err_set(err, KC_E_KTLS, "the socket already has an upper-layer protocol");
	if (e == ENOPROTOOPT)
		return kc_err_set(err, KC_E_KTLS, "this kernel has no TCP_ULP support");
	return kc_err_errno(err, KC_E_KTLS, e, "cannot enable kernel TLS on the socket");
}

static struct kernel_channel *K(struct kc_channel *ch)
{
	return (struct kernel_channel *)ch;
}

static int kernel_set_key(struct kc_channel *ch, enum kc_dir dir,
			  const struct kc_key_material *km, struct kc_err *err)
{
	struct kernel_channel *k = K(ch);
	union kc_crypto_info ci;
	socklen_t len;

	if (kc_keys_to_crypto_info(km, &ci, &len, err) < 0)
		return -1;
	int rc = setsockopt(ch->fd, SOL_TLS, dir == KC_RX ? TLS_RX : TLS_TX, &ci, len);
	int e = errno;
	kc_crypto_info_wipe(&ci);
	if (rc == 0) {
		/* A kernel that took a second key can rekey, whatever the
		 * probe said. */
		ch->caps.rekey |= k->keyed[dir];
		k->keyed[dir] = true;
		k->version = km->version;
		k->cipher = kc_cipher_by_gnutls(km->cipher);
		return 0;
	}
	const char *what = dir == KC_RX ? "receive" : "send";
	if (k->keyed[dir] && e == EBUSY)
		return kc_err_set(err, KC_E_NOREKEY,
				  "this kernel cannot install new kTLS %s keys (TLS 1.3 key "
				  "update needs Linux 6.14 or later); use --ktls off on this kernel",
				  what);
	if (e == ENOENT)
		return kc_err_set(err, KC_E_KTLS,
				  "the kernel lacks the crypto for %s (%s %s): load its module "
				  "or choose another --cipher", kc_cipher_name(km->cipher),
				  km->version == KC_TLS13 ? "TLS1.3" : "TLS1.2", what);
	if (e == EINVAL || e == ENOPROTOOPT)
		return kc_err_set(err, KC_E_KTLS,
				  "the kernel does not support %s with %s for %s",
				  kc_cipher_name(km->cipher),
				  km->version == KC_TLS13 ? "TLS1.3" : "TLS1.2", what);
	return kc_err_errno(err, KC_E_KTLS, e, "cannot install kTLS %s keys", what);
}

static ssize_t kernel_recv(struct kc_channel *ch, void *buf, size_t len,
			   uint8_t *type, bool *eor)
{
	union {
		char raw[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.raw, .msg_controllen = sizeof cbuf.raw,
	};

	*type = 0;
	*eor = false;
	ssize_t n = recvmsg(ch->fd, &msg, MSG_DONTWAIT);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE)
			*type = *(uint8_t *)CMSG_DATA(c);
	/* A 0 return is EOF only when no record type came with it. */
	if (n > 0 && *type == 0)
		*type = KC_REC_DATA;
	*eor = (msg.msg_flags & MSG_EOR) != 0;
	return n;
}

/* sendmsg with an explicit record type. */
static ssize_t send_typed(int fd, uint8_t type, const void *buf, size_t len)
{
	union {
		char raw[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.raw, .msg_controllen = sizeof cbuf.raw,
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_TLS;
	c->cmsg_type = TLS_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*(uint8_t *)CMSG_DATA(c) = type;
	return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int kernel_flush(struct kc_channel *ch);

/* Without TLS_TX_MAX_PAYLOAD_LEN a record holds what one send put in it,
 * plus what the next adds while it is open (a short send leaves it so):
 * sends of at most write_max bytes, each started on a closed record, keep
 * every record within the limit.  Returns the bytes this send may take,
 * or -1 (EAGAIN: the open record could not be closed yet). */
static ssize_t write_room(struct kernel_channel *k, size_t len)
{
	if (!k->write_max)
		return (ssize_t)len;
	if (k->open_record && kernel_flush(&k->base) < 0)
		return -1;
	return (ssize_t)(len < k->write_max ? len : k->write_max);
}

static ssize_t kernel_send(struct kc_channel *ch, uint8_t type, const void *buf, size_t len)
{
	struct kernel_channel *k = K(ch);
	ssize_t room = write_room(k, len);
	if (room < 0)
		return -1;
	ssize_t n = type == KC_REC_DATA
		? send(ch->fd, buf, (size_t)room, MSG_DONTWAIT | MSG_NOSIGNAL)
		: send_typed(ch->fd, type, buf, (size_t)room);
	if (n >= 0 && k->write_max)
		k->open_record = (size_t)n < (size_t)room;
	return n;
}

/* A zero-length send carrying a record-type cmsg pushes any open MSG_MORE
 * record (tls_sw_sendmsg on an empty send): called before close_notify so that unflushed
 * data can never be lost at shutdown. */
static int kernel_flush(struct kc_channel *ch)
{
	if (!K(ch)->keyed[KC_TX])
		return 0;
	if (send_typed(ch->fd, KC_REC_DATA, NULL, 0) < 0)
		return -1;
	K(ch)->open_record = false;
	return 0;
}

static bool kernel_tx_pending(const struct kc_channel *ch)
{
	return ((const struct kernel_channel *)ch)->open_record;
}

/* sendfile asked for more than the file holds leaves its last record open
 * on kernels before 6.5 (no splice_eof): ask for at most what is left. */
static size_t file_left(int fd, size_t len)
{
	struct stat st;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (pos < 0 || fstat(fd, &st) < 0)
		return len;
	if (st.st_size <= pos)
		return 1;   /* at the end: sendfile says 0 (or the file grew) */
	return (uint64_t)(st.st_size - pos) < len ? (size_t)(st.st_size - pos) : len;
}

static ssize_t kernel_send_from(struct kc_channel *ch, int in_fd, size_t len, bool file)
{
	ssize_t n, room = write_room(K(ch), len);
	if (room < 0)
		return -1;
	len = (size_t)room;
	if (file) {
		len = file_left(in_fd, len);
		n = sendfile(ch->fd, in_fd, NULL, len);
	} else {
		n = splice(in_fd, NULL, ch->fd, NULL, len, SPLICE_F_NONBLOCK);
	}
	if (n > 0 && (size_t)n < len)
		K(ch)->open_record = true;
	else if (n > 0 && K(ch)->write_max)
		K(ch)->open_record = false;   /* a whole send closes its record */
	return n;
}

/* Whether a record waits at the head of the receive queue: a control
 * record peeks fine (with its type), where splice said EINVAL. */
static bool record_queued(int fd)
{
	unsigned char b, cbuf[CMSG_SPACE(1)];
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof cbuf };
	return recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT) >= 0;
}

/* SPLICE_F_NONBLOCK, not the socket's O_NONBLOCK, is what keeps kTLS's
 * splice_read from sleeping (tls_sw_splice_read).  The kernel says EINVAL
 * both for a control record next and for a malformed record header; the
 * latter stops its record parser and is reported to this one read only
 * (later reads say EAGAIN), so it becomes EPROTO here. */
static ssize_t kernel_recv_to(struct kc_channel *ch, int out_fd, size_t len)
{
	ssize_t n = splice(ch->fd, NULL, out_fd, NULL, len, SPLICE_F_NONBLOCK);
	if (n < 0 && errno == EINVAL && !record_queued(ch->fd))
		errno = EPROTO;
	return n;
}

static int kernel_rec_seq(struct kc_channel *ch, enum kc_dir dir, uint64_t *seq)
{
	struct kernel_channel *k = K(ch);
	union kc_crypto_info ci;

	if (!k->cipher) {
		errno = EBUSY;   /* no key yet, as getsockopt says */
		return -1;
	}
	/* getsockopt wants the exact struct size, and hands back the key too:
	 * wipe it at once. */
	socklen_t len = k->cipher->kernel.info_size;
	int rc = getsockopt(ch->fd, SOL_TLS, dir == KC_RX ? TLS_RX : TLS_TX, &ci, &len);
	if (rc == 0)
		*seq = kc_crypto_info_rec_seq(&ci, k->cipher);
	int e = errno;
	kc_crypto_info_wipe(&ci);
	errno = e;
	return rc;
}

/* The send limit by the kernel's own option where it has one, else by
 * the size of our writes; TLS 1.3 reads faster when the kernel may
 * decrypt in place, which it does when told to expect no padding (a
 * padded record is decrypted again, counted in TlsDecryptRetry). */
static int kernel_set_limits(struct kc_channel *ch, struct kc_record_limits *lim,
			     struct kc_err *err)
{
	struct kernel_channel *k = K(ch);
	int one = 1;

	lim->rx_exact = false;
	lim->rx_no_pad = k->version == KC_TLS13 &&
			 setsockopt(ch->fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, &one, sizeof one) == 0;
	lim->tx_how = KC_TXLIM_KERNEL_OPTION;
	if (lim->tx >= KC_MAX_PLAINTEXT)
		return 0;
	uint16_t max = (uint16_t)lim->tx;
	if (setsockopt(ch->fd, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN, &max, sizeof max) == 0)
		return 0;
	if (errno != ENOPROTOOPT && errno != EINVAL)
		return kc_err_errno(err, KC_E_KTLS, errno,
				    "cannot limit kTLS records to %zu bytes", lim->tx);
	lim->tx_how = KC_TXLIM_WRITES;
	k->write_max = lim->tx;
	return 0;
}

static void kernel_free(struct kc_channel *ch)
{
	free(ch);
}

static const struct kc_channel_ops kernel_ops = {
	.set_key = kernel_set_key,
	.recv = kernel_recv,
	.send = kernel_send,
	.flush = kernel_flush,
	.tx_pending = kernel_tx_pending,
	.rec_seq = kernel_rec_seq,
	.set_limits = kernel_set_limits,
	.free = kernel_free,
	.send_from = kernel_send_from,
	.recv_to = kernel_recv_to,
};

struct kc_channel *kc_channel_kernel_new(int fd, struct kc_err *err)
{
	struct kernel_channel *k = calloc(1, sizeof *k);
	if (!k) {
		kc_err_set(err, KC_E_INTERNAL, "out of memory");
		return NULL;
	}
	k->base.ops = &kernel_ops;
	k->base.fd = fd;
	k->base.kind = KC_CHANNEL_KERNEL;
	/* Asked once, when the channel is made: a key update must know
	 * before its KeyUpdate goes out.  The quiet answer first, because a
	 * probe socket's keys count in /proc/net/tls_stat, where users (and
	 * the VM tier) see what the sessions did. */
	int rekey = kc_probe_kernel_rekey_quietly();
	if (rekey < 0)
		rekey = kc_probe_kernel_rekey(NULL);
	k->base.caps = (struct kc_channel_caps){
		.rekey = rekey == 1, .send_file = true, .send_pipe = true, .recv_pipe = true,
	};
	return &k->base;
}
