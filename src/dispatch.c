#include "dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "journal.h"
#include "verify.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* How long a sender is told to wait before resending a pending delivery. */
#define RETRY_AFTER_PENDING 10
#define RETRY_AFTER_OVERLOAD 5
#define MAX_BACKOFF_MS (3600 * 1000)
/* Without a journal, idempotency remembers this many finished ids. */
#define MEMORY_IDS_MAX 10000
#define MEMORY_BUCKETS 4096

/* A serialization key and the deliveries waiting for it, in arrival order. */
struct keyq {
	struct keyq *next; /* hash chain */
	char *key;
	bool busy;
	TAILQ_HEAD(, delivery) waiting;
};

/* Idempotency without a journal: (endpoint, id) -> state, in memory. */
struct memid {
	struct memid *next;            /* hash chain */
	TAILQ_ENTRY(memid) fifo;       /* eviction order of finished ones */
	enum delivery_state state;
	int attempts;
	bool in_fifo;
	char key[];                    /* endpoint \x1f id: one allocation a remembered id */
};

struct dispatcher {
	struct event_base *base;
	struct config *cfg;
	struct journal *journal;
	int running;
	int queued_sync; /* admitted sync deliveries not yet running */
	TAILQ_HEAD(, delivery) queue;   /* waiting for a slot */
	TAILQ_HEAD(, delivery) waiting_retry;
	struct keyq *keys[256];
	struct memid *ids[MEMORY_BUCKETS];
	TAILQ_HEAD(, memid) ids_fifo;
	size_t nids_final;
	bool draining;
	/* Handing freed slots on (release): a delivery that finishes at once
	 * while it runs only gives its slot back, and the loop already under
	 * way starts the next, so a queue of deliveries that each fail at once
	 * does not nest one call a delivery. */
	bool releasing;
	struct event *flush_ev; /* commits the journal's batch at the loop's turn's end */
};

static void run_next_hook(struct delivery *d);
static void resolve(struct delivery *d);
static bool route_outcome(struct delivery *d);
static void slot_acquire(struct dispatcher *ds, struct delivery *d);
static void start_running(struct dispatcher *ds, struct delivery *d);

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* a, sep (when not NUL) and b in one allocation: the per-delivery keys and
 * names, without a printf each. */
static char *join(const char *a, char sep, const char *b)
{
	size_t na = strlen(a), nb = strlen(b), ns = sep ? 1 : 0;
	char *s = xmalloc(na + ns + nb + 1);
	memcpy(s, a, na);
	if (sep)
		s[na] = sep;
	memcpy(s + na + ns, b, nb + 1);
	return s;
}

/* prefix + suffix into buf (len bytes); cut to fit, always terminated. */
static void concat(char *buf, size_t len, const char *prefix, const char *suffix)
{
	size_t np = strnlen(prefix, len - 1);
	memcpy(buf, prefix, np);
	size_t ns = strnlen(suffix, len - 1 - np);
	memcpy(buf + np, suffix, ns);
	buf[np + ns] = '\0';
}

/* A decimal, for log and environment values; buf holds >= 24 bytes. */
static const char *decimal(char *buf, long long v)
{
	char *p = buf + 23;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return p;
}

/* ---- idempotency ---------------------------------------------------- */

static char *id_key(const struct delivery *d)
{
	return join(d->ep->name, '\x1f', d->id);
}

static struct memid *memid_find(struct dispatcher *ds, const char *key)
{
	struct memid *m = ds->ids[hash_str(key) % MEMORY_BUCKETS];
	while (m && strcmp(m->key, key) != 0)
		m = m->next;
	return m;
}

static void memid_remove(struct dispatcher *ds, struct memid *m)
{
	struct memid **pp = &ds->ids[hash_str(m->key) % MEMORY_BUCKETS];
	while (*pp != m)
		pp = &(*pp)->next;
	*pp = m->next;
	if (m->in_fifo) {
		TAILQ_REMOVE(&ds->ids_fifo, m, fifo);
		ds->nids_final--;
	}
	free(m);
}

static void memid_set(struct dispatcher *ds, const struct delivery *d, enum delivery_state st)
{
	char *key = id_key(d);
	struct memid *m = memid_find(ds, key);
	if (!m) {
		size_t n = strlen(key) + 1;
		m = xcalloc(1, sizeof(*m) + n);
		memcpy(m->key, key, n);
		uint32_t b = hash_str(key) % MEMORY_BUCKETS;
		m->next = ds->ids[b];
		ds->ids[b] = m;
	}
	free(key);
	m->state = st;
	m->attempts = d->attempt;
	if (m->in_fifo) {
		TAILQ_REMOVE(&ds->ids_fifo, m, fifo);
		m->in_fifo = false;
		ds->nids_final--;
	}
	if (!delivery_state_pending(st)) {
		TAILQ_INSERT_TAIL(&ds->ids_fifo, m, fifo);
		m->in_fifo = true;
		ds->nids_final++;
		while (ds->nids_final > MEMORY_IDS_MAX)
			memid_remove(ds, TAILQ_FIRST(&ds->ids_fifo));
	}
}

/* 1 and the state when the id is known, 0 when not. */
static int id_lookup(struct dispatcher *ds, struct delivery *d, enum delivery_state *st,
                     int *attempts)
{
	if (ds->journal) {
		int64_t rowid;
		enum result r = journal_lookup(ds->journal, d->ep->name, d->id, st, attempts, &rowid);
		return r == RESULT_OK ? 1 : 0;
	}
	char *key = id_key(d);
	struct memid *m = memid_find(ds, key);
	free(key);
	if (!m)
		return 0;
	*st = m->state;
	*attempts = m->attempts;
	return 1;
}

/* ---- serialization keys --------------------------------------------- */

static struct keyq *keyq_get(struct dispatcher *ds, const char *key, bool create)
{
	uint32_t b = hash_str(key) % ARRAY_SIZE(ds->keys);
	struct keyq *k = ds->keys[b];
	while (k && strcmp(k->key, key) != 0)
		k = k->next;
	if (!k && create) {
		k = xcalloc(1, sizeof(*k));
		k->key = xstrdup(key);
		TAILQ_INIT(&k->waiting);
		k->next = ds->keys[b];
		ds->keys[b] = k;
	}
	return k;
}

