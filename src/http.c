#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "connlimit.h"
#include "log.h"
#include "netaddr.h"
#include "tlslib.h"
#include "util.h"

enum conn_state {
	CONN_HEAD,     /* reading a request line and headers */
	CONN_BODY,     /* reading Content-Length bytes of body */
	CONN_HANDLING, /* the handler has the request; reading paused */
	CONN_LINGER,   /* answered early; discarding input until close */
};

struct http_conn {
	TAILQ_ENTRY(http_conn) link;
	TAILQ_ENTRY(http_conn) idle_link; /* in srv->idle: may be closed to make room */
	TAILQ_ENTRY(http_conn) wait_link; /* in srv->waiters: its body does not fit yet */
	struct http_server *srv;
	struct bufferevent *bev;
	struct event *timer; /* read deadline, idle timeout or linger limit */
	enum conn_state state;
	bool idle;        /* between requests: waiting for a first byte */
	bool close_after; /* close once the answer is written */
	bool linger_after;
	bool dead;        /* the peer is gone while the handler has the request */
	bool gone_told;   /* the gone handler knows that its client went */
	bool handshaking; /* TLS: the handshake is not done yet */
	bool broken;      /* a read or write failed: no TLS close_notify */
	bool tls;         /* accepted under TLS: answers go through OpenSSL */
	bool in_idle;     /* no request byte since accept or the last answer, or lingering */
	bool at_head;     /* the head handler has the request: its answer closes */
	bool budget_wait; /* in srv->waiters, reading paused */
	bool expect_continue;
	struct http_head_scan scan; /* how far the head being read was searched */
	size_t body_need;
	uint64_t reserved; /* of srv->budget, while the body is read */
	int64_t deadline_ms;  /* the request's read deadline (monotonic) */
	int64_t body_since_ms; /* when its body began to be read */
	struct addr_count *addr; /* its peer address's count; NULL for unix sockets */
	size_t lingered;
	int64_t linger_until; /* monotonic ms */
	char peer[64];
	struct http_request *req;
};

struct http_server {
	struct event_base *base;
	struct http_limits lim;
	http_handler handler;
	http_head_handler head;
	http_gone_handler gone;
	http_error_body error_body;
	const char *error_headers; /* on its own answers too; NULL: none */
	void *arg;
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct event *retry_accept;
	struct event *budget_check; /* while bodies wait for room: shed_stalled_bodies */
	bool stopped;
	bool paused; /* at max_connections with no connection idle */
	int64_t accept_warned_ms; /* out of fds: logged at most once a minute */
	long accept_failures;     /* since that line */
	int64_t refused_warned_ms; /* a client at its limit: the same */
	long refused;
	int nconns;
	TAILQ_HEAD(, http_conn) conns;
	TAILQ_HEAD(, http_conn) idle;    /* longest idle first */
	TAILQ_HEAD(, http_conn) waiters; /* for the body budget, first come first */
	struct addr_counts *addrs;
	struct body_budget budget; /* max_buffered */
	SSL_CTX *tls; /* NULL: plain HTTP */
};

static void conn_free(struct http_conn *c);
static void conn_process(struct http_conn *c);
static void update_accepting(struct http_server *s);

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

static void tv_from_ms(struct timeval *tv, int64_t ms)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

static void arm_timer(struct http_conn *c, int64_t ms)
{
	struct timeval tv;
	tv_from_ms(&tv, ms);
	evtimer_add(c->timer, &tv);
}

/* The one read deadline of a request, from accept or its first byte. */
static void arm_deadline(struct http_conn *c)
{
	c->deadline_ms = now_mono_ms() + c->srv->lim.read_timeout_ms;
	arm_timer(c, c->srv->lim.read_timeout_ms);
}

/*
 * The idle list: connections that hold no request, those that sent none
 * yet (since accept or since their last answer: a TLS handshake too) and
 * those lingering after a closing answer, longest idle first. At
 * max_connections the first is closed to admit a new connection, so that
 * clients that only hold connections open cannot keep a delivery out.
 */
static void idle_add(struct http_conn *c)
{
	if (c->in_idle)
		return;
	c->in_idle = true;
	TAILQ_INSERT_TAIL(&c->srv->idle, c, idle_link);
	if (c->srv->paused)
		update_accepting(c->srv);
}

