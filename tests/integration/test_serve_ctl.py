#!/usr/bin/env python3
"""The control socket of a process serving many sessions (issues 13, 16):
`ktlsctl listen --forward` and `connect --accept` answer `ktlsctl stats`,
`keyupdate PID --session ID` and `tickets PID --session ID` for each of
their established sessions, and their metrics have one series per session
with a `session` label (core/ctl.h, core/serve.h).

Clients are `ktlsctl connect -v` processes holding their sessions open
(stdin kept open) after sending a known amount, each started once the one
before it has its echo back, so that session ids follow the clients' order.
The backend is a plain Python TCP echo server.  Every wait is for an event
(a log line, bytes, an exit), never a fixed sleep.  The serving process and
its clients use different runtime directories, so `ktlsctl stats` in the
server's sees only the serving process.  ktlsctl runs on the channel under
test (KTLSCTL_TEST_CHANNEL, ktlsctl_test.channel)."""

import json
import os
import re
import shutil
import signal
import socket
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS, REKEY  # noqa: E402
from ktlsctl_test.backends import backend  # noqa: E402
from ktlsctl_test.data import random_bytes  # noqa: E402
from ktlsctl_test.peers import EOF_CLOSE, require_programs  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, ktlsctl, ktlsctl_listen, ktlsctl_run, Proc)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402

require_programs("certtool")

suite = Suite("test_serve_ctl", case_timeout=120)
ARGS = CHANNEL_ARGS
SIZES = [1000, 2000, 3000, 4000, 5000]     # what client i sends (session i)
ACCEPT_SIZES = [700, 1400]



def certs():
    return suite.certs


_n = [0]


def new_xdg(tag):
    """A fresh runtime directory (short: a socket path has ~108 bytes)."""
    _n[0] += 1
    d = os.path.join(suite.tmpdir(), "%d%s" % (_n[0], tag))
    os.mkdir(d)
    return d


def env(xdg):
    return {"XDG_RUNTIME_DIR": xdg}


def sock_path(xdg, pid):
    return os.path.join(xdg, "ktlsctl", "%d.sock" % pid)


def forward_server(xdg):
    cert, key = certs().srv_ec
    return ktlsctl_listen("--cert", cert, "--key", key, "--forward", "127.0.0.1:%d" % backend()[1],
                          *ARGS, extra_env=env(xdg))


def run(xdg, *args):
    return ktlsctl_run(*args, extra_env=env(xdg))


def run_ok(xdg, *args):
    p, rc = run(xdg, *args)
    if rc != 0:
        raise Fail("`%s`: exit status %s\n%s" % (p.name, rc, p.describe()))
    return p.stdout.decode()


def run_fails(xdg, status, line, *args):
    """`ktlsctl ARGS` exits with status, saying exactly line on stderr
    (tickets and stats PID still print their empty list, as for a PID
    that is gone)."""
    p, rc = run(xdg, *args)
    listed = args[0] == "tickets" or (args[0] == "stats" and len(args) > 1
                                      and isinstance(args[1], int))
    if rc != status or p.stderr != line + "\n" or (p.stdout and not listed):
        raise Fail("`%s`: exit %s, expected %s with the one line %r\n%s"
                   % (p.name, rc, status, line, p.describe()))


def echoed(c, data, have=0):
    """Send data on client c and wait for its echo."""
    c.send(data)
    if not c.wait_until(lambda p: len(p.stdout) >= have + len(data), 20):
        raise Fail("client %s: no echo of %d bytes\n%s" % (c.name, len(data), c.describe()))
    if c.stdout[have:] != data:
        raise Fail("client %s: the echo differs" % c.name)


def clients(port, xdg, sizes):
    """One `ktlsctl connect -v` per size, each holding its session open
    after its data came back: session ids 1, 2, ... in this order."""
    out = []
    for i, n in enumerate(sizes):
        c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *ARGS,
                    *EOF_CLOSE, extra_env=env(xdg), name="client %d" % (i + 1))
        echoed(c, random_bytes(n))
        out.append(c)
    return out


def end_clients(cs):
    for c in cs:
        c.close_stdin()
    for c in cs:
        check_exit(c, 0, 20, c.name)


def served(doc, pid):
    return [s for s in doc["sessions"] if s.get("pid") == pid]