static void keyq_drop(struct dispatcher *ds, struct keyq *k)
{
	struct keyq **pp = &ds->keys[hash_str(k->key) % ARRAY_SIZE(ds->keys)];
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	free(k->key);
	free(k);
}

/* Takes d's key if free; else d waits for it (and takes no slot). */
static bool key_acquire(struct dispatcher *ds, struct delivery *d)
{
	if (!d->key)
		return true;
	struct keyq *k = keyq_get(ds, d->key, true);
	if (!k->busy) {
		k->busy = true;
		return true;
	}
	TAILQ_INSERT_TAIL(&k->waiting, d, key_link);
	return false;
}

static void key_release(struct dispatcher *ds, struct delivery *d)
{
	if (!d->key)
		return;
	struct keyq *k = keyq_get(ds, d->key, false);
	if (!k)
		return;
	struct delivery *next = TAILQ_FIRST(&k->waiting);
	if (!next) {
		keyq_drop(ds, k);
		return;
	}
	TAILQ_REMOVE(&k->waiting, next, key_link);
	/* The key passes straight to the next in arrival order. */
	slot_acquire(ds, next);
}

/* ---- the response --------------------------------------------------- */

static void json_field_str(struct strbuf *sb, const char *name, const char *v)
{
	sb_putc(sb, '"');
	sb_puts(sb, name);
	sb_puts(sb, "\":");
	if (v)
		sb_json_str(sb, v, strlen(v));
	else
		sb_puts(sb, "null");
}

char *response_json(const char *endpoint, const char *event, const char *id, const char *status,
                    const char *error)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 127);
	sb_putc(&sb, '{');
	json_field_str(&sb, "endpoint", endpoint);
	sb_putc(&sb, ',');
	json_field_str(&sb, "event", event);
	sb_putc(&sb, ',');
	json_field_str(&sb, "id", id);
	sb_putc(&sb, ',');
	json_field_str(&sb, "status", status);
	sb_puts(&sb, ",\"hooks\":[]");
	if (error) {
		sb_putc(&sb, ',');
		json_field_str(&sb, "error", error);
	}
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

char *delivery_response_json(const struct delivery *d, bool include_output)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 255);
	sb_putc(&sb, '{');
	json_field_str(&sb, "endpoint", d->ep->name);
	sb_putc(&sb, ',');
	json_field_str(&sb, "event", d->event);
	sb_putc(&sb, ',');
	json_field_str(&sb, "id", d->id);
	sb_putc(&sb, ',');
	json_field_str(&sb, "status", d->out.status);
	sb_puts(&sb, ",\"hooks\":[");
	for (size_t i = 0; i < d->nresults; i++) {
		const struct hook_outcome *h = &d->results[i];
		if (i)
			sb_putc(&sb, ',');
		sb_putc(&sb, '{');
		json_field_str(&sb, "hook", h->rel);
		char num[24];
		sb_puts(&sb, ",\"exit\":");
		sb_puts(&sb, h->res.exit_code >= 0 ? decimal(num, h->res.exit_code) : "null");
		sb_putc(&sb, ',');
		json_field_str(&sb, "signal", h->res.signal ? signal_name(h->res.signal) : NULL);
		sb_puts(&sb, ",\"ms\":");
		sb_puts(&sb, decimal(num, (long long)h->res.ms));
		if (h->res.error) {
			sb_putc(&sb, ',');
			json_field_str(&sb, "error", h->res.error);
		}
		if (include_output) {
			sb_puts(&sb, ",\"output\":");
			sb_json_str(&sb, h->res.output, h->res.output_len);
		}
		sb_putc(&sb, '}');
	}
	sb_putc(&sb, ']');
	if (d->out.error) {
		sb_putc(&sb, ',');
		json_field_str(&sb, "error", d->out.error);
	}
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

void delivery_log(const struct delivery *d)
{
	char http[24], ms[24], hooks[24], attempt[24], omitted[24];
	bool ok = d->out.http >= 200 && d->out.http < 300;
	struct log_kv kv[] = {
		{"endpoint", d->ep->name},
		{"event", d->event},
		{"id", d->id},
		{"status", d->out.status},
		{"http", decimal(http, d->out.http)},
		{"ms", decimal(ms, (long long)d->ms)},
		{"hooks", decimal(hooks, (long long)d->nresults)},
		{"attempt", d->attempt > 1 ? decimal(attempt, d->attempt) : NULL},
		{"mode", d->async ? "async" : NULL},
		{"env_omitted", d->env_omitted ? decimal(omitted, (long long)d->env_omitted) : NULL},
		{"error", d->out.error},
	};
	log_kv(ok ? LOG_LVL_INFO : LOG_LVL_WARN, "delivery", kv, ARRAY_SIZE(kv));
	metrics_delivery(d->ep->name, d->out.status, d->out.http);
}

/* ---- building a delivery -------------------------------------------- */

static void generate_id(char *buf, size_t len)
{
	unsigned char r[16];
	if (RAND_bytes(r, sizeof(r)) != 1) {
		int64_t t = now_wall_ms();
		memcpy(r, &t, sizeof(t));
		memcpy(r + 8, &t, sizeof(t));
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* a version 4 UUID */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(buf, len,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
	         r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
	         r[14], r[15]);
}

static const char *const metadata_names[] = {
	"EVENT", "ID", "ENDPOINT", "HOOK", "ATTEMPT", "REMOTE_ADDR", "RECEIVED_AT",
	"INTEGRATION_ID", "INTEGRATION_NAME",
};

/*
 * What every hook's environment takes from the config alone, built once
 * rather than for each delivery: the reserved metadata names under the
 * prefix, and the base environment (pass_env from the daemon's own, or
 * the default PATH). Rebuilt when a config with another prefix or
 * pass_env list comes (compared by content, not by pointer, so a new
 * config at an old address is never mistaken for it). hookd does not
 * change its own environment after start.
 */
static struct {
	char *prefix;
	char **pass_env;
	char *reserved[ARRAY_SIZE(metadata_names) + 1];
	struct envlist base;
} once;

static bool same_list(char **a, char **b)
{
	for (; a && b && *a && *b; a++, b++) {
		if (strcmp(*a, *b) != 0)
			return false;
	}
	return (!a || !*a) && (!b || !*b);
}

void delivery_cleanup(void)
{
	free(once.prefix);
	once.prefix = NULL;
	for (size_t i = 0; once.pass_env && once.pass_env[i]; i++)
		free(once.pass_env[i]);
	free(once.pass_env);
	once.pass_env = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(metadata_names); i++) {
		free(once.reserved[i]);
		once.reserved[i] = NULL;
	}
	envlist_free(&once.base);
}

