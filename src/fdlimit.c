/*
 * hookd's open-files limit (fdlimit.h): the need, the raise, the warning,
 * and the limit hookd started with, for its hooks.
 */
#include "fdlimit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "config.h"

static struct rlimit at_start;
static bool saved;

static rlim_t count(int n)
{
	return n > 0 ? (rlim_t)n : 0;
}

rlim_t fdlimit_need(int max_connections, int max_running, int admin_connections)
{
	/* Each term is below 2^31 and rlim_t has 64 bits: no wrap. */
	return count(max_connections) + FDLIMIT_PER_HOOK * count(max_running) +
	       count(admin_connections) + FDLIMIT_MARGIN;
}

rlim_t fdlimit_need_of(const struct config *cfg)
{
	return fdlimit_need(cfg->max_connections, cfg->max_running,
	                    cfg->admin_listen ? ADMIN_MAX_CONNECTIONS : 0);
}

/*
 * To the need, not to the hard limit (as Go programs do). The soft limit
 * then stays a bound that means something: a descriptor leak shows as
 * EMFILE at a few thousand, not after eating a million-entry table, and
 * whatever hookd or a library still sizes by the soft limit (a loop over
 * every descriptor, an array of them) stays small. Nothing is lost by it:
 * raising the soft limit up to the hard one needs no privilege, so the
 * reload that raises max_connections raises it again, after the switch to
 * `user` as before it. A soft limit above the need is left alone: lowering
 * it could leave descriptors open past it, and the operator chose it.
 * RLIM_INFINITY is the largest rlim_t, so the comparisons cover it.
 */
struct fdlimit_plan fdlimit_plan(rlim_t soft, rlim_t hard, rlim_t need)
{
	struct fdlimit_plan p = {false, soft, false};
	if (soft >= need)
		return p;
	p.short_of_need = hard < need;
	p.new_soft = p.short_of_need ? hard : need;
	p.raise = p.new_soft > soft;
	if (!p.raise)
		p.new_soft = soft;
	return p;
}

static void format_limit(rlim_t v, char *buf, size_t len)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The need and which keys make it: "1152 hookd may need (max_connections
 * 1024 + 4 x max_running 16 + 64)". */
static void format_need(const struct config *cfg, rlim_t need, char *buf, size_t len)
{
	char admin[64] = "";
	if (cfg->admin_listen)
		snprintf(admin, sizeof(admin), " + %d [admin] connections", ADMIN_MAX_CONNECTIONS);
	snprintf(buf, len, "%llu hookd may need (max_connections %d + %d x max_running %d%s + %d)",
	         (unsigned long long)need, cfg->max_connections, FDLIMIT_PER_HOOK,
	         cfg->max_running, admin, FDLIMIT_MARGIN);
}

static void format_short(const struct config *cfg, rlim_t hard, rlim_t need, char *msg,
                         size_t msglen)
{
	char h[32], n[192];
	format_limit(hard, h, sizeof(h));
	format_need(cfg, need, n, sizeof(n));
	snprintf(msg, msglen,
	         "open files: the hard limit %s is below the %s; at the limit new connections "
	         "wait and hooks fail to start (503): raise LimitNOFILE= (ulimit -Hn) or lower "
	         "those keys",
	         h, n);
}

enum fdlimit_outcome fdlimit_apply(const struct config *cfg, char *msg, size_t msglen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(msg, msglen, "open files: cannot read the limit: %s", strerror(errno));
		return FDLIMIT_SHORT;
	}
	if (!saved) {
		at_start = rl;
		saved = true;
	}
	rlim_t need = fdlimit_need_of(cfg);
	struct fdlimit_plan p = fdlimit_plan(rl.rlim_cur, rl.rlim_max, need);
	char from[32], to[32], n[192];
	format_limit(rl.rlim_cur, from, sizeof(from));
	format_limit(p.new_soft, to, sizeof(to));
	format_need(cfg, need, n, sizeof(n));
	if (p.raise) {
		struct rlimit raised = {p.new_soft, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &raised) < 0) {
			snprintf(msg, msglen,
			         "open files: cannot raise the soft limit from %s to %s, the %s: %s",
			         from, to, n, strerror(errno));
			return FDLIMIT_SHORT;
		}
	}
	if (p.short_of_need) {
		format_short(cfg, rl.rlim_max, need, msg, msglen);
		return FDLIMIT_SHORT;
	}
	if (!p.raise)
		return FDLIMIT_ENOUGH;
	char hooks[32];
	format_limit(at_start.rlim_cur, hooks, sizeof(hooks));
	snprintf(msg, msglen, "open files: soft limit raised from %s to %s, the %s; hooks get %s",
	         from, to, n, hooks);
	return FDLIMIT_RAISED;
}

bool fdlimit_check(const struct config *cfg, char *msg, size_t msglen)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		snprintf(msg, msglen, "open files: cannot read the limit: %s", strerror(errno));
		return false;
	}
	rlim_t need = fdlimit_need_of(cfg);
	if (!fdlimit_plan(rl.rlim_cur, rl.rlim_max, need).short_of_need)
		return true;
	format_short(cfg, rl.rlim_max, need, msg, msglen);
	return false;
}

bool fdlimit_hook_limit(struct rlimit *rl)
{
	if (saved)
		*rl = at_start;
	return saved;
}
