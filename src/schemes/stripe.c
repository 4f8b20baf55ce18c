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

/* One "key=value" entry of the comma-separated header. */
struct stripe_entry {
	const char *key; /* "" when the entry has no '=' or no key */
	size_t keylen;
	const char *value;
	size_t valuelen;
};

/* The entry at *p, *p moved past it (NULL after the last); false when
 * there is none left. */
static bool next_entry(const char **p, struct stripe_entry *e)
{
	if (!*p)
		return false;
	size_t n = strcspn(*p, ",");
	const char *eq = memchr(*p, '=', n);
	e->key = *p;
	e->keylen = eq ? (size_t)(eq - *p) : 0;
	e->value = eq ? eq + 1 : *p + n;
	e->valuelen = eq ? n - e->keylen - 1 : 0;
	*p = (*p)[n] ? *p + n + 1 : NULL;
	return true;
}

static bool entry_is(const struct stripe_entry *e, const char *key)
{
	return e->keylen == strlen(key) && memcmp(e->key, key, e->keylen) == 0;
}

/* A v1 entry's MAC into sig: whether it is one and well formed. */
static bool entry_v1(const struct stripe_entry *e, unsigned char *sig)
{
	return entry_is(e, "v1") && sig_hex_decode_exact(e->value, e->valuelen, sig, 32);
}

/*
 * What the request head decides of "t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]",
 * the one place that reads the header: the shape, one timestamp and fresh,
 * a secret, a well-formed v1 among the entries. The header into *v, the
 * timestamp (signed too) into *t and *tlen.
 */
static bool stripe_check_head(const struct verify_input *in, const char **v, const char **t,
                              size_t *tlen, char *why, size_t whylen)
{
	struct stripe_entry e;
	size_t v1_seen = 0, v1_wellformed = 0;
	unsigned char sig[32];

	*v = verify_header(in, "Stripe-Signature");
	*t = NULL;
	*tlen = 0;
	if (!*v || !**v)
		return verify_fail(why, whylen, "signature header missing");
	for (const char *p = *v; next_entry(&p, &e);) {
		if (e.keylen == 0)
			return verify_fail(why, whylen, "malformed signature header");
		if (entry_is(&e, "t")) {
			if (*t)
				return verify_fail(why, whylen, "malformed signature header");
			*t = e.value;
			*tlen = e.valuelen;
		} else if (entry_is(&e, "v1")) {
			v1_seen++;
			v1_wellformed += entry_v1(&e, sig);
		}
	}
	if (!*t)
		return verify_fail(why, whylen, "timestamp missing");
	if (v1_seen == 0)
		return verify_fail(why, whylen, "no v1 signature");
	if (!sig_fresh_and_keyed(in, *t, *tlen, why, whylen))
		return false;
	if (v1_wellformed == 0)
		return verify_fail(why, whylen, "malformed signature");
	return true;
}

static bool stripe_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v, *t;
	size_t tlen;
	return stripe_check_head(in, &v, &t, &tlen, why, whylen);
}

/* Over "<t>.<body>"; any v1 matching suffices. Every v1 is compared,
 * whichever matched. */
static bool stripe_verify(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v, *t;
	size_t tlen;
	struct stripe_entry e;
	struct sig_macs m = {0};
	unsigned char sig[32];
	bool any = false;

	if (!stripe_check_head(in, &v, &t, &tlen, why, whylen))
		return false;
	struct sig_part parts[] = {{t, tlen}, {".", 1}, {in->body, in->body_len}};
	if (sig_macs_compute(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), &m) < 0) {
		sig_macs_free(&m);
		return verify_fail(why, whylen, "crypto failure");
	}
	for (const char *p = v; next_entry(&p, &e);) {
		if (entry_v1(&e, sig))
			any |= sig_macs_match(&m, sig, sizeof(sig));
	}
	sig_macs_free(&m);
	return any ? true : verify_fail(why, whylen, "signature mismatch");
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
