/* core/probe.c: kernel TLS capabilities by experiment (see probe.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/tls.h>

#include "core/channel.h"
#include "core/probe.h"

/* The kernel ciphers outside the cipher table.  Sizes are tls_crypto_info
 * (4) + iv + key + salt + rec_seq, spelled out so that ids newer than the
 * build host's <linux/tls.h> still probe right. */
static const struct kc_ktls_cipher other_kernel_ciphers[] = {
	{ 55, "sm4-gcm", "gcm(sm4)", 4 + 8 + 16 + 4 + 8 },
	{ 56, "sm4-ccm", "ccm(sm4)", 4 + 8 + 16 + 4 + 8 },
	{ 57, "aria-gcm-128", "gcm(aria)", 4 + 8 + 16 + 4 + 8 },
	{ 58, "aria-gcm-256", "gcm(aria)", 4 + 8 + 32 + 4 + 8 },
};

const struct kc_ktls_cipher *kc_ktls_cipher_by_id(unsigned int id)
{
	const struct kc_cipher *c = kc_cipher_by_kernel_id(id);
	if (c)
		return &c->kernel;
	for (size_t i = 0; i < sizeof other_kernel_ciphers / sizeof other_kernel_ciphers[0]; i++)
		if (other_kernel_ciphers[i].id == id)
			return &other_kernel_ciphers[i];
	return NULL;
}

int kc_probe_loopback_pair(int fds[2], struct kc_err *err)
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

/* Close a probe pair abortively (RST, no TIME_WAIT left behind: a run of
 * probes would otherwise leave dozens of them on loopback). */
static void close_pair(int fds[2])
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	for (int i = 0; i < 2; i++) {
		(void)setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(fds[i]);
	}
}

int kc_probe_kernel_rekey(struct kc_err *err)
{
	struct tls12_crypto_info_aes_gcm_128 ci = {
		.info = { .version = TLS_1_3_VERSION, .cipher_type = TLS_CIPHER_AES_GCM_128 },
	};
	int fds[2], rc = -1;

	if (kc_probe_loopback_pair(fds, err) < 0)
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
	close_pair(fds);
	return rc;
}

int kc_probe_kernel_rekey_quietly(void)
{
	FILE *f = fopen("/proc/net/tls_stat", "re");
	char line[128];
	int rc = 0;

	if (!f)
		return -1;
	while (rc == 0 && fgets(line, sizeof line, f))
		rc = strncmp(line, "TlsTxRekeyOk", 12) == 0 && isspace((unsigned char)line[12]);
	fclose(f);
	return rc;
}

int kc_probe_kernel_ulp(int *sys_errno, struct kc_err *err)
{
	int fds[2], rc;

	*sys_errno = 0;
	if (kc_probe_loopback_pair(fds, err) < 0)
		return -1;
	rc = setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof "tls");
	if (rc < 0)
		*sys_errno = errno;
	close_pair(fds);
	return rc == 0 ? 1 : 0;
}

/* A fresh pair with the TLS ULP on fds[0]; -1 with *err when impossible. */
static int ulp_pair(int fds[2], struct kc_err *err)
{
	if (kc_probe_loopback_pair(fds, err) < 0)
		return -1;
	if (kc_kernel_attach(fds[0], err) < 0) {
		close_pair(fds);
		return -1;
	}
	return 0;
}

/* An all-zero crypto_info of the exact size for cipher c. */
static socklen_t zero_info(unsigned char buf[64], uint16_t version,
			   const struct kc_ktls_cipher *c)
{
	struct tls_crypto_info hdr = { .version = version, .cipher_type = c->id };

	memset(buf, 0, 64);
	memcpy(buf, &hdr, sizeof hdr);
	return c->info_size;
}

int kc_probe_kernel_key(uint16_t version, uint16_t cipher_id, enum kc_dir dir,
			int *sys_errno, struct kc_err *err)
{
	const struct kc_ktls_cipher *c = kc_ktls_cipher_by_id(cipher_id);
	unsigned char info[64];
	int fds[2], rc;

	*sys_errno = 0;
	if (!c)
		return kc_err_set(err, KC_E_INTERNAL, "unknown kernel cipher id %u",
				  (unsigned)cipher_id);
	if (ulp_pair(fds, err) < 0)
		return -1;
	socklen_t len = zero_info(info, version, c);
	rc = setsockopt(fds[0], SOL_TLS, dir == KC_RX ? TLS_RX : TLS_TX, info, len);
	if (rc < 0)
		*sys_errno = errno;
	close_pair(fds);
	return rc == 0 ? 1 : 0;
}

int kc_probe_kernel_option(int optname, int *sys_errno, struct kc_err *err)
{
	union { unsigned int u; uint16_t u16; int i; } val;
	socklen_t len;
	int fds[2], rc;

	*sys_errno = 0;
	if (ulp_pair(fds, err) < 0)
		return -1;
	if (optname == TLS_RX_EXPECT_NO_PAD) {
		/* Answered only on a TLS 1.3 socket with a receive key (EINVAL
		 * otherwise, which still proves the option exists). */
		unsigned char info[64];
		socklen_t ilen = zero_info(info, KC_TLS13, kc_ktls_cipher_by_id(51));
		(void)setsockopt(fds[0], SOL_TLS, TLS_RX, info, ilen);
	}
	memset(&val, 0, sizeof val);
	/* TLS_TX_MAX_PAYLOAD_LEN is a u16; the others are 4-byte ints. */
	len = optname == TLS_TX_MAX_PAYLOAD_LEN ? sizeof val.u16 : sizeof val.u;
	rc = getsockopt(fds[0], SOL_TLS, optname, &val, &len);
	if (rc < 0)
		*sys_errno = errno;
	close_pair(fds);
	if (rc < 0 && *sys_errno == ENOPROTOOPT)
		return 0;
	return 1;
}
