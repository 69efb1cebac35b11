#!/usr/bin/env python3
"""tests/vm/guest.py: what the VM tier runs INSIDE each guest (run-vm.sh
boots it): the integration suites themselves, on the kernel channel.

Runs as root, chrooted into the host's root file system (read-only),
scratch space in $TMPDIR, loopback up, the kTLS modules loaded.  ktlsctl
($KTLSCTL) and the peers come from the host.  Every suite file runs with
KTLSCTL_TEST_CHANNEL=kernel (--ktls require: a case cannot pass on the
user-space channel), so its cases expect what this kernel does: on a
kernel that cannot rekey, the key-update cases are their no-rekey
counterparts (ktlsctl_test.channel).

Each case of each suite is one line on the console, "VMRESULT PASS
suite: case (1.2s)" or "VMRESULT FAIL suite: case (1.2s)" followed by
"VMLOG" lines with its evidence; a case a suite skips is a FAIL here (the
tier must run everything it lists).  A suite that ends without its
"N passed, 0 failed, 0 skipped" line, or runs past its time, adds a FAIL of
its own.  The suites run a few at a time (the cases wait on peers and
timers more than they compute); test_kernel (it reads the kernel's global
counters), test_secrets (it scans ktlsctl's memory), test_serve and
test_workers (100 clients at once: hundreds of MiB of peers and CPU the
others' timings would feel) run alone.

Environment (run-vm.sh passes VM_ENV_X as X):
  KTLSCTL        the binary under test (required)
  EXPECT_REKEY   yes / no: whether this kernel must be able to rekey kTLS
                 (TLS 1.3 key update, Linux >= 6.14); unset: not checked
  ONLY           run only the suites whose file name contains this (or one
                 of several, '|' between them)
  SUITE_ONLY     in the suites, only the cases whose name contains this
                 (-k; several, '|' between them: a -k each)
  TIMEOUT_SCALE  multiplier for every timeout (default 1; slower builds)
  DATA_SCALE     KTLSCTL_TEST_DATA_SCALE for the suites (default 0.125: tens
                 of MiB cost minutes under emulation)
  PARALLEL       suites at a time (default 3)
  HOST_DEBUG=1   on a machine without kTLS, to debug this program: the
                 user-space channel instead (KTLSCTL_TEST_SOFT_NOREKEY=1
                 plays a kernel that cannot rekey)
"""

import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(HERE, "..", "integration")
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
CHANNEL = "user-space" if os.environ.get("HOST_DEBUG") == "1" else "kernel"
os.environ["KTLSCTL_TEST_CHANNEL"] = CHANNEL
from ktlsctl_test import channel, settings  # noqa: E402
from ktlsctl_test.certs import Certs  # noqa: E402

# (file, seconds it may take at TIMEOUT_SCALE 1, runs alone)
SUITES = [
    ("test_kernel.py", 600, True),
    ("test_secrets.py", 600, True),
    ("test_peers.py", 1800, False),
    ("test_eof.py", 1800, False),
    ("test_session.py", 1200, False),
    ("test_errors.py", 1200, False),
    ("test_hostile.py", 900, False),
    ("test_stats.py", 900, False),
    ("test_recordsize.py", 900, False),
    ("test_serve.py", 900, True),
    ("test_originate.py", 600, True),
    ("test_probe.py", 600, False),
    ("test_metrics.py", 900, True),
    ("test_serve_ctl.py", 600, False),
    ("test_starttls.py", 600, False),
    ("test_listen_sni.py", 600, False),
    ("test_workers.py", 900, True),
]

# (a SKIP line is "SKIP name: reason (1.23s)"; names have ": " in them too)
RESULT = re.compile(r"^(PASS|FAIL|SKIP) (.*) \((\d+\.\d\d)s\)$")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")

_out = threading.Lock()


