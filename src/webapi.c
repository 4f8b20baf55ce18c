/* The deliveries page and its JSON API (webapi.h). */
#include "webapi.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "delivery.h"
#include "dispatch.h"
#include "http.h"
#include "journal.h"
#include "journal_format.h"
#include "liveout.h"
#include "log.h"
#include "payload.h"
#include "recent.h"
#include "recovery.h"
#include "runner.h"
#include "rejections.h"
#include "util.h"
#include "web_assets.h"
#include "webauth.h"
#include "webjson.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500
/* A filtered replay queues at most this many at once. */
#define REPLAY_MAX 1000
/* `q` reads bodies: a page searches at most the newest this many rows
 * within the other filters (the answer says so; its "next" goes on from
 * there), so that a text nobody sent cannot read a whole journal. */
#define TEXT_SEARCH_ROWS 10000

struct webapi {
	struct dispatcher *ds;
	struct recent *recent; /* without a journal: the deliveries that ended */
	struct webauth *auth;
	struct liveout *live;  /* running deliveries' output */
};

/* A delivery ended: into the memory of recent ones (without a journal),
 * and its outcome to those who watch its output. */
static void on_delivery_end(struct delivery *d, void *arg)
{
	struct webapi *w = arg;
	if (w->recent)
		recent_add(d, w->recent);
	const struct outcome *out = delivery_outcome(d);
	bool ok = out->http >= 200 && out->http <= 299;
	liveout_ended(w->live, delivery_endpoint(d)->name, delivery_id(d),
	              delivery_state_name(ok ? DSTATE_SUCCEEDED : DSTATE_FAILED), out->http,
	              delivery_attempt(d));
}

struct webapi *webapi_new(struct event_base *base, struct dispatcher *ds)
{
	struct webapi *w = xcalloc(1, sizeof(*w));
	w->ds = ds;
	w->auth = webauth_new();
	w->live = liveout_new(base);
	if (!dispatcher_journal(ds))
		w->recent = recent_new();
	dispatcher_on_end(ds, on_delivery_end, w);
	runner_set_output_observer(liveout_take, w->live);
	return w;
}

void webapi_free(struct webapi *w)
{
	if (!w)
		return;
	dispatcher_on_end(w->ds, NULL, NULL);
	runner_set_output_observer(NULL, NULL);
	liveout_free(w->live);
	recent_free(w->recent);
	webauth_free(w->auth);
	free(w);
}

/* ---- answers ---- */

static void answer(struct http_request *req, int status, const char *type, const char *extra,
                   char *body)
{
	char *headers = xasprintf("%s%s", WEB_SECURITY_HEADERS, extra ? extra : "");
	http_respond_typed(req, status, type, headers, body, false);
	free(headers);
}

static void send_error(struct http_request *req, int status, const char *extra, const char *error)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "{\"status\":\"rejected\",\"error\":");
	sb_json_str(&sb, error, strlen(error));
	sb_putc(&sb, '}');
	answer(req, status, NULL, extra, sb_steal(&sb));
}

/* ---- the request's parts ---- */

static int hex_val(char c)
{
	return hex_digit((unsigned char)c);
}

/* Percent-decodes s[0..n) ('+' too, in a query); NULL when malformed or
 * when it decodes to a NUL byte. */
static char *url_decode(const char *s, size_t n, bool plus)
{
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			int hi = hex_val(s[i + 1]), lo = hex_val(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = plus && s[i] == '+' ? ' ' : s[i];
		}
	}
	*o = 0;
	return out;
}

/* A query parameter's decoded value (malloc'd), or NULL when absent or
 * empty; *bad is set when it is malformed (a bad or NUL percent escape). */
static char *query_param(const struct http_request *req, const char *name, bool *bad)
{
	const char *q = strchr(req->target, '?');
	size_t name_len = strlen(name);
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		size_t n = strcspn(p, "&");
		if (n > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
			char *v = url_decode(p + name_len + 1, n - name_len - 1, true);
			if (!v)
				*bad = true;
			if (v && !v[0]) {
				free(v);
				v = NULL;
			}
			return v;
		}
		p += n;
		if (*p)
			p++;
	}
	return NULL;
}

