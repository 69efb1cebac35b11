#!/usr/bin/env python3
"""The proxy scenario of `make bench` (tests/bench/README.md):

    make bench BENCH_ARGS='--scenario proxy --size 256M'

TLS terminators side by side, each in front of the same plain TCP backend
(`tcpcopy sink`: every connection at once, data dropped in the kernel with
MSG_TRUNC, a CRC-32 per connection in the warm-up round), each driven by
the same TLS client.  Per terminator:

  1 conn       one connection moving --size bytes client -> backend, MiB/s,
               timed from starting the client to the moment the backend
               holds the last byte
  N conns      --proxy-conns connections at once, --size bytes in all
  ... down     the same two the other way (--proxy-dirs): the backend sends,
               the terminator encrypts, timed to the last byte out of the
               clients (ktlsctl connect --eof wait, each into a tcpcopy
               drain that counts it)
  CPU s/GiB    user + system CPU of the terminator's processes (all of them:
               nginx's workers, socat's forked children) during the
               transfer, from /proc, per GiB
  handshakes/s --proxy-handshakes new connections, TLS 1.3 full handshake
               then close, --proxy-hs-concurrency at once; CPU ms each
  KiB/session  memory (PSS, summed over the terminator's processes) with
               --proxy-idle idle sessions open, minus the idle baseline,
               per session

The "limit" row is the backend alone: a plain TCP client straight to it.
The "OpenSSL kTLS" rows (nginx, haproxy) count only where sockets got kernel
TLS while they ran (/proc/net/tls_stat); else they are UNAVAILABLE.
bench.py calls main(); run as a script, this file is the handshake and
idle-session client (standard library only):

    proxy.py handshakes PORT N CONCURRENCY CAFILE TLS|plain [TLS1.2-CIPHERS]
    proxy.py idle PORT N CAFILE TLS|plain [TLS1.2-CIPHERS]
"""

import json
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import zlib

B = None            # the bench module (bench.py runs as __main__): set by main()
tls_stat = None     # ktlsctl_test.channel.tls_stat: set by main() (bench.py's sys.path)
MIB = 1 << 20
GIB = 1 << 30
CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


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


# ------------------------------------------------------------- the backend

class Sink:
    """`tcpcopy sink PORT discard|crc`, its event lines collected; for
    downloads, told on its stdin to send a file to each new connection."""

    def __init__(self, px, d, crc):
        self.px = px
        self.lock = threading.Condition()
        self.opened = {}        # id -> time
        self.ended = {}         # id -> (bytes, crc, t_last, reset): bytes sent when sending
        self.mode = None        # its last "mode ..." answer
        r, w = os.pipe2(os.O_CLOEXEC)
        self.err = os.path.join(d, "sink.err")
        ctl_r, self.ctl = os.pipe2(os.O_CLOEXEC)
        try:
            self.proc = B.Proc("tcpcopy sink", [px.b.tcpcopy, "sink", "0",
                                                "crc" if crc else "discard"],
                               ctl_r, w, self.err, env=px.b.env, persistent=True)
        except BaseException:
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
                raise B.RunFailed("the backend (tcpcopy sink) did not start: %s"
                                  % B.tail_of(self.err))
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
        receive only again); returns once the backend has switched."""
        want = "send %d" % os.path.getsize(path) if path else "recv"
        with self.lock:
            self.mode = None
        try:
            os.write(self.ctl, (("send %s" % path) if path else "recv").encode() + b"\n")
        except OSError as e:
            raise B.RunFailed("the backend (tcpcopy sink) takes no command: %s" % e)
        if not self.wait(lambda o, e: self.mode is not None, 15 * self.px.b.args.timeout_scale):
            raise B.RunFailed("the backend (tcpcopy sink) did not answer \"%s\": %s"
                              % (want, B.tail_of(self.err)))
        if self.mode != want:
            raise B.RunFailed("the backend (tcpcopy sink) answered \"mode %s\" to \"%s\""
                              % (self.mode, want))

    def mark(self):
        """Forget the connections so far (all ended: wait_idle first)."""
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

    def wait_quiet(self, timeout, quiet=0.5):
        """Wait until every connection has ended and none opened or ended
        for quiet seconds (a terminator may still be connecting to the
        backend for a client that is gone); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.wait(lambda o, e: len(o) == len(e), deadline - time.monotonic()):
                return False
            with self.lock:
                seen = (len(self.opened), len(self.ended))
            time.sleep(quiet)
            with self.lock:
                if (len(self.opened), len(self.ended)) == seen:
                    return True

    def stop(self):
        self.proc.stop(1.0)
        self.reader.join(5)
        if self.ctl is not None:
            os.close(self.ctl)
            self.ctl = None


# ------------------------------------------------------------ terminators

class Terminator:
    id = title = ""
    kind = "tls"
    how = ""
    openssl_ktls = False    # asks OpenSSL for kTLS: checked in /proc/net/tls_stat

    def __init__(self, px):
        self.px = px
        self.b = px.b
        self.skip_reason = None

    def available(self):
        return None

    def command(self, port, bport, d):
        """(argv, env) of the terminator on 127.0.0.1:port in front of
        127.0.0.1:bport; d: a directory for its configuration."""
        raise NotImplementedError

    def suite13(self):
        return B.SUITES[self.b.args.suite]["ossl13"]

    def suite12(self):
        return B.SUITES[self.b.args.suite]["ossl12"]

    def maxconn(self):
        return self.b.args.proxy_idle + self.b.args.proxy_hs_concurrency + 64


