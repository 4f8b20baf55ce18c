/* Who may use the deliveries page and API (webauth.h). */
#include "webauth.h"
#include "crypto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "netaddr.h"
#include "util.h"

#define SESSION_ID_BYTES 32
#define FAIL_CLIENTS 64
#define FAIL_WINDOW_MS 60000
/* Each access level has half the session table: logins with the
 * read-only token cannot push out the sessions of the write token. */
#define SESSIONS_PER_LEVEL (WEBAUTH_SESSIONS_MAX / 2)

struct session {
	char id[SESSION_ID_BYTES * 2 + 1]; /* "" : free */
	enum web_access access;
	int64_t expires_ms;
};

struct fail_count {
	char client[64];
	int n;
	int64_t since_ms;
};

struct webauth {
	struct session sessions[WEBAUTH_SESSIONS_MAX];
	struct fail_count fails[FAIL_CLIENTS];
	struct fail_count all; /* every client's failures: spread-out guessing */
	/* The tokens the sessions were made with: a reload that changes one
	 * ends them all. */
	char *token, *readonly_token;
};

struct webauth *webauth_new(void)
{
	return xcalloc(1, sizeof(struct webauth));
}

void webauth_free(struct webauth *w)
{
	if (w) {
		if (w->token)
			crypto_wipe(w->token, strlen(w->token));
		if (w->readonly_token)
			crypto_wipe(w->readonly_token, strlen(w->readonly_token));
		free(w->token);
		free(w->readonly_token);
		crypto_wipe(w, sizeof(*w));
		free(w);
	}
}

bool webauth_required(const struct config *cfg)
{
	return cfg->admin_token || cfg->admin_readonly_token;
}

static bool token_eq(const char *want, const char *got, size_t got_len)
{
	if (!want)
		return false;
	size_t n = strlen(want);
	/* The length is not the secret; the bytes are compared in constant time. */
	return n == got_len && crypto_equal(want, got, n);
}

static enum web_access token_access(const struct config *cfg, const char *tok, size_t len)
{
	if (token_eq(cfg->admin_token, tok, len))
		return WEB_WRITE;
	if (token_eq(cfg->admin_readonly_token, tok, len))
		return WEB_READ;
	return WEB_NONE;
}

static bool same_secret(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	size_t n = strlen(a);
	return n == strlen(b) && crypto_equal(a, b, n);
}

