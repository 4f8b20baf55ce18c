/*
 * GitHub webhooks, and Gitea, Forgejo and Gogs in their GitHub-compatible
 * form (README "Senders and verification schemes"): an HMAC-SHA256 of the
 * body in X-Hub-Signature-256 (SHA-1 only with allow_sha1); the event from
 * X-GitHub-Event with the body's action after a colon; form bodies carry
 * the JSON in their `payload` field.
 */
#include "scheme.h"
#include "sigutil.h"
#include "verify.h"

/*
 * The signature as far as the request head decides it, the one place that
 * reads the headers: X-Hub-Signature-256, else X-Hub-Signature where
 * allow_sha1 lets it count; its prefix and hex; a secret. The MAC into
 * sig, its digest into *alg.
 */
static bool github_signature(const struct verify_input *in, enum hmac_alg *alg,
                             unsigned char *sig, char *why, size_t whylen)
{
	const char *v = verify_header(in, "X-Hub-Signature-256");

	/* A present SHA-256 header is never bypassed by a SHA-1 one: that
	 * would let a downgrade through. */
	*alg = HMAC_SHA256;
	if (v)
		return sig_parse_prefixed(in->ep, v, "sha256=", *alg, SIG_HEX, sig, why, whylen);
	v = verify_header(in, "X-Hub-Signature");
	if (!v)
		return verify_fail(why, whylen, "signature header missing");
	if (!in->ep->allow_sha1)
		return verify_fail(why, whylen, "sha1 signature not allowed");
	*alg = HMAC_SHA1;
	return sig_parse_prefixed(in->ep, v, "sha1=", *alg, SIG_HEX, sig, why, whylen);
}

static bool github_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	enum hmac_alg alg;
	unsigned char sig[SIG_MAC_MAX];
	return github_signature(in, &alg, sig, why, whylen);
}

static bool github_verify(const struct verify_input *in, char *why, size_t whylen)
{
	enum hmac_alg alg;
	unsigned char sig[SIG_MAC_MAX];
	return github_signature(in, &alg, sig, why, whylen) &&
	       sig_verify_body(in, alg, sig, why, whylen);
}

static const char *github_header_id(const struct verify_input *in)
{
	return verify_header(in, "X-GitHub-Delivery");
}

static bool github_identify(const struct verify_input *in, json_object *root, struct identity *id,
                            char *err, size_t errlen)
{
	const char *ev = verify_header(in, "X-GitHub-Event");

	if (!ev)
		return verify_fail(err, errlen, "event header missing");
	if (!identity_set_event_suffixed(id, ev, body_string(root, "action"), err, errlen))
		return false;
	return identity_set_id(id, github_header_id(in), err, errlen);
}

const struct scheme scheme_github = {
	.name = "github",
	.keys = (const char *const[]){"allow_sha1", NULL},
	.credential_headers = (const char *const[]){
		"X-Hub-Signature", "X-Hub-Signature-256", "X-Gitea-Signature", "X-Gogs-Signature",
		"X-Forgejo-Signature", NULL,
	},
	.takes_secret = true,
	/* GitHub gives up on an answer after 10 s, and does not resend. */
	.respond_within_ms = 8000,
	/* Gitea and Forgejo: the JSON is in the `payload` field. */
	.form = &(const struct scheme_form){.json_field = "payload", .plain_fields = false},
	.verify_head = github_verify_head,
	.verify = github_verify,
	.body_fields = (const char *const[]){"action", NULL},
	.identify = github_identify,
	.header_id = github_header_id,
};
