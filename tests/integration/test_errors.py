#!/usr/bin/env python3
"""Error paths of ktlsctl: each case checks the exit status documented in
the spec, a one-line message on stderr (prefixed "ktlsctl: ", with a key
phrase), that nothing hangs (every run has a hard timeout), and that no
sanitizer report appears on stderr."""

import os
import re
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import kernel_has_ktls_ulp  # noqa: E402
from ktlsctl_test.channel import CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, Proc)
from ktlsctl_test.data import check_data, hex_lines, nonul_lines, random_bytes  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, gnutls_cli_argv, gnutls_priority, openssl_tls_args, prime_s_server,
    require_programs, start_gnutls_serv, start_s_server)
from ktlsctl_test.pytls import py_client_ctx, PyTls, ServerThread  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_errors", case_timeout=90)
# The channel under test; --eof close: these peers wait for our close_notify
# (ktlsctl_test.peers.EOF_CLOSE).
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE


def certs():
    return suite.certs


def tmpfile(name):
    return os.path.join(suite.tmpdir(), name)


def expect(proc, status, phrase, timeout=20, max_lines=1, within=None):
    """Exit status, a ktlsctl: line matching phrase, at most max_lines
    non-empty stderr lines (1: the message alone; listen adds its
    "listening on" line), no sanitizer report, and (within) an upper bound
    on the run time."""
    rc = proc.wait(timeout)
    check_no_sanitizer(proc)
    if rc != status:
        raise Fail("exit status %s, expected %s\n%s" % (rc, status, proc.describe()))
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    own = [l for l in lines if l.startswith("ktlsctl: ")]
    if not own:
        raise Fail("no 'ktlsctl: ' message on stderr\n%s" % proc.describe())
    if phrase and not any(re.search(phrase, l, re.I) for l in own):
        raise Fail("no stderr line matches /%s/\n%s" % (phrase, proc.describe()))
    if max_lines is not None and len(lines) > max_lines:
        raise Fail("the message is not one line: %d lines on stderr\n%s" % (len(lines), proc.describe()))
    if within is not None and proc.elapsed() > scaled(within):
        raise Fail("took %.1fs, expected at most %.0fs\n%s" % (proc.elapsed(), within, proc.describe()))
    return rc


def run(*args, **kw):
    kw.setdefault("stdin", None)
    return ktlsctl(*args, **kw)


# ============================================================ usage: exit 2

MALFORMED = [
    ("", r"HOST:PORT|address"),
    ("host", r"HOST:PORT|port"),
    ("host:", r"port"),
    (":443", r"host|HOST:PORT"),
    ("[::1", r"\]|IPV6|bracket|HOST:PORT|address"),
    ("host:99999", r"99999|port"),
    ("a:b:c", r"IPv6|\[|HOST:PORT|address"),
]

for _a, _p in MALFORMED:
    suite.add("usage: connect %r -> 2" % _a,
              lambda a=_a, p=_p: expect(run("connect", a, *SESSION_ARGS), 2, p))

for _a in ("[::1", "host:99999", "a:b:c", "x"):
    suite.add("usage: listen %r -> 2" % _a,
              lambda a=_a: expect(run("listen", a, "--cert", certs().srv_ec[0],
                                      "--key", certs().srv_ec[1], *SESSION_ARGS), 2,
                                  r"HOST:PORT|ADDR|address|port"))


@suite.case("usage: connect without HOST:PORT -> 2")
def _no_addr():
    expect(run("connect", *SESSION_ARGS), 2, r"HOST:PORT|address|missing")


@suite.case("usage: connect with two addresses -> 2")
def _two_addr():
    expect(run("connect", "a:1", "b:2", *SESSION_ARGS), 2, r"HOST:PORT|address|argument|one")


@suite.case("usage: unknown option -> 2")
def _unknown_opt():
    expect(run("connect", "localhost:1", "--bogus-option", *SESSION_ARGS), 2, r"--bogus-option")


@suite.case("usage: unknown option for listen -> 2")
def _unknown_opt_listen():
    expect(run("listen", ":0", "--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
               "--bogus-option"), 2, r"--bogus-option")


@suite.case("usage: unknown command -> 2")
def _unknown_cmd():
    expect(run("frobnicate"), 2, r"frobnicate|command")


