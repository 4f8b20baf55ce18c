#!/usr/bin/env python3
"""Per-request cost of hookd (and the probes) that does not depend on how
busy the machine is: instructions under callgrind, and system calls under
strace, for each scenario of bench.py.

    python3 tests/bench/profile.py --build build-release [--requests 2000]
        [--only abcde] [--tool callgrind|strace] [--follow] [--probes] [--journal] [--keep]

Each scenario sends N requests one after another on one keep-alive
connection (a new one after each refusal, which closes its connection:
scenario a), with the counters zeroed before and read after, so start-up
is not counted. Prints one line a scenario: instructions (or system
calls) a request; --follow counts every thread's system calls and the
hooks' own (the process between fork and exec, and what it runs), not
only the event loop's. With --keep the callgrind files stay in the work
directory for callgrind_annotate. --journal: the same with the journal on
(scenarios b and c), one request a batch. Scenario e (only when asked for:
--only e) is the async acceptance of bench.py's hookd-async.ini, always
with the journal: one hook running (a sleep), every other delivery queued,
each 202 after the commit and the sync of the WAL that hold its record.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

PATHS = {"a": "/true", "b": "/none", "c": "/true", "d": "/webhook", "e": "/async"}


def request_bytes(path, token, i, body):
    return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "X-Northflank-Notification-Integration-Token: %s\r\n"
            "X-Northflank-Notification-Integration-Event-Type: build:start\r\n"
            "X-Northflank-Notification-Integration-Event-Id: prof-%s-%d\r\n"
            "X-Northflank-Notification-Integration-Id: bench-integration\r\n"
            "X-Northflank-Notification-Integration-Name: Bench\r\n"
            "Content-Length: %d\r\n\r\n" % (path, token, secrets.token_hex(4), i, len(body))
            ).encode() + body


def send_n(port, path, token, n):
    with open(bench.PAYLOAD, "rb") as f:
        body = f.read()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    for i in range(n):
        s.sendall(request_bytes(path, token, i, body))
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"(?i)content-length: *(\d+)", buf[:head_end])
                need = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= need:
                    closing = re.search(rb"(?i)\r\nconnection: *close", buf[:head_end])
                    buf = buf[need:]
                    break
            chunk = s.recv(65536)
            if not chunk:
                raise bench.BenchError("connection closed after %d answers" % i)
            buf += chunk
        if closing:
            # A refusal (scenario a) closes its connection: a new one.
            s.close()
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            buf = b""
    s.close()


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise bench.BenchError("no totals in " + path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--only", default="abcd", help="scenarios; e (async acceptance) too if named")
    ap.add_argument("--tool", choices=("callgrind", "strace"), default="callgrind")
    ap.add_argument("--probes", action="store_true", help="also the probes, for a, c and d")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--follow", action="store_true",
                    help="strace -f: every thread, and the hooks' processes too")
    ap.add_argument("--journal", action="store_true",
                    help="hookd with state_dir set (bench.py's journal config: b and c only)")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="hookd-prof-")
    token = secrets.token_hex(24)
    bench.setup_configs(work, token)
    listening = r"msg=listening addr=127\.0\.0\.1:(\d+)"
    targets = [("hookd", [os.path.join(args.build, "hookd"), "-c",
                          os.path.join(work, "hookd-journal.ini" if args.journal
                                       else "hookd.ini")],
                listening, args.only.replace("e", ""))]
    if "e" in args.only:
        targets.append(("hookd-async", [os.path.join(args.build, "hookd"), "-c",
                                        os.path.join(work, "hookd-async.ini")],
                        listening, "e"))
    if args.probes:
        pdir = os.path.join(args.build, "tests", "bench")
        targets.append(("probe_reject", [os.path.join(pdir, "probe_reject")],
                        r"listening (\d+)", "a" if "a" in args.only else ""))
        targets.append(("probe_dispatch", [os.path.join(pdir, "probe_dispatch")],
                        r"listening (\d+)", "c" if "c" in args.only else ""))
        # (d)'s limit, as bench.py has it: the probe spawning the same script.
        targets.append(("probe_script", [os.path.join(pdir, "probe_dispatch"),
                                         os.path.join(work, "hooks.d", "build:start")],
                        r"listening (\d+)", "d" if "d" in args.only else ""))
    try:
        for name, argv, rx, scen in targets:
            if not scen:
                continue
            out = os.path.join(work, name + ".out")
            if args.tool == "callgrind":
                wrapped = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv
            else:
                wrapped = (["strace", "-c"] + (["-f"] if args.follow else [])
                           + ["-o", out] + argv)
            srv = bench.Server(name, wrapped, os.path.join(work, name + ".log"))
            try:
                srv.wait_port(rx, timeout=60)
                # One request first: lazy start-up work is not per request.
                for k in scen:
                    send_n(srv.port, PATHS[k], "wrong" if k == "a" else token, 2)
                for k in scen:
                    tok = "wrong" if k == "a" else token
                    if args.tool == "callgrind":
                        subprocess.run(["callgrind_control", "-z", str(srv.pid)],
                                       check=True, stdout=subprocess.DEVNULL)
                        send_n(srv.port, PATHS[k], tok, args.requests)
                        time.sleep(0.5)  # the last SIGCHLDs
                        subprocess.run(["callgrind_control", "-d", "scenario-" + k,
                                        str(srv.pid)], check=True, stdout=subprocess.DEVNULL)
                        dumps = sorted((p for p in os.listdir(work)
                                        if p.startswith(name + ".out.")),
                                       key=lambda p: os.path.getmtime(os.path.join(work, p)))
                        ir = callgrind_total(os.path.join(work, dumps[-1]))
                        print("%-15s %s  %8.0f instructions a request  (%s)"
                              % (name, k, ir / args.requests, dumps[-1]), flush=True)
                    else:
                        send_n(srv.port, PATHS[k], tok, args.requests)
                if args.tool == "strace":
                    # SIGTERM to strace detaches the server and leaves it
                    # running: stop the server, then strace writes its table.
                    with open("/proc/%d/task/%d/children" % (srv.pid, srv.pid)) as f:
                        traced = [int(p) for p in f.read().split()]
                    for p in traced:
                        os.kill(p, signal.SIGKILL if "e" in scen else signal.SIGTERM)
                    srv.proc.wait(timeout=30)
                    srv.stop()
                    with open(out) as f:
                        text = f.read()
                    m = re.search(r"^100\.00\s+\S+\s+(?:\S+\s+)?(\d+)\s+(?:\d+\s+)?total", text, re.M)
                    total = int(m.group(1)) if m else 0
                    n = args.requests * len(scen)
                    print("%-15s %s  %6.1f system calls a request\n%s"
                          % (name, scen, total / n, text), flush=True)
            finally:
                if "e" in scen:
                    # SIGTERM would wait for the sleeping hook.
                    srv.stop(signal.SIGKILL)
                    bench.kill_slow_hooks(work)
                else:
                    srv.stop()
    finally:
        if args.keep:
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except bench.BenchError as e:
        print("profile: " + str(e), file=sys.stderr)
        sys.exit(1)
