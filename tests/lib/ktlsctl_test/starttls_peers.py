"""Servers that speak a protocol's plain-text STARTTLS preamble before TLS.

The real ones (Debian's packages, each started in the foreground on a
loopback port with its own temporary configuration, no system service):
exim4 (SMTP), dovecot (IMAP, POP3), PostgreSQL (a cluster made by initdb).
And a scripted one for the protocols and answers no daemon here gives:
it plays a list of steps exactly (what it sends, what it must receive, byte
for byte), then does TLS with Python's ssl and answers one line.
"""

import os
import shutil
import signal
import tempfile

from .procs import Proc, at_cleanup, free_port, wait_listening
from .pytls import PyTls, ServerThread
from .verdicts import Fail, Skip

# ----------------------------------------------------------- scripted

SEND, EXPECT, CLOSE = "send", "expect", "close"


def play(steps, ctx, answer=None):
    """A one-connection server on 127.0.0.1 that plays steps ([(SEND,
    bytes)], [(EXPECT, bytes)], each EXPECT read whole and compared, and
    (CLOSE, None), which closes the connection there),
    then, when answer is given, does TLS, reads one line and sends
    answer(line) and close_notify; without answer it reads until the
    client goes.  .join() returns the line (or the bytes after the steps)."""
    def run(c):
        c.settimeout(30)
        try:
            return steps_then_tls(c)
        except (ConnectionResetError, BrokenPipeError):
            return b"(the client reset the connection)"

    def steps_then_tls(c):
        for kind, data in steps:
            if kind == SEND:
                c.sendall(data)
                continue
            if kind == CLOSE:
                c.close()
                return b""
            got = b""
            while len(got) < len(data):
                d = c.recv(len(data) - len(got))
                if not d:
                    raise Fail("scripted server: the client closed after %r, expected %r"
                               % (got, data))
                got += d
            if got != data:
                raise Fail("scripted server: received %r, expected %r" % (got, data))
        if answer is None:
            rest = b""
            while True:
                d = c.recv(65536)
                if not d:
                    return rest
                rest += d
        t = PyTls(c, ctx, server_side=True)
        t.handshake()
        line = b""
        while not line.endswith(b"\n"):
            d = t.recv_some()
            if not d:
                raise Fail("scripted server: close_notify before a line, after %r" % line)
            line += d
        t.send(answer(line))
        t.send_close_notify()
        t.recv_until_close()
        t.close()
        return line
    return ServerThread(run)


# ------------------------------------------------------- real daemons

def _need(*paths):
    for p in paths:
        if not os.path.exists(p):
            raise Skip("%s is not installed (the Debian package of this case: see ./bootstrap)"
                       % p)


def _private_dir(owner=None):
    """A fresh directory others can enter (the daemons drop root), removed
    at exit."""
    d = tempfile.mkdtemp(prefix="ktlsctl-starttls-")
    os.chmod(d, 0o755)
    if owner:
        shutil.chown(d, owner, owner if owner != "nobody" else "nogroup")
    at_cleanup(lambda: shutil.rmtree(d, True))
    return d


def _copy_pair(pair, d, owner=None, group=None):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copyfile(pair[0], cert)
    shutil.copyfile(pair[1], key)
    os.chmod(key, 0o600)
    if owner:
        shutil.chown(key, owner, group)
        shutil.chown(cert, owner, group)
    return cert, key


def _started(proc, port, what, log=None):
    if wait_listening(port, proc, timeout=30):
        return proc
    proc.kill()
    tail = ""
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = "".join("      | " + l for l in f.readlines()[-20:])
    raise Fail("%s did not listen on port %d\n%s%s" % (what, port, proc.describe(), tail))


EXIM = "/usr/sbin/exim4"


