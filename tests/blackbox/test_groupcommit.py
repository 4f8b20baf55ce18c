"""Black-box tests of group commit (README "Delivery guarantees"; issue 20):
an async delivery's 202 leaves only after a sync of the journal's
write-ahead log that began after its record was written, acceptances that
arrive while a sync is under way share the next one, and `kill -9` under
load loses nothing that was answered 202.

The order is seen through tests/blackbox/syncshim.c, a small library loaded
into hookd with LD_PRELOAD that logs every fdatasync/fsync and every write
of a delivery id to the WAL, with CLOCK_MONOTONIC times (Python's
time.monotonic_ns). $HOOKD_SYNCSHIM names it built; else it is compiled
here with cc (skipped without one).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import main, sh  # noqa: E402
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config as config  # noqa: E402

EVENT = "build:start"  # the sample payload's event
MARK = "gcmark-"      # the shim looks for ids that begin so, 24 characters long


def mark_id(n):
    return "%s%017d" % (MARK, n)


_shim = None


def shim_path():
    """The shim library, built by meson or compiled once here; None: none."""
    global _shim
    if _shim is None:
        given = os.environ.get("HOOKD_SYNCSHIM")
        if given and os.path.exists(given):
            _shim = given
        else:
            cc = shutil.which("cc") or shutil.which("gcc")
            if not cc:
                return None
            out = os.path.join(tempfile.mkdtemp(prefix="hookd-shim-"), "syncshim.so")
            src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syncshim.c")
            r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if r.returncode != 0:
                raise AssertionError("cannot build the shim: %s" % r.stdout.decode())
            _shim = out
    return _shim


def read_shim_log(path):
    """(syncs of the WAL [(began, ended)], {id: first time a write of the
    WAL held it}); every sync must have succeeded."""
    syncs, writes = [], {}
    with open(path) as f:
        for line in f:
            w = line.split()
            if w[0] == "S" and w[4] == "wal":
                assert w[5] == "0", "a sync failed: %s" % line
                syncs.append((int(w[2]), int(w[3])))
            elif w[0] == "W":
                writes.setdefault(w[2], int(w[1]))
    return syncs, writes


def post_many(h, ids, clients):
    """Posts ids from `clients` threads at once; {id: (status, arrival ns)}."""
    answers = {}
    lock = threading.Lock()

    def client(part):
        for eid in part:
            r = h.post(eid)
            t = time.monotonic_ns()
            with lock:
                answers[eid] = (r.status, t)
    threads = [threading.Thread(target=client, args=(ids[k::clients],)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return answers


class GroupCommit(unittest.TestCase):

    def shimmed(self, cfg, hooks, delay_ms=0):
        shim = shim_path()
        if not shim:
            self.skipTest("no C compiler for the sync shim")
        h = Hookd(cfg, hooks, start=False)
        h.env.update(LD_PRELOAD=harness.shim_preload(self, shim), SYNCSHIM_LOG=h.path("syncs.log"), SYNCSHIM_MARK=MARK,
                     SYNCSHIM_DELAY_MS=str(delay_ms))
        h.start()
        return h

    def check_order(self, h, answers):
        """Every 202 came after a sync of the WAL that began after its
        record was written (and ended before the 202 arrived)."""
        syncs, writes = read_shim_log(h.path("syncs.log"))
        self.assertTrue(syncs, "no sync of the WAL was logged")
        for eid, (status, arrived) in answers.items():
            self.assertEqual(status, 202, eid)
            self.assertIn(eid, writes, "%s: its record was never written to the WAL" % eid)
            written = writes[eid]
            covering = [s for s in syncs if s[0] >= written and s[1] <= arrived]
            self.assertTrue(covering, "%s: answered 202 with no sync begun after its record "
                            "(written at %d, answered by %d)" % (eid, written, arrived))
        return syncs

    def test_202_after_the_sync_that_covers_it(self):
        cfg = config(server="max_running = 2\n", endpoint="mode = async\n")
        with self.shimmed(cfg, {EVENT: sh("exit 0")}) as h:
            ids = [mark_id(n) for n in range(120)]
            answers = post_many(h, ids, 8)
            self.assertEqual(len(answers), len(ids))
            self.check_order(h, answers)
            rows = h.wait_states(ids, timeout=60)
            self.assertEqual(len(rows), len(ids))

    def test_acceptances_share_a_slow_sync(self):
        # Each sync of the WAL takes 40 ms: the 16 clients' acceptances that
        # arrive while one is under way are answered after the next one,
        # together. One sync each would take 160 x 40 ms = 6.4 s at least.
        cfg = config(server="max_running = 2\n", endpoint="mode = async\n")
        with self.shimmed(cfg, {EVENT: sh("exit 0")}, delay_ms=40) as h:
            ids = [mark_id(1000 + n) for n in range(160)]
            t0 = time.monotonic()
            answers = post_many(h, ids, 16)
            took = time.monotonic() - t0
            syncs = self.check_order(h, answers)
            during = [s for s in syncs if s[1] <= max(a for _, a in answers.values())]
            self.assertLess(len(during), len(ids) // 3,
                            "%d syncs for %d acceptances in %.1f s: not shared"
                            % (len(during), len(ids), took))

    def test_kill9_under_load_loses_no_202(self):
        cfg = config(server="max_running = 2\n", endpoint="mode = async\n")
        hook = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\nexit 0")
        with Hookd(cfg, {EVENT: hook}) as h:
            accepted = []
            stop = threading.Event()
            lock = threading.Lock()

            def client(k):
                n = 0
                while not stop.is_set():
                    eid = "kill-%d-%d" % (k, n)
                    n += 1
                    try:
                        r = h.post(eid, timeout=5)
                    except OSError:
                        continue  # the daemon died under it: no answer, no promise
                    if r.status == 202:
                        with lock:
                            accepted.append(eid)
            threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            wait = harness.wait_until(lambda: len(accepted) >= 100, 30)
            h.kill9()
            stop.set()
            for t in threads:
                t.join(30)
            self.assertTrue(wait, "only %d accepted before the kill" % len(accepted))
            h.kill_orphaned_hooks()
            h.start()
            rows = h.wait_states(accepted, timeout=120)
            missing = [eid for eid in accepted if eid not in rows]
            self.assertEqual(missing, [], "answered 202, then lost")
            bad = {eid: r["state"] for eid, r in rows.items() if r["state"] != "succeeded"}
            self.assertEqual(bad, {})
            ran = set(h.ran())
            self.assertEqual([eid for eid in accepted if eid not in ran], [],
                             "answered 202, never ran")


if __name__ == "__main__":
    main()
