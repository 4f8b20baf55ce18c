#!/usr/bin/env python3
"""Faults against several hookd instances on one PostgreSQL journal, black-
box: what test_several.py's guarantees become when one instance alone loses
the database (a proxy between it and PostgreSQL, cut or reset), or is paused
(SIGSTOP: a stalled machine) while the other goes on. Same fleet, hooks and
run log as test_several.py (whose helpers this file uses), and the same
private PostgreSQL of the process.

Every run is counted from the run log: an id answered 202 (or accepted
after a resend) must run to its end exactly once, but for what README
"Running on several machines" allows: a run already going when its
instance was cut off longer than `lease`, which the other instance runs
again as the next attempt.
"""

import contextlib
import http.client
import random
import re
import signal
import threading
import time

import harness as H
import test_several as S

LEASE_S = S.LEASE_S


# An endpoint like /job whose retries are due 3 s after an attempt: a test
# that must cut an instance off (or stop it) before a retry falls due has
# time on a loaded machine for the journal poll that sees the delivery
# waiting and for the cut (with /job's 1 s, the retry could run first).
SLOW_RETRY = ("\n[endpoint slowjobs]\npath = /slowjob\nscheme = none\nevent = job\n"
              "id_header = X-Id\nmode = async\nretries = 5\nretry_backoff = 3s\n"
              "serialize = k\n")


def runs_where(f):
    """Each delivery's runs from the run log: (instance, attempt, ended)."""
    return {did: [(r["instance"], r["attempt"], r["end"] is not None) for r in rs]
            for did, rs in f.runs().items()}


def proxied(f, proxy, timeout=2):
    """f's database URL through proxy, with a short connect_timeout."""
    url = f.url.replace(":%d/" % S.pg().port, ":%d/" % proxy.port)
    assert url != f.url
    return url + ("&" if "?" in url else "?") + "connect_timeout=%d" % timeout


def attempts_of(f, did):
    """[(attempt, status, instance)] of did in the journal."""
    rows = f.query("SELECT a.attempt, a.status, a.instance FROM hookd_attempts a JOIN "
                   "hookd_deliveries d ON d.id = a.delivery WHERE d.delivery_id = '%s' "
                   "ORDER BY a.attempt" % did)
    return [(int(r[0]), r[1], r[2]) for r in rows]


