/*
 * The delivery journal (README "Delivery guarantees", "Running on several
 * machines"): SQLite in state_dir/journal.db (journal_sqlite.c), or
 * PostgreSQL shared by several hookd instances (journal_pg.c); journal.c
 * hands each call to the open one (journal_backend.h).
 * Every verified delivery is recorded with its headers (never credential
 * headers), its body, each attempt and each hook's outcome. It backs
 * idempotency by (endpoint, delivery id), async mode and retries, and the
 * `events`, `show` and `replay` commands.
 *
 * All calls are made from the daemon's one thread (or from a CLI command's
 * own connection); SQLite's busy timeout lets the CLI read while the daemon
 * writes.
 *
 * A shared journal (journal_shared): every pending delivery is held by one
 * instance under that instance's lease (README "Running on several
 * machines"): the instance that recorded or adopted it renews its lease,
 * one for all it holds (journal_heartbeat), and when the lease runs out
 * another instance adopts its deliveries (journal_adopt). Each take of a lease bumps the row's fencing token; a
 * write about a delivery whose lease this instance lost changes nothing and
 * returns JOURNAL_LOST.
 */
#ifndef HOOKD_JOURNAL_H
#define HOOKD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct journal;

/* A write about a delivery another instance has taken since (shared
 * journal: the lease ran out): nothing was written. */
#define JOURNAL_LOST (-2)
/* An outcome for a delivery whose row is not there (SQLite: a batch that
 * was lost took it with it; its id is never given again): nothing was
 * written, and nothing ever will be under that id. */
#define JOURNAL_GONE (-3)
/* journal_take_turn: not its turn, but only because an earlier delivery of
 * its key, held by this instance, waits queued (none of the key runs). */
#define JOURNAL_TURN_HERE (-4)

enum delivery_state {
	DSTATE_QUEUED,     /* accepted, waiting for a slot or its key */
	DSTATE_RUNNING,    /* an attempt is under way */
	DSTATE_RETRY_WAIT, /* failed retryably; due again at next_due */
	DSTATE_SUCCEEDED,  /* final, 2xx (unhandled included) */
	DSTATE_FAILED,     /* final, not 2xx */
	DSTATE_SKIPPED,    /* final, 200: its event's match or a hook's exit said skip */
};
const char *delivery_state_name(enum delivery_state s);
/* Pending: queued, running or waiting for a retry (a resend gets 409). */
bool delivery_state_pending(enum delivery_state s);

struct journal_header {
	const char *name;
	const char *value;
};

struct journal_new {
	const char *endpoint;
	const char *delivery_id; /* sender's id, or the generated one */
	const char *event;
	const char *remote_addr;
	bool async;
	int64_t received_ms; /* wall clock */
	const struct journal_header *headers; /* credentials already removed */
	size_t nheaders;
	const unsigned char *body;
	size_t body_len;
	/* The caller's own journal_lookup found no row for this id just now
	 * (or the id is one hookd made): journal_record does not look again. */
	bool known_new;
	/* Its serialization key (NULL: none): a shared journal orders and
	 * excludes by it across instances (journal_take_turn). */
	const char *key;
	/* A sync delivery that waits for a run slot or its key before its
	 * attempt starts: recorded QUEUED, like an async one, and marked
	 * running by journal_attempt_started when it leaves the line. */
	bool waits;
};

/* A hook's outcome within one attempt. */
struct journal_hook {
	const char *hook;   /* relative path */
	int exit_code;      /* -1: none */
	const char *signal; /* "SIGKILL" or NULL */
	int64_t ms;
	const char *error;  /* NULL or "timed out after 30s" */
	const char *output; /* the kept tail, may be NULL */
	size_t output_len;
};

struct journal_attempt {
	int attempt; /* 1-based */
	int64_t started_ms, finished_ms;
	int http;
	const char *status; /* "ok", "failed", "timeout", "skipped", "unhandled" */
	const char *error;  /* NULL or the reason */
	bool replay;        /* read back: it was the attempt a `hookd replay` asked for */
	/* A sync delivery's sender hung up before its answer (its client timed
	 * out, the connection dropped while the hook ran): the http above is
	 * what was due, never what the sender got (README "Delivery
	 * guarantees"). Known when the attempt ends, written with it; learnt
	 * later (while the answer waited for the commit): journal_client_gone. */
	bool client_gone;
	const char *instance; /* read back from a shared journal: who ran it; else NULL */
	const struct journal_hook *hooks;
	size_t nhooks;
};

