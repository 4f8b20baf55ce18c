/* verify: not written yet. */
#include "verify.h"
extern int hookd_verify_unwritten;