static int state_by_name(const char *s)
{
	for (int i = DSTATE_QUEUED; i <= DSTATE_SKIPPED; i++)
		if (strcmp(delivery_state_name((enum delivery_state)i), s) == 0)
			return i;
	return -2;
}

struct list_query {
	char *state, *event, *endpoint, *since, *q, *limit, *cursor;
	struct journal_filter f;
};

static void list_query_free(struct list_query *lq)
{
	free(lq->state);
	free(lq->event);
	free(lq->endpoint);
	free(lq->since);
	free(lq->q);
	free(lq->limit);
	free(lq->cursor);
}

/* Reads the list's filters; NULL, or why they are wrong (a 400). */
static const char *list_query_parse(const struct http_request *req, struct list_query *lq)
{
	memset(lq, 0, sizeof(*lq));
	bool bad = false;
	lq->state = query_param(req, "state", &bad);
	lq->event = query_param(req, "event", &bad);
	lq->endpoint = query_param(req, "endpoint", &bad);
	lq->since = query_param(req, "since", &bad);
	lq->q = query_param(req, "q", &bad);
	lq->limit = query_param(req, "limit", &bad);
	lq->cursor = query_param(req, "cursor", &bad);
	if (bad)
		return "a query parameter is not percent-encoded right (or holds %00)";
	struct journal_filter *f = &lq->f;
	f->state = -1;
	f->endpoint = lq->endpoint;
	f->event_glob = lq->event;
	f->text = lq->q;
	f->limit = LIST_DEFAULT;
	if (lq->state && (f->state = state_by_name(lq->state)) < -1)
		return "state: one of queued, running, retry_wait, succeeded, failed, skipped";
	if (lq->limit && !parse_int(lq->limit, 1, LIST_MAX, &f->limit))
		return "limit: a number from 1 to 500";
	if (lq->since) {
		/* Milliseconds since the epoch, or a duration back from now ("1h"). */
		uint64_t ms;
		int64_t back;
		if (parse_u64(lq->since, &ms) && ms <= INT64_MAX)
			f->since_ms = (int64_t)ms;
		else if (parse_duration_ms(lq->since, &back))
			f->since_ms = now_wall_ms() - back;
		else
			return "since: milliseconds since the epoch, or a duration such as 1h";
	}
	if (lq->cursor) {
		/* "MS.ROWID", both in range: digits only, no sign, no overflow. */
		char *dot = strchr(lq->cursor, '.');
		uint64_t a, b;
		if (dot)
			*dot = 0;
		bool ok = dot && parse_u64(lq->cursor, &a) && parse_u64(dot + 1, &b) && a > 0 &&
		          a <= INT64_MAX && b <= INT64_MAX;
		if (dot)
			*dot = '.';
		if (!ok)
			return "cursor: as the previous page's \"next\" gave it";
		f->before_ms = (int64_t)a;
		f->before_rowid = (int64_t)b;
	}
	return NULL;
}

/* ---- GET /api/v1/deliveries ---- */

struct list_out {
	struct strbuf *sb;
	int n, limit;
	int64_t last_ms, last_rowid;
	bool more;
};

static bool list_visit(const struct journal_row *r, void *arg)
{
	struct list_out *lo = arg;
	if (lo->n == lo->limit) {
		lo->more = true;
		return false;
	}
	struct webjson_item it = {
		.endpoint = r->endpoint,
		.id = r->delivery_id,
		.event = r->event,
		.state = delivery_state_name(r->state),
		.status = r->status,
		.received_ms = r->received_ms,
		.http = r->http,
		.attempts = r->attempts,
		.duration_ms = r->last_ms,
		.client_gone = r->client_gone,
		.next_retry_ms = r->state == DSTATE_RETRY_WAIT ? r->next_due_ms : 0,
	};
	if (lo->n++)
		sb_putc(lo->sb, ',');
	webjson_item(lo->sb, &it);
	lo->last_ms = r->received_ms;
	lo->last_rowid = r->rowid;
	return true;
}

struct window {
	int n;
	int64_t last_ms;
};

