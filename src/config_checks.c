/*
 * config_checks: after the last line, what needs the whole file: each
 * endpoint against its scheme, paths used twice, listeners open to anyone,
 * secrets a hook would get, and the status map (config_loader.h).
 */
#include "config_loader.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "netaddr.h"
#include "util.h"

/* A secret shorter than this is a warning: 128 bits are what a guess at
 * an HMAC key or a token should have to find. */
#define SECRET_MIN_ADVISED 16

/*
 * inih keeps quotes, so `secret = ""` would be the two bytes `""`: a
 * secret anyone can guess, given by someone who meant none. A secret
 * that is only a pair of quotes is the empty secret, an error.
 */
static bool check_secret_lengths(struct loader *L, const struct endpoint *ep, int line)
{
	for (size_t i = 0; i < ep->nsecrets; i++) {
		const struct secret *s = &ep->secrets[i];
		if (s->len == 0 || (s->len == 2 && (memcmp(s->data, "\"\"", 2) == 0 ||
		                                    memcmp(s->data, "''", 2) == 0)))
			return fail_at(L, line,
			               "endpoint '%s': secret is empty (quotes are kept: \"\" is not an "
			               "empty string, and an empty secret is no secret)",
			               ep->name);
	}
	return true;
}

static bool check_endpoint(struct loader *L, struct endpoint *ep)
{
	struct config *c = L->c;
	char *section = xasprintf("endpoint %s", ep->name);
	bool ok = false;
	int secret_line;

	if (!ep->path) {
		fail_at(L, ep->line, "endpoint '%s' has no path", ep->name);
		goto out;
	}
	for (size_t i = 0; i < endpoint_keys_n; i++) {
		const struct keydef *k = &endpoint_keys[i];
		int line = k->by_scheme ? seen_line(L, section, k->name) : 0;
		if (line && !scheme_takes_key(ep->scheme, k->name)) {
			fail_at(L, line, "key '%s' does not apply to scheme %s (endpoint '%s')", k->name,
			        scheme_name(ep->scheme), ep->name);
			goto out;
		}
	}
	secret_line = seen_line(L, section, "secret");
	if (!secret_line)
		secret_line = seen_line(L, section, "secret_file");
	if (!secret_line)
		secret_line = seen_line(L, section, "secret_env");
	if (!ep->scheme->takes_secret && ep->nsecrets) {
		fail_at(L, secret_line, "endpoint '%s': scheme %s takes no secret", ep->name,
		        scheme_name(ep->scheme));
		goto out;
	}
	if (ep->scheme->takes_secret && !ep->nsecrets) {
		fail_at(L, ep->line,
		        "endpoint '%s' (scheme %s) has no secret; hookd never serves an "
		        "unauthenticated endpoint unless scheme = none",
		        ep->name, scheme_name(ep->scheme));
		goto out;
	}
	if (!check_secret_lengths(L, ep, secret_line))
		goto out;
	for (size_t i = 0; ep->scheme->decode_secret && i < ep->nsecrets; i++) {
		if (!ep->scheme->decode_secret(&ep->secrets[i])) {
			const char *form = ep->scheme->secret_form, *name = scheme_name(ep->scheme);
			int at = ep->secrets[i].line;
			/* Lines of a file or variable are named by their line (never by
			 * their text: it is a secret). */
			if (at && ep->secret_file)
				fail_at(L, secret_line,
				        "endpoint '%s': secret_file '%s' line %d is not %s (scheme %s)",
				        ep->name, show(L, ep->secret_file), at, form, name);
			else if (at && ep->secret_env)
				/* Nor the variable's name (config_secrets.c). */
				fail_at(L, secret_line,
				        "endpoint '%s': line %d of the environment variable secret_env "
				        "names is not %s (scheme %s)",
				        ep->name, at, form, name);
			else if (ep->nsecrets > 1)
				fail_at(L, secret_line,
				        "endpoint '%s': secret %zu of %zu is not %s (scheme %s)",
				        ep->name, i + 1, ep->nsecrets, form, name);
			else
				fail_at(L, secret_line, "endpoint '%s': the secret is not %s (scheme %s)",
				        ep->name, form, name);
			goto out;
		}
	}
	/* The token header is the endpoint's own credential header, as an hmac
	 * endpoint's signature_header is: never journaled, never passed on. */
	if (ep->token_header)
		set_string(&ep->signature_header, xstrdup(ep->token_header));
	/* The event and the id are logged, answered, journaled and given to
	 * hooks: neither may be read from a credential. */
	const struct {
		const char *key, *header;
	} named[] = {{"event_header", ep->event_header}, {"id_header", ep->id_header}};
	for (size_t i = 0; i < ARRAY_SIZE(named); i++) {
		if (named[i].header && header_is_credential(named[i].header, ep->signature_header)) {
			fail_at(L, seen_line(L, section, named[i].key),
			        "endpoint '%s': %s names %s, which carries a credential: it would be "
			        "logged, answered and given to hooks",
			        ep->name, named[i].key, named[i].header);
			goto out;
		}
	}
	for (char **h = ep->pass_headers; h && *h; h++) {
		int line = seen_line(L, section, "pass_headers");
		if (header_is_credential(*h, ep->signature_header)) {
			fail_at(L, line,
			        "endpoint '%s': pass_headers names %s, which carries a credential: "
			        "a hook never gets one",
			        ep->name, *h);
			goto out;
		}
		/* Two names, one variable: which value it held would be a guess. */
		for (char **g = ep->pass_headers; g < h; g++) {
			char *a = xstrdup(*g), *b = xstrdup(*h);
			header_var_suffix(a);
			header_var_suffix(b);
			bool same = strcmp(a, b) == 0;
			if (same)
				fail_at(L, line, "endpoint '%s': pass_headers names %s and %s, which are "
				        "both HEADER_%s", ep->name, *g, *h, a);
			free(a);
			free(b);
			if (same)
				goto out;
		}
	}
	for (size_t i = 0; i < ep->nsecrets; i++) {
		/* After decode_secret: what counts is the key's bytes. */
		if (ep->secrets[i].len >= SECRET_MIN_ADVISED)
			continue;
		if (ep->nsecrets > 1)
			warn_at(L, secret_line, "endpoint '%s': secret %zu of %zu is %zu bytes; use %d or more",
			        ep->name, i + 1, ep->nsecrets, ep->secrets[i].len, SECRET_MIN_ADVISED);
		else
			warn_at(L, secret_line, "endpoint '%s': the secret is %zu bytes; use %d or more",
			        ep->name, ep->secrets[i].len, SECRET_MIN_ADVISED);
	}
	if (!ep->hooks_dir)
		ep->hooks_dir = xstrdup(c->hooks_dir);
	ok = true;
out:
	free(section);
	return ok;
}

