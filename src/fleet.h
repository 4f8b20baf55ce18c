/*
 * A shared journal's upkeep (README "Running on several machines"): once a
 * second, this instance renews the leases on what it holds (every
 * lease/3), takes over the pending deliveries of instances whose lease ran
 * out (dispatch_adopt), and, while the journal is down, tries to reach it
 * again (the journal's own backoff decides how often).
 */
#ifndef HOOKD_FLEET_H
#define HOOKD_FLEET_H

#include <stdint.h>

struct event_base;
struct dispatcher;
struct journal;
struct fleet;

struct fleet *fleet_new(struct event_base *base, struct dispatcher *ds, struct journal *journal,
                        int64_t lease_ms);
void fleet_free(struct fleet *f); /* NULL is fine */

/* How long after its own reconnect an instance counts no other instance's
 * lease as run out (nobody's deliveries taken over): the lease, or the
 * longest another instance can lag behind with its own reconnect
 * (journal_reconnect_lag_ms; -1: no bound) and renewal, if longer. */
int64_t fleet_quiet_ms(int64_t lease_ms, int64_t reconnect_lag_ms);

#endif
