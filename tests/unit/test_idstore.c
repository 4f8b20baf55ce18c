/*
 * idstore: what the in-memory idempotency store knows after each step
 * (remember, update, forget), and the bound on finished ids: the oldest
 * finished is forgotten first, pending ones never. Each scenario is a table
 * of steps against one fresh store.
 */
#include "check.h"

#include <stdbool.h>
#include <stddef.h>

#include "idstore.h"
#include "util.h"

enum op { SET, REMOVE, FIND };

struct step {
	enum op op;
	const char *endpoint, *id;
	enum delivery_state state; /* SET: to remember; FIND: expected */
	int attempts;              /* SET: to remember; FIND: expected */
	bool want_found;           /* FIND */
	size_t want_count;         /* remembered after the step */
};

static void run(const char *name, size_t max_final, const struct step *steps, size_t n)
{
	struct idstore *s = idstore_new(max_final);
	for (size_t i = 0; i < n; i++) {
		const struct step *t = &steps[i];
		if (t->op == SET) {
			idstore_set(s, t->endpoint, t->id, t->state, t->attempts);
		} else if (t->op == REMOVE) {
			idstore_remove(s, t->endpoint, t->id);
		} else {
			enum delivery_state st = DSTATE_QUEUED;
			int attempts = -1;
			bool found = idstore_find(s, t->endpoint, t->id, &st, &attempts);
			CHECK(found == t->want_found, "%s step %zu: found %d", name, i, found);
			if (found && t->want_found) {
				CHECK(st == t->state, "%s step %zu: state %d", name, i, (int)st);
				CHECK(attempts == t->attempts, "%s step %zu: attempts %d", name, i,
				      attempts);
			}
		}
		CHECK(idstore_count(s) == t->want_count, "%s step %zu: %zu remembered", name, i,
		      idstore_count(s));
	}
	idstore_free(s);
}

#define Q DSTATE_QUEUED
#define R DSTATE_RUNNING
#define W DSTATE_RETRY_WAIT
#define OK DSTATE_SUCCEEDED
#define KO DSTATE_FAILED

int main(void)
{
	static const struct step basic[] = {
		{FIND, "gh", "d1", Q, 0, false, 0},
		{SET, "gh", "d1", Q, 1, false, 1},
		{FIND, "gh", "d1", Q, 1, true, 1},
		/* another endpoint, the same id: another delivery */
		{FIND, "gl", "d1", Q, 0, false, 1},
		/* the separator keeps "g"+"hd1" apart from "gh"+"d1" */
		{FIND, "g", "hd1", Q, 0, false, 1},
		{SET, "gh", "d1", R, 1, false, 1},
		{FIND, "gh", "d1", R, 1, true, 1},
		{SET, "gh", "d1", W, 1, false, 1},
		{SET, "gh", "d1", KO, 2, false, 1},
		{FIND, "gh", "d1", KO, 2, true, 1},
		{SET, "gl", "d1", OK, 1, false, 2},
		{REMOVE, "gh", "d1", Q, 0, false, 1},
		{FIND, "gh", "d1", Q, 0, false, 1},
		{REMOVE, "gh", "nope", Q, 0, false, 1},
		{FIND, "gl", "d1", OK, 1, true, 1},
	};
	run("basic", 100, basic, ARRAY_SIZE(basic));

	/* Two finished at most: pending ones stay however many. */
	static const struct step bound[] = {
		{SET, "e", "p1", Q, 1, false, 1},
		{SET, "e", "f1", OK, 1, false, 2},
		{SET, "e", "f2", KO, 1, false, 3},
		{SET, "e", "p2", R, 1, false, 4},
		{SET, "e", "f3", OK, 1, false, 4}, /* f1 goes */
		{FIND, "e", "f1", Q, 0, false, 4},
		{FIND, "e", "f2", KO, 1, true, 4},
		{FIND, "e", "p1", Q, 1, true, 4},
		/* f2 pending again (a resend's attempt): out of the line */
		{SET, "e", "f2", R, 2, false, 4},
		{SET, "e", "f4", OK, 1, false, 5},
		{FIND, "e", "f3", OK, 1, true, 5},
		/* f2 finishes again: last in line now; f3 goes */
		{SET, "e", "f2", KO, 2, false, 4},
		{FIND, "e", "f3", Q, 0, false, 4},
		{FIND, "e", "f4", OK, 1, true, 4},
		{FIND, "e", "f2", KO, 2, true, 4},
		/* a finished one removed frees its place in the line */
		{REMOVE, "e", "f4", Q, 0, false, 3},
		{SET, "e", "p1", OK, 1, false, 3},
		{FIND, "e", "f2", KO, 2, true, 3},
		{FIND, "e", "p2", R, 1, true, 3},
	};
	run("bound", 2, bound, ARRAY_SIZE(bound));

	return check_done("idstore");
}
