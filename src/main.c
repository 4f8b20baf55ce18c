/*
 * hookd: the command line, start-up, signals and the event loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "http.h"
#include "journal.h"
#include "journal_print.h"
#include "log.h"
#include "metrics.h"
#include "payload.h"
#include "route.h"
#include "runner.h"
#include "sdlisten.h"
#include "sdnotify.h"
#include "server.h"
#include "tls.h"
#include "verify.h"
#include "util.h"
#include "version.h"

#define EXIT_USAGE 2

struct options {
	const char *config;
	const char *command;
	const char *endpoint;
	const char *args[4];
	int nargs;
	struct events_filter filter;
};

static void usage(FILE *f)
{
	fputs("usage: hookd [-c FILE] [COMMAND [ARGS]]\n"
	      "\n"
	      "commands:\n"
	      "  serve                      run the daemon in the foreground (default)\n"
	      "  check                      validate the config and hooks.d, list endpoints and routes\n"
	      "  run EVENT [FILE]           run the hooks for EVENT once with FILE (or stdin) as payload\n"
	      "  env EVENT [FILE]           print the environment a hook would get\n"
	      "  events [--failed] [--event GLOB] [--since DURATION] [--limit N] [--json]\n"
	      "                             list journaled deliveries, newest first\n"
	      "  show [--endpoint NAME] ID  one journaled delivery in full\n"
	      "  replay [--endpoint NAME] ID  run a journaled delivery again, through the daemon\n"
	      "\n"
	      "options:\n"
	      "  -c, --config FILE          config file (default $HOOKD_CONFIG, else /etc/hookd/hookd.ini)\n"
	      "  --endpoint NAME            for run, env, show, replay (default: the first endpoint)\n"
	      "  --help, --version\n",
	      f);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("hookd: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see hookd --help)\n", stderr);
	return EXIT_USAGE;
}

/* Options may come before or after the command. */
static int parse_args(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->filter.limit = 100;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG()                                                          \
	do {                                                                \
		if (!next)                                                  \
			return usage_error("option %s needs a value", a);   \
		i++;                                                        \
	} while (0)
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
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
		} else if (!o->command) {
			o->command = a;
		} else if (o->nargs < (int)ARRAY_SIZE(o->args)) {
			o->args[o->nargs++] = a;
		} else {
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

static struct config *load_or_die(const char *path)
{
	char err[1024];
	struct config *cfg = config_load(path, err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		exit(EXIT_USAGE);
	}
	return cfg;
}

/* ---- privileges ----------------------------------------------------- */

/* Who hookd becomes after binding when started as root ([server] user). */
struct run_as {
	bool set;
	char *name;
	uid_t uid;
	gid_t gid; /* `group`, else the user's own group */
};

/* Looks up `user` and `group`; an unknown name is a config error. */
static int run_as_resolve(const struct config *cfg, struct run_as *ra, char *err, size_t errlen)
{
	memset(ra, 0, sizeof(*ra));
	if (!cfg->user) {
		if (cfg->group) {
			snprintf(err, errlen, "%s:%d: group = %s needs user", cfg->path, cfg->group_line,
			         cfg->group);
			return -EINVAL;
		}
		return 0;
	}
	errno = 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (!pw) {
		snprintf(err, errlen, "%s:%d: unknown user '%s'%s%s", cfg->path, cfg->user_line, cfg->user,
		         errno ? ": " : "", errno ? strerror(errno) : "");
		return -ENOENT;
	}
	ra->set = true;
	ra->name = xstrdup(pw->pw_name);
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	if (cfg->group) {
		errno = 0;
		struct group *gr = getgrnam(cfg->group);
		if (!gr) {
			snprintf(err, errlen, "%s:%d: unknown group '%s'%s%s", cfg->path, cfg->group_line,
			         cfg->group,
			         errno ? ": " : "", errno ? strerror(errno) : "");
			free(ra->name);
			ra->name = NULL;
			return -ENOENT;
		}
		ra->gid = gr->gr_gid;
	}
	return 0;
}

/*
 * The journal was opened as root (it may have created state_dir and its
 * files); hand the directory and what is directly in it to the user, so
 * that SQLite can go on writing (and recreate its -wal and -shm files) and
 * the control socket can be made after the drop. Symbolic links are not
 * followed: only the directory's own entries change owner.
 */
static int chown_state_dir(const char *dir, const struct run_as *ra)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	int ret = 0;
	if (fchown(dfd, ra->uid, ra->gid) < 0)
		ret = -errno;
	int lfd = ret == 0 ? dup(dfd) : -1;
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (ret == 0 && !d) {
		ret = -errno;
		if (lfd >= 0)
			close(lfd);
	}
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fchownat(dfd, e->d_name, ra->uid, ra->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT) {
			ret = -errno;
			break;
		}
	}
	if (d)
		closedir(d);
	close(dfd);
	return ret;
}

