#!/usr/bin/env python3
"""Integration tests of where TLS secrets live in a running ktlsctl (issue 7).

The peer (gnutls-serv or gnutls-cli, never ktlsctl) writes its secrets to an
SSLKEYLOGFILE.  From them the test derives, in Python, every traffic key and
IV of the session (TLS 1.3: HKDF-Expand-Label, RFC 8446 7.1 and 7.3, and
"traffic upd" for each key update; TLS 1.2: the PRF key block, RFC 5246 6.3,
from the master secret and the hello randoms, which a proxy in the middle
reads off the wire).  Then it reads the live ktlsctl's memory through
/proc/PID/maps and /proc/PID/mem (as root) and counts every copy of every
secret, key and IV, and of the HMAC pads of each secret, with its address:
after the handover and `ktlsctl stats PID`, and again after each of two key
updates (ours with update_requested, then the peer's).  Each copy is named
by the layout around it: GnuTLS's record_state_st (the key 20 bytes after
the IV, the IV size in between), our struct soft_key (set = 1 and the
version before the IV), our AEAD handle (reached from soft_key's pointer),
GnuTLS's session key struct (ap_ckey and ap_skey 64 bytes apart).

On the user-space channel (KTLSCTL_TEST_CHANNEL=user-space, the default:
this machine's kernel has no kTLS), ktlsctl must hold the current keys.
The copies allowed, and why (GnuTLS 3.7.9 and nettle 3.8 on x86_64):

  handshake traffic secrets, exporter secret, handshake keys and IVs
        none.  GnuTLS keeps hs_ckey, hs_skey and ap_expkey in the session
        until gnutls_deinit; ktlsctl wipes them when the handshake is over
        (core/handshake.c, through the pointers GnuTLS hands its key log
        callback).
  traffic secrets
        current generation: exactly one copy each, GnuTLS's
        session->key.proto.tls13.ap_ckey / ap_skey (it derives the next key
        update from them).  Earlier generations: none (updated in place).
  traffic keys
        a GnuTLS epoch (record_parameters_st) holds each direction's key
        twice: raw in record_state_st.key and in its cipher context (AES
        and ChaCha20 key schedules start with the raw key).  GnuTLS keeps
        the current epoch and, until the next key update, the previous one
        (it frees epochs only at the start of a key update), so:
          current generation   at most 2 record states and as many GnuTLS
                               contexts, plus exactly ONE context of ours
                               (the user-space channel's AEAD handle)
          previous generation  at most 1 record state and its context (the
                               previous epoch); nothing of ours
          older                none at all
  IVs
        one per GnuTLS record state holding it, plus exactly one of ours
        for the current generation (struct soft_key), plus the last nonce of
        a GnuTLS cipher context when that was the IV itself (sequence number
        0: the TLS 1.2 Finished).  The test sends two records each way under
        every key, so that no context of ours ends on sequence number 0.
        TLS 1.2 AES-GCM and AES-CCM have a 4-byte salt for an IV: too short
        to count (it only locates our soft_key).
  TLS 1.2 master secret
        one copy in GnuTLS's security_parameters (it goes into the saved
        session), and at most one in a buffer GnuTLS freed without wiping
        it: at the end of every TLS 1.2 handshake a server packs the
        session for its session cache (db.c, _gnutls_server_register_
        current_session) even with no cache to store it in, then frees
        the packed copy (seen under ASan, whose quarantine keeps freed
        blocks; glibc's malloc usually reuses the block at once).
  the stack
        nothing.  GnuTLS and nettle leave nonces and CCM state in dead
        frames, which ktlsctl overwrites after every seal, open, handshake
        and key update (kc_burn_stack), and ktlsctl is linked with -z now:
        a lazy symbol binding saves the vector registers (AES and ChaCha20
        state) on the stack where no wipe reaches.

A scan sees what stays in memory while the session idles: a copy that later
use of the stack happens to overwrite (a struct kc_key_material left
unwiped, say) can escape it, so the wipes in the code are still reviewed
by hand.

On the kernel channel (KTLSCTL_TEST_CHANNEL=kernel: the VM tier runs this
file inside guests whose kernels have kTLS) it is the same check with
other cases, where ktlsctl holds no key, IV or secret of its own, only
GnuTLS's state; on a kernel that cannot rekey, without the key updates.

KTLSCTL_SECRETS_SHOW=1 prints every scan's table: each item, its count and
where each copy is; KTLSCTL_SECRETS_SHOW=report prints the problems too,
without failing (to survey a change).
"""
import base64
import hashlib
import hmac
import os
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL, VALGRIND, scaled  # noqa: E402
from ktlsctl_test.channel import (  # noqa: E402
    CHANNEL, CHANNEL_ARGS, CHANNEL_NAME, KERNEL, KERNEL_ONLY, USER_SPACE_ONLY, can_rekey)
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail, Skip  # noqa: E402
from ktlsctl_test.procs import (  # noqa: E402
    check_exit, ktlsctl, ktlsctl_listen, Proc)
