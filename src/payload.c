/*
 * The request body: what it is (Content-Type), what it holds (JSON, or a
 * form whose field may hold JSON), and how its scalar leaves become a
 * hook's environment (README "What a hook gets").
 */
#include "payload.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonscan.h"
#include "util.h"

static bool is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_digit(unsigned char c)
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
		if (!is_digit((unsigned char)tok[i]))
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
		} else if (c == '-' || is_digit(c)) {
			while (i < len && (is_digit((unsigned char)body[i]) || body[i] == '-' ||
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
static const char *scalar_text(json_object *o, size_t *n)
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

char *payload_get_path(json_object *root, const char *dotted)
{
	json_object *o;
	if (!lookup_path(root, dotted, &o))
		return NULL;
	size_t n;
	const char *s = scalar_text(o, &n);
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

/* ---- the environment ---- */

void envlist_init(struct envlist *e)
{
	e->cap = 16;
	e->v = xcalloc(e->cap, sizeof *e->v);
	e->n = 0;
	e->bytes = 0;
}

void envlist_free(struct envlist *e)
{
	if (!e || !e->v)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = e->cap = e->bytes = 0;
}

static size_t entry_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

long envlist_find(const struct envlist *e, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < e->n; i++) {
		if (strncmp(e->v[i], name, n) == 0 && e->v[i][n] == '=')
			return (long)i;
	}
	return -1;
}

void envlist_remove(struct envlist *e, const char *name)
{
	long i = e->v ? envlist_find(e, name) : -1;
	if (i < 0)
		return;
	e->bytes -= strlen(e->v[i]) + 1;
	free(e->v[i]);
	memmove(&e->v[i], &e->v[i + 1], (e->n - (size_t)i) * sizeof(*e->v)); /* the NULL too */
	e->n--;
}

/* Appends without looking for NAME: for callers that know it is new. */
static void envlist_append(struct envlist *e, char *entry)
{
	if (!e->v)
		envlist_init(e);
	/* One spare slot keeps v NULL-terminated at all times. */
	if (e->n + 2 > e->cap) {
		e->cap *= 2;
		e->v = xrealloc(e->v, e->cap * sizeof *e->v);
	}
	e->v[e->n++] = entry;
	e->v[e->n] = NULL;
	e->bytes += strlen(entry) + 1;
}

static char *make_entry(const char *name, const char *value, size_t vlen)
{
	size_t nlen = strlen(name);
	char *entry = xmalloc(nlen + 1 + vlen + 1);
	memcpy(entry, name, nlen);
	entry[nlen] = '=';
	memcpy(entry + nlen + 1, value, vlen);
	entry[nlen + 1 + vlen] = '\0';
	return entry;
}

void envlist_add_len(struct envlist *e, const char *name, const char *value, size_t vlen)
{
	char *entry = make_entry(name, value, vlen);
	long i = e->v ? envlist_find(e, name) : -1;
	if (i >= 0) {
		/* A name given twice: the later value replaces the earlier, so
		 * a hook never sees two entries that getenv() would pick from. */
		e->bytes -= strlen(e->v[i]) + 1;
		free(e->v[i]);
		e->v[i] = entry;
		e->bytes += strlen(entry) + 1;
		return;
	}
	envlist_append(e, entry);
}

void envlist_copy(struct envlist *dst, const struct envlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		envlist_append(dst, xstrdup(src->v[i]));
}

void envlist_add(struct envlist *e, const char *name, const char *value)
{
	envlist_add_len(e, name, value ? value : "", value ? strlen(value) : 0);
}

static int entry_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t nx = entry_name_len(x), ny = entry_name_len(y);
	/* The names alone, a name before any longer one it starts: comparing
	 * whole entries would put "A0=" before "A=" ('0' < '='). */
	int c = memcmp(x, y, nx < ny ? nx : ny);
	if (c)
		return c;
	return nx < ny ? -1 : nx > ny;
}

void envlist_sort(struct envlist *e)
{
	if (e->n > 1)
		qsort(e->v, e->n, sizeof *e->v, entry_cmp);
}

/* ---- flattening (README "What a hook gets") ---- */

size_t env_key_normalize(const char *key, size_t keylen, char *out)
{
	size_t o = 0;
	bool pending = false; /* an '_' to write before the next letter or digit */
	for (size_t i = 0; i < keylen; i++) {
		unsigned char c = (unsigned char)key[i];
		if (i > 0 && is_upper(c)) {
			unsigned char p = (unsigned char)key[i - 1];
			if (is_lower(p) || is_digit(p))
				pending = true; /* camelCase, v2Api */
		}
		if (is_lower(c))
			c = (unsigned char)(c - 'a' + 'A');
		if (!is_upper(c) && !is_digit(c)) {
			pending = true; /* runs collapse: one flag, not a count */
			continue;
		}
		/* No '_' before the first letter or digit: leading '_' go. */
		if (pending && o > 0)
			out[o++] = '_';
		pending = false;
		out[o++] = (char)c;
	}
	/* A pending '_' at the end is never written: trailing '_' go. */
	out[o] = '\0';
	return o;
}

/*
 * The names already held while flattening: a set of copies, open
 * addressing over one arena of NUL-separated names. (A json-c object did
 * this before; its table started at 16 entries and was resized twice for
 * a small payload, the largest cost of flattening one.)
 */
struct nameset {
	size_t *slots;     /* offset + 1 of the name in `names`; 0: empty */
	uint32_t *hashes;
	size_t cap, n;     /* cap: a power of two, at least twice n */
	struct strbuf names;
};

/* Drawn once a process, so that names a sender chose to share a slot in
 * one process do not in another. */
static uint32_t name_seed(void)
{
	static uint32_t seed;
	static bool drawn;
	if (!drawn) {
		if (getentropy(&seed, sizeof(seed)) != 0)
			seed = (uint32_t)getpid() * 2654435761u;
		drawn = true;
	}
	return seed;
}

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u ^ name_seed(); /* FNV-1a, seeded */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static void nameset_init(struct nameset *ns, size_t cap)
{
	ns->cap = cap;
	ns->n = 0;
	ns->slots = xcalloc(cap, sizeof(*ns->slots));
	ns->hashes = xmalloc(cap * sizeof(*ns->hashes));
	sb_init(&ns->names);
}

static void nameset_free(struct nameset *ns)
{
	free(ns->slots);
	free(ns->hashes);
	sb_free(&ns->names);
}

static size_t nameset_find(const struct nameset *ns, const char *s, size_t n, uint32_t h,
                           bool *found)
{
	size_t i = h & (ns->cap - 1);
	for (; ns->slots[i]; i = (i + 1) & (ns->cap - 1)) {
		const char *have = ns->names.buf + ns->slots[i] - 1;
		/* strncmp stops at the end of a shorter name; s holds no NUL. */
		if (ns->hashes[i] == h && strncmp(have, s, n) == 0 && have[n] == '\0') {
			*found = true;
			return i;
		}
	}
	*found = false;
	return i;
}

/* Adds s[0..n); false when it was there already. */
static bool nameset_add(struct nameset *ns, const char *s, size_t n)
{
	uint32_t h = name_hash(s, n);
	bool found;
	size_t i = nameset_find(ns, s, n, h, &found);
	if (found)
		return false;
	if ((ns->n + 1) * 2 > ns->cap) {
		size_t *old = ns->slots;
		uint32_t *oldh = ns->hashes;
		size_t oldcap = ns->cap;
		ns->cap *= 2;
		ns->slots = xcalloc(ns->cap, sizeof(*ns->slots));
		ns->hashes = xmalloc(ns->cap * sizeof(*ns->hashes));
		for (size_t j = 0; j < oldcap; j++) {
			if (!old[j])
				continue;
			size_t k = oldh[j] & (ns->cap - 1);
			while (ns->slots[k])
				k = (k + 1) & (ns->cap - 1);
			ns->slots[k] = old[j];
			ns->hashes[k] = oldh[j];
		}
		free(old);
		free(oldh);
		i = h & (ns->cap - 1);
		while (ns->slots[i])
			i = (i + 1) & (ns->cap - 1);
	}
	ns->slots[i] = ns->names.len + 1;
	ns->hashes[i] = h;
	sb_append(&ns->names, s, n);
	sb_putc(&ns->names, '\0');
	ns->n++;
	return true;
}

struct flatten {
	const char *prefix;
	size_t prefixlen;
	struct envlist *env;
	struct nameset taken; /* names already held */
	size_t vars, bytes, omitted;
	struct strbuf name;
};

static void count_leaves(struct flatten *f, json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			count_leaves(f, v);
		}
		break;
	}
	case json_type_array: {
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++)
			count_leaves(f, json_object_array_get_idx(o, i));
		break;
	}
	default:
		f->omitted++;
		break;
	}
}