def stats_doc(xdg, *args):
    return json.loads(run_ok(xdg, "stats", "--json", *args))


def check_sessions(sessions, sizes, role, peer, what):
    """Session ids 1.., with what each sent, in the order of the keys."""
    ids = [s.get("session") for s in sessions]
    if ids != list(range(1, len(sizes) + 1)):
        raise Fail("%s: session ids %s, expected 1 to %d\n%s"
                   % (what, ids, len(sizes), json.dumps(sessions, indent=1)))
    for s, n in zip(sessions, sizes):
        keys = list(s)
        if keys[:4] != ["pid", "session", "role", "peer"] or s["role"] != role:
            raise Fail("%s: keys %s, role %s" % (what, keys, s.get("role")))
        if not re.fullmatch(peer, s["peer"]) or s["channel"] != CHANNEL:
            raise Fail("%s: peer %s, channel %s" % (what, s["peer"], s["channel"]))
        if s["rx"]["bytes"] != n or s["tx"]["bytes"] != n:
            raise Fail("%s: session %d: rx %d tx %d, expected %d each way"
                       % (what, s["session"], s["rx"]["bytes"], s["tx"]["bytes"], n))


def stop(k, what, xdg):
    """SIGTERM with every session closed: a clean exit, and the control
    socket file gone with the process."""
    path = sock_path(xdg, k.pid)
    if not os.path.exists(path):
        raise Fail("%s has no control socket %s\n%s" % (what, path, k.describe()))
    k.signal(signal.SIGTERM)
    check_exit(k, 143, 20, what + " after SIGTERM")
    if os.path.exists(path):
        raise Fail("%s left its control socket %s behind" % (what, path))


# ------------------------------------------------------------------ cases

@suite.case("listen --forward, 5 clients held open: stats --json, stats PID, the brief "
            "list, tickets --session, exact errors, metrics with the session label; a "
            "session that ends leaves the list; SIGTERM removes the socket")
