#!/usr/bin/env python3
"""Record size limits (RFC 8449 record_size_limit, RFC 6066
max_fragment_length) against real peers, on the wire.

Every case runs through a relay that reads the TLS record headers
(ktlsctl_test.relays.Relay), so what is asserted is the size of the records
ktlsctl really sent: never over the limit the peer set, and at it exactly
(the off-by-one of TLS 1.3's content type byte is right), besides the
peer's own check (GnuTLS and OpenSSL refuse a record over the limit they
announced with record_overflow) and the data by hash.

  send:      connect -> gnutls-serv --recordsize=N for N from 64 to 16383,
             TLS 1.2 and 1.3; every cipher at 512.
  serve:     listen <- gnutls-cli --recordsize=N; listen <- openssl s_client
             -maxfraglen N (TLS 1.2 and 1.3).
  announce:  --record-size-limit L: the peer's records stay within it
             (gnutls-serv; tens of MiB between two ktlsctl); OpenSSL, which
             does not know the extension, is not held to it.
  pad:       a TLS 1.3 peer that pads its records (s_server -record_padding)
             with TLS_RX_EXPECT_NO_PAD in force on the kernel channel: data
             intact, TlsDecryptRetry seen.
  report:    -v, stats --json: the limits in force and how they are kept.
  usage:     bad --record-size-limit values.

KTLSCTL_TEST_CHANNEL=kernel runs it on the kernel channel (the VM tier does,
on 6.1, which has no TLS_TX_MAX_PAYLOAD_LEN, and on the current kernel,
which has it); the -v line then says which way the limit is kept.
"""

import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import note, Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import check_exit, ktlsctl, ktlsctl_listen, Proc  # noqa: E402
from ktlsctl_test.data import check_data, hex_lines  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    CIPHERS, EOF_CLOSE, gnutls_priority, openssl_tls_args, require_programs, start_gnutls_serv,
    start_s_server)
from ktlsctl_test.relays import record_overhead, Relay  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_recordsize", case_timeout=120)
VERSIONS = ("1.2", "1.3")
MAX = 16384
# --eof close: the peers here wait for our close_notify.
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE + ["-v"]

LIMITS = re.compile(r"^ktlsctl: record size: send up to (\d+) bytes a record(.*?), "
                    r"receive up to (\d+)(.*)$", re.M)


def certs():
    return suite.certs


_kernel_caps = []


def kernel_has(cap):
    """Whether this kernel has a kTLS capability ("rekey") or optional
    feature ("tx_max_payload_len"), as stats --json says."""
    if not _kernel_caps:
        r = subprocess.run([KTLSCTL, "stats", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=60)
        _kernel_caps.append(json.loads(r.stdout.decode())["kernel"])
    k = _kernel_caps[0]
    return (k.get(cap) or k["features"].get(cap) or {}).get("state") == "yes"


def limits_of(k):
    """(send, how, receive, rest) from ktlsctl's -v line."""
    m = LIMITS.search(k.stderr)
    if not m:
        raise Fail("no 'record size:' line in ktlsctl -v\n%s" % k.describe())
    return int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)


def check_how(k, send):
    """The -v line names the way the send limit is kept on this channel."""
    _, how, _, rest = limits_of(k)
    if send >= MAX:
        want = ""
    elif CHANNEL == "user-space":
        want = ""
    elif kernel_has("tx_max_payload_len"):
        want = " (kernel TLS_TX_MAX_PAYLOAD_LEN)"
    else:
        want = " (writes of at most that: this kernel has no TLS_TX_MAX_PAYLOAD_LEN)"
    if how != want:
        raise Fail("the send limit is kept by %r, expected %r\n%s" % (how, want, k.describe()))
    note("send limit %d%s" % (send, how or " (user-space records)" if send < MAX else ""))
    return rest


def check_wire(meter, d, limit, version, cipher, what):
    """The largest record that went direction d is the limit, exactly."""
    want = limit + record_overhead(version, cipher)
    got = meter.max_len[d]
    if got != want:
        raise Fail("%s: the largest record on the wire carried %d bytes (header length), "
                   "expected %d: %d of plaintext + %d of overhead (%d records)"
                   % (what, got, want, limit, want - limit, meter.count[d]))


# ------------------------------------------------------------ send

