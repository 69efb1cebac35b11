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
    slow clients and 100 concurrent scrapes while a session keeps echoing;
  * --serve over TLS (--cert, --key; --cafile --verify-client for mutual
    TLS): curl and Python's ssl get the metrics, 60 concurrent scrapes
    are not held up by a client that never completes its handshake,
    SIGTERM lets the scrapes in flight finish, Prometheus scrapes it with
    a tls_config, SIGHUP reloads the certificate.

Sessions run with XDG_RUNTIME_DIR set to a private directory per case, so
the metrics list only the sessions of that case."""

import json
import os
import re
import signal
import socket
import ssl
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
    Proc, check_no_sanitizer, free_port, ktlsctl, ktlsctl_listen, ktlsctl_run, wait_listening)
from ktlsctl_test.data import hex_lines, sha  # noqa: E402
from ktlsctl_test.peers import EOF_CLOSE, require_programs  # noqa: E402
from ktlsctl_test.certs import (  # noqa: E402
    fingerprint, put_pair, reload_files, reloaded_line)

require_programs("promtool", "prometheus", "certtool")

suite = Suite("test_metrics", case_timeout=120)
SESSION_ARGS = CHANNEL_ARGS + EOF_CLOSE


def certs():
    return suite.certs


def new_xdg():
    """A short runtime directory (control socket paths have a limit), in
    TMPDIR where one is set: in the VM tier /tmp is the host's, read-only."""
    d = tempfile.mkdtemp(prefix="km-", dir=os.environ.get("TMPDIR") or "/tmp")
    os.chmod(d, 0o755)
    return d


def run(xdg, *args, timeout=30):
    return ktlsctl_run(*args, timeout=timeout, extra_env={"XDG_RUNTIME_DIR": xdg})


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
    for p in filter(None, procs):     # None: never started
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
    scheme = "https" if "--cert" in extra else "http"
    p = Proc([KTLSCTL, "stats", "--serve", ":0"] + list(extra), name="stats --serve",
             stdin=None, extra_env={"XDG_RUNTIME_DIR": xdg})
    m = p.wait_err(r"ktlsctl: serving metrics on %s://127\.0\.0\.1:(\d+)/metrics" % scheme,
                   scaled(30))
    if not m:
        p.kill()
        raise Fail("stats --serve :0 did not say it serves on %s://127.0.0.1\n%s"
                   % (scheme, p.describe()))
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
                try:
                    s.sendall(b"i")
                except OSError:
                    pass        # cut at its deadline already (a slow machine)
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


def start_prometheus(port, job_extra=""):
    """Prometheus on loopback scraping 127.0.0.1:port every second (job_extra:
    more lines for the job); returns it (its port as .port) and a query
    function."""
    d = tempfile.mkdtemp(dir=suite.tmpdir())
    prom_port = free_port()
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: ktlsctl\n%s    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (job_extra, port))
    prom = Proc(["prometheus", "--config.file", os.path.join(d, "prometheus.yml"),
                 "--storage.tsdb.path", os.path.join(d, "data"),
                 "--web.listen-address", "127.0.0.1:%d" % prom_port],
                name="prometheus", stdin=None, stdout_cap=1 << 16, stderr_cap=1 << 16)
    prom.port = prom_port

    def ready():
        # it listens before it is ready, answering 503 until then
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % prom_port,
                                        timeout=scaled(20)) as r:
                return r.status == 200
        except OSError:         # urllib's HTTPError and URLError included
            return False
    if wait_listening(prom_port, prom, timeout=scaled(60)):
        deadline = time.monotonic() + scaled(60)
        while not ready() and prom.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
    if not (prom.alive() and ready()):
        prom.kill()
        raise Fail("prometheus did not become ready\n%s" % prom.describe())

    def query(q):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (prom_port, urllib.parse.quote(q))
        with urllib.request.urlopen(url, timeout=scaled(20)) as r:
            res = json.load(r)
        return res["data"]["result"] if res.get("status") == "success" else []
    return prom, query


