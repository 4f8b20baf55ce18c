/*
 * The SQLite journal's transactions and group commit's batch: a write
 * of its own (tx_begin, durable or not) or one that joins the batch of the
 * loop's turn (tx_begin_one), the batch's commit (journal_flush), what
 * a lost batch leaves behind (its counts, the row ids it handed out, the
 * half of a write), and the checkpoints that group commit runs itself.
 */
#include "journal_sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

/* The batch was lost (a failed commit, or SQLite rolled it back after an
 * I/O error): the counts included its writes. */
static void batch_lost(struct sqlj *j)
{
	j->batch = false;
	j->losses++;
	journal_batch_lost(&j->base);
	if (!sqlite3_get_autocommit(j->db))
		exec_stmt(j, ST_ROLLBACK);
	log_msg(LOG_LVL_ERROR, "journal: a batch of writes was lost: %s", sqlite3_errmsg(j->db));
	recount(j);
}

uint64_t sq_batch_id(const struct journal *base)
{
	const struct sqlj *j = (const struct sqlj *)base;
	return j->batch_id;
}

uint64_t sq_committed_id(const struct journal *base)
{
	const struct sqlj *j = (const struct sqlj *)base;
	return j->committed_id;
}

uint64_t sq_losses(const struct journal *base)
{
	const struct sqlj *j = (const struct sqlj *)base;
	return j->losses;
}

int sq_sync_fd(const struct journal *base)
{
	const struct sqlj *j = (const struct sqlj *)base;
	return j->sync_fd;
}

/* Instead of SQLite's auto-checkpoint (which this hook replaces): count. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sqlj *j = arg;
	j->wal_frames = frames;
	return SQLITE_OK;
}

void sq_defer_checkpoints(struct journal *base)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_wal_hook(j->db, on_wal_commit, j);
}

int sq_wal_frames(const struct journal *base)
{
	const struct sqlj *j = (const struct sqlj *)base;
	return j->wal_frames;
}

struct journal_checkpointer {
	sqlite3 *db;
};

struct journal_checkpointer *sq_checkpointer_open(const struct journal *base, char *err,
                                                       size_t errlen)
{
	const struct sqlj *j = (const struct sqlj *)base;
	struct journal_checkpointer *c = xcalloc(1, sizeof(*c));
	int rc = sqlite3_open_v2(j->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", j->path,
		         c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		journal_checkpointer_close(c);
		return NULL;
	}
	/* synchronous=NORMAL: the WAL is synced before the copy, the database
	 * file after it. */
	if (!pragma_ok(c->db, "PRAGMA synchronous = NORMAL")) {
		snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(c->db));
		journal_checkpointer_close(c);
		return NULL;
	}
	return c;
}

int journal_checkpoint(struct journal_checkpointer *c, char *err, size_t errlen)
{
	/* PASSIVE: copies what no reader still needs, never waits for the
	 * writer; what it could not copy waits for the next one. */
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		snprintf(err, errlen, "checkpoint: %s", sqlite3_errmsg(c->db));
		return -1;
	}
	return 0;
}

int sq_checkpoint_here(struct journal *base)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->batch)
		return 0;
	int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		db_error(j, "checkpoint");
		return -1;
	}
	return 0;
}

void journal_checkpointer_close(struct journal_checkpointer *c)
{
	if (!c)
		return;
	if (c->db)
		sqlite3_close(c->db);
	free(c);
}

/*
 * After a commit: the WAL's writes it made are all in the file
 * (journal_sqlite_wal.c writes a commit's held writes with its last one).
 * Should SQLite ever end a commit otherwise, the commit was published
 * without some of its frames: neither writing them now (readers may have
 * looked) nor counting the batch lost (its rows are there) is right. hookd
 * stops; the next start's recovery drops the incomplete commit, whose
 * acceptances were not answered yet (their sync had not begun).
 */
static void settle(struct sqlj *j)
{
	if (sqlj_wal_settled(j->db))
		return;
	log_msg(LOG_LVL_ERROR, "journal: a commit left WAL writes unwritten; stopping");
	abort();
}

/* Commits the open batch, if any; -1 when that fails (the batch is lost). */
static int commit_batch(struct sqlj *j)
{
	if (!j->batch)
		return 0;
	j->batch = false;
	if (exec_stmt(j, ST_COMMIT) < 0) {
		batch_lost(j);
		return -1;
	}
	settle(j);
	j->committed_id = j->batch_id;
	return 0;
}

/*
 * A batch can also be lost before its commit (SQLite gave it up after an
 * error, or a write could not undo its own half: abandon_batch); either
 * way batch_lost tells journal_flush, which says so once.
 */
