/*
 * The delivery journal: SQLite in WAL mode, one connection a process.
 *
 * Costs on the daemon's hot path. A sync delivery is one read (lookup) and
 * two small writes: journal_record inserts the row already RUNNING with the
 * attempt about to start, so journal_attempt_started finds nothing to change
 * and writes nothing; journal_attempt_finished writes the attempt, its hooks
 * and the new state. One with nothing to run (no hook, a `match` skip) is
 * one write: journal_record_final inserts it final with its attempt. In the daemon both writes join the batch of the loop's
 * turn, one transaction that journal_flush commits for all of them.
 * Commits use synchronous=NORMAL (in WAL mode: no fsync a commit, the WAL is
 * synced at checkpoints). The acceptance of an async delivery is promised
 * durable: batched, it is made so by the caller (group commit: the batch is
 * committed, then the WAL synced through journal_sync_fd on a thread, and
 * the 202s wait for that sync); unbatched, and for a replay, the commit
 * runs with synchronous=FULL. In the daemon, checkpoints (copying the WAL
 * into the database, with their fsyncs) run on the sync thread through a
 * second connection, and the loop's own connection only catches up what
 * those left, now and then, so that the WAL can start over (journal.h).
 * Every statement is prepared once (lazily) and reused.
 *
 * The counts that journal_pending_count and journal_prune need are kept in
 * memory, changed only after a commit succeeds, and recounted at open, at
 * recovery and at each prune, so that a count never drifts for long.
 *
 * The parts: journal_sqlite_open.c opens (and migrates) the file,
 * journal_sqlite_batch.c holds the transactions and the batch,
 * journal_sqlite_read.c reads back and imports; this file has the
 * statements and the daemon's writes, recovery and pruning.
 */
#include "journal_sqlite_private.h"

#include <stdlib.h>

#include "log.h"
#include "util.h"

