/*
 * Who the hooks run as (hookuser.h): hook_user and hook_group resolved,
 * the capabilities hookd keeps to switch to them, and the switch itself in
 * the hook's child. Capabilities through the raw capget/capset calls: three
 * bits of one word do not need libcap.
 */
#include "hookuser.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

/* 32-bit ids where the architecture has both kinds of call. */
#ifdef SYS_setresuid32
#define SYS_SETRESUID SYS_setresuid32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETGROUPS SYS_setgroups32
#else
#define SYS_SETRESUID SYS_setresuid
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETGROUPS SYS_setgroups
#endif

#define CAP_BIT(c) (1U << (c))
/* All three are below 32: the first word of each set. */
#define SWITCH_CAPS (CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID))
#define HOOK_CAPS (SWITCH_CAPS | CAP_BIT(CAP_KILL))

struct capsets {
	struct __user_cap_header_struct head;
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
};

/* The calling thread's sets, with only the first word's bits given (the
 * others zero). Nothing but the system call: safe in a vfork child. */
static int caps_set(unsigned permitted, unsigned effective)
{
	struct capsets c;
	memset(&c, 0, sizeof(c));
	c.head.version = _LINUX_CAPABILITY_VERSION_3;
	c.data[0].permitted = permitted;
	c.data[0].effective = effective;
	return syscall(SYS_capset, &c.head, c.data) < 0 ? -errno : 0;
}

static int caps_permitted(unsigned *first_word)
{
	struct capsets c;
	memset(&c, 0, sizeof(c));
	c.head.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &c.head, c.data) < 0)
		return -errno;
	*first_word = c.data[0].permitted;
	return 0;
}

/* hu set to the account name (taken), uid and gid, with the groups
 * initgroups would give it: its own plus gid. False when they cannot be
 * listed (hu untouched). */
static bool account_groups(struct hook_user *hu, char *name, uid_t uid, gid_t gid)
{
	int n = 16;
	gid_t *groups = NULL;
	for (;;) {
		groups = xrealloc(groups, (size_t)n * sizeof(*groups));
		int want = n;
		if (getgrouplist(name, gid, groups, &want) >= 0) {
			n = want;
			break;
		}
		if (want <= n || want > 65536) {
			free(groups);
			return false;
		}
		n = want;
	}
	hu->set = true;
	hu->name = name;
	hu->uid = uid;
	hu->gid = gid;
	hu->groups = groups;
	hu->ngroups = n;
	return true;
}

int hook_user_resolve(const struct config *cfg, struct hook_user *hu, char *err, size_t errlen)
{
	memset(hu, 0, sizeof(*hu));
	if (!cfg->hook_user) {
		if (cfg->hook_group) {
			snprintf(err, errlen, "%s:%d: hook_group = %s needs hook_user", cfg->path,
			         cfg->hook_group_line, cfg->hook_group);
			return -EINVAL;
		}
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(cfg->hook_user);
	if (!pw) {
		snprintf(err, errlen, "%s:%d: unknown hook_user '%s'%s%s", cfg->path,
		         cfg->hook_user_line, cfg->hook_user, errno ? ": " : "",
		         errno ? strerror(errno) : "");
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "%s:%d: hook_user = %s is root: leave hook_user out to run "
		         "hooks as hookd's own user", cfg->path, cfg->hook_user_line, cfg->hook_user);
		return -EINVAL;
	}
	char *name = xstrdup(pw->pw_name);
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (cfg->hook_group) {
		errno = 0;
		struct group *gr = getgrnam(cfg->hook_group);
		if (!gr) {
			snprintf(err, errlen, "%s:%d: unknown hook_group '%s'%s%s", cfg->path,
			         cfg->hook_group_line, cfg->hook_group, errno ? ": " : "",
			         errno ? strerror(errno) : "");
			free(name);
			return -ENOENT;
		}
		gid = gr->gr_gid;
	}
	if (!account_groups(hu, name, uid, gid)) {
		snprintf(err, errlen, "%s:%d: cannot list the groups of hook_user '%s'", cfg->path,
		         cfg->hook_user_line, name);
		free(name);
		return -EINVAL;
	}
	hu->role = "hook_user";
	return 0;
}

int hook_user_of_account(const char *name, uid_t uid, gid_t gid, struct hook_user *hu)
{
	memset(hu, 0, sizeof(*hu));
	char *own = xstrdup(name);
	if (!account_groups(hu, own, uid, gid)) {
		free(own);
		return -EINVAL;
	}
	hu->role = "user";
	return 0;
}

void hook_user_free(struct hook_user *hu)
{
	free(hu->name);
	free(hu->groups);
	memset(hu, 0, sizeof(*hu));
}

int hook_identity_lookup(uid_t uid, struct hook_identity *id)
{
	memset(id, 0, sizeof(*id));
	errno = 0;
	struct passwd *pw = getpwuid(uid);
	if (!pw)
		return errno ? -errno : -ENOENT;
	id->user = xstrdup(pw->pw_name);
	id->home = pw->pw_dir && pw->pw_dir[0] ? xstrdup(pw->pw_dir) : NULL;
	id->shell = xstrdup(pw->pw_shell && pw->pw_shell[0] ? pw->pw_shell : "/bin/sh");
	return 0;
}

