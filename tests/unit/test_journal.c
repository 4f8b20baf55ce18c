/*
 * The journal against a real SQLite file in a temporary directory: the
 * delivery lifecycle, recovery, pruning, the CLI output (what the commands
 * would print), a reader beside a writer, and a small benchmark of the
 * sync delivery path (HOOKD_JOURNAL_BENCH=N cycles, default 500).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"
#include "journal_sqlite_wal.h"
#include "journal_format.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

static char tmpdir[64];
static int dir_seq;

/* A fresh state_dir (not yet created) under the test's temp dir. */
static char *new_state_dir(void)
{
	return xasprintf("%s/s%d/state", tmpdir, ++dir_seq);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

#define T0 INT64_C(1700000000000) /* a fixed wall clock for the cases */

/* The SQLite journal in dir (the one opts_for gives until the next call). */
static const struct journal_opts *opts_for(const char *dir, uint64_t body_max, int64_t keep_ms,
                                           int64_t max_rows)
{
	static struct journal_opts o;
	o = (struct journal_opts){
		.state_dir = dir, .body_max = body_max, .keep_ms = keep_ms, .max_rows = max_rows};
	return &o;
}

static struct journal *open_dir(const char *dir, uint64_t body_max, int64_t keep_ms,
                                int64_t max_rows)
{
	char err[256] = "";
	struct journal *j = journal_open(opts_for(dir, body_max, keep_ms, max_rows), err, sizeof(err));
	CHECK(j != NULL, "journal_open %s: %s", dir, err);
	return j;
}

static const struct journal_header std_headers[] = {
	{"Content-Type", "application/json"},
	{"User-Agent", "test/1"},
};

static int64_t rec(struct journal *j, const char *endpoint, const char *id, const char *event,
                   bool async, int64_t received_ms, const char *body)
{
	struct journal_new d = {
		.endpoint = endpoint,
		.delivery_id = id,
		.event = event,
		.remote_addr = "127.0.0.1",
		.async = async,
		.received_ms = received_ms,
		.headers = std_headers,
		.nheaders = ARRAY_SIZE(std_headers),
		.body = (const unsigned char *)body,
		.body_len = body ? strlen(body) : 0,
	};
	int64_t r = journal_record(j, &d);
	CHECK(r > 0, "record %s/%s", endpoint, id);
	return r;
}

static int finish(struct journal *j, int64_t rowid, int attempt, int http,
                  enum delivery_state st, int64_t due)
{
	struct journal_hook hook = {
		.hook = "deploy", .exit_code = http == 200 ? 0 : 1, .ms = 3,
		.output = "line one\nline two\n", .output_len = 18,
	};
	struct journal_attempt a = {
		.attempt = attempt, .started_ms = T0 + 1, .finished_ms = T0 + 5, .http = http,
		.status = http == 200 ? "ok" : "failed", .error = http == 200 ? NULL : "exit 1",
		.hooks = &hook, .nhooks = 1,
	};
	return journal_attempt_finished(j, rowid, &a, st, due);
}

/* Runs a delivery to a final state in one call. */
static int64_t final_delivery(struct journal *j, const char *ep, const char *id, const char *event,
                              int64_t received_ms, int http)
{
	int64_t r = rec(j, ep, id, event, false, received_ms, "{}");
	CHECK(journal_attempt_started(j, r, 1, received_ms) == 0, "started %s", id);
	CHECK(finish(j, r, 1, http, http == 200 ? DSTATE_SUCCEEDED : DSTATE_FAILED, 0) == 0,
	      "finished %s", id);
	return r;
}

static enum delivery_state state_of(struct journal *j, const char *ep, const char *id,
                                    int *attempts)
{
	enum delivery_state st = (enum delivery_state)-1;
	int64_t rowid;
	int a = -1;
	CHECK(journal_lookup(j, ep, id, &st, &a, &rowid) == RESULT_OK, "lookup %s/%s", ep, id);
	if (attempts)
		*attempts = a;
	return st;
}

/* A second, plain connection for looking behind the module's back. */
static int64_t sql_int(const char *dir, const char *sql)
{
	char *path = xasprintf("%s/journal.db", dir);
	sqlite3 *db;
	int64_t v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW)
				v = sqlite3_column_int64(s, 0);
			sqlite3_finalize(s);
		}
	}
	sqlite3_close(db);
	free(path);
	return v;
}

static char *sql_text(const char *dir, const char *sql)
{
	char *path = xasprintf("%s/journal.db", dir);
	sqlite3 *db;
	char *v = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
				v = xstrdup((const char *)sqlite3_column_text(s, 0));
			sqlite3_finalize(s);
		}
	}
	sqlite3_close(db);
	free(path);
	return v;
}

/* ---- what the commands print ---- */

/* The command's exit status, and what it would print on stdout. */
static int run_events(struct journal *j, const struct events_filter *f, char **out)
{
	struct strbuf sb;
	sb_init(&sb);
	enum result r = journal_format_events(j, f, &sb);
	if (r != RESULT_OK)
		sb_free(&sb);
	*out = sb_steal(&sb);
	return r == RESULT_OK ? 0 : 1;
}

static int run_show(struct journal *j, const char *ep, const char *id, char **out)
{
	struct strbuf sb, err;
	sb_init(&sb);
	sb_init(&err);
	enum result r = journal_format_show(j, ep, id, NULL, &sb, &err);
	if (r != RESULT_OK)
		sb_free(&sb);
	*out = sb_steal(&sb);
	sb_free(&err);
	return r == RESULT_OK ? 0 : 1;
}

/* ---- cases ---- */

/* Marks each open fd that is not close-on-exec. */
static void inheritable_fds(bool *fds, size_t n)
{
	memset(fds, 0, n);
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int fd;
		if (!parse_int(e->d_name, 0, (int)n - 1, &fd) || fd == dirfd(d))
			continue;
		int fl = fcntl(fd, F_GETFD);
		fds[fd] = fl >= 0 && !(fl & FD_CLOEXEC);
	}
	if (d)
		closedir(d);
}

static void test_open(void)
{
	char *dir = new_state_dir();
	bool before[1024], after[1024];
	inheritable_fds(before, ARRAY_SIZE(before));
	struct journal *j = open_dir(dir, 1024, 0, 0);
	/* Hooks are forked from this process: nothing SQLite opened may leak
	 * into them (fds inherited by the test itself do not count). */
	inheritable_fds(after, ARRAY_SIZE(after));
	for (size_t fd = 0; fd < ARRAY_SIZE(after); fd++)
		CHECK(!after[fd] || before[fd], "fd %zu is not close-on-exec", fd);
	struct stat st;
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "state_dir created");
	CHECK((st.st_mode & 07777) == 0700, "state_dir mode %o", st.st_mode & 07777);
	char *db = xasprintf("%s/journal.db", dir);
	CHECK(stat(db, &st) == 0 && (st.st_mode & 07777) == 0600, "journal.db mode %o",
	      st.st_mode & 07777);
	char *mode = sql_text(dir, "PRAGMA journal_mode");
	CHECK_STR(mode, "wal", "journal mode");
	free(mode);
	CHECK(sql_int(dir, "PRAGMA user_version") == 3, "schema version");

	journal_close(j);

	/* Reopening finds the schema; the counts are read back. */
	j = open_dir(dir, 1024, 0, 0);
	CHECK(journal_pending_count(j) == 0, "pending after reopen");
	journal_close(j);

	/* A newer schema is refused rather than misread. */
	sql_int(dir, "PRAGMA user_version = 99");
	char err[256] = "";
	j = journal_open(opts_for(dir, 1024, 0, 0), err, sizeof(err));
	CHECK(j == NULL && strstr(err, "newer"), "newer schema: %s", err);
	journal_close(j);
	j = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(j == NULL && strstr(err, "newer"), "newer schema readonly: %s", err);
	journal_close(j);

	/* state_dir that is a file. */
	char *file = xasprintf("%s/afile", tmpdir);
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	err[0] = '\0';
	j = journal_open(opts_for(file, 1024, 0, 0), err, sizeof(err));
	CHECK(j == NULL && err[0], "state_dir is a file: %s", err);

	/* A missing journal is a clear error for the CLI. */
	char *missing = new_state_dir();
	err[0] = '\0';
	CHECK(journal_missing(opts_for(missing, 0, 0, 0)), "journal_missing before the first run");
	CHECK(!journal_missing(opts_for(dir, 0, 0, 0)), "journal_missing after one");
	j = journal_open_readonly(opts_for(missing, 0, 0, 0), err, sizeof(err));
	CHECK(j == NULL && strstr(err, "no journal"), "readonly missing: %s", err);
	journal_close(NULL);
	/* `events` lists no journal as no deliveries. */
	char *out;
	struct events_filter f = {.json = true};
	CHECK(run_events(NULL, &f, &out) == 0 && strcmp(out, "[]\n") == 0, "no journal, json: %s", out);
	free(out);
	f.json = false;
	CHECK(run_events(NULL, &f, &out) == 0 && strncmp(out, "RECEIVED", 8) == 0 &&
	      strchr(out, '\n') == out + strlen(out) - 1,
	      "no journal: the header line alone: %s", out);
	free(out);
	free(missing);
	free(file);
	free(db);
	free(dir);
}

