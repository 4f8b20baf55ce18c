/*
 * The request body: what it is (Content-Type), what it holds (JSON, or a
 * form whose field may hold JSON), and the values at dotted paths in it.
 * How its scalar leaves become a hook's environment is flatten.c's.
 */
#include "payload.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "payload_private.h"
#include "util.h"

static bool is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool payload_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

bool event_name_valid(const char *name, size_t len)
{
	if (!name || len == 0 || len > EVENT_NAME_MAX)
		return false;
	if (!is_alnum((unsigned char)name[0]))
		return false;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		/* A NUL fails here too: the name is exactly len bytes. */
		if (!is_alnum(c) && c != '_' && c != '.' && c != ':' && c != '-')
			return false;
	}
	return true;
}

/* ---- Content-Type ---- */

/* RFC 9110 token characters: what a media type and subtype are made of. */
static bool is_tchar(unsigned char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool span_caseeq(const char *s, size_t n, const char *lit)
{
	if (strlen(lit) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

enum content_kind content_type_classify(const char *content_type)
{
	if (!content_type)
		return CONTENT_JSON;
	const char *s = content_type;
	while (is_ows((unsigned char)*s))
		s++;
	/* No media type at all is what senders that omit the header mean. */
	if (*s == '\0')
		return CONTENT_JSON;

	const char *type = s;
	while (is_tchar((unsigned char)*s))
		s++;
	size_t typelen = (size_t)(s - type);
	if (typelen == 0 || *s != '/')
		return CONTENT_OTHER;
	s++;
	const char *sub = s;
	while (is_tchar((unsigned char)*s))
		s++;
	size_t sublen = (size_t)(s - sub);
	if (sublen == 0)
		return CONTENT_OTHER;
	while (is_ows((unsigned char)*s))
		s++;
	/* Parameters (charset and the like) do not change how we decode. */
	if (*s != '\0' && *s != ';')
		return CONTENT_OTHER;

	if (span_caseeq(type, typelen, "application")) {
		if (span_caseeq(sub, sublen, "json"))
			return CONTENT_JSON;
		if (span_caseeq(sub, sublen, "x-www-form-urlencoded"))
			return CONTENT_FORM;
	}
	/* Structured syntax suffix (RFC 6839): vnd.github+json, cloudevents+json. */
	if (sublen > 5 && span_caseeq(sub + sublen - 5, 5, "+json"))
		return CONTENT_JSON;
	return CONTENT_OTHER;
}

/* ---- JSON ---- */

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

/*
 * json-c 0.16 reads an integer it cannot hold as the nearest 64-bit value
 * (123456789012345678901234 becomes 18446744073709551615) and "-0" as 0.
 * Hooks are promised numbers as their JSON text, so such integer tokens
 * (json_scan counts them) are handed to json-c with NUMBER_MARK appended:
 * it keeps them as doubles with their text, from which the mark is then
 * removed. The mark is a trailing '.', which json-c takes and json_scan
 * never lets through ("1." is not JSON), so no number the sender wrote
 * can pass for a marked one (".0E+0" could: a body may say 1234...5.0E+0).
 */
#define NUMBER_MARK "."
#define NUMBER_MARK_LEN (sizeof(NUMBER_MARK) - 1)

/* tok[0..n) is an integer token: digits, after an optional '-'. */
static bool is_int_token(const char *tok, size_t n)
{
	size_t i = n > 0 && tok[0] == '-';
	if (i == n)
		return false;
	for (; i < n; i++)
		if (!payload_is_digit((unsigned char)tok[i]))
			return false;
	return true;
}

/*
 * Writes body, which json_scan accepted, to out with NUMBER_MARK after
 * each integer token json_int_token_big names (out holds len + their
 * count * NUMBER_MARK_LEN bytes).
 */
static void mark_numbers(const char *body, size_t len, char *out)
{
	size_t o = 0, i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)body[i];
		size_t start = i;
		if (c == '"') {
			i++;
			while (body[i] != '"')
				i += body[i] == '\\' ? 2 : 1;
			i++;
		} else if (c == '-' || payload_is_digit(c)) {
			while (i < len && (payload_is_digit((unsigned char)body[i]) || body[i] == '-' ||
			                   body[i] == '+' || body[i] == '.' || body[i] == 'e' ||
			                   body[i] == 'E'))
				i++;
			memcpy(out + o, body + start, i - start);
			o += i - start;
			if (is_int_token(body + start, i - start) &&
			    json_int_token_big(body + start, i - start)) {
				memcpy(out + o, NUMBER_MARK, NUMBER_MARK_LEN);
				o += NUMBER_MARK_LEN;
			}
			continue;
		} else {
			i++;
		}
		memcpy(out + o, body + start, i - start);
		o += i - start;
	}
}

/* Puts the original text back on doubles that carry the mark. */
static void unmark_numbers(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			unmark_numbers(v);
		}
		break;
	}
	case json_type_array: {
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++)
			unmark_numbers(json_object_array_get_idx(o, i));
		break;
	}
	case json_type_double: {
		const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		size_t n = strlen(t);
		if (n <= NUMBER_MARK_LEN || strcmp(t + n - NUMBER_MARK_LEN, NUMBER_MARK) != 0)
			break;
		if (!is_int_token(t, n - NUMBER_MARK_LEN) ||
		    !json_int_token_big(t, n - NUMBER_MARK_LEN))
			break;
		/* json-c prints a double's userdata as is: the token as written. */
		json_object_set_serializer(o, json_object_userdata_to_json_string,
		                           xstrndup(t, n - NUMBER_MARK_LEN),
		                           json_object_free_userdata);
		break;
	}
	default:
		break;
	}
}

