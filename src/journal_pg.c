/*
 * The PostgreSQL journal backend (journal_backend.h): one database shared
 * by several hookd instances (README "Running on several machines").
 *
 * It stores what the SQLite backend stores, in tables prefixed hookd_, and
 * behaves the same way call for call (states, attempts, recovery's
 * "interrupted" runs, bodies cut to body_max once final). What sharing adds:
 *
 * - Leases and fencing. An instance holds one lease (its row in
 *   hookd_instances: lease_until, renewed by the heartbeat in one statement
 *   whatever it holds); a pending delivery is held by its owner while the
 *   owner's lease lasts, and owner NULL means held by nobody (let go, or
 *   imported). Each take of a delivery (record, requeue, recover, adopt)
 *   bumps its fence. This process remembers the fence of every row it holds
 *   (a small open-addressing map), and every write about a delivery names
 *   it: "WHERE id = $1 AND fence = $2 AND owner = me". No row matched: the
 *   delivery was taken by another instance, nothing is written, the call
 *   says JOURNAL_LOST. Leases use the database's clock; the *_ms columns
 *   are the caller's wall clock, as in SQLite.
 * - Outages. A broken connection makes the journal "down": every call fails
 *   at once until a backoff (250 ms doubling to 10 s) has passed, and the
 *   next call (or the heartbeat) reconnects. Each call is one transaction,
 *   so a failed write is never half done.
 * - Group commit. While batching (journal.h), journal_record (of a
 *   delivery without a serialization key) joins one open transaction
 *   that journal_flush commits: the acceptances of a turn
 *   of the daemon's loop share one commit, and so one flush of
 *   PostgreSQL's WAL, which is what a commit waits for. Every other write
 *   commits the batch first and is durable when it returns, an outcome
 *   above all (a lost one would be run again; outbox.h). A statement that
 *   fails inside the batch, or the connection, loses the whole batch (the
 *   server aborts the transaction): the caller answers its deliveries 503.
 * - Serialization keys across instances (take_turn), under an advisory
 *   transaction lock on the key's hash.
 *
 * libpq is loaded with dlopen when a journal is first opened (dynload.h),
 * like libsqlite3: a daemon that does not use PostgreSQL never maps it.
 * Calls are synchronous, on the caller's thread (libpq's blocking API),
 * but for a reconnect, which runs on a thread of its own (ensure_up).
 *
 * The backend's files: this one (the schema, open and close, the write
 * path, turns, pruning and counts, the ops table); journal_pg_connect.c
 * (libpq, the connection, outages and reconnects, running statements,
 * transactions and the batch);
 * journal_pg_lease.c (the fences held, this instance's lease);
 * journal_pg_take.c (recovery, adoption, stealing); journal_pg_read.c
 * (reading back, import); journal_pg_statements.c (the statements of every
 * delivery, prepared once a connection); journal_pg_private.h, what they
 * share.
 */
#include "journal_pg_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the schema ---- */

/* Bump when the schema changes, and add a step in schema_setup(). */
#define PG_SCHEMA_VERSION 2

/* Advisory lock keys (the one-bigint space; take_turn uses the two-int
 * space, which never meets these). "hookd" in ASCII, then a number. */
#define LOCK_SCHEMA 0x686f6f6b640001LL
#define LOCK_PRUNE 0x686f6f6b640002LL
/* take_turn's: LOCK_KEY_CLASS (journal_pg_private.h) */

/* journal_max and journal_max_bytes are asked on every async delivery:
 * counted in the database at most this often, adjusted by this process's
 * own writes in between. */
#define COUNT_EVERY_MS 250

/*
 * States are stored as enum delivery_state values, as in SQLite ("state <
 * 3": pending). id first in the unique key: `show ID` without endpoint.
 */
