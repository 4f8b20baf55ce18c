/*
 * What the files of the PostgreSQL journal backend share (journal_pg.c and
 * the journal_pg_*.c beside it; nothing else includes this): libpq's calls,
 * loaded on first use, the handle, statements' parameters, and the
 * functions one file calls in another.
 */
#ifndef HOOKD_JOURNAL_PG_PRIVATE_H
#define HOOKD_JOURNAL_PG_PRIVATE_H

#include "journal_backend.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * The helpers the files share keep their short names in the code; their
 * link names are this backend's own (pgj_...), apart from the SQLite
 * backend's helpers of the same names (tx_begin, insert_attempt, ...) and
 * anything else in the library.
 */
#define pq_load(...) pgj_pq_load(__VA_ARGS__)
#define fence_find(...) pgj_fence_find(__VA_ARGS__)
#define fence_put(...) pgj_fence_put(__VA_ARGS__)
#define fence_del(...) pgj_fence_del(__VA_ARGS__)
#define p_text(...) pgj_p_text(__VA_ARGS__)
#define p_int(...) pgj_p_int(__VA_ARGS__)
#define p_bool(...) pgj_p_bool(__VA_ARGS__)
#define p_null(...) pgj_p_null(__VA_ARGS__)
#define p_bytes(...) pgj_p_bytes(__VA_ARGS__)
#define p_free(...) pgj_p_free(__VA_ARGS__)
#define reconnect_end(...) pgj_reconnect_end(__VA_ARGS__)
#define connect_now(...) pgj_connect_now(__VA_ARGS__)
#define connect_bound_ms(...) pgj_connect_bound_ms(__VA_ARGS__)
#define ensure_up(...) pgj_ensure_up(__VA_ARGS__)
#define run(...) pgj_run(__VA_ARGS__)
#define run_cmd(...) pgj_run_cmd(__VA_ARGS__)
#define run_prepared(...) pgj_run_prepared(__VA_ARGS__)
#define run_prepared_cmd(...) pgj_run_prepared_cmd(__VA_ARGS__)
#define tx_begin(...) pgj_tx_begin(__VA_ARGS__)
#define tx_commit(...) pgj_tx_commit(__VA_ARGS__)
#define tx_rollback(...) pgj_tx_rollback(__VA_ARGS__)
#define commit_batch(...) pgj_commit_batch(__VA_ARGS__)
#define batch_join(...) pgj_batch_join(__VA_ARGS__)
#define batch_add_row(...) pgj_batch_add_row(__VA_ARGS__)
#define col_i64(...) pgj_col_i64(__VA_ARGS__)
#define col_int(...) pgj_col_int(__VA_ARGS__)
#define col_bool(...) pgj_col_bool(__VA_ARGS__)
#define col_text(...) pgj_col_text(__VA_ARGS__)
#define col_text_or_null(...) pgj_col_text_or_null(__VA_ARGS__)
#define col_bytes(...) pgj_col_bytes(__VA_ARGS__)
#define cmd_tuples(...) pgj_cmd_tuples(__VA_ARGS__)
#define usable(...) pgj_usable(__VA_ARGS__)
#define writable(...) pgj_writable(__VA_ARGS__)
#define count_change(...) pgj_count_change(__VA_ARGS__)
#define insert_attempt(...) pgj_insert_attempt(__VA_ARGS__)
#define renew_lease(...) pgj_renew_lease(__VA_ARGS__)
#define sb_id_array(...) pgj_sb_id_array(__VA_ARGS__)
#define sb_held_ids(...) pgj_sb_held_ids(__VA_ARGS__)

/* ---- libpq, loaded on first use ---- */

#define PQ_CALLS(X) \
	X(PQclear) \
	X(PQcmdTuples) \
	X(PQconndefaults) \
	X(PQconnectdbParams) \
	X(PQconninfo) \
	X(PQconninfoFree) \
	X(PQconninfoParse) \
	X(PQdb) \
	X(PQerrorMessage) \
	X(PQexec) \
	X(PQexecParams) \
	X(PQexecPrepared) \
	X(PQfinish) \
	X(PQfreemem) \
	X(PQgetisnull) \
	X(PQgetlength) \
	X(PQgetvalue) \
	X(PQhost) \
	X(PQntuples) \
	X(PQport) \
	X(PQprepare) \
	X(PQresultErrorField) \
	X(PQresultErrorMessage) \
	X(PQresultStatus) \
	X(PQserverVersion) \
	X(PQsetNoticeProcessor) \
	X(PQstatus) \
	X(PQtransactionStatus) \
	X(PQunescapeBytea)

#define PQ_POINTER(f) extern __typeof__(f) *dl_##f;
PQ_CALLS(PQ_POINTER)

