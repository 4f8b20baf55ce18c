/*
 * Socket activation (sd_listen_fds(3)), read directly from the documented
 * environment, like sdnotify.h: systemd passes the listening sockets of
 * hookd.socket as fds 3, 4, ... with LISTEN_FDS=<count>, LISTEN_PID=<our
 * pid> and, optionally, LISTEN_FDNAMES=<name>:<name>... (a socket unit's
 * FileDescriptorName=). hookd then serves on them instead of binding
 * [server] listen; a socket named "admin" is the admin listener's.
 */
#ifndef HOOKD_SDLISTEN_H
#define HOOKD_SDLISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define SD_LISTEN_FDS_START 3
#define SD_LISTEN_FDS_MAX 64

struct sd_socket {
	int fd;
	char name[256]; /* from LISTEN_FDNAMES; "unknown" when not given */
};

/*
 * Takes the sockets passed to this process: returns how many (0 when
 * LISTEN_FDS is unset or LISTEN_PID names another process), each made
 * non-blocking and close-on-exec, or -errno with a message in err when one
 * is not a listening stream socket or the variables are malformed.
 * LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES are removed from the
 * environment either way. *out is malloc'd (free it), NULL when 0.
 */
int sdlisten_take(struct sd_socket **out, char *err, size_t errlen);

/*
 * Whether the socket fd is bound to a loopback address (127.0.0.0/8, ::1,
 * or ::ffff:127.x) or is a unix socket: what an admin listener without a
 * token may be. addr gets the address as text, for the error.
 */
bool sdlisten_is_local(int fd, char *addr, size_t addrlen);

#endif
