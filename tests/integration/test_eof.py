#!/usr/bin/env python3
"""The end of our input and the peer's answer: --eof against real servers.

ktlsctl used to send close_notify the moment its input ended.  Servers that
take a close_notify as the end of the whole connection (every TLS 1.2
server must, RFC 5246 7.2.1; many TLS 1.3 servers do) then dropped the rest
of their answer, and the README's own request/response example lost data.

  readme:     the README's example, verbatim apart from host, port and the
              channel under test, against HTTP servers of three TLS stacks
              (gnutls-serv --http: GnuTLS; nginx: OpenSSL 3; node's https
              module), TLS 1.2 and 1.3, answers of 5 bytes to 24 MiB (bulk
              sizes under KTLSCTL_TEST_DATA_SCALE) read by
              a slow consumer: every byte by hash, exit 0, and the time from
              the last byte to the exit reported (a note, never asserted).
  mode:       each --eof mode against those servers, and against peers that
              wait for us to close first (ktlsctl listen --echo, gnutls-serv
              --echo, openssl s_server), each with its expected outcome.
  listen:     listen's standard input ends while the client still uploads.
  commands:   /close ends the input the same way.
  unanswered: peers that end the connection after our close_notify without
              answering it: exit 0 and a notice when nothing came after ours,
              exit 8 when data did.

KTLSCTL_TEST_CHANNEL=kernel runs every case on the kernel channel (the VM
tier does, on both kernels).

Peer behaviour relied on (Debian 12: GnuTLS 3.7.9, OpenSSL 3.0, nginx 1.22,
node 18 or later, Python 3.11):
  gnutls-serv --http  answers a request with HTTP/1.0, the file of
                      --httpdata, then close_notify; on a close_notify that
                      arrives while it is still sending, it resets the
                      connection (TLS 1.2) and drops the rest.
  nginx               HTTP/1.0: answers, then close_notify; on an early
                      close_notify from the client it closes, cutting the
                      answer (TLS 1.2 with a reset, TLS 1.3 with a FIN).
  node https          answers, then close_notify; on an early close_notify
                      it answers with close_notify at once, before its data.
  Python http.server  over ssl: answers, then closes the socket without
                      close_notify (so the data cannot be told complete).
"""

import os
import re
import signal
import socket
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled, sized  # noqa: E402
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import note, Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, Proc, quote,
    wait_listening)
from ktlsctl_test.data import check_data, hex_lines, sha  # noqa: E402
from ktlsctl_test.peers import require_programs, start_gnutls_serv, start_s_server  # noqa: E402
from ktlsctl_test.pytls import py_server_ctx, PyTls, ServerThread  # noqa: E402

require_programs("gnutls-serv", "certtool", "openssl", "nginx", "node")

suite = Suite("test_eof", case_timeout=120)
VERSIONS = ("1.2", "1.3")


