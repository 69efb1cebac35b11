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
import shutil
import socket
import ssl
import subprocess
import sys
import time

import scenario
from scenario import (Clients, Contender, HAProxyTool, KtlsctlTool, NginxTool, Scenario,
                      Sink, StunnelTool, tree_cpu)

B = None            # the bench module (bench.py runs as __main__): set by main()
tls_stat = None     # ktlsctl_test.channel.tls_stat: set by main() (bench.py's sys.path)
MIB = 1 << 20
GIB = 1 << 30


# ------------------------------------------------------------ terminators

class Terminator(Contender):
    openssl_ktls = False    # asks OpenSSL for kTLS: checked in /proc/net/tls_stat

    def command(self, port, bport, d):
        """(argv, env) of the terminator on 127.0.0.1:port in front of
        127.0.0.1:bport; d: a directory for its configuration."""
        raise NotImplementedError


class KtlsctlForward(KtlsctlTool, Terminator):
    def __init__(self, px, channel, workers=False):
        super().__init__(px, channel, workers)
        self.title = ("ktlsctl --workers auto, " if workers else "ktlsctl --forward, ") + (
            "kernel" if channel == "kernel" else "user space")
        self.how = ("ktlsctl listen --forward --ktls %s: %s%s"
                    % ("require" if channel == "kernel" else "off",
                       "--workers auto, a process per CPU, each one epoll loop on the shared "
                       "listener" if workers else "one epoll loop",
                       ", splice socket-pipe-socket" if channel == "kernel" else ""))

    def command(self, port, bport, d):
        return ([self.b.ktlsctl, "listen", "127.0.0.1:%d" % port, "--cert", self.b.cert,
                 "--key", self.b.key, "--forward", "127.0.0.1:%d" % bport] + self.tls_argv(),
                None)


class Stunnel(StunnelTool, Terminator):
    id = "stunnel"
    title = "stunnel4"
    how = "stunnel4, foreground, one [service] with accept/connect (its threads)"

    def command(self, port, bport, d):
        conf = os.path.join(d, "stunnel.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\ndebug = 3\n"
                    "[bench]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                    "cert = %s\nkey = %s\n" % (port, bport, self.b.cert, self.b.key)
                    + self.stunnel_tls())
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


class HAProxy(HAProxyTool, Terminator):
    id = "haproxy"
    title = "haproxy"
    how = "haproxy -db, mode tcp, bind ... ssl crt (its default threads: one per CPU)"

    def command(self, port, bport, d):
        pem = os.path.join(d, "haproxy.pem")
        with open(pem, "w") as f:
            for p in (self.b.cert, self.b.key):
                f.write(B.read_text(p))
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(self.haproxy_head(self.maxconn(), "bind")
                    + "frontend fe\n  bind 127.0.0.1:%d ssl crt %s\n  default_backend be\n"
                    "backend be\n  server s1 127.0.0.1:%d\n" % (port, pem, bport))
        return ["haproxy", "-db", "-f", conf], None


class Nginx(NginxTool, Terminator):
    id = "nginx"
    title = "nginx stream"
    how = ("nginx stream { server { listen ... ssl; proxy_pass backend; } }, "
           "worker_processes auto (one per CPU)")

    def command(self, port, bport, d):
        tls = self.nginx_tls("")
        if self.openssl_ktls:
            tls += "    ssl_conf_command Options KTLS;\n"
        return self.nginx_run(d, "stream {\n  server {\n    listen 127.0.0.1:%d ssl;\n"
                              "    ssl_certificate %s;\n    ssl_certificate_key %s;\n    %s"
                              "    proxy_pass 127.0.0.1:%d;\n    proxy_timeout 1h;\n  }\n}\n"
                              % (port, self.b.cert, self.b.key, tls, bport)), None