class KtlsctlForward(Terminator):
    def __init__(self, px, channel, workers=False):
        super().__init__(px)
        self.channel = channel
        self.workers = workers
        self.id = "ktlsctl-" + channel + ("-workers" if workers else "")
        self.title = ("ktlsctl --workers auto, " if workers else "ktlsctl --forward, ") + (
            "kernel" if channel == "kernel" else "user space")
        self.how = ("ktlsctl listen --forward --ktls %s: %s%s"
                    % ("require" if channel == "kernel" else "off",
                       "--workers auto, a process per CPU, each one epoll loop on the shared "
                       "listener" if workers else "one epoll loop",
                       ", splice socket-pipe-socket" if channel == "kernel" else ""))

    def available(self):
        if not os.access(self.b.ktlsctl, os.X_OK):
            return "ktlsctl binary %s not found (build it first)" % self.b.ktlsctl
        if self.channel == "kernel" and not self.b.ktls[0]:
            return "kernel TLS unavailable here (%s)" % self.b.ktls[1]
        return None

    def command(self, port, bport, d):
        a = self.b.args
        return ([self.b.ktlsctl, "listen", "127.0.0.1:%d" % port, "--cert", self.b.cert,
                 "--key", self.b.key, "--forward", "127.0.0.1:%d" % bport,
                 "--ktls", "require" if self.channel == "kernel" else "off", "--tls" + a.tls,
                 "--cipher", B.SUITES[a.suite]["ktlsctl"], "--max-conns", str(self.maxconn())]
                + (["--workers", "auto"] if self.workers else []),
                None)

    def maxconn(self):
        # --max-conns is shared out among the workers: each must be able
        # to hold every idle session, wherever the kernel sends them.
        n = (os.cpu_count() or 1) if self.workers else 1
        return super().maxconn() * n


class Stunnel(Terminator):
    id = "stunnel"
    title = "stunnel4"
    how = "stunnel4, foreground, one [service] with accept/connect (its threads)"

    def available(self):
        return self.b.ensure_package("stunnel4", lambda: shutil.which("stunnel4"), "stunnel4")

    def command(self, port, bport, d):
        a = self.b.args
        conf = os.path.join(d, "stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\n"
                    "[bench]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "cert = %s\nkey = %s\n" % (port, bport, self.b.cert, self.b.key))
            if a.tls == "1.3":
                f.write("sslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n"
                        "ciphersuites = %s\n" % self.suite13())
            else:
                f.write("sslVersionMin = TLSv1.2\nsslVersionMax = TLSv1.2\n"
                        "ciphers = %s\n" % self.suite12())
        return ["stunnel4", conf], None


class SocatFork(Terminator):
    id = "socat"
    title = "socat fork"
    how = ("socat -b 128 KiB OPENSSL-LISTEN:...,fork,reuseaddr TCP:backend "
           "(a process per connection; TLS 1.3 suite through OPENSSL_CONF)")

    def available(self):
        return self.b.socat_missing

    def command(self, port, bport, d):
        a = self.b.args
        v = "TLS1.3" if a.tls == "1.3" else "TLS1.2"
        addr = ("OPENSSL-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096,cert=%s,key=%s,"
                "verify=0,min-version=%s,max-version=%s" % (port, self.b.cert, self.b.key, v, v))
        if a.tls == "1.2":
            addr += ",cipher=" + self.suite12()
        return (["socat", "-b", str(a.socat_buffer), addr, "TCP:127.0.0.1:%d" % bport],
                {"OPENSSL_CONF": self.b.openssl_conf})


class HAProxy(Terminator):
    id = "haproxy"
    title = "haproxy"
    how = "haproxy -db, mode tcp, bind ... ssl crt (its default threads: one per CPU)"

    def available(self):
        return self.b.ensure_package("haproxy", lambda: shutil.which("haproxy"), "haproxy")

    def command(self, port, bport, d):
        a = self.b.args
        pem = os.path.join(d, "haproxy.pem")
        with open(pem, "w") as f:
            for p in (self.b.cert, self.b.key):
                f.write(B.read_text(p))
        if a.tls == "1.3":
            tls = ("  ssl-default-bind-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3\n"
                   "  ssl-default-bind-ciphersuites %s\n" % self.suite13())
        else:
            tls = ("  ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2\n"
                   "  ssl-default-bind-ciphers %s\n" % self.suite12())
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n  maxconn %d\n%s"
                    "defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 1h\n"
                    "  timeout server 1h\n"
                    "frontend fe\n  bind 127.0.0.1:%d ssl crt %s\n  default_backend be\n"
                    "backend be\n  server s1 127.0.0.1:%d\n"
                    % (self.maxconn(), tls, port, pem, bport))
        return ["haproxy", "-db", "-f", conf], None


