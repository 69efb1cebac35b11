"""The test runner: a file builds a Suite, registers cases with
@suite.case(name) or suite.add(name, fn), and ends with
sys.exit(suite.main()).

  * one output line per case: "PASS name (1.23s)", "FAIL name (1.23s)"
    followed by indented details, or "SKIP name: reason (1.23s)"; notes
    (note()) indented under it; a last line "N passed, N failed, N skipped".
    Exit 0 / 1 (a file that cannot run at all exits 77, automake's SKIP,
    saying why on stdout).
  * a per-case watchdog kills whatever a case left running; a hang is a FAIL.
  * a case that only makes sense on some channels or kernels says so when it
    is registered (when=channel.KERNEL_ONLY, channel.REKEY, ...): elsewhere it
    is not run, and the header line counts it, by reason.

Command-line options of every test file:
  -k SUBSTRING   run only the cases whose name contains SUBSTRING (repeatable)
  -l             list the case names and exit
  -x             keep the temporary directory (its path is printed)
  --peers-only   (test_peers.py) run only the peer-versus-peer sanity cases,
                 which need no ktlsctl binary
"""

import atexit
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

from . import channel, procs, settings
from .certs import Certs, shared_dir
from .settings import scaled
from .verdicts import Fail, Skip

_notes = []


def note(text):
    """A figure worth reporting (a timing, a count): printed under the
    case's result line, never asserted."""
    _notes.append(text)


class Suite:
    def __init__(self, title, case_timeout=180):
        self.title = title
        self.cases = []
        self.case_timeout = case_timeout
        self.tmp = None
        self.keep_tmp = False
        self._certs = None

    def add(self, name, fn, timeout=None, group="main", when=None):
        """when: a channel.When, the channels and kernels the case is for."""
        self.cases.append((name, fn, timeout or self.case_timeout, group, when))

    def case(self, name, timeout=None, group="main", when=None):
        def deco(fn):
            self.add(name, fn, timeout, group, when)
            return fn
        return deco

    @property
    def certs(self):
        if self._certs is None:
            self._certs = Certs(shared_dir() or os.path.join(self.tmpdir(), "certs"))
        return self._certs

    def tmpdir(self):
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="ktlsctl-it-")
            if not self.keep_tmp:
                atexit.register(shutil.rmtree, self.tmp, True)
        return self.tmp

    def main(self, argv=None, groups=("main",)):
        argv = list(sys.argv[1:] if argv is None else argv)
        only = []
        listing = False
        while argv:
            a = argv.pop(0)
            if a == "-k" and argv:
                only.append(argv.pop(0))
            elif a == "-l":
                listing = True
            elif a == "-x":
                self.keep_tmp = True
            elif a == "--peers-only":
                groups = ("sanity",)
            else:
                sys.stderr.write("unknown argument %r (use -k SUBSTRING, -l, -x, --peers-only)\n" % a)
                return 2
        cases, elsewhere = [], {}
        for c in self.cases:
            if c[3] not in groups or (only and not any(o in c[0] for o in only)):
                continue
            if c[4] is not None and not c[4].holds():
                elsewhere[c[4].what] = elsewhere.get(c[4].what, 0) + 1
            else:
                cases.append(c)
        if listing:
            for c in cases:
                print(c[0])
            return 0
        need_ktlsctl = "main" in groups
        print("== %s: %d case(s) on the %s channel; ktlsctl = %s%s" % (
            self.title, len(cases), channel.CHANNEL, settings.KTLSCTL,
            " (valgrind; timeouts x%g)" % settings.TIMEOUT_SCALE if settings.VALGRIND else ""))
        if elsewhere:
            print("   not run here: " + "; ".join("%d case(s) for %s" % (n, w)
                                                 for w, n in sorted(elsewhere.items())))
        if need_ktlsctl and not os.access(settings.KTLSCTL, os.X_OK):
            print("*** ktlsctl binary not found or not executable at %s (build it first: make)"
                  % settings.KTLSCTL)
        if self.keep_tmp:
            print("   temporary directory: %s" % self.tmpdir())
        sys.stdout.flush()
        passed = failed = skipped = 0
        failures = []
        t_all = time.monotonic()
        for name, fn, timeout, _g, _w in cases:
            status, detail, dt = self._run_case(fn, timeout, need_ktlsctl)
            notes = ["    note: " + n for n in _notes]
            del _notes[:]
            if status == "PASS":
                passed += 1
                print("PASS %s (%.2fs)" % (name, dt))
            elif status == "SKIP":
                skipped += 1
                print("SKIP %s: %s (%.2fs)" % (name, detail, dt))
            else:
                failed += 1
                failures.append(name)
                print("FAIL %s (%.2fs)" % (name, dt))
                for line in detail.rstrip("\n").splitlines():
                    print("    " + line if not line.startswith("    ") else line)
            for n in notes:
                print(n)
            sys.stdout.flush()
        procs.kill_all()
        if failures:
            print("-- failed cases:")
            for f in failures:
                print("   " + f)
        print("-- %s took %.1fs" % (self.title, time.monotonic() - t_all))
        print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
        sys.stdout.flush()
        return 1 if failed else 0

    def _run_case(self, fn, timeout, need_ktlsctl):
        """(status, detail, seconds) of one case."""
        case_procs = procs.begin_case()
        fired = []

        def watchdog():
            fired.append(True)
            for p in list(case_procs):
                p.kill()
        timer = threading.Timer(scaled(timeout), watchdog)
        timer.daemon = True
        t0 = time.monotonic()
        status, detail = "PASS", ""
        timer.start()
        try:
            if need_ktlsctl and not os.access(settings.KTLSCTL, os.X_OK):
                raise Fail("ktlsctl binary not found at %s" % settings.KTLSCTL)
            fn()
        except Skip as e:
            status, detail = "SKIP", str(e)
        except Fail as e:
            status, detail = "FAIL", str(e)
        except Exception:
            status, detail = "FAIL", "harness exception:\n" + traceback.format_exc()
        finally:
            timer.cancel()
            procs.end_case()
        reports = settings.valgrind_reports()
        if reports:
            status = "FAIL"
            detail = ("valgrind reported errors in %d ktlsctl process(es):\n" % len(reports)
                      + "".join("  pid %s:\n%s" % (pid, "".join(
                          "      | " + l + "\n" for l in text.splitlines()[:80]))
                                for pid, text in reports)
                      + (detail and "\n" + detail))
        if fired and status == "PASS":
            status, detail = "FAIL", "case watchdog fired after %.0fs" % scaled(timeout)
        elif fired:
            detail = "case watchdog fired after %.0fs (processes killed)\n%s" % (scaled(timeout), detail)
        return status, detail, time.monotonic() - t0
