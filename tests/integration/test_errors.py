#!/usr/bin/env python3
"""Error paths of ktlsctl: each case checks the exit status documented in
the spec, the one-line message on stderr (prefixed "ktlsctl: "): the whole
line, as core/ and cli/ write it, with only what varies (a port, a path)
filled in, that nothing hangs (every run has a hard timeout), and that no
sanitizer report appears on stderr.  The cases that need a kernel without
kTLS (the fallback) or with it say so (when=...)."""

import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL_ARGS, KERNEL_ONLY, NOREKEY_ENV, PEER_KEYUPDATE_FATAL, USER_SPACE_ONLY,
    kernel_has_ktls_ulp)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_no_sanitizer, free_port, kt_lines, ktlsctl, ktlsctl_listen, need_line, Proc)
from ktlsctl_test.data import check_data, hex_lines, nonul_lines, random_bytes  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, gnutls_cli_argv, gnutls_priority, openssl_tls_args, prime_s_server,
    require_programs, start_gnutls_serv, start_s_server)
from ktlsctl_test.pytls import ServerThread  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_errors", case_timeout=90)
# The channel under test; --eof close: these peers wait for our close_notify
# (ktlsctl_test.peers.EOF_CLOSE).
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE


def certs():
    return suite.certs


def tmpfile(name):
    return os.path.join(suite.tmpdir(), name)


def expect(proc, status, message, timeout=20, max_lines=1, within=None):
    """Exit status, the line "ktlsctl: MESSAGE" on stderr (message: the
    exact text, or a compiled regex the whole text must match), at most
    max_lines non-empty stderr lines (1: the message alone; listen adds its
    "listening on" line), no sanitizer report, and (within) an upper bound
    on the run time."""
    rc = proc.wait(timeout)
    check_no_sanitizer(proc)
    if rc != status:
        raise Fail("exit status %s, expected %s\n%s" % (rc, status, proc.describe()))
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    own = kt_lines(proc)
    if not own:
        raise Fail("no 'ktlsctl: ' message on stderr\n%s" % proc.describe())
    rx = message if hasattr(message, "fullmatch") else re.compile(re.escape(message))
    if not any(rx.fullmatch(l) for l in own):
        raise Fail("no stderr line is 'ktlsctl: %s'\n%s" % (rx.pattern, proc.describe()))
    if max_lines is not None and len(lines) > max_lines:
        raise Fail("the message is not one line: %d lines on stderr\n%s" % (len(lines), proc.describe()))
    if within is not None and proc.elapsed() > scaled(within):
        raise Fail("took %.1fs, expected at most %.0fs\n%s" % (proc.elapsed(), within, proc.describe()))
    return rc


def run(*args, **kw):
    kw.setdefault("stdin", None)
    return ktlsctl(*args, **kw)


# ============================================================ usage: exit 2
# (core/addr.c, cli/opts.c)

MALFORMED = [
    ("", "expected HOST:PORT"),
    ("host", "expected HOST:PORT"),
    ("host:", "the port is missing, expected HOST:PORT"),
    (":443", "the host is missing, expected HOST:PORT"),
    ("[::1", "expected [IPV6]:PORT"),
    ("host:99999", "'99999' is not a port number (1-65535) or service name"),
    ("a:b:c", "write IPv6 addresses as [ADDR]:PORT"),
]

for _a, _m in MALFORMED:
    suite.add("usage: connect %r -> 2" % _a,
              lambda a=_a, m=_m: expect(run("connect", a, *SESSION_ARGS), 2,
                                        "malformed address '%s': %s" % (a, m)))

for _a, _m in (("[::1", "expected [IPV6]:PORT"),
               ("host:99999", "'99999' is not a port number (1-65535) or service name"),
               ("a:b:c", "write IPv6 addresses as [ADDR]:PORT"), ("x", "expected [ADDR]:PORT")):
    suite.add("usage: listen %r -> 2" % _a,
              lambda a=_a, m=_m: expect(run("listen", a, "--cert", certs().srv_ec[0],
                                            "--key", certs().srv_ec[1], *SESSION_ARGS), 2,
                                        "malformed address '%s': %s" % (a, m)))


@suite.case("usage: connect without HOST:PORT -> 2")
def _no_addr():
    expect(run("connect", *SESSION_ARGS), 2,
           "give exactly one HOST:PORT (see 'ktlsctl connect --help')")


@suite.case("usage: connect with two addresses -> 2")
def _two_addr():
    expect(run("connect", "a:1", "b:2", *SESSION_ARGS), 2,
           "give exactly one HOST:PORT (see 'ktlsctl connect --help')")