/*
 * Started as root with `user`: becomes that user for good, after the
 * listener is bound. initgroups, setgid, setuid (which as root sets the
 * real, effective and saved ids alike), then proves root cannot be taken
 * back. Started as root without `user`: a warning, hooks run as root.
 */
static int become_user(const struct run_as *ra);

/* run_as_resolve for the one-shot commands: an unknown user or group is
 * printed, cfg released, and the caller exits 2. */
static bool run_as_or_fail(struct config *cfg, struct run_as *ra)
{
	char err[1024];
	if (run_as_resolve(cfg, ra, err, sizeof(err)) == 0)
		return true;
	fprintf(stderr, "%s\n", err);
	config_unref(cfg);
	return false;
}

static int drop_privileges(const struct config *cfg, const struct run_as *ra)
{
	if (geteuid() != 0) {
		if (ra->set && ra->uid != geteuid())
			log_msg(LOG_LVL_WARN, "user = %s ignored: hookd was not started as root", ra->name);
		return 0;
	}
	if (!ra->set) {
		log_msg(LOG_LVL_WARN, "running as root, and so do the hooks: set [server] user "
		                      "to drop privileges after binding");
		return 0;
	}
	if (cfg->state_dir) {
		int r = chown_state_dir(cfg->state_dir, ra);
		if (r < 0) {
			log_msg(LOG_LVL_ERROR, "state_dir %s: cannot hand it to user %s: %s",
			        cfg->state_dir, ra->name, strerror(-r));
			return r;
		}
	}
	return become_user(ra);
}

/* setuid and friends, for good: 0, or -errno (logged). */
static int become_user(const struct run_as *ra)
{
	if (initgroups(ra->name, ra->gid) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0) {
		int e = errno;
		log_msg(LOG_LVL_ERROR, "cannot become user %s: %s", ra->name, strerror(e));
		return -e;
	}
	if (ra->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		log_msg(LOG_LVL_ERROR, "root could be regained after dropping privileges: stopping");
		return -EPERM;
	}
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)ra->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)ra->gid);
	struct log_kv kv[] = {{"user", ra->name}, {"uid", uid}, {"gid", gid}};
	log_kv(LOG_LVL_INFO, "dropped privileges", kv, ARRAY_SIZE(kv));
	return 0;
}

/* ---- TLS ------------------------------------------------------------ */

/*
 * The TLS context cfg asks for, or NULL in *ctx when TLS is off. A bad
 * pair is a config error: false, with "CONFIG:LINE: tls_key ..." in err,
 * the line of the key the message names (tls_cert's for the rest).
 */
static bool tls_from_config(const struct config *cfg, struct ssl_ctx_st **ctx, char *err,
                            size_t errlen)
{
	*ctx = NULL;
	if (!cfg->tls_cert)
		return true;
	char why[768];
	*ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_ciphers, why, sizeof(why));
	if (!*ctx) {
		int line = cfg->tls_cert_line;
		if (strncmp(why, "tls_key ", 8) == 0)
			line = cfg->tls_key_line;
		else if (strncmp(why, "tls_ciphers ", 12) == 0)
			line = cfg->tls_ciphers_line;
		if (line > 0)
			snprintf(err, errlen, "%s:%d: %s", cfg->path, line, why);
		else
			snprintf(err, errlen, "%s: %s", cfg->path, why);
		return false;
	}
	return true;
}

