/*
 * What the parts of the SQLite journal share (journal_sqlite.c,
 * journal_sqlite_open.c, journal_sqlite_batch.c, journal_sqlite_read.c);
 * nothing else includes it: the handle (struct sqlj), the statements' ids
 * (their SQL is in journal_sqlite.c's stmt_sql), libsqlite3's calls through
 * the pointers that journal_sqlite_open.c fills, and the helpers that more
 * than one part calls.
 */
#ifndef HOOKD_JOURNAL_SQLITE_PRIVATE_H
#define HOOKD_JOURNAL_SQLITE_PRIVATE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal_backend.h"
#include "journal_sqlite_wal.h"

/*
 * libsqlite3 is loaded when a journal is first opened (dynload.h): a
 * daemon without a state_dir never maps it. Every call below goes through
 * these pointers, typed from sqlite3.h's own prototypes.
 */
#define SQLITE_CALLS(X) \
	X(sqlite3_bind_blob64) \
	X(sqlite3_bind_int) \
	X(sqlite3_bind_int64) \
	X(sqlite3_bind_null) \
	X(sqlite3_bind_text) \
	X(sqlite3_busy_timeout) \
	X(sqlite3_changes) \
	X(sqlite3_clear_bindings) \
	X(sqlite3_close) \
	X(sqlite3_config) \
	X(sqlite3_column_blob) \
	X(sqlite3_column_bytes) \
	X(sqlite3_column_int) \
	X(sqlite3_column_int64) \
	X(sqlite3_column_text) \
	X(sqlite3_column_type) \
	X(sqlite3_errmsg) \
	X(sqlite3_errstr) \
	X(sqlite3_exec) \
	X(sqlite3_file_control) \
	X(sqlite3_finalize) \
	X(sqlite3_get_autocommit) \
	X(sqlite3_last_insert_rowid) \
	X(sqlite3_open_v2) \
	X(sqlite3_prepare_v2) \
	X(sqlite3_prepare_v3) \
	X(sqlite3_reset) \
	X(sqlite3_rollback_hook) \
	X(sqlite3_step) \
	X(sqlite3_uri_boolean) \
	X(sqlite3_vfs_find) \
	X(sqlite3_vfs_register) \
	X(sqlite3_wal_checkpoint_v2) \
	X(sqlite3_wal_hook)

#define SQLITE_POINTER(f) extern __typeof__(f) *dl_##f;
SQLITE_CALLS(SQLITE_POINTER)

