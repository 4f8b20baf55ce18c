#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "version.h"

/* One labeled series of a counter: its label set, already rendered and
 * escaped ("endpoint=\"nf\",status=\"ok\""), and its value. `raw` holds
 * the label values it was made from as given (each NUL-ended, in order)
 * and `code` its number label (or 0), so that a delivery finds its series
 * without rendering and escaping its labels again. */
struct series {
	char *labels;
	char *raw;
	int code;
	uint64_t value;
};

struct family {
	struct series *v;
	size_t n;
};

/* Upper bounds of the hook duration histogram, in milliseconds: from a
 * quick script to the longest time limits people set (deploys, backups). */
static const int64_t duration_bounds_ms[] = {
	10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000, 600000, 1800000,
};

static const char *const hook_outcome_names[MHOOK_NOUTCOMES] = {
	"ok", "failed", "timeout", "signal", "exec_failed", "skipped",
};

static struct {
	struct family deliveries;
	struct family attempts;
	struct family responses;
	struct family rejections;
	struct family hook_runs;
	uint64_t reloads_ok, reloads_failed;
	uint64_t bucket[ARRAY_SIZE(duration_bounds_ms)]; /* not cumulative */
	uint64_t observed;
	int64_t sum_ms;
	int64_t start_wall_ms;
} M;

/* The label values of one count: up to three strings (NULL: "") and a
 * number. */
struct label_values {
	const char *v[3];
	size_t n;
	int code;
};

static bool series_made_from(const struct series *s, const struct label_values *lv)
{
	if (!s->raw || s->code != lv->code)
		return false;
	const char *r = s->raw;
	for (size_t i = 0; i < lv->n; i++) {
		const char *v = lv->v[i] ? lv->v[i] : "";
		if (strcmp(r, v) != 0)
			return false;
		r += strlen(r) + 1;
	}
	return true;
}

/* Counts lv in the series made from the same values; false when there is
 * none yet (the caller renders the labels and calls family_add). */
static bool family_hit(struct family *f, const struct label_values *lv)
{
	for (size_t i = 0; i < f->n; i++) {
		if (series_made_from(&f->v[i], lv)) {
			f->v[i].value++;
			return true;
		}
	}
	return false;
}

static char *raw_values(const struct label_values *lv)
{
	size_t len = 0;
	for (size_t i = 0; i < lv->n; i++)
		len += strlen(lv->v[i] ? lv->v[i] : "") + 1;
	char *raw = xmalloc(len ? len : 1), *at = raw;
	for (size_t i = 0; i < lv->n; i++) {
		const char *v = lv->v[i] ? lv->v[i] : "";
		size_t n = strlen(v) + 1;
		memcpy(at, v, n);
		at += n;
	}
	return raw;
}

/* By the rendered labels: values that render alike (two invalid UTF-8
 * bytes are both U+FFFD) share one series, as they always did. */
static void family_add(struct family *f, const char *labels, const struct label_values *lv)
{
	for (size_t i = 0; i < f->n; i++) {
		if (strcmp(f->v[i].labels, labels) == 0) {
			f->v[i].value++;
			return;
		}
	}
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	f->v[f->n].labels = xstrdup(labels);
	f->v[f->n].raw = lv ? raw_values(lv) : NULL;
	f->v[f->n].code = lv ? lv->code : 0;
	f->v[f->n].value = 1;
	f->n++;
}

static void family_free(struct family *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].labels);
		free(f->v[i].raw);
	}
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

void metrics_start(void)
{
	if (!M.start_wall_ms)
		M.start_wall_ms = now_wall_ms();
}

void metrics_label_value(struct strbuf *sb, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s);
	sb_putc(sb, '"');
	for (size_t i = 0; i < n;) {
		/* Printable ASCII that needs no escape goes in as one run: a
		 * label is made for every delivery and rejection. */
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\' && s[run] != '"')
			run++;
		if (run > i) {
			sb_append(sb, (const char *)s + i, run - i);
			i = run;
			continue;
		}
		if (s[i] == '\\') {
			sb_puts(sb, "\\\\");
		} else if (s[i] == '"') {
			sb_puts(sb, "\\\"");
		} else if (s[i] == '\n') {
			sb_puts(sb, "\\n");
		} else {
			size_t len = utf8_seq(s + i, n - i, NULL);
			if (len == 0) {
				sb_puts(sb, "\xef\xbf\xbd"); /* U+FFFD for one bad byte */
				i++;
				continue;
			}
			sb_append(sb, (const char *)s + i, len);
			i += len;
			continue;
		}
		i++;
	}
	sb_putc(sb, '"');
}

/* An HTTP status into a label, without printf (once a request). */
static void put_code(struct strbuf *sb, int http)
{
	char num[16], *p = num + sizeof(num);
	unsigned v = http < 0 ? 0u : (unsigned)http;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v && p > num);
	sb_append(sb, p, (size_t)(num + sizeof(num) - p));
}

