/*
 * The PostgreSQL journal's connection (journal_pg.c is the backend): libpq
 * loaded on first use, connecting and setting a connection up for hookd,
 * outages and their backoff, the reconnect thread and the descriptor the
 * daemon's loop watches for it, and statements run on the connection
 * (parameters in, transactions and group commit's batch, columns out).
 */
#include "journal_pg_private.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynload.h"
#include "log.h"

/* ---- libpq, loaded on first use ---- */

#define PQ_DEFINE(f) __typeof__(dl_##f) dl_##f;
PQ_CALLS(PQ_DEFINE)

#define PQ_SYMBOL(f) {#f, &dl_##f},
static const struct dynsym pq_symbols[] = {PQ_CALLS(PQ_SYMBOL)};

bool pq_load(char *err, size_t errlen)
{
	static bool loaded;
	if (!loaded)
		loaded = dynload_resident("libpq.so.5", pq_symbols, ARRAY_SIZE(pq_symbols), err, errlen);
	return loaded;
}

/* ---- parameters ---- */

static int p_next(struct params *p)
{
	if (p->n >= MAX_PARAMS)
		abort(); /* a programming error: the SQL below has fewer */
	int i = p->n++;
	p->len[i] = 0;
	p->fmt[i] = 0;
	p->owned[i] = NULL;
	return i;
}

/* Text must be valid UTF-8 for the database: a byte that is not (a header
 * may carry any) becomes '?'. */
void p_text(struct params *p, const char *s)
{
	int i = p_next(p);
	p->val[i] = s;
	if (!s)
		return;
	size_t n = strlen(s);
	for (size_t k = 0; k < n;) {
		size_t l = utf8_seq((const unsigned char *)s + k, n - k, NULL);
		if (l > 0) {
			k += l;
			continue;
		}
		char *copy = xstrdup(s);
		for (size_t c = k; c < n;) {
			size_t cl = utf8_seq((const unsigned char *)copy + c, n - c, NULL);
			if (cl == 0) {
				copy[c] = '?';
				cl = 1;
			}
			c += cl;
		}
		p->owned[i] = copy;
		p->val[i] = copy;
		break;
	}
}

void p_int(struct params *p, int64_t v)
{
	int i = p_next(p);
	snprintf(p->num[i], sizeof(p->num[i]), "%lld", (long long)v);
	p->val[i] = p->num[i];
}

void p_bool(struct params *p, bool v)
{
	int i = p_next(p);
	p->val[i] = v ? "t" : "f";
}

void p_null(struct params *p)
{
	int i = p_next(p);
	p->val[i] = NULL;
}

/* Binary: the bytes as they are (the SQL casts the parameter to bytea). */
void p_bytes(struct params *p, const void *b, size_t n)
{
	int i = p_next(p);
	p->val[i] = b ? (const char *)b : "";
	p->len[i] = n > INT_MAX ? INT_MAX : (int)n;
	p->fmt[i] = 1;
}

void p_free(struct params *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->owned[i]);
	p->n = 0;
}

/* ---- the connection, its outages, statements ---- */

static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* libpq's messages span lines (and end with a newline); a log line is
 * one: every run of white space becomes one space. */
static void trim_message(char *buf, size_t len, const char *msg)
{
	size_t n = 0;
	bool space = false;
	for (const char *c = msg ? msg : ""; *c && n + 1 < len; c++) {
		if (*c == '\n' || *c == '\t' || *c == '\r' || *c == ' ') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < len)
			buf[n++] = ' ';
		space = false;
		buf[n++] = *c;
	}
	if (len > 0)
		buf[n < len ? n : len - 1] = '\0';
}

/*
 * A statement's bound on the server (statement_timeout), and a write's on
 * the network (tcp_user_timeout: data a silent host never acknowledges
 * fails the connection after as long, where keepalives alone would wait
 * for the connection to go idle first).
 */
#define STATEMENT_TIMEOUT_MS 10000

/*
 * The session's settings travel in the startup packet (libpq's `options`),
 * so that connecting is all a reconnect does, bounded by connect_timeout:
 * a statement after it would wait for a host gone silent in between. The
 * connection string's own options (else PGOPTIONS, which libpq would have
 * used) come first and are kept; hookd's come last and win, as the SET
 * they replace did.
 */
