/*
 * Standard Webhooks, and Svix under its first header names (README
 * "Senders and verification schemes"): "v1,<base64>" HMAC-SHA256 of
 * id.timestamp.body under a whsec_ base64 key, the timestamp within the
 * tolerance; the event is the body's `type`, the delivery id the id header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "scheme.h"
#include "crypto.h"
#include "sigutil.h"
#include "util.h"
#include "verify.h"


/*
 * Standard Webhooks' three headers, or Svix's (`svix-id`, `svix-timestamp`,
 * `svix-signature`: the same scheme under its first names, which senders
 * built on Svix still send). One family or the other, never a mix: the
 * webhook-* one when it has a signature, else svix-*.
 */
static const char *standard_header(const struct verify_input *in, const char *which)
{
	char name[32];
	const char *family =
		verify_header(in, "webhook-signature") || !verify_header(in, "svix-signature")
			? "webhook-"
			: "svix-";
	snprintf(name, sizeof(name), "%s%s", family, which);
	return verify_header(in, name);
}

/* The next "v1,<base64>" entry of the space-separated list at *p, *p
 * moved past it: 1 with its MAC in sig, 0 when it is malformed, -1 at the
 * list's end. Entries of other versions are skipped. */
static int next_v1(const char **p, unsigned char *sig)
{
	const char *q = *p;

	for (;;) {
		q += strspn(q, " ");
		if (!*q) {
			*p = q;
			return -1;
		}
		const char *entry = q;
		size_t n = strcspn(q, " ");
		q += n;
		if (n > 3 && memcmp(entry, "v1,", 3) == 0) {
			*p = q;
			return sig_b64_decode_exact(entry + 3, n - 3, sig, 32) ? 1 : 0;
		}
	}
}

/* The request's three headers of one family. */
struct standard_head {
	const char *msgid, *ts, *sigs;
};

/*
 * What the request head decides, the one place that reads the headers:
 * the three there, the timestamp fresh, a secret, and a well-formed v1
 * signature among the entries.
 */
static bool standard_check_head(const struct verify_input *in, struct standard_head *h,
                                char *why, size_t whylen)
{
	unsigned char sig[SIG_MAC_MAX];
	int r;

	h->sigs = standard_header(in, "signature");
	h->msgid = standard_header(in, "id");
	h->ts = standard_header(in, "timestamp");
	if (!h->sigs || !*h->sigs)
		return verify_fail(why, whylen, "signature header missing");
	if (!h->msgid || !*h->msgid)
		return verify_fail(why, whylen, "id header missing");
	if (!h->ts)
		return verify_fail(why, whylen, "timestamp missing");
	if (!sig_fresh_and_keyed(in, h->ts, strlen(h->ts), why, whylen))
		return false;
	const char *p = h->sigs;
	bool v1_seen = false;
	while ((r = next_v1(&p, sig)) == 0)
		v1_seen = true;
	if (r > 0)
		return true;
	return verify_fail(why, whylen, v1_seen ? "malformed signature" : "no v1 signature");
}

static bool standard_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	struct standard_head h;
	return standard_check_head(in, &h, why, whylen);
}

/* Standard Webhooks: id.timestamp.body, signatures "v1,<base64>" separated
 * by spaces; any v1 matching suffices. Every entry is compared, whichever
 * matched. */
static bool standard_verify(const struct verify_input *in, char *why, size_t whylen)
{
	struct standard_head h;
	struct sig_macs m = {0};
	unsigned char sig[SIG_MAC_MAX];
	bool any = false;
	int r;

	if (!standard_check_head(in, &h, why, whylen))
		return false;
	struct sig_part parts[] = {
		{h.msgid, strlen(h.msgid)}, {".", 1}, {h.ts, strlen(h.ts)}, {".", 1},
		{in->body, in->body_len},
	};
	if (sig_macs_compute(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), &m) < 0) {
		sig_macs_free(&m);
		return verify_fail(why, whylen, "crypto failure");
	}
	for (const char *p = h.sigs; (r = next_v1(&p, sig)) >= 0;) {
		if (r > 0)
			any |= sig_macs_match(&m, sig, 32);
	}
	sig_macs_free(&m);
	return any ? true : verify_fail(why, whylen, "signature mismatch");
}

static const char *standard_header_id(const struct verify_input *in)
{
	return standard_header(in, "id");
}

static bool standard_identify(const struct verify_input *in, json_object *root,
                              struct identity *id, char *err, size_t errlen)
{
	const char *ev = body_event(root, "type", err, errlen);
	return ev && identity_set_event(id, ev, strlen(ev), err, errlen) &&
	       identity_set_id(id, standard_header_id(in), err, errlen);
}

/* A key is "whsec_" (optional) then base64 of the key's bytes; the bytes
 * replace the secret in place. */
static bool standard_decode_secret(struct secret *s)
{
	const char *b = (const char *)s->data;
	size_t n = s->len;
	unsigned char *key;
	size_t keylen;

	if (n >= 6 && memcmp(b, "whsec_", 6) == 0) {
		b += 6;
		n -= 6;
	}
	if (!sig_b64_decode_key(b, n, &key, &keylen))
		return false;
	crypto_wipe(s->data, s->len);
	free(s->data);
	s->data = key;
	s->len = keylen;
	return true;
}

const struct scheme scheme_standard = {
	.name = "standard",
	.keys = (const char *const[]){"tolerance", NULL},
	.credential_headers = (const char *const[]){"webhook-signature", "svix-signature", NULL},
	.takes_secret = true,
	.decode_secret = standard_decode_secret,
	.secret_form = "whsec_ + valid base64",
	.verify_head = standard_verify_head,
	.verify = standard_verify,
	.body_fields = (const char *const[]){"type", NULL},
	.identify = standard_identify,
	.header_id = standard_header_id,
};
