/*
 * A payload's scalar leaves as a hook's environment variables (README
 * "What a hook gets", "Flattening the payload"): the names, the order,
 * the budget, and a report of what was left out. The delivery calls it
 * (through payload.h, which includes this).
 */
#ifndef HOOKD_FLATTEN_H
#define HOOKD_FLATTEN_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "envlist.h"

/* Normalizes one key per README "What a hook gets" into out (>= strlen(key)*2+1); returns the
 * length, 0 when the key normalizes to nothing. */
size_t env_key_normalize(const char *key, size_t keylen, char *out);

/*
 * How a payload is flattened: the prefix, the names it never takes, and
 * the budget (README "Flattening the payload").
 */
struct flatten_opts {
	const char *prefix;
	const char *const *reserved; /* full names, prefix included, NULL-terminated; or NULL */
	size_t max_vars;  /* payload variables at most (env_max_vars) */
	size_t max_bytes; /* their strlen("N=v") + 1 in all at most (env_max_bytes) */
	size_t array_max; /* elements an array gives at most (env_array_max) */
};
#define FLATTEN_OPTS(prefix, reserved)                                                   \
	((struct flatten_opts){(prefix), (reserved), FLATTEN_MAX_VARS, FLATTEN_MAX_BYTES, \
	                       FLATTEN_ARRAY_MAX})

/* What a flattening left out, for the log line that says so. */
#define FLATTEN_REPORT_NAMES 8
struct flatten_report {
	size_t omitted;      /* leaves left out by a limit */
	size_t collisions;   /* leaves whose name a metadata variable or an earlier leaf held */
	char *omitted_names; /* the first FLATTEN_REPORT_NAMES of them, space-separated; or NULL */
	char *collided;      /* "NAME (path), ..." for the first collisions' losers; or NULL */
};
void flatten_report_free(struct flatten_report *r);

/*
 * Flattens every scalar leaf of root into env with the prefix, and gives
 * each array a <NAME>_COUNT. Candidates are admitted in this order: those
 * inside no array, then those inside one array, then inside two, ...;
 * within each, shallowest first, in document order within a depth (an
 * array's count sits where the array is). Each array gives its first
 * array_max elements; the rest are left out. Names in `reserved` and
 * names already in env are never taken; between two leaves with one
 * name, the first admitted wins, and a leaf left out by a limit still
 * holds its name. Left out (and counted): strings with a NUL byte,
 * values over 64 KiB, names over 4 KiB, leaves deeper than 32 levels,
 * elements past array_max, and whatever does not fit max_vars or
 * max_bytes. Collisions are counted apart; a leaf equal to the metadata
 * variable it meets (a body's "event" naming the delivery's event) is
 * not one. Leaves whose name is empty are dropped without a count.
 * Variables are appended in admission order. rep may be NULL.
 */
void payload_flatten(json_object *root, const struct flatten_opts *o, struct envlist *env,
                     struct flatten_report *rep);

/*
 * payload_flatten for a body json_scan accepted, whole and as it was
 * scanned (the walk trusts its structure and reads only up to the root
 * object's closing brace), from its text: the same
 * variables, in the same order, and the same report, without building a
 * tree. Returns false, env as it was and rep empty, for a body with an
 * object that has a key twice: that one needs json-c's tree (the last
 * value, in the first one's place).
 */
bool payload_flatten_text(const char *body, size_t len, const struct flatten_opts *o,
                          struct envlist *env, struct flatten_report *rep);

#define FLATTEN_MAX_VALUE (64 * 1024)
#define FLATTEN_MAX_VARS 1024
#define FLATTEN_MAX_BYTES (512 * 1024)
#define FLATTEN_MAX_DEPTH 32
#define FLATTEN_MAX_NAME 4096 /* execve refuses one string over 128 KiB */
#define FLATTEN_ARRAY_MAX 32
/* Names and values a flattening holds while it orders them; past this
 * (only a payload built for it: 4 KiB names on short leaves) the rest is
 * left out. */
#define FLATTEN_COLLECT_MAX (16 * 1024 * 1024)

#endif