class Nginx(Terminator):
    id = "nginx"
    title = "nginx stream"
    how = ("nginx stream { server { listen ... ssl; proxy_pass backend; } }, "
           "worker_processes auto (one per CPU)")

    def available(self):
        if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
            why = self.b.ensure_package("nginx-light", lambda: shutil.which("nginx")
                                        or os.path.exists("/usr/sbin/nginx"), "nginx")
            if why:
                return why
        return self.b.ensure_package("libnginx-mod-stream", lambda: os.path.exists(NGINX_STREAM),
                                     "nginx's stream module")

    def command(self, port, bport, d):
        a = self.b.args
        if a.tls == "1.3":
            tls = ("ssl_protocols TLSv1.3;\n    ssl_conf_command Ciphersuites %s;\n"
                   % self.suite13())
        else:
            tls = "ssl_protocols TLSv1.2;\n    ssl_ciphers %s;\n" % self.suite12()
        if self.openssl_ktls:
            tls += "    ssl_conf_command Options KTLS;\n"
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("load_module %s;\ndaemon off;\nmaster_process on;\nworker_processes auto;\n"
                    "pid %s/nginx.pid;\nerror_log stderr warn;\nworker_rlimit_nofile %d;\n"
                    "events { worker_connections %d; }\n"
                    "stream {\n  server {\n    listen 127.0.0.1:%d ssl;\n"
                    "    ssl_certificate %s;\n    ssl_certificate_key %s;\n    %s"
                    "    proxy_pass 127.0.0.1:%d;\n    proxy_timeout 1h;\n  }\n}\n"
                    % (NGINX_STREAM, d, 4 * self.maxconn(), 2 * self.maxconn(), port,
                       self.b.cert, self.b.key, tls, bport))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-e", "stderr", "-p", d, "-c", conf], None


def ktls_unavailable(t):
    """Why a contender that asks OpenSSL for kTLS cannot run here."""
    if not t.b.ktls[0]:
        return "kernel TLS unavailable here (%s); `make bench-vm` runs it" % t.b.ktls[1]
    return None


class NginxKtls(Nginx):
    id = "nginx-ktls"
    title = "nginx stream, OpenSSL kTLS"
    openssl_ktls = True
    how = Nginx.how + ", ssl_conf_command Options KTLS"

    def available(self):
        return ktls_unavailable(self) or super().available()


class HAProxyKtls(HAProxy):
    id = "haproxy-ktls"
    title = "haproxy, OpenSSL kTLS"
    openssl_ktls = True
    # haproxy 2.6 has no kTLS keyword of its own (its "ktls" came in 3.3).
    how = HAProxy.how + ", OPENSSL_CONF with Options = KTLS in system_default"

    def available(self):
        return ktls_unavailable(self) or super().available()

    def command(self, port, bport, d):
        argv, _ = super().command(port, bport, d)
        conf = os.path.join(d, "openssl-ktls.cnf")
        with open(conf, "w") as f:
            f.write("openssl_conf = bench_conf\n[bench_conf]\nssl_conf = bench_ssl\n"
                    "[bench_ssl]\nsystem_default = bench_tls\n[bench_tls]\nOptions = KTLS\n")
        return argv, {"OPENSSL_CONF": conf}


class Limit(Terminator):
    id = "limit"
    title = "limit: backend alone"
    kind = "limit"
    how = ("no TLS, no terminator: tcpcopy connect (sendfile) straight to the backend, "
           "downloads tcpcopy connect ... receive (splice) from it; its CPU, handshakes "
           "(plain connects) and memory are the backend's")


# ----------------------------------------------------------------- the run

