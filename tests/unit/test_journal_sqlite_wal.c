/*
 * The journal writer's VFS (journal_sqlite_wal.c): which writes to a WAL
 * file it holds and when they reach the file, in a table of calls made
 * as SQLite makes them; a failed write reported by the call that wrote;
 * and SQLite itself through it, on the path that rewrites a commit's
 * checksums, with the files copied mid-run as a crash would leave them.
 */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "journal.h"
#include "journal_sqlite_wal.h"
#include "util.h"

#define PAGE 2048
#define FRAME (24 + PAGE)
#define FRAME_AT(i) (32 + (int64_t)(i) * FRAME)
#define MAX_FILE (1 << 20)

static char tmpdir[64];
static sqlite3_vfs *vfs;

/* What the file should hold, every write applied at once. */
static unsigned char shadow[MAX_FILE];
static int64_t shadow_len;

enum kind {
	END,
	WAL_HEADER,   /* the WAL's 32-byte header, at 0 */
	HEADER,       /* frame i's 24-byte header, a commit's if commit */
	PAGE_OF,      /* frame i's page */
	BYTES_AT,     /* len bytes at off */
	READ,
	SYNC,
	SIZE,
	TRUNCATE,
	CONTROL,
};

struct step {
	enum kind kind;
	int frame;
	bool commit;
	int64_t off;
	int len;
	size_t held; /* bytes held after it */
	int64_t in_file; /* the file's size after it */
};

static const struct {
	const char *name;
	struct step steps[10];
	int64_t after_close; /* the file's size once closed */
} cases[] = {
	{"a commit's frames go to the file with its last page",
	 {{WAL_HEADER, .held = 32},
	  {HEADER, 0, .held = 56},
	  {PAGE_OF, 0, .held = 56 + PAGE},
	  {HEADER, 1, true, .held = 80 + PAGE},
	  {PAGE_OF, 1, .held = 0, .in_file = FRAME_AT(2)}},
	 FRAME_AT(2)},
	{"a commit of one frame: its header is written at once, then its page",
	 {{HEADER, 0, true, .held = 0, .in_file = FRAME_AT(0) + 24},
	  {PAGE_OF, 0, .held = 0, .in_file = FRAME_AT(1)}},
	 FRAME_AT(1)},
	{"frames without a commit are dropped at close (a transaction rolled back as it closed)",
	 {{WAL_HEADER, .held = 32}, {HEADER, 0, .held = 56}, {PAGE_OF, 0, .held = 56 + PAGE}},
	 0},
	{"a read writes what is held first",
	 {{WAL_HEADER, .held = 32},
	  {HEADER, 0, .held = 56},
	  {PAGE_OF, 0, .held = 56 + PAGE},
	  {READ, .off = 0, .len = 32, .held = 0, .in_file = FRAME_AT(1)}},
	 FRAME_AT(1)},
	{"a sync writes what is held first",
	 {{WAL_HEADER, .held = 32}, {HEADER, 0, .held = 56}, {SYNC, .held = 0, .in_file = 56}},
	 56},
	{"asking the size writes what is held first",
	 {{WAL_HEADER, .held = 32}, {SIZE, .held = 0, .in_file = 32}},
	 32},
	{"a truncation writes what is held first, then cuts",
	 {{WAL_HEADER, .held = 32},
	  {HEADER, 0, .held = 56},
	  {TRUNCATE, .off = 40, .held = 0, .in_file = 40}},
	 40},
	{"a file control writes what is held first",
	 {{WAL_HEADER, .held = 32}, {CONTROL, .held = 0, .in_file = 32}},
	 32},
	{"a write elsewhere sends what is held, and is held itself",
	 {{WAL_HEADER, .held = 32},
	  {HEADER, 0, .held = 56},
	  {PAGE_OF, 0, .held = 56 + PAGE},
	  {BYTES_AT, .off = 0, .len = 32, .held = 32, .in_file = FRAME_AT(1)},
	  {SYNC, .held = 0, .in_file = FRAME_AT(1)}},
	 FRAME_AT(1)},
	{"a checksum rewrite (read, then the header) leaves nothing held at its commit header",
	 {{WAL_HEADER, .held = 32},
	  {HEADER, 0, .held = 56},
	  {PAGE_OF, 0, .held = 56 + PAGE},
	  {HEADER, 1, true, .held = 80 + PAGE},
	  {PAGE_OF, 1, .held = 0, .in_file = FRAME_AT(2)},
	  {READ, .off = FRAME_AT(0), .len = FRAME, .held = 0, .in_file = FRAME_AT(2)},
	  {HEADER, 0, .held = 24, .in_file = FRAME_AT(2)},
	  {READ, .off = FRAME_AT(1), .len = FRAME, .held = 0, .in_file = FRAME_AT(2)},
	  {HEADER, 1, true, .held = 0, .in_file = FRAME_AT(2)}},
	 FRAME_AT(2)},
};

