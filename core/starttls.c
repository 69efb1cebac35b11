/* core/starttls.c: the plain-text preamble before TLS (see starttls.h).
 * The table at the end is the one list of protocols. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "core/starttls.h"

/* How the replies of a line protocol end and say yes. */
enum st_style {
	ST_CODE,    /* SMTP, LMTP, FTP, NNTP: "NNN text", "NNN-" continues */
	ST_POP,     /* POP3: one line, "+OK" or "-ERR" */
	ST_IMAP,    /* "* ..." lines until the command's tag */
	ST_SIEVE,   /* ManageSieve: lines until OK, NO or BYE */
};

/* One step of a line protocol: send a command, or read a reply that
 * must start with expect (and list offer among its words). */
struct st_step {
	const char *send;          /* the command; NULL: a read */
	bool with_name;            /* the command takes our name (EHLO NAME) */
	const char *expect;
	const char *offer;         /* NULL: nothing to look for */
	const char *what;          /* the reply, in messages: "greeting" */
};

struct st;

struct kc_starttls_proto {
	const char *name;
	const char *verb;          /* what the server agrees to, in messages */
	enum st_style style;
	struct st_step steps[6];   /* ends with a step of neither send nor expect */
	/* Protocols that are not lines of text. */
	int (*run)(struct st *s, struct kc_err *err);
};

