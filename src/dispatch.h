/*
 * Deliveries: what one verified request becomes, and its way through
 * idempotency, async journaling, serialization keys, the max_running slots
 * and the max_queued waiting line, the hooks of its route one after
 * another, and the outcome that maps to an HTTP status.
 *
 * One struct delivery owns everything of a delivery (config reference,
 * body, environment, route, results); delivery_free releases it all.
 */
#ifndef HOOKD_DISPATCH_H
#define HOOKD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"
#include "payload.h"
#include "route.h"
#include "runner.h"

struct event_base;
struct event;
struct journal;
struct delivery;

/* The answer for a delivery, as the HTTP layer or `hookd run` gives it. */
struct outcome {
	int http;
	const char *status; /* ok failed timeout unhandled rejected overloaded duplicate running accepted */
	char *error;        /* NULL or a short reason */
	int retry_after;    /* seconds, 0: none */
};

typedef void (*delivery_done_fn)(struct delivery *d, void *arg);

struct hook_outcome {
	char *rel;
	struct hook_result res;
};

struct delivery {
	TAILQ_ENTRY(delivery) link;     /* slot queue */
	TAILQ_ENTRY(delivery) key_link; /* serialization key's queue */
	struct config *cfg;             /* a reference */
	const struct endpoint *ep;
	char *event;
	char *id;
	bool id_generated;
	char *remote_addr;
	int64_t received_ms; /* wall clock */
	unsigned char *body;
	size_t body_len;
	struct envlist env; /* metadata + payload; HOOK_HOOK/HOOK_ATTEMPT added per hook */
	size_t env_omitted;
	bool env_pending;   /* delivery_new_lazy: env not built yet, from root */
	json_object *root;  /* the parsed payload until then (a reference), else NULL */
	bool parse_body;    /* ... and with root NULL: from the JSON body, parsed then */
	long long scanned_big_numbers; /* the server's json_scan of it, -1: not scanned */
	char **meta_values; /* the scheme's metadata headers, one each (NULL: absent), or NULL */
	char **header_values; /* the endpoint's pass_headers, one each (NULL: absent), or NULL */
	struct delivery_opts opts;
	char *key; /* serialization key, NULL: none */
	bool async;
	bool queued; /* counted in the dispatcher's queued_sync */
	int attempt;
	int64_t rowid; /* journal row, 0: none */
	struct journal_header_copy {
		char *name, *value;
	} *headers; /* for the journal, credentials removed */
	size_t nheaders;

	struct route route;
	size_t next_hook;
	struct hook_outcome *results;
	size_t nresults;
	int64_t started_mono;
	int64_t ms;
	struct outcome out;
	bool finished;

	struct event *retry_timer;
	delivery_done_fn done;
	void *done_arg;
	struct dispatcher *disp;
};

struct dispatcher;

struct dispatcher *dispatcher_new(struct event_base *base, struct config *cfg,
                                  struct journal *journal);
/* A new config (SIGHUP): limits follow it; running deliveries keep theirs. */
void dispatcher_set_config(struct dispatcher *ds, struct config *cfg);
void dispatcher_free(struct dispatcher *ds);

/*
 * Takes a verified, identified delivery. `done` is called exactly once
 * with d->out filled, possibly before this returns (duplicates, overload,
 * no route); after `done` returns, d is freed by the dispatcher unless it
 * stays journaled (async: the answer 202 comes first, the run later).
 */
void dispatch_submit(struct dispatcher *ds, struct delivery *d, delivery_done_fn done, void *arg);

/* Recovers the journal's pending async deliveries (at start). */
int dispatch_recover(struct dispatcher *ds);
/* Replays a journaled delivery by rowid; 0 queued, 1 unknown, 2 already pending, 3 body not kept. */
int dispatch_replay(struct dispatcher *ds, int64_t rowid);

/* Shutting down: queued async deliveries stay journaled; returns true
 * once nothing runs or waits that must finish first. */
void dispatcher_drain(struct dispatcher *ds);
bool dispatcher_idle(const struct dispatcher *ds);
int dispatcher_running(const struct dispatcher *ds);
int dispatcher_queued(const struct dispatcher *ds);

/*
 * Builds a delivery from its parts (the server and `hookd run` both use
 * this): environment with metadata and the flattened payload. body is
 * copied. The endpoint scheme's metadata headers are read through get
 * (NULL: none). Returns NULL never.
 */
struct delivery *delivery_new(struct config *cfg, const struct endpoint *ep, const char *event,
                              const char *id, const char *remote_addr, const unsigned char *body,
                              size_t body_len, json_object *root,
                              const char *(*get)(void *ctx, const char *name), void *ctx);
void delivery_free(struct delivery *d);

/* The endpoint's pass_headers: each header's value, through get (a
 * request's or a journal row's headers), becomes HOOK_HEADER_<NAME>. */
void delivery_pass_headers(struct delivery *d, const char *(*get)(void *ctx, const char *name),
                           void *ctx);

/*
 * As delivery_new, but the environment is built only when something will
 * run (delivery_build_env, called by the dispatcher): until then d keeps a
 * reference to root. A delivery with no route, a duplicate or one refused
 * never pays for flattening its payload. The server uses this one. With
 * root NULL, the body is JSON that json_scan accepted and is parsed only
 * then: such a delivery never pays for the tree either.
 */
struct delivery *delivery_new_lazy(struct config *cfg, const struct endpoint *ep,
                                   const char *event, const char *id, const char *remote_addr,
                                   const unsigned char *body, size_t body_len, json_object *root,
                                   const char *(*get)(void *ctx, const char *name), void *ctx);
/* Builds d's environment if it is still pending; then drops the payload.
 * false (with the reason in err) when the body cannot be parsed. */
bool delivery_build_env(struct delivery *d, char *err, size_t errlen);
/* Frees what deliveries share across configs (the base environment); at exit. */
void delivery_cleanup(void);

/* The response JSON for a delivery's outcome (malloc'd). */
char *delivery_response_json(const struct delivery *d, bool include_output);
/* The JSON for an answer with no delivery (404, 401, ...). */
char *response_json(const char *endpoint, const char *event, const char *id, const char *status,
                    const char *error);

/* Logs the one line a delivery gets. */
void delivery_log(const struct delivery *d);

#endif
