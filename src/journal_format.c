/*
 * What `hookd events` and `hookd show` print: the journal's deliveries as
 * text for humans (control characters escaped, columns aligned) or JSON,
 * read with the journal's read-back calls (journal.h) and written into a
 * buffer; the commands (cmd_journal.c) print it.
 */
#include "journal_format.h"
#include "crypto.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "util.h"

/* ---- text for humans and JSON ---- */

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/*
 * Appends bytes for a terminal: valid UTF-8 as it is, control characters
 * (C0, DEL, C1: they could drive the terminal) and invalid bytes as \xNN.
 * With multiline, \n and \t are kept. Returns the display width added (one
 * column a code point, an approximation that is right for ASCII ids).
 */
static size_t put_safe(struct strbuf *sb, const char *s, size_t n, bool multiline)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t width = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_seq(p + i, n - i, &cp);
		if (len && (!is_control(cp) || (multiline && (cp == '\n' || cp == '\t')))) {
			sb_append(sb, s + i, len);
			width++;
			i += len;
		} else {
			sb_printf(sb, "\\x%02x", p[i]);
			width += 4;
			i++;
		}
	}
	return width;
}

/* Text means valid UTF-8 without control characters but \n and \t. A body
 * cut in the middle of a character may end in a partial sequence. */
static bool is_text(const unsigned char *p, size_t n, bool cut)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_seq(p + i, n - i, &cp);
		if (len == 0) {
			if (cut && n - i < 4 && p[i] >= 0xc0)
				return true;
			return false;
		}
		if (is_control(cp) && cp != '\n' && cp != '\t')
			return false;
		i += len;
	}
	return true;
}

/* A JSON string (sb_json_str: invalid UTF-8 becomes U+FFFD). */
static void put_json(struct strbuf *sb, const char *s)
{
	sb_json_str(sb, s, strlen(s));
}

/* ,"http":N, or null before any attempt answered. */
static void put_json_http(struct strbuf *sb, int http)
{
	if (http)
		sb_printf(sb, ",\"http\":%d", http);
	else
		sb_puts(sb, ",\"http\":null");
}

static void format_time(int64_t ms, char *buf, size_t len)
{
	format_rfc3339_ms(ms, buf, len);
}

/* ---- hookd events ---- */

enum { EV_RECEIVED, EV_ENDPOINT, EV_ID, EV_EVENT, EV_STATE, EV_HTTP, EV_ATTEMPTS, EV_NCOLS };

static const char *const ev_header[EV_NCOLS] = {
	"RECEIVED_AT", "ENDPOINT", "ID", "EVENT", "STATE", "HTTP", "ATTEMPTS",
};

struct ev_row {
	char *cell[EV_NCOLS];
	size_t width[EV_NCOLS];
};

struct ev_list {
	const struct events_filter *f;
	int limit;
	struct strbuf *out;
	struct ev_row *rows;
	size_t nrows;
	size_t width[EV_NCOLS];
};

static bool ev_visit(const struct journal_entry *e, void *arg)
{
	struct ev_list *l = arg;
	const struct events_filter *f = l->f;
	if (f->event_glob && fnmatch(f->event_glob, e->event, 0) != 0)
		return true;
	char when[40];
	format_time(e->received_ms, when, sizeof(when));
	if (f->json) {
		struct strbuf *out = l->out;
		sb_puts(out, l->nrows ? ",\n  {\"id\":" : "\n  {\"id\":");
		put_json(out, e->delivery_id);
		sb_puts(out, ",\"endpoint\":");
		put_json(out, e->endpoint);
		sb_puts(out, ",\"event\":");
		put_json(out, e->event);
		sb_printf(out, ",\"state\":\"%s\"", delivery_state_name(e->state));
		put_json_http(out, e->http);
		sb_printf(out, ",\"attempts\":%d,\"received_at\":\"%s\"}", e->attempts, when);
		l->nrows++;
		return l->nrows < (size_t)l->limit;
	}
	l->rows = xrealloc(l->rows, (l->nrows + 1) * sizeof(*l->rows));
	struct ev_row *r = &l->rows[l->nrows++];
	char num[2][16];
	snprintf(num[0], sizeof(num[0]), e->http ? "%d" : "-", e->http);
	snprintf(num[1], sizeof(num[1]), "%d", e->attempts);
	const char *raw[EV_NCOLS] = {
		when, e->endpoint, e->delivery_id, e->event, delivery_state_name(e->state),
		num[0], num[1],
	};
	for (int c = 0; c < EV_NCOLS; c++) {
		struct strbuf cell;
		sb_init(&cell);
		r->width[c] = put_safe(&cell, raw[c], strlen(raw[c]), false);
		r->cell[c] = sb_steal(&cell);
		if (r->width[c] > l->width[c])
			l->width[c] = r->width[c];
	}
	return l->nrows < (size_t)l->limit;
}

