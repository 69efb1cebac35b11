"""What the proxy and originate scenarios of `make bench` share
(tests/bench/README.md): the readers of a contender's process tree, the
tcpcopy sink behind it, the start of a listening contender, the idle-memory
measurement, the rounds and their output (medians, spread, tables with
ratios, JSON), and the new- and idle-connection client's threads.

proxy.py and originate.py keep what is their own (contenders, clients,
figures) and subclass Scenario and Contender (or its *Tool classes, what a tool
needs in either role); main() of each hands over bench.py's module with
use().  Standard library only: the two files run as scripts (their
clients) import it too.
"""

import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib

B = None            # the bench module (bench.py runs as __main__): set by use()
CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MIB = 1 << 20
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def use(bench_module):
    global B
    B = bench_module


# ------------------------------------------------ a process tree in /proc

def tree(root):
    """root's pid and those of all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            kids.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu(root):
    """CPU seconds (user, system) of root's tree: each live process's own
    (all its threads) plus its reaped children's (cutime, cstime), so the
    forked children that already ended count too."""
    u = s = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        u += int(f[11]) + int(f[13])
        s += int(f[12]) + int(f[14])
    return u / CLK, s / CLK


def tree_pss_kib(root):
    """Memory of root's tree: the sum of each process's PSS (shared pages
    divided among their sharers, so 1000 forked socat children are not
    counted 1000 times), else of its RSS."""
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        except OSError:
            m = None
        if not m:
            try:
                with open("/proc/%d/status" % pid) as f:
                    m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            except OSError:
                m = None
        total += int(m.group(1)) if m else 0
    return total


def wait_tree_still(root, limit):
    """Wait (up to limit s) until root's tree stops changing: a forked
    socat child that closed its connection may still be exiting; reaped
    while CPU is being read, its CPU could be counted in neither place, or
    in both."""
    deadline = time.monotonic() + limit
    n = len(tree(root))
    while time.monotonic() < deadline:
        time.sleep(0.2)
        m = len(tree(root))
        if m == n:
            break
        n = m


# ---------------------------------------------------------------- the sink

class Sink:
    """`tcpcopy sink PORT discard|crc`, its event lines collected: each
    connection's opening, and its end with its byte count, CRC-32 and the
    time of its last byte.  what names it in messages ("the backend");
    with control, it takes commands on its stdin (send_mode: for
    downloads, a file to send to each new connection)."""

    def __init__(self, b, d, crc, what, control=False):
        self.b = b
        self.what = what
        self.lock = threading.Condition()
        self.opened = {}        # id -> time
        self.ended = {}         # id -> (bytes, crc, t_last, reset): bytes sent when sending
        self.mode = None        # its last "mode ..." answer
        r, w = os.pipe2(os.O_CLOEXEC)
        self.err = os.path.join(d, "sink.err")
        if control:
            ctl_r, self.ctl = os.pipe2(os.O_CLOEXEC)
        else:
            ctl_r, self.ctl = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        try:
            self.proc = B.Proc("tcpcopy sink", [b.tcpcopy, "sink", "0",
                                                "crc" if crc else "discard"],
                               ctl_r, w, self.err, env=b.env, persistent=True)
        except BaseException:
            if self.ctl is not None:
                os.close(self.ctl)
            raise
        finally:
            os.close(w)
            os.close(ctl_r)
        self.proc.errpath = self.err
        self.reader = threading.Thread(target=self._read, args=(r,), daemon=True)
        self.reader.start()
        self.port = None
        deadline = time.monotonic() + 15
        while self.port is None:
            m = re.search(r"listening on \S*:(\d+)", B.read_text(self.err))
            if m:
                self.port = int(m.group(1))
            elif self.proc.try_reap() or time.monotonic() > deadline:
                raise B.RunFailed("%s (tcpcopy sink) did not start: %s"
                                  % (what, B.tail_of(self.err)))
            else:
                time.sleep(0.01)

    def _read(self, fd):
        with os.fdopen(fd, "r") as f:
            for line in f:
                w = line.split()
                with self.lock:
                    if w[0] == "open":
                        self.opened[int(w[1])] = float(w[2])
                    elif w[0] == "end":
                        self.ended[int(w[1])] = (int(w[2]), w[3], float(w[4]), len(w) > 5)
                    elif w[0] == "mode":
                        self.mode = " ".join(w[1:])
                    self.lock.notify_all()

    def send_mode(self, path):
        """From now on, send the file at path to each new connection (None:
        receive only again); returns once the sink has switched."""
        want = "send %d" % os.path.getsize(path) if path else "recv"
        with self.lock:
            self.mode = None
        try:
            os.write(self.ctl, (("send %s" % path) if path else "recv").encode() + b"\n")
        except OSError as e:
            raise B.RunFailed("%s (tcpcopy sink) takes no command: %s" % (self.what, e))
        if not self.wait(lambda o, e: self.mode is not None, 15 * self.b.args.timeout_scale):
            raise B.RunFailed("%s (tcpcopy sink) did not answer \"%s\": %s"
                              % (self.what, want, B.tail_of(self.err)))
        if self.mode != want:
            raise B.RunFailed("%s (tcpcopy sink) answered \"mode %s\" to \"%s\""
                              % (self.what, self.mode, want))

    def mark(self):
        """Forget the connections so far (all ended: wait_quiet first)."""
        with self.lock:
            self.opened.clear()
            self.ended.clear()

    def open_now(self):
        with self.lock:
            return len(self.opened) - len(self.ended)

    def wait(self, pred, timeout):
        """Wait until pred(opened, ended) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self.opened, self.ended):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.5))
            return True

    def wait_quiet(self, timeout, quiet=0.5, forget=False):
        """Wait until every connection has ended and none opened or ended
        for quiet seconds (a contender may still be connecting for a client
        that is gone), then, with forget, forget them all; False on
        timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.wait(lambda o, e: len(o) == len(e), deadline - time.monotonic()):
                return False
            with self.lock:
                seen = (len(self.opened), len(self.ended))
            time.sleep(quiet)
            with self.lock:
                if (len(self.opened), len(self.ended)) == seen:
                    if forget:
                        self.opened.clear()
                        self.ended.clear()
                    return True

    def stop(self):
        self.proc.stop(1.0)
        self.reader.join(5)
        if self.ctl is not None:
            os.close(self.ctl)
            self.ctl = None


# ------------------------------------------------ a listening contender

def wait_listening(proc, port, errpath, what, timeout):
    """Wait until port listens (in /proc/net/tcp); B.RunFailed when proc
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if B.listening(port):
            return
        if proc.try_reap():
            break
        time.sleep(0.01)
    raise B.RunFailed("%s %s before listening on %d: %s"
                      % (what, proc.describe_status(), port, B.tail_of(errpath)))