class Instance:
    """One terminator (or none, for the limit) and its backend, started for
    one round."""

    def __init__(self, px, t, crc):
        self.px, self.t = px, t
        self.dir = B.tempfile.mkdtemp(prefix="proxy-%s." % t.id, dir=px.b.tmp)
        self.sink = Sink(px, self.dir, crc)
        self.proc = None
        self.port = self.sink.port
        self.root = self.sink.proc.pid
        if t.kind != "limit":
            try:
                self._start()
            except B.RunFailed:
                self.stop()
                raise

    def _start(self):
        px, t = self.px, self.t
        for attempt in range(4):
            port = B.free_port()
            argv, env = t.command(port, self.sink.port, self.dir)
            e = dict(px.b.env)
            e.update(env or {})
            err = os.path.join(self.dir, "%s.err" % t.id)
            if px.b.args.verbose:
                B.say("    $ %s" % B.shlex.join(argv))
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.proc = B.Proc(t.title, argv, null, null, err, env=e, persistent=True)
            finally:
                os.close(null)
            self.proc.errpath = err
            deadline = time.monotonic() + 20 * px.b.args.timeout_scale
            while time.monotonic() < deadline and not B.listening(port):
                if self.proc.try_reap():
                    break
                time.sleep(0.01)
            if B.listening(port) and self.proc.status is None:
                self.port, self.root = port, self.proc.pid
                return
            text = B.read_text(err)
            self.proc.stop(1.0)
            if re.search(r"in use", text, re.I) and attempt < 3:
                continue
            raise B.RunFailed("%s %s before listening on %d: %s"
                              % (t.title, self.proc.describe_status(), port, B.tail_of(err)))

    def check_alive(self):
        if self.proc is not None and self.proc.try_reap():
            raise B.RunFailed("%s %s: %s" % (self.t.title, self.proc.describe_status(),
                                             B.tail_of(self.proc.errpath)))

    def settle(self):
        """Wait until the backend has no connection open (the previous
        test's have all ended), then forget them."""
        # socat's forked children take a while to go: 1000 of them, about
        # 10 s on a loaded 2-CPU machine.
        limit = (30 + self.sink.open_now() / 20) * self.px.b.args.timeout_scale
        if not self.sink.wait_quiet(limit):
            raise B.RunFailed("%d backend connection(s) of the previous test still open "
                              "after %.0fs" % (self.sink.open_now(), limit))
        # And its processes: a socat child that closed its backend
        # connection may still be exiting; reaped while CPU is being read,
        # its CPU could be counted in neither place, or in both.
        deadline = time.monotonic() + limit
        n = len(tree(self.root))
        while time.monotonic() < deadline:
            time.sleep(0.2)
            m = len(tree(self.root))
            if m == n:
                break
            n = m
        self.sink.mark()

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5.0)
        self.sink.stop()
        if not self.px.b.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    def __init__(self, args):
        self.args = args
        self.b = B.Bench(args)
        self.results = {}           # (id, figure) -> [values per round]
        self.status = {}            # id -> (status, reason)
        self.crcs = {}
        self.ktls_got = {}          # id -> ["TX only" | "TX+RX" per round] (OpenSSL kTLS rows)
        self.ktls_rises = {}        # id -> ["+TX/+RX" per round]

    def terminators(self):
        all_t = [KtlsctlForward(self, "kernel"), KtlsctlForward(self, "user"),
                 KtlsctlForward(self, "kernel", workers=True),
                 KtlsctlForward(self, "user", workers=True), Stunnel(self),
                 SocatFork(self), HAProxy(self), Nginx(self), HAProxyKtls(self),
                 NginxKtls(self), Limit(self)]
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

    # -- the clients

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

    def client_argv(self, t, port):
        b, a = self.b, self.args
        if t.kind == "limit":
            return [b.tcpcopy, "connect", str(port), "one-way"]
        return [b.ktlsctl, "connect", "127.0.0.1:%d" % port, "--cafile", b.ca, "--ktls", "off",
                "--tls" + a.tls, "--cipher", B.SUITES[a.suite]["ktlsctl"], "--eof", "close"]

    def transfer(self, inst, nconn, verify):
        """nconn connections at once, --size bytes in all: (MiB/s, CPU
        user s, CPU sys s, bytes)."""
        b = self.b
        per = self.args.size // nconn
        x = b.dataset_of(per)
        inst.settle()
        cpu0 = tree_cpu(inst.root)
        clients = []
        # The clients are started first, each waiting in a shell for the
        # go (EOF on a pipe they share), so that starting N processes one
        # after the other is not timed: the clock starts when all are let go.
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        argv = ["/bin/sh", "-c", 'read _ <&%d; exec "$@"' % go_r, "sh"] + \
            self.client_argv(inst.t, inst.port)
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
        try:
            while True:
                for p in clients:
                    if p.poll() not in (None, 0):
                        raise B.RunFailed("the client (%s) exited with status %d: %s" % (
                            "tcpcopy" if inst.t.kind == "limit" else "ktlsctl connect",
                            p.returncode, B.tail_of(p.errpath)))
                inst.check_alive()
                if all(p.returncode is not None for p in clients):
                    # The clients are done: the backend's ends follow soon,
                    # unless the terminator lost the data.
                    grace = 10 * self.args.timeout_scale
                    if inst.sink.wait(lambda o, e: len(e) >= nconn, grace):
                        break
                    with inst.sink.lock:
                        got = sorted(v[0] for v in inst.sink.ended.values())
                        opened = len(inst.sink.opened)
                    raise B.RunFailed("every client exited with status 0, but %.0fs later the "
                                      "backend had seen %d of %d connections, %d of them ended "
                                      "(bytes: %s)" % (grace, opened, nconn, len(got),
                                                       ", ".join(map(str, got[:4])) or "none"))
                if time.monotonic() > deadline:
                    raise B.RunFailed("timed out after %.0fs: %d of %d backend connections "
                                      "ended, %d client(s) still running"
                                      % (time.monotonic() - t0, len(inst.sink.ended), nconn,
                                         sum(p.returncode is None for p in clients)))
                inst.sink.wait(lambda o, e: False, 0.02)
        finally:
            for p in clients:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                B.procs.unregister(p)
        cpu1 = tree_cpu(inst.root)
        with inst.sink.lock:
            ends = list(inst.sink.ended.values())
        if len(ends) != nconn:
            raise B.RunFailed("the backend saw %d connections, expected %d" % (len(ends), nconn))
        for n, crc, _, reset in ends:
            if n != per:
                raise B.RunFailed("a backend connection received %d bytes, expected %d%s"
                                  % (n, per, " (reset)" if reset else ""))
            if verify and crc != self.crc_of(x):
                raise B.RunFailed("data corrupted: CRC-32 at the backend %s, sent %s"
                                  % (crc, self.crc_of(x)))
        wall = max(e[2] for e in ends) - t0
        return (nconn * per / MIB / wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], nconn * per)

    def down_client_argv(self, t, port):
        """The download client: reads the terminator until it closes (TLS:
        its close_notify), writes what it got to stdout; sends nothing and
        never closes first (--eof wait), so the end is the terminator's."""
        b, a = self.b, self.args
        if t.kind == "limit":
            return [b.tcpcopy, "connect", str(port), "receive"]
        return [b.ktlsctl, "connect", "127.0.0.1:%d" % port, "--cafile", b.ca, "--ktls", "off",
                "--tls" + a.tls, "--cipher", B.SUITES[a.suite]["ktlsctl"], "--eof", "wait"]

    def transfer_down(self, inst, nconn, verify):
        """Downloads: the backend sends each of nconn connections --size /
        nconn bytes at once; each client's stdout goes to a `tcpcopy drain`
        that counts it (and its CRC-32 when verify), timed to the last byte
        out of the clients: (MiB/s, CPU user s, CPU sys s, bytes)."""
        b = self.b
        per = self.args.size // nconn
        x = b.dataset_of(per)
        inst.settle()
        inst.sink.send_mode(x.data)
        clients, drains = [], []
        try:
            cpu0 = tree_cpu(inst.root)
            go_r, go_w = os.pipe2(os.O_CLOEXEC)
            argv = ["/bin/sh", "-c", 'read _ <&%d; exec "$@"' % go_r, "sh"] + \
                self.down_client_argv(inst.t, inst.port)
            try:
                for i in range(nconn):
                    err = os.path.join(inst.dir, "client-%d.err" % i)
                    r, w = os.pipe2(os.O_CLOEXEC)
                    try:
                        with open(err + ".drain", "wb") as ferr:
                            d = subprocess.Popen([b.tcpcopy, "drain", "crc" if verify else
                                                  "discard"], stdin=r, stdout=subprocess.PIPE,
                                                 stderr=ferr, env=b.env, start_new_session=True)
                        B.procs.register(d)
                        d.errpath = err + ".drain"
                        drains.append(d)
                        with open(err, "wb") as ferr:
                            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w,
                                                 stderr=ferr, env=b.env, start_new_session=True,
                                                 pass_fds=(go_r,))
                        B.procs.register(p)
                        p.errpath = err
                        clients.append(p)
                    finally:
                        os.close(r)
                        os.close(w)
            finally:
                os.close(go_r)
                t0 = time.monotonic()
                os.close(go_w)
            deadline = t0 + b.timeout
            while True:
                for p in clients + drains:
                    if p.poll() not in (None, 0):
                        raise B.RunFailed("the %s exited with status %d: %s" % (
                            "download counter (tcpcopy drain)" if p in drains
                            else "client (tcpcopy)" if inst.t.kind == "limit"
                            else "client (ktlsctl connect)", p.returncode, B.tail_of(p.errpath)))
                inst.check_alive()
                if all(p.returncode is not None for p in clients + drains):
                    break
                if time.monotonic() > deadline:
                    raise B.RunFailed("timed out after %.0fs: %d of %d clients still running"
                                      % (time.monotonic() - t0,
                                         sum(p.returncode is None for p in clients), nconn))
                inst.sink.wait(lambda o, e: False, 0.02)
            got = []
            for d in drains:
                w = d.stdout.read().decode("ascii", "replace").split()
                if len(w) != 3:
                    raise B.RunFailed("the download counter (tcpcopy drain) said %r"
                                      % " ".join(w))
                got.append((int(w[0]), w[1], float(w[2])))
            # The backend's side: every connection sent in full, then ended.
            grace = 10 * self.args.timeout_scale
            if not inst.sink.wait(lambda o, e: len(e) >= nconn, grace):
                raise B.RunFailed("every client got its data, but %.0fs later the backend had "
                                  "ended %d of %d connections" % (grace, len(inst.sink.ended),
                                                                  nconn))
            cpu1 = tree_cpu(inst.root)
        finally:
            for p in clients + drains:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                if p.stdout is not None:
                    p.stdout.close()
                B.procs.unregister(p)
        # Back to receiving: the idle sessions and handshakes get no data.
        # (After a failure the instance is stopped instead.)
        inst.sink.send_mode(None)
        with inst.sink.lock:
            ends = list(inst.sink.ended.values())
        if len(ends) != nconn:
            raise B.RunFailed("the backend saw %d connections, expected %d" % (len(ends), nconn))
        for n, _, _, reset in ends:
            if n != per:
                raise B.RunFailed("the backend sent a connection %d bytes, expected %d%s"
                                  % (n, per, " (reset)" if reset else ""))
        for n, crc, _ in got:
            if n != per:
                raise B.RunFailed("a client received %d bytes, expected %d" % (n, per))
            if verify and crc != self.crc_of(x):
                raise B.RunFailed("data corrupted: CRC-32 at the client %s, sent %s"
                                  % (crc, self.crc_of(x)))
        wall = max(g[2] for g in got) - t0
        return (nconn * per / MIB / wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], nconn * per)

    def py_client(self, *argv):
        a = self.args
        tls = "plain" if argv[0] == "plain" else a.tls
        rest = [self.b.ca, tls] + ([B.SUITES[a.suite]["ossl12"]] if tls == "1.2" else [])
        return [self.b.python, os.path.abspath(__file__)] + [str(v) for v in argv[1:]] + rest

    def handshakes(self, inst, n):
        """(handshakes/s, CPU s of the terminator, report of the client)."""
        a = self.args
        inst.settle()
        plain = ["plain"] if inst.t.kind == "limit" else ["tls"]
        cpu0 = tree_cpu(inst.root)
        try:
            r = subprocess.run(self.py_client(*plain, "handshakes", inst.port, n,
                                              a.proxy_hs_concurrency),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.b.env,
                               timeout=(60 + n / 2) * a.timeout_scale)
        except subprocess.TimeoutExpired:
            raise B.RunFailed("the handshake client timed out")
        cpu1 = tree_cpu(inst.root)
        inst.check_alive()
        try:
            rep = json.loads(r.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise B.RunFailed("the handshake client failed: %s"
                              % B.last_line(r.stderr.decode("utf-8", "replace")))
        if rep["failed"]:
            raise B.RunFailed("%d of %d handshakes failed: %s"
                              % (rep["failed"], n, "; ".join(rep["errors"])))
        if inst.t.kind != "limit":
            err = self.b.suite_mismatch(inst.t.title, "%s %s" % (rep["version"], rep["cipher"]))
            if err:
                raise B.RunFailed(err)
        return n / rep["wall_s"], (cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1]), rep

    def idle(self, inst, n):
        """KiB of the terminator's memory per idle session."""
        inst.settle()
        plain = ["plain"] if inst.t.kind == "limit" else ["tls"]
        p = subprocess.Popen(self.py_client(*plain, "idle", inst.port, n),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=self.b.env)
        B.procs.register(p)
        limit = (60 + n / 20) * self.args.timeout_scale
        try:
            if p.stdout.readline().strip() != b"primed":
                raise B.RunFailed("the idle client failed: %s"
                                  % B.last_line(p.stderr.read().decode("utf-8", "replace")))
            # No session left: the baseline, after a few sessions came and went.
            if not inst.sink.wait_quiet(30 * self.args.timeout_scale, quiet=1.0):
                raise B.RunFailed("sessions of the idle client's first round still open")
            base = tree_pss_kib(inst.root)
            p.stdin.write(b"go\n")
            p.stdin.flush()
            line = p.stdout.readline().strip()
            if line != b"ready":
                raise B.RunFailed("the idle client: %s" % (
                    line.decode("utf-8", "replace")
                    or B.last_line(p.stderr.read().decode("utf-8", "replace"))))
            # Every session established through to the backend.
            if not inst.sink.wait(lambda o, e: len(o) - len(e) >= n, limit):
                raise B.RunFailed("only %d of %d idle sessions reached the backend"
                                  % (inst.sink.open_now(), n))
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

    # -- rounds

    def run(self):
        a, b = self.args, self.b
        ts = self.terminators()
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
        if not b.tcpcopy:
            raise SystemExit("bench: the proxy scenario needs tests/bench/tcpcopy (its backend): "
                             "make tests/bench/tcpcopy, or run it with make bench")
        b.setup()
        for t in ts:
            t.skip_reason = t.available()
            self.status[t.id] = ("skipped", t.skip_reason) if t.skip_reason else ("ok", None)
            t.base_how = t.how
            if t.openssl_ktls:
                t.how += "; kTLS: not checked (no round completed)"
        self.header(ts)
        for r in range(0, a.rounds + 1):
            verify = r == 0
            B.say("round 0 (warm-up: checks every byte (CRC-32 at the backend) and the suite, "
                  "not timed) ..." if verify else "round %d of %d ..." % (r, a.rounds))
            order = ts[r % len(ts):] + ts[:r % len(ts)]
            for t in order:
                if self.status[t.id][0] != "ok":
                    continue
                t0 = time.monotonic()
                inst = None
                try:
                    before = tls_stat()
                    inst = Instance(self, t, verify)
                    self.one_round(inst, verify)
                    if t.openssl_ktls:
                        self.check_ktls(t, r, before, tls_stat())
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

    def check_ktls(self, t, r, before, after):
        """A contender that asks OpenSSL for kTLS counts as kTLS only if
        sockets got kernel TLS while it ran (/proc/net/tls_stat is the
        whole machine's, but contenders run one at a time and every client
        runs --ktls off): else it is unavailable, its figures dropped."""
        def rose(key):
            return after.get(key, 0) - before.get(key, 0)
        tx = max(rose("TlsTxSw"), rose("TlsTxDevice"))
        rx = max(rose("TlsRxSw"), rose("TlsRxDevice"))
        if tx <= 0:
            why = ("/proc/net/tls_stat is missing (the tls module is not loaded)" if not after
                   else "TlsTxSw in /proc/net/tls_stat did not rise during round %d "
                        "(TlsRxSw rose by %d)" % (r, rx))
            self.status[t.id] = ("unavailable", "OpenSSL did not enable kTLS: " + why)
            t.how = t.base_how + "; kTLS: not enabled (see above)"
            for k in [k for k in self.results if k[0] == t.id]:
                del self.results[k]
            B.say("  UNAVAILABLE %s: %s" % (t.title, self.status[t.id][1]))
            return
        seen = self.ktls_got.setdefault(t.id, [])
        seen.append("TX+RX" if rx > 0 else "TX only")
        rises = self.ktls_rises.setdefault(t.id, [])
        rises.append("+%d/+%d" % (tx, rx))
        # The weakest a round saw: TX+RX only if every round had both.
        t.how = "%s; kTLS: %s (TlsTxSw/TlsRxSw in /proc/net/tls_stat, per round: %s)" % (
            t.base_how, "TX only" if "TX only" in seen else "TX+RX", ", ".join(rises))

    def one_round(self, inst, verify):
        a = self.args
        t = inst.t
        # (figure key prefix, transfer) per direction asked for
        dirs = [(pre, f) for d, pre, f in (("up", "", self.transfer),
                                           ("down", "down_", self.transfer_down))
                if d in a.proxy_dirs]
        if verify:
            for _, f in dirs:
                f(inst, 1, True)
                f(inst, a.proxy_conns, True)
            self.handshakes(inst, 2 * a.proxy_hs_concurrency)
            return
        res = self.results
        kib, base = self.idle(inst, a.proxy_idle)
        res.setdefault((t.id, "idle_kib"), []).append(kib)
        res.setdefault((t.id, "base_kib"), []).append(base)
        for pre, f in dirs:
            for n, key in ((1, "one"), (a.proxy_conns, "many")):
                mibs, u, s, nbytes = f(inst, n, False)
                res.setdefault((t.id, pre + key + "_mibs"), []).append(mibs)
                res.setdefault((t.id, pre + key + "_cpu"), []).append((u + s) / (nbytes / GIB))
        hs, cpu, _ = self.handshakes(inst, a.proxy_handshakes)
        res.setdefault((t.id, "hs"), []).append(hs)
        res.setdefault((t.id, "hs_cpu_ms"), []).append(cpu * 1000 / a.proxy_handshakes)

    # -- output

    FIGS = (("one_mibs", "1 conn MiB/s", "%.1f", True),
            ("many_mibs", "%d conns MiB/s", "%.1f", True),
            ("one_cpu", "CPU s/GiB 1", "%.2f", False),
            ("many_cpu", "CPU s/GiB %d", "%.2f", False),
            ("hs", "handshakes/s", "%.0f", True),
            ("hs_cpu_ms", "CPU ms/hs", "%.2f", False),
            ("idle_kib", "KiB/session", "%.1f", False))
    # Downloads (--proxy-dirs down): the terminator encrypts.
    DOWN_FIGS = (("down_one_mibs", "1 conn down MiB/s", "%.1f", True),
                 ("down_many_mibs", "%d conns down MiB/s", "%.1f", True),
                 ("down_one_cpu", "CPU s/GiB 1 down", "%.2f", False),
                 ("down_many_cpu", "CPU s/GiB %d down", "%.2f", False))
    SPREAD_KEYS = ("one_mibs", "many_mibs", "hs")
    DOWN_SPREAD_KEYS = ("down_one_mibs", "down_many_mibs")

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

    def header(self, ts):
        a, b = self.args, self.b
        dirs = {"up": "client to backend", "down": "backend to client"}
        B.say("ktlsctl bench, proxy scenario: TLS %s %s, %s %s (1 connection, "
              "then %d at once), %d new connections, %d idle sessions; %d timed round%s after "
              "a warm-up round; figures are medians"
              % (a.tls, B.SUITES[a.suite]["ossl13"] if a.tls == "1.3"
                 else B.SUITES[a.suite]["ossl12"], B.human_size(a.size),
                 " and ".join(dirs[d] for d in a.proxy_dirs), a.proxy_conns,
                 a.proxy_handshakes, a.proxy_idle, a.rounds, "" if a.rounds == 1 else "s"))
        load = os.getloadavg()[0]
        B.say("host: %s, %d CPUs, load %.2f; kTLS: %s"
              % (B.platform.release(), os.cpu_count() or 1, load,
                 "available" if b.ktls[0] else "unavailable (%s)" % b.ktls[1]))
        if load > (os.cpu_count() or 1) * 0.5:
            B.say("note: the machine is busy (load %.2f): figures are noisy" % load)
        B.say("backend: tcpcopy sink (plain TCP, one epoll loop, data dropped with MSG_TRUNC%s); "
              "client: ktlsctl connect --ktls off (transfers%s), proxy.py (handshakes, idle)"
              % (", or sent with sendfile for downloads" if "down" in a.proxy_dirs else "",
                 ", downloads counted by tcpcopy drain" if "down" in a.proxy_dirs else ""))
        for t in ts:
            if t.skip_reason:
                B.say("skipped: %s: %s" % (t.title, t.skip_reason))
        B.say()

    def table(self, ts, title, figs, spread_keys):
        """One table of medians, then the ratios of each ktlsctl row to
        every other row."""
        B.say()
        B.say(title)
        cols = [self.fig_title(f[1]) for f in figs]
        widths = [max(13, len(c)) for c in cols]
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
        refs = [t for t in ts if isinstance(t, KtlsctlForward) and self.status[t.id][0] == "ok"
                and any(self.med(t.id, f[0]) for f in figs)]
        for ref in refs:
            B.say("  ratios, %s / contender (throughput, handshakes: >1 ktlsctl faster; "
                  "CPU, KiB: <1 ktlsctl cheaper)" % ref.title)
            for t in ts:
                if t is ref or self.status[t.id][0] != "ok":
                    continue
                cells = []
                for key, _, _, _ in figs:
                    mine, theirs = self.med(ref.id, key), self.med(t.id, key)
                    # A zero (CPU below the clock tick at small sizes, the
                    # backend's memory within noise) has no ratio.
                    ok = mine is not None and theirs is not None and mine > 0 and theirs > 0
                    cells.append(B.ratio(mine / theirs) if ok else "n/a")
                B.say("  %-28s" % t.title
                      + "".join(" %*s" % (w, c) for w, c in zip(widths, cells)))

    def report(self, ts):
        dirs = self.args.proxy_dirs
        self.table(ts, "== proxy: terminator in front of a plain TCP backend%s"
                   % (" (transfers: upload, client -> terminator (decrypts) -> backend)"
                      if "up" in dirs else ""), self.FIGS, self.SPREAD_KEYS)
        if "down" in dirs:
            self.table(ts, "== proxy, download: backend -> terminator (encrypts) -> client",
                       self.DOWN_FIGS, self.DOWN_SPREAD_KEYS)
        B.say()
        B.say("how each terminator runs (same certificate, ECDSA P-256, and suite):")
        for t in ts:
            if not t.skip_reason:
                B.say("  %-28s %s" % (t.title, t.how))
        for t in ts:
            if self.status[t.id][0] == "failed":
                B.say("FAILED: %s: %s" % (t.title, self.status[t.id][1]))

    def write_json(self, ts):
        a = self.args
        doc = {"format": 1, "tool": "ktlsctl bench", "scenario": "proxy",
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config": {"size_bytes": a.size, "rounds": a.rounds, "tls": a.tls,
                          "suite": a.suite, "conns": a.proxy_conns,
                          "handshakes": a.proxy_handshakes,
                          "hs_concurrency": a.proxy_hs_concurrency, "idle": a.proxy_idle,
                          "dirs": a.proxy_dirs},
               "host": {"kernel": B.platform.release(), "cpus": os.cpu_count(),
                        "loadavg": list(os.getloadavg()), "ktls": self.b.ktls[0]},
               "results": []}
        figs = self.FIGS + self.DOWN_FIGS
        for t in ts:
            st, why = self.status[t.id]
            doc["results"].append({
                "contender": t.id, "title": t.title, "how": t.how, "status": st, "reason": why,
                "median": {k: self.med(t.id, k) for k, _, _, _ in figs},
                "spread_pct": self.spread(t.id),
                "down_spread_pct": self.spread(t.id, self.DOWN_SPREAD_KEYS),
                # What OpenSSL's kTLS did for the row, the weakest round's.
                "ktls": (("TX only" if "TX only" in self.ktls_got[t.id] else "TX+RX")
                         if self.ktls_got.get(t.id) else None),
                "rounds": {k: self.results.get((t.id, k), []) for k, _, _, _ in figs}})
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        B.say("results written to %s" % a.json)


