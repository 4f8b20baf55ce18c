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
  *slow*) i=0; while [ ! -e "{tmp}/go" ] && [ $i -lt 40 ]; do sleep 0.1; i=$((i+1)); done ;;
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
            # The slow hooks run until the test writes go (4 s at most),
            # not for a fixed time that a loaded machine could use up.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (started(slow_id) and started(other_id)):
                time.sleep(0.02)
            try:
                check("409", self.nf(h, eid=slow_id)[0], 409)
                check("503", self.nf(h, event="x:ok")[0], 503)
            finally:
                h.write_file("go", "")
            for t in ts:
                t.join(10)
            os.unlink(h.path("go"))
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
            slow_id = uuid.uuid4().hex
            slow = threading.Thread(target=self.nf, args=(h,),
                                    kwargs={"event": "x:slow", "eid": slow_id})
            slow.start()
            try:
                self.assertTrue(harness.wait_until(lambda: started(slow_id), 10),
                                "x:slow did not start")
                h.proc.send_signal(signal.SIGTERM)
                self.assertIsNotNone(h.wait_log("SIGTERM received", timeout=10), h.log_text())
                time.sleep(0.2)
                check("503 draining", self.nf(h, conn=conn)[0], 503)
            finally:
                h.write_file("go", "")
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


# ---- the sweep: the admin side, a custom credential header, a reload, the
# commands, the hooks' /proc, every journal row (SQLite, or PostgreSQL with
# HOOKD_TEST_JOURNAL=postgresql). Each value below, and its base64 and hex
# forms, must appear nowhere; so must the near misses sent with a 401.
C = {
    "deploy": "s3cr3t-CANARY-deploy-%s" % TAG,   # token, token_header X-Deploy-Key
    "bearer": "s3cr3t-CANARY-bearer-%s" % TAG,   # token, Authorization: Bearer
    "sig": "s3cr3t-CANARY-sig-%s" % TAG,         # hmac, signature_header X-My-Sig
    "basic": "s3cr3t-CANARY-basic-%s" % TAG,     # basic, from a secret_file
    "slack": "s3cr3t-CANARY-slack-%s" % TAG,     # slack, from secret_env
    "legacy": "s3cr3t-CANARY-legacy-%s" % TAG,   # Slack's verification token, in the body
    "admin": "s3cr3t-CANARY-admin-%s" % TAG,     # [admin] token_file
    "ro": "s3cr3t-CANARY-readonly-%s" % TAG,     # [admin] readonly_token_file
    "templated": "s3cr3t-CANARY-templated-%s" % TAG,  # a value put where a name belongs
}

SWEEP_HOOK = sh("""
out="{tmp}/out/$HOOK_ENDPOINT.$HOOK_ID.$HOOK_ATTEMPT.$$"
env > "$out.env"
cat > "$out.stdin"
tr '\\000' '\\n' < /proc/self/environ > "$out.environ"
tr '\\000' ' ' < /proc/$PPID/cmdline > "$out.parent" 2>&1
cat /proc/$PPID/environ >> "$out.parent" 2>&1
env
exit 0
""")

SWEEP_CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
state_dir = {state}
{journal}
timeout = 5s
include_output = yes
pass_env = PATH LANG TZ

[admin]
listen = 127.0.0.1:0
token_file = {tmp}/admin-token
readonly_token_file = {tmp}/ro-token

[endpoint deploy]
path = /deploy
scheme = token
token_header = X-Deploy-Key
secret = %(deploy)s
event = x:deploy
pass_headers = X-Trace

[endpoint bearer]
path = /bearer
scheme = token
secret = %(bearer)s
event_header = X-Event
id_header = X-Request-Id
mode = async

[endpoint sig]
path = /sig
scheme = hmac
signature_header = X-My-Sig
secret = %(sig)s

[endpoint basic]
path = /basic
scheme = basic
secret_file = {tmp}/passwd
event = x:basic

