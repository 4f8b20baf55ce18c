#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "dynload.h"
#include "util.h"

static void test_durations(void)
{
	static const struct {
		const char *in;
		bool ok;
		int64_t ms;
	} cases[] = {
		{"250ms", true, 250},
		{"30s", true, 30000},
		{"5m", true, 300000},
		{"1h", true, 3600000},
		{"30d", true, 2592000000},
		{"30", true, 30000},
		{"0", true, 0},
		{"0ms", true, 0},
		{"", false, 0},
		{"s", false, 0},
		{"-1s", false, 0},
		{"+1s", false, 0},
		{"1.5s", false, 0},
		{"1 s", false, 0},
		{" 1s", false, 0},
		{"1S", false, 0},
		{"1sec", false, 0},
		{"1w", false, 0},
		{"99999999999999999999s", false, 0},
		{"9223372036854775807h", false, 0},
		{"0x10s", false, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t ms = -1;
		bool ok = parse_duration_ms(cases[i].in, &ms);
		CHECK(ok == cases[i].ok, "duration '%s'", cases[i].in);
		if (ok && cases[i].ok)
			CHECK(ms == cases[i].ms, "duration '%s' = %lld", cases[i].in, (long long)ms);
	}
	CHECK(!parse_duration_ms(NULL, &(int64_t){0}), "NULL duration");
}

static void test_sizes(void)
{
	static const struct {
		const char *in;
		bool ok;
		uint64_t bytes;
	} cases[] = {
		{"512", true, 512},
		{"512B", true, 512},
		{"64KiB", true, 65536},
		{"64K", true, 65536},
		{"1MiB", true, 1048576},
		{"1M", true, 1048576},
		{"2GiB", true, 2147483648ull},
		{"0", true, 0},
		{"", false, 0},
		{"KiB", false, 0},
		{"1KB", false, 0},
		{"1kib", false, 0},
		{"-1", false, 0},
		{"1.5MiB", false, 0},
		{"1 MiB", false, 0},
		{"999999999999999999", true, 999999999999999999ull},
		{"18446744073709551615", false, 0}, /* over 18 digits: refused */
		{"18446744073709551616", false, 0},
		{"99999999999999999999GiB", false, 0},
		{"17179869184GiB", false, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t b = 7;
		bool ok = parse_size(cases[i].in, &b);
		CHECK(ok == cases[i].ok, "size '%s'", cases[i].in);
		if (ok && cases[i].ok)
			CHECK(b == cases[i].bytes, "size '%s' = %llu", cases[i].in, (unsigned long long)b);
	}
}

static void test_bools_and_ints(void)
{
	static const struct {
		const char *in;
		bool ok, val;
	} bools[] = {
		{"yes", true, true},   {"no", true, false},  {"true", true, true},
		{"false", true, false}, {"on", true, true},   {"off", true, false},
		{"1", true, true},      {"0", true, false},   {"YES", false, false},
		{"", false, false},     {"y", false, false},  {"2", false, false},
		{"yes ", false, false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bools); i++) {
		bool v = !bools[i].val;
		bool ok = parse_bool(bools[i].in, &v);
		CHECK(ok == bools[i].ok, "bool '%s'", bools[i].in);
		if (ok)
			CHECK(v == bools[i].val, "bool '%s' value", bools[i].in);
	}
	static const struct {
		const char *in;
		int min, max;
		bool ok;
		int val;
	} ints[] = {
		{"0", 0, 10, true, 0},
		{"10", 0, 10, true, 10},
		{"11", 0, 10, false, 0},
		{"-1", -5, 5, true, -1},
		{"-6", -5, 5, false, 0},
		{"2147483647", 0, 2147483647, true, 2147483647},
		{"2147483648", 0, 2147483647, false, 0},
		{"-2147483648", -2147483647 - 1, 0, true, -2147483647 - 1},
		{"", 0, 10, false, 0},
		{"1a", 0, 10, false, 0},
		{" 1", 0, 10, false, 0},
		{"+1", 0, 10, false, 0},
		{"-", -5, 5, false, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
		int v = 12345;
		bool ok = parse_int(ints[i].in, ints[i].min, ints[i].max, &v);
		CHECK(ok == ints[i].ok, "int '%s'", ints[i].in);
		if (ok)
			CHECK(v == ints[i].val, "int '%s' = %d", ints[i].in, v);
	}
}

static void test_format_duration(void)
{
	static const struct {
		int64_t ms;
		const char *want;
	} cases[] = {
		{30000, "30s"}, {250, "250ms"}, {600000, "10m"}, {3600000, "1h"},
		{1500, "1500ms"}, {0, "0s"}, {90000, "90s"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char buf[32];
		format_duration(cases[i].ms, buf, sizeof(buf));
		CHECK_STR(buf, cases[i].want, "format_duration(%lld)", (long long)cases[i].ms);
	}
}

static void test_strbuf(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
		{"plain", 5, "\"plain\""},
		{"q\"b\\", 4, "\"q\\\"b\\\\\""},
		{"a\nb\tc\r", 6, "\"a\\nb\\tc\\r\""},
		{"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\""},
		{"nul\0x", 5, "\"nul\\u0000x\""},
		{"\xc3\xa9", 2, "\"\xc3\xa9\""},
		{"", 0, "\"\""},
		/* Not UTF-8: each bad byte becomes U+FFFD (EF BF BD). */
		{"a\xff" "b", 3, "\"a\xef\xbf\xbd" "b\""},
		{"\xfc-id", 4, "\"\xef\xbf\xbd-id\""},
		{"\xc3", 1, "\"\xef\xbf\xbd\""},               /* cut short at the end */
		{"\xc3(", 2, "\"\xef\xbf\xbd(\""},             /* bad continuation */
		{"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""}, /* overlong */
		{"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
		{"\xf4\x90\x80\x80", 4,
		 "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* past U+10FFFF */
		{"\xf0\x9f\x98\x80!", 5, "\"\xf0\x9f\x98\x80!\""}, /* 4 bytes, valid */
		{"\xe2\x82\xac\"", 4, "\"\xe2\x82\xac\\\"\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb;
		sb_init(&sb);
		sb_json_str(&sb, cases[i].in, cases[i].len);
		CHECK_STR(sb.buf, cases[i].want, "json string case %zu", i);
		sb_free(&sb);
	}
	struct strbuf sb;
	sb_init(&sb);
	for (int i = 0; i < 1000; i++)
		sb_printf(&sb, "%d,", i);
	CHECK(sb.len == strlen(sb.buf), "printf length");
	CHECK(strncmp(sb.buf, "0,1,2,", 6) == 0, "printf content");
	char *s = sb_steal(&sb);
	CHECK(sb.buf == NULL && sb.len == 0, "steal resets");
	free(s);
	s = sb_steal(&sb);
	CHECK_STR(s, "", "steal of an empty buffer");
	free(s);
	/* Room reserved, nothing put in: still a string (journal_headers_text
	 * of a request whose every header is filtered out). meson runs the
	 * test with MALLOC_PERTURB_, so new memory is not zero. */
	sb_reserve(&sb, 512);
	CHECK(sb.buf != NULL && sb.buf[0] == '\0', "a reserved buffer is an empty string");
	s = sb_steal(&sb);
	CHECK_STR(s, "", "steal of a reserved, empty buffer");
	free(s);
}

static void test_time(void)
{
	char buf[40];
	format_rfc3339_ms(1764189666123LL, buf, sizeof(buf));
	CHECK_STR(buf, "2025-11-26T20:41:06.123Z", "rfc3339");
	format_rfc3339_ms(0, buf, sizeof(buf));
	CHECK_STR(buf, "1970-01-01T00:00:00.000Z", "epoch");
	CHECK(ascii_casecmp_eq("Content-Type", "content-type"), "casecmp");
	CHECK(!ascii_casecmp_eq("Content-Type", "content-typ"), "casecmp length");
	CHECK(now_mono_ms() > 0, "monotonic clock");
	static const struct {
		unsigned char c;
		int v;
	} hex[] = {{'0', 0}, {'9', 9}, {'a', 10}, {'f', 15}, {'A', 10}, {'F', 15},
	           {'g', -1}, {'G', -1}, {'/', -1}, {':', -1}, {'@', -1}, {0, -1}, {0xff, -1}};
	for (size_t i = 0; i < ARRAY_SIZE(hex); i++)
		CHECK(hex_digit(hex[i].c) == hex[i].v, "hex_digit(0x%02x)", hex[i].c);
}

/* dynload: a library or a symbol that is missing is a clear error, and
 * no slot is touched then. */
static void test_dynload(void)
{
	size_t (*my_strlen)(const char *) = NULL;
	int (*nothing)(void) = NULL;
	char err[256] = "";
	struct dynsym ok[] = {{"strlen", &my_strlen}};
	CHECK(dynload("libc.so.6", ok, 1, err, sizeof(err)), "libc: %s", err);
	CHECK(my_strlen && my_strlen("abc") == 3, "strlen through the pointer");

	struct dynsym missing_sym[] = {{"strlen", &nothing}, {"hookd_no_such_symbol", &nothing}};
	CHECK(!dynload("libc.so.6", missing_sym, 2, err, sizeof(err)), "missing symbol");
	CHECK_STR(err, "cannot load libc.so.6: no hookd_no_such_symbol in it", "missing symbol");
	CHECK(nothing == NULL, "no slot set when one symbol is missing");

	CHECK(!dynload("libhookd-no-such-library.so.0", ok, 1, err, sizeof(err)), "missing lib");
	CHECK(strncmp(err, "cannot load libhookd-no-such-library.so.0: ", 43) == 0, "%s", err);
}

/* Which failures ask the sender to retry (503): hookd short of fds,
 * memory or processes, a file being written; never a missing, forbidden
 * or broken file. */
static void test_error_may_pass(void)
{
	static const struct {
		int err;
		bool want;
	} cases[] = {
		{EMFILE, true}, {ENFILE, true}, {ENOMEM, true}, {EAGAIN, true}, {ETXTBSY, true},
		{ENOENT, false}, {EACCES, false}, {ENOTDIR, false}, {ELOOP, false}, {ENOEXEC, false},
		{E2BIG, false}, {0, false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(error_may_pass(cases[i].err) == cases[i].want, "errno %d", cases[i].err);
}

static void test_utf8_seq(void)
{
	static const struct {
		const char *s;
		size_t n, want;
		uint32_t cp;
	} cases[] = {
		{"A", 1, 1, 0x41},
		{"\x7f", 1, 1, 0x7f},
		{"\xc2\x80", 2, 2, 0x80},
		{"\xdf\xbf", 2, 2, 0x7ff},
		{"\xe0\xa0\x80", 3, 3, 0x800},
		{"\xed\x9f\xbf", 3, 3, 0xd7ff},
		{"\xee\x80\x80", 3, 3, 0xe000},
		{"\xef\xbf\xbf", 3, 3, 0xffff},
		{"\xf0\x90\x80\x80", 4, 4, 0x10000},
		{"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
		{"\x80", 1, 0, 0},             /* a continuation byte alone */
		{"\xc0\x80", 2, 0, 0},         /* overlong NUL */
		{"\xc1\xbf", 2, 0, 0},         /* overlong */
		{"\xe0\x9f\xbf", 3, 0, 0},     /* overlong, 3 bytes */
		{"\xf0\x8f\xbf\xbf", 4, 0, 0}, /* overlong, 4 bytes */
		{"\xed\xa0\x80", 3, 0, 0},     /* U+D800 */
		{"\xed\xbf\xbf", 3, 0, 0},     /* U+DFFF */
		{"\xf4\x90\x80\x80", 4, 0, 0}, /* U+110000 */
		{"\xf5\x80\x80\x80", 4, 0, 0},
		{"\xff", 1, 0, 0},
		{"\xe2\x82", 2, 0, 0},         /* cut short by n */
		{"\xe2\x82(", 3, 0, 0},        /* bad continuation */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint32_t cp = 0;
		size_t got = utf8_seq((const unsigned char *)cases[i].s, cases[i].n, &cp);
		CHECK(got == cases[i].want, "utf8 case %zu: %zu", i, got);
		if (got)
			CHECK(cp == cases[i].cp, "utf8 case %zu: U+%04X", i, (unsigned)cp);
		CHECK(utf8_seq((const unsigned char *)cases[i].s, cases[i].n, NULL) == got,
		      "utf8 case %zu without cp", i);
	}
}

static void test_str_copy(void)
{
	static const struct {
		const char *src;
		size_t cap;
		const char *want;
	} cases[] = {
		{"", 8, ""}, {"abc", 8, "abc"}, {"abc", 4, "abc"}, {"abcd", 4, "abc"},
		{"abcdefgh", 2, "a"}, {"abc", 1, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dst[16];
		memset(dst, 'x', sizeof(dst));
		str_copy(dst, cases[i].cap, cases[i].src);
		CHECK_STR(dst, cases[i].want, "\"%s\" into %zu", cases[i].src, cases[i].cap);
		CHECK(dst[cases[i].cap] == 'x', "wrote past %zu", cases[i].cap);
	}
}

int main(void)
{
	test_utf8_seq();
	test_str_copy();
	test_error_may_pass();
	test_dynload();
	test_durations();
	test_sizes();
	test_bools_and_ints();
	test_format_duration();
	test_strbuf();
	test_time();
	return check_done("util");
}
