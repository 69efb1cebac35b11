#!/usr/bin/env python3
"""The originate scenario of `make bench` (tests/bench/README.md):

    make bench BENCH_ARGS='--scenario originate --size 256M'

TLS originators side by side (`ktlsctl connect HOST:PORT --accept PORT`,
stunnel4's client mode, socat, haproxy and nginx with TLS to their
server): each takes plain TCP clients on 127.0.0.1 and opens one TLS
connection per client to the same TLS server, which passes the bytes on
to the sink that counts them:

    plain TCP client -> originator -> TLS server -> sink
    (tcpcopy connect)               (ktlsctl listen --forward --ktls off
                                     --workers auto -> tcpcopy sink)

Per originator, the median of the timed rounds of:

  1 conn       one connection moving --size bytes, MiB/s, timed from
               letting the client go to the moment the sink holds the last
               byte
  N conns      --proxy-conns connections at once, --size bytes in all
  CPU s/GiB    user + system CPU of the originator's processes, per GiB
  conns/s      --proxy-handshakes new connections (each a TLS handshake
               to the server), --proxy-hs-concurrency at once; CPU ms each,
               and the share the server saw resumed
  KiB/conn     memory (PSS, summed over the originator's processes) with
               --proxy-idle idle connections open through to the sink,
               minus the baseline, per connection

The "limit" row is the TLS server alone: a TLS client (ktlsctl connect
--ktls off) straight to it, no originator.  bench.py calls main(); run as
a script, this file is the handshake and idle-connection client (plain
TCP, standard library only):

    originate.py handshakes PORT N CONCURRENCY
    originate.py idle PORT N
"""

import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib

# The process-tree readers of the proxy scenario: /proc only, no state.
from proxy import tree, tree_cpu, tree_pss_kib

B = None            # the bench module (bench.py runs as __main__): set by main()
MIB = 1 << 20
GIB = 1 << 30
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
SESSION = re.compile(r"^ktlsctl: session \d+ .*\bversion=(\S+) cipher=(\S+)")


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


# ------------------------------------------------------------- the sink

