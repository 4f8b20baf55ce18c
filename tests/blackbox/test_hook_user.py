"""Secrets out of a hook's reach (issue 16, point 4): hookd is undumpable
and holds no secret_env in its environment, and with [server] hook_user its
hooks run as a user of their own. A probe hook then tries every way to
hookd's secrets that a hook of hookd's own uid had: /proc/$PPID/environ,
/proc/PID/mem, ptrace, the secret file, journal.db and control.sock. Each
must fail, while the same delivery runs with its usual variables.

Needs root (hookd drops to `daemon`, hooks run as `nobody`); skipped
otherwise.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_hook_user.py [-k NAME]
"""

import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, NF_PREFIX, post_json  # noqa: E402

IS_ROOT = os.geteuid() == 0
SKIP_WHY = "hook_user needs root to start hookd (tests run as uid %d)" % os.geteuid()

DAEMON_USER = "daemon"   # what hookd drops to, as the package's `hookd`
HOOK_USER = "nobody"     # what hooks run as, as the package's `hookd-hooks`

FILE_TOKEN = "file-token-%s-Sec" % os.getpid()
ENV_TOKEN = "env-token-%s-Sec" % os.getpid()
ENV_NAME = "HOOKD_TEST_ENV_TOKEN"

# Tries each way in and says what happened, as one JSON object on stdout.
# It exits 0 either way: the test judges.
PROBE = r'''#!/usr/bin/env python3
import ctypes, json, os, socket, sys
tries = {}

def attempt(name, fn):
    try:
        got = fn()
        tries[name] = "read: %d bytes" % len(got)  # never the bytes: no secret in a log
    except OSError as e:
        tries[name] = "refused: %s" % e.strerror

def read(path):
    with open(path, "rb") as f:
        return f.read()

ppid = os.getppid()
pid = int(sys.argv[1]) if len(sys.argv) > 1 else ppid
attempt("ppid_environ", lambda: read("/proc/%d/environ" % ppid))
attempt("ppid_mem", lambda: read("/proc/%d/mem" % ppid))
attempt("ppid_fd", lambda: os.listdir("/proc/%d/fd" % ppid))
attempt("secret_file", lambda: read(os.environ["PROBE_SECRET_FILE"]))
attempt("journal", lambda: read(os.environ["PROBE_STATE"] + "/journal.db"))
attempt("state_dir", lambda: os.listdir(os.environ["PROBE_STATE"]))

def control():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.environ["PROBE_STATE"] + "/control.sock")
    return b"connected"
attempt("control_sock", control)

def ptrace():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(16, ppid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    libc.ptrace(17, ppid, None, None)  # PTRACE_DETACH
    return b"attached"
attempt("ptrace", ptrace)

status = read("/proc/self/status").decode()
tries["self"] = {k: v.split() for k, v in (l.split(":", 1) for l in status.splitlines())
                 if k in ("Uid", "Gid", "Groups", "CapPrm", "CapEff", "CapInh", "CapAmb")}
tries["hook_env"] = {k: v for k, v in os.environ.items() if k.startswith("HOOK_")}
tries["stdin"] = sys.stdin.read()
print(json.dumps(tries))
'''

WAYS_IN = ("ppid_environ", "ppid_mem", "ppid_fd", "secret_file", "journal", "state_dir",
           "control_sock", "ptrace")


def config(hook_user=True, extra_server=""):
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\nstate_dir = {state}\n"
            "timeout = 5s\nkill_grace = 1s\ninclude_output = yes\n"
            "pass_env = PATH PROBE_SECRET_FILE PROBE_STATE\n"
            "user = %s\n%s%s"
            "\n[endpoint nf]\npath = /webhook\nscheme = northflank\n"
            "secret_file = {tmp}/token\n"
            "\n[endpoint env]\npath = /env\nscheme = northflank\nsecret_env = %s\n"
            % (DAEMON_USER, "hook_user = %s\n" % HOOK_USER if hook_user else "",
               extra_server, ENV_NAME))


def nf(token=FILE_TOKEN):
    return {NF_PREFIX + "Token": token}


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        return re.search(r"^%s:\s*(.*)$" % name, f.read(), re.M).group(1).split()


def check(h):
    """`hookd check` with hookd's own environment (secret_env's variable)."""
    return subprocess.run([HOOKD_BIN, "-c", h.config_path, "check"], env=h.env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, timeout=15)


