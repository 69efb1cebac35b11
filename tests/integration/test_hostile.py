#!/usr/bin/env python3
"""Hostile peers and faults on our side, against the real binary over real
sockets.  The peer is Python's TLS (ssl.SSLObject over a socket,
ktlsctl_test.pytls.PyTls): it completes a real handshake, sends genuine application data, then
misbehaves by writing raw bytes of its own making, or ciphertext it sealed
and then altered.  Each case checks the documented exit status, a one-line
message, no hang (hard timeouts), and that stdout is exactly the genuine
data sent before the fault: never a byte the peer did not send as data.

Where each fault of issue #7 is covered:

  peer, after a real handshake
    garbage bytes                      here: "garbage after the handshake"
    truncated record (then FIN)        here: "truncated record"
    oversized record                   here: "oversized record"
    record with a bad tag              here: "bad tag" (TLS 1.3 and 1.2)
    unknown content type               tests/unit/test_conn.c (bad_records:
                                       inner types 0, 20, 99 and TLS 1.2
                                       outer types; needs a sealed record
                                       of any type, which Python cannot make)
    KeyUpdate glued to other data      tests/unit/test_conn.c (KeyUpdate +
                                       data / + handshake in one record)
    KeyUpdate flood                    here: "KeyUpdate flood" (gnutls-cli,
                                       1000 KeyUpdates mid-stream)
    fatal alert mid-stream             tests/unit/test_conn.c (alerts) and
                                       test_errors "s_server 'P'"
    TCP reset mid-stream               here: "reset"
    FIN without close_notify           here: "FIN without close_notify"
    never finishing the handshake      test_errors "peer accepts and never
                                       speaks"; here: "ClientHello read, no
                                       answer"
    slowloris during the handshake     here: "slowloris handshake"
    a record dribbled after it         here: "record dribbled byte by byte"
    hostile client against listen      here: "listen: ..."
  our side
    stdout closed early (EPIPE)        here: "stdout closed early"
    stdin that errors                  here: "stdin is a directory"
    SIGINT / SIGTERM mid-transfer      here: "SIGINT/SIGTERM mid-transfer"
                                       (the peer sees close_notify); also
                                       test_errors "signal: ..."
    disk full on --session-out         here: "disk full on --session-out"
    unreadable cert and key            here: "unreadable cert/key (nobody)"
    wrong key for the certificate      test_errors "listen key does not
                                       match the certificate"
    listen port in use                 test_errors "port already in use"
"""

import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL_ARGS, KERNEL, NO_REKEY, PEER_KEYUPDATE_FATAL, REKEY, tls_stat)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import check_no_sanitizer, ktlsctl, ktlsctl_listen, Proc  # noqa: E402
from ktlsctl_test.data import nonul_lines  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    gnutls_cli_argv, gnutls_priority, require_programs, start_gnutls_serv)
from ktlsctl_test.pytls import py_client_ctx, py_server_ctx, PyTls, ServerThread  # noqa: E402
from ktlsctl_test.relays import Tamper  # noqa: E402

require_programs("gnutls-cli", "gnutls-serv")

suite = Suite("test_hostile", case_timeout=60)
KTLS = CHANNEL_ARGS             # the channel under test
GENUINE = b"genuine application data, every byte of it\n" * 200


def certs():
    return suite.certs


def expect(proc, status, phrase, timeout=20, stdout=None):
    """Exit status, a one-line 'ktlsctl:' message matching phrase, no
    sanitizer report, and stdout exactly `stdout` when given."""
    rc = proc.wait(timeout)
    check_no_sanitizer(proc)
    if rc != status:
        raise Fail("exit status %s, expected %s\n%s" % (rc, status, proc.describe()))
    own = [l for l in proc.stderr.splitlines() if l.startswith("ktlsctl: ")]
    if phrase and not any(re.search(phrase, l, re.I) for l in own):
        raise Fail("no 'ktlsctl:' line matches /%s/\n%s" % (phrase, proc.describe()))
    errors = [l for l in own if not l.startswith("ktlsctl: notice")
              and not l.startswith("ktlsctl: listening on")]
    if phrase and len(errors) != 1:
        raise Fail("%d message lines, expected one\n%s" % (len(errors), proc.describe()))
    if stdout is not None and proc.stdout != stdout:
        got = proc.stdout
        raise Fail("stdout: %d bytes, expected exactly the %d genuine bytes (%s)\n%s"
                   % (len(got), len(stdout),
                      "a prefix" if stdout.startswith(got) else "NOT a prefix: foreign bytes",
                      proc.describe()))