/* A delivery as read back (journal_get), or as listed at start
 * (journal_recover: without its body and headers). */
struct journal_pending {
	int64_t rowid;
	char *endpoint, *delivery_id, *event, *remote_addr;
	enum delivery_state state;
	int attempts;     /* attempts made so far */
	int replay_attempt; /* the attempt the last `hookd replay` asked for, 0: none */
	int64_t next_due_ms;
	int64_t received_ms;
	/* The serialization key recorded at acceptance (NULL: none), in a
	 * list of a journal that keeps it (key_known: PostgreSQL's, for its
	 * turns); SQLite's list does not (the key is in the payload). */
	char *key;
	bool key_known;
	unsigned char *body; /* NULL in journal_recover's list */
	size_t body_len;     /* the kept body's length (the list: the received length) */
	bool body_complete; /* false when the kept body was cut */
	char **headers;     /* "Name: value", n of them */
	size_t nheaders;
};
void journal_pending_free(struct journal_pending *p);

/* Where the journal is and how it behaves (journal_opts_from_config). */
struct journal_opts {
	const char *state_dir; /* SQLite: state_dir/journal.db */
	const char *url;       /* PostgreSQL connection string; NULL: SQLite */
	const char *password;  /* PostgreSQL: journal_password_file's; NULL: libpq's own */
	const char *instance;  /* this hookd's name in a shared journal */
	int64_t lease_ms;      /* a shared journal's lease */
	uint64_t body_max;     /* journal_body_max */
	int64_t keep_ms, max_rows; /* pruning: journal_keep, journal_max */
};
struct config;
void journal_opts_from_config(const struct config *cfg, struct journal_opts *o);
/* Whether the config has a journal at all (state_dir or journal). */
bool journal_configured(const struct config *cfg);

/*
 * Opens (creating state_dir 0700, the database and the schema if missing,
 * migrating an older schema) the journal.
 */
struct journal *journal_open(const struct journal_opts *o, char *err, size_t errlen);
/* Read-only use by `events`/`show` while the daemon runs. */
struct journal *journal_open_readonly(const struct journal_opts *o, char *err, size_t errlen);
/* Whether hookd has not written a journal there yet (a shared one: never). */
bool journal_missing(const struct journal_opts *o);
/* "sqlite" or "postgresql". */
const char *journal_backend_name(const struct journal *j);
void journal_close(struct journal *j); /* NULL is fine; flushes first */

/*
 * Batching (the daemon turns it on): the writes that need not be durable
 * at once, a sync delivery's journal_record and every
 * journal_attempt_finished, are left in one open write transaction until
 * journal_flush() commits them together; any other write commits the
 * batch first. A write that fails part way undoes what it wrote, or, when
 * it cannot (an attempt row that replaced an older one), the whole batch,
 * which is then lost like a batch whose commit failed. A batch saves a
 * commit per write under load; its writes are visible to this connection
 * at once and to other readers (the CLI) after the flush, so the caller
 * flushes soon (groupcommit.c: once the event loop has nothing else to
 * do) and before answering a sync delivery. journal_flush returns 0, or
 * -1 when a batch was lost since the last flush (logged). Off by default;
 * turning it off flushes.
 */
void journal_set_batching(struct journal *j, bool on);
int journal_flush(struct journal *j); /* NULL and no batch are fine */
bool journal_batches(const struct journal *j); /* whether the backend can */

/*
 * Group commit. While batching, an async delivery's journal_record joins
 * the batch too, and is not durable until the batch is committed
 * (journal_flush) and then the WAL synced: fdatasync(journal_sync_fd()),
 * begun after that commit. A backend whose commit is durable when it
 * returns (PostgreSQL) has no sync fd (-1): its batch is durable once
 * committed. (PostgreSQL batches journal_record only; see journal_pg.c.) Batches are numbered from 1: journal_batch_id is
 * the open batch's (the one a write just joined), journal_committed_id the
 * last one committed. A batch is lost when its commit fails or SQLite rolls
 * it back; journal_losses counts them, so a caller waiting on a batch knows
 * to look its row up again.
 */
