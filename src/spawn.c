/*
 * A hook's process started, on a spawner thread (runner.c queues the job and
 * runs the threads): vfork, then in the child the signals put back, the
 * fds, the limits, the user, the workdir and execve; what the child could
 * not do comes back in the job. Also what only the child reads, set before
 * the threads start: the hook user, the limits given back, the signals to
 * reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hookuser.h"
#include "runner_private.h"
#include "util.h"

/* Who the children become (NULL: they stay hookd's uid), and the limits
 * hookd changed for itself, given back to them: the core limit it lowered
 * (secrecy.h) and the open-files limit it raised (fdlimit.h). Set before
 * the spawner threads start; only read afterwards. */
static const struct hook_user *hook_user;
struct given_back runner_given_back[] = {{RLIMIT_CORE, false, {0, 0}},
                                         {RLIMIT_NOFILE, false, {0, 0}}};

void runner_set_hook_user(const struct hook_user *hu)
{
	/* hookd's own user and group need no switch, and hookd then kept no
	 * capability to make one. */
	hook_user = hu && hook_user_switches(hu, geteuid(), getegid()) ? hu : NULL;
}

const struct hook_user *runner_hook_user(void)
{
	return hook_user;
}

static int apply_limit(int resource, int64_t value)
{
	if (value < 0)
		return 0;
	struct rlimit rl = {(rlim_t)value, (rlim_t)value};
	return setrlimit(resource, &rl);
}


/* dup2 for the child's stdin/stdout/stderr. An fd already where it goes
 * (hookd started with 0, 1 or 2 closed) would keep its close-on-exec flag
 * through dup2: cleared instead, as posix_spawn does. */
static int move_fd(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(from, to);
}

/*
 * The signals whose action is not the default when the spawner threads
 * start: hookd's handlers, SIGPIPE ignored, and anything hookd inherited
 * ignored or a library caught. A child puts these, and only these, back
 * to the default: one system call for each of the 64 signals was a
 * visible part of starting a hook. The signals hookd itself ever changes
 * are always among them, whatever their action at that moment, so a
 * handler set later (those at shutdown) is covered too.
 */
static int child_resets[NSIG];
static int nchild_resets;

void note_signals_to_reset(void)
{
	/* Every signal hookd catches or ignores, at any time, must be here. */
	static const int ours[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE, SIGCHLD};
	nchild_resets = 0;
	for (int s = 1; s < NSIG; s++) {
		bool reset = false;
		for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
			reset |= ours[i] == s;
		struct sigaction sa;
		/* glibc refuses its own internal signals: they are caught, so
		 * execve resets them. */
		if (!reset && sigaction(s, NULL, &sa) == 0)
			reset = sa.sa_handler != SIG_DFL;
		if (reset)
			child_resets[nchild_resets++] = s;
	}
}

#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer must not see a child run on its parent's stack: fork,
 * and the child's failure comes back over a pipe. */
#define spawn_fork fork
#define CHILD_SHARES_MEMORY 0
#else
#define spawn_fork vfork
#define CHILD_SHARES_MEMORY 1
#endif

/* In the child: why it cannot become the hook, then exit. A vfork child
 * shares its parent's memory, and the parent runs again only once it has
 * exited: it writes the job itself (as glibc's posix_spawn does). A fork
 * child writes the pipe. */
static void child_fail(struct spawn_job *j, int errfd, int stage, int err)
{
	if (CHILD_SHARES_MEMORY) {
		j->stage = stage;
		j->err = err;
	} else {
		struct child_error ce = {stage, err};
		ssize_t w = write(errfd, &ce, sizeof(ce));
		(void)w;
	}
	_exit(127);
}

/*
 * Starts j's hook, on a spawner thread: vfork, then in the child only
 * async-signal-safe calls up to execve (it shares the memory of a parent
 * that has other threads, and writes nothing but its own locals and, if
 * it fails, the job's outcome). This is posix_spawn's method without what
 * glibc adds to it: a stack mapped and unmapped for every child (a TLB
 * flush on every core that runs one of hookd's threads) and a getrlimit
 * for each file action; and it sets the resource limits posix_spawn
 * cannot. What the child could not do is never mistaken for the hook's
 * own exit status 127, and says which step failed (a limit the kernel, or
 * valgrind, refuses is not an exec failure).
 */
