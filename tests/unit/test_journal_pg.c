/*
 * The PostgreSQL journal (journal_pg.c) against a real server: the one
 * HOOKD_TEST_PG names (a libpq connection string of a database the test
 * may create tables in; unset: the test says why and exits 77, skipped).
 * Each run works in a schema of its own (search_path), dropped at the end.
 *
 * Two handles with instance names "a" and "b" and a 200 ms lease stand for
 * two hookd instances: fencing, heartbeats, adoption, serialization keys
 * across instances, recovery, pruning by one instance, import, the
 * shared pending counts, the readers, and outages (a connection the
 * server ends; with HOOKD_TEST_PG_STOP and HOOKD_TEST_PG_START, shell
 * commands that stop and start the server, a real outage too).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"
#include "util.h"

#define T0 INT64_C(1700000000000) /* a fixed wall clock for the cases */
#define LEASE_MS 200

static const char *base_conninfo;
static char schema[32];
static PGconn *raw; /* the test's own connection, to look and to meddle */

/* The test's connection string with options added: key=value form or a
 * postgresql:// URL. */
static char *conninfo_with(const char *appname, const char *search_path)
{
	bool url = strncmp(base_conninfo, "postgres", 8) == 0 && strstr(base_conninfo, "://");
	if (url)
		return xasprintf("%s%sapplication_name=%s&options=-c%%20search_path%%3D%s",
		                 base_conninfo, strchr(base_conninfo, '?') ? "&" : "?", appname,
		                 search_path);
	return xasprintf("%s application_name=%s options='-c search_path=%s'", base_conninfo,
	                 appname, search_path);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static PGresult *sql(const char *q)
{
	PGresult *r = PQexec(raw, q);
	ExecStatusType st = PQresultStatus(r);
	CHECK(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", q,
	      PQresultErrorMessage(r));
	return r;
}

static void sql_do(const char *q)
{
	PQclear(sql(q));
}

/* The first column of the first row as a number (-1: none). */
static int64_t sql_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t sql_int(const char *fmt, ...)
{
	char q[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	PGresult *r = sql(q);
	int64_t v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
	                                                      : -1;
	PQclear(r);
	return v;
}

struct opts_ex {
	uint64_t body_max;
	int64_t keep_ms, max_rows;
};

static struct journal *open_as(const char *instance, const struct opts_ex *x, bool readonly,
                               const char *search_path)
{
	char app[128];
	snprintf(app, sizeof(app), "%s_%s", schema, instance);
	char *url = conninfo_with(app, search_path ? search_path : schema);
	struct journal_opts o = {
		.url = url,
		.instance = instance,
		.lease_ms = LEASE_MS,
		.body_max = x && x->body_max ? x->body_max : 1024,
		.keep_ms = x ? x->keep_ms : 0,
		.max_rows = x ? x->max_rows : 0,
	};
	char err[512] = "";
	struct journal *j = readonly ? journal_open_readonly(&o, err, sizeof(err))
	                             : journal_open(&o, err, sizeof(err));
	CHECK(j != NULL, "open %s: %s", instance, err);
	free(url);
	return j;
}

static const struct journal_header std_headers[] = {
	{"Content-Type", "application/json"},
	{"Authorization", "Bearer secret"}, /* a credential: never stored */
	{"X-Odd", "caf\xe9"},               /* not UTF-8: stored with a '?' */
};

static int64_t rec_key(struct journal *j, const char *endpoint, const char *id, bool async,
                       int64_t received_ms, const char *body, const char *key)
{
	struct journal_new d = {
		.endpoint = endpoint,
		.delivery_id = id,
		.event = "push",
		.remote_addr = "127.0.0.1",
		.async = async,
		.received_ms = received_ms,
		.headers = std_headers,
		.nheaders = ARRAY_SIZE(std_headers),
		.body = (const unsigned char *)body,
		.body_len = body ? strlen(body) : 0,
		.key = key,
	};
	return journal_record(j, &d);
}

static int64_t rec(struct journal *j, const char *endpoint, const char *id, bool async,
                   int64_t received_ms, const char *body)
{
	return rec_key(j, endpoint, id, async, received_ms, body, NULL);
}

static int finish(struct journal *j, int64_t rowid, int attempt, int http,
                  enum delivery_state st)
{
	static const struct journal_hook hooks[] = {
		{.hook = "10-log", .exit_code = 0, .ms = 3, .output = "out\n", .output_len = 4},
		{.hook = "20-fail", .exit_code = -1, .signal = "SIGKILL", .ms = 5,
		 .error = "timed out after 1s"},
	};
	struct journal_attempt a = {
		.attempt = attempt,
		.started_ms = T0 + attempt * 1000,
		.finished_ms = T0 + attempt * 1000 + 50,
		.http = http,
		.status = http >= 200 && http < 300 ? "ok" : "failed",
		.error = http >= 200 && http < 300 ? NULL : "exit 1",
		.hooks = hooks,
		.nhooks = ARRAY_SIZE(hooks),
	};
	return journal_attempt_finished(j, rowid, &a, st, st == DSTATE_RETRY_WAIT ? T0 + 99 : 0);
}

/* ---- readers' visitors ---- */

struct seen {
	int n;
	char ids[64][32];
	struct journal_entry e; /* journal_read's, strings copied below */
	char body[256];
	size_t body_kept;
	char headers[512];
	int attempts, hooks;
	char instance[32];
	bool replay[8];
	bool client_gone[8];
	char hook_out[32];
};

static bool see_row(const struct journal_row *r, void *arg)
{
	struct seen *s = arg;
	if (s->n < 64)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", r->delivery_id);
	s->n++;
	return true;
}

static bool see_entry(const struct journal_entry *e, void *arg)
{
	struct seen *s = arg;
	if (s->n < 64)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", e->delivery_id);
	s->n++;
	return true;
}

static void see_one(const struct journal_entry *e, void *arg)
{
	struct seen *s = arg;
	s->e = *e;
	s->body_kept = e->body_kept < sizeof(s->body) ? e->body_kept : sizeof(s->body) - 1;
	memcpy(s->body, e->body, s->body_kept);
	s->body[s->body_kept] = '\0';
	snprintf(s->headers, sizeof(s->headers), "%s", e->headers);
	s->e.endpoint = s->e.delivery_id = s->e.event = s->e.remote_addr = NULL;
	s->e.status = s->e.error = s->e.headers = NULL;
	s->e.body = NULL;
}

static void see_attempt(const struct journal_attempt *a, void *arg)
{
	struct seen *s = arg;
	if (s->attempts < 8)
		s->replay[s->attempts] = a->replay;
	if (s->attempts < 8)
		s->client_gone[s->attempts] = a->client_gone;
	s->attempts++;
	snprintf(s->instance, sizeof(s->instance), "%s", a->instance ? a->instance : "(null)");
}

static void see_hook(const struct journal_hook *h, void *arg)
{
	struct seen *s = arg;
	if (s->hooks++ == 0)
		snprintf(s->hook_out, sizeof(s->hook_out), "%.*s", (int)h->output_len,
		         h->output ? h->output : "");
}

static void see_endpoint(const char *endpoint, void *arg)
{
	struct seen *s = arg;
	if (s->n < 64)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", endpoint);
	s->n++;
}

static struct seen read_row(struct journal *j, int64_t rowid)
{
	struct seen s = {0};
	CHECK(journal_read(j, rowid, see_one, &s) == RESULT_OK, "read %lld", (long long)rowid);
	struct journal_attempt_visitor v = {see_attempt, see_hook, &s};
	CHECK(journal_read_attempts(j, rowid, &v) == RESULT_OK, "attempts %lld", (long long)rowid);
	return s;
}

/* ---- the cases ---- */

static void test_schema(void)
{
	CHECK(sql_int("SELECT version FROM %s.hookd_schema", schema) == 2, "schema version 2");
	struct journal *a = open_as("a", NULL, false, NULL);
	CHECK_STR(journal_backend_name(a), "postgresql", "name");
	CHECK(journal_shared(a) && journal_up(a), "shared and up");
	journal_close(a);
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_schema", schema) == 1, "one version row");

	/* A schema newer than this hookd: refused, read-only too. */
	char q[256];
	snprintf(q, sizeof(q), "UPDATE %s.hookd_schema SET version = 99", schema);
	sql_do(q);
	char app[128], err[512] = "";
	snprintf(app, sizeof(app), "%s_new", schema);
	char *url = conninfo_with(app, schema);
	struct journal_opts o = {.url = url, .instance = "a", .lease_ms = LEASE_MS, .body_max = 64};
	struct journal *j = journal_open(&o, err, sizeof(err));
	CHECK(j == NULL && strstr(err, "newer"), "newer schema refused: %s", err);
	journal_close(j);
	j = journal_open_readonly(&o, err, sizeof(err));
	CHECK(j == NULL && strstr(err, "newer"), "newer schema refused read-only: %s", err);
	journal_close(j);
	free(url);
	snprintf(q, sizeof(q), "UPDATE %s.hookd_schema SET version = 2", schema);
	sql_do(q);

	/* Read-only on a database hookd has not written: an empty journal. */
	char empty[80];
	snprintf(empty, sizeof(empty), "%s_empty", schema);
	snprintf(q, sizeof(q), "CREATE SCHEMA %s", empty);
	sql_do(q);
	struct journal *r = open_as("r", NULL, true, empty);
	if (r) {
		CHECK(journal_lookup(r, "e", "x", NULL, NULL, NULL) == RESULT_UNKNOWN, "empty lookup");
		struct seen s = {0};
		CHECK(journal_list(r, 0, false, see_entry, &s) == RESULT_OK && s.n == 0, "empty list");
		CHECK(journal_pending_count(r) == 0, "no pending");
		CHECK(journal_record(r, &(struct journal_new){.endpoint = "e", .delivery_id = "x",
		                                              .event = "p"}) == -1,
		      "read-only refuses writes");
	}
	journal_close(r);
	CHECK(sql_int("SELECT count(*) FROM pg_tables WHERE schemaname = '%s'", empty) == 0,
	      "read-only created nothing");
	snprintf(q, sizeof(q), "DROP SCHEMA %s", empty);
	sql_do(q);
}

/* Schema 1 (no client_gone): read as it is read-only (an older instance
 * may run on it), migrated by the next open; an attempt's sender that hung
 * up is recorded with its outcome, or after it (journal_client_gone). */
static void test_schema_1_client_gone(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	int64_t old = rec(a, "cg", "gone-old", false, T0, "{}");
	CHECK(finish(a, old, 1, 200, DSTATE_SUCCEEDED) == 0, "old finished");
	journal_close(a);
	char q[256];
	snprintf(q, sizeof(q),
	         "ALTER TABLE %s.hookd_attempts DROP COLUMN client_gone;"
	         " UPDATE %s.hookd_schema SET version = 1",
	         schema, schema);
	sql_do(q);
	struct journal *r = open_as("r", NULL, true, NULL);
	if (r) {
		struct seen s = read_row(r, old);
		CHECK(s.attempts == 1 && !s.client_gone[0], "schema 1 read-only: attempt unmarked");
		/* The list (journal export's) reads it as it is too. */
		struct journal_filter f = {.state = -1, .limit = 10};
		struct seen l = {0};
		CHECK(journal_query(r, &f, see_row, &l) == RESULT_OK && l.n == 1,
		      "schema 1 read-only: query, %d rows", l.n);
	}
	journal_close(r);
	a = open_as("a", NULL, false, NULL);
	CHECK(sql_int("SELECT version FROM %s.hookd_schema", schema) == 2, "migrated to 2");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_attempts WHERE delivery = %lld"
	              " AND NOT client_gone", schema, (long long)old) == 1, "old attempt unmarked");
	/* Known as the attempt ends: written with the outcome. */
	int64_t went = rec(a, "cg", "gone-went", false, T0 + 1, "{}");
	struct journal_attempt at = {
		.attempt = 1, .started_ms = T0 + 1, .finished_ms = T0 + 5, .http = 200,
		.status = "ok", .client_gone = true,
	};
	CHECK(journal_attempt_finished(a, went, &at, DSTATE_SUCCEEDED, 0) == 0, "finished, gone");
	struct seen s = read_row(a, went);
	CHECK(s.attempts == 1 && s.client_gone[0], "gone with the outcome");
	/* Learnt after it. */
	CHECK(journal_client_gone(a, old, 1) == 0, "marked later");
	s = read_row(a, old);
	CHECK(s.attempts == 1 && s.client_gone[0], "gone after the outcome");
	journal_close(a);
}

