#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "fdlimit.h"
#include "hookuser.h"
#include "log.h"
#include "preflight.h"
#include "runner_private.h"
#include "secrecy.h"
#include "util.h"

/* A result with no outcome yet; its output bytes are left as they are
 * (output_len says how many count). */
static void result_clear(struct hook_result *res)
{
	memset(res, 0, offsetof(struct hook_result, output));
	res->exit_code = -1;
	res->output_len = 0;
}

static TAILQ_HEAD(, hook_run) active = TAILQ_HEAD_INITIALIZER(active);
static int nactive;
static struct event *sigchld_ev;

/*
 * Starting a process is the one step of a delivery that waits: vfork
 * returns only once the child has called execve, and on a busy machine
 * the child must first be scheduled. Done on the event
 * loop, that wait was most of the loop's time under load, and every other
 * request waited behind it. So hooks are started by a few spawner
 * threads: the loop queues a job (fds made, environment copied) and goes
 * on; a thread starts the process and puts the job, with its pid, on the
 * done queue. The threads do nothing else (no malloc, no locks but the
 * queue's, all signals blocked); everything else stays on the loop.
 *
 * The loop needs a pid only to match an exit, or to signal the group: it
 * takes the done queue when a SIGCHLD comes, and before a time limit's
 * signal. Waking the loop for every start (an eventfd written, the loop
 * scheduled, the eventfd read) was a tenth of hookd's own CPU a delivery
 * in (c): the eventfd is written only for a start that failed (there may
 * be no child, so no SIGCHLD) and while the loop waits for jobs to come
 * back (want_wake: it reaped a child it could not yet match, or holds a
 * signal for a pid it does not know yet). want_wake is the loop's to set
 * and clear (update_want_wake, after each look at the queue): a thread
 * that took it for itself would leave a second job the loop waits for
 * with nobody to wake it.
 *
 * A child between vfork and execve runs on a CPU: starts are CPU-bound,
 * and more of them at once than there are CPUs only share those CPUs, so
 * each takes longer. There is one thread for each CPU hookd may run on,
 * at least SPAWNERS_MIN (a start that waits on a slow disk does not hold
 * up every other) and at most SPAWNERS_MAX. On 2 CPUs, 2 threads gave
 * a p99 8 to 11% lower than 4 in each of four paired runs of the
 * benchmark's (c), at the same requests/s.
 */
#define SPAWNERS_MIN 2
#define SPAWNERS_MAX 16

static struct {
	pthread_t threads[SPAWNERS_MAX];
	int nthreads;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	STAILQ_HEAD(, spawn_job) todo, done;
	bool stopping;
	int efd;              /* the threads' "jobs are done" to the loop */
	struct event *efd_ev;
	bool want_wake;       /* the loop waits for jobs done: every one wakes it */
	/* Jobs of runs started with `hold`, until runner_release(); the
	 * loop's alone, so not under the lock. */
	STAILQ_HEAD(, spawn_job) held;
} spawners = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.todo = STAILQ_HEAD_INITIALIZER(spawners.todo),
	.done = STAILQ_HEAD_INITIALIZER(spawners.done),
	.efd = -1,
	.held = STAILQ_HEAD_INITIALIZER(spawners.held),
};

static void take_done(void);
static void update_want_wake(void);

/* A seam for tests/unit/test_runner.c, which holds a spawner thread up
 * here to make the loop wait for a job: called, when defined, after each
 * start. Nothing in hookd defines it. */
void runner_test_after_start(const char *path) __attribute__((weak));

/*
 * A child can exit before the loop has taken its job from the done queue;
 * its status waits here until then. Each reap is numbered: a job takes only a
 * status reaped after it was queued, so an entry nobody claimed (a child
 * that could not exec, reaped before its job came back) can never be
 * mistaken for a later process that got the same pid. Unclaimed
 * entries go after EARLY_EXIT_TTL_MS, or the oldest when the table is full.
 */
