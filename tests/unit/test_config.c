/*
 * config: every default, every key, every error. Each case writes its INI
 * text to hookd.ini in a fresh temporary directory (the test chdirs there,
 * so messages start with "hookd.ini:LINE:") and loads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "log.h"
#include "util.h"


static char tmpdir[PATH_MAX];
static char err[512];

static void write_file(const char *name, const char *text, size_t len)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		perror(name);
		exit(2);
	}
	close(fd);
}

static struct config *load(const char *ini)
{
	write_file("hookd.ini", ini, strlen(ini));
	err[0] = '\0';
	return config_load("hookd.ini", err, sizeof(err));
}

static char *in_dir(const char *rel)
{
	return xasprintf("%s/%s", tmpdir, rel);
}

/* A minimal valid endpoint: three lines. */
#define EP_A "[endpoint a]\npath = /a\nsecret = s3cret\n"

/* want ending in '*' is a prefix; otherwise the whole message. */
static const struct {
	const char *ini;
	const char *want;
} error_cases[] = {
	/* sections */
	{"[servr]\n", "hookd.ini:1: unknown section [servr]"},
	{"[endpoints a]\n", "hookd.ini:1: unknown section [endpoints a]"},
	{"[Server]\n", "hookd.ini:1: unknown section [Server]"},
	{"[server x]\n", "hookd.ini:1: section [server] takes no name"},
	{"[status 1]\n", "hookd.ini:1: section [status] takes no name"},
	{"[endpoint]\n", "hookd.ini:1: section [endpoint] needs a name: [endpoint NAME]"},
	{"[event]\n", "hookd.ini:1: section [event] needs a name: [event NAME]"},
	{"[endpoint a b]\n", "hookd.ini:1: bad endpoint name 'a b': letters, digits and _ . : - only, at most 128"},
	{"[endpoint -a]\n", "hookd.ini:1: bad endpoint name '-a'*"},
	{"[event -x]\n", "hookd.ini:1: bad event name '-x' in [event]: must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$ or be _default"},
	{"[event a/b]\n", "hookd.ini:1: bad event name 'a/b'*"},
	{"[event _other]\n", "hookd.ini:1: bad event name '_other'*"},
	{"[server\n", "hookd.ini:1: section header without ']'"},
	{"[server] x\n", "hookd.ini:1: unexpected text after ']'"},
	/* syntax */
	{"x = 1\n" EP_A, "hookd.ini:1: key 'x' is outside any section"},
	{"[server]\nlisten\n", "hookd.ini:2: expected 'key = value' or '[section]'"},
	{"[server]\nlisten ; = x\n", "hookd.ini:2: expected 'key = value' or '[section]'"},
	/* unknown and repeated keys */
	{"[server]\n\n\n;\n#\n\n\n\n\n\n\ntimout = 5s\n" EP_A,
	 "hookd.ini:12: unknown key 'timout' in [server]"},
	{EP_A "secrets = x\n", "hookd.ini:4: unknown key 'secrets' in [endpoint a]"},
	{EP_A "[event x]\nscheme = github\n", "hookd.ini:5: unknown key 'scheme' in [event x]"},
	{EP_A "[admin]\nport = 1\n", "hookd.ini:5: unknown key 'port' in [admin]"},
	{"[server]\nsecret = x\n", "hookd.ini:2: unknown key 'secret' in [server]"},
	{"[server]\ntimeout = 1s\ntimeout = 2s\n",
	 "hookd.ini:3: key 'timeout' given twice in [server] (first at line 2)"},
	{"[server]\ntimeout = 1s\n" EP_A "[server]\ntimeout = 2s\n",
	 "hookd.ini:7: key 'timeout' given twice in [server] (first at line 2)"},
	{EP_A "[endpoint a]\npath = /b\n",
	 "hookd.ini:5: key 'path' given twice in [endpoint a] (first at line 2)"},
	{EP_A "[event x]\nretries = 1\n[event x]\nretries = 2\n",
	 "hookd.ini:7: key 'retries' given twice in [event x] (first at line 5)"},
	/* durations, sizes, booleans, integers */
	{"[server]\ntimeout = 5x\n",
	 "hookd.ini:2: bad value '5x' for timeout in [server]: expected a duration such as 250ms, 30s, 5m, 1h, 30d"},
	{"[server]\ntimeout = 0\n", "hookd.ini:2: bad value '0' for timeout in [server]: must be more than 0"},
	{"[server]\ntimeout =\n", "hookd.ini:2: bad value '' for timeout in [server]: expected a duration*"},
	{"[server]\ntimeout = -1s\n", "hookd.ini:2: bad value '-1s' for timeout*"},
	{"[server]\nkill_grace = 1.5s\n", "hookd.ini:2: bad value '1.5s' for kill_grace*"},
	{"[server]\nread_timeout = 0ms\n", "hookd.ini:2: bad value '0ms' for read_timeout in [server]: must be more than 0"},
	{"[server]\nidle_timeout = 1w\n", "hookd.ini:2: bad value '1w' for idle_timeout*"},
	{"[server]\njournal_keep = 0d\n", "hookd.ini:2: bad value '0d' for journal_keep in [server]: must be more than 0"},
	{EP_A "tolerance = 5 m\n", "hookd.ini:4: bad value '5 m' for tolerance in [endpoint a]*"},
	{EP_A "retry_backoff = soon\n", "hookd.ini:4: bad value 'soon' for retry_backoff*"},
	{"[server]\nmax_body = 1MB\n",
	 "hookd.ini:2: bad value '1MB' for max_body in [server]: expected a size such as 512, 64KiB, 1MiB"},
	{"[server]\nmax_body = 0\n", "hookd.ini:2: bad value '0' for max_body in [server]: must be more than 0"},
	{"[server]\nmax_headers = 16 KiB\n", "hookd.ini:2: bad value '16 KiB' for max_headers*"},
	{"[server]\nmax_headers = 2MiB\n",
	 "hookd.ini:2: bad value '2MiB' for max_headers in [server]: must be at most 1MiB"},
	{"[server]\nmax_body = 2GiB\n",
	 "hookd.ini:2: bad value '2GiB' for max_body in [server]: must be at most 1GiB"},
	{"[server]\nmax_headers = 17179869183GiB\n", "hookd.ini:2: bad value '17179869183GiB' for max_headers*"},
	{"[server]\njournal_body_max = -1\n", "hookd.ini:2: bad value '-1' for journal_body_max*"},
	{"[server]\njournal_max_bytes = 0\n",
	 "hookd.ini:2: bad value '0' for journal_max_bytes in [server]: must be more than 0"},
	{"[server]\ninclude_output = maybe\n",
	 "hookd.ini:2: bad value 'maybe' for include_output in [server]: expected yes/no, true/false, on/off or 1/0"},
	{"[server]\ninclude_output = YES\n", "hookd.ini:2: bad value 'YES' for include_output*"},
	{EP_A "scheme = github\nallow_sha1 = 2\n", "hookd.ini:5: bad value '2' for allow_sha1*"},
	{"[server]\nmax_running = 0\n",
	 "hookd.ini:2: bad value '0' for max_running in [server]: expected a whole number, at least 1"},
	{"[server]\nmax_running = abc\n", "hookd.ini:2: bad value 'abc' for max_running*"},
	{"[server]\nmax_running = 99999999999\n", "hookd.ini:2: bad value '99999999999' for max_running*"},
	{"[server]\nmax_queued = -1\n",
	 "hookd.ini:2: bad value '-1' for max_queued in [server]: expected a whole number, at least 0"},
	{"[server]\nmax_connections = 0\n", "hookd.ini:2: bad value '0' for max_connections*"},
	{"[server]\njournal_max = 0\n",
	 "hookd.ini:2: bad value '0' for journal_max in [server]: expected a whole number, at least 1"},
	{EP_A "retries = 101\n",
	 "hookd.ini:4: bad value '101' for retries in [endpoint a]: expected a whole number from 0 to 100"},
	{EP_A "[event x]\nretries = -1\n", "hookd.ini:5: bad value '-1' for retries in [event x]*"},
	/* limits */
	{"[server]\nlimit_cpu = 1500ms\n",
	 "hookd.ini:2: bad value '1500ms' for limit_cpu in [server]: must be whole seconds"},
	{"[server]\nlimit_cpu = 500ms\n", "hookd.ini:2: bad value '500ms' for limit_cpu in [server]: must be whole seconds"},
	{"[server]\nlimit_cpu = x\n", "hookd.ini:2: bad value 'x' for limit_cpu*"},
	{"[server]\nlimit_nofile = -1\n", "hookd.ini:2: bad value '-1' for limit_nofile*"},
	{"[server]\nlimit_nproc = many\n", "hookd.ini:2: bad value 'many' for limit_nproc*"},
	{"[server]\nlimit_memory = 1GB\n", "hookd.ini:2: bad value '1GB' for limit_memory*"},
	/* env_prefix, pass_env, log_format */
	{"[server]\nenv_prefix =\n",
	 "hookd.ini:2: bad value '' for env_prefix in [server]: must match ^[A-Z][A-Z0-9_]*_$, e.g. HOOK_"},
	{"[server]\nenv_prefix = hook_\n", "hookd.ini:2: bad value 'hook_' for env_prefix*"},
	{"[server]\nenv_prefix = HOOK\n", "hookd.ini:2: bad value 'HOOK' for env_prefix*"},
	{"[server]\nenv_prefix = _HOOK_\n", "hookd.ini:2: bad value '_HOOK_' for env_prefix*"},
	{"[server]\nenv_prefix = 1X_\n", "hookd.ini:2: bad value '1X_' for env_prefix*"},
	{"[server]\nenv_prefix = H-X_\n", "hookd.ini:2: bad value 'H-X_' for env_prefix*"},
	{"[server]\nenv_prefix = _\n", "hookd.ini:2: bad value '_' for env_prefix*"},
	{"[server]\nenv_prefix = A234567890123456789012345678901234567890123456789012345678901234_\n",
	 "hookd.ini:2: bad value 'A234567890123456789012345678901234567890123456789012345678901234_' "
	 "for env_prefix in [server]: longer than 64 bytes"}, /* 65 bytes */
	{"[server]\npass_env = PATH 1X\n",
	 "hookd.ini:2: bad value 'PATH 1X' for pass_env in [server]: '1X' is not a variable name"},
	{"[server]\nlog_format = text\n",
	 "hookd.ini:2: bad value 'text' for log_format in [server]: expected logfmt or json"},
	/* listen */
	{"[server]\nlisten = 127.0.0.1\n",
	 "hookd.ini:2: bad value '127.0.0.1' for listen in [server]: expected host:port, [v6addr]:port or unix:/path"},
	{"[server]\nlisten = 127.0.0.1:70000\n",
	 "hookd.ini:2: bad value '127.0.0.1:70000' for listen in [server]: the port must be a number from 0 to 65535"},
	{"[server]\nlisten = 127.0.0.1:\n", "hookd.ini:2: bad value '127.0.0.1:' for listen*"},
	{"[server]\nlisten = 127.0.0.1:-1\n", "hookd.ini:2: bad value '127.0.0.1:-1' for listen*"},
	{"[server]\nlisten = ::1:9000\n",
	 "hookd.ini:2: bad value '::1:9000' for listen in [server]: an IPv6 address needs brackets: [::1]:9000"},
	{"[server]\nlisten = [::1]9000\n",
	 "hookd.ini:2: bad value '[::1]9000' for listen in [server]: expected [v6addr]:port"},
	{"[server]\nlisten = [zz]:9000\n",
	 "hookd.ini:2: bad value '[zz]:9000' for listen in [server]: not an IPv6 address in brackets"},
	{"[server]\nlisten = [127.0.0.1]:9000\n", "hookd.ini:2: bad value '[127.0.0.1]:9000' for listen*"},
	{"[server]\nlisten = :9000\n",
	 "hookd.ini:2: bad value ':9000' for listen in [server]: the host is missing (0.0.0.0:PORT listens on all)"},
	{"[server]\nlisten = unix:\n", "hookd.ini:2: bad value 'unix:' for listen in [server]: expected unix:/path"},
	/* check refuses what serve could not bind: no names, no bad IPv4. */
	{"[server]\nlisten = 256.1.1.1:9000\n",
	 "hookd.ini:2: bad value '256.1.1.1:9000' for listen in [server]: the host must be an IPv4 "
	 "address, localhost or * ([v6addr] for IPv6)"},
	{"[server]\nlisten = example.invalid:9000\n",
	 "hookd.ini:2: bad value 'example.invalid:9000' for listen*"},
	{"[server]\nlisten = 1.2.3:9000\n", "hookd.ini:2: bad value '1.2.3:9000' for listen*"},
	{"[server]\nlisten = 127.0.0.1 :9000\n", "hookd.ini:2: bad value '127.0.0.1 :9000' for listen*"},
	{EP_A "[admin]\nlisten = 10.0.0.256:9\n", "hookd.ini:5: bad value '10.0.0.256:9' for listen in [admin]*"},
	{"[server]\nlisten =\n", "hookd.ini:2: bad value '' for listen*"},
	{EP_A "[admin]\nlisten = localhost\n", "hookd.ini:5: bad value 'localhost' for listen in [admin]*"},
	{EP_A "[admin]\nlisten = 0.0.0.0:9100\n",
	 "hookd.ini:5: [admin] listen '0.0.0.0:9100' is not loopback or a unix socket, and no "
	 "token_file is set*"},
	{EP_A "[admin]\nlisten = 127.0.0.1:9100\ntoken_file = /nonexistent/token\n",
	 "hookd.ini:6: [admin] cannot read token_file '/nonexistent/token'*"},
	/* trusted_proxies / allow_from: the message after the colon is netaddr's */
	{"[server]\ntrusted_proxies = 10.0.0.1 nope\n",
	 "hookd.ini:2: bad value '10.0.0.1 nope' for trusted_proxies in [server]: *"},
	{EP_A "allow_from = somewhere\n", "hookd.ini:4: bad value 'somewhere' for allow_from in [endpoint a]: *"},
	/* endpoints */
	{"[server]\n", "hookd.ini: no [endpoint] section; hookd never serves an unauthenticated endpoint, add one (scheme = none must be explicit)"},
	{"", "hookd.ini: no [endpoint] section*"},
	{"; only a comment\n", "hookd.ini: no [endpoint] section*"},
	{"[endpoint a]\nsecret = x\n", "hookd.ini:1: endpoint 'a' has no path"},
	{"[endpoint a]\npath = a\n", "hookd.ini:2: bad value 'a' for path in [endpoint a]: must start with '/'"},
	{"[endpoint a]\npath = /a b\n", "hookd.ini:2: bad value '/a b' for path*"},
	{"[endpoint a]\npath = /a?x=1\n", "hookd.ini:2: bad value '/a?x=1' for path*"},
	{EP_A "[endpoint b]\npath = /a\nsecret = x\n",
	 "hookd.ini:5: endpoint 'b': path '/a' is already used by endpoint 'a'"},
	{"[endpoint a]\nsecret = x\n[endpoint b]\npath = /a\nsecret = y\n[endpoint a]\npath = /a\n",
	 "hookd.ini:7: endpoint 'a': path '/a' is already used by endpoint 'b'"},
	{"[endpoint a]\npath = /a\nscheme = github\n",
	 "hookd.ini:1: endpoint 'a' (scheme github) has no secret; hookd never serves an unauthenticated endpoint unless scheme = none"},
	{"[endpoint a]\npath = /a\n",
	 "hookd.ini:1: endpoint 'a' (scheme northflank) has no secret; hookd never serves an unauthenticated endpoint unless scheme = none"},
	{"[endpoint a]\npath = /a\nscheme = hmac\n", "hookd.ini:1: endpoint 'a' (scheme hmac) has no secret*"},
	{"[endpoint a]\npath = /a\nscheme = none\nsecret = x\n",
	 "hookd.ini:4: endpoint 'a': scheme none takes no secret"},
	{"[endpoint a]\npath = /a\nscheme = Github\n",
	 "hookd.ini:3: bad value 'Github' for scheme in [endpoint a]: expected northflank, github, gitlab, standard, stripe, slack, hmac, none, token or basic"},
	{"[endpoint a]\npath = /a\nsecret =\n", "hookd.ini:3: endpoint 'a': secret is empty"},
	/* quotes are kept: "" would be a two-byte secret */
	{"[endpoint a]\npath = /a\nsecret = \"\"\n",
	 "hookd.ini:3: endpoint 'a': secret is empty (quotes are kept: \"\" is not an empty string, and an empty secret is no secret)"},
	{"[endpoint a]\npath = /a\nscheme = github\nsecret = ''\n", "hookd.ini:4: endpoint 'a': secret is empty*"},
	{"[endpoint a]\npath = /a\nsecret = 0123456789abcdef \"\"\n", "hookd.ini:3: endpoint 'a': secret is empty*"},
	{"[endpoint a]\npath = /a\nsecret_file = sec-quotes\n", "hookd.ini:3: endpoint 'a': secret is empty*"},
	/* scheme = none where others can connect needs allow_from */
	{"[server]\nlisten = 0.0.0.0:9000\n[endpoint a]\npath = /a\nscheme = none\n",
	 "hookd.ini:5: endpoint 'a': scheme none verifies nothing and listen '0.0.0.0:9000' is not loopback: set allow_from to the addresses that may call it"},
	{"[server]\nlisten = *:9000\n[endpoint a]\npath = /a\nscheme = none\nallow_from =\n",
	 "hookd.ini:5: endpoint 'a': scheme none verifies nothing and listen '*:9000' *"},
	{"[server]\nlisten = [::]:9000\n" EP_A "[endpoint b]\npath = /b\nscheme = none\n",
	 "hookd.ini:8: endpoint 'b': scheme none verifies nothing*"},
	{"[server]\nlisten = 192.0.2.7:9000\n[endpoint a]\npath = /a\nscheme = none\n",
	 "hookd.ini:5: endpoint 'a': scheme none verifies nothing*"},
	{EP_A "replay_window = soon\n", "hookd.ini:4: bad value 'soon' for replay_window in [endpoint a]: *"},
	{EP_A "[event x]\nreplay_window = 1m\n", "hookd.ini:5: unknown key 'replay_window' in [event x]*"},
	/* quotes are no syntax: `"my secret"` would be the secrets `"my` and `secret"` */
	{"[endpoint a]\npath = /a\nsecret = \"my secret\"\n",
	 "hookd.ini:3: endpoint 'a': a secret starts or ends with a quote; secrets are "
	 "whitespace-separated and unquoted (one with spaces belongs in a secret_file)"},
	{"[endpoint a]\npath = /a\nsecret = 'tok'\n", "hookd.ini:3: endpoint 'a': a secret starts or ends with a quote*"},
	{"[endpoint a]\npath = /a\nsecret = old \"new\n", "hookd.ini:3: endpoint 'a': a secret starts or ends with a quote*"},
	{"[endpoint a]\npath = /a\nsecret = old new'\n", "hookd.ini:3: endpoint 'a': a secret starts or ends with a quote*"},
	{"[endpoint a]\npath = /a\nsecret = \"\n", "hookd.ini:3: endpoint 'a': a secret starts or ends with a quote*"},
	{EP_A "secret_env = X\n",
	 "hookd.ini:4: endpoint 'a': give only one of secret, secret_file and secret_env (secret is at line 3)"},
	{"[endpoint a]\npath = /a\nsecret_file = sec-one\nsecret = x\n",
	 "hookd.ini:4: endpoint 'a': give only one of secret, secret_file and secret_env (secret_file is at line 3)"},
	{"[endpoint a]\npath = /a\nsecret_file = missing.txt\n",
	 "hookd.ini:3: endpoint 'a': cannot read secret_file '*"},
	{"[endpoint a]\npath = /a\nsecret_file = adir\n", "hookd.ini:3: endpoint 'a': cannot read secret_file '*"},
	{"[endpoint a]\npath = /a\nsecret_file = sec-empty\n", "hookd.ini:3: endpoint 'a': secret_file '*"},
	{"[endpoint a]\npath = /a\nsecret_file =\n", "hookd.ini:3: bad value '' for secret_file*"},
	{"[endpoint a]\npath = /a\nsecret_env = HOOKD_TEST_UNSET\n",
	 "hookd.ini:3: endpoint 'a': the environment variable secret_env names is not set"},
	{"[endpoint a]\npath = /a\nsecret_env = HOOKD_TEST_EMPTY\n",
	 "hookd.ini:3: endpoint 'a': the environment variable secret_env names is empty"},
	/* Not a name: most likely the secret itself, so not quoted. */
	{"[endpoint a]\npath = /a\nsecret_env = 1BAD\n",
	 "hookd.ini:3: endpoint 'a': secret_env is not an environment variable name (letters, "
	 "digits and '_', not starting with a digit)"},
	/* pass_headers: header names, never one that carries a credential. */
	{EP_A "pass_headers = X-A b@d\n",
	 "hookd.ini:4: bad value 'X-A b@d' for pass_headers in [endpoint a]: 'b@d' is not a header name"},
	{EP_A "pass_headers = X-Northflank-Notification-Integration-Token\n",
	 "hookd.ini:4: endpoint 'a': pass_headers names X-Northflank-Notification-Integration-Token, "
	 "which carries a credential: a hook never gets one"},
	{EP_A "pass_headers = cookie\n", "hookd.ini:4: endpoint 'a': pass_headers names cookie*"},
	/* event_header and id_header: never a credential (they are logged and answered) */
	{"[endpoint a]\npath = /a\nscheme = token\nsecret = 0123456789abcdef\ntoken_header = X-Api-Key\n"
	 "id_header = x-api-key\n",
	 "hookd.ini:6: endpoint 'a': id_header names x-api-key, which carries a credential: it would "
	 "be logged, answered and given to hooks"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = u:0123456789abcdef\nevent = x\n"
	 "id_header = Authorization\n", "hookd.ini:6: endpoint 'a': id_header names Authorization*"},
	{"[endpoint a]\npath = /a\nscheme = hmac\nsecret = 0123456789abcdef\nevent_header = X-Signature\n",
	 "hookd.ini:5: endpoint 'a': event_header names X-Signature*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
	 "pass_headers = svix-signature\n", "hookd.ini:5: endpoint 'a': pass_headers names svix-signature*"},
	{EP_A "pass_headers = X-Req-Id x_req.id\n",
	 "hookd.ini:4: endpoint 'a': pass_headers names X-Req-Id and x_req.id, which are both "
	 "HEADER_X_REQ_ID"},
	{"[endpoint a]\npath = /a\nscheme = hmac\nsecret = x\npass_headers = X-Signature\n",
	 "hookd.ini:5: endpoint 'a': pass_headers names X-Signature*"},
	/* pass_env must not hand a hook the variable that holds a secret. */
	{"[server]\npass_env = PATH HOOKD_TEST_SECRET\n[endpoint a]\npath = /a\n"
	 "secret_env = HOOKD_TEST_SECRET\n",
	 "hookd.ini:2: pass_env names HOOKD_TEST_SECRET, which holds the secret of endpoint 'a' "
	 "(secret_env): a hook never gets a secret"},
	{"[endpoint a]\npath = /a\nsecret = x\n[endpoint b]\npath = /b\n"
	 "secret_env = HOOKD_TEST_SECRET\n[server]\npass_env = HOOKD_TEST_SECRET\n",
	 "hookd.ini:8: pass_env names HOOKD_TEST_SECRET, which holds the secret of endpoint 'b'*"},
	{EP_A "hooks_dir =\n", "hookd.ini:4: bad value '' for hooks_dir in [endpoint a]: expected a path"},
	/* scheme standard: the secret must be base64 */
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_!!!notbase64\n",
	 "hookd.ini:4: endpoint 'a': the secret is not whsec_ + valid base64 (scheme standard)"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_Y\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YQ=\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = Y===\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YQ=a\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YWJj=\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YQ==YQ==\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YW-i\n", "hookd.ini:4: endpoint 'a': the secret is not*"},
	{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_YWJj whsec_*\n",
	 "hookd.ini:4: endpoint 'a': secret 2 of 2 is not whsec_ + valid base64 (scheme standard)"},
	/* keys that belong to other schemes, wherever scheme is given */
	{EP_A "scheme = github\nalgorithm = sha512\n",
	 "hookd.ini:5: key 'algorithm' does not apply to scheme github (endpoint 'a')"},
	{"[endpoint a]\npath = /a\nsignature_header = X-Sig\nsecret = x\nscheme = github\n",
	 "hookd.ini:3: key 'signature_header' does not apply to scheme github (endpoint 'a')"},
	{EP_A "encoding = base64\n", "hookd.ini:4: key 'encoding' does not apply to scheme northflank (endpoint 'a')"},
	{EP_A "signature_prefix = sha256=\n", "hookd.ini:4: key 'signature_prefix' does not apply to scheme northflank*"},
	{EP_A "scheme = gitlab\nallow_sha1 = yes\n",
	 "hookd.ini:5: key 'allow_sha1' does not apply to scheme gitlab (endpoint 'a')"},
	{EP_A "tolerance = 1m\n", "hookd.ini:4: key 'tolerance' does not apply to scheme northflank (endpoint 'a')"},
	{EP_A "scheme = github\nevent_header = X-Ev\n",
	 "hookd.ini:5: key 'event_header' does not apply to scheme github (endpoint 'a')"},
	{EP_A "event_field = type\n", "hookd.ini:4: key 'event_field' does not apply to scheme northflank*"},
	{EP_A "id_header = X-Id\n", "hookd.ini:4: key 'id_header' does not apply to scheme northflank*"},
	{"[endpoint a]\npath = /a\nscheme = none\nsignature_header = X-S\n",
	 "hookd.ini:4: key 'signature_header' does not apply to scheme none (endpoint 'a')"},
	{EP_A "token_header = X-Token\n",
	 "hookd.ini:4: key 'token_header' does not apply to scheme northflank (endpoint 'a')"},
	{EP_A "scheme = hmac\ntoken_prefix = Token\n",
	 "hookd.ini:5: key 'token_prefix' does not apply to scheme hmac (endpoint 'a')"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = u:p\ntoken_header = X-T\n",
	 "hookd.ini:5: key 'token_header' does not apply to scheme basic (endpoint 'a')"},
	/* token and basic values */
	{EP_A "scheme = token\ntoken_header = X Token\n",
	 "hookd.ini:5: bad value 'X Token' for token_header in [endpoint a]: expected a header name"},
	{EP_A "scheme = token\ntoken_header =\n", "hookd.ini:5: bad value '' for token_header*"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = alice\n",
	 "hookd.ini:4: endpoint 'a': the secret is not user:password (scheme basic)"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = :pw\n",
	 "hookd.ini:4: endpoint 'a': the secret is not user:password (scheme basic)"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = alice:\n",
	 "hookd.ini:4: endpoint 'a': the secret is not user:password (scheme basic)"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret = a:b c\n",
	 "hookd.ini:4: endpoint 'a': secret 2 of 2 is not user:password (scheme basic)"},
	{"[endpoint a]\npath = /a\nscheme = basic\nsecret_env = HOOKD_TEST_BASIC_BAD\n",
	 "hookd.ini:4: endpoint 'a': line 3 of the environment variable secret_env names is not "
	 "user:password (scheme basic)"},
	{"[endpoint a]\npath = /a\nscheme = basic\n", "hookd.ini:1: endpoint 'a' (scheme basic) has no secret*"},
	{"[endpoint a]\npath = /a\nscheme = token\n", "hookd.ini:1: endpoint 'a' (scheme token) has no secret*"},
	/* the fixed event */
	{EP_A "event = -x\n",
	 "hookd.ini:4: bad value '-x' for event in [endpoint a]: expected an event name (letters, "
	 "digits, . _ : -)"},
	{EP_A "event =\n", "hookd.ini:4: bad value '' for event in [endpoint a]*"},
	{EP_A "event = a/b\n", "hookd.ini:4: bad value 'a/b' for event*"},
	{EP_A "event = _default\n", "hookd.ini:4: bad value '_default' for event*"},
	{EP_A "[event x]\nevent = y\n", "hookd.ini:5: unknown key 'event' in [event x]"},
	/* hmac key values */
	{EP_A "scheme = hmac\nalgorithm = md5\n",
	 "hookd.ini:5: bad value 'md5' for algorithm in [endpoint a]: expected sha256, sha512 or sha1"},
	{EP_A "scheme = hmac\nencoding = b64\n",
	 "hookd.ini:5: bad value 'b64' for encoding in [endpoint a]: expected hex or base64"},
	{EP_A "scheme = hmac\nsignature_header = X Sig\n",
	 "hookd.ini:5: bad value 'X Sig' for signature_header in [endpoint a]: expected a header name"},
	{EP_A "scheme = hmac\nsignature_header =\n", "hookd.ini:5: bad value '' for signature_header*"},
	{EP_A "scheme = hmac\nevent_field = data..type\n",
	 "hookd.ini:5: bad value 'data..type' for event_field in [endpoint a]: expected a dotted payload path such as data.build.id"},
	{EP_A "scheme = hmac\nevent_field = .type\n", "hookd.ini:5: bad value '.type' for event_field*"},
	{EP_A "scheme = hmac\nevent_field = type.\n", "hookd.ini:5: bad value 'type.' for event_field*"},
	/* delivery settings */
	{EP_A "mode = later\n", "hookd.ini:4: bad value 'later' for mode in [endpoint a]: expected sync or async"},
	{EP_A "serialize = a b\n", "hookd.ini:4: bad value 'a b' for serialize in [endpoint a]*"},
	{EP_A "mode = async\n", "hookd.ini:4: mode = async needs [server] state_dir or journal"},
	{EP_A "[event build]\nmode = async\n", "hookd.ini:5: mode = async needs [server] state_dir or journal"},
	{EP_A "[server]\nstate_dir =\n[event b]\nmode = async\n", "hookd.ini:7: mode = async needs [server] state_dir or journal"},
	{EP_A "respond_within = 5s\n",
	 "hookd.ini:4: respond_within needs [server] state_dir or journal (or 0 for off)"},
	{EP_A "[event b]\nrespond_within = 1s\n",
	 "hookd.ini:5: respond_within needs [server] state_dir or journal (or 0 for off)"},
	{EP_A "respond_within = soon\n", "hookd.ini:4: bad value 'soon' for respond_within*"},
	/* a shared journal (README "Running on several machines") */
	{EP_A "[server]\njournal = postgresql://hookd:pw@db.example/hookd\n",
	 "hookd.ini:5: journal: the connection string holds a password; put it in "
	 "journal_password_file (or libpq's ~/.pgpass) instead"},
	{EP_A "[server]\njournal = host=db password = pw dbname=hookd\n",
	 "hookd.ini:5: journal: the connection string holds a password*"},
	{EP_A "[server]\njournal = postgresql://db/hookd?sslmode=require&password=pw\n",
	 "hookd.ini:5: journal: the connection string holds a password*"},
	/* libpq decodes a URL's parameter names too */
	{EP_A "[server]\njournal = postgresql://db/hookd?%70assword=pw\n",
	 "hookd.ini:5: journal: the connection string holds a password*"},
	{EP_A "[server]\njournal = postgresql://db/hookd?sslmode=require&pass%77ord=pw\n",
	 "hookd.ini:5: journal: the connection string holds a password*"},
	{EP_A "[server]\njournal = db.example\n",
	 "hookd.ini:5: bad value 'db.example' for journal in [server]: expected a PostgreSQL "
	 "connection string (postgresql://HOST/DB, or keyword=value words)"},
	{EP_A "[server]\njournal_password_file = /nonexistent/pw\n",
	 "hookd.ini:5: cannot read journal_password_file '/nonexistent/pw': No such file or directory"},
	{EP_A "[server]\njournal = postgresql://db/hookd\njournal_password_file = /dev/null\n",
	 "hookd.ini:6: journal_password_file '/dev/null' is empty"},
	/* any readable file with a first line (every system has this one) */
	{EP_A "[server]\njournal_password_file = /etc/os-release\n",
	 "hookd.ini:5: journal_password_file is set but journal is not"},
	{EP_A "[server]\ninstance = a b\n",
	 "hookd.ini:5: bad value 'a b' for instance in [server]: expected 1 to 64 letters, digits, '.', '_' or '-'"},
	{EP_A "[server]\ninstance =\n", "hookd.ini:5: bad value '' for instance*"},
	{EP_A "[server]\njournal = postgresql://db/hookd\nlease = 2s\n",
	 "hookd.ini:6: lease must be at least 3s (it is renewed every lease/3)"},
	{EP_A "respond_within = -1s\n", "hookd.ini:4: bad value '-1s' for respond_within*"},
	{EP_A "[server]\nstate_dir = hookd.ini\n", "hookd.ini:5: state_dir *"},
	{EP_A "[server]\nstate_dir = hookd.ini/state\n", "hookd.ini:5: state_dir *"},
	/* TLS */
	{"[server]\ntls_cert = cert.pem\n" EP_A, "hookd.ini:2: tls_cert is set but tls_key is not; give both or neither"},
	{"[server]\ntls_key = key.pem\n" EP_A, "hookd.ini:2: tls_key is set but tls_cert is not; give both or neither"},
	/* [status] */
	{EP_A "[status]\n0 = 99\n",
	 "hookd.ini:5: bad value '99' for 0 in [status]: expected an HTTP status 200..599 that has "
	 "a body (not 204 or 304), or skip"},
	{EP_A "[status]\ndefault = skip\n",
	 "hookd.ini:5: bad value 'skip' for default in [status]: only an exit status may skip"},
	{EP_A "[status]\ntimeout = skip\n", "hookd.ini:5: bad value 'skip' for timeout in [status]*"},
	{EP_A "[status]\n78 = Skip\n", "hookd.ini:5: bad value 'Skip' for 78 in [status]*"},
	{EP_A "[status]\n78 = skip\n78 = 200\n",
	 "hookd.ini:6: exit status 78 given twice in [status] (first at line 5)"},
	/* [event] match */
	{EP_A "[event push]\nmatch = ref\n",
	 "hookd.ini:5: bad value 'ref' for match in [event push]: 'ref' is not PATH=GLOB or PATH!=GLOB"},
	{EP_A "[event push]\nmatch = ref=a a..b=c\n",
	 "hookd.ini:5: bad value 'ref=a a..b=c' for match in [event push]: 'a..b' is not a dotted "
	 "payload path*"},
	{EP_A "[event push]\nmatch = msg=\"a b\n", "hookd.ini:5: bad value 'msg=\"a b' for match in [event push]: unclosed double quote"},
	{EP_A "[event push]\nmatch =\n", "hookd.ini:5: *"},
	{EP_A "[event push]\nmatch = a=1\nmatch = b=2\n", "hookd.ini:6: key 'match' given twice*"},
	{EP_A "match = ref=main\n", "hookd.ini:4: unknown key 'match' in [endpoint a]"},
	{"[server]\nmatch = ref=main\n", "hookd.ini:2: unknown key 'match' in [server]"},
	{EP_A "[status]\n3 = 100\n", "hookd.ini:5: bad value '100' for 3 in [status]*"},
	{EP_A "[status]\n3 = 199\n", "hookd.ini:5: bad value '199' for 3 in [status]*"},
	{EP_A "[status]\n0 = 204\n", "hookd.ini:5: bad value '204' for 0 in [status]*"},
	{EP_A "[status]\ndefault = 304\n", "hookd.ini:5: bad value '304' for default in [status]*"},
	{EP_A "[status]\ntimeout = 101\n", "hookd.ini:5: bad value '101' for timeout in [status]*"},
	{EP_A "[status]\n0 = 600\n", "hookd.ini:5: bad value '600' for 0 in [status]*"},
	{EP_A "[status]\n1 = ok\n", "hookd.ini:5: bad value 'ok' for 1 in [status]*"},
	{EP_A "[status]\n256 = 500\n",
	 "hookd.ini:5: unknown key '256' in [status]: expected an exit status 0..255, default or timeout"},
	{EP_A "[status]\n-1 = 500\n", "hookd.ini:5: unknown key '-1' in [status]*"},
	{EP_A "[status]\nother = 500\n", "hookd.ini:5: unknown key 'other' in [status]*"},
	{EP_A "[status]\n0 = 200\n00 = 201\n", "hookd.ini:6: exit status 0 given twice in [status] (first at line 5)"},
	{EP_A "[status]\n3 = 500\n[status]\n3 = 501\n", "hookd.ini:7: exit status 3 given twice in [status] (first at line 5)"},
	{EP_A "[status]\ndefault = 500\ndefault = 502\n",
	 "hookd.ini:6: key 'default' given twice in [status] (first at line 5)"},
	{EP_A "[status]\ntimeout = 504\n[status]\ntimeout = 503\n",
	 "hookd.ini:7: key 'timeout' given twice in [status] (first at line 5)"},
};

