/*
 * The delivery object (delivery.h): building it from its parameters, its
 * environment and the base environment every delivery of a config shares,
 * its results and outcome, and how it is written down (the answer JSON, the
 * log line, the journal's record of it).
 */
#include "delivery.h"
#include "crypto.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "hookuser.h"
#include "journal.h"
#include "log.h"
#include "scheme.h"
#include "util.h"

struct delivery {
	struct config *cfg; /* a reference */
	const struct endpoint *ep;
	char *event;
	char *id;
	bool id_generated;
	char *remote_addr;
	int64_t received_ms; /* wall clock */
	unsigned char *body;
	size_t body_len;
	struct envlist env; /* metadata + payload; HOOK_HOOK/HOOK_ATTEMPT added per hook */
	struct flatten_report env_report; /* what env left out (pass_headers too) */
	bool env_pending;   /* lazy: env not built yet, from root */
	bool quiet;         /* delivery_params.quiet */
	json_object *root;  /* the parsed payload until then (a reference), else NULL */
	bool parse_body;    /* ... and with root NULL: from the JSON body, parsed then */
	long long scanned_big_numbers; /* the server's json_scan of it, -1: not scanned */
	char **meta_values; /* the scheme's metadata headers, one each (NULL: absent), or NULL */
	char **header_values; /* the endpoint's pass_headers, one each (NULL: absent), or NULL */
	struct delivery_opts opts;
	char *key; /* serialization key, NULL: none */
	char *unmatched; /* the [event] match term the payload did not meet, NULL: none */
	bool async;
	bool handed_over; /* sync until respond_within passed: answered 202 then */
	bool client_gone; /* its sender hung up before its answer */
	int attempt;
	bool replay; /* this attempt came from `hookd replay` */
	int retries_from; /* delivery_retries_from */
	bool attempt_ended, retry; /* delivery_set_attempt_end */
	int64_t retry_in_ms, next_attempt_ms;
	int64_t rowid; /* journal row, 0: none */
	struct header_copy {
		char *name, *value;
	} *headers; /* for the journal, credentials removed */
	size_t nheaders;
	bool shell; /* delivery_shed: body, environment and headers are the journal's */

	struct hook_outcome *results;
	size_t nresults;
	int64_t ms;
	struct outcome out;
};

/* a, sep (when not NUL) and b in one allocation: the per-delivery keys and
 * names, without a printf each. */
static char *join(const char *a, char sep, const char *b)
{
	size_t na = strlen(a), nb = strlen(b), ns = sep ? 1 : 0;
	char *s = xmalloc(na + ns + nb + 1);
	memcpy(s, a, na);
	if (sep)
		s[na] = sep;
	memcpy(s + na + ns, b, nb + 1);
	return s;
}

/* prefix + suffix into buf (len bytes); cut to fit, always terminated. */
static void concat(char *buf, size_t len, const char *prefix, const char *suffix)
{
	size_t np = strnlen(prefix, len - 1);
	memcpy(buf, prefix, np);
	size_t ns = strnlen(suffix, len - 1 - np);
	memcpy(buf + np, suffix, ns);
	buf[np + ns] = '\0';
}

/* A decimal, for log and environment values; buf holds >= 24 bytes. */
static const char *decimal(char *buf, long long v)
{
	char *p = buf + 23;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return p;
}

/* ---- the response --------------------------------------------------- */

static void json_field_str(struct strbuf *sb, const char *name, const char *v)
{
	sb_putc(sb, '"');
	sb_puts(sb, name);
	sb_puts(sb, "\":");
	if (v)
		sb_json_str(sb, v, strlen(v));
	else
		sb_puts(sb, "null");
}

char *response_json(const char *endpoint, const char *event, const char *id, const char *status,
                    const char *error)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 127);
	sb_putc(&sb, '{');
	json_field_str(&sb, "endpoint", endpoint);
	sb_putc(&sb, ',');
	json_field_str(&sb, "event", event);
	sb_putc(&sb, ',');
	json_field_str(&sb, "id", id);
	sb_putc(&sb, ',');
	json_field_str(&sb, "status", status);
	sb_puts(&sb, ",\"hooks\":[]");
	if (error) {
		sb_putc(&sb, ',');
		json_field_str(&sb, "error", error);
	}
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

