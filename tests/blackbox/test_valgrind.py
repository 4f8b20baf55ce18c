"""The daemon under valgrind memcheck (issue 4, item 5): a smoke run over
the main paths (hooks that succeed, fail, time out and get killed, every
early rejection, keep-alive, async with the journal, duplicates, replay,
SIGHUP, connections left open and half-sent requests at shutdown), then
SIGTERM. hookd must exit 0: valgrind exits 99 on any memory error or
definite leak, and the heap must be empty at exit but for the dynamic
loader's records of libcrypto, which cannot be unloaded (tests/valgrind.supp).

$HOOKD_WRAPPER is the valgrind command (tests/meson.build sets it); without
it a default one is used. Skipped (exit 77) when the binary is built with
AddressSanitizer, which cannot run under valgrind, or valgrind is missing.

Run: HOOKD_BIN=build/hookd python3 tests/blackbox/test_valgrind.py
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, binary_has_asan, recv_response, sh, wrapper_argv  # noqa: E402
from harness import hardened_hookd as Daemon  # noqa: E402

DEFAULT_WRAPPER = ("valgrind --leak-check=full --errors-for-leak-kinds=definite "
                   "--error-exitcode=99 --suppressions=" +
                   os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "valgrind.supp"))

# limit_cpu makes hooks take the fork+exec path. Not limit_nofile: valgrind
# refuses to change the fd hard limit, so under valgrind every hook would
# fail with "cannot apply limit_nofile: Operation not permitted".
CONFIG = """\
[server]
listen = 127.0.0.1:0
hooks_dir = {hooks}
timeout = 2s
kill_grace = 500ms
include_output = yes
max_body = 8KiB
max_headers = 2KiB
read_timeout = 3s
idle_timeout = 30s
state_dir = {tmp}/state
limit_cpu = 100

[event slow]
timeout = 300ms

[endpoint t]
path = /webhook
scheme = gitlab
secret = vg-token

[endpoint a]
path = /async
scheme = gitlab
secret = vg-token
mode = async
retries = 0
"""

HOOK = sh("""
echo "event $HOOK_EVENT"
case "$HOOK_EVENT" in
  fail) exit 3 ;;
  slow) trap '' TERM; sleep 10 ;;
  segv) kill -SEGV $$ ;;
esac
exit 0
""")

AUTH = {"X-Gitlab-Token": "vg-token", "Content-Type": "application/json"}


def gl(kind, **kw):
    d = {"object_kind": kind}
    d.update(kw)
    return d


class TestValgrind(unittest.TestCase):

    def test_smoke_under_valgrind(self):
        w = wrapper_argv() or DEFAULT_WRAPPER.split()
        with Daemon(CONFIG, {"_default": HOOK}, wrap=w) as h:
            self.assertIn("valgrind", " ".join(h.command()))
            for kind, want in (("push", 200), ("fail", 500), ("slow", 504), ("segv", 500)):
                st, _, body = h.post_body(gl(kind), headers=AUTH)
                self.assertEqual(st, want, body)
            rejections = [
                ({"X-Gitlab-Token": "wrong"}, gl("push"), "/webhook", 401),
                (AUTH, gl("push"), "/nope", 404),
                (AUTH, b"{bad json", "/webhook", 400),
                (AUTH, gl("push", pad="x" * 9000), "/webhook", 413),
                (dict(AUTH, **{"Content-Type": "text/plain"}), gl("push"), "/webhook", 415),
            ]
            for hdrs, body, path, want in rejections:
                st, _, b = h.exchange("POST", path, body, hdrs)
                self.assertEqual(st, want, b)
            self.assertEqual(h.exchange("GET", "/webhook", b"", AUTH)[0], 405)
            for raw, want in ((b"GARBAGE\r\n\r\n", 400),
                              (b"POST /webhook HTTP/1.1\r\nX: " + b"y" * 3000 + b"\r\n\r\n", 431),
                              (b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                               411)):
                self.assertEqual(h.raw_answer(raw)[0], want)
            # Keep-alive: three requests on one connection.
            s = h.socket()
            req = json.dumps(gl("push")).encode()
            head = ("POST /webhook HTTP/1.1\r\nX-Gitlab-Token: vg-token\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(req))
            for _ in range(3):
                s.sendall(head.encode() + req)
                self.assertEqual(recv_response(s)[0], 200)
            # Async through the journal, a duplicate, a replay.
            hdrs = dict(AUTH, **{"Idempotency-Key": "vg-1"})
            self.assertEqual(h.post_body(gl("push"), "/async", hdrs)[0], 202)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not h.log_lines("msg=delivery", "id=vg-1",
                                                                  "status=ok"):
                time.sleep(0.1)
            self.assertEqual(json.loads(h.post_body(gl("push"), "/async", hdrs)[2])["status"],
                             "duplicate")
            p = subprocess.run([HOOKD_BIN, "-c", h.config_path, "replay", "--endpoint", "a",
                                "vg-1"], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p)
            # A reload.
            h.proc.send_signal(signal.SIGHUP)
            self.assertIsNotNone(h.wait_log("config reloaded", timeout=20))
            # At shutdown: an idle keep-alive connection (s), a request
            # half sent, and a delivery running.
            half = h.socket()
            half.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            run = threading.Thread(target=h.post_body, args=(gl("push"),), kwargs={"headers": AUTH})
            run.start()
            time.sleep(0.5)
            rc = h.stop(check=False, timeout=60)
            run.join(30)
            s.close()
            half.close()
            log = h.log_text()
            tail = log[log.find("HEAP SUMMARY"):] if "HEAP SUMMARY" in log else log[-3000:]
            print(tail)
            self.assertEqual(rc, 0, "valgrind reported errors:\n" + tail)
            # Empty, or what is left is only the suppressed loader records.
            empty = "All heap blocks were freed" in log
            left = re.findall(r"(definitely lost|indirectly lost|possibly lost|still reachable):"
                              r" ([\d,]+) bytes", log)
            only_suppressed = bool(left) and all(n == "0" for _, n in left)
            self.assertTrue(empty or only_suppressed, "memory still allocated at exit")


def main():
    if binary_has_asan():
        print("SKIP: %s is built with AddressSanitizer, which does not run under valgrind"
              % HOOKD_BIN)
        sys.exit(77)
    if not wrapper_argv() and not shutil.which("valgrind"):
        print("SKIP: valgrind is not installed (scripts/deps.sh installs it)")
        sys.exit(77)
    harness.main()


if __name__ == "__main__":
    main()