static char *startup_options(const char *url, bool readonly)
{
	const char *theirs = getenv("PGOPTIONS");
	PQconninfoOption *parsed = PQconninfoParse(url, NULL);
	for (PQconninfoOption *o = parsed; o && o->keyword; o++) {
		if (strcmp(o->keyword, "options") == 0 && o->val && *o->val)
			theirs = o->val;
	}
	char *s = xasprintf("%s%s-c statement_timeout=%d%s", theirs ? theirs : "",
	                    theirs && *theirs ? " " : "", STATEMENT_TIMEOUT_MS,
	                    readonly ? " -c default_transaction_read_only=on" : "");
	if (parsed)
		PQconninfoFree(parsed);
	return s;
}

/* Whether this libpq takes keyword (tcp_user_timeout came with libpq 12;
 * an older one refuses every connect that names it). */
static bool libpq_knows(const char *keyword)
{
	PQconninfoOption *all = PQconndefaults();
	bool known = false;
	for (PQconninfoOption *o = all; o && o->keyword && !known; o++)
		known = strcmp(o->keyword, keyword) == 0;
	if (all)
		PQconninfoFree(all);
	return known;
}

/* The connection's parameters: hookd's defaults first, then the
 * connection string, which may override them (with expand_dbname, later
 * values win), then the session's settings (options, which hold the
 * string's own); the password file's last. keys and vals hold 12;
 * user_timeout is the caller's buffer for tcp_user_timeout's value. */
static void connect_params(const char *url, const char *password, const char *options,
                           char user_timeout[16], const char **keys, const char **vals)
{
	size_t n = 0;
	snprintf(user_timeout, 16, "%d", STATEMENT_TIMEOUT_MS);
	keys[n] = "connect_timeout", vals[n++] = "5";
	keys[n] = "application_name", vals[n++] = "hookd";
	keys[n] = "keepalives", vals[n++] = "1";
	keys[n] = "keepalives_idle", vals[n++] = "10";
	keys[n] = "keepalives_interval", vals[n++] = "5";
	keys[n] = "keepalives_count", vals[n++] = "3";
	if (libpq_knows("tcp_user_timeout"))
		keys[n] = "tcp_user_timeout", vals[n++] = user_timeout;
	keys[n] = "dbname", vals[n++] = url;
	keys[n] = "options", vals[n++] = options;
	if (password)
		keys[n] = "password", vals[n++] = password;
	keys[n] = NULL, vals[n] = NULL;
}

/*
 * The prepared statements' plans are made again at every run ("custom"), as
 * PQexecParams' were: what preparing saves is the parse and analysis. The
 * server's default would settle on one generic plan after five runs, chosen
 * on the table's statistics of that moment, and keep it until the table is
 * analyzed again: on a new journal's empty table that plan found a delivery
 * by scanning its endpoint's rows (the look-up) or its owner's (a run's
 * start), and a burst of 10,000 ran at half the speed of unprepared
 * statements (tests/bench/RESULTS.md). Set on the new connection, before
 * any statement of a batch (a SET in a batch that is lost would be rolled
 * back with it); not in the startup options, which an older server would
 * refuse: plan_cache_mode is PostgreSQL 12's, and an older one keeps its
 * default. Also on the reconnect's thread, so nothing is logged: a
 * refusal leaves the generic plans (slower, not wrong), and a connection
 * lost meanwhile fails the connect (false).
 */
static bool ask_custom_plans(PGconn *c)
{
	if (PQserverVersion(c) < 120000)
		return true;
	PQclear(PQexec(c, "SET plan_cache_mode = force_custom_plan"));
	return PQstatus(c) == CONNECTION_OK;
}

/* Connects, the session set up for hookd's use in the same exchange,
 * waiting for it: NULL with the reason in err. *where, if NULL, is set to
 * where the journal is, for messages ("host:port/dbname": never the
 * string). */
