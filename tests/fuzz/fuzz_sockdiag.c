/* tests/fuzz/fuzz_sockdiag.c: libFuzzer target for core/diag/sockdiag.c's
 * netlink reply parser (kc_sockdiag_parse: nlmsghdr, NLMSG_NOOP/ERROR/
 * DONE, SOCK_DIAG_BY_FAMILY with inet_diag_msg, INET_DIAG_INFO and the
 * nested INET_DIAG_ULP_INFO / INET_ULP_INFO_TLS attributes) and the
 * "sockets" view built from what it found (kc_sockdiag_view).
 *
 * Input:
 *   byte 0   bit 0  opts.all_tcp (list every TCP socket, not only kTLS)
 *   then     the received buffers of one dump, each a 2-byte big-endian
 *            length and that many bytes (the last one takes what is left
 *            when its length runs past the input), each fed to one
 *            kc_sockdiag_parse call in its own exactly sized buffer, as
 *            recvmsg would hand them over, until one fails or says done.
 *
 * Checks, against a second reading of the netlink rules written here
 * from linux/netlink.h, inet_diag.h and sockdiag.h (not from sockdiag.c):
 * the call fails exactly on a malformed message or attribute (header or
 * nlmsg_len past the buffer, short inet_diag_msg, nla_len below 4 or past
 * its container at any nesting level, a short u16 TLS attribute, a short
 * NLMSG_ERROR, an error code below -4095) and on an NLMSG_ERROR /
 * NLMSG_DONE carrying a negative errno (then in err.sys_errno), with
 * KC_E_IO and a message;
 * done is set exactly at NLMSG_DONE; tcp_seen, ulp_seen, interrupted and
 * every field of every socket listed (addresses, ports, state and its ss
 * name, ULP name, TLS version/cipher/conf and their names, flags) are what
 * the messages say, and sockets are listed only for AF_INET/AF_INET6 with
 * ULP "tls" (any ULP with all_tcp).  Then the view is a valid tree
 * (fuzz_view.h) with one list element per socket, each with every key
 * sockdiag.h documents. */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/diag/sockdiag.h"
#include "fuzz_view.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz_sockdiag: %s\n", what);
	abort();
}

/* ---- the model ---------------------------------------------------------- */

#define HDR 16          /* struct nlmsghdr */
#define DIAG_MSG 72     /* struct inet_diag_msg */
#define M_TYPE_NOOP 1
#define M_TYPE_ERROR 2
#define M_TYPE_DONE 3
#define M_TYPE_SOCK_DIAG 20
#define M_DUMP_INTR 0x10

struct msock {
	int family;
	uint8_t src[16], dst[16];
	uint16_t sport, dport;   /* host order */
	uint8_t state;
	uint32_t uid, inode;
	char ulp[16];
	int version, cipher, txconf, rxconf, max_payload;   /* -1: absent */
	bool zc, nopad;
};

struct model {
	bool all_tcp;
	struct msock *s;
	size_t n, cap;
	size_t tcp_seen, ulp_seen;
	bool interrupted;
	bool failed;
	int fail_errno;    /* 0, or the errno an error message carried */
	bool done;
};

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* One level of attributes: where each type 1..max last appeared (NULL if
 * it did not), false when one is malformed. */
struct mattr {
	const uint8_t *p;
	size_t len;
};

