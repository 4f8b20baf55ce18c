/*
 * A payload's scalar leaves as a hook's variables (README "What a hook
 * gets", "Flattening the payload"): key normalization, the candidates
 * collected by a walk over json-c's tree or straight over the body's
 * text, their order, and their admission into the budget.
 */
#include "flatten.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envlist_private.h"
#include "payload_private.h"
#include "util.h"

static bool is_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

/* ---- flattening (README "What a hook gets") ---- */

size_t env_key_normalize(const char *key, size_t keylen, char *out)
{
	size_t o = 0;
	bool pending = false; /* an '_' to write before the next letter or digit */
	for (size_t i = 0; i < keylen; i++) {
		unsigned char c = (unsigned char)key[i];
		if (i > 0 && is_upper(c)) {
			unsigned char p = (unsigned char)key[i - 1];
			if (is_lower(p) || payload_is_digit(p))
				pending = true; /* camelCase, v2Api */
		}
		if (is_lower(c))
			c = (unsigned char)(c - 'a' + 'A');
		if (!is_upper(c) && !payload_is_digit(c)) {
			pending = true; /* runs collapse: one flag, not a count */
			continue;
		}
		/* No '_' before the first letter or digit: leading '_' go. */
		if (pending && o > 0)
			out[o++] = '_';
		pending = false;
		out[o++] = (char)c;
	}
	/* A pending '_' at the end is never written: trailing '_' go. */
	out[o] = '\0';
	return o;
}

/*
 * The names already held while flattening: a set of copies, open
 * addressing over one arena of NUL-separated names. (A json-c object did
 * this before; its table started at 16 entries and was resized twice for
 * a small payload, the largest cost of flattening one.)
 */
struct nameset {
	size_t *slots;     /* offset + 1 of the name in `names`; 0: empty */
	uint32_t *hashes;
	size_t cap, n;     /* cap: a power of two, at least twice n */
	struct strbuf names;
};

/* Drawn once a process, so that names a sender chose to share a slot in
 * one process do not in another. */
static uint32_t name_seed(void)
{
	static uint32_t seed;
	static bool drawn;
	if (!drawn) {
		if (getentropy(&seed, sizeof(seed)) != 0)
			seed = (uint32_t)getpid() * 2654435761u;
		drawn = true;
	}
	return seed;
}

/* Seeded, eight bytes a step (a multiply and a shift each): names are
 * mostly a long shared prefix ("HOOK_DATA_"), which a byte at a time
 * (FNV-1a, before) spent most of a delivery's flattening on. */
static uint32_t name_hash(const char *s, size_t n)
{
	uint64_t h = (0x9E3779B97F4A7C15u ^ name_seed()) + n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, sizeof(w));
		h = (h ^ w) * 0xFF51AFD7ED558CCDu;
		h ^= h >> 32;
	}
	uint64_t tail = 0;
	if (n >= 8 && i < n) {
		memcpy(&tail, s + n - 8, sizeof(tail)); /* the last eight, overlapping */
	} else {
		for (unsigned shift = 0; i < n; i++, shift += 8)
			tail |= (uint64_t)(unsigned char)s[i] << shift;
	}
	h = (h ^ tail) * 0xC4CEB9FE1A85EC53u;
	h ^= h >> 29;
	return (uint32_t)h;
}

/* Room for `expect` names (more are fine: the set grows), so that the
 * usual payload never rehashes nor moves its names. */
static void nameset_init(struct nameset *ns, size_t expect)
{
	size_t cap = 64;
	while (cap < expect * 2 + 2)
		cap *= 2;
	ns->cap = cap;
	ns->n = 0;
	ns->slots = xcalloc(cap, sizeof(*ns->slots));
	ns->hashes = xmalloc(cap * sizeof(*ns->hashes));
	sb_init(&ns->names);
	/* Names are a few dozen bytes; a large payload's grow as they come. */
	sb_reserve(&ns->names, expect < 170 ? expect * 24 : 4096);
}

static void nameset_free(struct nameset *ns)
{
	free(ns->slots);
	free(ns->hashes);
	sb_free(&ns->names);
}