@suite.case("usage: unknown option -> 2")
def _unknown_opt():
    expect(run("connect", "localhost:1", "--bogus-option", *SESSION_ARGS), 2,
           "unknown option '--bogus-option' (see 'ktlsctl connect --help')")


@suite.case("usage: unknown option for listen -> 2")
def _unknown_opt_listen():
    expect(run("listen", ":0", "--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
               "--bogus-option"), 2, "unknown option '--bogus-option' (see 'ktlsctl listen --help')")


@suite.case("usage: unknown command -> 2")
def _unknown_cmd():
    expect(run("frobnicate"), 2, "unknown command 'frobnicate' (see 'ktlsctl --help')")


@suite.case("usage: no command -> 2")
def _no_cmd():
    expect(run(), 2, "no command given (see 'ktlsctl --help')", max_lines=None)


LISTEN_NEEDS = "listen needs --cert FILE and --key FILE (see 'ktlsctl listen --help')"


@suite.case("usage: listen without --cert -> 2")
def _listen_no_cert():
    expect(run("listen", "127.0.0.1:0", "--key", certs().srv_ec[1], *SESSION_ARGS), 2, LISTEN_NEEDS)


@suite.case("usage: listen without --cert and --key -> 2")
def _listen_no_cert_key():
    expect(run("listen", "127.0.0.1:0", *SESSION_ARGS), 2, LISTEN_NEEDS)


@suite.case("usage: listen without --key -> 2")
def _listen_no_key():
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], *SESSION_ARGS), 2, LISTEN_NEEDS)


SECONDS = "give seconds, more than 0 and at most 86400"
for _opt, _val, _m in (
        ("--cipher", "RC4-128", "unknown cipher 'RC4-128': use AES-128-GCM, AES-256-GCM, "
                                "CHACHA20-POLY1305 or AES-128-CCM"),
        ("--ktls", "sometimes", "invalid --ktls 'sometimes': use auto, require or off"),
        ("--handshake-timeout", "soon", "invalid --handshake-timeout 'soon': " + SECONDS),
        ("--connect-timeout", "-1", "invalid --connect-timeout '-1': " + SECONDS)):
    suite.add("usage: connect %s %s -> 2" % (_opt, _val),
              lambda o=_opt, v=_val, m=_m: expect(run("connect", "localhost:1", o, v), 2, m))


@suite.case("usage: option missing its argument -> 2")
def _missing_optarg():
    expect(run("connect", "localhost:1", "--cafile"), 2,
           "option '--cafile' needs an argument (see 'ktlsctl connect --help')")


# ============================================================ connection: exit 3
# (core/net.c)

@suite.case("connect: connection refused -> 3")
def _refused():
    port = free_port()
    expect(run("connect", "127.0.0.1:%d" % port, *SESSION_ARGS), 3,
           "cannot connect to 127.0.0.1:%d (127.0.0.1:%d): Connection refused" % (port, port),
           within=10)


@suite.case("listen: port already in use -> 3")
def _in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        expect(run("listen", "127.0.0.1:%d" % port, "--cert", certs().srv_ec[0],
                   "--key", certs().srv_ec[1], *SESSION_ARGS), 3,
               "cannot listen on 127.0.0.1:%d: the port is already in use; choose another port "
               "or stop the other server" % port, within=10)
    finally:
        s.close()


@suite.case("connect: name that does not resolve -> 3")
def _resolve():
    # getaddrinfo's answer: no such name, or (no resolver reachable, as in
    # the VM tier's guests) no answer
    expect(run("connect", "nonexistent.invalid:443", *SESSION_ARGS), 3,
           re.compile(r"cannot resolve 'nonexistent\.invalid': "
                      r"(Name or service not known|Temporary failure in name resolution)"),
           timeout=40)


# ========================================================== verification: exit 4
# (core/handshake.c; the reason is GnuTLS's verification status text)

REJECTED = ("server certificate rejected: The certificate is NOT trusted. %s (--cafile FILE to "
            "trust another CA, --insecure to skip the check)")
UNKNOWN_ISSUER = "The certificate issuer is unknown."
WRONG_NAME = "The name in the certificate does not match the expected."


def verify_case(certpair, target, extra, reason):
    serv, port = start_gnutls_serv(*certpair, echo=True)
    host = target.replace("PORT", str(port))
    k = run("connect", host, *extra, *SESSION_ARGS, stdin=b"x\n")
    expect(k, 4, REJECTED % reason, within=15)


