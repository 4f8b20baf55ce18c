/*
 * Group commit (HACKING.md "Group commit"): the dispatcher's answers that
 * wait for the journal. The journal's batch is committed once the event
 * loop has nothing else to do, or 5 ms after it was asked for
 * (groupcommit_flush_soon); a sync delivery's outcome is
 * answered once its batch is committed, an async acceptance once a sync of
 * the WAL begun after that commit has ended (walsync's thread, or on the
 * loop when it cannot start), or at the commit with a journal whose commit
 * is durable (PostgreSQL). Past so many frames it also asks for the
 * WAL's checkpoints. After each commit the hooks whose attempts it recorded
 * may start (runner_release), or not if it failed (runner_cancel_held).
 *
 * What is held is the dispatcher's: it embeds a struct held_answer and is
 * called back with it, in batch order. For the event loop's thread alone.
 */
#ifndef HOOKD_GROUPCOMMIT_H
#define HOOKD_GROUPCOMMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct journal;

/* An answer held for the journal: the batch that recorded it, and the
 * journal's losses then. */
struct held_answer {
	TAILQ_ENTRY(held_answer) link;
	uint64_t batch, losses;
};

struct groupcommit_ops {
	/* A sync outcome's batch was committed (a failed commit was logged):
	 * a resend after the answer is always a duplicate. */
	void (*committed)(struct held_answer *h, void *arg);
	/* An acceptance's batch was synced (ok) or the sync failed.
	 * maybe_lost: a batch was lost since it was held, maybe its own. */
	void (*synced)(struct held_answer *h, bool ok, bool maybe_lost, void *arg);
	/* An acceptance past the last commit: its batch was lost. */
	void (*lost)(struct held_answer *h, void *arg);
	/* After each commit of the batch, or its loss, before the answers
	 * held for it. */
	void (*flushed)(void *arg);
	/* At groupcommit_free: never answered. */
	void (*dropped)(struct held_answer *h, void *arg);
};

struct groupcommit;

/* Turns the journal's batching on; logs (and goes on) when the WAL is to
 * be synced, or checkpointed, on the loop. */
struct groupcommit *groupcommit_new(struct event_base *base, struct journal *journal,
                                    const struct groupcommit_ops *ops, void *arg);
/* Batching off, the threads stopped, what is still held dropped. */
void groupcommit_free(struct groupcommit *g);

/* The batch is committed once the event loop has nothing else to do (at
 * most 5 ms from now): writes made meanwhile share one commit. NULL is
 * fine (no journal). */
void groupcommit_flush_soon(struct groupcommit *g);
/* h's answer waits for the batch the journal is writing now: for its
 * commit, or (sync_too) for a sync of the WAL after it. */
void groupcommit_hold(struct groupcommit *g, struct held_answer *h, bool sync_too);
/* Nothing held. NULL is fine. */
bool groupcommit_idle(const struct groupcommit *g);

#endif
