/*
 * A shared journal's upkeep (fleet.h). The timer runs on the daemon's
 * loop: every call it makes is one short statement on the journal's
 * connection. While the journal is down, the loop never waits for a
 * reconnect: it is told when one is through.
 */
#include "fleet.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "journal.h"
#include "dispatch.h"
#include "log.h"
#include "recovery.h"
#include "util.h"

#define TICK_MS 1000
/* Deliveries taken over in one tick: a dead instance's backlog comes over
 * a few hundred a second, never all in one stall of the loop. */
#define ADOPT_MAX 200
/* How long a delivery waits for a slot on its own instance before another
 * with a free one takes it: long enough that an instance about to start
 * it is not raced for it. */
#define STEAL_AFTER_MS 1000

struct fleet {
	struct event_base *base;
	struct dispatcher *ds;
	struct journal *journal;
	struct event *tick;
	struct event *reconnect; /* waits for a reconnect's end, NULL: none */
	int reconnect_fd;        /* reconnect's descriptor: our own copy */
	int64_t lease_ms, renew_every_ms;
	int64_t quiet_ms; /* after a reconnect: fleet_quiet_ms */
	int64_t renewed_mono;
	int64_t down_mono; /* when the journal was last seen down; 0: never */
};

static void on_tick(evutil_socket_t fd, short what, void *arg);

static void unwatch_reconnect(struct fleet *f)
{
	if (!f->reconnect)
		return;
	event_free(f->reconnect);
	close(f->reconnect_fd);
	f->reconnect = NULL;
}

static void on_reconnect_ready(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	unwatch_reconnect(f);
	on_tick(fd, what, f);
}

/* A reconnect goes on without the loop (journal_reconnect_fd): the loop
 * waits for its end, and takes its connection over at once (the tick
 * comes back to it anyway, should a call have taken it first). */
static void watch_reconnect(struct fleet *f)
{
	unwatch_reconnect(f);
	int fd = journal_reconnect_fd(f->journal);
	if (fd < 0)
		return;
	/* The loop watches a descriptor of its own: the journal closes its
	 * one when any call takes the connection over, and an event left on a
	 * closed descriptor would, once the number is reused (a client's
	 * socket), keep the new one out of epoll. The copy keeps the pipe
	 * open; the end of the reconnect makes it readable either way. */
	f->reconnect_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f->reconnect_fd < 0)
		return;
	f->reconnect = event_new(f->base, f->reconnect_fd, EV_READ, on_reconnect_ready, f);
	event_add(f->reconnect, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	int64_t now = now_mono_ms();
	bool was_up = journal_up(f->journal);
	/* Down, the heartbeat is what reconnects. */
	if (!was_up || now - f->renewed_mono >= f->renew_every_ms) {
		if (journal_heartbeat(f->journal) == 0)
			f->renewed_mono = now;
	}
	if (!journal_up(f->journal)) {
		f->down_mono = now;
		watch_reconnect(f);
		return;
	}
	dispatch_write_outbox(f->ds);
	/* Leases that ran out while the journal was down say nothing of their
	 * instances: none could renew. For a while after an outage
	 * (fleet_quiet_ms), each instance renews its own and takes nobody's. */
	if (f->down_mono && now - f->down_mono < f->quiet_ms)
		return;
	dispatch_adopt(f->ds, ADOPT_MAX);
	/* One queue for all: free slots here take what waits for a slot
	 * elsewhere (README "Running on several machines"). */
	dispatch_steal(f->ds, (size_t)dispatcher_free_slots(f->ds), STEAL_AFTER_MS);
}

/*
 * Another instance cut off by the same outage of the network may be
 * through its reconnect later than this one: its attempt may have gone out
 * just before the network came back, to wait out connect_timeout on a
 * silent host, then its backoff (the journal's reconnect lag); a tick
 * later it tries again, and a tick after that its renewal is in. Until
 * then its lease, which ran out meanwhile, says nothing of it. The lease
 * is the least: what an instance's own lease would have given it anyway.
 * Without a bound on the reconnect, the lease is all there is.
 */
int64_t fleet_quiet_ms(int64_t lease_ms, int64_t reconnect_lag_ms)
{
	int64_t catch_up = reconnect_lag_ms < 0 ? 0 : reconnect_lag_ms + 2 * TICK_MS;
	return catch_up > lease_ms ? catch_up : lease_ms;
}

struct fleet *fleet_new(struct event_base *base, struct dispatcher *ds, struct journal *journal,
                        int64_t lease_ms)
{
	struct fleet *f = xcalloc(1, sizeof(*f));
	f->base = base;
	f->ds = ds;
	f->journal = journal;
	f->lease_ms = lease_ms;
	f->renew_every_ms = lease_ms / 3;
	f->quiet_ms = fleet_quiet_ms(lease_ms, journal_reconnect_lag_ms(journal));
	f->renewed_mono = now_mono_ms();
	f->tick = event_new(base, -1, EV_PERSIST, on_tick, f);
	struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
	evtimer_add(f->tick, &tv);
	return f;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	event_free(f->tick);
	unwatch_reconnect(f);
	free(f);
}
