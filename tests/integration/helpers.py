"""Shared harness for ktlsctl's integration tests (Python 3 standard library only).

Each test_*.py builds a Suite, registers cases with @suite.case(name), and ends
with suite.main().  automake runs the scripts as `python3 tests/integration/X.py`
with KTLSCTL, TOP_SRCDIR and TOP_BUILDDIR in the environment.

Conventions (see also the module docstrings of the test files):
  * one output line per case: "PASS name (1.23s)", "FAIL name (1.23s)" followed
    by indented details, or "SKIP name: reason"; a final line
    "N passed, N failed, N skipped".  Exit 0 / 1, or 77 when a peer program the
    file needs is missing (said loudly on stderr).
  * every child runs in its own process group, every wait has a timeout, and a
    per-case watchdog kills whatever a case left running; a hang is a FAIL.
  * certificates are generated at run time in a private temporary directory
    that is removed at exit; nothing secret lives in the repository.

KTLSCTL_VALGRIND=1 runs every ktlsctl under valgrind's memcheck (see
VALGRIND below; `make check-valgrind`).

Command-line options of every test script:
  -k SUBSTRING   run only the cases whose name contains SUBSTRING (repeatable)
  -l             list the case names and exit
  -x             keep the temporary directory (its path is printed)
  --peers-only   (test_peers.py) run only the peer-versus-peer sanity cases,
                 which need no ktlsctl binary
"""

import atexit
import hashlib
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
KTLSCTL = os.environ.get("KTLSCTL") or (
    os.path.join(TOP_BUILDDIR, "ktlsctl")
    if os.path.exists(os.path.join(TOP_BUILDDIR, "ktlsctl"))
    else "/work/main/ktlsctl")

# The record channel under test: KTLSCTL_TEST_CHANNEL=user-space (the
# default: no fallback notice on machines without kTLS) or kernel (the VM
# tier: --ktls require, so a case cannot pass on the user-space channel).
CHANNEL = os.environ.get("KTLSCTL_TEST_CHANNEL") or "user-space"
if CHANNEL not in ("user-space", "kernel"):
    sys.stderr.write("KTLSCTL_TEST_CHANNEL must be user-space or kernel, not %r\n" % CHANNEL)
    sys.exit(2)
CHANNEL_ARGS = ["--ktls", "require" if CHANNEL == "kernel" else "off"]

# ktlsctl's --eof for the cases written for peers that wait for us to close
# first (echo servers, s_server with its stdin held open): close_notify at
# the end of input, as ktlsctl did before --eof existed, so that they end
# without the default's quiet wait.  test_eof.py covers every mode.
EOF_CLOSE = ["--eof", "close"]

# Anything in a ktlsctl stderr that means a sanitizer fired.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer")

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

# Multiplier for every timeout (slow machines, valgrind, ...).
TIMEOUT_SCALE = float(os.environ.get("KTLSCTL_TEST_TIMEOUT_SCALE", "")
                      or (VALGRIND_TIMEOUT_SCALE if VALGRIND else 1))


def _setup_valgrind():
    """Put the wrapper in front of KTLSCTL; exit 77 loudly if this cannot be."""
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


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


class Skip(Exception):
    """Raised by a case that cannot run here; the message is the reason."""


class Fail(AssertionError):
    """Raised by a case when ktlsctl (or a peer) misbehaves."""


class Hang(Fail):
    """A process did not finish within its timeout (it has been killed)."""


# ----------------------------------------------------------------- processes

_all_procs = []
_all_lock = threading.Lock()


def _kill_group(pid, sig=signal.SIGKILL):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    except OSError:
        pass


def kill_all():
    with _all_lock:
        procs = list(_all_procs)
    for p in procs:
        p.kill()


atexit.register(kill_all)


def _on_signal(signum, frame):
    kill_all()
    sys.stderr.write("\n*** interrupted by signal %d: children killed\n" % signum)
    sys.stderr.flush()
    os._exit(128 + signum)


for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


