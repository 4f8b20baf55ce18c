/*
 * The journal's commands: `hookd events` and `hookd show` read the journal
 * themselves (journal_format.c words it), `hookd replay` asks the running
 * daemon over its control socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "control.h"
#include "journal.h"
#include "journal_format.h"
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

int cmd_show(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s needs one delivery ID", o->command);
	if (o->filter.json && o->body)
		return usage_error("%s takes --json or --body, not both", o->command);
	enum result (*format)(struct journal *, const char *, const char *, struct strbuf *,
	                      struct strbuf *) = o->body          ? journal_format_show_body
	                                         : o->filter.json ? journal_format_show_json
	                                                          : journal_format_show;
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, false);
	struct strbuf out, err;
	sb_init(&out);
	sb_init(&err);
	int rc = 1;
	if (format(j, o->endpoint, o->args[0], &out, &err) == RESULT_OK)
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
