/*
 * A hook's output as the loop reads it from the two pipes: each read seen
 * by the output observer, or given to the sink (`hookd run`); the last
 * OUTPUT_TAIL_MAX bytes kept for the result; and the log, one line a line
 * under a rate limit, with the lines it dropped counted and the last of
 * them logged when the hook ends.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "runner_private.h"
#include "util.h"

static void (*output_sink)(const char *buf, size_t n);
static runner_output_observer output_observer;
static void *output_observer_arg;

void runner_set_output_observer(runner_output_observer fn, void *arg)
{
	output_observer = fn;
	output_observer_arg = arg;
}

void runner_set_output_sink(void (*sink)(const char *buf, size_t n))
{
	output_sink = sink;
}

/* The line that counts the lines a hook's rate limit dropped; `tail`: how
 * many more follow it, logged at the end. */
static void log_dropped(struct hook_run *r, long dropped, size_t tail)
{
	if (dropped == 0)
		return;
	char n[32], t[32];
	snprintf(n, sizeof(n), "%ld", dropped);
	snprintf(t, sizeof(t), "%zu", tail);
	struct log_kv kv[] = {
		{"hook", r->rel}, LOG_INT("dropped", n), LOG_INT("tail", tail ? t : NULL),
	};
	log_about(LOG_LVL_WARN, "output lines dropped", &r->who, kv, ARRAY_SIZE(kv));
}

/* One line of output in the log; `tail`: one the rate limit had dropped,
 * logged as the hook ended. */
static void emit_output_line(struct hook_run *r, bool is_err, const char *line, size_t len,
                             bool cut, bool tail)
{
	/* With its length: a NUL byte in it is logged escaped (\u0000), not
	 * taken for the line's end. */
	struct log_bytes text = {line, len};
	struct log_kv kv[] = {
		{"hook", r->rel}, {"stream", is_err ? "stderr" : "stdout"}, LOG_BYTES("line", &text),
		LOG_BOOL("cut", cut ? "true" : NULL), LOG_BOOL("tail", tail ? "true" : NULL),
	};
	log_about(is_err ? LOG_LVL_WARN : LOG_LVL_INFO, "output", &r->who, kv, ARRAY_SIZE(kv));
}

/* A dropped line joins the tail (the oldest go). */
static void tail_put(struct hook_run *r, bool is_err, const char *line, size_t len, bool cut)
{
	struct tail *tl = &r->tail[is_err];
	char *buf = r->tail_buf[is_err];
	struct tail_line *t = &tl->line[tl->next];
	t->at = tl->wpos;
	t->len = (uint16_t)len; /* len <= LOG_LINE_MAX */
	t->cut = cut;
	tl->next = (tl->next + 1) % TAIL_LINES;
	if (tl->count < TAIL_LINES)
		tl->count++;
	for (size_t i = 0; i < len; i++)
		buf[(tl->wpos + i) % OUTPUT_TAIL_MAX] = line[i];
	tl->wpos += len;
}

/* The lines of a stream's tail whose bytes are still in its ring. */
static size_t tail_kept(const struct tail *tl)
{
	size_t first = (tl->next + TAIL_LINES - tl->count) % TAIL_LINES, kept = 0;
	for (size_t i = 0; i < tl->count; i++)
		kept += tl->wpos - tl->line[(first + i) % TAIL_LINES].at <= OUTPUT_TAIL_MAX;
	return kept;
}

static void tail_emit(struct hook_run *r, bool is_err)
{
	const struct tail *tl = &r->tail[is_err];
	const char *buf = r->tail_buf[is_err];
	size_t first = (tl->next + TAIL_LINES - tl->count) % TAIL_LINES;
	char line[LOG_LINE_MAX];
	for (size_t i = 0; i < tl->count; i++) {
		const struct tail_line *t = &tl->line[(first + i) % TAIL_LINES];
		if (tl->wpos - t->at > OUTPUT_TAIL_MAX)
			continue; /* its bytes were overwritten by later lines */
		for (size_t k = 0; k < t->len; k++)
			line[k] = buf[(t->at + k) % OUTPUT_TAIL_MAX];
		emit_output_line(r, is_err, line, t->len, t->cut, true);
	}
}

/* The hook has ended: lines dropped since the last one logged are counted,
 * and the tail of them logged after the count. */
static void log_dropped_and_tail(struct hook_run *r)
{
	if (r->dropped == 0)
		return;
	size_t kept = tail_kept(&r->tail[0]) + tail_kept(&r->tail[1]);
	log_dropped(r, r->dropped - (long)kept, kept);
	/* stdout's, then stderr's: where a hook says why it failed comes last. */
	tail_emit(r, false);
	tail_emit(r, true);
	r->dropped = 0;
	r->tail[0].count = r->tail[1].count = 0;
}

static void log_output_line(struct output_stream *o, const char *line, size_t len, bool cut)
{
	struct hook_run *r = o->run;
	int64_t now = now_mono_ms();
	int64_t *oldest = &r->logged_at[r->logged_next];
	if (*oldest != 0 && now - *oldest < 1000) {
		r->dropped++;
		tail_put(r, o->is_err, line, len, cut);
		return;
	}
	*oldest = now;
	r->logged_next = (r->logged_next + 1) % LOG_LINES_PER_SEC;
	/* Lines were dropped since the last one logged: say how many first
	 * (the hook goes on: its last lines are still to come). */
	log_dropped(r, r->dropped, 0);
	r->dropped = 0;
	r->tail[0].count = r->tail[1].count = 0;
	emit_output_line(r, o->is_err, line, len, cut, false);
}

