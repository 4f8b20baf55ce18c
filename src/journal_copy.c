/*
 * A journal's deliveries as lines of text (journal_copy.h): the export's
 * reading of one delivery whole, its line, and a line back into the
 * delivery that journal_import writes. Times are the journal's own
 * milliseconds, so that a copy is exact; bytes (the body, hooks' output)
 * are base64, so that a binary body survives.
 */
#include "journal_copy.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

/* ---- ownership ---- */

static void *own(struct journal_copy *c, void *p)
{
	if (c->nowned == c->owned_cap) {
		c->owned_cap = c->owned_cap ? 2 * c->owned_cap : 16;
		c->owned = xrealloc(c->owned, c->owned_cap * sizeof(*c->owned));
	}
	c->owned[c->nowned++] = p;
	return p;
}

static const char *own_str(struct journal_copy *c, const char *s)
{
	return s ? own(c, xstrdup(s)) : NULL;
}

static const void *own_bytes(struct journal_copy *c, const void *p, size_t n)
{
	void *q = xmalloc(n + 1); /* at least one byte, and text stays terminated */
	if (n)
		memcpy(q, p, n);
	((char *)q)[n] = '\0';
	return own(c, q);
}

void journal_copy_free(struct journal_copy *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nattempts; i++)
		free((void *)c->attempts[i].hooks);
	free(c->attempts);
	for (size_t i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->owned);
	memset(c, 0, sizeof(*c));
}

/* ---- reading a delivery whole ---- */

static void copy_entry(const struct journal_entry *e, void *arg)
{
	struct journal_copy *c = arg;
	struct journal_entry *d = &c->entry;
	*d = *e;
	d->endpoint = own_str(c, e->endpoint);
	d->delivery_id = own_str(c, e->delivery_id);
	d->event = own_str(c, e->event);
	d->remote_addr = own_str(c, e->remote_addr);
	d->status = own_str(c, e->status);
	d->error = own_str(c, e->error);
	d->headers = own_str(c, e->headers);
	d->body = own_bytes(c, e->body, e->body ? e->body_kept : 0);
	if (!e->body)
		d->body_kept = 0;
}

static void copy_attempt(const struct journal_attempt *a, void *arg)
{
	struct journal_copy *c = arg;
	c->attempts = xrealloc(c->attempts, (c->nattempts + 1) * sizeof(*c->attempts));
	struct journal_attempt *d = &c->attempts[c->nattempts++];
	*d = *a;
	d->status = own_str(c, a->status);
	d->error = own_str(c, a->error);
	d->instance = own_str(c, a->instance);
	d->hooks = NULL;
	d->nhooks = 0;
}

static void copy_hook(const struct journal_hook *h, void *arg)
{
	struct journal_copy *c = arg;
	if (!c->nattempts)
		return;
	struct journal_attempt *a = &c->attempts[c->nattempts - 1];
	struct journal_hook *hooks = xrealloc((void *)a->hooks, (a->nhooks + 1) * sizeof(*hooks));
	struct journal_hook *d = &hooks[a->nhooks++];
	*d = *h;
	d->hook = own_str(c, h->hook);
	d->signal = own_str(c, h->signal);
	d->error = own_str(c, h->error);
	d->output = h->output ? own_bytes(c, h->output, h->output_len) : NULL;
	if (!h->output)
		d->output_len = 0;
	a->hooks = hooks;
}

enum result journal_copy_read(struct journal *j, int64_t rowid, struct journal_copy *out)
{
	memset(out, 0, sizeof(*out));
	enum result r = journal_read(j, rowid, copy_entry, out);
	if (r != RESULT_OK)
		return r;
	/* Which attempt a replay asked for only matters while the delivery
	 * waits for it; journal_get is the call that says. */
	if (delivery_state_pending(out->entry.state)) {
		struct journal_pending p;
		r = journal_get(j, rowid, &p);
		if (r == RESULT_OK) {
			out->entry.replay_attempt = p.replay_attempt;
			journal_pending_free(&p);
		}
	}
	if (r == RESULT_OK) {
		struct journal_attempt_visitor v = {copy_attempt, copy_hook, out};
		r = journal_read_attempts(j, rowid, &v);
	}
	if (r != RESULT_OK)
		journal_copy_free(out);
	return r;
}

