"""A small harness for the journal black-box tests (Python 3 stdlib only).

Each test starts its own daemon ($HOOKD_BIN, default build/hookd) on
127.0.0.1:0 in a fresh temp dir. Config and hook texts may hold {tmp} (the
temp dir), {hooks} (its hooks.d) and {state} (its state dir); they are
replaced literally, so shell `${x}` is safe. Every wait is bounded.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, main, new_id, sample_json, sh  # noqa: E402,F401

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


class Hookd(harness.Hookd):
    """harness.Hookd with a state dir ({state}), Northflank posts with the
    sample payload, the CLI's journal views, and kill -9. Leaving the
    block also asserts that the log has no level=error line."""

    def __init__(self, cfg, hooks=None, start=True):
        super().__init__(cfg, hooks=hooks, start=start, secrets=(TOKEN,))

    @property
    def state(self):
        return os.path.join(self.tmp, "state")

    def subst(self, text):
        return super().subst(text).replace("{state}", self.state)

    def lines_of(self, rel):
        return [l.split() for l in (self.read(rel) or "").splitlines() if l.strip()]

    def check_no_secrets(self):
        super().check_no_secrets()
        errors = [l for l in self.logs() if "level=error" in l]
        if errors:
            raise AssertionError("hookd logged errors:\n" + "\n".join(errors))

    def stop(self, check=True):
        """SIGTERM and wait; returns (exit status, seconds it took)."""
        t0 = time.monotonic()
        rc = super().stop(check=check)
        return rc, time.monotonic() - t0

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)

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

    # ---- HTTP and the CLI

    def post(self, event_id, body=None, event=None, token=TOKEN, timeout=HTTP_TIMEOUT,
             headers=None):
        """A Northflank delivery with the sample payload (body: a dict to send
        instead; event: replaces its `event`; headers: more headers)."""
        obj = sample_json() if body is None else body
        if event is not None:
            obj = dict(obj, event=event)
        data = json.dumps(obj).encode()
        send = {
            "Content-Type": "application/json",
            NF + "Id": "int-journal",
            NF + "Name": "journal-tests",
            NF + "Token": token,
            NF + "Event-Id": event_id,
            NF + "Event-Type": obj["event"],
            "Content-Length": str(len(data)),
        }
        send.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        try:
            conn.request("POST", "/webhook", data, send)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            resp = harness.Response(r.status, hdrs, raw, r.reason)
            resp.elapsed = time.monotonic() - t0
            return resp
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

