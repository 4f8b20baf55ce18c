/*
 * The journal's own deliveries: the pending async ones taken back at start
 * (recovery), and a final one run again on request (`hookd replay`, through
 * the control socket). Each becomes a delivery again, as it was received,
 * and goes to the dispatcher.
 */
#ifndef HOOKD_RECOVERY_H
#define HOOKD_RECOVERY_H

#include <stdint.h>

#include "result.h"

struct dispatcher;

/* Recovers the journal's pending async deliveries (at start); 0, or -1
 * when the journal cannot be read. */
int dispatch_recover(struct dispatcher *ds);
/* Replays a journaled delivery by rowid: RESULT_OK (queued), RESULT_UNKNOWN,
 * RESULT_PENDING (already queued, running or waiting for a retry) or
 * RESULT_BODY_CUT. */
enum result dispatch_replay(struct dispatcher *ds, int64_t rowid);

#endif
