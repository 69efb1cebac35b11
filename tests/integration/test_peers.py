#!/usr/bin/env python3
"""Integration matrix: ktlsctl against real TLS peers on loopback.

Every case asserts ktlsctl's exit status and the integrity (SHA-256) of the
data in both directions.  ktlsctl runs on the channel under test
(KTLSCTL_TEST_CHANNEL: the user-space channel here, the kernel's in the VM
tier, ktlsctl_test.channel).  Where the channel cannot follow a TLS 1.3 key
update (Linux before 6.14, or KTLSCTL_TEST_SOFT_NOREKEY=1), each KeyUpdate
case is replaced by its counterpart that expects what ktlsctl must do
there: the data before the first KeyUpdate intact, then exit 10 with the
reason.  The bulk sizes (1 MiB, 24 MiB, ...) follow KTLSCTL_TEST_DATA_SCALE.

Peer behaviour this file relies on (gnutls 3.7.9, OpenSSL 3.0):
  gnutls-serv --echo   treats each request as a C string and echoes it once a
                       '\\n' is in the buffer: data must have no NUL and end
                       with '\\n'; --crlf stops it rewriting a trailing CRLF.
                       Answers close_notify with close_notify after echoing
                       everything read before it.  Sends TLS 1.3 tickets.
  gnutls-cli           at stdin EOF sends close_notify (gnutls_bye SHUT_WR)
                       and reads on until the peer's close_notify or 2 s of
                       silence; if the peer closes first it exits WITHOUT
                       sending close_notify, so it must always close first.
                       Writes received data one byte per write(2) (slow:
                       about 2 MB/s).  --logfile keeps stdout data-only.
                       --inline-commands: "^rekey1^\\n" / "^rekey^\\n" at the
                       start of a line.
  openssl s_server     -quiet: stdout is data only; stdin EOF closes the
                       connection (close_notify) at once, so its stdin is
                       held open until the data went through; answers a
                       client's close_notify with close_notify.  k/K commands
                       only without -quiet/-brief (then stdout has noise and
                       stdin EOF drops the connection without close_notify).
  openssl s_client     -quiet implies -ign_eof and -nocommands;
                       "-quiet -no_ign_eof -nocommands" gives data-only stdout
                       and close_notify at stdin EOF (then drains 0.5 s and
                       closes without decrypting).  -brief keeps the command
                       letters (a read starting with Q, R, k or K is a
                       command and its whole buffer is consumed), so data for
                       it is hex text and commands are written alone.
"""

import os
import re
import select
import signal
import socket
import sys
import threading

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import DATA_SCALE, human, scaled, sized  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL_ARGS, KERNEL, NO_REKEY, PEER_KEYUPDATE_FATAL, REKEY, can_rekey, limit_closed)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, check_no_sanitizer, check_stderr, kt_count, kt_lines, ktlsctl, ktlsctl_listen,
    need_line, need_regex_line, Proc, tcp_sockets, wait_for, wait_line_count)
from ktlsctl_test.data import check_data, first_diff, hex_lines, nonul_lines, random_bytes  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    CIPHERS, EOF_CLOSE, PRIME, gnutls_cli_argv, gnutls_priority, ktlsctl_tls_args,
    openssl_tls_args, prime_s_server, require_programs, s_client_argv, start_gnutls_serv,
    start_s_server)
from ktlsctl_test.pytls import py_client_ctx, py_server_ctx, PyTls, ServerThread  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_peers")
SMALL = sized(1 << 20)
BIG = sized(24 << 20)
MIB = sized(1 << 20)      # the step of the 8-step KeyUpdate transfers
# The channel under test; --eof close: these peers wait for our close_notify
# (ktlsctl_test.peers.EOF_CLOSE).
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE

# version x cipher, with the certificate kind used for it (TLS 1.2 CCM needs
# ECDSA; the others alternate so that both key types are covered).
MATRIX = [
    ("1.2", "AES-128-GCM", "rsa"),
    ("1.2", "AES-256-GCM", "ecdsa"),
    ("1.2", "CHACHA20-POLY1305", "rsa"),
    ("1.2", "AES-128-CCM", "ecdsa"),
    ("1.3", "AES-128-GCM", "ecdsa"),
    ("1.3", "AES-256-GCM", "rsa"),
    ("1.3", "CHACHA20-POLY1305", "ecdsa"),
    ("1.3", "AES-128-CCM", "rsa"),
]
# One 24 MiB case per peer and direction.
BIG_FOR = {
    "gnutls-serv": ("1.3", "AES-128-GCM"),
    "s_server": ("1.2", "AES-256-GCM"),
    "gnutls-cli": ("1.3", "CHACHA20-POLY1305"),
    "s_client": ("1.2", "AES-128-CCM"),
}


def certs():
    return suite.certs


def cert_for(kind):
    return certs().srv_ec if kind == "ecdsa" else certs().srv_rsa


def tmpfile(name):
    return os.path.join(suite.tmpdir(), name)


_counter = [0]


def logname(prefix):
    _counter[0] += 1
    return tmpfile("%s-%d.log" % (prefix, _counter[0]))


def progress(what, got, want):
    return "%s: %d of %d bytes arrived" % (what, got, want)


def count(pattern, text):
    return len(re.findall(pattern, text, re.I))


def need_close_notify(k, timeout=20):
    """Wait until ktlsctl -v has read the peer's close_notify."""
    if not wait_line_count(k, "peer sent close_notify", 1, timeout):
        raise Fail("ktlsctl -v never said 'peer sent close_notify'\n%s" % k.describe())


# ------------------------------------------- openssl capability probes

_ossl_cache = {}


def openssl_can(version, cipher, kind):
    """Whether s_client and s_server can negotiate this with each other;
    returns None or the reason they cannot."""
    key = (version, cipher, kind)
    if key in _ossl_cache:
        return _ossl_cache[key]
    cert, ckey = cert_for(kind)
    tls = openssl_tls_args(version, cipher, kind)
    srv, port = start_s_server(cert, ckey, tls)
    cli = Proc(s_client_argv(port, certs().ca, tls, mode="quiet"), name="s_client", stdin=b"probe\n")
    reason = None
    try:
        rc = cli.wait(20)
        srv.close_stdin()
        srv.wait(10)
        if rc != 0 or b"probe\n" not in srv.stdout:
            reason = ("openssl s_client and s_server cannot do TLS %s %s with a %s certificate "
                      "with each other (s_client exit %s: %s)"
                      % (version, cipher, kind, rc, cli.stderr.strip().splitlines()[-1:]))
    finally:
        cli.kill()
        srv.kill()
    _ossl_cache[key] = reason
    return reason


def need_openssl(version, cipher, kind):
    r = openssl_can(version, cipher, kind)
    if r:
        raise Skip(r)


# ============================================== ktlsctl connect <-> gnutls-serv

def connect_gnutls_serv(version, cipher, kind, size, timeout):
    cert, key = cert_for(kind)
    serv, port = start_gnutls_serv(cert, key, gnutls_priority(version, cipher))
    data = nonul_lines(size)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS,
                *ktlsctl_tls_args(version, cipher), stdin=data)
    check_exit(k, 0, timeout, "ktlsctl connect")
    check_data("ktlsctl stdout (echoed by gnutls-serv)", k.stdout, data)


for _v, _c, _k in MATRIX:
    big = BIG_FOR["gnutls-serv"] == (_v, _c)
    suite.add("connect->gnutls-serv --echo TLS%s %s %s %s" % (_v, _c, _k, human(BIG if big else SMALL)),
              (lambda v=_v, c=_c, k=_k, big=big:
               connect_gnutls_serv(v, c, k, BIG if big else SMALL, 150 if big else 40)),
              timeout=200 if big else 60)


# ================================================ ktlsctl connect <-> s_server

