#!/usr/bin/env python3
"""Integration tests of `ktlsctl probe` (issue 14): the checks of what a
server does after the handshake, against real servers that behave
(gnutls-serv --echo, openssl s_server -www, ktlsctl listen --echo), and
against peers that fail one check on purpose, each shown to fail exactly
with exit status 14 and its reason line.

Every assertion matches ktlsctl's exact output: the lines of standard
output (timings, which vary, are replaced by "N ms" first; for s_server
-www, whose status page varies in length, its byte counts by "N bytes")
and its exit status.  ktlsctl runs on the channel under test
(CHANNEL_ARGS); the ktls check's line and the KeyUpdate checks' note
follow it.

Peer behaviour this file relies on (gnutls 3.7.9, OpenSSL 3.0):
  gnutls-serv --echo   echoes each line in one record; sends 2
                       NewSessionTickets (lifetime 21600 s) after a TLS 1.3
                       handshake, none with --noticket; takes at most 8
                       KeyUpdates a second and ends the connection with
                       alert internal_error past that (ktlsctl listen, on
                       GnuTLS too, does the same).
  s_server -www        answers GET with a status page and keeps the
                       connection; sleeps about a second after each
                       KeyUpdate (so the burst, 100 s, is left out and the
                       timeout raised); sends 2 tickets (lifetime 7200 s).
  all three            go on sending after a TLS 1.3 close_notify (half-close).
  Python ssl (OpenSSL) answers update_requested with its next write; sends
                       2 tickets; a new SSLContext has new ticket keys, so
                       a server that makes one per connection resumes none.
  faulty_server FAULT  (tests/peers, built by make check) an echo server that
                       never answers update_requested and closes without an
                       alert when GnuTLS refuses a KeyUpdate flood, with one
                       more fault: rsl-ignore (records over our
                       record_size_limit), max-record-close (resets at a
                       full record), reuse-close (resets the second resumed
                       connection), ku-stale (a KeyUpdate of its own, then
                       the old key).
  gnutls-serv --echo   keeps a record_size_limit; takes a ticket more than
                       once; never updates its keys by itself; accepts all
                       four kTLS suites under TLS 1.3 and 1.2; sends the
                       renegotiation indication unless its priority has
                       %DISABLE_SAFE_RENEGOTIATION.
  s_server -www        knows no record_size_limit (OpenSSL 3.0); takes a
                       16384-byte request; accepts all but AES-128-CCM.
"""

import json
import os
import re
import socket
import sys
import threading

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import TOP_BUILDDIR, scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL_ARGS, KERNEL, can_rekey, kernel_facts, ulp_probe)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, Proc, wait_listening)
from ktlsctl_test.peers import require_programs, start_gnutls_serv, start_s_server  # noqa: E402
from ktlsctl_test.pytls import PyTls, py_server_ctx  # noqa: E402

require_programs("gnutls-serv", "certtool", "openssl")

suite = Suite("test_probe", case_timeout=120)
FAULTY = os.path.join(TOP_BUILDDIR, "tests", "peers", "faulty_server")
REQUEST = 14                      # "ktlsctl probe\n"
# server-keyupdate's --volume in the cases that run it (default 16 MiB).
VOLUME = ["--volume", "2M"]
ALL4 = ["AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM"]


def certs():
    return suite.certs


def line(name, result, reason):
    return "%-22s %-7s %s" % (name, result, reason)


# What the KeyUpdate checks add where the channel cannot rekey.
NOTE = "" if can_rekey() else \
    " (on the user-space channel: this kernel cannot update kTLS keys)"


def ktls_line(version="TLS 1.3", cipher="AES-256-GCM"):
    if KERNEL:
        return line("ktls", "pass", "%s %s runs on the kernel channel (kTLS both ways)"
                    % (version, cipher))
    # With --ktls off the check asks the kernel whether it could have.
    fit = "this kernel could carry it" if ulp_probe()[0] else \
        "this kernel has no TLS ULP (tls module not loaded or CONFIG_TLS off): try 'modprobe tls'"
    return line("ktls", "n/a", "%s %s runs on the user-space channel: --ktls off given (%s)"
                % (version, cipher, fit))