@suite.case("usage: no command -> 2")
def _no_cmd():
    expect(run(), 2, r"command|usage|help", max_lines=None)


@suite.case("usage: listen without --cert -> 2")
def _listen_no_cert():
    expect(run("listen", "127.0.0.1:0", "--key", certs().srv_ec[1], *SESSION_ARGS), 2, r"--cert")


@suite.case("usage: listen without --cert and --key -> 2")
def _listen_no_cert_key():
    expect(run("listen", "127.0.0.1:0", *SESSION_ARGS), 2, r"--cert")


@suite.case("usage: listen without --key -> 2")
def _listen_no_key():
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], *SESSION_ARGS), 2, r"--key")


for _opt, _val in (("--cipher", "RC4-128"), ("--ktls", "sometimes"),
                   ("--handshake-timeout", "soon"), ("--connect-timeout", "-1")):
    suite.add("usage: connect %s %s -> 2" % (_opt, _val),
              lambda o=_opt, v=_val: expect(run("connect", "localhost:1", o, v), 2,
                                            re.escape(o) + "|" + re.escape(v)))


@suite.case("usage: option missing its argument -> 2")
def _missing_optarg():
    expect(run("connect", "localhost:1", "--cafile"), 2, r"--cafile|argument")


# ============================================================ connection: exit 3

@suite.case("connect: connection refused -> 3")
def _refused():
    port = free_port()
    expect(run("connect", "127.0.0.1:%d" % port, *SESSION_ARGS), 3, r"refused|connect", within=10)


@suite.case("listen: port already in use -> 3")
def _in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        expect(run("listen", "127.0.0.1:%d" % port, "--cert", certs().srv_ec[0],
                   "--key", certs().srv_ec[1], *SESSION_ARGS), 3, r"in use|bind|listen", within=10)
    finally:
        s.close()


@suite.case("connect: name that does not resolve -> 3")
def _resolve():
    expect(run("connect", "nonexistent.invalid:443", *SESSION_ARGS), 3, r"resolve|nonexistent", timeout=40)


# ========================================================== verification: exit 4

def verify_case(certpair, target, extra, phrase):
    serv, port = start_gnutls_serv(*certpair, echo=True)
    host = target.replace("PORT", str(port))
    k = run("connect", host, *extra, *SESSION_ARGS, stdin=b"x\n")
    expect(k, 4, phrase, within=15)


@suite.case("verify: server cert from an unrelated CA -> 4 with the reason")
def _unrelated():
    verify_case(certs().other, "localhost:PORT", ["--cafile", certs().ca],
                r"issuer|signer|trust|unknown|not verif|untrusted")


@suite.case("verify: server cert without the host name -> 4")
def _wronghost():
    verify_case(certs().wronghost, "localhost:PORT", ["--cafile", certs().ca],
                r"host ?name|name|match")


@suite.case("verify: --sni wronghost against a localhost cert (127.0.0.1) -> 4")
def _sni_wrong():
    verify_case(certs().srv_ec, "127.0.0.1:PORT", ["--cafile", certs().ca, "--sni", "wronghost"],
                r"host ?name|name|match")


@suite.case("verify: expired server cert -> 4")
def _expired():
    verify_case(certs().expired, "localhost:PORT", ["--cafile", certs().ca], r"expired")


@suite.case("verify: system trust store (no --cafile) rejects the test CA -> 4")
def _system_store():
    verify_case(certs().srv_ec, "localhost:PORT", [],
                r"issuer|signer|trust|unknown|not verif|untrusted")


@suite.case("verify: --insecure accepts an unrelated CA, exit 0, warning printed")
def _insecure():
    serv, port = start_gnutls_serv(*certs().other, echo=True)
    data = nonul_lines(4096)
    k = run("connect", "localhost:%d" % port, "--insecure", *SESSION_ARGS, stdin=data)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, k.describe()))
    check_data("ktlsctl stdout", k.stdout, data)
    if not re.search(r"^ktlsctl: .*(warning|insecure|not verified|NOT verified)", k.stderr, re.I | re.M):
        raise Fail("no warning about --insecure on stderr\n%s" % k.describe())


@suite.case("verify: --insecure -q prints no warning")
def _insecure_quiet():
    serv, port = start_gnutls_serv(*certs().other, echo=True)
    data = nonul_lines(4096)
    k = run("connect", "localhost:%d" % port, "--insecure", "-q", *SESSION_ARGS, stdin=data)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0 or k.stderr.strip():
        raise Fail("expected exit 0 and an empty stderr\n%s" % k.describe())
    check_data("ktlsctl stdout", k.stdout, data)