static void test_states(void)
{
	static const struct {
		enum delivery_state s;
		const char *name;
		bool pending;
	} cases[] = {
		{DSTATE_QUEUED, "queued", true},
		{DSTATE_RUNNING, "running", true},
		{DSTATE_RETRY_WAIT, "retry_wait", true},
		{DSTATE_SUCCEEDED, "succeeded", false},
		{DSTATE_FAILED, "failed", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CHECK_STR(delivery_state_name(cases[i].s), cases[i].name, "state %zu", i);
		CHECK(delivery_state_pending(cases[i].s) == cases[i].pending, "pending %zu", i);
	}
}

static void test_lifecycle(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	enum delivery_state st;
	int attempts;
	int64_t rowid;
	CHECK(journal_lookup(j, "ep", "a1", &st, &attempts, &rowid) == RESULT_UNKNOWN, "unknown id");

	/* Async: each step of the table, then the state, attempts and
	 * pending count it leaves. */
	int64_t r = rec(j, "ep", "a1", "build:start", true, T0, "{\"x\":1}");
	CHECK(journal_lookup(j, "ep", "a1", &st, &attempts, &rowid) == RESULT_OK && rowid == r,
	      "lookup rowid");
	enum step { RECORDED, START, FINISH };
	static const struct {
		enum step step;
		int attempt, http;
		enum delivery_state to;
		enum delivery_state want;
		int want_attempts;
		int64_t want_pending;
	} steps[] = {
		{RECORDED, 0, 0, 0, DSTATE_QUEUED, 0, 1},
		{START, 1, 0, 0, DSTATE_RUNNING, 0, 1},
		{FINISH, 1, 503, DSTATE_RETRY_WAIT, DSTATE_RETRY_WAIT, 1, 1},
		{START, 2, 0, 0, DSTATE_RUNNING, 1, 1},
		{FINISH, 2, 504, DSTATE_RETRY_WAIT, DSTATE_RETRY_WAIT, 2, 1},
		{START, 3, 0, 0, DSTATE_RUNNING, 2, 1},
		{FINISH, 3, 200, DSTATE_SUCCEEDED, DSTATE_SUCCEEDED, 3, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		if (steps[i].step == START)
			CHECK(journal_attempt_started(j, r, steps[i].attempt, T0 + 10) == 0, "step %zu", i);
		if (steps[i].step == FINISH)
			CHECK(finish(j, r, steps[i].attempt, steps[i].http, steps[i].to, T0 + 9999) == 0,
			      "step %zu", i);
		CHECK(state_of(j, "ep", "a1", &attempts) == steps[i].want, "step %zu state", i);
		CHECK(attempts == steps[i].want_attempts, "step %zu attempts %d", i, attempts);
		CHECK(journal_pending_count(j) == steps[i].want_pending, "step %zu pending %lld", i,
		      (long long)journal_pending_count(j));
	}
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts") == 3, "3 attempts recorded");
	CHECK(sql_int(dir, "SELECT count(*) FROM hook_runs") == 3, "3 hook runs recorded");

	/* Sync: recorded running, attempt 1 already marked. */
	int64_t s = rec(j, "ep", "s1", "build:start", false, T0, "{}");
	CHECK(state_of(j, "ep", "s1", &attempts) == DSTATE_RUNNING && attempts == 0, "sync running");
	CHECK(journal_attempt_started(j, s, 1, T0 + 1) == 0, "sync started");
	CHECK(journal_pending_count(j) == 0, "sync not counted");
	CHECK(finish(j, s, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "sync finished");
	CHECK(state_of(j, "ep", "s1", &attempts) == DSTATE_SUCCEEDED && attempts == 1, "sync done");

	/* Unknown rows are errors, not silent successes. */
	CHECK(journal_attempt_started(j, 999999, 1, T0) < 0, "started unknown");
	CHECK(finish(j, 999999, 1, 200, DSTATE_SUCCEEDED, 0) < 0, "finished unknown");
	journal_close(j);
	free(dir);
}

static void test_resend(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	int64_t r = rec(j, "ep", "r1", "push", false, T0, "{\"v\":1}");
	CHECK(finish(j, r, 1, 500, DSTATE_FAILED, 0) == 0, "first failed");
	int attempts;
	CHECK(state_of(j, "ep", "r1", &attempts) == DSTATE_FAILED && attempts == 1, "failed 1");

	/* The sender resends: same row, running again, attempts kept. */
	int64_t r2 = rec(j, "ep", "r1", "push:again", false, T0 + 60000, "{\"v\":2}");
	CHECK(r2 == r, "resend updates in place");
	CHECK(state_of(j, "ep", "r1", &attempts) == DSTATE_RUNNING && attempts == 1, "resend running");
	CHECK(journal_attempt_started(j, r, 2, T0 + 60001) == 0, "resend started");
	CHECK(finish(j, r, 2, 500, DSTATE_FAILED, 0) == 0, "second failed");
	CHECK(state_of(j, "ep", "r1", &attempts) == DSTATE_FAILED && attempts == 2, "failed 2");

	struct journal_pending p;
	CHECK(journal_get(j, r, &p) == RESULT_OK, "get");
	CHECK(p.received_ms == T0, "first receipt kept: %lld", (long long)p.received_ms);
	CHECK_STR(p.event, "push:again", "new event");
	CHECK(p.body_len == 7 && memcmp(p.body, "{\"v\":2}", 7) == 0, "new body");
	journal_pending_free(&p);

	/* A failed async delivery resent as async is pending again. */
	int64_t a = rec(j, "ep", "r2", "push", true, T0, "{}");
	CHECK(journal_attempt_started(j, a, 1, T0) == 0, "a started");
	CHECK(finish(j, a, 1, 500, DSTATE_FAILED, 0) == 0, "a failed");
	CHECK(journal_pending_count(j) == 0, "a final");
	CHECK(rec(j, "ep", "r2", "push", true, T0 + 5, "{}") == a, "a resent");
	CHECK(state_of(j, "ep", "r2", &attempts) == DSTATE_QUEUED && attempts == 1, "a queued");
	CHECK(journal_pending_count(j) == 1, "a pending again");
	journal_close(j);
	free(dir);
}

static void test_body_cut(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 16, 0, 0);
	static const char long_body[] = "0123456789abcdefghijklmnopqrstuvwxyz"; /* 36 */
	static const struct {
		const char *id;
		bool async;
		const char *body;
		enum delivery_state final_state; /* or RETRY_WAIT: not final */
		size_t kept_pending, kept_final;
		bool complete_pending, complete_final;
	} cases[] = {
		{"b-async-long", true, long_body, DSTATE_SUCCEEDED, 36, 16, true, false},
		{"b-async-fail", true, long_body, DSTATE_FAILED, 36, 16, true, false},
		{"b-async-retry", true, long_body, DSTATE_RETRY_WAIT, 36, 36, true, true},
		{"b-async-exact", true, "0123456789abcdef", DSTATE_SUCCEEDED, 16, 16, true, true},
		{"b-async-short", true, "{}", DSTATE_FAILED, 2, 2, true, true},
		{"b-async-empty", true, "", DSTATE_SUCCEEDED, 0, 0, true, true},
		/* A sync body is stored cut from the start: only read once final. */
		{"b-sync-long", false, long_body, DSTATE_FAILED, 16, 16, false, false},
		{"b-sync-short", false, "{}", DSTATE_SUCCEEDED, 2, 2, true, true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t r = rec(j, "ep", cases[i].id, "e", cases[i].async, T0, cases[i].body);
		struct journal_pending p;
		CHECK(journal_get(j, r, &p) == RESULT_OK, "%s get", cases[i].id);
		CHECK(p.body_len == cases[i].kept_pending, "%s pending kept %zu", cases[i].id,
		      p.body_len);
		CHECK(p.body_complete == cases[i].complete_pending, "%s pending complete", cases[i].id);
		CHECK(memcmp(p.body, cases[i].body, p.body_len) == 0, "%s pending bytes", cases[i].id);
		journal_pending_free(&p);
		CHECK(finish(j, r, 1, cases[i].final_state == DSTATE_SUCCEEDED ? 200 : 503,
		             cases[i].final_state, T0 + 1000) == 0, "%s finish", cases[i].id);
		CHECK(journal_get(j, r, &p) == RESULT_OK, "%s get", cases[i].id);
		CHECK(p.body_len == cases[i].kept_final, "%s final kept %zu", cases[i].id, p.body_len);
		CHECK(p.body_complete == cases[i].complete_final, "%s final complete", cases[i].id);
		CHECK(memcmp(p.body, cases[i].body, p.body_len) == 0, "%s final bytes", cases[i].id);
		journal_pending_free(&p);
	}
	/* show says where the body was cut. */
	char *out;
	CHECK(run_show(j, NULL, "b-async-long", &out) == 0, "show cut");
	CHECK(strstr(out, "(cut at 16 of 36 bytes)") != NULL, "cut note: %s", out);
	free(out);
	journal_close(j);
	free(dir);
}

/* respond_within: a pending sync row becomes async, with its whole body,
 * counted pending, and recovered as an async one. */
static void test_hand_over(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 16, 0, 0);
	static const char long_body[] = "0123456789abcdefghijklmnopqrstuvwxyz"; /* 36 */
	static const struct {
		const char *id, *body;
		bool running;
		enum delivery_state state;
	} cases[] = {
		{"h-running-long", long_body, true, DSTATE_RUNNING},
		{"h-queued-long", long_body, false, DSTATE_QUEUED},
		{"h-running-short", "{}", true, DSTATE_RUNNING},
	};
	int64_t rows[ARRAY_SIZE(cases)];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t pending = journal_pending_count(j), bytes = journal_pending_bytes(j);
		size_t len = strlen(cases[i].body);
		rows[i] = rec(j, "ep", cases[i].id, "e", false, T0, cases[i].body);
		CHECK(journal_pending_count(j) == pending, "%s: sync is not counted", cases[i].id);
		CHECK(journal_hand_over(j, rows[i], cases[i].running,
		                        (const unsigned char *)cases[i].body, len) == 0,
		      "%s: hand over", cases[i].id);
		CHECK(journal_pending_count(j) == pending + 1, "%s: counted", cases[i].id);
		CHECK(journal_pending_bytes(j) == bytes + (int64_t)len, "%s: bytes", cases[i].id);
		struct journal_pending p;
		CHECK(journal_get(j, rows[i], &p) == RESULT_OK, "%s get", cases[i].id);
		CHECK(p.state == cases[i].state, "%s state %d", cases[i].id, (int)p.state);
		CHECK(p.body_len == len && p.body_complete && memcmp(p.body, cases[i].body, len) == 0,
		      "%s: whole body (%zu)", cases[i].id, p.body_len);
		journal_pending_free(&p);
		/* Async now: a second hand-over is refused. */
		CHECK(journal_hand_over(j, rows[i], true, NULL, 0) < 0, "%s: again", cases[i].id);
	}
	/* Final and not pending: refused. */
	int64_t done = rec(j, "ep", "h-final", "e", false, T0, "{}");
	CHECK(finish(j, done, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "finish");
	CHECK(journal_hand_over(j, done, true, NULL, 0) < 0, "final: refused");
	journal_close(j);

	/* After a crash each is recovered as async, queued, due now. */
	j = open_dir(dir, 16, 0, 0);
	struct journal_pending *list = NULL;
	size_t n = 0;
	CHECK(journal_recover(j, &list, &n) == 0, "recover");
	CHECK(n == ARRAY_SIZE(cases), "recovered %zu", n);
	for (size_t i = 0; i < n; i++) {
		CHECK(list[i].rowid == rows[i] && list[i].state == DSTATE_QUEUED, "recovered %zu", i);
		/* A run cut short counts; a delivery still waiting had none. */
		CHECK(list[i].attempts == (cases[i].running ? 1 : 0), "%s attempts %d", cases[i].id,
		      list[i].attempts);
		journal_pending_free(&list[i]);
	}
	free(list);
	journal_close(j);
	free(dir);
}

static void test_recover(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	/* Received out of order on purpose: recovery sorts by receipt. */
	int64_t q = rec(j, "ep", "q", "e", true, T0 + 30, "{\"q\":1}");
	int64_t w = rec(j, "ep", "w", "e", true, T0 + 10, "{}");
	CHECK(journal_attempt_started(j, w, 1, T0 + 11) == 0, "w started");
	CHECK(finish(j, w, 1, 503, DSTATE_RETRY_WAIT, T0 + 50000) == 0, "w retry");
	int64_t run = rec(j, "ep", "run", "e", true, T0 + 20, "{}");
	CHECK(journal_attempt_started(j, run, 1, T0 + 21) == 0, "run started");
	int64_t srun = rec(j, "ep", "srun", "e", false, T0 + 5, "{}");
	int64_t done_ = rec(j, "ep", "done", "e", true, T0 + 1, "{}");
	CHECK(journal_attempt_started(j, done_, 1, T0 + 2) == 0, "done started");
	CHECK(finish(j, done_, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "done");
	journal_close(j); /* hookd dies */

	j = open_dir(dir, 1024, 0, 0);
	CHECK(journal_pending_count(j) == 3, "pending counted at open");
	struct journal_pending *p = NULL;
	size_t n = 0;
	CHECK(journal_recover(j, &p, &n) == 0, "recover");
	static const struct {
		const char *id;
		enum delivery_state state;
		int attempts;
		int64_t due;
	} want[] = {
		{"w", DSTATE_RETRY_WAIT, 1, T0 + 50000},
		{"run", DSTATE_QUEUED, 1, 0},
		{"q", DSTATE_QUEUED, 0, 0},
	};
	CHECK(n == ARRAY_SIZE(want), "recovered %zu", n);
	for (size_t i = 0; i < n && i < ARRAY_SIZE(want); i++) {
		CHECK_STR(p[i].delivery_id, want[i].id, "order %zu", i);
		CHECK(p[i].state == want[i].state, "%s state %d", want[i].id, p[i].state);
		CHECK(p[i].attempts == want[i].attempts, "%s attempts %d", want[i].id, p[i].attempts);
		CHECK(p[i].next_due_ms == want[i].due, "%s due", want[i].id);
		CHECK(p[i].body_complete, "%s body complete", want[i].id);
		CHECK_STR(p[i].endpoint, "ep", "%s endpoint", want[i].id);
		/* The list leaves bodies and headers in the journal ... */
		CHECK(!p[i].body && p[i].nheaders == 0, "%s listed without body", want[i].id);
		/* ... where each is read back whole. */
		struct journal_pending whole;
		CHECK(journal_get(j, p[i].rowid, &whole) == RESULT_OK, "%s get", want[i].id);
		CHECK(whole.nheaders == 2 &&
		      strcmp(whole.headers[0], "Content-Type: application/json") == 0,
		      "%s headers", want[i].id);
		CHECK(whole.body && whole.body_len == p[i].body_len, "%s body", want[i].id);
		journal_pending_free(&whole);
	}
	CHECK(n == 3 && p[2].rowid == q && p[2].body_len == 7, "q body");
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&p[i]);
	free(p);

	int attempts;
	CHECK(state_of(j, "ep", "srun", &attempts) == DSTATE_FAILED && attempts == 1, "sync failed");
	CHECK(state_of(j, "ep", "done", &attempts) == DSTATE_SUCCEEDED, "done untouched");
	char *sql = xasprintf("SELECT count(*) FROM attempts WHERE status = 'interrupted'"
	                      " AND error = 'interrupted' AND http = 0 AND delivery IN (%lld, %lld)",
	                      (long long)run, (long long)srun);
	CHECK(sql_int(dir, sql) == 2, "interrupted attempts recorded");
	free(sql);
	CHECK(journal_pending_count(j) == 3, "pending after recover");

	char *out;
	CHECK(run_show(j, NULL, "run", &out) == 0, "show run");
	CHECK(strstr(out, "attempt 1: started") && strstr(out, "end unknown, no http, status interrupted"),
	      "show interrupted: %s", out);
	free(out);

	/* The recovered one runs again as attempt 2 and succeeds. */
	CHECK(journal_attempt_started(j, run, 2, T0 + 100) == 0, "run again");
	CHECK(finish(j, run, 2, 200, DSTATE_SUCCEEDED, 0) == 0, "run ok");
	CHECK(state_of(j, "ep", "run", &attempts) == DSTATE_SUCCEEDED && attempts == 2, "run 2");

	/* A second recovery changes nothing more. */
	CHECK(journal_recover(j, &p, &n) == 0 && n == 2, "recover again: %zu", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&p[i]);
	free(p);
	journal_close(j);
	(void)srun;
	free(dir);
}

/* The bytes of pending async bodies (journal_max_bytes): each write that
 * makes a delivery pending or final moves them, and they are counted from
 * the journal itself at open and after recovery. */
static void test_pending_bytes(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	CHECK(journal_pending_bytes(j) == 0, "empty");
	int64_t a = rec(j, "ep", "a", "e", true, T0, "0123456789");
	int64_t b = rec(j, "ep", "b", "e", true, T0 + 1, "abcde");
	int64_t s = rec(j, "ep", "s", "e", false, T0 + 2, "a sync body is never counted");
	int64_t none = rec(j, "ep", "none", "e", true, T0 + 3, "");
	static const char pending_sum[] =
		"SELECT coalesce(sum(length(body)), 0) FROM deliveries WHERE state < 3 AND async = 1";
	enum op { START, RETRY, SUCCEED, FAIL, RESEND_ASYNC, RESEND_SYNC, REQUEUE };
	static const char *const op_names[] = {
		"start", "retry", "succeed", "fail", "resend async", "resend sync", "requeue",
	};
	struct {
		enum op op;
		int64_t *row;
		const char *id, *body; /* resends */
		int64_t want;
	} steps[] = {
		{START, &a, NULL, NULL, 15},          /* running is pending */
		{RETRY, &a, NULL, NULL, 15},          /* so is waiting for a retry */
		{START, &a, NULL, NULL, 15},
		{SUCCEED, &a, NULL, NULL, 5},         /* final: no longer counted */
		{START, &s, NULL, NULL, 5},
		{FAIL, &s, NULL, NULL, 5},
		{START, &b, NULL, NULL, 5},
		{FAIL, &b, NULL, NULL, 0},
		{RESEND_ASYNC, &b, "b", "0123456", 7}, /* the new body counts */
		{REQUEUE, &a, NULL, NULL, 17},          /* a replay is pending again */
		{RESEND_SYNC, &s, "s", "xy", 17},
		{START, &none, NULL, NULL, 17},
		{SUCCEED, &none, NULL, NULL, 17},
	};
	int attempt[4] = {0};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		int64_t r = *steps[i].row;
		int *n = &attempt[r == a ? 0 : r == b ? 1 : r == s ? 2 : 3];
		switch (steps[i].op) {
		case START:
			CHECK(journal_attempt_started(j, r, ++*n, T0 + 10) == 0, "step %zu", i);
			break;
		case RETRY:
			CHECK(finish(j, r, *n, 503, DSTATE_RETRY_WAIT, T0 + 99) == 0, "step %zu", i);
			break;
		case SUCCEED:
			CHECK(finish(j, r, *n, 200, DSTATE_SUCCEEDED, 0) == 0, "step %zu", i);
			break;
		case FAIL:
			CHECK(finish(j, r, *n, 500, DSTATE_FAILED, 0) == 0, "step %zu", i);
			break;
		case RESEND_ASYNC:
		case RESEND_SYNC:
			CHECK(rec(j, "ep", steps[i].id, "e", steps[i].op == RESEND_ASYNC, T0 + 20,
			          steps[i].body) == r, "step %zu", i);
			break;
		case REQUEUE:
			CHECK(journal_requeue(j, r) == RESULT_OK, "step %zu", i);
			break;
		}
		CHECK(journal_pending_bytes(j) == steps[i].want, "step %zu (%s): %lld bytes, want %lld",
		      i, op_names[steps[i].op], (long long)journal_pending_bytes(j),
		      (long long)steps[i].want);
		CHECK(sql_int(dir, pending_sum) == steps[i].want, "step %zu: the journal agrees", i);
	}
	/* b runs when hookd dies: recovery counts that attempt and queues it
	 * again; its bytes stay pending. */
	CHECK(journal_attempt_started(j, b, 2, T0 + 30) == 0, "b running");
	journal_close(j);

	/* Counted from the journal at open, not carried: rows changed behind
	 * hookd's back (as another version of it might leave them) are seen. */
	CHECK(sql_int(dir, "UPDATE deliveries SET body = zeroblob(1000), body_len = 1000"
	                   " WHERE delivery_id = 'a' RETURNING 1") == 1, "grow a's body");
	j = open_dir(dir, 1024, 0, 0);
	CHECK(journal_pending_bytes(j) == 1007, "at open: %lld", (long long)journal_pending_bytes(j));
	struct journal_pending *p;
	size_t n;
	CHECK(journal_recover(j, &p, &n) == 0 && n == 2, "recovered %zu", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&p[i]);
	free(p);
	CHECK(journal_pending_bytes(j) == 1007, "after recovery: %lld",
	      (long long)journal_pending_bytes(j));
	CHECK(journal_attempt_started(j, b, 3, T0 + 40) == 0, "b again");
	CHECK(finish(j, b, 3, 200, DSTATE_SUCCEEDED, 0) == 0, "b done");
	CHECK(journal_pending_bytes(j) == 1000, "b done: %lld", (long long)journal_pending_bytes(j));
	journal_close(j);

	/* A reader (`hookd` commands) asks the journal itself. */
	char err[256];
	struct journal *ro = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(ro && journal_pending_bytes(ro) == 1000, "read-only: %s", err);
	journal_close(ro);
	free(dir);
}

static void test_prune(void)
{
	char *dir = new_state_dir();
	int64_t keep = 1000;
	struct journal *j = open_dir(dir, 1024, keep, 0);
	int64_t now = T0 + 1000000;
	char id[32];
	/* 1,200 final ones older than keep, 3 pending old ones, 5 recent. */
	for (int i = 0; i < 1200; i++) {
		snprintf(id, sizeof(id), "old%d", i);
		final_delivery(j, "ep", id, "e", T0 + i, i % 2 ? 200 : 500);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "pend%d", i);
		rec(j, "ep", id, "e", true, T0 + i, "{}");
	}
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "new%d", i);
		final_delivery(j, "ep", id, "e", now - 10 + i, 200);
	}
	static const int want_batches[] = {JOURNAL_PRUNE_BATCH, JOURNAL_PRUNE_BATCH, 200, 0, 0};
	for (size_t i = 0; i < ARRAY_SIZE(want_batches); i++) {
		int n = journal_prune(j, now);
		CHECK(n == want_batches[i], "age batch %zu: %d", i, n);
	}
	CHECK(sql_int(dir, "SELECT count(*) FROM deliveries") == 8, "8 left");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts") == 5, "attempts cascaded");
	CHECK(sql_int(dir, "SELECT count(*) FROM hook_runs") == 5, "hook runs cascaded");
	CHECK(journal_pending_count(j) == 3, "pending kept");
	int64_t rowid;
	CHECK(journal_find(j, NULL, "pend0", &rowid) == RESULT_OK, "old pending kept");
	CHECK(journal_find(j, NULL, "old7", &rowid) == RESULT_UNKNOWN, "old final pruned");
	journal_close(j);

	/* By rows: max 10, keep off; the oldest final ones go. */
	j = open_dir(dir, 1024, 0, 10);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "m%02d", i);
		final_delivery(j, "ep", id, "e", now + i, 200);
	}
	/* 28 rows: 3 pending (never pruned) + 25 final; 18 over. */
	CHECK(journal_prune(j, now) == 18, "rows pruned");
	CHECK(journal_prune(j, now) == 0, "nothing more");
	CHECK(sql_int(dir, "SELECT count(*) FROM deliveries") == 10, "10 left");
	/* 18 oldest final: new0..new4, m00..m12. */
	CHECK(journal_find(j, NULL, "new4", &rowid) == RESULT_UNKNOWN, "new4 pruned");
	CHECK(journal_find(j, NULL, "m12", &rowid) == RESULT_UNKNOWN, "m12 pruned");
	CHECK(journal_find(j, NULL, "m13", &rowid) == RESULT_OK, "m13 kept");
	CHECK(journal_find(j, NULL, "pend2", &rowid) == RESULT_OK, "pending kept");
	journal_close(j);

	/* Over max_rows by more than a batch: bounded. */
	char *dir2 = new_state_dir();
	j = open_dir(dir2, 1024, 0, 5);
	for (int i = 0; i < JOURNAL_PRUNE_BATCH + 20; i++) {
		snprintf(id, sizeof(id), "x%d", i);
		final_delivery(j, "ep", id, "e", now + i, 200);
	}
	CHECK(journal_prune(j, now) == JOURNAL_PRUNE_BATCH, "first batch");
	CHECK(journal_prune(j, now) == 15, "rest");
	CHECK(journal_prune(j, now) == 0, "done");
	journal_close(j);
	free(dir2);
	free(dir);
}

