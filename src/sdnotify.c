#include "sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util.h"

static struct {
	int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t watchdog_usec;
	struct event *watchdog;
} N = {.fd = -1};

int sdnotify_open(char *err, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wd_pid = getenv("WATCHDOG_PID");
	uint64_t usec = 0, pid = 0;
	/* The watchdog is for us only if WATCHDOG_PID is unset or names us. */
	if (wd && parse_u64(wd, &usec) && usec > 0 &&
	    (!wd_pid || (parse_u64(wd_pid, &pid) && pid == (uint64_t)getpid())))
		N.watchdog_usec = usec;
	int rc = 0;
	if (!path || !*path)
		goto out;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(N.addr.sun_path)) {
		/* vsock: and other forms are for VMs; hookd does not speak them. */
		snprintf(err, errlen, "NOTIFY_SOCKET=%s: not a unix socket path or @name", path);
		N.watchdog_usec = 0;
		rc = -EAFNOSUPPORT;
		goto out;
	}
	memset(&N.addr, 0, sizeof(N.addr));
	N.addr.sun_family = AF_UNIX;
	memcpy(N.addr.sun_path, path, len);
	if (path[0] == '@')
		N.addr.sun_path[0] = '\0'; /* abstract namespace: no file, no NUL at the end */
	N.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
	/* Non-blocking: a notification is never worth stalling the event loop. */
	N.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (N.fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		N.watchdog_usec = 0;
		goto out;
	}
	rc = 1;
out:
	/* Hooks never inherit the daemon's environment (only pass_env), but a
	 * pass_env naming these must not let a hook speak for hookd either. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (rc <= 0)
		N.watchdog_usec = 0;
	return rc;
}

bool sdnotify_enabled(void)
{
	return N.fd >= 0;
}

static int send_text(const char *msg, size_t len)
{
	if (N.fd < 0)
		return 0;
	ssize_t w;
	do
		w = sendto(N.fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&N.addr, N.addrlen);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EMSGSIZE;
}

int sdnotify_send(const char *fmt, ...)
{
	if (N.fd < 0)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int rc = send_text(msg, (size_t)n);
	free(msg);
	return rc;
}

int sdnotify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long usec =
		(unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
	return sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

uint64_t sdnotify_watchdog_usec(void)
{
	return N.watchdog_usec;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	/* Sent from the event loop: a loop that stops turning stops these. */
	send_text("WATCHDOG=1", 10);
}

int sdnotify_watchdog_start(struct event_base *base)
{
	if (N.fd < 0 || N.watchdog_usec == 0 || N.watchdog)
		return 0;
	uint64_t half = N.watchdog_usec / 2;
	struct timeval tv = {(time_t)(half / 1000000), (suseconds_t)(half % 1000000)};
	N.watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
	if (!N.watchdog)
		return -ENOMEM;
	event_add(N.watchdog, &tv);
	send_text("WATCHDOG=1", 10);
	return 1;
}

void sdnotify_close(void)
{
	if (N.watchdog) {
		event_free(N.watchdog);
		N.watchdog = NULL;
	}
	if (N.fd >= 0)
		close(N.fd);
	N.fd = -1;
	N.watchdog_usec = 0;
}
