/*
 * The scheme registry: the one table of sender schemes (scheme.h), in the
 * order the config's error message lists them (and fuzz_verify counts
 * them), and the look-ups over it. A new scheme is one file in this
 * directory, its extern declaration and its line in the table.
 */
#include <string.h>

#include "scheme.h"
#include "util.h"

extern const struct scheme scheme_northflank;
extern const struct scheme scheme_github;
extern const struct scheme scheme_gitlab;
extern const struct scheme scheme_standard;
extern const struct scheme scheme_stripe;
extern const struct scheme scheme_slack;
extern const struct scheme scheme_hmac;
extern const struct scheme scheme_token;
extern const struct scheme scheme_basic;
extern const struct scheme scheme_none;

static const struct scheme *const schemes[] = {
	&scheme_northflank,
	&scheme_github,
	&scheme_gitlab,
	&scheme_standard,
	&scheme_stripe,
	&scheme_slack,
	&scheme_hmac,
	&scheme_none,
	/* Added later: after the first eight, so the fuzz corpus's scheme
	 * bits keep naming the schemes they did. */
	&scheme_token,
	&scheme_basic,
};

/*
 * Headers that authenticate a request whatever the endpoint's scheme,
 * besides each scheme's own: a signature within a timestamp tolerance is
 * enough to replay a request, so they are listed too.
 */
static const char *const credential_headers[] = {
	"Authorization",
	"Proxy-Authorization",
	"Cookie",
	"X-Webhook-Signature",
	"X-Webhook-Token",
	"X-Webhook-Secret",
	"X-Api-Key",
	"X-Auth-Token",
	"X-Shopify-Hmac-Sha256",
	"X-Twilio-Signature",
	NULL,
};

const struct scheme *scheme_at(size_t i)
{
	return i < ARRAY_SIZE(schemes) ? schemes[i] : NULL;
}

const struct scheme *scheme_default(void)
{
	return &scheme_northflank;
}

const struct scheme *scheme_by_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(schemes); i++) {
		if (strcmp(schemes[i]->name, name) == 0)
			return schemes[i];
	}
	return NULL;
}

const char *scheme_name(const struct scheme *s)
{
	return s ? s->name : "unknown";
}

bool scheme_verifies_from_head(const struct scheme *s)
{
	return s && !s->verify;
}

bool scheme_takes_key(const struct scheme *s, const char *key)
{
	for (const char *const *k = s->keys; k && *k; k++) {
		if (strcmp(*k, key) == 0)
			return true;
	}
	return false;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether the NULL-terminated list names the header (len bytes, first
 * byte in lower case: first), in any case. Every header of every request
 * is looked up here, twice with a journal, against some twenty names, most
 * of them beginning with "X-": the first byte and the length turn nearly
 * all of them away before a whole comparison. */
static bool listed(const char *const *list, const char *name, size_t len, char first)
{
	for (; list && *list; list++) {
		if (lower(**list) == first && strlen(*list) == len &&
		    ascii_casecmp_eq(name, *list))
			return true;
	}
	return false;
}

bool header_is_credential(const char *name, const char *signature_header)
{
	if (!name)
		return false;
	size_t len = strlen(name);
	char first = lower(name[0]);
	if (listed(credential_headers, name, len, first))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (listed(schemes[i]->credential_headers, name, len, first))
			return true;
	}
	return signature_header && ascii_casecmp_eq(name, signature_header);
}