struct st {
	int fd;
	const struct kc_starttls_opts *o;
	const struct kc_starttls_proto *p;
	long long deadline;
	size_t total;              /* bytes read so far */
	const char *what;          /* what we wait for, in messages */
	char line[KC_STARTTLS_LINE_MAX + 1];
	size_t len;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A server's words go into one message line: nothing that could end or
 * forge one, and not more than fits. */
static void printable_copy(char *dst, size_t size, const char *src, size_t n)
{
	size_t i;
	for (i = 0; i < n && i + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
	dst[i] = '\0';
}

/* The reply quoted in a message: at most 200 bytes of it. */
#define QUOTE_MAX 200
static const char *quoted(const char *line, char buf[QUOTE_MAX + 4])
{
	size_t n = strlen(line);
	snprintf(buf, QUOTE_MAX + 4, "%.*s%s", QUOTE_MAX, line, n > QUOTE_MAX ? "..." : "");
	return buf;
}

static void transcript(struct st *s, bool from_server, const char *text, size_t n)
{
	char line[KC_STARTTLS_LINE_MAX + 1];
	if (!s->o->on_line)
		return;
	printable_copy(line, sizeof line, text, n);
	s->o->on_line(s->o->line_ctx, from_server, line);
}

static bool stopped(const struct st *s)
{
	return s->o->stop && *s->o->stop;
}

/* Wait until fd is ready for events, within the deadline. */
static int st_wait(struct st *s, short events, struct kc_err *err)
{
	struct pollfd pf[2] = { { .fd = s->fd, .events = events },
				{ .fd = s->o->stop_fd, .events = POLLIN } };
	nfds_t n = s->o->stop && s->o->stop_fd >= 0 ? 2 : 1;
	for (;;) {
		if (stopped(s))
			return kc_err_errno(err, KC_E_IO, EINTR, "--starttls %s interrupted",
					    s->p->name);
		long long left = s->deadline - mono_ms();
		if (left <= 0)
			return kc_err_set(err, KC_E_TIMEOUT,
					  "--starttls %s: no answer within %u ms while waiting for "
					  "the server's %s (raise --handshake-timeout if it is just "
					  "slow)", s->p->name, s->o->timeout_ms, s->what);
		int r = poll(pf, n, (int)left);
		if (r < 0 && errno != EINTR)
			return kc_err_errno(err, KC_E_IO, errno, "--starttls %s: poll", s->p->name);
		if (r > 0 && pf[0].revents)
			return 0;
	}
}

static int st_send(struct st *s, const void *buf, size_t len, struct kc_err *err)
{
	const char *p = buf;
	while (len) {
		if (st_wait(s, POLLOUT, err) < 0)
			return -1;
		ssize_t w = send(s->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return kc_err_errno(err, KC_E_IO, errno, "--starttls %s: sending to the server",
					    s->p->name);
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Exactly len bytes into buf: the only reads of the socket. */
static int st_read(struct st *s, void *buf, size_t len, struct kc_err *err)
{
	unsigned char *p = buf;
	while (len) {
		if (s->total >= KC_STARTTLS_TOTAL)
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: the server sent more than %d bytes before "
					  "TLS, in its %s: is it %s?", s->p->name, KC_STARTTLS_TOTAL,
					  s->what, s->p->name);
		if (st_wait(s, POLLIN, err) < 0)
			return -1;
		size_t room = KC_STARTTLS_TOTAL - s->total;
		ssize_t r = recv(s->fd, p, len < room ? len : room, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return kc_err_errno(err, KC_E_IO, errno,
					    "--starttls %s: reading the server's %s", s->p->name,
					    s->what);
		if (r == 0)
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: the server closed the connection while we "
					  "waited for its %s", s->p->name, s->what);
		p += r;
		len -= (size_t)r;
		s->total += (size_t)r;
	}
	return 0;
}

/* One line into s->line, without its LF or CR LF: byte by byte, so that
 * nothing after it leaves the socket. */
static int read_line(struct st *s, struct kc_err *err)
{
	s->len = 0;
	for (;;) {
		char c;
		if (st_read(s, &c, 1, err) < 0)
			return -1;
		if (c == '\n')
			break;
		if (s->len == KC_STARTTLS_LINE_MAX)
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: a line of the server's %s is longer than "
					  "%d bytes", s->p->name, s->what, KC_STARTTLS_LINE_MAX);
		s->line[s->len++] = c;
	}
	if (s->len && s->line[s->len - 1] == '\r')
		s->len--;
	transcript(s, true, s->line, s->len);
	/* From here on the line is text, for matching and messages. */
	printable_copy(s->line, sizeof s->line, s->line, s->len);
	return 0;
}

static int send_text(struct st *s, const char *text, struct kc_err *err)
{
	transcript(s, false, text, strlen(text));
	char buf[KC_STARTTLS_LINE_MAX + 3];
	int n = snprintf(buf, sizeof buf, "%s\r\n", text);
	if (n < 0 || (size_t)n >= sizeof buf)
		return kc_err_set(err, KC_E_USAGE, "--starttls %s: our command is too long",
				  s->p->name);
	return st_send(s, buf, (size_t)n, err);
}

/* ------------------------------------------------------ line protocols */

/* Whether word (case-insensitive) is one of the words of text. */
static bool has_word(const char *text, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, " \t");
		if (n == wl && strncasecmp(p, word, wl) == 0)
			return true;
		p += n;
	}
	return false;
}

static bool starts_with(const char *line, const char *prefix)
{
	return strncasecmp(line, prefix, strlen(prefix)) == 0;
}

/* A reply line's text after "NNN-" or "NNN ". */
static const char *after_code(const struct st *s)
{
	return s->len > 4 ? s->line + 4 : "";
}

static int too_many_lines(struct st *s, struct kc_err *err)
{
	return kc_err_set(err, KC_E_STARTTLS, "--starttls %s: the server's %s has more than %d "
			  "lines", s->p->name, s->what, KC_STARTTLS_LINES);
}

/* A reply of the protocol's style: s->line is its last line; *offered
 * whether offer (if any) is among the words of its lines. */
static int read_reply(struct st *s, const char *expect, const char *offer, bool *offered,
		      struct kc_err *err)
{
	*offered = false;
	if (read_line(s, err) < 0)
		return -1;
	switch (s->p->style) {
	case ST_CODE: {
		/* "NNN-" opens a reply of several lines, which ends with the
		 * first line that starts "NNN " (FTP lets the lines between
		 * be anything). */
		char code[4];
		if (s->len < 3 || !isdigit((unsigned char)s->line[0]) ||
		    !isdigit((unsigned char)s->line[1]) || !isdigit((unsigned char)s->line[2]))
			return 0;   /* not a reply: the caller's comparison says so */
		memcpy(code, s->line, 3);
		code[3] = '\0';
		for (int n = 1; s->line[3] == '-' || strncmp(s->line, code, 3) != 0; n++) {
			if (offer && has_word(after_code(s), offer))
				*offered = true;
			if (n == KC_STARTTLS_LINES)
				return too_many_lines(s, err);
			if (read_line(s, err) < 0)
				return -1;
		}
		if (offer && has_word(after_code(s), offer))
			*offered = true;
		return 0;
	}
	case ST_POP:
		return 0;
	case ST_IMAP: {
		/* The greeting is one untagged line; a command's reply ends
		 * with its tag. */
		size_t tl = strcspn(expect, " ");
		if (tl == 1 && expect[0] == '*')
			return 0;
		for (int n = 1; !(strncmp(s->line, expect, tl) == 0 && s->line[tl] == ' '); n++) {
			if (offer && has_word(s->line, offer))
				*offered = true;
			if (n == KC_STARTTLS_LINES)
				return too_many_lines(s, err);
			if (read_line(s, err) < 0)
				return -1;
		}
		return 0;
	}
	case ST_SIEVE:
		for (int n = 1; !(starts_with(s->line, "OK") || starts_with(s->line, "NO") ||
				  starts_with(s->line, "BYE")); n++) {
			if (offer && has_word(s->line, offer))
				*offered = true;
			if (n == KC_STARTTLS_LINES)
				return too_many_lines(s, err);
			if (read_line(s, err) < 0)
				return -1;
		}
		return 0;
	}
	return 0;
}

static int run_lines(struct st *s, struct kc_err *err)
{
	const struct st_step *st = s->p->steps;
	char q[QUOTE_MAX + 4];
	for (size_t i = 0; st[i].send || st[i].expect; i++) {
		if (st[i].send) {
			char cmd[KC_STARTTLS_LINE_MAX];
			const char *name = s->o->client_name ? s->o->client_name : "localhost";
			snprintf(cmd, sizeof cmd, "%s%s%s", st[i].send, st[i].with_name ? " " : "",
				 st[i].with_name ? name : "");
			if (send_text(s, cmd, err) < 0)
				return -1;
			continue;
		}
		bool last = !st[i + 1].send && !st[i + 1].expect, offered;
		s->what = st[i].what;
		if (read_reply(s, st[i].expect, st[i].offer, &offered, err) < 0)
			return -1;
		if (!starts_with(s->line, st[i].expect)) {
			if (last)
				return kc_err_set(err, KC_E_STARTTLS,
						  "--starttls %s: the server refused %s: '%s'",
						  s->p->name, s->p->verb, quoted(s->line, q));
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: unexpected %s '%s' (expected %s)",
					  s->p->name, st[i].what, quoted(s->line, q), st[i].expect);
		}
		if (st[i].offer && !offered)
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: the server does not offer %s (its %s ends "
					  "'%s')", s->p->name, s->p->verb, st[i].what,
					  quoted(s->line, q));
	}
	return 0;
}

