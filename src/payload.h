/*
 * The request body: Content-Type classification, JSON (and form) decoding,
 * dotted-path look-ups, and the flattening of every scalar leaf into a
 * hook's environment (README "What a hook gets").
 */
#ifndef HOOKD_PAYLOAD_H
#define HOOKD_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "envlist.h"

#define EVENT_NAME_MAX 128

/* ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$ over exactly len bytes. */
bool event_name_valid(const char *name, size_t len);

enum content_kind { CONTENT_JSON, CONTENT_FORM, CONTENT_OTHER };
/* NULL or empty is JSON; application/json and any x/y+json are JSON,
 * parameters allowed, case-insensitive; x-www-form-urlencoded is FORM. */
enum content_kind content_type_classify(const char *content_type);

/*
 * Parses exactly len bytes as one JSON object (depth <= JSON_MAX_DEPTH of jsonscan.h,
 * nothing but whitespace after it). NULL with a short reason in err
 * ("body is not valid JSON", "body is not a JSON object", "JSON nests
 * deeper than 1000 levels").
 */
json_object *payload_parse_json(const char *body, size_t len, char *err, size_t errlen);
/* The same for a body json_scan has accepted already, with its count of
 * big numbers: what a delivery does with a body the server scanned. */
json_object *payload_parse_scanned(const char *body, size_t len, size_t big_numbers, char *err,
                                   size_t errlen);

/*
 * application/x-www-form-urlencoded: decodes every field. With
 * `json_field` set (github: "payload", slack interactivity), the result is
 * that field parsed as JSON (NULL with err when missing or not an object);
 * when json_field is NULL, an object of the fields as strings (slack slash
 * commands). `json_field_optional`: fall back to the fields object when the
 * field is absent.
 */
json_object *payload_parse_form(const char *body, size_t len, const char *json_field,
                                bool json_field_optional, char *err, size_t errlen);

/*
 * The value at a dotted path ("data.build.id", array indices as numbers:
 * "items.2.name"). Returns a newly allocated string: strings as they are,
 * numbers and booleans as their JSON text, null as "". NULL when the path
 * is missing or names an object, an array or a string holding a NUL byte.
 */
char *payload_get_path(json_object *root, const char *dotted);
/* Whether s is a dotted path a config may name ("event", "data.build.id"):
 * no empty segment, no space or control character. */
bool payload_path_valid(const char *s);
/* Like payload_get_path but only for string leaves; *found says whether the
 * path existed at all (present but not a string: returns NULL, found true;
 * a string holding a NUL byte counts as not a string). */
const char *payload_get_string(json_object *root, const char *dotted, bool *found);

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

/* Frees what parsing keeps between bodies (its JSON tokener); at exit. */
void payload_cleanup(void);

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
