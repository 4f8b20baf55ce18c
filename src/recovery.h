/*
 * The journal's own deliveries: the pending async ones taken back at start
 * (recovery), and a final one run again on request (`hookd replay`, through
 * the control socket). Each becomes a delivery again, as it was received,
 * and goes to the dispatcher.
 */
#ifndef HOOKD_RECOVERY_H
#define HOOKD_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct config;
struct delivery;
struct dispatcher;
struct journal;

/*
 * The one way a journal row becomes a delivery again: row rowid as it came
 * (received time, headers, payload), at the given attempt, under cfg. Used
 * by recovery and replay, and by the dispatcher when an attempt of a
 * pending async delivery starts (its body and environment wait in the
 * journal meanwhile). NULL, logged, when the row cannot be read or its
 * endpoint is not in cfg.
 */
struct delivery *delivery_from_row(struct journal *journal, struct config *cfg, int64_t rowid,
                                   int attempt);
/* A look at it with the environment its hooks got built (the deliveries
 * page, `hookd show`'s env_omitted); NULL when it cannot be rebuilt (a
 * body the journal kept cut, an endpoint no longer configured).
 * Nothing ran, so what its environment leaves out, or an endpoint no
 * longer configured, is not logged. */
struct delivery *delivery_view_with_env(struct journal *journal, struct config *cfg,
                                        int64_t rowid, int attempt);

/* Recovers the journal's pending async deliveries (at start); 0, or -1
 * when the journal cannot be read. */
int dispatch_recover(struct dispatcher *ds);
/* A shared journal: takes over at most max pending async deliveries whose
 * instance's lease ran out (journal_adopt). How many, or -1. */
int dispatch_adopt(struct dispatcher *ds, size_t max);
/* A shared journal: takes at most max async deliveries that other
 * instances have had queued for waited_ms without a free slot
 * (journal_steal). How many, or -1. */
int dispatch_steal(struct dispatcher *ds, size_t max, int64_t waited_ms);
/* After a reload: the pending async deliveries that recovery, adoption or
 * a steal left waiting because their endpoint was not configured, resumed
 * if the config now has it (README "Logs and signals"). How many. */
int dispatch_resume_left(struct dispatcher *ds);
/* Frees the list of those still waiting (at exit). */
void recovery_forget_left(void);
/* Replays a journaled delivery by rowid: RESULT_OK (queued), RESULT_UNKNOWN,
 * RESULT_PENDING (already queued, running or waiting for a retry),
 * RESULT_BODY_CUT or RESULT_NO_ENDPOINT (its endpoint was removed from the
 * config; nothing changed), or RESULT_ERROR (the journal could not record
 * the replay: nothing runs). */
enum result dispatch_replay(struct dispatcher *ds, int64_t rowid);

#endif
