"""The record channel under test, and what the kernel below can do.

KTLSCTL_TEST_CHANNEL=user-space (the default) or kernel: every integration
file runs its sessions with CHANNEL_ARGS, so that the same cases test
either channel.  user-space is --ktls off (no fallback notice on a machine
without kTLS); kernel is --ktls require, so a case cannot pass on the
user-space channel by accident (the VM tier boots kernels with kTLS and
runs the suites this way).

KTLSCTL_TEST_SOFT_NOREKEY=1 (user-space only) makes every ktlsctl of the
run behave like a kernel without TLS 1.3 rekey (Linux before 6.14): with it
the suites run, on a machine without kTLS, the cases written for such a
kernel.

What a case expects can depend on the channel and the kernel: the facts
come from ktlsctl itself (`ktlsctl stats --json`: kernel.rekey.state,
kernel.features.*), and a case that applies only to some of them is
registered with when=KERNEL_ONLY, USER_SPACE_ONLY, REKEY or NO_REKEY.
"""

import errno
import json
import os
import socket
import subprocess
import sys

from . import settings

CHANNEL = os.environ.get("KTLSCTL_TEST_CHANNEL") or "user-space"
if CHANNEL not in ("user-space", "kernel"):
    sys.stderr.write("KTLSCTL_TEST_CHANNEL must be user-space or kernel, not %r\n" % CHANNEL)
    sys.exit(2)
KERNEL = CHANNEL == "kernel"
CHANNEL_ARGS = ["--ktls", "require" if KERNEL else "off"]
# How ktlsctl -v, /stats and `stats` name it: "..., kernel channel".
CHANNEL_NAME = CHANNEL + " channel"

# The user-space channel's no-rekey mode, for one process (extra_env) or,
# set in the environment, for the whole run.
NOREKEY_ENV = {"KTLSCTL_TEST_SOFT_NOREKEY": "1"}
SOFT_NOREKEY = os.environ.get("KTLSCTL_TEST_SOFT_NOREKEY") == "1"
if SOFT_NOREKEY and KERNEL:
    sys.stderr.write("KTLSCTL_TEST_SOFT_NOREKEY=1 is for the user-space channel: "
                     "the kernel channel rekeys if the kernel can\n")
    sys.exit(2)

_kernel = []


def kernel_facts():
    """The "kernel" object of `ktlsctl stats --json` (asked once)."""
    if not _kernel:
        r = subprocess.run([settings.KTLSCTL, "stats", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=settings.scaled(60))
        try:
            _kernel.append(json.loads(r.stdout.decode())["kernel"])
        except (ValueError, KeyError) as e:
            sys.stderr.write("cannot read the kernel's kTLS facts from `%s stats --json` "
                             "(exit %d): %s\n" % (settings.KTLSCTL, r.returncode, e))
            sys.exit(1)
    return _kernel[0]


def kernel_has(cap):
    """Whether this kernel has a kTLS capability ("rekey") or optional
    feature ("tx_max_payload_len"), as stats --json says."""
    k = kernel_facts()
    return (k.get(cap) or k["features"].get(cap) or {}).get("state") == "yes"


def can_rekey():
    """Whether the channel under test can take new TLS 1.3 keys."""
    if KERNEL:
        return kernel_has("rekey")
    return not SOFT_NOREKEY


def kernel_has_ktls_ulp():
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            return "tls" in f.read().split()
    except OSError:
        return False


def ulp_probe():
    """(available, reason): can this kernel put TCP_ULP "tls" on a socket
    (a loopback pair, made for the question)?"""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c = a = None
    try:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = socket.create_connection(ls.getsockname(), timeout=5)
        a, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")         # TCP_ULP (linux/tcp.h)
        return True, "TCP_ULP \"tls\" works"
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)
        return False, "TCP_ULP \"tls\": %s" % name
    finally:
        for s in (c, a, ls):
            if s is not None:
                s.close()


def tls_stat():
    """/proc/net/tls_stat as {name: value} ({} without the tls module)."""
    out = {}
    try:
        with open("/proc/net/tls_stat") as f:
            for line in f:
                p = line.split()
                if len(p) == 2 and p[1].isdigit():
                    out[p[0]] = int(p[1])
    except OSError:
        pass
    return out


class When:
    """Where a case applies: what (for the runner's count of the cases not
    run) and holds() (asked when the run starts)."""

    def __init__(self, what, holds):
        self.what = what
        self.holds = holds


KERNEL_ONLY = When("the kernel channel", lambda: KERNEL)
USER_SPACE_ONLY = When("the user-space channel", lambda: not KERNEL)
REKEY = When("a channel that can rekey", can_rekey)
NO_REKEY = When("a channel that cannot rekey (KTLSCTL_TEST_SOFT_NOREKEY=1 or Linux < 6.14)",
                lambda: not can_rekey())

# What ktlsctl says when the channel cannot rekey (core/conn.c).
PEER_KEYUPDATE_FATAL = ("the peer updated its TLS 1.3 keys and this kernel cannot follow "
                        "(kTLS rekey needs Linux 6.14 or later): use --ktls off with this peer")
OWN_KEYUPDATE_REFUSED = ("this kernel cannot update kTLS keys (Linux 6.14 or later needed): "
                         "no KeyUpdate was sent")
LIMIT_CLOSED = ("closed the session after %d records under one key: %s and %s allows no more "
                "(use TLS 1.3, on a kernel that can rekey, for long sessions)")


def limit_closed(records, cipher, tls12=False):
    """The line of a session closed at --key-update-after RECORDS."""
    return LIMIT_CLOSED % (records, "TLS 1.2 cannot update keys" if tls12
                           else "this kernel cannot update keys", cipher)