static const char schema_v1[] =
	"CREATE TABLE hookd_schema (version int NOT NULL);"
	"CREATE SEQUENCE hookd_queue_seq;"
	"CREATE TABLE hookd_deliveries ("
	" id bigserial PRIMARY KEY,"
	" endpoint text NOT NULL,"
	" delivery_id text NOT NULL,"
	" event text NOT NULL,"
	" remote_addr text NOT NULL DEFAULT '',"
	" async boolean NOT NULL,"
	" state int NOT NULL,"
	" attempts int NOT NULL DEFAULT 0,"
	" received_ms bigint NOT NULL,"
	" updated_ms bigint NOT NULL,"
	" next_due_ms bigint NOT NULL DEFAULT 0,"
	" run_attempt int NOT NULL DEFAULT 0,"
	" run_started_ms bigint NOT NULL DEFAULT 0,"
	" http int NOT NULL DEFAULT 0,"
	" status text,"
	" error text,"
	" headers text NOT NULL DEFAULT '',"
	" body bytea NOT NULL DEFAULT '',"
	" body_len bigint NOT NULL DEFAULT 0,"
	" body_cut boolean NOT NULL DEFAULT false,"
	" replay_attempt int NOT NULL DEFAULT 0,"
	" serial_key text,"                 /* its serialization key, NULL: none */
	" owner text,"                      /* the instance holding it while pending */
	" fence bigint NOT NULL DEFAULT 0," /* bumped on every take */
	" instance text,"                   /* who recorded it */
	/* Its place in its key's line: taken again when a resend or a replay
	 * queues it again, so that it goes behind what came meanwhile. */
	" queued_seq bigint NOT NULL DEFAULT nextval('hookd_queue_seq'),"
	" UNIQUE (delivery_id, endpoint));"
	"CREATE INDEX hookd_deliveries_pending ON hookd_deliveries (async, received_ms)"
	" WHERE state < 3;"
	"CREATE INDEX hookd_deliveries_received ON hookd_deliveries (received_ms);"
	"CREATE INDEX hookd_deliveries_state_received ON hookd_deliveries (state, received_ms);"
	"CREATE INDEX hookd_deliveries_endpoint_received"
	" ON hookd_deliveries (endpoint, received_ms);"
	"CREATE INDEX hookd_deliveries_key ON hookd_deliveries (serial_key, queued_seq)"
	" WHERE state < 3 AND serial_key IS NOT NULL;"
	"CREATE INDEX hookd_deliveries_owner ON hookd_deliveries (owner) WHERE state < 3;"
	/* journal_steal, once a second on every instance with a free slot:
	 * the oldest queued async rows first, without sorting the backlog. */
	"CREATE INDEX hookd_deliveries_queued ON hookd_deliveries (queued_seq)"
	" WHERE state = 0 AND async;"
	/* One lease an instance: its deliveries are held while it lasts. */
	"CREATE TABLE hookd_instances (name text PRIMARY KEY, lease_until timestamptz NOT NULL);"
	"CREATE TABLE hookd_attempts ("
	" delivery bigint NOT NULL REFERENCES hookd_deliveries (id) ON DELETE CASCADE,"
	" attempt int NOT NULL,"
	" started_ms bigint,"
	" finished_ms bigint," /* NULL: interrupted, end unknown */
	" http int NOT NULL DEFAULT 0,"
	" status text NOT NULL,"
	" error text,"
	" replay boolean NOT NULL DEFAULT false,"
	" instance text," /* who ran it */
	" PRIMARY KEY (delivery, attempt));"
	"CREATE TABLE hookd_hook_runs ("
	" delivery bigint NOT NULL REFERENCES hookd_deliveries (id) ON DELETE CASCADE,"
	" attempt int NOT NULL,"
	" seq int NOT NULL,"
	" hook text NOT NULL,"
	" exit int,"
	" signal text,"
	" ms bigint NOT NULL DEFAULT 0,"
	" error text,"
	" output bytea,"
	" PRIMARY KEY (delivery, attempt, seq));"
	"INSERT INTO hookd_schema (version) VALUES (1);";

/*
 * Version 2: an attempt whose answer never reached its sender (it hung up
 * first: journal_attempt.client_gone). An instance of version 1 refuses
 * to open the journal once one of version 2 has migrated it; one already
 * running goes on (the column has a default), its attempts unmarked.
 */
static const char schema_v2[] =
	"ALTER TABLE hookd_attempts ADD COLUMN client_gone boolean NOT NULL DEFAULT false;"
	"UPDATE hookd_schema SET version = 2;";

/* ---- the handle ---- */

/* The backend's handle behind the front's (journal_backend.h). */
struct pg_journal *pg_of(struct journal *j)
{
	return (struct pg_journal *)j;
}

/* ---- open and close ---- */

static int schema_setup(struct pg_journal *j, char *err, size_t errlen)
{
	char lock[96];
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%lld)", (long long)LOCK_SCHEMA);
	if (tx_begin(j) < 0 || run_cmd(j, "schema lock", lock, NULL) < 0)
		goto fail;
	PGresult *r = run(j, "schema", "SELECT to_regclass('hookd_schema') IS NOT NULL", NULL);
	if (!r)
		goto fail;
	bool exists = col_bool(r, 0, 0);
	PQclear(r);
	int version = 0;
	if (exists) {
		r = run(j, "schema", "SELECT coalesce(max(version), 0) FROM hookd_schema", NULL);
		if (!r)
			goto fail;
		version = col_int(r, 0, 0);
		PQclear(r);
	}
	if (version > PG_SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "PostgreSQL %s: the journal's schema version %d is newer than this hookd's (%d)",
		         j->where, version, PG_SCHEMA_VERSION);
		tx_rollback(j);
		return -1;
	}
	if (version == 0 && run_cmd(j, "schema", schema_v1, NULL) < 0)
		goto fail;
	if (version < 2 && run_cmd(j, "schema", schema_v2, NULL) < 0)
		goto fail;
	/* Later: `if (version < 3) ...`, its step updating the version row. */
	j->schema = PG_SCHEMA_VERSION;
	if (tx_commit(j) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "PostgreSQL %s: cannot set up the journal's schema (logged)", j->where);
	tx_rollback(j);
	return -1;
}