/* One leaf, its value val[0..vlen) as a hook sees it. */
static void flatten_value(struct flatten *f, const char *val, size_t vlen)
{
	const char *name = f->name.buf;
	size_t nlen = f->name.len;

	/* A leaf whose keys all normalize to nothing has no name to take.
	 * Neither it nor a name collision counts as "left out": that count
	 * (README "What a hook gets") is for the limits, which say something about the payload;
	 * a body `event` meeting the reserved HOOK_EVENT is routine. */
	if (nlen == f->prefixlen)
		return;
	/* The first leaf with a name holds it, kept or not: a later leaf
	 * never stands in for one that was left out. */
	if (!nameset_add(&f->taken, name, nlen))
		return;

	size_t entry = nlen + 1 + vlen + 1;
	if (memchr(val, '\0', vlen) || vlen > FLATTEN_MAX_VALUE || nlen > FLATTEN_MAX_NAME ||
	    f->vars >= FLATTEN_MAX_VARS || f->bytes + entry > FLATTEN_MAX_BYTES) {
		f->omitted++;
		return;
	}
	envlist_append(f->env, make_entry(name, val, vlen));
	f->vars++;
	f->bytes += entry;
}

static void flatten_leaf(struct flatten *f, json_object *o)
{
	size_t vlen = 0;
	const char *val = scalar_text(o, &vlen);
	flatten_value(f, val, vlen);
}

