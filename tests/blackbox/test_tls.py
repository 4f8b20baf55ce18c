"""Native TLS (README "Native TLS", issue 6): hookd serving HTTPS itself.

A CA and server certificates for 127.0.0.1 / localhost are made at test time
with the openssl command line. Clients: curl --cacert, openssl s_client and
Python's ssl module.
"""

import json
import os
import re
import shutil
import socket
import ssl
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402

HOOK = """#!/bin/sh
echo "$HOOK_ID $HOOK_EVENT $HOOK_INTEGRATION_NAME" >> "{tmp}/ran"
"""


def config(tls_cert="server.pem", tls_key="server.key", read_timeout="5s", extra_server="",
           extra=""):
    lines = ["[server]", "listen = 127.0.0.1:0", "hooks_dir = hooks.d",
             "read_timeout = %s" % read_timeout]
    if tls_cert is not None:
        lines.append("tls_cert = %s" % tls_cert)
    if tls_key is not None:
        lines.append("tls_key = %s" % tls_key)
    lines.append(extra_server)
    lines += ["", "[endpoint northflank]", "path = /webhook", "scheme = northflank",
              "secret = %s" % harness.NF_TOKEN, "", extra]
    return "\n".join(lines) + "\n"


def nf_headers(event_id):
    """A build:start delivery's Northflank headers, with the integration's."""
    return harness.nf_headers(event_id, event="build:start", integration=True)


def deliver(conn, event_id, path="/webhook", body=None):
    """POSTs the sample Northflank delivery on conn; returns (status, json, headers)."""
    conn.request("POST", path, body=body if body is not None else harness.sample_body(),
                 headers=nf_headers(event_id))
    r = conn.getresponse()
    raw = r.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    return r.status, doc, dict((k.lower(), v) for k, v in r.getheaders())


def s_client(port, *args, stdin=""):
    """openssl s_client against the daemon; returns (rc, stdout + stderr)."""
    r = harness.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-servername", "localhost"] + list(args), input=stdin, timeout=20)
    return r.returncode, r.stdout + r.stderr


