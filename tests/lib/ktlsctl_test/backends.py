"""Plain TCP backends for the serving suites (listen --forward): a Python
process of its own, so that its threads never compete with the suite's."""

import sys

from .procs import Proc
from .verdicts import Fail

# A plain TCP echo backend; "close" mode accepts and closes at once;
# "source" sends SOURCE_SIZE bytes of SOURCE_CHUNK over and over (what it
# reads is dropped), then closes; it prints "port N" when listening.
SOURCE_CHUNK = bytes(range(256)) * 256
SOURCE_SIZE = 32 << 20     # more than every buffer on the way, at any scale
BACKEND = r'''
import socket, sys, threading
mode = sys.argv[1]
SOURCE_CHUNK = bytes(range(256)) * 256
SOURCE_SIZE = 32 << 20
def source(c):
    def drop():
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
    threading.Thread(target=drop, daemon=True).start()
    try:
        for _ in range(SOURCE_SIZE // len(SOURCE_CHUNK)):
            c.sendall(SOURCE_CHUNK)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(512)
print("port %d" % s.getsockname()[1], flush=True)
def echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    if mode == "close":
        c.close()
        continue
    if mode == "source":
        threading.Thread(target=source, args=(c,), daemon=True).start()
        continue
    threading.Thread(target=echo, args=(c,), daemon=True).start()
'''


def backend(mode="echo"):
    p = Proc([sys.executable, "-c", BACKEND, mode], name="backend", stdin=None)
    if not p.wait_out_contains(b"\n", 10):
        raise Fail("the echo backend did not start\n" + p.describe())
    return p, int(p.stdout.split()[1])
