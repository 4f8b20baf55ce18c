/*
 * Verification (README "Senders and verification schemes"): credentials
 * checked against the raw body before it is parsed, then the event name and
 * delivery id taken the way each sender sends them. The front door for the
 * server: what differs by sender is the endpoint's scheme entry (scheme.h).
 * All crypto and compares are libcrypto's (sigutil.h).
 */
#ifndef HOOKD_VERIFY_H
#define HOOKD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"
#include "payload.h"
#include "scheme.h"

/* Header look-up, case-insensitive by name; NULL when absent. */
typedef const char *(*header_fn)(void *ctx, const char *name);

struct verify_input {
	const struct endpoint *ep;
	header_fn header;
	void *ctx;
	const unsigned char *body;
	size_t body_len;
	int64_t now; /* unix seconds, for tolerance */
};

/*
 * Checks the credential. true: verified. false: 401, with a short reason in
 * `why` for the log only ("token missing", "signature mismatch", "timestamp
 * outside tolerance"); the reason never holds a secret or a token, and the
 * HTTP body does not say which.
 */
bool verify_credentials(const struct verify_input *in, char *why, size_t whylen);
/* The same in two steps, as the server takes them: what the request head
 * decides (in->body not read yet; a token scheme's whole check), then,
 * once the head passed, what the body decides (a signature's MAC; the
 * head's checks are run again on the same headers). */
bool verify_credentials_head(const struct verify_input *in, char *why, size_t whylen);
bool verify_credentials_body(const struct verify_input *in, char *why, size_t whylen);

/* Whether the scheme accepts application/x-www-form-urlencoded bodies. */
bool scheme_accepts_form(const struct scheme *s);
/* Whether a body of this kind and length may come to ep (else 415): JSON,
 * a form where the scheme takes one, and any empty body where the
 * endpoint's event is fixed. */
bool scheme_accepts_content(const struct endpoint *ep, enum content_kind kind, size_t body_len);

/* What scheme_decode says of a root that is only a summary. */
struct body_summary {
	bool summary;       /* root holds only the fields scheme_identify reads */
	size_t big_numbers; /* json_scan's count, for payload_parse_scanned */
};

/*
 * Decodes the verified body per the scheme (JSON, or the form rules of
 * README "Senders and verification schemes") into *root. false: 400 with a reason in err.
 *
 * With `sum` set, a JSON body is validated by json_scan and, where it can,
 * *root holds only the fields scheme_identify reads (sum->summary then
 * true): the whole tree is built later, and only when a hook runs
 * (payload_parse_scanned). With sum NULL, *root is always the whole tree.
 */
bool scheme_decode(const struct verify_input *in, enum content_kind kind, json_object **root,
                   struct body_summary *sum, char *err, size_t errlen);

struct identity {
	char event[EVENT_NAME_MAX + 1];
	char id[256];      /* "" when the sender gave none */
	char *challenge;   /* slack url_verification: answer it, run nothing */
};

/*
 * The event name and delivery id per the scheme. false: 400 with the reason
 * ("event missing", "event is not a string", "invalid event name",
 * "event type header does not match body"). A delivery id longer than 255
 * bytes or holding control characters is a 400 too.
 */
bool scheme_identify(const struct verify_input *in, json_object *root, struct identity *id,
                     char *err, size_t errlen);
void identity_clear(struct identity *id);

/* ---- for the scheme entries (src/schemes/) ---- */

/* Writes reason into buf (when there is one) and returns false. */
bool verify_fail(char *buf, size_t len, const char *reason);
/* The request's header `name`, NULL when absent. */
const char *verify_header(const struct verify_input *in, const char *name);

/* Takes `name` as the event if it passes the name rule of README
 * "Routing: hooks.d"; else "invalid event name". */
bool identity_set_event(struct identity *id, const char *name, size_t len, char *err,
                        size_t errlen);
/* `base` plus ":<suffix>" when suffix is a non-empty string. */
bool identity_set_event_suffixed(struct identity *id, const char *base, const char *suffix,
                                 char *err, size_t errlen);
/* The delivery id, v NULL or "" for none; "invalid delivery id" when too
 * long or holding control characters. */
bool identity_set_id(struct identity *id, const char *v, char *err, size_t errlen);
/* The delivery id the request's headers carry (the scheme's id header, or
 * the endpoint's id_header), as identity_set_id takes it, into id->id:
 * for answering and logging a refusal of a verified request that has no
 * identity yet (a body that does not parse, an event that is not valid).
 * Only for a request whose credentials passed; "" when there is none or
 * it is unfit. */
void identity_header_id(const struct verify_input *in, struct identity *id);
/* The string at `path` in the body: "event missing" and "event is not a
 * string" when it is not one. */
const char *body_event(json_object *root, const char *path, char *err, size_t errlen);
/* The string at `path` in the body, or NULL when absent or not a string. */
const char *body_string(json_object *root, const char *path);

/* Schemes whose endpoint says where the event is (event_header, else
 * event_field) and where the id is (id_header): the fields read, and the
 * identification. */
size_t body_fields_configured(const struct endpoint *ep, const char **paths);
bool identify_configured(const struct verify_input *in, json_object *root, struct identity *id,
                         char *err, size_t errlen);

#endif