int sq_commit_batch(struct journal *base)
{
	return commit_batch((struct sqlj *)base);
}

void sq_set_batching(struct journal *base, bool on)
{
	struct sqlj *j = (struct sqlj *)base;
	j->batching = on && !j->readonly;
}

/*
 * A write transaction of its own. durable: its commit is fsync'd before
 * tx_commit() returns. synchronous is a connection setting that SQLite
 * refuses to change inside a transaction, so it is switched to FULL before
 * BEGIN and back to NORMAL once the transaction is over; an open batch is
 * committed first.
 */
int tx_begin(struct sqlj *j, bool durable)
{
	commit_batch(j);
	if (durable && exec_stmt(j, ST_SYNC_FULL) < 0)
		return -1;
	j->durable_tx = durable;
	if (exec_stmt(j, ST_BEGIN) < 0) {
		if (durable)
			exec_stmt(j, ST_SYNC_NORMAL);
		j->durable_tx = false;
		return -1;
	}
	return 0;
}

/*
 * A write that joins the batch (while batching is on; else one of its
 * own), without a savepoint: a statement that fails undoes only itself
 * (SQLite's statement journal), unless SQLite gives up the whole
 * transaction, which tx_rollback sees; a write of several statements
 * undoes its earlier ones itself when a later one fails (abandon_batch).
 * tx_commit() leaves the batch to journal_flush().
 */
int tx_begin_one(struct sqlj *j, bool durable)
{
	if (!j->batching)
		return tx_begin(j, durable);
	if (!j->batch) {
		if (exec_stmt(j, ST_BEGIN) < 0)
			return -1;
		j->batch = true;
		j->batch_id++;
	}
	j->bare_tx = true;
	return 0;
}

static void tx_end(struct sqlj *j)
{
	if (j->durable_tx)
		exec_stmt(j, ST_SYNC_NORMAL);
	j->durable_tx = false;
}

void tx_rollback(struct sqlj *j)
{
	if (j->bare_tx) {
		j->bare_tx = false;
		if (sqlite3_get_autocommit(j->db))
			batch_lost(j);
		return;
	}
	if (!sqlite3_get_autocommit(j->db))
		exec_stmt(j, ST_ROLLBACK);
	tx_end(j);
}

/* Commits (in a batch: leaves that to journal_flush); on failure rolls back. */
int tx_commit(struct sqlj *j)
{
	if (j->bare_tx) {
		j->bare_tx = false;
		return 0;
	}
	if (exec_stmt(j, ST_COMMIT) < 0) {
		tx_rollback(j);
		return -1;
	}
	settle(j);
	tx_end(j);
	return 0;
}

/*
 * SQLite gives a new row the largest id in the table + 1: after a lost
 * batch, that is the id of a row rolled back with it, which a caller may
 * still hold (its hooks running) and write its outcome under. A row given
 * an id at or below one handed out before is moved past them all, so that
 * such a stale id finds no row. The new id, or -1 (the move failed: the
 * caller undoes its insert).
 */
int64_t unique_rowid(struct sqlj *j, int64_t rowid)
{
	if (rowid > j->top_rowid) {
		j->top_rowid = rowid;
		return rowid;
	}
	sqlite3_stmt *s = stmt(j, ST_MOVE_ROW);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, j->top_rowid + 1);
	sqlite3_bind_int64(s, 2, rowid);
	if (step_done(j, s, "record") < 0)
		return -1;
	return ++j->top_rowid;
}

/*
 * The writes of several statements in the batch run without a savepoint
 * of their own (tx_begin_one): inside one, SQLite copies each page before
 * its first change, some 9,000 instructions a delivery. A statement that
 * fails undoes itself; when a later one fails, what the earlier ones
 * wrote is undone here. Where it cannot be told apart from the rest of the
 * batch, the whole batch is rolled back (tx_rollback then counts it lost,
 * as when SQLite gives a batch up after an I/O error): no half of a write
 * is ever committed.
 */
void abandon_batch(struct sqlj *j)
{
	if (j->bare_tx && !sqlite3_get_autocommit(j->db))
		exec_stmt(j, ST_ROLLBACK);
}

/* The row that the write's first statement inserted, deleted again; its
 * attempts and hook runs go with it. */
void undo_insert(struct sqlj *j, int64_t rowid)
{
	if (!j->bare_tx || sqlite3_get_autocommit(j->db))
		return; /* a transaction of its own, or SQLite gave the batch up */
	sqlite3_stmt *s = stmt(j, ST_DELETE_ROW);
	if (s) {
		sqlite3_bind_int64(s, 1, rowid);
		if (step_done(j, s, "undo a record") == 0)
			return;
	}
	abandon_batch(j);
}
