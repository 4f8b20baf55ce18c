"""The hooks users copy (hooks.d/ and examples/hooks/), run by a real hookd
against a small HTTP listener on 127.0.0.1 that records what curl (and
git) sent: a ticket through a REST API, a chat message, a git deploy with
a service restart, and each one's "not configured" path; and that they
are named after Northflank's real events, read only the fields of its
documented sample, and match README's opening and event table."""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SOURCE, base_config, sample_body  # noqa: E402
from harness import ops_hookd as Daemon  # noqa: E402

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def repo_hook(rel):
    with open(os.path.join(SOURCE, rel)) as f:
        return f.read()


class Recorder:
    """An HTTP server on 127.0.0.1:0 recording each request; GETs are
    served from `static` (a directory) when given, so git can fetch from
    it over the dumb HTTP protocol."""

    def __init__(self, status=201, body=b'{"id": 4711}', static=None):
        self.requests = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _record(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n) if n else b""
                rec.requests.append({"method": self.command, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": data})

            def _send(self, code, data, ctype="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self._record()
                self._send(status, body)

            def do_GET(self):
                self._record()
                if static is None:
                    return self._send(404, b"{}")
                rel = self.path.split("?", 1)[0].lstrip("/")
                path = os.path.normpath(os.path.join(static, rel))
                if not path.startswith(static + os.sep) or not os.path.isfile(path):
                    return self._send(404, b"not found", "text/plain")
                with open(path, "rb") as f:
                    self._send(200, f.read(), "application/octet-stream")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self):
        return [r for r in self.requests if r["method"] == "POST"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def git(*args, cwd=None):
    env = {"PATH": SYSTEM_PATH, "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    p = subprocess.run(["git"] + list(args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("git %s: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout.decode().strip()


class ExampleTest(unittest.TestCase):

    def daemon(self, hooks, files=None, stubs=None):
        """hookd with hooks from the repo, PATH = stubs + the system's, and
        include_output so the hooks' output comes back in the answer."""
        self.stubdir = tempfile.mkdtemp(prefix="hookd-stubs-")
        self.addCleanup(shutil.rmtree, self.stubdir, True)
        for name, text in (stubs or {}).items():
            p = os.path.join(self.stubdir, name)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o755)
        cfg = base_config(admin=False, extra_server="include_output = yes\n")
        return Daemon(cfg, hooks=hooks, files=files,
                      env={"PATH": self.stubdir + ":" + SYSTEM_PATH})

    def output(self, r):
        return "".join(h.get("output", "") for h in r.json["hooks"])


class TicketTest(ExampleTest):
    HOOK = {"build:failure": repo_hook("hooks.d/build:failure")}

    def test_opens_ticket(self):
        rec = Recorder()
        self.addCleanup(rec.close)
        env = "TICKET_URL=%s/api/v1/tickets\nTICKET_TOKEN=tok-Secret-123\n" % rec.url
        with self.daemon(self.HOOK, files={"hooks.d/.ticket.env": env}) as d:
            r = d.deliver(sample_body("build:failure"), event_id="fail-1")
            self.assertEqual(r.status, 200, r.raw)
            self.assertIn("ticket opened for delivery fail-1", self.output(r))
            self.assertEqual(len(rec.posts()), 1)
            req = rec.posts()[0]
            self.assertEqual(req["path"], "/api/v1/tickets")
            self.assertEqual(req["headers"]["authorization"], "Bearer tok-Secret-123")
            self.assertEqual(req["headers"]["content-type"], "application/json")
            self.assertEqual(json.loads(req["body"]), {
                "title": "Build social-hour-1312 failed: Personal Blog/Website",
                "branch": "master",
                "commit": "ca624abed0d5ba0ad6e6fe28c396196b81f0200d",
                "delivery": "fail-1",
            })
            self.assertEqual(d.stop(), 0)
            self.assertNotIn("tok-Secret-123", d.log_text(), "the token is never logged")

    def test_api_down_asks_for_retry(self):
        rec = Recorder(status=502, body=b'{"error":"down"}')
        self.addCleanup(rec.close)
        env = "TICKET_URL=%s/t\nTICKET_TOKEN=x\n" % rec.url
        with self.daemon(self.HOOK, files={"hooks.d/.ticket.env": env}) as d:
            r = d.deliver(sample_body("build:failure"))
            self.assertEqual(r.status, 503, "exit 75 (EX_TEMPFAIL) maps to 503: resend later")
            self.assertEqual(r.json["hooks"][0]["exit"], 75)
            self.assertEqual(len(rec.posts()), 1)
            self.assertEqual(d.stop(), 0)

    def test_not_configured_prints_request(self):
        with self.daemon(self.HOOK) as d:
            r = d.deliver(sample_body("build:failure"), event_id="fail-2")
            self.assertEqual(r.status, 200)
            out = self.output(r)
            self.assertIn("TICKET_URL not set", out)
            body = json.loads(out.split("would POST ", 1)[1].splitlines()[0])
            self.assertEqual(body["title"], "Build social-hour-1312 failed: Personal Blog/Website")
            self.assertEqual(body["delivery"], "fail-2")
            self.assertEqual(d.stop(), 0)


class ChatTest(ExampleTest):
    HOOK = {"job-run:failure": repo_hook("hooks.d/job-run:failure")}

    @staticmethod
    def payload(project="Personal Blog"):
        """A job-run:failure shaped like the one body Northflank documents:
        the hook reads only data.project, which that sample has."""
        doc = json.loads(sample_body("job-run:failure"))
        doc["data"]["project"]["name"] = project
        return json.dumps(doc).encode()

    def test_posts_message(self):
        rec = Recorder(status=200, body=b"ok")
        self.addCleanup(rec.close)
        env = "CHAT_WEBHOOK_URL=%s/services/T0/B0/xyz\nCHAT_TOKEN=chat-tok-9\n" % rec.url
        with self.daemon(self.HOOK, files={"hooks.d/.chat.env": env}) as d:
            # A value with quotes and a newline must still make valid JSON.
            r = d.deliver(self.payload('Blog "prod"\nline 2'), event_id="job-1")
            self.assertEqual(r.status, 200, r.raw)
            req = rec.posts()[0]
            self.assertEqual(req["path"], "/services/T0/B0/xyz")
            self.assertEqual(req["headers"]["content-type"], "application/json")
            self.assertEqual(req["headers"]["authorization"], "Bearer chat-tok-9")
            self.assertEqual(json.loads(req["body"]), {
                "text": 'Job run failed in project Blog "prod"\nline 2 '
                        "(event job-run:failure, delivery job-1)"})
            self.assertEqual(d.stop(), 0)

    def test_project_id_when_no_name(self):
        rec = Recorder(status=200, body=b"ok")
        self.addCleanup(rec.close)
        doc = json.loads(sample_body("job-run:failure"))
        del doc["data"]["project"]["name"]
        env = "CHAT_WEBHOOK_URL=%s/hook\n" % rec.url
        with self.daemon(self.HOOK, files={"hooks.d/.chat.env": env}) as d:
            self.assertEqual(d.deliver(json.dumps(doc).encode()).status, 200)
            self.assertIn("in project personal-blog (", json.loads(rec.posts()[0]["body"])["text"])
            self.assertEqual(d.stop(), 0)

    def test_no_token_no_authorization(self):
        rec = Recorder(status=200, body=b"ok")
        self.addCleanup(rec.close)
        env = "CHAT_WEBHOOK_URL=%s/hook\n" % rec.url
        with self.daemon(self.HOOK, files={"hooks.d/.chat.env": env}) as d:
            self.assertEqual(d.deliver(self.payload()).status, 200)
            self.assertNotIn("authorization", rec.posts()[0]["headers"])
            self.assertEqual(d.stop(), 0)

    def test_not_configured_prints_message(self):
        with self.daemon(self.HOOK) as d:
            r = d.deliver(self.payload(), event_id="job-2")
            self.assertEqual(r.status, 200)
            out = self.output(r)
            self.assertIn("CHAT_WEBHOOK_URL not set", out)
            body = json.loads(out.split("would POST ", 1)[1].splitlines()[0])
            self.assertEqual(body["text"], "Job run failed in project Personal Blog "
                                           "(event job-run:failure, delivery job-2)")
            self.assertEqual(d.stop(), 0)


SUDO_STUB = "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$(dirname \"$0\")/sudo.log\"\n"


class DeployTest(ExampleTest):
    HOOK = {"build:success": repo_hook("examples/hooks/deploy-git-pull")}

    def setUp(self):
        # An origin repository served over HTTP by the recorder, a source
        # clone to push commits from, and the checkout the hook updates.
        self.root = tempfile.mkdtemp(prefix="hookd-git-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.web = os.path.join(self.root, "web")
        os.mkdir(self.web)
        self.origin = os.path.join(self.web, "app.git")
        git("init", "-q", "--bare", "-b", "main", self.origin)
        self.src = os.path.join(self.root, "src")
        git("init", "-q", "-b", "main", self.src)
        self.rec = Recorder(static=self.web)
        self.addCleanup(self.rec.close)
        self.first = self.commit("one")
        self.checkout = os.path.join(self.root, "checkout")
        git("clone", "-q", self.rec.url + "/app.git", self.checkout)
        self.second = self.commit("two")

    def commit(self, msg):
        with open(os.path.join(self.src, "file.txt"), "a") as f:
            f.write(msg + "\n")
        git("add", "file.txt", cwd=self.src)
        git("commit", "-q", "-m", msg, cwd=self.src)
        git("push", "-q", self.origin, "main", cwd=self.src)
        git("update-server-info", cwd=self.origin)  # for the dumb HTTP protocol
        return git("rev-parse", "HEAD", cwd=self.src)

    def payload(self, sha, branch="main", service="website"):
        doc = json.loads(sample_body("build:success"))
        doc["data"]["build"]["sha"] = sha
        doc["data"]["build"]["branch"] = branch
        doc["data"]["service"]["id"] = service
        return json.dumps(doc).encode()

    def env_file(self, extra=""):
        return {"hooks.d/.deploy.env":
                "DEPLOY_DIR=%s\nDEPLOY_BRANCH=main\nDEPLOY_SERVICE=myapp.service\n%s"
                % (self.checkout, extra)}

    def sudo_calls(self):
        p = os.path.join(self.stubdir, "sudo.log")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return f.read().splitlines()

    def test_pulls_and_restarts(self):
        self.assertEqual(git("rev-parse", "HEAD", cwd=self.checkout), self.first)
        with self.daemon(self.HOOK, files=self.env_file(), stubs={"sudo": SUDO_STUB}) as d:
            n = len(self.rec.requests)
            r = d.deliver(self.payload(self.second), event_id="dep-1")
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual(git("rev-parse", "HEAD", cwd=self.checkout), self.second)
            self.assertEqual(self.sudo_calls(), ["-n /usr/bin/systemctl restart myapp.service"])
            out = self.output(r)
            self.assertIn("checkout now at " + self.second, out)
            self.assertIn("restarted myapp.service", out)
            # git fetched from the listener: the refs, then the objects.
            paths = [q["path"] for q in self.rec.requests[n:]]
            self.assertTrue(any(p.startswith("/app.git/info/refs") for p in paths), paths)
            self.assertTrue(all(q["method"] == "GET" for q in self.rec.requests[n:]))
            self.assertEqual(d.stop(), 0)

    def test_other_branch_or_service_does_not_deploy(self):
        files = self.env_file("DEPLOY_NORTHFLANK_SERVICE=website\n")
        with self.daemon(self.HOOK, files=files, stubs={"sudo": SUDO_STUB}) as d:
            r = d.deliver(self.payload(self.second, branch="feature-x"))
            self.assertEqual(r.status, 200)
            self.assertIn("not deploying: build of branch 'feature-x'", self.output(r))
            r = d.deliver(self.payload(self.second, service="api"))
            self.assertEqual(r.status, 200)
            self.assertIn("not deploying: build of service 'api'", self.output(r))
            self.assertEqual(git("rev-parse", "HEAD", cwd=self.checkout), self.first)
            self.assertEqual(self.sudo_calls(), [])
            self.assertEqual(d.stop(), 0)

    def test_commit_not_on_remote_yet_is_retried(self):
        with self.daemon(self.HOOK, files=self.env_file(), stubs={"sudo": SUDO_STUB}) as d:
            r = d.deliver(self.payload("0123456789abcdef0123456789abcdef01234567"))
            self.assertEqual(r.status, 503, "exit 75: Northflank sends it again later")
            self.assertEqual(self.sudo_calls(), [], "no restart on old code")
            self.assertEqual(d.stop(), 0)

    def test_remote_unreachable_is_retried(self):
        # Port 9 (discard) on loopback: nothing listens, the fetch fails.
        git("remote", "set-url", "origin", "http://127.0.0.1:9/app.git", cwd=self.checkout)
        with self.daemon(self.HOOK, files=self.env_file(), stubs={"sudo": SUDO_STUB}) as d:
            r = d.deliver(self.payload(self.second))
            self.assertEqual(r.status, 503)
            self.assertEqual(d.stop(), 0)

    def test_not_configured_prints_plan(self):
        with self.daemon(self.HOOK) as d:
            r = d.deliver(self.payload(self.second))
            self.assertEqual(r.status, 200)
            self.assertIn("DEPLOY_DIR not set", self.output(r))
            self.assertIn("pull --ff-only origin main", self.output(r))
            self.assertEqual(d.stop(), 0)


class ShippedDeployTest(ExampleTest):
    """The shipped hooks.d/build:success: DEPLOY_COMMAND from .deploy.env."""
    HOOK = {"build:success": repo_hook("hooks.d/build:success")}

    def test_runs_deploy_command(self):
        files = {"hooks.d/.deploy.env":
                 "DEPLOY_COMMAND=\"echo \\$HOOK_DATA_BUILD_SHA > '{tmp}/deployed'\"\n"}
        with self.daemon(self.HOOK, files=files) as d:
            r = d.deliver(sample_body("build:success"))
            self.assertEqual(r.status, 200, r.raw)
            with open(os.path.join(d.tmp, "deployed")) as f:
                self.assertEqual(f.read().strip(), "ca624abed0d5ba0ad6e6fe28c396196b81f0200d")
            self.assertEqual(d.stop(), 0)

    def test_failing_command_asks_for_retry(self):
        with self.daemon(self.HOOK, files={"hooks.d/.deploy.env": "DEPLOY_COMMAND=false\n"}) as d:
            self.assertEqual(d.deliver(sample_body("build:success")).status, 503)
            self.assertEqual(d.stop(), 0)

    def test_not_configured(self):
        with self.daemon(self.HOOK) as d:
            r = d.deliver(sample_body("build:success"))
            self.assertEqual(r.status, 200)
            self.assertIn("DEPLOY_COMMAND not set", self.output(r))
            self.assertEqual(d.stop(), 0)


class LoggingHooksTest(ExampleTest):
    """The shipped hooks.d/build:start (logs the build) and _default (logs
    any event no other hook matches), as the quick start runs them."""
    HOOKS = {"build:start": repo_hook("hooks.d/build:start"),
             "_default": repo_hook("hooks.d/_default")}

    def test_build_start_logs_the_build(self):
        with self.daemon(self.HOOKS) as d:
            r = d.deliver(sample_body("build:start"))
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual([h["hook"] for h in r.json["hooks"]], ["build:start"])
            self.assertIn("build social-hour-1312 started for Personal Blog/Website "
                          "(branch master, commit ca624abed0d5ba0ad6e6fe28c396196b81f0200d)",
                          self.output(r))
            self.assertEqual(d.stop(), 0)

    def test_default_logs_unmatched_events(self):
        with self.daemon(self.HOOKS) as d:
            r = d.deliver(sample_body("addon-backup:start"))
            self.assertEqual(r.status, 200, r.raw)
            self.assertEqual([h["hook"] for h in r.json["hooks"]], ["_default"])
            self.assertIn("no hook for event addon-backup:start", self.output(r))
            self.assertIn("from 127.0.0.1", self.output(r))
            self.assertEqual(d.stop(), 0)


SHIPPED = sorted(["hooks.d/" + n for n in os.listdir(os.path.join(SOURCE, "hooks.d"))
                  if not n.startswith(".")] + ["examples/hooks/deploy-git-pull"])


def readme():
    with open(os.path.join(SOURCE, "README.md")) as f:
        return f.read()


def northflank_events():
    """The event names README's "Northflank events" table lists (its first
    column)."""
    table = readme().split("**Northflank events.**", 1)[1].split("\n\n", 2)[1]
    return {name for row in table.splitlines()[2:]
            for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


class NorthflankNamesTest(ExampleTest):
    """The shipped hooks are named after real Northflank events, read only
    the fields of Northflank's documented sample, and the README's opening
    names them for what they do."""

    def test_hook_names_are_northflank_events(self):
        events = northflank_events()
        for must in ("build:start", "job-run:failure", "addon-backup:success",
                     "release-flow-template-run:aborted", "template-run:queued",
                     "infrastructure:byoc:cluster:error", "billing:invoice-paid"):
            self.assertIn(must, events)
        self.assertNotIn("backup:success", events)
        families = {e.rsplit(":", 1)[0] for e in events}
        for rel in os.listdir(os.path.join(SOURCE, "hooks.d")):
            if rel.startswith(".") or rel == "_default":
                continue
            with self.subTest(hook=rel):
                self.assertTrue(rel in events or rel in families,
                                "hooks.d/%s is no Northflank event or family" % rel)

    def test_readme_routes_are_hookds(self):
        """The table's second column is what hookd tries for that event: run
        each name through a real hookd whose hooks.d holds only the widest."""
        table = readme().split("**Northflank events.**", 1)[1].split("\n\n", 2)[1]
        for row in table.splitlines()[2:]:
            event, *tried = re.findall(r"`([^`]+)`", row.split("|")[2].split(" (")[0])
            with self.subTest(event=event):
                self.assertIn(event, re.findall(r"`([^`]+)`", row.split("|")[1]))
                names = [event] + tried
                self.assertEqual(names[-1], "_default")
                # each name catches the event once the names before it are gone
                for k, name in enumerate(names):
                    hooks = {n: "#!/bin/sh\necho caught-by-%s\n" % n for n in names[k:]}
                    with self.daemon(hooks) as d:
                        r = d.deliver(sample_body(event))
                        self.assertEqual([h["hook"] for h in r.json["hooks"]], [name], r.raw)
                        self.assertEqual(d.stop(), 0)

    def test_hooks_read_only_documented_fields(self):
        """Every HOOK_DATA_* a shipped hook reads is one `hookd env` makes
        from the documented sample body."""
        with self.daemon({}) as d:
            p = harness.run_cli(["env", "build:start", harness.SAMPLE_PATH],
                                config=d.config_path)
            self.assertEqual(p.returncode, 0, p)
            have = {ln.split("=", 1)[0] for ln in p.stdout.decode().splitlines()}
            self.assertEqual(d.stop(), 0)
        for rel in SHIPPED:
            with self.subTest(hook=rel):
                used = set(re.findall(r"HOOK_DATA_[A-Z0-9_]+", repo_hook(rel)))
                self.assertEqual(used - have, set(), "%s reads fields the sample lacks" % rel)

    def test_readme_opening_matches_the_hooks(self):
        opening = readme().split("## Contents", 1)[0]
        for words, marker in (("a deploy script for", "DEPLOY_COMMAND"),
                              ("opens a\s+ticket for", "TICKET_URL"),
                              ("a chat message for", "CHAT_WEBHOOK_URL")):
            with self.subTest(words=words):
                m = re.search(words + r"\s+`([^`]+)`", opening)
                self.assertIsNotNone(m, "the opening says nothing like %r" % words)
                self.assertIn(marker, repo_hook("hooks.d/" + m.group(1)))


if __name__ == "__main__":
    harness.main()
