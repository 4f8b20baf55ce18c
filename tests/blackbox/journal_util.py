"""A small harness for the journal black-box tests (Python 3 stdlib only).

Each test starts its own daemon ($HOOKD_BIN, default build/hookd) on
127.0.0.1:0 in a fresh temp dir. Config and hook texts may hold {tmp} (the
temp dir), {hooks} (its hooks.d) and {state} (its state dir); they are
replaced literally, so shell `${x}` is safe. Every wait is bounded.
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
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD_BIN, new_id, sample_json, sh  # noqa: E402,F401

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = 20.0

TOKEN = "nf-journal-t0ken-5ecret-8813"
NF = "X-Northflank-Notification-Integration-"


def config(state=True, server="", endpoint="", extra=""):
    """A Northflank endpoint at /webhook; state False leaves state_dir unset.
    server, endpoint: more "key = value" lines for those sections (a
    [server] key given there replaces the default one)."""
    defaults = {"timeout": "10s", "kill_grace": "1s"}
    given = {l.split("=")[0].strip() for l in server.splitlines() if "=" in l}
    lines = "".join("%s = %s\n" % kv for kv in defaults.items() if kv[0] not in given)
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\n" + lines
            + ("state_dir = {state}\n" if state else "") + server
            + "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = %s\n" % TOKEN + endpoint + "\n" + extra)


def wait_until(fn, timeout, step=0.02):
    """fn() until it returns something true or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


class Response:
    def __init__(self, status, headers, raw, elapsed):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.elapsed = elapsed
        try:
            self.json = json.loads(raw.decode("utf-8"))
        except ValueError:
            self.json = {}

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.raw[:400])