static size_t nameset_find(const struct nameset *ns, const char *s, size_t n, uint32_t h,
                           bool *found)
{
	size_t i = h & (ns->cap - 1);
	for (; ns->slots[i]; i = (i + 1) & (ns->cap - 1)) {
		const char *have = ns->names.buf + ns->slots[i] - 1;
		/* strncmp stops at the end of a shorter name; s holds no NUL. */
		if (ns->hashes[i] == h && strncmp(have, s, n) == 0 && have[n] == '\0') {
			*found = true;
			return i;
		}
	}
	*found = false;
	return i;
}

/* Adds s[0..n); false when it was there already. */
static bool nameset_add(struct nameset *ns, const char *s, size_t n)
{
	uint32_t h = name_hash(s, n);
	bool found;
	size_t i = nameset_find(ns, s, n, h, &found);
	if (found)
		return false;
	if ((ns->n + 1) * 2 > ns->cap) {
		size_t *old = ns->slots;
		uint32_t *oldh = ns->hashes;
		size_t oldcap = ns->cap;
		ns->cap *= 2;
		ns->slots = xcalloc(ns->cap, sizeof(*ns->slots));
		ns->hashes = xmalloc(ns->cap * sizeof(*ns->hashes));
		for (size_t j = 0; j < oldcap; j++) {
			if (!old[j])
				continue;
			size_t k = oldh[j] & (ns->cap - 1);
			while (ns->slots[k])
				k = (k + 1) & (ns->cap - 1);
			ns->slots[k] = old[j];
			ns->hashes[k] = oldh[j];
		}
		free(old);
		free(oldh);
		i = h & (ns->cap - 1);
		while (ns->slots[i])
			i = (i + 1) & (ns->cap - 1);
	}
	ns->slots[i] = ns->names.len + 1;
	ns->hashes[i] = h;
	sb_reserve(&ns->names, n + 1);
	memcpy(ns->names.buf + ns->names.len, s, n);
	ns->names.buf[ns->names.len + n] = '\0';
	ns->names.len += n + 1;
	ns->n++;
	return true;
}

/*
 * Flattening collects every candidate first (its name, its value, where
 * it is), orders them (README "Flattening the payload": outside arrays
 * first, shallowest first, in document order), and then admits them into
 * the budget. Both walks, over json-c's tree and over the text, collect
 * the same candidates in the same order, and share the rest.
 */

/* Where a candidate is, for naming the loser of a collision: a chain of
 * parents up to the root. */
struct path_node {
	size_t parent;   /* SIZE_MAX: the root */
	const char *key; /* an object key (json-c's, or the text's opening quote); NULL: index */
	size_t index;    /* an element's index; SIZE_MAX with key NULL: the array's count */
};

enum leaf_kind {
	LEAF_VALUE, /* a scalar or an array's count */
	LEAF_CUT,   /* what an array past array_max or a level past 32 left out */
};

/* Why a candidate cannot be kept, whatever the budget. */
enum leaf_unfit {
	FIT,
	UNFIT_VALUE, /* a NUL byte, over 64 KiB, or over max_bytes on its own */
	UNFIT_NAME,  /* over 4 KiB: its name is not held */
};

struct leaf {
	size_t name_off, value_off, value_len; /* in the arena */
	size_t name_len;
	size_t node;        /* its path_node */
	size_t ordinal;     /* document order */
	size_t cut_leaves;  /* LEAF_CUT: how many leaves it stands for */
	unsigned short group, level; /* arrays around it; its depth */
	unsigned char kind, unfit;
};

struct flatten {
	const struct flatten_opts *o;
	size_t prefixlen;
	struct envlist *env;
	struct strbuf name;
	bool keys_quoted; /* path keys point at the text's quotes (the text walk) */
	/* The candidates. */
	struct leaf *leaves;
	size_t nleaves, leaves_cap;
	struct path_node *nodes;
	size_t nnodes, nodes_cap;
	struct strbuf arena;
	/* Where the walk is: its container's node, the key or index of the
	 * value it is at, and the arrays around it. */
	size_t node;
	const char *key;
	size_t index;
	unsigned short group;
	size_t counted;  /* leaves met below a cut, for the cut's count */
	size_t overflow; /* leaves met past FLATTEN_COLLECT_MAX */
};

