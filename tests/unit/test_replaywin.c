/*
 * replaywin: which bodies are duplicates under another id within the
 * window, what is remembered and for how long, and the bound. Each
 * scenario is a table of steps against one fresh window.
 */
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replaywin.h"
#include "util.h"

struct step {
	const char *endpoint, *id;
	bool generated;
	const char *body;
	int64_t window_ms, now_ms;
	bool commit; /* replaywin_commit after the check (with commit_id, if set) */
	bool want_duplicate;
	size_t want_count; /* remembered after the step */
	const char *commit_id;
};

static void run(const char *name, size_t max, const struct step *steps, size_t n)
{
	struct replaywin *w = replaywin_new(max);
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		bool dup = replaywin_check(w, s->endpoint, s->id, s->generated,
		                           (const unsigned char *)s->body, strlen(s->body), s->window_ms,
		                           s->now_ms);
		CHECK(dup == s->want_duplicate, "%s step %zu: duplicate %d", name, i, dup);
		if (s->commit)
			replaywin_commit(w, s->endpoint, s->commit_id ? s->commit_id : s->id);
		CHECK(replaywin_count(w) == s->want_count, "%s step %zu: %zu remembered", name, i,
		      replaywin_count(w));
	}
	replaywin_free(w);
}

#define W 600000 /* 10m */

int main(void)
{
	static const struct step basic[] = {
		{"gh", "d1", false, "{\"a\":1}", W, 0, true, false, 1, NULL},
		/* the same bytes under a fresh id: the attack */
		{"gh", "d2", false, "{\"a\":1}", W, 10, true, true, 1, NULL},
		/* a resend under its own id: the id rules decide, not this */
		{"gh", "d1", false, "{\"a\":1}", W, 20, true, false, 1, NULL},
		/* one byte more is another body */
		{"gh", "d2", false, "{\"a\":1} ", W, 30, true, false, 2, NULL},
		/* another endpoint has a window of its own */
		{"gl", "d3", false, "{\"a\":1}", W, 40, true, false, 3, NULL},
		/* an empty body is a body */
		{"gh", "d4", false, "", W, 50, true, false, 4, NULL},
		{"gh", "d5", false, "", W, 60, false, true, 4, NULL},
	};
	run("basic", REPLAYWIN_MAX, basic, ARRAY_SIZE(basic));

	static const struct step off[] = {
		{"gh", "d1", false, "x", 0, 0, true, false, 0, NULL},
		{"gh", "d2", false, "x", 0, 1, true, false, 0, NULL},
		/* switched on later: nothing was remembered meanwhile */
		{"gh", "d3", false, "x", W, 2, true, false, 1, NULL},
		/* and off again for this one: it is not refused */
		{"gh", "d4", false, "x", 0, 3, true, false, 1, NULL},
	};
	run("off", REPLAYWIN_MAX, off, ARRAY_SIZE(off));

	static const struct step uncommitted[] = {
		/* checked but refused later (a 503): not remembered */
		{"gh", "d1", false, "x", W, 0, false, false, 0, NULL},
		{"gh", "d2", false, "x", W, 1, true, false, 1, NULL},
		/* a commit for another id than the one checked does nothing */
		{"gh", "d3", false, "y", W, 2, true, false, 1, "d9"},
		{"gh", "d4", false, "y", W, 3, true, false, 2, NULL},
		/* a duplicate leaves nothing to commit */
		{"gh", "d5", false, "y", W, 4, true, true, 2, NULL},
	};
	run("uncommitted", REPLAYWIN_MAX, uncommitted, ARRAY_SIZE(uncommitted));

	static const struct step expiry[] = {
		{"gh", "d1", false, "x", 100, 0, true, false, 1, NULL},
		{"gh", "d1", false, "x", 100, 50, true, false, 1, NULL}, /* keeps its first arrival */
		{"gh", "d2", false, "x", 100, 99, false, true, 1, NULL},
		/* the window is over: d2 runs, and starts a window of its own */
		{"gh", "d2", false, "x", 100, 100, true, false, 1, NULL},
		{"gh", "d3", false, "x", 100, 150, false, true, 1, NULL},
		{"gh", "d1", false, "x", 100, 160, false, true, 1, NULL},
		/* expired entries are forgotten as time passes */
		{"gh", "d4", false, "y", 100, 500, true, false, 1, NULL},
	};
	run("expiry", REPLAYWIN_MAX, expiry, ARRAY_SIZE(expiry));

	static const struct step generated[] = {
		/* no id from the sender: the same body again is a duplicate,
		 * even under the same generated string */
		{"hm", "gen-1", true, "x", W, 0, true, false, 1, NULL},
		{"hm", "gen-2", true, "x", W, 1, false, true, 1, NULL},
		{"hm", "gen-1", true, "x", W, 2, false, true, 1, NULL},
		/* a sender's id equal to the generated string is not the same id */
		{"hm", "gen-1", false, "x", W, 3, false, true, 1, NULL},
	};
	run("generated", REPLAYWIN_MAX, generated, ARRAY_SIZE(generated));

	static const struct step bound[] = {
		{"gh", "d1", false, "a", W, 0, true, false, 1, NULL},
		{"gh", "d2", false, "b", W, 1, true, false, 2, NULL},
		{"gh", "d3", false, "c", W, 2, true, false, 3, NULL},
		/* full: the oldest goes */
		{"gh", "d4", false, "d", W, 3, true, false, 3, NULL},
		{"gh", "d5", false, "a", W, 4, false, false, 3, NULL},
		{"gh", "d6", false, "b", W, 5, false, true, 3, NULL},
	};
	run("bound", 3, bound, ARRAY_SIZE(bound));

	/* A long body and a long id: digests, whatever the length. */
	struct replaywin *w = replaywin_new(REPLAYWIN_MAX);
	size_t big = 1024 * 1024;
	unsigned char *body = xmalloc(big);
	memset(body, 'x', big);
	char id[256];
	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	CHECK(!replaywin_check(w, "gh", id, false, body, big, W, 0), "1 MiB body, first");
	replaywin_commit(w, "gh", id);
	body[big - 1] = 'y';
	CHECK(!replaywin_check(w, "gh", "other", false, body, big, W, 1), "last byte changed");
	body[big - 1] = 'x';
	CHECK(replaywin_check(w, "gh", "other", false, body, big, W, 2), "1 MiB body again");
	free(body);
	replaywin_free(w);
	replaywin_free(NULL);

	/* Forgotten (its delivery failed): the same body runs again; another
	 * endpoint's copy and an unknown body are left alone. */
	w = replaywin_new(REPLAYWIN_MAX);
	const unsigned char *b = (const unsigned char *)"{\"f\":1}";
	replaywin_forget(w, "gh", b, 7); /* nothing remembered yet */
	CHECK(!replaywin_check(w, "gh", "g1", true, b, 7, W, 0), "forget: first");
	replaywin_commit(w, "gh", "g1");
	CHECK(!replaywin_check(w, "gl", "g2", true, b, 7, W, 1), "forget: other endpoint");
	replaywin_commit(w, "gl", "g2");
	CHECK(replaywin_check(w, "gh", "g3", true, b, 7, W, 2), "forget: a duplicate before");
	replaywin_forget(w, "gh", b, 7);
	CHECK(replaywin_count(w) == 1, "forget: one left, %zu", replaywin_count(w));
	CHECK(!replaywin_check(w, "gh", "g4", true, b, 7, W, 3), "forget: runs again");
	CHECK(replaywin_check(w, "gl", "g5", true, b, 7, W, 4), "forget: the other endpoint's kept");
	replaywin_free(w);

	return check_done("replaywin");
}
