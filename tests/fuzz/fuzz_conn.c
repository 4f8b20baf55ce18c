/*
 * Fuzz target: one client connection to hookd's HTTP server (http.c), all
 * of it: the head and body state machine, pipelined keep-alive requests,
 * 100-continue, 400/411/413/431 answers with lingering close, a head
 * handler that refuses a path beginning "/refuse" from the head (401 and
 * lingering close, the body never read), the body budget (max_buffered),
 * and a handler that answers later.
 *
 * Input: byte 0 sets the server up: bit 0 the handler answers each request
 * only after the event loop has turned again (as a running hook does),
 * bit 1 a zero read_timeout (408s), bit 2 max_headers 256 instead of 2 KiB,
 * bit 3 max_body 16 instead of 1 KiB, bit 4 the handler answers with
 * Connection: close, bit 5 the client hangs up (closes without reading)
 * instead of only shutting down its sending side, bits 6-7 the client
 * sends in pieces of 1, 16 or 256 bytes instead of all at once. The rest
 * is what the client sends. One server, listening on a unix socket under /tmp, lives
 * for the whole process, so a connection it fails to close shows up.
 *
 * Checked: the connection is closed once the client is gone and every
 * answer is out (no fd or memory kept), the handler sees a request at
 * most once each, and the client reads well-formed HTTP/1.1 answers, each
 * a JSON object with an exact Content-Length.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "fuzz.h"
#include "http.h"
#include "payload.h"
#include "util.h"

/* The loop turns until the connection is gone; a connection that makes no
 * progress for IDLE_MAX turns in a row (all input is there, nothing waits
 * on a clock) is stuck. */
#define IDLE_MAX 64
#define LOOP_MAX 100000

static struct event_base *base;
static struct http_server *srv;
static char dir[64], sock_path[96];

#define HEAD_MAX 4096
struct state {
	bool defer, close;
	struct http_request *pending;
	size_t handled;
	bool head[HEAD_MAX]; /* the handler's requests that were HEAD, in order */
};
static struct state st;

static void handler(struct http_request *req, void *arg)
{
	(void)arg;
	FUZZ_ASSERT(req->method && req->target && req->path);
	FUZZ_ASSERT(req->body != NULL && req->body[req->body_len] == '\0');
	FUZZ_ASSERT(st.pending == NULL); /* one request at a time per connection */
	if (st.handled < HEAD_MAX)
		st.head[st.handled] = strcmp(req->method, "HEAD") == 0;
	st.handled++;
	if (st.defer) {
		st.pending = req;
		return;
	}
	http_respond(req, 200, "X-Fuzz: 1\r\n", xstrdup("{\"status\":\"ok\"}"), st.close);
}

/* Refuses from the head what a server would (a wrong token, say). */
static bool head_handler(struct http_request *req, void *arg)
{
	(void)arg;
	FUZZ_ASSERT(req->body == NULL && req->method && req->path);
	if (strncmp(req->path, "/refuse", 7) != 0)
		return true;
	http_respond(req, 401, NULL, xstrdup("{\"status\":\"rejected\"}"), false);
	return false;
}

static char *error_body(int status, const char *error, const char *peer, void *arg)
{
	(void)arg;
	(void)peer;
	return xasprintf("{\"status\":%d,\"error\":\"%s\"}", status, error);
}

static void cleanup(void)
{
	http_server_free(srv);
	event_base_free(base);
	unlink(sock_path);
	rmdir(dir);
}