static bool window_visit(const struct journal_row *r, void *arg)
{
	struct window *win = arg;
	win->n++;
	win->last_ms = r->received_ms;
	return true;
}

static void get_list(struct webapi *w, struct http_request *req)
{
	struct list_query lq;
	const char *bad = list_query_parse(req, &lq);
	if (bad) {
		list_query_free(&lq);
		send_error(req, 400, NULL, bad);
		return;
	}
	struct journal *j = dispatcher_journal(w->ds);
	struct strbuf sb;
	sb_init(&sb);
	sb_printf(&sb, "{\"journal\":%s,\"deliveries\":[", j ? "true" : "false");
	if (j) {
		struct list_out lo = {.sb = &sb, .limit = lq.f.limit};
		struct journal_filter f = lq.f;
		f.limit = lq.f.limit + 1; /* one more says whether a next page exists */
		/* With q: the window of rows to search, by the indexes alone. Its
		 * oldest millisecond is left out, so that the next page's cursor
		 * (from that millisecond down) neither skips nor repeats a row. */
		struct window win = {0};
		enum result r = RESULT_OK;
		if (f.text) {
			struct journal_filter wf = lq.f;
			wf.text = NULL;
			wf.limit = TEXT_SEARCH_ROWS;
			r = journal_query(j, &wf, window_visit, &win);
			if (win.n == TEXT_SEARCH_ROWS && win.last_ms + 1 > f.since_ms)
				f.since_ms = win.last_ms + 1;
		}
		if (r != RESULT_OK || journal_query(j, &f, list_visit, &lo) != RESULT_OK) {
			sb_free(&sb);
			list_query_free(&lq);
			send_error(req, 500, NULL, "the journal could not be read");
			return;
		}
		sb_puts(&sb, "],\"next\":");
		if (lo.more)
			sb_printf(&sb, "\"%lld.%lld\"", (long long)lo.last_ms, (long long)lo.last_rowid);
		else if (win.n == TEXT_SEARCH_ROWS)
			sb_printf(&sb, "\"%lld.0\"", (long long)win.last_ms + 1);
		else
			sb_puts(&sb, "null");
		if (f.text)
			sb_printf(&sb, ",\"searched\":%d", TEXT_SEARCH_ROWS);
	} else {
		struct recent_filter rf = {
			.state = lq.f.state,
			.endpoint = lq.f.endpoint,
			.event_glob = lq.f.event_glob,
			.text = lq.f.text,
			.since_ms = lq.f.since_ms,
			.before_seq = (uint64_t)lq.f.before_ms,
			.limit = lq.f.limit,
		};
		uint64_t next = 0;
		recent_list_json(w->recent, &rf, &sb, &next);
		sb_puts(&sb, "],\"next\":");
		if (next)
			sb_printf(&sb, "\"%llu.0\"", (unsigned long long)next);
		else
			sb_puts(&sb, "null");
	}
	sb_putc(&sb, '}');
	list_query_free(&lq);
	answer(req, 200, NULL, NULL, sb_steal(&sb));
}

/* ---- GET /api/v1/deliveries/ENDPOINT/ID ---- */

struct detail {
	struct strbuf *sb;
	int nattempts;
	size_t nhooks;
};

static void detail_entry(const struct journal_entry *e, void *arg)
{
	struct detail *d = arg;
	webjson_entry(d->sb, e);
	journal_json_running(d->sb, e);
}

static void detail_attempt(const struct journal_attempt *a, void *arg)
{
	struct detail *d = arg;
	if (d->nattempts++)
		sb_puts(d->sb, "]},");
	d->nhooks = 0;
	webjson_attempt(d->sb, a);
}

static void detail_hook(const struct journal_hook *h, void *arg)
{
	struct detail *d = arg;
	webjson_hook(d->sb, h, d->nhooks++);
}

/* The variables the delivery's hooks got (rebuilt from the journal as
 * `hookd env` builds them: credentials were never in them), sorted. */
