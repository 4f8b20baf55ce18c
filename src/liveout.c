/* A running delivery's output, live (liveout.h). */
#include "liveout.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "http.h"
#include "util.h"

#define SSE_TYPE "text/event-stream; charset=utf-8"

struct line {
	char *hook, *text;
	size_t len;
};

/* What a kept line costs against LIVEOUT_BYTES: its bytes, its hook's
 * name, and the allocator's share of the two. */
static size_t line_cost(const struct line *l)
{
	return l->len + strlen(l->hook) + 2 + 64;
}

struct waiter;

struct live {
	TAILQ_ENTRY(live) link;
	char *endpoint, *id;
	struct line *lines; /* a ring of cap, which grows up to LIVEOUT_LINES */
	size_t cap;
	uint64_t first, next; /* numbers: the oldest kept, the next to come (from 1) */
	char *partial_hook;  /* a line not ended yet, and whose */
	struct strbuf partial;
	bool partial_cut;
	bool ended;
	char *state;
	int http, attempts;
	int64_t touched_ms; /* monotonic */
	TAILQ_HEAD(, waiter) waiters;
};

struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct liveout *lo;
	struct live *lv;
	struct http_request *req;
	uint64_t after;
	char *headers;
	struct event *timer;
};

struct liveout {
	struct event_base *base;
	TAILQ_HEAD(live_list, live) lives; /* newest first */
	int n;
	size_t bytes; /* of every live's lines and rings: at most LIVEOUT_BYTES */
};

struct liveout *liveout_new(struct event_base *base)
{
	struct liveout *lo = xcalloc(1, sizeof(*lo));
	lo->base = base;
	TAILQ_INIT(&lo->lives);
	return lo;
}

static void put_retry(struct strbuf *out)
{
	sb_printf(out, "retry: %d\n\n", LIVEOUT_RETRY_MS);
}

void liveout_put_line(struct strbuf *out, uint64_t n, const char *hook, const char *line,
                      size_t len)
{
	sb_printf(out, "id: %llu\nevent: line\ndata: {\"hook\":", (unsigned long long)n);
	sb_json_str(out, hook, strlen(hook));
	sb_puts(out, ",\"line\":");
	sb_json_str(out, line, len);
	sb_puts(out, "}\n\n");
}

void liveout_put_outcome(struct strbuf *out, const char *state, int http, int attempts)
{
	sb_puts(out, "event: outcome\ndata: {\"state\":");
	sb_json_str(out, state, strlen(state));
	sb_printf(out, ",\"http\":%d,\"attempts\":%d}\n\n", http, attempts);
}

/* The answer to a client that has lines up to `after`. */
static char *stream_body(const struct live *lv, uint64_t after)
{
	struct strbuf sb;
	sb_init(&sb);
	put_retry(&sb);
	uint64_t from = after + 1 > lv->first ? after + 1 : lv->first;
	for (uint64_t n = from; n < lv->next; n++) {
		const struct line *l = &lv->lines[n % lv->cap];
		liveout_put_line(&sb, n, l->hook, l->text, l->len);
	}
	if (lv->ended)
		liveout_put_outcome(&sb, lv->state, lv->http, lv->attempts);
	else if (from >= lv->next)
		sb_puts(&sb, ": waiting\n\n");
	return sb_steal(&sb);
}

static void waiter_answer(struct waiter *w)
{
	TAILQ_REMOVE(&w->lv->waiters, w, link);
	http_respond_typed(w->req, 200, SSE_TYPE, w->headers, stream_body(w->lv, w->after), false);
	event_free(w->timer);
	free(w->headers);
	free(w);
}

static void wake(struct live *lv)
{
	struct waiter *w;
	while ((w = TAILQ_FIRST(&lv->waiters)))
		waiter_answer(w);
}

static void drop_first(struct liveout *lo, struct live *lv)
{
	struct line *old = &lv->lines[lv->first % lv->cap];
	lo->bytes -= line_cost(old);
	free(old->hook);
	free(old->text);
	lv->first++;
}

static void live_free(struct liveout *lo, struct live *lv)
{
	wake(lv);
	TAILQ_REMOVE(&lo->lives, lv, link);
	lo->n--;
	while (lv->first < lv->next)
		drop_first(lo, lv);
	lo->bytes -= lv->cap * sizeof(*lv->lines);
	free(lv->lines);
	free(lv->endpoint);
	free(lv->id);
	free(lv->partial_hook);
	sb_free(&lv->partial);
	free(lv->state);
	free(lv);
}

void liveout_free(struct liveout *lo)
{
	if (!lo)
		return;
	struct live *lv;
	while ((lv = TAILQ_FIRST(&lo->lives)))
		live_free(lo, lv);
	free(lo);
}

/* Drops what ended long ago, and the oldest past LIVEOUT_DELIVERIES. */
static void expire(struct liveout *lo)
{
	int64_t now = now_mono_ms();
	struct live *lv, *prev;
	for (lv = TAILQ_LAST(&lo->lives, live_list); lv; lv = prev) {
		prev = TAILQ_PREV(lv, live_list, link);
		if (lo->n > LIVEOUT_DELIVERIES || now - lv->touched_ms > LIVEOUT_KEEP_MS)
			live_free(lo, lv);
	}
}

static struct live *find(struct liveout *lo, const char *endpoint, const char *id)
{
	struct live *lv;
	TAILQ_FOREACH(lv, &lo->lives, link)
		if (strcmp(lv->endpoint, endpoint) == 0 && strcmp(lv->id, id) == 0)
			return lv;
	return NULL;
}

/* Over LIVEOUT_BYTES: the oldest lines go, first those of deliveries that
 * ended (the oldest of them first), then those of running ones. */