PGconn *connect_now(const char *url, const char *password, bool readonly, char **where,
                           char *err, size_t errlen)
{
	const char *keys[12], *vals[12];
	char user_timeout[16];
	char *options = startup_options(url, readonly);
	connect_params(url, password, options, user_timeout, keys, vals);
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	free(options);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (where && !*where) {
		const char *host = PQhost(c), *port = PQport(c), *db = PQdb(c);
		*where = xasprintf("%s:%s/%s", host && *host ? host : "?",
		                   port && *port ? port : "5432", db ? db : "?");
	}
	if (PQstatus(c) != CONNECTION_OK) {
		trim_message(err, errlen, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, ignore_notice, NULL);
	if (!ask_custom_plans(c)) {
		trim_message(err, errlen, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* The longest a connect with c's settings can take: connect_timeout (at
 * least 2 s, as libpq counts it) for each host of the connection string's
 * list; -1 if it has none (libpq then waits as long as the network does). */
int64_t connect_bound_ms(PGconn *c)
{
	PQconninfoOption *info = PQconninfo(c);
	long timeout = 0;
	int64_t hosts = 1;
	for (PQconninfoOption *o = info; o && o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "connect_timeout") == 0) {
			timeout = strtol(o->val, NULL, 10);
		} else if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0) {
			int64_t n = 1;
			for (const char *p = o->val; *p; p++)
				n += *p == ',';
			hosts = n > hosts ? n : hosts;
		}
	}
	if (info)
		PQconninfoFree(info);
	if (timeout <= 0)
		return -1;
	return (timeout < 2 ? 2 : timeout) * 1000 * hosts;
}

static void batch_lost(struct pg_journal *j);

static void went_down(struct pg_journal *j, const char *why)
{
	char msg[512];
	trim_message(msg, sizeof(msg), why);
	if (j->conn)
		PQfinish(j->conn);
	j->conn = NULL;
	if (j->batch)
		batch_lost(j);
	j->backoff_ms = BACKOFF_MIN_MS;
	j->retry_at_ms = now_mono_ms() + j->backoff_ms;
	log_msg(LOG_LVL_WARN, "journal: PostgreSQL unreachable: %s; retrying in %g s", msg,
	        (double)j->backoff_ms / 1000.0);
}