@suite.case("verify: server cert from an unrelated CA -> 4 with the reason")
def _unrelated():
    verify_case(certs().other, "localhost:PORT", ["--cafile", certs().ca], UNKNOWN_ISSUER)


@suite.case("verify: server cert without the host name -> 4")
def _wronghost():
    verify_case(certs().wronghost, "localhost:PORT", ["--cafile", certs().ca], WRONG_NAME)


@suite.case("verify: --sni wronghost against a localhost cert (127.0.0.1) -> 4")
def _sni_wrong():
    verify_case(certs().srv_ec, "127.0.0.1:PORT", ["--cafile", certs().ca, "--sni", "wronghost"],
                WRONG_NAME)


@suite.case("verify: expired server cert -> 4")
def _expired():
    verify_case(certs().expired, "localhost:PORT", ["--cafile", certs().ca],
                "The certificate chain uses expired certificate.")


@suite.case("verify: system trust store (no --cafile) rejects the test CA -> 4")
def _system_store():
    verify_case(certs().srv_ec, "localhost:PORT", [], UNKNOWN_ISSUER)


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
    need_line(k, "warning: --insecure: the server's certificate is NOT verified; anyone on the "
                 "path can read and change this session")


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


@suite.case("verify: listen --verify-client, client without a certificate -> 6 'Certificate is "
            "required', no hang")
def _verify_client_none():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--verify-client", "--cafile", certs().ca, "--echo", *SESSION_ARGS)
    cli = Proc(gnutls_cli_argv(port, certs().ca, tmpfile("vc.log")), name="gnutls-cli",
               stdin=b"hello\n")
    cli.wait(20)
    expect(k, 6, "TLS handshake failed: Certificate is required.", max_lines=2)


@suite.case("verify: listen --verify-client, client cert from an unrelated CA -> 4")
def _verify_client_bad():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--verify-client", "--cafile", certs().ca, "--echo", *SESSION_ARGS)
    cli = Proc(gnutls_cli_argv(port, certs().ca, tmpfile("vc2.log"),
                               extra=["--x509certfile", certs().other[0],
                                      "--x509keyfile", certs().other[1]]),
               name="gnutls-cli", stdin=b"hello\n")
    cli.wait(20)
    expect(k, 4, "client certificate rejected: The certificate is NOT trusted. " + UNKNOWN_ISSUER,
           max_lines=2)


# =========================================================== credentials: exit 5
# (core/handshake.c)

NO_SUCH = "cannot read %s '%s': No such file or directory"


@suite.case("credentials: listen --cert missing file -> 5")
def _cert_missing():
    p = tmpfile("nope.pem")
    expect(run("listen", "127.0.0.1:0", "--cert", p, "--key", certs().srv_ec[1], *SESSION_ARGS),
           5, NO_SUCH % ("certificate file", p))


@suite.case("credentials: listen --key missing file -> 5")
def _key_missing():
    p = tmpfile("nope.key")
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", p, *SESSION_ARGS),
           5, NO_SUCH % ("key file", p))


@suite.case("credentials: listen key does not match the certificate -> 5")
def _key_mismatch():
    expect(run("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", certs().srv_rsa[1], *SESSION_ARGS),
           5, "the key in '%s' does not belong to the certificate in '%s'"
           % (certs().srv_rsa[1], certs().srv_ec[0]))


@suite.case("credentials: listen --cert is not a certificate -> 5")
def _cert_garbage():
    p = tmpfile("garbage.pem")
    with open(p, "w") as f:
        f.write("this is not a certificate\n")
    expect(run("listen", "127.0.0.1:0", "--cert", p, "--key", certs().srv_ec[1], *SESSION_ARGS),
           5, "cannot load certificate '%s' with key '%s': Base64 decoding error. (both must be PEM)"
           % (p, certs().srv_ec[1]))


@suite.case("credentials: connect --cafile missing file -> 5")
def _cafile_missing():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    p = tmpfile("noca.pem")
    expect(run("connect", "localhost:%d" % port, "--cafile", p, *SESSION_ARGS),
           5, NO_SUCH % ("CA file", p))


@suite.case("credentials: connect --cafile without certificates -> 5")
def _cafile_garbage():
    p = tmpfile("garbage-ca.pem")
    with open(p, "w") as f:
        f.write("nothing here\n")
    serv, port = start_gnutls_serv(*certs().srv_ec)
    expect(run("connect", "localhost:%d" % port, "--cafile", p, *SESSION_ARGS),
           5, "CA file '%s' holds no PEM certificate" % p)


