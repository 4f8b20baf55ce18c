/*
 * A shared token (README "Senders and verification schemes"): a secret in
 * a request header, by default `Authorization: Bearer <token>` as
 * Alertmanager, Grafana and most CI systems send it; token_header and
 * token_prefix name another header and prefix (an API-key header has
 * none). The event and the delivery id where the endpoint says.
 */
#include <string.h>
#include <strings.h>

#include "scheme.h"
#include "sigutil.h"
#include "util.h"
#include "verify.h"

#define DEFAULT_TOKEN_HEADER "Authorization"
#define DEFAULT_TOKEN_PREFIX "Bearer"

/* token_prefix, else "Bearer" on Authorization and none on another header. */
static const char *token_prefix(const struct endpoint *ep)
{
	if (ep->token_prefix)
		return ep->token_prefix;
	if (!ep->token_header || ascii_casecmp_eq(ep->token_header, DEFAULT_TOKEN_HEADER))
		return DEFAULT_TOKEN_PREFIX;
	return "";
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * v after its prefix (in any case) and the blanks that follow; NULL when v
 * does not start with the prefix. A prefix that ends in a letter or digit
 * is a word, as an HTTP auth-scheme is: "Bearerabc" is not "Bearer abc".
 */
static const char *strip_prefix(const char *v, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncasecmp(v, prefix, n) != 0)
		return NULL;
	v += n;
	if (n && is_alnum(prefix[n - 1]) && *v && !is_space(*v))
		return NULL;
	while (is_space(*v))
		v++;
	return v;
}

/* The prefix is the sender's format, not a secret: only the token itself
 * is compared in constant time. */
static bool token_verify(const struct verify_input *in, char *why, size_t whylen)
{
	const struct endpoint *ep = in->ep;
	const char *v = verify_header(in, ep->token_header ? ep->token_header : DEFAULT_TOKEN_HEADER);
	const char *token;

	if (!v || !*v)
		return verify_fail(why, whylen, "token missing");
	token = strip_prefix(v, token_prefix(ep));
	if (!token)
		return verify_fail(why, whylen, "token prefix missing");
	if (!*token)
		return verify_fail(why, whylen, "token missing");
	return sig_match_secret(ep, token, strlen(token), "token mismatch", why, whylen);
}

const struct scheme scheme_token = {
	.name = "token",
	.keys = (const char *const[]){
		"token_header", "token_prefix", "event_header", "event_field", "id_header", NULL,
	},
	/* The default token_header; an endpoint's own is one too (config_checks.c
	 * makes it the endpoint's signature_header). */
	.credential_headers = (const char *const[]){DEFAULT_TOKEN_HEADER, NULL},
	.takes_secret = true,
	.verify_head = token_verify,
	.body_fields_of = body_fields_configured,
	.identify = identify_configured,
};