@suite.case("verify: listen --verify-client, client without a certificate -> non-zero, no hang")
def _verify_client_none():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--verify-client", "--cafile", certs().ca, "--echo", *SESSION_ARGS)
    cli = Proc(gnutls_cli_argv(port, certs().ca, tmpfile("vc.log")), name="gnutls-cli",
               stdin=b"hello\n")
    cli.wait(20)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc not in (4, 6):
        raise Fail("exit status %s, expected 4 (peer certificate) or 6 (handshake)\n%s"
                   % (rc, k.describe()))


@suite.case("verify: listen --verify-client, client cert from an unrelated CA -> 4")
def _verify_client_bad():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--verify-client", "--cafile", certs().ca, "--echo", *SESSION_ARGS)
    cli = Proc(gnutls_cli_argv(port, certs().ca, tmpfile("vc2.log"),
                               extra=["--x509certfile", certs().other[0],
                                      "--x509keyfile", certs().other[1]]),
               name="gnutls-cli", stdin=b"hello\n")
    cli.wait(20)
    expect(k, 4, r"issuer|signer|trust|unknown|not verif|untrusted|certificate", max_lines=2)


# =========================================================== credentials: exit 5

@suite.case("credentials: listen --cert missing file -> 5")
def _cert_missing():
    expect(run("listen", "127.0.0.1:0", "--cert", tmpfile("nope.pem"), "--key", certs().srv_ec[1], *SESSION_ARGS),
           5, r"nope\.pem|no such|cert")


@suite.case("credentials: listen --key missing file -> 5")
def _key_missing():
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", tmpfile("nope.key"), *SESSION_ARGS),
           5, r"nope\.key|no such|key")


@suite.case("credentials: listen key does not match the certificate -> 5")
def _key_mismatch():
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", certs().srv_rsa[1], *SESSION_ARGS),
           5, r"match|key")


@suite.case("credentials: listen --cert is not a certificate -> 5")
def _cert_garbage():
    p = tmpfile("garbage.pem")
    with open(p, "w") as f:
        f.write("this is not a certificate\n")
    expect(run("listen", "127.0.0.1:0", "--cert", p, "--key", certs().srv_ec[1], *SESSION_ARGS),
           5, r"garbage\.pem|certificate|cert")


@suite.case("credentials: connect --cafile missing file -> 5")
def _cafile_missing():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    expect(run("connect", "localhost:%d" % port, "--cafile", tmpfile("noca.pem"), *SESSION_ARGS),
           5, r"noca\.pem|no such|CA|cafile")


@suite.case("credentials: connect --cafile without certificates -> 5")
def _cafile_garbage():
    p = tmpfile("garbage-ca.pem")
    with open(p, "w") as f:
        f.write("nothing here\n")
    serv, port = start_gnutls_serv(*certs().srv_ec)
    expect(run("connect", "localhost:%d" % port, "--cafile", p, *SESSION_ARGS),
           5, r"garbage-ca\.pem|CA|certificate|cafile")


@suite.case("credentials: connect --cert/--key missing key file -> 5")
def _client_key_missing():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--cert", certs().client[0],
               "--key", tmpfile("nokey.key"), *SESSION_ARGS), 5, r"nokey\.key|no such|key")


# ============================================================ handshake: exit 6

def plain_server(payload, then_close=False, hold=10):
    """A plain TCP server that sends payload (not TLS), then closes or holds."""
    def serve(sock):
        sock.settimeout(scaled(hold) + 5)
        try:
            sock.sendall(payload)
            if then_close:
                sock.shutdown(socket.SHUT_WR)
            # keep reading what the client says until it goes away
            end = time.monotonic() + scaled(hold)
            while time.monotonic() < end:
                try:
                    if not sock.recv(65536):
                        break
                except socket.timeout:
                    break
        except OSError:
            pass
        finally:
            sock.close()
    return ServerThread(serve)


@suite.case("handshake: plain TCP peer answers HTTP -> 6, no hang")
def _http_peer():
    st = plain_server(b"HTTP/1.0 200 OK\r\n\r\nhello")
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, r"handshake|TLS|unexpected|packet|record", within=10)


