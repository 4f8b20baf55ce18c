/*
 * The SQLite journal read back: a pending delivery whole (journal_get,
 * for the runner and replay), an id's row (journal_find), the CLI's
 * `events` and `show`, the deliveries page's list (journal_query); and
 * a delivery copied in as it was (`hookd journal import`).
 */
#include "journal_sqlite_private.h"

#include <string.h>

#include "util.h"

static char *col_strdup(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return xstrdup(t ? t : "");
}

/* Fills p from a row of PENDING_COLS. */
void read_pending(sqlite3_stmt *s, struct journal_pending *p)
{
	memset(p, 0, sizeof(*p));
	p->rowid = sqlite3_column_int64(s, 0);
	p->endpoint = col_strdup(s, 1);
	p->delivery_id = col_strdup(s, 2);
	p->event = col_strdup(s, 3);
	p->remote_addr = col_strdup(s, 4);
	p->state = (enum delivery_state)sqlite3_column_int(s, 5);
	p->attempts = sqlite3_column_int(s, 6);
	p->next_due_ms = sqlite3_column_int64(s, 7);
	p->received_ms = sqlite3_column_int64(s, 8);
	p->body_complete = sqlite3_column_int(s, 11) == 0;
	p->replay_attempt = sqlite3_column_int(s, 13);
	if (sqlite3_column_type(s, 9) == SQLITE_NULL) {
		/* Recovery's list: the body stays in the journal. */
		p->body_len = (size_t)sqlite3_column_int64(s, 10);
		p->headers = xcalloc(1, sizeof(char *));
		return;
	}
	const void *b = sqlite3_column_blob(s, 9);
	size_t blen = (size_t)sqlite3_column_bytes(s, 9);
	p->body = xmalloc(blen + 1);
	if (blen)
		memcpy(p->body, b, blen);
	p->body[blen] = '\0'; /* a convenience for text bodies; body_len counts */
	p->body_len = blen;

	const char *h = (const char *)sqlite3_column_text(s, 12);
	size_t n = 0;
	for (const char *c = h; c && *c; c++)
		n += *c == '\n';
	p->headers = xcalloc(n + 1, sizeof(char *));
	for (const char *c = h; c && *c;) {
		const char *nl = strchr(c, '\n');
		size_t len = nl ? (size_t)(nl - c) : strlen(c);
		if (p->nheaders < n + 1)
			p->headers[p->nheaders++] = xstrndup(c, len);
		c += len + (nl ? 1 : 0);
	}
}

enum result sq_get(struct journal *base, int64_t rowid, struct journal_pending *out)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_GET);
	if (!s)
		return RESULT_ERROR;
	sqlite3_bind_int64(s, 1, rowid);
	int rc = sqlite3_step(s);
	enum result ret = RESULT_UNKNOWN;
	if (rc == SQLITE_ROW) {
		read_pending(s, out);
		ret = RESULT_OK;
	} else if (rc != SQLITE_DONE) {
		db_error(j, "get");
		ret = RESULT_ERROR;
	}
	done(s);
	return ret;
}

enum result sq_find(struct journal *base, const char *endpoint, const char *delivery_id,
                         int64_t *rowid)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_FIND);
	if (!s)
		return RESULT_ERROR;
	bind_text(s, 1, delivery_id);
	bind_text(s, 2, endpoint);
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ == 0 && rowid)
			*rowid = sqlite3_column_int64(s, 0);
	}
	done(s);
	if (rc != SQLITE_DONE) {
		db_error(j, "find");
		return RESULT_ERROR;
	}
	return n == 0 ? RESULT_UNKNOWN : n == 1 ? RESULT_OK : RESULT_AMBIGUOUS;
}

/* ---- reading back, for `events` and `show` ---- */

static const char *col_text(sqlite3_stmt *s, int i)
{
	const char *t = (const char *)sqlite3_column_text(s, i);
	return t ? t : "";
}

/* The column's text, or NULL when it is NULL. */
static const char *col_text_or_null(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) != SQLITE_NULL ? col_text(s, i) : NULL;
}