static void put_environment(struct webapi *w, struct strbuf *sb, int64_t rowid, int attempts)
{
	struct delivery *d = delivery_view_with_env(dispatcher_journal(w->ds),
	                                            dispatcher_config(w->ds), rowid, attempts);
	if (!d) {
		sb_puts(sb, ",\"environment\":null,\"env_omitted\":null");
		return;
	}
	struct envlist *env = delivery_env(d);
	envlist_sort(env);
	sb_puts(sb, ",\"environment\":[");
	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		if (!eq)
			continue;
		sb_puts(sb, i ? ",{\"name\":" : "{\"name\":");
		sb_json_str(sb, env->v[i], (size_t)(eq - env->v[i]));
		sb_puts(sb, ",\"value\":");
		sb_json_str(sb, eq + 1, strlen(eq + 1));
		sb_putc(sb, '}');
	}
	sb_putc(sb, ']');
	sb_printf(sb, ",\"env_omitted\":%zu", delivery_env_omitted(d));
	delivery_free(d);
}

struct row_facts {
	int attempts;
	bool body_cut;
	size_t body_kept;
	int64_t body_len;
};

static void note_row_facts(const struct journal_entry *e, void *arg)
{
	struct row_facts *ac = arg;
	ac->attempts = e->attempts;
	ac->body_cut = e->body_cut;
	ac->body_kept = e->body_kept;
	ac->body_len = e->body_len;
}

static void get_delivery(struct webapi *w, struct http_request *req, const char *ep,
                         const char *id)
{
	struct journal *j = dispatcher_journal(w->ds);
	struct strbuf sb;
	sb_init(&sb);
	if (!j) {
		if (recent_get_json(w->recent, ep, id, &sb) != RESULT_OK) {
			sb_free(&sb);
			send_error(req, 404, NULL, "no such delivery in memory (the journal is off)");
			return;
		}
		answer(req, 200, NULL, NULL, sb_steal(&sb));
		return;
	}
	int64_t rowid;
	enum result r = journal_find(j, ep, id, &rowid);
	struct detail d = {.sb = &sb};
	struct row_facts ac = {0}; /* the row's attempts and body */
	if (r == RESULT_OK)
		r = journal_read(j, rowid, detail_entry, &d);
	if (r == RESULT_OK)
		r = journal_read(j, rowid, note_row_facts, &ac);
	if (r == RESULT_OK && ac.body_cut) {
		/* The payload's variables came from the whole body: rebuilt from
		 * its kept part they would be a different, shorter list. */
		sb_printf(&sb, ",\"environment\":null,\"env_omitted\":null,"
		          "\"environment_unknown\":\"the journal kept %zu "
		          "of the body's %lld bytes; its hooks' variables cannot be rebuilt\"",
		          ac.body_kept, (long long)ac.body_len);
	} else if (r == RESULT_OK) {
		put_environment(w, &sb, rowid, ac.attempts);
	}
	if (r == RESULT_OK) {
		sb_puts(&sb, ",\"attempt_list\":[");
		struct journal_attempt_visitor v = {detail_attempt, detail_hook, &d};
		r = journal_read_attempts(j, rowid, &v);
		sb_puts(&sb, d.nattempts ? "]}]}" : "]}");
	}
	if (r != RESULT_OK) {
		sb_free(&sb);
		if (r == RESULT_UNKNOWN)
			send_error(req, 404, NULL, "no such delivery");
		else
			send_error(req, 500, NULL, "the journal could not be read");
		return;
	}
	answer(req, 200, NULL, NULL, sb_steal(&sb));
}

/* ---- GET /api/v1/deliveries/ENDPOINT/ID/output ---- */

struct kept_output {
	struct strbuf *sb;
	uint64_t n;        /* lines so far */
	int attempt;       /* the attempt whose hooks are kept */
	struct strbuf last; /* the last attempt's events */
};

/* A hook's kept output as numbered line events. */
static void kept_hook(const struct journal_hook *h, void *arg)
{
	struct kept_output *k = arg;
	const char *p = h->output ? h->output : "", *end = p + (h->output ? h->output_len : 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		liveout_put_line(&k->last, ++k->n, h->hook, p, (size_t)(stop - p));
		p = stop + (nl ? 1 : 0);
	}
}

