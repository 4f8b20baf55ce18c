"""Small helpers for the native TLS black-box tests (Python 3 stdlib only).

`Daemon` runs $HOOKD_BIN on 127.0.0.1:0 in a temp dir and follows its log;
`Pki` makes a CA and certificates with the `openssl` command line, at test
time, in that temp dir. Every wait here is bounded.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD_BIN, SAMPLE_PATH as SAMPLE, SOURCE, sample_body  # noqa: E402,F401

NF_TOKEN = "tls-t0ken-Sup3rS3cret-0815"
NF = "X-Northflank-Notification-Integration-"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 10.0


def run(cmd, input=None, timeout=30.0):
    """Runs a command; returns CompletedProcess with text output."""
    return subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)


def nf_headers(event_id, event="build:start"):
    return {
        "Content-Type": "application/json",
        NF + "Token": NF_TOKEN,
        NF + "Event-Type": event,
        NF + "Event-Id": event_id,
        NF + "Id": "int-tls",
        NF + "Name": "tls-tests",
    }


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


class Daemon:
    """One hookd under test, in its own temp dir (a context manager)."""

    def __init__(self, tmp, config):
        self.tmp = tmp
        self.config_path = os.path.join(tmp, "hookd.ini")
        self.write_config(config)
        self.proc = None
        self._reader = None
        self.port = None
        self.lines = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)

    def write_config(self, text):
        with open(os.path.join(self.tmp, "hookd.ini"), "w") as f:
            f.write(text.replace("{tmp}", self.tmp))

    def start(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": self.tmp}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        self.proc = subprocess.Popen([HOOKD_BIN, "-c", self.config_path, "serve"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, cwd=self.tmp)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_log(r"msg=listening", START_TIMEOUT)
        if line is None:
            self.stop(check=False)
            raise AssertionError("hookd did not start:\n" + self.log())
        self.port = int(re.search(r"addr=127\.0\.0\.1:(\d+)", line).group(1))
        return self

    def _read(self):
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def log(self):
        with self._lock:
            return "\n".join(self.lines)

    def count(self, pattern):
        with self._lock:
            return sum(1 for l in self.lines if re.search(pattern, l))

    def wait_log(self, pattern, timeout=IO_TIMEOUT, after=0):
        """The first log line matching pattern among lines[after:], or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for l in self.lines[after:]:
                    if re.search(pattern, l):
                        return l
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def reload(self):
        """SIGHUP, then the reload's outcome line."""
        with self._lock:
            mark = len(self.lines)
        self.proc.send_signal(signal.SIGHUP)
        line = self.wait_log(r"msg=\"(config reloaded|reload failed)", IO_TIMEOUT, after=mark)
        if line is None:
            raise AssertionError("no reload outcome logged:\n" + self.log())
        return line

    def stop(self, check=True):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("hookd did not stop on SIGTERM:\n" + self.log())
        finally:
            if self._reader:
                self._reader.join(5)
            self.proc.stderr.close()
        if check and rc != 0:
            raise AssertionError("hookd exited %d:\n%s" % (rc, self.log()))
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)
        return False

    # ---- clients ---------------------------------------------------------

    def ssl_context(self, cafile):
        return ssl.create_default_context(cafile=cafile)

    def https(self, cafile, host="localhost"):
        """An http.client connection over TLS verified against cafile."""
        return http.client.HTTPSConnection(host, self.port, context=self.ssl_context(cafile),
                                           timeout=IO_TIMEOUT)

    def deliver(self, conn, event_id, path="/webhook", body=None):
        """POSTs the sample Northflank delivery; returns (status, json, headers)."""
        conn.request("POST", path, body=body if body is not None else sample_body(),
                     headers=nf_headers(event_id))
        r = conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        return r.status, doc, dict((k.lower(), v) for k, v in r.getheaders())

    def peer_serial(self, cafile, host="localhost"):
        """The serial (int) of the certificate a new connection is served."""
        ctx = self.ssl_context(cafile)
        with socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                return int(s.getpeercert()["serialNumber"], 16)

    def raw(self):
        """A plain TCP connection to the listener."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT)


def read_until_closed(sock, timeout):
    """Reads until the peer closes (EOF or reset) or timeout passes.
    Returns (data, closed, seconds)."""
    start = time.monotonic()
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() - start < timeout:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True, time.monotonic() - start
        if not chunk:
            return data, True, time.monotonic() - start
        data += chunk
    return data, False, time.monotonic() - start


def new_tmp():
    return tempfile.mkdtemp(prefix="hookd-tls-")
