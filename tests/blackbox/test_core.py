"""Black-box tests of hookd's core (issue #2): HTTP answers (README "HTTP
answers", the order of its rows where two apply at once among them),
routing (README "Routing: hooks.d"), what a hook gets (README "What a hook
gets"), logs and signals (README "Logs and signals"), the command line
(README "Command line") and the event loop's lifetime (a cascade of
deliveries that finish at once, answers still being written at SIGTERM),
against the real binary on 127.0.0.1:0.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_core.py [-k NAME]
"""

import http.client
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import JournalHookd, journal_config  # noqa: E402
from harness import (CANARY_NAME, CANARY_VALUE, NF_CONFIG, NF_INTEGRATION_ID,  # noqa: E402
                     NF_INTEGRATION_NAME, NF_PREFIX, NF_TOKEN, SHELL_VARS, Hookd,
                     env_hook, json_body, marker_hook, new_id, nf_request, parse_env,
                     read_all, sample_body, sample_json, sh, wait_for)

# Hooks that show whether anything ran at all.
CATCH_ALL = {
    "_default": marker_hook("_default"),
    "build:start": marker_hook("build:start"),
}

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def cfg(extra_server="", extra=""):
    """NF_CONFIG with extra [server] lines and extra sections."""
    text = NF_CONFIG.replace("kill_grace = 1s\n", "kill_grace = 1s\n" + extra_server)
    return text + extra


