"""Child processes: started in their own process group, every wait bounded,
all of them killed when the program ends or is interrupted.

Proc is the tests' process: stdin fed and stdout/stderr collected by
threads, so that neither side can block a test, with waits for events on
them (bytes, a line, a pattern).  Anything else that must die with the
program (the bench's measured endpoints) registers with register().
"""

import atexit
import fcntl
import os
import queue
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

from . import settings
from .settings import scaled
from .verdicts import Fail, Hang

# Anything in a ktlsctl stderr that means a sanitizer fired.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")

# ------------------------------------------------------- the kill registry

_live = []                  # objects with .kill(): every child not known dead
_live_lock = threading.Lock()
_cleanups = []              # after the children: temporary files and the like
_case = None                # the running case's processes (None: between cases)


def register(obj):
    with _live_lock:
        _live.append(obj)


def unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def at_cleanup(fn):
    """fn() runs at exit and on SIGINT/SIGTERM/SIGHUP, after every child
    was killed."""
    _cleanups.append(fn)


def kill_all():
    with _live_lock:
        objs = list(_live)
    for o in objs:
        o.kill()


def cleanup():
    """Kill every child, then run the cleanups (each call runs them all:
    they must not mind running twice)."""
    kill_all()
    for fn in _cleanups:
        fn()


atexit.register(cleanup)

# What an interrupted program says on stderr (%d: the signal).
INTERRUPTED = "\n*** interrupted by signal %d: children killed\n"


def _on_signal(signum, frame):
    cleanup()
    sys.stderr.write(INTERRUPTED % signum)
    sys.stderr.flush()
    os._exit(128 + signum)


for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


def begin_case():
    """From now on every Proc started (not shared) belongs to the case."""
    global _case
    _case = []
    return _case


def end_case():
    """Kill whatever the case left running."""
    global _case
    procs, _case = _case or [], None
    for p in procs:
        p.kill()


def kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def quote(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


# ------------------------------------------------------------------ waiting

def wait_for(pred, timeout, step=0.02):
    """Poll pred() until it is true or timeout (scaled) seconds pass;
    returns its last value.  For events nothing notifies us of (a file, a
    kernel counter, a socket's queue)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ----------------------------------------------------------------- network

def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def tcp_sockets(port=None):
    """The TCP sockets of /proc/net/tcp and tcp6 (no connection made, no
    accept consumed): [(local_port, remote_port, state, tx_queue,
    rx_queue)], state in hex ("0A" listening, "01" established)."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 5:
                        continue
                    lport = int(parts[1].rsplit(":", 1)[1], 16)
                    rport = int(parts[2].rsplit(":", 1)[1], 16)
                    tx, rx = (int(x, 16) for x in parts[4].split(":"))
                    if port is None or port in (lport, rport):
                        out.append((lport, rport, parts[3], tx, rx))
        except OSError:
            continue
    return out


def listening(port):
    return any(s[0] == port and s[2] == "0A" for s in tcp_sockets(port))


def wait_listening(port, proc=None, timeout=10, probe_connect=False):
    """Wait until something listens on TCP port (looked up in /proc/net, which
    does not consume an accept, unless probe_connect).  Returns False if proc
    exited first or on timeout."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        if probe_connect:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                pass
        elif listening(port):
            return True
        time.sleep(0.02)
    return False


# -------------------------------------------------------------------- Proc

class Proc:
    """A child process with its stdout and stderr collected by threads and its
    stdin fed by a writer thread, so that neither side can block the test.

    stdin: True (a pipe fed with send()/close_stdin()), None (/dev/null),
           bytes (sent, then stdin closed), or an open file object.
    stdout_cap / stderr_cap: keep only the last N bytes (None keeps all).
    shared: the process outlives the case that starts it (a server several
            cases use); it is killed when the file ends.
    t_last_out / t_out_eof: when the last stdout bytes arrived, and when
            stdout ended (the process exited or closed it): monotonic time.
    """

    def __init__(self, argv, name=None, env=None, stdin=True, cwd=None,
                 stdout_cap=None, stderr_cap=4 << 20, extra_env=None, stdout=None,
                 slow_stdout=None, stall_stdout=0, shared=False):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        if env is None:
            env = dict(os.environ)
        if extra_env:
            env = dict(env)
            env.update(extra_env)
        self.out = bytearray()
        self.err = bytearray()
        self.out_total = 0
        self.t_last_out = None
        self.t_out_eof = None
        self.out_eof = False
        self.err_eof = False
        self.stdout_cap = stdout_cap
        self.stderr_cap = stderr_cap
        # (bytes per read, seconds between reads): a slow consumer of stdout;
        # stall_stdout: seconds it stalls after its first read (a consumer
        # that stops once the data has started)
        self.slow_stdout = slow_stdout
        self.stall_stdout = stall_stdout
        self.cv = threading.Condition()
        self.epipe = False
        self.write_error = None
        self.written = 0
        self.queued = 0
        self.stdin_closed = False
        self.t0 = time.monotonic()
        self.rc = None
        feed = None
        if stdin is True or isinstance(stdin, (bytes, bytearray)):
            stdin_arg = subprocess.PIPE
            if isinstance(stdin, (bytes, bytearray)):
                feed = stdin
        elif stdin is None:
            stdin_arg = subprocess.DEVNULL
        else:
            stdin_arg = stdin
        self.p = subprocess.Popen(self.argv, stdin=stdin_arg,
                                  stdout=subprocess.PIPE if stdout is None else stdout,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd,
                                  start_new_session=True)
        self.pid = self.p.pid
        register(self)
        if _case is not None and not shared:
            _case.append(self)
        self._threads = []
        if self.p.stdout is not None:
            self._threads.append(self._start(self._reader, self.p.stdout, "out"))
        else:
            self.out_eof = True
        self._threads.append(self._start(self._reader, self.p.stderr, "err"))
        self._q = None
        if self.p.stdin is not None:
            self._q = queue.Queue()
            self._threads.append(self._start(self._writer))
            if feed is not None:
                self.send(feed)
                self.close_stdin()

    def _start(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        return t

    def _reader(self, f, which):
        fd = f.fileno()
        chunk, pause = (1 << 16, 0)
        if which == "out" and self.slow_stdout:
            chunk, pause = self.slow_stdout
        stall = self.stall_stdout if which == "out" else 0
        while True:
            if pause:
                time.sleep(pause)
            try:
                b = os.read(fd, chunk)
            except OSError:
                b = b""
            with self.cv:
                if not b:
                    if which == "out":
                        self.out_eof = True
                        self.t_out_eof = time.monotonic()
                    else:
                        self.err_eof = True
                    self.cv.notify_all()
                    break
                if which == "out":
                    self.out += b
                    self.out_total += len(b)
                    self.t_last_out = time.monotonic()
                    if self.stdout_cap is not None and len(self.out) > self.stdout_cap:
                        del self.out[:len(self.out) - self.stdout_cap]
                else:
                    self.err += b
                    if self.stderr_cap is not None and len(self.err) > self.stderr_cap:
                        del self.err[:len(self.err) - self.stderr_cap]
                self.cv.notify_all()
            if stall:
                time.sleep(stall)
                stall = 0
        try:
            f.close()
        except OSError:
            pass

    def _writer(self):
        fd = self.p.stdin.fileno()
        while True:
            item = self._q.get()
            if item is None:
                try:
                    self.p.stdin.close()
                except OSError:
                    pass
                with self.cv:
                    self.stdin_closed = True
                    self.cv.notify_all()
                return
            if callable(item):
                item()
                continue
            mv = memoryview(item)
            try:
                while len(mv):
                    n = os.write(fd, mv[:1 << 16])
                    mv = mv[n:]
                    with self.cv:
                        self.written += n
                        self.cv.notify_all()
            except BrokenPipeError:
                self.epipe = True
            except OSError as e:
                self.write_error = e
            if self.epipe or self.write_error:
                # Drain the queue so that waiters are not left hanging.
                try:
                    self.p.stdin.close()
                except OSError:
                    pass
                with self.cv:
                    self.stdin_closed = True
                    self.cv.notify_all()
                while True:
                    it = self._q.get()
                    if it is None:
                        return

    # -- feeding stdin
    def send(self, data):
        if self._q is None:
            raise RuntimeError("stdin of %s is not a pipe" % self.name)
        self.queued += len(data)
        self._q.put(bytes(data))

    def close_stdin(self):
        if self._q is not None:
            self._q.put(None)

    def wait_written(self, n, timeout):
        """Wait until n bytes were written into the child's stdin."""
        return self._wait_cond(lambda: self.written >= n or self.epipe
                               or self.write_error is not None or self.stdin_closed,
                               timeout)

    def wait_stdin_read(self, timeout):
        """Wait until the child has read everything sent to its stdin so
        far (written into the pipe, and the pipe empty): for programs that
        take a command from one read (s_server, s_client)."""
        def unread():
            try:
                return struct.unpack("i", fcntl.ioctl(self.p.stdin.fileno(), termios.FIONREAD,
                                                      b"\0" * 4))[0]
            except (OSError, ValueError):      # closed meanwhile
                return -1
        if not self.wait_written(self.queued, timeout) or self.epipe or self.stdin_closed:
            return False
        return wait_for(lambda: unread() <= 0, timeout, step=0.005) and unread() == 0

    # -- waiting for output
    def _wait_cond(self, pred, timeout):
        deadline = time.monotonic() + scaled(timeout)
        with self.cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.2))
            return True

    def wait_until(self, pred, timeout):
        """Wait until pred(self) is true (checked whenever output arrives);
        returns its last value."""
        self._wait_cond(lambda: pred(self) or (self.out_eof and self.err_eof), timeout)
        return pred(self)

    def wait_out(self, n, timeout):
        """Wait until stdout has n bytes in total; False on timeout or EOF."""
        self._wait_cond(lambda: self.out_total >= n or self.out_eof, timeout)
        return self.out_total >= n

    def wait_out_contains(self, needle, timeout):
        self._wait_cond(lambda: needle in self.out or self.out_eof, timeout)
        return needle in self.out

    def wait_err(self, pattern, timeout):
        """Wait until stderr matches the regex; return the match or None."""
        rx = re.compile(pattern)
        box = []

        def pred():
            m = rx.search(self.err.decode("utf-8", "replace"))
            if m:
                box.append(m)
                return True
            return self.err_eof
        self._wait_cond(pred, timeout)
        return box[0] if box else None

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout):
        """Wait for exit and for stdout/stderr EOF; kill and raise Hang on timeout."""
        try:
            self.rc = self.p.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise Hang("%s did not exit within %.0fs (killed)\n%s"
                       % (self.name, scaled(timeout), self.describe()))
        # Grandchildren could keep the pipes open: bound the wait for EOF.
        self._wait_cond(lambda: self.out_eof and self.err_eof, 5)
        return self.rc

    def kill(self):
        if self.p.poll() is None:
            kill_group(self.p.pid, signal.SIGKILL)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        else:
            # the leader is gone, the group may not be
            kill_group(self.p.pid, signal.SIGKILL)
        self.close_stdin()

    def signal(self, sig):
        try:
            os.kill(self.p.pid, sig)
        except ProcessLookupError:
            pass

    @property
    def stdout(self):
        return bytes(self.out)

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")

    def elapsed(self):
        return time.monotonic() - self.t0

    def describe(self, tail=1500):
        rc = self.p.poll()
        s = "    command: %s\n    exit status: %s\n" % (quote(self.argv), rc)
        io = []
        if self._q is not None:
            io.append("%d bytes written to its stdin%s" % (
                self.written, ", stdin closed" if self.stdin_closed else ", stdin open"))
            if self.epipe:
                io.append("EPIPE writing its stdin")
        if self.p.stdout is not None:
            io.append("%d bytes read from its stdout" % self.out_total)
        if io:
            s += "    i/o: " + "; ".join(io) + "\n"
        e = self.stderr
        if len(e) > tail:
            e = "[...]" + e[-tail:]
        s += "    stderr:\n" + "".join("      | " + line + "\n" for line in e.splitlines())
        return s