void metrics_response(const char *endpoint, const char *status, int http)
{
	metrics_start();
	const struct label_values lv = {{endpoint, status}, 2, http};
	if (family_hit(&M.responses, &lv))
		return;
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 127);
	sb_puts(&sb, "endpoint=");
	metrics_label_value(&sb, endpoint);
	sb_puts(&sb, ",status=");
	metrics_label_value(&sb, status);
	sb_puts(&sb, ",code=\"");
	put_code(&sb, http);
	sb_putc(&sb, '"');
	family_add(&M.responses, sb.buf, &lv);
	sb_free(&sb);
}

/* endpoint, event and outcome: a delivery's and an attempt's labels. */
static void add_outcome(struct family *f, const char *endpoint, const char *event,
                        const char *outcome)
{
	metrics_start();
	if (!event)
		event = "other";
	const struct label_values lv = {{endpoint, event, outcome}, 3, 0};
	if (family_hit(f, &lv))
		return;
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 127);
	sb_puts(&sb, "endpoint=");
	metrics_label_value(&sb, endpoint);
	sb_puts(&sb, ",event=");
	metrics_label_value(&sb, event);
	sb_puts(&sb, ",outcome=");
	metrics_label_value(&sb, outcome);
	family_add(f, sb.buf, &lv);
	sb_free(&sb);
}

void metrics_delivery(const char *endpoint, const char *event, const char *outcome)
{
	add_outcome(&M.deliveries, endpoint, event, outcome);
}

void metrics_attempt(const char *endpoint, const char *event, const char *outcome)
{
	add_outcome(&M.attempts, endpoint, event, outcome);
}

const char *metrics_reason_for(int http)
{
	switch (http) {
	case 400: return "bad_request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 408: return "request_timeout";
	case 411: return "length_required";
	case 413: return "body_too_large";
	case 415: return "unsupported_media_type";
	case 431: return "headers_too_large";
	case 503: return "overloaded";
	default: return "other";
	}
}

void metrics_rejection(int http, const char *reason)
{
	metrics_start();
	const struct label_values lv = {{reason ? reason : metrics_reason_for(http)}, 1, http};
	if (family_hit(&M.rejections, &lv))
		return;
	struct strbuf sb;
	sb_init(&sb);
	sb_reserve(&sb, 63);
	sb_puts(&sb, "code=\"");
	put_code(&sb, http);
	sb_puts(&sb, "\",reason=");
	metrics_label_value(&sb, lv.v[0]);
	family_add(&M.rejections, sb.buf, &lv);
	sb_free(&sb);
}

void metrics_hook(const char *hook, enum metrics_hook_outcome outcome, int64_t ms)
{
	metrics_start();
	if ((int)outcome < 0 || outcome >= MHOOK_NOUTCOMES)
		return;
	const struct label_values lv = {{hook}, 1, (int)outcome};
	if (!family_hit(&M.hook_runs, &lv)) {
		struct strbuf sb;
		sb_init(&sb);
		sb_reserve(&sb, 127);
		sb_puts(&sb, "hook=");
		metrics_label_value(&sb, hook);
		sb_puts(&sb, ",outcome=\"");
		sb_puts(&sb, hook_outcome_names[outcome]);
		sb_putc(&sb, '"');
		family_add(&M.hook_runs, sb.buf, &lv);
		sb_free(&sb);
	}
	if (ms < 0)
		return;
	M.observed++;
	M.sum_ms += ms;
	for (size_t i = 0; i < ARRAY_SIZE(duration_bounds_ms); i++) {
		if (ms <= duration_bounds_ms[i]) {
			M.bucket[i]++;
			break;
		}
	}
}

void metrics_reload(bool ok)
{
	metrics_start();
	if (ok)
		M.reloads_ok++;
	else
		M.reloads_failed++;
}

static int series_cmp(const void *a, const void *b)
{
	return strcmp(((const struct series *)a)->labels, ((const struct series *)b)->labels);
}