class Cue:
    """What the hostile peer waits for: ktlsctl has read the genuine data
    (delivered), and it has exited (done).  The test, which watches ktlsctl,
    sets them; the peer gives up waiting after a while."""

    def __init__(self):
        self.delivered = threading.Event()
        self.done = threading.Event()

    def wait(self, event, timeout=20):
        getattr(self, event).wait(scaled(timeout))


def hostile_server(version, act, handshake=True):
    """A TLS server that shakes hands (Python's OpenSSL), then act(tls, cue);
    .cue is the Cue act waits on."""
    ctx = py_server_ctx(certs().srv_ec[0], certs().srv_ec[1], version)
    cue = Cue()

    def serve(sock):
        tls = PyTls(sock, ctx, server_side=True)
        if handshake:
            tls.handshake()
        return act(tls, cue)
    st = ServerThread(serve)
    st.cue = cue
    return st


def watch(srv, k, status, phrase, stdout=None):
    """expect() for ktlsctl k against the hostile srv, telling srv's act
    when ktlsctl has the genuine data and when it exited."""
    try:
        if stdout:
            k.wait_out(len(stdout), 20)
        srv.cue.delivered.set()
        expect(k, status, phrase, stdout=stdout)
    finally:
        srv.cue.delivered.set()
        srv.cue.done.set()


def connect(port, *extra, stdin=True):
    return ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *KTLS,
                   "--handshake-timeout", "3", *extra, stdin=stdin)


def sealed(tls, data):
    """The ciphertext records for data, sealed but not yet sent."""
    tls.obj.write(data)
    return tls.outb.read()


def raw_case(version, fault, status, phrase, prefix_ok=False):
    """Genuine data, then (once ktlsctl has read it) the raw bytes fault(tls)
    returns; ktlsctl connect must stop with status and phrase, stdout
    exactly GENUINE."""
    def act(tls, cue):
        tls.send(GENUINE)
        cue.wait("delivered")
        tls.sock.sendall(fault(tls))
        cue.wait("done")
        tls.close_tcp()
    srv = hostile_server(version, act)
    watch(srv, connect(srv.port), status, phrase, stdout=GENUINE)


def garbage(tls):
    rnd = random.Random(7)
    return bytes(rnd.randrange(256) for _ in range(300))


