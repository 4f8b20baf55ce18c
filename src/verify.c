/*
 * Verification schemes (README "Senders and verification schemes"). verify_credentials() looks only at headers
 * and the raw body bytes, never at parsed JSON, so a request is authenticated
 * before any parser sees it. Every MAC is libcrypto's HMAC (EVP_MAC) and every
 * compare of a credential is CRYPTO_memcmp over equal-length buffers.
 *
 * The decoding of what senders send (hex, base64, header lists) is strict:
 * exactly the expected length and alphabet, so a header of any size or shape
 * is at worst "malformed", never an overflow.
 */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "jsonscan.h"
#include "util.h"

#define MAC_MAX 64 /* SHA-512, the longest digest a scheme uses */
#define DEFAULT_SIGNATURE_HEADER "X-Signature"
#define DEFAULT_EVENT_FIELD "event"
#define DELIVERY_ID_MAX 255

/* One piece of the signed content; the MAC runs over their concatenation. */
struct part {
	const void *p;
	size_t n;
};

static bool fail(char *buf, size_t len, const char *reason)
{
	if (buf && len)
		snprintf(buf, len, "%s", reason);
	return false;
}

static const char *header(const struct verify_input *in, const char *name)
{
	return in->header ? in->header(in->ctx, name) : NULL;
}

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

static size_t digest_len(enum hmac_alg alg)
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
	unsigned char self[MAC_MAX]; /* HMAC(key, key), for the token schemes */
};

static struct keyed keyed[KEYED_MAX];
static size_t nkeyed;
static EVP_MAC *hmac_impl;

static void keyed_clear(struct keyed *k)
{
	EVP_MAC_CTX_free(k->ctx);
	OPENSSL_clear_free(k->key, k->keylen);
	OPENSSL_cleanse(k, sizeof(*k));
}

static struct keyed *keyed_get(enum hmac_alg alg, const unsigned char *key, size_t keylen)
{
	for (size_t i = 0; i < nkeyed; i++) {
		struct keyed *k = &keyed[i];
		if (k->alg == alg && k->keylen == keylen && memcmp(k->key, key, keylen) == 0)
			return k;
	}
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

void verify_cleanup(void)
{
	while (nkeyed)
		keyed_clear(&keyed[--nkeyed]);
	EVP_MAC_free(hmac_impl);
	hmac_impl = NULL;
}

/* HMAC of the concatenated parts under k's key into out (MAC_MAX bytes).
 * false only when libcrypto itself fails. */
static bool keyed_mac(struct keyed *k, const struct part *parts, size_t nparts,
                      unsigned char *out)
{
	size_t outlen = 0;
	if (!EVP_MAC_init(k->ctx, NULL, 0, NULL))
		return false;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n && !EVP_MAC_update(k->ctx, parts[i].p, parts[i].n))
			return false;
	}
	return EVP_MAC_final(k->ctx, out, &outlen, MAC_MAX) && outlen == digest_len(k->alg);
}

static bool hmac_parts(enum hmac_alg alg, const unsigned char *key, size_t keylen,
                       const struct part *parts, size_t nparts, unsigned char *out)
{
	struct keyed *k = keyed_get(alg, key, keylen);
	return k && keyed_mac(k, parts, nparts, out);
}

/*
 * The expected MAC under every usable secret (rotation). An empty secret is
 * never usable: a zero-length key is not a credential, and hookd never
 * serves an unauthenticated endpoint by accident.
 */
struct macs {
	unsigned char (*v)[MAC_MAX];
	size_t n;
	size_t len;
};

/* 1: computed (n may still be 0: no usable secret), -1: libcrypto failed. */
static int macs_compute(const struct endpoint *ep, enum hmac_alg alg, const struct part *parts,
                        size_t nparts, struct macs *m)
{
	m->n = 0;
	m->len = digest_len(alg);
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
static bool macs_match(const struct macs *m, const unsigned char *sig, size_t siglen)
{
	bool any = false;
	if (siglen != m->len)
		return false;
	for (size_t i = 0; i < m->n; i++)
		any |= CRYPTO_memcmp(m->v[i], sig, siglen) == 0;
	return any;
}

static void macs_free(struct macs *m)
{
	if (m->v) {
		OPENSSL_cleanse(m->v, (m->n ? m->n : 1) * sizeof(*m->v));
		free(m->v);
	}
	m->v = NULL;
	m->n = 0;
}

static bool have_secret(const struct endpoint *ep)
{
	for (size_t i = 0; i < ep->nsecrets; i++) {
		if (ep->secrets[i].data && ep->secrets[i].len)
			return true;
	}
	return false;
}

/* Exactly 2*n hex digits of either case; anything else is malformed. The
 * input is what the sender claims, not a secret: no need for constant time. */
static bool hex_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n)
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
 * Exactly the padded standard base64 of n bytes. EVP_DecodeBlock skips
 * surrounding whitespace and returns a length that counts the padding as
 * bytes, so the shape is checked here first and the true length derived
 * from n.
 */