class Sink:
    """`tcpcopy sink PORT discard|crc`: every connection's opening, and its
    end with its byte count, CRC-32 and the time of its last byte."""

    def __init__(self, b, d, crc):
        self.lock = threading.Condition()
        self.opened = {}        # id -> time
        self.ended = {}         # id -> (bytes, crc, t_last, reset)
        r, w = os.pipe2(os.O_CLOEXEC)
        err = os.path.join(d, "sink.err")
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.proc = B.Proc("tcpcopy sink", [b.tcpcopy, "sink", "0",
                                                "crc" if crc else "discard"],
                               null, w, err, env=b.env, persistent=True)
        finally:
            os.close(w)
            os.close(null)
        self.reader = threading.Thread(target=self._read, args=(r,), daemon=True)
        self.reader.start()
        self.port = None
        deadline = time.monotonic() + 15
        while self.port is None:
            m = re.search(r"listening on \S*:(\d+)", B.read_text(err))
            if m:
                self.port = int(m.group(1))
            elif self.proc.try_reap() or time.monotonic() > deadline:
                raise B.RunFailed("the sink (tcpcopy sink) did not start: %s" % B.tail_of(err))
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
                    self.lock.notify_all()

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

    def settle(self, timeout, quiet=0.5):
        """Wait until every connection has ended and none opened or ended
        for quiet seconds, then forget them all; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.wait(lambda o, e: len(o) == len(e), deadline - time.monotonic()):
                return False
            with self.lock:
                seen = (len(self.opened), len(self.ended))
            time.sleep(quiet)
            with self.lock:
                if (len(self.opened), len(self.ended)) == seen:
                    self.opened.clear()
                    self.ended.clear()
                    return True

    def stop(self):
        self.proc.stop(1.0)
        self.reader.join(5)


# ------------------------------------------------------------- the server

class Server:
    """The TLS server every originator connects to: `ktlsctl listen
    --forward` to the sink, user-space channel (the same on every machine),
    a worker per CPU.  Its log lines say what each originator negotiated
    and whether it resumed."""

    def __init__(self, b, d, sink_port, maxconn):
        a = b.args
        self.err = os.path.join(d, "server.err")
        self.mark_at = 0
        n = os.cpu_count() or 1
        for attempt in range(4):
            self.port = B.free_port()
            argv = [b.ktlsctl, "listen", "127.0.0.1:%d" % self.port, "--cert", b.cert,
                    "--key", b.key, "--forward", "127.0.0.1:%d" % sink_port, "--ktls", "off",
                    "--tls" + a.tls, "--cipher", B.SUITES[a.suite]["ktlsctl"],
                    "--workers", "auto", "--max-conns", str(maxconn * n)]
            if a.verbose:
                B.say("    $ %s" % B.shlex.join(argv))
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.proc = B.Proc("TLS server", argv, null, null, self.err, env=b.env,
                                   persistent=True)
            finally:
                os.close(null)
            try:
                wait_listening(self.proc, self.port, self.err, "the TLS server (ktlsctl listen)",
                               20 * a.timeout_scale)
                return
            except B.RunFailed:
                self.proc.stop(1.0)
                if attempt == 3 or not re.search(r"in use", B.read_text(self.err), re.I):
                    raise

    def mark(self):
        self.mark_at = os.path.getsize(self.err)

    def sessions(self):
        """The session log lines since mark()."""
        with open(self.err, "rb") as f:
            f.seek(self.mark_at)
            text = f.read().decode("utf-8", "replace")
        return [ln for ln in text.splitlines() if SESSION.match(ln)]

    def check_alive(self):
        if self.proc.try_reap():
            raise B.RunFailed("the TLS server %s: %s" % (self.proc.describe_status(),
                                                         B.tail_of(self.err)))

    def stop(self):
        self.proc.stop(5.0)


# --------------------------------------------------------- originators

class Originator:
    id = title = ""
    kind = "tls"
    how = ""
    resumes = ""

    def __init__(self, og):
        self.og = og
        self.b = og.b
        self.skip_reason = None

    def available(self):
        return None

    def command(self, port, sport, d):
        """(argv, env) of the originator on 127.0.0.1:port, each client's
        TLS connection to 127.0.0.1:sport (its name: localhost, checked
        against the run's CA); d: a directory for its configuration."""
        raise NotImplementedError

    def suite13(self):
        return B.SUITES[self.b.args.suite]["ossl13"]

    def suite12(self):
        return B.SUITES[self.b.args.suite]["ossl12"]

    def maxconn(self):
        return self.b.args.proxy_idle + self.b.args.proxy_hs_concurrency + 64


class KtlsctlAccept(Originator):
    resumes = "yes: offers the server's latest ticket"

    def __init__(self, og, channel, workers=False):
        super().__init__(og)
        self.channel = channel
        self.workers = workers
        self.id = "ktlsctl-" + channel + ("-workers" if workers else "")
        self.title = ("ktlsctl --workers auto, " if workers else "ktlsctl --accept, ") + (
            "kernel" if channel == "kernel" else "user space")
        self.how = ("ktlsctl connect SERVER --accept --ktls %s: %s%s"
                    % ("require" if channel == "kernel" else "off",
                       "--workers auto, a process per CPU on the shared listener"
                       if workers else "one epoll loop",
                       ", splice socket-pipe-socket" if channel == "kernel" else ""))

    def available(self):
        if not os.access(self.b.ktlsctl, os.X_OK):
            return "ktlsctl binary %s not found (build it first)" % self.b.ktlsctl
        if self.channel == "kernel" and not self.b.ktls[0]:
            return "kernel TLS unavailable here (%s)" % self.b.ktls[1]
        return None

    def command(self, port, sport, d):
        a = self.b.args
        return ([self.b.ktlsctl, "connect", "localhost:%d" % sport, "--accept",
                 "127.0.0.1:%d" % port, "--cafile", self.b.ca,
                 "--ktls", "require" if self.channel == "kernel" else "off", "--tls" + a.tls,
                 "--cipher", B.SUITES[a.suite]["ktlsctl"], "--max-conns", str(self.maxconn())]
                + (["--workers", "auto"] if self.workers else []),
                None)

    def maxconn(self):
        # --max-conns is shared out among the workers: each must be able to
        # hold every idle connection, wherever the kernel sends them.
        n = (os.cpu_count() or 1) if self.workers else 1
        return super().maxconn() * n


class Stunnel(Originator):
    id = "stunnel"
    title = "stunnel4 client"
    how = ("stunnel4, foreground, one [service] with client = yes, accept/connect, "
           "verifyChain, checkHost (a thread per connection)")
    resumes = "yes: its client caches the session"

    def available(self):
        return self.b.ensure_package("stunnel4", lambda: shutil.which("stunnel4"), "stunnel4")

    def command(self, port, sport, d):
        a = self.b.args
        conf = os.path.join(d, "stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\n"
                    "[bench]\nclient = yes\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "CAfile = %s\nverifyChain = yes\ncheckHost = localhost\nsni = localhost\n"
                    % (port, sport, self.b.ca))
            if a.tls == "1.3":
                f.write("sslVersionMin = TLSv1.3\nsslVersionMax = TLSv1.3\n"
                        "ciphersuites = %s\n" % self.suite13())
            else:
                f.write("sslVersionMin = TLSv1.2\nsslVersionMax = TLSv1.2\n"
                        "ciphers = %s\n" % self.suite12())
        return ["stunnel4", conf], None


class SocatFork(Originator):
    id = "socat"
    title = "socat fork"
    how = ("socat -b 128 KiB TCP-LISTEN:...,fork,reuseaddr OPENSSL:server,cafile=..,verify=1 "
           "(a process per connection; TLS 1.3 suite through OPENSSL_CONF)")
    resumes = "no"

    def available(self):
        return self.b.socat_missing

    def command(self, port, sport, d):
        a = self.b.args
        v = "TLS1.3" if a.tls == "1.3" else "TLS1.2"
        addr = ("OPENSSL:localhost:%d,cafile=%s,verify=1,commonname=localhost,"
                "min-version=%s,max-version=%s" % (sport, self.b.ca, v, v))
        if a.tls == "1.2":
            addr += ",cipher=" + self.suite12()
        return (["socat", "-b", str(a.socat_buffer),
                 "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr,backlog=4096" % port, addr],
                {"OPENSSL_CONF": self.b.openssl_conf})


class HAProxy(Originator):
    id = "haproxy"
    title = "haproxy"
    how = ("haproxy -db, mode tcp, server s1 ... ssl verify required ca-file (its default "
           "threads: one per CPU)")
    resumes = "yes: reuses the last session per server (default, no-ssl-reuse turns it off)"

    def available(self):
        return self.b.ensure_package("haproxy", lambda: shutil.which("haproxy"), "haproxy")

    def command(self, port, sport, d):
        a = self.b.args
        if a.tls == "1.3":
            tls = ("  ssl-default-server-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3\n"
                   "  ssl-default-server-ciphersuites %s\n" % self.suite13())
        else:
            tls = ("  ssl-default-server-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2\n"
                   "  ssl-default-server-ciphers %s\n" % self.suite12())
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("global\n  maxconn %d\n%s"
                    "defaults\n  mode tcp\n  timeout connect 10s\n  timeout client 1h\n"
                    "  timeout server 1h\n"
                    "frontend fe\n  bind 127.0.0.1:%d\n  default_backend be\n"
                    "backend be\n  server s1 127.0.0.1:%d ssl verify required ca-file %s "
                    "verifyhost localhost sni str(localhost)\n"
                    % (2 * self.maxconn(), tls, port, sport, self.b.ca))
        return ["haproxy", "-db", "-f", conf], None


class Nginx(Originator):
    id = "nginx"
    title = "nginx stream"
    how = ("nginx stream { server { listen ...; proxy_pass server; proxy_ssl on; "
           "proxy_ssl_verify on; proxy_half_close on; } }, worker_processes auto (one per CPU)")
    resumes = "yes: proxy_ssl_session_reuse is on by default (per worker)"

    def available(self):
        if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
            why = self.b.ensure_package("nginx-light", lambda: shutil.which("nginx")
                                        or os.path.exists("/usr/sbin/nginx"), "nginx")
            if why:
                return why
        return self.b.ensure_package("libnginx-mod-stream", lambda: os.path.exists(NGINX_STREAM),
                                     "nginx's stream module")

    def command(self, port, sport, d):
        a = self.b.args
        if a.tls == "1.3":
            tls = ("proxy_ssl_protocols TLSv1.3;\n    proxy_ssl_conf_command Ciphersuites %s;\n"
                   % self.suite13())
        else:
            tls = "proxy_ssl_protocols TLSv1.2;\n    proxy_ssl_ciphers %s;\n" % self.suite12()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("load_module %s;\ndaemon off;\nmaster_process on;\nworker_processes auto;\n"
                    "pid %s/nginx.pid;\nerror_log stderr warn;\nworker_rlimit_nofile %d;\n"
                    "events { worker_connections %d; }\n"
                    "stream {\n  server {\n    listen 127.0.0.1:%d;\n"
                    "    proxy_pass 127.0.0.1:%d;\n    proxy_ssl on;\n    %s"
                    "    proxy_ssl_verify on;\n    proxy_ssl_trusted_certificate %s;\n"
                    "    proxy_ssl_name localhost;\n    proxy_ssl_server_name on;\n"
                    "    proxy_half_close on;\n    proxy_timeout 1h;\n  }\n}\n"
                    % (NGINX_STREAM, d, 4 * self.maxconn(), 2 * self.maxconn(), port,
                       sport, tls, self.b.ca))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-e", "stderr", "-p", d, "-c", conf], None


class Limit(Originator):
    id = "limit"
    title = "limit: TLS server alone"
    kind = "limit"
    how = ("no originator: the clients are TLS themselves (ktlsctl connect --ktls off --eof "
           "close, a full handshake each) straight to the server; CPU and memory are not the "
           "server's, so they are left out")
    resumes = "no"


# ----------------------------------------------------------------- the run

class Instance:
    """One originator (or none, for the limit) with its server and sink,
    started afresh for one round."""

    def __init__(self, og, t, crc):
        self.og, self.t = og, t
        b = og.b
        self.dir = B.tempfile.mkdtemp(prefix="originate-%s." % t.id, dir=b.tmp)
        self.sink = self.server = self.proc = None
        try:
            self.sink = Sink(b, self.dir, crc)
            self.server = Server(b, self.dir, self.sink.port, og.server_maxconn())
            self.port, self.root = self.server.port, None
            if t.kind != "limit":
                self._start()
        except B.RunFailed:
            self.stop()
            raise

    def _start(self):
        b, t = self.og.b, self.t
        for attempt in range(4):
            port = B.free_port()
            argv, env = t.command(port, self.server.port, self.dir)
            e = dict(b.env)
            e.update(env or {})
            err = os.path.join(self.dir, "%s.err" % t.id)
            if b.args.verbose:
                B.say("    $ %s" % B.shlex.join(argv))
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.proc = B.Proc(t.title, argv, null, null, err, env=e, persistent=True)
            finally:
                os.close(null)
            self.proc.errpath = err
            try:
                wait_listening(self.proc, port, err, t.title, 20 * b.args.timeout_scale)
                self.port, self.root = port, self.proc.pid
                return
            except B.RunFailed:
                self.proc.stop(1.0)
                if attempt == 3 or not re.search(r"in use", B.read_text(err), re.I):
                    raise

    def check_alive(self):
        self.server.check_alive()
        if self.proc is not None and self.proc.try_reap():
            raise B.RunFailed("%s %s: %s" % (self.t.title, self.proc.describe_status(),
                                             B.tail_of(self.proc.errpath)))

    def settle(self):
        """Wait until the previous test's connections have all ended at the
        sink and the originator's process tree stopped changing (a socat
        child may still be exiting), then forget them."""
        limit = (30 + self.sink.open_now() / 20) * self.og.args.timeout_scale
        if not self.sink.settle(limit):
            raise B.RunFailed("%d sink connection(s) of the previous test still open after %.0fs"
                              % (self.sink.open_now(), limit))
        if self.root is not None:
            deadline = time.monotonic() + limit
            n = len(tree(self.root))
            while time.monotonic() < deadline:
                time.sleep(0.2)
                m = len(tree(self.root))
                if m == n:
                    break
                n = m
        # And the server's log: it writes a session's line after the sink
        # saw the end (once its close_notify is out).
        size = -1
        while size != os.path.getsize(self.server.err):
            size = os.path.getsize(self.server.err)
            time.sleep(0.2)
        self.server.mark()

    def cpu(self):
        if self.root is None:
            return 0.0, 0.0
        return tree_cpu(self.root)

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5.0)
        if self.server is not None:
            self.server.stop()
        if self.sink is not None:
            self.sink.stop()
        if not self.og.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Originate:
    def __init__(self, args):
        self.args = args
        self.b = B.Bench(args)
        self.results = {}           # (id, figure) -> [values per round]
        self.status = {}            # id -> (status, reason)
        self.crcs = {}

    def originators(self):
        all_t = [KtlsctlAccept(self, "kernel"), KtlsctlAccept(self, "user"),
                 KtlsctlAccept(self, "kernel", workers=True),
                 KtlsctlAccept(self, "user", workers=True), Stunnel(self),
                 SocatFork(self), HAProxy(self), Nginx(self), Limit(self)]
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

    def server_maxconn(self):
        a = self.args
        return a.proxy_idle + max(a.proxy_hs_concurrency, a.proxy_conns) + 64

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

    def client_argv(self, inst):
        b, a = self.b, self.args
        if inst.t.kind == "limit":
            return [b.ktlsctl, "connect", "localhost:%d" % inst.port, "--cafile", b.ca,
                    "--ktls", "off", "--tls" + a.tls, "--cipher", B.SUITES[a.suite]["ktlsctl"],
                    "--eof", "close"]
        return [b.tcpcopy, "connect", str(inst.port), "one-way"]

    def check_sessions(self, inst, n, verify):
        """The server's log lines of the last test: n sessions, each on the
        suite asked for (checked in the warm-up round); returns how many
        resumed."""
        lines = inst.server.sessions()
        deadline = time.monotonic() + 10 * self.args.timeout_scale
        while len(lines) < n and time.monotonic() < deadline:
            time.sleep(0.05)
            lines = inst.server.sessions()
        if len(lines) != n:
            raise B.RunFailed("the TLS server logged %d sessions, expected %d" % (len(lines), n))
        if verify:
            for ln in lines:
                m = SESSION.match(ln)
                err = self.b.suite_mismatch(inst.t.title, "%s %s" % (m.group(1), m.group(2)))
                if err:
                    raise B.RunFailed(err + " (the server's log: %s)" % B.last_line(ln))
        return sum(1 for ln in lines if " resumed=yes" in ln)

    def transfer(self, inst, nconn, verify):
        """nconn connections at once, --size bytes in all: (MiB/s, CPU
        user s, CPU sys s, bytes)."""
        b = self.b
        per = self.args.size // nconn
        x = b.dataset_of(per)
        inst.settle()
        cpu0 = inst.cpu()
        clients = []
        # The clients are started first, each waiting in a shell for the go
        # (EOF on a pipe they share): starting N processes is not timed.
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        argv = ["/bin/sh", "-c", 'read _ <&%d; exec "$@"' % go_r, "sh"] + self.client_argv(inst)
        who = "ktlsctl connect" if inst.t.kind == "limit" else "tcpcopy connect"
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
                        raise B.RunFailed("the client (%s) exited with status %d: %s"
                                          % (who, p.returncode, B.tail_of(p.errpath)))
                inst.check_alive()
                if all(p.returncode is not None for p in clients):
                    # The clients are done (each waits for the end to come
                    # back): the sink has every end, unless data was lost.
                    grace = 10 * self.args.timeout_scale
                    if inst.sink.wait(lambda o, e: len(e) >= nconn, grace):
                        break
                    with inst.sink.lock:
                        got = sorted(v[0] for v in inst.sink.ended.values())
                        opened = len(inst.sink.opened)
                    raise B.RunFailed("every client exited with status 0, but %.0fs later the "
                                      "sink had seen %d of %d connections, %d of them ended "
                                      "(bytes: %s)" % (grace, opened, nconn, len(got),
                                                       ", ".join(map(str, got[:4])) or "none"))
                if time.monotonic() > deadline:
                    with inst.sink.lock:
                        got = sorted(v[0] for v in inst.sink.ended.values())
                    raise B.RunFailed("timed out after %.0fs: %d of %d sink connections ended "
                                      "(bytes: %s), %d client(s) still running"
                                      % (time.monotonic() - t0, len(got), nconn,
                                         ", ".join(map(str, got[:4])) or "none",
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
            raise B.RunFailed("the sink saw %d connections, expected %d" % (len(ends), nconn))
        for n, crc, _, reset in ends:
            if n != per:
                raise B.RunFailed("a connection delivered %d bytes to the sink, expected %d%s"
                                  % (n, per, " (reset)" if reset else ""))
            if verify and crc != self.crc_of(x):
                raise B.RunFailed("data corrupted: CRC-32 at the sink %s, sent %s"
                                  % (crc, self.crc_of(x)))
        self.check_sessions(inst, nconn, verify)
        wall = max(e[2] for e in ends) - t0
        return (nconn * per / MIB / wall, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], nconn * per)

    def py_client(self, *argv):
        return [self.b.python, os.path.abspath(__file__)] + [str(v) for v in argv]

    def handshakes(self, inst, n, verify):
        """n new connections, each a byte through to the sink and the end
        back: (connections/s, CPU s of the originator, resumed)."""
        a = self.args
        inst.settle()
        cpu0 = inst.cpu()
        if inst.t.kind == "limit":
            # The TLS client's own handshakes, through the proxy scenario's
            # client (Python's ssl): straight to the server.
            import proxy
            argv = [self.b.python, proxy.__file__, "handshakes", inst.port, n,
                    a.proxy_hs_concurrency, self.b.ca, a.tls] + (
                        [B.SUITES[a.suite]["ossl12"]] if a.tls == "1.2" else [])
            argv = [str(v) for v in argv]
        else:
            argv = self.py_client("handshakes", inst.port, n, a.proxy_hs_concurrency)
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.b.env, timeout=(60 + n / 2) * a.timeout_scale)
        except subprocess.TimeoutExpired:
            raise B.RunFailed("the connection client timed out")
        cpu1 = inst.cpu()
        inst.check_alive()
        try:
            rep = json.loads(r.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise B.RunFailed("the connection client failed: %s"
                              % B.last_line(r.stderr.decode("utf-8", "replace")))
        if rep["failed"]:
            raise B.RunFailed("%d of %d connections failed: %s"
                              % (rep["failed"], n, "; ".join(rep["errors"])))
        if inst.t.kind == "limit":
            # Its client resets the connection once the handshake is done,
            # often before the server has connected to the sink: the
            # client's report is all there is to check.
            return n / rep["wall_s"], 0.0, 0
        with inst.sink.lock:
            ends = list(inst.sink.ended.values())
        bad = [e[0] for e in ends if e[0] != 1]
        if len(ends) != n or bad:
            raise B.RunFailed("the sink saw %d connections end, expected %d each with its byte%s"
                              % (len(ends), n, " (bytes: %s)" % ", ".join(map(str, bad[:4]))
                                 if bad else ""))
        resumed = self.check_sessions(inst, n, verify)
        return n / rep["wall_s"], (cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1]), resumed

    def idle(self, inst, n):
        """KiB of the originator's memory per idle connection, and its
        baseline."""
        inst.settle()
        p = subprocess.Popen(self.py_client("idle", inst.port, n), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.b.env)
        B.procs.register(p)
        limit = (60 + n / 20) * self.args.timeout_scale
        try:
            if p.stdout.readline().strip() != b"primed":
                raise B.RunFailed("the idle client failed: %s"
                                  % B.last_line(p.stderr.read().decode("utf-8", "replace")))
            # The baseline, once a few connections came and went.
            if not inst.sink.settle(30 * self.args.timeout_scale, quiet=1.0):
                raise B.RunFailed("connections of the idle client's first round still open")
            base = tree_pss_kib(inst.root)
            p.stdin.write(b"go\n")
            p.stdin.flush()
            line = p.stdout.readline().strip()
            if line != b"ready":
                raise B.RunFailed("the idle client: %s" % (
                    line.decode("utf-8", "replace")
                    or B.last_line(p.stderr.read().decode("utf-8", "replace"))))
            # Every connection through to the sink (its handshake done).
            if not inst.sink.wait(lambda o, e: len(o) - len(e) >= n, limit):
                raise B.RunFailed("only %d of %d idle connections reached the sink"
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
        ts = self.originators()
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
            raise SystemExit("bench: the originate scenario needs tests/bench/tcpcopy (its "
                             "clients and sink): make tests/bench/tcpcopy, or run it with "
                             "make bench")
        if not os.access(b.ktlsctl, os.X_OK):
            raise SystemExit("bench: the originate scenario's TLS server is ktlsctl: %s not "
                             "found (build it first)" % b.ktlsctl)
        b.setup()
        for t in ts:
            t.skip_reason = t.available()
            self.status[t.id] = ("skipped", t.skip_reason) if t.skip_reason else ("ok", None)
        self.header(ts)
        for r in range(0, a.rounds + 1):
            verify = r == 0
            B.say("round 0 (warm-up: checks every byte (CRC-32 at the sink) and the suite, "
                  "not timed) ..." if verify else "round %d of %d ..." % (r, a.rounds))
            order = ts[r % len(ts):] + ts[:r % len(ts)]
            for t in order:
                if self.status[t.id][0] != "ok":
                    continue
                t0 = time.monotonic()
                inst = None
                try:
                    inst = Instance(self, t, verify)
                    self.one_round(inst, verify)
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

    def one_round(self, inst, verify):
        a = self.args
        t = inst.t
        if verify:
            self.transfer(inst, 1, True)
            self.transfer(inst, a.proxy_conns, True)
            self.handshakes(inst, 2 * a.proxy_hs_concurrency, True)
            return
        res = self.results
        if t.kind != "limit":
            kib, base = self.idle(inst, a.proxy_idle)
            res.setdefault((t.id, "idle_kib"), []).append(kib)
            res.setdefault((t.id, "base_kib"), []).append(base)
        for n, key in ((1, "one"), (a.proxy_conns, "many")):
            mibs, u, s, nbytes = self.transfer(inst, n, False)
            res.setdefault((t.id, key + "_mibs"), []).append(mibs)
            if t.kind != "limit":
                res.setdefault((t.id, key + "_cpu"), []).append((u + s) / (nbytes / GIB))
        hs, cpu, resumed = self.handshakes(inst, a.proxy_handshakes, False)
        res.setdefault((t.id, "hs"), []).append(hs)
        if t.kind != "limit":
            res.setdefault((t.id, "hs_cpu_ms"), []).append(cpu * 1000 / a.proxy_handshakes)
            res.setdefault((t.id, "resumed_pct"), []).append(100.0 * resumed / a.proxy_handshakes)

    # -- output

    FIGS = (("one_mibs", "1 conn MiB/s", "%.1f", True),
            ("many_mibs", "%d conns MiB/s", "%.1f", True),
            ("one_cpu", "CPU s/GiB 1", "%.2f", False),
            ("many_cpu", "CPU s/GiB %d", "%.2f", False),
            ("hs", "conns/s", "%.0f", True),
            ("hs_cpu_ms", "CPU ms/conn", "%.2f", False),
            ("resumed_pct", "resumed %", "%.0f", None),
            ("idle_kib", "KiB/conn", "%.1f", False))

    def med(self, tid, fig):
        v = self.results.get((tid, fig))
        return statistics.median(v) if v else None

    def spread(self, tid):
        """The largest (fastest - slowest) / median among the rate figures
        over the rounds, in %: a large one means a noisy machine."""
        out = None
        for key in ("one_mibs", "many_mibs", "hs"):
            v = self.results.get((tid, key)) or []
            if len(v) > 1 and statistics.median(v) > 0:
                sp = (max(v) - min(v)) / statistics.median(v) * 100
                out = sp if out is None else max(out, sp)
        return out

    def fig_title(self, title):
        return title % self.args.proxy_conns if "%d" in title else title

    def header(self, ts):
        a, b = self.args, self.b
        B.say("ktlsctl bench, originate scenario: TLS %s %s, %s plain TCP client through the "
              "originator to a TLS server (1 connection, then %d at once), %d new connections, "
              "%d idle connections; %d timed round%s after a warm-up round; figures are medians"
              % (a.tls, B.SUITES[a.suite]["ossl13"] if a.tls == "1.3"
                 else B.SUITES[a.suite]["ossl12"], B.human_size(a.size), a.proxy_conns,
                 a.proxy_handshakes, a.proxy_idle, a.rounds, "" if a.rounds == 1 else "s"))
        load = os.getloadavg()[0]
        B.say("host: %s, %d CPUs, load %.2f; kTLS: %s"
              % (B.platform.release(), os.cpu_count() or 1, load,
                 "available" if b.ktls[0] else "unavailable (%s)" % b.ktls[1]))
        if load > (os.cpu_count() or 1) * 0.5:
            B.say("note: the machine is busy (load %.2f): figures are noisy" % load)
        B.say("server: ktlsctl listen --forward --ktls off --workers auto to tcpcopy sink (the "
              "same for every originator); clients: tcpcopy connect (transfers, sendfile), "
              "originate.py (new and idle connections, plain TCP)")
        for t in ts:
            if t.skip_reason:
                B.say("skipped: %s: %s" % (t.title, t.skip_reason))
        B.say()

    def report(self, ts):
        B.say()
        B.say("== originate: plain TCP in, TLS out to one server")
        if self.args.ratios_only:
            # bench-vm: the CPU is emulated.  The table stays for the
            # resumed share and the failures; its other figures mean nothing.
            B.say("  (emulated CPU: compare the ratios only, not the figures)")
        cols = [self.fig_title(f[1]) for f in self.FIGS]
        B.say("  %-28s" % "contender" + "".join(" %13s" % c for c in cols) + "  spread")
        for t in ts:
            st, why = self.status[t.id]
            if st != "ok":
                B.say("  %-28s %s: %s" % (t.title, st.upper(), why))
                continue
            cells = []
            for key, _, fmt, _ in self.FIGS:
                v = self.med(t.id, key)
                cells.append(fmt % v if v is not None else "-")
            sp = self.spread(t.id)
            B.say("  %-28s" % t.title + "".join(" %13s" % c for c in cells)
                  + ("  %5.0f%%" % sp if sp is not None else ""))
        refs = [t for t in ts if isinstance(t, KtlsctlAccept) and self.status[t.id][0] == "ok"
                and self.med(t.id, "one_mibs")]
        for ref in refs:
            B.say("  ratios, %s / contender (throughput, conns/s: >1 ktlsctl faster; "
                  "CPU, KiB: <1 ktlsctl cheaper)" % ref.title)
            for t in ts:
                if t is ref or self.status[t.id][0] != "ok":
                    continue
                cells = []
                for key, _, _, better in self.FIGS:
                    mine, theirs = self.med(ref.id, key), self.med(t.id, key)
                    # A zero (CPU below the clock tick at small sizes) has
                    # no ratio; nor has the share of resumed handshakes.
                    ok = (better is not None and mine is not None and theirs is not None
                          and mine > 0 and theirs > 0)
                    cells.append(B.ratio(mine / theirs) if ok else "n/a")
                B.say("  %-28s" % t.title + "".join(" %13s" % c for c in cells))
        B.say()
        B.say("how each originator runs (same CA, suite and TLS server); resumes by itself:")
        for t in ts:
            if not t.skip_reason:
                B.say("  %-28s %s; resumes: %s" % (t.title, t.how, t.resumes))
        for t in ts:
            if self.status[t.id][0] == "failed":
                B.say("FAILED: %s: %s" % (t.title, self.status[t.id][1]))

    def write_json(self, ts):
        a = self.args
        doc = {"format": 1, "tool": "ktlsctl bench", "scenario": "originate",
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config": {"size_bytes": a.size, "rounds": a.rounds, "tls": a.tls,
                          "suite": a.suite, "conns": a.proxy_conns,
                          "handshakes": a.proxy_handshakes,
                          "hs_concurrency": a.proxy_hs_concurrency, "idle": a.proxy_idle,
                          "server": "ktlsctl listen --forward --ktls off --workers auto"},
               "host": {"kernel": B.platform.release(), "cpus": os.cpu_count(),
                        "loadavg": list(os.getloadavg()), "ktls": self.b.ktls[0]},
               "results": []}
        keys = [k for k, _, _, _ in self.FIGS] + ["base_kib"]
        for t in ts:
            st, why = self.status[t.id]
            doc["results"].append({
                "contender": t.id, "title": t.title, "how": t.how, "resumes": t.resumes,
                "status": st, "reason": why,
                "median": {k: self.med(t.id, k) for k in keys},
                "spread_pct": self.spread(t.id),
                "rounds": {k: self.results.get((t.id, k), []) for k in keys}})
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        B.say("results written to %s" % a.json)


