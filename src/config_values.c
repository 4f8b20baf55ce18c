/*
 * config_values: the setters of config.c's key tables, one a kind of value
 * (a duration, a size, a listen address, a header name, ...). Each parses
 * one value into its field or fails with the line's error (config_loader.h).
 */
#include "config_loader.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "payload.h"
#include "util.h"

void set_string(char **field, char *v)
{
	free(*field);
	*field = v;
}

bool set_duration(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	int64_t ms;
	if (!parse_duration_ms(v, &ms))
		return bad_value(L, k, v, "expected a duration such as 250ms, 30s, 5m, 1h, 30d");
	if (ms < k->min)
		return bad_value(L, k, v, k->min > 0 ? "must be more than 0" : "out of range");
	*FIELD(obj, k, int64_t) = ms;
	return true;
}

static void format_size(uint64_t n, char *buf, size_t len)
{
	if (n % (1024 * 1024 * 1024) == 0)
		snprintf(buf, len, "%lluGiB", (unsigned long long)(n >> 30));
	else if (n % (1024 * 1024) == 0)
		snprintf(buf, len, "%lluMiB", (unsigned long long)(n >> 20));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
}

bool set_size(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	uint64_t n;
	if (!parse_size(v, &n))
		return bad_value(L, k, v, "expected a size such as 512, 64KiB, 1MiB");
	if (n < (uint64_t)k->min)
		return bad_value(L, k, v, "must be more than 0");
	/* Bodies and heads are held in memory whole: a bound keeps a typo
	 * from becoming an unbounded buffer (or a size that overflows). */
	if (k->max > 0 && n > (uint64_t)k->max) {
		char want[64];
		format_size((uint64_t)k->max, want, sizeof(want));
		char msg[96];
		snprintf(msg, sizeof(msg), "must be at most %s", want);
		return bad_value(L, k, v, msg);
	}
	*FIELD(obj, k, uint64_t) = n;
	return true;
}

bool set_int(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	int n;
	if (!parse_int(v, (int)k->min, (int)k->max, &n)) {
		char want[96];
		if (k->max == INT_MAX)
			snprintf(want, sizeof(want), "expected a whole number, at least %lld",
			         (long long)k->min);
		else
			snprintf(want, sizeof(want), "expected a whole number from %lld to %lld",
			         (long long)k->min, (long long)k->max);
		return bad_value(L, k, v, want);
	}
	*FIELD(obj, k, int) = n;
	return true;
}

bool set_i64(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	uint64_t n;
	if (!parse_u64(v, &n) || n > (uint64_t)k->max || (int64_t)n < k->min) {
		char want[96];
		snprintf(want, sizeof(want), "expected a whole number, at least %lld", (long long)k->min);
		return bad_value(L, k, v, want);
	}
	*FIELD(obj, k, int64_t) = (int64_t)n;
	return true;
}

bool set_bool(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	bool b;
	if (!parse_bool(v, &b))
		return bad_value(L, k, v, "expected yes/no, true/false, on/off or 1/0");
	*FIELD(obj, k, bool) = b;
	return true;
}

/* A path that must be given: made absolute. */
bool set_path(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	set_string(FIELD(obj, k, char *), abs_path(L->c, v));
	return true;
}

/* A path that may be left empty: unset. */
bool set_optpath(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	set_string(FIELD(obj, k, char *), v[0] ? abs_path(L->c, v) : NULL);
	return true;
}

bool set_optstr(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	set_string(FIELD(obj, k, char *), v[0] ? xstrdup(v) : NULL);
	return true;
}

/* limit_nofile, limit_nproc: a count, empty for unset (-1). */
bool set_limit(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	uint64_t n;
	if (!v[0]) {
		*FIELD(obj, k, int64_t) = -1;
		return true;
	}
	if (!parse_u64(v, &n) || n > INT64_MAX)
		return bad_value(L, k, v, "expected a whole number, or nothing for no limit");
	*FIELD(obj, k, int64_t) = (int64_t)n;
	return true;
}

bool set_limit_size(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	uint64_t n;
	if (!v[0]) {
		*FIELD(obj, k, int64_t) = -1;
		return true;
	}
	if (!parse_size(v, &n) || n > INT64_MAX)
		return bad_value(L, k, v, "expected a size such as 512MiB, or nothing for no limit");
	*FIELD(obj, k, int64_t) = (int64_t)n;
	return true;
}

