"""Certificates made at run time with certtool (gnutls-bin); nothing secret
lives in the repository.

Each certificate is made the first time it is asked for, with its signer
first, and written under its final name only once complete, so a
directory can be shared: KTLSCTL_TEST_CERTS=DIR makes every suite use (and
fill) DIR instead of a private one, which the VM tier prepares once per
guest (`python3 -m ktlsctl_test.certs DIR`), key generation being slow
under emulation.
"""

import os
import ssl
import subprocess
import sys

from .settings import scaled
from .procs import quote
from .data import sha

# name -> (signer, key type, CN, DNS names, IP addresses, server?, dates)
LOCAL = (["localhost"], ["127.0.0.1", "::1"])
SPECS = {
    "ca": (None, "ecdsa", "ktlsctl test CA", [], [], None, None),
    "ca2": (None, "ecdsa", "unrelated test CA", [], [], None, None),
    "srv_ec": ("ca", "ecdsa", "localhost") + LOCAL + (True, None),
    "srv_rsa": ("ca", "rsa", "localhost") + LOCAL + (True, None),
    "client": ("ca", "ecdsa", "ktlsctl test client", [], [], False, None),
    "other": ("ca2", "ecdsa", "localhost") + LOCAL + (True, None),
    "wronghost": ("ca", "ecdsa", "wronghost.invalid", ["wronghost.invalid"], [], True, None),
    "expired": ("ca", "ecdsa", "localhost") + LOCAL
    + (True, ("2020-01-01 00:00:00 UTC", "2021-01-01 00:00:00 UTC")),
    # chains of three: root -> intermediate -> leaf, in ECDSA and in RSA
    "inter_ec": ("ca", "ecdsa", "ktlsctl test intermediate CA", [], [], None, None),
    "leaf_ec": ("inter_ec", "ecdsa", "localhost") + LOCAL + (True, None),
    "revoked_ec": ("inter_ec", "ecdsa", "localhost") + LOCAL + (True, None),
    "client3": ("inter_ec", "ecdsa", "ktlsctl test client 3", [], [], False, None),
    "ca_rsa": (None, "rsa", "ktlsctl test RSA CA", [], [], None, None),
    "inter_rsa": ("ca_rsa", "rsa", "ktlsctl test RSA intermediate CA", [], [], None, None),
    "leaf_rsa": ("inter_rsa", "rsa", "localhost") + LOCAL + (True, None),
    "srv_rsa2": ("ca_rsa", "rsa", "localhost") + LOCAL + (True, None),
    # a server of several names (listen picks one by SNI)
    "alpha_ec": ("ca", "ecdsa", "alpha.test", ["alpha.test"], [], True, None),
    "alpha_rsa": ("ca", "rsa", "alpha.test", ["alpha.test"], [], True, None),
    "beta_ec": ("ca", "ecdsa", "beta.test", ["beta.test", "www.beta.test"], [], True, None),
    "wild_ec": ("ca", "ecdsa", "wild.test", ["*.wild.test"], [], True, None),
    "wild_rsa": ("ca", "rsa", "wild.test", ["*.wild.test"], [], True, None),
}


