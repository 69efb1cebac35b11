#!/usr/bin/env python3
"""Integration tests of the session features (issue 4): forced and automatic
key updates, the TLS 1.2 record limit, session tickets and resumption, the
session commands in pipe mode (--commands) and the interactive terminal.

Every case asserts ktlsctl's exit status, the SHA-256 of the data that flows,
and the exact event lines ktlsctl prints.  Where a peer can show what it saw
on the wire, the case checks that too: a KeyUpdate ktlsctl claims to send
must reach the peer at the right place in the stream, and a resumption it
reports must be one the server reports.  ktlsctl runs on the channel under
test (KTLSCTL_TEST_CHANNEL, ktlsctl_test.channel); where the channel cannot
rekey (Linux before 6.14, KTLSCTL_TEST_SOFT_NOREKEY=1), the key-update cases
give way to counterparts that expect what ktlsctl does there.  The bulk
sizes, and with them the automatic update point, follow
KTLSCTL_TEST_DATA_SCALE.

Peer behaviour this file relies on (gnutls 3.7.9, OpenSSL 3.0, tmux 3.3),
besides what test_peers.py documents:
  gnutls-serv/-cli -d 5  log every record to stderr ("Decrypted Packet[N]
                       Application Data(23) with length: L") and every
                       KeyUpdate ("received TLS 1.3 key update (R)" with
                       R = update_requested, "sending key update (0)"), in
                       stream order: the position of each KeyUpdate in the
                       data stream is the sum of the lengths before it.  Both
                       answer update_requested with their next write.
  gnutls-serv          prints "*** This is a resumed session" on stdout for a
                       resumed connection; its ticket key lives as long as
                       the process, so a restarted server knows no old ticket.
  s_server/s_client    -msg -msgfile FILE logs every record header, the inner
                       content type and each handshake message (KeyUpdate,
                       NewSessionTicket, ClientHello) in hex; FILE is stdio
                       buffered, so it is read only after the program exited.
                       Data length of a TLS 1.3 record = header length - 17
                       (16-byte tag + content type; ktlsctl never pads).
                       OpenSSL answers update_requested with its next write.
                       s_server resumes (tickets) by default; "-naccept 1
                       ... -naccept 2": the last one wins.
  tmux                 drives the interactive cases: the real binary in a
                       real terminal, the screen read back with capture-pane
                       (-e keeps attributes: events must be bold).  In tmux
                       3.3a #{pane_dead_status} stays empty here, so the exit
                       status is written to a file by a wrapping sh.
Behaviour of ktlsctl worth knowing when reading the counts below: with
--commands, stdin is read 4096 bytes at a time, so records carry at most
4 KiB; an automatic key update happens before a write once the key protected
N records, so the event says "after N+1 records" (the KeyUpdate record
itself is the last one under the old key, core/limits.h).
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import hashlib
import base64
import atexit

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, human, scaled, sized  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL, CHANNEL_ARGS, CHANNEL_NAME, NO_REKEY, OWN_KEYUPDATE_REFUSED, PEER_KEYUPDATE_FATAL,
    REKEY,
    can_rekey, limit_closed)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    SANITIZER_MARKERS, check_exit, free_port, kt_count, kt_lines, ktlsctl, ktlsctl_listen,
    need_line, need_regex_line, Proc, wait_line_count)
from ktlsctl_test.data import check_data, hex_lines, nonul_lines, random_bytes  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, gnutls_cli_argv, gnutls_priority, have, openssl_tls_args, prime_s_server,
    require_programs, s_client_argv, start_gnutls_serv, start_s_server)
from ktlsctl_test.pytls import py_client_ctx, py_server_ctx, PyTls, ServerThread  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool", "openssl")

suite = Suite("test_session")
# The channel under test; --eof close: these peers wait for our close_notify
# (ktlsctl_test.peers.EOF_CLOSE).
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE
BIG = sized(24 << 20)
# The automatic key-update point, scaled with the data so that the same
# number of updates happens (24 MiB of --commands input, at most 4 KiB a
# record, is about 6 keys of 1000 records).
AUTO_N = max(100, 1000 * BIG // (24 << 20))


def certs():
    return suite.certs


def CA():
    return certs().ca


_counter = [0]


def tmpfile(name):
    _counter[0] += 1
    return os.path.join(suite.tmpdir(), "%d-%s" % (_counter[0], name))


def tmpdir(name):
    d = tmpfile(name)
    os.makedirs(d)
    return d


_big = {}


def big_hex():
    """BIG (24 MiB) of hex lines, made once per run."""
    if "hex" not in _big:
        _big["hex"] = hex_lines(BIG)
    return _big["hex"]


# ------------------------------------------------------------ ktlsctl output

STATS_TITLE = re.compile(r"^session (\d+):$")
STATS_DIR_LABELS = ("records under the current key", "confidentiality limit (records, 0 = none)",
                    "limit used (%)", "records in all", "bytes", "key updates")
STATS_LABELS = ("pid", "role", "peer", "record channel", "version", "cipher", "resumed",
                "tickets held", "uptime (s)")


def parse_stats(text):
    """The last /stats report in text (the session's report in full, as
    `ktlsctl stats PID` shows it): {'session': {label: value} of the
    top-level lines, 'send'/'receive': (under_key, 'limit (used%)', records,
    bytes, key_updates), 'point': (rekey point, what happens there) or
    None, 'tickets': tickets held, 'sections': {'send'/'receive': {label:
    value}}}."""
    lines = text.splitlines()
    idx = [i for i, l in enumerate(lines) if STATS_TITLE.match(l)]
    if not idx:
        return None
    top, sections, section = {}, {}, None
    for l in lines[idx[-1] + 1:]:
        if l.startswith("    ") and section is not None:
            k, _, v = l.strip().partition(": ")
            sections[section][k] = v
        elif l.startswith("  ") and not l.startswith("   "):
            k, sep, v = l.strip().partition(": ")
            if not sep and k.endswith(":"):
                section = k[:-1]
                sections[section] = {}
            else:
                section = None
                top[k] = v
        else:
            break
    st = {"session": top, "sections": sections,
          "title": STATS_TITLE.match(lines[idx[-1]]).group(1)}
    for d in ("send", "receive"):
        s = sections.get(d, {})
        if all(k in s for k in STATS_DIR_LABELS):
            st[d] = (int(s["records under the current key"]),
                     "%s (%s%%)" % (s["confidentiality limit (records, 0 = none)"],
                                    s["limit used (%)"]),
                     int(s["records in all"]), int(s["bytes"]), int(s["key updates"]))
    if "rekey point (records under one key)" in top:
        st["point"] = (int(top["rekey point (records under one key)"]),
                       top.get("at the rekey point"))
    if "tickets held" in top:
        st["tickets"] = int(top["tickets held"])
    return st


def need_stats(proc, text=None):
    st = parse_stats(text if text is not None else proc.stderr)
    if not st or "send" not in st or "receive" not in st:
        raise Fail("no complete /stats report (title 'session PID:', the send and receive "
                   "sections with %s)\n%s" % (", ".join(STATS_DIR_LABELS),
                                              proc.describe(4000) if proc else text))
    missing = [k for k in STATS_LABELS if k not in st["session"]]
    if missing:
        raise Fail("/stats lacks %r: %r" % (missing, st["session"]))
    return st


TICKET_ROW = re.compile(r"^([* ]) (\d+)\s+(\d\d:\d\d:\d\d)\s+(\d+)s 0x([0-9a-f]{8}) (\S+)\s+(\d+) "
                        r"([0-9a-f]{16}) (\S+)\s*$")


def parse_tickets(text):
    return [m.groups() for m in (TICKET_ROW.match(l) for l in text.splitlines()) if m]


# ------------------------------------------------------------- peer logs

GNUTLS_RX_APP = re.compile(r"Decrypted Packet\[\d+\] Application Data\(23\) with length: (\d+)")
GNUTLS_RX_KU = re.compile(r"received TLS 1\.3 key update \((\d)\)")
GNUTLS_TX_KU = re.compile(r"sending key update \((\d)\)")


def gnutls_keyupdates(text):
    """From a gnutls -d 5 log: [(data bytes received before it, update_requested)]
    for every KeyUpdate received, and the number of KeyUpdates sent."""
    pos, got, sent = 0, [], 0
    for line in text.splitlines():
        m = GNUTLS_RX_APP.search(line)
        if m:
            pos += int(m.group(1))
            continue
        m = GNUTLS_RX_KU.search(line)
        if m:
            got.append((pos, int(m.group(1))))
            continue
        if GNUTLS_TX_KU.search(line):
            sent += 1
    return got, sent


class OsslMsg:
    """An OpenSSL -msg log: entries (dir '<<<' or '>>>', kind, name, bytes)."""

    HEAD = re.compile(r"^(<<<|>>>) (?:\S+ \S+|\?\?\?), (\w+) \[length [0-9a-fA-F]+\](?:, (.*))?$")

    def __init__(self, path):
        self.entries = []
        cur = None
        try:
            text = open(path, errors="replace").read()
        except OSError:
            text = ""
        for line in text.splitlines():
            m = self.HEAD.match(line)
            if m:
                cur = [m.group(1), m.group(2), m.group(3), bytearray()]
                self.entries.append(cur)
            elif line.startswith("    ") and cur is not None:
                try:
                    cur[3] += bytes.fromhex(line.strip())
                except ValueError:
                    pass
        self.text = text

    def stream13(self, d, tag=16):
        """TLS 1.3 records in direction d: [('data', n) | (handshake name,
        message) | ('alert', text)] in order."""
        ev = []
        reclen = 0
        for di, kind, name, data in self.entries:
            if di != d:
                continue
            if kind == "RecordHeader" and len(data) >= 5:
                reclen = int.from_bytes(data[3:5], "big")
            elif kind == "InnerContent" and data[:1] == b"\x17":
                ev.append(("data", reclen - 1 - tag))
            elif kind == "Handshake":
                ev.append((name, bytes(data)))
            elif kind == "Alert":
                ev.append(("alert", name))
        return ev

    def keyupdates13(self, d):
        """[(data bytes before it, update_requested)] for the KeyUpdates in d."""
        pos, res = 0, []
        for k, v in self.stream13(d):
            if k == "data":
                pos += v
            elif k == "KeyUpdate":
                res.append((pos, v[4] if len(v) > 4 else None))
        return res

    def records_per_key13(self, d):
        """Data records under each key in direction d (the last entry is the
        current key's)."""
        counts = [0]
        for k, v in self.stream13(d):
            if k == "data":
                counts[-1] += 1
            elif k == "KeyUpdate":
                counts.append(0)
        return counts

    def handshakes(self, d, name):
        return [bytes(e[3]) for e in self.entries if e[0] == d and e[1] == "Handshake" and e[2] == name]

    def app_records12(self, d):
        """TLS 1.2 application_data record lengths in direction d."""
        return [int.from_bytes(e[3][3:5], "big") for e in self.entries
                if e[0] == d and e[1] == "RecordHeader" and e[3][:1] == b"\x17"]

    def alerts(self, d):
        return [e[2] for e in self.entries if e[0] == d and e[1] == "Alert"]


def parse_nst(msg):
    """A NewSessionTicket handshake message -> dict."""
    b = msg[4:]
    life = int.from_bytes(b[0:4], "big")
    age_add = int.from_bytes(b[4:8], "big")
    nl = b[8]
    nonce = b[9:9 + nl]
    p = 9 + nl
    tl = int.from_bytes(b[p:p + 2], "big")
    ticket = b[p + 2:p + 2 + tl]
    p += 2 + tl
    el = int.from_bytes(b[p:p + 2], "big")
    exts = b[p + 2:p + 2 + el]
    early = None
    q = 0
    while q + 4 <= len(exts):
        t = int.from_bytes(exts[q:q + 2], "big")
        ln = int.from_bytes(exts[q + 2:q + 4], "big")
        if t == 42 and ln == 4:
            early = int.from_bytes(exts[q + 4:q + 8], "big")
        q += 4 + ln
    return {"lifetime": life, "age_add": age_add, "nonce": nonce, "ticket": ticket, "early": early}


def clienthello_psk_identity(msg):
    """The first PSK identity offered in a ClientHello message, or None."""
    b = msg[4:]
    p = 2 + 32
    p += 1 + b[p]
    p += 2 + int.from_bytes(b[p:p + 2], "big")
    p += 1 + b[p]
    end = p + 2 + int.from_bytes(b[p:p + 2], "big")
    p += 2
    while p + 4 <= end:
        t = int.from_bytes(b[p:p + 2], "big")
        ln = int.from_bytes(b[p + 2:p + 4], "big")
        if t == 41:
            body = b[p + 4:p + 4 + ln]
            il = int.from_bytes(body[2:4], "big")
            return body[4:4 + il]
        p += 4 + ln
    return None


def require_flushed_log(proc, path, timeout=15):
    """s_server/s_client write their -msgfile at exit: wait for the exit."""
    try:
        proc.wait(timeout)
    except Fail:
        pass
    return OsslMsg(path)


def progress(what, got, want):
    return "%s: %d of %d bytes arrived" % (what, got, want)


def want_out(proc, n, timeout, what, *others):
    if not proc.wait_out(n, timeout):
        raise Fail("%s\n%s" % (progress(what, proc.out_total, n),
                               "\n".join(o.describe(3000) for o in (proc,) + others)))


# ======================================================= forced key updates

@suite.case("forced: --commands /keyupdate and /keyupdate request x2 mid-stream -> gnutls-serv "
            "--echo TLS1.3 (server log: each at its place)", timeout=60, when=REKEY)
def _forced_gnutls_serv():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "AES-128-GCM"), debug=5,
                                   keep_output=True)
    parts = [hex_lines(64 << 10) for _ in range(5)]
    cmds = [b"/keyupdate\n", b"/keyupdate request\n", b"/keyupdate\n", b"/keyupdate request\n"]
    stream = parts[0] + b"".join(c + p for c, p in zip(cmds, parts[1:])) + b"/stats\n"
    data = b"".join(parts)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v",
                stdin=stream)
    check_exit(k, 0, 40, "ktlsctl connect --commands")
    check_data("ktlsctl stdout (echo across 4 KeyUpdates)", k.stdout, data)
    ours = [l for l in kt_lines(k) if l.startswith("updated our send keys")]
    want = ["updated our send keys", "updated our send keys and asked the peer to update"] * 2
    if ours != want:
        raise Fail("our key-update events %r, expected %r\n%s" % (ours, want, k.describe(4000)))
    need_line(k, "peer updated its keys", 2)
    st = need_stats(k)
    under, _lim, recs, nbytes, gen = st["send"]
    if gen != 4 or nbytes != len(data):
        raise Fail("/stats send: key updates %d (expected 4), bytes %d (expected %d)\n%s"
                   % (gen, nbytes, len(data), k.describe(4000)))
    # What gnutls-serv saw: the KeyUpdates, each after exactly the data before it.
    serv.wait_until(lambda p: len(gnutls_keyupdates(p.stderr)[0]) >= 4
                    and gnutls_keyupdates(p.stderr)[1] >= 2, 10)
    got, answered = gnutls_keyupdates(serv.stderr)
    pos = [sum(len(x) for x in parts[:i + 1]) for i in range(4)]
    expect = list(zip(pos, [0, 1, 0, 1]))
    if got != expect:
        raise Fail("gnutls-serv received KeyUpdates at (data offset, update_requested) %r, "
                   "expected %r" % (got, expect))
    if answered != 2:
        raise Fail("gnutls-serv sent %d KeyUpdates, expected 2 (one per request)" % answered)


