/*
 * `hookd events` and `hookd show` (README "Command line"): the journal's
 * deliveries printed to stdout, errors on stderr. Each returns the
 * command's exit status. The output is built in memory first so that a
 * slow pager never holds a read open.
 */
#ifndef HOOKD_JOURNAL_PRINT_H
#define HOOKD_JOURNAL_PRINT_H

#include <stdbool.h>
#include <stdint.h>

struct journal;

/* events: newest first by first receipt; failed = FAILED, or pending again
 * after an attempt that was not 2xx; "http" is null (text: "-") before any
 * attempt. */
struct events_filter {
	bool failed;
	const char *event_glob; /* fnmatch, NULL: all */
	int64_t since_ms;       /* received at or after, 0: all */
	int limit;              /* <= 0: the default, 100 */
	bool json;
};
/* Lists deliveries; j NULL (no journal yet) lists none. */
int journal_print_events(struct journal *j, const struct events_filter *f);
int journal_print_show(struct journal *j, const char *endpoint, const char *delivery_id);

#endif
