/*
 * The strict HTTP/1.1 request head parser and the parsed request object:
 * finding a head's end in a buffer, parsing its request line and header
 * lines (CRLF only, known methods, one Content-Length, a name on several
 * lines joined), header look-up, and freeing a request. Pure functions
 * over a buffer, apart from the connection server (http.c) so that the
 * unit tests and the fuzzers reach them without a connection. This is on
 * every request's path and was tuned: measure before changing it.
 */
#include "http.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void http_request_free(struct http_request *req)
{
	if (!req)
		return;
	/* One block holds the header array and every string of the head
	 * (method, target, path, names, values): see parse_head. */
	free(req->headers);
	free(req->body);
	free(req);
}

void http_request_shrink(struct http_request *req)
{
	static char none[] = "";
	free(req->headers);
	req->headers = NULL;
	req->nheaders = 0;
	req->method = req->target = req->path = none;
	free(req->body);
	req->body = NULL;
	req->body_len = 0;
}

const char *http_header_get(const struct http_request *req, const char *name)
{
	/* In the head's block (parse_head) a value follows its name's NUL,
	 * which gives the name's length for free: most names differ in it,
	 * and the Northflank ones share a long prefix a compare would walk. */
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		/* Senders mostly write names as we look them up: memcmp first. */
		if ((size_t)(h->value - h->name) == n + 1 &&
		    (memcmp(h->name, name, n) == 0 || ascii_casecmp_eq(h->name, name)))
			return h->value;
	}
	return NULL;
}

/* Byte classes of a request head: one table look-up a byte. */
#define CH_TCHAR 1 /* an RFC 9110 token character */
#define CH_CTL 2   /* a control character other than HTAB: never allowed */
#define CH_NOT_URI 4 /* HTAB or a byte past ASCII: never in a request target (RFC 3986) */
static unsigned char ch_class[256];

static void ch_class_init(void)
{
	if (ch_class['a'])
		return;
	for (int c = 0; c < 256; c++) {
		if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c && strchr("!#$%&'*+-.^_`|~", c)))
			ch_class[c] |= CH_TCHAR;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			ch_class[c] |= CH_CTL;
		if (c == '\t' || c >= 0x80)
			ch_class[c] |= CH_NOT_URI;
	}
}

static bool token_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!(ch_class[(unsigned char)s[i]] & CH_TCHAR))
			return false;
	}
	return true;
}

static bool target_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ch_class[(unsigned char)s[i]] & CH_NOT_URI)
			return false;
	}
	return true;
}

/*
 * The request methods hookd parses: those registered for HTTP/1.x, and
 * the few in common use besides (UPnP's, PURGE, SOURCE), as llhttp
 * knows them. Any other token is a malformed request line (400), not a
 * 405: hookd takes no request that a strict parser (llhttp's) refuses,
 * so that no proxy in front of it can read a request where it reads
 * another. POST first: nearly every request is one.
 */
static const char *const known_methods[] = {
	"POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
	"LINK", "UNLINK", "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH",
	"UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
	"M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "MKCALENDAR", "PURGE", "QUERY", "SOURCE",
};

static bool method_known(const char *s, size_t n)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_methods); i++) {
		if (strncmp(known_methods[i], s, n) == 0 && known_methods[i][n] == '\0')
			return true;
	}
	return false;
}

/*
 * Whether s[0..n) holds a control character (CH_CTL). Eight bytes at a
 * time: every byte of every request head goes through here. A word is
 * looked at byte by byte only when it may hold a byte below 0x20 or a
 * DEL (the usual "has a byte less than" and "has a zero byte" tests,
 * which never miss one).
 */
static bool has_ctl(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		uint64_t del = x ^ (0x7f * ones);
		if (((x - 0x20 * ones) & ~x & highs) == 0 && ((del - ones) & ~del & highs) == 0)
			continue;
		for (size_t j = i; j < i + 8; j++) {
			if (ch_class[(unsigned char)s[j]] & CH_CTL)
				return true;
		}
	}
	for (; i < n; i++) {
		if (ch_class[(unsigned char)s[i]] & CH_CTL)
			return true;
	}
	return false;
}

