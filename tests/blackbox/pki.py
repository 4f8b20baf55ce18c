"""Certificates for the native TLS tests (Python 3 stdlib and the openssl
command line): a throw-away CA and server certificates for 127.0.0.1 and
localhost, made at test time in a temp dir, and their atomic installation
as a renewal tool does it. The daemon itself is started by harness.Hookd.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run  # noqa: E402


def new_tmp():
    return tempfile.mkdtemp(prefix="hookd-tls-")


class Pki:
    """A throw-away CA and server certificates made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_key = self.path("ca.key")
        self.ca_cert = self.path("ca.pem")
        self._openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key,
                       "-out", self.ca_cert, "-days", "2", "-subj", "/CN=hookd test CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, args):
        r = run(["openssl"] + args)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def key(self, name, encrypted_with=None):
        """A new RSA key in PEM; with a passphrase when encrypted_with is set."""
        path = self.path(name)
        args = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path]
        if encrypted_with:
            args += ["-aes-128-cbc", "-pass", "pass:" + encrypted_with]
        self._openssl(args)
        return path

    def cert(self, name, key, serial, cn="localhost", org="hookd tests", days=1):
        """A server certificate for 127.0.0.1 and localhost signed by the CA."""
        csr = self.path(name + ".csr")
        ext = self.path(name + ".ext")
        out = self.path(name)
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        self._openssl(["req", "-new", "-key", key, "-out", csr, "-subj",
                       "/CN=%s/O=%s" % (cn, org)])
        self._openssl(["x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                       "-set_serial", "0x%x" % serial, "-days", str(days), "-extfile", ext,
                       "-out", out])
        return out

    def pair(self, stem, serial, **kw):
        """A fresh key and its certificate: (cert_path, key_path)."""
        key = self.key(stem + ".key")
        return self.cert(stem + ".pem", key, serial, **kw), key


def install(src, dst):
    """Replaces dst with src's bytes atomically, as a renewal tool would."""
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)
