/*
 * Northflank notification integrations (README "Senders and verification
 * schemes"): a token header equal to the secret; the event in the body's
 * `event`, which the event-type header must match when it is sent; the
 * delivery id in a header; the integration's id and name become metadata
 * variables.
 */
#include <string.h>

#include "scheme.h"
#include "sigutil.h"
#include "verify.h"

#define NF_HEADER(suffix) "X-Northflank-Notification-Integration-" suffix

static bool northflank_verify(const struct verify_input *in, char *why, size_t whylen)
{
	return sig_verify_token(in, NF_HEADER("Token"), why, whylen);
}

static const char *northflank_header_id(const struct verify_input *in)
{
	return verify_header(in, NF_HEADER("Event-Id"));
}

static bool northflank_identify(const struct verify_input *in, json_object *root,
                                struct identity *id, char *err, size_t errlen)
{
	const char *ev = body_event(root, "event", err, errlen);
	const char *hdr;

	if (!ev || !identity_set_event(id, ev, strlen(ev), err, errlen))
		return false;
	hdr = verify_header(in, NF_HEADER("Event-Type"));
	if (hdr && strcmp(hdr, ev) != 0)
		return verify_fail(err, errlen, "event type header does not match body");
	return identity_set_id(id, northflank_header_id(in), err, errlen);
}

const struct scheme scheme_northflank = {
	.name = "northflank",
	.keys = (const char *const[]){NULL},
	.credential_headers = (const char *const[]){NF_HEADER("Token"), NULL},
	.meta = (const struct scheme_meta[]){
		{NF_HEADER("Id"), "INTEGRATION_ID"},
		{NF_HEADER("Name"), "INTEGRATION_NAME"},
		{NULL, NULL},
	},
	.takes_secret = true,
	.verify_head = northflank_verify,
	.body_fields = (const char *const[]){"event", NULL},
	.identify = northflank_identify,
	.header_id = northflank_header_id,
};
