/*
 * Recovery and replay (recovery.h): a journal row back into a delivery,
 * handed to the dispatcher; and the same for each attempt of a pending
 * async delivery, whose body waits in the journal.
 */
#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery.h"
#include "dispatch.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "util.h"
#include "verify.h"

static const char *pending_header(void *ctx, const char *name)
{
	const struct journal_pending *p = ctx;
	size_t nl = strlen(name);
	for (size_t i = 0; i < p->nheaders; i++) {
		const char *h = p->headers[i];
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':')
			return h[nl + 1] == ' ' ? h + nl + 2 : h + nl + 1;
	}
	return NULL;
}

/* A journal row's keys in a log line about it. */
static struct log_delivery pending_who(const struct journal_pending *p, int attempt)
{
	return (struct log_delivery){p->endpoint, p->event, p->delivery_id, attempt};
}

/* A journal row as the delivery it was when it came (its received time,
 * headers and payload), at the given attempt; NULL when its endpoint is no
 * longer configured. */
static struct delivery *delivery_from_journal(struct config *cfg, struct journal_pending *p,
                                              int attempt, bool quiet)
{
	const struct endpoint *ep = config_endpoint_by_name(cfg, p->endpoint);
	if (!ep) {
		if (!quiet) {
			struct log_delivery who = pending_who(p, attempt);
			log_about(LOG_LVL_ERROR, "journal: the delivery is for an endpoint which is no "
			          "longer configured", &who, NULL, 0);
		}
		return NULL;
	}
	json_object *root = NULL;
	const char *ct = pending_header(p, "Content-Type");
	enum content_kind kind = content_type_classify(ct);
	char err[256];
	struct verify_input in = {
		.ep = ep, .header = pending_header, .ctx = p,
		.body = p->body, .body_len = p->body_len, .now = now_wall_ms() / 1000,
	};
	if (!scheme_decode(&in, kind, &root, NULL, err, sizeof(err)))
		root = NULL;
	struct delivery_params dp = {
		.cfg = cfg, .ep = ep, .event = p->event, .id = p->delivery_id,
		.remote_addr = p->remote_addr, .body = p->body, .body_len = p->body_len, .root = root,
		.header = pending_header, .header_ctx = p,
		/* HOOK_RECEIVED_AT: a recovered or replayed delivery was
		 * received when it first came. */
		.received_ms = p->received_ms,
		.rowid = p->rowid,
		.attempt = attempt,
		.replay = p->replay_attempt == attempt,
		/* A replay's retries are its own: counted from it, not from the
		 * attempts before it (which may have used them all up). */
		.retries_from = p->replay_attempt,
		.quiet = quiet,
	};
	struct delivery *d = delivery_new(&dp);
	json_object_put(root);
	delivery_pass_headers(d, pending_header, p);
	return d;
}

static struct delivery *from_row(struct journal *journal, struct config *cfg, int64_t rowid,
                                 int attempt, bool quiet)
{
	struct journal_pending p;
	memset(&p, 0, sizeof(p));
	if (journal_get(journal, rowid, &p) != RESULT_OK) {
		/* A journal that went down is an outage, logged as such once;
		 * the attempt fails with a 503 and is retried. */
		bool down = !journal_up(journal);
		char row[24];
		snprintf(row, sizeof(row), "%lld", (long long)rowid);
		struct log_kv kv[] = {LOG_INT("row", row),
		                      {"error", down ? "the journal is down" : NULL}};
		log_kv(down ? LOG_LVL_WARN : LOG_LVL_ERROR, "journal: cannot read a delivery row back",
		       kv, ARRAY_SIZE(kv));
		return NULL;
	}
	/* A look at a body the journal kept cut: the payload's variables came
	 * from the whole body, and its kept part would give a shorter list. */
	struct delivery *d = quiet && !p.body_complete
	                             ? NULL
	                             : delivery_from_journal(cfg, &p, attempt, quiet);
	journal_pending_free(&p);
	return d;
}

struct delivery *delivery_from_row(struct journal *journal, struct config *cfg, int64_t rowid,
                                   int attempt)
{
	return from_row(journal, cfg, rowid, attempt, false);
}

struct delivery *delivery_view_with_env(struct journal *journal, struct config *cfg,
                                        int64_t rowid, int attempt)
{
	struct delivery *d = from_row(journal, cfg, rowid, attempt > 0 ? attempt : 1, true);
	char err[256];
	if (d && !delivery_build_env(d, err, sizeof(err))) {
		delivery_free(d);
		return NULL;
	}
	return d;
}

/*
 * Pending async deliveries whose endpoint the config did not have when they
 * were taken up: they stay pending in the journal, and run once a reload
 * configures their endpoint again (dispatch_resume_left). One daemon, one
 * dispatcher: the list is this module's.
 */