static void kept_attempt(const struct journal_attempt *a, void *arg)
{
	struct kept_output *k = arg;
	/* Only the last attempt's output: start over at each. */
	k->last.len = 0;
	k->n = 0;
	k->attempt = a->attempt;
}

struct kept_state {
	enum delivery_state state;
	int http, attempts;
};

static void kept_entry(const struct journal_entry *e, void *arg)
{
	struct kept_state *ks = arg;
	ks->state = e->state;
	ks->http = e->http;
	ks->attempts = e->attempts;
}

static void get_output(struct webapi *w, struct http_request *req, const char *ep, const char *id)
{
	/* EventSource sends the last id it saw when it asks again. Anything
	 * but plain digits in range (a sign, a space, an overflow) starts
	 * from the first line: the client sees lines twice, never misses one. */
	const char *last = http_header_get(req, "Last-Event-ID");
	uint64_t after = 0;
	if (last && !parse_u64(last, &after))
		after = 0;
	if (liveout_serve(w->live, req, ep, id, after, WEB_SECURITY_HEADERS))
		return;
	struct kept_output k = {0};
	sb_init(&k.last);
	struct kept_state ks = {0};
	const char *state_name = NULL;
	enum result r;
	struct journal *j = dispatcher_journal(w->ds);
	if (j) {
		int64_t rowid;
		r = journal_find(j, ep, id, &rowid);
		if (r == RESULT_OK)
			r = journal_read(j, rowid, kept_entry, &ks);
		if (r == RESULT_OK) {
			struct journal_attempt_visitor v = {kept_attempt, kept_hook, &k};
			r = journal_read_attempts(j, rowid, &v);
		}
		state_name = delivery_state_name(ks.state);
	} else {
		r = recent_hooks(w->recent, ep, id, &state_name, &ks.http, &ks.attempts, kept_hook, &k);
		ks.state = DSTATE_SUCCEEDED;
	}
	if (r != RESULT_OK) {
		sb_free(&k.last);
		send_error(req, r == RESULT_UNKNOWN ? 404 : 500, NULL,
		           r == RESULT_UNKNOWN ? "no such delivery" : "the journal could not be read");
		return;
	}
	struct strbuf sb;
	sb_init(&sb);
	if (delivery_state_pending(ks.state)) {
		/* Waiting for a slot or a retry: nothing to show yet; ask again. */
		sb_printf(&sb, "retry: %d\n\n: pending\n\n", 2000);
	} else {
		sb_printf(&sb, "retry: %d\n\n", LIVEOUT_RETRY_MS);
		if (after < k.n)
			sb_append(&sb, k.last.buf ? k.last.buf : "", k.last.len);
		liveout_put_outcome(&sb, state_name, ks.http, ks.attempts);
	}
	sb_free(&k.last);
	answer(req, 200, "text/event-stream; charset=utf-8", NULL, sb_steal(&sb));
}

/* ---- replay ---- */

static const char *replay_words(enum result r)
{
	switch (r) {
	case RESULT_OK: return "queued";
	case RESULT_PENDING: return "already pending";
	case RESULT_BODY_CUT: return "its body was not kept whole";
	case RESULT_UNKNOWN: return "no such delivery";
	case RESULT_NO_ENDPOINT: return "its endpoint is not in the config";
	case RESULT_AMBIGUOUS:
	case RESULT_ERROR: break;
	}
	return "a journal error (hookd's log says which)";
}

static void post_replay_one(struct webapi *w, struct http_request *req, const char *ep,
                            const char *id)
{
	struct journal *j = dispatcher_journal(w->ds);
	int64_t rowid;
	enum result r = journal_find(j, ep, id, &rowid);
	if (r == RESULT_OK)
		r = dispatch_replay(w->ds, rowid);
	if (r == RESULT_OK)
		liveout_forget(w->live, ep, id);
	int status = r == RESULT_OK        ? 202
	             : r == RESULT_UNKNOWN ? 404
	             : r == RESULT_ERROR   ? 500
	                                   : 409;
	struct log_kv kv[] = {{"remote", req->peer}, {"result", replay_words(r)}};
	struct log_delivery who = {ep, NULL, id, 0};
	log_about(LOG_LVL_INFO, "admin replay", &who, kv, ARRAY_SIZE(kv));
	if (status != 202) {
		send_error(req, status, NULL, replay_words(r));
		return;
	}
	answer(req, 202, NULL, NULL, xstrdup("{\"status\":\"queued\"}"));
}