/* Appends one path key to the name; returns what name_pop() takes back. */
static size_t name_push(struct flatten *f, const char *key, size_t keylen)
{
	size_t saved = f->name.len;
	char small[64];
	char *norm = keylen * 2 + 1 <= sizeof small ? small : xmalloc(keylen * 2 + 1);
	size_t n = env_key_normalize(key, keylen, norm);
	if (n > 0) {
		if (f->name.len > f->prefixlen)
			sb_putc(&f->name, '_');
		sb_append(&f->name, norm, n);
	}
	if (norm != small)
		free(norm);
	return saved;
}

static void name_pop(struct flatten *f, size_t saved)
{
	f->name.len = saved;
	f->name.buf[saved] = '\0';
}

static void flatten_node(struct flatten *f, json_object *o, size_t level);

/* Appends one path key to the name, recurses, and takes it off again. */
static void flatten_child(struct flatten *f, const char *key, size_t keylen, json_object *v,
                          size_t level)
{
	size_t saved = name_push(f, key, keylen);
	flatten_node(f, v, level);
	name_pop(f, saved);
}

static void flatten_node(struct flatten *f, json_object *o, size_t level)
{
	enum json_type t = json_object_get_type(o);
	if (t != json_type_object && t != json_type_array) {
		if (level > FLATTEN_MAX_DEPTH)
			f->omitted++;
		else
			flatten_leaf(f, o);
		return;
	}
	/* Below the deepest level only the count of what is left out matters. */
	if (level >= FLATTEN_MAX_DEPTH) {
		count_leaves(f, o);
		return;
	}
	if (t == json_type_object) {
		json_object_object_foreach(o, k, v)
		{
			flatten_child(f, k, strlen(k), v, level + 1);
		}
	} else {
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++) {
			char idx[24];
			int len = snprintf(idx, sizeof idx, "%zu", i);
			flatten_child(f, idx, (size_t)len, json_object_array_get_idx(o, i),
			              level + 1);
		}
	}
}

