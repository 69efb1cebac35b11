#!/usr/bin/env python3
"""tests/fuzz/make-seeds.py: write the seed corpora in tests/fuzz/corpus/.

The seeds are committed; this script says how they were made and makes
them again (python3 tests/fuzz/make-seeds.py).  Each is a small, valid or
nearly valid input of its target, so that the fuzzer starts past the
format's first checks.  No secrets: the session-file seeds carry dummy
data, the record programs are sealed at run time with keys the harnesses
make up.  Formats: the comment at the top of each fuzz_*.c and
fuzz_seal.h (record programs)."""

import base64
import hashlib
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- record programs (fuzz_seal.h) ----------------------------------------

SEALED, INNER, FILL, RAW = 0, 1, 2, 3


def op(rtype, mode, payload=b'', length=None):
    n = len(payload) if length is None else length
    return bytes([rtype, (mode << 6) | (n >> 8), n & 0xff]) + payload


def nst(tlen, fill, ext=b''):
    """A TLS 1.3 NewSessionTicket, header included."""
    body = (b'\x00\x00\x0e\x10' + b'\x12\x34\x56\x78' + b'\x01\x2a' +
            tlen.to_bytes(2, 'big') + bytes([fill]) * tlen +
            len(ext).to_bytes(2, 'big') + ext)
    return bytes([4]) + len(body).to_bytes(3, 'big') + body


def key_update(requested):
    return bytes([24, 0, 0, 1, requested])


EARLY_DATA = b'\x00\x2a\x00\x04\x00\x00\x40\x00'

# fuzz_conn: byte 0 = config (bits 0-2 version/cipher, 3 server victim,
# 4-5 read size, 6 no_rekey)
write('fuzz_conn', 'tls13-client-mix',
      bytes([0x24]) + op(22, SEALED, nst(32, 1)) + op(23, SEALED, b'hello') +
      op(22, SEALED, key_update(0)) + op(23, SEALED, b'after') +
      op(22, SEALED, key_update(1)) + op(23, SEALED, b'x') +
      op(21, SEALED, b'\x01\x5a') + op(21, SEALED, b'\x01\x00'))
write('fuzz_conn', 'tls13-server-keyupdate-requested',
      bytes([0x2c]) + op(22, SEALED, key_update(1)) + op(23, SEALED, b'data'))
write('fuzz_conn', 'tls12-hello-request',
      bytes([0x20]) + op(22, SEALED, b'\x00\x00\x00\x00') + op(23, SEALED, b'data') +
      op(21, SEALED, b'\x01\x64'))
t = nst(64, 2)
write('fuzz_conn', 'tls13-split-ticket',
      bytes([0x26]) + op(22, SEALED, t[:30]) + op(22, SEALED, t[30:]) + op(23, SEALED, b'ok'))
write('fuzz_conn', 'tls13-two-tickets-1-byte-reads',
      bytes([0x05]) + op(22, SEALED, nst(10, 3) + nst(20, 4, EARLY_DATA)))
write('fuzz_conn', 'tls13-odd-records',
      bytes([0x37]) + op(0x42, SEALED, b'zz') + op(22, SEALED, b'') +
      op(21, SEALED, b'\x02\x28\x00'))
write('fuzz_conn', 'tls13-16k-handshake', bytes([0x34]) + op(22, FILL, b'\x04', 16320))
write('fuzz_conn', 'tls13-padding',
      bytes([0x14]) + op(23, INNER, b'pad\x17\x00\x00\x00') + op(23, INNER, bytes(5)))
write('fuzz_conn', 'tls12-raw-alert', bytes([0x01]) + op(0, RAW, bytes([0x15, 3, 3, 0, 2, 1, 0])))
write('fuzz_conn', 'tls13-keyupdate-long', bytes([0x24]) + op(22, SEALED, bytes([24, 0, 0, 2, 0, 0])))
write('fuzz_conn', 'tls13-keyupdate-value-2', bytes([0x24]) + op(22, SEALED, bytes([24, 0, 0, 1, 2])))
write('fuzz_conn', 'tls13-keyupdate-glued', bytes([0x24]) + op(22, SEALED, key_update(0) + nst(4, 5)))