/*
 * journal_prune recounts the pending deliveries (the counts kept in memory)
 * only in a quiet moment, when no batch was written since its previous
 * call: the recount reads every pending row, too much each second under
 * load. A change made behind the module's back shows the recount.
 */
static void test_prune_recount(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	journal_set_batching(j, true);
	rec(j, "ep", "p1", "e", true, T0, "{}");
	rec(j, "ep", "p2", "e", true, T0, "{}");
	CHECK(journal_flush(j) == 0, "flush");
	CHECK(journal_pending_count(j) == 2, "two pending");
	static const struct {
		const char *id;   /* made final behind the module's back, or NULL */
		bool write;       /* a batch written before the prune */
		int64_t want;     /* the count after the prune */
	} steps[] = {
		{"p1", false, 2}, /* a batch since the last prune (the records): no recount */
		{NULL, false, 1}, /* quiet: recounted */
		{"p2", true, 2},  /* p3 written, p2 gone: not yet */
		{NULL, false, 1}, /* quiet: recounted (p3) */
	};
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		if (steps[i].id) {
			char *sql = xasprintf("UPDATE deliveries SET state = %d WHERE delivery_id = '%s'"
			                      " RETURNING state", DSTATE_SUCCEEDED, steps[i].id);
			CHECK(sql_int(dir, sql) == DSTATE_SUCCEEDED, "step %zu: %s made final", i,
			      steps[i].id);
			free(sql);
		}
		if (steps[i].write) {
			rec(j, "ep", "p3", "e", true, T0, "{}");
			CHECK(journal_flush(j) == 0, "step %zu: flush", i);
		}
		CHECK(journal_prune(j, T0) == 0, "step %zu: nothing to prune", i);
		CHECK(journal_pending_count(j) == steps[i].want, "step %zu: pending %lld, want %lld",
		      i, (long long)journal_pending_count(j), (long long)steps[i].want);
	}
	journal_close(j);
	free(dir);
}

