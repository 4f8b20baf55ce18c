/*
 * Routing (README "Routing: hooks.d"): event name -> candidate names (a:b:c, a:b, a,
 * _default) -> the first that exists in the hooks dir -> the executables
 * to run. The hooks dir is looked at at each delivery; only "no route"
 * is remembered, while the dir is unchanged (route.c). For the event
 * loop's thread alone.
 */
#ifndef HOOKD_ROUTE_H
#define HOOKD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"

#define ROUTE_MAX_CANDIDATES (EVENT_NAME_MAX + 2)

/*
 * Fills out[] with the candidates for a valid event name, most specific
 * first, "_default" last; segments are separated by ':' or '.'. Returns
 * the count. Each out[i] is a buffer of EVENT_NAME_MAX + 1 bytes.
 * A cut never ends in a separator: "a::b" gives "a::b", "a", "_default".
 * "_default" itself gives just "_default"; an invalid name gives 0.
 * A name route_name_skipped() is true for is never a candidate:
 * "deploy.disabled" gives "deploy", "_default".
 */
size_t route_candidates(const char *event, char out[][EVENT_NAME_MAX + 1], size_t max);

struct hook {
	char *path; /* absolute path of the executable */
	char *rel;  /* relative to the hooks dir: "build:start", "deploy.d/10-pull" */
	char *dir;  /* directory holding it: the hook's cwd */
};

struct route {
	char *name;       /* the candidate that matched, NULL: no route */
	struct hook *hooks;
	size_t nhooks;
	char *error;      /* set when the route cannot run: "not executable: deploy" */
	bool may_pass;    /* that error may pass (error_may_pass): a 503 */
	/* Entries of a directory route that look like hooks but cannot run
	 * (non-executable regular files, dangling symlinks): skipped as
	 * run-parts does, but named here, each with why, so the delivery's
	 * log and `hookd check` say so. */
	char **skipped;
	char **skipped_why;
	size_t nskipped;
};

/* True for names run-parts skips: ".x", "x~", "*.swp", "*.disabled", dpkg/rpm leftovers.
 * Such a name is never a route, nor a hook in a directory route. */
int route_name_skipped(const char *name);
/* Why route_name_skipped() is true for name ("disabled", "a package
 * manager's leftover", ...), NULL when it is not. */
const char *route_skip_reason(const char *name);

/*
 * Resolves `event` under hooks_dir. Returns 0 with route filled (a route
 * with ->error set, or with no name when nothing matched). A file route
 * that is not an executable regular file, and a route that is neither a
 * file nor a directory, set ->error naming it. A directory route lists its
 * executable regular files in byte order, skipping route_name_skipped()
 * names and entries that are not executable regular files.
 * Returns a negative errno, with out left empty, when the hooks dir
 * cannot be opened (-ENOENT: it does not exist) or a candidate cannot be
 * looked at, and -EINVAL for an invalid event name.
 */
int route_resolve(const char *hooks_dir, const char *event, struct route *out);
void route_free(struct route *r);
/* Forgets the events remembered to have no route (see route.c). */
void route_cache_clear(void);
/* How many lookups a remembered miss has answered in this process. */
size_t route_cache_hits(void);

/* A miss is remembered in a dir whose names have not changed for
 * ROUTE_SETTLE_MS, and answers for ROUTE_TTL_MS after a real lookup. */
#define ROUTE_SETTLE_MS 5000
#define ROUTE_TTL_MS 1000

/*
 * For the unit tests alone; the daemon never calls these. The settle and
 * TTL times the cache uses (the two above until set), so that a test
 * need not wait seconds; and a function run before each candidate is
 * looked up (i counts from 0; NULL: none), to change the dir in the
 * middle of a delivery's lookups.
 */
void route_cache_set_times(int64_t settle_ms, int64_t ttl_ms);
void route_set_before_lookup(void (*fn)(size_t i));

#endif