/* RLIMIT_CPU counts whole seconds; a finer value would be silently cut. */
bool set_limit_cpu(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	int64_t ms;
	if (!v[0]) {
		*FIELD(obj, k, int64_t) = -1;
		return true;
	}
	if (!parse_duration_ms(v, &ms))
		return bad_value(L, k, v, "expected whole seconds such as 30, 30s, 5m, or nothing");
	if (ms % MS_SECOND != 0)
		return bad_value(L, k, v, "must be whole seconds");
	*FIELD(obj, k, int64_t) = ms / MS_SECOND;
	return true;
}

/*
 * A listen address (netaddr.h's listen_addr_parse, which http_listen binds
 * with). A relative unix path is made absolute like every other path.
 */
static bool parse_listen(struct loader *L, const struct keydef *k, const char *v, char **out)
{
	struct listen_addr la;
	if (strncmp(v, "unix:", 5) == 0) {
		if (!v[5])
			return bad_value(L, k, v, "expected unix:/path");
		char *p = abs_path(L->c, v + 5);
		char *spec = xasprintf("unix:%s", p);
		free(p);
		if (listen_addr_parse(spec, &la) != LISTEN_OK) {
			free(spec);
			return bad_value(L, k, v, "unix socket path is too long");
		}
		*out = spec;
		return true;
	}
	const char *why = NULL;
	switch (listen_addr_parse(v, &la)) {
	case LISTEN_OK: break;
	case LISTEN_PATH_TOO_LONG: why = "unix socket path is too long"; break;
	case LISTEN_BAD_BRACKETS: why = "expected [v6addr]:port"; break;
	case LISTEN_BAD_IPV6: why = "not an IPv6 address in brackets"; break;
	case LISTEN_NO_COLON: why = "expected host:port, [v6addr]:port or unix:/path"; break;
	case LISTEN_NO_HOST: why = "the host is missing (0.0.0.0:PORT listens on all)"; break;
	case LISTEN_V6_NEEDS_BRACKETS: why = "an IPv6 address needs brackets: [::1]:9000"; break;
	case LISTEN_BAD_HOST:
		why = "the host must be an IPv4 address, localhost or * ([v6addr] for IPv6)";
		break;
	case LISTEN_BAD_PORT: why = "the port must be a number from 0 to 65535"; break;
	}
	if (why)
		return bad_value(L, k, v, why);
	*out = xstrdup(v);
	return true;
}

bool set_listen(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	char *s = NULL;
	if (!parse_listen(L, k, v, &s))
		return false;
	set_string(FIELD(obj, k, char *), s);
	return true;
}

/* [admin] listen: empty means off. */
bool set_optlisten(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0]) {
		set_string(FIELD(obj, k, char *), NULL);
		return true;
	}
	return set_listen(L, k, obj, v);
}

/* The prefix must make every variable a valid, unmistakable name. */
bool set_env_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	size_t n = strlen(v);
	if (n > ENV_PREFIX_MAX)
		return bad_value(L, k, v, "longer than 64 bytes");
	bool ok = n >= 2 && isupper((unsigned char)v[0]) && v[n - 1] == '_';
	for (size_t i = 1; ok && i < n; i++)
		ok = isupper((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '_';
	if (!ok)
		return bad_value(L, k, v, "must match ^[A-Z][A-Z0-9_]*_$, e.g. HOOK_");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* A space-separated list each word of which passes valid (what it must
 * be, for the message). empty_none: an empty list is NULL, not {NULL}. */
static bool set_words(struct loader *L, const struct keydef *k, void *obj, const char *v,
                      bool (*valid)(const char *), const char *what, bool empty_none)
{
	char **words = split_words(v, NULL);
	for (char **p = words; *p; p++) {
		if (!valid(*p)) {
			fail_at(L, L->lineno, "bad value '%s' for %s in [%s]: '%s' is not %s",
			        show(L, v), k->name, L->section, show(L, *p), what);
			free_words(words);
			return false;
		}
	}
	if (empty_none && !words[0]) {
		free_words(words);
		words = NULL;
	}
	char ***field = FIELD(obj, k, char **);
	free_words(*field);
	*field = words;
	return true;
}

bool set_pass_env(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	return set_words(L, k, obj, v, env_name_valid, "a variable name", false);
}

bool set_cidrs(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct cidr_list *field = FIELD(obj, k, struct cidr_list);
	struct cidr_list l = {0};
	char why[256] = "";
	/* Empty means no list (every address); netaddr is not asked. */
	if (v[0] && !cidr_list_parse(v, &l, why, sizeof(why))) {
		cidr_list_free(&l);
		return bad_value(L, k, v, why[0] ? why : "expected CIDR entries such as 10.0.0.0/8 ::1");
	}
	cidr_list_free(field);
	*field = l;
	return true;
}

bool set_log_format(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "logfmt") == 0)
		*FIELD(obj, k, int) = LOG_FORMAT_LOGFMT;
	else if (strcmp(v, "json") == 0)
		*FIELD(obj, k, int) = LOG_FORMAT_JSON;
	else
		return bad_value(L, k, v, "expected logfmt or json");
	return true;
}

