#!/usr/bin/env python3
"""listen as a real server side (issue 15): several --cert/--key pairs
chosen by the client's SNI and signature algorithms, --alpn in our order
and --alpn-strict, the name and protocol in -v, stats, the log line and an
--exec command's environment, SIGHUP reloading every pair as one set, and
TLS 1.3 early data (0-RTT) both ways.

The peers are real: openssl s_client and s_server, gnutls-cli, and
ktlsctl itself.  The certificate a client received is checked by its
SHA-256 fingerprint against the file it came from; early data and what
follows it are random bytes, checked byte for byte.
"""

import json
import os
import re
import signal
import socket
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.channel import CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    Proc, check_exit, ktlsctl, ktlsctl_listen, ktlsctl_run, kt_lines, need_line,
    need_regex_line)
from ktlsctl_test.data import random_bytes  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, require_programs, s_client_argv, start_s_server)
from ktlsctl_test.certs import fingerprint, put_pair, replace_file  # noqa: E402
from ktlsctl_test.relays import Relay  # noqa: E402

require_programs("certtool", "gnutls-cli", "openssl")

suite = Suite("test_listen_sni", case_timeout=120)

ECDSA_ONLY = "NORMAL:-SIGN-ALL:+SIGN-ECDSA-SECP256R1-SHA256"
RSA_ONLY = "NORMAL:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-SHA256"
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", re.S)


def certs():
    return suite.certs


def pair_args(*names):
    """--cert/--key for each named pair of the test PKI, in order."""
    out = []
    for n in names:
        cert, key = getattr(certs(), n)
        out += ["--cert", cert, "--key", key]
    return out


SET = ("srv_ec", "alpha_ec", "alpha_rsa", "beta_ec", "wild_ec", "wild_rsa")


def serve(*args, pairs=SET):
    """listen --echo -k (serving many) with the pairs given."""
    return ktlsctl_listen(*pair_args(*pairs), *CHANNEL_ARGS, "--echo", "-k", *args)


def stop(k):
    k.signal(signal.SIGTERM)
    check_exit(k, 143, 20, "ktlsctl listen after SIGTERM")


def pem_sha(text, what, proc):
    m = PEM_RE.search(text)
    if not m:
        raise Fail("%s: no certificate in its output\n%s" % (what, proc.describe(4000)))
    path = os.path.join(suite.tmpdir(), "got-%s.pem" % os.urandom(4).hex())
    with open(path, "w") as f:
        f.write(m.group(0))
    return fingerprint(path)


def s_client_cert(port, sni=None, sigalgs=None, alpn=None, extra=()):
    """The certificate openssl s_client receives (its fingerprint), and
    the s_client process (ended)."""
    extra = ["-showcerts"] + list(extra)
    if sni:
        extra += ["-servername", sni]
    else:
        extra += ["-noservername"]
    if sigalgs:
        extra += ["-sigalgs", sigalgs]
    if alpn:
        extra += ["-alpn", alpn]
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", certs().ca]
    p = Proc(argv + extra, stdin=None, name="s_client " + " ".join(extra))
    p.wait(20)
    return pem_sha(p.stdout.decode("utf-8", "replace"), "s_client", p), p


def gnutls_cli_cert(port, sni, priority):
    out = os.path.join(suite.tmpdir(), "gnutls-cli-%s.pem" % os.urandom(4).hex())
    argv = ["gnutls-cli", "-p", str(port), "--x509cafile", certs().ca, "--verify-hostname",
            sni, "--sni-hostname", sni, "--priority", priority, "--save-cert", out,
            "127.0.0.1"]
    p = Proc(argv, stdin=None, name="gnutls-cli --sni-hostname %s" % sni)
    rc = p.wait(20)
    if rc != 0 or not os.path.exists(out):
        raise Fail("gnutls-cli failed (exit %s)\n%s" % (rc, p.describe(4000)))
    with open(out) as f:
        return pem_sha(f.read(), "gnutls-cli --save-cert", p)


