"""A private PostgreSQL server for hookd's tests (Python 3 stdlib only): the
journal tests run against it with HOOKD_TEST_JOURNAL=postgresql, and the C
unit test of the PostgreSQL journal gets a scratch database from it.

It uses Debian's packages (`sh scripts/deps.sh --test` installs them): the
newest /usr/lib/postgresql/VERSION/bin. One cluster is a temp dir DIR:

  DIR/server.json   where it listens (port, socket dir, bin dir, OS user)
  DIR/password      role hookd's password, mode 0600, the test's user's
  DIR/pg/data       the cluster (`initdb`), DIR/pg/sock its unix socket,
  DIR/pg/server.log its log

The server runs as an unprivileged user: `nobody` when the tests run as root
(DIR/pg is chowned to it, DIR is 0711 so that it can get through), else the
current user. The superuser is the role `hookd`. Authentication:

  local all all trust                      the unix socket: psql here, and
                                           the C unit test's HOOKD_TEST_PG
  host  all all 127.0.0.1/32 scram-sha-256 TCP: always with the password

There is deliberately no second role with password-less TCP: a test that
wants no password uses the unix socket (url_with_socket), so every TCP login
checks a real password, and a hookd that ignored journal_password_file would
fail. The password (random, set with ALTER ROLE at the first start) is never
in a URL: hookd reads it from password_file(). It listens on 127.0.0.1, on a
free ephemeral port chosen when the cluster is made (kept across restarts,
so that URLs stay valid). fsync stays on: durability is what the tests test.

API:
  cluster()       the shared server of this process (made once): the one
                  tests/run.sh started when HOOKD_TEST_PG_DIR names it, else
                  a new one, removed at exit. Shared with other tests, it
                  refuses stop/start/restart/kill.
  new_cluster()   a private server, removed at exit: for a test that stops,
                  restarts or kills PostgreSQL under a running hookd.
  PgServer methods: create_database() -> TCP URL of a new, empty database;
  drop_database(db); url(db), url_with_socket(db); password_file(),
  password(); psql(db, sql) -> [tuple of str or None]; stop(), start(),
  restart(), kill() (pg_ctl -m immediate: no shutdown checkpoint); pids();
  destroy() (stop, remove DIR). A db is a name or a URL of this server.

CLI (tests/run.sh): `pgserver.py start DIR` (DIR empty or missing),
`pgserver.py env DIR` (prints `export` lines: HOOKD_TEST_PG_DIR, and a new
scratch database as HOOKD_TEST_PG (socket, trust), HOOKD_TEST_PG_TCP and
HOOKD_TEST_PG_PASSWORD_FILE), `pgserver.py stop DIR` (stops it and removes
DIR), `pgserver.py run CMD...` (CMD with those variables, on the cluster of
HOOKD_TEST_PG_DIR or on a private one).

Every wait is bounded (WAIT seconds); a missing PostgreSQL is an error that
says how to install it, never a skip.
"""

import atexit
import glob
import itertools
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

WAIT = 60          # seconds any one pg_ctl, initdb or psql may take
PORT_TRIES = 5     # the free port can be taken between probe and bind
SUPERUSER = "hookd"
INSTALL_HINT = ("PostgreSQL is not installed: `sh scripts/deps.sh --test` installs it "
                "(Debian's postgresql; tests/run.sh does this)")


class PgError(RuntimeError):
    pass