def keyupdate_lines(request=REQUEST, answer=REQUEST, burst=None):
    """The four KeyUpdate lines from a server that behaves; burst: the
    burst's outcome after "sent 100 KeyUpdates and N bytes: "."""
    out = [
        line("keyupdate", "pass", "sent KeyUpdate(update_requested) and %s bytes: the server's "
             "KeyUpdate came after N ms, before its %s bytes of data%s" % (request, answer, NOTE)),
        line("keyupdate-unrequested", "pass", "sent KeyUpdate(update_not_requested) and %s "
             "bytes: %s bytes came back after N ms%s" % (request, answer, NOTE)),
        line("keyupdate-repeat", "pass", "sent 4 KeyUpdates and %s bytes: %s bytes came back "
             "after N ms%s" % (request, answer, NOTE)),
    ]
    if burst:
        out.append(line("keyupdate-burst", "pass", "sent 100 KeyUpdates and %s bytes: %s%s"
                        % (request, burst, NOTE)))
    return out


GNUTLS_BURST = "the server refused them with alert 'internal_error' after N ms " \
    "(it limits KeyUpdates)"
CLOSE_PASS = line("close-notify", "pass", "sent close_notify: the server answered with its own "
                  "after N ms")


def half_close_pass(request=REQUEST, answer=REQUEST):
    return line("half-close", "pass", "sent %s bytes and close_notify at once: %s bytes came back "
                "after it, then the server's close_notify (N ms)" % (request, answer))


RESUME_PASS = line("resume", "pass", "a second connection resumed with the first's ticket "
                   "(handshake N ms, the first's N ms)")


def tickets_line(n, lifetime):
    return line("tickets", "pass", "%d NewSessionTickets after the handshake; the last: "
                "lifetime %d s, age_add set, max_early_data none" % (n, lifetime))


# What the checks that run on the user-space channel for their own sake add
# when the channel under test is the kernel's.
RSL_NOTE = " (on the user-space channel: it sees each record, the kernel merges them)" \
    if KERNEL else ""
PAD_NOTE = " (padded on the user-space channel: the kernel never pads)" if KERNEL else ""
NO_ULP = "this kernel has no TLS ULP (tls module not loaded or CONFIG_TLS off): try " \
    "'modprobe tls'"


def reuse_pass(what="ticket", why="RFC 8446 asks single use only for 0-RTT data"):
    return line("ticket-reuse", "pass", "the %s resumed twice, data flowing both times: the "
                "server takes it more than once (%s)" % (what, why))


def rsl_pass(content=511, sent=2044):
    return line("record-size-limit", "pass", "announced a record_size_limit of 512 (%d bytes "
                "of content) and sent %d bytes: %d bytes came back, every record within the "
                "limit (N ms)%s" % (content, sent, sent, RSL_NOTE))


def max_record_echo(padded="14 bytes padded to a 16385-byte inner plaintext: 14 bytes came "
                    "back (N ms)"):
    """max-record against an echo server; padded: the second part's
    evidence (None: TLS 1.2)."""
    return line("max-record", "pass", "65536 bytes in records of 16384: echoed intact (N ms); "
                + (padded + PAD_NOTE if padded else "TLS 1.2 has no padding"))


SERVER_KU_NA = line("server-keyupdate", "n/a", "sent 2097152 bytes, all echoed intact: the "
                    "server did not update its keys within them (--volume sets how many)%s"
                    % NOTE)
TLS12_ECHO = line("tls12", "pass", "TLS 1.2 AES-256-GCM with secure renegotiation; 4194304 "
                  "bytes each way, echoed intact (N ms)")


def ciphers_line(tls13=ALL4, tls12=ALL4):
    """The ciphers line for a server that accepts these suites, with this
    kernel's answer for each (stats --json: both ways "yes", or not)."""
    facts = {c["name"]: c for c in kernel_facts()["ciphers"]}
    fit, marked, parts = 0, 0, []
    for version, names in (("1.3", tls13), ("1.2", tls12)):
        shown = []
        for n in names:
            ways = facts[n]["tls" + version.replace(".", "")]
            states = {ways["tx"]["state"], ways["rx"]["state"]}
            if states == {"yes"}:
                fit += 1
                shown.append(n)
            elif "no" in states:
                marked += 1
                shown.append(n + " (not this kernel)")
            else:
                shown.append(n)
        parts.append("TLS %s: %s" % (version, ", ".join(shown) if shown else "none"))
    listed = "; ".join(parts)
    if fit:
        return line("ciphers", "pass", "accepted: %s; this kernel takes all%s"
                    % (listed, " but those marked" if marked else ""))
    return line("ciphers", "n/a", "accepted: %s; this kernel takes none of them%s"
                % (listed, "" if ulp_probe()[0] else ": " + NO_ULP))