/* ------------------------------------------------------------- XMPP */

/* The next piece of the stream up to and with its '>' (text before a
 * tag comes with it), into s->line, spaces around it cut off. */
static int read_xml_piece(struct st *s, struct kc_err *err)
{
	s->len = 0;
	for (;;) {
		char c;
		if (st_read(s, &c, 1, err) < 0)
			return -1;
		if (s->len == 0 && isspace((unsigned char)c))
			continue;
		if (s->len == KC_STARTTLS_LINE_MAX)
			return kc_err_set(err, KC_E_STARTTLS,
					  "--starttls %s: an element of the server's %s is longer "
					  "than %d bytes", s->p->name, s->what, KC_STARTTLS_LINE_MAX);
		s->line[s->len++] = c;
		if (c == '>')
			break;
	}
	transcript(s, true, s->line, s->len);
	printable_copy(s->line, sizeof s->line, s->line, s->len);
	return 0;
}

static int xmpp_stream_error(struct st *s, struct kc_err *err)
{
	char q[QUOTE_MAX + 4];
	/* The condition is the element inside it. */
	if (read_xml_piece(s, err) < 0)
		return -1;
	return kc_err_set(err, KC_E_STARTTLS, "--starttls xmpp: the server ended the stream "
			  "with an error: '%s'", quoted(s->line, q));
}