static void fill(unsigned char *buf, int len, int64_t off, int salt)
{
	for (int i = 0; i < len; i++)
		buf[i] = (unsigned char)((off + i) * 7 + salt);
}

/* A frame header as SQLite writes it: page number, then the database's
 * size in pages after a commit (0: not a commit), then salts and sums. */
static void frame_header(unsigned char *h, int frame, bool commit, int salt)
{
	fill(h, 24, FRAME_AT(frame), salt);
	h[0] = h[1] = h[2] = 0;
	h[3] = (unsigned char)(frame + 1);
	h[4] = h[5] = h[6] = 0;
	h[7] = commit ? 9 : 0;
}

/* sqlite3_file for a WAL, its name made as SQLite makes one (a database's
 * name, its parameters, its journal's and its WAL's), kept after the file
 * (the default VFS keeps a pointer to it) until close_wal. The default VFS
 * gives a WAL its database's mode, so the database must exist. */
static sqlite3_file *open_wal(const char *path)
{
	size_t n = strlen(path);
	char *db = n > 4 && strcmp(path + n - 4, "-wal") == 0 ? xstrndup(path, n - 4)
	                                                     : xasprintf("%s/db-of-dev", tmpdir);
	int fd = open(db, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", db);
	if (fd >= 0)
		close(fd);
	sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile + sizeof(sqlite3_filename));
	sqlite3_filename name = sqlite3_create_filename(db, "", path, 0, NULL);
	memcpy((char *)f + vfs->szOsFile, &name, sizeof(name));
	free(db);
	int out = 0;
	int rc = vfs->xOpen(vfs, sqlite3_filename_wal(name), f,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, &out);
	CHECK(rc == SQLITE_OK, "open %s: %d", path, rc);
	if (rc != SQLITE_OK) {
		sqlite3_free_filename(name);
		free(f);
		return NULL;
	}
	return f;
}

static int close_wal(sqlite3_file *f)
{
	int rc = f->pMethods->xClose(f);
	sqlite3_filename name;
	memcpy(&name, (char *)f + vfs->szOsFile, sizeof(name));
	sqlite3_free_filename(name);
	free(f);
	return rc;
}

static int64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static bool file_is_shadow(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	static unsigned char got[MAX_FILE];
	ssize_t n = pread(fd, got, sizeof(got), 0);
	close(fd);
	return n == shadow_len && memcmp(got, shadow, (size_t)n) == 0;
}

static int write_at(sqlite3_file *f, const void *buf, int len, int64_t off)
{
	memcpy(shadow + off, buf, (size_t)len);
	if (off + len > shadow_len)
		shadow_len = off + len;
	return f->pMethods->xWrite(f, buf, len, off);
}

static int run_step(sqlite3_file *f, const struct step *s, int salt)
{
	unsigned char buf[FRAME];
	sqlite3_int64 size;
	switch (s->kind) {
	case WAL_HEADER:
		fill(buf, 32, 0, salt);
		return write_at(f, buf, 32, 0);
	case HEADER:
		frame_header(buf, s->frame, s->commit, salt);
		return write_at(f, buf, 24, FRAME_AT(s->frame));
	case PAGE_OF:
		fill(buf, PAGE, FRAME_AT(s->frame) + 24, salt);
		return write_at(f, buf, PAGE, FRAME_AT(s->frame) + 24);
	case BYTES_AT:
		fill(buf, s->len, s->off, salt + 1);
		return write_at(f, buf, s->len, s->off);
	case READ:
		return f->pMethods->xRead(f, buf, s->len, s->off);
	case SYNC:
		return f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
	case SIZE:
		return f->pMethods->xFileSize(f, &size);
	case TRUNCATE:
		shadow_len = s->off;
		return f->pMethods->xTruncate(f, s->off);
	case CONTROL: {
		int v = -1;
		int rc = f->pMethods->xFileControl(f, SQLITE_FCNTL_PERSIST_WAL, &v);
		return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc;
	}
	case END:
		break;
	}
	return SQLITE_MISUSE;
}

