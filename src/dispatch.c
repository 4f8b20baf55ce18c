/*
 * The dispatcher (dispatch.h): a delivery's lifecycle once admitted
 * (serialization keys, the max_running slots, a shared journal's turns,
 * retries) and its outcomes. Every change of a delivery's state goes
 * through job_enter. Its parts with a job of their own: admission, the id
 * rules and the journal's record (dispatch_admit.c), an attempt and its
 * hooks (dispatch_run.c), an attempt's outcome written to the journal and
 * the outbox (dispatch_outcome.c), the drain at a stop (dispatch_drain.c),
 * the ids remembered without a journal (idstore.c), the keys' lines
 * (keyqueue.c), the answers that wait for the journal (groupcommit.c).
 *
 * A pending async delivery waiting in a line is a shell (delivery_shed):
 * its body and environment are in its journal row, read back when an
 * attempt starts (delivery_from_row), so that what waits costs memory by
 * count, not by body size.
 */
#include "dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "dispatch_private.h"
#include "groupcommit.h"
#include "idstore.h"
#include "journal.h"
#include "keyqueue.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "replaywin.h"
#include "route.h"
#include "util.h"

#define MAX_BACKOFF_MS (3600 * 1000)
/* A shared journal: how often deliveries waiting for their turn ask again
 * (README "Running on several machines"), and how many keys that are not
 * free yet end one round of asking. */
#define TURN_POLL_MS 100
#define TURN_BUSY_KEYS_MAX 32
/* Without a journal, idempotency remembers this many finished ids. */
#define MEMORY_IDS_MAX 10000

static void slot_acquire(struct job *j);

/* ---- serialization keys --------------------------------------------- */

/* The key passes straight to the next waiting for it, in arrival order. */
static void key_release(struct dispatcher *ds, const char *key)
{
	struct keyq *k = keyqueue_get(ds->keys, key, false);
	if (!k)
		return;
	struct job *next = TAILQ_FIRST(&k->waiting);
	if (!next) {
		keyqueue_drop(ds->keys, k);
		return;
	}
	slot_acquire(next);
}

static void job_enter(struct job *j, enum lifecycle to);

/* A key's whole line goes to WAIT_TURN, in order, and the key is free. */
static void line_to_turn(struct dispatcher *ds, const char *key)
{
	struct keyq *k = keyqueue_get(ds->keys, key, false);
	if (!k)
		return;
	ds->moving_line = true;
	struct job *w;
	while ((w = TAILQ_FIRST(&k->waiting)))
		job_enter(w, LC_WAIT_TURN);
	ds->moving_line = false;
	keyqueue_drop(ds->keys, k);
}

/* ---- the lifecycle -------------------------------------------------- */

static const bool transitions[LC_COUNT][LC_COUNT] = {
	[LC_NEW] = {[LC_WAIT_KEY] = true, [LC_QUEUED] = true, [LC_RUNNING] = true,
	            [LC_WAIT_RETRY] = true, [LC_DONE] = true, [LC_SHELVED] = true,
	            [LC_WAIT_TURN] = true},
	/* WAIT_KEY, QUEUED, RUNNING and WAIT_TURN to themselves: handed over. */
	[LC_WAIT_KEY] = {[LC_WAIT_KEY] = true, [LC_QUEUED] = true, [LC_RUNNING] = true,
	                 [LC_SHELVED] = true, [LC_WAIT_TURN] = true},
	[LC_QUEUED] = {[LC_QUEUED] = true, [LC_RUNNING] = true, [LC_SHELVED] = true,
	               [LC_WAIT_TURN] = true},
	[LC_RUNNING] = {[LC_RUNNING] = true, [LC_OVER] = true},
	[LC_OVER] = {[LC_WAIT_RETRY] = true, [LC_DONE] = true, [LC_SHELVED] = true},
	[LC_WAIT_RETRY] = {[LC_WAIT_KEY] = true, [LC_QUEUED] = true, [LC_RUNNING] = true,
	                   [LC_SHELVED] = true, [LC_WAIT_TURN] = true},
	[LC_WAIT_TURN] = {[LC_WAIT_KEY] = true, [LC_QUEUED] = true, [LC_RUNNING] = true,
	                  [LC_WAIT_TURN] = true, [LC_DONE] = true, [LC_SHELVED] = true},
};

bool dispatch_transition_legal(enum lifecycle from, enum lifecycle to)
{
	return (unsigned)from < LC_COUNT && (unsigned)to < LC_COUNT && transitions[from][to];
}

static const char *const lifecycle_names[LC_COUNT] = {
	"new", "wait_key", "queued", "running", "over", "wait_retry", "done", "shelved", "wait_turn",
};

