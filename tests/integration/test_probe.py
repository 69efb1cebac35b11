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
  ku_ignore_server     (tests/peers, built by make check) never answers
                       update_requested and closes without an alert when
                       GnuTLS refuses a KeyUpdate flood.
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
from ktlsctl_test.channel import CHANNEL_ARGS, KERNEL, can_rekey, ulp_probe  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, Proc, wait_listening)
from ktlsctl_test.peers import require_programs, start_gnutls_serv, start_s_server  # noqa: E402
from ktlsctl_test.pytls import PyTls, py_server_ctx  # noqa: E402

require_programs("gnutls-serv", "certtool", "openssl")

suite = Suite("test_probe", case_timeout=120)
KU_IGNORE = os.path.join(TOP_BUILDDIR, "tests", "peers", "ku_ignore_server")
REQUEST = 14                      # "ktlsctl probe\n"


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
        expect(probe(port), 0,
               [ktls_line()] + keyupdate_lines(burst=GNUTLS_BURST)
               + [CLOSE_PASS, half_close_pass(), tickets_line(2, 21600), RESUME_PASS])
    finally:
        srv.kill()


@suite.case("gnutls-serv --echo, TLS 1.2: KeyUpdate and tickets n/a, the rest passes, exit 0")
def _gnutls12():
    srv, port = start_gnutls_serv(*certs().srv_ec)
    try:
        na = "TLS 1.2 has no KeyUpdate"
        expect(probe(port, "--tls1.2"), 0, [
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
        expect(probe(port), 0,
               [ktls_line()] + keyupdate_lines(burst=GNUTLS_BURST)
               + [CLOSE_PASS, half_close_pass(), tickets_line(2, 21600), RESUME_PASS])
    finally:
        srv.kill()


@suite.case("s_server -www with --http: every check but the (100 s) burst passes, exit 0")
def _s_server_www():
    srv, port = start_s_server(*certs().srv_ec, extra=["-www", "-naccept", "20"], stdin=None)
    try:
        # The request and the status page: N bytes (counts=True).
        expect(probe(port, "--http", "--timeout", "30", "--only",
                     "ktls,keyupdate,keyupdate-unrequested,keyupdate-repeat,close-notify,"
                     "half-close,tickets,resume"), 0,
               [ktls_line()] + keyupdate_lines("N", "N")
               + [CLOSE_PASS, half_close_pass("N", "N"), tickets_line(2, 7200), RESUME_PASS],
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

class LoopServer:
    """A TLS server on 127.0.0.1 serving one connection after another in a
    thread, each with fn(PyTls) on a TLS 1.3 context (a new one per
    connection when fresh_ctx), until stop()."""

    def __init__(self, fn, fresh_ctx=False):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.fn, self.fresh = fn, fresh_ctx
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
    srv = Proc([KU_IGNORE, port, *certs().srv_ec], name="ku_ignore_server", stdin=None)
    try:
        if not wait_listening(port, srv):
            raise Fail("ku_ignore_server did not listen\n%s" % srv.describe())
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
    srv = Proc([KU_IGNORE, port, *certs().srv_ec], name="ku_ignore_server", stdin=None)
    try:
        if not wait_listening(port, srv):
            raise Fail("ku_ignore_server did not listen\n%s" % srv.describe())
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


@suite.case("unreachable server: exit 3, no check line")
def _unreachable():
    port = free_port()
    expect(probe(port), 3, [], timeout=30,
           stderr="ktlsctl: cannot connect to localhost:%d (127.0.0.1:%d): Connection refused\n"
           % (port, port))


if __name__ == "__main__":
    sys.exit(suite.main())