static void flatten_begin(struct flatten *f, const char *prefix, const char *const *reserved,
                          struct envlist *env)
{
	memset(f, 0, sizeof(*f));
	f->prefix = prefix ? prefix : "";
	f->env = env;
	f->prefixlen = strlen(f->prefix);
	nameset_init(&f->taken, 64);
	sb_init(&f->name);
	sb_puts(&f->name, f->prefix);

	/* Reserved names and whatever the caller already put in env. */
	for (size_t i = 0; reserved && reserved[i]; i++)
		nameset_add(&f->taken, reserved[i], strlen(reserved[i]));
	for (size_t i = 0; env->v && i < env->n; i++)
		nameset_add(&f->taken, env->v[i], entry_name_len(env->v[i]));
}

static void flatten_end(struct flatten *f, size_t *omitted)
{
	if (omitted)
		*omitted = f->omitted;
	sb_free(&f->name);
	nameset_free(&f->taken);
}

void payload_flatten(json_object *root, const char *prefix, const char *const *reserved,
                     struct envlist *env, size_t *omitted)
{
	struct flatten f;
	flatten_begin(&f, prefix, reserved, env);
	if (json_object_is_type(root, json_type_object) || json_object_is_type(root, json_type_array))
		flatten_node(&f, root, 0);
	flatten_end(&f, omitted);
}

/* ---- flattening straight from the text ---- */

/*
 * The same walk over the body's text, for a body json_scan accepted: no
 * tree is built. It must give what json-c's tree gives, byte for byte
 * (fuzz_payload holds the two to that): strings decoded as json-c decodes
 * them (a lone surrogate is U+FFFD), a key cut at its first NUL, numbers
 * as written (payload_parse_json keeps their text too). Where an object
 * has a key twice, json-c keeps the last value in the first one's place;
 * that case is left to the tree. The flatten table in test_payload.c
 * pins json-c's decoding: a json-c that decodes otherwise fails it, and
 * fuzz_payload should then run again.
 */
struct text_walk {
	struct flatten f;
	struct nameset keys; /* "<object number>:<key>" for every key met */
	size_t objects;
	struct strbuf str;   /* the string being decoded */
	struct strbuf key;   /* "<object number>:<key>" being looked up */
	bool dup;
};

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static unsigned hex4(const char *p)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static void put_utf8(struct strbuf *sb, unsigned c)
{
	char b[4];
	size_t n;
	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	sb_append(sb, b, n);
}

#define REPLACEMENT 0xFFFD

/* Decodes the string at p (its opening quote) into out; returns the byte
 * after its closing quote. */
