/*
 * `hookd serve`: the daemon. Start-up (config, TLS, journal, listeners, the
 * privilege drop, the control socket, recovery), the event loop, the
 * signals (SIGHUP reloads, SIGTERM and SIGINT drain), the journal's pruning
 * and the heap trim, and the orderly stop.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "command.h"
#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "fdlimit.h"
#include "hookuser.h"
#include "http.h"
#include "fleet.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "preflight.h"
#include "privdrop.h"
#include "recovery.h"
#include "route.h"
#include "runner.h"
#include "sdlisten.h"
#include "sdnotify.h"
#include "server.h"
#include "tls.h"
#include "util.h"
#include "version.h"

/* ---- TLS ------------------------------------------------------------ */

/* command.h says what it returns; `check` uses it too. */
bool tls_from_config(const struct config *cfg, struct ssl_ctx_st **ctx, char *err,
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
	struct fleet *fleet; /* a shared journal's upkeep */
	struct event *sighup, *sigterm, *sigint, *drain_timer, *prune_timer, *trim_timer;
	uint64_t trim_seen, trim_done; /* server_requests() at the last tick, at the last trim */
	bool draining;
	bool socket_activated; /* [server] listen is not ours to bind */
	bool tls_on;
	const struct hook_user *hu; /* who hooks run as, once resolved */
	/* The sockets bound, logged as "listening" once hookd runs as it will
	 * serve (privileges dropped, the control socket made): whoever waits
	 * for that line finds hookd's own user, not root's. */
	struct listened {
		int fd;
		bool admin;
		const char *source; /* "systemd" or "config" */
	} *listened;
	int nlistened;
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

/* What the config holds that is valid but unwise (a short secret). */
static void log_workdir(const char *why, void *ctx)
{
	(void)ctx;
	log_msg(LOG_LVL_ERROR, "%s", why);
}

static void log_config_warnings(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nwarnings; i++)
		log_msg(LOG_LVL_WARN, "%s", cfg->warnings[i]);
	/* It may yet be made; until then each hook that would run there fails. */
	preflight_workdirs(cfg, log_workdir, NULL);
}

/* Enough open files for what the config allows (fdlimit.h), or a warning. */
static void raise_fd_limit(const struct config *cfg)
{
	char msg[512];
	enum fdlimit_outcome o = fdlimit_apply(cfg, msg, sizeof(msg));
	if (o != FDLIMIT_ENOUGH)
		log_msg(o == FDLIMIT_SHORT ? LOG_LVL_WARN : LOG_LVL_INFO, "%s", msg);
}

/*
 * The journal is opened once, at start. A config validated against another
 * journal than the one open (one added: async events and respond_within's
 * default need it; one removed or moved) would have hookd answer 202 with
 * nothing on disk, or journal where the config no longer says: such a
 * reload fails whole, the old config kept, and says to restart.
 */
static bool journal_unchanged(const struct config *next, const struct config *now, char *err,
                              size_t errlen)
{
	const char *key = !str_eq_null(next->state_dir, now->state_dir) ? "state_dir"
	                  : !str_eq_null(next->journal_url, now->journal_url) ? "journal"
	                                                                      : NULL;
	if (!key)
		return true;
	snprintf(err, errlen, "[server] %s changed: the journal opens only at start; restart hookd",
	         key);
	return false;
}

/* A reload's end for systemd: ready again, or, while stopping, only the
 * status (the drain goes on). */
