/*
 * A test shim for the group commit test (test_groupcommit.py), loaded into
 * hookd with LD_PRELOAD: it logs, to the file named by SYNCSHIM_LOG, every
 * fdatasync and fsync (when it began and ended, and whether the file was the
 * journal's write-ahead log) and, for each write to the WAL, which delivery
 * ids the written pages hold (ids that begin with SYNCSHIM_MARK), so that the
 * test can tell which sync was the first to begin after a delivery's record
 * was written. Times are CLOCK_MONOTONIC nanoseconds, the clock of Python's
 * time.monotonic_ns(). SYNCSHIM_DELAY_MS makes each sync of the WAL take at
 * least that long (a slow disk), so that many acceptances arrive while one
 * is under way. SYNCSHIM_FAULT names a switch file: while it exists, every
 * write and sync of the journal's files (journal.db and its -wal) fails
 * with the errno its first word names (EIO or ENOSPC; SYNC: only the syncs
 * fail, with EIO; test_faults.py), a disk that fails and then recovers;
 * with ONCE after that word, only the next one fails (the shim removes the
 * switch file as it fails it).
 * Not part of hookd.
 */
/* It defines pwrite and pwrite64 both: neither may be renamed to the other. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define ID_LEN 24 /* the test's ids: MARK and digits, this long */

static atomic_long seq;

int fdatasync(int fd);
int fsync(int fd);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off);

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int log_fd(void)
{
	static atomic_int fd = -1;
	int f = atomic_load(&fd);
	if (f < 0) {
		const char *p = getenv("SYNCSHIM_LOG");
		if (!p)
			return -1;
		f = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		atomic_store(&fd, f);
	}
	return f;
}

/* The path of the file open on fd, into path; its length, or -1. */
static ssize_t path_of(int fd, char *path, size_t size)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, size - 1);
	if (n >= 0)
		path[n] = '\0';
	return n;
}

static int is_wal(int fd)
{
	char path[4096];
	ssize_t n = path_of(fd, path, sizeof(path));
	return n >= 4 && strcmp(path + n - 4, "-wal") == 0;
}

/* The errno the switch file asks for now, for a write (syncing false) or a
 * sync on fd; 0: none. A first word SYNC fails the syncs only (EIO). */
static int fault(int fd, int syncing)
{
	const char *sw = getenv("SYNCSHIM_FAULT");
	if (!sw || !*sw)
		return 0;
	int f = open(sw, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	char word[16] = "";
	ssize_t n = read(f, word, sizeof(word) - 1);
	close(f);
	char path[4096];
	if (path_of(fd, path, sizeof(path)) < 0)
		return 0;
	/* The database and its -wal, not its -shm (SQLite's shared memory). */
	const char *db = strstr(path, "/journal.db");
	if (!db || (strcmp(db, "/journal.db") != 0 && strcmp(db, "/journal.db-wal") != 0))
		return 0;
	if (n > 0 && strncmp(word, "SYNC", 4) == 0 && !syncing)
		return 0;
	/* One failure: the call that removes the switch has it. */
	if (n > 0 && strstr(word, "ONCE") && unlink(sw) != 0)
		return 0;
	return n > 0 && strncmp(word, "ENOSPC", 6) == 0 ? ENOSPC : EIO;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

/* The next definition of a function (libc's), into *fn; ISO C has no
 * cast from dlsym's object pointer to a function pointer, so it is copied. */
static void real(const char *name, void *fn, size_t size)
{
	void *sym = dlsym(RTLD_NEXT, name);
	memcpy(fn, &sym, size);
}

/* One line a record, in one write(2) to an O_APPEND file. */
static void emit(const char *line, int len)
{
	static write_fn w;
	if (!w)
		real("write", &w, sizeof(w));
	int f = log_fd();
	if (f >= 0 && len > 0)
		(void)w(f, line, (size_t)len);
}

/* W <ns> <id> for every marked id in a write to the WAL. */
static void note_write(int fd, const void *buf, size_t n, int64_t t)
{
	const char *mark = getenv("SYNCSHIM_MARK");
	if (!mark || !*mark || !is_wal(fd))
		return;
	size_t ml = strlen(mark);
	const char *p = buf, *end = p + n;
	while (p + ID_LEN <= end) {
		const char *hit = memmem(p, (size_t)(end - p), mark, ml);
		if (!hit || hit + ID_LEN > end)
			break;
		char line[96];
		emit(line, snprintf(line, sizeof(line), "W %lld %.*s\n", (long long)t, ID_LEN, hit));
		p = hit + ID_LEN;
	}
}

/* S <seq> <began ns> <ended ns> <wal|other> <rc> */
static int logged_sync(const char *name, int fd)
{
	sync_fn f;
	real(name, &f, sizeof(f));
	int wal = is_wal(fd);
	int err = fault(fd, 1);
	if (err) {
		errno = err;
		return -1;
	}
	long n = atomic_fetch_add(&seq, 1);
	int64_t t0 = now_ns();
	int rc = f(fd);
	const char *delay = getenv("SYNCSHIM_DELAY_MS");
	if (wal && delay && atoi(delay) > 0) {
		struct timespec ts = {atoi(delay) / 1000, (long)(atoi(delay) % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	int64_t t1 = now_ns();
	char line[128];
	emit(line, snprintf(line, sizeof(line), "S %ld %lld %lld %s %d\n", n, (long long)t0,
	                    (long long)t1, wal ? "wal" : "other", rc));
	return rc;
}

int fdatasync(int fd)
{
	return logged_sync("fdatasync", fd);
}

int fsync(int fd)
{
	return logged_sync("fsync", fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static write_fn w;
	if (!w)
		real("write", &w, sizeof(w));
	int err = fault(fd, 0);
	if (err) {
		errno = err;
		return -1;
	}
	ssize_t r = w(fd, buf, n);
	if (r > 0)
		note_write(fd, buf, (size_t)r, now_ns());
	return r;
}

static ssize_t logged_pwrite(const char *name, int fd, const void *buf, size_t n, off_t off)
{
	pwrite_fn w;
	real(name, &w, sizeof(w));
	int err = fault(fd, 0);
	if (err) {
		errno = err;
		return -1;
	}
	ssize_t r = w(fd, buf, n, off);
	if (r > 0)
		note_write(fd, buf, (size_t)r, now_ns());
	return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return logged_pwrite("pwrite", fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return logged_pwrite("pwrite64", fd, buf, n, off);
}
