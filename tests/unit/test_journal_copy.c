/*
 * `hookd journal export` / `import`'s lines (journal_copy.c): a delivery
 * with attempts, hooks, a binary body and a cut one goes out and comes back
 * the same; malformed lines are refused with a reason; and through a real
 * SQLite journal in a temp dir, an import is skipped the second time, keeps
 * the replay marks, and leaves a pending delivery for recovery.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"
#include "journal_copy.h"
#include "util.h"

#define T0 INT64_C(1700000000000)

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static unsigned char all_bytes[256];

static const struct journal_hook hooks1[] = {
	{.hook = "build/deploy.sh", .exit_code = 1, .ms = 12, .error = NULL,
	 .output = "line one\n\377\000tail", .output_len = 15},
	{.hook = "build/notify", .exit_code = -1, .signal = "SIGKILL", .ms = 30000,
	 .error = "timed out after 30s", .output = NULL},
};
static const struct journal_hook hooks2[] = {
	{.hook = "build/deploy.sh", .exit_code = 0, .ms = 8, .output = "ok\n", .output_len = 3},
};

/* A failed-then-replayed delivery: two attempts, the second a replay. */
static struct journal_copy sample(const char *instance)
{
	static struct journal_attempt attempts[2];
	attempts[0] = (struct journal_attempt){
		.attempt = 1, .started_ms = T0 + 10, .finished_ms = T0 + 40, .http = 500,
		.status = "failed", .error = "exit 1", .instance = instance,
		.hooks = hooks1, .nhooks = ARRAY_SIZE(hooks1)};
	attempts[1] = (struct journal_attempt){
		.attempt = 2, .started_ms = T0 + 5000, .finished_ms = 0, .http = 0,
		.status = "interrupted", .error = "interrupted", .replay = true,
		.instance = instance, .hooks = hooks2, .nhooks = ARRAY_SIZE(hooks2)};
	return (struct journal_copy){
		.entry = {
			.endpoint = "github", .delivery_id = "id-1 \"quoted\" / é", .event = "push",
			.state = DSTATE_FAILED, .http = 0, .attempts = 2, .received_ms = T0,
			.remote_addr = "2001:db8::1", .async = true, .updated_ms = T0 + 6000,
			.next_due_ms = 0, .status = "interrupted", .error = "interrupted",
			.headers = "Content-Type: application/json\nX-GitHub-Event: push\n",
			.body = all_bytes, .body_kept = sizeof(all_bytes), .body_len = 256,
			.body_cut = false},
		.attempts = attempts,
		.nattempts = 2,
	};
}

static char *line_of(const struct journal_copy *c)
{
	struct strbuf sb;
	sb_init(&sb);
	journal_copy_format(c, &sb);
	return sb_steal(&sb);
}

static void same_entry(const struct journal_entry *a, const struct journal_entry *b)
{
	CHECK_STR(b->endpoint, a->endpoint, "endpoint");
	CHECK_STR(b->delivery_id, a->delivery_id, "id");
	CHECK_STR(b->event, a->event, "event");
	CHECK_STR(b->remote_addr, a->remote_addr, "remote_addr");
	CHECK_STR(b->status, a->status, "status");
	CHECK_STR(b->error, a->error, "error");
	CHECK_STR(b->headers, a->headers, "headers");
	CHECK(a->state == b->state && a->http == b->http && a->attempts == b->attempts &&
	              a->async == b->async,
	      "state/http/attempts/async");
	CHECK(a->received_ms == b->received_ms && a->updated_ms == b->updated_ms &&
	              a->next_due_ms == b->next_due_ms,
	      "times");
	CHECK(a->body_kept == b->body_kept && memcmp(a->body, b->body, a->body_kept) == 0,
	      "body bytes (%zu vs %zu)", a->body_kept, b->body_kept);
	CHECK(a->body_len == b->body_len && a->body_cut == b->body_cut, "body length and cut");
	CHECK(a->replay_attempt == b->replay_attempt && a->run_attempt == b->run_attempt &&
	              a->run_started_ms == b->run_started_ms,
	      "replay/run attempt");
}