def action(what):
    """fuzz_conn: a raw op of length 0 is the victim's own action."""
    return op(what, RAW)


write('fuzz_conn', 'tls13-actions',
      bytes([0x2c]) + action(0) + action(1) + op(22, SEALED, key_update(1)) + action(2) +
      action(5) + action(4) + op(23, SEALED, b'z') + action(3) + op(22, SEALED, key_update(1)) +
      op(21, SEALED, b'\x01\x00'))
write('fuzz_conn', 'tls12-actions',
      bytes([0x22]) + action(0) + action(1) + action(5) + action(3) + op(23, SEALED, b'late'))
write('fuzz_conn', 'tls13-no-rekey-keyupdate',
      bytes([0x44]) + op(22, SEALED, key_update(0)) + op(23, SEALED, b'y'))

# fuzz_record: byte 0 = config (bits 0-2 version/cipher, 3 no_rekey,
# 4 sequence near 2^64, 5 EOF at the end), byte 1 = read sizes
write('fuzz_record', 'tls13-keyupdate',
      bytes([0x04, 0x00]) + op(23, SEALED, b'hello') + op(22, SEALED, key_update(0)) +
      op(23, SEALED, b'after'))
write('fuzz_record', 'tls12-data-alert-eof',
      bytes([0x20, 0x1b]) + op(23, SEALED, b'data') + op(21, SEALED, b'\x01\x00'))
write('fuzz_record', 'tls13-small-reads',
      bytes([0x06, 0x08]) + op(22, SEALED, bytes([4, 0, 0, 12]) + bytes(12)) +
      op(23, SEALED, b'xyz'))
write('fuzz_record', 'raw-header', bytes([0x24, 0x00]) + op(0, RAW, bytes([0x17, 3, 3, 0x40, 0x20])))
write('fuzz_record', 'tls12-16k-and-over',
      bytes([0x01, 0x2d]) + op(23, FILL, b'A', 16320) + op(22, FILL, b'B', 16321))
write('fuzz_record', 'tls13-all-padding', bytes([0x05, 0x00]) + op(23, INNER, bytes(8)))
write('fuzz_record', 'sequence-wrap',
      bytes([0x13, 0x24]) + b''.join(op(23, SEALED, bytes([0x31 + i])) for i in range(4)))
write('fuzz_record', 'tls13-merged-data-then-control',
      bytes([0x0e, 0x1c]) + op(23, SEALED, b'a' * 40) + op(23, SEALED, b'') +
      op(23, SEALED, b'b' * 40) + op(21, SEALED, b'\x01\x00') + op(23, SEALED, b'c'))

write('fuzz_record', 'batch-tls13-merge',
      bytes([0x44, 0x3f]) + op(23, SEALED, b'd1') + op(23, SEALED, b'd2') +
      op(21, SEALED, b'\x01\x00') + op(23, SEALED, b'd3') + op(22, SEALED, key_update(1)) +
      op(23, SEALED, b'd4') + op(23, FILL, b'E', 20000 - 64))
write('fuzz_record', 'batch-tls12-small-reads-eof',
      bytes([0x61, 0x0a]) + op(23, SEALED, b'abc') + op(22, SEALED, b'hs') +
      op(23, FILL, b'F', 300) + op(21, SEALED, b'\x02\x0a'))

# ---- fuzz_addr: byte 0 bit 0 = allow an empty host ------------------------

for i, (flag, arg) in enumerate([(0, b'example.com:443'), (0, b'[::1]:8443'), (1, b':8443'),
                                  (1, b'[fe80::1%eth0]:0'), (0, b'127.0.0.1:https'),
                                  (0, b'host:99999')]):
    write('fuzz_addr', 'arg%d' % i, bytes([flag]) + arg)

# ---- fuzz_commands: the line ------------------------------------------------