static void test_errors(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(error_cases); i++) {
		struct config *c = load(error_cases[i].ini);
		const char *want = error_cases[i].want;
		size_t wl = strlen(want);
		bool prefix = wl && want[wl - 1] == '*';
		CHECK(c == NULL, "case %zu loaded: %s", i, error_cases[i].ini);
		if (prefix)
			CHECK(strncmp(err, want, wl - 1) == 0, "case %zu: got \"%s\", want \"%s\"", i, err, want);
		else
			CHECK_STR(err, want, "case %zu", i);
		CHECK(strchr(err, '\n') == NULL, "case %zu: message is one line", i);
		config_unref(c);
	}
}

/* Errors that need more than a table line. */
static void test_special_errors(void)
{
	struct config *c;

	c = config_load("no-such.ini", err, sizeof(err));
	CHECK(c == NULL, "missing file");
	CHECK_STR(err, "no-such.ini: cannot open: No such file or directory", "missing file");

	c = config_load("adir", err, sizeof(err));
	CHECK(c == NULL, "directory");
	CHECK_STR(err, "adir: cannot open: Is a directory", "directory");

	/* The path is quoted as given, directories and all. */
	char *abs = in_dir("no-such.ini");
	c = config_load(abs, err, sizeof(err));
	char *want = xasprintf("%s: cannot open: No such file or directory", abs);
	CHECK_STR(err, want, "absolute path");
	free(want);
	free(abs);

	/* inih's line buffer holds 198 characters; longer lines are refused. */
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "[endpoint a]\npath = /a\nsecret = ");
	for (int i = 0; i < 200; i++)
		sb_putc(&sb, 'x');
	sb_puts(&sb, "\n");
	c = load(sb.buf);
	CHECK(c == NULL, "long line");
	CHECK_STR(err, "hookd.ini:3: line too long (at most 198 characters; long secret lists belong in a secret_file)",
	          "long line");
	sb_free(&sb);

	/* Exactly the longest line inih takes (indentation not counted). */
	sb_init(&sb);
	sb_puts(&sb, "[endpoint a]\npath = /a\n    secret = ");
	for (int i = 0; i < 198 - 9; i++)
		sb_putc(&sb, 'y');
	sb_puts(&sb, "\n");
	c = load(sb.buf);
	CHECK(c != NULL, "longest line: %s", err);
	if (c)
		CHECK(c->endpoints[0].secrets[0].len == 189, "longest line kept whole");
	config_unref(c);
	sb_free(&sb);

	/* A long comment is no problem: comments never reach inih. */
	sb_init(&sb);
	sb_puts(&sb, "; ");
	for (int i = 0; i < 500; i++)
		sb_putc(&sb, 'c');
	sb_puts(&sb, "\n" EP_A);
	c = load(sb.buf);
	CHECK(c != NULL, "long comment: %s", err);
	config_unref(c);
	sb_free(&sb);

	static const char nul[] = "[endpoint a]\npath = /a\nsecret = a\0b\n";
	write_file("hookd.ini", nul, sizeof(nul) - 1);
	c = config_load("hookd.ini", err, sizeof(err));
	CHECK(c == NULL, "NUL byte");
	CHECK_STR(err, "hookd.ini:3: NUL byte in line", "NUL byte");

	/* A small error buffer truncates, never overflows. */
	char tiny[8];
	c = config_load("no-such.ini", tiny, sizeof(tiny));
	CHECK(c == NULL && strlen(tiny) == 7, "tiny buffer");
	c = config_load("no-such.ini", NULL, 0);
	CHECK(c == NULL, "NULL buffer");

	/* basic: a malformed line of the secret file is named by the file and
	 * its line (blank lines count), never by its text. */
	c = load("[endpoint a]\npath = /a\nscheme = basic\nsecret_file = sec-basic-bad\n");
	char *want_basic = xasprintf("hookd.ini:4: endpoint 'a': secret_file '%s/sec-basic-bad' line 4 "
	                             "is not user:password (scheme basic)", tmpdir);
	CHECK(c == NULL, "basic bad line");
	CHECK_STR(err, want_basic, "basic bad line");
	CHECK(!strstr(err, "nocolon"), "basic bad line: the text is not shown");
	free(want_basic);
	config_unref(c);
}

