"""Black-box tests of the delivery journal, idempotency, async mode (a run whose
hooks dir cannot be read among them), retries,
recovery after a crash, serialization keys and the journal commands
(README "Command line", "HTTP answers", "The journal"; issue 3). The real binary on 127.0.0.1:0, real hook scripts.

The same file runs against the SQLite journal (bb_journal) and, with
HOOKD_TEST_JOURNAL=postgresql, against the PostgreSQL one (bb_journal_pg; a
new database of the tests' own cluster for each daemon, harness {journal}).
The few tests about SQLite's file itself are marked sqlite_only.

Hooks record what they see by appending one short line a run to a file
({tmp}/runs): a single write(2) to an O_APPEND file, so concurrent hooks never
interleave within a line and no lock is needed.
"""

import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (NF_INTEGRATION_ID, NF_INTEGRATION_NAME, NF_PREFIX, NF_TOKEN,  # noqa: E402
                     binary_has_asan, main, new_id, nf_request, sh, sample_json, sqlite_only,
                     status_kb, wait_until)
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config as config  # noqa: E402

EVENT = "build:start"  # the sample payload's event


def rec_hook(middle="", rc="0"):
    """A hook that records `start ID ATTEMPT T` and `end ID ATTEMPT T` (T:
    seconds since the epoch) around `middle`, then exits rc (shell text)."""
    return sh(
        "echo $$ >> '{tmp}/pids'\n"
        "echo \"start $HOOK_ID $HOOK_ATTEMPT $(date +%s.%N)\" >> '{tmp}/runs'\n"
        + middle + "\n"
        "echo \"end $HOOK_ID $HOOK_ATTEMPT $(date +%s.%N)\" >> '{tmp}/runs'\n"
        "exit " + rc)


# Shell text that waits (8 s at most, under the tests' 10 s timeout) until
# the test writes {tmp}/go: a hook that must still be running at some step
# of the test, however slowly a loaded machine gets there.
GO = harness.WAIT_FOR_GO.rstrip("\n")


def runs(h, kind="start"):
    """[(id, attempt, time)] of the recorded starts (or ends), in file order."""
    return [(w[1], int(w[2]), float(w[3])) for w in h.lines_of("runs")
            if len(w) == 4 and w[0] == kind]


def attempts_of(h, event_id, kind="start"):
    return [a for (i, a, _) in runs(h, kind) if i == event_id]


class Base(unittest.TestCase):
    maxDiff = None

    def assertStatus(self, r, http, status):
        self.assertEqual(r.status, http, r)
        self.assertEqual(r.json.get("status"), status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        self.assertNotIn(NF_TOKEN.encode(), r.raw)

    def wait_runs(self, h, n, kind="end", timeout=10.0):
        got = wait_until(lambda: len(runs(h, kind)) >= n, timeout)
        self.assertTrue(got, "expected %d %s lines, have %r" % (n, kind, runs(h, kind)))


# --------------------------------------------------------------------------
# idempotency, sync mode: with the journal and in memory

class Idempotency(Base):

    def same_id_three_times(self, state):
        with Hookd(config(state), {EVENT: rec_hook()}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            for _ in range(2):
                r = h.post(eid)
                self.assertStatus(r, 200, "duplicate")
                self.assertEqual(r.json["id"], eid)
                self.assertEqual(r.json["hooks"], [])
            self.assertEqual(attempts_of(h, eid), [1])
            # Another id is not a duplicate.
            other = new_id()
            self.assertStatus(h.post(other), 200, "ok")
            self.assertEqual(attempts_of(h, other), [1])

    def test_same_id_three_times_journal(self):
        self.same_id_three_times(True)

    def test_same_id_three_times_memory(self):
        self.same_id_three_times(False)

    def resend_while_running(self, state):
        hooks = {EVENT: rec_hook("sleep 1.5")}
        with Hookd(config(state), hooks) as h:
            eid = new_id()
            t, out = h.post_bg(eid)
            self.wait_runs(h, 1, "start")
            r = h.post(eid)
            self.assertStatus(r, 409, "running")
            ra = r.headers.get("retry-after", "")
            self.assertTrue(ra.isdigit() and int(ra) > 0, r)
            self.assertLess(r.elapsed, 1.0, "a 409 must not wait for the run")
            t.join(10)
            self.assertStatus(out[0], 200, "ok")
            self.assertStatus(h.post(eid), 200, "duplicate")
            self.assertEqual(attempts_of(h, eid), [1])

    def test_resend_while_running_409_journal(self):
        self.resend_while_running(True)

    def test_resend_while_running_409_memory(self):
        self.resend_while_running(False)

    def failing_until_third(self, state):
        # Exits 1 on attempts 1 and 2: the sender's resends run it again.
        hook = rec_hook(rc='$([ "$HOOK_ATTEMPT" -ge 3 ] && echo 0 || echo 1)')
        with Hookd(config(state), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 500, "failed")
            self.assertStatus(h.post(eid), 500, "failed")
            self.assertStatus(h.post(eid), 200, "ok")
            self.assertStatus(h.post(eid), 200, "duplicate")
            self.assertEqual(attempts_of(h, eid), [1, 2, 3])
            if state:
                r = h.cli("show", eid)
                self.assertEqual(r.returncode, 0, r.stderr)
                out = r.stdout
                self.assertRegex(out, r"(?m)^attempts:\s+3$")
                self.assertRegex(out, r"(?m)^state:\s+succeeded$")
                for n, ex, http in ((1, 1, 500), (2, 1, 500), (3, 0, 200)):
                    self.assertRegex(out, r"attempt %d: .*http %d" % (n, http))
                # Each attempt lists its hook's exit, in order.
                exits = [int(x) for x in
                         __import__("re").findall(r"hook build:start: exit (\d+)", out)]
                self.assertEqual(exits, [1, 1, 0], out)
                row = h.event_of(eid)
                self.assertEqual((row["state"], row["attempts"], row["http"]),
                                 ("succeeded", 3, 200))

    def test_failed_resent_until_success_journal(self):
        self.failing_until_third(True)

    def test_failed_resent_until_success_memory(self):
        self.failing_until_third(False)

    def unhandled_duplicate(self, state):
        with Hookd(config(state), {}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "unhandled")
            # A hook appearing now changes nothing: it already succeeded.
            h.write_hook(EVENT, rec_hook())
            self.assertStatus(h.post(eid), 200, "duplicate")
            self.assertEqual(runs(h), [])
            if state:
                self.assertEqual(h.event_of(eid)["state"], "succeeded")

    def test_unhandled_counts_as_succeeded_journal(self):
        self.unhandled_duplicate(True)

    def test_unhandled_counts_as_succeeded_memory(self):
        self.unhandled_duplicate(False)

    def test_sync_overload_is_not_an_attempt(self):
        srv = "max_running = 1\nmax_queued = 1\n"
        with Hookd(config(server=srv), {EVENT: rec_hook("sleep 1")}) as h:
            first, second, late = new_id("first"), new_id("second"), new_id("late")
            t1, o1 = h.post_bg(first)
            self.wait_runs(h, 1, "start")
            t2, o2 = h.post_bg(second)
            self.assertTrue(wait_until(lambda: h.event_of(second), 5), "second not queued")
            r = h.post(late)
            self.assertStatus(r, 503, "overloaded")
            self.assertTrue(r.headers.get("retry-after", "").isdigit(), r)
            self.assertIsNone(h.event_of(late))
            for t, o in ((t1, o1), (t2, o2)):
                t.join(10)
                self.assertStatus(o[0], 200, "ok")
            # Its resend is its first attempt.
            self.assertStatus(h.post(late), 200, "ok")
            self.assertEqual(attempts_of(h, late), [1])


# --------------------------------------------------------------------------
# async mode

ASYNC = "mode = async\nretry_backoff = 200ms\n"


class Async(Base):

    def test_accepted_before_the_run(self):
        with Hookd(config(endpoint=ASYNC), {EVENT: rec_hook("sleep 2")}) as h:
            eid = new_id()
            r = h.post(eid)
            self.assertStatus(r, 202, "accepted")
            self.assertEqual(r.json["id"], eid)
            self.assertLess(r.elapsed, 1.0, "202 must not wait for the 2 s hook")
            # The hook then runs; meanwhile a resend is a 409.
            self.wait_runs(h, 1, "start")
            self.assertStatus(h.post(eid), 409, "running")
            # An answer given before anything ran is no attempt: neither
            # retried nor final (README "Logs and signals").
            line = h.wait_log("msg=delivery", "id=" + eid, "http=409")
            self.assertIsNotNone(line, "\n".join(h.logs()))
            self.assertNotRegex(line, r" (final|retry_in|next_attempt|attempts)=")
            self.wait_runs(h, 1, "end")
            rows = h.wait_states([eid])
            self.assertEqual(rows[eid]["state"], "succeeded", rows)
            self.assertStatus(h.post(eid), 200, "duplicate")
            self.assertEqual(attempts_of(h, eid), [1])

    def test_503_retried_with_backoff(self):
        # Exit 75 (-> 503) on attempts 1-3, then success: retries at about
        # 200, 400 and 800 ms after each failed attempt's end.
        hook = rec_hook(rc='$([ "$HOOK_ATTEMPT" -ge 4 ] && echo 0 || echo 75)')
        with Hookd(config(endpoint=ASYNC), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], timeout=15)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 4), rows)
            self.assertEqual(attempts_of(h, eid), [1, 2, 3, 4])
            starts = [t for (_, _, t) in runs(h, "start")]
            ends = [t for (_, _, t) in runs(h, "end")]
            gaps = [starts[n + 1] - ends[n] for n in range(3)]
            # A timer never fires early, so the lower bounds hold exactly
            # and alone show the spacing at least doubling; the upper ones
            # leave room for a busy machine.
            for n, (gap, want) in enumerate(zip(gaps, (0.2, 0.4, 0.8))):
                self.assertGreaterEqual(gap, want * 0.95, "retry %d came early: %r" % (n + 1, gaps))
                self.assertLess(gap, want + 0.8, "retry %d came late: %r" % (n + 1, gaps))
            self.assertGreater(gaps[2] / gaps[0], 2.0, gaps)
            out = h.cli("show", eid).stdout
            self.assertEqual(len(__import__("re").findall(r"http 503", out)), 3, out)

    def test_event_section_retries_and_a_mapped_503(self):
        """retries and retry_backoff from an [event] section (not the
        endpoint); an exit [status] maps to 503 is retried like 75; the
        last allowed attempt's failure is final."""
        extra = ("[event %s]\nmode = async\nretries = 2\nretry_backoff = 100ms\n"
                 "\n[status]\n3 = 503\n" % EVENT)
        with Hookd(config(extra=extra), {EVENT: rec_hook(rc="3")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], states=("failed",), timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"], rows[eid]["http"]),
                             ("failed", 3, 503), rows)
            self.assertEqual(attempts_of(h, eid), [1, 2, 3])
            ends = [t for (_, _, t) in runs(h, "end")]
            starts = [t for (_, _, t) in runs(h, "start")]
            self.assertGreaterEqual(starts[1] - ends[0], 0.095)
            self.assertGreaterEqual(starts[2] - ends[1], 0.19)

    def test_timeout_retried(self):
        hook = rec_hook('[ "$HOOK_ATTEMPT" -ge 2 ] || sleep 5')
        ep = ASYNC + "timeout = 300ms\n"
        with Hookd(config(endpoint=ep, server="kill_grace = 200ms\n"), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2), rows)
            self.assertEqual(attempts_of(h, eid), [1, 2])
            self.assertIn("http 504", h.cli("show", eid).stdout)

    def test_other_failure_is_final(self):
        with Hookd(config(endpoint=ASYNC), {EVENT: rec_hook(rc="1")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], ("failed",))
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"], rows[eid]["http"]),
                             ("failed", 1, 500), rows)
            time.sleep(0.8)  # four times the backoff: no retry comes
            self.assertEqual(attempts_of(h, eid), [1])
            # A failed delivery resent by its sender runs again, attempt 2.
            self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 2, "end")
            self.assertEqual(attempts_of(h, eid), [1, 2])

    def test_retries_exhausted_fail(self):
        ep = "mode = async\nretries = 2\nretry_backoff = 100ms\n"
        with Hookd(config(endpoint=ep), {EVENT: rec_hook(rc="75")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], ("failed",), timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"], rows[eid]["http"]),
                             ("failed", 3, 503), rows)
            time.sleep(0.6)
            self.assertEqual(attempts_of(h, eid), [1, 2, 3])
            self.assertIn(eid, [e["id"] for e in h.events("--failed")])

    def test_retry_and_final_said_in_the_log(self):
        """README "Logs and signals": an async attempt that will be retried
        says when (retry_in, next_attempt); the last one says final=true
        with the attempts made; a success says neither."""
        ep = "mode = async\nretries = 1\nretry_backoff = 300ms\n"
        with Hookd(config(endpoint=ep), {EVENT: rec_hook(rc="75")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            h.wait_states([eid], ("failed",), timeout=10)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "final=true"),
                                 h.log_text())
            accepted, first, last = [harness.parse_logfmt(ln)
                                     for ln in h.log_lines("msg=delivery", "id=" + eid)]
            self.assertEqual(accepted["status"], "accepted")
            self.assertNotRegex(h.log_lines("status=accepted", "id=" + eid)[0],
                                r" (final|retry_in|next_attempt)=")
            self.assertEqual((first["http"], first["mode"], first["retry_in"]),
                             ("503", "async", "300ms"), first)
            self.assertNotIn("final", first)
            due = datetime.strptime(first["next_attempt"], "%Y-%m-%dT%H:%M:%S.%fZ")
            due = due.replace(tzinfo=timezone.utc).timestamp()
            started = [t for (i, _, t) in runs(h, "start") if i == eid]
            self.assertEqual(len(started), 2)
            self.assertGreaterEqual(started[1], due - 0.05, "the retry came when the log said")
            self.assertLess(started[1], due + 1.0)
            self.assertEqual((last["final"], last["attempts"], last["attempt"]),
                             ("true", "2", "2"), last)
            self.assertNotIn("retry_in", last)
            self.assertNotIn("next_attempt", last)
            # A success, and a sync failure (its sender decides): neither.
            ok, sync = new_id("ok"), new_id("sync")
        with Hookd(config(endpoint=ep), {EVENT: rec_hook()}) as h:
            self.assertStatus(h.post(ok), 202, "accepted")
            line = h.wait_log("msg=delivery", "id=" + ok)
            self.assertIsNotNone(line, "\n".join(h.logs()))
            self.assertNotRegex(line, r" (final|retry_in|next_attempt|replay)=")
        with Hookd(config(), {EVENT: rec_hook(rc="75")}) as h:
            self.assertStatus(h.post(sync), 503, "failed")
            line = h.wait_log("msg=delivery", "id=" + sync)
            self.assertIsNotNone(line, "\n".join(h.logs()))
            self.assertNotRegex(line, r" (final|retry_in|next_attempt)=")

    def test_journal_max_overload(self):
        # One slot, a slow hook: one running and two queued make three pending.
        srv = "max_running = 1\njournal_max = 3\n"
        with Hookd(config(server=srv, endpoint=ASYNC), {EVENT: rec_hook("sleep 1")}) as h:
            ids = [new_id() for _ in range(3)]
            for eid in ids:
                self.assertStatus(h.post(eid), 202, "accepted")
            late = new_id()
            r = h.post(late)
            self.assertStatus(r, 503, "overloaded")
            ra = r.headers.get("retry-after", "")
            self.assertTrue(ra.isdigit() and int(ra) > 0, r)
            # A 503 is not an attempt: nothing recorded, nothing runs.
            self.assertNotIn(late, [e["id"] for e in h.events()])
            self.assertEqual(h.cli("show", late).returncode, 1)
            rows = h.wait_states(ids, timeout=15)
            self.assertTrue(all(rows[i]["state"] == "succeeded" for i in ids), rows)
            self.assertEqual(attempts_of(h, late), [])
            # With room again, the same id is accepted as new.
            self.assertStatus(h.post(late), 202, "accepted")
            self.assertEqual(h.wait_states([late])[late]["attempts"], 1)

    def test_409_says_the_state(self):
        """A resend of a pending delivery is a 409 whose status is its state:
        running, then queued behind it (max_running = 1)."""
        with Hookd(config(server="max_running = 1\n", endpoint=ASYNC),
                   {EVENT: rec_hook("sleep 1.5")}) as h:
            first, second = new_id("first"), new_id("second")
            self.assertStatus(h.post(first), 202, "accepted")
            self.wait_runs(h, 1, "start")
            self.assertStatus(h.post(second), 202, "accepted")
            for eid, state in ((first, "running"), (second, "queued")):
                r = h.post(eid)
                self.assertStatus(r, 409, state)
                self.assertEqual(r.json["error"], "this delivery is still pending")
                self.assertEqual(r.headers.get("retry-after"), "10")
            h.wait_states([first, second])
            self.assertEqual(attempts_of(h, first) + attempts_of(h, second), [1, 1])

    def test_retry_wait_is_pending_and_failed(self):
        # The backoff is long enough for the checks below (a post and
        # three CLI calls, slow on a loaded machine) to run before the
        # retry falls due; they are timed to show they did.
        ep = "mode = async\nretry_backoff = 6s\n"
        hook = rec_hook(rc='$([ "$HOOK_ATTEMPT" -ge 2 ] && echo 0 || echo 75)')
        with Hookd(config(endpoint=ep), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            rows = h.wait_states([eid], ("retry_wait",), timeout=10)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"], rows[eid]["http"]),
                             ("retry_wait", 1, 503), rows)
            # Waiting for a retry is pending: a resend is a 409, and
            # --failed lists it (its latest outcome is not 2xx).
            r = h.post(eid)
            self.assertStatus(r, 409, "retry_wait")
            self.assertTrue(r.headers.get("retry-after", "").isdigit(), r)
            self.assertEqual([e["id"] for e in h.events("--failed")], [eid])
            self.assertRegex(h.cli("show", eid).stdout, r"(?m)^next_due_at:")
            checked = time.time()
            rows = h.wait_states([eid], timeout=20)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2))
            self.assertEqual(h.events("--failed"), [])
            self.assertLess(checked, runs(h, "start")[1][2],
                            "the checks ran after the retry had begun")

    def test_retry_keeps_due_time_across_restart(self):
        # The retry is due 4 s after attempt 1 ended. hookd is down for a
        # second or more in between: a due time kept runs the retry at
        # end + 4 s (or at once, if the restart took longer than that); one
        # reckoned again from the restart would come 4 s after it, and one
        # lost would come at once. Bounds from recorded times, not from a
        # restart assumed quick (slow under sanitizers on a loaded machine).
        backoff = 4.0
        ep = "mode = async\nretry_backoff = 4s\n"
        hook = rec_hook(rc='$([ "$HOOK_ATTEMPT" -ge 2 ] && echo 0 || echo 75)')
        with Hookd(config(endpoint=ep), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            h.wait_states([eid], ("retry_wait",), timeout=10)
            end1 = runs(h, "end")[0][2]
            h.stop()
            time.sleep(1)
            restarted = time.time()
            h.start()
            rows = h.wait_states([eid], timeout=20)
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2))
            self.assertEqual(attempts_of(h, eid), [1, 2])
            start2 = runs(h, "start")[1][2]
            gap = start2 - end1
            self.assertGreater(gap, backoff - 0.2, "the retry lost its due time: %.2f s" % gap)
            self.assertLess(start2, restarted + backoff,
                            "the retry came late (%.2f s after attempt 1, %.2f s after the "
                            "restart began): its due time was reckoned from the restart"
                            % (gap, start2 - restarted))

    def test_retry_cut_short_by_sigterm_keeps_its_backoff(self):
        # Attempt 2 fails (75) while hookd shuts down: the next start owns
        # the retry, due backoff * 2^(2-1) = 2 s after that attempt's end.
        ep = "mode = async\nretry_backoff = 1s\n"
        hook = rec_hook('[ "$HOOK_ATTEMPT" = 2 ] && sleep 1', rc="75")
        with Hookd(config(endpoint=ep), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 2, "start", timeout=10)
            rc, _ = h.stop()
            out = h.cli("show", eid).stdout
            self.assertRegex(out, r"(?m)^state:\s+retry_wait$")
            self.assertRegex(out, r"(?m)^attempts:\s+2$")
            t = {}
            for k in ("updated_at", "next_due_at"):
                m = __import__("re").search(r"(?m)^%s:\s+(\S+)Z$" % k, out)
                t[k] = __import__("datetime").datetime.fromisoformat(m.group(1))
            wait = (t["next_due_at"] - t["updated_at"]).total_seconds()
            self.assertTrue(1.9 <= wait <= 2.1, "retry due %.3f s after the attempt" % wait)

    def test_retries_keep_the_config_they_came_with_across_a_reload(self):
        # README "Logs and signals", SIGHUP: a pending delivery's later
        # attempts run under the config it was accepted with (its hooks
        # dir, its retries); new deliveries take the reloaded one.
        ep = "mode = async\nretry_backoff = 300ms\nretries = 2\n"
        with Hookd(config(endpoint=ep), {EVENT: rec_hook(rc="75")}) as h:
            os.makedirs(h.path("hooks2"))
            h.write_hook(EVENT, rec_hook().replace("start $HOOK_ID", "new $HOOK_ID"),
                         hooks_dir=h.path("hooks2"))
            old = new_id("old")
            self.assertStatus(h.post(old), 202, "accepted")
            self.wait_runs(h, 1, "end")
            cfg = h.read("hookd.ini")
            h.write_config(cfg.replace("hooks_dir = " + h.hooks, "hooks_dir = {tmp}/hooks2")
                           .replace("retries = 2", "retries = 0"))
            h.reload()
            self.assertEqual(h.wait_states([old], ("failed",), 10)[old]["attempts"], 3)
            self.assertEqual(attempts_of(h, old), [1, 2, 3])
            new = new_id("new")
            self.assertStatus(h.post(new), 202, "accepted")
            self.assertEqual(h.wait_states([new], timeout=5)[new]["state"], "succeeded", h.log_text())
            self.assertEqual([w[0] for w in h.lines_of("runs") if w[1] == new], ["new", "end"])

    def test_async_needs_state_dir(self):
        with Hookd(config(False, endpoint=ASYNC), start=False) as h:
            r = h.cli("check")
            self.assertEqual(r.returncode, 2, r)
            self.assertIn("state_dir", r.stderr)


