#!/usr/bin/env python3
"""`ktlsctl selftest`: loopback connect/listen pairs for TLS 1.2 and 1.3 x the
four ciphers on the best record channel available.  It must exit 0, print
one line per case naming the channel, and a summary "N passed, N failed";
--json says the same with the documented keys."""

import json
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.channel import kernel_has_ktls_ulp  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import check_no_sanitizer, ktlsctl  # noqa: E402
from ktlsctl_test.peers import CIPHERS  # noqa: E402

suite = Suite("test_selftest", case_timeout=180)
CHANNEL = r"(user-?space|userspace|soft(ware)?|kernel|kTLS)"


def run_selftest(*args, **kw):
    k = ktlsctl("selftest", *args, stdin=None, **kw)
    rc = k.wait(150)
    check_no_sanitizer(k)
    return k, rc


def check_report(k, rc):
    out = k.stdout.decode("utf-8", "replace")
    both = out + "\n" + k.stderr
    if rc != 0:
        raise Fail("exit status %s, expected 0\n    stdout:\n%s\n%s"
                   % (rc, "".join("      | %s\n" % l for l in out.splitlines()), k.describe()))
    m = re.search(r"^\s*(\d+) passed, (\d+) failed", out, re.M)
    if not m:
        where = "on stderr" if re.search(r"\d+ passed, \d+ failed", k.stderr) else "anywhere"
        raise Fail("no summary line 'N passed, N failed' on stdout (found %s)\n%s" % (where, k.describe()))
    passed, failed = int(m.group(1)), int(m.group(2))
    if failed != 0 or passed != 2 * len(CIPHERS):
        raise Fail("summary says %d passed, %d failed; expected %d passed, 0 failed"
                   % (passed, failed, 2 * len(CIPHERS)))
    if "passed" not in out:
        raise Fail("stdout does not say 'passed'")
    # one line per case, each naming version, cipher and channel
    for v in ("1.2", "1.3"):
        for c in CIPHERS:
            rx = re.compile(r"^.*TLS ?%s\b.*\b%s\b.*$" % (re.escape(v), re.escape(c)), re.M | re.I)
            lines = rx.findall(both)
            if not lines:
                raise Fail("no line for TLS %s %s in the output:\n%s" % (v, c, both))
            if not any(re.search(CHANNEL, l, re.I) for l in lines):
                raise Fail("the line for TLS %s %s does not name the channel: %r" % (v, c, lines[0]))
    # without the tls ULP the channel can only be the user-space one
    if not kernel_has_ktls_ulp():
        if not re.search(r"user-?space|userspace|soft", both, re.I):
            raise Fail("this kernel has no kTLS, but the output does not say the user-space "
                       "channel was used:\n%s" % both)
        for line in both.splitlines():
            if re.search(r"\bTLS ?1\.[23]\b", line) and re.search(r"\bkernel\b", line, re.I) \
                    and not re.search(r"user-?space|userspace|soft", line, re.I):
                raise Fail("a case claims the kernel channel on a kernel without kTLS: %r" % line)
    return out


@suite.case("selftest exits 0, prints 'passed' and names the channel")
def _plain():
    k, rc = run_selftest()
    check_report(k, rc)


CASE_LINE = re.compile(r"^  (TLS1\.[23])\s+(\S+)\s+(\S+)\s+(ok|FAIL)\s+(\d+\.\d{3})s  (.+)$")