/* No error message ever holds a secret, whatever the mistake. */
static void test_secret_never_shown(void)
{
	static const char *const cases[] = {
		"[endpoint a]\npath = /a\nscheme = none\nsecret = TopSecret123\n",
		"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_TopSecret123!\n",
		"[endpoint a]\npath = /a\nscheme = standard\nsecret = TopSecret123 whsec_TopSecret123=\n",
		"[endpoint a]\npath = /a\nsecret = TopSecret123\nsecret = TopSecret123\n",
		"[endpoint a]\npath = /a\nsecret = TopSecret123\nsecret_file = sec-one\n",
		"[endpoint a]\npath = /a\nsecret_file = sec-secret\nsecret = x\n",
		"[endpoint a]\npath = /a\nscheme = none\nsecret_file = sec-secret\n",
		"[endpoint a]\npath = /a\nscheme = none\nsecret_env = HOOKD_TEST_TOPSECRET\n",
		"[endpoint a]\npath = /a\nscheme = standard\nsecret_env = HOOKD_TEST_TOPSECRET\n",
		"[endpoint a]\npath = /a\nsecret TopSecret123\n",
		"[endpoint a]\npath = /a\nsecrett = TopSecret123\n",
		"[server]\nsecret = TopSecret123\n",
		"[endpoint a]\npath = /a\nsecret = TopSecret123\n[endpoint b]\npath = /a\nsecret = TopSecret123\n",
		"[endpoint a]\npath = /a\nscheme = basic\nsecret = TopSecret123\n",
		"[endpoint a]\npath = /a\nscheme = basic\nsecret_file = sec-secret\n",
		"[endpoint a]\npath = /a\nscheme = basic\nsecret_env = HOOKD_TEST_TOPSECRET\n",
		"[endpoint a]\nsecret = TopSecret123\n",
		("[server]\npass_env = HOOKD_TEST_TOPSECRET\n[endpoint a]\npath = /a\n"
		 "secret_env = HOOKD_TEST_TOPSECRET\n"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config *c = load(cases[i]);
		CHECK(c == NULL, "secret case %zu loaded", i);
		CHECK(err[0] != '\0' && strstr(err, "TopSecret123") == NULL, "secret case %zu: %s", i, err);
		config_unref(c);
	}
}

static void test_defaults(void)
{
	struct config *c = load(EP_A);
	CHECK(c != NULL, "minimal config: %s", err);
	if (!c)
		return;
	char *hooks = in_dir("hooks.d");
	CHECK(c->refs == 1, "refs");
	CHECK_STR(c->path, "hookd.ini", "path as given");
	CHECK_STR(c->dir, tmpdir, "dir");
	CHECK_STR(c->listen, "127.0.0.1:9000", "listen");
	CHECK_STR(c->hooks_dir, hooks, "hooks_dir");
	CHECK(c->max_body == 1048576, "max_body");
	CHECK(c->server_opts.timeout_ms == 30000, "timeout");
	CHECK(c->kill_grace_ms == 5000, "kill_grace");
	CHECK(c->max_running == 16, "max_running");
	CHECK(c->max_queued == 256, "max_queued");
	CHECK_STR(c->env_prefix, "HOOK_", "env_prefix");
	CHECK(c->pass_env && c->pass_env[0] && c->pass_env[1] && c->pass_env[2] && !c->pass_env[3],
	      "pass_env count");
	if (c->pass_env && c->pass_env[0] && c->pass_env[1] && c->pass_env[2]) {
		CHECK_STR(c->pass_env[0], "PATH", "pass_env");
		CHECK_STR(c->pass_env[1], "LANG", "pass_env");
		CHECK_STR(c->pass_env[2], "TZ", "pass_env");
	}
	CHECK(!c->include_output, "include_output");
	CHECK(c->max_headers == 16384, "max_headers");
	CHECK(c->max_connections == 1024, "max_connections");
	CHECK(c->read_timeout_ms == 10000, "read_timeout");
	CHECK(c->idle_timeout_ms == 60000, "idle_timeout");
	CHECK(c->limit_nofile == -1 && c->limit_nproc == -1 && c->limit_memory == -1 &&
	      c->limit_cpu == -1, "limits unset");
	CHECK(!c->user && !c->group, "user/group");
	CHECK(c->trusted_proxies.n == 0, "trusted_proxies");
	CHECK(!c->state_dir, "state_dir");
	CHECK(c->journal_keep_ms == 30LL * 86400 * 1000, "journal_keep");
	CHECK(c->journal_max == 100000, "journal_max");
	CHECK(c->journal_body_max == 65536, "journal_body_max");
	CHECK(c->journal_max_bytes == 1024ULL * 1024 * 1024, "journal_max_bytes");
	CHECK(!c->tls_cert && !c->tls_key && !c->tls_ciphers, "tls");
	CHECK(c->log_format == LOG_FORMAT_LOGFMT, "log_format");
	CHECK(c->server_opts.mode == MODE_SYNC && c->server_opts.retries == 5 &&
	      c->server_opts.retry_backoff_ms == 10000 && !c->server_opts.serialize &&
	      !c->server_opts.serialize_scope && c->server_opts.set == 0, "server_opts");
	CHECK(!c->admin_listen, "admin");
	CHECK(c->nevents == 0, "events");
	CHECK(c->status.def == 500 && c->status.timeout == 504, "status def/timeout");
	CHECK(status_for_exit(&c->status, 0) == 200, "status 0");
	CHECK(status_for_exit(&c->status, 75) == 503, "status 75");
	CHECK(status_for_exit(&c->status, 1) == 500, "status 1");
	CHECK(status_for_exit(&c->status, 255) == 500, "status 255");
	CHECK(c->nendpoints == 1, "one endpoint");
	const struct endpoint *ep = &c->endpoints[0];
	CHECK_STR(ep->name, "a", "name");
	CHECK_STR(ep->path, "/a", "path");
	CHECK(ep->scheme == scheme_by_name("northflank"), "default scheme");
	CHECK(ep->nsecrets == 1 && ep->secrets[0].len == 6 &&
	      memcmp(ep->secrets[0].data, "s3cret", 6) == 0, "secret");
	CHECK_STR(ep->hooks_dir, hooks, "endpoint hooks_dir");
	CHECK(ep->tolerance_ms == 300000, "tolerance");
	CHECK(!ep->allow_sha1, "allow_sha1");
	CHECK_STR(ep->signature_header, "X-Signature", "signature_header");
	CHECK(ep->algorithm == HMAC_SHA256 && ep->encoding == SIG_HEX, "alg/enc");
	CHECK(!ep->signature_prefix && !ep->event_header && !ep->id_header, "hmac unset");
	CHECK_STR(ep->event_field, "event", "event_field");
	CHECK(!ep->token_header && !ep->token_prefix && !ep->fixed_event, "token, event unset");
	CHECK(ep->allow_from.n == 0, "allow_from");
	CHECK(ep->replay_window_ms == 0, "replay_window off");
	CHECK(ep->opts.set == 0 && !ep->opts.serialize, "endpoint opts");
	CHECK(ep->line == 1, "line");

	struct delivery_opts o;
	config_delivery_opts(c, ep, "build:start", &o);
	CHECK(o.timeout_ms == 30000 && o.mode == MODE_SYNC && o.retries == 5 &&
	      o.retry_backoff_ms == 10000 && !o.serialize && !o.serialize_scope, "default opts");
	free(hooks);
	config_unref(c);
}

static void test_every_key(void)
{
	static const char ini[] =
		"\xEF\xBB\xBF; a BOM, CRLF line ends, comments and indentation are all fine\r\n"
		"[server]\r\n"
		"  listen = [::1]:0        ; ephemeral\r\n"
		"  hooks_dir = ./hooks\r\n"
		"  max_body = 2MiB\r\n"
		"  timeout = 45s\r\n"
		"  kill_grace = 250ms\r\n"
		"  max_running = 3\r\n"
		"  max_queued = 0\r\n"
		"  env_prefix = WH_\r\n"
		"  pass_env = PATH HOME\r\n"
		"  include_output = yes\r\n"
		"  max_headers = 8KiB\r\n"
		"  max_connections = 10\r\n"
		"  read_timeout = 2s\r\n"
		"  idle_timeout = 1m\r\n"
		"  limit_nofile = 1024\r\n"
		"  limit_nproc = 64\r\n"
		"  limit_memory = 512MiB\r\n"
		"  limit_cpu = 2m\r\n"
		"  user = hookd\r\n"
		"  group = hookd\r\n"
		"  trusted_proxies = 10.0.0.0/8 ::1\r\n"
		"  state_dir = state\r\n"
		"  journal_keep = 7d\r\n"
		"  journal_max = 500\r\n"
		"  journal_body_max = 0\r\n"
		"  tls_cert = tls/cert.pem\r\n"
		"  tls_key = /etc/hookd/key.pem\r\n"
		"  tls_ciphers = HIGH:!aNULL\r\n"
		"  log_format = json\r\n"
		"\r\n"
		"[endpoint h]\r\n"
		"path = /hooks/h\r\n"
		"scheme = hmac\r\n"
		"secret = one two\r\n"
		"hooks_dir = /srv/h.d\r\n"
		"signature_header = X-Hub-Sig\r\n"
		"algorithm = sha512\r\n"
		"encoding = base64\r\n"
		"signature_prefix = sha512=\r\n"
		"event_header = X-Event\r\n"
		"event_field = data.kind\r\n"
		"id_header = X-Id\r\n"
		"allow_from = 192.168.0.0/16\r\n"
		"replay_window = 10m\r\n"
		"mode = async\r\n"
		"retries = 0\r\n"
		"retry_backoff = 0\r\n"
		"serialize = data.service.id\r\n"
		"timeout = 2m\r\n"
		"[endpoint g]\r\n"
		"path = /g\r\n"
		"scheme = github\r\n"
		"secret = gh\r\n"
		"allow_sha1 = on\r\n"
		"[endpoint s]\r\n"
		"path = /s\r\n"
		"scheme = stripe\r\n"
		"secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\r\n"
		"tolerance = 30s\r\n"
		"[endpoint slack]\r\n"
		"path = /slack\r\n"
		"scheme = slack\r\n"
		"secret = sl\r\n"
		"[endpoint gl]\r\n"
		"path = /gl\r\n"
		"scheme = gitlab\r\n"
		"secret = tok\r\n"
		"[endpoint open]\r\n"
		"path = /open\r\n"
		"scheme = none\r\n"
		"event_header = X-Type\r\n"
		"[endpoint am]\r\n"
		"path = /am\r\n"
		"scheme = token\r\n"
		"secret = t1 t2\r\n"
		"event = alert\r\n"
		"[endpoint key]\r\n"
		"path = /key\r\n"
		"scheme = token\r\n"
		"secret = k\r\n"
		"token_header = X-Api-Key\r\n"
		"token_prefix = Token\r\n"
		"id_header = X-Id\r\n"
		"[endpoint kuma]\r\n"
		"path = /kuma\r\n"
		"scheme = basic\r\n"
		"secret_file = sec-basic\r\n"
		"event_field = monitor.type\r\n"
		"[event build:success]\r\n"
		"timeout = 10m\r\n"
		"mode = sync\r\n"
		"retries = 9\r\n"
		"retry_backoff = 1h\r\n"
		"serialize = data.id\r\n"
		"[status]\r\n"
		"1 = 422\r\n"
		"[admin]\r\n"
		"listen = 127.0.0.1:0\r\n";
	struct config *c = load(ini);
	CHECK(c != NULL, "every key: %s", err);
	if (!c)
		return;
	char *hooks = in_dir("hooks"), *state = in_dir("state"), *cert = in_dir("tls/cert.pem");
	CHECK_STR(c->listen, "[::1]:0", "listen");
	CHECK_STR(c->hooks_dir, hooks, "hooks_dir");
	CHECK(c->max_body == 2 * 1048576, "max_body");
	CHECK(c->server_opts.timeout_ms == 45000 && c->server_opts.set == OPT_TIMEOUT, "timeout");
	CHECK(c->kill_grace_ms == 250, "kill_grace");
	CHECK(c->max_running == 3, "max_running");
	CHECK(c->max_queued == 0, "max_queued");
	CHECK_STR(c->env_prefix, "WH_", "env_prefix");
	CHECK(c->pass_env[0] && c->pass_env[1] && !c->pass_env[2], "pass_env count");
	CHECK_STR(c->pass_env[1], "HOME", "pass_env");
	CHECK(c->include_output, "include_output");
	CHECK(c->max_headers == 8192, "max_headers");
	CHECK(c->max_connections == 10, "max_connections");
	CHECK(c->read_timeout_ms == 2000, "read_timeout");
	CHECK(c->idle_timeout_ms == 60000, "idle_timeout");
	CHECK(c->limit_nofile == 1024, "limit_nofile");
	CHECK(c->limit_nproc == 64, "limit_nproc");
	CHECK(c->limit_memory == 512LL * 1048576, "limit_memory");
	CHECK(c->limit_cpu == 120, "limit_cpu");
	CHECK_STR(c->user, "hookd", "user");
	CHECK_STR(c->group, "hookd", "group");
	CHECK(c->trusted_proxies.n == 2, "trusted_proxies");
	CHECK_STR(c->state_dir, state, "state_dir");
	CHECK(c->journal_keep_ms == 7LL * 86400000, "journal_keep");
	CHECK(c->journal_max == 500, "journal_max");
	CHECK(c->journal_body_max == 0, "journal_body_max");
	CHECK_STR(c->tls_cert, cert, "tls_cert");
	CHECK_STR(c->tls_key, "/etc/hookd/key.pem", "tls_key");
	CHECK_STR(c->tls_ciphers, "HIGH:!aNULL", "tls_ciphers");
	CHECK(c->log_format == LOG_FORMAT_JSON, "log_format");
	CHECK_STR(c->admin_listen, "127.0.0.1:0", "admin listen");
	CHECK(status_for_exit(&c->status, 1) == 422 && status_for_exit(&c->status, 0) == 200,
	      "status");

	CHECK(c->nendpoints == 9, "endpoints");
	const struct endpoint *h = config_endpoint_by_name(c, "h");
	CHECK(h != NULL, "h");
	if (h) {
		CHECK(h->scheme == scheme_by_name("hmac"), "scheme");
		CHECK(h->nsecrets == 2 && h->secrets[1].len == 3 && memcmp(h->secrets[1].data, "two", 3) == 0,
		      "rotation");
		CHECK_STR(h->hooks_dir, "/srv/h.d", "hooks_dir");
		CHECK_STR(h->signature_header, "X-Hub-Sig", "signature_header");
		CHECK(h->algorithm == HMAC_SHA512, "algorithm");
		CHECK(h->encoding == SIG_BASE64, "encoding");
		CHECK_STR(h->signature_prefix, "sha512=", "signature_prefix");
		CHECK_STR(h->event_header, "X-Event", "event_header");
		CHECK_STR(h->event_field, "data.kind", "event_field");
		CHECK_STR(h->id_header, "X-Id", "id_header");
		CHECK(h->allow_from.n == 1, "allow_from");
		CHECK(h->replay_window_ms == 600000, "replay_window");
		CHECK(h->opts.set == (OPT_MODE | OPT_RETRIES | OPT_RETRY_BACKOFF | OPT_SERIALIZE | OPT_TIMEOUT),
		      "opts.set");
		CHECK(h->opts.mode == MODE_ASYNC && h->opts.retries == 0 && h->opts.retry_backoff_ms == 0 &&
		      h->opts.timeout_ms == 120000, "opts");
		CHECK_STR(h->opts.serialize, "data.service.id", "serialize");
		CHECK_STR(h->opts.serialize_scope, "endpoint h", "serialize_scope");
		CHECK(h->line == 33, "section line");
	}
	const struct endpoint *g = config_endpoint_by_path(c, "/g");
	CHECK(g && g->scheme == scheme_by_name("github") && g->allow_sha1, "github allow_sha1");
	CHECK(g && strcmp(g->hooks_dir, hooks) == 0, "endpoint hooks_dir defaults to the server's");
	const struct endpoint *s = config_endpoint_by_name(c, "s");
	/* stripe keys HMAC with the whole secret, whsec_ and all */
	CHECK(s && s->scheme == scheme_by_name("stripe") && s->tolerance_ms == 30000 && s->nsecrets == 1 &&
	      s->secrets[0].len == 38 && memcmp(s->secrets[0].data, "whsec_", 6) == 0, "stripe");
	const struct endpoint *sl = config_endpoint_by_path(c, "/slack");
	CHECK(sl && sl->scheme == scheme_by_name("slack") && sl->tolerance_ms == 300000, "slack");
	const struct endpoint *gl = config_endpoint_by_path(c, "/gl");
	CHECK(gl && gl->scheme == scheme_by_name("gitlab"), "gitlab");
	const struct endpoint *open = config_endpoint_by_name(c, "open");
	CHECK(open && open->scheme == scheme_by_name("none") && open->nsecrets == 0 &&
	      strcmp(open->event_header, "X-Type") == 0, "none");
	const struct endpoint *am = config_endpoint_by_name(c, "am");
	CHECK(am && am->scheme == scheme_by_name("token") && am->nsecrets == 2 &&
	      !am->token_header && !am->token_prefix && strcmp(am->fixed_event, "alert") == 0,
	      "token, fixed event");
	const struct endpoint *key = config_endpoint_by_name(c, "key");
	/* The token header is the endpoint's own credential header. */
	CHECK(key && strcmp(key->token_header, "X-Api-Key") == 0 &&
	      strcmp(key->token_prefix, "Token") == 0 &&
	      strcmp(key->signature_header, "X-Api-Key") == 0 && !key->fixed_event,
	      "token_header, token_prefix");
	CHECK(key && header_is_credential("x-api-key", key->signature_header), "token header credential");
	const struct endpoint *kuma = config_endpoint_by_name(c, "kuma");
	CHECK(kuma && kuma->scheme == scheme_by_name("basic") && kuma->nsecrets == 2 &&
	      kuma->secrets[0].line == 1 && kuma->secrets[1].line == 3 &&
	      strcmp(kuma->event_field, "monitor.type") == 0, "basic");

	CHECK(c->nevents == 1, "events");
	if (c->nevents == 1) {
		const struct event_rule *r = &c->events[0];
		CHECK_STR(r->name, "build:success", "event name");
		CHECK(r->opts.timeout_ms == 600000 && r->opts.mode == MODE_SYNC && r->opts.retries == 9 &&
		      r->opts.retry_backoff_ms == 3600000, "event opts");
		CHECK_STR(r->opts.serialize_scope, "event build:success", "event scope");
	}
	free(hooks);
	free(state);
	free(cert);
	config_unref(c);
}

/* Repeated sections merge; indented keys are keys, never continuations. */
static void test_merge(void)
{
	struct config *c = load("[server]\n"
	                        "listen = 127.0.0.1:0\n"
	                        "[endpoint a]\n"
	                        "path = /a\n"
	                        "[server]\n"
	                        "    timeout = 7s\n"
	                        "    kill_grace = 1s\n"
	                        "[endpoint a]\n"
	                        "  scheme = gitlab\n"
	                        "  secret = t\n"
	                        "[event x]\n"
	                        "retries = 1\n"
	                        "[event x]\n"
	                        "timeout = 1s\n"
	                        "[status]\n"
	                        "2 = 409\n"
	                        "[status]\n"
	                        "3 = 410\n");
	CHECK(c != NULL, "merge: %s", err);
	if (!c)
		return;
	CHECK_STR(c->listen, "127.0.0.1:0", "listen");
	CHECK(c->server_opts.timeout_ms == 7000 && c->kill_grace_ms == 1000, "server merged");
	CHECK(c->nendpoints == 1 && c->endpoints[0].scheme == scheme_by_name("gitlab") &&
	      c->endpoints[0].nsecrets == 1 && c->endpoints[0].line == 3, "endpoint merged");
	CHECK(c->nevents == 1 && c->events[0].opts.retries == 1 && c->events[0].opts.timeout_ms == 1000 &&
	      c->events[0].opts.set == (OPT_RETRIES | OPT_TIMEOUT), "event merged");
	CHECK(status_for_exit(&c->status, 2) == 409 && status_for_exit(&c->status, 3) == 410,
	      "status merged");
	config_unref(c);
}

static void test_values(void)
{
	static const struct {
		const char *server; /* lines for [server] */
		const char *listen;
		int64_t limit_cpu;
	} cases[] = {
		{"listen = 0.0.0.0:65535\n", "0.0.0.0:65535", -1},
		{"listen = localhost:8080\n", "localhost:8080", -1},
		{"listen = *:8080\n", "*:8080", -1},
		{"listen = [::]:9000\n", "[::]:9000", -1},
		{"listen = unix:/run/hookd.sock\n", "unix:/run/hookd.sock", -1},
		{"limit_cpu = 30\n", "127.0.0.1:9000", 30},
		{"limit_cpu = 1h\n", "127.0.0.1:9000", 3600},
		{"limit_cpu = 2000ms\n", "127.0.0.1:9000", 2},
		{"limit_cpu =\n", "127.0.0.1:9000", -1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *ini = xasprintf("[server]\n%s" EP_A, cases[i].server);
		struct config *c = load(ini);
		CHECK(c != NULL, "value case %zu: %s", i, err);
		if (c) {
			CHECK_STR(c->listen, cases[i].listen, "value case %zu", i);
			CHECK(c->limit_cpu == cases[i].limit_cpu, "value case %zu: limit_cpu %lld", i,
			      (long long)c->limit_cpu);
		}
		config_unref(c);
		free(ini);
	}

	/* token_prefix: empty is no prefix, not the default. */
	struct config *tc = load("[endpoint a]\npath = /a\nscheme = token\nsecret = x\n"
	                         "token_header = X-Token\ntoken_prefix =\n");
	CHECK(tc && tc->endpoints[0].token_prefix && !tc->endpoints[0].token_prefix[0],
	      "token_prefix empty: %s", err);
	config_unref(tc);

	/* Empty values: none passed through, no limits, nothing optional. */
	struct config *c = load("[server]\npass_env =\nlimit_nofile =\nlimit_memory =\nuser =\n"
	                        "state_dir =\ntrusted_proxies =\n" EP_A "allow_from =\n"
	                        "[admin]\nlisten =\n");
	CHECK(c != NULL, "empty values: %s", err);
	if (c) {
		CHECK(c->pass_env && c->pass_env[0] == NULL, "pass_env empty");
		CHECK(c->limit_nofile == -1 && c->limit_memory == -1, "limits empty");
		CHECK(!c->user && !c->state_dir && !c->admin_listen, "optional empty");
		CHECK(c->trusted_proxies.n == 0 && c->endpoints[0].allow_from.n == 0, "lists empty");
	}
	config_unref(c);

	/* Boolean spellings. */
	static const struct {
		const char *v;
		bool want;
	} bools[] = {
		{"yes", true}, {"no", false}, {"true", true}, {"false", false},
		{"on", true},  {"off", false}, {"1", true},   {"0", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bools); i++) {
		char *ini = xasprintf("[server]\ninclude_output = %s\n" EP_A, bools[i].v);
		c = load(ini);
		CHECK(c && c->include_output == bools[i].want, "bool %s: %s", bools[i].v, err);
		config_unref(c);
		free(ini);
	}

	/* A 128-byte event name: longer than inih's own section buffer. */
	char name[129];
	memset(name, 'e', 128);
	name[128] = '\0';
	char *ini = xasprintf(EP_A "[event %s]\nretries = 2\n[event _default]\nretries = 1\n", name);
	c = load(ini);
	CHECK(c && c->nevents == 2 && strcmp(c->events[0].name, name) == 0, "long event name: %s", err);
	config_unref(c);
	free(ini);
	ini = xasprintf(EP_A "[event %se]\n", name);
	c = load(ini);
	CHECK(c == NULL && strncmp(err, "hookd.ini:4: bad event name", 27) == 0, "129-byte event name: %s",
	      err);
	free(ini);
}

/* Valid but unwise: a warning each, the config loads. */
static void test_warnings(void)
{
	static const struct {
		const char *ini;
		const char *want; /* the warnings, joined by '|'; "" for none */
	} cases[] = {
		{EP_A, "hookd.ini:3: endpoint 'a': the secret is 6 bytes; use 16 or more"},
		{"[endpoint a]\npath = /a\nsecret = 0123456789abcdef\n", ""},
		{"[endpoint a]\npath = /a\nsecret = 0123456789abcdef short\n",
		 "hookd.ini:3: endpoint 'a': secret 2 of 2 is 5 bytes; use 16 or more"},
		/* standard: the decoded key counts */
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_aGVsbG8ga2V5IQ==\n",
		 "hookd.ini:4: endpoint 'a': the secret is 10 bytes; use 16 or more"},
		{"[endpoint a]\npath = /a\nsecret_file = sec-one\n[endpoint b]\npath = /b\n"
		 "scheme = gitlab\nsecret = x\n",
		 "hookd.ini:3: endpoint 'a': the secret is 10 bytes; use 16 or more|"
		 "hookd.ini:7: endpoint 'b': the secret is 1 bytes; use 16 or more"},
		/* scheme = none: loopback, a unix socket or allow_from */
		{"[server]\nlisten = 127.0.0.2:0\n[endpoint a]\npath = /a\nscheme = none\n", ""},
		{"[server]\nlisten = localhost:0\n[endpoint a]\npath = /a\nscheme = none\n", ""},
		{"[server]\nlisten = [::1]:0\n[endpoint a]\npath = /a\nscheme = none\n", ""},
		{"[server]\nlisten = unix:hookd.sock\n[endpoint a]\npath = /a\nscheme = none\n", ""},
		{"[server]\nlisten = 0.0.0.0:0\n[endpoint a]\npath = /a\nscheme = none\n"
		 "allow_from = 10.0.0.0/8\n", ""},
		{"[endpoint a]\npath = /a\nscheme = none\n", ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config *c = load(cases[i].ini);
		CHECK(c != NULL, "warning case %zu: %s", i, err);
		if (!c)
			continue;
		struct strbuf sb;
		sb_init(&sb);
		sb_puts(&sb, "");
		for (size_t k = 0; k < c->nwarnings; k++) {
			if (k)
				sb_putc(&sb, '|');
			sb_puts(&sb, c->warnings[k]);
		}
		CHECK_STR(sb.buf, cases[i].want, "warning case %zu", i);
		sb_free(&sb);
		config_unref(c);
	}
}

/* Relative paths are relative to the config file's directory, not the cwd. */
static void test_paths(void)
{
	mkdir("sub", 0700);
	write_file("sub/key", "k1\n", 3);
	static const char ini[] = "[server]\n"
	                          "listen = unix:run/hookd.sock\n"
	                          "hooks_dir = ../hooks.d\n"
	                          "state_dir = .\n"
	                          "tls_cert = ./c.pem\n"
	                          "tls_key = k.pem\n"
	                          "[endpoint a]\n"
	                          "path = /a\n"
	                          "secret_file = key\n"
	                          "[endpoint b]\n"
	                          "path = /b\n"
	                          "secret = x\n"
	                          "hooks_dir = b.d\n"
	                          "[admin]\n"
	                          "listen = unix:admin.sock\n";
	write_file("sub/hookd.ini", ini, strlen(ini));
	struct config *c = config_load("sub/hookd.ini", err, sizeof(err));
	CHECK(c != NULL, "paths: %s", err);
	if (!c)
		return;
	char *dir = in_dir("sub");
	char *want;
	CHECK_STR(c->path, "sub/hookd.ini", "path as given");
	CHECK_STR(c->dir, dir, "dir");
	want = xasprintf("unix:%s/run/hookd.sock", dir);
	CHECK_STR(c->listen, want, "unix listen");
	free(want);
	want = xasprintf("%s/../hooks.d", dir);
	CHECK_STR(c->hooks_dir, want, "hooks_dir");
	CHECK_STR(c->endpoints[0].hooks_dir, want, "endpoint default hooks_dir");
	free(want);
	CHECK_STR(c->state_dir, dir, "state_dir .");
	want = xasprintf("%s/c.pem", dir);
	CHECK_STR(c->tls_cert, want, "tls_cert ./");
	free(want);
	want = xasprintf("%s/k.pem", dir);
	CHECK_STR(c->tls_key, want, "tls_key");
	free(want);
	want = xasprintf("%s/b.d", dir);
	CHECK_STR(c->endpoints[1].hooks_dir, want, "endpoint hooks_dir");
	free(want);
	want = xasprintf("unix:%s/admin.sock", dir);
	CHECK_STR(c->admin_listen, want, "admin unix listen");
	free(want);
	/* secret_file "key" was read from sub/, not from the cwd */
	CHECK(c->endpoints[0].nsecrets == 1 && c->endpoints[0].secrets[0].len == 2 &&
	      memcmp(c->endpoints[0].secrets[0].data, "k1", 2) == 0, "secret_file relative");
	want = xasprintf("%s/key", dir);
	CHECK_STR(c->endpoints[0].secret_file, want, "secret_file kept, absolute (for check)");
	free(want);
	free(dir);
	config_unref(c);
}

static void test_secrets(void)
{
	static const struct {
		const char *ini;
		size_t n;         /* secrets expected */
		const char *last; /* the last one's bytes */
		size_t last_len;
	} cases[] = {
		{"[endpoint a]\npath = /a\nsecret = one  two\tthree\n", 3, "three", 5},
		{"[endpoint a]\npath = /a\nsecret = tok;en\n", 1, "tok;en", 6},
		/* a quote inside a secret is the secret's own */
		{"[endpoint a]\npath = /a\nsecret = it's  o\"k\n", 2, "o\"k", 3},
		{"[endpoint a]\npath = /a\nsecret = tok ; comment\n", 1, "tok", 3},
		{"[endpoint a]\npath = /a\nsecret_file = sec-one\n", 1, "filesecret", 10},
		{"[endpoint a]\npath = /a\nsecret_file = sec-two\n", 2, "new", 3},
		{"[endpoint a]\npath = /a\nsecret_file = sec-crlf\n", 1, "crlf", 4},
		{"[endpoint a]\npath = /a\nsecret_env = HOOKD_TEST_SECRET\n", 2, "env2", 4},
		/* one secret a line: a secret may hold spaces (GitHub's example) */
		{"[endpoint a]\npath = /a\nsecret_file = sec-spaces\n", 1, "It's a Secret to Everybody", 26},
		/* standard: the key is the base64-decoded secret, whsec_ optional */
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
		 1, "\x31\xf2\x90\xf6\xbf\x06\x29\x8a\xab\x4f\x08\xd4\x3c\x3f\x08\x2c\xf6\x48\xa3\x62\xda\x2d\xa4\xb0", 24},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
		 1, "\x31\xf2\x90\xf6\xbf\x06\x29\x8a\xab\x4f\x08\xd4\x3c\x3f\x08\x2c\xf6\x48\xa3\x62\xda\x2d\xa4\xb0", 24},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_aGVsbG8ga2V5IQ==\n", 1, "hello key!", 10},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = whsec_aGVsbG8ga2V5IQ\n", 1, "hello key!", 10},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YWI=\n", 1, "ab", 2},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret = YWJj whsec_YQ==\n", 2, "a", 1},
		{"[endpoint a]\npath = /a\nscheme = standard\nsecret_file = sec-std\n", 1, "hello key!", 10},
		/* basic: user:password lines as they are; the password may hold ':' and spaces */
		{"[endpoint a]\npath = /a\nscheme = basic\nsecret_file = sec-basic\n", 2,
		 "bob:pass:with colon", 19},
		{"[endpoint a]\npath = /a\nscheme = basic\nsecret = alice:pw bob:x\n", 2, "bob:x", 5},
		/* token: the secrets are the tokens, rotation as for every scheme */
		{"[endpoint a]\npath = /a\nscheme = token\nsecret = old new\n", 2, "new", 3},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config *c = load(cases[i].ini);
		CHECK(c != NULL, "secret case %zu: %s", i, err);
		if (!c)
			continue;
		const struct endpoint *ep = &c->endpoints[0];
		CHECK(ep->nsecrets == cases[i].n, "secret case %zu: %zu secrets", i, ep->nsecrets);
		if (ep->nsecrets == cases[i].n && cases[i].n) {
			const struct secret *s = &ep->secrets[cases[i].n - 1];
			CHECK(s->len == cases[i].last_len && memcmp(s->data, cases[i].last, s->len) == 0,
			      "secret case %zu: bytes (len %zu)", i, s->len);
		}
		config_unref(c);
	}
}