char *delivery_response_json(const struct delivery *d, bool include_output)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 255);
	sb_putc(&sb, '{');
	json_field_str(&sb, "endpoint", d->ep->name);
	sb_putc(&sb, ',');
	json_field_str(&sb, "event", d->event);
	sb_putc(&sb, ',');
	json_field_str(&sb, "id", d->id);
	sb_putc(&sb, ',');
	json_field_str(&sb, "status", d->out.status);
	sb_puts(&sb, ",\"hooks\":[");
	/* Accepted, its hooks are still to run or running: none is over. */
	bool accepted = d->out.status && strcmp(d->out.status, "accepted") == 0;
	size_t nresults = accepted ? 0 : d->nresults;
	for (size_t i = 0; i < nresults; i++) {
		const struct hook_outcome *h = &d->results[i];
		if (i)
			sb_putc(&sb, ',');
		sb_putc(&sb, '{');
		json_field_str(&sb, "hook", h->rel);
		char num[24];
		sb_puts(&sb, ",\"exit\":");
		sb_puts(&sb, h->res.exit_code >= 0 ? decimal(num, h->res.exit_code) : "null");
		sb_putc(&sb, ',');
		json_field_str(&sb, "signal", h->res.signal ? signal_name(h->res.signal) : NULL);
		sb_puts(&sb, ",\"ms\":");
		sb_puts(&sb, decimal(num, (long long)h->res.ms));
		if (h->res.error) {
			sb_putc(&sb, ',');
			json_field_str(&sb, "error", h->res.error);
		}
		if (include_output) {
			sb_puts(&sb, ",\"output\":");
			sb_json_str(&sb, h->res.output, h->res.output_len);
		}
		sb_putc(&sb, '}');
	}
	sb_putc(&sb, ']');
	if (d->env_report.omitted) {
		char num[24];
		sb_puts(&sb, ",\"env_omitted\":");
		sb_puts(&sb, decimal(num, (long long)d->env_report.omitted));
	}
	if (d->out.error) {
		sb_putc(&sb, ',');
		json_field_str(&sb, "error", d->out.error);
	}
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

/*
 * The delivery's line. An async delivery's failed attempt says what comes
 * next: retry_in and next_attempt when hookd will try it again, else
 * final=true with the attempts it had (README "Logs and signals").
 */
void delivery_log(const struct delivery *d)
{
	char http[24], ms[24], hooks[24], omitted[24];
	char retry_in[24], next_attempt[40], attempts[24];
	bool ok = d->out.http >= 200 && d->out.http < 300;
	bool retry = d->attempt_ended && d->retry && !ok;
	bool final = d->attempt_ended && !d->retry && d->async && !ok;
	if (retry) {
		format_duration(d->retry_in_ms, retry_in, sizeof(retry_in));
		format_rfc3339_ms(d->next_attempt_ms, next_attempt, sizeof(next_attempt));
	}
	struct log_kv kv[] = {
		{"status", d->out.status},
		LOG_INT("http", decimal(http, d->out.http)),
		LOG_INT("ms", decimal(ms, (long long)d->ms)),
		LOG_INT("hooks", decimal(hooks, (long long)d->nresults)),
		{"mode", d->async ? "async" : NULL},
		LOG_BOOL("replay", d->replay ? "true" : NULL),
		{"retry_in", retry ? retry_in : NULL},
		{"next_attempt", retry ? next_attempt : NULL},
		LOG_BOOL("final", final ? "true" : NULL),
		LOG_INT("attempts", final ? decimal(attempts, d->attempt) : NULL),
		/* What its sender saw: the 202 of respond_within, or nothing. */
		{"client", d->client_gone ? "gone" : d->handed_over ? "accepted" : NULL},
		LOG_INT("env_omitted", d->env_report.omitted
		                               ? decimal(omitted, (long long)d->env_report.omitted)
		                               : NULL),
		{"error", d->out.error},
	};
	struct log_delivery who = delivery_who(d);
	log_about(ok ? LOG_LVL_INFO : LOG_LVL_WARN, "delivery", &who, kv, ARRAY_SIZE(kv));
}

/* ---- building a delivery -------------------------------------------- */