/* Read-only: what the database holds, without changing it. */
static int schema_check(struct pg_journal *j, char *err, size_t errlen)
{
	PGresult *r = run(j, "schema", "SELECT to_regclass('hookd_schema') IS NOT NULL", NULL);
	int version = 0;
	if (r && col_bool(r, 0, 0)) {
		PQclear(r);
		r = run(j, "schema", "SELECT coalesce(max(version), 0) FROM hookd_schema", NULL);
		version = r ? col_int(r, 0, 0) : 0;
	}
	if (!r) {
		snprintf(err, errlen, "PostgreSQL %s: cannot read the journal's schema", j->where);
		return -1;
	}
	PQclear(r);
	if (version > PG_SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "PostgreSQL %s: the journal's schema version %d is newer than this hookd's (%d)",
		         j->where, version, PG_SCHEMA_VERSION);
		return -1;
	}
	j->noschema = version == 0;
	j->schema = version;
	return 0;
}

static void pg_close(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	if (!j)
		return;
	commit_batch(j);
	if (j->conn)
		PQfinish(j->conn);
	reconnect_end(j);
	free(j->url);
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j->instance);
	free(j->where);
	free(j->fences.slots);
	free(j->batch_rows);
	free(j);
}

static struct journal *pg_open(const struct journal_opts *o, bool readonly, char *err,
                               size_t errlen)
{
	if (!o->url) {
		snprintf(err, errlen, "no PostgreSQL connection string");
		return NULL;
	}
	if (!pq_load(err, errlen))
		return NULL;
	struct pg_journal *j = xcalloc(1, sizeof(*j));
	j->base.ops = &journal_pg_ops;
	j->url = xstrdup(o->url);
	j->password = o->password ? xstrdup(o->password) : NULL;
	j->instance = xstrdup(o->instance && *o->instance ? o->instance : "hookd");
	j->readonly = readonly;
	j->body_max = o->body_max > INT64_MAX ? INT64_MAX : o->body_max;
	j->keep_ms = o->keep_ms;
	j->max_rows = o->max_rows;
	j->lease_ms = o->lease_ms > 0 ? o->lease_ms : 30000;
	j->backoff_ms = BACKOFF_MIN_MS;
	char why[512];
	j->conn = connect_now(j->url, j->password, j->readonly, &j->where, why, sizeof(why));
	if (!j->conn) {
		snprintf(err, errlen, "PostgreSQL %s: %s", j->where ? j->where : "?", why);
		goto fail;
	}
	/* Reached again, a reconnect waits out the backoff it is in, then
	 * connects (every reconnect has these settings: the same string). */
	int64_t connect_ms = connect_bound_ms(j->conn);
	j->reconnect_lag_ms = connect_ms < 0 ? -1 : BACKOFF_MAX_MS + connect_ms;
	if ((readonly ? schema_check(j, err, errlen) : schema_setup(j, err, errlen)) < 0)
		goto fail;
	/* Held from the first record on, before the first heartbeat. */
	if (!readonly && renew_lease(j) < 0) {
		snprintf(err, errlen, "PostgreSQL %s: cannot take this instance's lease (logged)",
		         j->where);
		goto fail;
	}
	return &j->base;
fail:
	pg_close(&j->base);
	return NULL;
}

/* ---- shared helpers ---- */

/* A read's start: connected (or reconnected after the backoff), the batch
 * committed first, so that a read that fails (a statement timeout on the
 * deliveries page's search) does not take the batch's acceptances with it.
 * pg_lookup alone reads inside the batch. */
bool usable(struct pg_journal *j)
{
	if (!ensure_up(j))
		return false;
	commit_batch(j);
	return ensure_up(j);
}

/* A write of its own, durable when it returns: the batch is committed
 * first (if that fails the batch is lost, and this write goes on alone). */
bool writable(struct pg_journal *j)
{
	if (j->readonly || j->noschema || !ensure_up(j))
		return false;
	commit_batch(j);
	return ensure_up(j);
}

/* A fenced write's start, once fence_find found rowid held: writable(),
 * whose commit of the batch may lose it, and with it its rows' fences
 * (fence_del moves slots), so the fence is looked up again. -1: not
 * writable; JOURNAL_LOST: no longer held. */
