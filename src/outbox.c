/*
 * Unwritten outcomes (outbox.h). Few and short-lived: attempts that ended
 * while the journal was down (nothing new runs meanwhile: every delivery is
 * answered 503), and the outcomes of the SQLite batch open now or lost, so
 * a list is enough.
 */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "util.h"

struct unwritten {
	TAILQ_ENTRY(unwritten) link;
	int64_t rowid;
	char *endpoint, *event, *id; /* the delivery's, for its log lines */
	struct journal_attempt a; /* every string and the hooks owned */
	enum delivery_state state;
	int64_t next_due_ms;
	/* Written into this batch, when the journal had lost `losses`; 0: to
	 * be written. */
	uint64_t batch, losses;
	bool told; /* its loss was logged */
};

struct outbox {
	struct journal *journal;
	TAILQ_HEAD(, unwritten) items;
	size_t n; /* of them, to be written (batch 0) */
};

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void unwritten_free(struct unwritten *u)
{
	for (size_t i = 0; i < u->a.nhooks; i++) {
		struct journal_hook *h = (struct journal_hook *)&u->a.hooks[i];
		free((char *)h->hook);
		free((char *)h->signal);
		free((char *)h->error);
		free((char *)h->output);
	}
	free((struct journal_hook *)u->a.hooks);
	free((char *)u->a.status);
	free((char *)u->a.error);
	free((char *)u->a.instance);
	free(u->endpoint);
	free(u->event);
	free(u->id);
	free(u);
}

/* A line about the delivery whose outcome this is. */
static void log_unwritten(const struct unwritten *u, const char *msg)
{
	struct log_delivery who = {u->endpoint, u->event, u->id, u->a.attempt};
	char row[24];
	snprintf(row, sizeof(row), "%lld", (long long)u->rowid);
	struct log_kv kv[] = {LOG_INT("row", row)};
	log_about(LOG_LVL_WARN, msg, &who, kv, ARRAY_SIZE(kv));
}

struct outbox *outbox_new(struct journal *journal)
{
	struct outbox *o = xcalloc(1, sizeof(*o));
	o->journal = journal;
	TAILQ_INIT(&o->items);
	return o;
}

void outbox_free(struct outbox *o)
{
	if (!o)
		return;
	struct unwritten *u;
	while ((u = TAILQ_FIRST(&o->items))) {
		TAILQ_REMOVE(&o->items, u, link);
		log_unwritten(u, "journal: an outcome was never written; the delivery runs again "
		                 "when it is next taken up");
		unwritten_free(u);
	}
	free(o);
}

static struct unwritten *copy_of(int64_t rowid, const struct log_delivery *who,
                                 const struct journal_attempt *a, enum delivery_state state,
                                 int64_t next_due_ms)
{
	struct unwritten *u = xcalloc(1, sizeof(*u));
	u->rowid = rowid;
	u->endpoint = dup_or_null(who->endpoint);
	u->event = dup_or_null(who->event);
	u->id = dup_or_null(who->id);
	u->state = state;
	u->next_due_ms = next_due_ms;
	u->a = *a;
	u->a.status = dup_or_null(a->status);
	u->a.error = dup_or_null(a->error);
	u->a.instance = dup_or_null(a->instance);
	struct journal_hook *hooks = a->nhooks ? xcalloc(a->nhooks, sizeof(*hooks)) : NULL;
	for (size_t i = 0; i < a->nhooks; i++) {
		hooks[i] = a->hooks[i];
		hooks[i].hook = dup_or_null(a->hooks[i].hook);
		hooks[i].signal = dup_or_null(a->hooks[i].signal);
		hooks[i].error = dup_or_null(a->hooks[i].error);
		char *out = NULL;
		if (a->hooks[i].output) {
			out = xmalloc(a->hooks[i].output_len + 1);
			memcpy(out, a->hooks[i].output, a->hooks[i].output_len);
			out[a->hooks[i].output_len] = 0;
		}
		hooks[i].output = out;
	}
	u->a.hooks = hooks;
	return u;
}

void outbox_add(struct outbox *o, int64_t rowid, const struct log_delivery *who,
                const struct journal_attempt *a, enum delivery_state state,
                int64_t next_due_ms)
{
	struct unwritten *u = copy_of(rowid, who, a, state, next_due_ms);
	TAILQ_INSERT_TAIL(&o->items, u, link); /* a macro: u, not the call */
	o->n++;
	log_unwritten(u, "journal: the attempt ended while the journal was down; its outcome is "
	                 "written when it is back");
}

void outbox_keep(struct outbox *o, int64_t rowid, const struct log_delivery *who,
                 const struct journal_attempt *a, enum delivery_state state,
                 int64_t next_due_ms, uint64_t batch, uint64_t losses)
{
	struct unwritten *u = copy_of(rowid, who, a, state, next_due_ms);
	u->batch = batch;
	u->losses = losses;
	TAILQ_INSERT_TAIL(&o->items, u, link);
}

size_t outbox_settle(struct outbox *o, uint64_t committed, uint64_t losses)
{
	struct unwritten *u, *next;
	for (u = TAILQ_FIRST(&o->items); u; u = next) {
		next = TAILQ_NEXT(u, link);
		if (!u->batch)
			continue;
		if (u->batch <= committed && u->losses == losses) {
			TAILQ_REMOVE(&o->items, u, link);
			unwritten_free(u);
			continue;
		}
		/* Its batch, or one after it that it cannot be told from, was
		 * lost: the row may still say running. */
		if (!u->told)
			log_unwritten(u, "journal: the attempt's outcome may have been lost with a "
			                 "batch; it is written again until it is committed");
		u->told = true;
		u->batch = 0;
		o->n++;
	}
	return o->n;
}

size_t outbox_flush(struct outbox *o, bool batching)
{
	struct unwritten *u, *next;
	for (u = TAILQ_FIRST(&o->items); u && o->n; u = next) {
		next = TAILQ_NEXT(u, link);
		if (u->batch)
			continue; /* written, not yet known committed */
		int rc = journal_attempt_finished(o->journal, u->rowid, &u->a, u->state,
		                                  u->next_due_ms);
		if (rc == -1)
			break; /* still down: the same order next time */
		o->n--;
		if (rc == 0 && batching) {
			u->batch = journal_batch_id(o->journal);
			u->losses = journal_losses(o->journal);
			continue;
		}
		if (rc == JOURNAL_LOST)
			log_unwritten(u, "journal: the attempt is not recorded: another instance took "
			              "the delivery over meanwhile");
		else if (rc == JOURNAL_GONE)
			log_unwritten(u, "journal: the attempt is not recorded: the delivery's row is "
			              "gone (lost with a batch)");
		TAILQ_REMOVE(&o->items, u, link);
		unwritten_free(u);
	}
	return o->n;
}

bool outbox_holds(const struct outbox *o, int64_t rowid)
{
	if (!o)
		return false;
	const struct unwritten *u;
	TAILQ_FOREACH(u, &o->items, link)
		if (u->rowid == rowid)
			return true;
	return false;
}

size_t outbox_count(const struct outbox *o)
{
	return o ? o->n : 0;
}
