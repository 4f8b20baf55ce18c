/*
 * Per-address connection counts and the shared body budget (connlimit.h).
 * The counts are a chained hash table keyed by the address text, grown
 * as addresses come: accept looks an address up once per connection, and
 * max_connections can be large.
 */
#include "connlimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ADDR_MAX 64 /* an IPv6 address's text with room to spare */

struct addr_count {
	struct addr_count *next;
	int count;
	uint32_t hash;
	char addr[ADDR_MAX];
};

struct addr_counts {
	struct addr_count **buckets;
	size_t nbuckets; /* a power of two */
	size_t n;
};

struct addr_counts *addr_counts_new(void)
{
	struct addr_counts *t = xcalloc(1, sizeof(*t));
	t->nbuckets = 64;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	return t;
}

void addr_counts_free(struct addr_counts *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct addr_count *e = t->buckets[i];
		while (e) {
			struct addr_count *next = e->next;
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	free(t);
}

static void grow(struct addr_counts *t)
{
	size_t nb = t->nbuckets * 2;
	struct addr_count **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct addr_count *e = t->buckets[i];
		while (e) {
			struct addr_count *next = e->next;
			size_t k = e->hash & (nb - 1);
			e->next = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = nb;
}

struct addr_count *addr_counts_add(struct addr_counts *t, const char *addr)
{
	uint32_t h = str_hash(addr);
	for (struct addr_count *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->next) {
		if (e->hash == h && strncmp(e->addr, addr, ADDR_MAX - 1) == 0) {
			e->count++;
			return e;
		}
	}
	if (t->n >= t->nbuckets)
		grow(t);
	struct addr_count *e = xcalloc(1, sizeof(*e));
	e->hash = h;
	e->count = 1;
	str_copy(e->addr, sizeof(e->addr), addr);
	size_t k = h & (t->nbuckets - 1);
	e->next = t->buckets[k];
	t->buckets[k] = e;
	t->n++;
	return e;
}

void addr_counts_drop(struct addr_counts *t, struct addr_count *e)
{
	if (--e->count > 0)
		return;
	struct addr_count **p = &t->buckets[e->hash & (t->nbuckets - 1)];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	t->n--;
	free(e);
}

int addr_count_value(const struct addr_count *e)
{
	return e->count;
}

size_t addr_counts_size(const struct addr_counts *t)
{
	return t->n;
}

bool body_budget_fits(const struct body_budget *b, uint64_t need)
{
	if (b->limit == 0 || b->used == 0)
		return true;
	return need <= b->limit && b->used <= b->limit - need;
}

void body_budget_take(struct body_budget *b, uint64_t need)
{
	b->used += need;
}

void body_budget_give(struct body_budget *b, uint64_t n)
{
	b->used = n < b->used ? b->used - n : 0;
}