/* s[0..n) equals the lowercase literal lit, ignoring ASCII case. */
static bool span_caseeq(const char *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + ('a' - 'A'));
		if (c != (unsigned char)lit[i])
			return false;
	}
	return i == n && lit[i] == '\0';
}

size_t http_head_end_scan(const char *buf, size_t n, struct http_head_scan *scan)
{
	const char *p = buf + scan->at, *end = buf + n;
	if (!scan->past_blanks) {
		/* Empty lines before a request line (a client's CRLF after a
		 * body) are no head of their own: the parser skips them. */
		while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			p += 2;
		scan->at = (size_t)(p - buf);
		if (end - p < 2)
			return 0; /* only empty lines so far, or half of one */
		scan->past_blanks = true;
	}
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		size_t i = (size_t)(p - buf);
		if (i + 1 < n && buf[i + 1] == '\n')
			return i + 2;
		/* A line that begins with a CR ends the head: with its LF the
		 * head is whole, without (a bare CR) it is malformed, and the
		 * parser refuses it now rather than once some later line ends. */
		if (i + 2 < n && buf[i + 1] == '\r')
			return i + 3;
		p++;
	}
	/* An LF among the last two bytes is looked at again with the bytes
	 * after it; every one before is decided. */
	if (n - 2 > scan->at)
		scan->at = n - 2;
	return 0;
}

size_t http_head_end(const char *buf, size_t n)
{
	struct http_head_scan scan = {0};
	return http_head_end_scan(buf, n, &scan);
}

struct span {
	const char *p;
	size_t n;
};


/* Whether a comma-separated header list holds word (any case). Expect
 * and Connection are lists, so a name given on two lines (joined into
 * one list) means what its lines meant. */
static bool list_has(struct span value, const char *word)
{
	const char *t = value.p, *te = value.p + value.n;
	while (t < te) {
		while (t < te && (*t == ',' || *t == ' ' || *t == '\t'))
			t++;
		const char *w = t;
		while (t < te && *t != ',' && *t != ' ' && *t != '\t')
			t++;
		if (t > w && span_caseeq(w, (size_t)(t - w), word))
			return true;
	}
	return false;
}

/* A header name and the line it came on, for grouping by name. */
struct name_ref {
	const char *p;
	size_t n;
	size_t idx;
};

/* Orders names as ASCII without case. */
static int name_cmp(const struct name_ref *x, const struct name_ref *y)
{
	size_t n = x->n < y->n ? x->n : y->n;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)x->p[i], b = (unsigned char)y->p[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + ('a' - 'A'));
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + ('a' - 'A'));
		if (a != b)
			return a < b ? -1 : 1;
	}
	return x->n < y->n ? -1 : x->n > y->n;
}

/* qsort: by name, then by line, so that a name's lines stay in order. */
static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = name_cmp(x, y);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Copies a span into the block at *at as a C string. */
static char *block_str(char **at, struct span sp)
{
	char *s = *at;
	memcpy(s, sp.p, sp.n);
	s[sp.n] = '\0';
	*at += sp.n + 1;
	return s;
}

/*
 * Splits the head into lines (CRLF only) and parses them into req:
 * first as spans of `head`, then, once all is well, into one block that
 * holds the header array and every string (one allocation a request
 * rather than two a header). Returns NULL, or the reason it is malformed.
 */