@suite.case("selftest --json: the documented keys, and the same cases and summary as the text")
def _json():
    k, rc = run_selftest("--json")
    out = k.stdout.decode("utf-8", "replace")
    if rc != 0:
        raise Fail("selftest --json: exit status %s, expected 0\n%s" % (rc, k.describe()))
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise Fail("selftest --json: stdout is not one JSON document (%s): %r" % (e, out[:2000]))
    problems = []
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list) or len(cases) != 2 * len(CIPHERS):
        raise Fail("selftest --json: \"cases\" is not a list of %d cases: %r" % (2 * len(CIPHERS), doc))
    for i, x in enumerate(cases):
        types = {"version": str, "cipher": str, "channel": str, "ok": bool, "seconds": float,
                 "detail": str}
        if not isinstance(x, dict) or set(x) != set(types) \
                or any(type(x[key]) is not t for key, t in types.items()):
            problems.append("case %d: %r, expected exactly the keys and types %r" % (i, x, types))
    # Seconds: with 3 decimals, as the text shows them.
    if len(re.findall(r'"seconds":\d+\.\d{3}[,}]', out)) != len(cases):
        problems.append("seconds are not all written with 3 decimals: %s" % out)
    if doc.get("passed") != len(cases) or doc.get("failed") != 0 \
            or not isinstance(doc.get("kernel_tls"), bool) or not isinstance(doc.get("channel"), str):
        problems.append("summary keys: %r" % {key: doc.get(key) for key in
                                                ("kernel_tls", "passed", "failed", "channel")})
    if ("kernel_tls_unavailable" in doc) == doc.get("kernel_tls"):
        problems.append("kernel_tls %r with kernel_tls_unavailable %r: the reason must be there "
                        "exactly when the kernel was not used" % (doc.get("kernel_tls"),
                                                                 doc.get("kernel_tls_unavailable")))
    # The text report of a second run: the same cases, in the same order.
    t, rc = run_selftest()
    text = check_report(t, rc)
    rows = [m.groups() for m in map(CASE_LINE.match, text.splitlines()) if m]
    want = [(x.get("version"), x.get("cipher"), x.get("channel"), "ok" if x.get("ok") else "FAIL",
             x.get("detail")) for x in cases]
    if [r[:4] + r[5:] for r in rows] != want:
        problems.append("the text's case lines %r differ from the JSON's cases %r" % (rows, want))
    summary = "%d passed, %d failed (record channel: %s)" % (doc.get("passed", -1),
                                                           doc.get("failed", -1), doc.get("channel"))
    if summary not in text.splitlines():
        problems.append("the text has no line %r:\n%s" % (summary, text))
    if problems:
        raise Fail("\n".join(problems))


@suite.case("selftest -v exits 0 with the same report")
def _verbose():
    k, rc = run_selftest("-v")
    check_report(k, rc)


@suite.case("selftest --verbose")
def _verbose_long():
    k, rc = run_selftest("--verbose")
    check_report(k, rc)


@suite.case("selftest -q exits 0, still prints the result")
def _quiet():
    k, rc = run_selftest("-q")
    check_report(k, rc)


@suite.case("selftest --quiet")
def _quiet_long():
    k, rc = run_selftest("--quiet")
    check_report(k, rc)


@suite.case("selftest twice in a row (no leftover state)")
def _twice():
    for _ in range(2):
        k, rc = run_selftest()
        check_report(k, rc)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@suite.case("selftest leaves no child process behind")
def _no_orphans():
    k, rc = run_selftest()
    check_report(k, rc)
    deadline = time.monotonic() + 2
    while group_alive(k.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_alive(k.pid):
        raise Fail("processes of selftest's process group are still running after it exited")


@suite.case("selftest stops on SIGTERM at any point (10 tries) -> 143 or 0, no hang, no orphan")
def _sigterm():
    for i, delay in enumerate([0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.09, 0.12]):
        k = ktlsctl("selftest", stdin=None)
        time.sleep(delay)
        k.signal(signal.SIGTERM)
        try:
            rc = k.wait(10)
        except Fail:
            raise Fail("try %d (SIGTERM after %.3fs): selftest did not exit within 10s\n%s"
                       % (i + 1, delay, k.describe()))
        check_no_sanitizer(k)
        # -15: killed before its handler was installed, as good as 143
        if rc not in (143, -signal.SIGTERM, 0):
            raise Fail("try %d (SIGTERM after %.3fs): exit status %s, expected 143 (or 0 if "
                       "it had finished)\n%s" % (i + 1, delay, rc, k.describe()))
        deadline = time.monotonic() + 2
        while group_alive(k.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(k.pid):
            raise Fail("try %d (SIGTERM after %.3fs): a selftest child survived the parent"
                       % (i + 1, delay))


@suite.case("selftest with an extra argument -> 2")
def _extra_arg():
    k, rc = run_selftest("extra")
    if rc != 2 or not k.stderr.startswith("ktlsctl: "):
        raise Fail("expected exit 2 and a 'ktlsctl: ' message\n%s" % k.describe())


@suite.case("selftest with an unknown option -> 2")
def _bad_opt():
    k, rc = run_selftest("--bogus-option")
    if rc != 2 or "--bogus-option" not in k.stderr:
        raise Fail("expected exit 2 and a message naming the option\n%s" % k.describe())


if __name__ == "__main__":
    sys.exit(suite.main())