static void test_cases(void)
{
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		char *path = xasprintf("%s/case%zu-wal", tmpdir, c);
		memset(shadow, 0, sizeof(shadow));
		shadow_len = 0;
		sqlite3_file *f = open_wal(path);
		if (!f) {
			free(path);
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(cases[c].steps) && cases[c].steps[i].kind != END; i++) {
			const struct step *s = &cases[c].steps[i];
			int rc = run_step(f, s, (int)c);
			CHECK(rc == SQLITE_OK, "%s: step %zu: %d", cases[c].name, i, rc);
			CHECK(sqlj_wal_held(f) == s->held, "%s: step %zu: %zu bytes held, want %zu",
			      cases[c].name, i, sqlj_wal_held(f), s->held);
			CHECK(file_size(path) == s->in_file, "%s: step %zu: the file has %lld bytes, want %lld",
			      cases[c].name, i, (long long)file_size(path), (long long)s->in_file);
		}
		CHECK(close_wal(f) == SQLITE_OK, "%s: close", cases[c].name);
		CHECK(file_size(path) == cases[c].after_close, "%s: closed: %lld bytes, want %lld",
		      cases[c].name, (long long)file_size(path), (long long)cases[c].after_close);
		if (cases[c].after_close > 0)
			CHECK(file_is_shadow(path), "%s: the file holds every write, in place",
			      cases[c].name);
		free(path);
	}
}

/* More frames than the buffer holds: they go out as it fills, never more
 * than it holds, and the commit's page sends the rest. */
static void test_full_buffer(void)
{
	char *path = xasprintf("%s/full-wal", tmpdir);
	memset(shadow, 0, sizeof(shadow));
	shadow_len = 0;
	sqlite3_file *f = open_wal(path);
	if (!f) {
		free(path);
		return;
	}
	struct step s = {.kind = WAL_HEADER};
	size_t most = 0;
	bool some_out = false;
	int rc = run_step(f, &s, 3);
	for (int i = 0; i < 200 && rc == SQLITE_OK; i++) {
		s = (struct step){.kind = HEADER, .frame = i, .commit = i == 199};
		rc = run_step(f, &s, 3);
		s = (struct step){.kind = PAGE_OF, .frame = i};
		if (rc == SQLITE_OK)
			rc = run_step(f, &s, 3);
		most = sqlj_wal_held(f) > most ? sqlj_wal_held(f) : most;
		some_out = some_out || file_size(path) > 0;
	}
	CHECK(rc == SQLITE_OK, "200 frames: %d", rc);
	CHECK(some_out, "frames went out before the commit once the buffer was full");
	CHECK(most > 100 * 1024 && most <= 112 * 1024, "at most %zu bytes held", most);
	CHECK(sqlj_wal_held(f) == 0 && file_size(path) == FRAME_AT(200),
	      "after the commit: %zu held, %lld in the file", sqlj_wal_held(f),
	      (long long)file_size(path));
	CHECK(file_is_shadow(path), "the file holds every write, in place");

	/* A write larger than the buffer goes to the file as it is (the
	 * default VFS takes no more than 128 KiB in one). */
	static unsigned char big[120 * 1024];
	fill(big, (int)sizeof(big), FRAME_AT(200), 5);
	int big_rc = write_at(f, big, (int)sizeof(big), FRAME_AT(200));
	CHECK(big_rc == SQLITE_OK, "a large write: %d", big_rc);
	CHECK(sqlj_wal_held(f) == 0 && file_size(path) == FRAME_AT(200) + (int64_t)sizeof(big),
	      "a large write is not held");
	close_wal(f);
	CHECK(file_is_shadow(path), "the file holds every write, in place");
	free(path);
}

/* A write that fails when the buffer goes out fails the call that sent
 * it: the commit's page, or whatever came first. /dev/full: ENOSPC. */
