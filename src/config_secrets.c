/*
 * config_secrets: an endpoint's secret (secret, secret_file, secret_env:
 * one setting given three ways) and [admin]'s token files. Messages name a
 * secret's key, file or line, never its bytes; every copy read is wiped.
 */
#include "config_loader.h"
#include "crypto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


#include "secrecy.h"
#include "util.h"

static struct endpoint *cur_endpoint(struct loader *L)
{
	return &L->c->endpoints[L->idx];
}

/*
 * secret, secret_file and secret_env are one setting given three ways;
 * the second one given is the error.
 */
static bool secret_unique(struct loader *L, const struct keydef *k)
{
	static const char *const keys[] = {"secret", "secret_file", "secret_env"};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int line = seen_line(L, L->section, keys[i]);
		if (line && strcmp(keys[i], k->name) != 0)
			return fail_at(L, L->lineno,
			               "endpoint '%s': give only one of secret, secret_file and "
			               "secret_env (%s is at line %d)",
			               cur_endpoint(L)->name, keys[i], line);
	}
	return true;
}

/* Stores the whitespace-separated secrets of s (rotation) as-is. */
static void store_secrets(struct endpoint *ep, const char *s)
{
	size_t n;
	char **words = split_words(s, &n);
	secrets_free(ep->secrets, ep->nsecrets);
	ep->secrets = xcalloc(n ? n : 1, sizeof(*ep->secrets));
	ep->nsecrets = n;
	for (size_t i = 0; i < n; i++) {
		ep->secrets[i].len = strlen(words[i]);
		ep->secrets[i].data = (unsigned char *)words[i];
	}
	free(words); /* the strings now belong to ep->secrets */
}

/*
 * secret_file and secret_env hold one secret a line, so a secret may
 * contain spaces (GitHub's documented example does); blanks around a line
 * and empty lines are ignored. Each keeps its line number, for a scheme's
 * error about it (basic's user:password lines).
 */
static void store_secret_lines(struct endpoint *ep, const char *s)
{
	int line = 0;
	secrets_free(ep->secrets, ep->nsecrets);
	ep->secrets = NULL;
	ep->nsecrets = 0;
	while (*s) {
		size_t n = strcspn(s, "\n");
		const char *b = s, *e = s + n;
		line++;
		while (b < e && strchr(WS, *b))
			b++;
		while (e > b && strchr(WS, e[-1]))
			e--;
		if (e > b) {
			ep->secrets = xrealloc(ep->secrets, (ep->nsecrets + 1) * sizeof(*ep->secrets));
			ep->secrets[ep->nsecrets].len = (size_t)(e - b);
			ep->secrets[ep->nsecrets].data = (unsigned char *)xstrndup(b, (size_t)(e - b));
			ep->secrets[ep->nsecrets].line = line;
			ep->nsecrets++;
		}
		s += n;
		if (*s)
			s++;
	}
}

/*
 * `secret = "my secret"` would be the two secrets `"my` and `secret"`:
 * quotes are never part of the syntax, so a word that starts or ends with
 * one is refused rather than kept. The message quotes no secret.
 */
static bool secret_words_unquoted(struct loader *L, const struct endpoint *ep, const char *v)
{
	size_t n;
	char **words = split_words(v, &n);
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(words[i]);
		/* "" or '' alone is the empty secret: check_secret_lengths says so. */
		bool empty_pair = len == 2 && words[i][0] == words[i][1];
		if (!empty_pair && (strchr("\"'", words[i][0]) || strchr("\"'", words[i][len - 1])))
			quoted = true;
		crypto_wipe(words[i], len);
	}
	free_words(words);
	if (quoted)
		return fail_at(L, L->lineno,
		               "endpoint '%s': a secret starts or ends with a quote; secrets are "
		               "whitespace-separated and unquoted (one with spaces belongs in a "
		               "secret_file)",
		               ep->name);
	return true;
}

bool set_secret(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	if (!v[strspn(v, WS)])
		return fail_at(L, L->lineno, "endpoint '%s': secret is empty", ep->name);
	if (!secret_words_unquoted(L, ep, v))
		return false;
	store_secrets(ep, v);
	return true;
}

