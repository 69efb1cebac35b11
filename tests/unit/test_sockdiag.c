/* tests/unit/test_sockdiag.c: the sock_diag reply parser on hand-built
 * netlink messages (good ones, and malformed ones that must be refused
 * without reading out of bounds: run under ASan), the live dump on this
 * machine, and owner lookup through a fake /proc. */
#include "config.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "core/channel.h"
#include "core/probe.h"
#include "core/diag/sockdiag.h"
#include "core/diag/view_text.h"

/* ------------------------------------------------------ message builder */

struct nb {
	union {
		unsigned char b[16384];
		struct nlmsghdr align;
	} u;
	size_t len;
};

static size_t put(struct nb *nb, const void *data, size_t len)
{
	size_t at = nb->len;
	cr_assert_leq(nb->len + NLA_ALIGN(len), sizeof nb->u.b);
	memcpy(nb->u.b + at, data, len);
	memset(nb->u.b + at + len, 0, NLA_ALIGN(len) - len);
	nb->len += NLA_ALIGN(len);
	return at;
}

static size_t msg_begin(struct nb *nb, uint16_t type, uint16_t flags)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = 1 };
	return put(nb, &h, sizeof h);
}

static void msg_end(struct nb *nb, size_t at)
{
	uint32_t len = (uint32_t)(nb->len - at);
	memcpy(nb->u.b + at, &len, sizeof len);
}

static size_t attr_begin(struct nb *nb, uint16_t type)
{
	struct nlattr a = { .nla_type = type };
	return put(nb, &a, sizeof a);
}

static void attr_end(struct nb *nb, size_t at)
{
	uint16_t len = (uint16_t)(nb->len - at);
	memcpy(nb->u.b + at, &len, sizeof len);
}

static void attr(struct nb *nb, uint16_t type, const void *data, size_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };
	put(nb, &a, sizeof a);
	if (len)
		put(nb, data, len);
}

static void attr_u16(struct nb *nb, uint16_t type, uint16_t v)
{
	attr(nb, type, &v, sizeof v);
}

static void diag_msg(struct nb *nb, int family, const char *src, uint16_t sport,
		     const char *dst, uint16_t dport, uint8_t state, uint32_t uid,
		     uint32_t inode)
{
	struct inet_diag_msg m;
	memset(&m, 0, sizeof m);
	m.idiag_family = (uint8_t)family;
	m.idiag_state = state;
	m.id.idiag_sport = htons(sport);
	m.id.idiag_dport = htons(dport);
	cr_assert_eq(inet_pton(family, src, m.id.idiag_src), 1);
	cr_assert_eq(inet_pton(family, dst, m.id.idiag_dst), 1);
	m.idiag_uid = uid;
	m.idiag_inode = inode;
	put(nb, &m, sizeof m);
}

struct tls_fields {
	int version, cipher, txconf, rxconf, max_payload;  /* -1: omit */
	bool zc, nopad;
};

/* A full SOCK_DIAG_BY_FAMILY message for a kTLS socket, with an
 * INET_DIAG_INFO blob before the ULP info as the kernel sends it. */
static void ktls_msg(struct nb *nb, int family, const char *src, uint16_t sport,
		     const char *dst, uint16_t dport, uint32_t inode, const char *ulp,
		     const struct tls_fields *f)
{
	size_t m = msg_begin(nb, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI);
	diag_msg(nb, family, src, sport, dst, dport, 1 /* ESTAB */, 1000, inode);
	unsigned char tcpinfo[232] = { 0 };
	attr(nb, INET_DIAG_INFO, tcpinfo, sizeof tcpinfo);
	if (ulp) {
		size_t u = attr_begin(nb, INET_DIAG_ULP_INFO);
		attr(nb, INET_ULP_INFO_NAME, ulp, strlen(ulp) + 1);
		if (f) {
			size_t t = attr_begin(nb, INET_ULP_INFO_TLS);
			if (f->version >= 0)
				attr_u16(nb, KC_TLS_INFO_VERSION, (uint16_t)f->version);
			if (f->cipher >= 0)
				attr_u16(nb, KC_TLS_INFO_CIPHER, (uint16_t)f->cipher);
			if (f->txconf >= 0)
				attr_u16(nb, KC_TLS_INFO_TXCONF, (uint16_t)f->txconf);
			if (f->rxconf >= 0)
				attr_u16(nb, KC_TLS_INFO_RXCONF, (uint16_t)f->rxconf);
			if (f->zc)
				attr(nb, KC_TLS_INFO_ZC_RO_TX, NULL, 0);
			if (f->nopad)
				attr(nb, KC_TLS_INFO_RX_NO_PAD, NULL, 0);
			if (f->max_payload >= 0)
				attr_u16(nb, KC_TLS_INFO_TX_MAX_PAYLOAD_LEN, (uint16_t)f->max_payload);
			attr_end(nb, t);
		}
		attr_end(nb, u);
	}
	msg_end(nb, m);
}

static void done_msg(struct nb *nb, int error)
{
	size_t m = msg_begin(nb, NLMSG_DONE, NLM_F_MULTI);
	put(nb, &error, sizeof error);
	msg_end(nb, m);
}

