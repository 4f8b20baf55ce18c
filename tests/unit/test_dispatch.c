/*
 * dispatch: the lifecycle's transition table (every pair of states, legal or
 * not), and the answers a dispatcher gives before anything runs (no route,
 * duplicate, shutting down), with no journal and no daemon. delivery: what
 * the params struct sets, and what a shell keeps.
 */
#include <ftw.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "config.h"
#include "delivery.h"
#include "dispatch.h"
#include "route.h"
#include "util.h"

static const char *const state_names[LC_COUNT] = {
	"new", "wait_key", "queued", "running", "over", "wait_retry", "done", "shelved", "wait_turn",
};

static void test_transitions(void)
{
	/* Each row: a state and every state it may go to; any other is illegal. */
	static const struct {
		enum lifecycle from;
		enum lifecycle to[LC_COUNT];
		size_t n;
	} table[] = {
		{LC_NEW,
		 {LC_WAIT_KEY, LC_QUEUED, LC_RUNNING, LC_WAIT_RETRY, LC_DONE, LC_SHELVED, LC_WAIT_TURN},
		 7},
		/* To itself: a sync delivery handed over at respond_within. */
		{LC_WAIT_KEY, {LC_WAIT_KEY, LC_QUEUED, LC_RUNNING, LC_SHELVED, LC_WAIT_TURN}, 5},
		{LC_QUEUED, {LC_QUEUED, LC_RUNNING, LC_SHELVED, LC_WAIT_TURN}, 4},
		{LC_RUNNING, {LC_RUNNING, LC_OVER}, 2},
		{LC_OVER, {LC_WAIT_RETRY, LC_DONE, LC_SHELVED}, 3},
		{LC_WAIT_RETRY, {LC_WAIT_KEY, LC_QUEUED, LC_RUNNING, LC_SHELVED, LC_WAIT_TURN}, 5},
		{LC_DONE, {0}, 0},
		{LC_SHELVED, {0}, 0},
		/* A shared journal's: not its turn yet (dispatch.h). */
		{LC_WAIT_TURN,
		 {LC_WAIT_KEY, LC_QUEUED, LC_RUNNING, LC_WAIT_TURN, LC_DONE, LC_SHELVED}, 6},
	};
	CHECK(ARRAY_SIZE(table) == LC_COUNT, "a row for every state");
	for (size_t r = 0; r < ARRAY_SIZE(table); r++) {
		for (int to = 0; to < LC_COUNT; to++) {
			bool want = false;
			for (size_t i = 0; i < table[r].n; i++)
				want |= table[r].to[i] == (enum lifecycle)to;
			CHECK(dispatch_transition_legal(table[r].from, (enum lifecycle)to) == want,
			      "%s -> %s should be %s", state_names[table[r].from], state_names[to],
			      want ? "legal" : "illegal");
		}
	}
	/* Every state is reached from NEW, and from every one a final state. */
	bool reached[LC_COUNT] = {[LC_NEW] = true};
	for (int round = 0; round < LC_COUNT; round++)
		for (int a = 0; a < LC_COUNT; a++)
			for (int b = 0; b < LC_COUNT; b++)
				if (reached[a] && dispatch_transition_legal((enum lifecycle)a,
				                                            (enum lifecycle)b))
					reached[b] = true;
	for (int s = 0; s < LC_COUNT; s++)
		CHECK(reached[s], "%s is reachable from new", state_names[s]);
	bool ends[LC_COUNT] = {[LC_DONE] = true, [LC_SHELVED] = true};
	for (int round = 0; round < LC_COUNT; round++)
		for (int a = 0; a < LC_COUNT; a++)
			for (int b = 0; b < LC_COUNT; b++)
				if (ends[b] && dispatch_transition_legal((enum lifecycle)a,
				                                         (enum lifecycle)b))
					ends[a] = true;
	for (int s = 0; s < LC_COUNT; s++)
		CHECK(ends[s], "%s can end", state_names[s]);
	CHECK(!dispatch_transition_legal(LC_COUNT, LC_NEW), "out of range");
	CHECK(!dispatch_transition_legal(LC_NEW, LC_COUNT), "out of range");
	CHECK(!dispatch_transition_legal((enum lifecycle)-1, LC_DONE), "out of range");
}

static char tmpdir[PATH_MAX];

static struct config *load_config(void)
{
	char *ini = xasprintf("[endpoint a]\npath = /a\nsecret = s3cret\nhooks_dir = %s/hooks\n",
	                      tmpdir);
	FILE *f = fopen("hookd.ini", "w");
	if (!f || fputs(ini, f) < 0 || fclose(f) != 0) {
		perror("hookd.ini");
		exit(2);
	}
	free(ini);
	char err[512];
	struct config *cfg = config_load("hookd.ini", err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "config: %s\n", err);
		exit(2);
	}
	return cfg;
}

struct answer {
	int calls;
	int http;
	int retry_after;
	char status[32];
	char *json;
};

