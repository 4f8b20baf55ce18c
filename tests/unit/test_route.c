/*
 * route: candidates for an event name, the skip list, and resolution
 * against a hooks dir built here in a temporary directory (README "Routing: hooks.d").
 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "route.h"
#include "util.h"

static void test_candidates(void)
{
	static const struct {
		const char *event;
		const char *want; /* candidates joined by ' ' */
	} cases[] = {
		{ "build:start", "build:start build _default" },
		{ "infrastructure:service:container-crash",
		  "infrastructure:service:container-crash infrastructure:service infrastructure _default" },
		{ "a:b.c", "a:b.c a:b a _default" },
		{ "a.b:c", "a.b:c a.b a _default" },
		{ "push", "push _default" },
		{ "pull_request:opened", "pull_request:opened pull_request _default" },
		{ "a-b_c:d", "a-b_c:d a-b_c _default" },
		{ "a::b", "a::b a _default" },
		{ "a:.b", "a:.b a _default" },
		{ "a:", "a: a _default" },
		{ "a..", "a.. a _default" },
		{ "a:b:", "a:b: a:b a _default" },
		{ "1.2.3", "1.2.3 1.2 1 _default" },
		{ "_default", "_default" },
		/* a name run-parts skips is never a candidate */
		{ "deploy.disabled", "deploy _default" },
		{ "build:success.dpkg-dist", "build:success build _default" },
		{ "a.disabled:b", "a.disabled:b a _default" },
		{ "a.rpmsave.b.swp", "a.rpmsave.b a _default" },
		{ "x.dpkg-old", "x _default" },
		{ "x.dpkg-new", "x _default" },
		{ "x.rpmnew", "x _default" },
		{ "x.disabled.sh", "x.disabled.sh x _default" },
		{ "", "" },
		{ "../x", "" },
		{ "a/b", "" },
		{ ".a", "" },
		{ "_x", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[ROUTE_MAX_CANDIDATES][EVENT_NAME_MAX + 1];
		size_t n = route_candidates(cases[i].event, out, ROUTE_MAX_CANDIDATES);
		struct strbuf sb;
		sb_init(&sb);
		sb_puts(&sb, "");
		for (size_t k = 0; k < n; k++) {
			if (k)
				sb_putc(&sb, ' ');
			sb_puts(&sb, out[k]);
		}
		CHECK_STR(sb.buf, cases[i].want, "candidates of '%s'", cases[i].event);
		sb_free(&sb);
	}

	/* The longest name with every other byte a separator fits the bound. */
	char ev[EVENT_NAME_MAX + 1];
	for (size_t i = 0; i < EVENT_NAME_MAX; i++)
		ev[i] = i % 2 ? ':' : 'a';
	ev[EVENT_NAME_MAX] = '\0';
	char out[ROUTE_MAX_CANDIDATES][EVENT_NAME_MAX + 1];
	size_t n = route_candidates(ev, out, ROUTE_MAX_CANDIDATES);
	CHECK(n == EVENT_NAME_MAX / 2 + 2, "many separators: %zu", n);
	CHECK_STR(out[n - 1], "_default", "last is _default");
	CHECK_STR(out[n - 2], "a", "shortest");
	/* max cuts the list short, most specific first */
	n = route_candidates("a:b:c", out, 2);
	CHECK(n == 2, "max 2");
	CHECK_STR(out[1], "a:b", "max 2 second");
	CHECK(route_candidates(NULL, out, 4) == 0, "NULL");
}

