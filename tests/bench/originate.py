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
import shutil
import socket
import sys
import time

import scenario
from scenario import (Clients, Contender, HAProxyTool, KtlsctlTool, NginxTool, Scenario,
                      Sink, StunnelTool, tree_cpu)

B = None            # the bench module (bench.py runs as __main__): set by main()
GIB = 1 << 30
SESSION = re.compile(r"^ktlsctl: session \d+ .*\bversion=(\S+) cipher=(\S+)")


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
        self.proc, self.port = scenario.start_listening(
            b, "TLS server", "the TLS server (ktlsctl listen)",
            lambda port: ([b.ktlsctl, "listen", "127.0.0.1:%d" % port, "--cert", b.cert,
                           "--key", b.key, "--forward", "127.0.0.1:%d" % sink_port,
                           "--ktls", "off", "--tls" + a.tls,
                           "--cipher", B.SUITES[a.suite]["ktlsctl"],
                           "--workers", "auto", "--max-conns", str(maxconn * n)], None),
            self.err)

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

class Originator(Contender):
    resumes = ""

    def command(self, port, sport, d):
        """(argv, env) of the originator on 127.0.0.1:port, each client's
        TLS connection to 127.0.0.1:sport (its name: localhost, checked
        against the run's CA); d: a directory for its configuration."""
        raise NotImplementedError


class KtlsctlAccept(KtlsctlTool, Originator):
    resumes = "yes: offers the server's latest ticket"

    def __init__(self, og, channel, workers=False):
        super().__init__(og, channel, workers)
        self.title = ("ktlsctl --workers auto, " if workers else "ktlsctl --accept, ") + (
            "kernel" if channel == "kernel" else "user space")
        self.how = ("ktlsctl connect SERVER --accept --ktls %s: %s%s"
                    % ("require" if channel == "kernel" else "off",
                       "--workers auto, a process per CPU on the shared listener"
                       if workers else "one epoll loop",
                       ", splice socket-pipe-socket" if channel == "kernel" else ""))

    def command(self, port, sport, d):
        return ([self.b.ktlsctl, "connect", "localhost:%d" % sport, "--accept",
                 "127.0.0.1:%d" % port, "--cafile", self.b.ca] + self.tls_argv(),
                None)


class Stunnel(StunnelTool, Originator):
    id = "stunnel"
    title = "stunnel4 client"
    how = ("stunnel4, foreground, one [service] with client = yes, accept/connect, "
           "verifyChain, checkHost (a thread per connection)")
    resumes = "yes: its client caches the session"

    def command(self, port, sport, d):
        conf = os.path.join(d, "stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\n"
                    "[bench]\nclient = yes\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "CAfile = %s\nverifyChain = yes\ncheckHost = localhost\nsni = localhost\n"
                    % (port, sport, self.b.ca) + self.stunnel_tls())
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


class HAProxy(HAProxyTool, Originator):
    id = "haproxy"
    title = "haproxy"
    how = ("haproxy -db, mode tcp, server s1 ... ssl verify required ca-file (its default "
           "threads: one per CPU)")
    resumes = "yes: reuses the last session per server (default, no-ssl-reuse turns it off)"

    def command(self, port, sport, d):
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(self.haproxy_head(2 * self.maxconn(), "server")
                    + "frontend fe\n  bind 127.0.0.1:%d\n  default_backend be\n"
                    "backend be\n  server s1 127.0.0.1:%d ssl verify required ca-file %s "
                    "verifyhost localhost sni str(localhost)\n" % (port, sport, self.b.ca))
        return ["haproxy", "-db", "-f", conf], None


class Nginx(NginxTool, Originator):
    id = "nginx"
    title = "nginx stream"
    how = ("nginx stream { server { listen ...; proxy_pass server; proxy_ssl on; "
           "proxy_ssl_verify on; proxy_half_close on; } }, worker_processes auto (one per CPU)")
    resumes = "yes: proxy_ssl_session_reuse is on by default (per worker)"

    def command(self, port, sport, d):
        return self.nginx_run(d, "stream {\n  server {\n    listen 127.0.0.1:%d;\n"
                              "    proxy_pass 127.0.0.1:%d;\n    proxy_ssl on;\n    %s"
                              "    proxy_ssl_verify on;\n    proxy_ssl_trusted_certificate %s;\n"
                              "    proxy_ssl_name localhost;\n    proxy_ssl_server_name on;\n"
                              "    proxy_half_close on;\n    proxy_timeout 1h;\n  }\n}\n"
                              % (port, sport, self.nginx_tls("proxy_"), self.b.ca)), None


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
            self.sink = Sink(b, self.dir, crc, "the sink")
            self.server = Server(b, self.dir, self.sink.port, og.server_maxconn())
            self.port, self.root = self.server.port, None
            if t.kind != "limit":
                self.proc, self.port = scenario.start_listening(
                    b, t.title, t.title, lambda port: t.command(port, self.server.port, self.dir),
                    os.path.join(self.dir, "%s.err" % t.id))
                self.root = self.proc.pid
        except B.RunFailed:
            self.stop()
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
        if not self.sink.wait_quiet(limit, forget=True):
            raise B.RunFailed("%d sink connection(s) of the previous test still open after %.0fs"
                              % (self.sink.open_now(), limit))
        if self.root is not None:
            scenario.wait_tree_still(self.root, limit)
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


