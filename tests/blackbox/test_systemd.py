"""systemd integration, black-box (README "Logs and signals", "Running in production"): the sd_notify protocol on a
NOTIFY_SOCKET we own (path and abstract), the watchdog, socket activation
with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, log_format = json and journald
priorities under JOURNAL_STREAM."""

import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, base_config  # noqa: E402
from harness import http_request as request  # noqa: E402
from harness import ops_hookd as Daemon  # noqa: E402

ENV_DUMP = ("#!/bin/sh\nenv > '{tmp}/env.txt'\n"
            "for f in /proc/$$/fd/*; do readlink \"$f\"; done > '{tmp}/fds.txt'\n"
            "echo hook says hello\n")

# Puts the sockets given as fds in argv[1] (comma-separated) at 3, 4, ...,
# sets LISTEN_PID to its own pid (which hookd keeps: exec does not change
# it) and execs hookd, as systemd does for a socket-activated service.
ACTIVATE = r"""
import os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
tmp = [os.dup(fd) for fd in fds]          # out of the way of 3, 4, ...
for fd in fds:
    os.close(fd)
for i, fd in enumerate(tmp):
    os.dup2(fd, 3 + i)                    # inheritable
    os.close(fd)
if sys.argv[2] != "-":
    os.environ["LISTEN_PID"] = str(os.getpid()) if sys.argv[2] == "self" else sys.argv[2]
os.environ["LISTEN_FDS"] = str(len(fds))
os.execv(sys.argv[3], sys.argv[3:])
"""


