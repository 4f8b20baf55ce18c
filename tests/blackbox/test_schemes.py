"""Black-box tests of hookd's verification schemes (issue #7, README "Senders and verification schemes"):
github, gitlab, standard, stripe, slack, hmac, token, basic, none; an
endpoint's fixed event and the empty body it allows; form bodies; Slack's
url_verification; several endpoints; allow_from and trusted_proxies.

Signatures are computed here with Python's hmac/hashlib (the official vectors
in tests/data/signature-vectors.json check these signers first).

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_schemes.py [-k NAME]
"""

import base64
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
from harness import (NF_CONFIG, NF_PREFIX, NF_TOKEN, Hookd, json_body,  # noqa: E402
                     marker_hook, new_id, parse_env, recv_response, sample_body, sh)

SERVER = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 5s
kill_grace = 1s
"""

# Records "endpoint|event|id" in {tmp}/ran, the env and stdin.
RECORD = sh(
    "echo \"$HOOK_ENDPOINT|$HOOK_EVENT|$HOOK_ID\" >> '{tmp}/ran'\n"
    "env > '{tmp}/env.txt'\n"
    "cat > '{tmp}/stdin.bin'")

MARK = b"payload-marker"


def hexmac(key, msg, alg=hashlib.sha256):
    if isinstance(key, str):
        key = key.encode()
    return hmac.new(key, msg, alg).hexdigest()


def b64mac(key, msg, alg=hashlib.sha256):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hmac.new(key, msg, alg).digest()).decode()


def github_sig(secret, body):
    return "sha256=" + hexmac(secret, body)


def standard_key(secret):
    s = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    return base64.b64decode(s)


def standard_sig(secret, msg_id, ts, body):
    return "v1," + b64mac(standard_key(secret), ("%s.%s." % (msg_id, ts)).encode() + body)


def stripe_sig(secret, ts, body):
    return hexmac(secret, ("%s." % ts).encode() + body)


def slack_sig(secret, ts, body):
    return "v0=" + hexmac(secret, ("v0:%s:" % ts).encode() + body)


def whsec(raw):
    return "whsec_" + base64.b64encode(raw).decode()


def one_byte_changed(body):
    assert MARK in body
    return body.replace(MARK, MARK[:-1] + b"s", 1)


class Req:
    """A signed request: body, headers (dict), the event and id it carries
    (id None: hookd generates one)."""

    def __init__(self, body, headers, event, did):
        self.body = body
        self.headers = dict(headers)
        self.event = event
        self.id = did

    def with_header(self, name, value):
        """A copy with header `name` set to value (None: removed)."""
        hdrs = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        if value is not None:
            hdrs[name] = value
        return Req(self.body, hdrs, self.event, self.id)


class SBase(harness.HookdTestCase):
    path = "/hook"

    def daemon(self, config, hooks=None, secrets=(), **kw):
        return Hookd(config, {"_default": RECORD} if hooks is None else hooks,
                     secrets=list(secrets) + [NF_TOKEN], **kw)

    def send(self, h, req, path=None):
        return h.post(path or self.path, req.body, req.headers)

    def assertDelivered(self, h, r, req, endpoint):
        """200, the hook ran once with req's event and id, got the raw body
        and no secret in its environment."""
        b = self.assertAnswer(r, 200)
        self.assertEqual(b.get("status"), "ok", r)
        self.assertEqual(b.get("event"), req.event)
        if req.id is not None:
            self.assertEqual(b.get("id"), req.id)
        else:
            self.assertTrue(b.get("id"), "no generated id: %r" % b)
        self.assertEqual(h.ran(), ["%s|%s|%s" % (endpoint, req.event, b.get("id"))])
        text = h.read("env.txt")
        self.assertIsNotNone(text, "the hook did not dump its environment")
        env = parse_env(text)
        self.assertEqual(env.get("HOOK_EVENT"), req.event)
        self.assertEqual(env.get("HOOK_ID"), b.get("id"))
        self.assertEqual(env.get("HOOK_ENDPOINT"), endpoint)
        self.assertEqual(h.read("stdin.bin", binary=True), req.body)
        for s in h.secrets:
            self.assertNotIn(s, text, "a secret reached the hook's environment")
        h.reset_ran()
        return env

    def assertRejected(self, h, r, what):
        b = self.assertAnswer(r, 401, what)
        self.assertEqual(b.get("status"), "rejected", r)
        self.assertNothingRan(h, what)

    def assertRefusedFromHead(self, h, req, what, reason=None):
        """Only req's head is sent, announcing a body of 1,000,000 bytes
        that never comes: 401 within 5 s (not after waiting for the body,
        which never comes; 5 s leaves room for a loaded machine), the
        connection closed, reason logged, no hook ran."""
        head = "POST %s HTTP/1.1\r\nHost: x\r\n" % self.path
        for k, v in req.headers.items():
            head += "%s: %s\r\n" % (k, v)
        head += "Content-Length: 1000000\r\n\r\n"
        s = h.socket()
        try:
            t0 = time.monotonic()
            s.sendall(head.encode())
            st, hdrs, body = recv_response(s, timeout=5.0)
            took = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(st, 401, "%s: no 401 from the head within 5 s: %r" % (what, body))
        self.assertLess(took, 5.0, what)
        self.assertEqual(hdrs.get("connection"), "close", what)
        self.assertEqual(json.loads(body).get("status"), "rejected", what)
        if reason:
            self.assertTrue(h.wait_log("unauthorized", reason, timeout=10.0),
                            "%s: no log line with %r" % (what, reason))
        self.assertNothingRan(h, what)


class SchemeMixin:
    """Generic tests for a scheme with credentials. A subclass sets scheme,
    secrets (primary, rotated), wrong, sig_header, extra (config lines) and
    defines make(secret, **opts) -> Req and malformed(req) -> [values]."""

    scheme = None
    extra = ""

    def config(self, secret=None):
        return SERVER + "\n[endpoint %s]\npath = %s\nscheme = %s\nsecret = %s\n%s" % (
            self.scheme, self.path, self.scheme, secret or self.secrets[0], self.extra)

    def test_valid_delivery(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            self.assertDelivered(h, self.send(h, req), req, self.scheme)
            req = self.make(self.secrets[0])
            self.assertDelivered(h, self.send(h, req), req, self.scheme)

    def test_body_changed_one_byte(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            req.body = one_byte_changed(req.body)
            self.assertRejected(h, self.send(h, req), "body changed")

    def test_wrong_secret(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.wrong)
            self.assertRejected(h, self.send(h, req), "wrong secret")

    def test_missing_header(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0]).with_header(self.sig_header, None)
            self.assertRejected(h, self.send(h, req), "no %s" % self.sig_header)

    def test_malformed_header(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            for value in self.malformed(req):
                r = self.send(h, req.with_header(self.sig_header, value))
                self.assertRejected(h, r, "%s: %r" % (self.sig_header, value))

    def test_malformed_refused_from_the_head(self):
        """A credential header whose shape is wrong is refused before any
        body byte is read."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            for value in self.malformed(req):
                self.assertRefusedFromHead(h, req.with_header(self.sig_header, value),
                                           "%s: %r" % (self.sig_header, value))

    def test_rotated_second_secret(self):
        conf = self.config(" ".join(self.secrets))
        with self.daemon(conf, secrets=self.secrets) as h:
            for s in reversed(self.secrets):
                req = self.make(s)
                self.assertDelivered(h, self.send(h, req), req, self.scheme)
            self.assertRejected(h, self.send(h, self.make(self.wrong)), "wrong secret")