for i, line in enumerate([b'hello', b'/keyupdate request', b'/save /tmp/x  \r', b'//literal',
                          b'/stats extra', b'/', b'/quit']):
    write('fuzz_commands', 'line%d' % i, line)

# ---- fuzz_ticket: a NewSessionTicket message --------------------------------

write('fuzz_ticket', 'plain', nst(16, 1))
write('fuzz_ticket', 'early-data', nst(8, 2, EARLY_DATA))
write('fuzz_ticket', 'unknown-extension', nst(8, 3, b'\xfa\xfa\x00\x00' + EARLY_DATA))
write('fuzz_ticket', 'duplicate-extension', nst(8, 3, EARLY_DATA + EARLY_DATA))
write('fuzz_ticket', 'truncated', nst(16, 1)[:20])

# ---- fuzz_opts: byte 0 = argv[1] (0 none, 1 connect, 2 listen, 3 selftest),
# then NUL-separated arguments ----------------------------------------------

for i, (cmd, args) in enumerate([
        (1, [b'example.com:443']),
        (1, [b'--tls1.3', b'--cipher', b'AES-128-GCM', b'--alpn=h2', b'--sni', b'x.example',
             b'host:443']),
        (2, [b':8443', b'--cert', b'c.pem', b'--key', b'k.pem', b'-qk', b'--echo']),
        (3, [b'-v']),
        (0, [b'--version']),
        (1, [b'--key-update-after', b'100', b'--handshake-timeout=2.5', b'--ktls', b'off',
             b'[::1]:443']),
        (1, [b'--session-in', b'f', b'--session-out', b'g', b'--priority', b'NORMAL', b'h:1'])]):
    write('fuzz_opts', 'argv%d' % i, bytes([cmd]) + b'\0'.join(args))


# ---- fuzz_sessfile: the file (peer example.com:443) -------------------------

def sessfile(peer, data, when=b'2025-06-01T10:00:00Z'):
    return (b'ktlsctl-session 1\npeer ' + peer + b'\nsaved ' + when + b'\nsha256 ' +
            hashlib.sha256(data).hexdigest().encode() + b'\ndata ' +
            base64.b64encode(data) + b'\n')


DUMMY = b'not a real session: fuzz seed ' * 3
write('fuzz_sessfile', 'valid', sessfile(b'example.com:443', DUMMY))
write('fuzz_sessfile', 'other-peer', sessfile(b'other.example:443', DUMMY))
write('fuzz_sessfile', 'one-byte', sessfile(b'example.com:443', b'x'))
write('fuzz_sessfile', 'bad-checksum',
      sessfile(b'example.com:443', DUMMY).replace(b'sha256 ', b'sha256 0', 1)[:-1])
write('fuzz_sessfile', 'other-format', b'ktlsctl-session 0\n')
write('fuzz_sessfile', 'truncated', sessfile(b'example.com:443', DUMMY)[:80])


# ---- fuzz_tls_stat: byte 0 = where to cut (bits 1-7) and file read (bit 0),
# then /proc/net/tls_stat as kernels print it ("%-32s\t%lu\n") ------------

TLS_STAT_5_5 = ['TlsCurrTxSw', 'TlsCurrRxSw', 'TlsCurrTxDevice', 'TlsCurrRxDevice', 'TlsTxSw',
                'TlsRxSw', 'TlsTxDevice', 'TlsRxDevice', 'TlsDecryptError',
                'TlsRxDeviceResync']
TLS_STAT_6_0 = TLS_STAT_5_5 + ['TlsDecryptRetry', 'TlsRxNoPadViolation']
TLS_STAT_6_14 = TLS_STAT_6_0 + ['TlsRxRekeyOk', 'TlsRxRekeyError', 'TlsTxRekeyOk',
                                'TlsTxRekeyError', 'TlsRxRekeyReceived']
# counters of the 2026 hardware-rekey series, not in a release yet
TLS_STAT_NEXT = TLS_STAT_6_14 + ['TlsRxRekeyFallback', 'TlsRxRekeyAborted', 'TlsCurrTxRekey',
                                 'TlsRxRekeyInProgress']


