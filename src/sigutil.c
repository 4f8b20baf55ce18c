/*
 * The signing schemes' common ground (sigutil.h). Every MAC is libcrypto's
 * HMAC (EVP_MAC) and every compare of a credential is crypto_equal over
 * equal-length buffers.
 *
 * The decoding of what senders send (hex, base64, header lists) is strict:
 * exactly the expected length and alphabet, so a header of any size or shape
 * is at worst "malformed", never an overflow.
 */
#include "sigutil.h"
#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "util.h"

static const char *digest_name(enum hmac_alg alg)
{
	switch (alg) {
	case HMAC_SHA512:
		return "SHA512";
	case HMAC_SHA1:
		return "SHA1";
	case HMAC_SHA256:
	default:
		return "SHA256";
	}
}

size_t sig_digest_len(enum hmac_alg alg)
{
	switch (alg) {
	case HMAC_SHA512:
		return 64;
	case HMAC_SHA1:
		return 20;
	case HMAC_SHA256:
	default:
		return 32;
	}
}

/*
 * Keyed HMAC contexts, one per (digest, key), made on first use and kept.
 * Fetching the HMAC implementation and keying a context cost several times
 * more than the MAC of a webhook body; EVP_MAC_init with a NULL key starts
 * a new MAC under the key already set. A key here is a configured secret,
 * never what a sender sent, so finding its entry with memcmp tells a
 * sender nothing. Bounded: reloads that change secrets add entries, and
 * past KEYED_MAX the oldest goes, its copy of the key cleansed.
 */
#define KEYED_MAX 32

struct keyed {
	enum hmac_alg alg;
	unsigned char *key;
	size_t keylen;
	EVP_MAC_CTX *ctx;
	bool have_self;
	unsigned char self[SIG_MAC_MAX]; /* HMAC(key, key), for the token schemes */
};

static struct keyed keyed[KEYED_MAX];
static size_t nkeyed;
static EVP_MAC *hmac_impl;

static void keyed_clear(struct keyed *k)
{
	EVP_MAC_CTX_free(k->ctx);
	crypto_wipe(k->key, k->keylen);
	free(k->key);
	crypto_wipe(k, sizeof(*k));
}

static struct keyed *keyed_get(enum hmac_alg alg, const unsigned char *key, size_t keylen)
{
	for (size_t i = 0; i < nkeyed; i++) {
		struct keyed *k = &keyed[i];
		if (k->alg == alg && k->keylen == keylen && memcmp(k->key, key, keylen) == 0)
			return k;
	}
	if (!crypto_ready())
		return NULL;
	if (!hmac_impl && !(hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL)))
		return NULL;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_impl);
	OSSL_PARAM params[2];
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	                                             (char *)digest_name(alg), 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!ctx || !EVP_MAC_init(ctx, key, keylen, params)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	if (nkeyed == KEYED_MAX) {
		keyed_clear(&keyed[0]);
		memmove(&keyed[0], &keyed[1], (KEYED_MAX - 1) * sizeof(keyed[0]));
		memset(&keyed[KEYED_MAX - 1], 0, sizeof(keyed[0]));
		nkeyed--;
	}
	struct keyed *k = &keyed[nkeyed++];
	k->alg = alg;
	k->key = xmalloc(keylen ? keylen : 1);
	memcpy(k->key, key, keylen);
	k->keylen = keylen;
	k->ctx = ctx;
	k->have_self = false;
	return k;
}

void sig_cleanup(void)
{
	while (nkeyed)
		keyed_clear(&keyed[--nkeyed]);
	if (hmac_impl)
		EVP_MAC_free(hmac_impl);
	hmac_impl = NULL;
}

/* HMAC of the concatenated parts under k's key into out (SIG_MAC_MAX bytes).
 * false only when libcrypto itself fails. */
static bool keyed_mac(struct keyed *k, const struct sig_part *parts, size_t nparts,
                      unsigned char *out)
{
	size_t outlen = 0;
	if (!EVP_MAC_init(k->ctx, NULL, 0, NULL))
		return false;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n && !EVP_MAC_update(k->ctx, parts[i].p, parts[i].n))
			return false;
	}
	return EVP_MAC_final(k->ctx, out, &outlen, SIG_MAC_MAX) && outlen == sig_digest_len(k->alg);
}

static bool hmac_parts(enum hmac_alg alg, const unsigned char *key, size_t keylen,
                       const struct sig_part *parts, size_t nparts, unsigned char *out)
{
	struct keyed *k = keyed_get(alg, key, keylen);
	return k && keyed_mac(k, parts, nparts, out);
}

/* An empty secret is never usable: a zero-length key is not a credential,
 * and hookd never serves an unauthenticated endpoint by accident. */
