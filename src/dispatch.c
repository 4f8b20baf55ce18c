/* dispatch: not written yet. */
#include "dispatch.h"
extern int hookd_dispatch_unwritten;