#define PQclear dl_PQclear
#define PQcmdTuples dl_PQcmdTuples
#define PQconndefaults dl_PQconndefaults
#define PQconnectdbParams dl_PQconnectdbParams
#define PQconninfo dl_PQconninfo
#define PQconninfoFree dl_PQconninfoFree
#define PQconninfoParse dl_PQconninfoParse
#define PQdb dl_PQdb
#define PQerrorMessage dl_PQerrorMessage
#define PQexec dl_PQexec
#define PQexecParams dl_PQexecParams
#define PQexecPrepared dl_PQexecPrepared
#define PQfinish dl_PQfinish
#define PQfreemem dl_PQfreemem
#define PQgetisnull dl_PQgetisnull
#define PQgetlength dl_PQgetlength
#define PQgetvalue dl_PQgetvalue
#define PQhost dl_PQhost
#define PQntuples dl_PQntuples
#define PQport dl_PQport
#define PQprepare dl_PQprepare
#define PQresultErrorField dl_PQresultErrorField
#define PQresultErrorMessage dl_PQresultErrorMessage
#define PQresultStatus dl_PQresultStatus
#define PQserverVersion dl_PQserverVersion
#define PQsetNoticeProcessor dl_PQsetNoticeProcessor
#define PQstatus dl_PQstatus
#define PQtransactionStatus dl_PQtransactionStatus
#define PQunescapeBytea dl_PQunescapeBytea

bool pq_load(char *err, size_t errlen);

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000

/* ---- this process's leases: rowid -> fence ---- */

struct fence_slot {
	int64_t rowid; /* 0: empty */
	int64_t fence;
	int run_attempt; /* the attempt this process marked running, 0: none */
};

struct fence_map {
	struct fence_slot *slots;
	size_t cap, n; /* cap: a power of two */
};

struct fence_slot *fence_find(struct fence_map *m, int64_t rowid);
void fence_put(struct fence_map *m, int64_t rowid, int64_t fence, int run_attempt);
void fence_del(struct fence_map *m, int64_t rowid);

/* ---- the statements prepared on each connection (journal_pg_statements.c) ---- */

/* take_turn's advisory lock: (0x686f6f6b, hashtext(key)), the two-int
 * space, which never meets journal_pg.c's one-bigint keys. */
#define LOCK_KEY_CLASS "1752133483"

enum pg_stmt {
	STMT_LOOKUP,
	STMT_RECORD,
	STMT_STARTED,
	STMT_ATTEMPT,
	STMT_HOOK,
	STMT_FINISH,
	STMT_TURN_LOCK,
	STMT_TURN_WAIT,
	STMT_RENEW_LEASE,
	STMT_PENDING,
	STMT_N
};

struct pg_statement {
	const char *name; /* on the server, for the session */
	const char *sql;
};

extern const struct pg_statement pg_statements[STMT_N];

/* ---- the handle ---- */

struct pg_journal {
	struct journal base;
	PGconn *conn;                /* NULL: down */
	struct reconnect *reconnect; /* down: one under way (ensure_up), or NULL */
	int64_t instances_pruned_ms; /* prune_instances: when last, 0: never */
	char *url, *password, *instance;
	char *where; /* "host:port/dbname" for messages: never the connection string */
	bool readonly;
	bool noschema; /* read-only on a database hookd has not written yet */
	int schema;    /* its version: read-only, it may be an older one */
	uint64_t body_max;
	int64_t keep_ms, max_rows, lease_ms;
	int64_t backoff_ms, retry_at_ms; /* while down */
	int64_t reconnect_lag_ms;         /* journal_reconnect_lag_ms */
	int64_t pending, pending_bytes, counted_at_ms;
	bool counted;
	/* Reconnected: the rows owned but not held are let go (release_unheld). */
	bool release_due;
	struct fence_map fences;
	/* The statements prepared on conn, a bit each (1 << enum pg_stmt):
	 * none on a new connection; and those of them whose plan no longer
	 * fits the table (deallocated before they are prepared again). */
	uint32_t prepared, stale;
	/* Group commit (journal.h): the batch's transaction, and the rows it
	 * recorded, whose fences go if it is lost. */
	bool batching, batch;
	uint64_t batch_id, committed_id, losses;
	int64_t *batch_rows;
	size_t nbatch_rows, batch_rows_cap;
};

struct pg_journal *pg_of(struct journal *j);

/* ---- parameters ---- */

#define MAX_PARAMS 24

struct params {
	int n;
	const char *val[MAX_PARAMS];
	int len[MAX_PARAMS];
	int fmt[MAX_PARAMS];
	char num[MAX_PARAMS][24];
	char *owned[MAX_PARAMS];
};

void p_text(struct params *p, const char *s);
void p_int(struct params *p, int64_t v);
void p_bool(struct params *p, bool v);
void p_null(struct params *p);
void p_bytes(struct params *p, const void *b, size_t n);
void p_free(struct params *p);

/* ---- the connection (journal_pg_connect.c) ---- */