def main(args, bench_module):
    global B
    B = bench_module
    if args.list:
        og = Originate(args)
        for t in og.originators():
            B.say("%-20s %s" % (t.id, t.title))
        return 0
    return Originate(args).run()


# ----------------------------------- the new- and idle-connection client

def client_main(argv):
    """handshakes PORT N CONC | idle PORT N: plain TCP to the originator.
    handshakes: each connection sends one byte, ends its sending and waits
    for the originator's end (which comes back only once the byte went
    through the TLS server to the sink and the sink closed)."""
    what, port, n = argv[0], int(argv[1]), int(argv[2])
    conc = int(argv[3]) if what == "handshakes" else 4
    lock = threading.Lock()
    state = {"next": 0, "failed": 0, "errors": []}
    held = []

    def one(keep):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        if keep:
            return s
        try:
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            extra = s.recv(16)
            if extra:
                raise OSError("received %d unexpected bytes" % len(extra))
        finally:
            s.close()
        return None

    def worker(count, keep):
        while True:
            with lock:
                if state["next"] >= count:
                    return
                state["next"] += 1
            try:
                s = one(keep)
                if s is not None:
                    with lock:
                        held.append(s)
            except OSError as e:
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
        print(json.dumps({"wall_s": time.monotonic() - t0, "failed": state["failed"],
                          "errors": state["errors"]}))
        return 0
    # idle: a few connections that come and go (the originator's one-time
    # set-up is then in the baseline), then N held until stdin closes.
    run(8, False)
    sys.stdout.write("primed\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 0
    run(n, True)
    if state["failed"]:
        sys.stdout.write("%d of %d connections failed: %s\n"
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