/* The columns read_pending() expects, in its order. */
#define PENDING_COLS \
	"id, endpoint, delivery_id, event, remote_addr, state, attempts, next_due_ms," \
	" received_ms, body, body_len, body_cut, headers, replay_attempt"

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[ST_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[ST_LOOKUP] = "SELECT id, state, attempts FROM deliveries"
	              " WHERE delivery_id = ?2 AND endpoint = ?1",
	[ST_OLD] = "SELECT state, async, attempts, run_attempt, body_len FROM deliveries WHERE id = ?1",
	[ST_INSERT] = "INSERT INTO deliveries (endpoint, delivery_id, event, remote_addr, async,"
	              " state, received_ms, updated_ms, run_attempt, run_started_ms, headers,"
	              " body, body_len, body_cut)"
	              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?7, ?9, ?10, ?11, ?12)",
	/* A sync delivery with nothing to run, final at once: the row
	 * ST_INSERT and then ST_FINISH would leave. */
	[ST_INSERT_FINAL] = "INSERT INTO deliveries (endpoint, delivery_id, event, remote_addr,"
	                    " async, state, received_ms, updated_ms, run_attempt, run_started_ms,"
	                    " headers, body, body_len, body_cut, attempts, http, status, error)"
	                    " VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, 0, ?6, ?8, ?9, ?10, ?11, ?12,"
	                    " ?13, ?14, ?15)",
	/* A resend: attempts, http/status/error of the last attempt and the
	 * first receipt time stay; a replay before it no longer counts its
	 * retries (README "Async mode"). */
	[ST_RESEND] = "UPDATE deliveries SET event = coalesce(?2, event),"
	              " remote_addr = coalesce(?3, remote_addr), async = ?4, state = ?5,"
	              " updated_ms = ?6, next_due_ms = 0, replay_attempt = 0,"
	              " run_attempt = CASE WHEN ?5 = 1 THEN attempts + 1 ELSE 0 END,"
	              " run_started_ms = ?6, headers = ?7, body = ?8, body_len = ?9,"
	              " body_cut = ?10 WHERE id = ?1",
	[ST_STARTED] = "UPDATE deliveries SET state = 1, run_attempt = ?2, run_started_ms = ?3,"
	               " updated_ms = ?3 WHERE id = ?1",
	[ST_ATTEMPT] = "INSERT INTO attempts (delivery, attempt, started_ms, finished_ms, http,"
	               " status, error, client_gone, replay) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	               " coalesce((SELECT replay_attempt = ?2 FROM deliveries WHERE id = ?1), 0))"
	               " ON CONFLICT (delivery, attempt) DO UPDATE SET"
	               " started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,"
	               " http = excluded.http, status = excluded.status, error = excluded.error,"
	               " client_gone = excluded.client_gone, replay = excluded.replay",
	/* The attempt of a row just inserted (journal_record_final): no row of
	 * it to update, no replay asked for. */
	[ST_ATTEMPT_NEW] = "INSERT INTO attempts (delivery, attempt, started_ms, finished_ms, http,"
	                   " status, error, client_gone) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_CLIENT_GONE] = "UPDATE attempts SET client_gone = 1 WHERE delivery = ?1 AND attempt = ?2",
	[ST_HOOK] = "INSERT INTO hook_runs (delivery, attempt, seq, hook, exit, signal, ms, error,"
	            " output) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
	            " ON CONFLICT (delivery, attempt, seq) DO UPDATE SET hook = excluded.hook,"
	            " exit = excluded.exit, signal = excluded.signal, ms = excluded.ms,"
	            " error = excluded.error, output = excluded.output",
	/* In an UPDATE every expression sees the old row, so body_cut is
	 * decided from the body before it is cut. */
	[ST_FINISH] = "UPDATE deliveries SET state = ?2, attempts = max(attempts, ?3), http = ?4,"
	              " status = ?5, error = ?6, next_due_ms = ?7, updated_ms = ?8,"
	              " run_attempt = 0,"
	              " body_cut = CASE WHEN ?2 >= 3 AND length(body) > ?9 THEN 1"
	              "  ELSE body_cut END,"
	              " body = CASE WHEN ?2 >= 3 AND length(body) > ?9 THEN substr(body, 1, ?9)"
	              "  ELSE body END"
	              " WHERE id = ?1",
	[ST_REQUEUE] = "UPDATE deliveries SET state = 0, async = 1, next_due_ms = ?2,"
	               " updated_ms = ?2, run_attempt = 0, replay_attempt = attempts + 1"
	               " WHERE id = ?1",
	/* A sync delivery going on as an async one: its whole body (stored
	 * cut) when given, else the one it has. */
	[ST_HAND_OVER] = "UPDATE deliveries SET async = 1, updated_ms = ?2,"
	                 " state = CASE WHEN ?4 THEN state ELSE 0 END,"
	                 " run_attempt = CASE WHEN ?4 THEN run_attempt ELSE 0 END,"
	                 " body = coalesce(?3, body), body_cut = CASE WHEN ?3 IS NULL"
	                 "  THEN body_cut ELSE 0 END WHERE id = ?1",
	[ST_GET] = "SELECT " PENDING_COLS " FROM deliveries WHERE id = ?1",
	/* Recovery's list: the body and headers stay in the journal until
	 * each row is read back (journal_get, as its attempt begins), so that
	 * many pending bodies are never in memory together. */
	[ST_PENDING_ROWS] = "SELECT id, endpoint, delivery_id, event, remote_addr, state, attempts,"
	                    " next_due_ms, received_ms, NULL, body_len, body_cut, NULL, replay_attempt"
	                    " FROM deliveries"
	                    " WHERE state < 3 AND async = 1 ORDER BY received_ms, id",
	/* What recovery must change: any run under way, and sync deliveries
	 * still pending (nobody will run them now). */
	[ST_RECOVER_SCAN] = "SELECT id, async, state, attempts, run_attempt, run_started_ms,"
	                    " endpoint, event, delivery_id"
	                    " FROM deliveries WHERE state < 3 AND (state = 1 OR async = 0)",
	[ST_FIND] = "SELECT id FROM deliveries WHERE delivery_id = ?1"
	            " AND (?2 IS NULL OR endpoint = ?2) LIMIT 2",
	[ST_FIND_ALL] = "SELECT endpoint FROM deliveries WHERE delivery_id = ?1 ORDER BY endpoint",
	/* Its attempts and hook runs go with it (ON DELETE CASCADE). */
	[ST_DELETE_ROW] = "DELETE FROM deliveries WHERE id = ?1",
	[ST_MOVE_ROW] = "UPDATE deliveries SET id = ?1 WHERE id = ?2",
	[ST_COUNT_PENDING] = "SELECT count(*) FROM deliveries WHERE state < 3 AND async = 1",
	/* A pending async row's body is whole (only a final one is cut), so
	 * body_len is what it holds. */
	[ST_COUNT_PENDING_BYTES] = "SELECT coalesce(sum(body_len), 0) FROM deliveries"
	                           " WHERE state < 3 AND async = 1",
	[ST_COUNT_ROWS] = "SELECT count(*) FROM deliveries",
	[ST_PRUNE_AGE] = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
	                 " WHERE received_ms < ?1 AND state >= 3 ORDER BY received_ms LIMIT ?2)",
	[ST_PRUNE_OLDEST] = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
	                    " WHERE state >= 3 ORDER BY received_ms, id LIMIT ?1)",
	/* --failed: final and not 2xx, or pending again after an attempt that
	 * was not 2xx (waiting for a retry, or resent after a failure). */
	[ST_EVENTS] = "SELECT received_ms, endpoint, delivery_id, event, state, http, attempts"
	              " FROM deliveries WHERE received_ms >= ?1 AND (?2 = 0 OR state = 4"
	              " OR (state < 3 AND attempts > 0 AND NOT (http BETWEEN 200 AND 299)))"
	              " ORDER BY received_ms DESC, id DESC",
	[ST_SHOW] = "SELECT endpoint, delivery_id, event, remote_addr, async, state, attempts,"
	            " received_ms, updated_ms, next_due_ms, http, status, error, headers, body,"
	            " body_len, body_cut, run_attempt, run_started_ms FROM deliveries WHERE id = ?1",
	[ST_SHOW_ATTEMPTS] = "SELECT attempt, started_ms, finished_ms, http, status, error, replay,"
	                     " client_gone FROM attempts WHERE delivery = ?1 ORDER BY attempt",
	/* `show` on a journal an older hookd still runs: schema 1 has no
	 * replay column, schema 2 no client_gone. */
	[ST_SHOW_ATTEMPTS_V1] = "SELECT attempt, started_ms, finished_ms, http, status, error, 0, 0"
	                        " FROM attempts WHERE delivery = ?1 ORDER BY attempt",
	[ST_SHOW_ATTEMPTS_V2] = "SELECT attempt, started_ms, finished_ms, http, status, error,"
	                        " replay, 0 FROM attempts WHERE delivery = ?1 ORDER BY attempt",
	[ST_SHOW_HOOKS] = "SELECT hook, exit, signal, ms, error, output FROM hook_runs"
	                  " WHERE delivery = ?1 AND attempt = ?2 ORDER BY seq",
};

