/*
 * The SQLite journal's writer opens its file through a VFS of its own
 * (journal_sqlite_wal.c): the default one, with a commit's writes to the
 * WAL gathered into one system call.
 */
#ifndef HOOKD_JOURNAL_SQLITE_WAL_H
#define HOOKD_JOURNAL_SQLITE_WAL_H

#include <sqlite3.h>
#include <stddef.h>

/* The VFS's name, for sqlite3_open_v2; registered at the first call
 * (libsqlite3 must be loaded: journal_sqlite_open.c). NULL with the reason
 * in err when it cannot be. */
const char *sqlj_wal_vfs(char *err, size_t errlen);
/* After a commit on db: writes whatever the commit left held (nothing,
 * unless SQLite took a path the VFS does not know). An SQLite result code. */
int sqlj_wal_settle(sqlite3 *db);
/* The bytes held for a file (0 for a file not of this VFS's WAL kind). */
size_t sqlj_wal_held(sqlite3_file *f);
/* How many times sqlj_wal_settle found something held. */
size_t sqlj_wal_settle_writes(void);

#endif
