/*
 * The scheme registry (src/scheme.h, src/schemes/): what every entry must
 * hold for the rest of hookd to use it without knowing which it is. Each
 * scheme's own behaviour is tested in test_verify.c and test_config.c.
 */
#include <string.h>

#include "check.h"
#include "config.h"
#include "jsonscan.h"
#include "payload.h"
#include "scheme.h"
#include "util.h"

/* The scheme-limited endpoint keys config.c knows. */
static const char *const by_scheme_keys[] = {
	"tolerance",        "allow_sha1",   "signature_header", "algorithm", "encoding",
	"signature_prefix", "event_header", "event_field",      "id_header", "token_header",
	"token_prefix",
};

static bool known_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(by_scheme_keys); i++) {
		if (strcmp(by_scheme_keys[i], key) == 0)
			return true;
	}
	return false;
}

static void test_entries(void)
{
	const struct scheme *s;
	size_t n = 0;

	for (size_t i = 0; (s = scheme_at(i)); i++, n++) {
		const char *name = s->name;
		CHECK(name && *name, "scheme %zu has a name", i);
		if (!name)
			continue;
		CHECK(scheme_by_name(name) == s, "%s: found by its name", name);
		CHECK_STR(scheme_name(s), name, "%s: scheme_name", name);
		CHECK((s->verify || s->verify_head) && s->identify, "%s: verifies and identifies",
		      name);
		/* A scheme that needs the body for its signature says first from
		 * the head whether the signature's headers are there at all. */
		CHECK(!s->verify || s->verify_head, "%s: checks its headers before the body", name);
		/* The token schemes decide from the head alone (no body is read
		 * for a wrong token); the signing ones cannot. */
		bool token = strcmp(name, "northflank") == 0 || strcmp(name, "gitlab") == 0 ||
		             strcmp(name, "token") == 0 || strcmp(name, "basic") == 0 ||
		             strcmp(name, "none") == 0;
		CHECK(scheme_verifies_from_head(s) == token, "%s: verifies from the head: %d", name,
		      token);
		CHECK(!s->body_fields || !s->body_fields_of, "%s: one way to name its fields", name);
		size_t nf = 0;
		while (s->body_fields && s->body_fields[nf])
			nf++;
		CHECK(nf <= JSON_SCAN_MAX_FIELDS, "%s: at most %d body fields", name,
		      JSON_SCAN_MAX_FIELDS);
		CHECK(!s->decode_secret || (s->takes_secret && s->secret_form),
		      "%s: a secret it decodes, and what the error calls it", name);
		/* A challenge goes into a header line as it is. */
		CHECK(!s->challenge || (*s->challenge && !strpbrk(s->challenge, "\r\n")),
		      "%s: a challenge of one line", name);
		CHECK(s->keys, "%s: a key list, if empty", name);
		for (const char *const *k = s->keys; k && *k; k++)
			CHECK(known_key(*k), "%s: key %s is one config.c limits by scheme", name, *k);
		for (const char *const *h = s->credential_headers; h && *h; h++)
			CHECK(header_is_credential(*h, NULL), "%s: %s is a credential", name, *h);
		for (const struct scheme_meta *m = s->meta; m && m->header; m++) {
			CHECK(m->var && strlen(m->var) <= SCHEME_META_VAR_MAX,
			      "%s: %s's variable fits ENV_META_NAME_MAX", name, m->header);
			CHECK(!header_is_credential(m->header, NULL), "%s: metadata %s is no credential",
			      name, m->header);
		}
		for (const char *const *f = s->credential_fields; f && *f; f++) {
			char key[64];
			CHECK(strlen(*f) * 2 + 1 <= sizeof(key) && env_key_normalize(*f, strlen(*f), key) > 0,
			      "%s: credential field %s names a variable delivery.c can drop", name, *f);
		}
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(scheme_at(j)->name, name) != 0, "%s: one entry a name", name);
	}
	CHECK(n > 0, "a registry");
	const struct scheme *slack = scheme_by_name("slack");
	CHECK(slack && slack->credential_fields && strcmp(slack->credential_fields[0], "token") == 0,
	      "slack's legacy verification token is a credential field");
	CHECK(scheme_default() == scheme_by_name("northflank"), "the default is northflank");
	CHECK(scheme_by_name("GitHub") == NULL, "names are exact");
	CHECK(scheme_by_name("") == NULL && scheme_by_name(NULL) == NULL, "no empty name");
	CHECK_STR(scheme_name(NULL), "unknown", "scheme_name(NULL)");
}