def start_listening(b, name, what, command, err):
    """Start what command(port) -> (argv, env or None) says on a free port
    of 127.0.0.1, its stderr to err, and wait until it listens: (Proc,
    port).  The port can be taken meanwhile: four tries when it says "in
    use".  name: its Proc's; what: names it in the message."""
    for attempt in range(4):
        port = B.free_port()
        argv, env = command(port)
        e = dict(b.env)
        e.update(env or {})
        if b.args.verbose:
            B.say("    $ %s" % B.shlex.join(argv))
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            proc = B.Proc(name, argv, null, null, err, env=e, persistent=True)
        finally:
            os.close(null)
        proc.errpath = err
        try:
            wait_listening(proc, port, err, what, 20 * b.args.timeout_scale)
            return proc, port
        except B.RunFailed:
            proc.stop(1.0)
            if attempt == 3 or not re.search(r"in use", B.read_text(err), re.I):
                raise


# -------------------------------------------------------------- contenders

class Contender:
    """A contender of a scenario: id, title, kind ("limit" for the row
    without one), how it runs, available() (None, or why not here)."""
    id = title = ""
    kind = "tls"
    how = ""

    def __init__(self, sc):
        self.b = sc.b
        self.skip_reason = None

    def available(self):
        return None

    def suite13(self):
        return B.SUITES[self.b.args.suite]["ossl13"]

    def suite12(self):
        return B.SUITES[self.b.args.suite]["ossl12"]

    def maxconn(self):
        return self.b.args.proxy_idle + self.b.args.proxy_hs_concurrency + 64


