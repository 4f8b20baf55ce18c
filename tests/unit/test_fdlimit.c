/*
 * fdlimit: the open files a config needs, and what to do about a soft and
 * hard limit for that need (raise, to what, warn), as tables; then the
 * real process's limit raised, kept, and remembered for the hooks.
 */
#include "check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "fdlimit.h"

#define INF RLIM_INFINITY

static void test_need(void)
{
	static const struct {
		int max_connections, max_running, admin;
		rlim_t want;
	} cases[] = {
		/* the defaults: over a shell's 1,024 */
		{1024, 16, 0, 1152},
		{1024, 16, 64, 1216}, /* with [admin] listen */
		{1, 1, 0, 69},
		{100, 0, 0, 164},
		{0, 0, 0, 64},
		{-5, -1, 0, 64}, /* never below the margin */
		/* the largest keys: no wrap */
		{INT32_MAX, INT32_MAX, 64, (rlim_t)INT32_MAX * 5 + 128},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rlim_t got = fdlimit_need(cases[i].max_connections, cases[i].max_running,
		                          cases[i].admin);
		CHECK(got == cases[i].want, "need case %zu: %llu", i, (unsigned long long)got);
	}
}

static void test_plan(void)
{
	static const struct {
		const char *name;
		rlim_t soft, hard, need;
		bool raise;
		rlim_t new_soft;
		bool short_of_need;
	} cases[] = {
		{"a shell's or systemd's default", 1024, 524288, 1152, true, 1152, false},
		{"exactly enough", 1152, 524288, 1152, false, 1152, false},
		{"more than enough: not lowered", 65536, 524288, 1152, false, 65536, false},
		{"raised to the need, not the hard limit", 256, 4096, 1152, true, 1152, false},
		{"hard exactly the need", 256, 1152, 1152, true, 1152, false},
		{"hard below the need: as far as it goes", 256, 512, 1152, true, 512, true},
		{"soft = hard below the need", 512, 512, 1152, false, 512, true},
		{"hard unlimited", 1024, INF, 1152, true, 1152, false},
		{"both unlimited", INF, INF, 1152, false, INF, false},
		{"soft unlimited", INF, INF, 100000, false, INF, false},
		{"a reload that needs more", 1152, 524288, 5000, true, 5000, false},
		{"a reload that needs less", 5000, 524288, 1152, false, 5000, false},
		{"a reload past the hard limit", 1152, 4096, 5000, true, 4096, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fdlimit_plan p = fdlimit_plan(cases[i].soft, cases[i].hard, cases[i].need);
		CHECK(p.raise == cases[i].raise, "%s: raise %d", cases[i].name, p.raise);
		CHECK(p.new_soft == cases[i].new_soft, "%s: new soft %llu", cases[i].name,
		      (unsigned long long)p.new_soft);
		CHECK(p.short_of_need == cases[i].short_of_need, "%s: short %d", cases[i].name,
		      p.short_of_need);
	}
}

/* The real limit of this process: raised from 100 to the need, the 100
 * remembered; a hard limit short of the need is a warning with its numbers. */
static void test_apply(void)
{
	struct rlimit orig;
	CHECK(getrlimit(RLIMIT_NOFILE, &orig) == 0, "getrlimit");
	struct rlimit rl;
	CHECK(!fdlimit_hook_limit(&rl), "nothing remembered before the first apply");
	if (orig.rlim_max < 400) {
		printf("hard limit %llu: apply not tested\n", (unsigned long long)orig.rlim_max);
		return;
	}
	struct rlimit low = {100, orig.rlim_max};
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit 100");
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_connections = 200;
	cfg.max_running = 2;
	char msg[512];
	CHECK(fdlimit_apply(&cfg, msg, sizeof(msg)) == FDLIMIT_RAISED, "raised");
	CHECK(strstr(msg, "from 100 to 272") != NULL, "%s", msg);
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 272, "soft %llu",
	      (unsigned long long)rl.rlim_cur);
	CHECK(fdlimit_apply(&cfg, msg, sizeof(msg)) == FDLIMIT_ENOUGH, "a reload: enough");
	CHECK(fdlimit_check(&cfg, msg, sizeof(msg)), "check: enough");
	/* A reload that needs more raises again; the hooks' limit stays. */
	cfg.max_connections = 300;
	CHECK(fdlimit_apply(&cfg, msg, sizeof(msg)) == FDLIMIT_RAISED, "raised again");
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 372, "soft %llu",
	      (unsigned long long)rl.rlim_cur);
	CHECK(fdlimit_hook_limit(&rl) && rl.rlim_cur == 100 && rl.rlim_max == orig.rlim_max,
	      "hooks get %llu", (unsigned long long)rl.rlim_cur);
	if (orig.rlim_max > INT32_MAX / 2) {
		printf("hard limit %llu: a need past it not tested\n",
		       (unsigned long long)orig.rlim_max);
		CHECK(setrlimit(RLIMIT_NOFILE, &orig) == 0, "restore");
		return;
	}
	/* Past the hard limit: as far as it goes, and the warning. */
	cfg.max_connections = (int)orig.rlim_max;
	cfg.admin_listen = "127.0.0.1:9100";
	CHECK(fdlimit_apply(&cfg, msg, sizeof(msg)) == FDLIMIT_SHORT, "short");
	char want[256];
	snprintf(want, sizeof(want),
	         "open files: the hard limit %llu is below the %llu hookd may need "
	         "(max_connections %llu + 4 x max_running 2 + 64 [admin] connections + 64); ",
	         (unsigned long long)orig.rlim_max, (unsigned long long)orig.rlim_max + 136,
	         (unsigned long long)orig.rlim_max);
	CHECK(strncmp(msg, want, strlen(want)) == 0, "%s", msg);
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == orig.rlim_max, "soft %llu",
	      (unsigned long long)rl.rlim_cur);
	char checked[512];
	CHECK(!fdlimit_check(&cfg, checked, sizeof(checked)), "check: short");
	CHECK_STR(checked, msg, "check's warning is serve's");
	CHECK(setrlimit(RLIMIT_NOFILE, &orig) == 0, "restore");
}

int main(void)
{
	test_need();
	test_plan();
	test_apply();
	return check_done("fdlimit");
}
