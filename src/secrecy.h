/*
 * Keeping hookd's secrets inside hookd: a process that nobody else of its
 * uid can read (not dumpable, so no ptrace, /proc/PID/mem or environ, and
 * no core file), and secret_env variables taken out of its environment
 * once read. Who the hooks run as, the other half, is hookuser.h.
 */
#ifndef HOOKD_SECRECY_H
#define HOOKD_SECRECY_H

#include <stdbool.h>
#include <sys/resource.h>

/*
 * Not dumpable, and a soft RLIMIT_CORE of 0 (the hard limit is kept, so
 * that a hook gets the limit hookd was started with back: see
 * secrecy_hook_core_limit). Called at start, before any secret is read,
 * and again after every change of uid, which resets dumpable to the
 * fs.suid_dumpable default. 0, or -errno.
 */
int secrecy_protect_process(void);

/* The RLIMIT_CORE hookd was started with, for its hooks; false before
 * secrecy_protect_process has run. */
bool secrecy_hook_core_limit(struct rlimit *rl);

/*
 * The value of the environment variable name, or NULL when it is not set.
 * The first call for a name takes the variable out of the environment and
 * wipes its bytes where /proc/PID/environ shows them; the value read then
 * is kept for the life of the process and every later call returns it (a
 * reload rereads the config, not the environment).
 */
const char *secrecy_take_env(const char *name);

/* Frees the values taken, wiping them first (for a clean exit). */
void secrecy_cleanup(void);

#endif