def connect_s_server(version, cipher, kind, size, timeout):
    need_openssl(version, cipher, kind)
    cert, key = cert_for(kind)
    down = random_bytes(size)       # s_server -> ktlsctl
    up = random_bytes(size)         # ktlsctl -> s_server
    srv, port = start_s_server(cert, key, openssl_tls_args(version, cipher, kind))
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS,
                *ktlsctl_tls_args(version, cipher))
    up = prime_s_server(srv, k) + up
    srv.send(down)                  # s_server's stdin stays open: EOF would end the connection
    k.send(up[len(up) - size:])
    ok_down = k.wait_out(len(down), timeout)
    ok_up = srv.wait_out(len(up), 10 if not ok_down else timeout)
    if not (ok_down and ok_up):
        raise Fail("data did not go through: %s; %s\n%s"
                   % (progress("ktlsctl stdout", k.out_total, len(down)),
                      progress("s_server stdout", srv.out_total, len(up)), k.describe()))
    k.close_stdin()                 # ktlsctl sends close_notify; s_server answers it
    check_exit(k, 0, 30, "ktlsctl connect")
    check_data("ktlsctl stdout (from s_server)", k.stdout, down)
    srv.wait(15)
    check_data("s_server stdout (from ktlsctl)", srv.stdout, up)


for _v, _c, _k in MATRIX:
    big = BIG_FOR["s_server"] == (_v, _c)
    suite.add("connect->s_server TLS%s %s %s %s" % (_v, _c, _k, human(BIG if big else SMALL)),
              (lambda v=_v, c=_c, k=_k, big=big:
               connect_s_server(v, c, k, BIG if big else SMALL, 150 if big else 40)),
              timeout=200 if big else 60)


# ============================================ gnutls-cli -> ktlsctl listen --echo

def gnutls_cli_listen_echo(version, cipher, kind, size, timeout):
    cert, key = cert_for(kind)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS,
                             *ktlsctl_tls_args(version, cipher))
    data = random_bytes(size)
    log = logname("gnutls-cli")
    cli = Proc(gnutls_cli_argv(port, certs().ca, log, gnutls_priority(version, cipher)),
               name="gnutls-cli", stdin=data)
    crc = cli.wait(timeout)
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    check_data("gnutls-cli stdout (echoed by ktlsctl)", cli.stdout, data)
    if crc != 0:
        raise Fail("gnutls-cli exit status %s\n%s" % (crc, cli.describe()))
    check_negotiated(log, version, cipher)


def check_negotiated(log, version, cipher):
    """What gnutls-cli says was negotiated (its --logfile)."""
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    # "- Description: (TLS1.2-X.509)-(ECDHE-SECP256R1)-(RSA-SHA256)-(AES-128-GCM)"
    m = re.search(r"^- Description: \((TLS1\.\d)-[^)]*\).*-\(([^()]+)\)\s*$", text, re.M)
    got = (m.group(1), m.group(2)) if m else (None, None)
    if got != ("TLS" + version, cipher):
        raise Fail("gnutls-cli negotiated %s %s, expected TLS%s %s" % (got + (version, cipher)))


for _v, _c, _k in MATRIX:
    big = BIG_FOR["gnutls-cli"] == (_v, _c)
    suite.add("gnutls-cli->listen --echo TLS%s %s %s %s" % (_v, _c, _k, human(BIG if big else SMALL)),
              (lambda v=_v, c=_c, k=_k, big=big:
               gnutls_cli_listen_echo(v, c, k, BIG if big else SMALL, 150 if big else 40)),
              timeout=200 if big else 60)


# ============================================== s_client -> ktlsctl listen --echo

def s_client_listen_echo(version, cipher, kind, size, timeout):
    need_openssl(version, cipher, kind)
    cert, key = cert_for(kind)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS,
                             *ktlsctl_tls_args(version, cipher))
    data = random_bytes(size)
    cli = Proc(s_client_argv(port, certs().ca, openssl_tls_args(version, cipher, kind), mode="quiet"),
               name="s_client")
    cli.send(data)
    if not cli.wait_out(len(data), timeout):
        raise Fail("%s\n%s" % (progress("s_client stdout (echo)", cli.out_total, len(data)), k.describe()))
    cli.close_stdin()               # s_client sends close_notify; ktlsctl answers and exits
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    cli.wait(20)
    check_data("s_client stdout (echoed by ktlsctl)", cli.stdout, data)


for _v, _c, _k in MATRIX:
    big = BIG_FOR["s_client"] == (_v, _c)
    suite.add("s_client->listen --echo TLS%s %s %s %s" % (_v, _c, _k, human(BIG if big else SMALL)),
              (lambda v=_v, c=_c, k=_k, big=big:
               s_client_listen_echo(v, c, k, BIG if big else SMALL, 150 if big else 40)),
              timeout=200 if big else 60)


# ====================== listen without --echo: data both ways through stdin/stdout

def gnutls_cli_listen_bidir(version):
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args(version))
    up, down = random_bytes(SMALL), random_bytes(SMALL // 2)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("gnutls-cli"), gnutls_priority(version)),
               name="gnutls-cli")
    cli.send(up)
    k.send(down)
    ok1 = k.wait_out(len(up), 40)
    ok2 = cli.wait_out(len(down), 40)
    if not (ok1 and ok2):
        raise Fail("%s; %s\n%s" % (progress("ktlsctl stdout", k.out_total, len(up)),
                                   progress("gnutls-cli stdout", cli.out_total, len(down)),
                                   k.describe()))
    # gnutls-cli must close first (it does not answer a close_notify).
    cli.close_stdin()
    if version == "1.3":            # half-close: ktlsctl closes after its stdin EOF
        need_close_notify(k)
        k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl listen")
    cli.wait(20)
    check_data("ktlsctl stdout (from gnutls-cli)", k.stdout, up)
    check_data("gnutls-cli stdout (from ktlsctl)", cli.stdout, down)


def s_client_listen_bidir(version):
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, *ktlsctl_tls_args(version))
    up, down = random_bytes(SMALL), random_bytes(SMALL)
    cli = Proc(s_client_argv(port, certs().ca, openssl_tls_args(version), mode="quiet"),
               name="s_client")
    cli.send(up)
    k.send(down)
    ok1 = k.wait_out(len(up), 40)
    ok2 = cli.wait_out(len(down), 40)
    if not (ok1 and ok2):
        raise Fail("%s; %s\n%s" % (progress("ktlsctl stdout", k.out_total, len(up)),
                                   progress("s_client stdout", cli.out_total, len(down)),
                                   k.describe()))
    k.close_stdin()                 # ktlsctl closes first; s_client answers close_notify
    check_exit(k, 0, 20, "ktlsctl listen")
    cli.close_stdin()
    cli.wait(20)
    check_data("ktlsctl stdout (from s_client)", k.stdout, up)
    check_data("s_client stdout (from ktlsctl)", cli.stdout, down)


for _v in ("1.2", "1.3"):
    suite.add("gnutls-cli->listen stdin/stdout both ways TLS%s" % _v,
              lambda v=_v: gnutls_cli_listen_bidir(v), timeout=90)
    suite.add("s_client->listen stdin/stdout both ways TLS%s" % _v,
              lambda v=_v: s_client_listen_bidir(v), timeout=90)


# =========================================================== peer KeyUpdate

