/*
 * A small HTTP/1.1 server on libevent bufferevents. It exists (rather than
 * evhttp) so that every answer hookd gives is its own JSON, a request's
 * size and time limits are exact (431, 413 from Content-Length before the
 * body is read, one read deadline from a request's first byte to its last),
 * chunked bodies are refused, a request can be refused from its head
 * before any body byte is read, the body bytes all connections read at
 * once are bounded (max_buffered), and at max_connections the longest-idle
 * connection makes room for a new one. Requests on one connection are
 * handled one at a time, in order; an answer may be given later (a hook
 * still running).
 */
#ifndef HOOKD_HTTP_H
#define HOOKD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_server;
struct http_conn;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct http_header {
	char *name;
	char *value;
};

struct http_request {
	struct http_conn *conn;
	char *method;
	char *target; /* as sent: "/webhook?x=1" */
	char *path;   /* the target's path, query cut */
	struct http_header *headers;
	size_t nheaders;
	unsigned char *body;
	size_t body_len;
	const char *peer; /* the peer's address, "127.0.0.1" or "::1" */
	bool keep_alive;
	uint64_t content_length; /* from the head: what body_len will be */
	uint64_t tag; /* the head handler's own, kept for the handler */
	void *owner;  /* the handler's own, while it holds the request */
};

struct http_limits {
	uint64_t max_headers;
	uint64_t max_body;
	int max_connections;
	int64_t read_timeout_ms;
	int64_t idle_timeout_ms;
	/* Body bytes all connections together may be reading: a request whose
	 * body does not fit waits, reading paused, and past its read deadline
	 * gets 503 + Retry-After. 0: no bound. */
	uint64_t max_buffered;
	/* Connections one peer address (TCP; unix sockets are not counted) may
	 * hold: past it, its own longest-idle connection is closed, or with
	 * none idle the new one is. 0: no bound. */
	int max_connections_per_client;
	/* A connection whose request is not whole yet (head or body) counts as
	 * idle: closed first to admit a new one at max_connections. For a
	 * listener whose clients send a request at once (the admin's
	 * scrapers and browsers), so that trickled requests cannot keep every
	 * slot until their read deadline. */
	bool unfinished_idle;
};

/* Called once per complete request. The handler must answer it exactly
 * once with http_respond, now or later. */
typedef void (*http_handler)(struct http_request *req, void *arg);
/*
 * Called once per request as soon as its head is parsed (req->body NULL,
 * req->content_length set), before any body byte is read. Returns true to
 * read the body (the request then goes to the http_handler), false when
 * it answered req with http_respond: the body is then never read, no
 * 100 Continue goes out, and the connection closes after the answer
 * (reading and dropping what the client still sends for a moment, as
 * after a 413).
 */
typedef bool (*http_head_handler)(struct http_request *req, void *arg);
/* Builds the JSON body of an answer the HTTP layer decides itself (413, 431,
 * 411, 400), to the client at peer (its address, or "unix"): returns a
 * malloc'd string. */
typedef char *(*http_error_body)(int status, const char *error, const char *peer, void *arg);

/*
 * Called at most once for a request the handler holds, when its client
 * closes or resets the connection before the answer (a sender that gave
 * up waiting). The handler still answers req exactly once: after a reset
 * http_respond only frees it; after a close it still writes the answer,
 * for a client that only half-closed.
 */
typedef void (*http_gone_handler)(struct http_request *req, void *arg);

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    http_handler handler, http_error_body error_body, void *arg);
/* Decides on each request from its head first (NULL: none, the default). */
void http_server_set_head_handler(struct http_server *s, http_head_handler head);
/* Is told when a client goes before its answer (NULL: not, the default). */
void http_server_set_gone_handler(struct http_server *s, http_gone_handler gone);
/* Header lines ("\r\n" ended) that the HTTP layer's own answers carry too
 * (the admin listener's security headers); s keeps the pointer. */