enum result journal_format_events(struct journal *j, const struct events_filter *f,
                                  struct strbuf *out)
{
	struct ev_list l = {.f = f, .limit = f->limit > 0 ? f->limit : 100, .out = out};
	for (int c = 0; c < EV_NCOLS; c++)
		l.width[c] = strlen(ev_header[c]);
	if (f->json)
		sb_putc(out, '[');

	/* No journal yet (j NULL): no rows. */
	bool failed = j && journal_list(j, f->since_ms, f->failed, ev_visit, &l) != RESULT_OK;

	if (f->json) {
		sb_puts(out, l.nrows ? "\n]\n" : "]\n");
	} else {
		for (size_t i = 0; i <= l.nrows; i++) {
			for (int c = 0; c < EV_NCOLS; c++) {
				const char *cell = i ? l.rows[i - 1].cell[c] : ev_header[c];
				size_t w = i ? l.rows[i - 1].width[c] : strlen(ev_header[c]);
				sb_puts(out, cell);
				if (c + 1 < EV_NCOLS) {
					for (size_t k = w; k < l.width[c] + 2; k++)
						sb_putc(out, ' ');
				}
			}
			sb_putc(out, '\n');
		}
	}
	for (size_t i = 0; i < l.nrows && l.rows; i++) {
		for (int c = 0; c < EV_NCOLS; c++)
			free(l.rows[i].cell[c]);
	}
	free(l.rows);
	return failed ? RESULT_ERROR : RESULT_OK;
}

/* ---- hookd show ---- */

static void put_field(struct strbuf *sb, const char *name, const char *value)
{
	sb_printf(sb, "%-12s ", name);
	put_safe(sb, value, strlen(value), false);
	sb_putc(sb, '\n');
}

static void put_time_field(struct strbuf *sb, const char *name, int64_t ms)
{
	char t[40];
	format_time(ms, t, sizeof(t));
	put_field(sb, name, t);
}

/* Multiline text indented by `indent` spaces, ending in a newline. */
static void put_block(struct strbuf *sb, const char *s, size_t n, int indent)
{
	struct strbuf safe;
	sb_init(&safe);
	put_safe(&safe, s, n, true);
	const char *p = safe.buf ? safe.buf : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		sb_printf(sb, "%*s", indent, "");
		sb_append(sb, p, len);
		sb_putc(sb, '\n');
		p += len + (nl ? 1 : 0);
	}
	sb_free(&safe);
}

static void put_body(struct strbuf *sb, const unsigned char *body, size_t kept, int64_t total,
                     bool cut)
{
	bool text = is_text(body, kept, cut);
	sb_puts(sb, "\nbody");
	if (cut)
		sb_printf(sb, " (cut at %zu of %lld bytes)", kept, (long long)total);
	else
		sb_printf(sb, " (%zu bytes)", kept);
	if (kept && !text)
		sb_puts(sb, ", not text, base64");
	sb_puts(sb, ":\n");
	if (!kept)
		return;
	if (text) {
		put_block(sb, (const char *)body, kept, 2);
		return;
	}
	/* 57 input bytes a line: 76 columns of base64. */
	char line[80];
	for (size_t off = 0; off < kept; off += 57) {
		size_t n = kept - off < 57 ? kept - off : 57;
		crypto_b64_encode(line, body + off, n);
		sb_printf(sb, "  %s\n", line);
	}
}

/* What show prints about a delivery besides its row. */
struct show_ctx {
	struct strbuf *sb;
	long env_omitted; /* -1: not known */
};

static void note_attempts(const struct journal_entry *e, void *arg)
{
	*(int *)arg = e->attempts;
}

