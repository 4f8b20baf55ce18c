/*
 * config: the INI file -> struct config, every value validated at load.
 *
 * inih splits "key = value" lines and strips inline comments; everything
 * else is done here. We read the whole file ourselves and hand inih one
 * line at a time through ini_parse_stream() with our own reader, because
 * the stock parser has traits that would make errors wrong or silent:
 *
 *  - The line number reaches the handler only when the library was built
 *    with INI_HANDLER_LINENO, which the installed header cannot tell us
 *    (Debian's build has it, its header says 0). Our reader counts lines,
 *    and inih calls the handler for a line before asking for the next, so
 *    the count is exact whatever the build.
 *  - An indented line after a key is a continuation of that key's value
 *    (INI_ALLOW_MULTILINE), which would turn an indented key into a bogus
 *    "given twice". The reader strips indentation, so every line stands
 *    alone.
 *  - Section names are cut at 49 bytes, too short for [event NAME] with a
 *    128-byte event name. The reader parses section headers itself and
 *    hands inih a blank line instead.
 *  - A line longer than the library's buffer (INI_MAX_LINE, 200) is split
 *    into two lines silently. The reader reports it instead.
 *
 * Errors are one line, "FILE:LINE: message", the first one found. Values
 * are quoted in messages, secrets never.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "log.h"
#include "netaddr.h"
#include "payload.h"
#include "secrecy.h"
#include "util.h"

/* A config file is a few KiB; this only stops /dev/zero and mistakes. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define SECRET_FILE_MAX_BYTES (64 * 1024)
/* A secret shorter than this is a warning: 128 bits are what a guess at
 * an HMAC key or a token should have to find. */
#define SECRET_MIN_ADVISED 16
#define NAME_MAX_LEN 128
#define MAX_EXIT 255

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

#define WS " \t\r\n\v\f"

enum section_kind { SECT_NONE, SECT_SERVER, SECT_ENDPOINT, SECT_STATUS, SECT_EVENT, SECT_ADMIN };

struct loader;
struct keydef;
typedef bool (*setter_fn)(struct loader *L, const struct keydef *k, void *obj, const char *v);

/*
 * One key of a section: how to parse it and where it goes. `off` is the
 * field's offset in the section's object (struct config, endpoint or
 * event_rule); `min`/`max` bound numbers; `opt` is the delivery_opts bit
 * the key sets; `by_scheme` marks an endpoint key that only the schemes
 * listing it in their entry's `keys` take.
 */
struct keydef {
	const char *name;
	setter_fn set;
	size_t off;
	int64_t min, max;
	unsigned opt;
	bool by_scheme;
};

struct section_def {
	const char *name;
	enum section_kind kind;
	bool named;
	const struct keydef *keys;
	size_t nkeys;
	size_t opts_off; /* where the section's struct delivery_opts is */
};

/* Which keys a section has seen, over all of its appearances. */
struct seen_key {
	char *section;
	char *key;
	int line;
};

struct loader {
	struct config *c;
	char *text;
	size_t len, pos;
	int lineno;

	const struct section_def *def; /* NULL before the first header */
	char *section;                 /* "server", "endpoint NAME", ... */
	size_t idx;                    /* endpoint or event index */

	struct seen_key *seen;
	size_t nseen;
	int status_http[MAX_EXIT + 1];
	int status_line[MAX_EXIT + 1]; /* 0: not given in the file */
	int async_line;                /* first `mode = async` */
	int respond_within_line;       /* first `respond_within` above 0 */

	bool failed;
	int err_line; /* 0: the error has no line */
	char msg[512];
	char shown[2][96];
	int shown_next;
};

/* ---- errors ---- */