def recv_answer(s, got, timeout):
    """Reads from s after got until a whole answer (by its Content-Length)
    is there, the peer closes, or timeout seconds pass; returns the bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = harness.parse_raw_response(got)
        if r is not None and len(r.raw) >= int(r.headers.get("content-length", 0)):
            break
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


MISSING_LOADER = "/nonexistent/ld.so"


def elf_with_missing_loader():
    """/bin/true with its PT_INTERP (the dynamic loader) patched to
    MISSING_LOADER: a binary built for a libc that is not here (Alpine's
    /lib/ld-musl-x86_64.so.1). None if /bin/true is not a 64-bit
    little-endian ELF with one."""
    import struct
    with open("/bin/true", "rb") as f:
        data = bytearray(f.read())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data,
                                                                 phoff + i * phentsize)
        if p_type == 3 and p_filesz > len(MISSING_LOADER):  # PT_INTERP
            new = MISSING_LOADER.encode().ljust(p_filesz, b"\0")
            data[p_offset:p_offset + p_filesz] = new
            return bytes(data)
    return None


class Base(harness.HookdTestCase):

    def daemon(self, config=NF_CONFIG, hooks=None, **kw):
        secrets = kw.pop("secrets", [NF_TOKEN])
        return Hookd(config, hooks, secrets=secrets, **kw)


# --------------------------------------------------------------------------
# README "[event NAME]" and "[status]": a delivery that is not for the hooks
# ends "skipped"

MATCH_MAIN = ('\n[event build]\nmatch = data.build.branch=main* '
              '"data.service.name!=* (test)"\n')


def build_body(branch, service="Website", event="build:start"):
    obj = sample_json()
    obj["event"] = event
    obj["data"]["build"]["branch"] = branch
    obj["data"]["service"]["name"] = service
    return obj


class TestSkipped(Base):

    def test_match_runs_only_what_matches(self):
        with self.daemon(cfg(extra=MATCH_MAIN), hooks=CATCH_ALL) as h:
            b = self.assertAnswer(h.northflank(body=build_body("master")), 200)
            self.assertEqual(b.get("status"), "skipped", b)
            self.assertEqual(b.get("hooks"), [])
            self.assertIn("data.build.branch=main*", b.get("error", ""))
            self.assertNothingRan(h)
            h.wait_line(r"msg=delivery .*status=skipped http=200")
            # The negated term, its glob quoted for the space in it.
            b = self.assertAnswer(h.northflank(body=build_body("main", "Website (test)")), 200)
            self.assertEqual(b.get("status"), "skipped", b)
            self.assertIn('data.service.name!="* (test)"', b.get("error", ""))
            self.assertNothingRan(h)
            # All terms met: the hook runs.
            b = self.assertAnswer(h.northflank(body=build_body("main-2")), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["build:start"])
            # An event the rule does not cover is not tested.
            h.reset_ran()
            b = self.assertAnswer(h.northflank(body=build_body("x", event="deploy")), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["_default"])

    def test_match_missing_path(self):
        extra = "\n[event build]\nmatch = data.nope=* data.build.branch!=dev\n"
        with self.daemon(cfg(extra=extra), hooks=CATCH_ALL) as h:
            b = self.assertAnswer(h.northflank(body=build_body("main")), 200)
            self.assertEqual(b.get("status"), "skipped", b)
            self.assertNothingRan(h)
            extra = "\n[event build]\nmatch = data.nope!=* data.build.pullRequestId=\n"
        with self.daemon(cfg(extra=extra), hooks=CATCH_ALL) as h:
            # A missing path meets PATH!=GLOB; null is the empty value.
            b = self.assertAnswer(h.northflank(body=build_body("main")), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["build:start"])

    def test_skipped_resend_is_duplicate(self):
        with self.daemon(cfg(extra=MATCH_MAIN), hooks=CATCH_ALL) as h:
            body = build_body("master")
            b = self.assertAnswer(h.northflank(body=body, event_id="skip-1"), 200)
            self.assertEqual(b.get("status"), "skipped", b)
            b = self.assertAnswer(h.northflank(body=body, event_id="skip-1"), 200)
            self.assertEqual(b.get("status"), "duplicate", b)
            self.assertNothingRan(h)

    def test_exit_status_mapped_to_skip_stops_the_chain(self):
        hooks = {"build:start": None,
                 "build:start/10-first": marker_hook("first", 78),
                 "build:start/20-second": marker_hook("second")}
        with self.daemon(cfg(extra="\n[status]\n78 = skip\n"), hooks=hooks) as h:
            b = self.assertAnswer(h.northflank(), 200)
            self.assertEqual(b.get("status"), "skipped", b)
            self.assertEqual([x.get("hook") for x in b.get("hooks")], ["build:start/10-first"])
            self.assertEqual(b["hooks"][0].get("exit"), 78)
            self.assertIn("mapped to skip", b.get("error", ""))
            self.assertEqual(h.ran(), ["first"], "the rest of the chain does not run")
            h.wait_line(r"msg=delivery .*status=skipped http=200")
        # Without the mapping, 78 is a failure as before.
        with self.daemon(hooks=hooks) as h:
            self.assertAnswer(h.northflank(), 500)

    def test_check_prints_and_validates_match(self):
        good = cfg(extra=MATCH_MAIN + "\n[status]\n78 = skip\n")
        with self.daemon(good, hooks=CATCH_ALL, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p)
            # Written back as it reads: quotes around a glob with a space.
            self.assertIn('event build: match data.build.branch=main* '
                          'data.service.name!="* (test)"', p.stdout)
            self.assertIn("status 78 = skip", p.stdout)
        bad = cfg(extra="\n[event build]\nmatch = data..branch=main\n")
        with self.daemon(bad, hooks=CATCH_ALL, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("hookd.ini:", p.stderr)
            self.assertIn("is not a dotted payload path", p.stderr)


# --------------------------------------------------------------------------
# README "HTTP answers": answers decided before any hook runs

class TestRejections(Base):

    def test_404_no_endpoint(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            r = h.northflank(path="/nope")
            self.assertAnswer(r, 404)
            r = h.northflank(path="/webhook/extra")
            self.assertAnswer(r, 404)
            r = h.request("GET", "/nope")
            self.assertAnswer(r, 404, "404 is decided before 405")
            self.assertNothingRan(h)

    def test_405_other_methods_allow_post(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            hdrs = {NF_PREFIX + "Token": NF_TOKEN, "Content-Type": "application/json"}
            for method, body in (("GET", None), ("PUT", sample_body()),
                                 ("DELETE", None), ("PATCH", sample_body())):
                r = h.request(method, "/webhook", body, hdrs)
                self.assertAnswer(r, 405, method)
                allow = r.header("Allow")
                self.assertIsNotNone(allow, "%s: no Allow header" % method)
                self.assertEqual([m.strip() for m in allow.split(",")], ["POST"], method)
            self.assertNothingRan(h)

    def test_413_body_over_max_body(self):
        with self.daemon(cfg("max_body = 1KiB\n"), hooks=CATCH_ALL) as h:
            ok = json_body({"event": "build:start"}, 1024)
            r = h.northflank(body=ok)
            self.assertAnswer(r, 200, "a body of exactly max_body is accepted")
            self.assertEqual(h.ran(), ["build:start"])
            h.reset_ran()
            big = json_body({"event": "build:start"}, 1025)
            r = h.northflank(body=big)
            self.assertAnswer(r, 413)
            r = h.northflank(body=json_body({"event": "build:start"}, 64 * 1024))
            self.assertAnswer(r, 413)
            self.assertNothingRan(h)

    def test_413_from_content_length_alone(self):
        """Content-Length over max_body, no body sent: a 413 response arrives
        (not a reset, not a wait for the body)."""
        with self.daemon(cfg("max_body = 1KiB\n"), hooks=CATCH_ALL) as h:
            for token in (NF_TOKEN, None):
                head = ("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 10485760\r\n"
                        + (NF_PREFIX + "Event-Id: " + new_id() + "\r\n")
                        + ((NF_PREFIX + "Token: " + token + "\r\n") if token else "")
                        + "\r\n").encode()
                t0 = time.monotonic()
                data, err = h.raw(head, timeout=5)
                r = harness.parse_raw_response(data)
                self.assertIsNotNone(r, "no HTTP response (token=%s): error %s, got %r"
                                     % (bool(token), err, data[:200]))
                self.assertAnswer(r, 413)
                self.assertLess(time.monotonic() - t0, 3, "413 must be answered at once")
            self.assertNothingRan(h)

    def test_401_missing_and_wrong_token(self):
        with self.daemon(hooks=CATCH_ALL, secrets=[NF_TOKEN, "wrong-token-x"]) as h:
            bodies = []
            for token in (None, "", "wrong-token-x", NF_TOKEN[:-1], NF_TOKEN + "x",
                          NF_TOKEN.upper(), NF_TOKEN + " x", "x" * len(NF_TOKEN)):
                r = h.northflank(token=token)
                b = self.assertAnswer(r, 401, "token %r" % token)
                self.assertEqual(b.get("status"), "rejected", r)
                self.assertNotIn(b"wrong-token-x", r.raw)
                bodies.append({k: v for k, v in b.items() if k != "id"})
            for b in bodies[1:]:
                self.assertEqual(b, bodies[0], "a 401 body says which credential failed")
            self.assertNothingRan(h)

    def rejected_lines(self, h, n):
        self.assertTrue(harness.wait_until(
            lambda: len(h.log_lines("msg=rejected")) >= n, 5), h.log_text()[-2000:])
        return [harness.parse_logfmt(ln) for ln in h.log_lines("msg=rejected")]

    def test_400_after_verification_names_the_senders_id(self):
        """A verified request refused with 400 (or 415) answers and logs the
        delivery id its header gave, so that the sender can find it; a 401
        neither answers nor logs one; no line about a POST names the method."""
        with self.daemon(hooks=CATCH_ALL) as h:
            cases = [
                ("not json", dict(body=b'{"event":', event_type=None), 400, "a1"),
                ("bad event", dict(event="../x", event_type=None), 400, 'b2 "quoted" =x'),
                ("no event", dict(body={"data": {}}, event_type=None), 400, "c3"),
                ("empty", dict(body=b"", event_type=None), 400, "d4"),
                ("415", dict(content_type="text/plain"), 415, "e5"),
            ]
            for name, kw, status, did in cases:
                b = self.assertAnswer(h.northflank(event_id=did, **kw), status, name)
                self.assertEqual(b.get("id"), did, name)
            # An unfit id is not echoed: the 400 says so, with no id.
            b = self.assertAnswer(h.northflank(event_id="f6" * 150), 400)
            self.assertEqual((b.get("error"), b.get("id")), ("invalid delivery id", None))
            b = self.assertAnswer(h.northflank(event_id="secret-g7", token="wrong"), 401)
            self.assertIsNone(b.get("id"))
            self.assertAnswer(h.request("GET", "/webhook"), 405)
            lines = self.rejected_lines(h, len(cases) + 3)
            for (name, _, status, did), f in zip(cases, lines):
                self.assertEqual((f.get("id"), f.get("http")), (did, str(status)), (name, f))
            self.assertNotIn("id", lines[len(cases)], "an unfit id in the log")
            self.assertEqual(lines[len(cases) + 1].get("http"), "401")
            self.assertNotIn("secret-g7", h.log_text(), "an unverified request's id was logged")
            self.assertEqual(lines[-1].get("method"), "GET", lines[-1])
            for f in lines[:-1]:
                self.assertNotIn("method", f, f)
                self.assertEqual(f.get("endpoint"), "northflank", f)
                self.assertEqual(f.get("remote"), "127.0.0.1", f)
            self.assertNothingRan(h)

    def test_415_not_json(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            for ct in ("text/plain", "application/x-www-form-urlencoded",
                       "application/octet-stream", "text/json-ish"):
                r = h.northflank(content_type=ct)
                self.assertAnswer(r, 415, ct)
            self.assertNothingRan(h)

    def test_json_content_type_variants_accepted(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            variants = ("application/json", "application/json; charset=utf-8",
                        "application/vnd.foo+json", None)
            for ct in variants:
                h.reset_ran()
                r = h.northflank(content_type=ct)
                b = self.assertAnswer(r, 200, "Content-Type %r" % ct)
                self.assertEqual(b.get("status"), "ok", r)
                self.assertEqual(h.ran(), ["build:start"], ct)

    def test_400_bodies_that_are_not_an_event_object(self):
        cases = [
            ("invalid JSON", b'{"event": "build:start"'),
            ("trailing junk", b'{"event": "build:start"} x'),
            ("empty body", b""),
            ("array", b'[{"event": "build:start"}]'),
            ("string", b'"build:start"'),
            ("number event", b'{"event": 5}'),
            ("null event", b'{"event": null}'),
            ("object event", b'{"event": {"name": "build:start"}}'),
            ("missing event", b'{"data": {}}'),
        ]
        with self.daemon(hooks=CATCH_ALL) as h:
            for name, body in cases:
                r = h.northflank(body=body, event_type=None)
                self.assertAnswer(r, 400, name)
            self.assertNothingRan(h)

    def test_400_not_rfc8259_whether_or_not_a_hook_exists(self):
        """What json-c's strict mode would still take is a 400, with the
        same answer for an event that has a hook and one that has none
        (the second is decided before any tree is built)."""
        lenient = [
            ("NaN", b'{"event":"%s","n":NaN}'),
            ("Infinity", b'{"event":"%s","n":-Infinity}'),
            ("1.", b'{"event":"%s","n":1.}'),
            ("leading zero", b'{"event":"%s","n":01}'),
            ("single quotes", b'{"event":"%s",\'k\':1}'),
            ("raw tab in a string", b'{"event":"%s","s":"a\tb"}'),
            ("raw newline in a string", b'{"event":"%s","s":"a\nb"}'),
            ("raw control byte", b'{"event":"%s","s":"a\x01b"}'),
            ("comment", b'{"event":"%s" /* c */}'),
            ("trailing comma", b'{"event":"%s",}'),
            ("bad escape", b'{"event":"%s","s":"\\x41"}'),
        ]
        with self.daemon(hooks={"build:start": marker_hook("build:start")}) as h:
            for event in (b"build:start", b"no:hook"):
                for name, tmpl in lenient:
                    r = h.northflank(body=tmpl % event, event_type=None)
                    b = self.assertAnswer(r, 400, "%s (%s)" % (name, event))
                    self.assertEqual(b.get("error"), "body is not valid JSON", r)
            # RFC 8259 8.1: JSON text is UTF-8, so a string that is not is a 400 too.
            for event in (b"build:start", b"no:hook"):
                for name, tmpl in [("a byte 0xff", b'{"event":"%s","s":"\xff"}'),
                                   ("overlong", b'{"event":"%s","s":"\xc0\xaf"}'),
                                   ("a surrogate", b'{"event":"%s","s":"\xed\xa0\x80"}'),
                                   ("in a key", b'{"event":"%s","\xe9":1}')]:
                    r = h.northflank(body=tmpl % event, event_type=None)
                    b = self.assertAnswer(r, 400, "%s (%s)" % (name, event))
                    self.assertEqual(b.get("error"),
                                     "body is not valid JSON: a string is not UTF-8", r)
            self.assertNothingRan(h)
            # UTF-8 itself is fine.
            body = '{"event":"build:start","s":"d\u00e9ploy \u20ac \U0001F600"}'
            self.assertIn(b"\xf0\x9f\x98\x80", body.encode("utf-8"), "raw UTF-8, not escapes")
            self.assertAnswer(h.northflank(body=body.encode("utf-8"), event_type=None), 200)
            h.reset_ran()
            # The same bodies written as JSON: a hook runs, or "unhandled".
            for event, status in ((b"build:start", "ok"), (b"no:hook", "unhandled")):
                body = b'{"event":"%s","n":1.5e3,"s":"a\\tb\\u0001","k":[]}' % event
                b = self.assertAnswer(h.northflank(body=body, event_type=None), 200)
                self.assertEqual(b.get("status"), status, b)
            self.assertEqual(h.ran(), ["build:start"])

    def test_event_name_written_with_escapes(self):
        """An escaped event name means what it decodes to, with a hook or
        without: the fields are read from the tree then."""
        with self.daemon(hooks={"build:start": marker_hook("build:start")}) as h:
            b = self.assertAnswer(h.northflank(body=b'{"event":"build\\u003astart"}',
                                               event_type=None), 200)
            self.assertEqual((b.get("event"), b.get("status")), ("build:start", "ok"), b)
            b = self.assertAnswer(h.northflank(body=b'{"ev\\u0065nt":"no:hook"}',
                                               event_type=None), 200)
            self.assertEqual((b.get("event"), b.get("status")), ("no:hook", "unhandled"), b)
            # An escape that decodes to a name the rule refuses is still a 400.
            self.assertAnswer(h.northflank(body=b'{"event":"a\\/b"}', event_type=None), 400)
            self.assertEqual(h.ran(), ["build:start"])

    def test_400_invalid_event_names(self):
        names = ["../../bin/sh", "a/b", ".hidden", "", "a" * 200, "a" * 129,
                 "-x", "_default", "a b", "build:start\n", "caf\u00e9", "a\\b", "x;y"]
        with self.daemon(hooks=CATCH_ALL) as h:
            for name in names:
                r = h.northflank(body={"event": name}, event_type=None)
                self.assertAnswer(r, 400, "event %r" % name)
            self.assertNothingRan(h)

    def test_valid_event_name_edges(self):
        with self.daemon(hooks={"_default": marker_hook("_default")}) as h:
            for name in ("a" * 128, "A9", "x_y.z-w:v", "9", "build:start"):
                h.reset_ran()
                r = h.northflank(body={"event": name})
                b = self.assertAnswer(r, 200, "event %r" % name)
                self.assertEqual(b.get("event"), name)
                self.assertEqual(h.ran(), ["_default"], name)

    def test_400_event_type_header_mismatch(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            # (surrounding blanks are not part of a header value in HTTP)
            for hdr in ("build:success", "Build:Start", "build:start:x", "build", ""):
                r = h.northflank(event_type=hdr)
                self.assertAnswer(r, 400, "Event-Type %r" % hdr)
            self.assertNothingRan(h)
            r = h.northflank(event_type=None)
            self.assertAnswer(r, 200, "the Event-Type header is optional")
            self.assertEqual(h.ran(), ["build:start"])

    def test_nesting_depth(self):
        def nested(depth):
            # the top object is level 1, each array one more
            n = depth - 1
            return ('{"event":"build:start","x":' + "[" * n + "]" * n + "}").encode()
        with self.daemon(hooks=CATCH_ALL) as h:
            r = h.northflank(body=nested(500), event_type="build:start")
            self.assertAnswer(r, 200, "500 levels are within the 1,000 allowed")
            self.assertEqual(h.ran(), ["build:start"])
            h.reset_ran()
            r = h.northflank(body=nested(1500), event_type="build:start")
            self.assertAnswer(r, 400, "deeper than 1,000 levels")
            self.assertNothingRan(h)


# --------------------------------------------------------------------------
# README "What a hook gets"

class TestHookEnvironment(Base):

    def test_sample_payload_end_to_end(self):
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            before = datetime.now(timezone.utc)
            eid = new_id("nf")
            r = h.northflank(event_id=eid)
            b = self.assertAnswer(r, 200)
            self.assertEqual(b.get("status"), "ok", r)
            self.assertEqual(b.get("endpoint"), "northflank")
            self.assertEqual(b.get("event"), "build:start")
            self.assertEqual(b.get("id"), eid)
            e = self.hook_entry(b)
            self.assertEqual(e.get("hook"), "build:start")
            self.assertEqual(e.get("exit"), 0)
            self.assertIsNone(e.get("signal"))
            self.assertIsInstance(e.get("ms"), int)
            self.assertNotIn("output", e, "output only with include_output = yes")
            self.assertEqual(h.ran(), ["build:start"])

            text = h.read("env.txt")
            env = parse_env(text)
            expect = {
                "HOOK_EVENT": "build:start",
                "HOOK_DATA_BUILD_ID": "social-hour-1312",
                "HOOK_DATA_BUILD_BRANCH": "master",
                "HOOK_DATA_BUILD_PULL_REQUEST_ID": "",
                "HOOK_DATA_BUILD_STATUS": "STARTING",
                "HOOK_DATA_BUILD_SHA": "ca624abed0d5ba0ad6e6fe28c396196b81f0200d",
                "HOOK_DATA_BUILD_CONCLUDED": "false",
                "HOOK_DATA_BUILD_CREATED_AT": "2022-01-19T09:04:40.916Z",
                "HOOK_DATA_SERVICE_ID": "website",
                "HOOK_DATA_SERVICE_NAME": "Website",
                "HOOK_DATA_PROJECT_ID": "personal-blog",
                "HOOK_DATA_PROJECT_NAME": "Personal Blog",
                "HOOK_DATA_USER_ID": "thomas",
                "HOOK_INTEGRATION_ID": NF_INTEGRATION_ID,
                "HOOK_INTEGRATION_NAME": NF_INTEGRATION_NAME,
                "HOOK_ID": eid,
                "HOOK_ENDPOINT": "northflank",
                "HOOK_HOOK": "build:start",
                "HOOK_ATTEMPT": "1",
                "HOOK_REMOTE_ADDR": "127.0.0.1",
                "PATH": h.env["PATH"],
                "LANG": h.env["LANG"],
            }
            for k, v in expect.items():
                self.assertIn(k, env, "%s missing from the hook's env" % k)
                self.assertEqual(env[k], v, k)
            ra = env.get("HOOK_RECEIVED_AT", "")
            self.assertRegex(ra, RFC3339_UTC)
            got = datetime.fromisoformat(ra.replace("Z", "+00:00"))
            self.assertLess(abs((got - before).total_seconds()), 60, ra)

            # nothing from the daemon's env but pass_env; no token anywhere
            self.assertNotIn(NF_TOKEN, text)
            self.assertNotIn(CANARY_VALUE, text)
            self.assertNotIn(CANARY_NAME, env)
            # HOME, USER, LOGNAME and SHELL: the password entry's, not the daemon's
            me = pwd.getpwuid(os.geteuid())
            self.assertEqual(env.get("HOME"), me.pw_dir)
            self.assertEqual((env.get("USER"), env.get("LOGNAME")), (me.pw_name, me.pw_name))
            self.assertEqual(env.get("SHELL"), me.pw_shell or "/bin/sh")
            extra = ({k for k in env if not k.startswith("HOOK_")} - {"PATH", "LANG", "TZ"}
                     - {"HOME", "USER", "LOGNAME", "SHELL"} - SHELL_VARS)
            self.assertEqual(extra, set(), "daemon variables leaked into the hook")
            hook_names = {k for k in env if k.startswith("HOOK_")}
            self.assertFalse([k for k in hook_names if "TOKEN" in k], hook_names)

            # stdin byte for byte, argv only the path, cwd the hook's dir
            self.assertEqual(h.read("stdin.bin", binary=True), sample_body())
            argv = h.read("argv.txt").splitlines()
            self.assertEqual(argv[1], "0", "a hook gets no arguments")
            cwd = h.read("cwd.txt").strip()
            self.assertEqual(cwd, os.path.realpath(h.hooks))
            self.assertEqual(os.path.realpath(os.path.join(cwd, argv[0])),
                             os.path.realpath(os.path.join(h.hooks, "build:start")))

            line = h.wait_log("msg=delivery", "id=" + eid, timeout=5)
            self.assertIsNotNone(line, "no delivery log line:\n" + h.log_text())
            for kv in ("endpoint=northflank", "event=build:start", "status=ok", "http=200"):
                self.assertIn(kv, line)

    def test_stdin_is_raw_body(self):
        body = ('{ "event" : "build:start" ,\n\t"data": {"s": "caf\u00e9 \\u00e9 \\"q\\"",'
                ' "n": 1.50e0, "dup": 1, "dup": 2}   }\n\n').encode("utf-8")
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            r = h.northflank(body=body)
            self.assertAnswer(r, 200)
            self.assertEqual(h.read("stdin.bin", binary=True), body)

    def test_signals_at_default_and_unblocked(self):
        # hookd catches SIGCHLD, SIGHUP, SIGTERM and SIGINT, ignores
        # SIGPIPE, blocks everything in the threads that start hooks, and
        # here inherits SIGUSR2 and SIGQUIT ignored: a hook gets none of
        # it (exec keeps what is ignored or blocked).
        hook = sh("exec grep -E '^Sig(Blk|Ign):' /proc/self/status > '{tmp}/sig.txt'")
        inherited = (signal.SIGUSR2, signal.SIGQUIT)
        old = [signal.signal(s, signal.SIG_IGN) for s in inherited]
        try:
            h = self.daemon(hooks={"build:start": hook})
        finally:
            for s, o in zip(inherited, old):
                signal.signal(s, o)
        with h:
            with open("/proc/%d/status" % h.proc.pid) as f:
                ignored = int(f.read().split("SigIgn:\t")[1].split()[0], 16)
            for s in inherited + (signal.SIGPIPE,):
                self.assertTrue(ignored & (1 << (s - 1)), "hookd should ignore %s" % s)
            self.assertAnswer(h.northflank(), 200)
            got = dict(line.split(":\t") for line in h.read("sig.txt").split("\n") if line)
            self.assertEqual(got, {"SigBlk": "0" * 16, "SigIgn": "0" * 16})

    def test_reserved_names_and_flattening(self):
        payload = {
            "event": "build:start",
            "id": "payload-id", "endpoint": "evil", "attempt": "9", "hook": "x",
            "remote_addr": "10.9.9.9", "received_at": "never",
            "integration_id": "no", "integration_name": "no",
            "dup_name": "first", "dupName": "second",
            "data": {
                "items": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                "userID": "u", "count": 42, "neg": -7, "ratio": 3.25,
                "flag": True, "nothing": None, "weird key!!": "w",
                "x-y.z": "dots",
            },
        }
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            eid = new_id()
            r = h.northflank(body=payload, event_id=eid)
            self.assertAnswer(r, 200)
            env = self.hook_env(h)
            expect = {
                "HOOK_ID": eid, "HOOK_ENDPOINT": "northflank", "HOOK_ATTEMPT": "1",
                "HOOK_HOOK": "build:start", "HOOK_REMOTE_ADDR": "127.0.0.1",
                "HOOK_INTEGRATION_ID": NF_INTEGRATION_ID,
                "HOOK_INTEGRATION_NAME": NF_INTEGRATION_NAME,
                "HOOK_DUP_NAME": "first",
                "HOOK_DATA_ITEMS_0_NAME": "a", "HOOK_DATA_ITEMS_2_NAME": "c",
                "HOOK_DATA_USER_ID": "u", "HOOK_DATA_COUNT": "42", "HOOK_DATA_NEG": "-7",
                "HOOK_DATA_RATIO": "3.25", "HOOK_DATA_FLAG": "true", "HOOK_DATA_NOTHING": "",
                "HOOK_DATA_WEIRD_KEY": "w", "HOOK_DATA_X_Y_Z": "dots",
            }
            for k, v in expect.items():
                self.assertEqual(env.get(k), v, k)
            self.assertRegex(env.get("HOOK_RECEIVED_AT", ""), RFC3339_UTC)

    def test_pass_env_without_path(self):
        conf = cfg("pass_env = LANG %s\n" % CANARY_NAME)
        with self.daemon(conf, hooks={"build:start": env_hook("build:start")}) as h:
            self.assertAnswer(h.northflank(), 200)
            env = self.hook_env(h)
            self.assertEqual(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin")
            self.assertEqual(env.get("LANG"), h.env["LANG"])
            self.assertEqual(env.get(CANARY_NAME), CANARY_VALUE, "pass_env passes it")
            # HOME is not in pass_env: the password entry's, not the daemon's
            self.assertEqual(env.get("HOME"), pwd.getpwuid(os.geteuid()).pw_dir)

    def test_long_names_arrive_whole(self):
        """A pass_env name of any length, and a 64-byte env_prefix (the
        longest) in front of every metadata name, reach the hook uncut."""
        long_name = "HOOKD_" + "L" * 150
        prefix = "P" * 63 + "_"
        conf = cfg("pass_env = PATH %s\nenv_prefix = %s\n" % (long_name, prefix))
        with self.daemon(conf, hooks={"build:start": env_hook("build:start")},
                         env={long_name: "long value"}) as h:
            self.assertAnswer(h.northflank(), 200)
            env = self.hook_env(h)
            self.assertEqual(env.get(long_name), "long value")
            self.assertEqual(env.get(prefix + "EVENT"), "build:start")
            self.assertEqual(env.get(prefix + "INTEGRATION_NAME"), NF_INTEGRATION_NAME)
            self.assertEqual(env.get(prefix + "RECEIVED_AT", "")[:2], "20")
            self.assertEqual(env.get(prefix + "HOOK"), "build:start")
            self.assertEqual(env.get(prefix + "ATTEMPT"), "1")
            self.assertFalse([k for k in env if len(k) in (127, 128)], "no name cut short")

    def test_pass_headers(self):
        """An endpoint's pass_headers reach its hooks as HOOK_HEADER_<NAME>;
        a header given twice as one joined value; an absent one unset; a
        payload key of the same name gives way."""
        conf = NF_CONFIG + "pass_headers = X-Request-Source x-multi_line X-Absent\n"
        body = json.dumps(dict(sample_json(), header={"x_request_source": "from-the-body",
                                                      "x_absent": "forged-by-the-body"}))
        with self.daemon(conf, hooks={"build:start": env_hook("build:start")}) as h:
            r = h.northflank(body=body.encode(), extra=[("X-Request-Source", "ci-runner"),
                                                        ("X-Multi_Line", "a"),
                                                        ("x-multi_line", "b"),
                                                        ("X-Not-Listed", "no")])
            self.assertAnswer(r, 200)
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_HEADER_X_REQUEST_SOURCE"), "ci-runner")
            self.assertEqual(env.get("HOOK_HEADER_X_MULTI_LINE"), "a, b")
            self.assertNotIn("HOOK_HEADER_X_ABSENT", env)
            self.assertNotIn("HOOK_HEADER_X_NOT_LISTED", env)
            self.assertEqual(sorted(k for k in env if k.startswith("HOOK_HEADER_")),
                             ["HOOK_HEADER_X_MULTI_LINE", "HOOK_HEADER_X_REQUEST_SOURCE"])

    def test_pass_headers_value_limit(self):
        """A header value over 64 KiB is left out, like a payload value,
        and counted in the log line's env_omitted; the hook still runs."""
        conf = cfg("max_headers = 256KiB\n") + "pass_headers = X-Big X-Small\n"
        with self.daemon(conf, hooks={"build:start": env_hook("build:start")}) as h:
            eid = new_id()
            r = h.northflank(event_id=eid, extra={"X-Big": "b" * (64 * 1024 + 1),
                                                  "X-Small": "s" * (64 * 1024)})
            self.assertAnswer(r, 200)
            env = self.hook_env(h)
            self.assertNotIn("HOOK_HEADER_X_BIG", env)
            self.assertEqual(len(env.get("HOOK_HEADER_X_SMALL", "")), 64 * 1024)
            line = h.wait_log("msg=delivery", "id=" + eid, timeout=5)
            self.assertIn("env_omitted=1", line)

    def test_env_prefix(self):
        with self.daemon(cfg("env_prefix = NF_\n"),
                         hooks={"build:start": env_hook("build:start")}) as h:
            self.assertAnswer(h.northflank(), 200)
            env = self.hook_env(h)
            self.assertEqual(env.get("NF_EVENT"), "build:start")
            self.assertEqual(env.get("NF_DATA_BUILD_ID"), "social-hour-1312")
            self.assertFalse([k for k in env if k.startswith("HOOK_")], env)

    def test_cwd_and_hook_path_in_directory_route(self):
        with self.daemon(hooks={"build:start/10-env": env_hook("10-env")}) as h:
            self.assertAnswer(h.northflank(), 200)
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_HOOK"), "build:start/10-env")
            self.assertEqual(h.read("cwd.txt").strip(),
                             os.path.realpath(os.path.join(h.hooks, "build:start")))
            self.assertEqual(h.read("argv.txt").splitlines()[1], "0")
            self.assertEqual(h.read("stdin.bin", binary=True), sample_body())


