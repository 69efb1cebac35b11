#!/usr/bin/env python3
"""Serving many in several processes: `ktlsctl listen --workers N` (issue 13).

Two workers share the listener.  Which worker takes a client is the
kernel's choice; where a case must reach both, it gives each worker one
session (--max-conns 2 is shared out as 1 and 1) and holds it open, so
that the next client can only go to the other.  Worker k numbers its
sessions k, k+2, ...: the parity of an id says which worker ran it.
Clients are real (ktlsctl connect, gnutls-cli, openssl s_client, Python's
ssl); the backend a plain TCP echo server of the test library; every wait
is for an event.
"""

import json
import os
import re
import signal
import socket
import ssl
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import human, scaled, sized  # noqa: E402
from ktlsctl_test.channel import CHANNEL, CHANNEL_ARGS, can_rekey  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, ktlsctl, ktlsctl_listen, ktlsctl_run, wait_for)
from ktlsctl_test.data import sha  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, require_programs)
from ktlsctl_test.pytls import py_client_ctx  # noqa: E402
from ktlsctl_test.backends import backend  # noqa: E402
from ktlsctl_test.serving import (  # noqa: E402
    log_lines, mixed_echo_clients, sigterm_under_load, wait_sessions)
from ktlsctl_test.certs import fingerprint, put_pair, reload_files, reloaded_line  # noqa: E402

require_programs("certtool", "gnutls-cli", "openssl")

suite = Suite("test_workers", case_timeout=240)
ARGS = CHANNEL_ARGS
PATH = "splice" if CHANNEL == "kernel" else "copy"
MANY_SIZE = sized(2 << 20)         # each of the 100 clients
_n = [0]


def certs():
    return suite.certs


def new_xdg():
    """A runtime directory of the case's own (short: socket paths)."""
    _n[0] += 1
    d = os.path.join(suite.tmpdir(), "x%d" % _n[0])
    os.mkdir(d)
    return d


def serve(xdg, *args, pair=None):
    cert, key = pair or certs().srv_ec
    return ktlsctl_listen("--cert", cert, "--key", key, *ARGS, "--workers", "2", *args,
                          extra_env={"XDG_RUNTIME_DIR": xdg})


def run(xdg, *args):
    return ktlsctl_run(*args, extra_env={"XDG_RUNTIME_DIR": xdg})


def stats(xdg, *args):
    p, rc = run(xdg, "stats", "--json", *args)
    if rc != 0:
        raise Fail("`%s`: exit %s\n%s" % (p.name, rc, p.describe()))
    return json.loads(p.stdout.decode())


def workers_of(k):
    """The worker pids, in the order they were started."""
    path = "/proc/%d/task/%d/children" % (k.pid, k.pid)
    if not wait_for(lambda: len(open(path).read().split()) == 2, scaled(10)):
        raise Fail("not 2 workers under %d: %r" % (k.pid, open(path).read()))
    return [int(x) for x in open(path).read().split()]


def ids(lines):
    return [int(re.match(r"ktlsctl: session (\d+) ", ln).group(1)) for ln in lines]


def stop(k, what, status=143):
    k.signal(signal.SIGTERM)
    check_exit(k, status, 30, what + " after SIGTERM")


def both_workers(lines, what, least=1):
    """Ids of both parities: each worker ran at least `least` of these
    sessions."""
    odd = sum(i % 2 for i in ids(lines))
    per = (odd, len(lines) - odd)
    if min(per) < least:
        raise Fail("%s: worker 1 ran %d sessions, worker 2 %d; each should run at least %d "
                   "(ids %s)" % (what, per[0], per[1], least, ids(lines)))
    print("%s: worker 1 ran %d sessions, worker 2 %d" % (what, per[0], per[1]))


def py_ctx():
    return py_client_ctx(certs().ca)


def tls_client(port, **kw):
    return py_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=scaled(20)),
                                server_hostname="localhost", **kw)


def echo_once(t, data):
    t.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        d = t.recv(65536)
        if not d:
            break
        got.extend(d)
    if bytes(got) != data:
        raise Fail("%d of %d bytes came back, or different ones" % (len(got), len(data)))


def held_pair(port, **kw):
    """Two clients, one on each worker (--max-conns 2: one session each),
    both echoing: the second can only be taken by the worker the first
    left free."""
    pair = []
    for _ in range(2):
        t = tls_client(port, **kw)
        echo_once(t, b"held")
        pair.append(t)
    return pair


def close_all(socks):
    for t in socks:
        t.unwrap()
        t.close()


# ------------------------------------------------------------------ cases

