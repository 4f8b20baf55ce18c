/*
 * What `hookd events` and `hookd show` print (README "Command line"),
 * formatted into a buffer from the journal's read-back calls; the commands
 * write it to stdout. The output is built in memory first so that a slow
 * pager never holds a read open.
 */
#ifndef HOOKD_JOURNAL_FORMAT_H
#define HOOKD_JOURNAL_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "result.h"

struct journal;
struct strbuf;

/* events: newest first by first receipt; failed = FAILED, or pending again
 * after an attempt that was not 2xx; "http" is null (text: "-") before any
 * attempt. */
struct events_filter {
	bool failed;
	const char *event_glob; /* fnmatch, NULL: all */
	int64_t since_ms;       /* received at or after, 0: all */
	int limit;              /* <= 0: the default, 100 */
	bool json;
};
/* The list, appended to out; j NULL (no journal yet) lists none.
 * RESULT_OK, or RESULT_ERROR (logged; out is then not for printing). */
enum result journal_format_events(struct journal *j, const struct events_filter *f,
                                  struct strbuf *out);
/*
 * One delivery in full (endpoint NULL: at any endpoint), appended to out.
 * RESULT_OK; RESULT_UNKNOWN or RESULT_AMBIGUOUS with the words for the user
 * in err (no "hookd: ", no newline; empty when there are none to say);
 * RESULT_ERROR (logged). Only what RESULT_OK leaves in out is for printing.
 */
enum result journal_format_show(struct journal *j, const char *endpoint, const char *delivery_id,
                                struct strbuf *out, struct strbuf *err);
/*
 * The same delivery as one JSON object (README "Command line": show
 * --json), with the same results: the fields of the text, "headers" as
 * [{"name", "value"}], the kept body as "body" when it is UTF-8, else
 * "body_base64", and "attempt_list" with each attempt's hooks.
 */
enum result journal_format_show_json(struct journal *j, const char *endpoint,
                                     const char *delivery_id, struct strbuf *out,
                                     struct strbuf *err);
/*
 * Only the body, its bytes exactly as received (for `hookd run EVENT -`);
 * RESULT_BODY_CUT, with the words in err and nothing in out, when the
 * journal did not keep it whole.
 */
enum result journal_format_show_body(struct journal *j, const char *endpoint,
                                     const char *delivery_id, struct strbuf *out,
                                     struct strbuf *err);

#endif