def probe(port, *args, **kw):
    return ktlsctl("probe", "localhost:%d" % port, "--cafile", certs().ca, *CHANNEL_ARGS,
                   *args, **kw)


def normal(text, counts=False):
    """Output lines with timings (and, with counts, byte counts) made N."""
    text = re.sub(r"\b\d+\.\d ms\b", "N ms", text)
    if counts:
        text = re.sub(r"\b\d+ bytes\b", "N bytes", text)
    return text.splitlines()


def expect(proc, status, lines, timeout=90, counts=False, stderr=""):
    """Exit status, exactly these stdout lines (normalised), exactly this
    stderr, no sanitizer report."""
    rc = proc.wait(timeout)
    check_no_sanitizer(proc)
    got = normal(proc.stdout.decode("utf-8", "replace"), counts)
    if rc != status or got != lines or proc.stderr != stderr:
        raise Fail("exit status %s (expected %s)\nstdout:\n%s\nexpected:\n%s\n%s"
                   % (rc, status, "\n".join(got), "\n".join(lines), proc.describe()))


# ============================================================ well-behaved servers

@suite.case("gnutls-serv --echo, TLS 1.3: every check passes, exit 0")
def _gnutls13():
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        expect(probe(port, *VOLUME), 0,
               [ktls_line()] + keyupdate_lines(burst=GNUTLS_BURST)
               + [CLOSE_PASS, half_close_pass(), tickets_line(2, 21600), RESUME_PASS,
                  reuse_pass(), rsl_pass(), max_record_echo(), SERVER_KU_NA, ciphers_line(),
                  TLS12_ECHO])
    finally:
        srv.kill()


@suite.case("gnutls-serv --echo, TLS 1.2: KeyUpdate and tickets n/a, the rest passes, exit 0")
def _gnutls12():
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        na = "TLS 1.2 has no KeyUpdate"
        expect(probe(port, "--tls1.2", *VOLUME), 0, [
            ktls_line("TLS 1.2"),
            line("keyupdate", "n/a", na),
            line("keyupdate-unrequested", "n/a", na),
            line("keyupdate-repeat", "n/a", na),
            line("keyupdate-burst", "n/a", na),
            CLOSE_PASS,
            line("half-close", "n/a", "TLS 1.2 has no half-close (a close_notify ends both ways)"),
            line("tickets", "n/a", "TLS 1.2 has no tickets after the handshake"),
            line("resume", "pass", "a second connection resumed with the first's session "
                 "(handshake N ms, the first's N ms)"),
            reuse_pass("session", "as TLS 1.2 resumption allows"),
            rsl_pass(content=512, sent=2048),
            max_record_echo(padded=None),
            line("server-keyupdate", "n/a", na),
            ciphers_line(),
            TLS12_ECHO,
        ])
    finally:
        srv.kill()


@suite.case("ktlsctl listen --echo: every check passes, exit 0")
def _ktlsctl_listen():
    # The server probed can rekey, whatever the channel of the probe under
    # test: user space, without KTLSCTL_TEST_SOFT_NOREKEY.
    env = {k: v for k, v in os.environ.items() if k != "KTLSCTL_TEST_SOFT_NOREKEY"}
    srv, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                               "--echo", "--keep-open", "--ktls", "off", env=env)
    try:
        expect(probe(port, *VOLUME), 0,
               [ktls_line()] + keyupdate_lines(burst=GNUTLS_BURST)
               + [CLOSE_PASS, half_close_pass(), tickets_line(2, 21600), RESUME_PASS,
                  reuse_pass(), rsl_pass(), max_record_echo(), SERVER_KU_NA, ciphers_line(),
                  TLS12_ECHO])
    finally:
        srv.kill()


@suite.case("ktlsctl listen --echo --key-update-after 50: server-keyupdate passes")
def _ktlsctl_listen_rekeys():
    env = {k: v for k, v in os.environ.items() if k != "KTLSCTL_TEST_SOFT_NOREKEY"}
    srv, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                               "--echo", "--keep-open", "--ktls", "off",
                               "--key-update-after", "50", env=env)
    try:
        # How many bytes each record of the echo carries is the server's
        # reads' matter: the counts are N.
        expect(probe(port, "--only", "server-keyupdate", *VOLUME), 0, [
            line("server-keyupdate", "pass", "sent N bytes: the server updated its keys after "
                 "N bytes of its data (N ms), and all N bytes came back intact%s" % NOTE)],
               counts=True)
    finally:
        srv.kill()


