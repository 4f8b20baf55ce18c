/*
 * The PostgreSQL journal's take-overs (journal_pg.c is the backend):
 * recovery at start, adoption of the rows held by nobody or by instances
 * whose lease ran out, and stealing what live ones left queued, each one
 * transaction (take_rows); and a pending delivery read back whole
 * (journal_get).
 */
#include "journal_pg_private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The columns read_pending() expects, in its order. */
#define PENDING_COLS \
	"id, endpoint, delivery_id, event, remote_addr, state, attempts, next_due_ms," \
	" received_ms, body, body_len, body_cut, headers, replay_attempt"

/* Fills p from a row of PENDING_COLS; a NULL body: the list, without body
 * and headers. */
static void read_pending(const PGresult *r, int row, struct journal_pending *p)
{
	memset(p, 0, sizeof(*p));
	p->rowid = col_i64(r, row, 0);
	p->endpoint = xstrdup(col_text(r, row, 1));
	p->delivery_id = xstrdup(col_text(r, row, 2));
	p->event = xstrdup(col_text(r, row, 3));
	p->remote_addr = xstrdup(col_text(r, row, 4));
	p->state = (enum delivery_state)col_int(r, row, 5);
	p->attempts = col_int(r, row, 6);
	p->next_due_ms = col_i64(r, row, 7);
	p->received_ms = col_i64(r, row, 8);
	p->body_complete = !col_bool(r, row, 11);
	p->replay_attempt = col_int(r, row, 13);
	if (PQgetisnull(r, row, 9)) {
		p->body_len = (size_t)col_i64(r, row, 10);
		p->headers = xcalloc(1, sizeof(char *));
		return;
	}
	size_t blen;
	unsigned char *b = col_bytes(r, row, 9, &blen);
	p->body = xmalloc(blen + 1);
	if (b && blen)
		memcpy(p->body, b, blen);
	if (b)
		PQfreemem(b);
	p->body[blen] = '\0'; /* a convenience for text bodies; body_len counts */
	p->body_len = blen;

	const char *h = col_text(r, row, 12);
	size_t n = 0;
	for (const char *c = h; *c; c++)
		n += *c == '\n';
	p->headers = xcalloc(n + 1, sizeof(char *));
	for (const char *c = h; *c;) {
		const char *nl = strchr(c, '\n');
		size_t len = nl ? (size_t)(nl - c) : strlen(c);
		if (p->nheaders < n + 1)
			p->headers[p->nheaders++] = xstrndup(c, len);
		c += len + (nl ? 1 : 0);
	}
}

/* What a take (recover, adopt) changes in one row. */
struct take_row {
	int64_t id;
	bool async;
	int state, attempts, run_attempt;
	int64_t run_started_ms;
	char *owner;
	char *endpoint, *event, *delivery_id; /* for its line */
	const char *why; /* its error now; NULL: not interrupted */
	int attempt;     /* the one it ran, 0: none */
	bool failed;     /* a sync one marked FAILED here, for journal_interrupted */
};

static void take_rows_free(struct take_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].owner);
		free(rows[i].endpoint);
		free(rows[i].event);
		free(rows[i].delivery_id);
	}
	free(rows);
}

void sb_id_array(struct strbuf *sb, int64_t id)
{
	sb_printf(sb, "%s%lld", sb->len > 1 ? "," : "", (long long)id);
}

void sb_held_ids(struct strbuf *sb, const struct pg_journal *j)
{
	sb_putc(sb, '{');
	for (size_t i = 0; i < j->fences.cap; i++) {
		if (j->fences.slots[i].rowid)
			sb_id_array(sb, j->fences.slots[i].rowid);
	}
	sb_putc(sb, '}');
}

/*
 * Adopting or stealing, a row this instance still has a fence for is left
 * alone: its own, whose lease ran out while the journal was down, is
 * renewed by the next heartbeat and still runs here (taken only once
 * released, see release_unheld); one taken from it (stolen, then maybe
 * adopted from the dead thief) still has its old job here, waiting for a
 * slot or its local key: taken back, the row's new fence would be that
 * job's too, and both would run it. That job finds it lost first (and
 * forgets the fence); a later tick takes the row. Skipped as they come
 * (fence_find), the query asking for up to HELD_SKIP_MAX rows more than it
 * may take, so that a few skipped ones do not leave free slots idle for a
 * tick. Not left out in the query itself: every row this instance holds
 * (its whole backlog) would go to the server at every tick.
 */
