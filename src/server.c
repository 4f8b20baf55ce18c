#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dispatch.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"
#include "rejections.h"
#include "util.h"
#include "verify.h"

struct server {
	struct event_base *base;
	struct config *cfg;
	struct dispatcher *ds;
	struct http_server *http;
	bool draining;
	uint64_t requests; /* handled so far: main.c's idle trim watches it */
	/* Which config a request head was judged under (http_request.tag):
	 * a reload before its body is whole has it judged again. */
	uint64_t generation;
	/* The 401 answer of each endpoint of cfg (by index), made on first
	 * use: it is the same for every request a wrong token brings. */
	char **unauthorized;
};

static void unauthorized_free(struct server *s)
{
	for (size_t i = 0; s->unauthorized && i < s->cfg->nendpoints; i++)
		free(s->unauthorized[i]);
	free(s->unauthorized);
	s->unauthorized = NULL;
}

static char *error_body(int status, const char *error, const char *peer, void *arg)
{
	/* The HTTP layer's own refusals (400, 408, 411, 413, 431) pass here. */
	metrics_rejection(status, NULL);
	rejections_add(status, peer, NULL, NULL, error);
	return response_json(NULL, NULL, NULL, "rejected", error);
}

static const char *req_header(void *ctx, const char *name)
{
	return http_header_get(ctx, name);
}

/*
 * A client that never authenticates decides how many refusals there are
 * and what their paths say: at most REJECTED_LOG_PER_SEC "rejected" lines
 * a second are logged, the rest counted in one "rejections not logged"
 * line with the first refusal of a later second, and a path is logged cut
 * to LOG_PATH_MAX bytes. Metrics and the rejections ring see every one.
 */
#define REJECTED_LOG_PER_SEC 50

static struct log_budget rejected_log;

static void log_rejected(const struct log_kv *kv, size_t n)
{
	log_limited(&rejected_log, REJECTED_LOG_PER_SEC, "rejections not logged", LOG_LVL_WARN,
	            "rejected", kv, n);
}

/* Refuses req with status: logged, counted, and the connection closed
 * (README "Hardening and limits"). The line's fields are README "Logs and
 * signals"': the method only when it is not POST (the 404's and 405's);
 * id only for a request whose credentials passed (an empty id: none), so
 * that an unauthenticated client puts no more of its input in our logs. */
static void reject(struct http_request *req, const struct endpoint *ep, int status,
                   const char *extra, const char *error, const char *event, const char *id,
                   const char *client)
{
	char http[16];
	snprintf(http, sizeof(http), "%d", status);
	char path[LOG_PATH_MAX + 4];
	if (id && !*id)
		id = NULL;
	struct log_kv kv[] = {
		{"endpoint", ep ? ep->name : NULL},
		{"path", ep ? NULL : log_path_cut(path, req->path)},
		{"method", strcmp(req->method, "POST") != 0 ? req->method : NULL},
		{"event", event},
		{"id", id},
		{"status", "rejected"},
		LOG_INT("http", http),
		{"remote", client ? client : req->peer},
		{"error", error},
	};
	log_rejected(kv, ARRAY_SIZE(kv));
	metrics_rejection(status, NULL);
	rejections_add(status, client ? client : req->peer, ep ? ep->name : NULL, req->path, error);
	http_respond(req, status, extra,
	             response_json(ep ? ep->name : NULL, event, id, "rejected", error), true);
}

/* The 401: the reason in the log only, the answer the same for every
 * wrong credential (made once per endpoint). */