def want_cert(got, name, what):
    want = fingerprint(getattr(certs(), name)[0])
    if got != want:
        names = {fingerprint(getattr(certs(), n)[0]): n for n in SET}
        raise Fail("%s: got the certificate %s (%s), wanted %s"
                   % (what, got, names.get(got, "unknown"), name))


# ------------------------------------------------------------ certificates

@suite.case("SNI (wildcards as certificate verification matches them) and signature "
            "algorithms choose the certificate (openssl s_client)")
def _sni_s_client():
    k, port = serve()
    cases = [
        ("alpha.test", "ECDSA+SHA256", "alpha_ec"),
        ("alpha.test", "RSA-PSS+SHA256:RSA+SHA256", "alpha_rsa"),
        ("beta.test", None, "beta_ec"),
        ("www.beta.test", None, "beta_ec"),
        ("x.wild.test", None, "wild_ec"),      # *.wild.test
        ("X.Wild.Test", None, "wild_ec"),
        ("a.b.wild.test", None, "srv_ec"),     # a wildcard is one label
        ("wild.test", None, "srv_ec"),
        ("unknown.test", None, "srv_ec"),      # no name matches: the first pair
        (None, None, "srv_ec"),                # no SNI: the first pair
    ]
    for sni, sigalgs, name in cases:
        got, _ = s_client_cert(port, sni, sigalgs)
        want_cert(got, name, "s_client -servername %s -sigalgs %s" % (sni, sigalgs))
    stop(k)


@suite.case("SNI and signature algorithms choose the certificate (gnutls-cli), "
            "whatever the order of the RSA and ECDSA pairs")
def _sni_gnutls_cli():
    for pairs in (SET, ("srv_ec", "alpha_rsa", "alpha_ec", "beta_ec")):
        k, port = serve(pairs=pairs)
        want_cert(gnutls_cli_cert(port, "alpha.test", ECDSA_ONLY), "alpha_ec",
                  "gnutls-cli alpha.test ECDSA only")
        want_cert(gnutls_cli_cert(port, "alpha.test", RSA_ONLY), "alpha_rsa",
                  "gnutls-cli alpha.test RSA only")
        want_cert(gnutls_cli_cert(port, "www.beta.test", "NORMAL"), "beta_ec",
                  "gnutls-cli www.beta.test")
        if "wild_ec" in pairs:
            want_cert(gnutls_cli_cert(port, "x.wild.test", ECDSA_ONLY), "wild_ec",
                      "gnutls-cli x.wild.test ECDSA only")
            want_cert(gnutls_cli_cert(port, "x.wild.test", RSA_ONLY), "wild_rsa",
                      "gnutls-cli x.wild.test RSA only")
        stop(k)


@suite.case("TLS 1.2: the client's cipher suites choose between the RSA and ECDSA pairs")
def _sni_tls12_suites():
    k, port = serve()
    for sni, suite_name, name in (
            ("alpha.test", "ECDHE-RSA-AES128-GCM-SHA256", "alpha_rsa"),
            ("alpha.test", "ECDHE-ECDSA-AES128-GCM-SHA256", "alpha_ec"),
            ("x.wild.test", "ECDHE-RSA-AES128-GCM-SHA256", "wild_rsa"),
            ("x.wild.test", "ECDHE-ECDSA-AES128-GCM-SHA256", "wild_ec"),
            (None, "ECDHE-RSA-AES128-GCM-SHA256", "alpha_rsa")):   # the first RSA pair
        got, _ = s_client_cert(port, sni, extra=["-tls1_2", "-cipher", suite_name])
        want_cert(got, name, "s_client -tls1_2 -servername %s -cipher %s" % (sni, suite_name))
    stop(k)


