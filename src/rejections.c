/* The ring of refused requests (rejections.h). */
#include "rejections.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct rejection {
	int64_t at_ms;
	int status;
	char *client, *endpoint, *path, *reason;
};

/* One daemon thread writes and reads it: no lock. */
static struct rejection ring[REJECTIONS_MAX];
static int head; /* where the next goes */
static int count;

/* A field's copy, bounded: a path or reason is the sender's to make long. */
static char *field(const char *s)
{
	return s ? xstrndup(s, strnlen(s, 256)) : NULL;
}

static void clear(struct rejection *r)
{
	free(r->client);
	free(r->endpoint);
	free(r->path);
	free(r->reason);
	memset(r, 0, sizeof(*r));
}

void rejections_add(int status, const char *client, const char *endpoint, const char *path,
                    const char *reason)
{
	struct rejection *r = &ring[head];
	clear(r);
	r->at_ms = now_wall_ms();
	r->status = status;
	r->client = field(client);
	r->endpoint = field(endpoint);
	r->path = endpoint ? NULL : field(path);
	r->reason = field(reason);
	head = (head + 1) % REJECTIONS_MAX;
	if (count < REJECTIONS_MAX)
		count++;
}

void rejections_json(struct strbuf *out, int limit)
{
	int n = limit > 0 && limit < count ? limit : count;
	sb_putc(out, '[');
	for (int i = 0; i < n; i++) {
		const struct rejection *r = &ring[(head - 1 - i + 2 * REJECTIONS_MAX) % REJECTIONS_MAX];
		char t[40];
		format_rfc3339_ms(r->at_ms, t, sizeof(t));
		sb_printf(out, "%s{\"time\":\"%s\",\"at_ms\":%lld,\"http\":%d,\"client\":", i ? "," : "",
		          t, (long long)r->at_ms, r->status);
		sb_json_str_or_null(out, r->client);
		sb_puts(out, ",\"endpoint\":");
		sb_json_str_or_null(out, r->endpoint);
		sb_puts(out, ",\"path\":");
		sb_json_str_or_null(out, r->path);
		sb_puts(out, ",\"reason\":");
		sb_json_str_or_null(out, r->reason);
		sb_putc(out, '}');
	}
	sb_putc(out, ']');
}

int rejections_count(void)
{
	return count;
}

void rejections_cleanup(void)
{
	for (int i = 0; i < REJECTIONS_MAX; i++)
		clear(&ring[i]);
	head = count = 0;
}