static const struct tls_fields std13 = {
	.version = 0x0304, .cipher = 51, .txconf = 2, .rxconf = 2, .max_payload = -1,
};

/* Parse a copy of exactly len bytes in its own allocation, so that ASan
 * flags any read past the end. */
static int parse_exact(const void *buf, size_t len, const struct kc_sockdiag_opts *o,
		       struct kc_sockdiag *d, bool *done, struct kc_err *err)
{
	void *copy = malloc(len ? len : 1);
	memcpy(copy, buf, len);
	int r = kc_sockdiag_parse(copy, len, o, d, done, err);
	free(copy);
	return r;
}

/* ------------------------------------------------------ good messages */

Test(parse, ktls_ipv4_socket)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;
	struct tls_fields f = std13;
	f.max_payload = 1000;
	f.nopad = true;

	ktls_msg(&nb, AF_INET, "127.0.0.1", 443, "10.1.2.3", 50000, 4242, "tls", &f);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), 0, "%s", err.msg);
	cr_assert_not(done);
	cr_assert_eq(d.n, 1);
	cr_assert_eq(d.tcp_seen, 1);
	cr_assert_eq(d.ulp_seen, 1);
	const struct kc_ktls_sock *s = &d.socks[0];
	cr_assert_eq(s->family, AF_INET);
	cr_assert_str_eq(s->local, "127.0.0.1:443");
	cr_assert_str_eq(s->remote, "10.1.2.3:50000");
	cr_assert_str_eq(s->local_addr, "127.0.0.1");
	cr_assert_eq(s->local_port, 443);
	cr_assert_eq(s->remote_port, 50000);
	cr_assert_str_eq(s->state_name, "ESTAB");
	cr_assert_eq(s->uid, 1000);
	cr_assert_eq(s->inode, 4242);
	cr_assert_str_eq(s->ulp, "tls");
	cr_assert(s->has_version);
	cr_assert_str_eq(s->version_name, "TLS1.3");
	cr_assert_str_eq(s->cipher_name, "aes-gcm-128");
	cr_assert_eq(s->cipher, 51);
	cr_assert_str_eq(s->txconf_name, "sw");
	cr_assert_str_eq(s->rxconf_name, "sw");
	cr_assert(s->has_tx_max_payload_len);
	cr_assert_eq(s->tx_max_payload_len, 1000);
	cr_assert(s->rx_no_pad);
	cr_assert_not(s->zc_ro_tx);
	kc_sockdiag_free(&d);
}

Test(parse, every_cipher_by_name_and_other_fields)
{
	static const char *const names[] = {
		"aes-gcm-128", "aes-gcm-256", "aes-ccm-128", "chacha20-poly1305",
		"sm4-gcm", "sm4-ccm", "aria-gcm-128", "aria-gcm-256",
	};
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;

	for (int id = 51; id <= 59; id++) {
		struct tls_fields f = std13;
		f.cipher = id;
		f.version = id == 59 ? 0x0302 : 0x0303;
		f.txconf = id - 51 + 1 <= 5 ? id - 51 + 1 : 9;   /* 1..5, then 9 */
		f.rxconf = 3;
		f.zc = id == 52;
		ktls_msg(&nb, AF_INET6, "::1", 8443, "2001:db8::7", (uint16_t)(40000 + id),
			 (uint32_t)(100 + id), "tls", &f);
	}
	done_msg(&nb, 0);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), 0, "%s", err.msg);
	cr_assert(done);
	cr_assert_eq(d.n, 9);
	for (int i = 0; i < 8; i++) {
		cr_assert_str_eq(d.socks[i].cipher_name, names[i]);
		cr_assert_str_eq(d.socks[i].version_name, "TLS1.2");
		cr_assert_str_eq(d.socks[i].rxconf_name, "hw");
	}
	cr_assert_str_eq(d.socks[8].cipher_name, "unknown(59)");
	cr_assert_str_eq(d.socks[8].version_name, "unknown(0x0302)");
	cr_assert_str_eq(d.socks[0].txconf_name, "none");
	cr_assert_str_eq(d.socks[1].txconf_name, "sw");
	cr_assert_str_eq(d.socks[2].txconf_name, "hw");
	cr_assert_str_eq(d.socks[3].txconf_name, "hw-record");
	cr_assert_str_eq(d.socks[4].txconf_name, "unknown(5)");
	cr_assert(d.socks[1].zc_ro_tx);
	cr_assert_str_eq(d.socks[0].local, "[::1]:8443");
	cr_assert_str_eq(d.socks[0].remote, "[2001:db8::7]:40051");
	cr_assert_eq(d.socks[0].family, AF_INET6);
	cr_assert_not(d.socks[0].has_tx_max_payload_len);
	kc_sockdiag_free(&d);
}