def size_name(n):
    """5 -> 'tiny', 65536 -> '64k', 5000000 -> '5M', 25165824 -> '24M'."""
    if n == 5:
        return "tiny"
    for unit, div in (("M", 1 << 20), ("M", 1000000), ("k", 1 << 10), ("k", 1000)):
        if n >= div and n % div == 0:
            return "%d%s" % (n // div, unit)
    return "%dB" % n


# name -> size: a few bytes to tens of MiB; the bulk ones under
# KTLSCTL_TEST_DATA_SCALE (an eighth in the VM tier, where a 24 MiB answer
# took gnutls-serv past the 30 s after which it ends every connection,
# serv.c "Scheduling inactive connection for close", cleanly: exit 0 with
# part of the answer).
MID = size_name(sized(5000000))
BIG = size_name(sized(24 << 20))
SIZES = {"tiny": 5, "64k": 64 << 10, MID: sized(5000000), BIG: sized(24 << 20)}
# A consumer slower than loopback: what made the old close-at-EOF lose
# data (the server is still writing when our close_notify arrives).
SLOW_READER = (1 << 16, 0.002)
DEFAULT_LINGER = 2.0     # CLI_LINGER_DEFAULT_MS
# The quiet time of the cases that ask a server for an answer and expect
# all of it with the default --eof.  Where timeouts are scaled (an emulated
# CPU shared with other guests) servers were seen silent for longer than
# the default scaled (6 s): gnutls-serv before the first byte of a 5 MB
# answer, node at 19 MB of 24, Python at 3.5 MB of 5.  There these cases
# give --eof linger=ANSWER_LINGER, which a passing case never waits out:
# every one of these servers ends the connection itself after its answer.
ANSWER_LINGER = scaled(10) if scaled(1) != 1 else None

TRUNC_AFTER = re.compile(
    r"^ktlsctl: connection truncated: the peer sent (\d+) bytes after our close_notify, "
    r"then (closed|reset the connection) without its own: they may be incomplete "
    r"\(--eof linger or wait lets it finish first\)$", re.M)
UNANSWERED = ("ktlsctl: the peer closed without answering our close_notify: whatever it "
              "had not sent by then is lost (nothing arrived after ours)")


def certs():
    return suite.certs


def tmp(name):
    return os.path.join(suite.tmpdir(), name)


# ------------------------------------------------------------ the content

_files = {}


def content(name):
    """The bytes served as /NAME (random, made once)."""
    if name not in _files:
        data = b"hello" if name == "tiny" else os.urandom(SIZES[name])
        d = tmp("www")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        _files[name] = data
    return _files[name]


def body_of(what, out):
    """The body of an HTTP response, checking the status line."""
    head, sep, body = bytes(out).partition(b"\r\n\r\n")
    if not sep or not re.match(rb"HTTP/1\.[01] 200 ", head):
        raise Fail("%s: not an HTTP 200 response: %r" % (what, bytes(out[:200])))
    return body


# ------------------------------------------------------------ the servers
# Started once, on first use, and shared by the cases (shared=True).

_servers = {}


def server(kind, name=MID):
    """(port, proc) of a running HTTP server of this kind serving /name."""
    key = (kind, name if kind == "gnutls-serv" else None)
    if key not in _servers:
        _servers[key] = {"gnutls-serv": start_gnutls_http, "nginx": start_nginx,
                         "node": start_node, "python": start_python}[kind](name)
    port, proc = _servers[key]
    if not proc.alive():
        raise Fail("the %s server died earlier\n%s" % (kind, proc.describe()))
    return port


def start_gnutls_http(name):
    content(name)
    cert, key = certs().srv_ec
    p, port = start_gnutls_serv(cert, key, echo=False, shared=True,
                                extra=["--http", "--httpdata", os.path.join(tmp("www"), name)])
    return port, p


def start_listening(kind, argv_for_port, tries=5):
    last = None
    for _ in range(tries):
        port = free_port()
        p = Proc(argv_for_port(port), name=kind, stdin=None, shared=True,
                 stdout_cap=1 << 16, stderr_cap=1 << 16)
        if wait_listening(port, p, timeout=30):
            return port, p
        last = p
        p.kill()
    raise Fail("%s did not start listening\n%s" % (kind, last.describe() if last else ""))


def start_nginx(_name):
    for n in SIZES:
        content(n)
    d = tmp("nginx")
    os.makedirs(d, exist_ok=True)
    cert, key = certs().srv_ec

    def argv(port):
        conf = os.path.join(d, "nginx-%d.conf" % port)
        temps = "".join("  %s_temp_path %s/%s;\n" % (t, d, t)
                        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(conf, "w") as f:
            f.write("daemon off;\nmaster_process off;\nworker_processes 1;\n"
                    "pid %s/nginx.pid;\nerror_log stderr warn;\n"
                    "events { worker_connections 256; }\n"
                    "http {\n  access_log off;\n%s"
                    "  server {\n    listen 127.0.0.1:%d ssl;\n"
                    "    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
                    "    ssl_protocols TLSv1.2 TLSv1.3;\n    root %s;\n  }\n}\n"
                    % (d, temps, port, cert, key, tmp("www")))
        return ["nginx", "-p", d, "-c", conf, "-e", "stderr"]
    return start_listening("nginx", argv)


NODE_SERVER = r"""
const https = require('https'), fs = require('fs'), path = require('path');
const [cert, key, root, port] = process.argv.slice(2);
https.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, (req, res) => {
  const file = path.join(root, path.basename(req.url));
  fs.stat(file, (err, st) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, {'Content-Type': 'application/octet-stream', 'Content-Length': st.size});
    fs.createReadStream(file).pipe(res);
  });
}).listen(+port, '127.0.0.1');
"""


def start_node(_name):
    for n in SIZES:
        content(n)
    js = tmp("server.js")
    with open(js, "w") as f:
        f.write(NODE_SERVER)
    cert, key = certs().srv_ec
    return start_listening("node", lambda port: ["node", js, cert, key, tmp("www"), str(port)])


PY_SERVER = r"""
import http.server, os, ssl, sys
cert, key, root, port = sys.argv[1:]
os.chdir(root)
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


def start_python(_name):
    for n in SIZES:
        content(n)
    py = tmp("server.py")
    with open(py, "w") as f:
        f.write(PY_SERVER)
    cert, key = certs().srv_ec
    return start_listening("python https", lambda port: [sys.executable, py, cert, key,
                                                          tmp("www"), str(port)])


# ------------------------------------------------------------ running ktlsctl

def readme_example(port, name, *extra, version=None):
    """The README's example, verbatim but for host, port, the CA, the
    channel under test and the options of the case, in a real shell pipe."""
    args = ["--cafile", certs().ca] + CHANNEL_ARGS + list(extra)
    if version:
        args.append("--tls" + version)
    if "--eof" not in extra and ANSWER_LINGER:
        args += ["--eof", "linger=%g" % ANSWER_LINGER]
    cmd = ("printf 'GET /%s HTTP/1.0\\r\\n\\r\\n' | %s connect 127.0.0.1:%d %s"
           % (name, quote([KTLSCTL]), port, quote(args)))
    return Proc(["sh", "-c", cmd], name="ktlsctl", stdin=None, slow_stdout=SLOW_READER)


def tail_delay(k):
    """Seconds from the last byte on ktlsctl's stdout to its exit."""
    if k.t_last_out is None or k.t_out_eof is None:
        return float("nan")
    return k.t_out_eof - k.t_last_out


def wait_done(k, what, timeout=60):
    """The exit status (the process has exited and its output ended)."""
    if not k.wait_until(lambda p: not p.alive() or (p.out_eof and p.err_eof), timeout):
        raise Fail("%s did not end within %ss\n%s" % (what, scaled(timeout), k.describe()))
    return k.wait(10)


def check_full_answer(k, kind, name, what):
    wait_done(k, what)
    check_no_sanitizer(k)
    check_exit(k, 0, 10, what)
    check_data(what + ": the answer's body", body_of(what, k.out), content(name))
    if CHANNEL == "user-space" and "kernel TLS unavailable" in k.stderr:
        raise Fail("%s: a fallback notice although --ktls off was given\n%s" % (what, k.describe()))


# ------------------------------------------------------------ readme

def add_readme(kind, version, name):
    def run():
        port = server(kind, name)
        k = readme_example(port, name, version=version)
        check_full_answer(k, kind, name, "README example against %s" % kind)
        note("last byte -> exit %.3f s (%d bytes)" % (tail_delay(k), k.out_total))
    suite.add("readme: %s TLS%s %s answer: every byte, exit 0" % (kind, version, name), run)


for _kind in ("gnutls-serv", "nginx", "node"):
    for _v in VERSIONS:
        for _n in SIZES:
            add_readme(_kind, _v, _n)


@suite.case("readme: Python's http.server (never sends close_notify): every byte, "
            "then exit 8 'the peer closed without close_notify'")
def _python_truncates():
    port = server("python")
    k = readme_example(port, MID)
    rc = wait_done(k, "README example against Python's http.server")
    check_data("the answer's body", body_of("python", k.out), content(MID))
    if rc != 8 or "ktlsctl: connection truncated: the peer closed without close_notify\n" \
            not in k.stderr:
        raise Fail("expected exit 8 and 'connection truncated: the peer closed without "
                   "close_notify'\n%s" % k.describe())


# ------------------------------------------------------------ modes, servers

def add_mode_server(kind, version, mode):
    def run():
        port = server(kind, MID)
        k = readme_example(port, MID, "--eof", mode, "-v", version=version)
        what = "--eof %s against %s" % (mode, kind)
        if mode != "close":
            check_full_answer(k, kind, MID, what)
            if "the peer was quiet" in k.stderr:
                raise Fail("%s: we closed before the server did\n%s" % (what, k.describe()))
            note("last byte -> exit %.3f s" % tail_delay(k))
            return
        # close: whether the server read our close_notify before it had
        # sent everything is a race; what ktlsctl reports must be honest
        # either way: the whole answer and 0, or exit 8 when answer bytes
        # came after our close_notify and the server then closed without
        # its own, saying how many: cut, or whole (ktlsctl cannot tell that
        # it is complete, and says so; nginx did, TLS 1.3 on the kernel
        # channel, and TLS 1.2 on the emulated 7.2 kernel).
        rc = wait_done(k, what)
        check_no_sanitizer(k)
        body = body_of(what, k.out) if k.out else b""
        full = content(MID)
        if body != full[:len(body)]:
            raise Fail("%s: the data received is not a prefix of the answer" % what)
        m = TRUNC_AFTER.search(k.stderr)
        if kind == "node":
            # node answers our close_notify with its own, mostly before
            # any data; on a busy machine it may have sent part of the
            # answer first (65675 bytes, once, in the VM tier).  Either
            # way a clean close that ktlsctl cannot tell from a complete
            # one: exit 0, with what came a prefix of the answer.
            if rc != 0:
                raise Fail("%s: expected exit 0, with no data or a prefix of the answer "
                           "(node closes cleanly)\n%s" % (what, k.describe()))
        elif not ((rc == 0 and body == full)
                  or (rc == 8 and m and 0 < int(m.group(1)) <= k.out_total)):
            raise Fail("%s: expected the whole answer and exit 0, or exit 8 with 'the peer "
                       "sent N bytes after our close_notify' (N > 0, at most what we got)\n%s"
                       % (what, k.describe()))
        note("%d of %d bytes, exit %d" % (len(body), len(full), rc))
    expect = ("every byte, exit 0" if mode != "close"
              else "a clean close (no data or a prefix), exit 0" if kind == "node"
              else "whole and 0, or 8 for bytes after our close_notify")
    suite.add("mode: --eof %s -> %s TLS%s: %s" % (mode, kind, version, expect), run)


# A short quiet time: half a second, longer where timeouts are scaled (an
# emulated CPU shared with other guests can stall a server's answer for
# longer than that, which --eof linger rightly takes for a quiet peer).
QUICK = scaled(0.5)
QUICK_LINGER = "linger=%g" % QUICK

for _kind in ("gnutls-serv", "nginx", "node"):
    for _v in VERSIONS:
        for _m in (QUICK_LINGER, "wait", "close"):
            add_mode_server(_kind, _v, _m)


# The consumer stalls, once the answer has started, for twice the quiet
# time: the server waits on us then, which must not count as a quiet peer.
# Then it is slow.  (On the user-space channel a blocking write to the
# stalled pipe holds the whole loop; on the kernel channel the
# non-blocking splice does not.)  Our input ends once the answer has
# started, so that the quiet time runs while the consumer stalls, however
# long the server takes to begin (more than 3 s on a busy emulated
# machine); both times are scaled like the timeouts (mid-answer pauses).
# The server is nginx: gnutls-serv ends every connection 30 s after
# accepting it, which the scaled stall and slow reading outlast in the VM
# tier.
@suite.case("mode: linger=3, a consumer that stalls 6 s once the answer started, then reads "
            "slowly -> nginx %s: never taken for a quiet peer, every byte, exit 0" % BIG)
def _slow_consumer_is_not_quiet():
    port = server("nginx", BIG)
    linger = scaled(3)
    args = ["--cafile", certs().ca, "--eof", "linger=%g" % linger, "-v"] + CHANNEL_ARGS
    k = ktlsctl("connect", "127.0.0.1:%d" % port, *args, stdin=True,
                stall_stdout=2 * linger, slow_stdout=(1 << 16, 0.005))
    k.send(b"GET /%s HTTP/1.0\r\n\r\n" % BIG.encode())
    if not k.wait_out(1, 60):
        raise Fail("slow consumer: no answer within %ss\n%s" % (scaled(60), k.describe()))
    k.close_stdin()
    check_full_answer(k, "nginx", BIG, "slow consumer")
    if "the peer was quiet" in k.stderr:
        raise Fail("the peer was taken for quiet while it was still sending\n%s" % k.describe())


# ------------------------------------------------------------ modes, echo peers

def echo_peer(kind, version):
    """Start a peer that waits for us to close first; returns (proc, port,
    got) where got() is what the peer received."""
    cert, key = certs().srv_ec
    if kind == "ktlsctl listen --echo":
        p, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "--tls" + version,
                                 *CHANNEL_ARGS)
        return p, port, None
    if kind == "gnutls-serv --echo":
        p, port = start_gnutls_serv(cert, key, priority="NORMAL:-VERS-ALL:+VERS-TLS" + version)
        return p, port, None
    p, port = start_s_server(cert, key, ["-tls" + version.replace(".", "_")])
    return p, port, lambda: bytes(p.out)


def add_mode_echo(kind, version, mode):
    def run():
        srv, port, got = echo_peer(kind, version)
        data = hex_lines(256 << 10)
        args = ["--cafile", certs().ca, "-v"] + CHANNEL_ARGS
        if mode != "default":
            args += ["--eof", mode]
        k = ktlsctl("connect", "localhost:%d" % port, *args, stdin=data)
        what = "--eof %s -> %s" % (mode, kind)
        if mode == "wait":
            # Never closes first: still there well past the default linger.
            if got:
                srv.wait_until(lambda p: len(p.out) >= len(data), 30)
            else:
                k.wait_out(len(data), 30)
            if k.wait_until(lambda p: not p.alive() or p.err_eof, DEFAULT_LINGER * 2):
                raise Fail("%s: ended by itself\n%s" % (what, k.describe()))
            k.signal(signal.SIGTERM)
            check_exit(k, 143, 10, what + " after SIGTERM")
        else:
            wait_done(k, what)
            check_no_sanitizer(k)
            check_exit(k, 0, 10, what)
        if got:
            srv.wait_until(lambda p: len(p.out) >= len(data), 10)
            check_data(what + ": what the peer received", got(), data)
        else:
            check_data(what + ": the echo", k.out, data)
        if mode in ("default", QUICK_LINGER):
            secs = DEFAULT_LINGER if mode == "default" else QUICK
            if "ktlsctl: the peer was quiet for %g s: close_notify sent\n" % secs not in k.stderr:
                raise Fail("%s: no 'the peer was quiet for %g s' line\n%s"
                           % (what, secs, k.describe()))
        if mode != "wait" and not got:
            note("last byte -> exit %.3f s" % tail_delay(k))
    expect = {"wait": "never ends by itself (SIGTERM: 143)",
              "close": "all data, exit 0 at once"}.get(mode, "all data, exit 0 once quiet")
    suite.add("mode: --eof %s -> %s TLS%s: %s" % (mode, kind, version, expect), run)


for _kind in ("ktlsctl listen --echo", "gnutls-serv --echo", "s_server"):
    for _v in VERSIONS:
        for _m in ("default", QUICK_LINGER, "close", "wait"):
            add_mode_echo(_kind, _v, _m)


# ------------------------------------------------------------ listen

def add_listen(version, mode):
    def run():
        cert, key = certs().srv_ec
        args = ["--cert", cert, "--key", key, "--tls" + version] + CHANNEL_ARGS + ["-v"]
        if mode:
            args += ["--eof", mode]
        srv, port = ktlsctl_listen(*args, stdin=None)      # input ends at once
        data = os.urandom(16 << 20)
        c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "--eof", "close",
                    *CHANNEL_ARGS, stdin=data)
        what = "listen%s (stdin /dev/null) <- 16 MiB upload TLS%s" % (
            " --eof " + mode if mode else "", version)
        wait_done(srv, what)
        check_no_sanitizer(srv)
        check_exit(c, 0, 30, "the uploading client")
        if mode == "close" and version == "1.2":
            # Our close_notify at once: a TLS 1.2 client must stop sending.
            check_exit(srv, 0, 10, what)
            if len(srv.out) >= len(data) or bytes(srv.out) != data[:len(srv.out)]:
                raise Fail("%s: expected a strict prefix of the upload, got %d of %d bytes"
                           % (what, len(srv.out), len(data)))
            note("%d of %d bytes arrived" % (len(srv.out), len(data)))
            return
        check_exit(srv, 0, 10, what)
        check_data(what, srv.out, data)
    expect = ("the upload is cut (TLS 1.2 client stops)" if mode == "close" and version == "1.2"
              else "every byte, exit 0")
    suite.add("listen: --eof %s, stdin ends while the client uploads, TLS%s: %s"
              % (mode or "default", version, expect), run)


