/*
 * Routing (SPEC 5): from an event name to the executables in hooks.d that
 * handle it. Everything is looked up afresh at each delivery, by path:
 * "<hooks_dir>/<candidate>" never leaves the hooks dir, as a valid event
 * name holds no '/' and starts with a letter or digit. No directory is
 * opened for a file route: opening and closing the hooks dir for each
 * delivery cost the loop about 5 µs a hook run under load.
 */
#include "route.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

	memcpy(out[n], event, len + 1);
	n++;
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

int route_name_skipped(const char *name)
{
	static const char *const suffixes[] = {
		"~",         ".swp",      ".disabled", ".dpkg-old", ".dpkg-new", ".dpkg-dist",
		".dpkg-tmp", ".rpmnew",   ".rpmsave",  ".rpmorig",
	};
	if (!name || name[0] == '\0' || name[0] == '.')
		return 1;
	size_t n = strlen(name);
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		if (has_suffix(name, n, suffixes[i]))
			return 1;
	}
	return 0;
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

/* Collects the executables of a directory route in byte order of their names. */
static void resolve_dir(struct route *r, const char *path, const char *hooks_dir,
                        const char *cand)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		/* Symlinks are followed: a link to a script in /usr/share is fine. */
		if (fstatat(fd, name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue; /* subdirectories, sockets, dangling links: not hooks */
		if (faccessat(fd, name, X_OK, AT_EACCESS) < 0) {
			r->skipped = xrealloc(r->skipped, (r->nskipped + 1) * sizeof *r->skipped);
			r->skipped[r->nskipped++] = xasprintf("%s/%s", cand, name);
			continue;
		}
		names = xrealloc(names, (nnames + 1) * sizeof *names);
		names[nnames++] = xstrdup(name);
	}
	closedir(d); /* closes fd too */

	if (nnames > 1)
		qsort(names, nnames, sizeof *names, str_ptr_cmp);
	if (r->nskipped > 1)
		qsort(r->skipped, r->nskipped, sizeof *r->skipped, str_ptr_cmp);
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
 * Events with no route, remembered for each hooks dir, so that a sender's
 * stream of events nobody handles costs one stat a delivery, not one for
 * each candidate and the dir. "No route" depends only on the names in the
 * hooks dir, and any change to those (a file added, removed or renamed,
 * a chmod of the dir) sets the dir's ctime, which no user can set. So a
 * remembered miss holds while the dir has the same device, inode and
 * ctime as in the stat made before its lookups. Only a dir whose ctime is
 * NOROUTE_SETTLED_MS old is trusted: timestamps come from a clock that
 * ticks coarsely, so a change in the tick of the stat could leave the
 * ctime as it was, and a file system sets the dir's ctime a moment before
 * a new name can be looked up. A route that exists is always looked up
 * afresh (an exec bit or a symlink's target can change without the dir's
 * ctime). An event that comes again and again with no hook (scenario (b)
 * of tests/bench) got 12 to 23% more requests/s from this.
 */
#define NOROUTE_DIRS 8
#define NOROUTE_NAMES 64
#define NOROUTE_SETTLED_MS 5000

struct noroute {
	char *dir; /* NULL: a free entry */
	bool valid; /* dev, ino, ctime hold a stat made before the lookups */
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
	char *names[NOROUTE_NAMES];
	size_t next; /* the slot the next name takes, round */
};

static struct noroute noroutes[NOROUTE_DIRS];
static size_t noroute_next;
static size_t noroute_hits;

size_t route_cache_hits(void)
{
	return noroute_hits;
}

static void noroute_forget(struct noroute *nr)
{
	for (size_t i = 0; i < NOROUTE_NAMES; i++) {
		free(nr->names[i]);
		nr->names[i] = NULL;
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

static bool same_dir(const struct noroute *nr, const struct stat *st)
{
	return nr->valid && nr->dev == st->st_dev && nr->ino == st->st_ino &&
	       nr->ctime.tv_sec == st->st_ctim.tv_sec && nr->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool noroute_has(const struct noroute *nr, const char *event)
{
	for (size_t i = 0; i < NOROUTE_NAMES; i++)
		if (nr->names[i] && strcmp(nr->names[i], event) == 0)
			return true;
	return false;
}

/* Remembers that event has no route in a dir that st (made before the
 * lookups) describes, when that dir has settled. */
static void noroute_add(struct noroute *nr, const struct stat *st, const char *event)
{
	int64_t changed = (int64_t)st->st_ctim.tv_sec * 1000 + st->st_ctim.tv_nsec / 1000000;
	if (now_wall_ms() - changed < NOROUTE_SETTLED_MS)
		return;
	if (!same_dir(nr, st)) {
		noroute_forget(nr);
		nr->valid = true;
		nr->dev = st->st_dev;
		nr->ino = st->st_ino;
		nr->ctime = st->st_ctim;
	}
	free(nr->names[nr->next]);
	nr->names[nr->next] = xstrdup(event);
	nr->next = (nr->next + 1) % NOROUTE_NAMES;
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
	/* "<dir>/<candidate>", one candidate after the other. */
	char *path = xmalloc(dlen + 1 + EVENT_NAME_MAX + 1);
	memcpy(path, dir, dlen);
	path[dlen] = '/';

	int ret = 0;
	/* A dir that has had a miss is looked at first: a remembered miss is
	 * the whole answer, and a new one is remembered under this stat. */
	struct stat dst;
	bool dir_seen = false;
	struct noroute *nr = noroute_find(dir);
	if (nr) {
		if (stat(dir, &dst) < 0) {
			ret = -errno;
			goto out;
		}
		if (!S_ISDIR(dst.st_mode)) {
			ret = -ENOTDIR;
			goto out;
		}
		if (same_dir(nr, &dst) && noroute_has(nr, event)) {
			noroute_hits++;
			goto out;
		}
		dir_seen = true;
	}
	for (size_t i = 0; i < ncands; i++) {
		const char *cand = cands[i];
		strcpy(path + dlen + 1, cand);
		struct stat st;
		/* lstat first: a dangling symlink exists, and is a broken route
		 * rather than a reason to fall through to a wider one. */
		if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* (or the hooks dir is missing: see below) */
			ret = -errno;
			goto out;
		}
		out->name = xstrdup(cand);
		/* Only a symlink needs a second look: for anything else the
		 * lstat above says what stat would. */
		if (S_ISLNK(st.st_mode) && stat(path, &st) < 0) {
			out->error = xasprintf("cannot open: %s: %s", cand, strerror(errno));
		} else if (S_ISREG(st.st_mode)) {
			if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0)
				add_hook(out, dir, cand, cand);
			else
				out->error = xasprintf("not executable: %s", cand);
		} else if (S_ISDIR(st.st_mode)) {
			resolve_dir(out, path, dir, cand);
		} else {
			out->error = xasprintf("not a regular file or directory: %s", cand);
		}
		goto out;
	}
	/* No candidate: "no route" only if the hooks dir is there. A missing
	 * one must not answer "unhandled", which nothing would ever retry. */
	if (dir_seen) {
		noroute_add(nr, &dst, event);
	} else if (stat(dir, &dst) < 0) {
		ret = -errno;
	} else if (!S_ISDIR(dst.st_mode)) {
		ret = -ENOTDIR;
	} else {
		/* This stat came after the lookups: it cannot vouch for them,
		 * but the next miss in this dir is remembered. */
		noroute_take(dir);
	}
out:
	free(path);
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
	for (size_t i = 0; i < r->nskipped; i++)
		free(r->skipped[i]);
	free(r->skipped);
	free(r->name);
	free(r->error);
	memset(r, 0, sizeof *r);
}
