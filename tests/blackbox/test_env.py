#!/usr/bin/env python3
"""Black-box tests of the environment's budget (README "Flattening the
payload"): what a hook gets from a payload too big for it, in which order
variables are admitted, arrays' counts, env_max_vars, env_max_bytes and
env_array_max per server, endpoint and event, and how what is left out or
collides is told (a warn line, the answer's env_omitted, `hookd env` and
`hookd run` on stderr)."""
import hashlib
import hmac
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Hookd, env_hook, new_id  # noqa: E402

GH_SECRET = "gh-env-s3cret-5e1f"
PUSH_PATH = harness.data_file("github-push.json")

GH_CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 5s
kill_grace = 1s
%s
[endpoint github]
path = /gh
scheme = github
secret = %s
%s
"""


def gh_config(server="", endpoint="", extra=""):
    return GH_CONFIG % (server, GH_SECRET, endpoint) + extra


def push_body():
    with open(PUSH_PATH, "rb") as f:
        return f.read()


def gh_headers(body, event="push", did=None):
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": did or new_id("gh"), "X-Hub-Signature-256": sig}


def expected_push_budget(doc, max_vars=1024, array_max=32):
    """How many of the push's variables the default budget leaves out,
    computed apart from hookd: every scalar and every array's count are
    candidates; each array gives its first array_max elements; the leaves
    past them are left out, and of the rest all past max_vars."""
    candidates = 0
    cut = 0

    def walk(v):
        nonlocal candidates, cut
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            candidates += 1
            for x in v[:array_max]:
                walk(x)
            for x in v[array_max:]:
                cut += leaves(x)
        else:
            candidates += 1

    def leaves(v):
        if isinstance(v, dict):
            return sum(leaves(x) for x in v.values())
        if isinstance(v, list):
            return sum(leaves(x) for x in v)
        return 1

    walk(doc)
    return max(0, candidates - max_vars) + cut


class Base(harness.HookdTestCase):

    def daemon(self, config, hooks=None, **kw):
        return Hookd(config, hooks, secrets=[GH_SECRET], **kw)

    def send(self, h, body, event="push", did=None):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        status, _, raw = h.post_body(body, "/gh", gh_headers(body, event, did))
        return status, json.loads(raw)

    def warn_line(self, h, did):
        return h.wait_log("msg=\"environment incomplete\"", "id=" + did, timeout=5)


class TestGithubPush(Base):

    def test_push_keeps_what_scripts_test(self):
        """The 39 KB push: the fields a deploy script reads are there; the
        file lists of late commits are what goes, and that is told."""
        body = push_body()
        doc = json.loads(body)
        self.assertGreater(len(body), 38000)
        self.assertEqual(len(doc["commits"]), 20)
        with self.daemon(gh_config(), hooks={"push": env_hook("push")}) as h:
            did = new_id("gh")
            status, answer = self.send(h, body, did=did)
            self.assertEqual(status, 200, answer)
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_REPOSITORY_FULL_NAME"), doc["repository"]["full_name"])
            self.assertEqual(env.get("HOOK_PUSHER_NAME"), doc["pusher"]["name"])
            self.assertEqual(env.get("HOOK_HEAD_COMMIT_ID"), doc["head_commit"]["id"])
            # (the dump is `env`'s: a value's first line)
            self.assertEqual(env.get("HOOK_HEAD_COMMIT_MESSAGE"),
                             doc["head_commit"]["message"].split("\n")[0])
            self.assertEqual(env.get("HOOK_HEAD_COMMIT_AUTHOR_NAME"),
                             doc["head_commit"]["author"]["name"])
            self.assertEqual(env.get("HOOK_REF"), "refs/heads/main")
            self.assertEqual(env.get("HOOK_COMMITS_COUNT"), "20")
            self.assertEqual(env.get("HOOK_REPOSITORY_TOPICS_COUNT"), "2")
            # a count is of every element, those past env_array_max too
            self.assertEqual(env.get("HOOK_COMMITS_0_MODIFIED_COUNT"), "35")
            self.assertNotIn("HOOK_COMMITS_0_MODIFIED_32", env)
            # every commit's own fields come before any commit's file list
            for i in range(20):
                self.assertEqual(env.get("HOOK_COMMITS_%d_ID" % i), doc["commits"][i]["id"])
            self.assertIn("HOOK_COMMITS_0_ADDED_0", env)
            self.assertNotIn("HOOK_COMMITS_19_MODIFIED_31", env)

            omitted = expected_push_budget(doc)
            self.assertGreater(omitted, 0)
            self.assertEqual(answer.get("env_omitted"), omitted, answer)
            kv = harness.parse_logfmt(self.warn_line(h, did))
            self.assertEqual(kv["level"], "warn")
            self.assertEqual(int(kv["env_omitted"]), omitted)
            names = kv["omitted"].split()
            self.assertEqual(len(names), 8)
            for n in names:
                self.assertTrue(n.startswith("HOOK_COMMITS_"), n)
                self.assertNotIn(n, env)
            self.assertNotIn("env_collisions", kv)
            line = h.wait_log("msg=delivery", "id=" + did, timeout=5)
            self.assertEqual(harness.parse_logfmt(line)["env_omitted"], str(omitted))

    def test_env_and_run_say_so_on_stderr(self):
        with self.daemon(gh_config(), hooks={"push": env_hook("push")}, start=False) as h:
            omitted = expected_push_budget(json.loads(push_body()))
            p = h.cli("--endpoint", "github", "env", "push", PUSH_PATH)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout
            self.assertIn("HOOK_REPOSITORY_FULL_NAME=example-org/deploy-target\n", out)
            self.assertIn("HOOK_COMMITS_COUNT=20\n", out)
            err = p.stderr
            self.assertIn("level=warn", err)
            self.assertIn("env_omitted=%d" % omitted, err)
            self.assertNotIn("level=warn", out)

            p = h.cli("--endpoint", "github", "run", "push", PUSH_PATH)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("env_omitted=%d" % omitted, p.stderr)
            answer = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertEqual(answer["env_omitted"], omitted)
            self.assertEqual(h.env_of().get("HOOK_PUSHER_NAME"), "dana-author")


class TestBudget(Base):

    def test_order_and_counts(self):
        body = {"list": [{"id": 1}], "deep": {"a": {"b": {"c": "kept"}}},
                "empty": [], "top": "t"}
        conf = gh_config(endpoint="env_max_vars = 3\n")
        with self.daemon(conf, hooks={"push": env_hook("push")}) as h:
            did = new_id("gh")
            status, answer = self.send(h, body, did=did)
            self.assertEqual(status, 200, answer)
            env = self.hook_env(h)
            payload = {k: v for k, v in env.items()
                       if k.startswith("HOOK_") and k not in (
                           "HOOK_EVENT", "HOOK_ID", "HOOK_ENDPOINT", "HOOK_HOOK",
                           "HOOK_ATTEMPT", "HOOK_REMOTE_ADDR", "HOOK_RECEIVED_AT")}
            # depth 1 first (list's count, empty's count, top), then deeper
            self.assertEqual(payload, {"HOOK_LIST_COUNT": "1", "HOOK_EMPTY_COUNT": "0",
                                       "HOOK_TOP": "t"})
            self.assertEqual(answer["env_omitted"], 2)
            kv = harness.parse_logfmt(self.warn_line(h, did))
            self.assertEqual(kv["omitted"], "HOOK_DEEP_A_B_C HOOK_LIST_0_ID")

    def test_async_built_as_its_attempt_begins(self):
        """An async delivery's environment is built when its attempt
        begins, not at its acceptance: the 202 has no env_omitted, the
        warning and the outcome's line have it."""
        body = {"list": [{"id": 1}], "deep": {"a": {"b": {"c": "kept"}}},
                "empty": [], "top": "t"}
        conf = gh_config(server="state_dir = state\n",
                         endpoint="env_max_vars = 3\nmode = async\n")
        with self.daemon(conf, hooks={"push": env_hook("push")}) as h:
            did = new_id("gh")
            status, answer = self.send(h, body, did=did)
            self.assertEqual(status, 202, answer)
            self.assertNotIn("env_omitted", answer)
            accepted = h.wait_log("msg=delivery", "id=" + did, "status=accepted", timeout=5)
            self.assertNotIn("env_omitted", accepted)
            kv = harness.parse_logfmt(self.warn_line(h, did))
            self.assertEqual(kv["omitted"], "HOOK_DEEP_A_B_C HOOK_LIST_0_ID")
            line = h.wait_log("msg=delivery", "id=" + did, "status=ok", timeout=10)
            self.assertIsNotNone(line, h.log_text())
            self.assertEqual(harness.parse_logfmt(line)["env_omitted"], "2")
            self.assertEqual(self.hook_env(h).get("HOOK_TOP"), "t")

    def test_server_endpoint_event_levels(self):
        """[server] sets the budget, [endpoint] overrides it, [event] that."""
        body = {"a": [1, 2, 3, 4, 5], "b": "x" * 100}
        conf = gh_config(server="env_array_max = 1\nenv_max_bytes = 64KiB\n",
                         endpoint="env_array_max = 2\n",
                         extra="[event wide]\nenv_array_max = 4\n"
                               "[event tight]\nenv_max_bytes = 100\n"
                               "[endpoint plain]\npath = /plain\nscheme = none\n")
        hooks = {e: env_hook(e, dump=e + ".txt") for e in ("push", "wide", "tight", "other")}
        with self.daemon(conf, hooks=hooks) as h:
            # an endpoint that sets nothing: the server's one element
            status, _, raw = h.post_body(dict(body, event="other"), "/plain")
            self.assertEqual(status, 200, raw)
            env = self.hook_env(h, "other.txt")
            self.assertEqual(sorted(k for k in env if k.startswith("HOOK_A_")),
                             ["HOOK_A_0", "HOOK_A_COUNT"])
            self.assertEqual(json.loads(raw)["env_omitted"], 4)
            for event, want_elems, has_b in (("push", 2, True), ("wide", 4, True),
                                             ("tight", 5, False)):
                status, answer = self.send(h, body, event=event)
                self.assertEqual(status, 200, answer)
                env = self.hook_env(h, event + ".txt")
                self.assertEqual(env.get("HOOK_A_COUNT"), "5")
                elems = [k for k in env if k.startswith("HOOK_A_") and k != "HOOK_A_COUNT"]
                if event == "tight":
                    # 100 bytes: the count and a few elements, not the 108-byte B
                    self.assertNotIn("HOOK_B", env)
                    self.assertIn("env_omitted", answer)
                    continue
                self.assertEqual(len(elems), want_elems, (event, sorted(elems)))
                self.assertEqual(answer.get("env_omitted"), 5 - want_elems, answer)
                self.assertEqual("HOOK_B" in env, has_b)

    def test_check_prints_the_budget(self):
        conf = gh_config(server="env_max_vars = 500\n", endpoint="env_array_max = 4\n",
                         extra="[endpoint plain]\npath = /plain\nscheme = none\n")
        with self.daemon(conf, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            i = next(n for n, l in enumerate(lines) if l.startswith("endpoint github:"))
            self.assertEqual(lines[i + 1], "  env max_vars=500 max_bytes=524288 array_max=4")
            i = next(n for n, l in enumerate(lines) if l.startswith("endpoint plain:"))
            self.assertEqual(lines[i + 1], "  env max_vars=500 max_bytes=524288 array_max=32")

    def test_check_prints_each_event_section(self):
        """What an [event] section sets is in check's output, on its own line."""
        conf = gh_config(extra="[event push]\ntimeout = 5s\nenv_max_vars = 10\n"
                               "env_array_max = 2\n[event ping]\nmatch = zen=*\n")
        with self.daemon(conf, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertIn("event push: timeout=5s env_max_vars=10 env_array_max=2", lines)
            self.assertIn("event ping: match zen=*", lines)
            self.assertFalse([l for l in lines if l.startswith("event ping:") and "=" in l
                              and "match" not in l], lines)

    def test_config_values_checked(self):
        for line, why in (("env_max_bytes = 2MiB", "at most 1MiB"),
                          ("env_max_vars = -1", "whole number"),
                          ("env_array_max = lots", "whole number")):
            with self.daemon(gh_config(endpoint=line + "\n"), start=False) as h:
                p = h.cli("check")
                self.assertEqual(p.returncode, 2, (line, p.stdout, p.stderr))
                self.assertIn(why, p.stderr, line)
                self.assertIn(line.split()[0], p.stderr)


class TestCollisions(Base):

    def test_two_paths_one_name(self):
        """hook_id and hook.id both give HOOK_HOOK_ID: the shallower keeps
        it, and the log names the loser by its path; a body's "hook" meets
        the metadata HOOK_HOOK, which keeps its value."""
        body = {"hook": {"id": 2, "type": "Repository"}, "hook_id": 1, "zen": "z"}
        with self.daemon(gh_config(), hooks={"ping": env_hook("ping")}) as h:
            did = new_id("gh")
            status, answer = self.send(h, body, event="ping", did=did)
            self.assertEqual(status, 200, answer)
            self.assertNotIn("env_omitted", answer)
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_HOOK_ID"), "1")
            self.assertEqual(env.get("HOOK_HOOK_TYPE"), "Repository")
            self.assertEqual(env.get("HOOK_HOOK"), "ping")
            kv = harness.parse_logfmt(self.warn_line(h, did))
            self.assertEqual(kv["env_collisions"], "1")
            self.assertEqual(kv["collided"], "HOOK_HOOK_ID (hook.id)")
            self.assertNotIn("env_omitted", kv)

            did = new_id("gh")
            status, _ = self.send(h, {"hook": "mine", "zen": "z"}, event="ping", did=did)
            self.assertEqual(status, 200)
            self.assertEqual(self.hook_env(h).get("HOOK_HOOK"), "ping")
            kv = harness.parse_logfmt(self.warn_line(h, did))
            self.assertEqual(kv["collided"], "HOOK_HOOK (hook)")

    def test_metadata_saying_the_same_is_quiet(self):
        """A Northflank-style body's "event" that names the delivery's event
        loses nothing: no warn line for an ordinary delivery."""
        conf = gh_config().replace("scheme = github\nsecret = %s\n" % GH_SECRET,
                                   "scheme = none\n")
        with self.daemon(conf, hooks={"build:start": env_hook("build:start")}) as h:
            status, _, raw = h.post_body(harness.sample_body(), "/gh")
            self.assertEqual(status, 200, raw)
            h.wait_log("msg=delivery", timeout=5)
            self.assertEqual(h.log_lines("environment incomplete"), [])
            self.assertEqual(self.hook_env(h).get("HOOK_DATA_BUILD_ID"), "social-hour-1312")


if __name__ == "__main__":
    harness.main()
