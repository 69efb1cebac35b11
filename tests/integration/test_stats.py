#!/usr/bin/env python3
"""`ktlsctl stats`, `keyupdate` and `tickets` against live sessions started by
the test, and the per-session control socket behind them (core/ctl.h,
protocol KTLSCTL/2):
  * the short summary of `stats`, the whole report of `stats -v`, and text
    that shows exactly the JSON's values;
  * the JSON document (format 1) parsed with json.loads, its counters
    cross-checked with what the peers saw (gnutls-serv --echo for a client
    session, a Python TLS client for a `listen --echo` server session);
  * key updates and tickets driven through the control socket;
  * the socket's privacy: modes 0700/0600, another user (nobody) refused by
    the client-side directory check and, with the modes opened up, by the
    session's SO_PEERCRED check;
  * garbage requests, idle and concurrent clients over raw Unix sockets, while
    data keeps flowing through the session;
  * sessions that end (or are SIGKILLed) while they are being queried;
  * KTLSCTL/1 (an older ktlsctl) refused both ways, with one clear line.

Every ktlsctl invocation gets XDG_RUNTIME_DIR set to a private directory of
the case (under one /tmp/ktlsctl-st-* directory removed at exit, traversable
by nobody so that the other-user checks reach the socket), so cases never see
each other's sessions nor the machine's.  ktlsctl runs on the channel under test
(KTLSCTL_TEST_CHANNEL, ktlsctl_test.channel).
Peer quirks: see the docstring of test_peers.py (gnutls-serv --echo echoes
NUL-free lines, sends two TLS 1.3 tickets, answers a KeyUpdate with
update_requested when it next sends).
The other-user checks need root (setpriv to nobody); they SKIP otherwise."""

import ast
import atexit
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL, CHANNEL_ARGS, NO_REKEY, OWN_KEYUPDATE_REFUSED, REKEY)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, check_no_sanitizer, ktlsctl, ktlsctl_listen, Proc)
from ktlsctl_test.data import check_data, hex_lines  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, gnutls_priority, require_programs, start_gnutls_serv)
from ktlsctl_test.pytls import py_client_ctx, PyTls  # noqa: E402

require_programs("gnutls-serv", "certtool")

suite = Suite("test_stats", case_timeout=45)
# The channel under test; --eof close: these peers wait for our close_notify
# (ktlsctl_test.peers.EOF_CLOSE).
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE
PROTO = b"KTLSCTL/2"
# The documented exit statuses (core/err.h, man/ktlsctl.1 EXIT STATUS).
DOCUMENTED = set(range(1, 14))

SESSION_KEYS = ("pid", "role", "peer", "channel", "version", "cipher", "suite", "resumed",
                "tx", "rx", "rekey_point", "at_rekey_point", "tickets", "uptime")
DIR_KEYS = ("records_key", "records", "bytes", "key_updates", "limit", "limit_used")
SUITES = {"AES-128-GCM": "TLS_AES_128_GCM_SHA256", "AES-256-GCM": "TLS_AES_256_GCM_SHA384"}


def certs():
    return suite.certs


# ------------------------------------------------------- private runtime dirs

_xdg = {"base": None, "n": 0}


def new_xdg(tag):
    """A fresh XDG_RUNTIME_DIR for one case (mode 0755: only the ktlsctl
    directory that the sessions create in it is private)."""
    if _xdg["base"] is None:
        # Directly under /tmp ($TMPDIR in the VM tier, whose /tmp is read
        # only): short enough for sun_path, and reachable by nobody
        # (suite.tmpdir() is 0700 and holds private keys).
        base = tempfile.mkdtemp(prefix="ktlsctl-st-", dir=os.environ.get("TMPDIR") or "/tmp")
        os.chmod(base, 0o755)
        if suite.keep_tmp:
            print("   runtime directories: %s" % base)
        else:
            atexit.register(shutil.rmtree, base, True)
        _xdg["base"] = base
    _xdg["n"] += 1
    d = os.path.join(_xdg["base"], "%02d-%s" % (_xdg["n"], tag))
    os.mkdir(d)
    os.chmod(d, 0o755)
    return d


def kenv(xdg):
    return {"XDG_RUNTIME_DIR": xdg}


def ctl_dir(xdg):
    return os.path.join(xdg, "ktlsctl")


def sock_path(xdg, pid):
    return os.path.join(ctl_dir(xdg), "%d.sock" % pid)


def wait_socket(xdg, proc, timeout=15):
    """Wait for the session's control socket (served once the handshake is
    done)."""
    path = sock_path(xdg, proc.pid)
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return path
        if not proc.alive():
            break
        time.sleep(0.02)
    raise Fail("the session's control socket %s did not appear within %ss%s\n%s"
               % (path, timeout, "" if proc.alive() else " (the session exited)", proc.describe()))


# ------------------------------------------------------------- ktlsctl runs

_nobody = {}


def nobody_prefix():
    """setpriv argv that runs a command as nobody; Skip when we cannot."""
    if os.geteuid() != 0:
        raise Skip("running a command as another user (nobody) needs root")
    if not shutil.which("setpriv"):
        raise Skip("setpriv (util-linux) not found: cannot run a command as nobody")
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        raise Skip("no user 'nobody' on this machine")
    _nobody["uid"] = pw.pw_uid
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups"]


def run(xdg, *args, timeout=10, as_nobody=False):
    """Run `ktlsctl ARGS` to completion (bounded); returns (proc, rc)."""
    argv = [KTLSCTL] + [str(a) for a in args]
    if as_nobody:
        argv = nobody_prefix() + argv
    p = Proc(argv, name="ktlsctl " + " ".join(str(a) for a in args)
             + (" (as nobody)" if as_nobody else ""), stdin=None, extra_env=kenv(xdg))
    rc = p.wait(timeout)
    check_no_sanitizer(p)
    return p, rc


def out_text(p):
    return p.stdout.decode("utf-8", "replace")


def parse_json(p):
    try:
        return json.loads(out_text(p))
    except ValueError as e:
        raise Fail("stdout of `%s` is not one JSON document (%s):\n    stdout: %r\n%s"
                   % (p.name, e, out_text(p)[:2000], p.describe()))


def stats_json(xdg, *args):
    p, rc = run(xdg, "stats", "--json", *args)
    if rc != 0:
        raise Fail("`%s`: exit status %s, expected 0\n%s" % (p.name, rc, p.describe()))
    doc = parse_json(p)
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("sessions"), list):
        raise Fail("`%s`: expected {\"format\": 1, \"sessions\": [...]}, got %r" % (p.name, doc))
    return doc


def session_of(doc, pid, what=""):
    found = [s for s in doc["sessions"] if isinstance(s, dict) and s.get("pid") == pid]
    if len(found) != 1:
        raise Fail("%s: pid %d appears %d times in the sessions of %s"
                   % (what or "stats --json", pid, len(found), json.dumps(doc)))
    return found[0]


def one(xdg, pid):
    """The stats of one session, through `ktlsctl stats PID --json`."""
    doc = stats_json(xdg, pid)
    if len(doc["sessions"]) != 1:
        raise Fail("`stats %d --json` lists %d sessions, expected only that one: %s"
                   % (pid, len(doc["sessions"]), json.dumps(doc)))
    return session_of(doc, pid, "stats %d --json" % pid)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_shape(s, problems):
    """Keys and types of one session of `stats --json`."""
    for k in SESSION_KEYS:
        if k not in s:
            problems.append("key %r missing" % k)
    for k in ("pid", "rekey_point", "tickets", "uptime"):
        if k in s and not is_int(s[k]):
            problems.append("%s is %r, not an integer" % (k, s[k]))
    for k in ("role", "peer", "channel", "version", "cipher", "suite"):
        if k in s and not isinstance(s[k], str):
            problems.append("%s is %r, not a string" % (k, s[k]))
    if "resumed" in s and not isinstance(s["resumed"], bool):
        problems.append("resumed is %r, not a boolean" % (s["resumed"],))
    # TLS 1.2 cannot update keys: the session closes at the rekey point.
    want_at = {"TLS1.3": "update", "TLS1.2": "close"}.get(s.get("version"))
    if s.get("at_rekey_point") != want_at:
        problems.append("at_rekey_point is %r in %s, expected %r"
                        % (s.get("at_rekey_point"), s.get("version"), want_at))
    for d in ("tx", "rx"):
        o = s.get(d)
        if not isinstance(o, dict):
            problems.append("%s is %r, not an object" % (d, o))
            continue
        for k in DIR_KEYS:
            if k not in o:
                problems.append("%s.%s missing" % (d, k))
            elif k == "limit_used":
                if not isinstance(o[k], (int, float)) or isinstance(o[k], bool):
                    problems.append("%s.limit_used is %r, not a number" % (d, o[k]))
            elif not is_int(o[k]) or o[k] < 0:
                problems.append("%s.%s is %r, not a count" % (d, k, o[k]))
        if not is_int(o.get("record_size")) or not 63 <= o["record_size"] <= 16384:
            problems.append("%s.record_size is %r, not a record size" % (d, o.get("record_size")))
        extra = ({"record_size_by": ("records", "kernel-option", "writes")} if d == "tx" else
                 {"record_size_exact": (True, False), "no_pad": (True, False)})
        for k, allowed in extra.items():
            if o.get(k) not in allowed or type(o.get(k)) is not type(allowed[0]):
                problems.append("%s.%s is %r, not one of %r" % (d, k, o.get(k), allowed))
        if all(is_int(o.get(k)) for k in ("records_key", "records", "limit")) \
                and isinstance(o.get("limit_used"), (int, float)):
            if o["records_key"] > o["records"]:
                problems.append("%s.records_key %d > %s.records %d"
                                % (d, o["records_key"], d, o["records"]))
            if o["limit"] > 0:
                want = 100.0 * o["records_key"] / o["limit"]
                if abs(o["limit_used"] - want) > 0.0002:
                    problems.append("%s.limit_used %r, but records_key/limit is %.4f%%"
                                    % (d, o["limit_used"], want))


