"""What the serving suites (test_serve, test_workers) share: a serving
process's session log lines, and its drain under load."""

import re
import signal
import socket
import ssl
import threading

from .data import random_bytes
from .procs import check_exit
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