#define HELD_SKIP_MAX 64

/*
 * The owners of pending rows whose lease ran out, or who have no lease at
 * all, as a text[] literal. The distinct owners are walked on the owner
 * index (one probe an owner, however many rows each holds), and each is
 * looked up in hookd_instances: no scan of the pending rows. It is a
 * statement of its own, its answer a parameter of the take: as a sub-select
 * the planner cannot know the array is short (mostly empty), and filters
 * every pending row instead of probing the index.
 */
static const char sql_dead_owners[] =
	"WITH RECURSIVE o(name) AS ("
	" SELECT min(owner) FROM hookd_deliveries WHERE state < 3"
	" UNION ALL SELECT (SELECT min(owner) FROM hookd_deliveries"
	"  WHERE state < 3 AND owner > o.name) FROM o WHERE o.name IS NOT NULL)"
	" SELECT coalesce(array_agg(name), '{}') FROM o WHERE name IS NOT NULL"
	" AND now() - pg_postmaster_start_time() > $1::bigint * interval '1 millisecond'"
	" AND NOT EXISTS"
	" (SELECT 1 FROM hookd_instances i WHERE i.name = o.name AND i.lease_until >= now())";

/*
 * A lease that ran out while PostgreSQL was down (stopped, restarted) says
 * nothing of its instance: none could renew. Each live one renews once its
 * reconnect is through, at the latest its longest backoff after the
 * database is back, and one heartbeat tick later. Until then nobody's rows
 * are taken as a dead instance's: an instance that only sees the database
 * after the outage (just started, or reconnected sooner) would otherwise
 * take over runs still going on.
 */
#define DB_UP_GRACE_MS (BACKOFF_MAX_MS + 2000)

#define TAKE_COLS                                                                              \
	"SELECT id, async, state, attempts, run_attempt, run_started_ms, owner, endpoint, event,"  \
	" delivery_id"

/*
 * Recovery and adoption: takes the pending rows the condition selects
 * (locked, SKIP LOCKED: two instances never take the same row), counts a
 * run under way as an interrupted attempt, fails sync ones (nobody waits
 * for them now), and lists the async ones in arrival order without body
 * and headers. Every row taken gets this instance as owner and a new
 * fence; a row left final is held by nobody. Adoption takes rows held by
 * nobody and those of owners whose lease ran out (sql_dead_owners).
 */
/* What take_rows takes: at start, this instance's own rows and the dead
 * instances'; adopting, the dead instances'; stealing, async deliveries
 * still queued on live ones since before steal_before_ms. */
enum take_mode { TAKE_RECOVER, TAKE_ADOPT, TAKE_STEAL };

