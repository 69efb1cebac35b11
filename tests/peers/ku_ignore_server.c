/* tests/peers/ku_ignore_server.c: a TLS 1.3 echo server that never answers
 * KeyUpdate(update_requested), for test_probe.py's keyupdate check.
 *
 *   ku_ignore_server PORT CERT KEY
 *
 * Listens on 127.0.0.1:PORT and serves one connection after another until
 * killed: the GnuTLS handshake (ktlsctl's core), then the user-space record
 * channel reads every record.  A peer's KeyUpdate is fed to GnuTLS, which
 * derives the new receive key, and that key is installed; the request in
 * it is ignored: this server never sends a KeyUpdate, and echoes data
 * under its first send key (RFC 8446 §4.6.3 says it must update first).
 * close_notify is answered with close_notify.  GnuTLS's own servers (and
 * OpenSSL's) always answer, which is why this one reads the records
 * itself. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/channel.h"
#include "core/handshake.h"
#include "core/keys.h"
#include "core/net.h"

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
		fprintf(stderr, "ku_ignore_server: %s\n", err.msg);
	return rc;
}

/* Send one record of type, waiting for room. */
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

static void serve(int fd, const struct kc_tls_opts *tls, struct kc_creds *creds)
{
	static unsigned char buf[KC_MAX_PLAINTEXT + 256];
	static const unsigned char close_notify[2] = { 1, 0 };
	gnutls_session_t s = NULL;
	struct kc_channel *ch = NULL;
	struct kc_err err;

	if (kc_tls_handshake(fd, tls, creds, &s, &err) < 0) {
		fprintf(stderr, "ku_ignore_server: %s\n", err.msg);
		return;
	}
	gnutls_handshake_set_read_function(s, discard);
	if (kc_set_nonblocking(fd, 1) < 0 || !(ch = kc_channel_soft_new(fd, NULL, &err)) ||
	    install(ch, s, KC_RX, false) < 0 || install(ch, s, KC_TX, false) < 0)
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
		if (type == KC_REC_DATA && send_all(ch, KC_REC_DATA, buf, (size_t)n) < 0)
			break;
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
	struct kc_tls_opts tls = { .role = KC_SERVER, .versions = KC_VERS_13,
				   .handshake_timeout_ms = 10000 };
	struct kc_creds *creds;
	struct kc_err err;
	char desc[KC_ADDRSTR_MAX];

	if (argc != 4) {
		fprintf(stderr, "usage: ku_ignore_server PORT CERT KEY\n");
		return 2;
	}
	snprintf(hp.port, sizeof hp.port, "%s", argv[1]);
	tls.certfile[0] = argv[2];
	tls.n_certfiles = 1;
	tls.keyfile[0] = argv[3];
	tls.n_keyfiles = 1;
	if (gnutls_global_init() < 0 || kc_creds_new(&tls, &creds, &err) < 0) {
		fprintf(stderr, "ku_ignore_server: cannot load %s, %s\n", argv[2], argv[3]);
		return 1;
	}
	int lfd = kc_tcp_listen(&hp, desc, &err);
	if (lfd < 0) {
		fprintf(stderr, "ku_ignore_server: %s\n", err.msg);
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