static void setup(void)
{
	if (base)
		return;
	/* As the daemon does (main): a write to a client that hung up
	 * is an error to handle, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/hookd-fuzz-conn.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "unix:%s/sock", dir);
	char err[256];
	int fd = http_listen(sock_path, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	memmove(sock_path, sock_path + 5, strlen(sock_path + 5) + 1);
	base = event_base_new();
	struct http_limits lim = {2048, 1024, 4, 3600000, 3600000, 16, 0, false};
	srv = http_server_new(base, &lim, handler, error_body, NULL);
	http_server_set_head_handler(srv, head_handler);
	FUZZ_ASSERT(http_server_listen_fd(srv, fd) == 0);
	atexit(cleanup);
}

/* Whether head[0..n) holds lit (memmem, which gcc's -Wnonnull misreads
 * here under -fsanitize). */
static const char *find(const char *head, size_t n, const char *lit)
{
	size_t k = strlen(lit);
	for (size_t i = 0; i + k <= n; i++) {
		if (memcmp(head + i, lit, k) == 0)
			return head + i;
	}
	return NULL;
}

/* Checks what the client read: answers one after another, the last maybe
 * cut short only if the server closed early (never: it answers whole). */
static void check_answers(const char *buf, size_t len, size_t handled, const bool *head)
{
	size_t answers = 0, finals = 0;
	while (len > 0) {
		size_t end = http_head_end(buf, len);
		FUZZ_ASSERT(end > 0);
		FUZZ_ASSERT(len >= 13 && memcmp(buf, "HTTP/1.1 ", 9) == 0);
		int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
		answers++;
		if (status == 100) {
			FUZZ_ASSERT(end == 25);
			buf += end;
			len -= end;
			continue;
		}
		/* Find Content-Length and Content-Type in the head. */
		const char *cl = find(buf, end, "\r\nContent-Length: ");
		FUZZ_ASSERT(cl != NULL);
		FUZZ_ASSERT(find(buf, end, "\r\nContent-Type: application/json\r\n") != NULL);
		size_t n = 0;
		for (const char *p = cl + 18; *p >= '0' && *p <= '9'; p++)
			n = n * 10 + (size_t)(*p - '0');
		/* The handler's answer to HEAD has GET's headers and no body;
		 * the HTTP layer's own answers (closing) always have one. */
		if (status == 200 && finals < HEAD_MAX && head[finals])
			n = 0;
		finals++;
		FUZZ_ASSERT(n <= len - end);
		if (n > 0) {
			char err[64];
			json_object *o = payload_parse_json(buf + end, n, err, sizeof(err));
			FUZZ_ASSERT(o != NULL);
			json_object_put(o);
		}
		bool closing = find(buf, end, "\r\nConnection: close\r\n") != NULL;
		buf += end + n;
		len -= end + n;
		/* An answer that says the connection closes is its last word;
		 * an early answer (4xx from the HTTP layer) always says so. */
		FUZZ_ASSERT(!closing || len == 0);
		FUZZ_ASSERT(closing || status == 200);
	}
	/* Every request the handler saw was answered; the HTTP layer may have
	 * answered one more itself (400, 408, 411, 413, 431), or the head
	 * handler refused one (401). */
	FUZZ_ASSERT(finals == handled || finals == handled + 1);
}

/* One turn of the event loop, then what a hook that finished would do
 * (answer a deferred request), then what the client reads. Returns whether
 * anything moved. */
static bool turn(int c, struct strbuf *got, bool *eof)
{
	size_t before = got->len, handled = st.handled;
	int conns = http_server_connections(srv);
	event_base_loop(base, EVLOOP_NONBLOCK);
	if (st.pending) {
		struct http_request *req = st.pending;
		st.pending = NULL;
		http_respond(req, 200, NULL, xstrdup("{\"status\":\"ok\"}"), st.close);
	}
	if (c >= 0) {
		char buf[4096];
		ssize_t n;
		while ((n = recv(c, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			sb_append(got, buf, (size_t)n);
		if (n == 0)
			*eof = true;
		else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			*eof = true; /* a reset: the server closed with input unread */
	}
	return got->len != before || st.handled != handled ||
	       http_server_connections(srv) != conns;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	setup();
	uint8_t f = data[0];
	data++;
	size--;
	memset(&st, 0, sizeof(st));
	st.defer = f & 1;
	st.close = f & 16;
	bool hang_up = f & 32;
	static const size_t chunks[] = {0, 1, 16, 256};
	size_t chunk = chunks[f >> 6];
	struct http_limits lim = {
		.max_headers = f & 4 ? 256 : 2048,
		.max_body = f & 8 ? 16 : 1024,
		.max_connections = 4,
		.max_buffered = 16, /* one connection: reserved and given back, never waits */
		.read_timeout_ms = f & 2 ? 0 : 3600000,
		.idle_timeout_ms = 3600000,
	};
	http_server_set_limits(srv, &lim);

	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	FUZZ_ASSERT(c >= 0 && connect(c, (struct sockaddr *)&sun, sizeof(sun)) == 0);

	struct strbuf got;
	sb_init(&got);
	bool eof = false;
	/* The input in pieces with a turn of the loop between them (at most 64
	 * pieces, then the rest), so that heads and bodies arrive cut anywhere
	 * and bytes come after an early answer. Inputs are small: the socket
	 * buffer takes them whole. A write after the server closed fails:
	 * that is fine, the client just stops. */
	size_t off = 0;
	for (int k = 0; off < size; k++) {
		size_t n = chunk && k < 64 ? chunk : size - off;
		if (n > size - off)
			n = size - off;
		if (send(c, data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
			break;
		off += n;
		if (off < size)
			turn(c, &got, &eof);
	}
	if (hang_up) {
		/* The client goes away without reading: nothing to check but
		 * that the server lets go of the connection. */
		close(c);
		c = -1;
		eof = true;
	} else {
		shutdown(c, SHUT_WR);
	}

	int idle = 0;
	for (int i = 0; i < LOOP_MAX && idle < IDLE_MAX; i++) {
		bool progress = turn(c, &got, &eof);
		/* EOF means the server closed or half-closed (lingering): the
		 * connection was accepted, and must now go away. */
		if (eof && http_server_connections(srv) == 0)
			break;
		idle = progress ? 0 : idle + 1;
	}
	if (c >= 0)
		close(c);
	if (getenv("HOOKD_FUZZ_VERBOSE"))
		fprintf(stderr, "handled %zu, answers:\n%.*s\n--\n", st.handled, (int)got.len,
		        got.buf);
	/* Gone when the client is gone, and everything was answered. */
	FUZZ_ASSERT(eof);
	FUZZ_ASSERT(http_server_connections(srv) == 0);
	FUZZ_ASSERT(st.pending == NULL);
	if (!hang_up)
		check_answers(got.buf, got.len, st.handled, st.head);
	sb_free(&got);
	return 0;
}
