/*
 * What `hookd check` verifies beyond the config itself: that a hook the
 * router would run can be started (its #! line names an interpreter that
 * is there, its ELF loader is there), and that a secret file is kept from other users. Each call
 * says what it found in a buffer; the command prints it.
 */
#ifndef HOOKD_PREFLIGHT_H
#define HOOKD_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

enum preflight {
	PREFLIGHT_OK,
	PREFLIGHT_WARN,  /* may work, probably a mistake */
	PREFLIGHT_ERROR, /* will fail at every delivery */
};

/*
 * The executable regular file at path, as execve would start it: a binary
 * whose ELF interpreter (its dynamic loader, PT_INTERP) is there, or a
 * script whose #! line has no carriage return (a CRLF file fails with "No
 * such file or directory") and names an interpreter that exists, is
 * executable, is not on a file system mounted noexec and can start in turn
 * (its own ELF interpreter, or #! line, followed a few levels down); for
 * `#!/usr/bin/env NAME` (also `env -S NAME ...`), NAME is looked for on
 * hook_path, the PATH hooks get, and looked at as well. A file that is
 * neither an ELF binary nor starts with #! is a warning (execve: "Exec
 * format error"), as is an ELF binary for another machine and a file this
 * process cannot read.
 */
enum preflight preflight_hook(const char *path, const char *hook_path, char *why, size_t len);

/*
 * Why execve of the hook at path failed with err (ENOENT, EACCES, ENOEXEC
 * name no file, and the file is often not the hook): true, with why saying
 * it as preflight_hook does, when one of its findings is what fails so.
 */
bool preflight_exec_failure(const char *path, const char *hook_path, int err, char *why,
                            size_t len);

/* Whether name (relative to dirfd, or AT_FDCWD) is on a file system
 * mounted noexec, where execve refuses it with EACCES as access(X_OK)
 * does: NULL if not, else buf saying so and naming the mount point where
 * /proc/self/mountinfo tells it ("its file system, /srv, is mounted
 * noexec"). */
const char *preflight_noexec_words(int dirfd, const char *name, char *buf, size_t len);

/*
 * A secret_file readable by everyone, or by a group other than one user's
 * own (a group named after a user whose primary group it is, with no other
 * members: the package's root:hookd 0640) is a warning.
 */
enum preflight preflight_secret_file(const char *path, char *why, size_t len);

/*
 * Each workdir the config gives ([server], [endpoint NAME], [event NAME])
 * that is not a directory (missing, not one, or not to be looked at):
 * report(why, ctx) once for each, why naming the section and the path.
 * A hook would fail there ("cannot chdir to workdir ..."). Returns how many.
 */
struct config;
size_t preflight_workdirs(const struct config *cfg, void (*report)(const char *why, void *ctx),
                          void *ctx);

#endif
