/*
 * The SQLite journal's writer opens its file through a VFS of its own
 * (journal_sqlite_wal.c): the default one, with a commit's writes to the
 * WAL gathered into one system call.
 */
#ifndef HOOKD_JOURNAL_SQLITE_WAL_H
#define HOOKD_JOURNAL_SQLITE_WAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

/* The VFS's name, for sqlite3_open_v2; registered at the first call
 * (libsqlite3 must be loaded: journal_sqlite_open.c). NULL with the reason
 * in err when it cannot be. */
const char *sqlj_wal_vfs(char *err, size_t errlen);
/* For a connection opened with it: a rollback drops what its WAL holds. */
void sqlj_wal_attach(sqlite3 *db);
/* After a commit on db: true when nothing of it is held (always, unless
 * SQLite took a path the VFS does not know). */
bool sqlj_wal_settled(sqlite3 *db);
/* The bytes held for a file (0 for a file not of this VFS's WAL kind). */
size_t sqlj_wal_held(sqlite3_file *f);
/* How many times sqlj_wal_settled found something held. */
size_t sqlj_wal_settle_misses(void);

#endif
