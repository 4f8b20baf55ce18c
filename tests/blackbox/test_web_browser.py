"""The deliveries page in a real browser (headless Chromium driven by
Selenium; README "Deliveries page"; issue 18): open the page, filter, open
a delivery and read its hook's output, replay it and see the new attempt,
the rejections view, log in and out, hostile values in a delivery's
id, event, body, headers and hooks' output that must run no script, and
another site's page that must not make the browser replay. Each test saves a
screenshot under the build dir (web-screenshots/), a test artifact.
Skipped when chromium, chromedriver or python3-selenium is missing
(scripts/deps.sh --test installs them).
"""

import http.server
import json
import os
import shutil
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOOKD_BIN, main, new_id, sh  # noqa: E402
from harness import JournalHookd as Hookd  # noqa: E402
from harness import journal_config  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException, TimeoutException
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = HAVE_SELENIUM and os.path.exists(CHROMEDRIVER) and (
    shutil.which("chromium") or os.path.exists("/usr/bin/chromium"))
SHOTS = os.environ.get("HOOKD_SCREENSHOTS") or os.path.join(os.path.dirname(HOOKD_BIN),
                                                           "web-screenshots")
OK = sh("echo \"deployed $HOOK_ID\"\necho 'second line'\n")
FAIL = sh("echo 'cannot reach the registry' >&2\nexit 3\n")
TOKEN = "admin-t0ken-0123456789abcdef"
ADMIN = "\n[admin]\nlisten = 127.0.0.1:0\n"
# A script in any of these sets the title to PWNED or opens an alert.
PWN = "<script>document.title='PWNED';alert(1)</script>"
IMG = "\"><img src=x onerror=\"document.title='PWNED';alert(2)\">"
JS_LINK = "javascript:document.title='PWNED'"
LS = "line\u2028separator\u2029"