static void generate_id(char *buf, size_t len)
{
	unsigned char r[16];
	if (!crypto_random(r, sizeof(r))) {
		int64_t t = now_wall_ms();
		memcpy(r, &t, sizeof(t));
		memcpy(r + 8, &t, sizeof(t));
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* a version 4 UUID */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(buf, len,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
	         r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
	         r[14], r[15]);
}

/* With every scheme's metadata variables (scheme.h), whatever the
 * endpoint's: a payload never sets one. */
static const char *const metadata_names[] = {
	"EVENT", "ID", "ENDPOINT", "HOOK", "ATTEMPT", "REMOTE_ADDR", "RECEIVED_AT",
};

/*
 * What every hook's environment takes from the config alone, built once
 * rather than for each delivery: the reserved metadata names under the
 * prefix, and the base environment (pass_env from the daemon's own, or
 * the default PATH, after the hook user's HOME, USER, LOGNAME and SHELL).
 * Rebuilt when a config with another prefix or pass_env list comes
 * (compared by content, not by pointer, so a new config at an old address
 * is never mistaken for it), or another identity. hookd does not change
 * its own environment after start.
 */
static struct {
	char *prefix;
	char **pass_env;
	char **reserved; /* NULL-terminated */
	struct envlist base;
	struct envshare *shared; /* base, which each delivery's env starts with */
	struct hook_identity identity; /* all NULL: none known */
	bool stale;                    /* the identity changed since base was built */
} once;

void delivery_set_hook_identity(const struct hook_identity *id)
{
	hook_identity_free(&once.identity);
	if (id) {
		once.identity.user = id->user ? xstrdup(id->user) : NULL;
		once.identity.home = id->home ? xstrdup(id->home) : NULL;
		once.identity.shell = id->shell ? xstrdup(id->shell) : NULL;
	}
	once.stale = true;
}

static bool same_list(char **a, char **b)
{
	for (; a && b && *a && *b; a++, b++) {
		if (strcmp(*a, *b) != 0)
			return false;
	}
	return (!a || !*a) && (!b || !*b);
}

void delivery_cleanup(void)
{
	free(once.prefix);
	once.prefix = NULL;
	for (size_t i = 0; once.pass_env && once.pass_env[i]; i++)
		free(once.pass_env[i]);
	free(once.pass_env);
	once.pass_env = NULL;
	for (size_t i = 0; once.reserved && once.reserved[i]; i++)
		free(once.reserved[i]);
	free(once.reserved);
	once.reserved = NULL;
	envlist_free(&once.base);
	envshare_unref(once.shared);
	once.shared = NULL;
	hook_identity_free(&once.identity);
}

static void once_update(const struct config *cfg)
{
	if (!once.stale && once.prefix && strcmp(once.prefix, cfg->env_prefix) == 0 &&
	    same_list(once.pass_env, cfg->pass_env))
		return;
	free(once.prefix);
	once.prefix = xstrdup(cfg->env_prefix);
	for (size_t i = 0; once.pass_env && once.pass_env[i]; i++)
		free(once.pass_env[i]);
	free(once.pass_env);
	size_t n = 0;
	while (cfg->pass_env && cfg->pass_env[n])
		n++;
	once.pass_env = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		once.pass_env[i] = xstrdup(cfg->pass_env[i]);
	for (size_t i = 0; once.reserved && once.reserved[i]; i++)
		free(once.reserved[i]);
	free(once.reserved);
	n = ARRAY_SIZE(metadata_names);
	const struct scheme *s;
	for (size_t i = 0; (s = scheme_at(i)); i++)
		for (const struct scheme_meta *m = s->meta; m && m->var; m++)
			n++;
	once.reserved = xcalloc(n + 1, sizeof(char *));
	n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(metadata_names); i++)
		once.reserved[n++] = join(cfg->env_prefix, '\0', metadata_names[i]);
	for (size_t i = 0; (s = scheme_at(i)); i++)
		for (const struct scheme_meta *m = s->meta; m && m->var; m++)
			once.reserved[n++] = join(cfg->env_prefix, '\0', m->var);
	envlist_free(&once.base);
	envlist_init(&once.base);
	once.stale = false;
	/* What a login would set: tools look under HOME (git, ssh, kubectl,
	 * aws); pass_env may give other values. */
	const struct hook_identity *id = &once.identity;
	if (id->user) {
		envlist_add(&once.base, "USER", id->user);
		envlist_add(&once.base, "LOGNAME", id->user);
	}
	if (id->home)
		envlist_add(&once.base, "HOME", id->home);
	if (id->shell)
		envlist_add(&once.base, "SHELL", id->shell);
	bool have_path = false;
	for (char **p = cfg->pass_env; p && *p; p++) {
		const char *v = getenv(*p);
		if (!v)
			continue;
		envlist_add(&once.base, *p, v);
		if (strcmp(*p, "PATH") == 0)
			have_path = true;
	}
	if (!have_path)
		envlist_add(&once.base, "PATH", "/usr/local/bin:/usr/bin:/bin");
	/* Deliveries still waiting keep the one they started with. */
	envshare_unref(once.shared);
	once.shared = envshare_new(&once.base);
}