static bool walk_attrs(const uint8_t *p, size_t len, struct mattr *tb, unsigned max)
{
	for (unsigned i = 0; i <= max; i++)
		tb[i].p = NULL, tb[i].len = 0;
	while (len) {
		if (len < 4)
			return false;
		uint16_t alen = rd16(p), type = rd16(p + 2) & 0x3fff;
		if (alen < 4 || alen > len)
			return false;
		if (type <= max) {
			tb[type].p = p + 4;
			tb[type].len = alen - 4u;
		}
		size_t step = ((size_t)alen + 3) & ~(size_t)3;
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
	return true;
}

static bool u16_attr(const struct mattr *a, int *out)
{
	*out = -1;
	if (!a->p)
		return true;
	if (a->len < 2)
		return false;
	*out = rd16(a->p);
	return true;
}

static bool model_diag(struct model *m, const uint8_t *p, size_t len)
{
	struct msock s;
	struct mattr tb[20], ut[3], tt[8];

	if (len < DIAG_MSG)
		return false;
	memset(&s, 0, sizeof s);
	s.version = s.cipher = s.txconf = s.rxconf = s.max_payload = -1;
	if (!walk_attrs(p + DIAG_MSG, len - DIAG_MSG, tb, 19))
		return false;
	if (tb[19].p) {
		if (!walk_attrs(tb[19].p, tb[19].len, ut, 2))
			return false;
		if (ut[1].p) {
			size_t n = 0;
			while (n < ut[1].len && n < 15 && ut[1].p[n])
				n++;
			for (size_t i = 0; i < n; i++)
				s.ulp[i] = ut[1].p[i] < 0x20 || ut[1].p[i] >= 0x7f ? '?' : (char)ut[1].p[i];
		}
		if (strcmp(s.ulp, "tls") == 0 && ut[2].p) {
			if (!walk_attrs(ut[2].p, ut[2].len, tt, 7))
				return false;
			if (!u16_attr(&tt[1], &s.version) || !u16_attr(&tt[2], &s.cipher) ||
			    !u16_attr(&tt[3], &s.txconf) || !u16_attr(&tt[4], &s.rxconf) ||
			    !u16_attr(&tt[7], &s.max_payload))
				return false;
			s.zc = tt[5].p != NULL;
			s.nopad = tt[6].p != NULL;
		}
	}
	s.family = p[0];
	if (s.family != AF_INET && s.family != AF_INET6)
		return true;
	m->tcp_seen++;
	if (tb[19].p)
		m->ulp_seen++;
	if (strcmp(s.ulp, "tls") != 0 && !m->all_tcp)
		return true;
	/* inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid
	 * (sport, dport in network order, src[16], dst[16], if, cookie[2]),
	 * expires, rqueue, wqueue, uid, inode. */
	s.state = p[1];
	s.sport = (uint16_t)(p[4] << 8 | p[5]);
	s.dport = (uint16_t)(p[6] << 8 | p[7]);
	memcpy(s.src, p + 8, 16);
	memcpy(s.dst, p + 24, 16);
	s.uid = rd32(p + 64);
	s.inode = rd32(p + 68);
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->s = realloc(m->s, m->cap * sizeof *m->s);
		if (!m->s)
			die("out of memory");
	}
	m->s[m->n++] = s;
	return true;
}