/* The states in which a delivery holds its serialization key. */
static bool holds_key(enum lifecycle s)
{
	return s == LC_QUEUED || s == LC_RUNNING;
}

/* The states in which a sync delivery counts against max_queued. */
static bool waiting_in_line(enum lifecycle s)
{
	return s == LC_WAIT_KEY || s == LC_QUEUED || s == LC_WAIT_TURN;
}

static void on_retry(evutil_socket_t fd, short what, void *arg);

/* Waiting in a line, a journaled async delivery keeps only what scheduling
 * needs: the rest is in its row. (A sync one's sender is waiting with it
 * in memory, and its row keeps only a cut body.) */
static void shed(struct job *j)
{
	if (!delivery_async(j->d) || !j->ds->journal || !delivery_rowid(j->d))
		return;
	delivery_shed(j->d);
	route_free(&j->route); /* an async delivery's route is read when it runs */
}

static void job_free(struct job *j)
{
	if (j->retry_timer)
		event_free(j->retry_timer);
	if (j->deadline)
		event_free(j->deadline);
	route_free(&j->route);
	delivery_free(j->d);
	free(j);
}

/* The sender has its answer (once). */
static void answer(struct job *j)
{
	if (j->done) {
		const struct outcome *out = delivery_outcome(j->d);
		/* Its sender hung up after the outcome was written, while the
		 * answer waited for its commit: the journal says so now. */
		if (j->outcome_unmarked && delivery_answer_lost(j->d)) {
			if (journal_client_gone(j->ds->journal, delivery_rowid(j->d),
			                        delivery_attempt(j->d)) == 0) {
				groupcommit_flush_soon(j->ds->commit);
			} else {
				struct log_delivery who = delivery_who(j->d);
				log_about(LOG_LVL_ERROR, "journal: cannot record that the sender "
				          "hung up before its answer", &who, NULL, 0);
			}
		}
		metrics_response(delivery_endpoint(j->d)->name, out->status, out->http);
		delivery_done_fn done = j->done;
		j->done = NULL;
		done(j->d, j->done_arg);
	}
}

/* What an answer's status word counts as when the delivery ends there
 * (hookd_deliveries_total); NULL for one that ends no delivery: refused,
 * pending (409) or accepted. */
static const char *ended_as(const char *status)
{
	static const char *const ends[][2] = {
		{"ok", "ok"},           {"failed", "failed"},       {"timeout", "failed"},
		{"skipped", "skipped"}, {"unhandled", "unhandled"}, {"duplicate", "duplicate"},
	};
	for (size_t i = 0; status && i < ARRAY_SIZE(ends); i++)
		if (strcmp(status, ends[i][0]) == 0)
			return ends[i][1];
	return NULL;
}

/* Whether j's delivery ended once before: a sender's resend of a failed
 * one, or a `hookd replay` (its retries included: they count from it). */
static bool ended_before(const struct job *j)
{
	return j->rerun || delivery_replay(j->d) || delivery_retries_from(j->d) > 1;
}

/* The counters of a change of state: an attempt ends entering OVER (or
 * DONE straight from NEW, when a sync delivery had nothing to run: no
 * route, or no match), a delivery entering DONE the first time it ends
 * (each delivery once; a resend or a replay that runs it again is one
 * more attempt). The event label is the route that matched, so that its
 * values are bounded by hooks.d. */
static void count_transition(struct job *j, enum lifecycle from, enum lifecycle to)
{
	struct dispatcher *ds = j->ds;
	ds->in_state[from]--;
	if (to != LC_DONE && to != LC_SHELVED)
		ds->in_state[to]++;
	if (to != LC_OVER && to != LC_DONE)
		return;
	const char *status = delivery_outcome(j->d)->status;
	const char *ended = ended_as(status);
	const char *ep = delivery_endpoint(j->d)->name;
	const char *event = j->route.name;
	bool attempt_ended = (to == LC_OVER && !j->start_lost) ||
	                     (from == LC_NEW && ended && strcmp(ended, "duplicate") != 0);
	if (attempt_ended)
		metrics_attempt(ep, event, status);
	if (to == LC_DONE && ended && !ended_before(j))
		metrics_delivery(ep, event, ended);
}

/*
 * Every change of a delivery's state: leaves the old one (its line, its
 * slot, its timer), takes or gives back the key, enters the new one. A
 * delivery that enters DONE or SHELVED is freed: the caller must not touch
 * it again.
 */