uint64_t journal_batch_id(const struct journal *j);
uint64_t journal_committed_id(const struct journal *j);
uint64_t journal_losses(const struct journal *j);
int journal_sync_fd(const struct journal *j); /* -1 for a read-only journal */

/*
 * Checkpoints off the daemon's thread. journal_defer_checkpoints turns
 * SQLite's auto-checkpoint (copying the WAL into the database after a
 * commit, with its fsyncs, on the committing thread) off; journal_wal_frames
 * then says how many frames the WAL holds after the last commit, and the
 * caller runs journal_checkpoint on a connection of its own
 * (journal_checkpointer_open), on one other thread, when they are many.
 * A checkpoint touches nothing of the daemon's but its own connection.
 */
struct journal_checkpointer;
void journal_defer_checkpoints(struct journal *j);
int journal_wal_frames(const struct journal *j);
struct journal_checkpointer *journal_checkpointer_open(const struct journal *j, char *err,
                                                       size_t errlen);
int journal_checkpoint(struct journal_checkpointer *c, char *err, size_t errlen); /* 0, -1 */
void journal_checkpointer_close(struct journal_checkpointer *c); /* NULL is fine */
/* The same on the daemon's own connection, between batches. While the
 * daemon commits, a checkpoint on another thread never catches up with the
 * last frame, and only a WAL that was copied whole starts over: this one
 * does (it copies only what the others left), and keeps the WAL's size
 * bounded. 0, or -1 (logged). */
int journal_checkpoint_here(struct journal *j);

/*
 * Idempotency look-up. RESULT_OK, with state/attempts/rowid filled, when
 * (endpoint, id) is known; RESULT_UNKNOWN when not; RESULT_ERROR.
 */
enum result journal_lookup(struct journal *j, const char *endpoint, const char *delivery_id,
                           enum delivery_state *state, int *attempts, int64_t *rowid);

/*
 * Records a delivery as QUEUED (async: committed durably, fsync'd, before
 * returning; while batching, see group commit above; or a sync one that
 * waits: d->waits) or RUNNING (sync, its attempt starting now). A delivery
 * id already known is updated in place (a resend of a failed delivery): its
 * state goes back to queued/running, its attempts and first receipt time
 * are kept, its headers and body replaced (event and remote_addr too
 * unless NULL). A sync delivery's body is stored already cut to body_max: it is only read once
 * final. Credential headers are dropped here too. Returns the rowid, -1 on
 * error, or JOURNAL_LOST when a shared journal has the id from another
 * instance in the meantime, pending or final (look it up again). Shared,
 * a sync delivery with a key is recorded QUEUED: journal_take_turn starts it.
 */
int64_t journal_record(struct journal *j, const struct journal_new *d);

/*
 * A sync delivery with nothing to run (no hook for its event, a `match`
 * that skips it, a route that failed), recorded final at once: what
 * journal_record and then journal_attempt_finished(a, state) would leave,
 * in one write where the backend can (SQLite, for an id it has not seen:
 * d->known_new). state: SUCCEEDED, FAILED or SKIPPED. Returns as
 * journal_record does; an outcome that could not be recorded after the
 * record is logged, and the rowid returned (as attempt_finished's caller
 * would go on).
 */
int64_t journal_record_final(struct journal *j, const struct journal_new *d,
                             const struct journal_attempt *a, enum delivery_state state);

/* The line for an attempt's outcome that was not recorded: rc JOURNAL_LOST
 * (another instance took the delivery over), JOURNAL_GONE (its row is not
 * there) or -1 (the journal failed). */
struct log_delivery;
void journal_log_unrecorded(const struct log_delivery *who, int rc);
/* The line for a delivery recovery or adoption found interrupted (logged
 * by the backends once it is written): why as its row's error now
 * ("interrupted", "interrupted before it ran"), async: queued again, else
 * failed; instance: whose run it was (NULL: not told). */
void journal_log_interrupted(const struct log_delivery *who, const char *why, bool async,
                             const char *instance);