/* One buffer: stops at the first failure or NLMSG_DONE. */
static void model_buffer(struct model *m, const uint8_t *p, size_t len)
{
	while (len) {
		if (len < HDR) {
			m->failed = true;
			return;
		}
		uint32_t mlen = rd32(p);
		uint16_t type = rd16(p + 4), flags = rd16(p + 6);
		if (mlen < HDR || mlen > len) {
			m->failed = true;
			return;
		}
		if (flags & M_DUMP_INTR)
			m->interrupted = true;
		const uint8_t *pl = p + HDR;
		size_t plen = mlen - HDR;
		int32_t e;
		switch (type) {
		case M_TYPE_DONE:
			if (plen >= 4 && (e = (int32_t)rd32(pl)) < 0) {
				m->failed = true;
				m->fail_errno = e >= -4095 ? e : 0;   /* errnos end at 4095 */
				return;
			}
			m->done = true;
			return;
		case M_TYPE_ERROR:
			if (plen < 4) {
				m->failed = true;
				return;
			}
			if ((e = (int32_t)rd32(pl)) < 0) {
				m->failed = true;
				m->fail_errno = e >= -4095 ? e : 0;
				return;
			}
			break;
		case M_TYPE_SOCK_DIAG:
			if (!model_diag(m, pl, plen)) {
				m->failed = true;
				return;
			}
			break;
		default:
			break;
		}
		size_t step = ((size_t)mlen + 3) & ~(size_t)3;
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
}

/* ---- comparing ---------------------------------------------------------- */

static const char *const ss_states[] = {
	"UNKNOWN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
	"UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "SYN-RECV", "BOUND-INACTIVE",
};

static const char *const kernel_ciphers[] = {
	"aes-gcm-128", "aes-gcm-256", "aes-ccm-128", "chacha20-poly1305",
	"sm4-gcm", "sm4-ccm", "aria-gcm-128", "aria-gcm-256",
};

static void expect_str(const char *got, const char *want, const char *what)
{
	if (strcmp(got, want) != 0) {
		fprintf(stderr, "fuzz_sockdiag: %s is '%s', expected '%s'\n", what, got, want);
		die("a socket field differs from its message");
	}
}

static void expect_conf(int v, bool has, uint16_t got, const char *name, const char *what)
{
	static const char *const confs[] = { "none", "sw", "hw", "hw-record" };
	char want[24] = "";
	if (v < 0) {
		expect_str(name, "", what);
		return;
	}
	if (got != v)
		die("a TLS conf value differs from its attribute");
	if (v >= 1 && v <= 4)
		snprintf(want, sizeof want, "%s", confs[v - 1]);
	else
		snprintf(want, sizeof want, "unknown(%d)", v);
	expect_str(name, want, what);
}

static void compare_sock(const struct kc_ktls_sock *k, const struct msock *s)
{
	char a[INET6_ADDRSTRLEN], ep[INET6_ADDRSTRLEN + 8], want[32];

	if (k->family != s->family)
		die("family differs");
	if (!inet_ntop(s->family, s->src, a, sizeof a))
		die("inet_ntop");
	expect_str(k->local_addr, a, "local_addr");
	snprintf(ep, sizeof ep, s->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, s->sport);
	expect_str(k->local, ep, "local");
	if (!inet_ntop(s->family, s->dst, a, sizeof a))
		die("inet_ntop");
	expect_str(k->remote_addr, a, "remote_addr");
	snprintf(ep, sizeof ep, s->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, s->dport);
	expect_str(k->remote, ep, "remote");
	if (k->local_port != s->sport || k->remote_port != s->dport)
		die("ports differ");
	if (k->state != s->state || k->uid != s->uid || k->inode != s->inode)
		die("state, uid or inode differs");
	if (!k->state_name)
		die("no state name");
	expect_str(k->state_name, s->state < 14 ? ss_states[s->state] : "UNKNOWN", "state_name");
	expect_str(k->ulp, s->ulp, "ulp");

	if (k->has_version != (s->version >= 0) || (s->version >= 0 && k->version != s->version))
		die("TLS version differs");
	if (s->version < 0)
		want[0] = '\0';
	else if (s->version == 0x0303 || s->version == 0x0304)
		snprintf(want, sizeof want, "TLS1.%d", s->version - 0x0301);
	else
		snprintf(want, sizeof want, "unknown(0x%04x)", (unsigned)s->version);
	expect_str(k->version_name, want, "version_name");

	if (k->has_cipher != (s->cipher >= 0) || (s->cipher >= 0 && k->cipher != s->cipher))
		die("TLS cipher differs");
	if (s->cipher < 0)
		want[0] = '\0';
	else if (s->cipher >= 51 && s->cipher <= 58)
		snprintf(want, sizeof want, "%s", kernel_ciphers[s->cipher - 51]);
	else
		snprintf(want, sizeof want, "unknown(%d)", s->cipher);
	expect_str(k->cipher_name, want, "cipher_name");

	if (k->has_txconf != (s->txconf >= 0) || k->has_rxconf != (s->rxconf >= 0))
		die("TLS conf presence differs");
	expect_conf(s->txconf, k->has_txconf, k->txconf, k->txconf_name, "txconf_name");
	expect_conf(s->rxconf, k->has_rxconf, k->rxconf, k->rxconf_name, "rxconf_name");
	if (k->has_tx_max_payload_len != (s->max_payload >= 0) ||
	    (s->max_payload >= 0 && k->tx_max_payload_len != s->max_payload))
		die("TLS_INFO_TX_MAX_PAYLOAD_LEN differs");
	if (k->zc_ro_tx != s->zc || k->rx_no_pad != s->nopad)
		die("TLS flags differ");
	if (k->pid != 0 || k->comm[0] || k->other_owners)
		die("an owner set by the parser");
}

static const char *const sock_keys[] = {
	"family", "local", "remote", "local_addr", "local_port", "remote_addr", "remote_port",
	"state", "uid", "inode", "ulp", "version", "cipher", "cipher_id", "tx", "rx",
	"zc_ro_tx", "rx_no_pad", "tx_max_payload_len", "pid", "comm", "other_owners",
};

static void check_view(const struct kc_sockdiag *d)
{
	struct kc_view *root = kc_view_new();
	struct kc_err err = { 0 };
	if (!root)
		die("out of memory");
	if (kc_sockdiag_view(d, root, &err) < 0)
		die(err.msg);
	fzv_check(root);
	const struct kc_view *o = kc_view_get(root, "sockets");
	const struct kc_view *list = kc_view_get(o, "list");
	const struct kc_view *seen = kc_view_get(o, "tcp_sockets_seen");
	if (!o || !list || list->kind != KC_VIEW_ARRAY || !seen || seen->num != d->tcp_seen)
		die("view: no sockets.list, or tcp_sockets_seen is not tcp_seen");
	size_t n = 0;
	for (const struct kc_view *e = list->first; e; e = e->next, n++) {
		if (e->kind != KC_VIEW_OBJECT || !e->text)
			die("view: a list element that is not an object with a one-line text");
		for (size_t k = 0; k < sizeof sock_keys / sizeof sock_keys[0]; k++)
			if (!kc_view_get(e, sock_keys[k])) {
				fprintf(stderr, "fuzz_sockdiag: no key %s\n", sock_keys[k]);
				die("view: a documented key missing from a socket");
			}
	}
	if (n != d->n)
		die("view: list length is not the number of sockets");
	kc_view_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct kc_sockdiag_opts opts = { .all_tcp = data[0] & 1, .no_owners = true };
	struct kc_sockdiag d;
	struct model m = { .all_tcp = opts.all_tcp };
	const uint8_t *p = data + 1, *end = data + size;
	int rc = 0;
	bool done = false;
	struct kc_err err = { 0 };

	memset(&d, 0, sizeof d);
	while (p < end && rc == 0 && !done) {
		size_t len = end - p >= 2 ? (size_t)(p[0] << 8 | p[1]) : 0;
		p += end - p >= 2 ? 2 : (size_t)(end - p);
		if (len > (size_t)(end - p))
			len = (size_t)(end - p);
		void *buf = malloc(len ? len : 1);
		if (!buf)
			die("out of memory");
		memcpy(buf, p, len);
		p += len;

		model_buffer(&m, buf, len);
		kc_err_clear(&err);
		done = true;   /* must be cleared by the call */
		rc = kc_sockdiag_parse(buf, len, &opts, &d, &done, &err);
		free(buf);

		if ((rc < 0) != m.failed) {
			fprintf(stderr, "fuzz_sockdiag: parse says %s (%s), the model %s\n",
				rc < 0 ? "malformed" : "fine", rc < 0 ? err.msg : "",
				m.failed ? "malformed" : "fine");
			die("kc_sockdiag_parse disagrees with the netlink rules");
		}
		if (rc < 0) {
			if (rc != -1 || err.status != KC_E_IO || !err.msg[0])
				die("a failure without -1, KC_E_IO and a message");
			if (m.fail_errno && err.sys_errno != -m.fail_errno)
				die("an error message's errno is not in err.sys_errno");
			if (!m.fail_errno && err.sys_errno)
				die("a malformed reply reported with an errno");
		} else if (done != m.done) {
			die(done ? "done without NLMSG_DONE" : "NLMSG_DONE without done");
		}
	}

	if (d.n != m.n || d.tcp_seen != m.tcp_seen || d.ulp_seen != m.ulp_seen ||
	    d.interrupted != m.interrupted) {
		fprintf(stderr, "fuzz_sockdiag: n %zu/%zu tcp_seen %zu/%zu ulp_seen %zu/%zu "
			"interrupted %d/%d (parser/model)\n", d.n, m.n, d.tcp_seen, m.tcp_seen,
			d.ulp_seen, m.ulp_seen, d.interrupted, m.interrupted);
		die("counts differ from the messages");
	}
	if (d.n > d.socks_cap)
		die("more sockets than allocated");
	for (size_t i = 0; i < d.n; i++)
		compare_sock(&d.socks[i], &m.s[i]);
	check_view(&d);
	kc_sockdiag_free(&d);
	if (d.socks || d.n)
		die("kc_sockdiag_free left sockets");
	free(m.s);
	return 0;
}
