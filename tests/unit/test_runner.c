/*
 * runner: a run started with `hold` starts its process only at
 * runner_release(), and runner_cancel_held() ends it without starting it
 * (the journal commits an attempt before its first hook may start).
 */
#include "check.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner.h"
#include "util.h"

static struct {
	int count;
	bool ran, may_pass, cancelled;
	int exit_code;
	char error[128];
} done;

static void on_done(const struct hook_result *res, void *arg)
{
	(void)arg;
	done.count++;
	done.ran = res->ran;
	done.may_pass = res->start_may_pass;
	done.cancelled = res->start_cancelled;
	done.exit_code = res->exit_code;
	snprintf(done.error, sizeof(done.error), "%s", res->error ? res->error : "");
}

/* Runs the loop until `want` runs are done, or for `ms` at the most. */
static void loop_until(struct event_base *base, int want, int ms)
{
	for (int waited = 0; waited < ms && done.count < want; waited += 20) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static bool exists(const char *dir, const char *name)
{
	char *p = xasprintf("%s/%s", dir, name);
	bool yes = access(p, F_OK) == 0;
	free(p);
	return yes;
}

/* Spawner threads held up after a start (runner.c's seam): "slowq" as if
 * its thread was preempted for 300 ms after the child started, "slowy"
 * for 100 ms. */
void runner_test_after_start(const char *path);
void runner_test_after_start(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strcmp(base, "slowq") == 0)
		usleep(300 * 1000);
	else if (strcmp(base, "slowy") == 0)
		usleep(100 * 1000);
}

static struct hook_run *start(struct event_base *base, const char *dir, const char *hook,
                              bool hold)
{
	char *path = xasprintf("%s/%s", dir, hook);
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct runner_params p = {
		.path = path, .dir = dir, .rel = hook, .envp = envp,
		.input = (const unsigned char *)"{}", .input_len = 2,
		.timeout_ms = 10000, .kill_grace_ms = 1000,
		.limits = {-1, -1, -1, -1},
		.endpoint = "t", .event = "e", .delivery_id = "id",
		.hold = hold,
	};
	struct hook_result res;
	struct hook_run *r = runner_start(base, &p, on_done, NULL, &res);
	if (!r)
		free(res.error);
	free(path);
	return r;
}

int main(void)
{
	char dir[] = "/tmp/hookd-test-runner-XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	const char *names[] = {"held", "cancelled", "now"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		char *text = xasprintf("#!/bin/sh\ntouch '%s.ran'\n", names[i]);
		FILE *f = fopen(p, "w");
		CHECK(f != NULL, "%s", p);
		if (f) {
			fputs(text, f);
			fclose(f);
		}
		chmod(p, 0755);
		free(text);
		free(p);
	}
	/* As hookd's main does: a hook that closes its stdin early is an
	 * error to handle, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	CHECK(runner_init(base) == 0, "runner_init");

	/* Held: nothing starts, however long the loop runs, until released. */
	CHECK(start(base, dir, "held", true) != NULL, "start held");
	loop_until(base, 1, 400);
	CHECK(done.count == 0 && !exists(dir, "held.ran"), "a held run started");
	runner_release();
	loop_until(base, 1, 10000);
	CHECK(done.count == 1 && done.ran && done.exit_code == 0 && !done.cancelled,
	      "released run: %d %d %d", done.count, done.ran, done.exit_code);
	CHECK(exists(dir, "held.ran"), "the released hook did not run");

	/* Cancelled: done at once, not run, may pass; never starts later. */
	CHECK(start(base, dir, "cancelled", true) != NULL, "start cancelled");
	runner_cancel_held("cannot record the attempt");
	CHECK(done.count == 2 && !done.ran && done.may_pass && done.cancelled,
	      "cancelled run: %d %d %d %d", done.count, done.ran, done.may_pass, done.cancelled);
	CHECK_STR(done.error, "cannot record the attempt", "cancelled run's error");
	runner_release();
	loop_until(base, 3, 400);
	CHECK(done.count == 2 && !exists(dir, "cancelled.ran"), "a cancelled run started");

	/* Not held: starts on its own. */
	CHECK(start(base, dir, "now", false) != NULL, "start now");
	loop_until(base, 3, 10000);
	CHECK(done.count == 3 && done.ran && done.exit_code == 0 && exists(dir, "now.ran"),
	      "a run without hold did not run");

	/*
	 * A hook that exits before its spawner thread hands its job back (the
	 * thread preempted: the seam above holds it 300 ms), while another
	 * thread hands back a second job first: the loop reaped the first
	 * child without knowing its pid and waits for its job; the second
	 * job's wake must not end that wait. The first run is over when its
	 * job comes back, not when the other hook (3 s) exits.
	 */
	static const struct {
		const char *name, *text;
	} racers[] = {
		{"slowq", "#!/bin/sh\nexit 0\n"},
		{"slowy", "#!/bin/sh\nsleep 3\n"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(racers); i++) {
		char *p = xasprintf("%s/%s", dir, racers[i].name);
		FILE *f = fopen(p, "w");
		CHECK(f != NULL, "%s", p);
		if (f) {
			fputs(racers[i].text, f);
			fclose(f);
		}
		chmod(p, 0755);
		free(p);
	}
	int64_t t0 = now_mono_ms();
	CHECK(start(base, dir, "slowq", false) != NULL, "start slowq");
	CHECK(start(base, dir, "slowy", false) != NULL, "start slowy");
	loop_until(base, 4, 2500);
	CHECK(done.count == 4 && done.ran && done.exit_code == 0,
	      "the hook that exited first was not seen until the other one exited: %d runs "
	      "done after %lld ms", done.count, (long long)(now_mono_ms() - t0));
	loop_until(base, 5, 10000);
	CHECK(done.count == 5 && done.ran && done.exit_code == 0, "slowy: %d", done.count);

	runner_shutdown();
	event_base_free(base);
	for (size_t i = 0; i < ARRAY_SIZE(racers); i++) {
		char *p = xasprintf("%s/%s", dir, racers[i].name);
		unlink(p);
		free(p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		char *ran = xasprintf("%s.ran", p);
		unlink(p);
		unlink(ran);
		free(p);
		free(ran);
	}
	rmdir(dir);
	return check_done("runner");
}