def truncated(tls):
    rec = sealed(tls, b"x" * 100)
    return rec[:len(rec) // 2]


def oversized(tls):
    n = 16384 + 256 + 1
    return struct.pack("!BHH", 23, 0x0303, n) + b"\0" * n


def bad_tag(tls):
    rec = bytearray(sealed(tls, b"these bytes must never reach stdout\n"))
    rec[-1] ^= 0x01
    return bytes(rec)


for _v in ("1.3", "1.2"):
    suite.add("connect: garbage after the handshake TLS%s -> 9" % _v,
              lambda v=_v: raw_case(v, garbage, 9, r"record|malformed|authentication"))
    suite.add("connect: bad tag TLS%s -> 9" % _v,
              lambda v=_v: raw_case(v, bad_tag, 9, r"failed authentication"))
suite.add("connect: oversized record -> 9",
          lambda: raw_case("1.3", oversized, 9, r"oversized"))


@suite.case("connect: truncated record (half a record, then FIN) -> 8")
def _truncated():
    def act(tls, cue):
        tls.send(GENUINE)
        cue.wait("delivered")
        tls.sock.sendall(truncated(tls))
        tls.close_tcp()
    srv = hostile_server("1.3", act)
    watch(srv, connect(srv.port), 8, r"truncated", stdout=GENUINE)


@suite.case("connect: FIN without close_notify -> 8")
def _fin():
    def act(tls, cue):
        tls.send(GENUINE)
        cue.wait("delivered")
        tls.close_tcp()
    srv = hostile_server("1.3", act)
    watch(srv, connect(srv.port), 8, r"truncated.*close_notify", stdout=GENUINE)


@suite.case("connect: reset mid-stream -> 8")
def _reset():
    def act(tls, cue):
        tls.send(GENUINE)
        cue.wait("delivered")
        tls.close_tcp(rst=True)
    srv = hostile_server("1.3", act)
    watch(srv, connect(srv.port), 8, r"truncated|reset", stdout=GENUINE)


@suite.case("connect: ClientHello read, no answer -> 12 at --handshake-timeout")
def _nofinish():
    def act(tls, cue):
        tls.sock.recv(4096)
        cue.wait("done", 8)         # silent until ktlsctl gave up
    srv = hostile_server("1.3", act, handshake=False)
    k = connect(srv.port)
    watch(srv, k, 12, r"handshake|timed out|timeout")
    if k.elapsed() > scaled(6):
        raise Fail("gave up after %.1fs, --handshake-timeout is 3" % k.elapsed())


@suite.case("connect: slowloris handshake (1 byte / 0.1 s) -> 12 at --handshake-timeout")
def _slowloris_handshake():
    def act(tls, cue):
        while True:
            try:
                tls.obj.do_handshake()
                break
            except Exception:
                pass
            d = tls.outb.read()
            for i in range(len(d)):
                tls.sock.sendall(d[i:i + 1])
                time.sleep(0.1)
            if not tls._fill():
                return
    srv = hostile_server("1.3", act, handshake=False)
    k = connect(srv.port)
    watch(srv, k, 12, r"handshake|timed out|timeout")
    if k.elapsed() > scaled(6):
        raise Fail("gave up after %.1fs, --handshake-timeout is 3\n%s" % (k.elapsed(), k.describe()))


@suite.case("connect: a record dribbled byte by byte is delivered -> 0")
def _dribble():
    msg = b"delivered one byte at a time, and whole\n"

    def act(tls, cue):
        rec = sealed(tls, msg)
        for i in range(len(rec)):
            tls.sock.sendall(rec[i:i + 1])
            time.sleep(0.01)
        tls.send_close_notify()
        return tls.recv_until_close()
    srv = hostile_server("1.3", act)
    k = connect(srv.port, stdin=None)
    expect(k, 0, None, stdout=msg)
    srv.join(10)


# ------------------------------------------------ hostile client vs listen

def listen_case(fault, status, phrase):
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *KTLS,
                             "--handshake-timeout", "3", stdin=True)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = PyTls(s, py_client_ctx(certs().ca, "1.3"), server_side=False,
                server_hostname="localhost")
    tls.handshake()
    tls.send(GENUINE)
    k.wait_out(len(GENUINE), 20)    # the fault after ktlsctl has read it
    s.sendall(fault(tls))
    expect(k, status, phrase, stdout=GENUINE)
    tls.close()


suite.add("listen: garbage from the client -> 9",
          lambda: listen_case(garbage, 9, r"record|malformed|authentication"))
suite.add("listen: bad tag from the client -> 9",
          lambda: listen_case(bad_tag, 9, r"failed authentication"))
suite.add("listen: oversized record from the client -> 9",
          lambda: listen_case(oversized, 9, r"oversized"))


