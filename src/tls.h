/*
 * Native TLS (README "Native TLS"): the server-side OpenSSL context built from
 * [server] tls_cert, tls_key and tls_ciphers. The HTTP layer gives each
 * accepted connection an SSL object made from the context in force at
 * accept time; SSL objects hold their own reference to it, so a SIGHUP that
 * swaps in a new context never disturbs a connection already open.
 */
#ifndef HOOKD_TLS_H
#define HOOKD_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* OpenSSL's SSL_CTX, without pulling its headers into every module. */
struct ssl_ctx_st;

/* The TLS 1.2 cipher list used when tls_ciphers is not set: forward-secret
 * AEAD suites only. TLS 1.3 suites are OpenSSL's own (all AEAD). */
#define TLS_DEFAULT_CIPHERS                                                  \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"             \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"             \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * Builds a server context: TLS 1.2 and newer, `ciphers` (an OpenSSL cipher
 * list for TLS 1.2; NULL: TLS_DEFAULT_CIPHERS), no compression, no
 * renegotiation, no stateless session tickets. `cert` is a PEM file holding
 * the certificate then its chain; `key` a PEM private key without a
 * passphrase. On error returns NULL and writes one line naming the file to
 * err: "tls_cert /x/cert.pem: No such file or directory",
 * "tls_key /x/key.pem does not match tls_cert /x/cert.pem", ...
 * The caller owns the returned reference (tls_ctx_free).
 */
struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key, const char *ciphers, char *err,
                               size_t errlen);
void tls_ctx_free(struct ssl_ctx_st *ctx); /* drops one reference; NULL is fine */

/* What the loaded certificate says, for the log and `hookd check`. */
struct tls_cert_info {
	char subject[256];  /* RFC 2253: "CN=hooks.example.com,O=Example" */
	char serial[128];   /* hex, as `openssl x509 -serial` prints it */
	char not_after[32]; /* RFC 3339 UTC: "2027-01-31T12:00:00Z" */
	bool expired;       /* not_after is in the past */
};
void tls_ctx_info(struct ssl_ctx_st *ctx, struct tls_cert_info *out);

#endif