static int run_xmpp(struct st *s, struct kc_err *err)
{
	char open[KC_STARTTLS_LINE_MAX], q[QUOTE_MAX + 4];
	const char *to = s->o->server_name ? s->o->server_name : "";

	/* A name goes between quotes: nothing that would end them. */
	if (strpbrk(to, "'\"<>&"))
		return kc_err_set(err, KC_E_USAGE, "--starttls xmpp: '%s' cannot be a stream's "
				  "domain", to);
	snprintf(open, sizeof open, "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
		 "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", to);
	transcript(s, false, open, strlen(open));
	if (st_send(s, open, strlen(open), err) < 0)
		return -1;
	s->what = "stream features";
	bool offered = false;
	for (int n = 0;; n++) {
		if (n == KC_STARTTLS_LINES)
			return too_many_lines(s, err);
		if (read_xml_piece(s, err) < 0)
			return -1;
		if (strstr(s->line, "<stream:error"))
			return xmpp_stream_error(s, err);
		if (strstr(s->line, "<starttls"))
			offered = true;
		if (strstr(s->line, "</stream:features>") || strstr(s->line, "<stream:features/>"))
			break;
	}
	if (!offered)
		return kc_err_set(err, KC_E_STARTTLS, "--starttls xmpp: the server does not offer "
				  "STARTTLS (no <starttls/> in its stream features)");
	static const char req[] = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
	transcript(s, false, req, sizeof req - 1);
	if (st_send(s, req, sizeof req - 1, err) < 0)
		return -1;
	s->what = "answer to <starttls/>";
	if (read_xml_piece(s, err) < 0)
		return -1;
	if (strncmp(s->line, "<proceed", 8) != 0) {
		if (strstr(s->line, "<stream:error"))
			return xmpp_stream_error(s, err);
		return kc_err_set(err, KC_E_STARTTLS, "--starttls xmpp: the server refused STARTTLS: "
				  "'%s'", quoted(s->line, q));
	}
	/* <proceed ...></proceed> rather than <proceed .../> */
	if (s->len < 2 || s->line[s->len - 2] != '/')
		for (int n = 0; !strstr(s->line, "</proceed>"); n++) {
			if (n == KC_STARTTLS_LINES)
				return too_many_lines(s, err);
			if (read_xml_piece(s, err) < 0)
				return -1;
		}
	return 0;
}

/* ------------------------------------------------------------- LDAP */

/* RFC 4511 4.14.1: ExtendedRequest { requestName "1.3.6.1.4.1.1466.20037" },
 * message 1. */
#define LDAP_STARTTLS_OID "1.3.6.1.4.1.1466.20037"

/* A BER length at b[*i] (short or long form, up to 4 bytes); -1 if bad. */
static long ber_len(const unsigned char *b, size_t n, size_t *i)
{
	if (*i >= n)
		return -1;
	unsigned char c = b[(*i)++];
	if (c < 0x80)
		return c;
	size_t k = c & 0x7f;
	if (k == 0 || k > 4 || *i + k > n)
		return -1;
	long v = 0;
	while (k--)
		v = v << 8 | b[(*i)++];
	return v;
}

/* The element of type tag at b[*i]: its contents' offset and length;
 * -1 if it is not there. */
static long ber_take(const unsigned char *b, size_t n, size_t *i, unsigned char tag,
		     size_t *at)
{
	if (*i >= n || b[*i] != tag)
		return -1;
	(*i)++;
	long len = ber_len(b, n, i);
	if (len < 0 || (size_t)len > n - *i)
		return -1;
	*at = *i;
	*i += (size_t)len;
	return len;
}

static const char *ldap_result_name(long code)
{
	static const struct { long code; const char *name; } names[] = {
		{ 1, "operationsError" }, { 2, "protocolError" }, { 7, "authMethodNotSupported" },
		{ 8, "strongerAuthRequired" }, { 51, "busy" }, { 52, "unavailable" },
		{ 53, "unwillingToPerform" }, { 80, "other" },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].code == code)
			return names[i].name;
	return "see RFC 4511 4.1.9";
}

static int ldap_bad(struct st *s, struct kc_err *err)
{
	return kc_err_set(err, KC_E_STARTTLS, "--starttls ldap: the server's answer to StartTLS "
			  "is not an LDAP ExtendedResponse: is it LDAP?");
}

