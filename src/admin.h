/*
 * The admin listener (README "Admin listener"): a second HTTP server, on its own address
 * ([admin] listen) and with its own handler, for the machines that watch
 * hookd. GET /healthz answers 200 {"status":"ok"} while serving and 503
 * {"status":"draining"} once SIGTERM has come; GET /metrics answers the
 * Prometheus text format (metrics.h). Other methods get 405 + Allow: GET,
 * other paths 404, both as JSON. It never runs a hook. Without [admin]
 * token_file it needs no credentials and may listen only on loopback or a
 * unix socket; with it, /metrics needs a token as the deliveries API does
 * (webapi_may_read), and only /healthz stays open.
 */
#ifndef HOOKD_ADMIN_H
#define HOOKD_ADMIN_H

struct event_base;
struct dispatcher;
struct admin;

/* Its own bound on connections: a scraper sends a short GET and reads the
 * answer. Part of the open files hookd needs (fdlimit.h). */
#define ADMIN_MAX_CONNECTIONS 64

/* ds is read for the gauges (deliveries running and queued); it may be NULL. */
struct admin *admin_new(struct event_base *base, struct dispatcher *ds);
/* Listens on fd (bound, listening, non-blocking); the admin owns it then. */
int admin_listen_fd(struct admin *a, int fd);
/* Shutting down: /healthz answers 503 from now on; /metrics still works. */
void admin_set_draining(struct admin *a);
void admin_free(struct admin *a);

#endif