enum result sq_list(struct journal *base, int64_t since_ms, bool failed_only,
                         bool (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_EVENTS);
	if (!s)
		return RESULT_ERROR;
	sqlite3_bind_int64(s, 1, since_ms);
	sqlite3_bind_int(s, 2, failed_only);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct journal_entry e = {
			.received_ms = sqlite3_column_int64(s, 0),
			.endpoint = col_text(s, 1),
			.delivery_id = col_text(s, 2),
			.event = col_text(s, 3),
			.state = (enum delivery_state)sqlite3_column_int(s, 4),
			.http = sqlite3_column_int(s, 5),
			.attempts = sqlite3_column_int(s, 6),
		};
		if (!visit(&e, arg))
			break;
	}
	bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
	if (failed)
		db_error(j, "events");
	done(s);
	return failed ? RESULT_ERROR : RESULT_OK;
}

enum result sq_read(struct journal *base, int64_t rowid,
                         void (*visit)(const struct journal_entry *e, void *arg), void *arg)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_SHOW);
	if (!s)
		return RESULT_ERROR;
	sqlite3_bind_int64(s, 1, rowid);
	if (sqlite3_step(s) != SQLITE_ROW) {
		/* Pruned since the caller found its rowid (or unreadable: `show`
		 * says the same either way). */
		done(s);
		return RESULT_UNKNOWN;
	}
	const unsigned char *body = sqlite3_column_blob(s, 14);
	struct journal_entry e = {
		.endpoint = col_text(s, 0),
		.delivery_id = col_text(s, 1),
		.event = col_text(s, 2),
		.remote_addr = col_text(s, 3),
		.async = sqlite3_column_int(s, 4) != 0,
		.state = (enum delivery_state)sqlite3_column_int(s, 5),
		.attempts = sqlite3_column_int(s, 6),
		.received_ms = sqlite3_column_int64(s, 7),
		.updated_ms = sqlite3_column_int64(s, 8),
		.next_due_ms = sqlite3_column_int64(s, 9),
		.http = sqlite3_column_int(s, 10),
		.status = col_text_or_null(s, 11),
		.error = col_text_or_null(s, 12),
		.headers = col_text(s, 13),
		.body = body ? body : (const unsigned char *)"",
		.body_kept = (size_t)sqlite3_column_bytes(s, 14),
		.body_len = sqlite3_column_int64(s, 15),
		.body_cut = sqlite3_column_int(s, 16) != 0,
		.run_attempt = sqlite3_column_int(s, 17),
		.run_started_ms = sqlite3_column_int64(s, 18),
	};
	visit(&e, arg);
	done(s);
	return RESULT_OK;
}

enum result sq_read_attempts(struct journal *base, int64_t rowid,
                                  const struct journal_attempt_visitor *v)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *a = stmt(j, j->schema < 2   ? ST_SHOW_ATTEMPTS_V1
	                          : j->schema < 3 ? ST_SHOW_ATTEMPTS_V2
	                                          : ST_SHOW_ATTEMPTS);
	if (!a)
		return RESULT_ERROR;
	sqlite3_bind_int64(a, 1, rowid);
	int rc;
	while ((rc = sqlite3_step(a)) == SQLITE_ROW) {
		struct journal_attempt at = {
			.attempt = sqlite3_column_int(a, 0),
			.started_ms = sqlite3_column_int64(a, 1),
			.finished_ms = sqlite3_column_type(a, 2) != SQLITE_NULL
			                       ? sqlite3_column_int64(a, 2)
			                       : 0,
			.http = sqlite3_column_int(a, 3),
			.status = col_text(a, 4),
			.error = col_text_or_null(a, 5),
			.replay = sqlite3_column_int(a, 6) != 0,
			.client_gone = sqlite3_column_int(a, 7) != 0,
		};
		v->attempt(&at, v->arg);

		sqlite3_stmt *h = stmt(j, ST_SHOW_HOOKS);
		if (!h)
			break;
		sqlite3_bind_int64(h, 1, rowid);
		sqlite3_bind_int(h, 2, at.attempt);
		while (sqlite3_step(h) == SQLITE_ROW) {
			struct journal_hook hk = {
				.hook = col_text(h, 0),
				.exit_code = sqlite3_column_type(h, 1) != SQLITE_NULL
				                     ? sqlite3_column_int(h, 1)
				                     : -1,
				.signal = col_text_or_null(h, 2),
				.ms = sqlite3_column_int64(h, 3),
				.error = col_text_or_null(h, 4),
				.output = sqlite3_column_blob(h, 5),
				.output_len = (size_t)sqlite3_column_bytes(h, 5),
			};
			v->hook(&hk, v->arg);
		}
		done(h);
	}
	done(a);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_error(j, "show");
		return RESULT_ERROR;
	}
	return RESULT_OK;
}

