/*
 * Outcomes a shared journal could not take when an attempt ended (it was
 * down): kept, deep-copied, and written again, in order, once it answers
 * (README "Running on several machines": a run that ends during an outage
 * is recorded when the journal is back, and does not run again). The
 * delivery stays held by this instance meanwhile (journal_pg.c renews its
 * lease), and its next attempt waits for its outcome (outbox_holds).
 *
 * Also outcomes a batch of the SQLite journal took (outbox_keep): kept
 * until that batch is known committed (outbox_settle), and written again
 * if it was lost (a full disk, an I/O error): the hook ran, and an outcome
 * lost with its batch would leave the row `running`, to run again after a
 * restart. Writing an outcome again is harmless: its attempt row is
 * replaced and the row's state set to what it already is.
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
/* Keeps a copy of the outcome journal_attempt_finished could not write;
 * `who`: the delivery's keys for the lines about it (the attempt is a's). */
struct log_delivery;
void outbox_add(struct outbox *o, int64_t rowid, const struct log_delivery *who,
                const struct journal_attempt *a, enum delivery_state state,
                int64_t next_due_ms);
/* Keeps a copy of an outcome journal_attempt_finished wrote into the open
 * batch `batch`, when the journal had lost `losses` batches. */
void outbox_keep(struct outbox *o, int64_t rowid, const struct log_delivery *who,
                 const struct journal_attempt *a, enum delivery_state state, int64_t next_due_ms,
                 uint64_t batch, uint64_t losses);
/* After a commit of the batches: those kept outcomes whose batch is
 * committed with no batch lost since they were written are dropped; the
 * others are to be written again (logged once each). How many wait to be
 * written. */
size_t outbox_settle(struct outbox *o, uint64_t committed, uint64_t losses);
/* Writes what waits to be written, oldest first, until the journal fails
 * again; an outcome whose delivery another instance took meanwhile
 * (JOURNAL_LOST), or whose row is not there (JOURNAL_GONE: it would block
 * every outcome behind it for good), is dropped, logged. One written into a batch (batching:
 * the journal's outcomes join its batch) is kept until it settles. How
 * many still wait to be written. */
size_t outbox_flush(struct outbox *o, bool batching);
/* Whether an outcome of this delivery still waits to be written, or to be
 * known committed. */
bool outbox_holds(const struct outbox *o, int64_t rowid);
size_t outbox_count(const struct outbox *o); /* those waiting to be written */

#endif