static void notify_reloaded(const struct daemon *dm, const char *what)
{
	if (dm->draining)
		sdnotify_send("STATUS=draining: finishing running deliveries; %s", what);
	else
		sdnotify_send("READY=1\nSTATUS=serving; %s", what);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *dm = arg;
	char err[1024];
	/* Stopping, systemd has been told so (STOPPING=1): a reload then must
	 * not tell it "ready, serving" again. */
	if (!dm->draining)
		sdnotify_reloading();
	route_cache_clear(); /* a SIGHUP forgets remembered misses, whatever the config */
	struct config *cfg = config_load(dm->config_path, err, sizeof(err));
	struct ssl_ctx_st *tls = NULL;
	/* The certificate pair is reread on every reload (a renewal keeps its
	 * paths); a bad pair fails the whole reload, like any config error. */
	if (cfg && !journal_unchanged(cfg, dm->cfg, err, sizeof(err))) {
		config_unref(cfg);
		cfg = NULL;
	}
	if (cfg && !tls_from_config(cfg, &tls, err, sizeof(err))) {
		config_unref(cfg);
		cfg = NULL;
	}
	if (!cfg) {
		struct log_kv kv[] = {{"error", err}};
		log_kv(LOG_LVL_ERROR, "reload failed, keeping the old config", kv, 1);
		metrics_reload(false);
		notify_reloaded(dm, "the last reload failed, old config kept");
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
	if (!str_eq_null(cfg->hook_user, dm->cfg->hook_user) ||
	    !str_eq_null(cfg->hook_group, dm->cfg->hook_group))
		log_msg(LOG_LVL_WARN, "hook_user or hook_group changed: takes effect at the next start");
	config_unref(dm->cfg);
	dm->cfg = cfg;
	log_setup((enum log_format)cfg->log_format);
	log_config_warnings(cfg);
	raise_fd_limit(cfg);
	/* The password entry may have changed (a new home): read again. */
	hook_identity_install(dm->hu, geteuid());
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
	dispatch_resume_left(dm->ds);
	log_msg(LOG_LVL_INFO, "config reloaded from %s", dm->config_path);
	metrics_reload(true);
	notify_reloaded(dm, "config reloaded");
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

/* The last line: with a journal, what the drain left in it for the next
 * start (async deliveries not yet started, and those waiting for a retry). */
static void log_stopped(const struct daemon *dm)
{
	if (!dm->journal) {
		log_msg(LOG_LVL_INFO, "stopped");
		return;
	}
	int queued, retry_wait;
	dispatcher_left(dm->ds, &queued, &retry_wait);
	char q[16], r[16];
	snprintf(q, sizeof(q), "%d", queued);
	snprintf(r, sizeof(r), "%d", retry_wait);
	struct log_kv kv[] = {LOG_INT("left_queued", q), LOG_INT("left_retry_wait", r)};
	log_kv(LOG_LVL_INFO, "stopped", kv, ARRAY_SIZE(kv));
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *dm = arg;
	const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
	if (dm->draining) {
		/* Said, so that whoever sent it again knows why hookd is still
		 * there: the drain goes on (SIGKILL would cut it short). */
		int queued, running, retry_wait;
		dispatcher_pending(dm->ds, &queued, &running, &retry_wait);
		log_msg(LOG_LVL_INFO,
		        "%s received again: already stopping; still finishing %d running and %d "
		        "waiting deliveries",
		        name, running, queued);
		return;
	}
	dm->draining = true;
	log_msg(LOG_LVL_INFO, "%s received: finishing running deliveries", name);
	sdnotify_send("STOPPING=1\nSTATUS=draining: finishing running deliveries");
	admin_set_draining(dm->admin);
	server_drain(dm->srv);
	dispatcher_drain(dm->ds);
	check_drained(-1, 0, dm);
}

static void note_listening(struct daemon *dm, int fd, bool admin, const char *source)
{
	dm->listened[dm->nlistened++] = (struct listened){fd, admin, source};
}

/* Logs the "listening" lines (the harness and users look for them), the
 * webhook listeners' first; addr gets the first webhook listener's
 * address. */
static void log_listening(const struct daemon *dm, const char *config, char *addr,
                          size_t addrlen)
{
	snprintf(addr, addrlen, "?");
	bool first = true;
	for (int admin = 0; admin <= 1; admin++) {
		for (int i = 0; i < dm->nlistened; i++) {
			const struct listened *l = &dm->listened[i];
			if (l->admin != admin)
				continue;
			char here[128];
			http_bound_address(l->fd, here, sizeof(here));
			if (!admin && first) {
				snprintf(addr, addrlen, "%s", here);
				first = false;
			}
			struct log_kv kv[] = {
				{"addr", here}, {"source", l->source}, {"version", HOOKD_VERSION},
				{"config", config}, {"tls", !admin && dm->tls_on ? "on" : NULL},
			};
			log_kv(LOG_LVL_INFO, admin ? "admin listening" : "listening", kv,
			       ARRAY_SIZE(kv));
		}
	}
}

/*
 * The webhook listener and the admin listener: from socket activation when
 * systemd passed sockets (one named "admin", by FileDescriptorName=, is the
 * admin's; the others are the webhook server's), else bound from [server]
 * listen and [admin] listen. Each is noted for log_listening. Returns 0, -1,
 * or -2 for a config error (an admin socket open to all).
 */
static int open_listeners(struct daemon *dm)
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
	/* Every passed socket, and the two bound from the config at most. */
	dm->listened = calloc((size_t)n + 2, sizeof(*dm->listened));
	if (!dm->listened) {
		log_msg(LOG_LVL_ERROR, "out of memory");
		goto out;
	}
	/* The same rule as for [admin] listen (config_checks.c): without a token
	 * the deliveries page and API are open to whoever connects. */
	bool tokens = dm->cfg->admin_token || dm->cfg->admin_readonly_token;
	for (int i = 0; i < n && !tokens; i++) {
		char where[160];
		if (strcmp(socks[i].name, "admin") == 0 &&
		    !sdlisten_is_local(socks[i].fd, where, sizeof(where))) {
			log_msg(LOG_LVL_ERROR,
			        "the admin socket passed by systemd (%s) is not loopback or a unix "
			        "socket, and no [admin] token_file is set: the deliveries page and API "
			        "would be open to anyone who can connect; set token_file, or bind the "
			        "socket unit to 127.0.0.1, [::1] or a unix path",
			        where);
			rc = -2;
			goto out;
		}
	}
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
		note_listening(dm, socks[i].fd, false, "systemd");
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
		note_listening(dm, fd, false, "config");
	}
	if (admin_passed || dm->cfg->admin_listen)
		dm->admin = admin_new(dm->base, dm->ds);
	for (int i = 0; i < n; i++) {
		if (strcmp(socks[i].name, "admin") != 0)
			continue;
		if (admin_listen_fd(dm->admin, socks[i].fd) < 0) {
			log_msg(LOG_LVL_ERROR, "cannot serve on socket-activated fd %d", socks[i].fd);
			goto out;
		}
		note_listening(dm, socks[i].fd, true, "systemd");
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
		note_listening(dm, fd, true, "config");
	}
	rc = 0;
out:
	free(socks);
	return rc;
}

