#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "dispatch.h"
#include "journal.h"
#include "log.h"
#include "recovery.h"
#include "util.h"

/* One connection of `hookd replay`: kept in a list, so that whatever is
 * still open when the daemon stops is closed and freed with it. */
struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) link;
	struct bufferevent *bev;
	struct control *c;
};

struct control {
	struct evconnlistener *listener;
	struct dispatcher *ds;
	struct journal *j;
	char *path;
	TAILQ_HEAD(, ctl_conn) conns;
};

static void socket_path(const char *state_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/control.sock", state_dir);
}

static void answer(struct bufferevent *bev, enum result code, const char *msg)
{
	evbuffer_add_printf(bufferevent_get_output(bev), "%d %s\n", (int)code, msg);
}

/* The answer's words for a replay's result. An error goes out as -1, which
 * the client takes for no answer at all. */
static const char *replay_message(enum result r)
{
	switch (r) {
	case RESULT_OK: return "queued";
	case RESULT_PENDING: return "already pending";
	case RESULT_BODY_CUT: return "its body was not kept";
	case RESULT_NO_ENDPOINT: return "its endpoint is not in the config";
	case RESULT_UNKNOWN:
	case RESULT_AMBIGUOUS:
	case RESULT_ERROR:
		break;
	}
	return "unknown delivery";
}

static void conn_close(struct ctl_conn *cc)
{
	TAILQ_REMOVE(&cc->c->conns, cc, link);
	bufferevent_free(cc->bev);
	free(cc);
}

static void on_written(struct bufferevent *bev, void *arg)
{
	conn_close(arg);
}

static void on_ctl_event(struct bufferevent *bev, short what, void *arg)
{
	conn_close(arg);
}

static void on_line(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *cc = arg;
	struct control *c = cc->c;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			conn_close(cc);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_written, on_ctl_event, cc);
	char *save = NULL;
	char *verb = strtok_r(line, " ", &save);
	char *ep = strtok_r(NULL, " ", &save);
	char *id = strtok_r(NULL, "", &save);
	if (!verb || strcmp(verb, "replay") != 0 || !ep || !id) {
		answer(bev, RESULT_UNKNOWN, "bad request");
		free(line);
		return;
	}
	int64_t rowid;
	enum result r = journal_find(c->j, strcmp(ep, "-") == 0 ? NULL : ep, id, &rowid);
	if (r == RESULT_UNKNOWN) {
		answer(bev, RESULT_UNKNOWN, "unknown delivery");
	} else if (r == RESULT_AMBIGUOUS) {
		answer(bev, RESULT_AMBIGUOUS,
		       "that id is known at several endpoints: name one with --endpoint");
	} else if (r != RESULT_OK) {
		answer(bev, RESULT_UNKNOWN, "journal error");
	} else {
		enum result rc = dispatch_replay(c->ds, rowid);
		struct journal_pending p = {0};
		if (rc == RESULT_ERROR) {
			/* -1 would read as no answer at all. */
			answer(bev, RESULT_UNKNOWN, "journal error: the replay could not be recorded");
		} else if (rc == RESULT_NO_ENDPOINT && journal_get(c->j, rowid, &p) == RESULT_OK) {
			/* show lists it: say which endpoint the config lacks. */
			char msg[CONTROL_LINE_MAX];
			snprintf(msg, sizeof(msg), "its endpoint %s is not in the config", p.endpoint);
			answer(bev, rc, msg);
		} else {
			answer(bev, rc, replay_message(rc));
		}
		journal_pending_free(&p);
	}
	free(line);
}

static void on_ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	struct control *c = arg;
	struct event_base *base = evconnlistener_get_base(l);
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	struct ctl_conn *cc = xcalloc(1, sizeof(*cc));
	cc->bev = bev;
	cc->c = c;
	TAILQ_INSERT_TAIL(&c->conns, cc, link);
	bufferevent_setcb(bev, on_line, NULL, on_ctl_event, cc);
	struct timeval tv = {5, 0};
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

struct control *control_new(struct event_base *base, const char *state_dir,
                            struct dispatcher *ds, struct journal *j, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char path[sizeof(sun.sun_path) + 1];
	socket_path(state_dir, path, sizeof(path));
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a socket", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return NULL;
	}
	/* Only the daemon's own user may ask it to run hooks again. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	struct control *c = xcalloc(1, sizeof(*c));
	TAILQ_INIT(&c->conns);
	c->ds = ds;
	c->j = j;
	c->path = xstrdup(path);
	c->listener = evconnlistener_new(base, on_ctl_accept, c,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!c->listener) {
		close(fd);
		control_free(c);
		snprintf(err, errlen, "control socket: cannot listen");
		return NULL;
	}
	return c;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	if (c->listener)
		evconnlistener_free(c->listener);
	while (!TAILQ_EMPTY(&c->conns))
		conn_close(TAILQ_FIRST(&c->conns));
	unlink(c->path);
	free(c->path);
	free(c);
}

enum result control_replay(const char *state_dir, const char *endpoint, const char *id,
                           char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char path[sizeof(sun.sun_path) + 1];
	socket_path(state_dir, path, sizeof(path));
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a socket", path);
		return RESULT_ERROR;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		snprintf(err, errlen, "the daemon is not reachable at %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return RESULT_ERROR;
	}
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[CONTROL_LINE_MAX];
	int n = snprintf(req, sizeof(req), "replay %s %s\n", endpoint ? endpoint : "-", id);
	if (n < 0 || (size_t)n >= sizeof(req) || strchr(id, '\n')) {
		snprintf(err, errlen, "delivery id too long");
		close(fd);
		return RESULT_ERROR;
	}
	if (write(fd, req, (size_t)n) != n) {
		snprintf(err, errlen, "cannot write to %s: %s", path, strerror(errno));
		close(fd);
		return RESULT_ERROR;
	}
	char buf[CONTROL_LINE_MAX];
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	close(fd);
	buf[got] = '\0';
	char *end;
	long v = strtol(buf, &end, 10);
	if (got == 0 || end == buf || *end != ' ' || v < RESULT_OK || v > RESULT_NO_ENDPOINT) {
		snprintf(err, errlen, "no answer from the daemon");
		return RESULT_ERROR;
	}
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(err, errlen, "replay %s: %s", id, end + 1);
	return (enum result)v;
}
