"""Shared helpers for hookd's black-box tests (Python 3 stdlib only).

The daemon under test is $HOOKD_BIN (default: $HOOKD_SOURCE/build/hookd).
Every test starts its own daemon on 127.0.0.1:0 in a fresh temp dir with
`Hookd(...)` as a context manager; leaving the block stops the daemon with
SIGTERM (asserting exit 0), kills any hook process groups the hooks recorded,
and removes the temp dir.

Config and hook texts may contain the placeholders {tmp} (the temp dir) and
{hooks} (the hooks dir, {tmp}/hooks.d); they are replaced literally (no
str.format, so shell `${x}` is safe).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("HOOKD_SOURCE") or os.path.normpath(os.path.join(HERE, "..", ".."))
HOOKD_BIN = os.path.abspath(os.environ.get("HOOKD_BIN") or os.path.join(SOURCE, "build", "hookd"))



def data_file(name):
    """A sample file of the repository: tests/data/NAME."""
    return os.path.join(SOURCE, "tests", "data", name)


SAMPLE_PATH = data_file("northflank-build-start.json")
VECTORS_PATH = data_file("signature-vectors.json")

START_TIMEOUT = 10.0   # seconds to see msg=listening
STOP_TIMEOUT = 15.0    # seconds for SIGTERM to end the daemon
HTTP_TIMEOUT = 15.0    # seconds a request may take

NF_TOKEN = "nf-t0ken-Sup3rS3cret-4711"
NF_PREFIX = "X-Northflank-Notification-Integration-"
NF_INTEGRATION_ID = "int-8f3a2c"
NF_INTEGRATION_NAME = "blog-hooks"

CANARY_NAME = "HOOKD_TEST_CANARY"
CANARY_VALUE = "canary-must-not-leak-91c2"

# Variables a /bin/sh (dash) adds by itself when a hook dumps `env`.
SHELL_VARS = {"PWD", "OLDPWD", "SHLVL", "_"}


def sample_body():
    with open(SAMPLE_PATH, "rb") as f:
        return f.read()


def sample_json():
    return json.loads(sample_body())


def load_vectors():
    """The senders' documented signature vectors (tests/data)."""
    with open(VECTORS_PATH, "rb") as f:
        return json.load(f)


def new_id(prefix="evt"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def sh(body):
    """A portable /bin/sh hook script."""
    return "#!/bin/sh\n" + body.rstrip("\n") + "\n"


def marker_hook(name, exit_code=0, extra=""):
    """A hook that appends NAME to {tmp}/ran, runs `extra`, exits exit_code."""
    return sh("echo '%s' >> '{tmp}/ran'\n%s\nexit %d" % (name, extra, exit_code))


def env_hook(name, dump="env.txt", exit_code=0):
    """A hook that records its run, environment, argv, cwd and stdin."""
    return sh(
        "echo '%s' >> '{tmp}/ran'\n"
        "env > '{tmp}/%s'\n"
        "printf '%%s\\n' \"$0\" \"$#\" > '{tmp}/argv.txt'\n"
        "pwd -P > '{tmp}/cwd.txt'\n"
        "cat > '{tmp}/stdin.bin'\n"
        "exit %d" % (name, dump, exit_code))


LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    """One logfmt line -> dict (quoted values JSON-decoded)."""
    out = {}
    for k, v in LOGFMT_PAIR.findall(line):
        if v.startswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def parse_env(text):
    """`env` output -> dict (values without newlines only)."""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


# --------------------------------------------------------------------------
# processes

def proc_pgrp(pid):
    """The process group of pid, or None if it is gone (or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    if rest[0] == "Z":
        return None
    return int(rest[2])


def group_members(pgid):
    """Live (non-zombie) pids whose process group is pgid."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and proc_pgrp(int(entry)) == pgid:
            pids.append(int(entry))
    return pids


def wait_group_gone(pgid, timeout=3.0):
    """True when no live process of group pgid remains within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if not group_members(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def pid_alive(pid):
    if proc_pgrp(pid) is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SANITIZER = re.compile(r"runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer|"
                       r"SUMMARY: (Address|Leak|Undefined)")


def sanitizer_lines(text):
    """Lines where ASan/UBSan/LSan reported a problem (an -Db_sanitize build)."""
    return [ln for ln in text.splitlines() if SANITIZER.search(ln)]


def run_cli(args, config=None, input=None, env=None, timeout=10.0, cwd=None):
    """Runs `hookd [-c config] args...`; returns CompletedProcess (bytes)."""
    cmd = [HOOKD_BIN]
    if config is not None:
        cmd += ["-c", config]
    cmd += list(args)
    e = daemon_env()
    if env:
        e.update(env)
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=timeout, cwd=cwd)
    bad = sanitizer_lines(p.stderr.decode("utf-8", "replace"))
    if bad:
        raise AssertionError("hookd %s: sanitizer report:\n%s" % (" ".join(args), "\n".join(bad)))
    return p


def daemon_env(extra=None):
    """A small, known environment for hookd, with a canary that no hook may see."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        CANARY_NAME: CANARY_VALUE,
    }
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------
# HTTP