# --------------------------------------------------------------------------
# README "Routing: hooks.d"

class TestRouting(Base):
    EVENT = "infrastructure:service:container-crash"

    def test_fallback_chain(self):
        hooks = {n: marker_hook(n) for n in (
            "infrastructure:service", "infrastructure", "_default")}
        with self.daemon(hooks=hooks) as h:
            for route in ("infrastructure:service", "infrastructure", "_default"):
                h.reset_ran()
                r = h.northflank(event=self.EVENT)
                b = self.assertAnswer(r, 200, route)
                self.assertEqual(h.ran(), [route], "only the first existing route runs")
                self.assertEqual(self.hook_entry(b).get("hook"), route)
                self.assertEqual(len(b["hooks"]), 1)
                h.remove_hook(route)
            # hooks.d is read at each delivery: a new exact hook runs at once
            h.write_hook(self.EVENT, marker_hook("exact"))
            h.write_hook("infrastructure", marker_hook("infrastructure"))
            h.reset_ran()
            self.assertAnswer(h.northflank(event=self.EVENT), 200)
            self.assertEqual(h.ran(), ["exact"])

    def test_dot_separates_segments(self):
        with self.daemon(hooks={"svc": marker_hook("svc")}) as h:
            b = self.assertAnswer(h.northflank(event="svc.web:restart"), 200)
            self.assertEqual(h.ran(), ["svc"])
            self.assertEqual(self.hook_entry(b).get("hook"), "svc")

    def test_no_route_is_200_unhandled(self):
        with self.daemon(hooks={"other": marker_hook("other")}) as h:
            r = h.northflank(event="billing:invoice-paid")
            b = self.assertAnswer(r, 200)
            self.assertEqual(b.get("status"), "unhandled", r)
            self.assertEqual(b.get("hooks", []), [])
            self.assertNothingRan(h)

    def test_hook_added_after_remembered_misses_runs_at_once(self):
        # hookd remembers an event with no route in a hooks dir that has
        # not changed for 5 s (route.h ROUTE_SETTLE_MS, a constant: coarse
        # ctimes, changes made during a look-up); a hook added, a hook
        # removed or the dir replaced is seen by the very next delivery.
        # Three endpoints, a hooks dir each (and the dir that will replace
        # one), made together: they settle in the same one wait.
        def unhandled(event, path="/webhook"):
            b = self.assertAnswer(h.northflank(event=event, path=path), 200)
            self.assertEqual(b.get("status"), "unhandled", b)

        def settled(*paths):
            deadline = time.monotonic() + 10
            for path in paths:
                while time.monotonic() < deadline and time.time() - os.stat(path).st_ctime < 5.2:
                    time.sleep(0.1)
                self.assertGreater(time.time() - os.stat(path).st_ctime, 5.2, path)

        extra = "".join("\n[endpoint %s]\npath = /%s\nscheme = northflank\nsecret = %s\n"
                        "hooks_dir = {tmp}/%s.d\n" % (n, n, NF_TOKEN, n)
                        for n in ("swapped", "gone"))
        hooks = {"other": marker_hook("other"), "../swapped.d/other": marker_hook("other"),
                 "../gone.d/other": marker_hook("other"),
                 "../swapped.next/billing:invoice-paid": marker_hook("next")}
        with self.daemon(cfg(extra=extra), hooks=hooks) as h:
            swapped, gone = h.path("swapped.d"), h.path("gone.d")
            settled(h.hooks, swapped, gone, h.path("swapped.next"))
            # A hook added: found at once.
            for _ in range(4):
                unhandled("billing:invoice-paid")
            h.write_hook("billing", marker_hook("billing"))
            self.assertAnswer(h.northflank(event="billing:invoice-paid"), 200)
            self.assertEqual(h.ran(), ["billing"])
            h.remove_hook("billing")
            unhandled("billing:invoice-paid")
            # Another dir in its place, with the hook: found at once.
            for _ in range(4):
                unhandled("billing:invoice-paid", "/swapped")
            os.rename(swapped, swapped + ".old")
            os.rename(h.path("swapped.next"), swapped)
            h.reset_ran()
            self.assertAnswer(h.northflank(event="billing:invoice-paid", path="/swapped"), 200)
            self.assertEqual(h.ran(), ["next"])
            # Misses remembered, then the hooks dir gone: an error the
            # sender retries, never "unhandled"; nothing runs.
            for _ in range(3):
                unhandled("nothing:here", "/gone")
            os.rename(gone, gone + ".old")
            h.reset_ran()
            for name in ("nothing:here", "billing:invoice-paid"):
                b = self.assertAnswer(h.northflank(event=name, path="/gone"), 500)
                self.assertEqual(b.get("status"), "failed", b)
                self.assertTrue(b.get("error", "").startswith(
                    "cannot read hooks dir %s: No such file or directory" % gone), b)
            self.assertNothingRan(h)

    def test_run_parts_stops_at_first_failure(self):
        hooks = {
            "build:start/01-first": marker_hook("01-first"),
            "build:start/02-second": marker_hook("02-second", 3),
            "build:start/03-third": marker_hook("03-third"),
        }
        with self.daemon(hooks=hooks) as h:
            r = h.northflank()
            b = self.assertAnswer(r, 500)
            self.assertEqual(b.get("status"), "failed", r)
            self.assertEqual(h.ran(), ["01-first", "02-second"])
            self.assertEqual([(e.get("hook"), e.get("exit")) for e in b["hooks"]],
                             [("build:start/01-first", 0), ("build:start/02-second", 3)])

    def test_run_parts_order_and_skip_list(self):
        skipped = [".hidden", "x~", "x.swp", "x.disabled", "x.dpkg-old", "x.dpkg-new",
                   "x.dpkg-dist", "x.dpkg-tmp", "x.rpmnew", "x.rpmsave", "x.rpmorig"]
        hooks = {"deploy/" + n: marker_hook(n) for n in skipped}
        for n in ("a", "B", "10", "9", "_x"):
            hooks["deploy/" + n] = marker_hook(n)
        hooks["deploy/README"] = (marker_hook("README"), 0o644)
        hooks["deploy/subdir/"] = None
        with self.daemon(hooks=hooks) as h:
            r = h.northflank(event="deploy")
            b = self.assertAnswer(r, 200)
            self.assertEqual(b.get("status"), "ok")
            self.assertEqual(h.ran(), ["10", "9", "B", "_x", "a"], "byte order, skip list")
            self.assertEqual([e.get("hook") for e in b["hooks"]],
                             ["deploy/10", "deploy/9", "deploy/B", "deploy/_x", "deploy/a"])

    def test_run_parts_names_what_it_skips_by_delivery(self):
        """A directory route's entries that cannot run, a non-executable file
        and a symlink whose target is gone, are skipped, each named in a
        warn line with the delivery's endpoint, event and id (a search for
        the id finds them) and why; `hookd check` names both."""
        hooks = {"deploy/10-a": marker_hook("10-a"), "deploy/20-off": (marker_hook("off"), 0o644),
                 "deploy/40-b": marker_hook("40-b")}
        with self.daemon(hooks=hooks) as h:
            os.symlink(os.path.join(h.tmp, "gone"), os.path.join(h.hooks, "deploy", "30-gone"))
            b = self.assertAnswer(h.northflank(event="deploy"), 200)
            self.assertEqual(h.ran(), ["10-a", "40-b"])
            self.assertEqual([e["hook"] for e in b["hooks"]], ["deploy/10-a", "deploy/40-b"])
            h.wait_log("msg=delivery", "id=%s " % b["id"])
            got = [harness.parse_logfmt(l) for l in h.log_lines('msg="hook skipped"')]
            self.assertEqual([(g.get("level"), g.get("id"), g.get("event"), g.get("hook"),
                               g.get("error")) for g in got],
                             [("warn", b["id"], "deploy", "deploy/20-off", "not executable"),
                              ("warn", b["id"], "deploy", "deploy/30-gone",
                               "a dangling symlink")])
            out = h.cli("check").stdout
            self.assertIn("skipped, not executable: deploy/20-off", out)
            self.assertIn("skipped, a dangling symlink: deploy/30-gone", out)

    def test_symlinked_and_dangling_routes(self):
        with self.daemon(hooks={"scripts/deploy": marker_hook("deploy")}) as h:
            os.symlink(os.path.join(h.hooks, "scripts", "deploy"),
                       os.path.join(h.hooks, "build:start"))
            os.symlink(os.path.join(h.hooks, "missing"), os.path.join(h.hooks, "build:failure"))
            b = self.assertAnswer(h.northflank(), 200)
            self.assertEqual(b.get("status"), "ok")
            self.assertEqual(h.ran(), ["deploy"], "a symlink to an executable runs")
            r = h.northflank(event="build:failure")
            b = self.assertAnswer(r, 500, "a dangling symlink is a route that cannot run")
            self.assertIn("build:failure", r.raw.decode())

    def test_route_that_is_not_a_file_or_directory(self):
        with self.daemon(hooks={"_default": marker_hook("_default")}) as h:
            os.mkfifo(os.path.join(h.hooks, "build:start"))
            r = h.northflank()
            b = self.assertAnswer(r, 500)
            self.assertIn("not a regular file or directory: build:start", b.get("error", ""))
            self.assertNothingRan(h, "the fifo is the route; _default does not run")

    def test_empty_directory_route(self):
        with self.daemon(hooks={"deploy/": None, "_default": marker_hook("_default")}) as h:
            b = self.assertAnswer(h.northflank(event="deploy"), 200)
            self.assertNothingRan(h, "the directory is the route; _default does not run")
            self.assertEqual(b.get("hooks", []), [])


# --------------------------------------------------------------------------
# exit statuses, failures to run, time limits