const char *delivery_hook_path(const struct config *cfg)
{
	once_update(cfg);
	for (size_t i = 0; i < once.base.n; i++) {
		if (strncmp(once.base.v[i], "PATH=", 5) == 0)
			return once.base.v[i] + 5;
	}
	return ""; /* once_update always adds one */
}

/* The environment: pass_env and metadata; the payload comes after. */
static void build_env_base(struct delivery *d)
{
	const struct config *cfg = d->cfg;
	once_update(cfg);
	envlist_init(&d->env);
	envlist_share(&d->env, once.shared);
	const char *pre = cfg->env_prefix;
	char name[ENV_META_NAME_MAX], ts[40];
	format_rfc3339_ms(d->received_ms, ts, sizeof(ts));
	struct {
		const char *suffix, *value;
	} meta[] = {
		{"EVENT", d->event}, {"ID", d->id}, {"ENDPOINT", d->ep->name},
		{"REMOTE_ADDR", d->remote_addr}, {"RECEIVED_AT", ts},
	};
	for (size_t i = 0; i < ARRAY_SIZE(meta); i++) {
		if (!meta[i].value)
			continue;
		concat(name, sizeof(name), pre, meta[i].suffix);
		envlist_add(&d->env, name, meta[i].value);
	}
	/* The sender's metadata headers, as its scheme names them. */
	const struct scheme_meta *sm = d->ep->scheme->meta;
	for (size_t i = 0; d->meta_values && sm[i].header; i++) {
		if (!d->meta_values[i])
			continue;
		concat(name, sizeof(name), pre, sm[i].var);
		envlist_add(&d->env, name, d->meta_values[i]);
	}
}

/* The values of the scheme's metadata headers, through get (a request's
 * or a journal row's headers; NULL: none). */
static void delivery_meta(struct delivery *d, const char *(*get)(void *ctx, const char *name),
                          void *ctx)
{
	const struct scheme_meta *sm = d->ep->scheme->meta;
	size_t n = 0;
	while (get && sm && sm[n].header)
		n++;
	if (n == 0)
		return;
	d->meta_values = xcalloc(n, sizeof(*d->meta_values));
	for (size_t i = 0; i < n; i++) {
		const char *v = get(ctx, sm[i].header);
		d->meta_values[i] = v ? xstrdup(v) : NULL;
	}
}

/* HOOK_HEADER_<NAME> for each pass_headers header the request had, after
 * the payload's variables: a payload key of that name gives way, as to
 * metadata, and one the request did not send is removed, so that the
 * variable is never the body's word. A value over FLATTEN_MAX_VALUE is left
 * out (counted in env_report.omitted), as a payload value would be. */
static void add_header_vars(struct delivery *d)
{
	char **names = d->ep->pass_headers;
	for (size_t i = 0; names && names[i] && d->header_values; i++) {
		char *var = xasprintf("%sHEADER_%s", d->cfg->env_prefix, names[i]);
		header_var_suffix(var + strlen(d->cfg->env_prefix) + strlen("HEADER_"));
		const char *v = d->header_values[i];
		if (v && strlen(v) <= FLATTEN_MAX_VALUE) {
			envlist_add(&d->env, var, v);
		} else {
			envlist_remove(&d->env, var);
			d->env_report.omitted += v != NULL;
		}
		free(var);
	}
}