#define sqlite3_bind_blob64 dl_sqlite3_bind_blob64
#define sqlite3_bind_int dl_sqlite3_bind_int
#define sqlite3_bind_int64 dl_sqlite3_bind_int64
#define sqlite3_bind_null dl_sqlite3_bind_null
#define sqlite3_bind_text dl_sqlite3_bind_text
#define sqlite3_busy_timeout dl_sqlite3_busy_timeout
#define sqlite3_changes dl_sqlite3_changes
#define sqlite3_clear_bindings dl_sqlite3_clear_bindings
#define sqlite3_close dl_sqlite3_close
#define sqlite3_config dl_sqlite3_config
#define sqlite3_column_blob dl_sqlite3_column_blob
#define sqlite3_column_bytes dl_sqlite3_column_bytes
#define sqlite3_column_int dl_sqlite3_column_int
#define sqlite3_column_int64 dl_sqlite3_column_int64
#define sqlite3_column_text dl_sqlite3_column_text
#define sqlite3_column_type dl_sqlite3_column_type
#define sqlite3_errmsg dl_sqlite3_errmsg
#define sqlite3_errstr dl_sqlite3_errstr
#define sqlite3_exec dl_sqlite3_exec
#define sqlite3_file_control dl_sqlite3_file_control
#define sqlite3_finalize dl_sqlite3_finalize
#define sqlite3_get_autocommit dl_sqlite3_get_autocommit
#define sqlite3_last_insert_rowid dl_sqlite3_last_insert_rowid
#define sqlite3_open_v2 dl_sqlite3_open_v2
#define sqlite3_prepare_v2 dl_sqlite3_prepare_v2
#define sqlite3_prepare_v3 dl_sqlite3_prepare_v3
#define sqlite3_reset dl_sqlite3_reset
#define sqlite3_rollback_hook dl_sqlite3_rollback_hook
#define sqlite3_step dl_sqlite3_step
#define sqlite3_uri_boolean dl_sqlite3_uri_boolean
#define sqlite3_vfs_find dl_sqlite3_vfs_find
#define sqlite3_vfs_register dl_sqlite3_vfs_register
#define sqlite3_wal_checkpoint_v2 dl_sqlite3_wal_checkpoint_v2
#define sqlite3_wal_hook dl_sqlite3_wal_hook

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SYNC_FULL,
	ST_SYNC_NORMAL,
	ST_LOOKUP,
	ST_OLD,
	ST_INSERT,
	ST_INSERT_FINAL,
	ST_RESEND,
	ST_STARTED,
	ST_ATTEMPT,
	ST_ATTEMPT_NEW,
	ST_CLIENT_GONE,
	ST_HOOK,
	ST_FINISH,
	ST_REQUEUE,
	ST_HAND_OVER,
	ST_GET,
	ST_PENDING_ROWS,
	ST_RECOVER_SCAN,
	ST_FIND,
	ST_FIND_ALL,
	ST_DELETE_ROW,
	ST_MOVE_ROW,
	ST_COUNT_PENDING,
	ST_COUNT_PENDING_BYTES,
	ST_COUNT_ROWS,
	ST_PRUNE_AGE,
	ST_PRUNE_OLDEST,
	ST_EVENTS,
	ST_SHOW,
	ST_SHOW_ATTEMPTS,
	ST_SHOW_ATTEMPTS_V1,
	ST_SHOW_ATTEMPTS_V2,
	ST_SHOW_HOOKS,
	ST_MAX
};

struct sqlj {
	struct journal base; /* first: the front's handle */
	sqlite3 *db;
	char *path;
	bool readonly;
	int schema; /* the file's version: read-only, it may be an older one */
	uint64_t body_max;
	int64_t keep_ms, max_rows;
	int64_t pending; /* pending async deliveries */
	int64_t pending_bytes; /* ... and the bytes of their bodies */
	uint64_t pruned_batch; /* batch_id at the last journal_prune */
	int64_t rows;    /* all deliveries */
	int64_t top_rowid; /* the largest row id handed out (unique_rowid) */
	bool durable_tx; /* the open transaction runs with synchronous=FULL */
	bool batching;   /* journal_set_batching() */
	bool batch;      /* the batch's transaction is open */
	bool bare_tx;    /* the write under way is in the batch */
	uint64_t batch_id;     /* the open batch's, or the last one's; counts from 1 */
	uint64_t committed_id; /* the last batch committed */
	uint64_t losses;       /* batches lost */
	int sync_fd;           /* the WAL, for the caller's fdatasync; -1: none */
	int wal_frames;        /* in the WAL after the last commit (journal_defer_checkpoints) */
	sqlite3_stmt *st[ST_MAX];
};

/*
 * The helpers the parts share keep their short names in the code; their
 * link names are this backend's own (sqlj_...): journal_pg.c has helpers
 * of the same names (tx_begin, insert_attempt, read_pending, ...).
 */