class TestExitAndLimits(Base):

    def test_default_status_map(self):
        hooks = {"e0": marker_hook("e0", 0), "e75": marker_hook("e75", 75),
                 "e3": marker_hook("e3", 3), "e1": marker_hook("e1", 1)}
        with self.daemon(hooks=hooks) as h:
            for ev, http, status in (("e0", 200, "ok"), ("e75", 503, "failed"),
                                     ("e3", 500, "failed"), ("e1", 500, "failed")):
                r = h.northflank(event=ev)
                b = self.assertAnswer(r, http, ev)
                self.assertEqual(b.get("status"), status, r)
                self.assertEqual(self.hook_entry(b).get("exit"), int(ev[1:]))
                if status != "ok":
                    self.assertTrue(b.get("error"), "no error for %s: %r" % (ev, b))
            self.assertEqual(h.ran(), ["e0", "e75", "e3", "e1"])

    def test_custom_status_map(self):
        conf = NF_CONFIG + "\n[status]\n3 = 422\ndefault = 502\n"
        hooks = {"e0": marker_hook("e0", 0), "e75": marker_hook("e75", 75),
                 "e3": marker_hook("e3", 3), "e4": marker_hook("e4", 4)}
        with self.daemon(conf, hooks=hooks) as h:
            for ev, http in (("e0", 200), ("e75", 503), ("e3", 422), ("e4", 502)):
                self.assertAnswer(h.northflank(event=ev), http, ev)

    def test_exit_75_answer_has_retry_after(self):
        """A 503 mapped from a hook's exit asks the sender to come back after
        retry_backoff (default 10 s), whole seconds rounded up; other answers
        have no Retry-After."""
        hooks = {"e75": marker_hook("e75", 75), "e3": marker_hook("e3", 3),
                 "e0": marker_hook("e0", 0), "m": marker_hook("m", 9)}
        conf = NF_CONFIG + "\n[status]\n9 = 503\n[event m]\nretry_backoff = 2500ms\n"
        with self.daemon(conf, hooks=hooks) as h:
            r = h.northflank(event="e75")
            self.assertAnswer(r, 503)
            self.assertEqual(r.header("Retry-After"), "10")
            r = h.northflank(event="m")
            self.assertAnswer(r, 503)
            self.assertEqual(r.header("Retry-After"), "3")
            for ev, http in (("e3", 500), ("e0", 200)):
                r = h.northflank(event=ev)
                self.assertAnswer(r, http)
                self.assertIsNone(r.header("Retry-After"), ev)
            self.assertEqual(h.ran(), ["e75", "m", "e3", "e0"])

    def test_not_executable(self):
        hooks = {"build:start": (marker_hook("build:start"), 0o644),
                 "_default": marker_hook("_default")}
        with self.daemon(hooks=hooks) as h:
            r = h.northflank()
            b = self.assertAnswer(r, 500)
            self.assertNotEqual(b.get("status"), "ok")
            errors = [str(b.get("error", ""))] + [str(e.get("error", ""))
                                                  for e in b.get("hooks") or []]
            self.assertTrue([x for x in errors if "build:start" in x],
                            "no error names the hook: %r" % b)
            self.assertNothingRan(h, "never a silent skip to a fallback")

    def test_exec_failed_bad_interpreter(self):
        with self.daemon(hooks={"build:start": "#!/nonexistent/interp\necho hi\n"}) as h:
            r = h.northflank()
            b = self.assertAnswer(r, 500)
            e = self.hook_entry(b)
            self.assertIsNone(e.get("exit"), "exec failure has no exit status: %r" % e)
            self.assertTrue(str(e.get("error", "")).startswith("exec failed: "), e)
            self.assertIn("No such file or directory", e.get("error", ""))

    def test_exec_enoent_says_which_file(self):
        """execve's ENOENT for a hook that is there names the #! line's
        missing interpreter, or its CRLF ending; for a hook removed while
        its delivery waited for a slot it says so. The answer, the log line,
        `hookd show --json` and the deliveries API say the same."""
        conf = journal_config(server="max_running = 1\n",
                              extra="[admin]\nlisten = 127.0.0.1:0\n")
        hooks = {"interp": "#!/nonexistent/interp\necho hi\n",
                 "crlf": (b"#!/bin/sh\r\necho hi\r\n", 0o755),
                 "hold": sh("sleep 1\n"), "victim": marker_hook("victim")}
        with JournalHookd(conf, hooks=hooks) as h:
            answers = {"i-1": h.post("i-1", event="interp"), "c-1": h.post("c-1", event="crlf")}
            t, out = h.post_bg("h-1", event="hold")
            wait_for(lambda: (h.event_of("h-1") or {}).get("state") == "running",
                     what="h-1 running")
            t2, out2 = h.post_bg("v-1", event="victim")
            wait_for(lambda: h.event_of("v-1") is not None, what="v-1 journaled")
            os.unlink(os.path.join(h.hooks, "victim"))
            t.join(10)
            t2.join(10)
            answers["v-1"] = out2[0]
            want = {"i-1": "exec failed: interpreter /nonexistent/interp: "
                           "No such file or directory",
                    "c-1": "exec failed: its #! line ends in a carriage return",
                    "v-1": "exec failed: No such file or directory (the hook was removed "
                           "after it was routed)"}
            for eid, r in answers.items():
                b = self.assertAnswer(r, 500)
                e = self.hook_entry(b)
                self.assertIsNone(e.get("exit"), e)
                self.assertTrue(e["error"].startswith(want[eid]), (eid, e))
                line = h.wait_log("msg=delivery", "id=%s " % eid)
                self.assertEqual(harness.parse_logfmt(line)["error"], b["error"], line)
                shown = json.loads(h.cli("show", "--json", eid).stdout)
                api = h.admin("GET", "/api/v1/deliveries/northflank/" + eid).json
                for d in (shown, api):
                    self.assertEqual(d["error"], b["error"], d)
                    self.assertEqual(d["attempt_list"][0]["hooks"][0]["error"], e["error"], d)
            self.assertNothingRan(h)

    def test_exec_missing_elf_loader_names_it(self):
        """A binary whose ELF interpreter (its dynamic loader) is not there
        fails as a hook that cannot start does (500, no exit status), and
        the answer, the log line and `hookd check` name the loader, not a
        bare "No such file or directory". Nothing ran, no fallback either."""
        elf = elf_with_missing_loader()
        if elf is None:
            self.skipTest("/bin/true has no PT_INTERP to patch")
        hooks = {"build:start": (elf, 0o755), "_default": marker_hook("_default")}
        want = "exec failed: its ELF interpreter %s: No such file or directory" % MISSING_LOADER
        with self.daemon(hooks=hooks) as h:
            b = self.assertAnswer(h.northflank(), 500)
            e = self.hook_entry(b)
            self.assertIsNone(e.get("exit"), e)
            self.assertEqual(e.get("error"), want, e)
            line = h.wait_log("msg=delivery", MISSING_LOADER)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn(want, harness.parse_logfmt(line)["error"], line)
            p = h.cli("check")
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("error: build:start: its ELF interpreter %s: No such file or directory"
                          % MISSING_LOADER, p.stdout)
            self.assertNothingRan(h)

    def test_exec_foreign_elf_names_its_machine(self):
        """A binary built for another machine (/bin/true with e_machine
        made aarch64's) fails with execve's bare "Exec format error": the
        answer, the log and `hookd check` (an error, with no binfmt_misc
        emulator to run it) name the machine. Nothing ran."""
        with open("/bin/true", "rb") as f:
            elf = bytearray(f.read())
        if elf[:4] != b"\x7fELF" or elf[5] != 1 or elf[18:20] != b"\x3e\x00":
            self.skipTest("/bin/true is not a little-endian x86-64 ELF")
        if [n for n in os.listdir("/proc/sys/fs/binfmt_misc")
                if n not in ("register", "status")]:
            self.skipTest("a binfmt_misc handler may run a binary for another machine")
        elf[18:20] = b"\xb7\x00"  # EM_AARCH64
        hooks = {"build:start": (bytes(elf), 0o755), "_default": marker_hook("_default")}
        words = "an ELF binary for aarch64, and this machine runs x86-64 ones (Exec format error)"
        with self.daemon(hooks=hooks) as h:
            b = self.assertAnswer(h.northflank(), 500)
            e = self.hook_entry(b)
            self.assertIsNone(e.get("exit"), e)
            self.assertEqual(e.get("error"), "exec failed: " + words, e)
            line = h.wait_log("msg=delivery", "aarch64")
            self.assertIsNotNone(line, h.log_text())
            p = h.cli("check")
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("error: build:start: " + words, p.stdout + p.stderr)
            self.assertNothingRan(h)

    def test_exec_interpreter_chain_and_permission_say_which(self):
        """execve's EACCES and the ENOENT of a script interpreter's own
        missing interpreter name no file: the error names the link that
        fails (an interpreter not executable, a script interpreter whose #!
        interpreter is missing), as `hookd check` does."""
        hooks = {"build:start": "#!{tmp}/plain.txt\necho hi\n",
                 "build:success": "#!{tmp}/wrapper\necho hi\n",
                 "_default": marker_hook("_default")}
        with self.daemon(hooks=hooks) as h:
            h.write_file("plain.txt", "not a program\n")
            h.write_file("wrapper", "#!/nonexistent/sh\n", 0o755)
            want = {"build:start": "exec failed: interpreter %s: Permission denied (not "
                                   "executable: mode 0644)" % h.path("plain.txt"),
                    "build:success": "exec failed: interpreter %s: interpreter /nonexistent/sh:"
                                     " No such file or directory" % h.path("wrapper")}
            for event, error in want.items():
                b = self.assertAnswer(h.northflank(event=event), 500)
                e = self.hook_entry(b)
                self.assertIsNone(e.get("exit"), e)
                self.assertEqual(e.get("error"), error, e)
                self.assertIsNotNone(h.wait_log("msg=delivery", error), h.log_text())
            out = h.cli("check").stdout
            for event, error in want.items():
                self.assertIn("error: %s: %s" % (event, error[len("exec failed: "):]), out)
            self.assertNothingRan(h)

    def test_hook_being_written_is_503(self):
        # A hook still open for writing (a deploy copying it in) cannot be
        # executed. That passes: 503, so the sender retries; then it runs.
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            with open(os.path.join(h.hooks, "build:start"), "a"):
                r = h.northflank()
                b = self.assertAnswer(r, 503)
                self.assertEqual(r.header("Retry-After"), "5")
                self.assertEqual(b.get("status"), "failed", b)
                e = self.hook_entry(b)
                self.assertIsNone(e.get("exit"), e)
                self.assertEqual(e.get("error"), "exec failed: Text file busy", e)
                self.assertNothingRan(h)
            self.assertAnswer(h.northflank(), 200)
            self.assertEqual(h.ran(), ["build:start"])

    def test_timeout_kills_process_group(self):
        hook = sh("echo $$ >> '{tmp}/pids'\necho $$ > '{tmp}/pid'\n"
                  "sleep 30 &\nsleep 30\n")
        with self.daemon(hooks={"build:start": hook}) as h:
            t0 = time.monotonic()
            r = h.northflank()
            took = time.monotonic() - t0
            b = self.assertAnswer(r, 504)
            self.assertEqual(b.get("status"), "timeout", r)
            e = self.hook_entry(b)
            self.assertEqual(e.get("error"), "timed out after 1s", e)
            self.assertLess(took, 4.0)
            self.assertGreaterEqual(took, 0.9)
            pid = int(h.read("pid"))
            self.assertTrue(harness.wait_group_gone(pid, 3),
                            "processes of the hook's group remain: %r" % harness.group_members(pid))

    def test_sigterm_ignored_then_sigkill(self):
        hook = sh("trap '' TERM\necho $$ >> '{tmp}/pids'\necho $$ > '{tmp}/pid'\n"
                  "sleep 30 &\nsleep 30\nsleep 30\n")
        with self.daemon(hooks={"build:start": hook}) as h:
            t0 = time.monotonic()
            r = h.northflank()
            took = time.monotonic() - t0
            b = self.assertAnswer(r, 504)
            self.assertEqual(b.get("status"), "timeout")
            e = self.hook_entry(b)
            self.assertEqual(e.get("signal"), "SIGKILL", e)
            self.assertIsNone(e.get("exit"))
            self.assertGreaterEqual(took, 1.8, "kill_grace (1s) after the timeout (1s)")
            self.assertLess(took, 5.0)
            pid = int(h.read("pid"))
            self.assertTrue(harness.wait_group_gone(pid, 3),
                            "processes of the hook's group remain: %r" % harness.group_members(pid))

    def test_event_section_timeout(self):
        conf = NF_CONFIG + "\n[event build]\ntimeout = 3s\n"
        hooks = {"build:start": sh("sleep 1.5\necho done >> '{tmp}/ran'"),
                 "deploy": sh("sleep 1.5\necho done >> '{tmp}/ran'")}
        with self.daemon(conf, hooks=hooks) as h:
            self.assertAnswer(h.northflank(), 200, "[event build] gives build:start 3s")
            b = self.assertAnswer(h.northflank(event="deploy"), 504, "the server's 1s")
            self.assertEqual(self.hook_entry(b).get("error"), "timed out after 1s")

    def test_background_child_does_not_hold_response(self):
        hook = sh("echo $$ >> '{tmp}/pids'\nsleep 60 &\necho started\necho bg >&2\nexit 0\n")
        with self.daemon(hooks={"build:start": hook}) as h:
            t0 = time.monotonic()
            r = h.northflank()
            self.assertAnswer(r, 200)
            self.assertLess(time.monotonic() - t0, 3.0, "a background child held the response")
            self.assertEqual(self.hook_entry(r.body).get("exit"), 0)
            # the daemon keeps serving
            self.assertAnswer(h.northflank(), 200)

    def test_max_running_overload(self):
        conf = cfg("max_running = 1\nmax_queued = 0\n").replace("timeout = 1s", "timeout = 10s")
        # The slow hook holds the slot until the test writes go (8 s at most).
        hooks = {"slow": sh("echo slow >> '{tmp}/ran'\n"
                            + harness.WAIT_FOR_GO)}
        with self.daemon(conf, hooks=hooks) as h:
            first = {}
            t = threading.Thread(target=lambda: first.setdefault("r", h.northflank(event="slow")))
            t.start()
            try:
                self.assertTrue(h.wait_file("ran", 5), "the first slow hook did not start")
                r = h.northflank(event="slow")
                b = self.assertAnswer(r, 503)
                self.assertEqual(b.get("status"), "overloaded", r)
                self.assertIsNotNone(r.header("Retry-After"), "503 without Retry-After")
                # a delivery with no route takes no slot, nor does a rejected request
                r = h.northflank(event="nothing:here")
                b = self.assertAnswer(r, 200)
                self.assertEqual(b.get("status"), "unhandled")
                self.assertAnswer(h.northflank(event="slow", token="wrong"), 401)
                self.assertAnswer(h.northflank(event="bad name!"), 400)
            finally:
                h.write_file("go", "")
                t.join(15)
            self.assertFalse(t.is_alive())
            self.assertAnswer(first["r"], 200)
            self.assertEqual(h.ran(), ["slow"], "the overloaded delivery ran")
            self.assertAnswer(h.northflank(event="slow"), 200, "the slot is free again")


# --------------------------------------------------------------------------

    def test_spawner_threads_follow_cpu_affinity_and_do_not_cap_running_hooks(self):
        # One spawner thread a CPU hookd may run on, at least 2: pinned to
        # one CPU, hookd has its loop and 2 spawners once a hook has run.
        # The spawners only start hooks: 6 hooks still run at once.
        # The slow hooks run until the test writes go (8 s at most), so
        # that all six are seen running however slowly a loaded machine
        # (one CPU for hookd) starts them; capped, they would not be.
        conf = cfg().replace("timeout = 1s", "timeout = 10s")
        hooks = {"slow": sh("echo slow >> '{tmp}/slow'\n"
                            + harness.WAIT_FOR_GO),
                 "quick": marker_hook("quick")}
        cpu = sorted(os.sched_getaffinity(0))[0]
        with self.daemon(conf, hooks=hooks, wrap=["taskset", "-c", str(cpu)]) as h:
            self.assertEqual(len(os.listdir("/proc/%d/task" % h.proc.pid)), 1,
                             "threads before any hook")
            self.assertAnswer(h.northflank(event="quick"), 200)
            self.assertEqual(len(os.listdir("/proc/%d/task" % h.proc.pid)), 3,
                             "the loop and 2 spawners")
            answers = []
            threads = [threading.Thread(target=lambda: answers.append(h.northflank(event="slow")))
                       for _ in range(6)]
            for t in threads:
                t.start()
            try:
                deadline = time.monotonic() + 6
                while time.monotonic() < deadline and len((h.read("slow") or "").split()) < 6:
                    time.sleep(0.05)
                started = len((h.read("slow") or "").split())
            finally:
                h.write_file("go", "")
            for t in threads:
                t.join(15)
            self.assertEqual(started, 6, "six hooks were not all running at once within 6 s")
            self.assertEqual(sorted(r.status for r in answers), [200] * 6)
        n = len(os.sched_getaffinity(0))
        with self.daemon(conf, hooks=hooks) as h:
            self.assertAnswer(h.northflank(event="quick"), 200)
            self.assertEqual(len(os.listdir("/proc/%d/task" % h.proc.pid)), 1 + min(max(n, 2), 16))
# hook output: responses and logs

