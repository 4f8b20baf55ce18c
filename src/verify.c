/*
 * Verification's front door (README "Senders and verification schemes").
 * verify_credentials() hands the headers and the raw body bytes, never
 * parsed JSON, to the endpoint's scheme, so a request is authenticated
 * before any parser sees it. Decoding and identification follow the
 * scheme entry too; what the entries share for naming an event and a
 * delivery id is here, the crypto in sigutil.c.
 */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "util.h"

#define DEFAULT_EVENT_FIELD "event"
#define DELIVERY_ID_MAX 255
#define INVALID_ID "invalid delivery id"

bool verify_fail(char *buf, size_t len, const char *reason)
{
	if (buf && len)
		str_copy(buf, len, reason);
	return false;
}

const char *verify_header(const struct verify_input *in, const char *name)
{
	return in->header ? in->header(in->ctx, name) : NULL;
}

/* The scheme's check `part` (verify_head or verify) of in; NULL passes. */
static bool verify_part(const struct verify_input *in, bool head, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (!in || !in->ep)
		return verify_fail(why, whylen, "no endpoint");
	if (!in->ep->scheme)
		return verify_fail(why, whylen, "unknown scheme");
	bool (*check)(const struct verify_input *, char *, size_t) =
		head ? in->ep->scheme->verify_head : in->ep->scheme->verify;
	return !check || check(in, why, whylen);
}

bool verify_credentials(const struct verify_input *in, char *why, size_t whylen)
{
	return verify_part(in, true, why, whylen) && verify_part(in, false, why, whylen);
}

bool verify_credentials_head(const struct verify_input *in, char *why, size_t whylen)
{
	return verify_part(in, true, why, whylen);
}

bool verify_credentials_body(const struct verify_input *in, char *why, size_t whylen)
{
	return verify_part(in, false, why, whylen);
}

bool scheme_accepts_form(const struct scheme *s)
{
	return s && s->form;
}

bool scheme_accepts_content(const struct endpoint *ep, enum content_kind kind, size_t body_len)
{
	/* An empty body with a fixed event is decoded as no payload at all,
	 * whatever its type says (curl -X POST sends none, curl -d '' a form). */
	if (body_len == 0 && ep->fixed_event)
		return true;
	return kind == CONTENT_JSON || (kind == CONTENT_FORM && scheme_accepts_form(ep->scheme));
}

/* The body fields scheme_identify reads (README "Senders and verification
 * schemes"); at most JSON_SCAN_MAX_FIELDS. */
static size_t identity_paths(const struct endpoint *ep, const char **paths)
{
	const struct scheme *s = ep->scheme;
	size_t n = 0;

	if (s->body_fields_of)
		return s->body_fields_of(ep, paths);
	while (s->body_fields && s->body_fields[n] && n < JSON_SCAN_MAX_FIELDS) {
		paths[n] = s->body_fields[n];
		n++;
	}
	return n;
}

/* The object at `key` in parent, made when absent or not an object. */
static json_object *child_object(json_object *parent, const char *key)
{
	json_object *o = NULL;
	if (json_object_object_get_ex(parent, key, &o) && json_object_is_type(o, json_type_object))
		return o;
	o = json_object_new_object();
	json_object_object_add(parent, key, o);
	return o;
}

/*
 * A tree of just the fields json_scan found, each with its value (strings)
 * or a value of its type (the rest): all scheme_identify reads, for a
 * fraction of the whole tree's cost.
 */
static json_object *summary_tree(const char *body, const struct json_scan_field *f, size_t n)
{
	json_object *root = json_object_new_object();
	for (size_t i = 0; i < n; i++) {
		if (!f[i].found)
			continue;
		json_object *cur = root;
		const char *p = f[i].path;
		for (;;) {
			const char *dot = strchr(p, '.');
			char *key = xstrndup(p, dot ? (size_t)(dot - p) : strlen(p));
			if (dot) {
				cur = child_object(cur, key);
				free(key);
				p = dot + 1;
				continue;
			}
			switch (f[i].type) {
			case json_type_string:
				json_object_object_add(cur, key,
				                       json_object_new_string_len(body + f[i].off,
				                                                  (int)f[i].len));
				break;
			case json_type_object:
				child_object(cur, key);
				break;
			case json_type_array:
				json_object_object_add(cur, key, json_object_new_array());
				break;
			case json_type_null:
				json_object_object_add(cur, key, NULL);
				break;
			default:
				json_object_object_add(cur, key, json_object_new_boolean(0));
				break;
			}
			free(key);
			break;
		}
	}
	return root;
}

