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
	struct stat dst;
	if (stat(dir, &dst) < 0)
		ret = -errno;
	else if (!S_ISDIR(dst.st_mode))
		ret = -ENOTDIR;
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