static void unauthorized(struct server *s, struct http_request *req, const struct endpoint *ep,
                         const char *client, const char *why)
{
	struct config *cfg = s->cfg;
	char http[8] = "401";
	struct log_kv kv[] = {
		{"endpoint", ep->name}, {"status", "rejected"}, LOG_INT("http", http),
		{"remote", client}, {"error", "unauthorized"}, {"reason", why},
	};
	log_rejected(kv, ARRAY_SIZE(kv));
	metrics_rejection(401, NULL);
	rejections_add(401, client, ep->name, NULL, why);
	size_t i = (size_t)(ep - cfg->endpoints);
	if (!s->unauthorized)
		s->unauthorized = xcalloc(cfg->nendpoints, sizeof(*s->unauthorized));
	if (!s->unauthorized[i])
		s->unauthorized[i] = response_json(ep->name, NULL, NULL, "rejected", "unauthorized");
	char challenge[128] = "";
	if (ep->scheme->challenge)
		snprintf(challenge, sizeof(challenge), "WWW-Authenticate: %s\r\n",
		         ep->scheme->challenge);
	http_respond(req, 401, challenge[0] ? challenge : NULL, xstrdup(s->unauthorized[i]), true);
}

/* The request as the sender schemes read it (verify.h, scheme.h). */
static struct verify_input verify_input_of(struct http_request *req, const struct endpoint *ep)
{
	return (struct verify_input){
		.ep = ep,
		.header = req_header,
		.ctx = req,
		.body = req->body,
		.body_len = req->body_len,
		.now = now_wall_ms() / 1000,
	};
}

/* One step of the credentials check, the head's or the body's: false
 * when it failed and the 401 went out. */
static bool credentials_ok(struct server *s, struct http_request *req, const struct endpoint *ep,
                           const char *client, const struct verify_input *in,
                           bool (*step)(const struct verify_input *in, char *why, size_t whylen))
{
	char why[256] = "";
	if (step(in, why, sizeof(why)))
		return true;
	unauthorized(s, req, ep, client, why);
	return false;
}

/* The 415 check, once the credentials passed: false when it refused req;
 * else the body's kind. */
static bool media_type_ok(struct http_request *req, const struct endpoint *ep, const char *client,
                          const struct verify_input *in, enum content_kind *kind)
{
	*kind = content_type_classify(http_header_get(req, "Content-Type"));
	if (!scheme_accepts_content(ep, *kind, req->content_length)) {
		struct identity hid;
		identity_header_id(in, &hid);
		reject(req, ep, 415, NULL, "Content-Type is not JSON", NULL, hid.id, client);
		return false;
	}
	return true;
}

#define CLIENT_MAX 64

/*
 * The answers of README "HTTP answers" that the request head decides, in
 * the table's order: shutting down (503), no endpoint (404), the method
 * (405), allow_from (403), max_body (413), the credentials as far as the
 * head decides them (401), and for a scheme whose credentials the head
 * decides whole (a token), the media type (415). Run as soon as a head is
 * parsed, before any body byte is read; on the whole request only what
 * may have changed since (`judged`: the head passed under this config).
 * Returns the endpoint, or NULL when it answered req; client gets the
 * client's address.
 */
static const struct endpoint *head_checks(struct server *s, struct http_request *req,
                                          char client[CLIENT_MAX], bool judged)
{
	struct config *cfg = s->cfg;
	if (s->draining) {
		metrics_rejection(503, "shutting_down");
		rejections_add(503, req->peer, NULL, req->path, "shutting down");
		http_respond(req, 503, "Retry-After: 5\r\n",
		             response_json(NULL, NULL, NULL, "overloaded", "shutting down"), true);
		return NULL;
	}
	const struct endpoint *ep = config_endpoint_by_path(cfg, req->path);
	if (judged) {
		client_address(&cfg->trusted_proxies, req->peer,
		               http_header_get(req, "X-Forwarded-For"), client, CLIENT_MAX);
		return ep;
	}
	if (!ep) {
		reject(req, NULL, 404, NULL, "no endpoint at this path", NULL, NULL, NULL);
		return NULL;
	}
	if (strcmp(req->method, "POST") != 0) {
		reject(req, ep, 405, "Allow: POST\r\n", "method not allowed", NULL, NULL, NULL);
		return NULL;
	}
	client_address(&cfg->trusted_proxies, req->peer, http_header_get(req, "X-Forwarded-For"),
	               client, CLIENT_MAX);
	if (ep->allow_from.n > 0 && !cidr_list_match(&ep->allow_from, client)) {
		reject(req, ep, 403, NULL, "client address not allowed", NULL, NULL, client);
		return NULL;
	}
	if (req->content_length > cfg->max_body) {
		reject(req, ep, 413, NULL, "body larger than max_body", NULL, NULL, client);
		return NULL;
	}
	struct verify_input in = verify_input_of(req, ep);
	if (!credentials_ok(s, req, ep, client, &in, verify_credentials_head))
		return NULL;
	enum content_kind kind;
	if (scheme_verifies_from_head(ep->scheme) && !media_type_ok(req, ep, client, &in, &kind))
		return NULL;
	return ep;
}