class TestOutput(Base):
    HOOK = sh("echo out-line-1\necho err-line-1 >&2\necho out-line-2\nexit 0")

    def test_output_absent_by_default(self):
        with self.daemon(hooks={"build:start": self.HOOK}) as h:
            r = h.northflank()
            b = self.assertAnswer(r, 200)
            self.assertNotIn("output", self.hook_entry(b))
            self.assertNotIn(b"out-line-1", r.raw)

    def test_include_output_yes(self):
        with self.daemon(cfg("include_output = yes\n"), hooks={"build:start": self.HOOK}) as h:
            b = self.assertAnswer(h.northflank(), 200)
            out = self.hook_entry(b).get("output")
            self.assertIsInstance(out, str)
            for s in ("out-line-1", "err-line-1", "out-line-2"):
                self.assertIn(s, out)
            self.assertLess(out.index("out-line-1"), out.index("out-line-2"))

    def test_output_tail_is_last_4k(self):
        hook = sh("i=0\nwhile [ $i -lt 400 ]; do echo \"line-$i-xxxxxxxxxxxxxxxxxxxx\"; "
                  "i=$((i+1)); done\necho LAST-LINE")
        with self.daemon(cfg("include_output = yes\n"), hooks={"build:start": hook}) as h:
            b = self.assertAnswer(h.northflank(), 200)
            out = self.hook_entry(b).get("output", "")
            self.assertIn("LAST-LINE", out)
            self.assertNotIn("line-0-", out)
            self.assertLessEqual(len(out.encode()), 4096)

    def test_output_lines_logged_with_delivery_id(self):
        with self.daemon(hooks={"build:start": self.HOOK}) as h:
            eid = new_id("log")
            self.assertAnswer(h.northflank(event_id=eid), 200)
            for s in ("out-line-1", "err-line-1", "out-line-2"):
                line = h.wait_log(s, eid, timeout=5)
                self.assertIsNotNone(line, "%s not logged with id %s:\n%s"
                                     % (s, eid, h.log_text()))

    def test_output_nul_bytes_logged_escaped(self):
        # A NUL in a hook's output is logged as \u0000, in logfmt and JSON
        # alike, not as some other byte and not as the end of the line.
        hook = sh("printf 'a\\000b?\\n'; printf 'c\\000\\n' >&2")
        for fmt in ("logfmt", "json"):
            with self.subTest(fmt), self.daemon(cfg("log_format = %s\n" % fmt),
                                                hooks={"build:start": hook}) as h:
                eid = new_id("nul")
                self.assertAnswer(h.northflank(event_id=eid), 200)
                got = {}
                for stream in ("stdout", "stderr"):
                    line = h.wait_log(stream, eid, timeout=5)
                    self.assertIsNotNone(line, h.log_text())
                    self.assertIn("\\u0000", line)
                    got[stream] = (json.loads(line) if fmt == "json"
                                   else harness.parse_logfmt(line))["line"]
                self.assertEqual(got, {"stdout": "a\0b?", "stderr": "c\0"})

    def test_failure_logged(self):
        with self.daemon(hooks={"build:start": marker_hook("x", 3)}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 500)
            line = h.wait_log("msg=delivery", "id=" + eid, timeout=5)
            self.assertIsNotNone(line, h.log_text())
            self.assertIn("status=failed", line)
            self.assertIn("http=500", line)


    def test_delivery_line_ms_and_hooks(self):
        hooks = {"build:start/10-a": sh("sleep 0.3"), "build:start/20-b": sh("exit 0")}
        with self.daemon(hooks=hooks) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            line = h.wait_log("msg=delivery", "id=" + eid, timeout=5)
            f = harness.parse_logfmt(line)
            self.assertEqual(f.get("hooks"), "2", line)
            self.assertGreaterEqual(int(f.get("ms", "-1")), 300, line)
            self.assertLess(int(f["ms"]), 5000, line)

    def test_output_logged_while_the_hook_runs(self):
        # The hook waits (8 s at most) for the test to let it go on: its
        # first line must be logged while it still runs, however slowly
        # the machine starts it.
        hook = sh("echo first-line\n"
                  + harness.WAIT_FOR_GO +
                  "echo second-line")
        conf = cfg("").replace("timeout = 1s", "timeout = 10s")
        with self.daemon(conf, hooks={"build:start": hook}) as h:
            res = {}
            t = threading.Thread(target=lambda: res.setdefault("r", h.northflank()))
            t.start()
            try:
                self.assertIsNotNone(h.wait_log("first-line", timeout=10),
                                     "a line is logged when the hook writes it")
                self.assertNotIn("r", res, "the delivery is still running")
                self.assertIsNone(h.wait_log("second-line", timeout=0.2))
            finally:
                h.write_file("go", "")
                t.join(15)
            self.assertAnswer(res["r"], 200)

    def test_output_log_line_cut_at_1k(self):
        hook = sh("i=0\nwhile [ $i -lt 300 ]; do printf 'yyyyyyyyyy'; i=$((i+1)); done\n"
                  "echo\necho after-long-line")
        with self.daemon(hooks={"build:start": hook}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            self.assertIsNotNone(h.wait_log("after-long-line", eid, timeout=5), h.log_text())
            ys = [ln for ln in h.logs() if eid in ln and "yyyy" in ln]
            self.assertEqual(len(ys), 1, "a 3000-byte line is logged as one line cut at "
                             "1 KiB, the rest dropped; got %d lines of %s bytes"
                             % (len(ys), [max(map(len, re.findall("y+", ln))) for ln in ys]))
            longest = max(len(m) for m in re.findall("y+", ys[0]))
            self.assertLessEqual(longest, 1024)
            self.assertGreaterEqual(longest, 1000)

    def test_output_log_rate_limit(self):
        hook = sh("i=0\nwhile [ $i -lt 1000 ]; do echo \"flood-$i\"; i=$((i+1)); done")
        with self.daemon(hooks={"build:start": hook}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            self.assertIsNotNone(h.wait_log("msg=delivery", eid, timeout=5))
            time.sleep(1.2)
            mine = [ln for ln in h.logs() if eid in ln]
            flood = [ln for ln in mine if "flood-" in ln]
            self.assertGreaterEqual(len(flood), 100)
            self.assertLessEqual(len(flood), 200, "at most 100 lines a second are logged")
            others = [ln for ln in mine if "flood-" not in ln and "msg=delivery" not in ln]
            dropped = 1000 - len(flood)
            self.assertTrue([ln for ln in others if str(dropped) in ln],
                            "no line counts the %d dropped lines: %r" % (dropped, others))

    def test_omitted_variables_counted_in_log(self):
        def chain(n, leaf):
            obj = leaf
            for i in range(n, 0, -1):
                obj = {"k%d" % i: obj}
            return obj
        payload = {"event": "build:start", "nul": "a\u0000b", "big": "x" * 70000,
                   "fine": "y" * 60000, "ok": "fine",
                   "deep": chain(31, "kept"), "deeper": chain(32, "lost")}
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(body=payload, event_id=eid), 200)
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_OK"), "fine")
            self.assertEqual(len(env.get("HOOK_FINE", "")), 60000)
            self.assertNotIn("HOOK_NUL", env)
            self.assertNotIn("HOOK_BIG", env)
            self.assertEqual(env.get("HOOK_DEEP_" + "_".join("K%d" % i for i in range(1, 32))),
                             "kept", "a leaf at level 32 is kept")
            self.assertFalse([k for k in env if k.startswith("HOOK_DEEPER")],
                             "a leaf at level 33 is left out")
            line = h.wait_log("msg=delivery", "id=" + eid, timeout=5)
            kv = harness.parse_logfmt(line)
            counts = {k: v for k, v in kv.items() if k not in ("ms", "http", "hooks") and v == "3"}
            self.assertTrue(counts, "the delivery line does not say 3 were left out: " + line)


# --------------------------------------------------------------------------
# README "Logs and signals": levels, the kept tail, JSON types

def json_log(h):
    """Every log line, each parsed as JSON (a line that is not fails)."""
    return [json.loads(ln) for ln in h.logs() if ln.strip()]


class TestLogs(Base):
    HOOK = sh("echo out-line-1\necho 'deploy failed: disk full' >&2\nexit 0")

    def test_output_tail_keeps_lines_whole(self):
        """A stderr line written while stdout's line is half written goes
        into the output tail before it, not inside it: the answer, `hookd
        show --json` and the deliveries API hold the same tail, each of its
        lines one the log logged."""
        hook = sh("printf 'out-start '\nsleep 0.3\necho 'ERR LINE' >&2\nsleep 0.3\n"
                  "echo out-end\nprintf 'no nl'\nexit 2\n")
        conf = journal_config(server="include_output = yes\n",
                              extra="[admin]\nlisten = 127.0.0.1:0\n")
        with JournalHookd(conf, hooks={"mix": hook}) as h:
            b = self.assertAnswer(h.post("mx-1", event="mix"), 500)
            out = self.hook_entry(b)["output"]
            lines = out.split("\n")
            self.assertEqual(sorted(lines), ["ERR LINE", "no nl", "out-start out-end"], out)
            self.assertEqual(lines[-1], "no nl", out)
            shown = json.loads(h.cli("show", "--json", "mx-1").stdout)
            api = h.admin("GET", "/api/v1/deliveries/northflank/mx-1").json
            for d in (shown, api):
                self.assertEqual(d["attempt_list"][0]["hooks"][0]["output"], out, d)
            h.wait_log("msg=delivery", "id=mx-1")
            logged = [harness.parse_logfmt(l)["line"] for l in h.log_lines("msg=output",
                                                                            "id=mx-1")]
            self.assertEqual(sorted(logged), sorted(lines), logged)

    def test_stderr_at_warn_stdout_at_info(self):
        with self.daemon(hooks={"build:start": self.HOOK}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            out = h.wait_log("msg=output", "id=" + eid, "out-line-1")
            err = h.wait_log("msg=output", "id=" + eid, "disk full")
            self.assertIsNotNone(out, h.log_text())
            self.assertIsNotNone(err, h.log_text())
            f, g = harness.parse_logfmt(out), harness.parse_logfmt(err)
            self.assertEqual((f["level"], f["stream"], f["line"]), ("info", "stdout", "out-line-1"))
            self.assertEqual((g["level"], g["stream"], g["line"]),
                             ("warn", "stderr", "deploy failed: disk full"))

    def test_stderr_at_warn_stdout_at_info_json(self):
        with self.daemon(cfg("log_format = json\n"), hooks={"build:start": self.HOOK}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            self.assertIsNotNone(h.wait_log('"msg":"delivery"', eid), h.log_text())
            got = {(e["level"], e["stream"], e["line"]) for e in json_log(h)
                   if e["msg"] == "output" and e.get("id") == eid}
            self.assertEqual(got, {("info", "stdout", "out-line-1"),
                                   ("warn", "stderr", "deploy failed: disk full")})

    def test_the_last_lines_of_a_flood_are_logged(self):
        """10,000 lines in well under a second, then the one that matters
        on stderr: the rate limit drops most, but the last lines are logged
        when the hook ends, and every line is logged or counted."""
        hook = sh("seq 1 10000\necho 'FATAL: disk full' >&2\nexit 1")
        with self.daemon(cfg("").replace("timeout = 1s", "timeout = 10s"),
                         hooks={"build:start": hook}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 500)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + eid), h.log_text())
            fatal = h.log_lines("msg=output", "id=" + eid, "FATAL")
            self.assertEqual(len(fatal), 1, h.log_text()[-3000:])
            f = harness.parse_logfmt(fatal[0])
            self.assertEqual((f["level"], f["stream"], f["line"], f.get("tail")),
                             ("warn", "stderr", "FATAL: disk full", "true"))
            logged = h.log_lines("msg=output", "id=" + eid)
            tail = [ln for ln in logged if " tail=true" in ln]
            self.assertEqual(logged[-len(tail):], tail, "the tail comes last")
            # At most 20 a stream; stdout's first, stderr's last, so the
            # error is the last line whatever order the pipes were read in.
            self.assertLessEqual(len(tail), 40)
            self.assertIn("stream=stderr", tail[-1])
            outs = [harness.parse_logfmt(ln)["line"] for ln in tail if "stream=stdout" in ln]
            self.assertEqual(outs, [str(n) for n in range(10001 - len(outs), 10001)])
            drops = [harness.parse_logfmt(ln) for ln in
                     h.log_lines("msg=\"output lines dropped\"", "id=" + eid)]
            self.assertTrue(drops, h.log_text()[-3000:])
            self.assertEqual(drops[-1].get("tail"), str(len(tail)))
            self.assertEqual(len(logged) + sum(int(d["dropped"]) for d in drops), 10001)

    def test_json_numbers_and_booleans(self):
        hook = sh("head -c 3000 /dev/zero | tr '\\0' y; echo\nseq 1 300\nexit 3")
        with self.daemon(cfg("log_format = json\n").replace("timeout = 1s", "timeout = 10s"),
                         hooks={"build:start": hook}) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 500)
            self.assertIsNotNone(h.wait_log('"msg":"delivery"', eid), h.log_text())
            lines = json_log(h)  # every line is JSON
            mine = [e for e in lines if e.get("id") == eid]
            d = [e for e in mine if e["msg"] == "delivery"][0]
            self.assertIs(type(d["http"]), int, d)
            self.assertEqual(d["http"], 500)
            self.assertIs(type(d["ms"]), int, d)
            self.assertIs(type(d["hooks"]), int, d)
            cut = [e for e in mine if e["msg"] == "output" and e.get("cut") is not None]
            self.assertEqual([e["cut"] for e in cut], [True], cut)
            drops = [e for e in mine if e["msg"] == "output lines dropped"]
            self.assertTrue(drops, mine[-5:])
            self.assertTrue(all(type(e["dropped"]) is int for e in drops), drops)
            self.assertIs(drops[-1]["tail"] > 0, True)
            self.assertTrue(all(e["tail"] is True for e in mine
                                if e["msg"] == "output" and "tail" in e))
            # Strings stay strings, even one that looks like a number.
            self.assertIsInstance(d["event"], str)
            self.assertIsInstance([e for e in mine if e["msg"] == "output"][1]["line"], str)
            # And the listening line's address is a string too.
            listen = [e for e in lines if e["msg"] == "listening"][0]
            self.assertIsInstance(listen["addr"], str)


# --------------------------------------------------------------------------
# README "Logs and signals": signals; HTTP/1.1 connections

