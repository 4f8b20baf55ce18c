/*
 * `hookd check`'s look at what the config names but cannot vouch for: the
 * hooks' #! lines and the secret files' modes (preflight.h). Read-only:
 * nothing here runs a hook.
 */
#include "preflight.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config.h"

/* Linux reads this much of a file to find its #! line (BINPRM_BUF_SIZE). */
#define SHEBANG_MAX 256

/*
 * How many #! interpreters down Linux follows (and so the check): an
 * interpreter may be a script in turn, but the fifth one down must be a
 * binary, else execve fails with ELOOP.
 */
#define INTERP_DEPTH_MAX 5

/* Linux refuses an ELF whose program headers take more than this. */
#define ELF_PHDRS_MAX 65536

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ELFDATA_HOST ELFDATA2LSB
#else
#define ELFDATA_HOST ELFDATA2MSB
#endif

/* The ELF machines (e_machine) this build's kernel runs: its own, and the
 * 32-bit one a 64-bit kernel may run too. Elsewhere, 0: no look. */
#if defined(__x86_64__)
#define ELF_HOST_MACHINE EM_X86_64
#define ELF_HOST_MACHINE_32 EM_386
#elif defined(__aarch64__)
#define ELF_HOST_MACHINE EM_AARCH64
#define ELF_HOST_MACHINE_32 EM_ARM
#elif defined(__i386__)
#define ELF_HOST_MACHINE EM_386
#elif defined(__arm__)
#define ELF_HOST_MACHINE EM_ARM
#elif defined(__riscv)
#define ELF_HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define ELF_HOST_MACHINE EM_PPC64
#define ELF_HOST_MACHINE_32 EM_PPC
#elif defined(__s390x__)
#define ELF_HOST_MACHINE EM_S390
#else
#define ELF_HOST_MACHINE 0
#endif
#ifndef ELF_HOST_MACHINE_32
#define ELF_HOST_MACHINE_32 ELF_HOST_MACHINE
#endif

/* The machines a hook built elsewhere is most likely for, by name: one
 * not listed says nothing (execve's "Exec format error" stands). */
static const struct {
	uint16_t machine;
	const char *name;
} elf_machines[] = {
	{EM_X86_64, "x86-64"}, {EM_386, "i386"},       {EM_AARCH64, "aarch64"},
	{EM_ARM, "arm"},       {EM_RISCV, "riscv"},    {EM_PPC64, "ppc64"},
	{EM_PPC, "ppc"},       {EM_S390, "s390"},      {EM_MIPS, "mips"},
#ifdef EM_LOONGARCH /* glibc 2.36 and later */
	{EM_LOONGARCH, "loongarch"},
#endif
};

static const char *elf_machine_name(uint16_t machine)
{
	for (size_t i = 0; i < sizeof(elf_machines) / sizeof(elf_machines[0]); i++)
		if (elf_machines[i].machine == machine)
			return elf_machines[i].name;
	return NULL;
}

/*
 * One look at a hook and what it starts. A finding goes to why, after
 * prefix (the chain of interpreters it is about: "interpreter /a: "), with
 * the errno execve fails with for it; 0 where execve itself succeeds (what
 * `env NAME` starts is env's own execve, after the hook's: env exits 127).
 */
struct look {
	const char *hook_path;
	char *why;
	size_t len;
	char prefix[1024];
	bool through_env;
	int exec_errno;
};

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

static enum preflight found(struct look *lk, enum preflight level, int exec_errno,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum preflight found(struct look *lk, enum preflight level, int exec_errno,
                            const char *fmt, ...)
{
	int n = snprintf(lk->why, lk->len, "%s", lk->prefix);
	if (n >= 0 && (size_t)n < lk->len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(lk->why + n, lk->len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	lk->exec_errno = lk->through_env ? 0 : exec_errno;
	return level;
}

/* mountinfo's octal escapes (\040 for a space), undone in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * The mount point of the file open on fd, from /proc/self/mountinfo: the
 * deepest mount of its device whose mount point holds the file's path
 * (bind mounts share a device); false when none is found (no /proc).
 */
static bool mount_point_of(int fd, char *out, size_t outlen)
{
	struct stat st;
	char self[64], path[PATH_MAX];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self, path, sizeof(path) - 1);
	if (n <= 0 || fstat(fd, &st) != 0)
		return false;
	path[n] = '\0';
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char *line = NULL;
	size_t cap = 0, best = 0;
	bool found = false;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mount-point options ... */
		unsigned maj, min;
		char mp[PATH_MAX];
		if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &maj, &min, mp) != 3 ||
		    makedev(maj, min) != st.st_dev)
			continue;
		unescape_mountinfo(mp);
		size_t m = strlen(mp);
		bool holds = strcmp(mp, "/") == 0 ||
		             (strncmp(path, mp, m) == 0 && (path[m] == '/' || path[m] == '\0'));
		if (holds && (!found || m > best)) {
			snprintf(out, outlen, "%s", mp);
			best = m;
			found = true;
		}
	}
	free(line);
	fclose(f);
	return found;
}