/* record, attempts, final states and the cutting of bodies. */
static void test_lifecycle(void)
{
	static const struct {
		const char *id;
		bool async;
		const char *body;
		enum delivery_state final;
		int http;
		bool want_cut;
	} cases[] = {
		{"sync-small", false, "0123456789", DSTATE_SUCCEEDED, 200, false},
		{"sync-big", false, "0123456789abcdefghij", DSTATE_SUCCEEDED, 200, true},
		{"async-big", true, "0123456789abcdefghij", DSTATE_FAILED, 500, true},
		{"async-skip", true, "0123456789", DSTATE_SKIPPED, 200, false},
	};
	struct opts_ex x = {.body_max = 12};
	struct journal *a = open_as("a", &x, false, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *id = cases[i].id;
		int64_t row = rec(a, "life", id, cases[i].async, T0 + (int64_t)i, cases[i].body);
		CHECK(row > 0, "%s: record", id);
		enum delivery_state st;
		int attempts = -1;
		int64_t got;
		CHECK(journal_lookup(a, "life", id, &st, &attempts, &got) == RESULT_OK, "%s", id);
		CHECK(got == row && attempts == 0, "%s: lookup", id);
		CHECK(st == (cases[i].async ? DSTATE_QUEUED : DSTATE_RUNNING), "%s: state %d", id, st);
		if (cases[i].async) {
			/* Whole while pending, whatever body_max says. */
			struct journal_pending p;
			CHECK(journal_get(a, row, &p) == RESULT_OK, "%s: get", id);
			CHECK(p.body_len == strlen(cases[i].body) && p.body_complete, "%s: whole", id);
			CHECK(p.nheaders == 2, "%s: headers %zu (credential left out)", id, p.nheaders);
			if (p.nheaders == 2)
				CHECK_STR(p.headers[1], "X-Odd: caf?", "%s: not UTF-8", id);
			journal_pending_free(&p);
			CHECK(journal_attempt_started(a, row, 1, T0 + 1000) == 0, "%s: started", id);
			CHECK(journal_lookup(a, "life", id, &st, NULL, NULL) == RESULT_OK &&
			              st == DSTATE_RUNNING,
			      "%s: running", id);
			CHECK(finish(a, row, 1, 503, DSTATE_RETRY_WAIT) == 0, "%s: retry", id);
			struct seen s = read_row(a, row);
			CHECK(s.e.state == DSTATE_RETRY_WAIT && s.e.next_due_ms == T0 + 99 && !s.e.body_cut,
			      "%s: retry_wait, whole", id);
			CHECK(journal_attempt_started(a, row, 2, T0 + 2000) == 0, "%s: started 2", id);
			CHECK(finish(a, row, 2, cases[i].http, cases[i].final) == 0, "%s: finish", id);
		} else {
			CHECK(journal_attempt_started(a, row, 1, T0 + 1000) == 0, "%s: started", id);
			CHECK(finish(a, row, 1, cases[i].http, cases[i].final) == 0, "%s: finish", id);
		}
		struct seen s = read_row(a, row);
		CHECK(s.e.state == cases[i].final, "%s: final %d", id, s.e.state);
		CHECK(s.e.http == cases[i].http, "%s: http", id);
		CHECK(s.e.attempts == (cases[i].async ? 2 : 1), "%s: attempts %d", id, s.e.attempts);
		CHECK(s.e.body_cut == cases[i].want_cut, "%s: cut", id);
		CHECK(s.body_kept == (cases[i].want_cut ? 12 : strlen(cases[i].body)), "%s: kept %zu",
		      id, s.body_kept);
		CHECK(s.e.body_len == (int64_t)strlen(cases[i].body), "%s: body_len", id);
		CHECK(!strstr(s.headers, "secret"), "%s: no credential", id);
		CHECK(s.attempts == (cases[i].async ? 2 : 1) && s.hooks == (cases[i].async ? 4 : 2),
		      "%s: %d attempts %d hooks", id, s.attempts, s.hooks);
		CHECK_STR(s.instance, "a", "%s: attempt's instance", id);
		CHECK_STR(s.hook_out, "out\n", "%s: hook output", id);
		/* Final: held by nobody; a write about it now is a lost one. */
		CHECK(finish(a, row, 3, 200, DSTATE_SUCCEEDED) == JOURNAL_LOST, "%s: final", id);
	}
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE owner IS NOT NULL"
	              " AND state >= 3", schema) == 0, "final rows have no owner");
	journal_close(a);
}

static void test_resend_and_conflict(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t row = rec(a, "re", "r1", false, T0, "x");
	CHECK(finish(a, row, 1, 500, DSTATE_FAILED) == 0, "failed");
	/* The sender's resend lands on b: updated in place. */
	int64_t again = rec(b, "re", "r1", false, T0 + 5000, "y");
	CHECK(again == row, "resend keeps the row (%lld, %lld)", (long long)again, (long long)row);
	struct seen s = read_row(b, row);
	CHECK(s.e.state == DSTATE_RUNNING && s.e.attempts == 1 && s.e.run_attempt == 2,
	      "resend: running attempt 2 (%d %d %d)", s.e.state, s.e.attempts, s.e.run_attempt);
	CHECK(s.e.received_ms == T0, "first receipt kept");
	CHECK_STR(s.body, "y", "body replaced");
	/* a no longer holds it. */
	CHECK(finish(a, row, 2, 200, DSTATE_SUCCEEDED) == JOURNAL_LOST, "a lost it");
	CHECK(finish(b, row, 2, 200, DSTATE_SUCCEEDED) == 0, "b finishes");

	/* Recorded by another instance since the caller's lookup: pending or
	 * final, the write is lost. */
	int64_t p = rec(a, "re", "r2", true, T0, "x");
	CHECK(p > 0, "record");
	struct journal_new d = {.endpoint = "re", .delivery_id = "r2", .event = "push",
	                        .async = true, .received_ms = T0, .known_new = true};
	CHECK(journal_record(b, &d) == JOURNAL_LOST, "pending elsewhere: lost");
	d.delivery_id = "r1";
	CHECK(journal_record(b, &d) == JOURNAL_LOST, "succeeded elsewhere: lost");
	CHECK(finish(a, p, 1, 200, DSTATE_SUCCEEDED) == 0, "a still holds r2");
	journal_close(a);
	journal_close(b);
}

static void test_fencing(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t row = rec(a, "fence", "f1", true, T0, "x");
	CHECK(journal_attempt_started(a, row, 1, T0 + 1000) == 0, "a starts");
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 0, "lease alive: nothing to adopt");
	free(list);
	sleep_ms(LEASE_MS + 100);
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "b adopts (%zu)", n);
	if (n == 1) {
		CHECK(list[0].rowid == row && list[0].state == DSTATE_QUEUED && !list[0].body,
		      "adopted: queued, no body");
		CHECK(list[0].attempts == 1, "the run a had under way counts (%d)", list[0].attempts);
	}
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == JOURNAL_LOST, "a's outcome is lost");
	struct seen s = read_row(b, row);
	CHECK(s.attempts == 1 && s.hooks == 0, "a wrote nothing (%d attempts, %d hooks)", s.attempts,
	      s.hooks);
	CHECK(s.e.state == DSTATE_QUEUED, "still queued");
	CHECK(journal_attempt_started(a, row, 2, T0) == JOURNAL_LOST, "a cannot start it");
	/* b's own lease ran out in the sleep too: its ticks would renew it. */
	CHECK(journal_heartbeat(b) == 0, "b renews its lease");
	CHECK(journal_attempt_started(b, row, 2, T0 + 2000) == 0, "b starts attempt 2");
	CHECK(finish(b, row, 2, 200, DSTATE_SUCCEEDED) == 0, "b finishes");

	/* The heartbeat keeps a's lease. */
	int64_t kept = rec(a, "fence", "f2", true, T0, "x");
	for (int i = 0; i < 6; i++) {
		sleep_ms(LEASE_MS / 3);
		CHECK(journal_heartbeat(a) == 0, "heartbeat");
	}
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 0, "renewed: not adopted (%zu)", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(finish(a, kept, 1, 200, DSTATE_SUCCEEDED) == 0, "a still holds it");
	journal_close(a);
	journal_close(b);
}