def keyupdate_flood():
    """gnutls-cli sends 1000 KeyUpdates mid-stream to listen --echo."""
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *KTLS,
                             "--echo", stdin=None)
    lines = nonul_lines(64 << 10)
    stream = bytearray()
    chunks = lines.splitlines(keepends=True)
    for i, line in enumerate(chunks):
        stream += line
        if i % max(1, len(chunks) // 1000) == 0:
            stream += b"^rekey1^\n"
    cli = Proc(gnutls_cli_argv(port, certs().ca, os.path.join(suite.tmpdir(), "cli.log"),
                               gnutls_priority("1.3"), extra=["--inline-commands"]),
               name="gnutls-cli")
    cli.send(bytes(stream))
    return k, cli


@suite.case("listen: KeyUpdate flood (gnutls-cli, 1000 KeyUpdates) -> 9, named a flood", timeout=120,
            when=REKEY)
def _keyupdate_flood():
    # GnuTLS rate-limits KeyUpdates as a DoS guard: a flood ends the
    # session with a clear message.
    k, cli = keyupdate_flood()
    expect(k, 9, r"flooded the session with KeyUpdates")
    cli.kill()   # (its stdout mixes our echo with its own status lines)


@suite.case("listen: KeyUpdate flood (gnutls-cli) on a channel that cannot rekey -> 10 at the "
            "first KeyUpdate, with the reason", timeout=120, when=NO_REKEY)
def _keyupdate_flood_norekey():
    k, cli = keyupdate_flood()
    expect(k, 10, "^" + re.escape("ktlsctl: " + PEER_KEYUPDATE_FATAL) + "$")
    cli.kill()


# ----------------------------------------------- a relay that alters records

def tamper_case(version, mode):
    """gnutls-serv --echo -> a relay that alters one record from the server
    once the session carries data (ktlsctl_test.relays.Tamper) -> connect:
    exit 9 with the reason; on the kernel channel the kernel counted the
    failed decryption of a flipped record (TlsDecryptError)."""
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority(version, "AES-128-GCM"))
    relay = Tamper(port, 2 if version == "1.3" else 1, mode)   # TLS 1.3: its Finished is one
    before = tls_stat().get("TlsDecryptError", 0)
    k = ktlsctl("connect", "localhost:%d" % relay.port, "--cafile", certs().ca, *KTLS,
                "--tls" + version, "--cipher", "AES-128-GCM", stdin=True)
    k.send(nonul_lines(2048))
    phrase = (r"^ktlsctl: .*failed authentication" if mode == "flip"
              else r"^ktlsctl: .*(malformed|record header|oversized)")
    expect(k, 9, phrase)
    if not relay.tampered:
        raise Fail("the relay never altered a record\n%s" % k.describe())
    if KERNEL and mode == "flip" and not tls_stat().get("TlsDecryptError", 0) > before:
        raise Fail("the kernel's TlsDecryptError did not grow (%d before)" % before)


for _v, _m in (("1.3", "flip"), ("1.2", "flip"), ("1.3", "garbage")):
    suite.add("relay: %s record from gnutls-serv TLS%s -> connect exits 9%s"
              % ("tampered" if _m == "flip" else "garbage", _v,
                 " (kernel: TlsDecryptError grows)" if _m == "flip" else ""),
              lambda v=_v, m=_m: tamper_case(v, m))


# ----------------------------------------------------------- our side

def streaming_server(version="1.3"):
    """Sends data until the peer goes away; returns how the peer ended."""
    def act(tls, cue):
        tls.sock.settimeout(scaled(20))
        try:
            for _ in range(4000):
                tls.send(GENUINE)
        except OSError:
            pass
        return tls.recv_until_close()[1]
    return hostile_server(version, act)


@suite.case("stdout closed early (| head -c 10): close_notify, exit 0")
def _epipe():
    srv = streaming_server()
    with open(os.devnull, "rb") as null:
        p = subprocess.Popen(
            "'%s' connect localhost:%d --cafile '%s' %s | head -c 10 > /dev/null; "
            "exit ${PIPESTATUS[0]}" % (KTLSCTL, srv.port, certs().ca, " ".join(KTLS)),
            shell=True, executable="/bin/bash", stdin=null, stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=scaled(30))
        except subprocess.TimeoutExpired:
            p.kill()
            raise Fail("ktlsctl connect | head -c 10 hung")
    if p.returncode != 0:
        raise Fail("exit status %s, expected 0: %s" % (p.returncode, err.decode(errors="replace")))
    if b"AddressSanitizer" in err or b"runtime error" in err:
        raise Fail("sanitizer report: %s" % err.decode(errors="replace"))
    srv.join(20)
    if srv.result != "close_notify":
        raise Fail("the peer saw %r, expected close_notify" % (srv.result,))