def add_send(version, cipher, n, extra=()):
    def run():
        prio = gnutls_priority(version, cipher, extra=":%ALLOW_SMALL_RECORDS")
        srv, port = start_gnutls_serv(*certs().srv_ec, priority=prio,
                                      extra=["--recordsize=%d" % n])
        meter = Relay(port)
        width = min(n, 4096) - 1     # gnutls-serv echoes line by line
        # gnutls-serv closes any connection after 30 s (its serv.c): 1024
        # records' worth keeps the smallest sizes well within that in a slow
        # VM (64-byte records, 256 KiB: past 30 s on 7.2 under TCG).
        data = hex_lines(min(256 << 10, n * 1024), width=width)
        k = ktlsctl("connect", "localhost:%d" % meter.port, "--cafile", certs().ca,
                    "--tls" + version, "--cipher", cipher, *(SESSION_ARGS + list(extra)))
        # gnutls-serv drops what it has not echoed yet when our close_notify
        # comes (TLS 1.2 asks that, RFC 5246 7.2.1): the input ends, and
        # --eof close sends it, once the whole echo is here.
        k.send(data)
        if not k.wait_out(len(data), scaled(60)):
            raise Fail("the echo: %d of %d bytes\n%s" % (k.out_total, len(data), k.describe()))
        k.close_stdin()
        check_exit(k, 0, 60, "connect")
        check_data("the echo", k.out, data)
        meter.join()
        if extra and k.stderr.count("updated our send keys") < 2:
            raise Fail("fewer than 2 key updates\n%s" % k.describe())
        send, _, _, _ = limits_of(k)
        if send != n:
            raise Fail("ktlsctl sends up to %d bytes a record, the server allows %d\n%s"
                       % (send, n, k.describe()))
        check_how(k, send)
        check_wire(meter, "c2s", n, version, cipher, "connect -> gnutls-serv")
    suite.add("send: connect%s -> gnutls-serv --recordsize=%d TLS%s %s: records of exactly %d "
              "bytes at most, echo intact" % ("".join(" " + a for a in extra), n, version,
                                             cipher, n), run)


for _v in VERSIONS:
    for _n in (64, 65, 100, 511, 512, 4096, 16383):
        add_send(_v, "AES-128-GCM", _n)
    for _c in CIPHERS:
        if _c != "AES-128-GCM":
            add_send(_v, _c, 512)
# The limit outlives key updates (the kernel keeps its option across a
# rekey), where the channel can update keys.
if CHANNEL == "user-space" or kernel_has("rekey"):
    add_send("1.3", "AES-128-GCM", 512, ("--key-update-after", "100"))


# ------------------------------------------------------------ serve

def add_serve(client, version, n):
    def run():
        data = hex_lines(128 << 10)
        srv, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                                   "--tls" + version, *SESSION_ARGS, stdin=data)
        meter = Relay(port)
        if client == "gnutls-cli":
            log = os.path.join(suite.tmpdir(), "gcli-%d-%s.log" % (n, version))
            argv = ["gnutls-cli", "--logfile", log, "--x509cafile", certs().ca,
                    "-p", str(meter.port), "--recordsize=%d" % n, "localhost"]
        else:
            argv = ["openssl", "s_client", "-connect", "localhost:%d" % meter.port,
                    "-CAfile", certs().ca, "-quiet", "-maxfraglen", str(n)]
            argv += openssl_tls_args(version)
        # The client's input stays open until it has everything: at its
        # end it closes, and a TLS 1.2 server then stops sending.
        c = Proc(argv, name=client, stdin=True)
        c.wait_out(len(data), 60)
        c.close_stdin()
        check_exit(srv, 0, 60, "listen")
        check_exit(c, 0, 30, client)
        check_data("what %s received" % client, c.out, data)
        meter.join()
        send, _, _, _ = limits_of(srv)
        if send > n:
            raise Fail("listen sends up to %d bytes a record; %s asked for %d\n%s"
                       % (send, client, n, srv.describe()))
        check_how(srv, send)
        check_wire(meter, "s2c", send, version, "AES-256-GCM", "listen -> %s" % client)
    how = "--recordsize" if client == "gnutls-cli" else "-maxfraglen"
    suite.add("serve: listen <- %s %s %d TLS%s: our records within it, data intact"
              % (client, how, n, version), run)


for _v in VERSIONS:
    for _n in (512, 4096):
        add_serve("gnutls-cli", _v, _n)
        add_serve("s_client", _v, _n)