static void idle_remove(struct http_conn *c)
{
	if (!c->in_idle)
		return;
	c->in_idle = false;
	TAILQ_REMOVE(&c->srv->idle, c, idle_link);
	if (c->srv->nconns >= c->srv->lim.max_connections)
		update_accepting(c->srv);
}

/*
 * The body budget (max_buffered): a request's Content-Length is reserved
 * before its body is read and given back once the body is whole (or the
 * request ends), so the body bytes all connections buffer stay under the
 * bound whatever clients announce and then fail to send. A request that
 * does not fit waits its turn with reading paused.
 */
static void body_start(struct http_conn *c)
{
	c->reserved = c->body_need;
	c->body_since_ms = now_mono_ms();
	body_budget_take(&c->srv->budget, c->reserved);
	/* Only now: a client that waits for it sends its body only once
	 * nothing in the head refused it and there is room. */
	if (c->expect_continue)
		bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void admit_waiters(struct http_server *s)
{
	struct http_conn *c;
	while ((c = TAILQ_FIRST(&s->waiters)) != NULL && body_budget_fits(&s->budget, c->body_need)) {
		TAILQ_REMOVE(&s->waiters, c, wait_link);
		c->budget_wait = false;
		body_start(c);
		bufferevent_enable(c->bev, EV_READ);
		/* What is buffered already is read from the event loop, not
		 * from inside the request that gave its bytes back. */
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	}
}

static void budget_release(struct http_conn *c)
{
	struct http_server *s = c->srv;
	if (c->budget_wait) {
		TAILQ_REMOVE(&s->waiters, c, wait_link);
		c->budget_wait = false;
	}
	if (c->reserved) {
		body_budget_give(&s->budget, c->reserved);
		c->reserved = 0;
		admit_waiters(s);
	}
}

static void early_error(struct http_conn *c, int status, const char *extra, const char *error,
                        bool linger);

/*
 * While a body waits for room, the bodies holding room that at the pace
 * they kept cannot be whole by their read deadline give it up (408 now
 * rather than at the deadline). A signature scheme reads the body before
 * it can tell a sender from anyone, so without this a few clients that
 * announce max_body, send a byte and stall kept every delivery out of
 * max_buffered until their deadline. A pace is judged after
 * BODY_PACE_MIN_MS, and only while another body waits: alone, a slow
 * body keeps its room to its deadline as before.
 */
#define BODY_PACE_MIN_MS 1000
#define BUDGET_CHECK_MS 250

static void shed_stalled_bodies(struct http_server *s)
{
	int64_t now = now_mono_ms();
	struct http_conn *c, *next;
	for (c = TAILQ_FIRST(&s->conns); c && !TAILQ_EMPTY(&s->waiters); c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state != CONN_BODY || !c->reserved)
			continue;
		int64_t spent = now - c->body_since_ms, allowed = c->deadline_ms - c->body_since_ms;
		if (spent < BODY_PACE_MIN_MS)
			continue;
		double got = (double)evbuffer_get_length(bufferevent_get_input(c->bev));
		if (got * (double)allowed >= (double)c->body_need * (double)spent)
			continue; /* on pace */
		early_error(c, 408, NULL, "request body too slow to arrive within read_timeout",
		            false);
	}
	if (!TAILQ_EMPTY(&s->waiters)) {
		struct timeval tv;
		tv_from_ms(&tv, BUDGET_CHECK_MS);
		evtimer_add(s->budget_check, &tv);
	}
}

static void on_budget_check(evutil_socket_t fd, short what, void *arg)
{
	shed_stalled_bodies(arg);
}

/* Appends s to the head being built in buf (room for `cap` bytes). */
static size_t put(char *buf, size_t off, size_t cap, const char *s, size_t n)
{
	if (off + n <= cap)
		memcpy(buf + off, s, n);
	return off + n;
}

/*
 * The status line and headers of an answer into buf; returns the length,
 * which is larger than cap when they did not fit (the caller then makes
 * room). Built with copies: an answer goes out for every request, and
 * printf was a noticeable part of a rejection's cost.
 */