@unittest.skipUnless(HAVE_BROWSER, "needs chromium, chromium-driver and python3-selenium")
class Browser(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        os.makedirs(SHOTS, exist_ok=True)
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        if os.path.exists("/usr/bin/chromium"):
            opts.binary_location = "/usr/bin/chromium"
        service = ChromeService(executable_path=CHROMEDRIVER)
        self.driver = webdriver.Chrome(options=opts, service=service)
        self.driver.set_page_load_timeout(20)

    def tearDown(self):
        self.driver.quit()

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def wait(self, cond, timeout=10):
        return WebDriverWait(self.driver, timeout).until(cond)

    def text_of(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def rows(self):
        return self.driver.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr")

    def assertNoScriptRan(self):
        try:
            alert = self.driver.switch_to.alert
            text = alert.text
            alert.dismiss()
            self.fail("an alert opened: %r" % text)
        except NoAlertPresentException:
            pass
        self.assertEqual(self.driver.title, "hookd deliveries")
        for a in self.driver.find_elements(By.CSS_SELECTOR, "a[href]"):
            self.assertTrue(a.get_attribute("href").startswith("http://127.0.0.1:"),
                            a.get_attribute("href"))
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "main img, main script"),
                         [])

    def base(self, h):
        return "http://127.0.0.1:%d" % h.wait_admin_port()

    def test_list_filter_detail_replay_rejections(self):
        with Hookd(journal_config(extra=ADMIN), {"build:start": OK, "deploy:fail": FAIL}) as h:
            ok_id, fail_id = new_id("ok"), new_id("fail")
            h.post(ok_id, event="build:start")
            h.post(fail_id, event="deploy:fail")
            h.post(new_id(), token="wrong-token-123456")
            d = self.driver
            d.get(self.base(h) + "/")
            self.wait(lambda _: len(self.rows()) == 2)
            self.assertIn(fail_id, self.rows()[0].text)
            self.shot("list")
            # A new delivery shows without a reload.
            new = new_id("new")
            h.post(new, event="build:start")
            self.wait(lambda _: len(self.rows()) == 3 and new in self.rows()[0].text, 12)
            # Filter.
            Select(d.find_element(By.NAME, "state")).select_by_visible_text("failed")
            d.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
            self.wait(lambda _: len(self.rows()) == 1)
            self.assertIn(fail_id, self.rows()[0].text)
            self.shot("list-filtered")
            # Open it: its hook's output and the replay command.
            d.find_element(By.LINK_TEXT, fail_id).click()
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"),
                                                       "cannot reach the registry"))
            self.assertIn("hookd replay --endpoint northflank -- " + fail_id,
                          self.text_of("#replay-cmd"))
            self.assertIn('"event": "deploy:fail"', self.text_of("#d-body"), "pretty-printed")
            self.assertIn("HOOK_EVENT", self.text_of("#d-env"))
            self.shot("delivery")
            # Replay, confirmed: attempt 2 appears.
            d.find_element(By.ID, "replay").click()
            self.wait(EC.alert_is_present()).accept()
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"), "Attempt 2"), 12)
            self.shot("delivery-replayed")
            # Rejections.
            d.find_element(By.ID, "nav-rejections").click()
            self.wait(EC.text_to_be_present_in_element((By.ID, "rejections-table"), "401"))
            self.assertNotIn("wrong-token-123456", d.page_source)
            self.shot("rejections")
            # Narrow.
            d.set_window_size(400, 900)
            d.get(self.base(h) + "/")
            self.wait(lambda _: len(self.rows()) == 3)
            width = d.execute_script("return document.documentElement.scrollWidth")
            self.assertLessEqual(width, 420, "the page fits 400 px (tables scroll inside)")
            self.shot("list-400px")
            d.set_window_size(1280, 900)

    def test_dot_and_dash_ids(self):
        """Ids "." and ".." open (a browser resolves them as path segments,
        even as %2E, so the page asks by query) and replay; an id that starts
        with '-' gets a replay command with "--" before it."""
        with Hookd(journal_config(extra=ADMIN), {"build:start": OK}) as h:
            for i in (".", "..", "-dash"):
                h.post(i, event="build:start")
            d = self.driver
            d.get(self.base(h) + "/")
            self.wait(lambda _: len(self.rows()) == 3)
            for i in (".", ".."):
                d.get(self.base(h) + "/")
                self.wait(lambda _: len(self.rows()) == 3)
                d.find_element(By.LINK_TEXT, i).click()
                self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"),
                                                           "deployed " + i))
                self.assertEqual(self.text_of("#d-title"), i)
                self.assertEqual(self.text_of("#detail-error"), "")
            # ".." replayed from its page: attempt 2 appears.
            d.find_element(By.ID, "replay").click()
            self.wait(EC.alert_is_present()).accept()
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"), "Attempt 2"), 12)
            self.shot("dot-id")
            d.get(self.base(h) + "/")
            self.wait(lambda _: len(self.rows()) == 3)
            d.find_element(By.LINK_TEXT, "-dash").click()
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"), "deployed -dash"))
            cmd = self.text_of("#replay-cmd")
            self.assertEqual(cmd, "hookd replay --endpoint northflank -- -dash")
            p = harness.run_cli(cmd.split()[1:], config=h.config_path)
            self.assertEqual(p.returncode, 0, p)

    def test_live_output(self):
        slow = sh("echo 'step one'\nsleep 1\necho 'step two'\nsleep 2\necho 'step three'\n")
        with Hookd(journal_config(extra=ADMIN), {"build:slow": slow}) as h:
            eid = new_id("live")
            t, _ = h.post_bg(eid, event="build:slow")
            d = self.driver
            base = self.base(h)
            self.assertTrue(harness.wait_until(lambda: h.admin(
                "GET", "/api/v1/deliveries/northflank/" + eid).status == 200, 10))
            d.get(base + "/deliveries/northflank/" + eid)
            self.wait(EC.text_to_be_present_in_element((By.ID, "live-output"), "step two"))
            self.assertNotIn("step three", self.text_of("#live-output"), "seen while it runs")
            self.shot("live-output")
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"), "step three"), 12)
            self.assertIn("succeeded", self.text_of("#d-summary"))
            t.join(10)

    def test_hostile_payloads_run_no_script(self):
        hooks = {"build:start": OK}
        with Hookd(journal_config(extra=ADMIN), hooks) as h:
            body = harness.sample_json()
            body["description"] = " ".join([PWN, IMG, JS_LINK, LS])
            body["url"] = JS_LINK
            eid = "x" + new_id() + PWN
            r = h.post(eid, body=body, headers={
                "X-Northflank-Notification-Integration-Name": IMG})
            self.assertEqual(r.status, 200, r)
            ev_id = new_id("ev")
            r = h.post(ev_id, event="build:" + IMG)
            d = self.driver
            d.get(self.base(h) + "/")
            self.wait(lambda _: any(eid in row.text for row in self.rows()))
            time.sleep(0.5)
            self.assertNoScriptRan()
            self.shot("hostile-list")
            d.get(self.base(h) + "/deliveries/northflank/" + urllib.parse.quote(eid, safe=""))
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-title"), PWN))
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-body"), "javascript:"))
            time.sleep(0.5)
            self.assertIn(IMG, self.text_of("#d-headers"))
            self.assertNoScriptRan()
            self.shot("hostile-delivery")

    def test_hostile_hook_output_and_ids_run_no_script(self):
        """A hook's output is the sender's too (it echoes the payload): shown
        while it runs (live, from Server-Sent Events, with a CR that must not
        end an event) and after, from stdout and stderr, as text. An id with
        a bidi override and line separators opens from its link, shown
        literally; one that is not UTF-8 is refused at the door, since the
        page could not open it (its JSON would carry U+FFFD)."""
        hostile = " ".join([PWN, IMG, JS_LINK])
        # The live view must open before the hook ends: 6 s of it (within
        # the config's 10 s timeout) for a browser on a loaded machine.
        echo = sh("cat <<'E'\n%s\nE\nprintf 'cr\\revent: outcome\\rdata: {}\\n'\n"
                  "sleep 6\ncat >&2 <<'E'\nerr %s\nE\nexit 3\n" % (hostile, hostile))
        with Hookd(journal_config(extra=ADMIN), {"build:start": echo}) as h:
            eid = "bidi\u202e" + LS + new_id()
            t, _ = h.post_bg(eid.encode().decode("latin-1"), event="build:start")
            r = h.post("bad\xff\xfe" + new_id())
            self.assertEqual((r.status, r.json.get("error")), (400, "invalid delivery id"), r)
            d = self.driver
            d.get(self.base(h) + "/")
            self.wait(lambda _: len(self.rows()) == 1)
            link = d.find_element(By.CSS_SELECTOR, "#deliveries tbody a")
            self.assertEqual(d.execute_script("return arguments[0].textContent", link), eid)
            link.click()
            self.wait(EC.text_to_be_present_in_element((By.ID, "live-output"), "javascript:"))
            time.sleep(0.5)
            self.assertNoScriptRan()
            live = d.execute_script("return document.getElementById('live-output').textContent")
            self.assertIn(PWN, live)
            self.assertIn("cr\revent: outcome\rdata: {}", live, "one line, not an event")
            self.assertEqual(d.execute_script("return document.getElementById('d-title')"
                                              ".textContent"), eid)
            self.shot("hostile-live")
            self.wait(EC.text_to_be_present_in_element((By.ID, "d-attempts"), "err <script>"),
                      20)
            time.sleep(0.5)
            self.assertNoScriptRan()
            self.assertIn(IMG, self.text_of("#d-attempts"))
            self.assertEqual(self.text_of("#detail-error"), "")
            self.shot("hostile-output")
            # The replay's question isolates the id: its override ends there.
            d.find_element(By.ID, "replay").click()
            alert = self.wait(EC.alert_is_present())
            self.assertEqual(alert.text, "Run delivery \u2068%s\u2069 again?" % eid)
            alert.dismiss()
            t.join(10)

    def test_another_site_cannot_make_the_browser_replay(self):
        """CSRF: with no token (a loopback listener, nothing but the browser's
        own reach stands in the way), a page of another site POSTs a form
        and a no-cors fetch at the replay calls. Both are refused (403,
        logged) and nothing runs again."""
        with Hookd(journal_config(extra=ADMIN), {"deploy:fail": FAIL}) as h:
            eid = new_id("csrf")
            h.post(eid, event="deploy:fail")
            target = self.base(h) + "/api/v1/"
            page = ("<!doctype html><title>evil</title><iframe name=sink></iframe>"
                    "<form method=post target=sink action='%sreplay?state=failed'></form>"
                    "<script>document.forms[0].submit();"
                    "fetch('%sdeliveries/northflank/%s/replay', {method: 'POST', mode: 'no-cors'})"
                    ".finally(() => { document.title = 'sent'; });</script>"
                    % (target, target, eid)).encode()

            class Evil(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)

                def log_message(self, *args):
                    pass

            evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
            threading.Thread(target=evil.serve_forever, daemon=True).start()
            try:
                # localhost is another site than 127.0.0.1 (the page's).
                self.driver.get("http://localhost:%d/" % evil.server_address[1])
                self.wait(lambda d: d.title == "sent")
                refused = lambda: h.log_text().count("cross-site POST")  # noqa: E731
                attempts = lambda: h.admin(  # noqa: E731
                    "GET", "/api/v1/deliveries/northflank/" + eid).json["attempts"]
                harness.wait_until(lambda: refused() >= 2 or attempts() > 1, 10)
            finally:
                evil.shutdown()
                evil.server_close()
            time.sleep(0.5)
            self.assertEqual(attempts(), 1, "no replay ran")
            self.assertEqual(refused(), 2, h.log_text())

    def test_login_and_logout(self):
        cfg = journal_config(extra="\n[admin]\nlisten = 127.0.0.1:0\ntoken_file = {tmp}/token\n")
        h = Hookd(cfg, {"build:start": OK}, start=False)
        h.write_file("token", TOKEN + "\n")
        h.secrets.append(TOKEN)
        h.start()
        with h:
            h.post(new_id())
            d = self.driver
            d.get(self.base(h) + "/")
            self.wait(EC.visibility_of_element_located((By.ID, "login")))
            d.find_element(By.ID, "token").send_keys("wrong-token-abcdefgh")
            d.find_element(By.CSS_SELECTOR, "#login-form button").click()
            self.wait(EC.text_to_be_present_in_element((By.ID, "login-error"), "Wrong token"))
            self.shot("login-wrong")
            d.find_element(By.ID, "token").clear()
            d.find_element(By.ID, "token").send_keys(TOKEN)
            d.find_element(By.CSS_SELECTOR, "#login-form button").click()
            self.wait(lambda _: len(self.rows()) == 1)
            cookie = d.get_cookie("hookd_session")
            self.assertTrue(cookie["httpOnly"])
            self.assertEqual(cookie.get("sameSite"), "Strict")
            self.assertEqual(d.execute_script("return document.cookie"), "")
            self.shot("logged-in")
            d.find_element(By.ID, "logout").click()
            self.wait(EC.visibility_of_element_located((By.ID, "login")))
            d.get(self.base(h) + "/")
            self.wait(EC.visibility_of_element_located((By.ID, "login")))
            self.assertNotIn(TOKEN, h.log_text())


if __name__ == "__main__":
    main()
