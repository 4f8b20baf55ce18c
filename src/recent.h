/*
 * Recent deliveries in memory, for the admin's deliveries page and API when
 * there is no journal (no state_dir): the last RECENT_MAX deliveries that
 * ended, each with its headers (no credential: the delivery never kept
 * them), its body (up to RECENT_BODY_MAX bytes) and its last attempt's
 * hooks. Nothing here survives a restart, and nothing can be replayed.
 */
#ifndef HOOKD_RECENT_H
#define HOOKD_RECENT_H

#include <stdbool.h>
#include <stdint.h>

#include "result.h"

#define RECENT_MAX 1000
#define RECENT_BODY_MAX (64 * 1024)

struct delivery;
struct recent;
struct strbuf;

struct recent *recent_new(void);
void recent_free(struct recent *r);
/* A delivery that ended (a delivery_done_fn: arg is the struct recent). */
void recent_add(struct delivery *d, void *arg);

struct recent_filter {
	int state; /* enum delivery_state, -1: any */
	const char *endpoint, *event_glob, *text;
	int64_t since_ms;
	uint64_t before_seq; /* the cursor: 0, the newest */
	int limit;
};
/* The list as the API's JSON items ("," between them), appended to out;
 * *next gets the cursor of the page after (0: none). */
void recent_list_json(const struct recent *r, const struct recent_filter *f, struct strbuf *out,
                      uint64_t *next);
/* One delivery as JSON (the journal's `show --json` shape): RESULT_OK or
 * RESULT_UNKNOWN. */
enum result recent_get_json(const struct recent *r, const char *endpoint, const char *id,
                            struct strbuf *out);

/* The delivery's last attempt: its state name, HTTP answer and attempts,
 * and each hook's outcome to visit. RESULT_OK or RESULT_UNKNOWN. */
struct journal_hook;
enum result recent_hooks(const struct recent *r, const char *endpoint, const char *id,
                         const char **state, int *http, int *attempts,
                         void (*visit)(const struct journal_hook *h, void *arg), void *arg);

#endif
