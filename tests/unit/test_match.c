/* match: parsing [event] match terms, evaluating them on a payload, and
 * writing them back. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "match.h"
#include "util.h"

static void test_parse(void)
{
	static const struct {
		const char *in;
		const char *want; /* written back; NULL: refused */
		size_t n;
	} cases[] = {
		{"ref=refs/heads/main", "ref=refs/heads/main", 1},
		{"  ref=refs/heads/*   repository.name!=test-*  ", "ref=refs/heads/* repository.name!=test-*", 2},
		{"a.0.b=x", "a.0.b=x", 1},
		{"ref=", "ref=\"\"", 1},                       /* the empty value (null too) */
		{"ref=\"\"", "ref=\"\"", 1},
		{"msg=\"*skip ci*\"", "msg=\"*skip ci*\"", 1}, /* quotes hold a space */
		{"\"msg=*skip ci*\"", "msg=\"*skip ci*\"", 1}, /* around the whole term too */
		{"msg=\"say \\\"hi\\\"\"", "msg=\"say \\\"hi\\\"\"", 1},
		{"msg=a\\*b", "msg=a\\*b", 1},                 /* a glob's own escape stays */
		{"x=a=b", "x=a=b", 1},                         /* the first = splits */
		{"x!=!", "x!=!", 1},
		{"", NULL, 0},
		{"   ", NULL, 0},
		{"ref", NULL, 0},                              /* no = */
		{"=main", NULL, 0},                            /* no path */
		{"!=main", NULL, 0},
		{".ref=main", NULL, 0},
		{"a..b=main", NULL, 0},
		{"ref.=main", NULL, 0},
		{"ref=\"main", NULL, 0},                       /* unclosed quote */
		{"ok=1 bad", NULL, 0},                         /* one bad term refuses all */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct match_rule r;
		char err[160] = "";
		bool ok = match_parse(cases[i].in, &r, err, sizeof(err));
		CHECK(ok == (cases[i].want != NULL), "case %zu '%s': %s", i, cases[i].in, err);
		if (!ok) {
			CHECK(err[0] != '\0' && r.n == 0, "case %zu: a reason", i);
			continue;
		}
		CHECK(r.n == cases[i].n, "case %zu: %zu terms", i, r.n);
		struct strbuf sb;
		sb_init(&sb);
		match_format(&sb, &r);
		CHECK_STR(sb.buf, cases[i].want, "case %zu", i);
		/* What is written back reads back the same. */
		struct match_rule again;
		CHECK(match_parse(sb.buf, &again, err, sizeof(err)), "case %zu reread: %s", i, err);
		for (size_t t = 0; t < r.n && t < again.n; t++)
			CHECK(strcmp(r.v[t].glob, again.v[t].glob) == 0 &&
			              strcmp(r.v[t].path, again.v[t].path) == 0 &&
			              r.v[t].negate == again.v[t].negate,
			      "case %zu term %zu reread", i, t);
		match_free(&again);
		sb_free(&sb);
		match_free(&r);
	}
}

static void test_eval(void)
{
	const char *body = "{\"ref\":\"refs/heads/main\",\"repository\":{\"name\":\"api\","
	                   "\"private\":true,\"stars\":42},\"deleted\":null,"
	                   "\"commits\":[{\"message\":\"fix: [skip ci] typo\"}],\"obj\":{}}";
	json_object *root = json_tokener_parse(body);
	static const struct {
		const char *rule;
		long want; /* the first term not met, -1: all met */
	} cases[] = {
		{"ref=refs/heads/main", -1},
		{"ref=refs/heads/*", -1},               /* * crosses / */
		{"ref=*/main", -1},
		{"ref=refs/heads/dev", 0},
		{"ref!=refs/heads/dev", -1},
		{"ref!=refs/heads/m*", 0},
		{"ref=refs/heads/main repository.name=api", -1},
		{"ref=refs/heads/main repository.name=web", 1},
		{"repository.private=true", -1},        /* booleans as their JSON text */
		{"repository.stars=4?", -1},            /* numbers too */
		{"repository.stars=[0-9][0-9]", -1},
		{"deleted=", -1},                       /* null is "" */
		{"deleted!=?*", -1},
		{"missing=*", 0},                       /* missing: = fails ... */
		{"missing!=main", -1},                  /* ... and != holds */
		{"obj=*", 0},                           /* an object has no value */
		{"commits=*", 0},                       /* nor an array */
		{"commits.0.message=\"*skip ci*\"", -1},
		{"commits.0.message=\"*\\[skip ci\\]*\"", -1},
		{"commits.1.message=*", 0},
		{"REF=refs/heads/main", 0},             /* paths are case-sensitive */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct match_rule r;
		char err[160];
		if (!match_parse(cases[i].rule, &r, err, sizeof(err))) {
			CHECK(false, "case %zu '%s': %s", i, cases[i].rule, err);
			continue;
		}
		long got = match_eval(&r, root);
		CHECK(got == cases[i].want, "case %zu '%s': got %ld", i, cases[i].rule, got);
		/* No payload (a body that is not JSON): every path is missing. */
		long none = match_eval(&r, NULL);
		CHECK(none == (r.v[0].negate ? (r.n > 1 ? 1 : -1) : 0), "case %zu without a payload", i);
		match_free(&r);
	}
	json_object_put(root);
}

int main(void)
{
	test_parse();
	test_eval();
	return check_done("match");
}