/* respond_within: the scheme's default, the sections', and off without
 * the journal. */
static void test_respond_within(void)
{
	static const struct {
		const char *ini;
		const char *event;
		int64_t want_ms;
	} cases[] = {
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = github\n",
		 "push", 8000},
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = slack\n",
		 "message", 2500},
		{"[server]\nstate_dir = st\n" EP_A, "x", 0},
		{"[server]\nstate_dir = st\n" EP_A "scheme = northflank\n", "x", 0},
		{"[server]\nstate_dir = st\n" EP_A "respond_within = 1500ms\n", "x", 1500},
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = github\n"
		 "respond_within = 0\n", "push", 0},
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = github\n"
		 "[event deploy]\nrespond_within = 3s\n", "deploy:prod", 3000},
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = github\n"
		 "[event deploy]\nrespond_within = 3s\n", "push", 8000},
		{"[server]\nstate_dir = st\n[endpoint a]\npath = /a\nsecret = x\nscheme = github\n"
		 "respond_within = 5s\n[event _default]\nrespond_within = 0\n", "push", 0},
		/* Without state_dir the scheme's default is off; 0 may be said. */
		{"[endpoint a]\npath = /a\nsecret = x\nscheme = github\n", "push", 0},
		{"[endpoint a]\npath = /a\nsecret = x\nscheme = slack\nrespond_within = 0\n",
		 "message", 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct config *c = load(cases[i].ini);
		CHECK(c != NULL, "respond_within case %zu: %s", i, err);
		if (!c)
			continue;
		struct delivery_opts o;
		config_delivery_opts(c, &c->endpoints[0], cases[i].event, &o);
		CHECK(o.respond_within_ms == cases[i].want_ms, "respond_within case %zu: %lld", i,
		      (long long)o.respond_within_ms);
		config_unref(c);
	}
}