def expect_fields(s, want, problems, prefix=""):
    for k, v in want.items():
        if isinstance(v, dict):
            expect_fields(s.get(k, {}) if isinstance(s.get(k), dict) else {}, v, problems,
                          prefix + k + ".")
        elif s.get(k, "<missing>") != v:
            problems.append("%s%s is %r, expected %r" % (prefix, k, s.get(k, "<missing>"), v))


def raise_problems(what, problems, s=None, *procs):
    if problems:
        raise Fail("%s:\n%s%s%s" % (what, "".join("    - %s\n" % p for p in problems),
                                    "    session: %s\n" % json.dumps(s) if s is not None else "",
                                    "".join(p.describe() for p in procs)))


# ------------------------------------------------------------ live sessions

class Client:
    """`ktlsctl connect` to gnutls-serv --echo with its stdin held open by
    the test; .sent is everything written, and the echo must equal it.
    A case that may run for longer than 30 s (one that starts many
    processes, in the VM tier) takes peer="listen", `ktlsctl listen --echo`
    on the channel under test: gnutls-serv ends every connection 30 s after
    accepting it (serv.c, "Scheduling inactive connection for close")."""

    def __init__(self, xdg, version="1.3", cipher="AES-128-GCM", verbose=False,
                 peer="gnutls-serv"):
        cert, key = certs().srv_ec
        if peer == "listen":
            # Its own runtime directory: the case's holds only the client.
            self.serv, self.port = ktlsctl_listen(
                "--cert", cert, "--key", key, "--echo", "--tls" + version, *CHANNEL_ARGS,
                name="ktlsctl listen --echo", extra_env=kenv(new_xdg("peer")))
        else:
            self.serv, self.port = start_gnutls_serv(cert, key, gnutls_priority(version))
        args = ["connect", "localhost:%d" % self.port, "--cafile", certs().ca, *SESSION_ARGS,
                "--tls" + version]
        if cipher:
            args += ["--cipher", cipher]
        if verbose:
            args.append("-v")
        self.k = ktlsctl(*args, name="ktlsctl connect", extra_env=kenv(xdg))
        self.t0 = time.monotonic()
        self.pid = self.k.pid
        self.xdg = xdg
        self.sent = bytearray()
        self.sock = wait_socket(xdg, self.k)

    def roundtrip(self, data, timeout=10):
        """Send data and wait for its echo; returns the seconds it took."""
        t0 = time.monotonic()
        self.sent += data
        self.k.send(data)
        if not self.k.wait_out(len(self.sent), timeout):
            raise Fail("the echo did not come back within %ss: %d of %d bytes arrived\n%s\n%s"
                       % (timeout, self.k.out_total, len(self.sent), self.k.describe(),
                          self.serv.describe()))
        check_data("ktlsctl stdout (echoed by gnutls-serv)", self.k.stdout, bytes(self.sent))
        return time.monotonic() - t0

    def close(self, timeout=15):
        self.k.close_stdin()
        check_exit(self.k, 0, timeout, "ktlsctl connect (stdin closed)")
        check_data("ktlsctl stdout (echoed by gnutls-serv)", self.k.stdout, bytes(self.sent))
        if os.path.exists(self.sock):
            raise Fail("the control socket %s is still there after the session exited" % self.sock)


def line(n=64):
    return hex_lines(n)


def raw(path, data, timeout=3, shut=False):
    """One request over a raw Unix socket: returns (reply bytes, how it
    ended: 'eof', 'reset', 'timeout' or 'connect timeout').  The socket is
    blocking with SO_SNDTIMEO/SO_RCVTIMEO, so that connect waits (bounded)
    while the listen backlog is full instead of failing with EAGAIN."""
    tv = struct.pack("ll", int(scaled(timeout)), int(scaled(timeout) % 1 * 1e6))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    try:
        try:
            s.connect(path)
        except BlockingIOError:
            return b"", "connect timeout"
        try:
            if data:
                s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass                            # it may answer and close before we are done
        buf = bytearray()
        while True:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                return bytes(buf), "timeout"
            except ConnectionResetError:
                return bytes(buf), "reset"
            if not d:
                return bytes(buf), "eof"
            buf += d
    finally:
        s.close()


V1_REFUSAL = b"KTLSCTL/1 ERR this session speaks KTLSCTL/2: ask it with the ktlsctl that started it\n"


def ok_reply(b):
    """A whole OK answer: the OK line, then one JSON object on one line."""
    head = PROTO + b" OK\n"
    if not b.startswith(head) or not b.endswith(b"\n") or b.count(b"\n") != 2:
        return False
    try:
        return isinstance(json.loads(b[len(head):]), dict)
    except ValueError:
        return False


# ================================================================= case 1

@suite.case("stats --json: live client and server sessions, counters as the peers saw them",
            timeout=45)