struct rowids {
	int64_t *v;
	size_t n;
	int64_t last_ms, last_rowid;
};

static bool collect_rowid(const struct journal_row *r, void *arg)
{
	struct rowids *ids = arg;
	ids->v[ids->n++] = r->rowid;
	ids->last_ms = r->received_ms;
	ids->last_rowid = r->rowid;
	return true;
}

static void post_replay_filter(struct webapi *w, struct http_request *req)
{
	struct list_query lq;
	const char *bad = list_query_parse(req, &lq);
	if (!bad && !lq.state && !lq.event && !lq.endpoint && !lq.since && !lq.q)
		bad = "give a filter (state, event, endpoint, since or q): replaying everything is "
		      "not something to ask by accident";
	if (bad) {
		list_query_free(&lq);
		send_error(req, 400, NULL, bad);
		return;
	}
	struct journal *j = dispatcher_journal(w->ds);
	/* The matches first, then the replays: a replay changes the rows the
	 * query walks. */
	struct rowids ids = {.v = xcalloc(REPLAY_MAX, sizeof(int64_t))};
	struct journal_filter f = lq.f;
	f.limit = REPLAY_MAX;
	enum result r = journal_query(j, &f, collect_rowid, &ids);
	int queued = 0, pending = 0, cut = 0, other = 0;
	for (size_t i = 0; r == RESULT_OK && i < ids.n; i++) {
		switch (dispatch_replay(w->ds, ids.v[i])) {
		case RESULT_OK: queued++; break;
		case RESULT_PENDING: pending++; break;
		case RESULT_BODY_CUT: cut++; break;
		default: other++; break;
		}
	}
	free(ids.v);
	list_query_free(&lq);
	if (r != RESULT_OK) {
		send_error(req, 500, NULL, "the journal could not be read");
		return;
	}
	char n[32];
	snprintf(n, sizeof(n), "%d", queued);
	struct log_kv kv[] = {{"remote", req->peer}, LOG_INT("queued", n)};
	log_kv(LOG_LVL_INFO, "admin replay by filter", kv, ARRAY_SIZE(kv));
	answer(req, 202, NULL, NULL,
	     xasprintf("{\"queued\":%d,\"refused\":%d,\"pending\":%d,\"body_cut\":%d,"
	               "\"matched\":%zu,\"more\":%s}",
	               queued, pending + cut + other, pending, cut, ids.n,
	               ids.n == REPLAY_MAX ? "true" : "false"));
}

/* ---- login ---- */

static void post_login(struct webapi *w, struct http_request *req)
{
	struct config *cfg = dispatcher_config(w->ds);
	if (!webauth_required(cfg)) {
		answer(req, 200, NULL, NULL, xstrdup("{\"status\":\"ok\",\"auth\":false}"));
		return;
	}
	/* The form's one field, as JSON {"token": "..."}. */
	json_object *root = NULL;
	const char *tok = NULL;
	if (req->body_len && req->body_len < 4096) {
		char *text = xstrndup((const char *)req->body, req->body_len);
		root = json_tokener_parse(text);
		free(text);
		json_object *t;
		if (root && json_object_object_get_ex(root, "token", &t) &&
		    json_object_is_type(t, json_type_string))
			tok = json_object_get_string(t);
	}
	bool is_limited = false;
	char *cookie = tok ? webauth_login(w->auth, cfg, req, tok, strlen(tok), &is_limited) : NULL;
	json_object_put(root);
	if (!cookie) {
		if (is_limited)
			send_error(req, 429, "Retry-After: 60\r\n", "too many wrong tokens: wait a minute");
		else
			send_error(req, 401, NULL, "wrong token");
		return;
	}
	answer(req, 200, NULL, cookie, xstrdup("{\"status\":\"ok\"}"));
	free(cookie);
}

/* ---- routing ---- */

