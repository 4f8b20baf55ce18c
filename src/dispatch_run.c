/*
 * The dispatcher's attempts (dispatch.h): an attempt begins (a shell read
 * back from its row, or waited for a moment when it cannot be and the
 * delivery has a key; its environment, its route, the journal told it
 * runs), its hooks run one after another through the runner, and each
 * hook's result becomes the delivery's outcome. Where the attempt ends,
 * the lifecycle takes over again (dispatch.c release and attempt_over).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dispatch_private.h"
#include "groupcommit.h"
#include "idstore.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "recovery.h"
#include "route.h"
#include "runner.h"
#include "util.h"

/* ---- running the hooks of an attempt -------------------------------- */

/* A shell is read back whole from its journal row as its attempt starts
 * (under the config it came with); false, with the reason in err, when it
 * cannot be. */
static bool load_back(struct job *j, char *err, size_t errlen)
{
	if (!delivery_is_shell(j->d))
		return true;
	struct delivery *whole = delivery_from_row(j->ds->journal, delivery_config(j->d),
	                                           delivery_rowid(j->d), delivery_attempt(j->d));
	if (!whole || strcmp(delivery_id(whole), delivery_id(j->d)) != 0) {
		delivery_free(whole);
		snprintf(err, errlen, "cannot read the delivery back from the journal");
		return false;
	}
	/* Its log lines go on saying that its sender had a 202 at respond_within. */
	if (delivery_handed_over(j->d))
		delivery_hand_over(whole);
	/* The line it waited in is its key's: a key recorded at acceptance (a
	 * shared journal's shell) stays, if the payload's is another now (the
	 * event's serialize changed across a restart). */
	delivery_take_key(whole, j->d);
	delivery_free(j->d);
	j->d = whole;
	return true;
}

static bool failed(const struct status_map *m, const struct hook_result *r, int *http)
{
	if (r->timed_out)
		*http = m->timeout;
	else if (!r->ran && r->start_may_pass)
		*http = 503; /* the sender may retry: hookd was short of fds, memory... */
	else if (!r->ran || r->exit_code < 0)
		*http = m->def;
	else
		*http = status_for_exit(m, r->exit_code);
	return *http < 200 || *http > 299;
}

static enum metrics_hook_outcome hook_outcome_kind(const struct hook_result *r, bool bad)
{
	if (!r->ran)
		return MHOOK_EXEC_FAILED;
	if (r->timed_out)
		return MHOOK_TIMEOUT;
	if (r->signal)
		return MHOOK_SIGNAL;
	return bad ? MHOOK_FAILED : MHOOK_OK;
}

/* Outcomes decided before any hook runs: no route, one that cannot run,
 * or a payload the event's match turns away. Returns false when there are
 * hooks to run. A route hookd could not read
 * for want of fds or memory is a 503: the sender may retry. */
bool job_route_outcome(struct job *j)
{
	struct delivery *d = j->d;
	if (j->route.error) {
		delivery_set_outcome(d, j->route.may_pass ? 503 : delivery_config(d)->status.def,
		                     "failed", xstrdup(j->route.error));
		if (j->route.may_pass)
			delivery_set_retry_after(d, RETRY_AFTER_OVERLOAD);
		struct hook_outcome *h = delivery_add_result(d, j->route.name ? j->route.name : "");
		h->res.exit_code = -1;
		h->res.error = xstrdup(j->route.error);
		return true;
	}
	if (!j->route.name) {
		delivery_set_outcome(d, 200, "unhandled", xstrdup("no hook for this event"));
		return true;
	}
	if (delivery_unmatched(d)) {
		/* Not for these hooks: nothing runs (README "[event NAME]"). */
		delivery_set_outcome(d, 200, "skipped", xstrdup(delivery_unmatched(d)));
		return true;
	}
	return false;
}

void job_resolve(struct job *j)
{
	const struct endpoint *ep = delivery_endpoint(j->d);
	route_free(&j->route);
	if (route_resolve(ep->hooks_dir, delivery_event(j->d), &j->route) < 0 && !j->route.error) {
		j->route.may_pass = error_may_pass(errno);
		j->route.error = xasprintf("cannot read hooks dir %s: %s", ep->hooks_dir,
		                           strerror(errno));
	}
}

/* A hook's exit mapped to 503 (exit 75 by default) asks the sender to come
 * back: after retry_backoff, the wait hookd's own first retry would take. */