static void same_attempts(const struct journal_copy *a, const struct journal_copy *b)
{
	CHECK(a->nattempts == b->nattempts, "attempts %zu vs %zu", a->nattempts, b->nattempts);
	for (size_t i = 0; i < a->nattempts && i < b->nattempts; i++) {
		const struct journal_attempt *x = &a->attempts[i], *y = &b->attempts[i];
		CHECK(x->attempt == y->attempt && x->started_ms == y->started_ms &&
		              x->finished_ms == y->finished_ms && x->http == y->http &&
		              x->replay == y->replay,
		      "attempt %zu", i);
		CHECK_STR(y->status, x->status, "attempt %zu status", i);
		CHECK_STR(y->error, x->error, "attempt %zu error", i);
		CHECK_STR(y->instance, x->instance, "attempt %zu instance", i);
		CHECK(x->nhooks == y->nhooks, "attempt %zu hooks", i);
		for (size_t k = 0; k < x->nhooks && k < y->nhooks; k++) {
			const struct journal_hook *g = &x->hooks[k], *h = &y->hooks[k];
			CHECK_STR(h->hook, g->hook, "hook %zu.%zu", i, k);
			CHECK_STR(h->signal, g->signal, "hook %zu.%zu signal", i, k);
			CHECK_STR(h->error, g->error, "hook %zu.%zu error", i, k);
			CHECK(g->exit_code == h->exit_code && g->ms == h->ms, "hook %zu.%zu exit", i, k);
			CHECK((g->output == NULL) == (h->output == NULL) &&
			              g->output_len == h->output_len &&
			              (!g->output || memcmp(g->output, h->output, g->output_len) == 0),
			      "hook %zu.%zu output", i, k);
		}
	}
}

static void test_round_trip(void)
{
	for (int cut = 0; cut < 2; cut++) {
		struct journal_copy c = sample("host-a");
		if (cut) {
			c.entry.body_kept = 64;
			c.entry.body_len = 100000;
			c.entry.body_cut = true;
			c.entry.state = DSTATE_RUNNING;
			c.entry.run_attempt = 3;
			c.entry.run_started_ms = T0 + 7000;
			c.entry.replay_attempt = 3;
		}
		char *line = line_of(&c);
		size_t len = strlen(line);
		CHECK(len > 0 && line[len - 1] == '\n' && !memchr(line, '\n', len - 1),
		      "one line: %s", line);
		struct journal_copy back;
		char err[256] = "";
		CHECK(journal_copy_parse(line, len - 1, &back, err, sizeof(err)), "parse: %s", err);
		same_entry(&c.entry, &back.entry);
		same_attempts(&c, &back);
		char *again = line_of(&back);
		CHECK_STR(again, line, "the same line again");
		free(again);
		journal_copy_free(&back);
		free(line);
	}
	/* The one shown in the README's example: fields by name. */
	struct journal_copy c = sample(NULL);
	char *line = line_of(&c);
	CHECK(strstr(line, "{\"v\":1,\"endpoint\":\"github\",") == line, "%s", line);
	CHECK(strstr(line, "\"state\":\"failed\"") && strstr(line, "\"replay\":true") &&
	              strstr(line, "\"exit\":null") && strstr(line, "\"output_base64\":null") &&
	              strstr(line, "\"headers\":[\"Content-Type: application/json\","),
	      "%s", line);
	free(line);
}

static void test_malformed(void)
{
	static const struct {
		const char *line, *why;
	} cases[] = {
		{"", "not JSON"},
		{"{\"v\":1", "ends early"},
		{"[1,2]", "not a JSON object"},
		{"{\"v\":1} {}", "more than one"},
		{"{\"endpoint\":\"a\"}", "\"v\" is missing"},
		{"{\"v\":2}", "format version 2"},
		{"{\"v\":1,\"id\":\"x\",\"event\":\"e\",\"async\":false,\"state\":\"failed\","
		 "\"attempts\":0,\"received_ms\":1}",
		 "\"endpoint\" is missing"},
		{"{\"v\":1,\"endpoint\":\"\",\"id\":\"x\"}", "\"endpoint\" is empty"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"done\",\"attempts\":0,\"received_ms\":1}",
		 "not a delivery state"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":\"yes\","
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1}",
		 "\"async\" is not true or false"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":-1,\"received_ms\":1}",
		 "\"attempts\" is out of range"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":\"1\"}",
		 "\"received_ms\" is not an integer"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1,\"body_base64\":\"YQ=\"}",
		 "\"body_base64\" is not base64"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1,\"body_base64\":\"Y*==\"}",
		 "\"body_base64\" is not base64"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1,\"body_base64\":\"YQ==\","
		 "\"body_len\":5}",
		 "does not fit the body's 1 bytes"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1,\"headers\":[\"a\\nb: c\"]}",
		 "\"headers\"[0] is not"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":0,\"received_ms\":1,\"attempt_list\":{}}",
		 "\"attempt_list\" is not a list"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":1,\"received_ms\":1,\"attempt_list\":[{}]}",
		 "attempt_list[0]: \"attempt\" is missing"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":2,\"received_ms\":1,\"attempt_list\":["
		 "{\"attempt\":2,\"status\":\"ok\"},{\"attempt\":1,\"status\":\"ok\"}]}",
		 "attempts out of order"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":1,\"received_ms\":1,\"attempt_list\":["
		 "{\"attempt\":1,\"status\":\"ok\",\"hooks\":[{\"hook\":\"h\",\"exit\":300}]}]}",
		 "attempt_list[0].hooks[0]: \"exit\" is out of range"},
		{"{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":false,"
		 "\"state\":\"failed\",\"attempts\":1,\"received_ms\":1,\"attempt_list\":["
		 "{\"attempt\":1,\"status\":\"ok\",\"hooks\":[{\"hook\":\"h\","
		 "\"output_base64\":7}]}]}",
		 "\"output_base64\" is not a string"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct journal_copy c;
		char err[256] = "";
		bool ok = journal_copy_parse(cases[i].line, strlen(cases[i].line), &c, err, sizeof(err));
		CHECK(!ok, "case %zu parsed: %s", i, cases[i].line);
		CHECK(strstr(err, cases[i].why) != NULL, "case %zu: want '%s', got '%s'", i,
		      cases[i].why, err);
		CHECK(c.nowned == 0 && c.attempts == NULL, "case %zu: nothing kept", i);
	}
	/* The least a line needs; trailing blanks are fine. */
	const char *least = "{\"v\":1,\"endpoint\":\"a\",\"id\":\"x\",\"event\":\"e\",\"async\":true,"
	                    "\"state\":\"queued\",\"attempts\":0,\"received_ms\":5}  \r";
	struct journal_copy c;
	char err[256] = "";
	CHECK(journal_copy_parse(least, strlen(least), &c, err, sizeof(err)), "least: %s", err);
	CHECK(c.entry.body_kept == 0 && c.entry.body_len == 0 && c.entry.updated_ms == 5 &&
	              c.nattempts == 0 && strcmp(c.entry.headers, "") == 0,
	      "defaults");
	journal_copy_free(&c);
}

