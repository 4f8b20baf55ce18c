/* http: the request head parser and the header look-up. */
#include "check.h"
#include "http.h"
#include "util.h"

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
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct http_request *req;
		struct http_head head;
		CHECK_STR(parse(cases[i].head, &req, &head), cases[i].want, "case %zu", i);
		http_request_free(req);
	}
}

static void test_parsed(void)
{
	struct http_request *req;
	struct http_head head;
	const char *bad = parse("\r\nPOST /hook?x=1#f HTTP/1.0\r\n"
	                        "Content-Type:  application/json \t\r\n"
	                        "content-length: 12\n"
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

int main(void)
{
	test_malformed();
	test_parsed();
	test_repeated_headers();
	return check_done("http");
}