@suite.case("--cert and --key: one --key for each --cert, else a usage error")
def _pairs_usage():
    cert, key = certs().srv_ec
    p, rc = ktlsctl_run("listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--cert", cert)
    if rc != 2:
        raise Fail("exit %s, wanted 2\n%s" % (rc, p.describe()))
    need_line(p, "--cert and --key go together: give one --key for each --cert, in the same "
              "order (see 'ktlsctl listen --help')")
    p, rc = ktlsctl_run("connect", "127.0.0.1:1", "--cert", cert, "--key", key, "--cert", cert,
                        "--key", key)
    if rc != 2:
        raise Fail("exit %s, wanted 2\n%s" % (rc, p.describe()))
    need_line(p, "give one --cert and one --key (several are for listen) (see 'ktlsctl "
              "connect --help')")


@suite.case("--alpn-strict without --alpn, --early-data without --session-in: usage errors; "
            "an --early-data file that cannot be read: exit 11 before connecting")
def _option_errors():
    cert, key = certs().srv_ec
    for argv, line in (
            (["listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--alpn-strict"],
             "--alpn-strict needs the protocols: give --alpn PROTO (see 'ktlsctl listen "
             "--help')"),
            (["connect", "127.0.0.1:1", "--early-data", cert],
             "--early-data needs a ticket: give --session-in FILE (saved by an earlier "
             "--session-out) (see 'ktlsctl connect --help')")):
        p, rc = ktlsctl_run(*argv)
        if rc != 2:
            raise Fail("exit %s, wanted 2\n%s" % (rc, p.describe()))
        need_line(p, line)
    missing = os.path.join(suite.tmpdir(), "no-such-early-data")
    # Port 1 on loopback refuses: the file is read before that.
    p, rc = ktlsctl_run("connect", "127.0.0.1:1", "--session-in", missing + ".sess",
                        "--early-data", missing)
    if rc != 11:
        raise Fail("exit %s, wanted 11\n%s" % (rc, p.describe()))
    need_line(p, "cannot read --early-data file '%s': No such file or directory" % missing)


@suite.case("SIGHUP reloads every pair as one set; a bad pair keeps the old set")
def _reload_set():
    d = os.path.join(suite.tmpdir(), "reload-%s" % os.urandom(4).hex())
    os.makedirs(d)
    a = (os.path.join(d, "a.pem"), os.path.join(d, "a.key"))
    b = (os.path.join(d, "b.pem"), os.path.join(d, "b.key"))
    put_pair(*a, certs().srv_ec)
    put_pair(*b, certs().alpha_ec)
    k, port = ktlsctl_listen("--cert", a[0], "--key", a[1], "--cert", b[0], "--key", b[1],
                             *CHANNEL_ARGS, "--echo", "-k")
    want_cert(s_client_cert(port, "alpha.test")[0], "alpha_ec", "before the reload")
    put_pair(*b, certs().beta_ec)
    k.signal(signal.SIGHUP)
    line = ("reloaded credentials from '%s', '%s', '%s' and '%s': new handshakes use them "
            "(certificate subject 'CN=localhost', SHA-256 %s; certificate subject "
            "'CN=beta.test', SHA-256 %s)" % (a[0], a[1], b[0], b[1],
                                             fingerprint(certs().srv_ec[0]),
                                             fingerprint(certs().beta_ec[0])))
    if not k.wait_err(re.escape("ktlsctl: " + line + "\n"), 20):
        raise Fail("no reload line %r\n%s" % (line, k.describe()))
    want_cert(s_client_cert(port, "www.beta.test")[0], "beta_ec", "after the reload")
    want_cert(s_client_cert(port, "alpha.test")[0], "srv_ec", "alpha.test after the reload")
    # A key that is not its certificate's: nothing of the new set is taken.
    put_pair(*a, certs().alpha_ec)
    replace_file(b[1], certs().srv_ec[1])
    k.signal(signal.SIGHUP)
    bad = ("cannot reload credentials: the key in '%s' does not belong to the certificate "
           "in '%s'; new handshakes still use the old ones" % (b[1], b[0]))
    if not k.wait_err(re.escape("ktlsctl: " + bad + "\n"), 20):
        raise Fail("no line %r\n%s" % (bad, k.describe()))
    want_cert(s_client_cert(port, "www.beta.test")[0], "beta_ec", "after the failed reload")
    want_cert(s_client_cert(port, None)[0], "srv_ec", "no SNI after the failed reload")
    stop(k)


