/*
 * The journal's WAL writes, one system call a commit (journal_sqlite_wal.h).
 * SQLite writes each page a commit changed to the WAL as two pwrites, the
 * frame's 24-byte header and then the page: a batch of a few deliveries
 * changes ten pages or so, twenty system calls on the loop.
 * On this project's 2-CPU VM a frame written so costs 3.4 µs, and 0.45 µs
 * when a commit's frames go to the file in one write (RESULTS.md "The
 * WAL's writes gathered").
 *
 * This VFS is the default one ("unix") with one change, for WAL files
 * only: a write that continues the one before it is held in a buffer, and
 * the buffer goes to the file in one write
 *   - as soon as it holds the page of a commit frame (the last write of a
 *     commit: a frame's header says whether it ends one),
 *   - before any other call on the file (a read, a sync, a truncation, its
 *     size), before a write anywhere else, and when it is full.
 * So every write of a commit is in the file before SQLite's commit goes on
 * to publish the new frames in the WAL index for readers, and a failed
 * write is the failure of the commit's own last write, as it would be
 * without the buffer. A sync always comes after the writes it covers.
 *
 * Two of SQLite's paths write a commit frame's header without its page
 * after it: the rewrite of a transaction's checksums (after a page was
 * written twice in one transaction) and a commit of a single frame. Each
 * such header finds the buffer empty (the rewrite reads each frame first,
 * which writes the buffer out), and a commit header that finds the buffer
 * empty is written at once, not held. After each commit the journal checks
 * that nothing is held still (sqlj_wal_settled) and stops hookd if
 * something is: a path of SQLite's this does not know, whose commit was
 * published without all of its frames. A rolled-back transaction's
 * writes are dropped (on_rollback, wal_close), and a WAL without
 * power-safe overwrite is not held at all (vfs_open).
 *
 * Any other file (the database, its -shm) is the default VFS's own, opened
 * straight into the memory SQLite gives: nothing between them.
 */
#include "journal_sqlite_private.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char vfs_name[] = "hookd-wal";

/* About the frames of a batch of a dozen deliveries, in 2 KiB pages;
 * larger commits go out in several writes. Under 128 KiB: the default
 * VFS writes at most 17 bits of a length in one call (SQLite's own writes
 * are never longer than a page of 64 KiB and a frame header). */
#define HOLD_MAX (112 * 1024)
#define WAL_HEADER 32
#define FRAME_HEADER 24

struct walfile {
	sqlite3_file base; /* first: SQLite's handle; base.pMethods = &wal_methods */
	sqlite3_file *real; /* the default VFS's file, in the memory after this */
	bool hold;          /* false: every write goes through at once */
	unsigned char *held;
	int held_len;
	sqlite3_int64 held_off;  /* where held[0] goes in the file */
	sqlite3_int64 commit_page; /* offset of the page after a commit header; -1 */
};

/* Where the default VFS's file begins: after ours, aligned as SQLite
 * aligns its own. */
#define REAL_OFFSET ((sizeof(struct walfile) + 7) & ~(size_t)7)

static size_t settle_misses; /* sqlj_wal_settled found something held */

static int put_held(struct walfile *w)
{
	if (w->held_len == 0)
		return SQLITE_OK;
	int n = w->held_len;
	w->held_len = 0;
	return w->real->pMethods->xWrite(w->real, w->held, n, w->held_off);
}

