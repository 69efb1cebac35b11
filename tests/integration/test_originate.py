#!/usr/bin/env python3
"""TLS origination: `ktlsctl connect HOST:PORT --accept [ADDR]:PORT` takes
plain TCP clients and gives each its own TLS connection to HOST:PORT
(issue 13), relayed both ways as listen --forward does the other way round.

The plain clients are Python sockets (and curl), each with its own random
data checked by hash; the TLS servers are ktlsctl listen --echo -k,
gnutls-serv --echo and openssl s_server -www.  Every wait is for an event
(a port listening, a log line, bytes), never a fixed sleep.  The originator
runs on the channel under test (KTLSCTL_TEST_CHANNEL): its session lines
name it.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import human, scaled, sized  # noqa: E402
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import check_exit, ktlsctl, ktlsctl_listen  # noqa: E402
from ktlsctl_test.data import hex_lines, random_bytes, sha  # noqa: E402
from ktlsctl_test.peers import require_programs, start_gnutls_serv, start_s_server  # noqa: E402
from ktlsctl_test.pytls import PyTls, py_server_ctx, ServerThread  # noqa: E402

require_programs("certtool", "gnutls-serv", "openssl", "curl")

suite = Suite("test_originate", case_timeout=240)
ARGS = CHANNEL_ARGS
# How the sessions move bytes: splice on the kernel channel.
PATH = "splice" if CHANNEL == "kernel" else "copy"
SIZE = sized(1 << 20)              # a client of the 30
LINE = re.compile(r"^ktlsctl: session \d+ .*$", re.M)


def certs():
    return suite.certs


def echo_server():
    cert, key = certs().srv_ec
    return ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-k", *ARGS)


def originate(target, *args, **kw):
    """`ktlsctl connect TARGET --accept 127.0.0.1:0 ARGS`, once it says where
    it listens: (proc, port)."""
    k = ktlsctl("connect", target, "--accept", "127.0.0.1:0", *ARGS, *args, stdin=None, **kw)
    m = k.wait_err(r"ktlsctl: listening on 127\.0\.0\.1:(\d+) for plain TCP clients, each with "
                   r"its own TLS connection to %s\n" % re.escape(target), 15)
    if not m:
        k.kill()
        k.wait(5)
        raise Fail("connect --accept did not say where it listens\n" + k.describe())
    return k, int(m.group(1))


def lines(k):
    return LINE.findall(k.stderr)


def wait_lines(k, n, timeout=30):
    if not k.wait_until(lambda p: len(lines(p)) >= n, timeout):
        raise Fail("expected %d session lines, got %d\n%s" % (n, len(lines(k)), k.describe()))
    return lines(k)


def plain_exchange(port, data):
    """A plain client: sends data and its FIN while reading (data None:
    neither), then reads to the end: what came back, or the error that
    ended it."""
    err = []
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(60))
    except OSError as e:        # a reset can come before connect returns
        return b"", [e]

    def send():
        if data is None:
            return
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=send)
    t.start()
    got = bytearray()
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got.extend(d)
    except OSError as e:
        err.append(e)
    t.join(scaled(60))
    s.close()
    return bytes(got), err


def stop(k, what):
    """SIGTERM once every session has closed: a clean drain, 143."""
    k.signal(signal.SIGTERM)
    check_exit(k, 143, 20, what + " after SIGTERM")


def fixed(line):
    """A session line without its client port and duration."""
    return re.sub(r"duration=\d+\.\d{3}s", "duration=T",
                  re.sub(r"peer=127\.0\.0\.1:\d+", "peer=127.0.0.1:C", line))


# ------------------------------------------------------------------ cases

@suite.case("30 plain clients at once through --accept to ktlsctl listen --echo -k, %s each: "
            "every hash equal, every line exact, both sides closed" % human(SIZE), timeout=300)
def _many():
    srv, sport = echo_server()
    k, port = originate("localhost:%d" % sport, "--cafile", certs().ca)
    n = 30
    datas = [random_bytes(SIZE) for _ in range(n)]
    results = [None] * n

    def client(i):
        got, err = plain_exchange(port, datas[i])
        results[i] = True if not err and sha(got) == sha(datas[i]) else \
            "client %d: %d of %d bytes back, %s, errors %r" % (
                i, len(got), SIZE, "equal" if got == datas[i] else "differs", err)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(240))
    bad = [r for r in results if r is not True]
    if bad:
        raise Fail("%d of %d plain clients failed:\n%s\n%s"
                   % (len(bad), n, "\n".join(map(str, bad[:5])), k.describe()))
    want = ("ktlsctl: session N peer=127.0.0.1:C backend=127.0.0.1:%d version=TLS1.3 "
            "cipher=AES-256-GCM channel=%s path=%s rx=%d tx=%d duration=T end=closed"
            % (sport, CHANNEL, PATH, SIZE, SIZE))
    # (those that started after a ticket came resume: which ones, timing says)
    got = [re.sub(r"session \d+ ", "session N ", fixed(ln)).replace(" resumed=yes", "")
           for ln in wait_lines(k, n)]
    wrong = [ln for ln in got if ln != want]
    if wrong:
        raise Fail("%d of %d lines are not\n%s\nfor example\n%s" % (len(wrong), n, want, wrong[0]))
    ends = [ln for ln in wait_lines(srv, n) if ln.endswith(" end=closed")]
    if len(ends) != n:
        raise Fail("the server's sessions did not all close\n" + srv.describe())
    stop(k, "ktlsctl connect --accept")
    stop(srv, "ktlsctl listen --echo -k")


@suite.case("gnutls-serv --echo behind --accept: 5 plain clients, lines of text, every "
            "hash equal", timeout=120)
def _gnutls_serv():
    cert, key = certs().srv_ec
    gs, sport = start_gnutls_serv(cert, key, echo=True)
    k, port = originate("localhost:%d" % sport, "--cafile", certs().ca)
    for i in range(5):
        data = hex_lines(sized(256 << 10))
        got, err = plain_exchange(port, data)
        if err or got != data:
            raise Fail("client %d: %d of %d bytes back, errors %r\n%s"
                       % (i, len(got), len(data), err, k.describe()))
    ends = [ln for ln in wait_lines(k, 5) if ln.endswith(" end=closed")]
    if len(ends) != 5:
        raise Fail("not every session closed\n" + k.describe())
    stop(k, "ktlsctl connect --accept")


@suite.case("curl (plain HTTP) through --accept to openssl s_server -www: its page, whole",
            timeout=60)
def _curl_s_server():
    cert, key = certs().srv_rsa
    srv, sport = start_s_server(cert, key, extra=["-www"], stdin=False)
    k, port = originate("localhost:%d" % sport, "--cafile", certs().ca)
    r = subprocess.run(["curl", "-sS", "--http1.0", "-m", str(scaled(30)),
                        "http://127.0.0.1:%d/" % port], capture_output=True)
    if r.returncode != 0 or not r.stdout.startswith(b"<HTML><BODY BGCOLOR=\"#ffffff\">") \
            or not r.stdout.rstrip().endswith(b"</BODY></HTML>"):
        raise Fail("curl exit %d, %d bytes: %r...%r\n%s\n%s"
                   % (r.returncode, len(r.stdout), r.stdout[:80], r.stdout[-40:],
                      r.stderr.decode(errors="replace"), k.describe()))
    line = wait_lines(k, 1)[0]
    if not re.fullmatch(r"ktlsctl: session 1 peer=127\.0\.0\.1:\d+ backend=127\.0\.0\.1:%d "
                        r"version=TLS1\.3 cipher=AES-256-GCM channel=%s path=%s rx=\d+ tx=\d+ "
                        r"duration=\d+\.\d{3}s end=closed" % (sport, CHANNEL, PATH), line):
        raise Fail("session line %r\n%s" % (line, k.describe()))
    stop(k, "ktlsctl connect --accept")


@suite.case("server refusing: the plain client is reset, one exact line, connect --accept "
            "goes on", timeout=60)
def _refused():
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dport = dead.getsockname()[1]     # bound, not listening: refused
    k, port = originate("127.0.0.1:%d" % dport, "--cafile", certs().ca)
    got, err = plain_exchange(port, b"hello\n")
    if got or not any(isinstance(e, ConnectionResetError) for e in err):
        raise Fail("the plain client got %r, errors %r (wanted a reset)\n%s"
                   % (got, err, k.describe()))
    want = ('ktlsctl: session 1 peer=127.0.0.1:C backend=127.0.0.1:%d rx=0 tx=0 duration=T '
            'end=backend-failed reason="cannot connect to server 127.0.0.1:%d: '
            'Connection refused"' % (dport, dport))
    line = fixed(wait_lines(k, 1)[0])
    if line != want:
        raise Fail("line\n%s\nwanted\n%s" % (line, want))
    if not k.alive():
        raise Fail("connect --accept exited\n" + k.describe())
    stop(k, "ktlsctl connect --accept")
    dead.close()


@suite.case("server certificate not trusted: the plain client is reset, the line gives "
            "GnuTLS's reason, exact", timeout=60)
def _untrusted():
    srv, sport = echo_server()
    k, port = originate("localhost:%d" % sport)       # system trust: not our CA
    got, err = plain_exchange(port, b"hello\n")
    if got or not err:
        raise Fail("the plain client got %r, errors %r\n%s" % (got, err, k.describe()))
    want = ('ktlsctl: session 1 peer=127.0.0.1:C backend=127.0.0.1:%d rx=0 tx=0 duration=T '
            'end=handshake-failed reason="server certificate rejected: The certificate is NOT '
            'trusted. The certificate issuer is unknown. (--cafile FILE to trust another CA, '
            '--insecure to skip the check)"' % sport)
    line = fixed(wait_lines(k, 1)[0])
    if line != want:
        raise Fail("line\n%s\nwanted\n%s" % (line, want))
    stop(k, "ktlsctl connect --accept")
    stop(srv, "ktlsctl listen --echo -k")


@suite.case("SIGTERM with 10 idle sessions: each server gets close_notify and answers, "
            "each plain client its FIN after what was echoed, exit 143", timeout=90)
def _sigterm():
    srv, sport = echo_server()
    k, port = originate("localhost:%d" % sport, "--cafile", certs().ca)
    socks = []
    for i in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
        s.sendall(b"client %d\n" % i)
        got = b""
        while not got.endswith(b"\n"):
            d = s.recv(100)
            if not d:
                break
            got += d
        if got != b"client %d\n" % i:
            raise Fail("client %d: echo %r\n%s" % (i, got, k.describe()))
        socks.append(s)
    stop(k, "ktlsctl connect --accept with 10 sessions open")
    for i, s in enumerate(socks):
        if s.recv(100) != b"":
            raise Fail("client %d got data instead of its FIN" % i)
        s.close()
    ends = [ln for ln in lines(k) if ln.endswith(" end=closed")]
    if len(ends) != 10:
        raise Fail("%d of 10 sessions closed\n%s" % (len(ends), k.describe()))
    stop(srv, "ktlsctl listen --echo -k")


@suite.case("a server that ends without close_notify: the plain client gets every byte and "
            "its FIN, the line says truncated, exact", timeout=60)
def _truncated():
    data = random_bytes(sized(512 << 10))
    cert, key = certs().srv_ec

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key), server_side=True)
        t.handshake()
        t.send(data)
        t.close_tcp()               # FIN, no close_notify
    st = ServerThread(serve)
    k, port = originate("localhost:%d" % st.port, "--cafile", certs().ca)
    got, err = plain_exchange(port, None)
    st.join(30)
    if err or got != data:
        raise Fail("the plain client got %d of %d bytes (%s), errors %r\n%s"
                   % (len(got), len(data), "a prefix" if data.startswith(got) else "foreign",
                      err, k.describe()))
    want = ('ktlsctl: session 1 peer=127.0.0.1:C backend=127.0.0.1:%d version=TLS1.3 '
            'cipher=AES-256-GCM channel=%s path=%s rx=%d tx=0 duration=T end=truncated '
            'reason="connection truncated: the peer closed without close_notify"'
            % (st.port, CHANNEL, PATH, len(data)))
    line = fixed(wait_lines(k, 1)[0])
    if line != want:
        raise Fail("line\n%s\nwanted\n%s" % (line, want))
    stop(k, "ktlsctl connect --accept")


def resumes(server, target_port, version_args, version):
    """Three plain clients one after another: the first TLS connection is a
    full handshake, the next two resume the newest session the server gave,
    as the log lines of both sides say."""
    k, port = originate("localhost:%d" % target_port, "--cafile", certs().ca, *version_args)
    for i in range(3):
        data = hex_lines(sized(64 << 10))
        got, err = plain_exchange(port, data)
        if err or got != data:
            raise Fail("client %d: %d of %d bytes back, errors %r\n%s"
                       % (i, len(got), len(data), err, k.describe()))
        # the next handshake starts once this session has ended
        wait_lines(k, i + 1)
    got = [fixed(ln) for ln in lines(k)]
    want = ["ktlsctl: session %d peer=127.0.0.1:C backend=127.0.0.1:%d version=%s "
            "cipher=AES-256-GCM%s channel=%s path=%s rx=%d tx=%d duration=T end=closed"
            % (i + 1, target_port, version, "" if i == 0 else " resumed=yes", CHANNEL, PATH,
               len(data), len(data)) for i in range(3)]
    if got != want:
        raise Fail("lines\n%s\nwanted\n%s\n%s" % ("\n".join(got), "\n".join(want),
                                                   server.describe()))
    stop(k, "ktlsctl connect --accept")
    return k


for _v in ("1.2", "1.3"):
    @suite.case("resumption across connections, TLS%s: ktlsctl listen --echo -k takes the "
                "second and third handshakes as resumed, both sides' lines say so" % _v,
                timeout=60)
    def _resume_listen(v=_v):
        srv, sport = echo_server()
        resumes(srv, sport, ["--tls" + v], "TLS" + v)
        n = sum(1 for ln in lines(srv) if " resumed=yes " in ln)
        if n != 2:
            raise Fail("the server's lines say resumed=yes %d times, not 2\n%s"
                       % (n, srv.describe()))
        stop(srv, "ktlsctl listen --echo -k")


@suite.case("resumption across connections: gnutls-serv --echo (TLS1.3) resumes the second "
            "and third", timeout=60)
def _resume_gnutls_serv():
    cert, key = certs().srv_ec
    gs, sport = start_gnutls_serv(cert, key, echo=True)
    resumes(gs, sport, ["--tls1.3"], "TLS1.3")


@suite.case("usage: --accept with --session-in -> 2, exact", timeout=30)
def _usage():
    k = ktlsctl("connect", "localhost:1", "--accept", ":0", "--session-in", "/nonexistent",
                stdin=None)
    check_exit(k, 2, 20, "connect --accept --session-in")
    want = ("ktlsctl: --accept resumes across its connections by itself: give it without "
            "--session-in and --session-out (see 'ktlsctl connect --help')")
    if k.stderr.strip() != want:
        raise Fail("stderr %r, wanted %r" % (k.stderr, want))


if __name__ == "__main__":
    suite.main()