class OpensslKtls:
    """A terminator asking OpenSSL for kTLS: it runs only where the kernel
    has TLS, and its rows count only if sockets got it (check_ktls)."""
    openssl_ktls = True

    def available(self):
        if not self.b.ktls[0]:
            return "kernel TLS unavailable here (%s); `make bench-vm` runs it" % self.b.ktls[1]
        return super().available()


class NginxKtls(OpensslKtls, Nginx):
    id = "nginx-ktls"
    title = "nginx stream, OpenSSL kTLS"
    how = Nginx.how + ", ssl_conf_command Options KTLS"


class HAProxyKtls(OpensslKtls, HAProxy):
    id = "haproxy-ktls"
    title = "haproxy, OpenSSL kTLS"
    # haproxy 2.6 has no kTLS keyword of its own (its "ktls" came in 3.3).
    how = HAProxy.how + ", OPENSSL_CONF with Options = KTLS in system_default"

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
        self.sink = Sink(px.b, self.dir, crc, "the backend", control=True)
        self.proc = None
        self.port = self.sink.port
        self.root = self.sink.proc.pid
        if t.kind != "limit":
            try:
                self.proc, self.port = scenario.start_listening(
                    px.b, t.title, t.title, lambda port: t.command(port, self.sink.port, self.dir),
                    os.path.join(self.dir, "%s.err" % t.id))
                self.root = self.proc.pid
            except B.RunFailed:
                self.stop()
                raise

    def cpu(self):
        return tree_cpu(self.root)

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
        # And its processes (a socat child may still be exiting).
        scenario.wait_tree_still(self.root, limit)
        self.sink.mark()

    def stop(self):
        if self.proc is not None:
            self.proc.stop(5.0)
        self.sink.stop()
        if not self.px.b.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Proxy(Scenario):
    NAME = "proxy"
    SINK_NAME = "backend"
    SHORT_UPLOAD = "a backend connection received %d bytes, expected %d%s"

    def __init__(self, args):
        super().__init__(args)
        self.ktls_got = {}          # id -> ["TX only" | "TX+RX" per round] (OpenSSL kTLS rows)
        self.ktls_rises = {}        # id -> ["+TX/+RX" per round]

    def all_contenders(self):
        return [KtlsctlForward(self, "kernel"), KtlsctlForward(self, "user"),
                KtlsctlForward(self, "kernel", workers=True),
                KtlsctlForward(self, "user", workers=True), Stunnel(self),
                SocatFork(self), HAProxy(self), Nginx(self), HAProxyKtls(self),
                NginxKtls(self), Limit(self)]

    # -- the clients

    def client_argv(self, t, port, down=False):
        """The client of a transfer: uploads send their stdin and close
        (--eof close); downloads (down) send nothing, read the terminator
        until it closes (TLS: its close_notify) and write what they got to
        stdout: they never close first (--eof wait), so the end is the
        terminator's."""
        b, a = self.b, self.args
        if t.kind == "limit":
            return [b.tcpcopy, "connect", str(port), "receive" if down else "one-way"]
        return [b.ktlsctl, "connect", "127.0.0.1:%d" % port, "--cafile", b.ca, "--ktls", "off",
                "--tls" + a.tls, "--cipher", B.SUITES[a.suite]["ktlsctl"],
                "--eof", "wait" if down else "close"]

    def transfer(self, inst, nconn, verify):
        """nconn connections at once, --size bytes in all: (MiB/s, CPU
        user s, CPU sys s, bytes)."""
        return self.upload(inst, nconn, verify, self.client_argv(inst.t, inst.port),
                           "tcpcopy" if inst.t.kind == "limit" else "ktlsctl connect")

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
                self.client_argv(inst.t, inst.port, down=True)
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
        inst.settle()
        plain = ["plain"] if inst.t.kind == "limit" else ["tls"]
        rep, cpu = self.new_conns(inst, self.py_client(*plain, "handshakes", inst.port, n,
                                                       self.args.proxy_hs_concurrency),
                                  n, "handshake", "handshakes")
        if inst.t.kind != "limit":
            err = self.b.suite_mismatch(inst.t.title, "%s %s" % (rep["version"], rep["cipher"]))
            if err:
                raise B.RunFailed(err)
        return n / rep["wall_s"], cpu, rep

    def idle(self, inst, n):
        """KiB of the terminator's memory per idle session, and its baseline."""
        plain = ["plain"] if inst.t.kind == "limit" else ["tls"]
        return self.measure_idle(inst, self.py_client(*plain, "idle", inst.port, n), n,
                                 "sessions", "the backend", False)

    # -- rounds

    def check_needs(self):
        if not self.b.tcpcopy:
            raise SystemExit("bench: the proxy scenario needs tests/bench/tcpcopy (its backend): "
                             "make tests/bench/tcpcopy, or run it with make bench")

    def prepare(self, t):
        t.base_how = t.how
        if t.openssl_ktls:
            t.how += "; kTLS: not checked (no round completed)"

    def instance(self, t, verify):
        return Instance(self, t, verify)

    def before_round(self, t):
        return tls_stat()

    def after_round(self, t, r, before):
        if t.openssl_ktls:
            self.check_ktls(t, r, before, tls_stat())


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

    def header(self, ts):
        a = self.args
        dirs = {"up": "client to backend", "down": "backend to client"}
        super().header(
            ts, "ktlsctl bench, proxy scenario: TLS %s %s, %s %s (1 connection, "
            "then %d at once), %d new connections, %d idle sessions; %d timed round%s after "
            "a warm-up round; figures are medians"
            % (a.tls, B.SUITES[a.suite]["ossl13"] if a.tls == "1.3"
               else B.SUITES[a.suite]["ossl12"], B.human_size(a.size),
               " and ".join(dirs[d] for d in a.proxy_dirs), a.proxy_conns,
               a.proxy_handshakes, a.proxy_idle, a.rounds, "" if a.rounds == 1 else "s"),
            "backend: tcpcopy sink (plain TCP, one epoll loop, data dropped with MSG_TRUNC%s); "
            "client: ktlsctl connect --ktls off (transfers%s), proxy.py (handshakes, idle)"
            % (", or sent with sendfile for downloads" if "down" in a.proxy_dirs else "",
               ", downloads counted by tcpcopy drain" if "down" in a.proxy_dirs else ""))

    def table(self, ts, title, figs, spread_keys):
        super().table(ts, title, figs, spread_keys, KtlsctlForward, [f[0] for f in figs],
                      "handshakes")

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
        self.say_failed(ts)

    def write_json(self, ts):
        self.json_doc(ts, {"dirs": self.args.proxy_dirs},
                      [k for k, _, _, _ in self.FIGS + self.DOWN_FIGS], lambda t: {
                          "down_spread_pct": self.spread(t.id, self.DOWN_SPREAD_KEYS),
                          # What OpenSSL's kTLS did for the row, the weakest round's.
                          "ktls": (("TX only" if "TX only" in self.ktls_got[t.id] else "TX+RX")
                                   if self.ktls_got.get(t.id) else None)})


def main(args, bench_module):
    global B, tls_stat
    B = bench_module
    scenario.use(B)
    from ktlsctl_test.channel import tls_stat
    if args.list:
        return Proxy(args).list()
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
    seen = {"version": None, "cipher": None}

    def one(keep):
        s = _connect(port, ctx)
        if ctx is not None and seen["version"] is None:
            seen["version"], seen["cipher"] = s.version(), s.cipher()[0]
        if keep:
            return s
        s.close()
        return None

    clients = Clients(conc, one)
    if what == "handshakes":
        wall = clients.timed(n)
        print(json.dumps({"wall_s": wall, "failed": clients.failed, "errors": clients.errors,
                          "version": seen["version"], "cipher": seen["cipher"]}))
        return 0
    # idle: a few sessions that come and go (the terminator's one-time set-up
    # is then in the baseline), then N held until stdin closes.
    return clients.idle(n, "sessions")


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
