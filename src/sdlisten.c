#include "sdlisten.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static int check_listening(int fd, char *err, size_t errlen)
{
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0) {
		snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
		return -EBADF;
	}
	if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
		snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
		return -errno;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "socket activation: fd %d: %s", fd, strerror(errno));
		return -errno;
	}
	int type = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) < 0 || type != SOCK_STREAM || !acc) {
		/* Accept=yes sockets or datagram sockets are not what hookd serves. */
		snprintf(err, errlen,
		         "socket activation: fd %d is not a listening stream socket "
		         "(hookd.socket needs ListenStream= and Accept=no)",
		         fd);
		return -ENOTSOCK;
	}
	return 0;
}

int sdlisten_take(struct sd_socket **out, char *err, size_t errlen)
{
	*out = NULL;
	const char *fds = getenv("LISTEN_FDS");
	const char *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	int rc = 0;
	uint64_t p;
	int n;
	if (!fds || !pid)
		goto out;
	if (!parse_u64(pid, &p)) {
		snprintf(err, errlen, "socket activation: bad LISTEN_PID '%s'", pid);
		rc = -EINVAL;
		goto out;
	}
	if (p != (uint64_t)getpid())
		goto out; /* meant for another process (a wrapper that did not exec) */
	if (!parse_int(fds, 0, SD_LISTEN_FDS_MAX, &n)) {
		snprintf(err, errlen, "socket activation: bad LISTEN_FDS '%s'", fds);
		rc = -EINVAL;
		goto out;
	}
	if (n == 0)
		goto out;
	struct sd_socket *v = xcalloc((size_t)n, sizeof(*v));
	const char *np = names;
	for (int i = 0; i < n; i++) {
		v[i].fd = SD_LISTEN_FDS_START + i;
		/* Names are colon-separated, in fd order; missing ones are "unknown". */
		size_t len = 0;
		if (np) {
			len = strcspn(np, ":");
			if (len >= sizeof(v[i].name))
				len = sizeof(v[i].name) - 1;
		}
		if (len > 0)
			memcpy(v[i].name, np, len);
		else
			strcpy(v[i].name, "unknown");
		if (np) {
			np += strcspn(np, ":");
			np = *np == ':' ? np + 1 : NULL;
		}
		rc = check_listening(v[i].fd, err, errlen);
		if (rc < 0) {
			free(v);
			goto out;
		}
	}
	*out = v;
	rc = n;
out:
	/* The sockets are ours now; nothing we start may take them as its own. */
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}

bool sdlisten_is_local(int fd, char *addr, size_t addrlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	snprintf(addr, addrlen, "fd %d", fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	char text[INET6_ADDRSTRLEN] = "";
	if (ss.ss_family == AF_UNIX)
		return true;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
		snprintf(addr, addrlen, "%s:%u", text, ntohs(in->sin_port));
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		const unsigned char *b = in6->sin6_addr.s6_addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
		snprintf(addr, addrlen, "[%s]:%u", text, ntohs(in6->sin6_port));
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127;
	}
	return false;
}
