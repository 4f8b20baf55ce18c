/*
 * What `hookd events` and `hookd show` print (README "Command line"),
 * formatted into a buffer from the journal's read-back calls; the commands
 * write it to stdout. The output is built in memory first so that a slow
 * pager never holds a read open. The admin API words a delivery with the
 * same JSON pieces (journal_json_*).
 */
#ifndef HOOKD_JOURNAL_FORMAT_H
#define HOOKD_JOURNAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "result.h"

struct journal;
struct journal_attempt;
struct journal_entry;
struct journal_hook;
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
 * How show learns env_omitted, the payload variables the limits left out
 * of the delivery's environment (as the admin API gives it): rebuilt from
 * its row by the caller, who has the config; -1: it cannot be (as for a
 * body the journal kept cut). NULL: show leaves env_omitted out.
 */
struct journal_show_env {
	long (*env_omitted)(struct journal *j, int64_t rowid, int attempts, void *arg);
	void *arg;
};

/*
 * One delivery in full (endpoint NULL: at any endpoint), appended to out.
 * RESULT_OK; RESULT_UNKNOWN or RESULT_AMBIGUOUS with the words for the user
 * in err (no "hookd: ", no newline; empty when there are none to say);
 * RESULT_ERROR (logged). Only what RESULT_OK leaves in out is for printing.
 */
enum result journal_format_show(struct journal *j, const char *endpoint, const char *delivery_id,
                                const struct journal_show_env *env, struct strbuf *out,
                                struct strbuf *err);
/*
 * The same delivery as one JSON object (README "Command line": show
 * --json), with the same results: the fields of the text, "headers" as
 * [{"name", "value"}], the kept body as "body" when it is UTF-8, else
 * "body_base64", "env_omitted" (null when not known) and "attempt_list"
 * with each attempt's hooks.
 */
enum result journal_format_show_json(struct journal *j, const char *endpoint,
                                     const char *delivery_id,
                                     const struct journal_show_env *env, struct strbuf *out,
                                     struct strbuf *err);
/*
 * A delivery as JSON, the pieces that show --json and the admin API's
 * detail (webjson.c) share. The two agree on every field but those a style
 * names: both are published, so each keeps its words and its order.
 */
struct journal_json_style {
	const char *next_key;     /* the next retry's time: "next_due_at" (show), "next_retry_at" */
	bool running;             /* "running" follows it (the API adds it last, or not at all) */
	bool body_null_if_binary; /* "body":null before "body_base64" */
	bool replay;              /* each attempt says whether it was a replay */
};
extern const struct journal_json_style journal_json_show_style;
/* The delivery's object, left open (the caller adds its fields and '}'). */
void journal_json_entry(struct strbuf *sb, const struct journal_entry *e,
                        const struct journal_json_style *st);
/* ,"running":{"attempt":N,"since":TIME} while it runs, else ,"running":null. */
void journal_json_running(struct strbuf *sb, const struct journal_entry *e);
/* An attempt's object, left open inside its "hooks":[ (the caller closes
 * with "]}"); its hooks follow with journal_json_hook, i counting from 0. */
void journal_json_attempt(struct strbuf *sb, const struct journal_attempt *a,
                          const struct journal_json_style *st);
void journal_json_hook(struct strbuf *sb, const struct journal_hook *h, size_t i);
/*
 * Only the body, its bytes exactly as received (for `hookd run EVENT -`);
 * RESULT_BODY_CUT, with the words in err and nothing in out, when the
 * journal did not keep it whole.
 */
enum result journal_format_show_body(struct journal *j, const char *endpoint,
                                     const char *delivery_id, struct strbuf *out,
                                     struct strbuf *err);

#endif
