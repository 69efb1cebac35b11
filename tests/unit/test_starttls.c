/* tests/unit/test_starttls.c: each protocol's preamble on a socket pair,
 * with the server's whole side written beforehand and TLS bytes after its
 * go-ahead: what we send is checked byte for byte, and the TLS bytes must
 * still be in the socket afterwards (the preamble read none of them). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/starttls.h"

/* What follows the go-ahead: the start of a TLS record. */
static const char tls[] = "\x16\x03\x01\x00\x05hello";

struct pair {
	int fd, peer;
};

static struct pair run(const char *proto, const void *server, size_t len, int want,
		       struct kc_err *err)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(write(sv[1], server, len), (ssize_t)len);
	cr_assert_eq(write(sv[1], tls, sizeof tls - 1), (ssize_t)(sizeof tls - 1));
	struct kc_starttls_opts o = {
		.proto = kc_starttls_find(proto), .server_name = "example.com",
		.client_name = "client.test", .timeout_ms = 2000, .stop_fd = -1,
	};
	cr_assert_not_null(o.proto, "%s", proto);
	memset(err, 0, sizeof *err);
	int rc = kc_starttls_run(sv[0], &o, err);
	cr_assert_eq(rc, want, "%s: %d, expected %d (%s)", proto, rc, want, err->msg);
	return (struct pair){ sv[0], sv[1] };
}

/* What the client sent is sent, and the TLS bytes are still unread. */
static void check(struct pair p, const void *sent, size_t len)
{
	char buf[4096];
	shutdown(p.fd, SHUT_WR);
	ssize_t n = recv(p.peer, buf, sizeof buf, MSG_WAITALL);
	cr_assert_eq((size_t)n, len, "sent %zd bytes, expected %zu: %.*s", n, len, (int)n, buf);
	cr_assert_eq(memcmp(buf, sent, len), 0, "sent '%.*s'", (int)n, buf);
	shutdown(p.peer, SHUT_WR);
	n = recv(p.fd, buf, sizeof buf, MSG_WAITALL);
	cr_assert_eq((size_t)n, sizeof tls - 1, "%zd bytes left for TLS", n);
	cr_assert_eq(memcmp(buf, tls, sizeof tls - 1), 0);
	close(p.fd);
	close(p.peer);
}

#define AGREES(proto, server, client)                                          \
	do {                                                                   \
		struct kc_err e;                                               \
		struct pair p = run(proto, server, sizeof server - 1, 0, &e);  \
		check(p, client, sizeof client - 1);                           \
	} while (0)

Test(starttls, every_protocol_leaves_the_tls_bytes)
{
	AGREES("smtp", "220 mx ESMTP\r\n250-mx\r\n250-STARTTLS\r\n250 HELP\r\n220 go\r\n",
	       "EHLO client.test\r\nSTARTTLS\r\n");
	AGREES("lmtp", "220 l\r\n250-l\r\n250 STARTTLS\r\n220 go\r\n",
	       "LHLO client.test\r\nSTARTTLS\r\n");
	AGREES("imap", "* OK hi\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na OK\r\nb OK go\r\n",
	       "a CAPABILITY\r\nb STARTTLS\r\n");
	AGREES("pop3", "+OK hi\n+OK go\n", "STLS\r\n");
	AGREES("ftp", "220-hi\r\n text\r\n220 hi\r\n234 go\r\n", "AUTH TLS\r\n");
	AGREES("nntp", "201 hi\r\n382 go\r\n", "STARTTLS\r\n");
	AGREES("sieve", "\"SASL\" \"\"\r\n\"STARTTLS\"\r\nOK\r\nOK go\r\n", "STARTTLS\r\n");
	AGREES("xmpp", "<?xml version='1.0'?><stream:stream xmlns:stream='s'>"
	       "<stream:features><starttls xmlns='t'/></stream:features>"
	       "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
	       "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' "
	       "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	       "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
	/* the response's length in the long form */
	AGREES("ldap", "\x30\x81\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00",
	       "\x30\x1d\x02\x01\x01\x77\x18\x80\x16" "1.3.6.1.4.1.1466.20037");
	AGREES("postgres", "S", "\0\0\0\x08\x04\xd2\x16\x2f");
}

static void refused(const char *proto, const char *server, enum kc_status status,
		    const char *msg)
{
	struct kc_err e;
	struct pair p = run(proto, server, strlen(server), -1, &e);
	cr_assert_eq(e.status, status, "%s: status %d (%s)", proto, e.status, e.msg);
	cr_assert_str_eq(e.msg, msg);
	close(p.fd);
	close(p.peer);
}

Test(starttls, refusals_quote_the_reply)
{
	refused("smtp", "220 mx\r\n250 mx\r\n", KC_E_STARTTLS,
		"--starttls smtp: the server does not offer STARTTLS (its reply to EHLO ends "
		"'250 mx')");
	refused("pop3", "+OK\r\n-ERR no\x01tls\r\n", KC_E_STARTTLS,
		"--starttls pop3: the server refused STLS: '-ERR no?tls'");
	refused("imap", "* BYE busy\r\n", KC_E_STARTTLS,
		"--starttls imap: unexpected greeting '* BYE busy' (expected * OK)");
	refused("postgres", "N", KC_E_STARTTLS,
		"--starttls postgres: the server refused SSL: it answered 'N' to SSLRequest "
		"(its ssl setting is off)");
	refused("postgres", "\x80", KC_E_STARTTLS,
		"--starttls postgres: the server answered SSLRequest with byte 0x80, neither "
		"'S' nor 'N': is it PostgreSQL?");
}

Test(starttls, the_whole_preamble_is_bounded)
{
	/* Lines of 4000 bytes, a continued reply of them: 64 KiB comes first. */
	static char big[17 * 4006 + 16];
	size_t n = (size_t)snprintf(big, sizeof big, "220 mx\r\n");
	for (int i = 0; i < 17; i++) {
		n += (size_t)snprintf(big + n, sizeof big - n, "250-");
		memset(big + n, 'x', 4000);
		n += 4000;
		big[n++] = '\r';
		big[n++] = '\n';
	}
	big[n] = '\0';
	refused("smtp", big, KC_E_STARTTLS,
		"--starttls smtp: the server sent more than 65536 bytes before TLS, in its "
		"reply to EHLO: is it smtp?");
}

Test(starttls, names)
{
	cr_assert_not_null(kc_starttls_find("SMTP"));
	cr_assert_null(kc_starttls_find("smtps"));
	size_t i = 0;
	while (kc_starttls_at(i))
		i++;
	cr_assert_eq(i, 10);
	cr_assert_str_eq(kc_starttls_name(kc_starttls_at(0)), "smtp");
}
