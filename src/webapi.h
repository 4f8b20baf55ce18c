/*
 * The deliveries page and its JSON API on the admin listener (README
 * "Deliveries page"): GET / and /deliveries/ENDPOINT/ID (the page, from
 * the binary: web_assets), /api/v1/deliveries (the list, filtered, newest
 * first, by cursor), /api/v1/deliveries/ENDPOINT/ID (one in full, with the
 * environment its hooks got), POST .../replay and /api/v1/replay (through
 * the dispatcher, as `hookd replay`), /api/v1/rejections (rejections.h),
 * /api/v1/login and /logout (webauth.h), and .../output: a delivery's
 * output as Server-Sent Events (liveout.h). From the journal when there is
 * one, else from the memory of recent deliveries (recent.h), without
 * replay.
 */
#ifndef HOOKD_WEBAPI_H
#define HOOKD_WEBAPI_H

#include <stdbool.h>

struct dispatcher;
struct event_base;
struct http_request;
struct webapi;

/* Takes the dispatcher's end-of-delivery callback and the runner's output
 * observer (one admin listener a process). */
struct webapi *webapi_new(struct event_base *base, struct dispatcher *ds);
void webapi_free(struct webapi *w);
/* Answers req when its path is the page's or the API's; false otherwise. */
bool webapi_handle(struct webapi *w, struct http_request *req);
/* Whether req may read what the API reads (the admin's /metrics): always
 * without [admin] token_file, else with either token or a session, as the
 * API; false when req has been answered 401 or 429 (a missing token logged
 * within the admin's budget of refusal lines). */
bool webapi_may_read(struct webapi *w, struct http_request *req);

/* The header lines every admin answer carries (CSP, nosniff, no referrer). */
#define WEB_SECURITY_HEADERS                                                                    \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "       \
	"img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "               \
	"frame-ancestors 'none'\r\n"                                                               \
	"X-Content-Type-Options: nosniff\r\n"                                                      \
	"Referrer-Policy: no-referrer\r\n"                                                         \
	"X-Frame-Options: DENY\r\n"                                                                \
	"Cache-Control: no-store\r\n"

#endif