Test(parse, only_tls_sockets_unless_all_tcp)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_sockdiag_opts all = { .all_tcp = true };
	bool done;

	ktls_msg(&nb, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 1, NULL, NULL);     /* plain */
	ktls_msg(&nb, AF_INET, "127.0.0.1", 3, "127.0.0.1", 4, 2, "mptcp", NULL);  /* other ULP */
	ktls_msg(&nb, AF_INET, "127.0.0.1", 5, "127.0.0.1", 6, 3, "tls", NULL);    /* no keys yet */
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, NULL), 0);
	cr_assert_eq(d.n, 1);
	cr_assert_eq(d.tcp_seen, 3);
	cr_assert_eq(d.ulp_seen, 2);
	cr_assert_eq(d.socks[0].inode, 3);
	cr_assert_not(d.socks[0].has_version);
	cr_assert_not(d.socks[0].has_cipher);
	cr_assert_str_eq(d.socks[0].version_name, "");
	kc_sockdiag_free(&d);

	memset(&d, 0, sizeof d);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, &all, &d, &done, NULL), 0);
	cr_assert_eq(d.n, 3);
	cr_assert_str_eq(d.socks[0].ulp, "");
	cr_assert_str_eq(d.socks[1].ulp, "mptcp");
	kc_sockdiag_free(&d);
}

Test(parse, tls_without_key_attributes)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct tls_fields f = { -1, -1, 1, 1, -1, false, false };
	bool done;

	ktls_msg(&nb, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 9, "tls", &f);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, NULL), 0);
	cr_assert_eq(d.n, 1);
	cr_assert_not(d.socks[0].has_version);
	cr_assert_str_eq(d.socks[0].txconf_name, "none");
	kc_sockdiag_free(&d);
}

Test(parse, control_messages)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;

	/* NOOP, an ack (NLMSG_ERROR 0), an unknown type, then DONE. */
	size_t m = msg_begin(&nb, NLMSG_NOOP, 0);
	msg_end(&nb, m);
	struct nlmsgerr ack = { .error = 0 };
	m = msg_begin(&nb, NLMSG_ERROR, 0);
	put(&nb, &ack, sizeof ack);
	msg_end(&nb, m);
	m = msg_begin(&nb, 0x77, 0);
	put(&nb, "junkjunk", 8);
	msg_end(&nb, m);
	done_msg(&nb, 0);
	ktls_msg(&nb, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 9, "tls", &std13); /* after DONE */
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), 0, "%s", err.msg);
	cr_assert(done);
	cr_assert_eq(d.n, 0);

	/* An error reply. */
	nb.len = 0;
	struct nlmsgerr e = { .error = -EPERM };
	m = msg_begin(&nb, NLMSG_ERROR, 0);
	put(&nb, &e, sizeof e);
	msg_end(&nb, m);
	kc_err_clear(&err);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), -1);
	cr_assert_eq(err.sys_errno, EPERM);
	cr_assert_eq(err.status, KC_E_IO);

	/* A dump that ends in an error. */
	nb.len = 0;
	done_msg(&nb, -ENOBUFS);
	kc_err_clear(&err);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), -1);
	cr_assert_eq(err.sys_errno, ENOBUFS);

	/* A DONE without the error int is still a DONE; DUMP_INTR is noted. */
	nb.len = 0;
	m = msg_begin(&nb, NLMSG_DONE, NLM_F_MULTI | NLM_F_DUMP_INTR);
	msg_end(&nb, m);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), 0);
	cr_assert(done);
	cr_assert(d.interrupted);
	kc_sockdiag_free(&d);
}

/* Error codes that are no errno (below -4095): INT_MIN used to be negated
 * (undefined behaviour, caught by UBSan in fuzz_sockdiag) and any other
 * became a bogus errno.  Both are a malformed reply, without an errno. */
Test(parse, error_codes_that_are_no_errno)
{
	static const int codes[] = { INT_MIN, INT_MIN + 1, -4096, -100000 };
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;

	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		nb.len = 0;
		struct nlmsgerr e = { .error = codes[i] };
		size_t m = msg_begin(&nb, NLMSG_ERROR, 0);
		put(&nb, &e, sizeof e);
		msg_end(&nb, m);
		kc_err_clear(&err);
		cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), -1);
		cr_assert_eq(err.status, KC_E_IO);
		cr_assert_eq(err.sys_errno, 0, "code %d: errno %d", codes[i], err.sys_errno);
		cr_assert(strstr(err.msg, "not an errno"), "%s", err.msg);

		nb.len = 0;
		done_msg(&nb, codes[i]);
		kc_err_clear(&err);
		cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), -1);
		cr_assert_eq(err.sys_errno, 0);
		cr_assert(strstr(err.msg, "not an errno"), "%s", err.msg);
	}
	/* The largest errno is still one. */
	nb.len = 0;
	done_msg(&nb, -4095);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), -1);
	cr_assert_eq(err.sys_errno, 4095);
	kc_sockdiag_free(&d);
}

