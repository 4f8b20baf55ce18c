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
 *
 * This file reads the file, holds the key tables and opens the sections;
 * the values are parsed in config_values.c and config_secrets.c, and what
 * needs the whole file is checked in config_checks.c (config_loader.h).
 */
#include "config.h"
#include "crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "config_loader.h"
#include "log.h"
#include "netaddr.h"
#include "util.h"

/* A config file is a few KiB; this only stops /dev/zero and mistakes. */
#define CONFIG_MAX_BYTES (1024 * 1024)
#define NAME_MAX_LEN 128

/* ---- errors ---- */

bool fail_at(struct loader *L, int line, const char *fmt, ...)
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
const char *show(struct loader *L, const char *v)
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
void warn_at(struct loader *L, int line, const char *fmt, ...)
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

bool bad_value(struct loader *L, const struct keydef *k, const char *v, const char *want)
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
bool env_name_valid(const char *s)
{
	if (!s[0] || isdigit((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

/* An HTTP header name: RFC 9110 token characters. */
bool header_name_valid(const char *s)
{
	if (!s[0])
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return false;
	return true;
}

/* Splits on whitespace into a NULL-terminated array; *n gets the count. */
char **split_words(const char *s, size_t *n)
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

void free_words(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* Relative paths are relative to the config file's directory. */
char *abs_path(const struct config *c, const char *p)
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
char *read_file(const char *path, size_t max, size_t *len)
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
	crypto_wipe(buf, sizeof(buf));
	close(fd);
	if (err) {
		crypto_wipe(sb.buf, sb.len);
		sb_free(&sb);
		errno = err;
		return NULL;
	}
	*len = sb.len;
	return sb_steal(&sb);
}

/* ---- the seen-key set ---- */

int seen_line(const struct loader *L, const char *section, const char *key)
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

void secrets_free(struct secret *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].data)
			crypto_wipe(v[i].data, v[i].len);
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
	free(c->journal_url);
	free(c->journal_password_file);
	if (c->journal_password) {
		crypto_wipe(c->journal_password, strlen(c->journal_password));
		free(c->journal_password);
	}
	free(c->instance);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ciphers);
	opts_free(&c->server_opts);
	free(c->admin_listen);
	free(c->admin_token_file);
	free(c->admin_readonly_token_file);
	if (c->admin_token) {
		crypto_wipe(c->admin_token, strlen(c->admin_token));
		free(c->admin_token);
	}
	if (c->admin_readonly_token) {
		crypto_wipe(c->admin_readonly_token, strlen(c->admin_readonly_token));
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
	{"journal", set_journal_url, SRV(journal_url), 0, 0, 0, 0},
	{"journal_password_file", set_journal_password_file, 0, 0, 0, 0, 0},
	{"instance", set_instance, SRV(instance), 0, 0, 0, 0},
	DUR_POS("lease", SRV(lease_ms)),
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

const struct keydef endpoint_keys[] = {
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
const size_t endpoint_keys_n = ARRAY_SIZE(endpoint_keys);

static const struct keydef event_keys[] = {
	OPTS_KEYS(EV),
	{"match", set_match, EV(opts.match), 0, 0, OPT_MATCH, 0},
};

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
	c->lease_ms = 30 * MS_SECOND;
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
	crypto_wipe(L.text, L.len);
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
	if (!c->state_dir && !c->journal_url)
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
