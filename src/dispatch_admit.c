/*
 * The dispatcher's admission (dispatch.h dispatch_submit, dispatch_resume):
 * the id rules (a duplicate, one still pending, a resend of a failed one),
 * the replay window, the limits on what may wait (journal_max,
 * journal_max_bytes, max_queued) and the journal's record of a delivery,
 * before it enters the lifecycle (dispatch.c) or is answered at once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "dispatch_private.h"
#include "groupcommit.h"
#include "idstore.h"
#include "journal.h"
#include "keyqueue.h"
#include "replaywin.h"
#include "util.h"

/* ---- idempotency ---------------------------------------------------- */

void dispatch_remember_id(struct dispatcher *ds, const struct delivery *d, enum delivery_state st)
{
	idstore_set(ds->ids, delivery_endpoint(d)->name, delivery_id(d), st, delivery_attempt(d));
}

/* 1 and the state when the id is known, 0 when not, -1 when the journal
 * could not say. */
static int id_lookup(struct dispatcher *ds, struct delivery *d, enum delivery_state *st,
                     int *attempts)
{
	if (ds->journal) {
		int64_t rowid;
		enum result r = journal_lookup(ds->journal, delivery_endpoint(d)->name, delivery_id(d),
		                               st, attempts, &rowid);
		return r == RESULT_OK ? 1 : r == RESULT_UNKNOWN ? 0 : -1;
	}
	return idstore_find(ds->ids, delivery_endpoint(d)->name, delivery_id(d), st, attempts);
}

/* ---- admission ------------------------------------------------------ */

/* Whether d's body came under another id within its endpoint's
 * replay_window (replaywin.h). */
static bool replayed(struct dispatcher *ds, const struct delivery *d)
{
	const struct endpoint *ep = delivery_endpoint(d);
	size_t len;
	const unsigned char *body = delivery_body(d, &len);
	return replaywin_check(ds->replay, ep->name, delivery_id(d), delivery_id_generated(d), body,
	                       len, ep->replay_window_ms, now_mono_ms());
}

/* Records the delivery as received; for async, durably. known_new: the
 * journal was just asked about its id, and knows none. final: a sync
 * delivery with nothing to run, recorded with its outcome. 0, -1, or
 * JOURNAL_LOST: a shared journal got the same id from another instance
 * in the meantime. */
static int record(struct dispatcher *ds, struct delivery *d, bool known_new, bool final,
                  bool waits)
{
	if (!ds->journal) {
		replaywin_commit(ds->replay, delivery_endpoint(d)->name, delivery_id(d));
		if (!delivery_id_generated(d))
			dispatch_remember_id(ds, d,
			            delivery_async(d) || waits ? DSTATE_QUEUED : DSTATE_RUNNING);
		return 0;
	}
	struct journal_header *hdrs;
	struct journal_new jn;
	delivery_journal_new(d, &jn, &hdrs);
	jn.known_new = known_new;
	jn.key = delivery_key(d);
	jn.waits = waits;
	int64_t rowid;
	if (final) {
		struct journal_attempt a;
		struct journal_hook *hooks = dispatch_attempt_of(d, &a);
		rowid = journal_record_final(ds->journal, &jn, &a,
		                             dispatch_final_state(delivery_outcome(d)));
		free(hooks);
	} else {
		rowid = journal_record(ds->journal, &jn);
	}
	free(hdrs);
	if (rowid == JOURNAL_LOST)
		return JOURNAL_LOST;
	delivery_set_rowid(d, rowid);
	if (!delivery_async(d))
		groupcommit_flush_soon(ds->commit);
	/* Only a delivery the journal holds is remembered: one answered 503
	 * for want of a record may come again. */
	if (rowid > 0)
		replaywin_commit(ds->replay, delivery_endpoint(d)->name, delivery_id(d));
	return rowid > 0 ? 0 : -1;
}

/* Without the store, hookd cannot tell a resend from a new delivery:
 * nothing runs, and the sender is asked to come back. */
static void journal_unavailable(struct job *j, const char *why)
{
	job_answer_now(j, 503, "overloaded", xstrdup(why), RETRY_AFTER_OVERLOAD);
}

/* A delivery that ran (or was skipped) before: nothing runs. Its route is
 * looked up all the same, so that the metrics count the duplicate under
 * the event it resent (a hooks.d name, bounded as any route), not under
 * "other". */
static void answer_duplicate(struct job *j, char *why)
{
	job_resolve(j);
	job_answer_now(j, 200, "duplicate", why, 0);
}

/*
 * The id rules: a delivery id already known is a duplicate (200), still
 * pending (409), or a resend of a failed one (its next attempt). 1 when
 * known and to run again, 0 when new, -1 when answered here.
 */
