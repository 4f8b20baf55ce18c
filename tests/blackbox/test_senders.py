"""Black-box tests with real senders (README "Senders and verification schemes"):
Prometheus Alertmanager (Debian's prometheus-alertmanager, which
scripts/deps.sh --test installs), started by the test on a loopback port
with its own config and storage in a temporary directory, sends its webhook
to hookd with a bearer token (scheme token) and with HTTP Basic (scheme
basic), both endpoints with a fixed event, since Alertmanager's body names
none. An alert fired with `amtool alert add` reaches the hooks as
HOOK_ALERTS_0_LABELS_ALERTNAME and HOOK_STATUS=firing.

Skipped, saying so, only when the package is not installed.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_senders.py [-k NAME]
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Hookd, parse_env, sh  # noqa: E402

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
MISSING = ("Alertmanager is not installed (apt-get install prometheus-alertmanager, or "
           "scripts/deps.sh --test)")

TOKEN = "am-bearer-t0ken-6c1f0e"
BASIC_USER, BASIC_PASSWORD = "alertmanager", "am-basic-pw-93d2a7"

HOOKD_CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 10s

[endpoint am-token]
path = /alertmanager
scheme = token
secret = %s
event = alert

[endpoint am-basic]
path = /alertmanager-basic
scheme = basic
secret_file = {tmp}/users
event = alert
""" % TOKEN

# Each endpoint's delivery: its environment and stdin, by endpoint.
ALERT_HOOK = sh(
    "env > '{tmp}/env-'\"$HOOK_ENDPOINT\"'.tmp'\n"
    "cat > '{tmp}/stdin-'\"$HOOK_ENDPOINT\"\n"
    "mv '{tmp}/env-'\"$HOOK_ENDPOINT\"'.tmp' '{tmp}/env-'\"$HOOK_ENDPOINT\"")

# group_wait and group_interval short, so the alert goes out at once;
# repeat_interval long, so it goes out once. Each receiver its own route.
AM_CONFIG = """\
route:
  receiver: token
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: token
      continue: true
    - receiver: basic
receivers:
  - name: token
    webhook_configs:
      - url: http://127.0.0.1:{hookd_port}/alertmanager
        send_resolved: false
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
  - name: basic
    webhook_configs:
      - url: http://127.0.0.1:{hookd_port}/alertmanager-basic
        send_resolved: false
        http_config:
          basic_auth:
            username: {user}
            password: {password}
"""

START_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 30.0


def free_port():
    """A loopback port free a moment ago (Alertmanager logs the address it
    was given, not the one bound, so it cannot take port 0 and say)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Alertmanager:
    """An Alertmanager of the test's own: config and storage in dir, on a
    loopback port, clustering off; stopped on leaving."""

    def __init__(self, dir, hookd_port):
        self.dir = dir
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        cfg = os.path.join(dir, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(AM_CONFIG.format(hookd_port=hookd_port, token=TOKEN, user=BASIC_USER,
                                     password=BASIC_PASSWORD))
        self.log = open(os.path.join(dir, "alertmanager.log"), "wb")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, "--config.file=" + cfg,
             "--storage.path=" + os.path.join(dir, "am-data"),
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--cluster.listen-address=", "--log.level=debug"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)

    def __enter__(self):
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        with open(os.path.join(self.dir, "alertmanager.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("alertmanager exited %r:\n%s"
                                     % (self.proc.returncode, self.log_text()[-3000:]))
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("alertmanager not ready in %ds:\n%s"
                             % (START_TIMEOUT, self.log_text()[-3000:]))

    def amtool(self, *args):
        return subprocess.run([AMTOOL, "--alertmanager.url=" + self.url] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=30, text=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@unittest.skipUnless(ALERTMANAGER and AMTOOL, MISSING)
class TestAlertmanager(harness.HookdTestCase):

    def test_alert_reaches_hooks_by_token_and_basic(self):
        files = {"users": "%s:%s\n" % (BASIC_USER, BASIC_PASSWORD)}
        with Hookd(HOOKD_CONFIG, {"alert": ALERT_HOOK}, files=files,
                   secrets=[TOKEN, BASIC_PASSWORD]) as h, \
                Alertmanager(h.tmp, h.port) as am:
            r = am.amtool("alert", "add", "alertname=HookdTest", "severity=page",
                          "--annotation=summary=from the hookd test")
            self.assertEqual(r.returncode, 0, r.stdout)
            for endpoint in ("am-token", "am-basic"):
                text = h.wait_file("env-" + endpoint, timeout=DELIVERY_TIMEOUT)
                self.assertIsNotNone(text, "no delivery to %s in %ds; alertmanager said:\n%s\n"
                                     "hookd said:\n%s" % (endpoint, DELIVERY_TIMEOUT,
                                                          am.log_text()[-3000:], h.log_text()))
                env = parse_env(text)
                self.assertEqual(env.get("HOOK_EVENT"), "alert", endpoint)
                self.assertEqual(env.get("HOOK_ENDPOINT"), endpoint)
                self.assertEqual(env.get("HOOK_STATUS"), "firing", endpoint)
                self.assertEqual(env.get("HOOK_ALERTS_0_LABELS_ALERTNAME"), "HookdTest")
                self.assertEqual(env.get("HOOK_ALERTS_0_LABELS_SEVERITY"), "page")
                self.assertEqual(env.get("HOOK_ALERTS_0_ANNOTATIONS_SUMMARY"),
                                 "from the hookd test")
                self.assertNotIn(TOKEN, text)
                self.assertNotIn(BASIC_PASSWORD, text)
                self.assertFalse([k for k in env if "AUTHORIZATION" in k], endpoint)
                self.assertIn(b'"alertname":"HookdTest"', h.read("stdin-" + endpoint, True))
            for endpoint in ("am-token", "am-basic"):
                self.assertTrue(h.wait_log("msg=delivery", "endpoint=" + endpoint,
                                           "status=ok"), "no ok delivery logged for " + endpoint)
            self.assertFalse(h.log_lines("msg=rejected"), "a request was refused")

    def test_wrong_token_is_refused(self):
        """An Alertmanager with another token: 401s, nothing runs."""
        conf = HOOKD_CONFIG.replace("secret = %s\n" % TOKEN, "secret = another-t0ken\n")
        files = {"users": "%s:not-%s\n" % (BASIC_USER, BASIC_PASSWORD)}
        with Hookd(conf, {"alert": ALERT_HOOK}, files=files,
                   secrets=[TOKEN, BASIC_PASSWORD]) as h, \
                Alertmanager(h.tmp, h.port) as am:
            r = am.amtool("alert", "add", "alertname=HookdWrong")
            self.assertEqual(r.returncode, 0, r.stdout)
            for endpoint in ("am-token", "am-basic"):
                self.assertTrue(h.wait_log("msg=rejected", "endpoint=" + endpoint, "http=401",
                                           timeout=DELIVERY_TIMEOUT),
                                "no 401 for %s:\n%s" % (endpoint, am.log_text()[-3000:]))
            self.assertIsNone(h.read("env-am-token"))
            self.assertIsNone(h.read("env-am-basic"))


if __name__ == "__main__":
    harness.main()