def say(*lines):
    with _out:
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run_suite(name, limit, env, only):
    """Run one suite file, reporting each case as it ends."""
    argv = [sys.executable, os.path.join(INTEGRATION, name)]
    for k in only:
        argv += ["-k", k]
    title = name[:-3]
    log = os.path.join(os.environ.get("TMPDIR", "/tmp"), title + ".log")
    t0 = time.monotonic()
    with open(log, "w") as f:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
        timer = threading.Timer(limit, kill)
        timer.start()
        counts, case, detail = None, None, []

        def flush():
            if case:
                status, cname, secs = case
                say("VMRESULT %s %s: %s (%ss)" % ("PASS" if status == "PASS" else "FAIL", title,
                                                  cname, secs),
                    *["VMLOG %s: %s: %s" % (title, cname, l) for l in
                      (["skipped"] if status == "SKIP" else []) + detail[:60]])
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            f.write(line + "\n")
            m = RESULT.match(line)
            if m or line.startswith("-- ") or SUMMARY.match(line):
                flush()
                case, detail = None, []
            if m:
                case = m.groups()
            elif case and case[0] != "PASS" and line.startswith("    "):
                detail.append(line.strip())
            if SUMMARY.match(line):
                counts = tuple(int(x) for x in SUMMARY.match(line).groups())
        flush()
        rc = p.wait()
        timer.cancel()
    took = time.monotonic() - t0
    problem = None
    if killed:
        problem = "killed after %ds" % limit
    elif counts is None:
        problem = "ended (status %d) without its 'N passed, N failed, N skipped' line" % rc
    elif counts[0] == 0:
        problem = "ran no case"
    elif rc != 0 and counts[1] == 0:
        problem = "exited with status %d" % rc
    if problem:
        with open(log) as f:
            tail = f.read().splitlines()[-40:]
        say("VMRESULT FAIL %s (%.1fs)" % (title, took),
            "VMLOG %s: %s" % (title, problem), *["VMLOG %s: %s" % (title, l) for l in tail])
    say("VMINFO %s: %s in %.0fs" % (title, "%d passed, %d failed, %d skipped" % counts
                                   if counts else "no summary", took))


def load_line():
    """Memory left and the kernel's pressure stall figures (the share of
    the last 10 s that tasks waited for the CPU, for memory, for I/O)."""
    parts = []
    try:
        with open("/proc/meminfo") as f:
            mem = dict(l.split(":", 1) for l in f)
        parts.append("MemAvailable %d MiB" % (int(mem["MemAvailable"].split()[0]) // 1024))
    except (OSError, KeyError, ValueError):
        pass
    for res in ("cpu", "memory", "io"):
        try:
            with open("/proc/pressure/" + res) as f:
                for l in f:
                    kind, fields = l.split(None, 1)
                    avg10 = dict(x.split("=") for x in fields.split())["avg10"]
                    parts.append("%s %s %s%%" % (res, kind, avg10))
        except (OSError, KeyError, ValueError):
            pass
    return ", ".join(parts) or "no /proc/meminfo or /proc/pressure"


def monitor(every, stop):
    """A VMINFO line on the machine's load every `every` seconds: cases
    that fail together in a stall window show it here."""
    t0 = time.monotonic()
    while not stop.wait(every):
        say("VMINFO load at %.0fs: %s" % (time.monotonic() - t0, load_line()))


def main():
    kver = os.uname().release
    scale = float(os.environ.get("TIMEOUT_SCALE") or 1)
    rekey = "yes" if channel.can_rekey() else "no"
    version = subprocess.run([settings.KTLSCTL, "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT).stdout.decode().splitlines()[0]
    say("VMINFO suites on %s: %s, kernel rekey: %s" % (kver, version, rekey))
    env = dict(os.environ)
    certs = os.path.join(env.get("TMPDIR", "/tmp"), "certs")
    Certs(certs).all()                  # once: key generation is slow here
    env.update(KTLSCTL_TEST_CHANNEL=CHANNEL, KTLSCTL_TEST_CERTS=certs,
               KTLSCTL_TEST_TIMEOUT_SCALE=str(3 * scale),
               KTLSCTL_TEST_DATA_SCALE=env.get("DATA_SCALE") or "0.125",
               KTLSCTL_TEST_EXPECT_REKEY=env.get("EXPECT_REKEY", ""))
    only = [x for x in env.get("ONLY", "").split("|") if x]
    case_only = [x for x in env.get("SUITE_ONLY", "").split("|") if x]
    parallel = int(env.get("PARALLEL") or 3)
    t0 = time.monotonic()
    stop_monitor = threading.Event()
    threading.Thread(target=monitor, args=(30, stop_monitor), daemon=True).start()
    running = []
    for name, limit, alone in SUITES:
        if only and not any(o in name for o in only):
            continue
        while running and (alone or len(running) >= parallel):
            running = [t for t in running if t.is_alive()]
            if running and (alone or len(running) >= parallel):
                running[0].join(1)
        t = threading.Thread(target=run_suite, args=(name, limit * scale, env, case_only))
        t.start()
        if alone:
            t.join()
        else:
            running.append(t)
    for t in running:
        t.join()
    stop_monitor.set()
    say("VMINFO the suites took %.0fs (up to %d at a time)" % (time.monotonic() - t0, parallel))


if __name__ == "__main__":
    main()
