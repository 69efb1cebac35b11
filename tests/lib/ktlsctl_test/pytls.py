"""A scriptable TLS peer in Python (ssl.SSLObject over a plain socket), for
what no real peer program lets a test do: send close_notify exactly when it
wants, keep reading after it, tell a close_notify from a bare FIN, drop
the connection without one, write raw or altered records."""

import socket
import ssl
import struct
import threading

from .settings import scaled
from .verdicts import Fail, Hang


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
