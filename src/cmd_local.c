/*
 * The commands that work without the daemon, on this machine's config and
 * hooks: `hookd run` (one delivery through the real dispatcher, the hook's
 * output passed through), `hookd env` (the environment a hook would get)
 * and `hookd check` (the config, TLS pair and hooks.d, validated and
 * listed).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "command.h"
#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "payload.h"
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

/* ---- run and env ---------------------------------------------------- */

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
	json_object *root = payload_parse_json((const char *)body, len, err, sizeof(err));
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
	if (!run_as_or_fail(cfg, &ra))
		return EXIT_USAGE;
	/* The payload file is read as the one who runs this; then, run as
	 * root with `user =`, the hook runs as that user, as it would under
	 * the daemon: what this shows is what a delivery would do. */
	struct delivery *d = local_delivery(o, cfg);
	int dropped = geteuid() == 0 && ra.set ? become_user(&ra) : 0;
	free(ra.name);
	if (dropped < 0) {
		delivery_free(d);
		config_unref(cfg);
		return 1;
	}
	struct event_base *base = event_base_new();
	runner_init(base);
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

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_routes(const char *hooks_dir)
{
	DIR *dir = opendir(hooks_dir);
	if (!dir) {
		printf("  warning: hooks dir %s: %s\n", hooks_dir, strerror(errno));
		return;
	}
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	while ((e = readdir(dir))) {
		if (!event_name_valid(e->d_name, strlen(e->d_name)) && strcmp(e->d_name, "_default") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		struct route r;
		memset(&r, 0, sizeof(r));
		route_resolve(hooks_dir, names[i], &r);
		if (r.name && strcmp(r.name, names[i]) == 0) {
			if (r.error) {
				printf("  route %s: error: %s\n", names[i], r.error);
			} else {
				printf("  route %s:", names[i]);
				for (size_t h = 0; h < r.nhooks; h++)
					printf(" %s", r.hooks[h].rel);
				if (r.nhooks == 0)
					printf(" (empty directory)");
				printf("\n");
				for (size_t k = 0; k < r.nskipped; k++)
					printf("    warning: skipped, not executable: %s\n", r.skipped[k]);
			}
		}
		route_free(&r);
		free(names[i]);
	}
	free(names);
}

int cmd_check(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	char err[1024];
	struct run_as ra;
	if (!run_as_or_fail(cfg, &ra))
		return EXIT_USAGE;
	free(ra.name);
	struct ssl_ctx_st *tls = NULL;
	if (!tls_from_config(cfg, &tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_unref(cfg);
		return EXIT_USAGE;
	}
	printf("config %s: ok\n", o->config);
	printf("listen %s%s\n", cfg->listen, tls ? " (https)" : "");
	if (cfg->admin_listen)
		printf("admin %s\n", cfg->admin_listen);
	if (tls) {
		struct tls_cert_info ti;
		tls_ctx_info(tls, &ti);
		printf("tls cert=%s key=%s subject=%s serial=%s not_after=%s%s\n", cfg->tls_cert,
		       cfg->tls_key, ti.subject, ti.serial, ti.not_after,
		       ti.expired ? " (expired)" : "");
		tls_ctx_free(tls);
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint *ep = &cfg->endpoints[i];
		printf("endpoint %s: POST %s scheme=%s hooks_dir=%s secrets=%zu\n", ep->name, ep->path,
		       scheme_name(ep->scheme), ep->hooks_dir, ep->nsecrets);
		/* The budget its events get, unless an [event] section sets another. */
		struct delivery_opts dopts;
		config_delivery_opts(cfg, ep, NULL, &dopts);
		printf("  env max_vars=%d max_bytes=%llu array_max=%d\n", dopts.env_max_vars,
		       (unsigned long long)dopts.env_max_bytes, dopts.env_array_max);
		print_routes(ep->hooks_dir);
	}
	config_unref(cfg);
	return 0;
}