static int writable_fenced(struct pg_journal *j, int64_t rowid, struct fence_slot **f)
{
	if (!writable(j))
		return -1;
	*f = fence_find(&j->fences, rowid);
	return *f ? 0 : JOURNAL_LOST;
}

/* A row's change of pending async state, once committed: the counts follow
 * until the next count in the database. */
void count_change(struct pg_journal *j, bool was, int64_t old_len, bool is,
                         int64_t new_len)
{
	j->pending += (int64_t)is - (int64_t)was;
	j->pending_bytes += (is ? new_len : 0) - (was ? old_len : 0);
}

/* ---- the daemon's calls ---- */

static enum result pg_lookup(struct journal *jj, const char *endpoint, const char *delivery_id,
                             enum delivery_state *state, int *attempts, int64_t *rowid)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_UNKNOWN;
	/* In the batch: it sees the batch's own records (a resend in the
	 * same turn), where usable() would commit them first. */
	if (!ensure_up(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_text(&p, endpoint);
	p_text(&p, delivery_id);
	PGresult *r = run_prepared(j, "lookup", STMT_LOOKUP, &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	enum result ret = RESULT_UNKNOWN;
	if (PQntuples(r) > 0) {
		if (rowid)
			*rowid = col_i64(r, 0, 0);
		if (state)
			*state = (enum delivery_state)col_int(r, 0, 1);
		if (attempts)
			*attempts = col_int(r, 0, 2);
		ret = RESULT_OK;
	}
	PQclear(r);
	return ret;
}

static int64_t pg_record(struct journal *jj, const struct journal_new *d)
{
	struct pg_journal *j = pg_of(jj);
	/* A delivery with a serialization key commits at once: its place in
	 * its key's line (queued_seq, taken here) must be seen by the other
	 * instances' take_turn before a later delivery's, which a batch open
	 * for up to 5 ms would not ensure. */
	if (j->readonly || !d->endpoint || !d->delivery_id || !d->event ||
	    !(d->key ? writable(j) : batch_join(j)))
		return -1;
	/* Shared, a keyed sync delivery waits for its turn (take_turn); one
	 * that waits for a slot has not started either (attempt_started). */
	enum delivery_state st = d->async || d->key || d->waits ? DSTATE_QUEUED : DSTATE_RUNNING;
	/* A sync delivery's body is only read once final: stored already cut. */
	size_t keep = d->body_len;
	bool cut = false;
	if (!d->async && keep > j->body_max) {
		keep = (size_t)j->body_max;
		cut = true;
	}
	char *headers = journal_headers_text(d);
	struct params p = {0};
	p_text(&p, d->endpoint);
	p_text(&p, d->delivery_id);
	p_text(&p, d->event);
	p_text(&p, d->remote_addr);
	p_bool(&p, d->async);
	p_int(&p, st);
	p_int(&p, d->received_ms);
	p_text(&p, headers);
	p_bytes(&p, d->body, keep);
	p_int(&p, (int64_t)d->body_len);
	p_bool(&p, cut);
	p_text(&p, d->key);
	p_text(&p, j->instance);
	p_int(&p, now_wall_ms());
	PGresult *r = run_prepared(j, "record", STMT_RECORD, &p);
	p_free(&p);
	free(headers);
	if (!r)
		return -1;
	int64_t rowid = JOURNAL_LOST;
	if (PQntuples(r) == 1) {
		rowid = col_i64(r, 0, 0);
		fence_put(&j->fences, rowid, col_i64(r, 0, 1), col_int(r, 0, 2));
		batch_add_row(j, rowid);
		/* The row it replaced, if any, was FAILED: not pending. */
		count_change(j, false, 0, journal_pending_async(st, d->async), (int64_t)d->body_len);
	}
	PQclear(r);
	return rowid;
}

/* After a fenced write that changed nothing: whether the row is still this
 * instance's under that fence (1: the write's other conditions failed), or
 * not (0: lost; its fence forgotten); -1: the question failed. */
static int still_held(struct pg_journal *j, const char *what, int64_t rowid, int64_t fence)
{
	struct params q = {0};
	p_int(&q, rowid);
	p_int(&q, fence);
	p_text(&q, j->instance);
	PGresult *r = run(j, what,
	                  "SELECT 1 FROM hookd_deliveries WHERE id = $1::bigint AND fence = $2::bigint"
	                  " AND owner = $3::text",
	                  &q);
	p_free(&q);
	if (!r)
		return -1;
	bool held = PQntuples(r) == 1;
	PQclear(r);
	if (!held)
		fence_del(&j->fences, rowid);
	return held;
}

static int mark_running(struct pg_journal *j, struct fence_slot *f, int attempt,
                        int64_t started_ms, const char *key)
{
	int64_t rowid = f->rowid, fence = f->fence;
	struct params p = {0};
	p_int(&p, rowid);
	p_int(&p, fence);
	p_int(&p, attempt);
	p_int(&p, started_ms);
	p_text(&p, j->instance);
	p_text(&p, key);
	PGresult *r = run_prepared(j, "attempt started", STMT_STARTED, &p);
	p_free(&p);
	if (!r)
		return -1;
	int64_t n = cmd_tuples(r);
	PQclear(r);
	if (n == 0) {
		/* Still held, but this instance's lease ran out (a pause, an
		 * outage): not now; its heartbeat renews it, or another instance
		 * adopts the row and this one finds it lost. (A final row is
		 * held by nobody.) */
		return still_held(j, "attempt started", rowid, fence) == 0 ? JOURNAL_LOST : -1;
	}
	f = fence_find(&j->fences, rowid);
	if (f)
		f->run_attempt = attempt;
	return 0;
}

static int pg_attempt_started(struct journal *jj, int64_t rowid, int attempt, int64_t started_ms)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly)
		return -1;
	struct fence_slot *f = fence_find(&j->fences, rowid);
	if (!f)
		return JOURNAL_LOST;
	/* The sync path: journal_record already marked this attempt running. */
	if (f->run_attempt == attempt)
		return 0;
	int rc = writable_fenced(j, rowid, &f);
	if (rc < 0)
		return rc;
	return mark_running(j, f, attempt, started_ms, NULL);
}