class Originate(Scenario):
    NAME = "originate"
    SINK_NAME = "sink"
    SHORT_UPLOAD = "a connection delivered %d bytes to the sink, expected %d%s"
    TIMEOUT_BYTES = True

    def all_contenders(self):
        return [KtlsctlAccept(self, "kernel"), KtlsctlAccept(self, "user"),
                KtlsctlAccept(self, "kernel", workers=True),
                KtlsctlAccept(self, "user", workers=True), Stunnel(self),
                SocatFork(self), HAProxy(self), Nginx(self), Limit(self)]


    def server_maxconn(self):
        a = self.args
        return a.proxy_idle + max(a.proxy_hs_concurrency, a.proxy_conns) + 64

    # -- the clients

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
        return self.upload(inst, nconn, verify, self.client_argv(inst),
                           "ktlsctl connect" if inst.t.kind == "limit" else "tcpcopy connect")

    def after_upload(self, inst, nconn, verify):
        self.check_sessions(inst, nconn, verify)

    def py_client(self, *argv):
        return [self.b.python, os.path.abspath(__file__)] + [str(v) for v in argv]

    def handshakes(self, inst, n, verify):
        """n new connections, each a byte through to the sink and the end
        back: (connections/s, CPU s of the originator, resumed)."""
        a = self.args
        inst.settle()
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
        rep, cpu = self.new_conns(inst, argv, n, "connection", "connections")
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
        return n / rep["wall_s"], cpu, resumed

    def idle(self, inst, n):
        """KiB of the originator's memory per idle connection, and its
        baseline."""
        return self.measure_idle(inst, self.py_client("idle", inst.port, n), n, "connections",
                                 "the sink", True)

    # -- rounds

    def check_needs(self):
        b = self.b
        if not b.tcpcopy:
            raise SystemExit("bench: the originate scenario needs tests/bench/tcpcopy (its "
                             "clients and sink): make tests/bench/tcpcopy, or run it with "
                             "make bench")
        if not os.access(b.ktlsctl, os.X_OK):
            raise SystemExit("bench: the originate scenario's TLS server is ktlsctl: %s not "
                             "found (build it first)" % b.ktlsctl)

    def instance(self, t, verify):
        return Instance(self, t, verify)

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

    def header(self, ts):
        a = self.args
        super().header(
            ts, "ktlsctl bench, originate scenario: TLS %s %s, %s plain TCP client through the "
            "originator to a TLS server (1 connection, then %d at once), %d new connections, "
            "%d idle connections; %d timed round%s after a warm-up round; figures are medians"
            % (a.tls, B.SUITES[a.suite]["ossl13"] if a.tls == "1.3"
               else B.SUITES[a.suite]["ossl12"], B.human_size(a.size), a.proxy_conns,
               a.proxy_handshakes, a.proxy_idle, a.rounds, "" if a.rounds == 1 else "s"),
            "server: ktlsctl listen --forward --ktls off --workers auto to tcpcopy sink (the "
            "same for every originator); clients: tcpcopy connect (transfers, sendfile), "
            "originate.py (new and idle connections, plain TCP)")

    def report(self, ts):
        self.table(ts, "== originate: plain TCP in, TLS out to one server", self.FIGS,
                   self.SPREAD_KEYS, KtlsctlAccept, ("one_mibs",), "conns/s",
                   # bench-vm: the CPU is emulated.  The table stays for the
                   # resumed share and the failures; its other figures mean nothing.
                   note="  (emulated CPU: compare the ratios only, not the figures)"
                   if self.args.ratios_only else None, width=13)
        B.say()
        B.say("how each originator runs (same CA, suite and TLS server); resumes by itself:")
        for t in ts:
            if not t.skip_reason:
                B.say("  %-28s %s; resumes: %s" % (t.title, t.how, t.resumes))
        self.say_failed(ts)

    def write_json(self, ts):
        self.json_doc(ts, {"server": "ktlsctl listen --forward --ktls off --workers auto"},
                      [k for k, _, _, _ in self.FIGS] + ["base_kib"],
                      lambda t: {"resumes": t.resumes})


def main(args, bench_module):
    global B
    B = bench_module
    scenario.use(B)
    if args.list:
        return Originate(args).list()
    return Originate(args).run()


# ----------------------------------- the new- and idle-connection client

def client_main(argv):
    """handshakes PORT N CONC | idle PORT N: plain TCP to the originator.
    handshakes: each connection sends one byte, ends its sending and waits
    for the originator's end (which comes back only once the byte went
    through the TLS server to the sink and the sink closed)."""
    what, port, n = argv[0], int(argv[1]), int(argv[2])
    conc = int(argv[3]) if what == "handshakes" else 4

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

    clients = Clients(conc, one)
    if what == "handshakes":
        wall = clients.timed(n)
        print(json.dumps({"wall_s": wall, "failed": clients.failed,
                          "errors": clients.errors}))
        return 0
    # idle: a few connections that come and go (the originator's one-time
    # set-up is then in the baseline), then N held until stdin closes.
    return clients.idle(n, "connections")


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
