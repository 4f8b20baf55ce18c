/* server: not written yet. */
#include "server.h"
extern int hookd_server_unwritten;