static int insert_hooks(struct pg_journal *j, int64_t rowid, const struct journal_attempt *a)
{
	for (size_t i = 0; i < a->nhooks; i++) {
		const struct journal_hook *h = &a->hooks[i];
		struct params p = {0};
		p_int(&p, rowid);
		p_int(&p, a->attempt);
		p_int(&p, (int64_t)i + 1);
		p_text(&p, h->hook ? h->hook : "");
		if (h->exit_code >= 0)
			p_int(&p, h->exit_code);
		else
			p_null(&p);
		p_text(&p, h->signal);
		p_int(&p, h->ms);
		p_text(&p, h->error);
		if (h->output)
			p_bytes(&p, h->output, h->output_len);
		else
			p_null(&p);
		int rc = run_prepared_cmd(j, "record hook", STMT_HOOK, &p);
		p_free(&p);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* replay: 1 yes, 0 no, -1 as the row's replay_attempt says. */
int insert_attempt(struct pg_journal *j, int64_t rowid, const struct journal_attempt *a,
                          int replay, const char *instance)
{
	struct params p = {0};
	p_int(&p, rowid);
	p_int(&p, a->attempt);
	p_int(&p, a->started_ms);
	if (a->finished_ms)
		p_int(&p, a->finished_ms);
	else
		p_null(&p);
	p_int(&p, a->http);
	p_text(&p, a->status ? a->status : "");
	p_text(&p, a->error);
	if (replay >= 0)
		p_bool(&p, replay > 0);
	else
		p_null(&p);
	p_text(&p, instance);
	p_bool(&p, a->client_gone);
	int rc = run_prepared_cmd(j, "record attempt", STMT_ATTEMPT, &p);
	p_free(&p);
	if (rc < 0)
		return -1;
	return insert_hooks(j, rowid, a);
}

static int finish_row(struct pg_journal *j, int64_t rowid, const struct journal_attempt *a,
                      enum delivery_state state, int64_t next_due_ms);

/*
 * An outcome that could not be written (the journal down as the run ended)
 * stays held: the caller writes it again once the journal is back
 * (outbox.h); the row stays in the fence map, so that it stays this
 * instance's while its lease lasts, and nobody runs the delivery again.
 */
static int pg_attempt_finished(struct journal *jj, int64_t rowid, const struct journal_attempt *a,
                               enum delivery_state state, int64_t next_due_ms)
{
	return finish_row(pg_of(jj), rowid, a, state, next_due_ms);
}

static int finish_row(struct pg_journal *j, int64_t rowid, const struct journal_attempt *a,
                      enum delivery_state state, int64_t next_due_ms)
{
	if (j->readonly || (unsigned)state > DSTATE_SKIPPED)
		return -1;
	struct fence_slot *f = fence_find(&j->fences, rowid);
	if (!f)
		return JOURNAL_LOST;
	int rc = writable_fenced(j, rowid, &f);
	if (rc < 0)
		return rc;
	int64_t fence = f->fence;
	/* Hooks' rows go in the same transaction, after the fenced write. */
	bool tx = a->nhooks > 0;
	if (tx && tx_begin(j) < 0)
		return -1;
	struct params p = {0};
	p_int(&p, rowid);
	p_int(&p, fence);
	p_int(&p, state);
	p_int(&p, a->attempt);
	p_int(&p, a->http);
	p_text(&p, a->status);
	p_text(&p, a->error);
	p_int(&p, state == DSTATE_RETRY_WAIT ? next_due_ms : 0);
	p_int(&p, a->finished_ms ? a->finished_ms : now_wall_ms());
	p_int(&p, (int64_t)j->body_max);
	p_text(&p, j->instance);
	p_int(&p, a->started_ms);
	if (a->finished_ms)
		p_int(&p, a->finished_ms);
	else
		p_null(&p);
	p_text(&p, a->status ? a->status : "");
	p_bool(&p, a->client_gone);
	PGresult *r = run_prepared(j, "record outcome", STMT_FINISH, &p);
	p_free(&p);
	if (!r)
		goto fail;
	bool found = PQntuples(r) == 1;
	bool async = found && col_bool(r, 0, 0);
	int64_t body_len = found ? col_i64(r, 0, 1) : 0;
	PQclear(r);
	if (!found) {
		tx_rollback(j);
		fence_del(&j->fences, rowid);
		return JOURNAL_LOST;
	}
	if (tx && (insert_hooks(j, rowid, a) < 0 || tx_commit(j) < 0))
		goto fail;
	if (delivery_state_pending(state)) {
		f = fence_find(&j->fences, rowid);
		if (f)
			f->run_attempt = 0;
	} else {
		fence_del(&j->fences, rowid);
	}
	count_change(j, async, body_len, journal_pending_async(state, async), body_len);
	return 0;
fail:
	tx_rollback(j);
	return -1;
}

/* Unfenced: the attempt's outcome is recorded (its delivery final, its
 * lease given up), and this only says more of it. */
static int pg_client_gone(struct journal *jj, int64_t rowid, int attempt)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly || !writable(j))
		return -1;
	struct params p = {0};
	p_int(&p, rowid);
	p_int(&p, attempt);
	int rc = run_cmd(j, "record client gone",
	                 "UPDATE hookd_attempts SET client_gone = true"
	                 " WHERE delivery = $1::bigint AND attempt = $2::int",
	                 &p);
	p_free(&p);
	return rc < 0 ? -1 : 0;
}