static long env_omitted_of(struct journal *j, int64_t rowid, const struct journal_show_env *env)
{
	int attempts = 0;
	if (!env || journal_read(j, rowid, note_attempts, &attempts) != RESULT_OK)
		return -1;
	return env->env_omitted(j, rowid, attempts, env->arg);
}

static void show_entry(const struct journal_entry *e, void *arg)
{
	struct show_ctx *ctx = arg;
	struct strbuf *sb = ctx->sb;
	put_field(sb, "endpoint:", e->endpoint);
	put_field(sb, "id:", e->delivery_id);
	put_field(sb, "event:", e->event);
	put_field(sb, "state:", delivery_state_name(e->state));
	put_field(sb, "mode:", e->async ? "async" : "sync");
	char num[32];
	snprintf(num, sizeof(num), "%d", e->attempts);
	put_field(sb, "attempts:", num);
	put_time_field(sb, "received_at:", e->received_ms);
	put_time_field(sb, "updated_at:", e->updated_ms);
	if (e->state == DSTATE_RETRY_WAIT)
		put_time_field(sb, "next_due_at:", e->next_due_ms);
	if (e->state == DSTATE_RUNNING) {
		snprintf(num, sizeof(num), "%d", e->run_attempt);
		put_field(sb, "running:", num);
		put_time_field(sb, "since:", e->run_started_ms);
	}
	put_field(sb, "remote_addr:", e->remote_addr);
	if (e->http) {
		snprintf(num, sizeof(num), "%d", e->http);
		put_field(sb, "http:", num);
	}
	if (e->status)
		put_field(sb, "status:", e->status);
	if (e->error)
		put_field(sb, "error:", e->error);
	if (ctx->env_omitted >= 0) {
		snprintf(num, sizeof(num), "%ld", ctx->env_omitted);
		put_field(sb, "env_omitted:", num);
	}

	sb_puts(sb, "\nheaders:\n");
	put_block(sb, e->headers, strlen(e->headers), 2);

	put_body(sb, e->body, e->body_kept, e->body_len, e->body_cut);
}

struct show_attempts {
	struct strbuf *sb;
	bool any;
};

static void show_attempt(const struct journal_attempt *a, void *arg)
{
	struct show_attempts *sa = arg;
	struct strbuf *sb = sa->sb;
	sa->any = true;
	char t[40];
	format_time(a->started_ms, t, sizeof(t));
	/* A replay is the one attempt nobody sent: said first. */
	sb_printf(sb, "\nattempt %d: %sstarted %s, ", a->attempt, a->replay ? "replay, " : "", t);
	if (a->finished_ms)
		sb_printf(sb, "%lld ms, ", (long long)(a->finished_ms - a->started_ms));
	else
		sb_puts(sb, "end unknown, ");
	if (a->http)
		sb_printf(sb, "http %d, ", a->http);
	else
		sb_puts(sb, "no http, ");
	if (a->client_gone)
		sb_puts(sb, "sender gone before the answer, ");
	sb_puts(sb, "status ");
	put_safe(sb, a->status, strlen(a->status), false);
	if (a->error) {
		sb_puts(sb, ", error: ");
		put_safe(sb, a->error, strlen(a->error), false);
	}
	if (a->instance) {
		sb_puts(sb, ", on ");
		put_safe(sb, a->instance, strlen(a->instance), false);
	}
	sb_putc(sb, '\n');
}

static void show_hook(const struct journal_hook *h, void *arg)
{
	struct show_attempts *sa = arg;
	struct strbuf *sb = sa->sb;
	sb_puts(sb, "  hook ");
	put_safe(sb, h->hook, strlen(h->hook), false);
	if (h->exit_code >= 0)
		sb_printf(sb, ": exit %d", h->exit_code);
	else
		sb_puts(sb, ": exit -");
	sb_puts(sb, ", signal ");
	if (h->signal && *h->signal)
		put_safe(sb, h->signal, strlen(h->signal), false);
	else
		sb_putc(sb, '-');
	sb_printf(sb, ", %lld ms", (long long)h->ms);
	if (h->error) {
		sb_puts(sb, ", error: ");
		put_safe(sb, h->error, strlen(h->error), false);
	}
	sb_putc(sb, '\n');
	if (h->output && h->output_len) {
		sb_puts(sb, "    output (tail):\n");
		put_block(sb, h->output, h->output_len, 6);
	}
}

