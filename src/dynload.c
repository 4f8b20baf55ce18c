#include "dynload.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every library loaded, closed at exit: the loader's own records of them
 * are then freed too (valgrind: "All heap blocks were freed"), but for a
 * library that cannot be unloaded (libcrypto is NODELETE; tests/valgrind.supp). */
#define DYNLOAD_MAX 8
static void *handles[DYNLOAD_MAX];
static size_t nhandles;

static void unload_all(void)
{
	while (nhandles > 0)
		dlclose(handles[--nhandles]);
}

static bool load(const char *soname, int flags, const struct dynsym *syms, size_t n, char *err,
                 size_t errlen)
{
	/* RTLD_NOW: a symbol that is missing shows here, not at its first
	 * call. The handle stays open until exit: the pointers live as long. */
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL | flags);
	if (!h) {
		snprintf(err, errlen, "cannot load %s: %s", soname, dlerror());
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!dlsym(h, syms[i].name)) {
			snprintf(err, errlen, "cannot load %s: no %s in it", soname, syms[i].name);
			dlclose(h);
			return false;
		}
	}
	if (nhandles == 0)
		atexit(unload_all);
	if (nhandles < DYNLOAD_MAX)
		handles[nhandles++] = h;
	for (size_t i = 0; i < n; i++) {
		/* POSIX: a function pointer is stored as the object pointer
		 * dlsym returned (memcpy, as C has no cast between the two). */
		void *p = dlsym(h, syms[i].name);
		memcpy(syms[i].slot, &p, sizeof(p));
	}
	return true;
}

bool dynload(const char *soname, const struct dynsym *syms, size_t n, char *err, size_t errlen)
{
	return load(soname, 0, syms, n, err, errlen);
}

bool dynload_resident(const char *soname, const struct dynsym *syms, size_t n, char *err,
                      size_t errlen)
{
	/* Closed at exit like the others (the loader's records freed), but
	 * never unmapped (LeakSanitizer crashed walking the
	 * threads' data of a libpq unloaded at exit). */
	return load(soname, RTLD_NODELETE, syms, n, err, errlen);
}
