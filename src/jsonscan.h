/*
 * One pass over a JSON body that builds nothing: it decides whether the
 * body is JSON as RFC 8259 defines it (an object at the top, containers
 * nested at most JSON_MAX_DEPTH deep), and reports where a few wanted
 * dotted paths lead, so that a delivery can be identified and routed
 * before, or without, json-c building the whole tree.
 *
 * It is the one judge of "is this valid JSON" in hookd: payload_parse_json
 * asks it first and hands json-c only what it accepted, so the answer to a
 * body does not depend on whether a hook exists for its event.
 */
#ifndef HOOKD_JSONSCAN_H
#define HOOKD_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* The deepest containers may nest in a body hookd takes (json-c is told the
 * same, so that both judge a body alike). */
#define JSON_MAX_DEPTH 1000

enum json_scan_result {
	JSON_SCAN_OK,
	JSON_SCAN_INVALID,    /* not JSON */
	JSON_SCAN_TOO_DEEP,   /* containers nest deeper than JSON_MAX_DEPTH */
	JSON_SCAN_NOT_OBJECT, /* valid JSON, but not an object */
	JSON_SCAN_BAD_UTF8,   /* not JSON: a string holds bytes that are not UTF-8 */
	JSON_SCAN_EMPTY,      /* no bytes at all (told apart: a sender's file was missing) */
};

#define JSON_SCAN_MAX_FIELDS 8
#define JSON_SCAN_MAX_SEGMENTS 8

/* A dotted path of object keys ("data.build.id") and what the body holds
 * there. As json-c keeps the last of duplicate keys, so does the scan. */
struct json_scan_field {
	const char *path;
	bool found;
	enum json_type type; /* of the value, when found */
	size_t off, len;     /* a string's bytes between its quotes */
	bool escaped;        /* that string holds a backslash escape */
};

struct json_scan {
	struct json_scan_field *fields;
	size_t nfields;
	/* Out: integer tokens json-c cannot hold as they are (beyond 64 bits,
	 * and -0); payload_parse_json rewrites them before json-c reads them. */
	size_t big_numbers;
	/* Out: the fields cannot be reported exactly from the raw bytes (a
	 * path with an array index or too many segments, an escape in a key
	 * on a wanted path, an escaped string value): build the tree. */
	bool need_tree;
};

/* Scans exactly len bytes. With scan NULL, only validates. */
enum json_scan_result json_scan(const char *body, size_t len, struct json_scan *scan);

/* An integer token (no fraction, no exponent) that json-c would not keep
 * as it is written: beyond its 64-bit range, or -0. */
bool json_int_token_big(const char *tok, size_t n);

/* The short reason for a result other than JSON_SCAN_OK, as answers say it. */
const char *json_scan_error(enum json_scan_result r);

#endif