enum result sq_endpoints_of(struct journal *base, const char *delivery_id,
                                 void (*visit)(const char *endpoint, void *arg), void *arg)
{
	struct sqlj *j = (struct sqlj *)base;
	sqlite3_stmt *s = stmt(j, ST_FIND_ALL);
	if (!s)
		return RESULT_ERROR;
	bind_text(s, 1, delivery_id);
	while (sqlite3_step(s) == SQLITE_ROW)
		visit(col_text(s, 0), arg);
	done(s);
	return RESULT_OK;
}

/* ---- the deliveries page's list (webapi.c) ---- */

enum result sq_query(struct journal *base, const struct journal_filter *f,
                          bool (*visit)(const struct journal_row *r, void *arg), void *arg)
{
	struct sqlj *j = (struct sqlj *)base;
	/* Built per call: each filter left out is a clause left out, so that
	 * SQLite picks the index that fits the ones given. */
	struct strbuf sql;
	sb_init(&sql);
	sb_puts(&sql, "SELECT d.id, d.received_ms, d.endpoint, d.delivery_id, d.event, d.state,"
	              " d.http, d.attempts, d.next_due_ms, d.status,"
	              " (SELECT a.finished_ms - a.started_ms FROM attempts a WHERE a.delivery = d.id"
	              "  ORDER BY a.attempt DESC LIMIT 1),");
	/* Read-only on a journal of schema 2 (an older hookd's): no client_gone. */
	sb_puts(&sql, j->schema < 3 ? " 0" : " (SELECT a.client_gone FROM attempts a"
	                                     " WHERE a.delivery = d.id ORDER BY a.attempt DESC LIMIT 1)");
	sb_puts(&sql, " FROM deliveries d WHERE d.received_ms >= ?1");
	if (f->state >= 0)
		sb_puts(&sql, " AND d.state = ?2");
	if (f->endpoint)
		sb_puts(&sql, " AND d.endpoint = ?3");
	if (f->event_glob)
		sb_puts(&sql, " AND d.event GLOB ?4");
	if (f->text)
		sb_puts(&sql, " AND instr(d.body, ?5) > 0");
	if (f->before_ms > 0)
		sb_puts(&sql, " AND (d.received_ms < ?6 OR (d.received_ms = ?6 AND d.id < ?7))");
	sb_puts(&sql, " ORDER BY d.received_ms DESC, d.id DESC LIMIT ?8");
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(j->db, sql.buf, -1, &s, NULL) != SQLITE_OK) {
		db_error(j, "query");
		sb_free(&sql);
		return RESULT_ERROR;
	}
	sb_free(&sql);
	sqlite3_bind_int64(s, 1, f->since_ms);
	sqlite3_bind_int(s, 2, f->state);
	bind_text(s, 3, f->endpoint);
	bind_text(s, 4, f->event_glob);
	if (f->text)
		sqlite3_bind_blob64(s, 5, f->text, strlen(f->text), SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, f->before_ms);
	sqlite3_bind_int64(s, 7, f->before_rowid);
	sqlite3_bind_int(s, 8, f->limit > 0 ? f->limit : 50);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct journal_row r = {
			.rowid = sqlite3_column_int64(s, 0),
			.received_ms = sqlite3_column_int64(s, 1),
			.endpoint = col_text(s, 2),
			.delivery_id = col_text(s, 3),
			.event = col_text(s, 4),
			.state = (enum delivery_state)sqlite3_column_int(s, 5),
			.http = sqlite3_column_int(s, 6),
			.attempts = sqlite3_column_int(s, 7),
			.next_due_ms = sqlite3_column_int64(s, 8),
			.status = col_text_or_null(s, 9),
			.last_ms = sqlite3_column_type(s, 10) != SQLITE_NULL ? sqlite3_column_int64(s, 10)
			                                                   : -1,
			.client_gone = sqlite3_column_int(s, 11) != 0,
		};
		if (!visit(&r, arg))
			break;
	}
	bool failed = rc != SQLITE_DONE && rc != SQLITE_ROW;
	if (failed)
		db_error(j, "query");
	sqlite3_finalize(s);
	return failed ? RESULT_ERROR : RESULT_OK;
}

/* ---- copying a journal in (`hookd journal import`) ---- */