from ktlsctl_test.peers import (  # noqa: E402
    gnutls_cli_argv, gnutls_priority, require_programs, start_gnutls_serv)
from ktlsctl_test.relays import Relay  # noqa: E402

require_programs("gnutls-serv", "gnutls-cli", "certtool")
if VALGRIND:
    # valgrind's own heap, redzones and copy of the registers are not the
    # layout this file reads
    sys.stdout.write("\n*** SKIPPING THE WHOLE FILE (exit 77): the memory scan needs ktlsctl "
                     "running natively, not under valgrind (KTLSCTL_VALGRIND=1)\n")
    sys.exit(77)

suite = Suite("test_secrets")
SHOW = os.environ.get("KTLSCTL_SECRETS_SHOW", "")

_counter = [0]


def tmpfile(name):
    _counter[0] += 1
    return os.path.join(suite.tmpdir(), "%d-%s" % (_counter[0], name))


# ------------------------------------------------------------ key schedule

HASH = {"AES-128-GCM": hashlib.sha256, "AES-256-GCM": hashlib.sha384,
        "CHACHA20-POLY1305": hashlib.sha256, "AES-128-CCM": hashlib.sha256}
KEYLEN = {"AES-128-GCM": 16, "AES-256-GCM": 32, "CHACHA20-POLY1305": 32, "AES-128-CCM": 16}


def hkdf_expand_label(secret, label, length, h):
    """RFC 8446 7.1, with an empty context."""
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:length]


def tls12_prf(secret, label, seed, length, h):
    """RFC 5246 5: P_hash(secret, label + seed)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, h).digest()
        out += hmac.new(secret, a + seed, h).digest()
    return out[:length]


def tls12_iv_len(cipher):
    return 12 if cipher == "CHACHA20-POLY1305" else 4


# ---------------------------------------------------- the wire and the keylog

def read_keylog(path, timeout=10):
    """{label: (client_random, secret)} from an NSS key log file (the last
    line of each label)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        out = {}
        try:
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 3 and not line.startswith("#"):
                        out[p[0]] = (bytes.fromhex(p[1]), bytes.fromhex(p[2]))
        except OSError:
            pass
        if ("CLIENT_TRAFFIC_SECRET_0" in out and "SERVER_TRAFFIC_SECRET_0" in out) or \
                "CLIENT_RANDOM" in out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


# ------------------------------------------------------------ what to count

class Item:
    """One byte string to count: name, kind (secret, key, iv, master), the
    direction (client/server), generation (0, 1, ... for traffic keys; None
    for handshake-time secrets) and what the scan may find of it."""

    def __init__(self, name, data, kind, direction=None, gen=None, iv=None, key=None):
        self.name, self.data, self.kind = name, data, kind
        self.direction, self.gen = direction, gen
        self.iv, self.key = iv, key        # the IV / key of the same generation


def tls13_items(keylog, cipher, generations):
    """Items for a TLS 1.3 session whose traffic secrets went through
    generations[d] updates (d = "client" / "server")."""
    h, klen = HASH[cipher], KEYLEN[cipher]
    items = []
    for label in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"):
        if label not in keylog:
            raise Fail("the peer's key log lacks %s: %r" % (label, sorted(keylog)))
        s = keylog[label][1]
        short = "c_hs" if label.startswith("CLIENT") else "s_hs"
        items.append(Item(short + " secret", s, "hs-secret"))
        items.append(Item(short + " key", hkdf_expand_label(s, b"key", klen, h), "hs-key"))
        items.append(Item(short + " iv", hkdf_expand_label(s, b"iv", 12, h), "hs-iv"))
    for label in ("EXPORTER_SECRET", "CLIENT_EARLY_TRAFFIC_SECRET", "EARLY_EXPORTER_SECRET"):
        if label in keylog:
            items.append(Item(label.lower(), keylog[label][1], "hs-secret"))
    for d, label in (("client", "CLIENT_TRAFFIC_SECRET_0"), ("server", "SERVER_TRAFFIC_SECRET_0")):
        s = keylog[label][1]
        for g in range(generations[d] + 1):
            if g:
                s = hkdf_expand_label(s, b"traffic upd", h().digest_size, h)
            key = hkdf_expand_label(s, b"key", klen, h)
            iv = hkdf_expand_label(s, b"iv", 12, h)
            items.append(Item("%s_ap%d secret" % (d[0], g), s, "secret", d, g))
            items.append(Item("%s_ap%d key" % (d[0], g), key, "key", d, g, iv=iv))
            items.append(Item("%s_ap%d iv" % (d[0], g), iv, "iv", d, g, key=key))
    return items


