/*
 * A hook's environment: the list of "NAME=value" strings a delivery
 * builds, the fixed part many deliveries share (envshare), and the blocks
 * a flattened payload's entries are written into (README "What a hook
 * gets").
 */
#include "envlist.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envlist_private.h"
#include "util.h"

void envlist_init(struct envlist *e)
{
	e->cap = 16;
	e->v = xcalloc(e->cap, sizeof *e->v);
	e->n = 0;
	e->bytes = 0;
	e->shared = NULL;
	e->nshared = 0;
	e->blocks = NULL;
}

/* Entries written together (a flattened payload), freed with the list. */
struct envblock {
	struct envblock *next;
	size_t len;
	char text[];
};

/* A block for len bytes of entries, which e frees. */
char *envlist_block(struct envlist *e, size_t len)
{
	struct envblock *b = xmalloc(sizeof(*b) + len);
	b->len = len;
	b->next = e->blocks;
	e->blocks = b;
	return b->text;
}

/* Whether entry was allocated on its own (and is freed on its own). */
static bool entry_is_own(const struct envlist *e, size_t i)
{
	if (i < e->nshared)
		return false;
	uintptr_t p = (uintptr_t)e->v[i];
	for (const struct envblock *b = e->blocks; b; b = b->next) {
		if (p >= (uintptr_t)b->text && p < (uintptr_t)b->text + b->len)
			return false;
	}
	return true;
}

static void entry_free(struct envlist *e, size_t i)
{
	if (entry_is_own(e, i))
		free(e->v[i]);
}

struct envshare {
	size_t refs;
	struct envlist list;
};

struct envshare *envshare_new(const struct envlist *src)
{
	struct envshare *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	envlist_init(&s->list);
	envlist_copy(&s->list, src);
	return s;
}

void envshare_unref(struct envshare *s)
{
	if (s && --s->refs == 0) {
		envlist_free(&s->list);
		free(s);
	}
}

/* The shared entries become this list's own copies, before one of them
 * changes (or moves, in a sort). */
static void envlist_unshare(struct envlist *e)
{
	for (size_t i = 0; i < e->nshared; i++)
		e->v[i] = xstrdup(e->v[i]);
	envshare_unref(e->shared);
	e->shared = NULL;
	e->nshared = 0;
}

void envlist_share(struct envlist *dst, struct envshare *s)
{
	const struct envlist *src = &s->list;
	if (!dst->v)
		envlist_init(dst);
	while (src->n + 1 > dst->cap) {
		dst->cap *= 2;
		dst->v = xrealloc(dst->v, dst->cap * sizeof *dst->v);
	}
	memcpy(dst->v, src->v, (src->n + 1) * sizeof *dst->v); /* the NULL too */
	dst->n = dst->nshared = src->n;
	dst->bytes = src->bytes;
	dst->shared = s;
	s->refs++;
}

void envlist_free(struct envlist *e)
{
	if (!e || !e->v)
		return;
	for (size_t i = e->nshared; i < e->n; i++)
		entry_free(e, i);
	envshare_unref(e->shared);
	while (e->blocks) {
		struct envblock *b = e->blocks;
		e->blocks = b->next;
		free(b);
	}
	free(e->v);
	e->v = NULL;
	e->n = e->cap = e->bytes = e->nshared = 0;
	e->shared = NULL;
}

size_t envlist_entry_name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

long envlist_find(const struct envlist *e, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < e->n; i++) {
		/* Inline: most entries differ within a few bytes of a shared
		 * prefix, and a delivery looks up every variable it adds among
		 * all it has (a strncmp call each was a visible cost). Stops at
		 * the first difference, so never reads past the entry's end. */
		const char *v = e->v[i];
		size_t k = 0;
		while (k < n && v[k] == name[k])
			k++;
		if (k == n && v[n] == '=')
			return (long)i;
	}
	return -1;
}

void envlist_remove(struct envlist *e, const char *name)
{
	long i = e->v ? envlist_find(e, name) : -1;
	if (i < 0)
		return;
	if ((size_t)i < e->nshared)
		envlist_unshare(e);
	e->bytes -= strlen(e->v[i]) + 1;
	entry_free(e, (size_t)i);
	memmove(&e->v[i], &e->v[i + 1], (e->n - (size_t)i) * sizeof(*e->v)); /* the NULL too */
	e->n--;
}

/* Appends without looking for NAME: for callers that know it is new;
 * len is strlen(entry). */
void envlist_append_len(struct envlist *e, char *entry, size_t len)
{
	if (!e->v)
		envlist_init(e);
	/* One spare slot keeps v NULL-terminated at all times. */
	if (e->n + 2 > e->cap) {
		e->cap *= 2;
		e->v = xrealloc(e->v, e->cap * sizeof *e->v);
	}
	e->v[e->n++] = entry;
	e->v[e->n] = NULL;
	e->bytes += len + 1;
}

static void envlist_append(struct envlist *e, char *entry)
{
	envlist_append_len(e, entry, strlen(entry));
}

static char *make_entry(const char *name, const char *value, size_t vlen)
{
	size_t nlen = strlen(name);
	char *entry = xmalloc(nlen + 1 + vlen + 1);
	memcpy(entry, name, nlen);
	entry[nlen] = '=';
	memcpy(entry + nlen + 1, value, vlen);
	entry[nlen + 1 + vlen] = '\0';
	return entry;
}

void envlist_add_len(struct envlist *e, const char *name, const char *value, size_t vlen)
{
	char *entry = make_entry(name, value, vlen);
	long i = e->v ? envlist_find(e, name) : -1;
	if (i >= 0) {
		/* A name given twice: the later value replaces the earlier, so
		 * a hook never sees two entries that getenv() would pick from. */
		if ((size_t)i < e->nshared)
			envlist_unshare(e);
		e->bytes -= strlen(e->v[i]) + 1;
		entry_free(e, (size_t)i);
		e->v[i] = entry;
		e->bytes += strlen(entry) + 1;
		return;
	}
	envlist_append(e, entry);
}

void envlist_copy(struct envlist *dst, const struct envlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		envlist_append(dst, xstrdup(src->v[i]));
}

void envlist_add(struct envlist *e, const char *name, const char *value)
{
	envlist_add_len(e, name, value ? value : "", value ? strlen(value) : 0);
}

static int entry_cmp(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t nx = envlist_entry_name_len(x), ny = envlist_entry_name_len(y);
	/* The names alone, a name before any longer one it starts: comparing
	 * whole entries would put "A0=" before "A=" ('0' < '='). */
	int c = memcmp(x, y, nx < ny ? nx : ny);
	if (c)
		return c;
	return nx < ny ? -1 : nx > ny;
}

void envlist_sort(struct envlist *e)
{
	envlist_unshare(e);
	if (e->n > 1)
		qsort(e->v, e->n, sizeof *e->v, entry_cmp);
}