class TimestampMixin:
    """standard, stripe, slack: make(secret, ts=...) sets the timestamp."""

    def test_timestamp_window(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            now = int(time.time())
            for off in (-360, 360, -3600, 86400):
                req = self.make(self.secrets[0], ts=now + off)
                self.assertRejected(h, self.send(h, req), "timestamp %+ds" % off)
            for off in (-240, 240, 0):
                req = self.make(self.secrets[0], ts=int(time.time()) + off)
                self.assertDelivered(h, self.send(h, req), req, self.scheme)

    def test_tolerance_setting(self):
        self.extra += "tolerance = 1m\n"
        try:
            with self.daemon(self.config(), secrets=self.secrets) as h:
                req = self.make(self.secrets[0], ts=int(time.time()) - 120)
                self.assertRejected(h, self.send(h, req), "2 minutes old, tolerance 1m")
                req = self.make(self.secrets[0], ts=int(time.time()) - 20)
                self.assertDelivered(h, self.send(h, req), req, self.scheme)
        finally:
            self.extra = type(self).extra

    def test_stale_timestamp_refused_from_the_head(self):
        """A timestamp outside the tolerance, or not one, is refused before
        any body byte is read, whatever the signature."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            now = int(time.time())
            for ts, reason in ((now - 360, "timestamp outside tolerance"),
                               (now + 360, "timestamp outside tolerance"),
                               ("abc", "malformed timestamp")):
                req = self.make(self.secrets[0], ts=ts)
                self.assertRefusedFromHead(h, req, "timestamp %r" % ts, reason)

    def test_timestamp_malformed(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            for ts in ("", "abc", "1e9", "-1", "99999999999999999999999"):
                req = self.make(self.secrets[0], ts=ts)
                self.assertRejected(h, self.send(h, req), "timestamp %r" % ts)


# --------------------------------------------------------------------------

class TestSigners(unittest.TestCase):
    """The signers above reproduce the official vectors."""

    def test_vectors(self):
        v = harness.load_vectors()
        g = v["github"]
        self.assertEqual(github_sig(g["secret"], g["body"].encode()), g["signature"])
        s = v["standard-webhooks"]
        self.assertEqual(standard_sig(s["secret"], s["webhook-id"], s["webhook-timestamp"],
                                      s["body"].encode()), s["webhook-signature"])
        sl = v["slack"]
        self.assertEqual(slack_sig(sl["secret"], sl["X-Slack-Request-Timestamp"],
                                   sl["body"].encode()), sl["X-Slack-Signature"])


class TestGithub(SchemeMixin, SBase):
    scheme = "github"
    secrets = ("gh-s3cret-primary-1a", "gh-s3cret-rotated-2b")
    wrong = "gh-s3cret-wrong-3c"
    sig_header = "X-Hub-Signature-256"

    def make(self, secret, event="push", obj=None):
        did = new_id("gh")
        body = json_body(obj or {"ref": "refs/heads/main", "marker": MARK.decode(),
                                 "repository": {"full_name": "o/r"}})
        return Req(body, {"Content-Type": "application/json", "X-GitHub-Event": event,
                          "X-GitHub-Delivery": did,
                          "X-Hub-Signature-256": github_sig(secret, body)}, event, did)

    def malformed(self, req):
        sig = req.headers["X-Hub-Signature-256"]
        hexpart = sig[len("sha256="):]
        return ["", "sha256=", sig[:-1], sig[:-2], "sha256=zz" + hexpart[2:],
                "sha1=" + hexpart, hexpart, sig + "00", "sha512=" + hexpart,
                "sha256=" + hexpart[:32]]

    def test_action_appended_and_fallback(self):
        hooks = {"pull_request": RECORD, "_default": marker_hook("_default")}
        with self.daemon(self.config(), hooks=hooks, secrets=self.secrets) as h:
            req = self.make(self.secrets[0], "pull_request",
                            {"action": "opened", "number": 7, "marker": MARK.decode()})
            req.event = "pull_request:opened"
            env = self.assertDelivered(h, self.send(h, req), req, "github")
            self.assertEqual(env.get("HOOK_HOOK"), "pull_request")
            self.assertEqual(env.get("HOOK_ACTION"), "opened")
            self.assertEqual(env.get("HOOK_NUMBER"), "7")
            # a non-string action is not appended
            req = self.make(self.secrets[0], "pull_request", {"action": 5, "m": MARK.decode()})
            self.assertDelivered(h, self.send(h, req), req, "github")

    def test_event_header_checked(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            for bad in ("../x", "a/b", "", ".x"):
                req = self.make(self.secrets[0], event=bad)
                self.assertAnswer(self.send(h, req), 400, "X-GitHub-Event %r" % bad)
            req = self.make(self.secrets[0]).with_header("X-GitHub-Event", None)
            self.assertAnswer(self.send(h, req), 400, "no X-GitHub-Event")
            self.assertNothingRan(h)

    def test_gitea_form_delivery(self):
        obj = {"ref": "refs/heads/dev", "marker": MARK.decode(), "pusher": {"login": "me"}}
        body = urllib.parse.urlencode({"payload": json.dumps(obj)}).encode()
        with self.daemon(self.config(), secrets=self.secrets) as h:
            did = new_id("gitea")
            req = Req(body, {"Content-Type": "application/x-www-form-urlencoded",
                             "X-GitHub-Event": "push", "X-Gitea-Event": "push",
                             "X-GitHub-Delivery": did,
                             "X-Hub-Signature-256": github_sig(self.secrets[0], body)},
                      "push", did)
            env = self.assertDelivered(h, self.send(h, req), req, "github")
            self.assertEqual(env.get("HOOK_REF"), "refs/heads/dev")
            self.assertEqual(env.get("HOOK_PUSHER_LOGIN"), "me")
            self.assertNotIn("HOOK_PAYLOAD", env)
            # the signature is over the raw form body
            bad = Req(one_byte_changed(body), req.headers, "push", did)
            self.assertRejected(h, self.send(h, bad), "form body changed")
            # a signed form whose payload is not JSON
            junk = b"payload=not%20json"
            req = Req(junk, dict(req.headers, **{
                "X-GitHub-Delivery": new_id(),
                "X-Hub-Signature-256": github_sig(self.secrets[0], junk)}), "push", None)
            self.assertAnswer(self.send(h, req), 400, "payload field not JSON")
            self.assertNothingRan(h)

    def test_sha1_only_with_allow_sha1(self):
        def sha1_req(secret):
            req = self.make(secret).with_header("X-Hub-Signature-256", None)
            return req.with_header("X-Hub-Signature",
                                   "sha1=" + hexmac(secret, req.body, hashlib.sha1))
        with self.daemon(self.config(), secrets=self.secrets) as h:
            self.assertRejected(h, self.send(h, sha1_req(self.secrets[0])), "sha1 not allowed")
        self.extra = "allow_sha1 = yes\n"
        try:
            with self.daemon(self.config(), secrets=self.secrets) as h:
                req = sha1_req(self.secrets[0])
                self.assertDelivered(h, self.send(h, req), req, "github")
                self.assertRejected(h, self.send(h, sha1_req(self.wrong)), "sha1 wrong secret")
        finally:
            self.extra = ""

    def test_official_vector(self):
        """GitHub's documented example, as is: verified, then 400 because
        "Hello, World!" is not JSON; one byte off: 401. The vector's secret
        holds spaces, so it is given through secret_file as one secret."""
        v = harness.load_vectors()["github"]
        conf = (SERVER + "\n[endpoint github]\npath = /hook\nscheme = github\n"
                "secret_file = {tmp}/gh.secret\n")
        with self.daemon(conf, secrets=[v["secret"]], files={"gh.secret": v["secret"] + "\n"}) as h:
            hdrs = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
                    "X-GitHub-Delivery": new_id(), v["header"]: v["signature"]}
            r = h.post("/hook", v["body"].encode(), hdrs)
            self.assertAnswer(r, 400, "the vector verifies, then its body is not JSON "
                              "(401 here: the secret with spaces did not verify)")
            r = h.post("/hook", b"Hello, World?", hdrs)
            self.assertAnswer(r, 401)
            self.assertNothingRan(h)


class TestGitlab(SchemeMixin, SBase):
    scheme = "gitlab"
    secrets = ("gl-t0ken-primary-1", "gl-t0ken-rotated-2")
    wrong = "gl-t0ken-wrong-3"
    sig_header = "X-Gitlab-Token"

    def make(self, secret, obj=None, event="merge_request:open", idem=True):
        did = new_id("idem")
        uuid_ = new_id("uuid")
        body = json_body(obj or {"object_kind": "merge_request", "marker": MARK.decode(),
                                 "object_attributes": {"action": "open", "iid": 12}})
        hdrs = {"Content-Type": "application/json", "X-Gitlab-Token": secret,
                "X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Event-UUID": uuid_}
        if idem:
            hdrs["Idempotency-Key"] = did
        return Req(body, hdrs, event, did if idem else uuid_)

    def test_body_changed_one_byte(self):
        """The token covers no body bytes: a changed body still verifies."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            req.body = one_byte_changed(req.body)
            self.assertDelivered(h, self.send(h, req), req, "gitlab")

    def malformed(self, req):
        t = req.headers["X-Gitlab-Token"]
        return ["", t[:-1], t + "x", t.upper(), t + " " + t, "Bearer " + t]

    def test_event_and_id_variants(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0], idem=False)
            env = self.assertDelivered(h, self.send(h, req), req, "gitlab")
            self.assertEqual(env.get("HOOK_OBJECT_ATTRIBUTES_IID"), "12")
            req = self.make(self.secrets[0], obj={"object_kind": "push", "m": MARK.decode(),
                                                  "ref": "refs/heads/x"}, event="push")
            env = self.assertDelivered(h, self.send(h, req), req, "gitlab")
            self.assertEqual(env.get("HOOK_REF"), "refs/heads/x")
            req = self.make(self.secrets[0], obj={"m": MARK.decode()})
            self.assertAnswer(self.send(h, req), 400, "no object_kind")
            self.assertNothingRan(h)


