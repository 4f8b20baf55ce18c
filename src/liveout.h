/*
 * A running delivery's output as its hooks print it, for the deliveries
 * page (GET /api/v1/deliveries/ENDPOINT/ID/output, Server-Sent Events).
 * The runner hands every hook's output here as it reads it
 * (runner_set_output_observer); it is cut into lines, numbered, and kept
 * per delivery (the last LIVEOUT_LINES lines, LIVEOUT_DELIVERIES
 * deliveries, for LIVEOUT_KEEP_MS after the end), all within LIVEOUT_BYTES.
 *
 * The answer is an event stream in pieces: the HTTP layer answers a
 * request once, whole, so a request waits (up to LIVEOUT_WAIT_MS) until
 * there are lines after the ones the client has (Last-Event-ID), gets
 * them with `retry:` short, and the browser's EventSource asks again at
 * once. The last piece has the outcome (`event: outcome`).
 */
#ifndef HOOKD_LIVEOUT_H
#define HOOKD_LIVEOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIVEOUT_LINES 2000
/* All deliveries' lines together: past it the oldest go, of the ones that
 * ended first (a flood must not hold hundreds of MB nobody watches). */
#define LIVEOUT_BYTES (4 * 1024 * 1024)
#define LIVEOUT_LINE_MAX 4096
#define LIVEOUT_DELIVERIES 64
#define LIVEOUT_KEEP_MS (10 * 60 * 1000)
#define LIVEOUT_WAIT_MS 15000
/* EventSource's wait before it asks again. */
#define LIVEOUT_RETRY_MS 200

struct event_base;
struct http_request;
struct liveout;
struct strbuf;

struct liveout *liveout_new(struct event_base *base);
/* Answers the requests still waiting; call before the HTTP server goes. */
void liveout_free(struct liveout *lo);

/* A runner_output_observer (arg: the liveout). */
void liveout_take(const char *endpoint, const char *delivery_id, const char *hook,
                  const char *buf, size_t n, void *arg);
/* The delivery ended: its outcome ends the stream. */
void liveout_ended(struct liveout *lo, const char *endpoint, const char *delivery_id,
                   const char *state, int http, int attempts);
/* A replay was queued: what the delivery printed before is not the new
 * run's (the stream starts over when it runs). */
void liveout_forget(struct liveout *lo, const char *endpoint, const char *delivery_id);

/*
 * Answers req (now, or once lines come) when the delivery has live output
 * here; `after` is the last line number the client has. `headers`: the
 * answer's extra header lines. False when there is none: the caller
 * answers from what was kept.
 */
bool liveout_serve(struct liveout *lo, struct http_request *req, const char *endpoint,
                   const char *delivery_id, uint64_t after, const char *headers);

/* One line as an event (id n), appended to out: the formatting the kept
 * output uses too. */
void liveout_put_line(struct strbuf *out, uint64_t n, const char *hook, const char *line,
                      size_t len);
void liveout_put_outcome(struct strbuf *out, const char *state, int http, int attempts);

#endif