# --------------------------------------------------------------------------
# crashes and shutdown

class Reload(Base):
    """The journal opens at start: a SIGHUP cannot add, drop or move it."""

    def reload_refused(self, before, after, key):
        h = Hookd(before, {EVENT: rec_hook()})
        try:
            h.write_config(after)
            line = h.reload()
            self.assertIn("reload failed", line)
            self.assertIn("[server] %s changed" % key, line)
            self.assertIn("restart hookd", line)
            return h
        except BaseException:
            h.stop(check=False)
            h.cleanup()
            raise

    def finish(self, h):
        try:
            errors = [l for l in h.logs() if "level=error" in l]
            self.assertEqual(len(errors), 1, errors)  # the reload's, and no other
            h.stop()
        finally:
            h.cleanup()

    def test_reload_cannot_add_the_journal(self):
        # Without it, an async event is a config error at start; added by a
        # SIGHUP it would be answered 202 with nothing on disk.
        h = self.reload_refused(config(False), config(True, extra=(
            "[event %s]\nmode = async\n" % EVENT)), "state_dir")
        eid = new_id()
        r = h.post(eid)
        self.assertStatus(r, 200, "ok")  # the old config: sync, as before
        self.assertEqual(attempts_of(h, eid), [1])
        self.assertFalse(os.path.exists(h.state), "a journal appeared")
        self.finish(h)

    def test_reload_cannot_drop_or_move_the_journal(self):
        before = config(True, extra="[event %s]\nmode = async\n" % EVENT)
        moved = before.replace("state_dir = {state}", "state_dir = {tmp}/elsewhere")
        for what, after in (("dropped", config(False)), ("moved", moved)):
            with self.subTest(what):
                h = self.reload_refused(before, after, "state_dir")
                eid = new_id()
                self.assertStatus(h.post(eid), 202, "accepted")  # still journaled
                self.wait_runs(h, 1)
                self.assertFalse(os.path.exists(h.path("elsewhere")))
                self.finish(h)