static void log_tls(const struct config *cfg, struct ssl_ctx_st *ctx)
{
	struct tls_cert_info ti;
	tls_ctx_info(ctx, &ti);
	struct log_kv kv[] = {
		{"cert", cfg->tls_cert}, {"subject", ti.subject}, {"serial", ti.serial},
		{"not_after", ti.not_after},
	};
	/* Served anyway: an expired certificate is the sender's call to
	 * refuse, and a renewal plus SIGHUP fixes it without a restart. */
	log_kv(ti.expired ? LOG_LVL_WARN : LOG_LVL_INFO,
	       ti.expired ? "tls certificate has expired" : "tls certificate loaded", kv,
	       ARRAY_SIZE(kv));
}

/* ---- serve ---------------------------------------------------------- */

struct daemon {
	const char *config_path;
	struct event_base *base;
	struct config *cfg;
	struct journal *journal;
	struct dispatcher *ds;
	struct server *srv;
	struct control *ctl;
	struct admin *admin;
	struct event *sighup, *sigterm, *sigint, *drain_timer, *prune_timer, *trim_timer;
	uint64_t trim_seen, trim_done; /* server_requests() at the last tick, at the last trim */
	bool draining;
	bool socket_activated; /* [server] listen is not ours to bind */
	bool tls_on;
};

static bool str_eq_null(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* How often the journal is pruned, and how soon again while a backlog of
 * prunable rows remains: each call deletes at most JOURNAL_PRUNE_BATCH
 * rows, so a delivery never waits long behind it. */
#define PRUNE_INTERVAL_MS 1000
#define PRUNE_BACKLOG_MS 50

static void on_prune(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *dm = arg;
	int n = journal_prune(dm->journal, now_wall_ms());
	if (n < 0)
		log_msg(LOG_LVL_WARN, "journal: pruning failed; will try again");
	int64_t ms = n >= JOURNAL_PRUNE_BATCH ? PRUNE_BACKLOG_MS : PRUNE_INTERVAL_MS;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(dm->prune_timer, &tv);
}

/*
 * A burst leaves glibc's heap holding what it freed. Once a whole tick
 * has passed without a request (and something came since the last trim),
 * hookd gives it back to the system: RSS after a burst falls back to near
 * the idle figure instead of staying at the burst's peak. A quiet daemon
 * is not trimmed again and again; a busy one is never trimmed mid-burst.
 */
#define TRIM_INTERVAL_MS 1000

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *dm = arg;
	uint64_t n = server_requests(dm->srv);
	if (n == dm->trim_seen && n != dm->trim_done && server_answering(dm->srv) == 0 &&
	    runner_active() == 0) {
		malloc_trim(0);
		dm->trim_done = n;
	}
	dm->trim_seen = n;
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *dm = arg;
	char err[1024];
	sdnotify_reloading();
	route_cache_clear(); /* a SIGHUP forgets remembered misses, whatever the config */
	struct config *cfg = config_load(dm->config_path, err, sizeof(err));
	struct ssl_ctx_st *tls = NULL;
	/* The certificate pair is reread on every reload (a renewal keeps its
	 * paths); a bad pair fails the whole reload, like any config error. */
	if (cfg && !tls_from_config(cfg, &tls, err, sizeof(err))) {
		config_unref(cfg);
		cfg = NULL;
	}
	if (!cfg) {
		struct log_kv kv[] = {{"error", err}};
		log_kv(LOG_LVL_ERROR, "reload failed, keeping the old config", kv, 1);
		metrics_reload(false);
		sdnotify_send("READY=1\nSTATUS=serving; the last reload failed, old config kept");
		return;
	}
	if (strcmp(cfg->listen, dm->cfg->listen) != 0 && !dm->socket_activated)
		log_msg(LOG_LVL_WARN, "listen changed to %s: takes effect at the next start",
		        cfg->listen);
	if (strcmp(cfg->admin_listen ? cfg->admin_listen : "",
	           dm->cfg->admin_listen ? dm->cfg->admin_listen : "") != 0)
		log_msg(LOG_LVL_WARN, "[admin] listen changed: takes effect at the next start");
	if (!str_eq_null(cfg->user, dm->cfg->user) || !str_eq_null(cfg->group, dm->cfg->group))
		log_msg(LOG_LVL_WARN, "user or group changed: takes effect at the next start");
	config_unref(dm->cfg);
	dm->cfg = cfg;
	log_setup((enum log_format)cfg->log_format);
	server_set_config(dm->srv, cfg);
	if (tls || dm->tls_on) {
		/* Turning TLS on or off takes effect at once, like the pair. */
		server_set_tls(dm->srv, tls);
		dm->tls_on = tls != NULL;
		if (tls)
			log_tls(cfg, tls);
		else
			log_msg(LOG_LVL_WARN, "tls turned off: new connections get plain HTTP");
		tls_ctx_free(tls);
	}
	dispatcher_set_config(dm->ds, cfg);
	log_msg(LOG_LVL_INFO, "config reloaded from %s", dm->config_path);
	metrics_reload(true);
	sdnotify_send("READY=1\nSTATUS=serving; config reloaded");
}