static void test_take_turn(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t r1 = rec_key(a, "turn", "t1", false, T0, "1", "k");
	int64_t r2 = rec_key(a, "turn", "t2", true, T0 + 1, "2", "k");
	int64_t r3 = rec_key(b, "turn", "t3", false, T0 + 2, "3", "k");
	int64_t other = rec_key(b, "turn", "o1", false, T0 + 3, "o", "other");
	enum delivery_state st;
	CHECK(journal_lookup(a, "turn", "t1", &st, NULL, NULL) == RESULT_OK && st == DSTATE_QUEUED,
	      "a keyed sync delivery is recorded queued");
	const struct {
		char who;
		int64_t *row;
		int want;
		const char *why;
	} steps[] = {
		/* Only behind one this instance holds: its line here may not be
		 * in the journal's order, so dispatch.c asks for the others. */
		{'a', &r2, JOURNAL_TURN_HERE, "t1, held here, waits before t2"},
		{'b', &r3, RESULT_PENDING, "t1, t2 (a's) wait before t3"},
		{'b', &other, RESULT_OK, "another key runs at once"},
		{'a', &r1, RESULT_OK, "t1 first"},
		{'a', &r2, RESULT_PENDING, "t1 runs"},
		{'b', &r3, RESULT_PENDING, "t1 runs, whoever holds what waits"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		struct journal *j = steps[i].who == 'a' ? a : b;
		int got = journal_take_turn(j, *steps[i].row, *steps[i].row == other ? "other" : "k", 1,
		                            T0 + 10);
		CHECK(got == steps[i].want, "%s: got %d", steps[i].why, got);
	}
	CHECK(finish(a, r1, 1, 200, DSTATE_SUCCEEDED) == 0, "t1 done");
	CHECK(journal_take_turn(b, r3, "k", 1, T0) == RESULT_PENDING, "t2 before t3");
	CHECK(journal_take_turn(a, r2, "k", 1, T0) == RESULT_OK, "t2's turn");
	CHECK(journal_take_turn(b, r3, "k", 1, T0) == RESULT_PENDING, "t2 runs");
	CHECK(finish(a, r2, 1, 200, DSTATE_SUCCEEDED) == 0, "t2 done");
	CHECK(journal_take_turn(a, r3, "k", 1, T0) == JOURNAL_LOST, "a does not hold t3");
	CHECK(journal_take_turn(b, r3, "k", 1, T0) == RESULT_OK, "t3's turn");
	CHECK(journal_attempt_started(b, r3, 1, T0) == 0, "already running");
	CHECK(finish(b, r3, 1, 200, DSTATE_SUCCEEDED) == 0, "t3 done");
	CHECK(finish(b, other, 1, 200, DSTATE_SUCCEEDED) == 0, "other done");
	journal_close(a);
	journal_close(b);
}

struct adopter {
	struct journal *j;
	int64_t got[64];
	size_t n;
};

static void *adopt_loop(void *arg)
{
	struct adopter *ad = arg;
	for (int round = 0; round < 50; round++) {
		struct journal_pending *list;
		size_t n;
		if (journal_adopt(ad->j, 3, &list, &n) < 0)
			break;
		for (size_t i = 0; i < n; i++) {
			if (ad->n < ARRAY_SIZE(ad->got))
				ad->got[ad->n++] = list[i].rowid;
			journal_pending_free(&list[i]);
		}
		free(list);
		if (n == 0 && round > 5)
			break;
	}
	return NULL;
}

static void test_adopt_once(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	enum { ROWS = 30 };
	int64_t rows[ROWS];
	for (int i = 0; i < ROWS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "ad%d", i);
		rows[i] = rec(a, "adopt", id, true, T0 + i, "x");
	}
	/* a dies: its handle is closed without a word. */
	journal_close(a);
	sleep_ms(LEASE_MS + 100);
	struct adopter b = {.j = open_as("b", NULL, false, NULL)};
	struct adopter c = {.j = open_as("c", NULL, false, NULL)};
	pthread_t tb, tc;
	pthread_create(&tb, NULL, adopt_loop, &b);
	pthread_create(&tc, NULL, adopt_loop, &c);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	CHECK(b.n + c.n == ROWS, "every row adopted once: %zu + %zu", b.n, c.n);
	for (int i = 0; i < ROWS; i++) {
		int times = 0;
		for (size_t k = 0; k < b.n; k++)
			times += b.got[k] == rows[i];
		for (size_t k = 0; k < c.n; k++)
			times += c.got[k] == rows[i];
		CHECK(times == 1, "row %d taken %d times", i, times);
	}
	for (size_t k = 0; k < b.n; k++)
		CHECK(finish(b.j, b.got[k], 1, 200, DSTATE_SUCCEEDED) == 0, "b holds its rows");
	for (size_t k = 0; k < c.n; k++)
		CHECK(finish(c.j, c.got[k], 1, 200, DSTATE_SUCCEEDED) == 0, "c holds its rows");
	journal_close(b.j);
	journal_close(c.j);
}

/*
 * A steal takes up to max rows: a row this instance still has a fence for
 * (taken from it; its old job still waits here) is not taken back, and
 * must not use up one of the max either, or a tick with one free slot
 * takes nothing while another row waits. The rows are from long before
 * the other cases' (queued_before), so that only these two qualify.
 */
static void test_steal_limit_counts_only_takeable_rows(void)
{
	const int64_t long_ago = T0 - INT64_C(1000000000);
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t held = rec(a, "steal", "held-here", true, long_ago, "x");
	int64_t waiting = rec(b, "steal", "waiting", true, long_ago + 1, "y");
	char q[256];
	snprintf(q, sizeof(q), "UPDATE hookd_deliveries SET owner = 'b', fence = fence + 1"
	         " WHERE id = %lld", (long long)held);
	sql_do(q); /* b took it from a, whose job for it still waits */
	struct journal_pending *v = NULL;
	size_t n = 0;
	CHECK(journal_steal(a, 1, long_ago + 10, &v, &n) == 0, "steal");
	CHECK(n == 1 && v[0].rowid == waiting, "the waiting row taken: %zu rows, first %lld", n,
	      n ? (long long)v[0].rowid : 0LL);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&v[i]);
	free(v);
	snprintf(q, sizeof(q), "UPDATE hookd_deliveries SET state = 3, owner = NULL"
	         " WHERE id IN (%lld, %lld)", (long long)held, (long long)waiting);
	sql_do(q);
	journal_close(a);
	journal_close(b);
}

static void test_recover(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t run = rec(a, "rec", "running", true, T0 + 2, "r");
	CHECK(journal_attempt_started(a, run, 1, T0 + 100) == 0, "started");
	int64_t queued = rec(a, "rec", "queued", true, T0 + 1, "q");
	int64_t sync = rec(a, "rec", "sync", false, T0 + 3, "s");
	int64_t bs = rec(b, "rec", "b's", true, T0, "b");
	journal_close(a);
	/* a again (same name): its own rows, at once, without waiting for the
	 * lease; b's, alive, stay b's. */
	a = open_as("a", NULL, false, NULL);
	struct journal_pending *list;
	size_t n;
	CHECK(journal_recover(a, &list, &n) == 0 && n == 2, "recover: %zu", n);
	if (n == 2) {
		CHECK(list[0].rowid == queued && list[1].rowid == run, "arrival order");
		CHECK(list[1].state == DSTATE_QUEUED && list[1].attempts == 1, "run counted");
		CHECK(list[0].attempts == 0, "queued untouched");
	}
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	struct seen s = read_row(a, run);
	CHECK(s.attempts == 1 && s.e.http == 0, "interrupted attempt");
	CHECK_STR(s.instance, "a", "who ran it");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_attempts WHERE delivery = %lld AND"
	              " status = 'interrupted' AND finished_ms IS NULL", schema, (long long)run) == 1,
	      "recorded interrupted");
	s = read_row(a, sync);
	CHECK(s.e.state == DSTATE_FAILED && s.e.attempts == 1, "sync failed (%d, %d)", s.e.state,
	      s.e.attempts);
	CHECK(finish(a, run, 2, 200, DSTATE_SUCCEEDED) == 0, "a holds it again");
	CHECK(finish(a, queued, 1, 200, DSTATE_SUCCEEDED) == 0, "and this");
	CHECK(finish(b, bs, 1, 200, DSTATE_SUCCEEDED) == 0, "b kept its own");
	journal_close(a);
	journal_close(b);
}