def main(args, bench_module):
    global B, tls_stat
    B = bench_module
    from ktlsctl_test.channel import tls_stat
    if args.list:
        px = Proxy(args)
        for t in px.terminators():
            B.say("%-20s %s" % (t.id, t.title))
        return 0
    return Proxy(args).run()


# -------------------------------------- the handshake and idle-session client

def _context(cafile, tls, ciphers):
    ctx = ssl.create_default_context(cafile=cafile)
    v = ssl.TLSVersion.TLSv1_3 if tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def _connect(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if ctx is None:
        return s
    return ctx.wrap_socket(s, server_hostname="localhost")


def client_main(argv):
    """handshakes PORT N CONC CAFILE TLS [CIPHERS] | idle PORT N CAFILE TLS [CIPHERS]:
    TLS is 1.2, 1.3 or plain (TCP only)."""
    what = argv[0]
    if what == "handshakes":
        port, n, conc, cafile, tls = int(argv[1]), int(argv[2]), int(argv[3]), argv[4], argv[5]
        ciphers = argv[6] if len(argv) > 6 else None
    else:
        port, n, cafile, tls = int(argv[1]), int(argv[2]), argv[3], argv[4]
        ciphers = argv[5] if len(argv) > 5 else None
        conc = 4
    ctx = None if tls == "plain" else _context(cafile, tls, ciphers)
    lock = threading.Lock()
    state = {"next": 0, "failed": 0, "errors": [], "version": None, "cipher": None}
    held = []

    def worker(count, keep):
        while True:
            with lock:
                if state["next"] >= count:
                    return
                state["next"] += 1
            try:
                s = _connect(port, ctx)
                if ctx is not None and state["version"] is None:
                    state["version"], state["cipher"] = s.version(), s.cipher()[0]
                if keep:
                    with lock:
                        held.append(s)
                else:
                    s.close()
            except (OSError, ssl.SSLError) as e:
                with lock:
                    state["failed"] += 1
                    if len(state["errors"]) < 3:
                        state["errors"].append(str(e))

    def run(count, keep):
        state["next"] = 0
        ths = [threading.Thread(target=worker, args=(count, keep)) for _ in range(conc)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()

    if what == "handshakes":
        t0 = time.monotonic()
        run(n, False)
        wall = time.monotonic() - t0
        print(json.dumps({"wall_s": wall, "failed": state["failed"], "errors": state["errors"],
                          "version": state["version"], "cipher": state["cipher"]}))
        return 0
    # idle: a few sessions that come and go (the terminator's one-time set-up
    # is then in the baseline), then N held until stdin closes.
    run(8, False)
    sys.stdout.write("primed\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 0
    run(n, True)
    if state["failed"]:
        sys.stdout.write("%d of %d sessions failed: %s\n"
                         % (state["failed"], n, "; ".join(state["errors"])))
    else:
        sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()
    for s in held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