def tls_stat(names, values):
    return b''.join(b'%-32s\t%d\n' % (n.encode(), v) for n, v in zip(names, values))


write('fuzz_tls_stat', 'linux-5.5-idle', b'\x81' + tls_stat(TLS_STAT_5_5, [0] * 10))
write('fuzz_tls_stat', 'linux-6.1-busy',
      b'\x40' + tls_stat(TLS_STAT_6_0, [2, 2, 0, 0, 17, 16, 0, 0, 3, 0, 5, 1]))
write('fuzz_tls_stat', 'linux-6.14-rekey',
      b'\xc1' + tls_stat(TLS_STAT_6_14, [1, 1, 0, 0, 40, 40, 0, 0, 0, 0, 0, 0, 12, 1, 13, 0, 12]))
write('fuzz_tls_stat', 'linux-next-hw-rekey',
      b'\x21' + tls_stat(TLS_STAT_NEXT, [i * 7 for i in range(len(TLS_STAT_NEXT))]))
write('fuzz_tls_stat', 'odd-lines',
      b'\x11' + b'TlsTxSw 1\r\n\n   \t\njunk here\nTlsMax\t18446744073709551615\n'
      b'TlsOverflow\t18446744073709551616\nTlsTxSw\t2\n  TlsLead\t3  \nTlsNoNewline\t4')
write('fuzz_tls_stat', 'empty', b'\x01')


# ---- fuzz_sockdiag: byte 0 bit 0 = all_tcp, then buffers (2-byte big-endian
# length + bytes) of SOCK_DIAG_BY_FAMILY replies as kernels send them ------

import socket
import struct

NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, SOCK_DIAG_BY_FAMILY = 1, 2, 3, 20
NLM_F_MULTI, NLM_F_DUMP_INTR = 0x2, 0x10
INET_DIAG_INFO, INET_DIAG_ULP_INFO = 2, 19
ULP_NAME, ULP_TLS = 1, 2
TLS_VERSION, TLS_CIPHER, TLS_TXCONF, TLS_RXCONF, TLS_ZC_RO_TX, TLS_RX_NO_PAD, \
    TLS_TX_MAX_PAYLOAD_LEN = range(1, 8)
NLA_F_NESTED = 0x8000


def pad4(b):
    return b + bytes(-len(b) % 4)


def nla(atype, payload):
    return pad4(struct.pack('=HH', 4 + len(payload), atype) + payload)


def nlmsg(mtype, payload, flags=NLM_F_MULTI, seq=1):
    return pad4(struct.pack('=IHHII', 16 + len(payload), mtype, flags, seq, 0) + payload)


def diag_msg(family, src, sport, dst, dport, state=1, uid=1000, inode=4242):
    a = socket.inet_pton(family, src).ljust(16, b'\0')
    b = socket.inet_pton(family, dst).ljust(16, b'\0')
    return (struct.pack('=BBBB', family, state, 0, 0) + struct.pack('>HH', sport, dport) +
            a + b + struct.pack('=I', 0) + struct.pack('=II', 0x1234, 0) +
            struct.pack('=IIIII', 0, 0, 0, uid, inode))


def tls_info(version=None, cipher=None, tx=1, rx=1, zc=False, nopad=False, max_payload=None):
    attrs = b''
    if version is not None:
        attrs += nla(TLS_VERSION, struct.pack('=H', version))
    if cipher is not None:
        attrs += nla(TLS_CIPHER, struct.pack('=H', cipher))
    attrs += nla(TLS_TXCONF, struct.pack('=H', tx)) + nla(TLS_RXCONF, struct.pack('=H', rx))
    if zc:
        attrs += nla(TLS_ZC_RO_TX, b'')
    if nopad:
        attrs += nla(TLS_RX_NO_PAD, b'')
    if max_payload is not None:
        attrs += nla(TLS_TX_MAX_PAYLOAD_LEN, struct.pack('=H', max_payload))
    return attrs


