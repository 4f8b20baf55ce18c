/*
 * preflight: what `hookd check` and an exec failure's error say of a hook
 * that cannot start, one small file a case in a temp dir: a missing ELF
 * loader (a copy of /bin/true with its PT_INTERP patched, and made-up 32-
 * and 64-bit ELFs), ELFs that are truncated or lie about their offsets
 * (nothing said, nothing read out of bounds), #! chains, an interpreter
 * that is not executable or on a noexec mount, a script without #!. Where
 * a case says what execve fails with, execve is tried on the file too.
 */
#include "check.h"

#include <elf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preflight.h"
#include "util.h"

#define LOADER_MISSING "/nonexistent/ld.so"

static char tmp[] = "/tmp/hookd-test-preflight-XXXXXX";

static char *at(const char *name)
{
	return xasprintf("%s/%s", tmp, name);
}

/* name in tmp with these bytes and mode. */
static void put(const char *name, const void *bytes, size_t n, mode_t mode)
{
	char *p = at(name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, bytes, n) == (ssize_t)n, "write %s", p);
	close(fd);
	chmod(p, mode);
	free(p);
}

/* text with each "{tmp}" in it made tmp. */
static char *with_tmp(const char *text)
{
	char *t = xstrdup(text);
	char *s;
	while ((s = strstr(t, "{tmp}")) != NULL) {
		*s = '\0';
		char *n = xasprintf("%s%s%s", t, tmp, s + 5);
		free(t);
		t = n;
	}
	return t;
}

static void put_text(const char *name, const char *text, mode_t mode)
{
	char *t = with_tmp(text);
	put(name, t, strlen(t), mode);
	free(t);
}

/* The whole file at path (NULL if it cannot be read), its size in len. */
static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *buf = xmalloc((size_t)st.st_size);
	ssize_t got = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (got != st.st_size) {
		free(buf);
		return NULL;
	}
	*len = (size_t)got;
	return buf;
}

/* This machine's e_machine, as its /bin/true says, for an ELF execve
 * gets as far as its loader with. */
static uint16_t host_machine(void)
{
	Elf64_Ehdr eh = {0};
	int fd = open("/bin/true", O_RDONLY);
	if (fd >= 0 && read(fd, &eh, sizeof(eh)) < 0)
		eh.e_machine = 0;
	if (fd >= 0)
		close(fd);
	return eh.e_machine; /* at the same offset in a 32-bit header */
}

/* A made-up ELF of the host's byte order: the header, one PT_INTERP
 * program header, and its path. */
static size_t make_elf(unsigned char *out, bool is64, const char *loader)
{
	size_t n = strlen(loader) + 1;
	memset(out, 0, 512);
	memcpy(out, ELFMAG, SELFMAG);
	out[EI_CLASS] = is64 ? ELFCLASS64 : ELFCLASS32;
	out[EI_DATA] = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
	out[EI_VERSION] = EV_CURRENT;
	if (is64) {
		Elf64_Ehdr eh;
		memcpy(&eh, out, sizeof(eh));
		eh.e_type = ET_EXEC;
		eh.e_machine = host_machine();
		eh.e_version = EV_CURRENT;
		eh.e_ehsize = sizeof(eh);
		eh.e_phoff = sizeof(eh);
		eh.e_phentsize = sizeof(Elf64_Phdr);
		eh.e_phnum = 1;
		Elf64_Phdr ph = {.p_type = PT_INTERP,
		                 .p_offset = sizeof(eh) + sizeof(ph),
		                 .p_filesz = n};
		memcpy(out, &eh, sizeof(eh));
		memcpy(out + sizeof(eh), &ph, sizeof(ph));
		memcpy(out + sizeof(eh) + sizeof(ph), loader, n);
		return sizeof(eh) + sizeof(ph) + n;
	}
	Elf32_Ehdr eh;
	memcpy(&eh, out, sizeof(eh));
	eh.e_type = ET_EXEC;
	eh.e_version = EV_CURRENT;
	eh.e_ehsize = sizeof(eh);
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf32_Phdr);
	eh.e_phnum = 1;
	Elf32_Phdr ph = {.p_type = PT_INTERP, .p_offset = sizeof(eh) + sizeof(ph), .p_filesz = n};
	memcpy(out, &eh, sizeof(eh));
	memcpy(out + sizeof(eh), &ph, sizeof(ph));
	memcpy(out + sizeof(eh) + sizeof(ph), loader, n);
	return sizeof(eh) + sizeof(ph) + n;
}

