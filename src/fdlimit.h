/*
 * hookd's own open-files limit (RLIMIT_NOFILE). How many descriptors the
 * config can make hookd hold at once (one formula, here), the soft limit
 * raised to that at start and on every reload (never past the hard limit),
 * one warning when the hard limit is short of it, and the limit hookd
 * started with, which its hooks get back (spawn.c): a program that uses
 * select() breaks with descriptors past 1,024.
 *
 * Called by `hookd serve` (start and reload) and `hookd check`; the
 * runner only reads the limit to give back.
 */
#ifndef HOOKD_FDLIMIT_H
#define HOOKD_FDLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>

struct config;

/* What one running hook holds: both ends of its stdout pipe and of its
 * stderr pipe (runner.c; its stdin's memfd only until the child has it). */
#define FDLIMIT_PER_HOOK 4
/* hookd's own, whatever the config: stdio, the event loop and its signal
 * pipe, the runner's and the group commit's eventfds, the listeners, the
 * control socket, the journal's files or connection; and room. */
#define FDLIMIT_MARGIN 64

/*
 * The descriptors hookd may hold: max_connections + 4 x max_running + 64,
 * plus admin_connections (the admin listener's own bound, 0 without one).
 * Never below 1 and never wraps.
 */
rlim_t fdlimit_need(int max_connections, int max_running, int admin_connections);
/* fdlimit_need of a config's keys. */
rlim_t fdlimit_need_of(const struct config *cfg);

/* What to do about limits soft and hard for a need. */
struct fdlimit_plan {
	bool raise;         /* set the soft limit to new_soft (hard unchanged) */
	rlim_t new_soft;
	bool short_of_need; /* the hard limit is below need: warn */
};
struct fdlimit_plan fdlimit_plan(rlim_t soft, rlim_t hard, rlim_t need);

enum fdlimit_outcome {
	FDLIMIT_ENOUGH, /* the soft limit already covered the need */
	FDLIMIT_RAISED, /* the soft limit was raised to it: msg says from what */
	FDLIMIT_SHORT,  /* it stays below the need: msg is the warning */
};

/*
 * Raises hookd's soft limit to the config's need, within the hard limit.
 * The first call remembers the limit hookd started with (fdlimit_hook_limit).
 * msg gets one line for the log but for FDLIMIT_ENOUGH.
 */
enum fdlimit_outcome fdlimit_apply(const struct config *cfg, char *msg, size_t msglen);
/* For `hookd check`: false, with the same warning in msg as fdlimit_apply's,
 * when this process's hard limit is below the need. Changes nothing. */
bool fdlimit_check(const struct config *cfg, char *msg, size_t msglen);

/* The RLIMIT_NOFILE hookd started with, for its hooks; false before the
 * first fdlimit_apply (then hookd never changed it). */
bool fdlimit_hook_limit(struct rlimit *rl);

#endif
