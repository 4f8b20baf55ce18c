#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"

struct hook_run {
	TAILQ_ENTRY(hook_run) link;
	struct event_base *base;
	pid_t pid;
	int out_fd; /* read end of the hooks's stdout+stderr, -1 once closed */
	struct event *out_ev;
	struct event *timeout_ev; /* the time limit, then the kill grace */
	bool term_sent;
	int64_t started_ms;
	int64_t timeout_ms, kill_grace_ms;
	hook_done_fn done;
	void *arg;

	/* Output bookkeeping: a ring for the tail, a line for the log. */
	size_t ring_len, ring_head;
	size_t line_len;
	bool line_cut;
	/* When the last LOG_LINES_PER_SEC lines were logged (a ring): a line
	 * is logged only if the oldest of them is a second old, so no second
	 * anywhere holds more than LOG_LINES_PER_SEC lines. */
	int64_t logged_at[LOG_LINES_PER_SEC];
	size_t logged_next;
	long dropped;
	char *rel, *endpoint, *event, *delivery_id;

	/* The buffers last: a new run zeroes only what comes before them
	 * (9 KiB of zeroes a hook were a visible part of its cost). */
	char line[LOG_LINE_MAX];
	char ring[OUTPUT_TAIL_MAX];
	struct hook_result res;
};

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
static bool passthrough;

/*
 * posix_spawn's attributes, the same for every hook, and its file actions
 * for the last (stdin fd, output fd, cwd). glibc checks both fds of each
 * adddup2 against RLIMIT_NOFILE, a system call each, six a hook; and in a
 * steady state the fds (the lowest free ones) and the directory are the
 * same from one hook to the next. The file actions name fd numbers, not
 * files, so reusing them is exact.
 */
static struct {
	bool attr_ready, fa_ready;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	int in_fd, out_fd;
	char *dir;
} spawn_cache;

void runner_set_output_passthrough(bool on)
{
	passthrough = on;
}

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

/* The line that counts the lines a hook's rate limit dropped. */
static void log_dropped(struct hook_run *r)
{
	if (r->dropped == 0)
		return;
	char n[32];
	snprintf(n, sizeof(n), "%ld", r->dropped);
	struct log_kv kv[] = {
		{"endpoint", r->endpoint}, {"event", r->event}, {"id", r->delivery_id},
		{"hook", r->rel}, {"dropped", n},
	};
	log_kv(LOG_LVL_WARN, "output lines dropped", kv, ARRAY_SIZE(kv));
	r->dropped = 0;
}

static void log_output_line(struct hook_run *r, const char *line, size_t len, bool cut)
{
	int64_t now = now_mono_ms();
	int64_t *oldest = &r->logged_at[r->logged_next];
	if (*oldest != 0 && now - *oldest < 1000) {
		r->dropped++;
		return;
	}
	*oldest = now;
	r->logged_next = (r->logged_next + 1) % LOG_LINES_PER_SEC;
	/* Lines were dropped since the last one logged: say how many first. */
	log_dropped(r);
	char *text = xstrndup(line, len);
	/* A NUL byte in the output would end the value early; show it as '?'. */
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\0')
			text[i] = '?';
	}
	struct log_kv kv[] = {
		{"endpoint", r->endpoint}, {"event", r->event}, {"id", r->delivery_id},
		{"hook", r->rel}, {"line", text}, {"cut", cut ? "true" : NULL},
	};
	log_kv(LOG_LVL_INFO, "output", kv, ARRAY_SIZE(kv));
	free(text);
}

/* The tail: keep the last OUTPUT_TAIL_MAX bytes in a ring. */
static void keep_tail(struct hook_run *r, const char *buf, size_t n)
{
	if (n >= OUTPUT_TAIL_MAX) {
		memcpy(r->ring, buf + n - OUTPUT_TAIL_MAX, OUTPUT_TAIL_MAX);
		r->ring_head = 0;
		r->ring_len = OUTPUT_TAIL_MAX;
		return;
	}
	while (n > 0) {
		size_t pos = (r->ring_head + r->ring_len) % OUTPUT_TAIL_MAX;
		size_t k = OUTPUT_TAIL_MAX - pos < n ? OUTPUT_TAIL_MAX - pos : n;
		memcpy(r->ring + pos, buf, k);
		size_t over = r->ring_len + k > OUTPUT_TAIL_MAX ? r->ring_len + k - OUTPUT_TAIL_MAX : 0;
		r->ring_len += k - over;
		r->ring_head = (r->ring_head + over) % OUTPUT_TAIL_MAX;
		buf += k;
		n -= k;
	}
}