def wait_query(query, q):
    """query(q)'s result once it has one, within 60 s; [] if never."""
    deadline = time.monotonic() + scaled(60)
    found = []
    while time.monotonic() < deadline and not found:
        found = query(q)
        if not found:
            time.sleep(0.5)
    return found


@suite.case("a real Prometheus server scrapes --serve: records under key and tls_stat as in stats --json")
def _prometheus_scrape():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg)
    prom = None
    try:
        prom, query = start_prometheus(port)
        prom_port = prom.port
        doc = json.loads(run_ok(xdg, "stats", "--json"))
        s = [x for x in doc["sessions"] if x["pid"] == cli.pid][0]
        q = 'ktls_session_records_current_key{pid="%d",direction="rx"}' % cli.pid
        found = wait_query(query, q)
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


# ---------------------------------------------------------------- serve TLS

def tls_args(mutual=False):
    args = ["--cert", certs().srv_ec[0], "--key", certs().srv_ec[1]] + CHANNEL_ARGS
    return args + (["--cafile", certs().ca, "--verify-client"] if mutual else [])


def tls_ctx(client_cert=True):
    ctx = ssl.create_default_context(cafile=certs().ca)
    if client_cert:
        ctx.load_cert_chain(*certs().client)
    return ctx


def tls_connect(port, ctx=None):
    """A TLS connection to the endpoint, handshake done."""
    return (ctx or tls_ctx()).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=scaled(30)),
        server_hostname="localhost")


def read_all(t):
    """Everything until the server's close_notify (or the TCP end)."""
    chunks = []
    while True:
        try:
            b = t.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            b = b""
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def https(port, raw=b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ctx=None):
    with tls_connect(port, ctx) as t:
        t.sendall(raw)
        return read_all(t)


def metrics_body(resp):
    """The body of a complete 200 answer (Content-Length checked)."""
    head, _, body = resp.partition(b"\r\n\r\n")
    if status_of(resp) != 200 or b"Content-Length: %d\r\n" % len(body) not in head:
        raise Fail("not a complete 200 answer: %r ... (%d bytes)" % (resp[:200], len(resp)))
    return body.decode()


def promtool_check(text):
    chk = Proc(["promtool", "check", "metrics"], name="promtool", stdin=text.encode())
    rc = chk.wait(60)
    if rc != 0 or chk.stdout.strip() or chk.stderr.strip():
        raise Fail("promtool check metrics: exit %s\n%s" % (rc, chk.describe()))


def stop_serve(serve):
    serve.signal(signal.SIGTERM)
    if serve.wait(30) != 0:
        raise Fail("stats --serve did not exit 0 on SIGTERM\n%s" % serve.describe())
    check_no_sanitizer(serve)


@suite.case("--serve over TLS: curl --cacert gets /metrics, 200, the metric families of plain HTTP")
def _serve_tls_curl():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg, *tls_args())
    plain, plain_port = start_serve(xdg)
    try:
        c = Proc(["curl", "-sS", "--cacert", certs().ca, "-o", "-", "-w", "\n%{http_code}",
                  "https://localhost:%d/metrics" % port], name="curl https", stdin=None)
        if c.wait(60) != 0:
            raise Fail("curl over TLS failed\n%s\n%s" % (c.describe(), serve.describe()))
        body, _, code = c.stdout.decode().rpartition("\n")
        if code != "200":
            raise Fail("curl over TLS: status %s\n%s" % (code, c.describe()))
        tls_fams = parse_exposition(body, openmetrics=False)
        promtool_check(body)
        plain_fams = parse_exposition(metrics_body(http(plain_port, b"GET /metrics HTTP/1.1\r\n\r\n")),
                                      openmetrics=False)
        if set(tls_fams) != set(plain_fams):
            raise Fail("families over TLS %s, over plain HTTP %s"
                       % (sorted(set(tls_fams) ^ set(plain_fams)), sorted(plain_fams)))
        sample(tls_fams, "ktls_session_records_current_key", pid=str(cli.pid), direction="rx")
        # a successful scrape is no news: nothing on stderr but the start
        if serve.stderr.count("\n") != 1:
            raise Fail("stats --serve over TLS said more than its start\n%s" % serve.describe())
        stop_serve(serve)
    finally:
        stop(serve, plain, cli, srv)


