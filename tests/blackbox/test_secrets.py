"""Secrets never leak (issue 4, item 7): every answer path hookd has, for
every scheme, with known secrets, include_output = yes, hooks that dump
their whole environment and the journal on; then every log line, every
response (head and body), every hook environment and output, the journal's
files and what `hookd events` / `hookd show` print are searched for each
secret. None may appear anywhere.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_secrets.py
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, NF_PREFIX, recv_response, sh  # noqa: E402
from harness import hardened_hookd as Daemon  # noqa: E402

TAG = uuid.uuid4().hex[:8]
S = {
    "northflank": "nf-secret-%s-Tok3n" % TAG,
    "gitlab": "gl-secret-%s-Tok3n" % TAG,
    "github": "gh-secret-%s-Hm4c" % TAG,
    "stripe": "whsec_stripe-secret-%s" % TAG,
    "slack": "slack-secret-%s-S1gn" % TAG,
    "hmac": "hmac-secret-%s-K3y" % TAG,
    "env": "env-secret-%s-Tok3n" % TAG,
    "file": "file-secret-%s-Tok3n" % TAG,
    "token": "token-secret-%s-Key" % TAG,
    "basic": "basic-secret-%s-Pw" % TAG,
}
STANDARD_KEY = ("std-secret-%s-bytes" % TAG).encode()
S["standard"] = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
# basic's credentials as they travel: base64 of user:password.
S["basic_b64"] = base64.b64encode(("alice:" + S["basic"]).encode()).decode()
# The old half of a rotation pair: must not leak either.
S["rotated"] = "nf-rotated-%s-Old" % TAG

NF_TOKEN_HEADER = NF_PREFIX + "Token"
NF_ID = NF_PREFIX + "Event-Id"

DUMP = sh("""
env > "{tmp}/env/$HOOK_ID.$$"
echo "hook $HOOK_HOOK for $HOOK_EVENT"
env
cat
case "$HOOK_EVENT" in
  *tempfail*) exit 75 ;;
  *fail*) exit 1 ;;
  *slow*) sleep 1.2 ;;
  *hang*) sleep 30 ;;
esac
exit 0
""")

CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 5s
kill_grace = 1s
include_output = yes
max_body = 64KiB
max_headers = 4KiB
read_timeout = 2s
max_running = 2
max_queued = 0
state_dir = {tmp}/state
pass_env = PATH LANG TZ

[event x:hang]
timeout = 500ms

[endpoint northflank]
path = /nf
scheme = northflank
secret = %(rotated)s %(northflank)s

[endpoint nf-async]
path = /nf-async
scheme = northflank
secret = %(northflank)s
mode = async

[endpoint nf-allow]
path = /nf-allow
scheme = northflank
secret = %(northflank)s
allow_from = 10.0.0.0/8

[endpoint gitlab]
path = /gl
scheme = gitlab
secret = %(gitlab)s

[endpoint github]
path = /gh
scheme = github
secret = %(github)s

[endpoint standard]
path = /sw
scheme = standard
secret = %(standard)s

[endpoint stripe]
path = /st
scheme = stripe
secret = %(stripe)s

[endpoint slack]
path = /sl
scheme = slack
secret = %(slack)s

[endpoint hmac]
path = /hm
scheme = hmac
secret = %(hmac)s

[endpoint token]
path = /tk
scheme = token
token_header = X-Api-Key
secret = %(token)s
event = x:token

[endpoint basic]
path = /ba
scheme = basic
secret = alice:%(basic)s

[endpoint env]
path = /env
scheme = gitlab
secret_env = HOOKD_TEST_SECRET

[endpoint file]
path = /file
scheme = gitlab
secret_file = {tmp}/secret.txt
""" % S


def hexmac(key, msg, alg=hashlib.sha256):
    return hmac.new(key.encode() if isinstance(key, str) else key, msg, alg).hexdigest()