static void reconnect_free(struct reconnect *rc)
{
	if (rc->conn)
		PQfinish(rc->conn);
	if (rc->password) {
		explicit_bzero(rc->password, strlen(rc->password));
		free(rc->password);
	}
	free(rc->url);
	close(rc->wake[0]);
	close(rc->wake[1]);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

static void *reconnect_run(void *arg)
{
	struct reconnect *rc = arg;
	char err[sizeof(rc->err)] = "";
	PGconn *c = connect_now(rc->url, rc->password, rc->readonly, NULL, err, sizeof(err));
	pthread_mutex_lock(&rc->lock);
	rc->conn = c;
	memcpy(rc->err, err, sizeof(err));
	rc->done = true;
	ssize_t w = write(rc->wake[1], "", 1);
	(void)w; /* a new pipe's first byte: never full */
	pthread_mutex_unlock(&rc->lock);
	return NULL;
}

/* Starts a reconnect: false if no thread could be made. */
static bool reconnect_start(struct pg_journal *j)
{
	struct reconnect *rc = xcalloc(1, sizeof(*rc));
	if (pipe2(rc->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(rc);
		return false;
	}
	pthread_mutex_init(&rc->lock, NULL);
	rc->url = xstrdup(j->url);
	rc->password = j->password ? xstrdup(j->password) : NULL;
	rc->readonly = j->readonly;
	/* Signals are for the daemon's loop: none for this thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&rc->thread, NULL, reconnect_run, rc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		log_msg(LOG_LVL_WARN, "journal: cannot start a reconnect: %s", strerror(e));
		reconnect_free(rc);
		return false;
	}
	j->reconnect = rc;
	return true;
}

static void backoff_more(struct pg_journal *j)
{
	j->backoff_ms = j->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : j->backoff_ms * 2;
	j->retry_at_ms = now_mono_ms() + j->backoff_ms;
}

/* The reconnect under way, if done: its connection taken over (true), or
 * the next one after a longer backoff. */
static bool reconnect_finish(struct pg_journal *j)
{
	struct reconnect *rc = j->reconnect;
	pthread_mutex_lock(&rc->lock);
	bool done = rc->done;
	pthread_mutex_unlock(&rc->lock);
	if (!done)
		return false;
	pthread_join(rc->thread, NULL); /* past its last touch of rc: at once */
	PGconn *c = rc->conn;
	rc->conn = NULL;
	char err[sizeof(rc->err)];
	memcpy(err, rc->err, sizeof(err));
	reconnect_free(rc);
	j->reconnect = NULL;
	if (!c) {
		backoff_more(j);
		log_msg(LOG_LVL_DEBUG, "journal: PostgreSQL still unreachable: %s", err);
		return false;
	}
	j->conn = c;
	j->prepared = j->stale = 0; /* a new session */
	j->counted = false;
	j->release_due = !j->readonly;
	log_msg(LOG_LVL_INFO, "journal: PostgreSQL reachable again");
	return true;
}

/*
 * The journal closes: the reconnect under way, if any, is waited for, not
 * left running. At a clean stop the process exits next, and a thread
 * still inside libpq (and OpenSSL, with TLS) would run on while their
 * cleanup at exit frees what it uses. The wait is libpq's own bound: what
 * is left of connect_timeout for each host of the connection string (5 s
 * by default), as for the connection at start, the session's settings
 * included (startup_options); libpq cannot be asked to give up a connect
 * sooner.
 */
void reconnect_end(struct pg_journal *j)
{
	struct reconnect *rc = j->reconnect;
	if (!rc)
		return;
	pthread_join(rc->thread, NULL);
	reconnect_free(rc);
	j->reconnect = NULL;
}

/* Connected; or, down, a reconnect started (once the backoff has passed)
 * or taken over when done, without waiting: false until it is through. */
bool ensure_up(struct pg_journal *j)
{
	if (j->conn)
		return true;
	if (j->reconnect)
		return reconnect_finish(j);
	if (now_mono_ms() < j->retry_at_ms)
		return false;
	if (!reconnect_start(j))
		backoff_more(j);
	return false;
}

/* A failure that means the connection is gone (libpq says so, or the
 * server's SQLSTATE is a connection exception or a shutdown). */
static bool connection_failure(struct pg_journal *j, const PGresult *r)
{
	if (PQstatus(j->conn) != CONNECTION_OK)
		return true;
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (!state)
		return !r;
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* The open batch is gone, none of it committed: a statement in it failed
 * (the server aborted the transaction) or the connection did. */
static void batch_lost(struct pg_journal *j)
{
	j->batch = false;
	j->losses++;
	journal_batch_lost(&j->base);
	if (j->conn && PQtransactionStatus(j->conn) != PQTRANS_IDLE)
		PQclear(PQexec(j->conn, "ROLLBACK"));
	for (size_t i = 0; i < j->nbatch_rows; i++)
		fence_del(&j->fences, j->batch_rows[i]);
	j->nbatch_rows = 0;
	j->counted = false; /* recounted on the next ask */
	log_msg(LOG_LVL_ERROR, "journal: a batch of writes was lost");
}

/* A statement's result, if it succeeded (the caller clears it), else
 * NULL: the failure logged; a broken connection puts the journal down;
 * inside the batch, the batch is lost. */
static PGresult *checked(struct pg_journal *j, const char *what, PGresult *r)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	if (connection_failure(j, r)) {
		went_down(j, r ? PQresultErrorMessage(r) : PQerrorMessage(j->conn));
	} else {
		char msg[512];
		trim_message(msg, sizeof(msg), PQresultErrorMessage(r));
		log_msg(LOG_LVL_ERROR, "journal: %s: %s", what, msg);
	}
	PQclear(r);
	if (j->batch)
		batch_lost(j);
	return NULL;
}

/* Runs one statement given as text: its result, or NULL (checked). */
PGresult *run(struct pg_journal *j, const char *what, const char *sql, struct params *p)
{
	if (!j->conn)
		return NULL;
	return checked(j, what,
	               p ? PQexecParams(j->conn, sql, p->n, NULL, p->val, p->len, p->fmt, 0)
	                 : PQexec(j->conn, sql));
}

/*
 * Runs one of the statements of journal_pg_statements.c, prepared on this
 * connection first if it is not yet (the parameters' types are the SQL's
 * casts, as with run). A prepare that fails is a statement that fails:
 * logged, the connection or the batch lost as it says, and tried again at
 * the next run. A prepared statement outlives a transaction rolled back;
 * a new connection has none (reconnect_finish clears j->prepared).
 */
PGresult *run_prepared(struct pg_journal *j, const char *what, enum pg_stmt s, struct params *p)
{
	if (!j->conn)
		return NULL;
	const struct pg_statement *st = &pg_statements[s];
	uint32_t bit = UINT32_C(1) << s;
	if (j->stale & bit) {
		char *sql = xasprintf("DEALLOCATE %s", st->name);
		int rc = run_cmd(j, what, sql, NULL);
		free(sql);
		if (rc < 0)
			return NULL;
		j->stale &= ~bit;
		j->prepared &= ~bit;
	}
	if (!(j->prepared & bit)) {
		PGresult *r = checked(j, what, PQprepare(j->conn, st->name, st->sql, 0, NULL));
		if (!r)
			return NULL;
		PQclear(r);
		j->prepared |= bit;
	}
	PGresult *r = PQexecPrepared(j->conn, st->name, p ? p->n : 0, p ? p->val : NULL,
	                             p ? p->len : NULL, p ? p->fmt : NULL, 0);
	/* The server no longer has it (26000: a pooler gave this session's
	 * statements to another), or its plan no longer fits the table (0A000,
	 * "cached plan must not change result type": another instance's
	 * hookd changed the schema, and the statement stays so): prepared
	 * again at the next call, the stale one deallocated first. */
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (state && strcmp(state, "26000") == 0)
		j->prepared &= ~bit;
	else if (state && strcmp(state, "0A000") == 0)
		j->stale |= bit;
	return checked(j, what, r);
}

int run_prepared_cmd(struct pg_journal *j, const char *what, enum pg_stmt s, struct params *p)
{
	PGresult *r = run_prepared(j, what, s, p);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* A statement whose rows are not wanted: 0, or -1. */
int run_cmd(struct pg_journal *j, const char *what, const char *sql, struct params *p)
{
	PGresult *r = run(j, what, sql, p);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* Commits the open batch, if any; -1 when that fails (the batch is lost). */
int commit_batch(struct pg_journal *j)
{
	if (!j->batch)
		return 0;
	if (run_cmd(j, "commit", "COMMIT", NULL) < 0)
		return -1; /* run() counted the batch lost */
	j->batch = false;
	j->nbatch_rows = 0;
	j->committed_id = j->batch_id;
	return 0;
}

/* A transaction of its own: after the batch's. */
int tx_begin(struct pg_journal *j)
{
	commit_batch(j);
	return run_cmd(j, "begin", "BEGIN", NULL);
}

int tx_commit(struct pg_journal *j)
{
	return run_cmd(j, "commit", "COMMIT", NULL);
}

void tx_rollback(struct pg_journal *j)
{
	if (j->conn && PQtransactionStatus(j->conn) != PQTRANS_IDLE)
		run_cmd(j, "rollback", "ROLLBACK", NULL);
}

/* A write that joins the batch (while batching; else one of its own). */
bool batch_join(struct pg_journal *j)
{
	if (!j->batching)
		return writable(j);
	if (j->readonly || j->noschema || !ensure_up(j))
		return false;
	if (!j->batch) {
		if (run_cmd(j, "begin", "BEGIN", NULL) < 0)
			return false;
		j->batch = true;
		j->batch_id++;
	}
	return true;
}

void batch_add_row(struct pg_journal *j, int64_t rowid)
{
	if (!j->batch)
		return;
	if (j->nbatch_rows == j->batch_rows_cap) {
		j->batch_rows_cap = j->batch_rows_cap ? 2 * j->batch_rows_cap : 64;
		j->batch_rows = xrealloc(j->batch_rows, j->batch_rows_cap * sizeof(*j->batch_rows));
	}
	j->batch_rows[j->nbatch_rows++] = rowid;
}

int pg_commit_batch(struct journal *jj)
{
	return commit_batch(pg_of(jj));
}

void pg_set_batching(struct journal *jj, bool on)
{
	struct pg_journal *j = pg_of(jj);
	j->batching = on && !j->readonly;
}

uint64_t pg_batch_id(const struct journal *jj)
{
	return ((const struct pg_journal *)jj)->batch_id;
}

uint64_t pg_committed_id(const struct journal *jj)
{
	return ((const struct pg_journal *)jj)->committed_id;
}

uint64_t pg_losses(const struct journal *jj)
{
	return ((const struct pg_journal *)jj)->losses;
}

int64_t col_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int col_int(const PGresult *r, int row, int col)
{
	return (int)col_i64(r, row, col);
}

bool col_bool(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

const char *col_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

const char *col_text_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A bytea column's bytes (free with PQfreemem); "" for NULL. */
unsigned char *col_bytes(const PGresult *r, int row, int col, size_t *len)
{
	*len = 0;
	if (PQgetisnull(r, row, col))
		return NULL;
	return PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
}

int64_t cmd_tuples(PGresult *r)
{
	return strtoll(PQcmdTuples(r), NULL, 10);
}

/* ---- what the daemon watches ---- */

bool pg_up(struct journal *jj)
{
	return pg_of(jj)->conn != NULL;
}

int64_t pg_reconnect_lag_ms(struct journal *jj)
{
	return pg_of(jj)->reconnect_lag_ms;
}

int pg_reconnect_fd(struct journal *jj)
{
	struct pg_journal *j = pg_of(jj);
	return j->reconnect ? j->reconnect->wake[0] : -1;
}