class TestStandard(TimestampMixin, SchemeMixin, SBase):
    scheme = "standard"
    secrets = (whsec(b"standard-webhooks-key-primary-32"),
               whsec(b"standard-webhooks-key-rotated-32"))
    wrong = whsec(b"standard-webhooks-key-wrong!!-32")
    sig_header = "webhook-signature"

    def make(self, secret, ts=None, obj=None, msg_id=None, event="invoice.paid"):
        ts = int(time.time()) if ts is None else ts
        msg_id = msg_id or new_id("msg")
        body = json_body(obj or {"type": event, "marker": MARK.decode(),
                                 "data": {"amount": 100}})
        sig = standard_sig(secret, msg_id, ts, body) if isinstance(ts, int) else \
            standard_sig(secret, msg_id, int(time.time()), body)
        return Req(body, {"Content-Type": "application/json", "webhook-id": msg_id,
                          "webhook-timestamp": str(ts), "webhook-signature": sig},
                   event, msg_id)

    def malformed(self, req):
        sig = req.headers["webhook-signature"]
        val = sig[3:]
        return ["", "v1,", "v1," + val[:-4], "v1,!!!" + val[3:], "v2," + val,
                "v1" + val, val, "v1;" + val, "v1a," + val, "v1,%s v1a,%s" % (val[:-4], val)]

    def test_several_entries(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            good = req.headers["webhook-signature"]
            bad = self.make(self.wrong, msg_id=req.id).headers["webhook-signature"]
            req = req.with_header("webhook-signature", "v2,abc %s %s" % (bad, good))
            self.assertDelivered(h, self.send(h, req), req, "standard")
            req = self.make(self.secrets[0])
            req = req.with_header("webhook-signature",
                                  "v2," + req.headers["webhook-signature"][3:])
            self.assertRejected(h, self.send(h, req), "only a v2 entry")

    def test_id_and_timestamp_are_signed(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            self.assertRejected(h, self.send(h, req.with_header("webhook-id", new_id())),
                                "other webhook-id")
            ts = int(req.headers["webhook-timestamp"]) - 1
            self.assertRejected(h, self.send(h, req.with_header("webhook-timestamp", str(ts))),
                                "other timestamp")
            self.assertRejected(h, self.send(h, req.with_header("webhook-timestamp", None)),
                                "no timestamp")
            self.assertRejected(h, self.send(h, req.with_header("webhook-id", None)),
                                "no webhook-id")

    def test_svix_header_names(self):
        """Senders built on Svix sign the same way under svix-* names: one
        family or the other, never a mix."""
        def svix(req):
            return {("svix-" + k[len("webhook-"):] if k.startswith("webhook-") else k): v
                    for k, v in req.headers.items()}
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            self.assertDelivered(h, self.send(h, Req(req.body, svix(req), req.event, req.id)),
                                 req, "standard")
            req = self.make(self.secrets[0])
            mixed = dict(svix(req), **{"webhook-id": req.id})
            del mixed["svix-id"]
            self.assertRejected(h, h.post(self.path, req.body, mixed), "webhook-id with svix-*")
            wrong = svix(self.make(self.wrong, msg_id=req.id))
            self.assertRejected(h, h.post(self.path, req.body, wrong), "svix-* wrong secret")

    def test_whsec_prefix_optional(self):
        bare = self.secrets[0][len("whsec_"):]
        with self.daemon(self.config(bare), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            self.assertDelivered(h, self.send(h, req), req, "standard")

    def test_secret_not_base64_is_config_error(self):
        with self.daemon(self.config("whsec_not*base64!"), start=False) as h:
            p = harness.run_cli(["check"], config=h.config_path)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn(b"hookd.ini", p.stderr)
            p = harness.run_cli(["serve"], config=h.config_path, timeout=10)
            self.assertEqual(p.returncode, 2, p)

    def test_official_vector(self):
        v = harness.load_vectors()["standard-webhooks"]
        conf = SERVER + "\n[endpoint standard]\npath = /hook\nscheme = standard\nsecret = %s\n" \
            % v["secret"]
        body = v["body"].encode()
        with self.daemon(conf, secrets=[v["secret"]]) as h:
            old = {"Content-Type": "application/json", "webhook-id": v["webhook-id"],
                   "webhook-timestamp": v["webhook-timestamp"],
                   "webhook-signature": v["webhook-signature"]}
            self.assertRejected(h, h.post("/hook", body, old), "the vector's 2021 timestamp")
            ts = int(time.time())
            fresh = dict(old, **{"webhook-timestamp": str(ts),
                                 "webhook-signature": standard_sig(v["secret"], v["webhook-id"],
                                                                   ts, body)})
            r = h.post("/hook", body, fresh)
            self.assertAnswer(r, 400, "verified, then 400: the vector's body has no `type`")
            bad = dict(fresh, **{"webhook-signature": v["invalid-signature"]})
            self.assertRejected(h, h.post("/hook", body, bad), "the vector's invalid signature")


class TestStripe(TimestampMixin, SchemeMixin, SBase):
    scheme = "stripe"
    secrets = ("whsec_stripePrimaryS3cret1", "whsec_stripeRotatedS3cret2")
    wrong = "whsec_stripeWrongS3cret3"
    sig_header = "Stripe-Signature"

    def make(self, secret, ts=None, event="payment_intent.succeeded"):
        ts = int(time.time()) if ts is None else ts
        did = "evt_" + new_id("s")[4:]
        body = json_body({"id": did, "object": "event", "type": event,
                          "marker": MARK.decode(), "data": {"object": {"amount": 2000}}})
        sign_ts = ts if isinstance(ts, int) else int(time.time())
        return Req(body, {"Content-Type": "application/json; charset=utf-8",
                          "Stripe-Signature": "t=%s,v1=%s" % (ts, stripe_sig(secret, sign_ts, body))},
                   event, did)

    def malformed(self, req):
        hdr = req.headers["Stripe-Signature"]
        t, v1 = hdr.split(",")
        sig = v1[3:]
        return ["", t, v1, t + ",v1=", t + ",v1=" + sig[:-1], t + ",v1=zz" + sig[2:],
                t + ",v0=" + sig, "t=,v1=" + sig, t + "," + sig, t + ",v1=" + sig.upper()[:10]]

    def test_several_v1(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            t, v1 = req.headers["Stripe-Signature"].split(",")
            bad = "v1=" + "0" * 64
            req = req.with_header("Stripe-Signature", "%s,%s,v0=%s,%s" % (t, bad, "1" * 64, v1))
            self.assertDelivered(h, self.send(h, req), req, "stripe")

    def test_secret_used_as_is(self):
        """The key is the whole string, whsec_ included, not base64-decoded."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            ts = int(time.time())
            try:
                decoded = base64.b64decode(self.secrets[0][6:] + "==")
            except ValueError:
                decoded = b"x"
            sig = hexmac(decoded, ("%d." % ts).encode() + req.body)
            req = req.with_header("Stripe-Signature", "t=%d,v1=%s" % (ts, sig))
            self.assertRejected(h, self.send(h, req), "key decoded")


class TestSlack(TimestampMixin, SchemeMixin, SBase):
    scheme = "slack"
    secrets = ("8f742231b10e8888abcd99yyyzzz85a5-primary", "slack-signing-rotated-0002")
    wrong = "slack-signing-wrong-0003"
    sig_header = "X-Slack-Signature"

    def make(self, secret, ts=None, obj=None, event=None, did=True,
             ctype="application/json", body=None):
        ts = int(time.time()) if ts is None else ts
        if body is None:
            if obj is None:
                did = "Ev" + new_id("x")[4:]
                obj = {"type": "event_callback", "event_id": did, "team_id": "T1",
                       "marker": MARK.decode(), "event": {"type": "app_mention", "text": "hi"}}
                event = "event_callback:app_mention"
            body = json_body(obj)
        sign_ts = ts if isinstance(ts, int) else int(time.time())
        return Req(body, {"Content-Type": ctype, "X-Slack-Request-Timestamp": str(ts),
                          "X-Slack-Signature": slack_sig(secret, sign_ts, body)},
                   event, did if isinstance(did, str) else None)

    def malformed(self, req):
        sig = req.headers["X-Slack-Signature"]
        h = sig[3:]
        return ["", "v0=", sig[:-1], "v0=zz" + h[2:], "v1=" + h, h, "v0:" + h, sig + "ab"]

    def test_timestamp_header_missing(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0]).with_header("X-Slack-Request-Timestamp", None)
            self.assertRejected(h, self.send(h, req), "no timestamp header")

    def test_url_verification(self):
        obj = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3g",
               "type": "url_verification", "marker": MARK.decode()}
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0], obj=obj)
            r = self.send(h, req)
            b = self.assertAnswer(r, 200)
            self.assertEqual(b.get("status"), "ok")
            self.assertEqual(b.get("challenge"), obj["challenge"])
            self.assertNothingRan(h, "url_verification runs no hook")
            req = self.make(self.wrong, obj=obj)
            self.assertRejected(h, self.send(h, req), "url_verification, wrong secret")
            req = self.make(self.secrets[0], obj=obj, ts=int(time.time()) - 3600)
            self.assertRejected(h, self.send(h, req), "url_verification, old")

    def test_slash_command_form(self):
        v = harness.load_vectors()["slack"]
        body = v["body"].encode()
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0], body=body,
                            ctype="application/x-www-form-urlencoded")
            r = self.send(h, req)
            b = self.assertAnswer(r, 200)
            self.assertEqual(b.get("status"), "ok", r)
            env = self.hook_env(h)
            self.assertIsNotNone(env, "no hook ran")
            self.assertEqual(env.get("HOOK_COMMAND"), "/webhook-collect")
            self.assertEqual(env.get("HOOK_TEAM_DOMAIN"), "testteamnow")
            self.assertEqual(env.get("HOOK_TEXT"), "")
            self.assertEqual(env.get("HOOK_RESPONSE_URL"),
                             "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/"
                             "96rGlfmibIGlgcZRskXaIFfN")
            self.assertRegex(env.get("HOOK_EVENT", ""), r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
            self.assertEqual(h.read("stdin.bin", binary=True), body, "stdin is the raw form")

    def test_interactivity_form(self):
        obj = {"type": "block_actions", "user": {"id": "U123"}, "trigger_id": "t.1",
               "marker": MARK.decode()}
        body = urllib.parse.urlencode({"payload": json.dumps(obj)}).encode()
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0], body=body, event="block_actions",
                            ctype="application/x-www-form-urlencoded")
            env = self.assertDelivered(h, self.send(h, req), req, "slack")
            self.assertEqual(env.get("HOOK_USER_ID"), "U123")
            self.assertRejected(h, self.send(h, Req(one_byte_changed(body), req.headers,
                                                    req.event, None)), "form changed")

    def test_official_vector(self):
        v = harness.load_vectors()["slack"]
        conf = SERVER + "\n[endpoint slack]\npath = /hook\nscheme = slack\nsecret = %s\n" \
            % v["secret"]
        body = v["body"].encode()
        with self.daemon(conf, secrets=[v["secret"]]) as h:
            old = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Slack-Request-Timestamp": v["X-Slack-Request-Timestamp"],
                   "X-Slack-Signature": v["X-Slack-Signature"]}
            self.assertRejected(h, h.post("/hook", body, old), "the vector's 2018 timestamp")
            ts = int(time.time())
            fresh = dict(old, **{"X-Slack-Request-Timestamp": str(ts),
                                 "X-Slack-Signature": slack_sig(v["secret"], ts, body)})
            r = h.post("/hook", body, fresh)
            self.assertAnswer(r, 200, "the vector's request, freshly signed")
            self.assertTrue(h.read("env.txt"), "no hook ran")


class TestHmacSha256Hex(SchemeMixin, SBase):
    """scheme = hmac with every default: X-Signature, sha256, hex, body `event`."""
    scheme = "hmac"
    secrets = ("hmac-256-primary-key", "hmac-256-rotated-key")
    wrong = "hmac-256-wrong-key"
    sig_header = "X-Signature"

    def make(self, secret, event="order:created"):
        body = json_body({"event": event, "marker": MARK.decode(), "order": {"id": 9}})
        return Req(body, {"Content-Type": "application/json",
                          "X-Signature": hexmac(secret, body)}, event, None)

    def malformed(self, req):
        sig = req.headers["X-Signature"]
        raw = bytes.fromhex(sig)
        return ["", sig[:-1], "zz" + sig[2:], "sha256=" + sig, base64.b64encode(raw).decode(),
                sig[:32]]

    def test_event_field_missing(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            body = json_body({"type": "x", "marker": MARK.decode()})
            r = h.post(self.path, body, {"X-Signature": hexmac(self.secrets[0], body)})
            self.assertAnswer(r, 400, "no `event` in the body")
            self.assertNothingRan(h)


class TestHmacSha512Base64(SchemeMixin, SBase):
    scheme = "hmac"
    secrets = ("hmac-512-primary-key", "hmac-512-rotated-key")
    wrong = "hmac-512-wrong-key"
    sig_header = "X-Payload-Signature"
    extra = ("signature_header = X-Payload-Signature\nalgorithm = sha512\nencoding = base64\n"
             "signature_prefix = sha512=\nevent_header = X-Event-Name\n"
             "id_header = X-Delivery-Id\n")

    def make(self, secret, event="order.shipped"):
        did = new_id("h512")
        body = json_body({"event": "ignored:field", "marker": MARK.decode(), "n": 1})
        return Req(body, {"Content-Type": "application/vnd.shop+json",
                          "X-Payload-Signature": "sha512=" + b64mac(secret, body, hashlib.sha512),
                          "X-Event-Name": event, "X-Delivery-Id": did}, event, did)

    def malformed(self, req):
        sig = req.headers["X-Payload-Signature"]
        b64 = sig[len("sha512="):]
        raw = base64.b64decode(b64)
        return ["", "sha512=", b64, "sha256=" + b64, sig[:-4], "sha512=" + raw.hex(),
                "sha512=!!" + b64[2:], "SHA512=" + b64, "sha512=" + b64[:44]]

    def test_event_header_missing_or_invalid(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0]).with_header("X-Event-Name", None)
            self.assertAnswer(self.send(h, req), 400, "event_header set, header missing")
            for bad in ("../x", "", "a b"):
                req = self.make(self.secrets[0], event=bad)
                self.assertAnswer(self.send(h, req), 400, "X-Event-Name %r" % bad)
            self.assertNothingRan(h)


class TestHmacSha1Hex(SchemeMixin, SBase):
    """algorithm = sha1 (for senders that still sign so), hex, a prefix."""
    scheme = "hmac"
    secrets = ("hmac-1-primary-key", "hmac-1-rotated-key")
    wrong = "hmac-1-wrong-key"
    sig_header = "X-Signature"
    extra = "algorithm = sha1\nsignature_prefix = sha1=\n"

    def make(self, secret, event="order:paid"):
        body = json_body({"event": event, "marker": MARK.decode()})
        return Req(body, {"Content-Type": "application/json",
                          "X-Signature": "sha1=" + hexmac(secret, body, hashlib.sha1)},
                   event, None)

    def malformed(self, req):
        sig = req.headers["X-Signature"]
        hexpart = sig[len("sha1="):]
        return ["", hexpart, "sha256=" + hexpart, sig[:-1], "sha1=" + hexpart.upper()[:-2] + "zz",
                "sha1=" + hexmac(self.secrets[0], req.body)]


class TestNone(SBase):

    CONF = SERVER + ("\n[endpoint open]\npath = /hook\nscheme = none\n"
                     "event_field = meta.kind\nid_header = X-Request-Id\n")

    def test_no_credentials_needed(self):
        with self.daemon(self.CONF) as h:
            did = new_id("none")
            body = json_body({"meta": {"kind": "job:done"}, "event": "not-this"})
            req = Req(body, {"Content-Type": "application/json", "X-Request-Id": did},
                      "job:done", did)
            self.assertDelivered(h, self.send(h, req), req, "open")
            body = json_body({"meta": {}, "event": "x"})
            self.assertAnswer(h.post("/hook", body, {"X-Request-Id": new_id()}), 400,
                              "meta.kind missing")
            body = json_body({"meta": {"kind": 3}})
            self.assertAnswer(h.post("/hook", body, {}), 400, "meta.kind not a string")
            self.assertNothingRan(h)

    def test_event_header(self):
        conf = SERVER + "\n[endpoint open]\npath = /hook\nscheme = none\nevent_header = X-Ev\n"
        with self.daemon(conf) as h:
            body = json_body({"event": "ignored"})
            req = Req(body, {"X-Ev": "build:done"}, "build:done", None)
            self.assertDelivered(h, self.send(h, req), req, "open")
            self.assertAnswer(h.post("/hook", body, {}), 400, "X-Ev missing")
            self.assertNothingRan(h)

    def test_scheme_must_be_explicit(self):
        for text in ("[endpoint a]\npath = /a\n",
                     "[endpoint a]\npath = /a\nscheme = github\n",
                     "[endpoint a]\npath = /a\nscheme = hmac\n"):
            with self.subTest(config=text), self.daemon(text, start=False) as h:
                p = harness.run_cli(["check"], config=h.config_path)
                self.assertEqual(p.returncode, 2, "an endpoint without a secret: %r" % (p,))


def libcrypto_mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libcrypto.so" in f.read()


class TestLibcryptoOnDemand(SBase):
    """libcrypto is loaded by the first MAC hookd computes (src/crypto.h):
    not at start, not for an endpoint that verifies nothing; a token is
    compared by HMAC, so its first request loads it, and it stays."""

    def test_loaded_by_the_first_verification(self):
        conf = (SERVER + "\n[endpoint open]\npath = /open\nscheme = none\n"
                "\n[endpoint token]\npath = /hook\nscheme = token\nsecret = tok-4f1c9a\n")
        with self.daemon(conf, secrets=["tok-4f1c9a"]) as h:
            pid = h.proc.pid
            self.assertFalse(libcrypto_mapped(pid), "libcrypto mapped at start")
            body = json_body({"event": "a:b"})
            req = Req(body, {"Content-Type": "application/json"}, "a:b", None)
            self.assertDelivered(h, self.send(h, req, "/open"), req, "open")
            self.assertFalse(libcrypto_mapped(pid), "libcrypto mapped for scheme = none")
            req = Req(body, {"Content-Type": "application/json",
                             "Authorization": "Bearer tok-wrong"}, "a:b", None)
            self.assertRejected(h, self.send(h, req), "a wrong token")
            self.assertTrue(libcrypto_mapped(pid), "the token's compare did not load it")
            req = req.with_header("Authorization", "Bearer tok-4f1c9a")
            self.assertDelivered(h, self.send(h, req), req, "token")


class TestToken(SchemeMixin, SBase):
    """scheme = token with every default: Authorization: Bearer <token>, the
    event in the body's `event`. The token covers no body bytes."""
    scheme = "token"
    secrets = ("tok-primary-4f1c9a", "tok-rotated-7d2e5b")
    wrong = "tok-wrong-0a0a0a"
    sig_header = "Authorization"

    def make(self, secret, event="alert:fired", prefix="Bearer "):
        body = json_body({"event": event, "marker": MARK.decode(), "n": 1})
        return Req(body, {"Content-Type": "application/json",
                          "Authorization": prefix + secret}, event, None)

    def test_body_changed_one_byte(self):
        """A shared token covers no body bytes: a changed body still verifies."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            req.body = one_byte_changed(req.body)
            self.assertDelivered(h, self.send(h, req), req, "token")

    def malformed(self, req):
        t = self.secrets[0]
        return ["", "Bearer", "Bearer ", t, "Bearer" + t, "Token " + t, "Basic " + t,
                "Bearer " + t[:-1], "Bearer " + t + "x", "Bearer " + t.upper(),
                "Bearer " + t + " " + t, "Bearer Bearer " + t]

    def test_prefix_any_case_and_blanks(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            for prefix in ("bearer ", "BEARER ", "Bearer  ", "Bearer\t"):
                req = self.make(self.secrets[0], prefix=prefix)
                self.assertDelivered(h, self.send(h, req), req, "token")

    def test_401_says_nothing_and_no_challenge(self):
        """The answer is the same whatever was wrong; a token sender answers
        no challenge, so none is sent (README "Senders and verification
        schemes"); the log says why."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            answers = []
            for value in (None, "Token x", "Bearer " + self.wrong):
                r = self.send(h, self.make(self.secrets[0]).with_header("Authorization", value))
                self.assertRejected(h, r, repr(value))
                self.assertIsNone(r.header("WWW-Authenticate"), r)
                answers.append(r.raw)
            self.assertEqual(len(set(answers)), 1, answers)
            for why in ("token missing", "token prefix missing", "token mismatch"):
                # The log is read as it is written: wait for the last lines.
                self.assertTrue(h.wait_log("msg=rejected", regex='reason="?%s' % why),
                                "no log line says %s" % why)

    def test_event_field_and_id_header(self):
        conf = self.config() + "event_field = alert.kind\nid_header = X-Alert-Id\n"
        with self.daemon(conf, secrets=self.secrets) as h:
            did = new_id("tok")
            body = json_body({"alert": {"kind": "disk:full"}, "event": "ignored"})
            req = Req(body, {"Authorization": "Bearer " + self.secrets[0], "X-Alert-Id": did},
                      "disk:full", did)
            self.assertDelivered(h, self.send(h, req), req, "token")


class TestTokenApiKey(SchemeMixin, SBase):
    """scheme = token in an API-key header: token_header, no prefix by
    default there; the header is a credential like Authorization."""
    scheme = "token"
    secrets = ("key-primary-93be1d", "key-rotated-4c7a20")
    wrong = "key-wrong-111111"
    sig_header = "X-Hookd-Key"
    extra = "token_header = X-Hookd-Key\n"

    def make(self, secret, event="ci:done"):
        body = json_body({"event": event, "marker": MARK.decode()})
        return Req(body, {"Content-Type": "application/json", "X-Hookd-Key": secret},
                   event, None)

    def test_body_changed_one_byte(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            req.body = one_byte_changed(req.body)
            self.assertDelivered(h, self.send(h, req), req, "token")

    def malformed(self, req):
        t = self.secrets[0]
        return ["", "Bearer " + t, t[:-1], t + "x", " " + t + "x"]

    def test_check_names_the_header_and_prefix(self):
        with self.daemon(self.config(), secrets=self.secrets, start=False) as h:
            p = h.cli("check")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(' token_header=X-Hookd-Key token_prefix=""', p.stdout)

    def test_custom_prefix(self):
        self.extra = "token_header = X-Hookd-Key\ntoken_prefix = Token\n"
        try:
            with self.daemon(self.config(), secrets=self.secrets) as h:
                t = self.secrets[0]
                req = self.make(t).with_header("X-Hookd-Key", "Token " + t)
                self.assertDelivered(h, self.send(h, req), req, "token")
                for bad in (t, "Bearer " + t, "Token" + t):
                    r = self.send(h, self.make(t).with_header("X-Hookd-Key", bad))
                    self.assertRejected(h, r, repr(bad))
        finally:
            self.extra = type(self).extra

    def test_never_journaled_nor_passed(self):
        """The token header is never stored, never given to a hook, and
        pass_headers cannot name it."""
        conf = (self.config().replace("[server]\n", "[server]\nstate_dir = {state}\n")
                + "pass_headers = X-Other\n")
        with self.daemon(conf, secrets=self.secrets) as h:
            req = self.make(self.secrets[0]).with_header("X-Other", "visible")
            env = self.assertDelivered(h, self.send(h, req), req, "token")
            self.assertEqual(env.get("HOOK_HEADER_X_OTHER"), "visible")
            self.assertNotIn("HOOK_HEADER_X_HOOKD_KEY", env)
            out = h.cli("show", h.events()[0]["id"]).stdout
            self.assertIn("X-Other", out)
            self.assertNotIn("X-Hookd-Key", out)
            self.assertNotIn(self.secrets[0], out)
        conf = self.config() + "pass_headers = x-hookd-key\n"
        with self.daemon(conf, start=False) as h:
            p = harness.run_cli(["check"], config=h.config_path)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("pass_headers names x-hookd-key, which carries a credential",
                          p.stderr.decode())


class TestBasic(SchemeMixin, SBase):
    """scheme = basic: user:password lines of a secret file (RFC 7617)."""
    scheme = "basic"
    secrets = ("alertbot:pw-primary-5e6f", "alertbot:pw-rotated-8a9b")
    wrong = "alertbot:pw-wrong-0000"
    sig_header = "Authorization"

    def config(self, secret=None):
        lines = (secret or self.secrets[0]).split(" ")
        self.secret_file = "\n".join(lines) + "\n"
        return SERVER + ("\n[endpoint basic]\npath = %s\nscheme = basic\n"
                         "secret_file = {tmp}/users\n%s" % (self.path, self.extra))

    def daemon(self, config, hooks=None, secrets=(), **kw):
        files = dict(kw.pop("files", {}))
        files.setdefault("users", self.secret_file)
        return super().daemon(config, hooks, secrets, files=files, **kw)

    @staticmethod
    def basic(pair):
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def make(self, secret, event="monitor:down"):
        body = json_body({"event": event, "marker": MARK.decode()})
        return Req(body, {"Content-Type": "application/json", "Authorization": self.basic(secret)},
                   event, None)

    def test_body_changed_one_byte(self):
        with self.daemon(self.config(), secrets=self.secrets) as h:
            req = self.make(self.secrets[0])
            req.body = one_byte_changed(req.body)
            self.assertDelivered(h, self.send(h, req), req, "basic")

    def malformed(self, req):
        good = req.headers["Authorization"]
        b64 = good[len("Basic "):]
        user, pw = self.secrets[0].split(":", 1)
        return ["", "Basic", "Basic ", b64, "Bearer " + b64, "Basic " + b64[:-2],
                "Basic !" + b64[1:], self.basic(user + ":" + pw[:-1]), self.basic(user),
                self.basic("other:" + pw), self.basic(user.upper() + ":" + pw),
                self.basic(user + ":" + pw + ":"), "Basic " + self.secrets[0]]

    def test_challenge_on_401(self):
        """A 401 carries the Basic challenge (RFC 7617): curl --anyauth and
        senders that wait for a challenge then send their credentials."""
        with self.daemon(self.config(), secrets=self.secrets) as h:
            r = self.send(h, self.make(self.secrets[0]).with_header("Authorization", None))
            self.assertRejected(h, r, "no credentials")
            self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="hookd", charset="UTF-8"')
            r = self.send(h, self.make(self.wrong))
            self.assertRejected(h, r, "wrong password")
            self.assertIsNotNone(r.header("WWW-Authenticate"))

    def test_several_users_passwords_with_colons_unpadded(self):
        users = "alice:pw-a\n\n  # not a comment: a user named '# not a comment'\n" \
                "bob:pw:with:colons and space\r\n"
        self.secret_file = users
        with self.daemon(self.config(), secrets=("pw-a", "pw:with"),
                         files={"users": users}) as h:
            for pair in ("alice:pw-a", "bob:pw:with:colons and space"):
                req = self.make("x").with_header("Authorization", self.basic(pair))
                self.assertDelivered(h, self.send(h, req), req, "basic")
            unpadded = base64.b64encode(b"alice:pw-a").decode().rstrip("=")
            req = self.make("x").with_header("Authorization", "basic " + unpadded)
            self.assertDelivered(h, self.send(h, req), req, "basic")
            for pair in ("alice:pw:with:colons and space", "bob:pw-a", "alice:", ":pw-a"):
                r = self.send(h, self.make("x").with_header("Authorization", self.basic(pair)))
                self.assertRejected(h, r, pair)

    def test_malformed_line_is_config_error(self):
        users = "alice:pw-a\n\nnocolon-TopLine\n"
        with self.daemon(self.config(), start=False, files={"users": users}) as h:
            for cmd in (["check"], ["serve"]):
                p = harness.run_cli(cmd, config=h.config_path)
                self.assertEqual(p.returncode, 2, p)
                err = p.stderr.decode()
                self.assertRegex(err, r"hookd.ini:\d+: endpoint 'basic': secret_file "
                                 r"'.*/users' line 3 is not user:password \(scheme basic\)")
                self.assertNotIn("nocolon-TopLine", err)


class TestFixedEvent(SBase):
    """`event = NAME` on an endpoint: every delivery's event, whatever the
    body says (the body's own `event` is then only a variable); an empty
    body is a delivery with no payload variables and an empty stdin."""

    TOKEN = "fixed-ev-t0ken"

    def conf(self, extra="event = alert\n", scheme="token", secret=True):
        return SERVER + "\n[endpoint am]\npath = /hook\nscheme = %s\n%s%s" % (
            scheme, "secret = %s\n" % self.TOKEN if secret else "", extra)

    def test_body_without_event(self):
        with self.daemon(self.conf(), secrets=[self.TOKEN]) as h:
            body = json_body({"status": "firing", "event": "not-the-event",
                              "alerts": [{"labels": {"alertname": "X"}}]})
            req = Req(body, {"Authorization": "Bearer " + self.TOKEN}, "alert", None)
            env = self.assertDelivered(h, self.send(h, req), req, "am")
            self.assertEqual(env.get("HOOK_STATUS"), "firing")
            self.assertEqual(env.get("HOOK_ALERTS_0_LABELS_ALERTNAME"), "X")
            self.assertEqual(env.get("HOOK_EVENT"), "alert", "the fixed event wins")

    def test_empty_body(self):
        """curl -X POST (no body, no Content-Type) and curl -d '' (an empty
        form): both are deliveries of the fixed event."""
        with self.daemon(self.conf(), secrets=[self.TOKEN]) as h:
            auth = {"Authorization": "Bearer " + self.TOKEN}
            # What a hook gets from {}: the metadata alone.
            req = Req(b"{}", auth, "alert", None)
            meta = set(self.assertDelivered(h, self.send(h, req), req, "am"))
            for headers in (auth, dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"}),
                            dict(auth, **{"Content-Type": "text/plain"})):
                req = Req(b"", headers, "alert", None)
                env = self.assertDelivered(h, self.send(h, req), req, "am")
                self.assertEqual(set(env), meta, "payload variables from an empty body")
            self.assertRejected(h, self.send(h, Req(b"", {}, "alert", None)), "no token")
            # A body that is there must still be JSON.
            r = self.send(h, Req(b"not json", auth, "alert", None))
            self.assertAnswer(r, 400, "a non-empty body is still JSON")
            self.assertNothingRan(h)

    def test_local_commands_and_check(self):
        """`hookd env` and `run` take an empty payload as the server does;
        `hookd check` shows the fixed event."""
        with self.daemon(self.conf(), start=False) as h:
            p = harness.run_cli(["env", "alert"], config=h.config_path, input=b"")
            self.assertEqual(p.returncode, 0, p)
            env = parse_env(p.stdout.decode())
            self.assertEqual(env.get("HOOK_EVENT"), "alert")
            p = harness.run_cli(["check"], config=h.config_path)
            self.assertEqual(p.returncode, 0, p)
            self.assertIn("scheme=token", p.stdout.decode())
            self.assertIn(" event=alert", p.stdout.decode())
        with self.daemon(self.conf(extra=""), start=False) as h:
            p = harness.run_cli(["env", "alert"], config=h.config_path, input=b"")
            self.assertEqual(p.returncode, 2, "empty payload, no fixed event: %r" % (p,))
            p = harness.run_cli(["check"], config=h.config_path)
            self.assertNotIn(" event=", p.stdout.decode())

    def test_empty_body_without_fixed_event_stays_400(self):
        with self.daemon(self.conf(extra=""), secrets=[self.TOKEN]) as h:
            r = self.send(h, Req(b"", {"Authorization": "Bearer " + self.TOKEN}, "x", None))
            self.assertAnswer(r, 400, "empty body, no fixed event")
            self.assertNothingRan(h)

    def test_empty_body_is_said_empty_by_every_scheme(self):
        """curl --data @missing-file sends no body: each scheme, with a JSON or
        a form Content-Type, says "body is empty" (not "not valid JSON" or a
        form field missing), and so do `hookd env` and `run`."""
        gh, sl = "gh-empty-s3cret", "slack-empty-s3cret"
        conf = (SERVER + "\n[endpoint tok]\npath = /tok\nscheme = token\nsecret = %s\n"
                "\n[endpoint gh]\npath = /gh\nscheme = github\nsecret = %s\n"
                "\n[endpoint sl]\npath = /sl\nscheme = slack\nsecret = %s\n"
                "\n[endpoint nf]\npath = /nf\nscheme = northflank\nsecret = %s\n"
                % (self.TOKEN, gh, sl, NF_TOKEN))
        form = "application/x-www-form-urlencoded"
        with self.daemon(conf, secrets=[self.TOKEN, gh, sl]) as h:
            ts = int(time.time())
            cases = [
                ("/tok", {"Authorization": "Bearer " + self.TOKEN}),
                ("/nf", {NF_PREFIX + "Token": NF_TOKEN, "Content-Type": "application/json"}),
                ("/gh", {"X-GitHub-Event": "push", "X-GitHub-Delivery": new_id("gh"),
                         "X-Hub-Signature-256": github_sig(gh, b"")}),
                ("/gh", {"X-GitHub-Event": "push", "X-GitHub-Delivery": new_id("gh"),
                         "Content-Type": form, "X-Hub-Signature-256": github_sig(gh, b"")}),
                ("/sl", {"Content-Type": form, "X-Slack-Request-Timestamp": str(ts),
                         "X-Slack-Signature": slack_sig(sl, ts, b"")}),
            ]
            for path, headers in cases:
                r = h.post(path, b"", headers)
                b = self.assertAnswer(r, 400, "%s %r" % (path, headers))
                self.assertEqual(b.get("error"), "body is empty", r)
            self.assertNothingRan(h)
            for cmd in (["env", "x"], ["run", "x"]):
                p = harness.run_cli([cmd[0], "--endpoint", "tok", cmd[1]], config=h.config_path,
                                   input=b"")
                self.assertEqual(p.returncode, 2, p)
                self.assertIn("body is empty", p.stderr.decode())

    def test_fixed_wins_over_event_header_and_field(self):
        conf = self.conf(scheme="none", secret=False,
                         extra="event = ping\nevent_header = X-Ev\nid_header = X-Id\n")
        with self.daemon(conf) as h:
            did = new_id("fx")
            req = Req(json_body({"event": "e"}), {"X-Ev": "other", "X-Id": did}, "ping", did)
            self.assertDelivered(h, self.send(h, req), req, "am")
            req = Req(json_body({}), {"X-Id": new_id("fx")}, "ping", None)
            req.id = req.headers["X-Id"]
            self.assertDelivered(h, self.send(h, req), req, "am")

    def test_any_scheme_keeps_its_delivery_id(self):
        """github with a fixed event: the event is the endpoint's, the
        delivery id still X-GitHub-Delivery."""
        secret = "gh-fixed-s3cret"
        conf = SERVER + ("\n[endpoint gh]\npath = /hook\nscheme = github\nsecret = %s\n"
                         "event = github-any\n" % secret)
        with self.daemon(conf, secrets=[secret]) as h:
            did = new_id("gh")
            body = json_body({"action": "opened", "marker": MARK.decode()})
            req = Req(body, {"X-GitHub-Event": "issues", "X-GitHub-Delivery": did,
                             "X-Hub-Signature-256": github_sig(secret, body)}, "github-any", did)
            self.assertDelivered(h, self.send(h, req), req, "gh")

    def test_bad_event_name_is_config_error(self):
        with self.daemon(self.conf(extra="event = ../x\n"), start=False) as h:
            p = harness.run_cli(["check"], config=h.config_path)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn("bad value '../x' for event in [endpoint am]", p.stderr.decode())


# --------------------------------------------------------------------------

class TestEndpoints(SBase):

    def test_several_endpoints_each_with_hooks_dir(self):
        gh_secret = "gh-multi-s3cret"
        conf = SERVER + """
[endpoint northflank]
path = /nf
scheme = northflank
secret = %s
hooks_dir = {tmp}/nf.d

[endpoint github]
path = /gh
scheme = github
secret = %s
hooks_dir = gh.d

[endpoint open]
path = /open
scheme = none
""" % (NF_TOKEN, gh_secret)
        hooks = {
            "_default": RECORD,
            "build:start": sh("echo server-hook >> '{tmp}/which'\n") + RECORD[10:],
            "../nf.d/build:start": sh("echo nf-hook >> '{tmp}/which'\n") + RECORD[10:],
            "../gh.d/push": sh("echo gh-hook >> '{tmp}/which'\n") + RECORD[10:],
        }
        with self.daemon(conf, hooks=hooks, secrets=[gh_secret]) as h:
            r = h.northflank(path="/nf")
            self.assertAnswer(r, 200)
            self.assertEqual((h.read("which") or "").split(), ["nf-hook"])
            self.assertEqual(self.hook_env(h).get("HOOK_ENDPOINT"), "northflank")

            body = json_body({"ref": "x"})
            did = new_id()
            r = h.post("/gh", body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": did,
                                     "X-Hub-Signature-256": github_sig(gh_secret, body)})
            self.assertAnswer(r, 200)
            self.assertEqual((h.read("which") or "").split(), ["nf-hook", "gh-hook"])
            env = self.hook_env(h)
            self.assertEqual(env.get("HOOK_ENDPOINT"), "github")
            self.assertEqual(env.get("HOOK_HOOK"), "push")

            r = h.post("/open", json_body({"event": "build:start"}), {})
            self.assertAnswer(r, 200)
            self.assertEqual((h.read("which") or "").split(), ["nf-hook", "gh-hook", "server-hook"])
            self.assertEqual(self.hook_env(h).get("HOOK_ENDPOINT"), "open")

            # a github request at the northflank path is not verified there
            r = h.post("/nf", body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": new_id(),
                                     "X-Hub-Signature-256": github_sig(gh_secret, body)})
            self.assertAnswer(r, 401)
            self.assertEqual(len((h.read("which") or "").split()), 3)

    def test_allow_from(self):
        conf = SERVER + ("\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
                         "secret = %s\nallow_from = 10.0.0.0/8 192.0.2.1/32\n"
                         "\n[endpoint local]\npath = /local\nscheme = none\n"
                         "allow_from = 127.0.0.0/8 ::1/128\n" % NF_TOKEN)
        with self.daemon(conf, hooks={"_default": marker_hook("_default"),
                                      "build:start": marker_hook("build:start")}) as h:
            for token in (NF_TOKEN, None, "wrong"):
                r = h.northflank(token=token)
                b = self.assertAnswer(r, 403, "token %r" % token)
                self.assertEqual(b.get("status"), "rejected", r)
            r = h.northflank(body=b"not json at all")
            self.assertAnswer(r, 403, "403 comes before 400")
            self.assertNothingRan(h)
            r = h.post("/local", json_body({"event": "build:start"}), {})
            self.assertAnswer(r, 200)
            self.assertEqual(h.ran(), ["build:start"])

    def test_trusted_proxies_forwarded_for(self):
        conf = SERVER.replace("kill_grace = 1s\n", "kill_grace = 1s\ntrusted_proxies = 127.0.0.1/32 10.1.0.0/16\n") + (
            "\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
            "secret = %s\nallow_from = 203.0.113.0/24\n" % NF_TOKEN)
        hooks = {"build:start": harness.env_hook("build:start")}
        cases = [
            ("203.0.113.7", 200, "203.0.113.7"),
            ("198.51.100.1, 203.0.113.9", 200, "203.0.113.9"),
            ("203.0.113.8, 10.1.2.3", 200, "203.0.113.8"),
            ("203.0.113.8,127.0.0.1", 200, "203.0.113.8"),
            ("203.0.113.7, 198.51.100.1", 403, None),
            ("198.51.100.1", 403, None),
            (None, 403, None),
            # On several lines it is one list: a client's own first line
            # never hides the address a proxy added on a line of its own.
            (["203.0.113.7", "198.51.100.1"], 403, None),
            (["198.51.100.1", "203.0.113.9"], 200, "203.0.113.9"),
            (["198.51.100.1", "203.0.113.9, 10.1.2.3"], 200, "203.0.113.9"),
        ]
        with self.daemon(conf, hooks=hooks) as h:
            for xff, status, addr in cases:
                with self.subTest(xff=xff):
                    h.reset_ran()
                    if isinstance(xff, list):
                        extra = [("X-Forwarded-For", line) for line in xff]
                    else:
                        extra = {"X-Forwarded-For": xff} if xff else None
                    r = h.northflank(extra=extra)
                    self.assertAnswer(r, status, "X-Forwarded-For %r" % xff)
                    if status == 200:
                        self.assertEqual(self.hook_env(h).get("HOOK_REMOTE_ADDR"), addr)
                        self.assertEqual(h.ran(), ["build:start"])
                    else:
                        self.assertNothingRan(h)

    def test_repeated_headers_are_one_list(self):
        """A header given twice is read as one comma-joined value: a token
        or an event type sent twice is never half read."""
        hooks = {"build:start": harness.marker_hook("build:start")}
        with self.daemon(NF_CONFIG, hooks=hooks) as h:
            r = h.northflank(extra=[(NF_PREFIX + "Token", NF_TOKEN)])
            self.assertAnswer(r, 401, "the token twice is not the token")
            r = h.northflank(event_type=None, extra=[(NF_PREFIX + "Event-Type", "build:start"),
                                                     (NF_PREFIX + "Event-Type", "build:failure")])
            self.assertAnswer(r, 400, "two event types")
            self.assertNothingRan(h)
            self.assertAnswer(h.northflank(), 200)
            self.assertEqual(h.ran(), ["build:start"])

    def test_forwarded_for_ignored_without_trusted_proxies(self):
        conf = SERVER + ("\n[endpoint northflank]\npath = /webhook\nscheme = northflank\n"
                         "secret = %s\nallow_from = 203.0.113.0/24\n"
                         "\n[endpoint local]\npath = /local\nscheme = northflank\n"
                         "secret = %s\n" % (NF_TOKEN, NF_TOKEN))
        hooks = {"build:start": harness.env_hook("build:start")}
        with self.daemon(conf, hooks=hooks) as h:
            r = h.northflank(extra={"X-Forwarded-For": "203.0.113.7"})
            self.assertAnswer(r, 403, "X-Forwarded-For from an untrusted peer")
            self.assertNothingRan(h)
            r = h.northflank(path="/local", extra={"X-Forwarded-For": "203.0.113.7"})
            self.assertAnswer(r, 200)
            self.assertEqual(self.hook_env(h).get("HOOK_REMOTE_ADDR"), "127.0.0.1")


if __name__ == "__main__":
    harness.main()
