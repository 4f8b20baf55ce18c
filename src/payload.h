/*
 * The request body: Content-Type classification, JSON (and form) decoding,
 * dotted-path look-ups. It includes envlist.h (a hook's environment) and
 * flatten.h (every scalar leaf into that environment, README "What a hook
 * gets"), which a payload's callers use with it.
 */
#ifndef HOOKD_PAYLOAD_H
#define HOOKD_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "envlist.h"
#include "flatten.h"

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

/* Frees what parsing keeps between bodies (its JSON tokener); at exit. */
void payload_cleanup(void);

#endif
