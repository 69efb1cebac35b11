#!/usr/bin/env python3
"""connect --starttls PROTO: the plain-text preamble, then TLS, then data.

  real:      against Debian's daemons, each started here on a loopback port
             with its own temporary configuration: exim4 (SMTP), dovecot
             (IMAP, POP3), PostgreSQL (initdb in a temporary directory).
             After the preamble and the handshake, the protocol itself goes
             through the session and its answer is checked exactly (exim's
             EHLO reply without STARTTLS, dovecot's CAPABILITY with AUTH=PLAIN,
             PostgreSQL's ssl column of pg_stat_ssl, parsed by byte).  The
             same daemons set up without TLS refuse, by their own words.
  scripted:  the other protocols (lmtp, ftp, nntp, sieve, xmpp, ldap) and
             the answers no daemon here gives (refusals, replies that never
             end, lines too long, a server that closes or goes quiet, bytes
             after the go-ahead) against ktlsctl_test.starttls_peers.play,
             which checks every byte ktlsctl sends.
  transcript: -v shows the preamble both ways, line by line.
  probe:     ktlsctl probe --starttls smtp against exim4.
  usage:     an unknown protocol, --starttls with --accept.

Every failure is checked by its exact line and exit status (15 for a
refusal or a broken preamble).  KTLSCTL_TEST_CHANNEL=kernel runs it on the
kernel channel (the VM tier does)."""

import os
import re
import socket
import struct
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.channel import CHANNEL_ARGS, CHANNEL_NAME, can_rekey  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import check_no_sanitizer, kt_lines, ktlsctl, ktlsctl_run  # noqa: E402
from ktlsctl_test.pytls import py_server_ctx  # noqa: E402
from ktlsctl_test.starttls_peers import (  # noqa: E402
    CLOSE, EXPECT, SEND, play, start_dovecot, start_exim, start_postgres, stop_postgres)

suite = Suite("test_starttls", case_timeout=120)
STARTTLS_FAILED = 15
# ktlsctl names itself in EHLO and LHLO by the host's name.
ME = socket.gethostname().encode()


def certs():
    return suite.certs


def connect(port, proto, data, *extra, timeout=30):
    """ktlsctl connect 127.0.0.1:PORT --starttls PROTO, verifying the
    server's certificate against the test CA, data on stdin; (proc, rc)."""
    p = ktlsctl("connect", "127.0.0.1:%d" % port, "--starttls", proto,
                "--cafile", certs().ca, *CHANNEL_ARGS, *extra, stdin=data,
                name="ktlsctl --starttls " + proto)
    rc = p.wait(timeout)
    check_no_sanitizer(p)
    return p, rc


def expect_ok(p, rc):
    if rc != 0:
        raise Fail("exit status %d, expected 0\n%s" % (rc, p.describe()))


def expect_error(p, rc, status, line):
    """Exit status and stderr: exactly the one line "ktlsctl: LINE"."""
    if rc != status or kt_lines(p) != [line] or len(p.stderr.splitlines()) != 1:
        raise Fail("expected exit %d and only the line\n      ktlsctl: %s\n%s"
                   % (status, line, p.describe()))


def crlf_lines(data):
    text = data.decode("utf-8", "replace")
    if not text.endswith("\r\n"):
        raise Fail("the server's answer does not end with CR LF: %r" % text)
    return text[:-2].split("\r\n")


# ------------------------------------------------------------- SMTP

@suite.case("smtp: exim4, EHLO and QUIT through TLS")
def _():
    exim, port = start_exim(certs().srv_ec)
    p, rc = connect(port, "smtp", b"EHLO ktlsctl.test\r\nQUIT\r\n", "-v")
    expect_ok(p, rc)
    lines = crlf_lines(p.stdout)
    # Over TLS, exim no longer offers STARTTLS: the EHLO went through it.
    if (lines[0] != "250-localhost Hello ktlsctl.test [127.0.0.1]" or lines[-2:] !=
            ["250 HELP", "221 localhost closing connection"] or
            any(l[4:] == "STARTTLS" for l in lines) or
            not all(l.startswith("250-") for l in lines[1:-2])):
        raise Fail("exim's answers through the session: %r\n%s" % (lines, p.describe()))
    want = ["smtp C: STARTTLS", "smtp S: 220 TLS go ahead",
            "smtp: the server agreed to TLS"]
    own = kt_lines(p)
    if not any(own[i:i + 3] == want for i in range(len(own))) or \
            "smtp S: 250-STARTTLS" not in own:
        raise Fail("-v does not show the preamble %r\n%s" % (want, p.describe()))
    if not any(l.endswith(", " + CHANNEL_NAME) and l.startswith("connected to 127.0.0.1:%d"
                                                                   % port) for l in own):
        raise Fail("not on the %s\n%s" % (CHANNEL_NAME, p.describe()))


