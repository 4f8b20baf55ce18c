#!/usr/bin/env python3
"""The deliveries API at size (issue 18): a journal of 100,000 deliveries,
then the time of the list (unfiltered, each filter, a deep cursor page) and
of one delivery, median and worst of 20 calls each, printed as a table.
Nothing is asserted: the targets (list < 100 ms, a delivery < 50 ms) are
printed next to the figures.

    HOOKD_BIN=build-release/hookd python3 tests/bench/web_api.py [--rows 100000]
"""

import argparse
import os
import sqlite3
import statistics
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "blackbox"))
import harness  # noqa: E402
from harness import JournalHookd, journal_config, new_id, sh  # noqa: E402

HOOK = sh("echo \"deployed $HOOK_ID\"\n")
ADMIN = "\n[admin]\nlisten = 127.0.0.1:0\n"


def fill(db_path, rows):
    """rows deliveries, copies of the one journaled, each with an attempt
    and a hook run; a tenth failed, events of four kinds."""
    db = sqlite3.connect(db_path)
    (tmpl,) = db.execute("SELECT id FROM deliveries").fetchone()
    cols = [r[1] for r in db.execute("PRAGMA table_info(deliveries)") if r[1] != "id"]
    row = dict(zip(cols, db.execute("SELECT %s FROM deliveries WHERE id=?" % ",".join(cols),
                                    (tmpl,)).fetchone()))
    now = int(time.time() * 1000)
    events = ["build:start", "build:end", "deploy:start", "deploy:fail"]
    t0 = time.monotonic()
    with db:
        for i in range(rows):
            r = dict(row)
            r["delivery_id"] = "bench-%07d" % i
            r["event"] = events[i % 4]
            r["state"] = 4 if i % 10 == 0 else 3
            r["http"] = 500 if i % 10 == 0 else 200
            r["received_ms"] = r["updated_ms"] = now - (rows - i) * 100
            cur = db.execute("INSERT INTO deliveries (%s) VALUES (%s)" % (
                ",".join(cols), ",".join("?" * len(cols))), [r[c] for c in cols])
            rid = cur.lastrowid
            db.execute("INSERT INTO attempts (delivery, attempt, started_ms, finished_ms, http,"
                       " status) VALUES (?, 1, ?, ?, ?, ?)",
                       (rid, r["received_ms"], r["received_ms"] + 7, r["http"],
                        "ok" if r["http"] == 200 else "failed"))
            db.execute("INSERT INTO hook_runs (delivery, attempt, seq, hook, exit, ms, output)"
                       " VALUES (?, 1, 0, ?, 0, 6, ?)", (rid, r["event"], b"deployed\n"))
    db.close()
    return time.monotonic() - t0


def timed(h, path, n=20):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = h.admin("GET", path)
        times.append((time.monotonic() - t0) * 1000)
        assert r.status == 200, (path, r)
    return statistics.median(times), max(times), r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100000)
    args = ap.parse_args()
    h = JournalHookd(journal_config(extra=ADMIN), {"build:start": HOOK})
    with h:
        h.post(new_id())
        h.stop()
        took = fill(os.path.join(h.state, "journal.db"), args.rows)
        print("filled %d deliveries in %.1f s" % (args.rows, took))
        h.start()
        page = timed(h, "/api/v1/deliveries?limit=100", 1)[2].json
        for _ in range(20):  # a deep page: 20 pages down
            page = h.admin("GET", "/api/v1/deliveries?limit=100&cursor=" + page["next"]).json
        deep = page["next"]
        cases = [
            ("list, newest 50", "/api/v1/deliveries", 100),
            ("list, 500", "/api/v1/deliveries?limit=500", 100),
            ("list, state=failed", "/api/v1/deliveries?state=failed", 100),
            ("list, event=deploy:*", "/api/v1/deliveries?event=deploy:*", 100),
            ("list, endpoint", "/api/v1/deliveries?endpoint=northflank", 100),
            ("list, since=1h", "/api/v1/deliveries?since=1h", 100),
            ("list, q (body text, no index)", "/api/v1/deliveries?q=no-such-text-anywhere", 100),
            ("list, page 21 by cursor", "/api/v1/deliveries?limit=100&cursor=" + deep, 100),
            ("one delivery", "/api/v1/deliveries/northflank/bench-0050000", 50),
        ]
        print()
        print("| call | median ms | worst ms | target ms |")
        print("|---|---|---|---|")
        for name, path, target in cases:
            med, worst, _ = timed(h, path)
            print("| %s | %.1f | %.1f | %d |" % (name, med, worst, target))


if __name__ == "__main__":
    main()
