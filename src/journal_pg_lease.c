/*
 * The PostgreSQL journal's leases (journal_pg.c is the backend; its header
 * comment says how they work): the rows this process holds, with their
 * fences, this instance's lease row (taken at open, renewed by the
 * heartbeat, ended at a clean stop), the rows let go after an outage, and
 * the lease rows of instances gone for good.
 */
#include "journal_pg_private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* prune_instances: a lease row is forgotten this long after it ended, if
 * its instance holds nothing (README "Running on several machines"). */
#define INSTANCE_GONE "1 day"
#define PRUNE_INSTANCES_EVERY_MS 60000

/* ---- this process's leases: rowid -> fence ---- */

static size_t fence_home(const struct fence_map *m, int64_t rowid)
{
	uint64_t h = (uint64_t)rowid * 0x9E3779B97F4A7C15ULL;
	return (size_t)(h >> 32) & (m->cap - 1);
}

struct fence_slot *fence_find(struct fence_map *m, int64_t rowid)
{
	if (m->cap == 0 || rowid <= 0)
		return NULL;
	for (size_t i = fence_home(m, rowid);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].rowid == rowid)
			return &m->slots[i];
		if (m->slots[i].rowid == 0)
			return NULL;
	}
}

static void fence_grow(struct fence_map *m)
{
	struct fence_map old = *m;
	m->cap = old.cap ? old.cap * 2 : 64;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	m->n = 0;
	for (size_t i = 0; i < old.cap; i++) {
		if (old.slots[i].rowid)
			fence_put(m, old.slots[i].rowid, old.slots[i].fence, old.slots[i].run_attempt);
	}
	free(old.slots);
}

void fence_put(struct fence_map *m, int64_t rowid, int64_t fence, int run_attempt)
{
	if (rowid <= 0)
		return;
	struct fence_slot *s = fence_find(m, rowid);
	if (!s) {
		if ((m->n + 1) * 4 > m->cap * 3)
			fence_grow(m);
		size_t i = fence_home(m, rowid);
		while (m->slots[i].rowid)
			i = (i + 1) & (m->cap - 1);
		s = &m->slots[i];
		s->rowid = rowid;
		m->n++;
	}
	s->fence = fence;
	s->run_attempt = run_attempt;
}

/* Removal with backward shift: no tombstones, probes stay short. */
void fence_del(struct fence_map *m, int64_t rowid)
{
	struct fence_slot *s = fence_find(m, rowid);
	if (!s)
		return;
	size_t hole = (size_t)(s - m->slots), mask = m->cap - 1;
	m->slots[hole].rowid = 0;
	m->n--;
	for (size_t i = (hole + 1) & mask; m->slots[i].rowid; i = (i + 1) & mask) {
		size_t home = fence_home(m, m->slots[i].rowid);
		/* Moves back unless its home lies cyclically in (hole, i]. */
		bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
		if (stays)
			continue;
		m->slots[hole] = m->slots[i];
		m->slots[i].rowid = 0;
		hole = i;
	}
}

/* ---- this instance's lease ---- */

static void lease_param(struct params *p, const struct pg_journal *j)
{
	p_int(p, j->lease_ms);
}

/* This instance's lease, from now: one row, whatever it holds. */
int renew_lease(struct pg_journal *j)
{
	struct params p = {0};
	p_text(&p, j->instance);
	lease_param(&p, j);
	int rc = run_prepared_cmd(j, "renew lease", STMT_RENEW_LEASE, &p);
	p_free(&p);
	return rc;
}

/*
 * After an outage: the rows this instance owns but does not hold (a write
 * that took one, record, requeue or adopt, was committed but its answer
 * lost with the connection; or one pg_let_go gave up) are let go, so that
 * adoption takes them up. The lease no longer names rows, so nothing else
 * would. One statement, the held ids in an array (an anti-join: the array
 * is hashed once).
 */