bool set_url_path(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (v[0] != '/')
		return bad_value(L, k, v, "must start with '/'");
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
			return bad_value(L, k, v, "no spaces, control characters, '?' or '#'");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

bool set_scheme(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	const struct scheme *s = scheme_by_name(v);
	if (s) {
		*FIELD(obj, k, const struct scheme *) = s;
		return true;
	}
	/* "expected a, b or c": every scheme of the registry, in its order. */
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "expected ");
	for (size_t i = 0; (s = scheme_at(i)); i++) {
		if (i)
			sb_puts(&sb, scheme_at(i + 1) ? ", " : " or ");
		sb_puts(&sb, s->name);
	}
	bool r = bad_value(L, k, v, sb.buf);
	sb_free(&sb);
	return r;
}

bool set_algorithm(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "sha256") == 0)
		*FIELD(obj, k, enum hmac_alg) = HMAC_SHA256;
	else if (strcmp(v, "sha512") == 0)
		*FIELD(obj, k, enum hmac_alg) = HMAC_SHA512;
	else if (strcmp(v, "sha1") == 0)
		*FIELD(obj, k, enum hmac_alg) = HMAC_SHA1;
	else
		return bad_value(L, k, v, "expected sha256, sha512 or sha1");
	return true;
}

bool set_encoding(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "hex") == 0)
		*FIELD(obj, k, enum sig_encoding) = SIG_HEX;
	else if (strcmp(v, "base64") == 0)
		*FIELD(obj, k, enum sig_encoding) = SIG_BASE64;
	else
		return bad_value(L, k, v, "expected hex or base64");
	return true;
}

bool set_header(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!header_name_valid(v))
		return bad_value(L, k, v, "expected a header name");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* event_header, id_header: empty means not set. */
bool set_optheader(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0]) {
		set_string(FIELD(obj, k, char *), NULL);
		return true;
	}
	return set_header(L, k, obj, v);
}

void header_var_suffix(char *name)
{
	for (char *p = name; *p; p++) {
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
		else if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			*p = '_';
	}
}

/* pass_headers: header names, space-separated; empty: none. Whether one
 * carries a credential is checked once the section is complete. */
bool set_pass_headers(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	return set_words(L, k, obj, v, header_name_valid, "a header name", true);
}

bool set_dotted(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!payload_path_valid(v))
		return bad_value(L, k, v, "expected a dotted payload path such as data.build.id");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

bool set_mode(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "sync") == 0) {
		*FIELD(obj, k, enum delivery_mode) = MODE_SYNC;
	} else if (strcmp(v, "async") == 0) {
		*FIELD(obj, k, enum delivery_mode) = MODE_ASYNC;
		if (!L->async_line)
			L->async_line = L->lineno;
	} else {
		return bad_value(L, k, v, "expected sync or async");
	}
	return true;
}

/* respond_within: a duration, 0 for off; one above 0 needs the journal. */
bool set_respond_within(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!set_duration(L, k, obj, v))
		return false;
	if (*FIELD(obj, k, int64_t) > 0 && !L->respond_within_line)
		L->respond_within_line = L->lineno;
	return true;
}

/*
 * serialize: the section that gives it is its scope. An empty value
 * switches serializing off for this section (an [event] rule can so undo
 * its endpoint's).
 */