[endpoint slack]
path = /slack
scheme = slack
secret_env = HOOKD_SWEEP_SLACK
"""


def forms(value):
    """value as it could come out: itself, base64 (standard and URL-safe,
    unpadded too) and hex (both cases)."""
    b = value.encode() if isinstance(value, str) else value
    b64 = base64.b64encode(b)
    return {b, b64, b64.rstrip(b"="), base64.urlsafe_b64encode(b).rstrip(b"="),
            b.hex().encode(), b.hex().upper().encode()}


# Where a delivery's body is, as it was sent.
BODY_KEPT = ("state/", "pg ", "cli show ", "cli journal export", "admin GET /api/v1/deliveries/")


class TestSecretsSweep(unittest.TestCase):
    """Every output hookd has, black-box, searched for canaries."""

    send = TestSecrets.send

    def setUp(self):
        self.answers = []
        self.needles = {}  # name -> set of byte strings
        self.places = {}   # where -> bytes collected

    def needle(self, name, value):
        self.needles.setdefault(name, set()).update(forms(value))

    def keep(self, where, data):
        self.places[where] = data if isinstance(data, bytes) else data.encode()

    def admin(self, h, method, path, headers=None, body=None):
        hd = dict(headers or {})
        if method == "POST":
            hd.setdefault("Origin", "http://127.0.0.1:%d" % h.admin_port)
        r = h.admin(method, path, body, hd)
        self.keep("admin %s %s %d" % (method, path, len(self.places)),
                  json.dumps(r.headers).encode() + b"\n" + r.raw)
        return r

    def deliver(self, h):
        # The token in a header the config names, in every letter case; with
        # credential headers of other kinds beside it and a harmless one.
        trace = "trace-canary-" + TAG
        for i, name in enumerate(("X-Deploy-Key", "x-deploy-key", "X-DEPLOY-KEY")):
            st, b = self.send(h, "POST", "/deploy", b"", {
                name: C["deploy"], "X-Trace": trace,
                "Authorization": "Bearer " + C["bearer"],
                "Cookie": "hookd_session=" + C["admin"]})
            self.assertEqual(st, 200, b)
        # A sender that also puts a token in the query string (no scheme
        # reads one): the path is all hookd keeps of the target.
        query = "s3cr3t-CANARY-query-%s" % TAG
        self.needle("query token", query)
        st, b = self.send(h, "POST", "/deploy?token=" + query, b"",
                          {"X-Deploy-Key": C["deploy"], "X-Trace": trace})
        self.assertEqual(st, 200, b)
        # Twice (joined: no longer the token), near misses, none at all.
        for extra in ({"X-Deploy-Key": C["deploy"], "x-deploy-key": C["deploy"]},
                      {"X-Deploy-Key": C["deploy"] + "Z"}, {"X-Deploy-Key": C["deploy"][:-1]},
                      {"X-Deploy-Key": " " + C["deploy"][1:]}, {}):
            head = "".join("%s: %s\r\n" % kv for kv in extra.items())
            st, _, b = h.raw_answer(("POST /deploy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                     "%s\r\n" % head).encode())
            self.answers.append(b)
            self.assertEqual(st, 401, (extra, b))
        self.needle("deploy near miss", C["deploy"] + "Z")
        self.needle("deploy near miss", C["deploy"][:-1])
        # Bearer, async: the journal holds the delivery before it runs.
        for auth in ("Bearer ", "bearer  "):
            st, b = self.send(h, "POST", "/bearer", {"n": 1}, {
                "Content-Type": "application/json", "Authorization": auth + C["bearer"],
                "X-Event": "x:bearer", "X-Request-Id": uuid.uuid4().hex})
            self.assertEqual(st, 202, b)
        st, b = self.send(h, "POST", "/bearer", {"n": 1}, {
            "Content-Type": "application/json", "Authorization": "Bearer " + C["bearer"] + "Z",
            "X-Event": "x:bearer"})
        self.assertEqual(st, 401, b)
        self.needle("bearer near miss", C["bearer"] + "Z")
        # hmac, the signature in a header the config names; a near miss.
        body = json.dumps({"event": "x:sig", "n": 2}).encode()
        mac = hexmac(C["sig"], body)
        for name in ("X-My-Sig", "x-my-sig"):
            st, b = self.send(h, "POST", "/sig", body, {"Content-Type": "application/json",
                                                         name: mac})
            self.assertEqual(st, 200, b)
        bad = mac[:-1] + ("0" if mac[-1] != "0" else "1")
        st, b = self.send(h, "POST", "/sig", body, {"Content-Type": "application/json",
                                                     "X-My-Sig": bad})
        self.assertEqual(st, 401, b)
        self.needle("signature sent", mac)
        self.needle("signature near miss", bad)
        # basic: the pair, right and nearly right.
        for pw, want in ((C["basic"], 200), (C["basic"] + "Z", 401)):
            pair = base64.b64encode(("alice:" + pw).encode()).decode()
            st, b = self.send(h, "POST", "/basic", {"n": 3}, {
                "Content-Type": "application/json", "Authorization": "Basic " + pair})
            self.assertEqual(st, want, b)
            self.needle("basic pair", "alice:" + pw)
        # slack: a slash command (a form) and an event, each with the legacy
        # token in the body.
        for ct, raw in (
                ("application/x-www-form-urlencoded",
                 ("token=%s&command=%%2Fdeploy&text=go&trigger_id=%s"
                  % (C["legacy"], uuid.uuid4().hex)).encode()),
                ("application/json", json.dumps({
                    "token": C["legacy"], "type": "event_callback",
                    "event_id": uuid.uuid4().hex, "event": {"type": "message"}}).encode())):
            ts = str(int(time.time()))
            sig = hexmac(C["slack"], b"v0:" + ts.encode() + b":" + raw)
            st, b = self.send(h, "POST", "/slack", raw, {
                "Content-Type": ct, "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": "v0=" + sig})
            self.assertEqual(st, 200, b)
            self.needle("slack signature", sig)

    def test_canary_sweep(self):
        os.environ.pop("HOOKD_SWEEP_SLACK", None)
        for name, value in C.items():
            self.needle(name, value)
        h = harness.Hookd(SWEEP_CONFIG % C, {"_default": SWEEP_HOOK},
                          env={"HOOKD_SWEEP_SLACK": C["slack"]}, start=False, wait_admin=True)
        with h:
            os.mkdir(h.path("out"))
            h.write_file("admin-token", C["admin"] + "\n", 0o600)
            h.write_file("ro-token", C["ro"] + "\n", 0o600)
            h.write_file("passwd", "alice:%s\n" % C["basic"], 0o600)
            h.start()
            port = h.wait_admin_port()
            self.deliver(h)
            # The async ones done.
            self.assertTrue(harness.wait_until(lambda: len(h.log_lines(
                "msg=delivery", "endpoint=bearer")) >= 2, 15), h.log_text())

            # The admin side: wrong tokens (near misses), a login, every call.
            near = C["admin"][:-1] + "Z"
            self.needle("admin near miss", near)
            self.assertEqual(self.admin(h, "GET", "/api/v1/deliveries",
                                        {"Authorization": "Bearer " + near}).status, 401)
            self.assertEqual(self.admin(h, "POST", "/api/v1/login",
                                        body=json.dumps({"token": near}).encode()).status, 401)
            r = self.admin(h, "POST", "/api/v1/login",
                           body=json.dumps({"token": C["admin"]}).encode())
            self.assertEqual(r.status, 200, r.raw)
            cookie = r.headers["set-cookie"].split(";")[0]
            self.needle("session cookie", cookie.split("=", 1)[1])
            del self.places[max(k for k in self.places if "/api/v1/login" in k)]
            auth = {"Cookie": cookie}
            lst = self.admin(h, "GET", "/api/v1/deliveries?limit=500", auth).json
            items = lst["deliveries"]
            self.assertGreaterEqual(len(items), 10, lst)
            for it in items:
                where = "/api/v1/deliveries/%s/%s" % (it["endpoint"], it["id"])
                self.assertEqual(self.admin(h, "GET", where, auth).status, 200)
            ro = {"Authorization": "Bearer " + C["ro"]}
            for path in ("/api/v1/deliveries", "/api/v1/rejections", "/api/v1/status",
                         "/metrics", "/healthz", "/"):
                self.assertEqual(self.admin(h, "GET", path, ro).status, 200, path)
            # A replay runs a hook from the journal's copy of the request.
            first = next(it for it in items if it["endpoint"] == "deploy")
            r = self.admin(h, "POST", "/api/v1/deliveries/deploy/%s/replay" % first["id"],
                           {"Authorization": "Bearer " + C["admin"]})
            self.assertEqual(r.status, 202, r.raw)
            self.assertIsNotNone(h.wait_log("msg=delivery", "id=" + first["id"], "attempts=2")
                                 or h.wait_log("id=" + first["id"], "attempt=2"), h.log_text())
            # A reload that fails on a secret put where a name belongs, then
            # hookd check of that file.
            with open(h.config_path) as f:
                good = f.read()
            broken = good.replace("secret_env = HOOKD_SWEEP_SLACK",
                                  "secret_env = " + C["templated"])
            self.assertNotEqual(good, broken)
            with open(h.config_path, "w") as f:
                f.write(broken)
            self.assertIn("reload failed", h.reload())
            chk = subprocess.run([HOOKD_BIN, "-c", h.config_path, "check"], capture_output=True,
                                 timeout=30, env=h.env)
            self.assertEqual(chk.returncode, 2, chk)
            self.keep("check broken", chk.stdout + chk.stderr)
            with open(h.config_path, "w") as f:
                f.write(good)
            self.assertIn("config reloaded", h.reload())
            # hookd's own /proc (readable here when the tests run as root).
            for what in ("environ", "cmdline"):
                try:
                    with open("/proc/%d/%s" % (h.pid, what), "rb") as f:
                        self.keep("hookd /proc " + what, f.read())
                except OSError:
                    pass
            h.stop()
            self.keep("log", h.log_text())

            # The commands, as text and as JSON.
            def cli(*args):
                p = subprocess.run([HOOKD_BIN, "-c", h.config_path] + list(args),
                                   capture_output=True, timeout=30, env=h.env)
                self.assertEqual(p.returncode, 0, (args, p))
                self.keep("cli " + " ".join(args), p.stdout + p.stderr)
                return p.stdout
            cli("check")
            cli("events", "--limit", "1000")
            rows = json.loads(cli("events", "--json", "--limit", "1000"))
            self.assertEqual(len(rows), len(items))
            for row in rows:
                cli("show", "--endpoint", row["endpoint"], row["id"])
                cli("show", "--json", "--endpoint", row["endpoint"], row["id"])
            cli("journal", "export")
            form = h.path("form.txt")
            with open(form, "w") as f:
                f.write(json.dumps({"token": C["legacy"], "command": "/x"}))
            cli("env", "--endpoint", "slack", "slash_command", form)

            # What the hooks saw, and every row of the journal.
            outs = sorted(os.listdir(h.path("out")))
            for name in outs:
                with open(h.path("out/" + name), "rb") as f:
                    self.keep("hook " + name, f.read())
            for name in os.listdir(h.state):
                path = os.path.join(h.state, name)
                self.assertEqual(os.stat(path).st_mode & 0o077, 0, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        self.keep("state/" + name, f.read())
            if h.journal_backend == "postgresql":
                self.needle("journal password", harness.pgserver.cluster().password())
                tables = [t for (t,) in h.journal_query(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()")]
                self.assertTrue(tables)
                for t in tables:
                    rows_text = h.journal_query('SELECT t::text FROM "%s" t' % t)
                    self.keep("pg " + t, "\n".join(r[0] for r in rows_text))
            else:
                self.assertIn("state/journal.db", self.places)
            for i, a in enumerate(self.answers):
                self.keep("answer %d" % i, a)

            # The outputs were collected and would show a header if kept: the
            # harmless one is in the journal, the API and the replayed hook's
            # environment; the hooks ran for every endpoint.
            trace = ("trace-canary-" + TAG).encode()
            journal = [k for k in self.places if k.startswith(("state/", "pg "))]
            self.assertTrue(any(trace in self.places[k] for k in journal), journal)
            self.assertTrue(any(trace in self.places[k] for k in self.places
                                if k.startswith("admin GET /api/v1/deliveries/deploy")))
            replayed = [k for k in self.places if k.startswith("hook deploy.%s.2." % first["id"])]
            self.assertTrue(replayed, outs)
            self.assertTrue(any(b"HOOK_HEADER_X_TRACE=trace-canary" in self.places[k]
                                for k in replayed))
            for ep in ("deploy", "bearer", "sig", "basic", "slack"):
                self.assertTrue(any(n.startswith(ep + ".") for n in outs), (ep, outs))
            self.assertIn(b"secret_env", self.places["check broken"])
            self.assertIn(b"reload failed", self.places["log"])
            self.assertTrue(any(b"go" in self.places[k] for k in self.places
                                if k.startswith("hook slack.") and k.endswith(".stdin")))
            # Slack's legacy token: in the body as sent, never a variable,
            # not even in the environment the API rebuilds from the journal.
            for k in [k for k in self.places if k.startswith("admin GET /api/v1/deliveries/s")]:
                env = json.dumps(json.loads(self.places[k].split(b"\n", 1)[1])["environment"])
                self.keep("environment of " + k, env)
            self.assertTrue(any(b"HOOK_COMMAND" in self.places[k] for k in self.places
                                if k.startswith("environment of ")))
            leaks = []
            for name, values in self.needles.items():
                for where, data in self.places.items():
                    if name == "legacy" and (where.startswith(BODY_KEPT) or
                                             where.endswith(".stdin")):
                        continue  # the raw body is kept whole (README, Slack)
                    if any(v in data for v in values):
                        leaks.append("%s in %s" % (name, where))
            self.assertEqual(leaks, [])
            print("swept %d places (%d bytes) for %d values in %d forms: none found"
                  % (len(self.places), sum(len(v) for v in self.places.values()),
                     len(self.needles), sum(len(v) for v in self.needles.values())))


if __name__ == "__main__":
    harness.main()