@suite.case("forced: --commands /keyupdate [request] -> s_server TLS1.3, data both ways "
            "(s_server -msg: positions, flags, its answers)", timeout=60, when=REKEY)
def _forced_s_server():
    cert, key = certs().srv_rsa
    msg = tmpfile("s_server.msg")
    srv, port = start_s_server(cert, key, openssl_tls_args("1.3", "AES-256-GCM"),
                               extra=["-msg", "-msgfile", msg])
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--tls1.3",
                "--commands", "-v")
    up = prime_s_server(srv, k)
    A, B, C, D = (hex_lines(64 << 10) for _ in range(4))
    d1, d2 = random_bytes(96 << 10), random_bytes(96 << 10)
    k.send(A + b"/keyupdate request\n" + B)
    up += A + B
    want_out(srv, len(up), 20, "s_server stdout", k)
    srv.send(d1)                    # OpenSSL answers the request with this write
    want_out(k, len(d1), 20, "ktlsctl stdout", srv)
    if not wait_line_count(k, "peer updated its keys", 1, 10):
        raise Fail("no 'peer updated its keys' after s_server wrote past our request\n%s" % k.describe())
    k.send(b"/keyupdate\n" + C + b"/keyupdate request\n" + D)
    up += C + D
    want_out(srv, len(up), 20, "s_server stdout", k)
    srv.send(d2)
    want_out(k, len(d1) + len(d2), 20, "ktlsctl stdout", srv)
    if not wait_line_count(k, "peer updated its keys", 2, 10):
        raise Fail("no second 'peer updated its keys'\n%s" % k.describe())
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect --commands")
    check_data("ktlsctl stdout (from s_server)", k.stdout, d1 + d2)
    check_data("s_server stdout (from ktlsctl)", srv.stdout, up)
    ours = [l for l in kt_lines(k) if l.startswith("updated our send keys")]
    want = ["updated our send keys and asked the peer to update", "updated our send keys",
            "updated our send keys and asked the peer to update"]
    if ours != want:
        raise Fail("our key-update events %r, expected %r" % (ours, want))
    need_line(k, "peer updated its keys", 2)
    log = require_flushed_log(srv, msg)
    P = len(up) - len(A + B + C + D)
    got = log.keyupdates13("<<<")
    expect = [(P + len(A), 1), (P + len(A + B), 0), (P + len(A + B + C), 1)]
    if got != expect:
        raise Fail("s_server received KeyUpdates at (offset, update_requested) %r, expected %r"
                   % (got, expect))
    sent = log.keyupdates13(">>>")
    if sent != [(0, 0), (len(d1), 0)]:
        raise Fail("s_server sent KeyUpdates at %r, expected [(0, 0), (%d, 0)]" % (sent, len(d1)))
    if "close_notify" not in " ".join(log.alerts("<<<")):
        raise Fail("s_server did not receive close_notify from ktlsctl")


@suite.case("forced: listen --commands (no --echo) /keyupdate [request] -> s_client TLS1.3 "
            "(s_client -msg)", timeout=60, when=REKEY)
def _forced_listen_s_client():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, "--tls1.3", "--commands", "-v")
    msg = tmpfile("s_client.msg")
    cli = Proc(s_client_argv(port, CA(), ["-tls1_3"], mode="quiet", extra=["-msg", "-msgfile", msg]),
               name="s_client")
    A, B, C, D = (hex_lines(64 << 10) for _ in range(4))
    u1, u2 = random_bytes(80 << 10), random_bytes(80 << 10)
    k.send(A + b"/keyupdate\n" + B + b"/keyupdate request\n" + C)
    want_out(cli, len(A + B + C), 20, "s_client stdout", k)
    cli.send(u1)
    want_out(k, len(u1), 20, "ktlsctl stdout", cli)
    if not wait_line_count(k, "peer updated its keys", 1, 10):
        raise Fail("no 'peer updated its keys' after s_client wrote past our request\n%s" % k.describe())
    k.send(b"/keyupdate request\n" + D)
    want_out(cli, len(A + B + C + D), 20, "s_client stdout", k)
    cli.send(u2)
    want_out(k, len(u1 + u2), 20, "ktlsctl stdout", cli)
    if not wait_line_count(k, "peer updated its keys", 2, 10):
        raise Fail("no second 'peer updated its keys'\n%s" % k.describe())
    k.close_stdin()                 # close_notify; s_client answers it
    check_exit(k, 0, 20, "ktlsctl listen --commands")
    cli.close_stdin()
    log = require_flushed_log(cli, msg, 20)
    check_data("s_client stdout (from ktlsctl)", cli.stdout, A + B + C + D)
    check_data("ktlsctl stdout (from s_client)", k.stdout, u1 + u2)
    ours = [l for l in kt_lines(k) if l.startswith("updated our send keys")]
    want = ["updated our send keys", "updated our send keys and asked the peer to update",
            "updated our send keys and asked the peer to update"]
    if ours != want:
        raise Fail("our key-update events %r, expected %r" % (ours, want))
    need_line(k, "peer updated its keys", 2)
    got = log.keyupdates13("<<<")
    expect = [(len(A), 0), (len(A + B), 1), (len(A + B + C), 1)]
    if got != expect:
        raise Fail("s_client received KeyUpdates at (offset, update_requested) %r, expected %r"
                   % (got, expect))
    sent = log.keyupdates13(">>>")
    if sent != [(0, 0), (len(u1), 0)]:
        raise Fail("s_client sent KeyUpdates at %r, expected [(0, 0), (%d, 0)]" % (sent, len(u1)))