/* ---- the line ---- */

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *base64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	size_t len = crypto_b64_encode(out, p, n);
	json_object *o = json_object_new_string_len(out, (int)len);
	free(out);
	return o;
}

/* "Name: value\n" lines as ["Name: value", ...]. */
static json_object *header_list(const char *lines)
{
	json_object *a = json_object_new_array();
	for (const char *p = lines ? lines : ""; *p;) {
		size_t n = strcspn(p, "\n");
		if (n)
			json_object_array_add(a, json_object_new_string_len(p, (int)n));
		p += n;
		if (*p)
			p++;
	}
	return a;
}

static json_object *hook_object(const struct journal_hook *h)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "hook", json_object_new_string(h->hook ? h->hook : ""));
	json_object_object_add(o, "exit", h->exit_code >= 0 ? json_object_new_int(h->exit_code) : NULL);
	json_object_object_add(o, "signal", str_or_null(h->signal && *h->signal ? h->signal : NULL));
	json_object_object_add(o, "ms", json_object_new_int64(h->ms));
	json_object_object_add(o, "error", str_or_null(h->error));
	json_object_object_add(o, "output_base64",
	                       h->output ? base64((const unsigned char *)h->output, h->output_len)
	                                 : NULL);
	return o;
}

static json_object *attempt_object(const struct journal_attempt *a)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "attempt", json_object_new_int(a->attempt));
	json_object_object_add(o, "started_ms", json_object_new_int64(a->started_ms));
	json_object_object_add(o, "finished_ms", json_object_new_int64(a->finished_ms));
	json_object_object_add(o, "http", json_object_new_int(a->http));
	json_object_object_add(o, "status", str_or_null(a->status));
	json_object_object_add(o, "error", str_or_null(a->error));
	json_object_object_add(o, "replay", json_object_new_boolean(a->replay));
	json_object_object_add(o, "client_gone", json_object_new_boolean(a->client_gone));
	json_object_object_add(o, "instance", str_or_null(a->instance));
	json_object *hooks = json_object_new_array();
	for (size_t i = 0; i < a->nhooks; i++)
		json_object_array_add(hooks, hook_object(&a->hooks[i]));
	json_object_object_add(o, "hooks", hooks);
	return o;
}

void journal_copy_format(const struct journal_copy *c, struct strbuf *sb)
{
	const struct journal_entry *e = &c->entry;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "v", json_object_new_int(JOURNAL_COPY_VERSION));
	json_object_object_add(o, "endpoint", str_or_null(e->endpoint));
	json_object_object_add(o, "id", str_or_null(e->delivery_id));
	json_object_object_add(o, "event", str_or_null(e->event));
	json_object_object_add(o, "remote_addr", str_or_null(e->remote_addr));
	json_object_object_add(o, "async", json_object_new_boolean(e->async));
	json_object_object_add(o, "state", json_object_new_string(delivery_state_name(e->state)));
	json_object_object_add(o, "attempts", json_object_new_int(e->attempts));
	json_object_object_add(o, "received_ms", json_object_new_int64(e->received_ms));
	json_object_object_add(o, "updated_ms", json_object_new_int64(e->updated_ms));
	json_object_object_add(o, "next_due_ms", json_object_new_int64(e->next_due_ms));
	json_object_object_add(o, "run_attempt", json_object_new_int(e->run_attempt));
	json_object_object_add(o, "run_started_ms", json_object_new_int64(e->run_started_ms));
	json_object_object_add(o, "replay_attempt", json_object_new_int(e->replay_attempt));
	json_object_object_add(o, "http", json_object_new_int(e->http));
	json_object_object_add(o, "status", str_or_null(e->status));
	json_object_object_add(o, "error", str_or_null(e->error));
	json_object_object_add(o, "headers", header_list(e->headers));
	json_object_object_add(o, "body_base64", base64(e->body, e->body ? e->body_kept : 0));
	json_object_object_add(o, "body_len", json_object_new_int64(e->body_len));
	json_object_object_add(o, "body_cut", json_object_new_boolean(e->body_cut));
	json_object *attempts = json_object_new_array();
	for (size_t i = 0; i < c->nattempts; i++)
		json_object_array_add(attempts, attempt_object(&c->attempts[i]));
	json_object_object_add(o, "attempt_list", attempts);
	size_t len;
	const char *text = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	sb_append(sb, text, len);
	sb_putc(sb, '\n');
	json_object_put(o);
}

