/*
 * `hookd check`'s look at what the config names but cannot vouch for: the
 * hooks' #! lines and the secret files' modes (preflight.h). Read-only:
 * nothing here runs a hook.
 */
#include "preflight.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Linux reads this much of a file to find its #! line (BINPRM_BUF_SIZE). */
#define SHEBANG_MAX 256

static enum preflight say(enum preflight level, char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum preflight say(enum preflight level, char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return level;
}

/* 0 when path is an executable regular file, else an errno. */
static int executable_file(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno;
	if (!S_ISREG(st.st_mode))
		return EACCES; /* what execve says for a directory */
	return access(path, X_OK) == 0 ? 0 : errno;
}

/* Whether name (no '/') is an executable on the colon-separated path. */
static bool on_path(const char *name, const char *path)
{
	char file[4096];
	while (*path) {
		size_t n = strcspn(path, ":");
		/* An empty entry is the working directory: a hook's is its own. */
		if (n > 0 && snprintf(file, sizeof(file), "%.*s/%s", (int)n, path, name) <
		                     (int)sizeof(file)) {
			if (executable_file(file) == 0)
				return true;
		}
		path += n;
		if (*path)
			path++;
	}
	return false;
}

/*
 * The program `env ARG` starts. The kernel hands env the rest of the #!
 * line as one argument, so without -S "bash -e" is the name looked for;
 * with -S env splits it, and its options and NAME=value words come first.
 * Empty when there is nothing to check.
 */
static void env_program(const char *arg, char *out, size_t outlen)
{
	out[0] = '\0';
	if (strncmp(arg, "-S", 2) != 0) {
		if (arg[0] != '-')
			snprintf(out, outlen, "%s", arg);
		return;
	}
	const char *p = arg + 2;
	for (;;) {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t");
		if (n == 0)
			return;
		if (p[0] != '-' && !memchr(p, '=', n)) {
			snprintf(out, outlen, "%.*s", (int)n, p);
			return;
		}
		p += n;
	}
}

static enum preflight check_shebang(char *line, const char *hook_path, char *why, size_t len)
{
	if (strchr(line, '\r'))
		return say(PREFLIGHT_ERROR, why, len,
		           "its #! line ends in a carriage return (CRLF line endings): execve "
		           "fails with \"No such file or directory\"");
	char *interp = line + 2 + strspn(line + 2, " \t");
	size_t n = strcspn(interp, " \t");
	char *arg = interp + n + strspn(interp + n, " \t");
	interp[n] = '\0';
	for (size_t k = strlen(arg); k > 0 && strchr(" \t", arg[k - 1]); k--)
		arg[k - 1] = '\0';
	if (!*interp)
		return say(PREFLIGHT_ERROR, why, len, "its #! line names no interpreter");
	int e = executable_file(interp);
	if (e)
		return say(PREFLIGHT_ERROR, why, len, "interpreter %s: %s", interp, strerror(e));
	const char *base = strrchr(interp, '/');
	if (strcmp(base ? base + 1 : interp, "env") != 0 || !*arg)
		return PREFLIGHT_OK;
	char prog[SHEBANG_MAX];
	env_program(arg, prog, sizeof(prog));
	if (!*prog)
		return PREFLIGHT_OK;
	if (strchr(prog, '/')) {
		e = executable_file(prog);
		if (e)
			return say(PREFLIGHT_ERROR, why, len, "interpreter %s (through env): %s", prog,
			           strerror(e));
		return PREFLIGHT_OK;
	}
	if (!on_path(prog, hook_path))
		return say(PREFLIGHT_ERROR, why, len,
		           "interpreter '%s' (through env) is not on the PATH hooks get (%s)", prog,
		           hook_path);
	return PREFLIGHT_OK;
}

enum preflight preflight_hook(const char *path, const char *hook_path, char *why, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return say(PREFLIGHT_WARN, why, len, "cannot read it to check its #! line: %s",
		           strerror(errno));
	char buf[SHEBANG_MAX + 1];
	ssize_t got = read(fd, buf, SHEBANG_MAX);
	int e = errno;
	close(fd);
	if (got < 0)
		return say(PREFLIGHT_WARN, why, len, "cannot read it to check its #! line: %s",
		           strerror(e));
	buf[got] = '\0';
	if (got >= 4 && memcmp(buf, "\177ELF", 4) == 0)
		return PREFLIGHT_OK;
	if (got < 2 || buf[0] != '#' || buf[1] != '!')
		return say(PREFLIGHT_WARN, why, len,
		           "no #! line and not an ELF binary: it may fail with \"Exec format "
		           "error\"");
	/* A NUL ends the line for the kernel too. */
	buf[strcspn(buf, "\n")] = '\0';
	return check_shebang(buf, hook_path, why, len);
}

/* A user's private group: named after a user whose primary group it is,
 * with no other members listed. */
static bool private_group(gid_t gid)
{
	struct group *gr = getgrgid(gid);
	if (!gr || (gr->gr_mem && gr->gr_mem[0]))
		return false;
	struct passwd *pw = getpwnam(gr->gr_name);
	return pw && pw->pw_gid == gid;
}

enum preflight preflight_secret_file(const char *path, char *why, size_t len)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return say(PREFLIGHT_WARN, why, len, "secret_file %s: %s", path, strerror(errno));
	if (st.st_mode & S_IROTH)
		return say(PREFLIGHT_WARN, why, len,
		           "secret_file %s is readable by every user (mode %04o): chmod o-r it",
		           path, (unsigned)(st.st_mode & 07777));
	if ((st.st_mode & S_IRGRP) && !private_group(st.st_gid)) {
		struct group *gr = getgrgid(st.st_gid);
		char gname[64];
		if (gr)
			snprintf(gname, sizeof(gname), "%s", gr->gr_name);
		else
			snprintf(gname, sizeof(gname), "%u", (unsigned)st.st_gid);
		return say(PREFLIGHT_WARN, why, len,
		           "secret_file %s is readable by group %s (mode %04o), which is not one "
		           "user's own group: chmod g-r it, or chgrp it to the group hookd runs as",
		           path, gname, (unsigned)(st.st_mode & 07777));
	}
	return PREFLIGHT_OK;
}

/* One workdir: reported unless it is a directory this process can stat. */
static size_t check_workdir(const struct delivery_opts *o, const char *section, const char *name,
                            void (*report)(const char *why, void *ctx), void *ctx)
{
	if (!(o->set & OPT_WORKDIR) || !o->workdir)
		return 0;
	struct stat st;
	const char *what = NULL;
	if (stat(o->workdir, &st) < 0)
		what = strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		what = "not a directory";
	if (!what)
		return 0;
	char why[1024];
	snprintf(why, sizeof(why), "[%s%s%s] workdir %s: %s: hooks cannot run there", section,
	         name ? " " : "", name ? name : "", o->workdir, what);
	report(why, ctx);
	return 1;
}

size_t preflight_workdirs(const struct config *cfg, void (*report)(const char *why, void *ctx),
                          void *ctx)
{
	size_t n = check_workdir(&cfg->server_opts, "server", NULL, report, ctx);
	for (size_t i = 0; i < cfg->nendpoints; i++)
		n += check_workdir(&cfg->endpoints[i].opts, "endpoint", cfg->endpoints[i].name,
		                   report, ctx);
	for (size_t i = 0; i < cfg->nevents; i++)
		n += check_workdir(&cfg->events[i].opts, "event", cfg->events[i].name, report, ctx);
	return n;
}