@suite.case("forced: listen --commands /keyupdate [request] -> gnutls-cli TLS1.3 (gnutls-cli -d 5)",
            timeout=60, when=REKEY)
def _forced_listen_gnutls_cli():
    cert, key = certs().srv_rsa
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, "--tls1.3", "--commands", "-v",
                             "--cipher", "CHACHA20-POLY1305")
    log = tmpfile("gnutls-cli.log")
    cli = Proc(gnutls_cli_argv(port, CA(), log, gnutls_priority("1.3"), extra=["-d", "5"]),
               name="gnutls-cli", stderr_cap=None)
    A, B, C = (hex_lines(32 << 10) for _ in range(3))
    u1 = nonul_lines(48 << 10)
    k.send(A + b"/keyupdate request\n" + B + b"/keyupdate\n" + C)
    want_out(cli, len(A + B + C), 30, "gnutls-cli stdout", k)
    cli.send(u1)
    want_out(k, len(u1), 20, "ktlsctl stdout", cli)
    if not wait_line_count(k, "peer updated its keys", 1, 10):
        raise Fail("no 'peer updated its keys' after gnutls-cli wrote past our request\n%s"
                   % k.describe())
    cli.close_stdin()               # gnutls-cli closes first (it does not answer close_notify)
    if not wait_line_count(k, "peer sent close_notify", 1, 15):
        raise Fail("gnutls-cli's close_notify not seen\n%s" % k.describe())
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl listen --commands")
    cli.wait(20)
    check_data("gnutls-cli stdout (from ktlsctl)", cli.stdout, A + B + C)
    check_data("ktlsctl stdout (from gnutls-cli)", k.stdout, u1)
    ours = [l for l in kt_lines(k) if l.startswith("updated our send keys")]
    want = ["updated our send keys and asked the peer to update", "updated our send keys"]
    if ours != want:
        raise Fail("our key-update events %r, expected %r" % (ours, want))
    need_line(k, "peer updated its keys", 1)
    got, answered = gnutls_keyupdates(cli.stderr)
    expect = [(len(A), 1), (len(A + B), 0)]
    if got != expect or answered != 1:
        raise Fail("gnutls-cli received KeyUpdates at %r (expected %r) and sent %d (expected 1)"
                   % (got, expect, answered))


@suite.case("forced without rekey: --commands /keyupdate and /keyupdate request -> gnutls-serv "
            "--echo TLS1.3: the reason each time, no KeyUpdate on the wire (server log), the "
            "echo intact", timeout=60, when=NO_REKEY)
def _forced_norekey_gnutls_serv():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "AES-128-GCM"), debug=5,
                                   keep_output=True)
    parts = [hex_lines(64 << 10) for _ in range(3)]
    stream = parts[0] + b"/keyupdate\n" + parts[1] + b"/keyupdate request\n" + parts[2] + b"/stats\n"
    data = b"".join(parts)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v",
                stdin=stream)
    check_exit(k, 0, 40, "ktlsctl connect --commands")
    check_data("ktlsctl stdout (the echo)", k.stdout, data)
    need_line(k, OWN_KEYUPDATE_REFUSED, 2)
    updates = [l for l in kt_lines(k) if "updated" in l and "keys" in l]
    if updates:
        raise Fail("key-update events on a channel that cannot rekey: %r\n%s" % (updates, k.describe()))
    st = need_stats(k)
    if st["send"][4] != 0 or st["send"][3] != len(data) or st["receive"][4] != 0:
        raise Fail("/stats: send key gen %d, bytes %d; receive key gen %d (expected 0, %d, 0)"
                   % (st["send"][4], st["send"][3], st["receive"][4], len(data)))
    got, answered = gnutls_keyupdates(serv.stderr)
    if got or answered:
        raise Fail("gnutls-serv received KeyUpdates %r and sent %d: expected none" % (got, answered))


@suite.case("forced without rekey: listen --commands /keyupdate [request] -> s_client TLS1.3: the "
            "reason each time, no KeyUpdate on the wire (s_client -msg), data both ways", timeout=60,
            when=NO_REKEY)
def _forced_norekey_listen():
    cert, key = certs().srv_ec
    k, port = ktlsctl_listen("--cert", cert, "--key", key, *SESSION_ARGS, "--tls1.3", "--commands", "-v")
    msg = tmpfile("s_client.msg")
    cli = Proc(s_client_argv(port, CA(), ["-tls1_3"], mode="quiet", extra=["-msg", "-msgfile", msg]),
               name="s_client")
    A, B, C = (hex_lines(64 << 10) for _ in range(3))
    u1 = random_bytes(80 << 10)
    k.send(A + b"/keyupdate\n" + B + b"/keyupdate request\n" + C)
    want_out(cli, len(A + B + C), 20, "s_client stdout", k)
    cli.send(u1)
    want_out(k, len(u1), 20, "ktlsctl stdout", cli)
    k.close_stdin()                 # close_notify; s_client answers it
    check_exit(k, 0, 20, "ktlsctl listen --commands")
    cli.close_stdin()
    log = require_flushed_log(cli, msg, 20)
    check_data("s_client stdout (from ktlsctl)", cli.stdout, A + B + C)
    check_data("ktlsctl stdout (from s_client)", k.stdout, u1)
    need_line(k, OWN_KEYUPDATE_REFUSED, 2)
    if log.keyupdates13("<<<") or log.keyupdates13(">>>"):
        raise Fail("KeyUpdates on the wire: s_client received %r, sent %r"
                   % (log.keyupdates13("<<<"), log.keyupdates13(">>>")))


@suite.case("forced: /keyupdate on TLS 1.2 -> 'not in TLS 1.2' error line, session goes on", timeout=40)
def _forced_tls12():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.2"))
    a, b = hex_lines(32 << 10), hex_lines(32 << 10)     # no line may start with /
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands",
                stdin=a + b"/keyupdate\n/keyupdate request\n" + b)
    check_exit(k, 0, 30, "ktlsctl connect --tls1.2 --commands")
    check_data("ktlsctl stdout (echo)", k.stdout, a + b)
    lines = kt_lines(k)
    want = ["key updates are not in TLS 1.2 (only TLS 1.3 can change keys)"] * 2
    if lines != want:
        raise Fail("stderr lines %r, expected exactly %r" % (lines, want))


# ==================================================== automatic key updates

AUTO_RX = re.compile(r"updated our send keys after (\d+) records \(limit reached\)")


def auto_events(proc):
    return [int(m.group(1)) for m in (AUTO_RX.fullmatch(l) for l in kt_lines(proc)) if m]


def check_auto_counts(proc, n_point, nbytes, what):
    """Consistency of the automatic updates with the /stats send row."""
    autos = auto_events(proc)
    manual = [l for l in kt_lines(proc) if l.startswith("updated our send keys") and not AUTO_RX.fullmatch(l)]
    if manual:
        raise Fail("%s: unexpected key-update events %r" % (what, manual))
    st = need_stats(proc)
    under, _lim, recs, sbytes, gen = st["send"]
    if st.get("point") != (n_point, "update"):
        raise Fail("%s: /stats says rekey point and action %r, expected (%d, 'update')"
                   % (what, st.get("point"), n_point))
    problems = []
    if sbytes != nbytes:
        problems.append("/stats send bytes %d, expected %d" % (sbytes, nbytes))
    if gen != len(autos):
        problems.append("/stats key updates %d but %d 'updated our send keys after' events" % (gen, len(autos)))
    # Each key protects n_point records, plus the KeyUpdate record itself and
    # at most one record of overshoot (core/limits.h KC_LIMIT_MAX_OVERSHOOT).
    bad = [a for a in autos if not n_point <= a <= n_point + 2]
    if bad:
        problems.append("events report %r records under a key, expected %d..%d" % (bad, n_point, n_point + 2))
    if under > n_point + 1:
        problems.append("%d records under the current key, past the point %d" % (under, n_point))
    if sum(autos) + under != recs:
        problems.append("records: %d under old keys + %d under the current one != %d in total"
                        % (sum(autos), under, recs))
    data_recs = recs - len(autos)
    lo, hi = (data_recs - 1) // (n_point + 1), (data_recs - 1) // n_point
    if not lo <= len(autos) <= hi:
        problems.append("%d automatic updates for %d data records, expected %d..%d"
                        % (len(autos), data_recs, lo, hi))
    if len(autos) < nbytes // (16384 * n_point):
        problems.append("%d automatic updates for %d bytes: fewer than %d (full records)"
                        % (len(autos), nbytes, nbytes // (16384 * n_point)))
    if problems:
        raise Fail("%s:\n  %s\n%s" % (what, "\n  ".join(problems), proc.describe(3000)))
    return autos, st


@suite.case("automatic: --key-update-after %d, %s hex -> gnutls-serv --echo (--commands, /stats)"
            % (AUTO_N, human(BIG)), timeout=150, when=REKEY)
def _auto_gnutls_serv():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "AES-128-GCM"))
    data = big_hex()
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v",
                "--key-update-after", AUTO_N, stdin=data + b"/stats\n")
    check_exit(k, 0, 120, "ktlsctl connect --key-update-after %d" % AUTO_N)
    check_data("ktlsctl stdout (%s echo)" % human(BIG), k.stdout, data)
    check_auto_counts(k, AUTO_N, len(data), "ktlsctl connect")