def gnutls_cli_rekey(cipher):
    """gnutls-cli --inline-commands sends KeyUpdate(update_not_requested) for
    ^rekey1^ and KeyUpdate(update_requested) for ^rekey^."""
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args("1.3", cipher))
    chunks = [hex_lines(96 << 10) for _ in range(5)]
    cmds = [b"^rekey1^\n", b"^rekey^\n", b"^rekey^\n", b"^rekey1^\n"]
    stream = chunks[0]
    for c, d in zip(cmds, chunks[1:]):
        stream += c + d
    expected = b"".join(chunks)
    log = logname("gnutls-cli-rekey")
    cli = Proc(gnutls_cli_argv(port, certs().ca, log, gnutls_priority("1.3", cipher),
                               extra=["--inline-commands"]),
               name="gnutls-cli", stdin=stream)
    crc = cli.wait(60)
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    logtext = open(log, errors="replace").read() if os.path.exists(log) else ""
    done = count(r"Rekey was completed", logtext)
    if done != len(cmds):
        raise Fail("gnutls-cli reports %d of %d key updates done (peer problem?)\n%s"
                   % (done, len(cmds), cli.describe()))
    check_data("gnutls-cli stdout (echo across 4 KeyUpdates)", cli.stdout, expected)
    if crc != 0:
        raise Fail("gnutls-cli exit status %s\n%s" % (crc, cli.describe()))
    check_negotiated(log, "1.3", cipher)
    n = count(r"ktlsctl: peer updated its keys", k.stderr)
    if n != len(cmds):
        raise Fail("ktlsctl -v printed 'peer updated its keys' %d times for %d KeyUpdates\n%s"
                   % (n, len(cmds), k.describe()))


def expect_norekey(k, what):
    """On a channel that cannot rekey: the peer's first KeyUpdate ends the
    session with exit 10 and the one line that says why."""
    check_exit(k, 10, 30, what)
    need_line(k, PEER_KEYUPDATE_FATAL)


def gnutls_cli_norekey(cipher, cmd, size, cert):
    """gnutls-cli -> listen --echo: data, echoed; then the KeyUpdate."""
    k, port = ktlsctl_listen("--cert", cert[0], "--key", cert[1], "--echo", "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args("1.3", cipher))
    before, after = hex_lines(size), hex_lines(size)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("gnutls-cli-norekey"),
                               gnutls_priority("1.3", cipher), extra=["--inline-commands"]),
               name="gnutls-cli")
    cli.send(before)
    if not cli.wait_out(len(before), 30):
        raise Fail(progress("gnutls-cli stdout (echo)", cli.out_total, len(before)) + "\n"
                   + k.describe())
    cli.send(cmd + after)
    expect_norekey(k, "ktlsctl listen --echo")
    cli.close_stdin()
    cli.wait(20)
    check_data("gnutls-cli stdout (the echo before the KeyUpdate)", cli.stdout, before)


for _c in CIPHERS:
    suite.add("KeyUpdate gnutls-cli ^rekey1^/^rekey^ -> listen --echo TLS1.3 %s" % _c,
              lambda c=_c: gnutls_cli_rekey(c), timeout=90, when=REKEY)
    suite.add("KeyUpdate gnutls-cli ^rekey1^ -> listen --echo TLS1.3 %s: exit 10 without rekey, "
              "the echo before it intact" % _c,
              lambda c=_c: gnutls_cli_norekey(c, b"^rekey1^\n", 96 << 10, certs().srv_ec),
              timeout=90, when=NO_REKEY)


def s_client_rekey(cipher):
    """s_client -brief: a line "k" or "K" read alone sends KeyUpdate
    (K: update_requested)."""
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args("1.3", cipher))
    cli = Proc(s_client_argv(port, certs().ca, openssl_tls_args("1.3", cipher), mode="brief"),
               name="s_client")
    steps = [hex_lines(64 << 10), b"k\n", hex_lines(64 << 10), b"K\n", hex_lines(64 << 10),
             b"K\n", hex_lines(64 << 10), b"k\n", hex_lines(64 << 10)]
    sent = b""
    updates = 0
    for s in steps:
        if s in (b"k\n", b"K\n"):
            cli.send(s)
            updates += 1
            if not cli.wait_err(r"(?s)(KEYUPDATE.*){%d}" % updates, 10):
                raise Fail("s_client did not take the %r command\n%s" % (s, cli.describe()))
        else:
            cli.send(s)
            sent += s
            if not cli.wait_out(len(sent), 30):
                raise Fail("%s after %d KeyUpdate(s)\n%s\n%s"
                           % (progress("s_client stdout (echo)", cli.out_total, len(sent)), updates,
                              k.describe(), cli.describe()))
    cli.close_stdin()
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    cli.wait(20)
    check_data("s_client stdout (echo across KeyUpdates)", cli.stdout, sent)
    n = count(r"ktlsctl: peer updated its keys", k.stderr)
    if n != updates:
        raise Fail("ktlsctl -v printed 'peer updated its keys' %d times for %d KeyUpdates\n%s"
                   % (n, updates, k.describe()))


def s_client_norekey(cipher):
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args("1.3", cipher))
    cli = Proc(s_client_argv(port, certs().ca, openssl_tls_args("1.3", cipher), mode="brief"),
               name="s_client")
    before = hex_lines(64 << 10)
    cli.send(before)
    if not cli.wait_out(len(before), 30):
        raise Fail(progress("s_client stdout (echo)", cli.out_total, len(before)) + "\n"
                   + k.describe())
    cli.send(b"k\n")
    expect_norekey(k, "ktlsctl listen --echo")
    cli.close_stdin()
    cli.wait(20)
    check_data("s_client stdout (the echo before the KeyUpdate)", cli.stdout, before)


for _c in ("AES-256-GCM", "CHACHA20-POLY1305"):
    suite.add("KeyUpdate s_client k/K -> listen --echo TLS1.3 %s" % _c,
              lambda c=_c: s_client_rekey(c), timeout=90, when=REKEY)
    suite.add("KeyUpdate s_client k -> listen --echo TLS1.3 %s: exit 10 without rekey, the echo "
              "before it intact" % _c, lambda c=_c: s_client_norekey(c), timeout=90,
              when=NO_REKEY)


S_SERVER_NOISE = re.compile(rb"-----BEGIN [^\n]*\n.*?-----END [^\n]*\n|[^0-9a-f\n][^\n]*\n",
                            re.DOTALL)


def s_server_data(proc):
    """s_server's stdout without its messages ("SSL_do_handshake -> 1" after
    k/K, which can fall between two records of one write, even inside a
    line; "Read BLOCK" after a record without data; the session banner).
    start_s_server has each message written whole (stdbuf -o0), and the data
    is lowercase hex text, so any line from a character outside [0-9a-f] is
    a message; but the banner's session in PEM is removed whole, since a
    base64 line can start with a hex digit."""
    return S_SERVER_NOISE.sub(b"", bytes(proc.out))


def s_server_rekey(cipher):
    """s_server (interactive mode: no -quiet/-brief) sends KeyUpdate on a
    line "k" / "K" read alone; ktlsctl connect -v must follow, answer K with
    its own KeyUpdate, and keep moving data both ways."""
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, openssl_tls_args("1.3", cipher), quiet=False)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                *ktlsctl_tls_args("1.3", cipher))
    prime_s_server(srv, k)
    down_all, up_all = b"", b""
    problems = []
    updates = 0
    for step in ["data", "k", "data", "K", "data", "K", "data", "k", "data"]:
        if step == "data":
            d, u = hex_lines(48 << 10), hex_lines(48 << 10)
            srv.send(d)
            down_all += d
            if not k.wait_out(len(down_all), 30):
                raise Fail("%s after %d KeyUpdate(s)\n%s\n%s"
                           % (progress("ktlsctl stdout", k.out_total, len(down_all)), updates,
                              k.describe(), srv.describe()))
            k.send(u)
            up_all += u
            if not srv.wait_until(lambda p, u=u: u in s_server_data(p), 30):
                raise Fail("ktlsctl's data after %d KeyUpdate(s) did not reach s_server\n%s\n%s"
                           % (updates, k.describe(), srv.describe()))
        else:
            srv.send(step.encode() + b"\n")
            updates += 1
            # Synchronise on ktlsctl's -v line, so that the next data is not
            # read by s_server together with the command.
            if not k.wait_err(r"(?s)(peer updated its keys.*){%d}" % updates, 10):
                problems.append("no 'ktlsctl: peer updated its keys' line after KeyUpdate %d (%s)"
                                % (updates, step))
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect")
    check_data("ktlsctl stdout (from s_server across KeyUpdates)", k.stdout, down_all)
    out = s_server_data(srv)
    if up_all not in out:
        raise Fail("s_server's stdout does not hold ktlsctl's data in one piece\n%s" % srv.describe())
    srv.close_stdin()
    srv.wait(10)
    if problems:
        raise Fail("\n".join(problems) + "\n" + k.describe())