def _live():
    xdg = new_xdg("live")
    c = Client(xdg, "1.3", "AES-128-GCM")
    cert, key = certs().srv_ec
    srv, lport = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *SESSION_ARGS, "--tls1.3",
                                "--cipher", "AES-256-GCM", extra_env=kenv(xdg),
                                name="ktlsctl listen --echo")
    t_srv = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", lport), timeout=scaled(10))
    py_port = sock.getsockname()[1]
    t = PyTls(sock, py_client_ctx(certs().ca, "1.3"), server_side=False,
              server_hostname="localhost")
    t.handshake()
    wait_socket(xdg, srv)

    # Data through both sessions, checked at the peers.
    up = os.urandom(50000)                  # Python client -> ktlsctl listen --echo
    t.send(up)
    check_data("echo of ktlsctl listen --echo (at the Python client)", t.recv_exact(len(up)), up)
    data = hex_lines(30000)                 # ktlsctl connect -> gnutls-serv --echo
    c.roundtrip(data)

    doc = stats_json(xdg)
    pids = sorted(s.get("pid") for s in doc["sessions"] if isinstance(s, dict))
    if pids != sorted([c.pid, srv.pid]):
        raise Fail("stats --json lists pids %s, expected exactly %s (client) and %s (server): %s"
                   % (pids, c.pid, srv.pid, json.dumps(doc)))

    # --- the client session: what gnutls-serv received is what it echoed.
    s = session_of(doc, c.pid)
    problems = []
    check_shape(s, problems)
    expect_fields(s, {"role": "client", "channel": CHANNEL, "version": "TLS1.3",
                      "cipher": "AES-128-GCM", "suite": SUITES["AES-128-GCM"],
                      "resumed": False, "tickets": 2,
                      "tx": {"bytes": len(data), "key_updates": 0},
                      "rx": {"bytes": len(data), "key_updates": 0}}, problems)
    if s.get("peer") not in ("127.0.0.1:%d" % c.port, "[::1]:%d" % c.port):
        problems.append("peer is %r, expected 127.0.0.1:%d (or [::1]:%d)"
                        % (s.get("peer"), c.port, c.port))
    for d in ("tx", "rx"):
        o = s.get(d, {})
        if o.get("records_key") != o.get("records"):
            problems.append("%s.records_key %r != %s.records %r with no key update"
                            % (d, o.get("records_key"), d, o.get("records")))
        if not (is_int(o.get("limit")) and o["limit"] > 0):
            problems.append("%s.limit %r: AES-128-GCM has a limit" % (d, o.get("limit")))
    if is_int(s.get("tx", {}).get("records")) and s["tx"]["records"] < -(-len(data) // 16384):
        problems.append("tx.records %d: %d bytes need at least %d records"
                        % (s["tx"]["records"], len(data), -(-len(data) // 16384)))
    if is_int(s.get("rx", {}).get("records")) and s["rx"]["records"] < 2 + 1:
        problems.append("rx.records %d: 2 tickets and the echo make at least 3" % s["rx"]["records"])
    lim = s.get("tx", {}).get("limit")
    if is_int(s.get("rekey_point")) and is_int(lim) and not 0 < s["rekey_point"] < lim:
        problems.append("rekey_point %d is not below the limit %d" % (s["rekey_point"], lim))
    if is_int(s.get("uptime")) and not 0 <= s["uptime"] <= time.monotonic() - c.t0 + 1:
        problems.append("uptime %d s, but the session started %.1f s ago"
                        % (s["uptime"], time.monotonic() - c.t0))
    raise_problems("client session in stats --json", problems, s)

    # --- the server session: what the Python client sent and received.
    s = session_of(doc, srv.pid)
    problems = []
    check_shape(s, problems)
    py_suite = t.cipher()[0]
    if t.version() != "TLSv1.3":
        raise Fail("the Python client negotiated %s, expected TLSv1.3" % t.version())
    expect_fields(s, {"role": "server", "channel": CHANNEL, "version": "TLS1.3",
                      "cipher": "AES-256-GCM", "suite": py_suite, "resumed": False,
                      "peer": "127.0.0.1:%d" % py_port, "tickets": 0,
                      "tx": {"bytes": len(up), "key_updates": 0},
                      "rx": {"bytes": len(up), "key_updates": 0,
                             # the Python client wrote one record per 16 KiB
                             "records": -(-len(up) // 16384),
                             "records_key": -(-len(up) // 16384)}}, problems)
    if is_int(s.get("tx", {}).get("records")) and s["tx"]["records"] < -(-len(up) // 16384):
        problems.append("tx.records %d: %d bytes echoed need at least %d records"
                        % (s["tx"]["records"], len(up), -(-len(up) // 16384)))
    if is_int(s.get("uptime")) and not 0 <= s["uptime"] <= time.monotonic() - t_srv + 1:
        problems.append("uptime %d s, but the session started %.1f s ago"
                        % (s["uptime"], time.monotonic() - t_srv))
    raise_problems("server session in stats --json", problems, s)

    # --- `stats PID`: only that session, in text and in JSON.
    p, rc = run(xdg, "stats", c.pid)
    txt = out_text(p)
    if rc != 0:
        raise Fail("`stats %d`: exit status %s, expected 0\n%s" % (c.pid, rc, p.describe()))
    if "records under the current key" not in txt:
        raise Fail("`stats %d` text has no 'records under the current key':\n%s" % (c.pid, txt))
    if not re.search(r"^\s*session %d\s*$" % c.pid, txt, re.M) \
            or not re.search(r"^\s*pid: %d\s*$" % c.pid, txt, re.M):
        raise Fail("`stats %d` text does not show session %d:\n%s" % (c.pid, c.pid, txt))
    if str(srv.pid) in txt or "role: server" in txt:
        raise Fail("`stats %d` also shows the other session (%d):\n%s" % (c.pid, srv.pid, txt))
    if not re.search(r"^\s*bytes: %d\s*$" % len(data), txt, re.M):
        raise Fail("`stats %d` text has no 'bytes: %d' line:\n%s" % (c.pid, len(data), txt))
    s1 = one(xdg, srv.pid)
    if s1.get("role") != "server":
        raise Fail("`stats %d --json`: role %r, expected server" % (srv.pid, s1.get("role")))

    # --- both end cleanly; their sockets go away.
    t.send_close_notify()
    got, how = t.recv_until_close()
    if how != "close_notify" or got:
        raise Fail("ktlsctl listen --echo ended with %s after %d more bytes" % (how, len(got)))
    t.close()
    check_exit(srv, 0, 15, "ktlsctl listen --echo")
    if os.path.exists(sock_path(xdg, srv.pid)):
        raise Fail("the server session's control socket is still there after it exited")
    c.close()
    doc = stats_json(xdg)
    if doc["sessions"]:
        raise Fail("stats --json still lists sessions after both exited: %s" % json.dumps(doc))


# ================================================================= case 2

@suite.case("keyupdate PID and keyupdate PID --request on a TLS 1.3 client session", timeout=40,
            when=REKEY)
def _keyupdate13():
    xdg = new_xdg("ku13")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    s0 = one(xdg, c.pid)

    p, rc = run(xdg, "keyupdate", c.pid)
    if rc != 0 or not re.search(r"session %d updated its send keys" % c.pid, p.stderr):
        raise Fail("`keyupdate %d`: exit status %s (expected 0 and 'session %d updated its send "
                   "keys')\n%s" % (c.pid, rc, c.pid, p.describe()))
    s1 = one(xdg, c.pid)
    problems = []
    expect_fields(s1, {"tx": {"key_updates": s0["tx"]["key_updates"] + 1,
                              # the KeyUpdate is one more record under the old key
                              "records": s0["tx"]["records"] + 1, "records_key": 0},
                       "rx": {"key_updates": 0}}, problems)
    raise_problems("after `keyupdate %d`" % c.pid, problems, s1)
    c.roundtrip(line())                     # the data flows under the new key

    p, rc = run(xdg, "keyupdate", c.pid, "--request")
    if rc != 0 or not re.search(r"session %d updated its send keys and asked the peer to update"
                                % c.pid, p.stderr):
        raise Fail("`keyupdate %d --request`: exit status %s (expected 0 and 'updated its send "
                   "keys and asked the peer to update')\n%s" % (c.pid, rc, p.describe()))
    s2 = one(xdg, c.pid)
    problems = []
    expect_fields(s2, {"tx": {"key_updates": s0["tx"]["key_updates"] + 2, "records_key": 0}},
                  problems)
    raise_problems("after `keyupdate %d --request`" % c.pid, problems, s2)

    # gnutls-serv updates its keys when it next sends: make it echo a line.
    c.roundtrip(line())
    s3 = one(xdg, c.pid)
    problems = []
    expect_fields(s3, {"tx": {"key_updates": s0["tx"]["key_updates"] + 2},
                       "rx": {"key_updates": 1}}, problems)
    rx = s3.get("rx", {})
    if is_int(rx.get("records_key")) and is_int(rx.get("records")) \
            and not rx["records_key"] < rx["records"]:
        problems.append("rx.records_key %d is not below rx.records %d after the peer's key update"
                        % (rx["records_key"], rx["records"]))
    raise_problems("after the peer answered the update request", problems, s3)
    c.roundtrip(hex_lines(20000))
    c.close()


@suite.case("keyupdate on a TLS 1.2 session fails, mentions TLS 1.2, the session goes on",
            timeout=30)
def _keyupdate12():
    xdg = new_xdg("ku12")
    c = Client(xdg, "1.2", "AES-256-GCM")
    c.roundtrip(line())
    for extra in ([], ["--request"]):
        p, rc = run(xdg, "keyupdate", c.pid, *extra)
        own = [l for l in p.stderr.splitlines() if l.startswith("ktlsctl: ")]
        if rc == 0 or rc == 2 or rc not in DOCUMENTED:
            raise Fail("`keyupdate %d %s` on TLS 1.2: exit status %s, expected a documented "
                       "failure status (not 0, not 2 for usage)\n%s"
                       % (c.pid, " ".join(extra), rc, p.describe()))
        if not any(re.search(r"TLS 1\.2", l) for l in own):
            raise Fail("`keyupdate %d %s` on TLS 1.2: no 'ktlsctl: ' line mentioning TLS 1.2\n%s"
                       % (c.pid, " ".join(extra), p.describe()))
        if not c.k.alive():
            raise Fail("the session exited after a refused keyupdate\n%s" % c.k.describe())
        c.roundtrip(line())
    s = one(xdg, c.pid)
    problems = []
    expect_fields(s, {"version": "TLS1.2", "tx": {"key_updates": 0}, "rx": {"key_updates": 0}},
                  problems)
    if s.get("tx", {}).get("records_key") != s.get("tx", {}).get("records"):
        problems.append("tx.records_key != tx.records: a refused key update changed the keys?")
    raise_problems("TLS 1.2 session after refused key updates", problems, s)
    c.close()


@suite.case("keyupdate PID [--request] on a channel that cannot rekey: exit 9 with the reason, "
            "no KeyUpdate sent, the session goes on", timeout=30, when=NO_REKEY)
def _keyupdate_norekey():
    xdg = new_xdg("kunr")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    want = "ktlsctl: session %d: %s" % (c.pid, OWN_KEYUPDATE_REFUSED)
    for extra in ([], ["--request"]):
        p, rc = run(xdg, "keyupdate", c.pid, *extra)
        if rc != 9 or p.stderr.splitlines() != [want]:
            raise Fail("`keyupdate %d %s`: exit status %s, expected 9 and the one line %r\n%s"
                       % (c.pid, " ".join(extra), rc, want, p.describe()))
        if not c.k.alive():
            raise Fail("the session exited after a refused keyupdate\n%s" % c.k.describe())
        c.roundtrip(line())
    s = one(xdg, c.pid)
    problems = []
    expect_fields(s, {"tx": {"key_updates": 0}, "rx": {"key_updates": 0}}, problems)
    if s.get("tx", {}).get("records_key") != s.get("tx", {}).get("records"):
        problems.append("tx.records_key != tx.records: a KeyUpdate record went out?")
    raise_problems("session after refused key updates", problems, s)
    c.close()


# ================================================================= case 3

@suite.case("tickets PID: two tickets from gnutls-serv, exactly one used to resume", timeout=30)
def _tickets():
    xdg = new_xdg("tickets")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())                     # the tickets arrive before the echo
    p, rc = run(xdg, "tickets", c.pid)
    txt = out_text(p)
    if rc != 0:
        raise Fail("`tickets %d`: exit status %s, expected 0\n%s" % (c.pid, rc, p.describe()))
    yes = len(re.findall(r"^\s*used to resume: yes\s*$", txt, re.M))
    no = len(re.findall(r"^\s*used to resume: no\s*$", txt, re.M))
    if (yes, no) != (1, 1):
        raise Fail("`tickets %d`: %d 'used to resume: yes' and %d '... no' lines, expected 1 and 1:\n%s"
                   % (c.pid, yes, no, txt))
    if not re.search(r"^\s*tickets: 2\s*$", txt, re.M):
        raise Fail("`tickets %d` does not say 'tickets: 2':\n%s" % (c.pid, txt))

    p, rc = run(xdg, "tickets", c.pid, "--json")
    if rc != 0:
        raise Fail("`tickets %d --json`: exit status %s, expected 0\n%s" % (c.pid, rc, p.describe()))
    doc = parse_json(p)
    sess = doc.get("sessions") if isinstance(doc, dict) else None
    if not isinstance(sess, list) or len(sess) != 1 or not isinstance(sess[0], dict):
        raise Fail("`tickets %d --json`: expected one session, got %r" % (c.pid, doc))
    t = sess[0]
    tickets = t.get("tickets")
    if not isinstance(tickets, list) or not all(isinstance(v, dict) for v in tickets):
        raise Fail("`tickets %d --json`: \"tickets\" is not an array of objects: %s"
                   % (c.pid, json.dumps(doc)))
    in_use = [v.get("in_use") for v in tickets]
    if t.get("count") != 2 or len(tickets) != 2 or in_use.count(True) != 1 \
            or in_use.count(False) != 1:
        raise Fail("`tickets %d --json`: expected count 2, two tickets, exactly one in_use: %s"
                   % (c.pid, json.dumps(doc)))
    # The man page: GnuTLS offers the newest; the list is oldest first.
    if in_use[-1] is not True:
        raise Fail("`tickets %d --json`: the ticket used to resume is not the newest: %s"
                   % (c.pid, json.dumps(doc)))
    for v in tickets:
        if not (is_int(v.get("lifetime")) and v["lifetime"] > 0 and is_int(v.get("length"))
                and v["length"] > 0):
            raise Fail("`tickets %d --json`: a ticket without lifetime/length: %s"
                       % (c.pid, json.dumps(doc)))
    if one(xdg, c.pid).get("tickets") != 2:
        raise Fail("stats says %r tickets held, tickets says 2" % one(xdg, c.pid).get("tickets"))
    c.close()


# ================================================================= case 4

NOBODY_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("CONNECT-EACCES"); sys.exit(0)
except OSError as e:
    print("CONNECT-ERROR %r" % (e,)); sys.exit(0)
try:
    s.sendall(sys.argv[2].encode() + b"\n")
except (BrokenPipeError, ConnectionResetError):
    pass    # refused before we were done: read what it said
buf = b""
try:
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    how = "eof"
except socket.timeout:
    how = "timeout"
except ConnectionResetError:
    how = "reset"
print("REPLY %s %r" % (how, buf))
"""


def nobody_raw(path, request):
    argv = nobody_prefix() + [sys.executable, "-c", NOBODY_CLIENT, path, request]
    p = Proc(argv, name="python3 as nobody (%s)" % request, stdin=None)
    rc = p.wait(15)
    out = out_text(p).strip()
    if rc != 0:
        raise Fail("the raw client run as nobody failed: exit %s\n%s" % (rc, p.describe()))
    return out


def check_modes(d, path, problems):
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o700 or st.st_uid != os.geteuid():
        problems.append("%s: mode %o uid %d, expected a directory 0700 owned by uid %d"
                        % (d, stat.S_IMODE(st.st_mode), st.st_uid, os.geteuid()))
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600 or st.st_uid != os.geteuid():
        problems.append("%s: %s mode %04o uid %d, expected a socket with mode 0600 owned by uid %d "
                        "(core/ctl.h, issue 5)"
                        % (path, "socket" if stat.S_ISSOCK(st.st_mode) else "not a socket",
                           stat.S_IMODE(st.st_mode), st.st_uid, os.geteuid()))


@suite.case("control socket: directory 0700 and socket 0600, ours; removed at exit", timeout=30)
def _modes():
    xdg = new_xdg("modes")
    old_umask = os.umask(0)                 # the session inherits umask 000: the modes
    try:                                    # must not depend on the caller's umask
        c = Client(xdg, "1.3", "AES-128-GCM")
    finally:
        os.umask(old_umask)
    c.roundtrip(line())
    problems = []
    check_modes(ctl_dir(xdg), c.sock, problems)
    raise_problems("control socket modes (started with umask 000)", problems)
    c.close()

    # A directory others can enter (planted, or left by someone): the
    # session keeps working but serves no socket there, and says so.
    xdg = new_xdg("modes-open")
    os.mkdir(ctl_dir(xdg))
    os.chmod(ctl_dir(xdg), 0o755)
    cert, key = certs().srv_ec
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3"))
    data = hex_lines(5000)
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS, stdin=data,
                name="ktlsctl connect", extra_env=kenv(xdg))
    check_exit(k, 0, 15, "ktlsctl connect with a 0755 control directory")
    check_data("ktlsctl stdout (echoed by gnutls-serv)", k.stdout, data)
    if os.listdir(ctl_dir(xdg)):
        raise Fail("the session served a socket in a 0755 directory: %s" % os.listdir(ctl_dir(xdg)))
    if not re.search(r"^ktlsctl: no control socket .*0700", k.stderr, re.M):
        raise Fail("no 'ktlsctl: no control socket ... 0700' notice with a 0755 directory\n%s"
                   % k.describe())


@suite.case("control socket: another user (nobody) is refused, by directory and by SO_PEERCRED",
            timeout=45)
def _security():
    nobody_prefix()                         # Skip early when we cannot be nobody
    xdg = new_xdg("security")
    # A dozen processes run before the last echo: under emulation that is
    # more than gnutls-serv's 30 s.
    c = Client(xdg, "1.3", "AES-128-GCM", peer="listen")
    c.roundtrip(line())
    d, path = ctl_dir(xdg), c.sock
    problems = []
    check_modes(d, path, problems)

    # ktlsctl run as nobody, pointed at our directory: refused, nothing leaked.
    # What only the session can tell (the all-sessions report also shows
    # the kernel's ciphers and sockets, which are not the session's).
    secrets = [r"\b%d\b" % c.pid, r":%d\b" % c.port, re.escape(SUITES["AES-128-GCM"]),
               r"\brole\b", r"records_key|records under the current key", r"user-space"]
    for args in (["stats"], ["stats", "--json"], ["stats", c.pid], ["stats", c.pid, "--json"],
                 ["tickets", c.pid], ["keyupdate", c.pid]):
        p, rc = run(xdg, *args, as_nobody=True)
        txt = out_text(p)
        own = [l for l in p.stderr.splitlines() if l.startswith("ktlsctl: ")]
        # On the kernel channel the machine's kTLS sockets, the session's
        # among them, are anyone's to list (sock_diag, as ss shows them):
        # its port in the all-sessions report is not the session's to hide.
        public = [r":%d\b" % c.port] if CHANNEL == "kernel" and len(args) <= 2 \
            and c.pid not in args else []
        leaked = [x for x in secrets if x not in public and re.search(x, txt)]
        cmd = "ktlsctl " + " ".join(str(a) for a in args)
        if rc == 0:
            problems.append("`%s` as nobody: exit status 0, expected a failure (stderr: %r, "
                            "stdout: %r)" % (cmd, p.stderr.strip(), txt.strip()))
        elif rc not in DOCUMENTED:
            problems.append("`%s` as nobody: undocumented exit status %s" % (cmd, rc))
        if not own:
            problems.append("`%s` as nobody: no 'ktlsctl: ' error on stderr" % cmd)
        if leaked:
            problems.append("`%s` as nobody: stdout shows %s: %r" % (cmd, leaked, txt))
    s = one(xdg, c.pid)
    if s["tx"]["key_updates"] != 0:
        problems.append("nobody's `keyupdate` changed the session's keys: %s" % json.dumps(s))

    # Raw, as nobody: the 0700 directory stops the connect itself.
    r = nobody_raw(path, "KTLSCTL/2 STATS")
    if r != "CONNECT-EACCES":
        problems.append("raw connect as nobody through the 0700 directory: %s, expected EACCES" % r)

    # Open the modes up: now SO_PEERCRED is what refuses nobody.
    d_mode, s_mode = stat.S_IMODE(os.lstat(d).st_mode), stat.S_IMODE(os.lstat(path).st_mode)
    os.chmod(d, 0o755)
    os.chmod(path, 0o666)
    try:
        for req in ("KTLSCTL/2 STATS", "KTLSCTL/2 TICKETS", "KTLSCTL/2 KEYUPDATE request"):
            r = nobody_raw(path, req)
            m = re.match(r"REPLY (\w+) (b['\"].*['\"])$", r, re.S)
            reply = ast.literal_eval(m.group(2)) if m else None   # the bytes repr our script printed
            if reply is None or not reply.startswith(PROTO + b" ERR permission denied") \
                    or reply.count(b"\n") != 1 or not reply.endswith(b"\n"):
                problems.append("raw %r as nobody with the modes opened up: %s, expected exactly "
                                "one line 'KTLSCTL/2 ERR permission denied...'" % (req, r))
            elif any(re.search(x, reply.decode("latin-1")) for x in secrets):
                problems.append("raw %r as nobody: the refusal leaks session data: %r" % (req, reply))
        # Our own client refuses to use a directory others can enter.
        p, rc = run(xdg, "stats", c.pid)
        if rc == 0 or rc not in DOCUMENTED \
                or not re.search(r"^ktlsctl: refusing .*0700", p.stderr, re.M):
            problems.append("`ktlsctl stats %d` with the directory at 0755: exit %s, expected a "
                            "failure with 'ktlsctl: refusing ... 0700'; stderr: %r"
                            % (c.pid, rc, p.stderr.strip()))
    finally:
        os.chmod(path, s_mode)
        os.chmod(d, d_mode)
    s = one(xdg, c.pid)
    if s["tx"]["key_updates"] != 0:
        problems.append("nobody's raw KEYUPDATE changed the session's keys: %s" % json.dumps(s))
    if not c.k.alive():
        problems.append("the session died\n%s" % c.k.describe())
    raise_problems("control socket security", problems)
    c.roundtrip(line())
    c.close()


# ================================================================= case 5

GARBAGE = [
    ("empty line", b"\n", b"KTLSCTL/2 ERR not a ktlsctl request\n"),
    ("HELLO", b"HELLO\n", b"KTLSCTL/2 ERR not a ktlsctl request\n"),
    ("KTLSCTL/3 STATS", b"KTLSCTL/3 STATS\n",
     b"KTLSCTL/2 ERR unsupported protocol version (this session speaks KTLSCTL/2)\n"),
    # An older ktlsctl's request: refused in its own protocol's words.
    ("KTLSCTL/1 STATS", b"KTLSCTL/1 STATS\n", V1_REFUSAL),
    ("KTLSCTL/1 KEYUPDATE", b"KTLSCTL/1 KEYUPDATE\n", V1_REFUSAL),
    ("300 bytes, no newline", b"x" * 300, b"KTLSCTL/2 ERR request too long\n"),
    ("binary junk", b"\x00\xff\xfe\x01\x80KTLSCTL/2 STATS\x00\n",
     b"KTLSCTL/2 ERR not a ktlsctl request\n"),
    ("unknown request", b"KTLSCTL/2 FROBNICATE\n", None),
    ("lower-case request", b"KTLSCTL/2 stats\n", None),
    ("257 bytes with a newline at the end", b"KTLSCTL/2 STATS" + b" " * 241 + b"\n",
     b"KTLSCTL/2 ERR request too long\n"),
]


@suite.case("control socket: garbage, idle and 20 concurrent clients; the data path keeps moving",
            timeout=45)
def _garbage():
    xdg = new_xdg("garbage")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    problems = []

    # An idle client and one that stops half-way: the data must not stall.
    idle = []
    for partial in (b"", b"KTLSCTL/2 STA"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(3))
        s.connect(c.sock)
        if partial:
            s.sendall(partial)
        idle.append(s)
    worst = 0.0
    for _ in range(15):
        worst = max(worst, c.roundtrip(line(), timeout=5))
        time.sleep(0.05)
    if worst > scaled(1.0):
        problems.append("with idle control clients a line took %.2fs to come back (max 1s)" % worst)

    for name, req, want in GARBAGE:
        reply, how = raw(c.sock, req)
        if want is None:
            good = reply.startswith(PROTO + b" ERR ") and reply.count(b"\n") == 1 \
                and reply.endswith(b"\n")
        else:
            good = reply == want
        if not good or how == "timeout":
            problems.append("%s: reply %r (ended by %s), expected %s" % (
                name, reply, how, repr(want) if want else "one 'KTLSCTL/2 ERR ...' line"))
        # the data path between the requests
        dt = c.roundtrip(line(), timeout=5)
        if dt > scaled(1.0):
            problems.append("after %s a line took %.2fs to come back" % (name, dt))

    # A request and EOF without its newline: no answer is owed, but no hang.
    reply, how = raw(c.sock, b"KTLSCTL/2 STATS", shut=True)
    if how == "timeout":
        problems.append("'KTLSCTL/2 STATS' then EOF (no newline): the session never closed the "
                        "connection (reply %r)" % reply)

    # ktlsctl itself can still ask, with the 2 idle clients connected.
    p, rc = run(xdg, "stats", c.pid)
    if rc != 0 or "records under the current key" not in out_text(p):
        problems.append("`stats %d` after the garbage (2 idle clients connected): exit %s\n%s"
                        % (c.pid, rc, p.describe()))
    for s in idle:
        s.close()

    # 20 concurrent clients while data flows: no crash, no garbled or cut
    # answer, no hang (whether all 20 are answered: the next case).
    results, dt = concurrent_stats(c, 20)
    answered = sum(1 for r in results if ok_reply(r[0]))
    bad = [r for r in results if not (ok_reply(r[0]) or (r[0] == b"" and r[1] in ("eof", "reset")))]
    if bad:
        problems.append("concurrent clients: %d got neither a complete OK answer nor a clean "
                        "close: %r" % (len(bad), [(b[0][:80], b[1]) for b in bad][:5]))
    if answered < 1:
        problems.append("concurrent clients: none of 20 was answered")
    if dt > scaled(1.0):
        problems.append("during the concurrent requests a line took %.2fs to come back" % dt)
    p, rc = run(xdg, "stats", c.pid)
    if rc != 0 or "records under the current key" not in out_text(p):
        problems.append("`stats %d` after the concurrent clients: exit %s\n%s"
                        % (c.pid, rc, p.describe()))
    c.roundtrip(hex_lines(100000))
    if not c.k.alive():
        problems.append("the session died")
    raise_problems("control socket robustness", problems, None, c.k)
    c.close()


def concurrent_stats(c, n):
    """n threads send STATS at once (after a barrier) while a line goes
    through the session; returns ([(reply, how)] * n, seconds the line took)."""
    results = [(b"", "not run")] * n
    barrier = threading.Barrier(n)

    def worker(i):
        try:
            barrier.wait(scaled(5))
            results[i] = raw(c.sock, b"KTLSCTL/2 STATS\n", timeout=5)
        except Exception as e:      # reported by the caller
            results[i] = (b"", "exception %r" % (e,))
    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    dt = c.roundtrip(line(), timeout=5)
    for t in ts:
        t.join(scaled(15))
    if any(t.is_alive() for t in ts):
        raise Fail("a concurrent control client did not finish within 15 s")
    return results, dt


@suite.case("control socket: 20 concurrent STATS requests each get an answer (OK or ERR)",
            timeout=30)
def _concurrent():
    """ctl.h: every request gets "KTLSCTL/2 OK ..." or "KTLSCTL/2 ERR
    message".  A session busy with other control clients may refuse one,
    but with an ERR line, not by closing the connection silently (ktlsctl's
    client would then say the session "may have just ended")."""
    xdg = new_xdg("concurrent")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    tally = {"ok": 0, "err": 0, "silent": 0, "other": 0}
    other = []
    for _ in range(3):
        results, _dt = concurrent_stats(c, 20)
        for reply, how in results:
            if ok_reply(reply):
                tally["ok"] += 1
            elif reply.startswith(PROTO + b" ERR ") and reply.count(b"\n") == 1:
                tally["err"] += 1
            elif reply == b"" and how in ("eof", "reset"):
                tally["silent"] += 1
            else:
                tally["other"] += 1
                other.append((reply[:80], how))
    c.roundtrip(line())
    if tally["silent"] or tally["other"]:
        raise Fail("60 STATS requests in 3 bursts of 20: %d answered OK, %d ERR, %d closed "
                   "without any answer, %d other %r" % (tally["ok"], tally["err"],
                                                       tally["silent"], tally["other"], other[:5]))
    c.close()


@suite.case("control socket: idle clients filling every slot do not lock ktlsctl stats out",
            timeout=30)
def _idle_slots():
    """The session serves 4 control clients at a time (KC_CTL_MAX_FDS) and
    closes the connections beyond that.  Clients that connect and never send
    a request (a bad request that never ends) must not keep `ktlsctl stats`
    out for good: ktlsctl's own client gives up after 2 s, so after ~5 s the
    session should have dropped (or answered with an ERR) the idle ones."""
    xdg = new_xdg("idle")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    idle = []
    for _ in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(1))
        s.connect(c.sock)
        idle.append(s)
    try:
        worst = max(c.roundtrip(line(), timeout=5) for _ in range(5))
        if worst > scaled(1.0):
            raise Fail("with 4 idle control clients a line took %.2fs to come back" % worst)
        deadline = time.monotonic() + scaled(6)
        tries = []
        while time.monotonic() < deadline:
            p, rc = run(xdg, "stats", c.pid)
            tries.append((rc, p.stderr.strip()))
            if rc == 0:
                break
            time.sleep(0.5)
        if tries[-1][0] != 0:
            idle_state = []
            for s in idle:
                try:
                    d = s.recv(100)
                    idle_state.append("closed" if not d else "got %r" % d)
                except socket.timeout:
                    idle_state.append("still open")
                except OSError as e:
                    idle_state.append(repr(e))
            raise Fail("4 idle control clients (connected, never sending) lock `ktlsctl stats %d` "
                       "out: %d tries over 6 s all failed, the last with exit %s: %r; the idle "
                       "connections: %s" % (c.pid, len(tries), tries[-1][0], tries[-1][1],
                                            ", ".join(idle_state)))
    finally:
        for s in idle:
            s.close()
    c.roundtrip(line())
    c.close()


# ================================================================= case 6

@suite.case("sessions that exit while queried; a SIGKILLed session's socket is cleaned up",
            timeout=45)
def _exiting():
    xdg = new_xdg("exiting")
    problems = []
    runs = 0
    raw_tally = {}
    for round_ in range(2):
        c = Client(xdg, "1.3", "AES-128-GCM")
        c.roundtrip(line())
        # A control client with a half-sent request: it must not keep the
        # session from exiting, and it must see the connection end.
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        half.settimeout(scaled(5))
        half.connect(c.sock)
        half.sendall(b"KTLSCTL/2 ST")
        # Data still in flight when stdin closes, so the session takes a
        # moment to wind down while it is being asked.
        tail = hex_lines(300000)
        c.sent += tail
        c.k.send(tail)
        c.k.close_stdin()
        # Raw requests in a tight loop until the socket has been gone 50 ms.
        stop = threading.Event()

        def hammer(path=c.sock):
            gone = None
            while not stop.is_set():
                try:
                    reply, how = raw(path, b"KTLSCTL/2 STATS\n", timeout=3)
                except (FileNotFoundError, ConnectionRefusedError):
                    key = "socket gone/refused"
                    gone = gone or time.monotonic()
                    if time.monotonic() - gone > 0.05:
                        return
                else:
                    if ok_reply(reply):
                        key = "complete answer"
                    elif how in ("timeout", "connect timeout"):
                        key = "HANG (%s, %r)" % (how, reply[:60])
                    elif reply == b"" or reply.startswith(PROTO + b" OK\n"):
                        key = "cut by the exit"
                    else:
                        key = "GARBLED %r" % (reply[:60],)
                raw_tally[key] = raw_tally.get(key, 0) + 1
        th = threading.Thread(target=hammer, daemon=True)
        th.start()
        gone_at = None
        t_end = time.monotonic() + scaled(8)
        try:
            while time.monotonic() < t_end:
                args = ["stats", "--json"] if runs % 2 == 0 else ["stats", c.pid, "--json"]
                p, rc = run(xdg, *args, timeout=10)
                runs += 1
                if len(args) == 2:
                    if rc != 0:
                        problems.append("`stats --json` while a session exits: exit %s\n%s"
                                        % (rc, p.describe()))
                elif rc not in (0, 3):
                    problems.append("`stats %d --json` while the session exits: exit %s, expected "
                                    "0 or 3\n%s" % (c.pid, rc, p.describe()))
                try:
                    doc = json.loads(out_text(p))
                    if not isinstance(doc, dict) or doc.get("format") != 1:
                        raise ValueError("no format 1")
                except ValueError as e:
                    problems.append("`%s` while a session exits: stdout is not a format-1 JSON "
                                    "document (%s): %r" % (p.name, e, out_text(p)[:500]))
                if not c.k.alive():
                    if gone_at is None:
                        gone_at = runs
                    elif runs - gone_at >= 3:
                        break
        finally:
            th.join(scaled(10))
            stop.set()
        if th.is_alive():
            problems.append("raw requests to the exiting session still running after 10 s")
        try:
            check_exit(c.k, 0, 10, "ktlsctl connect (stdin closed while being queried)")
            check_data("ktlsctl stdout (echoed by gnutls-serv)", c.k.stdout, bytes(c.sent))
        except Fail as e:
            problems.append(str(e))
        try:
            d = half.recv(100)
            if d and not d.startswith(PROTO + b" ERR"):
                problems.append("the half-request client got %r when the session ended" % d)
        except socket.timeout:
            problems.append("the half-request client was not disconnected when the session exited")
        except ConnectionResetError:
            pass
        half.close()
        if os.path.exists(c.sock):
            problems.append("the control socket of the exited session %d is still there" % c.pid)
        if problems:
            break
    bad = {k: v for k, v in raw_tally.items() if k.startswith(("HANG", "GARBLED"))}
    if bad:
        problems.append("raw requests while the sessions exited: %r" % raw_tally)

    # SIGKILL: the socket stays behind; the next `ktlsctl stats` removes it.
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    live = Client(xdg, "1.3", "AES-128-GCM")
    live.roundtrip(line())
    c.k.kill()                              # SIGKILL, and reaped
    if c.k.alive():
        raise Fail("the SIGKILLed session is still alive")
    if not os.path.exists(c.sock):
        problems.append("precondition: the SIGKILLed session's socket was already gone")
    doc = stats_json(xdg)
    pids = [s.get("pid") for s in doc["sessions"] if isinstance(s, dict)]
    if pids != [live.pid]:
        problems.append("stats --json after the SIGKILL lists %s, expected only the live session "
                        "%d (not the dead %d)" % (pids, live.pid, c.pid))
    if os.path.exists(c.sock):
        problems.append("the dead session's socket %s was not removed by `ktlsctl stats`" % c.sock)
    p, rc = run(xdg, "stats", c.pid)
    if rc == 0 or not re.search(r"no ktlsctl session with pid %d" % c.pid, p.stderr):
        problems.append("`stats %d` (dead): exit %s, expected nonzero with 'no ktlsctl session "
                        "with pid %d'\n%s" % (c.pid, rc, c.pid, p.describe()))
    raise_problems("sessions that end while being queried (%d stats runs)" % runs, problems)
    if os.environ.get("KTLSCTL_TEST_DEBUG"):
        print("    debug: %d stats runs while sessions ended; raw requests: %r" % (runs, raw_tally))
    live.roundtrip(line())
    live.close()


# ================================================================= case 7

def watch_run(xdg, pid, json_mode, when):
    """`stats --watch 0.2 [--json]`, SIGINT either while a report is being
    written ('report': as soon as a new one starts arriving) or between two
    reports ('wait': once the output has been still for 60 ms).  Returns a
    list of problems."""
    args = ["stats", "--watch", "0.2"] + (["--json"] if json_mode else [])
    name = "ktlsctl " + " ".join(args)
    w = ktlsctl(*args, stdin=None, name=name, extra_env=kenv(xdg))
    # Each report has one "sessions: " line (the summary; JSON: "format").
    marker = b'"format":1' if json_mode else b"sessions: "
    if not w.wait_until(lambda p: p.stdout.count(marker) >= 3, 5):
        w.kill()
        return ["`%s` printed %d reports in 5 s, expected at least 3\n%s"
                % (name, w.stdout.count(marker), w.describe())]
    if when == "report":
        n = w.stdout.count(marker)
        w.wait_until(lambda p: p.stdout.count(marker) > n, 2)
    else:
        deadline = time.monotonic() + scaled(3)
        last, still = w.out_total, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - still < 0.06:
            time.sleep(0.005)
            if w.out_total != last:
                last, still = w.out_total, time.monotonic()
    t0 = time.monotonic()
    w.signal(signal.SIGINT)
    rc = w.wait(5)
    check_no_sanitizer(w)
    problems = []
    what = "`%s`, SIGINT %s" % (name, "while a report was being written" if when == "report"
                                else "between two reports")
    if rc != 0:
        problems.append("%s: exit status %s, expected 0\n%s" % (what, rc, w.describe()))
    if time.monotonic() - t0 > scaled(1.5):
        problems.append("%s: took %.1fs to exit" % (what, time.monotonic() - t0))
    txt = out_text(w)
    reports = txt.count(marker.decode())
    if json_mode:
        docs = [l for l in txt.splitlines() if l.strip()]
        for i, l in enumerate(docs):
            try:
                d = json.loads(l)
                session_of(d, pid, "stats --watch --json")
            except ValueError as e:
                # the signal only sets a flag: even the last report is whole
                problems.append("%s: report %d of %d is not a JSON document (%s): %r"
                                % (what, i + 1, len(docs), e, l[-300:]))
            except Fail as e:
                problems.append("%s: report %d: %s" % (what, i, e))
    elif txt.count("session %d" % pid) < reports - 1:
        problems.append("%s: %d reports but session %d shown %d times"
                        % (what, reports, pid, txt.count("session %d" % pid)))
    return problems


@suite.case("stats --watch 0.2 repeats and exits 0 on SIGINT (between and during reports)",
            timeout=30)
def _watch():
    xdg = new_xdg("watch")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    problems = []
    for json_mode in (False, True):
        for when in ("wait", "report"):
            problems += watch_run(xdg, c.pid, json_mode, when)
    raise_problems("stats --watch", problems)
    c.close()


def cap_text(cap):
    """A capability as the text shows it (core/diag/caps.c)."""
    if not cap.get("reason"):
        return cap["state"]
    if cap["state"] == "yes":
        return "yes (%s)" % cap["reason"]
    return "%s: %s%s" % (cap["state"], cap["reason"],
                         " (%s)" % cap["errno"] if cap.get("errno") else "")


def summary_head(doc):
    """The summary's lines about the kernel, from the JSON of the same
    machine: kTLS available, the command that fixes it, the sockets' count
    (their lines are checked apart: how many)."""
    k, s = doc["kernel"], doc["sockets"]
    lines = ["kTLS available: " + cap_text(k["available"])]
    if k.get("fix"):
        lines.append("to fix it, run: " + k["fix"])
    if not s["list"]:
        lines.append(s["note"] or "no kTLS sockets")
    else:
        lines.append("kTLS sockets: %d%s%s" % (len(s["list"]), "; " + s["note"] if s["note"] else "",
                                             "; " + s["owner_note"] if s["owner_note"] else ""))
    return lines


def check_summary(xdg, sessions_lines, what):
    """`stats` (no -v): exactly the summary of what `stats --json` reports:
    the kernel's lines, one indented line per kTLS socket, then
    sessions_lines(doc) (a list of regular expressions)."""
    p, rc = run(xdg, "stats")
    doc = stats_json(xdg)
    txt = out_text(p)
    if rc != 0:
        raise Fail("%s: `stats` exit %s\n%s" % (what, rc, p.describe()))
    lines = txt.splitlines()
    head = summary_head(doc)
    nsock = len(doc["sockets"]["list"])
    # The kernel's socket list is the whole machine's, and the text and the
    # JSON are two snapshots: where kTLS sockets come and go between them
    # (the kernel channel: sessions of other suites, sockets closing), the
    # text's own count says how many socket lines follow it.
    if CHANNEL == "kernel" and len(lines) >= len(head):
        said = lines[len(head) - 1]
        m = re.fullmatch(r"kTLS sockets: (\d+)(; .*)?", said)
        if m or said == "no kTLS sockets":
            nsock = int(m.group(1)) if m else 0
            head[-1] = said
    want = sessions_lines(doc)
    got_sock = lines[len(head):len(head) + nsock]
    tail = lines[len(head) + nsock:]
    if lines[:len(head)] != head or len(tail) != len(want) \
            or not all(re.fullmatch(w, l) for w, l in zip(want, tail)) \
            or not all(l.startswith("  ") and " -> " in l for l in got_sock):
        raise Fail("%s: `stats` is not the summary: expected\n%s\n  %d socket lines\n%s\n"
                   "got:\n%s" % (what, "\n".join(head), nsock, "\n".join(want), txt))
    return doc


@suite.case("stats with no sessions: the short summary ('sessions: none running'), exit 0 "
            "(text and JSON)", timeout=20)
def _none():
    for tag, precreate in (("none-nodir", False), ("none-emptydir", True)):
        xdg = new_xdg(tag)
        if precreate:
            os.mkdir(ctl_dir(xdg), 0o700)
        doc = check_summary(xdg, lambda doc: [r"sessions: none running"],
                            "`stats` with no sessions (%s)" % tag)
        if doc.get("sessions") != []:
            raise Fail("`stats --json` with no sessions (%s): \"sessions\" is %r, expected []"
                       % (tag, doc.get("sessions")))
        if not precreate and os.path.exists(ctl_dir(xdg)):
            raise Fail("`stats` created %s: a query should not create the directory" % ctl_dir(xdg))


def session_line(s):
    """A session's line in the summary, as a regular expression (the
    uptime may tick between two runs)."""
    return re.escape("  session %d: %s %s %s %s, %s channel, %d bytes sent, %d received, up "
                     % (s["pid"], s["role"], s["peer"], s["version"], s["cipher"], s["channel"],
                        s["tx"]["bytes"], s["rx"]["bytes"])) + r"\d+s"


@suite.case("stats with sessions: the short summary, one line per session; -v: the whole "
            "report", timeout=45)
def _summary_and_verbose():
    xdg = new_xdg("summary")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c2 = Client(xdg, "1.2", "AES-256-GCM")
    c.roundtrip(line())
    c2.roundtrip(line(200))
    doc = check_summary(xdg, lambda doc: [r"sessions: 2 running"] +
                        [session_line(s) for s in doc["sessions"]], "`stats` with 2 sessions")
    if sorted(s["pid"] for s in doc["sessions"]) != sorted([c.pid, c2.pid]):
        raise Fail("`stats --json` lists %r, expected %d and %d"
                   % ([s["pid"] for s in doc["sessions"]], c.pid, c2.pid))

    # -v: every section, and each session in full, as `stats PID` shows it.
    p, rc = run(xdg, "stats", "-v")
    txt = out_text(p)
    problems = []
    if rc != 0:
        problems.append("`stats -v`: exit %s\n%s" % (rc, p.describe()))
    lines = txt.splitlines()
    for want in ("ktlsctl stats format: 1", "Kernel:", "  Ciphers:", "  Optional features:",
                 "Sockets:", "sessions:"):
        if want not in lines:
            problems.append("`stats -v` has no line %r" % want)
    if not any(l.startswith("/proc/net/tls_stat:") for l in lines) \
            or not any(l.startswith("  kTLS available: ") for l in lines):
        problems.append("`stats -v` lacks /proc/net/tls_stat or kTLS available")
    for info in ("reading /proc/net/tls_stat", "probing kernel TLS on fresh loopback sockets",
                 "listing kTLS sockets through sock_diag (NETLINK_SOCK_DIAG)",
                 "2 session control sockets in %s" % ctl_dir(xdg)):
        if "ktlsctl: " + info not in p.stderr.splitlines():
            problems.append("`stats -v`: no 'ktlsctl: %s' on stderr" % info)
    for k in (c, c2):
        pt, _ = run(xdg, "stats", k.pid)
        block = out_text(pt).split("sessions:\n", 1)[-1]
        # The same lines but the uptime's.
        strip = lambda t: re.sub(r"uptime \(s\): \d+", "uptime (s): N", t)
        if strip(block) not in strip(txt):
            problems.append("`stats -v` does not show session %d as `stats %d` does:\n%s\n"
                            "    stats -v:\n%s" % (k.pid, k.pid, block, txt))
    raise_problems("stats -v", problems)
    c.close()
    c2.close()


@suite.case("keyupdate without PID -> 2; keyupdate/stats/tickets 999999 -> no ktlsctl session",
            timeout=20)
def _usage():
    xdg = new_xdg("usage")
    problems = []
    p, rc = run(xdg, "keyupdate")
    if rc != 2 or not any(l.startswith("ktlsctl: ") for l in p.stderr.splitlines()):
        problems.append("`keyupdate` without PID: exit %s, expected 2 with a 'ktlsctl: ' message"
                        "\n%s" % (rc, p.describe()))
    for state in ("no session has ever run (no directory)", "the directory exists, empty"):
        if "exists" in state:
            os.mkdir(ctl_dir(xdg), 0o700)
        for args in (["keyupdate", "999999"], ["keyupdate", "999999", "--request"],
                     ["stats", "999999"], ["tickets", "999999"]):
            p, rc = run(xdg, *args)
            if rc == 0 or rc not in DOCUMENTED or \
                    not re.search(r"^ktlsctl: no ktlsctl session with pid 999999", p.stderr, re.M):
                problems.append("%s: `ktlsctl %s`: exit %s, expected a documented nonzero status "
                                "and 'ktlsctl: no ktlsctl session with pid 999999'; stderr: %r"
                                % (state, " ".join(args), rc, p.stderr.strip()))
    raise_problems("keyupdate/stats/tickets of a pid that is no session", problems)


# ============================================================ protocol 2

def refused_exactly(p, rc, want_rc, want_line, what):
    """`p` exited with want_rc and said exactly want_line on stderr."""
    lines = p.stderr.splitlines()
    if rc != want_rc or lines != [want_line]:
        raise Fail("%s: exit %s and stderr %r, expected exit %s and exactly %r"
                   % (what, rc, lines, want_rc, want_line))


class OldSession:
    """A session of an older ktlsctl, as its control socket answers: it
    speaks KTLSCTL/1 and refuses everything else with its ERR line.  It
    serves <dir>/<pid>.sock for a live process of ours (`sleep`), so that
    the socket is not taken for a dead session's."""

    ANSWER = b"KTLSCTL/1 ERR unsupported protocol version (this session speaks KTLSCTL/1)\n"

    def __init__(self, xdg):
        self.proc = Proc(["sleep", "60"], name="sleep (the old session's pid)", stdin=None)
        self.pid = self.proc.pid
        d = ctl_dir(xdg)
        if not os.path.isdir(d):
            os.mkdir(d, 0o700)
        self.path = sock_path(xdg, self.pid)
        self.requests = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.th = threading.Thread(target=self._serve, daemon=True)
        self.th.start()

    def _serve(self):
        while True:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            with s:
                s.settimeout(scaled(3))
                buf = b""
                try:
                    while b"\n" not in buf:
                        d = s.recv(300)
                        if not d:
                            break
                        buf += d
                    self.requests.append(buf)
                    s.sendall(self.ANSWER)
                except OSError:
                    pass

    def close(self):
        self.srv.close()
        os.unlink(self.path)
        self.proc.kill()


@suite.case("protocol 2: a KTLSCTL/1 request is refused in its own words; a session that "
            "speaks KTLSCTL/1 is refused with one clear line", timeout=30)
def _protocol_versions():
    xdg = new_xdg("versions")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    problems = []
    # An older ktlsctl asking this session: one line it can show, nothing done.
    for req in (b"KTLSCTL/1 STATS\n", b"KTLSCTL/1 TICKETS\n", b"KTLSCTL/1 KEYUPDATE\n",
                b"KTLSCTL/1 KEYUPDATE request\n"):
        reply, how = raw(c.sock, req)
        if reply != V1_REFUSAL or how != "eof":
            problems.append("%r: reply %r (ended by %s), expected exactly %r"
                            % (req, reply, how, V1_REFUSAL))
    s = one(xdg, c.pid)
    if s["tx"]["key_updates"] != 0 or s["rx"]["key_updates"] != 0:
        problems.append("a KTLSCTL/1 KEYUPDATE changed the keys: %s" % json.dumps(s))

    # This ktlsctl asking an older session.
    old = OldSession(xdg)
    try:
        msg = ("ktlsctl: session %d speaks control protocol KTLSCTL/1, this ktlsctl KTLSCTL/2: "
               "ask it with the ktlsctl that started it" % old.pid)
        for args, want_rc, req in ((["stats", old.pid], 3, b"KTLSCTL/2 STATS\n"),
                                   (["stats", old.pid, "--json"], 3, b"KTLSCTL/2 STATS\n"),
                                   (["tickets", old.pid], 3, b"KTLSCTL/2 TICKETS\n"),
                                   (["keyupdate", old.pid], 9, b"KTLSCTL/2 KEYUPDATE\n"),
                                   (["keyupdate", old.pid, "--request"], 9,
                                    b"KTLSCTL/2 KEYUPDATE request\n")):
            n = len(old.requests)
            p, rc = run(xdg, *args)
            try:
                refused_exactly(p, rc, want_rc, msg, "`ktlsctl %s`" % " ".join(map(str, args)))
            except Fail as e:
                problems.append(str(e))
            if old.requests[n:] != [req]:
                problems.append("`ktlsctl %s` sent %r, expected %r"
                                % (" ".join(map(str, args)), old.requests[n:], [req]))
        # Every session: the old one is named on stderr, the others shown.
        p, rc = run(xdg, "stats", "--json")
        doc = parse_json(p)
        pids = [x.get("pid") for x in doc.get("sessions", [])]
        if rc != 0 or p.stderr.splitlines() != [msg] or pids != [c.pid]:
            problems.append("`stats --json` with an old session: exit %s, stderr %r, sessions %r; "
                            "expected 0, exactly %r, [%d]" % (rc, p.stderr.splitlines(), pids,
                                                             msg, c.pid))
    finally:
        old.close()
    raise_problems("control protocol versions", problems)
    c.close()


def json_values(v, out):
    """The scalars of a JSON document, in order, as the text shows them."""
    if isinstance(v, dict):
        for x in v.values():
            json_values(x, out)
    elif isinstance(v, list):
        for x in v:
            json_values(x, out)
    else:
        out.append({True: "yes", False: "no", None: "-"}.get(v, v) if isinstance(v, (bool, type(None)))
                   else v)
    return out


def between(g, a, b):
    """Whether the text value g is a number between the JSON values a and b."""
    try:
        return float(a) <= float(g) <= float(b)
    except (TypeError, ValueError):
        return False


def text_values(txt):
    """The values of a full text report, in order: what follows "label: " on
    each line (headings "label:" and titles such as "session 42" have none)."""
    return [l.strip().partition(": ")[2] for l in txt.splitlines() if ": " in l]


@suite.case("stats PID and tickets PID: the text shows the JSON's values, in its order and "
            "format (one tree)", timeout=40)
def _text_is_json():
    xdg = new_xdg("onetree")
    c = Client(xdg, "1.3", "AES-128-GCM")
    c.roundtrip(line())
    c.roundtrip(line())
    problems = []
    for args in (["stats", c.pid], ["tickets", c.pid]):
        # A clock value (uptime, a ticket's age) may tick between runs, and
        # under valgrind every run takes seconds: the text run sits between
        # two JSON runs, so each of its values must equal the first run's,
        # the second's, or lie between them.
        p1, rc1 = run(xdg, *args, "--json")
        pt, rct = run(xdg, *args)
        p2, rc2 = run(xdg, *args, "--json")
        if (rc1, rct, rc2) != (0, 0, 0):
            raise Fail("`ktlsctl %s [--json]`: exit %s, %s, %s\n%s%s" % (
                " ".join(map(str, args)), rc1, rct, rc2, pt.describe(), p1.describe()))
        # Numbers as written (the text must show 0.0000 where JSON says 0.0000).
        want1 = json_values(json.loads(out_text(p1), parse_float=str, parse_int=str), [])
        want2 = json_values(json.loads(out_text(p2), parse_float=str, parse_int=str), [])
        got = text_values(out_text(pt))
        if len(want1) != len(want2):
            raise Fail("`ktlsctl %s --json` changed shape between two runs:\n%s\n%s" % (
                " ".join(map(str, args)), out_text(p1), out_text(p2)))
        if len(got) != len(want1) or not all(
                g in (a, b) or between(g, a, b) for g, a, b in zip(got, want1, want2)):
            problems.append("`ktlsctl %s`: the text's values %r differ from the JSON's %r\n"
                            "    text:\n%s\n    JSON: %s" % (" ".join(map(str, args)), got, want1,
                                                          out_text(pt), out_text(p1)))
    # limit_used: four decimals in both.
    s = one(xdg, c.pid)
    p, rc = run(xdg, "stats", c.pid, "--json")
    if not re.search(r'"limit_used":\d+\.\d{4}[,}]', out_text(p)):
        problems.append("limit_used is not written with 4 decimals: %s" % out_text(p))
    raise_problems("text and JSON of one tree", problems, s)
    c.close()


if __name__ == "__main__":
    sys.exit(suite.main())
