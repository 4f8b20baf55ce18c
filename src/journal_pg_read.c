/*
 * The PostgreSQL journal read back (journal_pg.c is the backend): for
 * `hookd events` and `show` (a delivery, its attempts and its hooks'
 * output), the web API's filtered listing, and the delivery ids' endpoints;
 * and `journal import`, which writes a delivery of an export.
 */
#include "journal_pg_private.h"

#include <stdlib.h>
#include <string.h>

/* ---- reading back ---- */

enum result pg_list(struct journal *jj, int64_t since_ms, bool failed_only,
                           bool (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_OK;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_int(&p, since_ms);
	p_bool(&p, failed_only);
	PGresult *r = run(j, "events",
	                  "SELECT received_ms, endpoint, delivery_id, event, state, http, attempts"
	                  " FROM hookd_deliveries WHERE received_ms >= $1::bigint AND"
	                  " (NOT $2::boolean OR state = 4"
	                  " OR (state < 3 AND attempts > 0 AND NOT (http BETWEEN 200 AND 299)))"
	                  " ORDER BY received_ms DESC, id DESC",
	                  &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	for (int i = 0, n = PQntuples(r); i < n; i++) {
		struct journal_entry e = {
			.received_ms = col_i64(r, i, 0),
			.endpoint = col_text(r, i, 1),
			.delivery_id = col_text(r, i, 2),
			.event = col_text(r, i, 3),
			.state = (enum delivery_state)col_int(r, i, 4),
			.http = col_int(r, i, 5),
			.attempts = col_int(r, i, 6),
		};
		if (!visit(&e, arg))
			break;
	}
	PQclear(r);
	return RESULT_OK;
}

enum result pg_read(struct journal *jj, int64_t rowid,
                           void (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_UNKNOWN;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_int(&p, rowid);
	PGresult *r = run(j, "show",
	                  "SELECT endpoint, delivery_id, event, remote_addr, async, state, attempts,"
	                  " received_ms, updated_ms, next_due_ms, http, status, error, headers, body,"
	                  " body_len, body_cut, run_attempt, run_started_ms FROM hookd_deliveries"
	                  " WHERE id = $1::bigint",
	                  &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return RESULT_UNKNOWN;
	}
	size_t kept;
	unsigned char *body = col_bytes(r, 0, 14, &kept);
	struct journal_entry e = {
		.endpoint = col_text(r, 0, 0),
		.delivery_id = col_text(r, 0, 1),
		.event = col_text(r, 0, 2),
		.remote_addr = col_text(r, 0, 3),
		.async = col_bool(r, 0, 4),
		.state = (enum delivery_state)col_int(r, 0, 5),
		.attempts = col_int(r, 0, 6),
		.received_ms = col_i64(r, 0, 7),
		.updated_ms = col_i64(r, 0, 8),
		.next_due_ms = col_i64(r, 0, 9),
		.http = col_int(r, 0, 10),
		.status = col_text_or_null(r, 0, 11),
		.error = col_text_or_null(r, 0, 12),
		.headers = col_text(r, 0, 13),
		.body = body ? body : (const unsigned char *)"",
		.body_kept = body ? kept : 0,
		.body_len = col_i64(r, 0, 15),
		.body_cut = col_bool(r, 0, 16),
		.run_attempt = col_int(r, 0, 17),
		.run_started_ms = col_i64(r, 0, 18),
	};
	visit(&e, arg);
	if (body)
		PQfreemem(body);
	PQclear(r);
	return RESULT_OK;
}

enum result pg_read_attempts(struct journal *jj, int64_t rowid,
                                    const struct journal_attempt_visitor *v)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_OK;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_int(&p, rowid);
	/* Read-only on a journal of schema 1 (an older instance's): no client_gone. */
	PGresult *a = run(j, "show",
	                  j->schema < 2
	                          ? "SELECT attempt, started_ms, finished_ms, http, status, error,"
	                            " replay, instance, false FROM hookd_attempts"
	                            " WHERE delivery = $1::bigint ORDER BY attempt"
	                          : "SELECT attempt, started_ms, finished_ms, http, status, error,"
	                            " replay, instance, client_gone FROM hookd_attempts"
	                            " WHERE delivery = $1::bigint ORDER BY attempt",
	                  &p);
	PGresult *h = a ? run(j, "show",
	                      "SELECT attempt, hook, exit, signal, ms, error, output FROM"
	                      " hookd_hook_runs WHERE delivery = $1::bigint ORDER BY attempt, seq",
	                      &p)
	                : NULL;
	p_free(&p);
	if (!a || !h) {
		PQclear(a);
		return RESULT_ERROR;
	}
	int nh = PQntuples(h), k = 0;
	for (int i = 0, n = PQntuples(a); i < n; i++) {
		struct journal_attempt at = {
			.attempt = col_int(a, i, 0),
			.started_ms = col_i64(a, i, 1),
			.finished_ms = col_i64(a, i, 2),
			.http = col_int(a, i, 3),
			.status = col_text(a, i, 4),
			.error = col_text_or_null(a, i, 5),
			.replay = col_bool(a, i, 6),
			.instance = col_text_or_null(a, i, 7),
			.client_gone = col_bool(a, i, 8),
		};
		v->attempt(&at, v->arg);
		while (k < nh && col_int(h, k, 0) < at.attempt)
			k++;
		for (; k < nh && col_int(h, k, 0) == at.attempt; k++) {
			size_t olen;
			unsigned char *out = col_bytes(h, k, 6, &olen);
			struct journal_hook hk = {
				.hook = col_text(h, k, 1),
				.exit_code = PQgetisnull(h, k, 2) ? -1 : col_int(h, k, 2),
				.signal = col_text_or_null(h, k, 3),
				.ms = col_i64(h, k, 4),
				.error = col_text_or_null(h, k, 5),
				.output = out ? (const char *)out : NULL,
				.output_len = out ? olen : 0,
			};
			v->hook(&hk, v->arg);
			if (out)
				PQfreemem(out);
		}
	}
	PQclear(a);
	PQclear(h);
	return RESULT_OK;
}

enum result pg_endpoints_of(struct journal *jj, const char *delivery_id,
                                   void (*visit)(const char *endpoint, void *arg), void *arg)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_OK;
	if (!usable(j))
		return RESULT_ERROR;
	struct params p = {0};
	p_text(&p, delivery_id);
	PGresult *r = run(j, "find",
	                  "SELECT endpoint FROM hookd_deliveries WHERE delivery_id = $1::text"
	                  " ORDER BY endpoint",
	                  &p);
	p_free(&p);
	if (!r)
		return RESULT_ERROR;
	for (int i = 0, n = PQntuples(r); i < n; i++)
		visit(col_text(r, i, 0), arg);
	PQclear(r);
	return RESULT_OK;
}

/*
 * SQLite's GLOB as a POSIX regular expression, anchored: '*' any run, '?'
 * one character, "[...]" a set ("[^...]" its complement, a ']' first in
 * it literal), everything else literal (case-sensitive, as GLOB).
 */
static char *glob_to_regex(const char *g)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_putc(&sb, '^');
	for (const char *c = g; *c; c++) {
		if (*c == '*') {
			sb_puts(&sb, ".*");
		} else if (*c == '?') {
			sb_putc(&sb, '.');
		} else if (*c == '[' && strchr(c + 1 + (c[1] == '^') + 1, ']') &&
		           c[1 + (c[1] == '^')] != '\0') {
			const char *e = c + 1;
			sb_putc(&sb, '[');
			if (*e == '^')
				sb_putc(&sb, *e++);
			if (*e == ']')
				sb_putc(&sb, *e++);
			for (; *e && *e != ']'; e++) {
				if (*e == '\\' || *e == '[')
					sb_putc(&sb, '\\');
				sb_putc(&sb, *e);
			}
			sb_putc(&sb, ']');
			c = e;
		} else {
			if (strchr(".^$|()+*?{}[]\\", *c))
				sb_putc(&sb, '\\');
			sb_putc(&sb, *c);
		}
	}
	sb_putc(&sb, '$');
	return sb_steal(&sb);
}