static size_t response_head(char *buf, size_t cap, int status, const char *content_type,
                            const char *extra, size_t content_length, bool close)
{
	char num[24];
	size_t off = put(buf, 0, cap, "HTTP/1.1 ", 9);
	int st = status >= 100 && status <= 999 ? status : 500;
	num[0] = (char)('0' + st / 100);
	num[1] = (char)('0' + st / 10 % 10);
	num[2] = (char)('0' + st % 10);
	num[3] = ' ';
	off = put(buf, off, cap, num, 4);
	const char *reason = http_reason(status);
	off = put(buf, off, cap, reason, strlen(reason));
	off = put(buf, off, cap, "\r\nContent-Type: ", 16);
	off = put(buf, off, cap, content_type, strlen(content_type));
	off = put(buf, off, cap, "\r\nContent-Length: ", 18);
	size_t n = sizeof(num), v = content_length;
	do {
		num[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	off = put(buf, off, cap, num + n, sizeof(num) - n);
	off = put(buf, off, cap, "\r\n", 2);
	if (close)
		off = put(buf, off, cap, "Connection: close\r\n", 19);
	if (extra)
		off = put(buf, off, cap, extra, strlen(extra));
	return put(buf, off, cap, "\r\n", 2);
}

/*
 * An answer's parts: the head (in head[] when it fits, else in *big, to be
 * freed), the body and the final newline a JSON body gets (curl output
 * ends cleanly); a body of another type (the admin's /metrics) goes out
 * as it is. The answer to a HEAD request has the headers of the answer to
 * GET and no body, or the client would read the body as the next answer.
 * Returns the number of iovecs used.
 */
static int response_iov(struct iovec iov[3], char head[512], char **big, int status,
                        const char *content_type, const char *extra, const char *body,
                        size_t body_len, bool close, bool is_head)
{
	bool json = content_type == NULL;
	const char *ct = json ? "application/json" : content_type;
	size_t clen = body_len + (json ? 1 : 0);
	size_t hl = response_head(head, 512, status, ct, extra, clen, close);
	*big = NULL;
	iov[0].iov_base = head;
	if (hl > 512) {
		*big = xmalloc(hl);
		response_head(*big, hl, status, ct, extra, clen, close);
		iov[0].iov_base = *big;
	}
	iov[0].iov_len = hl;
	if (is_head)
		return 1;
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = body_len;
	if (!json)
		return 2;
	iov[2].iov_base = (void *)"\n";
	iov[2].iov_len = 1;
	return 3;
}

static void write_response_typed(struct http_conn *c, int status, const char *content_type,
                                 const char *extra, const char *body, size_t body_len, bool close,
                                 bool head)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct iovec iov[3];
	char buf[512], *big;
	int n = response_iov(iov, buf, &big, status, content_type, extra, body, body_len, close, head);
	for (int i = 0; i < n; i++)
		evbuffer_add(out, iov[i].iov_base, iov[i].iov_len);
	free(big);
}

static void write_response(struct http_conn *c, int status, const char *extra, const char *body,
                           size_t body_len, bool close)
{
	write_response_typed(c, status, NULL, extra, body, body_len, close, false);
}

/*
 * An answer written straight to the socket, when nothing else is queued
 * on a plain (not TLS) connection: most answers fit the socket buffer, and
 * going through the bufferevent costs two epoll_ctl calls (write event on,
 * write event off) each. Whatever the socket does not take now is queued
 * as usual. Either way on_write follows, from the event loop.
 */
static void send_response(struct http_conn *c, int status, const char *content_type,
                          const char *extra, const char *body, size_t body_len, bool close,
                          bool head)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (c->tls || evbuffer_get_length(out) > 0) {
		write_response_typed(c, status, content_type, extra, body, body_len, close, head);
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	struct iovec iov[3];
	char buf[512], *big;
	int n = response_iov(iov, buf, &big, status, content_type, extra, body, body_len, close, head);
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	ssize_t w;
	do {
		w = writev(bufferevent_getfd(c->bev), iov, n);
	} while (w < 0 && errno == EINTR);
	size_t done = w > 0 ? (size_t)w : 0;
	if (done == total) {
		free(big);
		bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
		return;
	}
	/* The rest, or all of it after an error (libevent then reports the
	 * error to on_event, as for any write). */
	for (int i = 0; i < n; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		evbuffer_add(out, (const char *)iov[i].iov_base + done, iov[i].iov_len - done);
		done = 0;
	}
	free(big);
	bufferevent_enable(c->bev, EV_WRITE);
}

/*
 * An answer the HTTP layer gives before the handler sees the request (the
 * request is malformed or over a limit). The connection closes after it;
 * `linger` keeps reading and discarding for a moment first, so a client
 * still sending its body reads the answer instead of a reset.
 */
static void budget_release(struct http_conn *c);

static void early_error(struct http_conn *c, int status, const char *extra, const char *error,
                        bool linger)
{
	char *body = c->srv->error_body(status, error, c->peer, c->srv->arg);
	char *headers = NULL;
	if (c->srv->error_headers)
		extra = headers = xasprintf("%s%s", c->srv->error_headers, extra ? extra : "");
	write_response(c, status, extra, body, strlen(body), true);
	free(headers);
	free(body);
	budget_release(c);
	http_request_free(c->req);
	c->req = NULL;
	c->close_after = true;
	c->linger_after = linger;
	c->state = CONN_HANDLING;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_del(c->timer);
	/* As for every answer: a client that never reads it is dropped after
	 * the write timeout, so it can neither hold a connection nor the
	 * shutdown drain for ever. */
	struct timeval tv;
	tv_from_ms(&tv, c->srv->lim.read_timeout_ms > 0 ? c->srv->lim.read_timeout_ms : 10000);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

static void read_head(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return;
	if (c->idle) {
		/* The first byte of a new request: its read deadline starts. */
		c->idle = false;
		arm_deadline(c);
	}
	if (!c->srv->lim.unfinished_idle)
		idle_remove(c);
	uint64_t max = c->srv->lim.max_headers;
	size_t look = avail < max + 3 ? avail : (size_t)max + 3;
	char *buf = (char *)evbuffer_pullup(in, (ev_ssize_t)look);
	size_t end = http_head_end_scan(buf, look, &c->scan);
	if (end == 0 || end > max + 2) {
		if (avail > max)
			early_error(c, 431, NULL, "request headers larger than max_headers", true);
		return;
	}
	c->scan = (struct http_head_scan){0}; /* the next head is searched from its start */
	struct http_request *req = xcalloc(1, sizeof(*req));
	req->conn = c;
	req->peer = c->peer;
	c->req = req;
	struct http_head info = {0};
	/* Parsed where it lies; every string is copied out before the drain. */
	const char *bad = http_parse_head(buf, end, req, &info);
	evbuffer_drain(in, end);
	if (bad) {
		early_error(c, 400, NULL, bad, true);
		return;
	}
	if (info.chunked) {
		early_error(c, 411, NULL, "chunked request bodies are not accepted: send Content-Length", true);
		return;
	}
	req->content_length = info.length;
	struct http_server *s = c->srv;
	if (s->head) {
		idle_remove(c); /* the head handler has the request: never closed under it */
		c->state = CONN_HANDLING;
		c->at_head = true;
		bool go = s->head(req, s->arg);
		c->at_head = false;
		if (!go)
			return; /* answered (http_respond): the connection closes */
	}
	if (info.length > s->lim.max_body) {
		early_error(c, 413, NULL, "body larger than max_body", true);
		return;
	}
	c->body_need = (size_t)info.length;
	c->expect_continue = info.expect_continue && info.length > 0;
	c->state = CONN_BODY;
	if (c->body_need == 0)
		return;
	if (TAILQ_EMPTY(&s->waiters) && body_budget_fits(&s->budget, c->body_need)) {
		body_start(c);
		return;
	}
	c->budget_wait = true;
	TAILQ_INSERT_TAIL(&s->waiters, c, wait_link);
	bufferevent_disable(c->bev, EV_READ);
	shed_stalled_bodies(s);
}

static void read_body(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (c->budget_wait || evbuffer_get_length(in) < c->body_need)
		return;
	struct http_request *req = c->req;
	req->body = xmalloc(c->body_need + 1);
	evbuffer_remove(in, req->body, c->body_need);
	req->body[c->body_need] = '\0';
	req->body_len = c->body_need;
	c->state = CONN_HANDLING;
	evtimer_del(c->timer);
	budget_release(c);
	idle_remove(c); /* whole now: with unfinished_idle it was idle until here */
	/* Reading stays on while the request is handled: turning it off and
	 * on again costs two epoll_ctl calls a request, and a client sends
	 * nothing more before its answer. One that does is stopped then
	 * (on_read), so what it sends is never buffered without bound. */
	c->srv->handler(req, c->srv->arg);
}

static void conn_process(struct http_conn *c)
{
	if (c->state == CONN_HEAD)
		read_head(c);
	if (c->state == CONN_BODY)
		read_body(c);
}

/* ---- TLS ------------------------------------------------------------ */

/*
 * The connection's bufferevent: a plain one, or under TLS an OpenSSL one
 * that runs the server side of the handshake before any request byte is
 * read, and reports BEV_EVENT_CONNECTED when it is done. The SSL object
 * holds its own reference to the context, so a context a reload replaced
 * stays alive for the connections accepted under it.
 */
static struct bufferevent *conn_bufferevent(struct http_server *s, evutil_socket_t fd)
{
	if (!s->tls) {
		struct bufferevent *bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!bev)
			close(fd);
		return bev;
	}
	SSL *ssl = SSL_new(s->tls);
	if (!ssl) {
		ERR_clear_error();
		close(fd);
		return NULL;
	}
	/* On failure libevent may already have freed ssl and closed fd:
	 * leaking them (only ever under memory exhaustion) is safer than
	 * freeing them twice. */
	return bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                      BEV_OPT_CLOSE_ON_FREE);
}

