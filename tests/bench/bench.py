#!/usr/bin/env python3
"""hookd's side-by-side benchmark (issue 8); bench.sh builds and calls this.

Starts four servers on 127.0.0.1, each configured for the same four
scenarios with the same token check and the same hooks:

  hookd            the release build under test
  peer             adnanh/webhook (Debian's `webhook`), hooks.json below
  probe_reject     a bare libevent server answering 401 (the limit of a)
  probe_dispatch   libevent + posix_spawn(/bin/true) + answer on SIGCHLD
                   (the limit of c)

then loads one server at a time with wrk (same threads, connections,
duration and Lua script for all), scenario by scenario, and prints one
markdown table: requests/s, p50 and p99 of each, the ratios hookd/peer and
hookd/probe against the issue's targets, idle RSS and RSS after load, the
scale test (deliveries waiting for slots, hookd's peak RSS) and the machine.

Scenarios (hookd endpoint / peer hook id, all POSTing the sample payload):
  a  wrong token              /true     /hooks/true   (401; peer: rule mismatch code 401;
                              "Connection: close" to all: hookd closes after a refusal)
  b  an event with no hook    /none     /hooks/none   (hookd: empty hooks dir, 200
                              "unhandled"; peer: the token matches but the rule
                              wants another event: 200 "Hook rules were not satisfied.")
  c  sync dispatch /bin/true  /true     /hooks/true   (peer: include-command-output)
  d  script reading 3 vars    /webhook  /hooks/script (peer: pass-environment-to-command)

The machine's limits (issue 20), measured first and printed under every
table: its fdatasync rate and its posix_spawn rate (/bin/true, one at a
time). (c) and (d) are held against the dispatch probe by CPU per delivery
and p99 (the probe spawns (d)'s script for (d)).

The burst (issue 20, scenario f): 10,000 async deliveries (1,000 with
--short) sent as fast as they go to a hookd with the journal and a hook
that does nothing: when the last 202 came, when the last one had run (by
hookd's admin /metrics counters), its peak RSS.

The journal (issue 20): a second hookd with state_dir set runs (b) and (c)
again, and a third, with state_dir, one hook running (`max_running = 1`, a
hook that sleeps) and an async endpoint, takes async deliveries at the same
connections: every 202 waits for a sync of the journal's write-ahead log
(group commit). Beside them the machine's own fdatasync rate, measured on
the work directory's filesystem (where the state dirs are).

The PostgreSQL journal (issue 19 point 8, `--only g`): a private server
(tests/blackbox/pgserver.py, started and removed here), async accepts/s as
above with SQLite, PostgreSQL and one instance, and two instances sharing
one database; the claim latency (202 -> the hook's start); the take-over
after a SIGKILL with lease = 3s; with f, the burst with it too. The
server's settings that matter (synchronous_commit, fsync, ...) are printed
with its table.

Nothing here asserts a timing: the exit status is 0 when every server
started, answered every scenario as expected and the scale test filled its
queue; the targets are printed, not enforced.

Python standard library only.
"""

import argparse
import json
import os
import platform
import re
import resource
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
PAYLOAD = os.path.join(SOURCE, "tests", "data", "northflank-build-start.json")
LUA = os.path.join(HERE, "post.lua")

# The three payload variables the script hook reads (scenario d).
SCRIPT_VARS = [
    ("data.build.id", "HOOK_DATA_BUILD_ID"),
    ("data.build.branch", "HOOK_DATA_BUILD_BRANCH"),
    ("data.build.sha", "HOOK_DATA_BUILD_SHA"),
]
SCRIPT = """#!/bin/sh
# Reads three of the payload's variables, as a deploy script would.
echo "build $HOOK_DATA_BUILD_ID of $HOOK_DATA_BUILD_BRANCH at $HOOK_DATA_BUILD_SHA"
"""


class BenchError(Exception):
    pass


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---- processes --------------------------------------------------------------

