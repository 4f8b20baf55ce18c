/*
 * The in-memory idempotency store (idstore.h): a chained hash table of
 * (endpoint, id) keys, each one allocation, and a FIFO of the finished ones
 * in the order they finished, for eviction.
 */
#include "idstore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util.h"

#define IDSTORE_BUCKETS 4096

struct memid {
	struct memid *next;      /* hash chain */
	TAILQ_ENTRY(memid) fifo; /* eviction order of finished ones */
	enum delivery_state state;
	int attempts;
	bool in_fifo;
	char key[]; /* endpoint \x1f id: one allocation a remembered id */
};

struct idstore {
	struct memid *buckets[IDSTORE_BUCKETS];
	TAILQ_HEAD(, memid) fifo;
	size_t nfinal, max_final, count;
};

/* endpoint \x1f id in one allocation, without a printf each. */
static char *id_key(const char *ep, const char *id)
{
	size_t ne = strlen(ep), ni = strlen(id);
	char *s = xmalloc(ne + 1 + ni + 1);
	memcpy(s, ep, ne);
	s[ne] = '\x1f';
	memcpy(s + ne + 1, id, ni + 1);
	return s;
}

struct idstore *idstore_new(size_t max_final)
{
	struct idstore *s = xcalloc(1, sizeof(*s));
	TAILQ_INIT(&s->fifo);
	s->max_final = max_final;
	return s;
}

void idstore_free(struct idstore *s)
{
	if (!s)
		return;
	for (size_t b = 0; b < IDSTORE_BUCKETS; b++) {
		while (s->buckets[b]) {
			struct memid *m = s->buckets[b];
			s->buckets[b] = m->next;
			free(m);
		}
	}
	free(s);
}

static struct memid *memid_find(const struct idstore *s, const char *key)
{
	struct memid *m = s->buckets[str_hash(key) % IDSTORE_BUCKETS];
	while (m && strcmp(m->key, key) != 0)
		m = m->next;
	return m;
}

static void memid_remove(struct idstore *s, struct memid *m)
{
	struct memid **pp = &s->buckets[str_hash(m->key) % IDSTORE_BUCKETS];
	while (*pp != m)
		pp = &(*pp)->next;
	*pp = m->next;
	if (m->in_fifo) {
		TAILQ_REMOVE(&s->fifo, m, fifo);
		s->nfinal--;
	}
	s->count--;
	free(m);
}

bool idstore_find(const struct idstore *s, const char *endpoint, const char *id,
                  enum delivery_state *state, int *attempts)
{
	char *key = id_key(endpoint, id);
	struct memid *m = memid_find(s, key);
	free(key);
	if (!m)
		return false;
	*state = m->state;
	*attempts = m->attempts;
	return true;
}

void idstore_set(struct idstore *s, const char *endpoint, const char *id,
                 enum delivery_state state, int attempts)
{
	char *key = id_key(endpoint, id);
	struct memid *m = memid_find(s, key);
	if (!m) {
		size_t n = strlen(key) + 1;
		m = xcalloc(1, sizeof(*m) + n);
		memcpy(m->key, key, n);
		uint32_t b = str_hash(key) % IDSTORE_BUCKETS;
		m->next = s->buckets[b];
		s->buckets[b] = m;
		s->count++;
	}
	free(key);
	m->state = state;
	m->attempts = attempts;
	if (m->in_fifo) {
		TAILQ_REMOVE(&s->fifo, m, fifo);
		m->in_fifo = false;
		s->nfinal--;
	}
	if (!delivery_state_pending(state)) {
		TAILQ_INSERT_TAIL(&s->fifo, m, fifo);
		m->in_fifo = true;
		s->nfinal++;
		while (s->nfinal > s->max_final)
			memid_remove(s, TAILQ_FIRST(&s->fifo));
	}
}

void idstore_remove(struct idstore *s, const char *endpoint, const char *id)
{
	char *key = id_key(endpoint, id);
	struct memid *m = memid_find(s, key);
	free(key);
	if (m)
		memid_remove(s, m);
}

size_t idstore_count(const struct idstore *s)
{
	return s->count;
}