void delivery_pass_headers(struct delivery *d, const char *(*get)(void *ctx, const char *name),
                           void *ctx)
{
	size_t n = 0;
	while (d->ep->pass_headers && d->ep->pass_headers[n])
		n++;
	if (n == 0)
		return;
	d->header_values = xcalloc(n, sizeof(*d->header_values));
	for (size_t i = 0; i < n; i++) {
		const char *v = get(ctx, d->ep->pass_headers[i]);
		d->header_values[i] = v ? xstrdup(v) : NULL;
	}
	if (!d->env_pending)
		add_header_vars(d);
}

/* Takes the variables of the scheme's credential fields back out of the
 * payload's: whichever leaf won the name, none of them is for a hook. */
static void drop_credential_fields(struct delivery *d)
{
	const char *const *f = d->ep->scheme->credential_fields;
	for (; f && *f; f++) {
		char key[64];
		if (strlen(*f) * 2 + 1 > sizeof(key) || env_key_normalize(*f, strlen(*f), key) == 0)
			continue;
		char *var = xasprintf("%s%s", d->cfg->env_prefix, key);
		envlist_remove(&d->env, var);
		free(var);
	}
}

/* How the payload is flattened: the config's prefix and this delivery's budget. */
static struct flatten_opts flatten_opts(const struct delivery *d)
{
	return (struct flatten_opts){
		.prefix = d->cfg->env_prefix,
		.reserved = (const char *const *)once.reserved,
		.max_vars = (size_t)d->opts.env_max_vars,
		.max_bytes = (size_t)d->opts.env_max_bytes,
		.array_max = (size_t)d->opts.env_array_max,
	};
}

/* The environment: pass_env, metadata, then the payload of root. */
static void build_env(struct delivery *d, json_object *root)
{
	build_env_base(d);
	if (root) {
		struct flatten_opts fo = flatten_opts(d);
		payload_flatten(root, &fo, &d->env, &d->env_report);
	}
	drop_credential_fields(d);
}

/*
 * What the environment left out, once, at warn: a hook that tests a
 * variable it did not get fails in ways that point nowhere near here
 * (README "Flattening the payload"). `hookd env` and `run` print it on
 * stderr too.
 */
static void env_report_log(const struct delivery *d)
{
	const struct flatten_report *r = &d->env_report;
	if (d->quiet || (!r->omitted && !r->collisions))
		return;
	char omitted[24], collisions[24];
	struct log_kv kv[] = {
		LOG_INT("env_omitted", r->omitted ? decimal(omitted, (long long)r->omitted) : NULL),
		{"omitted", r->omitted_names},
		LOG_INT("env_collisions",
		        r->collisions ? decimal(collisions, (long long)r->collisions) : NULL),
		{"collided", r->collided},
	};
	struct log_delivery who = delivery_who(d);
	log_about(LOG_LVL_WARN, "environment incomplete", &who, kv, ARRAY_SIZE(kv));
}