def tls12_items(keylog, cipher, client_random, server_random):
    if "CLIENT_RANDOM" not in keylog:
        raise Fail("the peer's key log has no CLIENT_RANDOM line: %r" % sorted(keylog))
    cr, master = keylog["CLIENT_RANDOM"]
    if cr != client_random:
        raise Fail("the key log's client random %s is not the ClientHello's %s"
                   % (cr.hex(), client_random.hex()))
    h, klen, ivlen = HASH[cipher], KEYLEN[cipher], tls12_iv_len(cipher)
    kb = tls12_prf(master, b"key expansion", server_random + client_random,
                   2 * klen + 2 * ivlen, h)
    ckey, skey = kb[:klen], kb[klen:2 * klen]
    civ, siv = kb[2 * klen:2 * klen + ivlen], kb[2 * klen + ivlen:]
    items = [Item("master secret", master, "master", iv=client_random)]
    for d, key, iv in (("client", ckey, civ), ("server", skey, siv)):
        items.append(Item("%s key" % d, key, "key", d, 0, iv=iv))
        # a 4-byte salt is too short to count, but finds our soft_key
        items.append(Item("%s iv" % d, iv, "iv" if ivlen >= 8 else "salt", d, 0, key=key))
    return items


# ------------------------------------------------------------ the memory scan

class Region:
    def __init__(self, start, end, perms, name, data):
        self.start, self.end, self.perms, self.name, self.data = start, end, perms, name, data


# Bigger mappings are a sanitizer's shadow memory (256 MiB and terabytes,
# holding only metadata about the rest), not data.
REGION_MAX = 64 << 20


def read_memory(pid):
    """Every readable writable mapping of pid (secrets are only ever written
    there), with its bytes."""
    regions = []
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        mem = open("/proc/%d/mem" % pid, "rb", 0)
    except PermissionError as e:
        raise Skip("cannot read the memory of ktlsctl (%s): run as root" % e)
    with mem:
        for line in maps:
            f = line.split(None, 5)
            start, end = (int(x, 16) for x in f[0].split("-"))
            name = f[5] if len(f) > 5 else ""
            if "r" not in f[1] or "w" not in f[1] or name in ("[vvar]", "[vsyscall]") or \
                    end - start > REGION_MAX:
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue
            regions.append(Region(start, end, f[1], name, data))
    return regions


def u32(b):
    return struct.unpack("<I", b)[0] if len(b) == 4 else None


class Hit:
    def __init__(self, region, off):
        self.region, self.off = region, off
        self.addr = region.start + off
        self.where = ""

    def at(self, delta, n):
        a = self.off + delta
        if a < 0 or a + n > len(self.region.data):
            return b""
        return self.region.data[a:a + n]

    def label(self):
        name = self.region.name or "anon"
        if name.startswith("/"):
            name = os.path.basename(name)
        return "%s+0x%x%s" % (name, self.off, " " + self.where if self.where else "")


def find_all(regions, data):
    hits = []
    for r in regions:
        i = r.data.find(data)
        while i >= 0:
            hits.append(Hit(r, i))
            i = r.data.find(data, i + 1)
    return hits


def read_at(regions, addr, n):
    for r in regions:
        if r.start <= addr and addr + n <= r.end:
            return r.data[addr - r.start:addr - r.start + n]
    return b""