static bool commit_header(const void *data, int amt, sqlite3_int64 off)
{
	if (amt != FRAME_HEADER || off < WAL_HEADER)
		return false;
	/* Bytes 4 to 7: the database's size in pages after a commit; 0 in
	 * every other frame. */
	const unsigned char *h = data;
	return (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int wal_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
	struct walfile *w = (struct walfile *)f;
	int rc;
	if (!w->hold)
		return w->real->pMethods->xWrite(w->real, data, amt, off);
	if (w->held_len > 0 && (off != w->held_off + w->held_len || amt > HOLD_MAX - w->held_len)) {
		if ((rc = put_held(w)) != SQLITE_OK)
			return rc;
	}
	bool ends_commit = off == w->commit_page;
	bool is_commit_header = commit_header(data, amt, off);
	if (is_commit_header)
		w->commit_page = off + amt;
	else if (ends_commit)
		w->commit_page = -1;
	if (amt > HOLD_MAX || (is_commit_header && w->held_len == 0))
		return w->real->pMethods->xWrite(w->real, data, amt, off);
	if (!w->held)
		w->held = xmalloc(HOLD_MAX);
	if (w->held_len == 0)
		w->held_off = off;
	memcpy(w->held + w->held_len, data, (size_t)amt);
	w->held_len += amt;
	return ends_commit ? put_held(w) : SQLITE_OK;
}

/* A commit leaves nothing held, so what is held at the end is a
 * transaction's that SQLite rolled back as the connection closed (it calls
 * no rollback hook then): dropped, as on_rollback drops it. */
static int wal_close(sqlite3_file *f)
{
	struct walfile *w = (struct walfile *)f;
	free(w->held);
	w->held = NULL;
	w->held_len = 0;
	return w->real->pMethods->xClose(w->real);
}

/* Every other call writes what is held first, then is the default one. */
#define REAL(f) (((struct walfile *)(f))->real)
#define PUT_HELD_OR_RETURN(f)                                              \
	do {                                                               \
		int put_rc = put_held((struct walfile *)(f));              \
		if (put_rc != SQLITE_OK)                                   \
			return put_rc;                                     \
	} while (0)

static int wal_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int wal_sync(sqlite3_file *f, int flags)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int wal_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int wal_lock(sqlite3_file *f, int level)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int wal_unlock(sqlite3_file *f, int level)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int wal_check_reserved_lock(sqlite3_file *f, int *out)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int wal_file_control(sqlite3_file *f, int op, void *arg)
{
	PUT_HELD_OR_RETURN(f);
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int wal_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int wal_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* SQLite maps no WAL file and keeps no shared memory in one (that is the
 * database file's -shm): version 1 of the methods is all a WAL file needs. */
static const sqlite3_io_methods wal_methods = {
	.iVersion = 1,
	.xClose = wal_close,
	.xRead = wal_read,
	.xWrite = wal_write,
	.xTruncate = wal_truncate,
	.xSync = wal_sync,
	.xFileSize = wal_file_size,
	.xLock = wal_lock,
	.xUnlock = wal_unlock,
	.xCheckReservedLock = wal_check_reserved_lock,
	.xFileControl = wal_file_control,
	.xSectorSize = wal_sector_size,
	.xDeviceCharacteristics = wal_device_characteristics,
};

static sqlite3_vfs vfs;

static sqlite3_vfs *real_vfs(void)
{
	return vfs.pAppData;
}

static int vfs_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags,
                    int *out_flags)
{
	(void)v;
	sqlite3_vfs *rv = real_vfs();
	if (!(flags & SQLITE_OPEN_WAL))
		return rv->xOpen(rv, name, f, flags, out_flags);
	struct walfile *w = (struct walfile *)f;
	memset(w, 0, sizeof(*w));
	w->real = (sqlite3_file *)((char *)f + REAL_OFFSET);
	w->commit_page = -1;
	int rc = rv->xOpen(rv, name, w->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (w->real->pMethods)
			w->real->pMethods->xClose(w->real);
		w->base.pMethods = NULL;
		return rc;
	}
	w->base.pMethods = &wal_methods;
	/*
	 * Without "power-safe overwrite" (the database's psow URI parameter
	 * off, or an SQLite built without it) a commit synced at once
	 * (synchronous=FULL) pads the WAL to a sector, and splits a frame
	 * around the sync: the rest of it is neither a commit header nor its
	 * page, and would stay held while SQLite publishes the commit. Such a
	 * WAL is written as it comes. (Debian's SQLite and a plain path have
	 * it on.) A WAL's name carries its database's URI parameters.
	 */
	w->hold = (w->real->pMethods->xDeviceCharacteristics(w->real) &
	           SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0 &&
	          sqlite3_uri_boolean(name, "psow", 1);
	return SQLITE_OK;
}

/* The rest of the VFS is the default one's, called with its own handle. */
static int vfs_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
	(void)v;
	return real_vfs()->xDelete(real_vfs(), name, sync_dir);
}

static int vfs_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	return real_vfs()->xAccess(real_vfs(), name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return real_vfs()->xFullPathname(real_vfs(), name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *v, const char *name)
{
	(void)v;
	return real_vfs()->xDlOpen(real_vfs(), name);
}

static void vfs_dl_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	real_vfs()->xDlError(real_vfs(), n, out);
}

static void (*vfs_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	(void)v;
	return real_vfs()->xDlSym(real_vfs(), h, sym);
}

static void vfs_dl_close(sqlite3_vfs *v, void *h)
{
	(void)v;
	real_vfs()->xDlClose(real_vfs(), h);
}

static int vfs_randomness(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs()->xRandomness(real_vfs(), n, out);
}

static int vfs_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs()->xSleep(real_vfs(), us);
}

static int vfs_current_time(sqlite3_vfs *v, double *out)
{
	(void)v;
	return real_vfs()->xCurrentTime(real_vfs(), out);
}

static int vfs_get_last_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs()->xGetLastError(real_vfs(), n, out);
}

