/*
 * An [event] section's `match` (README "[event NAME]"): terms PATH=GLOB and
 * PATH!=GLOB, separated by spaces, that a delivery's payload must all meet
 * for its hooks to run; one that does not is skipped. PATH is a dotted
 * payload path (payload_get_path), GLOB an fnmatch(3) pattern without
 * flags: `*` matches any run of characters, `/` included. A term, or any
 * part of one, may be put in double quotes to hold spaces; within quotes,
 * \" and \\ stand for " and \.
 */
#ifndef HOOKD_MATCH_H
#define HOOKD_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

struct strbuf;

struct match_term {
	char *path;
	char *glob;
	bool negate; /* PATH!=GLOB */
};

struct match_rule {
	struct match_term *v;
	size_t n;
};

/* Parses text into out (at least one term). false, with the reason in err
 * and out empty, when it is not a list of valid terms. */
bool match_parse(const char *text, struct match_rule *out, char *err, size_t errlen);
void match_free(struct match_rule *r);

/*
 * The first term root does not meet, or -1 when it meets them all. A path
 * that is missing, or names an object or an array, has no value: PATH=GLOB
 * fails on it and PATH!=GLOB holds. null is the empty string, numbers and
 * booleans their JSON text. root may be NULL (a body that is not JSON):
 * every path is missing.
 */
long match_eval(const struct match_rule *r, json_object *root);

/* One term as written back (`hookd check`, the log): quoted when needed. */
void match_format_term(struct strbuf *sb, const struct match_term *t);
/* The whole rule, terms separated by one space. */
void match_format(struct strbuf *sb, const struct match_rule *r);

#endif
