/*
 * Keeping hookd's secrets inside hookd (secrecy.h). A hook that runs as
 * hookd's own uid could otherwise read them from hookd: from
 * /proc/PID/environ (secret_env), /proc/PID/mem or ptrace (every secret),
 * or a core file.
 */
#include "secrecy.h"
#include "crypto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>


#include "util.h"

extern char **environ;

static struct rlimit core_at_start;
static bool core_saved;

int secrecy_protect_process(void)
{
	int ret = 0;
	/* The kernel then also refuses /proc/PID/environ, mem, maps and fd
	 * to everyone without CAP_SYS_PTRACE, and makes no core file. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		ret = -errno;
	struct rlimit rl;
	if (getrlimit(RLIMIT_CORE, &rl) < 0)
		return ret ? ret : -errno;
	if (!core_saved) {
		core_at_start = rl;
		core_saved = true;
	}
	if (rl.rlim_cur != 0) {
		rl.rlim_cur = 0;
		if (setrlimit(RLIMIT_CORE, &rl) < 0 && !ret)
			ret = -errno;
	}
	return ret;
}

bool secrecy_hook_core_limit(struct rlimit *rl)
{
	if (core_saved)
		*rl = core_at_start;
	return core_saved;
}

/* The variables taken so far; a handful at most, so a list. */
struct taken {
	struct taken *next;
	char *name;
	char *value;
};
static struct taken *taken;

/*
 * unsetenv alone is not enough: it removes the pointer from environ, but
 * /proc/PID/environ shows the bytes the kernel put on the stack at exec,
 * and those stay. They are wiped in place, name and value.
 */
static void wipe_from_environment(const char *name)
{
	size_t len = strlen(name);
	char *found[16];
	size_t n = 0;
	for (char **e = environ; e && *e && n < ARRAY_SIZE(found); e++) {
		if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
			found[n++] = *e;
	}
	unsetenv(name);
	for (size_t i = 0; i < n; i++)
		crypto_wipe(found[i], strlen(found[i]));
}

const char *secrecy_take_env(const char *name)
{
	for (struct taken *t = taken; t; t = t->next) {
		if (strcmp(t->name, name) == 0)
			return t->value;
	}
	const char *v = getenv(name);
	if (!v)
		return NULL;
	struct taken *t = xmalloc(sizeof(*t));
	t->name = xstrdup(name);
	t->value = xstrdup(v);
	t->next = taken;
	taken = t;
	wipe_from_environment(name);
	return t->value;
}

void secrecy_cleanup(void)
{
	while (taken) {
		struct taken *t = taken;
		taken = t->next;
		crypto_wipe(t->value, strlen(t->value));
		free(t->value);
		free(t->name);
		free(t);
	}
}
