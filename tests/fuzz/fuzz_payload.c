/*
 * Fuzz target: the request body as hookd decodes it (README "What a hook gets").
 *
 * The input is a body. It is parsed as JSON (payload_parse_json) and as a
 * form (payload_parse_form, with and without a `payload` field), the JSON
 * is flattened into an environment (payload_flatten, and from its text:
 * payload_flatten_text must give the same or decline), and every leaf's
 * dotted path is looked up again (payload_get_path, payload_get_string).
 * Bytes after a "\0\0" separator, if any, are extra dotted paths to look
 * up, one a line. Besides crashes, the target checks what the header
 * promises: variable names made of the prefix and A-Z0-9_ only, one entry
 * a name, reserved names untouched, the count limit, and that a path built
 * from a leaf finds that leaf.
 */
#include <string.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "payload.h"
#include "util.h"

#define PREFIX "HOOK_"
#define MAX_WALKED 64 /* leaves whose paths are looked up again, per input */

static const char *const reserved[] = {
	"HOOK_EVENT", "HOOK_ID", "HOOK_ENDPOINT", "HOOK_HOOK", "HOOK_ATTEMPT",
	"HOOK_REMOTE_ADDR", "HOOK_RECEIVED_AT", "HOOK_INTEGRATION_ID",
	"HOOK_INTEGRATION_NAME", NULL,
};

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A normalized name: A-Z0-9 and single '_' between them, never at an end. */
static void check_normalized(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(name_char(s[i]));
		if (s[i] == '_') {
			FUZZ_ASSERT(i > 0 && i + 1 < n);
			FUZZ_ASSERT(s[i + 1] != '_');
		}
	}
}

static void check_env(const struct envlist *env, size_t before)
{
	size_t bytes = 0;
	FUZZ_ASSERT(env->v[env->n] == NULL);
	for (size_t i = 0; i < env->n; i++) {
		const char *e = env->v[i];
		const char *eq = strchr(e, '=');
		FUZZ_ASSERT(eq != NULL);
		size_t nlen = (size_t)(eq - e);
		bytes += strlen(e) + 1;
		/* One entry a name. */
		for (size_t j = 0; j < i; j++) {
			const char *o = env->v[j];
			FUZZ_ASSERT(!(strncmp(o, e, nlen) == 0 && o[nlen] == '='));
		}
		if (i < before)
			continue;
		/* A payload variable: the prefix, then a normalized path. */
		FUZZ_ASSERT(nlen > strlen(PREFIX));
		FUZZ_ASSERT(memcmp(e, PREFIX, strlen(PREFIX)) == 0);
		check_normalized(e + strlen(PREFIX), nlen - strlen(PREFIX));
		FUZZ_ASSERT(nlen <= FLATTEN_MAX_NAME);
		FUZZ_ASSERT(strlen(eq + 1) <= FLATTEN_MAX_VALUE);
		for (size_t r = 0; reserved[r]; r++)
			FUZZ_ASSERT(!(strncmp(e, reserved[r], nlen) == 0 && reserved[r][nlen] == '\0'));
	}
	FUZZ_ASSERT(bytes == env->bytes);
	FUZZ_ASSERT(env->n - before <= FLATTEN_MAX_VARS);
}

/* What the dispatcher puts in before the payload. */
static void env_start(struct envlist *env)
{
	envlist_init(env);
	envlist_add(env, "PATH", "/usr/bin:/bin");
	envlist_add(env, "HOOK_EVENT", "fuzz:event");
	envlist_add(env, "HOOK_ID", "fuzz-id");
}

/* payload_flatten_text on the body's text gives exactly what the tree
 * gave, or declines and leaves env as it was. */
static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_text_flatten(const char *text, size_t len, const struct envlist *want,
                               const struct flatten_report *want_rep)
{
	struct envlist env;
	struct flatten_report rep;
	struct flatten_opts fo = FLATTEN_OPTS(PREFIX, reserved);
	env_start(&env);
	size_t before = env.n, before_bytes = env.bytes;
	if (payload_flatten_text(text, len, &fo, &env, &rep)) {
		FUZZ_ASSERT(env.n == want->n && env.bytes == want->bytes);
		FUZZ_ASSERT(rep.omitted == want_rep->omitted);
		FUZZ_ASSERT(rep.collisions == want_rep->collisions);
		FUZZ_ASSERT(same_str(rep.omitted_names, want_rep->omitted_names));
		FUZZ_ASSERT(same_str(rep.collided, want_rep->collided));
		for (size_t i = 0; i < env.n; i++)
			FUZZ_ASSERT(strcmp(env.v[i], want->v[i]) == 0);
	} else {
		FUZZ_ASSERT(env.n == before && env.bytes == before_bytes && env.v[env.n] == NULL);
	}
	flatten_report_free(&rep);
	envlist_free(&env);
}

/* text: the body root was parsed from, or NULL (a form). */
static void flatten(json_object *root, const char *text, size_t len)
{
	struct envlist env;
	struct flatten_report rep;
	struct flatten_opts fo = FLATTEN_OPTS(PREFIX, reserved);
	env_start(&env);
	size_t before = env.n;
	payload_flatten(root, &fo, &env, &rep);
	check_env(&env, before);
	if (text)
		check_text_flatten(text, len, &env, &rep);
	flatten_report_free(&rep);
	FUZZ_ASSERT(strcmp(env.v[envlist_find(&env, "HOOK_EVENT")], "HOOK_EVENT=fuzz:event") == 0);
	envlist_sort(&env);
	for (size_t i = 1; i < env.n; i++)
		FUZZ_ASSERT(strcmp(env.v[i - 1], env.v[i]) != 0);
	envlist_free(&env);
}