static int pg_hand_over(struct journal *jj, int64_t rowid, bool running,
                        const unsigned char *body, size_t body_len)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly)
		return -1;
	struct fence_slot *f = fence_find(&j->fences, rowid);
	if (!f)
		return JOURNAL_LOST;
	int rc = writable_fenced(j, rowid, &f);
	if (rc < 0)
		return rc;
	struct params p = {0};
	p_int(&p, rowid);
	p_int(&p, now_wall_ms());
	/* Only a body journal_record cut is written again. */
	if (body_len > j->body_max)
		p_bytes(&p, body, body_len);
	else
		p_null(&p);
	p_bool(&p, running);
	p_int(&p, f->fence);
	p_text(&p, j->instance);
	PGresult *r = run(j, "hand over",
	                  "UPDATE hookd_deliveries SET async = true, updated_ms = $2::bigint,"
	                  " state = CASE WHEN $4::boolean THEN state ELSE 0 END,"
	                  " run_attempt = CASE WHEN $4::boolean THEN run_attempt ELSE 0 END,"
	                  " body = coalesce($3::bytea, body),"
	                  " body_cut = CASE WHEN $3::bytea IS NULL THEN body_cut ELSE false END"
	                  " WHERE id = $1::bigint AND fence = $5::bigint AND owner = $6::text"
	                  " AND NOT async AND state < 3 RETURNING body_len",
	                  &p);
	p_free(&p);
	if (!r)
		return -1;
	bool found = PQntuples(r) == 1;
	int64_t len = found ? col_i64(r, 0, 0) : 0;
	PQclear(r);
	if (!found) {
		/* Lost, or not a pending sync delivery: which one? */
		return still_held(j, "hand over", rowid, f->fence) == 0 ? JOURNAL_LOST : -1;
	}
	if (!running && (f = fence_find(&j->fences, rowid)))
		f->run_attempt = 0;
	count_change(j, false, 0, true, len);
	return 0;
}

