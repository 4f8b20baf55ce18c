/*
 * Small helpers shared by every module: allocation that cannot return NULL,
 * strict number parsing, and a growable string buffer.
 */
#ifndef HOOKD_UTIL_H
#define HOOKD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Out of memory is not a condition a webhook daemon can serve through. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* src into dst (cap > 0 bytes), cut to fit, always terminated: snprintf's
 * "%s" without its format parsing, for copies on every request's path. */
void str_copy(char *dst, size_t cap, const char *src);

/* Whole-string decimal parse; false on empty, junk, sign or overflow. */
bool parse_u64(const char *s, uint64_t *out);
bool parse_int(const char *s, int min, int max, int *out);

/* "250ms", "30s", "5m", "1h", "30d"; a bare number is seconds. */
bool parse_duration_ms(const char *s, int64_t *ms);
/* "512", "512B", "64KiB" (or "64K"), "1MiB" ("1M"), "1GiB" ("1G"): binary units only. */
bool parse_size(const char *s, uint64_t *bytes);
/* yes/no, true/false, on/off, 1/0. */
bool parse_bool(const char *s, bool *out);
/* Formats a duration the way the config accepts it: "30s", "250ms", "10m". */
void format_duration(int64_t ms, char *buf, size_t len);

/* A growable byte buffer, always NUL-terminated. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
};
void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
/* Makes room for n more bytes now: one allocation for a string whose
 * size is known roughly, rather than a few as it grows. */
void sb_reserve(struct strbuf *sb, size_t n);
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Length (1..4) of the valid UTF-8 sequence at s (n >= 1 bytes left), 0
 * if it is not one: overlong forms, surrogates, past U+10FFFF, cut short.
 * *cp (when cp is not NULL) gets the code point. */
size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp);
/* Appends s[0..n) as a JSON string, quotes included; a byte that is not part of
 * valid UTF-8 becomes U+FFFD, so the text is always valid JSON. */
void sb_json_str(struct strbuf *sb, const char *s, size_t n);
/* s as a JSON string (sb_json_str), or null when s is NULL. */
void sb_json_str_or_null(struct strbuf *sb, const char *s);
/* A wall-clock time as an RFC 3339 JSON string (format_rfc3339_ms); ms <= 0 (none) is null. */
void sb_json_time(struct strbuf *sb, int64_t ms);
char *sb_steal(struct strbuf *sb);

/* Monotonic and wall clocks in milliseconds. */
int64_t now_mono_ms(void);
int64_t now_wall_ms(void);
/* RFC 3339 UTC with milliseconds: 2026-11-26T20:41:06.123Z (buf >= 32). */
void format_rfc3339_ms(int64_t wall_ms, char *buf, size_t len);

/* FNV-1a of a string, for the in-memory hash tables: short keys, and no
 * collisions an adversary chooses worth the name (a sender picks few
 * addresses; ids and keys are spread over buckets only to shorten scans). */
uint32_t str_hash(const char *s);

/* The value of a hex digit (either case), or -1. */
int hex_digit(unsigned char c);

/* Case-insensitive ASCII compare, for header names. */
bool ascii_casecmp_eq(const char *a, const char *b);

/* Whether a call that failed with err may work when tried again: hookd (or
 * the machine) was short of fds, memory or processes, or a file was being
 * written. Such a failure asks the sender to retry (503). */
bool error_may_pass(int err);

/* state_dir: made when missing (its parents too), exactly 0700 (README
 * "Delivery guarantees"); 0, or -1 with the reason in err. */
int state_dir_make(const char *dir, char *err, size_t errlen);

#endif