static void head(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_family(struct strbuf *sb, const char *name, struct family *f)
{
	/* Sorted, so that scrapes list series in a stable order. */
	if (f->n > 1)
		qsort(f->v, f->n, sizeof(*f->v), series_cmp);
	for (size_t i = 0; i < f->n; i++)
		sb_printf(sb, "%s{%s} %llu\n", name, f->v[i].labels,
		          (unsigned long long)f->v[i].value);
}

/* A bucket bound in seconds as the format writes floats: "0.25", "10". */
static void format_seconds(int64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%lld", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
	/* Trailing zeros of a fraction add nothing: 0.250 -> 0.25. */
	char *dot = strchr(buf, '.');
	if (dot) {
		char *e = buf + strlen(buf);
		while (e > dot + 1 && e[-1] == '0')
			*--e = '\0';
	}
}

char *metrics_render(const struct metrics_gauges *g)
{
	metrics_start();
	struct strbuf sb;
	sb_init(&sb);

	head(&sb, "hookd_build_info", "gauge", "Always 1; the version label says which hookd runs.");
	sb_puts(&sb, "hookd_build_info{version=");
	metrics_label_value(&sb, HOOKD_VERSION);
	sb_puts(&sb, "} 1\n");

	head(&sb, "hookd_start_time_seconds", "gauge",
	     "When the daemon started, in seconds since the Unix epoch.");
	sb_printf(&sb, "hookd_start_time_seconds %lld.%03lld\n",
	          (long long)(M.start_wall_ms / 1000), (long long)(M.start_wall_ms % 1000));

	head(&sb, "hookd_draining", "gauge", "1 while shutting down (SIGTERM), else 0.");
	sb_printf(&sb, "hookd_draining %d\n", g->draining ? 1 : 0);

	head(&sb, "hookd_deliveries_total", "counter",
	     "Deliveries ended, each once (a resend or replay that runs one again: attempts "
	     "only), by endpoint, event (the route, or other) and outcome (ok, failed, skipped, "
	     "unhandled, duplicate).");
	render_family(&sb, "hookd_deliveries_total", &M.deliveries);

	head(&sb, "hookd_attempts_total", "counter",
	     "Attempts ended, by endpoint, event and outcome (ok, failed, timeout, skipped, "
	     "unhandled).");
	render_family(&sb, "hookd_attempts_total", &M.attempts);

	head(&sb, "hookd_responses_total", "counter",
	     "Answers senders got for deliveries, by endpoint, status word and HTTP status.");
	render_family(&sb, "hookd_responses_total", &M.responses);

	head(&sb, "hookd_rejections_total", "counter",
	     "Requests refused before any hook ran, by HTTP status and reason.");
	render_family(&sb, "hookd_rejections_total", &M.rejections);

	head(&sb, "hookd_hook_runs_total", "counter",
	     "Hooks finished, by hook (its path in hooks.d) and outcome.");
	render_family(&sb, "hookd_hook_runs_total", &M.hook_runs);

	head(&sb, "hookd_hook_duration_seconds", "histogram",
	     "How long hooks ran, from start to exit (hooks that could not start are not counted).");
	uint64_t cum = 0;
	for (size_t i = 0; i < ARRAY_SIZE(duration_bounds_ms); i++) {
		char le[32];
		format_seconds(duration_bounds_ms[i], le, sizeof(le));
		cum += M.bucket[i];
		sb_printf(&sb, "hookd_hook_duration_seconds_bucket{le=\"%s\"} %llu\n", le,
		          (unsigned long long)cum);
	}
	sb_printf(&sb, "hookd_hook_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
	          (unsigned long long)M.observed);
	sb_printf(&sb, "hookd_hook_duration_seconds_sum %lld.%03lld\n", (long long)(M.sum_ms / 1000),
	          (long long)(M.sum_ms % 1000));
	sb_printf(&sb, "hookd_hook_duration_seconds_count %llu\n", (unsigned long long)M.observed);

	head(&sb, "hookd_hooks_running", "gauge", "Hook processes running now.");
	sb_printf(&sb, "hookd_hooks_running %d\n", g->hooks_running);

	head(&sb, "hookd_deliveries_running", "gauge",
	     "Deliveries holding one of the max_running slots now.");
	sb_printf(&sb, "hookd_deliveries_running %d\n", g->deliveries_running);

	head(&sb, "hookd_deliveries_queued", "gauge", "Deliveries waiting for a slot now.");
	sb_printf(&sb, "hookd_deliveries_queued %d\n", g->deliveries_queued);

	head(&sb, "hookd_deliveries_pending", "gauge",
	     "Deliveries not yet ended, by state: queued (for a slot or a key), running, "
	     "retry_wait.");
	sb_printf(&sb, "hookd_deliveries_pending{state=\"queued\"} %d\n", g->pending_queued);
	sb_printf(&sb, "hookd_deliveries_pending{state=\"running\"} %d\n", g->pending_running);
	sb_printf(&sb, "hookd_deliveries_pending{state=\"retry_wait\"} %d\n",
	          g->pending_retry_wait);

	if (g->journal_up >= 0) {
		head(&sb, "hookd_journal_up", "gauge",
		     "1 while the journal answers, 0 while it cannot be reached (deliveries get 503).");
		sb_printf(&sb, "hookd_journal_up %d\n", g->journal_up);
	}

	head(&sb, "hookd_config_reloads_total", "counter", "SIGHUP reloads, by result.");
	sb_printf(&sb, "hookd_config_reloads_total{result=\"ok\"} %llu\n",
	          (unsigned long long)M.reloads_ok);
	sb_printf(&sb, "hookd_config_reloads_total{result=\"failed\"} %llu\n",
	          (unsigned long long)M.reloads_failed);

	return sb_steal(&sb);
}

void metrics_reset(void)
{
	family_free(&M.deliveries);
	family_free(&M.attempts);
	family_free(&M.responses);
	family_free(&M.rejections);
	family_free(&M.hook_runs);
	memset(&M, 0, sizeof(M));
}
