/*
 * payload: event names, Content-Type, JSON and form decoding, dotted
 * paths, key normalization and flattening (README "HTTP answers", "Routing: hooks.d", "What a hook gets").
 */
#include "check.h"

#include <stdlib.h>

#include "payload.h"
#include "util.h"

#define N(s) s, sizeof(s) - 1 /* a literal with its exact length, NULs included */

static void test_event_names(void)
{
	char n128[129], n129[130];
	memset(n128, 'a', 128);
	n128[128] = '\0';
	memset(n129, 'a', 129);
	n129[129] = '\0';
	static const struct {
		const char *name;
		size_t len;
		bool want;
	} cases[] = {
		{ N("build:start"), true },
		{ N("a"), true },
		{ N("9"), true },
		{ N("Z"), true },
		{ N("infrastructure:service:container-crash"), true },
		{ N("a_b.c:d-e"), true },
		{ N("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"), true },
		{ N("a:"), true },
		{ N("a::b"), true },
		{ N("a.."), true },
		{ N(""), false },
		{ N("../../bin/sh"), false },
		{ N("a/b"), false },
		{ N(".hidden"), false },
		{ N("-a"), false },
		{ N("_a"), false },
		{ N("_default"), false },
		{ N(":a"), false },
		{ N("a b"), false },
		{ N("a\tb"), false },
		{ N("a\nb"), false },
		{ N("build\0start"), false },
		{ N("build\0"), false },
		{ N("a+b"), false },
		{ N("a\\b"), false },
		{ N("\xc3\xa9"), false },
		{ N("a\xc3\xa9"), false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(event_name_valid(cases[i].name, cases[i].len) == cases[i].want, "case %zu '%s'",
		      i, cases[i].name);
	CHECK(event_name_valid(n128, 128), "128 chars");
	CHECK(!event_name_valid(n129, 129), "129 chars");
	CHECK(!event_name_valid(NULL, 0), "NULL");
	/* exactly len bytes: a longer buffer is not looked at past len */
	CHECK(event_name_valid("ab/c", 2), "prefix of a longer buffer");
}

static void test_content_types(void)
{
	static const struct {
		const char *ct;
		enum content_kind want;
	} cases[] = {
		{ NULL, CONTENT_JSON },
		{ "", CONTENT_JSON },
		{ "   ", CONTENT_JSON },
		{ "application/json", CONTENT_JSON },
		{ "Application/JSON", CONTENT_JSON },
		{ "application/json; charset=utf-8", CONTENT_JSON },
		{ "application/json;charset=UTF-8", CONTENT_JSON },
		{ "application/json ; charset=utf-8", CONTENT_JSON },
		{ "  application/json  ", CONTENT_JSON },
		{ "application/json;", CONTENT_JSON },
		{ "application/vnd.github+json", CONTENT_JSON },
		{ "application/cloudevents+json; charset=utf-8", CONTENT_JSON },
		{ "text/x+json", CONTENT_JSON },
		{ "APPLICATION/VND.API+JSON", CONTENT_JSON },
		{ "application/x-www-form-urlencoded", CONTENT_FORM },
		{ "application/x-www-form-urlencoded; charset=utf-8", CONTENT_FORM },
		{ "Application/X-WWW-Form-Urlencoded", CONTENT_FORM },
		{ "text/plain", CONTENT_OTHER },
		{ "application/jsonx", CONTENT_OTHER },
		{ "application/json5", CONTENT_OTHER },
		{ "application/+json", CONTENT_OTHER },
		{ "application/xjson", CONTENT_OTHER },
		{ "json", CONTENT_OTHER },
		{ "application/", CONTENT_OTHER },
		{ "/json", CONTENT_OTHER },
		{ "application json", CONTENT_OTHER },
		{ "application/json garbage", CONTENT_OTHER },
		{ "application/json, text/plain", CONTENT_OTHER },
		{ "multipart/form-data; boundary=x", CONTENT_OTHER },
		{ "text/x-www-form-urlencoded", CONTENT_OTHER },
		{ "application/octet-stream", CONTENT_OTHER },
		{ ";", CONTENT_OTHER },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(content_type_classify(cases[i].ct) == cases[i].want, "case %zu '%s'", i,
		      cases[i].ct ? cases[i].ct : "(null)");
}

/* Parses and serializes (plain), or returns the error with a "!" before it. */
static char *parse_result(const char *body, size_t len)
{
	char err[128] = "";
	json_object *o = payload_parse_json(body, len, err, sizeof err);
	if (!o)
		return xasprintf("!%s", err);
	char *s = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

#define INVALID "!body is not valid JSON"
#define NOTOBJ "!body is not a JSON object"
#define DEEP "!JSON nests deeper than 1000 levels"

static void test_parse_json(void)
{
	static const struct {
		const char *body;
		size_t len;
		const char *want;
	} cases[] = {
		{ N("{}"), "{}" },
		{ N("{\"a\":1}"), "{\"a\":1}" },
		{ N(" \t\r\n{\"a\":1} \t\r\n"), "{\"a\":1}" },
		{ N("{\"a\":\"x\\u0000y\"}"), "{\"a\":\"x\\u0000y\"}" },
		{ N("{\"a\":1,\"a\":2}"), "{\"a\":2}" },
		{ N("{\"b\":1,\"a\":2,\"b\":3}"), "{\"b\":3,\"a\":2}" },
		{ N(""), "!body is empty" },
		{ N("   \n"), INVALID },
		{ N("{"), INVALID },
		{ N("{\"a\":}"), INVALID },
		{ N("{\"a\":1,}"), INVALID },
		{ N("{\"a\":1} x"), INVALID },
		{ N("{\"a\":1}{}"), INVALID },
		{ N("{\"a\":1}\0"), INVALID },
		{ N("{\"a\":1\0}"), INVALID },
		{ N("{\"a\":\"x\0y\"}"), INVALID },
		{ N("\0{}"), INVALID },
		{ N("{\"a\":tRue}"), INVALID },
		{ N("/* c */ {}"), INVALID },
		{ N("{\"a\":00}"), INVALID },
		{ N("{\"a\":-01}"), INVALID },
		{ N("{\"a\":01.5}"), INVALID },
		{ N("{\"a\":\"01\",\"b\":\"-0\"}"), "{\"a\":\"01\",\"b\":\"-0\"}" },
		{ N("{\"a\":\"\\\"01\"}"), "{\"a\":\"\\\"01\"}" },
		{ N("[1]"), NOTOBJ },
		{ N("[]"), NOTOBJ },
		{ N("1"), NOTOBJ },
		{ N("1 "), NOTOBJ },
		{ N("\"s\""), NOTOBJ },
		{ N("true"), NOTOBJ },
		{ N("null"), NOTOBJ },
		{ N("[1] x"), INVALID },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = parse_result(cases[i].body, cases[i].len);
		CHECK_STR(got, cases[i].want, "case %zu", i);
		free(got);
	}

	/* Numbers keep their JSON text, whatever json-c holds them as. */
	static const struct {
		const char *num;
	} nums[] = {
		{ "0" }, { "1" }, { "-1" }, { "1.50" }, { "1e3" }, { "1E+3" }, { "-0.0" }, { "0.1e-7" },
		{ "-0" }, { "9223372036854775807" }, { "9223372036854775808" },
		{ "-9223372036854775808" }, { "-9223372036854775809" },
		{ "12345678901234567890" }, { "18446744073709551615" }, { "18446744073709551616" },
		{ "123456789012345678901234" }, { "-123456789012345678901234" }, { "1E400" },
		{ "100000000000000000000000000000.5" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
		char *body = xasprintf("{\"a\":%s,\"b\":[%s],\"c\":{\"d\":%s}}", nums[i].num,
		                       nums[i].num, nums[i].num);
		json_object *o = payload_parse_json(body, strlen(body), NULL, 0);
		CHECK(o != NULL, "number %s", nums[i].num);
		char *a = payload_get_path(o, "a"), *b = payload_get_path(o, "b.0"),
		     *d = payload_get_path(o, "c.d");
		CHECK_STR(a, nums[i].num, "number a");
		CHECK_STR(b, nums[i].num, "number in array");
		CHECK_STR(d, nums[i].num, "number in object");
		free(a);
		free(b);
		free(d);
		json_object_put(o);
		free(body);
	}

	/* A body with a marked number (-0, a huge one) may also hold numbers
	 * written as the old mark looked (".0E+0"): each keeps its text. */
	const char *mixed = "{\"z\":-0,\"a\":2111111111111111111111111111111.0E+0,\"b\":5.0E+0,"
	                    "\"c\":123456789012345678901234}";
	json_object *o = payload_parse_json(mixed, strlen(mixed), NULL, 0);
	CHECK(o != NULL, "mixed numbers");
	static const char *const want[][2] = {
		{"z", "-0"}, {"a", "2111111111111111111111111111111.0E+0"}, {"b", "5.0E+0"},
		{"c", "123456789012345678901234"},
	};
	for (size_t i = 0; o && i < ARRAY_SIZE(want); i++) {
		char *got = payload_get_path(o, want[i][0]);
		CHECK_STR(got, want[i][1], "mixed number %s", want[i][0]);
		free(got);
	}
	json_object_put(o);
}

/* {"a":{"a":...}} with `containers` levels (root included), innermost inner. */
static char *nested(size_t containers, bool arrays, const char *inner)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "{\"k\":");
	for (size_t i = 1; i < containers; i++)
		sb_puts(&sb, arrays ? "[" : "{\"k\":");
	if (containers == 1 || !arrays || *inner)
		sb_puts(&sb, *inner ? inner : "1");
	for (size_t i = 1; i < containers; i++)
		sb_puts(&sb, arrays ? "]" : "}");
	sb_puts(&sb, "}");
	return sb_steal(&sb);
}

static void test_depth(void)
{
	static const struct {
		size_t containers;
		bool arrays;
		const char *inner;
		bool ok;
	} cases[] = {
		{ 999, true, "1", true },
		{ 1000, true, "1", true },
		{ 1001, true, "1", false },
		{ 1000, true, "", true },   /* innermost [] empty */
		{ 1001, true, "", false },  /* 1001 containers, no scalar at all */
		{ 1000, true, "{}", false }, /* 999 + root + {} = 1001 */
		{ 999, true, "{}", true },
		{ 1000, false, "1", true },
		{ 1001, false, "1", false },
		{ 1000, false, "\"s\"", true },
		{ 1002, false, "1", false },
		{ 5000, true, "1", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *body = nested(cases[i].containers, cases[i].arrays, cases[i].inner);
		char *got = parse_result(body, strlen(body));
		if (cases[i].ok)
			CHECK(got[0] != '!', "depth case %zu: %s", i, got);
		else
			CHECK_STR(got, DEEP, "depth case %zu", i);
		free(got);
		free(body);
	}
}

struct form_case {
	const char *body;
	const char *field;
	bool optional;
	const char *want; /* serialization, or "!" error */
};

static void test_form(void)
{
	static const struct form_case cases[] = {
		{ "a=1&b=2", NULL, false, "{\"a\":\"1\",\"b\":\"2\"}" },
		{ "", NULL, false, "{}" },
		{ "a=hello+world&b=%41%62%2b%25", NULL, false, "{\"a\":\"hello world\",\"b\":\"Ab+%\"}" },
		{ "a=1&a=2", NULL, false, "{\"a\":\"2\"}" },
		{ "a&b=", NULL, false, "{\"a\":\"\",\"b\":\"\"}" },
		{ "a=1&&b=2&", NULL, false, "{\"a\":\"1\",\"b\":\"2\"}" },
		{ "a=x=y", NULL, false, "{\"a\":\"x=y\"}" },
		{ "my+key=v", NULL, false, "{\"my key\":\"v\"}" },
		{ "a=%00", NULL, false, "{\"a\":\"\\u0000\"}" },
		{ "a=%C3%A9", NULL, false, "{\"a\":\"\xc3\xa9\"}" },
		{ "a=%zz", NULL, false, "!malformed form body" },
		{ "a=%4", NULL, false, "!malformed form body" },
		{ "a=%", NULL, false, "!malformed form body" },
		{ "%=1", NULL, false, "!malformed form body" },
		{ "a%00b=1", NULL, false, "!malformed form body" },
		{ "payload=%7B%22event%22%3A%22push%22%7D", "payload", false, "{\"event\":\"push\"}" },
		{ "payload=%7B%22a%22%3A+1%7D&x=2", "payload", false, "{\"a\":1}" },
		{ "payload=%5B1%5D", "payload", false, "!form field 'payload': body is not a JSON object" },
		{ "payload=nope", "payload", false, "!form field 'payload': body is not valid JSON" },
		{ "payload=", "payload", false, "!form field 'payload' is empty" },
		{ "x=1", "payload", false, "!form body has no 'payload' field" },
		{ "command=%2Fdeploy&text=now", "payload", true, "{\"command\":\"\\/deploy\",\"text\":\"now\"}" },
		{ "payload=%7B%7D", "payload", true, "{}" },
		{ "payload=x", "payload", true, "!form field 'payload': body is not valid JSON" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char err[128] = "";
		json_object *o = payload_parse_form(cases[i].body, strlen(cases[i].body), cases[i].field,
		                                    cases[i].optional, err, sizeof err);
		char *got = o ? xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))
		              : xasprintf("!%s", err);
		CHECK_STR(got, cases[i].want, "form case %zu '%s'", i, cases[i].body);
		free(got);
		json_object_put(o);
	}
	/* The body is not NUL-terminated: only len bytes count. */
	json_object *o = payload_parse_form("a=1&b=2", 3, NULL, false, NULL, 0);
	CHECK_STR(o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL,
	          "{\"a\":\"1\"}", "form len");
	json_object_put(o);
}

static void test_get_path(void)
{
	static const char doc[] =
		"{\"event\":\"build:start\",\"data\":{\"build\":{\"id\":\"b-1\",\"pr\":null,"
		"\"n\":42,\"f\":1.50,\"ok\":false,\"t\":true},\"items\":[{\"name\":\"x\"},"
		"{\"name\":\"y\"},[\"z\",7]],\"2\":\"two\",\"nul\":\"a\\u0000b\",\"empty\":\"\","
		"\"o\":{},\"a\":[]},\"a.b\":1}";
	json_object *root = payload_parse_json(doc, sizeof doc - 1, NULL, 0);
	CHECK(root != NULL, "get_path doc parses");
	static const struct {
		const char *path;
		const char *want;
		const char *want_str; /* payload_get_string */
		bool found;
	} cases[] = {
		{ "event", "build:start", "build:start", true },
		{ "data.build.id", "b-1", "b-1", true },
		{ "data.build.pr", "", NULL, true },
		{ "data.build.n", "42", NULL, true },
		{ "data.build.f", "1.50", NULL, true },
		{ "data.build.ok", "false", NULL, true },
		{ "data.build.t", "true", NULL, true },
		{ "data.items.0.name", "x", "x", true },
		{ "data.items.1.name", "y", "y", true },
		{ "data.items.2.0", "z", "z", true },
		{ "data.items.2.1", "7", NULL, true },
		{ "data.items.01.name", "y", "y", true },
		{ "data.2", "two", "two", true },
		{ "data.empty", "", "", true },
		{ "data.nul", NULL, NULL, true },
		{ "data", NULL, NULL, true },
		{ "data.build", NULL, NULL, true },
		{ "data.items", NULL, NULL, true },
		{ "data.o", NULL, NULL, true },
		{ "data.a", NULL, NULL, true },
		{ "data.items.3", NULL, NULL, false },
		{ "data.items.-1", NULL, NULL, false },
		{ "data.items.x", NULL, NULL, false },
		{ "data.items.+1", NULL, NULL, false },
		{ "data.build.pr.x", NULL, NULL, false },
		{ "data.build.id.x", NULL, NULL, false },
		{ "missing", NULL, NULL, false },
		{ "a.b", NULL, NULL, false },
		{ "", NULL, NULL, false },
		{ ".event", NULL, NULL, false },
		{ "event.", NULL, NULL, false },
		{ "data..build", NULL, NULL, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *got = payload_get_path(root, cases[i].path);
		CHECK_STR(got, cases[i].want, "get_path '%s'", cases[i].path);
		free(got);
		bool found = !cases[i].found;
		const char *s = payload_get_string(root, cases[i].path, &found);
		CHECK_STR(s, cases[i].want_str, "get_string '%s'", cases[i].path);
		CHECK(found == cases[i].found, "found '%s'", cases[i].path);
	}
	char *none = payload_get_path(NULL, "a");
	CHECK(none == NULL, "NULL root");
	CHECK(payload_get_string(root, "event", NULL) != NULL, "found may be NULL");
	json_object_put(root);
}

static void test_normalize(void)
{
	static const struct {
		const char *key;
		size_t len;
		const char *want;
	} cases[] = {
		{ N("pullRequestId"), "PULL_REQUEST_ID" },
		{ N("createdAt"), "CREATED_AT" },
		{ N("a.b"), "A_B" },
		{ N("__x__"), "X" },
		{ N("\xc3\xa9"), "" },
		{ N("HTTPServer"), "HTTPSERVER" },
		{ N("v2Api"), "V2_API" },
		{ N("9lives"), "9LIVES" },
		{ N("id"), "ID" },
		{ N("ID"), "ID" },
		{ N("userID"), "USER_ID" },
		{ N("a_b"), "A_B" },
		{ N("aB"), "A_B" },
		{ N("a-b c"), "A_B_C" },
		{ N("a--__..b"), "A_B" },
		{ N("x_Y"), "X_Y" },
		{ N("x-Y"), "X_Y" },
		{ N("object_kind"), "OBJECT_KIND" },
		{ N("Content-Type"), "CONTENT_TYPE" },
		{ N("caf\xc3\xa9" "Bar"), "CAF_BAR" },
		{ N("\xc3\xa9t\xc3\xa9"), "T" },
		{ N("a\xc3\x89"), "A" },
		{ N("2"), "2" },
		{ N("10"), "10" },
		{ N("a1b2"), "A1B2" },
		{ N("a1B2"), "A1_B2" },
		{ N("ABc"), "ABC" },
		{ N("aBC"), "A_BC" },
		{ N(""), "" },
		{ N("_"), "" },
		{ N("--"), "" },
		{ N("a\0b"), "A_B" },
		{ N("$ref"), "REF" },
		{ N("@timestamp"), "TIMESTAMP" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[128];
		memset(out, 'Z', sizeof out);
		size_t n = env_key_normalize(cases[i].key, cases[i].len, out);
		CHECK_STR(out, cases[i].want, "normalize case %zu", i);
		CHECK(n == strlen(cases[i].want), "normalize length case %zu", i);
	}
}

/* The env as "NAME=value" lines, in order. */
static char *env_text(const struct envlist *e)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "");
	for (size_t i = 0; i < e->n; i++) {
		sb_puts(&sb, e->v[i]);
		sb_putc(&sb, '\n');
	}
	return sb_steal(&sb);
}

static const char *const meta_reserved[] = {
	"HOOK_EVENT", "HOOK_ID", "HOOK_ENDPOINT", "HOOK_HOOK", "HOOK_ATTEMPT", "HOOK_REMOTE_ADDR",
	"HOOK_RECEIVED_AT", "HOOK_INTEGRATION_ID", "HOOK_INTEGRATION_NAME", NULL,
};

/*
 * Flattens json both ways, the tree and the text, into env (which may
 * hold metadata already) and rep; checks that the two agree, variable for
 * variable and in the report.
 */
static void flatten_both(const char *json, const struct flatten_opts *fo, struct envlist *env,
                         struct flatten_report *rep, const char *what)
{
	struct envlist text;
	envlist_init(&text);
	envlist_copy(&text, env);
	char err[128] = "";
	json_object *o = payload_parse_json(json, strlen(json), err, sizeof err);
	CHECK(o != NULL, "%s parses: %s", what, err);
	payload_flatten(o, fo, env, rep);
	json_object_put(o);
	CHECK(env->v[env->n] == NULL, "%s: NULL-terminated", what);

	struct flatten_report trep;
	CHECK(payload_flatten_text(json, strlen(json), fo, &text, &trep), "%s from the text", what);
	bool same = text.n == env->n && text.bytes == env->bytes;
	for (size_t i = 0; same && i < text.n; i++)
		same = strcmp(text.v[i], env->v[i]) == 0;
	CHECK(same, "%s: the text gives %zu variables, the tree %zu", what, text.n, env->n);
	CHECK(trep.omitted == rep->omitted && trep.collisions == rep->collisions,
	      "%s: the text's report %zu/%zu, the tree's %zu/%zu", what, trep.omitted,
	      trep.collisions, rep->omitted, rep->collisions);
	CHECK_STR(trep.omitted_names ? trep.omitted_names : "",
	          rep->omitted_names ? rep->omitted_names : "", "%s: omitted names agree", what);
	CHECK_STR(trep.collided ? trep.collided : "", rep->collided ? rep->collided : "",
	          "%s: collided agree", what);
	flatten_report_free(&trep);
	envlist_free(&text);
}

static void test_flatten_table(void)
{
	static const struct {
		const char *json;
		bool reserved;
		const char *want;
		size_t omitted, collisions;
	} cases[] = {
		{ "{}", false, "", 0, 0 },
		{ "{\"a\":\"x\"}", false, "HOOK_A=x\n", 0, 0 },
		{ "{\"pullRequestId\":null}", false, "HOOK_PULL_REQUEST_ID=\n", 0, 0 },
		{ "{\"a\":true,\"b\":false,\"c\":null}", false, "HOOK_A=true\nHOOK_B=false\nHOOK_C=\n", 0, 0 },
		{ "{\"n\":1.50,\"m\":1e3,\"k\":-7,\"big\":12345678901234567890}", false,
		  "HOOK_N=1.50\nHOOK_M=1e3\nHOOK_K=-7\nHOOK_BIG=12345678901234567890\n", 0, 0 },
		{ "{\"huge\":123456789012345678901234,\"z\":-0}", false,
		  "HOOK_HUGE=123456789012345678901234\nHOOK_Z=-0\n", 0, 0 },
		{ "{\"data\":{\"build\":{\"createdAt\":\"t\"}}}", false, "HOOK_DATA_BUILD_CREATED_AT=t\n", 0, 0 },
		{ "{\"v2Api\":{\"9lives\":1}}", false, "HOOK_V2_API_9LIVES=1\n", 0, 0 },
		/* arrays: a count where the array is, the elements after */
		{ "{\"items\":[\"a\",\"b\"]}", false, "HOOK_ITEMS_COUNT=2\nHOOK_ITEMS_0=a\nHOOK_ITEMS_1=b\n", 0, 0 },
		{ "{\"items\":[{\"name\":\"x\"},{\"name\":\"y\"},{\"name\":\"z\"}]}", false,
		  "HOOK_ITEMS_COUNT=3\nHOOK_ITEMS_0_NAME=x\nHOOK_ITEMS_1_NAME=y\nHOOK_ITEMS_2_NAME=z\n", 0, 0 },
		{ "{\"m\":[[1,2],[3,[4]]]}", false,
		  "HOOK_M_COUNT=2\nHOOK_M_0_COUNT=2\nHOOK_M_1_COUNT=2\nHOOK_M_0_0=1\nHOOK_M_0_1=2\n"
		  "HOOK_M_1_0=3\nHOOK_M_1_1_COUNT=1\nHOOK_M_1_1_0=4\n", 0, 0 },
		{ "{\"e\":[],\"o\":{},\"x\":1}", false, "HOOK_E_COUNT=0\nHOOK_X=1\n", 0, 0 },
		/* admission order: by depth, document order within a depth */
		{ "{\"a\":{\"b\":{\"c\":1}},\"d\":2,\"e\":{\"f\":3}}", false,
		  "HOOK_D=2\nHOOK_E_F=3\nHOOK_A_B_C=1\n", 0, 0 },
		/* array elements after every scalar outside arrays, however deep */
		{ "{\"list\":[{\"id\":1}],\"z\":{\"y\":{\"x\":{\"w\":1}}}}", false,
		  "HOOK_LIST_COUNT=1\nHOOK_Z_Y_X_W=1\nHOOK_LIST_0_ID=1\n", 0, 0 },
		/* inside one array before inside two */
		{ "{\"c\":[{\"files\":[\"f1\",\"f2\"],\"id\":\"c1\"}],\"h\":{\"files\":[\"x\"]}}", false,
		  "HOOK_C_COUNT=1\nHOOK_H_FILES_COUNT=1\nHOOK_C_0_FILES_COUNT=2\nHOOK_C_0_ID=c1\n"
		  "HOOK_H_FILES_0=x\nHOOK_C_0_FILES_0=f1\nHOOK_C_0_FILES_1=f2\n", 0, 0 },
		/* collisions: the first admitted wins (the shallower, then the
		 * first in document order); counted apart from the limits */
		{ "{\"a_b\":1,\"aB\":2}", false, "HOOK_A_B=1\n", 0, 1 },
		{ "{\"aB\":2,\"a_b\":1}", false, "HOOK_A_B=2\n", 0, 1 },
		{ "{\"a\":{\"b\":1},\"a_b\":2,\"A.B\":3}", false, "HOOK_A_B=2\n", 0, 2 },
		{ "{\"hook\":{\"id\":1},\"hook_id\":2}", false, "HOOK_HOOK_ID=2\n", 0, 1 },
		{ "{\"x\":[1],\"x_0\":2}", false, "HOOK_X_COUNT=1\nHOOK_X_0=2\n", 0, 1 },
		{ "{\"n_count\":5,\"n\":[1]}", false, "HOOK_N_COUNT=5\nHOOK_N_0=1\n", 0, 1 },
		/* reserved metadata names are never taken by the payload */
		{ "{\"event\":\"e\",\"id\":\"i\",\"hook\":1,\"other\":2}", true, "HOOK_OTHER=2\n", 0, 3 },
		{ "{\"event\":\"e\",\"id\":\"i\"}", false, "HOOK_EVENT=e\nHOOK_ID=i\n", 0, 0 },
		{ "{\"integration\":{\"id\":1,\"name\":2,\"x\":3}}", true, "HOOK_INTEGRATION_X=3\n", 0, 2 },
		{ "{\"remoteAddr\":1,\"remote_addr_x\":2}", true, "HOOK_REMOTE_ADDR_X=2\n", 0, 1 },
		/* keys that normalize to nothing add nothing to the path */
		{ "{\"--\":{\"x\":1}}", false, "HOOK_X=1\n", 0, 0 },
		{ "{\"\xc3\xa9\":{\"x\":1},\"y\":{\"_\":2}}", false, "HOOK_X=1\nHOOK_Y=2\n", 0, 0 },
		{ "{\"\":1}", false, "", 0, 0 },
		{ "{\"--\":1,\"a\":2}", false, "HOOK_A=2\n", 0, 0 },
		{ "{\"\":{\"\":[]}}", false, "", 0, 0 },
		{ "{\"__a__\":{\"__b__\":1}}", false, "HOOK_A_B=1\n", 0, 0 },
		/* a NUL byte in a string: left out; \u0000 elsewhere is fine */
		{ "{\"s\":\"a\\u0000b\",\"t\":\"ok\"}", false, "HOOK_T=ok\n", 1, 0 },
		{ "{\"s\":\"\\u0000\"}", false, "", 1, 0 },
		/* a left-out leaf keeps its name from a later one */
		{ "{\"s\":\"a\\u0000b\",\"S\":\"later\"}", false, "", 1, 1 },
		/* strings as they are */
		{ "{\"s\":\"line1\\nline2 \\\"q\\\" $HOME `x` \\u00e9\"}", false,
		  "HOOK_S=line1\nline2 \"q\" $HOME `x` \xc3\xa9\n", 0, 0 },
		{ "{\"s\":\"\"}", false, "HOOK_S=\n", 0, 0 },
		/* surrogates: a pair is one character, a lone half is U+FFFD */
		{ "{\"s\":\"\\ud83d\\ude00|\\ud800|\\ud800x|\\udc00|\\ud800\\u0041|\\ud800\\ud83d\\ude00\"}",
		  false, "HOOK_S=\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbdx|\xef\xbf\xbd|\xef\xbf\xbd"
		  "A|\xef\xbf\xbd\xf0\x9f\x98\x80\n", 0, 0 },
		{ "{\"s\":\"\\ud800\\n\\/\\\\\\b\\f\\r\\t\"}", false,
		  "HOOK_S=\xef\xbf\xbd\n/\\\b\f\r\t\n", 0, 0 },
		/* a key holds up to its first NUL, as json-c keeps it */
		{ "{\"a\\u0000b\":1,\"c\":{\"d\\u0000\":2}}", false, "HOOK_A=1\nHOOK_C_D=2\n", 0, 0 },
		/* escaped keys are decoded before they are normalized */
		{ "{\"\\u0061\\u0042\":1}", false, "HOOK_A_B=1\n", 0, 0 },
		{ "{ \"a\" : [ 1 , { \"b\" : \"x\" } ] , \"c\" : -0.0e+1 }", false,
		  "HOOK_A_COUNT=2\nHOOK_C=-0.0e+1\nHOOK_A_0=1\nHOOK_A_1_B=x\n", 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char what[32];
		snprintf(what, sizeof what, "flatten case %zu", i);
		struct envlist env;
		envlist_init(&env);
		struct flatten_report rep;
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", cases[i].reserved ? meta_reserved : NULL);
		flatten_both(cases[i].json, &fo, &env, &rep, what);
		char *got = env_text(&env);
		CHECK_STR(got, cases[i].want, "%s", what);
		CHECK(rep.omitted == cases[i].omitted, "%s omitted %zu, want %zu", what, rep.omitted,
		      cases[i].omitted);
		CHECK(rep.collisions == cases[i].collisions, "%s collisions %zu, want %zu", what,
		      rep.collisions, cases[i].collisions);
		free(got);
		flatten_report_free(&rep);
		envlist_free(&env);
	}
}

/* The budget: env_array_max, env_max_vars, env_max_bytes, and what the
 * report names. */
static void test_flatten_budget(void)
{
	static const struct {
		const char *json;
		size_t array_max, max_vars, max_bytes; /* 0 for the last two: the default */
		const char *want;
		size_t omitted;
		const char *names;
	} cases[] = {
		{ "{\"a\":[1,2,3,4]}", 2, 0, 0, "HOOK_A_COUNT=4\nHOOK_A_0=1\nHOOK_A_1=2\n", 2, "HOOK_A_2..3" },
		{ "{\"a\":[1,2],\"b\":[]}", 0, 0, 0, "HOOK_A_COUNT=2\nHOOK_B_COUNT=0\n", 2, "HOOK_A_0..1" },
		/* the count is of every element; a cut element counts its leaves */
		{ "{\"o\":[{\"x\":1,\"y\":2},{\"x\":3},{\"x\":4,\"z\":[5]}]}", 1, 0, 0,
		  "HOOK_O_COUNT=3\nHOOK_O_0_X=1\nHOOK_O_0_Y=2\n", 3, "HOOK_O_1..2" },
		{ "{\"o\":[{},{}]}", 1, 0, 0, "HOOK_O_COUNT=2\n", 0, "" },
		/* every array keeps its own first elements, nested ones too */
		{ "{\"c\":[{\"f\":[1,2,3]},{\"f\":[4]}]}", 2, 0, 0,
		  "HOOK_C_COUNT=2\nHOOK_C_0_F_COUNT=3\nHOOK_C_1_F_COUNT=1\nHOOK_C_0_F_0=1\nHOOK_C_0_F_1=2\n"
		  "HOOK_C_1_F_0=4\n", 1, "HOOK_C_0_F_2..2" },
		/* max_vars: what comes last in admission order is what goes */
		{ "{\"a\":[1],\"b\":1,\"c\":{\"d\":1}}", 32, 2, 0, "HOOK_A_COUNT=1\nHOOK_B=1\n", 2,
		  "HOOK_C_D HOOK_A_0" },
		{ "{\"a\":1}", 32, 0, 0, "HOOK_A=1\n", 0, "" },
		/* max_bytes: "HOOK_A=1" + NUL is 9; a later one that fits still goes in */
		{ "{\"a\":1,\"bb\":\"xyz\",\"c\":2}", 32, 0, 18, "HOOK_A=1\nHOOK_C=2\n", 1, "HOOK_BB" },
		{ "{\"a\":1}", 32, 0, 8, "", 1, "HOOK_A" },
		/* more than FLATTEN_REPORT_NAMES left out: the first are named */
		{ "{\"a\":[1,2,3,4,5,6,7,8,9,10],\"b\":[1,2],\"k\":1}", 32, 1, 0, "HOOK_A_COUNT=10\n", 14,
		  "HOOK_B_COUNT HOOK_K HOOK_A_0 HOOK_A_1 HOOK_A_2 HOOK_A_3 HOOK_A_4 HOOK_A_5" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char what[32];
		snprintf(what, sizeof what, "budget case %zu", i);
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", meta_reserved);
		fo.array_max = cases[i].array_max;
		if (cases[i].max_vars)
			fo.max_vars = cases[i].max_vars;
		if (cases[i].max_bytes)
			fo.max_bytes = cases[i].max_bytes;
		struct envlist env;
		envlist_init(&env);
		struct flatten_report rep;
		flatten_both(cases[i].json, &fo, &env, &rep, what);
		char *got = env_text(&env);
		CHECK_STR(got, cases[i].want, "%s", what);
		CHECK(rep.omitted == cases[i].omitted, "%s omitted %zu, want %zu", what, rep.omitted,
		      cases[i].omitted);
		CHECK_STR(rep.omitted_names ? rep.omitted_names : "", cases[i].names, "%s names", what);
		free(got);
		flatten_report_free(&rep);
		envlist_free(&env);
	}
}

/* Collisions: which loses, how the report names it; metadata that says
 * what the payload says is no collision. */
static void test_flatten_collisions(void)
{
	static const struct {
		const char *json, *want;
		size_t collisions;
		const char *collided;
	} cases[] = {
		{ "{\"hook_id\":1,\"hook\":{\"id\":2}}", "HOOK_HOOK_ID=1\n", 1, "HOOK_HOOK_ID (hook.id)" },
		{ "{\"hook\":{\"id\":2},\"hook_id\":1}", "HOOK_HOOK_ID=1\n", 1, "HOOK_HOOK_ID (hook.id)" },
		{ "{\"n\":[1],\"n_count\":5}", "HOOK_N_COUNT=1\nHOOK_N_0=1\n", 1, "HOOK_N_COUNT (n_count)" },
		{ "{\"n_count\":5,\"n\":[1]}", "HOOK_N_COUNT=5\nHOOK_N_0=1\n", 1,
		  "HOOK_N_COUNT (count of n)" },
		{ "{\"a\":[{\"b.c\":1}],\"a_0_b\":{\"c\":2}}", "HOOK_A_COUNT=1\nHOOK_A_0_B_C=2\n", 1,
		  "HOOK_A_0_B_C (a.0.b.c)" },
		/* metadata: HOOK_EVENT says "e" as the body does; HOOK_ID does not;
		 * HOOK_HOOK is reserved, set later, for each hook */
		{ "{\"event\":\"e\",\"id\":\"i\",\"hook\":\"h\",\"x\":1}", "HOOK_X=1\n", 2,
		  "HOOK_ID (id), HOOK_HOOK (hook)" },
		{ "{\"\\u0061\":{\"b\":1},\"a_b\":2}", "HOOK_A_B=2\n", 1, "HOOK_A_B (a.b)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char what[32];
		snprintf(what, sizeof what, "collision case %zu", i);
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", meta_reserved);
		struct envlist env;
		envlist_init(&env);
		envlist_add(&env, "HOOK_EVENT", "e");
		envlist_add(&env, "HOOK_ID", "delivery-1");
		struct flatten_report rep;
		flatten_both(cases[i].json, &fo, &env, &rep, what);
		char *got = env_text(&env);
		char *want = xasprintf("HOOK_EVENT=e\nHOOK_ID=delivery-1\n%s", cases[i].want);
		CHECK_STR(got, want, "%s", what);
		CHECK(rep.collisions == cases[i].collisions && rep.omitted == 0, "%s collisions %zu", what,
		      rep.collisions);
		CHECK_STR(rep.collided ? rep.collided : "", cases[i].collided, "%s collided", what);
		free(want);
		free(got);
		flatten_report_free(&rep);
		envlist_free(&env);
	}
}

/* A key given twice in an object: json-c keeps the last value, in the
 * first one's place; the text walk leaves such a body to the tree, and
 * gives back env as it was. */
static void test_flatten_duplicates(void)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{\"a\":1,\"b\":2,\"a\":3}", "HOOK_A=3\nHOOK_B=2\n" },
		{ "{\"o\":{\"k\":1,\"k\":{\"x\":2}}}", "HOOK_O_K_X=2\n" },
		{ "{\"a\\u0000x\":1,\"a\\u0000y\":2}", "HOOK_A=2\n" },
		{ "{\"\\u0061\":1,\"a\":2}", "HOOK_A=2\n" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_object *o = payload_parse_json(cases[i].json, strlen(cases[i].json), NULL, 0);
		CHECK(o != NULL, "duplicate case %zu parses", i);
		struct envlist env;
		envlist_init(&env);
		envlist_add(&env, "PATH", "/bin");
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", NULL);
		struct flatten_report frep = {.omitted = 99};
		CHECK(!payload_flatten_text(cases[i].json, strlen(cases[i].json), &fo, &env, &frep),
		      "duplicate case %zu: the text walk declines", i);
		CHECK(frep.omitted == 0 && !frep.omitted_names, "duplicate case %zu: no report", i);
		CHECK(env.n == 1 && env.v[1] == NULL && env.bytes == strlen("PATH=/bin") + 1,
		      "duplicate case %zu: env as it was", i);
		envlist_free(&env);
		envlist_init(&env);
		payload_flatten(o, &fo, &env, NULL);
		char *got = env_text(&env);
		CHECK_STR(got, cases[i].want, "duplicate case %zu, the tree", i);
		free(got);
		envlist_free(&env);
		json_object_put(o);
	}
	/* Declined into an envlist never used: still as it was. */
	struct envlist zero = {0};
	struct flatten_opts fo = FLATTEN_OPTS("HOOK_", NULL);
	struct flatten_report zrep = {.omitted = 7};
	CHECK(!payload_flatten_text("{\"a\":{},\"a\":{}}", 15, &fo, &zero, &zrep),
	      "a duplicate into an empty envlist");
	CHECK(zero.n == 0 && zero.bytes == 0 && zrep.omitted == 0, "the empty envlist as it was");
	envlist_free(&zero);
	/* Objects apart may hold the same key. */
	const char *apart = "{\"a\":{\"k\":1},\"b\":{\"k\":2},\"c\":[{\"k\":3},{\"k\":4}]}";
	struct envlist env;
	envlist_init(&env);
	CHECK(payload_flatten_text(apart, strlen(apart), &fo, &env, NULL),
	      "the same key in two objects");
	char *got = env_text(&env);
	CHECK_STR(got, "HOOK_C_COUNT=2\nHOOK_A_K=1\nHOOK_B_K=2\nHOOK_C_0_K=3\nHOOK_C_1_K=4\n",
	          "keys apart");
	free(got);
	envlist_free(&env);
}

/* Flattens a body built in the test, both ways; returns the env count,
 * *omitted set. */
static size_t flatten_body_with(const char *body, const struct flatten_opts *fo,
                                struct envlist *env, size_t *omitted)
{
	envlist_init(env);
	struct flatten_report rep;
	flatten_both(body, fo, env, &rep, "limit body");
	*omitted = rep.omitted;
	flatten_report_free(&rep);
	return env->n;
}

static size_t flatten_body(const char *body, struct envlist *env, size_t *omitted)
{
	struct flatten_opts fo = FLATTEN_OPTS("HOOK_", meta_reserved);
	return flatten_body_with(body, &fo, env, omitted);
}

/* The variables of env that are not an array's count. */
static size_t leaf_vars(const struct envlist *env)
{
	size_t n = 0;
	for (size_t i = 0; i < env->n; i++) {
		size_t len = strcspn(env->v[i], "=");
		n += !(len >= 6 && memcmp(env->v[i] + len - 6, "_COUNT", 6) == 0);
	}
	return n;
}

static void test_flatten_limits(void)
{
	struct envlist env;
	size_t omitted;
	struct strbuf sb;

	/* values: exactly 64 KiB kept, one byte more left out */
	char *v64 = xmalloc(FLATTEN_MAX_VALUE + 2);
	memset(v64, 'v', FLATTEN_MAX_VALUE + 1);
	v64[FLATTEN_MAX_VALUE + 1] = '\0';
	char *body = xasprintf("{\"big\":\"%s\",\"ok\":\"%.*s\",\"after\":1}", v64,
	                       FLATTEN_MAX_VALUE, v64);
	CHECK(flatten_body(body, &env, &omitted) == 2, "64 KiB + 1 left out");
	CHECK(omitted == 1, "64 KiB + 1 counted");
	CHECK(envlist_find(&env, "HOOK_BIG") < 0, "big absent");
	long ok = envlist_find(&env, "HOOK_OK");
	CHECK(ok >= 0 && strlen(env.v[ok]) == strlen("HOOK_OK=") + FLATTEN_MAX_VALUE, "exactly 64 KiB kept");
	envlist_free(&env);
	free(body);
	free(v64);

	/* 1,025 leaves: 1,024 kept, 1 left out (the last in document order) */
	sb_init(&sb);
	sb_puts(&sb, "{");
	for (int i = 0; i < 1025; i++)
		sb_printf(&sb, "%s\"k%d\":%d", i ? "," : "", i, i);
	sb_puts(&sb, "}");
	CHECK(flatten_body(sb.buf, &env, &omitted) == FLATTEN_MAX_VARS, "1024 kept");
	CHECK(omitted == 1, "1 left out past 1024");
	CHECK(envlist_find(&env, "HOOK_K1023") >= 0, "k1023 kept");
	CHECK(envlist_find(&env, "HOOK_K1024") < 0, "k1024 left out");
	envlist_free(&env);
	sb_free(&sb);

	/* exactly 1,024 variables: nothing left out; an array's count is one */
	sb_init(&sb);
	sb_puts(&sb, "{\"a\":[");
	for (int i = 0; i < 1023; i++)
		sb_printf(&sb, "%s%d", i ? "," : "", i);
	sb_puts(&sb, "]}");
	struct flatten_opts wide = FLATTEN_OPTS("HOOK_", meta_reserved);
	wide.array_max = 2000;
	CHECK(flatten_body_with(sb.buf, &wide, &env, &omitted) == 1024 && omitted == 0,
	      "1024 exactly");
	envlist_free(&env);
	/* ... one element more: the last element goes, not the count */
	sb.len -= 2;
	sb_puts(&sb, ",1023]}");
	CHECK(flatten_body_with(sb.buf, &wide, &env, &omitted) == 1024 && omitted == 1, "1025");
	CHECK(envlist_find(&env, "HOOK_A_COUNT") >= 0 && envlist_find(&env, "HOOK_A_1023") < 0,
	      "HOOK_A_1023 left out");
	envlist_free(&env);
	/* ... and by default an array gives 32 elements */
	CHECK(flatten_body(sb.buf, &env, &omitted) == 33 && omitted == 1024 - 32, "32 elements");
	CHECK(strcmp(env.v[envlist_find(&env, "HOOK_A_COUNT")], "HOOK_A_COUNT=1024") == 0,
	      "the count of them all");
	envlist_free(&env);
	sb_free(&sb);

	/* 512 KiB in all: 9 values of 60,000 bytes; "HOOK_Kn=" + value + NUL is
	 * 60,009 bytes, 8 of them 480,072; a 9th would be 540,081 > 524,288.
	 * A small one after it still fits. */
	char *v60 = xmalloc(60001);
	memset(v60, 'x', 60000);
	v60[60000] = '\0';
	sb_init(&sb);
	sb_puts(&sb, "{");
	for (int i = 0; i < 9; i++)
		sb_printf(&sb, "\"k%d\":\"%s\",", i, v60);
	sb_puts(&sb, "\"small\":\"s\"}");
	CHECK(flatten_body(sb.buf, &env, &omitted) == 9, "512 KiB: 8 big + small");
	CHECK(omitted == 1, "512 KiB: one left out");
	CHECK(envlist_find(&env, "HOOK_K8") < 0, "k8 left out");
	CHECK(envlist_find(&env, "HOOK_SMALL") >= 0, "small still fits");
	CHECK(env.bytes <= FLATTEN_MAX_BYTES, "bytes within the limit");
	envlist_free(&env);
	sb_free(&sb);
	free(v60);

	/* 512 KiB boundary exactly: entries that sum to 524,288 are all kept */
	{
		/* 8 entries "HOOK_Kn=" (8) + value + NUL: 65,536 each = 524,288 */
		char *v = xmalloc(65528);
		memset(v, 'y', 65527);
		v[65527] = '\0';
		sb_init(&sb);
		sb_puts(&sb, "{");
		for (int i = 0; i < 8; i++)
			sb_printf(&sb, "\"k%d\":\"%s\",", i, v);
		sb_puts(&sb, "\"z\":\"\"}");
		CHECK(flatten_body(sb.buf, &env, &omitted) == 8, "exactly 512 KiB kept");
		CHECK(omitted == 1 && env.bytes == FLATTEN_MAX_BYTES, "HOOK_Z= does not fit");
		envlist_free(&env);
		sb_free(&sb);
		free(v);
	}

	/* depth: 32 levels kept, 33 left out (top-level keys are level 1) */
	static const struct {
		int levels;
		bool arrays;
		size_t kept;
	} depth[] = {
		{ 1, false, 1 }, { 31, false, 1 }, { 32, false, 1 }, { 33, false, 0 }, { 40, false, 0 },
		{ 32, true, 1 }, { 33, true, 0 }, { 500, true, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(depth); i++) {
		/* levels - 1 containers below the root, then the leaf */
		sb_init(&sb);
		sb_puts(&sb, "{\"a\":");
		for (int l = 1; l < depth[i].levels; l++)
			sb_puts(&sb, depth[i].arrays ? "[" : "{\"a\":");
		sb_puts(&sb, "1");
		for (int l = 1; l < depth[i].levels; l++)
			sb_puts(&sb, depth[i].arrays ? "]" : "}");
		sb_puts(&sb, ",\"top\":1}");
		flatten_body(sb.buf, &env, &omitted);
		CHECK(leaf_vars(&env) == depth[i].kept + 1, "depth %d", depth[i].levels);
		CHECK(omitted == 1 - depth[i].kept, "depth %d omitted", depth[i].levels);
		envlist_free(&env);
		sb_free(&sb);
	}
	/* element of a top-level array is level 2 */
	CHECK(flatten_body("{\"a\":[1,[2,3]]}", &env, &omitted) == 5 && leaf_vars(&env) == 3 &&
	      omitted == 0, "array levels");
	envlist_free(&env);
	/* several leaves below the limit are all counted */
	sb_init(&sb);
	sb_puts(&sb, "{\"a\":");
	for (int l = 1; l < 32; l++)
		sb_puts(&sb, "{\"a\":");
	sb_puts(&sb, "{\"x\":1,\"y\":[2,3],\"z\":{}}");
	for (int l = 1; l < 32; l++)
		sb_puts(&sb, "}");
	sb_puts(&sb, "}");
	CHECK(flatten_body(sb.buf, &env, &omitted) == 0 && omitted == 3, "3 leaves past 32");
	envlist_free(&env);
	{
		/* ... named after the container at level 32 */
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", NULL);
		struct flatten_report rep;
		envlist_init(&env);
		flatten_both(sb.buf, &fo, &env, &rep, "past 32");
		CHECK_STR(rep.omitted_names,
		          "HOOK_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_A_*",
		          "the cut named");
		flatten_report_free(&rep);
		envlist_free(&env);
	}
	sb_free(&sb);

	/* a name over 4 KiB (a huge key) is left out so execve never sees it */
	char *key = xmalloc(5001);
	memset(key, 'k', 5000);
	key[5000] = '\0';
	body = xasprintf("{\"%s\":1,\"ok\":2}", key);
	CHECK(flatten_body(body, &env, &omitted) == 1 && omitted == 1, "huge name left out");
	envlist_free(&env);
	free(body);
	free(key);
}

static void test_flatten_env(void)
{
	/* names already in env are never taken; prefix other than HOOK_ */
	json_object *o = payload_parse_json(N("{\"path\":\"x\",\"a\":1}"), NULL, 0);
	struct envlist env;
	envlist_init(&env);
	envlist_add(&env, "X_PATH", "/bin");
	struct flatten_opts fo = FLATTEN_OPTS("X_", NULL);
	struct flatten_report rep;
	payload_flatten(o, &fo, &env, &rep);
	char *got = env_text(&env);
	CHECK_STR(got, "X_PATH=/bin\nX_A=1\n", "existing env names kept");
	CHECK(rep.omitted == 0, "existing env collision not counted as left out");
	CHECK(rep.collisions == 1, "but counted as a collision");
	CHECK_STR(rep.collided, "X_PATH (path)", "and named");
	flatten_report_free(&rep);
	free(got);
	envlist_free(&env);
	envlist_free(&env); /* twice: harmless */
	json_object_put(o);
}

static void test_envlist(void)
{
	struct envlist e;
	envlist_init(&e);
	CHECK(e.n == 0 && e.v[0] == NULL, "empty");
	envlist_add(&e, "B", "2");
	envlist_add(&e, "A_B", "3");
	envlist_add(&e, "A", "1");
	envlist_add(&e, "A0", "4");
	envlist_add_len(&e, "C", "xyz", 2);
	envlist_add(&e, "Z", NULL);
	CHECK(e.bytes == 4 + 6 + 4 + 5 + 5 + 3, "bytes %zu", e.bytes);
	CHECK(envlist_find(&e, "A") == 2, "find A");
	CHECK(envlist_find(&e, "A_") == -1, "find prefix");
	CHECK(envlist_find(&e, "C") == 4 && strcmp(e.v[4], "C=xy") == 0, "add_len");
	envlist_add(&e, "B", "22");
	CHECK(e.n == 6 && strcmp(e.v[0], "B=22") == 0, "replace keeps one entry");
	CHECK(e.bytes == 5 + 6 + 4 + 5 + 5 + 3, "bytes after replace %zu", e.bytes);
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof name, "V%03d", 99 - i);
		envlist_add(&e, name, "v");
	}
	CHECK(e.n == 106 && e.v[106] == NULL, "grows, NULL-terminated");
	envlist_sort(&e);
	static const char *const want[] = { "A=1", "A0=4", "A_B=3", "B=22", "C=xy", "V000=v" };
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		CHECK_STR(e.v[i], want[i], "sorted %zu", i);
	CHECK_STR(e.v[105], "Z=", "sorted last");
	CHECK(e.v[106] == NULL, "still NULL-terminated");
	size_t bytes = e.bytes;
	envlist_remove(&e, "A0");
	CHECK(e.n == 105 && e.v[105] == NULL && e.bytes == bytes - 5, "remove: %zu", e.n);
	CHECK_STR(e.v[1], "A_B=3", "the rest moves up");
	envlist_remove(&e, "A0");
	envlist_remove(&e, "A_");
	CHECK(e.n == 105, "removing a missing name changes nothing");
	envlist_remove(&e, "Z");
	CHECK(e.n == 104 && e.v[104] == NULL, "the last one");
	envlist_copy(&e, &(struct envlist){0});
	CHECK(e.n == 104, "copying an empty list");
	struct envlist c;
	envlist_init(&c);
	envlist_copy(&c, &e);
	CHECK(c.n == 104 && c.bytes == e.bytes && strcmp(c.v[0], e.v[0]) == 0 && c.v[0] != e.v[0],
	      "a copy");
	envlist_free(&c);
	envlist_free(&e);
	envlist_free(NULL);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rbe");
	if (!f)
		return NULL;
	struct strbuf sb;
	sb_init(&sb);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		sb_append(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return sb_steal(&sb);
}

static void test_sample(void)
{
	const char *dir = getenv("HOOKD_TEST_DATA");
	char *path = xasprintf("%s/northflank-build-start.json", dir ? dir : "../data");
	size_t len = 0;
	char *body = read_file(path, &len);
	CHECK(body != NULL, "read %s", path);
	free(path);
	if (!body)
		return;
	char err[128] = "";
	json_object *o = payload_parse_json(body, len, err, sizeof err);
	CHECK(o != NULL, "sample parses: %s", err);
	const char *ev = payload_get_string(o, "event", NULL);
	CHECK_STR(ev, "build:start", "sample event");
	CHECK(ev && event_name_valid(ev, strlen(ev)), "sample event valid");

	static const char *const want[] = {
		"HOOK_DATA_BUILD_ID=social-hour-1312",
		"HOOK_DATA_BUILD_BRANCH=master",
		"HOOK_DATA_BUILD_PULL_REQUEST_ID=",
		"HOOK_DATA_BUILD_STATUS=STARTING",
		"HOOK_DATA_BUILD_SHA=ca624abed0d5ba0ad6e6fe28c396196b81f0200d",
		"HOOK_DATA_BUILD_CONCLUDED=false",
		"HOOK_DATA_BUILD_CREATED_AT=2022-01-19T09:04:40.916Z",
		"HOOK_DATA_SERVICE_ID=website",
		"HOOK_DATA_SERVICE_NAME=Website",
		"HOOK_DATA_PROJECT_ID=personal-blog",
		"HOOK_DATA_PROJECT_NAME=Personal Blog",
		"HOOK_DATA_USER_ID=thomas",
	};
	for (int with_reserved = 0; with_reserved < 2; with_reserved++) {
		struct envlist env;
		envlist_init(&env);
		struct flatten_opts fo = FLATTEN_OPTS("HOOK_", with_reserved ? meta_reserved : NULL);
		struct flatten_report rep;
		payload_flatten(o, &fo, &env, &rep);
		size_t base = with_reserved ? 0 : 1;
		CHECK(env.n == ARRAY_SIZE(want) + base, "sample count %zu", env.n);
		CHECK(rep.omitted == 0, "sample omitted %zu", rep.omitted);
		flatten_report_free(&rep);
		if (!with_reserved)
			CHECK_STR(env.n ? env.v[0] : NULL, "HOOK_EVENT=build:start", "payload event leaf");
		else
			CHECK(envlist_find(&env, "HOOK_EVENT") < 0, "reserved HOOK_EVENT left to the daemon");
		for (size_t i = 0; i < ARRAY_SIZE(want) && base + i < env.n; i++)
			CHECK_STR(env.v[base + i], want[i], "sample %zu", i);
		envlist_free(&env);
	}
	json_object_put(o);
	free(body);
}

/*
 * A shared start (envlist_share) and a flattened payload's block: lists
 * that replace, remove, sort and free their entries as any other list,
 * and leave the shared copy as it was (ASan: nothing freed twice).
 */
static void test_envlist_shared_and_block(void)
{
	struct envlist base;
	envlist_init(&base);
	envlist_add(&base, "USER", "hooks");
	envlist_add(&base, "PATH", "/usr/bin:/bin");
	struct envshare *share = envshare_new(&base);
	envlist_free(&base);

	struct flatten_opts fo = {.prefix = "HOOK_", .max_vars = 100, .max_bytes = 100000,
	                          .array_max = 100};
	const char *json = "{\"event\":\"a:b\",\"n\":1,\"s\":\"x\"}";
	struct envlist a, b;
	envlist_init(&a);
	envlist_share(&a, share);
	envlist_init(&b);
	envlist_share(&b, share);
	envshare_unref(share); /* the lists hold it now */
	CHECK(payload_flatten_text(json, strlen(json), &fo, &a, NULL), "flatten a");
	CHECK(payload_flatten_text(json, strlen(json), &fo, &b, NULL), "flatten b");
	char *t = env_text(&a);
	CHECK_STR(t, "USER=hooks\nPATH=/usr/bin:/bin\nHOOK_EVENT=a:b\nHOOK_N=1\nHOOK_S=x\n",
	          "shared start, then the payload");
	free(t);

	envlist_add(&a, "HOOK_N", "2");     /* a payload entry replaced */
	envlist_remove(&a, "HOOK_S");       /* and one removed */
	envlist_add(&a, "PATH", "/opt/bin"); /* a shared one replaced: a's own copy */
	envlist_remove(&a, "USER");
	t = env_text(&a);
	CHECK_STR(t, "PATH=/opt/bin\nHOOK_EVENT=a:b\nHOOK_N=2\n", "a changed");
	free(t);
	envlist_sort(&b);
	t = env_text(&b);
	CHECK_STR(t, "HOOK_EVENT=a:b\nHOOK_N=1\nHOOK_S=x\nPATH=/usr/bin:/bin\nUSER=hooks\n",
	          "b sorted, untouched by a");
	free(t);
	size_t bytes = 0;
	for (size_t i = 0; i < b.n; i++)
		bytes += strlen(b.v[i]) + 1;
	CHECK(b.bytes == bytes, "b's bytes %zu, counted %zu", b.bytes, bytes);
	envlist_free(&a);
	envlist_free(&b);
}

int main(void)
{
	test_event_names();
	test_content_types();
	test_parse_json();
	test_depth();
	test_form();
	test_get_path();
	test_normalize();
	test_flatten_table();
	test_flatten_budget();
	test_flatten_collisions();
	test_flatten_duplicates();
	test_flatten_limits();
	test_flatten_env();
	test_envlist();
	test_envlist_shared_and_block();
	test_sample();
	return check_done("payload");
}