static bool fail_at(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool fail_at(struct loader *L, int line, const char *fmt, ...)
{
	if (L->failed)
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(L->msg, sizeof(L->msg), fmt, ap);
	va_end(ap);
	L->failed = true;
	L->err_line = line;
	return false;
}

/*
 * A value as an error message may quote it: control bytes become '?' so
 * the message stays one line, and a long value is cut. Two buffers in
 * turn, so one message can quote two values.
 */
static const char *show(struct loader *L, const char *v)
{
	char *out = L->shown[L->shown_next];
	L->shown_next = (L->shown_next + 1) % 2;
	size_t max = sizeof(L->shown[0]) - 4, i;
	for (i = 0; v[i] && i < max; i++) {
		unsigned char ch = (unsigned char)v[i];
		out[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (v[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Adds a warning, "FILE:LINE: message", to the config. */
static void warn_at(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void warn_at(struct loader *L, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct config *c = L->c;
	c->warnings = xrealloc(c->warnings, (c->nwarnings + 1) * sizeof(*c->warnings));
	c->warnings[c->nwarnings++] = line > 0 ? xasprintf("%s:%d: %s", c->path, line, msg)
	                                       : xasprintf("%s: %s", c->path, msg);
}

static bool bad_value(struct loader *L, const struct keydef *k, const char *v, const char *want)
{
	return fail_at(L, L->lineno, "bad value '%s' for %s in [%s]: %s", show(L, v), k->name,
	               L->section, want);
}

/* ---- small helpers ---- */

static bool is_ws(char ch)
{
	return ch && strchr(WS, ch) != NULL;
}

/* Endpoint and event names: ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$. */
static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!isalnum(ch) && !strchr("_.:-", ch))
			return false;
	}
	return true;
}

/* An environment variable name: ^[A-Za-z_][A-Za-z0-9_]*$. */
static bool env_name_valid(const char *s)
{
	if (!s[0] || isdigit((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

/* An HTTP header name: RFC 9110 token characters. */
static bool header_name_valid(const char *s)
{
	if (!s[0])
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return false;
	return true;
}

/* Splits on whitespace into a NULL-terminated array; *n gets the count. */
static char **split_words(const char *s, size_t *n)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t count = 0;
	for (;;) {
		s += strspn(s, WS);
		if (!*s)
			break;
		size_t len = strcspn(s, WS);
		v = xrealloc(v, (count + 2) * sizeof(*v));
		v[count++] = xstrndup(s, len);
		v[count] = NULL;
		s += len;
	}
	if (n)
		*n = count;
	return v;
}

static void free_words(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Relative paths are relative to the config file's directory. */
static char *abs_path(const struct config *c, const char *p)
{
	if (p[0] == '/')
		return xstrdup(p);
	while (p[0] == '.' && p[1] == '/')
		p += 2 + strspn(p + 2, "/");
	if (strcmp(p, ".") == 0 || !p[0])
		return xstrdup(c->dir);
	size_t dl = strlen(c->dir);
	return xasprintf("%s%s%s", c->dir, (dl && c->dir[dl - 1] == '/') ? "" : "/", p);
}

/*
 * The bytes of a file, NUL-terminated; NULL with errno set. A file over
 * `max` fails with EFBIG.
 */
static char *read_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	struct strbuf sb;
	sb_init(&sb);
	sb_append(&sb, "", 0);
	char buf[4096];
	int err = 0;
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		if (r == 0)
			break;
		if (sb.len + (size_t)r > max) {
			err = EFBIG;
			break;
		}
		sb_append(&sb, buf, (size_t)r);
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	if (err) {
		OPENSSL_cleanse(sb.buf, sb.len);
		sb_free(&sb);
		errno = err;
		return NULL;
	}
	*len = sb.len;
	return sb_steal(&sb);
}

/* ---- the seen-key set ---- */

static int seen_line(const struct loader *L, const char *section, const char *key)
{
	for (size_t i = 0; i < L->nseen; i++)
		if (strcmp(L->seen[i].section, section) == 0 && strcmp(L->seen[i].key, key) == 0)
			return L->seen[i].line;
	return 0;
}

static void seen_add(struct loader *L, const char *section, const char *key, int line)
{
	L->seen = xrealloc(L->seen, (L->nseen + 1) * sizeof(*L->seen));
	L->seen[L->nseen].section = xstrdup(section);
	L->seen[L->nseen].key = xstrdup(key);
	L->seen[L->nseen].line = line;
	L->nseen++;
}

/* ---- freeing ---- */

static void secrets_free(struct secret *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].data)
			OPENSSL_cleanse(v[i].data, v[i].len);
		free(v[i].data);
	}
	free(v);
}

static void opts_free(struct delivery_opts *o)
{
	free(o->serialize);
	free(o->serialize_scope);
	free(o->workdir);
	if (o->match) {
		match_free(o->match);
		free(o->match);
	}
}

static void endpoint_free(struct endpoint *ep)
{
	free(ep->name);
	free(ep->path);
	secrets_free(ep->secrets, ep->nsecrets);
	free(ep->hooks_dir);
	free(ep->secret_env);
	free(ep->secret_file);
	free(ep->signature_header);
	free(ep->signature_prefix);
	free(ep->event_header);
	free(ep->event_field);
	free(ep->id_header);
	free(ep->token_header);
	free(ep->token_prefix);
	free(ep->fixed_event);
	free_words(ep->pass_headers);
	cidr_list_free(&ep->allow_from);
	opts_free(&ep->opts);
}

static void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->dir);
	free(c->listen);
	free(c->hooks_dir);
	free(c->env_prefix);
	free_words(c->pass_env);
	free(c->user);
	free(c->group);
	free(c->hook_user);
	free(c->hook_group);
	cidr_list_free(&c->trusted_proxies);
	free(c->state_dir);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ciphers);
	opts_free(&c->server_opts);
	free(c->admin_listen);
	free(c->admin_token_file);
	free(c->admin_readonly_token_file);
	if (c->admin_token) {
		OPENSSL_cleanse(c->admin_token, strlen(c->admin_token));
		free(c->admin_token);
	}
	if (c->admin_readonly_token) {
		OPENSSL_cleanse(c->admin_readonly_token, strlen(c->admin_readonly_token));
		free(c->admin_readonly_token);
	}
	for (size_t i = 0; i < c->nendpoints; i++)
		endpoint_free(&c->endpoints[i]);
	free(c->endpoints);
	for (size_t i = 0; i < c->nevents; i++) {
		free(c->events[i].name);
		opts_free(&c->events[i].opts);
	}
	free(c->events);
	free(c->status.v);
	for (size_t i = 0; i < c->nwarnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
}

/* ---- setters: one a kind of value ---- */

#define FIELD(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->off))

static void set_string(char **field, char *v)
{
	free(*field);
	*field = v;
}

static bool set_duration(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_size(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_int(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_i64(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_bool(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	bool b;
	if (!parse_bool(v, &b))
		return bad_value(L, k, v, "expected yes/no, true/false, on/off or 1/0");
	*FIELD(obj, k, bool) = b;
	return true;
}

/* A path that must be given: made absolute. */
static bool set_path(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	set_string(FIELD(obj, k, char *), abs_path(L->c, v));
	return true;
}

/* A path that may be left empty: unset. */
static bool set_optpath(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	set_string(FIELD(obj, k, char *), v[0] ? abs_path(L->c, v) : NULL);
	return true;
}

static bool set_optstr(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	set_string(FIELD(obj, k, char *), v[0] ? xstrdup(v) : NULL);
	return true;
}

/* limit_nofile, limit_nproc: a count, empty for unset (-1). */
static bool set_limit(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_limit_size(struct loader *L, const struct keydef *k, void *obj, const char *v)
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
static bool set_limit_cpu(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_listen(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	char *s = NULL;
	if (!parse_listen(L, k, v, &s))
		return false;
	set_string(FIELD(obj, k, char *), s);
	return true;
}

/* [admin] listen: empty means off. */
static bool set_optlisten(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!v[0]) {
		set_string(FIELD(obj, k, char *), NULL);
		return true;
	}
	return set_listen(L, k, obj, v);
}

/* The prefix must make every variable a valid, unmistakable name. */
static bool set_env_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_pass_env(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	return set_words(L, k, obj, v, env_name_valid, "a variable name", false);
}

static bool set_cidrs(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_log_format(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "logfmt") == 0)
		*FIELD(obj, k, int) = LOG_FORMAT_LOGFMT;
	else if (strcmp(v, "json") == 0)
		*FIELD(obj, k, int) = LOG_FORMAT_JSON;
	else
		return bad_value(L, k, v, "expected logfmt or json");
	return true;
}

static bool set_url_path(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (v[0] != '/')
		return bad_value(L, k, v, "must start with '/'");
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
			return bad_value(L, k, v, "no spaces, control characters, '?' or '#'");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

static bool set_scheme(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_algorithm(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

static bool set_encoding(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (strcmp(v, "hex") == 0)
		*FIELD(obj, k, enum sig_encoding) = SIG_HEX;
	else if (strcmp(v, "base64") == 0)
		*FIELD(obj, k, enum sig_encoding) = SIG_BASE64;
	else
		return bad_value(L, k, v, "expected hex or base64");
	return true;
}

static bool set_header(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!header_name_valid(v))
		return bad_value(L, k, v, "expected a header name");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* event_header, id_header: empty means not set. */
static bool set_optheader(struct loader *L, const struct keydef *k, void *obj, const char *v)
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
static bool set_pass_headers(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	return set_words(L, k, obj, v, header_name_valid, "a header name", true);
}

static bool set_dotted(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!payload_path_valid(v))
		return bad_value(L, k, v, "expected a dotted payload path such as data.build.id");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

static bool set_mode(struct loader *L, const struct keydef *k, void *obj, const char *v)
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
static bool set_respond_within(struct loader *L, const struct keydef *k, void *obj, const char *v)
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
static bool set_serialize(struct loader *L, const struct keydef *k, void *obj, const char *v)
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
static bool set_match(struct loader *L, const struct keydef *k, void *obj, const char *v)
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

/* ---- secrets ---- */

static struct endpoint *cur_endpoint(struct loader *L)
{
	return &L->c->endpoints[L->idx];
}

/*
 * secret, secret_file and secret_env are one setting given three ways;
 * the second one given is the error.
 */
static bool secret_unique(struct loader *L, const struct keydef *k)
{
	static const char *const keys[] = {"secret", "secret_file", "secret_env"};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int line = seen_line(L, L->section, keys[i]);
		if (line && strcmp(keys[i], k->name) != 0)
			return fail_at(L, L->lineno,
			               "endpoint '%s': give only one of secret, secret_file and "
			               "secret_env (%s is at line %d)",
			               cur_endpoint(L)->name, keys[i], line);
	}
	return true;
}

/* Stores the whitespace-separated secrets of s (rotation) as-is. */
static void store_secrets(struct endpoint *ep, const char *s)
{
	size_t n;
	char **words = split_words(s, &n);
	secrets_free(ep->secrets, ep->nsecrets);
	ep->secrets = xcalloc(n ? n : 1, sizeof(*ep->secrets));
	ep->nsecrets = n;
	for (size_t i = 0; i < n; i++) {
		ep->secrets[i].len = strlen(words[i]);
		ep->secrets[i].data = (unsigned char *)words[i];
	}
	free(words); /* the strings now belong to ep->secrets */
}

/*
 * secret_file and secret_env hold one secret a line, so a secret may
 * contain spaces (GitHub's documented example does); blanks around a line
 * and empty lines are ignored. Each keeps its line number, for a scheme's
 * error about it (basic's user:password lines).
 */
static void store_secret_lines(struct endpoint *ep, const char *s)
{
	int line = 0;
	secrets_free(ep->secrets, ep->nsecrets);
	ep->secrets = NULL;
	ep->nsecrets = 0;
	while (*s) {
		size_t n = strcspn(s, "\n");
		const char *b = s, *e = s + n;
		line++;
		while (b < e && strchr(WS, *b))
			b++;
		while (e > b && strchr(WS, e[-1]))
			e--;
		if (e > b) {
			ep->secrets = xrealloc(ep->secrets, (ep->nsecrets + 1) * sizeof(*ep->secrets));
			ep->secrets[ep->nsecrets].len = (size_t)(e - b);
			ep->secrets[ep->nsecrets].data = (unsigned char *)xstrndup(b, (size_t)(e - b));
			ep->secrets[ep->nsecrets].line = line;
			ep->nsecrets++;
		}
		s += n;
		if (*s)
			s++;
	}
}

/*
 * `secret = "my secret"` would be the two secrets `"my` and `secret"`:
 * quotes are never part of the syntax, so a word that starts or ends with
 * one is refused rather than kept. The message quotes no secret.
 */
static bool secret_words_unquoted(struct loader *L, const struct endpoint *ep, const char *v)
{
	size_t n;
	char **words = split_words(v, &n);
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(words[i]);
		/* "" or '' alone is the empty secret: check_secret_lengths says so. */
		bool empty_pair = len == 2 && words[i][0] == words[i][1];
		if (!empty_pair && (strchr("\"'", words[i][0]) || strchr("\"'", words[i][len - 1])))
			quoted = true;
		OPENSSL_cleanse(words[i], len);
	}
	free_words(words);
	if (quoted)
		return fail_at(L, L->lineno,
		               "endpoint '%s': a secret starts or ends with a quote; secrets are "
		               "whitespace-separated and unquoted (one with spaces belongs in a "
		               "secret_file)",
		               ep->name);
	return true;
}

static bool set_secret(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	if (!v[strspn(v, WS)])
		return fail_at(L, L->lineno, "endpoint '%s': secret is empty", ep->name);
	if (!secret_words_unquoted(L, ep, v))
		return false;
	store_secrets(ep, v);
	return true;
}

static bool set_secret_file(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	char *path = abs_path(L->c, v);
	size_t len;
	char *text = read_file(path, SECRET_FILE_MAX_BYTES, &len);
	bool ok = false;
	if (!text)
		fail_at(L, L->lineno, "endpoint '%s': cannot read secret_file '%s': %s", ep->name,
		        show(L, path), errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
	else if (strlen(text) != len)
		fail_at(L, L->lineno, "endpoint '%s': secret_file '%s' holds a NUL byte", ep->name,
		        show(L, path));
	else if (!text[strspn(text, WS)])
		fail_at(L, L->lineno, "endpoint '%s': secret_file '%s' is empty", ep->name,
		        show(L, path));
	else
		ok = true;
	if (ok)
		store_secret_lines(ep, text);
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	/* Kept for `hookd check` (the file's mode) and for naming the file in
	 * the errors about its lines. */
	set_string(&ep->secret_file, path);
	return ok;
}

static bool set_secret_env(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	if (!env_name_valid(v))
		return bad_value(L, k, v, "expected an environment variable name");
	/* Taken out of hookd's environment once read; a reload gets the
	 * value read then (secrecy.h). */
	const char *val = secrecy_take_env(v);
	if (!val)
		return fail_at(L, L->lineno, "endpoint '%s': secret_env '%s' is not set", ep->name, v);
	if (!val[strspn(val, WS)])
		return fail_at(L, L->lineno, "endpoint '%s': secret_env '%s' is empty", ep->name, v);
	store_secret_lines(ep, val);
	ep->secret_env = xstrdup(v);
	return true;
}

/* token_prefix: any text, empty for none (unlike set_optstr, empty is not unset). */
static bool set_token_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	(void)L;
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* An endpoint's `event`: a name that passes README "Routing: hooks.d"'s rule. */
static bool set_fixed_event(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	if (!event_name_valid(v, strlen(v)))
		return bad_value(L, k, v, "expected an event name (letters, digits, . _ : -)");
	set_string(FIELD(obj, k, char *), xstrdup(v));
	return true;
}

/* ---- the sections and their keys ---- */

#define SRV(f) offsetof(struct config, f)
#define EP(f) offsetof(struct endpoint, f)
#define EV(f) offsetof(struct event_rule, f)

#define DUR_POS(name, off) {name, set_duration, off, 1, 0, 0, 0}
#define DUR_NONNEG(name, off) {name, set_duration, off, 0, 0, 0, 0}

/* The environment's budget: [server], [endpoint] and [event]. Past 1 MiB
 * the environment nears what execve takes (a quarter of the stack limit,
 * 2 MiB by default, arguments and pointers included). */
#define ENV_KEYS(OFF, IN)                                                                \
	{"env_max_vars", set_int, OFF(IN env_max_vars), 0, 65536, OPT_ENV_MAX_VARS, 0},      \
	{"env_max_bytes", set_size, OFF(IN env_max_bytes), 0, 1024 * 1024, OPT_ENV_MAX_BYTES, 0}, \
	{"env_array_max", set_int, OFF(IN env_array_max), 0, 65536, OPT_ENV_ARRAY_MAX, 0}

/* Where hooks run: [server], [endpoint] and [event]; empty: the hook's own
 * directory. Whether it exists is `hookd check`'s (preflight.h): it may be
 * made after the config is written. */
#define WORKDIR_KEY(OFF, IN) {"workdir", set_optpath, OFF(IN workdir), 0, 0, OPT_WORKDIR, 0}

static const struct keydef server_keys[] = {
	{"listen", set_listen, SRV(listen), 0, 0, 0, 0},
	{"hooks_dir", set_path, SRV(hooks_dir), 0, 0, 0, 0},
	{"max_body", set_size, SRV(max_body), 1, 1024 * 1024 * 1024, 0, 0},
	{"timeout", set_duration, SRV(server_opts.timeout_ms), 1, 0, OPT_TIMEOUT, 0},
	ENV_KEYS(SRV, server_opts.),
	WORKDIR_KEY(SRV, server_opts.),
	DUR_NONNEG("kill_grace", SRV(kill_grace_ms)),
	{"max_running", set_int, SRV(max_running), 1, INT_MAX, 0, 0},
	{"max_queued", set_int, SRV(max_queued), 0, INT_MAX, 0, 0},
	{"env_prefix", set_env_prefix, SRV(env_prefix), 0, 0, 0, 0},
	{"pass_env", set_pass_env, SRV(pass_env), 0, 0, 0, 0},
	{"include_output", set_bool, SRV(include_output), 0, 0, 0, 0},
	{"max_headers", set_size, SRV(max_headers), 1, 1024 * 1024, 0, 0},
	{"max_connections", set_int, SRV(max_connections), 1, INT_MAX, 0, 0},
	{"max_connections_per_client", set_int, SRV(max_connections_per_client), 0, INT_MAX, 0, 0},
	{"max_buffered", set_size, SRV(max_buffered), 1, 0, 0, 0},
	DUR_POS("read_timeout", SRV(read_timeout_ms)),
	DUR_POS("idle_timeout", SRV(idle_timeout_ms)),
	{"limit_nofile", set_limit, SRV(limit_nofile), 0, 0, 0, 0},
	{"limit_nproc", set_limit, SRV(limit_nproc), 0, 0, 0, 0},
	{"limit_memory", set_limit_size, SRV(limit_memory), 0, 0, 0, 0},
	{"limit_cpu", set_limit_cpu, SRV(limit_cpu), 0, 0, 0, 0},
	{"user", set_optstr, SRV(user), 0, 0, 0, 0},
	{"group", set_optstr, SRV(group), 0, 0, 0, 0},
	{"hook_user", set_optstr, SRV(hook_user), 0, 0, 0, 0},
	{"hook_group", set_optstr, SRV(hook_group), 0, 0, 0, 0},
	{"trusted_proxies", set_cidrs, SRV(trusted_proxies), 0, 0, 0, 0},
	{"state_dir", set_optpath, SRV(state_dir), 0, 0, 0, 0},
	DUR_POS("journal_keep", SRV(journal_keep_ms)),
	{"journal_max", set_i64, SRV(journal_max), 1, INT64_MAX, 0, 0},
	{"journal_body_max", set_size, SRV(journal_body_max), 0, 0, 0, 0},
	{"journal_max_bytes", set_size, SRV(journal_max_bytes), 1, 0, 0, 0},
	{"tls_cert", set_optpath, SRV(tls_cert), 0, 0, 0, 0},
	{"tls_key", set_optpath, SRV(tls_key), 0, 0, 0, 0},
	{"tls_ciphers", set_optstr, SRV(tls_ciphers), 0, 0, 0, 0},
	{"log_format", set_log_format, SRV(log_format), 0, 0, 0, 0},
};

/* The per-delivery settings, shared by [endpoint] and [event]. */
#define OPTS_KEYS(OFF)                                                                   \
	{"timeout", set_duration, OFF(opts.timeout_ms), 1, 0, OPT_TIMEOUT, 0},             \
	{"mode", set_mode, OFF(opts.mode), 0, 0, OPT_MODE, 0},                             \
	{"retries", set_int, OFF(opts.retries), 0, 100, OPT_RETRIES, 0},                   \
	{"retry_backoff", set_duration, OFF(opts.retry_backoff_ms), 0, 0, OPT_RETRY_BACKOFF, 0}, \
	{"serialize", set_serialize, OFF(opts.serialize), 0, 0, OPT_SERIALIZE, 0},         \
	{"respond_within", set_respond_within, OFF(opts.respond_within_ms), 0, 0,          \
	 OPT_RESPOND_WITHIN, 0},                                                           \
	ENV_KEYS(OFF, opts.),                                                              \
	WORKDIR_KEY(OFF, opts.)

/* Which schemes take a BY_SCHEME key is the scheme entries' `keys`. */
#define BY_SCHEME true

static const struct keydef endpoint_keys[] = {
	{"path", set_url_path, EP(path), 0, 0, 0, 0},
	{"scheme", set_scheme, EP(scheme), 0, 0, 0, 0},
	{"secret", set_secret, 0, 0, 0, 0, 0},
	{"secret_file", set_secret_file, 0, 0, 0, 0, 0},
	{"secret_env", set_secret_env, 0, 0, 0, 0, 0},
	{"hooks_dir", set_path, EP(hooks_dir), 0, 0, 0, 0},
	{"tolerance", set_duration, EP(tolerance_ms), 1, 0, 0, BY_SCHEME},
	{"allow_sha1", set_bool, EP(allow_sha1), 0, 0, 0, BY_SCHEME},
	{"signature_header", set_header, EP(signature_header), 0, 0, 0, BY_SCHEME},
	{"algorithm", set_algorithm, EP(algorithm), 0, 0, 0, BY_SCHEME},
	{"encoding", set_encoding, EP(encoding), 0, 0, 0, BY_SCHEME},
	{"signature_prefix", set_optstr, EP(signature_prefix), 0, 0, 0, BY_SCHEME},
	{"event_header", set_optheader, EP(event_header), 0, 0, 0, BY_SCHEME},
	{"event_field", set_dotted, EP(event_field), 0, 0, 0, BY_SCHEME},
	{"id_header", set_optheader, EP(id_header), 0, 0, 0, BY_SCHEME},
	{"token_header", set_header, EP(token_header), 0, 0, 0, BY_SCHEME},
	{"token_prefix", set_token_prefix, EP(token_prefix), 0, 0, 0, BY_SCHEME},
	{"event", set_fixed_event, EP(fixed_event), 0, 0, 0, 0},
	{"pass_headers", set_pass_headers, EP(pass_headers), 0, 0, 0, 0},
	{"allow_from", set_cidrs, EP(allow_from), 0, 0, 0, 0},
	DUR_NONNEG("replay_window", EP(replay_window_ms)),
	OPTS_KEYS(EP),
};

static const struct keydef event_keys[] = {
	OPTS_KEYS(EV),
	{"match", set_match, EV(opts.match), 0, 0, OPT_MATCH, 0},
};

/*
 * [admin] token_file and readonly_token_file: the token is the file's first
 * line, at least 16 bytes (a token someone could guess guards nothing).
 */
#define ADMIN_TOKEN_MIN 16
static bool set_admin_token_file(struct loader *L, const struct keydef *k, void *obj,
                                 const char *v)
{
	struct config *c = L->c;
	bool readonly = strcmp(k->name, "readonly_token_file") == 0;
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	char *path = abs_path(c, v);
	size_t len;
	char *text = read_file(path, SECRET_FILE_MAX_BYTES, &len);
	bool ok = false;
	if (!text) {
		fail_at(L, L->lineno, "[admin] cannot read %s '%s': %s", k->name, show(L, path),
		        errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
	} else {
		text[strcspn(text, "\r\n")] = 0;
		size_t n = strlen(text);
		while (n && (text[n - 1] == ' ' || text[n - 1] == '\t'))
			text[--n] = 0;
		if (n < ADMIN_TOKEN_MIN)
			fail_at(L, L->lineno, "[admin] %s '%s': the token (its first line) is shorter "
			        "than %d bytes", k->name, show(L, path), ADMIN_TOKEN_MIN);
		else
			ok = true;
	}
	if (ok) {
		char **dst = readonly ? &c->admin_readonly_token : &c->admin_token;
		free(*dst);
		*dst = xstrdup(text);
	}
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	set_string(readonly ? &c->admin_readonly_token_file : &c->admin_token_file, path);
	return ok;
}

static const struct keydef admin_keys[] = {
	{"listen", set_optlisten, SRV(admin_listen), 0, 0, 0, 0},
	{"token_file", set_admin_token_file, 0, 0, 0, 0, 0},
	{"readonly_token_file", set_admin_token_file, 0, 0, 0, 0, 0},
};

static const struct section_def sections[] = {
	{"server", SECT_SERVER, false, server_keys, ARRAY_SIZE(server_keys), SRV(server_opts)},
	{"endpoint", SECT_ENDPOINT, true, endpoint_keys, ARRAY_SIZE(endpoint_keys), EP(opts)},
	{"status", SECT_STATUS, false, NULL, 0, 0},
	{"event", SECT_EVENT, true, event_keys, ARRAY_SIZE(event_keys), EV(opts)},
	{"admin", SECT_ADMIN, false, admin_keys, ARRAY_SIZE(admin_keys), 0},
};

/* ---- sections ---- */

static void endpoint_init(struct endpoint *ep, const char *name, int line)
{
	memset(ep, 0, sizeof(*ep));
	ep->name = xstrdup(name);
	ep->scheme = scheme_default();
	ep->tolerance_ms = 5 * MS_MINUTE;
	ep->signature_header = xstrdup("X-Signature");
	ep->algorithm = HMAC_SHA256;
	ep->encoding = SIG_HEX;
	ep->event_field = xstrdup("event");
	ep->line = line;
}

/* Opens [kind] or [kind NAME]; a repeated section continues the first. */
static bool open_section(struct loader *L, const char *s, size_t n)
{
	struct config *c = L->c;
	const char *close = memchr(s, ']', n);
	if (!close)
		return fail_at(L, L->lineno, "section header without ']'");
	const char *rest = close + 1, *end = s + n;
	while (rest < end && is_ws(*rest))
		rest++;
	if (rest < end && *rest != ';' && *rest != '#')
		return fail_at(L, L->lineno, "unexpected text after ']'");

	char *inner = xstrndup(s + 1, (size_t)(close - s - 1));
	char *kind = inner + strspn(inner, WS);
	char *name = kind + strcspn(kind, WS);
	if (*name)
		*name++ = '\0';
	name += strspn(name, WS);
	size_t nl = strlen(name);
	while (nl && is_ws(name[nl - 1]))
		name[--nl] = '\0';

	const struct section_def *def = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
		if (strcmp(kind, sections[i].name) == 0)
			def = &sections[i];
	bool ok = false;
	if (!def) {
		fail_at(L, L->lineno, "unknown section [%s%s%s]", show(L, kind), *name ? " " : "",
		        show(L, name));
	} else if (def->named && !*name) {
		fail_at(L, L->lineno, "section [%s] needs a name: [%s NAME]", kind, kind);
	} else if (!def->named && *name) {
		fail_at(L, L->lineno, "section [%s] takes no name", kind);
	} else if (def->kind == SECT_ENDPOINT && !name_valid(name)) {
		fail_at(L, L->lineno,
		        "bad endpoint name '%s': letters, digits and _ . : - only, at most 128",
		        show(L, name));
	} else if (def->kind == SECT_EVENT && strcmp(name, "_default") != 0 &&
	           !name_valid(name)) {
		fail_at(L, L->lineno,
		        "bad event name '%s' in [event]: must match "
		        "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$ or be _default",
		        show(L, name));
	} else {
		ok = true;
	}
	if (!ok) {
		free(inner);
		return false;
	}

	free(L->section);
	L->section = def->named ? xasprintf("%s %s", kind, name) : xstrdup(kind);
	L->def = def;
	if (def->kind == SECT_ENDPOINT) {
		size_t i;
		for (i = 0; i < c->nendpoints; i++)
			if (strcmp(c->endpoints[i].name, name) == 0)
				break;
		if (i == c->nendpoints) {
			c->endpoints = xrealloc(c->endpoints, (i + 1) * sizeof(*c->endpoints));
			endpoint_init(&c->endpoints[i], name, L->lineno);
			c->nendpoints++;
		}
		L->idx = i;
	} else if (def->kind == SECT_EVENT) {
		size_t i;
		for (i = 0; i < c->nevents; i++)
			if (strcmp(c->events[i].name, name) == 0)
				break;
		if (i == c->nevents) {
			c->events = xrealloc(c->events, (i + 1) * sizeof(*c->events));
			memset(&c->events[i], 0, sizeof(c->events[i]));
			c->events[i].name = xstrdup(name);
			c->events[i].line = L->lineno;
			c->nevents++;
		}
		L->idx = i;
	}
	free(inner);
	return true;
}

static void *section_obj(struct loader *L)
{
	switch (L->def->kind) {
	case SECT_ENDPOINT:
		return &L->c->endpoints[L->idx];
	case SECT_EVENT:
		return &L->c->events[L->idx];
	default:
		return L->c;
	}
}

/* [status]: "EXIT = HTTP", "EXIT = skip", "default = HTTP", "timeout = HTTP". */
static bool status_key(struct loader *L, const char *name, const char *value)
{
	int http, code;
	bool skip = strcmp(value, "skip") == 0;
	bool whole = strcmp(name, "default") == 0 || strcmp(name, "timeout") == 0;
	/* Every answer is a JSON body: no 1xx, 204 or 304, which carry none.
	 * A skip is an exit status's alone: default and timeout are failures. */
	if (skip && whole)
		return fail_at(L, L->lineno,
		               "bad value 'skip' for %s in [status]: only an exit status may skip",
		               name);
	if (!skip && (!parse_int(value, 200, 599, &http) || http == 204 || http == 304))
		return fail_at(L, L->lineno,
		               "bad value '%s' for %s in [status]: expected an HTTP status 200..599 "
		               "that has a body (not 204 or 304), or skip",
		               show(L, value), show(L, name));
	if (skip)
		http = -1; /* status_http's mark for a skip */
	if (whole) {
		int first = seen_line(L, "status", name);
		if (first)
			return fail_at(L, L->lineno, "key '%s' given twice in [status] (first at line %d)",
			               name, first);
		seen_add(L, "status", name, L->lineno);
		if (name[0] == 'd')
			L->c->status.def = http;
		else
			L->c->status.timeout = http;
		return true;
	}
	if (!parse_int(name, 0, MAX_EXIT, &code))
		return fail_at(L, L->lineno,
		               "unknown key '%s' in [status]: expected an exit status 0..255, "
		               "default or timeout",
		               show(L, name));
	if (L->status_line[code])
		return fail_at(L, L->lineno, "exit status %d given twice in [status] (first at line %d)",
		               code, L->status_line[code]);
	L->status_line[code] = L->lineno;
	L->status_http[code] = http;
	return true;
}

/* inih's handler: one call a "key = value" line, the line just read. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *L = user;
	(void)section; /* ours is L->section: see the top of the file */
	if (L->failed)
		return 0;
	if (!name)
		return 1; /* a build with INI_CALL_HANDLER_ON_NEW_SECTION */
	if (!value)
		return fail_at(L, L->lineno, "key '%s' has no value", show(L, name));
	if (!L->def)
		return fail_at(L, L->lineno, "key '%s' is outside any section", show(L, name));
	if (L->def->kind == SECT_STATUS)
		return status_key(L, name, value);

	const struct keydef *k = NULL;
	for (size_t i = 0; i < L->def->nkeys; i++)
		if (strcmp(L->def->keys[i].name, name) == 0)
			k = &L->def->keys[i];
	if (!k)
		return fail_at(L, L->lineno, "unknown key '%s' in [%s]", show(L, name), L->section);
	int first = seen_line(L, L->section, name);
	if (first)
		return fail_at(L, L->lineno, "key '%s' given twice in [%s] (first at line %d)", name,
		               L->section, first);
	void *obj = section_obj(L);
	if (!k->set(L, k, obj, value))
		return 0;
	seen_add(L, L->section, name, L->lineno);
	if (k->opt)
		((struct delivery_opts *)(void *)((char *)obj + L->def->opts_off))->set |= k->opt;
	return 1;
}

/*
 * Whether inih will take s as "name = value": it looks for the first '='
 * or ':' before an inline comment (';' after whitespace).
 */
static bool key_line_ok(const char *s, size_t n)
{
	bool was_space = false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' || s[i] == ':')
			return true;
		if (was_space && s[i] == ';')
			return false;
		was_space = is_ws(s[i]);
	}
	return false;
}

/*
 * inih's reader (fgets-like): the next line of the file, without its
 * indentation, always ending in '\n' so that no build of inih tries to
 * join it with the next. Section headers and comments are handled here
 * and passed on as blank lines. NULL ends the parse: the end of the file,
 * or the first error.
 */
static char *read_line(char *buf, int num, void *stream)
{
	struct loader *L = stream;
	if (L->failed || L->pos >= L->len || num < 3)
		return NULL;
	const char *s = L->text + L->pos;
	size_t rem = L->len - L->pos;
	const char *nl = memchr(s, '\n', rem);
	size_t n = nl ? (size_t)(nl - s) : rem;
	L->pos += nl ? n + 1 : n;
	L->lineno++;

	if (memchr(s, '\0', n)) {
		fail_at(L, L->lineno, "NUL byte in line");
		return NULL;
	}
	if (L->lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
		n -= 3;
	}
	while (n && is_ws(*s)) {
		s++;
		n--;
	}
	strcpy(buf, "\n");
	if (n == 0 || *s == ';' || *s == '#')
		return buf;
	if (*s == '[')
		return open_section(L, s, n) ? buf : NULL;
	if (!key_line_ok(s, n)) {
		fail_at(L, L->lineno, "expected 'key = value' or '[section]'");
		return NULL;
	}
	if (n + 2 > (size_t)num) {
		fail_at(L, L->lineno,
		        "line too long (at most %d characters; long secret lists belong in a "
		        "secret_file)",
		        num - 2);
		return NULL;
	}
	memcpy(buf, s, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return buf;
}

/* ---- after the last line: what needs the whole file ---- */

/*
 * inih keeps quotes, so `secret = ""` would be the two bytes `""`: a
 * secret anyone can guess, given by someone who meant none. A secret
 * that is only a pair of quotes is the empty secret, an error.
 */
static bool check_secret_lengths(struct loader *L, const struct endpoint *ep, int line)
{
	for (size_t i = 0; i < ep->nsecrets; i++) {
		const struct secret *s = &ep->secrets[i];
		if (s->len == 0 || (s->len == 2 && (memcmp(s->data, "\"\"", 2) == 0 ||
		                                    memcmp(s->data, "''", 2) == 0)))
			return fail_at(L, line,
			               "endpoint '%s': secret is empty (quotes are kept: \"\" is not an "
			               "empty string, and an empty secret is no secret)",
			               ep->name);
	}
	return true;
}

static bool check_endpoint(struct loader *L, struct endpoint *ep)
{
	struct config *c = L->c;
	char *section = xasprintf("endpoint %s", ep->name);
	bool ok = false;
	int secret_line;

	if (!ep->path) {
		fail_at(L, ep->line, "endpoint '%s' has no path", ep->name);
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(endpoint_keys); i++) {
		const struct keydef *k = &endpoint_keys[i];
		int line = k->by_scheme ? seen_line(L, section, k->name) : 0;
		if (line && !scheme_takes_key(ep->scheme, k->name)) {
			fail_at(L, line, "key '%s' does not apply to scheme %s (endpoint '%s')", k->name,
			        scheme_name(ep->scheme), ep->name);
			goto out;
		}
	}
	secret_line = seen_line(L, section, "secret");
	if (!secret_line)
		secret_line = seen_line(L, section, "secret_file");
	if (!secret_line)
		secret_line = seen_line(L, section, "secret_env");
	if (!ep->scheme->takes_secret && ep->nsecrets) {
		fail_at(L, secret_line, "endpoint '%s': scheme %s takes no secret", ep->name,
		        scheme_name(ep->scheme));
		goto out;
	}
	if (ep->scheme->takes_secret && !ep->nsecrets) {
		fail_at(L, ep->line,
		        "endpoint '%s' (scheme %s) has no secret; hookd never serves an "
		        "unauthenticated endpoint unless scheme = none",
		        ep->name, scheme_name(ep->scheme));
		goto out;
	}
	if (!check_secret_lengths(L, ep, secret_line))
		goto out;
	for (size_t i = 0; ep->scheme->decode_secret && i < ep->nsecrets; i++) {
		if (!ep->scheme->decode_secret(&ep->secrets[i])) {
			const char *form = ep->scheme->secret_form, *name = scheme_name(ep->scheme);
			int at = ep->secrets[i].line;
			/* Lines of a file or variable are named by their line (never by
			 * their text: it is a secret). */
			if (at && ep->secret_file)
				fail_at(L, secret_line,
				        "endpoint '%s': secret_file '%s' line %d is not %s (scheme %s)",
				        ep->name, show(L, ep->secret_file), at, form, name);
			else if (at && ep->secret_env)
				fail_at(L, secret_line,
				        "endpoint '%s': secret_env '%s' line %d is not %s (scheme %s)",
				        ep->name, ep->secret_env, at, form, name);
			else if (ep->nsecrets > 1)
				fail_at(L, secret_line,
				        "endpoint '%s': secret %zu of %zu is not %s (scheme %s)",
				        ep->name, i + 1, ep->nsecrets, form, name);
			else
				fail_at(L, secret_line, "endpoint '%s': the secret is not %s (scheme %s)",
				        ep->name, form, name);
			goto out;
		}
	}
	/* The token header is the endpoint's own credential header, as an hmac
	 * endpoint's signature_header is: never journaled, never passed on. */
	if (ep->token_header)
		set_string(&ep->signature_header, xstrdup(ep->token_header));
	/* The event and the id are logged, answered, journaled and given to
	 * hooks: neither may be read from a credential. */
	const struct {
		const char *key, *header;
	} named[] = {{"event_header", ep->event_header}, {"id_header", ep->id_header}};
	for (size_t i = 0; i < ARRAY_SIZE(named); i++) {
		if (named[i].header && header_is_credential(named[i].header, ep->signature_header)) {
			fail_at(L, seen_line(L, section, named[i].key),
			        "endpoint '%s': %s names %s, which carries a credential: it would be "
			        "logged, answered and given to hooks",
			        ep->name, named[i].key, named[i].header);
			goto out;
		}
	}
	for (char **h = ep->pass_headers; h && *h; h++) {
		int line = seen_line(L, section, "pass_headers");
		if (header_is_credential(*h, ep->signature_header)) {
			fail_at(L, line,
			        "endpoint '%s': pass_headers names %s, which carries a credential: "
			        "a hook never gets one",
			        ep->name, *h);
			goto out;
		}
		/* Two names, one variable: which value it held would be a guess. */
		for (char **g = ep->pass_headers; g < h; g++) {
			char *a = xstrdup(*g), *b = xstrdup(*h);
			header_var_suffix(a);
			header_var_suffix(b);
			bool same = strcmp(a, b) == 0;
			if (same)
				fail_at(L, line, "endpoint '%s': pass_headers names %s and %s, which are "
				        "both HEADER_%s", ep->name, *g, *h, a);
			free(a);
			free(b);
			if (same)
				goto out;
		}
	}
	for (size_t i = 0; i < ep->nsecrets; i++) {
		/* After decode_secret: what counts is the key's bytes. */
		if (ep->secrets[i].len >= SECRET_MIN_ADVISED)
			continue;
		if (ep->nsecrets > 1)
			warn_at(L, secret_line, "endpoint '%s': secret %zu of %zu is %zu bytes; use %d or more",
			        ep->name, i + 1, ep->nsecrets, ep->secrets[i].len, SECRET_MIN_ADVISED);
		else
			warn_at(L, secret_line, "endpoint '%s': the secret is %zu bytes; use %d or more",
			        ep->name, ep->secrets[i].len, SECRET_MIN_ADVISED);
	}
	if (!ep->hooks_dir)
		ep->hooks_dir = xstrdup(c->hooks_dir);
	ok = true;
out:
	free(section);
	return ok;
}

/* Whether only this machine can connect to the listen address: a unix
 * socket, or a loopback address (127.0.0.0/8, ::1). */
static bool listen_is_local(const char *listen)
{
	struct listen_addr la;
	if (listen_addr_parse(listen, &la) != LISTEN_OK)
		return false;
	switch (la.ss.ss_family) {
	case AF_UNIX:
		return true;
	case AF_INET: {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&la.ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&la.ss;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	default:
		return false;
	}
}

/*
 * scheme = none serves anyone who can connect: on an address other
 * machines reach, allow_from must say who may.
 */
static bool check_unauthenticated_listener(struct loader *L)
{
	const struct config *c = L->c;
	if (listen_is_local(c->listen))
		return true;
	for (size_t i = 0; i < c->nendpoints; i++) {
		const struct endpoint *ep = &c->endpoints[i];
		if (ep->scheme->takes_secret || ep->allow_from.n > 0)
			continue;
		char *section = xasprintf("endpoint %s", ep->name);
		int line = seen_line(L, section, "scheme");
		free(section);
		return fail_at(L, line ? line : ep->line,
		               "endpoint '%s': scheme %s verifies nothing and listen '%s' is not "
		               "loopback: set allow_from to the addresses that may call it",
		               ep->name, scheme_name(ep->scheme), show(L, c->listen));
	}
	return true;
}

static bool check_all(struct loader *L)
{
	struct config *c = L->c;
	if (c->nendpoints == 0)
		return fail_at(L, 0,
		               "no [endpoint] section; hookd never serves an unauthenticated "
		               "endpoint, add one (scheme = none must be explicit)");
	for (size_t i = 0; i < c->nendpoints; i++)
		if (!check_endpoint(L, &c->endpoints[i]))
			return false;

	/* A path belongs to one endpoint; the later path line is the error. */
	for (size_t i = 0; i < c->nendpoints; i++) {
		for (size_t j = i + 1; j < c->nendpoints; j++) {
			struct endpoint *a = &c->endpoints[i], *b = &c->endpoints[j];
			if (strcmp(a->path, b->path) != 0)
				continue;
			char *sa = xasprintf("endpoint %s", a->name);
			char *sb = xasprintf("endpoint %s", b->name);
			int la = seen_line(L, sa, "path"), lb = seen_line(L, sb, "path");
			free(sa);
			free(sb);
			if (la > lb)
				return fail_at(L, la, "endpoint '%s': path '%s' is already used by endpoint '%s'",
				               a->name, show(L, a->path), b->name);
			return fail_at(L, lb, "endpoint '%s': path '%s' is already used by endpoint '%s'",
			               b->name, show(L, b->path), a->name);
		}
	}

	if (!check_unauthenticated_listener(L))
		return false;
	/* The admin listener shows every delivery and can replay them. */
	if (c->admin_listen && !c->admin_token && !c->admin_readonly_token &&
	    !listen_is_local(c->admin_listen))
		return fail_at(L, seen_line(L, "admin", "listen"),
		               "[admin] listen '%s' is not loopback or a unix socket, and no "
		               "token_file is set: the deliveries page and API would be open to "
		               "anyone who can connect; set token_file, or listen on 127.0.0.1, "
		               "[::1] or unix:PATH",
		               show(L, c->admin_listen));

	/* A hook never gets a secret, not even one pass_env would hand it. */
	for (size_t i = 0; i < c->nendpoints; i++) {
		const struct endpoint *ep = &c->endpoints[i];
		for (char **p = c->pass_env; ep->secret_env && p && *p; p++) {
			if (strcmp(*p, ep->secret_env) == 0)
				return fail_at(L, seen_line(L, "server", "pass_env"),
				               "pass_env names %s, which holds the secret of endpoint '%s' "
				               "(secret_env): a hook never gets a secret",
				               *p, ep->name);
		}
	}

	c->user_line = seen_line(L, "server", "user");
	c->group_line = seen_line(L, "server", "group");
	c->hook_user_line = seen_line(L, "server", "hook_user");
	c->hook_group_line = seen_line(L, "server", "hook_group");
	c->tls_cert_line = seen_line(L, "server", "tls_cert");
	c->tls_key_line = seen_line(L, "server", "tls_key");
	c->tls_ciphers_line = seen_line(L, "server", "tls_ciphers");
	if (!c->tls_cert != !c->tls_key) {
		const char *given = c->tls_cert ? "tls_cert" : "tls_key";
		const char *missing = c->tls_cert ? "tls_key" : "tls_cert";
		return fail_at(L, seen_line(L, "server", given), "%s is set but %s is not; give both or neither",
		               given, missing);
	}
	if (L->async_line && !c->state_dir)
		return fail_at(L, L->async_line, "mode = async needs [server] state_dir");
	/* Going on after the 202 is an async delivery's: journaled. */
	if (L->respond_within_line && !c->state_dir)
		return fail_at(L, L->respond_within_line,
		               "respond_within needs [server] state_dir (or 0 for off)");
	/* serve makes a missing state_dir; one that cannot be a directory is
	 * an error check reports too. */
	struct stat st;
	int r = c->state_dir ? stat(c->state_dir, &st) : -1;
	if ((r == 0 && !S_ISDIR(st.st_mode)) || (r < 0 && c->state_dir && errno == ENOTDIR))
		return fail_at(L, seen_line(L, "server", "state_dir"), "state_dir %s is not a directory",
		               show(L, c->state_dir));

	/* The status map: defaults first, then the file's entries, in exit order. */
	for (int code = 0; code <= MAX_EXIT; code++) {
		if (L->status_http[code] == 0)
			continue;
		c->status.v = xrealloc(c->status.v, (c->status.n + 1) * sizeof(*c->status.v));
		c->status.v[c->status.n].exit_code = code;
		bool skip = L->status_http[code] < 0;
		c->status.v[c->status.n].http = skip ? 200 : L->status_http[code];
		c->status.v[c->status.n].skip = skip;
		c->status.n++;
	}
	return true;
}

/* ---- loading ---- */

/* The config file's directory, absolute (symlinks resolved). */
static char *config_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;
	if (!slash)
		d = xstrdup(".");
	else if (slash == path)
		d = xstrdup("/");
	else
		d = xstrndup(path, (size_t)(slash - path));
	char *real = realpath(d, NULL);
	if (real) {
		free(d);
		return real;
	}
	if (d[0] == '/')
		return d;
	char *cwd = getcwd(NULL, 0);
	char *abs = xasprintf("%s/%s", cwd ? cwd : "", d);
	free(cwd);
	free(d);
	return abs;
}

static struct config *config_new(const char *path)
{
	struct config *c = xcalloc(1, sizeof(*c));
	c->refs = 1;
	c->path = xstrdup(path);
	c->dir = config_dir(path);
	c->listen = xstrdup("127.0.0.1:9000");
	c->hooks_dir = abs_path(c, "hooks.d");
	c->max_body = 1024 * 1024;
	c->kill_grace_ms = 5 * MS_SECOND;
	c->max_running = 16;
	c->max_queued = 256;
	c->env_prefix = xstrdup("HOOK_");
	c->pass_env = split_words("PATH LANG TZ", NULL);
	c->include_output = false;
	c->max_headers = 16 * 1024;
	c->max_connections = 1024;
	c->max_connections_per_client = 256;
	c->max_buffered = 64 * 1024 * 1024;
	c->read_timeout_ms = 10 * MS_SECOND;
	c->idle_timeout_ms = 60 * MS_SECOND;
	c->limit_nofile = c->limit_nproc = c->limit_memory = c->limit_cpu = -1;
	c->journal_keep_ms = 30 * MS_DAY;
	c->journal_max = 100000;
	c->journal_body_max = 64 * 1024;
	c->journal_max_bytes = 1024 * 1024 * 1024;
	c->log_format = LOG_FORMAT_LOGFMT;
	c->server_opts.timeout_ms = 30 * MS_SECOND;
	c->server_opts.mode = MODE_SYNC;
	c->server_opts.retries = 5;
	c->server_opts.retry_backoff_ms = 10 * MS_SECOND;
	/* payload.h's FLATTEN_MAX_VARS, FLATTEN_MAX_BYTES, FLATTEN_ARRAY_MAX */
	c->server_opts.env_max_vars = 1024;
	c->server_opts.env_max_bytes = 512 * 1024;
	c->server_opts.env_array_max = 32;
	c->status.def = 500;
	c->status.timeout = 504;
	return c;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct loader L;
	memset(&L, 0, sizeof(L));
	if (err && errlen)
		err[0] = '\0';

	L.text = read_file(path, CONFIG_MAX_BYTES, &L.len);
	if (!L.text) {
		if (err)
			snprintf(err, errlen, "%s: cannot open: %s", path,
			         errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	L.c = config_new(path);
	L.status_http[0] = 200;
	L.status_http[75] = 503; /* EX_TEMPFAIL: ask the sender to retry */

	int r = ini_parse_stream(read_line, &L, on_key, &L);
	if (!L.failed && r == -2)
		fail_at(&L, 0, "out of memory");
	else if (!L.failed && r != 0)
		/* Our reader vets every line, so this is a build of inih that
		 * refuses something it does not; its line count is ours. */
		fail_at(&L, r > 0 ? r : 0, "syntax error");
	if (!L.failed)
		check_all(&L);

	struct config *c = L.c;
	if (L.failed) {
		if (err) {
			if (L.err_line > 0)
				snprintf(err, errlen, "%s:%d: %s", path, L.err_line, L.msg);
			else
				snprintf(err, errlen, "%s: %s", path, L.msg);
		}
		config_free(c);
		c = NULL;
	}
	/* The text holds the secrets given inline. */
	OPENSSL_cleanse(L.text, L.len);
	free(L.text);
	free(L.section);
	for (size_t i = 0; i < L.nseen; i++) {
		free(L.seen[i].section);
		free(L.seen[i].key);
	}
	free(L.seen);
	return c;
}

struct config *config_ref(struct config *c)
{
	if (c)
		c->refs++;
	return c;
}

void config_unref(struct config *c)
{
	if (c && --c->refs <= 0)
		config_free(c);
}

const struct endpoint *config_endpoint_by_path(const struct config *c, const char *path)
{
	if (!c || !path)
		return NULL;
	for (size_t i = 0; i < c->nendpoints; i++)
		if (strcmp(c->endpoints[i].path, path) == 0)
			return &c->endpoints[i];
	return NULL;
}

const struct endpoint *config_endpoint_by_name(const struct config *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->nendpoints; i++)
		if (strcmp(c->endpoints[i].name, name) == 0)
			return &c->endpoints[i];
	return NULL;
}

static const struct event_rule *rule_named(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nevents; i++)
		if (strcmp(c->events[i].name, name) == 0)
			return &c->events[i];
	return NULL;
}

/*
 * The [event] rule for an event, matched like a route: a:b.c, a:b, a,
 * then _default (segments end at ':' or '.'). Kept here rather than taken
 * from route.c so the config does not depend on routing.
 */
static const struct event_rule *rule_for(const struct config *c, const char *event)
{
	char name[NAME_MAX_LEN + 1];
	size_t n = event ? strlen(event) : 0;
	if (n > 0 && n <= NAME_MAX_LEN) {
		memcpy(name, event, n + 1);
		for (;;) {
			const struct event_rule *r = rule_named(c, name);
			if (r)
				return r;
			char *cut = NULL;
			for (char *p = name; *p; p++)
				if (*p == ':' || *p == '.')
					cut = p;
			if (!cut || cut == name)
				break;
			*cut = '\0';
		}
	}
	return rule_named(c, "_default");
}

static void overlay(struct delivery_opts *out, const struct delivery_opts *in)
{
	if (in->set & OPT_TIMEOUT)
		out->timeout_ms = in->timeout_ms;
	if (in->set & OPT_MODE)
		out->mode = in->mode;
	if (in->set & OPT_RETRIES)
		out->retries = in->retries;
	if (in->set & OPT_RETRY_BACKOFF)
		out->retry_backoff_ms = in->retry_backoff_ms;
	if (in->set & OPT_SERIALIZE) {
		out->serialize = in->serialize;
		out->serialize_scope = in->serialize_scope;
	}
	if (in->set & OPT_ENV_MAX_VARS)
		out->env_max_vars = in->env_max_vars;
	if (in->set & OPT_ENV_MAX_BYTES)
		out->env_max_bytes = in->env_max_bytes;
	if (in->set & OPT_ENV_ARRAY_MAX)
		out->env_array_max = in->env_array_max;
	if (in->set & OPT_WORKDIR)
		out->workdir = in->workdir;
	if (in->set & OPT_MATCH)
		out->match = in->match;
	if (in->set & OPT_RESPOND_WITHIN)
		out->respond_within_ms = in->respond_within_ms;
	out->set |= in->set;
}

void config_delivery_opts(const struct config *c, const struct endpoint *ep, const char *event,
                          struct delivery_opts *out)
{
	*out = c->server_opts;
	/* The sender's own deadline, a little under its timeout. */
	if (ep && ep->scheme)
		out->respond_within_ms = ep->scheme->respond_within_ms;
	if (ep)
		overlay(out, &ep->opts);
	const struct event_rule *r = rule_for(c, event);
	if (r)
		overlay(out, &r->opts);
	/* Going on after the 202 needs the journal (one set without it is
	 * refused at load; a scheme's default is simply off). */
	if (!c->state_dir)
		out->respond_within_ms = 0;
}

bool status_skips(const struct status_map *m, int exit_code)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].exit_code == exit_code)
			return m->v[i].skip;
	return false;
}

int status_for_exit(const struct status_map *m, int exit_code)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].exit_code == exit_code)
			return m->v[i].http;
	return m->def;
}
