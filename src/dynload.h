/*
 * Libraries that only some configurations use (SQLite for the journal)
 * are loaded when first needed, with dlopen: a daemon that does not use
 * them never maps them, which is most of its idle memory that is not
 * its own. The packages still depend on them, so they are there.
 */
#ifndef HOOKD_DYNLOAD_H
#define HOOKD_DYNLOAD_H

#include <stdbool.h>
#include <stddef.h>

struct dynsym {
	const char *name;
	void *slot; /* the address of a function pointer, set from dlsym */
};

/* Loads soname and fills every slot. false with the reason in err when
 * the library or a symbol is missing; no slot is then set. */
bool dynload(const char *soname, const struct dynsym *syms, size_t n, char *err, size_t errlen);
/* The same for a library that must stay mapped until the process ends:
 * libpq, whose own dependencies (Kerberos, LDAP) leave thread-specific
 * data behind that a process exit walks after an unload. */
bool dynload_resident(const char *soname, const struct dynsym *syms, size_t n, char *err,
                      size_t errlen);

#endif
