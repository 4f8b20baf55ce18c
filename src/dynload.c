#include "dynload.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool dynload(const char *soname, const struct dynsym *syms, size_t n, char *err, size_t errlen)
{
	/* RTLD_NOW: a symbol that is missing shows here, not at its first
	 * call. The handle is never closed: the pointers live as long. */
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load %s: %s", soname, dlerror());
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!dlsym(h, syms[i].name)) {
			snprintf(err, errlen, "cannot load %s: no %s in it", soname, syms[i].name);
			return false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		/* POSIX: a function pointer is stored as the object pointer
		 * dlsym returned (memcpy, as C has no cast between the two). */
		void *p = dlsym(h, syms[i].name);
		memcpy(syms[i].slot, &p, sizeof(p));
	}
	return true;
}