void spawn_child(struct spawn_job *j)
{
	int errpipe[2] = {-1, -1};
	j->stage = STAGE_SETUP;
	j->err = 0;
	if (!CHILD_SHARES_MEMORY && pipe2(errpipe, O_CLOEXEC) < 0) {
		j->err = errno;
		return;
	}
	/* Made before: the child only reads them. */
	sigset_t none;
	sigemptyset(&none);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	char *argv[] = {j->path, NULL};
	pid_t child = spawn_fork();
	if (child < 0) {
		j->err = errno;
		if (!CHILD_SHARES_MEMORY) {
			close(errpipe[0]);
			close(errpipe[1]);
		}
		return;
	}
	if (child == 0) {
		/* Every handler back to the default before any signal can be
		 * delivered here (the thread had them all blocked): a handler
		 * of hookd's must never run in this child. Ignored ones too:
		 * SIGPIPE, ignored by hookd, would stay ignored across exec. */
		for (int i = 0; i < nchild_resets; i++)
			sigaction(child_resets[i], &dfl, NULL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (setpgid(0, 0) < 0 || move_fd(j->in_fd, 0) < 0 || move_fd(j->out_fd, 1) < 0 ||
		    move_fd(j->err_fd, 2) < 0)
			child_fail(j, errpipe[1], STAGE_SETUP, errno);
		/* Every fd of hookd's is close-on-exec; this makes sure of it
		 * (a library's fd, a connection) but must keep the error pipe,
		 * if there is one, which closes on exec anyway. An old kernel
		 * without close_range leaves it to close-on-exec. */
		int keep = errpipe[1];
		if (keep > 3)
			close_range(3, (unsigned)keep - 1, 0);
		close_range(keep < 3 ? 3U : (unsigned)keep + 1, ~0U, 0);
		/* Within the hard limits hookd kept: cannot fail (but for a
		 * hard limit lowered from outside since, and then the child
		 * keeps hookd's). First, so that a configured limit wins. */
		for (size_t i = 0; i < ARRAY_SIZE(runner_given_back); i++)
			if (runner_given_back[i].known)
				setrlimit(runner_given_back[i].resource, &runner_given_back[i].rl);
		static const struct {
			int resource;
			int stage;
		} lims[] = {
			{RLIMIT_NOFILE, STAGE_LIMIT_NOFILE}, {RLIMIT_NPROC, STAGE_LIMIT_NPROC},
			{RLIMIT_AS, STAGE_LIMIT_MEMORY}, {RLIMIT_CPU, STAGE_LIMIT_CPU},
		};
		const int64_t values[] = {j->limits.nofile, j->limits.nproc, j->limits.memory,
		                          j->limits.cpu};
		for (size_t i = 0; i < ARRAY_SIZE(lims); i++) {
			if (apply_limit(lims[i].resource, values[i]) < 0)
				child_fail(j, errpipe[1], lims[i].stage, errno);
		}
		/* Last before exec: from here on the child could not undo a
		 * step that needs hookd's powers. */
		if (hook_user) {
			int r = hook_user_become(hook_user);
			if (r < 0)
				child_fail(j, errpipe[1], STAGE_USER, -r);
		}
		/* As the hook's user: a workdir it may not enter is its error
		 * now, not a cwd it cannot use. */
		if (chdir(j->dir) < 0)
			child_fail(j, errpipe[1], STAGE_CHDIR, errno);
		execve(j->path, argv, j->envp);
		child_fail(j, errpipe[1], STAGE_EXEC, errno);
	}
	j->pid = child;
	if (CHILD_SHARES_MEMORY)
		return; /* j->stage and j->err are the child's, if it failed */
	close(errpipe[1]);
	struct child_error ce = {STAGE_EXEC, 0};
	ssize_t n;
	do {
		n = read(errpipe[0], &ce, sizeof(ce));
	} while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof(ce) && ce.err != 0) {
		/* The child exits 127 now; the loop reaps it (spawned()). */
		j->stage = ce.stage;
		j->err = ce.err;
	}
}