/* ---- statements and transactions ---- */

void db_error(struct sqlj *j, const char *what)
{
	log_msg(LOG_LVL_ERROR, "journal: %s: %s", what, sqlite3_errmsg(j->db));
}

/* The prepared statement, prepared on first use and kept for the
 * connection's life. NULL (logged) if it cannot be prepared. */
sqlite3_stmt *stmt(struct sqlj *j, enum stmt_id id)
{
	if (!j->st[id]) {
		int rc = sqlite3_prepare_v3(j->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                            &j->st[id], NULL);
		if (rc != SQLITE_OK) {
			db_error(j, "prepare");
			j->st[id] = NULL;
		}
	}
	return j->st[id];
}

/* Ready for the next use; the bound pointers are not kept. */
void done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* A new row's first four columns, the same in ST_INSERT and
 * ST_INSERT_FINAL: who sent what. */
static void bind_identity(sqlite3_stmt *s, const struct journal_new *d)
{
	bind_text(s, 1, d->endpoint);
	bind_text(s, 2, d->delivery_id);
	bind_text(s, 3, d->event);
	bind_text(s, 4, d->remote_addr ? d->remote_addr : "");
}

/* Runs a statement that returns no rows (or whose rows are not wanted). */
int exec_stmt(struct sqlj *j, enum stmt_id id)
{
	sqlite3_stmt *s = stmt(j, id);
	if (!s)
		return -1;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		db_error(j, stmt_sql[id]);
		return -1;
	}
	return 0;
}

/* Steps a statement with its parameters bound; 0 done, -1 error. */
int step_done(struct sqlj *j, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	done(s);
	if (rc != SQLITE_DONE) {
		db_error(j, what);
		return -1;
	}
	return 0;
}

/* The old state of a row: 1 found, 0 not, -1 error. */
struct old_row {
	int state;
	bool async;
	int attempts;
	int run_attempt;
	int64_t body_len;
};

static int read_old(struct sqlj *j, int64_t rowid, struct old_row *o)
{
	sqlite3_stmt *s = stmt(j, ST_OLD);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, rowid);
	int rc = sqlite3_step(s);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		o->state = sqlite3_column_int(s, 0);
		o->async = sqlite3_column_int(s, 1) != 0;
		o->attempts = sqlite3_column_int(s, 2);
		o->run_attempt = sqlite3_column_int(s, 3);
		o->body_len = sqlite3_column_int64(s, 4);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		db_error(j, "read delivery");
		ret = -1;
	}
	done(s);
	return ret;
}

static int64_t count_query(struct sqlj *j, enum stmt_id id)
{
	sqlite3_stmt *s = stmt(j, id);
	if (!s)
		return -1;
	int64_t n = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		db_error(j, "count");
	done(s);
	return n;
}

int recount(struct sqlj *j)
{
	int64_t p = count_query(j, ST_COUNT_PENDING);
	int64_t b = count_query(j, ST_COUNT_PENDING_BYTES);
	int64_t r = count_query(j, ST_COUNT_ROWS);
	if (p < 0 || b < 0 || r < 0)
		return -1;
	j->pending = p;
	j->pending_bytes = b;
	j->rows = r;
	return 0;
}

/* A row's change from (old state, old body) to (new state, new body): the
 * pending count and bytes follow, once its write is committed. */
