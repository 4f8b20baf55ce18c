/*
 * The journal's commands: `hookd events` and `hookd show` read the journal
 * themselves (journal_format.c words it), `hookd replay` asks the running
 * daemon over its control socket, `hookd journal export` and `import` copy
 * a journal's deliveries out and in (journal_copy.c's lines).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "control.h"
#include "delivery.h"
#include "journal.h"
#include "journal_copy.h"
#include "journal_format.h"
#include "recovery.h"
#include "util.h"

/* ---- journal commands ----------------------------------------------- */

/* The journal, read-only. missing_ok: NULL when hookd has not written
 * one yet (for `events`, an empty list); any other failure exits 1. */
static struct journal *open_journal_ro(const struct options *o, struct config **cfgp,
                                       bool missing_ok)
{
	struct config *cfg = load_or_die(o->config);
	*cfgp = cfg;
	if (!journal_configured(cfg)) {
		fprintf(stderr, "hookd: the journal is off: set [server] state_dir (or journal) in %s\n",
		        o->config);
		exit(EXIT_USAGE);
	}
	struct journal_opts jo;
	journal_opts_from_config(cfg, &jo);
	if (missing_ok && journal_missing(&jo))
		return NULL;
	char err[512];
	struct journal *j = journal_open_readonly(&jo, err, sizeof(err));
	if (!j) {
		fprintf(stderr, "hookd: journal: %s\n", err);
		exit(1);
	}
	return j;
}

/* Writes the buffer to stdout; 0 ok, 1 when stdout failed. The output is
 * built first so that no read transaction waits on a slow pipe (a reader
 * holds back WAL checkpoints). A reader that stopped reading (`hookd events
 * | head`) is no error: SIGPIPE is ignored, so that ends here quietly, as
 * the signal did before. */
static int write_stdout(const struct strbuf *sb)
{
	bool ok = sb->len == 0 || fwrite(sb->buf, 1, sb->len, stdout) == sb->len;
	if (fflush(stdout) != 0)
		ok = false;
	if (!ok && errno == EPIPE)
		return 0;
	if (!ok)
		fprintf(stderr, "hookd: writing output: %s\n", strerror(errno));
	return ok ? 0 : 1;
}

int cmd_events(const struct options *o)
{
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, true);
	struct strbuf out;
	sb_init(&out);
	int rc = journal_format_events(j, &o->filter, &out) == RESULT_OK ? write_stdout(&out) : 1;
	sb_free(&out);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

/* Rebuilt as the admin API rebuilds it, under the config show reads. */
static long show_env_omitted(struct journal *j, int64_t rowid, int attempts, void *arg)
{
	struct delivery *d = delivery_view_with_env(j, arg, rowid, attempts);
	if (!d)
		return -1;
	long n = (long)delivery_env_omitted(d);
	delivery_free(d);
	return n;
}

int cmd_show(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s needs one delivery ID", o->command);
	if (o->filter.json && o->body)
		return usage_error("%s takes --json or --body, not both", o->command);
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, false);
	struct journal_show_env env = {show_env_omitted, cfg};
	struct strbuf out, err;
	sb_init(&out);
	sb_init(&err);
	int rc = 1;
	enum result r =
	        o->body          ? journal_format_show_body(j, o->endpoint, o->args[0], &out, &err)
	        : o->filter.json ? journal_format_show_json(j, o->endpoint, o->args[0], &env, &out, &err)
	                         : journal_format_show(j, o->endpoint, o->args[0], &env, &out, &err);
	if (r == RESULT_OK)
		rc = write_stdout(&out);
	else if (err.len)
		fprintf(stderr, "hookd: %s\n", err.buf);
	sb_free(&out);
	sb_free(&err);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

int cmd_replay(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s needs one delivery ID", o->command);
	struct config *cfg = load_or_die(o->config);
	if (!cfg->state_dir) {
		/* The control socket is in state_dir (a shared journal too). */
		fprintf(stderr, "hookd: %s in %s\n",
		        cfg->journal_url ? "replay asks the daemon through its control socket: set "
		                           "[server] state_dir"
		                         : "the journal is off: set [server] state_dir",
		        o->config);
		config_unref(cfg);
		return EXIT_USAGE;
	}
	char err[2 * CONTROL_LINE_MAX + 64]; /* "replay ID: " and the daemon's answer */
	enum result r = control_replay(cfg->state_dir, o->endpoint, o->args[0], err, sizeof(err));
	config_unref(cfg);
	if (r != RESULT_OK) {
		fprintf(stderr, "hookd: %s\n", err);
		return 1;
	}
	printf("delivery %s queued for replay\n", o->args[0]);
	return 0;
}

/* ---- copying a journal: `hookd journal export` and `import` ---------- */

/* Every delivery's rowid, oldest first: the deliveries page's list, newest
 * first a page at a time, turned round. */
struct rowids {
	int64_t *v;
	size_t n, cap;
	int64_t last_ms, last_rowid;
	int page;
};

static bool add_rowid(const struct journal_row *r, void *arg)
{
	struct rowids *ids = arg;
	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? 2 * ids->cap : 256;
		ids->v = xrealloc(ids->v, ids->cap * sizeof(*ids->v));
	}
	ids->v[ids->n++] = r->rowid;
	ids->last_ms = r->received_ms;
	ids->last_rowid = r->rowid;
	ids->page++;
	return true;
}

