#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static enum log_format log_format = LOG_FORMAT_LOGFMT;
static bool under_journald;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* syslog priorities: debug 7, info 6, warning 4, err 3 */
static const int level_prio[] = {7, 6, 4, 3};

/*
 * systemd sets JOURNAL_STREAM=<device>:<inode> of the stream it connected
 * to journald. It is ours only if stderr is still that stream: a unit that
 * redirects stderr elsewhere, or a child of such a service, must not get
 * "<N>" prefixes in a plain file.
 */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (!js)
		return false;
	const char *colon = strchr(js, ':');
	if (!colon)
		return false;
	char dev[32];
	size_t dl = (size_t)(colon - js);
	if (dl == 0 || dl >= sizeof(dev))
		return false;
	memcpy(dev, js, dl);
	dev[dl] = '\0';
	uint64_t d, ino;
	struct stat st;
	if (!parse_u64(dev, &d) || !parse_u64(colon + 1, &ino) || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (uint64_t)st.st_dev == d && (uint64_t)st.st_ino == ino;
}

void log_setup(enum log_format format)
{
	log_format = format;
	under_journald = stderr_is_journal();
}

/* logfmt: bare when the value is plain, else quoted with escapes. */
static void logfmt_value(struct strbuf *sb, const char *v, size_t len)
{
	size_t n = 0;
	for (; n < len; n++) {
		unsigned char c = (unsigned char)v[n];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			break;
	}
	if (n == len && n > 0)
		sb_append(sb, v, n);
	else
		sb_json_str(sb, v, len);
}

/* The key as written, without its type marker. */
static const char *key_name(const char *key)
{
	return key[0] == LOG_KV_INT_MARK || key[0] == LOG_KV_BOOL_MARK ||
	                       key[0] == LOG_KV_BYTES_MARK
	               ? key + 1
	               : key;
}

/* A pair's value and its length (LOG_BYTES: given, NUL bytes and all). */
static const char *kv_value(const struct log_kv *kv, size_t *len)
{
	if (kv->key[0] == LOG_KV_BYTES_MARK) {
		const struct log_bytes *b = (const struct log_bytes *)(const void *)kv->val;
		*len = b->n;
		return b->n ? b->p : "";
	}
	*len = strlen(kv->val);
	return kv->val;
}

/* Whether v is what JSON takes bare for its type: an integer in decimal
 * (no leading zeros, no '+'), or true/false. */
static bool json_bare(const char *v, char mark)
{
	if (mark == LOG_KV_BOOL_MARK)
		return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
	if (mark != LOG_KV_INT_MARK)
		return false;
	const char *p = v + (*v == '-');
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '\0'))
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

void log_format_line(struct strbuf *sb, enum log_format format, const char *ts,
                     enum log_level level, const char *msg, const struct log_kv *kv, size_t n)
{
	if (format == LOG_FORMAT_JSON) {
		sb_printf(sb, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
		sb_json_str(sb, msg, strlen(msg));
		for (size_t i = 0; i < n; i++) {
			if (!kv[i].val)
				continue;
			const char *key = key_name(kv[i].key);
			sb_putc(sb, ',');
			sb_json_str(sb, key, strlen(key));
			sb_putc(sb, ':');
			size_t len;
			const char *v = kv_value(&kv[i], &len);
			if (json_bare(v, kv[i].key[0]))
				sb_puts(sb, v);
			else
				sb_json_str(sb, v, len);
		}
		sb_putc(sb, '}');
		return;
	}
	/* Plain copies: a line is written for every request. */
	sb_puts(sb, "ts=");
	sb_puts(sb, ts);
	sb_puts(sb, " level=");
	sb_puts(sb, level_names[level]);
	sb_puts(sb, " msg=");
	logfmt_value(sb, msg, strlen(msg));
	for (size_t i = 0; i < n; i++) {
		if (!kv[i].val)
			continue;
		sb_putc(sb, ' ');
		sb_puts(sb, key_name(kv[i].key));
		sb_putc(sb, '=');
		size_t len;
		const char *v = kv_value(&kv[i], &len);
		logfmt_value(sb, v, len);
	}
}

void log_kv(enum log_level level, const char *msg, const struct log_kv *kv, size_t n)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 255); /* most lines fit */
	char ts[40];
	format_rfc3339_ms(now_wall_ms(), ts, sizeof(ts));
	if (under_journald)
		sb_printf(&sb, "<%d>", level_prio[level]);
	log_format_line(&sb, log_format, ts, level, msg, kv, n);
	sb_putc(&sb, '\n');
	/* One write a line, so lines from one process never interleave. */
	size_t off = 0;
	while (off < sb.len) {
		ssize_t w = write(STDERR_FILENO, sb.buf + off, sb.len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	sb_free(&sb);
}

#define LOG_ABOUT_MAX 24

void log_about(enum log_level level, const char *msg, const struct log_delivery *who,
               const struct log_kv *kv, size_t n)
{
	char attempt[24];
	snprintf(attempt, sizeof(attempt), "%d", who->attempt);
	struct log_kv all[LOG_ABOUT_MAX] = {
		{"endpoint", who->endpoint},
		{"event", who->event},
		{"id", who->id},
		LOG_INT("attempt", who->attempt > 1 ? attempt : NULL),
	};
	size_t keys = 4;
	if (n > LOG_ABOUT_MAX - keys)
		n = LOG_ABOUT_MAX - keys; /* a programming error: every caller has a few */
	if (n)
		memcpy(all + keys, kv, n * sizeof(*kv));
	log_kv(level, msg, all, keys + n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	log_kv(level, msg ? msg : fmt, NULL, 0);
	free(msg);
}

void log_limited(struct log_budget *b, int per_sec, const char *skipped_msg, enum log_level level,
                 const char *msg, const struct log_kv *kv, size_t n)
{
	int64_t second = now_mono_ms() / 1000;
	if (second != b->second) {
		if (b->skipped) {
			char c[24];
			snprintf(c, sizeof(c), "%ld", b->skipped);
			struct log_kv k[] = {LOG_INT("count", c)};
			log_kv(LOG_LVL_WARN, skipped_msg, k, ARRAY_SIZE(k));
		}
		b->second = second;
		b->logged = 0;
		b->skipped = 0;
	}
	if (b->logged >= per_sec) {
		b->skipped++;
		return;
	}
	b->logged++;
	log_kv(level, msg, kv, n);
}

const char *log_path_cut(char buf[LOG_PATH_MAX + 4], const char *path)
{
	snprintf(buf, LOG_PATH_MAX + 4, "%.*s%s", LOG_PATH_MAX, path,
	         strlen(path) > LOG_PATH_MAX ? "..." : "");
	return buf;
}
