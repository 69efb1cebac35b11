"""Test data, and the check that it arrived whole."""

import hashlib
import os

from .verdicts import Fail


def sha(b):
    return hashlib.sha256(b).hexdigest()


def first_diff(a, b):
    n = min(len(a), len(b))
    step = 1 << 16
    for off in range(0, n, step):
        if a[off:off + step] != b[off:off + step]:
            for i in range(off, min(off + step, n)):
                if a[i] != b[i]:
                    return i
    return n if len(a) != len(b) else -1


def check_data(what, got, expected):
    if got == expected:
        return
    d = first_diff(got, expected)
    raise Fail("%s: data mismatch: got %d bytes (sha256 %s…), expected %d bytes "
               "(sha256 %s…), first difference at offset %d"
               % (what, len(got), sha(got)[:16], len(expected), sha(expected)[:16], d))


def random_bytes(n):
    return os.urandom(n)


_NONUL = bytes([1]) + bytes(range(1, 256))


def nonul_lines(n):
    """Random bytes without NUL, ending with a newline: what gnutls-serv --echo
    (which handles the request as a C string and echoes once per line) passes
    through unchanged."""
    b = bytearray(os.urandom(n).translate(_NONUL))
    if n:
        b[-1] = 0x0A
    return bytes(b)


def hex_lines(n, width=63):
    """n bytes of random lowercase hex text in lines of width+1: safe for the
    line-command parsers of s_client/s_server (Q, R, k, K, ...) and of
    gnutls-cli --inline-commands (^...^)."""
    raw = os.urandom((n + 1) // 2 + 1).hex()
    out = bytearray()
    pos = 0
    while len(out) < n:
        take = min(width, n - len(out) - 1)
        if take <= 0:
            out += b"\n"
            break
        out += raw[pos:pos + take].encode()
        pos += take
        if pos + width >= len(raw):
            raw = os.urandom(width * 64).hex()
            pos = 0
        out += b"\n"
    return bytes(out[:n])