struct delivery *delivery_new(const struct delivery_params *p)
{
	struct delivery *d = xcalloc(1, sizeof(*d));
	json_object *root = p->root;
	bool lazy_parsed = false;
	d->scanned_big_numbers = p->scanned ? (long long)p->big_numbers : -1;
	d->cfg = config_ref(p->cfg);
	d->ep = p->ep;
	d->event = xstrdup(p->event);
	if (p->id && *p->id) {
		d->id = xstrdup(p->id);
	} else {
		char gen[40];
		generate_id(gen, sizeof(gen));
		d->id = xstrdup(gen);
		d->id_generated = true;
	}
	d->remote_addr = xstrdup(p->remote_addr ? p->remote_addr : "");
	/* A recovered or replayed delivery was received when it first came:
	 * HOOK_RECEIVED_AT says so. */
	d->received_ms = p->received_ms ? p->received_ms : now_wall_ms();
	d->body = xmalloc(p->body_len + 1);
	if (p->body_len) /* a shell from the journal's list has no body (NULL) */
		memcpy(d->body, p->body, p->body_len);
	d->body[p->body_len] = '\0';
	d->body_len = p->body_len;
	delivery_meta(d, p->header, p->header_ctx);
	d->attempt = p->attempt ? p->attempt : 1;
	d->replay = p->replay;
	d->quiet = p->quiet;
	d->retries_from = p->retries_from > 0 && p->retries_from <= d->attempt ? p->retries_from : 1;
	d->rowid = p->rowid;
	config_delivery_opts(p->cfg, p->ep, p->event, &d->opts);
	/* A journaled one is async whatever its config says now; run and env
	 * are always the synchronous path. */
	d->async = p->rowid ? true : !p->sync && d->opts.mode == MODE_ASYNC;
	if (p->lazy && !root && (d->opts.serialize || d->opts.match) && p->body_len) {
		/* The key, or what match tests, is in the payload: the tree is
		 * needed now (README "[event NAME]": what match costs). */
		root = d->root = payload_parse_json((const char *)p->body, p->body_len, NULL, 0);
		lazy_parsed = true;
	}
	if (d->opts.serialize && p->key_given) {
		d->key = p->key ? xstrdup(p->key) : NULL;
	} else if (d->opts.serialize) {
		char *v = root ? payload_get_path(root, d->opts.serialize) : NULL;
		d->key = xasprintf("%s\x1f%s", d->opts.serialize_scope ? d->opts.serialize_scope : "",
		                   v ? v : "");
		free(v);
	}
	if (d->opts.match) {
		long miss = match_eval(d->opts.match, root);
		if (miss >= 0) {
			struct strbuf sb;
			sb_init(&sb);
			sb_puts(&sb, "the payload does not match ");
			match_format_term(&sb, &d->opts.match->v[miss]);
			d->unmatched = sb_steal(&sb);
		}
	}
	if (p->lazy) {
		d->env_pending = true;
		if (!lazy_parsed)
			d->root = root ? json_object_get(root) : NULL;
		d->parse_body = !root;
	} else {
		build_env(d, root);
		env_report_log(d);
	}
	return d;
}

bool delivery_build_env(struct delivery *d, char *err, size_t errlen)
{
	if (!d->env_pending)
		return true;
	d->env_pending = false;
	if (d->parse_body && !d->root && d->scanned_big_numbers >= 0) {
		/* json_scan accepted this body: its variables come straight
		 * from the text, without a tree, unless an object in it has a
		 * key twice (json-c's tree says which value wins). */
		build_env_base(d);
		struct flatten_opts fo = flatten_opts(d);
		if (payload_flatten_text((const char *)d->body, d->body_len, &fo, &d->env,
		                         &d->env_report)) {
			drop_credential_fields(d);
			add_header_vars(d);
			env_report_log(d);
			return true;
		}
		envlist_free(&d->env);
	}
	if (d->parse_body && !d->root) {
		/* The tree, for a key given twice. A parse that fails is not
		 * expected: json_scan accepted this body, and json-c builds
		 * whatever it accepts (fuzz_jsonscan holds them to that). */
		d->root = d->scanned_big_numbers >= 0
		                  ? payload_parse_scanned((const char *)d->body, d->body_len,
		                                          (size_t)d->scanned_big_numbers, err, errlen)
		                  : payload_parse_json((const char *)d->body, d->body_len, err, errlen);
		if (!d->root)
			return false;
	}
	build_env(d, d->root);
	add_header_vars(d);
	env_report_log(d);
	json_object_put(d->root);
	d->root = NULL;
	return true;
}

size_t delivery_env_omitted(const struct delivery *d)
{
	return d->env_report.omitted;
}

static void free_results(struct delivery *d)
{
	for (size_t i = 0; i < d->nresults; i++) {
		free(d->results[i].rel);
		free(d->results[i].res.error);
	}
	free(d->results);
	d->results = NULL;
	d->nresults = 0;
}

/* What a journaled delivery can read back from its row: the body, what the
 * environment is built from (payload, metadata and pass_headers values),
 * the environment, and the headers kept for the journal. */
