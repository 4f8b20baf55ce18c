/*
 * Sender schemes (README "Senders and verification schemes"): everything
 * hookd knows of one kind of sender, in one table entry a scheme. Each
 * entry is defined in a file of its own under src/schemes/ and listed in
 * src/schemes/registry.c; the rest of hookd asks the entry, never which
 * scheme it is. Adding a scheme is one new file and one line of the table.
 */
#ifndef HOOKD_SCHEME_H
#define HOOKD_SCHEME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct endpoint;
struct identity;
struct json_object;
struct secret;
struct verify_input;

/* A metadata header of the sender and the variable its value becomes
 * (under the env prefix); the variable at most SCHEME_META_VAR_MAX bytes,
 * as config.h's ENV_META_NAME_MAX counts on (and hookd's own, EVENT to
 * RECEIVED_AT, are shorter). */
struct scheme_meta {
	const char *header;
	const char *var;
};
#define SCHEME_META_VAR_MAX (sizeof("INTEGRATION_NAME") - 1)

/* How an application/x-www-form-urlencoded body becomes the JSON tree. */
struct scheme_form {
	const char *json_field; /* the field whose value is the JSON document */
	bool plain_fields;      /* without it, the fields themselves are the object */
};

struct scheme {
	const char *name; /* the value of the `scheme` key */
	/* The scheme-limited endpoint keys (config.c marks which those are)
	 * that this scheme takes; NULL-terminated. */
	const char *const *keys;
	/* Request headers that authenticate it: never journaled, never given
	 * to a hook (header_is_credential); NULL-terminated. */
	const char *const *credential_headers;
	/* Top-level body fields that carry a credential (Slack's legacy
	 * verification token): never a variable; NULL-terminated, or NULL.
	 * The raw body (stdin, the journal) still holds them. */
	const char *const *credential_fields;
	/* Headers that become metadata variables; {NULL, NULL}-terminated, or NULL. */
	const struct scheme_meta *meta;
	/* The WWW-Authenticate value of its 401 (RFC 9110 11.6.1), for a
	 * scheme whose senders answer a challenge; NULL: none. */
	const char *challenge;
	bool takes_secret; /* false: an endpoint of this scheme has none */
	/* The default respond_within (config.h delivery_opts): a little
	 * under how long its senders wait for an answer; 0: off. */
	int64_t respond_within_ms;
	/* Turns a configured secret into the key, in place; NULL: the secret's
	 * bytes are the key. secret_form says what it takes, for the error. */
	bool (*decode_secret)(struct secret *s);
	const char *secret_form;
	const struct scheme_form *form; /* NULL: JSON bodies only */
	/* The credential check of verify_credentials(), same contract, in
	 * two parts. verify_head: everything the request head decides alone,
	 * run before any body byte is read (in->body NULL): a token scheme's
	 * whole check; for a signing scheme all but the MAC (the headers, the
	 * signature's prefix and encoding, a fresh timestamp, a secret);
	 * NULL: nothing. verify: the rest, with the body (the MAC), reading
	 * the headers through the same code as verify_head; NULL when the head
	 * decides the credentials whole (scheme_verifies_from_head). */
	bool (*verify_head)(const struct verify_input *in, char *why, size_t whylen);
	bool (*verify)(const struct verify_input *in, char *why, size_t whylen);
	/* The body fields identify() reads, for json_scan: body_fields, or
	 * where they depend on the endpoint, what body_fields_of gives. */
	const char *const *body_fields;
	size_t (*body_fields_of)(const struct endpoint *ep, const char **paths);
	/* The event name and delivery id, as scheme_identify() documents;
	 * root is a JSON object. */
	bool (*identify)(const struct verify_input *in, struct json_object *root,
	                 struct identity *id, char *err, size_t errlen);
	/* The delivery id header identify() reads, its value unchecked; NULL:
	 * the id is in the body (stripe, slack), or the endpoint's id_header
	 * names it (the configured schemes). For a refusal after the
	 * credentials passed, before identify() could run. */
	const char *(*header_id)(const struct verify_input *in);
};

/* The registry: NULL when no scheme has that name. */
const struct scheme *scheme_by_name(const char *name);
/* The i-th scheme in the table's order, NULL past the last. */
const struct scheme *scheme_at(size_t i);
/* An endpoint's scheme when its section names none. */
const struct scheme *scheme_default(void);
/* s's name; "unknown" for NULL. */
const char *scheme_name(const struct scheme *s);
/* Whether s's credentials are checked whole from the request head. */
bool scheme_verifies_from_head(const struct scheme *s);
/* Whether s takes the scheme-limited endpoint key `key`. */
bool scheme_takes_key(const struct scheme *s, const char *key);

/*
 * Whether a request header carries a credential (Authorization, Cookie,
 * a token or signature header of any scheme, or the endpoint's own
 * signature_header): never stored, never passed to a hook.
 */
bool header_is_credential(const char *name, const char *signature_header);

#endif