struct left_row {
	int64_t rowid;
	char *endpoint, *event, *delivery_id;
	enum delivery_state state;
	int attempts;
	int64_t next_due_ms;
};
static struct left_row *left_rows;
static size_t left_count, left_cap;

/* A pending row as a shell (dispatch.c) straight from the journal's list
 * of them, without reading its body: what waiting needs is in the list
 * (endpoint, event, id, attempt, row, and on a shared journal the key it
 * was recorded with). NULL when the payload is needed now: for its event's
 * match (whether it runs at all), or its serialize key where the list has
 * none (SQLite's; a row recorded before the event serialized). The body
 * is read when its attempt begins, as for any shell. */
static struct delivery *shell_from_list(struct config *cfg, const struct journal_pending *p,
                                        int attempt)
{
	const struct endpoint *ep = config_endpoint_by_name(cfg, p->endpoint);
	struct delivery_opts o;
	config_delivery_opts(cfg, ep, p->event, &o);
	if (o.match || (o.serialize && !(p->key_known && p->key)))
		return NULL;
	struct delivery_params dp = {
		.cfg = cfg, .ep = ep, .event = p->event, .id = p->delivery_id,
		.remote_addr = p->remote_addr, .lazy = true,
		.received_ms = p->received_ms,
		.rowid = p->rowid,
		.attempt = attempt,
		.replay = p->replay_attempt == attempt,
		.retries_from = p->replay_attempt,
		.key_given = p->key_known,
		.key = p->key,
	};
	struct delivery *d = delivery_new(&dp);
	delivery_shed(d);
	return d;
}

/* One pending row to the dispatcher, its attempt and due time from the
 * row: a shell from the list (p), or, when that needs its payload (or
 * there is no list: a reload's), read whole and, unless it starts now,
 * a shell again: one body at a time in memory. A row that cannot be read
 * back (the take's list has no body: the connection lost just after its
 * commit) is let go: held here with no job to run it, it would never run,
 * and its key's line would wait behind it on every instance. A shell
 * that cannot be read back when its attempt begins is met there, as any
 * queued one (dispatch_run.c). Returns whether it went to the dispatcher. */
static bool resume_row(struct dispatcher *ds, const struct journal_pending *p, int64_t rowid,
                       enum delivery_state state, int attempts, int64_t next_due_ms)
{
	/* One waiting for its retry keeps its due time; the attempt it waits
	 * for is its next. */
	int64_t now = now_wall_ms();
	bool due_later = state == DSTATE_RETRY_WAIT && next_due_ms > now;
	int attempt = due_later ? attempts : attempts + 1;
	struct delivery *d = p ? shell_from_list(dispatcher_config(ds), p, attempt) : NULL;
	if (!d)
		d = delivery_from_row(dispatcher_journal(ds), dispatcher_config(ds), rowid, attempt);
	if (!d) {
		journal_let_go(dispatcher_journal(ds), rowid);
		return false;
	}
	dispatch_resume(ds, d, due_later ? next_due_ms - now : 0);
	return true;
}

/* Pending async deliveries the journal gave this instance (recovered or
 * adopted) go to the dispatcher; those of an endpoint not configured wait
 * for a reload. Frees v; returns how many went to the dispatcher. */
static size_t resume_all(struct dispatcher *ds, struct journal_pending *v, size_t n)
{
	size_t resumed = 0;
	for (size_t i = 0; i < n; i++) {
		struct journal_pending *p = &v[i];
		if (config_endpoint_by_name(dispatcher_config(ds), p->endpoint)) {
			resumed += resume_row(ds, p, p->rowid, p->state, p->attempts, p->next_due_ms);
		} else {
			struct log_delivery who = pending_who(p, 0);
			log_about(LOG_LVL_ERROR, "journal: the delivery is for an endpoint which is no "
			          "longer configured; it waits for a reload that configures it", &who,
			          NULL, 0);
			if (left_count == left_cap) {
				left_cap = left_cap ? left_cap * 2 : 16;
				left_rows = xrealloc(left_rows, left_cap * sizeof(*left_rows));
			}
			left_rows[left_count++] = (struct left_row){
				.rowid = p->rowid, .endpoint = xstrdup(p->endpoint),
				.event = xstrdup(p->event), .delivery_id = xstrdup(p->delivery_id), .state = p->state,
				.attempts = p->attempts, .next_due_ms = p->next_due_ms,
			};
		}
		journal_pending_free(p);
	}
	free(v);
	return resumed;
}

