"""The one harness of hookd's black-box tests, the soak and the valgrind
run (Python 3 stdlib only): the daemon launcher, the shared constants (the
Northflank token among them), HTTP clients, log and /proc readings.

The daemon under test is $HOOKD_BIN (default: $HOOKD_SOURCE/build/hookd).
Every test starts its own daemon on 127.0.0.1:0 in a fresh temp dir with
`Hookd(...)` as a context manager; leaving the block stops the daemon with
SIGTERM (asserting exit 0), kills any hook process groups the hooks recorded,
and removes the temp dir. Options put it under $HOOKD_WRAPPER (valgrind),
send its log to a file, give it a state dir, serve TLS from a given dir.

Config and hook texts may contain the placeholders {tmp} (the temp dir),
{hooks} (the hooks dir, {tmp}/hooks.d) and {state} ({tmp}/state); they are
replaced literally (no str.format, so shell `${x}` is safe). {journal}, in
[server], is the journal backend's lines: none for SQLite (the default, in
state_dir), and with HOOKD_TEST_JOURNAL=postgresql `journal = URL` and
`journal_password_file = PATH` of a new database for each daemon, on the
tests' own PostgreSQL (pgserver.py); journal_config() puts it there.
Certificates for the TLS tests come from pki.py.
"""

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import pgserver  # the tests' own PostgreSQL (same dir)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("HOOKD_SOURCE") or os.path.normpath(os.path.join(HERE, "..", ".."))
HOOKD_BIN = os.path.abspath(os.environ.get("HOOKD_BIN") or os.path.join(SOURCE, "build", "hookd"))

# The journal backend the journal tests run against: sqlite (state_dir) or
# postgresql (pgserver.py's cluster; bb_journal_pg).
JOURNAL_BACKEND = os.environ.get("HOOKD_TEST_JOURNAL") or "sqlite"
if JOURNAL_BACKEND not in ("sqlite", "postgresql"):
    raise SystemExit("HOOKD_TEST_JOURNAL=%s: sqlite or postgresql" % JOURNAL_BACKEND)



def data_file(name):
    """A sample file of the repository: tests/data/NAME."""
    return os.path.join(SOURCE, "tests", "data", name)


SAMPLE_PATH = data_file("northflank-build-start.json")
VECTORS_PATH = data_file("signature-vectors.json")

START_TIMEOUT = 10.0   # seconds to see msg=listening
STOP_TIMEOUT = 15.0    # seconds for SIGTERM to end the daemon
HTTP_TIMEOUT = 15.0    # seconds a request may take
SLOW_TIMEOUT = 30.0    # start and stop under a wrapper such as valgrind
WAIT = 10.0            # seconds for any one thing to happen

# The one Northflank token of the tests: every Northflank endpoint they
# configure takes it, and it must appear in no log line and no answer.
NF_TOKEN = "nf-t0ken-Sup3rS3cret-4711"
NF_PREFIX = "X-Northflank-Notification-Integration-"
NF_INTEGRATION_ID = "int-8f3a2c"
NF_INTEGRATION_NAME = "blog-hooks"

CANARY_NAME = "HOOKD_TEST_CANARY"
CANARY_VALUE = "canary-must-not-leak-91c2"

# Variables a /bin/sh (dash) adds by itself when a hook dumps `env`.
SHELL_VARS = {"PWD", "OLDPWD", "SHLVL", "_"}


def sample_body(event=None):
    """The sample Northflank payload (bytes); with event, that event in it."""
    with open(SAMPLE_PATH, "rb") as f:
        body = f.read()
    if event is None:
        return body
    doc = json.loads(body)
    doc["event"] = event
    return json.dumps(doc).encode()


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


def wait_until(fn, timeout, step=0.02):
    """fn() until it returns something true or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def wait_for(pred, timeout=10.0, what="condition"):
    """pred() until it is true; raises after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# --------------------------------------------------------------------------