static void test_requeue_hand_over(void)
{
	struct opts_ex x = {.body_max = 4};
	struct journal *a = open_as("a", &x, false, NULL);
	struct journal *b = open_as("b", &x, false, NULL);
	int64_t row = rec(a, "rq", "q1", true, T0, "abc");
	CHECK(journal_requeue(b, row) == RESULT_PENDING, "pending");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	CHECK(journal_requeue(b, row) == RESULT_OK, "requeued by b");
	CHECK(journal_requeue(b, 999999) == RESULT_UNKNOWN, "unknown");
	CHECK(finish(a, row, 2, 200, DSTATE_SUCCEEDED) == JOURNAL_LOST, "b holds it now");
	CHECK(journal_attempt_started(b, row, 2, T0) == 0 && finish(b, row, 2, 200,
	                                                              DSTATE_SUCCEEDED) == 0,
	      "b runs the replay");
	struct seen s = read_row(b, row);
	CHECK(s.attempts == 2 && !s.replay[0] && s.replay[1], "attempt 2 was the replay");
	int64_t cut = rec(a, "rq", "q2", false, T0, "0123456789");
	CHECK(finish(a, cut, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	CHECK(journal_requeue(a, cut) == RESULT_BODY_CUT, "cut");

	/* A sync delivery goes on as an async one, with its whole body. */
	int64_t before = journal_pending_count(a);
	int64_t h = rec(a, "rq", "h1", false, T0, "0123456789");
	CHECK(journal_hand_over(b, h, false, (const unsigned char *)"0123456789", 10) == JOURNAL_LOST,
	      "b does not hold it");
	CHECK(journal_hand_over(a, h, false, (const unsigned char *)"0123456789", 10) == 0,
	      "hand over");
	CHECK(journal_pending_count(a) == before + 1, "counted pending");
	struct journal_pending p;
	CHECK(journal_get(a, h, &p) == RESULT_OK && p.body_len == 10 && p.body_complete &&
	              p.state == DSTATE_QUEUED,
	      "queued with its whole body");
	journal_pending_free(&p);
	CHECK(journal_hand_over(a, h, false, NULL, 0) == -1, "not a sync one any more");
	CHECK(finish(a, h, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	journal_close(a);
	journal_close(b);
}

static void test_counts(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t c0 = journal_pending_count(a), b0 = journal_pending_bytes(a);
	int64_t r1 = rec(a, "cnt", "c1", true, T0, "12345");
	int64_t r2 = rec(a, "cnt", "c2", false, T0, "12345"); /* sync: not counted */
	CHECK(journal_pending_count(a) == c0 + 1 && journal_pending_bytes(a) == b0 + 5,
	      "own write counted at once");
	int64_t r3 = rec(b, "cnt", "c3", true, T0, "123");
	sleep_ms(300);
	CHECK(journal_pending_count(a) == c0 + 2 && journal_pending_bytes(a) == b0 + 8,
	      "b's counted within 250 ms (%lld)", (long long)journal_pending_count(a));
	CHECK(finish(a, r1, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	CHECK(journal_pending_count(a) == c0 + 1, "own final at once");
	CHECK(finish(b, r3, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	CHECK(finish(a, r2, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	journal_close(a);
	journal_close(b);
}

static void test_readers(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	int64_t base = T0 + 1000000;
	static const struct {
		const char *endpoint, *id, *event, *body;
		int http;
		enum delivery_state st;
	} rows[] = {
		{"gh", "x1", "push", "hello world", 200, DSTATE_SUCCEEDED},
		{"gh", "x2", "pull_request", "goodbye", 500, DSTATE_FAILED},
		{"gl", "x1", "push.tag", "hello again", 200, DSTATE_SUCCEEDED},
		{"gl", "x3", "issue", "nothing", 503, DSTATE_RETRY_WAIT},
	};
	int64_t ids[ARRAY_SIZE(rows)];
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		struct journal_new d = {.endpoint = rows[i].endpoint, .delivery_id = rows[i].id,
		                        .event = rows[i].event, .async = true,
		                        .received_ms = base + (int64_t)i,
		                        .body = (const unsigned char *)rows[i].body,
		                        .body_len = strlen(rows[i].body)};
		ids[i] = journal_record(a, &d);
		CHECK(ids[i] > 0 && finish(a, ids[i], 1, rows[i].http, rows[i].st) == 0, "row %zu", i);
	}
	static const struct {
		struct journal_filter f;
		const char *want; /* ids newest first */
	} queries[] = {
		{{.state = -1}, "x3 x1 x2 x1"},
		{{.state = DSTATE_SUCCEEDED}, "x1 x1"},
		{{.state = -1, .endpoint = "gh"}, "x2 x1"},
		{{.state = -1, .event_glob = "push*"}, "x1 x1"},
		{{.state = -1, .event_glob = "pu?h"}, "x1"},
		{{.state = -1, .event_glob = "[ip]*"}, "x3 x1 x2 x1"},
		{{.state = -1, .event_glob = "[^p]*"}, "x3"},
		{{.state = -1, .event_glob = "push.tag"}, "x1"},
		{{.state = -1, .event_glob = "push.ta"}, ""},
		{{.state = -1, .text = "hello"}, "x1 x1"},
		{{.state = -1, .text = "bye"}, "x2"},
		{{.state = -1, .limit = 2}, "x3 x1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(queries); i++) {
		struct journal_filter f = queries[i].f;
		f.since_ms = base;
		struct seen s = {0};
		CHECK(journal_query(a, &f, see_row, &s) == RESULT_OK, "query %zu", i);
		char got[256] = "";
		for (int k = 0; k < s.n && k < 64; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "",
			         s.ids[k]);
		CHECK_STR(got, queries[i].want, "query %zu", i);
	}
	/* The cursor: below (received_ms, rowid) of the second row. */
	struct journal_filter f = {.state = -1, .since_ms = base, .before_ms = base + 2,
	                           .before_rowid = ids[2]};
	struct seen s = {0};
	CHECK(journal_query(a, &f, see_row, &s) == RESULT_OK && s.n == 2, "cursor: %d", s.n);

	s = (struct seen){0};
	CHECK(journal_list(a, base, false, see_entry, &s) == RESULT_OK && s.n == 4, "list %d", s.n);
	s = (struct seen){0};
	CHECK(journal_list(a, base, true, see_entry, &s) == RESULT_OK && s.n == 2, "failed %d", s.n);
	s = (struct seen){0};
	CHECK(journal_endpoints_of(a, "x1", see_endpoint, &s) == RESULT_OK && s.n == 2, "of x1");
	CHECK_STR(s.ids[0], "gh", "name order");
	int64_t found;
	CHECK(journal_find(a, NULL, "x1", &found) == RESULT_AMBIGUOUS, "ambiguous");
	CHECK(journal_find(a, "gl", "x1", &found) == RESULT_OK && found == ids[2], "find");
	CHECK(journal_find(a, NULL, "nope", &found) == RESULT_UNKNOWN, "unknown");
	CHECK(journal_read(a, 999999, see_one, &s) == RESULT_UNKNOWN, "read unknown");
	CHECK(finish(a, ids[3], 2, 200, DSTATE_SUCCEEDED) == 0, "done");

	/* A reader beside the writer. */
	struct journal *r = open_as("r", NULL, true, NULL);
	s = (struct seen){0};
	CHECK(r && journal_list(r, base, false, see_entry, &s) == RESULT_OK && s.n == 4,
	      "read-only list");
	journal_close(r);
	journal_close(a);
}

static void test_prune(void)
{
	struct opts_ex x = {.keep_ms = 1000, .max_rows = 0};
	struct journal *a = open_as("a", &x, false, NULL);
	struct journal *b = open_as("b", &x, false, NULL);
	int64_t old = T0 - 100000000;
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof(id), "old%d", i);
		int64_t row = rec(a, "prune", id, true, old + i, "x");
		CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "final");
	}
	int64_t pending = rec(a, "prune", "oldpending", true, old, "x");
	/* Another instance prunes now (it holds the lock): this one skips. */
	sql_do("BEGIN");
	sql_do("SELECT pg_advisory_xact_lock(29395921911676930)"); /* LOCK_PRUNE */
	CHECK(journal_prune(b, T0) == 0, "one instance at a time");
	sql_do("ROLLBACK");
	CHECK(journal_prune(b, T0) == 5, "the old final ones");
	CHECK(journal_lookup(a, "prune", "oldpending", NULL, NULL, NULL) == RESULT_OK,
	      "pending kept");
	CHECK(finish(a, pending, 1, 200, DSTATE_SUCCEEDED) == 0, "done");
	journal_close(a);
	journal_close(b);

	/* max_rows: the oldest final ones past it. */
	int64_t total = sql_int("SELECT count(*) FROM %s.hookd_deliveries", schema);
	struct opts_ex m = {.max_rows = total - 3};
	a = open_as("a", &m, false, NULL);
	CHECK(journal_prune(a, T0) == 3, "down to max_rows");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries", schema) == total - 3, "count");
	journal_close(a);
}

static void test_import(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	static const struct journal_hook hooks[] = {
		{.hook = "h", .exit_code = 0, .ms = 1, .output = "o", .output_len = 1}};
	struct journal_attempt at[] = {
		{.attempt = 1, .started_ms = T0, .finished_ms = T0 + 5, .http = 503, .status = "failed",
		 .error = "exit 75", .instance = "old", .hooks = hooks, .nhooks = 1},
	};
	struct journal_entry done = {.endpoint = "imp", .delivery_id = "i1", .event = "push",
	                             .remote_addr = "10.0.0.1", .state = DSTATE_SUCCEEDED,
	                             .http = 200, .attempts = 1, .received_ms = T0,
	                             .updated_ms = T0 + 5, .status = "ok", .headers = "A: b\n",
	                             .body = (const unsigned char *)"body", .body_kept = 4,
	                             .body_len = 4, .async = true};
	CHECK(journal_import(a, &done, at, 1) == RESULT_OK, "import");
	CHECK(journal_import(b, &done, at, 1) == RESULT_PENDING, "there already");
	int64_t row;
	CHECK(journal_find(a, "imp", "i1", &row) == RESULT_OK, "found");
	struct seen s = read_row(b, row);
	CHECK(s.e.state == DSTATE_SUCCEEDED && s.attempts == 1 && s.hooks == 1, "as it was");
	CHECK_STR(s.instance, "old", "the attempt's instance kept");
	CHECK_STR(s.body, "body", "body");

	struct journal_entry waiting = done;
	waiting.delivery_id = "i2";
	waiting.state = DSTATE_RETRY_WAIT;
	CHECK(journal_import(a, &waiting, at, 1) == RESULT_OK, "import pending");
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "some instance adopts it (%zu)", n);
	if (n == 1) {
		CHECK(list[0].state == DSTATE_QUEUED && list[0].attempts == 1, "queued");
		CHECK(finish(b, list[0].rowid, 2, 200, DSTATE_SUCCEEDED) == 0, "b runs it");
	}
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	journal_close(a);
	journal_close(b);
}

/* Ends the journal's connection from the server's side. */
static void terminate(const char *instance)
{
	char q[256];
	snprintf(q, sizeof(q),
	         "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
	         " WHERE application_name = '%s_%s'",
	         schema, instance);
	CHECK(sql_int("%s", q) == 1, "terminated %s", instance);
}

/* Down, after the backoff: heartbeats until the reconnect, which runs
 * without them, is through. No call may wait for it. */
static bool reconnect(struct journal *j)
{
	for (int i = 0; i < 600; i++) {
		int64_t t = now_mono_ms();
		int rc = journal_heartbeat(j);
		CHECK(now_mono_ms() - t < 100, "a heartbeat while reconnecting does not wait");
		if (rc == 0 && journal_up(j))
			return true;
		sleep_ms(10);
	}
	return false;
}

static void test_outage(void)
{
	/* Nothing listens there: open fails, saying where, not the string. */
	struct journal_opts o = {.url = "host=127.0.0.1 port=1 user=someone dbname=nowhere",
	                         .instance = "a", .lease_ms = LEASE_MS, .body_max = 64};
	char err[512] = "";
	struct journal *j = journal_open(&o, err, sizeof(err));
	CHECK(j == NULL, "open fails");
	CHECK(strstr(err, "127.0.0.1:1/nowhere") != NULL, "says where: %s", err);
	CHECK(strstr(err, "host=") == NULL, "not the connection string: %s", err);
	journal_close(j);

	struct journal *a = open_as("a", NULL, false, NULL);
	int64_t row = rec(a, "out", "o1", true, T0, "x");
	terminate("a");
	CHECK(rec(a, "out", "o2", true, T0, "x") == -1, "the call that finds it broken fails");
	CHECK(!journal_up(a), "down");
	int64_t t = now_mono_ms();
	enum result lr = journal_lookup(a, "out", "o1", NULL, NULL, NULL);
	CHECK(lr == RESULT_ERROR && now_mono_ms() - t < 50, "fails at once while down");
	/* (The delivery stays this instance's, whatever the outcome not
	 * written: test_unwritten_outcome_stays_held.) */
	CHECK(finish(a, row, 1, 503, DSTATE_RETRY_WAIT) == -1, "writes fail");
	sleep_ms(300);
	CHECK(reconnect(a), "the heartbeat reconnects");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "the lease held: a finishes it");
	CHECK(journal_lookup(a, "out", "o2", NULL, NULL, NULL) == RESULT_UNKNOWN,
	      "the failed write left nothing");

	/* A real outage, when the test may stop and start the server. */
	const char *stop = getenv("HOOKD_TEST_PG_STOP"), *start = getenv("HOOKD_TEST_PG_START");
	if (stop && start) {
		int64_t r2 = rec(a, "out", "o3", true, T0, "x");
		PQfinish(raw);
		raw = NULL;
		CHECK(system(stop) == 0, "stop: %s", stop);
		CHECK(finish(a, r2, 1, 503, DSTATE_RETRY_WAIT) == -1, "server down: fails");
		CHECK(!journal_up(a), "down");
		sleep_ms(300);
		CHECK(journal_heartbeat(a) == -1 && !journal_up(a), "still down");
		CHECK(system(start) == 0, "start: %s", start);
		bool up = false;
		for (int i = 0; i < 100 && !up; i++) {
			sleep_ms(100);
			up = reconnect(a);
		}
		CHECK(up && journal_up(a), "reconnected after the restart");
		CHECK(finish(a, r2, 1, 200, DSTATE_SUCCEEDED) == 0, "and finishes it");
		char *ci = conninfo_with(schema, schema);
		raw = PQconnectdb(ci);
		free(ci);
		CHECK(PQstatus(raw) == CONNECTION_OK, "test connection again");
		sql_do("SET client_min_messages = warning");
	} else {
		printf("test_journal_pg: HOOKD_TEST_PG_STOP/START unset: no server restart\n");
	}
	journal_close(a);
}

/* The server process of an instance's connection (-1: none). */
static int64_t backend_of(const char *instance)
{
	return sql_int("SELECT max(pid) FROM pg_stat_activity WHERE application_name = '%s_%s'",
	               schema, instance);
}

/* A delivery's way through the statements that are prepared (lookup,
 * record, start, outcome with its hooks, a turn, the counts): whether each
 * step worked. */
static bool one_delivery(struct journal *j, const char *id, const char *keyed_id)
{
	int64_t row = rec(j, "prep", id, true, T0, "x");
	int64_t keyed = rec_key(j, "prep", keyed_id, true, T0, "y", "prep-key");
	int64_t pending = journal_pending_count(j);
	return row > 0 && keyed > 0 && pending >= 2 &&
	       journal_lookup(j, "prep", id, NULL, NULL, NULL) == RESULT_OK &&
	       journal_attempt_started(j, row, 1, T0 + 1000) == 0 &&
	       finish(j, row, 1, 200, DSTATE_SUCCEEDED) == 0 &&
	       journal_take_turn(j, keyed, "prep-key", 1, T0 + 1000) == RESULT_OK &&
	       finish(j, keyed, 1, 200, DSTATE_SUCCEEDED) == 0;
}

/* The hot statements are prepared once a connection (journal_pg_statements.c).
 * A reconnect is a new session, which has none: they are prepared again
 * there before use. A prepare that fails fails the call as a statement
 * would, the journal still up, and is tried again at the next call. */
static void test_prepared_again_after_reconnect(void)
{
	struct journal *a = open_as("prep", NULL, false, NULL);
	CHECK(one_delivery(a, "p1", "k1"), "every step on the first connection");
	int64_t before = backend_of("prep");
	terminate("prep");
	CHECK(rec(a, "prep", "p2", true, T0, "x") == -1, "the call that finds it broken fails");
	sleep_ms(300);
	CHECK(reconnect(a), "the heartbeat reconnects (the lease's statement prepared again)");
	int64_t after = backend_of("prep");
	CHECK(after > 0 && after != before, "a new session (%lld, was %lld)", (long long)after,
	      (long long)before);
	CHECK(one_delivery(a, "p3", "k3"), "every step again on the new connection");

	/* On a new session again, nothing prepared but the lease's: the
	 * hooks' statement cannot be prepared while its table is away. */
	terminate("prep");
	CHECK(journal_heartbeat(a) == -1 && !journal_up(a), "down");
	sleep_ms(300);
	CHECK(reconnect(a), "reconnected");
	int64_t row = rec(a, "prep", "p4", true, T0, "x");
	CHECK(row > 0 && journal_attempt_started(a, row, 1, T0 + 1000) == 0, "p4 runs");
	sql_do("ALTER TABLE hookd_hook_runs RENAME TO hookd_hook_runs_away");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == -1, "the prepare fails: the call fails");
	sql_do("ALTER TABLE hookd_hook_runs_away RENAME TO hookd_hook_runs");
	CHECK(journal_up(a), "a failed prepare is not an outage");
	CHECK(sql_int("SELECT state FROM hookd_deliveries WHERE id = %lld", (long long)row) ==
	              DSTATE_RUNNING,
	      "its transaction rolled back");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "prepared at the next call");
	struct seen s = read_row(a, row);
	CHECK(s.e.state == DSTATE_SUCCEEDED && s.attempts == 1 && s.hooks == 2,
	      "written once, hooks and all (%d, %d attempts, %d hooks)", s.e.state, s.attempts,
	      s.hooks);

	/* A statement whose plan no longer fits the table (another hookd
	 * changed a column: "cached plan must not change result type") fails
	 * once, and is prepared again at the next call. */
	enum delivery_state st;
	int64_t found;
	CHECK(journal_lookup(a, "prep", "p4", &st, NULL, &found) == RESULT_OK, "looked up");
	sql_do("ALTER TABLE hookd_deliveries ALTER COLUMN attempts TYPE bigint");
	CHECK(journal_lookup(a, "prep", "p4", &st, NULL, &found) == RESULT_ERROR,
	      "the plan no longer fits");
	CHECK(journal_lookup(a, "prep", "p4", &st, NULL, &found) == RESULT_OK && found == row,
	      "prepared again");
	sql_do("ALTER TABLE hookd_deliveries ALTER COLUMN attempts TYPE integer");
	journal_close(a);
}

/* A delivery whose row has no key yet (imported, or recorded before its
 * endpoint had serialize) holds its key once it runs: no other instance
 * starts one with the same key meanwhile. */
static void test_turn_key_taken_at_run(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	struct journal_entry old = {.endpoint = "tk", .delivery_id = "tk1", .event = "push",
	                            .remote_addr = "", .state = DSTATE_QUEUED, .received_ms = T0,
	                            .updated_ms = T0, .headers = "", .async = true,
	                            .body = (const unsigned char *)"x", .body_kept = 1,
	                            .body_len = 1};
	CHECK(journal_import(a, &old, NULL, 0) == RESULT_OK, "import a pending one");
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "b adopts it (%zu)", n);
	int64_t imported = n == 1 ? list[0].rowid : 0;
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(journal_take_turn(b, imported, "k", 1, T0 + 10) == RESULT_OK, "b runs it with key k");
	int64_t later = rec_key(a, "tk", "tk2", true, T0 + 20, "y", "k");
	CHECK(journal_take_turn(a, later, "k", 1, T0 + 30) == RESULT_PENDING,
	      "a waits: k runs on b");
	CHECK(finish(b, imported, 1, 200, DSTATE_SUCCEEDED) == 0, "b done");
	CHECK(journal_take_turn(a, later, "k", 1, T0 + 40) == RESULT_OK, "then a's turn");
	CHECK(finish(a, later, 1, 200, DSTATE_SUCCEEDED) == 0, "a done");
	journal_close(a);
	journal_close(b);
}

/* A resend of a failed delivery goes behind the same key's deliveries that
 * came meanwhile, as its local line would put it: its row keeps its id,
 * but takes a new place in the key's line. */
static void test_resend_goes_behind(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	int64_t x = rec_key(a, "ord", "x", false, T0, "x", "k");
	CHECK(journal_take_turn(a, x, "k", 1, T0 + 1) == RESULT_OK, "x runs");
	CHECK(finish(a, x, 1, 500, DSTATE_FAILED) == 0, "x failed");
	int64_t z = rec_key(a, "ord", "z", true, T0 + 10, "z", "k");
	CHECK(rec_key(a, "ord", "x", false, T0 + 20, "x", "k") == x, "x resent: the same row");
	CHECK(journal_take_turn(a, z, "k", 1, T0 + 30) == RESULT_OK, "z came first: its turn");
	CHECK(journal_take_turn(a, x, "k", 2, T0 + 31) == RESULT_PENDING, "x waits behind z");
	CHECK(finish(a, z, 1, 200, DSTATE_SUCCEEDED) == 0, "z done");
	CHECK(journal_take_turn(a, x, "k", 2, T0 + 40) == RESULT_OK, "then x");
	CHECK(finish(a, x, 2, 200, DSTATE_SUCCEEDED) == 0, "x done");
	journal_close(a);
}

/* A final outcome that could not be written (the journal went down as the
 * run ended) stays held by the instance: the dispatcher keeps it (outbox.h)
 * and writes it once the journal is back. Meanwhile no other instance
 * takes the delivery over while the writer lives and renews its lease, and
 * the late write goes through: the fence is still this instance's. */
static void test_unwritten_outcome_stays_held(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t row = rec(a, "unw", "u1", true, T0, "x");
	CHECK(journal_attempt_started(a, row, 1, T0 + 1000) == 0, "a starts u1");
	terminate("a");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == -1, "its outcome cannot be written");
	sleep_ms(300);
	CHECK(reconnect(a), "a reconnects");
	for (int i = 0; i < 6; i++) {
		sleep_ms(LEASE_MS / 3);
		CHECK(journal_heartbeat(a) == 0, "a's heartbeat");
	}
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 0, "b takes nothing of a's (%zu)", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE id = %lld AND owner = 'a'"
	              " AND state = 1", schema, (long long)row) == 1,
	      "still a's, running");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "written later: the fence held");
	struct seen s = read_row(a, row);
	CHECK(s.e.state == DSTATE_SUCCEEDED && s.attempts == 1 && s.hooks == 2,
	      "one attempt, as it ran (%d, %d attempts, %d hooks)", s.e.state, s.attempts, s.hooks);
	journal_close(a);
	journal_close(b);
}