static int show_attempts(struct journal *j, struct strbuf *sb, int64_t rowid)
{
	struct show_attempts sa = {.sb = sb};
	struct journal_attempt_visitor v = {show_attempt, show_hook, &sa};
	if (journal_read_attempts(j, rowid, &v) != RESULT_OK)
		return -1;
	if (!sa.any)
		sb_puts(sb, "\nno attempt yet\n");
	return 0;
}

static void add_endpoint(const char *endpoint, void *arg)
{
	struct strbuf *sb = arg;
	sb_puts(sb, " ");
	put_safe(sb, endpoint, strlen(endpoint), false);
}

/* The words for an ambiguous id; none when the endpoints cannot be read. */
static void list_endpoints(struct journal *j, const char *delivery_id, struct strbuf *err)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "delivery id '");
	put_safe(&sb, delivery_id, strlen(delivery_id), false);
	sb_puts(&sb, "' exists at several endpoints:");
	if (journal_endpoints_of(j, delivery_id, add_endpoint, &sb) == RESULT_OK) {
		sb_puts(&sb, "; choose one with --endpoint NAME");
		sb_append(err, sb.buf, sb.len);
	}
	sb_free(&sb);
}

/* rowid of the delivery show names, or the words for the user in err. */
static enum result find_delivery(struct journal *j, const char *endpoint, const char *delivery_id,
                                 int64_t *rowid, struct strbuf *err)
{
	enum result r = journal_find(j, endpoint, delivery_id, rowid);
	if (r == RESULT_AMBIGUOUS) {
		list_endpoints(j, delivery_id, err);
	} else if (r == RESULT_UNKNOWN) {
		sb_puts(err, "no delivery with id '");
		put_safe(err, delivery_id, strlen(delivery_id), false);
		sb_putc(err, '\'');
		if (endpoint) {
			sb_puts(err, " at endpoint '");
			put_safe(err, endpoint, strlen(endpoint), false);
			sb_putc(err, '\'');
		}
		sb_puts(err, " in the journal");
	}
	return r;
}

/* The delivery show names, found and read (its rowid for the attempts),
 * or the words for the user in err: also for one pruned between the two reads.
 * env_omitted (NULL: not wanted): set before the visit (env_omitted_of). */
static enum result read_delivery(struct journal *j, const char *endpoint,
                                 const char *delivery_id, int64_t *rowid,
                                 const struct journal_show_env *env, long *env_omitted,
                                 void (*visit)(const struct journal_entry *e, void *arg),
                                 void *arg, struct strbuf *err)
{
	enum result r = find_delivery(j, endpoint, delivery_id, rowid, err);
	if (r != RESULT_OK)
		return r;
	if (env_omitted)
		*env_omitted = env_omitted_of(j, *rowid, env);
	r = journal_read(j, *rowid, visit, arg);
	if (r == RESULT_UNKNOWN)
		sb_puts(err, "the delivery was just pruned from the journal");
	return r;
}

enum result journal_format_show(struct journal *j, const char *endpoint, const char *delivery_id,
                                const struct journal_show_env *env, struct strbuf *out,
                                struct strbuf *err)
{
	int64_t rowid;
	struct show_ctx ctx = {.sb = out, .env_omitted = -1};
	enum result r = read_delivery(j, endpoint, delivery_id, &rowid, env, &ctx.env_omitted,
	                              show_entry, &ctx, err);
	if (r != RESULT_OK)
		return r;
	if (show_attempts(j, out, rowid) < 0)
		return RESULT_ERROR;
	return RESULT_OK;
}

/* ---- a delivery as JSON: hookd show --json and the admin API ---- */

const struct journal_json_style journal_json_show_style = {
	.next_key = "next_due_at",
	.running = true,
	.body_null_if_binary = false,
	.replay = true,
};