/* The text payload_get_path promises for a scalar; NULL when it promises none. */
static const char *expected_text(json_object *o, size_t *n)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		*n = 0;
		return "";
	case json_type_string:
		*n = (size_t)json_object_get_string_len(o);
		return memchr(json_object_get_string(o), '\0', *n) ? NULL : json_object_get_string(o);
	case json_type_boolean:
		*n = json_object_get_boolean(o) ? 4 : 5;
		return json_object_get_boolean(o) ? "true" : "false";
	case json_type_int:
	case json_type_double: {
		const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		*n = strlen(s);
		return s;
	}
	default:
		return NULL;
	}
}

/* Checks that the path to a leaf, built from the keys, finds it. Keys that
 * are empty or hold a '.' cannot be written as a dotted path: skipped. */
static void check_leaf(json_object *root, const char *path, json_object *leaf)
{
	size_t n = 0;
	const char *want = expected_text(leaf, &n);
	char *got = payload_get_path(root, path);
	if (want) {
		FUZZ_ASSERT(got != NULL);
		FUZZ_ASSERT(strlen(got) == n && memcmp(got, want, n) == 0);
	} else {
		FUZZ_ASSERT(got == NULL);
	}
	free(got);

	bool found = false;
	const char *s = payload_get_string(root, path, &found);
	FUZZ_ASSERT(found);
	if (json_object_is_type(leaf, json_type_string) && want)
		FUZZ_ASSERT(s != NULL && strcmp(s, want) == 0);
	else
		FUZZ_ASSERT(s == NULL);
}

static void walk(json_object *root, json_object *o, struct strbuf *path, size_t *budget)
{
	enum json_type t = json_object_get_type(o);
	if (*budget == 0)
		return;
	if (t != json_type_object && t != json_type_array) {
		if (path->len > 0) {
			(*budget)--;
			check_leaf(root, path->buf, o);
		}
		return;
	}
	size_t saved = path->len;
	if (t == json_type_object) {
		json_object_object_foreach(o, k, v)
		{
			if (!*k || strchr(k, '.'))
				continue;
			if (saved)
				sb_putc(path, '.');
			sb_puts(path, k);
			walk(root, v, path, budget);
			path->len = saved;
			path->buf[saved] = '\0';
		}
	} else {
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n && *budget; i++) {
			if (saved)
				sb_putc(path, '.');
			sb_printf(path, "%zu", i);
			walk(root, json_object_array_get_idx(o, i), path, budget);
			path->len = saved;
			path->buf[saved] = '\0';
		}
	}
}

static void lookups(json_object *root, const uint8_t *paths, size_t len)
{
	struct strbuf sb;
	size_t budget = MAX_WALKED;
	sb_init(&sb);
	walk(root, root, &sb, &budget);
	sb_free(&sb);

	/* The extra paths: whatever they are, a look-up answers or says no. */
	while (len > 0) {
		const uint8_t *nl = memchr(paths, '\n', len);
		size_t n = nl ? (size_t)(nl - paths) : len;
		char *p = xstrndup((const char *)paths, n);
		bool found = false;
		free(payload_get_path(root, p));
		const char *s = payload_get_string(root, p, &found);
		FUZZ_ASSERT(!s || found);
		free(p);
		paths += nl ? n + 1 : n;
		len -= nl ? n + 1 : n;
	}
}

static void normalize(const uint8_t *data, size_t size)
{
	size_t n = size > 256 ? 256 : size;
	char out[2 * 256 + 1];
	size_t o = env_key_normalize((const char *)data, n, out);
	FUZZ_ASSERT(o <= 2 * n && out[o] == '\0');
	check_normalized(out, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = NULL;
	for (size_t i = 0; i + 1 < size; i++) {
		if (data[i] == 0 && data[i + 1] == 0) {
			sep = data + i;
			break;
		}
	}
	size_t body_len = sep ? (size_t)(sep - data) : size;
	const uint8_t *paths = sep ? sep + 2 : NULL;
	size_t paths_len = sep ? size - body_len - 2 : 0;
	char err[128];

	json_object *root = payload_parse_json((const char *)data, body_len, err, sizeof(err));
	if (root) {
		FUZZ_ASSERT(json_object_is_type(root, json_type_object));
		flatten(root, (const char *)data, body_len);
		lookups(root, paths, paths_len);
		json_object_put(root);
	} else {
		FUZZ_ASSERT(err[0] != '\0');
	}

	/* The same bytes as a form: Gitea's `payload` field, Slack's optional
	 * one, and a slash command's fields as strings. */
	root = payload_parse_form((const char *)data, body_len, "payload", body_len & 1, err,
	                          sizeof(err));
	if (root) {
		flatten(root, NULL, 0);
		json_object_put(root);
	}
	root = payload_parse_form((const char *)data, body_len, NULL, false, err, sizeof(err));
	if (root) {
		FUZZ_ASSERT(json_object_is_type(root, json_type_object));
		json_object_put(root);
	}

	normalize(data, body_len);
	return 0;
}