/*
 * Under TLS, says goodbye with a close_notify alert, so the client can
 * tell the end of a complete answer from a cut connection. Only after a
 * finished handshake, never after a failed read or write, and only once
 * every byte of the answer has gone through SSL_write: an alert after a
 * partial answer would make a truncation look clean. Returns true when the
 * connection is TLS (whether or not the alert went out whole), false for
 * plain HTTP.
 */
static bool tls_close_notify(struct http_conn *c)
{
	/* A plain connection never asks libssl: it may not be loaded. */
	if (!c->tls)
		return false;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	if (!ssl)
		return false;
	if (c->handshaking || c->broken || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return true;
	/* One non-blocking try: a full socket buffer loses the alert, which
	 * costs the client nothing the Content-Length had not told it. */
	int r = SSL_shutdown(ssl);
	/* Leave no error behind for libevent to pin on another connection. */
	ERR_clear_error();
	if (r >= 0)
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	return true;
}

void http_server_set_tls(struct http_server *s, struct ssl_ctx_st *ctx)
{
	/* Every ctx comes from tls_ctx_new, which loaded libssl; without
	 * one, libssl may never have been loaded. */
	if (ctx)
		SSL_CTX_up_ref(ctx);
	if (s->tls)
		SSL_CTX_free(s->tls);
	s->tls = ctx;
}

/*
 * Lingering after an early answer (413, 431, 411, 400): what the client
 * still sends is read and dropped, so that a client busy sending a body
 * it was told not to send reads the answer instead of a reset (closing
 * with unread data sends one, and the peer may then lose what it had not
 * read yet). It ends when the client closes, is quiet for a second, has
 * sent LINGER_MAX_BYTES, or after LINGER_MAX_MS in all.
 */
#define LINGER_MAX_MS 5000
#define LINGER_IDLE_MS 1000
#define LINGER_MAX_BYTES ((size_t)64 * 1024 * 1024)

static void linger_read(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in);
	c->lingered += n;
	evbuffer_drain(in, n);
	int64_t left = c->linger_until - now_mono_ms();
	if (c->lingered > LINGER_MAX_BYTES || left <= 0) {
		conn_free(c);
		return;
	}
	arm_timer(c, left < LINGER_IDLE_MS ? left : LINGER_IDLE_MS);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	if (c->state == CONN_LINGER)
		linger_read(c);
	else if (c->state == CONN_HANDLING)
		bufferevent_disable(c->bev, EV_READ); /* more before the answer: wait (on_write) */
	else
		conn_process(c);
}