def auto_s_server(rekey):
    """--key-update-after AUTO_N, half of BIG -> s_server -msg: the records
    under each key on the wire; without rekey the session ends there."""
    cert, key = certs().srv_ec
    msg = tmpfile("s_server-auto.msg")
    srv, port = start_s_server(cert, key, openssl_tls_args("1.3", "AES-128-GCM"),
                               extra=["-msg", "-msgfile", msg])
    data = big_hex()[:BIG // 2]
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v",
                "--key-update-after", AUTO_N, stdin=data + b"/stats\n")
    if not rekey:
        check_exit(k, 13, 100, "ktlsctl connect --key-update-after %d" % AUTO_N)
        if kt_lines(k)[-1:] != [limit_closed(AUTO_N, "AES-128-GCM")] \
                or [l for l in kt_lines(k) if "updated" in l and "keys" in l]:
            raise Fail("ktlsctl's last line is not %r, or it reported key updates\n%s"
                       % (limit_closed(AUTO_N, "AES-128-GCM"), k.describe()))
        log = require_flushed_log(srv, msg, 20)
        srv.close_stdin()
        got = srv.stdout
        per_key = log.records_per_key13("<<<")
        problems = []
        if data[:len(got)] != got:
            problems.append("s_server received %d bytes that are not a prefix of the input" % len(got))
        if len(per_key) != 1 or not AUTO_N - 1 <= per_key[0] <= AUTO_N + 1:
            problems.append("data records per key on the wire %r, expected %d under the one key"
                            % (per_key, AUTO_N))
        if not any("close_notify" in a for a in log.alerts("<<<")):
            problems.append("s_server did not receive close_notify (alerts: %r)" % log.alerts("<<<"))
        if problems:
            raise Fail("\n".join(problems) + "\n" + k.describe())
        return
    check_exit(k, 0, 100, "ktlsctl connect --key-update-after %d" % AUTO_N)
    log = require_flushed_log(srv, msg, 20)
    check_data("s_server stdout (%s)" % human(len(data)), srv.stdout, data)
    autos, st = check_auto_counts(k, AUTO_N, len(data), "ktlsctl connect")
    kus = log.keyupdates13("<<<")
    per_key = log.records_per_key13("<<<")
    problems = []
    if len(kus) != len(autos):
        problems.append("s_server received %d KeyUpdates, ktlsctl reported %d" % (len(kus), len(autos)))
    if any(f != 0 for _, f in kus):
        problems.append("automatic KeyUpdates must not request an update: %r" % kus)
    bad = [n for n in per_key[:-1] if not AUTO_N - 1 <= n <= AUTO_N + 1]
    if bad:
        problems.append("data records per key on the wire %r, expected %d each" % (bad, AUTO_N))
    if per_key[-1] != st["send"][0]:
        problems.append("records under the last key: %d on the wire, %d in /stats"
                        % (per_key[-1], st["send"][0]))
    if problems:
        raise Fail("\n".join(problems))


suite.add("automatic: --key-update-after %d, %s hex -> s_server (-msg: %d data records per key "
          "on the wire)" % (AUTO_N, human(BIG // 2), AUTO_N), lambda: auto_s_server(True),
          timeout=120, when=REKEY)
suite.add("automatic without rekey: --key-update-after %d -> s_server TLS1.3: exit 13 after %d "
          "records under the one key (-msg), close_notify" % (AUTO_N, AUTO_N),
          lambda: auto_s_server(False), timeout=120, when=NO_REKEY)


@suite.case("automatic without rekey: --key-update-after %d -> gnutls-serv --echo: exit 13, the "
            "echo a prefix of what %d records carry" % (AUTO_N, AUTO_N), timeout=60, when=NO_REKEY)
def _auto_norekey_gnutls_serv():
    cert, key = certs().srv_rsa
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "AES-256-GCM"))
    data = big_hex()
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS,
                "--key-update-after", AUTO_N, stdin=data)
    check_exit(k, 13, 60, "ktlsctl connect --key-update-after %d" % AUTO_N)
    if kt_lines(k) != [limit_closed(AUTO_N, "AES-256-GCM")]:
        raise Fail("stderr lines %r, expected exactly [%r]"
                   % (kt_lines(k), limit_closed(AUTO_N, "AES-256-GCM")))
    out = k.stdout
    if data[:len(out)] != out:
        raise Fail("ktlsctl stdout (%d bytes) is not a prefix of the input" % len(out))
    if len(out) > AUTO_N * 16384:
        raise Fail("%d bytes came back: more than %d records could carry" % (len(out), AUTO_N))


@suite.case("automatic: connect <-> listen --echo, both --key-update-after %d, %s: each side's "
            "updates are the other's 'peer updated its keys'" % (AUTO_N, human(BIG)), timeout=150,
            when=REKEY)
def _auto_both():
    cert, key = certs().srv_rsa
    srvk, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-v", *SESSION_ARGS, "--tls1.3",
                                "--key-update-after", AUTO_N, name="ktlsctl-listen")
    data = big_hex()
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "-v", "--commands",
                "--key-update-after", AUTO_N, stdin=data + b"/stats\n")
    check_exit(k, 0, 120, "ktlsctl connect")
    check_exit(srvk, 0, 20, "ktlsctl listen --echo")
    check_data("ktlsctl connect stdout (%s echo)" % human(BIG), k.stdout, data)
    autos, _ = check_auto_counts(k, AUTO_N, len(data), "ktlsctl connect")
    up, down = len(autos), len(auto_events(srvk))
    peer_at_srv = kt_count(srvk, "peer updated its keys")
    peer_at_cli = kt_count(k, "peer updated its keys")
    if not (up >= 1 and down >= 1 and peer_at_srv == up and peer_at_cli == down):
        raise Fail("connect updated %d times, listen saw %d; listen updated %d times, connect saw %d "
                   "(expected equal, and at least 1 each way)\n%s\n%s"
                   % (up, peer_at_srv, down, peer_at_cli, k.describe(2000), srvk.describe(2000)))


@suite.case("TLS1.2 limit: --key-update-after 100 -> s_server: exit 13, only 100 records, "
            "close_notify", timeout=60)
def _limit12_s_server():
    cert, key = certs().srv_ec
    msg = tmpfile("s_server-12.msg")
    srv, port = start_s_server(cert, key, openssl_tls_args("1.2", "AES-128-GCM"),
                               extra=["-msg", "-msgfile", msg])
    data = big_hex()[:4 << 20]
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--tls1.2",
                "--key-update-after", "100", stdin=data)
    check_exit(k, 13, 30, "ktlsctl connect --tls1.2 --key-update-after 100")
    lines = kt_lines(k)
    want = limit_closed(100, "AES-128-GCM", tls12=True)
    if lines != [want]:
        raise Fail("stderr lines %r, expected exactly [%r]" % (lines, want))
    check_data("ktlsctl stdout", k.stdout, b"")
    # s_server ends by itself after the close (-naccept 1); its stdin EOF
    # would drop records it has not read yet.
    log = require_flushed_log(srv, msg, 15)
    srv.close_stdin()
    got = srv.stdout
    if data[:len(got)] != got:
        raise Fail("s_server received %d bytes that are not a prefix of the input" % len(got))
    recs = log.app_records12("<<<")
    alerts = log.alerts("<<<")
    problems = []
    # The client Finished is record 0 under the key: 99 data records make
    # 100 (one more is the documented overshoot, KC_LIMIT_MAX_OVERSHOOT).
    if not 98 <= len(recs) <= 100:
        problems.append("s_server received %d application data records, expected 99 (+1 Finished = 100)"
                        % len(recs))
    if sum(r - 8 - 16 for r in recs) != len(got):
        problems.append("s_server's records carry %d bytes, its stdout has %d"
                        % (sum(r - 24 for r in recs), len(got)))
    if len(got) < 90 * 4096:
        problems.append("only %d bytes arrived before the close" % len(got))
    if not any("close_notify" in a for a in alerts):
        problems.append("s_server did not receive close_notify (alerts: %r)" % alerts)
    if problems:
        raise Fail("\n".join(problems) + "\n" + k.describe())


@suite.case("TLS1.2 limit: --key-update-after 100 -> gnutls-serv --echo (--commands /stats first): "
            "exit 13, echo is a prefix", timeout=60)
def _limit12_gnutls_serv():
    cert, key = certs().srv_rsa
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.2", "AES-256-GCM"))
    data = big_hex()[:4 << 20]
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands",
                "--key-update-after", "100", stdin=b"/stats\n" + data)
    check_exit(k, 13, 30, "ktlsctl connect --tls1.2 --key-update-after 100")
    st = need_stats(k)
    # TLS 1.2 cannot update keys: the session closes at the rekey point.
    want = (100, "close")
    if st.get("point") != want or st["session"].get("version") != "TLS1.2":
        raise Fail("/stats says rekey point and action %r in %r, expected %r in TLS1.2"
                   % (st.get("point"), st["session"].get("version"), want))
    need_line(k, limit_closed(100, "AES-256-GCM", tls12=True))
    out = k.stdout
    if data[:len(out)] != out:
        raise Fail("ktlsctl stdout (%d bytes) is not a prefix of the input" % len(out))
    if len(out) > 100 * 16384:
        raise Fail("%d bytes came back: more than 100 records could carry" % len(out))


# ========================================================= tickets, resumption

def session_file_ok(path, peer):
    st = os.stat(path)
    if st.st_mode & 0o777 != 0o600:
        raise Fail("session file %s has mode %04o, expected 0600" % (path, st.st_mode & 0o777))
    text = open(path, "rb").read().decode("ascii", "replace")
    lines = text.splitlines()
    if not lines or lines[0] != "ktlsctl-session 1" or "peer %s" % peer not in lines:
        raise Fail("session file %s does not start with 'ktlsctl-session 1' / name 'peer %s': %r"
                   % (path, peer, lines[:3]))
    others = [f for f in os.listdir(os.path.dirname(path)) if f != os.path.basename(path)]
    if others:
        raise Fail("files left next to the session file (not written atomically?): %r" % others)


def umask_ktlsctl(mask, *args, **kw):
    """ktlsctl under a given umask (through sh)."""
    kw.setdefault("name", "ktlsctl")
    return Proc(["sh", "-c", 'umask %s; exec "$0" "$@"' % mask, KTLSCTL] + [str(a) for a in args], **kw)