static void once_update(const struct config *cfg)
{
	if (once.prefix && strcmp(once.prefix, cfg->env_prefix) == 0 &&
	    same_list(once.pass_env, cfg->pass_env))
		return;
	free(once.prefix);
	once.prefix = xstrdup(cfg->env_prefix);
	for (size_t i = 0; once.pass_env && once.pass_env[i]; i++)
		free(once.pass_env[i]);
	free(once.pass_env);
	size_t n = 0;
	while (cfg->pass_env && cfg->pass_env[n])
		n++;
	once.pass_env = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		once.pass_env[i] = xstrdup(cfg->pass_env[i]);
	for (size_t i = 0; i < ARRAY_SIZE(metadata_names); i++) {
		free(once.reserved[i]);
		once.reserved[i] = join(cfg->env_prefix, '\0', metadata_names[i]);
	}
	envlist_free(&once.base);
	envlist_init(&once.base);
	bool have_path = false;
	for (char **p = cfg->pass_env; p && *p; p++) {
		const char *v = getenv(*p);
		if (!v)
			continue;
		envlist_add(&once.base, *p, v);
		if (strcmp(*p, "PATH") == 0)
			have_path = true;
	}
	if (!have_path)
		envlist_add(&once.base, "PATH", "/usr/local/bin:/usr/bin:/bin");
}

/* The environment: pass_env and metadata; the payload comes after. */
static void build_env_base(struct delivery *d)
{
	const struct config *cfg = d->cfg;
	once_update(cfg);
	envlist_init(&d->env);
	envlist_copy(&d->env, &once.base);
	const char *pre = cfg->env_prefix;
	char name[ENV_META_NAME_MAX], ts[40];
	format_rfc3339_ms(d->received_ms, ts, sizeof(ts));
	struct {
		const char *suffix, *value;
	} meta[] = {
		{"EVENT", d->event}, {"ID", d->id}, {"ENDPOINT", d->ep->name},
		{"REMOTE_ADDR", d->remote_addr}, {"RECEIVED_AT", ts},
		{"INTEGRATION_ID", d->integration_id}, {"INTEGRATION_NAME", d->integration_name},
	};
	for (size_t i = 0; i < ARRAY_SIZE(meta); i++) {
		if (!meta[i].value)
			continue;
		concat(name, sizeof(name), pre, meta[i].suffix);
		envlist_add(&d->env, name, meta[i].value);
	}
}

/* HOOK_HEADER_<NAME> for each pass_headers header the request had, after
 * the payload's variables: a payload key of that name gives way, as to
 * metadata, and one the request did not send is removed, so that the
 * variable is never the body's word. A value over FLATTEN_MAX_VALUE is left
 * out (counted in env_omitted), as a payload value would be. */
static void add_header_vars(struct delivery *d)
{
	char **names = d->ep->pass_headers;
	for (size_t i = 0; names && names[i] && d->header_values; i++) {
		char *var = xasprintf("%sHEADER_%s", d->cfg->env_prefix, names[i]);
		header_var_suffix(var + strlen(d->cfg->env_prefix) + strlen("HEADER_"));
		const char *v = d->header_values[i];
		if (v && strlen(v) <= FLATTEN_MAX_VALUE) {
			envlist_add(&d->env, var, v);
		} else {
			envlist_remove(&d->env, var);
			d->env_omitted += v != NULL;
		}
		free(var);
	}
}

void delivery_pass_headers(struct delivery *d, const char *(*get)(void *ctx, const char *name),
                           void *ctx)
{
	size_t n = 0;
	while (d->ep->pass_headers && d->ep->pass_headers[n])
		n++;
	if (n == 0)
		return;
	d->header_values = xcalloc(n, sizeof(*d->header_values));
	for (size_t i = 0; i < n; i++) {
		const char *v = get(ctx, d->ep->pass_headers[i]);
		d->header_values[i] = v ? xstrdup(v) : NULL;
	}
	if (!d->env_pending)
		add_header_vars(d);
}

/* The environment: pass_env, metadata, then the payload of root. */
static void build_env(struct delivery *d, json_object *root)
{
	build_env_base(d);
	if (root)
		payload_flatten(root, d->cfg->env_prefix, (const char *const *)once.reserved,
		                &d->env, &d->env_omitted);
}

static struct delivery *delivery_make(struct config *cfg, const struct endpoint *ep,
                                      const char *event, const char *id, const char *remote_addr,
                                      const unsigned char *body, size_t body_len,
                                      json_object *root, const char *integration_id,
                                      const char *integration_name, bool lazy)
{
	struct delivery *d = xcalloc(1, sizeof(*d));
	bool lazy_parsed = false;
	d->scanned_big_numbers = -1;
	d->cfg = config_ref(cfg);
	d->ep = ep;
	d->event = xstrdup(event);
	if (id && *id) {
		d->id = xstrdup(id);
	} else {
		char gen[40];
		generate_id(gen, sizeof(gen));
		d->id = xstrdup(gen);
		d->id_generated = true;
	}
	d->remote_addr = xstrdup(remote_addr ? remote_addr : "");
	d->received_ms = now_wall_ms();
	d->body = xmalloc(body_len + 1);
	memcpy(d->body, body, body_len);
	d->body[body_len] = '\0';
	d->body_len = body_len;
	d->integration_id = integration_id ? xstrdup(integration_id) : NULL;
	d->integration_name = integration_name ? xstrdup(integration_name) : NULL;
	d->attempt = 1;
	config_delivery_opts(cfg, ep, event, &d->opts);
	d->async = d->opts.mode == MODE_ASYNC;
	if (lazy && !root && d->opts.serialize) {
		/* The key is in the payload: the tree is needed now. */
		root = d->root = payload_parse_json((const char *)body, body_len, NULL, 0);
		lazy_parsed = true;
	}
	if (d->opts.serialize) {
		char *v = root ? payload_get_path(root, d->opts.serialize) : NULL;
		d->key = xasprintf("%s\x1f%s", d->opts.serialize_scope ? d->opts.serialize_scope : "",
		                   v ? v : "");
		free(v);
	}
	if (lazy) {
		d->env_pending = true;
		if (!lazy_parsed)
			d->root = root ? json_object_get(root) : NULL;
		d->parse_body = !root;
	} else {
		build_env(d, root);
	}
	return d;
}