void count_pending(struct sqlj *j, int old_state, bool old_async, int64_t old_len,
                          int new_state, bool new_async, int64_t new_len)
{
	bool was = journal_pending_async(old_state, old_async), is = journal_pending_async(new_state, new_async);
	j->pending += (int64_t)is - (int64_t)was;
	j->pending_bytes += (is ? new_len : 0) - (was ? old_len : 0);
}

/* ---- the daemon's calls ---- */

static enum result sq_lookup(struct journal *base, const char *endpoint, const char *delivery_id,
                           enum delivery_state *state, int *attempts, int64_t *rowid)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_LOOKUP);
	if (!s)
		return RESULT_ERROR;
	bind_text(s, 1, endpoint);
	bind_text(s, 2, delivery_id);
	int rc = sqlite3_step(s);
	enum result ret = RESULT_UNKNOWN;
	if (rc == SQLITE_ROW) {
		if (rowid)
			*rowid = sqlite3_column_int64(s, 0);
		if (state)
			*state = (enum delivery_state)sqlite3_column_int(s, 1);
		if (attempts)
			*attempts = sqlite3_column_int(s, 2);
		ret = RESULT_OK;
	} else if (rc != SQLITE_DONE) {
		db_error(j, "lookup");
		ret = RESULT_ERROR;
	}
	done(s);
	return ret;
}

static int64_t sq_record(struct journal *base, const struct journal_new *d)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly || !d->endpoint || !d->delivery_id || !d->event)
		return -1;
	/* A sync delivery that must wait for a slot or its key has not started:
	 * its attempt is marked running when it leaves the line. */
	enum delivery_state st = d->async || d->waits ? DSTATE_QUEUED : DSTATE_RUNNING;
	/*
	 * A sync delivery's body is only ever read from the journal once it is
	 * final (a pending one cannot be replayed, and its sender holds it), so
	 * it is stored already cut: the whole body is not written twice.
	 */
	size_t keep = d->body_len;
	bool cut = false;
	if (!d->async && keep > j->body_max) {
		keep = (size_t)j->body_max;
		cut = true;
	}
	const void *body = d->body ? (const void *)d->body : "";
	char *headers = journal_headers_text(d);
	int64_t rowid = -1;
	int64_t drows = 0;
	struct old_row o = {.state = DSTATE_SUCCEEDED};

	/* The 202 promises the delivery survives a crash or power loss: in a
	 * batch the caller syncs it (journal_sync_fd) before answering. */
	if (tx_begin_one(j, d->async) < 0)
		goto out;
	int64_t old_id;
	enum delivery_state old_state;
	int old_attempts;
	enum result found = d->known_new ? RESULT_UNKNOWN
	                                 : sq_lookup(&j->base, d->endpoint, d->delivery_id,
	                                                  &old_state, &old_attempts, &old_id);
	if (found == RESULT_ERROR)
		goto fail;
	if (found == RESULT_OK) {
		if (read_old(j, old_id, &o) != 1)
			goto fail;
		sqlite3_stmt *s = stmt(j, ST_RESEND);
		if (!s)
			goto fail;
		sqlite3_bind_int64(s, 1, old_id);
		bind_text(s, 2, d->event);
		bind_text(s, 3, d->remote_addr);
		sqlite3_bind_int(s, 4, d->async);
		sqlite3_bind_int(s, 5, st);
		sqlite3_bind_int64(s, 6, now_wall_ms());
		bind_text(s, 7, headers);
		sqlite3_bind_blob64(s, 8, body, keep, SQLITE_STATIC);
		sqlite3_bind_int64(s, 9, (int64_t)d->body_len);
		sqlite3_bind_int(s, 10, cut);
		if (step_done(j, s, "record resend") < 0)
			goto fail;
		rowid = old_id;
	} else {
		sqlite3_stmt *s = stmt(j, ST_INSERT);
		if (!s)
			goto fail;
		bind_identity(s, d);
		sqlite3_bind_int(s, 5, d->async);
		sqlite3_bind_int(s, 6, st);
		sqlite3_bind_int64(s, 7, d->received_ms);
		sqlite3_bind_int(s, 8, st == DSTATE_RUNNING); /* attempt 1 is starting */
		bind_text(s, 9, headers);
		sqlite3_bind_blob64(s, 10, body, keep, SQLITE_STATIC);
		sqlite3_bind_int64(s, 11, (int64_t)d->body_len);
		sqlite3_bind_int(s, 12, cut);
		if (step_done(j, s, "record") < 0)
			goto fail;
		int64_t inserted = sqlite3_last_insert_rowid(j->db);
		rowid = unique_rowid(j, inserted);
		if (rowid < 0) {
			undo_insert(j, inserted);
			goto fail;
		}
		drows = 1;
	}
	if (tx_commit(j) < 0) {
		rowid = -1;
		goto out;
	}
	count_pending(j, o.state, o.async, o.body_len, st, d->async, (int64_t)d->body_len);
	j->rows += drows;
	goto out;