/*
 * A reconnect runs on a thread of its own, with libpq's blocking connect as
 * at open (connect_timeout for each host of a list, a host name resolved),
 * so that no call waits for the network: a host that drops packets would
 * otherwise hold the daemon's loop up to connect_timeout, and hookd would
 * answer nothing meanwhile, not even /healthz. The thread works on copies;
 * when done it leaves its connection here and makes `wake` readable (the
 * daemon's loop waits on it: journal_reconnect_fd), and the next call or
 * heartbeat takes the connection over (joining the thread, which touches
 * nothing once done). A journal closed first waits for the thread
 * (reconnect_end).
 */
struct reconnect {
	pthread_t thread;
	pthread_mutex_t lock;
	bool done;            /* under lock */
	PGconn *conn;         /* done: connected and set up, or NULL */
	char err[512];        /* done without conn: why */
	int wake[2];          /* a pipe: readable once done */
	char *url, *password;
	bool readonly;
};

void reconnect_end(struct pg_journal *j);
PGconn *connect_now(const char *url, const char *password, bool readonly, char **where,
                    char *err, size_t errlen);
int64_t connect_bound_ms(PGconn *c);
bool ensure_up(struct pg_journal *j);
PGresult *run(struct pg_journal *j, const char *what, const char *sql, struct params *p);
int run_cmd(struct pg_journal *j, const char *what, const char *sql, struct params *p);
PGresult *run_prepared(struct pg_journal *j, const char *what, enum pg_stmt s, struct params *p);
int run_prepared_cmd(struct pg_journal *j, const char *what, enum pg_stmt s, struct params *p);
int tx_begin(struct pg_journal *j);
int tx_commit(struct pg_journal *j);
void tx_rollback(struct pg_journal *j);
int commit_batch(struct pg_journal *j);
bool batch_join(struct pg_journal *j);
void batch_add_row(struct pg_journal *j, int64_t rowid);
int pg_commit_batch(struct journal *jj);
void pg_set_batching(struct journal *jj, bool on);
uint64_t pg_batch_id(const struct journal *jj);
uint64_t pg_committed_id(const struct journal *jj);
uint64_t pg_losses(const struct journal *jj);
int64_t col_i64(const PGresult *r, int row, int col);
int col_int(const PGresult *r, int row, int col);
bool col_bool(const PGresult *r, int row, int col);
const char *col_text(const PGresult *r, int row, int col);
const char *col_text_or_null(const PGresult *r, int row, int col);
unsigned char *col_bytes(const PGresult *r, int row, int col, size_t *len);
int64_t cmd_tuples(PGresult *r);
bool pg_up(struct journal *jj);
int pg_reconnect_fd(struct journal *jj);
int64_t pg_reconnect_lag_ms(struct journal *jj);

/* ---- the calls' shared steps (journal_pg.c) ---- */

bool usable(struct pg_journal *j);
bool writable(struct pg_journal *j);
void count_change(struct pg_journal *j, bool was, int64_t old_len, bool is,
                  int64_t new_len);
int insert_attempt(struct pg_journal *j, int64_t rowid, const struct journal_attempt *a,
                   int replay, const char *instance);

/* ---- leases (journal_pg_lease.c) ---- */

int renew_lease(struct pg_journal *j);
int pg_heartbeat(struct journal *jj);
int pg_release(struct journal *jj);
void pg_let_go(struct journal *jj, int64_t rowid);

/* ---- take-overs (journal_pg_take.c) ---- */

void sb_id_array(struct strbuf *sb, int64_t id);
/* "{id,...}": the rows this instance holds a fence for. */
void sb_held_ids(struct strbuf *sb, const struct pg_journal *j);

int pg_recover(struct journal *jj, struct journal_pending **out, size_t *n);
int pg_adopt(struct journal *jj, size_t max, struct journal_pending **out, size_t *n);
int pg_steal(struct journal *jj, size_t max, int64_t queued_before_ms,
             struct journal_pending **out, size_t *n);
enum result pg_get(struct journal *jj, int64_t rowid, struct journal_pending *out);

/* ---- reading back, import (journal_pg_read.c) ---- */

enum result pg_list(struct journal *jj, int64_t since_ms, bool failed_only,
                    bool (*visit)(const struct journal_entry *e, void *arg), void *arg);
enum result pg_read(struct journal *jj, int64_t rowid,
                    void (*visit)(const struct journal_entry *e, void *arg), void *arg);
enum result pg_read_attempts(struct journal *jj, int64_t rowid,
                             const struct journal_attempt_visitor *v);
enum result pg_endpoints_of(struct journal *jj, const char *delivery_id,
                            void (*visit)(const char *endpoint, void *arg), void *arg);
enum result pg_query(struct journal *jj, const struct journal_filter *f,
                     bool (*visit)(const struct journal_row *r, void *arg), void *arg);
int pg_import(struct journal *jj, const struct journal_entry *e,
              const struct journal_attempt *attempts, size_t nattempts);

#endif
