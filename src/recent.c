/* Recent deliveries in memory (recent.h). */
#include "recent.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "journal.h"
#include "util.h"
#include "webjson.h"

struct recent_hook {
	char *hook, *signal, *error, *output;
	size_t output_len;
	int exit_code;
	int64_t ms;
};

struct recent_item {
	uint64_t seq; /* 0: empty slot */
	char *endpoint, *id, *event, *remote, *status, *error;
	bool async, client_gone; /* client_gone: journal_attempt's */
	int http, attempts;
	int64_t received_ms, ended_ms, ms;
	char *headers; /* "Name: value\n" lines */
	unsigned char *body;
	size_t body_kept, body_len;
	struct recent_hook *hooks;
	size_t nhooks;
};

struct recent {
	struct recent_item ring[RECENT_MAX];
	uint64_t seq; /* the last one given */
};

static void item_clear(struct recent_item *it)
{
	free(it->endpoint);
	free(it->id);
	free(it->event);
	free(it->remote);
	free(it->status);
	free(it->error);
	free(it->headers);
	free(it->body);
	for (size_t i = 0; i < it->nhooks; i++) {
		free(it->hooks[i].hook);
		free(it->hooks[i].signal);
		free(it->hooks[i].error);
		free(it->hooks[i].output);
	}
	free(it->hooks);
	memset(it, 0, sizeof(*it));
}

struct recent *recent_new(void)
{
	return xcalloc(1, sizeof(struct recent));
}

void recent_free(struct recent *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < RECENT_MAX; i++)
		item_clear(&r->ring[i]);
	free(r);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static enum delivery_state item_state(const struct recent_item *it)
{
	if (it->status && strcmp(it->status, "skipped") == 0)
		return DSTATE_SKIPPED;
	return it->http >= 200 && it->http <= 299 ? DSTATE_SUCCEEDED : DSTATE_FAILED;
}

void recent_add(struct delivery *d, void *arg)
{
	struct recent *r = arg;
	uint64_t seq = ++r->seq;
	struct recent_item *it = &r->ring[seq % RECENT_MAX];
	item_clear(it);
	struct journal_new jn;
	struct journal_header *hdrs;
	delivery_journal_new(d, &jn, &hdrs);
	const struct outcome *out = delivery_outcome(d);
	it->seq = seq;
	it->endpoint = xstrdup(jn.endpoint);
	it->id = xstrdup(jn.delivery_id);
	it->event = xstrdup(jn.event ? jn.event : "");
	it->remote = xstrdup(jn.remote_addr ? jn.remote_addr : "");
	it->async = jn.async;
	it->status = dup_or_null(out->status);
	it->error = dup_or_null(out->error);
	it->http = out->http;
	it->client_gone = delivery_answer_lost(d);
	it->attempts = delivery_attempt(d);
	it->received_ms = jn.received_ms;
	it->ended_ms = now_wall_ms();
	it->ms = delivery_ms(d);
	struct strbuf sb;
	sb_init(&sb);
	for (size_t i = 0; i < jn.nheaders; i++)
		sb_printf(&sb, "%s: %s\n", hdrs[i].name, hdrs[i].value);
	it->headers = sb_steal(&sb);
	free(hdrs);
	it->body_len = jn.body_len;
	it->body_kept = jn.body_len < RECENT_BODY_MAX ? jn.body_len : RECENT_BODY_MAX;
	it->body = xmalloc(it->body_kept + 1);
	if (it->body_kept)
		memcpy(it->body, jn.body, it->body_kept);
	size_t n;
	struct journal_hook *h = delivery_journal_hooks(d, &n);
	it->hooks = xcalloc(n ? n : 1, sizeof(*it->hooks));
	it->nhooks = n;
	for (size_t i = 0; i < n; i++) {
		struct recent_hook *rh = &it->hooks[i];
		rh->hook = xstrdup(h[i].hook);
		rh->signal = dup_or_null(h[i].signal);
		rh->error = dup_or_null(h[i].error);
		rh->exit_code = h[i].exit_code;
		rh->ms = h[i].ms;
		if (h[i].output) {
			rh->output = xmalloc(h[i].output_len + 1);
			memcpy(rh->output, h[i].output, h[i].output_len);
			rh->output_len = h[i].output_len;
		}
	}
	free(h);
}