enum result pg_query(struct journal *jj, const struct journal_filter *f,
                            bool (*visit)(const struct journal_row *r, void *arg), void *arg)
{
	struct pg_journal *j = pg_of(jj);
	if (j->noschema)
		return RESULT_OK;
	if (!usable(j))
		return RESULT_ERROR;
	/* Built per call: each filter left out is a clause left out, so that
	 * the planner picks the index that fits the ones given. */
	struct strbuf sql;
	sb_init(&sql);
	struct params p = {0};
	sb_puts(&sql, "SELECT d.id, d.received_ms, d.endpoint, d.delivery_id, d.event, d.state,"
	              " d.http, d.attempts, d.next_due_ms, d.status,"
	              " (SELECT a.finished_ms - a.started_ms FROM hookd_attempts a"
	              "  WHERE a.delivery = d.id ORDER BY a.attempt DESC LIMIT 1),");
	/* Read-only on a journal of schema 1 (an older instance's): no client_gone. */
	sb_puts(&sql, j->schema < 2 ? " false"
	                            : " coalesce((SELECT a.client_gone FROM hookd_attempts a"
	                              "  WHERE a.delivery = d.id ORDER BY a.attempt DESC LIMIT 1),"
	                              " false)");
	sb_puts(&sql, " FROM hookd_deliveries d WHERE d.received_ms >= $1::bigint");
	p_int(&p, f->since_ms);
	if (f->state >= 0) {
		p_int(&p, f->state);
		sb_printf(&sql, " AND d.state = $%d::int", p.n);
	}
	if (f->endpoint) {
		p_text(&p, f->endpoint);
		sb_printf(&sql, " AND d.endpoint = $%d::text", p.n);
	}
	char *re = NULL;
	if (f->event_glob) {
		re = glob_to_regex(f->event_glob);
		p_text(&p, re);
		sb_printf(&sql, " AND d.event ~ $%d::text", p.n);
	}
	if (f->text) {
		p_bytes(&p, f->text, strlen(f->text));
		sb_printf(&sql, " AND position($%d::bytea in d.body) > 0", p.n);
	}
	if (f->before_ms > 0) {
		p_int(&p, f->before_ms);
		p_int(&p, f->before_rowid);
		sb_printf(&sql,
		          " AND (d.received_ms < $%d::bigint OR (d.received_ms = $%d::bigint"
		          " AND d.id < $%d::bigint))",
		          p.n - 1, p.n - 1, p.n);
	}
	p_int(&p, f->limit > 0 ? f->limit : 50);
	sb_printf(&sql, " ORDER BY d.received_ms DESC, d.id DESC LIMIT $%d::bigint", p.n);
	PGresult *r = run(j, "query", sql.buf, &p);
	p_free(&p);
	free(re);
	sb_free(&sql);
	if (!r)
		return RESULT_ERROR;
	for (int i = 0, n = PQntuples(r); i < n; i++) {
		struct journal_row row = {
			.rowid = col_i64(r, i, 0),
			.received_ms = col_i64(r, i, 1),
			.endpoint = col_text(r, i, 2),
			.delivery_id = col_text(r, i, 3),
			.event = col_text(r, i, 4),
			.state = (enum delivery_state)col_int(r, i, 5),
			.http = col_int(r, i, 6),
			.attempts = col_int(r, i, 7),
			.next_due_ms = col_i64(r, i, 8),
			.status = col_text_or_null(r, i, 9),
			.last_ms = PQgetisnull(r, i, 10) ? -1 : col_i64(r, i, 10),
			.client_gone = col_bool(r, i, 11),
		};
		if (!visit(&row, arg))
			break;
	}
	PQclear(r);
	return RESULT_OK;
}

