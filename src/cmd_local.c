/*
 * The commands that work without the daemon, on this machine's config and
 * hooks: `hookd run` (one delivery through the real dispatcher, the hook's
 * output passed through), `hookd env` (the environment a hook would get)
 * and `hookd check` (the config, TLS pair and hooks.d, validated and
 * listed).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "command.h"
#include "config.h"
#include "dispatch.h"
#include "fdlimit.h"
#include "hookuser.h"
#include "log.h"
#include "payload.h"
#include "preflight.h"
#include "privdrop.h"
#include "route.h"
#include "runner.h"
#include "tls.h"
#include "util.h"

/* run_as_resolve for the one-shot commands: an unknown user or group is
 * printed, cfg released, and the caller exits 2. */
static bool run_as_or_fail(struct config *cfg, struct run_as *ra)
{
	char err[1024];
	if (run_as_resolve(cfg, ra, err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "%s\n", err);
	config_unref(cfg);
	return false;
}

/* hook_user_resolve, the same way. */
static bool hook_user_or_fail(struct config *cfg, struct hook_user *hu)
{
	char err[1024];
	if (hook_user_resolve(cfg, hu, err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "%s\n", err);
	config_unref(cfg);
	return false;
}

/* ---- run and env ---------------------------------------------------- */

/* The uid a hook started from here runs as without hook_user: `user`'s when
 * run as root with one (run drops to it, as the daemon would), else ours. */
static uid_t local_uid(const struct run_as *ra)
{
	return geteuid() == 0 && ra->set ? ra->uid : geteuid();
}

/* Who a hook started from here runs as, resolved and installed as under the
 * daemon; false after the words on stderr (cfg released, as above). */
static bool local_identity_or_fail(struct config *cfg, struct run_as *ra, struct hook_user *hu)
{
	if (!run_as_or_fail(cfg, ra))
		return false;
	if (!hook_user_or_fail(cfg, hu)) {
		free(ra->name);
		return false;
	}
	hook_identity_install(hu, local_uid(ra));
	return true;
}

static unsigned char *read_all(const char *path, size_t *len, size_t max)
{
	FILE *f = path && strcmp(path, "-") != 0 ? fopen(path, "rb") : stdin;
	if (!f)
		return NULL;
	struct strbuf sb;
	sb_init(&sb);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		sb_append(&sb, buf, n);
		if (sb.len > max)
			break;
	}
	bool err = ferror(f);
	if (f != stdin)
		fclose(f);
	if (err) {
		sb_free(&sb);
		return NULL;
	}
	*len = sb.len;
	return (unsigned char *)sb_steal(&sb);
}

/* Builds the delivery `run` and `env` work on; exits 2 on bad input. */
static struct delivery *local_delivery(const struct options *o, struct config *cfg)
{
	if (o->nargs < 1)
		exit(usage_error("%s needs an EVENT", o->command));
	if (o->nargs > 2)
		exit(usage_error("too many arguments for %s", o->command));
	const char *event = o->args[0];
	if (!event_name_valid(event, strlen(event)))
		exit(usage_error("invalid event name '%s'", event));
	const struct endpoint *ep = o->endpoint ? config_endpoint_by_name(cfg, o->endpoint)
	                                        : &cfg->endpoints[0];
	if (!ep)
		exit(usage_error("no endpoint named '%s'", o->endpoint));
	const char *file = o->nargs > 1 ? o->args[1] : NULL;
	size_t len = 0;
	unsigned char *body = read_all(file, &len, cfg->max_body);
	if (!body) {
		fprintf(stderr, "hookd: cannot read %s: %s\n", file ? file : "stdin", strerror(errno));
		exit(EXIT_USAGE);
	}
	if (len > cfg->max_body) {
		fprintf(stderr, "hookd: %s: payload larger than max_body\n", file ? file : "stdin");
		free(body);
		config_unref(cfg);
		exit(EXIT_USAGE);
	}
	char err[256];
	/* As the server takes it: an empty body is no payload where the
	 * endpoint's event is fixed (README "Configuration"). */
	json_object *root = len == 0 && ep->fixed_event
	                            ? json_object_new_object()
	                            : payload_parse_json((const char *)body, len, err, sizeof(err));
	if (!root) {
		fprintf(stderr, "hookd: %s: %s\n", file ? file : "stdin", err);
		free(body);
		config_unref(cfg);
		exit(EXIT_USAGE);
	}
	struct delivery_params dp = {
		.cfg = cfg, .ep = ep, .event = event, .remote_addr = "", .body = body, .body_len = len,
		.root = root,
		.sync = true, /* run and env are always the synchronous path */
	};
	struct delivery *d = delivery_new(&dp);
	json_object_put(root);
	free(body);
	return d;
}

/* The hook's output, on stderr as it comes (stdout is the answer's). */
static void output_to_stderr(const char *buf, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(STDERR_FILENO, buf + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

struct run_state {
	struct event_base *base;
	bool done;
	int http;
	char *json;
};

static void on_run_done(struct delivery *d, void *arg)
{
	struct run_state *rs = arg;
	rs->done = true;
	rs->http = delivery_outcome(d)->http;
	rs->json = delivery_response_json(d, delivery_config(d)->include_output);
	/* The SIGCHLD handler would keep the loop alive for ever. */
	event_base_loopexit(rs->base, NULL);
}

int cmd_run(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	log_setup((enum log_format)cfg->log_format);
	struct run_as ra;
	struct hook_user hu;
	if (!local_identity_or_fail(cfg, &ra, &hu))
		return EXIT_USAGE;
	/* The payload file is read as the one who runs this; then, run as
	 * root with `user =`, the hook runs as that user, as it would under
	 * the daemon: what this shows is what a delivery would do. */
	struct delivery *d = local_delivery(o, cfg);
	int dropped = geteuid() == 0 && ra.set ? become_user(&ra, &hu) : settle_hook_caps(&hu);
	free(ra.name);
	if (dropped < 0) {
		delivery_free(d);
		config_unref(cfg);
		hook_user_free(&hu);
		return 1;
	}
	struct event_base *base = event_base_new();
	runner_init(base);
	runner_set_hook_user(&hu);
	runner_set_output_sink(output_to_stderr);
	struct dispatcher *ds = dispatcher_new(base, cfg, NULL);
	struct run_state rs = {.base = base};
	dispatch_submit(ds, d, on_run_done, &rs);
	if (!rs.done)
		event_base_dispatch(base);
	int rc = rs.http >= 200 && rs.http < 300 ? 0 : 1;
	if (rs.json)
		printf("%s\n", rs.json);
	free(rs.json);
	dispatcher_free(ds);
	runner_shutdown();
	route_cache_clear();
	event_base_free(base);
	config_unref(cfg);
	hook_user_free(&hu);
	return rc;
}

/* NAME=value, the value shell-quoted as $'...' when it holds a control
 * character, so the output can be read back by a shell. */
static void print_env_entry(const char *entry)
{
	const char *eq = strchr(entry, '=');
	const char *v = eq + 1;
	bool plain = true;
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			plain = false;
	}
	if (plain) {
		puts(entry);
		return;
	}
	fwrite(entry, 1, (size_t)(v - entry), stdout);
	fputs("$'", stdout);
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		switch (c) {
		case '\n': fputs("\\n", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\'': fputs("\\'", stdout); break;
		default:
			if (c < 0x20 || c == 0x7f)
				printf("\\x%02x", c);
			else
				putchar(c);
		}
	}
	fputs("'\n", stdout);
}

int cmd_env(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	struct run_as ra;
	struct hook_user hu;
	if (!local_identity_or_fail(cfg, &ra, &hu))
		return EXIT_USAGE;
	free(ra.name);
	hook_user_free(&hu);
	struct delivery *d = local_delivery(o, cfg);
	struct route r;
	memset(&r, 0, sizeof(r));
	route_resolve(delivery_endpoint(d)->hooks_dir, delivery_event(d), &r);
	struct envlist *env = delivery_env(d);
	char name[ENV_META_NAME_MAX];
	snprintf(name, sizeof(name), "%sHOOK", cfg->env_prefix);
	envlist_add(env, name, r.nhooks ? r.hooks[0].rel : (r.name ? r.name : ""));
	snprintf(name, sizeof(name), "%sATTEMPT", cfg->env_prefix);
	envlist_add(env, name, "1");
	route_free(&r);
	route_cache_clear();
	envlist_sort(env);
	for (size_t i = 0; i < env->n; i++)
		print_env_entry(env->v[i]);
	delivery_free(d);
	config_unref(cfg);
	return 0;
}

/* ---- check ---------------------------------------------------------- */

/* What check found: an error will fail deliveries (exit 2); a warning may
 * (exit 2 with --strict). Printed in place, under what it is about. */
static struct {
	int errors, warnings;
} findings;

static void finding(bool error, const char *indent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finding(bool error, const char *indent, const char *fmt, ...)
{
	if (error)
		findings.errors++;
	else
		findings.warnings++;
	printf("%s%s: ", indent, error ? "error" : "warning");
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Each hook of a route, as execve would see it (preflight.h), and by the
 * mode bits for whom the hooks run as (hu: hook_user, or `user`; NULL:
 * hookd's own, which preflight is). */
static void check_route_hooks(const struct route *r, const char *hook_path,
                              const struct hook_user *hu)
{
	for (size_t h = 0; h < r->nhooks; h++) {
		char why[512];
		enum preflight p = preflight_hook(r->hooks[h].path, hook_path, why, sizeof(why));
		if (p != PREFLIGHT_OK)
			finding(p == PREFLIGHT_ERROR, "    ", "%s: %s", r->hooks[h].rel, why);
		else if (hook_user_denied_why(hu, r->hooks[h].path, why, sizeof(why)))
			finding(true, "    ", "%s: %s", r->hooks[h].rel, why);
	}
}

static void workdir_finding(const char *why, void *ctx)
{
	(void)ctx;
	finding(true, "", "%s", why);
}

static void check_secret_file(const struct endpoint *ep)
{
	char why[1024];
	if (ep->secret_file &&
	    preflight_secret_file(ep->secret_file, why, sizeof(why)) != PREFLIGHT_OK)
		finding(false, "  ", "%s", why);
}

/* The exit status for what was found, and a line on stderr saying why. */
static int check_status(bool strict)
{
	int bad = findings.errors + (strict ? findings.warnings : 0);
	if (bad)
		fprintf(stderr, "hookd: check: %d error%s, %d warning%s%s\n", findings.errors,
		        findings.errors == 1 ? "" : "s", findings.warnings,
		        findings.warnings == 1 ? "" : "s", strict ? " (--strict: warnings fail)" : "");
	return bad ? EXIT_USAGE : 0;
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_routes(const char *hooks_dir, const char *hook_path,
                         const struct hook_user *hu)
{
	DIR *dir = opendir(hooks_dir);
	if (!dir) {
		finding(true, "  ", "hooks dir %s: %s", hooks_dir, strerror(errno));
		return;
	}
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	while ((e = readdir(dir))) {
		const char *nm = e->d_name;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		if (!route_name_skipped(nm) && !event_name_valid(nm, strlen(nm)) &&
		    strcmp(nm, "_default") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(dir);
	if (n > 1) /* qsort(NULL, 0) is undefined */
		qsort(names, n, sizeof(*names), strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		const char *why = route_skip_reason(names[i]);
		if (why) {
			/* Never a route: one may expect it to run, so say why not. */
			printf("  skipped %s: %s, never a route\n", names[i], why);
			free(names[i]);
			continue;
		}
		struct route r;
		memset(&r, 0, sizeof(r));
		route_resolve(hooks_dir, names[i], &r);
		if (r.name && strcmp(r.name, names[i]) == 0) {
			if (r.error) {
				printf("  route %s: ", names[i]);
				finding(true, "", "%s", r.error);
			} else {
				printf("  route %s:", names[i]);
				for (size_t h = 0; h < r.nhooks; h++)
					printf(" %s", r.hooks[h].rel);
				if (r.nhooks == 0)
					printf(" (empty directory)");
				printf("\n");
				for (size_t k = 0; k < r.nskipped; k++)
					finding(false, "    ", "skipped, %s: %s", r.skipped_why[k],
					        r.skipped[k]);
				check_route_hooks(&r, hook_path, hu);
			}
		}
		route_free(&r);
		free(names[i]);
	}
	free(names);
}

/* The per-delivery settings an [event] section sets itself (its `set`
 * bits), on one line; nothing when it sets none but match. */
static void print_opts_set(const char *event, const struct delivery_opts *o)
{
	struct strbuf sb;
	sb_init(&sb);
	char d[32];
	if (o->set & OPT_TIMEOUT) {
		format_duration(o->timeout_ms, d, sizeof(d));
		sb_printf(&sb, " timeout=%s", d);
	}
	if (o->set & OPT_MODE)
		sb_printf(&sb, " mode=%s", o->mode == MODE_ASYNC ? "async" : "sync");
	if (o->set & OPT_RETRIES)
		sb_printf(&sb, " retries=%d", o->retries);
	if (o->set & OPT_RETRY_BACKOFF) {
		format_duration(o->retry_backoff_ms, d, sizeof(d));
		sb_printf(&sb, " retry_backoff=%s", d);
	}
	if (o->set & OPT_SERIALIZE)
		sb_printf(&sb, " serialize=%s", o->serialize ? o->serialize : "");
	if (o->set & OPT_RESPOND_WITHIN) {
		format_duration(o->respond_within_ms, d, sizeof(d));
		sb_printf(&sb, " respond_within=%s", d);
	}
	if (o->set & OPT_ENV_MAX_VARS)
		sb_printf(&sb, " env_max_vars=%d", o->env_max_vars);
	if (o->set & OPT_ENV_MAX_BYTES)
		sb_printf(&sb, " env_max_bytes=%llu", (unsigned long long)o->env_max_bytes);
	if (o->set & OPT_ENV_ARRAY_MAX)
		sb_printf(&sb, " env_array_max=%d", o->env_array_max);
	if (o->set & OPT_WORKDIR)
		sb_printf(&sb, " workdir=%s", o->workdir ? o->workdir : "(the hook's directory)");
	if (sb.len)
		printf("event %s:%s\n", event, sb.buf);
	sb_free(&sb);
}

/* The [event] sections: what each sets, its match terms, and the exit
 * statuses that skip: what turns a delivery away without running (or
 * finishing) its hooks. */
static void print_event_rules(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nevents; i++) {
		print_opts_set(cfg->events[i].name, &cfg->events[i].opts);
		const struct match_rule *m = cfg->events[i].opts.match;
		if (!m)
			continue;
		struct strbuf sb;
		sb_init(&sb);
		match_format(&sb, m);
		printf("event %s: match %s\n", cfg->events[i].name, sb.buf);
		sb_free(&sb);
	}
	for (size_t i = 0; i < cfg->status.n; i++)
		if (cfg->status.v[i].skip)
			printf("status %d = skip\n", cfg->status.v[i].exit_code);
}

/* A sender that waits only so long: when hookd answers it 202 and goes on
 * (respond_within), or why it does not. */
static void print_respond_within(const struct config *cfg, const struct endpoint *ep,
                                 const struct delivery_opts *dopts)
{
	char d[32];
	if (dopts->respond_within_ms > 0) {
		format_duration(dopts->respond_within_ms, d, sizeof(d));
		printf("  respond_within %s%s\n", d,
		       dopts->set & OPT_RESPOND_WITHIN ? "" : " (the scheme's default)");
	} else if (!cfg->state_dir && !cfg->journal_url && ep->scheme->respond_within_ms > 0 &&
	           !(dopts->set & OPT_RESPOND_WITHIN)) {
		format_duration(ep->scheme->respond_within_ms, d, sizeof(d));
		printf("  note: respond_within is off without state_dir: a %s sender that waits "
		       "longer than its own timeout sees a failure (the default would answer 202 "
		       "after %s and go on)\n", scheme_name(ep->scheme), d);
	}
}

/* The first endpoint before cfg->endpoints[i] with the same hooks dir:
 * its routes, and what is wrong with them, are listed once, under it. */
static const struct endpoint *hooks_dir_listed(const struct config *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->endpoints[j].hooks_dir, cfg->endpoints[i].hooks_dir) == 0)
			return &cfg->endpoints[j];
	return NULL;
}

int cmd_check(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	char err[1024];
	struct run_as ra;
	if (!run_as_or_fail(cfg, &ra))
		return EXIT_USAGE;
	struct hook_user hu;
	if (!hook_user_or_fail(cfg, &hu)) {
		free(ra.name);
		return EXIT_USAGE;
	}
	/* Whom the hooks' permissions are judged for: hook_user, else `user`
	 * when hookd will drop to it (checked as root, every hook would pass);
	 * not `user = root`: the hooks run as root, whom the mode bits do not
	 * bind as they bind another. */
	struct hook_user as_user = {0};
	bool unjudged = !hu.set && ra.set && ra.uid != 0 && geteuid() == 0 &&
	                hook_user_of_account(ra.name, ra.uid, ra.gid, &as_user) < 0;
	const struct hook_user *judged = hu.set ? &hu : as_user.set ? &as_user : NULL;
	struct ssl_ctx_st *tls = NULL;
	if (!tls_from_config(cfg, &tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		free(ra.name);
		hook_user_free(&hu);
		hook_user_free(&as_user);
		config_unref(cfg);
		return EXIT_USAGE;
	}
	printf("config %s: ok\n", o->config);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		printf("warning: %s\n", cfg->warnings[i]);
	printf("listen %s%s\n", cfg->listen, tls ? " (https)" : "");
	if (cfg->admin_listen)
		printf("admin %s%s%s%s%s\n", cfg->admin_listen,
		       cfg->admin_token_file ? " token_file=" : "",
		       cfg->admin_token_file ? cfg->admin_token_file : "",
		       cfg->admin_readonly_token_file ? " readonly_token_file=" : "",
		       cfg->admin_readonly_token_file ? cfg->admin_readonly_token_file : "");
	if (cfg->journal_url) {
		char lease[32];
		format_duration(cfg->lease_ms, lease, sizeof(lease));
		/* The connection string holds no password (refused at load). */
		printf("journal postgresql %s instance=%s lease=%s%s%s\n", cfg->journal_url,
		       cfg->instance, lease, cfg->journal_password_file ? " password_file=" : "",
		       cfg->journal_password_file ? cfg->journal_password_file : "");
	} else if (cfg->state_dir) {
		printf("journal sqlite %s/journal.db\n", cfg->state_dir);
	}
	if (hu.set)
		printf("hook_user %s uid=%u gid=%u\n", hu.name, (unsigned)hu.uid, (unsigned)hu.gid);
	if (unjudged)
		finding(false, "", "cannot list the groups of user %s: the hooks' permissions are "
		        "judged as root's", ra.name);
	free(ra.name);
	if (tls) {
		struct tls_cert_info ti;
		tls_ctx_info(tls, &ti);
		printf("tls cert=%s key=%s subject=%s serial=%s not_after=%s%s\n", cfg->tls_cert,
		       cfg->tls_key, ti.subject, ti.serial, ti.not_after,
		       ti.expired ? " (expired)" : "");
		tls_ctx_free(tls);
	}
	print_event_rules(cfg);
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint *ep = &cfg->endpoints[i];
		printf("endpoint %s: POST %s scheme=%s hooks_dir=%s secrets=%zu%s%s", ep->name,
		       ep->path, scheme_name(ep->scheme), ep->hooks_dir, ep->nsecrets,
		       ep->fixed_event ? " event=" : "", ep->fixed_event ? ep->fixed_event : "");
		if (ep->token_header || ep->token_prefix) {
			/* As the token scheme reads them: Bearer only on Authorization. */
			const char *hdr = ep->token_header ? ep->token_header : "Authorization";
			const char *pre = ep->token_prefix ? ep->token_prefix
			                  : strcasecmp(hdr, "Authorization") == 0 ? "Bearer" : "";
			printf(" token_header=%s token_prefix=\"%s\"", hdr, pre);
		}
		printf("\n");
		/* What its events get: the endpoint's settings over the server's,
		 * and [event _default]'s over both; an [event] section of its own
		 * (printed above) may set others. */
		struct delivery_opts dopts;
		config_delivery_opts(cfg, ep, NULL, &dopts);
		printf("  env max_vars=%d max_bytes=%llu array_max=%d\n", dopts.env_max_vars,
		       (unsigned long long)dopts.env_max_bytes, dopts.env_array_max);
		printf("  workdir %s\n", dopts.workdir ? dopts.workdir : "(the hook's directory)");
		print_respond_within(cfg, ep, &dopts);
		check_secret_file(ep);
		const struct endpoint *first = hooks_dir_listed(cfg, i);
		if (first)
			printf("  routes: as endpoint %s (the same hooks_dir)\n", first->name);
		else
			print_routes(ep->hooks_dir, delivery_hook_path(cfg), judged);
	}
	preflight_workdirs(cfg, workdir_finding, NULL);
	if (!fdlimit_check(cfg, err, sizeof(err)))
		finding(false, "", "%s", err);
	hook_user_free(&hu);
	hook_user_free(&as_user);
	config_unref(cfg);
	return check_status(o->strict);
}
