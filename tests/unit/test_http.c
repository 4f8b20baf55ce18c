/* http: the request head parser and the header look-up. */
#include "check.h"
#include "http.h"
#include "util.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdlib.h>

/* Parses text into a request; returns the error (NULL when it parsed). */
static const char *parse(const char *text, struct http_request **out, struct http_head *head)
{
	struct http_request *req = xcalloc(1, sizeof(*req));
	memset(head, 0, sizeof(*head));
	const char *bad = http_parse_head(text, strlen(text), req, head);
	*out = req;
	return bad;
}

static void test_malformed(void)
{
	static const struct {
		const char *head, *want;
	} cases[] = {
		{"", "empty request"},
		{"\r\n\r\n", "empty request"},
		{"POST /x\r\n", "malformed request line"},
		{"POST  HTTP/1.1\r\n", "malformed request line"},
		{"PO(ST /x HTTP/1.1\r\n", "malformed request line"},
		{"POST /a\tb HTTP/1.1\r\n", "malformed request line"},
		{"POST /x HTTP/2.0\r\n", "unsupported HTTP version"},
		{"POST /x HTTP/1.1\r\nX-A: 1\r\n folded\r\n", "folded header line"},
		{"POST /x HTTP/1.1\r\nno colon\r\n", "malformed header line"},
		{"POST /x HTTP/1.1\r\nBad Name: 1\r\n", "malformed header line"},
		{"POST /x HTTP/1.1\r\nX-A: a\x01z\r\n", "control character in request head"},
		{"POST /x HTTP/1.1\r\nContent-Length: -1\r\n", "invalid Content-Length"},
		{"POST /x HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n",
		 "invalid Content-Length"},
		{"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
		 "conflicting Content-Length headers"},
		{"FOO /x HTTP/1.1\r\n", "unknown method"},
		{"post /x HTTP/1.1\r\n", "unknown method"},
		{"POSTS /x HTTP/1.1\r\n", "unknown method"},
		{"POST /\xce\xb4 HTTP/1.1\r\n", "malformed request line"},
		/* Only CRLF ends a line: a bare LF or CR anywhere is refused. */
		{"\nPOST /x HTTP/1.1\r\n\r\n", "bare LF in request head"},
		{"\rPOST /x HTTP/1.1\r\n\r\n", "bare CR in request head"},
		{"\r\n\rPOST /x HTTP/1.1\r\n\r\n", "bare CR in request head"},
		{"POST /x HTTP/1.1\n\r\n", "bare LF in request head"},
		{"POST /x HTTP/1.1\r\r\n\r\n", "bare CR in request head"},
		{"POST /x HTTP/1.1\rX: 1\r\n\r\n", "bare CR in request head"},
		{"POST\r /x HTTP/1.1\r\n\r\n", "bare CR in request head"},
		{"POST /x\r HTTP/1.1\r\n\r\n", "bare CR in request head"},
		{"POST /x\n HTTP/1.1\r\n\r\n", "bare LF in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\n",
		 "bare LF in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\rContent-Length: 23\r\n\r\n",
		 "bare CR in request head"},
		{"POST /x HTTP/1.1\r\nDummy\n: x\r\n\r\n", "bare LF in request head"},
		{"POST /x HTTP/1.1\r\nDummy\r: x\r\n\r\n", "bare CR in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\r\n\n", "bare LF in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\r\n\r\r\n", "bare CR in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\n\r\n", "bare LF in request head"},
		{"POST /x HTTP/1.1\r\nDummy: x\n\n", "bare LF in request head"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_request *req;
		struct http_head head;
		CHECK_STR(parse(cases[i].head, &req, &head), cases[i].want, "case %zu", i);
		http_request_free(req);
	}
}

/* http_head_end_scan fed buf[0..n) `step` bytes at a time, as a
 * connection reads it: where it finds the head's end, or 0. */
static size_t head_end_in_steps(const char *buf, size_t n, size_t step)
{
	struct http_head_scan scan = {0};
	for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
		size_t end = http_head_end_scan(buf, have, &scan);
		if (end || have == n)
			return end;
	}
}

/* The resumed search finds what one search of the whole does, however
 * the bytes came (the connection's reads). */