def s_server_norekey(cipher):
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, openssl_tls_args("1.3", cipher), quiet=False)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                *ktlsctl_tls_args("1.3", cipher))
    prime_s_server(srv, k)
    down, up = hex_lines(48 << 10), hex_lines(48 << 10)
    srv.send(down)
    if not k.wait_out(len(down), 30):
        raise Fail(progress("ktlsctl stdout", k.out_total, len(down)) + "\n" + k.describe())
    k.send(up)
    if not srv.wait_until(lambda p: up in s_server_data(p), 30):
        raise Fail("ktlsctl's data did not reach s_server\n%s\n%s" % (k.describe(), srv.describe()))
    srv.send(b"k\n")
    expect_norekey(k, "ktlsctl connect")
    check_data("ktlsctl stdout (from s_server, before the KeyUpdate)", k.stdout, down)
    srv.close_stdin()
    srv.wait(10)


for _c in ("AES-128-GCM", "AES-256-GCM"):
    suite.add("KeyUpdate s_server k/K -> connect TLS1.3 %s" % _c,
              lambda c=_c: s_server_rekey(c), timeout=120, when=REKEY)
    suite.add("KeyUpdate s_server k -> connect TLS1.3 %s: exit 10 without rekey, the data both "
              "ways before it intact" % _c, lambda c=_c: s_server_norekey(c), timeout=120,
              when=NO_REKEY)


# ================================================== tickets after the handover

@suite.case("NewSessionTicket from gnutls-serv after the handover (connect -v TLS1.3)", timeout=60)
def _tickets():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3"))
    data = nonul_lines(64 << 10)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS, "--tls1.3",
                stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect -v")
    check_data("ktlsctl stdout (echoed by gnutls-serv)", k.stdout, data)
    check_stderr(k, r"ktlsctl: session ticket received")


@suite.case("NewSessionTicket from s_server after the handover (connect -v TLS1.3)", timeout=60)
def _tickets_openssl():
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, ["-tls1_3"])
    down, up = random_bytes(64 << 10), random_bytes(64 << 10)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS, "--tls1.3")
    up = prime_s_server(srv, k) + up
    srv.send(down)
    k.send(up[len(PRIME):])
    if not (k.wait_out(len(down), 30) and srv.wait_out(len(up), 30)):
        raise Fail("data did not go through\n%s" % k.describe())
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect -v")
    check_data("ktlsctl stdout", k.stdout, down)
    check_data("s_server stdout", srv.stdout, up)
    check_stderr(k, r"ktlsctl: session ticket received")


# ================================================ close_notify, checked precisely

def py_server_closenotify(version):
    """A Python TLS server that sends data, then reads until close_notify and
    answers it: ktlsctl must send close_notify after its stdin EOF."""
    cert, key = certs().srv_ec
    down, up = random_bytes(256 << 10), random_bytes(256 << 10)

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, version), server_side=True)
        t.handshake()
        t.send(down)
        got, how = t.recv_until_close()
        if how == "close_notify":
            t.send_close_notify()
        t.close()
        return got, how
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS,
                *ktlsctl_tls_args(version), stdin=up)
    check_exit(k, 0, 30, "ktlsctl connect")
    got, how = st.join(30)
    if how != "close_notify":
        raise Fail("the server saw the connection end with %s, not close_notify" % how)
    check_data("server received", got, up)
    check_data("ktlsctl stdout", k.stdout, down)


def py_client_closenotify(version):
    """A Python TLS client sends, reads the echo, sends close_notify and
    expects ktlsctl listen --echo to answer with close_notify."""
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS, *ktlsctl_tls_args(version))
    data = random_bytes(256 << 10)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    t = PyTls(s, py_client_ctx(certs().ca, version), server_side=False, server_hostname="localhost")
    t.handshake()
    t.send(data)
    echo = t.recv_exact(len(data))
    t.send_close_notify()
    rest, how = t.recv_until_close()
    t.close()
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    check_data("echo", echo, data)
    if rest:
        raise Fail("%d unexpected bytes after the echo" % len(rest))
    if how != "close_notify":
        raise Fail("ktlsctl ended the connection with %s, not close_notify\n%s" % (how, k.describe()))


for _v in ("1.2", "1.3"):
    suite.add("close_notify both ways: Python server <- connect TLS%s" % _v,
              lambda v=_v: py_server_closenotify(v), timeout=60)
    suite.add("close_notify both ways: Python client -> listen --echo TLS%s" % _v,
              lambda v=_v: py_client_closenotify(v), timeout=60)


@suite.case("TLS1.3 half-close: peer's close_notify first, connect keeps sending stdin", timeout=60)
def _halfclose13():
    cert, key = certs().srv_ec
    down, up = random_bytes(128 << 10), random_bytes(SMALL)

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, "1.3"), server_side=True)
        t.handshake()
        t.send(down)
        t.send_close_notify()
        got, how = t.recv_until_close()
        t.close()
        return got, how
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                "--tls1.3")
    if not k.wait_out(len(down), 30):
        raise Fail(progress("ktlsctl stdout", k.out_total, len(down)) + "\n" + k.describe())
    need_close_notify(k)            # read before stdin moves
    if not k.alive():
        raise Fail("ktlsctl exited on the peer's TLS 1.3 close_notify instead of sending "
                   "the rest of stdin (half-close)\n%s" % k.describe())
    k.send(up)
    k.close_stdin()
    check_exit(k, 0, 30, "ktlsctl connect")
    got, how = st.join(30)
    check_data("ktlsctl stdout", k.stdout, down)
    check_data("server received after its close_notify", got, up)
    if how != "close_notify":
        raise Fail("ktlsctl ended with %s, not close_notify" % how)


@suite.case("TLS1.3 half-close: peer's close_notify first, listen keeps sending stdin", timeout=60)
def _halfclose13_listen():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "-v", *SESSION_ARGS, "--tls1.3")
    up, down = random_bytes(128 << 10), random_bytes(SMALL)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    t = PyTls(s, py_client_ctx(certs().ca, "1.3"), server_side=False, server_hostname="localhost")
    t.handshake()
    t.send(up)
    t.send_close_notify()
    if not k.wait_out(len(up), 30):
        raise Fail(progress("ktlsctl stdout", k.out_total, len(up)) + "\n" + k.describe())
    need_close_notify(k)
    if not k.alive():
        raise Fail("ktlsctl exited on the peer's TLS 1.3 close_notify instead of sending "
                   "the rest of stdin (half-close)\n%s" % k.describe())
    k.send(down)
    k.close_stdin()
    got, how = t.recv_until_close()
    t.close()
    check_exit(k, 0, 30, "ktlsctl listen")
    check_data("ktlsctl stdout", k.stdout, up)
    check_data("client received after its close_notify", got, down)
    if how != "close_notify":
        raise Fail("ktlsctl ended with %s, not close_notify" % how)


@suite.case("TLS1.2: peer's close_notify is answered at once (stdin still open)", timeout=60)
def _close12():
    cert, key = certs().srv_rsa
    down = random_bytes(128 << 10)

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, "1.2"), server_side=True)
        t.handshake()
        t.send(down)
        t.send_close_notify()
        got, how = t.recv_until_close()
        t.close()
        return got, how
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS, "--tls1.2")
    # stdin stays open: ktlsctl must answer and exit by itself
    check_exit(k, 0, 15, "ktlsctl connect")
    got, how = st.join(15)
    check_data("ktlsctl stdout", k.stdout, down)
    if how != "close_notify":
        raise Fail("ktlsctl ended with %s, not close_notify" % how)