class DiskFull(Base):
    """The journal's file system full: state_dir on a small tmpfs of its
    own (skipped where mounting one is not permitted)."""

    def setUp(self):
        self.fs = harness.tempfile.mkdtemp(prefix="hookd-bb-fs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.fs],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            os.rmdir(self.fs)
            self.skipTest("cannot mount a tmpfs here (root needed)")

    def tearDown(self):
        subprocess.run(["umount", self.fs])
        os.rmdir(self.fs)

    def daemon(self, hook, endpoint=""):
        cfg = config(endpoint=endpoint).replace("state_dir = {state}",
                                                "state_dir = %s/state" % self.fs)
        h = Hookd(cfg, {EVENT: hook})
        # The full disk is logged at error, as it should be.
        h.check_no_secrets = lambda: harness.Hookd.check_no_secrets(h)
        return h

    # A sync delivery's answer waits for the commit of its outcome
    # (README "The journal", Cost: "so that a resend after it is always a
    # duplicate"). When that commit fails (the disk filled while the hook
    # ran), the hook did run: the sender is answered 200, and the outcome
    # is written again until a commit takes it, so that the row does not
    # stay `running` (every resend a 409, and after a restart, failed and
    # run again).
    FILL = ("[ -e '{tmp}/fill' ] && dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null\n"
            "true")

    def room_again(self, h):
        os.unlink(h.path("fill"))
        os.unlink(os.path.join(self.fs, "filler"))

    @sqlite_only
    def test_outcome_lost_to_a_full_disk_is_written_again(self):
        with self.daemon(rec_hook(self.FILL % self.fs)) as h:
            self.assertStatus(h.post(new_id("warm")), 200, "ok")
            h.write_file("fill", "")
            eid = new_id("full")
            r = h.post(eid)
            self.assertEqual(attempts_of(h, eid, "end"), [1])
            self.room_again(h)
            if r.status == 200:
                # Answered ok: the journal says so once there is room, and
                # a resend is a duplicate.
                self.assertEqual(h.wait_states([eid], timeout=10)[eid]["state"], "succeeded")
                self.assertStatus(h.post(eid), 200, "duplicate")
                self.assertIsNotNone(h.wait_log("may have been lost with a batch", timeout=1),
                                     "the lost commit was not what happened:\n" + h.log_text())
            else:
                # Not recorded, and said so: the resend, with room again, runs.
                self.assertStatus(h.post(eid), 200, "ok")

    def fill_up(self):
        """The file system full now, from the test (no hook needed)."""
        fd = os.open(os.path.join(self.fs, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    @sqlite_only
    def test_new_delivery_not_recorded_is_overloaded_with_no_attempt(self):
        """The disk full before a new sync delivery comes: its record is lost
        with its batch, so its hook never starts; it is answered 503
        overloaded (README "HTTP answers"), logged with hooks=0, and counts
        no attempt; with room again its resend runs."""
        with self.daemon(rec_hook()) as h:
            self.assertStatus(h.post(new_id("warm")), 200, "ok")
            self.fill_up()
            eid = new_id("full")
            r = h.post(eid)
            self.assertStatus(r, 503, "overloaded")
            self.assertEqual(r.json.get("hooks"), [], r)
            self.assertEqual(r.json.get("error"), "cannot write the journal", r)
            self.assertIsNotNone(r.headers.get("retry-after"), r)
            self.assertEqual(attempts_of(h, eid), [], "the hook started")
            line = h.wait_log("msg=delivery", "id=" + eid, "http=503")
            self.assertIsNotNone(line, "\n".join(h.logs()))
            f = harness.parse_logfmt(line)
            self.assertEqual((f.get("status"), f.get("hooks")), ("overloaded", "0"), line)
            os.unlink(os.path.join(self.fs, "filler"))
            self.assertStatus(h.post(eid), 200, "ok")
            self.assertEqual(attempts_of(h, eid, "end"), [1])

    @sqlite_only
    def test_async_outcome_lost_to_a_full_disk_does_not_run_again(self):
        with self.daemon(rec_hook(self.FILL % self.fs), endpoint=ASYNC) as h:
            h.write_file("fill", "")
            eid = new_id("full")
            self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 1)
            self.assertIsNotNone(h.wait_log("may have been lost with a batch", timeout=10),
                                 "no lost commit:\n" + h.log_text())
            self.room_again(h)
            self.assertEqual(h.wait_states([eid], timeout=10)[eid]["state"], "succeeded")
            h.stop()
            h.start()
            time.sleep(0.5)
            self.assertEqual(attempts_of(h, eid, "start"), [1], "it ran again")

    @sqlite_only
    def test_lost_outcome_written_again_each_second_while_its_retry_waits(self):
        # README "A journal write that fails": an outcome lost with its
        # batch is written again every second. With its retry due (and so
        # waiting for that outcome), the turn poll writes it again every
        # 100 ms: each write a new lost batch and two error lines.
        hook = rec_hook("if [ -e '{tmp}/fill' ]; then dd if=/dev/zero of='%s/filler' "
                        "bs=4k 2>/dev/null; exit 75; fi" % self.fs)
        with self.daemon(hook, endpoint=ASYNC + "retries = 3\n") as h:
            h.write_file("fill", "")
            eid = new_id("full")
            self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 1, kind="start")
            self.assertIsNotNone(h.wait_log("may have been lost with a batch", timeout=10))
            before = h.log_text().count("a batch of writes was lost")
            time.sleep(3)
            lost = h.log_text().count("a batch of writes was lost") - before
            self.room_again(h)
            self.assertEqual(h.wait_states([eid], timeout=10)[eid]["state"], "succeeded")
            self.assertLessEqual(lost, 5, "written again %d times in 3 s" % lost)


class Crash(Base):

    def test_attempt_committed_before_the_hook_starts(self):
        # What the journal holds when a hook's first line runs (another
        # process reads only what is committed) is what a crash at that
        # moment would leave: the attempt, as running. Never a delivery
        # that did not start, to run again after a restart as the same
        # attempt.
        look = sh("seen=\"{tmp}/seen.$HOOK_ID\"\n"
                  "'%s' -c '{tmp}/hookd.ini' show \"$HOOK_ID\" > \"$seen\" 2>&1\n"
                  "exit 0" % harness.HOOKD_BIN)
        # A burst, so that hooks start while the loop is still busy with
        # the turn that recorded them (accepting async deliveries syncs
        # the journal's file each time).
        for mode, endpoint, answer in (("sync", "", (200, "ok")),
                                       ("async", ASYNC, (202, "accepted"))):
            with self.subTest(mode), Hookd(config(endpoint=endpoint), {EVENT: look}) as h:
                ids = [new_id(mode) for _ in range(24)]
                posts = [h.post_bg(eid) for eid in ids]
                for t, out in posts:
                    t.join(30)
                    self.assertTrue(out, "no answer")
                    self.assertStatus(out[0], *answer)
                self.assertEqual(set(h.wait_states(ids)), set(ids))
                for eid in ids:
                    seen = h.read("seen." + eid)
                    self.assertRegex(seen, r"(?m)^state:\s+running$", seen)
                    self.assertRegex(seen, r"(?m)^running:\s+1$", seen)

    def test_kill9_with_50_async_then_restart(self):
        srv = "max_running = 4\n"
        with Hookd(config(server=srv, endpoint=ASYNC), {EVENT: rec_hook("sleep 0.3")}) as h:
            ids = [new_id("k%02d" % n) for n in range(50)]
            for eid in ids:
                self.assertStatus(h.post(eid), 202, "accepted")
            # Let some finish, then kill while others run and most wait:
            # while a hook that started under 0.15 s ago runs (hooks of
            # 0.3 s start and end together, four at a time, so one near its
            # end may end before the kill, and with it all four).
            self.wait_runs(h, 6, "end")

            def running_fresh():
                ended = {i for (i, a, _) in runs(h, "end") if a == 1}
                now = time.time()
                return {i for (i, a, t) in runs(h, "start")
                        if a == 1 and i not in ended and now - t < 0.15}
            self.assertTrue(harness.wait_until(running_fresh, 5, step=0.005),
                            "no hook seen starting")
            seen_running = running_fresh()
            h.kill9()
            # The dead daemon's hooks, at once: a hook outlives hookd, and
            # one left to end would not count as running at the kill.
            h.kill_orphaned_hooks()
            # Those started and not ended were running when hookd died; a
            # hook it started a moment before dying may not have written
            # its start line (its row says running: attempt 2 below).
            ended = {i for (i, a, _) in runs(h, "end") if a == 1}
            started = {i for (i, a, _) in runs(h, "start") if a == 1}
            interrupted = started - ended
            self.assertTrue(interrupted, "nothing was running at the kill (seen running "
                            "just before: %r; the run log: %r)" % (seen_running, h.read("runs")))
            self.assertLess(len(started), 50, "everything had started before the kill")
            before = len(runs(h, "start"))

            h.start()
            rows = h.wait_states(ids, timeout=30)
            bad = {i: r for i, r in rows.items() if r["state"] != "succeeded"}
            self.assertEqual(bad, {}, "not all succeeded")
            self.assertEqual(len(rows), 50, "deliveries lost")
            listed = [e["id"] for e in h.events()]
            self.assertEqual(sorted(listed), sorted(ids), "each listed once")
            after = runs(h, "start")[before:]
            rerun = {}
            for (i, a, _) in after:
                rerun.setdefault(i, []).append(a)
            for eid in ids:
                row = rows[eid]
                ends = [a for (i, a, _) in runs(h, "end") if i == eid]
                self.assertIn(row["attempts"], ends, "%s: its last attempt never ended" % eid)
                if row["attempts"] == 2:
                    # Running at the kill (started, its end not recorded;
                    # its hook may not even have got to its first line):
                    # that run counts as an attempt, and the next says so.
                    self.assertEqual(rerun.get(eid), [2], eid)
                    self.assertIn("status interrupted", h.cli("show", eid).stdout)
                elif eid in started:
                    # Recorded as done before the kill: never run again.
                    self.assertEqual((row["attempts"], rerun.get(eid)), (1, None), eid)
                else:
                    # Queued at the kill: runs once, attempt 1.
                    self.assertEqual((row["attempts"], rerun.get(eid)), (1, [1]), eid)
                # Surely running at the kill: its hook had not even ended.
                if eid in interrupted:
                    self.assertEqual(row["attempts"], 2, eid)

    def test_recovered_delivery_is_whole(self):
        # A queued delivery keeps its whole body and its headers, even past
        # journal_body_max, so that it runs after a crash exactly as it would
        # have run: same stdin, same environment.
        srv = "max_running = 1\njournal_body_max = 64\n"
        dump = sh("echo $$ >> '{tmp}/pids'\n"
                  "[ -e '{tmp}/block' ] && sleep 30\n"
                  "cat > \"{tmp}/stdin.$HOOK_ID\"\n"
                  "env | grep '^HOOK_' | sort > \"{tmp}/env.$HOOK_ID\"\n")
        with Hookd(config(server=srv, endpoint=ASYNC), {EVENT: dump}) as h:
            h.write_file("block", "")
            first, second = new_id("first"), new_id("second")
            self.assertStatus(h.post(first), 202, "accepted")
            wait_until(lambda: (h.read("pids") or "").strip(), 5)
            body = dict(sample_json(), pad="x" * 300)
            self.assertStatus(h.post(second, body=body), 202, "accepted")
            h.kill9()
            h.kill_orphaned_hooks()
            os.unlink(h.path("block"))
            h.start()
            rows = h.wait_states([first, second], timeout=10)
            self.assertTrue(all(r["state"] == "succeeded" for r in rows.values()), rows)
            self.assertEqual(json.loads(h.read("stdin." + second)), body)
            env = dict(l.split("=", 1) for l in h.read("env." + second).splitlines())
            self.assertEqual(env["HOOK_ID"], second)
            self.assertEqual(env["HOOK_ATTEMPT"], "1")
            self.assertEqual(env["HOOK_DATA_SERVICE_ID"], "website")
            self.assertEqual(env["HOOK_PAD"], "x" * 300)
            self.assertEqual(env["HOOK_INTEGRATION_NAME"], NF_INTEGRATION_NAME)
            self.assertEqual(env["HOOK_INTEGRATION_ID"], NF_INTEGRATION_ID)
            self.assertEqual(env["HOOK_REMOTE_ADDR"], "127.0.0.1")
            self.assertEqual(env["HOOK_RECEIVED_AT"], rows[second]["received_at"])
            env1 = dict(l.split("=", 1) for l in h.read("env." + first).splitlines())
            self.assertEqual(env1["HOOK_ATTEMPT"], "2")  # interrupted once
            # Final now: the kept body is cut to journal_body_max.
            self.assertIn("cut at 64 of", h.cli("show", second).stdout)

    def test_sync_interrupted_left_to_the_sender(self):
        with Hookd(config(), {EVENT: rec_hook("[ -e '{tmp}/block' ] && sleep 30")}) as h:
            h.write_file("block", "")
            eid = new_id()
            t, out = h.post_bg(eid)
            self.wait_runs(h, 1, "start")
            h.kill9()
            h.kill_orphaned_hooks()
            t.join(5)
            os.unlink(h.path("block"))
            h.start()
            time.sleep(0.3)
            # Not run again by hookd; failed, the run counted.
            self.assertEqual(attempts_of(h, eid), [1])
            row = h.event_of(eid)
            self.assertEqual((row["state"], row["attempts"]), ("failed", 1), row)
            self.assertIn(eid, [e["id"] for e in h.events("--failed")])
            # The sender's resend runs it, attempt 2.
            self.assertStatus(h.post(eid), 200, "ok")
            self.assertEqual(attempts_of(h, eid), [1, 2])

    def test_interrupted_deliveries_counted_once_in_metrics(self):
        """README "Admin listener: health and metrics": each delivery is
        counted once, when it first ends. A sync delivery cut off by a
        crash ends at the next start, failed (recovery marks it so), and is
        counted then under its route; its sender's resend is one more
        attempt, not another delivery. An async one cut off runs again and
        is counted when it ends, once."""
        block = "while [ -e \"{tmp}/block.$HOOK_ID\" ]; do sleep 0.05; done"
        hooks = {EVENT: rec_hook(block), "build:success": rec_hook(block)}
        extra = "[event build:success]\nmode = async\n\n[admin]\nlisten = 127.0.0.1:0\n"
        with Hookd(config(extra=extra), hooks) as h:
            sync_id, async_id = new_id("sync"), new_id("async")
            for eid in (sync_id, async_id):
                h.write_file("block." + eid, "")
            t, _ = h.post_bg(sync_id)
            self.assertStatus(h.post(async_id, event="build:success"), 202, "accepted")
            self.wait_runs(h, 2, "start")
            h.kill9()
            h.kill_orphaned_hooks()
            t.join(5)
            for eid in (sync_id, async_id):
                os.unlink(h.path("block." + eid))
            h.start()
            h.wait_states([async_id], timeout=10)
            self.assertEqual(h.event_of(sync_id)["state"], "failed")

            def count(family, event, outcome):
                return harness.metric(harness.parse_metrics(h.scrape()), family,
                                      endpoint="northflank", event=event, outcome=outcome)
            deliveries = "hookd_deliveries_total"
            self.assertEqual(count(deliveries, EVENT, "failed"), 1, h.scrape())
            self.assertEqual(count(deliveries, "build:success", "ok"), 1, h.scrape())
            self.assertEqual(count("hookd_attempts_total", "build:success", "ok"), 1)
            self.assertEqual(count("hookd_attempts_total", EVENT, "ok"), 0)
            # The sender's resend: one more attempt, still one delivery.
            self.assertStatus(h.post(sync_id), 200, "ok")
            self.assertEqual(attempts_of(h, sync_id), [1, 2])
            self.assertEqual(count("hookd_attempts_total", EVENT, "ok"), 1)
            self.assertEqual(count(deliveries, EVENT, "failed"), 1)
            self.assertEqual(count(deliveries, EVENT, "ok"), 0)
            self.assertEqual(count(deliveries, "build:success", "ok"), 1)

    # A sync delivery that waits for a slot (or its key) is recorded
    # queued, not running: a resend's 409 and `hookd events` say queued,
    # and after a crash it is failed with no attempt (it never ran), so
    # that the sender's resend is its first run, HOOK_ATTEMPT=1 (README
    # "Delivery guarantees", "Sync mode after a crash").
    def test_sync_waiting_for_a_slot_is_queued_not_running(self):
        # first runs until it is killed (8 s at most): waiting is still
        # queued at the checks however slowly the machine gets there.
        srv = "max_running = 1\n"
        with Hookd(config(server=srv), {EVENT: rec_hook(GO)}) as h:
            first, waiting = new_id("first"), new_id("waiting")
            t1, o1 = h.post_bg(first)
            self.wait_runs(h, 1, "start")
            t2, o2 = h.post_bg(waiting)
            self.assertTrue(wait_until(lambda: h.event_of(waiting), 10), "not recorded")
            self.assertEqual(h.event_of(waiting)["state"], "queued")
            self.assertStatus(h.post(waiting), 409, "queued")
            h.kill9()
            h.kill_orphaned_hooks()
            for t in (t1, t2):
                t.join(5)
            h.start()
            # It never ran: failed (nobody waits for it now, as a sync
            # delivery cut off in its run), no attempt, and its resend is
            # its first run. The one that ran has its interrupted attempt.
            # (The "listening" line comes before recovery ends.)
            wait_until(lambda: h.event_of(waiting)["state"] != "queued", 15)
            row = h.event_of(waiting)
            self.assertEqual((row["state"], row["attempts"]), ("failed", 0), row)
            self.assertIn(waiting, [e["id"] for e in h.events("--failed")])
            self.assertIn("interrupted before it ran", h.cli("show", waiting).stdout)
            self.assertEqual(h.event_of(first)["attempts"], 1)
            self.assertEqual(attempts_of(h, waiting), [])
            self.assertStatus(h.post(waiting), 200, "ok")
            self.assertEqual(attempts_of(h, waiting), [1])

    BLOCKED = rec_hook("while [ -e \"{tmp}/block.$HOOK_ID\" ]; do sleep 0.05; done")

    def first_then_waiting(self, h):
        """Posts `first`, whose hook runs until its block file goes, then
        `waiting` (blocked the same way once it runs), each in a thread:
        (first, waiting, (t1, o1), (t2, o2))."""
        first, waiting = new_id("first"), new_id("waiting")
        for eid in (first, waiting):
            h.write_file("block." + eid, "")
        posted = [h.post_bg(first)]
        self.wait_runs(h, 1, "start")
        posted.append(h.post_bg(waiting))
        return first, waiting, posted[0], posted[1]

    def test_sync_waiting_for_its_key_is_queued_then_running(self):
        # The same for a wait for its serialize key; once the key is free it
        # is recorded running as it starts, and a crash then counts that run.
        ep = "serialize = data.service.id\n"
        with Hookd(config(server="max_running = 4\n", endpoint=ep), {EVENT: self.BLOCKED}) as h:
            first, waiting, (t1, o1), (t2, o2) = self.first_then_waiting(h)
            self.assertTrue(wait_until(lambda: h.event_of(waiting), 10), "not recorded")
            self.assertEqual(h.event_of(waiting)["state"], "queued")
            self.assertStatus(h.post(waiting), 409, "queued")
            os.unlink(h.path("block." + first))
            t1.join(10)
            self.assertStatus(o1[0], 200, "ok")
            self.wait_runs(h, 2, "start")
            self.assertEqual(h.event_of(waiting)["state"], "running")
            self.assertStatus(h.post(waiting), 409, "running")
            h.kill9()
            h.kill_orphaned_hooks()
            t2.join(5)
            os.unlink(h.path("block." + waiting))
            h.start()
            wait_until(lambda: h.event_of(waiting)["state"] != "running", 15)
            row = h.event_of(waiting)
            self.assertEqual((row["state"], row["attempts"]), ("failed", 1), row)
            self.assertStatus(h.post(waiting), 200, "ok")
            self.assertEqual(attempts_of(h, waiting), [1, 2])

    def test_sync_waiting_without_a_journal_is_queued_then_running(self):
        # In memory too: 409 queued while it waits, running once it runs.
        srv = "max_running = 1\n"
        admin = "\n[admin]\nlisten = 127.0.0.1:0\n"
        with Hookd(config(False, server=srv, extra=admin), {EVENT: self.BLOCKED}) as h:
            first, waiting, (t1, o1), (t2, o2) = self.first_then_waiting(h)
            # No journal to watch it arrive by: the queued gauge.
            harness.wait_for(lambda: harness.metric(harness.parse_metrics(h.scrape()),
                                                    "hookd_deliveries_queued") == 1,
                             what="waiting queued")
            self.assertStatus(h.post(waiting), 409, "queued")
            os.unlink(h.path("block." + first))
            self.wait_runs(h, 2, "start")
            self.assertStatus(h.post(waiting), 409, "running")
            os.unlink(h.path("block." + waiting))
            for t, o in ((t1, o1), (t2, o2)):
                t.join(10)
                self.assertStatus(o[0], 200, "ok")
            self.assertStatus(h.post(waiting), 200, "duplicate")
            self.assertEqual(attempts_of(h, waiting), [1])

    def test_async_left_pending_by_a_missing_endpoint_runs_once_it_is_back(self):
        # Started with its endpoint gone from the config, hookd leaves an
        # accepted async delivery pending (logged). A reload that brings
        # the endpoint back runs it; until then nothing could (a resend is
        # a 409, replay says it is pending).
        srv = "max_running = 1\n"
        with Hookd(config(server=srv, endpoint=ASYNC), {EVENT: rec_hook("sleep 1")}) as h:
            h.check_no_secrets = lambda: harness.Hookd.check_no_secrets(h)
            first, left = new_id("first"), new_id("left")
            self.assertStatus(h.post(first), 202, "accepted")
            self.assertStatus(h.post(left), 202, "accepted")
            self.wait_runs(h, 1, "start")
            h.stop()
            self.assertEqual(h.event_of(left)["state"], "queued")
            cfg = h.read("hookd.ini")
            h.write_config(cfg.replace("[endpoint northflank]", "[endpoint renamed]"))
            h.start()
            self.assertIsNotNone(h.wait_log("no longer configured", left))
            self.assertEqual(attempts_of(h, left), [])
            h.write_config(cfg)
            h.reload()
            self.assertEqual(h.wait_states([left], timeout=15)[left]["state"], "succeeded")
            self.assertEqual(attempts_of(h, left), [1])
            self.assertStatus(h.post(left), 200, "duplicate")

    def test_sigterm_keeps_queued_async_for_next_start(self):
        srv = "max_running = 1\n"
        with Hookd(config(server=srv, endpoint=ASYNC), {EVENT: rec_hook("sleep 1")}) as h:
            ids = [new_id("t%d" % n) for n in range(5)]
            for eid in ids:
                self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 1, "start")
            rc, took = h.stop()
            self.assertEqual(rc, 0)
            # The four others would take 4 s more.
            self.assertLess(took, 4.0, "SIGTERM waits only for the running hook")
            done = [i for (i, _, _) in runs(h, "end")]
            self.assertEqual(done, [ids[0]])
            rows = {e["id"]: e for e in h.events()}
            self.assertEqual(rows[ids[0]]["state"], "succeeded")
            for eid in ids[1:]:
                self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("queued", 0))
            h.start()
            rows = h.wait_states(ids, timeout=15)
            self.assertTrue(all(r["state"] == "succeeded" for r in rows.values()), rows)
            # Each ran once, with attempt 1, in arrival order.
            self.assertEqual([(i, a) for (i, a, _) in runs(h, "start")],
                             [(i, 1) for i in ids])

    def test_sigterm_logs_what_it_leaves_for_the_next_start(self):
        # README "Logs and signals": the drain's last line counts the async
        # deliveries it left in the journal, queued (for a slot, for their
        # key, or accepted during the drain) and waiting for a retry; a
        # second SIGTERM during the drain says that the drain goes on.
        srv = "max_running = 1\n"
        ep = "mode = async\nretry_backoff = 30s\n"
        # The slow one runs until the test writes go (8 s at most): still
        # running at the second SIGTERM however slowly the machine got there.
        hook = rec_hook('[ "$HOOK_ID" = "$(cat {tmp}/slow)" ] && { %s; }' % GO,
                        rc='$([ "$HOOK_ID" = "$(cat {tmp}/fail)" ] && echo 75 || echo 0)')
        with Hookd(config(server=srv, endpoint=ep), {EVENT: hook}) as h:
            retry, slow, q1, q2 = (new_id(n) for n in ("retry", "slow", "q1", "q2"))
            h.write_file("fail", retry + "\n")
            h.write_file("slow", slow + "\n")
            self.assertStatus(h.post(retry), 202, "accepted")
            h.wait_states([retry], ("retry_wait",), timeout=5)
            for eid in (slow, q1, q2):
                self.assertStatus(h.post(eid), 202, "accepted")
            self.wait_runs(h, 2, "start")
            mark = len(h.logs())
            h.send_signal(signal.SIGTERM)
            h.wait_log("SIGTERM received", start=mark)
            h.send_signal(signal.SIGTERM)
            again = h.wait_log("SIGTERM received again", start=mark)
            h.write_file("go", "")
            self.assertIsNotNone(again, h.log_text())
            self.assertIn("still finishing 1 running", again)
            rc, _ = h.stop()
            self.assertEqual(rc, 0)
            stopped = [harness.parse_logfmt(l) for l in h.logs()[mark:] if "msg=stopped" in l]
            self.assertEqual(len(stopped), 1, h.log_text())
            self.assertEqual((stopped[0].get("left_queued"), stopped[0].get("left_retry_wait")),
                             ("2", "1"), h.log_text())
            rows = {e["id"]: e["state"] for e in h.events()}
            self.assertEqual([rows[i] for i in (retry, slow, q1, q2)],
                             ["retry_wait", "succeeded", "queued", "queued"])


