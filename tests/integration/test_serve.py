#!/usr/bin/env python3
"""Serving many: `ktlsctl listen --forward`, `--echo -k` and `--exec` with
many real clients at once (issue 13).

The backend is a plain TCP echo server in its own Python process; clients
are ktlsctl connect, gnutls-cli, openssl s_client and Python's ssl module,
each with its own random data, checked by hash.  Every wait is for an event
(a port listening, a log line, bytes), never a fixed sleep.

The server (and every ktlsctl client) runs on the channel under test
(KTLSCTL_TEST_CHANNEL, ktlsctl_test.channel): the session lines and the
command's KTLSCTL_CHANNEL name it.  The bulk sizes (2 MiB and 1 MiB a
client) follow KTLSCTL_TEST_DATA_SCALE; the handshake timeout that the
silent clients run into, and the window in which --max-conns must hold a
client back, follow KTLSCTL_TEST_TIMEOUT_SCALE like every wait.
"""

import ctypes
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import human, scaled, sized  # noqa: E402
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS, REKEY, can_rekey  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, kt_lines, ktlsctl, ktlsctl_listen, wait_for)
from ktlsctl_test.data import random_bytes, sha  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, require_programs)
from ktlsctl_test.pytls import py_client_ctx  # noqa: E402
from ktlsctl_test.backends import SOURCE_CHUNK, SOURCE_SIZE, backend  # noqa: E402
from ktlsctl_test.serving import (  # noqa: E402
    log_lines, mixed_echo_clients, py_echo, sigterm_under_load, wait_sessions)
from ktlsctl_test.certs import (  # noqa: E402
    fingerprint, put_pair, reload_files, reloaded_line, replace_file)

require_programs("certtool", "gnutls-cli", "openssl", "prlimit", "ss")

suite = Suite("test_serve", case_timeout=240)
# The channel under test, for the server and for every ktlsctl client.
SERVE_ARGS = CHANNEL_ARGS
# How --forward and --exec move bytes: splice on the kernel channel.
PATH = "splice" if CHANNEL == "kernel" else "copy"
MANY_SIZE = sized(2 << 20)         # a client of the 100
EXEC_SIZE = sized(1 << 20)         # a client of the 30 --exec cat
# --handshake-timeout of the silent-clients case, in seconds.
SILENT_HS = scaled(4)

def recv_to_eof(t):
    """Everything a TLS socket receives until the peer's close_notify."""
    got = bytearray()
    while True:
        d = t.recv(65536)
        if not d:
            return bytes(got)
        got.extend(d)


def certs():
    return suite.certs


def serve(*args, **kw):
    cert, key = certs().srv_ec
    return ktlsctl_listen("--cert", cert, "--key", key, *SERVE_ARGS, *args, **kw)


def stop(k, what):
    """SIGTERM: every session had closed, so the exit says a clean drain."""
    k.signal(signal.SIGTERM)
    check_exit(k, 143, 20, what + " after SIGTERM")


def wait_closed(k, n):
    """The n session lines, every one saying closed."""
    lines = wait_sessions(k, n, 10)
    if not all(ln.endswith(" end=closed") for ln in lines):
        raise Fail("log lines:\n" + "\n".join(lines))
    return lines


def py_ctx():
    return py_client_ctx(certs().ca)


# ------------------------------------------------------------------ cases

@suite.case("100 clients at once (ktlsctl, gnutls-cli, s_client, python), %s each "
            "through --forward to an echo backend: every hash equal, every session closed"
            % human(MANY_SIZE), timeout=400)