@suite.case("s_server -www with --http: every check but the (100 s) burst passes, exit 0")
def _s_server_www():
    srv, port = start_s_server(*certs().srv_ec, extra=["-www", "-naccept", "40"], stdin=None)
    three = ALL4[:3]
    try:
        # The request and the status page: N bytes (counts=True).
        expect(probe(port, "--http", "--timeout", "30", "--only",
                     "ktls,keyupdate,keyupdate-unrequested,keyupdate-repeat,close-notify,"
                     "half-close,tickets,resume,ticket-reuse,record-size-limit,max-record,"
                     "server-keyupdate,ciphers,tls12"), 0,
               [ktls_line()] + keyupdate_lines("N", "N")
               + [CLOSE_PASS, half_close_pass("N", "N"), tickets_line(2, 7200), RESUME_PASS,
                  reuse_pass(),
                  line("record-size-limit", "n/a", "announced a record_size_limit of 512: the "
                       "server did not take the extension (RFC 8449), so records up to N bytes "
                       "are its right%s" % RSL_NOTE),
                  line("max-record", "pass", "a request of N bytes in one record: N bytes came "
                       "back (N ms); N bytes padded to a 16385-byte inner plaintext: N bytes "
                       "came back (N ms)%s" % PAD_NOTE),
                  line("server-keyupdate", "n/a", "needs an echo server (the default request) "
                       "to make the server send up to N bytes"),
                  ciphers_line(three, three),
                  line("tls12", "pass", "TLS 1.2 AES-256-GCM with secure renegotiation; N bytes "
                       "came back (a long transfer needs an echo server)")],
               counts=True)
    finally:
        srv.kill()


@suite.case("--send FILE: the file's bytes make the server talk")
def _send_file():
    path = os.path.join(suite.tmpdir(), "request")
    with open(path, "wb") as f:
        f.write(b"a request from a file\n")
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        expect(probe(port, "--send", path, "--only", "keyupdate-unrequested"), 0, [
            line("keyupdate-unrequested", "pass", "sent KeyUpdate(update_not_requested) and 22 "
                 "bytes: 22 bytes came back after N ms%s" % NOTE)])
    finally:
        srv.kill()


# ============================================================ peers that fail a check

def faulty(fault, port):
    """tests/peers/faulty_server with that fault, listening on port."""
    srv = Proc([FAULTY, fault, port, *certs().srv_ec], name="faulty_server " + fault,
               stdin=None)
    if not wait_listening(port, srv):
        srv.kill()
        raise Fail("faulty_server did not listen\n%s" % srv.describe())
    return srv


class LoopServer:
    """A TLS server on 127.0.0.1 serving one connection after another in a
    thread, each with fn(PyTls) on a TLS 1.3 context (a new one per
    connection when fresh_ctx; with single_use, a new one after each
    resumed connection, so that a ticket works once: Python's ssl has no
    single-use tickets of its own), until stop()."""

    def __init__(self, fn, fresh_ctx=False, single_use=False):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.fn, self.fresh, self.single_use = fn, fresh_ctx, single_use
        self.ctx = py_server_ctx(*certs().srv_ec, version="1.3")
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return                       # stopped
            ctx = py_server_ctx(*certs().srv_ec, version="1.3") if self.fresh else self.ctx
            t = PyTls(c, ctx, server_side=True)
            try:
                t.handshake()
                if self.single_use and t.obj.session_reused:
                    self.ctx = py_server_ctx(*certs().srv_ec, version="1.3")
                self.fn(t)
            except Exception:            # the probe judges what it saw
                pass
            finally:
                t.close()

    def stop(self):
        try:
            self.ls.shutdown(socket.SHUT_RDWR)      # wakes the accept
        except OSError:
            pass
        self.ls.close()
        self.t.join(scaled(10))
        if self.t.is_alive():
            raise Fail("the Python test server did not stop")