static char *dup_secret(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* After a reload that changed a token, no session made with the old
 * ones lives on. */
static void sync_tokens(struct webauth *w, const struct config *cfg)
{
	if (same_secret(w->token, cfg->admin_token) &&
	    same_secret(w->readonly_token, cfg->admin_readonly_token))
		return;
	bool had = w->token || w->readonly_token;
	crypto_wipe(w->sessions, sizeof(w->sessions));
	for (char **t = &w->token; t; t = t == &w->token ? &w->readonly_token : NULL) {
		if (*t)
			crypto_wipe(*t, strlen(*t));
		free(*t);
	}
	w->token = dup_secret(cfg->admin_token);
	w->readonly_token = dup_secret(cfg->admin_readonly_token);
	if (had)
		log_msg(LOG_LVL_INFO, "admin: a token changed: every session ended");
}

static struct fail_count *fail_slot(struct webauth *w, const char *client, bool make)
{
	struct fail_count *oldest = &w->fails[0];
	int64_t now = now_wall_ms();
	for (int i = 0; i < FAIL_CLIENTS; i++) {
		struct fail_count *f = &w->fails[i];
		if (f->client[0] && now - f->since_ms > FAIL_WINDOW_MS)
			memset(f, 0, sizeof(*f));
		if (f->client[0] && strcmp(f->client, client) == 0)
			return f;
		if (f->since_ms < oldest->since_ms)
			oldest = f;
	}
	if (!make)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	str_copy(oldest->client, sizeof(oldest->client), client);
	oldest->since_ms = now;
	return oldest;
}

/* Past the budget of wrong tokens, from this client or from all. */
static bool limited(struct webauth *w, const char *peer)
{
	char key[64];
	client_group(peer, key, sizeof(key));
	struct fail_count *f = fail_slot(w, key, false);
	if (w->all.n && now_wall_ms() - w->all.since_ms > FAIL_WINDOW_MS)
		w->all.n = 0;
	return (f && f->n >= WEBAUTH_FAILS_MAX) || w->all.n >= WEBAUTH_FAILS_ALL_MAX;
}

static void count_failure(struct webauth *w, const struct http_request *req, const char *how)
{
	char key[64];
	client_group(req->peer, key, sizeof(key));
	struct fail_count *f = fail_slot(w, key, true);
	f->n++;
	if (!w->all.n)
		w->all.since_ms = now_wall_ms();
	w->all.n++;
	char path[LOG_PATH_MAX + 4];
	struct log_kv kv[] = {
		{"remote", req->peer},
		{"path", log_path_cut(path, req->path)},
		{"error", "wrong admin token"},
		{"via", how},
	};
	log_kv(LOG_LVL_WARN, "admin refused", kv, ARRAY_SIZE(kv));
}

/* The session cookie's value in req, or NULL. */
static const char *cookie_session(const struct http_request *req, size_t *len)
{
	const char *c = http_header_get(req, "Cookie");
	size_t name_len = strlen(WEBAUTH_COOKIE);
	for (const char *p = c; p && *p;) {
		p += strspn(p, " ;");
		size_t n = strcspn(p, ";");
		if (n > name_len && strncmp(p, WEBAUTH_COOKIE, name_len) == 0 && p[name_len] == '=') {
			*len = n - name_len - 1;
			return p + name_len + 1;
		}
		p += n;
	}
	return NULL;
}

static struct session *find_session(struct webauth *w, const struct http_request *req)
{
	size_t len;
	const char *id = cookie_session(req, &len);
	if (!id || len != SESSION_ID_BYTES * 2)
		return NULL;
	int64_t now = now_wall_ms();
	for (int i = 0; i < WEBAUTH_SESSIONS_MAX; i++) {
		struct session *s = &w->sessions[i];
		if (!s->id[0])
			continue;
		if (s->expires_ms <= now) {
			memset(s, 0, sizeof(*s));
			continue;
		}
		if (crypto_equal(s->id, id, len))
			return s;
	}
	return NULL;
}

enum web_access webauth_check(struct webauth *w, const struct config *cfg,
                              const struct http_request *req)
{
	if (!webauth_required(cfg))
		return WEB_WRITE;
	sync_tokens(w, cfg);
	const char *auth = http_header_get(req, "Authorization");
	if (auth) {
		/* The token first: a right one always passes, so a crowd of
		 * wrong ones behind the same proxy locks nobody out. */
		bool bearer = strncasecmp(auth, "Bearer ", 7) == 0;
		enum web_access a = bearer ? token_access(cfg, auth + 7, strlen(auth + 7)) : WEB_NONE;
		if (a != WEB_NONE)
			return a;
		if (limited(w, req->peer))
			return WEB_LIMITED;
		count_failure(w, req, bearer ? "bearer" : "authorization");
		return WEB_NONE;
	}
	struct session *s = find_session(w, req);
	return s ? s->access : WEB_NONE;
}

char *webauth_login(struct webauth *w, const struct config *cfg, const struct http_request *req,
                    const char *token, size_t token_len, bool *is_limited)
{
	sync_tokens(w, cfg);
	enum web_access a = token_access(cfg, token, token_len);
	*is_limited = false;
	if (a == WEB_NONE) {
		*is_limited = limited(w, req->peer);
		if (!*is_limited)
			count_failure(w, req, "login");
		return NULL;
	}
	/* A free slot while this level has fewer than its share, else its
	 * own session closest to expiring. */
	struct session *slot = NULL, *oldest = NULL;
	int mine = 0;
	int64_t now = now_wall_ms();
	for (int i = 0; i < WEBAUTH_SESSIONS_MAX; i++) {
		struct session *s = &w->sessions[i];
		if (s->id[0] && s->expires_ms <= now)
			memset(s, 0, sizeof(*s));
		if (!s->id[0]) {
			if (!slot)
				slot = s;
			continue;
		}
		if (s->access != a)
			continue;
		mine++;
		if (!oldest || s->expires_ms < oldest->expires_ms)
			oldest = s;
	}
	if (mine >= SESSIONS_PER_LEVEL || !slot)
		slot = oldest;
	if (!slot)
		return NULL;
	unsigned char raw[SESSION_ID_BYTES];
	if (!crypto_random(raw, sizeof(raw)))
		return NULL;
	for (int i = 0; i < SESSION_ID_BYTES; i++)
		snprintf(slot->id + 2 * i, 3, "%02x", raw[i]);
	crypto_wipe(raw, sizeof(raw));
	slot->access = a;
	slot->expires_ms = now_wall_ms() + WEBAUTH_SESSION_MS;
	/* Behind a TLS proxy the cookie must never go back in clear. Who sets
	 * the header does not matter: Secure only narrows where it is sent. */
	const char *proto = http_header_get(req, "X-Forwarded-Proto");
	bool https = proto && strcasecmp(proto, "https") == 0;
	return xasprintf("Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s\r\n",
	                 WEBAUTH_COOKIE, slot->id, WEBAUTH_SESSION_MS / 1000,
	                 https ? "; Secure" : "");
}

const char *webauth_logout(struct webauth *w, const struct http_request *req)
{
	struct session *s = find_session(w, req);
	if (s)
		memset(s, 0, sizeof(*s));
	return "Set-Cookie: " WEBAUTH_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n";
}

bool webauth_same_origin(const struct http_request *req)
{
	/* A browser that sends Sec-Fetch-Site says itself where the request
	 * comes from; its Origin need not match Host, which a proxy may
	 * rewrite (nginx's proxy_pass sends 127.0.0.1:PORT). */
	const char *site = http_header_get(req, "Sec-Fetch-Site");
	if (site)
		return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
	const char *origin = http_header_get(req, "Origin");
	if (!origin)
		return true;
	const char *host = http_header_get(req, "Host");
	if (!host)
		return false;
	const char *rest = NULL;
	if (strncmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	return rest && strcmp(rest, host) == 0;
}

/* host[0..n) without its ":PORT" (digits); brackets kept. */
static size_t host_name_len(const char *host, size_t n)
{
	size_t end = n;
	while (end > 0 && host[end - 1] >= '0' && host[end - 1] <= '9')
		end--;
	if (end > 0 && end < n && host[end - 1] == ':' && (host[0] != '[' || host[end - 2] == ']'))
		return end - 1;
	return n;
}

static bool ip_literal(const char *name, size_t n)
{
	char buf[64];
	unsigned char addr[16];
	if (n >= sizeof(buf))
		return false;
	if (n > 2 && name[0] == '[' && name[n - 1] == ']') {
		memcpy(buf, name + 1, n - 2);
		buf[n - 2] = 0;
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	memcpy(buf, name, n);
	buf[n] = 0;
	return inet_pton(AF_INET, buf, addr) == 1;
}

bool webauth_host_ok(const struct config *cfg, const struct http_request *req)
{
	if (webauth_required(cfg))
		return true;
	const char *host = http_header_get(req, "Host");
	if (!host)
		return true; /* HTTP/1.0 by hand: no browser sends that */
	size_t n = host_name_len(host, strlen(host));
	if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) || ip_literal(host, n))
		return true;
	const char *listen = cfg->admin_listen;
	if (!listen || strncmp(listen, "unix:", 5) == 0)
		return false;
	size_t ln = host_name_len(listen, strlen(listen));
	return ln == n && strncasecmp(listen, host, n) == 0;
}
