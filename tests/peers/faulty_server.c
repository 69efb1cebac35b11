/* tests/peers/faulty_server.c: a TLS echo server with one fault, chosen on
 * its command line, for test_probe.py: each fault fails exactly one of
 * `ktlsctl probe`'s checks.
 *
 *   faulty_server FAULT PORT CERT KEY
 *
 * Listens on 127.0.0.1:PORT and serves one connection after another until
 * killed: the GnuTLS handshake (ktlsctl's core), then the user-space record
 * channel reads every record and echoes data.  A peer's KeyUpdate is fed
 * to GnuTLS, which derives the new receive key, and that key is installed;
 * the request in it is ignored, whatever the fault (so every fault fails
 * the keyupdate check too: run it with --only); close_notify is answered
 * with close_notify.  GnuTLS's own servers (and
 * OpenSSL's) do all of this right, which is why this one reads the records
 * itself.  The faults:
 *
 *   ku-ignore         no other: this server never sends a KeyUpdate when
 *                     asked, and echoes data under its first send key
 *                     (RFC 8446 §4.6.3 says it must update first).  TLS
 *                     1.3 only.                               (keyupdate)
 *   rsl-ignore        the client's record_size_limit is agreed in the
 *                     handshake (GnuTLS answers the extension) but never
 *                     kept: each echo goes out in records of up to 2^14
 *                     bytes.                          (record-size-limit)
 *   max-record-close  a read of 2^14 bytes or more (a full record) ends
 *                     the connection with a reset.           (max-record)
 *   reuse-close       the second resumed handshake of its life ends the
 *                     connection with a reset once the client's request
 *                     is in: a ticket (or session) works once.
 *                                                           (ticket-reuse)
 *   ku-stale          after echoing 1 MiB it sends a KeyUpdate of its own
 *                     but goes on under its old send key.
 *                                                     (server-keyupdate)
 *
 * Every fault but ku-ignore serves TLS 1.2 too. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/channel.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/net.h"

enum fault { KU_IGNORE, RSL_IGNORE, MAX_RECORD_CLOSE, REUSE_CLOSE, KU_STALE };

static const char *const fault_names[] = {
	"ku-ignore", "rsl-ignore", "max-record-close", "reuse-close", "ku-stale",
};

static enum fault fault;
static unsigned resumed;        /* resumed handshakes so far */

static int discard(gnutls_session_t s, gnutls_record_encryption_level_t level,
		   gnutls_handshake_description_t htype, const void *data, size_t size)
{
	return 0;
}

static int install(struct kc_channel *ch, gnutls_session_t s, enum kc_dir dir, bool update)
{
	struct kc_key_material km;
	struct kc_err err;
	int rc = kc_keys_from_session(s, dir, &km, &err);
	if (rc == 0) {
		if (update)
			km.seq = 0;
		rc = ch->ops->set_key(ch, dir, &km, &err);
	}
	kc_keys_wipe(&km);
	if (rc < 0)
		fprintf(stderr, "faulty_server: %s\n", err.msg);
	return rc;
}

/* Send n bytes as records of type, waiting for room. */
static int send_all(struct kc_channel *ch, uint8_t type, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = ch->ops->send(ch, type, p, n);
		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w < 0) {
			struct pollfd pf = { .fd = ch->fd, .events = POLLOUT };
			poll(&pf, 1, 1000);
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	while (ch->ops->flush(ch) < 0) {
		if (errno != EAGAIN)
			return -1;
		struct pollfd pf = { .fd = ch->fd, .events = POLLOUT };
		poll(&pf, 1, 1000);
	}
	return 0;
}

/* The record size limit the client announced, kept unless the fault is
 * to ignore it. */
static int set_limits(struct kc_channel *ch, gnutls_session_t s)
{
	struct kc_record_limits lim = { .tx = KC_MAX_PLAINTEXT, .rx = KC_MAX_PLAINTEXT };
	struct kc_err err;
	gnutls_range_st all = { KC_MAX_PLAINTEXT, KC_MAX_PLAINTEXT }, next, rest;

	if (fault != RSL_IGNORE && gnutls_range_split(s, &all, &next, &rest) == 0 &&
	    next.high > 0 && next.high < KC_MAX_PLAINTEXT)
		lim.tx = next.high;
	return ch->ops->set_limits(ch, &lim, &err);
}

