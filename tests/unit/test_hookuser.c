/*
 * hookuser: why hook_user may not run a hook (hook_user_denied_why), by
 * the mode bits of the hook and of each directory above it, for a made-up
 * hook_user that is the files' owner, in their group (its own gid or a
 * supplementary one), or neither. The files are the test's own, so it runs
 * as any user: only the hook_user changes from case to case.
 */
#include "check.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hookuser.h"
#include "util.h"

static char tmp[] = "/tmp/hookd-test-hookuser-XXXXXX";

enum who { OWNER, GROUP, SUPPLEMENTARY, OTHER };

struct denied_case {
	const char *name;
	mode_t dir_mode;  /* the directory the hook is in */
	mode_t hook_mode;
	bool script;      /* begins with #! */
	enum who who;
	const char *want; /* the reason with "{dir}" for the directory; NULL: none */
};

static const struct denied_case cases[] = {
	{"open to all", 0755, 0755, true, OTHER, NULL},
	{"not executable by others", 0755, 0750, false, OTHER,
	 "hook_user hk may not execute the hook: mode 0750"},
	{"executable by its group", 0755, 0750, false, GROUP, NULL},
	{"by a supplementary group", 0755, 0750, false, SUPPLEMENTARY, NULL},
	{"by its owner", 0755, 0700, false, OWNER, NULL},
	/* The kernel picks the class first: the group's bits, not the others'. */
	{"the group's bits, though others may", 0755, 0705, false, GROUP,
	 "hook_user hk may not execute the hook: mode 0705"},
	{"a script it may not read", 0755, 0711, true, OTHER,
	 "hook_user hk may not read the hook, a script: mode 0711"},
	{"a binary it need not read", 0755, 0711, false, OTHER, NULL},
	{"a directory it may not search", 0700, 0755, true, OTHER,
	 "hook_user hk may not search {dir}: mode 0700"},
	{"a directory its group may search", 0710, 0755, true, SUPPLEMENTARY, NULL},
	{"a directory it owns", 0700, 0755, true, OWNER, NULL},
};

static void make_user(struct hook_user *hu, gid_t *groups, enum who who)
{
	memset(hu, 0, sizeof(*hu));
	hu->set = true;
	hu->role = "hook_user";
	hu->name = "hk";
	hu->uid = who == OWNER ? getuid() : getuid() + 1000;
	hu->gid = who == GROUP ? getgid() : getgid() + 1000;
	groups[0] = hu->gid;
	groups[1] = who == SUPPLEMENTARY ? getgid() : getgid() + 2000;
	hu->groups = groups;
	hu->ngroups = 2;
}

static void run_case(const struct denied_case *c, int n)
{
	char *dir = xasprintf("%s/d%d", tmp, n);
	char *hook = xasprintf("%s/hook", dir);
	CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
	int fd = open(hook, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *text = c->script ? "#!/bin/sh\nexit 0\n" : "\177ELF not really";
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "%s", c->name);
	close(fd);
	chmod(hook, c->hook_mode);
	chmod(dir, c->dir_mode);
	struct hook_user hu;
	gid_t groups[2];
	make_user(&hu, groups, c->who);
	char why[512];
	bool said = hook_user_denied_why(&hu, hook, why, sizeof(why));
	if (!c->want) {
		CHECK(!said, "%s: said \"%s\"", c->name, why);
	} else {
		/* The reason, then the file's owner and group (the test's own). */
		const char *brace = strstr(c->want, "{dir}");
		char *want = brace ? xasprintf("%.*s%s%s, uid %u, gid %u", (int)(brace - c->want),
		                               c->want, dir, brace + 5, (unsigned)getuid(),
		                               (unsigned)getgid())
		                   : xasprintf("%s, uid %u, gid %u", c->want, (unsigned)getuid(),
		                               (unsigned)getgid());
		CHECK(said, "%s: nothing said", c->name);
		if (said)
			CHECK_STR(why, want, "%s", c->name);
		free(want);
	}
	chmod(dir, 0700);
	free(hook);
	free(dir);
}

static void test_denied_why(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], (int)i);
	/* Nothing to say: no hook_user, a relative path, a hook not there. */
	struct hook_user hu;
	gid_t groups[2];
	make_user(&hu, groups, OTHER);
	char why[512];
	CHECK(!hook_user_denied_why(NULL, "/bin/true", why, sizeof(why)), "no hook_user");
	CHECK(!hook_user_denied_why(&hu, "bin/true", why, sizeof(why)), "a relative path");
	char *gone = xasprintf("%s/not-there", tmp);
	CHECK(!hook_user_denied_why(&hu, gone, why, sizeof(why)), "a hook not there");
	free(gone);
	hu.set = false;
	CHECK(!hook_user_denied_why(&hu, "/bin/true", why, sizeof(why)), "hook_user not set");
}

/* `user`'s account in the same form (hookd check without hook_user): its
 * groups as initgroups would give them, at least its own group, and the
 * setting named in the words. */
static void test_of_account(void)
{
	struct hook_user hu;
	uid_t uid = getuid() + 1000;
	gid_t gid = getgid() + 1000;
	CHECK(hook_user_of_account("hk-no-such-account", uid, gid, &hu) == 0, "of_account");
	CHECK(hu.set && hu.uid == uid && hu.gid == gid, "its ids");
	CHECK_STR(hu.name, "hk-no-such-account", "its name");
	bool own = false;
	for (int i = 0; i < hu.ngroups; i++)
		own = own || hu.groups[i] == gid;
	CHECK(own && hu.ngroups >= 1, "its own group among %d", hu.ngroups);
	char *dir = xasprintf("%s/account", tmp);
	char *hook = xasprintf("%s/hook", dir);
	CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
	int fd = open(hook, O_WRONLY | O_CREAT | O_TRUNC, 0750);
	CHECK(fd >= 0, "%s", hook);
	close(fd);
	chmod(hook, 0750);
	char why[512];
	CHECK(hook_user_denied_why(&hu, hook, why, sizeof(why)), "nothing said");
	char *want = xasprintf("user hk-no-such-account may not execute the hook: mode 0750, uid %u, "
	                       "gid %u", (unsigned)getuid(), (unsigned)getgid());
	CHECK_STR(why, want, "as user");
	free(want);
	free(hook);
	free(dir);
	hook_user_free(&hu);
}

int main(void)
{
	CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
	chmod(tmp, 0755);
	test_denied_why();
	test_of_account();
	char *cmd = xasprintf("rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0, "%s", cmd);
	free(cmd);
	return check_done("test_hookuser");
}
