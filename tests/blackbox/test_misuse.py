"""Black-box tests of issue 16's attacks 6, 8 and 9, each run as an attacker
would and shown to hold (and that no hook ran where none should):

- disabled and package-manager files at the top of hooks.d are never routes,
  and `hookd check` lists them as skipped with the reason;
- a captured signed body resent under fresh delivery ids (replay_window),
  and Slack slash commands and interactions resent whole (trigger_id);
- config mistakes: an empty or short secret, scheme = none on an address
  other machines reach, Slack's legacy token as a variable.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_misuse.py [-k NAME]
"""

import hashlib
import hmac
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NF_CONFIG, NF_TOKEN, Hookd, marker_hook, new_id, parse_env, sh  # noqa: E402

SERVER = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 5s
kill_grace = 1s
"""

GH_SECRET = "gh-replay-secret-0123456789abcdef"
HMAC_SECRET = "hmac-replay-secret-0123456789abcdef"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5-slack"
SLACK_LEGACY_TOKEN = "gIkuvaNzQIHg97ATvDxqgjtO"

# Appends "$HOOK_EVENT|$HOOK_ID" to {tmp}/ran, dumps the env and stdin.
RECORD = sh("echo \"$HOOK_EVENT|$HOOK_ID\" >> '{tmp}/ran'\n"
            "env > '{tmp}/env.txt'\n"
            "cat > '{tmp}/stdin.bin'")


def mac(secret, msg):
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def github_headers(body, event="push", did=None):
    return {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": did or new_id("gh"),
            "X-Hub-Signature-256": "sha256=" + mac(GH_SECRET, body)}


def slack_headers(body, ctype="application/x-www-form-urlencoded"):
    ts = str(int(time.time()))
    return {"Content-Type": ctype, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + mac(SLACK_SECRET, ("v0:%s:" % ts).encode() + body)}


class Base(harness.HookdTestCase):
    pass


# --------------------------------------------------------------------------
# 6: the skip list at the top of hooks.d

class TestSkippedNames(Base):

    SKIPPED = {
        "deploy.disabled": "disabled",
        "build:success.dpkg-dist": "a package manager's leftover",
        "build:success.dpkg-old": "a package manager's leftover",
        "release.rpmsave": "a package manager's leftover",
        "release.swp": "an editor's swap file",
        "release~": "an editor's backup",
    }

    def test_an_executable_disabled_file_never_runs(self):
        hooks = {name: marker_hook(name) for name in self.SKIPPED}
        with Hookd(NF_CONFIG, hooks, secrets=[NF_TOKEN]) as h:
            for name in self.SKIPPED:
                path = os.path.join(h.hooks, name)
                self.assertTrue(os.access(path, os.X_OK), "%s is executable" % name)
            for event in ("deploy.disabled", "build:success.dpkg-dist", "build:success.dpkg-old",
                          "release.rpmsave", "release.swp", "deploy.disabled:x"):
                r = h.northflank(event=event)
                b = self.assertAnswer(r, 200, event)
                self.assertEqual(b.get("status"), "unhandled", "%s: %r" % (event, b))
            self.assertNothingRan(h, "a disabled file ran")

    def test_the_event_falls_to_the_wider_route(self):
        hooks = {"deploy.disabled": marker_hook("deploy.disabled"),
                 "deploy": marker_hook("deploy")}
        with Hookd(NF_CONFIG, hooks, secrets=[NF_TOKEN]) as h:
            b = self.assertAnswer(h.northflank(event="deploy.disabled"), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["deploy"], "deploy ran, deploy.disabled did not")
            self.assertEqual([e.get("hook") for e in b.get("hooks", [])], ["deploy"])

    def test_check_lists_them_as_skipped_with_the_reason(self):
        hooks = {name: marker_hook(name) for name in self.SKIPPED}
        hooks["deploy"] = marker_hook("deploy")
        with Hookd(NF_CONFIG, hooks, secrets=[NF_TOKEN], start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p)
            for name, why in self.SKIPPED.items():
                self.assertIn("  skipped %s: %s, never a route\n" % (name, why), p.stdout)
            self.assertIn("  route deploy: deploy\n", p.stdout)
            self.assertNotIn("route deploy.disabled", p.stdout)
            self.assertNothingRan(h)


# --------------------------------------------------------------------------
# 8: replays of unsigned routing

def github_config(extra="replay_window = 10m\n", server=""):
    return (SERVER + server + "\n[endpoint github]\npath = /gh\nscheme = github\nsecret = %s\n%s"
            % (GH_SECRET, extra))


class TestReplayWindow(Base):

    def test_captured_body_under_fresh_ids_is_a_duplicate(self):
        body = json.dumps({"ref": "refs/heads/main", "after": "c0ffee"}).encode()
        first = github_headers(body, did="d-1")
        with Hookd(github_config(), {"push": RECORD, "_default": RECORD},
                   secrets=[GH_SECRET, NF_TOKEN]) as h:
            b = self.assertAnswer(h.post("/gh", body, first), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["push|d-1"])
            # The attacker's replays: fresh ids, another event, the same
            # signed bytes. None runs anything.
            for did, event in (("d-2", "push"), ("d-3", "release"), ("d-4", "anything")):
                r = h.post("/gh", body, dict(first, **{"X-GitHub-Delivery": did,
                                                       "X-GitHub-Event": event}))
                b = self.assertAnswer(r, 200, did)
                self.assertEqual(b.get("status"), "duplicate", b)
                self.assertIn("replay_window", b.get("error", ""))
            # The genuine resend under its own id: the usual id rule.
            b = self.assertAnswer(h.post("/gh", body, first), 200)
            self.assertEqual(b.get("status"), "duplicate", b)
            self.assertEqual(h.ran(), ["push|d-1"], "nothing ran again")
            # A future delivery whose id a replay used is not spoiled.
            other = json.dumps({"ref": "refs/heads/main", "after": "beef"}).encode()
            b = self.assertAnswer(h.post("/gh", other, github_headers(other, did="d-2")), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["push|d-1", "push|d-2"])
            self.assertTrue(h.wait_log("status=duplicate"))

    def test_a_failed_delivery_resent_under_its_id_runs_again(self):
        body = b'{"action":"opened","number":1}'
        hdrs = github_headers(body, event="issues", did="d-1")
        fail_once = sh("echo \"$HOOK_ID\" >> '{tmp}/ran'\n"
                       "[ -e '{tmp}/failed' ] && exit 0\n: > '{tmp}/failed'\nexit 1")
        with Hookd(github_config(), {"issues": fail_once}, secrets=[GH_SECRET, NF_TOKEN]) as h:
            b = self.assertAnswer(h.post("/gh", body, hdrs), 500)
            self.assertEqual(b.get("status"), "failed", b)
            r = h.post("/gh", body, dict(hdrs, **{"X-GitHub-Delivery": "d-9"}))
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            b = self.assertAnswer(h.post("/gh", body, hdrs), 200, "the sender's retry")
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(h.ran(), ["d-1", "d-1"])

    def test_off_by_default(self):
        body = b'{"zen":"Keep it logically awesome."}'
        with Hookd(github_config(extra=""), {"ping": RECORD},
                   secrets=[GH_SECRET, NF_TOKEN]) as h:
            for did in ("p-1", "p-2"):
                r = h.post("/gh", body, github_headers(body, event="ping", did=did))
                self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["ping|p-1", "ping|p-2"])

    def test_the_window_ends(self):
        # A 3 s window: p-2, sent once p-1's hook has run (slow on a loaded
        # machine), comes within it; p-3 comes 3.2 s after both answers.
        body = b'{"zen":"Design for failure."}'
        with Hookd(github_config(extra="replay_window = 3s\n"), {"ping": RECORD},
                   secrets=[GH_SECRET, NF_TOKEN]) as h:
            r = h.post("/gh", body, github_headers(body, event="ping", did="p-1"))
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            r = h.post("/gh", body, github_headers(body, event="ping", did="p-2"))
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            time.sleep(3.2)
            r = h.post("/gh", body, github_headers(body, event="ping", did="p-3"))
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["ping|p-1", "ping|p-3"])

    def test_async_replays_are_not_journaled(self):
        body = b'{"ref":"refs/tags/v1"}'
        conf = github_config(extra="replay_window = 10m\nmode = async\n",
                             server="state_dir = {state}\n")
        with Hookd(conf, {"push": RECORD}, secrets=[GH_SECRET, NF_TOKEN]) as h:
            r = h.post("/gh", body, github_headers(body, did="a-1"))
            self.assertEqual(self.assertAnswer(r, 202).get("status"), "accepted")
            for i in range(5):
                r = h.post("/gh", body, github_headers(body, did="a-r%d" % i))
                self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            h.wait_file("ran")
            time.sleep(0.3)
            self.assertEqual(h.ran(), ["push|a-1"])
            p = h.cli("events")
            self.assertEqual(p.returncode, 0, p)
            self.assertIn("a-1", p.stdout)
            self.assertNotIn("a-r", p.stdout, "a refused replay left a journal row")

    def test_hmac_without_an_id(self):
        conf = SERVER + ("\n[endpoint ci]\npath = /ci\nscheme = hmac\nsecret = %s\n"
                         "replay_window = 10m\n" % HMAC_SECRET)
        body = b'{"event":"build","n":1}'
        hdrs = {"Content-Type": "application/json", "X-Signature": mac(HMAC_SECRET, body)}
        with Hookd(conf, {"build": RECORD}, secrets=[HMAC_SECRET, NF_TOKEN]) as h:
            self.assertEqual(self.assertAnswer(h.post("/ci", body, hdrs), 200).get("status"), "ok")
            for _ in range(3):
                r = h.post("/ci", body, hdrs)
                self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            self.assertEqual(len(h.ran()), 1)


    def test_hmac_without_an_id_failed_resend_runs(self):
        """A sender with no delivery id told to come back (503, exit 75)
        sends the same body again: that resend runs, it is no replay."""
        conf = SERVER + ("\n[endpoint ci]\npath = /ci\nscheme = hmac\nsecret = %s\n"
                         "replay_window = 10m\n" % HMAC_SECRET)
        body = b'{"event":"build","n":2}'
        hdrs = {"Content-Type": "application/json", "X-Signature": mac(HMAC_SECRET, body)}
        tempfail_once = sh("echo run >> '{tmp}/ran'\n"
                           "[ -e '{tmp}/failed' ] && exit 0\n: > '{tmp}/failed'\nexit 75")
        with Hookd(conf, {"build": tempfail_once}, secrets=[HMAC_SECRET, NF_TOKEN]) as h:
            r = h.post("/ci", body, hdrs)
            self.assertAnswer(r, 503)
            self.assertEqual(self.assertAnswer(h.post("/ci", body, hdrs), 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["run", "run"])
            # Once it succeeded, the same body again is a replay.
            r = h.post("/ci", body, hdrs)
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            self.assertEqual(h.ran(), ["run", "run"])


class TestSlack(Base):

    CONF = SERVER + "\n[endpoint slack]\npath = /slack\nscheme = slack\nsecret = %s\n" \
        % SLACK_SECRET

    def test_captured_slash_command_runs_once(self):
        body = urllib.parse.urlencode({
            "token": SLACK_LEGACY_TOKEN, "team_id": "T1", "command": "/deploy", "text": "prod",
            "user_id": "U1", "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }).encode()
        with Hookd(self.CONF, {"slash_command": RECORD},
                   secrets=[SLACK_SECRET, SLACK_LEGACY_TOKEN, NF_TOKEN]) as h:
            b = self.assertAnswer(h.post("/slack", body, slack_headers(body)), 200)
            self.assertEqual(b.get("status"), "ok", b)
            self.assertEqual(b.get("id"), "13345224609.738474920.8088930838d88f008e0")
            # Resent whole, freshly timestamped as a replay within the
            # tolerance would be: a duplicate.
            r = h.post("/slack", body, slack_headers(body))
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "duplicate")
            self.assertEqual(h.ran(), ["slash_command|13345224609.738474920.8088930838d88f008e0"])

    def test_captured_interaction_runs_once(self):
        obj = {"type": "block_actions", "token": SLACK_LEGACY_TOKEN, "user": {"id": "U1"},
               "trigger_id": "t.777.abc", "actions": [{"action_id": "approve"}]}
        body = urllib.parse.urlencode({"payload": json.dumps(obj)}).encode()
        with Hookd(self.CONF, {"block_actions": RECORD},
                   secrets=[SLACK_SECRET, SLACK_LEGACY_TOKEN, NF_TOKEN]) as h:
            for want in ("ok", "duplicate", "duplicate"):
                r = h.post("/slack", body, slack_headers(body))
                self.assertEqual(self.assertAnswer(r, 200).get("status"), want)
            self.assertEqual(h.ran(), ["block_actions|t.777.abc"])

    def test_legacy_token_is_no_variable(self):
        """The verification token is in slash commands, interactions and
        Events API bodies alike; a hook never gets it as a variable, while
        stdin (the raw body) still holds it."""
        did = "Ev" + new_id("x")[4:]
        cases = [
            ("slash_command", urllib.parse.urlencode({
                "token": SLACK_LEGACY_TOKEN, "command": "/deploy", "trigger_id": "t.1"}).encode(),
             "application/x-www-form-urlencoded"),
            ("view_submission", urllib.parse.urlencode({"payload": json.dumps({
                "type": "view_submission", "token": SLACK_LEGACY_TOKEN,
                "trigger_id": "t.2"})}).encode(),
             "application/x-www-form-urlencoded"),
            ("event_callback:app_mention", json.dumps({
                "token": SLACK_LEGACY_TOKEN, "type": "event_callback", "event_id": did,
                "event": {"type": "app_mention", "text": "hi"}}).encode(), "application/json"),
        ]
        hooks = {"_default": RECORD}
        with Hookd(self.CONF, hooks, secrets=[SLACK_SECRET, NF_TOKEN]) as h:
            for event, body, ctype in cases:
                h.reset_ran()
                r = h.post("/slack", body, slack_headers(body, ctype))
                b = self.assertAnswer(r, 200, event)
                self.assertEqual((b.get("event"), b.get("status")), (event, "ok"), b)
                env = parse_env(h.read("env.txt"))
                self.assertNotIn("HOOK_TOKEN", env, event)
                self.assertNotIn(SLACK_LEGACY_TOKEN, h.read("env.txt"), event)
                self.assertIn(SLACK_LEGACY_TOKEN.encode(), h.read("stdin.bin", binary=True),
                              "stdin is the raw body")


# --------------------------------------------------------------------------
# 9: config mistakes

class TestConfig(Base):

    def test_empty_secret_is_an_error(self):
        for line in ('secret = ""', "secret = ''"):
            conf = SERVER + "\n[endpoint gh]\npath = /gh\nscheme = github\n%s\n" % line
            with Hookd(conf, {"_default": marker_hook("x")}, start=False) as h:
                p = h.cli("check")
                self.assertEqual(p.returncode, 2, p)
                self.assertIn("hookd.ini:10: endpoint 'gh': secret is empty", p.stderr)
                p = h.cli("serve")
                self.assertEqual(p.returncode, 2, "serve refuses it too: %r" % p)
                self.assertIn("secret is empty", p.stderr)
                self.assertNothingRan(h)

    def test_short_secret_is_a_warning(self):
        conf = SERVER + "\n[endpoint gh]\npath = /gh\nscheme = github\nsecret = tiny\n"
        with Hookd(conf, {"_default": marker_hook("x")}, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p)
            self.assertIn("warning: %s:10: endpoint 'gh': the secret is 4 bytes; use 16 or more"
                          % h.config_path, p.stdout)
            self.assertNotIn("tiny", p.stdout + p.stderr, "the secret is never shown")
            h.start()
            self.assertTrue(h.wait_log("the secret is 4 bytes"))
            self.assertNothingRan(h)

    def test_scheme_none_on_all_addresses_needs_allow_from(self):
        conf = ("[server]\nlisten = 0.0.0.0:0\nhooks_dir = {hooks}\n"
                "[endpoint open]\npath = /open\nscheme = none\n")
        with Hookd(conf, {"_default": marker_hook("x")}, start=False) as h:
            for cmd in ("check", "serve"):
                p = h.cli(cmd)
                self.assertEqual(p.returncode, 2, p)
                self.assertIn("endpoint 'open': scheme none verifies nothing and listen "
                              "'0.0.0.0:0' is not loopback: set allow_from", p.stderr)
            self.assertNothingRan(h)
        with Hookd(conf + "allow_from = 127.0.0.1\n", {"_default": marker_hook("x")}) as h:
            r = h.post("/open", b'{"event":"a"}', {"Content-Type": "application/json"})
            self.assertEqual(self.assertAnswer(r, 200).get("status"), "ok")
            self.assertEqual(h.ran(), ["x"])


if __name__ == "__main__":
    harness.main()