static void check_drained(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *dm = arg;
	/* Exiting closes every connection: an answer still in its output
	 * buffer would be cut short, so those go out whole first. */
	if (dispatcher_idle(dm->ds) && runner_active() == 0 && server_answering(dm->srv) == 0) {
		event_base_loopexit(dm->base, NULL);
		return;
	}
	struct timeval tv = {0, 50000};
	evtimer_add(dm->drain_timer, &tv);
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *dm = arg;
	if (dm->draining)
		return;
	dm->draining = true;
	log_msg(LOG_LVL_INFO, "%s received: finishing running deliveries",
	        sig == SIGTERM ? "SIGTERM" : "SIGINT");
	sdnotify_send("STOPPING=1\nSTATUS=draining: finishing running deliveries");
	admin_set_draining(dm->admin);
	server_drain(dm->srv);
	dispatcher_drain(dm->ds);
	check_drained(-1, 0, dm);
}

/* Logs one "listening" line (the harness and users look for it). */
static void log_listening(const char *msg, int fd, const char *source, const char *config,
                          bool tls, char *addr, size_t addrlen)
{
	http_bound_address(fd, addr, addrlen);
	struct log_kv kv[] = {
		{"addr", addr}, {"source", source}, {"version", HOOKD_VERSION}, {"config", config},
		{"tls", tls ? "on" : NULL},
	};
	log_kv(LOG_LVL_INFO, msg, kv, ARRAY_SIZE(kv));
}

/*
 * The webhook listener and the admin listener: from socket activation when
 * systemd passed sockets (one named "admin", by FileDescriptorName=, is the
 * admin's; the others are the webhook server's), else bound from [server]
 * listen and [admin] listen. addr gets the webhook listener's address.
 */
static int open_listeners(struct daemon *dm, const char *config, char *addr, size_t addrlen)
{
	char err[1024];
	struct sd_socket *socks = NULL;
	int n = sdlisten_take(&socks, err, sizeof(err));
	if (n < 0) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		return -1;
	}
	int rc = -1;
	bool admin_passed = false;
	snprintf(addr, addrlen, "?");
	for (int i = 0; i < n; i++) {
		if (strcmp(socks[i].name, "admin") == 0) {
			admin_passed = true;
			continue;
		}
		if (server_listen_fd(dm->srv, socks[i].fd) < 0) {
			log_msg(LOG_LVL_ERROR, "cannot serve on socket-activated fd %d", socks[i].fd);
			goto out;
		}
		dm->socket_activated = true;
		log_listening("listening", socks[i].fd, "systemd", config, dm->tls_on, addr, addrlen);
	}
	if (!dm->socket_activated) {
		int fd = http_listen(dm->cfg->listen, err, sizeof(err));
		if (fd < 0) {
			log_msg(LOG_LVL_ERROR, "%s", err);
			goto out;
		}
		if (server_listen_fd(dm->srv, fd) < 0) {
			close(fd);
			log_msg(LOG_LVL_ERROR, "cannot listen on %s", dm->cfg->listen);
			goto out;
		}
		log_listening("listening", fd, "config", config, dm->tls_on, addr, addrlen);
	}
	if (admin_passed || dm->cfg->admin_listen)
		dm->admin = admin_new(dm->base, dm->ds);
	char aaddr[128];
	for (int i = 0; i < n; i++) {
		if (strcmp(socks[i].name, "admin") != 0)
			continue;
		if (admin_listen_fd(dm->admin, socks[i].fd) < 0) {
			log_msg(LOG_LVL_ERROR, "cannot serve on socket-activated fd %d", socks[i].fd);
			goto out;
		}
		log_listening("admin listening", socks[i].fd, "systemd", config, false, aaddr,
		              sizeof(aaddr));
	}
	if (!admin_passed && dm->cfg->admin_listen) {
		int fd = http_listen(dm->cfg->admin_listen, err, sizeof(err));
		if (fd < 0) {
			log_msg(LOG_LVL_ERROR, "[admin] %s", err);
			goto out;
		}
		if (admin_listen_fd(dm->admin, fd) < 0) {
			close(fd);
			log_msg(LOG_LVL_ERROR, "cannot listen on %s", dm->cfg->admin_listen);
			goto out;
		}
		log_listening("admin listening", fd, "config", config, false, aaddr, sizeof(aaddr));
	}
	rc = 0;