void http_server_set_error_headers(struct http_server *s, const char *headers);
/* Listens on fd (already bound and listening, non-blocking). */
int http_server_listen_fd(struct http_server *s, int fd);
void http_server_set_limits(struct http_server *s, const struct http_limits *lim);
/* Serves HTTPS with ctx on every connection accepted from now on (a
 * reference is taken; NULL: plain HTTP). A connection already open keeps
 * the context it was accepted with. */
void http_server_set_tls(struct http_server *s, struct ssl_ctx_st *ctx);
/* Stops accepting. Open connections stay open until the server is freed:
 * a later request on one is refused through the handler (the caller's
 * draining flag) and answered with Connection: close. */
void http_server_stop_accepting(struct http_server *s);
/* Connections still open. */
int http_server_connections(struct http_server *s);

/* Connections whose request is with the handler or whose answer is not
 * written whole yet (a stalled reader is dropped after the write timeout). */
int http_server_answering(struct http_server *s);
void http_server_free(struct http_server *s);

const char *http_header_get(const struct http_request *req, const char *name);

/*
 * The request head parser (http_parse.c), on its own so that it can be
 * tested and fuzzed without a connection. http_head_end: the offset just
 * past the head's empty line in buf[0..n), 0 when the head is not
 * complete. It finds a head that ends in a bare LF or CR too (then the
 * offset past the byte after it), so that the parser refuses it at once.
 */
size_t http_head_end(const char *buf, size_t n);

/*
 * The same search, resumed where the last one on the same bytes stopped:
 * a head that arrives a few bytes a read is searched once in all, not
 * once a read (which was quadratic in max_headers: a client trickling
 * short header lines cost the loop a rescan of everything it had sent
 * for each read). Zero *scan before the first search of each head;
 * buf[0..n) holds what the last search was given, and more.
 */
struct http_head_scan {
	size_t at;         /* the search goes on from here */
	bool past_blanks;  /* the empty lines before a request line are behind */
};
size_t http_head_end_scan(const char *buf, size_t n, struct http_head_scan *scan);

/* What the head says about the body. */
struct http_head {
	bool chunked;         /* a Transfer-Encoding header: refused with 411 */
	bool has_length;
	uint64_t length;      /* Content-Length, 0 when absent */
	bool expect_continue; /* Expect: 100-continue */
};

/*
 * Parses exactly len bytes of request line and header lines into req's
 * method, target, path, headers and keep_alive, and into *head (zeroed by
 * the caller). Returns NULL, or why the head is malformed (a 400): among
 * others a bare LF or a bare CR anywhere (only CRLF ends a line), a
 * method it does not know, a byte past ASCII in the target. req may be
 * partly filled either way: free it with http_request_free.
 */
const char *http_parse_head(const char *buf, size_t len, struct http_request *req,
                            struct http_head *head);
/* A request the handler never got (http_respond frees the others); NULL is fine. */
void http_request_free(struct http_request *req);

/*
 * Frees what a handler that keeps req for a later answer no longer needs:
 * the head (method, target, path, headers: all then "" or none) and the
 * body. A delivery that waits for a slot holds its own copies, so the
 * request it will answer costs no more than its connection.
 */
void http_request_shrink(struct http_request *req);

/*
 * Answers req with a JSON body (taken over, freed here). `extra` holds
 * further header lines, each ending in "\r\n", or NULL. close forces
 * Connection: close. req is freed once the answer is queued.
 */
void http_respond(struct http_request *req, int status, const char *extra, char *body, bool close);
/* The same with a body of another Content-Type (the admin's /metrics:
 * "text/plain; version=0.0.4"), sent as it is; NULL means JSON. */
void http_respond_typed(struct http_request *req, int status, const char *content_type,
                        const char *extra, char *body, bool close);

/* Opens a listening socket for "host:port", "[v6]:port" or "unix:/path";
 * returns the fd or -errno, with a message in err. */
int http_listen(const char *spec, char *err, size_t errlen);
/* The bound address of a listening fd, for the "listening" log line. */
void http_bound_address(int fd, char *buf, size_t len);

const char *http_reason(int status);

#endif
