"""TCP relays between a client and a server that read the TLS records going
each way: to see what was on the wire (record sizes, the hello randoms) or
to change it (a tampered record)."""

import select
import socket

from .settings import scaled
from .pytls import ServerThread
from .verdicts import Fail


class Relay:
    """A relay on 127.0.0.1 (.port; or the given port: a resumed session
    must reach the HOST:PORT its session file names) to upstream_port, for
    one connection.  It forwards whole records (a partial one once its
    sender closed), each through alter(way, record), way "c2s" or "s2c";
    it keeps the first KEEP bytes each way in .seen, and counts the
    application-data records (type 23: in TLS 1.3 every protected record)
    in .count[way] with the longest in .max_len[way] (length field)."""

    KEEP = 1 << 14

    def __init__(self, upstream_port, port=0, accept_timeout=30):
        self.up = upstream_port
        self.seen = {"c2s": b"", "s2c": b""}
        self.count = {"c2s": 0, "s2c": 0}
        self.max_len = {"c2s": 0, "s2c": 0}
        self.upstream = None
        self.st = ServerThread(self._run, accept_timeout=accept_timeout, port=port)
        self.port = self.st.port

    def alter(self, way, record):
        """What to forward instead of record (bytes)."""
        return record

    def _run(self, c):
        s = self.upstream = socket.create_connection(("127.0.0.1", self.up), timeout=scaled(20))
        c.setblocking(True)
        s.setblocking(True)
        ends = {c: [s, "c2s", b""], s: [c, "s2c", b""]}
        try:
            while ends:
                r, _, _ = select.select(list(ends), [], [], scaled(120))
                if not r:
                    return
                for src in r:
                    dst, way, buf = ends[src]
                    try:
                        d = src.recv(1 << 16)
                    except OSError:
                        d = b""
                    if not d:
                        try:
                            if buf:
                                dst.sendall(buf)
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        del ends[src]
                        continue
                    if len(self.seen[way]) < self.KEEP:
                        self.seen[way] += d[:self.KEEP - len(self.seen[way])]
                    buf += d
                    while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
                        n = 5 + int.from_bytes(buf[3:5], "big")
                        rec, buf = buf[:n], buf[n:]
                        if rec[0] == 23:
                            self.count[way] += 1
                            self.max_len[way] = max(self.max_len[way], n - 5)
                        try:
                            dst.sendall(self.alter(way, rec))
                        except OSError:
                            pass
                    ends[src][2] = buf
        finally:
            s.close()
            c.close()

    def hello_random(self, way, msg_type):
        """The random of the first ClientHello (1) / ServerHello (2)."""
        buf = self.seen[way]
        hs = b""
        while len(buf) >= 5 and buf[0] == 22:
            n = int.from_bytes(buf[3:5], "big")
            hs += buf[5:5 + n]
            buf = buf[5 + n:]
            if len(hs) >= 4 + 2 + 32:
                break
        if len(hs) < 38 or hs[0] != msg_type:
            raise Fail("relay: no %s at the start of %s (%d bytes seen)"
                       % ("ClientHello" if msg_type == 1 else "ServerHello", way,
                          len(self.seen[way])))
        return hs[6:38]

    def join(self, timeout=60):
        self.st.join(timeout)

    def abort(self):
        self.st.abort()
        if self.upstream is not None:
            self.upstream.close()


class Tamper(Relay):
    """Once the client has sent `arm` application-data records (in TLS 1.3
    its Finished is one), the next application-data record from the server
    arrives altered: "flip" flips one ciphertext byte (its tag no longer
    matches), "garbage" replaces it with a record whose header has wrong
    version bytes.  .tampered: it happened."""

    def __init__(self, upstream_port, arm, mode):
        self.arm, self.mode, self.tampered = arm, mode, False
        super().__init__(upstream_port)

    def alter(self, way, record):
        if way == "s2c" and record[0] == 23 and self.count["c2s"] >= self.arm \
                and not self.tampered:
            self.tampered = True
            if self.mode == "flip":
                b = bytearray(record)
                b[5 + (len(b) - 5) // 2] ^= 0x01
                return bytes(b)
            return b"\x17\x01\x01\x00\x20" + b"\x5a" * 32
        return record


def record_overhead(version, cipher):
    """Bytes a protected record adds to its plaintext in the header's length
    field: the tag, TLS 1.2's explicit nonce (not ChaCha20), TLS 1.3's
    content type byte."""
    if version == "1.3":
        return 16 + 1
    return 16 + (0 if cipher.upper() == "CHACHA20-POLY1305" else 8)
