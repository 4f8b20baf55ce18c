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

/* A journal row as the delivery it was when it came (its received time,
 * headers and payload), at the given attempt; NULL when its endpoint is no
 * longer configured. */
static struct delivery *delivery_from_journal(struct config *cfg, struct journal_pending *p,
                                              int attempt)
{
	const struct endpoint *ep = config_endpoint_by_name(cfg, p->endpoint);
	if (!ep) {
		log_msg(LOG_LVL_ERROR, "journal: delivery %s is for endpoint '%s', which is no longer configured",
		        p->delivery_id, p->endpoint);
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
	};
	struct delivery *d = delivery_new(&dp);
	json_object_put(root);
	delivery_pass_headers(d, pending_header, p);
	return d;
}

struct delivery *delivery_from_row(struct journal *journal, struct config *cfg, int64_t rowid,
                                   int attempt)
{
	struct journal_pending p;
	memset(&p, 0, sizeof(p));
	if (journal_get(journal, rowid, &p) != RESULT_OK) {
		/* A journal that went down is an outage, logged as such once;
		 * the attempt fails with a 503 and is retried. */
		bool down = !journal_up(journal);
		log_msg(down ? LOG_LVL_WARN : LOG_LVL_ERROR, "journal: cannot read delivery row %lld back%s",
		        (long long)rowid, down ? ": the journal is down" : "");
		return NULL;
	}
	struct delivery *d = delivery_from_journal(cfg, &p, attempt);
	journal_pending_free(&p);
	return d;
}

/* Pending async deliveries the journal gave this instance (recovered or
 * adopted) go to the dispatcher; frees v. */
static void resume_all(struct dispatcher *ds, struct journal_pending *v, size_t n)
{
	struct journal *journal = dispatcher_journal(ds);
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < n; i++) {
		/* One waiting for its retry keeps its due time; the attempt it
		 * waits for is its next. Each is read whole (its serialization
		 * key is in its payload) and, unless it starts now, becomes a
		 * shell again (dispatch.c): one body at a time in memory. */
		bool due_later = v[i].state == DSTATE_RETRY_WAIT && v[i].next_due_ms > now;
		struct delivery *d =
			delivery_from_row(journal, dispatcher_config(ds), v[i].rowid,
			                  due_later ? v[i].attempts : v[i].attempts + 1);
		if (d)
			dispatch_resume(ds, d, due_later ? v[i].next_due_ms - now : 0);
		journal_pending_free(&v[i]);
	}
	free(v);
}

int dispatch_recover(struct dispatcher *ds)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal)
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	if (journal_recover(journal, &v, &n) < 0)
		return -1;
	resume_all(ds, v, n);
	if (n)
		log_msg(LOG_LVL_INFO, "journal: %zu pending async deliveries resumed", n);
	return 0;
}

int dispatch_adopt(struct dispatcher *ds, size_t max)
{
	struct journal *journal = dispatcher_journal(ds);
	if (!journal || dispatcher_draining(ds))
		return 0;
	struct journal_pending *v = NULL;
	size_t n = 0;
	if (journal_adopt(journal, max, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		log_msg(LOG_LVL_WARN, "delivery %s (endpoint %s): its instance stopped or its lease "
		        "ran out; taken over here", v[i].delivery_id, v[i].endpoint);
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
	for (size_t i = 0; i < n; i++)
		log_msg(LOG_LVL_INFO, "delivery %s (endpoint %s): queued on another instance whose "
		        "slots are busy; taken to run here", v[i].delivery_id, v[i].endpoint);
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
	} else {
		/* What journal_requeue records below: the next attempt is a replay. */
		p.replay_attempt = p.attempts + 1;
		struct delivery *d = delivery_from_journal(dispatcher_config(ds), &p, p.attempts + 1);
		if (!d) {
			rc = RESULT_UNKNOWN;
		} else {
			journal_requeue(journal, rowid);
			if (dispatcher_draining(ds)) {
				/* Like every async delivery not yet started when
				 * hookd stops: journaled, run at the next start. */
				log_msg(LOG_LVL_INFO, "delivery %s (endpoint %s) queued for replay at the next start",
				        delivery_id(d), delivery_endpoint(d)->name);
				delivery_free(d);
			} else {
				log_msg(LOG_LVL_INFO, "replaying delivery %s (endpoint %s)", delivery_id(d),
				        delivery_endpoint(d)->name);
				dispatch_resume(ds, d, 0);
			}
		}
	}
	journal_pending_free(&p);
	return rc;
}