/* Marks an attempt as started (state RUNNING). This and the two below
 * return JOURNAL_LOST when a shared journal's lease on the delivery was
 * lost (nothing written). */
int journal_attempt_started(struct journal *j, int64_t rowid, int attempt, int64_t started_ms);

/*
 * Records a finished attempt and the delivery's new state: SUCCEEDED,
 * FAILED, SKIPPED, or RETRY_WAIT with next_due_ms. When the state is final the kept
 * body is cut to body_max. Shared, an outcome that could not be written
 * (-1: the journal down) leaves the delivery held by this instance (under
 * its lease, as long as it renews it): the caller writes it again later
 * (outbox.h). JOURNAL_GONE: the delivery's row is not there.
 */
int journal_attempt_finished(struct journal *j, int64_t rowid, const struct journal_attempt *a,
                             enum delivery_state state, int64_t next_due_ms);

/*
 * Marks attempt `attempt` of the delivery as one whose answer never
 * reached its sender (journal_attempt.client_gone), once its outcome is
 * recorded: the sender hung up while the answer waited for the commit.
 * Not fenced (the attempt's outcome is recorded, and nobody writes it
 * again); batched like journal_attempt_finished. 0, or -1 (the caller
 * logs it, with the delivery's keys).
 */
int journal_client_gone(struct journal *j, int64_t rowid, int attempt);

/*
 * A pending sync delivery goes on as an async one (respond_within): its
 * row becomes async, with its whole body (body, body_len: as received) if
 * journal_record stored it cut, committed durably, so that recovery takes
 * it up after a crash. running: its attempt is under way and stays
 * recorded so; else it waits for a slot or its key, and is QUEUED. 0, or
 * -1 (also when the row is not a pending sync one).
 */
int journal_hand_over(struct journal *j, int64_t rowid, bool running, const unsigned char *body,
                      size_t body_len);

/*
 * Marks a delivery queued again (replay), due now, committed durably; its
 * next attempt is recorded as the replay (journal_attempt.replay). A
 * replay has no client waiting, so it becomes an async delivery (counted by
 * journal_pending_count, recovered after a restart). RESULT_OK, UNKNOWN,
 * PENDING (already pending: nothing changed), BODY_CUT (its body was cut:
 * nothing changed), or ERROR.
 */
enum result journal_requeue(struct journal *j, int64_t rowid);

/*
 * At start: every async delivery that is QUEUED, RETRY_WAIT or RUNNING,
 * in arrival order, without its body and headers (read each back with
 * journal_get: the pending bodies are never all in memory at once; the
 * list holds what a delivery needs to wait, recovery.c). A RUNNING one
 * died with hookd: that run is counted as
 * an attempt (recorded as such: http 0, status and error "interrupted") and
 * it becomes QUEUED, due now. Sync deliveries left RUNNING are marked FAILED
 * the same way (that run counted too); those left QUEUED (they waited for a
 * slot or their key and never ran) are marked FAILED with no attempt. Call
 * it before recording new deliveries. The caller frees *out with
 * journal_pending_free() on each element and free().
 */
int journal_recover(struct journal *j, struct journal_pending **out, size_t *n);
/* Called for each sync delivery journal_recover or journal_adopt marks
 * FAILED, once that is committed: the delivery ended there (its endpoint
 * and event). NULL: nobody is told. */
typedef void (*journal_interrupted_fn)(const char *endpoint, const char *event, void *arg);
void journal_on_interrupted(struct journal *j, journal_interrupted_fn fn, void *arg);

/* One delivery by rowid, whole (replay, recovery, and a pending async
 * delivery's attempt): RESULT_OK, UNKNOWN or ERROR. */
enum result journal_get(struct journal *j, int64_t rowid, struct journal_pending *out);
/* rowid for (endpoint or NULL: any, id): RESULT_OK, UNKNOWN, AMBIGUOUS (known
 * at several endpoints) or ERROR. */
enum result journal_find(struct journal *j, const char *endpoint, const char *delivery_id,
                         int64_t *rowid);

/* Deletes final deliveries older than keep, and the oldest final ones past
 * max_rows, at most JOURNAL_PRUNE_BATCH a call so that the event loop never
 * stalls. Returns how many it deleted, -1 on error: a full batch means more
 * may be due, so call again soon. Cheap when nothing is due; called from a
 * timer. */