/* A copy of /bin/true whose PT_INTERP names LOADER_MISSING; false when
 * /bin/true has none (a static build) or is not a 64-bit ELF. */
static bool make_patched_true(const char *name)
{
	size_t len;
	char *bin = slurp("/bin/true", &len);
	if (!bin || len < sizeof(Elf64_Ehdr) || bin[EI_CLASS] != ELFCLASS64) {
		free(bin);
		return false;
	}
	Elf64_Ehdr eh;
	memcpy(&eh, bin, sizeof(eh));
	bool patched = false;
	for (size_t i = 0; i < eh.e_phnum && !patched; i++) {
		Elf64_Phdr ph;
		size_t off = eh.e_phoff + i * sizeof(ph);
		if (off + sizeof(ph) > len)
			break;
		memcpy(&ph, bin + off, sizeof(ph));
		if (ph.p_type == PT_INTERP && ph.p_filesz > sizeof(LOADER_MISSING) &&
		    ph.p_offset + ph.p_filesz <= len) {
			memset(bin + ph.p_offset, 0, ph.p_filesz);
			memcpy(bin + ph.p_offset, LOADER_MISSING, sizeof(LOADER_MISSING));
			patched = true;
		}
	}
	if (patched)
		put(name, bin, len, 0755);
	free(bin);
	return patched;
}

/* Whether binfmt_misc has a handler registered (an emulator such as
 * qemu-user may then run a binary for another machine). */
static bool binfmt_handlers(void)
{
	bool any = false;
	DIR *d = opendir("/proc/sys/fs/binfmt_misc");
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		any |= e->d_name[0] != '.' && strcmp(e->d_name, "register") != 0 &&
		       strcmp(e->d_name, "status") != 0;
	if (d)
		closedir(d);
	return any;
}

/* The errno execve of path fails with, in a child (0: it ran). */
/* Under valgrind, a child's execve is valgrind's: it checks the file
 * itself and its failing child does not exit with the kernel's errno, so
 * the cases are not exec'd there (the plain and ASan runs do). */
static bool under_valgrind(void)
{
	const char *pre = getenv("LD_PRELOAD");
	return pre && strstr(pre, "vgpreload");
}

