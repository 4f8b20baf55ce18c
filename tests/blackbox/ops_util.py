"""Small helpers for the operations black-box tests (test_ops, test_systemd,
test_examples): start hookd on 127.0.0.1:0 in a temp dir, follow its log
lines, talk HTTP to it. Python 3 stdlib only; every wait is bounded.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, SAMPLE_PATH as SAMPLE, SOURCE, new_id  # noqa: E402,F401

TOKEN = "ops-test-token-0123456789"
NF = "X-Northflank-Notification-Integration-"
WAIT = 10.0  # seconds for any one thing to happen
ADMIN_LISTENING = r'(msg="admin listening"|"msg":"admin listening")'


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


def request(port, method, path, body=None, headers=None, timeout=WAIT):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        return harness.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw,
                                r.reason)
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


class Daemon(harness.Hookd):
    """harness.Hookd for the operations tests: Northflank deliveries to
    /webhook, the admin listener, and log lines waited for by regex.

    config: the config text ({tmp} is the temp dir, hooks_dir = hooks.d).
    hooks: {name: script text, or None for a directory}.
    files: {relative path: text} written under the temp dir.
    wrap, pass_fds, journal_stream: as for harness.Hookd.
    wait_listening False: do not wait for the "listening" line.
    """

    def __init__(self, config, hooks=None, files=None, env=None, wrap=None, pass_fds=(),
                 journal_stream=None, wait_listening=True):
        super().__init__(config, hooks=hooks, files=files, env=env, wrap=wrap or (),
                         pass_fds=pass_fds, journal_stream=journal_stream,
                         listening=wait_listening, secrets=(TOKEN,))
        # The "admin listening" line follows the "listening" one start()
        # waited for: with an [admin] section, wait for it too (admin_port).
        if wait_listening and "[admin]" in config:
            try:
                self.wait_line(ADMIN_LISTENING, timeout=2.0)
            except AssertionError:
                pass  # an [admin] that listens nowhere

    def wait_line(self, pattern, timeout=WAIT, start=0):
        """The first log line at index >= start matching the regex; raises
        on timeout, or when hookd's log ends without one."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            ended = not self._reader.is_alive()  # before reading: no line is missed
            for line in self.logs()[start:]:
                if rx.search(line):
                    return line
            if ended:
                raise AssertionError("hookd's log ended before %r:\n%s"
                                     % (pattern, self.log_text()))
            if time.monotonic() > deadline:
                raise AssertionError("no log line %r within %ss:\n%s"
                                     % (pattern, timeout, self.log_text()))
            time.sleep(0.02)

    def deliver(self, body=None, event_id=None, token=TOKEN, headers=None, path="/webhook"):
        """A Northflank delivery (the sample payload unless body is given)."""
        h = nf_headers(event_id, token)
        h.update(headers or {})
        return self.post(path, sample_body() if body is None else body, h)

    def admin(self, method, path, body=None, headers=None):
        self.wait_line(ADMIN_LISTENING)
        return request(self.admin_port, method, path, body, headers)

    def scrape(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, (r.status, r.raw)
        return r.text
