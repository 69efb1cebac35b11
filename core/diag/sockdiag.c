/* core/diag/sockdiag.c: kTLS sockets through NETLINK_SOCK_DIAG (see
 * sockdiag.h). */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "core/diag/procfs.h"
#include "core/diag/sockdiag.h"
#include "core/probe.h"

/* The attribute ids must match the kernel's enums where the headers
 * have them. */
_Static_assert(KC_INET_DIAG_INFO == INET_DIAG_INFO, "INET_DIAG_INFO");
_Static_assert(KC_INET_DIAG_ULP_INFO == INET_DIAG_ULP_INFO, "INET_DIAG_ULP_INFO");
_Static_assert(KC_INET_ULP_INFO_NAME == INET_ULP_INFO_NAME, "INET_ULP_INFO_NAME");
_Static_assert(KC_INET_ULP_INFO_TLS == INET_ULP_INFO_TLS, "INET_ULP_INFO_TLS");

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define RECV_BUF_SIZE (64 * 1024)
#define RECV_TIMEOUT_SEC 5
#define WITHHELD_NOTE "no kTLS sockets visible; before Linux 6.15 only root can see them"

/* ================================================================ names */

const char *kc_tls_version_name(uint16_t version, char *buf, size_t len)
{
	if (version == 0x0303)
		return "TLS1.2";
	if (version == 0x0304)
		return "TLS1.3";
	snprintf(buf, len, "unknown(0x%04x)", version);
	return buf;
}

const char *kc_tls_conf_name(uint16_t conf, char *buf, size_t len)
{
	switch (conf) {
	case 1: return "none";
	case 2: return "sw";
	case 3: return "hw";
	case 4: return "hw-record";
	default:
		snprintf(buf, len, "unknown(%u)", (unsigned)conf);
		return buf;
	}
}

const char *kc_tcp_state_name(uint8_t state)
{
	static const char *const names[] = {
		"UNKNOWN", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2",
		"TIME-WAIT", "UNCONN", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
		"SYN-RECV", "BOUND-INACTIVE",
	};
	return state < sizeof names / sizeof names[0] ? names[state] : "UNKNOWN";
}

static void set_name(char *dst, size_t dlen, const char *src)
{
	snprintf(dst, dlen, "%s", src);
}

/* ================================================================ parser */

struct attr {
	const unsigned char *data;
	size_t len;
	bool present;
};

/* Split [p, p + len) into attributes; tb[0..max] by type (others
 * ignored).  -1 with *why when an attribute is malformed. */
static int parse_attrs(const unsigned char *p, size_t len, struct attr *tb, unsigned max,
		       const char **why)
{
	memset(tb, 0, (max + 1) * sizeof *tb);
	while (len > 0) {
		struct nlattr a;
		if (len < sizeof a) {
			*why = "truncated attribute header";
			return -1;
		}
		memcpy(&a, p, sizeof a);
		if (a.nla_len < NLA_HDRLEN) {
			*why = "attribute shorter than its header";
			return -1;
		}
		if (a.nla_len > len) {
			*why = "attribute runs past its container";
			return -1;
		}
		unsigned type = a.nla_type & NLA_TYPE_MASK;
		if (type <= max) {
			tb[type].data = p + NLA_HDRLEN;
			tb[type].len = a.nla_len - NLA_HDRLEN;
			tb[type].present = true;
		}
		size_t step = NLA_ALIGN((size_t)a.nla_len);
		if (step > len)
			step = len;    /* an unpadded last attribute */
		p += step;
		len -= step;
	}
	return 0;
}

/* A u16 attribute: false (and *why) when it is too short. */
static bool get_u16(const struct attr *a, uint16_t *v, const char **why, const char *name)
{
	if (a->len < sizeof *v) {
		*why = name;
		return false;
	}
	memcpy(v, a->data, sizeof *v);
	return true;
}

