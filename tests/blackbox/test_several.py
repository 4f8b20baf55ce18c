#!/usr/bin/env python3
"""Several hookd instances on one PostgreSQL journal (README "Running on
several machines"), black-box: real daemons on 127.0.0.1:0, real hooks, and
a private PostgreSQL of this file's own (pgserver.new_cluster()), which the
tests stop and restart; each test gets a new database of it.

The hooks are bash scripts that append `start ID ATTEMPT INSTANCE TIME`
and `end ID ATTEMPT INSTANCE TIME` lines to one run log shared by the
instances, each line one O_APPEND write, so that the test can tell which
instance ran what, when, and whether a run was cut. A delivery's payload
says how long its hook sleeps (`sleep`, and `sleep1` for its first
attempt only), its first attempt's exit status (`exit1`, else 0) and its
serialization key (`k`).

test_two_instances is issue 19's two-instance run (2,000 deliveries by
default; HOOKD_SEVERAL_N changes it); the others each show one guarantee.
"""

import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness as H
import pgserver

LEASE_S = 3
N_DELIVERIES = int(os.environ.get("HOOKD_SEVERAL_N") or 2000)
HTTP_TIMEOUT = 30.0
# HOOKD_SEVERAL_PG_RESTART=0 leaves PostgreSQL's restart out of the
# two-instance run (to look at the rest of it alone).
PG_RESTART = os.environ.get("HOOKD_SEVERAL_PG_RESTART", "1") != "0"

_pg = None


def pg():
    """This file's private PostgreSQL, made at the first use."""
    global _pg
    if _pg is None:
        _pg = pgserver.new_cluster()
    return _pg


HOOK = r"""#!/bin/bash
# One run: a start line and an end line, each one write to the shared log.
s=${HOOK_SLEEP:-0}
if [ "$HOOK_ATTEMPT" = 1 ] && [ -n "$HOOK_SLEEP1" ]; then s=$HOOK_SLEEP1; fi
printf 'start %s %s @INST@ %s\n' "$HOOK_ID" "$HOOK_ATTEMPT" "$EPOCHREALTIME" >> '@LOG@'
if [ "$s" != 0 ]; then sleep "$s"; fi
printf 'end %s %s @INST@ %s\n' "$HOOK_ID" "$HOOK_ATTEMPT" "$EPOCHREALTIME" >> '@LOG@'
if [ "$HOOK_ATTEMPT" = 1 ] && [ -n "$HOOK_EXIT1" ]; then exit "$HOOK_EXIT1"; fi
"""


def config(url, instance, lease=LEASE_S, server="", endpoint="", admin="", extra=""):
    """Two endpoints on one journal: /job (async, retries, serialize = k)
    and /sync (sync, serialize = k); both with a fixed event `job`, the
    delivery id from X-Id, and no credential (scheme = none); extra: more
    sections."""
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\nstate_dir = {state}\n"
            "timeout = 60s\nkill_grace = 1s\n"
            "journal = %s\njournal_password_file = %s\ninstance = %s\nlease = %ds\n%s"
            "\n[endpoint jobs]\npath = /job\nscheme = none\nevent = job\nid_header = X-Id\n"
            "mode = async\nretries = 5\nretry_backoff = 1s\nserialize = k\n%s"
            "\n[endpoint syncjobs]\npath = /sync\nscheme = none\nevent = job\nid_header = X-Id\n"
            "serialize = k\n%s"
            "\n[admin]\nlisten = 127.0.0.1:0\n%s"
            % (url, pg().password_file(), instance, lease,
               server if "max_running" in server else server + "max_running = 8\n",
               endpoint, extra, admin))


def post(port, path, did, key, sleep=0, sleep1=None, exit1=None, timeout=HTTP_TIMEOUT):
    """One delivery -> (status, headers dict, body dict or None)."""
    obj = {"k": key, "sleep": str(sleep)}
    if exit1 is not None:
        obj["exit1"] = str(exit1)
    if sleep1 is not None:
        obj["sleep1"] = str(sleep1)
    body = json.dumps(obj).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body, {"Content-Type": "application/json", "X-Id": did,
                                       "Content-Length": str(len(body))})
        r = c.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return r.status, hdrs, parsed


def read_runs(path):
    """The run log: [(kind, id, attempt, instance, time)]."""
    out = []
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        w = line.split()
        if len(w) != 5 or w[0] not in ("start", "end"):
            raise AssertionError("a torn run-log line: %r" % line)
        out.append((w[0], w[1], int(w[2]), w[3], float(w[4].replace(",", "."))))
    return out


def runs_by_delivery(path):
    """{id: [run]}, each run a dict attempt, instance, start, end (None: cut)."""
    runs = {}
    open_runs = {}
    for kind, did, att, inst, t in read_runs(path):
        k = (did, att, inst)
        if kind == "start":
            if k in open_runs:
                raise AssertionError("run %r started twice" % (k,))
            r = {"id": did, "attempt": att, "instance": inst, "start": t, "end": None}
            open_runs[k] = r
            runs.setdefault(did, []).append(r)
        else:
            r = open_runs.pop(k, None)
            if r is None:
                raise AssertionError("an end without a start: %r" % (k,))
            r["end"] = t
    return runs


class SilentProxy:
    """A TCP proxy to PostgreSQL that can turn silent: go_silent() cuts the
    connections it carries and from then on accepts new ones and never
    answers (to a client, a host that drops packets: no RST, no reply);
    go_on() closes those and forwards again."""

    def __init__(self, target_port):
        self.target = target_port
        self.silent = False
        self.lock = threading.Lock()
        self.carried, self.held, self.socks = [], [], []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.socks.append(c)
                if self.silent:
                    self.held.append(c)
                    continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                u.settimeout(None)
            except OSError:
                c.shutdown(socket.SHUT_RDWR)
                continue
            with self.lock:
                self.socks.append(u)
                self.carried.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def held_count(self):
        with self.lock:
            return len(self.held)

    def go_silent(self):
        with self.lock:
            self.silent = True
            carried, self.carried = self.carried, []
        for pair in carried:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def go_on(self):
        with self.lock:
            self.silent = False
            held, self.held = self.held, []
        for s in held:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class Fleet:
    """A database on the private cluster, a shared run log, and the
    instances started on it (stopped and removed by close())."""

    def __init__(self):
        self.url = pg().create_database()
        self.dir = tempfile.mkdtemp(prefix="hookd-several-")
        self.runlog = os.path.join(self.dir, "runs.log")
        self.instances = []

    def hook(self, instance):
        return HOOK.replace("@INST@", instance).replace("@LOG@", self.runlog)

    def start(self, instance, url=None, **kw):
        cfg = config(url or self.url, instance,
                     **{k: v for k, v in kw.items()
                        if k in ("lease", "server", "endpoint", "admin", "extra")})
        h = H.Hookd(cfg, hooks={"job": self.hook(instance)}, log_file=True, wait_admin=True,
                    secrets=(pg().password(),), start=kw.get("start", True))
        self.instances.append(h)
        return h

    def query(self, sql):
        return pg().psql(self.url, sql)

    def state_of(self, did, endpoint="jobs"):
        rows = self.query("SELECT state FROM hookd_deliveries WHERE endpoint = '%s' AND "
                          "delivery_id = '%s'" % (endpoint, did))
        return int(rows[0][0]) if rows else None

    def wait_state(self, did, state=3, timeout=20.0, endpoint="jobs"):
        H.wait_for(lambda: self.state_of(did, endpoint) == state, timeout,
                   "%s in state %d (is %r)" % (did, state, self.state_of(did, endpoint)))

    def runs(self):
        return runs_by_delivery(self.runlog)

    def wait_db_up_for(self, seconds=12.5):
        """Waits until PostgreSQL has been up that long: before, no lease
        that ran out counts (a fresh or restarted cluster: journal_pg_take.c
        DB_UP_GRACE_MS), and nobody's deliveries are taken over."""
        up = float(self.query("SELECT extract(epoch FROM now() - pg_postmaster_start_time())")
                   [0][0])
        if up < seconds:
            time.sleep(seconds - up)

    def send_sync(self, answers, h, did, key=None, timeout=HTTP_TIMEOUT, **payload):
        """Sends a sync delivery (key: did's own unless given; payload:
        post()'s sleep, sleep1) to instance h on a thread of its own,
        started and returned: when it ends, answers[did] is (status, body),
        or (the error's repr, None) if the connection broke."""
        def run():
            try:
                answers[did] = post(h.port, "/sync", did, key or did, timeout=timeout,
                                    **payload)[:3:2]
            except (OSError, http.client.HTTPException) as e:
                answers[did] = (repr(e), None)
        t = threading.Thread(target=run)
        t.start()
        return t

    def wait_run(self, did, kind="start", timeout=10.0, instance=None):
        def seen():
            return any(k == kind and i == did and (instance is None or n == instance)
                       for k, i, _, n, _ in read_runs(self.runlog))
        H.wait_for(seen, timeout, "a %s line for %s" % (kind, did))

    def dump_logs(self):
        for h in self.instances:
            lines = [l for l in h.logs() if "msg=delivery " not in l and "level=debug" not in l]
            print("---- log of %s (deliveries' lines left out):\n%s"
                  % (h.config_path, "\n".join(lines[-60:])))

    def close(self, check=True):
        try:
            for h in self.instances:
                h.__exit__(None if check else AssertionError, None, None)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                pg().drop_database(self.url)
            except pgserver.PgError:
                pass