def sock(family, src, sport, dst, dport, ulp=None, tls=None, inode=4242, state=1):
    attrs = nla(INET_DIAG_INFO, bytes(232))   # struct tcp_info, zeroed
    if ulp is not None:
        u = nla(ULP_NAME, ulp + b'\0')
        if tls is not None:
            u += nla(ULP_TLS | NLA_F_NESTED, tls)
        attrs += nla(INET_DIAG_ULP_INFO | NLA_F_NESTED, u)
    return nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(family, src, sport, dst, dport, state,
                                                inode=inode) + attrs)


def done(err=0, flags=NLM_F_MULTI):
    return nlmsg(NLMSG_DONE, struct.pack('=i', err), flags)


def nlerror(err):
    # the error code, then the request's header
    return nlmsg(NLMSG_ERROR, struct.pack('=i', err) + struct.pack('=IHHII', 72, 20, 0x301, 1, 0), 0)


def buffers(*bufs):
    return b''.join(struct.pack('>H', len(b)) + b for b in bufs)


V4, V6 = socket.AF_INET, socket.AF_INET6
# Linux 6.1 as root: TLS 1.3 AES-128-GCM both ways in software
write('fuzz_sockdiag', 'linux-6.1-root-ktls',
      b'\x00' + buffers(sock(V4, '127.0.0.1', 8443, '127.0.0.1', 40000, b'tls',
                             tls_info(0x0304, 51, 2, 2)) +
                        sock(V4, '10.0.0.1', 22, '10.0.0.9', 51000) + done()))
# Linux 6.1 unprivileged: no ULP attribute at all
write('fuzz_sockdiag', 'linux-6.1-user-withheld',
      b'\x01' + buffers(sock(V4, '127.0.0.1', 8443, '127.0.0.1', 40000) +
                        sock(V6, '::1', 443, '::1', 50000, state=10) + done()))
# Linux 7.2: TX_MAX_PAYLOAD_LEN, RX_NO_PAD, a ULP socket without keys,
# IPv6 in a second dump, interrupted
write('fuzz_sockdiag', 'linux-7.2-two-families',
      b'\x00' + buffers(sock(V4, '192.0.2.1', 443, '198.51.100.7', 61000, b'tls',
                             tls_info(0x0303, 52, 2, 2, nopad=True, max_payload=1000)) +
                        sock(V4, '127.0.0.1', 1, '127.0.0.1', 2, b'tls', tls_info(), inode=7),
                        sock(V6, '2001:db8::1', 8443, '2001:db8::2', 1234, b'tls',
                             tls_info(0x0304, 54, 3, 2, zc=True, max_payload=16384)) +
                        done(flags=NLM_F_MULTI | NLM_F_DUMP_INTR)))
# every cipher the kernel knows and two it does not; mptcp's ULP
write('fuzz_sockdiag', 'ciphers-and-other-ulps',
      b'\x01' + buffers(b''.join(sock(V4, '127.0.0.1', 1000 + c, '127.0.0.1', 2000, b'tls',
                                      tls_info(0x0304 if c != 57 else 0x0303, c, 4, 9))
                                 for c in range(50, 60)) +
                        sock(V4, '127.0.0.1', 5, '127.0.0.1', 6, b'mptcp') + done()))
# no inet_diag handler for the family (tcp_diag missing): NLMSG_ERROR -ENOENT
write('fuzz_sockdiag', 'no-handler', b'\x00' + buffers(nlerror(-2)))
write('fuzz_sockdiag', 'ack-noop-done',
      b'\x00' + buffers(nlerror(0) + nlmsg(NLMSG_NOOP, b''), done(), sock(V4, '1.2.3.4', 1, '5.6.7.8', 2, b'tls', tls_info())))
write('fuzz_sockdiag', 'unpadded-last-attribute',
      b'\x00' + buffers(nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(V4, '127.0.0.1', 1, '127.0.0.1', 2) +
                               nla(INET_DIAG_ULP_INFO, nla(ULP_NAME, b'tls\0') +
                                   nla(ULP_TLS, struct.pack('=HHH', 6, TLS_VERSION, 0x0304))[:6]))))