# -------------------------------------------------------------------- ALPN

@suite.case("--alpn: our order wins; the log line says sni= and alpn=")
def _alpn_order():
    k, port = serve("--alpn", "h2", "--alpn", "http/1.1")
    for offer in ("http/1.1,h2", "h2,http/1.1"):
        _, p = s_client_cert(port, "alpha.test", alpn=offer)
        if b"ALPN protocol: h2\n" not in p.stdout:
            raise Fail("s_client -alpn %s did not get h2\n%s" % (offer, p.describe(4000)))
    _, p = s_client_cert(port, "beta.test", alpn="http/1.1,spdy/3")
    if b"ALPN protocol: http/1.1\n" not in p.stdout:
        raise Fail("s_client -alpn http/1.1,spdy/3 did not get http/1.1\n" + p.describe(4000))
    _, p = s_client_cert(port, "beta.test", alpn="spdy/3")
    if b"No ALPN negotiated" not in p.stdout:
        raise Fail("without --alpn-strict, no overlap is no ALPN\n" + p.describe(4000))
    stop(k)
    lines = [ln for ln in kt_lines(k) if ln.startswith("session ")]
    rx = (r"session %d peer=127\.0\.0\.1:\d+ version=TLS1\.3 cipher=\S+ sni=%s%s "
          r"channel=\S+ path=\S+ rx=0 tx=0 duration=\d+\.\d{3}s end=closed")
    wants = [("alpha\\.test", " alpn=h2"), ("alpha\\.test", " alpn=h2"),
             ("beta\\.test", " alpn=http/1\\.1"), ("beta\\.test", "")]
    if len(lines) != 4 or not all(re.fullmatch(rx % (i + 1, *w), ln)
                                  for i, (w, ln) in enumerate(zip(wants, lines))):
        raise Fail("log lines:\n%s" % "\n".join(lines))


@suite.case("--alpn-strict: no_application_protocol for a client with no overlap")
def _alpn_strict():
    k, port = serve("--alpn", "h2", "--alpn-strict")
    # No overlap, and no ALPN offered at all: both refused.
    for offer in (["-alpn", "spdy/3"], []):
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                certs().ca, "-servername", "alpha.test"] + offer
        p = Proc(argv, stdin=None, name="s_client %s" % " ".join(offer))
        if p.wait(20) == 0:
            raise Fail("s_client succeeded\n" + p.describe())
        if not re.search(r"^[0-9A-F]+:error:0A000460:SSL routines:ssl3_read_bytes:tlsv1 alert "
                         r"no application protocol:\S+:\d+:SSL alert number 120$",
                         p.stderr, re.M):
            raise Fail("s_client did not report alert 120\n" + p.describe(4000))
    _, ok = s_client_cert(port, "alpha.test", alpn="spdy/3,h2")
    if b"ALPN protocol: h2\n" not in ok.stdout:
        raise Fail("s_client -alpn spdy/3,h2 was refused\n" + ok.describe(4000))
    stop(k)
    lines = [ln for ln in kt_lines(k) if ln.startswith("session ")]
    refused = (r'session %d peer=127\.0\.0\.1:\d+ rx=0 tx=0 duration=\d+\.\d{3}s '
               r'end=handshake-failed reason="TLS handshake refused: the client offered '
               r'none of the --alpn protocols \(--alpn-strict\); sent alert '
               r'no_application_protocol"')
    if len(lines) != 3 or not re.fullmatch(refused % 1, lines[0]) or \
            not re.fullmatch(refused % 2, lines[1]) or " alpn=h2 " not in lines[2]:
        raise Fail("log lines:\n%s" % "\n".join(lines))