static void test_find_requeue(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 8, 0, 0);
	int64_t a = final_delivery(j, "alpha", "dup", "e", T0, 200);
	int64_t b = final_delivery(j, "beta", "dup", "e", T0 + 1, 500);
	int64_t u = final_delivery(j, "alpha", "uniq", "e", T0 + 2, 200);
	const struct {
		const char *ep, *id;
		enum result want;
		int64_t *rowid;
	} cases[] = {
		{NULL, "dup", RESULT_AMBIGUOUS, NULL},
		{"alpha", "dup", RESULT_OK, &a},
		{"beta", "dup", RESULT_OK, &b},
		{"gamma", "dup", RESULT_UNKNOWN, NULL},
		{NULL, "uniq", RESULT_OK, &u},
		{"beta", "uniq", RESULT_UNKNOWN, NULL},
		{NULL, "nope", RESULT_UNKNOWN, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t rowid = -1;
		enum result r = journal_find(j, cases[i].ep, cases[i].id, &rowid);
		CHECK(r == cases[i].want, "find %zu: %d", i, r);
		if (cases[i].rowid)
			CHECK(rowid == *cases[i].rowid, "find %zu rowid", i);
	}
	/* show: ambiguous and unknown exit 1, with --endpoint 0. */
	char *out;
	CHECK(run_show(j, NULL, "dup", &out) == 1, "show ambiguous");
	free(out);
	CHECK(run_show(j, "beta", "dup", &out) == 0 && strstr(out, "endpoint:    beta"),
	      "show endpoint: %s", out);
	free(out);
	CHECK(run_show(j, NULL, "nope", &out) == 1 && out[0] == '\0', "show unknown");
	free(out);

	/* Requeue (replay): final -> queued async, due now; pending refused. */
	int64_t pend = rec(j, "alpha", "p", "e", true, T0, "{}");
	int64_t cut = final_delivery(j, "alpha", "big", "e", T0, 200);
	(void)cut;
	int64_t big_async = rec(j, "alpha", "bigasync", "e", true, T0, "0123456789abcdef");
	CHECK(finish(j, big_async, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "bigasync");
	const struct {
		int64_t *rowid;
		enum result want;
	} rq[] = {
		{&b, RESULT_OK},
		{&b, RESULT_PENDING}, /* now pending */
		{&pend, RESULT_PENDING},
		{&big_async, RESULT_BODY_CUT}, /* cut body: cannot run again */
		{&u, RESULT_OK},
	};
	int64_t none = 424242;
	CHECK(journal_requeue(j, none) == RESULT_UNKNOWN, "requeue unknown");
	int64_t before = journal_pending_count(j);
	for (size_t i = 0; i < ARRAY_SIZE(rq); i++)
		CHECK(journal_requeue(j, *rq[i].rowid) == rq[i].want, "requeue %zu", i);
	CHECK(journal_pending_count(j) == before + 2, "requeued pending");
	int attempts;
	CHECK(state_of(j, "beta", "dup", &attempts) == DSTATE_QUEUED && attempts == 1, "b queued");
	struct journal_pending *p;
	size_t n;
	CHECK(journal_recover(j, &p, &n) == 0 && n == 3, "requeued ones recovered: %zu", n);
	for (size_t i = 0; i < n; i++)
		journal_pending_free(&p[i]);
	free(p);
	journal_close(j);
	free(dir);
}

/* A replay's attempt is marked in the journal, and only that one; `show`
 * and `show --json` say so. */
static void test_replay_marks(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	int64_t r = final_delivery(j, "alpha", "rp", "e", T0, 500);
	CHECK(journal_requeue(j, r) == RESULT_OK, "requeue");
	struct journal_pending p;
	CHECK(journal_get(j, r, &p) == RESULT_OK && p.replay_attempt == 2, "replay_attempt %d",
	      p.replay_attempt);
	journal_pending_free(&p);
	CHECK(journal_attempt_started(j, r, 2, T0 + 10) == 0, "attempt 2 started");
	CHECK(finish(j, r, 2, 503, DSTATE_RETRY_WAIT, T0 + 100) == 0, "attempt 2, a retry next");
	CHECK(journal_attempt_started(j, r, 3, T0 + 100) == 0, "attempt 3 started");
	CHECK(finish(j, r, 3, 200, DSTATE_SUCCEEDED, 0) == 0, "attempt 3");
	char *marks = sql_text(dir, "SELECT group_concat(replay, ',') FROM"
	                            " (SELECT replay FROM attempts ORDER BY attempt)");
	CHECK_STR(marks, "0,1,0", "the replayed attempt, only");
	free(marks);
	char *out;
	CHECK(run_show(j, "alpha", "rp", &out) == 0, "show");
	CHECK(out && strstr(out, "\nattempt 2: replay, started ") &&
	              strstr(out, "\nattempt 1: started ") && strstr(out, "\nattempt 3: started "),
	      "show marks attempt 2: %s", out);
	free(out);
	struct strbuf sb, err;
	sb_init(&sb);
	sb_init(&err);
	CHECK(journal_format_show_json(j, "alpha", "rp", NULL, &sb, &err) == RESULT_OK, "show --json");
	json_object *o = json_tokener_parse(sb.buf ? sb.buf : "");
	json_object *list = NULL;
	CHECK(o && json_object_object_get_ex(o, "attempt_list", &list) &&
	              json_object_array_length(list) == 3, "attempt_list: %s", sb.buf);
	for (size_t i = 0; list && i < json_object_array_length(list); i++) {
		json_object *rp = NULL;
		json_object_object_get_ex(json_object_array_get_idx(list, i), "replay", &rp);
		CHECK(rp && json_object_is_type(rp, json_type_boolean) &&
		              json_object_get_boolean(rp) == (i == 1),
		      "attempt %zu replay", i + 1);
	}
	json_object_put(o);
	sb_free(&sb);
	sb_free(&err);
	journal_close(j);
	free(dir);
}

/* A journal of schema 1 (no replay columns): `show` reads it as it is while
 * an older hookd runs on it; the next hookd to open it adds them. */
/* A state dir whose journal is of an older schema (1 or 2), as that
 * hookd left it, with one delivery ("old" at alpha) that ended 200. */
static char *dir_of_schema(int version)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	final_delivery(j, "alpha", "old", "e", T0, 200);
	journal_close(j);
	sql_int(dir, "ALTER TABLE attempts DROP COLUMN client_gone");
	if (version < 2) {
		sql_int(dir, "ALTER TABLE attempts DROP COLUMN replay");
		sql_int(dir, "ALTER TABLE deliveries DROP COLUMN replay_attempt");
	}
	sql_int(dir, version < 2 ? "PRAGMA user_version = 1" : "PRAGMA user_version = 2");
	return dir;
}