static void job_enter(struct job *j, enum lifecycle to)
{
	struct dispatcher *ds = j->ds;
	enum lifecycle from = j->state;
	const char *key = delivery_key(j->d);
	if (!dispatch_transition_legal(from, to)) {
		struct log_kv kv[] = {{"from", lifecycle_names[from]}, {"to", lifecycle_names[to]}};
		struct log_delivery who = delivery_who(j->d);
		log_about(LOG_LVL_ERROR, "no way from one state to the other", &who, kv,
		          ARRAY_SIZE(kv));
		abort();
	}
	if (from == to) {
		/* Handed over: sync until now, async from here on, in the same
		 * place; in a line it no longer counts against max_queued, and
		 * waits as a shell. */
		if (waiting_in_line(from))
			ds->queued_sync--;
		delivery_hand_over(j->d);
		if (from != LC_RUNNING)
			shed(j);
		return;
	}
	switch (from) {
	case LC_WAIT_KEY:
		TAILQ_REMOVE(&keyqueue_get(ds->keys, key, false)->waiting, j, key_link);
		break;
	case LC_QUEUED:
		TAILQ_REMOVE(&ds->queue, j, link);
		break;
	case LC_RUNNING:
		ds->running--;
		if (j->retry_timer) { /* it waited to read its row back */
			event_free(j->retry_timer);
			j->retry_timer = NULL;
		}
		/* The next attempt's reads have their own tries, however this
		 * one ended (on_begin_again gives up without attempt_begins). */
		j->begin_tries = 0;
		break;
	case LC_WAIT_RETRY:
		TAILQ_REMOVE(&ds->waiting_retry, j, link);
		event_free(j->retry_timer);
		j->retry_timer = NULL;
		break;
	case LC_WAIT_TURN:
		TAILQ_REMOVE(&ds->waiting_turn, j, link);
		break;
	default:
		break;
	}
	if (!delivery_async(j->d) && waiting_in_line(from) != waiting_in_line(to))
		ds->queued_sync += waiting_in_line(to) ? 1 : -1;
	count_transition(j, from, to);
	j->state = to;
	if (key && !holds_key(from) && holds_key(to)) {
		/* Taken when free; passed on (still busy) from WAIT_KEY. */
		keyqueue_get(ds->keys, key, true)->busy = true;
	} else if (key && holds_key(from) && !holds_key(to)) {
		/* Giving it back may start the next waiting for it at once. */
		key_release(ds, key);
	} else if (key && from == LC_WAIT_KEY && to == LC_WAIT_TURN && !ds->moving_line) {
		/* The key was passed to it (still busy), but it does not run:
		 * its key is busy on another instance. The rest of its line
		 * would only be told the same, one journal question each: they
		 * wait for their turn behind it, in their order. */
		line_to_turn(ds, key);
	}
	switch (to) {
	case LC_WAIT_KEY:
		TAILQ_INSERT_TAIL(&keyqueue_get(ds->keys, key, false)->waiting, j, key_link);
		shed(j);
		break;
	case LC_QUEUED:
		TAILQ_INSERT_TAIL(&ds->queue, j, link);
		shed(j);
		break;
	case LC_WAIT_TURN:
		TAILQ_INSERT_TAIL(&ds->waiting_turn, j, link);
		shed(j);
		if (!evtimer_pending(ds->turn_timer, NULL)) {
			struct timeval tv = {0, TURN_POLL_MS * 1000};
			evtimer_add(ds->turn_timer, &tv);
		}
		break;
	case LC_RUNNING:
		ds->running++;
		j->started_mono = now_mono_ms();
		break;
	case LC_WAIT_RETRY: {
		TAILQ_INSERT_TAIL(&ds->waiting_retry, j, link);
		j->retry_timer = evtimer_new(ds->base, on_retry, j);
		struct timeval tv = {(time_t)(j->retry_in_ms / 1000),
		                     (suseconds_t)(j->retry_in_ms % 1000) * 1000};
		evtimer_add(j->retry_timer, &tv);
		shed(j);
		break;
	}
	case LC_DONE:
		if (ds->on_end)
			ds->on_end(j->d, ds->on_end_arg);
		answer(j);
		job_free(j);
		break;
	case LC_SHELVED:
		job_free(j);
		break;
	default:
		break;
	}
}

/* Shutting down: an async delivery that has not started stays journaled,
 * its place (queued) or its due time (retry_wait) the next start's; counted
 * for the "stopped" line (dispatcher_left). */
void job_leave_for_next_start(struct job *j)
{
	if (j->state == LC_WAIT_RETRY || j->state == LC_OVER)
		j->ds->left_retry_wait++;
	else
		j->ds->left_queued++;
	job_enter(j, LC_SHELVED);
}

struct job *job_new(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->d = d;
	j->ds = ds;
	j->state = LC_NEW;
	ds->in_state[LC_NEW]++;
	j->done = done;
	j->done_arg = arg;
	return j;
}

/*
 * A shared journal: the delivery may run only once the journal says it
 * may (journal.h journal_take_turn): its key free on every instance, its
 * lease still this instance's, the journal reachable. Else it waits in
 * WAIT_TURN, or, taken over by another instance, leaves this one.
 * Without sharing, always true (the attempt is recorded as it begins).
 */