@unittest.skipUnless(IS_ROOT, SKIP_WHY)
class TestHookUser(unittest.TestCase):
    maxDiff = None

    def daemon(self, cfg=None, hooks=None, start=True):
        d = harness.Hookd(cfg or config(), hooks or {"probe": PROBE},
                          env={ENV_NAME: ENV_TOKEN}, secrets=(FILE_TOKEN, ENV_TOKEN),
                          log_file=True, world_readable=True, start=False)
        # As the package ships it: root owns the token, hookd's group reads it.
        token = d.write_file("token", FILE_TOKEN + "\n", mode=0o640)
        os.chown(token, 0, pwd.getpwnam(DAEMON_USER).pw_gid)
        d.env.update(PROBE_SECRET_FILE=token, PROBE_STATE=d.state)
        # Where a hook of another uid may write.
        os.makedirs(d.path("out"))
        os.chmod(d.path("out"), 0o1777)
        if start:
            d.start()
        return d

    def probe(self, h, path="/webhook", token=FILE_TOKEN):
        st, body = post_json(h.port, {"event": "probe", "repo": "blog"}, path=path,
                             headers=nf(token))
        self.assertEqual(st, 200, body)
        out = json.loads(body)["hooks"][0]
        self.assertEqual(out["exit"], 0, out)
        return json.loads(out["output"])

    def test_probe_finds_every_way_closed(self):
        nobody = pwd.getpwnam(HOOK_USER)
        with self.daemon() as h:
            got = self.probe(h)
            for way in WAYS_IN:
                self.assertTrue(got[way].startswith("refused"), "%s: %s" % (way, got[way]))
            # The delivery itself is as usual: its variables, its body.
            self.assertEqual(got["hook_env"].get("HOOK_EVENT"), "probe", got["hook_env"])
            self.assertEqual(got["hook_env"].get("HOOK_REPO"), "blog", got["hook_env"])
            self.assertEqual(json.loads(got["stdin"]), {"event": "probe", "repo": "blog"})
            # As hook_user, all four uids, with no capability at all.
            self.assertEqual(got["self"]["Uid"], [str(nobody.pw_uid)] * 4)
            self.assertEqual(got["self"]["Gid"], [str(nobody.pw_gid)] * 4)
            for cap in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
                self.assertEqual(int(got["self"][cap][0], 16), 0, cap)
            # hookd: its user, and nothing but the three capabilities.
            daemon = pwd.getpwnam(DAEMON_USER)
            self.assertEqual(status_field(h.pid, "Uid"), [str(daemon.pw_uid)] * 4)
            caps = {k: int(status_field(h.pid, k)[0], 16)
                    for k in ("CapPrm", "CapEff", "CapInh", "CapAmb")}
            self.assertEqual(caps, {"CapPrm": 0xe0, "CapEff": 0x20, "CapInh": 0, "CapAmb": 0})
            self.assertIn("hooks run as their own user", h.log_text())
            # The secret_env endpoint works after a reload, from the value
            # read at start: the variable itself is gone.
            self.assertEqual(self.probe(h, "/env", ENV_TOKEN)["hook_env"]["HOOK_EVENT"], "probe")
            h.reload()
            self.assertEqual(self.probe(h, "/env", ENV_TOKEN)["hook_env"]["HOOK_EVENT"], "probe")
            self.assertEqual(h.stop(), 0)
            h.check_no_secrets()

    def test_secret_env_gone_from_proc_environ(self):
        """Even root, reading /proc/PID/environ, finds neither the name
        nor the value of a secret_env variable; the canary hookd was also
        started with, not a secret, is still there."""
        with self.daemon() as h:
            with open("/proc/%d/environ" % h.pid, "rb") as f:
                env = f.read()
            self.assertNotIn(ENV_TOKEN.encode(), env)
            self.assertNotIn(ENV_NAME.encode(), env)
            self.assertIn(harness.CANARY_NAME.encode(), env)
            self.assertEqual(status_field(h.pid, "Uid")[0], str(pwd.getpwnam(DAEMON_USER).pw_uid))

    def test_undumpable_even_without_hook_user(self):
        """Without hook_user the hook shares hookd's uid: it can read the
        files of that uid (which is what hook_user is for), but not hookd's
        memory, environment or fds."""
        with self.daemon(config(hook_user=False)) as h:
            got = self.probe(h)
            for way in ("ppid_environ", "ppid_mem", "ppid_fd", "ptrace"):
                self.assertTrue(got[way].startswith("refused"), "%s: %s" % (way, got[way]))
            self.assertTrue(got["secret_file"].startswith("read"), got["secret_file"])
            self.assertEqual(got["self"]["Uid"][0], str(pwd.getpwnam(DAEMON_USER).pw_uid))
            self.assertNotIn("hooks run as their own user", h.log_text())
            # No capability is kept when no hook needs one.
            self.assertEqual(int(status_field(h.pid, "CapPrm")[0], 16), 0)

    def test_hook_user_that_is_hookd_itself(self):
        """hook_user naming hookd's own user needs no switch and keeps no
        capability; hooks run as usual."""
        cfg = config().replace("hook_user = %s" % HOOK_USER, "hook_user = %s" % DAEMON_USER)
        with self.daemon(cfg) as h:
            got = self.probe(h)
            self.assertEqual(got["self"]["Uid"][0], str(pwd.getpwnam(DAEMON_USER).pw_uid))
            self.assertEqual(int(status_field(h.pid, "CapPrm")[0], 16), 0)

    def test_hook_that_hook_user_may_not_run_says_why(self):
        """A hook hookd's own user may run but hook_user may not: execve's
        "Permission denied" alone sent people looking at the hook's #!
        line; the answer and the log say which permission hook_user lacks,
        and `hookd check` finds it before a delivery does, as it finds a
        directory hook_user may not search and a script it may not read."""
        daemon = pwd.getpwnam(DAEMON_USER)
        hooks = {"own": "#!/bin/sh\necho own\n", "script": "#!/bin/sh\necho script\n",
                 "fine": "#!/bin/sh\necho fine\n"}
        with self.daemon(hooks=hooks, start=False) as h:
            own, script = os.path.join(h.hooks, "own"), os.path.join(h.hooks, "script")
            os.chown(own, daemon.pw_uid, daemon.pw_gid)
            os.chmod(own, 0o750)
            os.chmod(script, 0o711)  # executable by all, readable by its owner only
            h.start()
            st, body = post_json(h.port, {"event": "own"}, headers=nf())
            self.assertEqual(st, 500, body)
            why = ("exec failed: Permission denied (hook_user %s may not execute the hook: "
                   "mode 0750, uid %d, gid %d)" % (HOOK_USER, daemon.pw_uid, daemon.pw_gid))
            self.assertEqual(json.loads(body)["hooks"][0]["error"], why, body)
            self.assertIn(why, h.log_text())
            self.assertEqual(post_json(h.port, {"event": "fine"}, headers=nf())[0], 200)
            p = check(h)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("error: own: hook_user %s may not execute the hook" % HOOK_USER,
                          p.stdout)
            self.assertIn("error: script: hook_user %s may not read the hook, a script: "
                          "mode 0711" % HOOK_USER, p.stdout)
            self.assertNotIn("fine: hook_user", p.stdout)
            # The hooks dir itself, closed to all but its owner.
            mode = os.stat(h.hooks).st_mode & 0o7777
            os.chown(h.hooks, daemon.pw_uid, daemon.pw_gid)
            os.chmod(h.hooks, 0o700)
            try:
                p = check(h)
                self.assertIn("error: fine: hook_user %s may not search %s: mode 0700"
                              % (HOOK_USER, h.hooks), p.stdout)
            finally:
                os.chmod(h.hooks, mode)
                os.chown(h.hooks, 0, 0)

    def test_check_judges_hooks_for_user_without_hook_user(self):
        """Without hook_user the hooks run as `user` (hookd drops to it):
        `hookd check`, run as root, judges them for that user, as it does
        for hook_user (it found every hook allowed: root may run them all),
        as the daemon finds it."""
        hooks = {"rootonly": "#!/bin/sh\necho rootonly\n", "fine": "#!/bin/sh\necho fine\n"}
        with self.daemon(cfg=config(hook_user=False), hooks=hooks, start=False) as h:
            rootonly = os.path.join(h.hooks, "rootonly")
            os.chmod(rootonly, 0o700)  # root's, as the test wrote it
            p = check(h)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("error: rootonly: user %s may not execute the hook: mode 0700, "
                          "uid 0, gid 0" % DAEMON_USER, p.stdout)
            self.assertNotIn("fine: user", p.stdout)
            self.assertNotIn("hook_user", p.stdout)
            h.start()
            st, body = post_json(h.port, {"event": "rootonly"}, headers=nf())
            self.assertEqual(st, 500, body)
            self.assertEqual(json.loads(body)["hooks"][0]["error"], "not executable: rootonly",
                             body)
            self.assertEqual(post_json(h.port, {"event": "fine"}, headers=nf())[0], 200)
            os.chmod(rootonly, 0o755)
            p = check(h)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_check_with_user_root_judges_nothing_by_mode_bits(self):
        """`user = root` without hook_user: the hooks run as root, who may
        run any hook with an execute bit and search any directory; `hookd
        check` says nothing of a hook whose bits are another user's only,
        and the daemon runs it."""
        cfg = config(hook_user=False).replace("user = %s\n" % DAEMON_USER, "user = root\n")
        hooks = {"theirs": "#!/bin/sh\necho theirs\n"}
        with self.daemon(cfg=cfg, hooks=hooks, start=False) as h:
            theirs = os.path.join(h.hooks, "theirs")
            os.chown(theirs, pwd.getpwnam(DAEMON_USER).pw_uid, pwd.getpwnam(DAEMON_USER).pw_gid)
            os.chmod(theirs, 0o700)
            p = check(h)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertNotIn("may not", p.stdout)
            h.start()
            st, body = post_json(h.port, {"event": "theirs"}, headers=nf())
            self.assertEqual(st, 200, body)

    def test_hook_of_another_uid_is_still_stopped_at_its_timeout(self):
        """hookd signals a group of another uid (CAP_KILL): a hook that
        ignores SIGTERM is killed after kill_grace, its group gone."""
        hang = harness.sh("trap '' TERM\necho $$ > '{tmp}/out/pid'\nsleep 30 & wait\nsleep 30")
        cfg = config().replace("timeout = 5s", "timeout = 1s")
        with self.daemon(cfg, {"hang": hang}) as h:
            t0 = time.monotonic()
            st, body = post_json(h.port, {"event": "hang"}, headers=nf())
            self.assertLess(time.monotonic() - t0, 4.5, body)
            self.assertEqual(st, 504, body)
            pid = int(h.read("out/pid"))
            self.assertTrue(harness.wait_group_gone(pid), "the hook's group outlived it")

    def test_hook_core_limit_is_the_one_hookd_got(self):
        """hookd's own soft core limit is 0; its hooks get back the one it
        was started with."""
        core = harness.sh("ulimit -c > '{tmp}/out/core'")
        with self.daemon(hooks={"core": core}, start=False) as h:
            # AddressSanitizer lowers the limit itself at start unless told not to.
            asan = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":") if o]
            h.env["ASAN_OPTIONS"] = ":".join(asan + ["disable_coredump=0"])
            h.preexec_fn = lambda: __import__("resource").setrlimit(
                __import__("resource").RLIMIT_CORE, (4096 * 512, 4096 * 512))
            h.start()
            with open("/proc/%d/limits" % h.pid) as f:
                line = [x for x in f if x.startswith("Max core file size")][0]
            self.assertEqual(line.split()[4], "0", line)
            st, body = post_json(h.port, {"event": "core"}, headers=nf())
            self.assertEqual(st, 200, body)
            self.assertEqual(h.read("out/core").strip(), "4096")

    def test_without_the_capabilities_hookd_refuses_to_start(self):
        """Started as an unprivileged user without CAP_SETUID, CAP_SETGID
        and CAP_KILL, a hook_user cannot be honoured: hookd says how to
        grant them and exits, rather than run hooks as itself."""
        daemon = pwd.getpwnam(DAEMON_USER)
        with self.daemon(config().replace("user = %s\n" % DAEMON_USER, ""), start=False) as h:
            os.makedirs(h.state, mode=0o700)
            os.chown(h.state, daemon.pw_uid, daemon.pw_gid)
            os.chmod(h.path("token"), 0o644)

            def as_daemon():
                os.setgroups([])
                os.setgid(daemon.pw_gid)
                os.setuid(daemon.pw_uid)
            env = dict(h.env)
            r = subprocess.run([HOOKD_BIN, "-c", h.config_path, "serve"], env=env,
                               preexec_fn=as_daemon, capture_output=True, text=True, timeout=15)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("hook_user needs CAP_SETUID, CAP_SETGID and CAP_KILL", r.stderr)
            self.assertIn("AmbientCapabilities=", r.stderr)

    def test_check_and_run(self):
        """`hookd check` names the hook user (and refuses an unknown one);
        `hookd run` as root runs the hook as hook_user as well."""
        nobody = pwd.getpwnam(HOOK_USER)
        with self.daemon(start=False) as h:
            r = subprocess.run([HOOKD_BIN, "-c", h.config_path, "check"], env=h.env,
                               capture_output=True, text=True, timeout=15)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("hook_user %s uid=%d gid=%d" % (HOOK_USER, nobody.pw_uid,
                                                          nobody.pw_gid), r.stdout)
            payload = h.write_file("payload.json", json.dumps({"event": "probe"}))
            r = subprocess.run([HOOKD_BIN, "-c", h.config_path, "run", "probe", payload],
                               env=h.env, capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = json.loads([x for x in r.stderr.splitlines() if x.startswith("{")][0])
            self.assertEqual(got["self"]["Uid"], [str(nobody.pw_uid)] * 4)
            for way in ("ppid_environ", "secret_file", "ptrace"):
                self.assertTrue(got[way].startswith("refused"), "%s: %s" % (way, got[way]))
            h.write_config(config().replace("hook_user = %s" % HOOK_USER,
                                            "hook_user = no-such-user-hookd"))
            for cmd in (["check"], ["run", "probe", payload]):
                r = subprocess.run([HOOKD_BIN, "-c", h.config_path] + cmd, env=h.env,
                                   capture_output=True, text=True, timeout=15)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("unknown hook_user 'no-such-user-hookd'", r.stderr)


if __name__ == "__main__":
    unittest.main()