#define JOURNAL_PRUNE_BATCH 500
int journal_prune(struct journal *j, int64_t now_ms);

/* Number of pending async deliveries (for journal_max overload). */
int64_t journal_pending_count(struct journal *j);
/* The bytes of their bodies (for journal_max_bytes); counted from the
 * journal at open, after recovery and a lost batch, kept up to date by every
 * write that changes them. */
int64_t journal_pending_bytes(struct journal *j);

/*
 * Reading back, for `hookd events` and `hookd show` (journal_format.c). Each
 * call hands what it reads to `visit`, one row at a time; the strings and
 * the body live until the visit returns. The caller builds its output in
 * memory, so that no read is held open while a slow pager takes it: a
 * reader holds back the daemon's WAL checkpoints.
 */
struct journal_entry {
	const char *endpoint, *delivery_id, *event;
	enum delivery_state state;
	int http; /* the last attempt's; 0 before any */
	int attempts;
	int64_t received_ms; /* first receipt */
	/* The rest only from journal_read. */
	const char *remote_addr;
	bool async;
	int64_t updated_ms, next_due_ms;
	const char *status, *error; /* NULL: none */
	const char *headers;        /* "Name: value" lines */
	const unsigned char *body;  /* the kept part, body_kept bytes */
	size_t body_kept;
	int64_t body_len; /* as received */
	bool body_cut;
	int run_attempt; /* while RUNNING: which attempt, since when */
	int64_t run_started_ms;
	/* The attempt the last `hookd replay` asked for, 0: none. Only
	 * journal_import reads it (journal_read leaves it 0: journal_get says). */
	int replay_attempt;
};

/* Deliveries received at or after since_ms, newest first by first receipt;
 * failed_only: FAILED, or pending again after an attempt that was not 2xx.
 * Stops when visit returns false. RESULT_OK or RESULT_ERROR (logged). */
enum result journal_list(struct journal *j, int64_t since_ms, bool failed_only,
                         bool (*visit)(const struct journal_entry *e, void *arg), void *arg);
/* One delivery in full: RESULT_OK (visited), RESULT_UNKNOWN when it is not
 * (or no longer) there, RESULT_ERROR. */
enum result journal_read(struct journal *j, int64_t rowid,
                         void (*visit)(const struct journal_entry *e, void *arg), void *arg);

/* A delivery's attempts in order, each followed by its hooks' outcomes. The
 * attempt comes without hooks (nhooks 0); finished_ms is 0 when its end is
 * unknown, a hook's exit_code -1 when it has none. */
struct journal_attempt_visitor {
	void (*attempt)(const struct journal_attempt *a, void *arg);
	void (*hook)(const struct journal_hook *h, void *arg);
	void *arg;
};
enum result journal_read_attempts(struct journal *j, int64_t rowid,
                                  const struct journal_attempt_visitor *v);

/* The endpoints that know delivery_id, in name order (for an ambiguous id).
 * RESULT_ERROR only when nothing could be read. */
enum result journal_endpoints_of(struct journal *j, const char *delivery_id,
                                 void (*visit)(const char *endpoint, void *arg), void *arg);

/*
 * The deliveries page's list (webapi.c): newest first (by first receipt,
 * then rowid), the filters given (NULL or -1: any), from below the cursor
 * (before_ms, before_rowid: the last row of the previous page; 0: the top),
 * at most limit rows. Stops when visit returns false. RESULT_OK or
 * RESULT_ERROR (logged).
 */
struct journal_filter {
	int state;              /* enum delivery_state, -1: any */
	const char *endpoint;   /* exact */
	const char *event_glob; /* SQLite GLOB (fnmatch-like, case-sensitive) */
	const char *text;       /* bytes the kept body holds */
	int64_t since_ms;       /* received at or after */
	int64_t before_ms, before_rowid;
	int limit;
};
struct journal_row {
	int64_t rowid;
	int64_t received_ms;
	const char *endpoint, *delivery_id, *event;
	enum delivery_state state;
	int http; /* the last attempt's; 0 before any */
	int attempts;
	int64_t next_due_ms;
	const char *status; /* the last attempt's, NULL: none */
	int64_t last_ms;    /* the last attempt's duration, -1: none or unfinished */
	bool client_gone;   /* the last attempt's (journal_attempt.client_gone) */
};
enum result journal_query(struct journal *j, const struct journal_filter *f,
                          bool (*visit)(const struct journal_row *r, void *arg), void *arg);