# ------------------------------------------------------------------ checks

def check_no_sanitizer(proc):
    e = proc.stderr
    for m in SANITIZER_MARKERS:
        if m in e:
            raise Fail("sanitizer report in stderr of %s (%r)\n%s" % (proc.name, m, proc.describe(6000)))


def check_exit(proc, expected, timeout, what=None):
    rc = proc.wait(timeout)
    check_no_sanitizer(proc)
    if rc != expected:
        raise Fail("%s: exit status %s, expected %s\n%s"
                   % (what or proc.name, rc, expected, proc.describe()))
    return rc


def check_stderr(proc, pattern, what="stderr", flags=re.I):
    if not re.search(pattern, proc.stderr, flags):
        raise Fail("%s of %s does not match /%s/\n%s" % (what, proc.name, pattern, proc.describe()))


# ----------------------------------------------------------------- ktlsctl

def ktlsctl_argv(*args):
    return [settings.KTLSCTL] + [str(a) for a in args]


def ktlsctl(*args, **kw):
    """Start ktlsctl with args; keyword arguments go to Proc."""
    kw.setdefault("name", "ktlsctl")
    return Proc(ktlsctl_argv(*args), **kw)


def ktlsctl_run(*args, timeout=20, extra_env=None):
    """`ktlsctl ARGS` to completion, without standard input: (proc, exit
    status), sanitizer reports already checked."""
    p = ktlsctl(*args, stdin=None, extra_env=extra_env,
                name="ktlsctl " + " ".join(str(a) for a in args))
    rc = p.wait(timeout)
    check_no_sanitizer(p)
    return p, rc


