/*
 * The delivery: what one verified request (or a journal row, or `hookd
 * run`) becomes. It owns everything of a delivery: a config reference,
 * its body, its environment (metadata, the flattened payload, pass_headers)
 * with the base environment shared by all deliveries of a config, the
 * results of its hooks and its outcome. It knows how it is written down:
 * the answer JSON, the one log line, and what the journal records of it.
 *
 * Where a delivery is in its way through hookd (queued, running, waiting
 * for a retry) is the dispatcher's business (dispatch.h); this object is
 * opaque outside delivery.c, built from a struct delivery_params.
 */
#ifndef HOOKD_DELIVERY_H
#define HOOKD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "log.h"
#include "payload.h"
#include "runner.h"

struct delivery;
struct journal_new;
struct journal_header;
struct journal_hook;

/* The answer for a delivery, as the HTTP layer or `hookd run` gives it. */
struct outcome {
	int http;
	/* ok failed timeout skipped unhandled rejected overloaded duplicate
	 * queued running retry_wait accepted */
	const char *status;
	char *error;        /* NULL or a short reason */
	int retry_after;    /* seconds, 0: none */
};

/* One hook's result within the current attempt. */
struct hook_outcome {
	char *rel;
	struct hook_result res;
};

/* What a delivery is built from; strings and the body are copied. */
struct delivery_params {
	struct config *cfg; /* the delivery takes a reference */
	const struct endpoint *ep;
	const char *event;
	const char *id;          /* NULL or "": a generated one */
	const char *remote_addr; /* NULL: "" */
	const unsigned char *body;
	size_t body_len;
	json_object *root; /* the parsed payload (a reference is taken), or NULL */
	/* The headers it came with (a request's or a journal row's), read for
	 * the endpoint scheme's metadata headers; NULL: none. */
	const char *(*header)(void *ctx, const char *name);
	void *header_ctx;
	/*
	 * The environment is built only when something will run
	 * (delivery_build_env, called by the dispatcher): until then the
	 * delivery keeps a reference to root. A delivery with no route, a
	 * duplicate or one refused never pays for flattening its payload. The
	 * server asks for this. With root NULL, the body is JSON that json_scan
	 * accepted and is parsed only then: such a delivery never pays for the
	 * tree either.
	 */
	bool lazy;
	bool scanned;       /* json_scan accepted the body (lazy, root NULL) ... */
	size_t big_numbers; /* ... and counted this many numbers json-c cannot hold */
	bool sync;          /* run and env: the synchronous path, whatever the config says */
	/* A journaled delivery (recovery, replay): always async. */
	int64_t rowid;       /* its row, 0: none */
	int64_t received_ms; /* when it first came, 0: now */
	int attempt;         /* the attempt it is at, 0: the first */
	bool replay;         /* that attempt is one `hookd replay` asked for */
	/* Its serialization key as recorded (a shell from a shared journal's
	 * list): taken instead of the payload's, when its event serializes. */
	bool key_given;
	const char *key;
	int retries_from;    /* the attempt its retries count from (the last replay's), 0: the first */
	/* Built for a look (the deliveries page), not a run: what its
	 * environment left out is not logged again. */
	bool quiet;
};

struct delivery *delivery_new(const struct delivery_params *p);
void delivery_free(struct delivery *d);

/* The endpoint's pass_headers: each header's value, through get (a
 * request's or a journal row's headers), becomes HOOK_HEADER_<NAME>. */
void delivery_pass_headers(struct delivery *d, const char *(*get)(void *ctx, const char *name),
                           void *ctx);
/* Keeps one request header for the journal (`hookd show`); the caller
 * leaves credentials out. */
void delivery_keep_header(struct delivery *d, const char *name, const char *value);

/* Builds d's environment if it is still pending; then drops the payload.
 * false (with the reason in err) when the body cannot be parsed. */
bool delivery_build_env(struct delivery *d, char *err, size_t errlen);
/* How many payload variables the built environment left out (limits). */
size_t delivery_env_omitted(const struct delivery *d);
/*
 * A journaled delivery waiting in a line (queued, waiting for its key or
 * for a retry) need not hold what its journal row holds: delivery_shed
 * lets go of its body, environment, headers and last results, and keeps
 * what scheduling needs (endpoint, event, id, key, attempt, row, options,
 * outcome). Such a shell cannot run: the dispatcher reads the delivery
 * back from its row (recovery.h delivery_from_row) when an attempt starts.
 * A delivery with no row is left whole.
 */
void delivery_shed(struct delivery *d);
bool delivery_is_shell(const struct delivery *d);
/* Frees what deliveries share across configs (the base environment); at exit. */
void delivery_cleanup(void);
/* Who the hooks run as (hookuser.h), for the HOME, USER, LOGNAME and SHELL
 * every hook gets (pass_env's values win); copied. NULL: none of them.
 * Set at start and at each reload, before the deliveries it is for. */