const char *http_parse_head(const char *head, size_t len, struct http_request *req,
                            struct http_head *info)
{
	ch_class_init(); /* parsed heads need no server (the tests, the fuzzer) */
	const char *p = head, *end = head + len;
	struct span stack_spans[64], *spans = stack_spans; /* name, value, name, ... */
	size_t nspans = 0, cap = ARRAY_SIZE(stack_spans);
	struct span method = {0}, target = {0};
	/* For grouping header lines by name (below); heap past 32 lines. */
	struct name_ref stack_refs[32], *refs = stack_refs;
	size_t stack_links[2 * 32], *links = stack_links;
	bool first = true;
	bool http10 = false, conn_close = false, conn_keep = false;
	const char *bad = NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le;
		if (nl) {
			/* Only CRLF ends a line. A proxy that passes a bare LF on
			 * inside a value would otherwise see one header line where
			 * hookd sees two (a smuggled Content-Length). */
			if (nl == p || nl[-1] != '\r') {
				bad = "bare LF in request head";
				goto out;
			}
			le = nl - 1;
		} else {
			/* The caller's head ends without its empty line. */
			nl = le = end;
			if (le > p && le[-1] == '\r')
				le--;
		}
		size_t n = (size_t)(le - p);
		if (n == 0) {
			if (first) { /* empty lines before the request line are allowed */
				p = nl + 1;
				continue;
			}
			break;
		}
		if (has_ctl(p, n)) {
			/* A CR that does not end a line is one, as for a bare LF. */
			bad = memchr(p, '\r', n) ? "bare CR in request head"
			                         : "control character in request head";
			goto out;
		}
		if (first) {
			const char *sp1 = memchr(p, ' ', n);
			const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1)) : NULL;
			if (!sp1 || !sp2 || !token_valid(p, (size_t)(sp1 - p)) || sp2 == sp1 + 1) {
				bad = "malformed request line";
				goto out;
			}
			if (!method_known(p, (size_t)(sp1 - p))) {
				bad = "unknown method";
				goto out;
			}
			size_t vlen = (size_t)(le - sp2 - 1);
			if (vlen == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0) {
				http10 = false;
			} else if (vlen == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0) {
				http10 = true;
			} else {
				bad = "unsupported HTTP version";
				goto out;
			}
			method = (struct span){p, (size_t)(sp1 - p)};
			target = (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
			if (!target_valid(target.p, target.n)) {
				bad = "malformed request line";
				goto out;
			}
			first = false;
			p = nl + 1;
			continue;
		}
		if (p[0] == ' ' || p[0] == '\t') {
			bad = "folded header line";
			goto out;
		}
		const char *colon = memchr(p, ':', n);
		if (!colon || !token_valid(p, (size_t)(colon - p))) {
			bad = "malformed header line";
			goto out;
		}
		const char *v = colon + 1, *ve = le;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (nspans + 2 > cap) {
			cap *= 2;
			if (spans == stack_spans) {
				spans = xmalloc(cap * sizeof(*spans));
				memcpy(spans, stack_spans, sizeof(stack_spans));
			} else {
				spans = xrealloc(spans, cap * sizeof(*spans));
			}
		}
		struct span name = {p, (size_t)(colon - p)}, value = {v, (size_t)(ve - v)};
		spans[nspans++] = name;
		spans[nspans++] = value;
		if (span_caseeq(name.p, name.n, "content-length")) {
			char digits[20];
			uint64_t l;
			if (value.n > 18) {
				bad = "invalid Content-Length";
				goto out;
			}
			memcpy(digits, value.p, value.n);
			digits[value.n] = '\0';
			if (!parse_u64(digits, &l)) {
				bad = "invalid Content-Length";
				goto out;
			}
			if (info->has_length && l != info->length) {
				bad = "conflicting Content-Length headers";
				goto out;
			}
			info->has_length = true;
			info->length = l;
		} else if (span_caseeq(name.p, name.n, "transfer-encoding")) {
			info->chunked = true;
		} else if (span_caseeq(name.p, name.n, "expect")) {
			info->expect_continue |= list_has(value, "100-continue");
		} else if (span_caseeq(name.p, name.n, "connection")) {
			conn_close |= list_has(value, "close");
			conn_keep |= list_has(value, "keep-alive");
		}
		p = nl + 1;
	}
	if (first) {
		bad = "empty request";
		goto out;
	}
	req->keep_alive = http10 ? (conn_keep && !conn_close) : !conn_close;

	/* A name given on several lines is one header, its values joined
	 * with ", " in order (RFC 9110 5.3): an X-Forwarded-For that a client
	 * began and a proxy continued on a line of its own is read whole,
	 * and a credential or event type sent twice is never half read.
	 * first_of[i] is the first line with line i's name, next[i] the next
	 * line with it (SIZE_MAX: none). */
	size_t nh = nspans / 2, nout = 0;
	if (nh > ARRAY_SIZE(stack_refs)) {
		refs = xmalloc(nh * sizeof(*refs));
		links = xmalloc(2 * nh * sizeof(*links));
	}
	size_t *first_of = links, *next = links + nh;
	for (size_t i = 0; i < nh; i++)
		refs[i] = (struct name_ref){spans[2 * i].p, spans[2 * i].n, i};
	if (nh <= ARRAY_SIZE(stack_refs)) {
		/* A real request's few lines: each against the names before it,
		 * lengths first (most differ in length). */
		for (size_t i = 0; i < nh; i++) {
			first_of[i] = i;
			next[i] = SIZE_MAX;
			for (size_t j = 0; j < i; j++) {
				if (first_of[j] != j || refs[j].n != refs[i].n ||
				    name_cmp(&refs[j], &refs[i]) != 0)
					continue;
				first_of[i] = j;
				size_t t = j;
				while (next[t] != SIZE_MAX)
					t = next[t];
				next[t] = i;
				break;
			}
			nout += first_of[i] == i;
		}
	} else {
		/* Many lines: sorted by name, n log n whatever the head holds. */
		qsort(refs, nh, sizeof(*refs), name_ref_cmp);
		for (size_t g = 0; g < nh; nout++) {
			size_t e = g + 1;
			while (e < nh && name_cmp(&refs[g], &refs[e]) == 0)
				e++;
			for (size_t m = g; m < e; m++) {
				first_of[refs[m].idx] = refs[g].idx;
				next[refs[m].idx] = m + 1 < e ? refs[m + 1].idx : SIZE_MAX;
			}
			g = e;
		}
	}
	struct span path = {target.p, 0};
	while (path.n < target.n && target.p[path.n] != '?' && target.p[path.n] != '#')
		path.n++;
	/* Room for every name and value as sent, and a ", " a joined line. */
	size_t bytes = nout * sizeof(struct http_header) + method.n + target.n + path.n + 3 +
	               2 * (nh - nout);
	for (size_t i = 0; i < nspans; i++)
		bytes += spans[i].n + 1;
	char *block = xmalloc(bytes);
	char *at = block + nout * sizeof(struct http_header);
	req->headers = (struct http_header *)(void *)block;
	req->nheaders = nout;
	req->method = block_str(&at, method);
	req->target = block_str(&at, target);
	req->path = block_str(&at, path);
	for (size_t i = 0, k = 0; i < nh; i++) {
		if (first_of[i] != i)
			continue;
		/* The value right after its name's NUL: http_header_get counts on it. */
		req->headers[k].name = block_str(&at, spans[2 * i]);
		char *value = at;
		/* Content-Length lines all hold one number (checked above). */
		bool one = span_caseeq(spans[2 * i].p, spans[2 * i].n, "content-length");
		for (size_t j = i; j != SIZE_MAX; j = next[j]) {
			struct span v = spans[2 * j + 1];
			if (v.n == 0)
				continue; /* an empty line adds nothing to a list */
			if (at > value) {
				if (one)
					break;
				memcpy(at, ", ", 2);
				at += 2;
			}
			memcpy(at, v.p, v.n);
			at += v.n;
		}
		*at++ = '\0';
		req->headers[k++].value = value;
	}
out:
	if (spans != stack_spans)
		free(spans);
	if (refs != stack_refs) {
		free(refs);
		free(links);
	}
	return bad;
}