/* ---- a line back ---- */

struct parse {
	struct journal_copy *c;
	char *err;
	size_t errlen;
	bool failed;
};

static bool fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct parse *p, const char *fmt, ...)
{
	if (!p->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
		p->failed = true;
	}
	return false;
}

/* The member key of o: NULL when absent or null. */
static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	json_object_object_get_ex(o, key, &v);
	return v;
}

/* A string member; absent or null: def (required: an error). */
static const char *get_str(struct parse *p, json_object *o, const char *where, const char *key,
                           bool required, const char *def)
{
	json_object *v = member(o, key);
	if (!v) {
		if (required)
			fail(p, "%s\"%s\" is missing", where, key);
		return def;
	}
	if (!json_object_is_type(v, json_type_string)) {
		fail(p, "%s\"%s\" is not a string", where, key);
		return def;
	}
	const char *s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v)) {
		fail(p, "%s\"%s\" holds a NUL byte", where, key);
		return def;
	}
	return own_str(p->c, s);
}

static int64_t get_int(struct parse *p, json_object *o, const char *where, const char *key,
                       bool required, int64_t min, int64_t max, int64_t def)
{
	json_object *v = member(o, key);
	if (!v) {
		if (required)
			fail(p, "%s\"%s\" is missing", where, key);
		return def;
	}
	if (!json_object_is_type(v, json_type_int)) {
		fail(p, "%s\"%s\" is not an integer", where, key);
		return def;
	}
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (errno || n < min || n > max) {
		fail(p, "%s\"%s\" is out of range", where, key);
		return def;
	}
	return n;
}

static bool get_bool(struct parse *p, json_object *o, const char *where, const char *key,
                     bool required)
{
	json_object *v = member(o, key);
	if (!v) {
		if (required)
			fail(p, "%s\"%s\" is missing", where, key);
		return false;
	}
	if (!json_object_is_type(v, json_type_boolean))
		return fail(p, "%s\"%s\" is not true or false", where, key);
	return json_object_get_boolean(v);
}

static bool is_b64(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/* Base64 as written by base64(): padded, nothing else in it. */
static bool b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
	if (slen % 4)
		return false;
	size_t pads = slen && s[slen - 1] == '=' ? (s[slen - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < slen - pads; i++) {
		if (!is_b64((unsigned char)s[i]))
			return false;
	}
	unsigned char *buf = xmalloc(slen / 4 * 3 + 1);
	size_t len = crypto_b64_decode(buf, s, slen);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return true;
}

/* A base64 member as bytes (NUL-terminated); absent or null: NULL. */
static const unsigned char *get_bytes(struct parse *p, json_object *o, const char *where,
                                      const char *key, size_t *len)
{
	*len = 0;
	json_object *v = member(o, key);
	if (!v)
		return NULL;
	if (!json_object_is_type(v, json_type_string)) {
		fail(p, "%s\"%s\" is not a string", where, key);
		return NULL;
	}
	unsigned char *bytes;
	if (!b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), &bytes,
	                len)) {
		fail(p, "%s\"%s\" is not base64", where, key);
		return NULL;
	}
	return own(p->c, bytes);
}

static json_object *get_array(struct parse *p, json_object *o, const char *where, const char *key)
{
	json_object *v = member(o, key);
	if (v && !json_object_is_type(v, json_type_array)) {
		fail(p, "%s\"%s\" is not a list", where, key);
		return NULL;
	}
	return v;
}

