/*
 * What dispatch.c (the lifecycle, outcomes), dispatch_admit.c (admission),
 * dispatch_run.c (an attempt's hooks), dispatch_outcome.c (an outcome to
 * the journal) and dispatch_drain.c (the drain at a stop) share: the
 * dispatcher and its jobs, and the calls between them. Only those files
 * include it.
 */
#ifndef HOOKD_DISPATCH_PRIVATE_H
#define HOOKD_DISPATCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>

#include "dispatch.h"
#include "groupcommit.h"
#include "journal.h"
#include "route.h"

struct event;

/* How long a sender is told to wait before resending, hookd being short of
 * something (a slot, the journal, fds). */
#define RETRY_AFTER_OVERLOAD 5
/* How long a sender is told to wait before resending a pending delivery. */
#define RETRY_AFTER_PENDING 10

/* A delivery in the dispatcher's hands: where it is in its lifecycle, the
 * line it waits in, and its current attempt's route. */
struct job {
	struct delivery *d;
	struct dispatcher *ds;
	enum lifecycle state;
	bool recorded_final; /* its outcome went into its record (journal_record_final) */
	/* A sync delivery recorded as waiting for a slot or its key (queued,
	 * journal_new.waits): its attempt is marked running as it starts. */
	bool recorded_waiting;
	/* A sender's resend of a delivery that ended failed: it ran, and was
	 * counted in hookd_deliveries_total, before (README "Admin listener"). */
	bool rerun;
	/* Its first hook was held for a batch that was lost (job_start_lost):
	 * no attempt began. */
	bool start_lost;
	/* Its attempt's outcome is recorded as answered: if its sender hangs
	 * up before the answer goes, answer() marks it (journal_client_gone). */
	bool outcome_unmarked;
	/* Waiting for its turn (shared journal), behind an earlier delivery of
	 * its key that this instance holds (JOURNAL_TURN_HERE). */
	bool behind_own;
	/* Seconds its attempt could not begin for the journal's sake, keeping
	 * its key (dispatch_run.c job_begin_later), and why. */
	unsigned char begin_tries;
	const char *later_why;
	/* Never in a line and held at once: the slot queue, waiting_retry or
	 * waiting_turn, or held for the journal (groupcommit.h). */
	union {
		TAILQ_ENTRY(job) link;
		struct held_answer held;
	};
	TAILQ_ENTRY(job) key_link; /* its serialization key's line */
	struct route route;
	size_t next_hook;
	int64_t started_mono;
	int64_t retry_in_ms; /* entering WAIT_RETRY: how long */
	/* WAIT_RETRY's, or RUNNING's while it waits to read its row back */
	struct event *retry_timer;
	struct event *deadline; /* a sync delivery's respond_within */
	delivery_done_fn done; /* NULL once answered */
	void *done_arg;
};
/* A pending async delivery costs its entry here and its shell (delivery.h):
 * under 1 KiB together (README "Hardening and limits"). */
_Static_assert(sizeof(struct job) <= 256, "a waiting delivery's entry stays small");

struct dispatcher {
	struct event_base *base;
	struct config *cfg;
	struct journal *journal;
	int running;
	int queued_sync; /* sync deliveries in WAIT_KEY or QUEUED */
	TAILQ_HEAD(, job) queue;   /* waiting for a slot */
	TAILQ_HEAD(, job) waiting_retry;
	TAILQ_HEAD(, job) waiting_turn; /* shared journal: WAIT_TURN */
	struct event *turn_timer;
	bool shared; /* journal_shared */
	bool moving_line; /* line_to_turn is under way */
	/* With a journal: outcomes to write when a shared one is back, and
	 * SQLite's until their batch is committed (outbox.h) */
	struct outbox *outbox;
	struct event *outbox_timer; /* writes SQLite's lost outcomes again */
	struct keyqueue *keys;
	struct idstore *ids; /* without a journal */
	bool draining;
	int left_queued, left_retry_wait; /* async ones the drain left to the next start */
	int in_state[LC_COUNT]; /* deliveries in each state: hookd_deliveries_pending */
	/* Handing freed slots on (release): a delivery that finishes at once
	 * while it runs only gives its slot back, and the loop already under
	 * way starts the next, so a queue of deliveries that each fail at once
	 * does not nest one call a delivery (and each one's outcome is recorded
	 * before the next starts). */
	bool releasing;
	struct groupcommit *commit; /* with a journal: the answers that wait for it */
	struct replaywin *replay; /* the endpoints' replay_window */
	delivery_done_fn on_end;  /* dispatcher_on_end's */
	void *on_end_arg;
};