struct delivery *delivery_new(struct config *cfg, const struct endpoint *ep, const char *event,
                              const char *id, const char *remote_addr, const unsigned char *body,
                              size_t body_len, json_object *root, const char *integration_id,
                              const char *integration_name)
{
	return delivery_make(cfg, ep, event, id, remote_addr, body, body_len, root, integration_id,
	                     integration_name, false);
}

struct delivery *delivery_new_lazy(struct config *cfg, const struct endpoint *ep,
                                   const char *event, const char *id, const char *remote_addr,
                                   const unsigned char *body, size_t body_len, json_object *root,
                                   const char *integration_id, const char *integration_name)
{
	return delivery_make(cfg, ep, event, id, remote_addr, body, body_len, root, integration_id,
	                     integration_name, true);
}

bool delivery_build_env(struct delivery *d, char *err, size_t errlen)
{
	if (!d->env_pending)
		return true;
	d->env_pending = false;
	if (d->parse_body && !d->root && d->scanned_big_numbers >= 0) {
		/* json_scan accepted this body: its variables come straight
		 * from the text, without a tree, unless an object in it has a
		 * key twice (json-c's tree says which value wins). */
		build_env_base(d);
		if (payload_flatten_text((const char *)d->body, d->body_len, d->cfg->env_prefix,
		                         (const char *const *)once.reserved, &d->env,
		                         &d->env_omitted)) {
			add_header_vars(d);
			return true;
		}
		envlist_free(&d->env);
	}
	if (d->parse_body && !d->root) {
		/* The tree, for a key given twice. A parse that fails is not
		 * expected: json_scan accepted this body, and json-c builds
		 * whatever it accepts (fuzz_jsonscan holds them to that). */
		d->root = d->scanned_big_numbers >= 0
		                  ? payload_parse_scanned((const char *)d->body, d->body_len,
		                                          (size_t)d->scanned_big_numbers, err, errlen)
		                  : payload_parse_json((const char *)d->body, d->body_len, err, errlen);
		if (!d->root)
			return false;
	}
	build_env(d, d->root);
	add_header_vars(d);
	json_object_put(d->root);
	d->root = NULL;
	return true;
}

void delivery_free(struct delivery *d)
{
	if (!d)
		return;
	if (d->retry_timer)
		event_free(d->retry_timer);
	for (size_t i = 0; i < d->nresults; i++) {
		free(d->results[i].rel);
		free(d->results[i].res.error);
	}
	free(d->results);
	route_free(&d->route);
	envlist_free(&d->env);
	json_object_put(d->root);
	for (size_t i = 0; i < d->nheaders; i++) {
		free(d->headers[i].name);
		free(d->headers[i].value);
	}
	free(d->headers);
	for (size_t i = 0; d->header_values && d->ep->pass_headers && d->ep->pass_headers[i]; i++)
		free(d->header_values[i]);
	free(d->header_values);
	free(d->out.error);
	free(d->key);
	free(d->integration_id);
	free(d->integration_name);
	free(d->body);
	free(d->remote_addr);
	free(d->id);
	free(d->event);
	config_unref(d->cfg);
	free(d);
}

/* ---- outcomes ------------------------------------------------------- */

static void set_outcome(struct delivery *d, int http, const char *status, char *error)
{
	d->out.http = http;
	d->out.status = status;
	free(d->out.error);
	d->out.error = error;
}

/* The journal's batch is committed once this turn of the event loop is
 * over: writes made in the same turn share one commit. */
static void flush_soon(struct dispatcher *ds)
{
	if (ds->flush_ev)
		event_active(ds->flush_ev, EV_TIMEOUT, 0);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct dispatcher *ds = arg;
	/* Hooks whose attempts that batch recorded may start now; if it was
	 * lost, they must not (a crash would leave no trace of them), and
	 * their senders are asked to retry. */
	if (journal_flush(ds->journal) < 0)
		runner_cancel_held("cannot record the attempt in the journal");
	else
		runner_release();
}

static void journal_finish(struct dispatcher *ds, struct delivery *d, enum delivery_state st,
                           int64_t next_due)
{
	if (!ds->journal || !d->rowid)
		return;
	struct journal_hook *hooks = xcalloc(d->nresults ? d->nresults : 1, sizeof(*hooks));
	for (size_t i = 0; i < d->nresults; i++) {
		const struct hook_outcome *h = &d->results[i];
		hooks[i].hook = h->rel;
		hooks[i].exit_code = h->res.exit_code;
		hooks[i].signal = h->res.signal ? signal_name(h->res.signal) : NULL;
		hooks[i].ms = h->res.ms;
		hooks[i].error = h->res.error;
		hooks[i].output = h->res.output;
		hooks[i].output_len = h->res.output_len;
	}
	int64_t now = now_wall_ms();
	struct journal_attempt a = {
		.attempt = d->attempt,
		.started_ms = now - d->ms,
		.finished_ms = now,
		.http = d->out.http,
		.status = d->out.status,
		.error = d->out.error,
		.hooks = hooks,
		.nhooks = d->nresults,
	};
	if (journal_attempt_finished(ds->journal, d->rowid, &a, st, next_due) < 0)
		log_msg(LOG_LVL_ERROR, "journal: cannot record the outcome of %s", d->id);
	free(hooks);
	/* A sync sender gets its answer next: the outcome is committed first,
	 * so that a resend after the answer is always a duplicate. */
	if (d->async)
		flush_soon(ds);
	else if (journal_flush(ds->journal) < 0)
		log_msg(LOG_LVL_ERROR, "journal: cannot record the outcome of %s", d->id);
}

