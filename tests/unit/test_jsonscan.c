/*
 * jsonscan: the validator's verdicts (RFC 8259, an object at the top,
 * depth), and the fields it reports, checked against the tree json-c
 * builds for the same body.
 */
#include "check.h"

#include <stdlib.h>

#include "jsonscan.h"
#include "payload.h"
#include "util.h"

#define N(s) s, sizeof(s) - 1 /* a literal with its exact length, NULs included */

static void test_verdicts(void)
{
	static const struct {
		const char *body;
		size_t len;
		enum json_scan_result want;
	} cases[] = {
		{ N("{}"), JSON_SCAN_OK },
		{ N(" {\"a\" : [ ] , \"b\":{} }\r\n\t"), JSON_SCAN_OK },
		{ N("{\"a\":[1,-2,3.5,-0.0,1e3,1E+3,1e-3,0,true,false,null,\"s\",{},[]]}"),
		  JSON_SCAN_OK },
		{ N("{\"a\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"}"),
		  JSON_SCAN_OK },
		{ N("{\"a\":\"\\ud800\"}"), JSON_SCAN_OK }, /* a lone surrogate is grammatical */
		{ N("{\"\xc3\xa9\":\"\x7f\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}"),
		  JSON_SCAN_OK }, /* DEL and UTF-8 up to U+10FFFF as they are */
		/* RFC 8259 8.1: the text is UTF-8, in keys and values alike. */
		{ N("{\"a\":\"\xff\"}"), JSON_SCAN_BAD_UTF8 },
		{ N("{\"\xff\":1}"), JSON_SCAN_BAD_UTF8 },
		{ N("{\"a\":\"\xc3\"}"), JSON_SCAN_BAD_UTF8 },          /* cut short by the quote */
		{ N("{\"a\":\"\xc3"), JSON_SCAN_BAD_UTF8 },              /* cut short by the end */
		{ N("{\"a\":\"\xc0\xaf\"}"), JSON_SCAN_BAD_UTF8 },      /* overlong '/' */
		{ N("{\"a\":\"\xe0\x80\xaf\"}"), JSON_SCAN_BAD_UTF8 },  /* overlong, 3 bytes */
		{ N("{\"a\":\"\xed\xa0\x80\"}"), JSON_SCAN_BAD_UTF8 },  /* a surrogate, encoded */
		{ N("{\"a\":\"\xf4\x90\x80\x80\"}"), JSON_SCAN_BAD_UTF8 }, /* past U+10FFFF */
		{ N("{\"a\":\"\x80\"}"), JSON_SCAN_BAD_UTF8 },          /* a lone continuation */
		{ N("{\"a\":\"\xc3\xa9\xa9\"}"), JSON_SCAN_BAD_UTF8 },  /* one continuation too many */
		{ N("[1]"), JSON_SCAN_NOT_OBJECT },
		{ N("\"s\""), JSON_SCAN_NOT_OBJECT },
		{ N("1"), JSON_SCAN_NOT_OBJECT },
		{ N(" null "), JSON_SCAN_NOT_OBJECT },
		{ N(""), JSON_SCAN_EMPTY },
		{ N(" \n"), JSON_SCAN_INVALID },
		{ N("{"), JSON_SCAN_INVALID },
		{ N("}"), JSON_SCAN_INVALID },
		{ N("{\"a\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":}"), JSON_SCAN_INVALID },
		{ N("{\"a\" 1}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1,}"), JSON_SCAN_INVALID },
		{ N("{,}"), JSON_SCAN_INVALID },
		{ N("{\"a\":[1,]}"), JSON_SCAN_INVALID },
		{ N("{\"a\":[,1]}"), JSON_SCAN_INVALID },
		{ N("{\"a\":[1 2]}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1]"), JSON_SCAN_INVALID },
		{ N("{\"a\":[1}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1}}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1}{}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1} x"), JSON_SCAN_INVALID },
		{ N("{\"a\":1}\0"), JSON_SCAN_INVALID },
		{ N("\xef\xbb\xbf{}"), JSON_SCAN_INVALID }, /* a BOM */
		{ N("\f{}"), JSON_SCAN_INVALID },
		{ N("{}\v"), JSON_SCAN_INVALID },
		/* What json-c's strict mode still takes, and no JSON encoder writes. */
		{ N("{'a':1}"), JSON_SCAN_INVALID },
		{ N("{\"a\":'b'}"), JSON_SCAN_INVALID },
		{ N("{\"a\":NaN}"), JSON_SCAN_INVALID },
		{ N("{\"a\":Infinity}"), JSON_SCAN_INVALID },
		{ N("{\"a\":-Infinity}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1.}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"x\ty\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"x\ny\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"x\0y\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\x01\":1}"), JSON_SCAN_INVALID },
		/* Numbers. */
		{ N("{\"a\":01}"), JSON_SCAN_INVALID },
		{ N("{\"a\":-01}"), JSON_SCAN_INVALID },
		{ N("{\"a\":00}"), JSON_SCAN_INVALID },
		{ N("{\"a\":.5}"), JSON_SCAN_INVALID },
		{ N("{\"a\":+1}"), JSON_SCAN_INVALID },
		{ N("{\"a\":-}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1e}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1e+}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1.e5}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1e5.5}"), JSON_SCAN_INVALID },
		{ N("{\"a\":0x10}"), JSON_SCAN_INVALID },
		{ N("{\"a\":1-2}"), JSON_SCAN_INVALID },
		{ N("{\"a\":--1}"), JSON_SCAN_INVALID },
		{ N("{\"a\":-"), JSON_SCAN_INVALID },
		{ N("{\"a\":1"), JSON_SCAN_INVALID },
		/* Literals and escapes. */
		{ N("{\"a\":tru}"), JSON_SCAN_INVALID },
		{ N("{\"a\":True}"), JSON_SCAN_INVALID },
		{ N("{\"a\":nul}"), JSON_SCAN_INVALID },
		{ N("{\"a\":nulll}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"\\x\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"\\u12\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"\\u12g4\"}"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"\\"), JSON_SCAN_INVALID },
		{ N("{\"a\":\"abc"), JSON_SCAN_INVALID },
		{ N("{\"a\":1 /* c */}"), JSON_SCAN_INVALID },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum json_scan_result r = json_scan(cases[i].body, cases[i].len, NULL);
		CHECK(r == cases[i].want, "case %zu: got %d, want %d", i, (int)r, (int)cases[i].want);
	}
	CHECK_STR(json_scan_error(JSON_SCAN_INVALID), "body is not valid JSON", "message");
	CHECK_STR(json_scan_error(JSON_SCAN_NOT_OBJECT), "body is not a JSON object", "message");
	CHECK_STR(json_scan_error(JSON_SCAN_BAD_UTF8), "body is not valid JSON: a string is not UTF-8",
	          "message");
	CHECK_STR(json_scan_error(JSON_SCAN_EMPTY), "body is empty", "message");
	CHECK(json_scan_error(JSON_SCAN_OK) == NULL, "no message for OK");
}

/* A root object holding `containers` - 1 more levels: objects
 * {"a":{"a":{}}} or arrays {"a":[[]]}. */
static char *nest(size_t containers, bool arrays)
{
	char *s = xmalloc(containers * 6 + 8);
	size_t o = 0;
	s[o++] = '{';
	for (size_t i = 1; i < containers; i++) {
		if (arrays && i > 1) {
			s[o++] = '[';
		} else {
			memcpy(s + o, arrays ? "\"a\":[" : "\"a\":{", 5);
			o += 5;
		}
	}
	for (size_t i = 1; i < containers; i++)
		s[o++] = arrays ? ']' : '}';
	s[o++] = '}';
	s[o] = '\0';
	return s;
}

static void test_depth(void)
{
	for (int arrays = 0; arrays < 2; arrays++) {
		char *ok = nest(1000, arrays), *deep = nest(1001, arrays);
		CHECK(json_scan(ok, strlen(ok), NULL) == JSON_SCAN_OK, "1000 levels, arrays %d",
		      arrays);
		CHECK(json_scan(deep, strlen(deep), NULL) == JSON_SCAN_TOO_DEEP,
		      "1001 levels, arrays %d", arrays);
		free(ok);
		free(deep);
	}
	/* Deep but never closed: the depth is what is said first. */
	char open[1100];
	memset(open, '[', sizeof(open));
	CHECK(json_scan(open, sizeof(open), NULL) == JSON_SCAN_TOO_DEEP, "unclosed");
	/* Invalid before it is deep: invalid. */
	CHECK(json_scan(N("[x[[[["), NULL) == JSON_SCAN_INVALID, "invalid first");
}

static void test_big_numbers(void)
{
	static const struct {
		const char *body;
		size_t want;
	} cases[] = {
		{ "{\"a\":1}", 0 },
		{ "{\"a\":-0}", 1 },
		{ "{\"a\":-0.0}", 0 },
		{ "{\"a\":0}", 0 },
		{ "{\"a\":18446744073709551615}", 0 },
		{ "{\"a\":18446744073709551616}", 1 },
		{ "{\"a\":-9223372036854775808}", 0 },
		{ "{\"a\":-9223372036854775809}", 1 },
		{ "{\"a\":[123456789012345678901234,1e400,-0],\"-0\":\"-0\"}", 2 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct json_scan s = {0};
		CHECK(json_scan(cases[i].body, strlen(cases[i].body), &s) == JSON_SCAN_OK, "case %zu",
		      i);
		CHECK(s.big_numbers == cases[i].want, "case %zu: %zu big numbers", i, s.big_numbers);
	}
}

/* What the scan says of path, in payload_get_string's words: "!" when
 * absent, "~" when present but not a string, else the string. */
static char *scanned(const char *body, const char *path, bool *need_tree)
{
	struct json_scan_field f = { .path = path };
	struct json_scan s = { .fields = &f, .nfields = 1 };
	if (json_scan(body, strlen(body), &s) != JSON_SCAN_OK)
		return xstrdup("invalid");
	*need_tree = s.need_tree;
	if (!f.found)
		return xstrdup("!");
	if (f.type != json_type_string)
		return xstrdup("~");
	return xstrndup(body + f.off, f.len);
}

static char *from_tree(const char *body, const char *path)
{
	json_object *root = payload_parse_json(body, strlen(body), NULL, 0);
	bool found = false;
	const char *v = payload_get_string(root, path, &found);
	char *r = xstrdup(!found ? "!" : v ? v : "~");
	json_object_put(root);
	return r;
}

static void test_fields(void)
{
	static const struct {
		const char *body, *path, *want;
		bool need_tree;
	} cases[] = {
		{ "{\"event\":\"build:start\"}", "event", "build:start", false },
		{ "{\"a\":1,\"event\":\"x\",\"b\":{\"event\":\"y\"}}", "event", "x", false },
		{ "{\"b\":{\"event\":\"y\"}}", "event", "!", false },
		{ "{\"event\":1}", "event", "~", false },
		{ "{\"event\":null}", "event", "~", false },
		{ "{\"event\":{}}", "event", "~", false },
		{ "{\"event\":[\"x\"]}", "event", "~", false },
		{ "{}", "event", "!", false },
		/* Duplicates: the last wins, and replaces what the first led to. */
		{ "{\"event\":\"a\",\"event\":\"b\"}", "event", "b", false },
		{ "{\"event\":\"a\",\"event\":2}", "event", "~", false },
		{ "{\"o\":{\"a\":\"x\"},\"o\":{\"b\":1}}", "o.a", "!", false },
		{ "{\"o\":{\"a\":\"x\"},\"o\":5}", "o.a", "!", false },
		{ "{\"o\":5,\"o\":{\"a\":\"x\"}}", "o.a", "x", false },
		{ "{\"o\":{\"a\":\"x\",\"a\":\"y\"}}", "o.a", "y", false },
		/* Nested paths. */
		{ "{\"object_attributes\":{\"action\":\"open\"}}", "object_attributes.action", "open",
		  false },
		{ "{\"event\":{\"type\":\"message\"},\"type\":\"event_callback\"}", "event.type",
		  "message", false },
		{ "{\"event\":{\"type\":{\"type\":\"x\"}}}", "event.type", "~", false },
		{ "{\"a\":{\"b\":{\"c\":\"deep\"}}}", "a.b.c", "deep", false },
		{ "{\"a\":[{\"b\":\"x\"}]}", "a.b", "!", false },
		{ "{\"a\":\"s\"}", "a.b", "!", false },
		{ "{\"a\":{\"b\":\"x\"}}", "a..b", "!", false },
		{ "{\"a\":{\"b\":\"x\"}}", "", "!", false },
		{ "{\"a.b\":\"x\"}", "a.b", "!", false },
		/* What only the tree can say exactly. */
		{ "{\"event\":\"build\\u003astart\"}", "event", "build\\u003astart", true },
		{ "{\"ev\\u0065nt\":\"x\"}", "event", "!", true },
		{ "{\"items\":[\"x\"]}", "items.0", "!", true },
		{ "{\"a\":{\"b\\n\":1},\"event\":\"x\"}", "event", "x", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool need_tree = false;
		char *got = scanned(cases[i].body, cases[i].path, &need_tree);
		CHECK_STR(got, cases[i].want, "case %zu", i);
		CHECK(need_tree == cases[i].need_tree, "case %zu: need_tree %d", i, need_tree);
		/* Where the scan answers, it answers as the tree does. */
		if (!need_tree) {
			char *tree = from_tree(cases[i].body, cases[i].path);
			CHECK_STR(got, tree, "case %zu: scan and tree", i);
			free(tree);
		}
		free(got);
	}

	/* Several fields in one pass, each on its own. */
	struct json_scan_field f[] = {
		{ .path = "type" }, { .path = "event.type" }, { .path = "event_id" },
		{ .path = "challenge" },
	};
	struct json_scan s = { .fields = f, .nfields = ARRAY_SIZE(f) };
	const char *body = "{\"type\":\"event_callback\",\"event\":{\"type\":\"app_mention\"},"
	                   "\"event_id\":\"Ev1\"}";
	CHECK(json_scan(body, strlen(body), &s) == JSON_SCAN_OK, "several");
	CHECK(f[0].found && f[0].len == 14 && memcmp(body + f[0].off, "event_callback", 14) == 0,
	      "type");
	CHECK(f[1].found && f[1].len == 11 && memcmp(body + f[1].off, "app_mention", 11) == 0,
	      "event.type");
	CHECK(f[2].found && f[2].len == 3, "event_id");
	CHECK(!f[3].found, "challenge");
	CHECK(!s.need_tree, "need_tree");
}

/* The sample payload of the senders' documentation. */
static void test_sample(void)
{
	const char *dir = getenv("HOOKD_TEST_DATA");
	char *path = xasprintf("%s/northflank-build-start.json", dir ? dir : "../data");
	FILE *fp = fopen(path, "rb");
	CHECK(fp != NULL, "open %s", path);
	if (!fp) {
		free(path);
		return;
	}
	char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	struct json_scan_field f[] = { { .path = "event" }, { .path = "data.build.sha" } };
	struct json_scan s = { .fields = f, .nfields = 2 };
	CHECK(json_scan(buf, n, &s) == JSON_SCAN_OK, "sample");
	CHECK(f[0].found && f[0].len == 11 && memcmp(buf + f[0].off, "build:start", 11) == 0,
	      "event");
	CHECK(f[1].found && f[1].len == 40, "sha");
	free(path);
}

int main(void)
{
	test_verdicts();
	test_depth();
	test_big_numbers();
	test_fields();
	test_sample();
	return check_done("jsonscan");
}
