/*
 * The daemon's counters, for the admin listener's GET /metrics (README "Admin listener"):
 * deliveries by endpoint, event and outcome (each once, when it ends),
 * attempts, the answers senders got, hook runs by hook and outcome, a
 * histogram of hook durations, rejections by reason, config reloads. The
 * server, the dispatcher and main call the metrics_* functions where those
 * things happen; gauges (hooks running, deliveries pending) are read at
 * render time from whoever owns them.
 *
 * Label values stay bounded: an endpoint is a config section, an event
 * label the route that matched (a name in hooks.d) or "other", a hook its
 * path in hooks.d, an outcome one of a few words.
 *
 * The state is process-wide: one daemon a process, and every call comes
 * from the event loop's thread, so there is no locking.
 */
#ifndef HOOKD_METRICS_H
#define HOOKD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct strbuf;

enum metrics_hook_outcome {
	MHOOK_OK,          /* exited with a status that maps to 2xx */
	MHOOK_FAILED,      /* exited with a status that maps to anything else */
	MHOOK_TIMEOUT,     /* stopped at its time limit */
	MHOOK_SIGNAL,      /* ended by a signal it was not sent for a timeout */
	MHOOK_EXEC_FAILED, /* could not be started */
	MHOOK_SKIPPED,     /* exited with a status that [status] maps to skip */
	MHOOK_NOUTCOMES
};

/* Notes the start time (hookd_start_time_seconds); later calls keep it. */
void metrics_start(void);
/* One delivery ended (hookd_deliveries_total): ok, failed, skipped,
 * unhandled or duplicate; event is the label, the route's name (NULL: no
 * route, counted as "other"). */
void metrics_delivery(const char *endpoint, const char *event, const char *outcome);
/* One attempt ended (hookd_attempts_total): ok, failed, timeout, skipped
 * or unhandled; event as for metrics_delivery. */
void metrics_attempt(const char *endpoint, const char *event, const char *outcome);
/* One answer a sender got for a delivery (hookd_responses_total): its
 * "status" word and HTTP status. */
void metrics_response(const char *endpoint, const char *status, int http);
/* A request answered without running anything: 404, 405, 401, ... and
 * 503. reason: a short word, or NULL for the one that goes with http. */
void metrics_rejection(int http, const char *reason);
/* One hook's end (hook: its path in hooks.d); ms < 0 when it never ran
 * (no duration observed). */
void metrics_hook(const char *hook, enum metrics_hook_outcome outcome, int64_t ms);
void metrics_reload(bool ok);

/* Values read at render time. */
struct metrics_gauges {
	int hooks_running;      /* hook processes alive */
	int deliveries_running; /* deliveries holding a max_running slot */
	int deliveries_queued;  /* deliveries waiting for a slot */
	/* hookd_deliveries_pending{state}: waiting for a slot or a key, in
	 * an attempt, waiting for a retry. */
	int pending_queued, pending_running, pending_retry_wait;
	bool draining;
	int journal_up; /* 1 or 0; -1: no journal */
};

/* Prometheus text exposition format 0.0.4, malloc'd. */
char *metrics_render(const struct metrics_gauges *g);
/* A label value, quotes included, escaped as the text format wants:
 * backslash, double quote and newline escaped; bytes that are not UTF-8
 * become U+FFFD so the output stays valid UTF-8. */
void metrics_label_value(struct strbuf *sb, const char *v);
/* The reason word that goes with an HTTP status ("unauthorized"). */
const char *metrics_reason_for(int http);
/* Forgets every counter (tests; the end of serve). */
void metrics_reset(void);

#endif
