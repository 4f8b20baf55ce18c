"""The deliveries page and its JSON API on the admin listener (README
"Deliveries page"; issue 18): the list with its filters and cursor, one
delivery in full (no credential in it), replay one and by filter, the
rejections ring, the memory of recent deliveries without a journal, the
page's files from the binary, the security headers on every answer, and
authentication: tokens, the read-only token, the login cookie, cross-site
POSTs refused, wrong tokens rate-limited and logged without the token.
"""

import json
import os
import socket
import sqlite3
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NF_TOKEN, main, marker_hook, new_id, run_cli, sh, wait_until  # noqa: E402
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config  # noqa: E402

OK = sh("echo \"ran $HOOK_ID\"\n")
FAIL = sh("echo 'failing <script>' >&2\nexit 3\n")
ADMIN = "\n[admin]\nlisten = 127.0.0.1:0\n"
TOKEN = "admin-t0ken-0123456789abcdef"
RO_TOKEN = "readonly-t0ken-0123456789abcd"
HOSTILE = ["<script>document.title='pwned'</script>", "\"><img src=x onerror=alert(1)>",
           "javascript:alert(1)", "line\u2028sep"]


def config(state=True, admin=ADMIN):
    return journal_config(state, extra=admin)


def q(**kw):
    return "?" + urllib.parse.urlencode(kw) if kw else ""


def path_of(ep, i, tail=""):
    return "/api/v1/deliveries/%s/%s%s" % (urllib.parse.quote(ep, safe=""),
                                          urllib.parse.quote(i, safe=""), tail)


class Base(unittest.TestCase):
    maxDiff = None

    def get(self, h, path, headers=None, status=200):
        r = h.admin("GET", path, headers=headers)
        self.assertEqual(r.status, status, (path, r))
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r)
        self.assertNotIn(NF_TOKEN.encode(), r.raw)
        return r.json

    def assertSecurityHeaders(self, r):
        csp = r.headers.get("content-security-policy", "")
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(r.headers.get("referrer-policy"), "no-referrer")

    def deliveries(self, h, n):
        """n deliveries: even ones build:start (ok), odd ones deploy:fail (exit 3)."""
        ids = []
        for i in range(n):
            eid = new_id("web%d" % i)
            ev = "build:start" if i % 2 == 0 else "deploy:fail"
            r = h.post(eid, event=ev)
            self.assertIn(r.status, (200, 500), r)
            ids.append(eid)
            time.sleep(0.002)
        return ids