for _v in VERSIONS:
    for _m in (None, "wait", "close"):
        add_listen(_v, _m)


# ------------------------------------------------------------ commands

@suite.case("commands: --commands '/close' after the request -> gnutls-serv --http: the answer "
            "is not cut (default linger; ANSWER_LINGER where timeouts are scaled), every byte, exit 0")
def _commands_close():
    port = server("gnutls-serv", MID)
    eof = ["--eof", "linger=%g" % ANSWER_LINGER] if ANSWER_LINGER else []
    k = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca, "--commands", "-v",
                *(CHANNEL_ARGS + eof), stdin=True, slow_stdout=SLOW_READER)
    k.send(b"GET /%s HTTP/1.0\r\n\r\n/close\n" % MID.encode())
    check_full_answer(k, "gnutls-serv", MID, "/close")
    if "ktlsctl: end of input: waiting for the peer to close, or to be quiet for %g s\n" \
            % (ANSWER_LINGER or DEFAULT_LINGER) not in k.stderr:
        raise Fail("/close did not end the input as --eof linger says\n%s" % k.describe())
    k.close_stdin()


# ------------------------------------------------------------ unanswered

def unanswered_server(version, after):
    """A Python TLS server that reads until our close_notify, then sends
    `after` bytes and drops the connection (FIN, or RST when after is
    'rst:N') without answering."""
    rst = isinstance(after, str)
    n = int(after.split(":")[1]) if rst else after
    payload = os.urandom(n)
    ready = {}

    def fn(sock):
        t = PyTls(sock, py_server_ctx(*certs().srv_ec, version=version), server_side=True)
        t.handshake()
        data, how = t.recv_until_close()
        if how != "close_notify":
            raise Fail("the test server expected our close_notify, got %s" % how)
        if payload:
            t.send(payload)
        if rst and "k" in ready:
            ready["k"].wait_out(len(payload), 30)   # RST may drop unread data
        t.close_tcp(rst=rst)
        return data
    return ServerThread(fn), payload, ready


