/*
 * What the dispatcher writes to the journal when an attempt is over (its
 * outcome: dispatch_journal_finish), and the outbox that keeps the outcomes
 * the journal has not taken for good yet: a shared journal's while it is
 * down, SQLite's until the batch that took them is committed, written
 * again if it was lost (outbox.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dispatch_private.h"
#include "groupcommit.h"
#include "journal.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

/* SQLite's outcomes join its batch: kept until their batch is known
 * committed (outbox.h). */
static bool outcomes_batched(const struct dispatcher *ds)
{
	return ds->commit && !ds->shared;
}

size_t dispatch_write_outbox(struct dispatcher *ds)
{
	if (!ds->outbox || !outbox_count(ds->outbox) || !journal_up(ds->journal))
		return outbox_count(ds->outbox);
	bool batched = outcomes_batched(ds);
	size_t left = outbox_flush(ds->outbox, batched);
	if (batched)
		groupcommit_flush_soon(ds->commit);
	return left;
}

/* Outcomes a lost batch took with it are written again each second until
 * a batch that holds them is committed. */
#define OUTBOX_RETRY_MS 1000

void dispatch_on_outbox_retry(evutil_socket_t fd, short what, void *arg)
{
	struct dispatcher *ds = arg;
	struct timeval tv = {OUTBOX_RETRY_MS / 1000, 0};
	if (dispatch_write_outbox(ds))
		evtimer_add(ds->outbox_timer, &tv);
}

/* After each commit: the outcomes it took are settled, those lost with a
 * batch written again. */
void dispatch_on_flushed(void *arg)
{
	struct dispatcher *ds = arg;
	struct timeval tv = {OUTBOX_RETRY_MS / 1000, 0};
	if (outbox_settle(ds->outbox, journal_committed_id(ds->journal),
	                  journal_losses(ds->journal)) &&
	    !evtimer_pending(ds->outbox_timer, NULL))
		evtimer_add(ds->outbox_timer, &tv);
}

/* The attempt just over, for the journal; the hooks it points at are the
 * caller's to free. A sender that hung up while it ran (the log line's
 * client=gone) is recorded with it, in the same write; one that hangs up
 * later, while its answer waits for the commit, by a write of its own
 * then (dispatch.c, answer()): the outcome cannot wait for the answer,
 * which itself waits for the outcome's commit. */
struct journal_hook *dispatch_attempt_of(const struct delivery *d,
                                         struct journal_attempt *a)
{
	size_t nhooks;
	struct journal_hook *hooks = delivery_journal_hooks(d, &nhooks);
	const struct outcome *out = delivery_outcome(d);
	int64_t now = now_wall_ms();
	*a = (struct journal_attempt){
		.attempt = delivery_attempt(d),
		.started_ms = now - delivery_ms(d),
		.finished_ms = now,
		.http = out->http,
		.status = out->status,
		.error = out->error,
		.client_gone = delivery_answer_lost(d),
		.hooks = hooks,
		.nhooks = nhooks,
	};
	return hooks;
}

/* The state an attempt's outcome leaves a delivery in, retries aside. */
enum delivery_state dispatch_final_state(const struct outcome *out)
{
	bool ok = out->http >= 200 && out->http < 300;
	return !ok                                 ? DSTATE_FAILED
	       : strcmp(out->status, "skipped") == 0 ? DSTATE_SKIPPED
	                                             : DSTATE_SUCCEEDED;
}

/* Records the attempt's outcome: 0, -1 (not recorded: logged),
 * JOURNAL_LOST (another instance took the delivery over) or JOURNAL_GONE
 * (its row is not there: logged). */
int dispatch_journal_finish(struct dispatcher *ds, struct delivery *d, enum delivery_state st,
                            int64_t next_due)
{
	if (!ds->journal || !delivery_rowid(d))
		return 0;
	struct journal_attempt a;
	struct journal_hook *hooks = dispatch_attempt_of(d, &a);
	int rc = journal_attempt_finished(ds->journal, delivery_rowid(d), &a, st, next_due);
	struct log_delivery who = delivery_who(d);
	who.attempt = a.attempt;
	if (rc == 0 && outcomes_batched(ds)) {
		outbox_keep(ds->outbox, delivery_rowid(d), &who, &a, st, next_due,
		            journal_batch_id(ds->journal), journal_losses(ds->journal));
	} else if (rc == -1 && outcomes_batched(ds)) {
		/* Refused outright (its batch given up, a statement that failed):
		 * written again as one lost at the commit is (no batch of its
		 * own: settled as lost at the next flush). */
		outbox_keep(ds->outbox, delivery_rowid(d), &who, &a, st, next_due, UINT64_MAX,
		            journal_losses(ds->journal));
		rc = 0;
	} else if (rc == -1 && ds->shared && !journal_up(ds->journal)) {
		/* Written when the journal is back; the delivery stays ours. */
		outbox_add(ds->outbox, delivery_rowid(d), &who, &a, st, next_due);
		rc = 0;
	} else if (rc < 0)
		journal_log_unrecorded(&who, rc);
	free(hooks);
	/* A sync sender's answer waits for this turn's commit (finish). */
	groupcommit_flush_soon(ds->commit);
	return rc < 0 ? rc : 0;
}