def _many():
    be, bport = backend()
    k, port = serve("--forward", "127.0.0.1:%d" % bport)
    n, size = 100, MANY_SIZE
    every = max(size // 16384 // 4, 1)      # records between key updates
    rekeying = ["--key-update-after", str(every), "-v"] if can_rekey() else []
    bad, kclients = mixed_echo_clients(port, n, size, certs().ca, suite.tmpdir(),
                                       (*SERVE_ARGS, *rekeying))
    if bad:
        unclean = [ln for ln in log_lines(k) if not ln.endswith("end=closed")]
        raise Fail("%d of %d clients failed:\n%s\nthe server's sessions that did not close:\n%s"
                   % (len(bad), n, "\n".join(map(str, bad[:5])), "\n".join(unclean[:20])))
    if rekeying:
        updates = [len(re.findall(r"^ktlsctl: updated our send keys", p.stderr, re.M))
                   for p in kclients]
        # (at least: records can be shorter than 16 KiB)
        if min(updates) < (size // 16384 - 1) // every:
            raise Fail("ktlsctl clients updated their keys %s times, not every %d records"
                       % (updates, every))
    lines = wait_sessions(k, n, 30)
    closed = [ln for ln in lines if ln.endswith("end=closed")
              and " path=%s rx=%d tx=%d " % (PATH, size, size) in ln]
    if len(closed) != n:
        raise Fail("%d of %d session lines say path=%s, closed with %d bytes each way:\n%s"
                   % (len(closed), n, PATH, size,
                      "\n".join(ln for ln in lines if ln not in closed)[:3000]))
    stop(k, "ktlsctl listen --forward, all sessions closed,")


@suite.case("20 clients silent mid-handshake do not delay 20 others; each silent one "
            "ends at its own --handshake-timeout", timeout=120)
def _silent():
    k, port = serve("--echo", "-k", "--handshake-timeout", "%g" % SILENT_HS)
    silent = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x16\x03\x01\x00\xff")   # a record header, then nothing
        silent.append(s)
    t0 = time.monotonic()
    results = [None] * 20
    threads = [threading.Thread(target=py_echo, args=(py_ctx(), port, random_bytes(64 << 10), results, i))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(30))
    took = time.monotonic() - t0
    bad = [r for r in results if r is not True]
    if bad:
        raise Fail("clients failed: %s" % bad[:3])
    if took >= SILENT_HS:
        raise Fail("20 clients took %.1fs while 20 others were silent (timeout %g s)"
                   % (took, SILENT_HS))
    lines = wait_sessions(k, 40, 30)
    timed_out = [ln for ln in lines if 'end=handshake-failed reason="TLS handshake timed out '
                 'after %d ms: the peer stopped answering (raise --handshake-timeout if it '
                 'is just slow)"' % round(SILENT_HS * 1000) in ln]
    if len(timed_out) != 20:
        raise Fail("%d of 20 silent clients timed out:\n%s" % (len(timed_out), "\n".join(lines)))
    for s in silent:
        s.close()
    stop(k, "ktlsctl listen --echo -k")


@suite.case("backend refusing: that session ends with internal_error and one line, "
            "the server goes on", timeout=60)
def _refused():
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dport = dead.getsockname()[1]     # bound, not listening: refused
    k, port = serve("--forward", "127.0.0.1:%d" % dport)
    c = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca, *SERVE_ARGS,
                stdin=b"hello\n")
    check_exit(c, 9, 30, "ktlsctl connect to a server whose backend refuses")
    if "ktlsctl: the peer ended the connection with fatal alert 'internal_error'" not in c.stderr:
        raise Fail("the client was not told by an alert\n" + c.describe())
    line = wait_sessions(k, 1, 10)[0]
    want = ('backend=127.0.0.1:%d version=TLS1.3 cipher=AES-256-GCM channel=%s path=%s '
            'rx=0 tx=0 ' % (dport, CHANNEL, PATH))
    tail = 'end=backend-failed reason="cannot connect to backend 127.0.0.1:%d: Connection refused"' % dport
    if want not in line or not line.endswith(tail):
        raise Fail("log line %r\nwanted ...%s...%s" % (line, want, tail))
    if not k.alive():
        raise Fail("the server exited\n" + k.describe())
    stop(k, "ktlsctl listen --forward")
    dead.close()


@suite.case("backend closing at once: the client gets close_notify, the session closes",
            timeout=60)
def _backend_closes():
    be, bport = backend("close")
    k, port = serve("--forward", "127.0.0.1:%d" % bport)
    t = py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                             server_hostname="localhost", suppress_ragged_eofs=False)
    if t.recv(100) != b"":
        raise Fail("data from a backend that sent none")
    t.unwrap()                        # close_notify came; ours answers it
    t.close()
    line = wait_sessions(k, 1, 10)[0]
    if not line.endswith("rx=0 tx=0 duration=%s end=closed" % line.split("duration=")[1].split()[0]):
        raise Fail("log line %r" % line)
    stop(k, "ktlsctl listen --forward")


@suite.case("client truncating: the backend gets every byte and a FIN, the line says truncated",
            timeout=60)
def _truncated():
    got, done = bytearray(), threading.Event()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def sink():
        c, _ = lsock.accept()
        while True:
            d = c.recv(65536)
            if not d:
                break
            got.extend(d)
        done.set()
        c.close()
    threading.Thread(target=sink, daemon=True).start()
    k, port = serve("--forward", "127.0.0.1:%d" % lsock.getsockname()[1])
    data = random_bytes(300 << 10)
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    t = py_ctx().wrap_socket(raw, server_hostname="localhost")
    t.sendall(data)
    raw_fd = socket.socket(fileno=t.detach())   # no close_notify: just the TCP end
    raw_fd.shutdown(socket.SHUT_WR)
    if not done.wait(scaled(20)):
        raise Fail("the backend got no FIN (%d bytes)\n%s" % (len(got), k.describe()))
    if sha(bytes(got)) != sha(data):
        raise Fail("the backend got %d of %d bytes, or different ones" % (len(got), len(data)))
    line = wait_sessions(k, 1, 10)[0]
    tail = ('end=truncated reason="connection truncated: the peer closed without close_notify"')
    if not line.endswith(tail) or " rx=%d " % len(data) not in line:
        raise Fail("log line %r" % line)
    raw_fd.close()
    stop(k, "ktlsctl listen --forward")


