/*
 * What the runner's files share: runner.c (the loop's side of a hook: its
 * run, the spawner threads and their queue, reaping, the time limit),
 * runner_output.c (its output read, kept and logged) and spawn.c (a start
 * on a spawner thread, and the child up to execve). Only they include it.
 */
#ifndef HOOKD_RUNNER_PRIVATE_H
#define HOOKD_RUNNER_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <event2/util.h>

#include "log.h"
#include "runner.h"

struct event;
struct event_base;

/* One of a hook's two output pipes: stdout is logged at info, stderr at
 * warn (`journalctl -p warning` shows what a hook says went wrong). */
struct output_stream {
	struct hook_run *run;
	int fd; /* the read end, -1 once closed */
	/* The child's end, held until the hook is done: the hook's exit ends
	 * its run (SIGCHLD), and an EOF at the same moment only woke the
	 * loop a second time, for every hook. */
	int write_fd;
	struct event *ev;
	bool is_err;
	/* The line being gathered for the log (hook_run.line[index]). */
	size_t index, line_len;
	bool line_cut;
	/* The end of the stream's last line, not yet in the tail's ring
	 * (hook_run.pend[index]): a line goes there whole, so that a line of
	 * the other stream never lands inside it. */
	size_t pend_len;
};

/*
 * The last lines the rate limit dropped, to be logged when the hook ends:
 * the lines just before a hook exits are where it says why. For each
 * stream at most TAIL_LINES lines, and only those of them within its last
 * OUTPUT_TAIL_MAX bytes (a ring; a line records where it starts in it).
 * One tail a stream: a flood on stdout, read after the stderr line that
 * said why, must not push that line out.
 */
#define TAIL_LINES 20

struct tail_line {
	uint64_t at; /* where in its stream's tail_buf of bytes it starts */
	uint16_t len;
	bool cut;
};

struct tail {
	struct tail_line line[TAIL_LINES];
	size_t next, count;
	uint64_t wpos;
};

struct hook_run {
	TAILQ_ENTRY(hook_run) link;
	struct event_base *base;
	pid_t pid;          /* 0 while a spawner thread starts it */
	int pending_signal; /* to send to its group once the pid is known */
	struct output_stream out[2]; /* stdout, stderr */
	struct event *timeout_ev; /* the time limit, then the kill grace */
	bool term_sent;
	int64_t started_ms;
	int64_t timeout_ms, kill_grace_ms;
	hook_done_fn done;
	void *arg;

	/* Output bookkeeping: a ring for the tail, a line for the log. */
	size_t ring_len, ring_head;
	/* When the last LOG_LINES_PER_SEC lines were logged (a ring): a line
	 * is logged only if the oldest of them is a second old, so no second
	 * anywhere holds more than LOG_LINES_PER_SEC lines. */
	int64_t logged_at[LOG_LINES_PER_SEC];
	size_t logged_next;
	long dropped; /* since the last line logged */
	struct tail tail[2]; /* stdout, stderr */
	char *rel, *endpoint, *event, *delivery_id;
	struct log_delivery who; /* its output lines' keys: the strings above */

	/* The buffers last: a new run zeroes only what comes before them
	 * (9 KiB of zeroes a hook were a visible part of its cost). */
	char line[2][LOG_LINE_MAX];
	char pend[2][LOG_LINE_MAX];
	char ring[OUTPUT_TAIL_MAX];
	char tail_buf[2][OUTPUT_TAIL_MAX];
	struct hook_result res;
};

/* A start: queued by the loop (runner.c), done on a spawner thread by
 * spawn_child. */
struct spawn_job {
	STAILQ_ENTRY(spawn_job) link;
	struct hook_run *run;
	/* In: read by the thread; they point into the job's own block. */
	char *path, *dir;
	char **envp;
	int in_fd, out_fd, err_fd;
	struct rlimits limits;
	uint64_t reaps_before; /* `reaps` when it was queued */
	/* Out: written by the thread. */
	pid_t pid; /* with err set: a fork child that reported the failure */
	int err, stage;
};

/* Where a fork+exec child failed, reported to the parent with errno. */
enum child_stage { STAGE_SETUP, STAGE_LIMIT_NOFILE, STAGE_LIMIT_NPROC, STAGE_LIMIT_MEMORY,
                   STAGE_LIMIT_CPU, STAGE_USER, STAGE_CHDIR, STAGE_EXEC };
struct child_error {
	int stage;
	int err;
};

/* The limits hookd changed for itself, given back to every child (spawn.c
 * reads them there); runner.c fills them in as the spawner threads start. */
struct given_back {
	int resource;
	bool known;
	struct rlimit rl;
};
extern struct given_back runner_given_back[2];

/* Notes the signals a child puts back to the default (spawn.c); on the
 * loop, before the spawner threads start. */
void note_signals_to_reset(void);

/* Starts j's hook, on a spawner thread; j->pid, or j->err and j->stage. */
void spawn_child(struct spawn_job *j);

/* At the run's end: the streams closed, the write ends too, the dropped
 * lines counted and their tail logged (runner_output.c). */
void runner_close_output(struct hook_run *r);
/* Reads what a stream's pipe holds now, at most max_reads reads. */
void runner_read_output(struct output_stream *o, int max_reads);
/* A stream's read event (arg: the stream). */
void runner_on_output(evutil_socket_t fd, short what, void *arg);

#endif