/*
 * Several instances (journal_shared). Without sharing (SQLite) these do
 * nothing: always up, nothing to renew or adopt, always a delivery's turn.
 */
bool journal_shared(const struct journal *j);
/* Whether the store answers; a journal that is down fails every call
 * quickly and tries to reconnect (with backoff) on the next one. */
bool journal_up(struct journal *j);
/* Renews this instance's lease, which covers every delivery it holds, in
 * one statement whatever their number (and now and then forgets the lease
 * rows of instances gone for over a day); reconnects a journal that is
 * down (without waiting: see journal_reconnect_fd),
 * and after an outage lets go of the deliveries it owns but does not hold
 * (a take whose commit it never heard back), for journal_adopt. Called
 * every lease/3. 0, or -1 (down). */
int journal_heartbeat(struct journal *j);
/* Down, a reconnect under way (started by a call or the heartbeat once the
 * backoff has passed; no call waits for it): a descriptor that becomes
 * readable when it is through, for the daemon's loop to call
 * journal_heartbeat then. -1: none under way. */
int journal_reconnect_fd(struct journal *j);
/* The longest this instance can take, once the store answers again after
 * an outage, to be through its reconnect: the longest backoff plus the
 * longest connect (each attempt is bounded). 0: it never goes down; -1:
 * no bound (a connect may wait as long as the network does). */
int64_t journal_reconnect_lag_ms(struct journal *j);
/* A clean stop, once this instance writes nothing more (journal_close
 * next): gives up its lease and the deliveries it holds, which the other
 * instances adopt at their next tick. 0, or -1 (down, or nothing shared:
 * the lease runs out by itself). */
int journal_release(struct journal *j);
/* Takes over at most max pending async deliveries whose lease ran out (an
 * instance died, or this one let them go): like journal_recover, which, shared, takes this
 * instance's own deliveries of a previous run and the ones whose lease ran
 * out. Sync ones whose lease ran out are marked FAILED (interrupted). */
int journal_adopt(struct journal *j, size_t max, struct journal_pending **out, size_t *n);
/* One queue for all: takes over at most max async deliveries that other
 * (live) instances have had queued, not started, since before
 * queued_before_ms (their slots are busy), so that an instance with free
 * slots runs them. Returned as journal_adopt's; their instances find them
 * gone (JOURNAL_LOST) when they come to start them. */
int journal_steal(struct journal *j, size_t max, int64_t queued_before_ms,
                  struct journal_pending **out, size_t *n);
/* A pending delivery this instance took (recover, adopt, steal) but cannot
 * run (its row could not be read back): no longer held here, and let go at
 * the next heartbeat that reaches the store, for whichever instance adopts
 * it next. Kept held, it would stay this instance's under its live lease
 * with nothing to run it. Nothing to do for a journal of its own. */
void journal_let_go(struct journal *j, int64_t rowid);
/* A delivery with a serialization key, about to start attempt `attempt`:
 * marks it running (as journal_attempt_started) if no other delivery with
 * the same key runs, on any instance, and none received before it waits
 * queued. RESULT_OK: started; RESULT_PENDING: not its turn yet, nothing
 * changed; JOURNAL_TURN_HERE: the same, but nothing of the key runs and
 * the first delivery of its line still queued is one this instance holds
 * (its turn may be now: ask for that one too); RESULT_ERROR; or
 * JOURNAL_LOST. */
int journal_take_turn(struct journal *j, int64_t rowid, const char *key, int attempt,
                      int64_t started_ms);

/* Copying a journal (`hookd journal export` / `import`): one delivery as
 * read back (journal_read, journal_read_attempts), written into this
 * journal as it was, unless its (endpoint, id) is there already.
 * RESULT_OK, RESULT_PENDING (there already: skipped), RESULT_ERROR. */
enum result journal_import(struct journal *j, const struct journal_entry *e,
                           const struct journal_attempt *attempts, size_t nattempts);

#endif
