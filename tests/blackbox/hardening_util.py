"""A small harness for the hardening, valgrind and soak tests (Python 3
stdlib only): one hookd daemon on 127.0.0.1:0 in a temp dir, its stderr in a
file (so a flood of log lines can never block it), plain HTTP helpers and
/proc readings (RSS, CPU time, fds, children, zombies).

$HOOKD_BIN is the daemon (default: build/hookd in the source tree).
$HOOKD_WRAPPER, when set, is a command line put before it (split like a
shell would), e.g. "valgrind --leak-check=full --error-exitcode=99": any
test using this harness then runs the daemon under that tool.
"""

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HOOKD_BIN, SOURCE, parse_raw_response, sh  # noqa: E402,F401

START_TIMEOUT = 30.0  # valgrind is slow to start
STOP_TIMEOUT = 30.0

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def wrapper():
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


# ---------------------------------------------------------------------------
# /proc

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


def group_members(pgid):
    return [p for p, (_, pg, st) in all_procs().items() if pg == pgid and st != "Z"]


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


# ---------------------------------------------------------------------------
# HTTP

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


class Daemon:
    """One hookd under test, as a context manager. config is INI text with
    {tmp} and {hooks} placeholders; hooks maps names in hooks.d to script
    text. The temp dir is world-readable so a daemon running as `nobody`
    can run the hooks."""

    def __init__(self, config, hooks=None, env=None, preexec_fn=None, wrap=True,
                 start=True):
        self.tmp = tempfile.mkdtemp(prefix="hookd-hard-")
        os.chmod(self.tmp, 0o755)
        self.hooks = os.path.join(self.tmp, "hooks.d")
        os.mkdir(self.hooks)
        os.chmod(self.hooks, 0o755)
        self.config_path = os.path.join(self.tmp, "hookd.ini")
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.env.update(env or {})
        self.preexec_fn = preexec_fn
        self.wrap = wrapper() if wrap else []
        self.proc = None
        self.port = None
        self.rc = None
        with open(self.config_path, "w") as f:
            f.write(self.subst(config))
        for name, text in (hooks or {}).items():
            self.write_hook(name, text)
        if start:
            try:
                self.start()
            except BaseException:
                self.cleanup()
                raise

    def subst(self, text):
        return text.replace("{tmp}", self.tmp).replace("{hooks}", self.hooks)

    def path(self, rel):
        return os.path.join(self.tmp, rel)

    def write_hook(self, name, text, mode=0o755):
        p = os.path.join(self.hooks, name)
        with open(p, "w") as f:
            f.write(self.subst(text))
        os.chmod(p, mode)
        return p

    def read(self, rel):
        try:
            with open(self.path(rel), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return None

    @property
    def pid(self):
        return self.proc.pid

    def command(self):
        return self.wrap + [HOOKD_BIN, "-c", self.config_path, "serve"]

    def start(self):
        if getattr(self, "_log", None):
            self._log.close()
        self._log = open(self.log_path, "ab")
        since = self._log.tell()  # a restart appends: find its own line
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=self.env,
                                     cwd=self.tmp, start_new_session=True,
                                     preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"msg=listening addr=127\.0\.0\.1:(\d+)", self.logs()[since:])
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("hookd did not start (exit %r):\n%s"
                             % (self.proc.poll(), self.logs()[-3000:]))

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, *needles):
        return [l for l in self.logs().splitlines() if all(n in l for n in needles)]

    def wait_log(self, *needles, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(*needles)
            if lines:
                return lines[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit status (None if it hung)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.rc = None
                return None
        self.rc = self.proc.returncode
        return self.rc

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
        # Hook processes that a test left behind on purpose wrote their pids.
        for tok in (self.read("pids") or "").split():
            if tok.isdigit():
                try:
                    os.kill(int(tok), signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Stops the daemon; when the test passed so far, it must exit 0
        (a sanitizer's or valgrind's report at exit makes it fail)."""
        try:
            if self.proc is not None:
                rc = self.stop()
                if exc_type is None and rc != 0:
                    raise AssertionError("hookd exited %r; log tail:\n%s"
                                         % (rc, self.logs()[-4000:]))
        finally:
            self.cleanup()
        return False

    # ---- HTTP

    def connect(self, timeout=10.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, method, path, body=b"", headers=None, timeout=30.0):
        """One request on a new connection -> (status, headers, body bytes)."""
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

    def post(self, body, path="/webhook", headers=None, timeout=30.0):
        return self.request("POST", path, body, headers, timeout)

    def raw(self, data, timeout=10.0):
        """Sends raw bytes on a new connection, returns the parsed answer."""
        s = self.connect(timeout)
        try:
            s.sendall(data)
            return recv_response(s, timeout)
        finally:
            s.close()


def post_json(port, obj, path="/webhook", headers=None, timeout=30.0):
    """A POST without a Daemon object (for threads)."""
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