class TestSignalsAndConnections(Base):

    def test_sighup_broken_config_keeps_old(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            self.assertAnswer(h.northflank(), 200)
            n = len(h.logs())
            h.write_config(NF_CONFIG.replace("timeout = 1s", "timout = 1s")
                           .replace("/webhook", "/other"))
            h.send_signal(signal.SIGHUP)
            line = h.wait_log("timout", timeout=5, start=n)
            self.assertIsNotNone(line, "the bad config was not logged:\n" + h.log_text())
            self.assertIn("hookd.ini", line)
            h.reset_ran()
            self.assertAnswer(h.northflank(), 200, "the old config still serves")
            self.assertEqual(h.ran(), ["build:start"])
            self.assertAnswer(h.northflank(path="/other"), 404)

    def test_sighup_valid_config_takes_effect(self):
        new_token = "n3w-t0ken-after-reload-77"
        with self.daemon(hooks=CATCH_ALL, secrets=[NF_TOKEN, new_token]) as h:
            self.assertAnswer(h.northflank(), 200)
            h.write_config(NF_CONFIG.replace(NF_TOKEN, new_token)
                           .replace("/webhook", "/hook2"))
            h.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            r = None
            while time.monotonic() < deadline:
                r = h.northflank(token=new_token, path="/hook2")
                if r.status == 200:
                    break
                time.sleep(0.1)
            self.assertAnswer(r, 200, "the new config never took effect")
            self.assertAnswer(h.northflank(token=NF_TOKEN, path="/hook2"), 401)
            self.assertAnswer(h.northflank(token=NF_TOKEN, path="/webhook"), 404)

    def test_sigint_is_sigterm(self):
        def during(h, idle):
            with self.assertRaises((ConnectionRefusedError, ConnectionResetError)):
                h.northflank(event="late", timeout=3)  # the listener is closed
        self.sigterm_during_slow_hook(during, signal.SIGINT)

    def sigterm_during_slow_hook(self, during, sig=signal.SIGTERM):
        """Starts a slow delivery, sends sig (SIGTERM) while its hook runs,
        calls during(h), then checks the slow client got its 200 and exit 0.
        The hook runs until the test lets it end (8 s at most): not a fixed
        time that a loaded machine could use up before during() runs."""
        hooks = {"slow": sh("echo slow >> '{tmp}/ran'\n"
                            + harness.WAIT_FOR_GO +
                            "echo done >> '{tmp}/ran'"),
                 "late": marker_hook("late")}
        conf = NF_CONFIG.replace("timeout = 1s", "timeout = 10s")
        with self.daemon(conf, hooks=hooks) as h:
            idle = h.connect()
            self.assertAnswer(h.northflank(conn=idle, event="late"), 200)
            h.reset_ran()
            res = {}
            t = threading.Thread(target=lambda: res.setdefault("r", h.northflank(event="slow")))
            t.start()
            try:
                self.assertTrue(h.wait_file("ran", 10), "the slow hook did not start")
                h.send_signal(sig)
                name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
                self.assertIsNotNone(h.wait_log(name + " received", timeout=10), h.log_text())
                time.sleep(0.2)
                during(h, idle)
            finally:
                h.write_file("go", "")
                t.join(15)
                idle.close()
            self.assertFalse(t.is_alive())
            self.assertAnswer(res.get("r"), 200, "the running delivery's client gets its answer")
            rc = h.wait_exit(15)
            self.assertEqual(rc, 0, "exit status after SIGTERM")
            self.assertEqual(h.ran(), ["slow", "done"])

    def test_sigterm_lets_running_hook_finish(self):
        def during(h, idle):
            # a new connection: refused (the listener is closed) or 503
            try:
                r = h.northflank(event="late", timeout=3)
                self.assertAnswer(r, 503)
            except (ConnectionRefusedError, ConnectionResetError):
                pass
        self.sigterm_during_slow_hook(during)

    def test_sigterm_open_connection_gets_503(self):
        """README "Logs and signals": new requests on open connections are answered 503 with
        Connection: close (also on a keep-alive connection idle at SIGTERM)."""
        def during(h, idle):
            try:
                r = h.northflank(conn=idle, event="late")
            except (ConnectionError, http.client.HTTPException) as e:
                self.fail("a request on a keep-alive connection open at SIGTERM got "
                          "no answer: %r" % e)
            self.assertAnswer(r, 503)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertIsNotNone(r.header("Retry-After"))
        self.sigterm_during_slow_hook(during)

    def test_sighup_running_delivery_keeps_its_config(self):
        hooks = {"slow": sh("echo slow-output\necho slow >> '{tmp}/ran'\nsleep 2"),
                 "fast": sh("echo fast-output")}
        conf = NF_CONFIG.replace("timeout = 1s", "timeout = 10s")
        with self.daemon(conf, hooks=hooks) as h:
            res = {}
            t = threading.Thread(target=lambda: res.setdefault("r", h.northflank(event="slow")))
            t.start()
            try:
                self.assertTrue(h.wait_file("ran", 5))
                h.write_config(conf.replace("kill_grace = 1s\n",
                                            "kill_grace = 1s\ninclude_output = yes\n"))
                h.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                reloaded = False
                while time.monotonic() < deadline and not reloaded:
                    r = h.northflank(event="fast")
                    reloaded = "output" in self.hook_entry(self.assertAnswer(r, 200))
                    time.sleep(0.05)
                self.assertTrue(reloaded, "include_output = yes never took effect")
            finally:
                t.join(15)
            e = self.hook_entry(self.assertAnswer(res.get("r"), 200))
            self.assertNotIn("output", e, "the running delivery took the new config")

    def test_keep_alive_two_deliveries(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            conn = h.connect()
            try:
                r1 = h.northflank(conn=conn)
                self.assertAnswer(r1, 200)
                self.assertNotEqual(r1.header("Connection", "").lower(), "close")
                self.assertIsNotNone(conn.sock, "the connection was closed after one delivery")
                local = conn.sock.getsockname()
                r2 = h.northflank(conn=conn)
                self.assertAnswer(r2, 200)
                self.assertIsNotNone(conn.sock)
                self.assertEqual(conn.sock.getsockname(), local, "a new connection was needed")
                # a rejected request keeps the connection too
                r3 = h.northflank(conn=conn, token="bad")
                self.assertAnswer(r3, 401)
                r4 = h.northflank(conn=conn)
                self.assertAnswer(r4, 200)
            finally:
                conn.close()
            self.assertEqual(h.ran(), ["build:start"] * 3)


# --------------------------------------------------------------------------
# README "What a hook gets" slots and queueing, README "Delivery guarantees" in-memory idempotency, README "Configuration" limits

class TestSlotsAndIdempotency(Base):

    def test_queued_delivery_waits_for_slot(self):
        # A's first hook waits (8 s at most) until C has been refused, and B
        # is seen queued (metrics) before C is sent: no fixed time for the
        # machine to get that far in.
        conf = cfg("max_running = 1\nmax_queued = 1\n").replace("timeout = 1s", "timeout = 10s")
        conf += "\n[admin]\nlisten = 127.0.0.1:0\n"
        step = ("echo \"$HOOK_ID-%s\" >> '{tmp}/ran'\n"
                + harness.WAIT_FOR_GO +
                "sleep 0.5\n")
        hooks = {"chain/1": sh(step % "1"), "chain/2": sh(step % "2")}
        with self.daemon(conf, hooks=hooks) as h:
            res = {}

            def send(name):
                res[name] = h.northflank(event="chain", event_id=name)
            ta = threading.Thread(target=send, args=("A",))
            ta.start()
            tb = None
            try:
                self.assertTrue(h.wait_file("ran", 10))
                tb = threading.Thread(target=send, args=("B",))
                tb.start()
                harness.wait_for(lambda: harness.metric(harness.parse_metrics(h.scrape()),
                                                        "hookd_deliveries_queued") == 1,
                                 what="B queued")
                r = h.northflank(event="chain", event_id="C")
                self.assertAnswer(r, 503, "max_queued = 1 is full")
            finally:
                h.write_file("go", "")
                ta.join(15)
                if tb:
                    tb.join(15)
            self.assertAnswer(res["A"], 200)
            self.assertAnswer(res["B"], 200)
            self.assertEqual(h.ran(), ["A-1", "A-2", "B-1", "B-2"],
                             "one delivery holds its slot for its whole chain")

    def test_delivery_id_limits(self):
        with self.daemon(hooks={"build:start": env_hook("build:start")}) as h:
            r = h.northflank(event_id="i" * 256)
            b = self.assertAnswer(r, 400, "a 256-byte delivery id")
            self.assertEqual(b.get("error"), "invalid delivery id", b)
            self.assertNothingRan(h)
            self.assertAnswer(h.northflank(event_id="i" * 255), 200, "255 bytes is fine")
            self.assertEqual(self.hook_env(h).get("HOOK_ID"), "i" * 255)

    def test_duplicate_delivery_id(self):
        hooks = {"ok": marker_hook("ok"),
                 "fail": sh("echo \"fail-$HOOK_ATTEMPT\" >> '{tmp}/ran'\nexit 3"),
                 # runs until the test has sent its resend (8 s at most)
                 "slow": sh("echo slow >> '{tmp}/ran'\n"
                            + harness.WAIT_FOR_GO)}
        conf = NF_CONFIG.replace("timeout = 1s", "timeout = 10s") + (
            "\n[endpoint other]\npath = /other\nscheme = northflank\nsecret = %s\n" % NF_TOKEN)
        with self.daemon(conf, hooks=hooks) as h:
            self.assertAnswer(h.northflank(event="ok", event_id="dup-1"), 200)
            b = self.assertAnswer(h.northflank(event="ok", event_id="dup-1"), 200)
            self.assertEqual(b.get("status"), "duplicate", b)
            self.assertEqual(h.ran(), ["ok"], "a duplicate runs nothing")
            self.assertAnswer(h.northflank(event="ok", event_id="dup-1", path="/other"), 200)
            self.assertEqual(h.ran(), ["ok", "ok"], "ids are per endpoint")
            # unhandled counts as succeeded
            self.assertEqual(h.northflank(event="none:here", event_id="dup-2").body.get("status"),
                             "unhandled")
            b = self.assertAnswer(h.northflank(event="none:here", event_id="dup-2"), 200)
            self.assertEqual(b.get("status"), "duplicate")
            # a failed one runs again, HOOK_ATTEMPT counting up
            h.reset_ran()
            self.assertAnswer(h.northflank(event="fail", event_id="dup-3"), 500)
            self.assertAnswer(h.northflank(event="fail", event_id="dup-3"), 500)
            self.assertEqual(h.ran(), ["fail-1", "fail-2"])
            # one still running: 409 + Retry-After
            h.reset_ran()
            res = {}
            t = threading.Thread(target=lambda: res.setdefault(
                "r", h.northflank(event="slow", event_id="dup-4")))
            t.start()
            try:
                self.assertTrue(h.wait_file("ran", 5))
                r = h.northflank(event="slow", event_id="dup-4")
                b = self.assertAnswer(r, 409)
                self.assertEqual(b.get("status"), "running")
                self.assertIsNotNone(r.header("Retry-After"))
            finally:
                h.write_file("go", "")
                t.join(15)
            self.assertAnswer(res["r"], 200)
            self.assertEqual(h.ran(), ["slow"])

    def test_hook_rlimits(self):
        conf = cfg("limit_nofile = 64\nlimit_nproc = 5000\nlimit_memory = 1GiB\n"
                   "limit_cpu = 7\n")
        hook = sh("for f in n p v t; do echo \"$f $(ulimit -S -$f) $(ulimit -H -$f)\"; done "
                  "> '{tmp}/limits.txt'")
        with self.daemon(conf, hooks={"build:start": hook}) as h:
            self.assertAnswer(h.northflank(), 200)
            got = dict((ln.split(" ", 1)[0], ln.split(" ", 1)[1])
                       for ln in h.read("limits.txt").splitlines())
            self.assertEqual(got, {"n": "64 64", "p": "5000 5000",
                                   "v": "1048576 1048576", "t": "7 7"})


class TestConnectionLimits(Base):

    def test_every_answer_is_json(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            for raw in (b"NONSENSE\r\n\r\n",
                        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        b"Content-Length: 6\r\n\r\n{}{}{}",
                        b"BREW /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"):
                data, err = h.raw(raw, timeout=5)
                r = harness.parse_raw_response(data)
                self.assertIsNotNone(r, "no answer to %r: %s %r" % (raw[:40], err, data[:100]))
                self.assertTrue(400 <= r.status < 500, "%r -> %r" % (raw[:40], r))
                self.assertAnswer(r, r.status)
            r = h.request("HEAD", "/webhook")
            self.assertEqual(r.status, 405)
            self.assertNothingRan(h)

    # A large answer: 10 hooks, each with 4 KiB of output that JSON escapes
    # six-fold (about 250 KB), to a client whose receive buffer is tiny.
    BIG_ANSWER = {"build:start/%02d" % i: sh("head -c 4096 /dev/zero | tr '\\0' '\\1'")
                  for i in range(10)}

    def small_client(self, h):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.settimeout(10)
        s.connect(("127.0.0.1", h.port))
        body = sample_body()
        s.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (
                      (NF_PREFIX + "Token", NF_TOKEN), (NF_PREFIX + "Event-Type", "build:start"),
                      (NF_PREFIX + "Event-Id", new_id())))
                  + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return s

    def test_half_close_while_the_answer_is_sent(self):
        """A client that shuts down its sending side once the answer has
        begun still reads all of it (it ran: a lost answer is a resend)."""
        conf = cfg("include_output = yes\n").replace("timeout = 1s", "timeout = 10s")
        with self.daemon(conf, hooks=self.BIG_ANSWER) as h:
            s = self.small_client(h)
            try:
                got = s.recv(100)
                self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
                s.shutdown(socket.SHUT_WR)
                time.sleep(0.3)  # hookd reads the end while the answer is queued
                got = recv_answer(s, got, 10)
            finally:
                s.close()
            r = harness.parse_raw_response(got)
            self.assertEqual(len(r.raw), int(r.headers["content-length"]), "the answer was cut")
            self.assertEqual(len(r.json["hooks"]), 10)

    def test_client_that_does_not_read_is_dropped(self):
        """read_timeout is also the write timeout: a client that never
        reads its answer is dropped, and does not hold up SIGTERM."""
        conf = cfg("include_output = yes\n").replace("timeout = 1s", "timeout = 10s").replace(
            "include_output = yes\n", "include_output = yes\nread_timeout = 1s\n")
        with self.daemon(conf, hooks=self.BIG_ANSWER) as h:
            s = self.small_client(h)
            try:
                self.assertIsNotNone(h.wait_log("msg=delivery", timeout=10))
                time.sleep(3)  # past the write timeout (1 s), with room for a loaded machine
                t0 = time.monotonic()
                h.send_signal(signal.SIGTERM)
                self.assertEqual(h.wait_exit(10), 0)
                # The bound leaves room for an exit slowed by sanitizers on a
                # loaded machine.
                self.assertLess(time.monotonic() - t0, 3.0, "SIGTERM waited for the stalled reader")
            finally:
                s.close()

    def test_expect_100_continue(self):
        with self.daemon(hooks=CATCH_ALL) as h:
            body = json_body({"event": "build:start"}, 4096)
            head = ("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + NF_PREFIX + "Token: " + NF_TOKEN + "\r\n"
                    + NF_PREFIX + "Event-Id: " + new_id() + "\r\n"
                    + "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
            s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
            try:
                s.sendall(head)
                s.settimeout(1.5)  # curl waits 1 s for the 100, then sends anyway
                try:
                    interim = s.recv(65536)
                except socket.timeout:
                    interim = b""
                if interim:
                    self.assertTrue(interim.startswith(b"HTTP/1.1 100"), interim)
                s.settimeout(5)
                s.sendall(body)
                got = recv_answer(s, interim.split(b"\r\n\r\n", 1)[1] if interim else b"", 5)
            finally:
                s.close()
            self.assertAnswer(harness.parse_raw_response(got), 200)
            self.assertEqual(h.ran(), ["build:start"])

    def test_431_headers_too_large(self):
        with self.daemon(cfg("max_headers = 1KiB\n"), hooks=CATCH_ALL) as h:
            r = h.northflank(extra={"X-Padding": "p" * 2048})
            self.assertAnswer(r, 431)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            self.assertNothingRan(h)
            self.assertAnswer(h.northflank(), 200)

    def test_read_timeout(self):
        with self.daemon(cfg("read_timeout = 1s\n"), hooks=CATCH_ALL) as h:
            head = ("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + NF_PREFIX + "Token: " + NF_TOKEN + "\r\n")
            for partial in (head.encode(),  # headers never finished
                            (head + "Content-Length: 100\r\n\r\n{\"event\":").encode()):
                t0 = time.monotonic()
                data, err = h.raw(partial, timeout=5)
                took = time.monotonic() - t0
                self.assertNotEqual(err, "timeout", "the connection was not closed after "
                                    "read_timeout (%r)" % partial[-20:])
                self.assertLess(took, 3.5)
                self.assertGreater(took, 0.8)
                if data:
                    r = harness.parse_raw_response(data)
                    self.assertIsNotNone(r, data)
                    self.assertTrue(400 <= r.status < 500, r)
            self.assertNothingRan(h)
            self.assertAnswer(h.northflank(), 200)

    def test_idle_timeout(self):
        with self.daemon(cfg("idle_timeout = 1s\n"), hooks=CATCH_ALL) as h:
            body = json_body({"event": "build:start"})
            req = ("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   + NF_PREFIX + "Token: " + NF_TOKEN + "\r\n"
                   + NF_PREFIX + "Event-Id: " + new_id() + "\r\n"
                   + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
            s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
            try:
                s.sendall(req)
                got = b""
                while harness.parse_raw_response(got) is None or \
                        len(harness.parse_raw_response(got).raw) < \
                        int(harness.parse_raw_response(got).headers.get("content-length", 0)):
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "closed before the response")
                    got += chunk
                self.assertEqual(harness.parse_raw_response(got).status, 200)
                t0 = time.monotonic()
                try:
                    rest = s.recv(65536)
                except socket.timeout:
                    self.fail("an idle connection stayed open past idle_timeout")
                except ConnectionResetError:
                    rest = b""
                took = time.monotonic() - t0
                self.assertEqual(rest, b"")
                self.assertGreater(took, 0.8)
                self.assertLess(took, 3.5)
            finally:
                s.close()


# --------------------------------------------------------------------------
# README "Command line"

class TestCommandLine(Base):

    def setUp(self):
        self.h = Hookd(NF_CONFIG, {
            "build:start": env_hook("build:start"),
            "build:success": env_hook("build:success"),
            "fail": sh("echo failing-output\nexit 3"),
            "_default": marker_hook("_default"),
            "deploy/10-a": marker_hook("a"),
        }, start=False)
        self.addCleanup(self.h.cleanup)
        self.payload = self.h.write_file("payload.json", sample_body())

    def cli(self, *args, config=True, input=None):
        try:
            return harness.run_cli(args, config=self.h.config_path if config else None,
                                   input=input, cwd=self.h.tmp)
        except subprocess.TimeoutExpired as e:
            self.fail("hookd %s did not exit within %ds; stdout %r, stderr %r"
                      % (" ".join(args), e.timeout, e.stdout, e.stderr))

    def assertOneLine(self, stderr, needle):
        text = stderr.decode("utf-8", "replace").strip()
        self.assertEqual(len(text.splitlines()), 1, "not one line: %r" % text)
        self.assertIn(needle, text)

    def test_check_valid(self):
        p = self.cli("check")
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        for s in ("northflank", "/webhook", "build:start", "build:success", "_default", "deploy"):
            self.assertIn(s, out)

    def test_check_invalid(self):
        cases = [
            ("[server]\nlisten = 127.0.0.1:0\ntimout = 1s\n[endpoint a]\n"
             "path = /a\nscheme = none\n", "hookd.ini:3"),
            ("[server]\nlisten = 127.0.0.1:0\n[endpoint a]\npath = /a\n"
             "scheme = northflank\n", "hookd.ini"),
            ("[server]\nlisten = 127.0.0.1:0\n", "hookd.ini"),
            ("[server]\ntimeout = 5 minutes\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:2"),
            ("[server]\ntimeout = 5s\ntimeout = 6s\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:3"),
            ("[endpoint a]\npath = /a\nscheme = rot13\nsecret = x\n", "hookd.ini:3"),
            ("[server]\nenv_prefix = hook_\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:2"),
            ("[serverr]\n[endpoint a]\npath = /a\nscheme = none\n", "hookd.ini:1"),
            ("[server]\npass_env = PATH %s\n[endpoint a]\npath = /a\nsecret_env = %s\n"
             % (CANARY_NAME, CANARY_NAME),
             "hookd.ini:2: pass_env names %s, which holds the secret of endpoint 'a'"
             % CANARY_NAME),
            ("[server]\nenv_prefix = %s_\n[endpoint a]\npath = /a\nscheme = none\n" % ("P" * 64),
             "longer than 64 bytes"),
            # a hook never gets a credential, even one pass_headers names
            ("[endpoint a]\npath = /a\nscheme = github\nsecret = x\n"
             "pass_headers = X-GitHub-Event X-Hub-Signature-256\n",
             "hookd.ini:5: endpoint 'a': pass_headers names X-Hub-Signature-256, which carries"),
            ("[endpoint a]\npath = /a\nscheme = hmac\nsecret = x\nsignature_header = X-Sig\n"
             "pass_headers = x-sig\n", "pass_headers names x-sig, which carries a credential"),
            ("[endpoint a]\npath = /a\nscheme = none\npass_headers = Authorization\n",
             "pass_headers names Authorization"),
            ("[endpoint a]\npath = /a\nscheme = none\npass_headers = X-Ok Bad:Name\n",
             "hookd.ini:4: bad value 'X-Ok Bad:Name' for pass_headers in [endpoint a]: "
             "'Bad:Name' is not a header name"),
            # sizes and booleans, like durations
            ("[server]\nmax_body = 1 megabyte\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:2: bad value '1 megabyte' for max_body"),
            ("[server]\ninclude_output = maybe\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:2: bad value 'maybe' for include_output"),
            # what serve could not use, check refuses too
            ("[server]\nlisten = 256.1.1.1:9000\n[endpoint a]\npath = /a\nscheme = none\n",
             "hookd.ini:2: bad value '256.1.1.1:9000' for listen"),
            ("[server]\nstate_dir = hookd.ini\n[endpoint a]\npath = /a\nscheme = none\n",
             "is not a directory"),
            ("[endpoint a]\npath = /a\nscheme = none\n[endpoint b]\npath = /a\nscheme = none\n",
             "hookd.ini"),
        ]
        for text, needle in cases:
            with self.subTest(config=text):
                self.h.write_config(text)
                p = self.cli("check")
                self.assertEqual(p.returncode, 2, p)
                self.assertOneLine(p.stderr, needle)

    # check fails on what will fail (README "Command line": check)

    def check_out(self, *args):
        p = self.cli("check", *args)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_check_hook_that_cannot_run_exits_2(self):
        cases = [
            ("not executable", "#!/bin/sh\nexit 0\n", 0o644, "error: not executable: nx"),
            ("CRLF #! line", b"#!/bin/sh\r\nexit 0\r\n", 0o755, "carriage return"),
            ("interpreter missing", "#!/nonexistent/bin/sh\nexit 0\n", 0o755,
             "interpreter /nonexistent/bin/sh: No such file or directory"),
            ("interpreter not executable", "#!{tmp}/plain.txt\nexit 0\n", 0o755,
             "plain.txt: Permission denied"),
            ("env NAME not on the hooks' PATH", "#!/usr/bin/env hookd-no-such-tool\n", 0o755,
             "interpreter 'hookd-no-such-tool' (through env) is not on the PATH hooks get"),
            ("env -S NAME not on the hooks' PATH",
             "#!/usr/bin/env -S hookd-no-such-tool -x\n", 0o755, "'hookd-no-such-tool'"),
            # the kernel hands env "sh -e" as one word: no such program
            ("env NAME ARG without -S", "#!/usr/bin/env sh -e\nexit 0\n", 0o755, "'sh -e'"),
            ("interpreter's own interpreter missing", "#!{tmp}/wrapper\nexit 0\n", 0o755,
             "interpreter {tmp}/wrapper: interpreter /nonexistent/sh: No such file"),
        ]
        elf = elf_with_missing_loader()
        if elf is not None:
            cases.append(("ELF loader missing", elf, 0o755,
                          "its ELF interpreter %s: No such file or directory" % MISSING_LOADER))
        self.h.write_file("plain.txt", "not a program\n")
        self.h.write_file("wrapper", "#!/nonexistent/sh\n", 0o755)
        for what, text, mode, needle in cases:
            with self.subTest(what):
                self.h.write_hook("nx", text, mode)
                rc, out, err = self.check_out()
                self.assertEqual(rc, 2, (out, err))
                self.assertIn(self.h.subst(needle), out)
                self.assertRegex(out, r"(?m)^  route nx: ")
                self.assertIn("hookd: check: 1 error", err)
                # in a directory route too
                self.h.remove_hook("nx")
                self.h.write_hook("dir/10-a", text, mode if mode & 0o100 else 0o755)
                rc, out, err = self.check_out()
                if mode & 0o100:
                    self.assertEqual(rc, 2, (out, err))
                    self.assertIn("error: dir/10-a: ", out)
                self.h.remove_hook("dir/10-a")
                os.rmdir(os.path.join(self.h.hooks, "dir"))
        self.assertEqual(self.h.ran(), [], "check runs no hook")

    def test_check_counts_a_shared_hooks_dir_once(self):
        """Two endpoints with one hooks dir: a hook that cannot run is one
        error (and a skipped file one warning), listed under the first
        endpoint; the second says whose routes it shares."""
        self.h.write_config(NF_CONFIG + "\n[endpoint second]\npath = /second\n"
                            "scheme = northflank\nsecret = %s\n" % NF_TOKEN)
        self.h.write_hook("nx", "#!/bin/sh\nexit 0\n", 0o644)
        self.h.write_hook("dir/10-a", "#!/bin/sh\nexit 0\n")
        self.h.write_hook("dir/20-b", "#!/bin/sh\nexit 0\n", 0o644)
        rc, out, err = self.check_out()
        self.assertEqual(rc, 2, (out, err))
        self.assertEqual(out.count("error: not executable: nx"), 1, out)
        self.assertEqual(out.count("skipped, not executable: dir/20-b"), 1, out)
        self.assertIn("hookd: check: 1 error, 1 warning", err)
        self.assertRegex(out, r"endpoint second: [^\n]*\n(  [^\n]*\n)*"
                         r"  routes: as endpoint northflank \(the same hooks_dir\)\n")

    def test_check_hooks_that_run_pass(self):
        shutil.rmtree(self.h.hooks)
        os.makedirs(self.h.hooks)
        self.h.write_hook("a", "#!/bin/sh\nexit 0\n")
        self.h.write_hook("b", "#! /bin/sh -e\nexit 0\n")
        self.h.write_hook("c", "#!/usr/bin/env sh\nexit 0\n")
        self.h.write_hook("d", "#!/usr/bin/env -S PYTHONUNBUFFERED=1 sh -e\nexit 0\n")
        with open("/bin/true", "rb") as f:
            self.h.write_hook("e", f.read())
        rc, out, err = self.check_out("--strict")
        self.assertEqual((rc, err), (0, ""), out)
        for name in "abcde":
            self.assertIn("route %s: %s\n" % (name, name), out)
        for rel in ("a", "c", "e"):
            p = self.cli("run", rel, self.payload)
            self.assertEqual(p.returncode, 0, p)

    def test_check_env_name_on_the_hooks_path(self):
        """NAME is looked for on the PATH hooks get (pass_env's PATH here),
        not on some other one."""
        shutil.rmtree(self.h.hooks)
        os.makedirs(self.h.hooks)
        self.h.write_file("bin/hookd-test-tool", "#!/bin/sh\nexit 0\n", 0o755)
        self.h.write_hook("t", "#!/usr/bin/env hookd-test-tool\n")
        env = {"PATH": self.h.path("bin") + ":/usr/bin:/bin"}
        p = harness.run_cli(["check"], config=self.h.config_path, env=env)
        self.assertEqual(p.returncode, 0, p)
        p = harness.run_cli(["check"], config=self.h.config_path)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"'hookd-test-tool' (through env) is not on the PATH hooks get", p.stdout)

    def test_check_missing_hooks_dir_exits_2(self):
        shutil.rmtree(self.h.hooks)
        rc, out, err = self.check_out()
        self.assertEqual(rc, 2, (out, err))
        self.assertIn("error: hooks dir %s: No such file or directory" % self.h.hooks, out)
        self.assertIn("hookd: check: 1 error", err)

    def test_check_quoted_secret_is_a_config_error(self):
        for value in ('"my secret"', "'my secret'", 'one "two"', "tok'"):
            with self.subTest(secret=value):
                self.h.write_config("[endpoint a]\npath = /a\nscheme = northflank\n"
                                    "secret = %s\n" % value)
                p = self.cli("check")
                self.assertEqual(p.returncode, 2, p)
                self.assertOneLine(p.stderr, "hookd.ini:4: endpoint 'a': a secret starts or "
                                   "ends with a quote; secrets are whitespace-separated and "
                                   "unquoted")
                # After the config's path, which is a random temp name.
                message = p.stderr.split(b"hookd.ini:", 1)[-1]
                self.assertNotIn(b"my", message, "the message quotes no secret")
        self.h.write_config("[endpoint a]\npath = /a\nscheme = northflank\n"
                            "secret = it\"s\n")
        self.assertEqual(self.cli("check").returncode, 0, "a quote inside a secret is its own")

    def secret_file_config(self, mode, group=None):
        path = self.h.write_file("nf.secret", NF_TOKEN + "\n", mode)
        if group is not None:
            os.chown(path, -1, group)
        self.h.write_config(NF_CONFIG.replace("secret = %s" % NF_TOKEN,
                                              "secret_file = nf.secret"))
        return path

    def test_check_secret_file_readable_by_others_warns(self):
        path = self.secret_file_config(0o600)
        rc, out, err = self.check_out("--strict")
        self.assertEqual((rc, err), (0, ""), out)
        self.secret_file_config(0o604)
        rc, out, err = self.check_out()
        self.assertEqual((rc, err), (0, ""), "a warning alone passes")
        self.assertIn("warning: secret_file %s is readable by every user (mode 0604)" % path,
                      out)
        rc, out, err = self.check_out("--strict")
        self.assertEqual(rc, 2, out)
        self.assertIn("hookd: check: 0 errors, 1 warning (--strict: warnings fail)", err)
        self.assertNotIn(NF_TOKEN, out + err)

    def test_check_secret_file_group_readable(self):
        """Readable by a group shared by several users warns; by one user's own
        group (the package's root:hookd 0640) does not."""
        import grp
        import pwd
        own = shared = None
        for g in grp.getgrall():
            try:
                private = (not g.gr_mem and pwd.getpwnam(g.gr_name).pw_gid == g.gr_gid)
            except KeyError:
                private = False
            if os.getuid() != 0 and g.gr_gid not in os.getgroups():
                continue
            if private and own is None:
                own = g
            if not private and shared is None:
                shared = g
        if own is None or shared is None:
            self.skipTest("no group of each kind to give the file to")
        self.secret_file_config(0o640, own.gr_gid)
        rc, out, err = self.check_out("--strict")
        self.assertEqual((rc, err), (0, ""), out)
        self.secret_file_config(0o640, shared.gr_gid)
        rc, out, err = self.check_out()
        self.assertEqual(rc, 0, out)
        self.assertIn("readable by group %s (mode 0640)" % shared.gr_name, out)
        self.assertEqual(self.check_out("--strict")[0], 2)

    def test_check_strict_turns_warnings_into_errors(self):
        self.h.write_hook("dir/10-off", "#!/bin/sh\nexit 0\n", 0o644)
        rc, out, err = self.check_out()
        self.assertEqual((rc, err), (0, ""), out)
        self.assertIn("warning: skipped, not executable: dir/10-off", out)
        rc, out, err = self.check_out("--strict")
        self.assertEqual(rc, 2, out)
        self.assertIn("1 warning (--strict: warnings fail)", err)

    def test_serve_invalid_config_exits_2(self):
        self.h.write_config("[server]\nlisten = 127.0.0.1:0\ntimout = 1s\n"
                            "[endpoint a]\npath = /a\nscheme = none\n")
        p = self.cli("serve")
        self.assertEqual(p.returncode, 2, p)
        self.assertOneLine(p.stderr, "hookd.ini:3")

    def test_run_ok(self):
        p = self.cli("run", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        b = json.loads(p.stdout)
        self.assertEqual(b.get("status"), "ok")
        self.assertEqual(b.get("event"), "build:start")
        self.assertEqual(b["hooks"][0]["exit"], 0)
        env = self.hook_env(self.h)
        self.assertEqual(env.get("HOOK_EVENT"), "build:start")
        self.assertEqual(env.get("HOOK_DATA_BUILD_ID"), "social-hour-1312")
        self.assertEqual(env.get("HOOK_REMOTE_ADDR"), "")
        self.assertEqual(env.get("HOOK_ENDPOINT"), "northflank")
        self.assertTrue(env.get("HOOK_ID"), "HOOK_ID is generated")
        self.assertEqual(b.get("id"), env.get("HOOK_ID"))
        self.assertNotIn(CANARY_NAME, env)
        self.assertEqual(self.h.read("stdin.bin", binary=True), sample_body())

    def test_run_event_overrides_and_stdin(self):
        p = self.cli("run", "build:success", input=sample_body())
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout).get("event"), "build:success")
        env = self.hook_env(self.h)
        self.assertEqual(env.get("HOOK_EVENT"), "build:success")
        self.assertEqual(self.h.ran(), ["build:success"])

    def test_run_failing_hook_exits_1(self):
        p = self.cli("run", "fail", self.payload)
        self.assertEqual(p.returncode, 1, p)
        b = json.loads(p.stdout)
        self.assertEqual(b.get("status"), "failed")
        self.assertEqual(b["hooks"][0]["exit"], 3)
        self.assertIn(b"failing-output", p.stderr, "hook output goes to stderr")
        self.assertNotIn(b"failing-output", p.stdout)

    def test_run_bad_event_or_payload_exits_2(self):
        for args, inp in ((("run", "../x", self.payload), None),
                          (("run", "a/b", self.payload), None),
                          (("run", "build:start"), b"not json"),
                          (("run", "build:start"), b"[1,2]")):
            with self.subTest(args=args, input=inp):
                p = self.cli(*args, input=inp)
                self.assertEqual(p.returncode, 2, p)
        self.assertEqual(self.h.ran(), [])

    def test_env_sorted_and_quoted(self):
        p = self.cli("env", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        lines = p.stdout.decode().splitlines()
        names = [ln.split("=", 1)[0] for ln in lines]
        self.assertEqual(names, sorted(names, key=lambda s: s.encode()), "not sorted")
        for ln in lines:
            self.assertRegex(ln, r"^[A-Za-z_][A-Za-z0-9_]*=")
        for want in ("HOOK_DATA_BUILD_ID=social-hour-1312", "HOOK_EVENT=build:start",
                     "HOOK_DATA_PROJECT_NAME=Personal Blog",
                     "HOOK_DATA_BUILD_PULL_REQUEST_ID="):
            self.assertIn(want, lines)
        self.assertNotIn(CANARY_VALUE, p.stdout.decode())
        self.assertEqual(self.h.ran(), [], "env runs no hook")

        weird = {"event": "x:y", "note": "line1\nline2", "tab": "a\tb",
                 "quote": "it's\nhere", "plain": "a b"}
        path = self.h.write_file("weird.json", json.dumps(weird))
        p = self.cli("env", "x:y", path)
        self.assertEqual(p.returncode, 0, p)
        lines = p.stdout.decode().splitlines()
        self.assertIn("HOOK_NOTE=$'line1\\nline2'", lines)
        self.assertIn("HOOK_PLAIN=a b", lines)
        bash = shutil.which("bash")
        if bash:
            for name in ("HOOK_NOTE", "HOOK_TAB", "HOOK_QUOTE"):
                line = [ln for ln in lines if ln.startswith(name + "=")]
                self.assertEqual(len(line), 1, name)
                self.assertIn("=$'", line[0], "%s not shell-quoted" % name)
                got = subprocess.run([bash, "-c", line[0] + "\nprintf %s \"$" + name + "\""],
                                     stdout=subprocess.PIPE, timeout=10).stdout.decode()
                self.assertEqual(got, weird[name[5:].lower()], name)

    def test_shipped_configs_check(self):
        """hookd.ini (the quick start's) and packaging/hookd.ini (the
        package's /etc/hookd/hookd.ini) pass `hookd check --strict` with
        the repository's hooks.d, each beside the token its installer makes
        (the package's absolute paths moved into a temp dir, and its
        hook_user, a user the package makes, left out)."""
        for name in ("hookd.ini", os.path.join("packaging", "hookd.ini")):
            with self.subTest(config=name):
                root = os.path.join(self.h.tmp, "shipped-" + name.replace(os.sep, "-"))
                for d in ("etc", "state", "work"):
                    os.makedirs(os.path.join(root, d))
                shutil.copytree(os.path.join(harness.SOURCE, "hooks.d"),
                                os.path.join(root, "hooks.d"))
                for token in ("northflank.token", os.path.join("etc", "northflank.token")):
                    fd = os.open(os.path.join(root, token), os.O_WRONLY | os.O_CREAT, 0o600)
                    os.write(fd, (NF_TOKEN + "\n").encode())
                    os.close(fd)
                with open(os.path.join(harness.SOURCE, name), encoding="utf-8") as f:
                    text = f.read()
                text = (text.replace("/etc/hookd/", root + "/etc/")
                        .replace("/var/lib/hookd-hooks", root + "/work")
                        .replace("/var/lib/hookd", root + "/state"))
                text = re.sub(r"(?m)^hook_user = .*$", "hook_user =", text)
                config = os.path.join(root, "hookd.ini")
                with open(config, "w", encoding="utf-8") as f:
                    f.write(text)
                p = harness.run_cli(["check", "--strict"], config=config, cwd=root)
                self.assertEqual(p.returncode, 0, p)
                self.assertIn("endpoint northflank:", p.stdout.decode())

    def test_version_and_help(self):
        p = self.cli("--version", config=False)
        self.assertEqual(p.returncode, 0, p)
        with open(os.path.join(harness.SOURCE, "meson.build")) as f:
            version = re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)
        self.assertIn(version, p.stdout.decode())
        p = self.cli("--help", config=False)
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        for s in ("serve", "check", "run", "env", "end of options"):
            self.assertIn(s, out)
        # What the code does: show and replay find an id at any endpoint
        # (only run and env default to the first), show prints text unless
        # told --json or --body.
        flat = " ".join(out.split())
        self.assertIn("run, env: the endpoint (default: the first in the file)", flat)
        self.assertIn("show, replay: where ID was delivered (default: any endpoint;", flat)
        self.assertIn("in full, as text (--json: as JSON, --body: only its body's bytes)", flat)
        self.assertNotIn("for run, env, show, replay (default: the first endpoint)", flat)

    def test_serve_is_the_default_command(self):
        with Hookd(NF_CONFIG, {"build:start": marker_hook("build:start")}, args=[],
                   secrets=[NF_TOKEN]) as h:
            self.assertAnswer(h.northflank(), 200)
            self.assertEqual(h.ran(), ["build:start"])

    def test_usage_errors_exit_2(self):
        for args in (("frobnicate",), ("--bogus-option",), ("run",), ("env",), ("journal",),
                     ("journal", "copy")):
            with self.subTest(args=args):
                p = self.cli(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertTrue(p.stderr.strip(), "no message on stderr")
        p = harness.run_cli(["check"], config=os.path.join(self.h.tmp, "missing.ini"))
        self.assertEqual(p.returncode, 2, p)
        self.assertOneLine(p.stderr, "missing.ini")

# --------------------------------------------------------------------------
# The event loop's lifetime: a cascade of deliveries that finish at once,
# answers still being written at SIGTERM

def queued(h):
    """hookd_deliveries_queued on the admin listener's /metrics."""
    return harness.metric(harness.parse_metrics(h.scrape()), "hookd_deliveries_queued")


# A hook that holds its slot until {tmp}/go exists (bounded: 20 s).
HOLD = sh("echo x > '{tmp}/holding'\n"
          "i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done")


class TestLifetime(Base):

    def test_many_queued_deliveries_failing_to_spawn(self):
        """A slot freed while many deliveries wait for it: each next one
        fails to spawn at once (bad interpreter) and so frees its slot at
        once. That cascade must not nest one call frame a delivery (a
        stack overflow with a long queue); every delivery is answered.
        hookd runs with a small stack so a queue of 150 stands for a
        max_queued of thousands at the default 8 MiB."""
        n = 150
        config = cfg("max_running = 1\nmax_queued = 1000\n",
                     "\n[admin]\nlisten = 127.0.0.1:0\n[event hold]\ntimeout = 30s\n")
        hooks = {"hold": HOLD, "build:start": "#!/nonexistent/interpreter\n"}
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        small = 256 * 1024
        resource.setrlimit(resource.RLIMIT_STACK, (small if hard == resource.RLIM_INFINITY
                                                   or hard >= small else hard, hard))
        try:
            h = self.daemon(config, hooks, wait_admin=True)
        finally:
            resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))
        with h:
            held = json.loads(sample_body())
            held["event"] = "hold"
            first = socket.create_connection(("127.0.0.1", h.port), timeout=15)
            first.sendall(nf_request(new_id(), json.dumps(held).encode()))
            self.assertTrue(h.wait_file("holding", timeout=10), "the holding hook did not start")
            socks = []
            try:
                for _ in range(n):
                    s = socket.create_connection(("127.0.0.1", h.port), timeout=15)
                    s.sendall(nf_request(new_id()))
                    socks.append(s)
                wait_for(lambda: queued(h) == n, what="%d deliveries queued" % n)
                open(h.path("go"), "w").close()
                self.assertIn(b" 200 ", read_all(first).split(b"\r\n", 1)[0])
                for s in socks:
                    r = harness.parse_raw_response(read_all(s))
                    self.assertIsNotNone(r, "no answer: hookd died?")
                    body = self.assertAnswer(r, 500)
                    self.assertIn("exec failed", body["hooks"][0]["error"])
            finally:
                first.close()
                for s in socks:
                    s.close()

    def test_sigterm_answer_written_whole_before_exit(self):
        """SIGTERM while a delivery runs: it finishes, and its sender gets
        the whole answer even when that answer is larger than the socket
        buffers and the sender reads it slowly; hookd exits after that."""
        n = 250
        # Each hook's output tail is 4 KiB of control bytes: 24 KiB of JSON
        # escapes each in the answer, 6 MiB in all: more than the kernel's
        # send buffer takes (tcp_wmem's most, 4 MiB by default) and the
        # sender's receive buffer, so that hookd still holds some of it as
        # it is about to exit.
        noisy = sh("head -c 4096 /dev/zero | tr '\\0' '\\1'")
        hooks = {"build:start/%02d" % i: noisy for i in range(n)}
        hooks["build:start/00"] = sh("echo x > '{tmp}/started'\n"
                                     "i=0; while [ ! -e '{tmp}/go' ] && [ $i -lt 200 ]; "
                                     "do sleep 0.05; i=$((i+1)); done")
        with self.daemon(cfg("include_output = yes\n", "[event build:start]\ntimeout = 20s\n"),
                         hooks) as h:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Small, but not so small that the TCP window makes 6 MiB take
            # longer than read_all's 20 s on a loaded machine (4 KiB did).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.settimeout(15)
            try:
                s.connect(("127.0.0.1", h.port))
                s.sendall(nf_request(new_id()))
                self.assertTrue(h.wait_file("started", timeout=10), "the first hook did not start")
                h.send_signal(signal.SIGTERM)
                self.assertTrue(h.wait_log("SIGTERM received", timeout=5))
                open(h.path("go"), "w").close()
                self.assertTrue(h.wait_log("msg=delivery", timeout=20), "no delivery line")
                time.sleep(0.5)  # the sender is slow to read
                r = harness.parse_raw_response(read_all(s, timeout=20))
            finally:
                s.close()
            self.assertIsNotNone(r, "no answer")
            length = int(r.headers.get("content-length", "-1"))
            self.assertEqual(len(r.raw), length, "the answer was cut short")
            body = self.assertAnswer(r, 200)
            self.assertEqual(len(body["hooks"]), n)
            self.assertEqual(h.wait_exit(), 0)


# --------------------------------------------------------------------------
# README "HTTP answers": the answer table's order, where two rows apply at once

MARK = {"_default": sh("echo _default >> '{tmp}/ran'"),
        "build:start": sh("echo build:start >> '{tmp}/ran'")}


class TestAnswerOrder(Base):

    def test_404_before_405(self):
        with self.daemon(hooks=MARK) as h:
            for method in ("GET", "PUT", "DELETE"):
                with self.subTest(method=method):
                    r = h.request(method, "/nope", b"{}" if method == "PUT" else None)
                    self.assertAnswer(r, 404)
                    self.assertIsNone(r.header("Allow"))
            self.assertNothingRan(h)

    def test_head_is_405_without_a_body(self):
        with self.daemon(hooks=MARK) as h:
            got, err = h.raw(b"HEAD /webhook HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
            head, _, rest = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 405 "), got)
            self.assertIn(b"\r\nAllow: POST", head)
            self.assertIn(b"application/json", head)
            self.assertEqual(rest, b"", "a HEAD answer carries no body")
            self.assertNothingRan(h)

    def test_405_before_403_before_401(self):
        config = NF_CONFIG + "allow_from = 10.0.0.0/8\n"
        with self.daemon(config, MARK) as h:
            r = h.request("GET", "/webhook")
            self.assertAnswer(r, 405)
            self.assertEqual(r.header("Allow"), "POST")
            r = h.northflank(token="wrong")
            self.assertAnswer(r, 403)
            r = h.northflank()
            self.assertAnswer(r, 403)
            self.assertNothingRan(h)

    def test_401_before_415_and_400(self):
        """Credentials are checked before the media type and the body."""
        with self.daemon(hooks=MARK) as h:
            cases = [("text/plain", b"{}"), ("application/json", b"not json"),
                     ("application/json", b"[1]"), ("text/plain", b"not json"),
                     ("application/x-www-form-urlencoded", b"payload=%7B%7D")]
            for ct, body in cases:
                with self.subTest(ct=ct, body=body):
                    r = h.northflank(body=body, token="wrong", content_type=ct,
                                     event_type=None)
                    b = self.assertAnswer(r, 401)
                    self.assertEqual(b.get("status"), "rejected")
                    r = h.northflank(body=body, token=None, content_type=ct,
                                     event_type=None)
                    self.assertAnswer(r, 401)
            self.assertNothingRan(h)

    def test_415_before_400(self):
        with self.daemon(hooks=MARK) as h:
            for ct in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                       "application/jsonx", "text/json"):
                with self.subTest(ct=ct):
                    r = h.northflank(body=b"not json", content_type=ct, event_type=None)
                    self.assertAnswer(r, 415)
            self.assertNothingRan(h)

    def test_413_before_401(self):
        with self.daemon(cfg("max_body = 1KiB\n"), MARK) as h:
            r = h.northflank(body=b"{" + b" " * 2048 + b"}", token="wrong", event_type=None)
            self.assertAnswer(r, 413)
            self.assertNothingRan(h)

    def test_400_before_duplicate(self):
        """A resend of a delivery that succeeded, with a body that is not
        an event object: 400, not "duplicate"."""
        with self.daemon(hooks=MARK) as h:
            eid = new_id()
            self.assertAnswer(h.northflank(event_id=eid), 200)
            r = h.northflank(body=b"[]", event_id=eid, event_type=None)
            self.assertAnswer(r, 400)
            r = h.northflank(event_id=eid)
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            self.assertEqual(h.ran(), ["build:start"])

    def test_unhandled_answer_says_why(self):
        """README "HTTP answers": "error" holds a short reason when status is not ok; an
        async delivery with no route already logs "no hook for this event"."""
        with self.daemon(hooks={"other": MARK["build:start"]}) as h:
            b = self.assertAnswer(h.northflank(event="billing:paid"), 200)
            self.assertEqual(b.get("status"), "unhandled")
            self.assertEqual(b.get("error"), "no hook for this event")
            line = h.wait_log("msg=delivery", "status=unhandled")
            self.assertIn('error="no hook for this event"', line)

    def test_503_overload_is_not_an_attempt(self):
        """A delivery turned away with 503 (max_queued) is not recorded:
        its resend runs (it is neither a duplicate nor still pending)."""
        config = cfg("max_running = 1\nmax_queued = 0\n", "[event hold]\ntimeout = 30s\n")
        with self.daemon(config, {"hold": HOLD, "build:start": MARK["build:start"]}) as h:
            held = json.loads(sample_body())
            held["event"] = "hold"
            first = socket.create_connection(("127.0.0.1", h.port), timeout=15)
            try:
                first.sendall(nf_request(new_id(), json.dumps(held).encode()))
                self.assertTrue(h.wait_file("holding", timeout=10))
                eid = new_id()
                r = h.northflank(event_id=eid)
                self.assertEqual(self.assertAnswer(r, 503).get("status"), "overloaded")
                self.assertTrue(r.header("Retry-After"))
                open(h.path("go"), "w").close()
                read_all(first)
            finally:
                first.close()
            r = h.northflank(event_id=eid)
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["build:start"])


