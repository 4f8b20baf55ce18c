"""Small helpers for the operations black-box tests (test_ops, test_systemd,
test_examples): start hookd on 127.0.0.1:0 in a temp dir, follow its log
lines, talk HTTP to it. Python 3 stdlib only; every wait is bounded.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD_BIN, SAMPLE_PATH as SAMPLE, SOURCE, new_id  # noqa: E402,F401

TOKEN = "ops-test-token-0123456789"
NF = "X-Northflank-Notification-Integration-"
WAIT = 10.0  # seconds for any one thing to happen


def sample_body(event=None):
    with open(SAMPLE, "rb") as f:
        body = f.read()
    if event is None:
        return body
    doc = json.loads(body)
    doc["event"] = event
    return json.dumps(doc).encode()


def base_config(extra_server="", extra="", admin=True):
    """A config with one Northflank endpoint at /webhook and hooks in {tmp}/hooks.d."""
    text = ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = hooks.d\n" + extra_server +
            "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = " + TOKEN + "\n")
    if admin:
        text += "\n[admin]\nlisten = 127.0.0.1:0\n"
    return text + extra


def find_promtool():
    """promtool from PATH, or the copy scripts/deps.sh --test unpacks."""
    for cand in (shutil.which("promtool"), os.path.join(SOURCE, "tests", ".tools", "promtool")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def promtool_check(text):
    """Runs `promtool check metrics` on text; returns (ok, output)."""
    tool = find_promtool()
    if tool is None:
        raise AssertionError("promtool not found: run `sh scripts/deps.sh --test` "
                             "(it unpacks promtool from Debian's prometheus package)")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode == 0, p.stdout.decode("utf-8", "replace")


def parse_metrics(text):
    """Samples of the text format -> {('name', (('label','value'),...)): float}."""
    out = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = []
        if m.group(3):
            pos = 0
            s = m.group(3)
            while pos < len(s):
                lm = label.match(s, pos)
                if not lm:
                    raise AssertionError("bad labels in %r" % line)
                v = lm.group(2).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
                labels.append((lm.group(1), v))
                pos = lm.end()
        out[(m.group(1), tuple(labels))] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    """The value of one sample (0 when absent)."""
    for (n, ls), v in samples.items():
        if n == name and dict(ls) == labels:
            return v
    return 0.0


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw.decode("utf-8"))
        except ValueError:
            self.json = None

    @property
    def text(self):
        return self.raw.decode("utf-8")


def request(port, method, path, body=None, headers=None, timeout=WAIT):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        c.close()


def raw_exchange(port, data, timeout=WAIT):
    """Sends raw bytes, returns what comes back until the server closes."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def nf_headers(event_id=None, token=TOKEN, event=None):
    h = {"Content-Type": "application/json", NF + "Token": token,
         NF + "Event-Id": event_id or new_id("ops")}
    if event:
        h[NF + "Event-Type"] = event
    return h


class Daemon:
    """hookd serve in a temp dir. Use as a context manager.

    config: the config text ({tmp} is replaced by the temp dir).
    hooks: {name: script text or None for a directory}; made executable.
    files: {relative path: text} written under the temp dir.
    wrap: a list to put before hookd's argv (e.g. ["sh", "-c", "...", "sh"]).
    """

    def __init__(self, config, hooks=None, files=None, env=None, wrap=None, pass_fds=(),
                 journal_stream=None, wait_listening=True):
        """journal_stream: True sets JOURNAL_STREAM to the device:inode of
        hookd's stderr (as systemd does); a string sets it to that value."""
        self.tmp = tempfile.mkdtemp(prefix="hookd-ops-")
        self.hooks_dir = os.path.join(self.tmp, "hooks.d")
        os.mkdir(self.hooks_dir)
        for name, text in (hooks or {}).items():
            path = os.path.join(self.hooks_dir, name)
            if text is None:
                os.mkdir(path)
                continue
            with open(path, "w") as f:
                f.write(text.replace("{tmp}", self.tmp))
            os.chmod(path, 0o755)
        for rel, text in (files or {}).items():
            path = os.path.join(self.tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text.replace("{tmp}", self.tmp))
        self.config = os.path.join(self.tmp, "hookd.ini")
        with open(self.config, "w") as f:
            f.write(config.replace("{tmp}", self.tmp))
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
             "HOME": self.tmp}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                e[k] = os.environ[k]
        e.update(env or {})
        argv = list(wrap or []) + [HOOKD_BIN, "-c", self.config, "serve"]
        self.lines = []
        self.cond = threading.Condition()
        r, w = os.pipe()
        if journal_stream is True:
            st = os.fstat(w)
            e["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        elif journal_stream:
            e["JOURNAL_STREAM"] = journal_stream
        try:
            self.proc = subprocess.Popen(
                argv, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=w,
                pass_fds=pass_fds, cwd=self.tmp)
        finally:
            os.close(w)
        self.stream = os.fdopen(r, "rb")
        self.port = None
        self.admin_port = None
        self.reader = threading.Thread(target=self._read, args=(self.stream,), daemon=True)
        self.reader.start()
        if wait_listening:
            try:
                self.wait_listening()
            except BaseException:
                self.__exit__(None, None, None)
                raise

    def _read(self, f):
        for raw in iter(f.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of stream
            self.cond.notify_all()

    def wait_line(self, pattern, timeout=WAIT, start=0):
        """The first log line at index >= start matching the regex; raises on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if line is None:
                        raise AssertionError("hookd's log ended before %r:\n%s" %
                                             (pattern, self.log()))
                    if rx.search(line):
                        return line
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line %r within %ss:\n%s" %
                                         (pattern, timeout, self.log()))
                self.cond.wait(left)

    def log(self):
        with self.cond:
            return "\n".join(x for x in self.lines if x is not None)

    def wait_listening(self):
        addr = re.compile(r'127\.0\.0\.1:(\d+)')
        line = self.wait_line(r'(msg=listening|"msg":"listening")')
        self.port = int(addr.search(line).group(1))
        try:
            aline = self.wait_line(r'(msg="admin listening"|"msg":"admin listening")', timeout=0.5)
            self.admin_port = int(addr.search(aline).group(1))
        except AssertionError:
            self.admin_port = None

    def post(self, body=None, event_id=None, token=TOKEN, headers=None, path="/webhook"):
        h = nf_headers(event_id, token)
        h.update(headers or {})
        return request(self.port, "POST", path, sample_body() if body is None else body, h)

    def admin(self, method, path, body=None, headers=None):
        return request(self.admin_port, method, path, body, headers)

    def scrape(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, (r.status, r.raw)
        return r.text

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("hookd did not stop on SIGTERM:\n" + self.log())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self.reader.join(5)
            self.stream.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False