bool set_secret_file(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	char *path = abs_path(L->c, v);
	size_t len;
	char *text = read_file(path, SECRET_FILE_MAX_BYTES, &len);
	bool ok = false;
	if (!text)
		fail_at(L, L->lineno, "endpoint '%s': cannot read secret_file '%s': %s", ep->name,
		        show(L, path), errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
	else if (strlen(text) != len)
		fail_at(L, L->lineno, "endpoint '%s': secret_file '%s' holds a NUL byte", ep->name,
		        show(L, path));
	else if (!text[strspn(text, WS)])
		fail_at(L, L->lineno, "endpoint '%s': secret_file '%s' is empty", ep->name,
		        show(L, path));
	else
		ok = true;
	if (ok)
		store_secret_lines(ep, text);
	if (text) {
		crypto_wipe(text, len);
		free(text);
	}
	/* Kept for `hookd check` (the file's mode) and for naming the file in
	 * the errors about its lines. */
	set_string(&ep->secret_file, path);
	return ok;
}

bool set_secret_env(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct endpoint *ep = obj;
	if (!secret_unique(L, k))
		return false;
	/* Not quoted: what stands where a name belongs is most likely the
	 * secret itself (a template that put in a variable's value). */
	if (!env_name_valid(v))
		return fail_at(L, L->lineno,
		               "endpoint '%s': secret_env is not an environment variable name "
		               "(letters, digits and '_', not starting with a digit)",
		               ep->name);
	/* Taken out of hookd's environment once read; a reload gets the
	 * value read then (secrecy.h). The name is not repeated either: a
	 * token such as ghp_... is a valid name too (the line says which). */
	const char *val = secrecy_take_env(v);
	if (!val)
		return fail_at(L, L->lineno,
		               "endpoint '%s': the environment variable secret_env names is not set",
		               ep->name);
	if (!val[strspn(val, WS)])
		return fail_at(L, L->lineno,
		               "endpoint '%s': the environment variable secret_env names is empty",
		               ep->name);
	store_secret_lines(ep, val);
	ep->secret_env = xstrdup(v);
	return true;
}

/*
 * The first line of a secret file (the whole file wiped once read), or NULL
 * with the reason reported: `key` names the setting, after `section` ("[admin] "
 * or "").
 */
static char *secret_first_line(struct loader *L, const char *section, const char *key,
                               const char *path)
{
	size_t len;
	char *text = read_file(path, SECRET_FILE_MAX_BYTES, &len);
	if (!text) {
		fail_at(L, L->lineno, "%scannot read %s '%s': %s", section, key, show(L, path),
		        errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
		return NULL;
	}
	char *line = xstrndup(text, strcspn(text, "\r\n"));
	crypto_wipe(text, len);
	free(text);
	return line;
}

/* A secret held in memory, replaced: the old one wiped first. */
static void replace_secret(char **dst, char *value)
{
	if (*dst) {
		crypto_wipe(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = value;
}

/*
 * [admin] token_file and readonly_token_file: the token is the file's first
 * line, at least 16 bytes (a token someone could guess guards nothing).
 */
#define ADMIN_TOKEN_MIN 16
bool set_admin_token_file(struct loader *L, const struct keydef *k, void *obj, const char *v)
{
	struct config *c = L->c;
	bool readonly = strcmp(k->name, "readonly_token_file") == 0;
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	char *path = abs_path(c, v);
	char *token = secret_first_line(L, "[admin] ", k->name, path);
	bool ok = false;
	if (token) {
		size_t n = strlen(token);
		while (n && (token[n - 1] == ' ' || token[n - 1] == '\t'))
			token[--n] = 0;
		if (n < ADMIN_TOKEN_MIN)
			fail_at(L, L->lineno, "[admin] %s '%s': the token (its first line) is shorter "
			        "than %d bytes", k->name, show(L, path), ADMIN_TOKEN_MIN);
		else
			ok = true;
	}
	if (ok) {
		replace_secret(readonly ? &c->admin_readonly_token : &c->admin_token, token);
	} else if (token) {
		crypto_wipe(token, strlen(token));
		free(token);
	}
	set_string(readonly ? &c->admin_readonly_token_file : &c->admin_token_file, path);
	return ok;
}

/* [server] journal_password_file: the PostgreSQL password, the file's
 * first line (kept from the log, the answers and the hooks as every secret). */
bool set_journal_password_file(struct loader *L, const struct keydef *k, void *obj,
                               const char *v)
{
	struct config *c = L->c;
	if (!v[0])
		return bad_value(L, k, v, "expected a path");
	char *path = abs_path(c, v);
	char *password = secret_first_line(L, "", k->name, path);
	bool ok = password && password[0];
	if (password && !ok)
		fail_at(L, L->lineno, "journal_password_file '%s' is empty", show(L, path));
	if (ok)
		replace_secret(&c->journal_password, password);
	else
		free(password);
	set_string(&c->journal_password_file, path);
	return ok;
}