static bool b64_decode_exact(const char *s, size_t slen, unsigned char *out, size_t n)
{
	unsigned char buf[MAC_MAX + 3];
	size_t want = 4 * ((n + 2) / 3);
	size_t pads = want / 4 * 3 - n;

	if (n > MAC_MAX || slen != want)
		return false;
	for (size_t i = 0; i < slen; i++) {
		bool pad_pos = i >= slen - pads;
		if (pad_pos ? s[i] != '=' : !is_b64((unsigned char)s[i]))
			return false;
	}
	if (EVP_DecodeBlock(buf, (const unsigned char *)s, (int)slen) != (int)(want / 4 * 3))
		return false;
	/* Only the canonical text: the last character must not carry bits
	 * the decoder drops, so one MAC has exactly one accepted spelling. */
	unsigned char again[4 * ((MAC_MAX + 2) / 3) + 1];
	if (EVP_EncodeBlock(again, buf, (int)n) != (int)slen || memcmp(again, s, slen) != 0)
		return false;
	memcpy(out, buf, n);
	return true;
}

static bool sig_decode(enum sig_encoding enc, const char *s, size_t slen, unsigned char *out,
                       size_t n)
{
	return enc == SIG_BASE64 ? b64_decode_exact(s, slen, out, n)
	                         : hex_decode_exact(s, slen, out, n);
}

/*
 * One signature checked against the parts' MAC under every secret: the
 * common end of github, slack and hmac.
 */
static bool verify_one(const struct endpoint *ep, enum hmac_alg alg, const struct part *parts,
                       size_t nparts, const unsigned char *sig, size_t siglen, char *why,
                       size_t whylen)
{
	struct macs m;
	int r = macs_compute(ep, alg, parts, nparts, &m);
	bool ok = r > 0 && macs_match(&m, sig, siglen);
	macs_free(&m);
	if (r < 0)
		return fail(why, whylen, "crypto failure");
	return ok ? true : fail(why, whylen, "signature mismatch");
}

/*
 * A timestamp header: strict decimal unix seconds within the endpoint's
 * tolerance of now, in the past or the future. Bounds keep the arithmetic
 * in int64_t for any input.
 */
static bool timestamp_ok(const struct verify_input *in, const char *ts, size_t tslen, char *why,
                         size_t whylen)
{
	char buf[24];
	uint64_t t;
	const int64_t max_s = INT64_MAX / 1000;

	if (!ts || tslen == 0)
		return fail(why, whylen, "timestamp missing");
	if (tslen >= sizeof(buf))
		return fail(why, whylen, "malformed timestamp");
	memcpy(buf, ts, tslen);
	buf[tslen] = '\0';
	if (!parse_u64(buf, &t))
		return fail(why, whylen, "malformed timestamp");
	if (t > (uint64_t)max_s || in->now < 0 || in->now > max_s)
		return fail(why, whylen, "timestamp outside tolerance");
	int64_t diff_ms = ((int64_t)t - in->now) * 1000;
	int64_t tol = in->ep->tolerance_ms;
	if (diff_ms > tol || diff_ms < -tol)
		return fail(why, whylen, "timestamp outside tolerance");
	return true;
}

/* Token schemes: the header equals a secret. Comparing HMAC(secret, token)
 * with HMAC(secret, secret) takes the same time whatever the token's length
 * or content, and the key is unknown to the sender. */
