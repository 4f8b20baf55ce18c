/*
 * A test shim for test_journal.py, loaded into hookd with LD_PRELOAD: while
 * the file READSHIM_FAULT names exists, reading a delivery's row back by
 * its id fails. That read is the statement whose text begins with
 * READ_BACK and that selects the body (journal_get: journal_sqlite.c's
 * ST_GET, which a requeue's look at the body also uses, and
 * journal_pg_take.c's "get"; not the list of pending rows recovery reads,
 * which begins the same and selects NULL for it). SQLite's step fails with SQLITE_IOERR;
 * libpq's PQexecParams returns no result, as when the connection breaks
 * (the journal goes down and connects again), which is how a PostgreSQL
 * restart meets that read. While READSHIM_TURN_FAULT names a file that
 * exists, a PostgreSQL journal's taking of a key's turn (its first
 * statement, the prepared "hookd_turn_lock") fails the same way.
 *
 * hookd loads libsqlite3 and libpq with dlopen and takes their functions
 * with dlsym (dynload.c), out of LD_PRELOAD's reach: the shim stands in
 * for dlsym, and hands out its own sqlite3_step, PQexecParams and
 * PQexecPrepared, which call the library's. Not part of hookd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_BACK "SELECT id, endpoint, delivery_id, event, remote_addr, state, attempts,"
#define WITH_BODY "received_ms, body,"
#define TURN_LOCK "hookd_turn_lock"

#define SQLITE_IOERR 10

/* The libraries' own types, opaque here: no headers needed. */
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

static int (*real_step)(sqlite3_stmt *);
static const char *(*real_sql)(sqlite3_stmt *);
static PGresult *(*real_exec_params)(PGconn *, const char *, int, const unsigned int *,
                                     const char *const *, const int *, const int *, int);
static PGresult *(*real_exec_prepared)(PGconn *, const char *, int, const char *const *,
                                       const int *, const int *, int);

static bool failing(const char *sql)
{
	const char *sw = getenv("READSHIM_FAULT");
	return sw && sql && strncmp(sql, READ_BACK, strlen(READ_BACK)) == 0 &&
	       strstr(sql, WITH_BODY) && access(sw, F_OK) == 0;
}

static bool turn_failing(const char *name)
{
	const char *sw = getenv("READSHIM_TURN_FAULT");
	return sw && name && strcmp(name, TURN_LOCK) == 0 && access(sw, F_OK) == 0;
}

static int shim_step(sqlite3_stmt *s)
{
	if (real_sql && failing(real_sql(s)))
		return SQLITE_IOERR;
	return real_step(s);
}

static PGresult *shim_exec_params(PGconn *conn, const char *command, int n,
                                  const unsigned int *types, const char *const *values,
                                  const int *lengths, const int *formats, int result_format)
{
	if (failing(command))
		return NULL;
	return real_exec_params(conn, command, n, types, values, lengths, formats, result_format);
}

static PGresult *shim_exec_prepared(PGconn *conn, const char *name, int n,
                                    const char *const *values, const int *lengths,
                                    const int *formats, int result_format)
{
	if (turn_failing(name))
		return NULL;
	return real_exec_prepared(conn, name, n, values, lengths, formats, result_format);
}

/* A function pointer from dlsym's object pointer, and back: ISO C has no
 * cast between the two, so they are copied. */
#define FROM_OBJ(fn, obj) memcpy(&(fn), &(obj), sizeof(fn))

void *dlsym(void *handle, const char *name);
void *dlsym(void *handle, const char *name)
{
	static void *(*real)(void *, const char *);
	if (!real) {
		void *p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
		if (!p)
			p = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5"); /* x86-64's before 2.34 */
		if (!p)
			abort(); /* a glibc this shim does not know: no test is better */
		FROM_OBJ(real, p);
	}
	void *sym = real(handle, name);
	if (!sym || handle == RTLD_NEXT || handle == RTLD_DEFAULT)
		return sym;
	void *mine = NULL;
	if (strcmp(name, "sqlite3_step") == 0) {
		FROM_OBJ(real_step, sym);
		void *sql = real(handle, "sqlite3_sql");
		FROM_OBJ(real_sql, sql);
		int (*fn)(sqlite3_stmt *) = shim_step;
		FROM_OBJ(mine, fn);
	} else if (strcmp(name, "PQexecParams") == 0) {
		FROM_OBJ(real_exec_params, sym);
		PGresult *(*fn)(PGconn *, const char *, int, const unsigned int *, const char *const *,
		                const int *, const int *, int) = shim_exec_params;
		FROM_OBJ(mine, fn);
	} else if (strcmp(name, "PQexecPrepared") == 0) {
		FROM_OBJ(real_exec_prepared, sym);
		PGresult *(*fn)(PGconn *, const char *, int, const char *const *, const int *,
		                const int *, int) = shim_exec_prepared;
		FROM_OBJ(mine, fn);
	}
	return mine ? mine : sym;
}