@suite.case("stdin is a directory (read fails: EISDIR) -> 11")
def _stdin_error():
    srv = hostile_server("1.3", lambda tls, cue: tls.recv_until_close())
    fd = os.open(suite.tmpdir(), os.O_RDONLY)   # read() on it fails with EISDIR
    try:
        k = connect(srv.port, stdin=fd)
        expect(k, 11, r"standard input")
    finally:
        os.close(fd)


def signal_case(sig, status):
    srv = streaming_server()
    k = connect(srv.port, stdin=True)
    k.wait_out(len(GENUINE) * 4, scaled(20))
    k.signal(sig)
    expect(k, status, None)
    srv.join(20)
    if srv.result != "close_notify":
        raise Fail("the peer saw %r, expected close_notify" % (srv.result,))


suite.add("SIGTERM mid-transfer: close_notify sent, exit 143",
          lambda: signal_case(signal.SIGTERM, 143))
suite.add("SIGINT mid-transfer: close_notify sent, exit 130",
          lambda: signal_case(signal.SIGINT, 130))


@suite.case("disk full on --session-out: the session goes on, one clear error")
def _disk_full():
    if os.geteuid() != 0:
        raise Skip("needs root to mount a full tmpfs (CI runs as root)")
    d = os.path.join(suite.tmpdir(), "full")
    os.mkdir(d)
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", d]) != 0:
        raise Skip("cannot mount a tmpfs here")
    try:
        with open(os.path.join(d, "filler"), "wb") as f:
            try:
                f.write(b"\0" * (64 << 10))
            except OSError:
                pass

        def act(tls, cue):
            tls.send(GENUINE)
            tls.send_close_notify()
            return tls.recv_until_close()
        srv = hostile_server("1.3", act)
        k = connect(srv.port, "--session-out", os.path.join(d, "sess"), stdin=None)
        rc = k.wait(20)
        check_no_sanitizer(k)
        if k.stdout != GENUINE:
            raise Fail("data lost when the session file cannot be written\n%s" % k.describe())
        if not re.search(r"ktlsctl: .*(session|write|space)", k.stderr, re.I):
            raise Fail("no message about the session file\n%s" % k.describe())
        if rc != 0:
            raise Fail("exit status %s: the data session itself succeeded\n%s" % (rc, k.describe()))
        if os.path.exists(os.path.join(d, "sess")):
            raise Fail("a partial session file was left behind")
    finally:
        subprocess.call(["umount", d])


@suite.case("unreadable cert/key (as nobody, root-only files) -> 5")
def _unreadable():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        raise Skip("needs root and setpriv to run ktlsctl as nobody")
    d = os.path.join(suite.tmpdir(), "private")
    os.makedirs(d, exist_ok=True)
    os.chmod(suite.tmpdir(), 0o755)
    cert, key = (os.path.join(d, n) for n in ("cert.pem", "key.pem"))
    shutil.copy(certs().srv_ec[0], cert)
    shutil.copy(certs().srv_ec[1], key)
    os.chmod(d, 0o755)
    for which, mode in (("cert", cert), ("key", key)):
        os.chmod(cert, 0o600 if which == "cert" else 0o644)
        os.chmod(key, 0o600 if which == "key" else 0o644)
        k = Proc(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", KTLSCTL,
                  "listen", "127.0.0.1:0", "--cert", cert, "--key", key, *KTLS], stdin=None)
        expect(k, 5, r"%s|permission|cannot read" % which)
        if not re.search(r"permission denied", k.stderr, re.I):
            raise Fail("the message does not say why (permission denied)\n%s" % k.describe())


if __name__ == "__main__":
    sys.exit(suite.main())