static int vfs_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	(void)v;
	return real_vfs()->xCurrentTimeInt64(real_vfs(), out);
}

const char *sqlj_wal_vfs(char *err, size_t errlen)
{
	if (vfs.zName)
		return vfs_name;
	sqlite3_vfs *rv = sqlite3_vfs_find(NULL);
	if (!rv || rv->iVersion < 2) {
		str_copy(err, errlen, "SQLite has no default VFS of version 2 or later");
		return NULL;
	}
	vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)REAL_OFFSET + rv->szOsFile,
		.mxPathname = rv->mxPathname,
		.zName = vfs_name,
		.pAppData = rv,
		.xOpen = vfs_open,
		.xDelete = vfs_delete,
		.xAccess = vfs_access,
		.xFullPathname = vfs_full_pathname,
		.xDlOpen = vfs_dl_open,
		.xDlError = vfs_dl_error,
		.xDlSym = vfs_dl_sym,
		.xDlClose = vfs_dl_close,
		.xRandomness = vfs_randomness,
		.xSleep = vfs_sleep,
		.xCurrentTime = vfs_current_time,
		.xGetLastError = vfs_get_last_error,
		.xCurrentTimeInt64 = vfs_current_time_int64,
	};
	int rc = sqlite3_vfs_register(&vfs, 0);
	if (rc != SQLITE_OK) {
		str_copy(err, errlen, sqlite3_errstr(rc));
		vfs.zName = NULL;
		return NULL;
	}
	return vfs_name;
}

static struct walfile *wal_of(sqlite3 *db)
{
	sqlite3_file *f = NULL;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
	    !f || f->pMethods != &wal_methods)
		return NULL;
	return (struct walfile *)f;
}

/*
 * A transaction rolled back: what it wrote to the WAL past the frames it
 * began with (pages spilled from the cache before its commit) is not
 * part of any commit, and is dropped. Written later, after the write lock
 * went, it could land on another writer's frames (`hookd journal import`
 * beside the daemon). SQLite calls this once the rollback is over.
 */
static void on_rollback(void *arg)
{
	struct walfile *w = wal_of(arg);
	if (w)
		w->held_len = 0;
}

void sqlj_wal_attach(sqlite3 *db)
{
	sqlite3_rollback_hook(db, on_rollback, db);
}

bool sqlj_wal_settled(sqlite3 *db)
{
	struct walfile *w = wal_of(db);
	if (!w || w->held_len == 0)
		return true;
	settle_misses++;
	return false;
}

size_t sqlj_wal_held(sqlite3_file *f)
{
	if (!f || f->pMethods != &wal_methods)
		return 0;
	return (size_t)((struct walfile *)f)->held_len;
}

size_t sqlj_wal_settle_misses(void)
{
	return settle_misses;
}