@suite.case("handshake: plain TCP peer sends HTTP and closes -> 6")
def _http_peer_close():
    st = plain_server(b"HTTP/1.0 200 OK\r\n\r\nhello", then_close=True)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, r"handshake|TLS|unexpected|packet|record|closed", within=10)


@suite.case("handshake: plain TCP peer sends random bytes -> 6, no hang")
def _random_peer():
    junk = b"\x00" + random_bytes(4095)
    st = plain_server(junk)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, r"handshake|TLS|unexpected|packet|record", within=10)


@suite.case("handshake: listen, plain TCP client sends garbage -> 6, no hang")
def _listen_garbage():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *SESSION_ARGS)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        expect(k, 6, r"handshake|TLS|unexpected|packet|record", within=10, max_lines=2)
    finally:
        s.close()


@suite.case("handshake: --tls1.2 against a TLS 1.3-only server -> 6")
def _version_mismatch():
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority("1.3"))
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--tls1.2", *SESSION_ARGS),
           6, r"handshake|version|protocol|supported", within=10)


@suite.case("handshake: --cipher AES-128-CCM against a GCM-only server -> 6")
def _cipher_mismatch():
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority(None, "AES-128-GCM"))
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--cipher", "AES-128-CCM", *SESSION_ARGS),
           6, r"handshake|cipher|suite|algorithm|supported|alert", within=10)


# ============================================================== timeout: exit 12

@suite.case("timeout: peer accepts and never speaks, --handshake-timeout 1 -> 12 within a few seconds")
def _silent_peer():
    st = plain_server(b"", hold=15)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca,
               "--handshake-timeout", "1", *SESSION_ARGS), 12, r"time|timed out", within=5)


@suite.case("timeout: --handshake-timeout 0.5 (decimal) -> 12")
def _silent_peer_decimal():
    st = plain_server(b"", hold=15)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca,
               "--handshake-timeout", "0.5", *SESSION_ARGS), 12, r"time|timed out", within=4)


@suite.case("timeout: listen, client connects and never speaks, --handshake-timeout 1 -> 12")
def _silent_client():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--handshake-timeout", "1", *SESSION_ARGS)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    try:
        expect(k, 12, r"time|timed out", within=6, max_lines=2)
    finally:
        s.close()


# ================================================================= kTLS: exit 7

def no_ktls_here():
    if kernel_has_ktls_ulp():
        raise Skip("this kernel offers the tls ULP (/proc/sys/net/ipv4/tcp_available_ulp), "
                   "so --ktls require may legitimately succeed")


@suite.case("ktls: connect --ktls require without kernel TLS -> 7 naming the reason")
def _require_connect():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--ktls", "require", stdin=True)
    expect(k, 7, r"(kernel TLS|kTLS).*(\(|:).{4,}|ULP|tls module|not available|unavailable", within=15)


@suite.case("ktls: listen --ktls require without kernel TLS -> 7 naming the reason")
def _require_listen():
    no_ktls_here()
    k = ktlsctl("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                "--ktls", "require", stdin=True)
    m = k.wait_err(r"ktlsctl: listening on \S+:(\d+)", 10)
    if m:   # fails only once a connection is handed over: give it one
        cli = Proc(gnutls_cli_argv(int(m.group(1)), certs().ca, tmpfile("req.log")),
                   name="gnutls-cli", stdin=True)
        cli.send(b"hello\n")
    expect(k, 7, r"(kernel TLS|kTLS).*(\(|:).{4,}|ULP|tls module|not available|unavailable",
           within=15, max_lines=2)


@suite.case("ktls: --ktls auto prints the fallback notice and works")
def _auto_notice():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    data = nonul_lines(4096)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--ktls", "auto", stdin=data)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, k.describe()))
    check_data("ktlsctl stdout", k.stdout, data)
    notice = re.compile(r"^ktlsctl: notice: kernel TLS unavailable \(.+\); "
                        r"using the user-space record channel$", re.M)
    if len(notice.findall(k.stderr)) != 1:
        raise Fail("expected exactly one fallback notice line\n%s" % k.describe())


@suite.case("ktls: default mode is auto (notice without --ktls)")
def _auto_default():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, stdin=b"x\n")
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0 or "kernel TLS unavailable" not in k.stderr:
        raise Fail("expected exit 0 and the fallback notice\n%s" % k.describe())