static void start_linger(struct http_conn *c)
{
	/* Half-close: the client sees the end of our answer, and whatever it
	 * still sends is read and dropped for a moment rather than answered
	 * with a reset that could destroy the answer in flight. Under TLS the
	 * half-close is the close_notify alert, and the TCP one follows only
	 * once the alert is out. */
	if (!tls_close_notify(c))
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	c->state = CONN_LINGER;
	c->linger_until = now_mono_ms() + LINGER_MAX_MS;
	idle_add(c);
	bufferevent_enable(c->bev, EV_READ);
	arm_timer(c, LINGER_IDLE_MS);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	if (c->state != CONN_HANDLING || c->req)
		return; /* a 100 Continue went out; the request is still being read */
	if (c->close_after) {
		if (c->linger_after)
			start_linger(c);
		else
			conn_free(c);
		return;
	}
	/* Ready for the next request on this connection. */
	c->state = CONN_HEAD;
	c->idle = true;
	idle_add(c);
	arm_timer(c, c->srv->lim.idle_timeout_ms);
	bufferevent_enable(c->bev, EV_READ);
	conn_process(c);
}

/* The handler hears (once) that the client of the request it holds went. */
static void tell_gone(struct http_conn *c)
{
	if (c->state != CONN_HANDLING || !c->req || c->gone_told || !c->srv->gone)
		return;
	c->gone_told = true;
	c->srv->gone(c->req, c->srv->arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* TLS: the handshake is done; the request may come now, within
		 * what is left of the read deadline armed at accept. */
		c->handshaking = false;
		return;
	}
	if (what & BEV_EVENT_ERROR)
		c->broken = true;
	tell_gone(c);
	if (c->state == CONN_HANDLING && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* The client half-closed while its request is handled, or while
		 * its answer is on the way (queued, or written straight to the
		 * socket with on_write still to come): it still reads the answer.
		 * Reading stops; once the answer is out, on_write goes on as ever
		 * (every pipelined request already read is answered too) and
		 * reading again finds the end. Freeing now would lose the answers,
		 * and the sender would retry a delivery that ran. A write timeout
		 * (a client that does not read) is not this: it frees below. */
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	if (c->state == CONN_HANDLING && c->req) {
		/* The handler still owns the request: free once it answers. */
		c->dead = true;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	conn_free(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	/* A TLS handshake still going at the deadline cannot carry a 408. */
	if (c->state == CONN_LINGER || c->idle || c->state == CONN_HANDLING || c->handshaking) {
		conn_free(c);
		return;
	}
	if (c->budget_wait) {
		/* Its body never had room: hookd's load, not the client's pace. */
		early_error(c, 503, "Retry-After: 5\r\n",
		            "too many request bodies being read: max_buffered", true);
		return;
	}
	/* A request that did not arrive whole within read_timeout. */
	early_error(c, 408, NULL, "request not received within read_timeout", false);
}

void http_respond(struct http_request *req, int status, const char *extra, char *body, bool close)
{
	http_respond_typed(req, status, NULL, extra, body, close);
}

void http_respond_typed(struct http_request *req, int status, const char *content_type,
                        const char *extra, char *body, bool close)
{
	struct http_conn *c = req->conn;
	if (c->dead) {
		free(body);
		http_request_free(req);
		c->req = NULL;
		conn_free(c);
		return;
	}
	if (!req->keep_alive || c->srv->stopped || c->at_head)
		close = true;
	bool head = req->method && strcmp(req->method, "HEAD") == 0;
	http_request_free(req);
	c->req = NULL;
	c->close_after = close;
	/* Answered from its head: the body it may still send is never read,
	 * only dropped while the answer reaches the client (see start_linger). */
	c->linger_after = c->at_head;
	if (c->at_head) {
		bufferevent_disable(c->bev, EV_READ);
		evtimer_del(c->timer);
	}
	struct timeval tv;
	tv_from_ms(&tv, c->srv->lim.read_timeout_ms > 0 ? c->srv->lim.read_timeout_ms : 10000);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	send_response(c, status, content_type, extra, body, strlen(body), close, head);
	free(body);
}

static void update_accepting(struct http_server *s)
{
	/* At the limit an idle connection makes room for a new one; only
	 * with none the listener rests (disabled, not polled). */
	bool pause = s->nconns >= s->lim.max_connections && TAILQ_EMPTY(&s->idle);
	if (s->stopped || pause == s->paused)
		return;
	s->paused = pause;
	for (size_t i = 0; i < s->nlisteners; i++) {
		if (pause)
			evconnlistener_disable(s->listeners[i]);
		else
			evconnlistener_enable(s->listeners[i]);
	}
}

static void conn_free(struct http_conn *c)
{
	struct http_server *s = c->srv;
	TAILQ_REMOVE(&s->conns, c, link);
	s->nconns--;
	idle_remove(c);
	budget_release(c);
	if (c->addr)
		addr_counts_drop(s->addrs, c->addr);
	http_request_free(c->req);
	event_free(c->timer);
	tls_close_notify(c);
	bufferevent_free(c->bev);
	free(c);
	update_accepting(s);
}

/* A connection refused at accept: one warning a minute, with a count. */
static void note_refused(struct http_server *s, const char *peer, const char *why)
{
	int64_t now = now_mono_ms();
	s->refused++;
	if (s->refused_warned_ms != 0 && now - s->refused_warned_ms < 60000)
		return;
	char n[32];
	snprintf(n, sizeof(n), "%ld", s->refused);
	struct log_kv kv[] = {{"remote", peer}, {"error", why}, LOG_INT("refused", n)};
	log_kv(LOG_LVL_WARN, "connection refused", kv, ARRAY_SIZE(kv));
	s->refused_warned_ms = now;
	s->refused = 0;
}

/* The longest-idle connection from the address counted by e (NULL: from
 * any address), or NULL. */
static struct http_conn *oldest_idle(struct http_server *s, const struct addr_count *e)
{
	struct http_conn *c;
	TAILQ_FOREACH(c, &s->idle, idle_link) {
		if (!e || c->addr == e)
			return c;
	}
	return NULL;
}

/*
 * Makes room for a new connection from c's address: within its
 * max_connections_per_client and within max_connections, closing the
 * longest-idle connection (the client's own, then anyone's) where one is
 * needed. false: no connection could be closed, c is to be refused.
 */
static bool make_room(struct http_server *s, struct http_conn *c)
{
	int per_client = s->lim.max_connections_per_client;
	if (c->addr && per_client > 0 && addr_count_value(c->addr) > per_client) {
		struct http_conn *old = oldest_idle(s, c->addr);
		if (!old) {
			note_refused(s, c->peer, "max_connections_per_client");
			return false;
		}
		conn_free(old);
	}
	if (s->nconns >= s->lim.max_connections) {
		struct http_conn *old = oldest_idle(s, NULL);
		if (!old) {
			note_refused(s, c->peer, "max_connections");
			return false;
		}
		conn_free(old);
	}
	return true;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct http_server *s = arg;
	struct http_conn *c = xcalloc(1, sizeof(*c));
	c->srv = s;
	peer_text(sa, c->peer, sizeof(c->peer));
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	/* A unix socket's peers are all "unix" (a local proxy): not one
	 * client, so not counted as one. */
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		char group[64];
		client_group(c->peer, group, sizeof(group));
		c->addr = addr_counts_add(s->addrs, group);
	}
	if (!make_room(s, c)) {
		if (c->addr)
			addr_counts_drop(s->addrs, c->addr);
		close(fd);
		free(c);
		return;
	}
	c->bev = conn_bufferevent(s, fd);
	if (!c->bev) {
		/* Out of memory: drop this one connection, keep serving. */
		if (c->addr)
			addr_counts_drop(s->addrs, c->addr);
		free(c);
		return;
	}
	c->handshaking = s->tls != NULL;
	c->tls = s->tls != NULL;
	c->timer = evtimer_new(s->base, on_timer, c);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	c->state = CONN_HEAD;
	c->idle = false;
	/* From accept to the request's last byte: one read deadline. */
	arm_deadline(c);
	bufferevent_enable(c->bev, EV_READ);
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	s->nconns++;
	idle_add(c);
	update_accepting(s);
}

static void on_retry_accept(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *s = arg;
	if (s->stopped || s->paused)
		return;
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_enable(s->listeners[i]);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct http_server *s = arg;
	/* Out of fds (EMFILE/ENFILE) or memory: stop accepting for a moment
	 * rather than spin on a listener that stays readable. */
	int e = EVUTIL_SOCKET_ERROR();
	int64_t now = now_mono_ms();
	s->accept_failures++;
	if (s->accept_warned_ms == 0 || now - s->accept_warned_ms >= 60000) {
		char n[32];
		snprintf(n, sizeof(n), "%ld", s->accept_failures);
		struct log_kv kv[] = {{"error", evutil_socket_error_to_string(e)}, LOG_INT("failures", n)};
		log_kv(LOG_LVL_WARN, "accept failed: new connections wait in the backlog, retried every 100ms",
		       kv, ARRAY_SIZE(kv));
		s->accept_warned_ms = now;
		s->accept_failures = 0;
	}
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_disable(s->listeners[i]);
	struct timeval tv = {0, 100000};
	evtimer_add(s->retry_accept, &tv);
}

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    http_handler handler, http_error_body error_body, void *arg)
{
	struct http_server *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->lim = *lim;
	s->handler = handler;
	s->error_body = error_body;
	s->arg = arg;
	s->retry_accept = evtimer_new(base, on_retry_accept, s);
	s->budget_check = evtimer_new(base, on_budget_check, s);
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->idle);
	TAILQ_INIT(&s->waiters);
	s->addrs = addr_counts_new();
	s->budget.limit = lim->max_buffered;
	return s;
}