Test(parse, unpadded_last_attribute_and_unknown_attrs)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;

	size_t m = msg_begin(&nb, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI);
	diag_msg(&nb, AF_INET, "1.2.3.4", 1, "5.6.7.8", 2, 1, 0, 77);
	attr(&nb, 200, "zz", 2);          /* type beyond what we parse */
	size_t u = attr_begin(&nb, INET_DIAG_ULP_INFO | NLA_F_NESTED);
	attr(&nb, INET_ULP_INFO_NAME, "tls", 3);   /* no NUL */
	size_t t = attr_begin(&nb, INET_ULP_INFO_TLS | NLA_F_NESTED);
	attr_u16(&nb, KC_TLS_INFO_VERSION, 0x0304);
	attr(&nb, 99, "?", 1);            /* a TLS_INFO from the future */
	attr_u16(&nb, KC_TLS_INFO_CIPHER, 54);
	attr_end(&nb, t);
	attr_end(&nb, u);
	/* Drop the final padding: the message ends right after the u16. */
	nb.len -= 2;
	msg_end(&nb, m);
	uint16_t ulen, tlen;
	memcpy(&ulen, nb.u.b + u, 2);
	memcpy(&tlen, nb.u.b + t, 2);
	ulen -= 2;
	tlen -= 2;
	memcpy(nb.u.b + u, &ulen, 2);
	memcpy(nb.u.b + t, &tlen, 2);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, &err), 0, "%s", err.msg);
	cr_assert_eq(d.n, 1);
	cr_assert_str_eq(d.socks[0].cipher_name, "chacha20-poly1305");
	cr_assert_str_eq(d.socks[0].version_name, "TLS1.3");
	kc_sockdiag_free(&d);
}

/* ------------------------------------------------------ malformed ones */

static void expect_reject(const struct nb *nb, const char *what)
{
	struct kc_sockdiag d = { 0 };
	struct kc_err err;
	bool done;

	kc_err_clear(&err);
	cr_assert_eq(parse_exact(nb->u.b, nb->len, NULL, &d, &done, &err), -1, "%s accepted", what);
	cr_assert(strstr(err.msg, "malformed sock_diag reply"), "%s: %s", what, err.msg);
	cr_assert_eq(err.status, KC_E_IO);
	kc_sockdiag_free(&d);
}

/* Offsets into one good message built by good_one(). */
struct layout {
	size_t msg, ulp, name, tls, version;
};

static struct layout good_one(struct nb *nb)
{
	struct layout l;
	nb->len = 0;
	l.msg = msg_begin(nb, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI);
	diag_msg(nb, AF_INET, "127.0.0.1", 443, "127.0.0.1", 5000, 1, 0, 1);
	l.ulp = attr_begin(nb, INET_DIAG_ULP_INFO);
	l.name = nb->len;
	attr(nb, INET_ULP_INFO_NAME, "tls", 4);
	l.tls = attr_begin(nb, INET_ULP_INFO_TLS);
	l.version = nb->len;
	attr_u16(nb, KC_TLS_INFO_VERSION, 0x0304);
	attr_u16(nb, KC_TLS_INFO_CIPHER, 51);
	attr_end(nb, l.tls);
	attr_end(nb, l.ulp);
	msg_end(nb, l.msg);
	return l;
}

static void set16(struct nb *nb, size_t at, uint16_t v)
{
	memcpy(nb->u.b + at, &v, sizeof v);
}

static void set32(struct nb *nb, size_t at, uint32_t v)
{
	memcpy(nb->u.b + at, &v, sizeof v);
}

Test(malformed, netlink_headers)
{
	struct nb nb;
	good_one(&nb);

	struct nb t = nb;
	t.len = 10;                               /* shorter than a nlmsghdr */
	expect_reject(&t, "truncated header");
	t = nb;
	set32(&t, 0, (uint32_t)t.len + 4);        /* nlmsg_len past the end */
	expect_reject(&t, "length past end");
	t = nb;
	set32(&t, 0, 0xffffffffu);
	expect_reject(&t, "huge length");
	t = nb;
	set32(&t, 0, 8);                          /* shorter than its own header */
	expect_reject(&t, "length below header");
	t = nb;
	t.len -= 1;                               /* buffer cut inside the message */
	expect_reject(&t, "cut buffer");
	t = nb;
	set32(&t, 0, NLMSG_HDRLEN + 20);          /* inet_diag_msg cut short */
	t.len = NLMSG_HDRLEN + 20;
	expect_reject(&t, "short inet_diag_msg");
	/* A short NLMSG_ERROR. */
	t.len = 0;
	size_t m = msg_begin(&t, NLMSG_ERROR, 0);
	put(&t, "ab", 2);
	set32(&t, m, NLMSG_HDRLEN + 2);
	t.len = NLMSG_HDRLEN + 2;
	expect_reject(&t, "short NLMSG_ERROR");
}