@suite.case("ktls: --ktls auto -q prints no notice")
def _auto_quiet():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--ktls", "auto", "-q",
            stdin=b"x\n")
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0 or k.stderr.strip():
        raise Fail("expected exit 0 and an empty stderr\n%s" % k.describe())


# ======================================================== no rekey: exit 10

NOREKEY = {"KTLSCTL_TEST_SOFT_NOREKEY": "1"}


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1, gnutls-cli ^rekey1^ -> listen exits 10")
def _norekey_listen():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--echo", "--tls1.3", *SESSION_ARGS, extra_env=NOREKEY)
    first, second = hex_lines(8192), hex_lines(8192)
    cli = Proc(gnutls_cli_argv(port, certs().ca, tmpfile("norekey.log"), gnutls_priority("1.3"),
                               extra=["--inline-commands"]),
               name="gnutls-cli", stdin=True)
    cli.send(first)
    if not cli.wait_out(len(first), 20):
        raise Fail("the echo before the KeyUpdate did not come back\n%s" % k.describe())
    cli.send(b"^rekey1^\n" + second)
    expect(k, 10, r"rekey|key ?update|updated its keys|cannot", max_lines=2)
    cli.close_stdin()
    cli.wait(20)


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1, s_server k -> connect exits 10")
def _norekey_connect():
    srv, port = start_s_server(*certs().srv_ec, tls_args=openssl_tls_args("1.3"), quiet=False)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=True,
                extra_env=NOREKEY)
    prime_s_server(srv, k)
    d = hex_lines(4096)
    srv.send(d)
    if not k.wait_out(len(d), 20):
        raise Fail("data before the KeyUpdate did not arrive\n%s" % k.describe())
    srv.send(b"k\n")
    expect(k, 10, r"rekey|key ?update|updated its keys|cannot")


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1 without a KeyUpdate still exits 0")
def _norekey_noop():
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority("1.3"))
    data = nonul_lines(64 << 10)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=data,
                extra_env=NOREKEY)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, k.describe()))
    check_data("ktlsctl stdout", k.stdout, data)


# ============================================== protocol error after handshake: 9

@suite.case("protocol: s_server 'P' writes plaintext into the session -> 9")
def _plaintext_record():
    srv, port = start_s_server(*certs().srv_ec, tls_args=openssl_tls_args("1.3"), quiet=False)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=True)
    prime_s_server(srv, k)
    d = hex_lines(4096)
    srv.send(d)
    if not k.wait_out(len(d), 20):
        raise Fail("data did not arrive\n%s" % k.describe())
    srv.send(b"P\n")
    expect(k, 9, r"record|protocol|decrypt|unexpected|bad|alert|MAC")


# ======================================================== signals: 130, 143

def signal_case(sig, status):
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=True)
    k.send(b"hello\n")
    if not k.wait_out(6, 20):
        raise Fail("session did not start\n%s" % k.describe())
    k.signal(sig)
    rc = k.wait(10)
    check_no_sanitizer(k)
    if rc != status:
        raise Fail("exit status %s after signal %d, expected %s\n%s" % (rc, sig, status, k.describe()))


suite.add("signal: SIGINT during a session -> 130", lambda: signal_case(signal.SIGINT, 130))
suite.add("signal: SIGTERM during a session -> 143", lambda: signal_case(signal.SIGTERM, 143))


@suite.case("signal: SIGTERM while listen waits for a client -> 143")
def _sigterm_listen():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *SESSION_ARGS)
    k.signal(signal.SIGTERM)
    rc = k.wait(10)
    check_no_sanitizer(k)
    if rc != 143:
        raise Fail("exit status %s, expected 143\n%s" % (rc, k.describe()))


def expect_stop_exit(k, status, run, lost, wait=5):
    """k was sent a stop signal: it must exit with status within wait s."""
    try:
        rc = k.wait(wait)
    except Fail:
        raise Fail("run %d: %s: still running %gs later (killed)\n%s" % (run, lost, wait, k.describe()))
    check_no_sanitizer(k)
    if rc != status:
        raise Fail("run %d: exit status %s, expected %s\n%s" % (run, rc, status, k.describe()))


@suite.case("signal: SIGTERM during a stalled handshake, 10 times -> 143 at once, not at the timeout",
            timeout=120)