static void on_done(struct delivery *d, void *arg)
{
	struct answer *a = arg;
	const struct outcome *out = delivery_outcome(d);
	a->calls++;
	a->http = out->http;
	a->retry_after = out->retry_after;
	snprintf(a->status, sizeof(a->status), "%s", out->status);
	free(a->json);
	a->json = delivery_response_json(d, false);
}

static struct delivery *new_delivery(struct config *cfg, const char *id)
{
	static const char body[] = "{\"a\":1}";
	struct delivery_params p = {
		.cfg = cfg, .ep = &cfg->endpoints[0], .event = "push", .id = id,
		.remote_addr = "192.0.2.1", .body = (const unsigned char *)body,
		.body_len = strlen(body), .lazy = true, .scanned = true,
	};
	return delivery_new(&p);
}

/* Submits a delivery and returns the answer, given before submit returns. */
static struct answer submit(struct dispatcher *ds, struct config *cfg, const char *id)
{
	struct answer a = {0};
	dispatch_submit(ds, new_delivery(cfg, id), on_done, &a);
	return a;
}

static void test_answered_at_once(void)
{
	struct config *cfg = load_config();
	struct event_base *base = event_base_new();
	struct dispatcher *ds = dispatcher_new(base, cfg, NULL);
	static const struct {
		const char *id; /* NULL: a generated one */
		bool drain_first;
		int http;
		const char *status;
		int retry_after;
		const char *json;
	} cases[] = {
		{"d1", false, 200, "unhandled", 0,
		 "{\"endpoint\":\"a\",\"event\":\"push\",\"id\":\"d1\",\"status\":\"unhandled\","
		 "\"hooks\":[],\"error\":\"no hook for this event\"}"},
		{"d1", false, 200, "duplicate", 0,
		 "{\"endpoint\":\"a\",\"event\":\"push\",\"id\":\"d1\",\"status\":\"duplicate\","
		 "\"hooks\":[]}"},
		{"d2", false, 200, "unhandled", 0, NULL},
		{NULL, false, 200, "unhandled", 0, NULL},
		{NULL, false, 200, "unhandled", 0, NULL},
		{"d3", true, 503, "overloaded", 5,
		 "{\"endpoint\":\"a\",\"event\":\"push\",\"id\":\"d3\",\"status\":\"overloaded\","
		 "\"hooks\":[],\"error\":\"shutting down\"}"},
		{"d1", false, 503, "overloaded", 5, NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (cases[i].drain_first)
			dispatcher_drain(ds);
		struct answer a = submit(ds, cfg, cases[i].id);
		CHECK(a.calls == 1, "case %zu: answered once before submit returns (%d)", i,
		      a.calls);
		CHECK(a.http == cases[i].http, "case %zu: http %d", i, a.http);
		CHECK_STR(a.status, cases[i].status, "case %zu", i);
		CHECK(a.retry_after == cases[i].retry_after, "case %zu: retry_after %d", i,
		      a.retry_after);
		if (cases[i].json)
			CHECK_STR(a.json, cases[i].json, "case %zu", i);
		free(a.json);
		CHECK(dispatcher_idle(ds) && dispatcher_running(ds) == 0 &&
		      dispatcher_queued(ds) == 0, "case %zu: nothing left running or waiting", i);
	}
	dispatcher_free(ds);
	event_base_free(base);
	route_cache_clear();
	config_unref(cfg);
}

static const char *env_get(struct delivery *d, const char *name)
{
	const struct envlist *env = delivery_env(d);
	long i = envlist_find(env, name);
	return i < 0 ? NULL : strchr(env->v[i], '=') + 1;
}

static const char *one_header(void *ctx, const char *name)
{
	(void)ctx;
	return strcasecmp(name, "X-Northflank-Notification-Integration-Id") == 0 ? "i1" : NULL;
}

static void test_params(void)
{
	struct config *cfg = load_config();
	static const char body[] = "{\"a\":{\"b\":\"c\"}}";
	json_object *root = payload_parse_json(body, strlen(body), NULL, 0);
	struct delivery_params p = {
		.cfg = cfg, .ep = &cfg->endpoints[0], .event = "push", .id = "",
		.body = (const unsigned char *)body, .body_len = strlen(body), .root = root,
		.header = one_header,
	};
	/* Built at once: the environment is there before delivery_build_env. */
	struct delivery *d = delivery_new(&p);
	CHECK(delivery_id_generated(d) && strlen(delivery_id(d)) == 36, "generated id %s",
	      delivery_id(d));
	CHECK(!delivery_async(d) && delivery_attempt(d) == 1 && delivery_rowid(d) == 0,
	      "defaults");
	CHECK_STR(env_get(d, "HOOK_A_B"), "c", "payload");
	CHECK_STR(env_get(d, "HOOK_REMOTE_ADDR"), "", "remote_addr NULL is empty");
	CHECK_STR(env_get(d, "HOOK_INTEGRATION_ID"), "i1", "integration id");
	CHECK(env_get(d, "HOOK_INTEGRATION_NAME") == NULL, "no integration name");
	delivery_free(d);

	/* A journal row: async, at its attempt, received when it first came. */
	p.id = "j1";
	p.rowid = 7;
	p.attempt = 3;
	p.received_ms = 1764189666123;
	d = delivery_new(&p);
	CHECK(delivery_async(d) && delivery_attempt(d) == 3 && delivery_rowid(d) == 7,
	      "journaled");
	CHECK_STR(env_get(d, "HOOK_RECEIVED_AT"), "2025-11-26T20:41:06.123Z", "received_at");
	CHECK_STR(env_get(d, "HOOK_ID"), "j1", "id");
	delivery_free(d);

	/* Lazy: nothing flattened until delivery_build_env. */
	p.rowid = 0;
	p.lazy = true;
	d = delivery_new(&p);
	CHECK(env_get(d, "HOOK_A_B") == NULL, "lazy: not yet");
	char err[128];
	CHECK(delivery_build_env(d, err, sizeof(err)), "build_env");
	CHECK_STR(env_get(d, "HOOK_A_B"), "c", "lazy: built");
	delivery_free(d);

	json_object_put(root);
	config_unref(cfg);
}

static size_t heap_in_use(void)
{
	struct mallinfo2 m = mallinfo2();
	return m.uordblks + m.hblkhd;
}

/* What a pending async delivery keeps while it waits in a line
 * (delivery_shed): what scheduling needs, whatever its body. With the
 * dispatcher's entry (dispatch.c bounds it at 256 bytes) a pending
 * delivery costs under 1 KiB. */
static void test_shell(void)
{
	struct config *cfg = load_config();
	size_t pad = 64 * 1024;
	char *body = xmalloc(pad + 64);
	int n = snprintf(body, 64, "{\"a\":{\"b\":\"c\"},\"pad\":\"");
	memset(body + n, 'x', pad);
	memcpy(body + n + pad, "\"}", 3);
	struct delivery_params p = {
		.cfg = cfg, .ep = &cfg->endpoints[0], .event = "push", .id = "j9",
		.remote_addr = "192.0.2.1", .body = (const unsigned char *)body,
		.body_len = strlen(body), .header = one_header, .lazy = true,
		.rowid = 9, .attempt = 2, .received_ms = 1764189666123,
	};
	char err[128];
	/* Once first: the parser's buffer, kept for the process, grows to fit. */
	struct delivery *d = delivery_new(&p);
	CHECK(delivery_build_env(d, err, sizeof(err)), "build_env: %s", err);
	delivery_free(d);

	/* Many, for the average: the allocator keeps a few freed blocks of
	 * each size at hand, which it reports as in use. */
	enum { N = 200 };
	struct delivery *shells[N];
	size_t before = heap_in_use();
	for (size_t i = 0; i < N; i++) {
		d = shells[i] = delivery_new(&p);
		delivery_keep_header(d, "Content-Type", "application/json");
		CHECK(delivery_build_env(d, err, sizeof(err)), "build_env: %s", err);
		delivery_set_outcome(d, 503, "failed", xstrdup("exit 75"));
		delivery_add_result(d, "push");
		if (i == 0)
			CHECK_STR(env_get(d, "HOOK_A_B"), "c", "whole");
		delivery_shed(d);
	}
	size_t each = (heap_in_use() - before) / N;
	/* An allocator that does not report (valgrind, ASan) shows nothing. */
	CHECK(each < 768, "a shell holds %zu bytes", each);
	d = shells[0];
	CHECK(delivery_is_shell(d), "a shell");
	size_t len = 1;
	CHECK(delivery_body(d, &len) == NULL && len == 0, "no body");
	CHECK(delivery_last_result(d) == NULL, "no results");
	CHECK(delivery_async(d) && delivery_rowid(d) == 9 && delivery_attempt(d) == 2 &&
	      strcmp(delivery_id(d), "j9") == 0 && strcmp(delivery_event(d), "push") == 0 &&
	      delivery_endpoint(d) == &cfg->endpoints[0], "what scheduling needs is kept");
	CHECK(delivery_outcome(d)->http == 503, "the outcome is kept");
	size_t now = heap_in_use();
	delivery_shed(d);
	CHECK(heap_in_use() == now, "shedding twice frees nothing more");
	for (size_t i = 0; i < N; i++)
		delivery_free(shells[i]);

	/* Without a journal row there is nothing to read it back from. */
	p.rowid = 0;
	d = delivery_new(&p);
	delivery_shed(d);
	CHECK(!delivery_is_shell(d) && delivery_body(d, &len) && len == strlen(body),
	      "no row: left whole");
	delivery_free(d);
	free(body);
	config_unref(cfg);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	test_transitions();
	char tmpl[] = "/tmp/hookd-test-dispatch-XXXXXX";
	if (!mkdtemp(tmpl) || !realpath(tmpl, tmpdir) || chdir(tmpdir) != 0 ||
	    mkdir("hooks", 0700) != 0) {
		perror("temporary directory");
		return 2;
	}
	test_answered_at_once();
	test_params();
	test_shell();
	delivery_cleanup();
	if (chdir("/") == 0)
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("dispatch");
}