/* An instance whose lease ran out (paused, or cut off) starts nothing it
 * still holds until its heartbeat renews the lease: another instance may
 * adopt the row at any moment, and would run it a second time, alongside.
 * Adopted meanwhile, the row is lost to it. */
static void test_no_start_past_lease(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t row = rec(a, "pl", "pl1", true, T0, "x");
	int64_t keyed = rec_key(a, "pl", "pl2", true, T0 + 1, "y", "plk");
	char q[256];
	snprintf(q, sizeof(q),
	         "UPDATE %s.hookd_instances SET lease_until = now() - interval '1 second'"
	         " WHERE name = 'a'",
	         schema);
	sql_do(q);
	CHECK(journal_attempt_started(a, row, 1, T0 + 10) == -1, "lease out: not started");
	CHECK(journal_take_turn(a, keyed, "plk", 1, T0 + 10) == RESULT_ERROR, "nor given its turn");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE owner = 'a' AND state = 0",
	              schema) == 2,
	      "both still a's, queued");
	CHECK(journal_heartbeat(a) == 0, "a renews its lease");
	CHECK(journal_attempt_started(a, row, 1, T0 + 20) == 0, "then it starts");
	CHECK(finish(a, row, 1, 200, DSTATE_SUCCEEDED) == 0, "and ends");
	sql_do(q);
	sleep_ms(LEASE_MS + 100);
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "b adopts the other (%zu)", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(journal_take_turn(a, keyed, "plk", 1, T0 + 30) == JOURNAL_LOST, "a lost it");
	CHECK(journal_heartbeat(b) == 0, "b renews its lease");
	CHECK(journal_take_turn(b, keyed, "plk", 1, T0 + 30) == RESULT_OK, "b runs it");
	CHECK(finish(b, keyed, 1, 200, DSTATE_SUCCEEDED) == 0, "b ends it");
	journal_close(a);
	journal_close(b);
}

