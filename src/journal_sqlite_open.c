/*
 * Opening the SQLite journal: libsqlite3 loaded (dynload.h), the file
 * made (mode 0600) and opened in WAL mode, its schema created or
 * migrated (schema_vN, SCHEMA_VERSION), or opened read-only for the
 * CLI; and closing it.
 */
#include "journal_sqlite_private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dynload.h"
#include "util.h"

/* The pointers journal_sqlite_private.h declares, filled by sqlite_load. */
#define SQLITE_DEFINITION(f) __typeof__(dl_##f) dl_##f;
SQLITE_CALLS(SQLITE_DEFINITION)
#define SQLITE_SYMBOL(f) {#f, &dl_##f},
static const struct dynsym sqlite_symbols[] = {SQLITE_CALLS(SQLITE_SYMBOL)};

static bool sqlite_load(char *err, size_t errlen)
{
	static bool loaded;
	if (!loaded) {
		loaded = dynload("libsqlite3.so.0", sqlite_symbols, ARRAY_SIZE(sqlite_symbols), err,
		                 errlen);
		/*
		 * Without its memory statistics (which hookd never reads),
		 * SQLite takes no process-wide lock around each of its
		 * allocations and frees (dozens a delivery): 4,000 instructions.
		 * Possible only before SQLite's first use in the process; later
		 * (a test that used it first) it is refused, and changes nothing.
		 */
		if (loaded)
			sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
	return loaded;
}

/* Bump when the schema changes, and add a migration step in schema_setup(). */
#define SCHEMA_VERSION 3
/* The CLI may hold a read while the daemon checkpoints; neither waits long. */
#define BUSY_TIMEOUT_MS 5000

/*
 * The state is stored as its enum value: QUEUED 0, RUNNING 1, RETRY_WAIT 2
 * are pending, SUCCEEDED 3, FAILED 4 and SKIPPED 5 final. The SQL below
 * relies on that order ("state < 3"), so new states must be appended and
 * the queries reviewed. (SKIPPED came later: an older hookd reading a
 * journal with one shows its number.)
 */
_Static_assert(DSTATE_QUEUED == 0 && DSTATE_RUNNING == 1 && DSTATE_RETRY_WAIT == 2 &&
                       DSTATE_SUCCEEDED == 3 && DSTATE_FAILED == 4 && DSTATE_SKIPPED == 5,
               "journal.db stores enum delivery_state values");

static const char schema_v1[] =
	"CREATE TABLE deliveries ("
	" id INTEGER PRIMARY KEY,"
	" endpoint TEXT NOT NULL,"
	" delivery_id TEXT NOT NULL,"
	" event TEXT NOT NULL,"
	" remote_addr TEXT NOT NULL DEFAULT '',"
	" async INTEGER NOT NULL,"
	" state INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"  /* finished (or interrupted) ones */
	" received_ms INTEGER NOT NULL,"         /* first receipt; a resend keeps it */
	" updated_ms INTEGER NOT NULL,"
	" next_due_ms INTEGER NOT NULL DEFAULT 0,"
	" run_attempt INTEGER NOT NULL DEFAULT 0," /* while RUNNING: which attempt */
	" run_started_ms INTEGER NOT NULL DEFAULT 0,"
	" http INTEGER NOT NULL DEFAULT 0,"      /* last attempt's; 0: none yet */
	" status TEXT,"
	" error TEXT,"
	" headers TEXT NOT NULL DEFAULT '',"     /* \"Name: value\\n\" lines */
	" body BLOB NOT NULL DEFAULT x'',"
	" body_len INTEGER NOT NULL DEFAULT 0,"  /* as received; body may be cut */
	" body_cut INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (delivery_id, endpoint)"        /* id first: `show ID` without endpoint */
	");"
	"CREATE INDEX deliveries_received ON deliveries (received_ms);"
	"CREATE INDEX deliveries_pending ON deliveries (async, received_ms) WHERE state < 3;"
	"CREATE TABLE attempts ("
	" delivery INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,"
	" attempt INTEGER NOT NULL,"
	" started_ms INTEGER,"
	" finished_ms INTEGER,"                  /* NULL: interrupted, end unknown */
	" http INTEGER NOT NULL DEFAULT 0,"
	" status TEXT NOT NULL,"
	" error TEXT,"
	" PRIMARY KEY (delivery, attempt)"
	") WITHOUT ROWID;"
	"CREATE TABLE hook_runs ("
	" delivery INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,"
	" attempt INTEGER NOT NULL,"
	" seq INTEGER NOT NULL,"
	" hook TEXT NOT NULL,"
	" exit INTEGER,"                         /* NULL: none */
	" signal TEXT,"
	" ms INTEGER NOT NULL DEFAULT 0,"
	" error TEXT,"
	" output BLOB,"
	" PRIMARY KEY (delivery, attempt, seq)"
	") WITHOUT ROWID;";

/*
 * Version 2: which attempts `hookd replay` asked for. A requeue for a
 * replay records the attempt it will be (deliveries.replay_attempt); the
 * attempt row, when it is written, compares itself with it.
 */
static const char schema_v2[] =
	"ALTER TABLE deliveries ADD COLUMN replay_attempt INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE attempts ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 3: an attempt whose answer never reached its sender (it hung up
 * first: journal_attempt.client_gone). A hookd of version 2 refuses the
 * file (it is newer than its own) rather than write attempts that do not
 * say so.
 */