# ============================================= peers dying without close_notify

def truncated_by_py_server(version):
    cert, key = certs().srv_ec
    down = random_bytes(200 << 10)
    got_it = threading.Event()

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, version), server_side=True)
        t.handshake()
        t.send(down)
        got_it.wait(scaled(20))
        t.close_tcp()               # FIN, no close_notify
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS,
                *ktlsctl_tls_args(version))      # stdin open, nothing to send
    k.wait_out(len(down), 20)
    got_it.set()
    check_exit(k, 8, 20, "ktlsctl connect")
    st.join(10)
    check_stderr(k, r"truncated")
    check_data("ktlsctl stdout (bytes before the cut)", k.stdout, down)


def truncated_by_py_client(version):
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, *ktlsctl_tls_args(version))
    up = random_bytes(200 << 10)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    t = PyTls(s, py_client_ctx(certs().ca, version), server_side=False, server_hostname="localhost")
    t.handshake()
    t.send(up)
    # The cut comes once ktlsctl has it all: the TLS 1.3 tickets wait unread
    # in our socket, so closing it sends an RST, and the kernel drops what
    # ktlsctl has not read yet (seen under valgrind).
    if not k.wait_out(len(up), 30):
        raise Fail(progress("ktlsctl stdout", k.out_total, len(up)) + "\n" + k.describe())
    t.close_tcp()
    check_exit(k, 8, 20, "ktlsctl listen")
    check_stderr(k, r"truncated")
    check_data("ktlsctl stdout (bytes before the cut)", k.stdout, up)


for _v in ("1.2", "1.3"):
    suite.add("truncation: Python server closes TCP without close_notify TLS%s -> exit 8" % _v,
              lambda v=_v: truncated_by_py_server(v), timeout=60)
    suite.add("truncation: Python client closes TCP without close_notify TLS%s -> listen exit 8" % _v,
              lambda v=_v: truncated_by_py_client(v), timeout=60)


@suite.case("truncation: s_server killed with SIGKILL mid-stream -> exit 8", timeout=60)
def _trunc_kill():
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, ["-tls1_3"])
    down = random_bytes(SMALL)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS)
    prime_s_server(srv, k)
    srv.send(down)
    if not k.wait_out(len(down), 30):
        raise Fail(progress("ktlsctl stdout", k.out_total, len(down)) + "\n" + k.describe())
    srv.kill()
    check_exit(k, 8, 20, "ktlsctl connect")
    check_stderr(k, r"truncated")
    check_data("ktlsctl stdout (bytes before the kill)", k.stdout, down)


# ========================================================= client certificates

@suite.case("client certificate: connect --cert/--key -> gnutls-serv --require-client-cert", timeout=60)
def _client_cert_connect():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, client_ca=certs().ca)
    ccert, ckey = certs().client
    data = nonul_lines(64 << 10)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "--cert", ccert,
                "--key", ckey, *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --cert")
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("client certificate: gnutls-cli with cert -> listen --verify-client --cafile", timeout=60)
def _client_cert_listen():
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "--verify-client",
                             "--cafile", certs().ca, *SESSION_ARGS)
    ccert, ckey = certs().client
    data = random_bytes(64 << 10)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("gnutls-cli"),
                               extra=["--x509certfile", ccert, "--x509keyfile", ckey]),
               name="gnutls-cli", stdin=data)
    cli.wait(30)
    check_exit(k, 0, 20, "ktlsctl listen --verify-client")
    check_data("gnutls-cli stdout", cli.stdout, data)


# ============================================================= stdout closed

@suite.case("EPIPE on stdout: close_notify sent, exit 0 quietly", timeout=60)
def _epipe():
    """The reader of ktlsctl's stdout goes away; the next peer data makes
    ktlsctl's write fail with EPIPE: it must send close_notify and exit 0
    without a word."""
    cert, key = certs().srv_ec
    stdout_gone = threading.Event()

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, "1.3"), server_side=True)
        t.handshake()
        t.send(b"a" * 16384)
        if not stdout_gone.wait(scaled(20)):
            raise Fail("the test did not close the stdout pipe")
        t.send(b"b" * 16384)            # ktlsctl's write of this gets EPIPE
        got, how = t.recv_until_close()
        t.close()
        return how
    st = ServerThread(serve)
    r, w = os.pipe()
    try:
        k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS, stdout=w)
    finally:
        os.close(w)
    ready, _, _ = select.select([r], [], [], scaled(20))
    first = os.read(r, 1000) if ready else b""
    os.close(r)
    stdout_gone.set()
    if not first:
        raise Fail("nothing arrived on stdout\n%s" % k.describe())
    check_exit(k, 0, 20, "ktlsctl connect with its stdout closed")
    how = st.join(20)
    if [l for l in k.stderr.splitlines() if l.strip()]:
        raise Fail("ktlsctl was not quiet on EPIPE\n%s" % k.describe())
    if how != "close_notify":
        raise Fail("the server saw the connection end with %s, not close_notify\n%s" % (how, k.describe()))


# ================================================================ options

@suite.case("listen --echo -k serves three clients in a row, then SIGTERM -> 143", timeout=90)
def _keep_open():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-k", *SESSION_ARGS)
    for i in range(3):
        data = random_bytes(128 << 10)
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
        t = PyTls(s, py_client_ctx(certs().ca), server_side=False, server_hostname="localhost")
        t.handshake()
        t.send(data)
        echo = t.recv_exact(len(data))
        t.send_close_notify()
        rest, how = t.recv_until_close()
        t.close()
        check_data("echo for client %d" % (i + 1), echo, data)
        if how != "close_notify" or rest:
            raise Fail("client %d: the connection ended with %s (+%d bytes)\n%s"
                       % (i + 1, how, len(rest), k.describe()))
        if not k.alive():
            raise Fail("ktlsctl listen -k exited after client %d\n%s" % (i + 1, k.describe()))
    k.signal(signal.SIGTERM)
    check_exit(k, 143, 10, "ktlsctl listen -k after SIGTERM")


@suite.case("IPv6: connect [::1]:PORT to gnutls-serv (cert has IP ::1)", timeout=60)
def _ipv6_connect():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    data = nonul_lines(64 << 10)
    k = ktlsctl("connect", "[::1]:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect [::1]")
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("IPv6: gnutls-cli -> listen [::1]:0 --echo", timeout=60)
def _ipv6_listen():
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS, addr="[::1]:0")
    data = random_bytes(64 << 10)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("gnutls-cli"), host="::1"),
               name="gnutls-cli", stdin=data)
    cli.wait(30)
    check_exit(k, 0, 20, "ktlsctl listen [::1]:0")
    check_data("gnutls-cli stdout", cli.stdout, data)


@suite.case("listen :0 (all addresses) accepts on 127.0.0.1", timeout=60)
def _listen_any():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS, addr=":0")
    data = random_bytes(64 << 10)
    cli = Proc(s_client_argv(port, certs().ca, mode="quiet"), name="s_client")
    cli.send(data)
    if not cli.wait_out(len(data), 20):
        raise Fail(progress("s_client stdout", cli.out_total, len(data)) + "\n" + k.describe())
    cli.close_stdin()
    check_exit(k, 0, 20, "ktlsctl listen :0")
    check_data("s_client stdout", cli.stdout, data)


