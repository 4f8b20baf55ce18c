#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void oom(void)
{
	fputs("hookd: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = NULL;
	int r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		oom();
	return p;
}

bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return false;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool parse_int(const char *s, int min, int max, int *out)
{
	bool neg = s && s[0] == '-';
	uint64_t v;
	if (!parse_u64(neg ? s + 1 : s, &v) || v > (uint64_t)INT32_MAX + (neg ? 1 : 0))
		return false;
	int64_t r = neg ? -(int64_t)v : (int64_t)v;
	if (r < min || r > max)
		return false;
	*out = (int)r;
	return true;
}

/* Splits "30s" into its number and its unit. */
static bool split_number(const char *s, uint64_t *num, const char **unit)
{
	size_t i = 0;
	while (isdigit((unsigned char)s[i]))
		i++;
	if (i == 0 || i > 18)
		return false;
	char digits[20];
	memcpy(digits, s, i);
	digits[i] = '\0';
	if (!parse_u64(digits, num))
		return false;
	*unit = s + i;
	return true;
}

bool parse_duration_ms(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	uint64_t n;
	const char *unit;
	if (!s || !split_number(s, &n, &unit))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			if (n > (uint64_t)INT64_MAX / units[i].ms)
				return false;
			*ms = (int64_t)(n * units[i].ms);
			return true;
		}
	}
	return false;
}

bool parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {
		{"", 1}, {"B", 1}, {"K", 1024}, {"KiB", 1024}, {"M", 1024 * 1024},
		{"MiB", 1024 * 1024}, {"G", 1024ull * 1024 * 1024}, {"GiB", 1024ull * 1024 * 1024},
	};
	uint64_t n;
	const char *unit;
	if (!s || !split_number(s, &n, &unit))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			if (n > UINT64_MAX / units[i].mul)
				return false;
			*bytes = n * units[i].mul;
			return true;
		}
	}
	return false;
}

bool parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};
	if (!s)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

void format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % 3600000 == 0 && ms > 0)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms > 0)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

void sb_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb_init(sb);
}

static void sb_grow(struct strbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

void sb_reserve(struct strbuf *sb, size_t n)
{
	sb_grow(sb, n);
	/* A buffer is a string at every step, even one nothing was put in. */
	sb->buf[sb->len] = '\0';
}

void sb_append(struct strbuf *sb, const char *s, size_t n)
{
	sb_grow(sb, n);
	if (n)
		memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void sb_putc(struct strbuf *sb, char c)
{
	if (sb->len + 2 > sb->cap)
		sb_grow(sb, 1);
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	/* Formatted once into the room there is (most output is short); a
	 * second time only when it did not fit. */
	sb_grow(sb, 63);
	va_list ap;
	va_start(ap, fmt);
	va_list ap2;
	va_copy(ap2, ap);
	size_t room = sb->cap - sb->len;
	int n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n >= room) {
		sb_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap2);
	}
	if (n > 0)
		sb->len += (size_t)n;
	sb->buf[sb->len] = '\0';
	va_end(ap2);
}

size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	size_t len;
	uint32_t v;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if (cp)
		*cp = v;
	return len;
}

void sb_json_str(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_grow(sb, n + 2);
	sb_putc(sb, '"');
	for (size_t i = 0; i < n; i++) {
		/* Runs that need no escape go in with one copy. */
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x7f &&
		       s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			sb_append(sb, s + i, run - i);
			i = run;
			if (i == n)
				break;
		}
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': sb_append(sb, "\\\"", 2); break;
		case '\\': sb_append(sb, "\\\\", 2); break;
		case '\n': sb_append(sb, "\\n", 2); break;
		case '\r': sb_append(sb, "\\r", 2); break;
		case '\t': sb_append(sb, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				sb_append(sb, esc, 6);
			} else {
				/* Text from hooks and headers may be any bytes; JSON is UTF-8. */
				size_t len = utf8_seq((const unsigned char *)s + i, n - i, NULL);
				if (len == 0) {
					sb_append(sb, "\xef\xbf\xbd", 3); /* U+FFFD for one bad byte */
				} else {
					sb_append(sb, s + i, len);
					i += len - 1;
				}
			}
		}
	}
	sb_putc(sb, '"');
}

void sb_json_str_or_null(struct strbuf *sb, const char *s)
{
	if (s)
		sb_json_str(sb, s, strlen(s));
	else
		sb_puts(sb, "null");
}

void sb_json_time(struct strbuf *sb, int64_t ms)
{
	if (ms <= 0) {
		sb_puts(sb, "null");
		return;
	}
	char t[40];
	format_rfc3339_ms(ms, t, sizeof(t));
	sb_printf(sb, "\"%s\"", t);
}

char *sb_steal(struct strbuf *sb)
{
	char *p = sb->buf ? sb->buf : xstrdup("");
	sb_init(sb);
	return p;
}

int64_t now_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void format_rfc3339_ms(int64_t wall_ms, char *buf, size_t len)
{
	/* Every log line and delivery asks for the time: the date and time
	 * of day are formatted once a second, the milliseconds each call. */
	static time_t last_secs = -1;
	static char base[32];
	time_t secs = (time_t)(wall_ms / 1000);
	int ms = (int)(wall_ms % 1000);
	if (wall_ms < 0) {
		secs--;
		ms += 1000;
	}
	if (secs != last_secs) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			base[0] = '\0';
		last_secs = secs;
	}
	size_t bl = strlen(base);
	if (len < bl + 6) {
		if (len)
			buf[0] = '\0'; /* callers pass >= 32 bytes */
		return;
	}
	memcpy(buf, base, bl);
	buf[bl] = '.';
	buf[bl + 1] = (char)('0' + ms / 100);
	buf[bl + 2] = (char)('0' + ms / 10 % 10);
	buf[bl + 3] = (char)('0' + ms % 10);
	buf[bl + 4] = 'Z';
	buf[bl + 5] = '\0';
}

static inline unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool error_may_pass(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN ||
	       err == ETXTBSY;
}

bool ascii_casecmp_eq(const char *a, const char *b)
{
	/* ASCII only, whatever the locale: header names are. */
	for (; *a && *b; a++, b++) {
		if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
			return false;
	}
	return *a == *b;
}

/* Made with its parents (0755), itself exactly 0700 (util.h). */
int state_dir_make(const char *dir, char *err, size_t errlen)
{
	char *p = xstrdup(dir);
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	int ret = 0;
	for (char *c = p + 1;; c++) {
		bool last = *c == '\0';
		if (!last && *c != '/')
			continue;
		*c = '\0';
		if (mkdir(p, last ? 0700 : 0755) == 0) {
			/* The umask must not loosen or tighten it: exactly 0700. */
			if (last && chmod(p, 0700) < 0) {
				snprintf(err, errlen, "state_dir %s: chmod: %s", p, strerror(errno));
				ret = -1;
				break;
			}
		} else if (errno != EEXIST) {
			snprintf(err, errlen, "state_dir %s: %s", p, strerror(errno));
			ret = -1;
			break;
		}
		if (last)
			break;
		*c = '/';
	}
	struct stat st;
	if (ret == 0 && (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))) {
		snprintf(err, errlen, "state_dir %s: not a directory", p);
		ret = -1;
	}
	free(p);
	return ret;
}
