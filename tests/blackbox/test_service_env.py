"""A service's environment (issue 17, point 2): a hook gets HOME, USER,
LOGNAME and SHELL of the user it runs as, from the password database
(pass_env may hand it the daemon's own instead), and runs in `workdir`
([server], [endpoint], [event]), by default the directory that holds it.
A workdir that is not there: `hookd check` exits 2, the daemon logs it,
and a hook that would run there fails with "cannot chdir to workdir ...".

The hook_user cases need root (hookd drops to `daemon`, hooks run as
`nobody` or a throw-away user made with useradd); skipped otherwise.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_service_env.py [-k NAME]
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NF_TOKEN, SAMPLE_PATH, Hookd, parse_env, run_cli, sh  # noqa: E402

IS_ROOT = os.geteuid() == 0
SKIP_WHY = "hook_user needs root to start hookd (tests run as uid %d)" % os.geteuid()
DAEMON_USER = "daemon"   # what hookd drops to, as the package's `hookd`
HOOK_USER = "nobody"     # what hooks run as, as the package's `hookd-hooks`

IDENTITY = ("HOME", "USER", "LOGNAME", "SHELL")

# Records its environment and working directory where any uid may write.
WHO = sh("env > '{tmp}/out/env.txt'\npwd -P > '{tmp}/out/cwd.txt'\n"
         "echo ran >> '{tmp}/out/ran'")


def config(server="", endpoint="", extra=""):
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\ntimeout = 10s\n"
            "kill_grace = 1s\ninclude_output = yes\n" + server +
            "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = %s\n" % NF_TOKEN + endpoint + extra)


def entry(pw):
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
            "SHELL": pw.pw_shell or "/bin/sh"}


class Base(harness.HookdTestCase):

    def daemon(self, cfg, hooks=None, dirs=(), start=True, **kw):
        """Hookd with {tmp}/out writable by anyone and the dirs made."""
        h = Hookd(cfg, hooks if hooks is not None else {"build:start": WHO},
                  secrets=[NF_TOKEN], start=False, **kw)
        try:
            os.makedirs(h.path("out"))
            os.chmod(h.path("out"), 0o1777)
            for d in dirs:
                os.makedirs(h.path(d))
                os.chmod(h.path(d), 0o755)
            if start:
                h.start()
        except BaseException:
            h.cleanup()
            raise
        return h

    def deliver(self, h, event="build:start", path="/webhook", status=200):
        return self.assertAnswer(h.northflank(event=event, path=path), status)

    def seen(self, h):
        """What the last hook recorded: the four variables and its cwd."""
        env = h.env_of("out/env.txt")
        self.assertIsNotNone(env, "the hook did not run")
        cwd = h.read("out/cwd.txt").strip()
        os.unlink(h.path("out/env.txt"))
        os.unlink(h.path("out/cwd.txt"))
        return {k: env.get(k) for k in IDENTITY}, cwd

    def ran(self, h):
        return (h.read("out/ran") or "").split()


class TestIdentity(Base):

    def test_hookd_own_user(self):
        """Without hook_user: hookd's own entry, not the HOME hookd was
        started with; the cwd is the hooks dir."""
        me = pwd.getpwuid(os.geteuid())
        with self.daemon(config()) as h:
            self.assertNotEqual(h.env["HOME"], me.pw_dir)
            self.deliver(h)
            who, cwd = self.seen(h)
            self.assertEqual(who, entry(me))
            self.assertEqual(cwd, os.path.realpath(h.hooks))

    def test_pass_env_wins(self):
        """pass_env naming HOME hands the daemon's value; USER stays the
        entry's; a pass_env name the daemon lacks leaves the entry's value."""
        me = pwd.getpwuid(os.geteuid())
        with self.daemon(config("pass_env = PATH HOME LOGNAME\n"),
                         base_env=harness.plain_env, env={"HOME": "/from/the/daemon"}) as h:
            self.deliver(h)
            who, _ = self.seen(h)
            self.assertEqual(who["HOME"], "/from/the/daemon")
            self.assertEqual(who["USER"], me.pw_name)
            self.assertEqual(who["LOGNAME"], me.pw_name, "not in hookd's env: the entry's")

    def test_reload_keeps_them(self):
        me = pwd.getpwuid(os.geteuid())
        with self.daemon(config()) as h:
            h.reload()
            self.deliver(h)
            self.assertEqual(self.seen(h)[0], entry(me))

    def test_git_config_global(self):
        """git finds HOME: `git config --global` works in a hook (HOME
        handed by pass_env here; as a hook_user of its own below)."""
        if not shutil.which("git"):
            self.skipTest("git is not installed")
        hook = sh("git config --global user.name hookd-test\n"
                  "git config --global user.name > '{tmp}/out/git.txt'")
        home = tempfile.mkdtemp(prefix="hookd-home-")
        try:
            with self.daemon(config("pass_env = PATH HOME\n"), hooks={"build:start": hook},
                             env={"HOME": home}) as h:
                b = self.deliver(h)
                self.assertEqual(b["hooks"][0]["exit"], 0, b)
                self.assertEqual(h.read("out/git.txt").strip(), "hookd-test")
            with open(os.path.join(home, ".gitconfig")) as f:
                self.assertIn("hookd-test", f.read())
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def test_env_and_run(self):
        """`hookd env` lists the four; `hookd run` runs the hook with them,
        in its workdir."""
        me = pwd.getpwuid(os.geteuid())
        with self.daemon(config("workdir = {tmp}/work\n"), dirs=("work",), start=False) as h:
            p = run_cli(["env", "build:start", SAMPLE_PATH], config=h.config_path)
            self.assertEqual(p.returncode, 0, p.stderr)
            env = parse_env(p.stdout.decode())
            self.assertEqual({k: env.get(k) for k in IDENTITY}, entry(me))
            p = run_cli(["run", "build:start", SAMPLE_PATH], config=h.config_path)
            self.assertEqual(p.returncode, 0, p.stderr)
            who, cwd = self.seen(h)
            self.assertEqual(who, entry(me))
            self.assertEqual(cwd, os.path.realpath(h.path("work")))


class TestWorkdir(Base):

    def test_each_level(self):
        """[event] over [endpoint] over [server]; an [event] workdir left
        empty is the hook's own directory again."""
        extra = ("\n[endpoint other]\npath = /other\nscheme = northflank\nsecret = %s\n"
                 "\n[event deploy]\nworkdir = {tmp}/ev\n"
                 "\n[event plain]\nworkdir =\n" % NF_TOKEN)
        hooks = {"build:start": WHO, "deploy": WHO, "plain": WHO}
        with self.daemon(config("workdir = {tmp}/srv\n", "workdir = ep\n", extra), hooks=hooks,
                         dirs=("srv", "ep", "ev")) as h:
            real = os.path.realpath
            self.deliver(h)
            self.assertEqual(self.seen(h)[1], real(h.path("ep")), "relative: to the config")
            self.deliver(h, path="/other")
            self.assertEqual(self.seen(h)[1], real(h.path("srv")))
            self.deliver(h, event="deploy")
            self.assertEqual(self.seen(h)[1], real(h.path("ev")))
            self.deliver(h, event="plain")
            self.assertEqual(self.seen(h)[1], real(h.hooks))
            r = h.cli("check")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("workdir %s" % h.path("ep"), r.stdout)
            self.assertIn("workdir %s" % h.path("srv"), r.stdout)

    def test_directory_route_default(self):
        """Unset: a directory route's hooks run in that directory, as before."""
        with self.daemon(config(), hooks={"build:start/10-who": WHO}) as h:
            self.deliver(h)
            self.assertEqual(self.seen(h)[1], os.path.realpath(h.path("hooks.d/build:start")))

    def test_missing_workdir(self):
        """check exits 2 naming it; the daemon starts, logs it, and each
        delivery that would run there fails (500) with a clear error and
        runs nothing; once the directory is made, hooks run."""
        cfg = config(extra="\n[event build]\nworkdir = {tmp}/gone\n")
        with self.daemon(cfg, log_file=True) as h:
            r = h.cli("check")
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("error: [event build] workdir %s: No such file or directory"
                          % h.path("gone"), r.stdout)
            self.assertIsNotNone(h.wait_log("level=error", "workdir", h.path("gone")),
                                 h.log_text())
            b = self.deliver(h, status=500)
            err = b["hooks"][0].get("error", "")
            self.assertEqual(err, "cannot chdir to workdir %s: No such file or directory"
                             % h.path("gone"))
            self.assertIsNone(b["hooks"][0]["exit"])
            self.assertEqual(self.ran(h), [], "nothing ran")
            self.deliver(h, event="other:thing", status=200)  # no route, no workdir
            os.makedirs(h.path("gone"))
            self.deliver(h)
            self.assertEqual(self.seen(h)[1], os.path.realpath(h.path("gone")))

    def test_workdir_not_a_directory(self):
        with self.daemon(config("workdir = {tmp}/file\n"), start=False,
                         files={"file": "x"}) as h:
            r = h.cli("check")
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("error: [server] workdir %s: not a directory" % h.path("file"),
                          r.stdout)
            h.start()
            b = self.deliver(h, status=500)
            self.assertEqual(b["hooks"][0]["error"],
                             "cannot chdir to workdir %s: Not a directory" % h.path("file"))
            self.assertEqual(self.ran(h), [])