Test(malformed, attributes)
{
	struct nb nb, t;
	struct layout l = good_one(&nb);

	t = nb;
	set16(&t, l.ulp, (uint16_t)(nb.len - l.ulp + 4));   /* ULP attr past the message */
	expect_reject(&t, "ulp past end");
	t = nb;
	set16(&t, l.ulp, 2);                                 /* below the attr header */
	expect_reject(&t, "ulp len 2");
	t = nb;
	set16(&t, l.name, 200);                              /* name past its nest */
	expect_reject(&t, "name past nest");
	t = nb;
	set16(&t, l.tls, (uint16_t)(nb.len - l.tls + 8));    /* TLS nest past ULP nest */
	expect_reject(&t, "tls nest past end");
	t = nb;
	set16(&t, l.version, 5);                             /* u16 attribute with 1 byte */
	expect_reject(&t, "short version");
	t = nb;
	set16(&t, l.version, 0);                             /* zero-length attribute */
	expect_reject(&t, "zero nla_len");

	/* Trailing garbage (2 bytes) after the last attribute, inside the message. */
	t.len = 0;
	size_t m = msg_begin(&t, SOCK_DIAG_BY_FAMILY, 0);
	diag_msg(&t, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 1, 0, 1);
	attr_u16(&t, 77, 1);
	put(&t, "\x01\x02", 2);
	t.len -= 2;                  /* drop put()'s padding: exactly 2 stray bytes */
	msg_end(&t, m);
	expect_reject(&t, "trailing bytes");

	/* Nested garbage: the TLS nest holds random non-attribute bytes. */
	t.len = 0;
	m = msg_begin(&t, SOCK_DIAG_BY_FAMILY, 0);
	diag_msg(&t, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 1, 0, 1);
	size_t u = attr_begin(&t, INET_DIAG_ULP_INFO);
	attr(&t, INET_ULP_INFO_NAME, "tls", 4);
	unsigned char junk[12] = { 0xff, 0xff, 0x02, 0x00, 0xde, 0xad, 0xbe, 0xef,
				   0x01, 0x00, 0x00, 0x00 };
	attr(&t, INET_ULP_INFO_TLS, junk, sizeof junk);
	attr_end(&t, u);
	msg_end(&t, m);
	expect_reject(&t, "nested garbage");
}

/* Every truncation of a valid two-socket reply, with nlmsg_len left as is
 * or clamped to the cut: each must parse or be refused, never overread. */
Test(malformed, every_truncation)
{
	struct nb nb = { .len = 0 };
	struct tls_fields f = std13;
	f.max_payload = 4096;
	ktls_msg(&nb, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 5, "tls", &f);
	ktls_msg(&nb, AF_INET6, "::1", 3, "::1", 4, 6, "tls", &std13);
	done_msg(&nb, 0);

	for (size_t cut = 0; cut < nb.len; cut++) {
		for (int clamp = 0; clamp < 2; clamp++) {
			struct nb t = nb;
			struct kc_sockdiag d = { 0 };
			bool done;
			t.len = cut;
			if (clamp && cut >= 4)
				set32(&t, 0, (uint32_t)cut);
			int r = parse_exact(t.u.b, t.len, NULL, &d, &done, NULL);
			cr_assert(r == 0 || r == -1);
			cr_assert_leq(d.n, 2);
			kc_sockdiag_free(&d);
		}
	}
}

/* Random corruption of a valid reply (fixed seed): no crash, no overread. */
Test(malformed, random_bytes)
{
	struct nb nb = { .len = 0 };
	struct tls_fields f = std13;
	f.zc = f.nopad = true;
	f.max_payload = 512;
	ktls_msg(&nb, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 5, "tls", &f);
	ktls_msg(&nb, AF_INET6, "::1", 3, "::1", 4, 6, "tls", &std13);
	done_msg(&nb, 0);

	unsigned seed = 12345;
	size_t accepted = 0, rejected = 0;
	for (int i = 0; i < 20000; i++) {
		struct nb t = nb;
		struct kc_sockdiag d = { 0 };
		bool done;
		int flips = 1 + (int)(rand_r(&seed) % 4);
		for (int k = 0; k < flips; k++)
			t.u.b[rand_r(&seed) % t.len] = (unsigned char)rand_r(&seed);
		int r = parse_exact(t.u.b, t.len, NULL, &d, &done, NULL);
		cr_assert(r == 0 || r == -1);
		if (r == 0)
			accepted++;
		else
			rejected++;
		kc_sockdiag_free(&d);
	}
	cr_log_info("random corruption: %zu accepted, %zu rejected", accepted, rejected);
	cr_assert_gt(rejected, 0);
}

/* ------------------------------------------------------------ the view */