@suite.case("--alpn-strict on one session: exit 6 and the exact line")
def _alpn_strict_single():
    k, port = ktlsctl_listen(*pair_args("srv_ec"), *CHANNEL_ARGS, "--alpn", "h2",
                             "--alpn-strict", stdin=None)
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "--alpn", "h1",
                *CHANNEL_ARGS, stdin=None)
    check_exit(k, 6, 20, "ktlsctl listen --alpn-strict")
    need_line(k, "TLS handshake refused: the client offered none of the --alpn protocols "
              "(--alpn-strict); sent alert no_application_protocol")
    check_exit(c, 6, 20, "ktlsctl connect --alpn h1")
    need_line(c, "TLS handshake failed: the peer sent alert 'No supported application "
              "protocol could be negotiated'")


# ----------------------------------------------- where SNI and ALPN appear

@suite.case("--exec: KTLSCTL_SNI and KTLSCTL_ALPN in the command's environment")
def _exec_env():
    k, port = ktlsctl_listen(*pair_args(*SET), *CHANNEL_ARGS, "--alpn", "h2", "--alpn",
                             "http/1.1", "--exec",
                             'printf "%s|%s\\n" "$KTLSCTL_SNI" "$KTLSCTL_ALPN"')
    for sni, alpn in (("alpha.test", "http/1.1"), ("www.beta.test", "h2")):
        c = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca, "--sni", sni,
                    "--alpn", alpn, *CHANNEL_ARGS, stdin=None)
        check_exit(c, 0, 20, "ktlsctl connect --sni %s" % sni)
        if c.stdout != ("%s|%s\n" % (sni, alpn)).encode():
            raise Fail("the command printed %r\n%s" % (c.stdout, c.describe()))
    stop(k)


@suite.case("-v and stats --json of a running listen: sni and alpn")
def _stats_json():
    k, port = ktlsctl_listen(*pair_args(*SET), *CHANNEL_ARGS, "--alpn", "h2", "-v",
                             *EOF_CLOSE)
    c = ktlsctl("connect", "127.0.0.1:%d" % port, "--cafile", certs().ca, "--sni",
                "alpha.test", "--alpn", "h2", *CHANNEL_ARGS, *EOF_CLOSE)
    if not k.wait_err(r"ktlsctl: accepted 127\.0\.0\.1:\d+: TLS1\.3 \S+, ALPN h2, "
                      r"SNI alpha\.test, \S+ channel\n", 20):
        raise Fail("no -v line with ALPN and SNI\n" + k.describe())
    st, rc = ktlsctl_run("stats", str(k.pid), "--json")
    if rc != 0:
        raise Fail("stats exit %s\n%s" % (rc, st.describe()))
    sessions = json.loads(st.stdout)["sessions"]
    if len(sessions) != 1 or sessions[0].get("sni") != "alpha.test" or \
            sessions[0].get("alpn") != "h2" or sessions[0]["role"] != "server":
        raise Fail("stats --json sessions: %r" % sessions)
    c.close_stdin()
    k.close_stdin()
    check_exit(c, 0, 20, "ktlsctl connect")
    check_exit(k, 0, 20, "ktlsctl listen")


# ---------------------------------------------------------------- 0-RTT

def save_session(port, sess, *extra):
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "--session-out", sess,
                *EOF_CLOSE, *CHANNEL_ARGS, *extra, stdin=b"")
    check_exit(c, 0, 30, "ktlsctl connect --session-out")
    if not os.path.exists(sess):
        raise Fail("no session saved\n" + c.describe())


def early_connect(port, sess, early, rest, *extra):
    path = os.path.join(suite.tmpdir(), "early-%s" % os.urandom(4).hex())
    with open(path, "wb") as f:
        f.write(early)
    return ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "--session-in",
                   sess, "--early-data", path, "-v", *EOF_CLOSE, *CHANNEL_ARGS, *extra,
                   stdin=rest)