static void complete(struct delivery *d);

static void schedule_retry(struct delivery *d, int64_t delay_ms);

/* The delivery's attempt is over: record, then answer or retry. */
static void attempt_over(struct delivery *d)
{
	struct dispatcher *ds = d->disp;
	d->ms = now_mono_ms() - d->started_mono;
	bool ok = d->out.http >= 200 && d->out.http < 300;
	bool retryable = !ok && (d->out.http == 503 || strcmp(d->out.status, "timeout") == 0);
	enum delivery_state st = ok ? DSTATE_SUCCEEDED : DSTATE_FAILED;
	int64_t delay = 0;
	if (d->async && retryable && d->attempt < d->opts.retries + 1) {
		/* The n-th retry waits backoff * 2^(n-1), capped at an hour;
		 * shutting down, the same due time is the next start's to keep. */
		delay = d->opts.retry_backoff_ms;
		for (int n = 1; n < d->attempt && delay < MAX_BACKOFF_MS; n++)
			delay *= 2;
		if (delay > MAX_BACKOFF_MS)
			delay = MAX_BACKOFF_MS;
		st = DSTATE_RETRY_WAIT;
	}
	journal_finish(ds, d, st, st == DSTATE_RETRY_WAIT ? now_wall_ms() + delay : 0);
	if (!ds->journal && !d->id_generated)
		memid_set(ds, d, st);
	delivery_log(d);
	if (st == DSTATE_RETRY_WAIT && !ds->draining) {
		schedule_retry(d, delay);
		return;
	}
	complete(d);
}

/* Finished for good: tell the waiter (sync) and free. */
static void complete(struct delivery *d)
{
	d->finished = true;
	if (d->done) {
		delivery_done_fn done = d->done;
		d->done = NULL;
		done(d, d->done_arg);
	}
	delivery_free(d);
}

static void release(struct delivery *d)
{
	struct dispatcher *ds = d->disp;
	ds->running--;
	bool outer = !ds->releasing;
	ds->releasing = true;
	key_release(ds, d);
	if (!outer)
		return;
	/* The freed slot goes to the first in line. */
	while (ds->running < ds->cfg->max_running && !TAILQ_EMPTY(&ds->queue)) {
		struct delivery *next = TAILQ_FIRST(&ds->queue);
		TAILQ_REMOVE(&ds->queue, next, link);
		start_running(ds, next);
	}
	ds->releasing = false;
}

/* A new, empty entry in d's results. Its 4 KiB output buffer is not
 * zeroed: output_len says how much of it counts. */
static struct hook_outcome *result_append(struct delivery *d)
{
	d->results = xrealloc(d->results, (d->nresults + 1) * sizeof(*d->results));
	struct hook_outcome *h = &d->results[d->nresults++];
	h->rel = NULL;
	memset(&h->res, 0, offsetof(struct hook_result, output));
	h->res.output_len = 0;
	return h;
}

static bool failed(const struct status_map *m, const struct hook_result *r, int *http)
{
	if (r->timed_out)
		*http = m->timeout;
	else if (!r->ran && r->start_may_pass)
		*http = 503; /* the sender may retry: hookd was short of fds, memory... */
	else if (!r->ran || r->exit_code < 0)
		*http = m->def;
	else
		*http = status_for_exit(m, r->exit_code);
	return *http < 200 || *http > 299;
}

static enum metrics_hook_outcome hook_outcome_kind(const struct hook_result *r, bool bad)
{
	if (!r->ran)
		return MHOOK_EXEC_FAILED;
	if (r->timed_out)
		return MHOOK_TIMEOUT;
	if (r->signal)
		return MHOOK_SIGNAL;
	return bad ? MHOOK_FAILED : MHOOK_OK;
}

static void on_hook_done(const struct hook_result *res, void *arg)
{
	struct delivery *d = arg;
	struct hook_outcome *h = &d->results[d->nresults - 1];
	/* The fields, and of the output only what there is. */
	memcpy(&h->res, res, offsetof(struct hook_result, output));
	memcpy(h->res.output, res->output, res->output_len);
	h->res.output_len = res->output_len;
	h->res.error = res->error ? xstrdup(res->error) : NULL;
	int http;
	bool bad = failed(&d->cfg->status, &h->res, &http);
	metrics_hook(hook_outcome_kind(&h->res, bad), h->res.ran ? h->res.ms : -1);
	if (bad) {
		char *why;
		if (h->res.timed_out || h->res.error)
			why = xasprintf("hook %s: %s", h->rel, h->res.error);
		else
			why = xasprintf("hook %s exited with status %d", h->rel, h->res.exit_code);
		set_outcome(d, http, h->res.timed_out ? "timeout" : "failed", why);
		if (!h->res.ran && h->res.start_may_pass)
			d->out.retry_after = RETRY_AFTER_OVERLOAD;
		release(d);
		attempt_over(d);
		return;
	}
	run_next_hook(d);
}

