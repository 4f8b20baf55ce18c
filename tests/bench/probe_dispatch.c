/*
 * probe_dispatch: the limit of "run a program for each webhook request and
 * answer when it has exited" on this machine. libevent reads a request
 * (head and body), posix_spawn starts /bin/true with an empty environment,
 * and the SIGCHLD handler reaps it and answers 200. Nothing else: no
 * pipes, no stdin, no process group, no timer, no parsing, no logging.
 * hookd's synchronous dispatch does all of this plus its real work, so
 * this is the ceiling it is measured against (bench.sh, scenario c).
 *
 * usage: probe_dispatch [PROGRAM]   (prints "listening PORT" once it listens)
 * PROGRAM is /bin/true unless given (scenario d runs the script hook).
 */
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/wait.h>

#include "probe.h"

static const char answer[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 16\r\n"
	"\r\n"
	"{\"status\":\"ok\"}\n";

static const char failed[] =
	"HTTP/1.1 500 Internal Server Error\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 20\r\n"
	"\r\n"
	"{\"status\":\"failed\"}\n";

struct conn {
	LIST_ENTRY(conn) link; /* in `running` while its child runs */
	struct bufferevent *bev;
	size_t body_need;
	int in_body;
	pid_t pid;
	int dead; /* the client left while the child ran */
};

static LIST_HEAD(, conn) running = LIST_HEAD_INITIALIZER(running);
static char *program_argv[] = {"/bin/true", NULL};

static void conn_free(struct conn *c)
{
	bufferevent_free(c->bev);
	free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (!probe_take_request(bufferevent_get_input(bev), &c->body_need, &c->in_body, NULL))
		return;
	/* One request at a time a connection, as a webhook daemon answers. */
	bufferevent_disable(bev, EV_READ);
	static char *const envp[] = {NULL};
	if (posix_spawn(&c->pid, program_argv[0], NULL, NULL, program_argv, envp) != 0) {
		bufferevent_write(bev, failed, sizeof(failed) - 1);
		bufferevent_enable(bev, EV_READ);
		return;
	}
	LIST_INSERT_HEAD(&running, c, link);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	/* SIGCHLDs coalesce: reap every child that has exited. */
	pid_t pid;
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		struct conn *c;
		LIST_FOREACH(c, &running, link) {
			if (c->pid == pid)
				break;
		}
		if (!c)
			continue;
		LIST_REMOVE(c, link);
		if (c->dead) {
			conn_free(c);
			continue;
		}
		bufferevent_write(c->bev, answer, sizeof(answer) - 1);
		bufferevent_enable(c->bev, EV_READ);
		/* A next request may already be buffered. */
		on_read(c->bev, c);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct conn *r;
	LIST_FOREACH(r, &running, link) {
		if (r == c) {
			c->dead = 1; /* freed once its child is reaped */
			bufferevent_disable(bev, EV_READ | EV_WRITE);
			return;
		}
	}
	conn_free(c);
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
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_enable(c->bev, EV_READ);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		program_argv[0] = argv[1];
	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	struct event *chld = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
	if (!chld || evsignal_add(chld, NULL) < 0)
		return 1;
	struct evconnlistener *l = probe_listen(base, on_accept, base, "probe_dispatch");
	if (!l)
		return 1;
	event_base_dispatch(base);
	evconnlistener_free(l);
	event_free(chld);
	event_base_free(base);
	return 0;
}