def echo_until_close(t, answer_close=True):
    """Echo until the client's close_notify; then answer it, or drop the
    connection without close_notify."""
    while True:
        d = t.recv_some()
        if not d:
            break
        t.send(d)
    if answer_close:
        t.send_close_notify()
    else:
        t.close_tcp()


@suite.case("a server that never answers update_requested: keyupdate fails, exit 14")
def _ku_ignored():
    port = free_port()
    srv = faulty("ku-ignore", port)
    try:
        expect(probe(port, "--only", "keyupdate,keyupdate-unrequested"), 14, [
            line("keyupdate", "fail", "sent KeyUpdate(update_requested) and 14 bytes: 14 bytes "
                 "of data came back after N ms without the server's KeyUpdate before them%s"
                 % NOTE),
            line("keyupdate-unrequested", "pass", "sent KeyUpdate(update_not_requested) and 14 "
                 "bytes: 14 bytes came back after N ms%s" % NOTE),
        ])
    finally:
        srv.kill()


@suite.case("a server that dies on a KeyUpdate burst without an alert: keyupdate-burst fails, "
            "exit 14")
def _burst_dies():
    port = free_port()
    srv = faulty("ku-ignore", port)
    try:
        expect(probe(port, "--only", "keyupdate-burst"), 14, [
            line("keyupdate-burst", "fail", "sent 100 KeyUpdates and 14 bytes: connection "
                 "truncated: the peer closed without close_notify%s" % NOTE),
        ])
    finally:
        srv.kill()


@suite.case("a server that closes without close_notify: close-notify fails, exit 14")
def _no_close_notify():
    srv = LoopServer(lambda t: echo_until_close(t, answer_close=False))
    try:
        expect(probe(srv.port, "--only", "close-notify,keyupdate"), 14, [
            keyupdate_lines()[0],
            line("close-notify", "fail", "sent close_notify: the server closed the connection "
                 "after N ms without its own"),
        ])
    finally:
        srv.stop()


@suite.case("a server that stops sending at our close_notify: half-close fails, exit 14")
def _no_half_close():
    def drop_at_close(t):
        """Take the client's data until its close_notify, then answer that
        and drop the echo owed (as TLS 1.2 lets a server do)."""
        while t.recv_some():
            pass
        t.send_close_notify()
    srv = LoopServer(drop_at_close)
    try:
        expect(probe(srv.port, "--only", "half-close"), 14, [
            line("half-close", "fail", "sent 14 bytes and close_notify at once: the server closed "
                 "after N ms without sending data")])
    finally:
        srv.stop()


@suite.case("a server whose tickets do not resume (new ticket keys each time): resume fails, "
            "exit 14")
def _no_resume():
    srv = LoopServer(echo_until_close, fresh_ctx=True)
    try:
        expect(probe(srv.port, "--only", "tickets,resume"), 14, [
            line("tickets", "pass", "2 NewSessionTickets after the handshake; the last: lifetime "
                 "7200 s, age_add set, max_early_data none"),
            line("resume", "fail", "a second connection offered the first's ticket: the server "
                 "did a full handshake"),
        ])
    finally:
        srv.stop()


@suite.case("gnutls-serv --noticket: tickets and resume fail, exit 14")
def _noticket():
    srv, port = start_gnutls_serv(*certs().srv_ec, extra=["--noticket"])
    try:
        expect(probe(port, "--only", "tickets,resume"), 14, [
            line("tickets", "fail", "no NewSessionTicket after the handshake (by the time 14 "
                 "bytes of data came back)"),
            line("resume", "fail", "no ticket came on the first connection (by the time data "
                 "came back): nothing to resume with"),
        ])
    finally:
        srv.kill()


@suite.case("a server that ignores our record_size_limit: record-size-limit fails, exit 14")
def _rsl_ignored():
    port = free_port()
    srv = faulty("rsl-ignore", port)
    try:
        expect(probe(port, "--only", "record-size-limit"), 14, [
            line("record-size-limit", "fail", "announced a record_size_limit of 512 and sent "
                 "2044 bytes: the peer sent a record larger than the 511 bytes we announced "
                 "(record size limit) (sent alert record_overflow)%s" % RSL_NOTE)])
        # The limit given is the one announced (TLS 1.3: 1000 on the wire,
        # 999 bytes of content); the line sent is four times that.
        expect(probe(port, "--only", "record-size-limit", "--record-size-limit", "1000"), 14, [
            line("record-size-limit", "fail", "announced a record_size_limit of 1000 and sent "
                 "3996 bytes: the peer sent a record larger than the 999 bytes we announced "
                 "(record size limit) (sent alert record_overflow)%s" % RSL_NOTE)])
    finally:
        srv.kill()


