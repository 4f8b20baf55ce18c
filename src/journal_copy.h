/*
 * A journal's deliveries as lines of text, for `hookd journal export` and
 * `import` (README "Moving from SQLite"): one JSON object a line, one line
 * a delivery, with everything the journal holds of it (its attempts and
 * their hooks' outcomes too), bytes as base64. A line read back is the
 * delivery as journal_import takes it.
 */
#ifndef HOOKD_JOURNAL_COPY_H
#define HOOKD_JOURNAL_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "util.h"

/* The format's version, the "v" of every line. */
#define JOURNAL_COPY_VERSION 1

/* One delivery whole. What journal_copy_read and journal_copy_parse fill
 * owns its strings (journal_copy_free); one built by hand may point
 * anywhere (and is only formatted). */
struct journal_copy {
	struct journal_entry entry;
	struct journal_attempt *attempts;
	size_t nattempts;
	/* The strings and arrays the above point into. */
	void **owned;
	size_t nowned, owned_cap;
};

/* The delivery at rowid, read whole: RESULT_OK, RESULT_UNKNOWN (no longer
 * there) or RESULT_ERROR. */
enum result journal_copy_read(struct journal *j, int64_t rowid, struct journal_copy *out);

/* Appends the delivery's line, its newline included. */
void journal_copy_format(const struct journal_copy *c, struct strbuf *sb);

/* One line (without its newline) back into a delivery: true, or false
 * with the reason in err (out is then empty). */
bool journal_copy_parse(const char *line, size_t len, struct journal_copy *out, char *err,
                        size_t errlen);

void journal_copy_free(struct journal_copy *c);

#endif
