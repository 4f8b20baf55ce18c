/*
 * The scheme registry: the one table of sender schemes (scheme.h), in the
 * order the config's error message lists them (and fuzz_verify counts
 * them), and the look-ups over it. A new scheme is one file in this
 * directory, its extern declaration and its line in the table.
 */
#include <pthread.h>
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

/*
 * Every header of every request is looked up here, twice with a journal
 * (what a hook gets, what the journal keeps), against the twenty-odd names
 * of the lists above, most of them beginning with "X-". So the names are
 * indexed by length once, and a header is compared with the few of its own
 * length only. A name longer than the index holds (none today) sends every
 * look-up the slow way, through the lists themselves.
 */
#define CREDENTIAL_LEN_MAX 63
#define CREDENTIAL_NAMES_MAX 64

static struct {
	const char *names[CREDENTIAL_NAMES_MAX]; /* by length, shortest first */
	unsigned char first[CREDENTIAL_NAMES_MAX]; /* each one's first byte, lower case */
	/* names of length n: names[start[n]] up to names[start[n + 1]] */
	unsigned char start[CREDENTIAL_LEN_MAX + 2];
	bool unindexed; /* a name the index cannot hold: no index */
} credential_index;
static pthread_once_t credential_index_once = PTHREAD_ONCE_INIT;

static void index_list(const char *const *list, size_t *count, size_t len)
{
	for (; list && *list; list++) {
		size_t n = strlen(*list);
		if (n > CREDENTIAL_LEN_MAX || *count == CREDENTIAL_NAMES_MAX) {
			credential_index.unindexed = true;
			return;
		}
		if (n != len)
			continue;
		credential_index.names[*count] = *list;
		credential_index.first[*count] = (unsigned char)lower(**list);
		(*count)++;
	}
}

static void build_credential_index(void)
{
	size_t count = 0;
	for (size_t len = 0; len <= CREDENTIAL_LEN_MAX && !credential_index.unindexed; len++) {
		credential_index.start[len] = (unsigned char)count;
		index_list(credential_headers, &count, len);
		for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
			index_list(schemes[i]->credential_headers, &count, len);
	}
	credential_index.start[CREDENTIAL_LEN_MAX + 1] = (unsigned char)count;
}

static bool listed(const char *const *list, const char *name)
{
	for (; list && *list; list++) {
		if (ascii_casecmp_eq(name, *list))
			return true;
	}
	return false;
}

static bool listed_anywhere(const char *name)
{
	if (listed(credential_headers, name))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		if (listed(schemes[i]->credential_headers, name))
			return true;
	}
	return false;
}

bool header_is_credential(const char *name, const char *signature_header)
{
	if (!name)
		return false;
	if (signature_header && ascii_casecmp_eq(name, signature_header))
		return true;
	pthread_once(&credential_index_once, build_credential_index);
	if (credential_index.unindexed)
		return listed_anywhere(name);
	size_t len = strlen(name);
	if (len > CREDENTIAL_LEN_MAX)
		return false;
	unsigned char first = (unsigned char)lower(name[0]);
	for (size_t i = credential_index.start[len]; i < credential_index.start[len + 1]; i++) {
		if (credential_index.first[i] == first &&
		    ascii_casecmp_eq(name, credential_index.names[i]))
			return true;
	}
	return false;
}