static int parse_tls_info(const struct attr *info, struct kc_ktls_sock *s, const char **why)
{
	struct attr tb[KC_TLS_INFO_TX_MAX_PAYLOAD_LEN + 1];
	char b[24];

	if (parse_attrs(info->data, info->len, tb, KC_TLS_INFO_TX_MAX_PAYLOAD_LEN, why) < 0)
		return -1;
	if (tb[KC_TLS_INFO_VERSION].present) {
		if (!get_u16(&tb[KC_TLS_INFO_VERSION], &s->version, why, "short TLS_INFO_VERSION"))
			return -1;
		s->has_version = true;
		set_name(s->version_name, sizeof s->version_name,
			 kc_tls_version_name(s->version, b, sizeof b));
	}
	if (tb[KC_TLS_INFO_CIPHER].present) {
		if (!get_u16(&tb[KC_TLS_INFO_CIPHER], &s->cipher, why, "short TLS_INFO_CIPHER"))
			return -1;
		s->has_cipher = true;
		const struct kc_ktls_cipher *c = kc_ktls_cipher_by_id(s->cipher);
		if (c)
			set_name(s->cipher_name, sizeof s->cipher_name, c->name);
		else
			snprintf(s->cipher_name, sizeof s->cipher_name, "unknown(%u)",
				 (unsigned)s->cipher);
	}
	if (tb[KC_TLS_INFO_TXCONF].present) {
		if (!get_u16(&tb[KC_TLS_INFO_TXCONF], &s->txconf, why, "short TLS_INFO_TXCONF"))
			return -1;
		s->has_txconf = true;
		set_name(s->txconf_name, sizeof s->txconf_name,
			 kc_tls_conf_name(s->txconf, b, sizeof b));
	}
	if (tb[KC_TLS_INFO_RXCONF].present) {
		if (!get_u16(&tb[KC_TLS_INFO_RXCONF], &s->rxconf, why, "short TLS_INFO_RXCONF"))
			return -1;
		s->has_rxconf = true;
		set_name(s->rxconf_name, sizeof s->rxconf_name,
			 kc_tls_conf_name(s->rxconf, b, sizeof b));
	}
	s->zc_ro_tx = tb[KC_TLS_INFO_ZC_RO_TX].present;
	s->rx_no_pad = tb[KC_TLS_INFO_RX_NO_PAD].present;
	if (tb[KC_TLS_INFO_TX_MAX_PAYLOAD_LEN].present) {
		if (!get_u16(&tb[KC_TLS_INFO_TX_MAX_PAYLOAD_LEN], &s->tx_max_payload_len, why,
			     "short TLS_INFO_TX_MAX_PAYLOAD_LEN"))
			return -1;
		s->has_tx_max_payload_len = true;
	}
	return 0;
}

static void format_endpoint(int family, const uint32_t addr[4], uint16_t port_be,
			    char *abuf, size_t alen, uint16_t *port, char *ep, size_t elen)
{
	if (!inet_ntop(family, addr, abuf, (socklen_t)alen))
		set_name(abuf, alen, "?");
	*port = ntohs(port_be);
	if (family == AF_INET6)
		snprintf(ep, elen, "[%s]:%u", abuf, (unsigned)*port);
	else
		snprintf(ep, elen, "%s:%u", abuf, (unsigned)*port);
}

static int append_sock(struct kc_sockdiag *d, const struct kc_ktls_sock *s)
{
	if (d->n == d->socks_cap) {
		size_t ncap = d->socks_cap ? d->socks_cap * 2 : 16;
		struct kc_ktls_sock *ns = realloc(d->socks, ncap * sizeof *ns);
		if (!ns)
			return -1;
		d->socks = ns;
		d->socks_cap = ncap;
	}
	d->socks[d->n++] = *s;
	return 0;
}

/* One SOCK_DIAG_BY_FAMILY message payload.  -1 with *why if malformed,
 * -2 when out of memory. */