bool set_serialize(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct delivery_opts *o = (struct delivery_opts *)(void *)((char *)obj + L->def->opts_off);
	if (v[0] && !payload_path_valid(v))
		return bad_value(L, k, v, "expected a dotted payload path such as data.service.id");
	set_string(&o->serialize, v[0] ? xstrdup(v) : NULL);
	set_string(&o->serialize_scope, v[0] ? xstrdup(L->section) : NULL);
	return true;
}

/* match ([event] only): the terms are checked here, so that `hookd check`
 * and a reload refuse a bad path before any delivery meets it. */
bool set_match(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct delivery_opts *o = (struct delivery_opts *)(void *)((char *)obj + L->def->opts_off);
	struct match_rule r;
	char why[160];
	if (!match_parse(v, &r, why, sizeof(why)))
		return bad_value(L, k, v, why);
	o->match = xmalloc(sizeof(*o->match));
	*o->match = r;
	return true;
}

/* token_prefix: any text, empty for none (unlike set_optstr, empty is not unset). */
bool set_token_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	(void)L;
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* An endpoint's `event`: a name that passes README "Routing: hooks.d"'s rule. */
bool set_fixed_event(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!event_name_valid(v, strlen(v)))
		return bad_value(L, k, v, "expected an event name (letters, digits, . _ : -)");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/*
 * [server] journal: a libpq connection string, as a URL
 * (postgresql://user@host:port/db?opt=v) or as keyword=value words. A
 * password never goes in it: the config is readable by more than the
 * database's owner, and the string shows up in `hookd check` (README
 * "Running on several machines": journal_password_file or ~/.pgpass).
 */
static bool has_password(const char *v)
{
	const char *scheme_end = strstr(v, "://");
	if (scheme_end) {
		const char *auth = scheme_end + 3;
		size_t hostpart = strcspn(auth, "/?");
		const char *at = memchr(auth, '@', hostpart);
		if (at && memchr(auth, ':', (size_t)(at - auth)))
			return true;
	}
	/* keyword form, or a URL's ?password=... (libpq decodes %XX in a URL's
	 * parameter names too: looked for in a decoded copy) */
	char *plain = xstrdup(v);
	if (scheme_end) {
		char *o = plain;
		for (const char *c = v; *c; c++) {
			if (c[0] == '%' && isxdigit((unsigned char)c[1]) &&
			    isxdigit((unsigned char)c[2])) {
				char hex[3] = {c[1], c[2], 0};
				*o++ = (char)strtol(hex, NULL, 16);
				c += 2;
			} else {
				*o++ = *c;
			}
		}
		*o = 0;
	}
	bool found = false;
	for (const char *p = plain; *p && !found; p++) {
		if (strncasecmp(p, "password", 8) != 0)
			continue;
		bool starts = p == plain || isspace((unsigned char)p[-1]) || strchr("?&", p[-1]);
		const char *q = p + 8;
		while (isspace((unsigned char)*q))
			q++;
		found = starts && *q == '=';
	}
	free(plain);
	return found;
}

bool set_journal_url(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0]) {
		set_string(FIELD(obj, k, char *), NULL);
		return true;
	}
	bool url = strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0;
	if (!url && !strchr(v, '='))
		return bad_value(L, k, v,
		                 "expected a PostgreSQL connection string (postgresql://HOST/DB, "
		                 "or keyword=value words)");
	if (has_password(v))
		return fail_at(L, L->lineno,
		               "journal: the connection string holds a password; put it in "
		               "journal_password_file (or libpq's ~/.pgpass) instead");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* An instance name is logged, shown on the deliveries page and stored in
 * every row it holds: a short, plain word. */
#define INSTANCE_MAX 64
static bool instance_valid(const char *v)
{
	size_t n = strlen(v);
	return n > 0 && n <= INSTANCE_MAX &&
	       strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool set_instance(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!instance_valid(v))
		return bad_value(L, k, v, "expected 1 to 64 letters, digits, '.', '_' or '-'");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

char *default_instance(void)
{
	char host[256];
	if (gethostname(host, sizeof(host)) < 0)
		return xstrdup("hookd");
	host[sizeof(host) - 1] = 0;
	host[strcspn(host, ".")] = 0; /* the short name */
	return instance_valid(host) ? xstrdup(host) : xstrdup("hookd");
}