/* Make the coming close() a reset, whatever is left unread. */
static void reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static void serve(int fd, const struct kc_tls_opts *tls, struct kc_creds *creds)
{
	static unsigned char buf[KC_MAX_PLAINTEXT + 256];
	static const unsigned char close_notify[2] = { 1, 0 };
	static const unsigned char key_update[5] = { 24, 0, 0, 1, 0 };
	gnutls_session_t s = NULL;
	struct kc_channel *ch = NULL;
	struct kc_err err;
	size_t echoed = 0;
	bool stale_sent = false;

	if (kc_tls_handshake(fd, tls, creds, &s, &err) < 0) {
		fprintf(stderr, "faulty_server: %s\n", err.msg);
		return;
	}
	if (gnutls_session_is_resumed(s) && ++resumed == 2 && fault == REUSE_CLOSE) {
		/* Once the client's first record is here, reset: it then
		 * reads a reset, never fails a write first. */
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		poll(&pf, 1, 5000);
		reset(fd);
		goto out;
	}
	bool tls13 = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3;
	gnutls_handshake_set_read_function(s, discard);
	if (kc_set_nonblocking(fd, 1) < 0 || !(ch = kc_channel_soft_new(fd, NULL, &err)) ||
	    install(ch, s, KC_RX, false) < 0 || install(ch, s, KC_TX, false) < 0 ||
	    set_limits(ch, s) < 0)
		goto out;
	for (;;) {
		uint8_t type = 0;
		bool eor;
		ssize_t n = ch->ops->recv(ch, buf, sizeof buf, &type, &eor);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			poll(&pf, 1, 1000);
			continue;
		}
		if (n <= 0 && type == 0)
			break;                 /* end of stream or error */
		if (type == KC_REC_DATA && fault == MAX_RECORD_CLOSE && n >= KC_MAX_PLAINTEXT) {
			reset(fd);
			break;
		}
		if (type == KC_REC_DATA && send_all(ch, KC_REC_DATA, buf, (size_t)n) < 0)
			break;
		echoed += type == KC_REC_DATA ? (size_t)n : 0;
		if (fault == KU_STALE && tls13 && !stale_sent && echoed >= (1u << 20)) {
			if (send_all(ch, KC_REC_HANDSHAKE, key_update, sizeof key_update) < 0)
				break;
			stale_sent = true;
		}
		if (type == KC_REC_ALERT) {
			if (n == 2 && buf[1] == 0)
				send_all(ch, KC_REC_ALERT, close_notify, sizeof close_notify);
			break;
		}
		if (type == KC_REC_HANDSHAKE && n >= 1 && buf[0] == 24) {
			/* KeyUpdate: new receive key, request ignored */
			if (gnutls_handshake_write(s, GNUTLS_ENCRYPTION_LEVEL_APPLICATION, buf,
						   (size_t)n) < 0 ||
			    install(ch, s, KC_RX, true) < 0)
				break;
		}
	}
out:
	kc_channel_free(ch);
	gnutls_deinit(s);
}

int main(int argc, char **argv)
{
	struct kc_hostport hp = { .host = "127.0.0.1", .host_is_ip = true };
	struct kc_tls_opts tls = { .role = KC_SERVER, .handshake_timeout_ms = 10000 };
	struct kc_creds *creds;
	struct kc_err err;
	char desc[KC_ADDRSTR_MAX];
	size_t i;

	for (i = 0; argc == 5 && i < sizeof fault_names / sizeof fault_names[0]; i++)
		if (strcmp(argv[1], fault_names[i]) == 0)
			break;
	if (argc != 5 || i == sizeof fault_names / sizeof fault_names[0]) {
		fprintf(stderr, "usage: faulty_server ku-ignore|rsl-ignore|max-record-close|"
			"reuse-close|ku-stale PORT CERT KEY\n");
		return 2;
	}
	fault = (enum fault)i;
	if (fault == KU_IGNORE)
		tls.versions = KC_VERS_13;
	snprintf(hp.port, sizeof hp.port, "%s", argv[2]);
	tls.certfile[0] = argv[3];
	tls.n_certfiles = 1;
	tls.keyfile[0] = argv[4];
	tls.n_keyfiles = 1;
	if (gnutls_global_init() < 0 || kc_creds_new(&tls, &creds, &err) < 0) {
		fprintf(stderr, "faulty_server: cannot load %s, %s\n", argv[3], argv[4]);
		return 1;
	}
	int lfd = kc_tcp_listen(&hp, desc, &err);
	if (lfd < 0) {
		fprintf(stderr, "faulty_server: %s\n", err.msg);
		return 1;
	}
	for (;;) {
		int fd = kc_tcp_accept(lfd, -1, desc, &err);
		if (fd < 0)
			continue;
		serve(fd, &tls, creds);
		close(fd);
	}
}