fail:
	rowid = -1;
	tx_rollback(j);
out:
	free(headers);
	return rowid;
}

static int sq_attempt_started(struct journal *base, int64_t rowid, int attempt, int64_t started_ms)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return -1;
	struct old_row o;
	int found = read_old(j, rowid, &o);
	if (found <= 0)
		return -1;
	/* The sync path: journal_record already marked this attempt running. */
	if (o.state == DSTATE_RUNNING && o.run_attempt == attempt)
		return 0;
	/* In the batch, which commits before the attempt's first hook starts
	 * (groupcommit.h): a start that fails, then or now, runs nothing. */
	if (tx_begin_one(j, false) < 0)
		return -1;
	sqlite3_stmt *s = stmt(j, ST_STARTED);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int(s, 2, attempt);
	sqlite3_bind_int64(s, 3, started_ms);
	if (step_done(j, s, "attempt started") < 0)
		goto fail;
	if (tx_commit(j) < 0)
		return -1;
	count_pending(j, o.state, o.async, o.body_len, DSTATE_RUNNING, o.async, o.body_len);
	return 0;
fail:
	tx_rollback(j);
	return -1;
}

/* new_row: the delivery's row was inserted in this transaction. Returns
 * 0; -1 when nothing was written; WROTE_PART when the attempt was and a
 * hook's run then failed. */
#define WROTE_PART (-2)
int insert_attempt(struct sqlj *j, int64_t rowid, const struct journal_attempt *a,
                          bool new_row)
{
	sqlite3_stmt *s = stmt(j, new_row ? ST_ATTEMPT_NEW : ST_ATTEMPT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int(s, 2, a->attempt);
	sqlite3_bind_int64(s, 3, a->started_ms);
	if (a->finished_ms)
		sqlite3_bind_int64(s, 4, a->finished_ms);
	else
		sqlite3_bind_null(s, 4);
	sqlite3_bind_int(s, 5, a->http);
	bind_text(s, 6, a->status ? a->status : "");
	bind_text(s, 7, a->error);
	sqlite3_bind_int(s, 8, a->client_gone);
	if (step_done(j, s, "record attempt") < 0)
		return -1;
	for (size_t i = 0; i < a->nhooks; i++) {
		const struct journal_hook *h = &a->hooks[i];
		s = stmt(j, ST_HOOK);
		if (!s)
			return WROTE_PART;
		sqlite3_bind_int64(s, 1, rowid);
		sqlite3_bind_int(s, 2, a->attempt);
		sqlite3_bind_int64(s, 3, (int64_t)i + 1);
		bind_text(s, 4, h->hook ? h->hook : "");
		if (h->exit_code >= 0)
			sqlite3_bind_int(s, 5, h->exit_code);
		else
			sqlite3_bind_null(s, 5);
		bind_text(s, 6, h->signal);
		sqlite3_bind_int64(s, 7, h->ms);
		bind_text(s, 8, h->error);
		if (h->output)
			sqlite3_bind_blob64(s, 9, h->output, h->output_len, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 9);
		if (step_done(j, s, "record hook") < 0)
			return WROTE_PART;
	}
	return 0;
}

static int update_finished(struct sqlj *j, int64_t rowid, int attempts, int http,
                           const char *status, const char *error, enum delivery_state state,
                           int64_t next_due_ms, int64_t now_ms)
{
	sqlite3_stmt *s = stmt(j, ST_FINISH);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int(s, 2, state);
	sqlite3_bind_int(s, 3, attempts);
	sqlite3_bind_int(s, 4, http);
	bind_text(s, 5, status);
	bind_text(s, 6, error);
	sqlite3_bind_int64(s, 7, next_due_ms);
	sqlite3_bind_int64(s, 8, now_ms);
	sqlite3_bind_int64(s, 9, (int64_t)j->body_max);
	return step_done(j, s, "record outcome");
}

static int sq_attempt_finished(struct journal *base, int64_t rowid, const struct journal_attempt *a,
                             enum delivery_state state, int64_t next_due_ms)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly || (unsigned)state > DSTATE_SKIPPED)
		return -1;
	if (tx_begin_one(j, false) < 0)
		return -1;
	struct old_row o;
	int found = read_old(j, rowid, &o);
	if (found == 0) {
		/* Gone with a lost batch: writing it again would never do. */
		tx_rollback(j);
		return JOURNAL_GONE;
	}
	if (found != 1)
		goto fail;
	/* The attempt row may be an older one rewritten (an interrupted
	 * attempt): once written, it is not undone by itself. */
	int wrote = insert_attempt(j, rowid, a, false);
	if (wrote < 0) {
		if (wrote == WROTE_PART)
			abandon_batch(j);
		goto fail;
	}
	int64_t now = a->finished_ms ? a->finished_ms : now_wall_ms();
	if (update_finished(j, rowid, a->attempt, a->http, a->status, a->error, state,
	                    state == DSTATE_RETRY_WAIT ? next_due_ms : 0, now) < 0) {
		abandon_batch(j);
		goto fail;
	}
	if (tx_commit(j) < 0)
		return -1;
	count_pending(j, o.state, o.async, o.body_len, state, o.async, o.body_len);
	return 0;