const char *preflight_noexec_words(int dirfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct statvfs sv;
	bool noexec = fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_NOEXEC);
	char mount[PATH_MAX];
	if (!noexec)
		buf = NULL;
	else if (mount_point_of(fd, mount, sizeof(mount)))
		snprintf(buf, len, "its file system, %s, is mounted noexec", mount);
	else
		snprintf(buf, len, "its file system is mounted noexec");
	close(fd);
	return buf;
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

/*
 * What execve says of the file at path (named subject in the finding)
 * before it looks into it: each reason it refuses one, said apart, since
 * "Permission denied" alone names neither the file nor the cause.
 */
static enum preflight check_executable(struct look *lk, const char *path, const char *subject)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		int e = errno;
		return found(lk, PREFLIGHT_ERROR, e, "%s: %s", subject, strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return found(lk, PREFLIGHT_ERROR, EACCES, "%s: %s (not a regular file)", subject,
		             strerror(EACCES));
	char noexec[PATH_MAX + 64];
	if (preflight_noexec_words(AT_FDCWD, path, noexec, sizeof(noexec)))
		return found(lk, PREFLIGHT_ERROR, EACCES, "%s: %s (%s)", subject, strerror(EACCES),
		             noexec);
	if (access(path, X_OK) != 0) {
		int e = errno;
		return found(lk, PREFLIGHT_ERROR, e, "%s: %s (not executable: mode %04o)", subject,
		             strerror(e), (unsigned)(st.st_mode & 07777));
	}
	return PREFLIGHT_OK;
}

/* Whether name (no '/') is an executable on the colon-separated path; if
 * so, where, in file. */
static bool on_path(const char *name, const char *path, char *file, size_t filelen)
{
	while (*path) {
		size_t n = strcspn(path, ":");
		/* An empty entry is the working directory: a hook's is its own. */
		if (n > 0 &&
		    snprintf(file, filelen, "%.*s/%s", (int)n, path, name) < (int)filelen &&
		    executable_file(file) == 0)
			return true;
		path += n;
		if (*path)
			path++;
	}
	return false;
}

/* n bytes at off of the file open on fd, size bytes long; false for any
 * part beyond its end. */
static bool read_at(int fd, void *buf, uint64_t n, uint64_t off, uint64_t size)
{
	if (off > size || n > size - off)
		return false;
	return pread(fd, buf, (size_t)n, (off_t)off) == (ssize_t)n;
}

/*
 * The PT_INTERP path (its dynamic loader) of the ELF file open on fd,
 * into out: 1 when it has one, 0 for a static binary, -1 when the check
 * cannot tell (truncated, offsets out of the file, another byte order):
 * execve's own word stands then. Nothing the file says is trusted.
 */
static int elf_interpreter(int fd, char *out, size_t outlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < 0)
		return -1;
	uint64_t size = (uint64_t)st.st_size;
	union {
		Elf32_Ehdr e32;
		Elf64_Ehdr e64;
	} eh;
	unsigned char ident[EI_NIDENT];
	if (!read_at(fd, ident, EI_NIDENT, 0, size) || ident[EI_DATA] != ELFDATA_HOST)
		return -1;
	bool is64 = ident[EI_CLASS] == ELFCLASS64;
	if (!is64 && ident[EI_CLASS] != ELFCLASS32)
		return -1;
	if (!read_at(fd, &eh, is64 ? sizeof(eh.e64) : sizeof(eh.e32), 0, size))
		return -1;
	uint64_t phoff = is64 ? eh.e64.e_phoff : eh.e32.e_phoff;
	uint64_t phentsize = is64 ? eh.e64.e_phentsize : eh.e32.e_phentsize;
	uint64_t phnum = is64 ? eh.e64.e_phnum : eh.e32.e_phnum;
	if (phentsize != (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) || phnum == 0 ||
	    phnum * phentsize > ELF_PHDRS_MAX || phoff > size || phnum * phentsize > size - phoff)
		return -1;
	for (uint64_t i = 0; i < phnum; i++) {
		union {
			Elf32_Phdr p32;
			Elf64_Phdr p64;
		} ph;
		if (!read_at(fd, &ph, phentsize, phoff + i * phentsize, size))
			return -1;
		if ((is64 ? ph.p64.p_type : ph.p32.p_type) != PT_INTERP)
			continue;
		uint64_t off = is64 ? ph.p64.p_offset : ph.p32.p_offset;
		uint64_t n = is64 ? ph.p64.p_filesz : ph.p32.p_filesz;
		/* Linux's own bounds: a NUL-terminated path of at most PATH_MAX. */
		if (n < 2 || n > outlen || !read_at(fd, out, n, off, size) || out[n - 1] != '\0')
			return -1;
		return 1;
	}
	return 0;
}