void http_server_set_error_headers(struct http_server *s, const char *headers)
{
	s->error_headers = headers;
}

void http_server_set_head_handler(struct http_server *s, http_head_handler head)
{
	s->head = head;
}

void http_server_set_gone_handler(struct http_server *s, http_gone_handler gone)
{
	s->gone = gone;
}

int http_server_listen_fd(struct http_server *s, int fd)
{
	struct evconnlistener *l = evconnlistener_new(
		s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!l)
		return -1;
	evconnlistener_set_error_cb(l, on_accept_error);
	s->listeners = xrealloc(s->listeners, (s->nlisteners + 1) * sizeof(*s->listeners));
	s->listeners[s->nlisteners++] = l;
	return 0;
}

void http_server_set_limits(struct http_server *s, const struct http_limits *lim)
{
	s->lim = *lim;
	s->budget.limit = lim->max_buffered;
	admit_waiters(s);
	update_accepting(s);
}

void http_server_stop_accepting(struct http_server *s)
{
	s->stopped = true;
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	free(s->listeners);
	s->listeners = NULL;
	s->nlisteners = 0;
	/* Open connections stay open: a request that comes on one is answered
	 * 503 with Connection: close (the handler's draining flag), and they
	 * are closed when the daemon exits. */
}

int http_server_connections(struct http_server *s)
{
	return s->nconns;
}