@suite.case("a server that breaks on a record of 2^14 bytes: max-record fails, exit 14")
def _max_record_breaks():
    port = free_port()
    srv = faulty("max-record-close", port)
    try:
        expect(probe(port, "--only", "max-record"), 14, [
            line("max-record", "fail", "65536 bytes in records of 16384: 0 bytes came back, "
                 "then connection truncated: reset by the peer before close_notify; 14 bytes "
                 "padded to a 16385-byte inner plaintext: 14 bytes came back (N ms)%s"
                 % PAD_NOTE)])
    finally:
        srv.kill()


@suite.case("a server that resets a ticket's second resumption: ticket-reuse fails, exit 14")
def _reuse_breaks():
    port = free_port()
    srv = faulty("reuse-close", port)
    try:
        expect(probe(port, "--only", "ticket-reuse"), 14, [
            line("ticket-reuse", "fail", "the ticket resumed once; offered again, the "
                 "connection resumed: connection truncated: reset by the peer before "
                 "close_notify")])
    finally:
        srv.kill()


@suite.case("a server whose tickets work once: ticket-reuse passes, exit 0")
def _single_use_tickets():
    srv = LoopServer(echo_until_close, single_use=True)
    try:
        expect(probe(srv.port, "--only", "ticket-reuse"), 0, [
            line("ticket-reuse", "pass", "the ticket resumed once; offered again, the server "
                 "did a full handshake and data flowed (single-use tickets)")])
    finally:
        srv.stop()


@suite.case("gnutls-serv --noticket: ticket-reuse n/a, exit 0")
def _reuse_no_ticket():
    srv, port = start_gnutls_serv(*certs().srv_ec, extra=["--noticket"])
    try:
        expect(probe(port, "--only", "ticket-reuse"), 0, [
            line("ticket-reuse", "n/a", "no ticket came on the first connection (by the time "
                 "data came back): nothing to offer twice")])
    finally:
        srv.kill()


@suite.case("a server whose own KeyUpdate is not followed by its new key: server-keyupdate "
            "fails, exit 14")
def _server_ku_stale():
    port = free_port()
    srv = faulty("ku-stale", port)
    try:
        expect(probe(port, "--only", "server-keyupdate", *VOLUME), 14, [
            line("server-keyupdate", "fail", "sent N bytes, N bytes came back (the server had "
                 "updated its keys), then a record from the peer failed authentication: the "
                 "data was corrupted or forged (sent alert bad_record_mac) (N ms)%s" % NOTE)],
            counts=True)
    finally:
        srv.kill()


@suite.case("gnutls-serv without the renegotiation indication: tls12 fails, exit 14")
def _no_safe_renegotiation():
    srv, port = start_gnutls_serv(*certs().srv_ec,
                                  priority="NORMAL:%DISABLE_SAFE_RENEGOTIATION")
    try:
        expect(probe(port, "--only", "tls12"), 14, [
            line("tls12", "fail", "TLS 1.2 AES-256-GCM without the secure renegotiation "
                 "indication (RFC 5746); 4194304 bytes each way, echoed intact (N ms)")])
    finally:
        srv.kill()


@suite.case("a TLS 1.2 server with CBC suites only: ciphers fails, tls12 n/a, exit 14")
def _no_ktls_cipher():
    srv, port = start_gnutls_serv(
        *certs().srv_ec,
        priority="NORMAL:-VERS-TLS1.3:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC:+SHA1:+SHA256")
    try:
        expect(probe(port, "--only", "ciphers,tls12"), 14, [
            line("ciphers", "fail", "the server accepts none of the kTLS cipher suites, offered "
                 "one at a time (TLS 1.3: none; TLS 1.2: none)"),
            line("tls12", "n/a", "the server does not speak TLS 1.2 with a kTLS cipher: TLS "
                 "handshake failed: the peer sent alert 'Handshake failed'")])
    finally:
        srv.kill()


# ============================================================ the command line

