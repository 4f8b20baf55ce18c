/*
 * Fuzz target: every verification scheme's header parsing and the body
 * decoding that follows it (README "Senders and verification schemes"): verify_credentials,
 * content_type_classify, scheme_decode and scheme_identify.
 *
 * Input layout:
 *   byte 0: bits 0-2 the scheme (scheme_at; 8 more when byte 1's
 *           algorithm bits are 3, which is sha256 again, modulo the
 *           count), bit 3 which clock ("now" is
 *           the Standard Webhooks vector's time, or Slack's), bit 4 an
 *           empty secret first in the rotation list, bit 5 no secret at
 *           all, bit 6 sign the request here, bit 7 allow_sha1
 *   byte 1: hmac settings: bits 0-1 algorithm (sha256, sha512, sha1),
 *           bit 2 base64, bit 3 signature_prefix "sha256=", bit 4 a custom
 *           signature_header; bit 5 event_header X-Event, bit 6 id_header
 *           X-Delivery, bit 7 event_field data.kind
 *   then header lines and, after an empty line, the body: parsed by
 *   http_parse_head behind a request line, so the headers are exactly what
 *   the server would hand over.
 * With "sign" set, the harness computes the correct credential for the
 * body (with OpenSSL's one-shot HMAC, not verify.c's code) and puts it in
 * the headers, keeping the fuzzer's own timestamps and ids: the accepting
 * paths are reached too, and must accept. Checked besides crashes: a
 * reason for every rejection that never holds a secret; a signed request
 * with a fresh timestamp verifies; an identified event passes the name
 * rule and the delivery id is at most 255 bytes without control bytes.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "http.h"
#include "util.h"
#include "verify.h"

#define NOW_STANDARD 1614265330 /* signature-vectors.json, standard-webhooks */
#define NOW_SLACK 1531420618    /* signature-vectors.json, slack */
#define TOLERANCE_MS (5 * 60 * 1000)

static const char secret_github[] = "It's a Secret to Everybody";
static const char secret_slack[] = "8f742231b10e8888abcd99yyyzzz85a5";
static const char secret_whsec[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char secret_basic[] = "alice:It's a Secret to Everybody";
static const char secret_basic2[] = "bob:8f742231b10e8888abcd99yyyzzz85a5";
static unsigned char key_standard[32];
static size_t key_standard_len;

/* HOOKD_FUZZ_VERBOSE=1: say what became of each input (for corpus work). */
static bool verbose;

static void setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	verbose = getenv("HOOKD_FUZZ_VERBOSE") != NULL;
	const char *b64 = secret_whsec + 6;
	int n = EVP_DecodeBlock(key_standard, (const unsigned char *)b64, (int)strlen(b64));
	FUZZ_ASSERT(n == 24);
	key_standard_len = 24;
}

static struct secret text_secret(const char *s)
{
	return (struct secret){.data = (unsigned char *)s, .len = strlen(s)};
}

static const char *req_header(void *ctx, const char *name)
{
	return http_header_get(ctx, name);
}

/* Sets a header as a client would send it: the head is written out again
 * with "name: value" in place of the lines of that name, and parsed anew,
 * so the request is laid out as the server's parser lays it out (a value
 * right after its name, http_header_get counts on it). */
static void set_header(struct http_request *req, const char *name, const char *value)
{
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "POST /hook HTTP/1.1\r\n");
	bool done = false;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!ascii_casecmp_eq(h->name, name))
			sb_printf(&sb, "%s: %s\r\n", h->name, h->value);
		else if (!done)
			sb_printf(&sb, "%s: %s\r\n", name, value);
		done |= ascii_casecmp_eq(h->name, name);
	}
	if (!done)
		sb_printf(&sb, "%s: %s\r\n", name, value);
	sb_puts(&sb, "\r\n");
	free(req->headers); /* the block that held every string of the head */
	memset(req, 0, sizeof(*req));
	struct http_head head = {0};
	FUZZ_ASSERT(http_parse_head(sb.buf, sb.len, req, &head) == NULL);
	sb_free(&sb);
}