@suite.case("credentials: connect --cert/--key missing key file -> 5")
def _client_key_missing():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    p = tmpfile("nokey.key")
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--cert", certs().client[0],
               "--key", p, *SESSION_ARGS), 5, NO_SUCH % ("key file", p))


# ============================================================ handshake: exit 6
# (core/handshake.c; the reason is GnuTLS's)

NOT_TLS = ("TLS handshake failed: An unexpected TLS packet was received. (is the peer speaking "
           "TLS on this port?)")
PEER_ALERT = "TLS handshake failed: the peer sent alert 'Handshake failed'"


def plain_server(payload, then_close=False, hold=10, after_hello=False):
    """A plain TCP server that sends payload (not TLS), then closes or holds;
    after_hello: once the client's first bytes (its ClientHello) arrived."""
    def serve(sock):
        sock.settimeout(scaled(hold) + 5)
        try:
            if after_hello:
                sock.recv(65536)
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
           6, NOT_TLS, within=10)


# On the kernel channel ktlsctl puts the tls ULP on the socket before the
# handshake, which the kernel allows only while the connection is
# established: a peer that closed at once makes --ktls require fail with
# exit 7, "kernel TLS unavailable and --ktls require given: the socket is
# not connected" (a misleading message for a peer that hung up; cli/
# session.c choose_channel).  The case after it closes once our ClientHello
# is out, on every channel.
@suite.case("handshake: plain TCP peer sends HTTP and closes before our ClientHello -> 6",
            when=USER_SPACE_ONLY)
def _http_peer_close():
    st = plain_server(b"HTTP/1.0 200 OK\r\n\r\nhello", then_close=True)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, NOT_TLS, within=10)


@suite.case("handshake: plain TCP peer answers our ClientHello with HTTP and closes -> 6")
def _http_peer_answer_close():
    st = plain_server(b"HTTP/1.0 400 Bad Request\r\n\r\n", then_close=True, after_hello=True)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, NOT_TLS, within=10)


@suite.case("handshake: plain TCP peer sends random bytes -> 6, no hang")
def _random_peer():
    junk = b"\x00" + random_bytes(4095)        # content type 0: no TLS record
    st = plain_server(junk)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca, *SESSION_ARGS),
           6, NOT_TLS, within=10)


@suite.case("handshake: listen, plain TCP client sends garbage -> 6, no hang")
def _listen_garbage():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1], *SESSION_ARGS)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        expect(k, 6, NOT_TLS, within=10, max_lines=2)
    finally:
        s.close()


@suite.case("handshake: --tls1.2 against a TLS 1.3-only server -> 6")
def _version_mismatch():
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority("1.3"))
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--tls1.2", *SESSION_ARGS),
           6, PEER_ALERT, within=10)


@suite.case("handshake: --cipher AES-128-CCM against a GCM-only server -> 6")
def _cipher_mismatch():
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority(None, "AES-128-GCM"))
    expect(run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--cipher", "AES-128-CCM", *SESSION_ARGS),
           6, PEER_ALERT, within=10)


# ============================================================== timeout: exit 12

TIMED_OUT = ("TLS handshake timed out after %d ms: the peer stopped answering (raise "
             "--handshake-timeout if it is just slow)")


@suite.case("timeout: peer accepts and never speaks, --handshake-timeout 1 -> 12 within a few seconds")
def _silent_peer():
    st = plain_server(b"", hold=15)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca,
               "--handshake-timeout", "1", *SESSION_ARGS), 12, TIMED_OUT % 1000, within=5)


@suite.case("timeout: --handshake-timeout 0.5 (decimal) -> 12")
def _silent_peer_decimal():
    st = plain_server(b"", hold=15)
    expect(run("connect", "localhost:%d" % st.port, "--cafile", certs().ca,
               "--handshake-timeout", "0.5", *SESSION_ARGS), 12, TIMED_OUT % 500, within=4)


@suite.case("timeout: listen, client connects and never speaks, --handshake-timeout 1 -> 12")
def _silent_client():
    k, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                             "--handshake-timeout", "1", *SESSION_ARGS)
    s = socket.create_connection(("127.0.0.1", port), timeout=scaled(10))
    try:
        expect(k, 12, TIMED_OUT % 1000, within=6, max_lines=2)
    finally:
        s.close()


# ================================================================= kTLS: exit 7

# The fallback: on the user-space channel, where this machine's kernel has
# no kTLS (cases for a kernel with it follow).