static bool is_utf8(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_seq(p + i, n - i, &cp);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* "Name: value" lines as [{"name":..., "value":...}]. */
static void put_json_headers(struct strbuf *sb, const char *lines)
{
	sb_putc(sb, '[');
	bool first = true;
	for (const char *p = lines ? lines : ""; *p;) {
		size_t n = strcspn(p, "\n");
		const char *colon = memchr(p, ':', n);
		if (colon) {
			const char *v = colon + 1;
			while (v < p + n && (*v == ' ' || *v == '\t'))
				v++;
			sb_puts(sb, first ? "{\"name\":" : ",{\"name\":");
			sb_json_str(sb, p, (size_t)(colon - p));
			sb_puts(sb, ",\"value\":");
			sb_json_str(sb, v, (size_t)(p + n - v));
			sb_putc(sb, '}');
			first = false;
		}
		p += n;
		if (*p)
			p++;
	}
	sb_putc(sb, ']');
}

/* The kept body: "body" when it is UTF-8, else "body_base64". */
static void put_json_body(struct strbuf *sb, const struct journal_entry *e,
                          const struct journal_json_style *st)
{
	sb_printf(sb, ",\"body_bytes\":%lld,\"body_kept\":%zu,\"body_cut\":%s",
	          (long long)e->body_len, e->body_kept, e->body_cut ? "true" : "false");
	if (is_utf8(e->body, e->body_kept)) {
		sb_puts(sb, ",\"body\":");
		sb_json_str(sb, (const char *)e->body, e->body_kept);
		return;
	}
	char *b64 = xmalloc(4 * ((e->body_kept + 2) / 3) + 1);
	crypto_b64_encode(b64, e->body, e->body_kept);
	if (st->body_null_if_binary)
		sb_puts(sb, ",\"body\":null");
	sb_puts(sb, ",\"body_base64\":\"");
	sb_puts(sb, b64);
	sb_putc(sb, '"');
	free(b64);
}

void journal_json_running(struct strbuf *sb, const struct journal_entry *e)
{
	if (e->state == DSTATE_RUNNING) {
		sb_printf(sb, ",\"running\":{\"attempt\":%d,\"since\":", e->run_attempt);
		sb_json_time(sb, e->run_started_ms);
		sb_putc(sb, '}');
	} else {
		sb_puts(sb, ",\"running\":null");
	}
}

void journal_json_entry(struct strbuf *sb, const struct journal_entry *e,
                        const struct journal_json_style *st)
{
	sb_puts(sb, "{\"endpoint\":");
	sb_json_str_or_null(sb, e->endpoint);
	sb_puts(sb, ",\"id\":");
	sb_json_str_or_null(sb, e->delivery_id);
	sb_puts(sb, ",\"event\":");
	sb_json_str_or_null(sb, e->event);
	sb_printf(sb, ",\"state\":\"%s\",\"mode\":\"%s\",\"attempts\":%d",
	          delivery_state_name(e->state), e->async ? "async" : "sync", e->attempts);
	sb_puts(sb, ",\"received_at\":");
	sb_json_time(sb, e->received_ms);
	sb_puts(sb, ",\"updated_at\":");
	sb_json_time(sb, e->updated_ms);
	sb_printf(sb, ",\"%s\":", st->next_key);
	sb_json_time(sb, e->state == DSTATE_RETRY_WAIT ? e->next_due_ms : 0);
	if (st->running)
		journal_json_running(sb, e);
	sb_puts(sb, ",\"remote_addr\":");
	sb_json_str_or_null(sb, e->remote_addr);
	put_json_http(sb, e->http);
	sb_puts(sb, ",\"status\":");
	sb_json_str_or_null(sb, e->status);
	sb_puts(sb, ",\"error\":");
	sb_json_str_or_null(sb, e->error);
	sb_puts(sb, ",\"headers\":");
	put_json_headers(sb, e->headers);
	put_json_body(sb, e, st);
}

void journal_json_attempt(struct strbuf *sb, const struct journal_attempt *a,
                          const struct journal_json_style *st)
{
	sb_printf(sb, "{\"attempt\":%d,\"started_at\":", a->attempt);
	sb_json_time(sb, a->started_ms);
	sb_puts(sb, ",\"finished_at\":");
	sb_json_time(sb, a->finished_ms);
	if (a->finished_ms)
		sb_printf(sb, ",\"ms\":%lld", (long long)(a->finished_ms - a->started_ms));
	else
		sb_puts(sb, ",\"ms\":null");
	put_json_http(sb, a->http);
	sb_puts(sb, ",\"status\":");
	sb_json_str_or_null(sb, a->status);
	sb_puts(sb, ",\"error\":");
	sb_json_str_or_null(sb, a->error);
	/* Its answer never reached the sender (it hung up first): http is what
	 * was due, not what the sender got. */
	sb_printf(sb, ",\"client_gone\":%s", a->client_gone ? "true" : "false");
	if (st->replay)
		sb_printf(sb, ",\"replay\":%s", a->replay ? "true" : "false");
	if (a->instance) { /* a shared journal's: which instance ran it */
		sb_puts(sb, ",\"instance\":");
		sb_json_str_or_null(sb, a->instance);
	}
	sb_puts(sb, ",\"hooks\":[");
}

void journal_json_hook(struct strbuf *sb, const struct journal_hook *h, size_t i)
{
	sb_puts(sb, i ? ",{\"hook\":" : "{\"hook\":");
	sb_json_str_or_null(sb, h->hook);
	if (h->exit_code >= 0)
		sb_printf(sb, ",\"exit\":%d", h->exit_code);
	else
		sb_puts(sb, ",\"exit\":null");
	sb_puts(sb, ",\"signal\":");
	sb_json_str_or_null(sb, h->signal && *h->signal ? h->signal : NULL);
	sb_printf(sb, ",\"ms\":%lld,\"error\":", (long long)h->ms);
	sb_json_str_or_null(sb, h->error);
	sb_puts(sb, ",\"output\":");
	if (h->output)
		sb_json_str(sb, h->output, h->output_len);
	else
		sb_puts(sb, "null");
	sb_putc(sb, '}');
}

static void show_entry_json(const struct journal_entry *e, void *arg)
{
	journal_json_entry(arg, e, &journal_json_show_style);
}

struct json_attempts {
	struct strbuf *sb;
	int nattempts;
	size_t nhooks; /* within the current attempt */
};

static void attempt_json(const struct journal_attempt *a, void *arg)
{
	struct json_attempts *ja = arg;
	if (ja->nattempts++)
		sb_puts(ja->sb, "]},");
	ja->nhooks = 0;
	journal_json_attempt(ja->sb, a, &journal_json_show_style);
}

static void hook_json(const struct journal_hook *h, void *arg)
{
	struct json_attempts *ja = arg;
	journal_json_hook(ja->sb, h, ja->nhooks++);
}

enum result journal_format_show_json(struct journal *j, const char *endpoint,
                                     const char *delivery_id,
                                     const struct journal_show_env *env, struct strbuf *out,
                                     struct strbuf *err)
{
	int64_t rowid;
	long env_omitted = -1;
	enum result r = read_delivery(j, endpoint, delivery_id, &rowid, env, &env_omitted,
	                              show_entry_json, out, err);
	if (r != RESULT_OK)
		return r;
	if (env_omitted >= 0)
		sb_printf(out, ",\"env_omitted\":%ld", env_omitted);
	else
		sb_puts(out, ",\"env_omitted\":null");
	sb_puts(out, ",\"attempt_list\":[");
	struct json_attempts ja = {.sb = out};
	struct journal_attempt_visitor v = {attempt_json, hook_json, &ja};
	if (journal_read_attempts(j, rowid, &v) != RESULT_OK)
		return RESULT_ERROR;
	sb_puts(out, ja.nattempts ? "]}]}\n" : "]}\n");
	return RESULT_OK;
}

/* ---- hookd show --body ---- */

struct raw_body {
	struct strbuf *out;
	bool cut;
	size_t kept;
	int64_t total;
};

static void body_raw(const struct journal_entry *e, void *arg)
{
	struct raw_body *b = arg;
	b->cut = e->body_cut;
	b->kept = e->body_kept;
	b->total = e->body_len;
	if (!e->body_cut)
		sb_append(b->out, (const char *)e->body, e->body_kept);
}

enum result journal_format_show_body(struct journal *j, const char *endpoint,
                                     const char *delivery_id, struct strbuf *out,
                                     struct strbuf *err)
{
	int64_t rowid;
	struct raw_body b = {.out = out};
	enum result r = read_delivery(j, endpoint, delivery_id, &rowid, NULL, NULL, body_raw, &b,
	                              err);
	if (r == RESULT_OK && b.cut) {
		sb_printf(err,
		          "the journal kept only %zu of the body's %lld bytes (journal_body_max): "
		          "no body to print",
		          b.kept, (long long)b.total);
		return RESULT_BODY_CUT;
	}
	return r;
}
