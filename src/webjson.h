/*
 * The admin API's JSON for a delivery (webapi.c), the same whether it
 * comes from the journal or from the memory of recent deliveries
 * (recent.c): a list item, and a delivery in full with its attempts and
 * each hook's outcome. Every string goes through sb_json_str, so that a
 * sender's bytes arrive in the browser as JSON strings and nothing else.
 */
#ifndef HOOKD_WEBJSON_H
#define HOOKD_WEBJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strbuf;
struct journal_entry;
struct journal_attempt;
struct journal_hook;

struct webjson_item {
	const char *endpoint, *id, *event, *state, *status;
	int64_t received_ms;
	int http, attempts;
	int64_t duration_ms;   /* the last attempt's, -1: none */
	int64_t next_retry_ms; /* 0: none */
	bool client_gone;      /* the last attempt's answer never reached its sender */
};
void webjson_item(struct strbuf *sb, const struct webjson_item *it);
/* The delivery's object, left open (the caller adds its fields and '}'):
 * show --json's (journal_json_entry) in the API's words. */
void webjson_entry(struct strbuf *sb, const struct journal_entry *e);
/* An attempt's object, left open inside its "hooks":[ (the caller closes
 * with "]}"); hooks follow with webjson_hook, i counting from 0. */
void webjson_attempt(struct strbuf *sb, const struct journal_attempt *a);
void webjson_hook(struct strbuf *sb, const struct journal_hook *h, size_t i);

#endif