static void check_steps(const char *buf, size_t n, const char *what)
{
	size_t whole = http_head_end(buf, n);
	for (size_t step = 1; step <= 5; step++) {
		size_t got = head_end_in_steps(buf, n, step);
		CHECK(got == whole, "%s, %zu bytes a read: %zu, want %zu", what, step, got, whole);
	}
}

/* Where a head ends: its empty line, or the byte after a bare LF or CR there. */
static void test_head_end(void)
{
	static const struct {
		const char *buf;
		size_t want;
	} cases[] = {
		{"GET / HTTP/1.1\r\n", 0},
		{"GET / HTTP/1.1\r\nA: b\r\n\r", 0},
		{"GET / HTTP/1.1\r\nA: b\r\n\r\nbody", 24},
		{"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 22},
		{"\r\n\r\n", 0},
		{"GET / HTTP/1.1\r\nA: b\n\nbody", 22},
		{"GET / HTTP/1.1\r\nA: b\r\n\rX: c\r\n\r\n", 24},
		{"GET / HTTP/1.1\r\nA: b\r\n\r\r\n", 24},
		{"\r\n\r", 0},
		{"\r\n\r\nG\r\n\n", 8},
		{"\r\r\nX\r\n\r\n", 8},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t got = http_head_end(cases[i].buf, strlen(cases[i].buf));
		CHECK(got == cases[i].want, "case %zu: %zu, want %zu", i, got, cases[i].want);
		check_steps(cases[i].buf, strlen(cases[i].buf), cases[i].buf);
	}
}

static void test_parsed(void)
{
	struct http_request *req;
	struct http_head head;
	const char *bad = parse("\r\nPOST /hook?x=1#f HTTP/1.0\r\n"
	                        "Content-Type:  application/json \t\r\n"
	                        "content-length: 12\r\n"
	                        "Connection: Keep-Alive\r\n"
	                        "Expect: 100-continue\r\n",
	                        &req, &head);
	CHECK(bad == NULL, "parsed: %s", bad);
	CHECK_STR(req->method, "POST", "method");
	CHECK_STR(req->target, "/hook?x=1#f", "target as sent");
	CHECK_STR(req->path, "/hook", "path without query");
	CHECK(req->nheaders == 4, "4 headers: %zu", req->nheaders);
	CHECK_STR(http_header_get(req, "CONTENT-TYPE"), "application/json", "trimmed, any case");
	CHECK(head.has_length && head.length == 12, "length");
	CHECK(head.expect_continue, "expect");
	CHECK(req->keep_alive, "HTTP/1.0 with keep-alive");
	CHECK(http_header_get(req, "X-Missing") == NULL, "missing header");
	http_request_free(req);

	bad = parse("POST / HTTP/1.1\r\nConnection: x, close\r\nTransfer-Encoding: chunked\r\n",
	            &req, &head);
	CHECK(bad == NULL, "parsed: %s", bad);
	CHECK(!req->keep_alive, "Connection: close in a list");
	CHECK(head.chunked, "chunked");
	http_request_free(req);

	/* Lists on two lines mean what they mean on one. */
	bad = parse("POST / HTTP/1.1\r\nExpect: x\r\nConnection: keep-alive\r\n"
	            "Expect: 100-Continue\r\nConnection: Close\r\n",
	            &req, &head);
	CHECK(bad == NULL, "parsed: %s", bad);
	CHECK(head.expect_continue, "100-continue on a second Expect line");
	CHECK(!req->keep_alive, "close on a second Connection line");
	CHECK_STR(http_header_get(req, "expect"), "x, 100-Continue", "joined");
	http_request_free(req);
}

/* A name on several lines is one header: its values joined with ", ". */
static void test_repeated_headers(void)
{
	static const struct {
		const char *lines, *name, *want;
		size_t nheaders;
	} cases[] = {
		{"X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-For: 203.0.113.5\r\n", "X-Forwarded-For",
		 "10.1.1.1, 203.0.113.5", 1},
		{"x-forwarded-for: 1.1.1.1\r\nA: b\r\nX-FORWARDED-FOR: 2.2.2.2, 3.3.3.3\r\n",
		 "X-Forwarded-For", "1.1.1.1, 2.2.2.2, 3.3.3.3", 2},
		{"A: b\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n", "A", "b", 2},
		{"Token: t\r\nToken: t\r\n", "token", "t, t", 1},
		{"X-A:\r\nX-A: v\r\nX-A: \r\n", "X-A", "v", 1},
		{"X-A:\r\nX-A:\r\n", "X-A", "", 1},
		{"Content-Length: 3\r\ncontent-length: 3\r\n", "Content-Length", "3", 1},
		/* '^' and '~' differ by 0x20 but are not letters: two names. */
		{"X^: 1\r\nX~: 2\r\n", "X~", "2", 2},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = xasprintf("POST /x HTTP/1.1\r\n%s", cases[i].lines);
		struct http_request *req;
		struct http_head head;
		const char *bad = parse(text, &req, &head);
		CHECK(bad == NULL, "case %zu: %s", i, bad);
		CHECK_STR(http_header_get(req, cases[i].name), cases[i].want, "case %zu", i);
		CHECK(req->nheaders == cases[i].nheaders, "case %zu: %zu headers", i, req->nheaders);
		http_request_free(req);
		free(text);
	}

	/* Past the parser's stack arrays: 100 lines of one name, 100 of others. */
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "POST /x HTTP/1.1\r\n");
	for (int i = 0; i < 100; i++)
		sb_printf(&sb, "X-Same: %d\r\nX-Other-%d: %d\r\n", i, i, i);
	struct http_request *req;
	struct http_head head;
	CHECK(parse(sb.buf, &req, &head) == NULL, "200 lines");
	CHECK(req->nheaders == 101, "101 headers: %zu", req->nheaders);
	const char *v = http_header_get(req, "x-same");
	CHECK(v && strncmp(v, "0, 1, 2, ", 9) == 0 && strstr(v, ", 99") == v + strlen(v) - 4,
	      "joined in order: %s", v ? v : "(null)");
	CHECK_STR(http_header_get(req, "X-Other-99"), "99", "last other");
	http_request_free(req);
	sb_free(&sb);
}

