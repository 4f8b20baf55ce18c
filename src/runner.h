/*
 * Running one hook: spawn it in a process group of its own with a clean
 * environment and the body on stdin, read its output as it comes, enforce
 * its time limit (SIGTERM to the group, SIGKILL after kill_grace), and
 * report its outcome once it has exited. A hook is finished when it exits:
 * what is then already in the pipe is read and the pipe closed, so a
 * background process holding it does not hold the delivery.
 */
#ifndef HOOKD_RUNNER_H
#define HOOKD_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct hook_run;

#define OUTPUT_TAIL_MAX 4096
#define LOG_LINE_MAX 1024
#define LOG_LINES_PER_SEC 100

struct hook_result {
	int exit_code;  /* -1: none (signalled or never ran) */
	int signal;     /* 0: none */
	bool timed_out;
	bool ran;       /* false: it could not be started */
	bool start_may_pass; /* not started for a reason that may pass: out of
	                      * fds, memory or processes, the file being written */
	bool start_cancelled; /* not started: held for a journal batch that was
	                       * lost (runner_cancel_held) */
	int64_t ms;
	char *error;    /* NULL, "exec failed: ...", "timed out after 30s" */
	char output[OUTPUT_TAIL_MAX]; /* the last bytes of stdout+stderr */
	size_t output_len;
};

struct rlimits {
	int64_t nofile, nproc, memory, cpu; /* -1: leave alone */
};

struct runner_params {
	const char *path;    /* absolute path of the executable */
	const char *dir;     /* cwd: workdir, else the hook's own directory */
	const char *rel;     /* name for logs */
	char *const *envp;
	const unsigned char *input; /* stdin bytes */
	size_t input_len;
	int64_t timeout_ms;
	int64_t kill_grace_ms;
	struct rlimits limits;
	/* For the log lines of the hook's output. */
	const char *endpoint, *event, *delivery_id;
	int attempt;
	/* The process is started only at the next runner_release(): the
	 * caller has a record of this run to commit first. */
	bool hold;
};

typedef void (*hook_done_fn)(const struct hook_result *res, void *arg);

/*
 * Starts a hook. On success returns the run; `done` is called once, from
 * the event loop, when it has finished. When it cannot be started at all,
 * returns NULL and fills *res (ran = false, error set, to be freed by the
 * caller); `done` is not called.
 */
struct hook_run *runner_start(struct event_base *base, const struct runner_params *p,
                              hook_done_fn done, void *arg, struct hook_result *res);

/* Starts the processes of the runs started with `hold`. */
void runner_release(void);

/* Ends the runs started with `hold` without starting them: each is done,
 * not run, with `why` as its error and start_may_pass and start_cancelled
 * set. */
void runner_cancel_held(const char *why);

/* Installs the SIGCHLD handler on base; call once before runner_start. The
 * caller ignores SIGPIPE first (hookd does at start): a hook that closes its
 * stdin early must not kill hookd. */
int runner_init(struct event_base *base);
void runner_shutdown(void);
/* Number of hooks running now. */
int runner_active(void);
/* Sends SIGKILL to every running hook's group (used when exiting on error). */
void runner_kill_all(void);

/* Hooks started from now on run as hu (hookuser.h), which must live as
 * long as the runner; NULL, or hu naming hookd's own ids: as hookd
 * itself. Set after the privilege drop, before the first start. */
struct hook_user;
void runner_set_hook_user(const struct hook_user *hu);
/* Who hooks switch to as they start; NULL: they run as hookd itself. */
const struct hook_user *runner_hook_user(void);

/* `hookd run`: hook output goes to sink as it comes, not to the log as
 * lines (the tail is kept either way). NULL: back to the log. */
void runner_set_output_sink(void (*sink)(const char *buf, size_t n));

/* Sees every hook's output as it is read, whatever else takes it (the
 * deliveries page's live output); endpoint and id may be NULL (`hookd
 * run`). NULL: none. */
typedef void (*runner_output_observer)(const char *endpoint, const char *delivery_id,
                                       const char *hook, const char *buf, size_t n, void *arg);
void runner_set_output_observer(runner_output_observer fn, void *arg);

const char *signal_name(int sig);

#endif