int cmd_serve(const struct options *o)
{
	struct daemon dm;
	memset(&dm, 0, sizeof(dm));
	dm.config_path = o->config;
	dm.cfg = load_or_die(o->config);
	log_setup((enum log_format)dm.cfg->log_format);
	log_config_warnings(dm.cfg);
	raise_fd_limit(dm.cfg);
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
	struct hook_user hu;
	if (hook_user_resolve(dm.cfg, &hu, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		config_unref(dm.cfg);
		free(ra.name);
		return EXIT_USAGE;
	}
	int rc = 1;
	struct ssl_ctx_st *tls = NULL;
	if (!tls_from_config(dm.cfg, &tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		config_unref(dm.cfg);
		free(ra.name);
		hook_user_free(&hu);
		return EXIT_USAGE;
	}
	dm.base = event_base_new();
	/* Three priorities: every event at the middle one (libevent's default),
	 * but the journal's group commit at the last, which runs once a turn
	 * has nothing else to do (groupcommit.c). Before any event is made. */
	if (dm.base && event_base_priority_init(dm.base, 3) < 0) {
		event_base_free(dm.base);
		dm.base = NULL;
	}
	if (!dm.base || runner_init(dm.base) < 0) {
		log_msg(LOG_LVL_ERROR, "cannot set up the event loop");
		return 1;
	}
	/* The SQLite journal makes it; a shared one's control socket needs it too. */
	if (dm.cfg->journal_url && dm.cfg->state_dir &&
	    state_dir_make(dm.cfg->state_dir, err, sizeof(err)) < 0) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		goto out;
	}
	if (journal_configured(dm.cfg)) {
		struct journal_opts jo;
		journal_opts_from_config(dm.cfg, &jo);
		dm.journal = journal_open(&jo, err, sizeof(err));
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
	int lrc = open_listeners(&dm);
	if (lrc < 0) {
		if (lrc == -2)
			rc = EXIT_USAGE;
		goto out;
	}
	/* Bound (and the journal open): nothing more needs root. The control
	 * socket is made after this, as the user that will serve it. */
	if (drop_privileges(dm.cfg, &ra, &hu) < 0)
		goto out;
	runner_set_hook_user(&hu);
	dm.hu = &hu;
	hook_identity_install(&hu, geteuid());
	if (dm.journal && dm.cfg->state_dir) {
		dm.ctl = control_new(dm.base, dm.cfg->state_dir, dm.ds, dm.journal, err, sizeof(err));
		if (!dm.ctl)
			log_msg(LOG_LVL_WARN, "%s: hookd replay will not reach this daemon", err);
	}
	/* Before the journal's pending deliveries are taken up, which may take
	 * a while with a large backlog: sockets accept meanwhile, and the
	 * loop serves them once it runs. */
	char addr[128];
	log_listening(&dm, o->config, addr, sizeof(addr));
	free(dm.listened);
	dm.listened = NULL;
	if (dispatch_recover(dm.ds) < 0)
		log_msg(LOG_LVL_ERROR, "journal: cannot recover pending deliveries");
	if (journal_shared(dm.journal))
		dm.fleet = fleet_new(dm.base, dm.ds, dm.journal, dm.cfg->lease_ms);
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
	log_stopped(&dm);
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
	fleet_free(dm.fleet);
	control_free(dm.ctl);
	admin_free(dm.admin);
	server_free(dm.srv);
	dispatcher_free(dm.ds);
	recovery_forget_left();
	/* Stopped cleanly, its last write done: the other instances adopt what
	 * it leaves at once, not a lease later. */
	if (rc == 0 && journal_shared(dm.journal))
		journal_release(dm.journal);
	journal_close(dm.journal);
	runner_shutdown();
	route_cache_clear();
	tls_ctx_free(tls);
	config_unref(dm.cfg);
	sdnotify_close();
	metrics_reset();
	if (dm.base)
		event_base_free(dm.base);
	free(dm.listened);
	free(ra.name);
	hook_user_free(&hu);
	return rc;
}
