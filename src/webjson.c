/* The admin API's JSON for a delivery (webjson.h). */
#include "webjson.h"

#include "journal_format.h"
#include "util.h"

void webjson_item(struct strbuf *sb, const struct webjson_item *it)
{
	sb_puts(sb, "{\"endpoint\":");
	sb_json_str_or_null(sb, it->endpoint);
	sb_puts(sb, ",\"id\":");
	sb_json_str_or_null(sb, it->id);
	sb_puts(sb, ",\"event\":");
	sb_json_str_or_null(sb, it->event);
	sb_puts(sb, ",\"state\":");
	sb_json_str_or_null(sb, it->state);
	sb_puts(sb, ",\"received_at\":");
	sb_json_time(sb, it->received_ms);
	sb_printf(sb, ",\"received_ms\":%lld", (long long)it->received_ms);
	if (it->http)
		sb_printf(sb, ",\"http\":%d", it->http);
	else
		sb_puts(sb, ",\"http\":null");
	sb_printf(sb, ",\"client_gone\":%s", it->client_gone ? "true" : "false");
	sb_printf(sb, ",\"attempts\":%d,\"status\":", it->attempts);
	sb_json_str_or_null(sb, it->status);
	if (it->duration_ms >= 0)
		sb_printf(sb, ",\"duration_ms\":%lld", (long long)it->duration_ms);
	else
		sb_puts(sb, ",\"duration_ms\":null");
	sb_puts(sb, ",\"next_retry_at\":");
	sb_json_time(sb, it->next_retry_ms);
	sb_putc(sb, '}');
}

/* Where the API's words differ from show --json's (journal_format.h). */
static const struct journal_json_style api_style = {
	.next_key = "next_retry_at",
	.running = false,
	.body_null_if_binary = true,
	.replay = false,
};

void webjson_entry(struct strbuf *sb, const struct journal_entry *e)
{
	journal_json_entry(sb, e, &api_style);
}

void webjson_attempt(struct strbuf *sb, const struct journal_attempt *a)
{
	journal_json_attempt(sb, a, &api_style);
}

void webjson_hook(struct strbuf *sb, const struct journal_hook *h, size_t i)
{
	journal_json_hook(sb, h, i);
}