def resume_gnutls_serv(version):
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority(version), keep_output=True)
    d = tmpdir("sess")
    f = os.path.join(d, "s")
    with open(f, "w") as fh:        # an old file with open permissions is replaced
        fh.write("old\n")
    os.chmod(f, 0o644)
    a = nonul_lines(16 << 10)
    k1 = umask_ktlsctl("000", "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS,
                       "--tls" + version, "-v", "--session-out", f, stdin=a)
    check_exit(k1, 0, 30, "ktlsctl connect --session-out (umask 000)")
    check_data("first connection echo", k1.stdout, a)
    session_file_ok(f, "localhost:%d" % port)
    if version == "1.3":
        need_line(k1, "session ticket received (lifetime 21600s)", 2)
    b = nonul_lines(16 << 10)
    k2 = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--tls" + version,
                 "-v", "--session-in", f, stdin=b)
    check_exit(k2, 0, 30, "ktlsctl connect --session-in")
    check_data("resumed connection echo", k2.stdout, b)
    need_line(k2, "session resumed from %s" % f)
    need_regex_line(k2, r"connected to 127\.0\.0\.1:%d: TLS%s \S+, resumed, %s"
                    % (port, re.escape(version), CHANNEL_NAME))
    serv.wait_until(lambda p: p.stdout.count(b"*** This is a resumed session") >= 1, 5)
    n = serv.stdout.count(b"*** This is a resumed session")
    if n != 1:
        raise Fail("gnutls-serv reports %d resumed sessions, expected 1" % n)


for _v in ("1.3", "1.2"):
    suite.add("resume: --session-out (0600 under umask 000, replaces a 0644 file) then --session-in "
              "-> gnutls-serv TLS%s" % _v, lambda v=_v: resume_gnutls_serv(v), timeout=60)


def resume_s_server(version):
    cert, key = certs().srv_rsa
    msg = tmpfile("s_server-resume.msg")
    srv, port = start_s_server(cert, key, openssl_tls_args(version),
                               extra=["-naccept", "2", "-msg", "-msgfile", msg])
    d = tmpdir("sess")
    f = os.path.join(d, "s")
    a, b = hex_lines(8 << 10), hex_lines(8 << 10)
    k1 = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--tls" + version,
                 "-v", "--session-out", f, stdin=a)
    check_exit(k1, 0, 30, "ktlsctl connect --session-out")
    session_file_ok(f, "localhost:%d" % port)
    if version == "1.3":
        need_line(k1, "session ticket received (lifetime 7200s)", 2)
    k2 = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--tls" + version,
                 "-v", "--session-in", f, stdin=b)
    check_exit(k2, 0, 30, "ktlsctl connect --session-in")
    need_line(k2, "session resumed from %s" % f)
    srv.close_stdin()
    log = require_flushed_log(srv, msg, 15)
    check_data("s_server stdout (both connections)", srv.stdout, a + b)
    certs_sent = len(log.handshakes(">>>", "Certificate"))
    if certs_sent != 1:
        raise Fail("s_server sent its Certificate %d times in 2 connections: the second was not "
                   "resumed on its side" % certs_sent)


for _v in ("1.3", "1.2"):
    suite.add("resume: --session-out then --session-in -> s_server TLS%s (s_server: no "
              "Certificate the second time)" % _v, lambda v=_v: resume_s_server(v), timeout=60)


def forged_file(src, dst):
    """src with the session data changed and the checksum made to match."""
    lines = open(src, "rb").read().split(b"\n")
    i = [n for n, l in enumerate(lines) if l.startswith(b"data ")][0]
    raw = bytearray(base64.b64decode(lines[i][5:]))
    for j in range(0, len(raw), 7):
        raw[j] ^= 0x5A
    lines[i] = b"data " + base64.b64encode(bytes(raw))
    j = [n for n, l in enumerate(lines) if l.startswith(b"sha256 ")][0]
    lines[j] = b"sha256 " + hashlib.sha256(bytes(raw)).hexdigest().encode()
    with open(dst, "wb") as fh:
        fh.write(b"\n".join(lines))
    os.chmod(dst, 0o600)


def corrupt_file(src, dst):
    """src with one base64 character of the data changed (checksum kept)."""
    lines = open(src, "rb").read().split(b"\n")
    i = [n for n, l in enumerate(lines) if l.startswith(b"data ")][0]
    l = bytearray(lines[i])
    l[60] = ord("B") if l[60] != ord("B") else ord("C")
    lines[i] = bytes(l)
    with open(dst, "wb") as fh:
        fh.write(b"\n".join(lines))
    os.chmod(dst, 0o600)


def write600(path, data, mode=0o600):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def full_handshake_with(port, f, notice, serv, what, host="localhost", extra=()):
    """ktlsctl --session-in f: exit 0, echo intact, the notice (regex on
    the line after "ktlsctl: "), and no resumption (ktlsctl's nor the
    server's)."""
    before = serv.stdout.count(b"*** This is a resumed session")
    # gnutls-serv says "This is a resumed session" before the "- Description:"
    # line it prints for every handshake
    handshakes = serv.stdout.count(b"\n- Description: ")
    data = nonul_lines(8 << 10)
    k = ktlsctl("connect", "%s:%d" % (host, port), "--cafile", CA(), *SESSION_ARGS, "-v", "--session-in", f,
                *extra, stdin=data)
    check_exit(k, 0, 30, "ktlsctl connect --session-in (%s)" % what)
    check_data("echo (%s)" % what, k.stdout, data)
    need_regex_line(k, notice, what)
    if any("session resumed" in l for l in kt_lines(k)) or any(", resumed," in l for l in kt_lines(k)):
        raise Fail("%s: ktlsctl says the session was resumed\n%s" % (what, k.describe()))
    need_regex_line(k, r"connected to 127\.0\.0\.1:%d: TLS1\.\d \S+, %s" % (port, CHANNEL_NAME), what)
    if not serv.wait_until(lambda p: p.stdout.count(b"\n- Description: ") > handshakes, 10):
        raise Fail("%s: gnutls-serv did not describe the handshake\n%s" % (what, serv.describe()))
    if serv.stdout.count(b"*** This is a resumed session") != before:
        raise Fail("%s: gnutls-serv resumed the session" % what)
    return k


AGAIN = "save a new one with --session-out"


@suite.case("resume: unusable session files (corrupt, forged, binary, text, empty, truncated, 0644, "
            "missing, directory) -> notice + full handshake, exit 0", timeout=60)
def _bad_files():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, keep_output=True)
    d = tmpdir("bad")
    good = os.path.join(d, "good")
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "-q", "--session-out", good,
                stdin=b"x\n")
    check_exit(k, 0, 30, "ktlsctl connect --session-out")
    session_file_ok(good, "localhost:%d" % port)
    text = open(good, "rb").read()
    cases = []
    p = os.path.join(d, "corrupt")
    corrupt_file(good, p)
    cases.append((p, r"session file %s is corrupt \(checksum mismatch\); %s; doing a full handshake"
                  % (re.escape(p), AGAIN), "corrupt"))
    p = os.path.join(d, "forged")
    forged_file(good, p)
    cases.append((p, r"(the session in %s is not usable \(.+\); did a full handshake|session in %s not "
                     r"resumed \(the server did not accept it: expired or unknown to it\); did a full "
                     r"handshake)" % (re.escape(p), re.escape(p)), "forged: checksum right, data wrong"))
    p = os.path.join(d, "binary")
    write600(p, b"\x00\x01\x02\xff" * 64)
    cases.append((p, r"%s is not a ktlsctl session file \(it is binary\); %s; doing a full handshake"
                  % (re.escape(p), AGAIN), "binary"))
    p = os.path.join(d, "text")
    write600(p, b"hello world\nsecond line\n")
    cases.append((p, r"%s is not a ktlsctl session file \(its first line is not \"ktlsctl-session 1\"\); "
                     r"%s; doing a full handshake" % (re.escape(p), AGAIN), "text"))
    p = os.path.join(d, "empty")
    write600(p, b"")
    cases.append((p, r"session file %s is empty, not a ktlsctl session file; %s; doing a full handshake"
                  % (re.escape(p), AGAIN), "empty"))
    p = os.path.join(d, "truncated")
    write600(p, text[:len(text) // 2])
    cases.append((p, r"session file %s is truncated \(.+\); %s; doing a full handshake"
                  % (re.escape(p), AGAIN), "truncated"))
    p = os.path.join(d, "open")
    write600(p, text, 0o644)
    cases.append((p, r"session file %s: permissions too open \(0644\): it holds a secret; chmod 600 %s; "
                     r"doing a full handshake" % (re.escape(p), re.escape(p)), "mode 0644"))
    p = os.path.join(d, "missing")
    cases.append((p, r"no session file %s; save one with --session-out first; doing a full handshake"
                  % re.escape(p), "missing"))
    p = os.path.join(d, "adir")
    os.mkdir(p, 0o700)
    cases.append((p, r"session file %s is not a regular file; doing a full handshake" % re.escape(p),
                  "directory"))
    fails = []
    for path, notice, what in cases:
        try:
            full_handshake_with(port, path, notice, serv, what)
        except Fail as e:
            fails.append("[%s] %s" % (what, e))
    if fails:
        raise Fail("\n".join(fails))


@suite.case("resume: foreign session files (saved for another host:port) -> notice + full handshake",
            timeout=60)
def _foreign_files():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, keep_output=True)
    serv2, port2 = start_gnutls_serv(cert, key, keep_output=True)
    d = tmpdir("foreign")
    f = os.path.join(d, "s")
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "-q", "--session-out", f,
                stdin=b"x\n")
    check_exit(k, 0, 30, "ktlsctl connect --session-out")
    full_handshake_with(port2, f, r"session file %s was saved for localhost:%d, not localhost:%d; use a "
                        r"session file saved for localhost:%d; doing a full handshake"
                        % (re.escape(f), port, port2, port2), serv2, "other port")
    full_handshake_with(port, f, r"session file %s was saved for localhost:%d, not 127\.0\.0\.1:%d; use a "
                        r"session file saved for 127\.0\.0\.1:%d; doing a full handshake"
                        % (re.escape(f), port, port, port), serv, "same port, other name",
                        host="127.0.0.1")


@suite.case("resume: ticket unknown to a restarted gnutls-serv (TLS1.3 and TLS1.2) -> 'not resumed', "
            "exit 0", timeout=60)
def _restarted_server():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, keep_output=True)
    files = {}
    for v in ("1.3", "1.2"):
        f = os.path.join(tmpdir("restart"), "s" + v)
        k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "-q", "--tls" + v,
                    "--session-out", f, stdin=b"x\n")
        check_exit(k, 0, 30, "ktlsctl connect --session-out TLS%s" % v)
        session_file_ok(f, "localhost:%d" % port)
        files[v] = f
    serv.kill()
    serv, _ = start_gnutls_serv(cert, key, port=port, keep_output=True)
    for v in ("1.3", "1.2"):
        f = files[v]
        k = full_handshake_with(port, f, r"session in %s not resumed \(the server did not accept it: "
                                r"expired or unknown to it\); did a full handshake" % re.escape(f),
                                serv, "TLS%s, server restarted" % v, extra=["--tls" + v])
        need_regex_line(k, r"connected to 127\.0\.0\.1:%d: TLS%s \S+, %s"
                        % (port, re.escape(v), CHANNEL_NAME))


