/*
 * Who may use the admin's deliveries page and API. Without tokens
 * ([admin] token_file, readonly_token_file) everyone who can connect may do
 * everything: the config then allows only a loopback address or a unix
 * socket. With them a request brings `Authorization: Bearer TOKEN`, or the
 * session cookie the login form got for one. Tokens are compared in
 * constant time and never logged; wrong ones are logged (the client, not
 * the token) and, past WEBAUTH_FAILS_MAX a minute from one client (an
 * IPv6 /64), or WEBAUTH_FAILS_ALL_MAX from all, answered 429; a right
 * token always passes (behind a proxy every client has one address).
 * Sessions live in memory, half the table for each access level, expire,
 * and end when a reload changes a token.
 */
#ifndef HOOKD_WEBAUTH_H
#define HOOKD_WEBAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEBAUTH_FAILS_MAX 10
#define WEBAUTH_FAILS_ALL_MAX 100 /* from all clients together, a minute */
#define WEBAUTH_SESSIONS_MAX 64
#define WEBAUTH_SESSION_MS (8 * 3600 * 1000)
#define WEBAUTH_COOKIE "hookd_session"

enum web_access {
	WEB_NONE,
	WEB_READ,  /* look, not replay */
	WEB_WRITE, /* everything */
	WEB_LIMITED, /* too many wrong tokens from this client: 429 */
};

struct http_request;
struct config;
struct webauth;

struct webauth *webauth_new(void);
void webauth_free(struct webauth *w);
/* Whether cfg asks for a token at all. */
bool webauth_required(const struct config *cfg);
/* What req may do, from its bearer token or its session cookie. */
enum web_access webauth_check(struct webauth *w, const struct config *cfg,
                              const struct http_request *req);
/* The login form's token: a new session's Set-Cookie header line (malloc'd,
 * "\r\n" ended), or NULL (wrong token, logged and counted; *limited when
 * refused for too many). */
char *webauth_login(struct webauth *w, const struct config *cfg, const struct http_request *req,
                    const char *token, size_t token_len, bool *limited);
/* Ends req's session; returns the Set-Cookie line that clears it (static). */
const char *webauth_logout(struct webauth *w, const struct http_request *req);
/* Without a token, whether req's Host is one this listener can be reached
 * by on purpose: "localhost", an IP literal (v4, or v6 in brackets), or
 * [admin] listen's host, each with an optional port. Anything else is a
 * name that resolves here by DNS rebinding (a page on another site that
 * would read the API as same-origin): 421. With a token: always true. */
bool webauth_host_ok(const struct config *cfg, const struct http_request *req);
/* Whether a POST comes from a page of this listener: with Sec-Fetch-Site,
 * what it says (same-origin or none), Origin unlooked at (a proxy may
 * rewrite Host); without it, an Origin must be this Host. A request
 * without either (curl) passes. */
bool webauth_same_origin(const struct http_request *req);

#endif