# ---- fuzz_procfs: byte 0 = mode (0 status, 1 tcp_available_ulp,
# 2 modules list, 3 fake /proc tree for the owner lookup) -------------------

STATUS = (b'Name:\tktlsctl\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n'
          b'Pid:\t4242\nPPid:\t4200\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n'
          b'Gid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t24 27 1000 \n'
          b'VmPeak:\t   12928 kB\nThreads:\t1\nSigQ:\t0/96365\n'
          b'SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n'
          b'CapInh:\t0000000000000000\nCapPrm:\t%s\nCapEff:\t%s\n'
          b'CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n'
          b'Seccomp:\t0\nCpus_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t12\n')
write('fuzz_procfs', 'status-user', b'\x00' + STATUS % (b'0000000000000000', b'0000000000000000'))
write('fuzz_procfs', 'status-root', b'\x00' + STATUS % (b'000001ffffffffff', b'000001ffffffffff'))
write('fuzz_procfs', 'status-net-admin-only',
      b'\x00' + STATUS % (b'0000000000001000', b'0000000000001000'))
write('fuzz_procfs', 'status-no-capeff', b'\x00' + b'Name:\tx\nPid:\t1\n')
write('fuzz_procfs', 'ulp-none', b'\x01')
write('fuzz_procfs', 'ulp-mptcp', b'\x01mptcp')
write('fuzz_procfs', 'ulp-tls', b'\x01espintcp mptcp tls')
write('fuzz_procfs', 'ulp-tls-first', b'\x01tls\tmptcp')
write('fuzz_procfs', 'modules-builtin',
      b'\x02kernel/net/ipv4/tcp_cubic.ko\nkernel/net/tls/tls.ko\nkernel/net/unix/unix.ko\n')
write('fuzz_procfs', 'modules-dep',
      b'\x02kernel/net/ipv4/tcp_diag.ko.xz: kernel/net/ipv4/inet_diag.ko.xz\n'
      b'kernel/net/tls/tls.ko.xz:\nkernel/net/sched/sch_fq.ko.xz:\n')
write('fuzz_procfs', 'modules-none', b'\x02kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz\n')


def owner_op(entry, kind, arg=b''):
    return bytes([entry, kind, len(arg)]) + arg


# entries: 0 "1", 1 "2", 2 "10", 3 "42", 4 "300", 5 "4242", 6 "65535",
# 7 "4194304", 8 "self", 9 "0", 10 "01", 11 "1a"
write('fuzz_procfs', 'owners-one-socket',
      b'\x03' + bytes([1, 7]) + owner_op(5, 2, b'ktlsctl\n') + owner_op(5, 0, b'/dev/null') +
      owner_op(5, 0, b'socket:[7]') + owner_op(5, 0, b'anon_inode:[eventfd]'))
write('fuzz_procfs', 'owners-shared-and-dup',
      b'\x03' + bytes([4, 7, 9, 7, 0]) + owner_op(3, 2, b'nginx\n') + owner_op(3, 1, bytes(0)) +
      owner_op(3, 1, b'\x01') + owner_op(4, 2, b'nginx: worker\n') + owner_op(4, 1, b'\x00') +
      owner_op(6, 1, b'\x01') + owner_op(6, 3) + owner_op(8, 1, b'\x00') +
      owner_op(10, 1, b'\x00') + owner_op(11, 1, b'\x00'))
write('fuzz_procfs', 'owners-odd-links',
      b'\x03' + bytes([2, 5, 255]) + owner_op(1, 0, b'socket:[05]') +
      owner_op(1, 0, b'socket:[5') + owner_op(2, 0, b'socket:[4294967295]') +
      owner_op(2, 0, b'socket:[4294967301]') + owner_op(2, 2, b'\x1b[31mred\x07\n'))


# ---- fuzz_ctl_client: byte 0 = request (bit 0: TICKETS) and a signal
# mid-answer (bit 1), then what a session answers (core/ctl.h: the OK line
# and one line of JSON, core/diag/session_view.h) ------------------------------

