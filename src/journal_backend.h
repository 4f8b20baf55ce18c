/*
 * What a journal backend implements (private to journal.c and the
 * backends: journal_sqlite.c, journal_pg.c). journal.c keeps the public
 * calls of journal.h and hands each to the open journal's backend; each
 * backend's handle begins with a `struct journal` whose `ops` points at
 * its table. The calls mean what journal.h says they mean; an entry left
 * NULL is a call the backend has nothing to do for (journal.c answers for
 * it: see the defaults there).
 */
#ifndef HOOKD_JOURNAL_BACKEND_H
#define HOOKD_JOURNAL_BACKEND_H

#include "journal.h"

struct journal_ops {
	const char *name; /* "sqlite", "postgresql" */
	struct journal *(*open)(const struct journal_opts *o, bool readonly, char *err,
	                        size_t errlen);
	void (*close)(struct journal *j);

	/* Group commit (NULL for a backend whose every write is durable when
	 * it returns). set_batching: journal.c has flushed before it turns
	 * batching off. commit_batch: commits the open batch, if any; 0, or -1
	 * when that fails (the batch is lost: journal_batch_lost). */
	void (*set_batching)(struct journal *j, bool on);
	int (*commit_batch)(struct journal *j);
	uint64_t (*batch_id)(const struct journal *j);
	uint64_t (*committed_id)(const struct journal *j);
	uint64_t (*losses)(const struct journal *j);
	int (*sync_fd)(const struct journal *j);
	void (*defer_checkpoints)(struct journal *j);
	int (*wal_frames)(const struct journal *j);
	struct journal_checkpointer *(*checkpointer_open)(const struct journal *j, char *err,
	                                                  size_t errlen);
	int (*checkpoint_here)(struct journal *j);

	enum result (*lookup)(struct journal *j, const char *endpoint, const char *delivery_id,
	                      enum delivery_state *state, int *attempts, int64_t *rowid);
	int64_t (*record)(struct journal *j, const struct journal_new *d);
	/* NULL: journal.c calls record, then attempt_finished. */
	int64_t (*record_final)(struct journal *j, const struct journal_new *d,
	                        const struct journal_attempt *a, enum delivery_state state);
	int (*attempt_started)(struct journal *j, int64_t rowid, int attempt, int64_t started_ms);
	int (*attempt_finished)(struct journal *j, int64_t rowid, const struct journal_attempt *a,
	                        enum delivery_state state, int64_t next_due_ms);
	int (*client_gone)(struct journal *j, int64_t rowid, int attempt);
	int (*hand_over)(struct journal *j, int64_t rowid, bool running, const unsigned char *body,
	                 size_t body_len);
	enum result (*requeue)(struct journal *j, int64_t rowid);
	int (*recover)(struct journal *j, struct journal_pending **out, size_t *n);
	enum result (*get)(struct journal *j, int64_t rowid, struct journal_pending *out);
	enum result (*find)(struct journal *j, const char *endpoint, const char *delivery_id,
	                    int64_t *rowid);
	int (*prune)(struct journal *j, int64_t now_ms);
	int64_t (*pending_count)(struct journal *j);
	int64_t (*pending_bytes)(struct journal *j);

	enum result (*list)(struct journal *j, int64_t since_ms, bool failed_only,
	                    bool (*visit)(const struct journal_entry *e, void *arg), void *arg);
	enum result (*read)(struct journal *j, int64_t rowid,
	                    void (*visit)(const struct journal_entry *e, void *arg), void *arg);
	enum result (*read_attempts)(struct journal *j, int64_t rowid,
	                             const struct journal_attempt_visitor *v);
	enum result (*endpoints_of)(struct journal *j, const char *delivery_id,
	                            void (*visit)(const char *endpoint, void *arg), void *arg);
	enum result (*query)(struct journal *j, const struct journal_filter *f,
	                     bool (*visit)(const struct journal_row *r, void *arg), void *arg);

	/* A journal shared by several instances (NULL for SQLite: the
	 * defaults are "always up", "nothing to renew", "nothing to adopt",
	 * "always its turn"). */
	bool (*up)(struct journal *j);
	int (*heartbeat)(struct journal *j);
	int (*reconnect_fd)(struct journal *j);
	int64_t (*reconnect_lag_ms)(struct journal *j);
	int (*release)(struct journal *j);
	int (*adopt)(struct journal *j, size_t max, struct journal_pending **out, size_t *n);
	int (*steal)(struct journal *j, size_t max, int64_t queued_before_ms,
	             struct journal_pending **out, size_t *n);
	void (*let_go)(struct journal *j, int64_t rowid);
	int (*take_turn)(struct journal *j, int64_t rowid, const char *key, int attempt,
	                         int64_t started_ms);
	int (*import)(struct journal *j, const struct journal_entry *e,
	              const struct journal_attempt *attempts, size_t nattempts);
};

struct journal {
	const struct journal_ops *ops;
	bool lost_unflushed; /* a batch lost since the last journal_flush */
	journal_interrupted_fn interrupted; /* journal_on_interrupted's, or NULL */
	void *interrupted_arg;
};

extern const struct journal_ops journal_sqlite_ops;
extern const struct journal_ops journal_pg_ops;

/* What both backends store alike: whether a state is a pending async
 * delivery (journal_max counts those), and a delivery's headers as
 * "Name: value\n" lines, credential headers left out, CR and LF (which
 * HTTP forbids anyway) made spaces so that each header stays one line. */
bool journal_pending_async(int state, bool async);
char *journal_headers_text(const struct journal_new *d); /* malloc'd */

/* A backend's batch was lost, none of it committed (its commit failed, or
 * the transaction went with a statement or the connection): the next
 * journal_flush says so. */
void journal_batch_lost(struct journal *j);

/* recover and adopt, once committed: a sync delivery they marked FAILED
 * (journal_on_interrupted). */
void journal_interrupted(struct journal *j, const char *endpoint, const char *event);

/* journal_missing for SQLite: no journal.db in state_dir yet. */
bool journal_sqlite_missing(const char *state_dir);

#endif
