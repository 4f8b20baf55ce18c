/*
 * Group commit (groupcommit.h): the held answers in batch order, the
 * end-of-turn commit, the WAL's syncs and checkpoints.
 */
#include "groupcommit.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "journal.h"
#include "log.h"
#include "runner.h"
#include "util.h"
#include "walsync.h"

/* A checkpoint of the journal's WAL each time it grew by this many frames
 * (SQLite's own auto-checkpoint default). */
#define WAL_CHECKPOINT_FRAMES 1000
/* ... and one on the loop, which lets the WAL start over, past this many
 * (HACKING.md "Group commit": each holds the loop for its two syncs, so
 * rarely is better, at the cost of a WAL file of 32 or 64 MB). */
#define WAL_RESTART_FRAMES 16000
/* A batch waits for the loop to run out of other work at most this long:
 * under a steady stream of requests the loop may never be idle. */
#define FLUSH_LINGER_MS 5

TAILQ_HEAD(heldq, held_answer);

struct groupcommit {
	struct journal *journal;
	const struct groupcommit_ops *ops;
	void *arg;
	/* Commit the journal's batch: flush_ev at the loop's lowest priority,
	 * once a turn has no other work; linger_ev if that takes too long. */
	struct event *flush_ev, *linger_ev;
	/* In batch order: sync outcomes until their batch is committed, async
	 * acceptances until a sync of the WAL begun after that commit ended. */
	struct heldq held_commit, held_sync;
	/* The journal's commit is durable (PostgreSQL): no WAL of ours to sync. */
	bool durable_commits;
	struct walsync *walsync; /* NULL: the WAL is synced on the loop */
	struct journal_checkpointer *checkpointer; /* NULL: SQLite checkpoints on the loop */
	int checkpoint_frames; /* the WAL's frames when one was last asked for */
};

/* The WAL was synced, by a sync begun after batch `upto` was committed: the
 * acceptances recorded up to it are durable and answered. */
static void on_synced(uint64_t upto, bool ok, void *arg)
{
	struct groupcommit *g = arg;
	struct held_answer *h;
	while ((h = TAILQ_FIRST(&g->held_sync)) && h->batch <= upto) {
		TAILQ_REMOVE(&g->held_sync, h, link);
		g->ops->synced(h, ok, h->losses != journal_losses(g->journal), g->arg);
	}
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct groupcommit *g = arg;
	/* Whichever of the two came first: the other has nothing to do. */
	event_del(g->flush_ev);
	event_del(g->linger_ev);
	/* Hooks whose attempts that batch recorded may start now; if it was
	 * lost, they must not (a crash would leave no trace of them), and
	 * their senders are asked to retry. */
	int rc = journal_flush(g->journal);
	if (rc < 0)
		runner_cancel_held("cannot record the attempt in the journal");
	else
		runner_release();
	g->ops->flushed(g->arg);
	struct held_answer *h;
	while ((h = TAILQ_FIRST(&g->held_commit))) {
		TAILQ_REMOVE(&g->held_commit, h, link);
		g->ops->committed(h, g->arg);
	}
	/* No batch is open now: an acceptance past the last commit was lost. */
	uint64_t committed = journal_committed_id(g->journal);
	while ((h = TAILQ_LAST(&g->held_sync, heldq)) && h->batch > committed) {
		TAILQ_REMOVE(&g->held_sync, h, link);
		g->ops->lost(h, g->arg);
	}
	if (g->durable_commits) {
		on_synced(committed, true, g);
		return;
	}
	bool checkpoint = false;
	if (g->checkpointer) {
		int frames = journal_wal_frames(g->journal);
		if (frames < g->checkpoint_frames)
			g->checkpoint_frames = 0; /* the WAL started over */
		if (frames >= WAL_RESTART_FRAMES && rc == 0) {
			journal_checkpoint_here(g->journal);
			g->checkpoint_frames = frames;
		}
		checkpoint = frames >= g->checkpoint_frames + WAL_CHECKPOINT_FRAMES;
		if (checkpoint)
			g->checkpoint_frames = frames;
	}
	if (TAILQ_EMPTY(&g->held_sync) && !checkpoint)
		return;
	if (g->walsync)
		walsync_request(g->walsync, committed, checkpoint);
	else {
		bool ok = fdatasync(journal_sync_fd(g->journal)) == 0;
		if (!ok)
			walsync_log_failure(errno);
		on_synced(committed, ok, g);
	}
}

