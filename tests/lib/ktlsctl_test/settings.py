"""Where things are and the environment settings every tier reads.

  KTLSCTL                     the binary under test (default: the build
                              tree's ktlsctl)
  TOP_SRCDIR, TOP_BUILDDIR    the trees (automake sets them; default: the
                              checkout this library lives in)
  KTLSCTL_TEST_TIMEOUT_SCALE  multiplier for every timeout (slow machines,
                              valgrind, the VM)
  KTLSCTL_TEST_DATA_SCALE     multiplier for the bulk data sizes a case
                              moves (sized()); the VM tier uses less than 1
                              where the emulated CPU makes tens of MiB cost
                              minutes.  Only sizes that no assertion depends
                              on go through it.
  KTLSCTL_VALGRIND=1          every ktlsctl the tests start runs under
                              valgrind's memcheck (see below)

The channel under test is a setting too: channel.py.
"""

import atexit
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

LIB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))      # tests/lib
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.normpath(os.path.join(LIB, "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or TOP_SRCDIR
KTLSCTL = os.environ.get("KTLSCTL") or os.path.join(TOP_BUILDDIR, "ktlsctl")


def _number(name, default):
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        f = float(v)
    except ValueError:
        f = 0
    if f <= 0:
        sys.stderr.write("%s must be a number greater than 0, not %r\n" % (name, v))
        sys.exit(2)
    return f


# KTLSCTL_VALGRIND=1: every ktlsctl the tests start runs under valgrind's
# memcheck, through a wrapper script that KTLSCTL then names (so that
# tests which run KTLSCTL directly, through sh or in tmux, get it too; the
# wrapper execs valgrind, which keeps the PID).  Each process writes its
# report to VALGRIND_LOGS/vg.PID.log; after every case the runner fails the
# case on any non-empty report (memory errors, and definite or indirect
# leaks at exit), and such a process also exits 99.  Needs valgrind and a
# build without sanitizers (valgrind cannot run an ASan binary): without
# them every file fails at once, saying so.  Timeouts are scaled by
# VALGRIND_TIMEOUT_SCALE unless KTLSCTL_TEST_TIMEOUT_SCALE says otherwise.
VALGRIND = os.environ.get("KTLSCTL_VALGRIND") == "1"
VALGRIND_TIMEOUT_SCALE = 12
VALGRIND_SUPP = os.path.join(TOP_SRCDIR, "tests", "valgrind.supp")
VALGRIND_ARGS = ["--error-exitcode=99", "--leak-check=full",
                 "--errors-for-leak-kinds=definite,indirect", "--track-fds=no", "-q",
                 "--suppressions=" + VALGRIND_SUPP]
VALGRIND_LOGS = None

TIMEOUT_SCALE = _number("KTLSCTL_TEST_TIMEOUT_SCALE", VALGRIND_TIMEOUT_SCALE if VALGRIND else 1)
DATA_SCALE = _number("KTLSCTL_TEST_DATA_SCALE", 1)


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def sized(nbytes):
    """A bulk data size under KTLSCTL_TEST_DATA_SCALE (at least 64 KiB,
    and never more than asked)."""
    return max(min(nbytes, 64 << 10), int(nbytes * min(DATA_SCALE, 1.0)))


def human(nbytes):
    """1048576 -> '1MiB', 65536 -> '64KiB'."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return "%d%s" % (nbytes >> shift, unit)
    return "%dB" % nbytes


def _setup_valgrind():
    """Put the wrapper in front of KTLSCTL; fail the file loudly if this
    cannot be."""
    global KTLSCTL, VALGRIND_LOGS

    def cannot(why):
        sys.stdout.write("\n*** FAILING THE WHOLE FILE: KTLSCTL_VALGRIND=1, but %s\n" % why)
        sys.stdout.flush()
        sys.exit(1)
    vg = shutil.which("valgrind")
    if not vg:
        cannot("valgrind is not installed (apt-get install valgrind)")
    try:
        libs = subprocess.run(["ldd", KTLSCTL], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=30).stdout.decode()
    except (OSError, subprocess.TimeoutExpired):
        libs = ""
    if re.search(r"lib(asan|ubsan|tsan|lsan)", libs):
        cannot("%s is a sanitizer build, which valgrind cannot run: build without "
               "--enable-sanitizers (make check-valgrind does)" % KTLSCTL)
    d = tempfile.mkdtemp(prefix="ktlsctl-vg-")
    atexit.register(shutil.rmtree, d, True)
    VALGRIND_LOGS = os.path.join(d, "logs")
    os.mkdir(VALGRIND_LOGS)
    # tests run ktlsctl as nobody too
    os.chmod(d, 0o755)
    os.chmod(VALGRIND_LOGS, 0o1777)
    wrapper = os.path.join(d, "ktlsctl")
    argv = [vg] + VALGRIND_ARGS + ["--log-file=" + os.path.join(VALGRIND_LOGS, "vg.%p.log"),
                                   KTLSCTL]
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(shlex.quote(a) for a in argv))
    os.chmod(wrapper, 0o755)
    KTLSCTL = wrapper


def valgrind_reports():
    """The non-empty valgrind reports written since the last call (each is
    removed once read): [(pid, text)]."""
    if not VALGRIND_LOGS:
        return []
    out = []
    for name in sorted(os.listdir(VALGRIND_LOGS)):
        path = os.path.join(VALGRIND_LOGS, name)
        try:
            with open(path, errors="replace") as f:
                text = f.read()
            os.unlink(path)
        except OSError:
            continue
        if text.strip():
            out.append((name[3:-4], text))
    return out


if VALGRIND:
    _setup_valgrind()