@suite.case("--workers 2, 100 clients at once (ktlsctl, gnutls-cli, s_client, python), %s "
            "each through --forward: every hash equal, 100 closed lines with unique ids, at "
            "least 30 from each worker" % human(MANY_SIZE), timeout=400)
def _many():
    be, bport = backend()
    k, port = serve(new_xdg(), "--forward", "127.0.0.1:%d" % bport)
    n, size = 100, MANY_SIZE
    bad, _ = mixed_echo_clients(port, n, size, certs().ca, suite.tmpdir(), ARGS)
    if bad:
        raise Fail("%d of %d clients failed:\n%s" % (len(bad), n, "\n".join(map(str, bad[:5]))))
    lines = wait_sessions(k, n)
    closed = [ln for ln in lines if ln.endswith(" rx=%d tx=%d duration=%s end=closed" % (
        size, size, ln.split("duration=")[-1].split()[0])) and " path=%s " % PATH in ln]
    if len(closed) != n:
        raise Fail("%d of %d session lines say path=%s, closed with %d bytes each way:\n%s"
                   % (len(closed), n, PATH, size,
                      "\n".join(ln for ln in lines if ln not in closed)[:3000]))
    if len(set(ids(lines))) != n:
        raise Fail("session ids repeat: %s" % sorted(ids(lines)))
    # Clients are dealt round the workers (each re-registers on the shared
    # listener after taking one), not all to whichever waits first.
    both_workers(lines, "100 clients", least=30)
    other = [ln for ln in k.stderr.splitlines()
             if not re.match(r"ktlsctl: (listening on |session \d+ )", ln)]
    if other:
        raise Fail("other lines on stderr (mixed lines?):\n" + "\n".join(other[:10]))
    stop(k, "ktlsctl listen --forward --workers 2")


def keyupdate(xdg, k, cs, sid):
    """keyupdate PID --session sid --request: that session's client, and
    only it, sees the KeyUpdate; stats counts it."""
    p, rc = run(xdg, "keyupdate", k.pid, "--session", sid, "--request")
    if rc != 0 or p.stderr != ("ktlsctl: session %d #%d updated its send keys and asked the "
                               "peer to update\n" % (k.pid, sid)):
        raise Fail("keyupdate --session %d: exit %s\n%s" % (sid, rc, p.describe()))
    s = stats(xdg, k.pid, "--session", sid)["sessions"][0]
    if s["session"] != sid or s["pid"] != k.pid or s["tx"]["key_updates"] != 1:
        raise Fail("stats --session %d after the key update: %r" % (sid, s))
    said = "ktlsctl: peer updated its keys and asked us to update ours"
    if not wait_for(lambda: sum(said in c.stderr for c in cs) == 1, scaled(20)):
        raise Fail("%d clients saw the KeyUpdate, not 1" % sum(said in c.stderr for c in cs))


@suite.case("stats PID lists both workers' sessions under the main pid, unique ids; "
            "keyupdate (where the channel can rekey) and tickets PID --session ID reach a "
            "session of the second worker")
def _control():
    xdg, cxdg = new_xdg(), new_xdg()
    k, port = serve(xdg, "--echo", "-k", "--max-conns", "4")
    cs = []
    for i in range(4):   # two per worker: each takes at most 2
        c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *ARGS,
                    *EOF_CLOSE, extra_env={"XDG_RUNTIME_DIR": cxdg}, name="client %d" % (i + 1))
        c.send(b"hello %d\n" % i)
        if not c.wait_until(lambda p, i=i: p.stdout == b"hello %d\n" % i, 20):
            raise Fail("no echo for client %d\n%s" % (i + 1, c.describe()))
        cs.append(c)
    doc = stats(xdg, k.pid)
    sess = doc["sessions"]
    got = [s["session"] for s in sess]
    if (len(sess) != 4 or got != sorted(got) or len(set(got)) != 4
            or {s["pid"] for s in sess} != {k.pid}):
        raise Fail("stats %d: %r" % (k.pid, doc))
    if sorted(i % 2 for i in got) != [0, 0, 1, 1]:
        raise Fail("not two sessions on each worker: ids %s" % got)
    # `ktlsctl stats` lists the main process only: the workers have no
    # socket of their own there.
    listed = {s["pid"] for s in stats(xdg)["sessions"]}
    if listed != {k.pid}:
        raise Fail("stats lists pids %s, not only %d (workers %s)" % (listed, k.pid,
                                                                      workers_of(k)))
    sid = max(i for i in got if i % 2 == 0)      # worker 2's
    p, rc = run(xdg, "tickets", k.pid, "--session", sid, "--json")
    if rc != 0:
        raise Fail("tickets --session %d: exit %s\n%s" % (sid, rc, p.describe()))
    if can_rekey():
        keyupdate(xdg, k, cs, sid)
    p, rc = run(xdg, "keyupdate", k.pid, "--session", 99)
    line = ("ktlsctl: process %d has no session 99 running (its sessions: %s)\n"
            % (k.pid, ", ".join(map(str, got))))
    if rc != 3 or p.stderr != line:
        raise Fail("keyupdate --session 99: exit %s, expected 3 and %r\n%s"
                   % (rc, line, p.describe()))
    for c in cs:
        c.close_stdin()
    for c in cs:
        check_exit(c, 0, 20, c.name)
    wait_sessions(k, 4)
    stop(k, "ktlsctl listen --echo -k --workers 2")
    left = os.listdir(os.path.join(xdg, "ktlsctl"))
    if left:
        raise Fail("control sockets left after the exit: %s" % left)


