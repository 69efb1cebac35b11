#!/usr/bin/env python3
"""What only a kernel with kTLS can show: that the kernel record channel is
really the one in use, seen from outside ktlsctl (ss, /proc/net/tls_stat),
and ktlsctl's own views of the kernel (selftest, stats).  The VM tier runs
this file inside guests booted from stock Debian kernels
(KTLSCTL_TEST_CHANNEL=kernel); with the user-space channel it has nothing
to run.  Everything channel-independent is in the other files, which the
VM tier runs on the kernel channel too.

The checks of global counters (tls_stat) assume that nothing else uses
kTLS meanwhile: the VM tier runs this file alone.

  KTLSCTL_TEST_EXPECT_REKEY=yes|no   the kernel the tier booted should (not)
                                     be able to rekey (Linux 6.14): checked
"""

import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL_ARGS, KERNEL_ONLY, When, can_rekey, kernel_facts, tls_stat)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, ktlsctl, need_line, wait_line_count)
from ktlsctl_test.data import check_data, hex_lines  # noqa: E402
from ktlsctl_test.peers import (  # noqa: E402
    EOF_CLOSE, gnutls_priority, require_programs, start_gnutls_serv)

require_programs("gnutls-serv", "certtool", "ss")

suite = Suite("test_kernel", case_timeout=120)
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE
EXPECT_REKEY = os.environ.get("KTLSCTL_TEST_EXPECT_REKEY", "")
KERNEL_REKEY = When("the kernel channel on a kernel that can rekey",
                    lambda: KERNEL_ONLY.holds() and can_rekey())


def certs():
    return suite.certs


def run(*argv, timeout=60):
    """Run a command to its end: (exit status, stdout, stderr)."""
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=scaled(timeout))
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def stats_json(*args):
    rc, out, err = run(KTLSCTL, "stats", "--json", *args)
    if rc != 0:
        raise Fail("ktlsctl stats --json %s exited %d: %s" % (" ".join(map(str, args)), rc, err))
    return json.loads(out)


def session(version="1.3", cipher="AES-128-GCM"):
    """ktlsctl connect -v to gnutls-serv --echo, one line echoed, stdin
    still open: (ktlsctl, gnutls-serv's port)."""
    serv, port = start_gnutls_serv(*certs().srv_ec, priority=gnutls_priority(version, cipher))
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, "-v", *SESSION_ARGS,
                "--tls" + version, "--cipher", cipher, "--commands")
    line = b"hello through the kernel\n"
    k.send(line)
    if not k.wait_out(len(line), 30):
        raise Fail("no echo from gnutls-serv\n%s" % k.describe())
    if not re.search(r"^ktlsctl: connected to \S+: TLS%s \S+, kernel channel$" % re.escape(version),
                     k.stderr, re.M):
        raise Fail("ktlsctl -v did not report the kernel channel\n%s" % k.describe())
    return k, port


@suite.case("kernel rekey support is what this tier expects (KTLSCTL_TEST_EXPECT_REKEY)",
            when=When("a tier that says whether the kernel can rekey",
                      lambda: KERNEL_ONLY.holds() and EXPECT_REKEY in ("yes", "no")))
def _rekey_expected():
    got = "yes" if can_rekey() else "no"
    if got != EXPECT_REKEY:
        raise Fail("ktlsctl stats --json says kernel.rekey is %r (%s): this tier expects %s for %s"
                   % (kernel_facts()["rekey"].get("state"), kernel_facts()["rekey"].get("reason"),
                      EXPECT_REKEY, os.uname().release))


@suite.case("kernel channel in use: ss shows tcp-ulp-tls (TLS 1.3, aes-gcm-128, sw both ways) on "
            "ktlsctl's socket and none on gnutls-serv's; tls_stat counts the session; stats --json "
            "says kernel, 1 record sent", when=KERNEL_ONLY)
def _kernel_channel():
    tx0, rx0 = tls_stat().get("TlsTxSw", 0), tls_stat().get("TlsRxSw", 0)
    k, port = session()
    # While the session is up: the socket's ULP is "tls" (sock_diag, what
    # getsockopt(TCP_ULP) reads), owned by ktlsctl, and the gauges count it.
    _, ours, _ = run("ss", "-Htnpie", "state", "established", "dport = :%d" % port)
    _, theirs, _ = run("ss", "-Htnpie", "state", "established", "sport = :%d" % port)
    problems = []
    for want, what in (('"ktlsctl"', "no ktlsctl socket to :%d" % port),
                       ("tcp-ulp-tls", "ktlsctl's socket has no tls ULP"),
                       ("version: 1.3 cipher: aes-gcm-128", "not TLS 1.3 AES-GCM-128"),
                       ("rxconf: sw txconf: sw", "not software kTLS both ways")):
        if want not in ours:
            problems.append("ss -tie: %s: %r" % (what, ours))
    # Control: gnutls-serv's own socket (user-space TLS) has no ULP, so the
    # check above can tell the difference.
    if '"gnutls-serv"' not in theirs or "tcp-ulp-tls" in theirs:
        problems.append("ss -tie on gnutls-serv's side (expected its socket, without a tls ULP): %r"
                        % theirs)
    st = tls_stat()
    if not (st.get("TlsCurrTxSw", 0) >= 1 and st.get("TlsCurrRxSw", 0) >= 1):
        problems.append("TlsCurrTxSw/TlsCurrRxSw do not count the session: %r" % st)
    # ktlsctl's own view, through its control socket: the kernel channel, and
    # the record count the kernel keeps (getsockopt TLS_TX rec_seq).
    s = [x for x in stats_json(k.pid)["sessions"] if x.get("pid") == k.pid]
    if not s or s[0].get("channel") != "kernel" or s[0].get("tx", {}).get("records_key") != 1:
        problems.append("stats %d --json: expected channel kernel and tx.records_key 1: %s"
                        % (k.pid, json.dumps(s)))
    k.close_stdin()
    check_exit(k, 0, 30, "ktlsctl connect")
    check_data("ktlsctl stdout", k.stdout, b"hello through the kernel\n")
    st = tls_stat()
    if not (st.get("TlsTxSw", 0) > tx0 and st.get("TlsRxSw", 0) > rx0):
        problems.append("TlsTxSw/TlsRxSw did not grow (%d -> %d, %d -> %d)"
                        % (tx0, st.get("TlsTxSw", 0), rx0, st.get("TlsRxSw", 0)))
    if problems:
        raise Fail("\n".join(problems) + "\n" + k.describe())