static bool matches(const struct recent_item *it, const struct recent_filter *f)
{
	if (f->state >= 0 && (int)item_state(it) != f->state)
		return false;
	if (f->endpoint && strcmp(f->endpoint, it->endpoint) != 0)
		return false;
	if (f->event_glob && fnmatch(f->event_glob, it->event, 0) != 0)
		return false;
	if (it->received_ms < f->since_ms)
		return false;
	if (f->text && !memmem(it->body, it->body_kept, f->text, strlen(f->text)))
		return false;
	return true;
}

void recent_list_json(const struct recent *r, const struct recent_filter *f, struct strbuf *out,
                      uint64_t *next)
{
	int limit = f->limit > 0 ? f->limit : 50;
	int n = 0;
	*next = 0;
	uint64_t top = f->before_seq && f->before_seq <= r->seq + 1 ? f->before_seq - 1 : r->seq;
	uint64_t bottom = r->seq > RECENT_MAX ? r->seq - RECENT_MAX + 1 : 1;
	for (uint64_t seq = top; seq >= bottom && seq > 0; seq--) {
		const struct recent_item *it = &r->ring[seq % RECENT_MAX];
		if (it->seq != seq || !matches(it, f))
			continue;
		if (n == limit) {
			*next = seq + 1;
			return;
		}
		struct webjson_item wi = {
			.endpoint = it->endpoint,
			.id = it->id,
			.event = it->event,
			.state = delivery_state_name(item_state(it)),
			.received_ms = it->received_ms,
			.http = it->http,
			.client_gone = it->client_gone,
			.attempts = it->attempts,
			.status = it->status,
			.duration_ms = it->ms,
		};
		if (n++)
			sb_putc(out, ',');
		webjson_item(out, &wi);
	}
}

static const struct recent_item *find(const struct recent *r, const char *endpoint,
                                      const char *id)
{
	uint64_t bottom = r->seq > RECENT_MAX ? r->seq - RECENT_MAX + 1 : 1;
	for (uint64_t seq = r->seq; seq >= bottom && seq > 0; seq--) {
		const struct recent_item *c = &r->ring[seq % RECENT_MAX];
		if (c->seq == seq && strcmp(c->endpoint, endpoint) == 0 && strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

static struct journal_hook hook_of(const struct recent_hook *rh)
{
	return (struct journal_hook){
		.hook = rh->hook,
		.exit_code = rh->exit_code,
		.signal = rh->signal,
		.ms = rh->ms,
		.error = rh->error,
		.output = rh->output,
		.output_len = rh->output_len,
	};
}

enum result recent_hooks(const struct recent *r, const char *endpoint, const char *id,
                         const char **state, int *http, int *attempts,
                         void (*visit)(const struct journal_hook *h, void *arg), void *arg)
{
	const struct recent_item *it = find(r, endpoint, id);
	if (!it)
		return RESULT_UNKNOWN;
	*state = delivery_state_name(item_state(it));
	*http = it->http;
	*attempts = it->attempts;
	for (size_t i = 0; i < it->nhooks; i++) {
		struct journal_hook h = hook_of(&it->hooks[i]);
		visit(&h, arg);
	}
	return RESULT_OK;
}

enum result recent_get_json(const struct recent *r, const char *endpoint, const char *id,
                            struct strbuf *out)
{
	const struct recent_item *it = find(r, endpoint, id);
	if (!it)
		return RESULT_UNKNOWN;
	struct journal_entry e = {
		.endpoint = it->endpoint,
		.delivery_id = it->id,
		.event = it->event,
		.state = item_state(it),
		.http = it->http,
		.attempts = it->attempts,
		.received_ms = it->received_ms,
		.remote_addr = it->remote,
		.async = it->async,
		.updated_ms = it->ended_ms,
		.status = it->status,
		.error = it->error,
		.headers = it->headers,
		.body = it->body,
		.body_kept = it->body_kept,
		.body_len = (int64_t)it->body_len,
		.body_cut = it->body_kept < it->body_len,
	};
	webjson_entry(out, &e);
	sb_puts(out, ",\"attempt_list\":[");
	if (it->attempts > 0) {
		struct journal_attempt a = {
			.attempt = it->attempts,
			.started_ms = it->ended_ms - it->ms,
			.finished_ms = it->ended_ms,
			.http = it->http,
			.status = it->status ? it->status : "",
			.error = it->error,
			.client_gone = it->client_gone,
		};
		webjson_attempt(out, &a);
		for (size_t i = 0; i < it->nhooks; i++) {
			struct journal_hook h = hook_of(&it->hooks[i]);
			webjson_hook(out, &h, i);
		}
		sb_puts(out, "]}");
	}
	sb_puts(out, "]}");
	return RESULT_OK;
}