bool scheme_decode(const struct verify_input *in, enum content_kind kind, json_object **root,
                   struct body_summary *sum, char *err, size_t errlen)
{
	const char *body = (const char *)in->body;
	size_t len = body ? in->body_len : 0;
	const struct scheme_form *form = in->ep->scheme->form;

	*root = NULL;
	if (sum)
		memset(sum, 0, sizeof(*sum));
	if (!body)
		body = "";
	if (len == 0 && in->ep->fixed_event) {
		/* README "Configuration": with a fixed event, an empty body is a
		 * delivery with no payload variables. */
		*root = json_object_new_object();
		return true;
	}
	/* Said as such for every kind: an empty form would otherwise be
	 * refused for a field it lacks, far from the cause (curl's
	 * --data @file of a missing file sends nothing). */
	if (len == 0)
		return verify_fail(err, errlen, json_scan_error(JSON_SCAN_EMPTY));
	if (kind == CONTENT_JSON && sum) {
		const char *paths[JSON_SCAN_MAX_FIELDS];
		struct json_scan_field fields[JSON_SCAN_MAX_FIELDS];
		size_t n = identity_paths(in->ep, paths);
		memset(fields, 0, sizeof(fields));
		for (size_t i = 0; i < n; i++)
			fields[i].path = paths[i];
		struct json_scan scan = { .fields = fields, .nfields = n };
		enum json_scan_result r = json_scan(body, len, &scan);
		if (r != JSON_SCAN_OK)
			return verify_fail(err, errlen, json_scan_error(r));
		if (!scan.need_tree) {
			*root = summary_tree(body, fields, n);
			sum->summary = true;
			sum->big_numbers = scan.big_numbers;
			return true;
		}
	}
	if (kind == CONTENT_JSON)
		*root = payload_parse_json(body, len, err, errlen);
	else if (kind == CONTENT_FORM && form)
		*root = payload_parse_form(body, len, form->json_field, form->plain_fields, err,
		                           errlen);
	else
		return verify_fail(err, errlen, "unsupported content type");
	return *root != NULL;
}


/* Takes `name` as the event if it passes the name rule of README "Routing: hooks.d". */
bool identity_set_event(struct identity *id, const char *name, size_t len, char *err,
                        size_t errlen)
{
	if (!event_name_valid(name, len))
		return verify_fail(err, errlen, "invalid event name");
	memcpy(id->event, name, len);
	id->event[len] = '\0';
	return true;
}

/* `base` plus ":<suffix>" when suffix is a non-empty string: an empty
 * action would only make a name ending in ':' that no route is named. */
bool identity_set_event_suffixed(struct identity *id, const char *base, const char *suffix,
                                 char *err, size_t errlen)
{
	struct strbuf sb;
	bool ok;

	sb_init(&sb);
	sb_puts(&sb, base);
	if (suffix && *suffix) {
		sb_putc(&sb, ':');
		sb_puts(&sb, suffix);
	}
	ok = identity_set_event(id, sb.buf, sb.len, err, errlen);
	sb_free(&sb);
	return ok;
}

/* A string in the body at `path`: missing and not-a-string are distinct 400s. */
const char *body_event(json_object *root, const char *path, char *err, size_t errlen)
{
	bool found = false;
	const char *s = payload_get_string(root, path, &found);

	if (!found)
		verify_fail(err, errlen, "event missing");
	else if (!s)
		verify_fail(err, errlen, "event is not a string");
	return s;
}

/* A string in the body at `path`, or NULL when absent or not a string. */
const char *body_string(json_object *root, const char *path)
{
	bool found = false;
	return payload_get_string(root, path, &found);
}