/*
 * One tokener for the process, reset for each body. json-c allocates and
 * zeroes a stack of max-depth entries for every new tokener, 32 KiB at
 * JSON_MAX_DEPTH: that was the largest single cost of a delivery. hookd
 * parses on its one event-loop thread, one body at a time.
 */
static struct json_tokener *tok_shared;

void payload_cleanup(void)
{
	if (tok_shared) /* json_tokener_free(NULL) crashes in json-c 0.16 */
		json_tokener_free(tok_shared);
	tok_shared = NULL;
}

static struct json_tokener *shared_tokener(void)
{
	struct json_tokener *tok = tok_shared;
	if (!tok) {
		tok = tok_shared = json_tokener_new_ex(JSON_MAX_DEPTH + 1);
		if (tok)
			json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	}
	return tok;
}

json_object *payload_parse_json(const char *body, size_t len, char *err, size_t errlen)
{
	struct json_scan scan = {0};

	if (!body) {
		body = "";
		len = 0;
	}
	enum json_scan_result r = json_scan(body, len, &scan);
	if (r != JSON_SCAN_OK) {
		set_err(err, errlen, json_scan_error(r));
		return NULL;
	}
	return payload_parse_scanned(body, len, scan.big_numbers, err, errlen);
}

json_object *payload_parse_scanned(const char *body, size_t len, size_t big_numbers, char *err,
                                   size_t errlen)
{
	json_object *root = NULL;
	char *copy = NULL;

	if (big_numbers > 0) {
		size_t clen = len + big_numbers * NUMBER_MARK_LEN;
		copy = xmalloc(clen);
		mark_numbers(body, len, copy);
		body = copy;
		len = clen;
	}

	/*
	 * json_scan took it, so json-c builds it: containers nest at most
	 * JSON_MAX_DEPTH deep, which json-c, counting a scalar inside a
	 * container as a level of its own, sees as JSON_MAX_DEPTH + 1.
	 */
	struct json_tokener *tok = shared_tokener();
	if (!tok) {
		set_err(err, errlen, "out of memory");
		free(copy);
		return NULL;
	}
	/* json_tokener_parse_ex takes an int length: feed larger bodies in pieces. */
	enum json_tokener_error jerr = json_tokener_continue;
	for (size_t off = 0; off < len && jerr == json_tokener_continue;) {
		size_t chunk = len - off > INT_MAX ? INT_MAX : len - off;
		root = json_tokener_parse_ex(tok, body + off, (int)chunk);
		jerr = json_tokener_get_error(tok);
		off += chunk;
	}
	if (jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		/* Not expected after json_scan: kept so that a disagreement is
		 * a 400, never a half-read payload. */
		json_object_put(root);
		root = NULL;
		set_err(err, errlen, json_scan_error(JSON_SCAN_INVALID));
	} else if (big_numbers > 0) {
		unmark_numbers(root);
	}
	/* Whatever a failed parse left half-built is freed now, not held. */
	json_tokener_reset(tok);
	free(copy);
	return root;
}

/* ---- application/x-www-form-urlencoded ---- */

/* Decodes s[0..n) ('+' is a space, %XX a byte) into out (>= n bytes);
 * returns the decoded length, or -1 for a % not followed by two hex digits. */
static long form_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			out[o++] = ' ';
		} else if (c == '%') {
			if (n - i < 3)
				return -1;
			int hi = hex_digit((unsigned char)s[i + 1]), lo = hex_digit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = (char)c;
		}
	}
	return (long)o;
}

/* Every field of the body as an object of strings; duplicates: the last wins. */
static json_object *form_fields(const char *body, size_t len, char *err, size_t errlen)
{
	json_object *obj = json_object_new_object();
	char *buf = xmalloc(len + 1);
	size_t i = 0;
	while (i < len) {
		const char *field = body + i;
		const char *amp = memchr(field, '&', len - i);
		size_t flen = amp ? (size_t)(amp - field) : len - i;
		i += flen + 1;
		if (flen == 0)
			continue; /* "a=1&&b=2" */
		const char *eq = memchr(field, '=', flen);
		size_t nlen = eq ? (size_t)(eq - field) : flen;
		long dn = form_decode(field, nlen, buf);
		/* A key is a C string to json-c: a NUL in a name cannot be kept. */
		if (dn < 0 || memchr(buf, '\0', (size_t)dn)) {
			set_err(err, errlen, "malformed form body");
			goto fail;
		}
		buf[dn] = '\0';
		char *name = xstrndup(buf, (size_t)dn);
		long dv = eq ? form_decode(eq + 1, flen - nlen - 1, buf) : 0;
		if (dv < 0) {
			free(name);
			set_err(err, errlen, "malformed form body");
			goto fail;
		}
		json_object_object_add(obj, name, json_object_new_string_len(buf, (int)dv));
		free(name);
	}
	free(buf);
	return obj;
fail:
	free(buf);
	json_object_put(obj);
	return NULL;
}