/* Whether only this machine can connect to the listen address: a unix
 * socket, or a loopback address (127.0.0.0/8, ::1). */
static bool listen_is_local(const char *listen)
{
	struct listen_addr la;
	if (listen_addr_parse(listen, &la) != LISTEN_OK)
		return false;
	switch (la.ss.ss_family) {
	case AF_UNIX:
		return true;
	case AF_INET: {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&la.ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&la.ss;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	default:
		return false;
	}
}

/*
 * scheme = none serves anyone who can connect: on an address other
 * machines reach, allow_from must say who may.
 */
static bool check_unauthenticated_listener(struct loader *L)
{
	const struct config *c = L->c;
	if (listen_is_local(c->listen))
		return true;
	for (size_t i = 0; i < c->nendpoints; i++) {
		const struct endpoint *ep = &c->endpoints[i];
		if (ep->scheme->takes_secret || ep->allow_from.n > 0)
			continue;
		char *section = xasprintf("endpoint %s", ep->name);
		int line = seen_line(L, section, "scheme");
		free(section);
		return fail_at(L, line ? line : ep->line,
		               "endpoint '%s': scheme %s verifies nothing and listen '%s' is not "
		               "loopback: set allow_from to the addresses that may call it",
		               ep->name, scheme_name(ep->scheme), show(L, c->listen));
	}
	return true;
}

bool check_all(struct loader *L)
{
	struct config *c = L->c;
	if (c->nendpoints == 0)
		return fail_at(L, 0,
		               "no [endpoint] section; hookd never serves an unauthenticated "
		               "endpoint, add one (scheme = none must be explicit)");
	for (size_t i = 0; i < c->nendpoints; i++)
		if (!check_endpoint(L, &c->endpoints[i]))
			return false;

	/* A path belongs to one endpoint; the later path line is the error. */
	for (size_t i = 0; i < c->nendpoints; i++) {
		for (size_t j = i + 1; j < c->nendpoints; j++) {
			struct endpoint *a = &c->endpoints[i], *b = &c->endpoints[j];
			if (strcmp(a->path, b->path) != 0)
				continue;
			char *sa = xasprintf("endpoint %s", a->name);
			char *sb = xasprintf("endpoint %s", b->name);
			int la = seen_line(L, sa, "path"), lb = seen_line(L, sb, "path");
			free(sa);
			free(sb);
			if (la > lb)
				return fail_at(L, la, "endpoint '%s': path '%s' is already used by endpoint '%s'",
				               a->name, show(L, a->path), b->name);
			return fail_at(L, lb, "endpoint '%s': path '%s' is already used by endpoint '%s'",
			               b->name, show(L, b->path), a->name);
		}
	}

	if (!check_unauthenticated_listener(L))
		return false;
	/* The admin listener shows every delivery and can replay them. */
	if (c->admin_listen && !c->admin_token && !c->admin_readonly_token &&
	    !listen_is_local(c->admin_listen))
		return fail_at(L, seen_line(L, "admin", "listen"),
		               "[admin] listen '%s' is not loopback or a unix socket, and no "
		               "token_file is set: the deliveries page and API would be open to "
		               "anyone who can connect; set token_file, or listen on 127.0.0.1, "
		               "[::1] or unix:PATH",
		               show(L, c->admin_listen));

	/* A hook never gets a secret, not even one pass_env would hand it. */
	for (size_t i = 0; i < c->nendpoints; i++) {
		const struct endpoint *ep = &c->endpoints[i];
		for (char **p = c->pass_env; ep->secret_env && p && *p; p++) {
			if (strcmp(*p, ep->secret_env) == 0)
				return fail_at(L, seen_line(L, "server", "pass_env"),
				               "pass_env names %s, which holds the secret of endpoint '%s' "
				               "(secret_env): a hook never gets a secret",
				               *p, ep->name);
		}
	}

	c->user_line = seen_line(L, "server", "user");
	c->group_line = seen_line(L, "server", "group");
	c->hook_user_line = seen_line(L, "server", "hook_user");
	c->hook_group_line = seen_line(L, "server", "hook_group");
	c->tls_cert_line = seen_line(L, "server", "tls_cert");
	c->tls_key_line = seen_line(L, "server", "tls_key");
	c->tls_ciphers_line = seen_line(L, "server", "tls_ciphers");
	if (!c->tls_cert != !c->tls_key) {
		const char *given = c->tls_cert ? "tls_cert" : "tls_key";
		const char *missing = c->tls_cert ? "tls_key" : "tls_cert";
		return fail_at(L, seen_line(L, "server", given), "%s is set but %s is not; give both or neither",
		               given, missing);
	}
	if (L->async_line && !c->state_dir && !c->journal_url)
		return fail_at(L, L->async_line, "mode = async needs [server] state_dir or journal");
	/* Going on after the 202 is an async delivery's: journaled. */
	if (L->respond_within_line && !c->state_dir && !c->journal_url)
		return fail_at(L, L->respond_within_line,
		               "respond_within needs [server] state_dir or journal (or 0 for off)");
	if (c->journal_password_file && !c->journal_url)
		return fail_at(L, seen_line(L, "server", "journal_password_file"),
		               "journal_password_file is set but journal is not");
	if (c->lease_ms < 3 * MS_SECOND)
		return fail_at(L, seen_line(L, "server", "lease"),
		               "lease must be at least 3s (it is renewed every lease/3)");
	if (!c->instance)
		c->instance = default_instance();
	/* serve makes a missing state_dir; one that cannot be a directory is
	 * an error check reports too. */
	struct stat st;
	int r = c->state_dir ? stat(c->state_dir, &st) : -1;
	if ((r == 0 && !S_ISDIR(st.st_mode)) || (r < 0 && c->state_dir && errno == ENOTDIR))
		return fail_at(L, seen_line(L, "server", "state_dir"), "state_dir %s is not a directory",
		               show(L, c->state_dir));

	/* The status map: defaults first, then the file's entries, in exit order. */
	for (int code = 0; code <= MAX_EXIT; code++) {
		if (L->status_http[code] == 0)
			continue;
		c->status.v = xrealloc(c->status.v, (c->status.n + 1) * sizeof(*c->status.v));
		c->status.v[c->status.n].exit_code = code;
		bool skip = L->status_http[code] < 0;
		c->status.v[c->status.n].http = skip ? 200 : L->status_http[code];
		c->status.v[c->status.n].skip = skip;
		c->status.n++;
	}
	return true;
}