static void test_keys(void)
{
	static const struct {
		const char *scheme, *key;
		bool takes;
	} cases[] = {
		{"github", "allow_sha1", true},   {"gitlab", "allow_sha1", false},
		{"standard", "tolerance", true},  {"stripe", "tolerance", true},
		{"slack", "tolerance", true},     {"northflank", "tolerance", false},
		{"hmac", "algorithm", true},      {"none", "algorithm", false},
		{"hmac", "event_field", true},    {"none", "event_field", true},
		{"github", "event_field", false}, {"hmac", "tolerance", false},
		{"token", "token_header", true},  {"token", "token_prefix", true},
		{"token", "event_field", true},   {"token", "id_header", true},
		{"basic", "event_header", true},  {"basic", "token_header", false},
		{"hmac", "token_header", false},  {"none", "token_prefix", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(scheme_takes_key(scheme_by_name(cases[i].scheme), cases[i].key) == cases[i].takes,
		      "%s takes %s", cases[i].scheme, cases[i].key);
}

/* header_is_credential's names, in any case, and names close to them that
 * are no credential (one byte more or less, another byte, the same length
 * as a credential): the filter looks at lengths and first bytes first. */
static void test_credential_headers(void)
{
	static const struct {
		const char *name;
		bool credential;
	} cases[] = {
		{"Authorization", true},
		{"authorization", true},
		{"AUTHORIZATION", true},
		{"Proxy-Authorization", true},
		{"cookie", true},
		{"X-Webhook-Signature", true},
		{"x-webhook-token", true},
		{"X-Webhook-Secret", true},
		{"X-API-KEY", true},
		{"X-Auth-Token", true},
		{"X-Shopify-Hmac-Sha256", true},
		{"X-Twilio-Signature", true},
		{"X-Northflank-Notification-Integration-Token", true},
		{"x-northflank-notification-integration-token", true},
		{"X-Hub-Signature", true},
		{"X-Hub-Signature-256", true},
		{"X-Gitea-Signature", true},
		{"X-Gogs-Signature", true},
		{"X-Forgejo-Signature", true},
		{"X-Gitlab-Token", true},
		{"Webhook-Signature", true},
		{"svix-signature", true},
		{"Stripe-Signature", true},
		{"X-Slack-Signature", true},
		{"X-Signature", true},
		{"x-signature", true},
		{"Host", false},
		{"Content-Type", false},
		{"Content-Length", false},
		{"User-Agent", false},
		{"Cookies", false},
		{"Cooki", false},
		{"Authorisation", false},
		{"Xuthorization", false},
		{"Authorizatio", false},
		{"X-Auth-Tokens", false},
		{"Y-Auth-Token", false},
		{"X-Auth-Tokeo", false},
		{"X-Northflank-Notification-Integration-Event-Type", false},
		{"X-Northflank-Notification-Integration-Event-Id", false},
		{"X-Northflank-Notification-Integration-Id", false},
		{"X-Hub-Signature-25", false},
		{"X-GitHub-Event", false},
		{"X-GitHub-Delivery", false},
		{"X-Gitlab-Event", false},
		{"Stripe-Signatures", false},
		{"webhook-id", false},
		{"X-Slack-Request-Timestamp", false},
		{"", false},
		{"X", false},
		{"A-very-long-header-name-that-is-longer-than-any-credential-header-name-ever-was",
		 false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		CHECK(header_is_credential(cases[i].name, NULL) == cases[i].credential,
		      "%s: credential %d", cases[i].name, cases[i].credential);
	CHECK(!header_is_credential(NULL, NULL) && !header_is_credential(NULL, "X-Sig"),
	      "no name, no credential");
	/* The endpoint's own signature_header, in any case, whatever its length. */
	CHECK(header_is_credential("x-my-sig", "X-My-Sig"), "signature_header, other case");
	CHECK(!header_is_credential("X-My-Sig2", "X-My-Sig"), "signature_header: exact name only");
	CHECK(!header_is_credential("X-My-Si", "X-My-Sig"), "signature_header: not a prefix");
	CHECK(!header_is_credential("X-My-Sig", NULL), "X-My-Sig without signature_header");
	const char *longer = "X-A-Signature-Header-Longer-Than-Sixty-Three-Bytes-Of-Header-Name-1";
	CHECK(header_is_credential("x-a-signature-header-longer-than-sixty-three-bytes-of-header-name-1",
	                           longer),
	      "a long signature_header");
	CHECK(!header_is_credential("Content-Type", longer), "a long signature_header: no other");
}

int main(void)
{
	test_entries();
	test_keys();
	test_credential_headers();
	return check_done("scheme");
}