@suite.case("SIGTERM under load: every client gets close_notify after a whole prefix of "
            "its echo; exit 143 when all answer", timeout=120)
def _sigterm():
    be, bport = backend()
    k, port = serve("--forward", "127.0.0.1:%d" % bport)
    sigterm_under_load(k, port, py_ctx(), 20, "ktlsctl listen --forward")


@suite.case("SIGTERM with a client that never answers close_notify: cut off at "
            "--drain-timeout, exit 12", timeout=60)
def _drain_timeout():
    k, port = serve("--echo", "-k", "--drain-timeout", "1")
    t = py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                             server_hostname="localhost")
    t.sendall(b"ping")
    if t.recv(4) != b"ping":
        raise Fail("no echo")
    k.signal(signal.SIGTERM)
    if t.recv(10) != b"":             # our close_notify; the client does not answer
        raise Fail("data after SIGTERM")
    check_exit(k, 12, 20, "ktlsctl listen --echo -k, a client silent after SIGTERM")
    line = log_lines(k)[0]
    tail = ('rx=4 tx=4 duration=%s end=drain-timeout reason="still open 1000 ms after the '
            'stop (--drain-timeout)"' % line.split("duration=")[1].split()[0])
    if not line.endswith(tail):
        raise Fail("log line %r" % line)
    if ("ktlsctl: 1 of 1 sessions were still open at the drain timeout and were cut off "
            "(raise --drain-timeout to wait longer)") not in k.stderr:
        raise Fail("no summary line\n" + k.describe())
    t.close()


@suite.case("--max-conns 2: a third client waits for a slot, then is served", timeout=60)
def _max_conns():
    k, port = serve("--echo", "-k", "--max-conns", "2")
    held = [py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                                 server_hostname="localhost") for _ in range(2)]
    for t in held:
        t.sendall(b"x")
        if t.recv(1) != b"x":
            raise Fail("no echo")
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    third = py_ctx().wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    third.settimeout(scaled(1.5))
    try:
        third.do_handshake()
        raise Fail("the third client was served while 2 sessions were open (--max-conns 2)")
    except (socket.timeout, ssl.SSLError):
        pass
    held[0].unwrap()
    held[0].close()
    wait_sessions(k, 1, 10)
    third.settimeout(scaled(20))
    third.do_handshake()
    third.sendall(b"y")
    if third.recv(1) != b"y":
        raise Fail("no echo for the third client")
    for t in (held[1], third):
        t.unwrap()
        t.close()
    wait_sessions(k, 3, 10)
    stop(k, "ktlsctl listen --echo -k --max-conns 2")


@suite.case("--log-format json: one object per session, every key exact (a refused "
            "backend, a command's exit)", timeout=60)
def _log_json():
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dport = dead.getsockname()[1]     # bound, not listening: refused
    for args, want in (
            (["--forward", "127.0.0.1:%d" % dport],
             {"backend": "127.0.0.1:%d" % dport, "sni": "localhost", "rx": 0, "tx": 0,
              "end": "backend-failed",
              "reason": "cannot connect to backend 127.0.0.1:%d: Connection refused" % dport}),
            (["--exec", "head -c 5; exit 3"],
             {"sni": "localhost", "rx": 11, "tx": 5, "exit": 3, "end": "closed"})):
        k, port = serve("--log-format", "json", *args)
        raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
        me = "%s:%d" % raw.getsockname()[:2]
        t = py_ctx().wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
        t.sendall(b"hello world")
        try:
            recv_to_eof(t)
            t.unwrap()
        except (ssl.SSLError, OSError):
            pass                       # the refused backend's alert
        t.close()
        if not k.wait_until(lambda p: '"event":"session"' in p.stderr, 20):
            raise Fail("no session object\n" + k.describe())
        line = [ln for ln in k.stderr.splitlines() if '"event":"session"' in ln][0]
        got = json.loads(line)
        if "pid" in got:
            if not isinstance(got["pid"], int) or got["pid"] <= 0:
                raise Fail("pid %r" % got["pid"])
            want["pid"] = got["pid"]
        if not isinstance(got.get("duration"), float) or not 0 <= got["duration"] < scaled(20):
            raise Fail("duration %r" % got.get("duration"))
        want.update({"event": "session", "session": 1, "peer": me, "version": "TLS1.3",
                     "cipher": "AES-256-GCM", "channel": CHANNEL, "path": PATH,
                     "duration": got["duration"]})
        if got != want:
            raise Fail("log object %r\nwanted %r" % (got, want))
        stop(k, "ktlsctl listen --log-format json %s" % args[0])
    dead.close()