static const struct {
	const char *name;
	enum delivery_state state;
} state_names[] = {
	{"queued", DSTATE_QUEUED},       {"running", DSTATE_RUNNING},
	{"retry_wait", DSTATE_RETRY_WAIT}, {"succeeded", DSTATE_SUCCEEDED},
	{"failed", DSTATE_FAILED},       {"skipped", DSTATE_SKIPPED},
};

static void parse_state(struct parse *p, json_object *o, enum delivery_state *out)
{
	const char *s = get_str(p, o, "", "state", true, NULL);
	if (!s)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(state_names); i++) {
		if (strcmp(s, state_names[i].name) == 0) {
			*out = state_names[i].state;
			return;
		}
	}
	fail(p, "\"state\" is not a delivery state: '%s'", s);
}

/* ["Name: value", ...] back into "Name: value\n" lines. */
static const char *parse_headers(struct parse *p, json_object *o)
{
	json_object *a = get_array(p, o, "", "headers");
	struct strbuf sb;
	sb_init(&sb);
	size_t n = a ? json_object_array_length(a) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *h = json_object_array_get_idx(a, i);
		const char *s = json_object_is_type(h, json_type_string) ? json_object_get_string(h)
		                                                          : NULL;
		if (!s || strlen(s) != (size_t)json_object_get_string_len(h) ||
		    strpbrk(s, "\r\n") || !strchr(s, ':')) {
			fail(p, "\"headers\"[%zu] is not a \"Name: value\" string", i);
			break;
		}
		sb_puts(&sb, s);
		sb_putc(&sb, '\n');
	}
	return own(p->c, sb_steal(&sb));
}

static void parse_hook(struct parse *p, json_object *o, size_t ai, size_t hi,
                       struct journal_hook *h)
{
	char where[80]; /* two size_t of 20 digits fit */
	snprintf(where, sizeof(where), "attempt_list[%zu].hooks[%zu]: ", ai, hi);
	if (!json_object_is_type(o, json_type_object)) {
		fail(p, "%sis not an object", where);
		return;
	}
	h->hook = get_str(p, o, where, "hook", true, "");
	h->exit_code = (int)get_int(p, o, where, "exit", false, 0, 255, -1);
	h->signal = get_str(p, o, where, "signal", false, NULL);
	h->ms = get_int(p, o, where, "ms", false, 0, INT64_MAX, 0);
	h->error = get_str(p, o, where, "error", false, NULL);
	h->output = (const char *)get_bytes(p, o, where, "output_base64", &h->output_len);
}

static void parse_attempt(struct parse *p, json_object *o, size_t ai, struct journal_attempt *a)
{
	char where[48];
	snprintf(where, sizeof(where), "attempt_list[%zu]: ", ai);
	if (!json_object_is_type(o, json_type_object)) {
		fail(p, "%sis not an object", where);
		return;
	}
	a->attempt = (int)get_int(p, o, where, "attempt", true, 1, INT_MAX, 1);
	a->started_ms = get_int(p, o, where, "started_ms", false, 0, INT64_MAX, 0);
	a->finished_ms = get_int(p, o, where, "finished_ms", false, 0, INT64_MAX, 0);
	a->http = (int)get_int(p, o, where, "http", false, 0, 999, 0);
	a->status = get_str(p, o, where, "status", true, "");
	a->error = get_str(p, o, where, "error", false, NULL);
	a->replay = get_bool(p, o, where, "replay", false);
	a->client_gone = get_bool(p, o, where, "client_gone", false);
	a->instance = get_str(p, o, where, "instance", false, NULL);
	json_object *hooks = get_array(p, o, where, "hooks");
	size_t n = hooks ? json_object_array_length(hooks) : 0;
	if (!n)
		return;
	struct journal_hook *list = xcalloc(n, sizeof(*list));
	a->hooks = list;
	a->nhooks = n;
	for (size_t i = 0; i < n && !p->failed; i++)
		parse_hook(p, json_object_array_get_idx(hooks, i), ai, i, &list[i]);
}

