/* netaddr: not written yet. */
#include "netaddr.h"
extern int hookd_netaddr_unwritten;