fail:
	tx_rollback(j);
	return -1;
}

/*
 * journal_record_final: for an id not seen before, the row inserted final
 * and its attempt, in one write of the batch. Against journal_record and
 * journal_attempt_finished, it spares the read of the old row, the update
 * that rewrites the whole row, and the pending and state index entries
 * that the RUNNING row made and the update took away again. Without a
 * savepoint (abandon_batch): a failed attempt insert deletes the row
 * again. A resend (an id seen before) keeps what its row had: the two
 * writes.
 */
static int64_t sq_record_final(struct journal *base, const struct journal_new *d,
                               const struct journal_attempt *a, enum delivery_state state)
{
	struct sqlj *j = (struct sqlj *)base;
	if (!d->known_new || d->async || state < DSTATE_SUCCEEDED || state > DSTATE_SKIPPED) {
		int64_t rowid = sq_record(base, d);
		int rc = rowid > 0 ? sq_attempt_finished(base, rowid, a, state, 0) : 0;
		if (rc < 0) {
			struct log_delivery who = {d->endpoint, d->event, d->delivery_id, a->attempt};
			journal_log_unrecorded(&who, rc);
		}
		return rowid;
	}
	if (j->readonly || !d->endpoint || !d->delivery_id || !d->event)
		return -1;
	size_t keep = d->body_len;
	bool cut = false;
	if (keep > j->body_max) {
		keep = (size_t)j->body_max;
		cut = true;
	}
	char *headers = journal_headers_text(d);
	int64_t rowid = -1;
	if (tx_begin_one(j, false) < 0)
		goto out;
	sqlite3_stmt *s = stmt(j, ST_INSERT_FINAL);
	if (!s)
		goto fail;
	bind_identity(s, d);
	sqlite3_bind_int(s, 5, state);
	sqlite3_bind_int64(s, 6, d->received_ms);
	sqlite3_bind_int64(s, 7, a->finished_ms ? a->finished_ms : now_wall_ms());
	bind_text(s, 8, headers);
	sqlite3_bind_blob64(s, 9, d->body ? (const void *)d->body : "", keep, SQLITE_STATIC);
	sqlite3_bind_int64(s, 10, (int64_t)d->body_len);
	sqlite3_bind_int(s, 11, cut);
	sqlite3_bind_int(s, 12, a->attempt);
	sqlite3_bind_int(s, 13, a->http);
	bind_text(s, 14, a->status);
	bind_text(s, 15, a->error);
	if (step_done(j, s, "record") < 0)
		goto fail;
	int64_t inserted = sqlite3_last_insert_rowid(j->db);
	rowid = unique_rowid(j, inserted);
	if (rowid < 0 || insert_attempt(j, rowid, a, true) < 0) {
		undo_insert(j, rowid < 0 ? inserted : rowid);
		goto fail;
	}
	if (tx_commit(j) < 0) {
		rowid = -1;
		goto out;
	}
	j->rows++;
	goto out;
fail:
	rowid = -1;
	tx_rollback(j);
out:
	free(headers);
	return rowid;
}

/* Not counted, nothing pending changes: a write of the batch like an
 * outcome's (a lost batch loses the mark, which only says more). */
static int sq_client_gone(struct journal *base, int64_t rowid, int attempt)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly || j->schema < 3)
		return -1;
	if (tx_begin_one(j, false) < 0)
		return -1;
	sqlite3_stmt *s = stmt(j, ST_CLIENT_GONE);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int(s, 2, attempt);
	if (step_done(j, s, "record client gone") < 0)
		goto fail;
	return tx_commit(j);
fail:
	tx_rollback(j);
	return -1;
}

static int sq_hand_over(struct journal *base, int64_t rowid, bool running, const unsigned char *body,
                      size_t body_len)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return -1;
	if (tx_begin(j, true) < 0)
		return -1;
	struct old_row o;
	if (read_old(j, rowid, &o) != 1 || o.async ||
	    !delivery_state_pending((enum delivery_state)o.state))
		goto fail;
	sqlite3_stmt *s = stmt(j, ST_HAND_OVER);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int64(s, 2, now_wall_ms());
	/* Only a body journal_record cut is written again. */
	if (body_len > j->body_max)
		sqlite3_bind_blob64(s, 3, body ? (const void *)body : "", body_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 3);
	sqlite3_bind_int(s, 4, running);
	if (step_done(j, s, "hand over") < 0)
		goto fail;
	if (tx_commit(j) < 0)
		return -1;
	count_pending(j, o.state, false, o.body_len, running ? o.state : DSTATE_QUEUED, true,
	              o.body_len);
	return 0;