def add_unanswered(version, after):
    def run():
        st, payload, ready = unanswered_server(version, after)
        up = b"request\n"
        k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, "--eof", "close",
                    *CHANNEL_ARGS, stdin=up)
        ready["k"] = k
        got = st.join(30)
        check_data("what the server received", got, up)
        wait_done(k, "connect")
        check_no_sanitizer(k)
        check_data("data after our close_notify", k.out, payload)
        if not payload:
            check_exit(k, 0, 10, "a peer that closes without answering")
            if UNANSWERED + "\n" not in k.stderr:
                raise Fail("expected the notice %r\n%s" % (UNANSWERED, k.describe()))
            return
        check_exit(k, 8, 10, "data after our close_notify, then no answer")
        m = TRUNC_AFTER.search(k.stderr)
        how = "reset the connection" if isinstance(after, str) else "closed"
        # The kernel's TLS layer reports a reset after the last record it
        # decrypted as the end of the stream.
        if CHANNEL == "kernel" and isinstance(after, str):
            how = m.group(2) if m else how
        if not m or int(m.group(1)) != len(payload) or m.group(2) != how:
            raise Fail("expected 'the peer sent %d bytes after our close_notify, then %s "
                       "without its own'\n%s" % (len(payload), how, k.describe()))
    label = {0: "nothing, then FIN: exit 0 and a notice",
             1000: "1000 bytes, then FIN: exit 8",
             "rst:1000": "1000 bytes, then RST: exit 8"}[after]
    suite.add("unanswered: TLS%s peer answers our close_notify with %s" % (version, label), run)


for _v in VERSIONS:
    for _a in (0, 1000, "rst:1000"):
        add_unanswered(_v, _a)


# ------------------------------------------------------------ usage

@suite.case("usage: --eof takes linger, linger=SECS, wait or close; anything else is exit 2")
def _usage():
    for bad in ("never", "linger=", "linger=0", "linger=x", "linger=-1", "Close"):
        k = ktlsctl("connect", "localhost:1", "--eof", bad, stdin=None)
        check_exit(k, 2, 10, "--eof %s" % bad)
        want = ("ktlsctl: invalid --eof '%s': use linger, linger=SECS, wait or close\n" % bad
                if not bad.startswith("linger=") else
                "ktlsctl: invalid --eof linger=SECS '%s': give seconds, more than 0 and at "
                "most 86400\n" % bad[7:])
        if k.stderr != want:
            raise Fail("--eof %s: expected exactly %r\n%s" % (bad, want, k.describe()))


if __name__ == "__main__":
    sys.exit(suite.main())