static void test_skipped_names(void)
{
	static const struct {
		const char *name;
		int want;
	} cases[] = {
		{ "10-deploy", 0 },
		{ "deploy", 0 },
		{ "deploy.sh", 0 },
		{ "a~b", 0 },
		{ "swp", 0 },
		{ "x.swpx", 0 },
		{ "x.disabled.sh", 0 },
		{ "dpkg-old", 0 },
		{ ".hidden", 1 },
		{ ".", 1 },
		{ "..", 1 },
		{ "", 1 },
		{ "deploy~", 1 },
		{ "~", 1 },
		{ ".deploy.swp", 1 },
		{ "deploy.swp", 1 },
		{ "deploy.disabled", 1 },
		{ "deploy.dpkg-old", 1 },
		{ "deploy.dpkg-new", 1 },
		{ "deploy.dpkg-dist", 1 },
		{ "deploy.dpkg-tmp", 1 },
		{ "deploy.rpmnew", 1 },
		{ "deploy.rpmsave", 1 },
		{ "deploy.rpmorig", 1 },
		{ ".swp", 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(route_name_skipped(cases[i].name) == cases[i].want, "skipped '%s'", cases[i].name);

	static const struct {
		const char *name, *reason; /* NULL: not skipped */
	} reasons[] = {
		{ "deploy", NULL },
		{ "deploy.disabled", "disabled" },
		{ "build:success.dpkg-dist", "a package manager's leftover" },
		{ "deploy.rpmsave", "a package manager's leftover" },
		{ "deploy~", "an editor's backup" },
		{ "deploy.swp", "an editor's swap file" },
		{ ".deploy", "a hidden name" },
		{ "", "an empty name" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(reasons); i++) {
		const char *got = route_skip_reason(reasons[i].name);
		if (!reasons[i].reason)
			CHECK(got == NULL, "reason for '%s': %s", reasons[i].name, got);
		else
			CHECK_STR(got ? got : "(none)", reasons[i].reason, "reason for '%s'",
			          reasons[i].name);
	}
}

/*
 * A deploy that changes the hooks dir while a delivery looks up its
 * candidates: route.c runs this test's hook before each candidate's
 * lookup (after opening the dir), which runs `between_lookups` once when
 * it is set, before the lookup after the first `lookups_first` ones.
 */
static void (*between_lookups)(void);
static size_t lookups_first;

static void before_lookup(size_t i)
{
	if (between_lookups && i >= lookups_first) {
		void (*f)(void) = between_lookups;
		between_lookups = NULL;
		lookups_first = 0;
		f();
	}
}

static char root[64];

static char *at(const char *rel)
{
	return xasprintf("%s/%s", root, rel);
}

static void mkfile(const char *rel, mode_t mode)
{
	char *p = at(rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", p);
	if (fd >= 0) {
		CHECK(write(fd, "#!/bin/sh\nexit 0\n", 17) == 17, "write %s", p);
		close(fd);
	}
	CHECK(chmod(p, mode) == 0, "chmod %s", p);
	free(p);
}

static void mkdir_rel(const char *rel)
{
	char *p = at(rel);
	CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
	free(p);
}

static void symlink_rel(const char *target, const char *rel)
{
	char *p = at(rel);
	CHECK(symlink(target, p) == 0, "symlink %s", p);
	free(p);
}

/* rm -r of what this test made: one level of subdirectories at most. */
static void remove_tree(const char *dir, int depth)
{
	char *cmd_dir = xstrdup(dir);
	DIR *d = opendir(cmd_dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *p = xasprintf("%s/%s", dir, de->d_name);
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 3)
				remove_tree(p, depth + 1);
			else
				unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(cmd_dir);
	free(cmd_dir);
}

/* The temp dir a test builds its hooks dirs in, and its removal. */
static void root_make(const char *template)
{
	snprintf(root, sizeof root, "%s", template);
	CHECK(mkdtemp(root) != NULL, "mkdtemp");
}

static void root_remove(void)
{
	remove_tree(root, 0);
	CHECK(access(root, F_OK) != 0, "temp dir removed");
}

/* A route as one line: name|error|rel,rel|skipped,skipped */
static char *describe(const struct route *r)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, r->name ? r->name : "-");
	sb_putc(&sb, '|');
	sb_puts(&sb, r->error ? r->error : "-");
	sb_putc(&sb, '|');
	for (size_t i = 0; i < r->nhooks; i++) {
		if (i)
			sb_putc(&sb, ',');
		sb_puts(&sb, r->hooks[i].rel);
	}
	sb_putc(&sb, '|');
	for (size_t i = 0; i < r->nskipped; i++) {
		if (i)
			sb_putc(&sb, ',');
		sb_puts(&sb, r->skipped[i]);
	}
	return sb_steal(&sb);
}

static void resolve_cases(const char *dir, const char *const (*cases)[2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct route r;
		int rc = route_resolve(dir, cases[i][0], &r);
		CHECK(rc == 0, "resolve '%s' rc %d", cases[i][0], rc);
		char *got = describe(&r);
		CHECK_STR(got, cases[i][1], "resolve '%s'", cases[i][0]);
		free(got);
		route_free(&r);
	}
}

static void test_resolve(void)
{
	root_make("/tmp/hookd-route-XXXXXX");

	/* files */
	mkfile("build:start", 0755);
	mkfile("build", 0700);
	mkfile("deploy", 0644);       /* not executable: an error, never skipped */
	mkfile("_default", 0755);
	/* executable, but names run-parts skips: never a route */
	mkfile("hotfix.disabled", 0755);
	mkfile("build.dpkg-dist", 0755);
	mkfile("build:start~", 0755);
	/* a directory route, run-parts style */
	mkdir_rel("release");
	mkfile("release/20-notify", 0755);
	mkfile("release/10-pull", 0755);
	mkfile("release/30-restart", 0750);
	mkfile("release/15-readme", 0644);    /* not executable: skipped, named */
	mkfile("release/05-off.disabled", 0755);
	mkfile("release/.hidden", 0755);
	mkfile("release/40-x~", 0755);
	mkfile("release/50-y.dpkg-old", 0755);
	mkfile("release/60-z.swp", 0755);
	mkfile("release/70-w.rpmnew", 0755);
	mkdir_rel("release/99-subdir");     /* ignored silently */
	symlink_rel("10-pull", "release/25-link");       /* link to an executable */
	symlink_rel("missing", "release/26-dangling");   /* skipped, named */
	symlink_rel("99-subdir", "release/27-dirlink");  /* ignored */
	mkfile("release/B-upper", 0755);
	mkfile("release/a-lower", 0755);
	/* empty directory route */
	mkdir_rel("quiet");
	/* directory whose only file is not executable */
	mkdir_rel("docs");
	mkfile("docs/README", 0644);
	/* symlinks at the top */
	symlink_rel("build:start", "linked");
	symlink_rel("deploy", "linked-noexec");
	symlink_rel("nowhere", "dangling");
	symlink_rel("release", "linkdir");
	/* something else */
	char *fifo = at("pipe");
	CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
	free(fifo);

	static const char *const cases[][2] = {
		{ "build:start", "build:start|-|build:start|" },
		{ "build:start:x", "build:start|-|build:start|" },
		{ "build:start.x.y", "build:start|-|build:start|" },
		{ "build:success", "build|-|build|" },
		{ "build.success", "build|-|build|" },
		{ "build", "build|-|build|" },
		{ "buildx", "_default|-|_default|" },
		{ "hotfix.disabled", "_default|-|_default|" },
		{ "build.dpkg-dist", "build|-|build|" },
		{ "build.dpkg-dist:x", "build|-|build|" },
		{ "deploy", "deploy|not executable: deploy||" },
		{ "deploy:prod", "deploy|not executable: deploy||" },
		{ "release",
		  "release|-|release/10-pull,release/20-notify,release/25-link,release/30-restart,"
		  "release/B-upper,release/a-lower|release/15-readme,release/26-dangling" },
		{ "release:v1", "release|-|release/10-pull,release/20-notify,release/25-link,"
		                "release/30-restart,release/B-upper,release/a-lower|release/15-readme,"
		                "release/26-dangling" },
		{ "quiet", "quiet|-||" },
		{ "docs", "docs|-||docs/README" },
		{ "linked", "linked|-|linked|" },
		{ "linked-noexec", "linked-noexec|not executable: linked-noexec||" },
		{ "dangling", "dangling|cannot open: dangling: No such file or directory||" },
		{ "linkdir:x", "linkdir|-|linkdir/10-pull,linkdir/20-notify,linkdir/25-link,"
		               "linkdir/30-restart,linkdir/B-upper,linkdir/a-lower|linkdir/15-readme,"
		               "linkdir/26-dangling" },
		{ "pipe", "pipe|not a regular file or directory: pipe||" },
		{ "pipe:x", "pipe|not a regular file or directory: pipe||" },
		{ "unknown", "_default|-|_default|" },
		{ "a::b", "_default|-|_default|" },
		{ "_default", "_default|-|_default|" },
	};
	resolve_cases(root, cases, ARRAY_SIZE(cases));

	/* paths: absolute, cwd the directory holding the hook */
	struct route r;
	CHECK(route_resolve(root, "release:x", &r) == 0, "release paths");
	CHECK(r.nhooks == 6, "six hooks");
	if (r.nhooks >= 1) {
		char *p = at("release/10-pull"), *d = at("release");
		CHECK_STR(r.hooks[0].path, p, "dir hook path");
		CHECK_STR(r.hooks[0].dir, d, "dir hook dir");
		free(p);
		free(d);
	}
	route_free(&r);
	route_free(&r); /* twice: harmless */
	route_free(NULL);
	CHECK(route_resolve(root, "build:start", &r) == 0 && r.nhooks == 1, "file paths");
	if (r.nhooks == 1) {
		char *p = at("build:start");
		CHECK_STR(r.hooks[0].path, p, "file hook path");
		CHECK_STR(r.hooks[0].dir, root, "file hook dir");
		free(p);
	}
	route_free(&r);
	/* a trailing slash on the hooks dir changes nothing */
	char *slashed = xasprintf("%s//", root);
	CHECK(route_resolve(slashed, "build", &r) == 0 && r.nhooks == 1, "trailing slash");
	if (r.nhooks == 1) {
		char *p = at("build");
		CHECK_STR(r.hooks[0].path, p, "trailing slash path");
		free(p);
	}
	route_free(&r);
	free(slashed);

	/* no _default: nothing matches, no error */
	char *def = at("_default");
	CHECK(unlink(def) == 0, "unlink _default");
	free(def);
	static const char *const none[][2] = {
		{ "unknown", "-|-||" },
		{ "unknown:x.y", "-|-||" },
		{ "build:x", "build|-|build|" },
	};
	resolve_cases(root, none, ARRAY_SIZE(none));

	/* _default as a directory */
	mkdir_rel("_default");
	mkfile("_default/log", 0755);
	static const char *const defdir[][2] = {
		{ "other", "_default|-|_default/log|" },
	};
	resolve_cases(root, defdir, ARRAY_SIZE(defdir));

	/* an invalid event touches nothing */
	CHECK(route_resolve(root, "../../bin/sh", &r) == -EINVAL && r.name == NULL, "invalid event");
	route_free(&r);

	/* a missing hooks dir: an error for the caller, not "no route" */
	char *missing = at("no-such-dir");
	CHECK(route_resolve(missing, "build", &r) == -ENOENT, "missing hooks dir");
	CHECK(r.name == NULL && r.nhooks == 0 && r.error == NULL, "missing dir leaves route empty");
	route_free(&r);
	free(missing);
	char *notdir = at("build");
	CHECK(route_resolve(notdir, "build", &r) == -ENOTDIR, "hooks dir is a file");
	route_free(&r);
	free(notdir);

	root_remove();
}

/*
 * The cache's settle time while a test waits for a dir to settle: short,
 * so that the test takes a second, not forty; longer than a coarse
 * timestamp's tick, so that a change during the lookups still shows as
 * newer than they are. Where a check needs a change to count as "just
 * now" whatever the machine's load, the daemon's own time is set back.
 */
#define TEST_SETTLE_MS 50

static void daemon_times(void)
{
	route_cache_set_times(ROUTE_SETTLE_MS, ROUTE_TTL_MS);
}

/* Waits (at most 10 s) until dir's ctime is older than the settle time,
 * made short: only then may a miss in it be remembered. */
static void wait_settled(const char *dir)
{
	route_cache_set_times(TEST_SETTLE_MS, ROUTE_TTL_MS);
	for (int i = 0; i < 1000; i++) {
		struct stat st;
		if (stat(dir, &st) != 0)
			return;
		int64_t changed = (int64_t)st.st_ctim.tv_sec * 1000 + st.st_ctim.tv_nsec / 1000000;
		if (now_wall_ms() - changed > TEST_SETTLE_MS + 20)
			return;
		usleep(10 * 1000);
	}
}

/* "ev -> describe", and whether a remembered miss answered it. */
static void expect(const char *dir, const char *event, const char *want, bool hit)
{
	size_t hits = route_cache_hits();
	struct route r;
	int rc = route_resolve(dir, event, &r);
	CHECK(rc == 0, "resolve '%s' rc %d", event, rc);
	char *got = describe(&r);
	CHECK_STR(got, want, "resolve '%s'", event);
	CHECK(route_cache_hits() - hits == (hit ? 1u : 0u), "resolve '%s': remembered miss %s", event,
	      hit ? "not used" : "used");
	free(got);
	route_free(&r);
}

/* A miss is remembered only in a settled dir, and never outlives a change
 * of the dir's names, its identity or the config. */
static void test_remembered_misses(void)
{
	root_make("/tmp/hookd-noroute-XXXXXX");
	daemon_times();
	char *dir = at("hooks");
	CHECK(mkdir(dir, 0755) == 0, "mkdir hooks");
	static const char none[] = "-|-||";

	/* A fresh dir: looked up every time. */
	expect(dir, "build:start", none, false);
	expect(dir, "build:start", none, false);
	expect(dir, "build:start", none, false);

	wait_settled(dir);
	expect(dir, "build:start", none, false); /* remembered now */
	expect(dir, "build:start", none, true);
	expect(dir, "build:start", none, true);
	expect(dir, "deploy", none, false);
	expect(dir, "deploy", none, true);
	expect(dir, "build:start", none, true);

	/* A hook added: found at once, by the wider name too. */
	mkfile("hooks/build", 0755);
	daemon_times();
	expect(dir, "build:start", "build|-|build|", false);
	expect(dir, "deploy", none, false);
	expect(dir, "deploy", none, false); /* the dir changed just now: not remembered */

	/* A dangling symlink or a file that is not executable is a route. */
	wait_settled(dir);
	expect(dir, "deploy", none, false);
	expect(dir, "deploy", none, true);
	symlink_rel("missing", "hooks/deploy");
	expect(dir, "deploy", "deploy|cannot open: deploy: No such file or directory||", false);

	/* The dir moved away: an error, not a remembered miss. */
	char *away = at("away");
	CHECK(rename(dir, away) == 0, "rename");
	struct route r;
	CHECK(route_resolve(dir, "other", &r) == -ENOENT, "missing hooks dir after a miss");
	route_free(&r);
	/* Another dir at the same path, and the same ctime second or not:
	 * its own inode, so nothing remembered carries over. */
	CHECK(mkdir(dir, 0755) == 0, "mkdir hooks again");
	mkfile("hooks/other", 0755);
	expect(dir, "other", "other|-|other|", false);
	wait_settled(dir);
	expect(dir, "nothing", none, false);
	expect(dir, "nothing", none, true);
	/* The path now names the old dir (through a symlink): what was
	 * remembered of the other one does not hold. */
	char *fresh = at("fresh");
	wait_settled(away);
	CHECK(rename(dir, fresh) == 0 && symlink(away, dir) == 0, "swap in a symlink");
	expect(dir, "nothing", none, false);
	expect(dir, "nothing", none, true);
	expect(dir, "build:start", "build|-|build|", false);

	/* Cleared (a reload): looked up again. */
	route_cache_clear();
	expect(dir, "nothing", none, false);
	expect(dir, "nothing", none, true);
	route_cache_clear();

	free(fresh);
	free(away);
	free(dir);
	root_remove();
}

/* Swaps "hooks" (a symlink) from "a" to "b" and back. */
static void point_hooks_at(const char *target)
{
	char *link = at("hooks");
	char *tmp = at("hooks.new");
	unlink(tmp);
	CHECK(symlink(target, tmp) == 0 && rename(tmp, link) == 0, "hooks -> %s", target);
	free(tmp);
	free(link);
}

static void swap_to_b(void)
{
	point_hooks_at("b");
}

static void move_a_away(void)
{
	char *a = at("a"), *away = at("a.away");
	CHECK(rename(a, away) == 0, "a moved away");
	free(away);
	free(a);
}

/* Every candidate of a delivery is looked up in one dir, and what is
 * remembered is what that dir held, whatever a deploy does meanwhile. */
static void test_swaps_during_lookups(void)
{
	root_make("/tmp/hookd-swap-XXXXXX");
	route_cache_clear();
	mkdir_rel("a");
	mkfile("a/push", 0755);
	mkfile("a/deploy", 0755);
	mkdir_rel("b");
	mkfile("b/deploy:web", 0755);
	point_hooks_at("a");
	char *dir = at("hooks");
	static const char none[] = "-|-||";
	char *a = at("a");
	char *b = at("b");
	wait_settled(a);
	wait_settled(b);

	/* Swapped to b after the first lookup in a: the rest go to a too, so
	 * "deploy" is found (in neither dir alone would the answer be none). */
	between_lookups = swap_to_b;
	expect(dir, "deploy:web", "deploy|-|deploy|", false);
	point_hooks_at("a");

	/* A miss in a is remembered; a swap to b during a lookup in a
	 * neither lets a miss in b count for a nor the other way round. */
	expect(dir, "ping", none, false);
	expect(dir, "ping", none, true);
	between_lookups = swap_to_b;
	expect(dir, "push", "push|-|push|", false);
	expect(dir, "push", none, false); /* b: looked up, no push */
	expect(dir, "push", none, true);
	point_hooks_at("a");
	expect(dir, "push", "push|-|push|", false);
	expect(dir, "push", "push|-|push|", false);
	point_hooks_at("b");
	expect(dir, "push", none, true); /* b unchanged: its miss holds */
	point_hooks_at("a");

	/* The dir moved away after it was opened: the delivery still finds
	 * its hook there; the next one gets an error, never "no route". */
	expect(dir, "ping", none, false);
	expect(dir, "ping", none, true);
	between_lookups = move_a_away;
	expect(dir, "push", "push|-|push|", false);
	struct route r;
	CHECK(route_resolve(dir, "push", &r) == -ENOENT, "hooks -> a, a gone: an error");
	route_free(&r);
	CHECK(route_resolve(dir, "ping", &r) == -ENOENT, "a remembered miss does not hide it");
	route_free(&r);
	route_cache_clear();

	/* hooks -> a file system that is not local (proc): nothing is
	 * remembered there, though a local dir at that path had misses. */
	point_hooks_at("b");
	expect(dir, "ping", none, false);
	expect(dir, "ping", none, true);
	point_hooks_at("/proc");
	expect(dir, "ping", none, false);
	expect(dir, "ping", none, false);
	route_cache_clear();

	free(b);
	free(a);
	free(dir);
	root_remove();
}

static void remove_hooks_put_next(void)
{
	char *dir = at("hooks"), *next = at("next");
	remove_tree(dir, 0);
	CHECK(rename(next, dir) == 0, "next moved into place");
	free(next);
	free(dir);
}

static void rename_next_into_place(void)
{
	char *dir = at("hooks"), *old = at("old"), *next = at("next2");
	CHECK(rename(dir, old) == 0 && rename(next, dir) == 0, "next2 renamed into place");
	free(next);
	free(old);
	free(dir);
}

/* After the exact name missed: the hook comes, and the loop stalls (a
 * frozen cgroup, say) past the settling time before it looks at the dir's
 * ctime. That ctime is newer than the lookups: not remembered. */
static void add_deploy_then_stall(void)
{
	mkfile("hooks/deploy", 0755);
	usleep((TEST_SETTLE_MS + 200) * 1000);
}

/* A deploy by rm -rf and mv, a stall after a lookup, and the time limit. */
static void test_deploys_and_stalls(void)
{
	root_make("/tmp/hookd-deploy-XXXXXX");
	route_cache_clear();
	mkdir_rel("hooks");
	mkfile("hooks/push", 0755);
	mkdir_rel("next");
	mkfile("next/push", 0755);
	char *dir = at("hooks");
	static const char none[] = "-|-||";
	wait_settled(dir);

	/* The dir removed after it was opened: looked up again in the dir
	 * now at the path, never "no route". */
	expect(dir, "ping", none, false);
	between_lookups = remove_hooks_put_next;
	lookups_first = 0;
	expect(dir, "push", "push|-|push|", false);

	/* Replaced by a rename (the old dir kept, its link count too): the
	 * miss in the old dir is no answer either. */
	mkdir_rel("next2");
	mkfile("next2/deploy:web", 0755);
	between_lookups = rename_next_into_place;
	lookups_first = 0;
	expect(dir, "deploy:web", "deploy:web|-|deploy:web|", false);
	char *old = at("old");
	remove_tree(old, 0);
	free(old);

	wait_settled(dir);
	expect(dir, "deploy", none, false);
	expect(dir, "deploy", none, true);
	route_cache_clear();
	between_lookups = add_deploy_then_stall;
	lookups_first = 1; /* after "deploy" missed, before "_default" */
	expect(dir, "deploy", none, false);
	expect(dir, "deploy", "deploy|-|deploy|", false);

	/* A remembered miss answers for a second (the TTL) after a real
	 * lookup at most: here a TTL of 100 ms, once that much has passed. */
	wait_settled(dir);
	expect(dir, "other", none, false);
	expect(dir, "other", none, true);
	route_cache_set_times(TEST_SETTLE_MS, 100);
	usleep(150 * 1000);
	expect(dir, "other", none, false);
	route_cache_set_times(TEST_SETTLE_MS, ROUTE_TTL_MS);
	expect(dir, "other", none, true);
	route_cache_clear();

	free(dir);
	root_remove();
}

/*
 * Hooks on a file system mounted noexec: a file route and a directory
 * route's entry with execute bits say so, naming the mount; a README
 * without them is only "not executable". In a child with a mount
 * namespace of its own; skipped where this process may not mount.
 */
static void test_noexec_routes(void)
{
	root_make("/tmp/hookd-test-route-nx-XXXXXX");
	pid_t pid = fork();
	if (pid == 0) {
		check_failed = 0;
		/* "none": ignored for a propagation change, and valgrind
		 * checks the strings it is given. */
		if (unshare(CLONE_NEWNS) != 0 ||
		    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", root, "tmpfs", MS_NOEXEC, "size=1m") != 0)
			_exit(77);
		mkfile("deploy", 0755);
		mkdir_rel("release");
		mkfile("release/10-pull", 0755);
		mkfile("release/README", 0644);
		char *deploy = xasprintf("deploy|not executable: deploy (its file system, %s, is "
		                         "mounted noexec)||",
		                         root);
		const char *const cases[][2] = {
			{"deploy", deploy},
			{"release", "release|-||release/10-pull,release/README"},
		};
		resolve_cases(root, cases, ARRAY_SIZE(cases));
		struct route r;
		CHECK(route_resolve(root, "release", &r) == 0, "release");
		char *why = xasprintf("not executable (its file system, %s, is mounted noexec)", root);
		CHECK(r.nskipped == 2, "two skipped");
		if (r.nskipped == 2) {
			CHECK_STR(r.skipped_why[0], why, "10-pull: its mount named");
			CHECK_STR(r.skipped_why[1], "not executable", "README: no execute bit");
		}
		route_free(&r);
		free(why);
		free(deploy);
		umount2(root, MNT_DETACH);
		_exit(check_failed ? 1 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (rc == 77)
		printf("test_route: cannot mount here, the noexec cases skipped\n");
	else
		CHECK(rc == 0, "the noexec cases failed (%d): see above", rc);
	root_remove();
}

int main(void)
{
	route_set_before_lookup(before_lookup);
	test_candidates();
	test_skipped_names();
	test_resolve();
	test_remembered_misses();
	test_swaps_during_lookups();
	test_deploys_and_stalls();
	test_noexec_routes();
	daemon_times();
	return check_done("route");
}
