#!/usr/bin/env python3
"""The handshake report (-v, --info-json, --show-certs, --save-certs) and
OCSP stapling (--ocsp, --ocsp-require, listen --ocsp-response), against
real peers on loopback.

Each report is checked against what the peer was given: the certificates
it serves (ECDSA and RSA chains of two and three certificates, made by
certtool in the test's directory, ktlsctl_test.certs), read back with
`openssl x509`; the version, suite and group pinned by the priority
string.  OCSP responses are real ones from `openssl ocsp` answering a
request for the certificate from an index.txt CA database.

Peer behaviour this file relies on (gnutls 3.7.9, OpenSSL 3.0):
  gnutls-serv          sends every certificate of --x509certfile; refuses a
                       revoked OCSP response unless --ignore-ocsp-response-errors.
  openssl s_server     sends -cert's first certificate and -cert_chain's;
                       -status_file staples a DER response.
  openssl s_client     sends its -cert with the chain it builds from
                       -CAfile, the root included.
  GnuTLS's client      asks for a staple in every handshake and fails
                       verification when a valid one says revoked.
"""

import datetime
import json
import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.channel import CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, kt_lines, ktlsctl, ktlsctl_listen, ktlsctl_run, need_line, Proc)
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, require_programs, start_gnutls_serv, start_s_server)

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_hsreport", case_timeout=120)
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE
# Pinned so that every value of the report is known in advance.
PRIO13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM:-GROUP-ALL:+GROUP-X25519"
PRIO12 = ("NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:-GROUP-ALL:+GROUP-SECP256R1"
          ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA")
LOCAL_SANS = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
TRUSTED = {"status": "trusted", "reason": "The certificate is trusted."}


def certs():
    return suite.certs


def tmpfile(name):
    return os.path.join(suite.tmpdir(), name)


_n = [0]


def fresh(name):
    _n[0] += 1
    return tmpfile("%d-%s" % (_n[0], name))


# ------------------------------------------------ what openssl says

def openssl(*args, data=None):
    r = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise Fail("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout.decode()


def iso(openssl_date):
    """'Dec  6 20:56:56 2026 GMT' -> '2026-12-06T20:56:56Z'."""
    t = datetime.datetime.strptime(openssl_date.strip(), "%b %d %H:%M:%S %Y GMT")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def x509_facts(pem):
    """subject, issuer, dates and SHA-256 of the PEM certificate (bytes)."""
    out = openssl("x509", "-noout", "-subject", "-issuer", "-startdate", "-enddate",
                  "-fingerprint", "-sha256", "-nameopt", "RFC2253", data=pem)
    f = dict(line.split("=", 1) for line in out.splitlines())
    return {"subject": f["subject"], "issuer": f["issuer"],
            "not_before": iso(f["notBefore"]), "not_after": iso(f["notAfter"]),
            "sha256": f["sha256 Fingerprint"].replace(":", "").lower()}


def pem_blocks(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", text,
                      re.S)


def fingerprints(text):
    """The SHA-256 of each PEM certificate in text, in order, as openssl x509 reads them."""
    return [x509_facts(b.encode())["sha256"] for b in pem_blocks(text)]


def expected_cert(path, kind, sans):
    with open(path, "rb") as f:
        facts = x509_facts(f.read())
    facts.update(key_type="ECDSA" if kind == "ecdsa" else "RSA",
                 key_bits=256 if kind == "ecdsa" else 2048, sans=sans)
    return facts


def cert_line(i, c):
    return ("    %d: %s; issuer %s; %s to %s; %s %d; SAN %s; SHA-256 %s"
            % (i, c["subject"], c["issuer"], c["not_before"], c["not_after"], c["key_type"],
               c["key_bits"], ",".join(c["sans"]) or "none", c["sha256"]))


# ------------------------------------------------ the chains served

class Chain:
    """A server's chain: its --cert file (leaf then intermediates), its
    key, the files of what it sends, the CA that trusts it, and the
    certificates as the report must show them."""

    def __init__(self, leaf, kind):
        c = certs()
        self.chainfile, self.key = c.chain(leaf)
        self.leaf = getattr(c, leaf)[0]
        self.inter = {"leaf_ec": c.inter_ec, "revoked_ec": c.inter_ec,
                      "leaf_rsa": c.inter_rsa, "client3": c.inter_ec}.get(leaf)
        self.ca = c.ca if kind == "ecdsa" or leaf == "client3" else c.ca_rsa
        sans = LOCAL_SANS if leaf not in ("client", "client3") else []
        self.expect = [expected_cert(self.leaf, kind, sans)]
        if self.inter:
            self.expect.append(expected_cert(self.inter, kind, []))


CHAINS = {
    "ECDSA chain of 2": ("srv_ec", "ecdsa"),
    "ECDSA chain of 3": ("leaf_ec", "ecdsa"),
    "RSA chain of 2": ("srv_rsa2", "rsa"),
    "RSA chain of 3": ("leaf_rsa", "rsa"),
}
SIGNATURE = {"ecdsa": "ECDSA-SECP256R1-SHA256", "rsa": "RSA-PSS-RSAE-SHA256"}


def start_server(kind, chain, extra_ktlsctl=(), ocsp=None):
    """(proc, port) of the server kind serving chain."""
    if kind == "gnutls-serv":
        extra = ["--ocsp-response", ocsp, "--ignore-ocsp-response-errors"] if ocsp else []
        return start_gnutls_serv(chain.chainfile, chain.key, extra=extra)
    if kind == "s_server":
        extra = ["-cert_chain", chain.inter] if chain.inter else []
        if ocsp:
            extra += ["-status_file", ocsp]
        return start_s_server(chain.leaf, chain.key, extra=extra)
    extra = ["--ocsp-response", ocsp] if ocsp else []
    return ktlsctl_listen("--cert", chain.chainfile, "--key", chain.key, "--echo",
                          *SESSION_ARGS, *extra, *extra_ktlsctl)


def stop(server):
    server.kill()
    server.wait(10)


def connect(port, *args, timeout=30):
    return ktlsctl_run("connect", "localhost:%d" % port, *SESSION_ARGS, *args, timeout=timeout)


def read_json(path, proc):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Fail("--info-json %s: %s\n%s" % (path, e, proc.describe()))


def same(what, got, want, proc):
    if got != want:
        raise Fail("%s:\n got  %s\n want %s\n%s"
                   % (what, json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True),
                      proc.describe(6000)))


def client_report(port, chain, version, suite_name, cipher, group, signature, ocsp=None):
    return {
        "role": "client", "peer": "127.0.0.1:%d" % port, "version": version,
        "suite": suite_name, "cipher": cipher, "group": group, "signature": signature,
        "alpn": None, "sni": "localhost", "resumed": False, "early_data": False,
        "chain_length": len(chain.expect), "certificates": chain.expect,
        "verification": TRUSTED,
        "ocsp": ocsp or {"status": "missing", "detail": None, "this_update": None,
                         "next_update": None},
    }


def check_text(proc, report, client=True):
    """-v's report: its lines, exactly, in order."""
    peer = "server's" if client else "client's"
    want = [
        "handshake report:",
        "  role: %s" % report["role"],
        "  peer: %s" % report["peer"],
        "  version: %s" % report["version"],
        "  cipher suite: %s" % report["suite"],
        "  record cipher: %s" % report["cipher"],
        "  key exchange group: %s" % (report["group"] or "-"),
        "  %s signature: %s" % (peer, report["signature"] or "-"),
        "  ALPN: -",
        "  SNI %s: %s" % ("sent" if client else "received", report["sni"] or "-"),
        "  resumed: no",
        "  early data accepted: no",
        "  %s chain length: %d" % (peer, report["chain_length"]),
    ]
    if report["certificates"]:
        want.append("  %s certificates:" % peer)
        want += [cert_line(i, c) for i, c in enumerate(report["certificates"])]
    else:
        want.append("  %s certificates: none" % peer)
    v = report["verification"]
    want.append("  verification: %s: %s" % (v["status"], v["reason"]))
    o = report["ocsp"]
    want.append("  OCSP stapling: %s%s" % (o["status"], " (%s)" % o["detail"] if o["detail"]
                                           else ""))
    lines = kt_lines(proc)
    if "handshake report:" not in lines:
        raise Fail("no 'handshake report:' line\n%s" % proc.describe(6000))
    i = lines.index("handshake report:")
    same("-v's handshake report", lines[i:i + len(want)], want, proc)


# ------------------------------------------------ the report

def report_case(server_kind, chain_name):
    leaf, kind = CHAINS[chain_name]
    chain = Chain(leaf, kind)
    server_json = fresh("server.json")
    srv, port = start_server(server_kind, chain,
                             extra_ktlsctl=("-v", "--info-json", server_json))
    out_json, saved = fresh("client.json"), fresh("saved.pem")
    p, rc = connect(port, "--cafile", chain.ca, "--priority", PRIO13, "-v", "--show-certs",
                    "--save-certs", saved, "--info-json", out_json)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    want = client_report(port, chain, "TLS1.3", "TLS_AES_256_GCM_SHA384", "AES-256-GCM",
                         "X25519", SIGNATURE[kind])
    same("--info-json", read_json(out_json, p), want, p)
    check_text(p, want)
    served = [c["sha256"] for c in chain.expect]
    same("--show-certs (SHA-256 as openssl x509 reads them)", fingerprints(p.stderr), served, p)
    with open(saved) as f:
        same("--save-certs (SHA-256 as openssl x509 reads them)", fingerprints(f.read()),
             served, p)
    if server_kind == "ktlsctl":
        # listen's own report: about the client, which sent no certificate.
        check_exit(srv, 0, 20, "ktlsctl listen")
        got = read_json(server_json, srv)
        want = {
            "role": "server", "peer": got.get("peer"), "version": "TLS1.3",
            "suite": "TLS_AES_256_GCM_SHA384", "cipher": "AES-256-GCM", "group": "X25519",
            "signature": None, "alpn": None, "sni": "localhost", "resumed": False,
            "early_data": False, "chain_length": 0, "certificates": [],
            "verification": {"status": "not requested",
                             "reason": "no client certificate asked for (--verify-client)"},
            "ocsp": {"status": "not stapled", "detail": None, "this_update": None,
                     "next_update": None},
        }
        if not re.fullmatch(r"127\.0\.0\.1:\d+", str(got.get("peer"))):
            raise Fail("listen's report: peer %r\n%s" % (got.get("peer"), srv.describe()))
        same("listen's --info-json", got, want, srv)
        check_text(srv, want, client=False)
    else:
        stop(srv)


for _server in ("gnutls-serv", "s_server", "ktlsctl"):
    for _chain in CHAINS:
        suite.add("report: %s, %s" % (_server, _chain),
                  lambda s=_server, c=_chain: report_case(s, c))


@suite.case("report: TLS 1.2 against gnutls-serv, RSA chain of 3")
def _tls12():
    chain = Chain("leaf_rsa", "rsa")
    srv, port = start_server("gnutls-serv", chain)
    out_json = fresh("client.json")
    p, rc = connect(port, "--cafile", chain.ca, "--priority", PRIO12, "--info-json", out_json)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    want = client_report(port, chain, "TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                         "AES-128-GCM", "SECP256R1", "RSA-SHA256")
    same("--info-json", read_json(out_json, p), want, p)
    stop(srv)


def client_chain_case(client):
    """listen --verify-client: the report is about the client's chain."""
    chain = Chain("client3" if client == "gnutls-cli" else "client",
                  "ecdsa")
    if client == "s_client":
        # s_client builds its chain from -CAfile: the root goes with it
        chain.expect = [expected_cert(certs().client[0], "ecdsa", []),
                        expected_cert(certs().ca, "ecdsa", [])]
    srv_pair = certs().srv_ec
    server_json, saved = fresh("server.json"), fresh("client-chain.pem")
    srv, port = ktlsctl_listen("--cert", srv_pair[0], "--key", srv_pair[1], "--echo",
                               "--verify-client", "--cafile", certs().ca, *SESSION_ARGS,
                               "-v", "--info-json", server_json, "--save-certs", saved,
                               "--show-certs")
    if client == "gnutls-cli":
        argv = ["gnutls-cli", "--x509cafile", certs().ca, "-p", str(port), "--priority", PRIO13,
                "--x509certfile", chain.chainfile, "--x509keyfile", chain.key, "localhost"]
    else:
        argv = ["openssl", "s_client", "-connect", "localhost:%d" % port, "-CAfile", certs().ca,
                "-quiet", "-no_ign_eof", "-nocommands", "-tls1_3", "-ciphersuites",
                "TLS_AES_256_GCM_SHA384", "-groups", "X25519", "-cert", certs().client[0],
                "-key", certs().client[1], "-servername", "localhost"]
    cli = Proc(argv, name=client)
    if not srv.wait_err(r"ktlsctl:   OCSP stapling: .*\n", 20):
        raise Fail("no handshake report from listen\n%s\n%s" % (srv.describe(), cli.describe()))
    cli.close_stdin()
    check_exit(srv, 0, 20, "ktlsctl listen")
    cli.kill()
    cli.wait(10)
    got = read_json(server_json, srv)
    want = {
        "role": "server", "peer": got.get("peer"), "version": "TLS1.3",
        "suite": "TLS_AES_256_GCM_SHA384", "cipher": "AES-256-GCM", "group": "X25519",
        "signature": "ECDSA-SECP256R1-SHA256", "alpn": None, "sni": "localhost",
        "resumed": False, "early_data": False, "chain_length": len(chain.expect),
        "certificates": chain.expect, "verification": TRUSTED,
        "ocsp": {"status": "not requested" if client == "s_client" else "not stapled",
                 "detail": None, "this_update": None, "next_update": None},
    }
    same("listen's --info-json", got, want, srv)
    check_text(srv, want, client=False)
    served = [c["sha256"] for c in chain.expect]
    same("listen --show-certs", fingerprints(srv.stderr), served, srv)
    with open(saved) as f:
        same("listen --save-certs", fingerprints(f.read()), served, srv)


suite.add("report: listen --verify-client, gnutls-cli with an ECDSA chain of 3",
          lambda: client_chain_case("gnutls-cli"))
suite.add("report: listen --verify-client, s_client with an ECDSA chain of 2",
          lambda: client_chain_case("s_client"))


@suite.case("report: listen without --verify-client: --save-certs says the client sent none")
def _no_client_chain():
    pair = certs().srv_ec
    saved = fresh("none.pem")
    srv, port = ktlsctl_listen("--cert", pair[0], "--key", pair[1], "--echo", *SESSION_ARGS,
                               "--save-certs", saved)
    p, rc = connect(port, "--cafile", certs().ca)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    check_exit(srv, 0, 20, "ktlsctl listen")
    need_line(srv, "the client sent no certificate: nothing for --show-certs or --save-certs")
    if os.path.exists(saved):
        raise Fail("--save-certs wrote %s although the client sent no certificate" % saved)


def serving_many_case(log_json):
    """listen --echo -k -v --verify-client: a line per handshake, about the
    client, as text or as the whole report in JSON."""
    chain = Chain("client3", "ecdsa")
    pair = certs().srv_ec
    extra = ("--log-format", "json") if log_json else ()
    srv, port = ktlsctl_listen("--cert", pair[0], "--key", pair[1], "--echo", "-k", "-v",
                               "--verify-client", "--cafile", certs().ca, *SESSION_ARGS,
                               *extra)
    for n in (1, 2):
        p, rc = connect(port, "--cafile", certs().ca, "--cert", chain.chainfile, "--key",
                        chain.key, "--priority", PRIO13)
        if rc != 0:
            raise Fail("exit status %s, expected 0\n%s\n%s" % (rc, p.describe(), srv.describe()))
        if log_json:
            pat = re.compile(r'\{"event":"handshake","session":%d,.*\}' % n)
            if not srv.wait_until(lambda s: pat.search(s.stderr), 15):
                raise Fail("no handshake object for session %d\n%s" % (n, srv.describe()))
            got = json.loads(pat.search(srv.stderr).group(0))
            want = {
                "event": "handshake", "session": n, "role": "server", "peer": got.get("peer"),
                "version": "TLS1.3", "suite": "TLS_AES_256_GCM_SHA384", "cipher": "AES-256-GCM",
                "group": "X25519", "signature": "ECDSA-SECP256R1-SHA256", "alpn": None,
                "sni": "localhost", "resumed": False, "early_data": False, "chain_length": 2,
                "certificates": chain.expect, "verification": TRUSTED,
                "ocsp": {"status": "not stapled", "detail": None, "this_update": None,
                         "next_update": None},
            }
            same("the handshake's JSON log object", got, want, srv)
        else:
            line = ('session %d handshake version=TLS1.3 suite=TLS_AES_256_GCM_SHA384 '
                    'group=X25519 signature=ECDSA-SECP256R1-SHA256 sni=localhost '
                    'certificates=2 subject="%s" sha256=%s verification=trusted '
                    'ocsp=not-stapled' % (n, chain.expect[0]["subject"],
                                          chain.expect[0]["sha256"]))
            if not srv.wait_until(lambda s: line in kt_lines(s), 15):
                raise Fail("no line 'ktlsctl: %s'\n%s" % (line, srv.describe()))
    stop(srv)


suite.add("serving many: -v logs a line per handshake (listen --echo -k --verify-client)",
          lambda: serving_many_case(False))
suite.add("serving many: -v --log-format json logs each handshake's report",
          lambda: serving_many_case(True))


@suite.case("usage: --info-json, --save-certs, --show-certs when serving many -> 2")
def _serving_many():
    pair = certs().srv_ec
    for args, what in ((["listen", "127.0.0.1:0", "--echo", "-k"],
                        "--forward, --exec or --echo -k"),
                       (["connect", "localhost:1", "--accept", "127.0.0.1:0"], "--accept")):
        extra = ["--cert", pair[0], "--key", pair[1]] if args[0] == "listen" else []
        p, rc = ktlsctl_run(*args, *extra, "--info-json", fresh("x.json"))
        want = ("ktlsctl: --show-certs, --save-certs and --info-json report one session: give "
                "them without %s (see 'ktlsctl %s --help')\n" % (what, args[0]))
        if rc != 2 or p.stderr != want:
            raise Fail("exit status %s, expected 2 and %r\n%s" % (rc, want, p.describe()))


@suite.case("report: --info-json into a missing directory -> 11")
def _unwritable():
    pair = certs().srv_ec
    srv, port = start_gnutls_serv(pair[0], pair[1])
    path = os.path.join(suite.tmpdir(), "no-such-dir", "hs.json")
    p, rc = connect(port, "--cafile", certs().ca, "--info-json", path)
    line = kt_lines(p)[-1:]
    want = re.compile(r"cannot write the report to %s: cannot create a file in its "
                      r"directory: No such file or directory"
                      % re.escape(path))
    if rc != 11 or not line or not want.fullmatch(line[0]):
        raise Fail("exit status %s, expected 11 and /%s/\n%s" % (rc, want.pattern, p.describe()))
    stop(srv)


# ------------------------------------------------ OCSP

REVOKED_AT = "2025-01-01T00:00:00Z"


class Ocsp:
    """Responses from `openssl ocsp` for leaf_ec (good) and revoked_ec
    (revoked on REVOKED_AT), signed by their issuer, inter_ec; one for a
    certificate the database does not know (unknown); a good one
    signed by an unrelated CA's key (forged); and a good one for wild_ec
    (*.wild.test), signed by its issuer, ca (wild)."""

    def __init__(self):
        c = certs()
        self.d = os.path.join(suite.tmpdir(), "ocsp")
        os.makedirs(self.d, exist_ok=True)
        serial = {n: openssl("x509", "-noout", "-serial", "-in",
                             getattr(c, n)[0]).strip().split("=")[1]
                  for n in ("leaf_ec", "revoked_ec", "wild_ec")}
        index = os.path.join(self.d, "index.txt")
        with open(index, "w") as f:
            f.write("V\t301231000000Z\t\t%s\tunknown\t/CN=localhost\n" % serial["leaf_ec"])
            f.write("R\t301231000000Z\t250101000000Z\t%s\tunknown\t/CN=localhost\n"
                    % serial["revoked_ec"])
        wild_index = os.path.join(self.d, "wild-index.txt")
        with open(wild_index, "w") as f:
            f.write("V\t301231000000Z\t\t%s\tunknown\t/CN=wild.test\n" % serial["wild_ec"])
        empty = os.path.join(self.d, "empty.txt")
        open(empty, "w").close()
        self.good = self._respond("leaf_ec", index)
        self.revoked = self._respond("revoked_ec", index)
        self.unknown = self._respond("leaf_ec", empty, "unknown")
        # signed by a stranger (ca2's key), not by the issuer
        self.forged = self._respond("leaf_ec", index, "forged", signer="ca2")
        self.wild = self._respond("wild_ec", wild_index, issuer="ca", signer="ca")

    def _respond(self, name, index, tag="", signer="inter_ec", issuer="inter_ec"):
        c = certs()
        req = os.path.join(self.d, name + tag + ".req")
        resp = os.path.join(self.d, name + tag + ".der")
        openssl("ocsp", "-issuer", getattr(c, issuer), "-cert", getattr(c, name)[0],
                "-no_nonce", "-reqout", req)
        openssl("ocsp", "-index", index, "-rsigner", getattr(c, signer),
                "-rkey", c.key_of(signer),
                "-CA", getattr(c, issuer), "-reqin", req, "-respout", resp, "-ndays", "1")
        return resp

    @staticmethod
    def times(resp):
        text = openssl("ocsp", "-respin", resp, "-resp_text", "-noverify")
        this = re.search(r"This Update: (.*)", text).group(1)
        nxt = re.search(r"Next Update: (.*)", text).group(1)
        return iso(this), iso(nxt)


_ocsp = []


def ocsp():
    if not _ocsp:
        _ocsp.append(Ocsp())
    return _ocsp[0]


def expect_fail(p, rc, status, line):
    if rc != status or kt_lines(p)[-1:] != [line]:
        raise Fail("exit status %s, expected %s with the last line 'ktlsctl: %s'\n%s"
                   % (rc, status, line, p.describe()))


GNUTLS_REVOKED = ("server certificate rejected: The certificate is NOT trusted. The "
                  "certificate chain is revoked. (the server's stapled OCSP response says so)")


def ocsp_case(server_kind):
    o = ocsp()
    good, revoked = Chain("leaf_ec", "ecdsa"), Chain("revoked_ec", "ecdsa")
    # ktlsctl serves every client (--echo -k), as gnutls-serv does
    many = ("-k",) if server_kind == "ktlsctl" else ()

    # good: reported with its times, in the line and the JSON
    srv, port = start_server(server_kind, good, ocsp=o.good, extra_ktlsctl=many)
    j = fresh("good.json")
    p, rc = connect(port, "--cafile", good.ca, "--ocsp", "--info-json", j)
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    need_line(p, "server's OCSP status: good")
    this, nxt = o.times(o.good)
    same("--info-json's ocsp", read_json(j, p)["ocsp"],
         {"status": "good", "detail": None, "this_update": this, "next_update": nxt}, p)
    p, rc = connect(port, "--cafile", good.ca, "--ocsp-require")
    if rc != 0:
        raise Fail("--ocsp-require with a good staple: exit status %s\n%s" % (rc, p.describe()))
    stop(srv)

    # revoked: GnuTLS's verification refuses it; --insecure lets the report say so
    srv, port = start_server(server_kind, revoked, ocsp=o.revoked, extra_ktlsctl=many)
    p, rc = connect(port, "--cafile", revoked.ca, "--ocsp")
    expect_fail(p, rc, 4, GNUTLS_REVOKED)
    p, rc = connect(port, "--cafile", revoked.ca, "--ocsp-require")
    expect_fail(p, rc, 4, GNUTLS_REVOKED)
    p, rc = connect(port, "--cafile", revoked.ca, "--insecure", "--ocsp")
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    need_line(p, "server's OCSP status: revoked (revoked at %s)" % REVOKED_AT)
    p, rc = connect(port, "--cafile", revoked.ca, "--insecure", "--ocsp-require")
    expect_fail(p, rc, 4, "server certificate rejected: its stapled OCSP response says it "
                "was revoked at %s (--ocsp-require)" % REVOKED_AT)
    stop(srv)

    # missing: no staple at all
    srv, port = start_server(server_kind, good, extra_ktlsctl=many)
    p, rc = connect(port, "--cafile", good.ca, "--ocsp")
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    need_line(p, "server's OCSP status: missing")
    p, rc = connect(port, "--cafile", good.ca, "--ocsp-require")
    expect_fail(p, rc, 4, "server certificate rejected: the server stapled no OCSP response "
                "(--ocsp-require)")
    stop(srv)

    # unknown: the responder does not know the certificate
    srv, port = start_server(server_kind, good, ocsp=o.unknown, extra_ktlsctl=many)
    p, rc = connect(port, "--cafile", good.ca, "--ocsp")
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    need_line(p, "server's OCSP status: unknown")
    p, rc = connect(port, "--cafile", good.ca, "--ocsp-require")
    expect_fail(p, rc, 4, "server certificate rejected: its stapled OCSP response says "
                "unknown (the responder does not know it; --ocsp-require)")
    stop(srv)

    # invalid: signed by a stranger; GnuTLS's verification refuses it too
    srv, port = start_server(server_kind, good, ocsp=o.forged, extra_ktlsctl=many)
    p, rc = connect(port, "--cafile", good.ca, "--ocsp")
    expect_fail(p, rc, 4, "server certificate rejected: The certificate is NOT trusted. The "
                "received OCSP status response is invalid. (the server stapled it: see "
                "'ktlsctl connect --ocsp --insecure')")
    invalid = ("invalid (the response's signature does not verify (not signed by the issuer "
               "or its responder))")
    p, rc = connect(port, "--cafile", good.ca, "--insecure", "--ocsp")
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    need_line(p, "server's OCSP status: " + invalid)
    p, rc = connect(port, "--cafile", good.ca, "--insecure", "--ocsp-require")
    expect_fail(p, rc, 4, "server certificate rejected: its stapled OCSP response is invalid: "
                "the response's signature does not verify (not signed by the issuer or its "
                "responder) (--ocsp-require)")
    stop(srv)


suite.add("ocsp: gnutls-serv --ocsp-response: good, revoked, missing, unknown, invalid",
          lambda: ocsp_case("gnutls-serv"))
suite.add("ocsp: ktlsctl listen --ocsp-response: good, revoked, missing, unknown, invalid",
          lambda: ocsp_case("ktlsctl"))


@suite.case("ocsp: openssl s_server -status_file: good and revoked")
def _s_server_staple():
    o = ocsp()
    for name, resp, args, line in (
            ("leaf_ec", o.good, (), "server's OCSP status: good"),
            ("revoked_ec", o.revoked, ("--insecure",),
             "server's OCSP status: revoked (revoked at %s)" % REVOKED_AT)):
        chain = Chain(name, "ecdsa")
        srv, port = start_server("s_server", chain, ocsp=resp)
        p, rc = connect(port, "--cafile", chain.ca, "--ocsp", *args)
        if rc != 0:
            raise Fail("exit status %s, expected 0\n%s\n%s" % (rc, p.describe(), srv.describe()))
        need_line(p, line)
        stop(srv)


@suite.case("ocsp: connect --accept --ocsp-require: each plain client reset, its log line "
            "says why")
def _accept_require():
    pair = certs().srv_ec
    srv, sport = start_gnutls_serv(pair[0], pair[1])
    k = ktlsctl("connect", "localhost:%d" % sport, "--accept", "127.0.0.1:0", "--cafile",
                certs().ca, "--ocsp-require", *CHANNEL_ARGS, stdin=None,
                name="ktlsctl connect --accept")
    m = k.wait_err(r"ktlsctl: listening on 127\.0\.0\.1:(\d+) for plain TCP clients", 15)
    if not m:
        raise Fail("connect --accept did not say where it listens\n" + k.describe())
    # The reset can come at any step, even before connect() returns.
    got = None
    try:
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as c:
            c.sendall(b"hello\n")
            got = c.recv(100)
    except ConnectionResetError:
        got = None
    if got is not None:
        raise Fail("the plain client got %r, not a reset\n%s" % (got, k.describe()))
    want = re.compile(r"session 1 peer=127\.0\.0\.1:\d+ backend=127\.0\.0\.1:%d rx=0 tx=0 "
                      r"duration=[0-9.]+s end=handshake-failed reason=\"server certificate "
                      r"rejected: the server stapled no OCSP response \(--ocsp-require\)\""
                      % sport)
    if not k.wait_until(lambda p: any(want.fullmatch(l) for l in kt_lines(p)), 15):
        raise Fail("no log line /%s/\n%s" % (want.pattern, k.describe()))
    stop(k)
    stop(srv)


@suite.case("ocsp: listen reports the staple it sent")
def _listen_stapled():
    o = ocsp()
    good = Chain("leaf_ec", "ecdsa")
    j = fresh("listen.json")
    srv, port = start_server("ktlsctl", good, ocsp=o.good, extra_ktlsctl=("--info-json", j))
    p, rc = connect(port, "--cafile", good.ca, "--ocsp")
    if rc != 0:
        raise Fail("exit status %s, expected 0\n%s" % (rc, p.describe()))
    check_exit(srv, 0, 20)
    same("listen's ocsp", read_json(j, srv)["ocsp"],
         {"status": "stapled", "detail": None, "this_update": None, "next_update": None}, srv)


@suite.case("ocsp: listen --ocsp-response about another certificate -> 5")
def _listen_wrong_response():
    o = ocsp()
    pair = certs().srv_ec
    p, rc = ktlsctl_run("listen", "127.0.0.1:0", "--cert", pair[0], "--key", pair[1],
                        "--ocsp-response", o.good)
    want = ("ktlsctl: the OCSP response in '%s' is not about the certificate in '%s'\n"
            % (o.good, pair[0]))
    if rc != 5 or p.stderr != want:
        raise Fail("exit status %s, expected 5 and %r\n%s" % (rc, want, p.describe()))


@suite.case("ocsp: listen with two pairs staples the response for the pair it is about; "
            "one about neither -> 5")
def _listen_two_pairs():
    o = ocsp()
    rsa = certs().srv_rsa
    good = Chain("leaf_ec", "ecdsa")
    # The RSA pair comes first: a client that signs with ECDSA only gets
    # the second, leaf_ec, with its staple.
    srv, port = ktlsctl_listen("--cert", rsa[0], "--key", rsa[1], "--cert", good.chainfile,
                               "--key", good.key, "--echo", *SESSION_ARGS,
                               "--ocsp-response", o.good)
    try:
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                            "-sigalgs", "ecdsa_secp256r1_sha256", "-status", "-CAfile",
                            good.ca], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
    finally:
        stop(srv)
    out = p.stdout.decode(errors="replace")
    lines = [line.strip() for line in out.splitlines()]
    for want in ("Cert Status: good", "OCSP Response Status: successful (0x0)"):
        if want not in lines:
            raise Fail("s_client: no line %r\n%s\n%s" % (want, out, srv.describe()))
    if not re.search(r"^Peer signature type: ECDSA$", out, re.M):
        raise Fail("s_client did not get the ECDSA pair\n" + out)
    other = certs().srv_ec
    p, rc = ktlsctl_run("listen", "127.0.0.1:0", "--cert", rsa[0], "--key", rsa[1],
                        "--cert", other[0], "--key", other[1], "--ocsp-response", o.good)
    want = ("ktlsctl: the OCSP response in '%s' is not about the certificate in '%s' or any "
            "other --cert\n" % (o.good, rsa[0]))
    if rc != 5 or p.stderr != want:
        raise Fail("exit status %s, expected 5 and %r\n%s" % (rc, want, p.describe()))


@suite.case("ocsp: listen staples the response for the pair a wildcard name chose, and "
            "only for it")
def _listen_wildcard_staple():
    o = ocsp()
    first, wild = certs().srv_ec, certs().wild_ec
    srv, port = ktlsctl_listen("--cert", first[0], "--key", first[1], "--cert", wild[0],
                               "--key", wild[1], "--echo", "-k", *CHANNEL_ARGS,
                               "--ocsp-response", o.wild)
    try:
        for sni, pair, staple in (("x.wild.test", wild, ["OCSP Response Status: successful (0x0)",
                                                         "Cert Status: good"]),
                                  ("localhost", first, ["OCSP response: no response sent"])):
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                "-servername", sni, "-status", "-CAfile", certs().ca],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            out = p.stdout.decode(errors="replace")
            with open(pair[0]) as f:
                want = fingerprints(f.read())[:1]
            # after the staple's text, which shows its signer's certificate
            got = fingerprints(out.partition("\nServer certificate\n")[2])[:1]
            if got != want:
                raise Fail("s_client -servername %s: got the certificate %s, wanted %s\n%s"
                           % (sni, got, want, out))
            lines = [line.strip() for line in out.splitlines()]
            for line in staple:
                if line not in lines:
                    raise Fail("s_client -servername %s: no line %r\n%s\n%s"
                               % (sni, line, out, srv.describe()))
    finally:
        stop(srv)


@suite.case("ocsp: listen --ocsp-response that is not DER -> 5")
def _listen_bad_response():
    pair = certs().srv_ec
    p, rc = ktlsctl_run("listen", "127.0.0.1:0", "--cert", pair[0], "--key", pair[1],
                        "--ocsp-response", pair[0])
    want = re.compile(r"ktlsctl: cannot load the OCSP response '%s': .+ \(it must be DER, as "
                      r"'openssl ocsp -respout' writes it\)\n" % re.escape(pair[0]))
    if rc != 5 or not want.fullmatch(p.stderr):
        raise Fail("exit status %s, expected 5 and /%s/\n%s" % (rc, want.pattern, p.describe()))


if __name__ == "__main__":
    sys.exit(suite.main())