/* A row this instance owns but does not hold (its take was committed, but
 * the answer was lost with the connection) is let go when the journal
 * reconnects: nothing names it in a heartbeat any more, and it would
 * otherwise stay this live instance's for ever. The rows it holds stay. */
static void test_release_on_reconnect(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t held = rec(a, "rel", "held", true, T0, "x");
	char q[512];
	snprintf(q, sizeof(q),
	         "INSERT INTO %s.hookd_deliveries (endpoint, delivery_id, event, async, state,"
	         " received_ms, updated_ms, owner, fence, instance)"
	         " VALUES ('rel', 'lost', 'push', true, 0, %lld, %lld, 'a', 1, 'a')",
	         schema, (long long)T0 + 1, (long long)T0 + 1);
	sql_do(q);
	int64_t lost = sql_int("SELECT id FROM %s.hookd_deliveries WHERE delivery_id = 'lost'",
	                       schema);
	CHECK(journal_heartbeat(a) == 0, "a's heartbeat while up");
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 0, "a lives: b takes nothing (%zu)", n);
	free(list);
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE id = %lld AND owner = 'a'",
	              schema, (long long)lost) == 1,
	      "an ordinary heartbeat lets nothing go");

	terminate("a");
	CHECK(journal_lookup(a, "rel", "held", NULL, NULL, NULL) == RESULT_ERROR, "down");
	sleep_ms(300);
	CHECK(reconnect(a), "reconnected");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE id = %lld AND owner IS NULL",
	              schema, (long long)lost) == 1,
	      "the row a does not hold is let go");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE id = %lld AND owner = 'a'",
	              schema, (long long)held) == 1,
	      "the row a holds stays a's");
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "b takes the let-go row (%zu)", n);
	if (n == 1)
		CHECK(list[0].rowid == lost, "that one");
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	CHECK(finish(b, lost, 1, 200, DSTATE_SUCCEEDED) == 0, "b runs it");
	CHECK(finish(a, held, 1, 200, DSTATE_SUCCEEDED) == 0, "a still holds its own");
	journal_close(a);
	journal_close(b);
}

/* The lease is the instance's (hookd_instances): open takes it, and rows
 * whose owner has no lease row at all are anybody's to adopt. */
static void test_instance_lease(void)
{
	struct journal *b = open_as("b", NULL, false, NULL);
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_instances WHERE name = 'b'"
	              " AND lease_until > now()", schema) == 1,
	      "open takes b's lease");
	char q[512];
	snprintf(q, sizeof(q),
	         "INSERT INTO %s.hookd_deliveries (endpoint, delivery_id, event, async, state,"
	         " received_ms, updated_ms, owner, fence, instance)"
	         " VALUES ('ghost', 'g1', 'push', true, 0, %lld, %lld, 'ghost', 3, 'ghost')",
	         schema, (long long)T0, (long long)T0);
	sql_do(q);
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 1, "no lease row: adopted (%zu)", n);
	if (n == 1) {
		CHECK(sql_int("SELECT fence FROM %s.hookd_deliveries WHERE id = %lld AND owner = 'b'",
		              schema, (long long)list[0].rowid) == 4,
		      "b's now, fence bumped");
		CHECK(finish(b, list[0].rowid, 1, 200, DSTATE_SUCCEEDED) == 0, "b runs it");
	}
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	journal_close(b);
}

/* The heartbeat is one statement whatever this instance holds: with
 * HELD_ROWS rows held (recovered from a previous run, so that they are in
 * this process's fence map), it writes no delivery row at all, only the
 * instance's lease; timed, for the record. */
#define HELD_ROWS 10000
static void test_heartbeat_is_one_row(void)
{
	char q[1024];
	snprintf(q, sizeof(q),
	         "INSERT INTO %s.hookd_deliveries (endpoint, delivery_id, event, async, state,"
	         " received_ms, updated_ms, owner, fence, instance)"
	         " SELECT 'hb', 'h' || g, 'push', true, 0, %lld + g, %lld + g, 'hb', 1, 'hb'"
	         " FROM generate_series(1, %d) g",
	         schema, (long long)T0, (long long)T0, HELD_ROWS);
	sql_do(q);
	struct journal *hb = open_as("hb", NULL, false, NULL);
	struct journal_pending *list;
	size_t n;
	CHECK(journal_recover(hb, &list, &n) == 0 && n == HELD_ROWS, "hb holds them all: %zu", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&list[i]);
	free(list);
	snprintf(q, sizeof(q),
	         "CREATE TEMP TABLE hb_before AS SELECT id, xmin::text AS x, ctid::text AS c"
	         " FROM %s.hookd_deliveries WHERE endpoint = 'hb'",
	         schema);
	sql_do(q);
	int64_t slowest = 0, total = 0;
	enum { ROUNDS = 5 };
	for (int i = 0; i < ROUNDS; i++) {
		int64_t t = now_mono_ms();
		CHECK(journal_heartbeat(hb) == 0, "heartbeat");
		int64_t took = now_mono_ms() - t;
		total += took;
		slowest = took > slowest ? took : slowest;
	}
	printf("test_journal_pg: heartbeat with %d held rows: %.1f ms a call (slowest %lld ms)\n",
	       HELD_ROWS, (double)total / ROUNDS, (long long)slowest);
	CHECK(sql_int("SELECT count(*) FROM hb_before b JOIN %s.hookd_deliveries d ON d.id = b.id"
	              " WHERE d.xmin::text <> b.x OR d.ctid::text <> b.c", schema) == 0,
	      "the heartbeat wrote no delivery row");
	sql_do("DROP TABLE hb_before");
	snprintf(q, sizeof(q), "DELETE FROM %s.hookd_deliveries WHERE endpoint = 'hb'", schema);
	sql_do(q);
	journal_close(hb);
}

/* A TCP listener that never accepts nor answers: a connection to it is
 * made (the kernel's backlog) and then hears nothing, as from a host that
 * drops packets. Its port in *port. */
static int silent_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 16) == 0 &&
	              getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
	      "a silent listener");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* The test's server behind a silent first host: every connection, the
 * first at open and each reconnect, waits connect_timeout there, then goes
 * on to the server. libpq counts that timeout in whole seconds of the
 * clock from the TCP handshake on (the silent host completes it), so 4 s
 * can end after just over 3: still longer than anything the test waits
 * for before it expects the reconnect through (2 s could end after 1.01 s,
 * inside the 1.5 s the test watches calls fail). */
static char *conninfo_behind_silent(int silent_port, const char *appname)
{
	PQconninfoOption *opts = PQconninfoParse(base_conninfo, NULL);
	CHECK(opts != NULL, "the test's connection string parses");
	const char *host = "", *port = "", *db = "", *user = "";
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		const char *v = o->val ? o->val : "";
		if (strcmp(o->keyword, "host") == 0)
			host = v;
		else if (strcmp(o->keyword, "port") == 0)
			port = v;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = v;
		else if (strcmp(o->keyword, "user") == 0)
			user = v;
	}
	char *ci = xasprintf("host='127.0.0.1,%s' port='%d,%s' dbname='%s'%s%s%s connect_timeout=4"
	                     " application_name=%s options='-c search_path=%s'",
	                     host, silent_port, port, db, *user ? " user='" : "", user,
	                     *user ? "'" : "", appname, schema);
	PQconninfoFree(opts);
	return ci;
}

/* The threads of this process. */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	CHECK(d != NULL, "/proc/self/task");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Issue: a reconnect waited for the network on the caller's thread, up to
 * connect_timeout for a host that drops packets, and the daemon answered
 * nothing meanwhile. It runs on a thread of its own now: while it waits on
 * the silent host, every call fails at once, and then it is through.
 * Issue: a journal closed while one was under way left its thread running
 * (inside libpq while a stopping hookd's exit cleaned up after libpq and
 * OpenSSL); the close waits for it now, libpq's connect_timeout at most. */
