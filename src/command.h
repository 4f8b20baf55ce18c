/*
 * The command line: the options every command receives, and the commands
 * main.c's table runs. Command code is where hookd prints and exits: the
 * modules below it return errors with their words in a buffer.
 */
#ifndef HOOKD_COMMAND_H
#define HOOKD_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include "journal_format.h"

/* The exit status of a usage or config error (README "Command line"). */
#define EXIT_USAGE 2

struct config;
struct ssl_ctx_st;

struct options {
	const char *config;
	const char *command;
	const char *endpoint;
	const char *args[4];
	int nargs;
	struct events_filter filter;
	bool strict; /* check: warnings fail too */
	bool body;   /* show: the raw body alone */
};

/* "hookd: " fmt (with arg) " (see hookd --help)" on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, const char *arg);
/* The config at path, or its error printed and exit(EXIT_USAGE). */
struct config *load_or_die(const char *path);

/*
 * The TLS context cfg asks for, or NULL in *ctx when TLS is off. A bad
 * pair is a config error: false, with "CONFIG:LINE: tls_key ..." in err,
 * the line of the key the message names (tls_cert's for the rest).
 */
bool tls_from_config(const struct config *cfg, struct ssl_ctx_st **ctx, char *err,
                     size_t errlen);

/* The commands; each returns the exit status. */
int cmd_serve(const struct options *o);  /* cmd_serve.c */
int cmd_check(const struct options *o);  /* cmd_local.c */
int cmd_run(const struct options *o);    /* cmd_local.c */
int cmd_env(const struct options *o);    /* cmd_local.c */
int cmd_events(const struct options *o); /* cmd_journal.c */
int cmd_show(const struct options *o);   /* cmd_journal.c */
int cmd_replay(const struct options *o); /* cmd_journal.c */
int cmd_journal(const struct options *o); /* cmd_journal.c: export, import */

#endif