class SeveralTest(H.HookdTestCase):

    def setUp(self):
        self.t0 = time.monotonic()
        self.bad_before = self._bad()
        if not pg().running():  # a test that failed with PostgreSQL stopped
            pg().start()
        self.fleet = Fleet()

    def _bad(self):
        """Failures and errors so far (tearDown's own part starts as a success)."""
        r = self._outcome.result
        return len(r.failures) + len(r.errors)

    def tearDown(self):
        ok = self._bad() == self.bad_before
        if not pg().running():
            pg().start()
        if not ok:
            self.fleet.dump_logs()
        self.fleet.close(check=ok)
        print("  (%s: %.1f s)" % (self._testMethodName, time.monotonic() - self.t0))

    # ---- point 2: dedupe across instances

    def test_resend_to_the_other_instance(self):
        """A resend to B of a delivery that succeeded on A is a 200
        duplicate; of one still running on A, a 409; its hook ran once."""
        f = self.fleet
        a, b = f.start("a"), f.start("b")
        st, _, body = post(a.port, "/sync", "s-1", "x")
        self.assertEqual((st, body["status"]), (200, "ok"))
        st, _, body = post(b.port, "/sync", "s-1", "x")
        self.assertEqual((st, body["status"]), (200, "duplicate"), body)
        st, _, _ = post(a.port, "/job", "slow-1", "y", sleep=4)  # still running at the resend
        self.assertEqual(st, 202)
        f.wait_run("slow-1")
        st, hdrs, body = post(b.port, "/job", "slow-1", "y", sleep=4)
        self.assertEqual(st, 409, body)
        self.assertEqual(body["status"], "running")
        self.assertIn("retry-after", hdrs)
        f.wait_state("slow-1")
        st, _, body = post(b.port, "/job", "slow-1", "y")
        self.assertEqual((st, body["status"]), (200, "duplicate"))
        runs = f.runs()
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs["s-1"]], [("a", 1)])
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs["slow-1"]], [("a", 1)])

    # ---- point 4: serialize across instances

    def test_serialize_across_instances(self):
        """A slow keyed run on A: a later delivery with its key sent to B
        starts only after A's ended; one with another key runs at once."""
        f = self.fleet
        a, b = f.start("a"), f.start("b")
        # k-first runs 5 s: the two posts to B and the run of `other` fit
        # in it on a loaded machine.
        self.assertEqual(post(a.port, "/job", "k-first", "K", sleep=5)[0], 202)
        f.wait_run("k-first")
        self.assertEqual(post(b.port, "/job", "k-second", "K")[0], 202)
        self.assertEqual(post(b.port, "/job", "other", "L")[0], 202)
        f.wait_state("other", timeout=10)
        f.wait_state("k-second", timeout=20)
        runs = f.runs()
        first, second, other = runs["k-first"][0], runs["k-second"][0], runs["other"][0]
        self.assertEqual((first["instance"], second["instance"], other["instance"]),
                         ("a", "b", "b"))
        self.assertLess(other["end"], first["end"], "another key waited for K")
        self.assertGreaterEqual(second["start"], first["end"],
                                "the same key ran on two instances at once")
        # It asks again every 100 ms: it starts soon after.
        self.assertLess(second["start"] - first["end"], 1.5)

    # ---- point 3: one queue for all

    def test_free_slots_take_another_instances_queue(self):
        """A has one slot and a backlog, B is idle: B takes what waited on
        A for a slot (after a second), runs it once, and A does not."""
        f = self.fleet
        a = f.start("a", server="max_running = 1\n")
        b = f.start("b")
        ids = ["q-%d" % i for i in range(6)]
        for did in ids:  # distinct keys: nothing orders them
            self.assertEqual(post(a.port, "/job", did, did, sleep=1.5)[0], 202)
        for did in ids:
            f.wait_state(did, timeout=20)
        runs = f.runs()
        where = {did: [(r["instance"], r["attempt"]) for r in runs[did]] for did in ids}
        for did in ids:
            self.assertEqual(len(where[did]), 1, "%s ran once: %r" % (did, where))
            self.assertEqual(where[did][0][1], 1, "as its first attempt: %r" % where)
        on_b = [did for did in ids if where[did][0][0] == "b"]
        print("  ran on b: %s" % " ".join(on_b))
        self.assertGreaterEqual(len(on_b), 2, "B's free slots took A's queue: %r" % where)
        b.wait_line(r"taken to run here\" .* id=%s( |$)" % on_b[0], timeout=10)
        a.wait_line(r"another instance took it over; not run here\" .* id=%s( |$)" % on_b[0],
                    timeout=15)

    # ---- point 3: a killed instance's delivery is taken over

    def test_kill_mid_run_taken_over(self):
        """SIGKILL of A while its hook runs: after the lease B takes the
        delivery over as attempt 2, says so, and it succeeds."""
        f = self.fleet
        f.wait_db_up_for()
        a, b = f.start("a"), f.start("b")
        self.assertEqual(post(a.port, "/job", "cut-1", "z", sleep=0, sleep1=30)[0], 202)
        f.wait_run("cut-1", instance="a")
        killed = time.monotonic()
        a.kill9()
        a.kill_orphaned_hooks()
        a.expected_rc = -signal.SIGKILL
        line = b.wait_line(r"taken over here\" .* id=cut-1( |$)", timeout=LEASE_S + 5)
        f.wait_state("cut-1", timeout=LEASE_S + 8)
        took = time.monotonic() - killed
        print("  taken over and done %.1f s after the kill: %s" % (took, line))
        self.assertLess(took, LEASE_S + 5)
        runs = f.runs()["cut-1"]
        self.assertEqual([(r["instance"], r["attempt"], r["end"] is not None) for r in runs],
                         [("a", 1, False), ("b", 2, True)])
        rows = f.query("SELECT a.attempt, a.status, a.instance FROM hookd_attempts a JOIN "
                       "hookd_deliveries d ON d.id = a.delivery WHERE d.delivery_id = 'cut-1' "
                       "ORDER BY a.attempt")
        self.assertEqual([(r[0], r[2]) for r in rows], [("1", "a"), ("2", "b")], rows)
        self.assertEqual(rows[0][1], "interrupted", rows)

    # ---- group commit on PostgreSQL (issue 20)

    def test_kill9_under_load_loses_no_202(self):
        """The acceptances of a turn share one commit (journal_pg.c's
        batch), and a 202 leaves only after it: a row is there the moment
        its 202 is read, and a SIGKILL while 8 senders post loses none
        answered 202; after the restart every one of them ran and
        succeeded. Each commit of the database is made 20 ms slower
        (commit_delay), so that a 202 sent before its commit would be seen
        doing so."""
        f = self.fleet
        f.query("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET commit_delay = 20000',"
                " current_database()); EXECUTE format('ALTER DATABASE %I SET"
                " commit_siblings = 0', current_database()); END $$")
        a = f.start("a")
        accepted, seen_at_once = [], []
        stop = threading.Event()
        lock = threading.Lock()

        def sender(k):
            n = 0
            while not stop.is_set():
                did = "k9-%d-%d" % (k, n)
                n += 1
                try:
                    st = post(a.port, "/job", did, did, timeout=5)[0]
                except (OSError, http.client.HTTPException):
                    continue  # the daemon died under it: no answer, no promise
                if st != 202:
                    continue
                with lock:
                    accepted.append(did)
                    look = len(seen_at_once) < 20 and n % 5 == 1
                if look:
                    seen_at_once.append((did, f.state_of(did)))
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        enough = H.wait_until(lambda: len(accepted) >= 200, 60)
        a.kill9()
        stop.set()
        for t in threads:
            t.join(30)
        self.assertTrue(enough, "only %d accepted before the kill" % len(accepted))
        a.kill_orphaned_hooks()
        self.assertTrue(seen_at_once)
        self.assertEqual([d for d, st in seen_at_once if st is None], [],
                         "a 202 before its row was committed")
        a.start()
        ids = "','".join(accepted)

        def done():
            rows = f.query("SELECT count(*) FROM hookd_deliveries WHERE state = 3 AND"
                           " delivery_id IN ('%s')" % ids)
            return int(rows[0][0]) == len(accepted)
        H.wait_for(done, 120, "every delivery answered 202 succeeded")
        runs = f.runs()
        never = [d for d in accepted if not any(r["end"] for r in runs.get(d, []))]
        self.assertEqual(never, [], "answered 202, never ran to its end")
        print("  %d accepted before the kill, each ran" % len(accepted))

    # ---- point 5: PostgreSQL unreachable

    def test_postgresql_down_and_back(self):
        """PostgreSQL stopped: 503 + Retry-After for sync and async, nothing
        runs, /healthz journal_down, hookd_journal_up 0, logged once; back:
        deliveries run, hookd_journal_up 1, and one accepted before (its
        retry due during the outage) ran."""
        f = self.fleet
        # before-1's retry is due 3 s after its first attempt: time enough
        # for the poll that sees it waiting and for pg_ctl stop on a loaded
        # machine (with /job's 1 s it could run before PostgreSQL was down).
        extra = ("\n[endpoint slowjobs]\npath = /slowjob\nscheme = none\nevent = job\n"
                 "id_header = X-Id\nmode = async\nretries = 5\nretry_backoff = 3s\n"
                 "serialize = k\n")
        a = f.start("a", extra=extra)
        self.assertEqual(post(a.port, "/slowjob", "before-1", "Q", exit1=75)[0], 202)
        f.wait_state("before-1", state=2, endpoint="slowjobs")  # retry_wait, due in 3 s
        pg().stop()
        try:
            for path in ("/sync", "/job"):
                for i in range(3):
                    st, hdrs, body = post(a.port, path, "down-%s-%d" % (path[1:], i), "D")
                    self.assertEqual(st, 503, body)
                    self.assertTrue(hdrs.get("retry-after", "").isdigit(), hdrs)
            r = a.admin("GET", "/healthz")
            self.assertEqual((r.status, r.json.get("status")), (503, "journal_down"))
            self.assertEqual(H.metric(H.parse_metrics(a.scrape()), "hookd_journal_up"), 0)
            # The retry falls due (a second's room past it); the backoff's
            # reconnects fail.
            due = f.runs()["before-1"][0]["end"] + 3
            time.sleep(min(max(0.0, due + 1.0 - time.time()), 5.0))
            self.assertEqual(a.count_log(r"PostgreSQL unreachable"), 1, a.log_text()[-3000:])
            self.assertEqual(len(f.runs()["before-1"]), 1, "it ran while PostgreSQL was down")
        finally:
            pg().start()
        H.wait_for(lambda: a.admin("GET", "/healthz").status == 200, 15, "healthz 200")
        self.assertEqual(H.metric(H.parse_metrics(a.scrape()), "hookd_journal_up"), 1)
        self.assertTrue(a.log_lines("PostgreSQL reachable again"))
        st, _, body = post(a.port, "/sync", "after-1", "E")
        self.assertEqual((st, body["status"]), (200, "ok"))
        f.wait_state("before-1", endpoint="slowjobs")
        runs = f.runs()
        self.assertFalse([d for d in runs if d.startswith("down-")], "a hook ran while down")
        self.assertEqual([r["attempt"] for r in runs["before-1"]], [1, 2])
        self.assertEqual(len(runs["after-1"]), 1)

    def test_reconnect_does_not_stop_answering(self):
        """PostgreSQL's host turns silent (connections made, nothing ever
        answered: a host that drops packets): while hookd's reconnect
        waits there (up to connect_timeout, 5 s), hookd keeps answering,
        /healthz 503 journal_down, a request without its credential 401,
        a delivery 503, each at once; back, it reconnects."""
        f = self.fleet
        proxy = SilentProxy(pg().port)
        try:
            url = f.url.replace(":%d/" % pg().port, ":%d/" % proxy.port)
            self.assertNotEqual(url, f.url)
            a = f.start("a", url=url, extra="\n[endpoint nf]\npath = /nf\n"
                        "scheme = northflank\nsecret = %s\n" % H.NF_TOKEN)
            self.assertEqual(post(a.port, "/sync", "rc-1", "x")[0], 200)
            proxy.go_silent()
            # The next statement finds its connection cut; then, after the
            # backoff, a reconnect goes to the silent host.
            self.assertEqual(post(a.port, "/sync", "rc-2", "x")[0], 503)
            H.wait_for(lambda: proxy.held_count() > 0, 5, "a reconnect to the silent host")
            slowest, asked = 0.0, 0
            until = time.monotonic() + 2.5  # within connect_timeout of the reconnect
            while time.monotonic() < until:
                t = time.monotonic()
                r = a.admin("GET", "/healthz")
                self.assertEqual((r.status, r.json.get("status")), (503, "journal_down"))
                took = time.monotonic() - t
                t = time.monotonic()
                r = H.http_request(a.port, "POST", "/nf", b"{}",
                                   headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 401)
                took = max(took, time.monotonic() - t)
                t = time.monotonic()
                self.assertEqual(post(a.port, "/sync", "rc-down-%d" % asked, "x")[0], 503)
                slowest = max(slowest, took, time.monotonic() - t)
                asked += 1
                time.sleep(0.05)
            print("  %d rounds while the reconnect waited on a silent host, slowest answer "
                  "%.0f ms" % (asked, slowest * 1000))
            self.assertEqual(proxy.held_count(), 1, "one reconnect at a time")
            self.assertLess(slowest, 0.2, "an answer waited for the reconnect")
            proxy.go_on()
            H.wait_for(lambda: a.admin("GET", "/healthz").status == 200, 15, "healthz 200")
            self.assertEqual(post(a.port, "/sync", "rc-3", "x")[0], 200)
            self.assertFalse([d for d in f.runs() if d.startswith("rc-down")])
        finally:
            proxy.close()

    def test_silent_host_bounded_by_connect_timeout(self):
        """A host that lets connections in and never answers: hookd at
        start gives up within connect_timeout (2 s here) and a margin; and
        a SIGTERM while a reconnect waits there is a clean stop within that
        bound too (a reconnect is the connect alone: no statement after it
        waits without a bound)."""
        f = self.fleet
        proxy = SilentProxy(pg().port)
        try:
            url = f.url.replace(":%d/" % pg().port, ":%d/" % proxy.port)
            url += ("&" if "?" in url else "?") + "connect_timeout=2"
            proxy.go_silent()
            h = f.start("s", url=url, start=False)
            t = time.monotonic()
            p = subprocess.run([H.HOOKD_BIN, "-c", h.config_path, "serve"], cwd=h.tmp,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30, env=h.env)
            took = time.monotonic() - t
            print("  start against a silent host gave up after %.1f s" % took)
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertNotIn("listening", p.stdout)
            self.assertLess(took, 2 + 3, p.stdout)
            proxy.go_on()
            a = f.start("a", url=url)
            self.assertEqual(post(a.port, "/sync", "sh-1", "x")[0], 200)
            proxy.go_silent()
            self.assertEqual(post(a.port, "/sync", "sh-2", "x")[0], 503)
            H.wait_for(lambda: proxy.held_count() > 0, 5, "a reconnect to the silent host")
            t = time.monotonic()
            a.stop()
            took = time.monotonic() - t
            print("  SIGTERM during a reconnect to a silent host: stopped after %.1f s" % took)
            self.assertLess(took, 2 + 3)
        finally:
            proxy.close()

    def test_run_ending_while_postgresql_down(self):
        """A run that ends while PostgreSQL is down: once it is back, the
        delivery is recorded (or run again) and the one queued behind it on
        its key runs. Nothing accepted before the outage is lost."""
        f = self.fleet
        a = f.start("a")
        self.assertEqual(post(a.port, "/job", "across-1", "Q", sleep=1.5)[0], 202)
        self.assertEqual(post(a.port, "/job", "across-2", "Q")[0], 202)
        f.wait_run("across-1")
        pg().stop()
        try:
            f.wait_run("across-1", kind="end")
            time.sleep(0.5)
        finally:
            pg().start()
        H.wait_for(lambda: a.admin("GET", "/healthz").status == 200, 15, "healthz 200")
        f.wait_state("across-1", timeout=LEASE_S + 10)
        f.wait_state("across-2", timeout=15)
        self.assertEqual(len(f.runs()["across-2"]), 1)

    def test_start_after_outage_takes_no_live_instances_run(self):
        """PostgreSQL down for longer than the lease while A runs a long
        hook; B starts as soon as it is back (systemd starting it again),
        before A's reconnect backoff has let A renew: B must not take A's
        running delivery as if A were dead (a leased-out lease during an
        outage says nothing of its instance): it must not run while A's
        run goes on."""
        f = self.fleet
        a = f.start("a")
        b = f.start("b", start=False)
        self.assertEqual(post(a.port, "/job", "ol-1", "x", sleep=0, sleep1=20)[0], 202)
        f.wait_run("ol-1", instance="a")
        pg().stop()
        try:
            time.sleep(LEASE_S + 7)  # A's backoff grows to 8 s
        finally:
            pg().start()
        b.start()
        f.wait_state("ol-1", timeout=40)
        runs = f.runs()["ol-1"]
        where = [(r["instance"], r["attempt"], r["start"], r["end"]) for r in runs]
        for x, y in zip(runs, runs[1:]):
            self.assertGreaterEqual(y["start"], x["end"] or 1e99,
                                    "ol-1 ran on two instances at once: %r" % where)
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs], [("a", 1)], where)

    def test_kill9_while_sync_waits_for_a_slot(self):
        """max_running = 1 on A: a sync delivery runs, a second waits for
        the slot (recorded queued; its resend to B is a 409 queued); kill
        -9 A: B marks the waiting one failed without running it, and the
        running one failed with its run interrupted; their senders'
        resends to B run them, the waiting one as its first attempt."""
        f = self.fleet
        f.wait_db_up_for()
        a = f.start("a", server="max_running = 1\n")
        b = f.start("b")
        answers = {}
        t1 = f.send_sync(answers, a, "w-run", sleep=30, timeout=20)
        f.wait_run("w-run", instance="a")
        t2 = f.send_sync(answers, a, "w-wait", timeout=20)
        H.wait_for(lambda: f.state_of("w-wait", "syncjobs") == 0, 5, "w-wait recorded queued")
        st, _, body = post(b.port, "/sync", "w-wait", "w-wait")
        self.assertEqual((st, body["status"]), (409, "queued"), body)
        a.kill9()
        a.kill_orphaned_hooks()
        a.expected_rc = -signal.SIGKILL
        t1.join(10)
        t2.join(10)
        self.assertFalse(isinstance(answers.get("w-run", (None,))[0], int), answers)
        self.assertFalse(isinstance(answers.get("w-wait", (None,))[0], int), answers)
        f.wait_state("w-wait", state=4, endpoint="syncjobs", timeout=LEASE_S + 5)
        f.wait_state("w-run", state=4, endpoint="syncjobs", timeout=10)
        time.sleep(1.5)  # B's next ticks: it runs neither by itself
        self.assertNotIn("w-wait", f.runs())
        self.assertEqual(len(f.runs()["w-run"]), 1)
        rows = f.query("SELECT error, attempts FROM hookd_deliveries WHERE delivery_id = 'w-wait'")
        self.assertEqual(rows, [("interrupted before it ran", "0")])

        def deliveries(outcome):
            """B's hookd_deliveries_total of syncjobs, every event label."""
            return sum(v for (n, ls), v in H.parse_metrics(b.scrape()).items()
                       if n == "hookd_deliveries_total" and dict(ls).get("endpoint") == "syncjobs"
                       and dict(ls).get("outcome") == outcome)
        # Both ended on B, when it marked them failed: counted there, once.
        self.assertEqual((deliveries("failed"), deliveries("ok")), (2, 0))
        st, _, body = post(b.port, "/sync", "w-wait", "w-wait")
        self.assertEqual((st, body["status"]), (200, "ok"), body)
        st, _, body = post(b.port, "/sync", "w-run", "w-run")
        self.assertEqual((st, body["status"]), (200, "ok"), body)
        self.assertEqual((deliveries("failed"), deliveries("ok")), (2, 0))
        runs = f.runs()
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs["w-wait"]], [("b", 1)])
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs["w-run"]],
                         [("a", 1), ("b", 2)])

    def test_key_line_not_bounced_between_instances(self):
        """Keyed async deliveries waiting on A behind a long run of their
        key (A's slots free): they wait for their key, not for a slot, so
        B's free slots do not take them (README: one queue for all), nor
        may they bounce between A and B; each runs once, on A, in order."""
        f = self.fleet
        a, b = f.start("a"), f.start("b")
        self.assertEqual(post(a.port, "/job", "bl-0", "K", sleep=6)[0], 202)
        f.wait_run("bl-0")
        for i in (1, 2, 3):
            self.assertEqual(post(a.port, "/job", "bl-%d" % i, "K")[0], 202)
        for i in (1, 2, 3):
            f.wait_state("bl-%d" % i, timeout=20)
        taken = sum(x.count_log(r"taken to run here\" .* id=bl-\d") for x in (a, b))
        runs = f.runs()
        where = {d: [(r["instance"], r["attempt"]) for r in runs[d]] for d in sorted(runs)}
        for i in (1, 2, 3):
            self.assertEqual(len(runs["bl-%d" % i]), 1, where)
        order = sorted(("bl-%d" % i for i in (0, 1, 2, 3)), key=lambda d: runs[d][0]["start"])
        self.assertEqual(order, ["bl-0", "bl-1", "bl-2", "bl-3"], where)
        self.assertEqual(taken, 0, "taken %d times for 3 deliveries waiting for their key" % taken)
        self.assertEqual({r["instance"] for d in runs for r in runs[d]}, {"a"}, where)

    def test_kill9_mid_key_line_of_sync_deliveries(self):
        """One key's line of sync deliveries over A and B, interleaved
        (serialize is per endpoint: all on /sync); kill -9 A while its
        first runs: B's go on in arrival order once A's are failed (the
        cut one with its run interrupted, the waiting one with none),
        never two at once, each answered 200 and run once; A's waiting
        one never runs until resent."""
        f = self.fleet
        f.wait_db_up_for()
        a, b = f.start("a"), f.start("b")
        answers = {}
        threads = [f.send_sync(answers, a, "ml-1", "K", sleep=0.5, sleep1=30, timeout=40)]
        f.wait_run("ml-1", instance="a")
        for did, h in (("ml-2", b), ("ml-3", a), ("ml-4", b)):
            threads.append(f.send_sync(answers, h, did, "K", sleep=0.5, timeout=40))
            H.wait_for(lambda: f.state_of(did, "syncjobs") == 0 or did in answers, 5,
                       did + " recorded")
            self.assertNotIn(did, answers)
        a.kill9()
        a.kill_orphaned_hooks()
        a.expected_rc = -signal.SIGKILL
        for t in threads:
            t.join(45)
        got = {d: (st, (body or {}).get("status")) if isinstance(st, int) else "dropped"
               for d, (st, body) in answers.items()}
        self.assertEqual(got, {"ml-1": "dropped", "ml-2": (200, "ok"), "ml-3": "dropped",
                               "ml-4": (200, "ok")})
        runs = f.runs()
        seq = sorted((r for d in runs for r in runs[d]), key=lambda r: r["start"])
        where = [(r["id"], r["instance"], r["attempt"]) for r in seq]
        self.assertEqual(where, [("ml-1", "a", 1), ("ml-2", "b", 1), ("ml-4", "b", 1)], where)
        for x, y in zip(seq[1:], seq[2:]):
            self.assertGreaterEqual(y["start"], x["end"], "overlap: %r" % where)
        self.assertEqual(f.query("SELECT delivery_id, state, error, attempts FROM"
                                 " hookd_deliveries WHERE delivery_id IN ('ml-1', 'ml-3')"
                                 " ORDER BY 1"),
                         [("ml-1", "4", "interrupted", "1"),
                          ("ml-3", "4", "interrupted before it ran", "0")])
        st, _, body = post(b.port, "/sync", "ml-3", "K")
        self.assertEqual((st, body["status"]), (200, "ok"), body)
        self.assertEqual([(r["instance"], r["attempt"]) for r in f.runs()["ml-3"]], [("b", 1)])

    def test_postgresql_down_while_sync_waits_in_line(self):
        """max_running = 1 on A: a sync run, two sync deliveries waiting
        for the slot; PostgreSQL stopped for longer than the lease, the run
        ends meanwhile, then started: each sender gets 200, each ran once
        on A, the journal says succeeded, and B took nothing over."""
        f = self.fleet
        a = f.start("a", server="max_running = 1\n")
        b = f.start("b")
        answers = {}
        # pw-1 runs 4 s: the two others are queued and PostgreSQL stopped
        # before it ends, on a loaded machine too.
        threads = [f.send_sync(answers, a, "pw-1", sleep=4, timeout=40)]
        f.wait_run("pw-1")
        for did in ("pw-2", "pw-3"):
            threads.append(f.send_sync(answers, a, did, sleep=0.5, timeout=40))
            H.wait_for(lambda: f.state_of(did, "syncjobs") == 0, 5, did + " recorded queued")
        pg().stop()
        try:
            f.wait_run("pw-1", kind="end")
            time.sleep(LEASE_S + 2)
        finally:
            pg().start()
        for t in threads:
            t.join(45)
        got = {d: (st, (body or {}).get("status")) for d, (st, body) in answers.items()}
        for did in ("pw-1", "pw-2", "pw-3"):
            f.wait_state(did, endpoint="syncjobs", timeout=15)
        runs = f.runs()
        where = {d: [(r["instance"], r["attempt"]) for r in runs.get(d, [])]
                 for d in ("pw-1", "pw-2", "pw-3")}
        print("  answers %r, runs %r" % (got, where))
        self.assertEqual(where, {d: [("a", 1)] for d in where})
        self.assertEqual(got["pw-1"], (200, "ok"))
        for did in ("pw-2", "pw-3"):
            self.assertIn(got[did], ((200, "ok"), (503, "overloaded")), got)
        self.assertFalse(b.log_lines("taken over here"), b.log_text()[-2000:])
        seq = sorted((runs[d][0] for d in where), key=lambda r: r["start"])
        for x, y in zip(seq, seq[1:]):
            self.assertGreaterEqual(y["start"], x["end"], "max_running = 1, yet %s and %s "
                                    "overlapped" % (x["id"], y["id"]))

    def test_one_slot_each_burst_to_both(self):
        """max_running = 1 on A and B: a burst of async deliveries to both
        (a few keys shared, the rest a key each), each resent to the other
        instance at once: every one runs exactly once, as attempt 1, a
        key's runs never overlap, and each resend is a 409 or a 200
        duplicate."""
        f = self.fleet
        a = f.start("a", server="max_running = 1\n")
        b = f.start("b", server="max_running = 1\n")
        ids = ["ob-%02d" % i for i in range(24)]
        keys = {d: ("S%d" % (i % 3) if i % 2 else d) for i, d in enumerate(ids)}
        resends = []
        lock = threading.Lock()

        def sender(part):
            for i, did in enumerate(part):
                first, other = (a, b) if i % 2 else (b, a)
                st, _, body = post(first.port, "/job", did, keys[did], sleep=0.3)
                self.assertEqual(st, 202, body)
                st, _, body = post(other.port, "/job", did, keys[did], sleep=0.3)
                with lock:
                    resends.append((did, st, (body or {}).get("status")))
        threads = [threading.Thread(target=sender, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for did in ids:
            f.wait_state(did, timeout=40)
        bad = [r for r in resends if (r[1], r[2]) not in ((409, "queued"), (409, "running"),
                                                         (200, "duplicate"))]
        self.assertEqual(bad, [])
        runs = f.runs()
        where = {d: [(r["instance"], r["attempt"]) for r in runs.get(d, [])] for d in ids}
        self.assertEqual([d for d in ids if len(where[d]) != 1 or where[d][0][1] != 1], [],
                         where)
        for k in set(keys.values()):
            rs = sorted((runs[d][0] for d in ids if keys[d] == k), key=lambda r: r["start"])
            for x, y in zip(rs, rs[1:]):
                self.assertGreaterEqual(y["start"], x["end"], "key %s overlapped" % k)
        print("  on a: %d, on b: %d" % (sum(w[0][0] == "a" for w in where.values()),
                                        sum(w[0][0] == "b" for w in where.values())))

    def test_sigterm_while_sync_waits_for_a_slot(self):
        """max_running = 1 on A: a sync run and a sync delivery waiting for
        the slot; SIGTERM A: the waiting one is answered (200 if it ran,
        else a 503 and never run), and a resend to B after A's end is not
        a 409 for long: it runs (as attempt 1 if it never ran) or is a
        duplicate."""
        f = self.fleet
        a = f.start("a", server="max_running = 1\n")
        b = f.start("b")
        answers = {}
        t1 = f.send_sync(answers, a, "tw-run", sleep=2, timeout=20)
        f.wait_run("tw-run")
        t2 = f.send_sync(answers, a, "tw-wait", timeout=20)
        H.wait_for(lambda: f.state_of("tw-wait", "syncjobs") == 0, 5, "tw-wait queued")
        a.stop()
        t1.join(10)
        t2.join(10)
        got = {d: (st, (body or {}).get("status")) for d, (st, body) in answers.items()}
        ran = "tw-wait" in f.runs()
        print("  answers %r, tw-wait ran on a: %r" % (got, ran))
        self.assertEqual(got["tw-run"], (200, "ok"))
        self.assertEqual(got["tw-wait"], (200, "ok") if ran else (503, "overloaded"), got)
        deadline = time.monotonic() + 5
        while True:
            st, _, body = post(b.port, "/sync", "tw-wait", "tw-wait")
            if st != 409 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual((st, body["status"]), (200, "duplicate" if ran else "ok"), body)
        self.assertEqual([(r["instance"], r["attempt"]) for r in f.runs()["tw-wait"]],
                         [("a", 1)] if ran else [("b", 1)])

    def test_sigterm_while_sync_waits_turn_behind_async(self):
        """Key K runs on B (which is stopping, so steals nothing); on A a
        replay (async) and then a sync delivery with K wait for their
        turn. SIGTERM A: the replay runs in the drain before the sync one
        (the journal orders K by arrival: the sync one could not start
        while the replay waited), and A stops."""
        f = self.fleet
        a, b = f.start("a"), f.start("b")
        self.assertEqual(post(a.port, "/sync", "wt-old", "K")[0], 200)
        answers = {}
        t1 = f.send_sync(answers, b, "wt-blk", key="K", sleep=3, timeout=20)
        f.wait_run("wt-blk", instance="b")
        b.send_signal(signal.SIGTERM)
        p = a.cli("replay", "--endpoint", "syncjobs", "wt-old")
        self.assertEqual(p.returncode, 0, p.stderr)
        t2 = f.send_sync(answers, a, "wt-late", key="K", timeout=30)
        H.wait_for(lambda: f.state_of("wt-late", "syncjobs") == 0, 5, "wt-late queued")
        a.send_signal(signal.SIGTERM)
        t1.join(10)
        t2.join(25)
        self.assertIsNotNone(a.wait_exit(5), "A still draining: %s" % a.log_text()[-3000:])
        self.assertEqual(answers["wt-late"][0], 200, answers)
        runs = f.runs()
        old, late = runs["wt-old"], runs["wt-late"]
        self.assertEqual([(r["instance"], r["attempt"]) for r in old], [("a", 1), ("a", 2)])
        self.assertGreaterEqual(late[0]["start"], old[1]["end"])
        self.assertTrue(a.log_lines("left_queued=0 "), a.log_text()[-2000:])

    def test_stolen_then_adopted_back_runs_once(self):
        """A (two slots, both busy) queues x-1; B steals it and runs it;
        B is killed -9 mid-run; A adopts it after the lease. A's first job
        for x-1, still waiting for a slot, must not run it beside (or
        before) the adopted one: x-1 runs on A once, as attempt 2."""
        f = self.fleet
        f.wait_db_up_for()
        a = f.start("a", server="max_running = 2\n")
        b = f.start("b")
        for did in ("long-1", "long-2"):
            self.assertEqual(post(a.port, "/job", did, did, sleep=8)[0], 202)
        f.wait_run("long-1", instance="a")
        f.wait_run("long-2", instance="a")
        self.assertEqual(post(a.port, "/job", "x-1", "x", sleep=0, sleep1=20)[0], 202)
        f.wait_run("x-1", instance="b", timeout=10)
        b.kill9()
        b.kill_orphaned_hooks()
        b.expected_rc = -signal.SIGKILL
        a.wait_line(r"taken over here\" .* id=x-1( |$)", timeout=LEASE_S + 5)
        f.wait_state("long-1", timeout=15)
        f.wait_state("long-2", timeout=15)
        f.wait_state("x-1", timeout=40)
        time.sleep(1.5)
        runs = f.runs()["x-1"]
        rows = f.query("SELECT a.attempt, a.status, a.instance FROM hookd_attempts a JOIN "
                       "hookd_deliveries d ON d.id = a.delivery WHERE d.delivery_id = 'x-1' "
                       "ORDER BY a.attempt")
        print("  runs %r, attempts %r" % ([(r["instance"], r["attempt"]) for r in runs], rows))
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs], [("b", 1), ("a", 2)])
        self.assertEqual([(r[0], r[1], r[2]) for r in rows],
                         [("1", "interrupted", "b"), ("2", "ok", "a")])

    # ---- a clean stop gives up the lease

    def test_clean_stop_gives_up_the_lease(self):
        """lease = 30 s: A holds a delivery waiting for its retry; SIGTERM
        A; B adopts it at once and runs the retry when due, not a lease
        later; A's lease row says it ended."""
        f = self.fleet
        extra = ("\n[endpoint slowretry]\npath = /slowretry\nscheme = none\nevent = job\n"
                 "id_header = X-Id\nmode = async\nretries = 3\nretry_backoff = 3s\n")
        a = f.start("a", lease=30, extra=extra)
        b = f.start("b", lease=30, extra=extra)
        self.assertEqual(post(a.port, "/slowretry", "sr-1", "x", exit1=75)[0], 202)
        f.wait_state("sr-1", state=2, endpoint="slowretry")
        stopped = time.monotonic()
        a.stop()
        self.assertTrue(a.log_lines("lease ended; 1 pending deliveries left"), a.log_text()[-2000:])
        self.assertEqual(f.query("SELECT lease_until <= now() FROM hookd_instances"
                                 " WHERE name = 'a'"), [("t",)])
        b.wait_line(r"taken over here\" .* id=sr-1( |$)", timeout=10)
        f.wait_state("sr-1", endpoint="slowretry", timeout=15)
        took = time.monotonic() - stopped
        print("  retried on b %.1f s after a's SIGTERM (lease 30 s)" % took)
        self.assertLess(took, 12)
        runs = f.runs()["sr-1"]
        self.assertEqual([(r["instance"], r["attempt"]) for r in runs], [("a", 1), ("b", 2)])

    # ---- point 6: events, show, the API and replay on the other instance

    def test_listings_and_replay_on_the_other_instance(self):
        """`hookd events`, `show` and the deliveries API on B list A's
        deliveries, each attempt with its instance; a replay asked on B
        (by the API, and by `hookd replay`) runs on B."""
        f = self.fleet
        a = f.start("a")
        token = "t" * 24
        b = f.start("b", admin="token_file = {tmp}/admin.token\n", start=False)
        b.write_file("admin.token", token + "\n", mode=0o600)
        b.start()
        for i in range(3):
            st, _, _ = post(a.port, "/sync", "on-a-%d" % i, "x%d" % i)
            self.assertEqual(st, 200)
        ids = {e["id"] for e in b.events()}
        self.assertLessEqual({"on-a-0", "on-a-1", "on-a-2"}, ids)
        shown = json.loads(b.cli("show", "--json", "on-a-0").stdout)
        self.assertEqual([(x["attempt"], x.get("instance")) for x in shown["attempt_list"]],
                         [(1, "a")])
        auth = {"Authorization": "Bearer " + token}
        r = H.http_request(b.wait_admin_port(), "GET", "/api/v1/deliveries?endpoint=syncjobs",
                           headers=auth)
        self.assertEqual(r.status, 200, r.raw)
        self.assertLessEqual({"on-a-0", "on-a-1", "on-a-2"},
                             {d["id"] for d in r.json["deliveries"]})
        r = H.http_request(b.wait_admin_port(), "GET", "/api/v1/deliveries/syncjobs/on-a-1",
                           headers=auth)
        self.assertEqual([x.get("instance") for x in r.json["attempt_list"]], ["a"])
        # Replays asked on B.
        r = H.http_request(b.wait_admin_port(), "POST",
                           "/api/v1/deliveries/syncjobs/on-a-1/replay", b"", headers=auth)
        self.assertEqual(r.status, 202, r.raw)
        p = b.cli("replay", "--endpoint", "syncjobs", "on-a-2")
        self.assertEqual(p.returncode, 0, p.stderr)
        f.wait_run("on-a-1", kind="end", instance="b")
        f.wait_run("on-a-2", kind="end", instance="b")
        f.wait_state("on-a-1", endpoint="syncjobs")
        f.wait_state("on-a-2", endpoint="syncjobs")
        runs = f.runs()
        for d in ("on-a-1", "on-a-2"):
            self.assertEqual([(r["instance"], r["attempt"]) for r in runs[d]],
                             [("a", 1), ("b", 2)])
        shown = json.loads(a.cli("show", "--json", "on-a-2").stdout)
        self.assertEqual([(x["attempt"], x.get("instance"), x["replay"])
                          for x in shown["attempt_list"]], [(1, "a", False), (2, "b", True)])

    def test_replay_asked_on_both_at_once_runs_once(self):
        """The same delivery replayed on A and on B at the same moment (two
        `hookd replay` started together): the journal's requeue lets one
        of them take it, the other is told it is already pending, and it
        runs once, attempt 2, on the instance that took it."""
        f = self.fleet
        a, b = f.start("a"), f.start("b")
        # Each attempt runs 3 s: the replay that lost finds it still pending.
        st, _, _ = post(a.port, "/sync", "rr-1", "rr", sleep=3)
        self.assertEqual(st, 200)
        done = {}

        def replay(name, h):
            done[name] = h.cli("replay", "--endpoint", "syncjobs", "rr-1")

        threads = [threading.Thread(target=replay, args=nh) for nh in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        took = [n for n, p in done.items() if p.returncode == 0]
        self.assertEqual(len(took), 1, {n: (p.returncode, p.stdout, p.stderr)
                                       for n, p in done.items()})
        lost = "b" if took == ["a"] else "a"
        self.assertNotEqual(done[lost].returncode, 0)
        self.assertIn("already pending", done[lost].stderr + done[lost].stdout)
        f.wait_run("rr-1", kind="end", instance=took[0], timeout=15)
        f.wait_state("rr-1", endpoint="syncjobs")
        time.sleep(0.5)  # a second run, had there been one, would have started
        self.assertEqual([(r["instance"], r["attempt"]) for r in f.runs()["rr-1"]],
                         [("a", 1), (took[0], 2)])

    def test_journal_max_counts_both_instances(self):
        """journal_max = 3: two pending on A and one on B fill it; a fourth,
        to either, is 503 and runs nothing."""
        f = self.fleet
        cap = "journal_max = 3\nmax_running = 1\n"
        a, b = f.start("a", server=cap), f.start("b", server=cap)
        for did, h in (("m-1", a), ("m-2", a), ("m-3", b)):
            st, _, body = post(h.port, "/job", did, did, sleep=5)
            self.assertEqual(st, 202, body)
        # Each instance counts everyone's pending rows at most every 250 ms
        # (journal_pg.c), adjusting the count by its own writes in between:
        # a second gives a loaded machine's timers room (the runs last 5 s).
        time.sleep(1)
        for h in (a, b):
            st, hdrs, body = post(h.port, "/job", "m-over-" + h.subst("{tmp}")[-4:], "o")
            self.assertEqual((st, body["status"]), (503, "overloaded"), body)
            self.assertIn("retry-after", hdrs)
        for did in ("m-1", "m-2", "m-3"):
            f.wait_state(did, timeout=15)
        self.assertFalse([d for d in f.runs() if d.startswith("m-over")])
        self.assertEqual(post(b.port, "/job", "m-4", "m-4")[0], 202)
        f.wait_state("m-4")

    # ---- point 1: the password never in the config line, and a wrong one

    def test_password_in_journal_line_refused(self):
        f = self.fleet
        h = f.start("a", start=False)
        text = h.read("hookd.ini").replace(f.url, f.url.replace("hookd@", "hookd:s3cr3t-pw@"))
        h.write_file("hookd.ini", text)
        p = h.cli("check")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("the connection string holds a password; put it in journal_password_file",
                      p.stderr)
        self.assertNotIn("s3cr3t-pw", p.stdout + p.stderr)

    def test_wrong_password_does_not_start(self):
        f = self.fleet
        h = f.start("a", start=False)
        wrong = "not-the-password-%d" % os.getpid()
        pw = h.write_file("wrong.pw", wrong, mode=0o600)
        h.write_file("hookd.ini", h.read("hookd.ini").replace(pg().password_file(), pw))
        h.secrets.append(wrong)
        p = subprocess.run([H.HOOKD_BIN, "-c", h.config_path, "serve"], cwd=h.tmp,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30, env=h.env)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(p.stdout, r"password authentication failed")
        self.assertNotIn(wrong, p.stdout)
        self.assertNotIn(pg().password(), p.stdout)
        self.assertNotIn("listening", p.stdout)

    # ---- point 7: the two-instance run

    def test_two_instances(self):
        big_run(self, self.fleet, N_DELIVERIES)


def key_story(f, runs):
    """What the journal and the run log say of some deliveries, for a
    failure's message: each row (id, its place in the key's line, state,
    attempts) with its attempts, and the runs."""
    lines = []
    for row in f.query("SELECT d.delivery_id, d.id, d.queued_seq, d.state, d.attempts,"
                       " d.received_ms, coalesce(string_agg(a.attempt || ':' || a.instance"
                       " || ':' || a.status || ':' || a.started_ms, ' ' ORDER BY a.attempt), '')"
                       " FROM hookd_deliveries d LEFT JOIN hookd_attempts a ON a.delivery = d.id"
                       " WHERE d.endpoint = 'jobs' AND d.delivery_id IN (%s) GROUP BY d.id"
                       " ORDER BY d.id" % ", ".join("'%s'" % did for did in runs)):
        lines.append("  %s id=%s seq=%s state=%s attempts=%s received=%s [%s] runs=%r" % (
            tuple(row) + ([(r["instance"], r["attempt"], r["start"]) for r in runs.get(row[0], [])],)))
    return "\n".join(lines)


def big_run(tc, f, n):
    """Issue 19 point 7: n deliveries over A and B, each resent to the
    other; PostgreSQL restarted once and A SIGKILLed and started again in
    the middle; then every delivery succeeded once, no hook ran twice but
    for runs the kill cut, and each key's runs were in arrival order and
    never overlapped."""
    t_begin = time.monotonic()
    a, b = f.start("a"), f.start("b")
    inst = {"a": a, "b": b}
    keys = {}
    for i in range(n):
        # A quarter share 20 keys (25 each); the others a key each.
        keys["d%05d" % i] = "k%02d" % (i // 4 % 20) if i % 4 == 0 else "u%05d" % i
    lock = threading.Lock()
    stats = {"accepted": 0, "503": {"a": 0, "b": 0}, "503_no_retry_after": 0,
             "resend": {}, "first": {}, "conn_errors": 0}
    problems = []
    work = queue.Queue()
    for i in range(n):
        work.put(i)
    deadline = time.monotonic() + 180

    def send(name, did, first):
        """Sends until a final answer: a refused connection (the instance
        is down) or a 503 (PostgreSQL is) is sent again, bounded."""
        retried = False  # a resend of its own: it may have been recorded
        for _ in range(200):
            if time.monotonic() > deadline:
                break
            port = inst[name].port
            if port is None:
                time.sleep(0.1)
                continue
            try:
                st, hdrs, body = post(port, "/job", did, keys[did], sleep=0.02, timeout=20)
            except (OSError, http.client.HTTPException):
                with lock:
                    stats["conn_errors"] += 1
                retried = True
                time.sleep(0.1)
                continue
            if st == 503:
                ra = hdrs.get("retry-after", "")
                with lock:
                    stats["503"][name] += 1
                    if not ra.isdigit():
                        stats["503_no_retry_after"] += 1
                retried = True
                time.sleep(min(int(ra) if ra.isdigit() else 1, 5))
                continue
            return st, (body or {}).get("status"), retried
        return None, "gave up", retried

    def sender():
        while time.monotonic() < deadline:
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            did = "d%05d" % i
            first, other = ("a", "b") if i % 2 else ("b", "a")
            st, status, retried = send(first, did, True)
            ok = st == 202 or (retried and (st, status) in ((200, "duplicate"), (409, "queued"),
                                                            (409, "running")))
            if not ok:
                problems.append("%s first to %s: %r %r" % (did, first, st, status))
            st2, status2, _ = send(other, did, False)
            if (st2, status2) not in ((200, "duplicate"), (409, "queued"), (409, "running"),
                                      (409, "retry_wait")):
                problems.append("%s resent to %s: %r %r" % (did, other, st2, status2))
            with lock:
                stats["accepted"] += 1
                stats["resend"][st2] = stats["resend"].get(st2, 0) + 1

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()

    def wait_accepted(count):
        H.wait_for(lambda: stats["accepted"] >= count or not any(t.is_alive() for t in threads),
                   120, "%d deliveries sent" % count)

    # PostgreSQL restarted once, a third of the way.
    wait_accepted(n // 3)
    t0 = time.monotonic()
    if PG_RESTART:
        pg().restart()
    pg_outage = time.monotonic() - t0
    # A killed (with its hooks) and started again, two thirds of the way,
    # while one run of its own is sure to be under way: the others take
    # 20 ms, and under load A may be between two of them.
    wait_accepted(2 * n // 3)
    keys["dcut"] = "ucut"
    tc.assertEqual(post(a.port, "/job", "dcut", "ucut", sleep=0.02, sleep1=30)[0], 202)
    f.wait_run("dcut", instance="a")
    a.kill9()
    a.kill_orphaned_hooks()
    kill_wall_after = time.time()
    a.start()
    for t in threads:
        t.join(max(1, deadline - time.monotonic()))
    tc.assertFalse([t for t in threads if t.is_alive()], "senders still at work")
    tc.assertEqual(problems[:20], [], "%d unexpected answers" % len(problems))
    # Every delivery ends succeeded, bounded.
    n = len(keys)  # dcut too
    done = H.wait_until(lambda: f.query("SELECT count(*) FROM hookd_deliveries WHERE state = 3")
                        [0][0] == str(n), float(os.environ.get("HOOKD_SEVERAL_WAIT") or 60), step=0.5)
    tc.assertTrue(done, "not all %d succeeded: %r" % (n, f.query(
        "SELECT delivery_id, state, owner, (SELECT i.lease_until > now() FROM hookd_instances i"
        " WHERE i.name = owner), serial_key, run_attempt,"
        " attempts FROM hookd_deliveries WHERE state <> 3 ORDER BY id")))
    t_done = time.monotonic()

    rows = f.query("SELECT d.delivery_id, d.id, d.state,"
                   " count(a.attempt) FILTER (WHERE a.status = 'ok' AND a.http = 200),"
                   " count(a.attempt) FROM hookd_deliveries d"
                   " LEFT JOIN hookd_attempts a ON a.delivery = d.id"
                   " WHERE d.endpoint = 'jobs' GROUP BY d.delivery_id, d.id, d.state")
    tc.assertEqual(len(rows), n)
    order = {}
    for did, rowid, state, oks, attempts in rows:
        tc.assertEqual((state, oks), ("3", "1"), "%s: state %s, %s ok attempts of %s"
                       % (did, state, oks, attempts))
        order[did] = int(rowid)

    # The runs: one per delivery, but for runs the kill cut: those the
    # journal records as interrupted attempts of the killed instance (a
    # hook may have printed its end line before hookd could record it).
    interrupted = {(did, int(att)) for did, att, inst in f.query(
        "SELECT d.delivery_id, a.attempt, a.instance FROM hookd_attempts a JOIN"
        " hookd_deliveries d ON d.id = a.delivery WHERE a.status = 'interrupted'")}
    runs = f.runs()
    tc.assertEqual(set(runs), set(keys), "deliveries that never ran, or unknown ones")
    cut = []
    for did, rs in runs.items():
        whole = [r for r in rs if (did, r["attempt"]) not in interrupted]
        tc.assertEqual(len(whole), 1, "%s ran %d times, not cut: %r" % (did, len(whole), rs))
        tc.assertIsNotNone(whole[0]["end"], rs)
        for r in rs:
            if r is whole[0]:
                continue
            tc.assertEqual(r["instance"], "a", "a run cut not by the kill: %r" % r)
            tc.assertLess(r["start"], kill_wall_after, "cut, yet started after the kill")
            tc.assertGreater(whole[0]["attempt"], r["attempt"], rs)
            tc.assertGreater(whole[0]["start"], r["start"], rs)
            if r["end"] is None:
                r["end"] = kill_wall_after  # for the overlap check
            cut.append(did)

    # Per key: starts in arrival (journal) order, no two runs overlapping.
    by_key = {}
    for did, rs in runs.items():
        by_key.setdefault(keys[did], []).extend(rs)
    # An attempt that failed: the hook never fails here, so only one hookd
    # could not begin for a reason that passes (a 503). Its delivery waits
    # for its retry without its key (README "serialize"): later ones of the
    # key may run first. They are left out of the order, not of the overlap
    # check. A row not read back while PostgreSQL restarted is not one: it
    # keeps its key and tries again, for up to 10 s.
    failed = {}
    for did, att, status, http_status, error in f.query(
            "SELECT d.delivery_id, a.attempt, a.status, a.http, a.error FROM hookd_attempts a"
            " JOIN hookd_deliveries d ON d.id = a.delivery WHERE d.endpoint = 'jobs'"
            " AND a.status NOT IN ('ok', 'interrupted')"):
        failed.setdefault(did, []).append((int(att), status, http_status, error))
    tc.assertEqual({did: fs for did, fs in failed.items()
                    if any(h != "503" for _, _, h, _ in fs)}, {}, "attempts that failed not with 503")
    if pg_outage < 8:
        tc.assertEqual({did: fs for did, fs in failed.items()
                        if any(e and "read the delivery back" in e for _, _, _, e in fs)}, {},
                       "a row not read back failed its attempt (it should keep its key)")
    shared_keys = 0
    for key, rs in by_key.items():
        rs.sort(key=lambda r: r["start"])
        seq = []
        for r in rs:
            if r["id"] in failed:
                continue
            if not seq or seq[-1] != r["id"]:
                seq.append(r["id"])
        want = sorted(set(seq), key=order.get)
        if seq != want:
            pair = next(((x, y) for x, y in zip(seq, want) if x != y), (seq[0], seq[-1]))
            logs = ["%s: %s" % (name, line) for name, h in sorted(inst.items())
                    for line in h.log_lines() if any(d in line for d in pair)]
            tc.fail("key %s: runs out of arrival order: %r\n%s\n%s" % (
                key, seq, key_story(f, {r["id"]: runs[r["id"]] for r in rs}),
                "\n".join(logs[:60])))
        for prev, nxt in zip(rs, rs[1:]):
            tc.assertGreaterEqual(nxt["start"], prev["end"],
                                  "key %s: %r and %r overlapped" % (key, prev, nxt))
        shared_keys += len({r["id"] for r in rs}) > 1

    for h in (a, b):
        tc.assertFalse(h.log_lines("level=error"), "\n".join(h.log_lines("level=error")[:5]))
    print("  two instances: %d deliveries (%d keys shared), %d runs in all, %d cut by the "
          "kill (%s), %d 503s while PostgreSQL restarted (a %d, b %d; %.1f s), resends %r, "
          "%d refused connections, %d retried after an attempt answered 503 (%s); all done in "
          "%.1f s (%.1f s wall for the test)"
          % (n, shared_keys, sum(len(r) for r in runs.values()), len(cut),
             " ".join(sorted(cut)[:8]), stats["503"]["a"] + stats["503"]["b"],
             stats["503"]["a"], stats["503"]["b"], pg_outage, stats["resend"],
             stats["conn_errors"], len(failed), " ".join(sorted(failed)[:8]),
             t_done - t_begin, time.monotonic() - t_begin))
    tc.assertEqual(stats["503_no_retry_after"], 0)
    tc.assertIn("dcut", cut, "the kill did not cut the run it was made to cut")


if __name__ == "__main__":
    H.main()
