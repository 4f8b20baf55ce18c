/*
 * The journal's front (journal.h): picks the backend a config names
 * (SQLite in state_dir, or PostgreSQL at `journal`), and hands every call
 * to it (journal_backend.h). What a backend leaves out is answered here:
 * a journal without group commit has nothing to batch or sync, one that
 * is not shared is always up and always a delivery's turn.
 */
#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal_backend.h"
#include "log.h"
#include "scheme.h"
#include "util.h"

static const char *const state_names[] = {
	[DSTATE_QUEUED] = "queued",
	[DSTATE_RUNNING] = "running",
	[DSTATE_RETRY_WAIT] = "retry_wait",
	[DSTATE_SUCCEEDED] = "succeeded",
	[DSTATE_FAILED] = "failed",
	[DSTATE_SKIPPED] = "skipped",
};

const char *delivery_state_name(enum delivery_state s)
{
	if ((unsigned)s < ARRAY_SIZE(state_names))
		return state_names[s];
	return "unknown";
}

bool delivery_state_pending(enum delivery_state s)
{
	return s == DSTATE_QUEUED || s == DSTATE_RUNNING || s == DSTATE_RETRY_WAIT;
}

void journal_pending_free(struct journal_pending *p)
{
	if (!p)
		return;
	free(p->endpoint);
	free(p->delivery_id);
	free(p->event);
	free(p->remote_addr);
	free(p->key);
	free(p->body);
	for (size_t i = 0; i < p->nheaders; i++)
		free(p->headers[i]);
	free(p->headers);
	memset(p, 0, sizeof(*p));
}

/* ---- shared by the backends (journal_backend.h) ---- */

bool journal_pending_async(int state, bool async)
{
	return async && delivery_state_pending((enum delivery_state)state);
}

/* s, with any CR or LF in it turned into a space, so that each header
 * stays one line (a header from elsewhere than the HTTP parser may hold one). */
static void put_one_line(struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);
	size_t start = sb->len;
	sb_append(sb, s, n);
	char *end = sb->buf + sb->len;
	for (char *p = sb->buf + start; (p = memchr(p, '\r', (size_t)(end - p)));)
		*p++ = ' ';
	for (char *p = sb->buf + start; (p = memchr(p, '\n', (size_t)(end - p)));)
		*p++ = ' ';
}

char *journal_headers_text(const struct journal_new *d)
{
	struct strbuf sb;
	sb_init(&sb);
	/* A request's headers are a few hundred bytes: room for most at once. */
	sb_reserve(&sb, 512);
	for (size_t i = 0; i < d->nheaders; i++) {
		const struct journal_header *h = &d->headers[i];
		if (!h->name || header_is_credential(h->name, NULL))
			continue;
		put_one_line(&sb, h->name);
		sb_append(&sb, ": ", 2);
		put_one_line(&sb, h->value ? h->value : "");
		sb_putc(&sb, '\n');
	}
	return sb_steal(&sb);
}

/* ---- opening ---- */

void journal_opts_from_config(const struct config *cfg, struct journal_opts *o)
{
	*o = (struct journal_opts){
		.state_dir = cfg->state_dir,
		.url = cfg->journal_url,
		.password = cfg->journal_password,
		.instance = cfg->instance,
		.lease_ms = cfg->lease_ms,
		.body_max = cfg->journal_body_max,
		.keep_ms = cfg->journal_keep_ms,
		.max_rows = cfg->journal_max,
	};
}

bool journal_configured(const struct config *cfg)
{
	return cfg->state_dir || cfg->journal_url;
}

static const struct journal_ops *backend_of(const struct journal_opts *o)
{
	return o->url ? &journal_pg_ops : &journal_sqlite_ops;
}

struct journal *journal_open(const struct journal_opts *o, char *err, size_t errlen)
{
	return backend_of(o)->open(o, false, err, errlen);
}

struct journal *journal_open_readonly(const struct journal_opts *o, char *err, size_t errlen)
{
	return backend_of(o)->open(o, true, err, errlen);
}

bool journal_missing(const struct journal_opts *o)
{
	return !o->url && journal_sqlite_missing(o->state_dir);
}

const char *journal_backend_name(const struct journal *j)
{
	return j->ops->name;
}

void journal_close(struct journal *j)
{
	if (j)
		j->ops->close(j);
}

/* ---- group commit: nothing to do for a backend whose writes are durable
 * when they return ---- */

void journal_set_batching(struct journal *j, bool on)
{
	if (!j->ops->set_batching)
		return;
	if (!on)
		journal_flush(j);
	j->ops->set_batching(j, on);
}