static bool verify_token(const struct verify_input *in, const char *name, char *why, size_t whylen)
{
	const struct endpoint *ep = in->ep;
	const char *token = header(in, name);
	bool any = false;

	if (!token || !*token)
		return fail(why, whylen, "token missing");
	if (!have_secret(ep))
		return fail(why, whylen, "no secret configured");
	for (size_t i = 0; i < ep->nsecrets; i++) {
		const struct secret *s = &ep->secrets[i];
		unsigned char a[MAC_MAX];
		struct part pt = {token, strlen(token)};
		struct part ps = {s->data, s->len};
		if (!s->data || s->len == 0)
			continue;
		struct keyed *k = keyed_get(HMAC_SHA256, s->data, s->len);
		/* HMAC(secret, secret) is the same for every request. */
		if (k && !k->have_self)
			k->have_self = keyed_mac(k, &ps, 1, k->self);
		if (!k || !k->have_self || !keyed_mac(k, &pt, 1, a))
			return fail(why, whylen, "crypto failure");
		any |= CRYPTO_memcmp(a, k->self, digest_len(HMAC_SHA256)) == 0;
	}
	return any ? true : fail(why, whylen, "token mismatch");
}

/* "<prefix><encoded MAC>" over the raw body. */
static bool verify_prefixed(const struct verify_input *in, const char *value, const char *prefix,
                            enum hmac_alg alg, enum sig_encoding enc, char *why, size_t whylen)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t dlen = digest_len(alg);
	unsigned char sig[MAC_MAX];
	struct part body = {in->body, in->body_len};

	if (!*value)
		return fail(why, whylen, "signature header empty");
	if (plen && strncmp(value, prefix, plen) != 0)
		return fail(why, whylen, "signature prefix missing");
	value += plen;
	if (!sig_decode(enc, value, strlen(value), sig, dlen))
		return fail(why, whylen, "malformed signature");
	if (!have_secret(in->ep))
		return fail(why, whylen, "no secret configured");
	return verify_one(in->ep, alg, &body, 1, sig, dlen, why, whylen);
}

static bool verify_github(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v = header(in, "X-Hub-Signature-256");

	/* A present SHA-256 header is never bypassed by a SHA-1 one: that
	 * would let a downgrade through. */
	if (v)
		return verify_prefixed(in, v, "sha256=", HMAC_SHA256, SIG_HEX, why, whylen);
	v = header(in, "X-Hub-Signature");
	if (!v)
		return fail(why, whylen, "signature header missing");
	if (!in->ep->allow_sha1)
		return fail(why, whylen, "sha1 signature not allowed");
	return verify_prefixed(in, v, "sha1=", HMAC_SHA1, SIG_HEX, why, whylen);
}

static bool verify_hmac(const struct verify_input *in, char *why, size_t whylen)
{
	const struct endpoint *ep = in->ep;
	const char *name = ep->signature_header && *ep->signature_header ? ep->signature_header
	                                                                 : DEFAULT_SIGNATURE_HEADER;
	const char *v = header(in, name);

	if (!v)
		return fail(why, whylen, "signature header missing");
	return verify_prefixed(in, v, ep->signature_prefix, ep->algorithm, ep->encoding, why,
	                       whylen);
}

static bool verify_slack(const struct verify_input *in, char *why, size_t whylen)
{
	const char *ts = header(in, "X-Slack-Request-Timestamp");
	const char *v = header(in, "X-Slack-Signature");
	unsigned char sig[MAC_MAX];

	if (!v)
		return fail(why, whylen, "signature header missing");
	if (!ts)
		return fail(why, whylen, "timestamp missing");
	if (strncmp(v, "v0=", 3) != 0)
		return fail(why, whylen, "signature prefix missing");
	if (!hex_decode_exact(v + 3, strlen(v + 3), sig, 32))
		return fail(why, whylen, "malformed signature");
	if (!timestamp_ok(in, ts, strlen(ts), why, whylen))
		return false;
	if (!have_secret(in->ep))
		return fail(why, whylen, "no secret configured");
	struct part parts[] = {
		{"v0:", 3}, {ts, strlen(ts)}, {":", 1}, {in->body, in->body_len},
	};
	return verify_one(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), sig, 32, why, whylen);
}

/*
 * Standard Webhooks' three headers, or Svix's (`svix-id`, `svix-timestamp`,
 * `svix-signature`: the same scheme under its first names, which senders
 * built on Svix still send). One family or the other, never a mix: the
 * webhook-* one when it has a signature, else svix-*.
 */
static const char *standard_header(const struct verify_input *in, const char *which)
{
	char name[32];
	const char *family = header(in, "webhook-signature") || !header(in, "svix-signature")
	                             ? "webhook-"
	                             : "svix-";
	snprintf(name, sizeof(name), "%s%s", family, which);
	return header(in, name);
}