class GnutlsClient:
    """A TLS client on GnuTLS itself (ctypes): unlike Python's ssl, it can
    send KeyUpdate(update_requested) while it is not reading, and it counts
    the KeyUpdates it receives.  Blocking socket; no certificate check (the
    other cases check ours)."""

    KU_PEER, HS_KEY_UPDATE, HOOK_POST = 1, 24, 1

    def __init__(self, port):
        self.g = ctypes.CDLL("libgnutls.so.30")
        self.g.gnutls_strerror.restype = ctypes.c_char_p
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=None)
        self.cred, self.s = ctypes.c_void_p(), ctypes.c_void_p()
        self.key_updates_in = 0
        hook_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                                  ctypes.c_uint, ctypes.c_void_p)

        def hook(session, htype, when, incoming, msg):
            if incoming:
                self.key_updates_in += 1
            return 0
        self.hook = hook_t(hook)        # kept alive as long as the session
        self.check(self.g.gnutls_certificate_allocate_credentials(ctypes.byref(self.cred)))
        self.check(self.g.gnutls_init(ctypes.byref(self.s), 2))          # GNUTLS_CLIENT
        self.check(self.g.gnutls_set_default_priority(self.s))
        self.check(self.g.gnutls_credentials_set(self.s, 1, self.cred))  # CRD_CERTIFICATE
        self.g.gnutls_handshake_set_hook_function(self.s, self.HS_KEY_UPDATE, self.HOOK_POST,
                                                  self.hook)
        fd = self.sock.fileno()
        self.g.gnutls_transport_set_int2(self.s, fd, fd)
        self.retry(lambda: self.g.gnutls_handshake(self.s), "handshake")

    def check(self, rc, what="setup"):
        if rc < 0:
            raise Fail("GnuTLS %s: %s" % (what, self.g.gnutls_strerror(rc).decode()))
        return rc

    def retry(self, fn, what):
        while True:
            rc = fn()
            if rc >= 0 or self.g.gnutls_error_is_fatal(rc):
                return self.check(rc, what)

    def key_update_request(self):
        self.retry(lambda: self.g.gnutls_session_key_update(self.s, self.KU_PEER), "KeyUpdate")

    def recv(self, n=1 << 16):
        buf = self.buf = getattr(self, "buf", None) or ctypes.create_string_buffer(n)
        got = self.retry(lambda: self.g.gnutls_record_recv(self.s, buf, n), "receive")
        return buf.raw[:got]

    def close(self):
        self.g.gnutls_bye(self.s, 1)       # GNUTLS_SHUT_WR: close_notify
        self.sock.close()
        self.g.gnutls_deinit(self.s)
        self.g.gnutls_certificate_free_credentials(self.cred)


