/*
 * The replay window (replaywin.h): remembered bodies in a hash table by
 * their digest, and in arrival order for expiry and eviction. A body's
 * digest covers the endpoint's name too, so that each endpoint has a
 * window of its own; an id is kept as half of its digest, so that an entry
 * costs the same whatever the id's length.
 */
#include "replaywin.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>


#include "util.h"

#define BUCKETS 16384
#define DIGEST_LEN 32
#define ID_DIGEST_LEN 16

struct entry {
	struct entry *next;        /* hash chain */
	TAILQ_ENTRY(entry) order;  /* arrival order */
	unsigned char body[DIGEST_LEN];
	unsigned char id[ID_DIGEST_LEN];
	bool id_generated;
	int64_t expires_ms;
};

struct replaywin {
	size_t max, n;
	struct entry **buckets; /* made at the first check with a window */
	TAILQ_HEAD(, entry) order;
	EVP_MD_CTX *md;
	/* The last check that found no duplicate, for replaywin_commit. */
	struct {
		bool set;
		unsigned char body[DIGEST_LEN];
		unsigned char id[DIGEST_LEN];
		bool id_generated;
		int64_t now_ms, window_ms;
	} pending;
};

struct replaywin *replaywin_new(size_t max)
{
	struct replaywin *w = xcalloc(1, sizeof(*w));
	w->max = max ? max : 1;
	TAILQ_INIT(&w->order);
	return w;
}

void replaywin_free(struct replaywin *w)
{
	if (!w)
		return;
	struct entry *e;
	while ((e = TAILQ_FIRST(&w->order))) {
		TAILQ_REMOVE(&w->order, e, order);
		free(e);
	}
	free(w->buckets);
	if (w->md)
		EVP_MD_CTX_free(w->md);
	free(w);
}

size_t replaywin_count(const struct replaywin *w)
{
	return w->n;
}

/* SHA-256 of "endpoint\0data": false on a crypto failure. */
static bool digest(struct replaywin *w, const char *endpoint, const void *data, size_t len,
                   unsigned char out[DIGEST_LEN])
{
	unsigned int n = 0;
	if (!w->md && (!crypto_ready() || !(w->md = EVP_MD_CTX_new())))
		return false;
	return EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) == 1 &&
	       EVP_DigestUpdate(w->md, endpoint, strlen(endpoint) + 1) == 1 &&
	       EVP_DigestUpdate(w->md, data, len) == 1 &&
	       EVP_DigestFinal_ex(w->md, out, &n) == 1 && n == DIGEST_LEN;
}

static struct entry **bucket_of(struct replaywin *w, const unsigned char *body)
{
	uint32_t h = (uint32_t)body[0] | (uint32_t)body[1] << 8 | (uint32_t)body[2] << 16 |
	             (uint32_t)body[3] << 24;
	return &w->buckets[h % BUCKETS];
}

static struct entry *find(struct replaywin *w, const unsigned char *body)
{
	struct entry *e = *bucket_of(w, body);
	while (e && memcmp(e->body, body, DIGEST_LEN) != 0)
		e = e->next;
	return e;
}

static void forget(struct replaywin *w, struct entry *e)
{
	struct entry **pp = bucket_of(w, e->body);
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	TAILQ_REMOVE(&w->order, e, order);
	w->n--;
	free(e);
}

/* Forgets the oldest while they have expired (windows differ between
 * endpoints, so one may stay behind a longer-lived one: find() checks). */
static void expire(struct replaywin *w, int64_t now_ms)
{
	struct entry *e;
	while ((e = TAILQ_FIRST(&w->order)) && e->expires_ms <= now_ms)
		forget(w, e);
}

bool replaywin_check(struct replaywin *w, const char *endpoint, const char *id,
                     bool id_generated, const unsigned char *body, size_t len, int64_t window_ms,
                     int64_t now_ms)
{
	w->pending.set = false;
	if (window_ms <= 0)
		return false;
	if (!w->buckets)
		w->buckets = xcalloc(BUCKETS, sizeof(*w->buckets));
	expire(w, now_ms);
	unsigned char bd[DIGEST_LEN], idd[DIGEST_LEN];
	/* A digest that cannot be made refuses nothing: the window is a
	 * second line behind the signature, not the check itself. */
	if (!digest(w, endpoint, body, len, bd) || !digest(w, endpoint, id, strlen(id), idd))
		return false;
	const struct entry *e = find(w, bd);
	if (e && e->expires_ms > now_ms) {
		bool same_id = !e->id_generated && !id_generated &&
		               memcmp(e->id, idd, ID_DIGEST_LEN) == 0;
		if (!same_id)
			return true;
	}
	w->pending.set = true;
	memcpy(w->pending.body, bd, DIGEST_LEN);
	memcpy(w->pending.id, idd, DIGEST_LEN);
	w->pending.id_generated = id_generated;
	w->pending.now_ms = now_ms;
	w->pending.window_ms = window_ms;
	return false;
}

void replaywin_commit(struct replaywin *w, const char *endpoint, const char *id)
{
	if (!w->pending.set)
		return;
	w->pending.set = false;
	unsigned char idd[DIGEST_LEN];
	if (!digest(w, endpoint, id, strlen(id), idd) ||
	    memcmp(idd, w->pending.id, DIGEST_LEN) != 0)
		return;
	int64_t now = w->pending.now_ms;
	struct entry *e = find(w, w->pending.body);
	if (e && e->expires_ms > now)
		return; /* the same body under the same id again: its first arrival counts */
	if (e) {
		TAILQ_REMOVE(&w->order, e, order);
	} else {
		if (w->n >= w->max)
			forget(w, TAILQ_FIRST(&w->order));
		e = xcalloc(1, sizeof(*e));
		memcpy(e->body, w->pending.body, DIGEST_LEN);
		struct entry **b = bucket_of(w, e->body);
		e->next = *b;
		*b = e;
		w->n++;
	}
	memcpy(e->id, idd, ID_DIGEST_LEN);
	e->id_generated = w->pending.id_generated;
	e->expires_ms = now + w->pending.window_ms;
	TAILQ_INSERT_TAIL(&w->order, e, order);
}

void replaywin_forget(struct replaywin *w, const char *endpoint, const unsigned char *body,
                      size_t len)
{
	unsigned char bd[DIGEST_LEN];
	if (!w->buckets || !digest(w, endpoint, body, len, bd))
		return;
	struct entry *e = find(w, bd);
	if (e)
		forget(w, e);
}