def stats_doc(version='TLS1.3', cipher='AES-256-GCM', suite='TLS_AES_256_GCM_SHA384',
              limit=16777216, rekey=16515072, tx=(2, 2, 11, 0), rx=(3, 3, 20, 0)):
    s = {'pid': 4242, 'role': 'client', 'peer': '127.0.0.1:8443', 'channel': 'kernel',
         'version': version, 'cipher': cipher, 'suite': suite, 'resumed': False}
    for d, (cur, total, nbytes, ku) in (('tx', tx), ('rx', rx)):
        used = '%.4f' % (100.0 * cur / limit if limit else 0.0)
        s[d] = {'records_key': cur, 'records': total, 'bytes': nbytes, 'key_updates': ku,
                'limit': limit, 'limit_used': used, 'record_size': 16384}
        if d == 'tx':
            s[d]['record_size_by'] = 'records'
        else:
            s[d].update(record_size_exact=True, no_pad=False)
    if rekey is not None:
        s['rekey_point'] = rekey
        s['at_rekey_point'] = 'update' if version == 'TLS1.3' else 'close'
    s.update(tickets=2, uptime=17)
    return s


def tickets_doc(n):
    t = [{'arrived': 1750000000, 'lifetime': 7200, 'age_add': 305419896, 'nonce_len': 1,
          'length': 181, 'sha256': '0011223344556677', 'in_use': i == n - 1} for i in range(n)]
    if n:
        t[0]['max_early_data'] = 16384
    return {'count': n, 'tickets': t}


def answer(doc):
    """The OK line and the document on one line; limit_used keeps its 4
    decimals, as a session writes it."""
    j = json.dumps(doc, separators=(',', ':'))
    j = re.sub(r'"limit_used":"([0-9.]+)"', r'"limit_used":\1', j)
    return OK + j.encode() + b'\n'


OK = b'KTLSCTL/2 OK\n'
write('fuzz_ctl_client', 'stats-tls13', b'\x00' + answer(stats_doc()))
write('fuzz_ctl_client', 'stats-tls12-chacha',
      b'\x00' + answer(stats_doc('TLS1.2', 'CHACHA20-POLY1305',
                                 'TLS_ECDHE_RSA_CHACHA20_POLY1305_SHA256', 0, None)))
write('fuzz_ctl_client', 'stats-signal-mid-answer', b'\x02' + answer(stats_doc()))
write('fuzz_ctl_client', 'tickets-two', b'\x01' + answer(tickets_doc(2)))
write('fuzz_ctl_client', 'tickets-none', b'\x01' + answer(tickets_doc(0)))
write('fuzz_ctl_client', 'keyupdate-ok', b'\x00' + OK + b'{}\n')
write('fuzz_ctl_client', 'err-tls12',
      b'\x00KTLSCTL/2 ERR key updates are not in TLS 1.2 (only TLS 1.3 can change keys)\n')
write('fuzz_ctl_client', 'err-other-version',
      b'\x00KTLSCTL/2 ERR unsupported protocol version (this session speaks KTLSCTL/2)\n')
# a session of an older ktlsctl, answering this one's request
write('fuzz_ctl_client', 'old-session-v1',
      b'\x00KTLSCTL/1 ERR unsupported protocol version (this session speaks KTLSCTL/1)\n')
write('fuzz_ctl_client', 'incomplete', b'\x00' + answer(stats_doc())[:100])
write('fuzz_ctl_client', 'incomplete-ok-line', b'\x00KTLSCTL/2 O')
write('fuzz_ctl_client', 'repeated-member', b'\x00' + OK + b'{"pid":1,"tx":{"bytes":1,"bytes":2}}\n')
write('fuzz_ctl_client', 'escapes',
      b'\x00' + OK + b'{"pid":4242,"role":"c\\r\\n\\u0007\\u00e9\\ud83d\\ude00\xc3\xa9","peer":"\\"\\\\\\/"}\n')