@suite.case("smtp: exim4 without TLS does not offer STARTTLS -> 15")
def _():
    exim, port = start_exim(certs().srv_ec, tls=False)
    p, rc = connect(port, "smtp", b"")
    expect_error(p, rc, STARTTLS_FAILED,
                 "--starttls smtp: the server does not offer STARTTLS "
                 "(its reply to EHLO ends '250 HELP')")


@suite.case("probe: --starttls smtp against exim4, each check after the preamble")
def _():
    exim, port = start_exim(certs().srv_ec)
    p, rc = ktlsctl_run("probe", "127.0.0.1:%d" % port, "--starttls", "smtp", "--cafile",
                        certs().ca, "--only", "keyupdate", *CHANNEL_ARGS)
    # exim answers the probe's line of text with its 500: 26 bytes, in TLS.
    # A kernel that cannot rekey has the check run on the user-space channel.
    note = "" if can_rekey() else (" (on the user-space channel: this kernel cannot update "
                                   "kTLS keys)")
    if rc != 0 or not re.fullmatch(
            r"keyupdate +pass +sent KeyUpdate\(update_requested\) and 14 bytes: the server's "
            r"KeyUpdate came after [0-9.]+ ms, before its 26 bytes of data%s\n" % re.escape(note),
            p.stdout.decode()):
        raise Fail("expected the keyupdate check to pass through STARTTLS, got %r\n%s"
                   % (p.stdout, p.describe()))


# ------------------------------------------------------- IMAP, POP3

@suite.case("imap: dovecot, CAPABILITY and LOGOUT through TLS")
def _():
    dove, imap, _pop3 = start_dovecot(certs().srv_ec)
    p, rc = connect(imap, "imap", b"c CAPABILITY\r\nd LOGOUT\r\n")
    expect_ok(p, rc)
    lines = crlf_lines(p.stdout)
    # Over TLS, dovecot allows plain-text logins and offers no STARTTLS.
    caps = lines[0].split()
    if (len(lines) != 4 or caps[:2] != ["*", "CAPABILITY"] or "AUTH=PLAIN" not in caps or
            "STARTTLS" in caps or "LOGINDISABLED" in caps or
            lines[1] != "c OK Pre-login capabilities listed, post-login capabilities have more." or
            lines[2:] != ["* BYE Logging out", "d OK Logout completed."]):
        raise Fail("dovecot's answers through the session: %r\n%s" % (lines, p.describe()))


@suite.case("pop3: dovecot, CAPA and QUIT through TLS")
def _():
    dove, _imap, pop3 = start_dovecot(certs().srv_ec)
    p, rc = connect(pop3, "pop3", b"CAPA\r\nQUIT\r\n")
    expect_ok(p, rc)
    lines = crlf_lines(p.stdout)
    if (lines[0] != "+OK" or "STLS" in lines or "SASL PLAIN" not in lines or
            lines[-2:] != [".", "+OK Logging out"]):
        raise Fail("dovecot's answers through the session: %r\n%s" % (lines, p.describe()))


@suite.case("imap: dovecot without TLS does not offer STARTTLS -> 15")
def _():
    dove, imap, _pop3 = start_dovecot(certs().srv_ec, tls=False)
    p, rc = connect(imap, "imap", b"")
    expect_error(p, rc, STARTTLS_FAILED,
                 "--starttls imap: the server does not offer STARTTLS "
                 "(its reply to CAPABILITY ends 'a OK Pre-login capabilities listed, "
                 "post-login capabilities have more.')")


@suite.case("pop3: dovecot without TLS refuses STLS -> 15")
def _():
    dove, _imap, pop3 = start_dovecot(certs().srv_ec, tls=False)
    p, rc = connect(pop3, "pop3", b"")
    expect_error(p, rc, STARTTLS_FAILED,
                 "--starttls pop3: the server refused STLS: "
                 "'-ERR TLS support isn't enabled.'")


# --------------------------------------------------------- PostgreSQL

def pg_message(tag, payload):
    return tag + struct.pack("!i", len(payload) + 4) + payload


def pg_messages(data):
    """[(tag, payload)] of a stream of backend messages."""
    out, i = [], 0
    while i + 5 <= len(data):
        n = struct.unpack("!i", data[i + 1:i + 5])[0]
        out.append((data[i:i + 1], data[i + 5:i + 1 + n]))
        i += 1 + n
    if i != len(data):
        raise Fail("PostgreSQL's answer ends inside a message: %r" % data[i:])
    return out


