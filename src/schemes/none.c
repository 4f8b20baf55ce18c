/*
 * No verification (README "Senders and verification schemes"): only where
 * a config says `scheme = none`, and then with no secret; the event and
 * the delivery id where the endpoint says.
 */
#include "scheme.h"
#include "verify.h"

static bool none_verify(const struct verify_input *in, char *why, size_t whylen)
{
	(void)in;
	(void)why;
	(void)whylen;
	return true;
}

const struct scheme scheme_none = {
	.name = "none",
	.keys = (const char *const[]){"event_header", "event_field", "id_header", NULL},
	.credential_headers = (const char *const[]){NULL},
	.takes_secret = false,
	.verify_head = none_verify,
	.body_fields_of = body_fields_configured,
	.identify = identify_configured,
};
