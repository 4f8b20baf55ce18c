/*
 * Who the hooks run as: [server] hook_user and hook_group. Hooks that run
 * as hookd's own uid could read everything hookd can (the secret files,
 * the journal, the control socket); a hook_user of their own cannot.
 *
 * hookd itself never runs as root while it serves, so it keeps exactly
 * three capabilities for this: CAP_SETUID and CAP_SETGID, permitted but
 * not effective (a child raises them between fork and exec, switches to
 * the hook user and drops every capability before exec), and CAP_KILL,
 * effective, to signal the process groups of hooks that no longer run as
 * its uid. hookd gets them either by being started as root (they are kept
 * across the privilege drop) or from its supervisor (systemd's
 * AmbientCapabilities=). HACKING.md says why this and not a privileged
 * helper process.
 */
#ifndef HOOKD_HOOKUSER_H
#define HOOKD_HOOKUSER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

struct hook_user {
	bool set;          /* hook_user given (or hook_user_of_account) */
	const char *role;  /* the setting it is, in words about it: "hook_user", "user" */
	char *name;
	uid_t uid;
	gid_t gid;         /* hook_group, else the user's own group */
	gid_t *groups;     /* the user's supplementary groups, with gid */
	int ngroups;
};

/* Looks up hook_user and hook_group, and the supplementary groups
 * (initgroups cannot be called in a child of a threaded process: they are
 * resolved here, in the parent). An unknown name is a config error: -errno
 * with "CONFIG:LINE: unknown hook_user ..." in err. */
int hook_user_resolve(const struct config *cfg, struct hook_user *hu, char *err, size_t errlen);
void hook_user_free(struct hook_user *hu);
/* `user`'s account (its name, uid and `group`), as whom the hooks run
 * when hook_user is not set, in the same form, for `hookd check` (run as
 * root, it would find every hook allowed) to judge the hooks as they will
 * be run (hook_user_denied_why). -EINVAL when its groups cannot be
 * listed. */
int hook_user_of_account(const char *name, uid_t uid, gid_t gid, struct hook_user *hu);

/*
 * Who a hook is, as its environment says it (HOME, USER, LOGNAME, SHELL):
 * the password database's entry for uid. Looked up in the parent, at start
 * and reload, never in a child: getpwuid may load NSS modules, open files
 * and take locks.
 */
struct hook_identity {
	char *user, *home, *shell; /* home NULL when the entry has none */
};

/* 0 with id filled (shell "/bin/sh" for an empty one, as passwd(5) says),
 * or -errno (-ENOENT: no entry for uid). */
int hook_identity_lookup(uid_t uid, struct hook_identity *id);
void hook_identity_free(struct hook_identity *id);

/* The uid hooks run as: hu's when set, else own_uid (hookd's own after
 * its privilege drop). */
uid_t hook_user_uid(const struct hook_user *hu, uid_t own_uid);

/* Whether hooks need a switch of ids when hookd runs as uid and gid: a
 * hook_user given that is not hookd's own user and group. */
bool hook_user_switches(const struct hook_user *hu, uid_t uid, gid_t gid);

/*
 * Why hu may not run the hook at path (absolute), when execve said EACCES
 * in a hook's child that had switched to hu and hookd itself may run it:
 * the first directory above it that hu may not search, or the hook itself
 * that hu may not execute (or, a script, read: its interpreter opens it
 * as hu). By the mode bits, owner and group alone, which is what hookd can
 * see without becoming hu: true with the reason in why; false when they
 * allow it, or when the file has an ACL (which may allow what they do
 * not). Mount options and the interpreter's own permissions are
 * preflight's.
 */
bool hook_user_denied_why(const struct hook_user *hu, const char *path, char *why,
                          size_t len);

/* Before a privilege drop from root: keep the capabilities across it
 * (PR_SET_KEEPCAPS) when the hooks will need them. */
int hook_user_keep_caps(bool needed);

/*
 * After the privilege drop, or at start when there was none: the
 * capabilities hookd holds from here on. needed: exactly CAP_SETUID and
 * CAP_SETGID permitted and CAP_KILL permitted and effective (-EPERM, with
 * err saying how to grant them, when hookd does not have them). Not
 * needed: none at all (as root: left alone). No inheritable or ambient
 * capability either way, so that none reaches a hook.
 */
int hook_user_settle_caps(bool needed, char *err, size_t errlen);

/*
 * In the child, between fork and exec, with nothing but system calls
 * (the child of a threaded process, sharing its memory after vfork):
 * the groups, gid and uid of hu, then no capability at all. 0, or -errno.
 */
int hook_user_become(const struct hook_user *hu);

#endif