@suite.case("postgres: a query of pg_stat_ssl through TLS says ssl is on")
def _():
    pg, port = start_postgres(certs().srv_ec)
    startup = struct.pack("!i", 196608) + b"user\0postgres\0database\0postgres\0\0"
    data = (struct.pack("!i", len(startup) + 4) + startup +
            pg_message(b"Q", b"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()\0") +
            pg_message(b"X", b""))
    try:
        p, rc = connect(port, "postgres", data)
    finally:
        stop_postgres(pg)
    expect_ok(p, rc)
    msgs = pg_messages(p.stdout)
    tags = [m[0] for m in msgs]
    # AuthenticationOk first; then the row: one column, 1 byte, 't'.
    if (msgs[0] != (b"R", b"\0\0\0\0") or
            (b"D", struct.pack("!hi", 1, 1) + b"t") not in msgs or
            tags.count(b"Z") != 2 or tags[-1] != b"Z" or b"E" in tags):
        raise Fail("PostgreSQL's answers through the session: %r\n%s" % (msgs, p.describe()))


@suite.case("postgres: ssl off answers N -> 15")
def _():
    pg, port = start_postgres(certs().srv_ec, tls=False)
    try:
        p, rc = connect(port, "postgres", b"")
    finally:
        stop_postgres(pg)
    expect_error(p, rc, STARTTLS_FAILED,
                 "--starttls postgres: the server refused SSL: it answered 'N' to "
                 "SSLRequest (its ssl setting is off)")


# ------------------------------------------------- scripted servers

