/*
 * log: how a line is written in logfmt and in JSON, and that a pair made
 * with LOG_INT or LOG_BOOL is a bare JSON number or boolean while logfmt
 * writes it as before, and that LOG_BYTES writes every byte it is given,
 * NUL too, escaped. Each case is one line against the text it must be.
 */
#include "check.h"

#include <json-c/json.h>
#include <stddef.h>

#include "log.h"
#include "util.h"

#define TS "2026-11-26T20:41:06.123Z"

struct line_case {
	const char *name;
	enum log_format format;
	enum log_level level;
	const char *msg;
	struct log_kv kv[4];
	size_t n;
	const char *want;
};

/* A hook's output with NUL bytes in it, an empty line, and one that is
 * plain but for a NUL at its end (LOG_BYTES). */
static const struct log_bytes nul_mid = {"a\0b", 3}, nul_empty = {"", 0},
                              nul_end = {"ab\0", 3}, plain = {"abc-and-more", 3};

static void check_lines(void)
{
	static const struct line_case cases[] = {
		{"logfmt bytes: NUL escaped, not the end", LOG_FORMAT_LOGFMT, LOG_LVL_INFO, "output",
		 {LOG_BYTES("line", &nul_mid), LOG_BYTES("e", &nul_empty), LOG_BYTES("z", &nul_end),
		  LOG_BYTES("p", &plain)}, 4,
		 "ts=" TS " level=info msg=output line=\"a\\u0000b\" e=\"\" z=\"ab\\u0000\" p=abc"},
		{"json bytes: NUL escaped, not the end", LOG_FORMAT_JSON, LOG_LVL_INFO, "output",
		 {LOG_BYTES("line", &nul_mid), LOG_BYTES("e", &nul_empty), LOG_BYTES("x", NULL)}, 3,
		 "{\"ts\":\"" TS "\",\"level\":\"info\",\"msg\":\"output\",\"line\":\"a\\u0000b\","
		 "\"e\":\"\"}"},
		{"logfmt strings", LOG_FORMAT_LOGFMT, LOG_LVL_INFO, "output",
		 {{"hook", "build"}, {"line", "a b \"c\""}}, 2,
		 "ts=" TS " level=info msg=output hook=build line=\"a b \\\"c\\\"\""},
		{"logfmt typed pairs look like strings", LOG_FORMAT_LOGFMT, LOG_LVL_WARN, "delivery",
		 {LOG_INT("http", "503"), LOG_BOOL("final", "true"), LOG_INT("ms", "-4")}, 3,
		 "ts=" TS " level=warn msg=delivery http=503 final=true ms=-4"},
		{"logfmt leaves NULL out", LOG_FORMAT_LOGFMT, LOG_LVL_ERROR, "x y",
		 {{"a", NULL}, LOG_INT("b", NULL), {"c", ""}}, 3,
		 "ts=" TS " level=error msg=\"x y\" c=\"\""},
		{"json strings", LOG_FORMAT_JSON, LOG_LVL_INFO, "output",
		 {{"hook", "build"}, {"http", "503"}}, 2,
		 "{\"ts\":\"" TS "\",\"level\":\"info\",\"msg\":\"output\",\"hook\":\"build\","
		 "\"http\":\"503\"}"},
		{"json numbers and booleans", LOG_FORMAT_JSON, LOG_LVL_WARN, "delivery",
		 {LOG_INT("http", "503"), LOG_INT("ms", "0"), LOG_BOOL("final", "true"),
		  LOG_BOOL("cut", "false")}, 4,
		 "{\"ts\":\"" TS "\",\"level\":\"warn\",\"msg\":\"delivery\",\"http\":503,\"ms\":0,"
		 "\"final\":true,\"cut\":false}"},
		{"json: what is not a number stays a string", LOG_FORMAT_JSON, LOG_LVL_DEBUG, "m",
		 {LOG_INT("a", "012"), LOG_INT("b", "1e3"), LOG_INT("c", ""), LOG_BOOL("d", "yes")}, 4,
		 "{\"ts\":\"" TS "\",\"level\":\"debug\",\"msg\":\"m\",\"a\":\"012\",\"b\":\"1e3\","
		 "\"c\":\"\",\"d\":\"yes\"}"},
		{"json leaves NULL out", LOG_FORMAT_JSON, LOG_LVL_INFO, "m",
		 {LOG_INT("a", NULL), {"b", "-"}}, 2,
		 "{\"ts\":\"" TS "\",\"level\":\"info\",\"msg\":\"m\",\"b\":\"-\"}"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct line_case *c = &cases[i];
		struct strbuf sb;
		sb_init(&sb);
		log_format_line(&sb, c->format, TS, c->level, c->msg, c->kv, c->n);
		CHECK_STR(sb.buf ? sb.buf : "", c->want, "%s", c->name);
		if (c->format == LOG_FORMAT_JSON) {
			json_object *o = json_tokener_parse(sb.buf);
			CHECK(o != NULL, "%s: not JSON", c->name);
			json_object_put(o);
		}
		sb_free(&sb);
	}
}

int main(void)
{
	check_lines();
	return check_done("log");
}
