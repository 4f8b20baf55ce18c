/* route: not written yet. */
#include "route.h"
extern int hookd_route_unwritten;