def send_queue(port):
    """The Send-Q of the server's established sockets on port (ss)."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.strip())


@suite.case("--forward: a client that stops reading, then asks for a KeyUpdate: the answer "
            "waits for room without holding up the loop (another client is served "
            "meanwhile), then every byte and the answer arrive", timeout=240, when=REKEY)
def _owed_key_update():
    be, bport = backend("source")
    k, port = serve("--forward", "127.0.0.1:%d" % bport)
    a = GnutlsClient(port)
    # a reads nothing: its TCP receive window and the server's send buffer
    # fill, and then the server's Send-Q stops growing.
    last, steady = -1, 0
    deadline = time.monotonic() + scaled(60)
    while steady < 5:
        if time.monotonic() > deadline:
            raise Fail("the server's send queue to the stalled client never settled\n"
                       + k.describe())
        q = send_queue(port)
        steady = steady + 1 if q == last and q > 0 else 0
        last = q
        time.sleep(0.2)
    a.key_update_request()
    # The server cannot answer yet; another client must not wait for it.
    t = py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                             server_hostname="localhost")
    got = b""
    while len(got) < len(SOURCE_CHUNK):
        d = t.recv(65536)
        if not d:
            break
        got += d
    if got[:len(SOURCE_CHUNK)] != SOURCE_CHUNK:
        raise Fail("the second client got %d bytes, not the source's first chunk" % len(got))
    t.close()
    if a.key_updates_in or not k.alive():
        raise Fail("the server answered with no room, or ended\n" + k.describe())
    # Now read: every byte, and the server's KeyUpdate (its answer) once.
    out = bytearray()
    while True:
        d = a.recv()
        if not d:
            break
        out.extend(d)
    a.close()
    if sha(bytes(out)) != sha(SOURCE_CHUNK * (SOURCE_SIZE // len(SOURCE_CHUNK))):
        raise Fail("the stalled client got %d bytes, not the source's %d" % (len(out), SOURCE_SIZE))
    if a.key_updates_in != 1:
        raise Fail("the client received %d KeyUpdates, not one" % a.key_updates_in)
    lines = [ln for ln in wait_sessions(k, 2, 30) if " rx=0 tx=%d " % SOURCE_SIZE in ln]
    if len(lines) != 1 or not lines[0].endswith(" end=closed"):
        raise Fail("the stalled client's log line: %r\n%s" % (lines, k.describe()))
    stop(k, "ktlsctl listen --forward")


EMFILE_LINE = re.compile(r"cannot accept: Too many open files with \d+ sessions open; not "
                         r"accepting for 1 s or until a session ends \(raise 'ulimit -n' or "
                         r"lower --max-conns\)")


@suite.case("out of descriptors (a limit of 8 more than at start): accepting pauses with "
            "one line, and 40 clients at once are all served, every hash equal", timeout=180)
def _emfile():
    k, port = serve("--echo", "-k")
    # ktlsctl raised its soft limit to the hard one at start: lower both.
    limit = len(os.listdir("/proc/%d/fd" % k.pid)) + 8
    subprocess.run(["prlimit", "--pid", str(k.pid), "--nofile=%d:%d" % (limit, limit)],
                   check=True)
    n, size = 40, sized(256 << 10)
    datas = [random_bytes(size) for _ in range(n)]
    results = [None] * n
    threads = [threading.Thread(target=py_echo, args=(py_ctx(), port, datas[i], results, i))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(300))
    bad = [r for r in results if r is not True]
    if bad:
        raise Fail("%d of %d clients failed:\n%s\n%s" % (len(bad), n, "\n".join(map(str, bad[:5])),
                                                       k.describe()))
    lines = wait_sessions(k, n, 30)
    if [ln for ln in lines if not ln.endswith(" end=closed")]:
        raise Fail("sessions not closed:\n" + "\n".join(lines))
    if not [ln for ln in kt_lines(k) if EMFILE_LINE.fullmatch(ln)]:
        raise Fail("no 'cannot accept: Too many open files' line\n" + k.describe())
    stop(k, "ktlsctl listen --echo -k out of descriptors")


def children(pid):
    """The processes whose parent is pid, zombies included (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append((int(d), fields[0]))
    return out


@suite.case("--exec cat: 30 clients at once (ktlsctl, python), %s each, every hash "
            "equal, exit=0 in every line, no child left" % human(EXEC_SIZE), timeout=300)
def _exec_many():
    k, port = serve("--exec", "cat")
    n, size = 30, EXEC_SIZE
    procs, threads, datas = {}, [], {}
    results = [None] * n
    for i in range(n):
        datas[i] = data = random_bytes(size)
        if i % 2:
            procs[i] = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca,
                               *EOF_CLOSE, *SERVE_ARGS, stdin=data)
        else:
            t = threading.Thread(target=py_echo, args=(py_ctx(), port, data, results, i))
            t.start()
            threads.append(t)
    for t in threads:
        t.join(scaled(200))
    for i, p in procs.items():
        rc = p.wait(200)
        ok = sha(p.stdout) == sha(datas[i])
        results[i] = True if ok and rc == 0 else "ktlsctl: exit %s, %d bytes\n%s" % (
            rc, len(p.stdout), p.describe())
    bad = [r for r in results if r is not True]
    if bad:
        raise Fail("%d of %d clients failed:\n%s" % (len(bad), n, "\n".join(map(str, bad[:5]))))
    lines = wait_sessions(k, n, 30)
    good = [ln for ln in lines if ln.endswith(" exit=0 end=closed") and " pid=" in ln
            and " rx=%d tx=%d " % (size, size) in ln]
    if len(good) != n:
        raise Fail("%d of %d lines closed with exit=0:\n%s" % (len(good), n, "\n".join(lines)[:3000]))
    left = children(k.pid)
    if left:
        raise Fail("children of the server left after every session ended: %s" % left)
    stop(k, "ktlsctl listen --exec cat")