/* The tail: keep the last OUTPUT_TAIL_MAX bytes in a ring. */
static void keep_tail(struct hook_run *r, const char *buf, size_t n)
{
	if (n >= OUTPUT_TAIL_MAX) {
		memcpy(r->ring, buf + n - OUTPUT_TAIL_MAX, OUTPUT_TAIL_MAX);
		r->ring_head = 0;
		r->ring_len = OUTPUT_TAIL_MAX;
		return;
	}
	while (n > 0) {
		size_t pos = (r->ring_head + r->ring_len) % OUTPUT_TAIL_MAX;
		size_t k = OUTPUT_TAIL_MAX - pos < n ? OUTPUT_TAIL_MAX - pos : n;
		memcpy(r->ring + pos, buf, k);
		size_t over = r->ring_len + k > OUTPUT_TAIL_MAX ? r->ring_len + k - OUTPUT_TAIL_MAX : 0;
		r->ring_len += k - over;
		r->ring_head = (r->ring_head + over) % OUTPUT_TAIL_MAX;
		buf += k;
		n -= k;
	}
}

static void flush_pending(struct output_stream *o)
{
	keep_tail(o->run, o->run->pend[o->index], o->pend_len);
	o->pend_len = 0;
}

/*
 * Into the tail line by line: a read ends anywhere, and the other stream's
 * line read between two parts of one line was kept inside it ("line 2982
 * xxxFINAL ERROR LINE"). The unfinished end of a read waits in pend until
 * its newline comes, the stream ends, or it outgrows pend (a line longer
 * than LOG_LINE_MAX goes in as it comes).
 */
static void keep_tail_lines(struct output_stream *o, const char *buf, size_t n)
{
	const char *last_nl = n ? memrchr(buf, '\n', n) : NULL;
	size_t whole = last_nl ? (size_t)(last_nl - buf) + 1 : 0;
	if (whole > 0) {
		flush_pending(o);
		keep_tail(o->run, buf, whole);
	}
	size_t rest = n - whole;
	if (o->pend_len + rest > LOG_LINE_MAX) {
		flush_pending(o);
		keep_tail(o->run, buf + whole, rest);
		return;
	}
	memcpy(o->run->pend[o->index] + o->pend_len, buf + whole, rest);
	o->pend_len += rest;
}

static void take_output(struct output_stream *o, const char *buf, size_t n)
{
	struct hook_run *r = o->run;
	char *line = r->line[o->index];
	if (output_observer)
		output_observer(r->endpoint, r->delivery_id, r->rel, buf, n, output_observer_arg);
	if (output_sink)
		output_sink(buf, n);
	keep_tail_lines(o, buf, n);
	if (output_sink)
		return;
	/* The log: one line a line, cut at LOG_LINE_MAX; the rest of a cut
	 * line is skipped up to its newline. */
	const char *p = buf, *end = buf + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		if (!o->line_cut) {
			size_t room = LOG_LINE_MAX - o->line_len;
			size_t k = (size_t)(stop - p) < room ? (size_t)(stop - p) : room;
			memcpy(line + o->line_len, p, k);
			o->line_len += k;
			if ((size_t)(stop - p) > room) {
				log_output_line(o, line, o->line_len, true);
				o->line_len = 0;
				o->line_cut = true;
			}
		}
		if (!nl)
			break;
		if (!o->line_cut)
			log_output_line(o, line, o->line_len, false);
		o->line_len = 0;
		o->line_cut = false;
		p = nl + 1;
	}
}

static void close_stream(struct output_stream *o)
{
	if (o->ev) {
		event_free(o->ev);
		o->ev = NULL;
	}
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
	}
	if (o->line_len > 0 && !o->line_cut)
		log_output_line(o, o->run->line[o->index], o->line_len, false);
	o->line_len = 0;
	flush_pending(o);
}

/* At the run's end, when no spawner thread has its job: only then the
 * write ends, which a thread starting the hook dup2()s into the child (a
 * read error closes a stream earlier, and its number could be reused). */
void runner_close_output(struct hook_run *r)
{
	for (size_t i = 0; i < ARRAY_SIZE(r->out); i++) {
		close_stream(&r->out[i]);
		if (r->out[i].write_fd >= 0) {
			close(r->out[i].write_fd);
			r->out[i].write_fd = -1;
		}
	}
	log_dropped_and_tail(r);
}

/* Reads what the pipe holds now; at most `max_reads` reads. */
void runner_read_output(struct output_stream *o, int max_reads)
{
	char buf[8192];
	for (int i = 0; i < max_reads && o->fd >= 0; i++) {
		ssize_t n = read(o->fd, buf, sizeof(buf));
		if (n > 0) {
			take_output(o, buf, (size_t)n);
			/* Less than asked for: the pipe is empty now, and another
			 * read would only say EAGAIN (a system call for most lines
			 * a hook writes). What comes next wakes the loop again
			 * (the event is level-triggered); the rest when the hook
			 * has exited is finish()'s. */
			if ((size_t)n < sizeof(buf))
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* An error, or EOF (hookd holds a write end until finish(),
		 * so only once it gave it up): stop reading. */
		close_stream(o);
		return;
	}
}

void runner_on_output(evutil_socket_t fd, short what, void *arg)
{
	runner_read_output(arg, 4);
}
