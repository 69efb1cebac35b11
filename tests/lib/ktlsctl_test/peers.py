"""The real TLS peers (gnutls-serv, gnutls-cli, openssl s_server and
s_client): how to pin a version and a cipher on each, start the servers on
a free port and wait for them, and what they need.

What each peer does that the tests rely on is written down in the
docstrings of tests/integration/test_peers.py and test_session.py.
"""

import shutil
import sys

from .procs import Proc, free_port, listening, wait_for, wait_listening
from .verdicts import Fail


def have(prog):
    return shutil.which(prog) is not None


def require_programs(*progs):
    """Exit 77 (automake's SKIP), loudly, when a peer program is missing."""
    missing = [p for p in progs if not have(p)]
    if missing:
        msg = ("\n*** SKIPPING THE WHOLE FILE (exit 77): required peer program(s) not found: %s\n"
               "*** install them (Debian: apt-get install gnutls-bin openssl) to run these tests\n"
               % ", ".join(missing))
        sys.stdout.write(msg)
        sys.stdout.flush()
        sys.exit(77)


# ktlsctl's --eof for the cases written for peers that wait for us to close
# first (echo servers, s_server with its stdin held open): close_notify at
# the end of input, as ktlsctl did before --eof existed, so that they end
# without the default's quiet wait.  test_eof.py covers every mode.
EOF_CLOSE = ["--eof", "close"]

CIPHERS = ("AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM")
VERSIONS = ("1.2", "1.3")

OSSL12 = {
    "AES-128-GCM": "ECDHE-{a}-AES128-GCM-SHA256",
    "AES-256-GCM": "ECDHE-{a}-AES256-GCM-SHA384",
    "CHACHA20-POLY1305": "ECDHE-{a}-CHACHA20-POLY1305",
    "AES-128-CCM": "ECDHE-{a}-AES128-CCM",
}
OSSL13 = {
    "AES-128-GCM": "TLS_AES_128_GCM_SHA256",
    "AES-256-GCM": "TLS_AES_256_GCM_SHA384",
    "CHACHA20-POLY1305": "TLS_CHACHA20_POLY1305_SHA256",
    "AES-128-CCM": "TLS_AES_128_CCM_SHA256",
}


def gnutls_priority(version=None, cipher=None, extra=""):
    p = "NORMAL"
    if version:
        p += ":-VERS-ALL:+VERS-TLS" + version
    if cipher:
        p += ":-CIPHER-ALL:+" + cipher
    return p + extra


def openssl_tls_args(version=None, cipher=None, certkind="ecdsa"):
    """s_server/s_client arguments pinning the version and the cipher."""
    a = []
    if version == "1.2":
        a.append("-tls1_2")
        if cipher:
            a += ["-cipher", OSSL12[cipher].format(a="ECDSA" if certkind == "ecdsa" else "RSA")]
    elif version == "1.3":
        a.append("-tls1_3")
        if cipher:
            a += ["-ciphersuites", OSSL13[cipher]]
    return a


def ktlsctl_tls_args(version=None, cipher=None):
    a = []
    if version:
        a.append("--tls" + version)
    if cipher:
        a += ["--cipher", cipher]
    return a


def _start_server(name, make_argv, port=None, tries=5, **kw):
    """make_argv(port) on a free port (or the given one, for a restart),
    retried when the port was taken meanwhile; returns (proc, port) once it
    listens.  Readiness is read from /proc/net/tcp*, so that no accept is
    consumed."""
    last = None
    for _ in range(tries):
        if port:        # a restart: the old server's socket must be gone
            wait_for(lambda: not listening(port), 10)
        p_ = port or free_port()
        p = Proc(make_argv(p_), name=name, **kw)
        if wait_listening(p_, p, timeout=10):
            return p, p_
        last = p
        p.kill()
    raise Fail("%s did not start listening\n%s" % (name, last.describe() if last else ""))