static int parse_diag_msg(const unsigned char *p, size_t len,
			  const struct kc_sockdiag_opts *opts, struct kc_sockdiag *d,
			  const char **why)
{
	struct inet_diag_msg m;
	struct attr tb[KC_INET_DIAG_ULP_INFO + 1];
	struct kc_ktls_sock s;
	size_t off = NLMSG_ALIGN(sizeof m);

	if (len < sizeof m) {
		*why = "inet_diag_msg shorter than its struct";
		return -1;
	}
	memcpy(&m, p, sizeof m);
	if (parse_attrs(p + (off < len ? off : len), off < len ? len - off : 0,
			tb, KC_INET_DIAG_ULP_INFO, why) < 0)
		return -1;

	memset(&s, 0, sizeof s);
	if (tb[KC_INET_DIAG_ULP_INFO].present) {
		struct attr ut[KC_INET_ULP_INFO_TLS + 1];
		if (parse_attrs(tb[KC_INET_DIAG_ULP_INFO].data, tb[KC_INET_DIAG_ULP_INFO].len,
				ut, KC_INET_ULP_INFO_TLS, why) < 0)
			return -1;
		if (ut[KC_INET_ULP_INFO_NAME].present) {
			const struct attr *a = &ut[KC_INET_ULP_INFO_NAME];
			size_t n = strnlen((const char *)a->data, a->len);
			if (n >= sizeof s.ulp)
				n = sizeof s.ulp - 1;
			memcpy(s.ulp, a->data, n);
			s.ulp[n] = '\0';
			for (char *c = s.ulp; *c; c++)
				if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
					*c = '?';
		}
		if (strcmp(s.ulp, "tls") == 0 && ut[KC_INET_ULP_INFO_TLS].present &&
		    parse_tls_info(&ut[KC_INET_ULP_INFO_TLS], &s, why) < 0)
			return -1;
	}
	if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
		return 0;   /* not TCP over IP: not ours to show */
	d->tcp_seen++;
	if (tb[KC_INET_DIAG_ULP_INFO].present)
		d->ulp_seen++;
	if (strcmp(s.ulp, "tls") != 0 && !(opts && opts->all_tcp))
		return 0;

	s.family = m.idiag_family;
	format_endpoint(s.family, m.id.idiag_src, m.id.idiag_sport, s.local_addr,
			sizeof s.local_addr, &s.local_port, s.local, sizeof s.local);
	format_endpoint(s.family, m.id.idiag_dst, m.id.idiag_dport, s.remote_addr,
			sizeof s.remote_addr, &s.remote_port, s.remote, sizeof s.remote);
	s.state = m.idiag_state;
	s.state_name = kc_tcp_state_name(m.idiag_state);
	s.uid = m.idiag_uid;
	s.inode = m.idiag_inode;
	return append_sock(d, &s) < 0 ? -2 : 0;
}

/* A negative error code of NLMSG_ERROR or NLMSG_DONE.  The kernel's are
 * -1 .. -MAX_ERRNO (4095); anything below is no errno (and INT_MIN has no
 * negation): a malformed reply. */
static int reply_error(struct kc_err *err, int e, const char *what)
{
	if (e < -4095)
		return kc_err_set(err, KC_E_IO, "malformed sock_diag reply: %s with error "
				  "code %d, not an errno", what, e);
	return kc_err_errno(err, KC_E_IO, -e, "%s", what);
}

int kc_sockdiag_parse(const void *buf, size_t len, const struct kc_sockdiag_opts *opts,
		      struct kc_sockdiag *d, bool *done, struct kc_err *err)
{
	const unsigned char *p = buf;
	const char *why = NULL;

	*done = false;
	while (len > 0) {
		struct nlmsghdr h;
		if (len < sizeof h)
			return kc_err_set(err, KC_E_IO, "malformed sock_diag reply: truncated "
					  "netlink header (%zu bytes left)", len);
		memcpy(&h, p, sizeof h);
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len)
			return kc_err_set(err, KC_E_IO, "malformed sock_diag reply: message "
					  "length %u with %zu bytes left", (unsigned)h.nlmsg_len, len);
		const unsigned char *payload = p + NLMSG_HDRLEN;
		size_t plen = h.nlmsg_len - NLMSG_HDRLEN;
		int e;