@suite.case("the kernel counts ktlsctl's key updates: /keyupdate -> TlsTxRekeyOk; /keyupdate "
            "request and the peer's answer -> TlsTxRekeyOk +1, TlsRxRekeyOk +1", when=KERNEL_REKEY)
def _rekey_counters():
    names = ("TlsTxRekeyOk", "TlsRxRekeyOk", "TlsTxRekeyError", "TlsRxRekeyError")

    def delta(a, b):
        return {n: b.get(n, 0) - a.get(n, 0) for n in names}
    k, port = session()
    t0 = tls_stat()
    # hex text: with --commands a data line that starts with '/' (random
    # bytes have one in about 8 such cases) would be taken for a command
    a, b = hex_lines(4096), hex_lines(4096)
    k.send(b"/keyupdate\n" + a)
    if not k.wait_out(len(b"hello through the kernel\n" + a), 30) \
            or not wait_line_count(k, "updated our send keys", 1, 10):
        raise Fail("no echo after /keyupdate\n%s" % k.describe())
    t1 = tls_stat()
    k.send(b"/keyupdate request\n" + b)
    if not k.wait_out(len(b"hello through the kernel\n" + a + b), 30) \
            or not wait_line_count(k, "peer updated its keys", 1, 20):
        raise Fail("no echo after /keyupdate request, or no answering KeyUpdate\n%s" % k.describe())
    t2 = tls_stat()
    k.close_stdin()
    check_exit(k, 0, 30, "ktlsctl connect")
    need_line(k, "updated our send keys and asked the peer to update")
    # (before its first update ktlsctl asks the kernel whether it can rekey,
    # on a fresh socket pair: one more TX rekey in the first count)
    d1, d2 = delta(t0, t1), delta(t1, t2)
    if not (1 <= d1["TlsTxRekeyOk"] <= 2 and d1["TlsRxRekeyOk"] == 0) \
            or d2 != {"TlsTxRekeyOk": 1, "TlsRxRekeyOk": 1, "TlsTxRekeyError": 0,
                      "TlsRxRekeyError": 0} or d1["TlsTxRekeyError"] or d1["TlsRxRekeyError"]:
        raise Fail("tls_stat changed by %r at /keyupdate (expected TX +1, or +2 with the probe) "
                   "and by %r at /keyupdate request and the answer (expected TX +1, RX +1, no "
                   "errors)" % (d1, d2))


@suite.case("ktlsctl selftest --require-kernel: every case on the kernel channel, on a kernel that "
            "cannot rekey as well", when=KERNEL_ONLY)
def _selftest():
    k = ktlsctl("selftest", "--require-kernel", stdin=None)
    check_exit(k, 0, 100, "ktlsctl selftest --require-kernel")
    if "passed, 0 failed (record channel: kernel)" not in k.stdout.decode("utf-8", "replace"):
        raise Fail("selftest did not run every case on the kernel:\n%s%s"
                   % (k.stdout.decode("utf-8", "replace"), k.describe()))


@suite.case("ktlsctl stats lists ktlsctl's kTLS socket (sock_diag): ULP, version, cipher, sw both "
            "ways, owner, in JSON and in text", when=KERNEL_ONLY)
def _stats_sockets():
    k, port = session()
    doc = stats_json()
    rc, text, err = run(KTLSCTL, "stats")
    k.close_stdin()
    check_exit(k, 0, 30, "ktlsctl connect")
    if rc != 0:
        raise Fail("ktlsctl stats exited %d: %s" % (rc, err))
    comm = os.path.basename(KTLSCTL)[:15]
    socks = [s for s in doc["sockets"]["list"]
             if s.get("pid") == k.pid and s.get("remote_port") == port]
    if not socks:
        raise Fail("no kTLS socket of pid %d to port %d in %s" % (k.pid, port, doc["sockets"]))
    want = {"ulp": "tls", "version": "TLS1.3", "cipher": "aes-gcm-128", "tx": "sw", "rx": "sw",
            "comm": comm}
    bad = {f: socks[0].get(f) for f, v in want.items() if socks[0].get(f) != v}
    if bad:
        raise Fail("socket fields differ: %s (want %s)" % (bad, want))
    if doc["kernel"]["available"]["state"] != "yes":
        raise Fail("kernel kTLS not available: %s" % doc["kernel"]["available"])
    if "pid %d (%s)" % (k.pid, comm) not in text:
        raise Fail("ktlsctl stats (text) does not show the kTLS socket of pid %d:\n%s" % (k.pid, text))


if __name__ == "__main__":
    sys.exit(suite.main())