static bool turn_taken(struct job *j)
{
	struct dispatcher *ds = j->ds;
	struct delivery *d = j->d;
	const char *key = delivery_key(d);
	if (!delivery_rowid(d))
		return true;
	int r;
	if (outbox_holds(ds->outbox, delivery_rowid(d))) {
		r = RESULT_PENDING; /* its last attempt's outcome is written first */
		/* A sync resend's record may have gone with the batch that lost
		 * that outcome: its attempt is marked running as it starts. */
		if (!delivery_async(d))
			j->recorded_waiting = true;
	} else if (!ds->shared || (!key && !delivery_async(d) && !j->recorded_waiting)) {
		/* a sync delivery without a key that did not wait was recorded running */
		return true;
	} else if (key) {
		r = journal_take_turn(ds->journal, delivery_rowid(d), key, delivery_attempt(d),
		                      now_wall_ms());
	} else {
		r = journal_attempt_started(ds->journal, delivery_rowid(d), delivery_attempt(d),
		                            now_wall_ms());
		r = r == 0 ? RESULT_OK : r == JOURNAL_LOST ? JOURNAL_LOST : RESULT_ERROR;
	}
	j->behind_own = r == JOURNAL_TURN_HERE;
	if (r == RESULT_OK)
		return true;
	if (j->state != LC_WAIT_TURN) /* else it keeps its place in the line */
		job_enter(j, LC_WAIT_TURN);
	if (r == JOURNAL_LOST)
		job_taken_over(j);
	return false;
}

void job_taken_over(struct job *j)
{
	struct delivery *d = j->d;
	struct log_delivery who = delivery_who(d);
	log_about(LOG_LVL_INFO, "another instance took it over; not run here", &who, NULL, 0);
	if (j->state == LC_RUNNING) {
		/* It waited there to read its row back: no attempt began. */
		j->start_lost = true;
		job_release(j);
	}
	if (delivery_async(d) || !j->done)
		job_enter(j, LC_SHELVED);
	else
		job_answer_now(j, 503, "overloaded", xstrdup("taken over by another instance"),
		           RETRY_AFTER_PENDING);
}

static void start_running(struct job *j)
{
	if (!turn_taken(j))
		return;
	job_enter(j, LC_RUNNING);
	job_run_next_hook(j);
}

static void slot_acquire(struct job *j)
{
	struct dispatcher *ds = j->ds;
	/* Within release, the line is the way in: its loop starts j. */
	if (!ds->releasing && ds->running < ds->cfg->max_running && TAILQ_EMPTY(&ds->queue)) {
		start_running(j);
		return;
	}
	job_enter(j, LC_QUEUED);
}

/* Waiting for a key, or for a slot: async through the same line as sync. */
void job_admit(struct job *j)
{
	const char *key = delivery_key(j->d);
	struct keyq *k = key ? keyqueue_get(j->ds->keys, key, false) : NULL;
	if (k && k->busy) {
		job_enter(j, LC_WAIT_KEY);
		return;
	}
	slot_acquire(j);
}

/*
 * Deliveries waiting for their turn (shared journal) ask again, in the
 * order they came; once a key was not free this round, the later ones with
 * it wait for the next (they would only be told the same), unless what it
 * waits for is an earlier one of its key held here, which may be later in
 * this line. Those that stay keep their place.
 */
static void on_turn_poll(evutil_socket_t fd, short what, void *arg)
{
	struct dispatcher *ds = arg;
	if (ds->shared)
		dispatch_write_outbox(ds); /* SQLite's: on_outbox_retry, each second */
	const char *busy[TURN_BUSY_KEYS_MAX];
	size_t nbusy = 0;
	/* A delivery admitted here may come back at the tail: one round looks
	 * at each only once. */
	size_t n = 0;
	struct job *j;
	TAILQ_FOREACH(j, &ds->waiting_turn, link)
		n++;
	struct job **round = xcalloc(n ? n : 1, sizeof(*round));
	n = 0;
	TAILQ_FOREACH(j, &ds->waiting_turn, link)
		round[n++] = j;
	for (size_t i = 0; i < n && nbusy < TURN_BUSY_KEYS_MAX; i++) {
		j = round[i];
		const char *key = delivery_key(j->d);
		bool skip = false;
		for (size_t b = 0; key && b < nbusy && !skip; b++)
			skip = strcmp(busy[b], key) == 0;
		if (skip)
			continue;
		job_admit(j); /* may end j (shelved, answered): not touched below */
		bool still = false;
		for (struct job *w = TAILQ_FIRST(&ds->waiting_turn); w && !still;
		     w = TAILQ_NEXT(w, link))
			still = w == j;
		/* Not when it waits only for an earlier one held here: this
		 * line is not always in the journal's order (a delivery that
		 * left it for a slot, or was taken over, comes back at its
		 * tail), and that one may be behind it. */
		if (still && key && !j->behind_own)
			busy[nbusy++] = delivery_key(j->d);
		if (!journal_up(ds->journal))
			break; /* no use asking a journal that is down */
	}
	free(round);
	if (!TAILQ_EMPTY(&ds->waiting_turn)) {
		struct timeval tv = {0, TURN_POLL_MS * 1000};
		evtimer_add(ds->turn_timer, &tv);
	}
}