Test(view, socket_rows)
{
	struct nb nb = { .len = 0 };
	struct kc_sockdiag d = { 0 };
	struct tls_fields f = std13;
	bool done;

	f.nopad = true;
	ktls_msg(&nb, AF_INET, "127.0.0.1", 443, "127.0.0.1", 5000, 11, "tls", &f);
	cr_assert_eq(parse_exact(nb.u.b, nb.len, NULL, &d, &done, NULL), 0);
	d.available = true;
	d.socks[0].pid = 321;
	snprintf(d.socks[0].comm, sizeof d.socks[0].comm, "nginx");

	struct kc_view *root = kc_view_new();
	cr_assert_eq(kc_sockdiag_view(&d, root, NULL), 0);
	const struct kc_view *o = kc_view_get(root, "sockets");
	const struct kc_view *list = kc_view_get(o, "list");
	const struct kc_view *e = list->first;
	cr_assert_not_null(e);
	cr_assert_null(e->next);
	cr_assert_str_eq(e->text, "127.0.0.1:443 -> 127.0.0.1:5000 ESTAB TLS1.3 aes-gcm-128 "
			 "tx sw rx sw no_pad_rx pid 321 (nginx) uid 1000 inode 11");
	cr_assert_str_eq(kc_view_get(e, "cipher")->str, "aes-gcm-128");
	cr_assert_eq(kc_view_get(e, "cipher_id")->num, 51);
	cr_assert_eq(kc_view_get(e, "tx_max_payload_len")->kind, KC_VIEW_NULL);
	cr_assert_eq(kc_view_get(e, "pid")->num, 321);
	cr_assert_str_eq(kc_view_get(e, "family")->str, "inet");
	cr_assert_eq(kc_view_get(e, "rx_no_pad")->flag, true);
	cr_assert_eq(kc_view_get(o, "note")->kind, KC_VIEW_NULL);
	/* The brief text: the count, then the socket's line under it. */
	char *brief = kc_view_text(root, KC_VIEW_BRIEF, NULL);
	cr_assert_str_eq(brief, "kTLS sockets: 1\n"
			 "  127.0.0.1:443 -> 127.0.0.1:5000 ESTAB TLS1.3 aes-gcm-128 "
			 "tx sw rx sw no_pad_rx pid 321 (nginx) uid 1000 inode 11\n");
	free(brief);
	kc_view_free(root);
	kc_sockdiag_free(&d);

	/* None: the note says so, and why. */
	struct kc_sockdiag none = { .available = true };
	snprintf(none.note, sizeof none.note, "no kTLS sockets (the tls module is not loaded)");
	root = kc_view_new();
	cr_assert_eq(kc_sockdiag_view(&none, root, NULL), 0);
	brief = kc_view_text(root, KC_VIEW_BRIEF, NULL);
	cr_assert_str_eq(brief, "no kTLS sockets (the tls module is not loaded)\n");
	free(brief);
	kc_view_free(root);
}

/* ------------------------------------------------------ this machine */

static int listener(int family, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof *a;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static const struct kc_ktls_sock *find_listener(const struct kc_sockdiag *d, int family,
						uint16_t port)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->socks[i].family == family && d->socks[i].local_port == port &&
		    strcmp(d->socks[i].state_name, "LISTEN") == 0)
			return &d->socks[i];
	return NULL;
}

Test(live, dump_runs_and_finds_no_ktls_here)
{
	struct kc_sockdiag d;
	struct kc_err err;
	uint16_t port;
	int l = listener(AF_INET, &port);
	cr_assert_geq(l, 0);

	kc_err_clear(&err);
	cr_assert_eq(kc_sockdiag_dump(NULL, &d, &err), 0, "%s", err.msg);
	cr_assert(d.available, "%s", d.note);
	cr_assert_geq(d.tcp_seen, 1);   /* at least our listener */
	for (size_t i = 0; i < d.n; i++)
		cr_assert_str_eq(d.socks[i].ulp, "tls");
	if (d.n == 0 && d.net_admin)
		cr_assert_str_eq(d.note, "no kTLS sockets");
	cr_log_info("%zu TCP sockets, %zu kTLS; note: %s", d.tcp_seen, d.n, d.note);
	kc_sockdiag_free(&d);
	close(l);
}

Test(live, all_tcp_lists_ordinary_sockets_with_owner)
{
	struct kc_sockdiag d;
	struct kc_sockdiag_opts o = { .all_tcp = true };
	struct kc_err err;
	struct stat st;
	uint16_t port4, port6 = 0;
	int l4 = listener(AF_INET, &port4), l6 = listener(AF_INET6, &port6);
	char comm[32] = "";

	cr_assert_geq(l4, 0);
	FILE *f = fopen("/proc/self/comm", "r");
	cr_assert_not_null(fgets(comm, sizeof comm, f));
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';

	cr_assert_eq(kc_sockdiag_dump(&o, &d, &err), 0, "%s", err.msg);
	cr_assert_geq(d.n, 1);
	const struct kc_ktls_sock *s = find_listener(&d, AF_INET, port4);
	cr_assert_not_null(s, "our IPv4 listener on port %u is not in the dump", port4);
	cr_assert_str_eq(s->local_addr, "127.0.0.1");
	cr_assert_str_eq(s->ulp, "");
	cr_assert_eq(s->uid, geteuid());
	cr_assert_eq(fstat(l4, &st), 0);
	cr_assert_eq(s->inode, (uint32_t)st.st_ino);
	cr_assert_eq(s->pid, getpid());
	cr_assert_str_eq(s->comm, comm);
	if (l6 >= 0) {
		s = find_listener(&d, AF_INET6, port6);
		cr_assert_not_null(s, "our IPv6 listener is not in the dump");
		cr_assert_str_eq(s->local_addr, "::1");
		close(l6);
	}
	kc_sockdiag_free(&d);
	close(l4);
}