# ============================================================== commands

@suite.case("commands: /tickets (2, last marked *) and /stats after data -> gnutls-serv; /save FILE "
            "then --session-in FILE resumes", timeout=60)
def _tickets_stats_gnutls():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3", "AES-128-GCM"),
                                   keep_output=True)
    d = tmpdir("save")
    f = os.path.join(d, "saved")
    line = b"0123456789abcdef0123456789abcdef\n"
    t0 = time.time()
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands")
    k.send(line)
    want_out(k, len(line), 15, "ktlsctl stdout", serv)
    k.send(b"/tickets\n/stats\n/save %s\n" % f.encode())
    if not k.wait_until(lambda p: "  tickets held:" in p.stderr and os.path.exists(f), 10):
        raise Fail("no /stats output or no saved file\n%s" % k.describe())
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect --commands")
    t1 = time.time()
    check_data("ktlsctl stdout", k.stdout, line)
    rows = parse_tickets(k.stderr)
    problems = []
    if [r[1] for r in rows] != ["1", "2"]:
        problems.append("ticket rows numbered %r, expected 1, 2" % [r[1] for r in rows])
    if [r[0] for r in rows] != [" ", "*"]:
        problems.append("'*' marks %r, expected only the last ticket" % [r[0] for r in rows])
    for r in rows:
        if r[3] != "21600":
            problems.append("lifetime %ss, gnutls-serv gives 21600s" % r[3])
        arrived = time.strptime(time.strftime("%Y-%m-%d ") + r[2], "%Y-%m-%d %H:%M:%S")
        at = time.mktime(arrived)
        if not t0 - 2 <= at <= t1 + 2:
            problems.append("arrival time %s not within the connection's lifetime" % r[2])
        if not re.fullmatch(r"[0-9a-f]+", r[5]) or int(r[6]) < 16:
            problems.append("nonce %r / length %s implausible" % (r[5], r[6]))
    if len(rows) == 2 and rows[0][7] == rows[1][7]:
        problems.append("both tickets have the same hash %s" % rows[0][7])
    if "* the ticket GnuTLS will offer to resume" not in k.stderr:
        problems.append("no legend for the '*' mark")
    st = need_stats(k)
    want = {"pid": str(k.pid), "role": "client", "version": "TLS1.3",
            "cipher suite": "TLS_AES_128_GCM_SHA256", "record channel": CHANNEL,
            "resumed": "no"}
    got = {key: st["session"].get(key) for key in want}
    if got != want or st["title"] != str(k.pid):
        problems.append("/stats session %s: %r, expected %r" % (st["title"], got, want))
    if st["send"] != (1, "16777216 (0.0000%)", 1, len(line), 0):
        problems.append("/stats send %r, expected (1, '16777216 (0.0000%%)', 1, %d, 0)"
                        % (st["send"], len(line)))
    # receive: 2 NewSessionTicket records + 1 data record, nothing counted as bytes but data
    if st["receive"] != (3, "16777216 (0.0000%)", 3, len(line), 0):
        problems.append("/stats receive %r, expected (3, '16777216 (0.0000%%)', 3, %d, 0)"
                        % (st["receive"], len(line)))
    if st.get("tickets") != 2:
        problems.append("/stats says %r tickets held, expected 2" % st.get("tickets"))
    if problems:
        raise Fail("\n".join(problems) + "\n" + k.describe(4000))
    session_file_ok(f, "localhost:%d" % port)
    k2 = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--session-in", f,
                 stdin=line)
    check_exit(k2, 0, 30, "ktlsctl connect --session-in (saved by /save)")
    check_data("resumed echo", k2.stdout, line)
    need_line(k2, "session resumed from %s" % f)


@suite.case("commands: /tickets fields match s_server's NewSessionTickets (-early_data: "
            "max_early_data); the '*' ticket is the one offered on resumption", timeout=60)
def _tickets_s_server():
    cert, key = certs().srv_ec
    msg = tmpfile("s_server-tickets.msg")
    srv, port = start_s_server(cert, key, ["-tls1_3"],
                               extra=["-naccept", "2", "-early_data", "-msg", "-msgfile", msg])
    d = tmpdir("save")
    f = os.path.join(d, "saved")
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v")
    line = hex_lines(1000)
    k.send(line)
    want_out(srv, len(line), 15, "s_server stdout", k)
    if not wait_line_count(k, "session ticket received (lifetime 7200s)", 2, 10):
        raise Fail("the 2 tickets of s_server did not arrive\n%s" % k.describe())
    k.send(b"/tickets\n/save %s\n" % f.encode())
    if not wait_line_count(k, "session saved to %s" % f, 1, 10):
        raise Fail("/save did not report 'session saved to %s'\n%s" % (f, k.describe()))
    k.close_stdin()
    check_exit(k, 0, 20, "ktlsctl connect --commands")
    rows = parse_tickets(k.stderr)
    k2 = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "-v", "--session-in", f,
                 stdin=line)
    check_exit(k2, 0, 20, "ktlsctl connect --session-in (saved by /save)")
    need_line(k2, "session resumed from %s" % f)
    srv.close_stdin()
    log = require_flushed_log(srv, msg, 15)
    check_data("s_server stdout", srv.stdout, line + line)
    nst = [parse_nst(m) for m in log.handshakes(">>>", "NewSessionTicket")][:2]
    if len(nst) != 2 or len(rows) != 2:
        raise Fail("s_server sent %d tickets in the first connection, /tickets shows %d rows\n%s"
                   % (len(nst), len(rows), k.describe(4000)))
    problems = []
    for i, (r, t) in enumerate(zip(rows, nst)):
        want = (str(t["lifetime"]), "%08x" % t["age_add"], t["nonce"].hex() or "(empty)",
                str(len(t["ticket"])), hashlib.sha256(t["ticket"]).hexdigest()[:16],
                str(t["early"]) if t["early"] is not None else "-")
        got = (r[3], r[4], r[5], r[6], r[7], r[8])
        if got != want:
            problems.append("ticket %d: /tickets shows (lifetime, age_add, nonce, length, sha256, "
                            "max_early_data) %r, s_server sent %r" % (i + 1, got, want))
    hellos = log.handshakes("<<<", "ClientHello")
    ident = clienthello_psk_identity(hellos[-1]) if len(hellos) == 2 else None
    star = [r for r in rows if r[0] == "*"]
    if ident is None:
        problems.append("the second ClientHello (of %d) offers no PSK" % len(hellos))
    elif len(star) != 1 or hashlib.sha256(ident).hexdigest()[:16] != star[0][7]:
        problems.append("the resumption offered the ticket with sha256 %s; /tickets marks %r"
                        % (hashlib.sha256(ident).hexdigest()[:16], [r[7] for r in star]))
    if problems:
        raise Fail("\n".join(problems) + "\n" + k.describe(4000))


def quit_case(after):
    cert, key = certs().srv_ec
    data = hex_lines(200 << 10)     # no line may start with /
    down = random_bytes(50 << 10)
    release = threading.Event()

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, "1.3"), server_side=True)
        t.handshake()
        t.send(down)
        got, how = t.recv_until_close()
        release.wait(scaled(20))        # never answers the close_notify
        t.close()
        return got, how
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", CA(), *SESSION_ARGS, "--commands")
    want_out(k, len(down), 15, "ktlsctl stdout", k)
    k.send(data + b"/quit\n" + after)
    t0 = time.monotonic()
    try:
        check_exit(k, 0, 5, "ktlsctl connect after /quit (stdin open)")
    finally:
        release.set()
    dt = time.monotonic() - t0
    got, how = st.join(10)
    check_data("server received", got, data)
    check_data("ktlsctl stdout", k.stdout, down)
    if how != "close_notify":
        raise Fail("the server saw the connection end with %s, not close_notify" % how)
    if dt > 2:
        raise Fail("ktlsctl took %.1fs to exit after /quit" % dt)
    if kt_lines(k):
        raise Fail("unexpected stderr lines (pipe mode without -v): %r" % kt_lines(k))


suite.add("commands: /quit as the last line, stdin open -> close_notify and exit 0 at once "
          "(the peer never answers)", lambda: quit_case(b""), timeout=40)
suite.add("commands: a line after /quit (same read) is not sent; exit 0 at once",
          lambda: quit_case(b"not to be sent\n"), timeout=40)


@suite.case("commands: /close -> peer gets close_notify, keeps sending (TLS1.3 half-close), closes; "
            "exit 0 with stdin still open; later lines not sent", timeout=40)
def _close():
    cert, key = certs().srv_rsa
    up = hex_lines(100 << 10)       # no line may start with /
    after = random_bytes(300 << 10)

    def serve(sock):
        t = PyTls(sock, py_server_ctx(cert, key, "1.3"), server_side=True)
        t.handshake()
        got, how = t.recv_until_close()
        if how == "close_notify":
            t.send(after)
            t.send_close_notify()
        t.close()
        return got, how
    st = ServerThread(serve)
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", CA(), *SESSION_ARGS, "--commands", "-v")
    k.send(up + b"/close\nnot to be sent\n")
    check_exit(k, 0, 20, "ktlsctl connect after /close (stdin open)")
    got, how = st.join(10)
    if how != "close_notify":
        raise Fail("the server saw %s, not close_notify" % how)
    check_data("server received (up to /close)", got, up)
    check_data("ktlsctl stdout (peer data after our close_notify)", k.stdout, after)
    need_line(k, "end of input: close_notify sent; reading until the peer closes")
    need_line(k, "peer sent close_notify")


@suite.case("commands: unknown or malformed commands -> one error line each, session continues; "
            "// sends /; no other stderr without -v", timeout=40)