/* On the sync thread. */
static int run_checkpoint(void *arg, char *err, size_t errlen)
{
	return journal_checkpoint(arg, err, errlen);
}

struct groupcommit *groupcommit_new(struct event_base *base, struct journal *journal,
                                    const struct groupcommit_ops *ops, void *arg)
{
	struct groupcommit *g = xcalloc(1, sizeof(*g));
	g->journal = journal;
	g->ops = ops;
	g->arg = arg;
	TAILQ_INIT(&g->held_commit);
	TAILQ_INIT(&g->held_sync);
	g->flush_ev = event_new(base, -1, 0, on_flush, g);
	g->linger_ev = evtimer_new(base, on_flush, g);
	/* The loop's lowest priority (cmd_serve.c sets them up): the requests
	 * that arrive while a turn's records are written join the same batch,
	 * and share its commit and sync. */
	event_priority_set(g->flush_ev, event_base_get_npriorities(base) - 1);
	journal_set_batching(journal, true);
	g->durable_commits = journal_sync_fd(journal) < 0;
	if (g->durable_commits)
		return g;
	char err[128];
	g->walsync = walsync_new(base, journal_sync_fd(journal), on_synced, g, err, sizeof(err));
	if (!g->walsync)
		log_msg(LOG_LVL_WARN, "journal: %s; syncing on the event loop", err);
	else if ((g->checkpointer = journal_checkpointer_open(journal, err, sizeof(err)))) {
		if (walsync_set_checkpoint(g->walsync, run_checkpoint, g->checkpointer)) {
			journal_defer_checkpoints(journal);
		} else {
			journal_checkpointer_close(g->checkpointer);
			g->checkpointer = NULL;
		}
	} else {
		log_msg(LOG_LVL_WARN, "journal: %s; checkpoints on the event loop", err);
	}
	return g;
}

void groupcommit_free(struct groupcommit *g)
{
	if (!g)
		return;
	journal_set_batching(g->journal, false);
	/* Stopped before they were answered (their senders are gone with the
	 * server): committed above, the acceptances run at the next start. */
	walsync_free(g->walsync);
	journal_checkpointer_close(g->checkpointer);
	struct heldq *lines[] = {&g->held_commit, &g->held_sync};
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		struct held_answer *h;
		while ((h = TAILQ_FIRST(lines[i]))) {
			TAILQ_REMOVE(lines[i], h, link);
			g->ops->dropped(h, g->arg);
		}
	}
	event_free(g->flush_ev);
	event_free(g->linger_ev);
	free(g);
}

void groupcommit_flush_soon(struct groupcommit *g)
{
	if (!g || !g->flush_ev)
		return;
	event_active(g->flush_ev, EV_TIMEOUT, 0);
	if (!event_pending(g->linger_ev, EV_TIMEOUT, NULL))
		event_add(g->linger_ev, &(struct timeval){0, FLUSH_LINGER_MS * 1000});
}

void groupcommit_hold(struct groupcommit *g, struct held_answer *h, bool sync_too)
{
	h->batch = journal_batch_id(g->journal);
	h->losses = journal_losses(g->journal);
	TAILQ_INSERT_TAIL(sync_too ? &g->held_sync : &g->held_commit, h, link);
	groupcommit_flush_soon(g);
}

bool groupcommit_idle(const struct groupcommit *g)
{
	return !g || (TAILQ_EMPTY(&g->held_commit) && TAILQ_EMPTY(&g->held_sync));
}