/* Free slots go to the first in line. */
static void start_queued(struct dispatcher *ds)
{
	while (ds->running < ds->cfg->max_running && !TAILQ_EMPTY(&ds->queue))
		start_running(TAILQ_FIRST(&ds->queue));
}

/* The attempt is over: its slot and key go back, and on to those in line. */
void job_release(struct job *j)
{
	struct dispatcher *ds = j->ds;
	bool outer = !ds->releasing;
	ds->releasing = true;
	job_enter(j, LC_OVER);
	if (!outer)
		return;
	start_queued(ds);
	ds->releasing = false;
}

void job_schedule_retry(struct job *j, int64_t delay_ms)
{
	j->retry_in_ms = delay_ms;
	job_enter(j, LC_WAIT_RETRY);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	delivery_set_attempt(j->d, delivery_attempt(j->d) + 1);
	delivery_reset_attempt(j->d);
	j->next_hook = 0;
	/* The journal keeps it retry_wait, now due, until the attempt starts
	 * (journal_attempt_started); recovery runs a due one like a queued
	 * one. (journal_requeue is for final deliveries: here it did nothing.) */
	job_admit(j);
}

/* ---- outcomes ------------------------------------------------------- */

/* The job a held answer belongs to. */
#define JOB_OF_HELD(h) ((struct job *)((char *)(h) - offsetof(struct job, held)))

/* An answer that waits for the batch the journal is writing now. */
void job_hold(struct job *j, bool sync_too)
{
	if (j->ds->commit) {
		groupcommit_hold(j->ds->commit, &j->held, sync_too);
		return;
	}
	/* A journal whose every write is durable when it returns (one that
	 * cannot batch): nothing to wait for. */
	if (sync_too)
		job_accepted(j, true);
	else
		job_enter(j, LC_DONE);
}

/* Durably queued (synced: else the sync failed and the sender is asked to
 * send it again, though it may run anyway): the sender has its answer now,
 * the run comes later. */
void job_accepted(struct job *j, bool synced)
{
	struct delivery *d = j->d;
	if (synced)
		delivery_set_outcome(d, 202, "accepted", NULL);
	else
		delivery_set_outcome(d, 503, "overloaded", xstrdup("cannot sync the journal"));
	if (!synced)
		delivery_set_retry_after(d, RETRY_AFTER_OVERLOAD);
	delivery_log(d);
	answer(j);
	if (j->ds->draining) {
		job_leave_for_next_start(j); /* the next start's to run */
		return;
	}
	delivery_reset_attempt(d);
	j->next_hook = 0;
	job_admit(j);
}

/* A sync delivery's outcome, committed. */
static void on_committed(struct held_answer *h, void *arg)
{
	job_enter(JOB_OF_HELD(h), LC_DONE);
}

/* An acceptance whose record was lost with its batch: 503, and its body
 * forgotten by the replay window (dispatch_admit.c record() remembered
 * it), so that the sender's resend, under whatever id, runs. */
static void acceptance_lost(struct job *j)
{
	size_t len;
	const unsigned char *body = delivery_body(j->d, &len);
	replaywin_forget(j->ds->replay, delivery_endpoint(j->d)->name, body, len);
	job_answer_now(j, 503, "overloaded", xstrdup("cannot write the journal"),
	           RETRY_AFTER_OVERLOAD);
}

/* After a lost batch, what the journal holds of j's record. */
enum record_fate { RECORD_THERE, RECORD_GONE, RECORD_UNKNOWN };
static enum record_fate record_fate(struct job *j);

void job_not_begun(struct job *j, const char *why)
{
	delivery_set_outcome(j->d, 503, "failed", xstrdup(why));
	delivery_set_retry_after(j->d, RETRY_AFTER_OVERLOAD);
	job_release(j);
	job_attempt_over(j);
}

/*
 * An async delivery whose attempt could not begin (its row not read back,
 * its start not recorded) because its row is no longer pending: deleted
 * from the journal by hand, or (a shared journal) finished by another
 * instance. Nothing of it is left to run or to record, and waiting would
 * not bring it back: it leaves, its slot and key freed, with a line that
 * says so. False, and nothing done, when the row is there or the look-up
 * failed (the journal may be down: the caller's wait or retry stands).
 */