		if (h.nlmsg_flags & NLM_F_DUMP_INTR)
			d->interrupted = true;
		switch (h.nlmsg_type) {
		case NLMSG_NOOP:
			break;
		case NLMSG_DONE:
			if (plen >= sizeof e) {
				memcpy(&e, payload, sizeof e);
				if (e < 0)
					return reply_error(err, e, "sock_diag dump failed");
			}
			*done = true;
			return 0;
		case NLMSG_ERROR:
			if (plen < sizeof e)
				return kc_err_set(err, KC_E_IO, "malformed sock_diag reply: short "
						  "NLMSG_ERROR");
			memcpy(&e, payload, sizeof e);
			if (e < 0)
				return reply_error(err, e, "sock_diag request refused");
			break;   /* an ack */
		case SOCK_DIAG_BY_FAMILY: {
			int r = parse_diag_msg(payload, plen, opts, d, &why);
			if (r == -2)
				return kc_err_set(err, KC_E_INTERNAL, "out of memory");
			if (r < 0)
				return kc_err_set(err, KC_E_IO, "malformed sock_diag reply: %s", why);
			break;
		}
		default:
			break;   /* nothing else is expected; skip it */
		}
		size_t step = NLMSG_ALIGN((size_t)h.nlmsg_len);
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
	return 0;
}

/* ================================================================ query */

/* 0 done, 1 family not supported by sock_diag (no handler), -1 error. */
static int dump_family(int fd, int family, uint32_t seq, unsigned char *buf,
		       const struct kc_sockdiag_opts *opts, struct kc_sockdiag *d,
		       struct kc_err *err)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	memset(&req, 0, sizeof req);
	req.nlh.nlmsg_len = sizeof req;
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = seq;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0u;
	/* Without INET_DIAG_INFO the kernel never calls the ULP dumper. */
	req.r.idiag_ext = 1 << (KC_INET_DIAG_INFO - 1);

	ssize_t n;
	do
		n = sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kc_err_errno(err, KC_E_IO, errno, "cannot send the sock_diag request");

	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = RECV_BUF_SIZE };
		struct msghdr msg = {
			.msg_name = &from, .msg_namelen = sizeof from,
			.msg_iov = &iov, .msg_iovlen = 1,
		};
		bool done;

		n = recvmsg(fd, &msg, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return kc_err_set(err, KC_E_IO, "the kernel did not finish the sock_diag "
					  "dump within %d seconds", RECV_TIMEOUT_SEC);
		if (n < 0)
			return kc_err_errno(err, KC_E_IO, errno, "cannot read the sock_diag reply");
		if (n == 0)
			return kc_err_set(err, KC_E_IO, "the sock_diag socket closed mid-dump");
		if (msg.msg_flags & MSG_TRUNC)
			return kc_err_set(err, KC_E_IO, "a sock_diag reply did not fit in %d bytes",
					  RECV_BUF_SIZE);
		if (msg.msg_namelen < sizeof from || from.nl_pid != 0)
			continue;   /* not from the kernel */
		if (kc_sockdiag_parse(buf, (size_t)n, opts, d, &done, err) < 0) {
			/* No inet_diag handler for this family. */
			if (err && (err->sys_errno == ENOENT || err->sys_errno == EAFNOSUPPORT ||
				    err->sys_errno == EOPNOTSUPP))
				return 1;
			return -1;
		}
		if (done)
			return 0;
	}
}

static void set_note(char *dst, size_t len, const char *s)
{
	snprintf(dst, len, "%s", s);
}

static void append_note(char *dst, size_t len, const char *s)
{
	size_t used = strlen(dst);
	snprintf(dst + used, len - used, "%s%s", used ? "; " : "", s);
}