def quote(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


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
        with _all_lock:
            _all_procs.append(self)
        if _current_case_procs is not None and not shared:
            _current_case_procs.append(self)
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
        self._q.put(bytes(data))

    def close_stdin(self):
        if self._q is not None:
            self._q.put(None)

    def wait_written(self, n, timeout):
        """Wait until n bytes were written into the child's stdin."""
        return self._wait_cond(lambda: self.written >= n or self.epipe
                               or self.write_error is not None or self.stdin_closed,
                               timeout)

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
            _kill_group(self.p.pid, signal.SIGKILL)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        else:
            # the leader is gone, the group may not be
            _kill_group(self.p.pid, signal.SIGKILL)
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


# --------------------------------------------------------------- checks

def sha(b):
    return hashlib.sha256(b).hexdigest()


def first_diff(a, b):
    n = min(len(a), len(b))
    step = 1 << 16
    for off in range(0, n, step):
        if a[off:off + step] != b[off:off + step]:
            for i in range(off, min(off + step, n)):
                if a[i] != b[i]:
                    return i
    return n if len(a) != len(b) else -1


def check_data(what, got, expected):
    if got == expected:
        return
    d = first_diff(got, expected)
    raise Fail("%s: data mismatch: got %d bytes (sha256 %s…), expected %d bytes "
               "(sha256 %s…), first difference at offset %d"
               % (what, len(got), sha(got)[:16], len(expected), sha(expected)[:16], d))


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


def ktlsctl_error_lines(proc):
    """stderr lines that are ktlsctl's own (prefixed "ktlsctl: ")."""
    return [l for l in proc.stderr.splitlines() if l.startswith("ktlsctl: ")]


# ----------------------------------------------------------------- data

def random_bytes(n):
    return os.urandom(n)


_NONUL = bytes([1]) + bytes(range(1, 256))


def nonul_lines(n):
    """Random bytes without NUL, ending with a newline: what gnutls-serv --echo
    (which handles the request as a C string and echoes once per line) passes
    through unchanged."""
    b = bytearray(os.urandom(n).translate(_NONUL))
    if n:
        b[-1] = 0x0A
    return bytes(b)


def hex_lines(n, width=63):
    """n bytes of random lowercase hex text in lines of width+1: safe for the
    line-command parsers of s_client/s_server (Q, R, k, K, ...) and of
    gnutls-cli --inline-commands (^...^)."""
    raw = os.urandom((n + 1) // 2 + 1).hex()
    out = bytearray()
    pos = 0
    while len(out) < n:
        take = min(width, n - len(out) - 1)
        if take <= 0:
            out += b"\n"
            break
        out += raw[pos:pos + take].encode()
        pos += take
        if pos + width >= len(raw):
            raw = os.urandom(width * 64).hex()
            pos = 0
        out += b"\n"
    return bytes(out[:n])


# ----------------------------------------------------------------- network

def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _proc_net_listening(port):
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 4:
                        continue
                    local, state = parts[1], parts[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


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
        elif _proc_net_listening(port):
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------- certificates

class Certs:
    """Certificates generated with certtool (gnutls-bin) in a private directory.

    ca            CA (ECDSA P-256) that signs srv_ec, srv_rsa, client, wronghost, expired
    srv_ec        server cert/key, ECDSA P-256, CN/SAN localhost, 127.0.0.1, ::1
    srv_rsa       the same with RSA 2048
    client        client certificate (ECDSA) signed by ca
    ca2, other    an unrelated CA and a localhost server cert signed by it
    wronghost     server cert for "wronghost.invalid" only, signed by ca
    expired       server cert for localhost, signed by ca, expired in 2021
    Each cert attribute is a (certfile, keyfile) pair; ca, ca2 are file names.
    """

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.ca = self._ca("ca", "ktlsctl test CA")
        self.ca2 = self._ca("ca2", "unrelated test CA")
        self.srv_ec = self._leaf("srv-ec", "ecdsa", "ca", "localhost",
                                 ["localhost"], ["127.0.0.1", "::1"], server=True)
        self.srv_rsa = self._leaf("srv-rsa", "rsa", "ca", "localhost",
                                  ["localhost"], ["127.0.0.1", "::1"], server=True)
        self.client = self._leaf("client", "ecdsa", "ca", "ktlsctl test client",
                                 [], [], server=False)
        self.other = self._leaf("other", "ecdsa", "ca2", "localhost",
                                ["localhost"], ["127.0.0.1", "::1"], server=True)
        self.wronghost = self._leaf("wronghost", "ecdsa", "ca", "wronghost.invalid",
                                    ["wronghost.invalid"], [], server=True)
        self.expired = self._leaf("expired", "ecdsa", "ca", "localhost",
                                  ["localhost"], ["127.0.0.1", "::1"], server=True,
                                  dates=("2020-01-01 00:00:00 UTC", "2021-01-01 00:00:00 UTC"))

    def _run(self, argv):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(60), cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError("certificate generation failed: %s\n%s"
                               % (quote(argv), r.stderr.decode("utf-8", "replace")))

    def _key(self, name, kind):
        path = os.path.join(self.dir, name + ".key")
        if kind == "rsa":
            self._run(["certtool", "--generate-privkey", "--key-type", "rsa",
                       "--bits", "2048", "--outfile", path])
        else:
            self._run(["certtool", "--generate-privkey", "--key-type", "ecdsa",
                       "--curve", "secp256r1", "--outfile", path])
        return path

    def _tmpl(self, name, lines):
        path = os.path.join(self.dir, name + ".tmpl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _ca(self, name, cn):
        key = self._key(name, "ecdsa")
        tmpl = self._tmpl(name, ['cn = "%s"' % cn, "ca", "cert_signing_key",
                                 "crl_signing_key", "expiration_days = 7",
                                 "serial = %d" % int.from_bytes(os.urandom(4), "big")])
        cert = os.path.join(self.dir, name + ".pem")
        self._run(["certtool", "--generate-self-signed", "--load-privkey", key,
                   "--template", tmpl, "--outfile", cert])
        return cert

    def _leaf(self, name, kind, ca, cn, dns, ips, server, dates=None):
        key = self._key(name, kind)
        lines = ['cn = "%s"' % cn, "signing_key",
                 "serial = %d" % int.from_bytes(os.urandom(4), "big")]
        if kind == "rsa":
            lines.append("encryption_key")
        lines += ['dns_name = "%s"' % d for d in dns]
        lines += ['ip_address = "%s"' % i for i in ips]
        lines.append("tls_www_server" if server else "tls_www_client")
        if dates:
            lines += ['activation_date = "%s"' % dates[0], 'expiration_date = "%s"' % dates[1]]
        else:
            lines.append("expiration_days = 7")
        tmpl = self._tmpl(name, lines)
        cert = os.path.join(self.dir, name + ".pem")
        self._run(["certtool", "--generate-certificate", "--load-privkey", key,
                   "--load-ca-certificate", os.path.join(self.dir, ca + ".pem"),
                   "--load-ca-privkey", os.path.join(self.dir, ca + ".key"),
                   "--template", tmpl, "--outfile", cert])
        return (cert, key)


# ----------------------------------------------------------------- ktlsctl

def ktlsctl_argv(*args):
    return [KTLSCTL] + [str(a) for a in args]


def ktlsctl(*args, **kw):
    """Start ktlsctl with args; keyword arguments go to Proc."""
    kw.setdefault("name", "ktlsctl")
    return Proc(ktlsctl_argv(*args), **kw)


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


# ---------------------------------------------------------- peer programs

def have(prog):
    return shutil.which(prog) is not None


def require_programs(*progs):
    missing = [p for p in progs if not have(p)]
    if missing:
        msg = ("\n*** SKIPPING THE WHOLE FILE (exit 77): required peer program(s) not found: %s\n"
               "*** install them (Debian: apt-get install gnutls-bin openssl) to run these tests\n"
               % ", ".join(missing))
        sys.stdout.write(msg)
        sys.stdout.flush()
        sys.exit(77)


def kernel_has_ktls_ulp():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


# ------------------------------------------------------------------ runner

_current_case_procs = None
_current_case_notes = []


def note(text):
    """A figure worth reporting (a timing, a count): printed under the
    case's result line, never asserted."""
    _current_case_notes.append(text)


class Suite:
    def __init__(self, title, case_timeout=180):
        self.title = title
        self.cases = []
        self.case_timeout = case_timeout
        self.tmp = None
        self.keep_tmp = False
        self._certs = None

    def case(self, name, timeout=None, group="main"):
        def deco(fn):
            self.cases.append((name, fn, timeout or self.case_timeout, group))
            return fn
        return deco

    def add(self, name, fn, timeout=None, group="main"):
        self.cases.append((name, fn, timeout or self.case_timeout, group))

    @property
    def certs(self):
        if self._certs is None:
            self._certs = Certs(os.path.join(self.tmpdir(), "certs"))
        return self._certs

    def tmpdir(self):
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="ktlsctl-it-")
            if not self.keep_tmp:
                atexit.register(shutil.rmtree, self.tmp, True)
        return self.tmp

    def main(self, argv=None, groups=("main",)):
        global _current_case_procs
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
        cases = [c for c in self.cases if c[3] in groups
                 and (not only or any(o in c[0] for o in only))]
        if listing:
            for c in cases:
                print(c[0])
            return 0
        print("== %s: %d case(s); ktlsctl = %s%s" % (
            self.title, len(cases), KTLSCTL,
            " (valgrind; timeouts x%g)" % TIMEOUT_SCALE if VALGRIND else ""))
        if "main" in groups and not os.access(KTLSCTL, os.X_OK):
            print("*** ktlsctl binary not found or not executable at %s (build it first: make)" % KTLSCTL)
        if self.keep_tmp:
            print("   temporary directory: %s" % self.tmpdir())
        sys.stdout.flush()
        passed = failed = skipped = 0
        failures = []
        t_all = time.monotonic()
        for name, fn, timeout, _g in cases:
            _current_case_procs = []
            procs = _current_case_procs
            fired = []

            def watchdog(procs=procs, fired=fired):
                fired.append(True)
                for p in list(procs):
                    p.kill()
            timer = threading.Timer(scaled(timeout), watchdog)
            timer.daemon = True
            t0 = time.monotonic()
            status, detail = "PASS", ""
            timer.start()
            try:
                if "main" in groups and not os.access(KTLSCTL, os.X_OK):
                    raise Fail("ktlsctl binary not found at %s" % KTLSCTL)
                fn()
            except Skip as e:
                status, detail = "SKIP", str(e)
            except Fail as e:
                status, detail = "FAIL", str(e)
            except Exception:
                status, detail = "FAIL", "harness exception:\n" + traceback.format_exc()
            finally:
                timer.cancel()
                for p in procs:
                    p.kill()
                _current_case_procs = None
            reports = valgrind_reports()
            if reports:
                status = "FAIL"
                detail = ("valgrind reported errors in %d ktlsctl process(es):\n" % len(reports)
                          + "".join("  pid %s:\n%s" % (pid, "".join(
                              "      | " + l + "\n" for l in text.splitlines()[:80]))
                                    for pid, text in reports)
                          + (detail and "\n" + detail))
            dt = time.monotonic() - t0
            if fired and status == "PASS":
                status, detail = "FAIL", "case watchdog fired after %.0fs" % scaled(timeout)
            elif fired:
                detail = "case watchdog fired after %.0fs (processes killed)\n%s" % (scaled(timeout), detail)
            notes = ["    note: " + n for n in _current_case_notes]
            del _current_case_notes[:]
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
        kill_all()
        if failures:
            print("-- failed cases:")
            for f in failures:
                print("   " + f)
        print("-- %s took %.1fs" % (self.title, time.monotonic() - t_all))
        print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
        sys.stdout.flush()
        return 1 if failed else 0


# ------------------------------------------------- a scriptable Python TLS peer

import ssl  # noqa: E402


class PyTls:
    """One TLS connection driven by hand through ssl.SSLObject over a plain
    socket, so that a test controls exactly when close_notify is sent, can
    keep reading after sending it (TLS 1.3 half-close), can tell a
    close_notify from a bare TCP FIN, and can drop the connection without
    close_notify.  Every call has a timeout."""

    def __init__(self, sock, ctx, server_side, server_hostname=None, timeout=20):
        self.sock = sock
        self.sock.settimeout(scaled(timeout))
        self.inc = ssl.MemoryBIO()
        self.outb = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.outb, server_side=server_side,
                                server_hostname=server_hostname)
        self.peer_closed = False       # close_notify received
        self.tcp_eof = False

    def _flush(self):
        d = self.outb.read()
        if d:
            self.sock.sendall(d)

    def _fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            self.tcp_eof = True
            self.inc.write_eof()
            return False
        self.inc.write(d)
        return True

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise Fail("TLS peer: EOF during the handshake")

    def version(self):
        return self.obj.version()

    def cipher(self):
        return self.obj.cipher()

    def send(self, data):
        mv = memoryview(data)
        while len(mv):
            n = self.obj.write(mv[:16384])
            mv = mv[n:]
            self._flush()

    def recv_some(self):
        """Return bytes, or b"" at close_notify; raises Fail on TCP EOF
        without close_notify (sets tcp_eof)."""
        while True:
            try:
                d = self.obj.read(1 << 16)
                if not d:
                    self.peer_closed = True
                return d
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    continue        # next read raises SSLEOFError
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                return b""
            except ssl.SSLEOFError:
                self.tcp_eof = True
                raise Fail("TLS peer: the connection ended without close_notify")

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            d = self.recv_some()
            if not d:
                raise Fail("TLS peer: close_notify after %d of %d bytes" % (len(buf), n))
            buf += d
        return bytes(buf)

    def recv_until_close(self):
        """Read until close_notify; returns (data, how) with how
        'close_notify', 'eof' (TCP EOF without close_notify) or 'error: ...'."""
        buf = bytearray()
        while True:
            try:
                d = self.recv_some()
            except Fail:
                return bytes(buf), "eof"
            except (ssl.SSLError, OSError) as e:
                return bytes(buf), "error: %r" % (e,)
            if not d:
                return bytes(buf), "close_notify"
            buf += d

    def send_close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass
        self._flush()

    def close_tcp(self, rst=False):
        """Drop the connection without close_notify (FIN, or RST if rst)."""
        try:
            if rst:
                import struct
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def py_client_ctx(cafile=None, version=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _pin_version(ctx, version)
    return ctx


def py_server_ctx(cert, key, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    _pin_version(ctx, version)
    return ctx


def _pin_version(ctx, version):
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3


class ServerThread:
    """A one-connection TCP server on 127.0.0.1:0 (or :port) running
    fn(conn_socket) in a thread.  .port, .join(timeout) -> re-raises what fn raised, .result is
    what fn returned."""

    def __init__(self, fn, accept_timeout=30, family=socket.AF_INET, host="127.0.0.1", port=0):
        self.ls = socket.socket(family, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(4)
        self.ls.settimeout(scaled(accept_timeout))
        self.port = self.ls.getsockname()[1]
        self.fn = fn
        self.result = None
        self.exc = None
        self.conn = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            c, _ = self.ls.accept()
            self.conn = c
            self.result = self.fn(c)
        except BaseException as e:     # reported by join()
            self.exc = e
        finally:
            try:
                self.ls.close()
            except OSError:
                pass

    def join(self, timeout=30):
        self.t.join(scaled(timeout))
        if self.t.is_alive():
            self.abort()
            self.t.join(5)
            raise Hang("the Python test peer did not finish within %.0fs" % scaled(timeout))
        if self.exc is not None:
            if isinstance(self.exc, Fail):
                raise self.exc
            raise Fail("the Python test peer failed: %r" % (self.exc,))
        return self.result

    def abort(self):
        for s in (self.conn, self.ls):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass


# ------------------------------------------------------ the real TLS peers

CIPHERS = ("AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM")
VERSIONS = ("1.2", "1.3")

_OSSL12 = {
    "AES-128-GCM": "ECDHE-{a}-AES128-GCM-SHA256",
    "AES-256-GCM": "ECDHE-{a}-AES256-GCM-SHA384",
    "CHACHA20-POLY1305": "ECDHE-{a}-CHACHA20-POLY1305",
    "AES-128-CCM": "ECDHE-{a}-AES128-CCM",
}
_OSSL13 = {
    "AES-128-GCM": "TLS_AES_128_GCM_SHA256",
    "AES-256-GCM": "TLS_AES_256_GCM_SHA384",
    "CHACHA20-POLY1305": "TLS_CHACHA20_POLY1305_SHA256",
    "AES-128-CCM": "TLS_AES_128_CCM_SHA256",
}


def gnutls_priority(version=None, cipher=None, extra=""):
    p = "NORMAL"
    if version:
        p += ":-VERS-ALL:+VERS-TLS" + version
    if cipher:
        p += ":-CIPHER-ALL:+" + cipher
    return p + extra


def openssl_tls_args(version=None, cipher=None, certkind="ecdsa"):
    """s_server/s_client arguments pinning the version and the cipher."""
    a = []
    if version == "1.2":
        a.append("-tls1_2")
        if cipher:
            a += ["-cipher", _OSSL12[cipher].format(a="ECDSA" if certkind == "ecdsa" else "RSA")]
    elif version == "1.3":
        a.append("-tls1_3")
        if cipher:
            a += ["-ciphersuites", _OSSL13[cipher]]
    return a


def ktlsctl_tls_args(version=None, cipher=None):
    a = []
    if version:
        a.append("--tls" + version)
    if cipher:
        a += ["--cipher", cipher]
    return a


def start_gnutls_serv(cert, key, priority=None, echo=True, extra=(), tries=5,
                      client_ca=None, shared=False):
    """gnutls-serv on a free port (both 0.0.0.0 and ::); returns (proc, port).
    Its stdout/stderr are kept short: in echo mode it logs every request.
    client_ca: require a client certificate and verify it against that CA
    (otherwise no certificate is requested: -a)."""
    last = None
    for _ in range(tries):
        port = free_port()
        argv = ["gnutls-serv", "-p", str(port), "--x509certfile", cert,
                "--x509keyfile", key]
        if client_ca:
            argv += ["-r", "--verify-client-cert", "--x509cafile", client_ca]
        else:
            argv.append("-a")
        if echo:
            argv += ["--echo", "--crlf"]
        if priority:
            argv += ["--priority", priority]
        argv += list(extra)
        p = Proc(argv, name="gnutls-serv", stdin=None, stdout_cap=1 << 16, stderr_cap=1 << 16,
                 shared=shared)
        if wait_listening(port, p, timeout=10):
            return p, port
        last = p
        p.kill()
    raise Fail("gnutls-serv did not start listening\n%s" % (last.describe() if last else ""))


def start_s_server(cert, key, tls_args=(), extra=(), quiet=True, stdin=True, tries=5,
                   slow_stdout=None):
    """openssl s_server for one connection (-naccept 1); returns (proc, port).
    Readiness is read from /proc/net/tcp* so that no accept is consumed."""
    last = None
    for _ in range(tries):
        port = free_port()
        argv = ["openssl", "s_server", "-accept", str(port), "-cert", cert, "-key", key,
                "-naccept", "1"]
        if quiet:
            argv.append("-quiet")
        argv += list(tls_args) + list(extra)
        p = Proc(argv, name="s_server", stdin=stdin, stdout_cap=None, slow_stdout=slow_stdout)
        if wait_listening(port, p, timeout=10):
            return p, port
        last = p
        p.kill()
    raise Fail("openssl s_server did not start listening\n%s" % (last.describe() if last else ""))


def gnutls_cli_argv(port, cafile, logfile, priority=None, host="localhost", extra=()):
    argv = ["gnutls-cli", "--logfile", logfile, "--x509cafile", cafile, "-p", str(port)]
    if priority:
        argv += ["--priority", priority]
    return argv + list(extra) + [host]


def s_client_argv(port, cafile, tls_args=(), host="localhost", mode="quiet", extra=()):
    """mode 'quiet': stdout carries only data, stdin EOF closes the connection
    (close_notify), no command letters; mode 'brief': command letters (k, K,
    Q, R at the start of a read) are active, stdout carries only data."""
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-CAfile", cafile,
            "-verify_return_error"]
    if host not in ("127.0.0.1", "::1"):
        argv += ["-verify_hostname", host]
    if mode == "quiet":
        argv += ["-quiet", "-no_ign_eof", "-nocommands"]
    elif mode == "brief":
        argv += ["-brief"]
    return argv + list(tls_args) + list(extra)


PRIME = b"0123456789abcdef0123456789abcdef\n"


def prime_s_server(srv, client, timeout=20):
    """Have the client send a line and wait until s_server prints it, before
    anything is fed to s_server's stdin.  Quirk: when s_server has stdin
    data at accept time it writes it while the handshake is still open
    (inside SSL_write), and its select loop can then sit in a blocking read
    of the socket on stale readiness until the client sends something.
    Returns the bytes sent (hex text, so harmless for s_server commands)."""
    client.send(PRIME)
    if not srv.wait_until(lambda p: PRIME in bytes(p.out), timeout):
        raise Fail("s_server did not receive the client's first line\n%s\n%s"
                   % (client.describe(), srv.describe()))
    return PRIME


# ------------------------------------------------- a record-measuring relay

class RecordMeter:
    """A TCP relay on 127.0.0.1 between one client and upstream_port that
    reads the TLS record headers going each way, for tests of record sizes.
    After the connection: .max_len[d] and .count[d], d = "c2s" or "s2c",
    over application-data records (type 23: in TLS 1.3 every protected
    record), .port to connect to."""

    def __init__(self, upstream_port, accept_timeout=30):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.ls.settimeout(scaled(accept_timeout))
        self.port = self.ls.getsockname()[1]
        self.upstream = upstream_port
        self.max_len = {"c2s": 0, "s2c": 0}
        self.count = {"c2s": 0, "s2c": 0}
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        import select
        try:
            c, _ = self.ls.accept()
            s = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError as e:
            self.error = e
            return
        finally:
            self.ls.close()
        peer = {c: s, s: c}
        name = {c: "c2s", s: "s2c"}
        buf = {c: b"", s: b""}
        open_ = {c, s}
        while open_:
            r, _, _ = select.select(list(open_), [], [], scaled(120))
            if not r:
                break
            for src in r:
                try:
                    d = src.recv(1 << 16)
                except OSError:
                    d = b""
                if not d:
                    open_.discard(src)
                    try:
                        peer[src].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                b = buf[src] + d
                while len(b) >= 5:
                    n = int.from_bytes(b[3:5], "big")
                    if len(b) < 5 + n:
                        break
                    if b[0] == 23:
                        k = name[src]
                        self.count[k] += 1
                        self.max_len[k] = max(self.max_len[k], n)
                    b = b[5 + n:]
                buf[src] = b
                try:
                    peer[src].sendall(d)
                except OSError:
                    open_.discard(src)
        for x in (c, s):
            x.close()

    def join(self, timeout=60):
        self.t.join(scaled(timeout))
        if self.t.is_alive():
            raise Hang("the record meter relay did not finish")
        if self.error:
            raise Fail("the record meter relay could not connect: %r" % (self.error,))


def record_overhead(version, cipher):
    """Bytes a protected record adds to its plaintext in the header's length
    field: the tag, TLS 1.2's explicit nonce (not ChaCha20), TLS 1.3's
    content type byte."""
    if version == "1.3":
        return 16 + 1
    return 16 + (0 if cipher.upper() == "CHACHA20-POLY1305" else 8)
