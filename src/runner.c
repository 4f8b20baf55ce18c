/* runner: not written yet. */
#include "runner.h"
extern int hookd_runner_unwritten;