static const EVP_MD *md_of(enum hmac_alg a)
{
	return a == HMAC_SHA512 ? EVP_sha512() : a == HMAC_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* HMAC over a prefix and the body, encoded; a malloc'd string. */
static char *sign(enum hmac_alg alg, enum sig_encoding enc, const struct secret *key,
                  const char *pre, const unsigned char *body, size_t body_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t plen = strlen(pre);
	unsigned char *msg = xmalloc(plen + body_len + 1);
	memcpy(msg, pre, plen);
	memcpy(msg + plen, body, body_len);
	FUZZ_ASSERT(HMAC(md_of(alg), key->data, (int)key->len, msg, plen + body_len, mac, &n));
	free(msg);
	char *s = xmalloc(2 * n + 8);
	if (enc == SIG_BASE64) {
		EVP_EncodeBlock((unsigned char *)s, mac, (int)n);
	} else {
		for (unsigned int i = 0; i < n; i++)
			snprintf(s + 2 * i, 3, "%02x", mac[i]);
	}
	return s;
}

static bool is(const struct endpoint *ep, const char *scheme)
{
	return strcmp(scheme_name(ep->scheme), scheme) == 0;
}

/* Puts the right credential for the body into the request. Returns whether
 * the request should now verify (its timestamp, if any, is fresh). */
static bool sign_request(const struct endpoint *ep, struct http_request *req,
                         const unsigned char *body, size_t len, int64_t now)
{
	const struct secret *key = &ep->secrets[ep->nsecrets - 1];
	char *sig = NULL, *pre = NULL, *value = NULL;
	bool fresh = true;
	char nowbuf[24];
	snprintf(nowbuf, sizeof(nowbuf), "%lld", (long long)now);

	if (is(ep, "token")) {
		char *token = xstrndup((const char *)key->data, key->len);
		value = xasprintf("Bearer %s", token);
		set_header(req, "Authorization", value);
		free(token);
	} else if (is(ep, "basic")) {
		unsigned char b64[128];
		EVP_EncodeBlock(b64, key->data, (int)key->len);
		value = xasprintf("Basic %s", (const char *)b64);
		set_header(req, "Authorization", value);
	} else if (is(ep, "northflank") || is(ep, "gitlab")) {
		char *token = xstrndup((const char *)key->data, key->len);
		set_header(req, is(ep, "gitlab") ? "X-Gitlab-Token"
		                                 : "X-Northflank-Notification-Integration-Token",
		           token);
		free(token);
	} else if (is(ep, "github")) {
		if (ep->allow_sha1 && !http_header_get(req, "X-Hub-Signature-256")) {
			sig = sign(HMAC_SHA1, SIG_HEX, key, "", body, len);
			value = xasprintf("sha1=%s", sig);
			set_header(req, "X-Hub-Signature", value);
		} else {
			sig = sign(HMAC_SHA256, SIG_HEX, key, "", body, len);
			value = xasprintf("sha256=%s", sig);
			set_header(req, "X-Hub-Signature-256", value);
		}
	} else if (is(ep, "hmac")) {
		sig = sign(ep->algorithm, ep->encoding, key, "", body, len);
		value = xasprintf("%s%s", ep->signature_prefix ? ep->signature_prefix : "", sig);
		set_header(req, ep->signature_header ? ep->signature_header : "X-Signature", value);
	} else if (is(ep, "slack")) {
		const char *ts = http_header_get(req, "X-Slack-Request-Timestamp");
		if (!ts) {
			set_header(req, "X-Slack-Request-Timestamp", nowbuf);
			ts = http_header_get(req, "X-Slack-Request-Timestamp");
		}
		fresh = strcmp(ts, nowbuf) == 0;
		pre = xasprintf("v0:%s:", ts);
		sig = sign(HMAC_SHA256, SIG_HEX, key, pre, body, len);
		value = xasprintf("v0=%s", sig);
		set_header(req, "X-Slack-Signature", value);
	} else if (is(ep, "standard")) {
		const char *id = http_header_get(req, "webhook-id");
		const char *ts = http_header_get(req, "webhook-timestamp");
		if (!id || !*id)
			set_header(req, "webhook-id", "msg_fuzz");
		if (!ts)
			set_header(req, "webhook-timestamp", nowbuf);
		id = http_header_get(req, "webhook-id");
		ts = http_header_get(req, "webhook-timestamp");
		fresh = strcmp(ts, nowbuf) == 0;
		pre = xasprintf("%s.%s.", id, ts);
		sig = sign(HMAC_SHA256, SIG_BASE64, key, pre, body, len);
		/* The fuzzer's own entries stay: one matching v1 suffices. */
		const char *old = http_header_get(req, "webhook-signature");
		value = xasprintf("%s%sv1,%s", old ? old : "", old ? " " : "", sig);
		set_header(req, "webhook-signature", value);
	} else if (is(ep, "stripe")) {
		/* t=now first, then the fuzzer's entries minus any t=, then ours. */
		const char *old = http_header_get(req, "Stripe-Signature");
		struct strbuf sb;
		sb_init(&sb);
		sb_printf(&sb, "t=%s", nowbuf);
		for (const char *p = old; p && *p;) {
			size_t n = strcspn(p, ",");
			if (n > 0 && !(n >= 2 && p[0] == 't' && p[1] == '=')) {
				const char *eq = memchr(p, '=', n);
				/* An entry that is not name=value makes the header
				 * malformed however it is signed. */
				if (!eq || eq == p || (eq == p + 1 && p[0] == 't'))
					fresh = false;
				sb_putc(&sb, ',');
				sb_append(&sb, p, n);
			}
			p += n + (p[n] == ',');
		}
		pre = xasprintf("%s.", nowbuf);
		sig = sign(HMAC_SHA256, SIG_HEX, key, pre, body, len);
		sb_printf(&sb, ",v1=%s", sig);
		set_header(req, "Stripe-Signature", sb.buf);
		sb_free(&sb);
	}
	/* none: nothing to sign */
	free(sig);
	free(pre);
	free(value);
	return fresh;
}

static void check_identity(const struct identity *id)
{
	size_t n = strlen(id->event);
	FUZZ_ASSERT(event_name_valid(id->event, n));
	n = strlen(id->id);
	FUZZ_ASSERT(n <= 255);
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)id->id[i] >= 0x20 && id->id[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	setup();
	uint8_t f0 = data[0], f1 = data[1];
	data += 2;
	size -= 2;

	/* The endpoint. */
	struct endpoint ep;
	struct secret secrets[3];
	memset(&ep, 0, sizeof(ep));
	ep.name = "fuzz";
	ep.path = "/hook";
	size_t nschemes = 0;
	while (scheme_at(nschemes))
		nschemes++;
	ep.scheme = scheme_at(((f0 & 7u) + ((f1 & 3) == 3 ? 8u : 0u)) % nschemes);
	ep.tolerance_ms = TOLERANCE_MS;
	ep.allow_sha1 = f0 & 0x80;
	static const enum hmac_alg algs[] = {HMAC_SHA256, HMAC_SHA512, HMAC_SHA1, HMAC_SHA256};
	ep.algorithm = algs[f1 & 3];
	ep.encoding = f1 & 4 ? SIG_BASE64 : SIG_HEX;
	ep.signature_prefix = f1 & 8 ? "sha256=" : NULL;
	ep.signature_header = f1 & 16 ? "X-Hub-Signature-256" : NULL;
	ep.event_header = f1 & 32 ? "X-Event" : NULL;
	ep.id_header = f1 & 64 ? "X-Delivery" : NULL;
	ep.event_field = f1 & 128 ? "data.kind" : NULL;
	ep.secrets = secrets;
	if (f0 & 16)
		secrets[ep.nsecrets++] = (struct secret){.data = (unsigned char *)"", .len = 0};
	if (is(&ep, "standard")) {
		secrets[ep.nsecrets++] = text_secret(secret_github);
		secrets[ep.nsecrets++] = (struct secret){.data = key_standard, .len = key_standard_len};
	} else if (is(&ep, "basic")) {
		secrets[ep.nsecrets++] = text_secret(secret_basic);
		secrets[ep.nsecrets++] = text_secret(secret_basic2);
	} else if (is(&ep, "stripe")) {
		secrets[ep.nsecrets++] = text_secret(secret_github);
		secrets[ep.nsecrets++] = text_secret(secret_whsec);
	} else {
		secrets[ep.nsecrets++] = text_secret(secret_github);
		secrets[ep.nsecrets++] = text_secret(secret_slack);
	}
	if (f0 & 32 || is(&ep, "none"))
		ep.nsecrets = 0;
	int64_t now = f0 & 8 ? NOW_SLACK : NOW_STANDARD;

	/* The request: a request line of ours, the fuzzer's head, its body. */
	static const char line[] = "POST /hook HTTP/1.1\r\n";
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, line);
	sb_append(&sb, (const char *)data, size);
	sb_puts(&sb, "\r\n\r\n");
	size_t end = http_head_end(sb.buf, sb.len);
	size_t have = strlen(line) + size;
	size_t body_len = end < have ? have - end : 0;
	unsigned char *body = xmalloc(body_len ? body_len : 1);
	memcpy(body, sb.buf + end, body_len);
	struct http_request *req = xcalloc(1, sizeof(*req));
	struct http_head head = {0};
	const char *bad = http_parse_head(sb.buf, end, req, &head);
	sb_free(&sb);
	if (bad)
		goto out;

	bool expect_ok = false;
	if ((f0 & 64) && ep.nsecrets > 0)
		expect_ok = sign_request(&ep, req, body, body_len, now);

	struct verify_input in = {
		.ep = &ep, .header = req_header, .ctx = req,
		.body = body, .body_len = body_len, .now = now,
	};
	char why[128];
	bool ok = verify_credentials(&in, why, sizeof(why));
	if (verbose)
		fprintf(stderr, "scheme %s: %s%s\n", scheme_name(ep.scheme), ok ? "verified" : "rejected: ",
		        ok ? "" : why);
	if (ok) {
		FUZZ_ASSERT(is(&ep, "none") || ep.nsecrets > 0);
	} else {
		FUZZ_ASSERT(why[0] != '\0');
		FUZZ_ASSERT(!expect_ok);
		FUZZ_ASSERT(!strstr(why, secret_github) && !strstr(why, secret_slack));
		FUZZ_ASSERT(!strstr(why, secret_whsec) && !strstr(why, secret_basic));
		FUZZ_ASSERT(!strstr(why, secret_basic2));
	}

	/* What the server does next, whether or not this one verified. */
	enum content_kind kind = content_type_classify(http_header_get(req, "Content-Type"));
	json_object *root = NULL;
	char err[256];
	/* The server's way (a summary of the fields, when the scan can) and
	 * the whole tree must identify a delivery alike. */
	struct body_summary sum;
	json_object *whole = NULL;
	char werr[256] = "";
	bool whole_ok = scheme_decode(&in, kind, &whole, NULL, werr, sizeof(werr));
	bool decoded = scheme_decode(&in, kind, &root, &sum, err, sizeof(err));
	FUZZ_ASSERT(decoded == whole_ok);
	if (!decoded)
		FUZZ_ASSERT(strcmp(err, werr) == 0);
	if (decoded) {
		struct identity wid;
		char e2[256] = "";
		bool wok = scheme_identify(&in, whole, &wid, e2, sizeof(e2));
		struct identity sid;
		char e3[256] = "";
		bool sok = scheme_identify(&in, root, &sid, e3, sizeof(e3));
		FUZZ_ASSERT(wok == sok);
		FUZZ_ASSERT(strcmp(e2, e3) == 0);
		FUZZ_ASSERT(strcmp(wid.event, sid.event) == 0 && strcmp(wid.id, sid.id) == 0);
		FUZZ_ASSERT((wid.challenge == NULL) == (sid.challenge == NULL));
		FUZZ_ASSERT(!wid.challenge || strcmp(wid.challenge, sid.challenge) == 0);
		identity_clear(&wid);
		identity_clear(&sid);
	}
	json_object_put(whole);
	if (decoded) {
		FUZZ_ASSERT(root && json_object_is_type(root, json_type_object));
		struct identity id;
		if (scheme_identify(&in, root, &id, err, sizeof(err))) {
			check_identity(&id);
			if (verbose)
				fprintf(stderr, "  event %s id '%s'%s\n", id.event, id.id,
				        id.challenge ? " (challenge)" : "");
		} else {
			if (verbose)
				fprintf(stderr, "  identify: %s\n", err);
			FUZZ_ASSERT(err[0] != '\0');
			FUZZ_ASSERT(id.challenge == NULL && id.event[0] == '\0' && id.id[0] == '\0');
		}
		identity_clear(&id);
		identity_clear(&id);
	} else {
		FUZZ_ASSERT(root == NULL && err[0] != '\0');
		if (verbose)
			fprintf(stderr, "  decode: %s\n", err);
	}
	json_object_put(root);
out:
	http_request_free(req);
	free(body);
	return 0;
}
