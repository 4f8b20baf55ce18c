/*
 * What both limit probes share: the smallest request reader that works for
 * the benchmark's client (a head up to the empty line, Content-Length
 * bytes of body) and a listener on 127.0.0.1 at a port of the kernel's
 * choice, printed as "listening PORT" on stdout for bench.sh.
 *
 * The probes trust their client: a limit probe measures what the machine
 * and libevent can do with no checks at all, which is the point.
 */
#ifndef HOOKD_BENCH_PROBE_H
#define HOOKD_BENCH_PROBE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

/* Whether a head asks for the connection to close after its answer
 * ("Connection: close", the only form the benchmark's client sends). */
static inline int probe_wants_close(const char *head, size_t n)
{
	static const char line[] = "\nconnection: close\r";
	for (size_t i = 0; i + sizeof(line) - 1 <= n; i++) {
		if (head[i] == '\n' && strncasecmp(head + i, line, sizeof(line) - 1) == 0)
			return 1;
	}
	return 0;
}

/* Content-Length from a head, or 0. */
static inline size_t probe_content_length(const char *head, size_t n)
{
	static const char name[] = "\ncontent-length:";
	for (size_t i = 0; i + sizeof(name) - 1 < n; i++) {
		if (head[i] != '\n' || strncasecmp(head + i, name, sizeof(name) - 1) != 0)
			continue;
		size_t v = 0;
		const char *p = head + i + sizeof(name) - 1;
		while (*p == ' ')
			p++;
		for (; *p >= '0' && *p <= '9' && v < (1u << 30); p++)
			v = v * 10 + (size_t)(*p - '0');
		return v;
	}
	return 0;
}

/*
 * Takes one whole request off `in` once it is there: returns 1 and
 * drains it, or 0 when more bytes must come. *body_need and *in_body keep
 * the state between calls; *close (when not NULL) is set when the head
 * asked for "Connection: close".
 */
static inline int probe_take_request(struct evbuffer *in, size_t *body_need, int *in_body,
                                     int *close)
{
	if (!*in_body) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (p.pos < 0)
			return 0;
		size_t head_len = (size_t)p.pos + 4;
		const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
		*body_need = probe_content_length(head, head_len);
		if (close)
			*close = probe_wants_close(head, head_len);
		evbuffer_drain(in, head_len);
		*in_body = 1;
	}
	if (evbuffer_get_length(in) < *body_need)
		return 0;
	evbuffer_drain(in, *body_need);
	*in_body = 0;
	return 1;
}

static inline void probe_nodelay(evutil_socket_t fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static inline struct evconnlistener *probe_listen(struct event_base *base, evconnlistener_cb cb,
                                                  void *arg, const char *prog)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l = evconnlistener_new_bind(
		base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
		1024, (struct sockaddr *)&sin, sizeof(sin));
	socklen_t sl = sizeof(sin);
	if (!l || getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &sl) < 0) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1\n", prog);
		return NULL;
	}
	printf("listening %u\n", ntohs(sin.sin_port));
	fflush(stdout);
	return l;
}

#endif
