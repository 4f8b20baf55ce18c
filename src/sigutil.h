/*
 * What the signing schemes share (src/schemes/): HMAC with libcrypto under
 * every configured secret, constant-time compares, strict hex and base64,
 * the timestamp tolerance, and the two common shapes of credential (a
 * token equal to a secret; a prefixed MAC of the body).
 */
#ifndef HOOKD_SIGUTIL_H
#define HOOKD_SIGUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "verify.h"

#define SIG_MAC_MAX 64 /* SHA-512, the longest digest a scheme uses */

/* One piece of the signed content; the MAC runs over their concatenation. */
struct sig_part {
	const void *p;
	size_t n;
};

size_t sig_digest_len(enum hmac_alg alg);

/* The expected MAC under every usable secret (rotation). An empty secret
 * is never usable: a zero-length key is not a credential. */
struct sig_macs {
	unsigned char (*v)[SIG_MAC_MAX];
	size_t n;
	size_t len;
};
/* 1: computed (n may still be 0: no usable secret), -1: libcrypto failed.
 * Either way sig_macs_free() after. */
int sig_macs_compute(const struct endpoint *ep, enum hmac_alg alg, const struct sig_part *parts,
                     size_t nparts, struct sig_macs *m);
/* Whether sig equals any of the MACs; compares them all, whatever matched. */
bool sig_macs_match(const struct sig_macs *m, const unsigned char *sig, size_t siglen);
void sig_macs_free(struct sig_macs *m);

/* Whether ep has a secret that can be a key. */
bool sig_have_secret(const struct endpoint *ep);

/* Exactly the encoding of n bytes (hex: 2n digits of either case; base64:
 * the canonical padded text); anything else is malformed. */
bool sig_hex_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n);
bool sig_b64_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n);

/* A configured key as base64 text, padding optional: the decoded bytes
 * (malloc'd, at least one) in *out, or false. */
bool sig_b64_decode_key(const char *s, size_t n, unsigned char **out, size_t *outlen);

/* One signature checked against the parts' MAC under every secret. */
bool sig_verify_one(const struct endpoint *ep, enum hmac_alg alg, const struct sig_part *parts,
                    size_t nparts, const unsigned char *sig, size_t siglen, char *why,
                    size_t whylen);

/* A timestamp header: strict decimal unix seconds within the endpoint's
 * tolerance of in->now, in the past or the future; then, that ep has a
 * secret to check the MAC with. */
bool sig_fresh_and_keyed(const struct verify_input *in, const char *ts, size_t tslen, char *why,
                         size_t whylen);

/* value (len bytes) equals one of ep's secrets, in time that says nothing
 * of either or of which secret; the reason `mismatch` when none. */
bool sig_match_secret(const struct endpoint *ep, const void *value, size_t len,
                      const char *mismatch, char *why, size_t whylen);
/* The header `name` equals a secret, as sig_match_secret compares it. */
bool sig_verify_token(const struct verify_input *in, const char *name, char *why, size_t whylen);

/* value is "<prefix><MAC, encoded>" (prefix may be NULL), as far as the
 * request head decides it: the prefix, the exact encoding of a MAC of
 * alg (decoded into sig, sig_digest_len(alg) bytes), and a secret on ep to
 * check it with. The reasons: "signature header empty", "signature prefix
 * missing", "malformed signature", "no secret configured". */
bool sig_parse_prefixed(const struct endpoint *ep, const char *value, const char *prefix,
                        enum hmac_alg alg, enum sig_encoding enc, unsigned char *sig, char *why,
                        size_t whylen);
/* sig (sig_digest_len(alg) bytes) is the MAC of the raw body under one of
 * in->ep's secrets, as sig_verify_one checks it. */
bool sig_verify_body(const struct verify_input *in, enum hmac_alg alg, const unsigned char *sig,
                     char *why, size_t whylen);

/* Frees the keyed HMAC contexts kept between requests; at exit, before
 * OpenSSL's own cleanup. */
void sig_cleanup(void);

#endif
