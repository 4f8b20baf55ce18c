/*
 * The in-memory idempotency store: what the dispatcher remembers of
 * delivery ids when there is no journal, (endpoint, id) -> the delivery's
 * state and attempts. Pending ids are kept while pending; of finished ones
 * at most `max_final` are kept, the oldest finished forgotten first. For
 * the event loop's thread alone.
 */
#ifndef HOOKD_IDSTORE_H
#define HOOKD_IDSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "journal.h"

struct idstore;

struct idstore *idstore_new(size_t max_final);
void idstore_free(struct idstore *s);

/* Whether (endpoint, id) is known; if so, its state and attempts. */
bool idstore_find(const struct idstore *s, const char *endpoint, const char *id,
                  enum delivery_state *state, int *attempts);
/* Remembers (or updates) it; a final state puts it last in line to be
 * forgotten, a pending one takes it out of that line. */
void idstore_set(struct idstore *s, const char *endpoint, const char *id,
                 enum delivery_state state, int attempts);
/* Forgets it, if known. */
void idstore_remove(struct idstore *s, const char *endpoint, const char *id);
/* Ids remembered, pending and finished. */
size_t idstore_count(const struct idstore *s);

#endif