Test(live, unprivileged_caller_is_told_why)
{
	struct kc_sockdiag d;
	struct kc_err err;
	int fds[2];

	if (geteuid() == 0)
		cr_assert_eq(setgid(65534) | setuid(65534), 0);
	/* Can this (unprivileged) process attach the TLS ULP at all? */
	cr_assert_eq(kc_probe_loopback_pair(fds, NULL), 0);
	bool ulp = setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0;
	int ulp_errno = ulp ? 0 : errno;
	close(fds[0]);
	close(fds[1]);

	cr_assert_eq(kc_sockdiag_dump(NULL, &d, &err), 0, "%s", err.msg);
	cr_assert(d.available);
	cr_assert_not(d.net_admin);
	cr_log_info("unprivileged: %zu kTLS, withheld %d (confirmed %d), note: %s", d.n,
		    d.withheld, d.withheld_confirmed, d.note);
	if (!ulp && ulp_errno == ENOENT) {
		/* This machine: no TLS ULP registered, so nothing can be kTLS. */
		cr_assert_not(d.withheld);
		cr_assert_eq(d.n, 0);
		cr_assert_str_eq(d.note, "no kTLS sockets (the tls module is not loaded)");
	} else if (ulp && d.withheld) {
		/* Before 6.15: our canary came back without ULP info. */
		cr_assert(d.withheld_confirmed);
		cr_assert_eq(d.n, 0);
		cr_assert_str_eq(d.note, "no kTLS sockets visible; before Linux 6.15 only root "
				 "can see them");
	} else if (ulp && d.n == 0) {
		/* 6.15 and later: visible, and the canary is not listed. */
		cr_assert_str_eq(d.note, "no kTLS sockets");
	}
	for (size_t i = 0; i < d.n; i++)
		cr_assert_str_eq(d.socks[i].ulp, "tls");
	kc_sockdiag_free(&d);
}

/* A real kTLS socket: only on a kernel with kTLS (the VM tier); skipped
 * here.  Both ends of a loopback pair get TLS 1.3 AES-128-GCM keys (all
 * zero, nothing is sent) and must show up by inode with every field. */
Test(live, real_ktls_socket)
{
	struct tls12_crypto_info_aes_gcm_128 ci = {
		.info = { .version = TLS_1_3_VERSION, .cipher_type = TLS_CIPHER_AES_GCM_128 },
	};
	struct kc_sockdiag d;
	struct kc_err err;
	struct stat st;
	int fds[2];

	cr_assert_eq(kc_probe_loopback_pair(fds, &err), 0, "%s", err.msg);
	if (kc_kernel_attach(fds[0], &err) < 0) {
		close(fds[0]);
		close(fds[1]);
		cr_skip_test("no kTLS on this kernel: %s", err.msg);
	}
	cr_assert_eq(setsockopt(fds[0], SOL_TLS, TLS_TX, &ci, sizeof ci), 0, "%s", strerror(errno));
	cr_assert_eq(setsockopt(fds[0], SOL_TLS, TLS_RX, &ci, sizeof ci), 0, "%s", strerror(errno));
	cr_assert_eq(fstat(fds[0], &st), 0);

	cr_assert_eq(kc_sockdiag_dump(NULL, &d, &err), 0, "%s", err.msg);
	const struct kc_ktls_sock *s = NULL;
	for (size_t i = 0; i < d.n; i++)
		if (d.socks[i].inode == (uint32_t)st.st_ino)
			s = &d.socks[i];
	if (!d.net_admin && d.withheld) {
		cr_log_info("kernel withholds ULP info from non-root: %s", d.note);
	} else {
		cr_assert_not_null(s, "our kTLS socket (inode %lu) is not listed; %zu listed",
				   (unsigned long)st.st_ino, d.n);
		cr_assert_str_eq(s->ulp, "tls");
		cr_assert_str_eq(s->version_name, "TLS1.3");
		cr_assert_str_eq(s->cipher_name, "aes-gcm-128");
		cr_assert_str_eq(s->txconf_name, "sw");
		cr_assert_str_eq(s->rxconf_name, "sw");
		cr_assert_str_eq(s->state_name, "ESTAB");
		cr_assert_eq(s->pid, getpid());
		cr_log_info("%s -> %s %s %s tx %s rx %s max_payload %s%u", s->local, s->remote,
			    s->version_name, s->cipher_name, s->txconf_name, s->rxconf_name,
			    s->has_tx_max_payload_len ? "" : "(absent) ",
			    (unsigned)s->tx_max_payload_len);
	}
	kc_sockdiag_free(&d);
	close(fds[0]);
	close(fds[1]);
}

/* ------------------------------------------------------ owners (fake /proc) */