static int run_ldap(struct st *s, struct kc_err *err)
{
	static const unsigned char req[] = {
		0x30, 0x1d,                     /* LDAPMessage */
		0x02, 0x01, 0x01,               /* messageID 1 */
		0x77, 0x18,                     /* [APPLICATION 23] ExtendedRequest */
		0x80, 0x16,                     /* [0] requestName, 22 bytes */
		'1', '.', '3', '.', '6', '.', '1', '.', '4', '.', '1', '.',
		'1', '4', '6', '6', '.', '2', '0', '0', '3', '7',
	};
	_Static_assert(sizeof LDAP_STARTTLS_OID - 1 == 0x16, "the OID's length in req");
	if (s->o->on_line)
		s->o->on_line(s->o->line_ctx, false,
			      "ExtendedRequest StartTLS (" LDAP_STARTTLS_OID "), message 1");
	if (st_send(s, req, sizeof req, err) < 0)
		return -1;
	s->what = "answer to StartTLS";
	/* The tag and the length, then exactly that many bytes. */
	unsigned char hdr[6], *b = (unsigned char *)s->line;
	size_t i = 1;
	if (st_read(s, hdr, 2, err) < 0)
		return -1;
	if (hdr[0] != 0x30)
		return ldap_bad(s, err);
	size_t more = hdr[1] & 0x80 ? hdr[1] & 0x7f : 0;
	if (more > 4 || (hdr[1] & 0x80 && more == 0))
		return ldap_bad(s, err);
	if (more && st_read(s, hdr + 2, more, err) < 0)
		return -1;
	long len = ber_len(hdr, 2 + more, &i);
	if (len < 0)
		return ldap_bad(s, err);
	if (len > KC_STARTTLS_LINE_MAX)
		return kc_err_set(err, KC_E_STARTTLS, "--starttls ldap: the server's answer to "
				  "StartTLS is longer than %d bytes", KC_STARTTLS_LINE_MAX);
	if (st_read(s, b, (size_t)len, err) < 0)
		return -1;
	size_t n = (size_t)len, at, end;
	i = 0;
	long idlen = ber_take(b, n, &i, 0x02, &at);
	if (idlen < 1 || idlen > 4)
		return ldap_bad(s, err);
	long id = 0;
	for (long k = 0; k < idlen; k++)
		id = id << 8 | b[at + (size_t)k];
	long rlen = ber_take(b, n, &i, 0x78, &at);   /* [APPLICATION 24] ExtendedResponse */
	if (rlen < 0)
		return ldap_bad(s, err);
	i = at;
	end = at + (size_t)rlen;
	long clen = ber_take(b, end, &i, 0x0a, &at);  /* resultCode ENUMERATED */
	if (clen < 1 || clen > 4)
		return ldap_bad(s, err);
	long code = 0;
	for (long k = 0; k < clen; k++)
		code = code << 8 | b[at + (size_t)k];
	size_t dn_at, msg_at = 0;
	long msg_len = -1;
	if (ber_take(b, end, &i, 0x04, &dn_at) >= 0)   /* matchedDN */
		msg_len = ber_take(b, end, &i, 0x04, &msg_at);   /* diagnosticMessage */
	char msg[QUOTE_MAX + 1] = "";
	if (msg_len > 0)
		printable_copy(msg, sizeof msg, (const char *)b + msg_at, (size_t)msg_len);
	char said[512];
	snprintf(said, sizeof said, "ExtendedResponse message %ld, resultCode %ld%s%s%s", id,
		 code, msg[0] ? ", '" : "", msg, msg[0] ? "'" : "");
	if (s->o->on_line)
		s->o->on_line(s->o->line_ctx, true, said);
	if (id == 0)   /* an unsolicited notification: Notice of Disconnection */
		return kc_err_set(err, KC_E_STARTTLS, "--starttls ldap: the server disconnected "
				  "instead: resultCode %ld (%s)%s%s%s", code, ldap_result_name(code),
				  msg[0] ? ", '" : "", msg, msg[0] ? "'" : "");
	if (id != 1)
		return ldap_bad(s, err);
	if (code != 0)
		return kc_err_set(err, KC_E_STARTTLS, "--starttls ldap: the server refused "
				  "StartTLS: resultCode %ld (%s)%s%s%s", code, ldap_result_name(code),
				  msg[0] ? ", '" : "", msg, msg[0] ? "'" : "");
	return 0;
}

/* --------------------------------------------------------- PostgreSQL */