class Response:
    """An HTTP answer: status, headers (lower-cased names), body (parsed JSON
    when it parses, else bytes), raw (bytes). Unpacks as (status, headers, body)."""

    def __init__(self, status, headers, raw, reason=""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.raw = raw
        try:
            self.body = json.loads(raw.decode("utf-8"))
            self.is_json = True
        except (ValueError, UnicodeDecodeError):
            self.body = raw
            self.is_json = False

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    @property
    def json(self):
        return self.body if self.is_json and isinstance(self.body, dict) else {}

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def text(self):
        return self.raw.decode("utf-8")

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers, self.raw[:500])


def parse_raw_response(data):
    """Parses one HTTP/1.x response from bytes -> Response or None."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        return None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = headers.get("content-length")
    body = rest[: int(n)] if n and n.isdigit() else rest
    return Response(int(m.group(1)), headers, body, m.group(2))


# The address in hookd's "listening" and "admin listening" lines, logfmt or JSON.
LISTENING = re.compile(r'(?:msg=|"msg":)"?(admin )?listening\b.*?'
                       r'(?:\[[^\]]*\]|\d+\.\d+\.\d+\.\d+):(\d+)')


class Hookd:
    """One hookd daemon under test (a context manager).

    config: INI text ({tmp}, {hooks}) or a function (tmp, hooks) -> text.
    hooks: {rel: text, (text, mode), or None for a directory} in hooks.d.
    files: {rel: text or bytes} in the temp dir. secrets: strings that must
    appear in no log line and no answer. args: hookd's arguments after
    `-c CONFIG` (default: serve). wrap: argv put before hookd's (a
    socket-activation shim, say) and pass_fds: the fds it inherits.
    journal_stream: True sets JOURNAL_STREAM to hookd's stderr, as systemd
    does; a string sets it to that. listening False: start() does not wait
    for the "listening" line (a daemon that should fail to start).
    expected_rc: the exit status leaving the block asserts (0)."""

    def __init__(self, config, hooks=None, env=None, secrets=(), args=None,
                 start=True, files=None, wrap=(), pass_fds=(), journal_stream=None,
                 listening=True):
        self.tmp = tempfile.mkdtemp(prefix="hookd-bb-")
        self.hooks = os.path.join(self.tmp, "hooks.d")
        os.mkdir(self.hooks)
        self.config_path = os.path.join(self.tmp, "hookd.ini")
        self.secrets = [s for s in secrets if s]
        self.env = daemon_env(env)
        self.args = args
        self.wrap = list(wrap or ())
        self.pass_fds = tuple(pass_fds)
        self.journal_stream = journal_stream
        self.wait_listening = listening
        self.expected_rc = 0
        self.proc = None
        self.port = None
        self.admin_port = None
        self.lines = []
        self.raw_lines = []  # the same lines as hookd wrote them (bytes)
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._reader = None
        self._stdout = None
        self.rc = None
        self.leaks = []
        try:
            self.write_config(config)
            for rel, spec in (hooks or {}).items():
                if isinstance(spec, tuple):
                    self.write_hook(rel, spec[0], spec[1])
                else:
                    self.write_hook(rel, spec)
            for rel, content in (files or {}).items():
                self.write_file(rel, content)
            if start:
                self.start()
        except BaseException:
            self.cleanup()
            raise

    # ---- files

    def subst(self, text):
        return text.replace("{tmp}", self.tmp).replace("{hooks}", self.hooks)

    def path(self, rel):
        return os.path.join(self.tmp, rel)

    def write_config(self, config):
        text = config(self.tmp, self.hooks) if callable(config) else self.subst(config)
        with open(self.config_path, "w") as f:
            f.write(text)

    def write_file(self, rel, content, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        data = content if isinstance(content, bytes) else self.subst(content).encode()
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def write_hook(self, rel, content, mode=0o755, hooks_dir=None):
        """rel ending in '/' makes a directory; content None too."""
        base = hooks_dir or self.hooks
        p = os.path.join(base, rel)
        if rel.endswith("/") or content is None:
            os.makedirs(p, exist_ok=True)
            return p
        os.makedirs(os.path.dirname(p), exist_ok=True)
        data = content if isinstance(content, bytes) else self.subst(content).encode()
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    def remove_hook(self, rel):
        p = os.path.join(self.hooks, rel)
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)

    def read(self, rel, binary=False):
        """A file in tmp, or None when it does not exist."""
        try:
            with open(self.path(rel), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data if binary else data.decode("utf-8", "replace")

    def ran(self):
        """Names the hooks appended to {tmp}/ran, in order ([] if none ran)."""
        text = self.read("ran")
        return text.split() if text else []

    def reset_ran(self):
        try:
            os.unlink(self.path("ran"))
        except FileNotFoundError:
            pass

    def wait_file(self, rel, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.read(rel)
            if data:
                return data
            time.sleep(0.02)
        return self.read(rel)

    def env_of(self, rel="env.txt"):
        text = self.read(rel)
        return None if text is None else parse_env(text)

    # ---- process

    def start(self):
        """Starts the daemon and waits for its "listening" line. After
        stop() it starts again on the same temp dir (and journal); the log
        lines of earlier runs are kept, and port is the new one."""
        cmd = self.wrap + [HOOKD_BIN, "-c", self.config_path]
        cmd += self.args if self.args is not None else ["serve"]
        self.port = self.admin_port = None
        self._listening.clear()
        self._stdout = open(self.path("stdout.log"), "ab")
        env = dict(self.env)
        r, w = os.pipe()
        if self.journal_stream is True:
            st = os.fstat(w)
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        elif self.journal_stream:
            env["JOURNAL_STREAM"] = self.journal_stream
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                         stderr=w, env=env, cwd=self.tmp,
                                         start_new_session=True, pass_fds=self.pass_fds)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self._reader = threading.Thread(target=self._drain, args=(os.fdopen(r, "rb"),),
                                         daemon=True)
        self._reader.start()
        if not self.wait_listening:
            return
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(2)
                rc = self.proc.poll()
                if rc is None:
                    self.proc.kill()
                    self.proc.wait(5)
                raise AssertionError(
                    "hookd did not log msg=listening (exit %r); stderr:\n%s"
                    % (rc, "\n".join(self.logs())))

    def _drain(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
                self.raw_lines.append(raw.rstrip(b"\n"))
            m = LISTENING.search(line)
            if m and m.group(1):
                if self.admin_port is None:
                    self.admin_port = int(m.group(2))
            elif m and self.port is None:
                self.port = int(m.group(2))
                self._listening.set()
        stream.close()

    def log_ended(self, timeout=5.0):
        """Waits until hookd's stderr is closed (it exited); True if it was."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def logs(self):
        with self._lock:
            return list(self.lines)

    def log_text(self):
        return "\n".join(self.logs())

    def wait_log(self, *needles, timeout=5.0, start=0, regex=None):
        """The first log line (from index start) containing every needle
        (and matching regex), or None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.logs()[start:]:
                if all(n in line for n in needles) and (
                        regex is None or re.search(regex, line)):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, check=True):
        """SIGTERM, wait <= 15 s (then SIGKILL); asserts exit 0 if check."""
        if self.proc is None:
            return None
        timed_out = False
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                timed_out = True
                self.proc.kill()
                self.proc.wait(5)
        self.rc = self.proc.returncode
        if self._reader:
            self._reader.join(5)
        if self._stdout:
            self._stdout.close()
            self._stdout = None
        if check:
            if timed_out:
                raise AssertionError("hookd did not exit within %ds of SIGTERM" % STOP_TIMEOUT)
            if self.rc != self.expected_rc:
                raise AssertionError("hookd exited %r (not %r); stderr tail:\n%s"
                                     % (self.rc, self.expected_rc, "\n".join(self.logs()[-20:])))
        return self.rc

    def check_no_secrets(self):
        bad = sanitizer_lines(self.log_text())
        if bad:
            raise AssertionError("sanitizer report on hookd's stderr:\n" + "\n".join(bad))
        if self.leaks:
            raise AssertionError("secrets in responses: %r" % self.leaks)
        text = self.log_text()
        for s in self.secrets:
            if s in text:
                raise AssertionError("a secret appears in the log: %r" % s)

    def kill_recorded_groups(self):
        """Kills process groups whose leaders wrote $$ to {tmp}/pids."""
        text = self.read("pids") or ""
        for tok in text.split():
            if tok.isdigit():
                pgid = int(tok)
                if group_members(pgid):
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except OSError:
                        pass

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self._stdout:
            self._stdout.close()
            self._stdout = None
        self.kill_recorded_groups()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.stop(check=True)
                self.check_no_secrets()
            else:
                self.stop(check=False)
        finally:
            self.cleanup()
        return False

    # ---- HTTP

    def connect(self, timeout=HTTP_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None,
                content_length=True, timeout=HTTP_TIMEOUT):
        """One request; headers a dict or list of pairs (a None value omits
        the header). Content-Length is explicit whenever there is a body."""
        own = conn is None
        if own:
            conn = self.connect(timeout)
        try:
            if isinstance(body, str):
                body = body.encode("utf-8")
            conn.putrequest(method, path, skip_accept_encoding=True)
            pairs = headers.items() if isinstance(headers, dict) else (headers or [])
            names = set()
            for k, v in pairs:
                if v is None:
                    continue
                names.add(k.lower())
                conn.putheader(k, v)
            if body is not None and content_length and "content-length" not in names:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {}
            for k, v in r.getheaders():
                k = k.lower()
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
            for sec in self.secrets:
                if sec.encode() in raw or sec in repr(hdrs):
                    self.leaks.append("%s %s -> %d holds a secret" % (method, path, r.status))
            return Response(r.status, hdrs, raw, r.reason)
        finally:
            if own:
                conn.close()

    def post(self, path, body, headers=None, **kw):
        return self.request("POST", path, body, headers, **kw)

    def raw(self, data, timeout=5.0, half_close=False):
        """Sends raw bytes on a new connection, reads until a whole response
        arrived, EOF or timeout; returns (bytes, error or None)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        got = b""
        err = None
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    err = "timeout"
                    break
                except OSError as e:
                    err = "%s: %s" % (type(e).__name__, e)
                    break
                if not chunk:
                    break
                got += chunk
                r = parse_raw_response(got)
                if r is not None and "content-length" in r.headers and \
                        len(r.raw) >= int(r.headers["content-length"] or 0):
                    break
            else:
                err = "timeout"
        finally:
            s.close()
        return got, err

    def northflank(self, body=None, event=None, event_id=None, token=NF_TOKEN,
                   event_type=True, path="/webhook", content_type="application/json",
                   extra=None, conn=None, **kw):
        """A Northflank delivery. body defaults to the sample payload (with
        `event` replaced when event is given); event_type True sends the
        Event-Type header equal to the body's event, a string sends that,
        None leaves it out. token None leaves the token out."""
        if body is None:
            if event is None:
                body = sample_body()
            else:
                obj = sample_json()
                obj["event"] = event
                body = json.dumps(obj).encode()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if isinstance(body, str):
            body = body.encode("utf-8")
        if event_type is True:
            try:
                ev = json.loads(body).get("event")
            except (ValueError, AttributeError, RecursionError):
                ev = None
            event_type = ev if isinstance(ev, str) else None
        self.last_id = event_id or new_id()
        headers = [
            ("Content-Type", content_type),
            (NF_PREFIX + "Id", NF_INTEGRATION_ID),
            (NF_PREFIX + "Name", NF_INTEGRATION_NAME),
            (NF_PREFIX + "Token", token),
            (NF_PREFIX + "Event-Id", self.last_id),
            (NF_PREFIX + "Event-Type", event_type),
        ]
        if extra:
            headers += list(extra.items()) if isinstance(extra, dict) else list(extra)
        return self.post(path, body, headers, conn=conn, **kw)