def ktlsctl_listen(*args, **kw):
    """Start `ktlsctl listen 127.0.0.1:0 ARGS` and wait for its
    "ktlsctl: listening on ADDR:PORT" line; returns (proc, port)."""
    addr = kw.pop("addr", "127.0.0.1:0")
    timeout = kw.pop("ready_timeout", 15)
    p = ktlsctl("listen", addr, *args, **kw)
    m = p.wait_err(r"ktlsctl: listening on (\S+):(\d+)", timeout)
    if not m:
        alive = p.alive()
        p.kill()
        p.wait(5)
        raise Fail("ktlsctl listen did not print 'ktlsctl: listening on ADDR:PORT' within %ss%s\n%s"
                   % (timeout, "" if not alive else " (still running)", p.describe()))
    return p, int(m.group(2))


# Its stderr, one "ktlsctl: " line at a time (the prefix taken off).

def kt_lines(proc):
    """ktlsctl's own stderr lines, without the "ktlsctl: " prefix."""
    return [l[9:] for l in proc.stderr.splitlines() if l.startswith("ktlsctl: ")]


def kt_count(proc, text):
    """How many stderr lines are exactly "ktlsctl: TEXT"."""
    return sum(1 for l in kt_lines(proc) if l == text)


def need_line(proc, text, n=1):
    got = kt_count(proc, text)
    if got != n:
        raise Fail("expected the line 'ktlsctl: %s' %d time(s), found it %d time(s)\n%s"
                   % (text, n, got, proc.describe(4000)))


def need_regex_line(proc, pattern, what=None):
    """The first line "ktlsctl: <whole line matching pattern>": its match."""
    rx = re.compile(pattern)
    for l in kt_lines(proc):
        m = rx.fullmatch(l)
        if m:
            return m
    raise Fail("no stderr line 'ktlsctl: <%s>' (%s)\n%s" % (pattern, what or "", proc.describe(4000)))


def wait_line_count(proc, text, n, timeout):
    """Wait until "ktlsctl: TEXT" was printed n times."""
    proc.wait_until(lambda p: kt_count(p, text) >= n, timeout)
    return kt_count(proc, text) >= n