static struct journal *open_dir(const char *dir)
{
	struct journal_opts o = {.state_dir = dir, .body_max = 65536, .keep_ms = 0, .max_rows = 0};
	char err[256] = "";
	struct journal *j = journal_open(&o, err, sizeof(err));
	CHECK(j != NULL, "open %s: %s", dir, err);
	return j;
}

static void test_sqlite(void)
{
	char *dir = xasprintf("%s/state", tmpdir);
	struct journal *j = open_dir(dir);
	if (!j)
		return;
	struct journal_copy c = sample(NULL); /* SQLite keeps no instance */
	CHECK(journal_import(j, &c.entry, c.attempts, c.nattempts) == RESULT_OK, "import");
	CHECK(journal_import(j, &c.entry, c.attempts, c.nattempts) == RESULT_PENDING,
	      "the second import skips");
	int64_t rowid = 0;
	CHECK(journal_find(j, "github", c.entry.delivery_id, &rowid) == RESULT_OK, "find");
	struct journal_copy back;
	CHECK(journal_copy_read(j, rowid, &back) == RESULT_OK, "read back");
	same_entry(&c.entry, &back.entry);
	same_attempts(&c, &back);
	char *a = line_of(&c), *b = line_of(&back);
	CHECK_STR(b, a, "the line read back");
	free(a);
	free(b);
	journal_copy_free(&back);

	/* Pending: one waiting for a retry, one that was running (its run is
	 * counted at recovery, as after a crash), and a replay's next attempt. */
	struct journal_copy w = sample(NULL);
	w.entry.delivery_id = "waits";
	w.entry.state = DSTATE_RETRY_WAIT;
	w.entry.next_due_ms = T0 + 99999;
	w.nattempts = 1;
	struct journal_copy r = sample(NULL);
	r.entry.delivery_id = "ran";
	r.entry.state = DSTATE_RUNNING;
	r.entry.attempts = 1;
	r.entry.run_attempt = 2;
	r.entry.run_started_ms = T0 + 50;
	r.entry.replay_attempt = 2;
	r.nattempts = 1;
	CHECK(journal_import(j, &w.entry, w.attempts, w.nattempts) == RESULT_OK, "import waits");
	CHECK(journal_import(j, &r.entry, r.attempts, r.nattempts) == RESULT_OK, "import ran");
	CHECK(journal_pending_count(j) == 2, "pending %lld", (long long)journal_pending_count(j));
	CHECK(journal_pending_bytes(j) == 512, "bytes %lld", (long long)journal_pending_bytes(j));
	journal_close(j);

	j = open_dir(dir);
	struct journal_pending *list = NULL;
	size_t n = 0;
	CHECK(journal_recover(j, &list, &n) == 0 && n == 2, "recover: %zu", n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].delivery_id, "waits") == 0) {
			CHECK(list[i].state == DSTATE_RETRY_WAIT && list[i].next_due_ms == T0 + 99999 &&
			              list[i].attempts == 2,
			      "waits as it was");
		} else {
			CHECK(list[i].state == DSTATE_QUEUED && list[i].attempts == 2 &&
			              list[i].replay_attempt == 2,
			      "ran: queued with its interrupted run counted (%d, %d)", list[i].state,
			      list[i].attempts);
		}
		journal_pending_free(&list[i]);
	}
	free(list);
	journal_close(j);
	free(dir);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(all_bytes); i++)
		all_bytes[i] = (unsigned char)i;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/hookd-copy-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_round_trip();
	test_malformed();
	test_sqlite();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("journal_copy");
}