LDAP_REQUEST = (b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037")
LDAP_SUCCESS = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
LDAP_UNAVAILABLE = (b"\x30\x1e\x02\x01\x01\x78\x19\x0a\x01\x34\x04\x00\x04\x12" +
                    b"TLS not configured")
XMPP_OPEN = (b"<?xml version='1.0'?><stream:stream to='127.0.0.1' version='1.0' "
             b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
XMPP_HEAD = (b"<?xml version='1.0'?>\n<stream:stream from='localhost' id='1' version='1.0' "
             b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
XMPP_MECHS = (b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
              b"<mechanism>PLAIN</mechanism></mechanisms>")
XMPP_STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"

# The preamble of each protocol up to the server's go-ahead.
AGREE = {
    "smtp": [(SEND, b"220 mx.test ESMTP\r\n"), (EXPECT, b"EHLO " + ME + b"\r\n"),
             (SEND, b"250-mx.test\r\n250-STARTTLS\r\n250 SIZE 1000\r\n"),
             (EXPECT, b"STARTTLS\r\n"), (SEND, b"220 2.0.0 Ready to start TLS\r\n")],
    "lmtp": [(SEND, b"220 lmtp.test LMTP ready\r\n"), (EXPECT, b"LHLO " + ME + b"\r\n"),
             (SEND, b"250-lmtp.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n"
                    b"250 ENHANCEDSTATUSCODES\r\n"),
             (EXPECT, b"STARTTLS\r\n"), (SEND, b"220 2.0.0 Ready to start TLS\r\n")],
    "imap": [(SEND, b"* OK IMAP ready\r\n"), (EXPECT, b"a CAPABILITY\r\n"),
             (SEND, b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na OK done\r\n"),
             (EXPECT, b"b STARTTLS\r\n"), (SEND, b"b OK Begin TLS negotiation now\r\n")],
    "pop3": [(SEND, b"+OK POP3 ready\r\n"), (EXPECT, b"STLS\r\n"),
             (SEND, b"+OK Begin TLS negotiation\r\n")],
    # a greeting of several lines, with free text between
    "ftp": [(SEND, b"220-FTP server\r\n welcome, and read the rules\r\n220 ready\r\n"),
            (EXPECT, b"AUTH TLS\r\n"), (SEND, b"234 AUTH TLS successful\r\n")],
    "nntp": [(SEND, b"200 news.test ready\r\n"), (EXPECT, b"STARTTLS\r\n"),
             (SEND, b"382 Continue with TLS negotiation\r\n")],
    "sieve": [(SEND, b'"IMPLEMENTATION" "test"\r\n"SASL" ""\r\n"STARTTLS"\r\n'
                     b'"VERSION" "1.0"\r\nOK "ready"\r\n'),
              (EXPECT, b"STARTTLS\r\n"), (SEND, b'OK "Begin TLS negotiation now"\r\n')],
    "xmpp": [(EXPECT, XMPP_OPEN),
             (SEND, XMPP_HEAD + b"<stream:features>" + XMPP_STARTTLS + XMPP_MECHS +
              b"</stream:features>"),
             (EXPECT, XMPP_STARTTLS),
             (SEND, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")],
    "ldap": [(EXPECT, LDAP_REQUEST), (SEND, LDAP_SUCCESS)],
    "postgres": [(EXPECT, b"\0\0\0\x08\x04\xd2\x16\x2f"), (SEND, b"S")],
}


def scripted(steps, proto, *extra, answer=None, data=b""):
    ctx = py_server_ctx(*certs().srv_ec)
    srv = play(steps, ctx, answer)
    p, rc = connect(srv.port, proto, data, *extra)
    got = srv.join(30)
    return p, rc, got


def add_agree(proto):
    def run():
        p, rc, line = scripted(AGREE[proto], proto, answer=lambda l: b"pong " + l,
                               data=b"ping %s\n" % proto.encode())
        expect_ok(p, rc)
        if line != b"ping %s\n" % proto.encode() or p.stdout != b"pong " + line:
            raise Fail("through TLS: server got %r, ktlsctl printed %r\n%s"
                       % (line, p.stdout, p.describe()))
    suite.add("%s: scripted server, preamble then TLS both ways" % proto, run)


for _proto in AGREE:
    add_agree(_proto)


def add_refusal(name, proto, steps, line, status=STARTTLS_FAILED, extra=()):
    def run():
        p, rc, _rest = scripted(steps, proto, *extra)
        expect_error(p, rc, status, line)
    suite.add("%s: %s -> %d" % (proto, name, status), run)


add_refusal("STARTTLS refused", "smtp", AGREE["smtp"][:4] + [
    (SEND, b"454 4.7.0 TLS not available due to local problem\r\n")],
    "--starttls smtp: the server refused STARTTLS: "
    "'454 4.7.0 TLS not available due to local problem'")
add_refusal("greeting 554", "smtp", [(SEND, b"554 5.3.2 no service here\r\n")],
            "--starttls smtp: unexpected greeting '554 5.3.2 no service here' (expected 220)")
add_refusal("STARTTLS refused", "lmtp", AGREE["lmtp"][:4] + [
    (SEND, b"502 5.5.1 command not implemented\r\n")],
    "--starttls lmtp: the server refused STARTTLS: '502 5.5.1 command not implemented'")
add_refusal("STARTTLS not offered", "lmtp", AGREE["lmtp"][:2] + [
    (SEND, b"250-lmtp.test\r\n250 PIPELINING\r\n")],
    "--starttls lmtp: the server does not offer STARTTLS (its reply to LHLO ends "
    "'250 PIPELINING')")
add_refusal("STARTTLS refused", "imap", AGREE["imap"][:4] + [
    (SEND, b"b NO [UNAVAILABLE] TLS not available\r\n")],
    "--starttls imap: the server refused STARTTLS: 'b NO [UNAVAILABLE] TLS not available'")
add_refusal("AUTH TLS refused", "ftp", AGREE["ftp"][:2] + [
    (SEND, b"500 AUTH not understood\r\n")],
    "--starttls ftp: the server refused AUTH TLS: '500 AUTH not understood'")
add_refusal("STARTTLS refused", "nntp", AGREE["nntp"][:2] + [
    (SEND, b"502 STARTTLS not allowed\r\n")],
    "--starttls nntp: the server refused STARTTLS: '502 STARTTLS not allowed'")
add_refusal("STARTTLS not offered", "sieve", [
    (SEND, b'"IMPLEMENTATION" "test"\r\n"SASL" "PLAIN"\r\nOK\r\n')],
    "--starttls sieve: the server does not offer STARTTLS (its greeting ends 'OK')")
add_refusal("STARTTLS not offered", "xmpp", [
    (EXPECT, XMPP_OPEN), (SEND, XMPP_HEAD + b"<stream:features>" + XMPP_MECHS +
                          b"</stream:features>")],
    "--starttls xmpp: the server does not offer STARTTLS (no <starttls/> in its stream "
    "features)")
add_refusal("failure", "xmpp", AGREE["xmpp"][:3] + [
    (SEND, b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")],
    "--starttls xmpp: the server refused STARTTLS: "
    "'<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>'")
add_refusal("resultCode unavailable", "ldap", [(EXPECT, LDAP_REQUEST),
                                                (SEND, LDAP_UNAVAILABLE)],
            "--starttls ldap: the server refused StartTLS: resultCode 52 (unavailable), "
            "'TLS not configured'")
add_refusal("not an LDAP answer", "ldap", [(EXPECT, LDAP_REQUEST), (SEND, b"220 hello\r\n")],
            "--starttls ldap: the server's answer to StartTLS is not an LDAP "
            "ExtendedResponse: is it LDAP?")

# Bounds, and servers that break off.
add_refusal("a reply that never ends", "smtp", AGREE["smtp"][:2] + [
    (SEND, b"250-mx.test\r\n" * 300)],
    "--starttls smtp: the server's reply to EHLO has more than 256 lines")
add_refusal("a line too long", "smtp", [(SEND, b"220 " + b"x" * 5000)],
            "--starttls smtp: a line of the server's greeting is longer than 4096 bytes")
add_refusal("an XMPP element too long", "xmpp", [(EXPECT, XMPP_OPEN),
                                                 (SEND, b"<stream:stream " + b"a" * 5000)],
            "--starttls xmpp: an element of the server's stream features is longer than "
            "4096 bytes")
add_refusal("closed after EHLO", "smtp", AGREE["smtp"][:2] + [(CLOSE, None)],
            "--starttls smtp: the server closed the connection while we waited for its "
            "reply to EHLO")
add_refusal("closed before S or N", "postgres", AGREE["postgres"][:1] + [(CLOSE, None)],
            "--starttls postgres: the server closed the connection while we waited for "
            "its answer to SSLRequest")


@suite.case("smtp: a server quiet after the greeting -> 12 at --handshake-timeout")
def _():
    # The server keeps the connection open until ktlsctl gives up.
    p, rc, _ = scripted(AGREE["smtp"][:2], "smtp", "--handshake-timeout", "1")
    expect_error(p, rc, 12, "--starttls smtp: no answer within 1000 ms while waiting for "
                 "the server's reply to EHLO (raise --handshake-timeout if it is just slow)")


@suite.case("smtp: bytes after the go-ahead are left for TLS, not read as plain text -> 6")
def _():
    # An attacker's bytes injected after the 220 must reach the TLS
    # handshake (which fails on them), not vanish in a plain-text buffer.
    steps = AGREE["smtp"][:4] + [(SEND, b"220 go ahead\r\n250 injected\r\n")]
    p, rc, _ = scripted(steps, "smtp")
    expect_error(p, rc, 6, "TLS handshake failed: An unexpected TLS packet was received. "
                 "(is the peer speaking TLS on this port?)")


@suite.case("transcript: -v shows the lmtp preamble both ways, line by line")
def _():
    p, rc, _ = scripted(AGREE["lmtp"], "lmtp", "-v", answer=lambda l: l, data=b"x\n")
    expect_ok(p, rc)
    want = ["lmtp S: 220 lmtp.test LMTP ready", "lmtp C: LHLO " + ME.decode(),
            "lmtp S: 250-lmtp.test", "lmtp S: 250-PIPELINING", "lmtp S: 250-STARTTLS",
            "lmtp S: 250 ENHANCEDSTATUSCODES", "lmtp C: STARTTLS",
            "lmtp S: 220 2.0.0 Ready to start TLS", "lmtp: the server agreed to TLS"]
    own = kt_lines(p)
    if own[:len(want)] != want:
        raise Fail("-v transcript %r, expected %r\n%s" % (own[:len(want)], want, p.describe()))


@suite.case("transcript: without -v the preamble says nothing")
def _():
    p, rc, _ = scripted(AGREE["postgres"], "postgres", answer=lambda l: l, data=b"x\n")
    expect_ok(p, rc)
    if kt_lines(p) != [] or p.stdout != b"x\n":
        raise Fail("expected a silent session echoing x\n%s" % p.describe())


# ------------------------------------------------------------- usage

@suite.case("usage: an unknown protocol -> 2")
def _():
    p, rc = ktlsctl_run("connect", "127.0.0.1:1", "--starttls", "gopher")
    expect_error(p, rc, 2, "unknown --starttls protocol 'gopher': use smtp, lmtp, imap, pop3, "
                 "ftp, nntp, sieve, xmpp, ldap or postgres")


@suite.case("usage: --starttls with --accept -> 2")
def _():
    p, rc = ktlsctl_run("connect", "127.0.0.1:1", "--starttls", "smtp", "--accept", ":0")
    expect_error(p, rc, 2, "--starttls is for one connection: give it without --accept "
                 "(see 'ktlsctl connect --help')")


if __name__ == "__main__":
    sys.exit(suite.main())