static void mkfile(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

/* Links that only look like a socket's: strtoul took "socket:[+5]" and
 * "socket:[-18446744073709551611]" (which wraps to 5) for inode 5
 * (fuzz_procfs), and a link longer than the 63 bytes read was judged by
 * its first 63, so "socket:[00...05]x" passed for "socket:[5]". */
Test(owners, links_that_only_look_like_sockets)
{
	static const char *const fake[] = {
		"socket:[+5]", "socket:[ 5]", "socket:[-18446744073709551611]",
		"socket:[000000000000000000000000000000000000000000000000000005]x",
		"socket:[5]x", "socket:[]", "socket:[5",
	};
	const char *tmp = getenv("TMPDIR");
	char root[256], p[512];
	struct kc_sockdiag d = { 0 };
	struct kc_ktls_sock s[2];

	snprintf(root, sizeof root, "%s/ktlsctl-proc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root));
	memset(s, 0, sizeof s);
	s[0].inode = 5;
	s[1].inode = 6;
	d.socks = s;
	d.n = 2;
	snprintf(p, sizeof p, "%s/100", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/100/fd", root); mkdir(p, 0755);
	for (size_t i = 0; i < sizeof fake / sizeof fake[0]; i++) {
		snprintf(p, sizeof p, "%s/100/fd/%zu", root, i);
		cr_assert_eq(symlink(fake[i], p), 0);
	}
	/* The one real link, with leading zeros as strtoul reads them. */
	snprintf(p, sizeof p, "%s/100/fd/99", root);
	cr_assert_eq(symlink("socket:[06]", p), 0);

	kc_sockdiag_find_owners(&d, root);
	cr_assert_eq(s[0].pid, 0, "a look-alike link taken for socket:[5]");
	cr_assert_eq(s[1].pid, 100);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(owners, fake_proc)
{
	const char *tmp = getenv("TMPDIR");
	char root[256], p[512];
	struct kc_sockdiag d = { 0 };
	struct kc_ktls_sock s[3];

	snprintf(root, sizeof root, "%s/ktlsctl-proc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_eq(chmod(root, 0755), 0);
	memset(s, 0, sizeof s);
	s[0].inode = 4242;
	s[1].inode = 5151;
	s[2].inode = 777;   /* nobody holds it */
	d.socks = s;
	d.n = 3;

	/* 123 holds 4242 twice (dup) and 5151; 456 also holds 4242. */
	snprintf(p, sizeof p, "%s/123", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/123/fd", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/123/comm", root); mkfile(p, "nginx\n");
	snprintf(p, sizeof p, "%s/123/fd/3", root); cr_assert_eq(symlink("socket:[4242]", p), 0);
	snprintf(p, sizeof p, "%s/123/fd/4", root); cr_assert_eq(symlink("socket:[4242]", p), 0);
	snprintf(p, sizeof p, "%s/123/fd/5", root); cr_assert_eq(symlink("socket:[5151]", p), 0);
	snprintf(p, sizeof p, "%s/123/fd/6", root); cr_assert_eq(symlink("pipe:[777]", p), 0);
	snprintf(p, sizeof p, "%s/123/fd/7", root); cr_assert_eq(symlink("socket:[777]x", p), 0);
	snprintf(p, sizeof p, "%s/456", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/456/fd", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/456/comm", root); mkfile(p, "worker\x01\n");
	snprintf(p, sizeof p, "%s/456/fd/9", root); cr_assert_eq(symlink("socket:[4242]", p), 0);
	snprintf(p, sizeof p, "%s/self", root); cr_assert_eq(symlink("123", p), 0);
	snprintf(p, sizeof p, "%s/0abc", root); mkdir(p, 0755);
	/* 789: its fd directory is unreadable (for a non-root user). */
	snprintf(p, sizeof p, "%s/789", root); mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/789/fd", root); mkdir(p, 0700);

	kc_sockdiag_find_owners(&d, root);
	cr_assert_eq(s[0].pid + s[1].pid > 0, true);
	cr_assert(s[0].pid == 123 || s[0].pid == 456);
	cr_assert_eq(s[0].other_owners, 1);
	cr_assert_str_eq(s[0].pid == 123 ? s[0].comm : "nginx", "nginx");
	cr_assert_eq(s[1].pid, 123);
	cr_assert_str_eq(s[1].comm, "nginx");
	cr_assert_eq(s[1].other_owners, 0);
	cr_assert_eq(s[2].pid, 0);
	if (geteuid() == 0)
		cr_assert_eq(d.owners_denied, 0);

	/* As an unprivileged user the 0700 fd directory is refused (in a
	 * child, so that this process can still clean up as root). */
	if (geteuid() == 0) {
		pid_t child = fork();
		cr_assert_geq(child, 0);
		if (child == 0) {
			int bad = 0;
			if (setgid(65534) | setuid(65534))
				_exit(10);
			memset(s, 0, sizeof s);
			s[0].inode = 4242;
			s[1].inode = 5151;
			s[2].inode = 777;
			kc_sockdiag_find_owners(&d, root);
			bad |= d.owners_denied != 1;
			bad |= !strstr(d.owner_note, "owner not found for 1 socket(s)") << 1;
			bad |= !strstr(d.owner_note, "run as root") << 2;
			bad |= (s[1].pid != 123) << 3;
			_exit(bad);
		}
		int status;
		cr_assert_eq(waitpid(child, &status, 0), child);
		cr_assert(WIFEXITED(status));
		cr_assert_eq(WEXITSTATUS(status), 0, "unprivileged owner lookup: code %d",
			     WEXITSTATUS(status));
	}
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);   /* mkdtemp's name: no quotes */
	cr_assert_eq(system(cmd), 0);
}