static enum preflight check_file(struct look *lk, const char *path, int depth);

/* The interpreter at path that the file looked at starts (subject names
 * it): there and executable, and what it starts in turn. */
static enum preflight check_interpreter(struct look *lk, const char *path, const char *subject,
                                        int depth)
{
	enum preflight p = check_executable(lk, path, subject);
	if (p != PREFLIGHT_OK)
		return p;
	size_t mark = strlen(lk->prefix);
	snprintf(lk->prefix + mark, sizeof(lk->prefix) - mark, "%s: ", subject);
	p = check_file(lk, path, depth);
	lk->prefix[mark] = '\0';
	return p;
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

/* What `#!/usr/bin/env ARG` starts, after the hook's own execve. */
static enum preflight check_env_program(struct look *lk, const char *arg, int depth)
{
	char prog[SHEBANG_MAX];
	env_program(arg, prog, sizeof(prog));
	if (!*prog)
		return PREFLIGHT_OK;
	char file[PATH_MAX], subject[PATH_MAX + 32];
	if (strchr(prog, '/')) {
		snprintf(file, sizeof(file), "%s", prog);
	} else if (!on_path(prog, lk->hook_path, file, sizeof(file))) {
		bool was = lk->through_env;
		lk->through_env = true;
		enum preflight p = found(
			lk, PREFLIGHT_ERROR, 0,
			"interpreter '%s' (through env) is not on the PATH hooks get (%s)", prog,
			lk->hook_path);
		lk->through_env = was;
		return p;
	}
	snprintf(subject, sizeof(subject), "interpreter %s (through env)", file);
	bool was = lk->through_env;
	lk->through_env = true;
	enum preflight p = check_interpreter(lk, file, subject, depth);
	lk->through_env = was;
	return p;
}

/* A #! line (NUL-terminated, no newline) of the file at depth. */
static enum preflight check_shebang(struct look *lk, char *line, int depth)
{
	if (strchr(line, '\r'))
		return found(lk, PREFLIGHT_ERROR, ENOENT,
		             "its #! line ends in a carriage return (CRLF line endings): execve "
		             "fails with \"No such file or directory\"");
	char *interp = line + 2 + strspn(line + 2, " \t");
	size_t n = strcspn(interp, " \t");
	char *arg = interp + n + strspn(interp + n, " \t");
	interp[n] = '\0';
	for (size_t k = strlen(arg); k > 0 && strchr(" \t", arg[k - 1]); k--)
		arg[k - 1] = '\0';
	if (!*interp)
		return found(lk, PREFLIGHT_ERROR, ENOEXEC, "its #! line names no interpreter (%s)",
		             strerror(ENOEXEC));
	char subject[SHEBANG_MAX + 16];
	snprintf(subject, sizeof(subject), "interpreter %s", interp);
	enum preflight p;
	if (depth >= INTERP_DEPTH_MAX) {
		/* Past env the count starts again: say nothing there. */
		if (lk->through_env)
			return PREFLIGHT_OK;
		/* Linux opens this one, and only then stops. */
		p = check_executable(lk, interp, subject);
		if (p != PREFLIGHT_OK)
			return p;
		return found(lk, PREFLIGHT_ERROR, ELOOP,
		             "a script as well: Linux follows %d #! interpreters down, the last "
		             "a binary (%s)",
		             INTERP_DEPTH_MAX, strerror(ELOOP));
	}
	p = check_interpreter(lk, interp, subject, depth + 1);
	if (p != PREFLIGHT_OK)
		return p;
	const char *base = strrchr(interp, '/');
	if (strcmp(base ? base + 1 : interp, "env") != 0 || !*arg)
		return PREFLIGHT_OK;
	return check_env_program(lk, arg, depth + 1);
}

/* Whether binfmt_misc has a handler registered, such as qemu-user's,
 * which may run a binary for another machine. */
static bool binfmt_handlers(void)
{
	bool any = false;
	DIR *d = opendir("/proc/sys/fs/binfmt_misc");
	struct dirent *e;
	while (d && !any && (e = readdir(d)) != NULL)
		any = e->d_name[0] != '.' && strcmp(e->d_name, "register") != 0 &&
		      strcmp(e->d_name, "status") != 0;
	if (d)
		closedir(d);
	return any;
}

/*
 * The machine an ELF binary is for, when it is a known one this machine
 * does not run (a hook built for aarch64 copied to an x86-64 host): execve
 * fails with ENOEXEC, and "Exec format error" names neither. An error,
 * but a warning where binfmt_misc has a handler: an emulator (qemu-user)
 * may run it.
 */
static enum preflight check_elf_machine(struct look *lk, const unsigned char *head, size_t n)
{
	if (ELF_HOST_MACHINE == 0 || n < EI_NIDENT + 4)
		return PREFLIGHT_OK;
	/* e_machine: the same offset in either class, in the file's order */
	const unsigned char *m = head + offsetof(Elf64_Ehdr, e_machine);
	bool msb = head[EI_DATA] == ELFDATA2MSB;
	if (!msb && head[EI_DATA] != ELFDATA2LSB)
		return PREFLIGHT_OK;
	uint16_t machine = msb ? (uint16_t)(m[0] << 8 | m[1]) : (uint16_t)(m[1] << 8 | m[0]);
	const char *name = elf_machine_name(machine);
	bool runs = head[EI_DATA] == ELFDATA_HOST &&
	            (machine == ELF_HOST_MACHINE || machine == ELF_HOST_MACHINE_32);
	if (runs || !name)
		return PREFLIGHT_OK;
	return found(lk, binfmt_handlers() ? PREFLIGHT_WARN : PREFLIGHT_ERROR, ENOEXEC,
	             "an ELF binary for %s%s, and this machine runs %s ones (%s)", name,
	             head[EI_DATA] == ELFDATA_HOST ? "" : msb ? " (big-endian)" : " (little-endian)",
	             elf_machine_name(ELF_HOST_MACHINE),
	             strerror(ENOEXEC));
}

/* An ELF binary's dynamic loader, which execve opens as it would the
 * binary: a binary built on another distribution (musl's
 * /lib/ld-musl-x86_64.so.1) fails with ENOENT when it is not there. */
static enum preflight check_elf(struct look *lk, int fd, const unsigned char *head, size_t n)
{
	enum preflight p = check_elf_machine(lk, head, n);
	if (p != PREFLIGHT_OK)
		return p;
	char loader[PATH_MAX];
	if (elf_interpreter(fd, loader, sizeof(loader)) <= 0)
		return PREFLIGHT_OK;
	char subject[PATH_MAX + 32];
	snprintf(subject, sizeof(subject), "its ELF interpreter %s", loader);
	return check_executable(lk, loader, subject);
}

/* What is in the file at path, the hook (depth 0) or an interpreter: an
 * ELF binary, a #! line, or neither. */
static enum preflight check_file(struct look *lk, const char *path, int depth)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		/* execve needs no read permission for a binary: for an
		 * interpreter, an unreadable one says nothing. */
		if (depth)
			return PREFLIGHT_OK;
		return found(lk, PREFLIGHT_WARN, 0, "cannot read it to check its #! line: %s",
		             strerror(e));
	}
	char buf[SHEBANG_MAX + 1];
	ssize_t got = read(fd, buf, SHEBANG_MAX);
	int e = errno;
	enum preflight p = PREFLIGHT_OK;
	if (got < 0) {
		if (!depth)
			p = found(lk, PREFLIGHT_WARN, 0, "cannot read it to check its #! line: %s",
			          strerror(e));
	} else if (got >= SELFMAG && memcmp(buf, ELFMAG, SELFMAG) == 0) {
		p = check_elf(lk, fd, (const unsigned char *)buf, (size_t)got);
	} else if (got < 2 || buf[0] != '#' || buf[1] != '!') {
		p = found(lk, PREFLIGHT_WARN, ENOEXEC, "no #! line and not an ELF binary (%s)",
		          strerror(ENOEXEC));
	} else {
		buf[got] = '\0';
		/* A NUL ends the line for the kernel too. */
		buf[strcspn(buf, "\n")] = '\0';
		p = check_shebang(lk, buf, depth);
	}
	close(fd);
	return p;
}

static enum preflight look_at_hook(struct look *lk, const char *path)
{
	enum preflight p = check_executable(lk, path, path);
	return p != PREFLIGHT_OK ? p : check_file(lk, path, 0);
}

enum preflight preflight_hook(const char *path, const char *hook_path, char *why, size_t len)
{
	struct look lk = {.hook_path = hook_path, .why = why, .len = len};
	return look_at_hook(&lk, path);
}

bool preflight_exec_failure(const char *path, const char *hook_path, int err, char *why,
                            size_t len)
{
	struct look lk = {.hook_path = hook_path, .why = why, .len = len};
	return look_at_hook(&lk, path) != PREFLIGHT_OK && lk.exec_errno == err;
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