@suite.case("--sni NAME with an IP literal: NAME is sent (gnutls-serv --sni-hostname-fatal) and verified", timeout=60)
def _sni():
    cert, key = certs().wronghost
    serv, port = start_gnutls_serv(cert, key, extra=["--sni-hostname", "wronghost.invalid",
                                                     "--sni-hostname-fatal"])
    data = nonul_lines(4096)
    k = ktlsctl("connect", "127.0.0.1:%d" % port, "--sni", "wronghost.invalid", "--cafile", certs().ca,
                *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --sni")
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("--alpn is offered and accepted (gnutls-serv --alpn-fatal)", timeout=60)
def _alpn():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, extra=["--alpn", "ktls-test/1", "--alpn-fatal"])
    data = nonul_lines(4096)
    k = ktlsctl("connect", "localhost:%d" % port, "--alpn", "other/9", "--alpn", "ktls-test/1",
                "--cafile", certs().ca, *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --alpn")
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("--cipher is case-insensitive and repeatable", timeout=60)
def _cipher_opts():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "CHACHA20-POLY1305"))
    data = nonul_lines(4096)
    k = ktlsctl("connect", "localhost:%d" % port, "--cipher", "aes-128-ccm", "--cipher",
                "chacha20-poly1305", "--cafile", certs().ca, "-v", *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --cipher x2")
    check_data("ktlsctl stdout", k.stdout, data)
    check_stderr(k, r"CHACHA20")


@suite.case("--priority replaces the built-in priorities", timeout=60)
def _priority():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    data = nonul_lines(4096)
    k = ktlsctl("connect", "localhost:%d" % port, "--priority",
                "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM", "-v",
                "--cafile", certs().ca, *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --priority")
    check_data("ktlsctl stdout", k.stdout, data)
    check_stderr(k, r"TLS ?1\.2.*AES.?128.?GCM")


@suite.case("-v: every stderr line is prefixed 'ktlsctl: ', stdout is only data", timeout=60)
def _prefix():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    data = nonul_lines(64 << 10)
    k = ktlsctl("connect", "localhost:%d" % port, "-v", "--cafile", certs().ca, "--ktls", "auto",
                stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect -v")
    check_data("ktlsctl stdout", k.stdout, data)
    bad = [l for l in k.stderr.splitlines() if l.strip() and not l.startswith("ktlsctl: ")]
    if bad:
        raise Fail("stderr lines without the 'ktlsctl: ' prefix: %r" % bad[:5])


# ================================================ more data-path edge cases

@suite.case("empty stdin (/dev/null): close_notify both ways, exit 0, empty stdout", timeout=60)
def _empty_stdin():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=None)
    check_exit(k, 0, 20, "ktlsctl connect </dev/null")
    check_data("ktlsctl stdout", k.stdout, b"")


@suite.case("stdin is a regular file (4 MiB)", timeout=60)
def _file_stdin():
    cert, key = certs().srv_rsa
    serv, port = start_gnutls_serv(cert, key)
    data = nonul_lines(4 << 20)
    path = tmpfile("stdin.bin")
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=f)
    check_exit(k, 0, 60, "ktlsctl connect <file")
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("slow stdout reader (4 KiB every 1 ms), 4 MiB: no byte lost", timeout=120)
def _slow_stdout():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    data = nonul_lines(4 << 20)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=data,
                slow_stdout=(4096, 0.001))
    check_exit(k, 0, 100, "ktlsctl connect with a slow stdout")
    check_data("ktlsctl stdout", k.stdout, data)


def reset_by_py_server(version):
    cert, key = certs().srv_ec
    down = random_bytes(100 << 10)
    got_it = threading.Event()

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, version), server_side=True)
        t.handshake()
        t.send(down)
        got_it.wait(scaled(20))
        t.close_tcp(rst=True)           # RST, no close_notify
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS,
                *ktlsctl_tls_args(version))
    ok = k.wait_out(len(down), 20)
    got_it.set()
    if not ok:
        raise Fail(progress("ktlsctl stdout", k.out_total, len(down)) + "\n" + k.describe())
    check_exit(k, 8, 20, "ktlsctl connect (peer sent RST)")
    st.join(10)
    check_stderr(k, r"truncated")
    check_data("ktlsctl stdout", k.stdout, down)


for _v in ("1.2", "1.3"):
    suite.add("truncation: Python server resets the connection (RST) TLS%s -> exit 8" % _v,
              lambda v=_v: reset_by_py_server(v), timeout=60)


suite.add("KeyUpdate stress without rekey: gnutls-cli ^rekey^ after 224 KiB (AES-256-GCM, "
          "SHA-384) -> exit 10, the echo before it intact",
          lambda: gnutls_cli_norekey("AES-256-GCM", b"^rekey^\n", 224 << 10, certs().srv_rsa),
          timeout=120, when=NO_REKEY)


@suite.case("KeyUpdate stress: 8 gnutls-cli KeyUpdates in 2 MiB of echo (AES-256-GCM, SHA-384)",
            timeout=120, when=REKEY)
def _rekey_stress():
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS,
                             *ktlsctl_tls_args("1.3", "AES-256-GCM"))
    chunks = [hex_lines(224 << 10) for _ in range(9)]
    cmds = [b"^rekey^\n", b"^rekey1^\n"] * 4
    stream = chunks[0] + b"".join(c + d for c, d in zip(cmds, chunks[1:]))
    log = logname("gnutls-cli-stress")
    cli = Proc(gnutls_cli_argv(port, certs().ca, log, gnutls_priority("1.3", "AES-256-GCM"),
                               extra=["--inline-commands"]), name="gnutls-cli", stdin=stream)
    cli.wait(100)
    check_exit(k, 0, 20, "ktlsctl listen --echo")
    check_data("gnutls-cli stdout", cli.stdout, b"".join(chunks))
    n = count(r"ktlsctl: peer updated its keys", k.stderr)
    if n != len(cmds):
        raise Fail("'peer updated its keys' printed %d times for %d KeyUpdates\n%s" % (n, len(cmds), k.describe()))


def start_download():
    """listen sends 8 MiB (KTLSCTL_TEST_DATA_SCALE) to s_client, whose stdout
    is drained slowly, so that ktlsctl is blocked on a full socket with data
    queued when the KeyUpdates arrive: (ktlsctl, s_client, data)."""
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "-v", *SESSION_ARGS, "--tls1.3")
    # The drain takes as long with less data (KTLSCTL_TEST_DATA_SCALE), and
    # longer where timeouts are scaled: the last KeyUpdate still meets
    # data in flight.
    pause = scaled(0.002) / min(DATA_SCALE, 1.0)
    cli = Proc(s_client_argv(port, certs().ca, ["-tls1_3"], mode="brief"), name="s_client",
               slow_stdout=(16384, pause))
    data = random_bytes(8 * MIB)
    k.send(data)
    k.close_stdin()                 # after the data ktlsctl closes; s_client answers
    return k, cli, data


def start_upload():
    """connect sends 8 MiB of hex lines to s_server (interactive: it takes
    k and K), whose stdout is drained slowly: (ktlsctl, s_server, data)."""
    cert, key = certs().srv_rsa
    srv, port = start_s_server(cert, key, ["-tls1_3"], quiet=False, slow_stdout=(16384, 0.002))
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                "--tls1.3")
    prime_s_server(srv, k)
    data = hex_lines(8 * MIB)
    k.send(data)
    return k, srv, data


@suite.case("KeyUpdate during a big download without rekey: s_client K after %s -> listen "
            "exits 10, what arrived is the start of the data" % human(MIB), timeout=120,
            when=NO_REKEY)
def _norekey_download():
    k, cli, data = start_download()
    if not cli.wait_out(MIB, 40):
        raise Fail(progress("s_client stdout", cli.out_total, MIB) + "\n" + k.describe())
    cli.send(b"K\n")
    expect_norekey(k, "ktlsctl listen")
    cli.wait(20)
    if cli.out_total < MIB or not data.startswith(bytes(cli.out)):
        raise Fail("s_client's %d bytes are not the start of the data\n%s"
                   % (cli.out_total, cli.describe()))