int http_server_answering(struct http_server *s)
{
	int n = 0;
	const struct http_conn *c;
	TAILQ_FOREACH(c, &s->conns, link) {
		if (c->state == CONN_HANDLING)
			n++;
	}
	return n;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nlisteners; i++)
		evconnlistener_free(s->listeners[i]);
	free(s->listeners);
	/* conn_free below may resume accepting (a server paused at
	 * max_connections): there is nothing left to resume. */
	s->listeners = NULL;
	s->nlisteners = 0;
	/* Nor is any waiting body to be let in as others' are freed. */
	while (!TAILQ_EMPTY(&s->waiters)) {
		struct http_conn *c = TAILQ_FIRST(&s->waiters);
		TAILQ_REMOVE(&s->waiters, c, wait_link);
		c->budget_wait = false;
	}
	while (!TAILQ_EMPTY(&s->conns)) {
		struct http_conn *c = TAILQ_FIRST(&s->conns);
		if (c->req && c->state == CONN_HANDLING) {
			/* Only at exit: the handler's deliveries are gone too. */
			http_request_free(c->req);
			c->req = NULL;
		}
		conn_free(c);
	}
	event_free(s->retry_accept);
	event_free(s->budget_check);
	addr_counts_free(s->addrs);
	if (s->tls)
		SSL_CTX_free(s->tls);
	free(s);
}

