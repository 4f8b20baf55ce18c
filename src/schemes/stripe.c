/*
 * Stripe (README "Senders and verification schemes"): Stripe-Signature
 * "t=<unix>,v1=<hex>[,v1=<hex>...]", HMAC-SHA256 of "<t>.<body>", the
 * timestamp within the tolerance; the event is the body's `type`, the
 * delivery id its `id`.
 */
#include <string.h>

#include "scheme.h"
#include "sigutil.h"
#include "util.h"
#include "verify.h"

/* The signature header, before the body is read. */
static bool stripe_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v = verify_header(in, "Stripe-Signature");
	return v && *v ? true : verify_fail(why, whylen, "signature header missing");
}

/* Stripe: "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]" over "<t>.<body>". */
static bool stripe_verify(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v = verify_header(in, "Stripe-Signature");
	const char *t = NULL;
	size_t tlen = 0, v1_seen = 0, v1_wellformed = 0;
	struct sig_macs m = {0};
	bool any = false;

	if (!v || !*v)
		return verify_fail(why, whylen, "signature header missing");
	/* First pass: the shape, the timestamp and whether any v1 exists. */
	for (const char *p = v;;) {
		size_t n = strcspn(p, ",");
		const char *eq = memchr(p, '=', n);
		if (!eq || eq == p)
			return verify_fail(why, whylen, "malformed signature header");
		if (eq - p == 1 && p[0] == 't') {
			if (t)
				return verify_fail(why, whylen, "malformed signature header");
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
		return verify_fail(why, whylen, "timestamp missing");
	if (v1_seen == 0)
		return verify_fail(why, whylen, "no v1 signature");
	if (!sig_fresh_and_keyed(in, t, tlen, why, whylen))
		return false;

	struct sig_part parts[] = {{t, tlen}, {".", 1}, {in->body, in->body_len}};
	if (sig_macs_compute(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), &m) < 0) {
		sig_macs_free(&m);
		return verify_fail(why, whylen, "crypto failure");
	}
	for (const char *p = v;;) {
		size_t n = strcspn(p, ",");
		if (n > 3 && memcmp(p, "v1=", 3) == 0) {
			unsigned char sig[32];
			if (sig_hex_decode_exact(p + 3, n - 3, sig, sizeof(sig))) {
				v1_wellformed++;
				any |= sig_macs_match(&m, sig, sizeof(sig));
			}
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	sig_macs_free(&m);
	if (any)
		return true;
	if (v1_wellformed == 0)
		return verify_fail(why, whylen, "malformed signature");
	return verify_fail(why, whylen, "signature mismatch");
}

static bool stripe_identify(const struct verify_input *in, json_object *root, struct identity *id,
                            char *err, size_t errlen)
{
	const char *ev = body_event(root, "type", err, errlen);
	(void)in;
	return ev && identity_set_event(id, ev, strlen(ev), err, errlen) &&
	       identity_set_id(id, body_string(root, "id"), err, errlen);
}

const struct scheme scheme_stripe = {
	.name = "stripe",
	.keys = (const char *const[]){"tolerance", NULL},
	.credential_headers = (const char *const[]){"Stripe-Signature", NULL},
	.takes_secret = true,
	.verify_head = stripe_verify_head,
	.verify = stripe_verify,
	.body_fields = (const char *const[]){"type", "id", NULL},
	.identify = stripe_identify,
};