/* The page's files: "/" and "/deliveries/..." are index.html. */
static bool serve_asset(struct http_request *req, const char *name)
{
	for (size_t i = 0; i < web_assets_count; i++) {
		if (strcmp(web_assets[i].name, name) == 0) {
			answer(req, 200, web_assets[i].content_type, NULL,
			     xstrndup(web_assets[i].data, web_assets[i].len));
			return true;
		}
	}
	return false;
}

/* "/api/v1/deliveries/EP/ID[/tail]": the decoded parts, or false. */
static bool split_delivery_path(const char *rest, char **ep, char **id, const char **tail)
{
	const char *slash = strchr(rest, '/');
	if (!slash || slash == rest)
		return false;
	const char *id_start = slash + 1;
	size_t id_len = strcspn(id_start, "/");
	if (!id_len)
		return false;
	*tail = id_start + id_len;
	*ep = url_decode(rest, (size_t)(slash - rest), false);
	*id = url_decode(id_start, id_len, false);
	if (!*ep || !*id) {
		free(*ep);
		free(*id);
		*ep = *id = NULL;
		return false;
	}
	return true;
}

static void route_api(struct webapi *w, struct http_request *req, enum web_access access)
{
	const char *p = req->path + strlen("/api/v1/");
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	bool journal = dispatcher_journal(w->ds) != NULL;
	if (strcmp(p, "status") == 0) {
		struct config *cfg = dispatcher_config(w->ds);
		answer(req, 200, NULL, NULL,
		     xasprintf("{\"journal\":%s,\"auth\":%s,\"access\":\"%s\",\"state_dir\":%s}",
		               journal ? "true" : "false", webauth_required(cfg) ? "true" : "false",
		               access == WEB_WRITE ? "write" : "read",
		               journal ? "true" : "false"));
		return;
	}
	if (strcmp(p, "deliveries") == 0) {
		if (!get) {
			send_error(req, 405, "Allow: GET\r\n", "method not allowed");
			return;
		}
		get_list(w, req);
		return;
	}
	if (strcmp(p, "rejections") == 0) {
		if (!get) {
			send_error(req, 405, "Allow: GET\r\n", "method not allowed");
			return;
		}
		struct strbuf sb;
		sb_init(&sb);
		sb_puts(&sb, "{\"rejections\":");
		rejections_json(&sb, 0);
		sb_putc(&sb, '}');
		answer(req, 200, NULL, NULL, sb_steal(&sb));
		return;
	}
	bool replay_filter = strcmp(p, "replay") == 0;
	char *ep = NULL, *id = NULL;
	const char *tail = "";
	bool one = !replay_filter && strncmp(p, "deliveries/", 11) == 0 &&
	           split_delivery_path(p + 11, &ep, &id, &tail);
	if (!replay_filter && strncmp(p, "delivery", 8) == 0 &&
	    (!p[8] || strcmp(p + 8, "/output") == 0 || strcmp(p + 8, "/replay") == 0)) {
		/* The same by query, for an id or endpoint "." or "..", which no
		 * browser sends as a path segment. */
		bool bad = false;
		ep = query_param(req, "endpoint", &bad);
		id = query_param(req, "id", &bad);
		tail = p + 8;
		one = ep && id && !bad;
	}
	if (!replay_filter && !one) {
		free(ep);
		free(id);
		send_error(req, 404, NULL, "no such path");
		return;
	}
	bool replay = replay_filter || strcmp(tail, "/replay") == 0;
	if (!replay && strcmp(tail, "/output") == 0 && get) {
		get_output(w, req, ep, id);
	} else if (!replay && *tail) {
		send_error(req, 404, NULL, "no such path");
	} else if (!replay && !get) {
		send_error(req, 405, "Allow: GET\r\n", "method not allowed");
	} else if (!replay) {
		get_delivery(w, req, ep, id);
	} else if (!post) {
		send_error(req, 405, "Allow: POST\r\n", "method not allowed");
	} else if (access != WEB_WRITE) {
		send_error(req, 403, NULL, "this token may read, not replay");
	} else if (!journal) {
		send_error(req, 409, NULL, "the journal is off (no state_dir): nothing can be replayed");
	} else if (replay_filter) {
		post_replay_filter(w, req);
	} else {
		post_replay_one(w, req, ep, id);
	}
	free(ep);
	free(id);
}