static void run_next_hook(struct delivery *d)
{
	struct dispatcher *ds = d->disp;
	bool first = d->next_hook == 0;
	if (first) {
		char err[128];
		bool env_ok = delivery_build_env(d, err, sizeof(err));
		if (d->async) {
			/* An async delivery's route is read when it runs. */
			resolve(d);
		}
		if (!env_ok) {
			/* dispatch_submit built it already: this is a guard only. */
			route_free(&d->route);
			d->route.error = xstrdup(err);
		}
		/* A sync delivery was recorded as running this attempt already
		 * (journal_record): asking again would only cost a read. */
		if (ds->journal && d->rowid && d->async)
			journal_attempt_started(ds->journal, d->rowid, d->attempt, now_wall_ms());
		for (size_t i = 0; i < d->route.nskipped; i++)
			log_msg(LOG_LVL_WARN, "skipped %s: not executable (delivery %s)",
			        d->route.skipped[i], d->id);
	}
	if (d->route.error || !d->route.name || d->next_hook >= d->route.nhooks) {
		if (!route_outcome(d))
			set_outcome(d, 200, "ok", NULL);
		release(d);
		attempt_over(d);
		return;
	}
	const struct hook *hk = &d->route.hooks[d->next_hook++];
	char name[ENV_META_NAME_MAX], attempt[24];
	/* The per-hook variables go after the shared ones. */
	size_t base_n = d->env.n;
	concat(name, sizeof(name), d->cfg->env_prefix, "HOOK");
	envlist_add(&d->env, name, hk->rel);
	concat(name, sizeof(name), d->cfg->env_prefix, "ATTEMPT");
	envlist_add(&d->env, name, decimal(attempt, d->attempt));
	struct hook_outcome *h = result_append(d);
	h->rel = xstrdup(hk->rel);
	struct runner_params p = {
		.path = hk->path,
		.dir = hk->dir,
		.rel = hk->rel,
		.envp = d->env.v,
		.input = d->body,
		.input_len = d->body_len,
		.timeout_ms = d->opts.timeout_ms,
		.kill_grace_ms = d->cfg->kill_grace_ms,
		.limits = {d->cfg->limit_nofile, d->cfg->limit_nproc, d->cfg->limit_memory,
		           d->cfg->limit_cpu},
		.endpoint = d->ep->name,
		.event = d->event,
		.delivery_id = d->id,
		/* The attempt, recorded as running in this turn's batch, is
		 * committed before its first hook starts (on_flush): a crash
		 * must never leave a hook that ran recorded as one that never
		 * started, to run again after a restart as the same attempt. */
		.hold = first && ds->flush_ev && d->rowid,
	};
	struct hook_result res;
	struct hook_run *run = runner_start(ds->base, &p, on_hook_done, d, &res);
	if (run && p.hold)
		flush_soon(ds);
	/* Take the two per-hook entries back off. */
	while (d->env.n > base_n) {
		d->env.n--;
		d->env.bytes -= strlen(d->env.v[d->env.n]) + 1;
		free(d->env.v[d->env.n]);
		d->env.v[d->env.n] = NULL;
	}
	if (!run) {
		on_hook_done(&res, d);
		free(res.error);
	}
}

/* ---- admission and slots -------------------------------------------- */

static void start_running(struct dispatcher *ds, struct delivery *d)
{
	if (d->queued) {
		d->queued = false;
		ds->queued_sync--;
	}
	ds->running++;
	d->started_mono = now_mono_ms();
	run_next_hook(d);
}

static void slot_acquire(struct dispatcher *ds, struct delivery *d)
{
	/* Within release, the line is the way in: its loop starts d. */
	if (!ds->releasing && ds->running < ds->cfg->max_running && TAILQ_EMPTY(&ds->queue)) {
		start_running(ds, d);
		return;
	}
	TAILQ_INSERT_TAIL(&ds->queue, d, link);
}

/* Outcomes decided by the route alone: none, or one that cannot run.
 * Returns false when there are hooks to run. A route hookd could not read
 * for want of fds or memory is a 503: the sender may retry. */
static bool route_outcome(struct delivery *d)
{
	if (d->route.error) {
		set_outcome(d, d->route.may_pass ? 503 : d->cfg->status.def, "failed",
		            xstrdup(d->route.error));
		if (d->route.may_pass)
			d->out.retry_after = RETRY_AFTER_OVERLOAD;
		struct hook_outcome *h = result_append(d);
		h->rel = xstrdup(d->route.name ? d->route.name : "");
		h->res.exit_code = -1;
		h->res.error = xstrdup(d->route.error);
		return true;
	}
	if (!d->route.name) {
		set_outcome(d, 200, "unhandled", xstrdup("no hook for this event"));
		return true;
	}
	return false;
}

static void resolve(struct delivery *d)
{
	route_free(&d->route);
	if (route_resolve(d->ep->hooks_dir, d->event, &d->route) < 0 && !d->route.error) {
		d->route.may_pass = error_may_pass(errno);
		d->route.error = xasprintf("cannot read hooks dir %s: %s", d->ep->hooks_dir,
		                           strerror(errno));
	}
}

static void journal_headers(const struct delivery *d, struct journal_header **out)
{
	*out = xcalloc(d->nheaders ? d->nheaders : 1, sizeof(**out));
	for (size_t i = 0; i < d->nheaders; i++) {
		(*out)[i].name = d->headers[i].name;
		(*out)[i].value = d->headers[i].value;
	}
}

/* Records the delivery as received; for async, durably. */
static int record(struct dispatcher *ds, struct delivery *d)
{
	if (!ds->journal) {
		if (!d->id_generated)
			memid_set(ds, d, d->async ? DSTATE_QUEUED : DSTATE_RUNNING);
		return 0;
	}
	struct journal_header *hdrs;
	journal_headers(d, &hdrs);
	struct journal_new jn = {
		.endpoint = d->ep->name,
		.delivery_id = d->id,
		.event = d->event,
		.remote_addr = d->remote_addr,
		.async = d->async,
		.received_ms = d->received_ms,
		.headers = hdrs,
		.nheaders = d->nheaders,
		.body = d->body,
		.body_len = d->body_len,
	};
	d->rowid = journal_record(ds->journal, &jn);
	free(hdrs);
	if (!d->async)
		flush_soon(ds);
	return d->rowid > 0 ? 0 : -1;
}

static void reset_attempt(struct delivery *d)
{
	for (size_t i = 0; i < d->nresults; i++) {
		free(d->results[i].rel);
		free(d->results[i].res.error);
	}
	free(d->results);
	d->results = NULL;
	d->nresults = 0;
	d->next_hook = 0;
	free(d->out.error);
	memset(&d->out, 0, sizeof(d->out));
}