#define EARLY_EXITS 256
#define EARLY_EXIT_TTL_MS 60000

static struct {
	pid_t pid;
	int status;
	uint64_t seq;
	int64_t at;
} early[EARLY_EXITS];
static size_t nearly; /* entries in use: nearly always none, and then no scan */
static uint64_t reaps; /* children reaped so far */

const char *signal_name(int sig)
{
	static const struct {
		int sig;
		const char *name;
	} names[] = {
		{SIGHUP, "SIGHUP"}, {SIGINT, "SIGINT"}, {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
		{SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"}, {SIGFPE, "SIGFPE"},
		{SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
		{SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
		{SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
		{SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
		{SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGIO, "SIGIO"},
		{SIGPWR, "SIGPWR"}, {SIGSYS, "SIGSYS"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (names[i].sig == sig)
			return names[i].name;
	}
	static char buf[16];
	snprintf(buf, sizeof(buf), "SIG%d", sig);
	return buf;
}

/* The stage a start failed at, as the hook's error says it. */
static const char *const stage_names[] = {
	[STAGE_SETUP] = "cannot set up the hook's process",
	[STAGE_LIMIT_NOFILE] = "cannot apply limit_nofile",
	[STAGE_LIMIT_NPROC] = "cannot apply limit_nproc",
	[STAGE_LIMIT_MEMORY] = "cannot apply limit_memory",
	[STAGE_LIMIT_CPU] = "cannot apply limit_cpu",
	[STAGE_USER] = "cannot switch to hook_user",
	[STAGE_CHDIR] = "cannot chdir to workdir", /* with the path: spawned() */
	[STAGE_EXEC] = "exec failed",
};

/* Whether a start that failed with err at stage may work when tried
 * again. A limit refused never does. */
static bool start_may_pass(int stage, int err)
{
	return (stage == STAGE_SETUP || stage == STAGE_EXEC) && error_may_pass(err);
}

static void finish(struct hook_run *r)
{
	/* What the hook wrote before it exited is in the pipe already; what a
	 * background process writes later is not the hook's. Read one pipe's
	 * worth at most, then close. */
	runner_read_output(&r->out[0], 8);
	runner_read_output(&r->out[1], 8);
	runner_close_output(r);
	if (r->timeout_ev) {
		event_free(r->timeout_ev);
		r->timeout_ev = NULL;
	}
	if (r->res.timed_out && r->res.ran) {
		/* The leader is gone; whatever else of its group survived the
		 * SIGTERM does not get the rest of the grace period. */
		kill(-r->pid, SIGKILL);
		char d[32];
		format_duration(r->timeout_ms, d, sizeof(d));
		r->res.error = xasprintf("timed out after %s", d);
	} else if (r->res.signal) {
		r->res.error = xasprintf("killed by %s", signal_name(r->res.signal));
	}
	r->res.ms = now_mono_ms() - r->started_ms;
	/* Linearize the tail. */
	for (size_t i = 0; i < r->ring_len; i++)
		r->res.output[i] = r->ring[(r->ring_head + i) % OUTPUT_TAIL_MAX];
	r->res.output_len = r->ring_len;

	TAILQ_REMOVE(&active, r, link);
	nactive--;
	r->done(&r->res, r->arg);
	free(r->res.error);
	free(r->rel);
	free(r->endpoint);
	free(r->event);
	free(r->delivery_id);
	free(r);
}

/* Signals r's process group, or, while a thread is still starting it,
 * when its pid is known (never kill(0, ...): that is hookd's own group). */
static void signal_group(struct hook_run *r, int sig)
{
	if (r->pid > 0) {
		kill(-r->pid, sig);
		return;
	}
	r->pending_signal = sig;
	/* Sent when its job is taken from the done queue: now, if it is
	 * there already, else when a thread puts it there. */
	update_want_wake();
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *r = arg;
	if (!r->term_sent) {
		r->term_sent = true;
		r->res.timed_out = true;
		signal_group(r, SIGTERM);
		struct timeval tv = {(time_t)(r->kill_grace_ms / 1000),
		                     (suseconds_t)(r->kill_grace_ms % 1000) * 1000};
		evtimer_add(r->timeout_ev, &tv);
	} else {
		signal_group(r, SIGKILL);
	}
}

static void take_status(struct hook_run *r, int status)
{
	if (WIFEXITED(status)) {
		r->res.exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		r->res.exit_code = -1;
		r->res.signal = WTERMSIG(status);
	}
	finish(r);
}

static void early_expire(int64_t now)
{
	for (size_t i = 0; i < EARLY_EXITS && nearly > 0; i++) {
		if (early[i].pid > 0 && now - early[i].at > EARLY_EXIT_TTL_MS) {
			early[i].pid = 0;
			nearly--;
		}
	}
}

/* The status of pid if it was reaped after reap number `after` but before
 * the loop knew the pid; removed. */
static bool early_take(pid_t pid, uint64_t after, int *status)
{
	for (size_t i = 0, seen = 0; i < EARLY_EXITS && seen < nearly; i++) {
		if (early[i].pid <= 0)
			continue;
		seen++;
		if (early[i].pid == pid && early[i].seq > after) {
			early[i].pid = 0;
			nearly--;
			*status = early[i].status;
			return true;
		}
	}
	return false;
}

static void early_put(pid_t pid, int status)
{
	int64_t now = now_mono_ms();
	early_expire(now);
	size_t slot = 0;
	for (size_t i = 0; i < EARLY_EXITS; i++) {
		if (early[i].pid == 0) {
			slot = i;
			break;
		}
		if (early[i].seq < early[slot].seq)
			slot = i; /* full: the oldest goes */
	}
	if (early[slot].pid == 0)
		nearly++;
	early[slot].pid = pid;
	early[slot].status = status;
	early[slot].seq = reaps;
	early[slot].at = now;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	/* The pids of the children that may have exited. */
	take_done();
	bool unmatched = false;
	/* SIGCHLDs coalesce: reap everything that has exited. */
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		reaps++;
		struct hook_run *r;
		TAILQ_FOREACH(r, &active, link) {
			if (r->pid == pid)
				break;
		}
		if (r) {
			take_status(r, status);
		} else {
			early_put(pid, status); /* its start is still on its way */
			unmatched = true;
		}
	}
	/* A thread put its job on the queue after take_done() above, or will
	 * yet: it must wake the loop for it, as no other SIGCHLD may come. */
	if (unmatched)
		update_want_wake();
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void spawn_job_free(struct spawn_job *j)
{
	close_fd(&j->in_fd);
	free(j);
}

/* The PATH in a job's environment, as its hook got it. */
static const char *job_env_path(const struct spawn_job *j)
{
	for (char **e = j->envp; *e; e++) {
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	}
	return "";
}

/*
 * execve's ENOENT, EACCES and ENOEXEC name no file, and the file is often
 * not the hook: the hook, routed a moment ago, may have been removed since,
 * or its #! line names an interpreter that is not there (or ends in a
 * carriage return), or its ELF loader is missing, or an interpreter is not
 * executable. "No such file or directory" for a hook that is there sent
 * people looking for the wrong file, so say which it is, as `hookd check`
 * would.
 */
static char *exec_error(const struct spawn_job *j)
{
	const char *stage = stage_names[STAGE_EXEC];
	if (j->err == ENOENT && access(j->path, F_OK) != 0)
		return xasprintf("%s: %s (the hook was removed after it was routed)", stage,
		                 strerror(ENOENT));
	/* These are never about another file: no look (it reads files on the
	 * loop) for them. */
	static const int own[] = {E2BIG, ETXTBSY, ENOMEM, EMFILE, ENFILE, EAGAIN, EFAULT, EIO};
	bool another_file = true;
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		another_file &= j->err != own[i];
	char why[1024];
	if (another_file &&
	    preflight_exec_failure(j->path, job_env_path(j), j->err, why, sizeof(why)))
		return xasprintf("%s: %s", stage, why);
	/* preflight looks as hookd, which may run what hook_user may not. */
	const struct hook_user *hu = runner_hook_user();
	if (j->err == EACCES && hu) {
		if (hook_user_denied_why(hu, j->path, why, sizeof(why)))
			return xasprintf("%s: %s (%s)", stage, strerror(j->err), why);
		return xasprintf("%s: %s (as hook_user %s)", stage, strerror(j->err), hu->name);
	}
	return xasprintf("%s: %s", stage, strerror(j->err));
}

/* On the loop: a thread has started (or failed to start) j's hook. */
static void spawned(struct spawn_job *j)
{
	struct hook_run *r = j->run;
	int status;
	if (j->err) {
		/* A child that could not exec reported why and exited: it is
		 * reaped whenever its SIGCHLD comes, and its status, claimed by
		 * no run, goes from the early table after EARLY_EXIT_TTL_MS. */
		if (j->pid > 0)
			early_take(j->pid, j->reaps_before, &status);
		r->res.ran = false;
		r->res.timed_out = false;
		r->res.start_may_pass = start_may_pass(j->stage, j->err);
		if (j->stage == STAGE_CHDIR)
			r->res.error = xasprintf("%s %s: %s", stage_names[j->stage], j->dir,
			                         strerror(j->err));
		else if (j->stage == STAGE_EXEC)
			r->res.error = exec_error(j);
		else
			r->res.error = xasprintf("%s: %s", stage_names[j->stage], strerror(j->err));
		spawn_job_free(j);
		finish(r);
		return;
	}
	r->pid = j->pid;
	uint64_t j_reaps_before = j->reaps_before;
	spawn_job_free(j);
	if (r->pending_signal)
		kill(-r->pid, r->pending_signal);
	if (early_take(r->pid, j_reaps_before, &status))
		take_status(r, status);
}

/* On the loop: the jobs the threads are done with. */
static void take_done(void)
{
	STAILQ_HEAD(, spawn_job) done = STAILQ_HEAD_INITIALIZER(done);
	pthread_mutex_lock(&spawners.lock);
	STAILQ_CONCAT(&done, &spawners.done);
	pthread_mutex_unlock(&spawners.lock);
	while (!STAILQ_EMPTY(&done)) {
		struct spawn_job *j = STAILQ_FIRST(&done);
		STAILQ_REMOVE_HEAD(&done, link);
		spawned(j);
	}
	update_want_wake();
}

static void on_spawned(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;
	ssize_t rd = read(spawners.efd, &n, sizeof(n)); /* EAGAIN if event_active */
	(void)rd;
	take_done();
}

/* Whether the loop waits for a job to come back: a child reaped before
 * its job did (an entry of the early table), or a signal held for a run
 * whose pid is not known yet. */
static bool waiting_for_jobs(void)
{
	if (nearly > 0)
		early_expire(now_mono_ms()); /* a failed start's, claimed by no job */
	if (nearly > 0)
		return true;
	struct hook_run *r;
	TAILQ_FOREACH(r, &active, link) {
		if (r->pid <= 0 && r->pending_signal)
			return true;
	}
	return false;
}

/* Every job done wakes the loop while it waits for some (and a job put
 * on the queue before the flag was set is taken at once); none does
 * otherwise. */
static void update_want_wake(void)
{
	bool want = waiting_for_jobs();
	pthread_mutex_lock(&spawners.lock);
	spawners.want_wake = want;
	bool ready = want && !STAILQ_EMPTY(&spawners.done);
	pthread_mutex_unlock(&spawners.lock);
	if (ready)
		event_active(spawners.efd_ev, EV_READ, 0);
}

int runner_init(struct event_base *base)
{
	if (sigchld_ev)
		return 0;
	sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if (!sigchld_ev || evsignal_add(sigchld_ev, NULL) < 0)
		return -1;
	spawners.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (spawners.efd < 0)
		return -1;
	spawners.efd_ev = event_new(base, spawners.efd, EV_READ | EV_PERSIST, on_spawned, NULL);
	if (!spawners.efd_ev || event_add(spawners.efd_ev, NULL) < 0)
		return -1;
	return 0;
}

static void stop_spawners(void)
{
	pthread_mutex_lock(&spawners.lock);
	spawners.stopping = true;
	pthread_cond_broadcast(&spawners.wake);
	pthread_mutex_unlock(&spawners.lock);
	for (int i = 0; i < spawners.nthreads; i++)
		pthread_join(spawners.threads[i], NULL);
	spawners.nthreads = 0;
	spawners.stopping = false;
	/* Jobs no thread took, or whose outcome the loop never read (exiting
	 * on an error): a process one started gets what runner_kill_all
	 * meant for it, and is not waited for. */
	STAILQ_CONCAT(&spawners.todo, &spawners.held);
	STAILQ_CONCAT(&spawners.todo, &spawners.done);
	while (!STAILQ_EMPTY(&spawners.todo)) {
		struct spawn_job *j = STAILQ_FIRST(&spawners.todo);
		STAILQ_REMOVE_HEAD(&spawners.todo, link);
		if (j->pid > 0 && !j->err && j->run->pending_signal)
			kill(-j->pid, j->run->pending_signal);
		spawn_job_free(j);
	}
}

void runner_shutdown(void)
{
	stop_spawners();
	if (spawners.efd_ev) {
		event_free(spawners.efd_ev);
		spawners.efd_ev = NULL;
	}
	if (spawners.efd >= 0) {
		close(spawners.efd);
		spawners.efd = -1;
	}
	if (sigchld_ev) {
		event_free(sigchld_ev);
		sigchld_ev = NULL;
	}
}

int runner_active(void)
{
	return nactive;
}

void runner_kill_all(void)
{
	struct hook_run *r;
	TAILQ_FOREACH(r, &active, link)
		signal_group(r, SIGKILL);
}

/* The body on stdin: an anonymous memory file, so a hook may read it at its
 * own pace (or not at all) and hookd never blocks writing a pipe. */
static int make_input(const unsigned char *data, size_t len)
{
	int fd = memfd_create("hookd-body", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	/* pwrite leaves the offset at 0, where the hook starts reading. */
	size_t off = 0;
	while (off < len) {
		ssize_t w = pwrite(fd, data + off, len - off, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	return fd;
}

static void *spawner_main(void *unused)
{
	(void)unused;
	for (;;) {
		pthread_mutex_lock(&spawners.lock);
		while (!spawners.stopping && STAILQ_EMPTY(&spawners.todo))
			pthread_cond_wait(&spawners.wake, &spawners.lock);
		if (spawners.stopping) {
			pthread_mutex_unlock(&spawners.lock);
			return NULL;
		}
		struct spawn_job *j = STAILQ_FIRST(&spawners.todo);
		STAILQ_REMOVE_HEAD(&spawners.todo, link);
		pthread_mutex_unlock(&spawners.lock);

		spawn_child(j);
		if (runner_test_after_start)
			runner_test_after_start(j->path);
		/* The child has its stdin: here and now, not whenever the loop
		 * takes the job. */
		close_fd(&j->in_fd);

		pthread_mutex_lock(&spawners.lock);
		STAILQ_INSERT_TAIL(&spawners.done, j, link);
		bool wake = j->err != 0 || spawners.want_wake;
		pthread_mutex_unlock(&spawners.lock);
		if (wake) {
			uint64_t one = 1;
			ssize_t w = write(spawners.efd, &one, sizeof(one));
			(void)w;
		}
	}
}

/* How many spawner threads: the CPUs this process may run on (its
 * affinity, which a cpuset or systemd's CPUAffinity narrows), bounded. */
static int spawner_count(void)
{
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : SPAWNERS_MIN;
	return n < SPAWNERS_MIN ? SPAWNERS_MIN : n > SPAWNERS_MAX ? SPAWNERS_MAX : n;
}

/* Starts the spawner threads on first use, with every signal blocked (they
 * go to the loop, and a vfork child starts with them blocked) and small
 * stacks (they only start processes). */
static int start_spawners(void)
{
	if (spawners.nthreads > 0)
		return 0;
	if (spawners.efd < 0)
		return EINVAL; /* runner_init was not called */
	note_signals_to_reset();
	/* In runner_given_back's order. */
	runner_given_back[0].known = secrecy_hook_core_limit(&runner_given_back[0].rl);
	runner_given_back[1].known = fdlimit_hook_limit(&runner_given_back[1].rl);
	pthread_attr_t ta;
	pthread_attr_init(&ta);
	pthread_attr_setstacksize(&ta, 256 * 1024);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = 0;
	int want = spawner_count();
	for (int i = 0; i < want; i++) {
		e = pthread_create(&spawners.threads[i], &ta, spawner_main, NULL);
		if (e)
			break;
		spawners.nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&ta);
	return spawners.nthreads > 0 ? 0 : e;
}

/* Appends s to the job's block at *at, returns where it went. */
static char *job_put(char **at, const char *s, size_t len)
{
	char *dst = *at;
	memcpy(dst, s, len + 1);
	*at += len + 1;
	return dst;
}

/* The job's own copy of what the thread reads (the caller's environment
 * changes as soon as runner_start returns), in one allocation with the
 * job: the job, the environment's pointers, then every string. */
static struct spawn_job *spawn_job_new(const struct runner_params *p, int in_fd, int out_fd,
                                       int err_fd)
{
	size_t n = 0, bytes = strlen(p->path) + 1 + strlen(p->dir) + 1;
	while (p->envp && p->envp[n])
		bytes += strlen(p->envp[n++]) + 1;
	size_t head = sizeof(struct spawn_job) + (n + 1) * sizeof(char *);
	struct spawn_job *j = xmalloc(head + bytes);
	memset(j, 0, sizeof(*j));
	j->envp = (char **)(j + 1);
	char *at = (char *)j + head;
	j->path = job_put(&at, p->path, strlen(p->path));
	j->dir = job_put(&at, p->dir, strlen(p->dir));
	for (size_t i = 0; i < n; i++) {
		/* Copied as it is measured: one pass over each string, not two. */
		j->envp[i] = at;
		at = stpcpy(at, p->envp[i]) + 1;
	}
	j->envp[n] = NULL;
	j->in_fd = in_fd;
	j->out_fd = out_fd;
	j->err_fd = err_fd;
	j->limits = p->limits;
	return j;
}

void runner_release(void)
{
	if (STAILQ_EMPTY(&spawners.held))
		return;
	pthread_mutex_lock(&spawners.lock);
	STAILQ_CONCAT(&spawners.todo, &spawners.held);
	pthread_cond_broadcast(&spawners.wake);
	pthread_mutex_unlock(&spawners.lock);
}

void runner_cancel_held(const char *why)
{
	/* Only those held now: a run ending here may start others, held for
	 * a batch of their own. */
	STAILQ_HEAD(, spawn_job) held = STAILQ_HEAD_INITIALIZER(held);
	STAILQ_CONCAT(&held, &spawners.held);
	while (!STAILQ_EMPTY(&held)) {
		struct spawn_job *j = STAILQ_FIRST(&held);
		STAILQ_REMOVE_HEAD(&held, link);
		struct hook_run *r = j->run;
		r->res.ran = false;
		r->res.start_may_pass = true;
		r->res.start_cancelled = true;
		r->res.error = xstrdup(why);
		spawn_job_free(j);
		finish(r); /* closes the pipes: nothing ever wrote them */
	}
}

/*
 * fd moved to 3 or above (hookd started with 0, 1 or 2 closed): the child
 * puts its three fds at 0, 1 and 2 one after the other, and one of them
 * sitting where another goes would be overwritten first.
 */
static int above_stdio(int fd)
{
	if (fd < 0 || fd > 2)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int e = errno;
	close(fd);
	errno = e;
	return moved;
}

/* A pipe for the hook's stdout or stderr: the write end the child's, the
 * read end non-blocking. */
static int output_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	fds[1] = above_stdio(fds[1]);
	/* pipe2 set nothing but O_CLOEXEC (a descriptor flag, not a status
	 * flag): the read end's status flags are O_RDONLY alone. */
	fcntl(fds[0], F_SETFL, O_RDONLY | O_NONBLOCK);
	return fds[1] < 0 ? -1 : 0;
}

static void output_stream_open(struct hook_run *r, size_t i, int fd, int write_fd)
{
	struct output_stream *o = &r->out[i];
	o->run = r;
	o->fd = fd;
	o->write_fd = write_fd;
	o->index = i;
	o->is_err = i == 1;
	o->ev = event_new(r->base, fd, EV_READ | EV_PERSIST, runner_on_output, o);
	event_add(o->ev, NULL);
}

struct hook_run *runner_start(struct event_base *base, const struct runner_params *p,
                              hook_done_fn done, void *arg, struct hook_result *res)
{
	result_clear(res);
	int in_fd = above_stdio(make_input(p->input, p->input_len));
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	int e = 0;
	if (in_fd < 0 || output_pipe(out) < 0 || output_pipe(err) < 0) {
		e = errno;
		goto fail;
	}
	if ((e = start_spawners()) != 0)
		goto fail;
	struct spawn_job *j = spawn_job_new(p, in_fd, out[1], err[1]);

	struct hook_run *r = xmalloc(sizeof(*r));
	memset(r, 0, offsetof(struct hook_run, line));
	result_clear(&r->res);
	r->base = base;
	r->started_ms = now_mono_ms();
	r->timeout_ms = p->timeout_ms;
	r->kill_grace_ms = p->kill_grace_ms;
	r->done = done;
	r->arg = arg;
	r->res.ran = true;
	r->rel = xstrdup(p->rel);
	r->endpoint = xstrdup(p->endpoint ? p->endpoint : "");
	r->event = xstrdup(p->event ? p->event : "");
	r->delivery_id = xstrdup(p->delivery_id ? p->delivery_id : "");
	r->who = (struct log_delivery){r->endpoint, r->event, r->delivery_id, p->attempt};
	/* The write ends stay open until the run is over (write_fd). */
	output_stream_open(r, 0, out[0], out[1]);
	output_stream_open(r, 1, err[0], err[1]);
	r->timeout_ev = evtimer_new(base, on_timeout, r);
	struct timeval tv = {(time_t)(p->timeout_ms / 1000), (suseconds_t)(p->timeout_ms % 1000) * 1000};
	evtimer_add(r->timeout_ev, &tv);
	TAILQ_INSERT_TAIL(&active, r, link);
	nactive++;

	j->run = r;
	j->reaps_before = reaps;
	if (p->hold) {
		STAILQ_INSERT_TAIL(&spawners.held, j, link);
		return r;
	}
	pthread_mutex_lock(&spawners.lock);
	STAILQ_INSERT_TAIL(&spawners.todo, j, link);
	pthread_mutex_unlock(&spawners.lock);
	pthread_cond_signal(&spawners.wake);
	return r;

fail:
	if (in_fd >= 0)
		close(in_fd);
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	res->ran = false;
	res->start_may_pass = start_may_pass(STAGE_SETUP, e);
	res->error = xasprintf("%s: %s", stage_names[STAGE_SETUP], strerror(e));
	return NULL;
}
