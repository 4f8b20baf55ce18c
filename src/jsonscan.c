/*
 * A JSON validator that allocates nothing, and reports a few fields on
 * the way (see jsonscan.h for why it exists).
 *
 * The grammar is RFC 8259's, strictly: json-c's strict mode still takes
 * NaN, Infinity, "1.", single-quoted keys and raw control characters in
 * strings, which no sender's JSON encoder writes. Bytes above 0x7f are
 * taken as they are (json-c does not check UTF-8 either).
 */
#include "jsonscan.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

struct path {
	const char *seg[JSON_SCAN_MAX_SEGMENTS];
	size_t len[JSON_SCAN_MAX_SEGMENTS];
	size_t nseg;
};

/* What a byte is to the scan: one table look-up a byte in the loops that
 * see most of a body (indentation, and the insides of strings). */
enum {
	B_WS = 1,        /* JSON whitespace */
	B_STR_STOP = 2,  /* ends a run of plain string bytes: '"', '\\', < 0x20, >= 0x80 */
};

/* Row n holds bytes 16n to 16n + 15. */
static const unsigned char byte_class[256] = {
	2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 2, 2, 3, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static bool is_ws(char c)
{
	return byte_class[(unsigned char)c] & B_WS;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Splits a wanted path into its keys. False when it cannot be matched on
 * raw bytes: an all-digit key may index an array (payload_get_path's
 * "items.2"), and deeper paths than we track go to the tree. An empty key
 * ("a..b") is never found, as payload_get_path says; nseg is then 0. */
static bool split_path(const char *p, struct path *out)
{
	out->nseg = 0;
	if (!p || !*p)
		return true;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0) {
			out->nseg = 0;
			return true;
		}
		if (out->nseg == JSON_SCAN_MAX_SEGMENTS)
			return false;
		bool digits = true;
		for (size_t i = 0; i < n; i++)
			digits = digits && is_digit(p[i]);
		if (digits)
			return false;
		out->seg[out->nseg] = p;
		out->len[out->nseg] = n;
		out->nseg++;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

/* b[*i] is just past an opening quote: moves *i to the closing one. A
 * string is UTF-8 (RFC 8259 8.1): a byte outside a valid sequence
 * (overlong, a surrogate, past U+10FFFF, cut short) is JSON_SCAN_BAD_UTF8. */
static enum json_scan_result scan_string(const char *b, size_t len, size_t *i, bool *escaped)
{
	size_t k = *i;
	*escaped = false;
	for (;;) {
		/* The common run first: ASCII that needs no thought. */
		while (k < len && !(byte_class[(unsigned char)b[k]] & B_STR_STOP))
			k++;
		if (k >= len || (unsigned char)b[k] < 0x20)
			return JSON_SCAN_INVALID;
		if (b[k] == '"') {
			*i = k;
			return JSON_SCAN_OK;
		}
		if ((unsigned char)b[k] >= 0x80) {
			size_t n = utf8_seq((const unsigned char *)b + k, len - k, NULL);
			if (n == 0)
				return JSON_SCAN_BAD_UTF8;
			k += n;
			continue;
		}
		*escaped = true;
		if (++k >= len)
			return JSON_SCAN_INVALID;
		switch (b[k]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			k++;
			break;
		case 'u':
			if (len - k < 5)
				return JSON_SCAN_INVALID;
			for (size_t h = 1; h <= 4; h++)
				if (hex_digit((unsigned char)b[k + h]) < 0)
					return JSON_SCAN_INVALID;
			k += 5;
			break;
		default:
			return JSON_SCAN_INVALID;
		}
	}
}

bool json_int_token_big(const char *tok, size_t n)
{
	bool neg = n > 0 && tok[0] == '-';
	const char *d = tok + neg;
	size_t nd = n - neg;
	if (nd == 1 && d[0] == '0')
		return neg; /* json-c reads "-0" as 0 */
	const char *lim = neg ? "9223372036854775808" : "18446744073709551615";
	size_t limlen = strlen(lim);
	if (nd != limlen)
		return nd > limlen;
	return memcmp(d, lim, nd) > 0;
}

/* b[*i] starts a number: moves *i past it; *is_int when it has neither a
 * fraction nor an exponent. */
static bool scan_number(const char *b, size_t len, size_t *i, bool *is_int)
{
	size_t k = *i;
	if (b[k] == '-')
		k++;
	if (k >= len || !is_digit(b[k]))
		return false;
	if (b[k] == '0')
		k++; /* a leading zero stands alone: "01" fails at the '1' */
	else
		while (k < len && is_digit(b[k]))
			k++;
	*is_int = true;
	if (k < len && b[k] == '.') {
		*is_int = false;
		if (++k >= len || !is_digit(b[k]))
			return false;
		while (k < len && is_digit(b[k]))
			k++;
	}
	if (k < len && (b[k] == 'e' || b[k] == 'E')) {
		*is_int = false;
		k++;
		if (k < len && (b[k] == '+' || b[k] == '-'))
			k++;
		if (k >= len || !is_digit(b[k]))
			return false;
		while (k < len && is_digit(b[k]))
			k++;
	}
	*i = k;
	return true;
}

static bool literal(const char *b, size_t len, size_t *i, const char *word)
{
	size_t n = strlen(word);
	if (len - *i < n || memcmp(b + *i, word, n) != 0)
		return false;
	*i += n;
	return true;
}

static void record(struct json_scan *scan, unsigned targets, enum json_type type, size_t off,
                   size_t n, bool escaped)
{
	for (size_t f = 0; targets; f++, targets >>= 1) {
		if (!(targets & 1))
			continue;
		struct json_scan_field *fl = &scan->fields[f];
		fl->found = true;
		fl->type = type;
		fl->off = off;
		fl->len = n;
		fl->escaped = escaped;
	}
}

enum json_scan_result json_scan(const char *b, size_t len, struct json_scan *scan)
{
	/* Each open container: an object or an array, and (objects) which
	 * wanted fields its members may lead to. */
	bool is_obj[JSON_MAX_DEPTH];
	uint8_t mask[JSON_MAX_DEPTH];
	struct path paths[JSON_SCAN_MAX_FIELDS];
	unsigned all = 0;       /* the fields a top-level member may lead to */
	unsigned targets = 0;   /* fields whose value is the one scanned next */
	unsigned children = 0;  /* fields that go on inside it, if an object */
	size_t depth = 0, i = 0;
	bool top_obj = false, first = true;
	struct json_scan none = {0};

	if (!scan)
		scan = &none;
	scan->big_numbers = 0;
	scan->need_tree = false;
	if (scan->nfields > JSON_SCAN_MAX_FIELDS)
		scan->nfields = JSON_SCAN_MAX_FIELDS;
	for (size_t f = 0; f < scan->nfields; f++) {
		scan->fields[f].found = false;
		if (!split_path(scan->fields[f].path, &paths[f]))
			scan->need_tree = true;
		else if (paths[f].nseg > 0)
			all |= 1u << f;
	}
	if (len == 0)
		return JSON_SCAN_EMPTY;

value:
	while (i < len && is_ws(b[i]))
		i++;
	if (i >= len)
		return JSON_SCAN_INVALID;
	if (first) {
		top_obj = b[i] == '{';
		first = false;
		children = all;
	}
	switch (b[i]) {
	case '{':
	case '[': {
		bool obj = b[i] == '{';
		if (depth == JSON_MAX_DEPTH)
			return JSON_SCAN_TOO_DEEP;
		record(scan, targets, obj ? json_type_object : json_type_array, 0, 0, false);
		is_obj[depth] = obj;
		mask[depth] = obj ? (uint8_t)children : 0;
		depth++;
		i++;
		while (i < len && is_ws(b[i]))
			i++;
		if (i < len && b[i] == (obj ? '}' : ']')) {
			i++;
			depth--;
			goto after_value;
		}
		targets = children = 0;
		if (obj)
			goto key;
		goto value;
	}
	case '"': {
		size_t start = ++i;
		bool esc;
		enum json_scan_result sr = scan_string(b, len, &i, &esc);
		if (sr != JSON_SCAN_OK)
			return sr;
		record(scan, targets, json_type_string, start, i - start, esc);
		i++;
		goto after_value;
	}
	case 't':
	case 'f':
		if (!literal(b, len, &i, b[i] == 't' ? "true" : "false"))
			return JSON_SCAN_INVALID;
		record(scan, targets, json_type_boolean, 0, 0, false);
		goto after_value;
	case 'n':
		if (!literal(b, len, &i, "null"))
			return JSON_SCAN_INVALID;
		record(scan, targets, json_type_null, 0, 0, false);
		goto after_value;
	default: {
		size_t start = i;
		bool is_int;
		if (!scan_number(b, len, &i, &is_int))
			return JSON_SCAN_INVALID;
		bool big = is_int && json_int_token_big(b + start, i - start);
		scan->big_numbers += big;
		record(scan, targets, is_int && !big ? json_type_int : json_type_double, 0, 0,
		       false);
		goto after_value;
	}
	}

after_value:
	targets = children = 0;
	while (i < len && is_ws(b[i]))
		i++;
	if (depth == 0)
		goto done;
	if (i >= len)
		return JSON_SCAN_INVALID;
	if (b[i] == ',') {
		i++;
		if (is_obj[depth - 1])
			goto key;
		goto value;
	}
	if (b[i] != (is_obj[depth - 1] ? '}' : ']'))
		return JSON_SCAN_INVALID;
	i++;
	depth--;
	goto after_value;

key:
	while (i < len && is_ws(b[i]))
		i++;
	if (i >= len || b[i] != '"')
		return JSON_SCAN_INVALID;
	{
		size_t start = ++i;
		bool esc;
		enum json_scan_result sr = scan_string(b, len, &i, &esc);
		if (sr != JSON_SCAN_OK)
			return sr;
		size_t klen = i - start;
		unsigned parent = mask[depth - 1];
		i++;
		if (parent && esc) {
			/* "ev\u0065nt" is "event" to json-c: only the tree can say. */
			scan->need_tree = true;
		} else {
			for (size_t f = 0; parent; f++, parent >>= 1) {
				const struct path *p = &paths[f];
				if (!(parent & 1) || p->len[depth - 1] != klen ||
				    memcmp(p->seg[depth - 1], b + start, klen) != 0)
					continue;
				/* A later duplicate key replaces all that an earlier
				 * one led to, as in json-c. */
				scan->fields[f].found = false;
				if (p->nseg == depth)
					targets |= 1u << f;
				else
					children |= 1u << f;
			}
		}
	}
	while (i < len && is_ws(b[i]))
		i++;
	if (i >= len || b[i] != ':')
		return JSON_SCAN_INVALID;
	i++;
	goto value;

done:
	if (i != len)
		return JSON_SCAN_INVALID;
	if (!top_obj)
		return JSON_SCAN_NOT_OBJECT;
	for (size_t f = 0; f < scan->nfields; f++)
		if (scan->fields[f].found && scan->fields[f].escaped)
			scan->need_tree = true;
	return JSON_SCAN_OK;
}

const char *json_scan_error(enum json_scan_result r)
{
	switch (r) {
	case JSON_SCAN_OK:
		return NULL;
	case JSON_SCAN_TOO_DEEP:
		return "JSON nests deeper than 1000 levels";
	case JSON_SCAN_NOT_OBJECT:
		return "body is not a JSON object";
	case JSON_SCAN_BAD_UTF8:
		return "body is not valid JSON: a string is not UTF-8";
	case JSON_SCAN_EMPTY:
		return "body is empty";
	case JSON_SCAN_INVALID:
	default:
		return "body is not valid JSON";
	}
}