# processes and /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def wrapper_argv():
    """$HOOKD_WRAPPER split like a shell would ([] when unset), e.g.
    "valgrind --leak-check=full --error-exitcode=99"."""
    w = os.environ.get("HOOKD_WRAPPER", "").strip()
    return shlex.split(w) if w else []


def binary_has_asan(path=HOOKD_BIN):
    """Whether the daemon was built with AddressSanitizer (its RSS is then
    dominated by shadow memory and quarantine, and valgrind cannot run it)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def shim_preload(tc, shim):
    """LD_PRELOAD for a test shim (tests/blackbox/*shim.c). Under ASan its
    runtime must come first in the list, or the daemon refuses to start;
    the test is skipped if ldd does not name it."""
    if not binary_has_asan():
        return shim
    out = subprocess.run(["ldd", HOOKD_BIN], capture_output=True, text=True).stdout
    asan = [w for line in out.splitlines() for w in line.split() if "/libasan.so" in w]
    if not asan:
        tc.skipTest("ASan's runtime not found to preload before the shim")
    return asan[0] + ":" + shim


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


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state is [0])."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        s = f.read().decode("ascii", "replace")
    return s[s.rfind(")") + 2:].split()


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    st = proc_stat(pid)
    return (int(st[11]) + int(st[12])) / CLK_TCK


def status_kb(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kb(pid):
    return status_kb(pid, "VmRSS")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def all_procs():
    """pid -> (ppid, pgrp, state) for every process we can read."""
    out = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            st = proc_stat(int(e))
        except OSError:
            continue
        out[int(e)] = (int(st[1]), int(st[2]), st[0])
    return out


def children(pid):
    """(live children, zombie children) of pid."""
    live, zombies = [], []
    for p, (ppid, _, state) in all_procs().items():
        if ppid == pid:
            (zombies if state == "Z" else live).append(p)
    return live, zombies


def descendants(pid):
    procs = all_procs()
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        for p, (ppid, _, _) in procs.items():
            if ppid == cur:
                out.append(p)
                todo.append(p)
    return out


def uid_process_count(uid):
    """Threads (what RLIMIT_NPROC counts) of processes whose real uid is uid."""
    n = 0
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/status" % e) as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"^Uid:\s+(\d+)", text, re.M)
        t = re.search(r"^Threads:\s+(\d+)", text, re.M)
        if m and int(m.group(1)) == uid:
            n += int(t.group(1)) if t else 1
    return n


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


def plain_env(extra=None):
    """PATH, LANG and the sanitizers' options as the test runner set them:
    the environment of the hardening, TLS, soak and valgrind runs."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    if extra:
        env.update(extra)
    return env


def run(cmd, input=None, timeout=30.0):
    """Runs a command; returns CompletedProcess with text output."""
    return subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True)


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



def parse_response(data):
    """(status, headers dict lower-cased, body bytes) from raw bytes, or None
    when no complete head is there."""
    r = parse_raw_response(data)
    return (r.status, r.headers, r.raw) if r else None


def recv_response(s, timeout=10.0):
    """Reads one whole response from socket s -> (status, headers, body)
    or (None, None, bytes so far) on EOF/reset/timeout."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        got += chunk
        r = parse_response(got)
        if r and len(r[2]) >= int(r[1].get("content-length", "0") or 0):
            return r
    return None, None, got


# Hook text: wait until the test writes {tmp}/go (8 s at most), so that a
# hook is still running at whatever later step the test needs it to be,
# however slowly a loaded machine gets there. The test writes go at the end.
WAIT_FOR_GO = ("i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 80 ]; do sleep 0.1; i=$((i+1));"
               " done\n")


def read_all(s, timeout=15.0):
    """Everything s sends until EOF (or timeout)."""
    s.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        got += chunk
    return got


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


def raw_exchange(port, data, timeout=WAIT):
    """Sends raw bytes, returns what comes back until the server closes."""
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


def http_request(port, method, path, body=None, headers=None, timeout=WAIT):
    """One request to 127.0.0.1:port with http.client's defaults -> Response."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw, r.reason)
    finally:
        c.close()


def post_json(port, obj, path="/webhook", headers=None, timeout=30.0):
    """A POST without a Hookd object (for threads) -> (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        h = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        h.update(headers or {})
        c.request("POST", path, body, h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def nf_headers(event_id=None, token=NF_TOKEN, event=None, integration=False):
    """The headers of a Northflank delivery: the token and the event id (a
    new one when None); Event-Type when event is given; the integration's
    Id and Name when integration is true."""
    h = {"Content-Type": "application/json", NF_PREFIX + "Token": token}
    if event:
        h[NF_PREFIX + "Event-Type"] = event
    h[NF_PREFIX + "Event-Id"] = event_id or new_id("ops")
    if integration:
        h[NF_PREFIX + "Id"] = NF_INTEGRATION_ID
        h[NF_PREFIX + "Name"] = NF_INTEGRATION_NAME
    return h


def nf_request(event_id, body=None, path="/webhook"):
    """The bytes of one Northflank delivery (Connection: close)."""
    body = body if body is not None else sample_body()
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "%sToken: %s\r\n%sEvent-Id: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n"
            % (path, NF_PREFIX, NF_TOKEN, NF_PREFIX, event_id, len(body)))
    return head.encode() + body


# The address in hookd's "listening" and "admin listening" lines, logfmt or JSON.
LISTENING = re.compile(r'(?:msg=|"msg":)"?(admin )?listening\b.*?'
                       r'(?:\[[^\]]*\]|\d+\.\d+\.\d+\.\d+):(\d+)')
ADMIN_LISTENING = r'(msg="admin listening"|"msg":"admin listening")'


class Hookd:
    """One hookd daemon under test (a context manager); the only launcher
    of the tests.

    config: INI text ({tmp}, {hooks}, {state}) or a function (tmp, hooks) -> text.
    hooks: {rel: text, (text, mode), or None for a directory} in hooks.d.
    files: {rel: text or bytes} in the temp dir. secrets: strings that must
    appear in no log line and no answer. args: hookd's arguments after
    `-c CONFIG` (default: serve). wrap: argv put before hookd's (a
    socket-activation shim, say) and pass_fds: the fds it inherits.
    wrapper True: $HOOKD_WRAPPER (valgrind, say) goes first of all, and
    start and stop may take SLOW_TIMEOUT.
    journal_stream: True sets JOURNAL_STREAM to hookd's stderr, as systemd
    does; a string sets it to that. listening False: start() does not wait
    for the "listening" line (a daemon that should fail to start).
    log_file True: hookd's stdout and stderr go to {tmp}/stderr.log, so
    that a flood of log lines can never block it (else a thread reads a
    pipe). tmp: a dir the caller made (and removes), for instance with the
    TLS certificates in it; else a new one, removed on leaving.
    world_readable: the temp and hooks dirs 0755, for a daemon that drops
    to `nobody`. env: variables over base_env(), by default daemon_env()
    (with the canary); plain_env is the other one.
    preexec_fn: run in the child before hookd (rlimits). wait_admin: with
    an [admin] section, start() waits for its line too (admin_port).
    expected_rc: the exit status leaving the block asserts (0)."""

    def __init__(self, config, hooks=None, env=None, secrets=(), args=None,
                 start=True, files=None, wrap=(), pass_fds=(), journal_stream=None,
                 listening=True, wrapper=False, log_file=False, tmp=None,
                 world_readable=False, base_env=None, preexec_fn=None, wait_admin=False):
        self.own_tmp = tmp is None
        self.tmp = tempfile.mkdtemp(prefix="hookd-bb-") if tmp is None else tmp
        self.hooks = os.path.join(self.tmp, "hooks.d")
        os.makedirs(self.hooks, exist_ok=True)
        if world_readable:
            os.chmod(self.tmp, 0o755)
            os.chmod(self.hooks, 0o755)
        self.config_path = os.path.join(self.tmp, "hookd.ini")
        self.log_path = os.path.join(self.tmp, "stderr.log") if log_file else None
        self.secrets = [s for s in secrets if s]
        self.env = (base_env or daemon_env)(env)
        self.args = args
        self.wrap = (wrapper_argv() if wrapper else []) + list(wrap or ())
        self.start_timeout = SLOW_TIMEOUT if wrapper or log_file else START_TIMEOUT
        self.stop_timeout = SLOW_TIMEOUT if wrapper or log_file else STOP_TIMEOUT
        self.pass_fds = tuple(pass_fds)
        self.journal_stream = journal_stream
        self.wait_listening = listening
        self.preexec_fn = preexec_fn
        self.wait_admin = wait_admin
        self.expected_rc = 0
        self.journal_backend = "sqlite"  # {journal}: see journal_lines()
        self.journal_url = None
        self._journal_lines = None
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

    @property
    def state(self):
        return os.path.join(self.tmp, "state")

    @property
    def pid(self):
        return self.proc.pid

    def subst(self, text):
        if "{journal}" in text:
            text = text.replace("{journal}", self.journal_lines())
        return (text.replace("{tmp}", self.tmp).replace("{hooks}", self.hooks)
                .replace("{state}", self.state))

    def journal_lines(self):
        """What {journal} stands for: made once, so that a restart or a
        rewritten config keeps the same database."""
        if self._journal_lines is None:
            self._journal_lines = ""
            if JOURNAL_BACKEND == "postgresql":
                self.journal_url = pgserver.cluster().create_database()
                self.journal_backend = "postgresql"
                self._journal_lines = pg_config_lines(self.journal_url)
                self.secrets.append(pgserver.cluster().password())
        return self._journal_lines

    def journal_query(self, sql):
        """Rows of sql on this daemon's journal, SQLite or PostgreSQL (a
        list of tuples; PostgreSQL's values come as strings)."""
        if self.journal_backend == "postgresql":
            return pgserver.cluster().psql(self.journal_url, sql)
        import sqlite3
        db = sqlite3.connect("file:%s/journal.db?mode=ro" % self.state, uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

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

    def lines_of(self, rel):
        """The lines of a file in tmp, each split into words."""
        return [l.split() for l in (self.read(rel) or "").splitlines() if l.strip()]

    # ---- process

    def command(self):
        cmd = self.wrap + [HOOKD_BIN, "-c", self.config_path]
        return cmd + (self.args if self.args is not None else ["serve"])

    def start(self):
        """Starts the daemon and waits for its "listening" line. After
        stop() it starts again on the same temp dir (and journal); the log
        lines of earlier runs are kept, and port is the new one."""
        self.port = self.admin_port = None
        self._listening.clear()
        if self.log_path:
            self._start_to_file()
        else:
            self._start_to_pipe()
        # The "admin listening" line follows the "listening" one waited
        # for: with an [admin] section, wait for it too (admin_port).
        if self.wait_admin and self.wait_listening and "[admin]" in self.read("hookd.ini"):
            try:
                self.wait_admin_port(timeout=2.0)
            except AssertionError:
                pass  # an [admin] that listens nowhere

    def _start_to_pipe(self):
        """start() with a thread reading hookd's stderr from a pipe."""
        if self._stdout:
            self._stdout.close()  # a restart after kill9 (which leaves it open)
        self._stdout = open(self.path("stdout.log"), "ab")
        env = dict(self.env)
        r, w = os.pipe()
        if self.journal_stream is True:
            st = os.fstat(w)
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        elif self.journal_stream:
            env["JOURNAL_STREAM"] = self.journal_stream
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._stdout, stderr=w, env=env, cwd=self.tmp,
                                         start_new_session=True, pass_fds=self.pass_fds,
                                         preexec_fn=self.preexec_fn)
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
        deadline = time.monotonic() + self.start_timeout
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

    def _start_to_file(self):
        """start() with hookd's stdout and stderr appended to log_path."""
        if self._stdout:
            self._stdout.close()
        self._stdout = open(self.log_path, "ab")
        since = self._stdout.tell()  # a restart appends: find its own lines
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._stdout, stderr=self._stdout, env=self.env,
                                     cwd=self.tmp, start_new_session=True,
                                     pass_fds=self.pass_fds, preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            for line in self._file_text()[since:].splitlines():
                self._saw(line)
            if self.port is not None or not self.wait_listening:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("hookd did not start (exit %r):\n%s"
                             % (self.proc.poll(), self.log_text()[-3000:]))

    def _saw(self, line):
        """Takes the ports from a "listening" line."""
        m = LISTENING.search(line)
        if m and m.group(1):
            if self.admin_port is None:
                self.admin_port = int(m.group(2))
        elif m and self.port is None:
            self.port = int(m.group(2))
            self._listening.set()

    def _drain(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
                self.raw_lines.append(raw.rstrip(b"\n"))
            self._saw(line)
        stream.close()

    def _file_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_open(self):
        """Whether hookd may still write log lines (its stderr is open)."""
        if self.log_path:
            return self.proc is not None and self.proc.poll() is None
        return self._reader is not None and self._reader.is_alive()

    def log_ended(self, timeout=5.0):
        """Waits until hookd's stderr is closed (it exited); True if it was."""
        if self.log_path:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def logs(self):
        """hookd's log lines so far, of every run."""
        if self.log_path:
            return self._file_text().splitlines()
        with self._lock:
            return list(self.lines)

    def log_text(self):
        return "\n".join(self.logs())

    def log_lines(self, *needles):
        """The log lines containing every needle."""
        return [l for l in self.logs() if all(n in l for n in needles)]

    def count_log(self, regex):
        """How many log lines match regex."""
        return sum(1 for l in self.logs() if re.search(regex, l))

    def wait_log(self, *needles, timeout=WAIT, start=0, regex=None):
        """The first log line (from index start) containing every needle
        (and matching regex), or None after timeout (WAIT unless told: a
        line after retries, restarts or CLI calls can take seconds on a
        loaded machine under sanitizers; a check that no line comes names
        its own short timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.logs()[start:]:
                if all(n in line for n in needles) and (
                        regex is None or re.search(regex, line)):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def wait_line(self, pattern, timeout=WAIT, start=0):
        """The first log line at index >= start matching the regex; raises
        on timeout, or when hookd's log ends without one."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            ended = not self.log_open()  # before reading: no line is missed
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

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP, then the reload's outcome line."""
        mark = len(self.logs())
        self.proc.send_signal(signal.SIGHUP)
        line = self.wait_log(regex=r"msg=\"(config reloaded|reload failed)", timeout=WAIT,
                             start=mark)
        if line is None:
            raise AssertionError("no reload outcome logged:\n" + self.log_text())
        return line

    def kill9(self):
        """SIGKILL to the daemon, as a crash; see kill_orphaned_hooks."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)
        if self._reader:
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

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, check=True, timeout=None):
        """SIGTERM, wait <= 15 s or timeout (then SIGKILL); asserts exit
        expected_rc if check. Returns the exit status."""
        if self.proc is None:
            return None
        timed_out = False
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
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
                raise AssertionError("hookd did not exit within %ds of SIGTERM" % timeout)
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
        """Kills the processes that hooks left behind on purpose and wrote
        to {tmp}/pids: a process group when the pid leads one, else the
        process."""
        text = self.read("pids") or ""
        for tok in text.split():
            if tok.isdigit():
                pid = int(tok)
                try:
                    if group_members(pid):
                        os.killpg(pid, signal.SIGKILL)
                    elif pid_alive(pid):
                        os.kill(pid, signal.SIGKILL)
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
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self.journal_url:
            try:
                pgserver.cluster().drop_database(self.journal_url)
            except pgserver.PgError as e:  # costs disk only: say so, keep the test's outcome
                print("harness: cannot drop %s: %s" % (self.journal_url, e), file=sys.stderr)
            self.journal_url = None

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

    # ---- the command line

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

    # ---- HTTP

    def connect(self, timeout=HTTP_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def socket(self, timeout=WAIT):
        """A plain TCP connection to the listener."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def https(self, cafile, host="localhost"):
        """An http.client connection over TLS verified against cafile."""
        return http.client.HTTPSConnection(host, self.port,
                                           context=ssl.create_default_context(cafile=cafile),
                                           timeout=WAIT)

    def peer_serial(self, cafile, host="localhost"):
        """The serial (int) of the certificate a new TLS connection is served."""
        ctx = ssl.create_default_context(cafile=cafile)
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                return int(s.getpeercert()["serialNumber"], 16)

    def exchange(self, method, path, body=b"", headers=None, timeout=30.0):
        """One request on a new connection, Content-Type application/json
        unless headers say otherwise -> (status, headers, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode()
            if isinstance(body, dict):
                body = json.dumps(body).encode()
            c.putrequest(method, path, skip_accept_encoding=True)
            hdrs = dict(headers or {})
            hdrs.setdefault("Content-Type", "application/json")
            for k, v in hdrs.items():
                if v is not None:
                    c.putheader(k, v)
            if "Content-Length" not in hdrs:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def post_body(self, body, path="/webhook", headers=None, timeout=30.0):
        """exchange() of a POST: body (bytes, str or a dict sent as JSON)."""
        return self.exchange("POST", path, body, headers, timeout)

    def raw_answer(self, data, timeout=10.0):
        """Sends raw bytes on a new connection -> (status, headers, body),
        or (None, None, bytes so far) when no whole answer came."""
        s = self.socket(timeout)
        try:
            s.sendall(data)
            return recv_response(s, timeout)
        finally:
            s.close()

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

    def deliver(self, body=None, event_id=None, token=NF_TOKEN, headers=None, path="/webhook"):
        """A Northflank delivery with the token and an event id only (the
        sample payload unless body is given)."""
        h = nf_headers(event_id, token)
        h.update(headers or {})
        return self.post(path, sample_body() if body is None else body, h)

    def wait_admin_port(self, timeout=WAIT):
        """The admin listener's port, once its line is logged."""
        self.wait_line(ADMIN_LISTENING, timeout=timeout)
        # The reader takes the port from the line just after storing it.
        deadline = time.monotonic() + 2.0
        while self.admin_port is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.admin_port

    def admin(self, method, path, body=None, headers=None):
        """One request to the admin listener."""
        return http_request(self.wait_admin_port(), method, path, body, headers)

    def scrape(self):
        r = self.admin("GET", "/metrics")
        assert r.status == 200, (r.status, r.raw)
        return r.text

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



def hardened_hookd(config, hooks=None, env=None, preexec_fn=None, wrap=True, start=True):
    """Hookd as the hardening, secrets, valgrind and soak runs use it:
    under $HOOKD_WRAPPER (wrap False: never; an argv: that one), its log in
    a file (a flood of lines cannot block it), its dirs world-readable (it
    may drop to `nobody`), the plain environment."""
    argv = list(wrap) if isinstance(wrap, (list, tuple)) else ()
    return Hookd(config, hooks, env=env, preexec_fn=preexec_fn, wrapper=wrap is True,
                 wrap=argv, start=start, log_file=True, world_readable=True,
                 base_env=plain_env)


def ops_hookd(config, hooks=None, **kw):
    """Hookd as the operations tests (admin listener, systemd, examples)
    use it: the Northflank token a secret, and with an [admin] section
    start() waits for its line too."""
    kw.setdefault("secrets", (NF_TOKEN,))
    kw.setdefault("wait_admin", True)
    return Hookd(config, hooks, **kw)


class JournalHookd(Hookd):
    """Hookd as the journal tests use it: the Northflank token a secret,
    post() a Northflank delivery by event id (the sample payload, the
    integration's headers, the time it took), stop() that says how long
    it took; leaving the block also asserts that the log has no
    level=error line."""

    def __init__(self, cfg, hooks=None, start=True):
        super().__init__(cfg, hooks=hooks, start=start, secrets=(NF_TOKEN,))

    def check_no_secrets(self):
        super().check_no_secrets()
        errors = [l for l in self.logs() if "level=error" in l]
        if errors:
            raise AssertionError("hookd logged errors:\n" + "\n".join(errors))

    def stop(self, check=True, timeout=None):
        """SIGTERM and wait; returns (exit status, seconds it took)."""
        t0 = time.monotonic()
        rc = super().stop(check=check, timeout=timeout)
        return rc, time.monotonic() - t0

    def post(self, event_id, body=None, event=None, token=NF_TOKEN, timeout=20.0,
             headers=None):
        """A Northflank delivery with the sample payload (body: a dict to send
        instead; event: replaces its `event`; headers: more headers)."""
        obj = sample_json() if body is None else body
        if event is not None:
            obj = dict(obj, event=event)
        data = json.dumps(obj).encode()
        send = {
            "Content-Type": "application/json",
            NF_PREFIX + "Id": NF_INTEGRATION_ID,
            NF_PREFIX + "Name": NF_INTEGRATION_NAME,
            NF_PREFIX + "Token": token,
            NF_PREFIX + "Event-Id": event_id,
            NF_PREFIX + "Event-Type": obj["event"],
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
            resp = Response(r.status, hdrs, raw, r.reason)
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


def pg_config_lines(db_url, instance=None, lease=None):
    """The [server] lines of a PostgreSQL journal at db_url (a URL of the
    tests' cluster, pgserver.py): the password through journal_password_file;
    instance and lease when given (several daemons on one database)."""
    text = "journal = %s\njournal_password_file = %s\n" % (
        db_url, pgserver.cluster().password_file())
    if instance is not None:
        text += "instance = %s\n" % instance
    if lease is not None:
        text += "lease = %s\n" % lease
    return text


def sqlite_only(test):
    """A test about the SQLite journal's file itself: skipped, and said so,
    when the journal tests run against PostgreSQL."""
    return unittest.skipIf(JOURNAL_BACKEND == "postgresql",
                           "SQLite file: not applicable to PostgreSQL")(test)


def journal_config(state=True, server="", endpoint="", extra=""):
    """A Northflank endpoint at /webhook with the journal of
    HOOKD_TEST_JOURNAL ({journal}); state False leaves state_dir unset, and
    the journal off. server, endpoint: more "key = value" lines for those
    sections (a [server] key given there replaces the default one)."""
    defaults = {"timeout": "10s", "kill_grace": "1s"}
    given = {l.split("=")[0].strip() for l in server.splitlines() if "=" in l}
    lines = "".join("%s = %s\n" % kv for kv in defaults.items() if kv[0] not in given)
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\n" + lines
            + ("state_dir = {state}\n{journal}" if state else "") + server
            + "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = %s\n" % NF_TOKEN + endpoint + "\n" + extra)


def base_config(extra_server="", extra="", admin=True):
    """A config with one Northflank endpoint at /webhook and hooks in {tmp}/hooks.d."""
    text = ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = hooks.d\n" + extra_server +
            "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = " + NF_TOKEN + "\n")
    if admin:
        text += "\n[admin]\nlisten = 127.0.0.1:0\n"
    return text + extra


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
