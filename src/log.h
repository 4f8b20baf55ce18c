/*
 * Log lines on stderr: logfmt (default) or JSON, one line an event.
 * Under journald (JOURNAL_STREAM names stderr's device and inode) each
 * line starts with its syslog priority "<N>" so that `journalctl -p err`
 * finds failures.
 */
#ifndef HOOKD_LOG_H
#define HOOKD_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

struct log_kv {
	const char *key;
	const char *val; /* NULL: the pair is left out */
};

void log_setup(enum log_format format);
/* One line: ts=... level=... msg=<msg> then each pair in order. */
void log_kv(enum log_level level, const char *msg, const struct log_kv *kv, size_t n);
/* Convenience: msg is formatted; no extra pairs. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