static int exec_errno(const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {(char *)path, NULL};
		char *envp[] = {NULL};
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execve(path, argv, envp);
		_exit(errno < 256 ? errno : 255);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct hook_case {
	const char *name;    /* the hook's file in tmp */
	enum preflight want; /* what preflight_hook says */
	const char *says;    /* in why ("{tmp}/" stands for tmp), NULL for OK */
	int err;             /* what execve fails with, and the finding explains; 0: none */
	bool tried;          /* execve is tried on it, and fails with err */
};

static void run_case(const struct hook_case *c, const char *hook_path)
{
	char *path = at(c->name);
	char why[1024] = "";
	enum preflight got = preflight_hook(path, hook_path, why, sizeof(why));
	CHECK(got == c->want, "%s: level %d, want %d (%s)", c->name, got, c->want, why);
	if (c->says) {
		char *want = with_tmp(c->says);
		CHECK(strstr(why, want) != NULL, "%s: \"%s\" does not say \"%s\"", c->name, why,
		      want);
		free(want);
	}
	for (int e = 0; e < 4; e++) {
		int err = (int[]){ENOENT, EACCES, ENOEXEC, ELOOP}[e];
		char why2[1024];
		bool explains = preflight_exec_failure(path, hook_path, err, why2, sizeof(why2));
		CHECK(explains == (c->err == err), "%s: explains %s: %d", c->name, strerror(err),
		      explains);
		if (explains)
			CHECK_STR(why2, why, "%s: the same words as check", c->name);
	}
	if (c->tried && !under_valgrind())
		CHECK(exec_errno(path) == c->err, "%s: execve fails with %d, want %d", c->name,
		      exec_errno(path), c->err);
	free(path);
}

static void test_hooks(void)
{
	unsigned char elf[512];
	put("elf64-missing", elf, make_elf(elf, true, LOADER_MISSING), 0755);
	put("elf32-missing", elf, make_elf(elf, false, LOADER_MISSING), 0755);
	char *plain = at("plain.txt");
	put_text("plain.txt", "not a program\n", 0644);
	put("elf64-loader-not-exec", elf, make_elf(elf, true, plain), 0755);
	free(plain);
	{
		/* no PT_INTERP: a static binary */
		make_elf(elf, true, "x");
		Elf64_Phdr ph;
		memcpy(&ph, elf + sizeof(Elf64_Ehdr), sizeof(ph));
		ph.p_type = PT_LOAD;
		memcpy(elf + sizeof(Elf64_Ehdr), &ph, sizeof(ph));
		put("elf64-static", elf, sizeof(Elf64_Ehdr) + sizeof(ph), 0755);
	}
	/* Truncated: in the header, in the program headers, in the path. */
	size_t full = make_elf(elf, true, LOADER_MISSING);
	put("trunc-ident", elf, 10, 0755);
	put("trunc-header", elf, sizeof(Elf64_Ehdr) - 8, 0755);
	put("trunc-phdr", elf, sizeof(Elf64_Ehdr) + 20, 0755);
	put("trunc-interp", elf, full - 5, 0755);
	/* Lying: e_phoff past the end and near 2^64, e_phnum * e_phentsize
	 * past the end, a wrong e_phentsize, p_offset and p_filesz past the
	 * end, a path without its NUL. */
	struct {
		const char *name;
		size_t at, size;
		uint64_t value;
	} lies[] = {
		{"lie-phoff", offsetof(Elf64_Ehdr, e_phoff), 8, 1u << 20},
		{"lie-phoff-wrap", offsetof(Elf64_Ehdr, e_phoff), 8, UINT64_MAX - 16},
		{"lie-phnum", offsetof(Elf64_Ehdr, e_phnum), 2, 0xffff},
		{"lie-phentsize", offsetof(Elf64_Ehdr, e_phentsize), 2, 8},
		{"lie-p-offset", sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_offset), 8,
		 UINT64_MAX - 4},
		{"lie-p-filesz", sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), 8, 1u << 30},
		{"lie-no-nul", sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), 8,
		 sizeof(LOADER_MISSING) - 1},
	};
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		unsigned char copy[512];
		memcpy(copy, elf, full);
		if (lies[i].size == 8) {
			uint64_t v = lies[i].value;
			memcpy(copy + lies[i].at, &v, 8);
		} else {
			uint16_t v = (uint16_t)lies[i].value;
			memcpy(copy + lies[i].at, &v, 2);
		}
		put(lies[i].name, copy, full, 0755);
	}
	bool have_true = make_patched_true("true-missing-loader");
	/* Static binaries for another machine: one of this byte order, one
	 * of the other (e_machine in the file's order). */
	uint16_t host = host_machine();
	bool host_x86 = host == EM_X86_64;
	const char *foreign = host_x86 ? "aarch64" : "x86-64";
	{
		make_elf(elf, true, "x");
		Elf64_Ehdr eh;
		memcpy(&eh, elf, sizeof(eh));
		eh.e_machine = host_x86 ? EM_AARCH64 : EM_X86_64;
		eh.e_phnum = 0;
		memcpy(elf, &eh, sizeof(eh));
		put("elf64-foreign", elf, sizeof(eh), 0755);
		bool host_msb = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
		elf[EI_DATA] = host_msb ? ELFDATA2LSB : ELFDATA2MSB;
		uint16_t m = EM_S390; /* a big-endian one, written as the file says */
		elf[18] = (unsigned char)(host_msb ? m & 0xff : m >> 8);
		elf[19] = (unsigned char)(host_msb ? m >> 8 : m & 0xff);
		put("elf64-other-order", elf, sizeof(eh), 0755);
	}
	put_text("script-foreign", "#!{tmp}/elf64-foreign\necho hi\n", 0755);

	put_text("script-missing", "#!/nonexistent/sh\necho hi\n", 0755);
	put_text("mid", "#!/nonexistent/sh\necho hi\n", 0755);
	put_text("script-chain", "#!{tmp}/mid\necho hi\n", 0755);
	put_text("script-elf", "#!{tmp}/elf64-missing\necho hi\n", 0755);
	put_text("script-not-exec", "#!{tmp}/plain.txt\n", 0755);
	put_text("script-dir", "#!/tmp\n", 0755);
	put_text("script-no-interp", "#!\necho hi\n", 0755);
	put_text("script-crlf", "#!/bin/sh\r\necho hi\r\n", 0755);
	put_text("no-shebang", "echo hi\n", 0755);
	put_text("script-ok", "#!/bin/sh\necho hi\n", 0755);
	/* Linux follows five interpreters down, the fifth a binary: chain4's
	 * fifth is missing, chain5's fifth is a script whose own is missing
	 * (what Linux opens before it stops); chain-ok's is /bin/true,
	 * chain-loop's a script again (ELOOP). */
	put_text("c5", "#!/nonexistent/sh\n", 0755);
	put_text("c4", "#!{tmp}/c5\n", 0755);
	put_text("c3", "#!{tmp}/c4\n", 0755);
	put_text("c2", "#!{tmp}/c3\n", 0755);
	put_text("c1", "#!{tmp}/c2\n", 0755);
	put_text("chain4", "#!{tmp}/c2\n", 0755);
	put_text("chain5", "#!{tmp}/c1\n", 0755);
	put_text("k4", "#!/bin/true\n", 0755);
	put_text("k3", "#!{tmp}/k4\n", 0755);
	put_text("k2", "#!{tmp}/k3\n", 0755);
	put_text("k1", "#!{tmp}/k2\n", 0755);
	put_text("k0", "#!{tmp}/k1\n", 0755);
	put_text("chain-ok", "#!{tmp}/k1\n", 0755);
	put_text("chain-loop", "#!{tmp}/k0\n", 0755);
	/* What env starts is env's own execve: check names it, an exec
	 * failure of the hook never does. */
	put_text("env-mid", "#!/usr/bin/env hookd-test-mid\n", 0755);
	put_text("hookd-test-mid", "#!/nonexistent/sh\n", 0755);

	const struct hook_case cases[] = {
		{"elf64-missing", PREFLIGHT_ERROR,
		 "its ELF interpreter " LOADER_MISSING ": No such file or directory", ENOENT, true},
		/* the kernel loads a 32-bit ELF only where it runs them */
		{"elf32-missing", PREFLIGHT_ERROR,
		 "its ELF interpreter " LOADER_MISSING ": No such file or directory", ENOENT,
		 false},
		{"elf64-loader-not-exec", PREFLIGHT_ERROR,
		 "its ELF interpreter {tmp}/plain.txt: Permission denied (not executable: mode "
		 "0644)",
		 EACCES, true},
		{"elf64-static", PREFLIGHT_OK, NULL, 0, false},
		{"trunc-ident", PREFLIGHT_OK, NULL, 0, false},
		{"trunc-header", PREFLIGHT_OK, NULL, 0, false},
		{"trunc-phdr", PREFLIGHT_OK, NULL, 0, false},
		{"trunc-interp", PREFLIGHT_OK, NULL, 0, false},
		{"lie-phoff", PREFLIGHT_OK, NULL, 0, false},
		{"lie-phoff-wrap", PREFLIGHT_OK, NULL, 0, false},
		{"lie-phnum", PREFLIGHT_OK, NULL, 0, false},
		{"lie-phentsize", PREFLIGHT_OK, NULL, 0, false},
		{"lie-p-offset", PREFLIGHT_OK, NULL, 0, false},
		{"lie-p-filesz", PREFLIGHT_OK, NULL, 0, false},
		{"lie-no-nul", PREFLIGHT_OK, NULL, 0, false},
		{"script-missing", PREFLIGHT_ERROR,
		 "interpreter /nonexistent/sh: No such file or directory", ENOENT, true},
		{"script-chain", PREFLIGHT_ERROR,
		 "interpreter {tmp}/mid: interpreter /nonexistent/sh: No such file or directory",
		 ENOENT, true},
		{"script-elf", PREFLIGHT_ERROR,
		 "interpreter {tmp}/elf64-missing: its ELF interpreter " LOADER_MISSING
		 ": No such file or directory",
		 ENOENT, true},
		{"script-not-exec", PREFLIGHT_ERROR,
		 "interpreter {tmp}/plain.txt: Permission denied (not executable: mode 0644)",
		 EACCES, true},
		{"script-dir", PREFLIGHT_ERROR,
		 "interpreter /tmp: Permission denied (not a regular file)", EACCES, true},
		{"script-no-interp", PREFLIGHT_ERROR, "its #! line names no interpreter", ENOEXEC,
		 true},
		{"script-crlf", PREFLIGHT_ERROR, "carriage return", ENOENT, true},
		{"no-shebang", PREFLIGHT_WARN,
		 "no #! line and not an ELF binary (Exec format error)", ENOEXEC, true},
		{"script-ok", PREFLIGHT_OK, NULL, 0, true},
		{"chain4", PREFLIGHT_ERROR,
		 "interpreter {tmp}/c2: interpreter {tmp}/c3: interpreter {tmp}/c4: interpreter "
		 "{tmp}/c5: interpreter /nonexistent/sh: No such file or directory",
		 ENOENT, true},
		{"chain5", PREFLIGHT_ERROR,
		 "interpreter {tmp}/c1: interpreter {tmp}/c2: interpreter {tmp}/c3: interpreter "
		 "{tmp}/c4: interpreter {tmp}/c5: interpreter /nonexistent/sh: No such file or "
		 "directory",
		 ENOENT, true},
		{"chain-ok", PREFLIGHT_OK, NULL, 0, true},
		{"chain-loop", PREFLIGHT_ERROR,
		 "interpreter {tmp}/k4: a script as well: Linux follows 5 #! interpreters down, "
		 "the last a binary (Too many levels of symbolic links)",
		 ELOOP, true},
		{"env-mid", PREFLIGHT_ERROR,
		 "interpreter {tmp}/hookd-test-mid (through env): interpreter /nonexistent/sh: "
		 "No such file or directory",
		 0, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], tmp);
	/* execve is tried only where no binfmt_misc emulator may run them. */
	bool emulated = binfmt_handlers();
	char says[3][160];
	snprintf(says[0], sizeof(says[0]),
	         "an ELF binary for %s, and this machine runs %s ones (Exec format error)", foreign,
	         host_x86 ? "x86-64" : foreign);
	snprintf(says[1], sizeof(says[1]), "an ELF binary for s390 (%s-endian)",
	         __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? "little" : "big");
	snprintf(says[2], sizeof(says[2]), "interpreter {tmp}/elf64-foreign: an ELF binary for %s",
	         foreign);
	/* An error, but a warning where an emulator may run them. */
	enum preflight level = emulated ? PREFLIGHT_WARN : PREFLIGHT_ERROR;
	const struct hook_case machines[] = {
		{"elf64-foreign", level, says[0], ENOEXEC, !emulated},
		{"elf64-other-order", level, says[1], ENOEXEC, !emulated},
		{"script-foreign", level, says[2], ENOEXEC, !emulated},
	};
	/* Named only where this build knows its machine (x86-64 in CI). */
	for (size_t i = 0; host_x86 && i < sizeof(machines) / sizeof(machines[0]); i++)
		run_case(&machines[i], tmp);
	if (have_true) {
		struct hook_case c = {"true-missing-loader", PREFLIGHT_ERROR,
		                      "its ELF interpreter " LOADER_MISSING
		                      ": No such file or directory",
		                      ENOENT, true};
		run_case(&c, tmp);
	} else {
		printf("test_preflight: /bin/true has no PT_INTERP to patch, case skipped\n");
	}
}

