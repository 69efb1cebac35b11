/* core/probe.c: kernel TLS capabilities by experiment (see probe.h). */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/tls.h>

#include "core/channel.h"
#include "core/probe.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

/* A connected loopback TCP pair; returns 0 and both fds, or -1. */
static int loopback_pair(int fds[2], struct kc_err *err)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fds[0] = fds[1] = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0)
		goto fail;
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof a) < 0)
		goto fail;
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fds[1] < 0)
		goto fail;
	close(l);
	return 0;
fail:
	kc_err_errno(err, KC_E_IO, errno, "cannot make a loopback socket pair for probing");
	if (l >= 0)
		close(l);
	if (fds[0] >= 0)
		close(fds[0]);
	return -1;
}

int kc_probe_kernel_rekey(struct kc_err *err)
{
	struct tls12_crypto_info_aes_gcm_128 ci = {
		.info = { .version = TLS_1_3_VERSION, .cipher_type = TLS_CIPHER_AES_GCM_128 },
	};
	int fds[2], rc = -1;

	if (loopback_pair(fds, err) < 0)
		return -1;
	if (kc_kernel_attach(fds[0], err) < 0)
		goto out;
	if (setsockopt(fds[0], SOL_TLS, TLS_TX, &ci, sizeof ci) < 0) {
		kc_err_errno(err, KC_E_KTLS, errno, "the kernel refuses a TLS 1.3 AES-128-GCM key");
		goto out;
	}
	ci.key[0] = 1;   /* a different (dummy) key: this socket carries nothing */
	if (setsockopt(fds[0], SOL_TLS, TLS_TX, &ci, sizeof ci) == 0)
		rc = 1;
	else if (errno == EBUSY)
		rc = 0;
	else
		kc_err_errno(err, KC_E_KTLS, errno, "cannot tell whether the kernel can rekey");
out:
	close(fds[0]);
	close(fds[1]);
	return rc;
}