@suite.case("--serve --verify-client: a scraper without a certificate is refused with a log line, "
            "one with a certificate from --cafile is served")
def _serve_mtls():
    xdg = new_xdg()
    serve, port = start_serve(xdg, *tls_args(mutual=True))
    try:
        # TLS 1.3: the client's handshake is over before the server sees
        # that no certificate came; it then finds the connection closed.
        try:
            got = https(port, ctx=tls_ctx(client_cert=False))
        except (ssl.SSLError, OSError):
            got = b""
        if got:
            raise Fail("a scraper without a certificate got %r\n%s" % (got[:200], serve.describe()))
        want = (r'ktlsctl: session 1 peer=127\.0\.0\.1:\d+ rx=0 tx=0 duration=\d+\.\d{3}s '
                r'end=handshake-failed reason="TLS handshake failed: Certificate is required\."')
        if not serve.wait_err(want + r"\n", 20):
            raise Fail("no log line %r\n%s" % (want, serve.describe()))
        c = Proc(["curl", "-sS", "--cacert", certs().ca, "--cert", certs().client[0],
                  "--key", certs().client[1], "-o", "/dev/null", "-w", "%{http_code}",
                  "https://localhost:%d/metrics" % port], name="curl --cert", stdin=None)
        if c.wait(60) != 0 or c.stdout != b"200":
            raise Fail("curl with a client certificate\n%s\n%s" % (c.describe(), serve.describe()))
        parse_exposition(metrics_body(https(port)), openmetrics=False)
        stop_serve(serve)
        lines = serve.stderr.splitlines()
        if len(lines) != 2 or not re.fullmatch(want, lines[1]):
            raise Fail("expected the start and the refused scraper's line only\n%s"
                       % serve.describe())
    finally:
        stop(serve)


@suite.case("--serve over TLS: 60 concurrent scrapes are all answered while a client that never "
            "completes its handshake waits for its deadline")
def _serve_tls_concurrent():
    xdg = new_xdg()
    serve, port = start_serve(xdg, *tls_args(mutual=True))
    silent = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
    try:
        # a scrape is answered while the silent client waits for its
        # handshake deadline (10 s): it is still there afterwards
        first = https(port)
        silent.setblocking(False)
        try:
            if silent.recv(1) == b"":
                raise Fail("the silent client was closed before a scrape was answered")
        except BlockingIOError:
            pass
        results, errors = [first], []

        def scrape():
            try:
                results.append(https(port))
            except (OSError, ssl.SSLError) as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=scrape) for _ in range(59)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(scaled(120))
        if errors or len(results) != 60:
            raise Fail("60 scrapes: %d answers, errors %s\n%s"
                       % (len(results), errors[:3], serve.describe()))
        bodies = [metrics_body(r) for r in results]
        for b in bodies:
            parse_exposition(b, openmetrics=False)
        promtool_check(bodies[0])
        # and it is cut off at its handshake deadline only
        silent.settimeout(scaled(30))
        try:
            if silent.recv(1) != b"":
                raise Fail("the silent client got data")
        except socket.timeout:
            raise Fail("the silent client was not closed after its handshake deadline")
        except ConnectionResetError:
            pass
        want = (r'ktlsctl: session \d+ peer=127\.0\.0\.1:%d rx=0 tx=0 duration=1\d\.\d{3}s '
                r'end=handshake-failed reason="[^"]+"\n' % silent.getsockname()[1])
        if not serve.wait_err(want, 20):
            raise Fail("no log line %r\n%s" % (want, serve.describe()))
        stop_serve(serve)
    finally:
        silent.close()
        stop(serve)