@suite.case("--exec: the command's KTLSCTL_* environment, exact", timeout=60)
def _exec_env():
    # The server's environment passes to the command, so the harness's own
    # KTLSCTL_* settings (KTLSCTL_TEST_*, KTLSCTL_VALGRIND: the VM tier and
    # check-valgrind set them) are kept from it; a stale KTLSCTL_SNI is
    # given instead: ours must not reach the command.
    env = {n: v for n, v in os.environ.items() if not n.startswith("KTLSCTL_")}
    env["KTLSCTL_SNI"] = "stale"
    k, port = serve("--exec", "env | grep ^KTLSCTL_ | sort", "--alpn", "x", "--alpn", "y",
                    env=env)
    # The client prefers y; our order (x first) wins.
    ctx = py_ctx()
    ctx.set_alpn_protocols(["y", "x"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    me = "%s:%d" % raw.getsockname()[:2]
    t = ctx.wrap_socket(raw, server_hostname="localhost")
    got = recv_to_eof(t)
    t.unwrap()
    t.close()
    want = ("KTLSCTL_ALPN=x\nKTLSCTL_CHANNEL=%s\nKTLSCTL_CIPHER=AES-256-GCM\n"
            "KTLSCTL_PEER=%s\nKTLSCTL_SESSION=1\nKTLSCTL_SNI=localhost\n"
            "KTLSCTL_VERSION=TLS1.3\n" % (CHANNEL, me))
    if got.decode() != want:
        raise Fail("environment %r\nwanted %r" % (got.decode(), want))
    line = wait_sessions(k, 1, 10)[0]
    if not line.endswith(" exit=0 end=closed"):
        raise Fail("log line %r" % line)
    stop(k, "ktlsctl listen --exec env")


@suite.case("--exec: a command that exits early ends the session cleanly, exit=N; one "
            "that writes after the client's close_notify (TLS 1.3) is still heard", timeout=60)
def _exec_early():
    k, port = serve("--exec", "head -c 5; exit 3")
    t = py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                             server_hostname="localhost", suppress_ragged_eofs=False)
    t.sendall(b"hello world")
    got = recv_to_eof(t)
    if got != b"hello":
        raise Fail("got %r" % got)
    t.unwrap()
    t.close()
    line = wait_sessions(k, 1, 10)[0]
    if not line.endswith(" exit=3 end=closed"):
        raise Fail("log line %r" % line)
    stop(k, "ktlsctl listen --exec head")
    k, port = serve("--exec", "cat >/dev/null; echo after-eof")
    c = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca, "--tls1.3",
                *EOF_CLOSE, *SERVE_ARGS, stdin=b"some input\n")
    check_exit(c, 0, 30, "ktlsctl connect --eof close to --exec")
    if c.stdout != b"after-eof\n":
        raise Fail("output after our close_notify: %r" % c.stdout)
    line = wait_sessions(k, 1, 10)[0]
    if not line.endswith(" exit=0 end=closed"):
        raise Fail("log line %r" % line)
    stop(k, "ktlsctl listen --exec")


@suite.case("--exec with --forward or --echo: usage error, exit 2, exact", timeout=30)
def _exec_usage():
    cert, key = certs().srv_ec
    for extra in (["--forward", "127.0.0.1:1"], ["--echo"]):
        p = ktlsctl("listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--exec", "cat", *extra)
        check_exit(p, 2, 10, "listen --exec %s" % extra[0])
        want = ("ktlsctl: --echo, --forward and --exec exclude each other: give one "
                "(see 'ktlsctl listen --help')\n")
        if p.stderr != want:
            raise Fail("stderr %r\nwanted %r" % (p.stderr, want))


@suite.case("SIGTERM with a running command: its input closes, its output still "
            "arrives, then close_notify; exit 143", timeout=60)
def _exec_sigterm():
    k, port = serve("--exec", "cat >/dev/null; echo stopped")
    t = py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                             server_hostname="localhost", suppress_ragged_eofs=False)
    t.sendall(b"x")
    if not wait_for(lambda: children(k.pid), 10):
        raise Fail("no command started\n" + k.describe())
    k.signal(signal.SIGTERM)
    got = recv_to_eof(t)
    if got != b"stopped\n":
        raise Fail("got %r" % got)
    t.unwrap()
    t.close()
    check_exit(k, 143, 20, "ktlsctl listen --exec after SIGTERM")
    line = log_lines(k)[0]
    if not line.endswith(" exit=0 end=closed"):
        raise Fail("log line %r" % line)


# ---------------------------------------------------------- SIGHUP reload

def sighup(k, line, n=1):
    """SIGHUP, and wait for the n-th occurrence of its exact line."""
    k.signal(signal.SIGHUP)
    if not k.wait_until(lambda p: p.stderr.count(line) >= n, 20):
        raise Fail("no line %r after SIGHUP\n%s" % (line, k.describe()))


def tls_client(port, **kw):
    return py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                                server_hostname="localhost", **kw)


def peer_fingerprint(t):
    return sha(t.getpeercert(binary_form=True))


def echo_check(t, what, size=16 << 10):
    data = os.urandom(size)
    t.sendall(data)
    got = bytearray()
    while len(got) < size:
        d = t.recv(65536)
        if not d:
            break
        got.extend(d)
    if sha(bytes(got)) != sha(data):
        raise Fail("%s: %d of %d bytes came back, or different ones" % (what, len(got), size))


def served_fingerprint(port):
    """A whole session: handshake, one echo, close_notify both ways."""
    t = tls_client(port)
    fp = peer_fingerprint(t)
    echo_check(t, "a new client", 100)
    t.unwrap()
    t.close()
    return fp