def _forward():
    xdg, cxdg = new_xdg("s"), new_xdg("c")
    k, port = forward_server(xdg)
    cs = clients(port, cxdg, SIZES)
    pid = k.pid
    peer = r"127\.0\.0\.1:\d+"

    # Everything, and that process alone: the same five sessions.
    doc = stats_doc(xdg)
    if len(doc["sessions"]) != 5 or len(served(doc, pid)) != 5:
        raise Fail("stats --json: %s" % json.dumps(doc["sessions"], indent=1))
    check_sessions(served(doc, pid), SIZES, "server", peer, "stats --json")
    check_sessions(stats_doc(xdg, pid)["sessions"], SIZES, "server", peer,
                   "stats %d --json" % pid)

    # Text: each session under its own title, and its one line in the brief.
    text = run_ok(xdg, "stats", pid)
    for i, n in enumerate(SIZES, 1):
        for want in ("  session %d #%d\n    pid: %d\n    serving session: %d\n    role: server\n"
                     % (pid, i, pid, i), "      bytes: %d\n" % n):
            if want not in text:
                raise Fail("stats %d: no %r in\n%s" % (pid, want, text))
    brief = run_ok(xdg, "stats")
    for i, n in enumerate(SIZES, 1):
        line = (r"  session %d #%d: server %s TLS1\.3 AES-256-GCM, %s channel, %d bytes sent, "
                r"%d received, up \d+s" % (pid, i, peer, CHANNEL, n, n))
        if not re.search("^" + line + "$", brief, re.M):
            raise Fail("stats: no line /%s/ in\n%s" % (line, brief))
    if "sessions: 5 running\n" not in brief:
        raise Fail("stats: not 5 sessions running\n" + brief)

    # One session of it: its report alone, under its own title.
    one = stats_doc(xdg, pid, "--session", 3)["sessions"]
    if [s.get("session") for s in one] != [3] or one[0]["rx"]["bytes"] != SIZES[2]:
        raise Fail("stats %d --session 3 --json: %s" % (pid, json.dumps(one, indent=1)))
    text = run_ok(xdg, "stats", pid, "--session", 3)
    if "  session %d #3\n    pid: %d\n    serving session: 3\n" % (pid, pid) not in text \
            or "#1\n" in text or "#2\n" in text or "#4\n" in text:
        raise Fail("stats %d --session 3:\n%s" % (pid, text))

    # Tickets of one session (a server holds none), as JSON.
    t = json.loads(run_ok(xdg, "tickets", pid, "--session", 2, "--json"))
    if t != {"sessions": [{"count": 0, "tickets": []}]}:
        raise Fail("tickets --session 2 --json: %r" % t)

    # Which session: exact one-line errors, exit status 3.
    ids = "(its sessions: 1, 2, 3, 4, 5)"
    run_fails(xdg, 3, "ktlsctl: process %d has no session 9 running %s" % (pid, ids),
              "keyupdate", pid, "--session", 9)
    run_fails(xdg, 3, "ktlsctl: process %d has no session 9 running %s" % (pid, ids),
              "tickets", pid, "--session", 9)
    run_fails(xdg, 3, "ktlsctl: process %d has no session 9 running %s" % (pid, ids),
              "stats", pid, "--session", 9)
    run_fails(xdg, 2, "ktlsctl: --session ID names one of a serving process's sessions: "
              "give the process's PID too (see 'ktlsctl stats --help')",
              "stats", "--session", 3)
    run_fails(xdg, 3, "ktlsctl: process %d serves many sessions: give --session ID %s"
              % (pid, ids), "keyupdate", pid)
    run_fails(xdg, 3, "ktlsctl: process %d serves many sessions: give --session ID %s"
              % (pid, ids), "tickets", pid)
    run_fails(xdg, 2, "ktlsctl: invalid --session '0': give a serving session's id, as "
              "'ktlsctl stats PID' lists them", "keyupdate", pid, "--session", 0)

    # Metrics: one series per session, with its id; promtool agrees.
    om = run_ok(xdg, "stats", "--format", "openmetrics")
    for i, n in enumerate(SIZES, 1):
        rx = (r'^ktls_session_bytes_total\{pid="%d",session="%d",role="server",peer="%s",'
              r'version="TLS1\.3",cipher="AES-256-GCM",channel="%s",direction="rx"\} %d$'
              % (pid, i, peer, CHANNEL, n))
        if not re.search(rx, om, re.M):
            raise Fail("openmetrics: no /%s/ in\n%s" % (rx, om))
    if "\nktls_sessions_running 5\n" not in om:
        raise Fail("openmetrics: ktls_sessions_running is not 5\n" + om)
    if shutil.which("promtool"):
        prom = run_ok(xdg, "stats", "--format", "prometheus")
        chk = Proc(["promtool", "check", "metrics"], name="promtool", stdin=prom.encode())
        if chk.wait(60) != 0 or chk.stdout.strip() or chk.stderr.strip():
            raise Fail("promtool check metrics\n%s\n%s" % (chk.describe(), prom))

    # A session that ends leaves the next list.
    cs[4].close_stdin()
    check_exit(cs[4], 0, 20, "client 5")
    if not k.wait_err(r"ktlsctl: session 5 .* end=closed\n", 20):
        raise Fail("no closed line for session 5\n" + k.describe())
    check_sessions(stats_doc(xdg, pid)["sessions"], SIZES[:4], "server", peer,
                   "stats after session 5 ended")
    end_clients(cs[:4])
    if not k.wait_until(lambda p: p.stderr.count(" end=closed") == 5, 20):
        raise Fail("not every session closed\n" + k.describe())
    doc = stats_doc(xdg, pid)
    if doc["sessions"] or "sessions: none established\n" not in run_ok(xdg, "stats", pid):
        raise Fail("sessions left after all ended: %r" % doc)
    stop(k, "ktlsctl listen --forward", xdg)


@suite.case("keyupdate PID --session 2 --request: that client, and only that one, sees "
            "the peer update its keys", when=REKEY)
