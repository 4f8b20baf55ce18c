/*
 * The serialization keys' lines (keyqueue.h): a chained hash table of keys,
 * an entry while a key is held or waited for.
 */
#include "keyqueue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KEYQUEUE_BUCKETS 256

struct keyqueue {
	struct keyq *buckets[KEYQUEUE_BUCKETS];
};

struct keyqueue *keyqueue_new(void)
{
	return xcalloc(1, sizeof(struct keyqueue));
}

void keyqueue_free(struct keyqueue *q)
{
	if (!q)
		return;
	for (size_t b = 0; b < KEYQUEUE_BUCKETS; b++) {
		while (q->buckets[b]) {
			struct keyq *k = q->buckets[b];
			q->buckets[b] = k->next;
			free(k->key);
			free(k);
		}
	}
	free(q);
}

struct keyq *keyqueue_get(struct keyqueue *q, const char *key, bool create)
{
	uint32_t b = str_hash(key) % KEYQUEUE_BUCKETS;
	struct keyq *k = q->buckets[b];
	while (k && strcmp(k->key, key) != 0)
		k = k->next;
	if (!k && create) {
		k = xcalloc(1, sizeof(*k));
		k->key = xstrdup(key);
		TAILQ_INIT(&k->waiting);
		k->next = q->buckets[b];
		q->buckets[b] = k;
	}
	return k;
}

void keyqueue_drop(struct keyqueue *q, struct keyq *k)
{
	struct keyq **pp = &q->buckets[str_hash(k->key) % KEYQUEUE_BUCKETS];
	while (*pp != k)
		pp = &(*pp)->next;
	*pp = k->next;
	free(k->key);
	free(k);
}

struct keyq *keyqueue_next(struct keyqueue *q, struct keyq *after)
{
	if (after && after->next)
		return after->next;
	size_t b = after ? str_hash(after->key) % KEYQUEUE_BUCKETS + 1 : 0;
	for (; b < KEYQUEUE_BUCKETS; b++)
		if (q->buckets[b])
			return q->buckets[b];
	return NULL;
}