/* The delivery id goes into logs, the journal, a hook's environment and
 * the deliveries page's JSON and URLs: bounded, free of control characters,
 * and UTF-8 (JSON would carry a bad byte as U+FFFD, an id no look-up finds).
 * Absent or empty: "". */
bool identity_set_id(struct identity *id, const char *v, char *err, size_t errlen)
{
	size_t n;

	id->id[0] = '\0';
	if (!v)
		return true;
	n = strlen(v);
	if (n > DELIVERY_ID_MAX)
		return verify_fail(err, errlen, INVALID_ID);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		size_t len = utf8_seq((const unsigned char *)v + i, n - i, NULL);
		if (c < 0x20 || c == 0x7f || len == 0)
			return verify_fail(err, errlen, INVALID_ID);
		i += len - 1;
	}
	memcpy(id->id, v, n + 1);
	return true;
}

void identity_header_id(const struct verify_input *in, struct identity *id)
{
	const struct endpoint *ep = in->ep;
	const char *v = NULL;

	if (ep->scheme && ep->scheme->header_id)
		v = ep->scheme->header_id(in);
	else if (ep->id_header && *ep->id_header)
		v = verify_header(in, ep->id_header);
	if (!identity_set_id(id, v, NULL, 0))
		id->id[0] = '\0';
}

size_t body_fields_configured(const struct endpoint *ep, const char **paths)
{
	if (ep->fixed_event || (ep->event_header && *ep->event_header))
		return 0;
	paths[0] = ep->event_field && *ep->event_field ? ep->event_field : DEFAULT_EVENT_FIELD;
	return 1;
}


/* The event from a configured header, else from the body; with a fixed
 * event neither is read (scheme_identify sets it). */
bool identify_configured(const struct verify_input *in, json_object *root, struct identity *id,
                         char *err, size_t errlen)
{
	const struct endpoint *ep = in->ep;
	const char *ev;

	if (ep->fixed_event) {
		ev = ep->fixed_event;
	} else if (ep->event_header && *ep->event_header) {
		ev = verify_header(in, ep->event_header);
		if (!ev)
			return verify_fail(err, errlen, "event header missing");
	} else {
		const char *path = ep->event_field && *ep->event_field ? ep->event_field
		                                                       : DEFAULT_EVENT_FIELD;
		ev = body_event(root, path, err, errlen);
		if (!ev)
			return false;
	}
	if (!identity_set_event(id, ev, strlen(ev), err, errlen))
		return false;
	if (ep->id_header && *ep->id_header)
		return identity_set_id(id, verify_header(in, ep->id_header), err, errlen);
	return true;
}

bool scheme_identify(const struct verify_input *in, json_object *root, struct identity *id,
                     char *err, size_t errlen)
{
	bool ok;

	id->event[0] = '\0';
	id->id[0] = '\0';
	id->challenge = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!root || !json_object_is_type(root, json_type_object))
		return verify_fail(err, errlen, "body is not a JSON object");

	if (!in->ep->scheme) {
		ok = verify_fail(err, errlen, "unknown scheme");
	} else if (in->ep->fixed_event) {
		/* README "Configuration": the endpoint's event, whatever the body
		 * says. The scheme still gives the delivery id (and Slack's
		 * challenge) from a body it knows; one it does not know is no
		 * error, only a delivery without a sender's id. An id that is
		 * there but unfit stays the 400 it always is. */
		char why[64] = "";
		if (!in->ep->scheme->identify(in, root, id, why, sizeof(why))) {
			identity_clear(id);
			id->id[0] = '\0';
		}
		if (strcmp(why, INVALID_ID) == 0)
			ok = verify_fail(err, errlen, INVALID_ID);
		else
			ok = identity_set_event(id, in->ep->fixed_event, strlen(in->ep->fixed_event),
			                        err, errlen);
	} else {
		ok = in->ep->scheme->identify(in, root, id, err, errlen);
	}
	if (!ok) {
		/* A failed identification leaves nothing half-set behind. */
		identity_clear(id);
		id->event[0] = '\0';
		id->id[0] = '\0';
	}
	return ok;
}

void identity_clear(struct identity *id)
{
	if (!id)
		return;
	free(id->challenge);
	id->challenge = NULL;
}