def our_contexts(regions, items):
    """Where the user-space channel's AEAD contexts start: each struct
    soft_key (found by its IV) points to a gnutls_aead_cipher_hd_t, whose
    first word is the cipher handle GnuTLS allocated for it (GnuTLS's x86
    struct aes_gcm_ctx, or a nettle_cipher_ctx with the nettle context
    right after it)."""
    bases = []
    for it in items:
        if it.kind not in ("iv", "salt"):
            continue
        for h in find_all(regions, it.data):
            if not soft_key_iv(h):
                continue
            aead = struct.unpack("<Q", h.at(-8, 8))[0]
            handle = read_at(regions, aead, 8)
            if len(handle) == 8:
                bases.append(struct.unpack("<Q", handle)[0])
    return bases


# Within a cipher handle: the key schedule starts in the first 0x80 bytes
# (after nettle_cipher_ctx and alignment), the last nonce lies in the first
# 0x180 (struct aes_gcm_ctx's gcm.Yi at 0x108 for AES-256; nettle's ChaCha
# state words 13-15).
KEY_SPAN, NONCE_SPAN = 0x80, 0x180


def soft_key_iv(h):
    """An IV inside ktlsctl's struct soft_key: set = 1, version 0x0303/0x0304
    (core/channel_soft.c)."""
    return h.at(-16, 1) == b"\x01" and h.at(-14, 2) in (b"\x03\x03", b"\x04\x03")


def record_state(item, h):
    """A copy inside GnuTLS's record_state_st: iv[16], iv_size, key[32]."""
    if item.kind == "key" and item.iv is not None:
        return u32(h.at(-4, 4)) == len(item.iv) and h.at(-20, len(item.iv)) == item.iv
    if item.kind == "iv" and item.key is not None:
        return u32(h.at(16, 4)) == len(item.data) and h.at(20, len(item.key)) == item.key
    return False


def classify(item, hits, items, ours=(), key_hits=()):
    """Name what each copy is, where the layout says so.  key_hits: the
    copies of the key of an IV's generation, already classified."""
    span = KEY_SPAN if item.kind == "key" else NONCE_SPAN
    for h in hits:
        if h.where:
            continue
        if h.region.name == "[stack]":
            h.where = "STACK"
        elif record_state(item, h):
            h.where = "gnutls-record-state"
        elif item.kind == "iv" and soft_key_iv(h):
            h.where = "ktlsctl-soft_key"
        elif item.kind in ("key", "iv") and any(b <= h.addr < b + span for b in ours):
            h.where = "ktlsctl-aead-context"
        elif item.kind == "key":
            # the only other place a key may be: the cipher context of one
            # of GnuTLS's record states (not located, so check_model counts
            # them against the record states)
            h.where = "gnutls-cipher-context"
        elif item.kind == "iv" and any(k.where == "gnutls-cipher-context" and
                                       k.region is h.region and
                                       k.addr <= h.addr < k.addr + NONCE_SPAN
                                       for k in key_hits):
            # its last nonce: GnuTLS sealed or opened a record with
            # sequence number 0 under it (the TLS 1.2 Finished)
            h.where = "gnutls-cipher-context-nonce"
        elif item.kind == "master" and h.at(48, 32) == item.iv:
            # security_parameters: master_secret[48], client_random[32]
            h.where = "gnutls-security-parameters"
        elif item.kind == "master" and h.at(48, 33) == b"\x20" + item.iv:
            # _gnutls_session_pack's: the master secret, then the client
            # random with its length
            h.where = "gnutls-packed-session (freed)"
        elif item.kind == "secret":
            other = [i for i in items if i.kind == "secret" and i.gen == item.gen
                     and i.direction != item.direction]
            if other and item.direction == "client" and h.at(64, len(item.data)) == other[0].data:
                h.where = "gnutls-key.tls13.ap_ckey"
            elif other and item.direction == "server" and h.at(-64, len(item.data)) == other[0].data:
                h.where = "gnutls-key.tls13.ap_skey"
    return hits


def pads(data):
    """HMAC keyed with data leaves data XOR ipad / opad in its buffers."""
    return [bytes(b ^ 0x36 for b in data), bytes(b ^ 0x5C for b in data)]


NONCES = 16


def nonce(iv, seq):
    """RFC 8446 5.3 / RFC 7905: the IV XOR the sequence number."""
    return iv[:4] + (int.from_bytes(iv[4:], "big") ^ seq).to_bytes(8, "big")