class KtlsctlTool(Contender):
    """ktlsctl itself: on the kernel channel (channel "kernel") or in user
    space, one process or --workers auto."""

    def __init__(self, sc, channel, workers=False):
        super().__init__(sc)
        self.channel = channel
        self.workers = workers
        self.id = "ktlsctl-" + channel + ("-workers" if workers else "")

    def available(self):
        if not os.access(self.b.ktlsctl, os.X_OK):
            return "ktlsctl binary %s not found (build it first)" % self.b.ktlsctl
        if self.channel == "kernel" and not self.b.ktls[0]:
            return "kernel TLS unavailable here (%s)" % self.b.ktls[1]
        return None

    def tls_argv(self):
        """Its options after the addresses: channel, TLS, limit, workers."""
        a = self.b.args
        return (["--ktls", "require" if self.channel == "kernel" else "off", "--tls" + a.tls,
                 "--cipher", B.SUITES[a.suite]["ktlsctl"], "--max-conns", str(self.maxconn())]
                + (["--workers", "auto"] if self.workers else []))

    def maxconn(self):
        # --max-conns is shared out among the workers: each must be able
        # to hold every idle connection, wherever the kernel sends them.
        n = (os.cpu_count() or 1) if self.workers else 1
        return super().maxconn() * n


class StunnelTool(Contender):
    def available(self):
        return self.b.ensure_package("stunnel4", lambda: shutil.which("stunnel4"), "stunnel4")

    def stunnel_tls(self):
        """stunnel.conf's lines for the TLS version and suite asked for."""
        if self.b.args.tls == "1.3":
            return ("sslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n"
                    "ciphersuites = %s\n" % self.suite13())
        return ("sslVersionMin = TLSv1.2\nsslVersionMax = TLSv1.2\n"
                "ciphers = %s\n" % self.suite12())


class HAProxyTool(Contender):
    def available(self):
        return self.b.ensure_package("haproxy", lambda: shutil.which("haproxy"), "haproxy")

    def haproxy_head(self, maxconn, side):
        """haproxy.cfg's global and defaults sections, with the TLS version
        and suite asked for on side ("bind": its listeners, "server": its
        connections to servers)."""
        if self.b.args.tls == "1.3":
            tls = ("  ssl-default-%s-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3\n"
                   "  ssl-default-%s-ciphersuites %s\n" % (side, side, self.suite13()))
        else:
            tls = ("  ssl-default-%s-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2\n"
                   "  ssl-default-%s-ciphers %s\n" % (side, side, self.suite12()))
        return ("global\n  maxconn %d\n%s"
                "defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 1h\n"
                "  timeout server 1h\n" % (maxconn, tls))


class NginxTool(Contender):
    """nginx's stream module, its master and a worker per CPU."""

    def available(self):
        if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
            why = self.b.ensure_package("nginx-light", lambda: shutil.which("nginx")
                                        or os.path.exists("/usr/sbin/nginx"), "nginx")
            if why:
                return why
        return self.b.ensure_package("libnginx-mod-stream", lambda: os.path.exists(NGINX_STREAM),
                                     "nginx's stream module")

    def nginx_tls(self, prefix):
        """The stream server's directives (prefix: "" for its listener's
        TLS, "proxy_" for its connection's) for the TLS version and suite."""
        if self.b.args.tls == "1.3":
            return ("%sssl_protocols TLSv1.3;\n    %sssl_conf_command Ciphersuites %s;\n"
                    % (prefix, prefix, self.suite13()))
        return "%sssl_protocols TLSv1.2;\n    %sssl_ciphers %s;\n" % (prefix, prefix,
                                                                     self.suite12())

    def nginx_run(self, d, stream):
        """Write nginx.conf in d, the main part and stream (its stream {}
        block): nginx's argv."""
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("load_module %s;\ndaemon off;\nmaster_process on;\nworker_processes auto;\n"
                    "pid %s/nginx.pid;\nerror_log stderr warn;\nworker_rlimit_nofile %d;\n"
                    "events { worker_connections %d; }\n"
                    % (NGINX_STREAM, d, 4 * self.maxconn(), 2 * self.maxconn()) + stream)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-e", "stderr", "-p", d, "-c", conf]


# ---------------------------------------------------------------- the run

