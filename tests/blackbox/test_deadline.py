"""Black-box tests of sender deadlines (README "Delivery guarantees",
issue 17 point 5): respond_within answers a sync delivery that is not over
in time with 202 and lets it go on as a journaled async one (retried,
recovered after a crash); the github and slack schemes' defaults and what
`hookd check` says of them; a client that hangs up during a sync run is
logged as gone and its outcome is still recorded. The real binary on
127.0.0.1:0, real hook scripts.
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import main, new_id, nf_request, run_cli, sample_json, sh, wait_until  # noqa: E402
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config as config  # noqa: E402

EVENT = "build:start"  # the sample payload's event
WITHIN = "respond_within = 1s\nretry_backoff = 200ms\n"


def rec_hook(middle="", rc="0"):
    """Records `start ID ATTEMPT` and `end ID ATTEMPT` around middle, keeps
    its stdin in {tmp}/stdin.ID.ATTEMPT, then exits rc (shell text)."""
    return sh(
        "echo $$ >> '{tmp}/pids'\n"
        "cat > \"{tmp}/stdin.$HOOK_ID.$HOOK_ATTEMPT\"\n"
        "echo \"start $HOOK_ID $HOOK_ATTEMPT\" >> '{tmp}/runs'\n"
        + middle + "\n"
        "echo \"end $HOOK_ID $HOOK_ATTEMPT\" >> '{tmp}/runs'\n"
        "exit " + rc)


def attempts_of(h, event_id, kind="start"):
    return [int(w[2]) for w in h.lines_of("runs")
            if len(w) == 3 and w[0] == kind and w[1] == event_id]


class Base(unittest.TestCase):
    maxDiff = None

    def assertStatus(self, r, http, status):
        self.assertEqual(r.status, http, r)
        self.assertEqual(r.json.get("status"), status, r)

    def delivery_lines(self, h, eid):
        return [l for l in h.logs() if "msg=delivery" in l and "id=%s " % eid in l]


class RespondWithin(Base):

    def test_slow_hook_answered_202_then_succeeds(self):
        # The hook runs 5 s: well past the 202 due at 1 s, and still running
        # for the resend below, with room for a slow, loaded machine.
        with Hookd(config(endpoint=WITHIN), {EVENT: rec_hook("sleep 5")}) as h:
            # A quick delivery is answered as ever.
            eid = new_id("slow")
            r = h.post(eid)
            self.assertStatus(r, 202, "accepted")
            self.assertGreaterEqual(r.elapsed, 0.9, r)
            self.assertLess(r.elapsed, 3.5, "202 must come at respond_within, not at the end")
            self.assertEqual(r.json["hooks"], [], "no hook is over yet")
            self.assertEqual(attempts_of(h, eid, "end"), [], "answered before the hook ended")
            # Pending meanwhile: a resend is told so, and runs nothing.
            self.assertEqual(h.post(eid).status, 409)
            rows = h.wait_states([eid], timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 1), rows)
            self.assertEqual(attempts_of(h, eid), [1])
            self.assertStatus(h.post(eid), 200, "duplicate")
            show = h.cli("show", eid).stdout
            self.assertRegex(show, r"(?m)^state:\s+succeeded$", show)
            lines = self.delivery_lines(h, eid)
            self.assertTrue(any("status=accepted http=202" in l and "mode=async" in l
                                and "client=accepted" in l for l in lines), lines)
            self.assertTrue(any("status=ok http=200" in l and "mode=async" in l
                                and "client=accepted" in l for l in lines), lines)

    def test_fast_hook_is_answered_by_the_hook(self):
        with Hookd(config(endpoint=WITHIN), {EVENT: rec_hook()}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            time.sleep(1.3)  # past respond_within: nothing more happens
            self.assertEqual(attempts_of(h, eid), [1])
            self.assertEqual(len(self.delivery_lines(h, eid)), 1, h.log_text())

    def test_failing_slow_hook_retried_with_its_whole_body(self):
        # Exit 75 (503, retryable) on attempt 1 after the 202; attempt 2, an
        # async retry, gets the whole body although the sync row kept it cut.
        hook = rec_hook("sleep 3", rc='$([ "$HOOK_ATTEMPT" -ge 2 ] && echo 0 || echo 75)')
        srv = "journal_body_max = 64\n"
        with Hookd(config(server=srv, endpoint=WITHIN), {EVENT: hook}) as h:
            eid = new_id("retry")
            body = dict(sample_json(), pad="x" * 500)
            self.assertStatus(h.post(eid, body=body), 202, "accepted")
            rows = h.wait_states([eid], timeout=20)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2), rows)
            self.assertEqual(attempts_of(h, eid), [1, 2])
            self.assertEqual(json.loads(h.read("stdin.%s.2" % eid)), body)
            show = h.cli("show", eid).stdout
            self.assertIn("http 503", show)

    def test_queued_delivery_answered_and_run_later(self):
        # One slot, taken by a slow delivery: the second waits in line past
        # its respond_within, is answered 202 there and runs once the slot
        # is free, as an async delivery.
        # The first runs 4 s: the second's 202 at 1 s and the slot freed at
        # the first's end stay apart on a slow, loaded machine.
        srv = "max_running = 1\n"
        with Hookd(config(server=srv, endpoint=WITHIN), {EVENT: rec_hook("sleep 4")}) as h:
            first, second = new_id("first"), new_id("second")
            t, out = h.post_bg(first)
            self.assertTrue(wait_until(lambda: attempts_of(h, first), 5))
            r = h.post(second)
            self.assertStatus(r, 202, "accepted")
            self.assertLess(r.elapsed, 3.0, r)
            self.assertEqual(attempts_of(h, second), [], "it was still waiting")
            t.join(10)
            self.assertStatus(out[0], 202, "accepted")
            rows = h.wait_states([first, second], timeout=25)
            self.assertEqual({k: (v["state"], v["attempts"]) for k, v in rows.items()},
                             {first: ("succeeded", 1), second: ("succeeded", 1)})
            self.assertEqual(attempts_of(h, second), [1])
            lines = self.delivery_lines(h, second)
            self.assertTrue(any("status=ok" in l and "client=accepted" in l for l in lines),
                            lines)

    def test_queued_delivery_answered_then_kill9_runs_as_its_first_attempt(self):
        # Handed over while it waits for the one slot (recorded queued, it
        # never ran), then a crash: recovered as an async delivery, it runs
        # after the restart as attempt 1 (no interrupted attempt).
        hook = rec_hook("while [ -e \"{tmp}/block.$HOOK_ID\" ]; do sleep 0.05; done")
        srv = "max_running = 1\n"
        with Hookd(config(server=srv, endpoint=WITHIN), {EVENT: hook}) as h:
            first, second = new_id("first"), new_id("second")
            h.write_file("block." + first, "")
            t, out = h.post_bg(first)
            self.assertTrue(wait_until(lambda: attempts_of(h, first), 5))
            self.assertStatus(h.post(second), 202, "accepted")
            self.assertEqual(h.event_of(second)["state"], "queued")
            h.kill9()
            h.kill_orphaned_hooks()
            t.join(5)
            os.unlink(h.path("block." + first))
            h.start()
            rows = h.wait_states([second], timeout=10)
            self.assertEqual((rows[second]["state"], rows[second]["attempts"]),
                             ("succeeded", 1), rows)
            self.assertEqual(attempts_of(h, second), [1])
            self.assertNotIn("interrupted", h.cli("show", second).stdout)

    def test_kill9_after_the_202_recovered_and_completed(self):
        hook = rec_hook("[ -e '{tmp}/block' ] && sleep 30")
        srv = "journal_body_max = 64\n"
        with Hookd(config(server=srv, endpoint=WITHIN), {EVENT: hook}) as h:
            h.write_file("block", "")
            eid = new_id("crash")
            body = dict(sample_json(), pad="y" * 300)
            self.assertStatus(h.post(eid, body=body), 202, "accepted")
            h.kill9()
            h.kill_orphaned_hooks()
            os.unlink(h.path("block"))
            h.start()
            rows = h.wait_states([eid], timeout=10)
            # The run the crash cut short counts as attempt 1.
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2), rows)
            self.assertEqual(attempts_of(h, eid, "end"), [2])
            self.assertEqual(json.loads(h.read("stdin.%s.2" % eid)), body)
            self.assertIn("status interrupted", h.cli("show", eid).stdout)


    def test_sigterm_keeps_the_key_order_of_a_handed_over_delivery(self):
        # README "serialize": same key, arrival order, also across a stop.
        # `first` runs (or, max_running = 1, holds the slot); `handed`
        # waits behind it and is handed over (202, async); `last`, sync,
        # waits behind `handed`; SIGTERM. `last` runs before hookd stops,
        # so `handed` must too, before it, not be left to the next start.
        hook = sh("echo \"start $HOOK_ID $HOOK_ATTEMPT\" >> '{tmp}/runs'\n"
                  "sleep $HOOK_DATA_SLEEP\n")
        for slots, first_key in ((2, "A"), (1, "B")):
            with self.subTest(max_running=slots), \
                    Hookd(config(server="max_running = %d\n" % slots,
                                 endpoint="respond_within = 700ms\nserialize = data.k\n"),
                          {EVENT: hook}) as h:
                def body(key, sleep):
                    b = sample_json()
                    b["data"].update(k=key, sleep=sleep)
                    return b
                first, handed, last = new_id("first"), new_id("handed"), new_id("last")
                t1, o1 = h.post_bg(first, body=body(first_key, 3))
                self.assertTrue(wait_until(lambda: attempts_of(h, first), 5))
                t2, o2 = h.post_bg(handed, body=body("A", 0))
                t2.join(5)
                self.assertStatus(o2[0], 202, "accepted")
                t3, o3 = h.post_bg(last, body=body("A", 0))
                self.assertTrue(wait_until(lambda: h.event_of(last), 5))
                rc, _ = h.stop()
                self.assertEqual(rc, 0)
                for t in (t1, t3):
                    t.join(5)
                order = [w[1] for w in h.lines_of("runs") if w[0] == "start"]
                self.assertEqual(order, [first, handed, last], h.log_text())
                self.assertTrue(h.log_lines("msg=stopped left_queued=0"), h.log_text())


class LogKeys(Base):
    """README "Logs and signals": every line about a delivery carries its
    keys (endpoint, event, id, attempt from 2 on) as keys, so that a
    search for id=ID finds all of them; none says the id in its words only."""

    def lines_about(self, h, eid):
        """Every log line that mentions eid, parsed; each must have it as id."""
        lines = [l for l in h.logs() if eid in l]
        fields = [harness.parse_logfmt(l) for l in lines]
        for line, f in zip(lines, fields):
            self.assertEqual((f.get("id"), f.get("endpoint"), f.get("event")),
                             (eid, "northflank", EVENT), line)
        return fields

    def test_handoff_and_replay_lines_are_keyed(self):
        hook = rec_hook('echo "working on $HOOK_ID"; [ "$HOOK_ATTEMPT" = 1 ] && sleep 3')
        with Hookd(config(endpoint=WITHIN), {EVENT: hook}) as h:
            eid = new_id("keyed")
            self.assertStatus(h.post(eid), 202, "accepted")
            h.wait_states([eid], timeout=10)
            r = h.cli("replay", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "replay=true"),
                                 h.log_text())
            fields = self.lines_about(h, eid)
            stages = [(f["msg"], f.get("attempt"), f.get("status"), f.get("client"),
                       f.get("replay")) for f in fields if f["msg"] != "output"]
            self.assertEqual(stages, [
                ("delivery", None, "accepted", "accepted", None),  # the 202 at respond_within
                ("delivery", None, "ok", "accepted", None),        # its outcome
                ("replaying delivery", "2", None, None, None),      # hookd replay queued it
                ("delivery", "2", "ok", None, "true"),              # the replay's outcome
            ], fields)
            self.assertEqual([f.get("attempt") for f in fields if f["msg"] == "output"],
                             [None, "2"], fields)

    def test_interrupted_delivery_line_is_keyed(self):
        hook = rec_hook("[ -e '{tmp}/block' ] && sleep 30")
        with Hookd(config(endpoint=WITHIN), {EVENT: hook}) as h:
            h.write_file("block", "")
            eid = new_id("cut")
            self.assertStatus(h.post(eid), 202, "accepted")
            h.kill9()
            h.kill_orphaned_hooks()
            os.unlink(h.path("block"))
            h.start()
            rows = h.wait_states([eid], timeout=10)
            self.assertEqual(rows[eid]["attempts"], 2, rows)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=2"),
                                 h.log_text())
            fields = self.lines_about(h, eid)
            [cut] = [f for f in fields if f["msg"] == "delivery interrupted"]
            # The run the crash cut short was attempt 1; queued again.
            self.assertEqual((cut.get("attempt"), cut["state"], cut["error"]),
                             (None, "queued", "interrupted"), cut)
            self.assertEqual([(f["msg"], f.get("attempt"), f.get("status")) for f in fields],
                             [("delivery", None, "accepted"), ("delivery interrupted", None, None),
                              ("delivery", "2", "ok")], fields)


class ClientGone(Base):

    def test_client_that_hangs_up_is_logged_gone(self):
        # No respond_within here (a northflank endpoint): the run goes on
        # sync, its client closes the connection after 0.3 s.
        with Hookd(config(), {EVENT: rec_hook("sleep 1.2")}) as h:
            eid = new_id("gone")
            s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
            s.sendall(nf_request(eid))
            self.assertTrue(wait_until(lambda: attempts_of(h, eid), 5))
            s.close()
            rows = h.wait_states([eid], timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 1), rows)
            line = h.wait_log("msg=delivery", "id=%s " % eid, "status=ok", timeout=5)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn("client=gone", line)
            self.assertEqual(attempts_of(h, eid, "end"), [1])
            # The daemon serves on.
            self.assertStatus(h.post(new_id()), 200, "ok")

    def test_client_that_waits_is_not_gone(self):
        with Hookd(config(), {EVENT: rec_hook("sleep 0.3")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            line = h.wait_log("msg=delivery", "id=%s " % eid, timeout=5)
            self.assertNotIn("client=", line)


GH_SECTION = "[endpoint gh]\npath = /gh\nscheme = github\nsecret = s3cret-s3cret-s3cret\n"
SLACK_SECTION = "[endpoint sl]\npath = /sl\nscheme = slack\nsecret = s3cret-s3cret-s3cret\n"


class Check(Base):
    """What `hookd check` says of respond_within, and when the config refuses it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hookd-deadline-")
        os.mkdir(os.path.join(self.tmp, "hooks.d"))
        hook = os.path.join(self.tmp, "hooks.d", "ping")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(hook, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def check(self, text):
        path = os.path.join(self.tmp, "hookd.ini")
        with open(path, "w") as f:
            f.write("[server]\nlisten = 127.0.0.1:0\nhooks_dir = %s/hooks.d\n" % self.tmp + text)
        p = run_cli(["check"], config=path)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_scheme_defaults_with_state_dir(self):
        rc, out, err = self.check("state_dir = %s/state\n" % self.tmp + GH_SECTION
                                  + SLACK_SECTION
                                  + "[endpoint nf]\npath = /nf\nscheme = northflank\n"
                                  "secret = s3cret-s3cret-s3cret\n")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("endpoint gh:", out)
        self.assertIn("  respond_within 8s (the scheme's default)\n", out)
        self.assertIn("  respond_within 2500ms (the scheme's default)\n", out)
        nf = out.split("endpoint nf:")[1]
        self.assertNotIn("respond_within", nf)
        self.assertNotIn("note:", out)

    def test_set_in_the_section(self):
        rc, out, err = self.check("state_dir = %s/state\n" % self.tmp + GH_SECTION
                                  + "respond_within = 5s\n")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("  respond_within 5s\n", out)
        rc, out, err = self.check("state_dir = %s/state\n" % self.tmp + GH_SECTION
                                  + "respond_within = 0\n")
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("respond_within", out)

    def test_off_without_state_dir_and_said_so(self):
        rc, out, err = self.check(GH_SECTION + SLACK_SECTION)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("  note: respond_within is off without state_dir: a github sender", out)
        self.assertIn("  note: respond_within is off without state_dir: a slack sender", out)
        # A note, not a warning: --strict passes.
        path = os.path.join(self.tmp, "hookd.ini")
        self.assertEqual(run_cli(["check", "--strict"], config=path).returncode, 0)

    def test_set_without_state_dir_is_an_error(self):
        rc, out, err = self.check(GH_SECTION + "respond_within = 5s\n")
        self.assertEqual(rc, 2, out + err)
        self.assertIn("respond_within needs [server] state_dir or journal (or 0 for off)", err)
        rc, out, err = self.check(GH_SECTION + "respond_within = 0\n")
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("respond_within", out, "said off: no note")


if __name__ == "__main__":
    main()