/* The http_head_handler: refuses what the head decides before the body
 * is read (README "Hardening and limits"). */
static bool handle_head(struct http_request *req, void *arg)
{
	struct server *s = arg;
	char client[CLIENT_MAX];
	s->requests++;
	if (!head_checks(s, req, client, false))
		return false;
	req->tag = s->generation;
	return true;
}

static void on_delivery_done(struct delivery *d, void *arg)
{
	struct http_request *req = arg;
	const struct outcome *out = delivery_outcome(d);
	if (out->http == 503 || (out->http >= 400 && out->http < 500 && out->http != 409))
		rejections_add(out->http, req->peer, delivery_endpoint(d)->name, NULL,
		               out->error ? out->error : out->status);
	char extra[64] = "";
	if (out->retry_after)
		snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", out->retry_after);
	/* A refusal (a 409 for a pending id, a 400 for a body that would not
	 * parse) closes the connection, as every other refusal does. */
	bool refused = out->http >= 400 && out->http < 500;
	http_respond(req, out->http, extra[0] ? extra : NULL,
	             delivery_response_json(d, delivery_config(d)->include_output), refused);
}

/* The http_gone_handler: its sender hung up while the delivery ran or
 * waited; the delivery goes on, its outcome is recorded all the same. */
static void on_client_gone(struct http_request *req, void *arg)
{
	(void)arg;
	if (req->owner)
		delivery_set_client_gone(req->owner);
}

static void copy_headers(struct delivery *d, const struct http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (header_is_credential(h->name, delivery_endpoint(d)->signature_header))
			continue;
		delivery_keep_header(d, h->name, h->value);
	}
}

/* A request whose body is whole: the rest of the answer table, then the
 * dispatcher. */