static void test_schema_1(void)
{
	char *dir = dir_of_schema(1);
	CHECK(sql_int(dir, "SELECT count(*) FROM pragma_table_info('attempts')"
	                   " WHERE name = 'replay'") == 0, "made a schema 1 file");
	char err[256] = "";
	struct journal *j = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(j != NULL, "readonly on schema 1: %s", err);
	char *out = NULL;
	CHECK(j && run_show(j, "alpha", "old", &out) == 0 && out &&
	              strstr(out, "\nattempt 1: started "), "show on schema 1: %s", out);
	free(out);
	journal_close(j);
	j = open_dir(dir, 1024, 0, 0);
	CHECK(sql_int(dir, "PRAGMA user_version") == 3, "migrated to 3");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE replay = 0 AND client_gone = 0") ==
	              1,
	      "the old attempt: no replay, its sender not gone");
	CHECK(sql_int(dir, "SELECT replay_attempt FROM deliveries") == 0, "replay_attempt 0");
	journal_close(j);
	free(dir);
}

/* One attempt's outcome and whether its sender hung up before the answer,
 * as show and show --json say it. */
static void check_gone_shown(struct journal *j, const char *id, bool gone)
{
	char *out = NULL;
	CHECK(run_show(j, "alpha", id, &out) == 0 && out, "show %s", id);
	CHECK(out && (strstr(out, "http 200, sender gone before the answer, status ok") != NULL) ==
	                     gone,
	      "show %s says the sender %s: %s", id, gone ? "went" : "waited", out);
	free(out);
	struct strbuf sb, err;
	sb_init(&sb);
	sb_init(&err);
	CHECK(journal_format_show_json(j, "alpha", id, NULL, &sb, &err) == RESULT_OK, "show --json %s", id);
	json_object *o = json_tokener_parse(sb.buf ? sb.buf : ""), *list = NULL, *g = NULL;
	if (o && json_object_object_get_ex(o, "attempt_list", &list))
		json_object_object_get_ex(json_object_array_get_idx(list, 0), "client_gone", &g);
	CHECK(g && json_object_is_type(g, json_type_boolean) && json_object_get_boolean(g) == gone,
	      "show --json %s: client_gone %d: %s", id, gone, sb.buf);
	json_object_put(o);
	sb_free(&sb);
	sb_free(&err);
}

/* journal_query's visitor: counts the rows, and those whose sender went. */
struct gone_count {
	int rows, gone;
};
static bool count_gone(const struct journal_row *row, void *arg)
{
	struct gone_count *n = arg;
	n->rows++;
	n->gone += row->client_gone;
	return true;
}

/* A journal of schema 2 (no client_gone): `show` reads it while an older
 * hookd runs on it; the next hookd to open it adds the column, its old
 * attempts unmarked; an attempt's sender that hung up is recorded with its
 * outcome, or after it (journal_client_gone). */
static void test_schema_2(void)
{
	char *dir = dir_of_schema(2);
	char err[256] = "";
	struct journal *j = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(j != NULL, "readonly on schema 2: %s", err);
	if (j) {
		check_gone_shown(j, "old", false);
		/* The list (journal export's, the page's) reads it as it is too. */
		struct journal_filter f = {.state = -1, .limit = 10};
		struct gone_count n = {0, 0};
		CHECK(journal_query(j, &f, count_gone, &n) == RESULT_OK && n.rows == 1 && n.gone == 0,
		      "query on schema 2: %d rows", n.rows);
	}
	journal_close(j);
	j = open_dir(dir, 1024, 0, 0);
	CHECK(sql_int(dir, "PRAGMA user_version") == 3, "migrated to 3");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE client_gone = 0") == 1,
	      "the old attempt: its sender not gone");
	check_gone_shown(j, "old", false);

	/* Known as the attempt ends: written with its outcome. */
	int64_t r = rec(j, "alpha", "went", "e", false, T0 + 1, "{}");
	struct journal_attempt a = {
		.attempt = 1, .started_ms = T0 + 1, .finished_ms = T0 + 5, .http = 200,
		.status = "ok", .client_gone = true,
	};
	CHECK(journal_attempt_finished(j, r, &a, DSTATE_SUCCEEDED, 0) == 0, "finished, gone");
	check_gone_shown(j, "went", true);
	/* Learnt once the outcome is written (the answer waited for its commit). */
	r = final_delivery(j, "alpha", "later", "e", T0 + 2, 200);
	check_gone_shown(j, "later", false);
	CHECK(journal_client_gone(j, r, 1) == 0, "marked gone later");
	check_gone_shown(j, "later", true);
	/* The list (the deliveries page) says it of the last attempt. */
	struct journal_filter f = {.state = -1, .limit = 10};
	struct gone_count n = {0, 0};
	CHECK(journal_query(j, &f, count_gone, &n) == RESULT_OK, "query");
	CHECK(n.gone == 2 && n.rows == 3, "query: %d of %d rows gone", n.gone, n.rows);
	journal_close(j);
	free(dir);
}

/* A new journal's pages are 2 KiB (open_rw); one made with other pages
 * (an older hookd's 4 KiB) opens and goes on with its own. */
static void test_page_size(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	final_delivery(j, "alpha", "before", "e", T0, 200);
	journal_close(j);
	CHECK(sql_int(dir, "PRAGMA page_size") == 2048, "a new journal: 2 KiB pages");
	char *path = xasprintf("%s/journal.db", dir);
	sqlite3 *db;
	CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	              sqlite3_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096;"
	                               " VACUUM; PRAGMA journal_mode = WAL;",
	                           NULL, NULL, NULL) == SQLITE_OK,
	      "made a journal of 4 KiB pages");
	sqlite3_close(db);
	free(path);
	CHECK(sql_int(dir, "PRAGMA page_size") == 4096, "4 KiB pages");
	j = open_dir(dir, 1024, 0, 0);
	final_delivery(j, "alpha", "after", "e", T0 + 1, 200);
	CHECK(state_of(j, "alpha", "before", NULL) == DSTATE_SUCCEEDED &&
	              state_of(j, "alpha", "after", NULL) == DSTATE_SUCCEEDED,
	      "both rows there");
	journal_close(j);
	CHECK(sql_int(dir, "PRAGMA page_size") == 4096, "it keeps its pages");
	free(dir);
}