static const char *decode_string(const char *p, struct strbuf *out)
{
	out->len = 0;
	sb_append(out, "", 0); /* "" when nothing follows */
	unsigned high = 0; /* a high surrogate waiting for its low half */
	for (p++;;) {
		const char *run = p;
		while (*p != '"' && *p != '\\')
			p++;
		if (p > run || *p == '"') {
			if (high)
				put_utf8(out, REPLACEMENT);
			high = 0;
			sb_append(out, run, (size_t)(p - run));
			if (*p == '"')
				return p + 1;
		}
		char e = p[1];
		p += 2;
		if (e != 'u') {
			if (high)
				put_utf8(out, REPLACEMENT);
			high = 0;
			static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
			const char *k = strchr(from, e);
			sb_putc(out, k ? to[k - from] : e); /* '"', '\\', '/' */
			continue;
		}
		unsigned u = hex4(p);
		p += 4;
		if (high && u >= 0xDC00 && u <= 0xDFFF) {
			put_utf8(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
			high = 0;
			continue;
		}
		if (high)
			put_utf8(out, REPLACEMENT);
		high = 0;
		if (u >= 0xD800 && u <= 0xDBFF)
			high = u;
		else
			put_utf8(out, u >= 0xDC00 && u <= 0xDFFF ? REPLACEMENT : u);
	}
}

static const char *walk_value(struct text_walk *w, const char *p, size_t level, bool counting);

/* A scalar: its leaf (or, below the deepest level, its count). */
static const char *walk_scalar(struct text_walk *w, const char *p, size_t level, bool counting)
{
	const char *val;
	size_t vlen;
	const char *next;
	if (*p == '"') {
		next = decode_string(p, &w->str);
		val = w->str.buf;
		vlen = w->str.len;
	} else if (*p == 't' || *p == 'f' || *p == 'n') {
		vlen = *p == 'f' ? 5 : 4;
		next = p + vlen;
		val = *p == 'n' ? "" : p;
		if (*p == 'n')
			vlen = 0;
	} else {
		next = p;
		while (*next == '-' || *next == '+' || *next == '.' || *next == 'e' ||
		       *next == 'E' || (*next >= '0' && *next <= '9'))
			next++;
		val = p;
		vlen = (size_t)(next - p);
	}
	if (counting || level > FLATTEN_MAX_DEPTH)
		w->f.omitted++;
	else
		flatten_value(&w->f, val, vlen);
	return next;
}

static const char *walk_object(struct text_walk *w, const char *p, size_t level, bool counting)
{
	char id[32];
	int idlen = snprintf(id, sizeof(id), "%zu:", w->objects++);
	p = skip_ws(p + 1);
	if (*p == '}')
		return p + 1;
	for (;;) {
		p = decode_string(p, &w->str);
		size_t klen = strlen(w->str.buf); /* json-c's keys are C strings */
		/* The key, with its object's number, among all keys met. */
		w->key.len = 0;
		sb_append(&w->key, id, (size_t)idlen);
		sb_append(&w->key, w->str.buf, klen);
		if (!nameset_add(&w->keys, w->key.buf, w->key.len)) {
			w->dup = true;
			return NULL;
		}
		size_t saved = counting ? 0 : name_push(&w->f, w->str.buf, klen);
		p = skip_ws(skip_ws(p) + 1); /* the ':' */
		p = walk_value(w, p, level + 1, counting);
		if (!counting)
			name_pop(&w->f, saved);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == '}')
			return p + 1;
		p = skip_ws(p + 1); /* the ',' */
	}
}

static const char *walk_array(struct text_walk *w, const char *p, size_t level, bool counting)
{
	p = skip_ws(p + 1);
	if (*p == ']')
		return p + 1;
	for (size_t i = 0;; i++) {
		size_t saved = 0;
		if (!counting) {
			char idx[24];
			int len = snprintf(idx, sizeof idx, "%zu", i);
			saved = name_push(&w->f, idx, (size_t)len);
		}
		p = walk_value(w, p, level + 1, counting);
		if (!counting)
			name_pop(&w->f, saved);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == ']')
			return p + 1;
		p = skip_ws(p + 1); /* the ',' */
	}
}

static const char *walk_value(struct text_walk *w, const char *p, size_t level, bool counting)
{
	/* Below the deepest level only the count of what is left out matters
	 * (and the keys, to find one given twice). */
	bool below = counting || level >= FLATTEN_MAX_DEPTH;
	if (*p == '{')
		return walk_object(w, p, level, below);
	if (*p == '[')
		return walk_array(w, p, level, below);
	return walk_scalar(w, p, level, counting);
}

bool payload_flatten_text(const char *body, size_t len, const char *prefix,
                          const char *const *reserved, struct envlist *env, size_t *omitted)
{
	(void)len; /* json_scan accepted it: it ends where its text says */
	struct text_walk w = {.objects = 0};
	size_t base = env->n, base_bytes = env->bytes;
	flatten_begin(&w.f, prefix, reserved, env);
	nameset_init(&w.keys, 64);
	sb_init(&w.str);
	sb_init(&w.key);
	const char *p = skip_ws(body);
	if (*p == '{' || *p == '[')
		walk_value(&w, p, 0, false);
	flatten_end(&w.f, omitted);
	nameset_free(&w.keys);
	sb_free(&w.str);
	sb_free(&w.key);
	if (!w.dup)
		return true;
	/* Back to what the caller had: the tree decides this one. */
	while (env->n > base)
		free(env->v[--env->n]);
	if (env->v)
		env->v[env->n] = NULL;
	env->bytes = base_bytes;
	if (omitted)
		*omitted = 0;
	return false;
}
