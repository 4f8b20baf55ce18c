/*
 * Routing (README "Routing: hooks.d"): from an event name to the executables in hooks.d that
 * handle it. The hooks dir is looked at at each delivery, through one
 * directory fd (O_PATH), so that every candidate of a delivery is looked
 * up in the same dir even while a deploy swaps it, and a candidate name is
 * never joined into a path that could leave it (names cannot hold '/').
 * The one shortcut, misses remembered while the dir is unchanged, is
 * described below.
 */
#include "route.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "preflight.h"
#include "util.h"

static const char default_route[] = "_default";

static int is_sep(char c)
{
	return c == ':' || c == '.';
}

size_t route_candidates(const char *event, char out[][EVENT_NAME_MAX + 1], size_t max)
{
	size_t n = 0;
	if (!event || max == 0)
		return 0;
	size_t len = strlen(event);
	if (strcmp(event, default_route) == 0) {
		memcpy(out[n++], default_route, sizeof default_route);
		return n;
	}
	if (!event_name_valid(event, len))
		return 0;

	/* A name run-parts would skip is never a route, at the top of the
	 * hooks dir as inside a directory route: dpkg leaves executable
	 * "deploy.dpkg-dist" files next to the conffiles it installs. */
	if (!route_name_skipped(event)) {
		memcpy(out[n], event, len + 1);
		n++;
	}
	/*
	 * Cut before each separator, right to left. A cut that would end in a
	 * separator ("a::b" cut at its second ':' gives "a:") is the same
	 * route as the next shorter one, so it is left out: "a::b" -> "a".
	 * The name starts with a letter or digit, so no cut is empty.
	 */
	for (size_t i = len - 1; i > 0 && n < max; i--) {
		if (!is_sep(event[i]) || is_sep(event[i - 1]))
			continue;
		memcpy(out[n], event, i);
		out[n][i] = '\0';
		if (!route_name_skipped(out[n]))
			n++;
	}
	if (n < max)
		memcpy(out[n++], default_route, sizeof default_route);
	return n;
}

static int has_suffix(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

const char *route_skip_reason(const char *name)
{
	static const struct {
		const char *suffix, *reason;
	} suffixes[] = {
		{"~", "an editor's backup"},
		{".swp", "an editor's swap file"},
		{".disabled", "disabled"},
		{".dpkg-old", "a package manager's leftover"},
		{".dpkg-new", "a package manager's leftover"},
		{".dpkg-dist", "a package manager's leftover"},
		{".dpkg-tmp", "a package manager's leftover"},
		{".rpmnew", "a package manager's leftover"},
		{".rpmsave", "a package manager's leftover"},
		{".rpmorig", "a package manager's leftover"},
	};
	if (!name || name[0] == '\0')
		return "an empty name";
	if (name[0] == '.')
		return "a hidden name";
	size_t n = strlen(name);
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		if (has_suffix(name, n, suffixes[i].suffix))
			return suffixes[i].reason;
	}
	return NULL;
}

int route_name_skipped(const char *name)
{
	return route_skip_reason(name) != NULL;
}

static void add_hook(struct route *r, const char *dir, const char *rel, const char *name)
{
	r->hooks = xrealloc(r->hooks, (r->nhooks + 1) * sizeof *r->hooks);
	struct hook *h = &r->hooks[r->nhooks++];
	h->path = xasprintf("%s/%s", dir, name);
	h->rel = xstrdup(rel);
	h->dir = xstrdup(dir);
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* For a file that is not executable for us: " (its file system, /x, is
 * mounted noexec)" when that is why, else "" (into buf). Only one with
 * an execute bit has its mount looked at (a README in a run-parts
 * directory costs no look at every delivery). */
static const char *noexec_note(int dirfd, const char *name, const struct stat *st, char *buf,
                               size_t len)
{
	char words[PATH_MAX + 64];
	if ((st->st_mode & 0111) && preflight_noexec_words(dirfd, name, words, sizeof(words)))
		snprintf(buf, len, " (%s)", words);
	else
		buf[0] = '\0';
	return buf;
}