/*
 * llhttp's own request tests (tests/data/llhttp, see its README), read as a
 * connection reads them: head, Content-Length body, next request. What
 * hookd made of one input.
 */
/*
 * The input stops inside a head: llhttp refuses at the first wrong byte,
 * hookd once the head is whole. Whether hookd refuses it when the client
 * ends it there with the fewest bytes that make an empty line.
 */
static bool refused_once_ended(const char *buf, size_t n, const char **why)
{
	while (n >= 2 && buf[0] == '\r' && buf[1] == '\n') {
		buf += 2; /* empty lines between requests: no head yet */
		n -= 2;
	}
	if (n == 0)
		return false;
	const char *tail = n >= 2 && memcmp(buf + n - 2, "\r\n", 2) == 0 ? "\r\n"
	                   : n >= 1 && buf[n - 1] == '\r'                  ? "\n\r\n"
	                                                                   : "\r\n\r\n";
	size_t tn = strlen(tail);
	char *head = xmalloc(n + tn);
	memcpy(head, buf, n);
	memcpy(head + n, tail, tn);
	struct http_request *req = xcalloc(1, sizeof(*req));
	struct http_head info = {0};
	*why = http_parse_head(head, n + tn, req, &info);
	http_request_free(req);
	free(head);
	if (!*why && info.chunked)
		*why = "chunked (411)";
	return *why != NULL;
}

struct conn_run {
	size_t complete;  /* requests read whole (head and body) */
	bool refused;     /* a 400 (malformed head) or 411 (Transfer-Encoding) */
	bool closed;      /* a request without keep-alive: what follows is never read */
	const char *why;  /* the refusal's reason */
};

static struct conn_run read_as_connection(const char *buf, size_t n)
{
	struct conn_run r = {0};
	size_t at = 0;
	while (at < n) {
		size_t end = http_head_end(buf + at, n - at);
		check_steps(buf + at, n - at, "llhttp corpus");
		if (end == 0) {
			r.refused = refused_once_ended(buf + at, n - at, &r.why);
			return r;
		}
		struct http_request *req = xcalloc(1, sizeof(*req));
		struct http_head head = {0};
		r.why = http_parse_head(buf + at, end, req, &head);
		bool keep_alive = req->keep_alive;
		http_request_free(req);
		if (r.why || head.chunked) {
			if (!r.why)
				r.why = "chunked (411)";
			r.refused = true;
			return r;
		}
		at += end;
		if (head.length > n - at)
			break;
		at += (size_t)head.length;
		r.complete++;
		if (!keep_alive) {
			r.closed = at < n;
			return r;
		}
	}
	return r;
}