def resume_pair(port, tin, outs):
    """Two ktlsctl clients resuming from tin at once, each held until both
    are served: with --max-conns 2 they run on different workers."""
    cs = [ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *ARGS,
                  *EOF_CLOSE, "--session-in", tin, "--session-out", out, name="resume")
          for out in outs]
    for c in cs:
        c.send(b"x")
        if not c.wait_until(lambda p: p.stdout == b"x", 20):
            raise Fail("no echo\n" + c.describe())
    for c in cs:
        c.close_stdin()
    for c in cs:
        check_exit(c, 0, 20, "a resuming client")


@suite.case("tickets resume on either worker: 20 reconnects in pairs, one on each worker, "
            "every one resumed=yes")
def _resume():
    k, port = serve(new_xdg(), "--echo", "-k", "--max-conns", "2")
    d = suite.tmpdir()
    first = os.path.join(d, "t0")
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *ARGS, *EOF_CLOSE,
                "--session-out", first, stdin=b"x")
    check_exit(c, 0, 20, "the first client")
    tin = first
    for r in range(10):
        outs = [os.path.join(d, "t%d-%d" % (r, j)) for j in (1, 2)]
        resume_pair(port, tin, outs)
        tin = outs[r % 2]
    lines = wait_sessions(k, 21)
    resumed = [ln for ln in lines[1:] if " resumed=yes " in ln]
    if len(resumed) != 20:
        raise Fail("%d of 20 reconnects resumed:\n%s" % (len(resumed), "\n".join(lines)))
    both_workers(resumed, "resumed sessions")
    stop(k, "ktlsctl listen --echo -k --workers 2")


@suite.case("SIGTERM under load: every client of both workers gets close_notify after a "
            "whole prefix of its echo; 143 when all answer", timeout=120)
def _sigterm():
    be, bport = backend()
    k, port = serve(new_xdg(), "--forward", "127.0.0.1:%d" % bport, "--max-conns", "20")
    lines = sigterm_under_load(k, port, py_ctx(), 20, "ktlsctl listen --forward --workers 2")
    both_workers(lines, "20 clients")


@suite.case("SIGHUP: one reload line; the next clients get the new certificate on both "
            "workers, and a ticket issued after it resumes on both")
def _reload():
    a, b = certs().srv_ec, certs().srv_rsa
    cert, key = reload_files(suite.tmpdir(), a)
    k, port = serve(new_xdg(), "--echo", "-k", "--max-conns", "2", pair=(cert, key))
    pair = held_pair(port)
    if {sha(t.getpeercert(binary_form=True)) for t in pair} != {fingerprint(a[0])}:
        raise Fail("the first clients did not get certificate A")
    close_all(pair)
    wait_sessions(k, 2)
    put_pair(cert, key, b)
    line = reloaded_line(cert, key, b[0])
    k.signal(signal.SIGHUP)
    if not k.wait_until(lambda p: line in p.stderr, 20):
        raise Fail("no line %r after SIGHUP\n%s" % (line, k.describe()))
    # The workers switch once the main process has written the key: the
    # next pair proves it (one client on each).
    pair = held_pair(port)
    if {sha(t.getpeercert(binary_form=True)) for t in pair} != {fingerprint(b[0])}:
        raise Fail("a client after the reload did not get certificate B\n" + k.describe())
    close_all(pair)
    lines = wait_sessions(k, 4)
    both_workers(lines[2:], "the clients after the reload")
    d = suite.tmpdir()
    t0 = os.path.join(d, "after-reload")
    c = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *ARGS, *EOF_CLOSE,
                "--session-out", t0, stdin=b"x")
    check_exit(c, 0, 20, "a client after the reload")
    resume_pair(port, t0, [os.path.join(d, "r1"), os.path.join(d, "r2")])
    lines = wait_sessions(k, 7)
    if not all(" resumed=yes " in ln for ln in lines[5:]):
        raise Fail("tickets after the reload did not resume on both workers:\n"
                   + "\n".join(lines))
    both_workers(lines[5:], "the resumptions after the reload")
    if k.stderr.count("reloaded credentials from") != 1:
        raise Fail("not one reload line\n" + k.describe())
    other = [ln for ln in k.stderr.splitlines() if not re.match(
        r"ktlsctl: (listening on |session \d+ |reloaded credentials from )", ln)]
    if other:
        raise Fail("other lines on stderr:\n" + "\n".join(other))
    stop(k, "ktlsctl listen --echo -k --workers 2 after a reload")