def negotiated(out):
    """(protocol, cipher) from s_client's "New, TLSv1.2, Cipher is X" line,
    or None when no session was set up."""
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    if not m or m.group(2) == "(NONE)":
        return None
    return m.group(1), m.group(2)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("openssl"):
            raise unittest.SkipTest("the openssl command is needed to make certificates")
        cls.pkidir = pki.new_tmp()
        cls.pki = pki.Pki(cls.pkidir)
        cls.cert1, cls.key1 = cls.pki.pair("one", 0x1001, org="first")
        cls.cert2, cls.key2 = cls.pki.pair("two", 0x2002, org="renewed")
        cls.cert3, cls.key3 = cls.pki.pair("three", 0x3003, cn="127.0.0.1", org="third")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pkidir, ignore_errors=True)

    def setUp(self):
        self.tmp = os.path.realpath(pki.new_tmp())
        self.ca = self.pki.ca_cert
        pki.install(self.cert1, self.p("server.pem"))
        pki.install(self.key1, self.p("server.key"))
        os.mkdir(self.p("hooks.d"))
        hook = self.p("hooks.d", "build:start")
        with open(hook, "w") as f:
            f.write(HOOK.replace("{tmp}", self.tmp))
        os.chmod(hook, 0o755)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, *names):
        return os.path.join(self.tmp, *names)

    def daemon(self, **kw):
        return harness.Hookd(config(**kw), tmp=self.tmp, base_env=harness.plain_env,
                             env={"HOME": self.tmp})

    def ran(self):
        try:
            with open(self.p("ran")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def assert_delivered(self, d, conn, event_id, path="/webhook"):
        status, doc, _ = deliver(conn, event_id, path=path)
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["status"], "ok", doc)
        self.assertEqual(doc["id"], event_id)
        self.assertIn("%s build:start %s" % (event_id, harness.NF_INTEGRATION_NAME), self.ran())

    # ---- serving -----------------------------------------------------------

    def test_curl_with_cacert_delivers_and_runs_hook(self):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed")
        with self.daemon() as d:
            self.assertIn("tls=on", d.wait_log("msg=listening"))
            for host in ("localhost", "127.0.0.1"):
                event_id = "evt-curl-" + host
                cmd = ["curl", "-sS", "--max-time", "10", "--cacert", self.ca,
                       "-o", self.p("out.json"), "-w", "%{http_code}",
                       "--data-binary", "@" + harness.SAMPLE_PATH]
                for k, v in nf_headers(event_id).items():
                    cmd += ["-H", "%s: %s" % (k, v)]
                cmd.append("https://%s:%d/webhook" % (host, d.port))
                r = harness.run(cmd)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, "200")
                with open(self.p("out.json")) as f:
                    body = f.read()
                self.assertIn('"status":"ok"', body)
                self.assertIn("%s build:start %s" % (event_id, harness.NF_INTEGRATION_NAME),
                              self.ran())

    def test_keep_alive_connection_carries_several_deliveries(self):
        with self.daemon() as d:
            conn = d.https(self.ca)
            try:
                self.assert_delivered(d, conn, "evt-ka-1")
                sock = conn.sock
                self.assertIn(sock.version(), ("TLSv1.2", "TLSv1.3"))
                self.assert_delivered(d, conn, "evt-ka-2")
                self.assertIs(conn.sock, sock, "the connection was not kept")
            finally:
                conn.close()

    def test_clean_close_sends_close_notify(self):
        # A client that refuses ragged EOFs sees the end of the answer as a
        # TLS close_notify, both after a normal answer with Connection: close
        # and after an early error answer (the lingering close path).
        with self.daemon(extra_server="max_body = 1KiB") as d:
            ctx = ssl.create_default_context(cafile=self.ca)
            body = harness.sample_body()
            heads = "".join("%s: %s\r\n" % kv for kv in nf_headers("evt-close").items())
            requests = [
                ("POST /webhook HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\n"
                 "Connection: close\r\n\r\n" % (heads, len(body))).encode() + body,
                # 413 from the headers alone; part of the body follows.
                ("POST /webhook HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: 100000\r\n"
                 "\r\n" % heads).encode() + b"x" * 3000,
            ]
            for req, want in zip(requests, (b"HTTP/1.1 200 ", b"HTTP/1.1 413 ")):
                with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
                    s = ctx.wrap_socket(raw, server_hostname="localhost",
                                        suppress_ragged_eofs=False)
                    s.sendall(req)
                    data = b""
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        chunk = s.recv(65536)  # SSLEOFError without close_notify
                        if not chunk:
                            break
                        data += chunk
                    self.assertTrue(data.startswith(want), data[:200])
                    s.close()

    # ---- protocol versions and ciphers -----------------------------------------

    def test_tls11_is_refused_and_tls12_accepted(self):
        with self.daemon() as d:
            # The local OpenSSL may refuse TLS 1.1 before the server does:
            # either way no TLS 1.1 session may come about.
            rc, out = s_client(d.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
            self.assertIsNone(negotiated(out), out)
            # (s_client names the version it tried even when it failed: the
            # session it reports has no cipher and no master key.)
            self.assertNotRegex(out, r"(?m)^[ \t]*Master-Key:[ \t]*[0-9A-F]+")
            if shutil.which("curl"):
                r = harness.run(["curl", "-sS", "--max-time", "10", "--cacert", self.ca,
                            "--tlsv1.0", "--tls-max", "1.1",
                            "https://localhost:%d/webhook" % d.port])
                self.assertNotEqual(r.returncode, 0, r.stdout)
            # The same client with TLS 1.2 gets a session, so the refusal
            # above was the version, and the default suites are modern.
            rc, out = s_client(d.port, "-tls1_2", "-CAfile", self.ca)
            self.assertEqual(negotiated(out)[0], "TLSv1.2", out)
            self.assertRegex(negotiated(out)[1], r"^ECDHE-(RSA|ECDSA)-(AES\d+-GCM|CHACHA20)")
            self.assertIn("Verify return code: 0 (ok)", out)
            # A TLS 1.2 client offering only CBC suites finds nothing shared.
            rc, out = s_client(d.port, "-tls1_2", "-cipher", "AES128-SHA:AES256-SHA256")
            self.assertIsNone(negotiated(out), out)
            # And a default client gets TLS 1.2 or newer.
            ctx = ssl.create_default_context(cafile=self.ca)
            with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
            self.assertEqual(d.proc.poll(), None)

    def test_tls_ciphers_overrides_the_tls12_list(self):
        with self.daemon(extra_server="tls_ciphers = ECDHE-RSA-CHACHA20-POLY1305") as d:
            rc, out = s_client(d.port, "-tls1_2", "-CAfile", self.ca)
            self.assertEqual(negotiated(out), ("TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305"), out)
            rc, out = s_client(d.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
            self.assertIsNone(negotiated(out), out)

    # ---- SIGHUP --------------------------------------------------------------

    def test_sighup_serves_a_renewed_certificate(self):
        with self.daemon() as d:
            self.assertEqual(d.peer_serial(self.ca), 0x1001)
            old = d.https(self.ca)
            try:
                self.assert_delivered(d, old, "evt-before")
                # A renewal: new key and certificate at the same paths.
                pki.install(self.cert2, self.p("server.pem"))
                pki.install(self.key2, self.p("server.key"))
                line = d.reload()
                self.assertIn("config reloaded", line)
                self.assertIsNotNone(
                    d.wait_log(regex=r"tls certificate loaded.*serial=2002", timeout=10),
                    d.log_text())
                self.assertEqual(d.peer_serial(self.ca), 0x2002)
                conn = d.https(self.ca)
                try:
                    self.assert_delivered(d, conn, "evt-after")
                finally:
                    conn.close()
                # The connection opened before the reload is not cut and
                # keeps the certificate it was accepted with.
                self.assert_delivered(d, old, "evt-old-conn")
                self.assertEqual(int(old.sock.getpeercert()["serialNumber"], 16), 0x1001)
            finally:
                old.close()

    def test_sighup_with_a_bad_pair_keeps_the_old_certificate_and_config(self):
        with self.daemon() as d:
            self.assertEqual(d.peer_serial(self.ca), 0x1001)
            # A certificate whose key was not installed, together with a
            # config change: the whole reload fails.
            pki.install(self.cert3, self.p("server.pem"))
            d.write_config(config(extra="[endpoint second]\npath = /second\nscheme = none\n"))
            line = d.reload()
            self.assertIn("reload failed", line)
            # config() puts tls_cert on line 5 and tls_key on line 6.
            self.assertIn(":6: tls_key %s does not match tls_cert %s"
                          % (self.p("server.key"), self.p("server.pem")), line)
            self.assertEqual(d.peer_serial(self.ca), 0x1001)
            conn = d.https(self.ca)
            try:
                self.assert_delivered(d, conn, "evt-bad-reload")
                status, _, _ = deliver(conn, "evt-second", path="/second")
                self.assertEqual(status, 404, "the new config must not be in force")
            finally:
                conn.close()
            # A missing key fails the reload too, naming the file.
            os.unlink(self.p("server.key"))
            line = d.reload()
            self.assertIn("reload failed", line)
            self.assertIn(":6: tls_key %s: No such file or directory" % self.p("server.key"),
                          line)
            self.assertEqual(d.peer_serial(self.ca), 0x1001)
            # Installing the matching key makes the next reload good.
            pki.install(self.key3, self.p("server.key"))
            self.assertIn("config reloaded", d.reload())
            self.assertEqual(d.peer_serial(self.ca, host="127.0.0.1"), 0x3003)
            conn = d.https(self.ca, host="127.0.0.1")
            try:
                status, _, _ = deliver(conn, "evt-second-2", path="/second")
                self.assertNotEqual(status, 404)
            finally:
                conn.close()

    # ---- what is not TLS -------------------------------------------------------

    def test_plain_http_to_the_tls_port_is_dropped(self):
        with self.daemon(read_timeout="5s") as d:
            body = harness.sample_body()
            heads = "".join("%s: %s\r\n" % kv for kv in nf_headers("evt-plain").items())
            req = ("POST /webhook HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\n\r\n"
                   % (heads, len(body))).encode() + body
            with d.socket() as s:
                s.sendall(req)
                data, closed, secs = harness.read_until_closed(s, 8)
            self.assertTrue(closed, "the plaintext connection was left open")
            self.assertLess(secs, 3.0, "a plaintext request must fail at once, not time out")
            self.assertNotIn(b"HTTP/1.", data)
            # Other clients are served; the plaintext request ran nothing.
            conn = d.https(self.ca)
            try:
                self.assert_delivered(d, conn, "evt-after-plain")
            finally:
                conn.close()
            self.assertFalse([l for l in self.ran() if "evt-plain" in l], self.ran())
            self.assertEqual(d.count_log(r"evt-plain"), 0, d.log_text())

    def test_stalled_handshakes_are_closed_after_read_timeout(self):
        with self.daemon(read_timeout="2s") as d:
            t0 = time.monotonic()
            silent = d.socket()  # connects and sends nothing
            partial = d.socket()  # starts a ClientHello and stops
            partial.sendall(b"\x16\x03\x01\x00\xc8\x01\x00")
            try:
                # Meanwhile another client delivers.
                conn = d.https(self.ca)
                try:
                    self.assert_delivered(d, conn, "evt-meanwhile")
                finally:
                    conn.close()
                # ... while the stalled handshakes are still open.
                self.assertLess(time.monotonic() - t0, 1.8,
                                "the delivery waited for the stalled handshakes")
                for s in (silent, partial):
                    s.setblocking(False)
                    with self.assertRaises(BlockingIOError, msg="closed too early"):
                        s.recv(1)
                for s in (silent, partial):
                    data, closed, _ = harness.read_until_closed(s, 8)
                    self.assertTrue(closed, "a stalled handshake was left open")
                    self.assertNotIn(b"HTTP/1.", data)
                took = time.monotonic() - t0
                self.assertGreaterEqual(took, 1.9, "closed before read_timeout")
                self.assertLess(took, 5.0, "not closed at read_timeout")
            finally:
                silent.close()
                partial.close()
            conn = d.https(self.ca)
            try:
                self.assert_delivered(d, conn, "evt-after-stall")
            finally:
                conn.close()

    # ---- check and serve refuse a bad pair ---------------------------------------

    def test_check_and_serve_refuse_a_bad_pair_naming_the_file(self):
        cert, key = self.p("server.pem"), self.p("server.key")
        other = self.pki.key("other-%d.key" % os.getpid())
        pki.install(other, self.p("other.key"))
        with open(self.p("garbage.pem"), "w") as f:
            f.write("this is not a certificate\n")
        secret_key = self.pki.key("enc-%d.key" % os.getpid(), encrypted_with="hunter22")
        pki.install(secret_key, self.p("encrypted.key"))
        os.mkdir(self.p("dir.pem"))
        cases = [
            # (tls_cert, tls_key, extra [server] line, expected message)
            ("server.pem", "other.key", "",
             "tls_key %s does not match tls_cert %s" % (self.p("other.key"), cert)),
            ("server.pem", "missing.key", "",
             "tls_key %s: No such file or directory" % self.p("missing.key")),
            ("missing.pem", "server.key", "",
             "tls_cert %s: No such file or directory" % self.p("missing.pem")),
            ("garbage.pem", "server.key", "",
             "tls_cert %s: not a PEM certificate" % self.p("garbage.pem")),
            ("server.key", "server.key", "",
             "tls_cert %s: not a PEM certificate" % key),
            ("server.pem", "garbage.pem", "",
             "tls_key %s: not a PEM private key" % self.p("garbage.pem")),
            ("server.pem", "server.pem", "",
             "tls_key %s: not a PEM private key" % cert),
            ("server.pem", "encrypted.key", "",
             "tls_key %s: the key is encrypted" % self.p("encrypted.key")),
            ("dir.pem", "server.key", "",
             "tls_cert %s: not a regular file" % self.p("dir.pem")),
            ("server.pem", "server.key", "tls_ciphers = NO-SUCH-CIPHER",
             "tls_ciphers 'NO-SUCH-CIPHER' selects no cipher"),
        ]
        if os.geteuid() != 0:  # root reads a mode-000 file anyway
            pki.install(self.key1, self.p("locked.key"))
            os.chmod(self.p("locked.key"), 0)
            cases.append(("server.pem", "locked.key", "",
                          "tls_key %s: Permission denied" % self.p("locked.key")))
        ini = self.p("hookd.ini")
        for c, k, extra, want in cases:
            with self.subTest(cert=c, key=k, extra=extra):
                with open(ini, "w") as f:
                    f.write(config(tls_cert=c, tls_key=k, extra_server=extra))
                for command in ("check", "serve"):
                    r = harness.run([harness.HOOKD_BIN, "-c", ini, command], timeout=20)
                    self.assertEqual(r.returncode, 2, (command, r.stdout, r.stderr))
                    # One line: the config file and the line of the key the
                    # message names (config(): tls_cert 5, tls_key 6, the
                    # extra [server] line 7), then the message naming the file.
                    line = {"tls_cert": 5, "tls_key": 6, "tls_ciphers": 7}[want.split()[0]]
                    self.assertTrue(r.stderr.startswith("%s:%d: %s" % (ini, line, want)),
                                    (command, r.stderr))
                    self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                    self.assertNotIn("hunter22", r.stderr + r.stdout)

    def test_check_accepts_a_good_pair(self):
        ini = self.p("hookd.ini")
        with open(ini, "w") as f:
            f.write(config())
        r = harness.run([harness.HOOKD_BIN, "-c", ini, "check"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(https)", r.stdout)
        self.assertRegex(r.stdout, r"tls cert=%s key=%s .*serial=1001"
                         % (re.escape(self.p("server.pem")), re.escape(self.p("server.key"))))


if __name__ == "__main__":
    harness.main()