class NotifySocket:
    """A unix datagram socket as systemd's NOTIFY_SOCKET, with sender credentials."""

    def __init__(self, abstract=False, tmpdir="/tmp"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "hookd-test-" + uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.path = os.path.join(tmpdir, "notify-%s.sock" % uuid.uuid4().hex[:8])
            self.sock.bind(self.path)
            self.env = self.path
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (pid, {name: value}, raw)

    def recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iii", cdata[:12])[0]
        text = data.decode()
        fields = dict(line.split("=", 1) for line in text.split("\n") if line)
        msg = (pid, fields, text)
        self.messages.append(msg)
        return msg

    def wait(self, name, value=None, timeout=10.0):
        """The next message that sets name (to value); earlier ones are kept."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s=%s within %ss; got %r" %
                                     (name, value, timeout, [m[2] for m in self.messages]))
            m = self.recv(left)
            if m and name in m[1] and (value is None or m[1][name] == value):
                return m

    def close(self):
        self.sock.close()
        if hasattr(self, "path"):
            os.unlink(self.path)


def listening_socket(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(16)
    return s


def activated(socks, listen_pid="self"):
    """wrap= and pass_fds= for Daemon: hookd gets socks as fds 3, 4, ..."""
    fds = [s.fileno() for s in socks]
    wrap = [sys.executable, "-c", ACTIVATE, ",".join(map(str, fds)), listen_pid]
    return wrap, fds


def fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags for fd %d" % fd)


class NotifyTest(unittest.TestCase):

    def test_ready_status_reload_stopping(self):
        ns = NotifySocket()
        try:
            with Daemon(base_config(), env={"NOTIFY_SOCKET": ns.env}) as d:
                pid, f, _ = ns.wait("READY", "1")
                self.assertEqual(pid, d.proc.pid, "sent by hookd itself (NotifyAccess=main)")
                self.assertEqual(f.get("STATUS"), "serving on 127.0.0.1:%d" % d.port)
                # READY comes only once hookd answers.
                self.assertEqual(request(d.port, "POST", "/nope", b"{}").status, 404)

                d.send_signal(signal.SIGHUP)
                _, f, _ = ns.wait("RELOADING", "1")
                mono = int(f["MONOTONIC_USEC"])
                self.assertLess(abs(mono - time.monotonic() * 1e6), 60e6,
                                "MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds")
                _, f, _ = ns.wait("READY", "1")
                self.assertIn("reloaded", f.get("STATUS", ""))

                with open(d.config_path, "a") as cf:
                    cf.write("\n[server]\nno_such_key = 1\n")
                d.send_signal(signal.SIGHUP)
                ns.wait("RELOADING", "1")
                _, f, _ = ns.wait("READY", "1")
                self.assertIn("failed", f.get("STATUS", ""))

                d.send_signal(signal.SIGTERM)
                _, f, _ = ns.wait("STOPPING", "1")
                self.assertIn("draining", f.get("STATUS", ""))
                self.assertEqual(d.stop(), 0)
                # No watchdog was asked for: no keep-alives were sent.
                self.assertFalse([m for m in ns.messages if "WATCHDOG" in m[1]])
        finally:
            ns.close()

    def test_reload_while_draining_stays_stopping(self):
        # A SIGHUP that comes during the drain (a hook still runs) is
        # applied, but systemd, told STOPPING=1, is not told READY=1 or
        # "serving" again: the status stays a draining one.
        ns = NotifySocket()
        hook = "#!/bin/sh\ntouch '{tmp}/started'\nsleep 1.5\n"
        try:
            with Daemon(base_config(), hooks={"build:start": hook},
                        env={"NOTIFY_SOCKET": ns.env}) as d:
                ns.wait("READY", "1")
                out = []
                t = threading.Thread(target=lambda: out.append(d.northflank(event_id="drain-1")))
                t.start()
                harness.wait_for(lambda: os.path.exists(d.path("started")), 5, "the hook ran")
                d.send_signal(signal.SIGTERM)
                ns.wait("STOPPING", "1")
                d.reload()
                self.assertEqual(d.stop(), 0)
                t.join(10)
                self.assertEqual(out[0].status, 200, out)
                while ns.recv(0.2):
                    pass
                after = [m[1] for m in ns.messages]
                after = after[next(i for i, f in enumerate(after) if "STOPPING" in f):]
                self.assertFalse([f for f in after if "READY" in f or "RELOADING" in f], after)
                self.assertTrue(all("draining" in f.get("STATUS", "draining") for f in after),
                                after)
                self.assertIn("config reloaded", after[-1].get("STATUS", ""), after)
        finally:
            ns.close()

    def test_abstract_socket(self):
        ns = NotifySocket(abstract=True)
        try:
            with Daemon(base_config(), env={"NOTIFY_SOCKET": ns.env}) as d:
                pid, f, _ = ns.wait("READY", "1")
                self.assertEqual(pid, d.proc.pid)
                self.assertEqual(d.stop(), 0)
                ns.wait("STOPPING", "1", timeout=2)
        finally:
            ns.close()

    def test_watchdog(self):
        ns = NotifySocket()
        try:
            with Daemon(base_config(), env={"NOTIFY_SOCKET": ns.env,
                                            "WATCHDOG_USEC": "200000"}) as d:
                ns.wait("READY", "1")
                d.wait_line("watchdog: keep-alive every 100ms")
                t0 = time.monotonic()
                for _ in range(5):
                    pid, _, _ = ns.wait("WATCHDOG", "1", timeout=2)
                    self.assertEqual(pid, d.proc.pid)
                # Five keep-alives at 100 ms take about 0.4-0.5 s, not 2.
                self.assertLess(time.monotonic() - t0, 1.5)
                self.assertEqual(d.stop(), 0)
        finally:
            ns.close()

    def test_watchdog_for_another_pid(self):
        ns = NotifySocket()
        try:
            env = {"NOTIFY_SOCKET": ns.env, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
            with Daemon(base_config(), env=env) as d:
                ns.wait("READY", "1")
                with self.assertRaises(AssertionError):
                    ns.wait("WATCHDOG", "1", timeout=0.6)
                self.assertEqual(d.stop(), 0)
        finally:
            ns.close()

    def test_watchdog_pid_is_ours(self):
        ns = NotifySocket()
        try:
            # WATCHDOG_PID=$$ in a shell that then execs hookd: the same pid.
            wrap = ["sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"]
            env = {"NOTIFY_SOCKET": ns.env, "WATCHDOG_USEC": "100000"}
            with Daemon(base_config(), env=env, wrap=wrap) as d:
                ns.wait("READY", "1")
                ns.wait("WATCHDOG", "1", timeout=2)
                self.assertEqual(d.stop(), 0)
        finally:
            ns.close()

    def test_bad_notify_socket_is_not_fatal(self):
        env = {"NOTIFY_SOCKET": "vsock:2:1234", "WATCHDOG_USEC": "100000"}
        with Daemon(base_config(), env=env) as d:
            d.wait_line("NOTIFY_SOCKET=vsock:2:1234: not a unix socket")
            self.assertEqual(request(d.port, "POST", "/nope", b"{}").status, 404)
            self.assertEqual(d.stop(), 0)

    def test_notify_socket_gone(self):
        # A socket path nobody listens on: sends fail, hookd serves on.
        env = {"NOTIFY_SOCKET": "/nonexistent/notify.sock"}
        with Daemon(base_config(), env=env) as d:
            self.assertEqual(request(d.port, "POST", "/nope", b"{}").status, 404)
            d.send_signal(signal.SIGHUP)
            d.wait_line("config reloaded")
            self.assertEqual(d.stop(), 0)


class SocketActivationTest(unittest.TestCase):

    def test_activated_socket_is_served(self):
        sock = listening_socket()
        port = sock.getsockname()[1]
        wrap, fds = activated([sock])
        cfg = base_config(admin=False, extra_server=(
            "pass_env = PATH LISTEN_FDS LISTEN_PID LISTEN_FDNAMES NOTIFY_SOCKET\n"))
        try:
            with Daemon(cfg, hooks={"build:start": ENV_DUMP}, wrap=wrap, pass_fds=fds) as d:
                sock.close()  # hookd has its own copy now
                self.assertEqual(d.port, port, "the passed socket, not [server] listen")
                line = d.wait_line("msg=listening")
                self.assertIn("source=systemd", line)
                flags = fd_flags(d.proc.pid, 3)
                self.assertTrue(flags & os.O_NONBLOCK, "fd 3 made non-blocking: %o" % flags)
                self.assertTrue(flags & 0o2000000, "fd 3 made close-on-exec: %o" % flags)
                r = d.deliver()
                self.assertEqual(r.status, 200, r.raw)
                with open(os.path.join(d.tmp, "env.txt")) as f:
                    env = f.read()
                for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
                    self.assertNotIn(name + "=", env, "hookd unset it for its children")
                with open(os.path.join(d.tmp, "fds.txt")) as f:
                    fdlinks = f.read()
                self.assertNotIn("socket:", fdlinks, "the hook inherited no socket")
                self.assertIn("pipe:", fdlinks)
                self.assertEqual(d.stop(), 0)
        finally:
            sock.close()

    def test_webhook_and_admin_sockets_by_name(self):
        web, adm = listening_socket(), listening_socket()
        wrap, fds = activated([web, adm])
        try:
            with Daemon(base_config(admin=False), wrap=wrap, pass_fds=fds,
                        env={"LISTEN_FDNAMES": "hookd.socket:admin"}) as d:
                self.assertEqual(d.port, web.getsockname()[1])
                self.assertIn("source=systemd", d.wait_line('msg="admin listening"'))
                self.assertEqual(d.admin_port, adm.getsockname()[1])
                self.assertEqual(d.admin("GET", "/healthz").json, {"status": "ok"})
                self.assertEqual(request(d.port, "GET", "/healthz").status, 404)
                self.assertEqual(d.stop(), 0)
        finally:
            web.close()
            adm.close()

    def test_passed_admin_socket_open_to_all_needs_a_token(self):
        web = listening_socket()
        adm = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        adm.bind(("0.0.0.0", 0))
        adm.listen(4)
        wrap, fds = activated([web, adm])
        try:
            d = Daemon(base_config(admin=False), wrap=wrap, pass_fds=fds, listening=False,
                       env={"LISTEN_FDNAMES": "hookd.socket:admin"})
            d.expected_rc = 2
            with d:
                self.assertEqual(d.proc.wait(10), 2)
                d.log_ended()
                text = d.log_text()
                self.assertIn("admin socket passed by systemd (0.0.0.0:%d) is not loopback"
                              % adm.getsockname()[1], text)
                self.assertIn("token_file", text)
        finally:
            web.close()
            adm.close()

    def test_admin_bound_from_config_when_not_passed(self):
        web = listening_socket()
        wrap, fds = activated([web])
        try:
            with Daemon(base_config(admin=True), wrap=wrap, pass_fds=fds) as d:
                self.assertEqual(d.port, web.getsockname()[1])
                self.assertIn("source=config", d.wait_line('msg="admin listening"'))
                self.assertEqual(d.admin("GET", "/healthz").status, 200)
                self.assertEqual(d.stop(), 0)
        finally:
            web.close()

    def test_listen_pid_of_another_process(self):
        sock = listening_socket()
        wrap, fds = activated([sock], listen_pid="1")
        try:
            with Daemon(base_config(admin=False), wrap=wrap, pass_fds=fds) as d:
                self.assertNotEqual(d.port, sock.getsockname()[1])
                self.assertIn("source=config", d.wait_line("msg=listening"))
                self.assertEqual(d.stop(), 0)
        finally:
            sock.close()

    def test_not_a_listening_socket(self):
        for kind in (socket.SOCK_DGRAM, "unlistened"):
            if kind == "unlistened":
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
            else:
                s = listening_socket(kind)
            wrap, fds = activated([s])
            try:
                d = Daemon(base_config(admin=False), wrap=wrap, pass_fds=fds,
                           listening=False)
                d.expected_rc = 1
                with d:
                    self.assertEqual(d.proc.wait(10), 1)
                    d.log_ended()
                    self.assertIn("fd 3 is not a listening stream socket", d.log_text())
            finally:
                s.close()

    def test_bad_listen_fds(self):
        wrap = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=many exec "$@"', "sh"]
        with Daemon(base_config(admin=False), wrap=wrap, listening=False) as d:
            d.expected_rc = 1
            self.assertEqual(d.proc.wait(10), 1)
            d.log_ended()
            self.assertIn("bad LISTEN_FDS 'many'", d.log_text())


class LogFormatTest(unittest.TestCase):

    def test_json_lines(self):
        cfg = base_config(admin=False, extra_server="log_format = json\n")
        with Daemon(cfg, hooks={"build:start": ENV_DUMP}) as d:
            self.assertEqual(d.deliver(event_id="json-1").status, 200)
            self.assertEqual(d.deliver(token="bad").status, 401)
            d.wait_line('"msg":"rejected"')
            self.assertEqual(d.stop(), 0)
            d.log_ended()
            lines = [x for x in d.lines if x]
            self.assertGreater(len(lines), 4)
            objs = [json.loads(x) for x in lines]  # every line is one JSON object
            for o in objs:
                self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
                self.assertIn(o["level"], ("debug", "info", "warn", "error"))
                self.assertIsInstance(o["msg"], str)
                # Numbers and flags are JSON's own (README "Logs and
                # signals"); every other value is a string.
                for k, v in o.items():
                    want = (int if k in ("http", "ms", "hooks", "attempt", "uid", "gid")
                            else str)
                    self.assertIs(type(v), want, "%s: %r" % (k, o))
            dl = [o for o in objs if o["msg"] == "delivery"]
            self.assertEqual(len(dl), 1)
            self.assertEqual(dl[0]["endpoint"], "northflank")
            self.assertEqual(dl[0]["event"], "build:start")
            self.assertEqual(dl[0]["id"], "json-1")
            self.assertEqual(dl[0]["status"], "ok")
            self.assertEqual(dl[0]["http"], 200)
            self.assertEqual(dl[0]["level"], "info")
            rej = [o for o in objs if o["msg"] == "rejected"]
            self.assertEqual(rej[0]["level"], "warn")
            self.assertEqual(rej[0]["http"], 401)
            self.assertTrue(any("hook says hello" in json.dumps(o) for o in objs),
                            "the hook's output line is logged as JSON too")
            self.assertFalse(any("bad" == v for o in objs for v in o.values()),
                             "the wrong token is never logged")

    def test_json_lines_are_utf8(self):
        """Hook output may hold any bytes; a JSON log line and a JSON answer
        are UTF-8 all the same (U+FFFD for a bad byte). A delivery id with a
        bad byte is refused (400), in a UTF-8 answer and log line too."""
        cfg = base_config(admin=False, extra_server="log_format = json\ninclude_output = yes\n")
        hook = "#!/bin/sh\nprintf 'bad \\377 byte\\n'\nprintf 'ok \\303\\251\\n'\n"
        with Daemon(cfg, hooks={"build:start": hook}) as d:
            r = d.deliver(event_id="\xfc-id")  # sent as the one byte 0xFC
            self.assertEqual(r.status, 400, r.raw)
            answer = json.loads(r.raw.decode("utf-8"))  # strict: raises on a bad byte
            self.assertEqual(answer["error"], "invalid delivery id")
            r = d.deliver(event_id="\xc3\xa9-id")  # the two bytes of U+00E9
            self.assertEqual(r.status, 200, r.raw)
            answer = json.loads(r.raw.decode("utf-8"))
            self.assertEqual(answer["id"], "\u00e9-id")
            self.assertEqual(answer["hooks"][0]["output"], "bad \ufffd byte\nok \u00e9\n")
            self.assertEqual(d.stop(), 0)
            d.log_ended()
            objs = [json.loads(x.decode("utf-8")) for x in d.raw_lines if x]
            outs = [o["line"] for o in objs if "line" in o]
            self.assertIn("bad \ufffd byte", outs)
            self.assertIn("ok \u00e9", outs)
            dl = [o for o in objs if o["msg"] == "delivery"]
            self.assertEqual(dl[0]["id"], "\u00e9-id")
            self.assertTrue(any(o.get("error") == "invalid delivery id" for o in objs), objs)

    def test_journald_priorities(self):
        for fmt in ("logfmt", "json"):
            cfg = base_config(admin=False, extra_server="log_format = %s\n" % fmt)
            with Daemon(cfg, hooks={"build:start": ENV_DUMP}, journal_stream=True) as d:
                self.assertEqual(d.deliver().status, 200)
                self.assertEqual(d.deliver(token="bad").status, 401)
                with open(d.config_path, "a") as f:
                    f.write("\n[server]\nno_such_key = 1\n")
                d.send_signal(signal.SIGHUP)
                d.wait_line("reload failed")
                self.assertEqual(d.stop(), 0)
                d.log_ended()
                lines = [x for x in d.lines if x]
                for line in lines:
                    self.assertRegex(line, r"^<[3467]>", "every line carries its priority")
                    body = line[3:]
                    if fmt == "json":
                        json.loads(body)
                    else:
                        self.assertTrue(body.startswith("ts="), line)

                def prio(pattern):
                    return [x[:3] for x in lines if re.search(pattern, x)]
                self.assertEqual(prio(r"listening"), ["<6>"])
                self.assertEqual(prio(r"rejected"), ["<4>"])          # warn -> warning
                self.assertEqual(prio(r"reload failed"), ["<3>"])     # error -> err
                self.assertEqual(prio(r'msg"?[=:]"?delivery'), ["<6>"])

    def test_journal_stream_of_another_file(self):
        # JOURNAL_STREAM that does not name hookd's stderr: no prefixes.
        with Daemon(base_config(admin=False), journal_stream="1:1") as d:
            self.assertEqual(d.stop(), 0)
            d.log_ended()
            for line in (x for x in d.lines if x):
                self.assertTrue(line.startswith("ts="), line)


if __name__ == "__main__":
    if not os.path.exists(HOOKD_BIN):
        sys.exit("no hookd binary at " + HOOKD_BIN)
    harness.main()