bool job_row_gone(struct job *j)
{
	if (!delivery_async(j->d) || !delivery_rowid(j->d) || record_fate(j) != RECORD_GONE)
		return false;
	struct log_delivery who = delivery_who(j->d);
	log_about(LOG_LVL_ERROR,
	          "journal: its row is no longer pending (deleted from the journal, or finished "
	          "by another instance); it does not run",
	          &who, NULL, 0);
	/* A shared journal's hold on it (its fence) goes too, as recovery's
	 * for a row it cannot read: nothing of it is left to write. */
	journal_let_go(j->ds->journal, delivery_rowid(j->d));
	j->start_lost = true;
	job_release(j);
	job_enter(j, LC_SHELVED);
	return true;
}

/*
 * The batch that recorded the start of j's attempt was lost (the disk
 * full): its first hook never started. A row committed before that batch
 * (an async delivery, a sync one that waited for a slot or its key) has
 * an attempt that could not start for a reason that may pass: 503
 * `failed`, retried as such when async; an async one with a key first
 * tries again to begin, keeping its key (a retry would give it up to the
 * next delivery of its key: job_begin_later). Otherwise a batch took the
 * delivery's record with it (or a resend's rewrite of its failed row): the
 * journal holds nothing new of it and nothing ran, which is README "HTTP
 * answers"' 503 `overloaded`, no attempt, no hook.
 */
void job_start_lost(struct job *j)
{
	struct delivery *d = j->d;
	delivery_reset_attempt(d);
	/* A batch lost after another write had committed the batch before it
	 * (mid-turn) leaves the record of a sync delivery that did not wait in
	 * place, running: it gets its failed attempt too, not a row stuck
	 * running. One that waited for a slot or its key is looked up too:
	 * its record may have gone with an earlier lost batch. A look-up that
	 * fails cannot say it went: its row may still be queued, and a 503
	 * `overloaded` would have its resends refused (409) while it waits. */
	if (job_row_gone(j))
		return;
	if (delivery_async(d) && job_begin_later(j, "its start was lost with a journal batch"))
		return;
	if (delivery_async(d) || record_fate(j) != RECORD_GONE) {
		job_not_begun(j, "cannot write the journal");
		return;
	}
	j->start_lost = true;
	delivery_set_outcome(d, 503, "overloaded", NULL);
	job_release(j);
	acceptance_lost(j);
}

/* After a lost batch, whether j's record is one that was committed: its
 * row, still pending (nothing runs before the answer). A resend of a
 * failed delivery rewrites that row in place, so a lost one leaves the
 * row there, failed. RECORD_UNKNOWN: the look-up failed. */
static enum record_fate record_fate(struct job *j)
{
	enum delivery_state st;
	int64_t rowid;
	enum result r = journal_lookup(j->ds->journal, delivery_endpoint(j->d)->name,
	                               delivery_id(j->d), &st, NULL, &rowid);
	if (r == RESULT_ERROR)
		return RECORD_UNKNOWN;
	return r == RESULT_OK && rowid == delivery_rowid(j->d) && delivery_state_pending(st)
	               ? RECORD_THERE
	               : RECORD_GONE;
}

/* An acceptance, synced (or not): is its record there, if a batch was
 * lost? One the journal cannot say of is not promised (503, and it may
 * run, as after a failed sync). */
static void on_synced(struct held_answer *h, bool ok, bool maybe_lost, void *arg)
{
	struct job *j = JOB_OF_HELD(h);
	enum record_fate fate = maybe_lost ? record_fate(j) : RECORD_THERE;
	if (fate == RECORD_GONE) {
		acceptance_lost(j);
		return;
	}
	job_accepted(j, ok && fate == RECORD_THERE);
}

static void on_lost(struct held_answer *h, void *arg)
{
	acceptance_lost(JOB_OF_HELD(h));
}

static void on_dropped(struct held_answer *h, void *arg)
{
	struct job *j = JOB_OF_HELD(h);
	j->done = NULL;
	job_free(j);
}

static const struct groupcommit_ops held_answers = {
	.committed = on_committed,
	.synced = on_synced,
	.lost = on_lost,
	.flushed = dispatch_on_flushed,
	.dropped = on_dropped,
};

/* Final: a sync sender's answer waits until its outcome is committed. */
static void finish(struct job *j)
{
	if (j->ds->journal && delivery_rowid(j->d) && !delivery_async(j->d) && j->done)
		job_hold(j, false);
	else
		job_enter(j, LC_DONE);
}

