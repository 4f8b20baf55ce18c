/* metrics: label escaping, counters, the histogram and the text format. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"
#include "util.h"
#include "version.h"

static void test_label_values(void)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{"northflank", "\"northflank\""},
		{"", "\"\""},
		{"a\"b", "\"a\\\"b\""},
		{"a\\b", "\"a\\\\b\""},
		{"a\nb", "\"a\\nb\""},
		{"\\n", "\"\\\\n\""},
		{"tab\there", "\"tab\there\""},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
		{"\xe2\x82\xac", "\"\xe2\x82\xac\""},             /* euro sign */
		{"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},     /* 4-byte emoji */
		{"a\xffz", "\"a\xef\xbf\xbdz\""},                 /* invalid byte */
		{"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},     /* overlong '/' */
		{"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
		{"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* > U+10FFFF */
		{"\xc3", "\"\xef\xbf\xbd\""},                     /* cut short */
		{"\xe2\x82", "\"\xef\xbf\xbd\xef\xbf\xbd\""},     /* cut short */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb;
		sb_init(&sb);
		metrics_label_value(&sb, cases[i].in);
		CHECK_STR(sb.buf, cases[i].want, "case %zu", i);
		sb_free(&sb);
	}
	struct strbuf sb;
	sb_init(&sb);
	metrics_label_value(&sb, NULL);
	CHECK_STR(sb.buf, "\"\"", "NULL is the empty value");
	sb_free(&sb);
}

static void test_reasons(void)
{
	static const struct {
		int http;
		const char *want;
	} cases[] = {
		{400, "bad_request"},     {401, "unauthorized"},      {403, "forbidden"},
		{404, "not_found"},       {405, "method_not_allowed"}, {408, "request_timeout"},
		{411, "length_required"}, {413, "body_too_large"},     {415, "unsupported_media_type"},
		{431, "headers_too_large"}, {503, "overloaded"},       {418, "other"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK_STR(metrics_reason_for(cases[i].http), cases[i].want, "%d", cases[i].http);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p += n) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	}
	return false;
}

static void test_render(void)
{
	metrics_reset();
	metrics_start();
	metrics_delivery("nf", "build:start", "ok");
	metrics_delivery("nf", "build:start", "ok");
	metrics_delivery("nf", "other", "skipped");
	metrics_delivery("we\"ird\\name\n", "deploy", "failed");
	metrics_attempt("nf", "build:start", "timeout");
	metrics_attempt("nf", "build:start", "ok");
	metrics_response("nf", "ok", 200);
	metrics_response("nf", "ok", 200);
	metrics_response("nf", "failed", 500);
	metrics_rejection(401, NULL);
	metrics_rejection(401, NULL);
	metrics_rejection(503, "shutting_down");
	metrics_hook("build:start", MHOOK_OK, 3);         /* le 0.01 */
	metrics_hook("build:start", MHOOK_OK, 10);        /* le 0.01: bounds are inclusive */
	metrics_hook("deploy.d/10-pull", MHOOK_FAILED, 11);    /* le 0.05 */
	metrics_hook("deploy.d/10-pull", MHOOK_TIMEOUT, 30000);/* le 30 */
	metrics_hook("x", MHOOK_SIGNAL, 4000000); /* past every bound: +Inf only */
	metrics_hook("x", MHOOK_EXEC_FAILED, -1); /* no duration */
	metrics_hook("x", MHOOK_SKIPPED, 10000); /* le 10 */
	metrics_reload(true);
	metrics_reload(false);
	metrics_reload(false);
	struct metrics_gauges g = {.hooks_running = 2, .deliveries_running = 3, .deliveries_queued = 4,
	                           .pending_queued = 5, .pending_running = 3, .pending_retry_wait = 7};
	char *text = metrics_render(&g);
	static const char *const want[] = {
		"# TYPE hookd_build_info gauge",
		"hookd_build_info{version=\"" HOOKD_VERSION "\"} 1",
		"# TYPE hookd_deliveries_total counter",
		"hookd_deliveries_total{endpoint=\"nf\",event=\"build:start\",outcome=\"ok\"} 2",
		"hookd_deliveries_total{endpoint=\"nf\",event=\"other\",outcome=\"skipped\"} 1",
		"hookd_deliveries_total{endpoint=\"we\\\"ird\\\\name\\n\",event=\"deploy\","
		"outcome=\"failed\"} 1",
		"# TYPE hookd_attempts_total counter",
		"hookd_attempts_total{endpoint=\"nf\",event=\"build:start\",outcome=\"timeout\"} 1",
		"hookd_attempts_total{endpoint=\"nf\",event=\"build:start\",outcome=\"ok\"} 1",
		"# TYPE hookd_responses_total counter",
		"hookd_responses_total{endpoint=\"nf\",status=\"ok\",code=\"200\"} 2",
		"hookd_responses_total{endpoint=\"nf\",status=\"failed\",code=\"500\"} 1",
		"# TYPE hookd_rejections_total counter",
		"hookd_rejections_total{code=\"401\",reason=\"unauthorized\"} 2",
		"hookd_rejections_total{code=\"503\",reason=\"shutting_down\"} 1",
		"# TYPE hookd_hook_runs_total counter",
		"hookd_hook_runs_total{hook=\"build:start\",outcome=\"ok\"} 2",
		"hookd_hook_runs_total{hook=\"deploy.d/10-pull\",outcome=\"failed\"} 1",
		"hookd_hook_runs_total{hook=\"deploy.d/10-pull\",outcome=\"timeout\"} 1",
		"hookd_hook_runs_total{hook=\"x\",outcome=\"signal\"} 1",
		"hookd_hook_runs_total{hook=\"x\",outcome=\"exec_failed\"} 1",
		"hookd_hook_runs_total{hook=\"x\",outcome=\"skipped\"} 1",
		"# TYPE hookd_hook_duration_seconds histogram",
		"hookd_hook_duration_seconds_bucket{le=\"0.01\"} 2",
		"hookd_hook_duration_seconds_bucket{le=\"0.05\"} 3",
		"hookd_hook_duration_seconds_bucket{le=\"0.25\"} 3",
		"hookd_hook_duration_seconds_bucket{le=\"10\"} 4",
		"hookd_hook_duration_seconds_bucket{le=\"30\"} 5",
		"hookd_hook_duration_seconds_bucket{le=\"1800\"} 5",
		"hookd_hook_duration_seconds_bucket{le=\"+Inf\"} 6",
		"hookd_hook_duration_seconds_sum 4040.024",
		"hookd_hook_duration_seconds_count 6",
		"hookd_hooks_running 2",
		"hookd_deliveries_running 3",
		"hookd_deliveries_queued 4",
		"hookd_deliveries_pending{state=\"queued\"} 5",
		"hookd_deliveries_pending{state=\"running\"} 3",
		"hookd_deliveries_pending{state=\"retry_wait\"} 7",
		"hookd_draining 0",
		"hookd_config_reloads_total{result=\"ok\"} 1",
		"hookd_config_reloads_total{result=\"failed\"} 2",
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		CHECK(has_line(text, want[i]), "missing line: %s", want[i]);
	/* Every line is a comment or a sample; the text ends with one newline. */
	size_t len = strlen(text);
	CHECK(len > 0 && text[len - 1] == '\n' && (len < 2 || text[len - 2] != '\n'),
	      "ends in exactly one newline");
	CHECK(strstr(text, "\n\n") == NULL, "no empty lines");
	/* Each family's HELP comes before its TYPE, once. */
	CHECK(strstr(text, "# HELP hookd_deliveries_total ") < strstr(text, "# TYPE hookd_deliveries_total "),
	      "HELP before TYPE");
	free(text);

	g.draining = true;
	text = metrics_render(&g);
	CHECK(has_line(text, "hookd_draining 1"), "draining gauge");
	free(text);

	/* After a reset every counter starts again from zero. */
	metrics_reset();
	text = metrics_render(&g);
	CHECK(strstr(text, "hookd_hook_runs_total{") == NULL, "reset hook runs");
	CHECK(has_line(text, "hookd_hook_duration_seconds_count 0"), "reset");
	CHECK(strstr(text, "hookd_deliveries_total{") == NULL, "reset deliveries");
	free(text);
	metrics_reset();
}

/* A series is found by the values it was made from; values that render
 * alike (each invalid byte is U+FFFD) still count in one series. */
static void test_same_labels(void)
{
	metrics_reset();
	metrics_delivery("nf", "bad\xff", "ok");
	metrics_delivery("nf", "bad\xfe", "ok");
	metrics_delivery("nf", "bad\xff", "ok");
	metrics_delivery(NULL, "e", "ok");
	metrics_delivery("", "e", "ok");
	metrics_response("nf", "ok", 200);
	metrics_response("nf", "ok", 202);
	metrics_hook("h", MHOOK_OK, -1);
	metrics_hook("h", MHOOK_FAILED, -1);
	metrics_hook("h", MHOOK_OK, -1);
	struct metrics_gauges g = {0};
	char *text = metrics_render(&g);
	CHECK(has_line(text, "hookd_deliveries_total{endpoint=\"nf\",event=\"bad\xef\xbf\xbd\","
	                     "outcome=\"ok\"} 3"),
	      "values that render alike share a series:\n%s", text);
	CHECK(has_line(text, "hookd_deliveries_total{endpoint=\"\",event=\"e\",outcome=\"ok\"} 2"),
	      "NULL is the empty value");
	CHECK(has_line(text, "hookd_responses_total{endpoint=\"nf\",status=\"ok\",code=\"200\"} 1"),
	      "the code tells series apart (200)");
	CHECK(has_line(text, "hookd_responses_total{endpoint=\"nf\",status=\"ok\",code=\"202\"} 1"),
	      "the code tells series apart (202)");
	CHECK(has_line(text, "hookd_hook_runs_total{hook=\"h\",outcome=\"ok\"} 2") &&
	              has_line(text, "hookd_hook_runs_total{hook=\"h\",outcome=\"failed\"} 1"),
	      "the outcome tells hook runs apart");
	free(text);
	metrics_reset();
}

int main(void)
{
	test_label_values();
	test_reasons();
	test_render();
	test_same_labels();
	return check_done("metrics");
}