/*
 * -1 also when a batch was lost since the last flush, even if a later one
 * committed: the caller's hooks held for their records' commit must not
 * start. Said once.
 */
int journal_flush(struct journal *j)
{
	if (!j || !j->ops->commit_batch)
		return 0;
	int rc = j->ops->commit_batch(j);
	if (j->lost_unflushed)
		rc = -1;
	j->lost_unflushed = false;
	return rc;
}

void journal_batch_lost(struct journal *j)
{
	j->lost_unflushed = true;
}

void journal_on_interrupted(struct journal *j, journal_interrupted_fn fn, void *arg)
{
	j->interrupted = fn;
	j->interrupted_arg = arg;
}

void journal_interrupted(struct journal *j, const char *endpoint, const char *event)
{
	if (j->interrupted)
		j->interrupted(endpoint, event, j->interrupted_arg);
}

bool journal_batches(const struct journal *j)
{
	return j && j->ops->set_batching;
}

uint64_t journal_batch_id(const struct journal *j)
{
	return j->ops->batch_id ? j->ops->batch_id(j) : 0;
}

uint64_t journal_committed_id(const struct journal *j)
{
	return j->ops->committed_id ? j->ops->committed_id(j) : 0;
}

uint64_t journal_losses(const struct journal *j)
{
	return j->ops->losses ? j->ops->losses(j) : 0;
}

int journal_sync_fd(const struct journal *j)
{
	return j->ops->sync_fd ? j->ops->sync_fd(j) : -1;
}

void journal_defer_checkpoints(struct journal *j)
{
	if (j->ops->defer_checkpoints)
		j->ops->defer_checkpoints(j);
}

int journal_wal_frames(const struct journal *j)
{
	return j->ops->wal_frames ? j->ops->wal_frames(j) : 0;
}

struct journal_checkpointer *journal_checkpointer_open(const struct journal *j, char *err,
                                                       size_t errlen)
{
	if (!j->ops->checkpointer_open) {
		snprintf(err, errlen, "the %s journal has no checkpoints", j->ops->name);
		return NULL;
	}
	return j->ops->checkpointer_open(j, err, errlen);
}

int journal_checkpoint_here(struct journal *j)
{
	return j->ops->checkpoint_here ? j->ops->checkpoint_here(j) : 0;
}

/* ---- the daemon's calls ---- */

enum result journal_lookup(struct journal *j, const char *endpoint, const char *delivery_id,
                           enum delivery_state *state, int *attempts, int64_t *rowid)
{
	return j->ops->lookup(j, endpoint, delivery_id, state, attempts, rowid);
}

int64_t journal_record(struct journal *j, const struct journal_new *d)
{
	return j->ops->record(j, d);
}

int64_t journal_record_final(struct journal *j, const struct journal_new *d,
                             const struct journal_attempt *a, enum delivery_state state)
{
	if (j->ops->record_final)
		return j->ops->record_final(j, d, a, state);
	int64_t rowid = j->ops->record(j, d);
	if (rowid <= 0)
		return rowid;
	int rc = j->ops->attempt_finished(j, rowid, a, state, 0);
	if (rc < 0) {
		struct log_delivery who = {d->endpoint, d->event, d->delivery_id, a->attempt};
		journal_log_unrecorded(&who, rc);
	}
	return rowid;
}

void journal_log_interrupted(const struct log_delivery *who, const char *why, bool async,
                             const char *instance)
{
	struct log_kv kv[] = {
		{"state", async ? "queued" : "failed"}, {"instance", instance}, {"error", why},
	};
	log_about(LOG_LVL_WARN, "delivery interrupted", who, kv, ARRAY_SIZE(kv));
}

void journal_log_unrecorded(const struct log_delivery *who, int rc)
{
	if (rc == JOURNAL_LOST)
		log_about(LOG_LVL_WARN, "another instance took it over (this one's lease ran out); "
		          "the attempt's outcome is not recorded", who, NULL, 0);
	else if (rc == JOURNAL_GONE)
		log_about(LOG_LVL_ERROR, "journal: the delivery's row is gone (lost with a batch); "
		          "the attempt's outcome is not recorded", who, NULL, 0);
	else
		log_about(LOG_LVL_ERROR, "journal: cannot record the outcome", who, NULL, 0);
}

int journal_attempt_started(struct journal *j, int64_t rowid, int attempt, int64_t started_ms)
{
	return j->ops->attempt_started(j, rowid, attempt, started_ms);
}

