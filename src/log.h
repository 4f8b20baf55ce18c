/*
 * Log lines on stderr: logfmt (default) or JSON, one line an event.
 * Under journald (JOURNAL_STREAM names stderr's device and inode) each
 * line starts with its syslog priority "<N>" so that `journalctl -p err`
 * finds failures.
 */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

/*
 * One pair; val NULL: the pair is left out. A value is a string unless the
 * pair is made with LOG_INT or LOG_BOOL: JSON logs then write it bare, as a
 * number or a boolean (logfmt writes every value the same way). The type
 * rides on the key (a marker byte the line never shows), so a pair written
 * {"key", val} stays a string and needs no change.
 */
struct log_kv {
	const char *key;
	const char *val;
};

#define LOG_KV_INT_MARK '\001'
#define LOG_KV_BOOL_MARK '\002'
/* key must be a string literal; val a decimal integer, or "true"/"false"
 * (anything else is written as a string: a JSON line stays valid). */
#define LOG_INT(key, val) {"\001" key, (val)}
#define LOG_BOOL(key, val) {"\002" key, (val)}
/* Bytes that may hold NUL (a hook's output): a string whose every control
 * byte, NUL too, is written escaped (\u0000), not cut at its first NUL.
 * val: a const struct log_bytes *, or NULL to leave the pair out. */
#define LOG_KV_BYTES_MARK '\003'
struct log_bytes {
	const char *p;
	size_t n;
};
#define LOG_BYTES(key, b) {"\003" key, (const char *)(b)}

void log_setup(enum log_format format);
/* The line log_kv writes, with ts as its timestamp, appended to sb without
 * the journald prefix and the newline (the unit tests check it). */
struct strbuf;
void log_format_line(struct strbuf *sb, enum log_format format, const char *ts,
                     enum log_level level, const char *msg, const struct log_kv *kv, size_t n);
/* One line: ts=... level=... msg=<msg> then each pair in order. */
void log_kv(enum log_level level, const char *msg, const struct log_kv *kv, size_t n);
/*
 * A line about one delivery: its keys first, the same on every such line
 * so that a search for id=ID finds them all (README "Logs and signals"):
 * endpoint, event (NULL: not known), id, and attempt from 2 on (0 or 1:
 * left out, as the first attempt is), then kv.
 */
struct log_delivery {
	const char *endpoint, *event, *id;
	int attempt;
};
void log_about(enum log_level level, const char *msg, const struct log_delivery *who,
               const struct log_kv *kv, size_t n);
/* Convenience: msg is formatted; no extra pairs. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Lines whose number a client decides (refusals of clients that never
 * authenticate): at most `per_sec` a second are logged, the rest counted
 * in one `skipped_msg` line (count=N) with the first line of a later
 * second. One budget (zeroed) for each kind of line.
 */
struct log_budget {
	int64_t second;
	int logged;
	long skipped;
};
void log_limited(struct log_budget *b, int per_sec, const char *skipped_msg, enum log_level level,
                 const char *msg, const struct log_kv *kv, size_t n);

/* A request path as a log value: cut to LOG_PATH_MAX bytes and "..." (a
 * client makes it as long as max_headers). Returns buf. */
#define LOG_PATH_MAX 128
const char *log_path_cut(char buf[LOG_PATH_MAX + 4], const char *path);

#endif