@suite.case("KeyUpdate during a big upload without rekey: s_server K after %s -> connect exits "
            "10, what arrived is the start of the data" % human(MIB), timeout=120, when=NO_REKEY)
def _norekey_upload():
    k, srv, data = start_upload()
    if not srv.wait_until(lambda p: len(p.out) > MIB, 40):
        raise Fail("s_server got %d bytes\n%s" % (len(srv.out), k.describe()))
    srv.send(b"K\n")
    expect_norekey(k, "ktlsctl connect")
    srv.close_stdin()
    srv.wait(20)
    got, sent = s_server_data(srv), PRIME + data
    if len(got) < MIB or not sent.startswith(got):
        at = first_diff(got, sent)
        raise Fail("s_server's %d bytes of data are not the start of ktlsctl's: from offset %d "
                   "it has %r where ktlsctl sent %r\n%s"
                   % (len(got), at, got[at:at + 48], sent[at:at + 48], srv.describe()))


@suite.case("KeyUpdate during a big download: s_client k/K while listen sends %s" % human(8 * MIB),
            timeout=120, when=REKEY)
def _rekey_download():
    k, cli, data = start_download()
    updates = 0
    for i, cmd in enumerate([b"K\n", b"k\n", b"K\n", b"K\n"]):
        if not cli.wait_out((i + 1) * MIB, 40):
            raise Fail(progress("s_client stdout", cli.out_total, (i + 1) * MIB) + "\n"
                       + k.describe())
        cli.send(cmd)
        updates += 1
        if not cli.wait_err(r"(?s)(KEYUPDATE.*){%d}" % updates, 10):
            raise Fail("s_client did not take %r\n%s" % (cmd, cli.describe()))
    check_exit(k, 0, 60, "ktlsctl listen")
    cli.wait(20)
    check_data("s_client stdout (%s across KeyUpdates)" % human(len(data)), cli.stdout, data)
    n = count(r"ktlsctl: peer updated its keys", k.stderr)
    if n != updates:
        raise Fail("'peer updated its keys' printed %d times for %d KeyUpdates\n%s" % (n, updates, k.describe()))


@suite.case("KeyUpdate during a big upload: s_server K while connect sends %s" % human(8 * MIB),
            timeout=120, when=REKEY)
def _rekey_upload():
    k, srv, data = start_upload()
    updates = 0
    for i, cmd in enumerate([b"K\n", b"K\n", b"k\n", b"K\n"]):
        if not srv.wait_until(lambda p, n=(i + 1) * MIB: len(p.out) > n, 40):
            raise Fail("s_server got %d bytes\n%s" % (len(srv.out), k.describe()))
        srv.send(cmd)
        updates += 1
        if not k.wait_err(r"(?s)(peer updated its keys.*){%d}" % updates, 10):
            raise Fail("no 'peer updated its keys' after KeyUpdate %d\n%s" % (updates, k.describe()))
    if not (srv.wait_until(lambda p: p.out_total >= len(data) + len(PRIME), 60)
            and srv.wait_until(lambda p: data in s_server_data(p), 10)):
        raise Fail("s_server's stdout does not hold all of ktlsctl's data\n%s\n%s"
                   % (k.describe(), srv.describe()))
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect")


@suite.case("TLS1.2 renegotiation request from s_server: no hang, exit 0 or 9", timeout=60)
def _reneg():
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, ["-tls1_2"], quiet=False)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, "--tls1.2")
    prime_s_server(srv, k)
    srv.send(b"r\n")
    if not srv.wait_stdin_read(10):     # its command alone, the data in a later read
        raise Fail("s_server did not read its 'r' command\n%s" % srv.describe())
    d = hex_lines(4096)
    k.send(d)
    srv.send(d)
    k.wait_out(len(d), 5)
    k.close_stdin()
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc not in (0, 9):
        raise Fail("exit status %s, expected 0 (HelloRequest ignored) or 9 (unexpected message)\n%s"
                   % (rc, k.describe()))
    if rc == 0:
        check_data("ktlsctl stdout", k.stdout, d)


# ================================================= zero copy (sendfile, splice)
# The kernel channel sends a file stdin with sendfile and a pipe stdin with
# splice, and splices peer data into a stdout pipe; the user-space channel
# copies.  Each ktlsctl -v says which ("data path: ..."), and the data must
# arrive whole either way.

ZC_SIZE = sized(4 << 20)
# Key updates every ZC_KEYS records: about 4 of them in ZC_SIZE (64 at 4 MiB).
ZC_KEYS = max(8, ZC_SIZE // 16384 // 4)


def data_path(k):
    """(standard input, standard output) of ktlsctl -v's data path line."""
    return need_regex_line(k, r"data path: standard input by (\w+), standard output by (\w+)",
                           "data path").groups()


def zero_copy(source, version, keys=None):
    """connect sends ZC_SIZE bytes from a file (sendfile) or a pipe (splice)
    to listen, whose stdout is a pipe (splice).  keys: connect updates its
    keys every that many records, so that KeyUpdates (control records)
    arrive between spliced data records; where the channel cannot rekey,
    connect stops after exactly that many full records from a file (the
    metering is exact there): exit 13."""
    cert, key = certs().srv_ec
    path = tmpfile("zc.bin")
    data = random_bytes(ZC_SIZE)
    with open(path, "wb") as f:
        f.write(data)
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "-v", *SESSION_ARGS, "--tls" + version)
    extra = ["--key-update-after", str(keys)] if keys else []
    argv = ["connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
            "--tls" + version, "--cipher", "AES-128-GCM", *extra]
    if source == "file":
        with open(path, "rb") as f:
            c = ktlsctl(*argv, stdin=f, name="ktlsctl connect")
    else:
        c = ktlsctl(*argv, stdin=data, name="ktlsctl connect")
    stopped = keys and not can_rekey()
    if stopped:
        check_exit(c, 13, 120, "ktlsctl connect --key-update-after %d" % keys)
        need_line(c, limit_closed(keys, "AES-128-GCM"))
    elif not k.wait_out(len(data), 120):
        raise Fail(progress("ktlsctl listen stdout", k.out_total, len(data)) + "\n"
                   + c.describe() + k.describe())
    k.close_stdin()                 # TLS 1.3: listen's half of the close
    if not stopped:
        check_exit(c, 0, 60, "ktlsctl connect (%s)" % source)
    check_exit(k, 0, 60, "ktlsctl listen")
    if stopped and source == "file" and k.out_total != keys * 16384:
        raise Fail("sendfile: %d bytes under one key, expected exactly %d records of 16384\n%s"
                   % (k.out_total, keys, k.describe()))
    check_data("ktlsctl listen stdout (from connect)", k.stdout,
               data[:k.out_total] if stopped else data)
    how_in = {"file": "sendfile", "pipe": "splice"}[source] if KERNEL else "copy"
    if data_path(c)[0] != how_in or data_path(k)[1] != ("splice" if KERNEL else "copy"):
        raise Fail("data path: connect's input by %s (expected %s), listen's output by %s "
                   "(expected %s)\n%s%s" % (data_path(c)[0], how_in, data_path(k)[1],
                                             "splice" if KERNEL else "copy", c.describe(),
                                             k.describe()))
    if keys and can_rekey():
        ours = len([l for l in kt_lines(c) if l.startswith("updated our send keys after")])
        theirs = kt_count(k, "peer updated its keys")
        if not 1 <= ours == theirs:
            raise Fail("connect updated its keys %d times, listen saw %d KeyUpdates\n%s%s"
                       % (ours, theirs, c.describe(), k.describe()))


for _src, _v in (("file", "1.3"), ("pipe", "1.2")):
    suite.add("zero copy where the channel has it (%s): connect stdin a %s -> listen stdout a "
              "pipe, TLS%s, %s"
              % ("sendfile" if _src == "file" else "splice", _src, _v, human(ZC_SIZE)),
              lambda s=_src, v=_v: zero_copy(s, v), timeout=120)