def find_bin_dir():
    """The newest /usr/lib/postgresql/*/bin with initdb, pg_ctl and psql."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        version = os.path.basename(os.path.dirname(d))
        if not re.fullmatch(r"\d+(\.\d+)?", version):
            continue
        if all(os.access(os.path.join(d, p), os.X_OK) for p in ("initdb", "pg_ctl", "psql")):
            found.append((tuple(int(x) for x in version.split(".")), d))
    if not found:
        raise PgError(INSTALL_HINT)
    return max(found)[1]


def clean_env():
    """The environment without libpq's variables, which would change what
    psql connects to (and could hide a missing password)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LANG", "C.UTF-8")
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    """Whether pid is a process and not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def db_name(db):
    """The database name of a name or of a URL of this module."""
    if "://" not in db:
        return db
    return urllib.parse.unquote(urllib.parse.urlsplit(db).path.lstrip("/"))


_names = itertools.count(1)


class PgServer:
    """One cluster in DIR (see the module's docstring). Made by make() or
    attach(); shared True forbids stopping it."""

    def __init__(self, top, info, owned, shared):
        self.top = top
        self.bin_dir = info["bin_dir"]
        self.port = info["port"]
        self.sock_dir = info["sock_dir"]
        self.data = info["data"]
        self.log = info["log"]
        self.run_as = info["run_as"]  # OS user name, or None: this process's
        self.owned = owned            # removed at exit by this process
        self.shared = shared

    # ---- making and finding

    @classmethod
    def make(cls, top=None, shared=False):
        """initdb in top (new temp dir if None) and start; removed at exit
        when top was None."""
        bin_dir = find_bin_dir()
        owned = top is None
        top = tempfile.mkdtemp(prefix="hookd-pg-") if top is None else os.path.abspath(top)
        os.makedirs(top, exist_ok=True)
        if os.listdir(top):
            raise PgError("%s is not empty" % top)
        run_as = "nobody" if os.geteuid() == 0 else None
        pgdir = os.path.join(top, "pg")
        info = {"bin_dir": bin_dir, "port": 0, "sock_dir": os.path.join(pgdir, "sock"),
                "data": os.path.join(pgdir, "data"), "log": os.path.join(pgdir, "server.log"),
                "run_as": run_as}
        server = cls(top, info, owned, shared)
        if owned:
            atexit.register(server.destroy)
        try:
            os.chmod(top, 0o711)
            os.makedirs(info["sock_dir"], mode=0o700)
            if run_as:
                pw = pwd.getpwnam(run_as)
                for d in (pgdir, info["sock_dir"]):
                    os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(pgdir, 0o700)
            server._initdb()
            server._first_start()
        except BaseException:
            server.destroy()
            raise
        return server

    @classmethod
    def attach(cls, top, shared=True):
        """The cluster in top, which must be running."""
        try:
            with open(os.path.join(top, "server.json")) as f:
                info = json.load(f)
        except OSError as e:
            raise PgError("%s holds no test cluster (%s)" % (top, e))
        server = cls(os.path.abspath(top), info, owned=False, shared=shared)
        if not server.running():
            raise PgError("the test cluster in %s is not running (see %s)" % (top, server.log))
        return server

    # ---- running the tools

    def _tool(self, name, *args, timeout=WAIT, check=True, as_server=True):
        """A PostgreSQL program, as the server's OS user when as_server."""
        kw = {}
        if as_server and self.run_as:
            pw = pwd.getpwnam(self.run_as)
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        try:
            p = subprocess.run([os.path.join(self.bin_dir, name)] + list(args),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=timeout,
                               env=clean_env(), cwd=self.top, **kw)
        except subprocess.TimeoutExpired:
            raise PgError("%s %s: no answer in %d s (log: %s)" %
                          (name, " ".join(args), timeout, self.log_tail()))
        if check and p.returncode != 0:
            raise PgError("%s %s failed (%d): %s%s\nlog: %s" %
                          (name, " ".join(args), p.returncode, p.stdout, p.stderr,
                           self.log_tail()))
        return p

    def log_tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def _initdb(self):
        self._tool("initdb", "-D", self.data, "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
                   "--auth-local=trust", "--auth-host=scram-sha-256")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# hookd's tests (tests/blackbox/pgserver.py)\n"
                    "local all all trust\n"
                    "host  all all 127.0.0.1/32 scram-sha-256\n")

    def _write_port(self, port):
        """The settings of this cluster, last in postgresql.conf (later lines win)."""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# hookd's tests (tests/blackbox/pgserver.py)\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "fsync = on\n"
                    "max_connections = 200\n" % (port, self.sock_dir))
        self.port = port

    def _first_start(self):
        """Starts on a free port (another, a few times, when it was taken
        meanwhile), sets the password, writes server.json."""
        conf = os.path.join(self.data, "postgresql.conf")
        with open(conf) as f:
            original = f.read()
        for attempt in range(PORT_TRIES):
            with open(conf, "w") as f:
                f.write(original)
            self._write_port(free_port())
            try:
                self._pg_ctl_start()
                break
            except PgError:
                if attempt + 1 == PORT_TRIES or "could not bind" not in self.log_tail(50):
                    raise
        password = secrets.token_urlsafe(24)
        fd = os.open(os.path.join(self.top, "password"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)  # no newline: the file is exactly the password
        self.psql("postgres", "ALTER ROLE %s PASSWORD '%s'" % (SUPERUSER, password))
        info = {"bin_dir": self.bin_dir, "port": self.port, "sock_dir": self.sock_dir,
                "data": self.data, "log": self.log, "run_as": self.run_as}
        with open(os.path.join(self.top, "server.json"), "w") as f:
            json.dump(info, f, indent=1)

    def _pg_ctl_start(self):
        self._tool("pg_ctl", "start", "-w", "-t", str(WAIT), "-D", self.data, "-l", self.log,
                   timeout=WAIT + 10)

    # ---- state

    def running(self):
        return self._tool("pg_ctl", "status", "-D", self.data, check=False).returncode == 0

    def pids(self):
        """The postmaster's pid and its children's (none when stopped)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and (int(d) == master or int(fields[1]) == master):
                found.append(int(d))
        return found

    def _refuse_if_shared(self, what):
        if self.shared:
            raise PgError("%s: this PostgreSQL is shared by the whole test run; a test "
                          "that stops it uses pgserver.new_cluster()" % what)

    # ---- stopping and starting

    def stop(self):
        """A clean shutdown (pg_ctl -m fast); the data stays."""
        self._refuse_if_shared("stop")
        self._stop("fast")

    def kill(self):
        """An immediate stop (pg_ctl -m immediate): no shutdown checkpoint,
        the next start runs crash recovery."""
        self._refuse_if_shared("kill")
        self._stop("immediate")

    def start(self):
        self._refuse_if_shared("start")
        if not self.running():
            self._pg_ctl_start()

    def restart(self):
        self.stop()
        self.start()

    def _stop(self, mode):
        if not os.path.isdir(self.data) or not self.running():
            return
        p = self._tool("pg_ctl", "stop", "-w", "-t", str(WAIT), "-m", mode, "-D", self.data,
                       timeout=WAIT + 10, check=False)
        if p.returncode != 0 and self.running():
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + WAIT
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            raise PgError("pg_ctl stop -m %s failed (%d): %s; killed it" %
                          (mode, p.returncode, p.stderr))

    def destroy(self):
        """Stops the server (not gently), waits until none of its processes
        is left, and removes DIR."""
        pids = self.pids()
        try:
            self._stop("immediate")
        finally:
            deadline = time.monotonic() + WAIT
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.02)
            shutil.rmtree(self.top, ignore_errors=True)

    # ---- databases and queries

    def password_file(self):
        return os.path.join(self.top, "password")

    def password(self):
        with open(self.password_file()) as f:
            return f.read()

    def url(self, db):
        """libpq URL over TCP, without the password."""
        return "postgresql://%s@127.0.0.1:%d/%s" % (SUPERUSER, self.port,
                                                   urllib.parse.quote(db_name(db)))

    def url_with_socket(self, db):
        """libpq URL over the unix socket (trust: no password)."""
        return "postgresql:///%s?%s" % (urllib.parse.quote(db_name(db)), urllib.parse.urlencode(
            {"host": self.sock_dir, "port": self.port, "user": SUPERUSER}))

    def create_database(self):
        """A new empty database; returns its TCP URL (url())."""
        name = "hookd_t%d_%d_%s" % (os.getpid(), next(_names), secrets.token_hex(3))
        self.psql("postgres", "CREATE DATABASE %s" % name)
        return self.url(name)

    def drop_database(self, db):
        self.psql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db_name(db))

    def psql(self, db, sql, timeout=WAIT):
        """Runs sql in db over the socket; the rows of its last statement as
        tuples of str (None for NULL). A failing statement raises."""
        nul, fs, rs = "\x02NULL\x03", "\x1f", "\x1e"
        p = self._tool("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                       "-F", fs, "-R", rs, "-P", "null=" + nul,
                       "-h", self.sock_dir, "-p", str(self.port), "-U", SUPERUSER,
                       "-d", db_name(db), "-c", sql, timeout=timeout, as_server=False)
        out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
        return [tuple(None if v == nul else v for v in rec.split(fs))
                for rec in out.split(rs) if rec != ""]


_shared = None


def cluster():
    """The shared server of this process (see the module's docstring)."""
    global _shared
    if _shared is None:
        top = os.environ.get("HOOKD_TEST_PG_DIR")
        if top:
            _shared = PgServer.attach(top)
        else:
            _shared = PgServer.make(shared=True)
            _exit_on_sigterm()
    return _shared


def new_cluster():
    """A private server, removed at exit."""
    server = PgServer.make()
    _exit_on_sigterm()
    return server


def _exit_on_sigterm():
    """A test killed by meson's timeout (SIGTERM) still runs atexit, which
    stops its servers (pg_ctl puts them in a session of their own)."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))


def env_of(server):
    """The variables the tests read, with a new scratch database."""
    db = server.create_database()
    return {"HOOKD_TEST_PG_DIR": server.top, "HOOKD_TEST_PG": server.url_with_socket(db),
            "HOOKD_TEST_PG_TCP": db, "HOOKD_TEST_PG_PASSWORD_FILE": server.password_file()}


def main(argv):
    usage = "usage: pgserver.py start DIR | env DIR | stop DIR | run CMD [ARG...]"
    try:
        if len(argv) == 2 and argv[0] == "start":
            PgServer.make(argv[1])
        elif len(argv) == 2 and argv[0] == "env":
            for k, v in env_of(PgServer.attach(argv[1])).items():
                print("export %s=%s" % (k, shlex.quote(v)))
        elif len(argv) == 2 and argv[0] == "stop":
            if os.path.exists(os.path.join(argv[1], "server.json")):
                PgServer(argv[1], json.load(open(os.path.join(argv[1], "server.json"))),
                         owned=False, shared=False).destroy()
            else:
                shutil.rmtree(argv[1], ignore_errors=True)
        elif len(argv) >= 2 and argv[0] == "run":
            env = dict(os.environ, **env_of(cluster()))
            return subprocess.run(argv[1:], env=env).returncode
        else:
            print(usage, file=sys.stderr)
            return 2
    except PgError as e:
        print("pgserver.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
