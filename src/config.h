/*
 * The configuration: an INI file (inih) turned into a struct config with
 * every value validated and every path made absolute. A config is immutable
 * once loaded and reference counted: a SIGHUP swaps in a new one while
 * deliveries that started under the old one keep it until they finish.
 */
#ifndef HOOKD_CONFIG_H
#define HOOKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "netaddr.h"
#include "scheme.h"

/* env_prefix's longest; a metadata variable's name (the prefix and a
 * scheme's metadata variable, the longest suffix) then fits
 * ENV_META_NAME_MAX, with its terminating NUL. */
#define ENV_PREFIX_MAX 64
#define ENV_META_NAME_MAX (ENV_PREFIX_MAX + SCHEME_META_VAR_MAX + 1)

enum hmac_alg { HMAC_SHA256, HMAC_SHA512, HMAC_SHA1 };
enum sig_encoding { SIG_HEX, SIG_BASE64 };
enum delivery_mode { MODE_SYNC, MODE_ASYNC };

/* A secret's bytes as the scheme uses them (for `standard`, base64-decoded). */
struct secret {
	unsigned char *data;
	size_t len;
	int line; /* its line in secret_file or secret_env, 0: given inline */
};

/*
 * Settings that [server], [endpoint] and [event] may each give; the most
 * specific one that sets a field wins. `set` has one bit per field.
 */
enum {
	OPT_TIMEOUT = 1u << 0,
	OPT_MODE = 1u << 1,
	OPT_RETRIES = 1u << 2,
	OPT_RETRY_BACKOFF = 1u << 3,
	OPT_SERIALIZE = 1u << 4,
	OPT_ENV_MAX_VARS = 1u << 5,
	OPT_ENV_MAX_BYTES = 1u << 6,
	OPT_ENV_ARRAY_MAX = 1u << 7,
	OPT_WORKDIR = 1u << 8,
	OPT_MATCH = 1u << 9,
	OPT_RESPOND_WITHIN = 1u << 10,
};
struct delivery_opts {
	unsigned set;
	int64_t timeout_ms;       /* default: [server] timeout, 30s */
	enum delivery_mode mode;  /* default sync */
	int retries;              /* default 5 */
	int64_t retry_backoff_ms; /* default 10s */
	char *serialize;          /* dotted payload path, NULL: none */
	/* Which section the serialize key came from ("endpoint NAME" or
	 * "event NAME"): deliveries serialize only within one section. */
	char *serialize_scope;
	/* The payload's share of a hook's environment (README "Flattening
	 * the payload"): payload variables, their bytes, an array's elements. */
	int env_max_vars;       /* default 1024 */
	uint64_t env_max_bytes; /* default 512KiB */
	int env_array_max;      /* default 32 */
	/* The hooks' working directory, absolute; NULL: the directory that
	 * holds the hook (the hooks dir, or a directory route's). */
	char *workdir;
	/* [event] only: what the payload must meet for the hooks to run
	 * (match.h); NULL: anything. */
	struct match_rule *match;
	/* A sync delivery not over by then is answered 202 and goes on as an
	 * async one (dispatch.h); 0: off. Default: the endpoint scheme's
	 * (scheme.h), and off without state_dir. */
	int64_t respond_within_ms;
};

/* A pass_headers name as its variable's suffix, in place: ASCII letters
 * upper-cased, digits kept, any other byte '_' (X-Request-Id: X_REQUEST_ID). */
void header_var_suffix(char *name);

struct endpoint {
	char *name; /* the section's NAME */
	char *path; /* URL path, starts with '/' */
	const struct scheme *scheme; /* an entry of the registry (scheme.h) */
	struct secret *secrets; /* rotation: any one verifying suffices */
	size_t nsecrets;
	char *secret_env;       /* the variable secret_env named (not its value), or NULL */
	char *secret_file;      /* the file secret_file named, absolute, or NULL */
	char *hooks_dir;        /* absolute; default the server's */
	int64_t tolerance_ms;   /* default 5m: standard, stripe, slack */
	bool allow_sha1;        /* github: accept X-Hub-Signature sha1= */
	/* The endpoint's own credential header (header_is_credential): hmac's
	 * signature header, default "X-Signature"; token's token_header. */
	char *signature_header;
	enum hmac_alg algorithm;   /* hmac: default sha256 */
	enum sig_encoding encoding;/* hmac: default hex */
	char *signature_prefix;    /* hmac: e.g. "sha256=", NULL: none */
	char *event_header;        /* hmac/none: NULL unless set */
	char *event_field;         /* hmac/none: dotted path, default "event" */
	char *id_header;           /* hmac/none: NULL unless set */
	char *token_header;        /* token: NULL: Authorization */
	char *token_prefix;        /* token: NULL: the default ("Bearer" on Authorization); "": none */
	char *fixed_event;         /* `event`: every delivery's event, NULL: the body's */
	char **pass_headers;       /* request headers a hook gets as HOOK_HEADER_*, or NULL */
	struct cidr_list allow_from; /* empty: every address */
	/* A byte-identical body under another delivery id within this long
	 * is a duplicate (replaywin.h); 0: off. */
	int64_t replay_window_ms;
	struct delivery_opts opts;   /* what this section sets */
	int line;                    /* line of the section header */
};