class Api(Base):

    def test_list_filters_and_cursor(self):
        with Hookd(config(), {"build:start": OK, "deploy:fail": FAIL}) as h:
            ids = self.deliveries(h, 6)
            body = self.get(h, "/api/v1/deliveries")
            self.assertTrue(body["journal"])
            got = [d["id"] for d in body["deliveries"]]
            self.assertEqual(got, list(reversed(ids)), "newest first")
            self.assertIsNone(body["next"])
            first = body["deliveries"][0]
            # README "Admin listener": every key an item has, and no other.
            self.assertEqual(set(first), {"endpoint", "id", "event", "state", "received_at",
                                          "received_ms", "http", "client_gone", "attempts",
                                          "status", "duration_ms", "next_retry_at"})
            self.assertEqual(first["state"], "failed")
            self.assertEqual(first["http"], 500)
            self.assertEqual(first["attempts"], 1)
            # Filters.
            failed = self.get(h, "/api/v1/deliveries" + q(state="failed"))["deliveries"]
            self.assertEqual([d["id"] for d in failed], [ids[5], ids[3], ids[1]])
            ok = self.get(h, "/api/v1/deliveries" + q(event="build:*"))["deliveries"]
            self.assertEqual({d["event"] for d in ok}, {"build:start"})
            self.assertEqual(len(ok), 3)
            self.assertEqual(len(self.get(h, "/api/v1/deliveries" + q(endpoint="northflank"))
                                 ["deliveries"]), 6)
            self.assertEqual(self.get(h, "/api/v1/deliveries" + q(endpoint="nope"))
                             ["deliveries"], [])
            text = self.get(h, "/api/v1/deliveries" + q(q=ids[2]))["deliveries"]
            self.assertEqual(text, [], "the id is in the headers, not the body")
            text = self.get(h, "/api/v1/deliveries" + q(q="deploy:fail"))["deliveries"]
            self.assertEqual(len(text), 3)
            future = int(time.time() * 1000) + 60000
            self.assertEqual(self.get(h, "/api/v1/deliveries" + q(since=future))
                             ["deliveries"], [])
            self.assertEqual(len(self.get(h, "/api/v1/deliveries" + q(since="1h"))
                                 ["deliveries"]), 6)
            # Cursor paging: pages of 4 then 2, nothing twice.
            p1 = self.get(h, "/api/v1/deliveries" + q(limit=4))
            self.assertEqual(len(p1["deliveries"]), 4)
            self.assertIsNotNone(p1["next"])
            p2 = self.get(h, "/api/v1/deliveries" + q(limit=4, cursor=p1["next"]))
            self.assertEqual([d["id"] for d in p1["deliveries"] + p2["deliveries"]],
                             list(reversed(ids)))
            self.assertIsNone(p2["next"])
            # Refusals.
            for bad in (q(state="bogus"), q(limit=0), q(limit=501), q(limit="x"),
                        q(cursor="zz"), q(since="yesterday"), "?q=%00", "?event=%zz",
                        q(cursor="99999999999999999999.1"), q(cursor="1.99999999999999999999"),
                        q(cursor="9223372036854775808.1"), q(cursor="-1.0"),
                        q(cursor="1.-1"), q(cursor="+1.2"), q(cursor=" 1.2"), q(cursor="1.2x")):
                self.get(h, "/api/v1/deliveries" + bad, status=400)
            self.assertEqual(len(self.get(h, "/api/v1/deliveries" + q(limit=500))
                                 ["deliveries"]), 6)
            r = h.admin("POST", "/api/v1/deliveries", body=b"")
            self.assertEqual(r.status, 405)
            self.get(h, "/api/v1/nothing", status=404)

    def test_one_delivery_in_full(self):
        with Hookd(config(), {"build:start": OK, "deploy:fail": FAIL}) as h:
            eid = new_id()
            h.post(eid, event="deploy:fail")
            d = self.get(h, path_of("northflank", eid))
            self.assertEqual(d["id"], eid)
            self.assertEqual(d["state"], "failed")
            names = {x["name"].lower() for x in d["headers"]}
            self.assertIn("x-northflank-notification-integration-event-id", names)
            self.assertNotIn("x-northflank-notification-integration-token", names)
            self.assertEqual(json.loads(d["body"])["event"], "deploy:fail")
            env = {x["name"]: x["value"] for x in d["environment"]}
            self.assertEqual(env.get("HOOK_ID"), eid)
            self.assertEqual(env.get("HOOK_EVENT"), "deploy:fail")
            self.assertNotIn(NF_TOKEN, json.dumps(d))
            self.assertEqual(len(d["attempt_list"]), 1)
            a = d["attempt_list"][0]
            self.assertEqual(a["attempt"], 1)
            self.assertEqual(a["http"], 500)
            hook = a["hooks"][0]
            self.assertEqual(hook["hook"], "deploy:fail")
            self.assertEqual(hook["exit"], 3)
            self.assertIsNone(hook["signal"])
            self.assertIn("failing <script>", hook["output"])
            self.get(h, path_of("northflank", "no-such-id"), status=404)
            self.get(h, path_of("nope", eid), status=404)
            self.get(h, path_of("northflank", eid, "/other"), status=404)
            self.get(h, "/api/v1/deliveries/northflank/%zz", status=404)

    def test_environment_of_a_cut_body_is_not_guessed(self):
        """A body over journal_body_max is kept cut: the variables its hook
        got (HOOK_REF, after the cut) cannot be rebuilt from the kept part,
        so the API says so instead of listing a shorter environment as the
        one the hook got."""
        dump = sh("env | grep '^HOOK_REF='\n")
        conf = journal_config(server="journal_body_max = 1KiB\n", extra=ADMIN)
        with Hookd(conf, {"big": dump, "small": dump}) as h:
            big, small = new_id("big"), new_id("small")
            r = h.post(big, body={"event": "big", "pad": "x" * 4000, "ref": "main"})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(h.post(small, body={"event": "small", "ref": "main"}).status, 200)
            d = self.get(h, path_of("northflank", big))
            self.assertTrue(d["body_cut"], d)
            self.assertEqual(d["attempt_list"][0]["hooks"][0]["output"], "HOOK_REF=main\n")
            self.assertIsNone(d["environment"], "a guess without HOOK_REF=main: %r"
                              % d["environment"])
            self.assertIn("cannot be rebuilt", d["environment_unknown"])
            self.assertIsNone(d["env_omitted"], d)
            # hookd show says the same: not known, rather than a count.
            shown = json.loads(h.cli("show", "--json", big).stdout)
            self.assertIsNone(shown["env_omitted"], shown)
            self.assertNotIn("env_omitted:", h.cli("show", big).stdout)
            d = self.get(h, path_of("northflank", small))
            env = {x["name"]: x["value"] for x in d["environment"]}
            self.assertEqual(env.get("HOOK_REF"), "main")
            self.assertNotIn("environment_unknown", d)
            self.assertEqual(d["env_omitted"], 0, d)
            shown = json.loads(h.cli("show", "--json", small).stdout)
            self.assertEqual(shown["env_omitted"], 0, shown)

    def test_looking_at_a_delivery_logs_nothing_about_it(self):
        """The page rebuilds a delivery's environment from the journal; a
        payload that lost variables to the limits was logged "environment
        incomplete" again at each look, as if it had run again. Now only
        its run logs it, and the API says how many its hooks did not get,
        as the answer does."""
        with Hookd(config(), {"big:array": OK}) as h:
            eid = new_id()
            r = h.post(eid, body={"event": "big:array", "a": list(range(40))})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["env_omitted"], 8, r.json)
            h.wait_log("msg=delivery", "id=%s " % eid)
            looks = [self.get(h, path_of("northflank", eid)) for _ in range(3)]
            time.sleep(0.2)
            lines = h.log_lines('msg="environment incomplete"', "id=%s " % eid)
            self.assertEqual(len(lines), 1, lines)
            for d in looks:
                self.assertEqual(d.get("env_omitted"), 8, d)

    def test_looking_at_a_delivery_of_a_removed_endpoint_logs_nothing(self):
        """A look at a delivery whose endpoint a reload removed logged an
        error ("no longer configured") at each look, as recovery does."""
        with Hookd(config(), {"build:start": OK}) as h:
            eid = new_id()
            self.assertEqual(h.post(eid, event="build:start").status, 200)
            h.wait_log("msg=delivery", "id=%s " % eid)
            h.write_config(config().replace("[endpoint northflank]", "[endpoint renamed]"))
            self.assertIn("config reloaded", h.reload())
            mark = len(h.logs())
            for _ in range(3):
                d = self.get(h, path_of("northflank", eid))
                self.assertIsNone(d.get("environment"), d)
            time.sleep(0.2)
            self.assertEqual([l for l in h.logs()[mark:] if eid in l], [])

    def test_replay_one_and_by_filter(self):
        with Hookd(config(), {"build:start": OK, "deploy:fail": FAIL}) as h:
            ids = self.deliveries(h, 4)
            r = h.admin("POST", path_of("northflank", ids[0], "/replay"), body=b"")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["status"], "queued")
            self.assertTrue(wait_until(
                lambda: self.get(h, path_of("northflank", ids[0]))["attempts"] == 2, 10))
            d = self.get(h, path_of("northflank", ids[0]))
            self.assertEqual([a["attempt"] for a in d["attempt_list"]], [1, 2])
            self.assertIsNotNone(h.wait_log("replay"), h.log_text())
            r = h.admin("POST", path_of("northflank", "unknown", "/replay"), body=b"")
            self.assertEqual(r.status, 404)
            r = h.admin("GET", path_of("northflank", ids[0], "/replay"))
            self.assertEqual(r.status, 405)
            # By filter: the two failed ones.
            r = h.admin("POST", "/api/v1/replay" + q(state="failed"), body=b"")
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.json["queued"], 2)
            self.assertEqual(r.json["refused"], 0)
            self.assertTrue(wait_until(lambda: all(
                self.get(h, path_of("northflank", i))["attempts"] == 2 and
                self.get(h, path_of("northflank", i))["state"] == "failed"
                for i in (ids[1], ids[3])), 10))
            r = h.admin("POST", "/api/v1/replay", body=b"")
            self.assertEqual(r.status, 400, "a filter is needed")

    def test_skipped_is_a_state_of_its_own(self):
        """A delivery its event's match turns away is listed as skipped."""
        conf = config(admin=ADMIN + "\n[event build:start]\nmatch = no.such.path=yes\n")
        with Hookd(conf, {"build:start": OK}) as h:
            i = new_id("skip")
            h.post(i)
            got = [d["id"] for d in self.get(h, "/api/v1/deliveries" + q(state="skipped"))
                   ["deliveries"]]
            self.assertEqual(got, [i])
            self.assertEqual(self.get(h, "/api/v1/deliveries" + q(state="succeeded"))
                             ["deliveries"], [])
            self.assertEqual(self.get(h, path_of("northflank", i))["state"], "skipped")

    def test_live_output_memory_is_bounded(self):
        """A flood of output (12 deliveries of 8 MB each, nobody watching)
        keeps the live output within its budget (4 MiB), not 96 MB."""
        flood = sh("awk 'BEGIN { s = sprintf(\"%4000s\", \"\"); gsub(/ /, \"a\", s);"
                   " for (i = 0; i < 2000; i++) print s }'\n")
        with Hookd(config(), {"build:start": OK, "build:flood": flood}) as h:
            h.post(new_id())
            before = harness.rss_kb(h.proc.pid)
            ids = [new_id("flood%d" % i) for i in range(12)]
            for i in ids:
                self.assertEqual(h.post(i, event="build:flood").status, 200)
            grown = harness.rss_kb(h.proc.pid) - before
            if not harness.binary_has_asan():  # its RSS is shadow memory and quarantine
                self.assertLess(grown, 30 * 1024, "RSS grew %d kB" % grown)
            # The newest delivery's lines are still there, the oldest's gone.
            ev, _ = self.sse(h, path_of("northflank", ids[-1], "/output"))
            self.assertEqual(ev[-1][1], "outcome")
            self.assertGreater(len(ev), 100)

    def sse(self, h, path, last=None):
        """One piece of an event stream -> ([(id, event, data)], raw text)."""
        r = h.admin("GET", path, headers={"Last-Event-ID": last} if last else None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("text/event-stream"), r)
        events = []
        for block in r.raw.decode().split("\n\n"):
            f = {}
            for line in block.split("\n"):
                if ":" in line and not line.startswith(":"):
                    k, v = line.split(":", 1)
                    f[k] = v[1:] if v.startswith(" ") else v
            if "event" in f:
                events.append((f.get("id"), f["event"], json.loads(f["data"])))
        return events, r.raw.decode()

    def test_output_events(self):
        slow = sh("echo 'first <b>'\nsleep 1\necho second\nsleep 1\necho third\n")
        with Hookd(config(), {"build:start": OK, "build:slow": slow}) as h:
            done = new_id("done")
            h.post(done)
            ev, raw = self.sse(h, path_of("northflank", done, "/output"))
            self.assertIn("retry:", raw)
            self.assertEqual([e[1] for e in ev], ["line", "outcome"])
            self.assertEqual(ev[0][2], {"hook": "build:start", "line": "ran " + done})
            self.assertEqual(ev[1][2]["state"], "succeeded")
            self.assertEqual(ev[1][2]["http"], 200)
            # A Last-Event-ID that is not plain digits in range starts over.
            for last in ("99999999999999999999", "-1", "1x"):
                ev, _ = self.sse(h, path_of("northflank", done, "/output"), last)
                self.assertEqual([e[1] for e in ev], ["line", "outcome"], last)
            ev, _ = self.sse(h, path_of("northflank", done, "/output"), "1")
            self.assertEqual([e[1] for e in ev], ["outcome"])
            # A running one: each piece brings the lines after Last-Event-ID,
            # the last one the outcome.
            live = new_id("live")
            t, out = h.post_bg(live, event="build:slow")
            self.assertTrue(wait_until(lambda: h.admin(
                "GET", path_of("northflank", live)).status == 200, 10))
            lines, last, outcome = [], None, None
            deadline = time.monotonic() + 15
            while outcome is None and time.monotonic() < deadline:
                ev, _ = self.sse(h, path_of("northflank", live, "/output"), last)
                for i, kind, data in ev:
                    if kind == "line":
                        lines.append(data["line"])
                        last = i
                    else:
                        outcome = data
                if not lines:
                    time.sleep(0.05)
            t.join(10)
            self.assertEqual(lines, ["first <b>", "second", "third"])
            self.assertEqual(outcome["state"], "succeeded")
            self.get(h, path_of("northflank", "nope", "/output"), status=404)

    def test_rejections_ring(self):
        with Hookd(config(), {"build:start": OK}) as h:
            r = h.post(new_id(), token="wrong-token-value-123")
            self.assertEqual(r.status, 401)
            h.request("POST", "/nowhere", b"{}", {"Content-Type": "application/json"})
            rej = self.get(h, "/api/v1/rejections")["rejections"]
            self.assertGreaterEqual(len(rej), 2)
            self.assertEqual(rej[0]["http"], 404)
            self.assertEqual(rej[0]["path"], "/nowhere")
            self.assertEqual(rej[1]["http"], 401)
            self.assertEqual(rej[1]["endpoint"], "northflank")
            self.assertEqual(rej[1]["client"], "127.0.0.1")
            self.assertTrue(rej[1]["reason"])
            self.assertNotIn("wrong-token-value-123", json.dumps(rej))
            # The HTTP layer's own refusals name the client too.
            harness.raw_exchange(h.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            rej = self.get(h, "/api/v1/rejections")["rejections"]
            self.assertEqual(rej[0]["http"], 400)
            self.assertEqual(rej[0]["client"], "127.0.0.1")
            self.assertNotIn(NF_TOKEN, json.dumps(rej))

    def test_without_journal_from_memory(self):
        with Hookd(config(state=False), {"build:start": OK, "deploy:fail": FAIL}) as h:
            ids = self.deliveries(h, 3)
            body = self.get(h, "/api/v1/deliveries")
            self.assertFalse(body["journal"])
            self.assertEqual([d["id"] for d in body["deliveries"]], list(reversed(ids)))
            self.assertEqual(len(self.get(h, "/api/v1/deliveries" + q(state="failed"))
                                 ["deliveries"]), 1)
            p1 = self.get(h, "/api/v1/deliveries" + q(limit=2))
            p2 = self.get(h, "/api/v1/deliveries" + q(limit=2, cursor=p1["next"]))
            self.assertEqual([d["id"] for d in p1["deliveries"] + p2["deliveries"]],
                             list(reversed(ids)))
            d = self.get(h, path_of("northflank", ids[1]))
            self.assertEqual(d["attempt_list"][0]["hooks"][0]["exit"], 3)
            self.assertNotIn(NF_TOKEN, json.dumps(d))
            r = h.admin("POST", path_of("northflank", ids[1], "/replay"), body=b"")
            self.assertEqual(r.status, 409)
            self.assertIn("journal is off", r.json["error"])
            self.assertFalse(self.get(h, "/api/v1/status")["journal"])

    def test_page_and_headers(self):
        with Hookd(config(), {"build:start": OK}) as h:
            for path in ("/", "/deliveries/northflank/x", "/rejections"):
                r = h.admin("GET", path)
                self.assertEqual(r.status, 200, path)
                self.assertTrue(r.headers["content-type"].startswith("text/html"))
                self.assertSecurityHeaders(r)
                html = r.raw.decode()
                self.assertNotRegex(html, r"<script>|<script [^>]*>[^<]", "no inline script")
                self.assertNotRegex(html, r" on[a-z]+=", "no inline handler")
                self.assertNotIn("http://", html.replace("http://www.w3.org", ""))
            total = 0
            for name in ("app.js", "style.css"):
                r = h.admin("GET", "/static/" + name)
                self.assertEqual(r.status, 200, name)
                self.assertSecurityHeaders(r)
                total += len(r.raw)
                self.assertNotIn(b"innerHTML", r.raw)
            total += len(h.admin("GET", "/").raw)
            self.assertLess(total, 64 * 1024)
            for path in ("/api/v1/deliveries", "/healthz", "/metrics", "/nope"):
                self.assertSecurityHeaders(h.admin("GET", path))
            self.assertEqual(h.admin("GET", "/static/nope.js").status, 404)
            self.assertEqual(h.admin("POST", "/", body=b"").status, 405)

    def test_text_search_is_bounded(self):
        """q searches at most the newest 10,000 rows a page (the answer says
        so); "next" goes on below them, where the match is."""
        with Hookd(config(), {"build:start": OK}) as h:
            body = harness.sample_json()
            body["description"] = "needle-7f3a"
            needle = new_id("needle")
            self.assertEqual(h.post(needle, body=body).status, 200)
            h.stop()
            db = sqlite3.connect(os.path.join(h.state, "journal.db"))
            cols = [r[1] for r in db.execute("PRAGMA table_info(deliveries)") if r[1] != "id"]
            row = dict(zip(cols, db.execute("SELECT %s FROM deliveries" % ",".join(cols))
                           .fetchone()))
            with db:
                for i in range(10005):
                    r = dict(row, delivery_id="hay-%05d" % i, body=b"{}",
                             received_ms=row["received_ms"] + 1 + i)
                    db.execute("INSERT INTO deliveries (%s) VALUES (%s)" % (
                        ",".join(cols), ",".join("?" * len(cols))), [r[c] for c in cols])
            db.close()
            h.start()
            p1 = self.get(h, "/api/v1/deliveries" + q(q="needle-7f3a"))
            self.assertEqual(p1["searched"], 10000)
            self.assertEqual(p1["deliveries"], [])
            self.assertIsNotNone(p1["next"])
            p2 = self.get(h, "/api/v1/deliveries" + q(q="needle-7f3a", cursor=p1["next"]))
            self.assertEqual([d["id"] for d in p2["deliveries"]], [needle])
            self.assertIsNone(p2["next"])
            self.assertNotIn("searched", self.get(h, "/api/v1/deliveries"))
            # No row twice, none skipped, across the window's edge.
            seen, cur = [], None
            while True:
                pg = self.get(h, "/api/v1/deliveries" + q(q="{}", limit=500,
                                                          **({"cursor": cur} if cur else {})))
                seen += [d["id"] for d in pg["deliveries"]]
                cur = pg["next"]
                if not cur:
                    break
            self.assertEqual(len(seen), 10005)
            self.assertEqual(len(set(seen)), 10005)

    def test_host_checked_without_a_token(self):
        """DNS rebinding: without a token only localhost, an IP literal or
        the listen address is a Host the page answers to (else 421)."""
        with Hookd(config(), {"build:start": OK}) as h:
            port = h.wait_admin_port()
            for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example",
                         "localhost.evil.example", "[::1].evil.example", "1:2"):
                r = h.admin("GET", "/api/v1/deliveries", headers={"Host": host})
                self.assertEqual(r.status, 421, host)
                self.assertSecurityHeaders(r)
                self.assertEqual(h.admin("GET", "/", headers={"Host": host}).status, 421)
            for host in ("localhost", "LOCALHOST:%d" % port, "127.0.0.1", "127.0.0.1:%d" % port,
                         "[::1]", "[::1]:%d" % port, "10.1.2.3:80"):
                self.get(h, "/api/v1/deliveries", headers={"Host": host})
            self.assertIsNotNone(h.wait_log("DNS rebinding"), h.log_text())

    def test_metrics_open_without_token_file(self):
        """Without token_file (loopback only) /metrics needs no token."""
        with Hookd(config(), {"build:start": OK}) as h:
            h.post(new_id())
            r = h.admin("GET", "/metrics")
            self.assertEqual(r.status, 200, r)
            self.assertIn('endpoint="northflank"', r.text)
            self.assertEqual(h.admin("GET", "/healthz").status, 200)

    def test_http_layer_answers_carry_the_headers(self):
        """The admin listener's own refusals (431, 400) carry them too."""
        with Hookd(config(), {"build:start": OK}) as h:
            port = h.wait_admin_port()
            big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
            bad = b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
            for data, status in ((big, 431), (bad, 400)):
                r = harness.parse_raw_response(harness.raw_exchange(port, data))
                self.assertEqual(r.status, status, r)
                self.assertSecurityHeaders(r)