write('fuzz_ctl_client', 'not-ktlsctl', b'\x00HTTP/1.1 400 Bad Request\r\n\r\n')
write('fuzz_ctl_client', 'empty', b'\x00')


# ---- fuzz_ctl_server: byte 0 = the session (0 TLS 1.3 client, 1 TLS 1.2
# server, 2 TLS 1.3 ChaCha20 server, 3 TLS 1.3 CCM client), then ops: bits
# 0-2 what, bits 3-7 which client --------------------------------------------

CONNECT, SEND, CANNED, SHUT, CLOSE, SERVE, READ, LONG = range(8)
C_STATS, C_TICKETS, C_KU, C_KU_REQ, C_STATS_CRLF, C_V1, C_HALF1, C_HALF2 = range(8)


def cop(what, client=0, *args):
    return bytes([what | client << 3]) + bytes(args)


def csend(client, data):
    return cop(SEND, client, len(data)) + data


def ask(client, canned):
    return cop(CONNECT, client) + cop(CANNED, client, canned) + cop(SERVE) + cop(READ, client)


for cfg in range(4):
    write('fuzz_ctl_server', 'requests-session%d' % cfg,
          bytes([cfg]) + ask(0, C_STATS) + ask(1, C_TICKETS) + ask(2, C_KU) + ask(3, C_KU_REQ) +
          ask(4, C_STATS_CRLF) + cop(SERVE) + ask(0, C_STATS))
write('fuzz_ctl_server', 'split-request',
      b'\x00' + cop(CONNECT, 5) + cop(CANNED, 5, C_HALF1) + cop(SERVE) +
      cop(CANNED, 5, C_HALF2) + cop(SERVE) + cop(READ, 5))
write('fuzz_ctl_server', 'bad-requests',
      b'\x01' + ask(0, C_V1) + cop(CONNECT, 1) + csend(1, b'GET / HTTP/1.0\r\n') +
      cop(CONNECT, 2) + csend(2, b'KTLSCTL/2 STATS please\n') +
      cop(CONNECT, 3) + csend(3, b'KTLSCTL/2 stats\n') + cop(CONNECT, 4) + csend(4, b'\n') +
      cop(SERVE) + cop(READ, 1) + cop(READ, 2))
write('fuzz_ctl_server', 'too-long',
      b'\x00' + cop(CONNECT, 0) + cop(LONG, 0, 63) + cop(SERVE) + cop(LONG, 0, 1) + cop(SERVE) +
      cop(CONNECT, 1) + cop(LONG, 1, 63) + csend(1, b'AAA\n') + cop(SERVE) +
      cop(CONNECT, 2) + cop(LONG, 2, 200) + csend(2, b'\n'))
write('fuzz_ctl_server', 'two-requests-one-connection',
      b'\x00' + cop(CONNECT, 0) + csend(0, b'KTLSCTL/2 TICKETS\nKTLSCTL/2 STATS\n') +
      cop(SERVE) + cop(CANNED, 0, C_KU))
write('fuzz_ctl_server', 'half-closed',
      b'\x00' + cop(CONNECT, 0) + cop(CANNED, 0, C_HALF1) + cop(SHUT, 0) + cop(SERVE) +
      cop(CONNECT, 1) + cop(CANNED, 1, C_STATS) + cop(SHUT, 1) + cop(SERVE) +
      cop(CONNECT, 2) + cop(CANNED, 2, C_STATS) + cop(CLOSE, 2) + cop(SERVE))
# more clients than slots (31): idle ones are evicted oldest first
write('fuzz_ctl_server', 'more-clients-than-slots',
      b'\x03' + b''.join(cop(CONNECT, i) + cop(SERVE) for i in range(31)) +
      cop(CONNECT, 31) + cop(CANNED, 31, C_STATS) + cop(SERVE) + cop(CONNECT, 0) +
      cop(CANNED, 0, C_STATS) + cop(SERVE) + cop(CANNED, 1, C_STATS) + cop(SERVE))