void hook_identity_free(struct hook_identity *id)
{
	free(id->user);
	free(id->home);
	free(id->shell);
	memset(id, 0, sizeof(*id));
}

uid_t hook_user_uid(const struct hook_user *hu, uid_t own_uid)
{
	return hu && hu->set ? hu->uid : own_uid;
}

bool hook_user_switches(const struct hook_user *hu, uid_t uid, gid_t gid)
{
	return hu->set && (hu->uid != uid || hu->gid != gid);
}

int hook_user_keep_caps(bool needed)
{
	if (!needed)
		return 0;
	return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

int hook_user_settle_caps(bool needed, char *err, size_t errlen)
{
	if (geteuid() == 0)
		return 0; /* root runs its hooks with root's own powers */
	/* Off again: a child's own setuid must not keep anything. */
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	unsigned have = 0;
	int r = caps_permitted(&have);
	if (r == 0 && needed && (have & HOOK_CAPS) != HOOK_CAPS)
		r = -EPERM;
	if (r == 0)
		r = caps_set(needed ? HOOK_CAPS : 0, needed ? CAP_BIT(CAP_KILL) : 0);
	/* capset has emptied the inheritable set, and so the ambient one;
	 * this says so to a kernel that has one. */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (r == -EPERM && needed)
		snprintf(err, errlen, "hook_user needs CAP_SETUID, CAP_SETGID and CAP_KILL: start "
		         "hookd as root with [server] user, or grant them (systemd: "
		         "AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL)");
	else if (r < 0)
		snprintf(err, errlen, "cannot set capabilities: %s", strerror(-r));
	return r;
}

/* The raw system calls, not glibc's setresuid and setgroups: those signal
 * every thread of the process to change them all, and this child shares
 * the memory (and so the thread list) of a threaded hookd. */
int hook_user_become(const struct hook_user *hu)
{
	/* Raised for this child alone: capabilities belong to a thread, and
	 * hookd's own stay as they are. As root this drops all others. */
	int r = caps_set(HOOK_CAPS, HOOK_CAPS);
	if (r < 0)
		return r;
	if (syscall(SYS_SETGROUPS, (size_t)hu->ngroups, hu->groups) < 0 ||
	    syscall(SYS_SETRESGID, hu->gid, hu->gid, hu->gid) < 0 ||
	    syscall(SYS_SETRESUID, hu->uid, hu->uid, hu->uid) < 0)
		return -errno;
	/* From an unprivileged uid to another, the kernel keeps the sets:
	 * emptied here, so the hook starts with none, whatever exec does. */
	return caps_set(0, 0);
}

static bool in_groups(const struct hook_user *hu, gid_t gid)
{
	if (gid == hu->gid)
		return true;
	for (int i = 0; i < hu->ngroups; i++) {
		if (hu->groups[i] == gid)
			return true;
	}
	return false;
}

/* Whether the mode bits of st give hu every bit of want (R_OK, X_OK: the
 * same values as the bits of each class), as the kernel picks the class:
 * the owner's bits, else the group's, else the others'. */
static bool mode_allows(const struct hook_user *hu, const struct stat *st, int want)
{
	unsigned bits = st->st_uid == hu->uid    ? (st->st_mode >> 6) & 7
	                : in_groups(hu, st->st_gid) ? (st->st_mode >> 3) & 7
	                                          : st->st_mode & 7;
	return (bits & (unsigned)want) == (unsigned)want;
}

/* Whether st (at path) refuses hu a bit of want, as far as its mode can
 * say: a file with an access ACL may give hu what its mode bits do not, so
 * of it nothing is said. */
static bool refused(const struct hook_user *hu, const char *path, const struct stat *st,
                    int want)
{
	return !mode_allows(hu, st, want) &&
	       getxattr(path, "system.posix_acl_access", NULL, 0) < 0;
}

static bool is_script(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	char head[2];
	bool script = read(fd, head, 2) == 2 && head[0] == '#' && head[1] == '!';
	close(fd);
	return script;
}

static bool denied(char *why, size_t len, const struct hook_user *hu, const char *verb,
                   const char *what, const struct stat *st)
{
	snprintf(why, len, "%s %s may not %s %s: mode %04o, uid %u, gid %u", hu->role, hu->name,
	         verb, what, (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid,
	         (unsigned)st->st_gid);
	return true;
}

bool hook_user_denied_why(const struct hook_user *hu, const char *path, char *why, size_t len)
{
	char dir[PATH_MAX];
	size_t n = strlen(path);
	if (!hu || !hu->set || path[0] != '/' || n >= sizeof(dir))
		return false;
	memcpy(dir, path, n + 1);
	struct stat st;
	/* Each directory below the root, down to the hook's: search (x). */
	for (char *slash = dir; (slash = strchr(slash + 1, '/'));) {
		*slash = '\0';
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && refused(hu, dir, &st, X_OK))
			return denied(why, len, hu, "search", dir, &st);
		*slash = '/';
	}
	if (stat(path, &st) != 0)
		return false;
	if (refused(hu, path, &st, X_OK))
		return denied(why, len, hu, "execute", "the hook", &st);
	if (is_script(path) && refused(hu, path, &st, R_OK))
		return denied(why, len, hu, "read", "the hook, a script", &st);
	return false;
}