struct event_rule {
	char *name; /* matched like a route: a:b:c, a:b, a, _default */
	struct delivery_opts opts;
	int line;
};

struct status_entry {
	int exit_code;
	int http;  /* 200 for a skip */
	bool skip; /* `EXIT = skip`: the delivery ends skipped, the rest of the chain unrun */
};
struct status_map {
	struct status_entry *v; /* exit -> HTTP; defaults 0=200, 75=503 */
	size_t n;
	int def;     /* default 500 */
	int timeout; /* default 504 */
};

struct config {
	int refs;
	char *path; /* the file as given */
	char *dir;  /* its directory, absolute */

	/* [server] */
	char *listen; /* "127.0.0.1:9000", "[::1]:9000" or "unix:/path" */
	char *hooks_dir;
	uint64_t max_body;      /* 1MiB */
	int64_t kill_grace_ms;  /* 5s */
	int max_running;        /* 16 */
	int max_queued;         /* 256 */
	char *env_prefix;       /* "HOOK_", at most ENV_PREFIX_MAX bytes */
	char **pass_env;        /* NULL-terminated; default PATH LANG TZ */
	bool include_output;    /* no */
	uint64_t max_headers;   /* 16KiB */
	int max_connections;    /* 1024 */
	int max_connections_per_client; /* 256; 0: no bound */
	uint64_t max_buffered;  /* 64MiB: body bytes being read, all connections */
	int64_t read_timeout_ms;/* 10s */
	int64_t idle_timeout_ms;/* 60s */
	/* Hook rlimits; -1 when unset. limit_cpu is in whole seconds. */
	int64_t limit_nofile, limit_nproc, limit_memory, limit_cpu;
	char *user, *group;     /* NULL unless set */
	char *hook_user, *hook_group; /* who hooks run as; NULL: hookd's own user */
	struct cidr_list trusted_proxies;
	char *state_dir;        /* NULL: journal off */
	int64_t journal_keep_ms;/* 30d */
	int64_t journal_max;    /* 100000 */
	uint64_t journal_body_max; /* 64KiB */
	uint64_t journal_max_bytes; /* 1GiB: the bodies of pending async deliveries */
	/* A journal shared by several instances (README "Running on several
	 * machines"): a libpq connection string (never with a password in it),
	 * the password journal_password_file holds, this hookd's name in it
	 * (default: the host name), and the lease on what it holds. */
	char *journal_url;      /* NULL: SQLite in state_dir */
	char *journal_password_file, *journal_password;
	char *instance;
	int64_t lease_ms;       /* 30s */
	char *tls_cert, *tls_key, *tls_ciphers; /* NULL unless set */
	int tls_cert_line, tls_key_line, tls_ciphers_line; /* where set, for messages */
	int user_line, group_line;                         /* the same */
	int hook_user_line, hook_group_line;               /* the same */
	int log_format;         /* enum log_format */
	struct delivery_opts server_opts; /* timeout from [server] */

	/* [admin] */
	char *admin_listen; /* NULL: off */
	/* The deliveries page's tokens (token_file, readonly_token_file): NULL
	 * when not set; then admin_listen must be loopback or a unix socket. */
	char *admin_token, *admin_readonly_token;
	char *admin_token_file, *admin_readonly_token_file;

	struct endpoint *endpoints;
	size_t nendpoints;
	struct event_rule *events;
	size_t nevents;
	struct status_map status;

	/* What is valid but unwise (a short secret): "FILE:LINE: message"
	 * lines that serve logs at start and check prints. */
	char **warnings;
	size_t nwarnings;
};

/*
 * Loads and validates `path`. On error returns NULL and writes one line,
 * "FILE:LINE: message" (or "FILE: message" where no line applies), to err.
 * A config that loads may still carry warnings (c->warnings).
 */
struct config *config_load(const char *path, char *err, size_t errlen);
struct config *config_ref(struct config *c);
void config_unref(struct config *c); /* NULL is fine */

const struct endpoint *config_endpoint_by_path(const struct config *c, const char *path);
const struct endpoint *config_endpoint_by_name(const struct config *c, const char *name);

/*
 * The settings in force for `event` at `ep`: [server] defaults, then the
 * endpoint's, then the first [event] rule matching the event's candidates
 * (a:b:c, a:b, a, _default). Strings in `out` point into the config.
 */
void config_delivery_opts(const struct config *c, const struct endpoint *ep,
                          const char *event, struct delivery_opts *out);

/* HTTP status for a hook's exit status (timeout handled by the caller). */
int status_for_exit(const struct status_map *m, int exit_code);
/* Whether [status] maps the exit status to skip. */
bool status_skips(const struct status_map *m, int exit_code);

#endif
