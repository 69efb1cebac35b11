#!/usr/bin/env python3
"""`ktlsctl stats --format openmetrics|prometheus`, `--output` and `--serve`:
kTLS metrics for Prometheus (core/diag/metrics.c, cli/stats_serve.c).

  * promtool (Debian's prometheus package) checks the classic format with
    sessions running, and its values are the ones `stats --json` gives at
    the same moment, sample by sample;
  * the OpenMetrics text is checked against the rules of OpenMetrics 1.0
    (family metadata before its samples, families contiguous, counter
    samples _total, info samples _info, UNIT a suffix of the name, # EOF);
  * a real Prometheus server, started here on loopback with a temporary
    config and storage, scrapes `stats --serve` (negotiating OpenMetrics)
    and its HTTP API returns a running session's records-under-key figure
    and a tls_stat figure equal to what `stats --json` says;
  * --output replaces its file atomically (a reader racing --watch never
    sees a part), mode 0644;
  * --serve against hostile clients: bad requests get their status codes,
    slow clients and 100 concurrent scrapes while a session keeps echoing.

Sessions run with XDG_RUNTIME_DIR set to a private directory per case, so
the metrics list only the sessions of that case."""

import json
import os
import re
import socket
import stat
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, scaled  # noqa: E402
from ktlsctl_test.channel import CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    Proc, check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, wait_listening)
from ktlsctl_test.data import hex_lines  # noqa: E402
from ktlsctl_test.peers import EOF_CLOSE, require_programs  # noqa: E402

require_programs("promtool", "prometheus", "certtool")

suite = Suite("test_metrics", case_timeout=120)
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE


def certs():
    return suite.certs


