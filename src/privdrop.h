/*
 * The privilege drop: who hookd becomes after binding when started as root
 * ([server] user and group), and becoming that user for good. The daemon
 * drops after its listeners are bound and the journal is open; `hookd run`
 * drops before running the hook, as the daemon would.
 */
#ifndef HOOKD_PRIVDROP_H
#define HOOKD_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;
struct hook_user;

struct run_as {
	bool set;
	char *name;
	uid_t uid;
	gid_t gid; /* `group`, else the user's own group */
};

/* Looks up `user` and `group`; an unknown name is a config error: -errno
 * with "CONFIG:LINE: unknown user ..." in err. ra->name is the caller's to
 * free. */
int run_as_resolve(const struct config *cfg, struct run_as *ra, char *err, size_t errlen);

/*
 * Started as root with `user`: becomes that user for good, after the
 * listener is bound (state_dir is handed to the user first). initgroups,
 * setgid, setuid (which as root sets the real, effective and saved ids
 * alike), then proves root cannot be taken back. Started as root without
 * `user`: a warning, hooks run as root. Either way, and when not started
 * as root, hookd keeps the capabilities a hook_user needs and no other
 * (settle_hook_caps). 0, or -errno (logged).
 */
int drop_privileges(const struct config *cfg, const struct run_as *ra,
                    const struct hook_user *hu);

/* setuid and friends, for good, keeping what hu needs: 0, or -errno
 * (logged). Not dumpable afterwards either. */
int become_user(const struct run_as *ra, const struct hook_user *hu);

/* Without a change of uid: the capabilities hookd keeps for hu
 * (hookuser.h), none when it needs none. 0, or -errno (logged). */
int settle_hook_caps(const struct hook_user *hu);

/*
 * Looks up who the hooks run as (hu's user, else own_uid: hookd's own uid
 * after its drop, or the one `hookd run` would drop to) in the password
 * database and hands it to the deliveries' base environment (HOME, USER,
 * LOGNAME, SHELL). Without an entry: a warning, and hooks get none of them.
 * At start and at each reload.
 */
void hook_identity_install(const struct hook_user *hu, uid_t own_uid);

#endif