/* The canary: a throw-away loopback pair with the TLS ULP on one end (no
 * keys, so no tls_stat counter moves), made for unprivileged callers so
 * that the dump itself shows whether this kernel hides ULP info from them
 * (no ULP info for a socket known to be kTLS).  state: 1 attached, 0 the ULP was refused (*ulp_errno), -1 no
 * pair could be made. */
struct canary {
	int fds[2];
	int state;
	int ulp_errno;
	uint32_t inode[2];
};

static void canary_open(struct canary *c)
{
	struct stat st;

	c->fds[0] = c->fds[1] = -1;
	c->inode[0] = c->inode[1] = 0;
	c->ulp_errno = 0;
	c->state = -1;
	if (kc_probe_loopback_pair(c->fds, NULL) < 0)
		return;
	for (int i = 0; i < 2; i++)
		if (fstat(c->fds[i], &st) == 0)
			c->inode[i] = (uint32_t)st.st_ino;
	if (setsockopt(c->fds[0], SOL_TCP, TCP_ULP, "tls", sizeof "tls") == 0) {
		c->state = 1;
	} else {
		c->state = 0;
		c->ulp_errno = errno;
	}
}

static void canary_close(struct canary *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };   /* no TIME_WAIT */

	for (int i = 0; i < 2; i++)
		if (c->fds[i] >= 0) {
			(void)setsockopt(c->fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			close(c->fds[i]);
		}
}

/* Take the canary's sockets out of the list; true if its kTLS end was
 * listed with ULP info. */
static bool canary_remove(struct kc_sockdiag *d, const struct canary *c)
{
	bool seen = false;
	size_t w = 0;

	for (size_t r = 0; r < d->n; r++) {
		const struct kc_ktls_sock *s = &d->socks[r];
		if (s->inode && (s->inode == c->inode[0] || s->inode == c->inode[1])) {
			if (s->inode == c->inode[0] && strcmp(s->ulp, "tls") == 0)
				seen = true;
			continue;
		}
		d->socks[w++] = *s;
	}
	d->n = w;
	return seen;
}

int kc_sockdiag_dump(const struct kc_sockdiag_opts *opts, struct kc_sockdiag *d,
		     struct kc_err *err)
{
	struct timeval tv = { .tv_sec = RECV_TIMEOUT_SEC };
	struct canary canary = { .fds = { -1, -1 }, .state = -1 };
	unsigned char *buf;
	struct kc_err ferr;
	int fd, r;

