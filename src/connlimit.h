/*
 * The bounds the HTTP server (http.c) keeps across its connections
 * (README "Hardening and limits"): how many connections each client
 * address holds (max_connections_per_client), and how many request body
 * bytes all connections together may be reading at once (max_buffered).
 * Pure bookkeeping, no sockets: http.c decides what to do at a bound.
 */
#ifndef HOOKD_CONNLIMIT_H
#define HOOKD_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- connections per address ---- */

struct addr_counts;
struct addr_count; /* one address's entry: a handle for addr_counts_drop */

struct addr_counts *addr_counts_new(void);
void addr_counts_free(struct addr_counts *t);
/* One more connection from addr (a textual address, compared as given):
 * its entry, whose count includes this connection. */
struct addr_count *addr_counts_add(struct addr_counts *t, const char *addr);
/* One connection fewer; the entry is gone when its count reaches 0. */
void addr_counts_drop(struct addr_counts *t, struct addr_count *e);
int addr_count_value(const struct addr_count *e);
/* Distinct addresses counted. */
size_t addr_counts_size(const struct addr_counts *t);

/* ---- body bytes being read ---- */

struct body_budget {
	uint64_t limit; /* 0: no bound */
	uint64_t used;  /* reserved by bodies being read */
};

/*
 * Whether a body of `need` bytes may be read now: it fits what is left,
 * or nothing is reserved at all (a body larger than the whole budget then
 * still gets its turn, alone, rather than waiting for ever).
 */
bool body_budget_fits(const struct body_budget *b, uint64_t need);
void body_budget_take(struct body_budget *b, uint64_t need);
void body_budget_give(struct body_budget *b, uint64_t n);

#endif