static enum result pg_requeue(struct journal *jj, int64_t rowid)
{
	struct pg_journal *j = pg_of(jj);
	if (!writable(j))
		return RESULT_ERROR;
	if (tx_begin(j) < 0)
		return RESULT_ERROR;
	struct params p = {0};
	p_int(&p, rowid);
	PGresult *r = run(j, "requeue",
	                  "SELECT state, body_cut FROM hookd_deliveries WHERE id = $1::bigint"
	                  " FOR UPDATE",
	                  &p);
	p_free(&p);
	enum result ret = RESULT_ERROR;
	if (!r)
		goto fail;
	if (PQntuples(r) == 0) {
		ret = RESULT_UNKNOWN;
	} else if (delivery_state_pending((enum delivery_state)col_int(r, 0, 0))) {
		ret = RESULT_PENDING;
	} else if (col_bool(r, 0, 1)) {
		ret = RESULT_BODY_CUT;
	} else {
		ret = RESULT_OK;
	}
	PQclear(r);
	if (ret != RESULT_OK)
		goto fail;
	ret = RESULT_ERROR;
	p_int(&p, rowid);
	p_int(&p, now_wall_ms());
	p_text(&p, j->instance);
	r = run(j, "requeue",
	        "UPDATE hookd_deliveries SET state = 0, async = true, next_due_ms = $2::bigint,"
	        " updated_ms = $2::bigint, run_attempt = 0, replay_attempt = attempts + 1,"
	        " owner = $3::text, fence = fence + 1,"
	        " queued_seq = nextval('hookd_queue_seq')"
	        " WHERE id = $1::bigint RETURNING fence, body_len",
	        &p);
	p_free(&p);
	if (!r)
		goto fail;
	int64_t fence = col_i64(r, 0, 0), len = col_i64(r, 0, 1);
	PQclear(r);
	if (tx_commit(j) < 0)
		goto fail;
	fence_put(&j->fences, rowid, fence, 0);
	count_change(j, false, 0, true, len);
	return RESULT_OK;
fail:
	tx_rollback(j);
	return ret;
}

static enum result pg_find(struct journal *jj, const char *endpoint, const char *delivery_id,
                           int64_t *rowid)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_UNKNOWN;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_text(&p, delivery_id);
	p_text(&p, endpoint);
	PGresult *r = run(j, "find",
	                  "SELECT id FROM hookd_deliveries WHERE delivery_id = $1::text"
	                  " AND ($2::text IS NULL OR endpoint = $2::text) LIMIT 2",
	                  &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	int n = PQntuples(r);
	if (n > 0 && rowid)
		*rowid = col_i64(r, 0, 0);
	PQclear(r);
	return n == 0 ? RESULT_UNKNOWN : n == 1 ? RESULT_OK : RESULT_AMBIGUOUS;
}

/* One bounded DELETE: the rows it deleted, or -1. */
static int prune_step(struct pg_journal *j, const char *sql, int64_t a, int64_t b)
{
	struct params p = {0};
	p_int(&p, a);
	if (b >= 0)
		p_int(&p, b);
	PGresult *r = run(j, "prune", sql, &p);
	p_free(&p);
	if (!r)
		return -1;
	int n = (int)cmd_tuples(r);
	PQclear(r);
	return n;
}

static int pg_prune(struct journal *jj, int64_t now_ms)
{
	struct pg_journal *j = pg_of(jj);
	if (!writable(j))
		return -1;
	if (j->keep_ms <= 0 && j->max_rows <= 0)
		return 0;
	char lock[96];
	snprintf(lock, sizeof(lock), "SELECT pg_try_advisory_xact_lock(%lld)",
	         (long long)LOCK_PRUNE);
	if (tx_begin(j) < 0)
		return -1;
	PGresult *r = run(j, "prune", lock, NULL);
	if (!r)
		goto fail;
	bool mine = col_bool(r, 0, 0);
	PQclear(r);
	if (!mine) {
		/* Another instance prunes now. */
		tx_rollback(j);
		return 0;
	}
	int deleted = 0;
	if (j->keep_ms > 0) {
		int n = prune_step(j,
		                   "DELETE FROM hookd_deliveries WHERE id IN (SELECT id FROM"
		                   " hookd_deliveries WHERE received_ms < $1::bigint AND state >= 3"
		                   " ORDER BY received_ms LIMIT $2::bigint)",
		                   now_ms - j->keep_ms, JOURNAL_PRUNE_BATCH);
		if (n < 0)
			goto fail;
		deleted += n;
	}
	if (j->max_rows > 0 && deleted < JOURNAL_PRUNE_BATCH) {
		/* The planner's estimate first: an exact count only when the
		 * table may be near the limit. */
		r = run(j, "prune",
		        "SELECT reltuples::bigint FROM pg_class WHERE oid = 'hookd_deliveries'::regclass",
		        NULL);
		if (!r)
			goto fail;
		int64_t estimate = col_i64(r, 0, 0);
		PQclear(r);
		int64_t rows = estimate;
		if (estimate < 0 || estimate >= j->max_rows / 2) {
			r = run(j, "prune", "SELECT count(*) FROM hookd_deliveries", NULL);
			if (!r)
				goto fail;
			rows = col_i64(r, 0, 0);
			PQclear(r);
		}
		int64_t excess = rows - j->max_rows, budget = JOURNAL_PRUNE_BATCH - deleted;
		if (excess > 0) {
			int n = prune_step(j,
			                   "DELETE FROM hookd_deliveries WHERE id IN (SELECT id FROM"
			                   " hookd_deliveries WHERE state >= 3"
			                   " ORDER BY received_ms, id LIMIT $1::bigint)",
			                   excess < budget ? excess : budget, -1);
			if (n < 0)
				goto fail;
			deleted += n;
		}
	}
	if (tx_commit(j) < 0)
		goto fail;
	return deleted;
fail:
	tx_rollback(j);
	return -1;
}