def scan(pid, items):
    regions = read_memory(pid)
    ours = our_contexts(regions, items)
    found = {}
    for it in items:
        if it.kind == "salt":
            continue
        hits = find_all(regions, it.data)
        if it.kind in ("secret", "hs-secret", "master"):
            for p in pads(it.data):
                for h in find_all(regions, p):
                    h.where = "HMAC-PAD"
                    hits.append(h)
        if it.kind in ("iv", "hs-iv") and len(it.data) == 12:
            # the nonces of the first records (IV XOR sequence number) give
            # the IV away as well: in a cipher context as its last nonce is
            # GnuTLS's business, on the stack is a leftover
            stack = [r for r in regions if r.name == "[stack]"]
            for seq in range(1, NONCES):
                for h in find_all(stack, nonce(it.data, seq)):
                    h.where = "STACK (nonce, sequence number %d)" % seq
                    hits.append(h)
        keys = [k for k in items if k.kind == "key" and it.key is not None and k.data == it.key]
        found[it.name] = classify(it, hits, items, ours,
                                  found.get(keys[0].name, []) if keys else [])
    return found


def table(title, items, found):
    lines = ["  -- %s" % title]
    for it in items:
        if it.kind == "salt":
            continue
        hits = found[it.name]
        lines.append("     %-22s %d  %s" % (it.name, len(hits), ", ".join(h.label() for h in hits)))
    return "\n".join(lines)


# ------------------------------------------------------------ the model

def check_model(title, items, found, current, soft=True):
    """current[d]: the current generation of direction d; soft: the
    user-space channel (else the kernel's, which leaves us no key).
    Returns the table; raises Fail with it when a copy is where none may
    be (the module docstring says where copies may be, and why)."""
    bad = []
    for it in items:
        if it.kind == "salt":
            continue
        hits = found[it.name]
        n = len(hits)
        where = {}
        for h in hits:
            where[h.where] = where.get(h.where, 0) + 1
        for w in [w for w in where if w.startswith("STACK")]:
            bad.append("%s: %d copies on the stack%s" % (it.name, where.pop(w), w[5:]))
        if it.kind in ("hs-secret", "hs-key", "hs-iv"):
            if n:
                bad.append("%s: %d copies, want none (handshake-time secrets are wiped)"
                           % (it.name, n))
            continue
        if it.kind == "master":
            if where.pop("gnutls-security-parameters", 0) != 1:
                bad.append("%s: not once in GnuTLS's security_parameters" % it.name)
            if where.pop("gnutls-packed-session (freed)", 0) > 1:
                bad.append("%s: in more than one packed session GnuTLS freed" % it.name)
            for w, c in sorted(where.items()):
                bad.append("%s: %d copies in %s, want none there" % (it.name, c, w or "unknown places"))
            continue
        if it.kind == "secret":
            if it.gen == current[it.direction]:
                if n != 1 or not hits[0].where.startswith("gnutls-key.tls13."):
                    bad.append("%s (current): %d copies, want exactly one, GnuTLS's ap_%skey"
                               % (it.name, n, it.direction[0]))
            elif n:
                bad.append("%s (old generation): %d copies, want none" % (it.name, n))
            continue
        age = current[it.direction] - it.gen
        max_rs = {0: 2, 1: 1}.get(age, 0)
        ours = 1 if (age == 0 and soft) else 0
        rs = where.pop("gnutls-record-state", 0)
        if rs > max_rs:
            bad.append("%s: in %d GnuTLS record states, want at most %d (%s generation)"
                       % (it.name, rs, max_rs, {0: "current", 1: "previous"}.get(age, "older")))
        if it.kind == "key":
            ctx = where.pop("gnutls-cipher-context", 0)
            mine = where.pop("ktlsctl-aead-context", 0)
            if ctx > rs:
                bad.append("%s: in %d cipher contexts besides ours, more than GnuTLS's %d "
                           "record states have" % (it.name, ctx, rs))
            if mine != ours:
                bad.append("%s: in %d AEAD contexts of our channel, want %d"
                           % (it.name, mine, ours))
        else:
            nonce = where.pop("gnutls-cipher-context-nonce", 0)
            mine = where.pop("ktlsctl-soft_key", 0)
            if nonce > rs:
                bad.append("%s: the last nonce of %d GnuTLS cipher contexts, more than its "
                           "%d record states have" % (it.name, nonce, rs))
            if mine != ours:
                bad.append("%s: in %d soft_key structs of our channel, want %d"
                           % (it.name, mine, ours))
        for w, c in sorted(where.items()):
            bad.append("%s: %d copies in %s, want none there" % (it.name, c, w or "unknown places"))
    t = table(title, items, found)
    if SHOW:
        print(t)
        sys.stdout.flush()
    if bad and SHOW == "report":
        print("     PROBLEMS:\n       " + "\n       ".join(bad))
    elif bad:
        raise Fail("secrets where they must not be:\n    " + "\n    ".join(bad) + "\n" + t)
    return t


