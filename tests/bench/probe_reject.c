/*
 * probe_reject: the limit of "answer a webhook request without running
 * anything" on this machine. A bare libevent server: every request is
 * read (head and body) and answered 401 with a small JSON body, the
 * connection kept open unless the request said "Connection: close" (as
 * every request of scenario a does, because hookd closes after a refusal).
 * No parsing beyond that, no logging, no checks.
 * hookd rejecting a wrong token does all of this plus its real work, so
 * this is the ceiling it is measured against (bench.sh, scenario a).
 *
 * usage: probe_reject   (prints "listening PORT" once it listens)
 */
#include <signal.h>
#include <stdlib.h>

#include "probe.h"

static const char answer[] =
	"HTTP/1.1 401 Unauthorized\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 32\r\n"
	"\r\n"
	"{\"status\":\"rejected\",\"id\":null}\n";

static const char answer_close[] =
	"HTTP/1.1 401 Unauthorized\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 32\r\n"
	"Connection: close\r\n"
	"\r\n"
	"{\"status\":\"rejected\",\"id\":null}\n";

struct conn {
	struct bufferevent *bev;
	size_t body_need;
	int in_body;
	int closing; /* answered a "Connection: close": freed once it is sent */
};

static void conn_free(struct conn *c)
{
	bufferevent_free(c->bev);
	free(c);
}

static void on_written(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->closing)
		conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	int close = 0;
	/* Pipelined requests are answered in order, one answer each. */
	while (!c->closing &&
	       probe_take_request(bufferevent_get_input(bev), &c->body_need, &c->in_body, &close)) {
		if (close) {
			c->closing = 1;
			bufferevent_disable(bev, EV_READ);
			bufferevent_write(bev, answer_close, sizeof(answer_close) - 1);
		} else {
			bufferevent_write(bev, answer, sizeof(answer) - 1);
		}
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	probe_nodelay(fd);
	c->bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
	bufferevent_enable(c->bev, EV_READ);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct evconnlistener *l = probe_listen(base, on_accept, base, "probe_reject");
	if (!l)
		return 1;
	event_base_dispatch(base);
	evconnlistener_free(l);
	event_base_free(base);
	return 0;
}