out:
	free(socks);
	return rc;
}

static int cmd_serve(const struct options *o)
{
	struct daemon dm;
	memset(&dm, 0, sizeof(dm));
	dm.config_path = o->config;
	dm.cfg = load_or_die(o->config);
	log_setup((enum log_format)dm.cfg->log_format);
	metrics_start();
	char nerr[512];
	if (sdnotify_open(nerr, sizeof(nerr)) < 0)
		log_msg(LOG_LVL_WARN, "%s: no readiness notifications", nerr);
	char err[1024];
	struct run_as ra;
	if (run_as_resolve(dm.cfg, &ra, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_unref(dm.cfg);
		return EXIT_USAGE;
	}
	int rc = 1;
	struct ssl_ctx_st *tls = NULL;
	if (!tls_from_config(dm.cfg, &tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_unref(dm.cfg);
		free(ra.name);
		return EXIT_USAGE;
	}
	dm.base = event_base_new();
	if (!dm.base || runner_init(dm.base) < 0) {
		log_msg(LOG_LVL_ERROR, "cannot set up the event loop");
		return 1;
	}
	if (dm.cfg->state_dir) {
		dm.journal = journal_open(dm.cfg->state_dir, dm.cfg->journal_body_max,
		                          dm.cfg->journal_keep_ms, dm.cfg->journal_max, err,
		                          sizeof(err));
		if (!dm.journal) {
			log_msg(LOG_LVL_ERROR, "journal: %s", err);
			goto out;
		}
	}
	dm.ds = dispatcher_new(dm.base, dm.cfg, dm.journal);
	dm.srv = server_new(dm.base, dm.cfg, dm.ds);
	if (tls) {
		server_set_tls(dm.srv, tls);
		dm.tls_on = true;
		log_tls(dm.cfg, tls);
		/* The server holds its own reference; a reload replaces it. */
		tls_ctx_free(tls);
		tls = NULL;
	}
	/* Signals are caught before the "listening" line: whoever waits for
	 * it may send SIGHUP or SIGTERM at once. */
	dm.sighup = evsignal_new(dm.base, SIGHUP, on_reload, &dm);
	dm.sigterm = evsignal_new(dm.base, SIGTERM, on_terminate, &dm);
	dm.sigint = evsignal_new(dm.base, SIGINT, on_terminate, &dm);
	dm.drain_timer = evtimer_new(dm.base, check_drained, &dm);
	evsignal_add(dm.sighup, NULL);
	evsignal_add(dm.sigterm, NULL);
	evsignal_add(dm.sigint, NULL);
	char addr[128];
	if (open_listeners(&dm, o->config, addr, sizeof(addr)) < 0)
		goto out;
	/* Bound (and the journal open): nothing more needs root. The control
	 * socket is made after this, as the user that will serve it. */
	if (drop_privileges(dm.cfg, &ra) < 0)
		goto out;
	if (dm.journal) {
		dm.ctl = control_new(dm.base, dm.cfg->state_dir, dm.ds, dm.journal, err, sizeof(err));
		if (!dm.ctl)
			log_msg(LOG_LVL_WARN, "%s: hookd replay will not reach this daemon", err);
	}
	if (dispatch_recover(dm.ds) < 0)
		log_msg(LOG_LVL_ERROR, "journal: cannot recover pending deliveries");
	if (dm.journal) {
		dm.prune_timer = evtimer_new(dm.base, on_prune, &dm);
		on_prune(-1, 0, &dm);
	}
	dm.trim_timer = event_new(dm.base, -1, EV_PERSIST, on_trim, &dm);
	struct timeval trim_tv = {TRIM_INTERVAL_MS / 1000, (TRIM_INTERVAL_MS % 1000) * 1000};
	evtimer_add(dm.trim_timer, &trim_tv);
	sdnotify_send("READY=1\nSTATUS=serving on %s", addr);
	if (sdnotify_watchdog_start(dm.base) > 0)
		log_msg(LOG_LVL_INFO, "systemd watchdog: keep-alive every %llums",
		        (unsigned long long)(sdnotify_watchdog_usec() / 2000));
	event_base_dispatch(dm.base);
	log_msg(LOG_LVL_INFO, "stopped");
	rc = 0;
out:
	if (dm.sighup) {
		/* Freeing the signal events restores the default actions; a
		 * second SIGTERM (a supervisor's impatience) would then kill a
		 * daemon that has already finished cleanly. From here on these
		 * signals are ignored. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGHUP);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigprocmask(SIG_BLOCK, &set, NULL);
		event_free(dm.sighup);
		event_free(dm.sigterm);
		event_free(dm.sigint);
		event_free(dm.drain_timer);
		signal(SIGHUP, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
	}
	if (dm.prune_timer)
		event_free(dm.prune_timer);
	if (dm.trim_timer)
		event_free(dm.trim_timer);
	control_free(dm.ctl);
	admin_free(dm.admin);
	server_free(dm.srv);
	dispatcher_free(dm.ds);
	journal_close(dm.journal);
	runner_shutdown();
	route_cache_clear();
	tls_ctx_free(tls);
	config_unref(dm.cfg);
	sdnotify_close();
	metrics_reset();
	if (dm.base)
		event_base_free(dm.base);
	free(ra.name);
	return rc;
}

/* ---- run and env ---------------------------------------------------- */

static unsigned char *read_all(const char *path, size_t *len, size_t max)
{
	FILE *f = path && strcmp(path, "-") != 0 ? fopen(path, "rb") : stdin;
	if (!f)
		return NULL;
	struct strbuf sb;
	sb_init(&sb);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		sb_append(&sb, buf, n);
		if (sb.len > max)
			break;
	}
	bool err = ferror(f);
	if (f != stdin)
		fclose(f);
	if (err) {
		sb_free(&sb);
		return NULL;
	}
	*len = sb.len;
	return (unsigned char *)sb_steal(&sb);
}

/* Builds the delivery `run` and `env` work on; exits 2 on bad input. */
static struct delivery *local_delivery(const struct options *o, struct config *cfg)
{
	if (o->nargs < 1)
		exit(usage_error("%s needs an EVENT", o->command));
	if (o->nargs > 2)
		exit(usage_error("too many arguments for %s", o->command));
	const char *event = o->args[0];
	if (!event_name_valid(event, strlen(event)))
		exit(usage_error("invalid event name '%s'", event));
	const struct endpoint *ep = o->endpoint ? config_endpoint_by_name(cfg, o->endpoint)
	                                        : &cfg->endpoints[0];
	if (!ep)
		exit(usage_error("no endpoint named '%s'", o->endpoint));
	const char *file = o->nargs > 1 ? o->args[1] : NULL;
	size_t len = 0;
	unsigned char *body = read_all(file, &len, cfg->max_body);
	if (!body) {
		fprintf(stderr, "hookd: cannot read %s: %s\n", file ? file : "stdin", strerror(errno));
		exit(EXIT_USAGE);
	}
	if (len > cfg->max_body) {
		fprintf(stderr, "hookd: %s: payload larger than max_body\n", file ? file : "stdin");
		free(body);
		config_unref(cfg);
		exit(EXIT_USAGE);
	}
	char err[256];
	json_object *root = payload_parse_json((const char *)body, len, err, sizeof(err));
	if (!root) {
		fprintf(stderr, "hookd: %s: %s\n", file ? file : "stdin", err);
		free(body);
		config_unref(cfg);
		exit(EXIT_USAGE);
	}
	struct delivery *d = delivery_new(cfg, ep, event, NULL, "", body, len, root, NULL, NULL);
	json_object_put(root);
	free(body);
	d->async = false; /* run and env are always the synchronous path */
	return d;
}

struct run_state {
	struct event_base *base;
	bool done;
	int http;
	char *json;
};

static void on_run_done(struct delivery *d, void *arg)
{
	struct run_state *rs = arg;
	rs->done = true;
	rs->http = d->out.http;
	rs->json = delivery_response_json(d, d->cfg->include_output);
	/* The SIGCHLD handler would keep the loop alive for ever. */
	event_base_loopexit(rs->base, NULL);
}

static int cmd_run(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	log_setup((enum log_format)cfg->log_format);
	struct run_as ra;
	if (!run_as_or_fail(cfg, &ra))
		return EXIT_USAGE;
	/* The payload file is read as the one who runs this; then, run as
	 * root with `user =`, the hook runs as that user, as it would under
	 * the daemon: what this shows is what a delivery would do. */
	struct delivery *d = local_delivery(o, cfg);
	int dropped = geteuid() == 0 && ra.set ? become_user(&ra) : 0;
	free(ra.name);
	if (dropped < 0) {
		delivery_free(d);
		config_unref(cfg);
		return 1;
	}
	struct event_base *base = event_base_new();
	runner_init(base);
	runner_set_output_passthrough(true);
	struct dispatcher *ds = dispatcher_new(base, cfg, NULL);
	struct run_state rs = {.base = base};
	dispatch_submit(ds, d, on_run_done, &rs);
	if (!rs.done)
		event_base_dispatch(base);
	int rc = rs.http >= 200 && rs.http < 300 ? 0 : 1;
	if (rs.json)
		printf("%s\n", rs.json);
	free(rs.json);
	dispatcher_free(ds);
	runner_shutdown();
	route_cache_clear();
	event_base_free(base);
	config_unref(cfg);
	return rc;
}

/* NAME=value, the value shell-quoted as $'...' when it holds a control
 * character, so the output can be read back by a shell. */
static void print_env_entry(const char *entry)
{
	const char *eq = strchr(entry, '=');
	const char *v = eq + 1;
	bool plain = true;
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			plain = false;
	}
	if (plain) {
		puts(entry);
		return;
	}
	fwrite(entry, 1, (size_t)(v - entry), stdout);
	fputs("$'", stdout);
	for (const char *p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		switch (c) {
		case '\n': fputs("\\n", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\'': fputs("\\'", stdout); break;
		default:
			if (c < 0x20 || c == 0x7f)
				printf("\\x%02x", c);
			else
				putchar(c);
		}
	}
	fputs("'\n", stdout);
}

static int cmd_env(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	struct delivery *d = local_delivery(o, cfg);
	struct route r;
	memset(&r, 0, sizeof(r));
	route_resolve(d->ep->hooks_dir, d->event, &r);
	char name[ENV_META_NAME_MAX];
	snprintf(name, sizeof(name), "%sHOOK", cfg->env_prefix);
	envlist_add(&d->env, name, r.nhooks ? r.hooks[0].rel : (r.name ? r.name : ""));
	snprintf(name, sizeof(name), "%sATTEMPT", cfg->env_prefix);
	envlist_add(&d->env, name, "1");
	route_free(&r);
	route_cache_clear();
	envlist_sort(&d->env);
	for (size_t i = 0; i < d->env.n; i++)
		print_env_entry(d->env.v[i]);
	delivery_free(d);
	config_unref(cfg);
	return 0;
}

/* ---- check ---------------------------------------------------------- */

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_routes(const char *hooks_dir)
{
	DIR *dir = opendir(hooks_dir);
	if (!dir) {
		printf("  warning: hooks dir %s: %s\n", hooks_dir, strerror(errno));
		return;
	}
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	while ((e = readdir(dir))) {
		if (!event_name_valid(e->d_name, strlen(e->d_name)) && strcmp(e->d_name, "_default") != 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		struct route r;
		memset(&r, 0, sizeof(r));
		route_resolve(hooks_dir, names[i], &r);
		if (r.name && strcmp(r.name, names[i]) == 0) {
			if (r.error) {
				printf("  route %s: error: %s\n", names[i], r.error);
			} else {
				printf("  route %s:", names[i]);
				for (size_t h = 0; h < r.nhooks; h++)
					printf(" %s", r.hooks[h].rel);
				if (r.nhooks == 0)
					printf(" (empty directory)");
				printf("\n");
				for (size_t k = 0; k < r.nskipped; k++)
					printf("    warning: skipped, not executable: %s\n", r.skipped[k]);
			}
		}
		route_free(&r);
		free(names[i]);
	}
	free(names);
}

static int cmd_check(const struct options *o)
{
	struct config *cfg = load_or_die(o->config);
	char err[1024];
	struct run_as ra;
	if (!run_as_or_fail(cfg, &ra))
		return EXIT_USAGE;
	free(ra.name);
	struct ssl_ctx_st *tls = NULL;
	if (!tls_from_config(cfg, &tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_unref(cfg);
		return EXIT_USAGE;
	}
	printf("config %s: ok\n", o->config);
	printf("listen %s%s\n", cfg->listen, tls ? " (https)" : "");
	if (cfg->admin_listen)
		printf("admin %s\n", cfg->admin_listen);
	if (tls) {
		struct tls_cert_info ti;
		tls_ctx_info(tls, &ti);
		printf("tls cert=%s key=%s subject=%s serial=%s not_after=%s%s\n", cfg->tls_cert,
		       cfg->tls_key, ti.subject, ti.serial, ti.not_after,
		       ti.expired ? " (expired)" : "");
		tls_ctx_free(tls);
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		const struct endpoint *ep = &cfg->endpoints[i];
		printf("endpoint %s: POST %s scheme=%s hooks_dir=%s secrets=%zu\n", ep->name, ep->path,
		       scheme_name(ep->scheme), ep->hooks_dir, ep->nsecrets);
		print_routes(ep->hooks_dir);
	}
	config_unref(cfg);
	return 0;
}

/* ---- journal commands ----------------------------------------------- */

/* The journal, read-only. missing_ok: NULL when hookd has not written
 * one yet (for `events`, an empty list); any other failure exits 1. */
static struct journal *open_journal_ro(const struct options *o, struct config **cfgp,
                                       bool missing_ok)
{
	struct config *cfg = load_or_die(o->config);
	*cfgp = cfg;
	if (!cfg->state_dir) {
		fprintf(stderr, "hookd: the journal is off: set [server] state_dir in %s\n", o->config);
		exit(EXIT_USAGE);
	}
	if (missing_ok && journal_missing(cfg->state_dir))
		return NULL;
	char err[512];
	struct journal *j = journal_open_readonly(cfg->state_dir, err, sizeof(err));
	if (!j) {
		fprintf(stderr, "hookd: journal: %s\n", err);
		exit(1);
	}
	return j;
}

static int cmd_events(const struct options *o)
{
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, true);
	int rc = journal_print_events(j, &o->filter);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

static int cmd_show(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s needs one delivery ID", o->command);
	struct config *cfg;
	struct journal *j = open_journal_ro(o, &cfg, false);
	int rc = journal_print_show(j, o->endpoint, o->args[0]);
	journal_close(j);
	config_unref(cfg);
	return rc;
}

static int cmd_replay(const struct options *o)
{
	if (o->nargs != 1)
		return usage_error("%s needs one delivery ID", o->command);
	struct config *cfg = load_or_die(o->config);
	if (!cfg->state_dir) {
		fprintf(stderr, "hookd: the journal is off: set [server] state_dir in %s\n", o->config);
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
	static const struct {
		const char *name;
		int (*fn)(const struct options *);
		int maxargs;
	} commands[] = {
		{"serve", cmd_serve, 0}, {"check", cmd_check, 0}, {"run", cmd_run, 2},
		{"env", cmd_env, 2},     {"events", cmd_events, 0}, {"show", cmd_show, 1}, {"replay", cmd_replay, 1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(o.command, commands[i].name) != 0)
			continue;
		if (o.nargs > commands[i].maxargs)
			return usage_error("too many arguments for %s", o.command);
		rc = commands[i].fn(&o);
		/* What the modules keep between deliveries, for a clean exit. */
		delivery_cleanup();
		payload_cleanup();
		verify_cleanup();
		return rc;
	}
	return usage_error("unknown command '%s'", o.command);
}