def data(n):
    """Printable random bytes (hex), so that s_server's commands see none."""
    return random_bytes(n // 2).hex().encode() + b"\n"


@suite.case("connect --early-data to openssl s_server -early_data: accepted, then refused "
            "by a new server and sent after the handshake, every byte there once")
def _early_s_server():
    cert, key = certs().srv_ec
    sess = os.path.join(suite.tmpdir(), "s-server.sess")
    # s_server's standard input stays open: its end would end the session.
    srv, port = start_s_server(cert, key, extra=["-early_data", "-naccept", "2"])
    save_session(port, sess)
    early, rest = data(3000), data(5000)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data")
    need_line(c, "early data accepted: %d bytes sent in 0-RTT" % len(early))
    check_exit(srv, 0, 20, "s_server")
    if bytes(srv.out) != early + rest:
        raise Fail("s_server received %d bytes, wanted the %d early then the %d after"
                   % (len(srv.out), len(early), len(rest)))
    # Another server process on the same port: other ticket keys, the
    # ticket is unknown.
    srv2, _ = start_s_server(cert, key, extra=["-early_data"], port=port)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data to a new server")
    need_line(c, "early data not sent in 0-RTT (the server refused it): sending its %d bytes "
              "after the handshake" % len(early))
    check_exit(srv2, 0, 20, "s_server")
    if bytes(srv2.out) != early + rest:
        raise Fail("the new s_server received %d bytes, wanted %d"
                   % (len(srv2.out), len(early) + len(rest)))


def listen_once(*extra, **kw):
    return ktlsctl_listen(*pair_args("srv_ec"), *CHANNEL_ARGS, "-k", "-v", *extra, stdin=None,
                          **kw)


@suite.case("listen --early-data from openssl s_client -sess_in -early_data: the early "
            "data first on stdout")
def _early_s_client():
    k, port = listen_once("--early-data")
    sess = os.path.join(suite.tmpdir(), "s-client.sess")
    first = data(100)
    c = Proc(s_client_argv(port, certs().ca, extra=["-sess_out", sess]), stdin=first,
             name="s_client -sess_out")
    check_exit(c, 0, 20, "s_client -sess_out")
    early, rest = data(2000), data(3000)
    path = os.path.join(suite.tmpdir(), "s-client-early")
    with open(path, "wb") as f:
        f.write(early)
    c = Proc(s_client_argv(port, certs().ca, mode="full",
                           extra=["-sess_in", sess, "-early_data", path]),
             stdin=rest, name="s_client -early_data")
    check_exit(c, 0, 20, "s_client -early_data")
    if "Early data was accepted" not in c.stderr + c.stdout.decode("utf-8", "replace"):
        raise Fail("s_client did not have its early data accepted\n" + c.describe(4000))
    if not k.wait_out(len(first) + len(early) + len(rest), 20):
        raise Fail("listen wrote %d bytes\n%s" % (len(k.out), k.describe()))
    if bytes(k.out) != first + early + rest:
        raise Fail("listen's stdout is not the first session's bytes, then the early data, "
                   "then the rest")
    need_line(k, "early data accepted: %d bytes received in 0-RTT" % len(early))
    stop(k)


@suite.case("ktlsctl to ktlsctl 0-RTT: accepted, then refused by a restarted server and "
            "by one without --early-data, and sent after the handshake")
def _early_ktlsctl():
    sess = os.path.join(suite.tmpdir(), "k.sess")
    k, port = listen_once("--early-data")
    save_session(port, sess)
    early, rest = data(4000), data(6000)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data")
    need_line(c, "early data accepted: %d bytes sent in 0-RTT" % len(early))
    if not k.wait_out(len(early) + len(rest), 20) or bytes(k.out) != early + rest:
        raise Fail("listen wrote %d bytes, wanted %d (early then the rest)"
                   % (len(k.out), len(early) + len(rest)))
    stop(k)
    # A restarted server has a new ticket key: the ticket is unknown.
    k, port = listen_once("--early-data", addr="127.0.0.1:%d" % port)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data to a restarted server")
    need_line(c, "early data not sent in 0-RTT (the server refused it): sending its %d bytes "
              "after the handshake" % len(early))
    if not k.wait_out(len(early) + len(rest), 20) or bytes(k.out) != early + rest:
        raise Fail("listen wrote %d bytes, wanted %d" % (len(k.out), len(early) + len(rest)))
    need_line(k, "no early data received")
    stop(k)
    # A server that does not take early data: resumed, the early data
    # not taken (GnuTLS's client cannot tell a ticket without early_data
    # from a refusal), sent after the handshake.
    k, port = listen_once()
    save_session(port, sess)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data, ticket without early data")
    need_line(c, "session resumed from %s" % sess)
    need_line(c, "early data not sent in 0-RTT (the server refused it): sending its %d bytes "
              "after the handshake" % len(early))
    if not k.wait_out(len(early) + len(rest), 20) or bytes(k.out) != early + rest:
        raise Fail("listen wrote %d bytes, wanted %d" % (len(k.out), len(early) + len(rest)))
    stop(k)


@suite.case("a replayed first flight (ClientHello and early data) never reaches listen's "
            "output: it cannot complete the handshake")
def _early_replay():
    k, port = listen_once("--early-data")
    sess = os.path.join(suite.tmpdir(), "replay.sess")
    first = Relay(port)
    save_session(first.port, sess)
    early, rest = data(1000), data(1000)
    rec = Relay(port, port=first.port)      # the session file names that port
    c = early_connect(rec.port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data")
    need_line(c, "early data accepted: %d bytes sent in 0-RTT" % len(early))
    if not k.wait_out(len(early) + len(rest), 20) or bytes(k.out) != early + rest:
        raise Fail("listen wrote %d bytes, wanted %d" % (len(k.out), len(early) + len(rest)))
    flight = rec.seen["c2s"]
    if len(flight) >= Relay.KEEP:
        raise Fail("the client's bytes (%d) did not all fit the relay's record" % len(flight))
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    # The server gives up on it: a close, or a reset when what we sent
    # after its failure was still unread.
    try:
        s.sendall(flight)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    s.close()
    # The handshake fails; or, on the kernel channel, the replay's close can
    # come before listen enables kernel TLS, which the kernel then refuses.
    refused = ("kernel TLS unavailable and --ktls require given: the peer had already "
               "closed its side of the connection (the kernel enables TLS only on an "
               "open one)")
    if not k.wait_until(lambda p: any(ln.startswith("TLS handshake failed: ") or ln == refused
                                      for ln in kt_lines(p)), 20):
        raise Fail("the replay did not end in a failed handshake\n" + k.describe())
    need_line(k, "early data accepted: %d bytes received in 0-RTT" % len(early))
    if bytes(k.out) != early + rest:
        raise Fail("listen's output changed after the replay: %d bytes" % len(k.out))
    stop(k)


@suite.case("listen --early-data serving many: the early data reaches the command first")
def _early_exec():
    k, port = ktlsctl_listen(*pair_args("srv_ec"), *CHANNEL_ARGS, "--early-data", "--exec",
                             "cat")
    sess = os.path.join(suite.tmpdir(), "exec.sess")
    save_session(port, sess)
    early, rest = data(1000), data(1000)
    c = early_connect(port, sess, early, rest)
    check_exit(c, 0, 30, "ktlsctl connect --early-data")
    need_line(c, "early data accepted: %d bytes sent in 0-RTT" % len(early))
    if c.stdout != early + rest:
        raise Fail("cat sent back %d bytes, wanted the %d early then the %d after"
                   % (len(c.stdout), len(early), len(rest)))
    stop(k)
    need_regex_line(k, r"session 2 peer=127\.0\.0\.1:\d+ pid=\d+ version=TLS1\.3 cipher=\S+ "
                    r"resumed=yes sni=localhost early=%d channel=\S+ path=\S+ rx=%d tx=%d "
                    r"duration=\d+\.\d{3}s exit=0 end=closed" % (len(early), len(rest),
                                                                 len(early) + len(rest)),
                    "the 0-RTT session's log line")


if __name__ == "__main__":
    sys.exit(suite.main())
