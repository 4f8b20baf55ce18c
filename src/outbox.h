/*
 * Outcomes a shared journal could not take when an attempt ended (it was
 * down): kept, deep-copied, and written again, in order, once it answers
 * (README "Running on several machines": a run that ends during an outage
 * is recorded when the journal is back, and does not run again). The
 * delivery stays held by this instance meanwhile (journal_pg.c renews its
 * lease), and its next attempt waits for its outcome (outbox_holds).
 */
#ifndef HOOKD_OUTBOX_H
#define HOOKD_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

struct outbox;

struct outbox *outbox_new(struct journal *journal);
void outbox_free(struct outbox *o); /* NULL is fine */
/* Keeps a copy of the outcome journal_attempt_finished could not write. */
void outbox_add(struct outbox *o, int64_t rowid, const struct journal_attempt *a,
                enum delivery_state state, int64_t next_due_ms);
/* Writes what it holds, oldest first, until the journal fails again; an
 * outcome whose delivery another instance took meanwhile (JOURNAL_LOST) is
 * dropped, logged. How many are still waiting. */
size_t outbox_flush(struct outbox *o);
/* Whether an outcome of this delivery still waits to be written. */
bool outbox_holds(const struct outbox *o, int64_t rowid);
size_t outbox_count(const struct outbox *o);

#endif