/* Waiting for a slot or a key, async: through the same line as sync. */
static void admit(struct dispatcher *ds, struct delivery *d)
{
	if (key_acquire(ds, d))
		slot_acquire(ds, d);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	struct dispatcher *ds = d->disp;
	TAILQ_REMOVE(&ds->waiting_retry, d, link);
	event_free(d->retry_timer);
	d->retry_timer = NULL;
	d->attempt++;
	reset_attempt(d);
	/* The journal keeps it retry_wait, now due, until the attempt starts
	 * (journal_attempt_started); recovery runs a due one like a queued
	 * one. (journal_requeue is for final deliveries: here it did nothing.) */
	admit(ds, d);
}

static void schedule_retry(struct delivery *d, int64_t delay_ms)
{
	struct dispatcher *ds = d->disp;
	TAILQ_INSERT_TAIL(&ds->waiting_retry, d, link);
	d->retry_timer = evtimer_new(ds->base, on_retry, d);
	struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
	evtimer_add(d->retry_timer, &tv);
}

static void answer_now(struct delivery *d, int http, const char *status, char *error,
                       int retry_after)
{
	set_outcome(d, http, status, error);
	d->out.retry_after = retry_after;
	if (http == 503)
		metrics_rejection(503, d->disp->draining ? "shutting_down" : "overloaded");
	delivery_log(d);
	complete(d);
}

void dispatch_submit(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg)
{
	d->disp = ds;
	d->done = done;
	d->done_arg = arg;
	d->started_mono = now_mono_ms();
	if (ds->draining) {
		answer_now(d, 503, "overloaded", xstrdup("shutting down"), RETRY_AFTER_OVERLOAD);
		return;
	}
	if (!d->id_generated) {
		enum delivery_state st;
		int attempts;
		if (id_lookup(ds, d, &st, &attempts) == 1) {
			if (st == DSTATE_SUCCEEDED) {
				answer_now(d, 200, "duplicate", NULL, 0);
				return;
			}
			if (delivery_state_pending(st)) {
				answer_now(d, 409, "running",
				           xstrdup("this delivery is still pending"),
				           RETRY_AFTER_PENDING);
				return;
			}
			d->attempt = attempts + 1;
		}
	}

	char err[128];
	if (d->async) {
		if (!delivery_build_env(d, err, sizeof(err))) {
			answer_now(d, 400, "rejected", xstrdup(err), 0);
			return;
		}
		if (ds->journal && journal_pending_count(ds->journal) >= ds->cfg->journal_max) {
			answer_now(d, 503, "overloaded", xstrdup("journal_max deliveries pending"),
			           RETRY_AFTER_OVERLOAD);
			return;
		}
		if (record(ds, d) < 0) {
			answer_now(d, 503, "overloaded", xstrdup("cannot write the journal"),
			           RETRY_AFTER_OVERLOAD);
			return;
		}
		/* Durably queued: the sender has its answer now, the run comes later. */
		set_outcome(d, 202, "accepted", NULL);
		delivery_log(d);
		if (d->done) {
			delivery_done_fn cb = d->done;
			d->done = NULL;
			cb(d, d->done_arg);
		}
		reset_attempt(d);
		admit(ds, d);
		return;
	}

	resolve(d);
	if (route_outcome(d)) {
		/* Nothing to run: no slot, but the outcome is journaled so a
		 * resend is a duplicate. */
		record(ds, d);
		attempt_over(d);
		return;
	}
	bool key_free = !d->key || !keyq_get(ds, d->key, false);
	bool now = key_free && ds->running < ds->cfg->max_running && TAILQ_EMPTY(&ds->queue);
	if (!now && ds->queued_sync >= ds->cfg->max_queued) {
		answer_now(d, 503, "overloaded", xstrdup("max_queued deliveries already waiting"),
		           RETRY_AFTER_OVERLOAD);
		return;
	}
	/* Something will run: the environment now, and the parsed payload
	 * goes (a delivery waiting for a slot holds the smaller of the two). */
	if (!delivery_build_env(d, err, sizeof(err))) {
		answer_now(d, 400, "rejected", xstrdup(err), 0);
		return;
	}
	record(ds, d);
	if (!now) {
		d->queued = true;
		ds->queued_sync++;
	}
	admit(ds, d);
}

/* ---- the journal's own deliveries: recovery and replay --------------- */

static const char *pending_header(void *ctx, const char *name)
{
	const struct journal_pending *p = ctx;
	size_t nl = strlen(name);
	for (size_t i = 0; i < p->nheaders; i++) {
		const char *h = p->headers[i];
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':')
			return h[nl + 1] == ' ' ? h + nl + 2 : h + nl + 1;
	}
	return NULL;
}

static struct delivery *delivery_from_journal(struct dispatcher *ds, struct journal_pending *p)
{
	const struct endpoint *ep = config_endpoint_by_name(ds->cfg, p->endpoint);
	if (!ep) {
		log_msg(LOG_LVL_ERROR, "journal: delivery %s is for endpoint '%s', which is no longer configured",
		        p->delivery_id, p->endpoint);
		return NULL;
	}
	json_object *root = NULL;
	const char *ct = pending_header(p, "Content-Type");
	enum content_kind kind = content_type_classify(ct);
	char err[256];
	struct verify_input in = {
		.ep = ep, .header = pending_header, .ctx = p,
		.body = p->body, .body_len = p->body_len, .now = now_wall_ms() / 1000,
	};
	if (!scheme_decode(&in, kind, &root, NULL, err, sizeof(err)))
		root = NULL;
	struct delivery *d = delivery_new(ds->cfg, ep, p->event, p->delivery_id, p->remote_addr,
	                                  p->body, p->body_len, root,
	                                  pending_header(p, "X-Northflank-Notification-Integration-Id"),
	                                  pending_header(p, "X-Northflank-Notification-Integration-Name"));
	json_object_put(root);
	delivery_pass_headers(d, pending_header, p);
	/* delivery_new stamped HOOK_RECEIVED_AT with the time of this call; a
	 * recovered or replayed delivery was received when it first came. */
	d->received_ms = p->received_ms;
	char name[ENV_META_NAME_MAX], ts[40];
	format_rfc3339_ms(d->received_ms, ts, sizeof(ts));
	snprintf(name, sizeof(name), "%sRECEIVED_AT", ds->cfg->env_prefix);
	envlist_add(&d->env, name, ts);
	d->rowid = p->rowid;
	d->async = true;
	d->attempt = p->attempts + 1;
	d->disp = ds;
	return d;
}