/*
 * An interpreter on a file system mounted noexec, in a child with a mount
 * namespace of its own (so no mount outlives it); skipped where this
 * process may not mount (not root, or in a container that forbids it).
 * The child answers through its exit status: 0 pass, 77 skipped.
 */
static void test_noexec(void)
{
	if (under_valgrind()) {
		printf("test_preflight: under valgrind, the noexec cases skipped\n");
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		check_failed = 0;
		char *dir = at("nx");
		mkdir(dir, 0755);
		if (unshare(CLONE_NEWNS) != 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", dir, "tmpfs", MS_NOEXEC, "size=1m") != 0)
			_exit(77);
		size_t len;
		char *bin = slurp("/bin/true", &len);
		if (!bin)
			_exit(77);
		put("nx/true", bin, len, 0755);
		put_text("on-noexec", "#!{tmp}/nx/true\n", 0755);
		char words[PATH_MAX + 64];
		CHECK(preflight_noexec_words(AT_FDCWD, dir, words, sizeof(words)) != NULL,
		      "nx is mounted noexec");
		CHECK(preflight_noexec_words(AT_FDCWD, tmp, words, sizeof(words)) == NULL,
		      "tmp is not");
		struct hook_case c = {
			"on-noexec", PREFLIGHT_ERROR,
			"interpreter {tmp}/nx/true: Permission denied (its file system, {tmp}/nx, is "
			"mounted noexec)",
			EACCES, true};
		run_case(&c, tmp);
		put_text("nx/hook", "#!/bin/sh\n", 0755);
		struct hook_case h = {"nx/hook", PREFLIGHT_ERROR,
		                      "{tmp}/nx/hook: Permission denied (its file system, {tmp}/nx, "
		                      "is mounted noexec)",
		                      EACCES, true};
		run_case(&h, tmp);
		/* A mount point with a space (\040 in mountinfo), one below nx,
		 * is named as it is: the deepest mount that holds the file. */
		char *spaced = at("nx/a b");
		mkdir(spaced, 0755);
		CHECK(mount("tmpfs", spaced, "tmpfs", MS_NOEXEC, "size=1m") == 0, "mount %s", spaced);
		put_text("nx/a b/hook", "#!/bin/sh\n", 0755);
		struct hook_case sp = {"nx/a b/hook", PREFLIGHT_ERROR,
		                       "{tmp}/nx/a b/hook: Permission denied (its file system, "
		                       "{tmp}/nx/a b, is mounted noexec)",
		                       EACCES, true};
		run_case(&sp, tmp);
		umount2(spaced, MNT_DETACH);
		free(spaced);
		umount2(dir, MNT_DETACH);
		_exit(check_failed ? 1 : 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (rc == 77)
		printf("test_preflight: cannot mount here, the noexec cases skipped\n");
	else
		CHECK(rc == 0, "the noexec cases failed (%d): see above", rc);
}

int main(void)
{
	CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
	test_hooks();
	test_noexec();
	char *cmd = xasprintf("rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0, "%s", cmd);
	free(cmd);
	return check_done("test_preflight");
}
