/*
 * HTTP Basic authentication (RFC 7617; README "Senders and verification
 * schemes"): `Authorization: Basic base64(user:password)` against the
 * endpoint's secrets, each one `user:password` (a line of secret_file).
 * The pair is compared whole, in constant time, so neither which user nor
 * which part was wrong shows in the time taken. A 401 carries the Basic
 * challenge. The event and the delivery id where the endpoint says.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "scheme.h"
#include "crypto.h"
#include "sigutil.h"
#include "verify.h"

/* A user and a password, both non-empty; the user has no ':' (RFC 7617),
 * the password may. No control characters: no sender can type them. */
static bool basic_decode_secret(struct secret *s)
{
	const unsigned char *colon = memchr(s->data, ':', s->len);

	if (!colon || colon == s->data || (size_t)(colon - s->data) + 1 == s->len)
		return false;
	for (size_t i = 0; i < s->len; i++) {
		if (s->data[i] < 0x20 || s->data[i] == 0x7f)
			return false;
	}
	return true;
}

static bool basic_verify(const struct verify_input *in, char *why, size_t whylen)
{
	const char *v = verify_header(in, "Authorization");
	unsigned char *pair;
	size_t len;
	bool ok;

	if (!v || !*v)
		return verify_fail(why, whylen, "credentials missing");
	/* The auth-scheme is case-insensitive (RFC 9110 11.1). */
	if (strncasecmp(v, "Basic", 5) != 0 || (v[5] != ' ' && v[5] != '\t'))
		return verify_fail(why, whylen, "not Basic credentials");
	v += 5;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!sig_b64_decode_key(v, strlen(v), &pair, &len))
		return verify_fail(why, whylen, "malformed credentials");
	if (!memchr(pair, ':', len))
		ok = verify_fail(why, whylen, "malformed credentials");
	else
		ok = sig_match_secret(in->ep, pair, len, "user or password mismatch", why, whylen);
	crypto_wipe(pair, len);
	free(pair);
	return ok;
}

const struct scheme scheme_basic = {
	.name = "basic",
	.keys = (const char *const[]){"event_header", "event_field", "id_header", NULL},
	.credential_headers = (const char *const[]){"Authorization", NULL},
	.challenge = "Basic realm=\"hookd\", charset=\"UTF-8\"",
	.takes_secret = true,
	.decode_secret = basic_decode_secret,
	.secret_form = "user:password",
	.verify_head = basic_verify,
	.body_fields_of = body_fields_configured,
	.identify = identify_configured,
};