static void test_failed_write(void)
{
	static const enum kind last[] = {PAGE_OF, READ, SYNC, SIZE};
	for (size_t k = 0; k < ARRAY_SIZE(last); k++) {
		sqlite3_file *f = open_wal("/dev/full");
		if (!f)
			return;
		struct step s = {.kind = WAL_HEADER};
		CHECK(run_step(f, &s, 0) == SQLITE_OK, "held, not yet written");
		s = (struct step){.kind = HEADER, .commit = last[k] == PAGE_OF};
		CHECK(run_step(f, &s, 0) == SQLITE_OK, "held, not yet written");
		s = (struct step){.kind = last[k], .len = 8};
		int rc = run_step(f, &s, 0);
		CHECK(rc == SQLITE_FULL, "case %zu: the failed write's result: %d", k, rc);
		CHECK(sqlj_wal_held(f) == 0, "case %zu: nothing is held after a failed write", k);
		CHECK(close_wal(f) == SQLITE_OK, "case %zu: close", k);
	}
}

static int exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	CHECK(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
	sqlite3_free(msg);
	return rc;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	return v;
}

static bool copy_file(const char *from, const char *to)
{
	static unsigned char buf[16 * 1024 * 1024];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n = in >= 0 ? read(in, buf, sizeof(buf)) : -1;
	bool ok = in >= 0 && out >= 0 && n >= 0 && n < (ssize_t)sizeof(buf) &&
	          write(out, buf, (size_t)n) == n;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ok;
}

/* A WAL hook runs as SQLite publishes a commit: nothing may be held then. */
static int published, published_held;

static int on_publish(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg, (void)name, (void)frames;
	sqlite3_file *wal = NULL;
	sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	published++;
	if (!wal || sqlj_wal_held(wal) != 0)
		published_held++;
	return SQLITE_OK;
}

static sqlite3 *open_db(const char *uri)
{
	sqlite3 *db = NULL;
	char err[256] = "";
	int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
	                         sqlj_wal_vfs(err, sizeof(err)));
	CHECK(rc == SQLITE_OK, "open %s: %d %s", uri, rc, err);
	sqlj_wal_attach(db);
	/* wal_autocheckpoint sets SQLite's own WAL hook: before ours. */
	exec(db, "PRAGMA journal_mode = WAL; PRAGMA cache_size = 4; PRAGMA wal_autocheckpoint = 0;");
	sqlite3_wal_hook(db, on_publish, NULL);
	return db;
}

/* A large transaction: more pages than the cache holds, so SQLite spills
 * frames to the WAL before its end, then changes those pages again. */
static const char big_transaction[] =
	"BEGIN;"
	"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
	" INSERT INTO t (v) SELECT printf('%0500d', i) FROM n;"
	"UPDATE t SET v = v || 'x' WHERE v NOT LIKE '%x';";

/*
 * SQLite through the VFS, with a page cache of a few pages so that a large
 * transaction spills frames to the WAL before its commit and then changes
 * them again: SQLite then writes those pages once more in place and
 * rewrites the checksums of the frames after them at the commit, the path
 * whose commit header is written without its page after it. With the
 * files copied before any checkpoint (what a crash leaves), SQLite's
 * recovery checks every frame's checksum: a rewrite still held would
 * leave a bad one and cost the whole transaction.
 */