class Server:
    """One server process whose stdout/stderr go to a file."""

    def __init__(self, name, argv, logpath, cwd=None):
        self.name = name
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd)
        self.port = None

    @property
    def pid(self):
        return self.proc.pid

    def wait_port(self, pattern, timeout=10.0):
        """Reads the port from the log (hookd, probes)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s at start; its log: %s"
                                 % (self.name, self.proc.returncode, self.tail()))
            with open(self.logpath, "rb") as f:
                m = rx.search(f.read().decode("utf-8", "replace"))
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise BenchError("%s did not say which port it listens on; its log: %s"
                         % (self.name, self.tail()))

    def wait_connectable(self, port, timeout=10.0):
        """Waits for a listener we chose the port of (the peer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with %s at start; its log: %s"
                                 % (self.name, self.proc.returncode, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                self.port = port
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError("%s is not listening on port %d" % (self.name, port))

    def tail(self, n=800):
        try:
            with open(self.logpath, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def rss_kb(self, field="VmRSS"):
        return proc_status_kb(self.pid, field)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def proc_status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError("no %s for pid %d" % (field, pid))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(n):
    """Raises RLIMIT_NOFILE to at least n (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))  # root may raise the hard limit
            return
        except (ValueError, OSError):
            n = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


# ---- configuration ----------------------------------------------------------

def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


AFTER_LOAD_WAIT_S = 3.0


def setup_configs(work, token):
    """hookd.ini + hooks dirs, and the peer's hooks.json, for scenarios a-d."""
    d_script = os.path.join(work, "hooks.d")
    d_true = os.path.join(work, "hooks-true.d")
    d_none = os.path.join(work, "hooks-none.d")
    for d in (d_script, d_true, d_none):
        os.mkdir(d)
    script = os.path.join(d_script, "build:start")
    write_exec(script, SCRIPT)
    # hookd follows a symlink to an executable: the hook is /bin/true itself.
    os.symlink("/bin/true", os.path.join(d_true, "build:start"))

    # The same daemon with the journal on: (b) and (c) again.
    with open(os.path.join(work, "hookd-journal.ini"), "w") as f:
        f.write("""; written by tests/bench/bench.py
[server]
listen = 127.0.0.1:0
hooks_dir = hooks.d
state_dir = {w}/state-journal

[endpoint true]
path = /true
scheme = northflank
secret = {t}
hooks_dir = hooks-true.d

[endpoint none]
path = /none
scheme = northflank
secret = {t}
hooks_dir = hooks-none.d
""".format(t=token, w=work))

    # Async acceptance: the queue behind one slow hook, so that what is
    # measured is the answer, and the journal's syncs behind it.
    d_slow = os.path.join(work, "hooks-slow.d")
    os.mkdir(d_slow)
    write_exec(os.path.join(d_slow, "build:start"),
               "#!/bin/sh\necho $$ >> %s\nexec sleep 600\n" % os.path.join(work, "slow.pids"))
    with open(os.path.join(work, "hookd-async.ini"), "w") as f:
        f.write("""; written by tests/bench/bench.py
[server]
listen = 127.0.0.1:0
hooks_dir = {w}/hooks-slow.d
state_dir = {w}/state-async
max_running = 1
timeout = 15m
journal_max = 100000000
journal_max_bytes = 1000000000000

[endpoint async]
path = /async
scheme = northflank
secret = {t}
mode = async
""".format(t=token, w=work))

    with open(os.path.join(work, "hookd.ini"), "w") as f:
        f.write("""; written by tests/bench/bench.py
[server]
listen = 127.0.0.1:0
hooks_dir = hooks.d

[endpoint script]
path = /webhook
scheme = northflank
secret = {t}

[endpoint true]
path = /true
scheme = northflank
secret = {t}
hooks_dir = hooks-true.d

[endpoint none]
path = /none
scheme = northflank
secret = {t}
hooks_dir = hooks-none.d
""".format(t=token))

    def token_rule():
        return {"match": {"type": "value", "value": token,
                          "parameter": {"source": "header",
                                        "name": "X-Northflank-Notification-Integration-Token"}}}

    hooks = [
        {   # a (wrong token: 401) and c
            "id": "true",
            "execute-command": "/bin/true",
            "command-working-directory": d_true,
            "include-command-output-in-response": True,
            "trigger-rule-mismatch-http-response-code": 401,
            "trigger-rule": token_rule(),
        },
        {   # b: verified, but no hook for this event
            "id": "none",
            "execute-command": "/bin/true",
            "command-working-directory": d_none,
            "include-command-output-in-response": True,
            "trigger-rule": {"and": [token_rule(), {"match": {
                "type": "value", "value": "build:success",
                "parameter": {"source": "payload", "name": "event"}}}]},
        },
        {   # d
            "id": "script",
            "execute-command": script,
            "command-working-directory": d_script,
            "include-command-output-in-response": True,
            "pass-environment-to-command": [
                {"source": "payload", "name": path, "envname": env}
                for path, env in SCRIPT_VARS],
            "trigger-rule-mismatch-http-response-code": 401,
            "trigger-rule": {"and": [token_rule(), {"match": {
                "type": "value", "value": "build:start",
                "parameter": {"source": "payload", "name": "event"}}}]},
        },
    ]
    with open(os.path.join(work, "hooks.json"), "w") as f:
        json.dump(hooks, f, indent=2)


# ---- load -------------------------------------------------------------------

def cpu_ticks(pid):
    """utime + stime + cutime + cstime: the server and the hooks it reaped."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


# Scenarios whose every request says "Connection: close", to every server:
# hookd closes the connection after a refusal (README "Hardening and
# limits"), where the peer and probe_reject would keep it open; (a) is then
# the same work for all three, a connection a request.
CLOSE_SCENARIOS = {"a"}


def run_wrk(port, path, token, conns, secs, run_id, pid=None, close=False):
    env = dict(os.environ, BENCH_PATH=path, BENCH_TOKEN=token, BENCH_BODY=PAYLOAD,
               BENCH_EVENT="build:start", BENCH_RUN=run_id)
    if close:
        env["BENCH_CLOSE"] = "1"
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s",
            "-s", LUA, "http://127.0.0.1:%d%s" % (port, path)]
    t0 = cpu_ticks(pid) if pid else 0
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=secs + 60)
    t1 = cpu_ticks(pid) if pid else 0
    out = p.stdout.decode("utf-8", "replace")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise BenchError("wrk failed (%d): %s %s" % (p.returncode, out[-500:],
                                                     p.stderr.decode()[-500:]))
    r = json.loads(lines[-1])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    # CPU time a request (the server's threads and the hooks it reaped):
    # unlike requests/s, hardly moved by other work on the machine. On a
    # saturated machine the ratio of two servers' figures bounds the
    # ratio of their requests/s.
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    r["cpu_us"] = (t1 - t0) * tick_us / r["requests"] if pid and r["requests"] else None
    return r


def check_answer(port, path, token, want_status, want_text):
    """One request before the load: the server answers this scenario as meant."""
    with open(PAYLOAD, "rb") as f:
        body = f.read()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, body=body, headers={
            "Content-Type": "application/json",
            "X-Northflank-Notification-Integration-Token": token,
            "X-Northflank-Notification-Integration-Event-Type": "build:start",
            "X-Northflank-Notification-Integration-Event-Id": "check-" + secrets.token_hex(8),
        })
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
    finally:
        c.close()
    if r.status != want_status or (want_text and want_text not in text):
        raise BenchError("POST %s on port %d: %d %r, expected %d with %r"
                         % (path, port, r.status, text[:200], want_status, want_text))


# ---- the journal: the disk's limit, async acceptance -------------------------

def fdatasync_rate(directory, secs=1.0):
    """The machine's fdatasync rate on `directory`'s filesystem: 4 KiB
    written in place, then fdatasync, over and over (as a WAL's pages are
    rewritten) for `secs`. Returns (syncs/s, median latency us)."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = b"\xa5" * 4096
        for i in range(64):  # allocated first: the loop measures rewrites
            os.pwrite(fd, block, i * 4096)
        os.fsync(fd)
        lat = []
        t_end = time.monotonic() + secs
        i = 0
        while time.monotonic() < t_end or len(lat) < 50:
            os.pwrite(fd, block, (i % 64) * 4096)
            t0 = time.monotonic()
            os.fdatasync(fd)
            lat.append(time.monotonic() - t0)
            i += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return len(lat) / sum(lat), statistics.median(lat) * 1e6


def posix_spawn_rate(secs=2.0):
    """The machine's posix_spawn rate: /bin/true started with an empty
    environment and waited for, one after another, for `secs` (what a
    sync delivery of a hook that does nothing cannot beat on one CPU).
    Returns (spawns/s, median us from the spawn to the reaped exit)."""
    lat = []
    t_end = time.monotonic() + secs
    while time.monotonic() < t_end or len(lat) < 20:
        t0 = time.monotonic()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
        os.waitpid(pid, 0)
        lat.append(time.monotonic() - t0)
    return len(lat) / sum(lat), statistics.median(lat) * 1e6


def best_limits(fsyncs, spawns):
    """The highest of each rate measured: (rate, median latency), and all the rates."""
    return {"fsync": max(fsyncs), "spawn": max(spawns),
            "fsync_all": [r for r, _ in fsyncs], "spawn_all": [r for r, _ in spawns]}


def limits_line(lim):
    """The machine's own limits, printed under every table."""
    (frate, flat), (srate, slat) = lim["fsync"], lim["spawn"]

    def all_of(key):
        return ", ".join(format(int(round(r)), ",") for r in lim[key])
    return ("This machine's limits, measured in this run (the best of the measurements at "
            "the start, before the async test and at the end: %s/s, and %s/s): fdatasync %s/s "
            "(median %s; 4 KiB rewritten, then fdatasync, on the work directory's filesystem); "
            "posix_spawn of /bin/true %s/s (median %s from spawn to reaped exit, one at a time)."
            % (all_of("fsync_all"), all_of("spawn_all"), format(int(round(frate)), ","),
               fmt_ms(flat), format(int(round(srate)), ","), fmt_ms(slat)))


def async_test(hookd_bin, work, token, args, log_dir):
    """Async deliveries at args.connections: each 202 after a sync."""
    srv = Server("hookd (async)", [hookd_bin, "-c", os.path.join(work, "hookd-async.ini")],
                 os.path.join(log_dir, "hookd-async.log"), cwd=work)
    try:
        srv.wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)")
        check_answer(srv.port, "/async", token, 202, '"status":"accepted"')
        # Every delivery accepted waits behind the one sleeping hook: what
        # the RSS grew by, over their number, is what a pending one costs
        # (the journal's page cache included).
        rss0 = srv.rss_kb()
        runs = []
        for rnd in range(args.rounds):
            log("round %d, async acceptance" % (rnd + 1))
            r = run_wrk(srv.port, "/async", token, args.connections, args.duration,
                        "async-%d-%s" % (rnd, secrets.token_hex(4)), srv.pid)
            errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
            if errors or r["requests"] == 0:
                raise BenchError("async: %d requests, %d errors or unexpected statuses; its "
                                 "log: %s" % (r["requests"], errors, srv.tail()))
            runs.append(r)
        time.sleep(AFTER_LOAD_WAIT_S)
        pending = sum(r["requests"] for r in runs)
        runs.sort(key=lambda r: r["rps"])
        mid = runs[len(runs) // 2]
        mid["pending"] = pending
        mid["pending_bytes"] = (srv.rss_kb() - rss0) * 1024.0 / pending
        srv.stop(signal.SIGKILL)
        kill_slow_hooks(work)
        log("restart with the backlog")
        mid["restart"] = timed_restart(
            "hookd (async, restarted)", [hookd_bin, "-c", os.path.join(work, "hookd-async.ini")],
            os.path.join(log_dir, "hookd-async-restart.log"), work,
            lambda: kill_slow_hooks(work))
        return mid
    finally:
        # SIGTERM would wait for the sleeping hook; this test is over.
        srv.stop(signal.SIGKILL)
        kill_slow_hooks(work)


def timed_restart(name, argv, logpath, cwd, kill):
    """A hookd killed with its backlog pending, started again: how long from
    its exec until its log says the pending deliveries are taken up
    (recovery.c: each waits as a shell made from the journal's list), the
    rows it took up, and its RSS then. kill() ends the hooks it starts."""
    t0 = time.monotonic()
    srv = Server(name, argv, logpath, cwd=cwd)
    try:
        rx = re.compile(r"journal: (\d+) pending async deliveries resumed")
        # The line comes only when something was resumed; the async runs
        # always leave a backlog, which takes seconds, not minutes.
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if srv.proc.poll() is not None:
                raise BenchError("%s exited at its restart: %s" % (name, srv.tail()))
            with open(logpath, "rb") as f:
                m = rx.search(f.read().decode("utf-8", "replace"))
            if m:
                took = time.monotonic() - t0
                return {"rows": int(m.group(1)), "s": took, "rss_kb": srv.rss_kb()}
            time.sleep(0.01)
        raise BenchError("%s: no backlog taken up in 120 s: %s" % (name, srv.tail()))
    finally:
        srv.stop(signal.SIGKILL)
        kill()


def kill_slow_hooks(work):
    """The async test's hooks: each a sleep in a process group of its own."""
    try:
        with open(os.path.join(work, "slow.pids")) as f:
            for line in f:
                try:
                    os.killpg(int(line), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
    except OSError:
        pass


# ---- the burst: a fixed number of async deliveries as fast as they go -------

BURST_INI = """; written by tests/bench/bench.py
[server]
listen = 127.0.0.1:0
hooks_dir = {w}/hooks-true.d
state_dir = {w}/state-{name}
{journal}
[admin]
listen = 127.0.0.1:0

[endpoint burst]
path = /burst
scheme = northflank
secret = {t}
mode = async
"""


def metrics_counts(port):
    """(202s answered, deliveries ended ok) from hookd's /metrics."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode("utf-8", "replace")
    finally:
        c.close()
    accepted = ran = 0
    for line in text.splitlines():
        if line.startswith("hookd_responses_total{") and 'code="202"' in line:
            accepted += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("hookd_deliveries_total{") and 'outcome="ok"' in line:
            ran += int(float(line.rsplit(" ", 1)[1]))
    return accepted, ran


def burst_test(hookd_bin, work, token, n, conns, log_dir, name="burst", journal=""):
    """n async deliveries sent as fast as they go at `conns` connections to
    a hookd with the SQLite journal (or the [server] lines `journal`: the
    PostgreSQL one) and a hook that does nothing (/bin/true),
    max_running at its default: when the last 202 came, when the last one
    had run (hookd's own counters, polled every 50 ms), hookd's peak RSS."""
    ini = os.path.join(work, "hookd-%s.ini" % name)
    with open(ini, "w") as f:
        f.write(BURST_INI.format(t=token, w=work, name=name, journal=journal))
    srv = Server("hookd (%s)" % name, [hookd_bin, "-c", ini],
                 os.path.join(log_dir, "hookd-%s.log" % name), cwd=work)
    try:
        srv.wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)")
        m = re.search(r'msg="admin listening" addr=127\.0\.0\.1:(\d+)', srv.tail(100000))
        if not m:
            raise BenchError("burst: hookd did not say where its admin listener is: "
                             + srv.tail())
        admin = int(m.group(1))
        idle = srv.rss_kb()
        acc0, ran0 = metrics_counts(admin)
        env = dict(os.environ, BENCH_PATH="/burst", BENCH_TOKEN=token, BENCH_BODY=PAYLOAD,
                   BENCH_EVENT="build:start", BENCH_RUN="burst-" + secrets.token_hex(4),
                   BENCH_LIMIT=str(n))
        argv = ["wrk", "-t1", "-c%d" % conns, "-d300s", "--timeout", "30s", "-s", LUA,
                "http://127.0.0.1:%d/burst" % srv.port]
        # wrk's thread stops sending at the n-th answer, but wrk itself
        # exits at its duration: the times come from hookd's own counters
        # (admin /metrics, polled every 50 ms), then wrk is interrupted
        # (SIGINT: it prints its summary).
        t0 = time.monotonic()
        wrk = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t_answered = t_ran = None
        deadline = t0 + 600
        try:
            while t_ran is None:
                if time.monotonic() > deadline:
                    raise BenchError("burst: not done in 600 s (%d answered, %d ran); its log: %s"
                                     % (accepted, ran, srv.tail()))
                if t_answered is None and wrk.poll() is not None:
                    raise BenchError("burst: wrk exited (%d): %s"
                                     % (wrk.returncode, wrk.stderr.read().decode()[-500:]))
                accepted, ran = metrics_counts(admin)
                accepted -= acc0
                ran -= ran0
                now = time.monotonic() - t0
                if t_answered is None and accepted >= n:
                    t_answered = now
                    wrk.send_signal(signal.SIGINT)
                if t_answered is not None and ran >= accepted:
                    t_ran = now
                    break
                time.sleep(0.05)
            out, err = wrk.communicate(timeout=60)
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()
        # What was in flight when wrk stopped is accepted too.
        accepted, ran = metrics_counts(admin)
        accepted -= acc0
        ran -= ran0
        lines = [l for l in out.decode("utf-8", "replace").splitlines() if l.startswith("{")]
        if not lines:
            raise BenchError("burst: wrk printed no summary: %s" % err.decode()[-500:])
        r = json.loads(lines[-1])
        errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
        if errors or ran != accepted:
            raise BenchError("burst: %d errors or unexpected statuses, %d accepted, %d ran; "
                             "its log: %s" % (errors, accepted, ran, srv.tail()))
        return {"n": n, "accepted": accepted, "ran": ran, "t_answered": t_answered,
                "t_ran": t_ran, "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                "idle_kb": idle, "peak_kb": srv.rss_kb("VmHWM")}
    finally:
        srv.stop()


# ---- the PostgreSQL journal (issue 19 point 8, issue 20 point 3) -------------
#
# A private PostgreSQL (tests/blackbox/pgserver.py: initdb in a temp dir,
# run as `nobody` when we are root, on a loopback port, stopped and removed
# at the end), a new database for each measurement. What it measures:
#   async accepts/s at the run's connections, the queue behind one slow
#     hook (as (e)): SQLite, PostgreSQL with one instance, with two (two
#     hookd on two ports sharing one database, half the connections each),
#     in interleaved rounds;
#   the claim latency: 202 -> the hook's start (the hook, bash, writes
#     $EPOCHREALTIME first thing), one delivery at a time, alternately to
#     each instance;
#   the take-over after a SIGKILL: lease = 3s, the delivery's hook running
#     on instance a when a is killed, until the hook starts again on b;
#   the burst (f) with the PostgreSQL journal.

PG_LEASE_S = 3
PG_SETTINGS = ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
               "full_page_writes", "commit_delay", "shared_buffers")

CLAIM_HOOK = """#!/bin/bash
# Writes when it started (bash: no fork for the clock).
echo "$HOOK_ID $EPOCHREALTIME" >> {stamps}
"""

TAKEOVER_HOOK = """#!/bin/bash
# The first attempt holds its slot until it is killed with its instance.
echo "$HOOK_ID $HOOK_ATTEMPT $EPOCHREALTIME $$" >> {stamps}
[ "$HOOK_ATTEMPT" = 1 ] && exec sleep 600
exit 0
"""


def pg_journal_lines(pg, db_url, instance, lease=None):
    text = "journal = %s\njournal_password_file = %s\ninstance = %s\n" % (
        db_url, pg.password_file(), instance)
    if lease:
        text += "lease = %s\n" % lease
    return text


def start_hookd(hookd_bin, work, token, name, hooks_dir, journal="", server_extra="",
                admin=False):
    """A hookd with one async endpoint /async, its state in work/state-NAME."""
    ini = os.path.join(work, "hookd-%s.ini" % name)
    with open(ini, "w") as f:
        f.write("""; written by tests/bench/bench.py
[server]
listen = 127.0.0.1:0
hooks_dir = {h}
state_dir = {w}/state-{n}
{j}{x}
{a}
[endpoint async]
path = /async
scheme = northflank
secret = {t}
mode = async
""".format(h=hooks_dir, w=work, n=name, j=journal, x=server_extra, t=token,
           a="[admin]\nlisten = 127.0.0.1:0\n" if admin else ""))
    srv = Server("hookd (%s)" % name, [hookd_bin, "-c", ini],
                 os.path.join(work, "hookd-%s.log" % name), cwd=work)
    try:
        srv.wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)", timeout=30)
    except BaseException:
        srv.stop(signal.SIGKILL)
        raise
    return srv


def kill_hooks(pidfile, field=0):
    """SIGKILL to the process group of every pid in pidfile's lines (hookd
    gives each hook a group of its own; a hookd killed leaves them)."""
    try:
        with open(pidfile) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            os.killpg(int(line.split()[field]), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def pg_cpu_ticks(pg):
    total = 0
    for pid in pg.pids():
        try:
            total += cpu_ticks(pid)
        except OSError:
            pass
    return total


def wrk_together(targets, token, conns, secs, run_id):
    """wrk against several hookd at once, `conns` connections split among
    them: the sum of their answers over the longest duration; p50 and p99
    the worst of them; CPU per request of all the hookd and of PostgreSQL
    (pg: its pids, or None)."""
    procs = []
    share = [conns // len(targets) + (1 if i < conns % len(targets) else 0)
             for i in range(len(targets))]
    pids = [srv.pid for srv, _ in targets]
    pg = targets[0][1]
    t0 = sum(cpu_ticks(p) for p in pids)
    g0 = pg_cpu_ticks(pg) if pg else 0
    for i, (srv, _) in enumerate(targets):
        env = dict(os.environ, BENCH_PATH="/async", BENCH_TOKEN=token, BENCH_BODY=PAYLOAD,
                   BENCH_EVENT="build:start", BENCH_RUN="%s-%d" % (run_id, i))
        argv = ["wrk", "-t1", "-c%d" % share[i], "-d%ds" % secs, "--timeout", "10s",
                "-s", LUA, "http://127.0.0.1:%d/async" % srv.port]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    results = []
    for (srv, _), p in zip(targets, procs):
        try:
            out, err = p.communicate(timeout=secs + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise BenchError("wrk against %s did not end" % srv.name)
        lines = [l for l in out.decode("utf-8", "replace").splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines:
            raise BenchError("wrk against %s failed (%d): %s" % (srv.name, p.returncode,
                                                                 err.decode()[-500:]))
        r = json.loads(lines[-1])
        errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
        if errors or r["requests"] == 0:
            raise BenchError("async against %s: %d requests, %d errors or unexpected statuses;"
                             " its log: %s" % (srv.name, r["requests"], errors, srv.tail()))
        results.append(r)
    t1 = sum(cpu_ticks(p) for p in pids)
    g1 = pg_cpu_ticks(pg) if pg else 0
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    n = sum(r["requests"] for r in results)
    dur = max(r["duration_us"] for r in results) / 1e6
    return {"requests": n, "rps": n / dur, "p50_us": max(r["p50_us"] for r in results),
            "p99_us": max(r["p99_us"] for r in results),
            "cpu_us": (t1 - t0) * tick_us / n, "pg_cpu_us": (g1 - g0) * tick_us / n if pg else None}


def pg_async(hookd_bin, work, token, args, pg):
    """Async accepts/s behind one slow hook: SQLite, PostgreSQL with one
    instance and with two, in interleaved rounds."""
    slow = os.path.join(work, "hooks-slow.d")
    pidfile = os.path.join(work, "slow.pids")
    servers = []
    try:
        sq = start_hookd(hookd_bin, work, token, "async-sqlite", slow,
                         server_extra="max_running = 1\ntimeout = 15m\n"
                         "journal_max = 100000000\njournal_max_bytes = 1000000000000\n")
        servers.append(sq)
        extra = "max_running = 1\ntimeout = 15m\n"
        db1 = pg.create_database()
        p1 = start_hookd(hookd_bin, work, token, "async-pg1", slow,
                         journal=pg_journal_lines(pg, db1, "a"), server_extra=extra)
        servers.append(p1)
        db2 = pg.create_database()
        p2 = [start_hookd(hookd_bin, work, token, "async-pg2" + i, slow,
                          journal=pg_journal_lines(pg, db2, i), server_extra=extra)
              for i in "ab"]
        servers += p2
        for s in servers:
            check_answer(s.port, "/async", token, 202, '"status":"accepted"')
        plan = [("sqlite", [(sq, None)]), ("pg1", [(p1, pg)]), ("pg2", [(s, pg) for s in p2])]
        runs = {}
        for rnd in range(args.rounds):
            for name, targets in plan:
                log("round %d, async acceptance: %s" % (rnd + 1, name))
                runs.setdefault(name, []).append(wrk_together(
                    targets, token, args.connections, args.duration,
                    "pgasync-%s-%d-%s" % (name, rnd, secrets.token_hex(4))))
        res = {}
        for name, rs in runs.items():
            in_order = [r["rps"] for r in rs]
            rs.sort(key=lambda r: r["rps"])
            res[name] = rs[len(rs) // 2]
            res[name]["all"] = in_order
        p1.stop(signal.SIGKILL)
        kill_hooks(pidfile)
        log("restart with the backlog: PostgreSQL, one instance")
        res["pg1"]["restart"] = timed_restart(
            "hookd (async-pg1, restarted)", p1.proc.args,
            os.path.join(work, "hookd-pg1-restart.log"), work, lambda: kill_hooks(pidfile))
        return res
    finally:
        # SIGTERM would wait for the sleeping hook; this test is over.
        for s in servers:
            s.stop(signal.SIGKILL)
        kill_hooks(pidfile)


def post_one(port, token, delivery_id):
    """One delivery; the status, and the wall clock when its answer came."""
    with open(PAYLOAD, "rb") as f:
        body = f.read()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/async", body=body, headers={
            "Content-Type": "application/json",
            "X-Northflank-Notification-Integration-Token": token,
            "X-Northflank-Notification-Integration-Event-Type": "build:start",
            "X-Northflank-Notification-Integration-Event-Id": delivery_id,
        })
        r = c.getresponse()
        r.read()
        return r.status, time.time()
    finally:
        c.close()


def read_stamps(path):
    try:
        with open(path) as f:
            return [l.split() for l in f.read().splitlines() if l.strip()]
    except OSError:
        return []


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]


def claim_latency(servers, token, n, stamps, prefix):
    """n deliveries, one at a time, alternately to each server: 202 -> the
    hook's start (its own clock line), in us: p50, p99, max."""
    answered = {}
    for i in range(n):
        did = "%s-%d" % (prefix, i)
        status, t = post_one(servers[i % len(servers)].port, token, did)
        if status != 202:
            raise BenchError("claim: delivery %s answered %d" % (did, status))
        answered[did] = t
    deadline = time.monotonic() + 30
    while True:
        started = {s[0]: float(s[1]) for s in read_stamps(stamps) if s[0] in answered}
        if len(started) == n:
            break
        if time.monotonic() > deadline:
            raise BenchError("claim: %d of %d hooks started in 30 s" % (len(started), n))
        time.sleep(0.05)
    lat = [(started[d] - t) * 1e6 for d, t in answered.items()]
    return {"n": n, "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99),
            "max_us": max(lat), "min_us": min(lat)}


def pg_claim(hookd_bin, work, token, args, pg, n):
    """Claim latency with SQLite, PostgreSQL one instance and two."""
    hooks = os.path.join(work, "hooks-claim.d")
    os.mkdir(hooks)
    stamps = os.path.join(work, "claim.stamps")
    write_exec(os.path.join(hooks, "build:start"), CLAIM_HOOK.format(stamps=stamps))
    res = {}
    for name in ("sqlite", "pg1", "pg2"):
        servers = []
        try:
            if name == "sqlite":
                servers.append(start_hookd(hookd_bin, work, token, "claim-sqlite", hooks))
            else:
                db = pg.create_database()
                for inst in ("a", "b")[:int(name[-1])]:
                    servers.append(start_hookd(hookd_bin, work, token, "claim-%s%s" % (name, inst),
                                               hooks, journal=pg_journal_lines(pg, db, inst)))
            log("claim latency: %s, %d deliveries" % (name, n))
            res[name] = claim_latency(servers, token, n, stamps,
                                      "claim-%s-%s" % (name, secrets.token_hex(4)))
        finally:
            for s in servers:
                s.stop()
    return res


def pg_takeover(hookd_bin, work, token, pg, kills):
    """lease = 3s; a delivery's hook running on instance a when a is killed
    (SIGKILL, at a random moment of its renewal period): from the kill
    until its next attempt starts on b, in seconds."""
    hooks = os.path.join(work, "hooks-takeover.d")
    os.mkdir(hooks)
    stamps = os.path.join(work, "takeover.stamps")
    write_exec(os.path.join(hooks, "build:start"), TAKEOVER_HOOK.format(stamps=stamps))
    db = pg.create_database()
    lease = "%ds" % PG_LEASE_S
    out = []
    b = start_hookd(hookd_bin, work, token, "takeover-b", hooks,
                    journal=pg_journal_lines(pg, db, "b", lease))
    a = None
    try:
        for k in range(kills):
            a = start_hookd(hookd_bin, work, token, "takeover-a%d" % k, hooks,
                            journal=pg_journal_lines(pg, db, "a%d" % k, lease))
            did = "takeover-%d-%s" % (k, secrets.token_hex(4))
            status, _ = post_one(a.port, token, did)
            if status != 202:
                raise BenchError("take-over: delivery answered %d" % status)
            deadline = time.monotonic() + 10
            while not any(s[0] == did and s[1] == "1" for s in read_stamps(stamps)):
                if time.monotonic() > deadline:
                    raise BenchError("take-over: the hook did not start on a: " + a.tail())
                time.sleep(0.02)
            time.sleep(secrets.randbelow(1000) / 1000.0 * PG_LEASE_S / 3)
            t_kill = time.time()
            a.stop(signal.SIGKILL)
            a = None
            kill_hooks(stamps, 3)
            deadline = time.monotonic() + 3 * PG_LEASE_S + 10
            while True:
                again = [s for s in read_stamps(stamps) if s[0] == did and s[1] == "2"]
                if again:
                    out.append(float(again[0][2]) - t_kill)
                    break
                if time.monotonic() > deadline:
                    raise BenchError("take-over: b did not take the delivery over in %d s: %s"
                                     % (3 * PG_LEASE_S + 10, b.tail()))
                time.sleep(0.02)
            log("take-over %d: %.2f s" % (k + 1, out[-1]))
    finally:
        if a:
            a.stop(signal.SIGKILL)
        b.stop()
        kill_hooks(stamps, 3)
    return {"lease_s": PG_LEASE_S, "times": out}


def pg_tests(hookd_bin, work, token, args):
    """Everything measured against a private PostgreSQL; the server is
    started here and stopped (and removed) before this returns."""
    sys.path.insert(0, os.path.join(SOURCE, "tests", "blackbox"))
    import pgserver
    log("PostgreSQL: a private server (initdb, start)")
    try:
        pg = pgserver.new_cluster()
    except pgserver.PgError as e:
        raise BenchError("PostgreSQL: %s" % e)
    log("PostgreSQL %s in %s, port %d" % (os.path.basename(os.path.dirname(pg.bin_dir)),
                                          pg.top, pg.port))
    try:
        res = {"settings": dict(pg.psql("postgres", "SELECT name, current_setting(name) "
                                        "FROM pg_settings WHERE name IN (%s)" % ", ".join(
                                            "'%s'" % s for s in PG_SETTINGS))),
               "on": "a private server on this machine (initdb in %s), TCP on 127.0.0.1"
                     % tempfile.gettempdir()}
        res["async"] = pg_async(hookd_bin, work, token, args, pg)
        res["claim"] = pg_claim(hookd_bin, work, token, args, pg, 20 if args.short else 200)
        if args.takeovers > 0:
            # No lease counts as run out before the server has been up 12 s
            # (journal_pg_take.c DB_UP_GRACE_MS): not what is measured here.
            up = float(pg.psql("postgres", "SELECT extract(epoch FROM now() - "
                                           "pg_postmaster_start_time())")[0][0])
            if up < 12.5:
                time.sleep(12.5 - up)
            log("take-over: lease %d s, %d kills" % (PG_LEASE_S, args.takeovers))
            res["takeover"] = pg_takeover(hookd_bin, work, token, pg, args.takeovers)
        if "f" in args.only and args.burst > 0:
            log("burst: %d async deliveries, PostgreSQL journal" % args.burst)
            res["burst"] = burst_test(hookd_bin, work, token, args.burst, args.connections, work,
                                      "burst-pg", pg_journal_lines(pg, pg.create_database(), "a"))
        return res
    finally:
        log("PostgreSQL: stopping the private server")
        pg.destroy()


# ---- scale: deliveries waiting for slots -----------------------------------

def tcp_sockets(port):
    """(established sockets with local port `port`, bytes unread in them)."""
    n = unread = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, queues = fields[1], fields[3], fields[4]
                    if state != "01" or int(local.rsplit(":", 1)[1], 16) != port:
                        continue
                    n += 1
                    unread += int(queues.split(":")[1], 16)
        except FileNotFoundError:
            pass
    return n, unread


def scale_test(hookd_bin, work, token, waiting, log_dir):
    """`waiting` sync deliveries queued behind one running hook: hookd's RSS."""
    sdir = os.path.join(work, "scale")
    hooks = os.path.join(sdir, "hooks.d")
    os.makedirs(hooks)
    pidfile = os.path.join(sdir, "hook.pid")
    # The one hook that runs holds its slot until the test is over.
    write_exec(os.path.join(hooks, "build:start"),
               "#!/bin/sh\necho $$ > %s\nexec sleep 600\n" % pidfile)
    running = 1
    total = waiting + running
    with open(os.path.join(sdir, "hookd.ini"), "w") as f:
        f.write("""[server]
listen = 127.0.0.1:0
hooks_dir = hooks.d
timeout = 15m
max_running = {r}
max_queued = {q}
max_connections = {c}
; every connection comes from 127.0.0.1
max_connections_per_client = 0
read_timeout = 5m
idle_timeout = 15m

[endpoint scale]
path = /webhook
scheme = northflank
secret = {t}
""".format(r=running, q=2 * waiting, c=total + 100, t=token))
    raise_nofile(total + 1000)
    srv = Server("hookd (scale)", [hookd_bin, "-c", os.path.join(sdir, "hookd.ini")],
                 os.path.join(log_dir, "hookd-scale.log"))
    socks = []
    hook_pid = None
    try:
        srv.wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)")
        time.sleep(0.3)
        idle = srv.rss_kb()
        with open(PAYLOAD, "rb") as f:
            body = f.read()
        head = ("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n"
                "X-Northflank-Notification-Integration-Token: %s\r\n"
                "X-Northflank-Notification-Integration-Event-Type: build:start\r\n"
                "Content-Length: %d\r\n" % (token, len(body)))
        sel = selectors.DefaultSelector()
        answered = 0
        sent = 0
        pending = {}  # socket -> bytes still to send
        deadline = time.monotonic() + 120
        i = 0
        peak = idle
        while sent < total:
            if time.monotonic() > deadline:
                raise BenchError("scale: only %d of %d requests sent in 120 s" % (sent, total))
            # Keep a bounded number of connects in flight: the listen backlog is finite.
            while i < total and len(pending) < 256:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", srv.port))
                req = (head + "X-Northflank-Notification-Integration-Event-Id: scale-%d\r\n\r\n"
                       % i).encode() + body
                pending[s] = req
                socks.append(s)
                sel.register(s, selectors.EVENT_WRITE)
                i += 1
            for key, ev in sel.select(timeout=1.0):
                s = key.fileobj
                if ev & selectors.EVENT_READ:
                    # Any answer now is a 503 (queue full) or an error.
                    if s.recv(4096):
                        answered += 1
                    sel.unregister(s)
                    continue
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise BenchError("scale: connect failed: %s" % os.strerror(err))
                data = pending[s]
                n = s.send(data)
                if n < len(data):
                    pending[s] = data[n:]
                    continue
                del pending[s]
                sent += 1
                sel.modify(s, selectors.EVENT_READ)
            peak = max(peak, srv.rss_kb())
        # hookd has them all once every socket is established and read.
        deadline = time.monotonic() + 60
        while True:
            n, unread = tcp_sockets(srv.port)
            peak = max(peak, srv.rss_kb())
            if n >= total and unread == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError("scale: hookd holds %d connections with %d bytes unread, "
                                 "expected %d read" % (n, unread, total))
            time.sleep(0.2)
        # Let the last deliveries settle, then read the peak.
        for _ in range(10):
            time.sleep(0.1)
            peak = max(peak, srv.rss_kb())
            for key, ev in sel.select(timeout=0):
                if key.fileobj.recv(4096):
                    answered += 1
                sel.unregister(key.fileobj)
        hwm = srv.rss_kb("VmHWM")
        if answered:
            raise BenchError("scale: %d requests were answered while they should wait "
                             "(max_queued too small?)" % answered)
        try:
            with open(pidfile) as f:
                hook_pid = int(f.read().strip())
        except (OSError, ValueError):
            raise BenchError("scale: the running hook never started")
        return {"waiting": waiting, "running": running, "idle_kb": idle,
                "peak_kb": max(peak, hwm), "rss_kb": srv.rss_kb()}
    finally:
        # SIGTERM would let every queued delivery run; this test is over.
        srv.stop(signal.SIGKILL)
        if hook_pid is None:
            try:
                with open(pidfile) as f:
                    hook_pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        if hook_pid:
            try:
                os.killpg(hook_pid, signal.SIGKILL)  # hookd gave the hook its own group
            except OSError:
                pass
        for s in socks:
            s.close()


# ---- the table --------------------------------------------------------------

def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d CPUs (nproc), %s, Linux %s" % (os.cpu_count() or 0, model, platform.release())


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fmt_rps(r):
    return "%s" % format(int(round(r["rps"])), ",") if r else "—"


def fmt_ms(us):
    return "%.2f ms" % (us / 1000.0) if us < 10000 else "%.1f ms" % (us / 1000.0)


def fmt_cpu(us):
    return "%.1f µs" % us if us < 100 else "%.0f µs" % us


def fmt_ratio(x):
    return "%.2fx" % x


def fmt_pct(x):
    return "%d%%" % round(100 * x)


def mb(kb):
    return "%.1f MB" % (kb / 1024.0)


# Every target the run checked, in the order printed: (what, figure, goal,
# met), for the summary table at the end (print_targets_table).
TARGETS = []


def target(what, figure, goal, ok):
    """A target's verdict for a table's "met" column, remembered for the summary."""
    TARGETS.append((what, figure, goal, ok))
    return verdict(ok)


def verdict(ok):
    if ok is None:
        return "measured"
    return "yes" if ok else "**no**"


def print_journal_table(res, jr, args, lim):
    """The journal's table: the disk's limit, group commit, the cost."""
    rate, lat_us = jr["fsync"]
    b, c = res["b"].get("hookd"), res["c"].get("hookd")
    bj, cj = res["b"].get("hookd+journal"), res["c"].get("hookd+journal")
    a = jr.get("async")
    out = []
    w = out.append
    w("| the journal (state_dir set) | figure | target | met |")
    w("|---|--:|---|---|")
    w("| this machine's fdatasync rate (4 KiB rewritten, then fdatasync) | %s/s, "
      "median %s | | |" % (format(int(round(rate)), ","), fmt_ms(lat_us)))
    if a:
        want = min(8 * rate, 0.5 * b["rps"]) if b else 8 * rate
        ratio = a["rps"] / rate
        w("| async accepts/s, %d connections (202 after a sync) | %s | >= %s "
          "(the lower of 8x fdatasync, 50%% of (b)) | %s |"
          % (args.connections, fmt_rps(a), format(int(round(want)), ","),
             target("async accepts/s, %d connections, SQLite journal" % args.connections,
                    "%s (%s the fdatasync rate)" % (fmt_rps(a), fmt_ratio(ratio)),
                    ">= %s: the lower of 8x fdatasync, 50%% of (b)"
                    % format(int(round(want)), ","), a["rps"] >= want)))
        w("| async accepts / fdatasync rate | %s | >= 8x, or 50%% of (b) | %s |"
          % (fmt_ratio(ratio), verdict(ratio >= 8 or (b and a["rps"] >= 0.5 * b["rps"]))))
        w("| RSS a pending async delivery (%s waiting behind one hook) | %.0f bytes | "
          "< 1 KiB | %s |" % (format(a["pending"], ","), a["pending_bytes"],
                              target("a pending async delivery: RSS",
                                     "%.0f bytes (%s waiting)" % (a["pending_bytes"],
                                                                   format(a["pending"], ",")),
                                     "< 1 KiB", a["pending_bytes"] < 1024)))
        rs = a.get("restart")
        if rs:
            w("| a restart with that backlog (SIGKILL, then started): until its %s pending rows "
              "are taken up | %.2f s (%.1f µs a row), RSS then %s | measured | |"
              % (format(rs["rows"], ","), rs["s"], rs["s"] * 1e6 / max(rs["rows"], 1),
                 mb(rs["rss_kb"])))
        if b:
            p99_max = 2 * b["p99_us"] + 3 * 1e6 / rate
            w("| 202 p99 (p50) | %s (%s) | <= 2x (b)'s p99 + 3 fdatasyncs: %s | %s |"
              % (fmt_ms(a["p99_us"]), fmt_ms(a["p50_us"]), fmt_ms(p99_max),
                 target("202 p99 (p50)", "%s (%s)" % (fmt_ms(a["p99_us"]), fmt_ms(a["p50_us"])),
                        "<= 2x (b)'s p99 + 3 fdatasyncs: %s" % fmt_ms(p99_max),
                        a["p99_us"] <= p99_max)))
    for k, off, on, goal in (("b", b, bj, 0.5), ("c", c, cj, 0.95)):
        if off and on:
            r = on["rps"] / off["rps"]
            w("| (%s) with / without the journal | %s / %s req/s = %s (CPU/req %s / %s) "
              "| >= %s | %s |" % (k, fmt_rps(on), fmt_rps(off), fmt_pct(r),
                                  fmt_cpu(on["cpu_us"]) if on.get("cpu_us") else "—",
                                  fmt_cpu(off["cpu_us"]) if off.get("cpu_us") else "—",
                                  fmt_pct(goal), target(
                                      "(%s) with / without the journal" % k,
                                      "%s / %s = %s" % (fmt_rps(on), fmt_rps(off), fmt_pct(r)),
                                      ">= %s" % fmt_pct(goal), r >= goal)))
    print()
    print("\n".join(out))
    print()
    print(limits_line(lim))


def print_pg_table(pg, jr, args, lim):
    """The PostgreSQL journal beside SQLite's and the machine's fdatasync."""
    rate, lat_us = jr["fsync"]
    st = pg["settings"]
    a = pg["async"]
    out = []
    w = out.append
    w("| the PostgreSQL journal | figure | against |")
    w("|---|--:|---|")
    w("| this machine's fdatasync rate (4 KiB rewritten, then fdatasync) | %s/s, median %s | |"
      % (format(int(round(rate)), ","), fmt_ms(lat_us)))
    w("| the server: PostgreSQL %s, %s | %s | |"
      % (st.get("server_version", "?"), pg["on"], ", ".join(
          "%s %s" % (k, st[k]) for k in PG_SETTINGS[1:] if k in st)))

    def acc(r):
        return "%s (202 p50 %s, p99 %s)" % (fmt_rps(r), fmt_ms(r["p50_us"]), fmt_ms(r["p99_us"]))

    def cpu(r):
        text = "CPU/req: hookd %s" % fmt_cpu(r["cpu_us"])
        if r.get("pg_cpu_us") is not None:
            text += " + PostgreSQL %s" % fmt_cpu(r["pg_cpu_us"])
        return text

    half = args.connections // 2
    rows = (("sqlite", "async accepts/s, %d connections, the SQLite journal" % args.connections),
            ("pg1", "async accepts/s, %d connections, PostgreSQL, one instance"
             % args.connections),
            ("pg2", "async accepts/s, %d connections, PostgreSQL, two instances (a and b, %d "
             "connections each, one database)" % (args.connections, half)))
    for key, label in rows:
        r = a[key]
        vs = ["%s the fdatasync rate" % fmt_ratio(r["rps"] / rate)]
        if key != "sqlite":
            vs.append("%s of SQLite's" % fmt_pct(r["rps"] / a["sqlite"]["rps"]))
        if key == "pg2":
            vs.append("%s one instance's" % fmt_ratio(r["rps"] / a["pg1"]["rps"]))
        vs.append(cpu(r))
        if len(r["all"]) > 1:
            vs.append("rounds in order: " + ", ".join(format(int(round(x)), ",") for x in r["all"]))
        w("| %s | %s | %s |" % (label, acc(r), "; ".join(vs)))
        if key != "sqlite":
            target(label, "%s (%s of SQLite's)"
                   % (fmt_rps(r), fmt_pct(r["rps"] / a["sqlite"]["rps"])), "measured", None)
    rs = a["pg1"].get("restart")
    if rs:
        w("| a restart of the one instance with its backlog (SIGKILL, then started): until its "
          "%s pending rows are taken up | %.2f s (%.1f µs a row), RSS then %s | measured |"
          % (format(rs["rows"], ","), rs["s"], rs["s"] * 1e6 / max(rs["rows"], 1),
             mb(rs["rss_kb"])))
    names = {"sqlite": "SQLite", "pg1": "PostgreSQL, one instance",
             "pg2": "PostgreSQL, two instances (alternately to a and b)"}
    for key in ("sqlite", "pg1", "pg2"):
        c = pg["claim"].get(key)
        if c:
            w("| claim latency, 202 -> hook start, %s: p50 / p99 (max) | %s / %s (%s) | "
              "%d deliveries one at a time; the fdatasync median is %s |"
              % (names[key], fmt_ms(c["p50_us"]), fmt_ms(c["p99_us"]), fmt_ms(c["max_us"]),
                 c["n"], fmt_ms(lat_us)))
    t = pg.get("takeover")
    if t and t["times"]:
        lease = t["lease_s"]
        w("| take-over after SIGKILL (lease = %ds): from the kill to the hook's next start on "
          "the other instance | %s | lease %d s (renewed every %.1f s; adoption polled every "
          "1 s: expect %.1f to %.1f s); %d kill%s, median %.2f s |"
          % (lease, ", ".join("%.2f s" % x for x in t["times"]), lease, lease / 3.0,
             lease * 2 / 3.0, lease + 1.0, len(t["times"]), "" if len(t["times"]) == 1 else "s",
             statistics.median(t["times"])))
    if t and t["times"]:
        target("take-over after SIGKILL, lease = %ds (median of %d)"
               % (t["lease_s"], len(t["times"])),
               "%.2f s" % statistics.median(t["times"]), "%.1f to %.1f s"
               % (t["lease_s"] * 2 / 3.0, t["lease_s"] + 1.0),
               all(t["lease_s"] * 2 / 3.0 <= x <= t["lease_s"] + 1.0 for x in t["times"]))
    print()
    print("\n".join(out))
    print()
    print(limits_line(lim))
    print()
    print("- PostgreSQL: each hookd holds one connection, and an acceptance is two statements "
          "(the look-up, then the record), each a blocking round trip from hookd's event loop, "
          "prepared once a connection (planned at each run); the records of a turn of the "
          "loop share one transaction and its commit (one WAL flush: group commit), while a "
          "run's start and outcome each commit alone. A new database for each measurement; "
          "hooks, slot limits and connections as for SQLite's; CPU/req of PostgreSQL is all "
          "its processes'.")
    print("- claim latency: the wall clock of the 202 in the client against the one the hook "
          "(bash) writes first thing. take-over: instance a killed at a random moment of its "
          "renewal period while the delivery's first attempt runs there; the figure ends when "
          "the next attempt starts on b.")


def print_limits_table(res, lim, burst, args, pgres=None):
    """(c) and (d) against the dispatch probe (the issue's targets: CPU per
    delivery and p99 at most 5% above the probe's), the machine's limits
    beside them, and the burst."""
    out = []
    w = out.append
    srate = lim["spawn"][0]
    w("| against the machine's limits | hookd | probe | hookd/probe | target | met |")
    w("|---|--:|--:|--:|---|---|")
    w("| this machine's fdatasync rate | %s/s | | | | |"
      % format(int(round(lim["fsync"][0])), ","))
    w("| this machine's posix_spawn rate (/bin/true, one at a time) | %s/s | | | | |"
      % format(int(round(srate)), ","))
    for k, what in (("c", "(c) /bin/true"), ("d", "(d) the script")):
        h, pr = res[k].get("hookd"), res[k].get("probe")
        if not (h and pr):
            continue
        if h.get("cpu_us") and pr.get("cpu_us"):
            r = h["cpu_us"] / pr["cpu_us"]
            w("| %s: CPU per delivery | %s | %s | %s | <= 1.05x probe's | %s |"
              % (what, fmt_cpu(h["cpu_us"]), fmt_cpu(pr["cpu_us"]), fmt_ratio(r),
                 target("%s: CPU per delivery against the dispatch probe's" % what,
                        "%s / %s = %s" % (fmt_cpu(h["cpu_us"]), fmt_cpu(pr["cpu_us"]),
                                          fmt_ratio(r)), "<= 1.05x", r <= 1.05)))
        r = h["p99_us"] / pr["p99_us"] if pr["p99_us"] else None
        w("| %s: p99 | %s | %s | %s | <= 1.05x probe's | %s |"
          % (what, fmt_ms(h["p99_us"]), fmt_ms(pr["p99_us"]), fmt_ratio(r) if r else "—",
             target("%s: p99 against the dispatch probe's" % what,
                    "%s / %s = %s" % (fmt_ms(h["p99_us"]), fmt_ms(pr["p99_us"]),
                                      fmt_ratio(r) if r else "—"),
                    "<= 1.05x", r is not None and r <= 1.05)))
        w("| %s: deliveries/s, and against the posix_spawn rate | %s (%s) | %s (%s) | %s "
          "| | |" % (what, fmt_rps(h), fmt_ratio(h["rps"] / srate), fmt_rps(pr),
                     fmt_ratio(pr["rps"] / srate), fmt_pct(h["rps"] / pr["rps"])))
    if burst:
        n = burst["n"]
        w("| burst: %s async deliveries at %d connections (SQLite journal, /bin/true, "
          "max_running default) | | | | | |" % (format(n, ","), args.connections))
        w("| time until the last 202 | %.2f s (%s/s), 202 p50 %s, p99 %s | | | | |"
          % (burst["t_answered"], format(int(round(burst["accepted"] / burst["t_answered"])),
                                         ","), fmt_ms(burst["p50_us"]), fmt_ms(burst["p99_us"])))
        w("| time until the last one had run | %.2f s (%s/s, %s of the posix_spawn rate) | | | | |"
          % (burst["t_ran"], format(int(round(burst["ran"] / burst["t_ran"])), ","),
             fmt_pct(burst["ran"] / burst["t_ran"] / srate)))
        w("| peak RSS (VmHWM) | %s (idle %s) | | | | |"
          % (mb(burst["peak_kb"]), mb(burst["idle_kb"])))
        target("burst of %s async deliveries, SQLite journal: the last 202 / the last run / "
               "peak RSS" % format(n, ","), "%.2f s / %.2f s / %s"
               % (burst["t_answered"], burst["t_ran"], mb(burst["peak_kb"])), "measured", None)
        pb = pgres and pgres.get("burst")
        if pb:
            w("| the same with the PostgreSQL journal (one instance): the last 202 | %.2f s "
              "(%s/s), 202 p50 %s, p99 %s | | | | |"
              % (pb["t_answered"], format(int(round(pb["accepted"] / pb["t_answered"])), ","),
                 fmt_ms(pb["p50_us"]), fmt_ms(pb["p99_us"])))
            w("| the same with the PostgreSQL journal: the last one run | %.2f s (%s/s) | | | | |"
              % (pb["t_ran"], format(int(round(pb["ran"] / pb["t_ran"])), ",")))
            w("| the same with the PostgreSQL journal: peak RSS (VmHWM) | %s (idle %s) | | | | |"
              % (mb(pb["peak_kb"]), mb(pb["idle_kb"])))
            target("the same burst, PostgreSQL journal", "%.2f s / %.2f s / %s"
                   % (pb["t_answered"], pb["t_ran"], mb(pb["peak_kb"])), "measured", None)
        else:
            w("| the same with the PostgreSQL journal | not measured (--only without g) "
              "| | | | |")
    print()
    print("\n".join(out))
    print()
    print(limits_line(lim))
    if burst:
        print()
        print("- burst: wrk stops sending at the %s-th answer; the %s deliveries hookd "
              "answered 202 (those in flight then included) are the ones waited for. Both "
              "times are from wrk's start to when hookd's own counters (admin /metrics, "
              "polled every 50 ms) showed them all answered, then all run."
              % (format(burst["n"], ","), format(burst["accepted"], ",")))


def print_targets_table(args, lim, load_before, load_after):
    """One table: every target this run checked (the tables above give the detail)."""
    print()
    print("| target | this run | goal | met |")
    print("|---|--:|---|---|")
    for what, figure, goal, ok in TARGETS:
        print("| %s | %s | %s | %s |" % (what, figure, goal, verdict(ok)))
    print()
    print(limits_line(lim))
    print("Machine: %s. Load average %s before, %s after. wrk -t1 -c%d -d%ds a cell, %s."
          % (machine(), load_before, load_after, args.connections, args.duration,
             "the median of %d interleaved rounds" % args.rounds if args.rounds > 1
             else "one round"))


def print_table(res, rss, scale, args, load_before, load_after, lim):
    sc = {
        "a": "(a) wrong token, rejected",
        "b": "(b) an event with no hook",
        "c": "(c) sync dispatch of /bin/true",
        "d": "(d) sample payload to a script reading 3 variables",
    }
    out = []
    w = out.append
    w("| scenario | hookd req/s | p50 | p99 | CPU/req | peer req/s | p50 | p99 | CPU/req "
      "| probe req/s | p50 | p99 | CPU/req | hookd/peer | hookd/probe | target | met |")
    w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|")
    for k in "abcd":
        h, p, pr = res[k].get("hookd"), res[k].get("peer"), res[k].get("probe")
        rp = h["rps"] / p["rps"] if h and p and p["rps"] else None
        rpr = h["rps"] / pr["rps"] if h and pr and pr["rps"] else None
        if k == "a":
            goal = ">= 1.8x peer, >= 85% probe"
            ok = rp is not None and rp >= 1.8 and rpr is not None and rpr >= 0.85
        elif k == "b":
            pa = res["a"].get("peer")
            rpa = h["rps"] / pa["rps"] if h and pa and pa["rps"] else None
            goal = ">= 1.5x peer's (a): %s" % (fmt_ratio(rpa) if rpa else "—")
            ok = rpa is not None and rpa >= 1.5
        elif k == "c":
            p99r = h["p99_us"] / p["p99_us"] if h and p and p["p99_us"] else None
            goal = ">= 1.2x peer, >= 90%% probe, p99 <= 0.8x peer's: %s" % (
                fmt_ratio(p99r) if p99r else "—")
            ok = (rp is not None and rp >= 1.2 and rpr is not None and rpr >= 0.9
                  and p99r is not None and p99r <= 0.8)
        else:
            goal = ">= 1.2x peer"
            ok = rp is not None and rp >= 1.2

        def cells(r):
            return [fmt_rps(r), fmt_ms(r["p50_us"]) if r else "—",
                    fmt_ms(r["p99_us"]) if r else "—",
                    fmt_cpu(r["cpu_us"]) if r and r.get("cpu_us") is not None else "—"]
        w("| %s | %s | %s | %s | %s | %s | %s |" % (
            sc[k], " | ".join(cells(h)), " | ".join(cells(p)), " | ".join(cells(pr)),
            fmt_ratio(rp) if rp else "—", fmt_pct(rpr) if rpr else "—",
            goal + " | " + target(
                sc[k], "%s req/s%s%s" % (fmt_rps(h), ", %s the peer" % fmt_ratio(rp) if rp else "",
                                          ", %s of the probe" % fmt_pct(rpr) if rpr else ""),
                goal, ok)))
    for label, key in (("idle RSS", "idle"), ("RSS after load", "after")):
        h, p = rss["hookd"][key], rss["peer"][key]
        probes = "%s / %s" % (mb(rss["probe_reject"][key]), mb(rss["probe_dispatch"][key]))
        w("| %s | %s | | | | %s | | | | %s | | | | %s | | <= 0.5x peer | %s |" % (
            label, mb(h), mb(p), probes, fmt_ratio(h / p),
            target(label, "%s, %s the peer's" % (mb(h), fmt_ratio(h / p)), "<= 0.5x peer",
                   h <= 0.5 * p)))
        if key == "idle":
            target("idle RSS, no journal", mb(h), "<= 3.5 MB", h <= 3.5 * 1024)
    if scale:
        w("| %s deliveries waiting for a slot: hookd's peak RSS | %s | | | | | | | | | | | "
          "| | | < 48 MB | %s |" % (format(scale["waiting"], ","), mb(scale["peak_kb"]),
                                   target("%s sync deliveries waiting for a slot: peak RSS"
                                          % format(scale["waiting"], ","), mb(scale["peak_kb"]),
                                          "< 48 MB", scale["peak_kb"] < 48 * 1024)))
    print()
    print("\n".join(out))
    print()
    print(limits_line(lim))
    print()
    print("Machine: %s. Load average %s before, %s after (other work on the machine moves "
          "requests/s and latencies; the CPU/req columns much less)."
          % (machine(), load_before, load_after))
    print()
    notes = [
        "wrk -t1 -c%d -d%ds a cell, the sample payload with Northflank's headers and a "
        "delivery id of its own a request; one server loaded at a time, %s."
        % (args.connections, args.duration,
           "the median of %d interleaved rounds" % args.rounds if args.rounds > 1
           else "one round"),
        "(a): every request says \"Connection: close\", to all three servers: hookd closes "
        "the connection after a refusal, so each server opens, answers and closes a "
        "connection a request.",
        "probe: probe_reject (bare libevent, 401) for (a), probe_dispatch (libevent + "
        "posix_spawn of /bin/true + answer on SIGCHLD) for (c), the same probe spawning "
        "(d)'s script for (d); RSS: probe_reject / probe_dispatch.",
        "CPU/req: the server's CPU time (user + system, the hooks it reaped included) "
        "over the requests it answered; when the machine is saturated, the ratio of two "
        "servers' CPU/req bounds the ratio of their requests/s. The peer (Go) runs on both "
        "cores; the probes and hookd's event loop on one (hookd's spawner threads, one a "
        "CPU, only start hook processes).",
        "peer mapping: (a) hook 'true' with a token rule, mismatch code 401; (b) hook "
        "'none', token and event = build:success, so the sample (build:start) gets "
        "'Hook rules were not satisfied.'; (c) hook 'true'; (d) hook 'script' with "
        "pass-environment-to-command. Every peer hook has include-command-output-in-"
        "response, so it answers after its command, as hookd does.",
        "hookd logs a line a request to a file; the peer logs nothing (its default).",
    ]
    if scale:
        notes.append(
            "scale: %s sync deliveries waiting for a slot behind one running hook "
            "(max_running = 1, max_queued = %s), one connection each; hookd idle %s, "
            "peak %s (VmHWM), %.1f KB a waiting delivery."
            % (format(scale["waiting"], ","), format(2 * scale["waiting"], ","),
               mb(scale["idle_kb"]), mb(scale["peak_kb"]),
               (scale["peak_kb"] - scale["idle_kb"]) / scale["waiting"]))
    for n in notes:
        print("- " + n)


# ---- main -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="release build dir (hookd, probes)")
    ap.add_argument("--short", action="store_true",
                    help="CI: 1 s a cell, 4 connections, scale test with 1,000")
    ap.add_argument("--duration", type=int, default=None, help="seconds a cell (8)")
    ap.add_argument("--connections", type=int, default=None, help="wrk connections (16)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every cell, interleaved, and take the median (1)")
    ap.add_argument("--scale", type=int, default=None,
                    help="deliveries waiting in the scale test (10000; 0: skip)")
    ap.add_argument("--burst", type=int, default=None,
                    help="async deliveries in the burst (10000; --short: 1000; 0: skip)")
    ap.add_argument("--only", default="abcdefg",
                    help="scenarios to run (abcdefg; e: async acceptance, f: the burst, "
                    "g: the PostgreSQL journal, with f: the burst with it too)")
    ap.add_argument("--takeovers", type=int, default=None,
                    help="g: instances killed to time the take-over (3; --short: 1; 0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.duration = args.duration or (1 if args.short else 8)
    args.connections = args.connections or (4 if args.short else 16)
    if args.scale is None:
        args.scale = 1000 if args.short else 10000
    if args.burst is None:
        args.burst = 1000 if args.short else 10000
    if args.takeovers is None:
        args.takeovers = 1 if args.short else 3

    hookd_bin = os.path.abspath(os.path.join(args.build, "hookd"))
    probe_dir = os.path.join(args.build, "tests", "bench")
    for b in (hookd_bin, os.path.join(probe_dir, "probe_reject"),
              os.path.join(probe_dir, "probe_dispatch")):
        if not os.access(b, os.X_OK):
            raise BenchError("%s is not built" % b)
    for tool in ("wrk", "webhook"):
        if not shutil.which(tool):
            raise BenchError("%s is not installed" % tool)

    work = tempfile.mkdtemp(prefix="hookd-bench-")
    token = secrets.token_hex(24)
    setup_configs(work, token)
    servers = {}
    load_before = loadavg()
    log("the machine's limits: fdatasync and posix_spawn rates")
    # Measured at the start, again before the async test (fdatasync) and
    # at the end: other work on the machine can halve a measurement, and
    # a target against a limit is held to the best of them.
    fsyncs, spawns = [fdatasync_rate(work)], [posix_spawn_rate()]
    lim = best_limits(fsyncs, spawns)
    try:
        servers["hookd"] = Server("hookd", [hookd_bin, "-c", os.path.join(work, "hookd.ini")],
                                  os.path.join(work, "hookd.log"))
        servers["hookd+journal"] = Server(
            "hookd+journal", [hookd_bin, "-c", os.path.join(work, "hookd-journal.ini")],
            os.path.join(work, "hookd-journal.log"), cwd=work)
        peer_port = free_port()
        servers["peer"] = Server("peer", ["webhook", "-hooks", os.path.join(work, "hooks.json"),
                                          "-ip", "127.0.0.1", "-port", str(peer_port)],
                                 os.path.join(work, "peer.log"))
        for p in ("probe_reject", "probe_dispatch"):
            servers[p] = Server(p, [os.path.join(probe_dir, p)], os.path.join(work, p + ".log"))
        # (d)'s limit: the same script spawned by the bare probe (with no
        # variables, which costs the shell nothing measurable).
        servers["probe_script"] = Server(
            "probe_script", [os.path.join(probe_dir, "probe_dispatch"),
                             os.path.join(work, "hooks.d", "build:start")],
            os.path.join(work, "probe_script.log"))
        servers["hookd"].wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)")
        servers["hookd+journal"].wait_port(r"msg=listening addr=127\.0\.0\.1:(\d+)")
        servers["peer"].wait_connectable(peer_port)
        for p in ("probe_reject", "probe_dispatch", "probe_script"):
            servers[p].wait_port(r"listening (\d+)")
        time.sleep(1.0)
        rss = {n: {"idle": s.rss_kb()} for n, s in servers.items()}

        hp, pp = servers["hookd"].port, servers["peer"].port
        jp = servers["hookd+journal"].port
        bad = "wrong-" + secrets.token_hex(8)
        # scenario -> [(server, port, path, token, expected status, expected text)]
        plan = {
            "a": [("hookd", hp, "/true", bad, 401, '"status":"rejected"'),
                  ("peer", pp, "/hooks/true", bad, 401, "Hook rules were not satisfied"),
                  ("probe", servers["probe_reject"].port, "/true", bad, 401, "rejected")],
            "b": [("hookd", hp, "/none", token, 200, '"status":"unhandled"'),
                  ("hookd+journal", jp, "/none", token, 200, '"status":"unhandled"'),
                  ("peer", pp, "/hooks/none", token, 200, "Hook rules were not satisfied")],
            "c": [("hookd", hp, "/true", token, 200, '"status":"ok"'),
                  ("hookd+journal", jp, "/true", token, 200, '"status":"ok"'),
                  ("peer", pp, "/hooks/true", token, 200, ""),
                  ("probe", servers["probe_dispatch"].port, "/true", token, 200, '"ok"')],
            "d": [("hookd", hp, "/webhook", token, 200, '"status":"ok"'),
                  ("peer", pp, "/hooks/script", token, 200, "build social-hour-1312 of master"),
                  ("probe", servers["probe_script"].port, "/webhook", token, 200, '"ok"')],
        }
        for k in args.only.replace("e", "").replace("f", "").replace("g", ""):
            for name, port, path, tok, st, text in plan[k]:
                check_answer(port, path, tok, st, text)

        res = {k: {} for k in "abcd"}
        runs = {}
        for rnd in range(args.rounds):
            for k in args.only.replace("e", "").replace("f", "").replace("g", ""):
                for name, port, path, tok, st, _ in plan[k]:
                    log("round %d, scenario %s: %s" % (rnd + 1, k, name))
                    probe = {"a": "probe_reject", "c": "probe_dispatch", "d": "probe_script"}
                    srv = servers[probe[k] if name == "probe" else name]
                    r = run_wrk(port, path, tok, args.connections, args.duration,
                                "%s-%s-%d-%s" % (k, name, rnd, secrets.token_hex(4)), srv.pid,
                                close=k in CLOSE_SCENARIOS)
                    errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
                    # wrk counts every answer outside 2xx/3xx as a "status" error.
                    wrong = r["status"] if st < 400 else r["requests"] - r["status"]
                    if errors or wrong or r["requests"] == 0:
                        raise BenchError("scenario %s against %s: %d requests, %d socket "
                                         "errors, %d unexpected statuses"
                                         % (k, name, r["requests"], errors, wrong))
                    runs.setdefault((k, name), []).append(r)
        for (k, name), rs in runs.items():
            # The round with the median rate stands for the cell.
            rs.sort(key=lambda r: r["rps"])
            res[k][name] = rs[len(rs) // 2]
        # "After load" is once the load has settled: hookd gives its heap
        # back after a quiet second (malloc_trim); the peer's Go runtime
        # returns memory on its own schedule. The same wait for every one.
        time.sleep(AFTER_LOAD_WAIT_S)
        for n, s in servers.items():
            rss[n]["after"] = s.rss_kb()
            if s.proc.poll() is not None:
                raise BenchError("%s died during the load: %s" % (n, s.tail()))
        for s in servers.values():
            s.stop()
        jr = {}
        if "e" in args.only:
            fsyncs.append(fdatasync_rate(work))
            jr["async"] = async_test(hookd_bin, work, token, args, work)
        burst = None
        if "f" in args.only and args.burst > 0:
            log("burst: %d async deliveries" % args.burst)
            burst = burst_test(hookd_bin, work, token, args.burst, args.connections, work)
        pgres = None
        if "g" in args.only:
            pgres = pg_tests(hookd_bin, work, token, args)
        scale = None
        if args.scale > 0:
            log("scale: %d deliveries waiting for a slot" % args.scale)
            scale = scale_test(hookd_bin, work, token, args.scale, work)
        load_after = loadavg()
        fsyncs.append(fdatasync_rate(work))
        spawns.append(posix_spawn_rate())
        lim = best_limits(fsyncs, spawns)
        jr["fsync"] = lim["fsync"]
        print_table(res, rss, scale, args, load_before, load_after, lim)
        print_limits_table(res, lim, burst, args, pgres)
        print_journal_table(res, jr, args, lim)
        if pgres:
            print_pg_table(pgres, jr, args, lim)
        print_targets_table(args, lim, load_before, load_after)
    finally:
        for s in servers.values():
            s.stop()
        if args.keep:
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("bench: " + str(e), file=sys.stderr)
        sys.exit(1)