# --------------------------------------------------------------------------
# pending async deliveries live in the journal (issue 16, point 3)

GH_SECRET = "gh-pending-s3cret-4d5e6f"


def gh_config(server=""):
    """A github endpoint in async mode at /gh, one hook at a time."""
    return ("[server]\nlisten = 127.0.0.1:0\nhooks_dir = {hooks}\nstate_dir = {state}\n"
            "{journal}timeout = 120s\nkill_grace = 1s\nmax_running = 1\n" + server
            + "\n[endpoint gh]\npath = /gh\nscheme = github\nsecret = %s\nmode = async\n"
            "pass_headers = X-Note\n" % GH_SECRET)


# Waits while {tmp}/hold exists, then records what it got: id, event, the
# payload's n, a pass_headers header, the attempt and its stdin's SHA-256.
HOLD_HOOK = sh(
    "while [ -e '{tmp}/hold' ]; do sleep 0.05; done\n"
    "sum=$(sha256sum | cut -c1-64)\n"
    "echo \"$HOOK_ID $HOOK_EVENT $HOOK_N $HOOK_HEADER_X_NOTE $HOOK_ATTEMPT $sum\""
    " >> '{tmp}/runs'")


def gh_body(n, size):
    """A JSON body of exactly size bytes whose payload says n."""
    head = '{"n":%d,"pad":"' % n
    return (head + "x" * (size - len(head) - 2) + '"}').encode()


def gh_post(h, eid, body, note):
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return h.request("POST", "/gh", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": eid, "X-Hub-Signature-256": sig, "X-Note": note,
    }, timeout=60)


class PendingInJournal(Base):
    """A pending async delivery keeps its body and environment in the
    journal, not in memory: read back when its attempt starts."""

    def daemon(self, server=""):
        return harness.Hookd(gh_config(server), {"push": HOLD_HOOK}, secrets=(GH_SECRET,))

    def assertRanOnce(self, h, bodies, notes):
        """Each delivery of bodies {id: body} ran once, attempt 1, with its
        own body on stdin and its own variables."""
        got = {}
        for w in h.lines_of("runs"):
            self.assertEqual(len(w), 6, w)
            self.assertNotIn(w[0], got, "%s ran twice" % w[0])
            got[w[0]] = w[1:]
        self.assertEqual(sorted(got), sorted(bodies))
        for eid, body in bodies.items():
            n = json.loads(body)["n"]
            self.assertEqual(got[eid], ["push", str(n), notes[eid], "1",
                                        hashlib.sha256(body).hexdigest()], eid)

    def assertNoErrors(self, h):
        errors = [l for l in h.logs() if "level=error" in l]
        self.assertEqual(errors, [], "hookd logged errors")

    def test_300_bodies_of_a_megabyte_cost_no_memory_while_pending(self):
        # Issue 16, attack 3: a captured 1 MB signed body resent 300 times
        # under new delivery ids (here each body says which it is, so that
        # none can be taken for another), while the one hook slot is busy.
        with self.daemon() as h:
            h.write_file("hold", "")
            ids = [new_id("gh%03d" % n) for n in range(300)]
            bodies = {eid: gh_body(n, 1000000) for n, eid in enumerate(ids)}
            notes = {eid: "note-%d" % n for n, eid in enumerate(ids)}
            answers = {}

            def client(part):
                for eid in part:
                    answers[eid] = gh_post(h, eid, bodies[eid], notes[eid])
            clients = [threading.Thread(target=client, args=(ids[k::4],)) for k in range(4)]
            t0 = time.monotonic()
            for t in clients:
                t.start()
            for t in clients:
                t.join(300)
            took = time.monotonic() - t0
            self.assertEqual(len(answers), 300)
            for eid in ids:
                self.assertStatus(answers[eid], 202, "accepted")
            rss, hwm = status_kb(h.pid, "VmRSS"), status_kb(h.pid, "VmHWM")
            print("300 x 1 MB async: %.1fs, RSS %d kB, peak %d kB" % (took, rss, hwm))
            rows = {e["id"]: e for e in h.events()}
            self.assertEqual(sorted(rows), sorted(ids))
            self.assertTrue(all(r["state"] in ("queued", "running") for r in rows.values()))
            if not binary_has_asan():  # its RSS is shadow memory and quarantine
                self.assertLess(hwm, 64 * 1024, "peak RSS with 300 pending")

            # They run, each read back from the journal; hookd stops while
            # most still wait, and the next start takes them up.
            os.unlink(h.path("hold"))
            self.assertTrue(wait_until(lambda: len(h.lines_of("runs")) >= 50, 60))
            self.assertEqual(h.stop(), 0)
            before = len(h.lines_of("runs"))
            self.assertLess(before, 300, "all ran before the restart")
            h.start()
            rows = h.wait_states(ids, timeout=120)
            self.assertEqual(len(rows), 300)
            bad = {i: r["state"] for i, r in rows.items() if r["state"] != "succeeded"}
            self.assertEqual(bad, {})
            self.assertIn("journal: %d pending async deliveries resumed" % (300 - before),
                          h.log_text())
            hwm = status_kb(h.pid, "VmHWM")
            print("after a restart with %d pending: peak %d kB" % (300 - before, hwm))
            if not binary_has_asan():
                self.assertLess(hwm, 64 * 1024, "peak RSS recovering them")
            self.assertRanOnce(h, bodies, notes)
            self.assertNoErrors(h)

    def test_journal_max_bytes_answers_503(self):
        with self.daemon("journal_max_bytes = 2500\n") as h:
            h.write_file("hold", "")
            first, second, late, small = (new_id(n) for n in ("first", "second", "late", "small"))
            bodies = {first: gh_body(1, 1000), second: gh_body(2, 1000),
                      late: gh_body(3, 1000), small: gh_body(4, 400)}
            notes = {eid: "n" + eid for eid in bodies}
            for eid in (first, second):
                self.assertStatus(gh_post(h, eid, bodies[eid], notes[eid]), 202, "accepted")
            # 2000 bytes pending (one running, one queued): 1000 more would
            # pass journal_max_bytes.
            r = gh_post(h, late, bodies[late], notes[late])
            self.assertStatus(r, 503, "overloaded")
            ra = r.headers.get("retry-after", "")
            self.assertTrue(ra.isdigit() and int(ra) > 0, r)
            self.assertEqual(r.json.get("error"), "journal_max_bytes of bodies pending", r)
            # A 503 is not an attempt: nothing recorded.
            self.assertEqual(h.cli("show", late).returncode, 1)
            # 400 bytes still fit.
            self.assertStatus(gh_post(h, small, bodies[small], notes[small]), 202, "accepted")
            os.unlink(h.path("hold"))
            rows = h.wait_states([first, second, small], timeout=20)
            self.assertTrue(all(r["state"] == "succeeded" for r in rows.values()), rows)
            self.assertNotIn(late, [w[0] for w in h.lines_of("runs")], "the refused one ran")
            # With room again, the same id is accepted as new.
            self.assertStatus(gh_post(h, late, bodies[late], notes[late]), 202, "accepted")
            h.wait_states([late], timeout=20)
            self.assertRanOnce(h, bodies, notes)
            self.assertNoErrors(h)