class FaultTest(H.HookdTestCase):
    setUp = S.SeveralTest.setUp
    tearDown = S.SeveralTest.tearDown
    _bad = S.SeveralTest._bad

    def test_one_instance_cut_off_longer_than_lease(self):
        """A alone loses PostgreSQL (its proxy goes silent) for longer than
        the lease while it runs a long hook, holds a retry and two
        deliveries waiting their turn behind the long one: B takes all of
        them over; the long run A goes on with ends during the cut, and
        once A is back its outcome is not recorded (it is B's now); A runs
        none of the others; each of them ran exactly once."""
        f = self.fleet
        f.wait_db_up_for()
        proxy = S.SilentProxy(S.pg().port)
        try:
            a = f.start("a", url=proxied(f, proxy), extra=SLOW_RETRY)
            b = f.start("b", extra=SLOW_RETRY)
            self.assertEqual(S.post(a.port, "/job", "long", "L", sleep1=7)[0], 202)
            f.wait_run("long", instance="a")
            for did in ("behind-1", "behind-2"):
                self.assertEqual(S.post(a.port, "/job", did, "L")[0], 202)
            # Last before the cut: its retry is due 3 s after its first
            # attempt, which must not be before the cut on a slow machine.
            self.assertEqual(S.post(a.port, "/slowjob", "rt-1", "R", exit1=75)[0], 202)
            f.wait_state("rt-1", state=2, endpoint="slowjobs")  # retry_wait, due in 3 s
            proxy.go_silent()
            cut = time.monotonic()
            self.assertEqual(S.post(a.port, "/sync", "during", "D")[0], 503)
            b.wait_line(r"taken over here\" .* id=long( |$)", timeout=LEASE_S + 8)
            f.wait_state("rt-1", timeout=25, endpoint="slowjobs")
            for did in ("long", "behind-1", "behind-2"):
                f.wait_state(did, timeout=25)
            f.wait_run("long", kind="end", instance="a", timeout=10)
            print("  cut off for %.1f s" % (time.monotonic() - cut))
            proxy.go_on()
            H.wait_for(lambda: a.admin("GET", "/healthz").status == 200, 25, "A back")
            a.wait_line(r"not recorded.* id=long( |$)", timeout=10)
            time.sleep(1.5)  # A's local lines, had they been kept, would run now
            self.assertEqual(S.post(a.port, "/sync", "after", "D")[0], 200)
        finally:
            proxy.close()
        where = runs_where(f)
        self.assertEqual(where.get("long"), [("a", 1, True), ("b", 2, True)], where)
        self.assertEqual(where.get("rt-1"), [("a", 1, True), ("b", 2, True)], where)
        self.assertEqual(where.get("behind-1"), [("b", 1, True)], where)
        self.assertEqual(where.get("behind-2"), [("b", 1, True)], where)
        self.assertNotIn("during", where)
        self.assertEqual(attempts_of(f, "long"), [(1, "interrupted", "a"), (2, "ok", "b")])
        # B kept the key's order among its own runs.
        runs = f.runs()
        on_b = sorted((r for did in ("long", "behind-1", "behind-2") for r in runs[did]
                       if r["instance"] == "b"), key=lambda r: r["start"])
        self.assertEqual([r["id"] for r in on_b], ["long", "behind-1", "behind-2"])
        for x, y in zip(on_b, on_b[1:]):
            self.assertGreaterEqual(y["start"], x["end"])

    def test_taken_over_behind_its_key_line(self):
        """A delivery taken over by B (A stopped: it let its deliveries go)
        joins B's line of deliveries waiting for their key's turn at its
        tail, behind later ones of its key: once the key is free (a run
        elsewhere ends), it still runs first and the later ones after it.
        Once, the first of B's line was told "not your turn" (the taken-
        over one, queued earlier, comes first) and the rest of the line,
        that one too, waited for it for good."""
        f = self.fleet
        f.wait_db_up_for()
        a, b = f.start("a"), f.start("b")
        # Key Q runs elsewhere (an instance "z" with a lease): every
        # delivery with it waits for its turn.
        now_ms = int(time.time() * 1000)
        f.query("INSERT INTO hookd_instances VALUES ('z', now() + interval '1 hour');"
                "INSERT INTO hookd_deliveries (endpoint, delivery_id, event, async, state,"
                " received_ms, updated_ms, serial_key, owner, fence, instance) VALUES"
                " ('jobs', 'tb-elsewhere', 'job', true, 1, %d, %d,"
                " 'endpoint jobs' || chr(31) || 'Q', 'z', 1, 'z')" % (now_ms, now_ms))
        self.assertEqual(S.post(a.port, "/job", "tb-1", "Q")[0], 202)
        for did in ("tb-2", "tb-3"):
            self.assertEqual(S.post(b.port, "/job", did, "Q")[0], 202)
        time.sleep(0.5)  # each asked once: not its turn
        a.stop()
        b.wait_line(r"taken over here\" .* id=tb-1( |$)", timeout=10)
        time.sleep(0.5)  # tb-1 asked on B too: behind tb-2 and tb-3 there
        f.query("UPDATE hookd_deliveries SET state = 3, owner = NULL"
                " WHERE delivery_id = 'tb-elsewhere'")
        for did in ("tb-1", "tb-2", "tb-3"):
            f.wait_state(did, timeout=10)
        runs = f.runs()
        order = sorted((r for did in ("tb-1", "tb-2", "tb-3") for r in runs[did]),
                       key=lambda r: r["start"])
        self.assertEqual([(r["id"], r["instance"]) for r in order],
                         [("tb-1", "b"), ("tb-2", "b"), ("tb-3", "b")])

    def test_connection_resets_under_load(self):
        """Both instances' connections to PostgreSQL reset again and again
        (each for less than the lease) while four senders post to both,
        resending a 503 or a broken connection to the other instance as a
        sender would (a 409 later): every delivery ends accepted, and
        ran to its end exactly once (after one failing attempt for those
        whose first exits 75); no attempt ran twice, and a key's runs
        never overlapped. Once, a delivery taken over (adopted: a record
        committed whose answer the reset lost, let go at the reconnect)
        could not be read back right after the take: it stayed held by
        its new instance, never ran, and its key's line waited behind it
        for good."""
        f = self.fleet
        pa, pb = S.SilentProxy(S.pg().port), S.SilentProxy(S.pg().port)
        a = f.start("a", url=proxied(f, pa))
        b = f.start("b", url=proxied(f, pb))
        inst = [a, b]
        rnd = random.Random(19)
        plan = {}
        for i in range(240):
            plan["r-%d" % i] = {"key": "k%d" % rnd.randrange(12), "exit1": 75
                                if rnd.random() < 0.15 else None,
                                "sleep": rnd.choice(("0", "0", "0.1", "0.3"))}
        answers, stats, history = {}, {"503": 0, "409": 0, "broken": 0}, {}
        lock = threading.Lock()
        stop_resets = threading.Event()

        def resetter():
            n = 0
            while not stop_resets.is_set() and n < 60:
                p = (pa, pb)[n % 2]
                p.go_silent()
                time.sleep(0.03)
                p.go_on()
                n += 1
                stop_resets.wait(0.4)

        def sender(ids):
            for did in ids:
                p = plan[did]
                who = rnd.randrange(2)
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    path = path_of(did)
                    try:
                        st = S.post(inst[who].port, path, did, p["key"], sleep=p["sleep"],
                                    exit1=p["exit1"], timeout=20)[0]
                    except (OSError, http.client.HTTPException):
                        st = "broken"
                    history.setdefault(did, []).append(("ab"[who], st))
                    if st not in (503, 409, "broken"):
                        break
                    with lock:
                        stats[str(st)] += 1
                    who = 1 - who
                    time.sleep(0.2 if st != 409 else 0.5)
                answers[did] = st
        ids = sorted(plan)

        def path_of(did):
            return "/sync" if did.endswith("7") else "/job"
        resets = threading.Thread(target=resetter)
        resets.start()
        senders = [threading.Thread(target=sender, args=(ids[k::4],)) for k in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(120)
        stop_resets.set()
        resets.join(30)
        pa.go_on()
        pb.go_on()
        try:
            unanswered = [d for d in ids if answers.get(d) in (None, 503, "broken")]
            self.assertEqual(unanswered, [], "never accepted")
            ids_sql = "','".join(ids)

            def done():
                rows = f.query("SELECT count(*) FROM hookd_deliveries WHERE state >= 3 AND"
                               " delivery_id IN ('%s')" % ids_sql)
                return int(rows[0][0]) == len(ids)
            if not H.wait_until(done, 60):
                rows = f.query("SELECT delivery_id, endpoint, state, attempts, run_attempt,"
                               " owner, fence, instance, serial_key, queued_seq FROM"
                               " hookd_deliveries WHERE state < 3")
                leases = f.query("SELECT name, lease_until, now() FROM hookd_instances")
                stuck = {r[0] for r in rows}
                for h in (a, b):
                    m = h.admin("GET", "/metrics").body.decode()
                    print("---- %s's metrics: %s" % (h.config_path, [
                        l for l in m.splitlines() if re.match(
                            r"hookd_(deliveries_queued|deliveries_running|deliveries_pending"
                            r"|hooks_running)", l)]))
                    print("---- %s's lines about them:" % h.config_path)
                    for line in h.logs():
                        m = re.search(r" id=(\S+)", line)
                        if m and m.group(1) in stuck:
                            print(line)
                self.fail("not finished: %r; leases %r; runs %r; answers %r"
                          % (rows, leases, {r[0]: f.runs().get(r[0]) for r in rows},
                             {r[0]: history.get(r[0]) for r in rows}))
            time.sleep(1)
            runs = f.runs()
            bad = {}
            for did in ids:
                # Exactly one run succeeded, the last; no attempt ran twice;
                # none was cut. (An attempt whose row could not be read back
                # in an outage fails without a run, so numbers may skip.)
                rs = sorted(runs.get(did, []), key=lambda r: r["start"])
                ok = [r for r in rs if r["attempt"] != 1 or not plan[did]["exit1"]]
                atts = [r["attempt"] for r in rs]
                if (len(ok) != 1 or rs[-1] is not ok[0] or atts != sorted(set(atts))
                        or any(r["end"] is None for r in rs)):
                    bad[did] = [(r["instance"], r["attempt"], r["end"] is not None)
                                for r in rs]
            by_key = {}
            for did, rs in runs.items():
                # a key's line is an endpoint's
                by_key.setdefault((path_of(did), plan[did]["key"]), []).extend(rs)
            overlaps = []
            for key, rs in by_key.items():
                rs.sort(key=lambda r: r["start"])
                for x, y in zip(rs, rs[1:]):
                    if y["start"] < x["end"]:
                        overlaps.append((x["id"], y["id"]))
            print("  %d deliveries, %d 503s, %d 409s and %d broken connections resent, runs %d"
                  % (len(ids), stats["503"], stats["409"], stats["broken"],
                     sum(len(r) for r in runs.values())))
            self.assertEqual(bad, {}, "ran other than exactly once (answers: %r)"
                             % {d: history.get(d) for d in bad})
            self.assertEqual(overlaps, [], "a key's runs overlapped")
        finally:
            pa.close()
            pb.close()

    @contextlib.contextmanager
    def taken_over_unreadable(self, did, key, b_extra=""):
        """A and B (B with b_extra); did (key) running on A; its row made
        unreadable (the headers column renamed away, as a connection lost
        right after the take's commit would leave it), A killed, B's take
        seen; the body runs with the row still unreadable, and it reads
        again after. Yields B."""
        f = self.fleet
        f.wait_db_up_for()
        a, b = f.start("a"), f.start("b", extra=b_extra)
        self.assertEqual(S.post(a.port, "/job", did, key, sleep1=30)[0], 202)
        f.wait_run(did, instance="a")
        f.query("ALTER TABLE hookd_deliveries RENAME COLUMN headers TO headers_away")
        try:
            a.kill9()
            a.kill_orphaned_hooks()
            a.expected_rc = -signal.SIGKILL
            b.wait_line(r"taken over here\" .* id=%s( |$)" % did, timeout=LEASE_S + 8)
            yield b
        finally:
            f.query("ALTER TABLE hookd_deliveries RENAME COLUMN headers_away TO headers")

    def assert_ran_on_b_once(self, did):
        runs = self.fleet.runs()
        self.assertEqual([(r["instance"], r["attempt"], r["end"] is not None)
                          for r in runs[did]], [("a", 1, False), ("b", 2, True)])
        return runs

    def test_taken_over_row_not_read_back_is_let_go(self):
        """A killed; B takes its delivery over but cannot read the row back
        where B reads it whole at the take (its event has a `match`:
        whether it runs is in its payload): B lets the row go (owner NULL
        at its next heartbeat) and takes it again at a later tick, and
        once the row reads back it runs there, attempt 2. Without that the
        row stayed B's, under B's live lease, with no job anywhere: it
        never ran, and its key's line waited behind it."""
        with self.taken_over_unreadable("lg-1", "G", "\n[event job]\nmatch = k=G\n") as b:
            b.wait_line(r"cannot read a delivery row back", timeout=10)
            # Let go at B's next heartbeat, and taken again at the same
            # tick (held by nobody for a moment only): a second take.
            H.wait_for(lambda: b.count_log(r"taken over here\" .* id=lg-1( |$)") >= 2,
                       LEASE_S + 10, "lg-1 let go and taken again")
            self.assertGreaterEqual(b.count_log(r"owned here but not held"), 1)
        self.fleet.wait_state("lg-1", timeout=LEASE_S + 15)
        self.assert_ran_on_b_once("lg-1")

    def test_taken_over_shell_not_read_back_keeps_its_key(self):
        """The same take-over where B needs no payload at the take (the
        row's key is the one the journal recorded): the row waits on B as a
        shell, and its read fails as its attempt begins; it keeps its key
        and its place, tries each second, and runs there once the row
        reads back, attempt 2, before a later delivery of its key sent to B
        then. It was taken once."""
        with self.taken_over_unreadable("sk-1", "H") as b:
            b.wait_line(r"cannot read the delivery back from the journal; it keeps its place"
                        r".* id=sk-1( |$)", timeout=10)
        self.assertEqual(S.post(b.port, "/job", "sk-2", "H")[0], 202)
        self.fleet.wait_state("sk-1", timeout=15)
        self.fleet.wait_state("sk-2", timeout=15)
        runs = self.assert_ran_on_b_once("sk-1")
        self.assertLess(runs["sk-1"][-1]["end"], runs["sk-2"][0]["start"],
                        "the later delivery of the key ran first")
        self.assertEqual(b.count_log(r"taken over here\" .* id=sk-1( |$)"), 1)

    def test_paused_instance_past_its_lease(self):
        """SIGSTOP A (a stalled machine) for longer than the lease while
        its hook runs and a retry and a keyed delivery wait: B takes them
        over; after SIGCONT A records nothing of them and runs none of them
        again; each ran once, the long one as README says (A's run went
        on, B ran it again as attempt 2)."""
        f = self.fleet
        f.wait_db_up_for()
        a, b = f.start("a", extra=SLOW_RETRY), f.start("b", extra=SLOW_RETRY)
        self.assertEqual(S.post(a.port, "/job", "p-long", "L", sleep1=6)[0], 202)
        f.wait_run("p-long", instance="a")
        self.assertEqual(S.post(a.port, "/job", "p-behind", "L")[0], 202)
        # Last before the pause: its retry (due in 3 s) must not come first.
        self.assertEqual(S.post(a.port, "/slowjob", "p-rt", "R", exit1=75)[0], 202)
        f.wait_state("p-rt", state=2, endpoint="slowjobs")
        a.send_signal(signal.SIGSTOP)
        try:
            b.wait_line(r"taken over here\" .* id=p-long( |$)", timeout=LEASE_S + 8)
            f.wait_state("p-rt", timeout=25, endpoint="slowjobs")
            for did in ("p-long", "p-behind"):
                f.wait_state(did, timeout=25)
            f.wait_run("p-long", kind="end", instance="a", timeout=10)
        finally:
            a.send_signal(signal.SIGCONT)
        a.wait_line(r"not recorded.* id=p-long( |$)", timeout=10)
        time.sleep(1.5)
        self.assertEqual(S.post(a.port, "/sync", "p-after", "D")[0], 200)
        where = runs_where(f)
        self.assertEqual(where.get("p-long"), [("a", 1, True), ("b", 2, True)], where)
        self.assertEqual(where.get("p-rt"), [("a", 1, True), ("b", 2, True)], where)
        self.assertEqual(where.get("p-behind"), [("b", 1, True)], where)
        self.assertEqual(attempts_of(f, "p-long"), [(1, "interrupted", "a"), (2, "ok", "b")])


if __name__ == "__main__":
    H.main()