# --------------------------------------------------------------------------
# README "Command line"

TWO_ENDPOINTS = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 1s
kill_grace = 200ms

[endpoint first]
path = /first
scheme = none

[endpoint second]
path = /second
scheme = none
hooks_dir = {tmp}/second.d
"""

DUMP = sh("echo \"$HOOK_ENDPOINT $HOOK_HOOK\" >> '{tmp}/ran'")


class TestCommandLineForms(Base):

    def setUp(self):
        self.h = Hookd(TWO_ENDPOINTS, {"build:start": DUMP}, start=False)
        self.h.write_hook("build:start", DUMP, hooks_dir=self.h.path("second.d"))
        self.h.write_hook("slow", sh("sleep 5"), hooks_dir=self.h.path("second.d"))
        self.h.write_hook("three", sh("exit 3"))
        self.payload = self.h.write_file("p.json", json.dumps({"event": "x", "n": 1}))

    def tearDown(self):
        self.h.cleanup()

    def cli(self, *args, config=True, **kw):
        return harness.run_cli(list(args), config=self.h.config_path if config else None, **kw)

    def test_config_option_forms_and_env_default(self):
        for args, env in ((["-c", self.h.config_path, "check"], None),
                          (["--config", self.h.config_path, "check"], None),
                          (["--config=" + self.h.config_path, "check"], None),
                          (["check", "-c", self.h.config_path], None),
                          (["check"], {"HOOKD_CONFIG": self.h.config_path})):
            with self.subTest(args=args, env=env):
                p = harness.run_cli(args, env=env)
                self.assertEqual(p.returncode, 0, p)
                self.assertIn(b"/second", p.stdout)
        # -c wins over $HOOKD_CONFIG.
        p = harness.run_cli(["-c", self.h.config_path, "check"],
                            env={"HOOKD_CONFIG": self.h.path("missing.ini")})
        self.assertEqual(p.returncode, 0, p)
        p = harness.run_cli(["check"], env={"HOOKD_CONFIG": self.h.path("missing.ini")})
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"missing.ini", p.stderr)
        p = harness.run_cli(["check", "-c"])
        self.assertEqual(p.returncode, 2, p)

    def test_run_and_env_endpoint_option(self):
        p = self.cli("run", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["endpoint"], "first")
        p = self.cli("run", "--endpoint", "second", "build:start", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["endpoint"], "second")
        self.assertEqual(self.h.ran(), ["first", "build:start", "second", "build:start"])
        p = self.cli("env", "build:start", self.payload, "--endpoint", "second")
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"HOOK_ENDPOINT=second\n", p.stdout)
        self.assertIn(b"HOOK_REMOTE_ADDR=\n", p.stdout)
        self.assertIn(b"HOOK_N=1\n", p.stdout)
        self.assertIn(b"HOOK_EVENT=build:start\n", p.stdout, "EVENT overrides the payload's")
        self.assertNotIn(b"HOOK_INTEGRATION_ID", p.stdout, "no sender headers")
        for cmd in ("run", "env"):
            with self.subTest(cmd=cmd):
                p = self.cli(cmd, "--endpoint", "third", "build:start", self.payload)
                self.assertEqual(p.returncode, 2, p)
                self.assertTrue(p.stderr.strip())
        self.assertEqual(len(self.h.ran()), 4)

    def test_run_exit_follows_the_mapped_status(self):
        # No hook: 200 unhandled, exit 0.
        p = self.cli("run", "nothing:here", self.payload)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["status"], "unhandled")
        # Exit 3 with the default map: 500, exit 1.
        p = self.cli("run", "three", self.payload)
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(json.loads(p.stdout)["status"], "failed")
        # The same exit mapped to 2xx: exit 0.
        self.h.write_config(TWO_ENDPOINTS + "\n[status]\n3 = 202\n")
        p = self.cli("run", "three", self.payload)
        self.assertEqual(p.returncode, 0, p)
        # The time limit: 504, exit 1.
        p = self.cli("run", "--endpoint", "second", "slow", self.payload, timeout=20)
        self.assertEqual(p.returncode, 1, p)
        b = json.loads(p.stdout)
        self.assertEqual(b["status"], "timeout")
        self.assertIsNone(b["hooks"][0]["exit"])
        self.assertIn("timed out after 1s", b["hooks"][0]["error"])

    def test_run_payload_errors_exit_2(self):
        big = self.h.write_file("big.json", json.dumps({"event": "x", "pad": "x" * (1 << 20)}))
        for args in (("run", "build:start", big), ("run", "build:start", self.h.path("none.json")),
                     ("env", "build:start", self.h.path("none.json")),
                     ("run", "build:start", self.payload, "extra")):
            with self.subTest(args=args):
                p = self.cli(*args)
                self.assertEqual(p.returncode, 2, p)
                self.assertTrue(p.stderr.strip())
        self.assertEqual(self.h.ran(), [])

    def test_double_dash_ends_options(self):
        """After `--` a word that starts with '-' is an argument (the page's
        `hookd replay --endpoint EP -- ID` for an id such as -x)."""
        d = os.path.dirname(self.payload)
        os.rename(self.payload, os.path.join(d, "-p.json"))
        p = self.cli("env", "build:start", "-p.json", cwd=d)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"unknown option '-p.json'", p.stderr)
        p = self.cli("env", "--endpoint", "first", "--", "build:start", "-p.json", cwd=d)
        self.assertEqual(p.returncode, 0, p)
        self.assertIn(b"HOOK_EVENT=build:start", p.stdout)
        # after it, options are words too: one word too many for env
        p = self.cli("env", "--", "build:start", "-p.json", "--json", cwd=d)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"too many arguments", p.stderr)

    def test_command_arguments_counted(self):
        for args in (("check", "x"), ("serve", "x"), ("events", "x"), ("show",),
                     ("show", "a", "b"), ("replay",), ("replay", "a", "b")):
            with self.subTest(args=args):
                p = self.cli(*args, timeout=5)
                self.assertEqual(p.returncode, 2, p)
                self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p)


if __name__ == "__main__":
    harness.main()