# ------------------------------------------------------------ announce

def add_announce(version, limit):
    def run():
        body = os.urandom((8 if limit >= 1024 else 1) << 20)
        path = os.path.join(suite.tmpdir(), "body-%d" % limit)
        with open(path, "wb") as f:
            f.write(body)
        # %ALLOW_SMALL_RECORDS: without it GnuTLS ignores limits under 512.
        srv, port = start_gnutls_serv(*certs().srv_ec, echo=False,
                                      priority="NORMAL:%ALLOW_SMALL_RECORDS",
                                      extra=["--http", "--httpdata", path])
        meter = Relay(port)
        k = ktlsctl("connect", "localhost:%d" % meter.port, "--cafile", certs().ca,
                    "--tls" + version, "--record-size-limit", str(limit),
                    *(CHANNEL_ARGS + ["-v"]), stdin=b"GET / HTTP/1.0\r\n\r\n")
        check_exit(k, 0, 60, "connect")
        head, _, got = bytes(k.out).partition(b"\r\n\r\n")
        check_data("the answer's body", got, body)
        meter.join()
        content = limit - (1 if version == "1.3" else 0)
        _, _, receive, rest = limits_of(k)
        if receive != content:
            raise Fail("ktlsctl takes up to %d bytes a record, expected %d\n%s"
                       % (receive, content, k.describe()))
        if CHANNEL == "kernel" and content < MAX and "checked on average" not in rest:
            raise Fail("the kernel channel does not say that it checks on average\n%s"
                       % k.describe())
        # gnutls-serv fills its records to what we allowed.
        check_wire(meter, "s2c", content, version, "AES-256-GCM", "gnutls-serv -> connect")
    suite.add("announce: connect --record-size-limit %d -> gnutls-serv --http %d MiB TLS%s: "
              "its records within it, answer intact"
              % (limit, 8 if limit >= 1024 else 1, version), run)


for _v, _l in (("1.2", 64), ("1.2", 512), ("1.2", 16384), ("1.3", 65), ("1.3", 512),
               ("1.3", 16385)):
    add_announce(_v, _l)


@suite.case("announce: connect --record-size-limit 700 <-> listen --record-size-limit 600 "
            "--echo, 24 MiB TLS1.3: both ways within the limits, by hash")
def _announce_both():
    srv, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                               "--echo", "--record-size-limit", "600", *SESSION_ARGS)
    meter = Relay(port)
    data = os.urandom(24 << 20)
    k = ktlsctl("connect", "localhost:%d" % meter.port, "--cafile", certs().ca,
                "--record-size-limit", "700", *SESSION_ARGS, stdin=data)
    check_exit(k, 0, 120, "connect")
    check_data("the echo", k.out, data)
    check_exit(srv, 0, 30, "listen")
    meter.join()
    check_wire(meter, "c2s", 599, "1.3", "AES-256-GCM", "connect -> listen")
    check_wire(meter, "s2c", 699, "1.3", "AES-256-GCM", "listen -> connect")


@suite.case("announce: connect --record-size-limit 1000 -> openssl s_server (no RFC 8449): "
            "not negotiated, 16384-byte records taken, exit 0")
def _announce_unknown():
    tls = openssl_tls_args("1.3")
    srv, port = start_s_server(*certs().srv_ec, tls)
    meter = Relay(port)
    data = hex_lines(256 << 10)
    k = ktlsctl("connect", "localhost:%d" % meter.port, "--cafile", certs().ca,
                "--record-size-limit", "1000", *SESSION_ARGS, stdin=True)
    k.send(data)
    srv.wait_until(lambda p: len(p.out) >= len(data), 30)
    srv.send(data)
    k.wait_out(len(data), 30)
    k.close_stdin()
    srv.close_stdin()
    check_exit(k, 0, 30, "connect")
    check_data("what s_server sent", k.out, data)
    _, _, receive, _ = limits_of(k)
    if receive != MAX:
        raise Fail("the limit was not negotiated, yet ktlsctl takes only %d\n%s"
                   % (receive, k.describe()))
    meter.join()
    check_wire(meter, "s2c", MAX, "1.3", "AES-256-GCM", "s_server -> connect")


# ------------------------------------------------------------ padding

def tls_stat(name):
    try:
        with open("/proc/net/tls_stat") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == name:
                    return int(v)
    except OSError:
        pass
    return None