static int take_rows(struct pg_journal *j, enum take_mode mode, size_t max,
                     int64_t steal_before_ms, struct journal_pending **out, size_t *n)
{
	bool adopt = mode != TAKE_RECOVER;
	*out = NULL;
	*n = 0;
	if (!writable(j))
		return -1;
	struct take_row *rows = NULL;
	size_t nrows = 0;
	struct journal_pending *list = NULL;
	size_t nlist = 0;
	struct strbuf ids;
	sb_init(&ids);
	sb_putc(&ids, '{');
	size_t limit = max + (j->fences.n < HELD_SKIP_MAX ? j->fences.n : HELD_SKIP_MAX);
	if (tx_begin(j) < 0)
		goto fail;
	PGresult *r;
	struct params p = {0};
	if (mode == TAKE_STEAL) {
		/* Queued, not yet started by its instance, for a while: its
		 * instance's slots are all busy. Its instance finds it gone when
		 * it comes to start it (the fence moved: JOURNAL_LOST). */
		p_text(&p, j->instance);
		p_int(&p, steal_before_ms);
		p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
		r = run(j, "steal",
		        TAKE_COLS " FROM hookd_deliveries d WHERE state = 0 AND async AND owner IS NOT NULL"
		        " AND owner <> $1::text AND updated_ms < $2::bigint AND next_due_ms <= $2::bigint"
		        /* One that waits for its key, not for a slot, runs no sooner
		         * here (README: only a wait for a slot is taken). */
		        " AND (serial_key IS NULL OR NOT EXISTS (SELECT 1 FROM hookd_deliveries o"
		        "  WHERE o.serial_key = d.serial_key AND o.state < 3 AND o.id <> d.id"
		        "  AND (o.state = 1 OR (o.state = 0 AND o.queued_seq < d.queued_seq))))"
		        " ORDER BY queued_seq LIMIT $3::bigint FOR UPDATE SKIP LOCKED",
		        &p);
		p_free(&p);
	} else {
		p_int(&p, DB_UP_GRACE_MS);
		r = run(j, adopt ? "adopt" : "recover", sql_dead_owners, &p);
		p_free(&p);
		if (!r)
			goto fail;
		char *dead = xstrdup(col_text(r, 0, 0));
		PQclear(r);
		p_text(&p, dead);
		if (adopt) {
			p_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
		} else {
			p_text(&p, j->instance);
		}
		/* Recovery: this instance's own rows (of a previous run) too. */
		r = run(j, adopt ? "adopt" : "recover",
		        adopt ? TAKE_COLS " FROM hookd_deliveries d WHERE state < 3"
		                        " AND (owner IS NULL OR owner = ANY ($1::text[]))"
		                        " ORDER BY received_ms, id"
		                        " LIMIT $2::bigint FOR UPDATE SKIP LOCKED"
		              : TAKE_COLS " FROM hookd_deliveries WHERE state < 3 AND (owner IS NULL"
		                        " OR owner = ANY ($1::text[]) OR owner = $2::text)"
		                        " FOR UPDATE SKIP LOCKED",
		        &p);
		p_free(&p);
		free(dead);
	}
	if (!r)
		goto fail;
	nrows = (size_t)PQntuples(r);
	rows = xcalloc(nrows ? nrows : 1, sizeof(*rows));
	for (size_t i = 0; i < nrows; i++) {
		struct take_row *t = &rows[i];
		t->id = col_i64(r, (int)i, 0);
		t->async = col_bool(r, (int)i, 1);
		t->state = col_int(r, (int)i, 2);
		t->attempts = col_int(r, (int)i, 3);
		t->run_attempt = col_int(r, (int)i, 4);
		t->run_started_ms = col_i64(r, (int)i, 5);
		t->owner = PQgetisnull(r, (int)i, 6) ? NULL : xstrdup(col_text(r, (int)i, 6));
		t->endpoint = xstrdup(col_text(r, (int)i, 7));
		t->event = xstrdup(col_text(r, (int)i, 8));
		t->delivery_id = xstrdup(col_text(r, (int)i, 9));
	}
	PQclear(r);

	int64_t now = now_wall_ms();
	size_t taken = 0;
	for (size_t i = 0; i < nrows; i++) {
		struct take_row *t = &rows[i];
		if (adopt && (taken == max || fence_find(&j->fences, t->id)))
			continue; /* HELD_SKIP_MAX */
		taken++;
		sb_id_array(&ids, t->id);
		if (t->state != DSTATE_RUNNING && t->async)
			continue; /* only taken, below */
		int attempts = t->attempts;
		if (t->state == DSTATE_RUNNING) {
			/* That run died with its instance: an attempt, with no HTTP
			 * outcome (http 0) and no known end. */
			attempts = t->run_attempt > t->attempts ? t->run_attempt : t->attempts + 1;
			struct journal_attempt a = {
				.attempt = attempts,
				.started_ms = t->run_started_ms,
				.status = "interrupted",
				.error = "interrupted",
			};
			if (insert_attempt(j, t->id, &a, -1, t->owner) < 0)
				goto fail;
		}
		/* A sync one that waited for a slot or its key never ran: failed
		 * with no attempt, its sender's resend its first run. */
		enum delivery_state st = t->async ? DSTATE_QUEUED : DSTATE_FAILED;
		p_int(&p, t->id);
		p_int(&p, st);
		p_int(&p, attempts);
		p_int(&p, now);
		p_int(&p, (int64_t)j->body_max);
		t->why = t->async || t->state == DSTATE_RUNNING ? "interrupted"
		                                                : "interrupted before it ran";
		t->attempt = t->state == DSTATE_RUNNING ? attempts : 0;
		p_text(&p, t->why);
		if (run_cmd(j, "recover",
		            "UPDATE hookd_deliveries SET state = $2::int,"
		            " attempts = greatest(attempts, $3::int), http = 0,"
		            " status = 'interrupted', error = $6::text, next_due_ms = 0,"
		            " updated_ms = $4::bigint, run_attempt = 0,"
		            " body_cut = CASE WHEN $2::int >= 3 AND length(body) > $5::bigint THEN true"
		            "  ELSE body_cut END,"
		            " body = CASE WHEN $2::int >= 3 AND length(body) > $5::bigint"
		            "  THEN substr(body, 1, least($5::bigint, 2147483647)::int) ELSE body END,"
		            " owner = NULL WHERE id = $1::bigint",
		            &p) < 0) {
			p_free(&p);
			goto fail;
		}
		p_free(&p);
		t->failed = !t->async;
	}
	sb_putc(&ids, '}');
	/* Every row still pending is this instance's now. */
	p_text(&p, ids.buf);
	p_text(&p, j->instance);
	/* A stolen row's time in the queue starts again on its new instance:
	 * else the one it came from steals it back at its next tick. */
	p_int(&p, mode == TAKE_STEAL ? now : 0);
	r = run(j, "recover",
	        "UPDATE hookd_deliveries SET owner = $2::text, fence = fence + 1,"
	        " updated_ms = greatest(updated_ms, $3::bigint)"
	        " WHERE id = ANY ($1::bigint[]) AND state < 3",
	        &p);
	PQclear(r);
	if (!r) {
		p_free(&p);
		goto fail;
	}
	p_free(&p);
	p_text(&p, ids.buf);
	r = run(j, "recover",
	        "SELECT id, endpoint, delivery_id, event, remote_addr, state, attempts, next_due_ms,"
	        " received_ms, NULL, body_len, body_cut, NULL, replay_attempt, fence, async,"
	        " serial_key FROM hookd_deliveries WHERE id = ANY ($1::bigint[]) AND state < 3"
	        " ORDER BY received_ms, id",
	        &p);
	p_free(&p);
	if (!r)
		goto fail;
	int nr = PQntuples(r);
	list = xcalloc(nr ? (size_t)nr : 1, sizeof(*list));
	for (int i = 0; i < nr; i++) {
		if (!col_bool(r, i, 15))
			continue;
		struct journal_pending *lp = &list[nlist++];
		read_pending(r, i, lp);
		lp->key_known = true;
		if (!PQgetisnull(r, i, 16))
			lp->key = xstrdup(col_text(r, i, 16));
	}
	if (tx_commit(j) < 0) {
		PQclear(r);
		goto fail;
	}
	for (int i = 0; i < nr; i++) {
		if (col_bool(r, i, 15))
			fence_put(&j->fences, col_i64(r, i, 0), col_i64(r, i, 14), 0);
	}
	PQclear(r);
	for (size_t i = 0; i < nrows; i++) {
		struct take_row *t = &rows[i];
		struct log_delivery who = {t->endpoint, t->event, t->delivery_id, t->attempt};
		if (t->why)
			journal_log_interrupted(&who, t->why, t->async, t->owner);
		if (t->failed)
			journal_interrupted(&j->base, t->endpoint, t->event);
	}
	take_rows_free(rows, nrows);
	sb_free(&ids);
	j->counted = false; /* recounted on the next ask */
	*out = list;
	*n = nlist;
	return 0;
fail:
	tx_rollback(j);
	take_rows_free(rows, nrows);
	sb_free(&ids);
	for (size_t i = 0; i < nlist; i++)
		journal_pending_free(&list[i]);
	free(list);
	return -1;
}

int pg_recover(struct journal *jj, struct journal_pending **out, size_t *n)
{
	return take_rows(pg_of(jj), TAKE_RECOVER, 0, 0, out, n);
}

int pg_adopt(struct journal *jj, size_t max, struct journal_pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (max == 0)
		return 0;
	return take_rows(pg_of(jj), TAKE_ADOPT, max, 0, out, n);
}

int pg_steal(struct journal *jj, size_t max, int64_t queued_before_ms,
                    struct journal_pending **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (max == 0)
		return 0;
	return take_rows(pg_of(jj), TAKE_STEAL, max, queued_before_ms, out, n);
}

enum result pg_get(struct journal *jj, int64_t rowid, struct journal_pending *out)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_UNKNOWN;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_int(&p, rowid);
	PGresult *r = run(j, "get", "SELECT " PENDING_COLS " FROM hookd_deliveries WHERE id = $1::bigint",
	                  &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	enum result ret = RESULT_UNKNOWN;
	if (PQntuples(r) == 1) {
		read_pending(r, 0, out);
		ret = RESULT_OK;
	}
	PQclear(r);
	return ret;
}