#define db_error(...) sqlj_db_error(__VA_ARGS__)
#define stmt(...) sqlj_stmt(__VA_ARGS__)
#define done(...) sqlj_done(__VA_ARGS__)
#define bind_text(...) sqlj_bind_text(__VA_ARGS__)
#define exec_stmt(...) sqlj_exec_stmt(__VA_ARGS__)
#define step_done(...) sqlj_step_done(__VA_ARGS__)
#define recount(...) sqlj_recount(__VA_ARGS__)
#define tx_begin(...) sqlj_tx_begin(__VA_ARGS__)
#define tx_begin_one(...) sqlj_tx_begin_one(__VA_ARGS__)
#define tx_commit(...) sqlj_tx_commit(__VA_ARGS__)
#define tx_rollback(...) sqlj_tx_rollback(__VA_ARGS__)
#define unique_rowid(...) sqlj_unique_rowid(__VA_ARGS__)
#define undo_insert(...) sqlj_undo_insert(__VA_ARGS__)
#define abandon_batch(...) sqlj_abandon_batch(__VA_ARGS__)
#define count_pending(...) sqlj_count_pending(__VA_ARGS__)
#define insert_attempt(...) sqlj_insert_attempt(__VA_ARGS__)
#define read_pending(...) sqlj_read_pending(__VA_ARGS__)
#define pragma_ok(...) sqlj_pragma_ok(__VA_ARGS__)

/* journal_sqlite.c: the statements and the counts */
void db_error(struct sqlj *j, const char *what);
sqlite3_stmt *stmt(struct sqlj *j, enum stmt_id id);
void done(sqlite3_stmt *s);
void bind_text(sqlite3_stmt *s, int i, const char *v);
int exec_stmt(struct sqlj *j, enum stmt_id id);
int step_done(struct sqlj *j, sqlite3_stmt *s, const char *what);
int recount(struct sqlj *j);
void count_pending(struct sqlj *j, int old_state, bool old_async, int64_t old_len,
                   int new_state, bool new_async, int64_t new_len);
int insert_attempt(struct sqlj *j, int64_t rowid, const struct journal_attempt *a,
                   bool new_row);

/* journal_sqlite_batch.c: transactions, the batch and checkpoints */
int tx_begin(struct sqlj *j, bool durable);
int tx_begin_one(struct sqlj *j, bool durable);
void tx_rollback(struct sqlj *j);
int tx_commit(struct sqlj *j);
int64_t unique_rowid(struct sqlj *j, int64_t rowid);
void abandon_batch(struct sqlj *j);
void undo_insert(struct sqlj *j, int64_t rowid);
void sq_set_batching(struct journal *base, bool on);
int sq_commit_batch(struct journal *base);
uint64_t sq_batch_id(const struct journal *base);
uint64_t sq_committed_id(const struct journal *base);
uint64_t sq_losses(const struct journal *base);
int sq_sync_fd(const struct journal *base);
void sq_defer_checkpoints(struct journal *base);
int sq_wal_frames(const struct journal *base);
struct journal_checkpointer *sq_checkpointer_open(const struct journal *base, char *err,
                                                size_t errlen);
int sq_checkpoint_here(struct journal *base);

/* journal_sqlite_read.c: reading back, and import */
void read_pending(sqlite3_stmt *s, struct journal_pending *p);
enum result sq_get(struct journal *base, int64_t rowid, struct journal_pending *out);
enum result sq_find(struct journal *base, const char *endpoint, const char *delivery_id,
                    int64_t *rowid);
enum result sq_list(struct journal *base, int64_t since_ms, bool failed_only,
                    bool (*visit)(const struct journal_entry *e, void *arg), void *arg);
enum result sq_read(struct journal *base, int64_t rowid,
                    void (*visit)(const struct journal_entry *e, void *arg), void *arg);
enum result sq_read_attempts(struct journal *base, int64_t rowid,
                             const struct journal_attempt_visitor *v);
enum result sq_endpoints_of(struct journal *base, const char *delivery_id,
                            void (*visit)(const char *endpoint, void *arg), void *arg);
enum result sq_query(struct journal *base, const struct journal_filter *f,
                     bool (*visit)(const struct journal_row *r, void *arg), void *arg);
int sq_import(struct journal *base, const struct journal_entry *e,
              const struct journal_attempt *attempts, size_t nattempts);

/* journal_sqlite_open.c: open and close */
bool pragma_ok(sqlite3 *db, const char *sql);
struct journal *sq_open(const struct journal_opts *o, bool readonly, char *err,
                        size_t errlen);
void sq_close(struct journal *base);

#endif