json_object *payload_parse_form(const char *body, size_t len, const char *json_field,
                                bool json_field_optional, char *err, size_t errlen)
{
	if (!body)
		len = 0;
	if (len > INT_MAX) {
		set_err(err, errlen, "malformed form body");
		return NULL;
	}
	json_object *fields = form_fields(body, len, err, errlen);
	if (!fields || !json_field)
		return fields;

	json_object *val = NULL;
	if (!json_object_object_get_ex(fields, json_field, &val)) {
		if (json_field_optional)
			return fields;
		char msg[128];
		snprintf(msg, sizeof msg, "form body has no '%s' field", json_field);
		set_err(err, errlen, msg);
		json_object_put(fields);
		return NULL;
	}
	if (json_object_get_string_len(val) == 0) {
		char msg[128];
		snprintf(msg, sizeof msg, "form field '%s' is empty", json_field);
		set_err(err, errlen, msg);
		json_object_put(fields);
		return NULL;
	}
	char jerr[96];
	json_object *root = payload_parse_json(json_object_get_string(val),
	                                       (size_t)json_object_get_string_len(val), jerr,
	                                       sizeof jerr);
	if (!root) {
		char msg[192];
		snprintf(msg, sizeof msg, "form field '%s': %s", json_field, jerr);
		set_err(err, errlen, msg);
	}
	json_object_put(fields);
	return root;
}

/* ---- dotted paths ---- */

/*
 * Walks a dotted path. json-c represents a JSON null as a NULL object, so
 * whether the path exists is returned apart from the value.
 */
static bool lookup_path(json_object *root, const char *dotted, json_object **out)
{
	*out = NULL;
	if (!root || !dotted || !*dotted)
		return false;
	json_object *cur = root;
	const char *s = dotted;
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		if (n == 0)
			return false; /* "a..b", ".a", "a." */
		char *seg = xstrndup(s, n);
		json_object *next = NULL;
		bool found = false;
		if (json_object_is_type(cur, json_type_object)) {
			found = json_object_object_get_ex(cur, seg, &next);
		} else if (json_object_is_type(cur, json_type_array)) {
			uint64_t idx;
			if (parse_u64(seg, &idx) && idx < json_object_array_length(cur)) {
				next = json_object_array_get_idx(cur, (size_t)idx);
				found = true;
			}
		}
		free(seg);
		if (!found)
			return false;
		if (!dot) {
			*out = next;
			return true;
		}
		cur = next; /* a null or a scalar here makes the next step fail */
		s = dot + 1;
	}
}

/* A scalar's text as a hook sees it (n bytes, may hold a NUL for strings);
 * NULL for objects and arrays. */
const char *payload_scalar_text(json_object *o, size_t *n)
{
	const char *s;
	switch (json_object_get_type(o)) {
	case json_type_null:
		s = "";
		break;
	case json_type_string:
		*n = (size_t)json_object_get_string_len(o);
		return json_object_get_string(o);
	case json_type_boolean:
		s = json_object_get_boolean(o) ? "true" : "false";
		break;
	case json_type_int:
	case json_type_double:
		/* A double parsed from input prints its own text (json-c keeps
		 * it); an integer prints as the decimal it was written as. */
		s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		break;
	default:
		return NULL;
	}
	*n = strlen(s);
	return s;
}

bool payload_path_valid(const char *s)
{
	if (!s[0] || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch == 0x7f)
			return false;
		if (ch == '.' && (p[1] == '.' || p[1] == '\0'))
			return false;
	}
	return true;
}

char *payload_get_path(json_object *root, const char *dotted)
{
	json_object *o;
	if (!lookup_path(root, dotted, &o))
		return NULL;
	size_t n;
	const char *s = payload_scalar_text(o, &n);
	/* A C string cannot say where a NUL-holding value ends. */
	if (!s || memchr(s, '\0', n))
		return NULL;
	return xstrndup(s, n);
}

const char *payload_get_string(json_object *root, const char *dotted, bool *found)
{
	json_object *o;
	bool f = lookup_path(root, dotted, &o);
	if (found)
		*found = f;
	if (!f || !json_object_is_type(o, json_type_string))
		return NULL;
	const char *s = json_object_get_string(o);
	/* Counted as not a string: "build\0x" must not pass for "build". */
	if (memchr(s, '\0', (size_t)json_object_get_string_len(o)))
		return NULL;
	return s;
}