def no_ktls_here():
    if kernel_has_ktls_ulp():
        raise Skip("this kernel offers the tls ULP (/proc/sys/net/ipv4/tcp_available_ulp), "
                   "so --ktls require may legitimately succeed")


# Why (core/channel_kernel.c), on a kernel without the tls ULP; how --ktls
# require fails (cli/session.c) and how --ktls auto goes on with it.
NO_ULP = "this kernel has no TLS ULP (tls module not loaded or CONFIG_TLS off): try 'modprobe tls'"
NO_KTLS = "kernel TLS unavailable and --ktls require given: " + NO_ULP
FALLBACK = "notice: kernel TLS unavailable (%s); using the user-space record channel" % NO_ULP


@suite.case("ktls: connect --ktls require without kernel TLS -> 7 naming the reason",
            when=USER_SPACE_ONLY)
def _require_connect():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--ktls", "require", stdin=True)
    expect(k, 7, NO_KTLS, within=15)


@suite.case("ktls: listen --ktls require without kernel TLS -> 7 naming the reason",
            when=USER_SPACE_ONLY)
def _require_listen():
    no_ktls_here()
    k = ktlsctl("listen", "127.0.0.1:0", "--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                "--ktls", "require", stdin=True)
    m = k.wait_err(r"ktlsctl: listening on \S+:(\d+)", 10)
    if m:   # fails only once a connection is handed over: give it one
        cli = Proc(gnutls_cli_argv(int(m.group(1)), certs().ca, tmpfile("req.log")),
                   name="gnutls-cli", stdin=True)
        cli.send(b"hello\n")
    expect(k, 7, NO_KTLS, within=15, max_lines=2)


@suite.case("ktls: --ktls auto prints the fallback notice and works", when=USER_SPACE_ONLY)
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
    need_line(k, FALLBACK)


@suite.case("ktls: default mode is auto (notice without --ktls)", when=USER_SPACE_ONLY)
def _auto_default():
    no_ktls_here()
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, stdin=b"x\n")
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, k.describe()))
    need_line(k, FALLBACK)


@suite.case("ktls: --ktls auto -q prints no notice")
def _auto_quiet():
    serv, port = start_gnutls_serv(*certs().srv_ec)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "--ktls", "auto", "-q",
            stdin=b"x\n")
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0 or k.stderr.strip():
        raise Fail("expected exit 0 and an empty stderr\n%s" % k.describe())


def auto_on_kernel(*args):
    """connect ARGS -v to gnutls-serv on a kernel with kTLS: exit 0, the
    kernel channel, no fallback notice."""
    serv, port = start_gnutls_serv(*certs().srv_ec)
    data = nonul_lines(4096)
    k = run("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *args, stdin=data)
    rc = k.wait(20)
    check_no_sanitizer(k)
    if rc != 0 or not re.search(r"^ktlsctl: connected to \S+: TLS1\.3 \S+, kernel channel$",
                                k.stderr, re.M) or "notice" in k.stderr:
        raise Fail("expected exit 0, the kernel channel and no notice\n%s" % k.describe())
    check_data("ktlsctl stdout", k.stdout, data)


suite.add("ktls: --ktls auto on a kernel with kTLS: the kernel channel, no notice",
          lambda: auto_on_kernel("--ktls", "auto"), when=KERNEL_ONLY)
suite.add("ktls: default mode is auto: the kernel channel, no notice",
          lambda: auto_on_kernel(), when=KERNEL_ONLY)


# ======================================================== no rekey: exit 10
# The user-space channel made to act like a kernel without TLS 1.3 rekey
# (the VM tier runs the real thing: test_peers' counterparts on Linux 6.1).

NOREKEY = NOREKEY_ENV


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1, gnutls-cli ^rekey1^ -> listen exits 10",
            when=USER_SPACE_ONLY)
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
    expect(k, 10, PEER_KEYUPDATE_FATAL, max_lines=2)
    cli.close_stdin()
    cli.wait(20)


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1, s_server k -> connect exits 10",
            when=USER_SPACE_ONLY)
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
    expect(k, 10, PEER_KEYUPDATE_FATAL)


@suite.case("norekey: KTLSCTL_TEST_SOFT_NOREKEY=1 without a KeyUpdate still exits 0",
            when=USER_SPACE_ONLY)
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
    # "Lets print some clear text": type 'L', a length field of 0x7320
    expect(k, 9, "the peer sent an oversized record (sent alert record_overflow)")


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