/*
 * The delivery as it was, with its attempts and hooks, in one transaction.
 * A pending one stays pending as it was (a RUNNING one too, as after a
 * crash): the daemon's recovery takes it at its next start. The statements
 * are prepared per call: an import is a command of its own, not the
 * daemon's path.
 */
int sq_import(struct journal *base, const struct journal_entry *e,
                     const struct journal_attempt *attempts, size_t nattempts)
{
	struct sqlj *j = (struct sqlj *)base;
	if (j->readonly || !e->endpoint || !e->delivery_id || !e->event ||
	    (unsigned)e->state > DSTATE_SKIPPED)
		return RESULT_ERROR;
	static const char insert_sql[] =
		"INSERT INTO deliveries (endpoint, delivery_id, event, remote_addr, async, state,"
		" attempts, received_ms, updated_ms, next_due_ms, run_attempt, run_started_ms, http,"
		" status, error, headers, body, body_len, body_cut, replay_attempt)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
		" ?18, ?19, ?20) ON CONFLICT (delivery_id, endpoint) DO NOTHING";
	/* insert_attempt marks the attempt the row's replay_attempt names;
	 * the copy says for itself which were replays. */
	static const char replay_sql[] =
		"UPDATE attempts SET replay = ?3 WHERE delivery = ?1 AND attempt = ?2";
	bool pending = delivery_state_pending(e->state);
	bool running = e->state == DSTATE_RUNNING;
	sqlite3_stmt *ins = NULL, *rep = NULL;
	if (sqlite3_prepare_v2(j->db, insert_sql, -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, replay_sql, -1, &rep, NULL) != SQLITE_OK) {
		db_error(j, "import");
		sqlite3_finalize(ins);
		return RESULT_ERROR;
	}
	int ret = RESULT_ERROR;
	if (tx_begin(j, pending && e->async) < 0)
		goto out;
	bind_text(ins, 1, e->endpoint);
	bind_text(ins, 2, e->delivery_id);
	bind_text(ins, 3, e->event);
	bind_text(ins, 4, e->remote_addr ? e->remote_addr : "");
	sqlite3_bind_int(ins, 5, e->async);
	sqlite3_bind_int(ins, 6, e->state);
	sqlite3_bind_int(ins, 7, e->attempts);
	sqlite3_bind_int64(ins, 8, e->received_ms);
	sqlite3_bind_int64(ins, 9, e->updated_ms ? e->updated_ms : e->received_ms);
	sqlite3_bind_int64(ins, 10, e->state == DSTATE_RETRY_WAIT ? e->next_due_ms : 0);
	sqlite3_bind_int(ins, 11, running ? e->run_attempt : 0);
	sqlite3_bind_int64(ins, 12, running ? e->run_started_ms : 0);
	sqlite3_bind_int(ins, 13, e->http);
	bind_text(ins, 14, e->status);
	bind_text(ins, 15, e->error);
	bind_text(ins, 16, e->headers ? e->headers : "");
	sqlite3_bind_blob64(ins, 17, e->body ? (const void *)e->body : "",
	                    e->body ? e->body_kept : 0, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 18, e->body_len);
	sqlite3_bind_int(ins, 19, e->body_cut);
	sqlite3_bind_int(ins, 20, e->replay_attempt);
	if (sqlite3_step(ins) != SQLITE_DONE) {
		db_error(j, "import");
		goto fail;
	}
	if (sqlite3_changes(j->db) == 0) {
		ret = RESULT_PENDING; /* (endpoint, id) is there already */
		goto fail;
	}
	int64_t rowid = sqlite3_last_insert_rowid(j->db);
	for (size_t i = 0; i < nattempts; i++) {
		if (insert_attempt(j, rowid, &attempts[i], false) < 0)
			goto fail;
		sqlite3_reset(rep);
		sqlite3_bind_int64(rep, 1, rowid);
		sqlite3_bind_int(rep, 2, attempts[i].attempt);
		sqlite3_bind_int(rep, 3, attempts[i].replay);
		if (sqlite3_step(rep) != SQLITE_DONE) {
			db_error(j, "import attempt");
			goto fail;
		}
	}
	if (tx_commit(j) < 0)
		goto out;
	count_pending(j, DSTATE_SUCCEEDED, false, 0, e->state, e->async, e->body_len);
	j->rows++;
	ret = RESULT_OK;
	goto out;
fail:
	tx_rollback(j);
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(rep);
	return ret;
}
