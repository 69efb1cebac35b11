"""What the serving suites (test_serve, test_workers) share: a serving
process's session log lines, and its drain under load."""

import os
import re
import select
import signal
import socket
import ssl
import threading

from .data import random_bytes, sha
from .peers import EOF_CLOSE, gnutls_cli_argv, s_client_argv
from .procs import Proc, check_exit, ktlsctl
from .pytls import py_client_ctx
from .settings import scaled
from .verdicts import Fail


def log_lines(k):
    """The "ktlsctl: session N ..." lines of serving process k so far."""
    return re.findall(r"^ktlsctl: session \d+ .*$", k.stderr, re.M)


def wait_sessions(k, n, timeout=30):
    """The first n (or more) session lines, once they are there."""
    if not k.wait_until(lambda p: len(log_lines(p)) >= n, timeout):
        raise Fail("expected %d session lines, got %d\n%s" % (n, len(log_lines(k)), k.describe()))
    return log_lines(k)


def _send_quietly(t, data):
    try:
        t.sendall(data)
    except (ssl.SSLError, OSError):
        pass


def sigterm_under_load(k, port, ctx, n, what):
    """n Python TLS clients through k (an echo, or a forward to an echo
    backend), each relaying 4 KiB and still sending 252 KiB more, then
    SIGTERM: each gets close_notify after a whole prefix of its echo, k
    exits 143 with n session lines saying closed, which are returned."""
    socks, datas, got = [], [], [bytearray() for _ in range(n)]
    for _ in range(n):
        # a TCP end without close_notify raises instead of reading b""
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(30)),
                            server_hostname="localhost", suppress_ragged_eofs=False)
        data = random_bytes(256 << 10)
        t.sendall(data[:4096])
        socks.append(t)
        datas.append(data)
    for i, t in enumerate(socks):      # every session is relaying
        while len(got[i]) < 4096:
            got[i].extend(t.recv(65536))
    senders = [threading.Thread(target=_send_quietly, args=(t, d[4096:]))
               for t, d in zip(socks, datas)]
    for s in senders:
        s.start()
    k.signal(signal.SIGTERM)
    for i, t in enumerate(socks):
        while True:
            d = t.recv(65536)
            if not d:
                break
            got[i].extend(d)
        if bytes(got[i]) != datas[i][:len(got[i])]:
            raise Fail("client %d: what came back is not a prefix of what it sent" % i)
    for t in socks:
        try:
            t.unwrap()
        except (ssl.SSLError, OSError):
            pass
    check_exit(k, 143, 30, what + " after SIGTERM under load")
    lines = log_lines(k)
    if len([ln for ln in lines if ln.endswith("end=closed")]) != n:
        raise Fail("not every session closed:\n" + "\n".join(lines))
    for t in socks:
        t.close()
    return lines


def py_echo(ctx, port, data, results, i):
    """Python ssl: send data while reading the echo, then close_notify both
    ways.  One thread drives the socket: an SSL object used from two
    threads at once (a sender and a reader) breaks in OpenSSL itself.
    results[i]: True, or what went wrong."""
    try:
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(60)),
                            server_hostname="localhost")
        t.setblocking(False)
        got, sent = bytearray(), 0
        while len(got) < len(data):
            want_w = [t] if sent < len(data) else []
            r, w, _ = select.select([t], want_w, [], 0 if t.pending() else scaled(60))
            if not (r or w or t.pending()):
                raise TimeoutError("no progress for %d s (%d sent, %d back)"
                                   % (scaled(60), sent, len(got)))
            if w:
                try:
                    sent += t.send(data[sent:sent + 16384])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if r or t.pending():
                try:
                    d = t.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                if not d:
                    break
                got.extend(d)
        t.setblocking(True)
        t.settimeout(scaled(60))
        t.unwrap()
        t.close()
        results[i] = sha(bytes(got)) == sha(data) or "python: echo differs (%d of %d bytes)" % (
            len(got), len(data))
    except Exception as e:  # noqa: BLE001 - reported per client
        results[i] = "python: %r" % e


MIXED_KINDS = ("ktlsctl", "python", "gnutls-cli", "openssl")


def mixed_echo_clients(port, n, size, ca, logdir, ktlsctl_args=()):
    """n clients at once through an echo at port, in turn `ktlsctl
    connect` (with ktlsctl_args), Python ssl, gnutls-cli and s_client,
    each with its own `size` random bytes, its echo checked by hash.
    Returns (the failures, one message each; the ktlsctl clients)."""
    procs, threads, datas = {}, [], {}
    results = [None] * n
    ctx = py_client_ctx(ca)
    for i in range(n):
        datas[i] = data = random_bytes(size)
        kind = MIXED_KINDS[i % len(MIXED_KINDS)]
        if kind == "ktlsctl":
            procs[i] = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", ca, *EOF_CLOSE,
                               *ktlsctl_args, stdin=data)
        elif kind == "gnutls-cli":
            log = os.path.join(logdir, "gnutls-cli-%d.log" % i)   # not on stdout
            procs[i] = Proc(gnutls_cli_argv(port, ca, log), name="gnutls-cli")
            procs[i].send(data)     # stdin closed once the echo is back
        elif kind == "openssl":
            procs[i] = Proc(s_client_argv(port, ca, host="127.0.0.1", mode="quiet"),
                            name="s_client")
            procs[i].send(data)
        else:
            t = threading.Thread(target=py_echo, args=(ctx, port, data, results, i))
            t.start()
            threads.append(t)
    for t in threads:
        t.join(scaled(300))
    for i, p in procs.items():
        # s_client and gnutls-cli stop reading at the end of their input
        p.wait_out(size, 300)
        p.close_stdin()
        rc = p.wait(60)
        ok = sha(p.stdout) == sha(datas[i])
        results[i] = True if ok and rc == 0 else "%s: exit %s, %d of %d bytes, hash %s\n%s" % (
            p.name, rc, len(p.stdout), size, "equal" if ok else "differs", p.describe())
    return ([r for r in results if r is not True],
            [p for p in procs.values() if p.name == "ktlsctl"])