NF_CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 1s
kill_grace = 1s

[endpoint northflank]
path = /webhook
scheme = northflank
secret = %s
""" % NF_TOKEN


def json_body(obj, size=None):
    """obj as compact JSON; with size, padded (a "pad" key) to exactly size bytes."""
    if size is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    o = dict(obj)
    o["pad"] = ""
    base = len(json.dumps(o, separators=(",", ":")))
    if size < base:
        raise ValueError("size too small")
    o["pad"] = "x" * (size - base)
    data = json.dumps(o, separators=(",", ":")).encode()
    assert len(data) == size
    return data


class HookdTestCase(unittest.TestCase):
    """Assertions shared by the black-box test files."""
    maxDiff = None

    def assertAnswer(self, r, status, msg=None):
        """r has HTTP status `status` and a JSON object body; returns the body."""
        self.assertEqual(r.status, status, msg or repr(r))
        ct = r.header("Content-Type", "")
        self.assertTrue(ct.startswith("application/json"), "Content-Type %r: %r" % (ct, r))
        self.assertTrue(r.is_json and isinstance(r.body, dict),
                        "body not a JSON object: %r" % r)
        self.assertNotIn(NF_TOKEN.encode(), r.raw, "the token appears in a response")
        return r.body

    def assertNothingRan(self, h, msg=None):
        self.assertEqual(h.ran(), [], msg or "a hook ran where none should")

    def hook_env(self, h, rel="env.txt"):
        """The environment a hook dumped to {tmp}/rel; fails if none did."""
        env = h.env_of(rel)
        self.assertIsNotNone(env, "no hook dumped its environment (%s)" % rel)
        return env

    def hook_entry(self, body, i=0):
        hooks = body.get("hooks")
        self.assertIsInstance(hooks, list, "no hooks list: %r" % body)
        self.assertGreater(len(hooks), i, "hooks list too short: %r" % body)
        return hooks[i]


def main():
    """unittest.main with a summary line; exits non-zero on failure."""
    if not os.path.exists(HOOKD_BIN):
        print("HOOKD_BIN %s does not exist" % HOOKD_BIN, file=sys.stderr)
        sys.exit(1)
    if not os.path.isfile(SAMPLE_PATH):
        print("%s not found: HOOKD_SOURCE must be the repository" % SAMPLE_PATH, file=sys.stderr)
        sys.exit(1)
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    print("\nsummary: %d run, %d failures, %d errors, %d skipped"
          % (r.testsRun, len(r.failures), len(r.errors), len(r.skipped)))
    sys.exit(0 if r.wasSuccessful() else 1)
