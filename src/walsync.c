/*
 * The journal's sync thread (walsync.h). The loop only ever sets a number
 * under a lock and reads one back; the thread does nothing but fdatasync and
 * tell the loop through an eventfd, so the loop never waits for the disk.
 */
#include "walsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"

struct walsync {
	int fd;
	int efd;
	struct event *ev;
	walsync_done_fn done;
	void *arg;
	walsync_checkpoint_fn checkpoint;
	void *checkpoint_arg;
	pthread_t thread;
	pthread_t checkpoint_thread; /* started by walsync_set_checkpoint */
	bool checkpointing;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* Under lock: */
	uint64_t wanted;  /* highest batch asked for */
	uint64_t synced;  /* highest batch the last finished sync covered */
	int failed;       /* errno of a sync that failed since the loop last looked */
	bool checkpoint_wanted;
	char checkpoint_err[160]; /* a checkpoint's failure, for the loop to log */
	bool stop;
};

static void *sync_thread(void *arg)
{
	struct walsync *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stop && w->wanted <= w->synced)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break;
		/* Everything asked for so far was written before this point. */
		uint64_t upto = w->wanted;
		pthread_mutex_unlock(&w->lock);
		int rc = fdatasync(w->fd);
		int saved = errno;
		pthread_mutex_lock(&w->lock);
		w->synced = upto;
		if (rc < 0)
			w->failed = saved;
		uint64_t one = 1;
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow here; nothing else can fail. */
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/*
 * Checkpoints have a thread of their own: a checkpoint's fsync of the
 * database file can take long, and the acceptances' syncs must not wait
 * behind it.
 */
static void *checkpoint_thread(void *arg)
{
	struct walsync *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->stop && !w->checkpoint_wanted)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break;
		w->checkpoint_wanted = false;
		char err[sizeof(w->checkpoint_err)] = "";
		pthread_mutex_unlock(&w->lock);
		int rc = w->checkpoint(w->checkpoint_arg, err, sizeof(err));
		pthread_mutex_lock(&w->lock);
		if (rc < 0) {
			memcpy(w->checkpoint_err, err, sizeof(err));
			uint64_t one = 1;
			if (write(w->efd, &one, sizeof(one)) < 0) {
				/* The counter cannot overflow here. */
			}
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void on_synced(evutil_socket_t fd, short what, void *arg)
{
	struct walsync *w = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno == EAGAIN)
		return;
	pthread_mutex_lock(&w->lock);
	uint64_t upto = w->synced;
	int failed = w->failed;
	w->failed = 0;
	char ckpt_err[sizeof(w->checkpoint_err)];
	memcpy(ckpt_err, w->checkpoint_err, sizeof(ckpt_err));
	w->checkpoint_err[0] = '\0';
	pthread_mutex_unlock(&w->lock);
	if (ckpt_err[0])
		log_msg(LOG_LVL_ERROR, "journal: %s", ckpt_err);
	if (failed)
		walsync_log_failure(failed);
	w->done(upto, !failed, w->arg);
}

/* Linux may drop the pages a failed sync could not write, and a later sync
 * that succeeds does not bring them back: a retry proves nothing. */
void walsync_log_failure(int err)
{
	log_msg(LOG_LVL_ERROR,
	        "journal: cannot sync the write-ahead log: %s; deliveries answered 202 since may "
	        "not survive a power loss: treat the disk as failing (stop hookd, move state_dir "
	        "to a sound disk, start it again)",
	        strerror(err));
}

struct walsync *walsync_new(struct event_base *base, int fd, walsync_done_fn done, void *arg,
                            char *err, size_t errlen)
{
	struct walsync *w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->done = done;
	w->arg = arg;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_synced, w);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	int rc = w->ev ? pthread_create(&w->thread, NULL, sync_thread, w) : ENOMEM;
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the journal's sync thread: %s", strerror(rc));
		if (w->ev)
			event_free(w->ev);
		close(w->efd);
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->wake);
		free(w);
		return NULL;
	}
	event_add(w->ev, NULL);
	return w;
}

void walsync_request(struct walsync *w, uint64_t upto, bool checkpoint)
{
	pthread_mutex_lock(&w->lock);
	if (upto > w->wanted || (checkpoint && w->checkpointing && !w->checkpoint_wanted)) {
		if (upto > w->wanted)
			w->wanted = upto;
		w->checkpoint_wanted |= checkpoint && w->checkpointing;
		pthread_cond_broadcast(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
}

bool walsync_set_checkpoint(struct walsync *w, walsync_checkpoint_fn fn, void *arg)
{
	w->checkpoint = fn;
	w->checkpoint_arg = arg;
	w->checkpointing = pthread_create(&w->checkpoint_thread, NULL, checkpoint_thread, w) == 0;
	return w->checkpointing;
}

void walsync_free(struct walsync *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	if (w->checkpointing)
		pthread_join(w->checkpoint_thread, NULL);
	event_free(w->ev);
	close(w->efd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}