def start_exim(pair, tls=True):
    """exim4 -bdf on 127.0.0.1:PORT with a minimal configuration (no ACLs,
    no routers: it takes EHLO, STARTTLS and QUIT), offering STARTTLS only
    when tls.  Returns (proc, port)."""
    _need(EXIM)
    # exim switches to its own user for the spool and the log.
    d = _private_dir()
    cert, key = _copy_pair(pair, d, "Debian-exim", "Debian-exim")
    for sub in ("spool", "log"):
        os.mkdir(os.path.join(d, sub))
        shutil.chown(os.path.join(d, sub), "Debian-exim", "Debian-exim")
    conf = os.path.join(d, "exim.conf")
    with open(conf, "w") as f:
        f.write("primary_hostname = localhost\n"
                "spool_directory = %s/spool\n"
                "log_file_path = %s/log/%%slog\n"
                "pid_file_path = %s/exim.pid\n"
                "local_interfaces = 127.0.0.1\n"
                "keep_environment =\n"
                "tls_certificate = %s\n"
                "tls_privatekey = %s\n"
                "tls_advertise_hosts = %s\n" % (d, d, d, cert, key, "*" if tls else ""))
    os.chmod(conf, 0o644)       # exim refuses a configuration others can write
    port = free_port()
    p = Proc([EXIM, "-bdf", "-oX", str(port), "-C", conf], name="exim4", stdin=None)
    return _started(p, port, "exim4", os.path.join(d, "log", "paniclog")), port


DOVECOT = "/usr/sbin/dovecot"


def start_dovecot(pair, tls=True):
    """dovecot -F with IMAP and POP3 on loopback ports, its own base and
    state directories, and a static password database (no system user
    involved).  Returns (proc, imap_port, pop3_port)."""
    _need(DOVECOT, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3")
    d = _private_dir()
    cert, key = _copy_pair(pair, d)
    imap, pop3 = free_port(), free_port()
    conf = os.path.join(d, "dovecot.conf")
    log = os.path.join(d, "dovecot.log")
    with open(conf, "w") as f:
        f.write("""base_dir = {d}/run
state_dir = {d}/state
instance_name = ktlsctl-test-{imap}
protocols = imap pop3
listen = 127.0.0.1
ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{key}
log_path = {log}
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = static
  args = password=test
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""".format(d=d, imap=imap, pop3=pop3, cert=cert, key=key, log=log,
           ssl="yes" if tls else "no"))
    p = Proc([DOVECOT, "-F", "-c", conf], name="dovecot", stdin=None)
    _started(p, imap, "dovecot", log)
    _started(p, pop3, "dovecot", log)
    return p, imap, pop3


PG_BIN = "/usr/lib/postgresql/15/bin"
_pg_cluster = []


def pg_cluster():
    """A cluster made once by initdb (as nobody: PostgreSQL will not run
    as root), trusting local connections; its directory."""
    if not _pg_cluster:
        _need(os.path.join(PG_BIN, "initdb"), os.path.join(PG_BIN, "postgres"))
        d = _private_dir("nobody")
        p = Proc(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                  os.path.join(PG_BIN, "initdb"), "-D", os.path.join(d, "data"), "-A", "trust",
                  "-U", "postgres", "--no-sync"], name="initdb", stdin=None, cwd=d,
                 shared=True)
        if p.wait(120) != 0:
            raise Fail("initdb failed\n%s" % p.describe())
        _pg_cluster.append(d)
    return _pg_cluster[0]


def start_postgres(pair, tls=True):
    """postgres on 127.0.0.1:PORT over the cluster of pg_cluster(), with
    ssl on (the certificate pair given) or off.  Returns (proc, port);
    stop_postgres(proc) shuts it down cleanly."""
    d = pg_cluster()
    cert, key = _copy_pair(pair, d, "nobody", "nogroup")
    port = free_port()
    p = Proc(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              os.path.join(PG_BIN, "postgres"), "-D", os.path.join(d, "data"), "-k", d,
              "-p", str(port), "-c", "listen_addresses=127.0.0.1",
              "-c", "ssl=%s" % ("on" if tls else "off"),
              "-c", "ssl_cert_file=" + cert, "-c", "ssl_key_file=" + key],
             name="postgres", stdin=None, cwd=d)
    return _started(p, port, "postgres"), port


def stop_postgres(p):
    """A fast shutdown (SIGINT), so that no shared memory is left behind."""
    p.signal(signal.SIGINT)
    p.wait(30)