# ------------------------------------------------------------ sessions

def kt_count(proc, text):
    return sum(1 for l in proc.stderr.splitlines() if l == "ktlsctl: " + text)


def wait_count(proc, text, n, timeout=20):
    if not proc.wait_until(lambda p: kt_count(p, text) >= n, timeout):
        raise Fail("no %d line(s) 'ktlsctl: %s'\n%s" % (n, text, proc.describe(3000)))


def line(tag, i):
    return ("%s-%d-%s\n" % (tag, i, os.urandom(6).hex())).encode()


def settle(s, updates):
    """After our KeyUpdate with update_requested: data both ways until the
    peer's KeyUpdate came (it sends it before its next record, which may
    be one it wrote before reading ours), then two records each way under
    the new keys, so that no cipher context's last nonce is the IV."""
    for i in range(10):
        if kt_count(s.k, "peer updated its keys") >= updates:
            break
        s.both_ways("ku%d-%d" % (updates, i), 1)
    wait_count(s.k, "peer updated its keys", updates)
    s.both_ways("ku%d" % updates)


def certs():
    """(CA, server certificate, server key), ECDSA."""
    c = suite.certs
    return c.ca, c.srv_ec[0], c.srv_ec[1]


def no_keylog_env():
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)     # ktlsctl itself logs nothing
    return env


def keylog_env(path):
    env = dict(os.environ)
    env["SSLKEYLOGFILE"] = path
    return env


class Session:
    """ktlsctl with a peer that logs its secrets, through a relay (.proxy)."""

    printed = ()

    def check_channel(self):
        if not self.k.wait_err(r"(connected to|accepted) .*, %s" % CHANNEL_NAME, 10):
            raise Fail("ktlsctl -v did not report the %s\n%s" % (CHANNEL_NAME, self.k.describe()))

    def stats(self):
        """ktlsctl stats PID (text and JSON) and tickets PID --json: the
        session reads its record counts, which on the kernel channel is a
        getsockopt(TLS_TX/TLS_RX) that returns the keys too.  Returns what
        they printed."""
        out = []
        for argv in (["stats", str(self.k.pid)], ["stats", str(self.k.pid), "--json"],
                     ["tickets", str(self.k.pid), "--json"]):
            r = subprocess.run([KTLSCTL] + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=scaled(20))
            if r.returncode != 0:
                raise Fail("ktlsctl %s exited %d: %s%s" % (
                    " ".join(argv), r.returncode, r.stdout.decode(errors="replace")[-300:],
                    r.stderr.decode(errors="replace")))
            out.append(r.stdout + r.stderr)
        self.printed += out
        return out


