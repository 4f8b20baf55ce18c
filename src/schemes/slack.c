/*
 * Slack (README "Senders and verification schemes"): X-Slack-Signature
 * "v0=<hex>", HMAC-SHA256 of "v0:<timestamp>:<body>", the timestamp within
 * the tolerance. Events API callbacks route as event_callback:<type>,
 * slash commands as slash_command, url_verification is answered with its
 * challenge. Forms carry interactivity JSON in `payload`, or are the
 * fields of a slash command themselves. The delivery id is event_id, else
 * trigger_id; the legacy `token` field never becomes a variable.
 */
#include <string.h>

#include "scheme.h"
#include "sigutil.h"
#include "util.h"
#include "verify.h"

/*
 * The signature as far as the request head decides it, the one place that
 * reads the headers: both there, "v0=" and 64 hex digits, the timestamp
 * fresh, a secret. The MAC into sig, the timestamp (signed too) into *ts.
 */
static bool slack_signature(const struct verify_input *in, const char **ts, unsigned char *sig,
                            char *why, size_t whylen)
{
	const char *v = verify_header(in, "X-Slack-Signature");

	*ts = verify_header(in, "X-Slack-Request-Timestamp");
	if (!v)
		return verify_fail(why, whylen, "signature header missing");
	if (!*ts)
		return verify_fail(why, whylen, "timestamp missing");
	if (strncmp(v, "v0=", 3) != 0)
		return verify_fail(why, whylen, "signature prefix missing");
	if (!sig_hex_decode_exact(v + 3, strlen(v + 3), sig, 32))
		return verify_fail(why, whylen, "malformed signature");
	return sig_fresh_and_keyed(in, *ts, strlen(*ts), why, whylen);
}

static bool slack_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	const char *ts;
	unsigned char sig[32];
	return slack_signature(in, &ts, sig, why, whylen);
}

static bool slack_verify(const struct verify_input *in, char *why, size_t whylen)
{
	const char *ts;
	unsigned char sig[32];

	if (!slack_signature(in, &ts, sig, why, whylen))
		return false;
	struct sig_part parts[] = {
		{"v0:", 3}, {ts, strlen(ts)}, {":", 1}, {in->body, in->body_len},
	};
	return sig_verify_one(in->ep, HMAC_SHA256, parts, ARRAY_SIZE(parts), sig, 32, why, whylen);
}

static bool slack_identify(const struct verify_input *in, json_object *root, struct identity *id,
                           char *err, size_t errlen)
{
	bool found = false;
	(void)in;
	const char *type = payload_get_string(root, "type", &found);

	if (!found) {
		/* A slash command is a form with `command` and no `type`: it
		 * routes as "slash_command" (the command is in HOOK_COMMAND). */
		payload_get_string(root, "command", &found);
		if (!found)
			return verify_fail(err, errlen, "event missing");
		if (!identity_set_event(id, "slash_command", strlen("slash_command"), err, errlen))
			return false;
	} else if (!type) {
		return verify_fail(err, errlen, "event is not a string");
	} else if (strcmp(type, "event_callback") == 0) {
		if (!identity_set_event_suffixed(id, type, body_string(root, "event.type"), err,
		                                 errlen))
			return false;
	} else {
		if (!identity_set_event(id, type, strlen(type), err, errlen))
			return false;
		if (strcmp(type, "url_verification") == 0) {
			const char *ch = body_string(root, "challenge");
			if (!ch)
				return verify_fail(err, errlen, "challenge missing");
			id->challenge = xstrdup(ch);
		}
	}
	/* Slash commands and interactions have no event_id, but a trigger_id
	 * Slack makes for each: as the delivery id it makes a captured one a
	 * duplicate, where a generated id would let it run again for the
	 * whole tolerance. */
	const char *did = body_string(root, "event_id");
	if (!did || !*did)
		did = body_string(root, "trigger_id");
	return identity_set_id(id, did, err, errlen);
}

const struct scheme scheme_slack = {
	.name = "slack",
	.keys = (const char *const[]){"tolerance", NULL},
	.credential_headers = (const char *const[]){"X-Slack-Signature", NULL},
	/* The legacy verification token Slack still puts in every body. */
	.credential_fields = (const char *const[]){"token", NULL},
	.takes_secret = true,
	/* Slack waits 3 s for an answer (and retries a delivery it gave up on). */
	.respond_within_ms = 2500,
	.form = &(const struct scheme_form){.json_field = "payload", .plain_fields = true},
	.verify_head = slack_verify_head,
	.verify = slack_verify,
	.body_fields = (const char *const[]){
		"type", "command", "event.type", "challenge", "event_id", "trigger_id", NULL,
	},
	.identify = slack_identify,
};