static void free_payload(struct delivery *d)
{
	envlist_free(&d->env);
	flatten_report_free(&d->env_report);
	json_object_put(d->root);
	d->root = NULL;
	for (size_t i = 0; i < d->nheaders; i++) {
		free(d->headers[i].name);
		free(d->headers[i].value);
	}
	free(d->headers);
	d->headers = NULL;
	d->nheaders = 0;
	for (size_t i = 0; d->header_values && d->ep->pass_headers && d->ep->pass_headers[i]; i++)
		free(d->header_values[i]);
	free(d->header_values);
	d->header_values = NULL;
	for (size_t i = 0; d->meta_values && d->ep->scheme->meta[i].header; i++)
		free(d->meta_values[i]);
	free(d->meta_values);
	d->meta_values = NULL;
	free(d->body);
	d->body = NULL;
	d->body_len = 0;
}

void delivery_shed(struct delivery *d)
{
	if (!d->rowid || d->shell)
		return;
	free_payload(d);
	/* The attempt's results are in the journal and the log already. */
	free_results(d);
	d->env_pending = false;
	d->parse_body = false;
	d->shell = true;
}

bool delivery_is_shell(const struct delivery *d)
{
	return d->shell;
}

void delivery_free(struct delivery *d)
{
	if (!d)
		return;
	free_results(d);
	free_payload(d);
	free(d->out.error);
	free(d->key);
	free(d->unmatched);
	free(d->remote_addr);
	free(d->id);
	free(d->event);
	config_unref(d->cfg);
	free(d);
}


void delivery_keep_header(struct delivery *d, const char *name, const char *value)
{
	d->headers = xrealloc(d->headers, (d->nheaders + 1) * sizeof(*d->headers));
	d->headers[d->nheaders].name = xstrdup(name);
	d->headers[d->nheaders].value = xstrdup(value);
	d->nheaders++;
}

/* ---- what the delivery is ------------------------------------------- */

struct config *delivery_config(const struct delivery *d)
{
	return d->cfg;
}

const struct endpoint *delivery_endpoint(const struct delivery *d)
{
	return d->ep;
}

const char *delivery_event(const struct delivery *d)
{
	return d->event;
}

struct log_delivery delivery_who(const struct delivery *d)
{
	return (struct log_delivery){d->ep->name, d->event, d->id, d->attempt};
}

const char *delivery_id(const struct delivery *d)
{
	return d->id;
}

bool delivery_id_generated(const struct delivery *d)
{
	return d->id_generated;
}

bool delivery_async(const struct delivery *d)
{
	return d->async;
}

void delivery_hand_over(struct delivery *d)
{
	d->async = true;
	d->handed_over = true;
}

bool delivery_handed_over(const struct delivery *d)
{
	return d->handed_over;
}

void delivery_set_client_gone(struct delivery *d)
{
	d->client_gone = true;
}

bool delivery_client_gone(const struct delivery *d)
{
	return d->client_gone;
}

/* Only a sync attempt's outcome is its sender's answer: an async one's
 * (handed over at respond_within too) was answered 202 before it ran. */
bool delivery_answer_lost(const struct delivery *d)
{
	return d->client_gone && !d->async;
}

const struct delivery_opts *delivery_opts(const struct delivery *d)
{
	return &d->opts;
}

const char *delivery_key(const struct delivery *d)
{
	return d->key;
}

const char *delivery_unmatched(const struct delivery *d)
{
	return d->unmatched;
}

const unsigned char *delivery_body(const struct delivery *d, size_t *len)
{
	*len = d->body_len;
	return d->body;
}

struct envlist *delivery_env(struct delivery *d)
{
	return &d->env;
}

int64_t delivery_rowid(const struct delivery *d)
{
	return d->rowid;
}

void delivery_take_key(struct delivery *d, const struct delivery *from)
{
	free(d->key);
	d->key = from->key ? xstrdup(from->key) : NULL;
}

void delivery_set_rowid(struct delivery *d, int64_t rowid)
{
	d->rowid = rowid;
}

/* ---- the attempt: results and outcome -------------------------------- */

int delivery_attempt(const struct delivery *d)
{
	return d->attempt;
}

void delivery_set_attempt(struct delivery *d, int attempt)
{
	/* A retry is not the replay; it is retried or final on its own. */
	if (attempt != d->attempt)
		d->replay = false;
	d->attempt = attempt;
}

bool delivery_replay(const struct delivery *d)
{
	return d->replay;
}

int delivery_retries_from(const struct delivery *d)
{
	return d->retries_from;
}

