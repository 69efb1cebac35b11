#!/usr/bin/env python3
"""ktlsctl throughput benchmark: `make bench` (tests/bench/README.md).

Moves N bytes over loopback, one way and both ways at once, through ktlsctl
(each record channel this kernel has) and through other TLS tools (openssl
s_client/s_server, gnutls-cli/gnutls-serv, socat with OpenSSL), with plain
TCP and one core's AEAD speed as the physical limits.  Every contender runs
the same TLS version and cipher suite.  Contenders run round-robin for
several rounds; each figure quoted is the median over the timed rounds.

For each contender and direction:
  throughput   bytes delivered to the receiving pipes / wall time, MiB/s
               (both ways: the two directions added up)
  CPU s/GiB    user and system CPU seconds of both endpoint processes
               (wait4 rusage) per GiB delivered
  peak RSS     ru_maxrss of each endpoint; the larger one is quoted

Round 0 is a warm-up that is not timed: it also checks the SHA-256 of
everything received and the negotiated version and cipher suite.  Every
round checks the byte counts and exit statuses, so a contender that loses
data is reported FAILED, never fast.

Python 3 standard library only, with the tests' library (tests/lib:
certificates, ports, the peers' suite names, the kill-everything-at-exit
registry).  Run it through `make bench` or directly:

    python3 tests/bench/bench.py --size 256M --rounds 3 --json out.json
"""

import argparse
import base64
import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from ktlsctl_test import procs  # noqa: E402
from ktlsctl_test.certs import Certs  # noqa: E402
from ktlsctl_test.channel import ulp_probe  # noqa: E402
from ktlsctl_test.peers import OSSL12, OSSL13  # noqa: E402
from ktlsctl_test.procs import free_port, listening  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30

# Per suite: ktlsctl --cipher, GnuTLS priority name, OpenSSL TLS 1.3 and
# TLS 1.2 (ECDSA certificate) names, `openssl speed -evp` name, and the
# token that must appear in every tool's report of the negotiated suite
# (upper case, with '-', '_' and spaces removed).
SUITES = {c.lower(): dict(ktlsctl=c, gnutls=c, ossl13=OSSL13[c], ossl12=OSSL12[c].format(a="ECDSA"),
                          speed=c.lower(), token=c.replace("-", ""))
          for c in ("AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305")}

MODES = ("one-way", "both")
MODE_TITLE = {"one-way": "one way", "both": "both ways at once", "aead": "AEAD speed"}


# ------------------------------------------------------------------ helpers

def say(msg=""):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def parse_size(s):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?[bB])?\s*", s)
    if not m:
        raise argparse.ArgumentTypeError("bad size %r (e.g. 1G, 256M, 4096K, 1000000)" % s)
    n = float(m.group(1)) * {"": 1, "k": 1 << 10, "m": MIB, "g": GIB}[m.group(2).lower()]
    if n < 1 or n > (1 << 40):
        raise argparse.ArgumentTypeError("size %r out of range" % s)
    return int(n)


