/*
 * hookd: the command line. The table of commands, each with its usage
 * line, the options, and main. The commands themselves are in cmd_*.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "config.h"
#include "dispatch.h"
#include "payload.h"
#include "rejections.h"
#include "secrecy.h"
#include "sigutil.h"
#include "util.h"
#include "version.h"

static const struct command {
	const char *name;
	int (*fn)(const struct options *);
	int maxargs;
	const char *usage; /* its lines in --help */
} commands[] = {
	{"serve", cmd_serve, 0,
	 "  serve                      run the daemon in the foreground (default)\n"},
	{"check", cmd_check, 0,
	 "  check [--strict]           validate the config and hooks.d, list endpoints and routes;\n"
	 "                             exit 2 on an error (on a warning too with --strict)\n"},
	{"run", cmd_run, 2,
	 "  run EVENT [FILE]           run the hooks for EVENT once with FILE (or stdin) as payload\n"},
	{"env", cmd_env, 2,
	 "  env EVENT [FILE]           print the environment a hook would get\n"},
	{"events", cmd_events, 0,
	 "  events [--failed] [--event GLOB] [--since DURATION] [--limit N] [--json]\n"
	 "                             list journaled deliveries, newest first\n"},
	{"show", cmd_show, 1,
	 "  show [--endpoint NAME] [--json | --body] ID\n"
	 "                             one journaled delivery in full, as text (--json: as JSON,\n"
	 "                             --body: only its body's bytes)\n"},
	{"replay", cmd_replay, 1,
	 "  replay [--endpoint NAME] ID  run a journaled delivery again, through the daemon\n"},
	{"journal", cmd_journal, 2,
	 "  journal export             write every journaled delivery to stdout, oldest first,\n"
	 "                             one JSON line each (stop hookd first)\n"
	 "  journal import [FILE]      read such lines (FILE or stdin) into this config's journal;\n"
	 "                             deliveries already there are skipped\n"},
};

static void usage(FILE *f)
{
	fputs("usage: hookd [-c FILE] [COMMAND [ARGS]]\n"
	      "\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fputs(commands[i].usage, f);
	fputs("\n"
	      "options:\n"
	      "  -c, --config FILE          config file (default $HOOKD_CONFIG, else /etc/hookd/hookd.ini)\n"
	      "  --endpoint NAME            run, env: the endpoint (default: the first in the file);\n"
	      "                             show, replay: where ID was delivered (default: any\n"
	      "                             endpoint; needed when ID is known at several)\n"
	      "  --                         end of options (an ID that starts with '-')\n"
	      "  -h, --help, --version\n",
	      f);
}

int usage_error(const char *fmt, const char *arg)
{
	fputs("hookd: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see hookd --help)\n", stderr);
	return EXIT_USAGE;
}

/* Options may come before or after the command. */
/* The command, then its arguments; false when there are too many. */
static bool add_word(struct options *o, const char *a)
{
	if (!o->command)
		o->command = a;
	else if (o->nargs < (int)ARRAY_SIZE(o->args))
		o->args[o->nargs++] = a;
	else
		return false;
	return true;
}

/* Options anywhere; "--" ends them (an id that starts with '-'). */
static int parse_args(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->filter.limit = 100;
	bool options_done = false; /* after "--": every word is an argument */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
#define NEED_ARG()                                                          \
	do {                                                                \
		if (!next)                                                  \
			return usage_error("option %s needs a value", a);   \
		i++;                                                        \
	} while (0)
		if (options_done) {
			if (!add_word(o, a))
				return usage_error("too many arguments: '%s'", a);
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			NEED_ARG();
			o->config = next;
		} else if (strncmp(a, "--config=", 9) == 0) {
			o->config = a + 9;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--version") == 0) {
			printf("hookd %s\n", HOOKD_VERSION);
			exit(0);
		} else if (strcmp(a, "--endpoint") == 0) {
			NEED_ARG();
			o->endpoint = next;
		} else if (strcmp(a, "--failed") == 0) {
			o->filter.failed = true;
		} else if (strcmp(a, "--json") == 0) {
			o->filter.json = true;
		} else if (strcmp(a, "--strict") == 0) {
			o->strict = true;
		} else if (strcmp(a, "--body") == 0) {
			o->body = true;
		} else if (strcmp(a, "--event") == 0) {
			NEED_ARG();
			o->filter.event_glob = next;
		} else if (strcmp(a, "--since") == 0) {
			NEED_ARG();
			int64_t ms;
			if (!parse_duration_ms(next, &ms))
				return usage_error("bad duration for --since: '%s'", next);
			o->filter.since_ms = now_wall_ms() - ms;
		} else if (strcmp(a, "--limit") == 0) {
			NEED_ARG();
			if (!parse_int(next, 1, 1000000, &o->filter.limit))
				return usage_error("bad number for --limit: '%s'", next);
		} else if (a[0] == '-' && a[1] != '\0') {
			return usage_error("unknown option '%s'", a);
		} else if (!add_word(o, a)) {
			return usage_error("too many arguments: '%s'", a);
		}
#undef NEED_ARG
	}
	if (!o->command)
		o->command = "serve";
	if (!o->config)
		o->config = getenv("HOOKD_CONFIG");
	if (!o->config || !*o->config)
		o->config = "/etc/hookd/hookd.ini";
	return 0;
}

struct config *load_or_die(const char *path)
{
	char err[1024];
	struct config *cfg = config_load(path, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		exit(EXIT_USAGE);
	}
	return cfg;
}

int main(int argc, char **argv)
{
	/* Once, for every command: a write to a peer that hung up (a hook's
	 * stdin, a client, the control socket) is an error to handle, not a
	 * signal that ends hookd. */
	signal(SIGPIPE, SIG_IGN);
	struct options o;
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(o.command, commands[i].name) != 0)
			continue;
		if (o.nargs > commands[i].maxargs)
			return usage_error("too many arguments for %s", o.command);
		/* Every command loads the config, and with it the secrets:
		 * from here on no other process of this uid can read them out
		 * of this one. */
		int pr = secrecy_protect_process();
		if (pr < 0)
			fprintf(stderr, "hookd: cannot make the process undumpable: %s\n",
			        strerror(-pr));
		rc = commands[i].fn(&o);
		/* What the modules keep between deliveries, for a clean exit. */
		delivery_cleanup();
		payload_cleanup();
		sig_cleanup();
		secrecy_cleanup();
		rejections_cleanup();
		return rc;
	}
	return usage_error("unknown command '%s'", o.command);
}