static const char schema_v3[] =
	"ALTER TABLE attempts ADD COLUMN client_gone INTEGER NOT NULL DEFAULT 0;";

static const char query_indexes[] =
	"CREATE INDEX IF NOT EXISTS deliveries_state_received ON deliveries (state, received_ms);"
	"CREATE INDEX IF NOT EXISTS deliveries_endpoint_received"
	" ON deliveries (endpoint, received_ms);";

/* ---- open and close ---- */

/* mkdir -p; the last component (only if created here) gets mode 0700. */
/* Creates the database file 0600 before SQLite does (SQLite would use
 * 0644 & ~umask); SQLite gives the -wal and -shm files the same mode. */
static int create_db_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int ret = 0;
	if (fchmod(fd, 0600) < 0) {
		snprintf(err, errlen, "%s: chmod: %s", path, strerror(errno));
		ret = -1;
	}
	close(fd);
	return ret;
}

static int user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Creates the schema in an empty database or migrates an older one. */
static int schema_setup(struct sqlj *j, char *err, size_t errlen)
{
	if (tx_begin(j, true) < 0)
		goto fail;
	int version;
	if (user_version(j->db, &version) < 0)
		goto fail;
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this hookd's (%d)",
		         j->path, version, SCHEMA_VERSION);
		tx_rollback(j);
		return -1;
	}
	/* A new file gets version 1, then every step up, like an old one. */
	if (version == 0 && sqlite3_exec(j->db, schema_v1, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (version < 2 && sqlite3_exec(j->db, schema_v2, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (version < 3 && sqlite3_exec(j->db, schema_v3, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	/* Later: `if (version < 4) ...`, and the version bumped. */
	if (version < SCHEMA_VERSION) {
		char *sql = xasprintf("PRAGMA user_version = %d;", SCHEMA_VERSION);
		int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
		free(sql);
		if (rc != SQLITE_OK)
			goto fail;
	}
	/* The deliveries page's filters (journal_query): added to any journal,
	 * old or new, without a schema version of their own. */
	if (sqlite3_exec(j->db, query_indexes, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	j->schema = SCHEMA_VERSION;
	if (tx_commit(j) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: schema: %s", j->path, sqlite3_errmsg(j->db));
	tx_rollback(j);
	return -1;
}

static char *journal_path(const char *state_dir)
{
	return xasprintf("%s/journal.db", state_dir);
}

static struct sqlj *journal_new_handle(const char *state_dir)
{
	struct sqlj *j = xcalloc(1, sizeof(*j));
	j->path = journal_path(state_dir);
	j->sync_fd = -1;
	return j;
}

/*
 * A descriptor of our own on the WAL (SQLite keeps its own hidden): on
 * Linux fdatasync writes out a file's data whichever descriptor it is
 * called on. The WAL lives as long as the daemon's connection (SQLite
 * deletes it only when the last connection closes), and is rewritten in
 * place, never replaced. Its directory entry is made durable once, here.
 */
static int open_sync_fd(struct sqlj *j, const char *state_dir, char *err, size_t errlen)
{
	char *wal = xasprintf("%s-wal", j->path);
	j->sync_fd = open(wal, O_RDWR | O_CLOEXEC);
	if (j->sync_fd < 0)
		snprintf(err, errlen, "%s: %s", wal, strerror(errno));
	free(wal);
	if (j->sync_fd < 0)
		return -1;
	int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

bool pragma_ok(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static struct sqlj *open_rw(const char *state_dir, uint64_t body_max, int64_t keep_ms,
                            int64_t max_rows, char *err, size_t errlen)
{
	if (!sqlite_load(err, errlen))
		return NULL;
	if (state_dir_make(state_dir, err, errlen) < 0)
		return NULL;
	struct sqlj *j = journal_new_handle(state_dir);
	j->body_max = body_max > INT64_MAX ? INT64_MAX : body_max;
	j->keep_ms = keep_ms;
	j->max_rows = max_rows;
	if (create_db_file(j->path, err, errlen) < 0)
		goto fail;
	/* NOMUTEX: one thread uses a connection. SQLite opens every file
	 * O_CLOEXEC, so hooks never inherit the database. */
	const char *vfs = sqlj_wal_vfs(err, errlen);
	if (!vfs)
		goto fail;
	int rc = sqlite3_open_v2(j->path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                         vfs);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", j->path,
		         j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
	sqlj_wal_attach(j->db);

	/*
	 * A new journal gets pages of 2 KiB (an existing one keeps its own:
	 * the setting only takes on a file without any). Every commit writes
	 * each page it changed to the WAL, checksummed byte by byte, and a
	 * delivery changes a leaf of the table and of each index, a few bytes
	 * in each: with pages half the size, the commit of one delivery costs
	 * about 14,000 instructions less. A row of a small webhook (its body
	 * and headers, about 1 KiB) still fits a page; 1 KiB pages would send
	 * it to an overflow page and save nothing.
	 */
	pragma_ok(j->db, "PRAGMA page_size = 2048");
	sqlite3_stmt *s;
	bool wal = false;
	if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(s, 0);
			wal = mode && strcmp(mode, "wal") == 0;
		}
		sqlite3_finalize(s);
	}
	if (!wal) {
		snprintf(err, errlen, "%s: cannot use WAL mode: %s", j->path, sqlite3_errmsg(j->db));
		goto fail;
	}
	if (!pragma_ok(j->db, "PRAGMA synchronous = NORMAL") ||
	    !pragma_ok(j->db, "PRAGMA foreign_keys = ON")) {
		snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
		goto fail;
	}
	if (schema_setup(j, err, errlen) < 0)
		goto fail;
	if (recount(j) < 0) {
		snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
		goto fail;
	}
	if (open_sync_fd(j, state_dir, err, errlen) < 0)
		goto fail;
	return j;
fail:
	sq_close(&j->base);
	return NULL;
}

bool journal_sqlite_missing(const char *state_dir)
{
	char *path = journal_path(state_dir);
	struct stat st;
	bool missing = stat(path, &st) < 0 && errno == ENOENT;
	free(path);
	return missing;
}

static struct sqlj *open_ro(const char *state_dir, char *err, size_t errlen)
{
	if (!sqlite_load(err, errlen))
		return NULL;
	struct sqlj *j = journal_new_handle(state_dir);
	j->readonly = true;
	struct stat st;
	if (stat(j->path, &st) < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: no journal yet (hookd has not run with this state_dir)",
			         j->path);
		else
			snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		goto fail;
	}
	int rc = sqlite3_open_v2(j->path, &j->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", j->path,
		         j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
	int version;
	/* The first read is where a missing -shm that cannot be created, or
	 * a file that is not a database, shows. */
	if (user_version(j->db, &version) < 0) {
		snprintf(err, errlen, "%s: %s", j->path, sqlite3_errmsg(j->db));
		goto fail;
	}
	if (version == 0) {
		snprintf(err, errlen, "%s: not a hookd journal (no schema)", j->path);
		goto fail;
	}
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this hookd's (%d)",
		         j->path, version, SCHEMA_VERSION);
		goto fail;
	}
	j->schema = version;
	return j;
fail:
	sq_close(&j->base);
	return NULL;
}

void sq_close(struct journal *base)
{
	struct sqlj *j = (struct sqlj *)base;
	if (!j)
		return;
	sq_commit_batch(&j->base);
	for (size_t i = 0; i < ST_MAX; i++)
		sqlite3_finalize(j->st[i]);
	if (j->db)
		sqlite3_close(j->db);
	if (j->sync_fd >= 0)
		close(j->sync_fd);
	free(j->path);
	free(j);
}

struct journal *sq_open(const struct journal_opts *o, bool readonly, char *err,
                               size_t errlen)
{
	struct sqlj *j = readonly ? open_ro(o->state_dir, err, errlen)
	                          : open_rw(o->state_dir, o->body_max, o->keep_ms, o->max_rows, err,
	                                    errlen);
	if (!j)
		return NULL;
	j->base.ops = &journal_sqlite_ops;
	return &j->base;
}
