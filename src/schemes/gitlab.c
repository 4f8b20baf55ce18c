/*
 * GitLab webhooks (README "Senders and verification schemes"): the secret
 * token in X-Gitlab-Token; the event is object_kind, with the object's
 * action after a colon; the delivery id from Idempotency-Key.
 */
#include "scheme.h"
#include "sigutil.h"
#include "verify.h"

static bool gitlab_verify(const struct verify_input *in, char *why, size_t whylen)
{
	return sig_verify_token(in, "X-Gitlab-Token", why, whylen);
}

/* Idempotency-Key stays the same across GitLab's retries; the UUID is
 * the fallback for older GitLab versions. */
static const char *gitlab_header_id(const struct verify_input *in)
{
	const char *key = verify_header(in, "Idempotency-Key");
	return key && *key ? key : verify_header(in, "X-Gitlab-Event-UUID");
}

static bool gitlab_identify(const struct verify_input *in, json_object *root, struct identity *id,
                            char *err, size_t errlen)
{
	const char *ev = body_event(root, "object_kind", err, errlen);

	if (!ev)
		return false;
	if (!identity_set_event_suffixed(id, ev, body_string(root, "object_attributes.action"), err,
	                                 errlen))
		return false;
	return identity_set_id(id, gitlab_header_id(in), err, errlen);
}

const struct scheme scheme_gitlab = {
	.name = "gitlab",
	.keys = (const char *const[]){NULL},
	.credential_headers = (const char *const[]){"X-Gitlab-Token", NULL},
	.takes_secret = true,
	.verify_head = gitlab_verify,
	.body_fields = (const char *const[]){"object_kind", "object_attributes.action", NULL},
	.identify = gitlab_identify,
	.header_id = gitlab_header_id,
};