int http_listen(const char *spec, char *err, size_t errlen)
{
	struct listen_addr la;
	const char *why = NULL;
	switch (listen_addr_parse(spec, &la)) {
	case LISTEN_OK: break;
	case LISTEN_PATH_TOO_LONG:
		snprintf(err, errlen, "listen %s: path too long", spec);
		return -ENAMETOOLONG;
	case LISTEN_NO_COLON: why = "expected host:port"; break;
	case LISTEN_BAD_PORT: why = "bad port"; break;
	case LISTEN_BAD_BRACKETS:
	case LISTEN_BAD_IPV6: why = "bad IPv6 address"; break;
	case LISTEN_NO_HOST:
	case LISTEN_V6_NEEDS_BRACKETS:
	case LISTEN_BAD_HOST: why = "bad IPv4 address"; break;
	}
	if (why) {
		snprintf(err, errlen, "listen %s: %s", spec, why);
		return -EINVAL;
	}
	int family = la.ss.ss_family;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (family == AF_UNIX) {
		const char *path = ((struct sockaddr_un *)&la.ss)->sun_path;
		struct stat st;
		/* A socket left by an earlier run would make bind fail. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	} else {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&la.ss, la.len) < 0 || listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	snprintf(err, errlen, "listen %s: %s", spec, strerror(e));
	return -e;
}

void http_bound_address(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;
		snprintf(buf, len, "unix:%s", su->sun_path);
	}
}
