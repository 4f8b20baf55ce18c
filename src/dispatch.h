/*
 * The dispatcher: a delivery's way through idempotency, async journaling,
 * serialization keys, the max_running slots and the max_queued waiting
 * line, the hooks of its route one after another, retries, and the outcome
 * that maps to an HTTP status. The delivery itself is delivery.h's; taking
 * the journal's deliveries back at start and on replay is recovery.h's.
 *
 * A delivery's lifecycle in the dispatcher. Every change of state goes
 * through one function (dispatch.c job_enter), which checks it against one
 * table (dispatch_transition_legal) and does the bookkeeping of leaving and
 * entering: the lines it waits in, the slot and max_queued counts, its
 * serialization key, its retry timer, the answer and the freeing.
 *
 *   NEW --admit--> WAIT_KEY --> QUEUED --> RUNNING --> OVER --> DONE
 *                                                        |
 *                      (admitted again) <-- WAIT_RETRY <-+
 *
 *   state       leaves for                  when
 *   NEW         WAIT_KEY, QUEUED, RUNNING   admitted (submit, recovery, replay): its
 *                                           key held by another, else no free slot
 *                                           or others in line, else at once
 *               WAIT_RETRY                  recovered with its due time still ahead
 *               DONE                        answered at once: draining, duplicate,
 *                                           pending, refused, overloaded, or a sync
 *                                           delivery with nothing to run
 *   WAIT_KEY    QUEUED, RUNNING             the key passed on to it
 *   QUEUED      RUNNING                     a slot came free
 *   RUNNING     OVER                        its hooks ended, or one failed: slot and
 *                                           key go back (the next in line may start
 *                                           before its outcome is recorded)
 *   OVER        WAIT_RETRY                  async, retryable, retries left
 *               DONE                        final: recorded, answered, freed
 *   WAIT_RETRY  WAIT_KEY, QUEUED, RUNNING   its due time came: admitted again
 *   WAIT_KEY,   SHELVED                     shutting down, async: it stays journaled
 *   QUEUED,                                 for the next start; freed (not one that
 *   WAIT_RETRY,                             a sync delivery waits behind for its
 *   OVER (a retry due),                     key: that one runs first)
 *   NEW, WAIT_TURN
 *   WAIT_KEY,   the same state, async       handed over: a sync delivery still there at
 *   QUEUED,                                 its respond_within is answered 202 and goes
 *   RUNNING,                                on as a journaled async one (the only change
 *   WAIT_TURN                               that keeps the state)
 *
 * With a shared journal (several instances, journal_shared) a delivery
 * about to run first asks the journal (journal_take_turn, or
 * journal_attempt_started without a key): one whose key is busy on another
 * instance, or that the journal cannot be asked about now, waits in
 * WAIT_TURN, asked again every TURN_POLL_MS; one another instance took
 * over (its lease ran out) is SHELVED, a sync one answered 503:
 *
 *   NEW, WAIT_KEY, QUEUED,   WAIT_TURN       not its turn yet, or the journal is down
 *   WAIT_RETRY
 *   WAIT_TURN   WAIT_KEY, QUEUED, RUNNING   asked again: admitted as from NEW
 *               DONE                        sync, taken over by another instance
 *   any waiting SHELVED                     async, taken over by another instance
 *
 * A delivery holds its key in QUEUED and RUNNING; a sync delivery in
 * WAIT_KEY, QUEUED or WAIT_TURN counts against max_queued. A journaled async delivery
 * entering WAIT_KEY, QUEUED or WAIT_RETRY becomes a shell (delivery_shed):
 * its body and environment wait in the journal, and are read back
 * (delivery_from_row) when it enters RUNNING.
 */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "delivery.h"

struct event_base;
struct journal;
struct dispatcher;

enum lifecycle {
	LC_NEW,
	LC_WAIT_KEY,
	LC_QUEUED,
	LC_RUNNING,
	LC_OVER,
	LC_WAIT_RETRY,
	LC_DONE,
	LC_SHELVED,
	LC_WAIT_TURN,
	LC_COUNT
};

/* Whether a delivery may go from one state to the other (the table above). */
bool dispatch_transition_legal(enum lifecycle from, enum lifecycle to);

typedef void (*delivery_done_fn)(struct delivery *d, void *arg);

struct dispatcher *dispatcher_new(struct event_base *base, struct config *cfg,
                                  struct journal *journal);
/* A new config (SIGHUP): limits follow it; running deliveries keep theirs. */
void dispatcher_set_config(struct dispatcher *ds, struct config *cfg);
void dispatcher_free(struct dispatcher *ds);

/*
 * Takes a verified, identified delivery. `done` is called exactly once
 * with the delivery's outcome filled, possibly before this returns
 * (duplicates, overload, no route); after `done` returns, d is freed by the
 * dispatcher unless it stays journaled (async: the answer 202 comes first,
 * the run later).
 */
void dispatch_submit(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg);

/* Takes a journaled async delivery back (recovery, replay): admitted now,
 * or, delay_ms > 0, after waiting that long for its retry. Nobody waits
 * for its answer. Shutting down, it stays journaled for the next start
 * (and is counted as left: dispatcher_left). */
void dispatch_resume(struct dispatcher *ds, struct delivery *d, int64_t delay_ms);

/* A shared journal: writes the outcomes of attempts that ended while it was
 * down (outbox.h), if it answers now; how many still wait. */
size_t dispatch_write_outbox(struct dispatcher *ds);

/* Calls fn with each delivery that ends (enters DONE: outcome final, just
 * before its answer); the admin's memory of recent deliveries without a
 * journal. NULL: none. */
void dispatcher_on_end(struct dispatcher *ds, delivery_done_fn fn, void *arg);

/* Shutting down: queued async deliveries stay journaled. */
void dispatcher_drain(struct dispatcher *ds);
/* True once nothing runs or waits that must finish first. */
bool dispatcher_idle(const struct dispatcher *ds);
bool dispatcher_draining(const struct dispatcher *ds);
/* Shutting down: how many async deliveries were left journaled for the next
 * start, waiting for a slot or their key, and waiting for a retry. */
void dispatcher_left(const struct dispatcher *ds, int *queued, int *retry_wait);
int dispatcher_running(const struct dispatcher *ds);
int dispatcher_queued(const struct dispatcher *ds);
/* max_running slots no delivery runs in or waits for. */
int dispatcher_free_slots(const struct dispatcher *ds);
/* Deliveries not yet ended (hookd_deliveries_pending): waiting for a slot
 * or a key, in an attempt, waiting for a retry. */
void dispatcher_pending(const struct dispatcher *ds, int *queued, int *running, int *retry_wait);
struct config *dispatcher_config(const struct dispatcher *ds);
struct journal *dispatcher_journal(const struct dispatcher *ds);

#endif
