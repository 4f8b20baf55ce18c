/*
 * Parsing and evaluating an [event] section's `match` terms (match.h).
 */
#include "match.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "util.h"

#define WS " \t\r\n\v\f"

/* One word, shell-like: double quotes group, and within them \" and \\
 * are escapes; outside quotes every byte is itself (a glob's own \* stays).
 * *s moves past it. NULL with err on an unclosed quote. */
static char *next_word(const char **s, char *err, size_t errlen)
{
	struct strbuf sb;
	sb_init(&sb);
	const char *p = *s;
	bool quoted = false;
	for (; *p && (quoted || !strchr(WS, *p)); p++) {
		if (*p == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
			p++;
		sb_putc(&sb, *p);
	}
	if (quoted) {
		snprintf(err, errlen, "unclosed double quote");
		sb_free(&sb);
		return NULL;
	}
	*s = p;
	return sb_steal(&sb);
}

static bool parse_term(char *word, struct match_term *t, char *err, size_t errlen)
{
	char *eq = strchr(word, '=');
	if (!eq) {
		snprintf(err, errlen, "'%.60s' is not PATH=GLOB or PATH!=GLOB", word);
		return false;
	}
	bool negate = eq > word && eq[-1] == '!';
	char *path = xstrndup(word, (size_t)(eq - word) - (negate ? 1 : 0));
	if (!payload_path_valid(path)) {
		snprintf(err, errlen,
		         "'%.60s' is not a dotted payload path such as ref or repository.name", path);
		free(path);
		return false;
	}
	t->path = path;
	t->glob = xstrdup(eq + 1);
	t->negate = negate;
	return true;
}

bool match_parse(const char *text, struct match_rule *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *s = text;
	for (;;) {
		s += strspn(s, WS);
		if (!*s)
			break;
		char *word = next_word(&s, err, errlen);
		if (!word) {
			match_free(out);
			return false;
		}
		struct match_term t;
		bool ok = parse_term(word, &t, err, errlen);
		free(word);
		if (!ok) {
			match_free(out);
			return false;
		}
		out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
		out->v[out->n++] = t;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "expected PATH=GLOB terms such as ref=refs/heads/main");
		return false;
	}
	return true;
}

void match_free(struct match_rule *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].path);
		free(r->v[i].glob);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

long match_eval(const struct match_rule *r, json_object *root)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct match_term *t = &r->v[i];
		char *v = root ? payload_get_path(root, t->path) : NULL;
		bool hit = v && fnmatch(t->glob, v, 0) == 0;
		free(v);
		if (hit == t->negate)
			return (long)i;
	}
	return -1;
}

void match_format_term(struct strbuf *sb, const struct match_term *t)
{
	sb_puts(sb, t->path);
	sb_puts(sb, t->negate ? "!=" : "=");
	bool quote = t->glob[0] == '\0' || t->glob[strcspn(t->glob, WS "\"")] != '\0';
	if (!quote) {
		sb_puts(sb, t->glob);
		return;
	}
	sb_putc(sb, '"');
	for (const char *p = t->glob; *p; p++) {
		/* A backslash before a quote or a backslash would be read
		 * back as an escape: it is written as one. */
		if (*p == '"' || (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '\0')))
			sb_putc(sb, '\\');
		sb_putc(sb, *p);
	}
	sb_putc(sb, '"');
}

void match_format(struct strbuf *sb, const struct match_rule *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (i)
			sb_putc(sb, ' ');
		match_format_term(sb, &r->v[i]);
	}
}