/* The delivery's attempt is over: record, then answer or retry. */
void job_attempt_over(struct job *j)
{
	struct dispatcher *ds = j->ds;
	struct delivery *d = j->d;
	const struct delivery_opts *opts = delivery_opts(d);
	const struct outcome *out = delivery_outcome(d);
	delivery_set_ms(d, now_mono_ms() - j->started_mono);
	bool ok = out->http >= 200 && out->http < 300;
	bool retryable = !ok && (out->http == 503 || strcmp(out->status, "timeout") == 0);
	enum delivery_state st = dispatch_final_state(out);
	int64_t delay = 0;
	/* The attempts of this run of retries: since the first, or since the
	 * last replay (its count is its own). */
	int tried = delivery_attempt(d) - delivery_retries_from(d) + 1;
	if (delivery_async(d) && retryable && tried < opts->retries + 1) {
		/* The n-th retry waits backoff * 2^(n-1), capped at an hour;
		 * shutting down, the same due time is the next start's to keep. */
		delay = opts->retry_backoff_ms;
		for (int n = 1; n < tried && delay < MAX_BACKOFF_MS; n++)
			delay *= 2;
		if (delay > MAX_BACKOFF_MS)
			delay = MAX_BACKOFF_MS;
		st = DSTATE_RETRY_WAIT;
	}
	int64_t next_due = st == DSTATE_RETRY_WAIT ? now_wall_ms() + delay : 0;
	int recorded = j->recorded_final ? 0 : dispatch_journal_finish(ds, d, st, next_due);
	/* An async one's retries are not this process's to go on with: the
	 * delivery is another instance's now, or its row went with a lost
	 * batch (its acceptance was answered 503: the sender's to resend). */
	bool lost = recorded == JOURNAL_LOST || recorded == JOURNAL_GONE;
	j->outcome_unmarked = ds->journal && delivery_rowid(d) > 0 && !lost &&
	                      !delivery_answer_lost(d);
	if (!ds->journal && !delivery_id_generated(d))
		dispatch_remember_id(ds, d, st);
	/* A sync delivery that failed is the sender's to send again. With an
	 * id of its own, the id rules know the resend; without one, the same
	 * body is all there is, and it must run. */
	if (!ok && !delivery_async(d) && delivery_id_generated(d) &&
	    delivery_endpoint(d)->replay_window_ms > 0) {
		size_t len;
		const unsigned char *body = delivery_body(d, &len);
		replaywin_forget(ds->replay, delivery_endpoint(d)->name, body, len);
	}
	delivery_set_attempt_end(d, st == DSTATE_RETRY_WAIT, delay, now_wall_ms() + delay);
	delivery_log(d);
	if (lost && delivery_async(d))
		job_enter(j, LC_SHELVED);
	else if (st != DSTATE_RETRY_WAIT)
		finish(j);
	else if (ds->draining)
		job_leave_for_next_start(j); /* its retry is the next start's */
	else
		job_schedule_retry(j, delay);
}

/*
 * respond_within passed with the sender still waiting: if the journal can
 * take it as it takes an async delivery (journal_max, journal_max_bytes),
 * its row becomes async (durably), the sender gets 202 "accepted", and the
 * delivery goes on where it is; its outcome is the journal's and the log's.
 * If not, it stays sync and its sender goes on waiting.
 */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	struct dispatcher *ds = j->ds;
	struct delivery *d = j->d;
	if (!j->done || delivery_async(d) || !dispatch_transition_legal(j->state, j->state))
		return;
	size_t len;
	const unsigned char *body = delivery_body(d, &len);
	const char *why = NULL;
	if (journal_pending_count(ds->journal) >= ds->cfg->journal_max)
		why = "journal_max deliveries pending";
	else if ((uint64_t)journal_pending_bytes(ds->journal) + len > ds->cfg->journal_max_bytes)
		why = "journal_max_bytes of bodies pending";
	else if (journal_hand_over(ds->journal, delivery_rowid(d), j->state == LC_RUNNING, body,
	                           len) < 0)
		why = "cannot write the journal (or another instance took it over)";
	if (why) {
		struct log_kv kv[] = {{"error", why}};
		struct log_delivery who = delivery_who(d);
		log_about(LOG_LVL_WARN, "not answered at respond_within", &who, kv, ARRAY_SIZE(kv));
		return;
	}
	job_enter(j, j->state);
	delivery_set_outcome(j->d, 202, "accepted", NULL);
	delivery_set_ms(j->d, now_mono_ms() - j->started_mono);
	delivery_log(j->d);
	answer(j);
}

/* A sync delivery with a journal row: its sender's deadline starts now. */
void job_arm_deadline(struct job *j)
{
	int64_t ms = delivery_opts(j->d)->respond_within_ms;
	if (ms <= 0 || !j->ds->journal || delivery_rowid(j->d) <= 0)
		return;
	j->deadline = evtimer_new(j->ds->base, on_deadline, j);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(j->deadline, &tv);
}

