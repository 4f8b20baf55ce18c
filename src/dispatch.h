/*
 * The dispatcher: a delivery's way through idempotency, async journaling,
 * serialization keys, the max_running slots and the max_queued waiting
 * line, the hooks of its route one after another, retries, and the outcome
 * that maps to an HTTP status. The delivery itself is delivery.h's; taking
 * the journal's deliveries back at start and on replay is recovery.h's.
 *
 * A delivery's lifecycle in the dispatcher, every change of state through
 * one function (dispatch.c job_enter), which checks it against the table
 * dispatch_transition_legal and does the bookkeeping of leaving and
 * entering (queues, slot and waiting counts, the key, the retry timer):
 *
 *         submit, recovery, replay
 *                  |
 *                 NEW --------------------------------------------> DONE
 *                  |  answered at once: draining, duplicate, refused,  ^
 *                  |  overloaded, a sync delivery with nothing to run  |
 *     admit:       v                                                   |
 *      +------> WAIT_KEY ----> QUEUED ----> RUNNING ----> OVER --------+
 *      |           |             ^  \         ^             |
 *      |           +-------------|---\--------+             | async, retryable,
 *      |           NEW, WAIT_RETRY  -+--------+             | retries left
 *      |                                                    v
 *      +-------------------------------------------- WAIT_RETRY
 *                                  (its due time)     (or NEW, recovered
 *                                                      with a due time ahead)
 *
 *   WAIT_KEY   waits for its serialization key (takes no slot)
 *   QUEUED     holds its key, waits for one of max_running slots
 *   RUNNING    holds a slot and its key; its hooks run one after another
 *   OVER       the attempt ended, slot and key given back (the next in
 *              line may start first); its outcome is being recorded
 *   WAIT_RETRY async: waits for its next attempt's due time
 *   DONE       final: the sender has its answer; freed
 *   SHELVED    shutting down: an async delivery from WAIT_KEY, QUEUED,
 *              WAIT_RETRY or OVER (a retry due) stays journaled for the next
 *              start; freed
 *
 * Admission goes to WAIT_KEY when the key is held, else to RUNNING when a
 * slot is free and nobody is in line, else to QUEUED. A sync delivery in
 * WAIT_KEY or QUEUED counts against max_queued.
 */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include <stdbool.h>
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
 * for its answer. */
void dispatch_resume(struct dispatcher *ds, struct delivery *d, int64_t delay_ms);

/* Shutting down: queued async deliveries stay journaled. */
void dispatcher_drain(struct dispatcher *ds);
/* True once nothing runs or waits that must finish first. */
bool dispatcher_idle(const struct dispatcher *ds);
bool dispatcher_draining(const struct dispatcher *ds);
int dispatcher_running(const struct dispatcher *ds);
int dispatcher_queued(const struct dispatcher *ds);
struct config *dispatcher_config(const struct dispatcher *ds);
struct journal *dispatcher_journal(const struct dispatcher *ds);

#endif