for _src in ("file", "pipe"):
    suite.add("zero copy: connect stdin a %s with key updates every %d records -> listen, TLS1.3"
              % (_src, ZC_KEYS), lambda s=_src: zero_copy(s, "1.3", ZC_KEYS), timeout=120,
              when=REKEY)
    suite.add("zero copy: connect stdin a %s, --key-update-after %d without rekey -> exit 13%s"
              % (_src, ZC_KEYS, ", exactly %d records" % ZC_KEYS if _src == "file" else ""),
              lambda s=_src: zero_copy(s, "1.3", ZC_KEYS), timeout=120, when=NO_REKEY)


@suite.case("zero copy: the reader of connect's stdout pipe goes away after 1000 bytes -> "
            "close_notify, exit 0", timeout=60)
def _zc_epipe():
    cert, key = certs().srv_ec
    path = tmpfile("zc-epipe.bin")
    data = random_bytes(ZC_SIZE)
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, "--tls1.3", stdin=f)
    r, w = os.pipe()
    try:
        c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS,
                    "--tls1.3", stdin=None, stdout=w, name="ktlsctl connect")
    finally:
        os.close(w)
    got = b""
    while len(got) < 1000:
        ready, _, _ = select.select([r], [], [], scaled(20))
        b = os.read(r, 1000 - len(got)) if ready else b""
        if not b:
            break
        got += b
    os.close(r)
    check_exit(c, 0, 60, "ktlsctl connect with its stdout closed")
    check_data("the first 1000 bytes", got, data[:1000])


@suite.case("--no-zerocopy: both sides copy (data path), listen stdin a file -> connect stdout "
            "a pipe", timeout=60)
def _zc_off():
    cert, key = certs().srv_ec
    path = tmpfile("zc-off.bin")
    data = random_bytes(64 << 10)
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        k, port = ktlsctl_listen("--cert", cert, "--key", key, "-v", *SESSION_ARGS, "--tls1.3",
                                 "--no-zerocopy", stdin=f)
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                "--tls1.3", "--no-zerocopy", stdin=None, name="ktlsctl connect")
    check_exit(c, 0, 60, "ktlsctl connect --no-zerocopy")
    check_exit(k, 0, 60, "ktlsctl listen --no-zerocopy")
    check_data("ktlsctl connect stdout", c.stdout, data)
    for p in (c, k):
        if data_path(p) != ("copy", "copy"):
            raise Fail("--no-zerocopy: data path %r, expected copy both ways\n%s"
                       % (data_path(p), p.describe()))


# ==================================================== KeyUpdate behind data

@suite.case("KeyUpdate queued behind data while listen is stopped (the POLLIN pitfall): "
            "echo intact, or exit 10 without rekey", timeout=90)
def _keyupdate_behind_data():
    """Data records, a KeyUpdate and more data arrive together: a read stops
    at the KeyUpdate after the kernel has decrypted it, and from then on
    poll() need not report POLLIN although recvmsg would return it (the
    kernel holds the decrypted record; core/channel.h): ktlsctl must keep
    reading until EAGAIN, or it hangs here.  ktlsctl is stopped (SIGSTOP) while gnutls-cli sends, so
    that everything is queued before it reads any of it."""
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS,
                             "--tls1.3", stdin=None)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("gnutls-cli-behind"),
                               gnutls_priority("1.3"), extra=["--inline-commands"]),
               name="gnutls-cli")
    cli.send(PRIME)
    if not cli.wait_out(len(PRIME), 30):
        raise Fail("no echo before the test\n%s" % k.describe())
    a, b = hex_lines(8 << 10), hex_lines(8 << 10)
    k.signal(signal.SIGSTOP)
    cli.send(a + b"^rekey1^\n" + b)

    def queued():
        q = [s[4] for s in tcp_sockets(port) if s[0] == port and s[2] == "01"]
        return q[0] if q else 0
    seen = []

    def settled():       # ktlsctl's receive queue holds everything: it stopped growing
        seen.append(queued())
        return len(seen) > 1 and seen[-1] == seen[-2] > 16384
    if not wait_for(settled, 20, step=0.25):
        k.signal(signal.SIGCONT)
        raise Fail("ktlsctl's receive queue did not settle above 16 KiB: %r" % seen[-5:])
    k.signal(signal.SIGCONT)
    if not can_rekey():
        expect_norekey(k, "ktlsctl listen --echo")
        return
    if not cli.wait_out(len(PRIME + a + b), 30):
        raise Fail("ktlsctl hung: echoed %d of %d bytes (its receive queue held %d)\n%s"
                   % (cli.out_total, len(PRIME + a + b), seen[-1], k.describe()))
    cli.close_stdin()
    check_exit(k, 0, 30, "ktlsctl listen --echo")
    check_data("the echo across the queued KeyUpdate", cli.stdout, PRIME + a + b)


# ===================================== peer-versus-peer sanity (--peers-only)

def sanity_gnutls(version, cipher, kind):
    cert, key = cert_for(kind)
    serv, port = start_gnutls_serv(cert, key, gnutls_priority(version, cipher))
    data = nonul_lines(SMALL)
    cli = Proc(gnutls_cli_argv(port, certs().ca, logname("sanity-gnutls-cli"),
                               gnutls_priority(version, cipher)), name="gnutls-cli", stdin=data)
    rc = cli.wait(60)
    check_data("gnutls-cli stdout (echo)", cli.stdout, data)
    if rc != 0:
        raise Fail("gnutls-cli exit %s\n%s" % (rc, cli.describe()))


def sanity_openssl(version, cipher, kind):
    need_openssl(version, cipher, kind)
    cert, key = cert_for(kind)
    tls = openssl_tls_args(version, cipher, kind)
    srv, port = start_s_server(cert, key, tls)
    down, up = random_bytes(SMALL), random_bytes(SMALL)
    cli = Proc(s_client_argv(port, certs().ca, tls, mode="quiet"), name="s_client")
    up = prime_s_server(srv, cli) + up
    srv.send(down)
    cli.send(up[len(PRIME):])
    if not (cli.wait_out(len(down), 30) and srv.wait_out(len(up), 30)):
        raise Fail("data did not go through")
    cli.close_stdin()
    cli.wait(20)
    srv.wait(20)
    check_data("s_client stdout", cli.stdout, down)
    check_data("s_server stdout", srv.stdout, up)


for _v, _c, _k in MATRIX:
    suite.add("sanity: gnutls-cli <-> gnutls-serv --echo TLS%s %s %s" % (_v, _c, _k),
              lambda v=_v, c=_c, k=_k: sanity_gnutls(v, c, k), timeout=90, group="sanity")
    suite.add("sanity: s_client <-> s_server TLS%s %s %s" % (_v, _c, _k),
              lambda v=_v, c=_c, k=_k: sanity_openssl(v, c, k), timeout=90, group="sanity")


def sanity_close_notify(peer):
    """Documents the peers' answer to a client's close_notify."""
    cert, key = certs().srv_ec
    if peer == "gnutls-serv":
        srv, port = start_gnutls_serv(cert, key)
    else:
        srv, port = start_s_server(cert, key)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    t = PyTls(s, py_client_ctx(certs().ca), server_side=False, server_hostname="localhost")
    t.handshake()
    t.send(b"hello\n")
    if peer == "gnutls-serv":
        t.recv_exact(6)
    t.send_close_notify()
    rest, how = t.recv_until_close()
    t.close()
    if how != "close_notify":
        raise Fail("%s ended with %s after the client's close_notify" % (peer, how))


for _p in ("gnutls-serv", "s_server"):
    suite.add("sanity: %s answers close_notify with close_notify" % _p,
              lambda p=_p: sanity_close_notify(p), timeout=60, group="sanity")


if __name__ == "__main__":
    sys.exit(suite.main())