static void test_events(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	/* id, event, received offset, outcome */
	static const struct {
		const char *ep, *id, *event;
		int64_t at;
		int http;         /* 0: left pending without an attempt */
		enum delivery_state st;
	} rows[] = {
		{"nf", "d1", "build:start", 1000, 200, DSTATE_SUCCEEDED},
		{"nf", "d2", "build:failure", 2000, 500, DSTATE_FAILED},
		{"gh", "d3", "push", 3000, 503, DSTATE_RETRY_WAIT},
		{"gh", "d4", "push", 4000, 0, DSTATE_QUEUED},
		{"nf", "d5", "build:success", 5000, 200, DSTATE_SUCCEEDED},
		{"gh", "d\"6\\\x01", "deploy", 6000, 404, DSTATE_FAILED},
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		int64_t r = rec(j, rows[i].ep, rows[i].id, rows[i].event, true, T0 + rows[i].at, "{}");
		if (rows[i].http) {
			CHECK(journal_attempt_started(j, r, 1, T0 + rows[i].at) == 0, "start %zu", i);
			CHECK(finish(j, r, 1, rows[i].http, rows[i].st, T0 + 99999) == 0, "finish %zu", i);
		}
	}
	static const struct {
		struct events_filter f;
		const char *ids; /* newest first, space-separated */
	} cases[] = {
		{{.limit = 100}, "d\"6\\\x01 d5 d4 d3 d2 d1"},
		{{.limit = 0}, "d\"6\\\x01 d5 d4 d3 d2 d1"}, /* 0: the default */
		{{.limit = 2}, "d\"6\\\x01 d5"},
		{{.failed = true, .limit = 100}, "d\"6\\\x01 d3 d2"},
		{{.event_glob = "build:*", .limit = 100}, "d5 d2 d1"},
		{{.event_glob = "build:*", .limit = 1}, "d5"},
		{{.event_glob = "push", .failed = true, .limit = 100}, "d3"},
		{{.event_glob = "nothing*", .limit = 100}, ""},
		{{.since_ms = T0 + 3000, .limit = 100}, "d\"6\\\x01 d5 d4 d3"},
		{{.since_ms = T0 + 3001, .failed = true, .limit = 100}, "d\"6\\\x01"},
		{{.since_ms = T0 + 999999, .limit = 100}, ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int json = 0; json < 2; json++) {
			struct events_filter f = cases[i].f;
			f.json = json;
			char *out;
			CHECK(run_events(j, &f, &out) == 0, "events %zu exit", i);
			struct strbuf got;
			sb_init(&got);
			if (json) {
				json_object *arr = json_tokener_parse(out);
				CHECK(arr && json_object_is_type(arr, json_type_array), "events %zu json: %s",
				      i, out);
				for (size_t k = 0; arr && k < json_object_array_length(arr); k++) {
					json_object *o = json_object_array_get_idx(arr, k), *v;
					static const char *const keys[] = {"id", "endpoint", "event", "state",
					                                   "http", "attempts", "received_at"};
					for (size_t kk = 0; kk < ARRAY_SIZE(keys); kk++)
						CHECK(json_object_object_get_ex(o, keys[kk], &v), "key %s", keys[kk]);
					json_object_object_get_ex(o, "id", &v);
					if (k)
						sb_putc(&got, ' ');
					sb_puts(&got, json_object_get_string(v));
				}
				json_object_put(arr);
			} else {
				/* The header, then one line a row; the id is column 3. */
				CHECK(strncmp(out, "RECEIVED_AT", 11) == 0, "events %zu header: %s", i, out);
				const char *line = strchr(out, '\n');
				size_t idcol = strstr(out, "ID ") - out;
				size_t k = 0;
				while (line && line[1]) {
					line++;
					const char *end = strchr(line + idcol, ' ');
					if (k++)
						sb_putc(&got, ' ');
					sb_append(&got, line + idcol, (size_t)(end - line - idcol));
					line = strchr(line, '\n');
				}
			}
			const char *want = cases[i].ids;
			if (!json && strchr(want, '"')) {
				/* Text escapes the control byte; JSON carries it as it is. */
				struct strbuf w;
				sb_init(&w);
				for (const char *c = want; *c; c++) {
					if (*c == '\x01')
						sb_puts(&w, "\\x01");
					else
						sb_putc(&w, *c);
				}
				CHECK_STR(got.buf ? got.buf : "", w.buf, "events %zu text", i);
				sb_free(&w);
			} else {
				CHECK_STR(got.buf ? got.buf : "", want, "events %zu %s", i, json ? "json" : "text");
			}
			sb_free(&got);
			free(out);
		}
	}

	/* One row in full, both ways. */
	struct events_filter f = {.event_glob = "build:failure", .limit = 10, .json = true};
	char *out;
	CHECK(run_events(j, &f, &out) == 0, "json row");
	char when[40];
	format_rfc3339_ms(T0 + 2000, when, sizeof(when));
	char *want = xasprintf("[\n  {\"id\":\"d2\",\"endpoint\":\"nf\",\"event\":\"build:failure\","
	                       "\"state\":\"failed\",\"http\":500,\"attempts\":1,\"received_at\":\"%s\"}\n]\n",
	                       when);
	CHECK_STR(out, want, "json row");
	free(want);
	free(out);
	f = (struct events_filter){.event_glob = "push", .limit = 10, .json = true};
	CHECK(run_events(j, &f, &out) == 0 && strstr(out, "\"state\":\"queued\",\"http\":null,\"attempts\":0"),
	      "pending row: %s", out);
	free(out);
	f = (struct events_filter){.event_glob = "nothing", .json = true};
	CHECK(run_events(j, &f, &out) == 0, "empty json");
	CHECK_STR(out, "[]\n", "empty json");
	free(out);
	f = (struct events_filter){.event_glob = "build:failure", .limit = 10};
	CHECK(run_events(j, &f, &out) == 0, "text row");
	want = xasprintf("RECEIVED_AT               ENDPOINT  ID  EVENT          STATE   HTTP  ATTEMPTS\n"
	                 "%s  nf        d2  build:failure  failed  500   1\n", when);
	CHECK_STR(out, want, "text row");
	free(want);
	free(out);
	journal_close(j);
	free(dir);
}