/* Standard Webhooks: id.timestamp.body, signatures "v1,<base64>" separated
 * by spaces; other versions are skipped, any v1 matching suffices. */
static bool verify_standard(const struct verify_input *in, char *why, size_t whylen)
{
	const char *msgid = standard_header(in, "id");
	const char *ts = standard_header(in, "timestamp");
	const char *v = standard_header(in, "signature");
	struct macs m = {0};
	size_t v1_seen = 0, v1_wellformed = 0;
	bool any = false;

	if (!v || !*v)
		return fail(why, whylen, "signature header missing");
	if (!msgid || !*msgid)
		return fail(why, whylen, "id header missing");
	if (!ts)
		return fail(why, whylen, "timestamp missing");
	if (!timestamp_ok(in, ts, strlen(ts), why, whylen))
		return false;
	if (!have_secret(in->ep))
		return fail(why, whylen, "no secret configured");

	struct part parts[] = {
		{msgid, strlen(msgid)}, {".", 1}, {ts, strlen(ts)}, {".", 1}, {in->body, in->body_len},
	};
	if (macs_compute(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), &m) < 0) {
		macs_free(&m);
		return fail(why, whylen, "crypto failure");
	}
	for (const char *p = v; *p;) {
		if (*p == ' ') {
			p++;
			continue;
		}
		size_t n = strcspn(p, " ");
		if (n > 3 && memcmp(p, "v1,", 3) == 0) {
			unsigned char sig[MAC_MAX];
			v1_seen++;
			if (b64_decode_exact(p + 3, n - 3, sig, 32)) {
				v1_wellformed++;
				any |= macs_match(&m, sig, 32);
			}
		}
		p += n;
	}
	macs_free(&m);
	if (any)
		return true;
	if (v1_seen == 0)
		return fail(why, whylen, "no v1 signature");
	if (v1_wellformed == 0)
		return fail(why, whylen, "malformed signature");
	return fail(why, whylen, "signature mismatch");
}