	memset(d, 0, sizeof *d);
	d->net_admin = kc_has_net_admin();
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		int e = errno;
		if (e == EPROTONOSUPPORT || e == EAFNOSUPPORT) {
			snprintf(d->note, sizeof d->note, "this kernel has no sock_diag netlink "
				 "(%s): sockets cannot be listed", strerror(e));
			return 0;
		}
		return kc_err_errno(err, KC_E_IO, e, "cannot open a sock_diag netlink socket");
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
		int e = errno;
		close(fd);
		return kc_err_errno(err, KC_E_IO, e, "cannot set a timeout on sock_diag");
	}
	buf = malloc(RECV_BUF_SIZE);
	if (!buf) {
		close(fd);
		return kc_err_set(err, KC_E_INTERNAL, "out of memory");
	}
	if (!d->net_admin)
		canary_open(&canary);

	kc_err_clear(&ferr);
	r = dump_family(fd, AF_INET, 1, buf, opts, d, &ferr);
	if (r == 1) {
		snprintf(d->note, sizeof d->note, "TCP sock_diag is not available (%s; "
			 "tcp_diag module missing?): sockets cannot be listed",
			 strerror(ferr.sys_errno));
		kc_sockdiag_free(d);
		goto out;
	}
	if (r == 0)
		r = dump_family(fd, AF_INET6, 2, buf, opts, d, &ferr);
	if (r < 0) {
		if (err)
			*err = ferr;
		free(buf);
		close(fd);
		canary_close(&canary);
		return -1;
	}
	d->available = true;   /* r == 1 for AF_INET6 only means: no IPv6 */

	bool canary_seen = canary_remove(d, &canary);
	size_t ntls = 0;
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->socks[i].ulp, "tls") == 0)
			ntls++;
	if (ntls == 0 && !d->net_admin) {
		if (canary.state == 1 && !canary_seen) {
			/* Our own kTLS socket came without ULP info: withheld. */
			d->withheld = d->withheld_confirmed = true;
			set_note(d->note, sizeof d->note, WITHHELD_NOTE);
		} else if (canary.state == 1) {
			set_note(d->note, sizeof d->note, "no kTLS sockets");
		} else if (canary.state == 0 && canary.ulp_errno == ENOENT) {
			/* No TLS ULP registered: no socket can be kTLS. */
			set_note(d->note, sizeof d->note,
				 "no kTLS sockets (the tls module is not loaded)");
		} else if (d->ulp_seen == 0) {
			/* Cannot tell: the kernel may be hiding them. */
			d->withheld = true;
			set_note(d->note, sizeof d->note, WITHHELD_NOTE);
		} else {
			set_note(d->note, sizeof d->note, "no kTLS sockets");
		}
	} else if (ntls == 0) {
		set_note(d->note, sizeof d->note, "no kTLS sockets");
	}
	if (d->interrupted)
		append_note(d->note, sizeof d->note,
			    "the socket table changed during the dump, some may be missing");
	if (!(opts && opts->no_owners))
		kc_sockdiag_find_owners(d, opts ? opts->proc_root : NULL);
out:
	canary_close(&canary);
	free(buf);
	close(fd);
	return 0;
}

/* ================================================================ owners */

struct inode_ix {
	uint32_t inode;
	size_t i;
};

static int cmp_inode(const void *a, const void *b)
{
	uint32_t x = ((const struct inode_ix *)a)->inode, y = ((const struct inode_ix *)b)->inode;
	return x < y ? -1 : x > y;
}