/* dispatch.c: a job for d (done: its sender's answer, NULL: none); it
 * enters the lines (its key's, then a slot); it waits out a retry's delay;
 * it is answered before anything runs, final (error is taken); its answer
 * waits for the journal's batch (sync_too: and its sync); an async one is
 * answered 202 once its record is synced (else 503) and enters the lines;
 * a sync one's respond_within starts. */
struct job *job_new(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg);
void job_admit(struct job *j);
void job_schedule_retry(struct job *j, int64_t delay_ms);
void job_answer_now(struct job *j, int http, const char *status, char *error, int retry_after);
void job_hold(struct job *j, bool sync_too);
void job_accepted(struct job *j, bool synced);
void job_arm_deadline(struct job *j);
/* dispatch_admit.c: what idempotency remembers of d without a journal. */
void dispatch_remember_id(struct dispatcher *ds, const struct delivery *d, enum delivery_state st);
/* dispatch_run.c: the next hook of j's attempt (its first: the attempt
 * begins); the route of j's event read; the outcomes decided before any
 * hook runs (true: one was). */
void job_run_next_hook(struct job *j);
void job_resolve(struct job *j);
bool job_route_outcome(struct job *j);
/* dispatch.c: the attempt is over (its slot and key go back), then its
 * outcome is recorded and answered or retried. */
void job_release(struct job *j);
void job_attempt_over(struct job *j);
/* dispatch.c: the first hook of j's attempt never started, its start's
 * batch lost (runner_cancel_held). */
void job_start_lost(struct job *j);
/* dispatch.c: an attempt that could not begin for a reason that may pass:
 * 503 `failed`, no hook run, retried as such when async; a delivery another
 * instance took over (the journal's JOURNAL_LOST), which leaves this one
 * (a sync one's sender gets 503), from WAIT_TURN or from RUNNING before its
 * attempt began. */
void job_not_begun(struct job *j, const char *why);
bool job_begin_later(struct job *j, const char *why);
void job_taken_over(struct job *j);
/* dispatch.c: an async delivery whose row is no longer pending (deleted
 * by hand; finished by another instance) leaves at once, logged; false
 * when its row is there or cannot be looked up. */
bool job_row_gone(struct job *j);
/* dispatch.c: shutting down, j (async, not started) stays journaled for
 * the next start, counted for the "stopped" line; dispatch_drain.c's. */
void job_leave_for_next_start(struct job *j);
/* dispatch_outcome.c: the attempt just over, for the journal (the hooks it
 * points at are the caller's to free); the state its outcome leaves a
 * delivery in, retries aside; its outcome recorded (0, -1, or
 * JOURNAL_LOST); the outbox written again each second (outbox_timer's
 * callback), and settled after each commit (groupcommit's flushed op). */
struct outcome;
struct journal_hook *dispatch_attempt_of(const struct delivery *d, struct journal_attempt *a);
enum delivery_state dispatch_final_state(const struct outcome *out);
int dispatch_journal_finish(struct dispatcher *ds, struct delivery *d, enum delivery_state st,
                            int64_t next_due);
void dispatch_on_outbox_retry(evutil_socket_t fd, short what, void *arg);
void dispatch_on_flushed(void *arg);

#endif