static const char *decode_string(const char *p, struct strbuf *out);

/* v in decimal at buf (room for 21 bytes), no NUL; returns its length.
 * snprintf's formatting machinery was a tenth of flattening a payload. */
static size_t put_decimal(char *buf, size_t v)
{
	char rev[24];
	size_t k = 0;
	do {
		rev[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < k; i++)
		buf[i] = rev[k - 1 - i];
	return k;
}

static size_t node_add(struct flatten *f, size_t parent, const char *key, size_t index)
{
	if (f->nnodes == f->nodes_cap) {
		f->nodes_cap = f->nodes_cap ? f->nodes_cap * 2 : 32;
		f->nodes = xrealloc(f->nodes, f->nodes_cap * sizeof(*f->nodes));
	}
	f->nodes[f->nnodes] = (struct path_node){parent, key, index};
	return f->nnodes++;
}

/* A container: the node its children hang from; returns the one to restore. */
static size_t node_enter(struct flatten *f)
{
	size_t saved = f->node;
	f->node = node_add(f, f->node, f->key, f->index);
	return saved;
}

/* Appends one path key to the name; returns what name_pop() takes back. */
static size_t name_push(struct flatten *f, const char *key, size_t keylen)
{
	size_t saved = f->name.len;
	char small[64];
	char *norm = keylen * 2 + 1 <= sizeof small ? small : xmalloc(keylen * 2 + 1);
	size_t n = env_key_normalize(key, keylen, norm);
	if (n > 0) {
		if (f->name.len > f->prefixlen)
			sb_putc(&f->name, '_');
		sb_append(&f->name, norm, n);
	}
	if (norm != small)
		free(norm);
	return saved;
}

static size_t name_push_index(struct flatten *f, size_t i)
{
	char idx[24];
	return name_push(f, idx, put_decimal(idx, i));
}

static void name_pop(struct flatten *f, size_t saved)
{
	f->name.len = saved;
	f->name.buf[saved] = '\0';
}

/* Appends s[0..n) and a NUL to the arena; returns where it starts. */
static size_t arena_put(struct strbuf *arena, const char *s, size_t n)
{
	size_t off = arena->len;
	sb_append(arena, s, n);
	arena->len++; /* the NUL sb_append wrote: every entry is a C string */
	return off;
}

/* A new candidate under the current name, at the current place. */
static struct leaf *leaf_new(struct flatten *f, enum leaf_kind kind, size_t level)
{
	if (f->nleaves == f->leaves_cap) {
		f->leaves_cap = f->leaves_cap ? f->leaves_cap * 2 : 32;
		f->leaves = xrealloc(f->leaves, f->leaves_cap * sizeof(*f->leaves));
	}
	struct leaf *l = &f->leaves[f->nleaves];
	memset(l, 0, sizeof(*l));
	l->ordinal = f->nleaves++;
	l->kind = (unsigned char)kind;
	l->level = (unsigned short)level;
	l->group = f->group;
	l->node = node_add(f, f->node, f->key, f->index);
	l->name_len = f->name.len;
	if (l->name_len > FLATTEN_MAX_NAME) {
		/* Kept short for the log; such a name is never held. */
		l->unfit = UNFIT_NAME;
		l->name_off = f->arena.len;
		sb_append(&f->arena, f->name.buf, 64);
		arena_put(&f->arena, "...", 3);
		l->name_len = 64 + 3;
	} else {
		l->name_off = arena_put(&f->arena, f->name.buf, f->name.len);
	}
	return l;
}

/* One scalar, its value val[0..vlen) as a hook sees it. */
static void flatten_value(struct flatten *f, const char *val, size_t vlen, size_t level)
{
	/* A leaf whose keys all normalize to nothing has no name to take:
	 * not a limit, so not counted. */
	if (f->name.len == f->prefixlen)
		return;
	if (f->arena.len > FLATTEN_COLLECT_MAX) {
		f->overflow++;
		return;
	}
	struct leaf *l = leaf_new(f, LEAF_VALUE, level);
	if (l->unfit)
		return;
	if (memchr(val, '\0', vlen) || vlen > FLATTEN_MAX_VALUE ||
	    l->name_len + vlen + 2 > f->o->max_bytes) {
		l->unfit = UNFIT_VALUE;
		return;
	}
	l->value_off = arena_put(&f->arena, val, vlen);
	l->value_len = vlen;
}

/* An array's <NAME>_COUNT, where the array is; its value comes with
 * count_set (the text walk knows the length only at the end). Returns
 * the candidate's index, or SIZE_MAX when the array has no name. */
static size_t count_add(struct flatten *f, size_t level)
{
	if (f->name.len == f->prefixlen || f->arena.len > FLATTEN_COLLECT_MAX)
		return SIZE_MAX;
	size_t saved = f->name.len;
	sb_puts(&f->name, "_COUNT");
	/* Its node hangs from the array's (the current one). */
	f->key = NULL;
	f->index = SIZE_MAX;
	struct leaf *l = leaf_new(f, LEAF_VALUE, level);
	name_pop(f, saved);
	return l->ordinal;
}

static void count_set(struct flatten *f, size_t i, size_t n)
{
	if (i == SIZE_MAX || f->leaves[i].unfit)
		return;
	char num[24];
	size_t len = put_decimal(num, n);
	struct leaf *l = &f->leaves[i];
	l->value_off = arena_put(&f->arena, num, len);
	l->value_len = len;
	if (l->name_len + l->value_len + 2 > f->o->max_bytes)
		l->unfit = UNFIT_VALUE;
}

/* What a cut left out, named for the log: elements from..to-1 of the
 * current array ("HOOK_COMMITS_32..49"), or, with from == to, all below
 * the current container ("HOOK_A_*"). */
static void cut_add(struct flatten *f, size_t leaves, size_t from, size_t to, size_t level)
{
	if (leaves == 0)
		return;
	size_t saved = f->name.len;
	if (from == to)
		sb_puts(&f->name, f->name.len > f->prefixlen ? "_*" : "*");
	else
		sb_printf(&f->name, "%s%zu..%zu", f->name.len > f->prefixlen ? "_" : "", from,
		          to - 1);
	struct leaf *l = leaf_new(f, LEAF_CUT, level);
	l->cut_leaves = leaves;
	f->name.len = saved;
	f->name.buf[saved] = '\0';
}

/* ---- admission ---- */

static int leaf_cmp(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->level != y->level)
		return x->level < y->level ? -1 : 1;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static bool leaves_sorted(const struct leaf *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (leaf_cmp(&v[i - 1], &v[i]) > 0)
			return false;
	return true;
}

/* The payload path of a candidate, for the log: keys and indices joined
 * by '.', at most about 200 bytes. */
static void path_render(const struct flatten *f, size_t node, struct strbuf *out)
{
	size_t chain[FLATTEN_MAX_DEPTH + 4], n = 0;
	for (size_t i = node; i != SIZE_MAX && n < ARRAY_SIZE(chain); i = f->nodes[i].parent)
		chain[n++] = i;
	bool count = false;
	struct strbuf key;
	sb_init(&key);
	size_t start = out->len;
	/* chain[n - 1] is the root, which has no key. */
	for (size_t j = n - 1; j-- > 0;) {
		const struct path_node *p = &f->nodes[chain[j]];
		if (!p->key && p->index == SIZE_MAX) {
			count = true;
			continue;
		}
		if (out->len > start)
			sb_putc(out, '.');
		if (!p->key) {
			sb_printf(out, "%zu", p->index);
		} else if (f->keys_quoted) {
			decode_string(p->key, &key);
			sb_append(out, key.buf, strlen(key.buf));
		} else {
			sb_puts(out, p->key);
		}
		if (out->len - start > 200) {
			out->len = start + 200;
			sb_puts(out, "...");
			break;
		}
	}
	sb_free(&key);
	if (count) {
		/* "count of commits" */
		char *path = xstrndup(out->buf + start, out->len - start);
		out->len = start;
		sb_printf(out, "count of %s", path);
		free(path);
	}
}

/* The metadata entry named name, among the first `base` of env; or NULL. */
static const char *held_value(const struct envlist *env, size_t base, const char *name,
                              size_t nlen)
{
	for (size_t i = 0; i < base; i++)
		if (strncmp(env->v[i], name, nlen) == 0 && env->v[i][nlen] == '=')
			return env->v[i] + nlen + 1;
	return NULL;
}

static void report_name(struct strbuf *sb, size_t *listed, const char *name)
{
	if ((*listed)++ >= FLATTEN_REPORT_NAMES)
		return;
	if (sb->len)
		sb_putc(sb, ' ');
	sb_puts(sb, name);
}

/* Admits the candidates, in order, into env; fills rep. */
static void flatten_admit(struct flatten *f, struct flatten_report *rep)
{
	struct envlist *env = f->env;
	size_t nreserved = 0;
	while (f->o->reserved && f->o->reserved[nreserved])
		nreserved++;
	size_t base = env->v ? env->n : 0;
	struct nameset taken;
	nameset_init(&taken, nreserved + base + f->nleaves);
	for (size_t i = 0; i < nreserved; i++)
		nameset_add(&taken, f->o->reserved[i], strlen(f->o->reserved[i]));
	for (size_t i = 0; i < base; i++)
		nameset_add(&taken, env->v[i], envlist_entry_name_len(env->v[i]));

	if (!leaves_sorted(f->leaves, f->nleaves))
		qsort(f->leaves, f->nleaves, sizeof(*f->leaves), leaf_cmp);

	size_t vars = 0, bytes = 0, omitted = f->overflow, collisions = 0;
	size_t listed = 0, listed_collisions = 0;
	size_t *kept = xmalloc((f->nleaves ? f->nleaves : 1) * sizeof(*kept));
	struct strbuf names, collided;
	sb_init(&names);
	sb_init(&collided);
	for (size_t i = 0; i < f->nleaves; i++) {
		const struct leaf *l = &f->leaves[i];
		const char *name = f->arena.buf + l->name_off;
		if (l->kind == LEAF_CUT) {
			omitted += l->cut_leaves;
			report_name(&names, &listed, name);
			continue;
		}
		if (l->unfit == UNFIT_NAME) {
			omitted++;
			report_name(&names, &listed, name);
			continue;
		}
		/* The first candidate with a name holds it, kept or not: a later
		 * one never stands in for one that was left out. */
		if (!nameset_add(&taken, name, l->name_len)) {
			const char *meta = held_value(env, base, name, l->name_len);
			/* A body's "event" that says what HOOK_EVENT says loses nothing. */
			if (meta && l->unfit == FIT && strlen(meta) == l->value_len &&
			    memcmp(meta, f->arena.buf + l->value_off, l->value_len) == 0)
				continue;
			collisions++;
			if (listed_collisions++ < FLATTEN_REPORT_NAMES) {
				if (collided.len)
					sb_puts(&collided, ", ");
				sb_append(&collided, name, l->name_len);
				sb_puts(&collided, " (");
				path_render(f, l->node, &collided);
				sb_putc(&collided, ')');
			}
			continue;
		}
		size_t entry = l->name_len + 1 + l->value_len + 1;
		if (l->unfit || vars >= f->o->max_vars || bytes + entry > f->o->max_bytes) {
			omitted++;
			report_name(&names, &listed, name);
			continue;
		}
		kept[vars++] = i;
		bytes += entry;
	}
	nameset_free(&taken);
	/* The kept entries in one allocation: a waiting delivery holds its
	 * payload's variables without a malloc header and rounding each. */
	char *e = vars ? envlist_block(env, bytes) : NULL;
	for (size_t k = 0; k < vars; k++) {
		const struct leaf *l = &f->leaves[kept[k]];
		memcpy(e, f->arena.buf + l->name_off, l->name_len);
		e[l->name_len] = '=';
		memcpy(e + l->name_len + 1, f->arena.buf + l->value_off, l->value_len + 1);
		envlist_append_len(env, e, l->name_len + 1 + l->value_len);
		e += l->name_len + 1 + l->value_len + 1;
	}
	free(kept);
	if (rep) {
		rep->omitted = omitted;
		rep->collisions = collisions;
		rep->omitted_names = names.len ? sb_steal(&names) : NULL;
		rep->collided = collided.len ? sb_steal(&collided) : NULL;
	}
	sb_free(&names);
	sb_free(&collided);
}

void flatten_report_free(struct flatten_report *r)
{
	if (!r)
		return;
	free(r->omitted_names);
	free(r->collided);
	memset(r, 0, sizeof(*r));
}

static void flatten_begin(struct flatten *f, const struct flatten_opts *o, struct envlist *env)
{
	memset(f, 0, sizeof(*f));
	f->o = o;
	f->env = env;
	const char *prefix = o->prefix ? o->prefix : "";
	f->prefixlen = strlen(prefix);
	sb_init(&f->name);
	sb_reserve(&f->name, 128);
	sb_puts(&f->name, prefix);
	sb_init(&f->arena);
	/* A small payload's names and values in one go; at most 1 KiB, which
	 * malloc serves from its per-thread cache (a larger first block went
	 * the slow way, every delivery). */
	sb_reserve(&f->arena, 1000);
	f->node = SIZE_MAX; /* the root container's node will be the first */
}

static void flatten_end(struct flatten *f)
{
	sb_free(&f->name);
	sb_free(&f->arena);
	free(f->leaves);
	free(f->nodes);
}

/* ---- the walk over json-c's tree ---- */

/* Leaves below a cut: only their count matters. */
static size_t count_leaves(json_object *o)
{
	size_t n = 0;
	switch (json_object_get_type(o)) {
	case json_type_object: {
		json_object_object_foreach(o, k, v)
		{
			(void)k;
			n += count_leaves(v);
		}
		break;
	}
	case json_type_array: {
		size_t len = json_object_array_length(o);
		for (size_t i = 0; i < len; i++)
			n += count_leaves(json_object_array_get_idx(o, i));
		break;
	}
	default:
		n = 1;
		break;
	}
	return n;
}

static void flatten_node(struct flatten *f, json_object *o, size_t level);

static void flatten_array(struct flatten *f, json_object *o, size_t level)
{
	size_t n = json_object_array_length(o);
	size_t saved_node = node_enter(f);
	size_t count = count_add(f, level);
	/* Below the deepest level only the count of what is left out matters. */
	bool deep = level >= FLATTEN_MAX_DEPTH;
	size_t walked = deep ? 0 : n < f->o->array_max ? n : f->o->array_max;
	f->group++;
	for (size_t i = 0; i < walked; i++) {
		size_t saved = name_push_index(f, i);
		f->key = NULL;
		f->index = i;
		flatten_node(f, json_object_array_get_idx(o, i), level + 1);
		name_pop(f, saved);
	}
	size_t rest = 0;
	for (size_t i = walked; i < n; i++)
		rest += count_leaves(json_object_array_get_idx(o, i));
	f->group--;
	/* The value after the elements, as the text walk (which learns the
	 * length only there) stores it. */
	count_set(f, count, n);
	cut_add(f, rest, deep ? 0 : walked, deep ? 0 : n, level);
	f->node = saved_node;
}

static void flatten_object(struct flatten *f, json_object *o, size_t level)
{
	if (level >= FLATTEN_MAX_DEPTH) {
		cut_add(f, count_leaves(o), 0, 0, level);
		return;
	}
	size_t saved_node = node_enter(f);
	json_object_object_foreach(o, k, v)
	{
		size_t saved = name_push(f, k, strlen(k));
		f->key = k;
		f->index = 0;
		flatten_node(f, v, level + 1);
		name_pop(f, saved);
	}
	f->node = saved_node;
}

static void flatten_node(struct flatten *f, json_object *o, size_t level)
{
	switch (json_object_get_type(o)) {
	case json_type_object:
		flatten_object(f, o, level);
		break;
	case json_type_array:
		flatten_array(f, o, level);
		break;
	default: {
		size_t vlen = 0;
		const char *val = payload_scalar_text(o, &vlen);
		flatten_value(f, val, vlen, level);
		break;
	}
	}
}

void payload_flatten(json_object *root, const struct flatten_opts *o, struct envlist *env,
                     struct flatten_report *rep)
{
	struct flatten f;
	flatten_begin(&f, o, env);
	/* The root is level 0: its members are level 1. A root array has no
	 * name, so no count. */
	if (json_object_is_type(root, json_type_object) || json_object_is_type(root, json_type_array))
		flatten_node(&f, root, 0);
	flatten_admit(&f, rep);
	flatten_end(&f);
}

/* ---- flattening straight from the text ---- */

/*
 * The same walk over the body's text, for a body json_scan accepted: no
 * tree is built. It must give what json-c's tree gives, byte for byte
 * (fuzz_payload holds the two to that): strings decoded as json-c decodes
 * them (a lone surrogate is U+FFFD), a key cut at its first NUL, numbers
 * as written (payload_parse_json keeps their text too). Where an object
 * has a key twice, json-c keeps the last value in the first one's place;
 * that case is left to the tree. The flatten table in test_payload.c
 * pins json-c's decoding: a json-c that decodes otherwise fails it, and
 * fuzz_payload should then run again.
 */
struct text_walk {
	struct flatten f;
	struct nameset keys; /* "<object number>:<key>" for every key met */
	size_t objects;
	struct strbuf str;   /* the string being decoded */
	struct strbuf key;   /* "<object number>:<key>" being looked up */
	bool dup;
};

static const char *skip_ws(const char *p)
{
	/* One compare for what is not blank (nearly every byte that is not
	 * indentation), then which blank. */
	while ((unsigned char)*p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

static unsigned hex4(const char *p)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static void put_utf8(struct strbuf *sb, unsigned c)
{
	char b[4];
	size_t n;
	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	sb_append(sb, b, n);
}

#define REPLACEMENT 0xFFFD

/* Decodes the string at p (its opening quote) into out; returns the byte
 * after its closing quote. */
static const char *decode_string(const char *p, struct strbuf *out)
{
	out->len = 0;
	sb_reserve(out, 0);
	out->buf[0] = '\0'; /* "" when nothing follows */
	unsigned high = 0; /* a high surrogate waiting for its low half */
	for (p++;;) {
		const char *run = p;
		while (*p != '"' && *p != '\\')
			p++;
		if (p > run || *p == '"') {
			if (high)
				put_utf8(out, REPLACEMENT);
			high = 0;
			sb_append(out, run, (size_t)(p - run));
			if (*p == '"')
				return p + 1;
		}
		char e = p[1];
		p += 2;
		if (e != 'u') {
			if (high)
				put_utf8(out, REPLACEMENT);
			high = 0;
			static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
			const char *k = strchr(from, e);
			sb_putc(out, k ? to[k - from] : e); /* '"', '\\', '/' */
			continue;
		}
		unsigned u = hex4(p);
		p += 4;
		if (high && u >= 0xDC00 && u <= 0xDFFF) {
			put_utf8(out, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
			high = 0;
			continue;
		}
		if (high)
			put_utf8(out, REPLACEMENT);
		high = 0;
		if (u >= 0xD800 && u <= 0xDBFF)
			high = u;
		else
			put_utf8(out, u >= 0xDC00 && u <= 0xDFFF ? REPLACEMENT : u);
	}
}

static const char *walk_value(struct text_walk *w, const char *p, size_t level, bool counting);

/* A scalar: its candidate (or, below a cut, its count). */
static const char *walk_scalar(struct text_walk *w, const char *p, size_t level, bool counting)
{
	const char *val;
	size_t vlen;
	const char *next;
	if (*p == '"') {
		if (counting) {
			/* Only its end matters. */
			for (next = p + 1; *next != '"'; next += *next == '\\' ? 2 : 1)
				;
			w->f.counted++;
			return next + 1;
		}
		next = decode_string(p, &w->str);
		val = w->str.buf;
		vlen = w->str.len;
	} else if (*p == 't' || *p == 'f' || *p == 'n') {
		vlen = *p == 'f' ? 5 : 4;
		next = p + vlen;
		val = *p == 'n' ? "" : p;
		if (*p == 'n')
			vlen = 0;
	} else {
		next = p;
		while (*next == '-' || *next == '+' || *next == '.' || *next == 'e' ||
		       *next == 'E' || (*next >= '0' && *next <= '9'))
			next++;
		val = p;
		vlen = (size_t)(next - p);
	}
	if (counting)
		w->f.counted++;
	else
		flatten_value(&w->f, val, vlen, level);
	return next;
}

static const char *walk_object(struct text_walk *w, const char *p, size_t level, bool counting)
{
	char id[32];
	size_t idlen = put_decimal(id, w->objects++);
	id[idlen++] = ':';
	/* Below the deepest level only the count of what is left out matters
	 * (and the keys, to find one given twice). */
	bool cut = !counting && level >= FLATTEN_MAX_DEPTH;
	size_t before = w->f.counted;
	size_t saved_node = counting || cut ? 0 : node_enter(&w->f);
	counting = counting || cut;
	p = skip_ws(p + 1);
	while (*p != '}') {
		const char *quote = p;
		p = decode_string(p, &w->str);
		size_t klen = strlen(w->str.buf); /* json-c's keys are C strings */
		/* The key, with its object's number, among all keys met. */
		w->key.len = 0;
		sb_append(&w->key, id, idlen);
		sb_append(&w->key, w->str.buf, klen);
		if (!nameset_add(&w->keys, w->key.buf, w->key.len)) {
			w->dup = true;
			return NULL;
		}
		size_t saved = 0;
		if (!counting) {
			saved = name_push(&w->f, w->str.buf, klen);
			w->f.key = quote;
			w->f.index = 0;
		}
		p = skip_ws(skip_ws(p) + 1); /* the ':' */
		p = walk_value(w, p, level + 1, counting);
		if (!counting)
			name_pop(&w->f, saved);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
	}
	if (cut) {
		cut_add(&w->f, w->f.counted - before, 0, 0, level);
		w->f.counted = before;
	} else if (!counting) {
		w->f.node = saved_node;
	}
	return p + 1;
}

static const char *walk_array(struct text_walk *w, const char *p, size_t level, bool counting)
{
	size_t saved_node = 0, count = SIZE_MAX;
	bool deep = level >= FLATTEN_MAX_DEPTH;
	if (!counting) {
		saved_node = node_enter(&w->f);
		count = count_add(&w->f, level);
		w->f.group++;
	}
	size_t before = w->f.counted;
	size_t walked = counting || deep ? 0 : w->f.o->array_max;
	p = skip_ws(p + 1);
	size_t i = 0;
	for (; *p != ']'; i++) {
		bool cut = i >= walked;
		size_t saved = 0;
		if (!cut) {
			saved = name_push_index(&w->f, i);
			w->f.key = NULL;
			w->f.index = i;
		}
		p = walk_value(w, p, level + 1, cut);
		if (!cut)
			name_pop(&w->f, saved);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
	}
	if (!counting) {
		count_set(&w->f, count, i);
		w->f.group--;
		size_t rest = w->f.counted - before;
		w->f.counted = before;
		cut_add(&w->f, rest, deep ? 0 : walked, deep ? 0 : i, level);
		w->f.node = saved_node;
	}
	return p + 1;
}

static const char *walk_value(struct text_walk *w, const char *p, size_t level, bool counting)
{
	if (*p == '{')
		return walk_object(w, p, level, counting);
	if (*p == '[')
		return walk_array(w, p, level, counting);
	return walk_scalar(w, p, level, counting);
}

bool payload_flatten_text(const char *body, size_t len, const struct flatten_opts *o,
                          struct envlist *env, struct flatten_report *rep)
{
	(void)len; /* json_scan accepted it: it ends where its text says */
	struct text_walk w = {.objects = 0};
	flatten_begin(&w.f, o, env);
	w.f.keys_quoted = true;
	nameset_init(&w.keys, 24);
	sb_init(&w.str);
	sb_reserve(&w.str, 256);
	sb_init(&w.key);
	sb_reserve(&w.key, 128);
	const char *p = skip_ws(body);
	if (*p == '{' || *p == '[')
		walk_value(&w, p, 0, false);
	if (!w.dup)
		flatten_admit(&w.f, rep);
	else if (rep)
		memset(rep, 0, sizeof(*rep));
	flatten_end(&w.f);
	nameset_free(&w.keys);
	sb_free(&w.str);
	sb_free(&w.key);
	/* With a key twice, env is as the caller had it: the tree decides. */
	return !w.dup;
}