def accepted(port):
    """Whether the listener on port has no connection waiting in its accept
    queue (/proc/net/tcp: a LISTEN socket's rx_queue is its backlog)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    return int(parts[4].split(":")[1], 16) == 0
    raise Fail("nothing listens on port %d" % port)


@suite.case("SIGHUP: new handshakes get the new certificate and key, a session open across "
            "it keeps its own and closes; one exact line", timeout=60)
def _reload():
    a, b = certs().srv_ec, certs().srv_rsa       # different keys (ECDSA, RSA)
    cert, key = reload_files(suite.tmpdir(), a)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SERVE_ARGS, "--echo", "-k")
    old = tls_client(port)
    if peer_fingerprint(old) != fingerprint(a[0]):
        raise Fail("the first client did not get certificate A")
    echo_check(old, "the client open across the reload, before")
    put_pair(cert, key, b)
    sighup(k, reloaded_line(cert, key, b[0]))
    if served_fingerprint(port) != fingerprint(b[0]):
        raise Fail("a client after the reload did not get certificate B\n" + k.describe())
    echo_check(old, "the client open across the reload, after", 256 << 10)
    old.unwrap()
    old.close()
    lines = wait_closed(k, 2)
    both = " rx=%d tx=%d " % ((16 << 10) + (256 << 10), (16 << 10) + (256 << 10))
    if not any(both in ln for ln in lines):
        raise Fail("no line with%sfor the client open across the reload:\n%s"
                   % (both, "\n".join(lines)))
    other = [ln for ln in k.stderr.splitlines() if not re.match(
        r"ktlsctl: (listening on |session \d+ |reloaded credentials from )", ln)]
    if other:
        raise Fail("other lines on stderr:\n" + "\n".join(other))
    stop(k, "ktlsctl listen --echo -k after a reload")


@suite.case("SIGHUP with broken files (key of another certificate, no key, no PEM): one "
            "exact line each, the old credentials stay, the server goes on", timeout=60)
def _reload_broken():
    a, b = certs().srv_ec, certs().srv_rsa
    cert, key = reload_files(suite.tmpdir(), a)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SERVE_ARGS, "--echo", "-k")
    held = tls_client(port)
    fa = fingerprint(a[0])
    tail = "; new handshakes still use the old ones\n"

    def mismatch():      # the key of B with the certificate of A
        put_pair(cert, key, (a[0], b[1]))
        return ("ktlsctl: cannot reload credentials: the key in '%s' does not belong to the "
                "certificate in '%s'" % (key, cert) + tail)

    def missing():
        os.unlink(key)
        return ("ktlsctl: cannot reload credentials: cannot read key file '%s': No such file "
                "or directory" % key + tail)

    def garbage():       # GnuTLS's reason comes between the two parts
        put_pair(cert, key, b)
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        return ("ktlsctl: cannot reload credentials: cannot load certificate '%s' with key "
                "'%s': " % (cert, key), " (both must be PEM)" + tail)

    for n, step in enumerate((mismatch, missing, garbage), 1):
        want = step()
        k.signal(signal.SIGHUP)
        if not k.wait_until(lambda p: p.stderr.count("ktlsctl: cannot reload") >= n, 20):
            raise Fail("%s: no line after SIGHUP\n%s" % (step.__name__, k.describe()))
        got = [ln + "\n" for ln in k.stderr.splitlines()
               if ln.startswith("ktlsctl: cannot reload")][n - 1]
        ok = got == want if isinstance(want, str) else (
            got.startswith(want[0]) and got.endswith(want[1]) and len(got) > len(want[0] + want[1]))
        if not ok:
            raise Fail("%s: line %r\nwanted %r" % (step.__name__, got, want))
        if served_fingerprint(port) != fa:
            raise Fail("%s: a new client did not get the old certificate\n%s"
                       % (step.__name__, k.describe()))
    # fixed: the next SIGHUP takes
    put_pair(cert, key, b)
    sighup(k, reloaded_line(cert, key, b[0]))
    if served_fingerprint(port) != fingerprint(b[0]):
        raise Fail("no certificate B after the files were fixed\n" + k.describe())
    echo_check(held, "the client open across the failed reloads")
    held.unwrap()
    held.close()
    wait_closed(k, 5)
    stop(k, "ktlsctl listen --echo -k after failed reloads")


@suite.case("SIGHUP during handshakes: a client accepted but silent, and one whose Finished "
            "is held back, complete after the reload with the certificate they started with",
            timeout=60)
def _reload_mid_handshake():
    # The handshakes start with A from a first reload, so that the server
    # holds the only reference to it and the second reload (to B) drops
    # it: only the sessions' own references keep it alive then.
    a, b = certs().srv_rsa, certs().srv_ec
    cert, key = reload_files(suite.tmpdir(), b)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SERVE_ARGS, "--echo", "-k")
    put_pair(cert, key, a)
    sighup(k, reloaded_line(cert, key, a[0]))
    # X: connected, accepted, its ClientHello not sent yet
    xraw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    deadline = time.monotonic() + scaled(10)
    while not accepted(port):
        if time.monotonic() > deadline:
            raise Fail("the server did not accept\n" + k.describe())
        time.sleep(0.01)
    # Y: TLS 1.3 through memory BIOs; the server's whole flight has come,
    # our Finished is held back
    ctx = py_ctx()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    yin, yout = ssl.MemoryBIO(), ssl.MemoryBIO()
    y = ctx.wrap_bio(yin, yout, server_hostname="localhost")
    yraw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    while True:
        try:
            y.do_handshake()
            break
        except ssl.SSLWantReadError:
            if yout.pending:
                yraw.sendall(yout.read())
            d = yraw.recv(65536)
            if not d:
                raise Fail("the server closed Y's handshake\n" + k.describe())
            yin.write(d)
    finished = yout.read()           # not sent yet
    if not finished:
        raise Fail("no client Finished to hold back")
    put_pair(cert, key, b)
    sighup(k, reloaded_line(cert, key, b[0]))
    # X's handshake runs now, with what the server started it with
    x = py_ctx().wrap_socket(xraw, server_hostname="localhost")
    if peer_fingerprint(x) != fingerprint(a[0]):
        raise Fail("a client accepted before the reload got the new certificate")
    echo_check(x, "the client accepted before the reload")
    # Y completes, and its session works
    if sha(y.getpeercert(binary_form=True)) != fingerprint(a[0]):
        raise Fail("Y saw another certificate")
    data = os.urandom(4096)
    y.write(data)
    yraw.sendall(finished + yout.read())
    got = bytearray()
    while len(got) < len(data):
        try:
            got.extend(y.read(65536))
        except ssl.SSLWantReadError:
            d = yraw.recv(65536)
            if not d:
                break
            yin.write(d)
    if bytes(got) != data:
        raise Fail("Y: %d of %d bytes echoed, or different ones" % (len(got), len(data)))
    if served_fingerprint(port) != fingerprint(b[0]):
        raise Fail("a client after the reload did not get certificate B")
    x.unwrap()
    x.close()
    try:
        y.unwrap()
    except ssl.SSLWantReadError:
        yraw.sendall(yout.read())
        while True:
            d = yraw.recv(65536)
            if not d:
                break
            yin.write(d)
            try:
                y.unwrap()
                break
            except ssl.SSLWantReadError:
                pass
    yraw.close()
    wait_closed(k, 3)
    stop(k, "ktlsctl listen --echo -k after a reload during handshakes")


@suite.case("SIGHUP with --verify-client: --cafile is read again too; a CA that does not "
            "sign the client refuses it, a file without PEM keeps the old CA", timeout=60)
def _reload_cafile():
    cert, key = reload_files(suite.tmpdir(), certs().srv_ec)
    ca = os.path.join(os.path.dirname(cert), "ca.pem")
    replace_file(ca, certs().ca)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--verify-client", "--cafile", ca,
                             *SERVE_ARGS, "--echo", "-k")

    def client_session():
        """True when a client with a certificate from the test CA is served."""
        ctx = py_ctx()
        ctx.load_cert_chain(*certs().client)
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                            server_hostname="localhost")
        try:
            echo_check(t, "a client with a certificate", 100)
            t.unwrap()
            return True
        except (ssl.SSLError, OSError, Fail):    # refused: an alert, or the TCP end
            return False
        finally:
            t.close()
    if not client_session():
        raise Fail("the client was refused before any reload\n" + k.describe())
    line = ("ktlsctl: reloaded credentials from '%s', '%s' and '%s': new handshakes use them "
            "(certificate subject 'CN=localhost', SHA-256 %s)\n"
            % (cert, key, ca, fingerprint(certs().srv_ec[0])))
    replace_file(ca, certs().ca2)
    sighup(k, line, 1)
    if client_session():
        raise Fail("a client the new CA does not sign was served\n" + k.describe())
    with open(ca + ".new", "w") as f:
        f.write("no certificate here\n")
    os.replace(ca + ".new", ca)
    bad = ("ktlsctl: cannot reload credentials: CA file '%s' holds no PEM certificate; "
           "new handshakes still use the old ones\n" % ca)
    sighup(k, bad)
    if client_session():
        raise Fail("the failed reload did not keep the unrelated CA\n" + k.describe())
    replace_file(ca, certs().ca)
    sighup(k, line, 2)
    if not client_session():
        raise Fail("the client was refused after the test CA came back\n" + k.describe())
    ends = [ln.split(" end=")[1].split()[0] for ln in wait_sessions(k, 4, 10)]
    if ends != ["closed", "handshake-failed", "handshake-failed", "closed"]:
        raise Fail("ends %s\n%s" % (ends, k.describe()))
    for ln in log_lines(k)[1:3]:
        if not ln.endswith('reason="client certificate rejected: The certificate is NOT trusted. '
                           'The certificate issuer is unknown."'):
            raise Fail("log line %r" % ln)
    stop(k, "ktlsctl listen --verify-client after reloads")



@suite.case("SIGHUP to a single-session listen still ends it (its default action), as "
            "before", timeout=30)
def _sighup_single():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SERVE_ARGS)
    k.signal(signal.SIGHUP)
    check_exit(k, -signal.SIGHUP, 10, "ktlsctl listen (one session) after SIGHUP")


if __name__ == "__main__":
    sys.exit(suite.main())