@suite.case("--serve over TLS: SIGTERM with scrapes in flight: each gets its whole answer, exit 0")
def _serve_tls_stop():
    xdg = new_xdg()
    serve, port = start_serve(xdg, *tls_args(), "-v")
    conns = []
    try:
        # requests sent, answers not read yet
        for _ in range(10):
            t = tls_connect(port)
            t.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            conns.append(t)
        if not serve.wait_until(lambda p: p.stderr.count(": GET /metrics: 200\n") >= 10, 30):
            raise Fail("the 10 requests were not answered\n%s" % serve.describe())
        serve.signal(signal.SIGTERM)
        for t in conns:
            parse_exposition(metrics_body(read_all(t)), openmetrics=False)
            t.unwrap()
        if serve.wait(30) != 0:
            raise Fail("stats --serve did not exit 0 on SIGTERM\n%s" % serve.describe())
        check_no_sanitizer(serve)
        ends = re.findall(r"^ktlsctl: session \d+ .* end=(\S+)$", serve.stderr, re.M)
        if ends != ["closed"] * 10:
            raise Fail("session ends %s, expected 10 closed\n%s" % (ends, serve.describe()))
    finally:
        for t in conns:
            t.close()
        stop(serve)


@suite.case("--serve over TLS: a scraper silent after its handshake gets 10 s for its request, "
            "then close_notify and 5 s to answer it")
def _serve_tls_silent_scraper():
    xdg = new_xdg()
    serve, port = start_serve(xdg, *tls_args(), "-v")
    t = tls_connect(port)
    try:
        peer = "127.0.0.1:%d" % t.getsockname()[1]
        t.settimeout(scaled(40))
        if read_all(t) != b"":
            raise Fail("the silent scraper got data\n%s" % serve.describe())
        slow = ("ktlsctl: %s: too slow (10 s to send a request and take the answer): closed\n"
                % peer)
        # Said before the close_notify went out; our reader of its stderr
        # may still be behind the socket: wait for the line.
        if not serve.wait_err(re.escape(slow), scaled(5)):
            raise Fail("no line %r before our close_notify\n%s" % (slow, serve.describe()))
        want = (r'ktlsctl: session 1 peer=%s version=TLS1\.3 cipher=\S+ sni=localhost channel=\S+ path=\S+ '
                r'rx=0 tx=0 duration=1[5-9]\.\d{3}s end=truncated reason="the client did not '
                r'answer our close_notify within 5000 ms"\n' % re.escape(peer))
        if not serve.wait_err(want, 20):
            raise Fail("no line %r\n%s" % (want, serve.describe()))
        stop_serve(serve)
    finally:
        t.close()
        stop(serve)