/* Whether s[0..n) holds lit (lowercase) in any case. */
static bool has_caseless(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	for (size_t i = 0; i + l <= n; i++) {
		size_t j = 0;
		while (j < l && tolower((unsigned char)s[i + j]) == lit[j])
			j++;
		if (j == l)
			return true;
	}
	return false;
}

/*
 * Why a request llhttp accepts is no case for hookd (NULL: it is one). The
 * rules, in the words "chunked, upgrade and non-HTTP protocols
 * aside": hookd refuses every Transfer-Encoding with 411, and speaks HTTP
 * only (llhttp also parses RTSP and ICE). An upgrade is llhttp's error 22
 * or 23, handled apart below.
 */
static const char *acceptance_excluded(const char *raw, size_t n)
{
	if (has_caseless(raw, n, "\ntransfer-encoding"))
		return "chunked";
	const char *line = raw;
	while (line < raw + n && (*line == '\r' || *line == '\n'))
		line++;
	const char *eol = memchr(line, '\r', (size_t)(raw + n - line));
	if (!eol || !has_caseless(line, (size_t)(eol - line), " http/"))
		return "not HTTP";
	return NULL;
}

/* Bytes from the data file's hex. */
static char *unhex(const char *hex, size_t *n)
{
	size_t len = strlen(hex) / 2;
	char *out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (char)v;
	}
	*n = len;
	return out;
}

static void test_llhttp_corpus(void)
{
	const char *dir = getenv("HOOKD_TEST_DATA");
	char *path = xasprintf("%s/llhttp/requests.json", dir ? dir : "../data");
	json_object *all = json_object_from_file(path);
	CHECK(all != NULL, "cannot read %s", path);
	free(path);
	if (!all)
		return;
	size_t refusals = 0, acceptances = 0;
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *c = json_object_array_get_idx(all, i), *v;
		json_object_object_get_ex(c, "mode", &v);
		/* Strict mode is llhttp's default, "request"; the lenient modes
		 * loosen a rule, and what only they refuse proves nothing. */
		if (strcmp(json_object_get_string(v), "request") != 0)
			continue;
		/* llhttp's test callback told it to skip bodies: no case. */
		json_object_object_get_ex(c, "skip_body", &v);
		if (json_object_get_boolean(v))
			continue;
		json_object_object_get_ex(c, "raw_hex", &v);
		size_t n;
		char *raw = unhex(json_object_get_string(v), &n);
		json_object *err;
		json_object_object_get_ex(c, "error", &err);
		json_object_object_get_ex(c, "messages", &v);
		size_t messages = (size_t)json_object_get_int(v);
		json_object_object_get_ex(c, "file", &v);
		const char *file = json_object_get_string(v);
		json_object_object_get_ex(c, "line", &v);
		int line = json_object_get_int(v);
		struct conn_run r = read_as_connection(raw, n);
		json_object *code = NULL;
		if (err)
			json_object_object_get_ex(err, "code", &code);
		if (code && (json_object_get_int(code) == 22 || json_object_get_int(code) == 23)) {
			/* HPE_PAUSED_UPGRADE, HPE_PAUSED_H2_UPGRADE: llhttp hands the
			 * connection over (CONNECT, Upgrade, PRI); not a refusal. */
		} else if (err) {
			refusals++;
			CHECK((r.refused || r.closed) && r.complete <= messages,
			      "%s:%d: llhttp refuses (%s) after %zu requests; hookd read %zu and %s", file,
			      line, json_object_to_json_string(err), messages, r.complete,
			      r.refused ? "refused" : r.closed ? "closed" : "accepted");
		} else if (!acceptance_excluded(raw, n)) {
			acceptances++;
			CHECK(!r.refused && r.complete == messages,
			      "%s:%d: llhttp reads %zu requests; hookd read %zu, %s", file, line, messages,
			      r.complete, r.why ? r.why : "no refusal");
		}
		free(raw);
	}
	CHECK(refusals >= 50 && acceptances >= 45, "%zu refusals, %zu acceptances checked", refusals,
	      acceptances);
	json_object_put(all);
}

int main(void)
{
	test_malformed();
	test_head_end();
	test_parsed();
	test_repeated_headers();
	test_llhttp_corpus();
	return check_done("http");
}
