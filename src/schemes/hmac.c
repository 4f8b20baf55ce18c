/*
 * Generic HMAC (README "Senders and verification schemes"): the MAC of the
 * raw body in a configured header, with the configured digest, encoding
 * and prefix; the event and the delivery id where the endpoint says.
 */
#include "scheme.h"
#include "sigutil.h"
#include "verify.h"

#define DEFAULT_SIGNATURE_HEADER "X-Signature"

static const char *signature_header(const struct endpoint *ep)
{
	return ep->signature_header && *ep->signature_header ? ep->signature_header
	                                                     : DEFAULT_SIGNATURE_HEADER;
}

/* The signature as far as the request head decides it: the header, the
 * configured prefix and encoding, a secret; the MAC into sig. */
static bool hmac_signature(const struct verify_input *in, unsigned char *sig, char *why,
                           size_t whylen)
{
	const struct endpoint *ep = in->ep;
	const char *v = verify_header(in, signature_header(ep));

	if (!v)
		return verify_fail(why, whylen, "signature header missing");
	return sig_parse_prefixed(ep, v, ep->signature_prefix, ep->algorithm, ep->encoding, sig,
	                          why, whylen);
}

static bool hmac_verify_head(const struct verify_input *in, char *why, size_t whylen)
{
	unsigned char sig[SIG_MAC_MAX];
	return hmac_signature(in, sig, why, whylen);
}

static bool hmac_verify(const struct verify_input *in, char *why, size_t whylen)
{
	unsigned char sig[SIG_MAC_MAX];
	return hmac_signature(in, sig, why, whylen) &&
	       sig_verify_body(in, in->ep->algorithm, sig, why, whylen);
}

const struct scheme scheme_hmac = {
	.name = "hmac",
	.keys = (const char *const[]){
		"signature_header", "algorithm", "encoding", "signature_prefix", "event_header",
		"event_field", "id_header", NULL,
	},
	/* The default signature_header; an endpoint's own is one too. */
	.credential_headers = (const char *const[]){DEFAULT_SIGNATURE_HEADER, NULL},
	.takes_secret = true,
	.verify_head = hmac_verify_head,
	.verify = hmac_verify,
	.body_fields_of = body_fields_configured,
	.identify = identify_configured,
};