static int release_unheld(struct pg_journal *j)
{
	struct strbuf held;
	sb_init(&held);
	sb_held_ids(&held, j);
	struct params p = {0};
	p_text(&p, j->instance);
	p_text(&p, held.buf);
	PGresult *r = run(j, "release",
	                  "UPDATE hookd_deliveries d SET owner = NULL"
	                  " WHERE owner = $1::text AND state < 3 AND NOT EXISTS"
	                  " (SELECT 1 FROM unnest($2::bigint[]) h(id) WHERE h.id = d.id)",
	                  &p);
	p_free(&p);
	sb_free(&held);
	if (!r)
		return -1;
	int64_t n = cmd_tuples(r);
	PQclear(r);
	if (n > 0)
		log_msg(LOG_LVL_INFO,
		        "journal: %lld deliveries owned here but not held (a take not confirmed"
		        " before an outage, or not read back) let go, for any instance to take up",
		        (long long)n);
	return 0;
}

/* The row is no longer held here; release_unheld lets it go at the next
 * heartbeat (the store may be down now: a read back that failed). */
void pg_let_go(struct journal *jj, int64_t rowid)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly)
		return;
	fence_del(&j->fences, rowid);
	j->release_due = true;
}

/*
 * The lease rows of instances gone for good (a machine replaced): those
 * whose lease ended over INSTANCE_GONE ago and that hold nothing, deleted
 * at most every PRUNE_INSTANCES_EVERY_MS by each instance. hookd_instances
 * has a row a name, and each candidate is one probe of the owner index.
 * A row deleted too soon would do no harm: no lease row at all reads as a
 * lease run out, and the next heartbeat of its instance writes it again.
 */
static void prune_instances(struct pg_journal *j)
{
	int64_t now = now_mono_ms();
	if (j->instances_pruned_ms && now - j->instances_pruned_ms < PRUNE_INSTANCES_EVERY_MS)
		return;
	j->instances_pruned_ms = now;
	PGresult *r = run(j, "prune instances",
	                  "DELETE FROM hookd_instances i WHERE lease_until < now() - interval '"
	                  INSTANCE_GONE "' AND NOT EXISTS (SELECT 1 FROM hookd_deliveries d"
	                  " WHERE d.owner = i.name AND d.state < 3)",
	                  NULL);
	if (!r)
		return;
	int64_t n = cmd_tuples(r);
	PQclear(r);
	if (n > 0)
		log_msg(LOG_LVL_INFO,
		        "journal: the leases of %lld instances gone for over " INSTANCE_GONE
		        " forgotten",
		        (long long)n);
}

int pg_heartbeat(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	if (!ensure_up(j))
		return -1;
	if (j->readonly || j->noschema)
		return 0;
	if (!writable(j) || renew_lease(j) < 0)
		return -1;
	if (j->release_due && release_unheld(j) == 0)
		j->release_due = false;
	prune_instances(j);
	return 0;
}

/*
 * A clean stop, after this instance's last write: what it holds is let go
 * (owner NULL: a write of this process after this would be JOURNAL_LOST)
 * and its lease ends now, in one transaction, so that the other instances
 * adopt its deliveries (retry_wait ones too) at their next tick instead of
 * a lease later. Down, nothing is tried: the lease runs out by itself.
 */
int pg_release(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	if (j->readonly || j->noschema || !j->conn)
		return -1;
	if (tx_begin(j) < 0)
		return -1;
	struct params p = {0};
	p_text(&p, j->instance);
	PGresult *r = run(j, "release",
	                  "UPDATE hookd_deliveries SET owner = NULL WHERE owner = $1::text"
	                  " AND state < 3",
	                  &p);
	if (!r)
		goto fail;
	int64_t n = cmd_tuples(r);
	PQclear(r);
	if (run_cmd(j, "release",
	            "UPDATE hookd_instances SET lease_until = least(lease_until, now())"
	            " WHERE name = $1::text",
	            &p) < 0 ||
	    tx_commit(j) < 0)
		goto fail;
	p_free(&p);
	free(j->fences.slots);
	memset(&j->fences, 0, sizeof(j->fences));
	log_msg(LOG_LVL_INFO,
	        "journal: this instance's lease ended; %lld pending deliveries left for the"
	        " other instances",
	        (long long)n);
	return 0;
fail:
	p_free(&p);
	tx_rollback(j);
	return -1;
}