@suite.case("pad: s_server -record_padding 512 TLS1.3 -> connect: data intact; on the kernel "
            "channel TLS_RX_EXPECT_NO_PAD is on and TlsDecryptRetry counts the padded records")
def _padding():
    srv, port = start_s_server(*certs().srv_ec, openssl_tls_args("1.3"),
                               extra=["-record_padding", "512"])
    data = hex_lines(1 << 20)
    before = tls_stat("TlsDecryptRetry")
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS,
                stdin=True)
    k.send(b"hello\n")
    srv.wait_until(lambda p: b"hello\n" in p.out, 30)
    srv.send(data)
    k.wait_out(len(data), 60)
    k.close_stdin()
    srv.close_stdin()
    check_exit(k, 0, 30, "connect")
    check_data("what s_server sent, padded", k.out, data)
    _, _, _, rest = limits_of(k)
    after = tls_stat("TlsDecryptRetry")
    if CHANNEL == "kernel":
        if rest != "; TLS_RX_EXPECT_NO_PAD on":
            raise Fail("TLS_RX_EXPECT_NO_PAD is not in force on the kernel channel\n%s"
                       % k.describe())
        if before is None or after is None or after - before < 1:
            raise Fail("TlsDecryptRetry went from %s to %s: no padded record was retried"
                       % (before, after))
        note("TlsDecryptRetry +%d" % (after - before))
    elif "TLS_RX_EXPECT_NO_PAD" in rest:
        raise Fail("TLS_RX_EXPECT_NO_PAD claimed on the user-space channel\n%s" % k.describe())


# ------------------------------------------------------------ report

@suite.case("report: stats PID --json shows the limits in force and how they are kept")
def _report():
    prio = gnutls_priority("1.3", None, extra=":%ALLOW_SMALL_RECORDS")
    srv, port = start_gnutls_serv(*certs().srv_ec, priority=prio, extra=["--recordsize=512"])
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca,
                "--record-size-limit", "1000", *SESSION_ARGS, stdin=True)
    k.send(b"ping\n")
    k.wait_out(5, 30)
    r = subprocess.run([KTLSCTL, "stats", str(k.pid), "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    k.close_stdin()
    check_exit(k, 0, 30, "connect")
    s = json.loads(r.stdout.decode())["sessions"][0]
    by = ("records" if CHANNEL == "user-space" else
          "kernel-option" if kernel_has("tx_max_payload_len") else "writes")
    want = {("tx", "record_size"): 512, ("tx", "record_size_by"): by,
            ("rx", "record_size"): 999, ("rx", "record_size_exact"): CHANNEL == "user-space",
            ("rx", "no_pad"): CHANNEL == "kernel"}
    for (d, key), v in want.items():
        if s[d].get(key) != v:
            raise Fail("stats --json: %s.%s is %r, expected %r\n%s"
                       % (d, key, s[d].get(key), v, json.dumps(s, indent=1)))


# ------------------------------------------------------------ usage

@suite.case("usage: --record-size-limit outside what RFC 8449 and GnuTLS allow is exit 2")
def _usage():
    cases = [
        (["--record-size-limit", "63"], "invalid --record-size-limit '63': give a number of "
         "bytes from 64 to 16385 (RFC 8449)"),
        (["--record-size-limit", "16386"], "invalid --record-size-limit '16386': give a number "
         "of bytes from 64 to 16385 (RFC 8449)"),
        (["--record-size-limit", "1k"], "invalid --record-size-limit '1k': give a number of "
         "bytes from 64 to 16385 (RFC 8449)"),
        (["--record-size-limit", "64"], "--record-size-limit 64 cannot be announced while "
         "TLS 1.3 is allowed: give 65 to 16385"),
        (["--record-size-limit", "16385", "--tls1.2"], "--record-size-limit 16385 cannot be "
         "announced in TLS 1.2 only: give 64 to 16384"),
    ]
    for args, msg in cases:
        k = ktlsctl("connect", "localhost:1", *args, stdin=None)
        check_exit(k, 2, 10, " ".join(args))
        if k.stderr != "ktlsctl: %s\n" % msg:
            raise Fail("%s: expected exactly %r\n%s" % (" ".join(args), msg, k.describe()))


if __name__ == "__main__":
    sys.exit(suite.main())
