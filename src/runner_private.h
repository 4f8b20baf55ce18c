/*
 * What the runner's files share: runner.c (the loop's side of a hook: its
 * run, the spawner threads and their queue, reaping, the time limit) and
 * spawn.c (a start on a spawner thread, and the child up to execve). Only
 * they include it.
 */
#ifndef HOOKD_RUNNER_PRIVATE_H
#define HOOKD_RUNNER_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "runner.h"

struct hook_run;

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

#endif