static enum result all_rowids(struct journal *j, struct rowids *ids)
{
	enum { PAGE = 1000 };
	struct journal_filter f = {.state = -1, .limit = PAGE};
	do {
		ids->page = 0;
		if (journal_query(j, &f, add_rowid, ids) != RESULT_OK)
			return RESULT_ERROR;
		f.before_ms = ids->last_ms;
		f.before_rowid = ids->last_rowid;
	} while (ids->page == PAGE);
	for (size_t a = 0, b = ids->n; a + 1 < b; a++, b--) {
		int64_t t = ids->v[a];
		ids->v[a] = ids->v[b - 1];
		ids->v[b - 1] = t;
	}
	return RESULT_OK;
}

/* One line a delivery, each written as soon as it is read: no read stays
 * open while stdout is slow, and a large journal is never in memory. */
static int journal_export(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s export takes no file: it writes to stdout", o->command);
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, true);
	struct rowids ids = {0};
	int rc = 0;
	if (j && all_rowids(j, &ids) != RESULT_OK) {
		fprintf(stderr, "hookd: journal: cannot list the deliveries\n");
		rc = 1;
	}
	struct strbuf line;
	sb_init(&line);
	size_t exported = 0;
	bool out_ok = true;
	for (size_t i = 0; i < ids.n && rc == 0 && out_ok; i++) {
		struct journal_copy c;
		enum result r = journal_copy_read(j, ids.v[i], &c);
		if (r == RESULT_UNKNOWN)
			continue; /* pruned since it was listed */
		if (r != RESULT_OK) {
			fprintf(stderr, "hookd: journal: cannot read delivery %zu of %zu\n", i + 1,
			        ids.n);
			rc = 1;
			break;
		}
		line.len = 0;
		journal_copy_format(&c, &line);
		journal_copy_free(&c);
		out_ok = fwrite(line.buf, 1, line.len, stdout) == line.len;
		exported += out_ok;
	}
	if (fflush(stdout) != 0)
		out_ok = false;
	/* A reader that stopped reading (`| head`) is no error, as for events. */
	if (!out_ok && errno != EPIPE) {
		fprintf(stderr, "hookd: writing output: %s\n", strerror(errno));
		rc = 1;
	}
	if (rc == 0 && out_ok)
		fprintf(stderr, "exported %zu\n", exported);
	sb_free(&line);
	free(ids.v);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

/* One line a delivery, each its own transaction: what came before a bad
 * line stays imported, and the same file imported again skips it. */
static int journal_import_lines(const struct options *o)
{
	const char *path = o->nargs == 2 ? o->args[1] : NULL;
	FILE *in = stdin;
	if (path && strcmp(path, "-") != 0) {
		in = fopen(path, "r");
		if (!in) {
			fprintf(stderr, "hookd: %s: %s\n", path, strerror(errno));
			return 1;
		}
	} else {
		path = "stdin";
	}
	struct config *cfg = load_or_die(o->config);
	if (!journal_configured(cfg)) {
		fprintf(stderr, "hookd: the journal is off: set [server] state_dir (or journal) in %s\n",
		        o->config);
		config_unref(cfg);
		if (in != stdin)
			fclose(in);
		return EXIT_USAGE;
	}
	struct journal_opts jo;
	journal_opts_from_config(cfg, &jo);
	char err[512];
	struct journal *j = journal_open(&jo, err, sizeof(err));
	if (!j) {
		fprintf(stderr, "hookd: journal: %s\n", err);
		config_unref(cfg);
		if (in != stdin)
			fclose(in);
		return 1;
	}
	char *line = NULL;
	size_t cap = 0, lineno = 0, imported = 0, skipped = 0;
	ssize_t n;
	int rc = 0;
	while ((n = getline(&line, &cap, in)) >= 0) {
		lineno++;
		size_t len = (size_t)n;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		struct journal_copy c;
		if (!journal_copy_parse(line, len, &c, err, sizeof(err))) {
			fprintf(stderr, "hookd: %s:%zu: %s\n", path, lineno, err);
			rc = 1;
			break;
		}
		enum result r = journal_import(j, &c.entry, c.attempts, c.nattempts);
		if (r == RESULT_OK)
			imported++;
		else if (r == RESULT_PENDING)
			skipped++;
		else
			fprintf(stderr, "hookd: %s:%zu: delivery %s (endpoint %s): the journal did not "
			        "take it\n", path, lineno, c.entry.delivery_id, c.entry.endpoint);
		journal_copy_free(&c);
		if (r != RESULT_OK && r != RESULT_PENDING) {
			rc = 1;
			break;
		}
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "hookd: %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	fprintf(stderr, "imported %zu, skipped %zu (already there)\n", imported, skipped);
	free(line);
	if (in != stdin)
		fclose(in);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

int cmd_journal(const struct options *o)
{
	if (o->nargs >= 1 && strcmp(o->args[0], "export") == 0)
		return journal_export(o);
	if (o->nargs >= 1 && strcmp(o->args[0], "import") == 0)
		return journal_import_lines(o);
	return usage_error("%s needs 'export' or 'import [FILE]'", o->command);
}
