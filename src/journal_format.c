/*
 * What `hookd events` and `hookd show` print: the journal's deliveries as
 * text for humans (control characters escaped, columns aligned) or JSON,
 * read with the journal's read-back calls (journal.h) and written into a
 * buffer; the commands (cmd_journal.c) print it.
 */
#include "journal_format.h"

#include <fnmatch.h>
#include <openssl/evp.h>
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
		if (e->http)
			sb_printf(out, ",\"http\":%d", e->http);
		else
			sb_puts(out, ",\"http\":null");
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
	unsigned char line[80];
	for (size_t off = 0; off < kept; off += 57) {
		size_t n = kept - off < 57 ? kept - off : 57;
		EVP_EncodeBlock(line, body + off, (int)n);
		sb_printf(sb, "  %s\n", line);
	}
}

static void show_entry(const struct journal_entry *e, void *arg)
{
	struct strbuf *sb = arg;
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
	sb_printf(sb, "\nattempt %d: started %s, ", a->attempt, t);
	if (a->finished_ms)
		sb_printf(sb, "%lld ms, ", (long long)(a->finished_ms - a->started_ms));
	else
		sb_puts(sb, "end unknown, ");
	if (a->http)
		sb_printf(sb, "http %d, ", a->http);
	else
		sb_puts(sb, "no http, ");
	sb_puts(sb, "status ");
	put_safe(sb, a->status, strlen(a->status), false);
	if (a->error) {
		sb_puts(sb, ", error: ");
		put_safe(sb, a->error, strlen(a->error), false);
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

enum result journal_format_show(struct journal *j, const char *endpoint, const char *delivery_id,
                                struct strbuf *out, struct strbuf *err)
{
	int64_t rowid;
	enum result r = journal_find(j, endpoint, delivery_id, &rowid);
	if (r == RESULT_ERROR)
		return RESULT_ERROR;
	if (r == RESULT_AMBIGUOUS) {
		list_endpoints(j, delivery_id, err);
		return RESULT_AMBIGUOUS;
	}
	if (r == RESULT_UNKNOWN) {
		sb_puts(err, "no delivery with id '");
		put_safe(err, delivery_id, strlen(delivery_id), false);
		sb_putc(err, '\'');
		if (endpoint) {
			sb_puts(err, " at endpoint '");
			put_safe(err, endpoint, strlen(endpoint), false);
			sb_putc(err, '\'');
		}
		sb_puts(err, " in the journal");
		return RESULT_UNKNOWN;
	}

	r = journal_read(j, rowid, show_entry, out);
	if (r == RESULT_UNKNOWN) {
		/* Pruned between the two reads. */
		sb_puts(err, "the delivery was just pruned from the journal");
		return RESULT_UNKNOWN;
	}
	if (r != RESULT_OK || show_attempts(j, out, rowid) < 0)
		return RESULT_ERROR;
	return RESULT_OK;
}