def _sigterm_handshake():
    """The handshake waits on the peer with a deadline of its own; a stop
    signal must end that wait at once, however it lands."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    try:
        for i in range(10):
            k = ktlsctl("connect", "127.0.0.1:%d" % port, "--insecure", *SESSION_ARGS,
                        "--handshake-timeout", "60", stdin=True)
            conn, _ = lsock.accept()   # connected: the ClientHello is on its way
            time.sleep(0.02 * i)
            k.signal(signal.SIGTERM)
            expect_stop_exit(k, 143, i + 1, "SIGTERM during the handshake was lost", wait=10)
            conn.close()
    finally:
        lsock.close()


@suite.case("signal: SIGTERM right after 'listening on', 40 times -> 143, never a hang", timeout=240)
def _sigterm_listen_race():
    """A signal that lands between the 'listening on' notice and accept()
    must not be lost (no SA_RESTART alone is not enough: the flag has to be
    checked atomically with the wait, e.g. ppoll or a self-pipe)."""
    for i in range(40):
        k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *SESSION_ARGS)
        k.signal(signal.SIGTERM)
        expect_stop_exit(k, 143, i + 1, "SIGTERM sent right after the 'listening on' line was "
                         "lost: ktlsctl still waited for a client")


@suite.case("signal: SIGINT right after the first echo, 25 times -> 130, never a hang", timeout=150)
def _sigint_session_race():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    for i in range(25):
        k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=True)
        k.send(b"ping\n")
        if not k.wait_out(5, 20):
            raise Fail("run %d: no echo\n%s" % (i + 1, k.describe()))
        k.signal(signal.SIGINT)
        expect_stop_exit(k, 130, i + 1, "SIGINT during an idle session was lost")


# ============================================================ help and version

COMMON = ["--tls1.2", "--tls1.3", "--cipher", "--priority", "--ktls", "--handshake-timeout",
          "--cafile", "--cert", "--key", "-q", "--quiet", "-v", "--verbose", "-h", "--help"]
HELP = {
    "connect": COMMON + ["--connect-timeout", "--insecure", "--sni", "--alpn"],
    "listen": COMMON + ["--echo", "-k", "--keep-open", "--verify-client"],
    "selftest": ["-v", "--verbose", "-q", "--quiet", "-h", "--help"],
}


def mentions(text, opt):
    return re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", text) is not None


def help_case(cmd, flag):
    k = run(cmd, flag)
    rc = k.wait(10)
    check_no_sanitizer(k)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, k.describe()))
    out = k.stdout.decode("utf-8", "replace")
    if not out.strip():
        raise Fail("no help on stdout (stderr has %d bytes)\n%s" % (len(k.stderr), k.describe()))
    missing = [o for o in HELP[cmd] if not mentions(out, o)]
    if missing:
        raise Fail("%s %s does not mention: %s" % (cmd, flag, " ".join(missing)))


for _cmd in ("connect", "listen", "selftest"):
    suite.add("help: ktlsctl %s --help mentions every option" % _cmd,
              lambda c=_cmd: help_case(c, "--help"))
    suite.add("help: ktlsctl %s -h" % _cmd, lambda c=_cmd: help_case(c, "-h"))


@suite.case("help: ktlsctl --help lists the commands and -V/--version")
def _top_help():
    for flag in ("--help", "-h"):
        k = run(flag)
        rc = k.wait(10)
        check_no_sanitizer(k)
        out = k.stdout.decode("utf-8", "replace")
        if rc != 0:
            raise Fail("%s: exit status %s\n%s" % (flag, rc, k.describe()))
        missing = [w for w in ("connect", "listen", "selftest", "--help", "--version")
                   if not mentions(out, w)]
        if missing:
            raise Fail("ktlsctl %s does not mention: %s" % (flag, " ".join(missing)))


@suite.case("version: --version and -V exit 0 with a version number")
def _version():
    for flag in ("--version", "-V"):
        k = run(flag)
        rc = k.wait(10)
        check_no_sanitizer(k)
        out = k.stdout.decode("utf-8", "replace")
        if rc != 0 or not re.search(r"ktlsctl.*\d+\.\d+", out):
            raise Fail("%s: exit %s, stdout %r\n%s" % (flag, rc, out[:200], k.describe()))


if __name__ == "__main__":
    sys.exit(suite.main())