struct hook_identity;
void delivery_set_hook_identity(const struct hook_identity *id);
/* The PATH every hook gets under cfg (pass_env's, else the default), for
 * `hookd check` to find `#!/usr/bin/env NAME` where a hook would. */
const char *delivery_hook_path(const struct config *cfg);

/* What the delivery is. */
struct config *delivery_config(const struct delivery *d);
const struct endpoint *delivery_endpoint(const struct delivery *d);
const char *delivery_event(const struct delivery *d);
const char *delivery_id(const struct delivery *d);
bool delivery_id_generated(const struct delivery *d);
/* The keys of a log line about it (log_about): endpoint, event, id, attempt. */
struct log_delivery delivery_who(const struct delivery *d);
bool delivery_async(const struct delivery *d);
/* A sync delivery goes on as an async one (respond_within): its sender
 * has had its 202; the log line says so from now on. */
void delivery_hand_over(struct delivery *d);
bool delivery_handed_over(const struct delivery *d);
/* Its sender hung up before the answer: the log line says client=gone. */
void delivery_set_client_gone(struct delivery *d);
bool delivery_client_gone(const struct delivery *d);
/* Whether this attempt's outcome was its sender's answer and never reached
 * it (journal_attempt.client_gone): a sync delivery whose sender hung up. */
bool delivery_answer_lost(const struct delivery *d);
const struct delivery_opts *delivery_opts(const struct delivery *d);
const char *delivery_key(const struct delivery *d); /* serialization key, NULL: none */
/* Why the payload does not meet its [event] rule's match ("the payload
 * does not match ref=refs/heads/main"), NULL when it does or there is none:
 * the delivery is to be skipped. Worked out when it is built. */
const char *delivery_unmatched(const struct delivery *d);
const unsigned char *delivery_body(const struct delivery *d, size_t *len);
/* Its environment: metadata, payload and pass_headers variables. */
struct envlist *delivery_env(struct delivery *d);

/* Its journal row, 0: none. */
int64_t delivery_rowid(const struct delivery *d);
void delivery_set_rowid(struct delivery *d, int64_t rowid);
/* d's serialization key becomes from's: a shell read back whole keeps the
 * key it waited in its line under (a shared journal's recorded one). */
void delivery_take_key(struct delivery *d, const struct delivery *from);

/* The current attempt (1-based), its results, its duration and outcome. */
int delivery_attempt(const struct delivery *d);
/* Another number: no longer the replay's attempt. */
void delivery_set_attempt(struct delivery *d, int attempt);
/* Whether the current attempt came from `hookd replay` (logged replay=true). */
bool delivery_replay(const struct delivery *d);
/* The attempt hookd's retries count from: the one the last `hookd replay`
 * asked for (a replay has retries of its own, README "Async mode"), else 1. */
int delivery_retries_from(const struct delivery *d);
/* The attempt ran and is over: whether it will be retried, in retry_in_ms,
 * at the wall clock's next_attempt_ms. Its log line says when, or, for an
 * async delivery's failure not retried, final=true (an answer given before
 * anything ran, a 409 or a 503, says neither). A new attempt
 * (delivery_reset_attempt) clears it. */
void delivery_set_attempt_end(struct delivery *d, bool retry, int64_t retry_in_ms,
                              int64_t next_attempt_ms);
/* A new, empty entry in d's results for the hook rel (copied, may be NULL). */
struct hook_outcome *delivery_add_result(struct delivery *d, const char *rel);
struct hook_outcome *delivery_last_result(struct delivery *d);
void delivery_set_ms(struct delivery *d, int64_t ms);
int64_t delivery_ms(const struct delivery *d);
const struct outcome *delivery_outcome(const struct delivery *d);
/* error: NULL or malloc'd, taken. */
void delivery_set_outcome(struct delivery *d, int http, const char *status, char *error);
void delivery_set_retry_after(struct delivery *d, int seconds);
/* Forgets the results and the outcome: a new attempt begins (or the same
 * one again, its start lost: still the replay if it was). */
void delivery_reset_attempt(struct delivery *d);

/* The per-hook variables (HOOK_HOOK, HOOK_ATTEMPT) after the shared ones;
 * returns the mark to take them back off at (delivery_env_pop). */
size_t delivery_env_push_hook(struct delivery *d, const char *rel);
void delivery_env_pop(struct delivery *d, size_t mark);

/* The delivery as the journal records it when it comes; jn's strings are
 * d's, *hdrs is malloc'd (freed by the caller). */
void delivery_journal_new(const struct delivery *d, struct journal_new *jn,
                          struct journal_header **hdrs);
/* The attempt's hook results as the journal records them (malloc'd). */
struct journal_hook *delivery_journal_hooks(const struct delivery *d, size_t *n);

/* The response JSON for a delivery's outcome (malloc'd). */
char *delivery_response_json(const struct delivery *d, bool include_output);
/* The JSON for an answer with no delivery (404, 401, ...). */
char *response_json(const char *endpoint, const char *event, const char *id, const char *status,
                    const char *error);

/* Logs the one line a delivery gets. */
void delivery_log(const struct delivery *d);

#endif
