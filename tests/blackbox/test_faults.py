"""Black-box fault tests of the promise that hookd never loses or double-runs
a delivery (README "Delivery guarantees", "A journal write that fails"),
with the SQLite journal, under load from several clients at once, sync and
async endpoints together.

The faults come from tests/blackbox/syncshim.c, loaded with LD_PRELOAD:
while the file it is told of (SYNCSHIM_FAULT) exists, every write and sync
of the journal's files fails with EIO or ENOSPC, a disk that fails for a
moment and recovers. Every hook run appends its delivery id to {tmp}/ran,
so that each run is counted; the tests hold each answer against those
counts:

- 202 accepted: runs exactly once (after a restart if need be);
- 200 ok: ran exactly once; 503 overloaded: never ran;
- 503 of an async acceptance whose sync failed: at most once;
- no delivery runs twice, before or after a restart.
"""

import http.client
import json
import os
import sqlite3
import sys
import threading
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (NF_INTEGRATION_ID, NF_INTEGRATION_NAME, NF_PREFIX, NF_TOKEN,  # noqa: E402
                     main, sample_json, sh, sqlite_only)
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config as config  # noqa: E402
from test_groupcommit import shim_path  # noqa: E402

EVENT = "build:start"  # the sample payload's event
# A hook's wait for the file {tmp}/NAME, bounded (8 s).
WAIT_FOR = ("i=0; while [ ! -e '{tmp}/%s' ] && [ $i -lt 160 ]; do sleep 0.05; i=$((i+1)); "
            "done\n")
RAN = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\nexit 0")
# A second endpoint, async, beside the sync one at /webhook.
ASYNC_ENDPOINT = ("[endpoint async]\npath = /async\nscheme = northflank\nsecret = %s\n"
                  "mode = async\n" % NF_TOKEN)


def post(port, path, eid, timeout=10.0):
    """A Northflank delivery of the sample payload; (HTTP status, the
    answer's status, its error)."""
    data = json.dumps(sample_json()).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, data, {
            "Content-Type": "application/json",
            NF_PREFIX + "Id": NF_INTEGRATION_ID,
            NF_PREFIX + "Name": NF_INTEGRATION_NAME,
            NF_PREFIX + "Token": NF_TOKEN,
            NF_PREFIX + "Event-Id": eid,
            NF_PREFIX + "Event-Type": EVENT,
        })
        r = conn.getresponse()
        raw = r.read()
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = {}
        return r.status, obj.get("status"), obj.get("error")
    finally:
        conn.close()


class Load:
    """Clients that post new ids to the sync and the async endpoint until
    stopped (or `limit` each), recording every answer: {id: (path, status,
    said)}; an id whose request got no answer is in `unanswered`."""

    def __init__(self, h, clients=6, limit=400, prefix="f"):
        self.h = h
        self.prefix = prefix
        self.answers = {}
        self.unanswered = set()
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(k, limit))
                        for k in range(clients)]

    def client(self, k, limit):
        path = "/async" if k % 2 else "/webhook"
        for n in range(limit):
            if self.stop_ev.is_set():
                return
            eid = "%s%d-%d" % (self.prefix, k, n)
            try:
                got = post(self.h.port, path, eid)
            except OSError:
                with self.lock:
                    self.unanswered.add(eid)
                continue
            with self.lock:
                self.answers[eid] = (path,) + got

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)

    def count(self):
        with self.lock:
            return len(self.answers)