@suite.case("--list: every check with its summary, exit 0")
def _list():
    expect(ktlsctl("probe", "--list"), 0, [
        "ktls                   the session runs on the kernel channel (kTLS) on this machine",
        "keyupdate              the server answers KeyUpdate(update_requested) with its own, "
        "before its data",
        "keyupdate-unrequested  data flows both ways after KeyUpdate(update_not_requested)",
        "keyupdate-repeat       data flows both ways after 4 KeyUpdates in a row",
        "keyupdate-burst        the server survives 100 KeyUpdates in one flight, or refuses "
        "them with an alert",
        "close-notify           the server answers our close_notify with its own",
        "half-close             after our request and close_notify, the server still sends "
        "(TLS 1.3)",
        "tickets                NewSessionTickets after the handshake: count, lifetime, "
        "age_add, max_early_data",
        "resume                 a second connection resumes with the first's ticket (or session)",
        "ticket-reuse           the first's ticket offered on two more connections: taken "
        "twice, or once and then a full handshake",
        "record-size-limit      with a record_size_limit announced (512 unless given), every "
        "record the server sends keeps it",
        "max-record             the server takes records of 2^14 bytes, and TLS 1.3 records "
        "padded to the limit",
        "server-keyupdate       whether the server updates its keys by itself within --volume "
        "bytes (echo)",
        "ciphers                each kTLS cipher suite the server accepts (TLS 1.3, 1.2) and "
        "whether this kernel takes it",
        "tls12                  TLS 1.2: secure renegotiation indication, and a 4 MiB transfer "
        "each way (echo)",
    ], timeout=20)


@suite.case("--json: one document with the stable keys, a check per --only name")
def _json():
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        p = probe(port, "--json", "--only", "resume,keyupdate")
        rc = p.wait(60)
        check_no_sanitizer(p)
        doc = json.loads(p.stdout.decode())
        if rc != 0 or sorted(doc) != ["channel", "checks", "failed", "server", "session"]:
            raise Fail("exit %s, keys %s\n%s" % (rc, sorted(doc), p.describe()))
        # the first connection's channel: keyupdate's, on the user-space
        # channel where the kernel cannot rekey
        want = {"server": "127.0.0.1:%d" % port, "session": "TLS1.3 TLS_AES_256_GCM_SHA384",
                "channel": "kernel" if KERNEL and can_rekey() else "user-space", "failed": 0}
        if {k: doc[k] for k in want} != want:
            raise Fail("document %r, expected %r" % (doc, want))
        names = [(c["name"], c["result"], sorted(c)) for c in doc["checks"]]
        keys = ["elapsed_ms", "name", "reason", "result"]
        if names != [("keyupdate", "pass", keys), ("resume", "pass", keys)]:
            raise Fail("checks %r" % (names,))
        if not all(isinstance(c["elapsed_ms"], float) for c in doc["checks"]):
            raise Fail("elapsed_ms not a number: %r" % (doc["checks"],))
    finally:
        srv.kill()


@suite.case("--only with an unknown check: usage error, exit 2")
def _only_unknown():
    expect(ktlsctl("probe", "localhost:1", "--only", "keyupdate,nosuch"), 2, [], timeout=20,
           stderr="ktlsctl: unknown check 'nosuch' in --only (see 'ktlsctl probe --list')\n")


@suite.case("--volume: a bad count is a usage error, exit 2")
def _volume_bad():
    for bad in ("0", "12X", "-1", "2T"):
        expect(ktlsctl("probe", "localhost:1", "--volume", bad), 2, [], timeout=20,
               stderr="ktlsctl: invalid --volume '%s': give a number of bytes (1 or more), "
               "optionally with K, M or G\n" % bad)


@suite.case("--only ciphers, a certificate not trusted: exit 4, no check line")
def _ciphers_untrusted():
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        expect(ktlsctl("probe", "localhost:%d" % port, "--only", "ciphers", *CHANNEL_ARGS), 4,
               [], timeout=30,
               stderr="ktlsctl: server certificate rejected: The certificate is NOT trusted. "
               "The certificate issuer is unknown. (--cafile FILE to trust another CA, "
               "--insecure to skip the check)\n")
    finally:
        srv.kill()


@suite.case("unreachable server: exit 3, no check line")
def _unreachable():
    port = free_port()
    expect(probe(port), 3, [], timeout=30,
           stderr="ktlsctl: cannot connect to localhost:%d (127.0.0.1:%d): Connection refused\n"
           % (port, port))


if __name__ == "__main__":
    sys.exit(suite.main())