static int known_id(struct job *j)
{
	struct delivery *d = j->d;
	enum delivery_state st;
	int attempts;
	int found = id_lookup(j->ds, d, &st, &attempts);
	if (found < 0) {
		journal_unavailable(j, "cannot read the journal");
		return -1;
	}
	if (found == 0)
		return 0;
	if (st == DSTATE_SUCCEEDED || st == DSTATE_SKIPPED) {
		/* A skipped delivery was not for these hooks: a resend is not
		 * either. */
		answer_duplicate(j, NULL);
		return -1;
	}
	if (delivery_state_pending(st)) {
		/* The state it is in: queued, running or retry_wait. */
		job_answer_now(j, 409, delivery_state_name(st), xstrdup("this delivery is still pending"),
		           RETRY_AFTER_PENDING);
		return -1;
	}
	delivery_set_attempt(d, attempts + 1);
	j->rerun = true;
	return 1;
}

/* Records j's delivery; false when answered here: the journal failed (503),
 * or another instance recorded the same id first (the id rules again). */
static bool recorded(struct job *j, bool known_new)
{
	/* Twice at most: the id could come and go again between two looks
	 * only if another instance pruned it in between. */
	for (int tries = 0; tries < 2; tries++) {
		int rc = record(j->ds, j->d, known_new, j->recorded_final, j->recorded_waiting);
		if (rc == 0)
			return true;
		if (rc != JOURNAL_LOST)
			break;
		int found = known_id(j);
		if (found < 0)
			return false; /* answered: duplicate, pending, or no journal */
		known_new = found == 0;
	}
	journal_unavailable(j, "cannot write the journal");
	return false;
}

void dispatch_submit(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg)
{
	struct job *j = job_new(ds, d, done, arg);
	j->started_mono = now_mono_ms();
	if (ds->draining) {
		job_answer_now(j, 503, "overloaded", xstrdup("shutting down"), RETRY_AFTER_OVERLOAD);
		return;
	}
	bool known_new = delivery_id_generated(d);
	if (!delivery_id_generated(d)) {
		int found = known_id(j);
		if (found < 0)
			return; /* answered */
		known_new = found == 0;
	}
	if (replayed(ds, d)) {
		answer_duplicate(
		        j, xstrdup("the same body came under another delivery id within replay_window"));
		return;
	}

	char err[128];
	if (delivery_async(d)) {
		/* Its environment is built as its attempt begins, as any
		 * delivery's is once a hook is about to run: a waiting one is a
		 * shell, rebuilt from its row then anyway. */
		if (ds->journal && journal_pending_count(ds->journal) >= ds->cfg->journal_max) {
			job_answer_now(j, 503, "overloaded", xstrdup("journal_max deliveries pending"),
			           RETRY_AFTER_OVERLOAD);
			return;
		}
		size_t body_len;
		delivery_body(d, &body_len);
		if (ds->journal && (uint64_t)journal_pending_bytes(ds->journal) + body_len >
		                           ds->cfg->journal_max_bytes) {
			job_answer_now(j, 503, "overloaded", xstrdup("journal_max_bytes of bodies pending"),
			           RETRY_AFTER_OVERLOAD);
			return;
		}
		if (!recorded(j, known_new))
			return;
		if (ds->journal)
			job_hold(j, true); /* answered once synced: on_synced */
		else
			job_accepted(j, true);
		return;
	}

	job_resolve(j);
	if (job_route_outcome(j)) {
		/* Nothing to run: no slot, but the outcome is journaled so a
		 * resend is a duplicate; with the record, in one write. */
		delivery_set_ms(d, now_mono_ms() - j->started_mono);
		j->recorded_final = true;
		if (recorded(j, known_new))
			job_attempt_over(j);
		return;
	}
	const char *key = delivery_key(d);
	bool key_free = !key || !keyqueue_get(ds->keys, key, false);
	bool now = key_free && ds->running < ds->cfg->max_running && TAILQ_EMPTY(&ds->queue);
	if (!now && ds->queued_sync >= ds->cfg->max_queued) {
		job_answer_now(j, 503, "overloaded", xstrdup("max_queued deliveries already waiting"),
		           RETRY_AFTER_OVERLOAD);
		return;
	}
	/* Something will run: the environment now, and the parsed payload
	 * goes (a delivery waiting for a slot holds the smaller of the two). */
	if (!delivery_build_env(d, err, sizeof(err))) {
		job_answer_now(j, 400, "rejected", xstrdup(err), 0);
		return;
	}
	/* One that will wait is recorded queued, not running (a slot handed
	 * on within release is one it waits for too). */
	j->recorded_waiting = !now || ds->releasing;
	if (!recorded(j, known_new))
		return;
	job_arm_deadline(j);
	/* Not now: it waits in WAIT_KEY or QUEUED, counted against max_queued. */
	job_admit(j);
}

/* A journaled delivery taken up again (recovery.c): it enters the lines
 * as an accepted one does, or waits out its retry's due time. */
void dispatch_resume(struct dispatcher *ds, struct delivery *d, int64_t delay_ms)
{
	struct job *j = job_new(ds, d, NULL, NULL);
	if (ds->draining)
		job_leave_for_next_start(j); /* journaled: the next start runs it */
	else if (delay_ms > 0)
		job_schedule_retry(j, delay_ms);
	else
		job_admit(j);
}