/* ---- journal import ---- */

int pg_import(struct journal *jj, const struct journal_entry *e,
                     const struct journal_attempt *attempts, size_t nattempts)
{
	struct pg_journal *j = pg_of(jj);
	if (!writable(j))
		return RESULT_ERROR;
	if (tx_begin(j) < 0)
		return RESULT_ERROR;
	bool pending = delivery_state_pending(e->state);
	/* A pending one waits, held by nobody (owner NULL), for some instance
	 * to adopt it. */
	struct params p = {0};
	p_text(&p, e->endpoint);
	p_text(&p, e->delivery_id);
	p_text(&p, e->event);
	p_text(&p, e->remote_addr ? e->remote_addr : "");
	p_bool(&p, e->async);
	p_int(&p, pending ? DSTATE_QUEUED : e->state);
	p_int(&p, e->attempts);
	p_int(&p, e->received_ms);
	p_int(&p, e->updated_ms ? e->updated_ms : e->received_ms);
	p_int(&p, e->next_due_ms);
	p_int(&p, e->http);
	p_text(&p, e->status);
	p_text(&p, e->error);
	p_text(&p, e->headers ? e->headers : "");
	p_bytes(&p, e->body, e->body ? e->body_kept : 0);
	p_int(&p, e->body_len);
	p_bool(&p, e->body_cut);
	p_int(&p, pending ? e->replay_attempt : 0);
	PGresult *r = run(j, "import",
	                  "INSERT INTO hookd_deliveries (endpoint, delivery_id, event, remote_addr,"
	                  " async, state, attempts, received_ms, updated_ms, next_due_ms, http, status,"
	                  " error, headers, body, body_len, body_cut, replay_attempt)"
	                  " VALUES ($1::text,"
	                  " $2::text, $3::text, $4::text, $5::boolean, $6::int, $7::int, $8::bigint,"
	                  " $9::bigint, $10::bigint, $11::int, $12::text, $13::text, $14::text,"
	                  " $15::bytea, $16::bigint, $17::boolean, $18::int)"
	                  " ON CONFLICT (delivery_id, endpoint) DO NOTHING RETURNING id",
	                  &p);
	p_free(&p);
	if (!r)
		goto fail;
	bool inserted = PQntuples(r) == 1;
	int64_t rowid = inserted ? col_i64(r, 0, 0) : 0;
	PQclear(r);
	if (!inserted) {
		tx_rollback(j);
		return RESULT_PENDING;
	}
	for (size_t i = 0; i < nattempts; i++) {
		if (insert_attempt(j, rowid, &attempts[i], attempts[i].replay, attempts[i].instance) < 0)
			goto fail;
	}
	if (tx_commit(j) < 0)
		goto fail;
	count_change(j, false, 0, journal_pending_async(DSTATE_QUEUED, e->async && pending), e->body_len);
	return RESULT_OK;
fail:
	tx_rollback(j);
	return RESULT_ERROR;
}