int dispatch_recover(struct dispatcher *ds)
{
	if (!ds->journal)
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	if (journal_recover(ds->journal, &v, &n) < 0)
		return -1;
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < n; i++) {
		struct delivery *d = delivery_from_journal(ds, &v[i]);
		if (d) {
			if (v[i].state == DSTATE_RETRY_WAIT && v[i].next_due_ms > now) {
				/* It keeps its due time; the attempt it waits for is its next. */
				d->attempt = v[i].attempts;
				schedule_retry(d, v[i].next_due_ms - now);
			} else {
				admit(ds, d);
			}
		}
		journal_pending_free(&v[i]);
	}
	free(v);
	if (n)
		log_msg(LOG_LVL_INFO, "journal: %zu pending async deliveries resumed", n);
	return 0;
}

int dispatch_replay(struct dispatcher *ds, int64_t rowid)
{
	if (!ds->journal)
		return 1;
	struct journal_pending p;
	memset(&p, 0, sizeof(p));
	int r = journal_get(ds->journal, rowid, &p);
	if (r != 0)
		return 1;
	int rc = 0;
	if (delivery_state_pending(p.state)) {
		rc = 2;
	} else if (!p.body_complete) {
		rc = 3;
	} else {
		struct delivery *d = delivery_from_journal(ds, &p);
		if (!d) {
			rc = 1;
		} else {
			journal_requeue(ds->journal, rowid);
			if (ds->draining) {
				/* Like every async delivery not yet started when
				 * hookd stops: journaled, run at the next start. */
				log_msg(LOG_LVL_INFO, "delivery %s (endpoint %s) queued for replay at the next start",
				        d->id, d->ep->name);
				delivery_free(d);
			} else {
				log_msg(LOG_LVL_INFO, "replaying delivery %s (endpoint %s)", d->id,
				        d->ep->name);
				admit(ds, d);
			}
		}
	}
	journal_pending_free(&p);
	return rc;
}

/* ---- the dispatcher ------------------------------------------------- */

struct dispatcher *dispatcher_new(struct event_base *base, struct config *cfg,
                                  struct journal *journal)
{
	struct dispatcher *ds = xcalloc(1, sizeof(*ds));
	ds->base = base;
	ds->cfg = config_ref(cfg);
	ds->journal = journal;
	if (journal) {
		ds->flush_ev = event_new(base, -1, 0, on_flush, ds);
		journal_set_batching(journal, true);
	}
	TAILQ_INIT(&ds->queue);
	TAILQ_INIT(&ds->waiting_retry);
	TAILQ_INIT(&ds->ids_fifo);
	return ds;
}

void dispatcher_set_config(struct dispatcher *ds, struct config *cfg)
{
	config_unref(ds->cfg);
	ds->cfg = config_ref(cfg);
	/* A larger max_running may let waiting deliveries start now. */
	while (ds->running < ds->cfg->max_running && !TAILQ_EMPTY(&ds->queue)) {
		struct delivery *next = TAILQ_FIRST(&ds->queue);
		TAILQ_REMOVE(&ds->queue, next, link);
		start_running(ds, next);
	}
}

/* Async deliveries not yet started stay journaled for the next start. */
void dispatcher_drain(struct dispatcher *ds)
{
	ds->draining = true;
	struct delivery *d, *next;
	/* First those waiting for a key, so that releasing keys below never
	 * hands one to an async delivery. */
	for (size_t b = 0; b < ARRAY_SIZE(ds->keys); b++) {
		for (struct keyq *k = ds->keys[b]; k; k = k->next) {
			struct delivery *w, *wn;
			for (w = TAILQ_FIRST(&k->waiting); w; w = wn) {
				wn = TAILQ_NEXT(w, key_link);
				if (w->async) {
					TAILQ_REMOVE(&k->waiting, w, key_link);
					delivery_free(w);
				}
			}
		}
	}
	for (d = TAILQ_FIRST(&ds->queue); d; d = next) {
		next = TAILQ_NEXT(d, link);
		if (d->async) {
			TAILQ_REMOVE(&ds->queue, d, link);
			/* It held its key while waiting for a slot; a sync delivery
			 * waiting for that key may take it now. */
			key_release(ds, d);
			next = TAILQ_FIRST(&ds->queue);
			delivery_free(d);
		}
	}
	while ((d = TAILQ_FIRST(&ds->waiting_retry))) {
		TAILQ_REMOVE(&ds->waiting_retry, d, link);
		delivery_free(d);
	}
}

bool dispatcher_idle(const struct dispatcher *ds)
{
	return ds->running == 0 && ds->queued_sync == 0;
}

int dispatcher_running(const struct dispatcher *ds)
{
	return ds->running;
}

int dispatcher_queued(const struct dispatcher *ds)
{
	int n = 0;
	const struct delivery *d;
	TAILQ_FOREACH(d, &ds->queue, link)
		n++;
	return n;
}

void dispatcher_free(struct dispatcher *ds)
{
	if (!ds)
		return;
	dispatcher_drain(ds);
	if (ds->journal)
		journal_set_batching(ds->journal, false);
	if (ds->flush_ev)
		event_free(ds->flush_ev);
	for (size_t b = 0; b < ARRAY_SIZE(ds->keys); b++) {
		while (ds->keys[b]) {
			struct keyq *k = ds->keys[b];
			ds->keys[b] = k->next;
			free(k->key);
			free(k);
		}
	}
	for (size_t b = 0; b < MEMORY_BUCKETS; b++) {
		while (ds->ids[b]) {
			struct memid *m = ds->ids[b];
			ds->ids[b] = m->next;
			free(m);
		}
	}
	config_unref(ds->cfg);
	free(ds);
}