class Certs:
    """The test PKI in directory d.

    ca            CA (ECDSA P-256) that signs srv_ec, srv_rsa, client, wronghost, expired
    srv_ec        server cert/key, ECDSA P-256, CN/SAN localhost, 127.0.0.1, ::1
    srv_rsa       the same with RSA 2048
    client        client certificate (ECDSA) signed by ca
    ca2, other    an unrelated CA and a localhost server cert signed by it
    wronghost     server cert for "wronghost.invalid" only, signed by ca
    expired       server cert for localhost, signed by ca, expired in 2021
    alpha_ec, alpha_rsa   server certs for alpha.test, ECDSA and RSA, signed by ca
    beta_ec       server cert for beta.test and www.beta.test (ECDSA), signed by ca
    wild_ec, wild_rsa     server certs for *.wild.test, ECDSA and RSA, signed by ca
    inter_ec      an intermediate CA (ECDSA) signed by ca
    leaf_ec       server cert for localhost (ECDSA) signed by inter_ec;
    revoked_ec    another one, for the OCSP tests to revoke
    client3       a client certificate (ECDSA) signed by inter_ec
    ca_rsa        a CA with an RSA 2048 key; inter_rsa, an intermediate it
                  signs; leaf_rsa, a localhost server cert inter_rsa signs;
                  srv_rsa2, one ca_rsa signs itself
    ca, ca2, inter_ec, ca_rsa and inter_rsa are file names; every other one
    a (certfile, keyfile) pair.  chain(name) is a server's --cert file for
    a pair: the certificate, then its signers up to the root's child.
    """

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)

    def __getattr__(self, name):
        if name not in SPECS:
            raise AttributeError(name)
        cert, key = self._make(name)
        value = cert if SPECS[name][5] is None else (cert, key)
        setattr(self, name, value)
        return value

    def chain(self, name):
        """(chainfile, keyfile): name's certificate followed by every
        signer's but the self-signed root's, as a server sends them."""
        cert, key = getattr(self, name)
        path = self._path(name, "-chain.pem")
        if not os.path.exists(path):
            pems, signer = [cert], SPECS[name][0]
            while signer and SPECS[signer][0]:
                pems.append(getattr(self, signer))
                signer = SPECS[signer][0]
            data = b"".join(open(p, "rb").read() for p in pems)
            with open(path + ".%d" % os.getpid(), "wb") as f:
                f.write(data)
            os.rename(path + ".%d" % os.getpid(), path)
        return path, key

    def key_of(self, name):
        """The private key of a CA (a file name in this object)."""
        getattr(self, name)
        return self._path(name, ".key")

    def all(self):
        for name in SPECS:
            getattr(self, name)

    def _path(self, name, ext):
        return os.path.join(self.dir, name.replace("_", "-") + ext)

    def _run(self, argv):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(60), cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError("certificate generation failed: %s\n%s"
                               % (quote(argv), r.stderr.decode("utf-8", "replace")))

    def _make(self, name):
        cert, key = self._path(name, ".pem"), self._path(name, ".key")
        if os.path.exists(cert):
            return cert, key
        signer, kind, cn, dns, ips, server, dates = SPECS[name]
        if signer:
            self._make(signer)
        tmp = ".%d" % os.getpid()
        if kind == "rsa":
            self._run(["certtool", "--generate-privkey", "--key-type", "rsa", "--bits", "2048",
                       "--outfile", key + tmp])
        else:
            self._run(["certtool", "--generate-privkey", "--key-type", "ecdsa",
                       "--curve", "secp256r1", "--outfile", key + tmp])
        lines = ['cn = "%s"' % cn, "serial = %d" % int.from_bytes(os.urandom(4), "big")]
        if server is None:
            lines += ["ca", "cert_signing_key", "crl_signing_key"]
        else:
            lines.append("signing_key")
            if kind == "rsa":
                lines.append("encryption_key")
            lines += ['dns_name = "%s"' % d for d in dns]
            lines += ['ip_address = "%s"' % i for i in ips]
            lines.append("tls_www_server" if server else "tls_www_client")
        if dates:
            lines += ['activation_date = "%s"' % dates[0], 'expiration_date = "%s"' % dates[1]]
        else:
            lines.append("expiration_days = 7")
        tmpl = self._path(name, ".tmpl" + tmp)
        with open(tmpl, "w") as f:
            f.write("\n".join(lines) + "\n")
        if signer:
            self._run(["certtool", "--generate-certificate", "--load-privkey", key + tmp,
                       "--load-ca-certificate", self._path(signer, ".pem"),
                       "--load-ca-privkey", self._path(signer, ".key"),
                       "--template", tmpl, "--outfile", cert + tmp])
        else:
            self._run(["certtool", "--generate-self-signed", "--load-privkey", key + tmp,
                       "--template", tmpl, "--outfile", cert + tmp])
        os.unlink(tmpl)
        os.rename(key + tmp, key)
        os.rename(cert + tmp, cert)      # last: a cert on disk is a complete pair
        return cert, key


# ------------------------------------------- a server's files, reloaded

def reload_files(parent, pair):
    """A server's --cert and --key in a directory of their own under
    parent, holding pair (a (certfile, keyfile) of Certs) for now."""
    d = os.path.join(parent, "reload-%s" % os.urandom(4).hex())
    os.makedirs(d)
    cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    put_pair(cert, key, pair)
    return cert, key


def replace_file(dst, src):
    """Replace dst as an administrator would: src's bytes renamed into
    place, whole."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst + ".new", "wb") as f:
        f.write(data)
    os.replace(dst + ".new", dst)


def put_pair(cert, key, pair):
    replace_file(cert, pair[0])
    replace_file(key, pair[1])


def fingerprint(pem):
    """SHA-256 of the certificate's DER, as ktlsctl prints it."""
    with open(pem) as f:
        return sha(ssl.PEM_cert_to_DER_cert(f.read()))


def reloaded_line(cert, key, pem):
    """What a ktlsctl server says after a SIGHUP that loaded cert and key
    (pem: the certificate they now hold)."""
    return ("ktlsctl: reloaded credentials from '%s' and '%s': new handshakes use them "
            "(certificate subject 'CN=localhost', SHA-256 %s)\n" % (cert, key, fingerprint(pem)))


def shared_dir():
    """KTLSCTL_TEST_CERTS, when set."""
    return os.environ.get("KTLSCTL_TEST_CERTS") or None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m ktlsctl_test.certs DIR   (makes every test certificate in DIR)")
    Certs(sys.argv[1]).all()