int dispatch_resume_left(struct dispatcher *ds)
{
	if (dispatcher_draining(ds))
		return 0; /* journaled: the next start takes them up */
	size_t kept = 0;
	int resumed = 0;
	for (size_t i = 0; i < left_count; i++) {
		struct left_row *r = &left_rows[i];
		if (!config_endpoint_by_name(dispatcher_config(ds), r->endpoint)) {
			left_rows[kept++] = *r;
			continue;
		}
		struct log_delivery who = {r->endpoint, r->event, r->delivery_id, 0};
		log_about(LOG_LVL_INFO, "journal: the delivery resumed: its endpoint is configured again",
		          &who, NULL, 0);
		resumed += resume_row(ds, NULL, r->rowid, r->state, r->attempts, r->next_due_ms);
		free(r->endpoint);
		free(r->event);
		free(r->delivery_id);
	}
	left_count = kept;
	return resumed;
}

void recovery_forget_left(void)
{
	for (size_t i = 0; i < left_count; i++) {
		free(left_rows[i].endpoint);
		free(left_rows[i].event);
		free(left_rows[i].delivery_id);
	}
	free(left_rows);
	left_rows = NULL;
	left_count = left_cap = 0;
}

/* A sync delivery the journal marked failed, cut off by a crash (or its
 * instance's end): it ends here, counted once as any delivery (README
 * "Admin listener: health and metrics"; its sender's resend is an attempt),
 * under the route its event has now. */
static void count_interrupted(const char *endpoint, const char *event, void *arg)
{
	struct dispatcher *ds = arg;
	const struct endpoint *ep = config_endpoint_by_name(dispatcher_config(ds), endpoint);
	struct route r = {0};
	if (ep)
		route_resolve(ep->hooks_dir, event, &r);
	metrics_delivery(endpoint, r.name, "failed");
	route_free(&r);
}

int dispatch_recover(struct dispatcher *ds)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal)
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	journal_on_interrupted(journal, count_interrupted, ds);
	if (journal_recover(journal, &v, &n) < 0)
		return -1;
	size_t resumed = resume_all(ds, v, n);
	if (resumed)
		log_msg(LOG_LVL_INFO, "journal: %zu pending async deliveries resumed", resumed);
	return 0;
}

int dispatch_adopt(struct dispatcher *ds, size_t max)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal || dispatcher_draining(ds))
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	journal_on_interrupted(journal, count_interrupted, ds);
	if (journal_adopt(journal, max, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct log_delivery who = pending_who(&v[i], 0);
		log_about(LOG_LVL_WARN, "its instance stopped or its lease ran out; taken over here",
		          &who, NULL, 0);
	}
	resume_all(ds, v, n);
	return (int)n;
}

int dispatch_steal(struct dispatcher *ds, size_t max, int64_t waited_ms)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal || dispatcher_draining(ds) || max == 0)
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	if (journal_steal(journal, max, now_wall_ms() - waited_ms, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct log_delivery who = pending_who(&v[i], 0);
		log_about(LOG_LVL_INFO, "queued on another instance whose slots are busy; taken to "
		          "run here", &who, NULL, 0);
	}
	resume_all(ds, v, n);
	return (int)n;
}

enum result dispatch_replay(struct dispatcher *ds, int64_t rowid)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal)
		return RESULT_UNKNOWN;
	struct journal_pending p;
	memset(&p, 0, sizeof(p));
	int r = journal_get(journal, rowid, &p);
	if (r != 0)
		return RESULT_UNKNOWN;
	enum result rc = RESULT_OK;
	if (delivery_state_pending(p.state)) {
		rc = RESULT_PENDING;
	} else if (!p.body_complete) {
		rc = RESULT_BODY_CUT;
	} else if (!config_endpoint_by_name(dispatcher_config(ds), p.endpoint)) {
		rc = RESULT_NO_ENDPOINT;
	} else {
		/* What journal_requeue records below: the next attempt is a replay. */
		p.replay_attempt = p.attempts + 1;
		struct delivery *d = delivery_from_journal(dispatcher_config(ds), &p, p.attempts + 1,
		                                           false);
		if (!d) {
			rc = RESULT_UNKNOWN;
		} else if ((rc = journal_requeue(journal, rowid)) != RESULT_OK) {
			/* Not recorded (a failing disk), or another instance of a
			 * shared journal replayed it first (pending now): it runs
			 * nowhere, or there, not here as well. */
			delivery_free(d);
		} else {
			if (dispatcher_draining(ds)) {
				/* Like every async delivery not yet started when
				 * hookd stops: journaled, run at the next start. */
				struct log_delivery who = delivery_who(d);
				log_about(LOG_LVL_INFO, "queued for replay at the next start", &who,
				          NULL, 0);
			} else {
				struct log_delivery who = delivery_who(d);
				log_about(LOG_LVL_INFO, "replaying delivery", &who, NULL, 0);
			}
			dispatch_resume(ds, d, 0); /* draining, it is only counted as left */
		}
	}
	journal_pending_free(&p);
	return rc;
}
