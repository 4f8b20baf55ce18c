/*
 * The webhook server: each HTTP request through the answer table of README "HTTP answers"
 * (endpoint, method, address, size, credentials, media type, payload,
 * event name) and, once verified and identified, into the dispatcher.
 */
#ifndef HOOKD_SERVER_H
#define HOOKD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct config;
struct dispatcher;
struct server;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct server *server_new(struct event_base *base, struct config *cfg, struct dispatcher *ds);
/* Listens on fd (bound, listening, non-blocking). */
int server_listen_fd(struct server *s, int fd);
void server_set_config(struct server *s, struct config *cfg);
/* HTTPS from now on with ctx (a reference is taken; NULL: plain HTTP);
 * open connections keep theirs. See http_server_set_tls. */
void server_set_tls(struct server *s, struct ssl_ctx_st *ctx);
/* SIGTERM: stop accepting, answer later requests 503 + Connection: close. */
void server_drain(struct server *s);
int server_connections(struct server *s);
/* Answers still being made or written (see http_server_answering). */
int server_answering(struct server *s);
/* Requests handled since start (any answer). */
uint64_t server_requests(const struct server *s);
void server_free(struct server *s);


#endif