/* Answered before anything runs; final. */
void job_answer_now(struct job *j, int http, const char *status, char *error, int retry_after)
{
	delivery_set_outcome(j->d, http, status, error);
	delivery_set_retry_after(j->d, retry_after);
	if (http == 503)
		metrics_rejection(503, j->ds->draining ? "shutting_down" : "overloaded");
	else if (http == 409)
		metrics_rejection(409, "pending");
	else if (http == 400)
		metrics_rejection(400, NULL);
	delivery_log(j->d);
	job_enter(j, LC_DONE);
}

/* ---- the dispatcher ------------------------------------------------- */

struct dispatcher *dispatcher_new(struct event_base *base, struct config *cfg,
                                  struct journal *journal)
{
	struct dispatcher *ds = xcalloc(1, sizeof(*ds));
	ds->base = base;
	ds->cfg = config_ref(cfg);
	ds->journal = journal;
	ds->shared = journal_shared(journal);
	if (journal)
		ds->outbox = outbox_new(journal);
	ds->outbox_timer = evtimer_new(base, dispatch_on_outbox_retry, ds);
	/* Group commit: SQLite's commits wait for a sync of the WAL of their
	 * own, PostgreSQL's (each a flush of its WAL) for nothing more. */
	if (journal_batches(journal))
		ds->commit = groupcommit_new(base, journal, &held_answers, ds);
	TAILQ_INIT(&ds->queue);
	TAILQ_INIT(&ds->waiting_retry);
	TAILQ_INIT(&ds->waiting_turn);
	ds->turn_timer = evtimer_new(base, on_turn_poll, ds);
	ds->keys = keyqueue_new();
	if (!journal)
		ds->ids = idstore_new(MEMORY_IDS_MAX);
	ds->replay = replaywin_new(REPLAYWIN_MAX);
	return ds;
}

void dispatcher_set_config(struct dispatcher *ds, struct config *cfg)
{
	config_unref(ds->cfg);
	ds->cfg = config_ref(cfg);
	/* A larger max_running may let waiting deliveries start now. */
	start_queued(ds);
}

bool dispatcher_idle(const struct dispatcher *ds)
{
	return ds->running == 0 && ds->queued_sync == 0 && groupcommit_idle(ds->commit);
}

bool dispatcher_draining(const struct dispatcher *ds)
{
	return ds->draining;
}

int dispatcher_running(const struct dispatcher *ds)
{
	return ds->running;
}

void dispatcher_pending(const struct dispatcher *ds, int *queued, int *running, int *retry_wait)
{
	*queued = ds->in_state[LC_WAIT_KEY] + ds->in_state[LC_QUEUED] + ds->in_state[LC_WAIT_TURN];
	*running = ds->in_state[LC_RUNNING] + ds->in_state[LC_OVER];
	*retry_wait = ds->in_state[LC_WAIT_RETRY];
}

int dispatcher_free_slots(const struct dispatcher *ds)
{
	int free_slots = ds->cfg->max_running - ds->running - ds->in_state[LC_QUEUED] -
	                 ds->in_state[LC_WAIT_TURN];
	return free_slots > 0 ? free_slots : 0;
}

int dispatcher_queued(const struct dispatcher *ds)
{
	int n = 0;
	const struct job *j;
	TAILQ_FOREACH(j, &ds->queue, link)
		n++;
	return n;
}

struct config *dispatcher_config(const struct dispatcher *ds)
{
	return ds->cfg;
}

struct journal *dispatcher_journal(const struct dispatcher *ds)
{
	return ds->journal;
}

void dispatcher_free(struct dispatcher *ds)
{
	if (!ds)
		return;
	dispatcher_drain(ds);
	groupcommit_free(ds->commit); /* the last batch committed, batching off */
	ds->commit = NULL;
	if (ds->outbox)
		outbox_settle(ds->outbox, journal_committed_id(ds->journal),
		              journal_losses(ds->journal));
	event_free(ds->outbox_timer);
	/* Sync deliveries still waiting for their turn have no sender left. */
	struct job *j;
	while ((j = TAILQ_FIRST(&ds->waiting_turn))) {
		j->done = NULL;
		job_enter(j, LC_SHELVED);
	}
	event_free(ds->turn_timer);
	dispatch_write_outbox(ds); /* a last try */
	outbox_free(ds->outbox);
	keyqueue_free(ds->keys);
	idstore_free(ds->ids);
	replaywin_free(ds->replay);
	config_unref(ds->cfg);
	free(ds);
}

void dispatcher_on_end(struct dispatcher *ds, delivery_done_fn fn, void *arg)
{
	ds->on_end = fn;
	ds->on_end_arg = arg;
}
