/*
 * The dispatcher's drain at a stop (dispatch.h dispatcher_drain): which
 * waiting async deliveries stay journaled for the next start and which run
 * first, ahead of a sync one of their key; and what was left, for the
 * "stopped" line. Split from dispatch.c (move only).
 */
#include <string.h>
#include <sys/queue.h>

#include "delivery.h"
#include "dispatch_private.h"
#include "keyqueue.h"

/* Whether a sync delivery waits in k's line: it runs before hookd stops,
 * so the deliveries ahead of it with that key must too (arrival order). */
static bool sync_waits_for(const struct keyq *k)
{
	const struct job *w;
	TAILQ_FOREACH(w, &k->waiting, key_link)
		if (!delivery_async(w->d))
			return true;
	return false;
}

/* Whether a sync delivery with `key` waits in the line (queue or
 * waiting_turn) from w on. */
static bool sync_waits_from(const struct job *w, const char *key)
{
	for (; w; w = TAILQ_NEXT(w, link))
		if (!delivery_async(w->d) && delivery_key(w->d) && strcmp(delivery_key(w->d), key) == 0)
			return true;
	return false;
}

/* A shared journal gives a key's deliveries their turn in arrival order on
 * every instance (journal_take_turn): an async one waiting for its turn
 * stays if a sync one with its key waits here too, which it may be ahead
 * of, or that one could never start before hookd stops. */
static bool sync_needs_turn_of(const struct dispatcher *ds, const struct job *j)
{
	const char *key = delivery_key(j->d);
	if (!key || ds->queued_sync == 0)
		return false;
	const struct keyq *k = keyqueue_get(ds->keys, key, false);
	return (k && sync_waits_for(k)) || sync_waits_from(TAILQ_FIRST(&ds->queue), key) ||
	       sync_waits_from(TAILQ_NEXT(j, link), key);
}

/*
 * Async deliveries not yet started stay journaled for the next start, but
 * for those ahead of a sync delivery in their key's line: the sync one
 * runs before hookd stops (its sender waits), and a delivery with the
 * same key that came before it runs first (README "serialize"). Such
 * async ones are there only when a sync section's delivery became async
 * (handed over at respond_within, or replayed).
 */
void dispatcher_drain(struct dispatcher *ds)
{
	ds->draining = true;
	struct job *j, *next;
	/* First those waiting for a key, behind the last sync one of their
	 * line, so that releasing keys below never hands one to an async
	 * delivery. */
	for (struct keyq *k = keyqueue_next(ds->keys, NULL); k; k = keyqueue_next(ds->keys, k)) {
		struct job *w, *last_sync = NULL;
		TAILQ_FOREACH(w, &k->waiting, key_link)
			if (!delivery_async(w->d))
				last_sync = w;
		w = last_sync ? TAILQ_NEXT(last_sync, key_link) : TAILQ_FIRST(&k->waiting);
		for (struct job *wn; w; w = wn) {
			wn = TAILQ_NEXT(w, key_link);
			job_leave_for_next_start(w);
		}
	}
	for (j = TAILQ_FIRST(&ds->queue); j; j = next) {
		next = TAILQ_NEXT(j, link);
		const char *key = delivery_key(j->d);
		struct keyq *k = key ? keyqueue_get(ds->keys, key, false) : NULL;
		/* It holds its key while waiting for a slot: with a sync one
		 * waiting for that key it stays, and runs first. Else its
		 * line is empty now, and giving the key back starts nothing. */
		if (delivery_async(j->d) && !(k && sync_waits_for(k)))
			job_leave_for_next_start(j);
	}
	while ((j = TAILQ_FIRST(&ds->waiting_retry)))
		job_leave_for_next_start(j);
	for (j = TAILQ_FIRST(&ds->waiting_turn); j; j = next) {
		next = TAILQ_NEXT(j, link);
		if (delivery_async(j->d) && !sync_needs_turn_of(ds, j))
			job_leave_for_next_start(j);
	}
}

void dispatcher_left(const struct dispatcher *ds, int *queued, int *retry_wait)
{
	*queued = ds->left_queued;
	*retry_wait = ds->left_retry_wait;
}