# --------------------------------------------------------------------------
# serialize

def payload_for(service):
    obj = sample_json()
    obj["data"]["service"]["id"] = service
    return obj


# 1 s a run: long enough for the two keys' runs to overlap while the test
# waits for each sync delivery to be recorded before it sends the next.
SER_HOOK = sh(
    "echo \"start $HOOK_DATA_SERVICE_ID $HOOK_ID $(date +%s.%N)\" >> '{tmp}/ser'\n"
    "sleep 1\n"
    "echo \"end $HOOK_DATA_SERVICE_ID $HOOK_ID $(date +%s.%N)\" >> '{tmp}/ser'\n")


class Skipped(Base):
    """A delivery its event's match turns away, or that a hook skips by an
    exit status [status] maps to skip, is journaled "skipped": final, a
    duplicate when resent, and not in `events --failed`."""

    def test_async_match_and_exit_skip(self):
        extra = ("[event build]\nmatch = data.build.branch=main\n"
                 "\n[status]\n78 = skip\n")
        hook = rec_hook(rc='$([ "$HOOK_DATA_SERVICE_ID" = skipme ] && echo 78 || echo 0)')
        with Hookd(config(endpoint=ASYNC, extra=extra), {EVENT: hook}) as h:
            body = sample_json()
            body["data"]["build"]["branch"] = "dev"
            not_main = new_id()
            self.assertStatus(h.post(not_main, body=body), 202, "accepted")
            body["data"]["build"]["branch"] = "main"
            body["data"]["service"]["id"] = "skipme"
            by_exit = new_id()
            self.assertStatus(h.post(by_exit, body=body), 202, "accepted")
            body["data"]["service"]["id"] = "website"
            ran = new_id()
            self.assertStatus(h.post(ran, body=body), 202, "accepted")
            rows = h.wait_states([not_main, by_exit], states=("skipped",))
            self.assertEqual(rows[not_main]["state"], "skipped", rows)
            self.assertEqual(rows[by_exit]["state"], "skipped", rows)
            self.assertEqual(h.wait_states([ran])[ran]["state"], "succeeded")
            self.assertEqual(attempts_of(h, not_main), [], "a delivery that does not match runs nothing")
            self.assertEqual(attempts_of(h, by_exit), [1])
            self.assertEqual(h.events("--failed"), [])
            for eid in (not_main, by_exit):
                self.assertStatus(h.post(eid, body=body), 200, "duplicate")
            out = h.cli("show", by_exit).stdout
            self.assertIn("skipped", out)
            text = h.cli("events").stdout
            self.assertIn("skipped", text)

    def test_sync_skip_is_journaled(self):
        extra = "[event build]\nmatch = data.build.branch=main\n"
        with Hookd(config(extra=extra), {EVENT: rec_hook()}) as h:
            body = sample_json()
            body["data"]["build"]["branch"] = "dev"
            eid = new_id()
            self.assertStatus(h.post(eid, body=body), 200, "skipped")
            rows = h.wait_states([eid], states=("skipped",))
            self.assertEqual(rows[eid]["state"], "skipped", rows)
            self.assertStatus(h.post(eid, body=body), 200, "duplicate")
            self.assertEqual(runs(h), [])
            self.assertEqual(h.events("--failed"), [])


def read_shimmed(tc, cfg, hooks, **faults):
    """A daemon, not yet started, with tests/blackbox/readshim.c loaded
    (HOOKD_READSHIM) and its fault switches (READSHIM_NAME=file in {tmp});
    under ASan its runtime goes first in LD_PRELOAD. Its failing reads are
    logged at error, as they should be: the usual no-error check is off."""
    shim = os.environ.get("HOOKD_READSHIM")
    if not shim:
        tc.skipTest("no read shim (HOOKD_READSHIM): run through meson")
    h = Hookd(cfg, hooks, start=False)
    h.env.update(LD_PRELOAD=harness.shim_preload(tc, shim),
                 **{"READSHIM_" + k.upper(): h.path(v) for k, v in faults.items()})
    h.check_no_secrets = lambda: harness.Hookd.check_no_secrets(h)
    return h