fail:
	tx_rollback(j);
	return -1;
}

static enum result sq_requeue(struct journal *base, int64_t rowid)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return RESULT_ERROR;
	if (tx_begin(j, true) < 0)
		return RESULT_ERROR;
	struct old_row o;
	int found = read_old(j, rowid, &o);
	enum result ret = RESULT_ERROR;
	if (found < 0)
		goto fail;
	if (found == 0) {
		ret = RESULT_UNKNOWN;
		goto fail;
	}
	if (delivery_state_pending((enum delivery_state)o.state)) {
		ret = RESULT_PENDING;
		goto fail;
	}
	sqlite3_stmt *s = stmt(j, ST_GET);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, rowid);
	bool cut = sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 11);
	done(s);
	if (cut) {
		ret = RESULT_BODY_CUT;
		goto fail;
	}
	s = stmt(j, ST_REQUEUE);
	if (!s)
		goto fail;
	sqlite3_bind_int64(s, 1, rowid);
	sqlite3_bind_int64(s, 2, now_wall_ms());
	if (step_done(j, s, "requeue") < 0)
		goto fail;
	if (tx_commit(j) < 0)
		return RESULT_ERROR;
	count_pending(j, o.state, o.async, o.body_len, DSTATE_QUEUED, true, o.body_len);
	return RESULT_OK;
fail:
	tx_rollback(j);
	return ret;
}

/* What recovery changes in one row. */
struct recover_row {
	int64_t id;
	bool async;
	int state, attempts, run_attempt;
	int64_t run_started_ms;
	char *endpoint, *event, *delivery_id; /* for its line */
	const char *why; /* its error now */
	int attempt;     /* the one it ran, 0: none */
};

static void recover_rows_free(struct recover_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].endpoint);
		free(rows[i].event);
		free(rows[i].delivery_id);
	}
	free(rows);
}

static int sq_recover(struct journal *base, struct journal_pending **out, size_t *n)
{
	struct sqlj *j = (struct sqlj *)base;
	*out = NULL;
	*n = 0;
	if (j->readonly)
		return -1;
	struct recover_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	struct journal_pending *list = NULL;
	size_t nlist = 0, lcap = 0;
	if (tx_begin(j, false) < 0)
		return -1;

	/* Collected first: rows are not changed under a running SELECT. */
	sqlite3_stmt *s = stmt(j, ST_RECOVER_SCAN);
	if (!s)
		goto fail;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nrows == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		struct recover_row *r = &rows[nrows++];
		r->id = sqlite3_column_int64(s, 0);
		r->async = sqlite3_column_int(s, 1) != 0;
		r->state = sqlite3_column_int(s, 2);
		r->attempts = sqlite3_column_int(s, 3);
		r->run_attempt = sqlite3_column_int(s, 4);
		r->run_started_ms = sqlite3_column_int64(s, 5);
		r->endpoint = xstrdup((const char *)sqlite3_column_text(s, 6));
		r->event = xstrdup((const char *)sqlite3_column_text(s, 7));
		r->delivery_id = xstrdup((const char *)sqlite3_column_text(s, 8));
	}
	done(s);
	if (rc != SQLITE_DONE) {
		db_error(j, "recover");
		goto fail;
	}

	int64_t now = now_wall_ms();
	for (size_t i = 0; i < nrows; i++) {
		struct recover_row *r = &rows[i];
		int attempts = r->attempts;
		if (r->state == DSTATE_RUNNING) {
			/* That run died with hookd: it counts as an attempt, with no
			 * HTTP outcome (http 0) and no known end. */
			attempts = r->run_attempt > r->attempts ? r->run_attempt : r->attempts + 1;
			struct journal_attempt a = {
				.attempt = attempts,
				.started_ms = r->run_started_ms,
				.finished_ms = 0,
				.http = 0,
				.status = "interrupted",
				.error = "interrupted",
			};
			if (insert_attempt(j, r->id, &a, false) < 0)
				goto fail;
		}
		/* Async: queued again, due now. Sync: nobody waits for it any
		 * more; the sender's resend runs it again (one that waited for a
		 * slot or its key never ran: no attempt, its resend is its first). */
		enum delivery_state st = r->async ? DSTATE_QUEUED : DSTATE_FAILED;
		const char *why = r->async || r->state == DSTATE_RUNNING ? "interrupted"
		                                                         : "interrupted before it ran";
		r->why = why;
		r->attempt = r->state == DSTATE_RUNNING ? attempts : 0;
		if (update_finished(j, r->id, attempts, 0, "interrupted", why, st, 0, now) < 0)
			goto fail;
	}

	s = stmt(j, ST_PENDING_ROWS);
	if (!s)
		goto fail;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (nlist == lcap) {
			lcap = lcap ? lcap * 2 : 16;
			list = xrealloc(list, lcap * sizeof(*list));
		}
		read_pending(s, &list[nlist++]);
	}
	done(s);
	if (rc != SQLITE_DONE) {
		db_error(j, "recover");
		goto fail;
	}
	if (tx_commit(j) < 0)
		goto fail;
	for (size_t i = 0; i < nrows; i++) {
		struct recover_row *r = &rows[i];
		struct log_delivery who = {r->endpoint, r->event, r->delivery_id, r->attempt};
		journal_log_interrupted(&who, r->why, r->async, NULL);
		if (!r->async)
			journal_interrupted(base, r->endpoint, r->event);
	}
	recover_rows_free(rows, nrows);
	recount(j);
	*out = list;
	*n = nlist;
	return 0;