static void take_output(struct hook_run *r, const char *buf, size_t n)
{
	if (passthrough) {
		size_t off = 0;
		while (off < n) {
			ssize_t w = write(STDERR_FILENO, buf + off, n - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	keep_tail(r, buf, n);
	if (passthrough)
		return;
	/* The log: one line a line, cut at LOG_LINE_MAX; the rest of a cut
	 * line is skipped up to its newline. */
	const char *p = buf, *end = buf + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		if (!r->line_cut) {
			size_t room = LOG_LINE_MAX - r->line_len;
			size_t k = (size_t)(stop - p) < room ? (size_t)(stop - p) : room;
			memcpy(r->line + r->line_len, p, k);
			r->line_len += k;
			if ((size_t)(stop - p) > room) {
				log_output_line(r, r->line, r->line_len, true);
				r->line_len = 0;
				r->line_cut = true;
			}
		}
		if (!nl)
			break;
		if (!r->line_cut)
			log_output_line(r, r->line, r->line_len, false);
		r->line_len = 0;
		r->line_cut = false;
		p = nl + 1;
	}
}

static void close_output(struct hook_run *r)
{
	if (r->out_ev) {
		event_free(r->out_ev);
		r->out_ev = NULL;
	}
	if (r->out_fd >= 0) {
		close(r->out_fd);
		r->out_fd = -1;
	}
	if (r->line_len > 0 && !r->line_cut)
		log_output_line(r, r->line, r->line_len, false);
	r->line_len = 0;
	log_dropped(r);
}

/* Reads what the pipe holds now; at most `max_reads` reads. */
static void read_output(struct hook_run *r, int max_reads)
{
	char buf[8192];
	for (int i = 0; i < max_reads && r->out_fd >= 0; i++) {
		ssize_t n = read(r->out_fd, buf, sizeof(buf));
		if (n > 0) {
			take_output(r, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EOF (every writer closed it) or an error: stop reading. */
		close_output(r);
		return;
	}
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
	read_output(arg, 4);
}

static void finish(struct hook_run *r)
{
	/* What the hook wrote before it exited is in the pipe already; what a
	 * background process writes later is not the hook's. Read one pipe's
	 * worth at most, then close. */
	read_output(r, 8);
	close_output(r);
	if (r->timeout_ev) {
		event_free(r->timeout_ev);
		r->timeout_ev = NULL;
	}
	if (r->res.timed_out) {
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

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *r = arg;
	if (!r->term_sent) {
		r->term_sent = true;
		r->res.timed_out = true;
		kill(-r->pid, SIGTERM);
		struct timeval tv = {(time_t)(r->kill_grace_ms / 1000),
		                     (suseconds_t)(r->kill_grace_ms % 1000) * 1000};
		evtimer_add(r->timeout_ev, &tv);
	} else {
		kill(-r->pid, SIGKILL);
	}
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	/* SIGCHLDs coalesce: reap everything that has exited. */
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		struct hook_run *r;
		TAILQ_FOREACH(r, &active, link) {
			if (r->pid == pid)
				break;
		}
		if (!r)
			continue;
		if (WIFEXITED(status)) {
			r->res.exit_code = WEXITSTATUS(status);
		} else if (WIFSIGNALED(status)) {
			r->res.exit_code = -1;
			r->res.signal = WTERMSIG(status);
		}
		finish(r);
	}
}

int runner_init(struct event_base *base)
{
	signal(SIGPIPE, SIG_IGN);
	if (sigchld_ev)
		return 0;
	sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if (!sigchld_ev || evsignal_add(sigchld_ev, NULL) < 0)
		return -1;
	return 0;
}

void runner_shutdown(void)
{
	if (spawn_cache.fa_ready) {
		posix_spawn_file_actions_destroy(&spawn_cache.fa);
		free(spawn_cache.dir);
		spawn_cache.fa_ready = false;
	}
	if (spawn_cache.attr_ready) {
		posix_spawnattr_destroy(&spawn_cache.attr);
		spawn_cache.attr_ready = false;
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
		kill(-r->pid, SIGKILL);
}

static bool limits_set(const struct rlimits *l)
{
	return l->nofile >= 0 || l->nproc >= 0 || l->memory >= 0 || l->cpu >= 0;
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

static int apply_limit(int resource, int64_t value)
{
	if (value < 0)
		return 0;
	struct rlimit rl = {(rlim_t)value, (rlim_t)value};
	return setrlimit(resource, &rl);
}

/* Where a fork+exec child failed, reported to the parent with errno. */
enum child_stage { STAGE_SETUP, STAGE_LIMIT_NOFILE, STAGE_LIMIT_NPROC, STAGE_LIMIT_MEMORY,
                   STAGE_LIMIT_CPU, STAGE_EXEC };
struct child_error {
	int stage;
	int err;
};

/*
 * fork+exec, for hooks with resource limits (posix_spawn cannot set
 * them). A failure in the child is sent back over a close-on-exec pipe,
 * so it is never mistaken for the hook's own exit status 127, and says
 * which step failed (a limit the kernel, or valgrind, refuses is not an
 * exec failure).
 */
static int spawn_with_limits(const struct runner_params *p, int in_fd, int out_fd, pid_t *pid,
                             int *stage)
{
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) < 0)
		return errno;
	pid_t child = fork();
	if (child < 0) {
		int e = errno;
		close(errpipe[0]);
		close(errpipe[1]);
		return e;
	}
	if (child == 0) {
		sigset_t none;
		sigemptyset(&none);
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		struct child_error ce = {STAGE_SETUP, 0};
		if (setpgid(0, 0) < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 ||
		    dup2(out_fd, 2) < 0 || chdir(p->dir) < 0)
			ce.err = errno;
		/* Every fd of hookd's is close-on-exec; this makes sure of it
		 * (a library's fd, a connection) but must keep errpipe, which
		 * closes on exec anyway. An old kernel without close_range
		 * leaves it to close-on-exec. */
		if (!ce.err) {
			int keep = errpipe[1];
			if (keep > 3)
				close_range(3, (unsigned)keep - 1, 0);
			close_range((unsigned)keep + 1, ~0U, 0);
		}
		static const struct {
			int resource;
			int stage;
		} lims[] = {
			{RLIMIT_NOFILE, STAGE_LIMIT_NOFILE}, {RLIMIT_NPROC, STAGE_LIMIT_NPROC},
			{RLIMIT_AS, STAGE_LIMIT_MEMORY}, {RLIMIT_CPU, STAGE_LIMIT_CPU},
		};
		const int64_t values[] = {p->limits.nofile, p->limits.nproc, p->limits.memory,
		                          p->limits.cpu};
		for (size_t i = 0; i < ARRAY_SIZE(lims) && !ce.err; i++) {
			if (apply_limit(lims[i].resource, values[i]) < 0) {
				ce.stage = lims[i].stage;
				ce.err = errno;
			}
		}
		if (!ce.err) {
			char *argv[] = {(char *)p->path, NULL};
			execve(p->path, argv, p->envp);
			ce.stage = STAGE_EXEC;
			ce.err = errno;
		}
		ssize_t w = write(errpipe[1], &ce, sizeof(ce));
		(void)w;
		_exit(127);
	}
	close(errpipe[1]);
	struct child_error ce = {STAGE_EXEC, 0};
	ssize_t n;
	do {
		n = read(errpipe[0], &ce, sizeof(ce));
	} while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof(ce) && ce.err != 0) {
		/* The child has exited with 127 already; reap it here so the
		 * SIGCHLD handler does not look for it. */
		waitpid(child, NULL, 0);
		*stage = ce.stage;
		return ce.err;
	}
	*pid = child;
	return 0;
}

static posix_spawn_file_actions_t *file_actions(int in_fd, int out_fd, const char *dir)
{
	if (spawn_cache.fa_ready && spawn_cache.in_fd == in_fd && spawn_cache.out_fd == out_fd &&
	    strcmp(spawn_cache.dir, dir) == 0)
		return &spawn_cache.fa;
	if (spawn_cache.fa_ready) {
		posix_spawn_file_actions_destroy(&spawn_cache.fa);
		free(spawn_cache.dir);
		spawn_cache.fa_ready = false;
	}
	posix_spawn_file_actions_t *fa = &spawn_cache.fa;
	posix_spawn_file_actions_init(fa);
	if (posix_spawn_file_actions_adddup2(fa, in_fd, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, out_fd, 1) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, out_fd, 2) != 0 ||
	    posix_spawn_file_actions_addchdir_np(fa, dir) != 0 ||
	    /* A hook gets fds 0, 1 and 2 and nothing else, even if some fd
	     * escaped close-on-exec. */
	    posix_spawn_file_actions_addclosefrom_np(fa, 3) != 0) {
		posix_spawn_file_actions_destroy(fa);
		return NULL;
	}
	spawn_cache.in_fd = in_fd;
	spawn_cache.out_fd = out_fd;
	spawn_cache.dir = xstrdup(dir);
	spawn_cache.fa_ready = true;
	return fa;
}

static posix_spawnattr_t *spawn_attr(void)
{
	if (spawn_cache.attr_ready)
		return &spawn_cache.attr;
	posix_spawnattr_t *attr = &spawn_cache.attr;
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawnattr_init(attr);
	posix_spawnattr_setsigdefault(attr, &all);
	posix_spawnattr_setsigmask(attr, &none);
	posix_spawnattr_setpgroup(attr, 0);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
	                                   POSIX_SPAWN_SETSIGMASK);
	spawn_cache.attr_ready = true;
	return attr;
}

static int spawn_plain(const struct runner_params *p, int in_fd, int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t *fa = file_actions(in_fd, out_fd, p->dir);
	if (!fa)
		return ENOMEM;
	char *argv[] = {(char *)p->path, NULL};
	/* glibc's posix_spawn reports a failed exec as its return value. */
	return posix_spawn(pid, p->path, fa, spawn_attr(), argv, p->envp);
}

struct hook_run *runner_start(struct event_base *base, const struct runner_params *p,
                              hook_done_fn done, void *arg, struct hook_result *res)
{
	result_clear(res);
	int in_fd = make_input(p->input, p->input_len);
	int out[2] = {-1, -1};
	int e = 0, stage = STAGE_EXEC;
	if (in_fd < 0 || pipe2(out, O_CLOEXEC) < 0) {
		e = errno;
		goto fail;
	}
	pid_t pid;
	e = limits_set(&p->limits) ? spawn_with_limits(p, in_fd, out[1], &pid, &stage)
	                           : spawn_plain(p, in_fd, out[1], &pid);
	if (e)
		goto fail;
	close(in_fd);
	close(out[1]);
	/* pipe2 set nothing but O_CLOEXEC (a descriptor flag, not a status
	 * flag): the read end's status flags are O_RDONLY alone. */
	fcntl(out[0], F_SETFL, O_RDONLY | O_NONBLOCK);

	struct hook_run *r = xmalloc(sizeof(*r));
	memset(r, 0, offsetof(struct hook_run, line));
	result_clear(&r->res);
	r->base = base;
	r->pid = pid;
	r->out_fd = out[0];
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
	r->out_ev = event_new(base, r->out_fd, EV_READ | EV_PERSIST, on_output, r);
	r->timeout_ev = evtimer_new(base, on_timeout, r);
	event_add(r->out_ev, NULL);
	struct timeval tv = {(time_t)(p->timeout_ms / 1000), (suseconds_t)(p->timeout_ms % 1000) * 1000};
	evtimer_add(r->timeout_ev, &tv);
	TAILQ_INSERT_TAIL(&active, r, link);
	nactive++;
	return r;

fail:
	if (in_fd >= 0)
		close(in_fd);
	if (out[0] >= 0) {
		close(out[0]);
		close(out[1]);
	}
	res->ran = false;
	static const char *const stage_names[] = {
		[STAGE_SETUP] = "cannot set up the hook's process",
		[STAGE_LIMIT_NOFILE] = "cannot apply limit_nofile",
		[STAGE_LIMIT_NPROC] = "cannot apply limit_nproc",
		[STAGE_LIMIT_MEMORY] = "cannot apply limit_memory",
		[STAGE_LIMIT_CPU] = "cannot apply limit_cpu",
		[STAGE_EXEC] = "exec failed",
	};
	res->error = xasprintf("%s: %s", stage_names[stage], strerror(e));
	return NULL;
}
