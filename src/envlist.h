/*
 * A hook's environment: "NAME=value" strings, one entry a name, and the
 * fixed start that many deliveries share (README "What a hook gets").
 * The delivery builds one for each hook; payload flattening (flatten.h)
 * appends to it.
 */
#ifndef HOOKD_ENVLIST_H
#define HOOKD_ENVLIST_H

#include <stddef.h>

/* A hook's environment: "NAME=value" strings. Its first entries may be
 * an envshare's (envlist_share): every delivery starts with the same fixed
 * environment, held once rather than copied into each one. A flattened
 * payload's entries are one allocation (an envblock), not one each. */
struct envshare;
struct envblock;
struct envlist {
	char **v; /* always NULL-terminated */
	size_t n, cap;
	size_t bytes; /* sum of strlen(entry) + 1 */
	struct envshare *shared; /* v[0 .. nshared) are its strings; NULL: none */
	size_t nshared;
	struct envblock *blocks; /* entries that live in these are not freed one by one */
};
void envlist_init(struct envlist *e);
void envlist_free(struct envlist *e);
/* Adding a NAME already present replaces its value (one entry a name). */
void envlist_add(struct envlist *e, const char *name, const char *value);
void envlist_add_len(struct envlist *e, const char *name, const char *value, size_t vlen);
/* Appends src's entries to dst, which holds none of src's names (an
 * empty list, say): a copy, names of any length. */
void envlist_copy(struct envlist *dst, const struct envlist *src);

/* A read-only copy of a list that many lists start with, freed with its
 * last reference. Taken and dropped on one thread (the event loop's). */
struct envshare *envshare_new(const struct envlist *src);
void envshare_unref(struct envshare *s);
/* dst (empty) starts with s's entries, by reference: they are copied into
 * dst only if one of them is replaced or removed, or dst is sorted. */
void envlist_share(struct envlist *dst, struct envshare *s);
/* Removes NAME's entry, if there is one. */
void envlist_remove(struct envlist *e, const char *name);
/* Finds NAME's entry index, or -1. */
long envlist_find(const struct envlist *e, const char *name);
/* Sorts by name in byte order (for `hookd env`). */
void envlist_sort(struct envlist *e);

#endif