fail:
	tx_rollback(j);
	recover_rows_free(rows, nrows);
	for (size_t i = 0; i < nlist; i++)
		journal_pending_free(&list[i]);
	free(list);
	return -1;
}

/* One bounded DELETE; returns the rows it deleted or -1. */
static int prune_step(struct sqlj *j, enum stmt_id id, int64_t a, int64_t b)
{
	sqlite3_stmt *s = stmt(j, id);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, a);
	if (id == ST_PRUNE_AGE)
		sqlite3_bind_int64(s, 2, b);
	if (step_done(j, s, "prune") < 0)
		return -1;
	/* Direct deletes only; the cascaded attempts and hook runs are not
	 * counted. */
	int n = sqlite3_changes(j->db);
	j->rows -= n;
	return n;
}

static int sq_prune(struct journal *base, int64_t now_ms)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return -1;
	int deleted = 0;
	if (j->keep_ms > 0) {
		int n = prune_step(j, ST_PRUNE_AGE, now_ms - j->keep_ms, JOURNAL_PRUNE_BATCH);
		if (n < 0)
			return -1;
		deleted += n;
	}
	/* Recounted when over the limit: an exact count is cheap next to the
	 * deletes it decides, and it keeps a drifted count from deleting too
	 * much. */
	if (j->max_rows > 0 && j->rows > j->max_rows && deleted < JOURNAL_PRUNE_BATCH) {
		if (recount(j) < 0)
			return -1;
		int64_t excess = j->rows - j->max_rows;
		int64_t budget = JOURNAL_PRUNE_BATCH - deleted;
		if (excess > 0) {
			int n = prune_step(j, ST_PRUNE_OLDEST, excess < budget ? excess : budget, 0);
			if (n < 0)
				return -1;
			deleted += n;
		}
	} else if (deleted == 0 && j->batch_id == j->pruned_batch) {
		/* Nothing was due, and no batch written since the last call: a
		 * quiet moment to resync the pending count and bytes. Not under
		 * load: both read every pending row (a backlog of 100,000 held
		 * the loop tens of milliseconds each second), and the counts only
		 * drift if something else writes the file. */
		int64_t p = count_query(j, ST_COUNT_PENDING);
		int64_t b = count_query(j, ST_COUNT_PENDING_BYTES);
		if (p >= 0 && b >= 0) {
			j->pending = p;
			j->pending_bytes = b;
		}
	}
	j->pruned_batch = j->batch_id;
	return deleted;
}

static int64_t sq_pending_count(struct journal *base)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return count_query(j, ST_COUNT_PENDING);
	return j->pending;
}

static int64_t sq_pending_bytes(struct journal *base)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly)
		return count_query(j, ST_COUNT_PENDING_BYTES);
	return j->pending_bytes;
}

const struct journal_ops journal_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.set_batching = sq_set_batching,
	.commit_batch = sq_commit_batch,
	.batch_id = sq_batch_id,
	.committed_id = sq_committed_id,
	.losses = sq_losses,
	.sync_fd = sq_sync_fd,
	.defer_checkpoints = sq_defer_checkpoints,
	.wal_frames = sq_wal_frames,
	.checkpointer_open = sq_checkpointer_open,
	.checkpoint_here = sq_checkpoint_here,
	.lookup = sq_lookup,
	.record = sq_record,
	.record_final = sq_record_final,
	.attempt_started = sq_attempt_started,
	.attempt_finished = sq_attempt_finished,
	.client_gone = sq_client_gone,
	.hand_over = sq_hand_over,
	.requeue = sq_requeue,
	.recover = sq_recover,
	.get = sq_get,
	.find = sq_find,
	.prune = sq_prune,
	.pending_count = sq_pending_count,
	.pending_bytes = sq_pending_bytes,
	.list = sq_list,
	.read = sq_read,
	.read_attempts = sq_read_attempts,
	.endpoints_of = sq_endpoints_of,
	.query = sq_query,
	.import = sq_import,
};
