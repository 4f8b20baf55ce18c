/*
 * The serialization keys' lines (README "serialize"): for each key in use,
 * whether a delivery holds it and the deliveries waiting for it, in arrival
 * order. The lines hold the dispatcher's jobs (linked through their own
 * TAILQ entry); which job takes a key when is the dispatcher's to decide.
 * For the event loop's thread alone.
 */
#ifndef HOOKD_KEYQUEUE_H
#define HOOKD_KEYQUEUE_H

#include <stdbool.h>
#include <sys/queue.h>

struct job; /* the dispatcher's (dispatch_private.h) */

/* A serialization key and the deliveries waiting for it. */
struct keyq {
	struct keyq *next; /* hash chain */
	char *key;
	bool busy;
	TAILQ_HEAD(, job) waiting;
};

struct keyqueue;

struct keyqueue *keyqueue_new(void);
/* Frees the lines, not the jobs in them. */
void keyqueue_free(struct keyqueue *q);

/* key's line; NULL when it has none and !create. */
struct keyq *keyqueue_get(struct keyqueue *q, const char *key, bool create);
/* Forgets k's line (no one holds or waits for it). */
void keyqueue_drop(struct keyqueue *q, struct keyq *k);
/* Every line in turn: the first after `after` (NULL: the first). Lines
 * other than the one returned may be dropped meanwhile, not it. */
struct keyq *keyqueue_next(struct keyqueue *q, struct keyq *after);

#endif