def human_size(n):
    for unit, f in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= f and n % f == 0:
            return "%d %s" % (n // f, unit)
    if n >= MIB:
        return "%.1f MiB" % (n / MIB)
    return "%d bytes" % n


def ratio(r):
    """A ratio with about three significant digits: 1.23x, 0.0042x, 416x."""
    if r is None:
        return "n/a"
    if r >= 100:
        return "%.0fx" % r
    if r >= 0.1:
        return "%.2fx" % r
    return "%.2gx" % r


def last_line(text, limit=220):
    """The last non-empty line of text, shortened."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if not lines:
        return "(nothing on stderr)"
    ln = lines[-1]
    return ln if len(ln) <= limit else ln[:limit] + "..."


def tail_of(path):
    """The last non-empty line of a file (a process's stderr)."""
    if not path:
        return "(stderr not kept)"
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return last_line(f.read().decode("utf-8", "replace"))
    except OSError:
        return "(no stderr)"


def read_text(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def norm_token(s):
    return re.sub(r"[-_ ]", "", s.upper())


def tls_version_in(text):
    m = re.search(r"TLS\s*V?(1\.[0-3])", text, re.I)
    return m.group(1) if m else None


# --------------------------------------------------------------- processes
# Every endpoint is registered with the library's kill registry
# (ktlsctl_test.procs): killed and reaped at exit and on SIGINT, SIGTERM
# and SIGHUP, after which the cleanups below run.

def reap_orphans():
    """Orphans handed to us as subreaper, if any."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


_tmp_dirs = []


KEEP = False


def remove_tmp_dirs():
    for d in _tmp_dirs:
        if KEEP:
            sys.stderr.write("bench: kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    del _tmp_dirs[:]


class Group:
    """A process group to kill (the launching shell's, while it runs)."""

    def __init__(self, pgid):
        self.pgid = pgid

    def kill(self):
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except OSError:
            pass


def set_subreaper():
    """Make this process the child subreaper (PR_SET_CHILD_SUBREAPER), so
    that an endpoint whose launching shell exits becomes our child and its
    wait4 rusage is ours to read.  False when prctl is unavailable."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


SUBREAPER = False

# The launcher: a small shell forks the endpoint and exits at once, saying
# its pid on its own stderr.  Why: Linux carries the peak RSS of the parent's
# memory across fork and exec into the child's ru_maxrss, so an endpoint
# forked straight from this Python process would report at least this
# process's RSS.  Forked from sh, it starts from sh's few hundred KiB; once
# sh exits it is reparented to us (the subreaper) and reaped with wait4.
# (An asynchronous list gets /dev/null as stdin, hence the copy in fd 3.)
LAUNCH = 'f=$1; shift; exec 3<&0; "$@" <&3 3<&- 2>"$f" & echo $! >&2'


class Proc:
    """One endpoint process, reaped with wait4 for its rusage.
    stdin/stdout are file descriptors, stderr a file name (or /dev/null);
    the process group (the launcher's) is killed on clean-up."""

    def __init__(self, name, argv, stdin, stdout, errpath, env=None, persistent=False,
                 ok_status=(0,)):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.persistent = persistent      # a server that never exits by itself
        self.ok_status = ok_status
        self.status = None                # exit code, or -signal
        self.rusage = None
        self.exit_time = None
        self.killed_by_us = False
        self.pidfd = None
        if SUBREAPER:
            self._launch(stdin, stdout, errpath, env)
        else:
            with open(errpath or os.devnull, "wb") as err:
                self.p = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=err,
                                          env=env, start_new_session=True, close_fds=True)
            self.pid = self.pgid = self.p.pid
            procs.register(self)
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:
                self.pidfd = None

    def _launch(self, stdin, stdout, errpath, env):
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            sh = subprocess.Popen(["/bin/sh", "-c", LAUNCH, "sh", errpath or os.devnull]
                                  + self.argv, stdin=stdin, stdout=stdout, stderr=w,
                                  env=env, start_new_session=True, close_fds=True)
        finally:
            os.close(w)
        self.pgid = sh.pid
        launcher = Group(sh.pid)
        procs.register(launcher)
        out = b""
        deadline = time.monotonic() + 20
        try:
            while not out.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([r], [], [], left)[0]:
                    break
                b = os.read(r, 256)
                if not b:
                    break
                out += b
        finally:
            os.close(r)
        try:
            sh.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        procs.unregister(launcher)
        m = re.fullmatch(rb"(\d+)\n", out)
        if not m or sh.returncode != 0:
            try:
                os.killpg(sh.pid, signal.SIGKILL)
            except OSError:
                pass
            raise OSError(errno.ECHILD, "the launching shell failed (%r)" % out[:200])
        self.pid = int(m.group(1))
        procs.register(self)

    def try_reap(self, block=False):
        if self.status is not None:
            return True
        try:
            pid, st, ru = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            # Not our child (cannot happen with the launcher): no rusage.
            self.status = -1000
            self.exit_time = time.monotonic()
            return True
        if pid == 0:
            return False
        self.exit_time = time.monotonic()
        self.rusage = ru
        self.status = os.waitstatus_to_exitcode(st)
        if getattr(self, "p", None) is not None:
            self.p.returncode = self.status
        procs.unregister(self)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        return True

    def signal(self, sig):
        if self.status is None:
            for target in (self.pgid, self.pid):
                try:
                    os.killpg(target, sig)
                except OSError:
                    pass

    def kill(self):
        """(the kill registry's) SIGKILL the group, reap."""
        self.signal(signal.SIGKILL)
        self.try_reap(block=True)

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after grace seconds; reaps."""
        if self.status is not None:
            return
        self.killed_by_us = True
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.try_reap():
                return
            time.sleep(0.01)
        self.signal(signal.SIGKILL)
        self.try_reap(block=True)

    def describe_status(self):
        if self.status is None:
            return "still running"
        if self.status == -1000:
            return "could not be reaped (not a child of bench.py)"
        if self.status < 0:
            try:
                return "killed by %s" % signal.Signals(-self.status).name
            except ValueError:
                return "killed by signal %d" % -self.status
        return "exited with status %d" % self.status


class RunFailed(Exception):
    pass


class RunSkipped(Exception):
    pass


class Sink(threading.Thread):
    """Drains one pipe: splice to /dev/null (so the receiving process may
    splice into the pipe and nothing is copied on this side), or reads and
    hashes it in the verify round.  header=True drops an HTTP response
    header first (gnutls-serv --httpdata)."""

    def __init__(self, run, fd, expect, name, want_hash, header=False):
        super().__init__(daemon=True)
        self.run_ctx = run
        self.fd = fd
        self.expect = expect
        self.name = name
        self.want_hash = want_hash
        self.header = header
        self.count = 0
        self.header_bytes = 0
        self.header_text = ""
        self.sha = hashlib.sha256() if want_hash else None
        self.eof = False
        self.eof_time = None
        self.error = None
        self.complete_signalled = False

    def _progress(self, n):
        self.count += n
        self.run_ctx.last_progress = time.monotonic()
        if not self.complete_signalled and self.count >= self.expect:
            self.complete_signalled = True
            self.run_ctx.wake()

    def _skip_header(self):
        buf = b""
        while True:
            b = os.read(self.fd, 65536)
            if not b:
                self.header_text = buf[:200].decode("latin-1")
                return
            buf += b
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                self.header_text = buf[:i].decode("latin-1")
                self.header_bytes = i + 4
                rest = buf[i + 4:]
                if self.sha is not None:
                    self.sha.update(rest)
                self._progress(len(rest))
                return
            if len(buf) > 65536:
                self.header_text = buf[:200].decode("latin-1")
                raise OSError(errno.EPROTO, "no end of HTTP header in the first 64 KiB")

    def run(self):
        devnull = None
        try:
            if self.header:
                self._skip_header()
            if self.sha is None and hasattr(os, "splice"):
                devnull = os.open(os.devnull, os.O_WRONLY)
                while True:
                    n = os.splice(self.fd, devnull, 1 << 20)
                    if n == 0:
                        break
                    self._progress(n)
            else:
                buf = bytearray(1 << 20)
                mv = memoryview(buf)
                while True:
                    n = os.readv(self.fd, [buf])
                    if n == 0:
                        break
                    if self.sha is not None:
                        self.sha.update(mv[:n])
                    self._progress(n)
        except OSError as e:
            self.error = "reading %s: %s" % (self.name, e.strerror or e)
        finally:
            if devnull is not None:
                os.close(devnull)
            os.close(self.fd)
            self.eof = True
            self.eof_time = time.monotonic()
            self.run_ctx.wake()


class Feeder(threading.Thread):
    """Writes the data file (or a prefix) into a pipe that is a process's
    stdin, with splice (no copy on this side), then closes the pipe or,
    with hold, keeps it open until the run releases it."""

    def __init__(self, run, wfd, data_path, size, prefix=b"", hold=False, name=""):
        super().__init__(daemon=True)
        self.wfd = wfd
        self.data_path = data_path
        self.size = size
        self.prefix = prefix
        self.hold = hold
        self.name = name
        self.release = threading.Event()
        self.error = None
        self.done = False

    def run(self):
        try:
            if self.prefix:
                os.write(self.wfd, self.prefix)
            if self.data_path:
                with open(self.data_path, "rb") as f:
                    off = 0
                    while off < self.size:
                        if hasattr(os, "splice"):
                            n = os.splice(f.fileno(), self.wfd, min(1 << 20, self.size - off),
                                          offset_src=off)
                        else:
                            b = os.pread(f.fileno(), min(1 << 20, self.size - off), off)
                            n = os.write(self.wfd, b)
                        if n == 0:
                            break
                        off += n
            self.done = True
            if self.hold:
                self.release.wait()
        except OSError as e:
            if e.errno != errno.EPIPE:
                self.error = "feeding %s: %s" % (self.name, e.strerror or e)
        finally:
            try:
                os.close(self.wfd)
            except OSError:
                pass


# ----------------------------------------------------------- endpoint spec

class Endpoint:
    """How to run one side.

    stdin:  ("data", hold)   the data file: a regular file (--source file)
                             or a pipe fed with it; hold=True always means
                             a pipe, kept open once fed until every sink of
                             the run has all its bytes
            ("hold", prefix) a pipe given prefix, then held open likewise
            ("null",)        /dev/null
    expect: bytes its stdout must deliver (0: none), or None: stdout is a
            log, not data (sent to a file, or to /dev/null with quiet_out)
    """

    def __init__(self, name, argv, stdin, expect, env=None, persistent=False,
                 header=False, quiet_err=False, ok_status=(0,), port_from_stderr=False):
        self.name = name
        self.argv = argv
        self.stdin = stdin
        self.expect = expect
        self.env = env
        self.persistent = persistent
        self.header = header
        self.quiet_err = quiet_err
        self.ok_status = ok_status
        self.port_from_stderr = port_from_stderr


class Dataset:
    def __init__(self, size, data, sha):
        self.size = size
        self.data = data
        self.sha = sha


class Run:
    """One transfer: a server, then a client, their sinks and feeders."""

    def __init__(self, bench, label, verify, x):
        self.b = bench
        self.label = label
        self.verify = verify
        self.x = x                  # the data set: .size, .data, .sha
        # Its own directory: a file of an earlier run (a server's "listening
        # on" line) must never be read for this one.
        self.dir = tempfile.mkdtemp(prefix="run-%s." % safe(label), dir=bench.tmp)
        self.procs = []
        self.sinks = []
        self.feeders = []
        self.fds = []
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_r, self.wake_w = rfd, wfd
        self.released = False
        self.t0 = None
        self.last_progress = None   # when a sink last received bytes
        self.complete_at = None     # when every sink had all its bytes
        self.stderr_paths = {}

    def wake(self):
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def _pipe(self):
        r, w = os.pipe2(os.O_CLOEXEC)
        if self.b.args.pipe_size:
            for fd in (r, w):
                try:
                    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, self.b.args.pipe_size)
                    break
                except (OSError, AttributeError):
                    pass
        return r, w

    def start(self, ep):
        b = self.b
        child_fds = []
        feeder = None
        # stdin
        kind = ep.stdin[0]
        if kind == "null":
            stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            child_fds.append(stdin)
        elif kind == "data" and not ep.stdin[1] and b.args.source == "file":
            stdin = os.open(self.x.data, os.O_RDONLY | os.O_CLOEXEC)
            child_fds.append(stdin)
        else:
            r, w = self._pipe()
            stdin = r
            child_fds.append(r)
            if kind == "data":
                feeder = Feeder(self, w, self.x.data, self.x.size, hold=ep.stdin[1],
                                name=ep.name)
            else:
                feeder = Feeder(self, w, None, 0, prefix=ep.stdin[1], hold=True, name=ep.name)
        # stdout
        sink = None
        if ep.expect is None:
            if ep.quiet_err:
                stdout = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            else:
                stdout = os.open(os.path.join(self.dir, "%s.out" % safe(ep.name)),
                                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            child_fds.append(stdout)
        else:
            r, w = self._pipe()
            stdout = w
            child_fds.append(w)
            self.fds.append(r)
            sink = Sink(self, r, ep.expect, ep.name, self.verify and ep.expect > 0,
                        header=ep.header)
        # stderr: a file, opened by the launcher
        errpath = None if ep.quiet_err else os.path.join(self.dir, "%s.err" % safe(ep.name))
        self.stderr_paths[ep.name] = errpath
        env = dict(b.env)
        if ep.env:
            env.update(ep.env)
        if b.args.verbose:
            say("    $ %s" % " ".join(shlex.quote(str(a)) for a in ep.argv))
        try:
            p = Proc(ep.name, ep.argv, stdin, stdout, errpath, env=env,
                     persistent=ep.persistent, ok_status=ep.ok_status)
        except OSError as e:
            p = None
            failure = "cannot start %s: %s" % (ep.name, e.strerror or e)
        for fd in child_fds:
            os.close(fd)
        if p is None:
            if feeder is not None:
                os.close(feeder.wfd)
            if sink is not None:
                self.fds.remove(sink.fd)
                os.close(sink.fd)
            raise RunFailed(failure)
        self.procs.append(p)
        p.errpath = errpath
        p.ep = ep
        p.sink = sink
        p.feeder = feeder
        if sink is not None:
            self.fds.remove(sink.fd)      # the sink thread closes it
            self.sinks.append(sink)
            sink.start()
        if feeder is not None:
            self.feeders.append(feeder)
            feeder.start()
        return p

    def forget(self, p):
        """Drop a server that failed to start listening (to retry on
        another port): reaped, its sink and feeder ended."""
        p.stop(0.5)
        self.procs.remove(p)
        if p.feeder is not None:
            p.feeder.release.set()
            p.feeder.join(5)
            self.feeders.remove(p.feeder)
        if p.sink is not None:
            p.sink.join(5)
            self.sinks.remove(p.sink)

    def wait_port(self, p, port=None, timeout=15.0):
        """Wait until p listens; returns the port (parsed from its stderr
        "listening on ADDR:PORT" when port is None)."""
        deadline = time.monotonic() + timeout * self.b.args.timeout_scale
        while time.monotonic() < deadline:
            if port is None:
                m = re.search(r"listening on \S*:(\d+)", read_text(p.errpath, 65536))
                if m:
                    return int(m.group(1))
            elif listening(port):
                return port
            if p.try_reap():
                raise RunFailed("%s %s before listening: %s"
                                % (p.name, p.describe_status(), tail_of(p.errpath)))
            time.sleep(0.01)
        raise RunFailed("%s did not listen within %ds" % (p.name, timeout))

    def release(self):
        if not self.released:
            self.released = True
            for f in self.feeders:
                f.release.set()

    def all_sinks_complete(self):
        return all(s.count >= s.expect for s in self.sinks)

    def wait(self, deadline):
        """Wait until every non-persistent process has exited and every sink
        has seen EOF; release held stdins once all data has arrived.
        Returns the end time."""
        while True:
            for s in self.sinks:
                if s.error:
                    raise RunFailed(s.error)
                if s.eof and s.count < s.expect:
                    # The writer closed early: say who, after a moment for
                    # its exit status to arrive.
                    self._reap_for(2.0 * self.b.args.timeout_scale)
                    self._check_skip()
                    raise RunFailed("%s: received %d of %d bytes, then EOF%s"
                                    % (s.name, s.count, s.expect, self._why(s.name)))
                if s.count > s.expect:
                    raise RunFailed("%s: received %d bytes, expected %d"
                                    % (s.name, s.count, s.expect))
            for f in self.feeders:
                if f.error:
                    raise RunFailed(f.error)
            if self.all_sinks_complete():
                self.release()
                if self.complete_at is None:
                    self.complete_at = time.monotonic()
            for p in self.procs:
                p.try_reap()
            self._check_skip()
            for p in self.procs:
                if p.status is not None and not p.killed_by_us and p.status not in p.ok_status:
                    raise RunFailed("%s %s: %s" % (p.name, p.describe_status(), tail_of(p.errpath)))
            if (all(p.status is not None for p in self.procs if not p.persistent)
                    and all(s.eof for s in self.sinks)):
                ends = [p.exit_time for p in self.procs if not p.persistent]
                ends += [s.eof_time for s in self.sinks]
                return max(ends)
            now = time.monotonic()
            stall = self.b.stall
            if self.complete_at is not None and now - self.complete_at > stall:
                alive = [p.name for p in self.procs if p.status is None and not p.persistent]
                raise RunFailed("all data arrived, but %s did not exit within %.0fs"
                                % (" and ".join(alive) or "a sink", stall))
            if self.complete_at is None and now - (self.last_progress or self.t0) > stall:
                got = ", ".join("%s %d of %d bytes" % (s.name, s.count, s.expect)
                                for s in self.sinks if s.expect)
                raise RunFailed("stalled: no data moved for %.0fs (%s)" % (stall, got))
            if now >= deadline:
                got = ", ".join("%s %d of %d bytes" % (s.name, s.count, s.expect)
                                for s in self.sinks if s.expect)
                alive = [p.name for p in self.procs if p.status is None and not p.persistent]
                raise RunFailed("timed out after %.0fs (%s; still running: %s)"
                                % (now - self.t0, got or "no data expected",
                                   ", ".join(alive) or "none"))
            fds = [self.wake_r] + [p.pidfd for p in self.procs
                                   if p.status is None and p.pidfd is not None]
            limit = min(deadline - now, 0.25)
            if all(p.pidfd is not None for p in self.procs if p.status is None):
                limit = min(deadline - now, 2.0)
            try:
                r, _, _ = select.select(fds, [], [], max(0.0, limit))
            except InterruptedError:
                r = []
            if self.wake_r in r:
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass

    def _check_skip(self):
        """ktlsctl --ktls require exits 7 when this kernel cannot carry the
        session (no kTLS, or not this cipher): the contender is skipped."""
        for p in self.procs:
            if p.status == 7 and p.name.startswith("ktlsctl") and not p.killed_by_us:
                raise RunSkipped(tail_of(p.errpath))

    def _reap_for(self, secs):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if all(p.try_reap() for p in self.procs if not p.persistent):
                return
            time.sleep(0.01)

    def _why(self, sink_name):
        """Each endpoint's state and last stderr line, the failed ones
        first."""
        procs = sorted(self.procs, key=lambda p: (p.status in p.ok_status, p.name != sink_name))
        return " (%s)" % "; ".join("%s %s: %s" % (p.name, p.describe_status(), tail_of(p.errpath))
                                   for p in procs)

    def finish(self):
        """Stop whatever still runs, reap everything, close every fd."""
        self.release()
        for p in self.procs:
            if p.status is None:
                p.stop(grace=5.0 if p.persistent else 0.5)
        for f in self.feeders:
            f.release.set()
            if f.ident is not None:
                f.join(5)
        for s in self.sinks:
            s.join(5)
        for fd in [self.wake_r, self.wake_w] + self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if not self.b.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# -------------------------------------------------------------- contenders

class Contender:
    id = ""
    title = ""
    kind = "tls"          # tls, limit, aead
    note = {}             # mode -> how data moves (printed in the legend)

    def __init__(self, bench):
        self.b = bench

    def available(self):
        """None when it can run here, else the reason it cannot."""
        return None

    def server(self, mode, port, x):
        raise NotImplementedError

    def client(self, mode, port, x):
        raise NotImplementedError

    def server_port(self):
        """A port to listen on, or None: the server picks one and says it."""
        return free_port()

    def check_suite(self, run):
        """After the verify round: None, or what was negotiated instead."""
        return None

    def size_cap(self):
        """Bytes this contender moves at most (None: --size), with why."""
        return None, None


def stdin_data(hold=False):
    return ("data", hold)


class Ktlsctl(Contender):
    kind = "tls"

    def __init__(self, bench, channel):
        super().__init__(bench)
        self.channel = channel          # kernel, kernel-copy, user
        self.id = {"kernel": "ktlsctl-kernel", "kernel-copy": "ktlsctl-kernel-copy",
                   "user": "ktlsctl-user"}[channel]
        self.title = {"kernel": "ktlsctl, kernel", "kernel-copy": "ktlsctl, kernel, copy",
                      "user": "ktlsctl, user space"}[channel]
        self.hold12 = bench.args.tls == "1.2"
        self.note = {
            "one-way": "client sends its stdin; server's stdin held open until all data is in",
            "both": ("both read their stdin"
                     + (" (TLS 1.2: a pipe held open, since ktlsctl answers the peer's "
                        "close_notify at once in TLS 1.2)" if self.hold12 else "")),
        }

    def available(self):
        if not os.access(self.b.ktlsctl, os.X_OK):
            return "ktlsctl binary %s not found (build it first)" % self.b.ktlsctl
        if self.channel.startswith("kernel") and not self.b.ktls[0]:
            return "kernel TLS unavailable here (%s); `make bench-vm` runs it" % self.b.ktls[1]
        if self.channel == "kernel-copy" and not self.b.has_no_zerocopy:
            return "ktlsctl has no --no-zerocopy option"
        return None

    def _common(self):
        a = self.b.args
        s = SUITES[a.suite]
        # --eof close: the receiving side waits for the sender to close
        # first, so the default's quiet wait would only delay the exit.
        argv = ["--ktls", "off" if self.channel == "user" else "require",
                "--tls" + a.tls, "--cipher", s["ktlsctl"], "--eof", "close", "-v"]
        if self.channel == "kernel-copy":
            argv.append("--no-zerocopy")
        return argv

    def server_port(self):
        return None

    def server(self, mode, port, x):
        b = self.b
        argv = [b.ktlsctl, "listen", "127.0.0.1:0", "--cert", b.cert, "--key", b.key] + self._common()
        if mode == "one-way":
            return Endpoint("ktlsctl listen", argv, ("hold", b""), x.size, port_from_stderr=True)
        return Endpoint("ktlsctl listen", argv, stdin_data(self.hold12), x.size,
                        port_from_stderr=True)

    def client(self, mode, port, x):
        b = self.b
        argv = [b.ktlsctl, "connect", "127.0.0.1:%d" % port, "--cafile", b.ca] + self._common()
        if mode == "one-way":
            return Endpoint("ktlsctl connect", argv, stdin_data(False), 0)
        return Endpoint("ktlsctl connect", argv, stdin_data(self.hold12), x.size)

    def check_suite(self, run):
        want_chan = "user-space channel" if self.channel == "user" else "kernel channel"
        for name in ("ktlsctl listen", "ktlsctl connect"):
            text = read_text(run.stderr_paths.get(name) or "")
            m = re.search(r"(?:connected to|accepted) \S+: (\S+) (\S+), ([a-z -]+channel)", text)
            if not m:
                return "%s did not report the session (-v): %s" % (name, last_line(text))
            err = self.b.suite_mismatch(name, m.group(1) + " " + m.group(2))
            if err:
                return err
            if m.group(3) != want_chan:
                return "%s used the %s, expected the %s" % (name, m.group(3), want_chan)
        return None


class OpenSSL(Contender):
    id = "openssl"
    title = "openssl s_client/s_server"
    note = {
        "one-way": "s_client sends its stdin (-no_ign_eof); s_server's stdin held open "
                   "(at stdin EOF it closes the connection)",
        "both": "s_client reads its stdin (-quiet: keeps reading after EOF); s_server's "
                "stdin is a pipe held open until all data is in",
    }

    def available(self):
        return None if shutil.which("openssl") else "openssl not installed"

    def _tls(self):
        a = self.b.args
        s = SUITES[a.suite]
        if a.tls == "1.3":
            return ["-tls1_3", "-ciphersuites", s["ossl13"]]
        return ["-tls1_2", "-cipher", s["ossl12"]]

    def server(self, mode, port, x):
        b = self.b
        argv = ["openssl", "s_server", "-accept", str(port), "-cert", b.cert, "-key", b.key,
                "-naccept", "1", "-quiet"] + self._tls()
        if mode == "one-way":
            return Endpoint("s_server", argv, ("hold", b""), x.size)
        return Endpoint("s_server", argv, stdin_data(True), x.size)

    def client(self, mode, port, x):
        b = self.b
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", b.ca,
                "-verify_return_error", "-quiet", "-brief", "-nocommands"]
        if mode == "one-way":
            argv.append("-no_ign_eof")
        argv += self._tls()
        return Endpoint("s_client", argv, stdin_data(False), 0 if mode == "one-way" else x.size)

    def check_suite(self, run):
        text = read_text(run.stderr_paths["s_client"])
        v = re.search(r"Protocol version: (\S+)", text)
        c = re.search(r"Ciphersuite: (\S+)", text)
        if not (v and c):
            return "s_client did not report the session (-brief): %s" % last_line(text)
        return self.b.suite_mismatch("s_client", v.group(1) + " " + c.group(1))


class GnuTLS(Contender):
    id = "gnutls"
    title = "gnutls-cli/gnutls-serv"
    note = {
        "one-way": "server to client: gnutls-serv --httpdata serves the data file (read into "
                   "its memory); gnutls-cli's stdin (the GET) held open",
        "both": "echo: gnutls-cli sends its stdin (a pipe held open: gnutls-cli quits 2 s "
                "after EOF), gnutls-serv --echo sends every line back",
    }

    def size_cap(self):
        return (self.b.args.gnutls_size,
                "gnutls-cli writes what it receives one byte per write(2) (unbuffered "
                "stdout, fputc per byte): about 2 MiB/s, so it moves --gnutls-size")

    def available(self):
        for p in ("gnutls-serv", "gnutls-cli"):
            if not shutil.which(p):
                return "%s not installed (gnutls-bin)" % p
        return None

    def _prio(self):
        a = self.b.args
        return ("NORMAL:-VERS-ALL:+VERS-TLS%s:-CIPHER-ALL:+%s"
                % (a.tls, SUITES[a.suite]["gnutls"]))

    def server(self, mode, port, x):
        b = self.b
        argv = ["gnutls-serv", "-p", str(port), "--x509certfile", b.cert, "--x509keyfile", b.key,
                "-a", "-q", "--priority", self._prio()]
        if mode == "one-way":
            argv += ["--httpdata", x.data]
            return Endpoint("gnutls-serv", argv, ("null",), None, persistent=True,
                            ok_status=(0, 1))
        # --echo logs every line it receives on stderr: not kept.
        argv += ["--echo", "--crlf"]
        return Endpoint("gnutls-serv", argv, ("null",), None, persistent=True, quiet_err=True,
                        ok_status=(0, 1))

    def client(self, mode, port, x):
        b = self.b
        self.logfile = os.path.join(b.run_dir, "gnutls-cli.log")
        argv = ["gnutls-cli", "--logfile", self.logfile, "--x509cafile", b.ca,
                "-p", str(port), "--priority", self._prio(), "127.0.0.1"]
        if mode == "one-way":
            return Endpoint("gnutls-cli", argv, ("hold", b"GET / HTTP/1.0\r\n\r\n"), x.size,
                            header=True)
        return Endpoint("gnutls-cli", argv, stdin_data(True), x.size)

    def check_suite(self, run):
        text = read_text(self.logfile)
        m = re.search(r"- Description: (\S+)", text)
        if not m:
            return "gnutls-cli did not report the session: %s" % last_line(text)
        return self.b.suite_mismatch("gnutls-cli", m.group(1))


class Socat(Contender):
    id = "socat"
    title = "socat (OpenSSL)"
    note = {
        "one-way": "socat -u STDIN OPENSSL: -> socat -u OPENSSL-LISTEN: STDOUT, -b 128 KiB",
        "both": "socat STDIO OPENSSL: <-> socat OPENSSL-LISTEN: STDIO, -b 128 KiB",
    }

    def available(self):
        return self.b.socat_missing

    def _env(self):
        return {"OPENSSL_CONF": self.b.openssl_conf}

    def _tls(self):
        """socat sets its own TLS 1.2 cipher list, over OPENSSL_CONF's
        CipherString; TLS 1.3 suites can only come from OPENSSL_CONF."""
        a = self.b.args
        v = "TLS1.3" if a.tls == "1.3" else "TLS1.2"
        opts = ",min-version=%s,max-version=%s" % (v, v)
        if a.tls == "1.2":
            opts += ",cipher=" + SUITES[a.suite]["ossl12"]
        return opts

    def _b(self):
        return ["-b", str(self.b.args.socat_buffer)]

    def server(self, mode, port, x):
        b = self.b
        addr = ("OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,key=%s,verify=0"
                % (port, b.cert, b.key)) + self._tls()
        if mode == "one-way":
            argv = ["socat", "-d", "-d", "-u"] + self._b() + [addr, "STDOUT"]
            return Endpoint("socat server", argv, ("null",), x.size, env=self._env())
        argv = ["socat", "-d", "-d", "-t", str(int(b.timeout))] + self._b() + [addr, "STDIO"]
        return Endpoint("socat server", argv, stdin_data(False), x.size, env=self._env())

    def client(self, mode, port, x):
        b = self.b
        addr = "OPENSSL:127.0.0.1:%d,cafile=%s,commonname=localhost" % (port, b.ca) + self._tls()
        if mode == "one-way":
            argv = ["socat", "-d", "-d", "-u"] + self._b() + ["STDIN", addr]
            return Endpoint("socat client", argv, stdin_data(False), 0, env=self._env())
        argv = ["socat", "-d", "-d", "-t", str(int(b.timeout))] + self._b() + ["STDIO", addr]
        return Endpoint("socat client", argv, stdin_data(False), x.size, env=self._env())

    def check_suite(self, run):
        text = read_text(run.stderr_paths["socat client"])
        v = re.search(r"SSL proto version used: (\S+)", text)
        c = re.search(r"SSL connection using (\S+)", text)
        if not (v and c):
            return "socat did not report the session (-d -d): %s" % last_line(text)
        return self.b.suite_mismatch("socat", v.group(1) + " " + c.group(1))


class TcpSplice(Contender):
    id = "tcp-splice"
    title = "limit: TCP, sendfile/splice"
    kind = "limit"

    def __init__(self, bench):
        super().__init__(bench)
        t = bench.tcpcopy
        how = ("tests/bench/tcpcopy (C)" if t else
               "bench.py --tcp-endpoint (Python: its start-up counts; `make bench` builds "
               "tests/bench/tcpcopy)")
        self.note = {m: "no TLS: sendfile (or splice) stdin -> socket, splice socket -> "
                        "stdout, " + how for m in MODES}

    def server_port(self):
        return None

    def _argv(self, *rest):
        if self.b.tcpcopy:
            return [self.b.tcpcopy] + list(rest)
        return [self.b.python, "-S", "-E", os.path.abspath(__file__), "--tcp-endpoint"] + list(rest)

    def server(self, mode, port, x):
        b = self.b
        if mode == "one-way":
            return Endpoint("tcp listen", self._argv("listen", "0", mode), ("null",), x.size,
                            port_from_stderr=True)
        return Endpoint("tcp listen", self._argv("listen", "0", mode), stdin_data(False), x.size,
                        port_from_stderr=True)

    def client(self, mode, port, x):
        b = self.b
        return Endpoint("tcp connect", self._argv("connect", str(port), mode), stdin_data(False),
                        0 if mode == "one-way" else x.size)


class TcpSocat(Contender):
    id = "tcp-socat"
    title = "limit: TCP, socat copy"
    kind = "limit"
    note = {m: "no TLS: socat read/write, -b 128 KiB" for m in MODES}

    def available(self):
        return self.b.socat_missing

    def _b(self):
        return ["-b", str(self.b.args.socat_buffer)]

    def server(self, mode, port, x):
        b = self.b
        addr = "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port
        if mode == "one-way":
            return Endpoint("socat tcp server", ["socat", "-u"] + self._b() + [addr, "STDOUT"],
                            ("null",), x.size)
        return Endpoint("socat tcp server",
                        ["socat", "-t", str(int(b.timeout))] + self._b() + [addr, "STDIO"],
                        stdin_data(False), x.size)

    def client(self, mode, port, x):
        b = self.b
        addr = "TCP:127.0.0.1:%d" % port
        if mode == "one-way":
            return Endpoint("socat tcp client", ["socat", "-u"] + self._b() + ["STDIN", addr],
                            stdin_data(False), 0)
        return Endpoint("socat tcp client",
                        ["socat", "-t", str(int(b.timeout))] + self._b() + ["STDIO", addr],
                        stdin_data(False), x.size)


class Aead(Contender):
    id = "aead"
    kind = "aead"

    def __init__(self, bench):
        super().__init__(bench)
        self.title = "limit: AEAD, 1 core"
        self.note = {m: "openssl speed -evp %s -bytes 16384 (encryption, one core)"
                     % SUITES[bench.args.suite]["speed"] for m in MODES}

    def available(self):
        return None if shutil.which("openssl") else "openssl not installed"


# ------------------------------------------------------------------- bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size
        self.ktlsctl = os.path.abspath(args.ktlsctl)
        self.python = sys.executable or "python3"
        t = args.tcpcopy
        self.tcpcopy = os.path.abspath(t) if t and os.access(t, os.X_OK) else None
        self.env = dict(os.environ)
        self.env.pop("OPENSSL_CONF", None)
        self.env["LC_ALL"] = "C"
        self.tmp = tempfile.mkdtemp(prefix="ktlsctl-bench.", dir=args.tmpdir)
        _tmp_dirs.append(self.tmp)
        self.timeout = args.timeout or (30 + self.size / (2 * MIB)) * args.timeout_scale
        self.stall = args.stall * args.timeout_scale
        self.ktls = ulp_probe()
        self.has_no_zerocopy = self._has_no_zerocopy()
        self.socat_missing = None if shutil.which("socat") else "socat not installed"
        self.results = {}         # (contender id, mode) -> dict
        self.datasets = {}        # size -> Dataset
        self.notes = []

    # -- setup

    def _has_no_zerocopy(self):
        """Whether ktlsctl's help mentions --no-zerocopy (the kernel
        channel's plain send/recv data path)."""
        helps = ""
        for sub in ([], ["connect"]):
            try:
                r = subprocess.run([self.ktlsctl] + sub + ["--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=10)
                helps += r.stdout.decode("utf-8", "replace")
            except (OSError, subprocess.TimeoutExpired):
                pass
        return "--no-zerocopy" in helps

    def setup(self):
        self.socat_missing = self._ensure_socat()
        self._certs()
        self._openssl_conf()
        self._data()

    def _ensure_socat(self):
        return self.ensure_package("socat", lambda: shutil.which("socat"), "socat")

    def ensure_package(self, pkg, present, what):
        """None when present() holds, else install Debian's pkg with apt-get
        when allowed (root or `sudo -n`, and no --no-install); None once
        installed, else why it is missing."""
        if present():
            return None
        if self.args.no_install:
            return "%s not installed (--no-install: not installing %s)" % (what, pkg)
        if os.geteuid() == 0:
            pre = []
        elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                                     stdout=subprocess.DEVNULL,
                                                     stderr=subprocess.DEVNULL).returncode == 0:
            pre = ["sudo", "-n"]
        else:
            return "%s not installed (install it: sudo apt-get install %s)" % (what, pkg)
        if not shutil.which("apt-get"):
            return "%s not installed (no apt-get here)" % what
        say("bench: %s is missing: installing %s with apt-get" % (what, pkg))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            r = subprocess.run(pre + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get",
                                      "install", "-y", "-qq", "--no-install-recommends", pkg],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                               env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "%s not installed (apt-get install %s: %s)" % (what, pkg, e)
        if r.returncode != 0 or not present():
            return "%s not installed (apt-get install %s failed: %s)" % (
                what, pkg, last_line(r.stdout.decode("utf-8", "replace")))
        return None

    def _certs(self):
        """A CA and an ECDSA P-256 server certificate for localhost and
        127.0.0.1 (ktlsctl_test.certs: certtool)."""
        if not shutil.which("certtool"):
            raise SystemExit("bench: certtool (gnutls-bin) is not installed: cannot make a test "
                             "certificate")
        try:
            certs = Certs(os.path.join(self.tmp, "certs"))
            self.ca, (self.cert, self.key) = certs.ca, certs.srv_ec
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            raise SystemExit("bench: %s" % last_line(str(e)))

    def _openssl_conf(self):
        """socat has no option for TLS 1.3 cipher suites: an OpenSSL
        configuration pins version and suite for it."""
        a = self.args
        s = SUITES[a.suite]
        self.openssl_conf = os.path.join(self.tmp, "openssl-socat.cnf")
        v = "TLSv1.3" if a.tls == "1.3" else "TLSv1.2"
        with open(self.openssl_conf, "w") as f:
            f.write("openssl_conf = bench_conf\n[bench_conf]\nssl_conf = bench_ssl\n"
                    "[bench_ssl]\nsystem_default = bench_tls\n[bench_tls]\n"
                    "MinProtocol = %s\nMaxProtocol = %s\n" % (v, v))
            if a.tls == "1.3":
                f.write("Ciphersuites = %s\n" % s["ossl13"])
            else:
                f.write("CipherString = %s\n" % s["ossl12"])

    def _data(self):
        """N bytes of random base64 text in 77-byte lines: what every tool
        can carry (gnutls-serv --echo echoes text lines only)."""
        self.data = os.path.join(self.tmp, "data")
        sha = hashlib.sha256()
        left = self.size
        t0 = time.monotonic()
        with open(self.data, "wb") as f:
            while left > 0:
                chunk = base64.encodebytes(os.urandom(57 * 4096))
                chunk = chunk[:left]
                left -= len(chunk)
                if left == 0:
                    chunk = chunk[:-1] + b"\n"
                sha.update(chunk)
                f.write(chunk)
        self.data_sha = sha.hexdigest()
        self.datasets[self.size] = Dataset(self.size, self.data, self.data_sha)
        if self.args.verbose:
            say("bench: %s of data written in %.1fs" % (human_size(self.size),
                                                         time.monotonic() - t0))

    def suite_mismatch(self, who, reported):
        a = self.args
        s = SUITES[a.suite]
        ver = tls_version_in(reported)
        if ver != a.tls:
            return "%s negotiated %s, not TLS %s" % (who, reported, a.tls)
        if s["token"] not in norm_token(reported):
            return "%s negotiated %s, not %s" % (who, reported, s["ktlsctl"])
        return None

    # -- contenders

    def contenders(self):
        all_c = [Ktlsctl(self, "kernel"), Ktlsctl(self, "kernel-copy"), Ktlsctl(self, "user"),
                 OpenSSL(self), GnuTLS(self), Socat(self), TcpSplice(self), TcpSocat(self),
                 Aead(self)]
        if self.args.only:
            want = set(self.args.only)
            unknown = want - {c.id for c in all_c}
            if unknown:
                raise SystemExit("bench: unknown contender(s) %s; known: %s"
                                 % (", ".join(sorted(unknown)), ", ".join(c.id for c in all_c)))
            all_c = [c for c in all_c if c.id in want]
        if self.args.skip:
            all_c = [c for c in all_c if c.id not in set(self.args.skip)]
        return all_c

    # -- one transfer

    def dataset(self, c):
        cap = c.size_cap()[0]
        return self.dataset_of(min(self.size, cap) if cap else self.size)

    def dataset_of(self, n):
        """The first n bytes of the data (n <= --size), ending with a newline."""
        if n not in self.datasets:
            # The first n bytes of the data, ending with a newline.
            path = os.path.join(self.tmp, "data-%d" % n)
            sha = hashlib.sha256()
            with open(self.data, "rb") as src, open(path, "wb") as dst:
                left = n
                while left > 0:
                    chunk = src.read(min(left, 1 << 20))
                    left -= len(chunk)
                    if left == 0:
                        chunk = chunk[:-1] + b"\n"
                    sha.update(chunk)
                    dst.write(chunk)
            self.datasets[n] = Dataset(n, path, sha.hexdigest())
        return self.datasets[n]

    def transfer(self, c, mode, verify):
        x = self.dataset(c)
        run = Run(self, c.id, verify, x)
        self.run_dir = run.dir
        try:
            port = None
            srv = None
            for attempt in range(5):
                port = c.server_port()
                ep = c.server(mode, port, x)
                srv = run.start(ep)
                try:
                    port = run.wait_port(srv, None if ep.port_from_stderr else port)
                    break
                except RunFailed as e:
                    # A port taken between free_port() and bind: try another.
                    if port is not None and srv.status is not None and attempt < 4 \
                            and re.search(r"in use|bind", str(e), re.I):
                        run.forget(srv)
                        continue
                    raise
            run.t0 = time.monotonic()
            run.start(c.client(mode, port, x))
            t1 = run.wait(run.t0 + self.timeout)
            # Persistent servers (gnutls-serv) are stopped now; their CPU counts.
            for p in run.procs:
                if p.persistent and p.status is None:
                    p.stop()
            wall = t1 - run.t0
            got = sum(s.count for s in run.sinks)
            want = sum(s.expect for s in run.sinks)
            if got != want:
                raise RunFailed("received %d of %d bytes" % (got, want))
            for s in run.sinks:
                if s.header and not re.search(r"Content-Length: *%d\b" % x.size, s.header_text, re.I):
                    raise RunFailed("%s: unexpected HTTP header %r" % (s.name, s.header_text[:120]))
            if verify:
                for s in run.sinks:
                    if s.sha is not None and s.sha.hexdigest() != x.sha:
                        raise RunFailed("%s: data corrupted (SHA-256 of the %d bytes received "
                                        "differs from what was sent)" % (s.name, s.count))
                err = c.check_suite(run)
                if err:
                    raise RunFailed(err)
            ut = sum(p.rusage.ru_utime for p in run.procs if p.rusage)
            st = sum(p.rusage.ru_stime for p in run.procs if p.rusage)
            rss = max((p.rusage.ru_maxrss for p in run.procs if p.rusage), default=0)
            per = {p.name: {"user_s": round(p.rusage.ru_utime, 4), "sys_s": round(p.rusage.ru_stime, 4),
                            "maxrss_kib": p.rusage.ru_maxrss} for p in run.procs if p.rusage}
            return {"wall_s": wall, "bytes": got, "user_s": ut, "sys_s": st, "maxrss_kib": rss,
                    "endpoints": per}
        finally:
            run.finish()

    def aead_speed(self, verify):
        a = self.args
        name = SUITES[a.suite]["speed"]
        argv = ["openssl", "speed", "-evp", name, "-bytes", "16384", "-seconds",
                str(a.aead_seconds), "-mr"]
        out = os.path.join(self.tmp, "speed.out")
        with open(out, "wb") as f, open(os.devnull, "rb") as null:
            p = Proc("openssl speed", argv, null.fileno(), f.fileno(), None, env=self.env)
            deadline = time.monotonic() + 60 + a.aead_seconds * 5
            while not p.try_reap():
                if time.monotonic() > deadline:
                    p.stop(0.5)
                    raise RunFailed("openssl speed timed out")
                time.sleep(0.05)
        text = read_text(out)
        if p.status != 0:
            raise RunFailed("openssl speed %s: %s" % (p.describe_status(), last_line(text)))
        m = re.search(r"^\+F:\d+:[^:]+:([\d.]+)", text, re.M)
        if not m:
            raise RunFailed("openssl speed -evp %s: no result in its output: %s"
                            % (name, last_line(text)))
        bps = float(m.group(1))
        # One core doing nothing else: CPU seconds per GiB = 1 / speed.
        return {"wall_s": GIB / bps, "bytes": GIB, "user_s": GIB / bps, "sys_s": 0.0,
                "maxrss_kib": p.rusage.ru_maxrss if p.rusage else 0, "endpoints": {}}

    # -- the whole benchmark

    def run(self):
        a = self.args
        cs = self.contenders()
        for c in cs:
            c.skip_reason = c.available()
            for m in (["aead"] if c.kind == "aead" else a.modes):
                self.results[(c.id, m)] = {"status": "skipped" if c.skip_reason else "ok",
                                           "reason": c.skip_reason, "rounds": [],
                                           "verify": None}
        self.header(cs)
        for r in range(0 if a.verify_round else 1, a.rounds + 1):
            verify = (r == 0) or a.verify_every_round
            tag = "round 0 (warm-up: checks the SHA-256 and the suite, not timed)" if r == 0 \
                else "round %d of %d" % (r, a.rounds)
            say("%s ..." % tag)
            order = cs[r % len(cs):] + cs[:r % len(cs)] if cs else []
            for m in a.modes:
                for c in order:
                    if c.kind == "aead" and m != a.modes[0]:
                        continue
                    res = self.res(c, m)
                    if res is None or res["status"] != "ok":
                        continue
                    t0 = time.monotonic()
                    try:
                        if c.kind == "aead":
                            one = self.aead_speed(verify)
                        else:
                            one = self.transfer(c, m, verify or (r == 1 and not a.verify_round))
                    except RunSkipped as e:
                        res["status"] = "skipped"
                        res["reason"] = str(e)
                        say("  SKIPPED %s, %s: %s" % (c.title, MODE_TITLE[m], e))
                        continue
                    except RunFailed as e:
                        res["status"] = "failed"
                        res["reason"] = "round %d: %s" % (r, e)
                        say("  FAILED %s, %s, round %d: %s"
                            % (c.title, self.mode_title(c, m), r, e))
                        continue
                    if r == 0:
                        res["verify"] = one
                    else:
                        res["rounds"].append(one)
                    if a.verbose:
                        say("  %-30s %-18s %8.1f MiB/s  %.2fs" % (
                            c.title, self.mode_title(c, m), one["bytes"] / MIB / one["wall_s"],
                            time.monotonic() - t0))
        self.summarize(cs)
        self.report(cs)
        if a.json:
            self.write_json(cs)
        failed = [k for k, v in self.results.items() if v["status"] == "failed"]
        return 1 if failed else 0

    def capped(self, c):
        """The smaller size c moves, or None."""
        cap = c.size_cap()[0]
        return cap if cap and cap < self.size else None

    def row_title(self, c):
        return c.title + (" *" if self.capped(c) else "")

    @staticmethod
    def mode_title(c, m):
        return MODE_TITLE["aead" if c.kind == "aead" else m]

    def header(self, cs):
        a = self.args
        s = SUITES[a.suite]
        uname = platform.uname()
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        ncpu = os.cpu_count() or 1
        say("ktlsctl bench: %s each way, TLS %s %s, %d timed round%s (round-robin)%s; "
            "figures are medians" % (human_size(self.size), a.tls,
                                      s["ossl13"] if a.tls == "1.3" else s["ossl12"],
                                      a.rounds, "" if a.rounds == 1 else "s",
                                      " after a warm-up round" if a.verify_round else ""))
        say("host: %s %s %s, %d CPUs, load %.2f; kTLS: %s; ktlsctl: %s"
            % (uname.system, uname.release, uname.machine, ncpu, load,
               "available" if self.ktls[0] else "unavailable (%s)" % self.ktls[1], self.ktlsctl))
        if not SUBREAPER:
            say("note: cannot be a child subreaper here: peak RSS includes this Python "
                "process's (Linux carries it across fork and exec)")
        if load > ncpu * 0.5:
            say("note: the machine is busy (load %.2f on %d CPUs): figures are noisy" % (load, ncpu))
        src = ("a regular file on the sender's stdin (ktlsctl can sendfile)" if a.source == "file"
               else "a pipe on the sender's stdin, fed from a file by splice")
        say("data: %s; the receiver's stdout is a pipe drained by splice to /dev/null "
            "(ktlsctl can splice into it)%s"
            % (src, "; pipes of %d bytes" % a.pipe_size if a.pipe_size else ""))
        for c in cs:
            if c.skip_reason:
                say("skipped: %s: %s" % (c.title, c.skip_reason))
        say()

    def summarize(self, cs):
        for (cid, m), res in self.results.items():
            if res["status"] != "ok" or not res["rounds"]:
                continue
            rs = res["rounds"]
            tput = [x["bytes"] / MIB / x["wall_s"] for x in rs]
            gib = [x["bytes"] / GIB for x in rs]
            user = [x["user_s"] / g for x, g in zip(rs, gib)]
            sys_ = [x["sys_s"] / g for x, g in zip(rs, gib)]
            tot = [u + s for u, s in zip(user, sys_)]
            med = statistics.median(tput)
            res["median"] = {
                "mib_per_s": med,
                "cpu_user_s_per_gib": statistics.median(user),
                "cpu_sys_s_per_gib": statistics.median(sys_),
                "cpu_s_per_gib": statistics.median(tot),
                "peak_rss_mib": statistics.median([x["maxrss_kib"] / 1024 for x in rs]),
                "spread_pct": (max(tput) - min(tput)) / med * 100 if med else 0.0,
                "rounds": len(rs),
            }

    def res(self, c, m):
        return self.results.get((c.id, "aead" if c.kind == "aead" else m))

    def _ktlsctl_refs(self, cs, m):
        return [c for c in cs if isinstance(c, Ktlsctl)
                and self.results.get((c.id, m), {}).get("median")]

    def ratio_rows(self, cs, m):
        """[(contender, [(ref, tput ratio, cpu ratio) ...])]: ktlsctl / peer."""
        refs = self._ktlsctl_refs(cs, m)
        rows = []
        for c in cs:
            res = self.res(c, m)
            med = res.get("median") if res else None
            cells = []
            for ref in refs:
                rm = self.results[(ref.id, m)]["median"]
                if ref is c or not med:
                    cells.append((ref, None, None))
                    continue
                cells.append((ref, rm["mib_per_s"] / med["mib_per_s"],
                              rm["cpu_s_per_gib"] / med["cpu_s_per_gib"]
                              if med["cpu_s_per_gib"] > 0 else None))
            rows.append((c, cells))
        return refs, rows

    def report(self, cs):
        a = self.args
        say()
        for m in a.modes:
            title = MODE_TITLE[m]
            say("== %s: %s%s" % (title, human_size(self.size),
                                 " per direction, throughput of both added up" if m == "both"
                                 else ", client to server"))
            if not a.ratios_only:
                say("  %-28s %9s %7s %22s %9s" % ("contender", "MiB/s", "spread",
                                                 "CPU s/GiB usr+sys=all", "peak RSS"))
                for c in cs:
                    res = self.res(c, m)
                    if res is None:
                        continue
                    if res["status"] != "ok" or "median" not in res:
                        st = res["status"].upper() if res["status"] != "ok" else "NO RESULT"
                        say("  %-28s %s: %s" % (c.title, st, res.get("reason") or ""))
                        continue
                    md = res["median"]
                    cpu = "%.2f+%.2f=%.2f" % (md["cpu_user_s_per_gib"], md["cpu_sys_s_per_gib"],
                                              md["cpu_s_per_gib"])
                    rss = "%.1f MiB" % md["peak_rss_mib"] if c.kind != "aead" else "-"
                    spread = "%.0f%%" % md["spread_pct"] if md["rounds"] > 1 else "-"
                    say("  %-28s %9.1f %7s %22s %9s" % (self.row_title(c), md["mib_per_s"],
                                                        spread, cpu, rss))
            refs, rows = self.ratio_rows(cs, m)
            if refs:
                say("  ratios, ktlsctl / contender: throughput (>1: ktlsctl faster) and CPU per "
                    "GiB (<1: ktlsctl cheaper)")
                say("  %-28s" % "" + "".join(" %22s" % r.title for r in refs) + "  spread")
                for c, cells in rows:
                    res = self.res(c, m)
                    if res is None:
                        continue
                    line = "  %-28s" % self.row_title(c)
                    for ref, tr, cr in cells:
                        if ref is c:
                            cell = "-"
                        elif tr is None:
                            cell = res["status"] if res["status"] != "ok" else "n/a"
                        else:
                            cell = "%s / %s" % (ratio(tr), ratio(cr))
                        line += " %22s" % cell
                    md = res.get("median")
                    if md and md["rounds"] > 1:
                        line += "  %5.0f%%" % md["spread_pct"]
                    say(line)
            else:
                say("  no ktlsctl result to compare with")
            for c in cs:
                if self.capped(c) and self.res(c, m):
                    say("  * %s moved %s, not %s: %s" % (c.title, human_size(self.capped(c)),
                                                         human_size(self.size), c.size_cap()[1]))
            say()
        say("how each contender moves the data:")
        for c in cs:
            if c.skip_reason:
                continue
            for m in a.modes:
                if c.kind == "aead" and m != a.modes[0]:
                    continue
                say("  %-28s %s%s" % (c.title, "" if c.kind == "aead" else MODE_TITLE[m] + ": ",
                                      c.note.get(m, "")))
        failed = [(k, v) for k, v in self.results.items() if v["status"] == "failed"]
        if failed:
            say()
            for (cid, m), v in failed:
                title = next(c.title for c in cs if c.id == cid)
                say("FAILED: %s, %s: %s" % (title, MODE_TITLE[m], v["reason"]))

    def write_json(self, cs):
        a = self.args
        doc = {
            "format": 1,
            "tool": "ktlsctl bench",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": {"size_bytes": self.size, "rounds": a.rounds, "tls": a.tls,
                       "suite": a.suite, "source": a.source, "sink": "pipe, splice to /dev/null",
                       "pipe_size": a.pipe_size or None, "modes": list(a.modes),
                       "warmup_round": a.verify_round},
            "host": {"kernel": platform.release(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "loadavg": list(os.getloadavg()),
                     "ktls": self.ktls[0], "ktls_reason": self.ktls[1],
                     "ktlsctl": self.ktlsctl, "no_zerocopy_option": self.has_no_zerocopy},
            "results": [],
            "ratios": [],
        }
        for c in cs:
            for m in a.modes:
                res = self.res(c, m)
                if res is None or (c.kind == "aead" and m != a.modes[0]):
                    continue
                doc["results"].append({
                    "contender": c.id, "title": c.title, "kind": c.kind,
                    "mode": "aead" if c.kind == "aead" else m,
                    "how": c.note.get(m, ""), "status": res["status"], "reason": res["reason"],
                    "size_bytes": self.capped(c) or self.size,
                    "median": res.get("median"), "rounds": res["rounds"],
                    "warmup": res["verify"]})
            for m in a.modes:
                refs, rows = self.ratio_rows(cs, m)
                for cc, cells in rows:
                    if cc is not c:
                        continue
                    for ref, tr, cr in cells:
                        if tr is not None:
                            doc["ratios"].append({"mode": m, "ktlsctl": ref.id, "contender": c.id,
                                                  "throughput": tr, "cpu_per_gib": cr})
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, a.json)
        say("results written to %s" % a.json)


# -------------------------------------------------- plain TCP endpoint mode

def tcp_endpoint(role, port, mode):
    """A plain TCP endpoint for the copy limit: sendfile/splice stdin to the
    socket, splice the socket to stdout.  Listening, it prints
    "listening on 127.0.0.1:PORT" on stderr."""
    if role == "listen":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", int(port)))
        ls.listen(1)
        sys.stderr.write("tcp-endpoint: listening on 127.0.0.1:%d\n" % ls.getsockname()[1])
        sys.stderr.flush()
        s, _ = ls.accept()
        ls.close()
    else:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        s.settimeout(None)
    send = mode == "both" or role == "connect"
    recv = mode == "both" or role == "listen"
    sfd = s.fileno()
    err = []

    def sender():
        try:
            st = os.fstat(0)
            import stat
            off = 0
            if stat.S_ISREG(st.st_mode):
                while True:
                    n = os.sendfile(sfd, 0, off, 1 << 22)
                    if n == 0:
                        break
                    off += n
            elif hasattr(os, "splice"):
                while os.splice(0, sfd, 1 << 20):
                    pass
            else:
                while True:
                    b = os.read(0, 1 << 20)
                    if not b:
                        break
                    s.sendall(b)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append("send: %s" % e)

    t = None
    if send:
        t = threading.Thread(target=sender, daemon=True)
        t.start()
    try:
        if recv:
            out_is_pipe = False
            try:
                import stat
                out_is_pipe = stat.S_ISFIFO(os.fstat(1).st_mode)
            except OSError:
                pass
            while True:
                if out_is_pipe and hasattr(os, "splice"):
                    n = os.splice(sfd, 1, 1 << 20)
                else:
                    b = os.read(sfd, 1 << 20)
                    n = len(b)
                    if n:
                        os.write(1, b)
                if n == 0:
                    break
        else:
            # Wait for the peer's close before closing, so nothing is reset.
            while os.read(sfd, 65536):
                pass
    except OSError as e:
        err.append("recv: %s" % e)
    if t:
        t.join()
    s.close()
    if err:
        sys.stderr.write("tcp-endpoint: %s\n" % "; ".join(err))
        return 1
    return 0


# ------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="bench.py",
        description="ktlsctl throughput benchmark against openssl, gnutls, socat and the "
                    "physical limits (tests/bench/README.md)")
    ap.add_argument("--size", type=parse_size, default=GIB,
                    help="bytes per direction (default 1G; K, M, G suffixes are binary)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--suite", choices=sorted(SUITES), default="aes-128-gcm",
                    help="cipher suite for every contender (default aes-128-gcm)")
    ap.add_argument("--tls", choices=("1.2", "1.3"), default="1.3", help="TLS version (default 1.3)")
    ap.add_argument("--source", choices=("file", "pipe"), default="file",
                    help="the sender's stdin: the data file itself (default) or a pipe fed from it")
    ap.add_argument("--modes", default="one-way,both",
                    help="comma-separated: one-way, both (default both of them)")
    ap.add_argument("--only", help="comma-separated contender ids to run (see --list)")
    ap.add_argument("--skip", help="comma-separated contender ids not to run")
    ap.add_argument("--list", action="store_true", help="list the contenders and exit")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--ratios-only", action="store_true",
                    help="print ratios only (for emulated machines: absolute figures mean nothing)")
    ap.add_argument("--no-warmup", dest="verify_round", action="store_false",
                    help="no untimed round 0; the first timed round checks the SHA-256 instead")
    ap.add_argument("--verify-every-round", action="store_true",
                    help="check the SHA-256 in every round (slows the sink)")
    ap.add_argument("--timeout", type=float, default=0,
                    help="seconds per transfer before it is killed and FAILED "
                         "(default 30 + 1 s per 2 MiB)")
    ap.add_argument("--stall", type=float, default=20,
                    help="seconds without any byte moving (or, once all data is in, without "
                         "the endpoints exiting) before a transfer FAILS (default 20)")
    ap.add_argument("--timeout-scale", type=float,
                    default=float(os.environ.get("KTLSCTL_TEST_TIMEOUT_SCALE", "1") or 1),
                    help=argparse.SUPPRESS)
    ap.add_argument("--aead-seconds", type=int, default=1,
                    help="seconds of each openssl speed run (default 1)")
    ap.add_argument("--pipe-size", type=int, default=0,
                    help="F_SETPIPE_SZ for every pipe (default: the system's 64 KiB)")
    ap.add_argument("--gnutls-size", type=parse_size, default=16 * MIB,
                    help="bytes gnutls-cli/gnutls-serv move at most (default 16M: gnutls-cli "
                         "writes one byte per system call)")
    ap.add_argument("--socat-buffer", type=int, default=131072, help=argparse.SUPPRESS)
    ap.add_argument("--ktlsctl", default=os.environ.get("KTLSCTL") or os.path.join(TOP, "ktlsctl"),
                    help="the ktlsctl binary (default $KTLSCTL, else the one at the top of the tree)")
    ap.add_argument("--tcpcopy", default=os.environ.get("BENCH_TCPCOPY")
                    or os.path.join(TOP, "tests", "bench", "tcpcopy"),
                    help="the plain TCP helper (default $BENCH_TCPCOPY, else "
                         "tests/bench/tcpcopy; `make bench` builds it); without it a Python "
                         "helper is used")
    ap.add_argument("--tmpdir", default=None, help="where the temporary directory goes")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (certificates, data, each transfer's "
                         "stderr) and say where")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get install socat (and the proxy scenario's stunnel4, "
                         "haproxy, libnginx-mod-stream) when missing")
    ap.add_argument("--scenario", choices=("transfer", "proxy", "originate"), default="transfer",
                    help="transfer (the default: tools end to end), proxy (TLS terminators "
                         "in front of one plain TCP backend: tests/bench/proxy.py) or "
                         "originate (TLS originators to one TLS server, sized by the --proxy-* "
                         "options: tests/bench/originate.py)")
    ap.add_argument("--proxy-conns", type=int, default=16,
                    help="proxy: concurrent connections of the many-connections figure "
                         "(default 16)")
    ap.add_argument("--proxy-handshakes", type=int, default=2000,
                    help="proxy: new connections of the handshake figure (default 2000)")
    ap.add_argument("--proxy-hs-concurrency", type=int, default=8,
                    help="proxy: handshakes in flight at once (default 8)")
    ap.add_argument("--proxy-idle", type=int, default=1000,
                    help="proxy: idle sessions held open for the memory figure (default 1000)")
    ap.add_argument("--proxy-dirs", default="up,down",
                    help="proxy: comma-separated transfer directions: up (client to backend, "
                         "the terminator decrypts), down (backend to client, it encrypts); "
                         "default both")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print every command and every transfer's figure")
    ap.add_argument("--tcp-endpoint", nargs=3, metavar=("ROLE", "PORT", "MODE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.tcp_endpoint:
        role, port, mode = args.tcp_endpoint
        return tcp_endpoint(role, port, mode)

    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in args.modes:
        if m not in MODES:
            ap.error("unknown mode %r (one-way, both)" % m)
    args.proxy_dirs = [d.strip() for d in args.proxy_dirs.split(",") if d.strip()]
    for d in args.proxy_dirs:
        if d not in ("up", "down"):
            ap.error("unknown --proxy-dirs direction %r (up, down)" % d)
    if not args.proxy_dirs:
        ap.error("--proxy-dirs needs up, down or both")
    args.only = [x.strip() for x in args.only.split(",")] if args.only else None
    args.skip = [x.strip() for x in args.skip.split(",")] if args.skip else None
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    procs.INTERRUPTED = ("\nbench: interrupted by signal %d: children killed, temporary files "
                         "removed\n")
    procs.at_cleanup(reap_orphans)
    procs.at_cleanup(remove_tmp_dirs)
    global SUBREAPER, KEEP
    SUBREAPER = set_subreaper()
    KEEP = args.keep
    b = None
    try:
        if args.scenario == "proxy":
            import proxy
            return proxy.main(args, sys.modules[__name__])
        if args.scenario == "originate":
            import originate
            return originate.main(args, sys.modules[__name__])
        b = Bench(args)
        if args.list:
            for c in b.contenders():
                say("%-20s %-30s %s" % (c.id, c.title, c.available() or "available"))
            return 0
        b.setup()
        return b.run()
    finally:
        procs.cleanup()


if __name__ == "__main__":
    sys.exit(main())