AUTH_ADMIN = ("\n[admin]\nlisten = 127.0.0.1:0\ntoken_file = {tmp}/token\n"
              "readonly_token_file = {tmp}/ro-token\n")


class Auth(Base):

    def daemon(self, hooks=None):
        h = Hookd(config(admin=AUTH_ADMIN), hooks or {"build:start": OK}, start=False)
        h.write_file("token", TOKEN + "\n")
        h.write_file("ro-token", RO_TOKEN + "\n")
        h.secrets += [TOKEN, RO_TOKEN]
        h.start()
        return h

    def test_tokens_and_readonly(self):
        with self.daemon() as h:
            eid = new_id()
            h.post(eid)
            r = h.admin("GET", "/api/v1/deliveries")
            self.assertEqual(r.status, 401)
            self.assertSecurityHeaders(r)
            self.assertEqual(h.admin("GET", "/").status, 200, "the page itself is public")
            bearer = {"Authorization": "Bearer " + TOKEN}
            ro = {"Authorization": "Bearer " + RO_TOKEN}
            self.assertEqual(len(self.get(h, "/api/v1/deliveries", bearer)["deliveries"]), 1)
            self.assertEqual(len(self.get(h, "/api/v1/deliveries", ro)["deliveries"]), 1)
            self.get(h, path_of("northflank", eid), ro)
            r = h.admin("POST", path_of("northflank", eid, "/replay"), b"", ro)
            self.assertEqual(r.status, 403, "read-only cannot replay")
            r = h.admin("POST", "/api/v1/replay" + q(state="succeeded"), b"", ro)
            self.assertEqual(r.status, 403)
            r = h.admin("POST", path_of("northflank", eid, "/replay"), b"", bearer)
            self.assertEqual(r.status, 202)
            self.assertEqual(h.admin("GET", "/api/v1/deliveries",
                                     headers={"Authorization": "Bearer " + TOKEN + "x"}).status,
                             401)
            self.assertEqual(h.admin("GET", "/api/v1/deliveries",
                                     headers={"Authorization": "Basic " + TOKEN}).status, 401)
            self.assertIsNotNone(h.wait_log("wrong admin token"), h.log_text())
            # With a token, any Host (a proxy's name) will do.
            self.get(h, "/api/v1/deliveries", dict(bearer, Host="hooks.example.com"))
            self.assertNotIn(TOKEN, h.log_text())

    def test_metrics_need_a_token(self):
        """With token_file, /metrics names every endpoint, hook and route:
        it needs a token as the API does (either one, or the login cookie);
        /healthz stays open for a load balancer."""
        with self.daemon() as h:
            h.post(new_id())
            api = h.admin("GET", "/api/v1/deliveries")
            for headers in (None, {"Authorization": "Bearer " + TOKEN + "x"},
                            {"Authorization": "Basic " + TOKEN},
                            {"Cookie": "hookd_session=" + "0" * 64}):
                r = h.admin("GET", "/metrics", headers=headers)
                self.assertEqual(r.status, 401, (headers, r))
                self.assertEqual(r.headers.get("www-authenticate"), 'Bearer realm="hookd"')
                self.assertEqual(r.headers.get("www-authenticate"),
                                 api.headers.get("www-authenticate"), "as the API answers")
                self.assertSecurityHeaders(r)
                self.assertEqual(r.json["status"], "rejected")
                for name in ("northflank", "build", "hookd_", "/webhook"):
                    self.assertNotIn(name, r.text, (headers, r.text))
            self.assertIsNotNone(h.wait_log("admin refused", "/metrics", "no admin token"),
                                 h.log_text())
            self.assertIsNotNone(h.wait_log("admin refused", "/metrics", "wrong admin token"))
            r = h.admin("GET", "/healthz")
            self.assertEqual((r.status, r.json), (200, {"status": "ok"}))
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": RO_TOKEN}).encode())
            cookie = {"Cookie": r.headers["set-cookie"].split(";")[0]}
            for headers in ({"Authorization": "Bearer " + TOKEN},
                            {"Authorization": "Bearer " + RO_TOKEN}, cookie):
                r = h.admin("GET", "/metrics", headers=headers)
                self.assertEqual(r.status, 200, (headers, r))
                self.assertIn('endpoint="northflank"', r.text)
                ok, out = harness.promtool_check(r.text)
                self.assertTrue(ok and not out.strip(), "promtool:\n%s\n---\n%s" % (out, r.text))

    def test_wrong_tokens_rate_limited(self):
        """Wrong tokens are limited, right ones never (behind a proxy all
        clients share one address): 10 a minute from one client, 100 from
        all together."""
        with self.daemon() as h:
            codes = [h.admin("GET", "/api/v1/deliveries",
                             headers={"Authorization": "Bearer guess-%d" % i}).status
                     for i in range(12)]
            self.assertEqual(codes[:10], [401] * 10)
            self.assertEqual(codes[10:], [429, 429])
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": "guess"}).encode(),
                        {"Content-Type": "application/json"})
            self.assertEqual(r.status, 429)
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode(),
                        {"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, "the right token passes")
            self.get(h, "/api/v1/deliveries", {"Authorization": "Bearer " + RO_TOKEN})

    def test_global_failure_budget(self):
        """Guesses spread over many addresses (127.0.0.N) meet a budget for
        all clients together: 100 a minute; a right token still passes."""
        with self.daemon() as h:
            port = h.wait_admin_port()

            def get_from(src, token):
                s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(src, 0))
                try:
                    s.sendall(("GET /api/v1/deliveries HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
                               % token).encode())
                    return harness.recv_response(s)[0]
                finally:
                    s.close()
            codes = [get_from("127.0.0.%d" % (2 + i // 9), "guess-%d" % i) for i in range(100)]
            self.assertEqual(codes, [401] * 100)
            self.assertEqual(get_from("127.0.0.50", "guess"), 429, "the budget of all")
            self.assertEqual(get_from("127.0.0.51", TOKEN), 200, "a right token passes")

    def test_sessions_end_when_a_token_changes(self):
        with self.daemon() as h:
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode())
            sid = r.headers["set-cookie"].split(";")[0]
            self.get(h, "/api/v1/status", {"Cookie": sid})
            self.assertIn("config reloaded", h.reload())
            self.get(h, "/api/v1/status", {"Cookie": sid})  # same tokens: it lives
            h.write_file("ro-token", RO_TOKEN + "-new\n")
            self.assertIn("config reloaded", h.reload())
            self.assertEqual(h.admin("GET", "/api/v1/status", headers={"Cookie": sid}).status,
                             401, "a token changed: every session ended")
            self.assertIsNotNone(h.wait_log("every session ended"), h.log_text())
            self.get(h, "/api/v1/status", {"Authorization": "Bearer " + RO_TOKEN + "-new"})

    def test_readonly_logins_do_not_evict_write_sessions(self):
        with self.daemon() as h:
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode())
            sid = r.headers["set-cookie"].split(";")[0]
            for _ in range(80):
                r = h.admin("POST", "/api/v1/login", json.dumps({"token": RO_TOKEN}).encode())
                self.assertEqual(r.status, 200)
            st = self.get(h, "/api/v1/status", {"Cookie": sid})
            self.assertEqual(st["access"], "write")

    def test_login_cookie_logout(self):
        with self.daemon() as h:
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": "nope"}).encode())
            self.assertEqual(r.status, 401)
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": RO_TOKEN}).encode())
            self.assertEqual(r.status, 200, r)
            cookie = r.headers["set-cookie"]
            self.assertIn("HttpOnly", cookie)
            self.assertIn("SameSite=Strict", cookie)
            self.assertNotIn(RO_TOKEN, cookie)
            self.assertNotIn("Secure", cookie)
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": RO_TOKEN}).encode(),
                        {"X-Forwarded-Proto": "https"})
            self.assertIn("; Secure", r.headers["set-cookie"], "behind a TLS proxy")
            sid = cookie.split(";")[0]
            st = self.get(h, "/api/v1/status", {"Cookie": sid})
            self.assertEqual(st["access"], "read")
            r = h.admin("POST", "/api/v1/logout", b"", {"Cookie": sid})
            self.assertEqual(r.status, 200)
            self.assertIn("Max-Age=0", r.headers["set-cookie"])
            self.assertEqual(h.admin("GET", "/api/v1/status", headers={"Cookie": sid}).status,
                             401)
            self.assertEqual(h.admin("GET", "/api/v1/status",
                                     headers={"Cookie": "hookd_session=" + "0" * 64}).status,
                             401)

    def test_cross_site_posts_refused(self):
        with self.daemon() as h:
            eid = new_id()
            h.post(eid)
            bearer = {"Authorization": "Bearer " + TOKEN}
            for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                          {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"}):
                hd = dict(bearer, **extra)
                r = h.admin("POST", path_of("northflank", eid, "/replay"), b"", hd)
                self.assertEqual(r.status, 403, extra)
                r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode(),
                            extra)
                self.assertEqual(r.status, 403, extra)
            port = h.wait_admin_port()
            hd = dict(bearer, Origin="http://127.0.0.1:%d" % port, **{"Sec-Fetch-Site":
                                                                       "same-origin"})
            r = h.admin("POST", path_of("northflank", eid, "/replay"), b"", hd)
            self.assertEqual(r.status, 202, r)
            # Behind a proxy that sends Host 127.0.0.1:PORT: the browser's
            # Sec-Fetch-Site decides, not Origin against Host.
            time.sleep(0.5)
            proxied = {"Origin": "https://hooks.example.com", "Sec-Fetch-Site": "same-origin"}
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode(), proxied)
            self.assertEqual(r.status, 200, r)
            r = h.admin("POST", path_of("northflank", eid, "/replay"), b"", dict(bearer, **proxied))
            self.assertIn(r.status, (202, 409), r)
            # Without Sec-Fetch-Site (an older browser), Origin must be Host.
            r = h.admin("POST", "/api/v1/login", json.dumps({"token": TOKEN}).encode(),
                        {"Origin": "https://hooks.example.com"})
            self.assertEqual(r.status, 403, r)

    def test_a_flood_of_admin_refusals_is_not_a_flood_of_log_lines(self):
        """Cross-site POSTs (with a token set), wrong Hosts (without) and
        wrong tokens with long, attacker-made paths: what a client that
        never authenticates decides is logged at most 50 lines a second,
        each path cut to 128 bytes, as on the webhook listener."""
        long_path = "/api/v1/" + "A" * 8000
        with self.daemon() as h:
            port = h.wait_admin_port()

            def flood(extra, n):
                t0 = time.monotonic()
                for i in range(n):
                    r = harness.parse_raw_response(harness.raw_exchange(port, (
                        "POST %s%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n" % (long_path, i, extra)).encode()))
                    self.assertIn(r.status, (401, 403, 421, 429), r)
                return time.monotonic() - t0
            took = flood("Sec-Fetch-Site: cross-site\r\n", 300)
            took += flood("Authorization: Bearer guess\r\n", 20)
            lines = h.logs()
            self.assertTrue(all(len(ln) < 600 for ln in lines), max(map(len, lines)))
            refused = [ln for ln in lines if "cross-site" in ln]
            self.assertLessEqual(len(refused), 50 * (int(took) + 2), took)
            self.assertIn("A" * 120, refused[0])
            self.assertIn("...", refused[0])
            self.assertIn("A" * 120 + "...", h.wait_log("wrong admin token"))
        with Hookd(config(), {"build:start": OK}) as h:
            port = h.wait_admin_port()
            t0 = time.monotonic()
            for i in range(300):
                r = harness.parse_raw_response(harness.raw_exchange(port, (
                    "GET %s%d HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
                    % (long_path, i)).encode()))
                self.assertEqual(r.status, 421, r)
            took = time.monotonic() - t0
            lines = h.logs()
            self.assertTrue(all(len(ln) < 600 for ln in lines), max(map(len, lines)))
            refused = [ln for ln in lines if "DNS rebinding" in ln]
            self.assertLessEqual(len(refused), 50 * (int(took) + 2), took)
            self.assertGreater(len(refused), 0)

    def test_unfinished_requests_do_not_keep_the_admin_slots(self):
        """The admin listener's 64 connections, from one address, all
        trickling a request (a head, or a body after a whole head): a
        scrape of /healthz is still answered at once, the oldest
        unfinished request closed to make room. It waited for their read
        deadline (10 s)."""
        with self.daemon() as h:
            port = h.wait_admin_port()
            socks = []
            try:
                for i in range(64):
                    s = socket.create_connection(("127.0.0.1", port), timeout=10)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" if i % 2 else
                              b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Content-Length: 4000\r\n\r\n{")
                    socks.append(s)
                time.sleep(0.3)
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                t0 = time.monotonic()
                r = harness.parse_raw_response(harness.raw_exchange(
                    port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n", timeout=15))
                took = time.monotonic() - t0
                self.assertEqual(r.status, 200, r)
                self.assertLess(took, 3.0)  # not the 10 s read deadline
            finally:
                for s in socks:
                    s.close()

    def test_open_admin_needs_a_token(self):
        h = Hookd(config(admin="\n[admin]\nlisten = 0.0.0.0:0\n"), {}, start=False)
        try:
            r = run_cli(["check"], config=h.config_path)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not loopback or a unix socket", r.stderr.decode())
            self.assertIn("token_file", r.stderr.decode())
            h.write_file("short", "short\n")
            h.write_config(config(admin="\n[admin]\nlisten = 0.0.0.0:0\n"
                                  "token_file = {tmp}/short\n"))
            r = run_cli(["check"], config=h.config_path)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("shorter than 16 bytes", r.stderr.decode())
        finally:
            h.cleanup()


class Hostile(Base):

    def test_hostile_values_come_back_as_json_strings(self):
        with Hookd(config(), {"build:start": OK}) as h:
            eid = new_id("x") + HOSTILE[0]
            body = harness.sample_json()
            body["description"] = " ".join(HOSTILE)
            r = h.post(eid, body=body, headers={"X-Northflank-Notification-Integration-Name":
                                                HOSTILE[1]})
            self.assertEqual(r.status, 200, r)
            d = self.get(h, path_of("northflank", eid))
            self.assertEqual(d["id"], eid)
            self.assertIn(HOSTILE[3], json.loads(d["body"])["description"])
            lst = self.get(h, "/api/v1/deliveries")["deliveries"]
            self.assertEqual(lst[0]["id"], eid)

    def test_every_accepted_id_can_be_looked_up(self):
        """The API's JSON is UTF-8: an id byte that is not would come back as
        U+FFFD, an id that finds nothing (the page could not open the delivery
        nor replay it). So such an id is refused at the door; a UTF-8 one
        (bidi override, line separators) comes back as sent and is found."""
        with Hookd(config(), {"build:start": marker_hook("build:start")}) as h:
            good = "x\u00e9\u202e\u2028\u2029" + new_id()
            # Headers go as bytes: latin-1 is one character a byte.
            r = h.post(good.encode().decode("latin-1"))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.get(h, "/api/v1/deliveries")["deliveries"][0]["id"], good)
            self.assertEqual(self.get(h, path_of("northflank", good))["id"], good)
            for bad in (b"bad\xff\xfe", b"over\xc0\xaflong", b"half\xe2\x80",
                        b"surrogate\xed\xa0\x80", b"big\xf4\x90\x80\x80"):
                r = h.post(bad.decode("latin-1"))
                self.assertEqual(r.status, 400, (bad, r))
                self.assertEqual(r.json["error"], "invalid delivery id")
            self.assertEqual(len(self.get(h, "/api/v1/deliveries")["deliveries"]), 1)
            self.assertEqual(h.ran(), ["build:start"], "no script ran for a refused id")


if __name__ == "__main__":
    main()