def new_xdg():
    d = tempfile.mkdtemp(prefix="km-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def run(xdg, *args, timeout=30):
    p = Proc([KTLSCTL] + [str(a) for a in args], name="ktlsctl " + " ".join(map(str, args)),
             stdin=None, extra_env={"XDG_RUNTIME_DIR": xdg})
    rc = p.wait(timeout)
    check_no_sanitizer(p)
    return p, rc


def run_ok(xdg, *args):
    p, rc = run(xdg, *args)
    if rc != 0:
        raise Fail("`%s`: exit status %s, expected 0\n%s" % (p.name, rc, p.describe()))
    return p.stdout.decode()


def start_sessions(xdg, version="--tls1.3"):
    """A `listen --echo` server session and a `connect` client session to
    it, with 64 KiB echoed, then idle; returns (server, client)."""
    env = {"XDG_RUNTIME_DIR": xdg}
    srv, port = ktlsctl_listen("--cert", certs().srv_ec[0], "--key", certs().srv_ec[1],
                               "--echo", version, *SESSION_ARGS, extra_env=env)
    cli = ktlsctl("connect", "localhost:%d" % port, "--cafile", certs().ca, *SESSION_ARGS,
                  stdin=True, extra_env=env)
    data = hex_lines(64 << 10)
    cli.send(data)
    if not cli.wait_out(len(data), scaled(30)):
        raise Fail("the echo did not come back\n%s\n%s" % (cli.describe(), srv.describe()))
    for p in (srv, cli):
        path = os.path.join(xdg, "ktlsctl", "%d.sock" % p.pid)
        deadline = time.monotonic() + scaled(15)
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not os.path.exists(path):
            raise Fail("no control socket %s\n%s" % (path, p.describe()))
    return srv, cli


def stop(*procs):
    for p in procs:
        if p.alive():
            p.kill()
        p.wait(10)


# --------------------------------------------------------- exposition text

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise Fail("bad label set at %r" % text[pos:])
        labels[m.group(1)] = (m.group(2).replace('\\"', '"').replace("\\n", "\n")
                              .replace("\\\\", "\\"))
        pos = m.end()
    return labels


def parse_exposition(text, openmetrics):
    """{family: {"type":, "help":, "unit":, "samples": [(name, labels, value)]}},
    checking the format's rules on the way (Fail on the first broken one)."""
    fams, order, current = {}, [], None
    lines = text.split("\n")
    if openmetrics:
        if lines[-2:] != ["# EOF", ""]:
            raise Fail("OpenMetrics text does not end with '# EOF\\n': %r" % text[-80:])
        lines = lines[:-2]
    elif lines[-1] != "":
        raise Fail("text does not end with a newline")
    else:
        lines = lines[:-1]
    for line in lines:
        if line.startswith("# "):
            kind, name, rest = (line[2:].split(" ", 2) + [""])[:3]
            if kind not in ("HELP", "TYPE", "UNIT"):
                raise Fail("unknown metadata line %r" % line)
            if name != current:
                if name in fams:
                    raise Fail("family %s is not contiguous" % name)
                fams[name] = {"samples": []}
                order.append(name)
                current = name
            fams[name][kind.lower()] = rest
            continue
        m = SAMPLE.match(line)
        if not m:
            raise Fail("not a sample line: %r" % line)
        sname, value = m.group(1), m.group(4)
        fam = fams.get(current)
        if fam is None or "type" not in fam:
            raise Fail("sample %r before any TYPE line" % line)
        suffix = {"counter": "_total", "info": "_info"}.get(fam["type"], "")
        if openmetrics and sname != current + suffix:
            raise Fail("sample %s in family %s (%s): expected the name %s%s"
                       % (sname, current, fam["type"], current, suffix))
        if not openmetrics and sname != current:
            raise Fail("sample %s under TYPE %s" % (sname, current))
        float(value)
        fam["samples"].append((sname, parse_labels(m.group(3) or ""), value))
    for name, fam in fams.items():
        if "help" not in fam or "type" not in fam:
            raise Fail("family %s lacks HELP or TYPE" % name)
        if openmetrics and "unit" in fam and not name.endswith("_" + fam["unit"]):
            raise Fail("UNIT %s is not the end of the name %s" % (fam["unit"], name))
    return fams


def sample(fams, family, **labels):
    for fam in fams.values():
        for name, lab, value in fam["samples"]:
            if name == family and all(lab.get(k) == v for k, v in labels.items()):
                return float(value)
    raise Fail("no sample %s%r in the metrics" % (family, labels))


def check_against_json(fams, doc):
    """Every session figure in the metrics equals the JSON's."""
    for s in doc["sessions"]:
        pid = str(s["pid"])
        for d in ("tx", "rx"):
            for fam, key in (("ktls_session_records_current_key", "records_key"),
                             ("ktls_session_key_record_limit", "limit"),
                             ("ktls_session_records_total", "records"),
                             ("ktls_session_bytes_total", "bytes"),
                             ("ktls_session_key_updates_total", "key_updates")):
                got = sample(fams, fam, pid=pid, direction=d, role=s["role"], peer=s["peer"],
                             version=s["version"], cipher=s["cipher"], channel=s["channel"])
                if got != s[d][key]:
                    raise Fail("%s{pid=%s,direction=%s} = %s, stats --json says %s=%s"
                               % (fam, pid, d, got, key, s[d][key]))
            ratio = sample(fams, "ktls_session_key_limit_used_ratio", pid=pid, direction=d)
            want = s[d]["records_key"] / s[d]["limit"]
            if abs(ratio - want) > 1e-12:
                raise Fail("limit ratio %s for pid %s %s, expected %s" % (ratio, pid, d, want))
        if sample(fams, "ktls_session_tickets_total", pid=pid) != s["tickets"]:
            raise Fail("tickets of %s differ from stats --json" % pid)
    if sample(fams, "ktls_sessions_running") != len(doc["sessions"]):
        raise Fail("ktls_sessions_running differs from the sessions in stats --json")
    present = doc["tls_stat"]["present"]
    if sample(fams, "ktls_tls_stat_present") != (1 if present else 0):
        raise Fail("ktls_tls_stat_present differs from tls_stat.present")
    avail = doc["kernel"]["available"]["state"]
    sample(fams, "ktls_kernel_info", available=avail)


# ------------------------------------------------------------------ formats

@suite.case("prometheus format: promtool check metrics passes, values equal stats --json (TLS 1.3)")
def _promtool13():
    promtool_case("--tls1.3")


@suite.case("prometheus format: promtool check metrics passes, values equal stats --json (TLS 1.2)")
def _promtool12():
    promtool_case("--tls1.2")


def promtool_case(version):
    xdg = new_xdg()
    srv, cli = start_sessions(xdg, version)
    try:
        text = run_ok(xdg, "stats", "--format", "prometheus")
        doc = json.loads(run_ok(xdg, "stats", "--json"))
        chk = Proc(["promtool", "check", "metrics"], name="promtool", stdin=text.encode())
        rc = chk.wait(60)
        if rc != 0 or chk.stdout.strip() or chk.stderr.strip():
            raise Fail("promtool check metrics: exit %s\n%s" % (rc, chk.describe()))
        fams = parse_exposition(text, openmetrics=False)
        check_against_json(fams, doc)
        if len(doc["sessions"]) != 2:
            raise Fail("expected the two sessions of this case, got %d" % len(doc["sessions"]))
    finally:
        stop(cli, srv)


@suite.case("openmetrics format: the OpenMetrics 1.0 rules hold, values equal stats --json")
def _openmetrics():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    try:
        text = run_ok(xdg, "stats", "--format", "openmetrics")
        doc = json.loads(run_ok(xdg, "stats", "--json"))
        fams = parse_exposition(text, openmetrics=True)
        check_against_json(fams, doc)
        for name, want in (("ktls_session_bytes", "counter"), ("ktls_kernel", "info"),
                           ("ktls_session_uptime_seconds", "gauge")):
            if fams[name]["type"] != want:
                raise Fail("%s has TYPE %s, expected %s" % (name, fams[name]["type"], want))
        if fams["ktls_session_bytes"].get("unit") != "bytes":
            raise Fail("ktls_session_bytes lacks UNIT bytes")
    finally:
        stop(cli, srv)


@suite.case("metric families are the ones the man page lists")
def _man_lists():
    xdg = new_xdg()
    fams = parse_exposition(run_ok(xdg, "stats", "--format", "openmetrics"), openmetrics=True)
    man = open(os.path.join(os.environ.get("TOP_SRCDIR", os.path.join(
        os.path.dirname(__file__), "..", "..")), "man", "ktlsctl.1")).read()
    listed = set(re.findall(r"^\.B (ktls_[a-z_]+)$", man, re.M))
    if listed != set(fams):
        raise Fail("man page lists %s; the metrics have %s"
                   % (sorted(listed - set(fams)), sorted(set(fams) - listed)))


# ------------------------------------------------------------------- output

@suite.case("--output FILE --watch: a racing reader never sees a partial file; mode 0644")
def _output_atomic():
    xdg = new_xdg()
    d = tempfile.mkdtemp(dir=suite.tmpdir())
    path = os.path.join(d, "ktls.prom")
    w = Proc([KTLSCTL, "stats", "--format", "openmetrics", "--output", path, "--watch", "0.05"],
             name="stats --watch --output", stdin=None, extra_env={"XDG_RUNTIME_DIR": xdg})
    try:
        deadline = time.monotonic() + scaled(20)
        reads, versions = 0, set()
        while time.monotonic() < deadline and (reads < 300 or len(versions) < 5):
            try:
                with open(path) as f:
                    text = f.read()
                st = os.stat(path)
            except FileNotFoundError:
                if not w.alive():
                    raise Fail("stats --watch --output exited\n%s" % w.describe())
                continue
            parse_exposition(text, openmetrics=True)
            if stat.S_IMODE(st.st_mode) != 0o644:
                raise Fail("%s has mode %o, expected 644" % (path, stat.S_IMODE(st.st_mode)))
            versions.add(st.st_ino)
            reads += 1
        if len(versions) < 5:
            raise Fail("the file was replaced %d times in 20 s, expected more" % len(versions))
        leftovers = [f for f in os.listdir(d) if f != "ktls.prom"]
        w.signal(2)
        if w.wait(20) != 0:
            raise Fail("stats --watch did not end with 0 on SIGINT\n%s" % w.describe())
        leftovers = [f for f in os.listdir(d) if f != "ktls.prom"]
        if leftovers:
            raise Fail("temporary files left next to the output: %s" % leftovers)
    finally:
        stop(w)


@suite.case("--output into a missing directory: exit 11, one line naming the file")
def _output_missing_dir():
    xdg = new_xdg()
    p, rc = run(xdg, "stats", "--format", "prometheus", "--output", "/nonexistent-km/x.prom")
    want = ("ktlsctl: cannot write /nonexistent-km/x.prom: cannot create a file in its "
            "directory: No such file or directory\n")
    if rc != 11 or p.stderr != want:
        raise Fail("expected exit 11 and %r\n%s" % (want, p.describe()))


@suite.case("usage errors: --serve with --output or --watch, with --format json; a bad --format")
def _usage():
    xdg = new_xdg()
    for args, want in (
            (["--serve", ":0", "--output", "x"],
             "ktlsctl: --serve answers each scrape afresh: give it without --output and --watch "
             "(see 'ktlsctl stats --help')\n"),
            (["--serve", ":0", "--format", "json"],
             "ktlsctl: --serve serves metrics: --format openmetrics or prometheus, or neither "
             "(then as the scraper asks) (see 'ktlsctl stats --help')\n"),
            (["--format", "yaml"],
             "ktlsctl: invalid --format 'yaml': use text, json, openmetrics or prometheus\n")):
        p, rc = run(xdg, "stats", *args)
        if rc != 2 or p.stderr != want:
            raise Fail("stats %s: expected exit 2 and %r\n%s" % (" ".join(args), want, p.describe()))


# -------------------------------------------------------------------- serve

def start_serve(xdg, *extra):
    p = Proc([KTLSCTL, "stats", "--serve", ":0"] + list(extra), name="stats --serve",
             stdin=None, extra_env={"XDG_RUNTIME_DIR": xdg})
    m = p.wait_err(r"ktlsctl: serving metrics on http://127\.0\.0\.1:(\d+)/metrics", scaled(30))
    if not m:
        p.kill()
        raise Fail("stats --serve :0 did not say it serves on 127.0.0.1\n%s" % p.describe())
    return p, int(m.group(1))


def http(port, raw, timeout=20):
    """Send raw bytes, return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as s:
        s.sendall(raw)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


@suite.case("--serve: GET /metrics, Accept negotiation, HEAD, 404, 405, 400, 505, 431, 414")
def _serve_http():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg)
    try:
        r = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = r.split(b"\r\n\r\n", 1)
        if status_of(r) != 200 or b"Content-Type: text/plain; version=0.0.4" not in head:
            raise Fail("plain GET: %r" % head)
        parse_exposition(body.decode(), openmetrics=False)
        if b"Content-Length: %d\r\n" % len(body) not in head:
            raise Fail("Content-Length is not the body's length: %r" % head)
        r = http(port, b"GET /metrics?x=1 HTTP/1.0\r\nAccept: application/openmetrics-text;"
                       b" version=1.0.0,text/plain;q=0.5\r\n\r\n")
        head, body = r.split(b"\r\n\r\n", 1)
        if b"Content-Type: application/openmetrics-text; version=1.0.0" not in head:
            raise Fail("OpenMetrics not negotiated: %r" % head)
        parse_exposition(body.decode(), openmetrics=True)
        r = http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        if status_of(r) != 200 or not r.endswith(b"\r\n\r\n"):
            raise Fail("HEAD: %r" % r[:300])
        for raw, want in ((b"GET /nope HTTP/1.1\r\n\r\n", 404),
                          (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
                          (b"GARBAGE\r\n\r\n", 400),
                          (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64 + b"\r\n\r\n", 400),
                          (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
                          (b"GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
                          (b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
                          (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 414)):
            r = http(port, raw)
            if status_of(r) != want:
                raise Fail("%r...: expected %d, got %r" % (raw[:40], want, r[:200]))
        if not serve.alive():
            raise Fail("stats --serve died\n%s" % serve.describe())
        serve.signal(15)
        if serve.wait(20) != 0:
            raise Fail("stats --serve did not exit 0 on SIGTERM\n%s" % serve.describe())
        check_no_sanitizer(serve)
    finally:
        stop(serve, cli, srv)


@suite.case("--serve: 40 slow clients and 100 concurrent scrapes; the session echoes throughout")
def _serve_hostile():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg)
    slow = []
    try:
        # slowloris: a byte of the request now and then, never the end
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
            s.sendall(b"GET /metr")
            slow.append(s)
        results, errors = [], []

        def scrape():
            try:
                results.append(status_of(http(port, b"GET /metrics HTTP/1.1\r\n\r\n", 60)))
            except OSError as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=scrape) for _ in range(100)]
        for t in threads:
            t.start()
        # meanwhile the session keeps moving data
        rounds = 0
        while any(t.is_alive() for t in threads):
            data = hex_lines(16 << 10)
            before = len(cli.stdout)
            cli.send(data)
            if not cli.wait_out(before + len(data), scaled(30)):
                raise Fail("the session stopped echoing during the scrapes\n%s" % cli.describe())
            rounds += 1
            for s in slow[:5]:
                s.sendall(b"i")
        for t in threads:
            t.join(scaled(120))
        if errors or results.count(200) != 100:
            raise Fail("100 scrapes: %d answered 200, statuses %s, errors %s"
                       % (results.count(200), sorted(set(results)), errors[:3]))
        if rounds < 1:
            raise Fail("no echo round trip completed during the scrapes")
        # the slow ones are cut at their deadline (10 s), not kept forever
        for s in slow:
            s.settimeout(scaled(30))
            try:
                r = s.recv(100)
            except socket.timeout:
                raise Fail("a slow client was still held open after 30 s")
            except ConnectionResetError:
                r = b""
            if r:
                raise Fail("a slow client got %r, expected the connection closed" % r)
    finally:
        for s in slow:
            s.close()
        stop(serve, cli, srv)


@suite.case("a real Prometheus server scrapes --serve: records under key and tls_stat as in stats --json")
def _prometheus_scrape():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg)
    d = tempfile.mkdtemp(dir=suite.tmpdir())
    prom_port = free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: ktlsctl\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % port)
    prom = Proc(["prometheus", "--config.file", os.path.join(d, "prometheus.yml"),
                 "--storage.tsdb.path", os.path.join(d, "data"),
                 "--web.listen-address", "127.0.0.1:%d" % prom_port],
                name="prometheus", stdin=None, stdout_cap=1 << 16, stderr_cap=1 << 16)
    try:
        if not wait_listening(prom_port, prom, timeout=scaled(60)):
            raise Fail("prometheus did not listen\n%s" % prom.describe())
        doc = json.loads(run_ok(xdg, "stats", "--json"))
        s = [x for x in doc["sessions"] if x["pid"] == cli.pid][0]

        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (prom_port, urllib.parse.quote(q))
            with urllib.request.urlopen(url, timeout=scaled(20)) as r:
                res = json.load(r)
            return res["data"]["result"] if res.get("status") == "success" else []

        q = 'ktls_session_records_current_key{pid="%d",direction="rx"}' % cli.pid
        deadline = time.monotonic() + scaled(60)
        found = []
        while time.monotonic() < deadline and not found:
            found = query(q)
            if not found:
                time.sleep(0.5)
        if not found:
            up = query('up{job="ktlsctl"}')
            raise Fail("Prometheus has no %s after 60 s (up: %s)\n%s" % (q, up, prom.describe()))
        if float(found[0]["value"][1]) != s["rx"]["records_key"]:
            raise Fail("Prometheus says %s = %s, stats --json says %s"
                       % (q, found[0]["value"][1], s["rx"]["records_key"]))
        present = query("ktls_tls_stat_present")
        if not present or float(present[0]["value"][1]) != (1 if doc["tls_stat"]["present"] else 0):
            raise Fail("ktls_tls_stat_present in Prometheus: %s; stats --json: %s"
                       % (present, doc["tls_stat"]["present"]))
        counters = doc["tls_stat"]["counters"]
        if doc["tls_stat"]["present"] and "TlsTxSw" in counters:
            # a counter only grows: what Prometheus scraped lies between
            # the value before the scrapes and the value after
            q = 'ktls_kernel_sessions_installed_total{direction="tx",offload="sw"}'
            got = query(q)
            after = json.loads(run_ok(xdg, "stats", "--json"))["tls_stat"]["counters"]["TlsTxSw"]
            if not got or not counters["TlsTxSw"] <= float(got[0]["value"][1]) <= after:
                raise Fail("%s = %s in Prometheus, stats --json: %d before, %d after"
                           % (q, got, counters["TlsTxSw"], after))
        # the scrape negotiated OpenMetrics: Prometheus keeps the info type
        meta_url = "http://127.0.0.1:%d/api/v1/targets/metadata?metric=ktls_kernel" % prom_port
        with urllib.request.urlopen(meta_url, timeout=scaled(20)) as r:
            meta = json.load(r)["data"]
        if not meta or meta[0].get("type") != "info":
            raise Fail("Prometheus metadata for ktls_kernel: %s (expected type info)" % meta)
    finally:
        stop(prom, serve, cli, srv)


if __name__ == "__main__":
    sys.exit(suite.main())