class Serialize(Base):

    def check_serialized(self, h, order):
        """order: [(service, id)] in arrival order."""
        lines = h.lines_of("ser")
        spans = {}
        for w in lines:
            spans.setdefault(w[2], {})[w[0]] = float(w[3])
        self.assertEqual(sorted(spans), sorted(i for (_, i) in order), lines)
        by_key = {}
        for svc, eid in order:
            by_key.setdefault(svc, []).append((spans[eid]["start"], spans[eid]["end"], eid))
        for svc, sp in by_key.items():
            # Arrival order kept: the starts come in the order sent.
            self.assertEqual([e for (_, _, e) in sorted(sp)], [e for (_, _, e) in sp], svc)
            for (s1, e1, a), (s2, e2, b) in zip(sp, sp[1:]):
                self.assertGreaterEqual(s2, e1, "%s and %s of %s overlap" % (a, b, svc))
        # Different values run in parallel: some of A overlaps some of B.
        a, b = by_key.values()
        self.assertTrue(any(s1 < e2 and s2 < e1 for (s1, e1, _) in a for (s2, e2, _) in b),
                        "the two values never overlapped: %r" % by_key)

    def test_retry_wait_does_not_hold_the_key(self):
        # a's retry 3 s after its first attempt: b, waiting for the key,
        # runs well before it on a loaded machine too.
        ep = "mode = async\nretry_backoff = 3s\nserialize = data.service.id\n"
        hook = rec_hook(rc='$([ "$HOOK_ID" = "$(cat {tmp}/flaky)" ] && [ "$HOOK_ATTEMPT" = 1 ]'
                        ' && echo 75 || echo 0)')
        with Hookd(config(endpoint=ep), {EVENT: hook}) as h:
            a, b = new_id("a"), new_id("b")
            h.write_file("flaky", a + "\n")
            self.assertStatus(h.post(a), 202, "accepted")
            self.assertStatus(h.post(b), 202, "accepted")
            h.wait_states([a, b], timeout=20)
            self.assertEqual([(i, n) for (i, n, _) in runs(h, "start")], [(a, 1), (b, 1), (a, 2)])

    def test_read_back_failure_keeps_the_key(self):
        """A waiting delivery whose row cannot be read back as its attempt
        begins (that one read failing: tests/blackbox/readshim.c; with
        PostgreSQL, as when the connection breaks) keeps its key and its
        place: it tries again each second, and the later ones of its key
        wait behind it. No attempt failed, all ran once, in arrival order.
        (Its attempt used to fail with a 503, and a later delivery of the
        key ran first while it waited 30 s for its retry.)"""
        ep = "mode = async\nretries = 3\nretry_backoff = 30s\nserialize = data.service.id\n"
        # first runs until the test has put the fault in place (8 s at most).
        hook = rec_hook('[ "$HOOK_ID" = "$(cat {tmp}/slow)" ] && { %s; }' % GO)
        admin = "\n[admin]\nlisten = 127.0.0.1:0\n"
        h = read_shimmed(self, config(server="max_running = 4\n", endpoint=ep, extra=admin),
                         {EVENT: hook}, fault="fault")
        h.start()
        with h:
            first, second, third, fourth = (new_id(n) for n in ("first", "second", "third",
                                                                 "fourth"))
            h.write_file("slow", first + "\n")
            for eid in (first, second, third):
                self.assertStatus(h.post(eid), 202, "accepted")
            h.write_file("fault", "")
            h.write_file("go", "")
            line = h.wait_log("cannot read the delivery back from the journal; it keeps its "
                              "place", timeout=10)
            self.assertIsNotNone(line, "\n".join(h.logs()))
            self.assertIn("id=" + second, line)
            time.sleep(1.2)  # another try fails
            os.unlink(h.path("fault"))
            # With PostgreSQL each failed read is a broken connection: the
            # journal is down until it connects again (0.25 s on), and a
            # post meanwhile is rightly a 503. The 1 s tries and the 1.2 s
            # above could put the post just there; wait for the journal.
            self.assertTrue(wait_until(lambda: h.admin("GET", "/healthz").status == 200, 10),
                            "the journal did not come back")
            self.assertStatus(h.post(fourth), 202, "accepted")
            rows = h.wait_states([first, second, third, fourth], timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(rows, "succeeded"), rows)
            self.assertEqual([(i, n) for (i, n, _) in runs(h, "start")],
                             [(first, 1), (second, 1), (third, 1), (fourth, 1)])
            shown = json.loads(h.cli("show", "--json", second).stdout)
            self.assertEqual([(a["attempt"], a["status"]) for a in shown["attempt_list"]],
                             [(1, "ok")])
            others = [l for l in h.logs() if "level=error" in l and "read" not in l
                      and "journal: get" not in l and "batch of writes" not in l]
            self.assertEqual(others, [])

    def test_row_deleted_while_waiting_to_begin_leaves(self):
        """A delivery waiting to read its row back (its key kept, a try
        each second) whose row is then deleted by hand leaves at its next
        try: the look-up says its row is gone (job_row_gone, reached from
        on_begin_again with its timer made), its key goes to the next of
        its line, and nothing of it runs or is recorded."""
        if harness.JOURNAL_BACKEND != "sqlite":
            self.skipTest("deletes a row of journal.db by hand")
        ep = "mode = async\nretries = 3\nretry_backoff = 30s\nserialize = data.service.id\n"
        hook = rec_hook('[ "$HOOK_ID" = "$(cat {tmp}/slow)" ] && { %s; }' % GO)
        h = read_shimmed(self, config(server="max_running = 4\n", endpoint=ep),
                         {EVENT: hook}, fault="fault")
        h.start()
        with h:
            first, second, third = (new_id(n) for n in ("first", "second", "third"))
            h.write_file("slow", first + "\n")
            for eid in (first, second, third):
                self.assertStatus(h.post(eid), 202, "accepted")
            h.write_file("fault", "")
            h.write_file("go", "")
            waits = "cannot read the delivery back from the journal; it keeps its place"
            self.assertIsNotNone(h.wait_log(waits, "id=" + second, timeout=10),
                                 "\n".join(h.logs()))
            db = sqlite3.connect(os.path.join(h.state, "journal.db"), timeout=10)
            with db:
                n = db.execute("DELETE FROM deliveries WHERE delivery_id = ?",
                               (second,)).rowcount
            db.close()
            self.assertEqual(n, 1)
            line = h.wait_log("its row is no longer pending", "id=" + second, timeout=10)
            self.assertIsNotNone(line, "\n".join(h.logs()))
            os.unlink(h.path("fault"))
            rows = h.wait_states([first, third], timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(rows, "succeeded"), rows)
            self.assertEqual([i for (i, _, _) in runs(h, "start")], [first, third])
            self.assertEqual([l for l in h.log_lines("msg=delivery ", "id=" + second + " ")
                              if "status=accepted" not in l], [])

    def test_rows_not_read_at_restart_run_once_they_can_be(self):
        """At a restart, a pending delivery waits as what the journal's list
        of pending rows says of it; its row is read back whole only as its
        attempt begins. A read that fails then (the shim) fails that
        attempt (503, retried), and it runs, whole, once its row can be
        read. (Every row was read back at the start, before anything was
        served; one that could not be was let go and did not run until
        the next start.)"""
        ep = "mode = async\nretries = 3\nretry_backoff = 1s\n"
        hook = rec_hook("[ -e '{tmp}/block' ] && sleep 30\n"
                        "env | grep '^HOOK_' | sort > \"{tmp}/env.$HOOK_ID\"")
        h = read_shimmed(self, config(server="max_running = 1\n", endpoint=ep), {EVENT: hook},
                         fault="fault")
        h.start()
        with h:
            first, second, third = (new_id(n) for n in ("first", "second", "third"))
            h.write_file("block", "")
            self.assertStatus(h.post(first), 202, "accepted")
            self.assertTrue(wait_until(lambda: runs(h), 10), "the first hook did not start")
            for eid in (second, third):
                self.assertStatus(h.post(eid), 202, "accepted")
            h.kill9()
            h.kill_orphaned_hooks()
            os.unlink(h.path("block"))
            h.write_file("fault", "")
            before = len(runs(h))
            h.start()
            for eid in (first, second, third):
                self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "http=503",
                                                timeout=15), "\n".join(h.logs()))
            self.assertEqual(len(runs(h)), before, "a hook ran while its row could not be read")
            os.unlink(h.path("fault"))
            rows = h.wait_states([first, second, third], timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(rows, "succeeded"), rows)
            # first: attempt 1 interrupted by the kill, 2 not read back, 3 ran.
            self.assertEqual(sorted((i, n) for (i, n, _) in runs(h)[before:]),
                             sorted([(first, 3), (second, 2), (third, 2)]))
            shown = json.loads(h.cli("show", "--json", second).stdout)
            self.assertEqual([(a["attempt"], a["status"]) for a in shown["attempt_list"]],
                             [(1, "failed"), (2, "ok")], shown)
            self.assertIn("cannot read the delivery back from the journal",
                          shown["attempt_list"][0]["error"])
            env = dict(l.split("=", 1) for l in h.read("env." + second).splitlines())
            self.assertEqual((env["HOOK_ID"], env["HOOK_ATTEMPT"]), (second, "2"))
            self.assertEqual(env["HOOK_DATA_SERVICE_ID"], "website")
            self.assertEqual(env["HOOK_RECEIVED_AT"], rows[second]["received_at"])

    def test_read_back_tries_are_each_attempts(self):
        """The tries at reading a row back are each attempt's own. On a
        shared journal, tries that run out where the delivery takes its
        turn again (that taking failing too: the shim's turn fault) fail
        its attempt (503, retried); its retry, its row still not read
        back, waits and tries again as the first did, keeping its key.
        (The count of tries was kept, and every later attempt failed at
        once.)"""
        if harness.JOURNAL_BACKEND != "postgresql":
            self.skipTest("a shared journal's turn: PostgreSQL only")
        ep = ("mode = async\nretries = 3\nretry_backoff = 1s\n"
              "serialize = data.service.id\n")
        hook = rec_hook('[ "$HOOK_ID" = "$(cat {tmp}/slow)" ] && sleep 1')
        h = read_shimmed(self, config(server="max_running = 4\n", endpoint=ep), {EVENT: hook},
                         fault="fault", turn_fault="turn_fault")
        h.start()
        with h:
            first, second = new_id("first"), new_id("second")
            h.write_file("slow", first + "\n")
            for eid in (first, second):
                self.assertStatus(h.post(eid), 202, "accepted")
            h.write_file("fault", "")
            waits = "cannot read the delivery back from the journal; it keeps its place"
            self.assertIsNotNone(h.wait_log(waits, "id=" + second, timeout=10),
                                 "\n".join(h.logs()))
            h.write_file("turn_fault", "")
            # Its tries run out (10 s) where it takes its turn again.
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + second, "http=503",
                                            timeout=15), "\n".join(h.logs()))
            os.unlink(h.path("turn_fault"))
            # Its retry (after 1 s) waits for its row too.
            deadline = time.monotonic() + 10
            while len(h.log_lines(waits, "id=" + second)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertEqual(len(h.log_lines(waits, "id=" + second)), 2, "\n".join(h.logs()))
            os.unlink(h.path("fault"))
            rows = h.wait_states([first, second], timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(rows, "succeeded"), rows)
            shown = json.loads(h.cli("show", "--json", second).stdout)
            self.assertEqual([(a["attempt"], a["status"]) for a in shown["attempt_list"]],
                             [(1, "failed"), (2, "ok")], shown)
            self.assertEqual([(i, n) for (i, n, _) in runs(h, "start")],
                             [(first, 1), (second, 2)])

    def test_serialize_changed_across_a_restart(self):
        """Pending deliveries of one key, hookd killed, then started with
        the event's serialize on another payload path: each still waits in
        the line it was recorded in and frees it when it ends (on a shared
        journal a waiting one keeps the key recorded at its acceptance),
        and all run, one at a time, in arrival order."""
        hook = rec_hook("[ -e '{tmp}/block' ] && sleep 30\nsleep 0.2")
        ep = ASYNC + "serialize = data.service.id\n"
        with Hookd(config(server="max_running = 4\n", endpoint=ep), {EVENT: hook}) as h:
            h.write_file("block", "")
            ids = [new_id("sc%d" % n) for n in range(4)]
            self.assertStatus(h.post(ids[0]), 202, "accepted")
            self.assertTrue(wait_until(lambda: runs(h), 10), "the first hook did not start")
            for eid in ids[1:]:
                self.assertStatus(h.post(eid), 202, "accepted")
            h.kill9()
            h.kill_orphaned_hooks()
            os.unlink(h.path("block"))
            h.write_config(config(server="max_running = 4\n",
                                  endpoint=ASYNC + "serialize = data.project.id\n"))
            h.start()
            rows = h.wait_states(ids, timeout=20)
            self.assertEqual({i: r["state"] for i, r in rows.items()},
                             dict.fromkeys(rows, "succeeded"), rows)
            starts = [i for (i, _, _) in runs(h, "start")]
            self.assertEqual(starts[1:], ids, "not one at a time in arrival order")
            spans = {}
            for kind in ("start", "end"):
                for (i, n, t) in runs(h, kind):
                    if n > 1 or i != ids[0]:
                        spans.setdefault(i, {})[kind] = t
            for x, y in zip(ids, ids[1:]):
                self.assertLessEqual(spans[x]["end"], spans[y]["start"], "%s overlaps %s" % (x, y))

    def order(self):
        return [(svc, new_id(svc)) for _ in range(3) for svc in ("alpha", "beta")]

    def test_serialize_sync(self):
        ep = "serialize = data.service.id\n"
        with Hookd(config(server="max_running = 4\n", endpoint=ep), {EVENT: SER_HOOK}) as h:
            order = self.order()
            threads = []
            for svc, eid in order:
                threads.append(h.post_bg(eid, body=payload_for(svc)))
                # Arrival order is the order sent: each is recorded (so
                # received) before the next is sent, not 50 ms assumed.
                self.assertTrue(wait_until(lambda: h.event_of(eid), 10), eid + " not recorded")
            for t, out in threads:
                t.join(20)
                self.assertStatus(out[0], 200, "ok")
            self.check_serialized(h, order)

    def test_serialize_async(self):
        ep = ASYNC + "serialize = data.service.id\n"
        with Hookd(config(server="max_running = 4\n", endpoint=ep), {EVENT: SER_HOOK}) as h:
            order = self.order()
            for svc, eid in order:
                self.assertStatus(h.post(eid, body=payload_for(svc)), 202, "accepted")
            h.wait_states([i for (_, i) in order], timeout=15)
            self.check_serialized(h, order)


# --------------------------------------------------------------------------
# a sync sender that hangs up before its answer: the journal says so

class ClientGone(Base):
    ADMIN = "\n[admin]\nlisten = 127.0.0.1:0\n"

    def api_attempts(self, h, eid):
        r = h.admin("GET", "/api/v1/deliveries/northflank/" + eid)
        self.assertEqual(r.status, 200, r)
        return r.json["attempt_list"]

    def api_item(self, h, eid):
        r = h.admin("GET", "/api/v1/deliveries")
        self.assertEqual(r.status, 200, r)
        [d] = [d for d in r.json["deliveries"] if d["id"] == eid]
        return d

    def hang_up(self, h, eid, after):
        """Sends delivery eid and closes the connection after `after` s;
        its delivery line, once it ended ok."""
        s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
        s.sendall(nf_request(eid))
        time.sleep(after)
        s.close()
        line = h.wait_log("msg=delivery", "id=%s " % eid, "status=ok", timeout=10)
        self.assertIsNotNone(line, h.log_text())
        return line

    def test_sender_gone_before_the_answer_is_recorded(self):
        # The sender's client gives up after 0.5 s; the hook runs 2 s.
        with Hookd(config(extra=self.ADMIN), {EVENT: rec_hook("sleep 2")}) as h:
            gone, waited = new_id("gone"), new_id("waited")
            line = self.hang_up(h, gone, 0.5)
            self.assertIn("client=gone", line)
            self.assertStatus(h.post(waited), 200, "ok")
            self.assertEqual(attempts_of(h, gone, "end"), [1])

            # show --json and the API: the attempt's http is what was due,
            # and its answer never reached the sender.
            d = json.loads(h.cli("show", "--json", gone).stdout)
            self.assertEqual((d["state"], d["http"]), ("succeeded", 200))
            [a] = d["attempt_list"]
            self.assertEqual((a["http"], a["client_gone"]), (200, True))
            [a] = self.api_attempts(h, gone)
            self.assertEqual((a["http"], a["client_gone"]), (200, True))
            self.assertIs(self.api_item(h, gone)["client_gone"], True)
            out = h.cli("show", gone).stdout
            self.assertIn("http 200, sender gone before the answer, status ok", out)

            # A sender that waited: nothing of it.
            [a] = json.loads(h.cli("show", "--json", waited).stdout)["attempt_list"]
            self.assertEqual((a["http"], a["client_gone"]), (200, False))
            [a] = self.api_attempts(h, waited)
            self.assertIs(a["client_gone"], False)
            self.assertIs(self.api_item(h, waited)["client_gone"], False)
            self.assertNotIn("sender gone", h.cli("show", waited).stdout)
            line = h.wait_log("msg=delivery", "id=%s " % waited, timeout=5)
            self.assertNotIn("client=", line)

    def test_sender_gone_before_a_handover_marks_no_attempt(self):
        # Handed over at respond_within, the attempt's outcome was never the
        # sender's answer (a 202 was due, to nobody): the log line says
        # client=gone, the attempt records no lost answer.
        with Hookd(config(endpoint="respond_within = 700ms\n", extra=self.ADMIN),
                   {EVENT: rec_hook("sleep 2")}) as h:
            eid = new_id("handed")
            line = self.hang_up(h, eid, 0.3)
            self.assertIn("client=gone", line)
            self.assertIn("mode=async", line)
            d = json.loads(h.cli("show", "--json", eid).stdout)
            [a] = d["attempt_list"]
            self.assertEqual((a["http"], a["client_gone"]), (200, False))
            [a] = self.api_attempts(h, eid)
            self.assertIs(a["client_gone"], False)
            self.assertNotIn("sender gone", h.cli("show", eid).stdout)

    def test_sender_gone_without_a_journal(self):
        # Without state_dir the API's memory of recent deliveries says it too.
        with Hookd(config(False, extra=self.ADMIN), {EVENT: rec_hook("sleep 2")}) as h:
            gone, waited = new_id("gone"), new_id("waited")
            self.assertIn("client=gone", self.hang_up(h, gone, 0.5))
            self.assertStatus(h.post(waited), 200, "ok")
            [a] = self.api_attempts(h, gone)
            self.assertEqual((a["http"], a["client_gone"]), (200, True))
            self.assertIs(self.api_item(h, gone)["client_gone"], True)
            [a] = self.api_attempts(h, waited)
            self.assertIs(a["client_gone"], False)
            self.assertIs(self.api_item(h, waited)["client_gone"], False)


# --------------------------------------------------------------------------
# the journal commands

class Commands(Base):

    def test_journal_survives_restart_and_events(self):
        hooks = {EVENT: rec_hook(), "build:failure": rec_hook(rc="1")}
        with Hookd(config(), hooks) as h:
            old = new_id("old")
            self.assertStatus(h.post(old), 200, "ok")
            time.sleep(1.2)
            # --since: a window that takes in the three below and not old,
            # however long the calls before it take (a loaded machine).
            cut = time.time() - 0.6

            def since():
                return "%dms" % ((time.time() - cut) * 1000)
            ok, bad, other = new_id("ok"), new_id("bad"), new_id("other")
            self.assertStatus(h.post(ok), 200, "ok")
            self.assertStatus(h.post(bad, event="build:failure"), 500, "failed")
            self.assertStatus(h.post(other, event="job-run:start"), 200, "unhandled")
            # state_dir is the daemon's alone (README "Delivery guarantees": 0700).
            self.assertEqual(os.stat(h.state).st_mode & 0o777, 0o700)
            sock = os.path.join(h.state, "control.sock")
            self.assertEqual(os.stat(sock).st_mode & 0o077, 0)
            h.stop()
            h.start()
            # Idempotency survives the restart too.
            self.assertStatus(h.post(ok), 200, "duplicate")

            # --json: every field, newest first.
            rows = h.events()
            self.assertEqual([e["id"] for e in rows], [other, bad, ok, old])
            for e in rows:
                self.assertEqual(set(e), {"id", "endpoint", "event", "state", "http",
                                          "attempts", "received_at"})
                self.assertEqual(e["endpoint"], "northflank")
                self.assertRegex(e["received_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            byid = {e["id"]: e for e in rows}
            self.assertEqual((byid[bad]["state"], byid[bad]["http"], byid[bad]["attempts"],
                              byid[bad]["event"]), ("failed", 500, 1, "build:failure"))
            self.assertEqual((byid[other]["state"], byid[other]["http"]), ("succeeded", 200))

            # Text: a header and one row each.
            r = h.cli("events")
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertEqual(lines[0].split(), ["RECEIVED_AT", "ENDPOINT", "ID", "EVENT",
                                                "STATE", "HTTP", "ATTEMPTS"])
            self.assertEqual([l.split()[2] for l in lines[1:]], [other, bad, ok, old])
            self.assertEqual(lines[2].split()[3:], ["build:failure", "failed", "500", "1"])

            self.assertEqual([e["id"] for e in h.events("--failed")], [bad])
            self.assertEqual([e["id"] for e in h.events("--event", "build:*")], [bad, ok, old])
            self.assertEqual([e["id"] for e in h.events("--event", "job-run:?tart")], [other])
            self.assertEqual([e["id"] for e in h.events("--since", since())], [other, bad, ok])
            # --limit counts the rows that pass the other filters.
            r = h.cli("events", "--json", "--event", "build:*", "--limit", "1")
            self.assertEqual([e["id"] for e in json.loads(r.stdout)], [bad])
            r = h.cli("events", "--json", "--failed", "--since", since(), "--event", "build:*")
            self.assertEqual([e["id"] for e in json.loads(r.stdout)], [bad])
            r = h.cli("events", "--json", "--limit", "2")
            self.assertEqual([e["id"] for e in json.loads(r.stdout)], [other, bad])
            r = h.cli("events", "--limit", "1")
            self.assertEqual(len(r.stdout.splitlines()), 2, r.stdout)
            self.assertEqual(h.cli("events", "--since", "soon").returncode, 2)
            self.assertEqual(h.cli("events", "--limit", "0").returncode, 2)

    @sqlite_only
    def test_sqlite_file_private_and_in_wal_mode(self):
        """README "Delivery guarantees": state_dir/journal.db is the
        daemon's alone, and in WAL mode (a reader never blocks the daemon)."""
        with Hookd(config(), {EVENT: rec_hook()}) as h:
            self.assertStatus(h.post(new_id()), 200, "ok")
            db = os.path.join(h.state, "journal.db")
            self.assertEqual(os.stat(db).st_mode & 0o077, 0)
            self.assertEqual(h.journal_query("PRAGMA journal_mode"), [("wal",)])

    def test_show(self):
        with Hookd(config(), {EVENT: rec_hook("echo 'hello from the hook'")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            r = h.cli("show", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            self.assertRegex(out, r"(?m)^id:\s+%s$" % eid)
            self.assertRegex(out, r"(?m)^event:\s+build:start$")
            self.assertRegex(out, r"(?m)^state:\s+succeeded$")
            self.assertRegex(out, r"(?mi)^  content-type: application/json$")
            self.assertRegex(out, r"(?mi)^  %sEvent-Id: %s$" % (NF_PREFIX, eid))
            self.assertRegex(out, r"(?mi)^  %sName: %s$" % (NF_PREFIX, NF_INTEGRATION_NAME))
            self.assertNotIn(NF_TOKEN, out)
            self.assertNotIn("token", out.lower())
            self.assertIn('"social-hour-1312"', out)  # the body
            self.assertRegex(out, r"attempt 1: .*http 200, status ok")
            self.assertRegex(out, r"hook build:start: exit 0, signal -")
            self.assertIn("hello from the hook", out)
            self.assertRegex(out, r"(?m)^env_omitted:\s+0$")
            self.assertEqual(h.cli("show", "--endpoint", "northflank", eid).returncode, 0)

            # What the limits left out, in the words of the answer and the API.
            big = new_id("big")
            r = h.post(big, body=dict(sample_json(), **{"k%d" % i: i for i in range(1100)}))
            self.assertStatus(r, 200, "ok")
            omitted = r.json["env_omitted"]
            self.assertGreater(omitted, 0)
            out = h.cli("show", big).stdout
            self.assertRegex(out, r"(?m)^env_omitted:\s+%d$" % omitted)
            self.assertEqual(json.loads(h.cli("show", "--json", big).stdout)["env_omitted"],
                             omitted)

            r = h.cli("show", "no-such-id")
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, "")
            self.assertIn("no-such-id", r.stderr)
            self.assertEqual(h.cli("show", "--endpoint", "other", eid).returncode, 1)

    def test_show_json(self):
        hooks = {EVENT: rec_hook("echo 'hello from the hook'; echo 'to stderr' >&2"),
                 "build:failure": rec_hook(rc="3")}
        with Hookd(config(), hooks) as h:
            eid, bad = new_id(), new_id("bad")
            self.assertStatus(h.post(eid, headers={"X-Source": "bot"}), 200, "ok")
            self.assertStatus(h.post(bad, event="build:failure"), 500, "failed")
            self.assertStatus(h.post(bad, event="build:failure"), 500, "failed")
            r = h.cli("show", "--json", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            d = json.loads(r.stdout)
            self.assertEqual(set(d), {"endpoint", "id", "event", "state", "mode", "attempts",
                                      "received_at", "updated_at", "next_due_at", "running",
                                      "remote_addr", "http", "status", "error", "headers",
                                      "body_bytes", "body_kept", "body_cut", "body",
                                      "env_omitted", "attempt_list"})
            self.assertEqual(d["env_omitted"], 0)
            self.assertEqual((d["endpoint"], d["id"], d["event"], d["state"], d["mode"],
                              d["attempts"], d["http"], d["status"], d["error"]),
                             ("northflank", eid, EVENT, "succeeded", "sync", 1, 200, "ok", None))
            self.assertEqual((d["next_due_at"], d["running"], d["body_cut"]), (None, None, False))
            self.assertEqual(d["remote_addr"], "127.0.0.1")
            self.assertEqual(json.loads(d["body"]), sample_json())
            self.assertEqual(d["body_bytes"], len(d["body"].encode()))
            names = {x["name"].lower(): x["value"] for x in d["headers"]}
            self.assertEqual(names["x-source"], "bot")
            self.assertEqual(names[(NF_PREFIX + "Event-Id").lower()], eid)
            self.assertNotIn(NF_TOKEN, r.stdout)
            [a] = d["attempt_list"]
            self.assertEqual((a["attempt"], a["http"], a["status"], a["error"]), (1, 200, "ok", None))
            self.assertIs(a["replay"], False)
            self.assertIsInstance(a["ms"], int)
            [hk] = a["hooks"]
            self.assertEqual((hk["hook"], hk["exit"], hk["signal"], hk["error"]),
                             (EVENT, 0, None, None))
            self.assertIn("hello from the hook", hk["output"])
            self.assertIn("to stderr", hk["output"])
            # The text and the JSON agree on every attempt.
            d = json.loads(h.cli("show", bad, "--json").stdout)
            self.assertEqual((d["state"], d["attempts"], d["http"], d["status"]),
                             ("failed", 2, 500, "failed"))
            self.assertEqual([(a["attempt"], a["http"], a["hooks"][0]["exit"])
                              for a in d["attempt_list"]], [(1, 500, 3), (2, 500, 3)])
            self.assertIn("exited with status 3", d["error"])
            r = h.cli("show", "--json", "no-such-id")
            self.assertEqual((r.returncode, r.stdout), (1, ""))
            self.assertIn("no-such-id", r.stderr)
            self.assertEqual(h.cli("show", "--json", "--body", eid).returncode, 2)

    def test_show_json_body_not_utf8(self):
        """A body cut inside a UTF-8 sequence is no JSON string: body_base64."""
        import base64
        with Hookd(config(server="journal_body_max = 100\n"), {EVENT: rec_hook()}) as h:
            eid = new_id()
            head = b'{"event":"build:start","note":"'
            sent = head + b"x" * (99 - len(head)) + "\u00e9".encode() * 50 + b'"}'
            r = h.request("POST", "/webhook", sent, harness.nf_headers(eid, event=EVENT))
            self.assertEqual(r.status, 200, r)
            d = json.loads(h.cli("show", "--json", eid).stdout)
            self.assertEqual((d["body_bytes"], d["body_kept"], d["body_cut"]),
                             (len(sent), 100, True))
            self.assertNotIn("body", d)
            self.assertEqual(base64.b64decode(d["body_base64"]), sent[:100])

    def test_show_body_feeds_run(self):
        """show --body prints the body's bytes exactly; piped to `hookd run
        EVENT -` it runs the same delivery again, by hand."""
        hook = rec_hook("printf '%s' \"$HOOK_DATA_BUILD_ID\" > '{tmp}/build_id'; "
                        "cat > '{tmp}/stdin'")
        with Hookd(config(), {EVENT: hook}) as h:
            eid = new_id()
            # Not what json.dumps would write back: spacing, key order, escapes kept.
            body = ('{ "event":"build:start",\n\t"data": {"build": {"id": "social-hour-1312"}},'
                    ' "note": "caf\\u00e9 \u00e9" }').encode()
            r = h.request("POST", "/webhook", body, harness.nf_headers(eid, event=EVENT))
            self.assertEqual(r.status, 200, r)
            out = subprocess.run([harness.HOOKD_BIN, "-c", h.config_path, "show", "--body", eid],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout, body)
            self.assertEqual(h.read("stdin", binary=True), body)
            os.unlink(h.path("build_id"))
            run = subprocess.run([harness.HOOKD_BIN, "-c", h.config_path, "run", EVENT, "-"],
                                 input=out.stdout, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=15)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(h.read("build_id"), "social-hour-1312")
            self.assertEqual(h.read("stdin", binary=True), body)

    def test_show_body_refused_when_cut(self):
        with Hookd(config(server="journal_body_max = 100\n"), {EVENT: rec_hook()}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            r = h.cli("show", "--body", eid)
            self.assertEqual((r.returncode, r.stdout), (1, ""))
            self.assertRegex(r.stderr, r"kept only 100 of the body's \d+ bytes")

    def test_stop_with_a_control_connection_open(self):
        """A `hookd replay` client still connected when the daemon stops is
        closed with it: exit 0 and, in the ASan build, nothing leaked."""
        with Hookd(config(), {EVENT: rec_hook()}) as h:
            # The control socket is made just after the "listening" line:
            # try until it takes connections (bounded).
            sock = os.path.join(h.state, "control.sock")
            deadline = time.monotonic() + 10
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                try:
                    s.connect(sock)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    s.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            s.sendall(b"replay northflank")  # a line not yet whole
            time.sleep(0.3)
            rc, _ = h.stop()
            self.assertEqual(rc, 0)
            self.assertEqual(s.recv(64), b"", "the connection is closed")
            s.close()

    def test_replay_of_a_delivery_whose_endpoint_was_removed(self):
        """show still lists it; replay says what is wrong (not "unknown
        delivery"), with or without --endpoint, and changes nothing."""
        other = "\n[endpoint gone]\npath = /gone\nscheme = northflank\nsecret = %s\n" % NF_TOKEN
        with Hookd(config(extra=other), {EVENT: rec_hook()}) as h:
            eid = new_id()
            r = h.request("POST", "/gone", json.dumps(sample_json()).encode(),
                          harness.nf_headers(eid))
            self.assertStatus(r, 200, "ok")
            h.write_config(config())
            h.reload()
            self.assertEqual(h.cli("show", eid).returncode, 0)
            for args in ([eid], ["--endpoint", "gone", eid]):
                p = h.cli("replay", *args)
                self.assertEqual(p.returncode, 1, p)
                self.assertEqual(p.stderr.strip(),
                                 "hookd: replay %s: its endpoint gone is not in the config" % eid)
            self.assertEqual(attempts_of(h, eid), [1], "it ran again")
            self.assertEqual(h.events()[0]["state"], "succeeded")

    def test_replay_while_shutting_down_waits_for_next_start(self):
        # The holder runs until the test writes go (8 s at most): hookd is
        # still draining when the replay is asked, however slow the CLI.
        hooks = {EVENT: rec_hook(), "build:success": rec_hook(GO)}
        with Hookd(config(), hooks) as h:
            eid, holder = new_id(), new_id("holder")
            self.assertStatus(h.post(eid), 200, "ok")
            t, out = h.post_bg(holder, event="build:success")
            self.wait_runs(h, 2, "start")
            h.proc.send_signal(signal.SIGTERM)
            self.assertTrue(h.wait_log("SIGTERM received"), h.log_text())
            # Queued for the next start, not run by a daemon on its way out.
            try:
                r = h.cli("replay", eid)
            finally:
                h.write_file("go", "")
            self.assertEqual(r.returncode, 0, r.stderr)
            rc, _ = h.stop()
            t.join(5)
            self.assertStatus(out[0], 200, "ok")
            self.assertEqual(attempts_of(h, eid), [1])
            self.assertEqual(h.event_of(eid)["state"], "queued")
            # The stop's last line counts it among what it left.
            self.assertTrue(h.log_lines("msg=stopped left_queued=1 left_retry_wait=0"),
                            h.log_text())
            h.start()
            self.assertEqual(h.wait_states([eid])[eid]["attempts"], 2)
            self.assertEqual(attempts_of(h, eid), [1, 2])
            # Still the replay after the restart.
            self.assertRegex(h.cli("show", eid).stdout, r"\nattempt 2: replay, started ")
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "replay=true"),
                                 h.log_text())

    def test_replay_marked_in_log_and_show(self):
        """README "Logs and signals": the attempt a replay runs says
        replay=true in the log; `show` and `show --json` mark it, and only
        it (a later resend by the sender is not a replay)."""
        with Hookd(config(), {EVENT: rec_hook(rc='$([ "$HOOK_ATTEMPT" = 2 ] && echo 1 || echo 0)')}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            self.assertEqual(h.cli("replay", eid).returncode, 0)
            self.wait_runs(h, 2, "end")
            h.wait_states([eid], ("failed",))
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "replay=true"),
                                 h.log_text())
            self.assertStatus(h.post(eid), 200, "ok")  # the sender's resend: attempt 3
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=3"))
            lines = [harness.parse_logfmt(ln) for ln in h.log_lines("msg=delivery", "id=" + eid)]
            self.assertEqual([(f.get("attempt", "1"), f.get("replay")) for f in lines],
                             [("1", None), ("2", "true"), ("3", None)], lines)
            # The replay runs async: its failure is final (nothing retries a 500).
            self.assertEqual((lines[1]["mode"], lines[1]["final"]), ("async", "true"))
            out = h.cli("show", eid).stdout
            self.assertRegex(out, r"\nattempt 1: started ")
            self.assertRegex(out, r"\nattempt 2: replay, started .*http 500")
            self.assertRegex(out, r"\nattempt 3: started ")
            d = json.loads(h.cli("show", "--json", eid).stdout)
            self.assertEqual([(a["attempt"], a["replay"]) for a in d["attempt_list"]],
                             [(1, False), (2, True), (3, False)])

    def test_replay_has_retries_of_its_own(self):
        """README "Async mode": a replay is retried as a new async delivery
        is, its count of retries its own: after an async delivery used up
        its retries, and after a sync one failed (its first retry waits
        retry_backoff, not twice that for the attempt before the replay)."""
        ep = "retries = 1\nretry_backoff = 300ms\n"
        with Hookd(config(endpoint="mode = async\n" + ep), {EVENT: rec_hook(rc="75")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 202, "accepted")
            h.wait_states([eid], ("failed",), timeout=10)
            self.assertEqual(attempts_of(h, eid), [1, 2])
            self.assertEqual(h.cli("replay", eid).returncode, 0)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=4",
                                            "final=true"), h.log_text())
            lines = [harness.parse_logfmt(ln) for ln in h.log_lines("msg=delivery", "id=" + eid)]
            self.assertEqual([(f.get("attempt", "1"), f.get("replay"), f.get("retry_in"),
                               f.get("final")) for f in lines[1:]],
                             [("1", None, "300ms", None), ("2", None, None, "true"),
                              ("3", "true", "300ms", None), ("4", None, None, "true")], lines)
            self.assertEqual(h.event_of(eid)["state"], "failed")
        with Hookd(config(endpoint=ep), {EVENT: rec_hook(rc="75")}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 503, "failed")
            self.assertEqual(h.cli("replay", eid).returncode, 0)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=3",
                                            "final=true"), h.log_text())
            lines = [harness.parse_logfmt(ln) for ln in h.log_lines("msg=delivery", "id=" + eid)]
            self.assertEqual([(f.get("attempt", "1"), f.get("mode"), f.get("retry_in"),
                               f.get("final")) for f in lines],
                             [("1", None, None, None), ("2", "async", "300ms", None),
                              ("3", "async", None, "true")], lines)
            self.assertEqual(attempts_of(h, eid), [1, 2, 3])

    def test_resend_after_replay_counts_retries_from_the_first_attempt(self):
        """README "Async mode": a sender's resend of a failed async delivery
        has no count of its own, even after a replay, and a restart keeps
        it so: retries = 3 and 4 attempts so far (1, the replayed 2, the
        resent 3 and its retry 4) make attempt 4 final, not retried as the
        replay's third."""
        ep = "mode = async\nretries = 3\nretry_backoff = 400ms\n"
        rc = '$([ "$HOOK_ATTEMPT" -le 2 ] && echo 1 || echo 75)'
        for restart in (False, True):
            with self.subTest(restart=restart), \
                    Hookd(config(endpoint=ep), {EVENT: rec_hook(rc=rc)}) as h:
                eid = new_id()
                self.assertStatus(h.post(eid), 202, "accepted")
                h.wait_states([eid], ("failed",), timeout=10)
                self.assertEqual(h.cli("replay", eid).returncode, 0)
                self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=2",
                                                "final=true"), h.log_text())
                h.wait_states([eid], ("failed",), timeout=10)
                self.assertStatus(h.post(eid), 202, "accepted")  # the sender's resend: attempt 3
                self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=3",
                                                "retry_in=1600ms"), h.log_text())
                if restart:
                    h.stop()
                    h.start()
                self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid, "attempt=4",
                                                "final=true", timeout=10), h.log_text())
                state = h.wait_states([eid], ("failed",), timeout=10)[eid]
                self.assertEqual(state["attempts"], 4)
                self.assertEqual(attempts_of(h, eid), [1, 2, 3, 4])

    def test_replay_refused_when_body_was_cut(self):
        with Hookd(config(server="journal_body_max = 100\n"), {EVENT: rec_hook()}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            out = h.cli("show", eid).stdout
            self.assertRegex(out, r"body \(cut at 100 of \d+ bytes\)")
            r = h.cli("replay", eid)
            self.assertEqual(r.returncode, 1)
            self.assertIn("body", r.stderr)
            self.assertEqual(attempts_of(h, eid), [1])

    def test_pruned_to_journal_max(self):
        with Hookd(config(server="journal_max = 5\n"), {EVENT: rec_hook()}) as h:
            ids = [new_id("p%02d" % n) for n in range(12)]
            for eid in ids:
                self.assertStatus(h.post(eid), 200, "ok")
            got = wait_until(lambda: len(h.events()) <= 5, 10, step=0.2)
            self.assertTrue(got, "not pruned: %d rows" % len(h.events()))
            # The newest stay.
            self.assertEqual([e["id"] for e in h.events()], ids[::-1][:5])

    def test_pruned_after_journal_keep(self):
        with Hookd(config(server="journal_keep = 1s\n"), {EVENT: rec_hook()}) as h:
            old = new_id("old")
            self.assertStatus(h.post(old), 200, "ok")
            self.assertEqual([e["id"] for e in h.events()], [old])
            got = wait_until(lambda: h.events() == [], 5, step=0.2)
            self.assertTrue(got, "not pruned after journal_keep")
            self.assertEqual(h.cli("show", old).returncode, 1)

    def test_journal_off_commands_exit_2(self):
        with Hookd(config(False), {EVENT: rec_hook()}) as h:
            for args in (["events"], ["events", "--json"], ["show", "x"], ["replay", "x"]):
                r = h.cli(*args)
                self.assertEqual(r.returncode, 2, (args, r))
                self.assertIn("state_dir", r.stderr, args)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    @sqlite_only
    def test_before_the_first_run(self):
        """state_dir set, hookd never started: `events` lists nothing (exit
        0); `show` and `replay` know no delivery (exit 1). SQLite only: "no
        journal yet" is journal.db missing (journal_missing), and reading
        must not make state_dir; a PostgreSQL database always exists."""
        with Hookd(config(), {EVENT: rec_hook()}, start=False) as h:
            r = h.cli("events", "--json")
            self.assertEqual((r.returncode, r.stdout), (0, "[]\n"), r.stderr)
            r = h.cli("events")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split(), ["RECEIVED_AT", "ENDPOINT", "ID", "EVENT",
                                                "STATE", "HTTP", "ATTEMPTS"])
            r = h.cli("show", "x")
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("no journal yet", r.stderr)
            self.assertEqual(h.cli("replay", "x").returncode, 1)
            self.assertFalse(os.path.exists(h.state), "reading makes no state_dir")

    def test_pass_headers_survive_the_journal(self):
        """A header pass_headers names reaches the first run, a run after a
        restart (recovery) and a replay alike: the journal keeps it."""
        hook = rec_hook('echo "$HOOK_ATTEMPT $HOOK_HEADER_X_SOURCE" >> \'{tmp}/seen\'')
        ep = "pass_headers = X-Source\n"
        with Hookd(config(endpoint=ep), {EVENT: hook}) as h:
            eid = new_id()
            self.assertStatus(h.post(eid, headers={"X-Source": "deploy-bot"}), 200, "ok")
            r = h.cli("replay", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            h.wait_states([eid])
            self.assertTrue(wait_until(lambda: len(h.lines_of("seen")) == 2, 10), h.read("seen"))
            self.assertEqual(h.lines_of("seen"), [["1", "deploy-bot"], ["2", "deploy-bot"]])

    def test_replay(self):
        hooks = {EVENT: rec_hook(), "build:success": rec_hook("sleep 2")}
        ep = "\n[event build:success]\nmode = async\n"
        with Hookd(config(extra=ep), hooks) as h:
            eid = new_id()
            self.assertStatus(h.post(eid), 200, "ok")
            r = h.cli("replay", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_runs(h, 2, "end")
            self.assertEqual(attempts_of(h, eid), [1, 2])
            rows = h.wait_states([eid])
            self.assertEqual((rows[eid]["state"], rows[eid]["attempts"]), ("succeeded", 2))
            self.assertRegex(h.cli("show", eid).stdout, r"attempt 2: .*http 200")
            # Once more, through --endpoint.
            self.assertEqual(h.cli("replay", "--endpoint", "northflank", eid).returncode, 0)
            self.wait_runs(h, 3, "end")
            self.assertEqual(attempts_of(h, eid), [1, 2, 3])

            r = h.cli("replay", "no-such-id")
            self.assertEqual(r.returncode, 1)
            self.assertIn("unknown", r.stderr)

            # A pending one (async, its hook still running) is refused.
            slow = new_id("slow")
            self.assertStatus(h.post(slow, event="build:success"), 202, "accepted")
            self.wait_runs(h, 4, "start")
            r = h.cli("replay", slow)
            self.assertEqual(r.returncode, 1)
            self.assertIn("pending", r.stderr)
            h.wait_states([slow])
            self.assertEqual(attempts_of(h, slow), [1])

            h.stop()
            r = h.cli("replay", eid)
            self.assertEqual(r.returncode, 1)
            self.assertIn("not reachable", r.stderr)


class AsyncHooksDir(harness.HookdTestCase):
    """An async delivery whose hooks dir cannot be read when it runs."""

    def test_async_delivery_with_unreadable_hooks_dir_is_not_unhandled(self):
        """An async delivery reads its route when it runs. A hooks dir that
        cannot be read then is a failure (as it is for a sync delivery:
        500 "cannot read hooks dir"), never "no route": "unhandled" would
        record it as succeeded and it could never be retried or replayed."""
        config = harness.NF_CONFIG.replace(
            "kill_grace = 1s\n", "kill_grace = 1s\nstate_dir = {tmp}/state\n{journal}"
        ) + "mode = async\n"
        with harness.Hookd(config, {"build:start": sh("echo ran >> '{tmp}/ran'")},
                           secrets=[NF_TOKEN]) as h:
            os.rename(h.hooks, h.hooks + ".away")
            r = h.northflank()
            self.assertEqual(self.assertAnswer(r, 202).get("status"), "accepted")
            line = h.wait_log("msg=delivery", "id=" + h.last_id, "http=", "mode=async",
                              regex=r"status=(?!accepted)", timeout=10)
            self.assertIsNotNone(line, "the async run was not logged")
            self.assertIn("status=failed", line)
            self.assertIn("http=500", line)
            self.assertIn("cannot read hooks dir", line)
            os.rename(h.hooks + ".away", h.hooks)
            # Not a duplicate: it failed, so a resend runs it again.
            r = h.northflank(event_id=h.last_id)
            self.assertEqual(self.assertAnswer(r, 202).get("status"), "accepted")
            self.assertTrue(h.wait_file("ran", timeout=10), "the resend did not run")


# --------------------------------------------------------------------------
# copying a journal: `hookd journal export` and `import`

class Copy(Base):
    """README "Moving from SQLite": a stopped hookd's journal exported as
    JSON lines and imported into a fresh one reads the same in `events` and
    `show --json`; its pending deliveries run when the new daemon starts,
    and nothing else does; a second import skips them all; a malformed line
    stops the import at that line, naming it, and keeps what came before."""

    SERVER = "journal_body_max = 1KiB\n"
    ENDPOINT = "mode = async\nretry_backoff = 3s\n"
    EXTRA = "[status]\n78 = skip\n"

    def hooks(self):
        return {
            EVENT: rec_hook("printf 'out\\377\\n'"),  # binary output
            "build:failure": rec_hook(rc="1"),
            "build:skip": rec_hook(rc="78"),
            "build:retry": rec_hook(rc='$([ "$HOOK_ATTEMPT" -ge 2 ] && echo 0 || echo 75)'),
            "build:hold": rec_hook("sleep 1"),
        }

    def new_hookd(self, start, sqlite=False):
        """sqlite: SQLite whatever HOOKD_TEST_JOURNAL says (the journal
        moved from); else the tests' journal (the one moved to)."""
        cfg = config(server=self.SERVER, endpoint=self.ENDPOINT, extra=self.EXTRA)
        return Hookd(cfg.replace("{journal}", "") if sqlite else cfg, self.hooks(), start=start)

    @staticmethod
    def comparable(shows, pg):
        """PostgreSQL imports a pending delivery as queued (held by no
        instance), and names no instance for SQLite's attempts."""
        if not pg:
            return shows
        out = json.loads(json.dumps(shows))
        for d in out.values():
            if d["state"] in ("queued", "retry_wait"):
                d["state"] = "queued"
                d["next_due_at"] = None
            for a in d["attempt_list"]:
                a.pop("instance", None)
        return out

    def import_file(self, h, path):
        r = h.cli("journal", "import", path)
        return r.returncode, r.stderr

    def shows(self, h, ids):
        out = {}
        for eid in ids:
            r = h.cli("show", "--json", eid)
            self.assertEqual(r.returncode, 0, r.stderr)
            out[eid] = json.loads(r.stdout)
        return out

    def test_export_import_sqlite(self):
        with self.new_hookd(True, sqlite=True) as old:
            ok, bad, skip, unhandled, retry, hold = (
                new_id(n) for n in ("ok", "bad", "skip", "unhandled", "retry", "hold"))
            for eid, event in ((ok, None), (bad, "build:failure"), (skip, "build:skip"),
                               (unhandled, "job-run:start"), (retry, "build:retry")):
                self.assertStatus(old.post(eid, event=event), 202, "accepted")
                time.sleep(0.01)  # distinct receipt times: the export's order shows
            old.wait_states([ok, unhandled])
            old.wait_states([bad], ("failed",))
            old.wait_states([skip], ("skipped",))
            old.wait_states([retry], ("retry_wait",))
            # A replay that ran (attempt 2 of `bad` is marked), and one that
            # waits for the next start: asked while hookd shuts down.
            self.assertEqual(old.cli("replay", bad).returncode, 0)
            self.assertTrue(wait_until(lambda: old.event_of(bad)["attempts"] == 2 and
                                       old.event_of(bad)["state"] == "failed", 10))
            big = dict(sample_json(), pad="x" * 2000)  # cut when final (journal_body_max)
            self.assertStatus(old.post(hold, body=big, event="build:hold"), 202, "accepted")
            self.wait_runs(old, 1 + 1 + 1 + 1 + 2, "start")  # ok, bad x2, skip, retry, hold
            old.proc.send_signal(signal.SIGTERM)
            self.assertTrue(old.wait_log("SIGTERM received"), old.log_text())
            self.assertEqual(old.cli("replay", ok).returncode, 0)
            old.stop()
            ids = [ok, bad, skip, unhandled, retry, hold]
            states = {e["id"]: e["state"] for e in old.events()}
            self.assertEqual(states, {ok: "queued", bad: "failed", skip: "skipped",
                                      unhandled: "succeeded", retry: "retry_wait",
                                      hold: "succeeded"})

            r = old.cli("journal", "export")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("exported 6", r.stderr)
            lines = r.stdout.splitlines()
            rows = [json.loads(l) for l in lines]
            self.assertEqual([d["id"] for d in rows], ids, "oldest first")
            by_id = {d["id"]: d for d in rows}
            self.assertEqual((by_id[ok]["state"], by_id[ok]["replay_attempt"]), ("queued", 2))
            self.assertFalse(by_id[ok]["body_cut"], "a pending body is whole")
            self.assertTrue(by_id[hold]["body_cut"], "journal_body_max cut a final one")
            self.assertGreater(by_id[hold]["body_len"], 2000)
            self.assertEqual([a["replay"] for a in by_id[bad]["attempt_list"]], [False, True])
            out = by_id[ok]["attempt_list"][0]["hooks"][0]["output_base64"]
            self.assertEqual(__import__("base64").b64decode(out), b"out\377\n")
            before_events, before_shows = old.events(), self.shows(old, ids)

            with self.new_hookd(False) as new:
                path = os.path.join(new.tmp, "journal.jsonl")
                with open(path, "w") as f:
                    f.write(r.stdout)
                self.assertEqual(self.import_file(new, path),
                                 (0, "imported 6, skipped 0 (already there)\n"))
                pg = new.journal_backend == "postgresql"
                pending = lambda e: dict(e, state="queued") if pg and e["state"] == "retry_wait" else e
                self.assertEqual(new.events(), [pending(e) for e in before_events])
                self.assertEqual(self.comparable(self.shows(new, ids), pg),
                                 self.comparable(before_shows, pg))
                # Again, from stdin: all there already.
                again = subprocess.run([harness.HOOKD_BIN, "-c", new.config_path, "journal",
                                        "import"], input=r.stdout, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
                self.assertEqual((again.returncode, again.stderr),
                                 (0, "imported 0, skipped 6 (already there)\n"))

                # The pending ones run, as the journal had them; nothing else.
                new.start()
                rows2 = new.wait_states([ok, retry], timeout=15)
                self.assertEqual((rows2[ok]["attempts"], rows2[retry]["attempts"]), (2, 2))
                self.assertEqual(attempts_of(new, ok), [2])
                self.assertEqual(attempts_of(new, retry), [2])
                self.assertEqual(sorted(i for (i, _, _) in runs(new)), sorted([ok, retry]))
                self.assertRegex(new.cli("show", ok).stdout, r"\nattempt 2: replay, started ")
                self.assertEqual(new.events("--failed"), [e for e in before_events
                                                          if e["id"] == bad])

            # A malformed line: the import stops there, keeps the one before.
            with self.new_hookd(False) as third:
                path = os.path.join(third.tmp, "broken.jsonl")
                with open(path, "w") as f:
                    f.write(lines[0] + "\n{\"v\":1,\"endpoint\":\n" + "\n".join(lines[1:]))
                rc, err = self.import_file(third, path)
                self.assertEqual(rc, 1, err)
                self.assertIn("%s:2: not JSON" % path, err)
                self.assertIn("imported 1, skipped 0 (already there)", err)
                self.assertEqual([e["id"] for e in third.events()], [ok])


if __name__ == "__main__":
    main()
