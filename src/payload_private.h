/*
 * What the payload's flattening (flatten.c) takes from payload.c: a
 * scalar's text as a hook sees it, which payload_get_path gives too, and
 * the digit test key normalization uses. Only those two files include it.
 */
#ifndef HOOKD_PAYLOAD_PRIVATE_H
#define HOOKD_PAYLOAD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* A scalar's text (n bytes, may hold a NUL for strings); NULL for objects
 * and arrays. */
const char *payload_scalar_text(json_object *o, size_t *n);
/* '0'..'9'. */
bool payload_is_digit(unsigned char c);

#endif