def start_gnutls_serv(cert, key, priority=None, echo=True, extra=(), client_ca=None,
                      shared=False, port=None, env=None, debug=None, keep_output=False):
    """gnutls-serv on a free port (both 0.0.0.0 and ::); returns (proc, port).
    Its stdout/stderr are kept short (in echo mode it logs every request)
    unless keep_output (with debug=N: -d N, which logs every record).
    client_ca: require a client certificate and verify it against that CA
    (otherwise no certificate is requested: -a).  port: that port (a
    restarted server), tried more often."""
    def argv(p):
        a = ["gnutls-serv", "-p", str(p), "--x509certfile", cert, "--x509keyfile", key]
        if client_ca:
            a += ["-r", "--verify-client-cert", "--x509cafile", client_ca]
        else:
            a.append("-a")
        if echo:
            a += ["--echo", "--crlf"]
        if priority:
            a += ["--priority", priority]
        if debug:
            a += ["-d", str(debug)]
        return a + list(extra)
    caps = dict(stdout_cap=4 << 20, stderr_cap=None) if keep_output else \
        dict(stdout_cap=1 << 16, stderr_cap=1 << 16)
    return _start_server("gnutls-serv", argv, port=port, tries=20 if port else 5, stdin=None,
                         shared=shared, env=env, **caps)


def start_s_server(cert, key, tls_args=(), extra=(), quiet=True, stdin=True, slow_stdout=None,
                   port=None):
    """openssl s_server for one connection (-naccept 1; a later -naccept in
    extra wins); returns (proc, port).  Not quiet, its messages go through
    stdio while the data it receives is written raw: stdbuf -o0 makes each
    message one whole write at the moment it is printed, never a buffer
    flushed later in pieces between two records (a split message cannot be
    told from data)."""
    def argv(p):
        a = ["openssl", "s_server", "-accept", str(p), "-cert", cert, "-key", key,
             "-naccept", "1"]
        if quiet:
            a.append("-quiet")
        else:
            a = ["stdbuf", "-o0"] + a
        return a + list(tls_args) + list(extra)
    return _start_server("s_server", argv, port=port, tries=20 if port else 5, stdin=stdin,
                         stdout_cap=None, slow_stdout=slow_stdout)


def gnutls_cli_argv(port, cafile, logfile, priority=None, host="localhost", extra=()):
    argv = ["gnutls-cli", "--logfile", logfile, "--x509cafile", cafile, "-p", str(port)]
    if priority:
        argv += ["--priority", priority]
    return argv + list(extra) + [host]


def s_client_argv(port, cafile, tls_args=(), host="localhost", mode="quiet", extra=()):
    """mode 'quiet': stdout carries only data, stdin EOF closes the connection
    (close_notify), no command letters; mode 'brief': command letters (k, K,
    Q, R at the start of a read) are active, stdout carries only data."""
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-CAfile", cafile,
            "-verify_return_error"]
    if host not in ("127.0.0.1", "::1"):
        argv += ["-verify_hostname", host]
    if mode == "quiet":
        argv += ["-quiet", "-no_ign_eof", "-nocommands"]
    elif mode == "brief":
        argv += ["-brief"]
    return argv + list(tls_args) + list(extra)


PRIME = b"0123456789abcdef0123456789abcdef\n"


def prime_s_server(srv, client, timeout=20):
    """Have the client send a line and wait until s_server prints it, before
    anything is fed to s_server's stdin.  Quirk: when s_server has stdin
    data at accept time it writes it while the handshake is still open
    (inside SSL_write), and its select loop can then sit in a blocking read
    of the socket on stale readiness until the client sends something.
    Returns the bytes sent (hex text, so harmless for s_server commands)."""
    client.send(PRIME)
    if not srv.wait_until(lambda p: PRIME in bytes(p.out), timeout):
        raise Fail("s_server did not receive the client's first line\n%s\n%s"
                   % (client.describe(), srv.describe()))
    return PRIME