static void trim(struct liveout *lo)
{
	for (int ended = 1; ended >= 0 && lo->bytes > LIVEOUT_BYTES; ended--) {
		struct live *lv;
		for (lv = TAILQ_LAST(&lo->lives, live_list); lv && lo->bytes > LIVEOUT_BYTES;
		     lv = TAILQ_PREV(lv, live_list, link)) {
			if (lv->ended != (ended == 1))
				continue;
			while (lv->first < lv->next && lo->bytes > LIVEOUT_BYTES)
				drop_first(lo, lv);
		}
	}
}

/* A full ring below LIVEOUT_LINES doubles: most hooks print a few lines,
 * and 64 rings of 2,000 would cost 3 MB before a line came. */
static void grow(struct liveout *lo, struct live *lv)
{
	size_t cap = lv->cap ? lv->cap * 2 : 16;
	if (cap > LIVEOUT_LINES)
		cap = LIVEOUT_LINES;
	struct line *lines = xcalloc(cap, sizeof(*lines));
	for (uint64_t n = lv->first; n < lv->next; n++)
		lines[n % cap] = lv->lines[n % lv->cap];
	free(lv->lines);
	lo->bytes += (cap - lv->cap) * sizeof(*lines);
	lv->lines = lines;
	lv->cap = cap;
}

static void add_line(struct liveout *lo, struct live *lv, const char *hook, const char *text,
                     size_t len)
{
	if (lv->next - lv->first == lv->cap) {
		if (lv->cap < LIVEOUT_LINES)
			grow(lo, lv);
		else
			drop_first(lo, lv);
	}
	struct line *l = &lv->lines[lv->next % lv->cap];
	l->hook = xstrdup(hook);
	l->text = xstrndup(text, len);
	l->len = len;
	lo->bytes += line_cost(l);
	lv->next++;
	trim(lo);
}

static void flush_partial(struct liveout *lo, struct live *lv)
{
	if (lv->partial.len > 0 || lv->partial_cut)
		add_line(lo, lv, lv->partial_hook ? lv->partial_hook : "",
		         lv->partial.buf ? lv->partial.buf : "", lv->partial.len);
	lv->partial.len = 0;
	lv->partial_cut = false;
}

void liveout_take(const char *endpoint, const char *delivery_id, const char *hook,
                  const char *buf, size_t n, void *arg)
{
	struct liveout *lo = arg;
	if (!endpoint || !*endpoint || !delivery_id || !*delivery_id)
		return;
	struct live *lv = find(lo, endpoint, delivery_id);
	if (!lv) {
		lv = xcalloc(1, sizeof(*lv));
		lv->endpoint = xstrdup(endpoint);
		lv->id = xstrdup(delivery_id);
		lv->first = lv->next = 1;
		sb_init(&lv->partial);
		TAILQ_INIT(&lv->waiters);
		TAILQ_INSERT_HEAD(&lo->lives, lv, link);
		lo->n++;
	}
	if (lv->ended) {
		/* A new attempt (a retry, a replay): the stream goes on. */
		lv->ended = false;
		free(lv->state);
		lv->state = NULL;
	}
	lv->touched_ms = now_mono_ms();
	if (lv != TAILQ_FIRST(&lo->lives)) {
		/* The ones that print stay; the oldest quiet one goes first. */
		TAILQ_REMOVE(&lo->lives, lv, link);
		TAILQ_INSERT_HEAD(&lo->lives, lv, link);
	}
	if (!lv->partial_hook || strcmp(lv->partial_hook, hook) != 0) {
		flush_partial(lo, lv);
		free(lv->partial_hook);
		lv->partial_hook = xstrdup(hook);
	}
	const char *p = buf, *end = buf + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		size_t room = LIVEOUT_LINE_MAX - lv->partial.len;
		size_t k = (size_t)(stop - p) < room ? (size_t)(stop - p) : room;
		sb_append(&lv->partial, p, k);
		if ((size_t)(stop - p) > room)
			lv->partial_cut = true;
		if (!nl)
			break;
		flush_partial(lo, lv);
		p = nl + 1;
	}
	wake(lv);
	expire(lo);
}

void liveout_ended(struct liveout *lo, const char *endpoint, const char *delivery_id,
                   const char *state, int http, int attempts)
{
	struct live *lv = find(lo, endpoint, delivery_id);
	if (!lv)
		return;
	flush_partial(lo, lv);
	lv->ended = true;
	free(lv->state);
	lv->state = xstrdup(state);
	lv->http = http;
	lv->attempts = attempts;
	lv->touched_ms = now_mono_ms();
	wake(lv);
}

void liveout_forget(struct liveout *lo, const char *endpoint, const char *delivery_id)
{
	struct live *lv = find(lo, endpoint, delivery_id);
	if (lv)
		live_free(lo, lv);
}

static void on_wait_over(evutil_socket_t fd, short what, void *arg)
{
	waiter_answer(arg);
}

bool liveout_serve(struct liveout *lo, struct http_request *req, const char *endpoint,
                   const char *delivery_id, uint64_t after, const char *headers)
{
	expire(lo);
	struct live *lv = find(lo, endpoint, delivery_id);
	if (!lv)
		return false;
	if (lv->ended || after + 1 < lv->next) {
		http_respond_typed(req, 200, SSE_TYPE, headers, stream_body(lv, after), false);
		return true;
	}
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->lo = lo;
	w->lv = lv;
	w->req = req;
	w->after = after;
	w->headers = xstrdup(headers ? headers : "");
	w->timer = evtimer_new(lo->base, on_wait_over, w);
	struct timeval tv = {LIVEOUT_WAIT_MS / 1000, 0};
	evtimer_add(w->timer, &tv);
	TAILQ_INSERT_TAIL(&lv->waiters, w, link);
	return true;
}