class Scenario:
    """The rounds of a scenario and their output.  A subclass names itself
    and its sink (NAME, SINK_NAME, ...) and gives all_contenders(),
    check_needs(), instance(), one_round(), report() and write_json();
    prepare(), before_round() and after_round() are its own steps."""
    NAME = ""
    SINK_NAME = ""      # what messages call the sink: "backend"
    SHORT_UPLOAD = ""   # "...%d bytes, expected %d%s": a connection short at the sink
    TIMEOUT_BYTES = False   # whether a timed-out upload says the bytes the sink got
    SPREAD_KEYS = ("one_mibs", "many_mibs", "hs")

    def __init__(self, args):
        self.args = args
        self.b = B.Bench(args)
        self.results = {}           # (id, figure) -> [values per round]
        self.status = {}            # id -> (status, reason)
        self.crcs = {}

    def contenders(self):
        all_t = self.all_contenders()
        a = self.args
        if a.only:
            unknown = set(a.only) - {t.id for t in all_t}
            if unknown:
                raise SystemExit("bench: unknown contender(s) %s; known: %s"
                                 % (", ".join(sorted(unknown)), ", ".join(t.id for t in all_t)))
            all_t = [t for t in all_t if t.id in a.only]
        if a.skip:
            all_t = [t for t in all_t if t.id not in a.skip]
        return all_t

    def list(self):
        for t in self.contenders():
            B.say("%-20s %s" % (t.id, t.title))
        return 0

    def crc_of(self, x):
        if x.data not in self.crcs:
            c = 0
            with open(x.data, "rb") as f:
                while True:
                    blk = f.read(1 << 22)
                    if not blk:
                        break
                    c = zlib.crc32(blk, c)
            self.crcs[x.data] = "%08x" % c
        return self.crcs[x.data]

    def measure_idle(self, inst, argv, n, noun, where, forget):
        """KiB of the contender's memory per idle connection (noun: what
        they are called, "sessions"), and its baseline: argv is the idle
        client's, which opens a few that come and go (the contender's
        one-time set-up is then in the baseline), then n held, which all
        reach the sink (where: "the backend"), until its stdin closes."""
        inst.settle()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.b.env)
        B.procs.register(p)
        limit = (60 + n / 20) * self.args.timeout_scale
        try:
            if p.stdout.readline().strip() != b"primed":
                raise B.RunFailed("the idle client failed: %s"
                                  % B.last_line(p.stderr.read().decode("utf-8", "replace")))
            # The baseline, none left open once a few came and went.
            if not inst.sink.wait_quiet(30 * self.args.timeout_scale, quiet=1.0, forget=forget):
                raise B.RunFailed("%s of the idle client's first round still open" % noun)
            base = tree_pss_kib(inst.root)
            p.stdin.write(b"go\n")
            p.stdin.flush()
            line = p.stdout.readline().strip()
            if line != b"ready":
                raise B.RunFailed("the idle client: %s" % (
                    line.decode("utf-8", "replace")
                    or B.last_line(p.stderr.read().decode("utf-8", "replace"))))
            # Every one through to the sink (its handshake done).
            if not inst.sink.wait(lambda o, e: len(o) - len(e) >= n, limit):
                raise B.RunFailed("only %d of %d idle %s reached %s"
                                  % (inst.sink.open_now(), n, noun, where))
            inst.check_alive()
            full = tree_pss_kib(inst.root)
        finally:
            try:
                p.stdin.close()
                p.wait(limit)
            except subprocess.TimeoutExpired:
                p.kill()
            B.procs.unregister(p)
        return (full - base) / n, base

    def upload(self, inst, nconn, verify, argv, who):
        """nconn clients (argv; who: what they are, in messages) at once,
        --size bytes in all, each sending its share through the contender to
        the sink, timed from letting them go to the sink's last byte: (MiB/s,
        CPU user s, CPU sys s, bytes).  after_upload() checks the rest."""
        b = self.b
        per = self.args.size // nconn
        x = b.dataset_of(per)
        inst.settle()
        cpu0 = inst.cpu()
        clients = []
        # The clients are started first, each waiting in a shell for the
        # go (EOF on a pipe they share), so that starting N processes one
        # after the other is not timed: the clock starts when all are let go.
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        argv = ["/bin/sh", "-c", 'read _ <&%d; exec "$@"' % go_r, "sh"] + argv
        try:
            for i in range(nconn):
                err = os.path.join(inst.dir, "client-%d.err" % i)
                with open(x.data, "rb") as fin, open(err, "wb") as ferr:
                    p = subprocess.Popen(argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=ferr,
                                         env=b.env, start_new_session=True, pass_fds=(go_r,))
                B.procs.register(p)
                p.errpath = err
                clients.append(p)
        finally:
            os.close(go_r)
            t0 = time.monotonic()
            os.close(go_w)
        deadline = t0 + b.timeout
        where = self.SINK_NAME
        try:
            while True:
                for p in clients:
                    if p.poll() not in (None, 0):
                        raise B.RunFailed("the client (%s) exited with status %d: %s"
                                          % (who, p.returncode, B.tail_of(p.errpath)))
                inst.check_alive()
                if all(p.returncode is not None for p in clients):
                    # The clients are done: the sink's ends follow soon,
                    # unless the contender lost the data.
                    grace = 10 * self.args.timeout_scale
                    if inst.sink.wait(lambda o, e: len(e) >= nconn, grace):
                        break
                    with inst.sink.lock:
                        got = sorted(v[0] for v in inst.sink.ended.values())
                        opened = len(inst.sink.opened)
                    raise B.RunFailed("every client exited with status 0, but %.0fs later the "
                                      "%s had seen %d of %d connections, %d of them ended "
                                      "(bytes: %s)" % (grace, where, opened, nconn, len(got),
                                                       ", ".join(map(str, got[:4])) or "none"))
                if time.monotonic() > deadline:
                    with inst.sink.lock:
                        got = sorted(v[0] for v in inst.sink.ended.values())
                    raise B.RunFailed("timed out after %.0fs: %d of %d %s connections ended%s, "
                                      "%d client(s) still running"
                                      % (time.monotonic() - t0, len(got), nconn, where,
                                         " (bytes: %s)" % (", ".join(map(str, got[:4])) or "none")
                                         if self.TIMEOUT_BYTES else "",
                                         sum(p.returncode is None for p in clients)))
                inst.sink.wait(lambda o, e: False, 0.02)
        finally:
            for p in clients:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                B.procs.unregister(p)
        cpu1 = inst.cpu()
        with inst.sink.lock:
            ends = list(inst.sink.ended.values())
        if len(ends) != nconn:
            raise B.RunFailed("the %s saw %d connections, expected %d" % (where, len(ends), nconn))
        for n, crc, _, reset in ends:
            if n != per:
                raise B.RunFailed(self.SHORT_UPLOAD % (n, per, " (reset)" if reset else ""))
            if verify and crc != self.crc_of(x):
                raise B.RunFailed("data corrupted: CRC-32 at the %s %s, sent %s"
                                  % (where, crc, self.crc_of(x)))
        self.after_upload(inst, nconn, verify)
        wall = max(e[2] for e in ends) - t0
        return (nconn * per / MIB / wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], nconn * per)

    def after_upload(self, inst, nconn, verify):
        pass

    def new_conns(self, inst, argv, n, client, noun):
        """Run the new-connection client (argv: n of them; client: what
        messages call it, "handshake"; noun: what it opens, "handshakes"):
        (its report, CPU s of the contender meanwhile)."""
        a = self.args
        cpu0 = inst.cpu()
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.b.env, timeout=(60 + n / 2) * a.timeout_scale)
        except subprocess.TimeoutExpired:
            raise B.RunFailed("the %s client timed out" % client)
        cpu1 = inst.cpu()
        inst.check_alive()
        try:
            rep = json.loads(r.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise B.RunFailed("the %s client failed: %s"
                              % (client, B.last_line(r.stderr.decode("utf-8", "replace"))))
        if rep["failed"]:
            raise B.RunFailed("%d of %d %s failed: %s"
                              % (rep["failed"], n, noun, "; ".join(rep["errors"])))
        return rep, (cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1])

    # -- rounds

    def raise_nofile(self):
        a = self.args
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile[1], nofile[1]))
        except (ValueError, OSError):
            pass
        need = 2 * a.proxy_idle + 256
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
            raise SystemExit("bench: --proxy-idle %d needs %d open files, ulimit -n allows %d "
                             "(raise it, or lower --proxy-idle)"
                             % (a.proxy_idle, need, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))

    def prepare(self, t):
        """After t.available(): what the subclass notes on t."""

    def before_round(self, t):
        return None

    def after_round(self, t, r, before):
        pass

    def run(self):
        a, b = self.args, self.b
        ts = self.contenders()
        self.raise_nofile()
        self.check_needs()
        b.setup()
        for t in ts:
            t.skip_reason = t.available()
            self.status[t.id] = ("skipped", t.skip_reason) if t.skip_reason else ("ok", None)
            self.prepare(t)
        self.header(ts)
        for r in range(0, a.rounds + 1):
            verify = r == 0
            B.say("round 0 (warm-up: checks every byte (CRC-32 at the %s) and the "
                  "suite, not timed) ..." % self.SINK_NAME if verify
                  else "round %d of %d ..." % (r, a.rounds))
            order = ts[r % len(ts):] + ts[:r % len(ts)]
            for t in order:
                if self.status[t.id][0] != "ok":
                    continue
                t0 = time.monotonic()
                inst = None
                try:
                    before = self.before_round(t)
                    inst = self.instance(t, verify)
                    self.one_round(inst, verify)
                    self.after_round(t, r, before)
                except B.RunFailed as e:
                    self.status[t.id] = ("failed", "round %d: %s" % (r, e))
                    B.say("  FAILED %s, round %d: %s" % (t.title, r, e))
                finally:
                    if inst is not None:
                        inst.stop()
                if a.verbose:
                    B.say("  %-28s %.1fs" % (t.title, time.monotonic() - t0))
        self.report(ts)
        if a.json:
            self.write_json(ts)
        return 1 if any(s == "failed" for s, _ in self.status.values()) else 0

    # -- output

    def med(self, tid, fig):
        v = self.results.get((tid, fig))
        return statistics.median(v) if v else None

    def spread(self, tid, keys=SPREAD_KEYS):
        """The largest (fastest - slowest) / median among the rate figures
        over the rounds, in %: a large one means a noisy machine."""
        out = None
        for key in keys:
            v = self.results.get((tid, key)) or []
            if len(v) > 1 and statistics.median(v) > 0:
                sp = (max(v) - min(v)) / statistics.median(v) * 100
                out = sp if out is None else max(out, sp)
        return out

    def fig_title(self, title):
        return title % self.args.proxy_conns if "%d" in title else title

    def header(self, ts, intro, setup):
        """The run's first lines: intro (what is measured), the host, setup
        (the scenario's fixed parts), the contenders skipped."""
        b = self.b
        B.say(intro)
        load = os.getloadavg()[0]
        B.say("host: %s, %d CPUs, load %.2f; kTLS: %s"
              % (B.platform.release(), os.cpu_count() or 1, load,
                 "available" if b.ktls[0] else "unavailable (%s)" % b.ktls[1]))
        if load > (os.cpu_count() or 1) * 0.5:
            B.say("note: the machine is busy (load %.2f): figures are noisy" % load)
        B.say(setup)
        for t in ts:
            if t.skip_reason:
                B.say("skipped: %s: %s" % (t.title, t.skip_reason))
        B.say()

    def table(self, ts, title, figs, spread_keys, ref_class, ref_keys, rates, note=None,
              width=None):
        """One table of medians (figs: (key, column title, format, better:
        True higher, False lower, None no ratio)), then the ratios of each
        ktlsctl row (ref_class, with a figure among ref_keys) to every other
        row.  width: every column's, else each at least 13 and its title's."""
        B.say()
        B.say(title)
        if note:
            B.say(note)
        cols = [self.fig_title(f[1]) for f in figs]
        widths = [width or max(13, len(c)) for c in cols]
        B.say("  %-28s" % "contender" + "".join(" %*s" % (w, c) for w, c in zip(widths, cols))
              + "  spread")
        for t in ts:
            st, why = self.status[t.id]
            if st != "ok":
                B.say("  %-28s %s: %s" % (t.title, st.upper(), why))
                continue
            cells = []
            for key, _, fmt, _ in figs:
                v = self.med(t.id, key)
                cells.append(fmt % v if v is not None else "-")
            sp = self.spread(t.id, spread_keys)
            B.say("  %-28s" % t.title + "".join(" %*s" % (w, c) for w, c in zip(widths, cells))
                  + ("  %5.0f%%" % sp if sp is not None else ""))
        refs = [t for t in ts if isinstance(t, ref_class) and self.status[t.id][0] == "ok"
                and any(self.med(t.id, k) for k in ref_keys)]
        for ref in refs:
            B.say("  ratios, %s / contender (throughput, %s: >1 ktlsctl faster; "
                  "CPU, KiB: <1 ktlsctl cheaper)" % (ref.title, rates))
            for t in ts:
                if t is ref or self.status[t.id][0] != "ok":
                    continue
                cells = []
                for key, _, _, better in figs:
                    mine, theirs = self.med(ref.id, key), self.med(t.id, key)
                    # A zero (CPU below the clock tick at small sizes, the
                    # backend's memory within noise) has no ratio; nor has
                    # a share (better None).
                    ok = (better is not None and mine is not None and theirs is not None
                          and mine > 0 and theirs > 0)
                    cells.append(B.ratio(mine / theirs) if ok else "n/a")
                B.say("  %-28s" % t.title
                      + "".join(" %*s" % (w, c) for w, c in zip(widths, cells)))

    def say_failed(self, ts):
        for t in ts:
            if self.status[t.id][0] == "failed":
                B.say("FAILED: %s: %s" % (t.title, self.status[t.id][1]))

    def json_doc(self, ts, config, keys, row_extra):
        """Write --json: the run's config (the scenario's own in config),
        the host, and per contender its medians and rounds of keys, with
        row_extra(t)'s own entries."""
        a = self.args
        conf = {"size_bytes": a.size, "rounds": a.rounds, "tls": a.tls,
                "suite": a.suite, "conns": a.proxy_conns,
                "handshakes": a.proxy_handshakes,
                "hs_concurrency": a.proxy_hs_concurrency, "idle": a.proxy_idle}
        conf.update(config)
        doc = {"format": 1, "tool": "ktlsctl bench", "scenario": self.NAME,
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config": conf,
               "host": {"kernel": B.platform.release(), "cpus": os.cpu_count(),
                        "loadavg": list(os.getloadavg()), "ktls": self.b.ktls[0]},
               "results": []}
        for t in ts:
            st, why = self.status[t.id]
            row = {"contender": t.id, "title": t.title, "how": t.how, "status": st,
                   "reason": why, "median": {k: self.med(t.id, k) for k in keys},
                   "spread_pct": self.spread(t.id),
                   "rounds": {k: self.results.get((t.id, k), []) for k in keys}}
            row.update(row_extra(t))
            doc["results"].append(row)
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        B.say("results written to %s" % a.json)


