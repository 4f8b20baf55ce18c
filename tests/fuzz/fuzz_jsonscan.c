/*
 * Fuzz target: json_scan against json-c (a differential target).
 *
 * The input is a body; bytes after a "\0\0" separator, if any, are extra
 * dotted paths, one a line. json_scan decides what a body is before any
 * route is known, json-c builds the tree only when a hook runs: the two
 * must agree, or the same body would be a 400 or a 200 depending on
 * whether a hook exists. So:
 *
 *  - json-c (strict, as hookd used it before json_scan) never rejects a
 *    body json_scan accepts, and payload_parse_json builds every one;
 *  - every field json_scan reports without asking for the tree is what
 *    payload_get_string finds in that tree: present or not, a string or
 *    not, the same bytes.
 */
#include <string.h>

#include <json-c/json.h>

#include "fuzz.h"
#include "jsonscan.h"
#include "payload.h"
#include "util.h"

static const char *const default_paths[] = {
	"event", "type", "action", "object_kind", "object_attributes.action", "event.type",
	"challenge", "event_id", "id", "a.b.c",
};

/* json-c 0.16 in strict mode, fed as hookd fed it: true when it builds an
 * object from exactly these bytes (whitespace may follow). */
static bool json_c_accepts(const char *b, size_t n)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH + 1);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, b, (int)n);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (e == json_tokener_continue) {
		json_object_put(o);
		o = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = n;
	}
	bool ok = e == json_tokener_success && json_object_is_type(o, json_type_object);
	for (size_t i = end; ok && i < n; i++)
		ok = b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r';
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

static void check_fields(const char *body, size_t len, const char **paths, size_t npaths,
                         json_object *root)
{
	for (size_t at = 0; at < npaths; at += JSON_SCAN_MAX_FIELDS) {
		struct json_scan_field f[JSON_SCAN_MAX_FIELDS];
		size_t n = npaths - at < JSON_SCAN_MAX_FIELDS ? npaths - at : JSON_SCAN_MAX_FIELDS;
		memset(f, 0, sizeof(f));
		for (size_t i = 0; i < n; i++)
			f[i].path = paths[at + i];
		struct json_scan s = { .fields = f, .nfields = n };
		FUZZ_ASSERT(json_scan(body, len, &s) == JSON_SCAN_OK);
		if (s.need_tree)
			continue;
		for (size_t i = 0; i < n; i++) {
			bool found = false;
			const char *v = payload_get_string(root, f[i].path, &found);
			FUZZ_ASSERT(found == f[i].found);
			if (!found)
				continue;
			/* A string holding a NUL is "not a string" to payload_get_string;
			 * without an escape the scan cannot see one. */
			FUZZ_ASSERT((v != NULL) == (f[i].type == json_type_string));
			if (v) {
				FUZZ_ASSERT(!f[i].escaped);
				FUZZ_ASSERT(strlen(v) == f[i].len);
				FUZZ_ASSERT(memcmp(v, body + f[i].off, f[i].len) == 0);
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t len = size;
	const char *sep = NULL;
	for (size_t i = 0; i + 1 < size; i++) {
		if (in[i] == '\0' && in[i + 1] == '\0') {
			sep = in + i;
			len = i;
			break;
		}
	}
	/* The body in a buffer of its own, so that a read past its end is
	 * one ASan sees. */
	char *body = xmalloc(len ? len : 1);
	memcpy(body, in, len);

	enum json_scan_result r = json_scan(body, len, NULL);
	if (r == JSON_SCAN_OK) {
		FUZZ_ASSERT(json_c_accepts(body, len));
		char err[128];
		json_object *root = payload_parse_json(body, len, err, sizeof(err));
		FUZZ_ASSERT(root != NULL);

		const char *paths[64];
		size_t npaths = 0;
		for (size_t i = 0; i < ARRAY_SIZE(default_paths); i++)
			paths[npaths++] = default_paths[i];
		char *extra = NULL;
		if (sep) {
			size_t elen = size - (size_t)(sep - in) - 2;
			extra = xstrndup(sep + 2, elen);
			for (char *p = extra; p && *p && npaths < ARRAY_SIZE(paths);) {
				char *nl = strchr(p, '\n');
				if (nl)
					*nl = '\0';
				paths[npaths++] = p;
				p = nl ? nl + 1 : NULL;
			}
		}
		check_fields(body, len, paths, npaths, root);
		free(extra);
		json_object_put(root);
	} else {
		char err[128] = "";
		FUZZ_ASSERT(payload_parse_json(body, len, err, sizeof(err)) == NULL);
		FUZZ_ASSERT(strcmp(err, json_scan_error(r)) == 0);
	}
	free(body);
	return 0;
}