/*
 * A refusal before any token is looked at: a client that never
 * authenticates decides how many there are and how long their paths
 * are, so they share one budget of lines a second (as the webhook
 * listener's, README "Hardening and limits") and the path is cut.
 */
#define REFUSED_LOG_PER_SEC 50

static void log_refused(const struct http_request *req, const char *why)
{
	static struct log_budget budget;
	char path[LOG_PATH_MAX + 4];
	struct log_kv kv[] = {
		{"remote", req->peer},
		{"path", log_path_cut(path, req->path)},
		{"error", why},
	};
	log_limited(&budget, REFUSED_LOG_PER_SEC, "admin refusals not logged", LOG_LVL_WARN,
	            "admin refused", kv, ARRAY_SIZE(kv));
}

/* What req's token (or session) lets it do; WEB_NONE when it has been
 * answered 401 or 429 (wrong tokens are logged by webauth, a missing one
 * if log_missing: before the answer, which frees req). */
static enum web_access authorize(struct webapi *w, struct http_request *req, bool log_missing)
{
	enum web_access access = webauth_check(w->auth, dispatcher_config(w->ds), req);
	if (access == WEB_LIMITED) {
		send_error(req, 429, "Retry-After: 60\r\n", "too many wrong tokens: wait a minute");
		return WEB_NONE;
	}
	if (access == WEB_NONE && log_missing && !http_header_get(req, "Authorization"))
		log_refused(req, "no admin token");
	if (access == WEB_NONE)
		send_error(req, 401, "WWW-Authenticate: Bearer realm=\"hookd\"\r\n",
		           "a token is needed: Authorization: Bearer TOKEN, or log in");
	return access;
}

bool webapi_handle(struct webapi *w, struct http_request *req)
{
	const char *path = req->path;
	bool api = strncmp(path, "/api/v1/", 8) == 0;
	bool page = strcmp(path, "/") == 0 || strncmp(path, "/deliveries/", 12) == 0 ||
	            strcmp(path, "/delivery") == 0 || strcmp(path, "/rejections") == 0;
	const char *asset = strncmp(path, "/static/", 8) == 0 ? path + 8 : NULL;
	if (!api && !page && !asset)
		return false;
	bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
	bool post = strcmp(req->method, "POST") == 0;
	struct config *cfg = dispatcher_config(w->ds);
	if (!webauth_host_ok(cfg, req)) {
		log_refused(req, "Host is not this listener's (DNS rebinding?)");
		send_error(req, 421, NULL,
		           "Host is not localhost, an IP address or [admin] listen's: without a "
		           "token_file the page answers only to those");
		return true;
	}
	if (post && !webauth_same_origin(req)) {
		log_refused(req, "cross-site POST");
		send_error(req, 403, NULL, "cross-site request refused");
		return true;
	}
	if (page || asset) {
		/* The page itself is public: it holds no data, and asks for the
		 * token when the API says 401. */
		if (!get)
			send_error(req, 405, "Allow: GET\r\n", "method not allowed");
		else if (!serve_asset(req, page ? "index.html" : asset))
			send_error(req, 404, NULL, "no such file");
		return true;
	}
	if (strcmp(path, "/api/v1/login") == 0) {
		if (!post)
			send_error(req, 405, "Allow: POST\r\n", "method not allowed");
		else
			post_login(w, req);
		return true;
	}
	if (strcmp(path, "/api/v1/logout") == 0) {
		if (!post)
			send_error(req, 405, "Allow: POST\r\n", "method not allowed");
		else
			answer(req, 200, NULL, webauth_logout(w->auth, req),
			     xstrdup("{\"status\":\"logged out\"}"));
		return true;
	}
	enum web_access access = authorize(w, req, false);
	if (access != WEB_NONE)
		route_api(w, req, access);
	return true;
}

bool webapi_may_read(struct webapi *w, struct http_request *req)
{
	/* The API does not log a missing token (the page asks with none
	 * first); a scraper without one is misconfigured, so it is said. */
	return authorize(w, req, true) != WEB_NONE;
}