static void read_comm(const char *root, const char *pid, char *comm, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s/comm", root, pid);
	comm[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, comm, len - 1);
	close(fd);
	if (n <= 0) {
		comm[0] = '\0';
		return;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	for (char *c = comm; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
}

/* "socket:[123]" → 123; 0 for anything else (strtoul alone would also
 * take "socket:[ +123]" or "socket:[-4294967173]"). */
static uint32_t socket_inode(const char *link)
{
	if (strncmp(link, "socket:[", 8) != 0 || link[8] < '0' || link[8] > '9')
		return 0;
	char *end;
	errno = 0;
	unsigned long v = strtoul(link + 8, &end, 10);
	if (errno || end == link + 8 || strcmp(end, "]") != 0 || v > UINT32_MAX)
		return 0;
	return (uint32_t)v;
}

void kc_sockdiag_find_owners(struct kc_sockdiag *d, const char *root)
{
	struct inode_ix *ix;
	pid_t *last;
	size_t nix = 0, denied = 0;
	DIR *pd;
	struct dirent *de;

	d->owners_denied = 0;
	d->owner_note[0] = '\0';
	if (d->n == 0)
		return;
	if (!root)
		root = "/proc";
	ix = calloc(d->n, sizeof *ix);
	last = calloc(d->n, sizeof *last);
	if (!ix || !last) {
		set_note(d->owner_note, sizeof d->owner_note, "owners not looked up: out of memory");
		goto out;
	}
	for (size_t i = 0; i < d->n; i++)
		if (d->socks[i].inode) {
			ix[nix].inode = d->socks[i].inode;
			ix[nix++].i = i;
		}
	qsort(ix, nix, sizeof *ix, cmp_inode);

	pd = opendir(root);
	if (!pd) {
		snprintf(d->owner_note, sizeof d->owner_note, "owners not looked up: cannot "
			 "read %s: %s", root, strerror(errno));
		goto out;
	}
	while ((de = readdir(pd))) {
		const char *name = de->d_name;
		if (name[0] < '1' || name[0] > '9' || name[strspn(name, "0123456789")] != '\0')
			continue;
		pid_t pid = (pid_t)strtol(name, NULL, 10);
		char path[512];
		snprintf(path, sizeof path, "%s/%s/fd", root, name);
		DIR *fdd = opendir(path);
		if (!fdd) {
			if (errno == EACCES || errno == EPERM)
				denied++;
			continue;   /* also: the process just exited */
		}
		struct dirent *fe;
		while ((fe = readdir(fdd))) {
			char link[64];
			if (fe->d_name[0] == '.')
				continue;
			ssize_t n = readlinkat(dirfd(fdd), fe->d_name, link, sizeof link - 1);
			/* A link that fills the buffer may have been cut short:
			 * no socket's is that long ("socket:[4294967295]"). */
			if (n <= 0 || (size_t)n >= sizeof link - 1)
				continue;
			link[n] = '\0';
			struct inode_ix key = { .inode = socket_inode(link) };
			if (!key.inode)
				continue;
			struct inode_ix *hit = bsearch(&key, ix, nix, sizeof *ix, cmp_inode);
			if (!hit)
				continue;
			/* bsearch may land on any of equal inodes: walk to the first. */
			while (hit > ix && hit[-1].inode == key.inode)
				hit--;
			for (; hit < ix + nix && hit->inode == key.inode; hit++) {
				struct kc_ktls_sock *s = &d->socks[hit->i];
				if (last[hit->i] == pid)
					continue;   /* the same socket on another fd */
				last[hit->i] = pid;
				if (s->pid == 0) {
					s->pid = pid;
					read_comm(root, name, s->comm, sizeof s->comm);
				} else {
					s->other_owners++;
				}
			}
		}
		closedir(fdd);
	}
	closedir(pd);

	d->owners_denied = denied;
	size_t unresolved = 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->socks[i].pid == 0)
			unresolved++;
	if (unresolved && denied)
		snprintf(d->owner_note, sizeof d->owner_note, "owner not found for %zu "
			 "socket(s): no permission to read the fds of %zu process(es); run as "
			 "root to see them", unresolved, denied);
out:
	free(ix);
	free(last);
}

void kc_sockdiag_free(struct kc_sockdiag *d)
{
	if (!d)
		return;
	free(d->socks);
	d->socks = NULL;
	d->n = d->socks_cap = 0;
}

/* ================================================================== view */

static void opt_u16(struct kc_view *o, const char *key, const char *label, bool has,
		    uint16_t v)
{
	if (has)
		kc_view_uint(o, key, label, v);
	else
		kc_view_null(o, key, label);
}

int kc_sockdiag_view(const struct kc_sockdiag *d, struct kc_view *parent,
		     struct kc_err *err)
{
	struct kc_view *o = kc_view_object(parent, "sockets", "Sockets");

	kc_view_bool(o, "available", "sock_diag available", d->available);
	kc_view_bool(o, "net_admin", "CAP_NET_ADMIN (root)", d->net_admin);
	kc_view_bool(o, "withheld", "withheld by the kernel", d->withheld);
	kc_view_bool(o, "withheld_confirmed", "withholding confirmed", d->withheld_confirmed);
	kc_view_bool(o, "interrupted", "dump interrupted", d->interrupted);
	kc_view_string_or_null(o, "note", "note", d->note);
	kc_view_string_or_null(o, "owner_note", "owners", d->owner_note);
	kc_view_uint(o, "tcp_sockets_seen", "TCP sockets seen", d->tcp_seen);

	struct kc_view *list = kc_view_array(o, "list", "kTLS sockets");
	for (size_t i = 0; i < d->n; i++) {
		const struct kc_ktls_sock *s = &d->socks[i];
		struct kc_view *e = kc_view_object(list, NULL, "socket");
		char flags[40] = "", owner[64] = "", tls[128];

		kc_view_string(e, "family", "family", "%s", s->family == AF_INET6 ? "inet6" : "inet");
		kc_view_string(e, "local", "local", "%s", s->local);
		kc_view_string(e, "remote", "remote", "%s", s->remote);
		kc_view_string(e, "local_addr", "local address", "%s", s->local_addr);
		kc_view_uint(e, "local_port", "local port", s->local_port);
		kc_view_string(e, "remote_addr", "remote address", "%s", s->remote_addr);
		kc_view_uint(e, "remote_port", "remote port", s->remote_port);
		kc_view_string(e, "state", "state", "%s", s->state_name);
		kc_view_uint(e, "uid", "uid", s->uid);
		kc_view_uint(e, "inode", "inode", s->inode);
		kc_view_string_or_null(e, "ulp", "ULP", s->ulp);
		kc_view_string_or_null(e, "version", "version", s->version_name);
		kc_view_string_or_null(e, "cipher", "cipher", s->cipher_name);
		opt_u16(e, "cipher_id", "cipher id", s->has_cipher, s->cipher);
		kc_view_string_or_null(e, "tx", "TX", s->txconf_name);
		kc_view_string_or_null(e, "rx", "RX", s->rxconf_name);
		kc_view_bool(e, "zc_ro_tx", "zerocopy TX", s->zc_ro_tx);
		kc_view_bool(e, "rx_no_pad", "RX expects no padding", s->rx_no_pad);
		opt_u16(e, "tx_max_payload_len", "TX max payload", s->has_tx_max_payload_len,
			s->tx_max_payload_len);
		if (s->pid)
			kc_view_uint(e, "pid", "pid", (uint64_t)s->pid);
		else
			kc_view_null(e, "pid", "pid");
		kc_view_string_or_null(e, "comm", "process", s->pid ? s->comm : NULL);
		kc_view_uint(e, "other_owners", "other owners", s->other_owners);

		if (s->zc_ro_tx)
			strcat(flags, " zc_ro_tx");
		if (s->rx_no_pad)
			strcat(flags, " no_pad_rx");
		if (s->pid)
			snprintf(owner, sizeof owner, " pid %ld (%s)%s", (long)s->pid, s->comm,
				 s->other_owners ? " +more" : "");
		if (strcmp(s->ulp, "tls") != 0)
			snprintf(tls, sizeof tls, " %s", s->ulp[0] ? s->ulp : "no ULP");
		else if (!s->has_version)
			snprintf(tls, sizeof tls, " kTLS, no keys yet, tx %s rx %s",
				 s->txconf_name[0] ? s->txconf_name : "?",
				 s->rxconf_name[0] ? s->rxconf_name : "?");
		else
			snprintf(tls, sizeof tls, " %s %s tx %s rx %s", s->version_name,
				 s->cipher_name[0] ? s->cipher_name : "?",
				 s->txconf_name[0] ? s->txconf_name : "?",
				 s->rxconf_name[0] ? s->rxconf_name : "?");
		kc_view_set_text(e, "%s -> %s %s%s%s%s uid %u inode %u", s->local, s->remote,
				 s->state_name, tls, flags, owner, (unsigned)s->uid,
				 (unsigned)s->inode);
		kc_view_mark_brief(e);
	}
	if (d->note[0])
		kc_view_set_text(list, "%s", d->note);
	/* The brief text: how many, or the note that says why none. */
	if (!d->n)
		kc_view_set_summary(o, "%s", d->note[0] ? d->note : "no kTLS sockets");
	else
		kc_view_set_summary(o, "kTLS sockets: %zu%s%s%s%s", d->n, d->note[0] ? "; " : "",
				    d->note, d->owner_note[0] ? "; " : "", d->owner_note);
	return kc_view_status(parent, err);
}