def _bad_commands():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    stream = (b"first\n/bogus\nsecond\n/keyupdate foo\n/stats extra\n/save\n/quit now\n/\n"
              b"third /not a command\n//slash\n/keyupdate\r\n/keyupdate request \t\nlast\n")
    expected = b"first\nsecond\nthird /not a command\n/slash\nlast\n"
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--commands", stdin=stream)
    check_exit(k, 0, 30, "ktlsctl connect --commands")
    check_data("ktlsctl stdout (echo)", k.stdout, expected)
    want = ["unknown command (try /help; // sends a line starting with /)",
            "usage: /keyupdate [request]",
            "this command takes no argument",
            "usage: /save FILE",
            "this command takes no argument",
            "unknown command (try /help; // sends a line starting with /)"]
    if not can_rekey():     # the two valid /keyupdate lines are refused, with the reason
        want += [OWN_KEYUPDATE_REFUSED] * 2
    if kt_lines(k) != want:
        raise Fail("stderr lines %r\nexpected %r" % (kt_lines(k), want))
    other = [l for l in k.stderr.splitlines() if not l.startswith("ktlsctl: ")]
    if other:
        raise Fail("unexpected stderr output %r" % other)


@suite.case("commands: /help lists every command; /save before any ticket (Python server, no tickets) "
            "-> error, no file", timeout=40)
def _help_nosave():
    cert, key = certs().srv_ec
    up = b"hello\n"

    def serve(sock):
        ctx = py_server_ctx(cert, key, "1.3")
        ctx.num_tickets = 0
        t = PyTls(sock, ctx, server_side=True)
        t.handshake()
        got, how = t.recv_until_close()
        if how == "close_notify":
            t.send_close_notify()
        t.close()
        return got, how
    st = ServerThread(serve)
    f = os.path.join(tmpdir("nosave"), "s")
    k = ktlsctl("connect", "localhost:%d" % st.port, "--cafile", CA(), *SESSION_ARGS, "--commands",
                stdin=up + b"/help\n/tickets\n/save " + f.encode() + b"\n")
    check_exit(k, 0, 20, "ktlsctl connect --commands")
    got, how = st.join(10)
    check_data("server received", got, up)
    for c in ("/keyupdate [request]", "/stats", "/tickets", "/save FILE", "/close", "/quit", "/help"):
        if not re.search(r"^  %s " % re.escape(c), k.stderr, re.M):
            raise Fail("/help does not list %s\n%s" % (c, k.describe()))
    if "no session tickets received\n" not in k.stderr:
        raise Fail("/tickets without tickets does not say 'no session tickets received'\n%s" % k.describe())
    need_line(k, "no session ticket received yet: nothing to save")
    if os.path.exists(f):
        raise Fail("/save created %s without a ticket" % f)


# ======================================================= interactive terminal

_terms = []


def _kill_terms():
    for t in list(_terms):
        t.close()