static int retry_after_for(const struct delivery *d)
{
	int64_t s = (delivery_opts(d)->retry_backoff_ms + 999) / 1000;
	return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

static void on_hook_done(const struct hook_result *res, void *arg)
{
	struct job *j = arg;
	struct delivery *d = j->d;
	if (res->start_cancelled) {
		job_start_lost(j);
		return;
	}
	struct hook_outcome *h = delivery_last_result(d);
	/* The fields, and of the output only what there is. */
	memcpy(&h->res, res, offsetof(struct hook_result, output));
	memcpy(h->res.output, res->output, res->output_len);
	h->res.output_len = res->output_len;
	h->res.error = res->error ? xstrdup(res->error) : NULL;
	int http;
	const struct config *cfg = delivery_config(d);
	bool bad = failed(&cfg->status, &h->res, &http);
	bool skip = !bad && h->res.ran && !h->res.timed_out && !h->res.signal &&
	            h->res.exit_code >= 0 && status_skips(&cfg->status, h->res.exit_code);
	metrics_hook(h->rel, skip ? MHOOK_SKIPPED : hook_outcome_kind(&h->res, bad),
	             h->res.ran ? h->res.ms : -1);
	if (skip) {
		/* The hook says the delivery is not for it: the rest of the
		 * chain does not run either (README "[status]"). */
		char *why = xasprintf("hook %s exited with status %d, mapped to skip", h->rel,
		                      h->res.exit_code);
		delivery_set_outcome(d, 200, "skipped", why);
		job_release(j);
		job_attempt_over(j);
		return;
	}
	if (bad) {
		char *why;
		if (h->res.timed_out || h->res.error)
			why = xasprintf("hook %s: %s", h->rel, h->res.error);
		else
			why = xasprintf("hook %s exited with status %d", h->rel, h->res.exit_code);
		bool may_pass = !h->res.ran && h->res.start_may_pass;
		delivery_set_outcome(d, http, h->res.timed_out ? "timeout" : "failed", why);
		if (may_pass)
			delivery_set_retry_after(d, RETRY_AFTER_OVERLOAD);
		else if (http == 503)
			delivery_set_retry_after(d, retry_after_for(d));
		job_release(j);
		job_attempt_over(j);
		return;
	}
	job_run_next_hook(j);
}

/* How many times, a second apart, a delivery with a key tries to begin its
 * attempt again (its row read back, its start recorded) before the attempt
 * fails as any other's would (a PostgreSQL restart takes a few seconds). */
#define BEGIN_TRIES_MAX 10

/* Stopping too: the drain waits for a running delivery, and one that gave
 * its key up now could hand it to a sync one behind it, which runs before
 * hookd stops, ahead of it. */
static bool may_wait_to_begin(const struct job *j)
{
	return delivery_key(j->d) && j->begin_tries < BEGIN_TRIES_MAX;
}

static void wait_to_begin(struct job *j, const char *why);

/*
 * Another try at beginning j's attempt (its row read back, its start
 * recorded: attempt_begins). On a shared journal its row stayed
 * running under this instance's lease, which may have run out meanwhile
 * and the row been taken over: taking its turn again says (and renews the
 * attempt's start). Only a turn taken runs it; one not taken in time is a
 * 503 `failed` attempt, and one taken over leaves this instance.
 */
static void on_begin_again(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	struct dispatcher *ds = j->ds;
	struct delivery *d = j->d;
	if (ds->shared) {
		int r = journal_take_turn(ds->journal, delivery_rowid(d), delivery_key(d),
		                          delivery_attempt(d), now_wall_ms());
		if (r == JOURNAL_LOST) {
			job_taken_over(j);
			return;
		}
		if (r != RESULT_OK) {
			if (may_wait_to_begin(j))
				wait_to_begin(j, j->later_why);
			else
				job_not_begun(j, j->later_why);
			return;
		}
	}
	/* The attempt's time is its run's, not the wait's. */
	j->started_mono = now_mono_ms();
	job_run_next_hook(j); /* its first hook: the attempt begins again */
}

static void wait_to_begin(struct job *j, const char *why)
{
	j->later_why = why;
	if (j->begin_tries++ == 0) {
		char *msg = xasprintf("%s; it keeps its place and its key, and tries again each second",
		                      why);
		struct log_delivery who = delivery_who(j->d);
		log_about(LOG_LVL_WARN, msg, &who, NULL, 0);
		free(msg);
	}
	if (!j->retry_timer)
		j->retry_timer = evtimer_new(j->ds->base, on_begin_again, j);
	struct timeval tv = {1, 0};
	evtimer_add(j->retry_timer, &tv);
}

/* An async delivery with a key whose first hook's start went with a lost
 * batch (dispatch.c job_start_lost): as one not read back, it keeps its
 * slot and key and begins again a second later, while tries remain; false
 * when none do (it fails as any other attempt would). */
bool job_begin_later(struct job *j, const char *why)
{
	if (!may_wait_to_begin(j))
		return false;
	j->next_hook = 0;
	wait_to_begin(j, why);
	return true;
}

/* What attempt_begins says: it began; its row could not be read back and
 * it waits to try again (wait_to_begin), or it is gone and the delivery has
 * left (job_row_gone); or it could not be marked running
 * (a failing disk; a sync delivery that waited: its record may have gone
 * with a lost batch): it must not run, as a crash would leave no trace of
 * the run and it would run again as the same attempt (job_start_lost). */
enum begins { BEGINS, BEGINS_LATER, BEGINS_NOT, BEGINS_GONE };

/* An attempt begins: the delivery whole (a shell is read back), its
 * environment, its route, and the journal's record that it runs. A row
 * that cannot be read back is a 503 `failed` attempt, retried, but for a
 * delivery with a key: as a retry does not hold its key, later ones of it
 * would run first, so it waits (may_wait_to_begin), not yet begun. */
static enum begins attempt_begins(struct job *j)
{
	struct dispatcher *ds = j->ds;
	char err[128];
	bool loaded = load_back(j, err, sizeof(err));
	if (!loaded && job_row_gone(j))
		return BEGINS_GONE;
	if (!loaded && may_wait_to_begin(j))
		return BEGINS_LATER;
	struct delivery *d = j->d;
	bool env_ok = loaded && delivery_build_env(d, err, sizeof(err));
	if (delivery_async(d)) {
		/* An async delivery's route is read when it runs. */
		job_resolve(j);
	}
	if (!env_ok) {
		/* A sync delivery's was built in dispatch_submit; an async one's
		 * is built here first, from a body json_scan accepted, which
		 * json-c takes too (fuzz_jsonscan): a guard only, failing the
		 * attempt. A row that could not be read may be read next time:
		 * a 503, retried. */
		route_free(&j->route);
		j->route.error = xstrdup(err);
		j->route.may_pass = !loaded;
	}
	/* A sync delivery that did not wait was recorded as running this
	 * attempt already (journal_record): asking again would only cost a
	 * read. A shared journal recorded it before it entered RUNNING
	 * (turn_taken). */
	bool started = true;
	if (ds->journal && delivery_rowid(d) && (delivery_async(d) || j->recorded_waiting) &&
	    !ds->shared)
		started = journal_attempt_started(ds->journal, delivery_rowid(d), delivery_attempt(d),
		                                  now_wall_ms()) == 0;
	else if (!ds->journal && j->recorded_waiting && !delivery_id_generated(d))
		idstore_set(ds->ids, delivery_endpoint(d)->name, delivery_id(d), DSTATE_RUNNING,
		            delivery_attempt(d));
	/* Only for an attempt that begins: one whose start was lost runs
	 * nothing, and skips nothing. */
	for (size_t i = 0; started && i < j->route.nskipped; i++) {
		/* Keyed as the delivery's other lines, so that a search for its
		 * id finds it. */
		struct log_kv kv[] = {
			{"hook", j->route.skipped[i]}, {"error", j->route.skipped_why[i]},
		};
		struct log_delivery who = delivery_who(d);
		log_about(LOG_LVL_WARN, "hook skipped", &who, kv, ARRAY_SIZE(kv));
	}
	return started ? BEGINS : BEGINS_NOT;
}

void job_run_next_hook(struct job *j)
{
	struct dispatcher *ds = j->ds;
	bool first = j->next_hook == 0;
	enum begins b = first ? attempt_begins(j) : BEGINS;
	if (b == BEGINS_GONE)
		return; /* it has left (job_row_gone) */
	if (b == BEGINS_LATER) {
		wait_to_begin(j, "cannot read the delivery back from the journal");
		return;
	}
	if (b == BEGINS_NOT) {
		job_start_lost(j);
		return;
	}
	struct delivery *d = j->d;
	/* Whatever decides before a hook runs is looked at once, as the
	 * attempt begins; after that, the chain ends when its hooks do. */
	bool decided = first && job_route_outcome(j);
	if (decided || j->next_hook >= j->route.nhooks) {
		if (!decided)
			delivery_set_outcome(d, 200, "ok", NULL);
		job_release(j);
		job_attempt_over(j);
		return;
	}
	const struct hook *hk = &j->route.hooks[j->next_hook++];
	const struct config *cfg = delivery_config(d);
	/* The per-hook variables go after the shared ones. */
	size_t env_mark = delivery_env_push_hook(d, hk->rel);
	delivery_add_result(d, hk->rel);
	size_t body_len;
	const unsigned char *body = delivery_body(d, &body_len);
	struct runner_params p = {
		.path = hk->path,
		.dir = delivery_opts(d)->workdir ? delivery_opts(d)->workdir : hk->dir,
		.rel = hk->rel,
		.envp = delivery_env(d)->v,
		.input = body,
		.input_len = body_len,
		.timeout_ms = delivery_opts(d)->timeout_ms,
		.kill_grace_ms = cfg->kill_grace_ms,
		.limits = {cfg->limit_nofile, cfg->limit_nproc, cfg->limit_memory, cfg->limit_cpu},
		.endpoint = delivery_endpoint(d)->name,
		.event = delivery_event(d),
		.delivery_id = delivery_id(d),
		.attempt = delivery_attempt(d),
		/* The attempt, recorded as running in this turn's batch, is
		 * committed before its first hook starts (groupcommit.h): a crash
		 * must never leave a hook that ran recorded as one that never
		 * started, to run again after a restart as the same attempt. */
		.hold = first && ds->commit && delivery_rowid(d),
	};
	struct hook_result res;
	struct hook_run *run = runner_start(ds->base, &p, on_hook_done, j, &res);
	if (run && p.hold)
		groupcommit_flush_soon(ds->commit);
	/* Take the two per-hook entries back off. */
	delivery_env_pop(d, env_mark);
	if (!run) {
		on_hook_done(&res, j);
		free(res.error);
	}
}
