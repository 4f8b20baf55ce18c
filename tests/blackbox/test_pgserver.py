"""The tests' own PostgreSQL (pgserver.py): it starts, makes databases, takes
a password login over TCP and refuses a wrong one, keeps its data across a
restart and an immediate stop, and leaves no process and no temp dir behind.
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgserver  # noqa: E402


def tcp_login(server, url, password):
    """psql over TCP with that password (and no other way to find one):
    (exit status, output)."""
    env = dict(pgserver.clean_env(), PGPASSWORD=password, PGPASSFILE=os.devnull,
               PGCONNECT_TIMEOUT="10")
    p = subprocess.run([os.path.join(server.bin_dir, "psql"), "-X", "-tA", "-c",
                        "SELECT current_user || ' ' || current_database()", url],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


class PgServerTest(unittest.TestCase):

    def test_lifecycle(self):
        server = pgserver.new_cluster()
        top, pids = server.top, server.pids()
        self.assertTrue(pids, "no postgres process")
        # The server runs unprivileged.
        if os.geteuid() == 0:
            with open("/proc/%d/status" % pids[0]) as f:
                uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
            self.assertNotEqual(uid, "0", "postgres runs as root")

        a, b = server.create_database(), server.create_database()
        self.assertNotEqual(a, b)
        names = {r[0] for r in server.psql("postgres", "SELECT datname FROM pg_database")}
        self.assertLessEqual({pgserver.db_name(a), pgserver.db_name(b)}, names)
        self.assertRegex(a, r"^postgresql://hookd@127\.0\.0\.1:%d/hookd_t\w+$" % server.port)

        # The password: in its own 0600 file, in no URL; TCP needs it.
        self.assertEqual(os.stat(server.password_file()).st_mode & 0o777, 0o600)
        password = server.password()
        self.assertGreaterEqual(len(password), 20)
        self.assertNotIn(password, a + server.url_with_socket(a))
        self.assertEqual(tcp_login(server, a, password), (0, "hookd " + pgserver.db_name(a)))
        rc, out = tcp_login(server, b, password + "x")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("password authentication failed", out)
        rc, out = tcp_login(server, b, "")
        self.assertNotEqual(rc, 0, out)

        # Data survives a restart and an immediate stop (crash recovery).
        server.psql(a, "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
        server.restart()
        self.assertNotEqual(server.pids(), pids, "the same postmaster after a restart")
        self.assertEqual(server.psql(a, "SELECT n FROM t ORDER BY n"), [("1",), ("2",)])
        server.psql(a, "INSERT INTO t VALUES (3)")
        server.kill()
        self.assertEqual(server.pids(), [])
        server.start()
        self.assertEqual(server.psql(a, "SELECT count(*), max(n) FROM t"), [("3", "3")])
        self.assertEqual(tcp_login(server, a, password)[0], 0, "the port changed")

        server.psql(a, "SELECT NULL, 'x'")  # the NULL marker
        self.assertEqual(server.psql(a, "SELECT NULL, 'x'"), [(None, "x")])
        server.drop_database(b)
        self.assertNotIn((pgserver.db_name(b),),
                         server.psql("postgres", "SELECT datname FROM pg_database"))

        live = server.pids()
        server.destroy()
        self.assertFalse(os.path.exists(top), "the temp dir is left")
        self.assertTrue(live)
        self.assertEqual([p for p in live if pgserver.alive(p)], [], "postgres processes left")

    def test_shared_cluster_cannot_be_stopped(self):
        server = pgserver.cluster()
        self.assertIs(server, pgserver.cluster())
        if os.environ.get("HOOKD_TEST_PG_DIR"):  # tests/run.sh's, through meson
            self.assertEqual(server.top, os.path.abspath(os.environ["HOOKD_TEST_PG_DIR"]))
        for stop in (server.stop, server.start, server.restart, server.kill):
            with self.assertRaisesRegex(pgserver.PgError, "new_cluster"):
                stop()
        self.assertTrue(server.running())

    def test_cli_as_run_sh_uses_it(self):
        top = tempfile.mkdtemp(prefix="hookd-pgcli-")
        script = pgserver.__file__
        try:
            subprocess.run([sys.executable, script, "start", top], check=True, timeout=120)
            out = subprocess.run([sys.executable, script, "env", top], check=True,
                                 stdout=subprocess.PIPE, text=True, timeout=60).stdout
            env = dict(line.split(" ", 1)[1].split("=", 1) for line in out.splitlines())
            self.assertEqual(set(env), {"HOOKD_TEST_PG_DIR", "HOOKD_TEST_PG",
                                        "HOOKD_TEST_PG_TCP", "HOOKD_TEST_PG_PASSWORD_FILE"})
            server = pgserver.PgServer.attach(top)
            self.assertEqual(server.psql(env["HOOKD_TEST_PG_TCP"], "SELECT 1"), [("1",)])
        finally:
            subprocess.run([sys.executable, script, "stop", top], timeout=120)
        self.assertFalse(os.path.exists(top))
        with self.assertRaises(pgserver.PgError):
            pgserver.PgServer.attach(top)


if __name__ == "__main__":
    unittest.main(verbosity=2)
