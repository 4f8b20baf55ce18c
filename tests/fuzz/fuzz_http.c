/*
 * Fuzz target: the HTTP/1.1 request head parser (http_head_end,
 * http_parse_head), on the bytes a client sends.
 *
 * The input is what arrives on a connection: heads, each followed by
 * Content-Length bytes of body, pipelined, as read_head and read_body in
 * http.c take them (at most 8 requests). A head that parses is checked
 * against what the rest of hookd relies on: a head whose every CR and LF
 * is part of a CRLF, a token method, an ASCII target with no whitespace or
 * control bytes and its path cut at '?' or '#', header
 * names that are tokens, values without CR, LF, NUL or surrounding
 * blanks, and the same request again after writing it out and parsing it
 * back.
 */
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "util.h"

#define MAX_REQUESTS 8

static bool tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!tchar((unsigned char)*s))
			return false;
	}
	return true;
}

static void check_request(const struct http_request *req, const struct http_head *head)
{
	FUZZ_ASSERT(req->method && token(req->method));
	FUZZ_ASSERT(req->target && req->target[0]);
	for (const char *p = req->target; *p; p++)
		FUZZ_ASSERT((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
	size_t plen = strcspn(req->target, "?#");
	FUZZ_ASSERT(req->path && strlen(req->path) == plen);
	FUZZ_ASSERT(strncmp(req->path, req->target, plen) == 0);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		FUZZ_ASSERT(token(h->name));
		size_t n = strlen(h->value);
		for (size_t k = 0; k < n; k++) {
			unsigned char c = (unsigned char)h->value[k];
			FUZZ_ASSERT(c >= 0x20 || c == '\t');
			FUZZ_ASSERT(c != 0x7f);
		}
		if (n) {
			FUZZ_ASSERT(h->value[0] != ' ' && h->value[0] != '\t');
			FUZZ_ASSERT(h->value[n - 1] != ' ' && h->value[n - 1] != '\t');
		}
		/* A name given on several lines is one header: a look-up of
		 * any header's name finds that header itself. */
		FUZZ_ASSERT(http_header_get(req, h->name) == h->value);
	}
	if (head->has_length)
		FUZZ_ASSERT(head->length < 1000000000000000000ULL);
	else
		FUZZ_ASSERT(head->length == 0);
}

/* Every CR in buf[0..n) is followed by LF, and every LF follows a CR. */
static bool crlf_only(const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\r' && (i + 1 == n || buf[i + 1] != '\n'))
			return false;
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			return false;
	}
	return true;
}

/* Writes req out as a canonical head and parses it back: the same request. */
static void round_trip(const struct http_request *req, const struct http_head *head)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "%s %s HTTP/1.1\r\n", req->method, req->target);
	for (size_t i = 0; i < req->nheaders; i++)
		sb_printf(&sb, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
	sb_puts(&sb, "\r\n");
	FUZZ_ASSERT(http_head_end(sb.buf, sb.len) == sb.len);

	struct http_request *again = xcalloc(1, sizeof(*again));
	struct http_head h2 = {0};
	const char *bad = http_parse_head(sb.buf, sb.len, again, &h2);
	FUZZ_ASSERT(bad == NULL);
	FUZZ_ASSERT(strcmp(again->method, req->method) == 0);
	FUZZ_ASSERT(strcmp(again->target, req->target) == 0);
	FUZZ_ASSERT(strcmp(again->path, req->path) == 0);
	FUZZ_ASSERT(again->nheaders == req->nheaders);
	for (size_t i = 0; i < req->nheaders; i++) {
		FUZZ_ASSERT(strcmp(again->headers[i].name, req->headers[i].name) == 0);
		FUZZ_ASSERT(strcmp(again->headers[i].value, req->headers[i].value) == 0);
	}
	FUZZ_ASSERT(h2.chunked == head->chunked && h2.has_length == head->has_length);
	FUZZ_ASSERT(h2.length == head->length && h2.expect_continue == head->expect_continue);
	http_request_free(again);
	sb_free(&sb);
}

/* The search resumed read after read (the connection's) finds the end
 * one search of the whole finds, whatever the reads' sizes. */
static void check_resumed(const char *buf, size_t size, size_t end)
{
	struct http_head_scan scan = {0};
	size_t have = 0, got = 0, step = 1 + (size ? (unsigned char)buf[0] % 7 : 0);
	while (have < size && !got) {
		have = have + step < size ? have + step : size;
		got = http_head_end_scan(buf, have, &scan);
	}
	FUZZ_ASSERT(got == end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	for (int r = 0; r < MAX_REQUESTS && size > 0; r++) {
		size_t end = http_head_end(buf, size);
		check_resumed(buf, size, end);
		if (end == 0)
			break; /* the server waits for more, or answers 431 */
		FUZZ_ASSERT(end <= size);

		struct http_request *req = xcalloc(1, sizeof(*req));
		struct http_head head = {0};
		const char *bad = http_parse_head(buf, end, req, &head);
		bool go_on = false;
		/* A head cut short by a bare CR where its empty line would be. */
		if (buf[end - 1] != '\n')
			FUZZ_ASSERT(bad != NULL);
		if (bad) {
			FUZZ_ASSERT(bad[0] != '\0');
		} else {
			FUZZ_ASSERT(crlf_only(buf, end));
			check_request(req, &head);
			round_trip(req, &head);
			/* The server reads Content-Length bytes of body, then the
			 * next request; a chunked body ends the connection. */
			go_on = !head.chunked && head.length <= size - end;
			if (go_on) {
				buf += end + head.length;
				size -= end + (size_t)head.length;
			}
		}
		http_request_free(req);
		if (!go_on)
			break;
	}
	return 0;
}