@unittest.skipUnless(IS_ROOT, SKIP_WHY)
class TestHookUser(Base):

    def config(self, hook_user=HOOK_USER, server=""):
        return config("user = %s\n" % DAEMON_USER
                      + ("hook_user = %s\n" % hook_user if hook_user else "") + server)

    def test_hook_user_entry(self):
        """As hook_user: that user's entry; without: hookd's after its drop."""
        with self.daemon(self.config(), world_readable=True) as h:
            self.deliver(h)
            self.assertEqual(self.seen(h)[0], entry(pwd.getpwnam(HOOK_USER)))
            p = run_cli(["env", "build:start", SAMPLE_PATH], config=h.config_path)
            env = parse_env(p.stdout.decode())
            self.assertEqual({k: env.get(k) for k in IDENTITY}, entry(pwd.getpwnam(HOOK_USER)))
        with self.daemon(self.config(None), world_readable=True) as h:
            self.deliver(h)
            self.assertEqual(self.seen(h)[0], entry(pwd.getpwnam(DAEMON_USER)))
            p = run_cli(["env", "build:start", SAMPLE_PATH], config=h.config_path)
            env = parse_env(p.stdout.decode())
            self.assertEqual({k: env.get(k) for k in IDENTITY},
                             entry(pwd.getpwnam(DAEMON_USER)), "env as root: after the drop")

    def test_uid_without_entry(self):
        """hookd run as a uid the password database does not know: hooks
        get none of the four (not the daemon's own HOME), and hookd says so."""
        if not shutil.which("setpriv"):
            self.skipTest("needs setpriv")
        uid = 54321
        while True:
            try:
                pwd.getpwuid(uid)
                uid += 1
            except KeyError:
                break
        wrap = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
        with self.daemon(config(), world_readable=True, wrap=wrap, log_file=True) as h:
            self.deliver(h)
            self.assertEqual(self.seen(h)[0], dict.fromkeys(IDENTITY))
            self.assertIsNotNone(h.wait_log("level=warn", "hooks get no HOME", "uid=%d" % uid),
                                 h.log_text())

    def test_workdir_entered_as_hook_user(self):
        """A workdir hookd may enter but the hook's user may not: the hook
        fails there, as that user, rather than start in it."""
        with self.daemon(self.config(server="workdir = {tmp}/closed\n"), dirs=("closed",),
                         world_readable=True) as h:
            os.chmod(h.path("closed"), 0o700)
            shutil.chown(h.path("closed"), DAEMON_USER)
            b = self.deliver(h, status=500)
            self.assertEqual(b["hooks"][0]["error"],
                             "cannot chdir to workdir %s: Permission denied" % h.path("closed"))
            self.assertEqual(self.ran(h), [])

    def test_git_config_global_as_own_user(self):
        """A hook user of its own with a writable home, as the package
        makes: HOME from its entry, and `git config --global` works."""
        if not shutil.which("git") or not shutil.which("useradd"):
            self.skipTest("needs git and useradd")
        name = "hkdt%d" % (os.getpid() % 100000)
        h = self.daemon(self.config(name), start=False, world_readable=True,
                        dirs=("home",))
        with h:
            home = h.path("home")
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", home,
                            "--shell", "/usr/sbin/nologin", "--user-group", name], check=True)
            try:
                shutil.chown(home, name, name)
                os.chmod(home, 0o700)
                hook = sh("cd && git config --global user.name hookd-test\n"
                          "git config --global user.name > '{tmp}/out/git.txt'")
                h.write_hook("build:start", hook)
                h.start()
                b = self.deliver(h)
                self.assertEqual(b["hooks"][0]["exit"], 0, b)
                self.assertEqual(h.read("out/git.txt").strip(), "hookd-test")
                self.assertEqual(pwd.getpwnam(name).pw_uid, os.stat(home + "/.gitconfig").st_uid)
            finally:
                h.stop(check=False)
                subprocess.run(["userdel", name], check=False)


if __name__ == "__main__":
    harness.main()