@suite.case("a worker killed with SIGKILL: one exact line, the other drains its session "
            "(close_notify), exit 1, no control socket left")
def _killed():
    xdg = new_xdg()
    k, port = serve(xdg, "--echo", "-k", "--max-conns", "2")
    pair = held_pair(port, suppress_ragged_eofs=False)   # a cut is not an end
    w1, w2 = workers_of(k)
    os.kill(w2, signal.SIGKILL)
    line = ("ktlsctl: worker 2 (pid %d) was killed by SIGKILL while serving: stopping the "
            "other workers (their sessions drain), exit status 1\n" % w2)
    if not k.wait_until(lambda p: line in p.stderr, 20):
        raise Fail("no line %r\n%s" % (line, k.describe()))
    ends = []
    for t in pair:
        try:
            ends.append(t.recv(10) == b"" and "close_notify")
        except (ssl.SSLError, OSError) as e:
            ends.append("cut: %r" % e)
    for t in pair:
        try:
            t.unwrap()
        except (ssl.SSLError, OSError):
            pass
    check_exit(k, 1, 30, "ktlsctl listen --workers 2 after SIGKILL to a worker")
    # Worker 1's client gets close_notify; how worker 2's sees its
    # connection go (a FIN, or more) is the kernel's affair.
    if "close_notify" not in ends:
        raise Fail("the clients' ends: %s (no close_notify)" % ends)
    lines = log_lines(k)     # worker 1's session only
    if len(lines) != 1 or ids(lines)[0] % 2 != 1 or not lines[0].endswith(" end=closed"):
        raise Fail("the session lines: %s" % lines)
    if os.listdir(os.path.join(xdg, "ktlsctl")):
        raise Fail("control sockets left: %s" % os.listdir(os.path.join(xdg, "ktlsctl")))


@suite.case("--max-conns 3 is shared out (2 and 1): a fourth client waits, then is served "
            "when one ends; --max-conns below --workers is refused")
def _max_conns():
    xdg = new_xdg()
    k, port = serve(xdg, "--echo", "-k", "--max-conns", "3")
    held = [tls_client(port) for _ in range(3)]
    for t in held:
        echo_once(t, b"x")
    got = [s["session"] for s in stats(xdg, k.pid)["sessions"]]
    if sorted(i % 2 for i in got) != [0, 1, 1]:
        raise Fail("not 2 sessions on worker 1 and 1 on worker 2: ids %s" % got)
    raw = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
    fourth = py_ctx().wrap_socket(raw, server_hostname="localhost", do_handshake_on_connect=False)
    fourth.settimeout(scaled(1.5))
    try:
        fourth.do_handshake()
        raise Fail("a fourth client was served while 3 sessions were open (--max-conns 3)")
    except (socket.timeout, ssl.SSLError):
        pass
    held[0].unwrap()
    held[0].close()
    wait_sessions(k, 1)
    fourth.settimeout(scaled(20))
    fourth.do_handshake()
    echo_once(fourth, b"y")
    close_all(held[1:] + [fourth])
    wait_sessions(k, 4)
    stop(k, "ktlsctl listen --echo -k --workers 2 --max-conns 3")
    cert, key = certs().srv_ec
    p, rc = ktlsctl_run("listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--echo", "-k",
                        "--workers", "4", "--max-conns", "3")
    line = ("ktlsctl: --max-conns 3 is shared out among --workers 4: give each at least one "
            "session (see 'ktlsctl listen --help')\n")
    if rc != 2 or p.stderr != line:
        raise Fail("--workers 4 --max-conns 3: exit %s, expected 2 and %r\n%s"
                   % (rc, line, p.describe()))


if __name__ == "__main__":
    sys.exit(suite.main())