def check_not_printed(s, items):
    """No secret, key or IV in anything ktlsctl printed: its stdout carries
    only the peer's data (random text), its stderr the -v events and
    /commands output, and stats/tickets their reports; not raw, not in hex
    (either case), not in base64."""
    texts = [bytes(s.k.out), bytes(s.k.err)] + s.printed
    for it in items:
        if len(it.data) < 8:
            continue
        forms = (it.data, it.data.hex().encode(), it.data.hex().upper().encode(),
                 base64.b64encode(it.data)[:len(it.data) * 4 // 3])
        for t in texts:
            if any(f in t for f in forms):
                raise Fail("ktlsctl printed the %s (%s)" % (it.name, it.data.hex()))


class Connect(Session):
    """ktlsctl connect --commands -> proxy -> gnutls-serv --echo; key
    updates with /keyupdate request."""

    def __init__(self, version, cipher, serv=None, extra=(), port=0):
        """serv: (gnutls-serv, port, its key log) to reuse; extra: more
        ktlsctl arguments; port: the relay's."""
        ca, cert, key = certs()
        if serv is None:
            keylog = tmpfile("keylog")
            p, sport = start_gnutls_serv(cert, key, gnutls_priority(version, cipher),
                                         env=keylog_env(keylog))
            serv = (p, sport, keylog)
        self.serv, up, self.keylog = serv
        self.proxy = Relay(up, port=port, accept_timeout=60)
        self.k = ktlsctl("connect", "localhost:%d" % self.proxy.port, "--cafile", ca,
                         *CHANNEL_ARGS, "--tls" + version, "--cipher", cipher, "--commands",
                         "-v", *extra, env=no_keylog_env())

    def both_ways(self, tag, n=2):
        """n lines up and echoed back: n records each way."""
        for i in range(n):
            ln = line(tag, i)
            self.k.send(ln)
            if not self.k.wait_out_contains(ln, 20):
                raise Fail("no echo of %r\n%s" % (ln, self.k.describe()))

    def key_update(self, updates):
        self.k.send(b"/keyupdate request\n")
        settle(self, updates)

    def close(self, keep_serv=False):
        self.k.close_stdin()
        check_exit(self.k, 0, 20, "ktlsctl connect")
        if not keep_serv:
            self.serv.kill()


class Listen(Session):
    """gnutls-cli -> proxy -> ktlsctl listen; key updates through the
    control socket (ktlsctl keyupdate PID --request)."""

    def __init__(self, version, cipher):
        ca, cert, key = certs()
        self.k, port = ktlsctl_listen("--cert", cert, "--key", key, *CHANNEL_ARGS,
                                      "--tls" + version, "--cipher", cipher, "-v",
                                      env=no_keylog_env())
        self.proxy = Relay(port, accept_timeout=60)
        self.keylog = tmpfile("keylog")
        self.cli = Proc(gnutls_cli_argv(self.proxy.port, ca, tmpfile("gnutls-cli.log"),
                                        gnutls_priority(version, cipher)),
                        name="gnutls-cli", env=keylog_env(self.keylog))

    def both_ways(self, tag, n=2):
        for i in range(n):
            up, down = line(tag + "-up", i), line(tag + "-down", i)
            self.cli.send(up)
            if not self.k.wait_out_contains(up, 20):
                raise Fail("ktlsctl did not get %r\n%s\n%s"
                           % (up, self.k.describe(), self.cli.describe()))
            self.k.send(down)
            if not self.cli.wait_out_contains(down, 20):
                raise Fail("gnutls-cli did not get %r\n%s\n%s"
                           % (down, self.k.describe(), self.cli.describe()))

    def key_update(self, updates):
        r = subprocess.run([KTLSCTL, "keyupdate", str(self.k.pid), "--request"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(20))
        if r.returncode != 0:
            raise Fail("ktlsctl keyupdate %d --request exited %d: %s"
                       % (self.k.pid, r.returncode, r.stderr.decode(errors="replace")))
        settle(self, updates)

    def close(self):
        self.cli.close_stdin()
        wait_count(self.k, "peer sent close_notify", 1)
        self.k.close_stdin()
        check_exit(self.k, 0, 20, "ktlsctl listen")
        self.cli.wait(20)


def run(kind, version, cipher, updates=2):
    """A session, scanned after the handover and after each key update."""
    kernel = KERNEL
    s = (Connect if kind == "connect" else Listen)(version, cipher)
    s.printed = []
    s.both_ways("handover")
    s.check_channel()
    s.stats()
    role = "client" if kind == "connect" else "server"
    peer = "server" if role == "client" else "client"
    channel = CHANNEL
    keylog = read_keylog(s.keylog)
    if version == "1.2":
        items = tls12_items(keylog, cipher, s.proxy.hello_random("c2s", 1),
                            s.proxy.hello_random("s2c", 2))
        check_model("TLS1.2 %s %s, %s channel, after the handover" % (cipher, kind, channel),
                    items, scan(s.k.pid, items), {"client": 0, "server": 0}, soft=not kernel)
    else:
        gen = {"client": 0, "server": 0}
        items = tls13_items(keylog, cipher, {"client": updates, "server": updates})
        check_model("TLS1.3 %s %s, %s channel, after the handover" % (cipher, kind, channel),
                    items, scan(s.k.pid, items), gen, soft=not kernel)
        for u in range(1, updates + 1):
            s.key_update(u)
            s.stats()
            gen = {role: u, peer: u}
            check_model("TLS1.3 %s %s, %s channel, after key update %d (ours with "
                        "update_requested, then the peer's)" % (cipher, kind, channel, u),
                        items, scan(s.k.pid, items), gen, soft=not kernel)
    if kind == "connect":
        s.k.send(b"/stats\n/tickets\n")
        s.both_ways("after-commands", 1)
    s.close()
    check_not_printed(s, items)


for _kind in ("connect", "listen"):
    for _v, _c in (("1.3", "AES-128-GCM"), ("1.3", "AES-256-GCM"), ("1.3", "CHACHA20-POLY1305"),
                   ("1.3", "AES-128-CCM"), ("1.2", "AES-128-GCM"), ("1.2", "CHACHA20-POLY1305")):
        suite.add("%s TLS%s %s: keys, IVs and secrets in memory" % (_kind, _v, _c),
                  lambda k=_kind, v=_v, c=_c: run(k, v, c), timeout=90, when=USER_SPACE_ONLY)

@suite.case("connect TLS1.3 resumed (--session-in): early secrets gone too", timeout=90,
            when=USER_SPACE_ONLY)
def _resumed():
    """A resumption offers a PSK, which makes GnuTLS derive the early
    traffic and early exporter secrets; they must go with the rest."""
    sess = tmpfile("session")
    first = Connect("1.3", "AES-128-GCM", extra=["--session-out", sess])
    first.both_ways("first")
    wait_count(first.k, "session ticket received (lifetime 21600s)", 1)
    first.close(keep_serv=True)
    s = Connect("1.3", "AES-128-GCM", serv=(first.serv, first.proxy.up, first.keylog),
                extra=["--session-in", sess], port=first.proxy.port)
    s.printed = []
    s.both_ways("resumed")
    if not s.k.wait_err(r"session resumed from", 5):
        raise Fail("the second session was not resumed\n%s" % s.k.describe())
    keylog = read_keylog(s.keylog)      # gnutls-serv appends: the last lines win
    items = tls13_items(keylog, "AES-128-GCM", {"client": 1, "server": 1})
    if not [it for it in items if it.name.startswith("client_early")]:
        raise Fail("no CLIENT_EARLY_TRAFFIC_SECRET in the server's key log: %r" % sorted(keylog))
    check_model("TLS1.3 AES-128-GCM connect, resumed, after the handover", items,
                scan(s.k.pid, items), {"client": 0, "server": 0})
    s.key_update(1)
    check_model("TLS1.3 AES-128-GCM connect, resumed, after a key update", items,
                scan(s.k.pid, items), {"client": 1, "server": 1})
    s.close()
    check_not_printed(s, items)


@suite.case("SSLKEYLOGFILE for ktlsctl: GnuTLS still logs every secret (the wipe chains to it)",
            timeout=60)
def _own_keylog():
    """core/handshake.c puts its own key log callback in front of GnuTLS's,
    which writes SSLKEYLOGFILE: both ends must log the same secrets."""
    ca, cert, key = certs()
    theirs, ours = tmpfile("peer-keylog"), tmpfile("ktlsctl-keylog")
    serv, port = start_gnutls_serv(cert, key, gnutls_priority("1.3"), env=keylog_env(theirs))
    k = ktlsctl("connect", "localhost:%d" % port, "--cafile", ca, *CHANNEL_ARGS,
                env=keylog_env(ours), stdin=b"hello\n")
    check_exit(k, 0, 30, "ktlsctl connect")
    serv.kill()
    want, got = read_keylog(theirs), read_keylog(ours)
    labels = ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
              "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET")
    for label in labels:
        if label not in got or got[label] != want.get(label):
            raise Fail("ktlsctl's SSLKEYLOGFILE has %s %s, gnutls-serv's %s"
                       % (label, got.get(label, (b"", b"(none)"))[1].hex(),
                          want.get(label, (b"", b"(none)"))[1].hex()))


# The kernel channel (the VM tier runs these in guests whose kernels have
# kTLS): our process must hold no key, IV or secret of its own, only
# GnuTLS's state.  A kernel that cannot rekey (Linux < 6.14) gets no key
# update.
for _kind, _v, _c in (("connect", "1.3", "AES-128-GCM"), ("listen", "1.3", "CHACHA20-POLY1305"),
                      ("connect", "1.2", "AES-256-GCM"), ("listen", "1.2", "AES-128-CCM")):
    suite.add("kernel channel: %s TLS%s %s: keys, IVs and secrets in memory%s"
              % (_kind, _v, _c, ", across key updates where the kernel can rekey" if _v == "1.3"
                 else ""),
              lambda k=_kind, v=_v, c=_c: run(k, v, c, updates=2 if can_rekey() else 0),
              timeout=120, when=KERNEL_ONLY)


if __name__ == "__main__":
    sys.exit(suite.main())