int sig_macs_compute(const struct endpoint *ep, enum hmac_alg alg, const struct sig_part *parts,
                     size_t nparts, struct sig_macs *m)
{
	m->n = 0;
	m->len = sig_digest_len(alg);
	m->v = xcalloc(ep->nsecrets ? ep->nsecrets : 1, sizeof(*m->v));
	for (size_t i = 0; i < ep->nsecrets; i++) {
		const struct secret *s = &ep->secrets[i];
		if (!s->data || s->len == 0)
			continue;
		if (!hmac_parts(alg, s->data, s->len, parts, nparts, m->v[m->n]))
			return -1;
		m->n++;
	}
	return 1;
}

/* Compares against every secret's MAC without stopping at a match, so the
 * time taken says nothing about which secret (if any) matched. */
bool sig_macs_match(const struct sig_macs *m, const unsigned char *sig, size_t siglen)
{
	bool any = false;
	if (siglen != m->len)
		return false;
	for (size_t i = 0; i < m->n; i++)
		any |= crypto_equal(m->v[i], sig, siglen);
	return any;
}

void sig_macs_free(struct sig_macs *m)
{
	if (m->v) {
		crypto_wipe(m->v, (m->n ? m->n : 1) * sizeof(*m->v));
		free(m->v);
	}
	m->v = NULL;
	m->n = 0;
}

bool sig_have_secret(const struct endpoint *ep)
{
	for (size_t i = 0; i < ep->nsecrets; i++) {
		if (ep->secrets[i].data && ep->secrets[i].len)
			return true;
	}
	return false;
}

/* Exactly 2*n hex digits of either case; anything else is malformed. The
 * input is what the sender claims, not a secret: no need for constant time. */