/* Stripe: "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]" over "<t>.<body>". */
static bool verify_stripe(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v = header(in, "Stripe-Signature");
	const char *t = NULL;
	size_t tlen = 0, v1_seen = 0, v1_wellformed = 0;
	struct macs m = {0};
	bool any = false;

	if (!v || !*v)
		return fail(why, whylen, "signature header missing");
	/* First pass: the shape, the timestamp and whether any v1 exists. */
	for (const char *p = v;;) {
		size_t n = strcspn(p, ",");
		const char *eq = memchr(p, '=', n);
		if (!eq || eq == p)
			return fail(why, whylen, "malformed signature header");
		if (eq - p == 1 && p[0] == 't') {
			if (t)
				return fail(why, whylen, "malformed signature header");
			t = eq + 1;
			tlen = n - 2;
		} else if (eq - p == 2 && p[0] == 'v' && p[1] == '1') {
			v1_seen++;
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	if (!t)
		return fail(why, whylen, "timestamp missing");
	if (v1_seen == 0)
		return fail(why, whylen, "no v1 signature");
	if (!timestamp_ok(in, t, tlen, why, whylen))
		return false;
	if (!have_secret(in->ep))
		return fail(why, whylen, "no secret configured");

	struct part parts[] = {{t, tlen}, {".", 1}, {in->body, in->body_len}};
	if (macs_compute(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), &m) < 0) {
		macs_free(&m);
		return fail(why, whylen, "crypto failure");
	}
	for (const char *p = v;;) {
		size_t n = strcspn(p, ",");
		if (n > 3 && memcmp(p, "v1=", 3) == 0) {
			unsigned char sig[32];
			if (hex_decode_exact(p + 3, n - 3, sig, sizeof(sig))) {
				v1_wellformed++;
				any |= macs_match(&m, sig, sizeof(sig));
			}
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	macs_free(&m);
	if (any)
		return true;
	if (v1_wellformed == 0)
		return fail(why, whylen, "malformed signature");
	return fail(why, whylen, "signature mismatch");
}

bool verify_credentials(const struct verify_input *in, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (!in || !in->ep)
		return fail(why, whylen, "no endpoint");
	switch (in->ep->scheme) {
	case SCHEME_NORTHFLANK:
		return verify_token(in, "X-Northflank-Notification-Integration-Token", why, whylen);
	case SCHEME_GITLAB:
		return verify_token(in, "X-Gitlab-Token", why, whylen);
	case SCHEME_GITHUB:
		return verify_github(in, why, whylen);
	case SCHEME_STANDARD:
		return verify_standard(in, why, whylen);
	case SCHEME_STRIPE:
		return verify_stripe(in, why, whylen);
	case SCHEME_SLACK:
		return verify_slack(in, why, whylen);
	case SCHEME_HMAC:
		return verify_hmac(in, why, whylen);
	case SCHEME_NONE:
		return true;
	}
	return fail(why, whylen, "unknown scheme");
}

bool scheme_accepts_form(enum scheme s)
{
	return s == SCHEME_GITHUB || s == SCHEME_SLACK;
}

/* The body fields scheme_identify reads, per scheme (README "Senders and verification schemes"). */
static size_t identity_paths(const struct endpoint *ep, const char **paths)
{
	size_t n = 0;
	switch (ep->scheme) {
	case SCHEME_NORTHFLANK:
		paths[n++] = "event";
		break;
	case SCHEME_GITHUB:
		paths[n++] = "action";
		break;
	case SCHEME_GITLAB:
		paths[n++] = "object_kind";
		paths[n++] = "object_attributes.action";
		break;
	case SCHEME_STANDARD:
		paths[n++] = "type";
		break;
	case SCHEME_STRIPE:
		paths[n++] = "type";
		paths[n++] = "id";
		break;
	case SCHEME_SLACK:
		paths[n++] = "type";
		paths[n++] = "command";
		paths[n++] = "event.type";
		paths[n++] = "challenge";
		paths[n++] = "event_id";
		break;
	case SCHEME_HMAC:
	case SCHEME_NONE:
	default:
		if (!ep->event_header || !*ep->event_header)
			paths[n++] = ep->event_field && *ep->event_field ? ep->event_field
			                                                 : DEFAULT_EVENT_FIELD;
		break;
	}
	return n;
}

/* The object at `key` in parent, made when absent or not an object. */
static json_object *child_object(json_object *parent, const char *key)
{
	json_object *o = NULL;
	if (json_object_object_get_ex(parent, key, &o) && json_object_is_type(o, json_type_object))
		return o;
	o = json_object_new_object();
	json_object_object_add(parent, key, o);
	return o;
}

/*
 * A tree of just the fields json_scan found, each with its value (strings)
 * or a value of its type (the rest): all scheme_identify reads, for a
 * fraction of the whole tree's cost.
 */
static json_object *summary_tree(const char *body, const struct json_scan_field *f, size_t n)
{
	json_object *root = json_object_new_object();
	for (size_t i = 0; i < n; i++) {
		if (!f[i].found)
			continue;
		json_object *cur = root;
		const char *p = f[i].path;
		for (;;) {
			const char *dot = strchr(p, '.');
			char *key = xstrndup(p, dot ? (size_t)(dot - p) : strlen(p));
			if (dot) {
				cur = child_object(cur, key);
				free(key);
				p = dot + 1;
				continue;
			}
			switch (f[i].type) {
			case json_type_string:
				json_object_object_add(cur, key,
				                       json_object_new_string_len(body + f[i].off,
				                                                  (int)f[i].len));
				break;
			case json_type_object:
				child_object(cur, key);
				break;
			case json_type_array:
				json_object_object_add(cur, key, json_object_new_array());
				break;
			case json_type_null:
				json_object_object_add(cur, key, NULL);
				break;
			default:
				json_object_object_add(cur, key, json_object_new_boolean(0));
				break;
			}
			free(key);
			break;
		}
	}
	return root;
}

bool scheme_decode(const struct verify_input *in, enum content_kind kind, json_object **root,
                   struct body_summary *sum, char *err, size_t errlen)
{
	const char *body = (const char *)in->body;
	size_t len = body ? in->body_len : 0;

	*root = NULL;
	if (sum)
		memset(sum, 0, sizeof(*sum));
	if (!body)
		body = "";
	if (kind == CONTENT_JSON && sum) {
		const char *paths[JSON_SCAN_MAX_FIELDS];
		struct json_scan_field fields[JSON_SCAN_MAX_FIELDS];
		size_t n = identity_paths(in->ep, paths);
		memset(fields, 0, sizeof(fields));
		for (size_t i = 0; i < n; i++)
			fields[i].path = paths[i];
		struct json_scan scan = { .fields = fields, .nfields = n };
		enum json_scan_result r = json_scan(body, len, &scan);
		if (r != JSON_SCAN_OK)
			return fail(err, errlen, json_scan_error(r));
		if (!scan.need_tree) {
			*root = summary_tree(body, fields, n);
			sum->summary = true;
			sum->big_numbers = scan.big_numbers;
			return true;
		}
	}
	if (kind == CONTENT_JSON) {
		*root = payload_parse_json(body, len, err, errlen);
	} else if (kind == CONTENT_FORM && in->ep->scheme == SCHEME_GITHUB) {
		/* Gitea and Forgejo: the JSON is in the `payload` field. */
		*root = payload_parse_form(body, len, "payload", false, err, errlen);
	} else if (kind == CONTENT_FORM && in->ep->scheme == SCHEME_SLACK) {
		/* Interactivity sends JSON in `payload`; slash commands send
		 * the fields themselves. */
		*root = payload_parse_form(body, len, "payload", true, err, errlen);
	} else {
		return fail(err, errlen, "unsupported content type");
	}
	return *root != NULL;
}

/* Takes `name` as the event if it passes the name rule of README "Routing: hooks.d". */
static bool set_event(struct identity *id, const char *name, size_t len, char *err, size_t errlen)
{
	if (!event_name_valid(name, len))
		return fail(err, errlen, "invalid event name");
	memcpy(id->event, name, len);
	id->event[len] = '\0';
	return true;
}

/* `base` plus ":<suffix>" when suffix is a non-empty string: an empty
 * action would only make a name ending in ':' that no route is named. */
static bool set_event_suffixed(struct identity *id, const char *base, const char *suffix,
                               char *err, size_t errlen)
{
	struct strbuf sb;
	bool ok;

	sb_init(&sb);
	sb_puts(&sb, base);
	if (suffix && *suffix) {
		sb_putc(&sb, ':');
		sb_puts(&sb, suffix);
	}
	ok = set_event(id, sb.buf, sb.len, err, errlen);
	sb_free(&sb);
	return ok;
}

/* A string in the body at `path`: missing and not-a-string are distinct 400s. */
static const char *body_event(json_object *root, const char *path, char *err, size_t errlen)
{
	bool found = false;
	const char *s = payload_get_string(root, path, &found);

	if (!found)
		fail(err, errlen, "event missing");
	else if (!s)
		fail(err, errlen, "event is not a string");
	return s;
}

/* A string in the body at `path`, or NULL when absent or not a string. */
static const char *body_string(json_object *root, const char *path)
{
	bool found = false;
	return payload_get_string(root, path, &found);
}

/* The delivery id goes into logs, the journal and a hook's environment:
 * bounded and free of control characters. Absent or empty: "". */
static bool set_id(struct identity *id, const char *v, char *err, size_t errlen)
{
	size_t n;

	id->id[0] = '\0';
	if (!v)
		return true;
	n = strlen(v);
	if (n > DELIVERY_ID_MAX)
		return fail(err, errlen, "invalid delivery id");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return fail(err, errlen, "invalid delivery id");
	}
	memcpy(id->id, v, n + 1);
	return true;
}

static bool identify_northflank(const struct verify_input *in, json_object *root,
                                struct identity *id, char *err, size_t errlen)
{
	const char *ev = body_event(root, "event", err, errlen);
	const char *hdr;

	if (!ev || !set_event(id, ev, strlen(ev), err, errlen))
		return false;
	hdr = header(in, "X-Northflank-Notification-Integration-Event-Type");
	if (hdr && strcmp(hdr, ev) != 0)
		return fail(err, errlen, "event type header does not match body");
	return set_id(id, header(in, "X-Northflank-Notification-Integration-Event-Id"), err,
	              errlen);
}

static bool identify_github(const struct verify_input *in, json_object *root, struct identity *id,
                            char *err, size_t errlen)
{
	const char *ev = header(in, "X-GitHub-Event");

	if (!ev)
		return fail(err, errlen, "event header missing");
	if (!set_event_suffixed(id, ev, body_string(root, "action"), err, errlen))
		return false;
	return set_id(id, header(in, "X-GitHub-Delivery"), err, errlen);
}

static bool identify_gitlab(const struct verify_input *in, json_object *root, struct identity *id,
                            char *err, size_t errlen)
{
	const char *ev = body_event(root, "object_kind", err, errlen);
	const char *key;

	if (!ev)
		return false;
	if (!set_event_suffixed(id, ev, body_string(root, "object_attributes.action"), err,
	                        errlen))
		return false;
	/* Idempotency-Key stays the same across GitLab's retries; the UUID is
	 * the fallback for older GitLab versions. */
	key = header(in, "Idempotency-Key");
	if (!key || !*key)
		key = header(in, "X-Gitlab-Event-UUID");
	return set_id(id, key, err, errlen);
}

static bool identify_slack(json_object *root, struct identity *id, char *err, size_t errlen)
{
	bool found = false;
	const char *type = payload_get_string(root, "type", &found);

	if (!found) {
		/* A slash command is a form with `command` and no `type`: it
		 * routes as "slash_command" (the command is in HOOK_COMMAND). */
		payload_get_string(root, "command", &found);
		if (!found)
			return fail(err, errlen, "event missing");
		if (!set_event(id, "slash_command", strlen("slash_command"), err, errlen))
			return false;
	} else if (!type) {
		return fail(err, errlen, "event is not a string");
	} else if (strcmp(type, "event_callback") == 0) {
		if (!set_event_suffixed(id, type, body_string(root, "event.type"), err, errlen))
			return false;
	} else {
		if (!set_event(id, type, strlen(type), err, errlen))
			return false;
		if (strcmp(type, "url_verification") == 0) {
			const char *ch = body_string(root, "challenge");
			if (!ch)
				return fail(err, errlen, "challenge missing");
			id->challenge = xstrdup(ch);
		}
	}
	return set_id(id, body_string(root, "event_id"), err, errlen);
}

/* hmac and none: the event from a configured header, else from the body. */
static bool identify_generic(const struct verify_input *in, json_object *root,
                             struct identity *id, char *err, size_t errlen)
{
	const struct endpoint *ep = in->ep;
	const char *ev;

	if (ep->event_header && *ep->event_header) {
		ev = header(in, ep->event_header);
		if (!ev)
			return fail(err, errlen, "event header missing");
	} else {
		const char *path = ep->event_field && *ep->event_field ? ep->event_field
		                                                       : DEFAULT_EVENT_FIELD;
		ev = body_event(root, path, err, errlen);
		if (!ev)
			return false;
	}
	if (!set_event(id, ev, strlen(ev), err, errlen))
		return false;
	if (ep->id_header && *ep->id_header)
		return set_id(id, header(in, ep->id_header), err, errlen);
	return true;
}

bool scheme_identify(const struct verify_input *in, json_object *root, struct identity *id,
                     char *err, size_t errlen)
{
	bool ok = false;

	id->event[0] = '\0';
	id->id[0] = '\0';
	id->challenge = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!root || !json_object_is_type(root, json_type_object))
		return fail(err, errlen, "body is not a JSON object");

	switch (in->ep->scheme) {
	case SCHEME_NORTHFLANK:
		ok = identify_northflank(in, root, id, err, errlen);
		break;
	case SCHEME_GITHUB:
		ok = identify_github(in, root, id, err, errlen);
		break;
	case SCHEME_GITLAB:
		ok = identify_gitlab(in, root, id, err, errlen);
		break;
	case SCHEME_STANDARD: {
		const char *ev = body_event(root, "type", err, errlen);
		ok = ev && set_event(id, ev, strlen(ev), err, errlen) &&
		     set_id(id, standard_header(in, "id"), err, errlen);
		break;
	}
	case SCHEME_STRIPE: {
		const char *ev = body_event(root, "type", err, errlen);
		ok = ev && set_event(id, ev, strlen(ev), err, errlen) &&
		     set_id(id, body_string(root, "id"), err, errlen);
		break;
	}
	case SCHEME_SLACK:
		ok = identify_slack(root, id, err, errlen);
		break;
	case SCHEME_HMAC:
	case SCHEME_NONE:
		ok = identify_generic(in, root, id, err, errlen);
		break;
	default:
		fail(err, errlen, "unknown scheme");
		break;
	}
	if (!ok) {
		/* A failed identification leaves nothing half-set behind. */
		identity_clear(id);
		id->event[0] = '\0';
		id->id[0] = '\0';
	}
	return ok;
}

void identity_clear(struct identity *id)
{
	if (!id)
		return;
	free(id->challenge);
	id->challenge = NULL;
}