void delivery_set_attempt_end(struct delivery *d, bool retry, int64_t retry_in_ms,
                              int64_t next_attempt_ms)
{
	d->attempt_ended = true;
	d->retry = retry;
	d->retry_in_ms = retry_in_ms;
	d->next_attempt_ms = next_attempt_ms;
}

/* Its 4 KiB output buffer is not zeroed: output_len says how much of it
 * counts. */
struct hook_outcome *delivery_add_result(struct delivery *d, const char *rel)
{
	d->results = xrealloc(d->results, (d->nresults + 1) * sizeof(*d->results));
	struct hook_outcome *h = &d->results[d->nresults++];
	memset(&h->res, 0, offsetof(struct hook_result, output));
	h->res.output_len = 0;
	h->rel = rel ? xstrdup(rel) : NULL;
	return h;
}

struct hook_outcome *delivery_last_result(struct delivery *d)
{
	return d->nresults ? &d->results[d->nresults - 1] : NULL;
}

void delivery_set_ms(struct delivery *d, int64_t ms)
{
	d->ms = ms;
}

int64_t delivery_ms(const struct delivery *d)
{
	return d->ms;
}

const struct outcome *delivery_outcome(const struct delivery *d)
{
	return &d->out;
}

void delivery_set_outcome(struct delivery *d, int http, const char *status, char *error)
{
	d->out.http = http;
	d->out.status = status;
	free(d->out.error);
	d->out.error = error;
}

void delivery_set_retry_after(struct delivery *d, int seconds)
{
	d->out.retry_after = seconds;
}

void delivery_reset_attempt(struct delivery *d)
{
	free_results(d);
	free(d->out.error);
	memset(&d->out, 0, sizeof(d->out));
	/* The replay mark stays: an attempt whose start was lost begins again
	 * as the same attempt (dispatch_run.c job_begin_later), still the
	 * replay; a retry's new number clears it (delivery_set_attempt). */
	d->attempt_ended = d->retry = false;
}

size_t delivery_env_push_hook(struct delivery *d, const char *rel)
{
	char name[ENV_META_NAME_MAX], attempt[24];
	size_t mark = d->env.n;
	concat(name, sizeof(name), d->cfg->env_prefix, "HOOK");
	envlist_add(&d->env, name, rel);
	concat(name, sizeof(name), d->cfg->env_prefix, "ATTEMPT");
	envlist_add(&d->env, name, decimal(attempt, d->attempt));
	return mark;
}

void delivery_env_pop(struct delivery *d, size_t mark)
{
	while (d->env.n > mark) {
		d->env.n--;
		d->env.bytes -= strlen(d->env.v[d->env.n]) + 1;
		free(d->env.v[d->env.n]);
		d->env.v[d->env.n] = NULL;
	}
}

/* ---- the journal's record of it -------------------------------------- */

void delivery_journal_new(const struct delivery *d, struct journal_new *jn,
                          struct journal_header **hdrs)
{
	*hdrs = xcalloc(d->nheaders ? d->nheaders : 1, sizeof(**hdrs));
	for (size_t i = 0; i < d->nheaders; i++) {
		(*hdrs)[i].name = d->headers[i].name;
		(*hdrs)[i].value = d->headers[i].value;
	}
	*jn = (struct journal_new){
		.endpoint = d->ep->name,
		.delivery_id = d->id,
		.event = d->event,
		.remote_addr = d->remote_addr,
		.async = d->async,
		.received_ms = d->received_ms,
		.headers = *hdrs,
		.nheaders = d->nheaders,
		.body = d->body,
		.body_len = d->body_len,
	};
}

struct journal_hook *delivery_journal_hooks(const struct delivery *d, size_t *n)
{
	struct journal_hook *hooks = xcalloc(d->nresults ? d->nresults : 1, sizeof(*hooks));
	for (size_t i = 0; i < d->nresults; i++) {
		const struct hook_outcome *h = &d->results[i];
		hooks[i].hook = h->rel;
		hooks[i].exit_code = h->res.exit_code;
		hooks[i].signal = h->res.signal ? signal_name(h->res.signal) : NULL;
		hooks[i].ms = h->res.ms;
		hooks[i].error = h->res.error;
		hooks[i].output = h->res.output;
		hooks[i].output_len = h->res.output_len;
	}
	*n = d->nresults;
	return hooks;
}
