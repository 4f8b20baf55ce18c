#include "admin.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "http.h"
#include "journal.h"
#include "metrics.h"
#include "runner.h"
#include "util.h"
#include "webapi.h"

/* The text format's media type, as Prometheus asks for it. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct admin {
	struct http_server *http;
	struct dispatcher *ds;
	struct webapi *web; /* the deliveries page and API; NULL without a dispatcher */
	bool draining;
};

static char *json_status(const char *status, const char *error)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "{\"status\":");
	sb_json_str(&sb, status, strlen(status));
	if (error) {
		sb_puts(&sb, ",\"error\":");
		sb_json_str(&sb, error, strlen(error));
	}
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

/* Answers the HTTP layer gives itself (431, 413, 400, 408). */
static char *error_body(int status, const char *error, const char *peer, void *arg)
{
	return json_status("rejected", error);
}

static void handle(struct http_request *req, void *arg)
{
	struct admin *a = arg;
	if (a->web && webapi_handle(a->web, req))
		return;
	bool healthz = strcmp(req->path, "/healthz") == 0;
	bool metrics = strcmp(req->path, "/metrics") == 0;
	if (!healthz && !metrics) {
		http_respond(req, 404, WEB_SECURITY_HEADERS,
		             json_status("rejected", "no such path: try /, /healthz or /metrics"), false);
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		http_respond(req, 405, WEB_SECURITY_HEADERS "Allow: GET\r\n",
		             json_status("rejected", "method not allowed"), false);
		return;
	}
	struct journal *journal = a->ds ? dispatcher_journal(a->ds) : NULL;
	if (healthz) {
		if (a->draining)
			http_respond(req, 503, WEB_SECURITY_HEADERS, json_status("draining", NULL), false);
		else if (!journal_up(journal))
			http_respond(req, 503, WEB_SECURITY_HEADERS,
			             json_status("journal_down",
			                         "the journal cannot be reached: deliveries get 503"),
			             false);
		else
			http_respond(req, 200, WEB_SECURITY_HEADERS, json_status("ok", NULL), false);
		return;
	}
	/* Endpoint, hook and route names, and their counts: with tokens,
	 * only for those who bring one (README "Admin listener"). */
	if (a->web && !webapi_may_read(a->web, req))
		return;
	struct metrics_gauges g = {
		.hooks_running = runner_active(),
		.deliveries_running = a->ds ? dispatcher_running(a->ds) : 0,
		.deliveries_queued = a->ds ? dispatcher_queued(a->ds) : 0,
		.draining = a->draining,
		.journal_up = journal ? journal_up(journal) : -1,
	};
	if (a->ds)
		dispatcher_pending(a->ds, &g.pending_queued, &g.pending_running,
		                   &g.pending_retry_wait);
	http_respond_typed(req, 200, METRICS_CONTENT_TYPE, WEB_SECURITY_HEADERS, metrics_render(&g),
	                   false);
}

struct admin *admin_new(struct event_base *base, struct dispatcher *ds)
{
	struct admin *a = xcalloc(1, sizeof(*a));
	a->ds = ds;
	if (ds)
		a->web = webapi_new(base, ds);
	/* Fixed limits: a scraper sends a short GET and reads the answer. */
	struct http_limits lim = {
		.max_headers = 16 * 1024,
		.max_body = 4096,
		.max_connections = ADMIN_MAX_CONNECTIONS,
		.read_timeout_ms = 10000,
		.idle_timeout_ms = 60000,
		/* 64 trickled requests from anyone would keep a scrape out. */
		.unfinished_idle = true,
	};
	a->http = http_server_new(base, &lim, handle, error_body, a);
	http_server_set_error_headers(a->http, WEB_SECURITY_HEADERS);
	return a;
}

int admin_listen_fd(struct admin *a, int fd)
{
	return http_server_listen_fd(a->http, fd);
}

void admin_set_draining(struct admin *a)
{
	if (a)
		a->draining = true;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	/* First: it answers the requests that wait for live output. */
	webapi_free(a->web);
	http_server_free(a->http);
	free(a);
}