/* Names cand/name among r's skipped entries, in byte order, with why. */
static void skip_entry(struct route *r, const char *cand, const char *name, const char *why)
{
	char *rel = xasprintf("%s/%s", cand, name);
	r->skipped = xrealloc(r->skipped, (r->nskipped + 1) * sizeof *r->skipped);
	r->skipped_why = xrealloc(r->skipped_why, (r->nskipped + 1) * sizeof *r->skipped_why);
	size_t at = r->nskipped;
	for (; at > 0 && strcmp(r->skipped[at - 1], rel) > 0; at--) {
		r->skipped[at] = r->skipped[at - 1];
		r->skipped_why[at] = r->skipped_why[at - 1];
	}
	r->skipped[at] = rel;
	r->skipped_why[at] = xstrdup(why);
	r->nskipped++;
}

/* Collects the executables of a directory route in byte order of their names. */
static void resolve_dir(struct route *r, int dfd, const char *hooks_dir, const char *cand)
{
	int fd = openat(dfd, cand, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		r->may_pass = error_may_pass(errno);
		r->error = xasprintf("cannot read directory: %s: %s", cand, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	char **names = NULL;
	size_t nnames = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		if (route_name_skipped(name))
			continue;
		struct stat st;
		/* Symlinks are followed: a link to a script in /usr/share is fine.
		 * One whose target is gone was a hook: named, not ignored. */
		if (fstatat(fd, name, &st, 0) < 0) {
			if (errno == ENOENT)
				skip_entry(r, cand, name, "a dangling symlink");
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue; /* subdirectories, sockets: not hooks */
		if (faccessat(fd, name, X_OK, AT_EACCESS) < 0) {
			char note[PATH_MAX + 96], why[PATH_MAX + 128];
			snprintf(why, sizeof(why), "not executable%s",
			         noexec_note(fd, name, &st, note, sizeof(note)));
			skip_entry(r, cand, name, why);
			continue;
		}
		names = xrealloc(names, (nnames + 1) * sizeof *names);
		names[nnames++] = xstrdup(name);
	}
	closedir(d); /* closes fd too */

	if (nnames > 1)
		qsort(names, nnames, sizeof *names, str_ptr_cmp);
	char *dir = xasprintf("%s/%s", hooks_dir, cand);
	for (size_t i = 0; i < nnames; i++) {
		char *rel = xasprintf("%s/%s", cand, names[i]);
		add_hook(r, dir, rel, names[i]);
		free(rel);
		free(names[i]);
	}
	free(names);
	free(dir);
}

/*
 * Events with no route, remembered for each hooks dir for a moment, so
 * that a sender's stream of events nobody handles costs one stat a
 * delivery instead of an open, a lookup for each candidate and a close.
 *
 * Whether an event has a route depends only on the names in the dir the
 * lookups went into, and adding, removing or renaming a name sets that
 * dir's ctime to the time of the change. So a miss is remembered with the
 * device, inode and ctime of the dir it was looked up in, and answers a
 * later delivery only while stat of the hooks dir's path gives the same
 * three, and only for ROUTE_TTL_MS after a real lookup. The ctime must
 * be ROUTE_SETTLE_MS older than the moment before the lookups: a
 * change made during them carries a later ctime, and timestamps tick
 * coarsely. Only local file systems (local_fs()) take part: elsewhere a
 * ctime can come from a cache or another machine's clock.
 *
 * What the checks cannot see (a file system image remounted at the path
 * with the very same ctime, or a create whose ctime was set seconds
 * before its name could be looked up, under a storage stall) the time
 * limit bounds: a miss can outlive a new hook by ROUTE_TTL_MS at most.
 * A found route is never remembered (an exec bit or a symlink's target can
 * change without the dir's ctime). Everything here runs on the event
 * loop's thread alone. An event that comes again and again with no hook
 * (scenario (b) of tests/bench) got 12 to 23% more requests/s from this.
 */
#define NOROUTE_DIRS 8
#define NOROUTE_NAMES 64

struct noroute {
	char *dir;   /* the hooks dir as configured; NULL: a free entry */
	bool valid;  /* dev, ino and ctime describe the names below */
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
	struct {
		char *event;
		int64_t looked_up; /* now_mono_ms() of its last real lookup */
	} names[NOROUTE_NAMES];
	size_t next; /* the slot the next name takes, round */
};

static struct noroute noroutes[NOROUTE_DIRS];
static size_t noroute_next;
static size_t noroute_hits;
static int64_t noroute_settle_ms = ROUTE_SETTLE_MS;
static int64_t noroute_ttl_ms = ROUTE_TTL_MS;
static void (*before_lookup)(size_t i);

void route_cache_set_times(int64_t settle_ms, int64_t ttl_ms)
{
	noroute_settle_ms = settle_ms;
	noroute_ttl_ms = ttl_ms;
}

void route_set_before_lookup(void (*fn)(size_t i))
{
	before_lookup = fn;
}

size_t route_cache_hits(void)
{
	return noroute_hits;
}

static void noroute_forget(struct noroute *nr)
{
	for (size_t i = 0; i < NOROUTE_NAMES; i++) {
		free(nr->names[i].event);
		nr->names[i].event = NULL;
	}
	nr->next = 0;
	nr->valid = false;
}

void route_cache_clear(void)
{
	for (size_t i = 0; i < NOROUTE_DIRS; i++) {
		noroute_forget(&noroutes[i]);
		free(noroutes[i].dir);
		noroutes[i].dir = NULL;
	}
	noroute_next = 0;
}

static struct noroute *noroute_find(const char *dir)
{
	for (size_t i = 0; i < NOROUTE_DIRS; i++)
		if (noroutes[i].dir && strcmp(noroutes[i].dir, dir) == 0)
			return &noroutes[i];
	return NULL;
}

static struct noroute *noroute_take(const char *dir)
{
	struct noroute *nr = &noroutes[noroute_next];
	noroute_next = (noroute_next + 1) % NOROUTE_DIRS;
	noroute_forget(nr);
	free(nr->dir);
	nr->dir = xstrdup(dir);
	return nr;
}

/* File systems whose directory ctime is set by this machine's clock on
 * every change of a name, and read back without an attribute cache. */
static bool local_fs(int dfd)
{
	static const unsigned long types[] = {
		0xEF53,     /* ext2, ext3, ext4 */
		0x58465342, /* xfs */
		0x9123683E, /* btrfs */
		0x01021994, /* tmpfs */
		0x794C7630, /* overlayfs (containers) */
		0x2FC12FC1, /* zfs */
		0xF2F52010, /* f2fs */
	};
	struct statfs sf;
	if (fstatfs(dfd, &sf) != 0)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if ((unsigned long)sf.f_type == types[i])
			return true;
	return false;
}

static bool same_dir(const struct noroute *nr, const struct stat *st)
{
	return nr->valid && nr->dev == st->st_dev && nr->ino == st->st_ino &&
	       nr->ctime.tv_sec == st->st_ctim.tv_sec && nr->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* The slot of a remembered event, or -1. */
static int noroute_slot(const struct noroute *nr, const char *event)
{
	for (size_t i = 0; i < NOROUTE_NAMES; i++)
		if (nr->names[i].event && strcmp(nr->names[i].event, event) == 0)
			return (int)i;
	return -1;
}

/* Remembers that event has no route in the dir of dfd (st: its fstat
 * after the lookups; t0 and mono0: the wall and monotonic clocks before
 * them), when that dir's names had settled and it is on a local file
 * system. */
static void noroute_add(const char *dir, int dfd, const struct stat *st, int64_t t0,
                        int64_t mono0, const char *event)
{
	int64_t changed = (int64_t)st->st_ctim.tv_sec * 1000 + st->st_ctim.tv_nsec / 1000000;
	if (t0 - changed < noroute_settle_ms)
		return;
	struct noroute *nr = noroute_find(dir);
	if (!nr)
		nr = noroute_take(dir);
	if (!same_dir(nr, st)) {
		noroute_forget(nr);
		if (!local_fs(dfd))
			return;
		nr->valid = true;
		nr->dev = st->st_dev;
		nr->ino = st->st_ino;
		nr->ctime = st->st_ctim;
	}
	int i = noroute_slot(nr, event);
	if (i < 0) {
		i = (int)nr->next;
		nr->next = (nr->next + 1) % NOROUTE_NAMES;
		free(nr->names[i].event);
		nr->names[i].event = xstrdup(event);
	}
	nr->names[i].looked_up = mono0;
}

/* Whether a remembered miss answers this lookup: one stat of the path. */
static bool noroute_answers(const char *dir, const char *event)
{
	struct noroute *nr = noroute_find(dir);
	if (!nr || !nr->valid)
		return false;
	int i = noroute_slot(nr, event);
	if (i < 0 || now_mono_ms() - nr->names[i].looked_up > noroute_ttl_ms)
		return false;
	struct stat st;
	if (stat(dir, &st) != 0 || !same_dir(nr, &st))
		return false;
	noroute_hits++;
	return true;
}

/* Looks the candidates up in the dir of dfd. Returns 0 (out filled, or
 * no name: no route) or a negative errno. */
static int resolve_in(int dfd, const char *dir, char (*cands)[EVENT_NAME_MAX + 1],
                      size_t ncands, struct route *out)
{
	for (size_t i = 0; i < ncands; i++) {
		const char *cand = cands[i];
		struct stat st;
		if (before_lookup)
			before_lookup(i);
		/* lstat first: a dangling symlink exists, and is a broken route
		 * rather than a reason to fall through to a wider one. */
		if (fstatat(dfd, cand, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		out->name = xstrdup(cand);
		/* Only a symlink needs a second look: for anything else the
		 * lstat above says what stat would. */
		if (S_ISLNK(st.st_mode) && fstatat(dfd, cand, &st, 0) < 0) {
			out->error = xasprintf("cannot open: %s: %s", cand, strerror(errno));
		} else if (S_ISREG(st.st_mode)) {
			if (faccessat(dfd, cand, X_OK, AT_EACCESS) == 0)
				add_hook(out, dir, cand, cand);
			else {
				char note[PATH_MAX + 96];
				out->error = xasprintf("not executable: %s%s", cand,
				                       noexec_note(dfd, cand, &st, note, sizeof(note)));
			}
		} else if (S_ISDIR(st.st_mode)) {
			resolve_dir(out, dfd, dir, cand);
		} else {
			out->error = xasprintf("not a regular file or directory: %s", cand);
		}
		return 0;
	}
	return 0;
}

int route_resolve(const char *hooks_dir, const char *event, struct route *out)
{
	memset(out, 0, sizeof *out);
	char cands[ROUTE_MAX_CANDIDATES][EVENT_NAME_MAX + 1];
	size_t ncands = route_candidates(event, cands, ROUTE_MAX_CANDIDATES);
	if (ncands == 0) {
		errno = EINVAL;
		return -EINVAL;
	}

	/* "/srv/hooks.d/" and "/srv/hooks.d" name the same paths. */
	size_t dlen = strlen(hooks_dir);
	while (dlen > 1 && hooks_dir[dlen - 1] == '/')
		dlen--;
	char *dir = xstrndup(hooks_dir, dlen);

	int ret = 0;
	if (noroute_answers(dir, event))
		goto out;
	/* One fd for all the candidates, so that a deploy swapping the dir
	 * meanwhile cannot mix two dirs; O_PATH, as it is only a place to look
	 * things up from (cheaper to open and close than a dir for reading).
	 * A miss in a dir that is no longer the one at the path (removed, or
	 * replaced by a rename or a symlink) is no answer: the path is opened
	 * again, once, and a second such miss is an error the sender retries.
	 * (Overlayfs keeps the link count of a removed dir, so the check is
	 * on the path, not on st_nlink alone.) */
	for (int attempt = 0; attempt < 2; attempt++) {
		int64_t t0 = now_wall_ms(), mono0 = now_mono_ms();
		int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			ret = -errno;
			break;
		}
		ret = resolve_in(dfd, dir, cands, ncands, out);
		if (ret < 0 || out->name) {
			close(dfd);
			break;
		}
		struct stat st, now;
		if (fstat(dfd, &st) != 0) {
			ret = -errno;
			close(dfd);
			break;
		}
		if (st.st_nlink == 0 || stat(dir, &now) != 0 || now.st_dev != st.st_dev ||
		    now.st_ino != st.st_ino) {
			close(dfd);
			ret = -ENOENT;
			continue;
		}
		noroute_add(dir, dfd, &st, t0, mono0, event);
		close(dfd);
		break;
	}
out:
	free(dir);
	if (ret < 0) {
		route_free(out);
		errno = -ret;
	}
	return ret;
}

void route_free(struct route *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nhooks; i++) {
		free(r->hooks[i].path);
		free(r->hooks[i].rel);
		free(r->hooks[i].dir);
	}
	free(r->hooks);
	for (size_t i = 0; i < r->nskipped; i++) {
		free(r->skipped[i]);
		free(r->skipped_why[i]);
	}
	free(r->skipped);
	free(r->skipped_why);
	free(r->name);
	free(r->error);
	memset(r, 0, sizeof *r);
}