def session_members(sid):
    """The live (not zombie) processes of session sid."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(name))
    return pids


class Hookd:
    """One daemon under test; a context manager. The temp dir (and so the
    journal) can outlive a daemon: stop() then start() again."""

    def __init__(self, cfg, hooks=None, start=True):
        self.tmp = tempfile.mkdtemp(prefix="hookd-jt-")
        self.hooks = os.path.join(self.tmp, "hooks.d")
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.hooks)
        self.config_path = os.path.join(self.tmp, "hookd.ini")
        self.proc = None
        self.port = None
        self.lines = []
        self._lock = threading.Lock()
        self.write("hookd.ini", cfg)
        for name, text in (hooks or {}).items():
            self.hook(name, text)
        if start:
            try:
                self.start()
            except BaseException:
                self.cleanup()
                raise

    def subst(self, text):
        return (text.replace("{tmp}", self.tmp).replace("{hooks}", self.hooks)
                .replace("{state}", self.state))

    def path(self, rel):
        return os.path.join(self.tmp, rel)

    def write(self, rel, text, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(self.subst(text))
        os.chmod(p, mode)
        return p

    def hook(self, name, text):
        return self.write(os.path.join("hooks.d", name), text, 0o755)

    def read(self, rel):
        try:
            with open(self.path(rel), "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def lines_of(self, rel):
        return [l.split() for l in self.read(rel).splitlines() if l.strip()]

    # ---- the daemon

    def start(self):
        self.port = None  # the log lines of earlier runs are kept
        listening = threading.Event()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": self.tmp}
        self.proc = subprocess.Popen([HOOKD_BIN, "-c", self.config_path, "serve"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, cwd=self.tmp,
                                     start_new_session=True)
        proc = self.proc

        def drain():
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self.lines.append(line)
                m = re.search(r"msg=listening addr=\"?[0-9.]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    listening.set()
            proc.stderr.close()

        self._reader = threading.Thread(target=drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not listening.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(5)
                self._reader.join(2)
                raise AssertionError("hookd did not start; stderr:\n" + self.log_text())

    def log_text(self):
        with self._lock:
            return "\n".join(self.lines)

    def wait_log(self, needle, timeout=5.0):
        return wait_until(lambda: needle in self.log_text(), timeout)

    def stop(self, check=True):
        """SIGTERM and wait; returns (exit status, seconds it took)."""
        if self.proc is None or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("hookd did not exit within %ds of SIGTERM" % STOP_TIMEOUT)
        took = time.monotonic() - t0
        self._reader.join(5)
        if check and rc != 0:
            raise AssertionError("hookd exited %r; log:\n%s" % (rc, self.log_text()))
        return rc, took

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)

    def kill_hook_groups(self):
        """SIGKILL to the process groups the hooks wrote to {tmp}/pids."""
        pids = self.read("pids").split()
        for tok in pids:
            try:
                os.killpg(int(tok), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        return pids

    def kill_orphaned_hooks(self, timeout=5.0):
        """After kill9: SIGKILL to every process still in the dead daemon's
        session (it was started in one of its own, and its hooks make only
        process groups of their own), until none is left. A hook it started
        a moment before it died is among them, pid recorded or not."""
        sid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            left = session_members(sid)
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError("processes of the dead daemon's session survive: %r" % left)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.kill_hook_groups()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop(check=exc_type is None)
            if exc_type is None:
                errors = [l for l in self.log_text().splitlines() if "level=error" in l]
                if errors:
                    raise AssertionError("hookd logged errors:\n" + "\n".join(errors))
                if TOKEN in self.log_text():
                    raise AssertionError("the token appears in the log")
        finally:
            self.cleanup()
        return False

    # ---- HTTP and the CLI

    def post(self, event_id, body=None, event=None, token=TOKEN, timeout=HTTP_TIMEOUT):
        """A Northflank delivery with the sample payload (body: a dict to send
        instead; event: replaces its `event`)."""
        obj = sample_json() if body is None else body
        if event is not None:
            obj = dict(obj, event=event)
        data = json.dumps(obj).encode()
        headers = {
            "Content-Type": "application/json",
            NF + "Id": "int-journal",
            NF + "Name": "journal-tests",
            NF + "Token": token,
            NF + "Event-Id": event_id,
            NF + "Event-Type": obj["event"],
            "Content-Length": str(len(data)),
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        try:
            conn.request("POST", "/webhook", data, headers)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return Response(r.status, hdrs, raw, time.monotonic() - t0)
        finally:
            conn.close()

    def post_bg(self, event_id, **kw):
        """post() in a thread; returns (thread, result list) where the
        list gets the Response (or the exception)."""
        out = []

        def run():
            try:
                out.append(self.post(event_id, **kw))
            except Exception as e:  # handed to the test
                out.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, out

    def cli(self, *args, timeout=15.0):
        """`hookd -c CONFIG args...` -> CompletedProcess (text)."""
        return subprocess.run([HOOKD_BIN, "-c", self.config_path] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout, text=True)

    def events(self, *args):
        """`hookd events --json --limit 100000 args...`, parsed."""
        r = self.cli("events", "--json", "--limit", "100000", *args)
        if r.returncode != 0:
            raise AssertionError("hookd events failed (%d): %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def event_of(self, event_id):
        rows = [e for e in self.events() if e["id"] == event_id]
        return rows[0] if len(rows) == 1 else None

    def wait_states(self, ids, states=("succeeded",), timeout=20.0):
        """Waits until every id in ids is journaled in one of states; returns
        {id: row} of the last look."""
        want = set(ids)

        def look():
            rows = {e["id"]: e for e in self.events() if e["id"] in want}
            done = len(rows) == len(want) and all(r["state"] in states for r in rows.values())
            return rows, done
        deadline = time.monotonic() + timeout
        while True:
            rows, done = look()
            if done or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def main():
    if not os.path.exists(HOOKD_BIN):
        print("HOOKD_BIN %s does not exist" % HOOKD_BIN, file=sys.stderr)
        sys.exit(1)
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    print("\nsummary: %d run, %d failures, %d errors, %d skipped"
          % (r.testsRun, len(r.failures), len(r.errors), len(r.skipped)))
    sys.exit(0 if r.wasSuccessful() else 1)