static void test_sqlite_through_it(void)
{
	char *path = xasprintf("%s/db.sqlite", tmpdir);
	sqlite3 *db = open_db(path);
	exec(db, "PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
	published = published_held = 0;
	for (int round = 0; round < 3; round++) {
		exec(db, big_transaction);
		exec(db, "COMMIT;");
		sqlite3_file *wal = NULL;
		sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
		CHECK(wal && sqlj_wal_held(wal) == 0, "round %d: nothing held after the commit", round);
		CHECK(sqlj_wal_settled(db), "round %d: settled", round);
	}
	CHECK(published >= 3 && published_held == 0, "%d of %d commits published with writes held",
	      published_held, published);
	CHECK(sqlj_wal_settle_misses() == 0, "no commit left anything held");

	char *wal_path = xasprintf("%s-wal", path);
	char *copy = xasprintf("%s/copy.sqlite", tmpdir);
	char *copy_wal = xasprintf("%s-wal", copy);
	CHECK(copy_file(path, copy) && copy_file(wal_path, copy_wal), "copy the files");
	CHECK(file_size(wal_path) > 0, "the WAL holds the transactions");
	sqlite3 *check = NULL;
	int rc = sqlite3_open_v2(copy, &check, SQLITE_OPEN_READWRITE, NULL);
	CHECK(rc == SQLITE_OK, "open the copy: %d", rc);
	CHECK(query_int(check, "SELECT count(*) FROM t") == 1200, "the copy has every row: %lld",
	      (long long)query_int(check, "SELECT count(*) FROM t"));
	CHECK(query_int(check, "SELECT count(*) FROM t WHERE v NOT LIKE '%x'") == 0,
	      "every row of the copy has the transaction's update");
	sqlite3_close(check);
	sqlite3_close(db);
	free(wal_path);
	free(copy);
	free(copy_wal);
	free(path);
}

/*
 * A large transaction rolled back leaves nothing held: what it spilled to
 * the WAL is no commit's, and written later (after the write lock went)
 * it would land on the frames another writer committed meanwhile.
 */
static void test_rollback_then_another_writer(void)
{
	char *path = xasprintf("%s/two.sqlite", tmpdir);
	sqlite3 *a = open_db(path);
	exec(a, "PRAGMA synchronous = NORMAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
	        "PRAGMA wal_checkpoint(TRUNCATE);");
	/* Inserts alone, more pages than the cache holds and fewer than the
	 * buffer: the pages spilled (from the WAL's start) are not read again
	 * before the end, and stay held. */
	exec(a, "BEGIN;"
	        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)"
	        " INSERT INTO t (v) SELECT printf('%0500d', i) FROM n;");
	sqlite3_file *wal = NULL;
	sqlite3_file_control(a, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	CHECK(wal && sqlj_wal_held(wal) > 0, "the transaction's spilled frames are held");
	exec(a, "ROLLBACK;");
	CHECK(wal && sqlj_wal_held(wal) == 0, "nothing held after the rollback");

	sqlite3 *b = NULL;
	CHECK(sqlite3_open_v2(path, &b, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open b");
	exec(b, "INSERT INTO t (v) VALUES ('from b');");
	exec(a, "INSERT INTO t (v) VALUES ('from a');");
	sqlite3_close(b);
	sqlite3 *check = NULL;
	CHECK(sqlite3_open_v2(path, &check, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "open");
	CHECK(query_int(check, "SELECT count(*) FROM t") == 2, "both rows: %lld",
	      (long long)query_int(check, "SELECT count(*) FROM t"));
	sqlite3_stmt *s;
	bool ok = false;
	if (sqlite3_prepare_v2(check, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK) {
		ok = sqlite3_step(s) == SQLITE_ROW &&
		     strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
		sqlite3_finalize(s);
	}
	CHECK(ok, "the database is whole");
	sqlite3_close(check);
	sqlite3_close(a);
	free(path);
}

/*
 * Without power-safe overwrite, a commit synced at once pads the WAL and
 * splits a frame around the sync: such a WAL is not held at all.
 */
static void test_no_powersafe_overwrite(void)
{
	char *uri = xasprintf("file:%s/psow.sqlite?psow=0", tmpdir);
	sqlite3 *db = open_db(uri);
	exec(db, "PRAGMA synchronous = FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
	published = published_held = 0;
	exec(db, big_transaction);
	sqlite3_file *wal = NULL;
	sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	CHECK(wal && sqlj_wal_held(wal) == 0, "nothing held, even while spilling");
	exec(db, "COMMIT;");
	for (int i = 0; i < 20; i++)
		exec(db, "INSERT INTO t (v) VALUES ('small');");
	CHECK(published >= 21 && published_held == 0, "%d of %d commits published with writes held",
	      published_held, published);
	CHECK(query_int(db, "SELECT count(*) FROM t") == 420, "every row");
	sqlite3_close(db);
	free(uri);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/hookd-test-wal-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	/* A journal opened once loads libsqlite3 and registers the VFS. */
	char *state = xasprintf("%s/state", tmpdir);
	char err[256] = "";
	struct journal_opts o = {.state_dir = state, .body_max = 1024};
	struct journal *j = journal_open(&o, err, sizeof(err));
	CHECK(j != NULL, "journal_open: %s", err);
	journal_close(j);
	free(state);
	vfs = sqlite3_vfs_find(sqlj_wal_vfs(err, sizeof(err)));
	CHECK(vfs != NULL, "the VFS is registered: %s", err);
	if (vfs) {
		test_cases();
		test_full_buffer();
		test_failed_write();
		test_sqlite_through_it();
		test_rollback_then_another_writer();
		test_no_powersafe_overwrite();
	}
	char *rm = xasprintf("rm -rf '%s'", tmpdir);
	if (system(rm) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(rm);
	return check_done("journal_sqlite_wal");
}