/* The pending async deliveries of every instance, counted at most every
 * COUNT_EVERY_MS; in between (and while down) this process's own changes
 * adjust the last count. */
static void refresh_counts(struct pg_journal *j, bool force)
{
	int64_t now = now_mono_ms();
	if (!force && j->counted && now - j->counted_at_ms < COUNT_EVERY_MS)
		return;
	if (j->noschema || !usable(j))
		return;
	PGresult *r = run_prepared(j, "count", STMT_PENDING, NULL);
	if (!r)
		return;
	j->pending = col_i64(r, 0, 0);
	j->pending_bytes = col_i64(r, 0, 1);
	j->counted = true;
	j->counted_at_ms = now;
	PQclear(r);
}

static int64_t pg_pending_count(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	refresh_counts(j, j->readonly);
	return j->pending;
}

static int64_t pg_pending_bytes(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	refresh_counts(j, j->readonly);
	return j->pending_bytes;
}

/* ---- several instances ---- */

static int pg_take_turn(struct journal *jj, int64_t rowid, const char *key, int attempt,
                        int64_t started_ms)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly || !key)
		return RESULT_ERROR;
	struct fence_slot *f = fence_find(&j->fences, rowid);
	if (!f)
		return JOURNAL_LOST;
	int held = writable_fenced(j, rowid, &f);
	if (held == JOURNAL_LOST)
		return JOURNAL_LOST;
	if (held < 0 || tx_begin(j) < 0)
		return RESULT_ERROR;
	/* Every instance's turn-taking on this key goes one at a time; the
	 * lock is held until the commit makes the new RUNNING row visible. */
	struct params p = {0};
	p_text(&p, key);
	PGresult *r = run_prepared(j, "take turn", STMT_TURN_LOCK, &p);
	PQclear(r);
	if (!r)
		goto fail;
	p_int(&p, rowid);
	p_text(&p, j->instance);
	r = run_prepared(j, "take turn", STMT_TURN_WAIT, &p);
	p_free(&p);
	if (!r)
		goto fail;
	bool wait = PQntuples(r) > 0;
	bool first_held_here = wait && col_bool(r, 0, 0);
	PQclear(r);
	if (wait) {
		tx_rollback(j);
		return first_held_here ? JOURNAL_TURN_HERE : RESULT_PENDING;
	}
	int rc = mark_running(j, f, attempt, started_ms, key);
	if (rc != 0) {
		tx_rollback(j);
		return rc == JOURNAL_LOST ? JOURNAL_LOST : RESULT_ERROR;
	}
	if (tx_commit(j) < 0) {
		f = fence_find(&j->fences, rowid);
		if (f)
			f->run_attempt = 0;
		goto fail;
	}
	return RESULT_OK;
fail:
	p_free(&p);
	tx_rollback(j);
	return RESULT_ERROR;
}

const struct journal_ops journal_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.lookup = pg_lookup,
	.set_batching = pg_set_batching,
	.commit_batch = pg_commit_batch,
	.batch_id = pg_batch_id,
	.committed_id = pg_committed_id,
	.losses = pg_losses,
	.record = pg_record,
	.attempt_started = pg_attempt_started,
	.attempt_finished = pg_attempt_finished,
	.client_gone = pg_client_gone,
	.hand_over = pg_hand_over,
	.requeue = pg_requeue,
	.recover = pg_recover,
	.get = pg_get,
	.find = pg_find,
	.prune = pg_prune,
	.pending_count = pg_pending_count,
	.pending_bytes = pg_pending_bytes,
	.list = pg_list,
	.read = pg_read,
	.read_attempts = pg_read_attempts,
	.endpoints_of = pg_endpoints_of,
	.query = pg_query,
	.up = pg_up,
	.heartbeat = pg_heartbeat,
	.reconnect_fd = pg_reconnect_fd,
	.reconnect_lag_ms = pg_reconnect_lag_ms,
	.release = pg_release,
	.adopt = pg_adopt,
	.steal = pg_steal,
	.let_go = pg_let_go,
	.take_turn = pg_take_turn,
	.import = pg_import,
};