static int run_postgres(struct st *s, struct kc_err *err)
{
	/* SSLRequest: length 8, then the code 1234 5679 (80877103), big-endian. */
	static const unsigned char req[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	if (s->o->on_line)
		s->o->on_line(s->o->line_ctx, false, "SSLRequest (length 8, code 80877103)");
	if (st_send(s, req, sizeof req, err) < 0)
		return -1;
	s->what = "answer to SSLRequest";
	unsigned char c;
	if (st_read(s, &c, 1, err) < 0)
		return -1;
	char said[64];
	snprintf(said, sizeof said, c >= 0x20 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
	if (s->o->on_line)
		s->o->on_line(s->o->line_ctx, true, said);
	if (c == 'S')
		return 0;
	if (c == 'N')
		return kc_err_set(err, KC_E_STARTTLS, "--starttls postgres: the server refused "
				  "SSL: it answered 'N' to SSLRequest (its ssl setting is off)");
	if (c == 'E')
		return kc_err_set(err, KC_E_STARTTLS, "--starttls postgres: the server answered "
				  "SSLRequest with an error message ('E'): it does not know "
				  "SSLRequest");
	return kc_err_set(err, KC_E_STARTTLS, "--starttls postgres: the server answered "
			  "SSLRequest with %s, neither 'S' nor 'N': is it PostgreSQL?", said);
}

/* ------------------------------------------------------------ the table */

/* The protocols, and how each asks for TLS (RFC 3207 SMTP, RFC 2033 LMTP,
 * RFC 2595 IMAP and POP3, RFC 4217 FTP, RFC 4642 NNTP, RFC 5804
 * ManageSieve, RFC 6120 XMPP, RFC 4511 LDAP, PostgreSQL's protocol). */
static const struct kc_starttls_proto protos[] = {
	{ .name = "smtp", .verb = "STARTTLS", .style = ST_CODE, .steps = {
		{ .expect = "220", .what = "greeting" },
		{ .send = "EHLO", .with_name = true },
		{ .expect = "250", .offer = "STARTTLS", .what = "reply to EHLO" },
		{ .send = "STARTTLS" },
		{ .expect = "220", .what = "reply to STARTTLS" },
	} },
	{ .name = "lmtp", .verb = "STARTTLS", .style = ST_CODE, .steps = {
		{ .expect = "220", .what = "greeting" },
		{ .send = "LHLO", .with_name = true },
		{ .expect = "250", .offer = "STARTTLS", .what = "reply to LHLO" },
		{ .send = "STARTTLS" },
		{ .expect = "220", .what = "reply to STARTTLS" },
	} },
	{ .name = "imap", .verb = "STARTTLS", .style = ST_IMAP, .steps = {
		{ .expect = "* OK", .what = "greeting" },
		{ .send = "a CAPABILITY" },
		{ .expect = "a OK", .offer = "STARTTLS", .what = "reply to CAPABILITY" },
		{ .send = "b STARTTLS" },
		{ .expect = "b OK", .what = "reply to STARTTLS" },
	} },
	{ .name = "pop3", .verb = "STLS", .style = ST_POP, .steps = {
		{ .expect = "+OK", .what = "greeting" },
		{ .send = "STLS" },
		{ .expect = "+OK", .what = "reply to STLS" },
	} },
	{ .name = "ftp", .verb = "AUTH TLS", .style = ST_CODE, .steps = {
		{ .expect = "220", .what = "greeting" },
		{ .send = "AUTH TLS" },
		{ .expect = "234", .what = "reply to AUTH TLS" },
	} },
	{ .name = "nntp", .verb = "STARTTLS", .style = ST_CODE, .steps = {
		{ .expect = "20", .what = "greeting" },     /* 200 or 201 */
		{ .send = "STARTTLS" },
		{ .expect = "382", .what = "reply to STARTTLS" },
	} },
	{ .name = "sieve", .verb = "STARTTLS", .style = ST_SIEVE, .steps = {
		{ .expect = "OK", .offer = "\"STARTTLS\"", .what = "greeting" },
		{ .send = "STARTTLS" },
		{ .expect = "OK", .what = "reply to STARTTLS" },
	} },
	{ .name = "xmpp", .verb = "STARTTLS", .run = run_xmpp },
	{ .name = "ldap", .verb = "StartTLS", .run = run_ldap },
	{ .name = "postgres", .verb = "SSL", .run = run_postgres },
};

const struct kc_starttls_proto *kc_starttls_find(const char *name)
{
	for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
		if (strcasecmp(protos[i].name, name) == 0)
			return &protos[i];
	return NULL;
}

const struct kc_starttls_proto *kc_starttls_at(size_t i)
{
	return i < sizeof protos / sizeof protos[0] ? &protos[i] : NULL;
}

const char *kc_starttls_name(const struct kc_starttls_proto *p)
{
	return p->name;
}

int kc_starttls_run(int fd, const struct kc_starttls_opts *o, struct kc_err *err)
{
	struct st s = { .fd = fd, .o = o, .p = o->proto, .what = "greeting" };
	s.deadline = mono_ms() + (o->timeout_ms ? o->timeout_ms : 30000);
	return s.p->run ? s.p->run(&s, err) : run_lines(&s, err);
}