static void test_show(void)
{
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	static const struct journal_header hdrs[] = {
		{"Content-Type", "application/json"},
		{"X-Evil", "a\x1b[31mred"},
	};
	struct journal_new d = {
		.endpoint = "nf", .delivery_id = "sh1", .event = "build:start",
		.remote_addr = "10.0.0.1", .async = true, .received_ms = T0,
		.headers = hdrs, .nheaders = 2,
		.body = (const unsigned char *)"{\"a\":\"\xc3\xa9t\xc3\xa9\"}\n", .body_len = 14,
	};
	int64_t r = journal_record(j, &d);
	CHECK(journal_attempt_started(j, r, 1, T0 + 1) == 0, "started");
	struct journal_hook hooks[] = {
		{.hook = "build/10-first", .exit_code = 0, .ms = 4, .output = "ok\n", .output_len = 3},
		{.hook = "build/20-second", .exit_code = -1, .signal = "SIGKILL", .ms = 30000,
		 .error = "timed out after 30s", .output = "\x1b[1mbold\nlast line", .output_len = 18},
	};
	struct journal_attempt a = {
		.attempt = 1, .started_ms = T0 + 1, .finished_ms = T0 + 30001, .http = 504,
		.status = "timeout", .error = "timed out", .hooks = hooks, .nhooks = 2,
	};
	CHECK(journal_attempt_finished(j, r, &a, DSTATE_FAILED, 0) == 0, "finished");
	char *out;
	CHECK(run_show(j, NULL, "sh1", &out) == 0, "show");
	static const char *const want[] = {
		"endpoint:    nf\n",
		"id:          sh1\n",
		"event:       build:start\n",
		"state:       failed\n",
		"attempts:    1\n",
		"remote_addr: 10.0.0.1\n",
		"http:        504\n",
		"  Content-Type: application/json\n",
		"  X-Evil: a\\x1b[31mred\n",
		"body (14 bytes):\n  {\"a\":\"\xc3\xa9t\xc3\xa9\"}\n",
		"attempt 1: started ", ", 30000 ms, http 504, status timeout, error: timed out\n",
		"  hook build/10-first: exit 0, signal -, 4 ms\n    output (tail):\n      ok\n",
		"  hook build/20-second: exit -, signal SIGKILL, 30000 ms, error: timed out after 30s\n",
		"      \\x1b[1mbold\n      last line\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		CHECK(strstr(out, want[i]) != NULL, "show has %s", want[i]);
	CHECK(strchr(out, '\x1b') == NULL, "no raw escape reaches the terminal");
	free(out);

	/* Binary bodies are shown as base64. */
	static const unsigned char bin[] = {0, 1, 2, 0xff, 'a'};
	d.delivery_id = "bin";
	d.body = bin;
	d.body_len = sizeof(bin);
	journal_record(j, &d);
	CHECK(run_show(j, NULL, "bin", &out) == 0, "show bin");
	CHECK(strstr(out, "body (5 bytes), not text, base64:\n  AAEC/2E=\n") != NULL, "base64: %s", out);
	CHECK(strstr(out, "state:       queued\n") && strstr(out, "no attempt yet"), "queued: %s", out);
	free(out);
	journal_close(j);
	free(dir);
}

static void test_readonly(void)
{
	char *dir = new_state_dir();
	struct journal *w = open_dir(dir, 1024, 0, 0);
	final_delivery(w, "ep", "ro1", "e", T0, 200);
	char err[256] = "";
	struct journal *r = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(r != NULL, "readonly beside a writer: %s", err);
	if (r) {
		char *out;
		struct events_filter f = {.limit = 10, .json = true};
		CHECK(run_events(r, &f, &out) == 0 && strstr(out, "\"ro1\""), "reader sees: %s", out);
		free(out);
		/* The writer goes on while the reader is open; the reader's next
		 * statement sees it. */
		final_delivery(w, "ep", "ro2", "e", T0 + 1, 500);
		rec(w, "ep", "ro3", "e", true, T0 + 2, "{}");
		CHECK(run_events(r, &f, &out) == 0 && strstr(out, "\"ro2\"") && strstr(out, "\"ro3\""),
		      "reader sees new rows: %s", out);
		free(out);
		CHECK(run_show(r, NULL, "ro2", &out) == 0 && strstr(out, "state:       failed"),
		      "reader show");
		free(out);
		CHECK(journal_pending_count(r) == 1, "reader pending count");
		int64_t rowid;
		CHECK(journal_find(r, NULL, "ro1", &rowid) == RESULT_OK, "reader find");
		struct journal_new d = {.endpoint = "ep", .delivery_id = "x", .event = "e"};
		CHECK(journal_record(r, &d) < 0, "reader cannot write");
		CHECK(journal_prune(r, T0) < 0, "reader cannot prune");
		journal_close(r);
	}
	journal_close(w);

	/* After the daemon is gone (WAL files removed on close) still readable. */
	r = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(r != NULL, "readonly without daemon: %s", err);
	int64_t rowid;
	CHECK(r && journal_find(r, NULL, "ro3", &rowid) == RESULT_OK, "reader after close");
	journal_close(r);
	free(dir);
}

/* Batching: sync records and outcomes wait in one transaction for
 * journal_flush; the writer sees them at once, a reader after the flush. */
static void test_batching(void)
{
	char *dir = new_state_dir();
	struct journal *w = open_dir(dir, 1024, 0, 0);
	char err[256] = "";
	struct journal *r = journal_open_readonly(opts_for(dir, 0, 0, 0), err, sizeof(err));
	CHECK(r != NULL, "reader: %s", err);
	if (!r) {
		journal_close(w);
		free(dir);
		return;
	}
	int64_t rowid;
	journal_set_batching(w, true);
	CHECK(journal_flush(w) == 0, "flush with no batch");

	int64_t b1 = rec(w, "ep", "b1", "e", false, T0, "{}");
	CHECK(state_of(w, "ep", "b1", NULL) == DSTATE_RUNNING, "writer sees its batch");
	CHECK(journal_find(r, NULL, "b1", &rowid) == RESULT_UNKNOWN, "reader does not yet");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(journal_find(r, NULL, "b1", &rowid) == RESULT_OK && rowid == b1, "reader after the flush");

	/* An outcome joins the batch, and so does an async record (group
	 * commit: the caller syncs the WAL after the batch's commit). */
	CHECK(finish(w, b1, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "finish in a batch");
	CHECK(state_of(r, "ep", "b1", NULL) == DSTATE_RUNNING, "outcome not yet visible");
	uint64_t batch = journal_batch_id(w);
	CHECK(batch > journal_committed_id(w), "the open batch is not committed");
	rec(w, "ep", "b2", "e", true, T0 + 1, "{}");
	CHECK(journal_batch_id(w) == batch, "the async record joined the open batch");
	CHECK(journal_find(r, NULL, "b2", &rowid) == RESULT_UNKNOWN, "async record not yet visible");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(journal_committed_id(w) == batch, "that batch committed");
	CHECK(journal_sync_fd(w) >= 0 && fdatasync(journal_sync_fd(w)) == 0, "the WAL syncs");
	CHECK(state_of(r, "ep", "b1", NULL) == DSTATE_SUCCEEDED, "outcome committed");
	CHECK(state_of(r, "ep", "b2", NULL) == DSTATE_QUEUED, "async record committed");
	CHECK(journal_pending_count(w) == 1, "pending count");
	CHECK(journal_losses(w) == 0, "no batch lost");

	/* Checkpoints on a connection of their own; the writer counts frames. */
	journal_defer_checkpoints(w);
	struct journal_checkpointer *ck = journal_checkpointer_open(w, err, sizeof(err));
	CHECK(ck != NULL, "checkpointer: %s", err);
	rec(w, "ep", "b2x", "e", false, T0 + 1, "{}");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(journal_wal_frames(w) > 0, "the WAL holds frames");
	CHECK(ck && journal_checkpoint(ck, err, sizeof(err)) == 0, "checkpoint: %s", err);
	CHECK(journal_checkpoint_here(w) == 0, "checkpoint on the writer's connection");
	CHECK(state_of(r, "ep", "b2x", NULL) == DSTATE_RUNNING, "still there after checkpoints");
	journal_checkpointer_close(ck);

	/* A failed write undoes only itself. */
	int64_t b3 = rec(w, "ep", "b3", "e", false, T0 + 2, "{}");
	CHECK(finish(w, 999999, 1, 200, DSTATE_SUCCEEDED, 0) < 0, "unknown row fails");
	CHECK(finish(w, b3, 1, 500, DSTATE_FAILED, 0) == 0, "batch goes on");
	CHECK(journal_flush(w) == 0, "flush after a failed write");
	int attempts = 0;
	CHECK(state_of(r, "ep", "b3", &attempts) == DSTATE_FAILED && attempts == 1, "b3 kept");

	/* Turning batching off, and closing, flush. */
	rec(w, "ep", "b4", "e", false, T0 + 3, "{}");
	journal_set_batching(w, false);
	CHECK(journal_find(r, NULL, "b4", &rowid) == RESULT_OK, "batching off flushes");
	rec(w, "ep", "b5", "e", false, T0 + 4, "{}");
	CHECK(journal_find(r, NULL, "b5", &rowid) == RESULT_OK, "unbatched write commits at once");
	journal_set_batching(w, true);
	rec(w, "ep", "b6", "e", false, T0 + 5, "{}");
	journal_close(w);
	CHECK(journal_find(r, NULL, "b6", &rowid) == RESULT_OK, "close flushes");
	journal_close(r);
	free(dir);
}

/* Whether the bytes occur anywhere in the file. */
static bool file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	struct strbuf sb;
	sb_init(&sb);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_append(&sb, buf, n);
	fclose(f);
	bool found = sb.buf && memmem(sb.buf, sb.len, needle, strlen(needle)) != NULL;
	sb_free(&sb);
	return found;
}

static void test_credentials(void)
{
	/* Which names are credentials: test_config's table. Here: the
	 * journal never stores one. */
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 1024, 0, 0);
	static const struct journal_header hdrs[] = {
		{"Content-Type", "application/json"},
		{"authorization", "Bearer SECRET-ONE"},
		{"X-Hub-Signature-256", "sha256=SECRET-TWO"},
		{"X-Gitlab-Token", "SECRET-THREE"},
		{"Cookie", "sid=SECRET-FOUR"},
		{"X-Injected", "a\r\nX-Fake: b"},
	};
	struct journal_new d = {
		.endpoint = "ep", .delivery_id = "c1", .event = "e", .async = true,
		.received_ms = T0, .headers = hdrs, .nheaders = ARRAY_SIZE(hdrs),
		.body = (const unsigned char *)"{}", .body_len = 2,
	};
	int64_t r = journal_record(j, &d);
	struct journal_pending p;
	CHECK(journal_get(j, r, &p) == RESULT_OK, "get");
	CHECK(p.nheaders == 2, "2 headers kept: %zu", p.nheaders);
	CHECK(p.nheaders >= 1 && strcmp(p.headers[0], "Content-Type: application/json") == 0, "ct");
	CHECK(p.nheaders >= 2 && strcmp(p.headers[1], "X-Injected: a  X-Fake: b") == 0,
	      "one line a header: %s", p.nheaders >= 2 ? p.headers[1] : "");
	journal_pending_free(&p);
	char *db = xasprintf("%s/journal.db", dir), *wal = xasprintf("%s/journal.db-wal", dir);
	static const char *const secrets[] = {"SECRET-ONE", "SECRET-TWO", "SECRET-THREE",
	                                      "SECRET-FOUR"};
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++) {
		CHECK(!file_has(db, secrets[i]) && !file_has(wal, secrets[i]), "%s stored", secrets[i]);
	}
	CHECK(file_has(wal, "application/json") || file_has(db, "application/json"),
	      "the search itself works");
	journal_close(j);
	free(db);
	free(wal);
	free(dir);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * The sync hot path: lookup + record + attempt_started + attempt_finished,
 * with a 1 KiB body, the usual headers and one hook with some output; and
 * the async path (whose record is fsync'd).
 */
static void bench(void)
{
	int n = 500;
	const char *env = getenv("HOOKD_JOURNAL_BENCH");
	if (env && !parse_int(env, 1, 10000000, &n))
		n = 500;
	char *dir = new_state_dir();
	struct journal *j = open_dir(dir, 64 * 1024, 0, 0);
	char body[1024];
	memset(body, 'x', sizeof(body) - 1);
	body[0] = '{', body[sizeof(body) - 2] = '}', body[sizeof(body) - 1] = '\0';
	static const struct journal_header hdrs[] = {
		{"Host", "127.0.0.1:9000"},
		{"User-Agent", "Northflank-Webhooks/1.0"},
		{"Content-Type", "application/json"},
		{"Content-Length", "1023"},
		{"X-Northflank-Notification-Integration-Event-Type", "build:start"},
		{"X-Northflank-Notification-Integration-Event-Id", "0123456789abcdef"},
		{"X-Northflank-Notification-Integration-Id", "integration"},
		{"X-Northflank-Notification-Integration-Name", "my integration"},
	};
	for (int mode = 0; mode < 2; mode++) {
		bool async = mode == 1;
		int count = async ? (n < 200 ? n : 200) : n; /* fsync'd: keep it short */
		double *cycle = xcalloc((size_t)count, sizeof(double));
		double t0 = now_us();
		for (int i = 0; i < count; i++) {
			double c0 = now_us();
			char id[48];
			snprintf(id, sizeof(id), "bench-%d-%d", mode, i);
			enum delivery_state st;
			int attempts;
			int64_t rowid;
			if (journal_lookup(j, "nf", id, &st, &attempts, &rowid) != RESULT_UNKNOWN) {
				CHECK(0, "bench lookup");
				break;
			}
			struct journal_new d = {
				.endpoint = "nf", .delivery_id = id, .event = "build:start",
				.remote_addr = "127.0.0.1", .async = async, .received_ms = T0 + i,
				.headers = hdrs, .nheaders = ARRAY_SIZE(hdrs),
				.body = (const unsigned char *)body, .body_len = sizeof(body) - 1,
			};
			rowid = journal_record(j, &d);
			struct journal_hook h = {.hook = "build:start", .exit_code = 0, .ms = 2,
			                         .output = "deployed\n", .output_len = 9};
			struct journal_attempt a = {.attempt = 1, .started_ms = T0 + i,
			                            .finished_ms = T0 + i + 2, .http = 200,
			                            .status = "ok", .hooks = &h, .nhooks = 1};
			if (rowid < 0 || journal_attempt_started(j, rowid, 1, T0 + i) < 0 ||
			    journal_attempt_finished(j, rowid, &a, DSTATE_SUCCEEDED, 0) < 0) {
				CHECK(0, "bench cycle %d", i);
				break;
			}
			cycle[i] = now_us() - c0;
		}
		double us = (now_us() - t0) / count;
		/* The tail shows the WAL checkpoints (every ~1000 pages). */
		qsort(cycle, (size_t)count, sizeof(double), cmp_double);
		printf("journal bench: %s delivery cycle: mean %.1f us, p50 %.1f, p99 %.1f, max %.1f"
		       " (%d cycles)\n", async ? "async" : "sync", us, cycle[count / 2],
		       cycle[count * 99 / 100], cycle[count - 1], count);
		free(cycle);
		CHECK(us < 20000, "a %s cycle takes %.1f us", async ? "async" : "sync", us);
	}
	journal_close(j);
	free(dir);
}

/* journal_record_final for an id not seen before (one write, no savepoint
 * of its own in the batch) leaves what journal_record and then
 * journal_attempt_finished leave; an attempt that cannot be written takes
 * its row out again, and only when that fails too is the batch lost. */
static void test_record_final(void)
{
	char *dir = new_state_dir();
	struct journal *w = open_dir(dir, 1024, 0, 0);
	journal_set_batching(w, true);
	struct journal_new d = {
		.endpoint = "ep", .delivery_id = "f1", .event = "e", .remote_addr = "127.0.0.1",
		.received_ms = T0, .headers = std_headers, .nheaders = ARRAY_SIZE(std_headers),
		.body = (const unsigned char *)"{}", .body_len = 2, .known_new = true,
	};
	struct journal_attempt a = {
		.attempt = 1, .started_ms = T0 + 1, .finished_ms = T0 + 2,
		.status = "skipped", .error = "no hook for e",
	};
	CHECK(journal_record_final(w, &d, &a, DSTATE_SKIPPED) > 0, "record_final f1");
	d.delivery_id = "f2";
	d.known_new = false; /* the two writes */
	CHECK(journal_record_final(w, &d, &a, DSTATE_SKIPPED) > 0, "record_final f2");
	CHECK(journal_flush(w) == 0, "flush");
	char *one, *two;
	CHECK(run_show(w, NULL, "f1", &one) == 0 && run_show(w, NULL, "f2", &two) == 0, "show");
	char *at = one ? strstr(one, "f1") : NULL;
	if (at)
		at[1] = '2';
	CHECK(one && two && strcmp(one, two) == 0, "the same row and attempt:\n%s\n%s",
	      one ? one : "", two ? two : "");
	CHECK(one && strstr(one, "attempt 1: started ") && strstr(one, "error: no hook for e"),
	      "the attempt is shown: %s", one ? one : "");
	free(one);
	free(two);

	/* An attempt that cannot be written (a trigger refuses attempt 7). */
	sql_int(dir, "CREATE TRIGGER refuse_7 BEFORE INSERT ON attempts WHEN NEW.attempt = 7"
	             " BEGIN SELECT RAISE(ABORT, 'refused'); END");
	int64_t rowid;
	rec(w, "ep", "g1", "e", false, T0, "{}");
	d.known_new = true;
	d.delivery_id = "g2";
	a.attempt = 7;
	CHECK(journal_record_final(w, &d, &a, DSTATE_SKIPPED) < 0, "g2 fails");
	CHECK(journal_flush(w) == 0, "flush after the failed write");
	CHECK(journal_lookup(w, "ep", "g2", NULL, NULL, &rowid) == RESULT_UNKNOWN, "no g2 row");
	CHECK(sql_int(dir, "SELECT count(*) FROM deliveries WHERE delivery_id = 'g2'") == 0,
	      "no g2 row committed");
	CHECK(state_of(w, "ep", "g1", NULL) == DSTATE_RUNNING, "the batch's other write stays");
	CHECK(journal_losses(w) == 0, "no batch lost");

	/* ... and the row cannot be taken out either: the batch goes. */
	sql_int(dir, "CREATE TRIGGER keep_rows BEFORE DELETE ON deliveries"
	             " BEGIN SELECT RAISE(ABORT, 'kept'); END");
	rec(w, "ep", "g3", "e", false, T0, "{}");
	d.delivery_id = "g4";
	CHECK(journal_record_final(w, &d, &a, DSTATE_SKIPPED) < 0, "g4 fails");
	CHECK(journal_losses(w) == 1, "the batch was lost");
	CHECK(journal_flush(w) < 0, "the next flush says a batch was lost");
	CHECK(journal_flush(w) == 0, "once");
	CHECK(journal_lookup(w, "ep", "g3", NULL, NULL, &rowid) == RESULT_UNKNOWN &&
	              journal_lookup(w, "ep", "g4", NULL, NULL, &rowid) == RESULT_UNKNOWN,
	      "neither g3 nor half of g4");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE attempt = 7") == 0, "no attempt 7");
	d.delivery_id = "g5";
	a.attempt = 1;
	CHECK(journal_record_final(w, &d, &a, DSTATE_SKIPPED) > 0, "the journal goes on");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(sql_int(dir, "SELECT count(*) FROM deliveries WHERE delivery_id = 'g5'") == 1, "g5");
	journal_close(w);
	free(dir);
}

/* journal_attempt_finished, also without a savepoint of its own: a failed
 * attempt insert leaves the batch as it was; a failure after it (a hook's
 * run, the row's update) gives the batch up rather than commit half. */
static void test_finish_failures(void)
{
	char *dir = new_state_dir();
	struct journal *w = open_dir(dir, 1024, 0, 0);
	sql_int(dir, "CREATE TRIGGER refuse_7 BEFORE INSERT ON attempts WHEN NEW.attempt = 7"
	             " BEGIN SELECT RAISE(ABORT, 'refused'); END");
	sql_int(dir, "CREATE TRIGGER refuse_599 BEFORE UPDATE OF http ON deliveries"
	             " WHEN NEW.http = 599 BEGIN SELECT RAISE(ABORT, 'refused'); END");
	sql_int(dir, "CREATE TRIGGER refuse_hook BEFORE INSERT ON hook_runs WHEN NEW.attempt = 8"
	             " BEGIN SELECT RAISE(ABORT, 'refused'); END");
	journal_set_batching(w, true);
	int64_t h1 = rec(w, "ep", "h1", "e", false, T0, "{}");
	int64_t h2 = rec(w, "ep", "h2", "e", false, T0, "{}");
	CHECK(journal_flush(w) == 0, "flush");

	/* The attempt itself refused: nothing of it, the batch goes on. */
	int64_t h3 = rec(w, "ep", "h3", "e", false, T0, "{}");
	CHECK(finish(w, h1, 7, 200, DSTATE_SUCCEEDED, 0) < 0, "attempt 7 refused");
	CHECK(finish(w, h2, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "h2 finished");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(journal_losses(w) == 0, "no batch lost");
	CHECK(state_of(w, "ep", "h1", NULL) == DSTATE_RUNNING, "h1 as it was");
	CHECK(state_of(w, "ep", "h2", NULL) == DSTATE_SUCCEEDED, "h2 committed");
	CHECK(state_of(w, "ep", "h3", NULL) == DSTATE_RUNNING, "h3 committed");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE attempt = 7") == 0, "no attempt 7");

	/* The update refused after the attempt was written: the batch goes. */
	int64_t h4 = rec(w, "ep", "h4", "e", false, T0, "{}");
	CHECK(finish(w, h3, 1, 599, DSTATE_FAILED, 0) < 0, "update refused");
	CHECK(journal_losses(w) == 1, "the batch was given up");
	CHECK(journal_flush(w) < 0, "the next flush says a batch was lost");
	int64_t lost = h4;
	CHECK(journal_lookup(w, "ep", "h4", NULL, NULL, &h4) == RESULT_UNKNOWN, "h4 went with it");
	CHECK(state_of(w, "ep", "h3", NULL) == DSTATE_RUNNING, "h3 as it was");
	/* h4's id, handed out in the lost batch, is never given again: a
	 * write under it (its hooks ran on) finds no row, not the next
	 * delivery's. */
	int64_t h6 = rec(w, "ep", "h6", "e", false, T0, "{}");
	CHECK(h6 > lost, "a new id: %lld after the lost %lld", (long long)h6, (long long)lost);
	CHECK(finish(w, lost, 1, 500, DSTATE_FAILED, 0) == JOURNAL_GONE,
	      "a write under a lost id: its row is gone");
	CHECK(state_of(w, "ep", "h6", NULL) == DSTATE_RUNNING, "h6 untouched");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(state_of(w, "ep", "h6", NULL) == DSTATE_RUNNING, "h6 committed as recorded");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE delivery = (SELECT id FROM"
	                   " deliveries WHERE delivery_id = 'h3')") == 0,
	      "no half-written attempt");

	/* A hook's run refused after the attempt was written: the same. */
	rec(w, "ep", "h5", "e", false, T0, "{}");
	CHECK(finish(w, h3, 8, 200, DSTATE_SUCCEEDED, 0) < 0, "hook run refused");
	CHECK(journal_losses(w) == 2, "the batch was given up");
	CHECK(sql_int(dir, "SELECT count(*) FROM attempts WHERE attempt = 8") == 0, "no attempt 8");
	CHECK(journal_lookup(w, "ep", "h5", NULL, NULL, &h4) == RESULT_UNKNOWN, "h5 went with it");

	/* And the journal goes on, with counts that match its rows; the flush
	 * that commits the next batch still tells of the lost one. */
	CHECK(finish(w, h3, 1, 200, DSTATE_SUCCEEDED, 0) == 0, "h3 finished");
	CHECK(journal_flush(w) < 0, "a batch was lost since the last flush");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(sql_int(dir, "SELECT state FROM deliveries WHERE delivery_id = 'h3'") ==
	              DSTATE_SUCCEEDED,
	      "h3 committed");
	CHECK(journal_pending_count(w) == 0, "no pending async delivery");
	journal_close(w);
	free(dir);
}

/* An outcome kept for a row that is not there (lost with its batch) is
 * dropped: written again every second, it would hold every outcome behind
 * it back for good. */
static void test_outbox_row_gone(void)
{
	char *dir = new_state_dir();
	struct journal *w = open_dir(dir, 1024, 0, 0);
	journal_set_batching(w, true);
	int64_t there = rec(w, "ep", "there", "e", true, T0, "{}");
	CHECK(journal_flush(w) == 0, "flush");
	struct outbox *o = outbox_new(w);
	struct journal_attempt a = {.attempt = 1, .started_ms = T0 + 1, .finished_ms = T0 + 5,
	                            .http = 200, .status = "ok"};
	struct log_delivery gone_who = {"ep", "e", "gone", 1}, there_who = {"ep", "e", "there", 1};
	outbox_add(o, there + 1000, &gone_who, &a, DSTATE_SUCCEEDED, 0);
	outbox_add(o, there, &there_who, &a, DSTATE_SUCCEEDED, 0);
	CHECK(outbox_flush(o, true) == 0, "nothing waits to be written");
	CHECK(!outbox_holds(o, there + 1000), "the gone row's outcome dropped");
	CHECK(journal_flush(w) == 0, "flush");
	CHECK(outbox_settle(o, journal_committed_id(w), journal_losses(w)) == 0, "settled");
	CHECK(!outbox_holds(o, there), "the other one written and committed");
	CHECK(state_of(w, "ep", "there", NULL) == DSTATE_SUCCEEDED, "the one behind it written");
	outbox_free(o);
	journal_close(w);
	free(dir);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/hookd-journal-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_open();
	test_states();
	test_lifecycle();
	test_resend();
	test_body_cut();
	test_hand_over();
	test_recover();
	test_pending_bytes();
	test_prune();
	test_prune_recount();
	test_find_requeue();
	test_events();
	test_replay_marks();
	test_schema_1();
	test_schema_2();
	test_page_size();
	test_show();
	test_readonly();
	test_batching();
	test_record_final();
	test_outbox_row_gone();
	test_finish_failures();
	test_credentials();
	bench();
	/* Every commit above wrote all of its WAL writes itself
	 * (journal_sqlite_wal.c): the check after each found none held. */
	CHECK(sqlj_wal_settle_misses() == 0, "%zu commits left writes held",
	      sqlj_wal_settle_misses());
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("journal");
}