def _keyupdate():
    xdg, cxdg = new_xdg("s"), new_xdg("c")
    k, port = forward_server(xdg)
    cs = clients(port, cxdg, SIZES[:3])
    pid = k.pid
    p, rc = run(xdg, "keyupdate", pid, "--session", 2, "--request")
    if rc != 0 or p.stderr != ("ktlsctl: session %d #2 updated its send keys and asked the "
                               "peer to update\n" % pid):
        raise Fail("keyupdate --session 2 --request: exit %s\n%s" % (rc, p.describe()))
    said = "ktlsctl: peer updated its keys and asked us to update ours\n"
    if not cs[1].wait_err(re.escape(said), 20):
        raise Fail("client 2 did not see the KeyUpdate\n" + cs[1].describe())
    # A KeyUpdate sent to the others would come before this echo.
    for c, n in zip(cs, SIZES):
        echoed(c, b"after\n", n)
    for c in (cs[0], cs[2]):
        if "peer updated its keys" in c.stderr:
            raise Fail("%s saw a KeyUpdate meant for session 2\n%s" % (c.name, c.describe()))
    s = [x for x in stats_doc(xdg, pid)["sessions"] if x["session"] == 2][0]
    if s["tx"]["key_updates"] != 1 or s["rx"]["key_updates"] != 1:
        raise Fail("session 2's key updates: %r" % s)
    end_clients(cs)
    stop(k, "ktlsctl listen --forward", xdg)


@suite.case("connect --accept: its sessions (TLS client side) are listed with their ids "
            "and counters; so are the --echo -k server's")
def _accept():
    axdg, sxdg = new_xdg("a"), new_xdg("s")
    cert, key = certs().srv_ec
    srv, sport = ktlsctl_listen("--cert", cert, "--key", key, "--echo", "-k", *ARGS,
                                extra_env=env(sxdg))
    k = ktlsctl("connect", "localhost:%d" % sport, "--cafile", certs().ca, "--accept",
                "127.0.0.1:0", *ARGS, stdin=None, extra_env=env(axdg))
    m = k.wait_err(r"ktlsctl: listening on 127\.0\.0\.1:(\d+) for plain TCP clients", 15)
    if not m:
        raise Fail("connect --accept did not say where it listens\n" + k.describe())
    plain = []
    for n in ACCEPT_SIZES:
        s = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=20)
        data = random_bytes(n)
        s.sendall(data)
        got = b""
        while len(got) < n:
            d = s.recv(65536)
            if not d:
                raise Fail("the plain client's connection ended early")
            got += d
        if got != data:
            raise Fail("the echo through --accept differs")
        plain.append(s)
    check_sessions(stats_doc(axdg, k.pid)["sessions"], ACCEPT_SIZES, "client",
                   r"127\.0\.0\.1:%d" % sport, "stats of connect --accept")
    check_sessions(stats_doc(sxdg, srv.pid)["sessions"], ACCEPT_SIZES, "server",
                   r"127\.0\.0\.1:\d+", "stats of listen --echo -k")
    for s in plain:
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        s.close()
    if not k.wait_until(lambda p: p.stderr.count(" end=closed") == 2, 20):
        raise Fail("the --accept sessions did not close\n" + k.describe())
    stop(k, "ktlsctl connect --accept", axdg)
    if not srv.wait_until(lambda p: p.stderr.count(" end=closed") == 2, 20):
        raise Fail("the --echo -k sessions did not close\n" + srv.describe())
    stop(srv, "ktlsctl listen --echo -k", sxdg)


@suite.case("--session to a single session: one exact line, exit 3; without it, as before")
def _single():
    xdg, cxdg = new_xdg("s"), new_xdg("c")
    cert, key = certs().srv_ec
    srv, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *ARGS, *EOF_CLOSE,
                               extra_env=env(xdg), stdin=None)
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *ARGS, *EOF_CLOSE,
                extra_env=env(cxdg))
    echoed(c, b"hello\n")
    if not srv.wait_until(lambda p: os.path.exists(sock_path(xdg, p.pid)), 20):
        raise Fail("the session's control socket did not appear\n" + srv.describe())
    line = ("ktlsctl: process %d is a single session, not a serving process: give no "
            "--session" % srv.pid)
    run_fails(xdg, 3, line, "keyupdate", srv.pid, "--session", 1)
    run_fails(xdg, 3, line, "tickets", srv.pid, "--session", 1)
    t = json.loads(run_ok(xdg, "tickets", srv.pid, "--json"))
    if t != {"sessions": [{"count": 0, "tickets": []}]}:
        raise Fail("tickets --json: %r" % t)
    c.close_stdin()
    check_exit(c, 0, 20, "client")
    check_exit(srv, 0, 20, "ktlsctl listen --echo")


if __name__ == "__main__":
    sys.exit(suite.main())