bool sig_hex_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n)
{
	if (slen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit((unsigned char)s[2 * i]);
		int lo = hex_digit((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static bool is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/*
 * Exactly the padded standard base64 of n bytes: the shape is checked
 * here, then decoded (crypto_b64_decode takes only checked text).
 */
bool sig_b64_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n)
{
	unsigned char buf[SIG_MAC_MAX + 3];
	size_t want = 4 * ((n + 2) / 3);
	size_t pads = want / 4 * 3 - n;

	if (n > SIG_MAC_MAX || slen != want)
		return false;
	for (size_t i = 0; i < slen; i++) {
		bool pad_pos = i >= slen - pads;
		if (pad_pos ? s[i] != '=' : !is_b64((unsigned char)s[i]))
			return false;
	}
	if (crypto_b64_decode(buf, s, slen) != n)
		return false;
	/* Only the canonical text: the last character must not carry bits
	 * the decoder drops, so one MAC has exactly one accepted spelling. */
	char again[4 * ((SIG_MAC_MAX + 2) / 3) + 1];
	if (crypto_b64_encode(again, buf, n) != slen || memcmp(again, s, slen) != 0)
		return false;
	memcpy(out, buf, n);
	return true;
}

/*
 * A key as base64: the alphabet, '=' only as one or two final characters,
 * a length that is a multiple of four once the missing padding is added.
 * The text is checked here first (crypto_b64_decode takes only checked
 * text). The copies are cleansed.
 */
bool sig_b64_decode_key(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	size_t pad = 0;
	while (pad < n && pad < 3 && s[n - 1 - pad] == '=')
		pad++;
	size_t body = n - pad;
	if (body == 0 || pad > 2 || body % 4 == 1)
		return false;
	for (size_t i = 0; i < body; i++)
		if (!is_b64((unsigned char)s[i]))
			return false;
	size_t need = (4 - body % 4) % 4;
	if (pad && pad != need)
		return false;
	size_t tlen = body + need;
	char *text = xmalloc(tlen + 1);
	memcpy(text, s, body);
	memset(text + body, '=', need);
	text[tlen] = '\0';
	unsigned char *key = xmalloc(tlen / 4 * 3 + 1);
	size_t r = crypto_b64_decode(key, text, tlen);
	crypto_wipe(text, tlen);
	free(text);
	if (r == 0) {
		crypto_wipe(key, tlen / 4 * 3 + 1);
		free(key);
		return false;
	}
	*out = key;
	*outlen = r;
	return true;
}

static bool sig_decode(enum sig_encoding enc, const char *s, size_t slen, unsigned char *out,
                       size_t n)
{
	return enc == SIG_BASE64 ? sig_b64_decode_exact(s, slen, out, n)
	                         : sig_hex_decode_exact(s, slen, out, n);
}

/*
 * One signature checked against the parts' MAC under every secret: the
 * common end of github, slack and hmac.
 */
bool sig_verify_one(const struct endpoint *ep, enum hmac_alg alg, const struct sig_part *parts,
                    size_t nparts, const unsigned char *sig, size_t siglen, char *why,
                    size_t whylen)
{
	struct sig_macs m;
	int r = sig_macs_compute(ep, alg, parts, nparts, &m);
	bool ok = r > 0 && sig_macs_match(&m, sig, siglen);
	sig_macs_free(&m);
	if (r < 0)
		return verify_fail(why, whylen, "crypto failure");
	return ok ? true : verify_fail(why, whylen, "signature mismatch");
}

/*
 * A timestamp header: strict decimal unix seconds within the endpoint's
 * tolerance of now, in the past or the future. Bounds keep the arithmetic
 * in int64_t for any input. Then a secret, as every timestamped scheme
 * asks before it computes a MAC.
 */
bool sig_fresh_and_keyed(const struct verify_input *in, const char *ts, size_t tslen, char *why,
                         size_t whylen)
{
	char buf[24];
	uint64_t t;
	const int64_t max_s = INT64_MAX / 1000;

	if (!ts || tslen == 0)
		return verify_fail(why, whylen, "timestamp missing");
	if (tslen >= sizeof(buf))
		return verify_fail(why, whylen, "malformed timestamp");
	memcpy(buf, ts, tslen);
	buf[tslen] = '\0';
	if (!parse_u64(buf, &t))
		return verify_fail(why, whylen, "malformed timestamp");
	if (t > (uint64_t)max_s || in->now < 0 || in->now > max_s)
		return verify_fail(why, whylen, "timestamp outside tolerance");
	int64_t diff_ms = ((int64_t)t - in->now) * 1000;
	int64_t tol = in->ep->tolerance_ms;
	if (diff_ms > tol || diff_ms < -tol)
		return verify_fail(why, whylen, "timestamp outside tolerance");
	if (!sig_have_secret(in->ep))
		return verify_fail(why, whylen, "no secret configured");
	return true;
}

/* Token schemes: a value equals a secret. Comparing HMAC(secret, value)
 * with HMAC(secret, secret) takes the same time whatever the value's length
 * or content, and the key is unknown to the sender. Every secret is
 * compared, whichever matched. */
bool sig_match_secret(const struct endpoint *ep, const void *value, size_t len,
                      const char *mismatch, char *why, size_t whylen)
{
	bool any = false;

	if (!sig_have_secret(ep))
		return verify_fail(why, whylen, "no secret configured");
	for (size_t i = 0; i < ep->nsecrets; i++) {
		const struct secret *s = &ep->secrets[i];
		unsigned char a[SIG_MAC_MAX];
		struct sig_part pt = {value, len};
		struct sig_part ps = {s->data, s->len};
		if (!s->data || s->len == 0)
			continue;
		struct keyed *k = keyed_get(HMAC_SHA256, s->data, s->len);
		/* HMAC(secret, secret) is the same for every request. */
		if (k && !k->have_self)
			k->have_self = keyed_mac(k, &ps, 1, k->self);
		if (!k || !k->have_self || !keyed_mac(k, &pt, 1, a))
			return verify_fail(why, whylen, "crypto failure");
		any |= crypto_equal(a, k->self, sig_digest_len(HMAC_SHA256));
		crypto_wipe(a, sizeof(a));
	}
	return any ? true : verify_fail(why, whylen, mismatch);
}

bool sig_verify_token(const struct verify_input *in, const char *name, char *why, size_t whylen)
{
	const char *token = verify_header(in, name);

	if (!token || !*token)
		return verify_fail(why, whylen, "token missing");
	return sig_match_secret(in->ep, token, strlen(token), "token mismatch", why, whylen);
}

/* The head's part of "<prefix><encoded MAC>": all but the MAC itself. */
bool sig_parse_prefixed(const struct endpoint *ep, const char *value, const char *prefix,
                        enum hmac_alg alg, enum sig_encoding enc, unsigned char *sig, char *why,
                        size_t whylen)
{
	size_t plen = prefix ? strlen(prefix) : 0;

	if (!*value)
		return verify_fail(why, whylen, "signature header empty");
	if (plen && strncmp(value, prefix, plen) != 0)
		return verify_fail(why, whylen, "signature prefix missing");
	value += plen;
	if (!sig_decode(enc, value, strlen(value), sig, sig_digest_len(alg)))
		return verify_fail(why, whylen, "malformed signature");
	if (!sig_have_secret(ep))
		return verify_fail(why, whylen, "no secret configured");
	return true;
}

bool sig_verify_body(const struct verify_input *in, enum hmac_alg alg, const unsigned char *sig,
                     char *why, size_t whylen)
{
	struct sig_part body = {in->body, in->body_len};
	return sig_verify_one(in->ep, alg, &body, 1, sig, sig_digest_len(alg), why, whylen);
}