static void parse_delivery(struct parse *p, json_object *o)
{
	struct journal_copy *c = p->c;
	struct journal_entry *e = &c->entry;
	if (!json_object_is_type(o, json_type_object)) {
		fail(p, "not a JSON object");
		return;
	}
	int64_t v = get_int(p, o, "", "v", true, 0, INT_MAX, 0);
	if (!p->failed && v != JOURNAL_COPY_VERSION) {
		fail(p, "format version %lld: this hookd reads version %d", (long long)v,
		     JOURNAL_COPY_VERSION);
		return;
	}
	e->endpoint = get_str(p, o, "", "endpoint", true, "");
	e->delivery_id = get_str(p, o, "", "id", true, "");
	if (!p->failed && (!*e->endpoint || !*e->delivery_id)) {
		fail(p, "\"%s\" is empty", *e->endpoint ? "id" : "endpoint");
		return;
	}
	e->event = get_str(p, o, "", "event", true, "");
	e->remote_addr = get_str(p, o, "", "remote_addr", false, "");
	e->async = get_bool(p, o, "", "async", true);
	parse_state(p, o, &e->state);
	e->attempts = (int)get_int(p, o, "", "attempts", true, 0, INT_MAX, 0);
	e->received_ms = get_int(p, o, "", "received_ms", true, 0, INT64_MAX, 0);
	e->updated_ms = get_int(p, o, "", "updated_ms", false, 0, INT64_MAX, e->received_ms);
	e->next_due_ms = get_int(p, o, "", "next_due_ms", false, 0, INT64_MAX, 0);
	e->run_attempt = (int)get_int(p, o, "", "run_attempt", false, 0, INT_MAX, 0);
	e->run_started_ms = get_int(p, o, "", "run_started_ms", false, 0, INT64_MAX, 0);
	e->replay_attempt = (int)get_int(p, o, "", "replay_attempt", false, 0, INT_MAX, 0);
	e->http = (int)get_int(p, o, "", "http", false, 0, 999, 0);
	e->status = get_str(p, o, "", "status", false, NULL);
	e->error = get_str(p, o, "", "error", false, NULL);
	e->headers = parse_headers(p, o);
	e->body = get_bytes(p, o, "", "body_base64", &e->body_kept);
	if (!e->body)
		e->body = own(c, xstrdup(""));
	e->body_len = get_int(p, o, "", "body_len", false, 0, INT64_MAX, (int64_t)e->body_kept);
	e->body_cut = get_bool(p, o, "", "body_cut", false);
	if (p->failed)
		return;
	if (e->body_cut ? (uint64_t)e->body_len < e->body_kept : (uint64_t)e->body_len != e->body_kept) {
		fail(p, "\"body_len\" %lld does not fit the body's %zu bytes (body_cut %s)",
		     (long long)e->body_len, e->body_kept, e->body_cut ? "true" : "false");
		return;
	}
	json_object *attempts = get_array(p, o, "", "attempt_list");
	size_t n = attempts ? json_object_array_length(attempts) : 0;
	if (!n)
		return;
	c->attempts = xcalloc(n, sizeof(*c->attempts));
	c->nattempts = n;
	for (size_t i = 0; i < n && !p->failed; i++) {
		parse_attempt(p, json_object_array_get_idx(attempts, i), i, &c->attempts[i]);
		if (!p->failed && i && c->attempts[i].attempt <= c->attempts[i - 1].attempt)
			fail(p, "attempt_list[%zu]: attempts out of order", i);
	}
}

bool journal_copy_parse(const char *line, size_t len, struct journal_copy *out, char *err,
                        size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct parse p = {.c = out, .err = err, .errlen = errlen};
	if (len > INT_MAX)
		return fail(&p, "line too long");
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o) {
		fail(&p, "not JSON: %s",
		     jerr == json_tokener_continue ? "it ends early" : json_tokener_error_desc(jerr));
	} else {
		while (end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
			end++;
		if (end < len)
			fail(&p, "more than one JSON value on the line");
		else
			parse_delivery(&p, o);
	}
	json_object_put(o);
	if (p.failed)
		journal_copy_free(out);
	return !p.failed;
}