static void handle(struct http_request *req, void *arg)
{
	struct server *s = arg;
	struct config *cfg = s->cfg;
	char client[CLIENT_MAX];
	const struct endpoint *ep = head_checks(s, req, client, req->tag == s->generation);
	if (!ep)
		return;
	struct verify_input in = verify_input_of(req, ep);
	if (!credentials_ok(s, req, ep, client, &in, verify_credentials_body))
		return;
	enum content_kind kind;
	if (!media_type_ok(req, ep, client, &in, &kind))
		return;
	json_object *root = NULL;
	struct body_summary sum;
	char err[256];
	struct identity id;
	memset(&id, 0, sizeof(id));
	if (!scheme_decode(&in, kind, &root, &sum, err, sizeof(err))) {
		/* Verified: the sender's id (from its header) lets it find the
		 * delivery this 400 answers. */
		identity_header_id(&in, &id);
		reject(req, ep, 400, NULL, err, NULL, id.id, client);
		return;
	}
	if (!scheme_identify(&in, root, &id, err, sizeof(err))) {
		identity_header_id(&in, &id);
		reject(req, ep, 400, NULL, err, NULL, id.id, client);
		json_object_put(root);
		identity_clear(&id);
		return;
	}
	if (id.challenge) {
		/* Slack's url_verification: verified, answered, nothing runs. */
		struct strbuf sb;
		sb_init(&sb);
		sb_puts(&sb, "{\"endpoint\":");
		sb_json_str(&sb, ep->name, strlen(ep->name));
		sb_puts(&sb, ",\"status\":\"ok\",\"challenge\":");
		sb_json_str(&sb, id.challenge, strlen(id.challenge));
		sb_putc(&sb, '}');
		log_msg(LOG_LVL_INFO, "url_verification answered for endpoint %s", ep->name);
		http_respond(req, 200, NULL, sb_steal(&sb), false);
		json_object_put(root);
		identity_clear(&id);
		return;
	}
	/* A summary root holds only what identified the delivery: the
	 * delivery then parses the body itself, if a hook is to run. */
	struct delivery_params dp = {
		.cfg = cfg, .ep = ep, .event = id.event, .id = id.id, .remote_addr = client,
		.body = req->body, .body_len = req->body_len, .root = sum.summary ? NULL : root,
		.header = req_header, .header_ctx = req,
		.lazy = true, .scanned = sum.summary, .big_numbers = sum.big_numbers,
	};
	struct delivery *d = delivery_new(&dp);
	delivery_pass_headers(d, req_header, req);
	json_object_put(root);
	identity_clear(&id);
	/* The headers are kept for the journal only (`hookd show`). */
	if (cfg->state_dir)
		copy_headers(d, req);
	/* The delivery has its own copies; the request only waits for its
	 * answer (10,000 waiting deliveries: 12 MB less). */
	http_request_shrink(req);
	/* Until it is answered (on_delivery_done), which frees req. */
	req->owner = d;
	dispatch_submit(s->ds, d, on_delivery_done, req);
}

static void limits_from(const struct config *cfg, struct http_limits *lim)
{
	lim->max_headers = cfg->max_headers;
	lim->max_body = cfg->max_body;
	lim->max_connections = cfg->max_connections;
	lim->read_timeout_ms = cfg->read_timeout_ms;
	lim->idle_timeout_ms = cfg->idle_timeout_ms;
	lim->max_buffered = cfg->max_buffered;
	lim->max_connections_per_client = cfg->max_connections_per_client;
	/* A request under way keeps its slot (README "Hardening and limits"). */
	lim->unfinished_idle = false;
}

struct server *server_new(struct event_base *base, struct config *cfg, struct dispatcher *ds)
{
	struct server *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->cfg = config_ref(cfg);
	s->ds = ds;
	struct http_limits lim;
	limits_from(cfg, &lim);
	s->http = http_server_new(base, &lim, handle, error_body, s);
	http_server_set_head_handler(s->http, handle_head);
	http_server_set_gone_handler(s->http, on_client_gone);
	s->generation = 1;
	return s;
}

int server_listen_fd(struct server *s, int fd)
{
	return http_server_listen_fd(s->http, fd);
}

void server_set_config(struct server *s, struct config *cfg)
{
	unauthorized_free(s);
	config_unref(s->cfg);
	s->cfg = config_ref(cfg);
	s->generation++;
	struct http_limits lim;
	limits_from(cfg, &lim);
	http_server_set_limits(s->http, &lim);
}

void server_set_tls(struct server *s, struct ssl_ctx_st *ctx)
{
	http_server_set_tls(s->http, ctx);
}

void server_drain(struct server *s)
{
	s->draining = true;
	http_server_stop_accepting(s->http);
}

int server_connections(struct server *s)
{
	return http_server_connections(s->http);
}

uint64_t server_requests(const struct server *s)
{
	return s->requests;
}

int server_answering(struct server *s)
{
	return http_server_answering(s->http);
}

void server_free(struct server *s)
{
	if (!s)
		return;
	http_server_free(s->http);
	unauthorized_free(s);
	config_unref(s->cfg);
	free(s);
}