atexit.register(_kill_terms)

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Term:
    """The real binary in a tmux pane (a real terminal): keys in, the screen
    (capture-pane) out.  Every wait is bounded; close() kills the tmux
    server (our own socket, in the suite's temporary directory)."""

    def __init__(self, argv, env, cols=200, rows=60):
        if not have("tmux"):
            raise Skip("tmux is not installed")
        self.sock = tmpfile("tmux.sock")   # in the suite's temporary directory
        self.conf = tmpfile("tmux.conf")
        with open(self.conf, "w") as f:
            f.write("set -g remain-on-exit on\nset -g history-limit 50000\nset -g status off\n")
        self.status = tmpfile("term.status")
        keep = {k: v for k, v in os.environ.items()
                if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LANG", "LC_ALL",
                         "KTLSCTL_TEST_SOFT_NOREKEY")}
        keep["TERM"] = "screen"
        keep.update(env)
        envs = " ".join(shlex.quote("%s=%s" % kv) for kv in sorted(keep.items()))
        inner = "%s; echo $? > %s" % (" ".join(shlex.quote(str(a)) for a in argv), shlex.quote(self.status))
        self.cmd = "exec env -i %s sh -c %s" % (envs, shlex.quote(inner))
        self.argv = argv
        _terms.append(self)
        self.tmux("new-session", "-d", "-s", "t", "-x", str(cols), "-y", str(rows), self.cmd)
        # Everything the pane writes is also appended to a file: its growth
        # is what tells wait() to look at the screen again.
        self.pane_out = tmpfile("pane.out")
        self.tmux("pipe-pane", "-t", "t", "-o", "cat >> %s" % shlex.quote(self.pane_out))

    def tmux(self, *args, check=True):
        try:
            r = subprocess.run(["tmux", "-S", self.sock, "-f", self.conf] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(10))
        except subprocess.TimeoutExpired:
            raise Fail("tmux %s timed out" % " ".join(args))
        if check and r.returncode != 0:
            raise Fail("tmux %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        return r.stdout.decode("utf-8", "replace")

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def line(self, text):
        self.type(text)
        self.keys("Enter")

    def screen(self, escapes=False):
        a = ["capture-pane", "-p", "-J", "-S", "-", "-t", "t"]
        if escapes:
            a.insert(2, "-e")
        return self.tmux(*a, check=False)

    def lines(self):
        return [l.rstrip() for l in self.screen().splitlines()]

    def _pane_written(self):
        try:
            return os.path.getsize(self.pane_out)
        except OSError:
            return -1

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + scaled(timeout)
        while True:
            written = self._pane_written()
            s = self.screen()
            if pred(s):
                return s
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("terminal: %s did not appear within %.0fs; the screen:\n%s"
                           % (what, scaled(timeout), self.dump(s)))
            # Capture again once the pane has written more, or after a
            # second at the latest.  Each capture is a tmux process: polled
            # every 50 ms they took most of an emulated one-CPU guest from
            # ktlsctl and its peer, whose answers the case waits for.
            until = time.monotonic() + min(1.0, left)
            while self._pane_written() == written and time.monotonic() < until:
                time.sleep(0.02)

    def wait_line(self, text, timeout=10, count=1):
        """Wait until a screen line is exactly text (count times)."""
        return self.wait(lambda s: [l.rstrip() for l in s.splitlines()].count(text) >= count,
                         timeout, repr(text) + ("" if count == 1 else " x%d" % count))

    def wait_regex(self, pattern, timeout=10):
        rx = re.compile(pattern, re.M)
        s = self.wait(lambda s: rx.search(s) is not None, timeout, "/%s/" % pattern)
        return rx.search(s)

    def last_line(self):
        ls = [l.rstrip() for l in self.screen().splitlines() if l.strip()]
        return ls[-1] if ls else ""

    def wait_last_line(self, text, timeout=10):
        self.wait(lambda s: ([l.rstrip() for l in s.splitlines() if l.strip()] or [""])[-1] == text,
                  timeout, "last line %r" % text)

    def exit_status(self, timeout):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            try:
                with open(self.status) as f:
                    s = f.read().strip()
                if s:
                    return int(s)
            except OSError:
                pass
            time.sleep(0.05)
        raise Fail("terminal: ktlsctl did not exit within %.0fs; the screen:\n%s"
                   % (scaled(timeout), self.dump()))

    def check_exit(self, expected, timeout):
        rc = self.exit_status(timeout)
        s = self.screen()
        for m in SANITIZER_MARKERS:
            if m in s:
                raise Fail("sanitizer report on the terminal (%r):\n%s" % (m, self.dump(s, 200)))
        if rc != expected:
            raise Fail("terminal: ktlsctl exit status %d, expected %d; the screen:\n%s"
                       % (rc, expected, self.dump(s)))

    def dump(self, s=None, n=60):
        s = self.screen() if s is None else s
        ls = [l.rstrip() for l in s.splitlines()]
        while ls and not ls[-1]:
            ls.pop()
        return "    command: %s\n" % " ".join(shlex.quote(str(a)) for a in self.argv) + \
            "".join("      | %s\n" % l for l in ls[-n:])

    def close(self):
        if self in _terms:
            _terms.remove(self)
            try:
                subprocess.run(["tmux", "-S", self.sock, "-f", self.conf, "kill-server"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass


def bold_line(term, text):
    """Whether the screen line with text starts bold.  tmux's capture
    writes an SGR only where the attributes change, so a bold line that
    follows another bold line carries no escape of its own: follow the
    state through the whole capture."""
    bold = False
    for l in term.screen(escapes=True).splitlines():
        m = re.match(r"^((?:\x1b\[[0-9;]*m)*)", l)
        for sgr in re.findall(r"\x1b\[([0-9;]*)m", m.group(1)):
            for p in (sgr or "0").split(";"):
                if p in ("", "0", "22"):
                    bold = False
                elif p == "1":
                    bold = True
        if ANSI.sub("", l).rstrip() == text:
            return bold
        # escapes later in the line change the state for the next one
        for sgr in re.findall(r"\x1b\[([0-9;]*)m", l[len(m.group(1)):]):
            for p in (sgr or "0").split(";"):
                if p in ("", "0", "22"):
                    bold = False
                elif p == "1":
                    bold = True
    return None


@suite.case("terminal: connect to gnutls-serv --echo: line echoed, /keyupdate request, /st<TAB>, "
            "/tickets, //, unknown, bold events, Ctrl-D; history saved and recalled", timeout=60, when=REKEY)
def _term_connect():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3"))
    home = tmpdir("home")
    xdg = tmpdir("xdg")
    env = {"HOME": home, "XDG_DATA_HOME": xdg}
    argv = [KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS]
    t = Term(argv, env)
    try:
        t.wait_regex(r"^ktlsctl: connected to 127\.0\.0\.1:%d: TLS1\.3 \S+, %s$" % (port, CHANNEL_NAME))
        t.wait_line("ktlsctl: session ticket received (lifetime 21600s)", count=2)
        t.wait_last_line(">")
        t.line("hello interactive 1")
        t.wait_line("> hello interactive 1")
        t.wait_line("hello interactive 1")               # the echo, shown as peer data
        t.line("/keyupdate request")
        t.wait_line("ktlsctl: updated our send keys and asked the peer to update")
        t.line("after the update")
        t.wait_line("after the update")
        t.wait_line("ktlsctl: peer updated its keys")    # gnutls-serv answers with its write
        if bold_line(t, "ktlsctl: updated our send keys and asked the peer to update") is not True:
            raise Fail("the event line is not bold on the terminal:\n%r"
                       % [l for l in t.screen(escapes=True).splitlines() if "updated our" in l])
        t.type("/st")
        t.keys("Tab")
        t.wait_last_line("> /stats")
        t.keys("Enter")
        t.wait_regex(r"^  tickets held: 2$")
        st = need_stats(None, t.screen())
        if st["send"][4] != 1 or st["receive"][4] != 1:
            raise Fail("/stats key updates send %d, receive %d, expected 1 and 1\n%s"
                       % (st["send"][4], st["receive"][4], t.dump()))
        t.line("/tickets")
        t.wait_regex(r"^  \* the ticket GnuTLS will offer to resume")
        rows = parse_tickets(t.screen())
        if [r[0] for r in rows] != [" ", "*"]:
            raise Fail("/tickets rows %r: expected 2, the last marked *\n%s" % (rows, t.dump()))
        t.line("/nonsense")
        t.wait_line("ktlsctl: unknown command (try /help; // sends a line starting with /)")
        t.line("//slashed")
        t.wait_line("/slashed")
        t.line("last line 42")
        t.wait_line("last line 42")
        t.keys("C-d")
        t.wait_line("ktlsctl: end of input: close_notify sent; reading until the peer closes")
        t.check_exit(0, 15)
    finally:
        t.close()
    hist = os.path.join(xdg, "ktlsctl", "history")
    if not os.path.exists(hist):
        raise Fail("no history file %s (XDG_DATA_HOME=%s)" % (hist, xdg))
    h = [l.rstrip() for l in open(hist, errors="replace").read().splitlines()]
    for want in ("hello interactive 1", "/keyupdate request", "/tickets", "//slashed", "last line 42"):
        if want not in h:
            raise Fail("history %s lacks %r: %r" % (hist, want, h))
    if not any(l.startswith("/stats") for l in h):
        raise Fail("history lacks the completed /stats: %r" % h)
    # A second session recalls the history: Up, Enter sends the last line.
    t = Term(argv, env)
    try:
        t.wait_regex(r"^ktlsctl: connected to ")
        t.wait_last_line(">")
        t.keys("Up")
        t.wait_last_line("> last line 42")
        t.keys("Enter")
        t.wait_line("last line 42")
        t.keys("C-d")
        t.check_exit(0, 15)
    finally:
        t.close()


@suite.case("terminal: the session starts with the hint 'type /help for commands, Ctrl-D to close' "
            "(bold, like every event)", timeout=30)
def _term_greeting():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    t = Term([KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS], {"HOME": tmpdir("home")})
    try:
        t.wait_regex(r"^ktlsctl: connected to ")
        t.wait_last_line(">")
        t.line("/help")
        t.wait_regex(r"^  /help +this list$")
        hint = "ktlsctl: interactive session: type /help for commands, Ctrl-D to close"
        try:
            t.wait_line(hint, timeout=1)
        except Fail:
            raise Fail("the line %r (cli/console.c start_readline) is never shown; the screen:\n%s"
                       % (hint, t.dump()))
        if bold_line(t, hint) is not True:
            raise Fail("the hint is not bold")
        t.keys("C-d")
        t.check_exit(0, 15)
    finally:
        t.close()


@suite.case("terminal: /quit exits 0 at once (gnutls-serv --echo)", timeout=30)
def _term_quit():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    t = Term([KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS], {"HOME": tmpdir("home")})
    try:
        t.wait_regex(r"^ktlsctl: connected to ")
        t.wait_last_line(">")
        t.line("before quit")
        t.wait_line("before quit")
        t.line("/quit")
        t.check_exit(0, 3)
    finally:
        t.close()


@suite.case("terminal: history in ~/.local/share/ktlsctl/history without XDG_DATA_HOME (fresh HOME)",
            timeout=40)
def _term_history_home():
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key)
    home = tmpdir("freshhome")
    t = Term([KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS], {"HOME": home})
    try:
        t.wait_regex(r"^ktlsctl: connected to ")
        t.wait_last_line(">")
        t.line("typed in a fresh home")
        t.wait_line("typed in a fresh home")
        t.keys("C-d")
        t.check_exit(0, 15)
    finally:
        t.close()
    hist = os.path.join(home, ".local", "share", "ktlsctl", "history")
    if not os.path.exists(hist) or "typed in a fresh home" not in open(hist, errors="replace").read():
        found = [os.path.join(dp, f) for dp, dn, fn in os.walk(home) for f in fn]
        raise Fail("no history in %s with HOME=%s (a HOME without .local) and XDG_DATA_HOME "
                   "unset; files under HOME: %r" % (hist, home, found))


@suite.case("terminal: listen; peer data arriving while a line is half typed keeps the typed text "
            "and the cursor; the line sent is whole", timeout=40)
def _term_half_typed():
    cert, key = certs().srv_rsa
    port = free_port()
    go = threading.Event()
    t = Term([KTLSCTL, "listen", "127.0.0.1:%d" % port, "--cert", cert, "--key", key, *SESSION_ARGS],
             {"HOME": tmpdir("home")})
    result = {}

    def client():
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
        c = PyTls(s, py_client_ctx(CA(), "1.3"), server_side=False, server_hostname="localhost")
        c.handshake()
        go.wait(scaled(15))
        c.send(b"peer line 1\npeer line 2\nno newline at the end")
        buf = b""
        while buf.count(b"\n") < 2:
            d = c.recv_some()
            if not d:
                break
            buf += d
        result["got"] = buf
        rest, how = c.recv_until_close()
        result["rest"], result["how"] = rest, how
        if how == "close_notify":
            c.send_close_notify()
        c.close()
    try:
        t.wait_line("ktlsctl: listening on 127.0.0.1:%d" % port)
        th = threading.Thread(target=client, daemon=True)
        th.start()
        t.wait_regex(r"^ktlsctl: accepted 127\.0\.0\.1:\d+: TLS1\.3 \S+, SNI localhost, %s$"
                     % CHANNEL_NAME)
        t.wait_last_line(">")
        t.type("half")
        t.keys("Left", "Left")              # cursor between "ha" and "lf"
        t.wait_last_line("> half")
        go.set()
        t.wait_line("no newline at the end")
        t.wait_line("peer line 2")
        t.wait_last_line("> half")          # the typed text is back, after the peer data
        lines = t.lines()
        i = lines.index("peer line 1")
        if lines[i + 1:i + 3] != ["peer line 2", "no newline at the end"]:
            raise Fail("peer data broken up on the screen:\n%s" % t.dump())
        t.type("[X]")                       # lands at the cursor kept across the redraw
        t.keys("End")
        t.type(" done")
        t.wait_last_line("> ha[X]lf done")
        t.keys("Enter")
        t.line("second")
        deadline = time.monotonic() + scaled(10)
        while "got" not in result and time.monotonic() < deadline:
            time.sleep(0.05)
        if result.get("got") != b"ha[X]lf done\nsecond\n":
            raise Fail("the client received %r, expected b'ha[X]lf done\\nsecond\\n'\n%s"
                       % (result.get("got"), t.dump()))
        t.keys("C-d")
        t.wait_line("ktlsctl: end of input: close_notify sent; reading until the peer closes")
        t.check_exit(0, 15)
        th.join(scaled(10))
        if result.get("how") != "close_notify" or result.get("rest"):
            raise Fail("after Ctrl-D the client saw %r (+%d bytes), expected close_notify"
                       % (result.get("how"), len(result.get("rest") or b"")))
    finally:
        t.close()


@suite.case("terminal: --crlf; s_server's KeyUpdate (K) while a line is half typed: bold event, "
            "typed text kept, CR LF sent", timeout=40, when=REKEY)
def _term_event_while_typing():
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, ["-tls1_3"], quiet=False)
    t = Term([KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS, "--crlf"],
             {"HOME": tmpdir("home")})
    try:
        t.wait_regex(r"^ktlsctl: connected to 127\.0\.0\.1:%d: TLS1\.3 " % port)
        t.wait_last_line(">")
        t.line("primer")
        if not srv.wait_until(lambda p: b"primer\r\n" in p.stdout, 10):
            raise Fail("s_server did not get 'primer\\r\\n'\n%s\n%s" % (srv.describe(), t.dump()))
        t.type("typed before")
        t.wait_last_line("> typed before")
        srv.send(b"K\n")
        t.wait_line("ktlsctl: peer updated its keys and asked us to update ours")
        t.wait_line("ktlsctl: updated our send keys")
        t.wait_last_line("> typed before")
        if bold_line(t, "ktlsctl: peer updated its keys and asked us to update ours") is not True:
            raise Fail("the peer key-update event is not bold")
        t.type(" and after")
        t.keys("Enter")
        if not srv.wait_until(lambda p: b"typed before and after\r\n" in p.stdout, 10):
            raise Fail("s_server did not receive 'typed before and after\\r\\n' under the new key\n%s\n%s"
                       % (srv.describe(), t.dump()))
        t.keys("C-d")
        t.wait_line("ktlsctl: end of input: close_notify sent; reading until the peer closes")
        t.check_exit(0, 10)
    finally:
        t.close()


@suite.case("terminal without rekey: /keyupdate request shows the reason and the session goes on; "
            "then s_server's KeyUpdate (K) ends it: the reason, exit 10", timeout=40, when=NO_REKEY)
def _term_norekey():
    cert, key = certs().srv_ec
    srv, port = start_s_server(cert, key, ["-tls1_3"], quiet=False)
    t = Term([KTLSCTL, "connect", "localhost:%d" % port, "--cafile", CA(), *SESSION_ARGS],
             {"HOME": tmpdir("home")})
    try:
        t.wait_regex(r"^ktlsctl: connected to 127\.0\.0\.1:%d: TLS1\.3 " % port)
        t.wait_last_line(">")
        t.line("primer")
        if not srv.wait_until(lambda p: b"primer\n" in p.stdout, 10):
            raise Fail("s_server did not get 'primer'\n%s\n%s" % (srv.describe(), t.dump()))
        t.line("/keyupdate request")
        t.wait_line("ktlsctl: " + OWN_KEYUPDATE_REFUSED)
        t.line("after the refusal")
        if not srv.wait_until(lambda p: b"after the refusal\n" in p.stdout, 10):
            raise Fail("s_server did not get the line sent after the refused key update\n%s\n%s"
                       % (srv.describe(), t.dump()))
        srv.send(b"K\n")
        t.wait_line("ktlsctl: " + PEER_KEYUPDATE_FATAL)
        t.check_exit(10, 10)
    finally:
        t.close()


if __name__ == "__main__":
    sys.exit(suite.main())