static void test_reconnect_does_not_wait(void)
{
	int sport;
	int silent = silent_listener(&sport);
	char app[64];
	snprintf(app, sizeof(app), "%s_rc", schema);
	char *ci = conninfo_behind_silent(sport, app);
	struct journal_opts o = {.url = ci, .instance = "rc", .lease_ms = LEASE_MS, .body_max = 64};
	char err[512] = "";
	int64_t t = now_mono_ms();
	struct journal *j = journal_open(&o, err, sizeof(err));
	CHECK(j != NULL, "open behind a silent host: %s", err);
	if (!j) {
		free(ci);
		close(silent);
		return;
	}
	CHECK(now_mono_ms() - t >= 1500, "the open waited there (%lld ms)",
	      (long long)(now_mono_ms() - t));
	/* Two hosts, connect_timeout=4 each, after the longest backoff (10 s). */
	CHECK(journal_reconnect_lag_ms(j) == 10000 + 2 * 4000, "the reconnect's lag: %lld ms",
	      (long long)journal_reconnect_lag_ms(j));
	int64_t row = rec(j, "rc", "r1", true, T0, "x");
	CHECK(row > 0, "recorded");
	terminate("rc");
	CHECK(journal_lookup(j, "rc", "r1", NULL, NULL, NULL) == RESULT_ERROR && !journal_up(j),
	      "down");
	sleep_ms(300); /* the backoff */
	int64_t slowest = 0, began = now_mono_ms();
	int calls = 0;
	bool under_way = false;
	while (now_mono_ms() - began < 1200) {
		t = now_mono_ms();
		int hb = journal_heartbeat(j);
		enum result lr = journal_lookup(j, "rc", "r1", NULL, NULL, NULL);
		int64_t took = now_mono_ms() - t;
		slowest = took > slowest ? took : slowest;
		CHECK(hb == -1 && lr == RESULT_ERROR && !journal_up(j), "still down while it waits");
		under_way |= journal_reconnect_fd(j) >= 0;
		calls++;
		sleep_ms(20);
	}
	printf("test_journal_pg: %d calls while a reconnect waited on a silent host, the slowest"
	       " %lld ms\n",
	       calls, (long long)slowest);
	CHECK(slowest < 100, "no call waited for the reconnect (%lld ms)", (long long)slowest);
	CHECK(under_way, "a reconnect was under way");
	CHECK(reconnect(j), "then through, to the second host");
	CHECK(journal_reconnect_fd(j) == -1, "none under way once up");
	CHECK(finish(j, row, 1, 200, DSTATE_SUCCEEDED) == 0, "and writes again");

	/* Closed while a reconnect waits on the silent host: the close waits
	 * for the thread (there, up to connect_timeout, 4 s, then the second
	 * host), and no thread of the journal's runs on after it. ASan and
	 * LeakSanitizer (build-asan) see that the thread uses nothing freed
	 * and that nothing of it is left. */
	terminate("rc");
	CHECK(journal_heartbeat(j) == -1, "down again");
	sleep_ms(300);
	int threads = thread_count();
	CHECK(journal_heartbeat(j) == -1 && journal_reconnect_fd(j) >= 0, "a reconnect under way");
	CHECK(thread_count() == threads + 1, "on a thread of its own (%d threads, %d before)",
	      thread_count(), threads);
	sleep_ms(100);
	t = now_mono_ms();
	journal_close(j);
	int64_t took = now_mono_ms() - t;
	printf("test_journal_pg: a close during a reconnect took %lld ms\n", (long long)took);
	CHECK(thread_count() == threads, "the close waited for the reconnect's thread (%d threads,"
	      " %d before)", thread_count(), threads);
	CHECK(took >= 100 && took < 4000 + 2000, "within connect_timeout and a margin (%lld ms)",
	      (long long)took);
	free(ci);
	close(silent);
}

/* ---- a fake server: what a connect sends ---- */

/* What the fake server saw of one connection: the startup packet's
 * options, and the first statement after the startup. */
struct fake_seen {
	int listener;
	char options[256];
	char first_sql[256];
};

static bool read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One connection: encryption refused, any startup let in at once
 * (AuthenticationOk, ReadyForQuery), the first message after it noted,
 * then the connection closed. */
static void *fake_server_run(void *arg)
{
	struct fake_seen *seen = arg;
	int c = accept(seen->listener, NULL, NULL);
	if (c < 0)
		return NULL;
	unsigned char msg[4096];
	for (;;) {
		if (!read_full(c, msg, 4) || be32(msg) < 8 || be32(msg) > sizeof(msg) ||
		    !read_full(c, msg + 4, be32(msg) - 4))
			goto done;
		uint32_t code = be32(msg + 4);
		if (code != 80877103 && code != 80877104) /* SSLRequest, GSSENCRequest */
			break;
		if (write(c, "N", 1) != 1)
			goto done;
	}
	for (size_t k = 8, len = be32(msg); k < len && msg[k];) {
		const char *key = (const char *)msg + k;
		size_t kl = strnlen(key, len - k);
		const char *val = key + kl + 1;
		if (k + kl + 1 >= len)
			break;
		size_t vl = strnlen(val, len - k - kl - 1);
		if (strcmp(key, "options") == 0)
			snprintf(seen->options, sizeof(seen->options), "%.*s", (int)vl, val);
		k += kl + vl + 2;
	}
	static const unsigned char hello[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};
	if (write(c, hello, sizeof(hello)) != (ssize_t)sizeof(hello))
		goto done;
	/* A simple query ('Q') carries its text; a parse ('P') a name first. */
	unsigned char head[5];
	if (read_full(c, head, 5) && be32(head + 1) >= 4 && be32(head + 1) - 4 < sizeof(msg) &&
	    read_full(c, msg, be32(head + 1) - 4)) {
		msg[be32(head + 1) - 4] = '\0';
		const char *text = (const char *)msg;
		if (head[0] == 'P')
			text += strlen(text) + 1;
		snprintf(seen->first_sql, sizeof(seen->first_sql), "%s", text);
	}
done:
	close(c);
	return NULL;
}

/* Issue: a reconnect set the session up with a statement of its own after
 * connecting (SET statement_timeout), with no bound but the server's: a
 * host gone silent right after the startup held the reconnect, and a
 * clean stop waiting for it, for ever. The settings travel in the startup
 * packet now, after the connection string's own options, and the first
 * statement after the startup is hookd's own work, not a SET. */
static void test_settings_in_startup(void)
{
	for (int readonly = 0; readonly <= 1; readonly++) {
		int port;
		struct fake_seen seen = {.listener = silent_listener(&port)};
		pthread_t t;
		CHECK(pthread_create(&t, NULL, fake_server_run, &seen) == 0, "the fake server");
		char *ci = xasprintf("host=127.0.0.1 port=%d dbname=fake user=fake sslmode=disable"
		                     " gssencmode=disable connect_timeout=3"
		                     " options='-c search_path=theirs'",
		                     port);
		struct journal_opts o = {.url = ci, .instance = "fake", .lease_ms = LEASE_MS};
		char err[512] = "";
		int64_t began = now_mono_ms();
		struct journal *j = readonly ? journal_open_readonly(&o, err, sizeof(err))
		                             : journal_open(&o, err, sizeof(err));
		int64_t took = now_mono_ms() - began;
		CHECK(j == NULL, "the fake server ends the connection at the first statement");
		if (j)
			journal_close(j);
		pthread_join(t, NULL);
		close(seen.listener);
		free(ci);
		CHECK_STR(seen.options,
		          readonly ? "-c search_path=theirs -c statement_timeout=10000"
		                     " -c default_transaction_read_only=on"
		                   : "-c search_path=theirs -c statement_timeout=10000",
		          "the startup's options, the string's own first");
		CHECK(strncmp(seen.first_sql, "SET ", 4) != 0, "no SET after the startup: %s",
		      seen.first_sql);
		CHECK(took < 3000, "no wait (%lld ms)", (long long)took);
	}
}

/* A clean stop (journal_release, after the last write): what the instance
 * held is let go and its lease ends, so that another adopts at once, not a
 * lease later; a write of the stopped instance after that is lost. */
static void test_release(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	struct journal *b = open_as("b", NULL, false, NULL);
	int64_t queued = rec(a, "rls", "q1", true, T0, "x");
	int64_t waiting = rec(a, "rls", "w1", true, T0 + 1, "x");
	CHECK(finish(a, waiting, 1, 503, DSTATE_RETRY_WAIT) == 0, "w1 waits for a retry");
	CHECK(journal_heartbeat(a) == 0, "a's lease renewed");
	struct journal_pending *list;
	size_t n;
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 0, "a lives: b takes nothing (%zu)", n);
	free(list);
	CHECK(journal_release(a) == 0, "a stops");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_instances WHERE name = 'a'"
	              " AND lease_until <= now()", schema) == 1,
	      "a's lease ended");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_deliveries WHERE endpoint = 'rls'"
	              " AND owner IS NULL", schema) == 2,
	      "what a held is let go");
	CHECK(journal_adopt(b, 10, &list, &n) == 0 && n == 2, "b adopts both at once (%zu)", n);
	for (size_t i = 0; i < n; i++) {
		CHECK(list[i].rowid == (i == 0 ? queued : waiting), "in order");
		if (list[i].rowid == waiting)
			CHECK(list[i].state == DSTATE_RETRY_WAIT && list[i].attempts == 1,
			      "w1 still waits for its retry");
		journal_pending_free(&list[i]);
	}
	free(list);
	CHECK(finish(a, queued, 1, 200, DSTATE_SUCCEEDED) == JOURNAL_LOST, "a's late write lost");
	CHECK(finish(b, queued, 1, 200, DSTATE_SUCCEEDED) == 0, "b runs q1");
	CHECK(finish(b, waiting, 2, 200, DSTATE_SUCCEEDED) == 0, "b runs w1's retry");
	CHECK(journal_release(b) == 0 && journal_release(b) == 0, "b stops: holds nothing, twice");
	journal_close(a);
	journal_close(b);
	struct journal *ro = open_as("a", NULL, true, NULL);
	CHECK(journal_release(ro) == -1, "a reader has no lease to give up");
	journal_close(ro);
}

/* Lease rows of instances gone for good are forgotten: ended over a day
 * ago and holding nothing; a recent one, or one that still holds a row,
 * stays. At most once a minute an instance. */
static void test_prune_instances(void)
{
	char q[1024];
	snprintf(q, sizeof(q),
	         "INSERT INTO %s.hookd_instances (name, lease_until) VALUES"
	         " ('gone', now() - interval '2 days'), ('gone-holding', now() - interval '2 days'),"
	         " ('recent', now() - interval '1 hour');"
	         "INSERT INTO %s.hookd_deliveries (endpoint, delivery_id, event, async, state,"
	         " received_ms, updated_ms, owner, fence, instance)"
	         " VALUES ('pri', 'p1', 'push', true, 2, %lld, %lld, 'gone-holding', 1, 'x')",
	         schema, schema, (long long)T0, (long long)T0);
	sql_do(q);
	struct journal *p = open_as("pruner", NULL, false, NULL);
	CHECK(journal_heartbeat(p) == 0, "heartbeat");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_instances WHERE name = 'gone'", schema) == 0,
	      "gone for two days, holding nothing: forgotten");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_instances WHERE name IN"
	              " ('gone-holding', 'recent', 'pruner')", schema) == 3,
	      "one holding a row, a recent one, and the live one stay");
	snprintf(q, sizeof(q),
	         "INSERT INTO %s.hookd_instances (name, lease_until) VALUES"
	         " ('gone2', now() - interval '2 days')",
	         schema);
	sql_do(q);
	CHECK(journal_heartbeat(p) == 0, "heartbeat");
	CHECK(sql_int("SELECT count(*) FROM %s.hookd_instances WHERE name = 'gone2'", schema) == 1,
	      "not again within the minute");
	snprintf(q, sizeof(q),
	         "DELETE FROM %s.hookd_deliveries WHERE endpoint = 'pri';"
	         "DELETE FROM %s.hookd_instances WHERE name IN ('gone-holding', 'recent', 'gone2')",
	         schema, schema);
	sql_do(q);
	journal_close(p);
}