int journal_attempt_finished(struct journal *j, int64_t rowid, const struct journal_attempt *a,
                             enum delivery_state state, int64_t next_due_ms)
{
	return j->ops->attempt_finished(j, rowid, a, state, next_due_ms);
}

int journal_client_gone(struct journal *j, int64_t rowid, int attempt)
{
	return j->ops->client_gone(j, rowid, attempt) < 0 ? -1 : 0;
}

int journal_hand_over(struct journal *j, int64_t rowid, bool running, const unsigned char *body,
                      size_t body_len)
{
	return j->ops->hand_over(j, rowid, running, body, body_len);
}

enum result journal_requeue(struct journal *j, int64_t rowid)
{
	return j->ops->requeue(j, rowid);
}

int journal_recover(struct journal *j, struct journal_pending **out, size_t *n)
{
	return j->ops->recover(j, out, n);
}

enum result journal_get(struct journal *j, int64_t rowid, struct journal_pending *out)
{
	return j->ops->get(j, rowid, out);
}

enum result journal_find(struct journal *j, const char *endpoint, const char *delivery_id,
                         int64_t *rowid)
{
	return j->ops->find(j, endpoint, delivery_id, rowid);
}

int journal_prune(struct journal *j, int64_t now_ms)
{
	return j->ops->prune(j, now_ms);
}

int64_t journal_pending_count(struct journal *j)
{
	return j->ops->pending_count(j);
}

int64_t journal_pending_bytes(struct journal *j)
{
	return j->ops->pending_bytes(j);
}

/* ---- reading back ---- */

enum result journal_list(struct journal *j, int64_t since_ms, bool failed_only,
                         bool (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	return j->ops->list(j, since_ms, failed_only, visit, arg);
}

enum result journal_read(struct journal *j, int64_t rowid,
                         void (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	return j->ops->read(j, rowid, visit, arg);
}

enum result journal_read_attempts(struct journal *j, int64_t rowid,
                                  const struct journal_attempt_visitor *v)
{
	return j->ops->read_attempts(j, rowid, v);
}

enum result journal_endpoints_of(struct journal *j, const char *delivery_id,
                                 void (*visit)(const char *endpoint, void *arg), void *arg)
{
	return j->ops->endpoints_of(j, delivery_id, visit, arg);
}

enum result journal_query(struct journal *j, const struct journal_filter *f,
                          bool (*visit)(const struct journal_row *r, void *arg), void *arg)
{
	return j->ops->query(j, f, visit, arg);
}

/* ---- several instances ---- */

bool journal_shared(const struct journal *j)
{
	return j && j->ops->adopt != NULL;
}

bool journal_up(struct journal *j)
{
	return !j || !j->ops->up || j->ops->up(j);
}

int journal_heartbeat(struct journal *j)
{
	return j->ops->heartbeat ? j->ops->heartbeat(j) : 0;
}

int journal_reconnect_fd(struct journal *j)
{
	return j->ops->reconnect_fd ? j->ops->reconnect_fd(j) : -1;
}

int64_t journal_reconnect_lag_ms(struct journal *j)
{
	return j->ops->reconnect_lag_ms ? j->ops->reconnect_lag_ms(j) : 0;
}

int journal_release(struct journal *j)
{
	return j && j->ops->release ? j->ops->release(j) : -1;
}

int journal_adopt(struct journal *j, size_t max, struct journal_pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return j->ops->adopt ? j->ops->adopt(j, max, out, n) : 0;
}

int journal_steal(struct journal *j, size_t max, int64_t queued_before_ms,
                  struct journal_pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return j->ops->steal ? j->ops->steal(j, max, queued_before_ms, out, n) : 0;
}

void journal_let_go(struct journal *j, int64_t rowid)
{
	if (j && j->ops->let_go)
		j->ops->let_go(j, rowid);
}

int journal_take_turn(struct journal *j, int64_t rowid, const char *key, int attempt,
                      int64_t started_ms)
{
	if (j->ops->take_turn)
		return j->ops->take_turn(j, rowid, key, attempt, started_ms);
	return journal_attempt_started(j, rowid, attempt, started_ms) < 0 ? RESULT_ERROR
	                                                                   : RESULT_OK;
}

enum result journal_import(struct journal *j, const struct journal_entry *e,
                           const struct journal_attempt *attempts, size_t nattempts)
{
	if (!j->ops->import) {
		log_msg(LOG_LVL_ERROR, "journal: the %s journal cannot import", j->ops->name);
		return RESULT_ERROR;
	}
	return j->ops->import(j, e, attempts, nattempts);
}
