/* The admin API's JSON for a delivery (webjson.h). */
#include "webjson.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "util.h"

void webjson_str_or_null(struct strbuf *sb, const char *s)
{
	if (s)
		sb_json_str(sb, s, strlen(s));
	else
		sb_puts(sb, "null");
}

/* A time as RFC 3339 text; 0 is null. */
void webjson_time(struct strbuf *sb, int64_t ms)
{
	if (ms <= 0) {
		sb_puts(sb, "null");
		return;
	}
	char t[40];
	format_rfc3339_ms(ms, t, sizeof(t));
	sb_printf(sb, "\"%s\"", t);
}

void webjson_item(struct strbuf *sb, const struct webjson_item *it)
{
	sb_puts(sb, "{\"endpoint\":");
	webjson_str_or_null(sb, it->endpoint);
	sb_puts(sb, ",\"id\":");
	webjson_str_or_null(sb, it->id);
	sb_puts(sb, ",\"event\":");
	webjson_str_or_null(sb, it->event);
	sb_puts(sb, ",\"state\":");
	webjson_str_or_null(sb, it->state);
	sb_puts(sb, ",\"received_at\":");
	webjson_time(sb, it->received_ms);
	sb_printf(sb, ",\"received_ms\":%lld", (long long)it->received_ms);
	if (it->http)
		sb_printf(sb, ",\"http\":%d", it->http);
	else
		sb_puts(sb, ",\"http\":null");
	sb_printf(sb, ",\"attempts\":%d,\"status\":", it->attempts);
	webjson_str_or_null(sb, it->status);
	if (it->duration_ms >= 0)
		sb_printf(sb, ",\"duration_ms\":%lld", (long long)it->duration_ms);
	else
		sb_puts(sb, ",\"duration_ms\":null");
	sb_puts(sb, ",\"next_retry_at\":");
	webjson_time(sb, it->next_retry_ms);
	sb_putc(sb, '}');
}

static bool is_utf8(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_seq(p + i, n - i, &cp);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* "Name: value" lines as [{"name":..., "value":...}]. */
static void put_headers(struct strbuf *sb, const char *lines)
{
	sb_putc(sb, '[');
	bool first = true;
	for (const char *p = lines ? lines : ""; *p;) {
		size_t n = strcspn(p, "\n");
		const char *colon = memchr(p, ':', n);
		if (colon) {
			const char *v = colon + 1;
			while (v < p + n && (*v == ' ' || *v == '\t'))
				v++;
			sb_puts(sb, first ? "{\"name\":" : ",{\"name\":");
			sb_json_str(sb, p, (size_t)(colon - p));
			sb_puts(sb, ",\"value\":");
			sb_json_str(sb, v, (size_t)(p + n - v));
			sb_putc(sb, '}');
			first = false;
		}
		p += n;
		if (*p)
			p++;
	}
	sb_putc(sb, ']');
}

void webjson_entry(struct strbuf *sb, const struct journal_entry *e)
{
	sb_puts(sb, "{\"endpoint\":");
	webjson_str_or_null(sb, e->endpoint);
	sb_puts(sb, ",\"id\":");
	webjson_str_or_null(sb, e->delivery_id);
	sb_puts(sb, ",\"event\":");
	webjson_str_or_null(sb, e->event);
	sb_printf(sb, ",\"state\":\"%s\",\"mode\":\"%s\",\"attempts\":%d",
	          delivery_state_name(e->state), e->async ? "async" : "sync", e->attempts);
	sb_puts(sb, ",\"received_at\":");
	webjson_time(sb, e->received_ms);
	sb_puts(sb, ",\"updated_at\":");
	webjson_time(sb, e->updated_ms);
	sb_puts(sb, ",\"next_retry_at\":");
	webjson_time(sb, e->state == DSTATE_RETRY_WAIT ? e->next_due_ms : 0);
	sb_puts(sb, ",\"remote_addr\":");
	webjson_str_or_null(sb, e->remote_addr);
	if (e->http)
		sb_printf(sb, ",\"http\":%d", e->http);
	else
		sb_puts(sb, ",\"http\":null");
	sb_puts(sb, ",\"status\":");
	webjson_str_or_null(sb, e->status);
	sb_puts(sb, ",\"error\":");
	webjson_str_or_null(sb, e->error);
	sb_puts(sb, ",\"headers\":");
	put_headers(sb, e->headers);
	sb_printf(sb, ",\"body_bytes\":%lld,\"body_kept\":%zu,\"body_cut\":%s",
	          (long long)e->body_len, e->body_kept, e->body_cut ? "true" : "false");
	if (is_utf8(e->body, e->body_kept)) {
		sb_puts(sb, ",\"body\":");
		sb_json_str(sb, (const char *)e->body, e->body_kept);
		return;
	}
	char *b64 = xmalloc(4 * ((e->body_kept + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, e->body, (int)e->body_kept);
	sb_puts(sb, ",\"body\":null,\"body_base64\":\"");
	sb_puts(sb, b64);
	sb_putc(sb, '"');
	free(b64);
}

void webjson_attempt(struct strbuf *sb, const struct journal_attempt *a)
{
	sb_printf(sb, "{\"attempt\":%d,\"started_at\":", a->attempt);
	webjson_time(sb, a->started_ms);
	sb_puts(sb, ",\"finished_at\":");
	webjson_time(sb, a->finished_ms);
	if (a->finished_ms)
		sb_printf(sb, ",\"ms\":%lld", (long long)(a->finished_ms - a->started_ms));
	else
		sb_puts(sb, ",\"ms\":null");
	if (a->http)
		sb_printf(sb, ",\"http\":%d", a->http);
	else
		sb_puts(sb, ",\"http\":null");
	sb_puts(sb, ",\"status\":");
	webjson_str_or_null(sb, a->status);
	sb_puts(sb, ",\"error\":");
	webjson_str_or_null(sb, a->error);
	sb_puts(sb, ",\"hooks\":[");
}

void webjson_hook(struct strbuf *sb, const struct journal_hook *h, size_t i)
{
	sb_puts(sb, i ? ",{\"hook\":" : "{\"hook\":");
	webjson_str_or_null(sb, h->hook);
	if (h->exit_code >= 0)
		sb_printf(sb, ",\"exit\":%d", h->exit_code);
	else
		sb_puts(sb, ",\"exit\":null");
	sb_puts(sb, ",\"signal\":");
	webjson_str_or_null(sb, h->signal && *h->signal ? h->signal : NULL);
	sb_printf(sb, ",\"ms\":%lld,\"error\":", (long long)h->ms);
	webjson_str_or_null(sb, h->error);
	sb_puts(sb, ",\"output\":");
	if (h->output)
		sb_json_str(sb, h->output, h->output_len);
	else
		sb_puts(sb, "null");
	sb_putc(sb, '}');
}
