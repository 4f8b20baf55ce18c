/*
 * Fuzz target: the event name rule and routing (README "Routing: hooks.d").
 *
 * The input is an event name as a sender would give it. event_name_valid
 * is checked against a second, plain reading of the rule; the candidates
 * from route_candidates must be the name itself, its cuts at separators
 * (most specific first, none ending in a separator) and "_default"; a
 * shorter `max` must give a prefix of the same list; route_resolve runs
 * against two small hooks dirs built once per process in /tmp (with and
 * without a _default), and whatever it matches must be one of the
 * candidates.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "route.h"
#include "util.h"

/* The rule as README "Routing: hooks.d" writes it: ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$ */
static bool name_ok(const uint8_t *s, size_t n)
{
	if (n < 1 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || !strchr("_.:-", c) || c == 0))
			return false;
	}
	return true;
}

static bool is_sep(char c)
{
	return c == ':' || c == '.';
}

static char hooks[2][64]; /* [0] without _default, [1] with it */

static void cleanup(void)
{
	static const char *const entries[] = {
		"build/10-first", "build/20-second", "build/.hidden", "build/30-off~",
		"build/40-noexec", "build/sub", "build", "build:start", "deploy", "broken",
		"pipe", "link", "a.b", "_default",
	};
	for (int d = 0; d < 2; d++) {
		if (!hooks[d][0])
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(entries); i++) {
			char *p = xasprintf("%s/%s", hooks[d], entries[i]);
			if (unlink(p) < 0)
				rmdir(p);
			free(p);
		}
		rmdir(hooks[d]);
	}
}

static void make_file(const char *dir, const char *name, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, "#!/bin/sh\n", 10) != 10)
		abort();
	close(fd);
	chmod(p, mode);
	free(p);
}

static void make_dir(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	if (mkdir(p, 0755) < 0)
		abort();
	free(p);
}

static void setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	for (int d = 0; d < 2; d++) {
		snprintf(hooks[d], sizeof(hooks[d]), "/tmp/hookd-fuzz-route.XXXXXX");
		if (!mkdtemp(hooks[d]))
			abort();
		const char *h = hooks[d];
		make_dir(h, "build");
		make_file(h, "build/10-first", 0755);
		make_file(h, "build/20-second", 0755);
		make_file(h, "build/.hidden", 0755);
		make_file(h, "build/30-off~", 0755);
		make_file(h, "build/40-noexec", 0644);
		make_dir(h, "build/sub");
		make_file(h, "build:start", 0755);
		make_file(h, "deploy", 0644);
		make_dir(h, "a.b");
		char *p = xasprintf("%s/broken", h);
		if (symlink("does-not-exist", p) < 0)
			abort();
		free(p);
		p = xasprintf("%s/link", h);
		if (symlink("build:start", p) < 0)
			abort();
		free(p);
		p = xasprintf("%s/pipe", h);
		if (mkfifo(p, 0600) < 0)
			abort();
		free(p);
		if (d == 1)
			make_file(h, "_default", 0755);
	}
	atexit(cleanup);
}

static void check_candidates(const char *ev, char out[][EVENT_NAME_MAX + 1], size_t n)
{
	size_t len = strlen(ev);
	if (strcmp(ev, "_default") == 0) {
		FUZZ_ASSERT(n == 1 && strcmp(out[0], "_default") == 0);
		return;
	}
	if (!event_name_valid(ev, len)) {
		FUZZ_ASSERT(n == 0);
		return;
	}
	FUZZ_ASSERT(n >= 2);
	FUZZ_ASSERT(strcmp(out[0], ev) == 0);
	FUZZ_ASSERT(strcmp(out[n - 1], "_default") == 0);
	size_t prev = len;
	for (size_t i = 1; i + 1 < n; i++) {
		size_t k = strlen(out[i]);
		/* A cut: shorter, a prefix, at a separator, not ending in one. */
		FUZZ_ASSERT(k > 0 && k < prev);
		FUZZ_ASSERT(memcmp(out[i], ev, k) == 0);
		FUZZ_ASSERT(is_sep(ev[k]));
		FUZZ_ASSERT(!is_sep(out[i][k - 1]));
		FUZZ_ASSERT(event_name_valid(out[i], k));
		prev = k;
	}
	/* Every cut is there: count the separators that follow a non-separator. */
	size_t cuts = 0;
	for (size_t i = 1; i < len; i++)
		cuts += is_sep(ev[i]) && !is_sep(ev[i - 1]);
	FUZZ_ASSERT(n == cuts + 2);
}

static void check_route(const char *ev, char cands[][EVENT_NAME_MAX + 1], size_t ncands,
                        const char *dir)
{
	struct route r;
	int ret = route_resolve(dir, ev, &r);
	if (ncands == 0) {
		FUZZ_ASSERT(ret == -EINVAL);
		FUZZ_ASSERT(r.name == NULL && r.nhooks == 0);
		return;
	}
	FUZZ_ASSERT(ret == 0);
	if (r.name) {
		bool known = false;
		for (size_t i = 0; i < ncands; i++)
			known |= strcmp(r.name, cands[i]) == 0;
		FUZZ_ASSERT(known);
		for (size_t i = 0; i < r.nhooks; i++) {
			FUZZ_ASSERT(strncmp(r.hooks[i].rel, r.name, strlen(r.name)) == 0);
			FUZZ_ASSERT(strncmp(r.hooks[i].path, dir, strlen(dir)) == 0);
			FUZZ_ASSERT(!route_name_skipped(strrchr(r.hooks[i].path, '/') + 1));
		}
		FUZZ_ASSERT(!(r.error && r.nhooks));
	} else {
		FUZZ_ASSERT(r.nhooks == 0 && r.error == NULL);
	}
	route_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FUZZ_ASSERT(event_name_valid((const char *)data, size) == name_ok(data, size));
	if (size > 4 * EVENT_NAME_MAX)
		return 0;
	setup();

	char *ev = xstrndup((const char *)data, size); /* cut at a NUL, as C strings are */
	char out[ROUTE_MAX_CANDIDATES][EVENT_NAME_MAX + 1];
	size_t n = route_candidates(ev, out, ROUTE_MAX_CANDIDATES);
	check_candidates(ev, out, n);

	/* A shorter list is the start of the full one. */
	size_t max = size % 5;
	char part[ROUTE_MAX_CANDIDATES][EVENT_NAME_MAX + 1];
	size_t m = route_candidates(ev, part, max);
	FUZZ_ASSERT(m == (n < max ? n : max));
	for (size_t i = 0; i < m; i++)
		FUZZ_ASSERT(strcmp(part[i], out[i]) == 0);

	(void)route_name_skipped(ev);
	check_route(ev, out, n, hooks[size & 1]);
	free(ev);
	return 0;
}
