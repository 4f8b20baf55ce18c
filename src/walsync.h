/*
 * Group commit's second half: a thread that makes the journal's write-ahead
 * log durable (fdatasync) off the event loop. The dispatcher asks for
 * "everything committed up to batch N"; a sync that starts after that
 * request covers it, and every request that arrives while one sync is
 * under way is covered together by the next one. The loop hears of each
 * finished sync through `done`, called on the loop with the highest batch
 * the sync covered, and whether it succeeded. A second thread runs the
 * journal's checkpoints, so that their copying and fsyncs stay off the loop
 * too. Only the dispatcher uses it.
 */
#ifndef HOOKD_WALSYNC_H
#define HOOKD_WALSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct walsync;

typedef void (*walsync_done_fn)(uint64_t upto, bool ok, void *arg);

/* fd: a descriptor of the file to sync (walsync does not close it). NULL
 * when the thread cannot be started (err says why). */
struct walsync *walsync_new(struct event_base *base, int fd, walsync_done_fn done, void *arg,
                            char *err, size_t errlen);
/* Everything written to the file before this call, tagged `upto`, is to
 * become durable: a sync starts now, or as soon as the one under way ends.
 * checkpoint: then, on the thread, the checkpoint function too. */
void walsync_request(struct walsync *w, uint64_t upto, bool checkpoint);
/* The WAL's checkpoints, run when asked on a second thread, so that a sync
 * never waits behind one (0, or -1 with a message that the loop logs). Set
 * before the first request; false when that thread cannot start. */
typedef int (*walsync_checkpoint_fn)(void *arg, char *err, size_t errlen);
bool walsync_set_checkpoint(struct walsync *w, walsync_checkpoint_fn fn, void *arg);
void walsync_free(struct walsync *w); /* NULL is fine; waits for a sync under way */
/* The error line for a sync of the WAL that failed with errno err, with
 * what to do about it (the sync on the loop, without the thread, too). */
void walsync_log_failure(int err);

#endif