static void test_delivery_opts(void)
{
	struct config *c = load("[server]\n"
	                        "timeout = 20s\n"
	                        "state_dir = /var/lib/hookd\n"
	                        "[endpoint a]\n"
	                        "path = /a\n"
	                        "secret = x\n"
	                        "timeout = 40s\n"
	                        "retries = 3\n"
	                        "serialize = data.id\n"
	                        "[endpoint b]\n"
	                        "path = /b\n"
	                        "secret = y\n"
	                        "[event build]\n"
	                        "timeout = 1m\n"
	                        "[event build:success]\n"
	                        "retries = 7\n"
	                        "[event _default]\n"
	                        "retry_backoff = 1s\n"
	                        "[event deploy]\n"
	                        "mode = async\n"
	                        "serialize =\n"
	                        "[event ci.job]\n"
	                        "serialize = repo.name\n");
	CHECK(c != NULL, "opts: %s", err);
	if (!c)
		return;
	const struct endpoint *a = config_endpoint_by_name(c, "a");
	const struct endpoint *b = config_endpoint_by_path(c, "/b");
	CHECK(a && b, "endpoints");
	if (!a || !b) {
		config_unref(c);
		return;
	}
	static const struct {
		char ep;
		const char *event;
		int64_t timeout_ms;
		enum delivery_mode mode;
		int retries;
		int64_t backoff_ms;
		const char *serialize, *scope;
	} cases[] = {
		/* the first matching rule is the only one: build:success does not
		 * take build's timeout, nor _default's backoff */
		{'a', "build:success:x", 40000, MODE_SYNC, 7, 10000, "data.id", "endpoint a"},
		{'a', "build:success", 40000, MODE_SYNC, 7, 10000, "data.id", "endpoint a"},
		{'a', "build.success", 60000, MODE_SYNC, 3, 10000, "data.id", "endpoint a"},
		{'a', "build:start", 60000, MODE_SYNC, 3, 10000, "data.id", "endpoint a"},
		{'a', "build", 60000, MODE_SYNC, 3, 10000, "data.id", "endpoint a"},
		{'a', "builds", 40000, MODE_SYNC, 3, 1000, "data.id", "endpoint a"},
		{'a', "other:x", 40000, MODE_SYNC, 3, 1000, "data.id", "endpoint a"},
		{'b', "other", 20000, MODE_SYNC, 5, 1000, NULL, NULL},
		{'b', "build:x.y", 60000, MODE_SYNC, 5, 10000, NULL, NULL},
		{'a', "deploy:prod", 40000, MODE_ASYNC, 3, 10000, NULL, NULL},
		{'b', "ci.job:1", 20000, MODE_SYNC, 5, 10000, "repo.name", "event ci.job"},
		{'a', "ci.job", 40000, MODE_SYNC, 3, 10000, "repo.name", "event ci.job"},
		{'a', "ci", 40000, MODE_SYNC, 3, 1000, "data.id", "endpoint a"},
		{'0', "build:success", 20000, MODE_SYNC, 7, 10000, NULL, NULL},
		{'0', NULL, 20000, MODE_SYNC, 5, 1000, NULL, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct endpoint *ep = cases[i].ep == 'a' ? a : cases[i].ep == 'b' ? b : NULL;
		struct delivery_opts o;
		memset(&o, 0xa5, sizeof(o));
		config_delivery_opts(c, ep, cases[i].event, &o);
		CHECK(o.timeout_ms == cases[i].timeout_ms, "opts case %zu: timeout %lld", i,
		      (long long)o.timeout_ms);
		CHECK(o.mode == cases[i].mode, "opts case %zu: mode", i);
		CHECK(o.retries == cases[i].retries, "opts case %zu: retries %d", i, o.retries);
		CHECK(o.retry_backoff_ms == cases[i].backoff_ms, "opts case %zu: backoff %lld", i,
		      (long long)o.retry_backoff_ms);
		CHECK_STR(o.serialize, cases[i].serialize, "opts case %zu: serialize", i);
		CHECK_STR(o.serialize_scope, cases[i].scope, "opts case %zu: scope", i);
	}
	config_unref(c);

	/* No _default rule: an unmatched event keeps the endpoint's settings. */
	c = load(EP_A "timeout = 3s\n[event x]\ntimeout = 4s\n");
	CHECK(c != NULL, "no _default: %s", err);
	if (c) {
		struct delivery_opts o;
		config_delivery_opts(c, &c->endpoints[0], "y", &o);
		CHECK(o.timeout_ms == 3000 && o.set == OPT_TIMEOUT, "no _default");
		config_delivery_opts(c, &c->endpoints[0], "x:1", &o);
		CHECK(o.timeout_ms == 4000, "x rule");
	}
	config_unref(c);
}

/* workdir: [event] over [endpoint] over [server], relative to the config's
 * directory; an empty value is unset (the hook's own directory), and an
 * [event] that gives it empty takes a wider one's back. */
static void test_workdir(void)
{
	struct config *c = load("[server]\n"
	                        "workdir = work\n"
	                        "[endpoint a]\n"
	                        "path = /a\n"
	                        "secret = x\n"
	                        "workdir = /srv/a\n"
	                        "[endpoint b]\n"
	                        "path = /b\n"
	                        "secret = y\n"
	                        "[event deploy]\n"
	                        "workdir = /srv/deploy\n"
	                        "[event plain]\n"
	                        "workdir =\n");
	CHECK(c != NULL, "workdir: %s", err);
	if (!c)
		return;
	char *work = in_dir("work");
	const struct {
		const char *ep, *event, *want; /* want NULL: the hook's own directory */
	} cases[] = {
		{"a", "build", "/srv/a"},
		{"b", "build", work},
		{NULL, "build", work},
		{"a", "deploy:prod", "/srv/deploy"},
		{"b", "deploy", "/srv/deploy"},
		{"a", "plain", NULL},
		{"b", "plain.x", NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct delivery_opts o;
		const struct endpoint *ep = cases[i].ep ? config_endpoint_by_name(c, cases[i].ep) : NULL;
		config_delivery_opts(c, ep, cases[i].event, &o);
		CHECK_STR(o.workdir, cases[i].want, "workdir case %zu", i);
	}
	CHECK(c->server_opts.set & OPT_WORKDIR, "server sets it");
	free(work);
	config_unref(c);

	/* Not given: unset everywhere. */
	c = load(EP_A);
	CHECK(c && !c->server_opts.workdir && !(c->server_opts.set & OPT_WORKDIR) &&
	      !c->endpoints[0].opts.workdir, "workdir default");
	config_unref(c);
	c = load("[server]\nworkdir = a\nworkdir = b\n" EP_A);
	CHECK(!c && strcmp(err, "hookd.ini:3: key 'workdir' given twice in [server] (first at "
	                        "line 2)") == 0, "twice: %s", err);
	config_unref(c);
}

static void test_lookups(void)
{
	struct config *c = load(EP_A "[endpoint b]\npath = /b/c\nsecret = y\n");
	CHECK(c != NULL, "lookups: %s", err);
	if (!c)
		return;
	CHECK(config_endpoint_by_path(c, "/a") == &c->endpoints[0], "by path a");
	CHECK(config_endpoint_by_path(c, "/b/c") == &c->endpoints[1], "by path b");
	CHECK(config_endpoint_by_path(c, "/b") == NULL, "prefix is no match");
	CHECK(config_endpoint_by_path(c, "/a/") == NULL, "exact match only");
	CHECK(config_endpoint_by_path(c, NULL) == NULL, "NULL path");
	CHECK(config_endpoint_by_name(c, "b") == &c->endpoints[1], "by name");
	CHECK(config_endpoint_by_name(c, "c") == NULL, "unknown name");

	CHECK(config_ref(c) == c && c->refs == 2, "ref");
	config_unref(c);
	CHECK(c->refs == 1, "unref");
	config_unref(c);
	config_unref(NULL);
	CHECK(config_ref(NULL) == NULL, "ref NULL");

	/* The registry, in its order. */
	static const char *const names[] = {
		"northflank", "github", "gitlab", "standard", "stripe", "slack", "hmac", "none",
		"token",      "basic",
	};
	CHECK(scheme_at(ARRAY_SIZE(names)) == NULL, "ten schemes");
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct scheme *s = scheme_at(i);
		CHECK(s && s == scheme_by_name(names[i]), "scheme_at %zu", i);
		CHECK_STR(scheme_name(s), names[i], "scheme_name");
		const char *secret = strcmp(names[i], "none") == 0    ? ""
		                     : strcmp(names[i], "basic") == 0 ? "secret = u:YWJj\n"
		                                                      : "secret = YWJj\n";
		char *ini = xasprintf("[endpoint a]\npath = /a\nscheme = %s\n%s", names[i], secret);
		c = load(ini);
		CHECK(c && c->endpoints[0].scheme == s, "scheme %s: %s", names[i], err);
		config_unref(c);
		free(ini);
	}
}

static void test_status(void)
{
	struct config *c = load(EP_A "[status]\n0 = 202\n1 = 422\n75 = 429\n255 = 599\n"
	                        "default = 502\ntimeout = 503\n");
	CHECK(c != NULL, "status: %s", err);
	if (!c)
		return;
	static const struct {
		int exit, http;
	} cases[] = {
		{0, 202}, {1, 422}, {75, 429}, {255, 599}, {2, 502}, {74, 502}, {76, 502},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(status_for_exit(&c->status, cases[i].exit) == cases[i].http, "exit %d",
		      cases[i].exit);
	CHECK(c->status.def == 502 && c->status.timeout == 503, "default/timeout");
	CHECK(c->status.n == 4, "entries %zu", c->status.n);
	CHECK(!status_skips(&c->status, 0) && !status_skips(&c->status, 2), "no skips");
	config_unref(c);

	/* EXIT = skip: a 200 that ends the delivery skipped; 75 may skip too. */
	c = load(EP_A "[status]\n78 = skip\n75 = skip\n");
	CHECK(c != NULL, "status skip: %s", err);
	if (!c)
		return;
	CHECK(status_skips(&c->status, 78) && status_for_exit(&c->status, 78) == 200, "78 skips");
	CHECK(status_skips(&c->status, 75) && status_for_exit(&c->status, 75) == 200, "75 skips");
	CHECK(!status_skips(&c->status, 0) && !status_skips(&c->status, 1), "others do not");
	config_unref(c);
}

/* [event] match: parsed into the rule, and taken by the events it covers. */
static void test_match(void)
{
	struct config *c = load(EP_A "[event push]\nmatch = ref=refs/heads/main "
	                        "\"head_commit.message!=*[skip ci]*\"\n"
	                        "[event _default]\ntimeout = 5s\n");
	CHECK(c != NULL, "match: %s", err);
	if (!c)
		return;
	struct delivery_opts o;
	config_delivery_opts(c, &c->endpoints[0], "push", &o);
	CHECK(o.match && o.match->n == 2 && (o.set & OPT_MATCH), "push takes the rule");
	if (o.match) {
		CHECK_STR(o.match->v[0].path, "ref", "path");
		CHECK_STR(o.match->v[0].glob, "refs/heads/main", "glob");
		CHECK(!o.match->v[0].negate && o.match->v[1].negate, "negate");
		CHECK_STR(o.match->v[1].glob, "*[skip ci]*", "quoted glob");
	}
	config_delivery_opts(c, &c->endpoints[0], "push:tag", &o);
	CHECK(o.match != NULL, "push:tag falls to [event push]");
	config_delivery_opts(c, &c->endpoints[0], "release", &o);
	CHECK(o.match == NULL && !(o.set & OPT_MATCH), "release: _default has no match");
	config_unref(c);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The headers that are never stored, logged or passed to a hook. */
static void test_credentials(void)
{
	static const struct {
		const char *name;
		bool cred;
	} names[] = {
		{"X-Northflank-Notification-Integration-Token", true},
		{"x-northflank-notification-integration-token", true},
		{"X-Gitlab-Token", true},
		{"Authorization", true},
		{"AUTHORIZATION", true},
		{"X-Hub-Signature", true},
		{"X-Hub-Signature-256", true},
		{"Stripe-Signature", true},
		{"X-Slack-Signature", true},
		{"webhook-signature", true},
		{"Webhook-Signature", true},
		{"Cookie", true},
		{"Proxy-Authorization", true},
		{"X-Signature", true},
		{"svix-signature", true},
		{"X-Api-Key", true},
		{"x-twilio-signature", true},
		{"Content-Type", false},
		{"X-GitHub-Event", false},
		{"X-Northflank-Notification-Integration-Event-Id", false},
		{"webhook-id", false},
		{"X-Slack-Request-Timestamp", false},
		{"Authorization2", false},
		{"", false},
		{NULL, false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		CHECK(header_is_credential(names[i].name, NULL) == names[i].cred, "credential %s",
		      names[i].name ? names[i].name : "(null)");
	CHECK(header_is_credential("X-My-Sig", "x-my-sig"), "the endpoint's signature_header");
	CHECK(!header_is_credential("X-My-Sig", NULL), "not without it");
}

int main(void)
{
	test_credentials();
	char tmpl[] = "/tmp/hookd-test-config-XXXXXX";
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir) || chdir(tmpdir) != 0) {
		perror("temporary directory");
		return 2;
	}
	mkdir("adir", 0700);
	write_file("sec-one", "filesecret\n", 11);
	write_file("sec-two", "  old\nnew \n\n", 12);
	write_file("sec-spaces", " It's a Secret to Everybody \r\n", 30);
	write_file("sec-crlf", "crlf\r\n", 6);
	write_file("sec-empty", " \n", 2);
	write_file("sec-secret", "TopSecret123\n", 13);
	write_file("sec-std", "whsec_aGVsbG8ga2V5IQ==\n", 23);
	write_file("sec-quotes", "\"\"\n", 3);
	write_file("sec-basic", "alice:pw\r\n\n  bob:pass:with colon \n", 34);
	write_file("sec-basic-bad", "alice:pw\n\nbob:x\nnocolon\n", 24);
	setenv("HOOKD_TEST_BASIC_BAD", "alice:pw\nbob:x\n:nouser\n", 1);
	setenv("HOOKD_TEST_SECRET", "env1\nenv2", 1);
	setenv("HOOKD_TEST_EMPTY", "", 1);
	setenv("HOOKD_TEST_TOPSECRET", "TopSecret123!", 1);
	unsetenv("HOOKD_TEST_UNSET");

	test_errors();
	test_special_errors();
	test_secret_never_shown();
	test_defaults();
	test_every_key();
	test_merge();
	test_values();
	test_warnings();
	test_paths();
	test_secrets();
	test_delivery_opts();
	test_workdir();
	test_respond_within();
	test_lookups();
	test_status();
	test_match();

	if (chdir("/") == 0)
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("config");
}