class TestSecrets(unittest.TestCase):

    def setUp(self):
        self.answers = []  # raw bytes of every answer

    # ---- senders: each returns the status and keeps the raw answer

    def send(self, h, method, path, body, headers, conn=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
        for k, v in headers.items():
            head += "%s: %s\r\n" % (k, v)
        if body is not None and "Content-Length" not in headers:
            head += "Content-Length: %d\r\n" % len(body)
        data = head.encode() + b"\r\n" + (body or b"")
        s = conn or h.socket(15)
        try:
            s.sendall(data)
            st, hd, b = recv_response(s, 15)
        finally:
            if conn is None:
                s.close()
        raw = b if st is None else (json.dumps(hd).encode() + b"\n" + b)
        self.answers.append(raw)
        return st, (json.loads(b) if st else None)

    def nf(self, h, event="x:ok", token=None, path="/nf", eid=None, ct="application/json",
           body=None, extra=None, conn=None):
        hd = {"Content-Type": ct, NF_ID: eid or uuid.uuid4().hex}
        if token is not False:
            hd[NF_TOKEN_HEADER] = token or S["northflank"]
        hd.update(extra or {})
        if body is None:
            body = {"event": event, "data": {"n": 1}}
        return self.send(h, "POST", path, body, hd, conn)

    def gitlab(self, h, path, secret, event="push"):
        return self.send(h, "POST", path, {"object_kind": event},
                         {"Content-Type": "application/json", "X-Gitlab-Token": secret})

    def github(self, h, secret, event="push"):
        body = json.dumps({"action": "opened", "n": 1}).encode()
        return self.send(h, "POST", "/gh", body, {
            "Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": uuid.uuid4().hex,
            "X-Hub-Signature-256": "sha256=" + hexmac(secret, body)})

    def standard(self, h, key):
        body = json.dumps({"type": "invoice.paid"}).encode()
        mid, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))
        sig = base64.b64encode(hmac.new(key, b"%s.%s.%s" % (mid.encode(), ts.encode(), body),
                                        hashlib.sha256).digest()).decode()
        return self.send(h, "POST", "/sw", body, {
            "Content-Type": "application/json", "webhook-id": mid,
            "webhook-timestamp": ts, "webhook-signature": "v1," + sig})

    def stripe(self, h, secret):
        body = json.dumps({"id": "evt_" + uuid.uuid4().hex, "type": "charge.succeeded"}).encode()
        ts = str(int(time.time()))
        sig = hexmac(secret, ts.encode() + b"." + body)
        return self.send(h, "POST", "/st", body, {
            "Content-Type": "application/json", "Stripe-Signature": "t=%s,v1=%s" % (ts, sig)})

    def slack(self, h, secret, body=None):
        body = json.dumps(body or {"type": "event_callback", "event_id": uuid.uuid4().hex,
                                   "event": {"type": "message"}}).encode()
        ts = str(int(time.time()))
        sig = hexmac(secret, b"v0:" + ts.encode() + b":" + body)
        return self.send(h, "POST", "/sl", body, {
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + sig})

    def hmac_ep(self, h, secret):
        body = json.dumps({"event": "deploy"}).encode()
        return self.send(h, "POST", "/hm", body, {
            "Content-Type": "application/json", "X-Signature": hexmac(secret, body)})

    def token(self, h, secret):
        return self.send(h, "POST", "/tk", b"", {"X-Api-Key": secret})

    def basic(self, h, password):
        pair = base64.b64encode(("alice:" + password).encode()).decode()
        return self.send(h, "POST", "/ba", {"event": "x:basic"},
                         {"Content-Type": "application/json", "Authorization": "Basic " + pair})

    # ---- the test

    def test_no_secret_anywhere(self):
        env = {"HOOKD_TEST_SECRET": S["env"]}
        with Daemon(CONFIG, {"_default": DUMP}, env=env, start=False) as h:
            os.mkdir(h.path("env"))
            os.chmod(h.path("env"), 0o777)
            with open(h.path("secret.txt"), "w") as f:
                f.write(S["file"] + "\n")
            h.start()
            seen = {}

            def check(name, got, want):
                seen[name] = got
                self.assertEqual(got, want, "%s: %r" % (name, got))

            # Each scheme, verified and run.
            check("nf ok", self.nf(h, extra={"X-Canary": "canary-" + TAG})[0], 200)
            check("nf old secret", self.nf(h, token=S["rotated"])[0], 200)
            check("gitlab", self.gitlab(h, "/gl", S["gitlab"])[0], 200)
            check("github", self.github(h, S["github"])[0], 200)
            check("standard", self.standard(h, STANDARD_KEY)[0], 200)
            check("stripe", self.stripe(h, S["stripe"])[0], 200)
            check("slack", self.slack(h, S["slack"])[0], 200)
            check("slack challenge", self.slack(h, S["slack"], {
                "type": "url_verification", "challenge": "c-" + TAG})[0], 200)
            check("hmac", self.hmac_ep(h, S["hmac"])[0], 200)
            check("token", self.token(h, S["token"])[0], 200)
            check("basic", self.basic(h, S["basic"])[0], 200)
            check("secret_env", self.gitlab(h, "/env", S["env"])[0], 200)
            check("secret_file", self.gitlab(h, "/file", S["file"])[0], 200)
            # Each scheme, wrong credentials.
            check("nf 401", self.nf(h, token="wrong")[0], 401)
            check("nf 401 none", self.nf(h, token=False)[0], 401)
            check("gitlab 401", self.gitlab(h, "/gl", "wrong")[0], 401)
            check("github 401", self.github(h, "wrong")[0], 401)
            check("standard 401", self.standard(h, b"wrong")[0], 401)
            check("stripe 401", self.stripe(h, "wrong")[0], 401)
            check("slack 401", self.slack(h, "wrong")[0], 401)
            check("hmac 401", self.hmac_ep(h, "wrong")[0], 401)
            check("token 401", self.token(h, S["token"][:-1])[0], 401)
            check("basic 401", self.basic(h, S["basic"] + "x")[0], 401)
            # Every other answer of README "HTTP answers" and the HTTP layer.
            check("404", self.nf(h, path="/nope")[0], 404)
            check("405", self.send(h, "GET", "/nf", None,
                                   {NF_TOKEN_HEADER: S["northflank"]})[0], 405)
            check("403", self.nf(h, path="/nf-allow")[0], 403)
            check("413", self.nf(h, body=b"{" + b" " * 70000 + b"}")[0], 413)
            check("415", self.nf(h, ct="text/plain")[0], 415)
            check("400 json", self.nf(h, body=b"{not json")[0], 400)
            check("400 event", self.nf(h, body={"no": "event"})[0], 400)
            check("400 type", self.nf(h, extra={
                NF_PREFIX + "Event-Type": "other"})[0], 400)
            check("500", self.nf(h, event="x:fail")[0], 500)
            check("503 mapped", self.nf(h, event="x:tempfail")[0], 503)
            check("504", self.nf(h, event="x:hang")[0], 504)
            async_id = uuid.uuid4().hex
            check("202", self.nf(h, path="/nf-async", event="x:async", eid=async_id)[0], 202)
            eid = uuid.uuid4().hex
            check("dup first", self.nf(h, eid=eid)[0], 200)
            check("200 duplicate", self.nf(h, eid=eid)[1]["status"], "duplicate")
            # 409 (still running) and 503 (overloaded: both slots busy,
            # max_queued = 0), while two slow deliveries run.
            # The async delivery is done and holds no slot.
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + async_id, "status=ok"))
            slow_id, other_id = uuid.uuid4().hex, uuid.uuid4().hex
            ts = [threading.Thread(target=self.nf, args=(h,),
                                   kwargs={"event": "x:slow", "eid": i})
                  for i in (slow_id, other_id)]
            for t in ts:
                t.start()

            def started(i):
                return any(n.startswith(i + ".") for n in os.listdir(h.path("env")))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not (started(slow_id) and started(other_id)):
                time.sleep(0.02)
            check("409", self.nf(h, eid=slow_id)[0], 409)
            check("503", self.nf(h, event="x:ok")[0], 503)
            for t in ts:
                t.join(10)
            # HTTP-layer answers: 431, 411, 408, 400.
            check("431", self.nf(h, extra={"X-Big": "b" * 5000})[0], 431)
            check("411", self.nf(h, extra={"Transfer-Encoding": "chunked"})[0], 411)
            s = h.socket()
            s.sendall(b"POST /nf HTTP/1.1\r\n%s: %s\r\n" % (NF_TOKEN_HEADER.encode(),
                                                               S["northflank"].encode()))
            st, hd, b = recv_response(s, 5)
            s.close()
            self.answers.append(b)
            check("408", st, 408)
            check("400 request", h.raw_answer(b"BROKEN\r\n\r\n")[0], 400)
            # Shutting down: a request on an open connection gets 503.
            conn = h.socket()
            check("keepalive", self.nf(h, conn=conn)[0], 200)
            slow = threading.Thread(target=self.nf, args=(h,), kwargs={"event": "x:slow"})
            slow.start()
            time.sleep(0.3)
            h.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            check("503 draining", self.nf(h, conn=conn)[0], 503)
            conn.close()
            slow.join(10)
            self.assertEqual(h.proc.wait(15), 0)
            # The journal, as the commands print it.
            cli = []
            ev = subprocess.run([HOOKD_BIN, "-c", h.config_path, "events", "--json",
                                 "--limit", "1000"], capture_output=True, timeout=30, env=h.env)
            self.assertEqual(ev.returncode, 0, ev)
            cli.append(ev.stdout + ev.stderr)
            rows = json.loads(ev.stdout)
            self.assertGreaterEqual(len(rows), 15)
            for row in rows:
                p = subprocess.run([HOOKD_BIN, "-c", h.config_path, "show", "--endpoint",
                                    row["endpoint"], row["id"]], capture_output=True, timeout=30,
                                   env=h.env)
                cli.append(p.stdout + p.stderr)

            # Now look for every secret everywhere.
            places = {"log": h.log_text().encode()}
            for i, a in enumerate(self.answers):
                places["answer %d" % i] = a
            for i, c in enumerate(cli):
                places["cli %d" % i] = c
            envs = os.listdir(h.path("env"))
            self.assertGreater(len(envs), 15)
            for name in envs:
                with open(h.path("env/" + name), "rb") as f:
                    places["env " + name] = f.read()
            for name in os.listdir(h.path("state")):
                with open(h.path("state/" + name), "rb") as f:
                    places["state/" + name] = f.read()
            self.assertIn("state/journal.db", places)
            # The secrets are really what was used: the env dumps hold the
            # payload, the log the deliveries.
            self.assertIn(b"HOOK_EVENT=x:ok", b"".join(places[k] for k in places
                                                       if k.startswith("env ")))
            # ... and the search would see a header if one were kept: a
            # harmless one sent with the first delivery is in the journal.
            canary = ("canary-" + TAG).encode()
            self.assertTrue(any(canary in places[k] for k in places if k.startswith("state/")))
            self.assertTrue(any(canary in c for c in cli))
            leaks = []
            for sname, secret in S.items():
                needles = {secret.encode()}
                if sname == "standard":
                    needles.add(STANDARD_KEY)
                for where, data in places.items():
                    for n in needles:
                        if n in data:
                            leaks.append("%s secret in %s" % (sname, where))
            self.assertEqual(leaks, [])
            print("searched %d places (%d answers, %d hook environments, %d journal "
                  "files, %d CLI outputs, %d log bytes) for %d secrets: none found"
                  % (len(places), len(self.answers), len(envs),
                     len(os.listdir(h.path("state"))), len(cli), len(places["log"]), len(S)))


if __name__ == "__main__":
    harness.main()