/* Group commit (journal.h): the acceptances of a batch share one commit;
 * other instances see them after journal_flush, and a batch that fails
 * (a statement in it, or the connection) is lost whole, its rows with it. */
static int64_t rows_with_id(const char *id)
{
	return sql_int("SELECT count(*) FROM hookd_deliveries WHERE delivery_id = '%s'", id);
}

static void test_batch(void)
{
	struct journal *a = open_as("a", NULL, false, NULL);
	CHECK(journal_batches(a), "PostgreSQL batches");
	journal_set_batching(a, true);
	uint64_t b0 = journal_batch_id(a), c0 = journal_committed_id(a);
	int64_t r1 = rec(a, "gc", "gc-1", true, T0, "x");
	int64_t r2 = rec(a, "gc", "gc-2", false, T0, "y");
	CHECK(r1 > 0 && r2 > 0, "recorded in the batch");
	CHECK(journal_batch_id(a) == b0 + 1 && journal_committed_id(a) == c0, "one batch, open");
	CHECK(rows_with_id("gc-1") == 0 && rows_with_id("gc-2") == 0,
	      "not seen by another connection before the flush");
	CHECK(journal_lookup(a, "gc", "gc-1", NULL, NULL, NULL) == RESULT_OK,
	      "seen by its own lookups at once");
	CHECK(journal_flush(a) == 0, "flushed");
	CHECK(journal_committed_id(a) == b0 + 1, "committed");
	CHECK(rows_with_id("gc-1") == 1 && rows_with_id("gc-2") == 1, "seen after the flush");

	/* A delivery with a serialization key commits at once: its place in
	 * the key's line is read by the other instances' take_turn, and one
	 * recorded later elsewhere must wait for it. */
	struct journal *b = open_as("b", NULL, false, NULL);
	CHECK(rec(a, "gc", "gc-open", true, T0, "x") > 0, "a batch open on a");
	CHECK(rec_key(a, "gc", "gc-k1", true, T0, "k", "key-1") > 0, "keyed, on a");
	CHECK(rows_with_id("gc-k1") == 1, "committed when it returns");
	int64_t k2 = rec_key(b, "gc", "gc-k2", true, T0 + 1, "k", "key-1");
	CHECK(k2 > 0, "the same key, later, on b");
	CHECK(journal_take_turn(b, k2, "key-1", 1, T0 + 2) == RESULT_PENDING,
	      "b's waits for a's, recorded first");
	journal_close(b);
	CHECK(journal_flush(a) == 0, "flushed");

	/* A write of its own commits the batch first. */
	int64_t r3 = rec(a, "gc", "gc-3", true, T0, "z");
	CHECK(journal_attempt_started(a, r3, 1, T0 + 1) == 0, "started");
	CHECK(rows_with_id("gc-3") == 1, "committed by the write after it");

	/* A statement that fails inside the batch loses the whole batch. */
	sql_do("ALTER TABLE hookd_deliveries ADD CONSTRAINT test_no_boom"
	       " CHECK (delivery_id <> 'gc-boom')");
	uint64_t losses = journal_losses(a);
	CHECK(rec(a, "gc", "gc-4", true, T0, "x") > 0, "in the batch");
	CHECK(rec(a, "gc", "gc-boom", true, T0, "x") == -1, "refused by the database");
	CHECK(journal_losses(a) == losses + 1, "the batch is counted lost");
	CHECK(journal_flush(a) == -1, "the flush says a batch was lost");
	CHECK(journal_flush(a) == 0, "once");
	CHECK(rows_with_id("gc-4") == 0, "its other row went with it");
	CHECK(journal_attempt_started(a, r1, 1, T0 + 2) == 0, "rows committed before stay held");
	sql_do("ALTER TABLE hookd_deliveries DROP CONSTRAINT test_no_boom");
	CHECK(rec(a, "gc", "gc-4", true, T0, "x") > 0 && journal_flush(a) == 0,
	      "the next batch commits");
	CHECK(rows_with_id("gc-4") == 1, "written again");

	/* The connection lost with a batch open: the batch is lost, the
	 * delivery it recorded is no longer this instance's. */
	int64_t r5 = rec(a, "gc", "gc-5", true, T0, "x");
	CHECK(r5 > 0, "in the batch");
	terminate("a");
	CHECK(journal_flush(a) == -1, "its commit fails: lost");
	CHECK(journal_losses(a) == losses + 2, "counted");
	sleep_ms(300);
	CHECK(reconnect(a), "reconnected");
	CHECK(rows_with_id("gc-5") == 0, "nothing of it committed");
	CHECK(journal_attempt_started(a, r5, 1, T0 + 3) == JOURNAL_LOST,
	      "its fence is forgotten: a write about it is lost, not applied");
	CHECK(rec(a, "gc", "gc-5", true, T0, "x") > 0 && journal_flush(a) == 0,
	      "the sender's retry is recorded");
	CHECK(rows_with_id("gc-5") == 1, "committed");

	/* A read other than the lookup commits the batch first: one that
	 * fails (a statement timeout) must not take the batch with it. */
	CHECK(rec(a, "gc", "gc-r", true, T0, "x") > 0 && rows_with_id("gc-r") == 0, "in the batch");
	CHECK(journal_pending_count(a) >= 0 && rows_with_id("gc-r") >= 0, "counted");
	int64_t found_row = 0;
	CHECK(journal_find(a, "gc", "gc-r", &found_row) == RESULT_OK, "found");
	CHECK(rows_with_id("gc-r") == 1, "committed by the read");

	/* A commit that fails with the connection up (a deferred check): a
	 * write about a row of that batch is lost, and writes nothing else. */
	sql_do("CREATE FUNCTION test_no_defer() RETURNS trigger LANGUAGE plpgsql AS"
	       " $$ BEGIN IF NEW.delivery_id = 'gc-defer' THEN RAISE EXCEPTION 'refused';"
	       " END IF; RETURN NULL; END $$");
	sql_do("CREATE CONSTRAINT TRIGGER test_no_defer AFTER INSERT ON hookd_deliveries"
	       " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_no_defer()");
	int64_t before = sql_int("SELECT count(*) FROM hookd_deliveries WHERE state = 1");
	int64_t rd = rec(a, "gc", "gc-defer", true, T0, "x");
	CHECK(rd > 0, "recorded in the batch");
	CHECK(journal_attempt_started(a, rd, 1, T0 + 4) == JOURNAL_LOST,
	      "its batch's commit failed: the row is not held");
	CHECK(journal_up(a), "the connection stayed up");
	CHECK(sql_int("SELECT count(*) FROM hookd_deliveries WHERE state = 1") == before,
	      "no other row was marked running");
	CHECK(journal_flush(a) == -1 && journal_flush(a) == 0, "the flush says so, once");
	sql_do("DROP TRIGGER test_no_defer ON hookd_deliveries");
	sql_do("DROP FUNCTION test_no_defer()");

	/* Batching off flushes, and writes commit at once again. */
	CHECK(rec(a, "gc", "gc-6", true, T0, "x") > 0, "in the batch");
	journal_set_batching(a, false);
	CHECK(rows_with_id("gc-6") == 1, "flushed by turning batching off");
	CHECK(rec(a, "gc", "gc-7", true, T0, "x") > 0 && rows_with_id("gc-7") == 1,
	      "unbatched: committed when it returns");
	journal_close(a);
}

int main(void)
{
	test_settings_in_startup(); /* a fake server of its own */
	base_conninfo = getenv("HOOKD_TEST_PG");
	if (!base_conninfo || !*base_conninfo) {
		printf("test_journal_pg: HOOKD_TEST_PG is unset (a libpq connection string of a"
		       " database the test may create tables in): skipped\n");
		return check_failed ? check_done("test_journal_pg") : 77;
	}
	snprintf(schema, sizeof(schema), "hookd_test_%ld", (long)getpid());
	char *ci = conninfo_with(schema, "public");
	raw = PQconnectdb(ci);
	free(ci);
	if (PQstatus(raw) != CONNECTION_OK) {
		fprintf(stderr, "test_journal_pg: cannot connect: %s", PQerrorMessage(raw));
		PQfinish(raw);
		return 1;
	}
	char q[128];
	sql_do("SET client_min_messages = warning");
	snprintf(q, sizeof(q), "CREATE SCHEMA %s", schema);
	sql_do(q);
	snprintf(q, sizeof(q), "SET search_path = %s", schema);
	sql_do(q);

	struct journal *first = open_as("a", NULL, false, NULL);
	if (!first) {
		snprintf(q, sizeof(q), "DROP SCHEMA %s CASCADE", schema);
		sql_do(q);
		PQfinish(raw);
		return check_done("test_journal_pg");
	}
	journal_close(first);
	/* A lease that ran out counts only once the server has been up a while
	 * (journal_pg_take.c DB_UP_GRACE_MS): a server started for this test
	 * must be, before the adoptions below. */
	int64_t up_ms = sql_int("SELECT (extract(epoch FROM now() - pg_postmaster_start_time())"
	                        " * 1000)::bigint");
	if (up_ms < 12500)
		usleep((useconds_t)(12500 - up_ms) * 1000);
	test_schema();
	test_schema_1_client_gone();
	test_lifecycle();
	test_resend_and_conflict();
	test_fencing();
	test_take_turn();
	test_adopt_once();
	test_recover();
	test_requeue_hand_over();
	test_counts();
	test_readers();
	test_prune();
	test_import();
	test_outage();
	test_prepared_again_after_reconnect();
	test_turn_key_taken_at_run();
	test_resend_goes_behind();
	test_unwritten_outcome_stays_held();
	test_no_start_past_lease();
	test_release_on_reconnect();
	test_instance_lease();
	test_heartbeat_is_one_row();
	test_reconnect_does_not_wait();
	test_release();
	test_prune_instances();
	test_batch();
	test_steal_limit_counts_only_takeable_rows();

	snprintf(q, sizeof(q), "DROP SCHEMA %s CASCADE", schema);
	if (raw)
		sql_do(q);
	PQfinish(raw);
	return check_done("test_journal_pg");
}