# ------------------------------ the new- and idle-connection client's threads

class Clients:
    """conc threads that open connections with one(keep) (keep: return the
    open socket, to hold; else close it, return None) until count were
    opened, counting the failures."""

    def __init__(self, conc, one):
        self.conc, self.one = conc, one
        self.lock = threading.Lock()
        self.next = self.failed = 0
        self.errors = []
        self.held = []

    def _worker(self, count, keep):
        while True:
            with self.lock:
                if self.next >= count:
                    return
                self.next += 1
            try:
                s = self.one(keep)
                if s is not None:
                    with self.lock:
                        self.held.append(s)
            except OSError as e:        # ssl.SSLError among them
                with self.lock:
                    self.failed += 1
                    if len(self.errors) < 3:
                        self.errors.append(str(e))

    def run(self, count, keep):
        self.next = 0
        ths = [threading.Thread(target=self._worker, args=(count, keep))
               for _ in range(self.conc)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()

    def timed(self, n):
        """n connections opened and closed: the seconds it took."""
        t0 = time.monotonic()
        self.run(n, False)
        return time.monotonic() - t0

    def idle(self, n, noun):
        """The idle client's side of measure_idle: a few that come and go,
        "primed", then on "go" n held ("ready", or what failed) until stdin
        closes."""
        self.run(8, False)
        sys.stdout.write("primed\n")
        sys.stdout.flush()
        if sys.stdin.readline().strip() != "go":
            return 0
        self.run(n, True)
        if self.failed:
            sys.stdout.write("%d of %d %s failed: %s\n"
                             % (self.failed, n, noun, "; ".join(self.errors)))
        else:
            sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.read()
        for s in self.held:
            s.close()
        return 0
