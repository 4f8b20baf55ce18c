/*
 * The privilege drop (privdrop.h): [server] user and group looked up, the
 * state directory handed over, and the ids changed for good.
 */
#include "privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "delivery.h"
#include "hookuser.h"
#include "log.h"
#include "secrecy.h"
#include "util.h"

int run_as_resolve(const struct config *cfg, struct run_as *ra, char *err, size_t errlen)
{
	memset(ra, 0, sizeof(*ra));
	if (!cfg->user) {
		if (cfg->group) {
			snprintf(err, errlen, "%s:%d: group = %s needs user", cfg->path, cfg->group_line,
			         cfg->group);
			return -EINVAL;
		}
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (!pw) {
		snprintf(err, errlen, "%s:%d: unknown user '%s'%s%s", cfg->path, cfg->user_line, cfg->user,
		         errno ? ": " : "", errno ? strerror(errno) : "");
		return -ENOENT;
	}
	ra->set = true;
	ra->name = xstrdup(pw->pw_name);
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	if (cfg->group) {
		errno = 0;
		struct group *gr = getgrnam(cfg->group);
		if (!gr) {
			snprintf(err, errlen, "%s:%d: unknown group '%s'%s%s", cfg->path, cfg->group_line,
			         cfg->group,
			         errno ? ": " : "", errno ? strerror(errno) : "");
			free(ra->name);
			ra->name = NULL;
			return -ENOENT;
		}
		ra->gid = gr->gr_gid;
	}
	return 0;
}

/*
 * The journal was opened as root (it may have created state_dir and its
 * files); hand the directory and what is directly in it to the user, so
 * that SQLite can go on writing (and recreate its -wal and -shm files) and
 * the control socket can be made after the drop. Symbolic links are not
 * followed: only the directory's own entries change owner.
 */
static int chown_state_dir(const char *dir, const struct run_as *ra)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int ret = 0;
	if (fchown(dfd, ra->uid, ra->gid) < 0)
		ret = -errno;
	int lfd = ret == 0 ? dup(dfd) : -1;
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (ret == 0 && !d) {
		ret = -errno;
		if (lfd >= 0)
			close(lfd);
	}
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fchownat(dfd, e->d_name, ra->uid, ra->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT) {
			ret = -errno;
			break;
		}
	}
	if (d)
		closedir(d);
	close(dfd);
	return ret;
}

int drop_privileges(const struct config *cfg, const struct run_as *ra,
                    const struct hook_user *hu)
{
	if (geteuid() != 0) {
		if (ra->set && ra->uid != geteuid())
			log_msg(LOG_LVL_WARN, "user = %s ignored: hookd was not started as root", ra->name);
		return settle_hook_caps(hu);
	}
	if (!ra->set) {
		if (hu->set)
			log_msg(LOG_LVL_WARN, "running as root: set [server] user to drop privileges "
			                      "after binding");
		else
			log_msg(LOG_LVL_WARN, "running as root, and so do the hooks: set [server] user "
			                      "to drop privileges after binding");
		return settle_hook_caps(hu);
	}
	if (cfg->state_dir) {
		int r = chown_state_dir(cfg->state_dir, ra);
		if (r < 0) {
			log_msg(LOG_LVL_ERROR, "state_dir %s: cannot hand it to user %s: %s",
			        cfg->state_dir, ra->name, strerror(-r));
			return r;
		}
	}
	return become_user(ra, hu);
}

int settle_hook_caps(const struct hook_user *hu)
{
	bool needed = hook_user_switches(hu, geteuid(), getegid());
	char err[256];
	int r = hook_user_settle_caps(needed, err, sizeof(err));
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		return r;
	}
	if (needed) {
		char uid[16], gid[16];
		snprintf(uid, sizeof(uid), "%u", (unsigned)hu->uid);
		snprintf(gid, sizeof(gid), "%u", (unsigned)hu->gid);
		struct log_kv kv[] = {{"hook_user", hu->name}, LOG_INT("uid", uid), LOG_INT("gid", gid)};
		log_kv(LOG_LVL_INFO, "hooks run as their own user", kv, ARRAY_SIZE(kv));
	}
	return 0;
}

int become_user(const struct run_as *ra, const struct hook_user *hu)
{
	/* Kept across setuid only when the hooks need them; settled to the
	 * three hookuser.h names right after. */
	if (hook_user_keep_caps(hook_user_switches(hu, ra->uid, ra->gid)) < 0 ||
	    initgroups(ra->name, ra->gid) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0) {
		int e = errno;
		log_msg(LOG_LVL_ERROR, "cannot become user %s: %s", ra->name, strerror(e));
		return -e;
	}
	/* With kept capabilities none is effective here: the proof holds. */
	if (ra->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_msg(LOG_LVL_ERROR, "root could be regained after dropping privileges: stopping");
		return -EPERM;
	}
	/* A change of uid made hookd dumpable again (fs.suid_dumpable). */
	int r = secrecy_protect_process();
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "cannot make hookd undumpable: %s", strerror(-r));
		return r;
	}
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)ra->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)ra->gid);
	struct log_kv kv[] = {{"user", ra->name}, LOG_INT("uid", uid), LOG_INT("gid", gid)};
	log_kv(LOG_LVL_INFO, "dropped privileges", kv, ARRAY_SIZE(kv));
	return settle_hook_caps(hu);
}

void hook_identity_install(const struct hook_user *hu, uid_t own_uid)
{
	uid_t uid = hook_user_uid(hu, own_uid);
	struct hook_identity id;
	int r = hook_identity_lookup(uid, &id);
	if (r < 0) {
		char n[16];
		snprintf(n, sizeof(n), "%u", (unsigned)uid);
		struct log_kv kv[] = {LOG_INT("uid", n), {"error", strerror(-r)}};
		log_kv(LOG_LVL_WARN,
		       "hooks get no HOME, USER, LOGNAME or SHELL: their uid has no password entry",
		       kv, ARRAY_SIZE(kv));
		delivery_set_hook_identity(NULL);
		return;
	}
	delivery_set_hook_identity(&id);
	hook_identity_free(&id);
}