@suite.case("--serve over TLS: usage errors, and unreadable files as listen says them")
def _serve_tls_usage():
    xdg = new_xdg()
    cert, key = certs().srv_ec
    for args, want in (
            (["--serve", ":0", "--key", key],
             "ktlsctl: --cert and --key go together (see 'ktlsctl stats --help')\n"),
            (["--serve", ":0", "--cert", cert],
             "ktlsctl: --cert and --key go together (see 'ktlsctl stats --help')\n"),
            (["--serve", ":0", "--cert", cert, "--key", key, "--verify-client"],
             "ktlsctl: --verify-client needs --cafile FILE (see 'ktlsctl stats --help')\n"),
            (["--serve", ":0", "--cafile", certs().ca],
             "ktlsctl: --cafile verifies scrapers over TLS: give --cert and --key too "
             "(see 'ktlsctl stats --help')\n"),
            (["--cert", cert, "--key", key],
             "ktlsctl: --cert, --key, --cafile and --verify-client go with --serve "
             "(see 'ktlsctl stats --help')\n"),
            (["--serve", ":0", "--cert", cert, "--key", key, "--ktls", "maybe"],
             "ktlsctl: invalid --ktls 'maybe': use auto, require or off\n")):
        p, rc = run(xdg, "stats", *args)
        if rc != 2 or p.stderr != want:
            raise Fail("stats %s: expected exit 2 and %r\n%s" % (" ".join(args), want, p.describe()))
    for files in (("/nonexistent-km/c.pem", key), (cert, "/nonexistent-km/k.pem")):
        lst, lrc = run(xdg, "listen", ":0", "--cert", files[0], "--key", files[1])
        p, rc = run(xdg, "stats", "--serve", ":0", "--cert", files[0], "--key", files[1])
        if rc != 5 or lrc != 5 or p.stderr != lst.stderr or not p.stderr.endswith(
                ": No such file or directory\n"):
            raise Fail("stats --serve with %s: exit %s, %r; listen: exit %s, %r"
                       % (files, rc, p.stderr, lrc, lst.stderr))


@suite.case("--serve over TLS: SIGHUP reloads the certificate, with the line listen gives")
def _serve_tls_reload():
    xdg = new_xdg()
    cert, key = reload_files(suite.tmpdir(), certs().srv_ec)

    def served_cert():
        with tls_connect(port) as t:
            der = t.getpeercert(binary_form=True)
            t.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            metrics_body(read_all(t))
        return sha(der)

    serve, port = start_serve(xdg, "--cert", cert, "--key", key, *CHANNEL_ARGS)
    try:
        if served_cert() != fingerprint(certs().srv_ec[0]):
            raise Fail("the first certificate was not served")
        put_pair(cert, key, certs().srv_rsa)
        line = reloaded_line(cert, key, certs().srv_rsa[0])
        serve.signal(signal.SIGHUP)
        if not serve.wait_until(lambda p: line in p.stderr, 20):
            raise Fail("no line %r after SIGHUP\n%s" % (line, serve.describe()))
        if served_cert() != fingerprint(certs().srv_rsa[0]):
            raise Fail("the reloaded certificate was not served\n%s" % serve.describe())
        stop_serve(serve)
    finally:
        stop(serve)


@suite.case("a real Prometheus server scrapes --serve over mutual TLS (scheme https, tls_config)")
def _prometheus_scrape_tls():
    xdg = new_xdg()
    srv, cli = start_sessions(xdg)
    serve, port = start_serve(xdg, *tls_args(mutual=True))
    tls_config = ("    scheme: https\n    tls_config:\n      ca_file: %s\n"
                  "      cert_file: %s\n      key_file: %s\n      server_name: localhost\n"
                  % (certs().ca, certs().client[0], certs().client[1]))
    prom = None
    try:
        prom, query = start_prometheus(port, tls_config)
        q = 'ktls_session_records_current_key{pid="%d",direction="rx"}' % cli.pid
        found = wait_query(query, q)
        if not found:
            raise Fail("Prometheus has no %s after 60 s (up: %s)\n%s\n%s"
                       % (q, query('up{job="ktlsctl"}'), prom.describe(), serve.describe()))
        doc = json.loads(run_ok(xdg, "stats", "--json"))
        s = [x for x in doc["sessions"] if x["pid"] == cli.pid][0]
        if float(found[0]["value"][1]) != s["rx"]["records_key"]:
            raise Fail("Prometheus says %s = %s, stats --json says %s"
                       % (q, found[0]["value"][1], s["rx"]["records_key"]))
        if "end=handshake-failed" in serve.stderr:
            raise Fail("a Prometheus handshake failed\n%s" % serve.describe())
    finally:
        stop(prom, serve, cli, srv)


if __name__ == "__main__":
    sys.exit(suite.main())