class Faults(unittest.TestCase):

    def shimmed(self, cfg):
        shim = shim_path()
        if not shim:
            self.skipTest("no C compiler for the shim")
        h = Hookd(cfg, {EVENT: RAN}, start=False)
        h.env.update(LD_PRELOAD=harness.shim_preload(self, shim), SYNCSHIM_FAULT=h.path("fault"))
        # The failing disk is logged at error, as it should be.
        h.check_no_secrets = lambda: harness.Hookd.check_no_secrets(h)
        h.start()
        return h

    def accept_in_line(self, h, ids):
        """Each of ids accepted (202) on /async, and the first running."""
        for eid in ids:
            self.assertEqual(post(h.port, "/async", eid)[:2], (202, "accepted"))
        self.assertIn(ids[0], h.wait_states(ids[:1], states=("running",), timeout=10))

    def fault(self, h, errno_name):
        h.write_file("fault", errno_name)

    def heal(self, h):
        os.unlink(h.path("fault"))

    def check_counts(self, h, answers, final):
        """Every answer against the runs counted so far; final: after the
        restart, when every 202 must have run."""
        ran = Counter(h.ran())
        twice = {eid: n for eid, n in ran.items() if n > 1}
        self.assertEqual(twice, {}, "ran more than once")
        unknown = [eid for eid in ran if eid not in answers]
        wrong = {}
        for eid, (path, status, said, error) in answers.items():
            n = ran.get(eid, 0)
            if status == 200 and said == "ok" and n != 1:
                wrong[eid] = (status, said, n)
            elif (status == 503 and said == "overloaded" and
                  error != "cannot sync the journal" and n != 0):
                wrong[eid] = (status, said, n)
            elif status == 202 and final and n != 1:
                wrong[eid] = (status, said, n)
            elif status not in (200, 202, 503):
                wrong[eid] = (status, said, n)
        self.assertEqual(wrong, {}, "answer and runs disagree (status, said, runs)")
        return ran, unknown

    def fail_under_load(self, faults, felt):
        """Six clients, sync and async, while the journal fails four times
        for 0.5 s (faults: the switch file's words, in turn); felt: the
        answers and the log line the faults must have caused. (0.5 s: on a
        loaded machine the clients must still get requests in while the
        journal fails.)"""
        cfg = config(server="max_running = 4\n", extra=ASYNC_ENDPOINT)
        with self.shimmed(cfg) as h:
            with Load(h, clients=6, limit=2000) as load:
                self.assertTrue(harness.wait_until(lambda: load.count() >= 60, 20))
                for k in range(4):
                    self.fault(h, faults[k % len(faults)])
                    time.sleep(0.5)
                    self.heal(h)
                    time.sleep(0.4)
            answers = dict(load.answers)
            said = Counter(answers.values())
            # The faults were felt, and said so; deliveries went through too.
            for answer in felt[0] + [("/async", 202, "accepted", None),
                                     ("/webhook", 200, "ok", None)]:
                self.assertGreater(said[answer], 0, said)
            self.assertIsNotNone(h.wait_log(felt[1], timeout=0.1))
            accepted = [eid for eid, a in answers.items() if a[1] == 202]
            rows = h.wait_states(accepted, timeout=30)
            self.assertEqual(Counter(r["state"] for r in rows.values()),
                             Counter(succeeded=len(accepted)))
            time.sleep(1.5)
            self.check_counts(h, answers, final=False)
            h.stop()
            h.start()
            h.wait_states(accepted, timeout=30)
            time.sleep(1.5)
            ran, unknown = self.check_counts(h, answers, final=True)
            self.assertEqual(unknown, [], "ran with no answer")

    @sqlite_only
    def test_journal_writes_fail_for_moments_under_load(self):
        lost = "cannot write the journal"
        self.fail_under_load(["ENOSPC", "EIO"], ([("/webhook", 503, "overloaded", lost),
                                                  ("/async", 503, "overloaded", lost)],
                                                 "a batch of writes was lost"))

    @sqlite_only
    def test_journal_syncs_fail_for_moments_under_load(self):
        # An acceptance whose sync failed is answered 503 and may run
        # (README "Async mode"): at most once, as every other.
        self.fail_under_load(["SYNC"], ([("/async", 503, "overloaded",
                                          "cannot sync the journal")],
                                        "cannot sync the write-ahead log: Input/output "
                                        "error; deliveries answered 202 since may not survive "
                                        "a power loss: treat the disk as failing"))

    @sqlite_only
    def test_start_lost_keeps_the_key(self):
        """Three async deliveries of one serialize key. As the first ends,
        the batch that records its outcome and the second's start is lost
        (one write of the journal fails): the second keeps its key and its
        slot and begins again a second later, ahead of the third. All run
        once, in arrival order, and no attempt failed; the second's row
        said running while its hook ran. (Its start used to be written
        alone, and its hook ran though that write failed, its row still
        queued: a crash then would have run it again as the same attempt.
        Its start lost with a batch failed its attempt with a 503, and the
        third ran first while the second waited 30 s for its retry.)"""
        hook = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                  "case $HOOK_ID in\n"
                  "key-first) " + WAIT_FOR % "go" + " echo 'EIO ONCE' > '{tmp}/fault';;\n"
                  "key-second) " + WAIT_FOR % "go2" + ";;\n"
                  "esac\nexit 0")
        ep = ASYNC_ENDPOINT + "serialize = data.service.id\nretries = 3\nretry_backoff = 30s\n"
        h = self.shimmed(config(server="max_running = 4\n", extra=ep))
        h.write_hook(EVENT, hook)
        ids = ["key-first", "key-second", "key-third"]
        with h:
            self.accept_in_line(h, ids)
            h.write_file("go", "")
            line = h.wait_log("its start was lost with a journal batch; it keeps its place "
                              "and its key", timeout=10)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn("id=key-second", line)
            self.assertFalse(os.path.exists(h.path("fault")), "the one failure not had")
            self.assertTrue(harness.wait_until(lambda: "key-second" in h.ran(), 10))
            shown = json.loads(h.cli("show", "--json", "key-second").stdout)
            self.assertEqual(shown["state"], "running", shown)
            h.write_file("go2", "")
            rows = h.wait_states(ids, timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(ids, "succeeded"), rows)
            self.assertEqual(h.ran(), ids)
            shown = json.loads(h.cli("show", "--json", "key-second").stdout)
            self.assertEqual([(a["attempt"], a["status"]) for a in shown["attempt_list"]],
                             [(1, "ok")])

    @sqlite_only
    def test_row_deleted_by_hand_leaves_at_once(self):
        """Three async deliveries of one serialize key; while the first
        runs, the second's row is deleted from journal.db by hand. As its
        turn comes it cannot be read back: its row is gone, which no wait
        brings back, so it leaves at once with a line that says so, and the
        third runs next. (It used to keep its key ten seconds, logged as a
        read that might pass, then fail an attempt it never had.)"""
        hook = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                  "[ \"$HOOK_ID\" = gone-first ] && { " + WAIT_FOR % "go" + " }\nexit 0")
        ep = ASYNC_ENDPOINT + "serialize = data.service.id\nretries = 3\nretry_backoff = 30s\n"
        h = Hookd(config(server="max_running = 4\n", extra=ep), {EVENT: hook})
        # The deleted row is logged at error, as it should be.
        h.check_no_secrets = lambda: harness.Hookd.check_no_secrets(h)
        ids = ["gone-first", "gone-second", "gone-third"]
        with h:
            self.accept_in_line(h, ids)
            db = sqlite3.connect(os.path.join(h.state, "journal.db"), timeout=10)
            with db:
                n = db.execute("DELETE FROM deliveries WHERE delivery_id = ?", ("gone-second",)).rowcount
            db.close()
            self.assertEqual(n, 1)
            h.write_file("go", "")
            line = h.wait_log("its row is no longer pending", timeout=10)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn("id=gone-second", line)
            self.assertIn("level=error", line)
            rows = h.wait_states(["gone-first", "gone-third"], timeout=10)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             {"gone-first": "succeeded", "gone-third": "succeeded"}, rows)
            self.assertEqual(h.ran(), ["gone-first", "gone-third"])
            # No wait for a row that will not come back, and no attempt.
            text = h.log_text()
            self.assertNotIn("tries again each second", text)
            outcomes = [l for l in text.splitlines()
                        if "msg=delivery " in l and "id=gone-second " in l
                        and "status=accepted" not in l]
            self.assertEqual(outcomes, [])

    @sqlite_only
    def test_start_lost_keeps_the_replay_mark(self):
        """A replay of a failed async delivery with a serialize key waits
        for its key; as the delivery ahead of it ends, the batch with its
        start is lost (one write fails): it begins again a second later
        (job_begin_later), the same attempt, still the replay. Its log line
        says replay=true, as `show` does (the lost start's reset of the
        attempt used to take the replay mark off it)."""
        hook = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                  "case $HOOK_ID in\n"
                  "rk-first) " + WAIT_FOR % "go" + " echo 'EIO ONCE' > '{tmp}/fault';;\n"
                  "rk-replayed) [ \"$HOOK_ATTEMPT\" = 1 ] && exit 1;;\n"
                  "esac\nexit 0")
        ep = ASYNC_ENDPOINT + "serialize = data.service.id\nretries = 0\n"
        h = self.shimmed(config(server="max_running = 4\n", extra=ep))
        h.write_hook(EVENT, hook)
        with h:
            self.assertEqual(post(h.port, "/async", "rk-replayed")[:2], (202, "accepted"))
            rows = h.wait_states(["rk-replayed"], states=("failed",), timeout=10)
            self.assertEqual(rows["rk-replayed"]["state"], "failed", rows)
            self.assertEqual(post(h.port, "/async", "rk-first")[:2], (202, "accepted"))
            self.assertIn("rk-first", h.wait_states(["rk-first"], states=("running",),
                                                    timeout=10))
            r = h.cli("replay", "rk-replayed")
            self.assertEqual(r.returncode, 0, r.stderr)
            h.write_file("go", "")
            line = h.wait_log("its start was lost with a journal batch", timeout=10)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn("id=rk-replayed", line)
            rows = h.wait_states(["rk-first", "rk-replayed"], timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             {"rk-first": "succeeded", "rk-replayed": "succeeded"}, rows)
            self.assertEqual(h.ran(), ["rk-replayed", "rk-first", "rk-replayed"])
            self.assertRegex(h.cli("show", "rk-replayed").stdout, r"\nattempt 2: replay, ")
            line = h.wait_log("msg=delivery", "id=rk-replayed", "status=ok", timeout=5)
            self.assertIsNotNone(line, h.log_text())
            self.assertEqual(harness.parse_logfmt(line).get("replay"), "true", line)

    def test_replay_not_recorded_runs_nothing(self):
        """A replay whose record in the journal fails (one write fails) is
        refused with the journal's error, and nothing runs; the next one
        runs. (The failed record was not looked at: the replay ran while
        its row said failed, and `hookd replay` said queued.)"""
        hook = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                  "[ \"$HOOK_ATTEMPT\" = 1 ] && exit 1\nexit 0")
        ep = ASYNC_ENDPOINT + "retries = 0\n"
        h = self.shimmed(config(extra=ep))
        h.write_hook(EVENT, hook)
        with h:
            self.assertEqual(post(h.port, "/async", "rp-one")[:2], (202, "accepted"))
            rows = h.wait_states(["rp-one"], states=("failed",), timeout=10)
            self.assertEqual(rows["rp-one"]["state"], "failed", rows)
            h.write_file("fault", "EIO ONCE")
            r = h.cli("replay", "rp-one")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("journal error: the replay could not be recorded", r.stderr)
            self.assertFalse(os.path.exists(h.path("fault")), "the one failure not had")
            time.sleep(1)
            self.assertEqual(h.ran(), ["rp-one"])
            shown = json.loads(h.cli("show", "--json", "rp-one").stdout)
            self.assertEqual(shown["state"], "failed", shown)
            r = h.cli("replay", "rp-one")
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = h.wait_states(["rp-one"], states=("succeeded",), timeout=10)
            self.assertEqual(rows["rp-one"]["state"], "succeeded", rows)
            self.assertEqual(h.ran(), ["rp-one", "rp-one"])

    def test_record_lost_while_waiting_for_a_slot(self):
        """One slot. A sync delivery that waits for it has its record lost
        with a batch: once the slot is free, it is answered 503 overloaded
        and does not run (it used to run, answered 200, with no row), and
        no outcome is kept for a row that is not there: one would be
        written again each second for ever, holding back an outcome lost
        with a later batch (that async delivery then stayed `running`, and
        ran again at the next start)."""
        hook = sh("[ -e '{tmp}/hold' ] && while [ -e '{tmp}/hold' ]; do sleep 0.05; done\n"
                  "echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                  "case $HOOK_ID in lose-*) echo EIO > '{tmp}/fault';; esac\nexit 0")
        cfg = config(server="max_running = 1\n", extra=ASYNC_ENDPOINT)
        h = self.shimmed(cfg)
        h.write_hook(EVENT, hook)
        with h:
            h.write_file("hold", "")
            first = threading.Thread(target=post, args=(h.port, "/webhook", "first"))
            first.start()
            self.assertIn("first", h.wait_states(["first"], states=("running",), timeout=10))
            # The waiting one's record goes with its batch.
            self.fault(h, "EIO")
            waiting = {}
            second = threading.Thread(target=lambda: waiting.update(
                r=post(h.port, "/webhook", "waiting")))
            second.start()
            self.assertIsNotNone(h.wait_log("a batch of writes was lost", timeout=10))
            self.heal(h)
            os.unlink(h.path("hold"))
            first.join(10)
            second.join(10)
            # README "A journal write that fails": not recorded, so 503
            # overloaded, and nothing of it runs.
            self.assertEqual(waiting.get("r"), (503, "overloaded", "cannot write the journal"))
            # An async delivery whose outcome the next batch loses (its
            # hook fails the disk as it ends): written again once healed.
            self.assertEqual(post(h.port, "/async", "lose-1")[:2], (202, "accepted"))
            self.assertIsNotNone(h.wait_log("may have been lost with a batch", "id=lose-1",
                                            timeout=10), h.log_text())
            self.heal(h)
            rows = h.wait_states(["lose-1"], timeout=15)
            self.assertEqual(rows["lose-1"]["state"], "succeeded", "its outcome never written")
            h.stop()
            h.start()
            time.sleep(1)
            ran = Counter(h.ran())
            self.assertEqual(ran["lose-1"], 1, "ran again after the restart")
            self.assertEqual(ran["first"], 1)
            self.assertEqual(ran["waiting"], 0, "ran with its record lost")
            self.assertIsNone(h.wait_log("was never written", timeout=0.1), h.log_text())


if __name__ == "__main__":
    main()
