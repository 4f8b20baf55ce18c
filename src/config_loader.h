/*
 * config_loader: what the parts of the config loader share, and nothing
 * else includes. config.c reads the file and holds the key tables;
 * config_values.c parses one kind of value each, config_secrets.c the
 * endpoint secrets and admin tokens, config_checks.c what needs the whole
 * file. They all work on one struct loader and report through fail_at.
 */
#ifndef HOOKD_CONFIG_LOADER_H
#define HOOKD_CONFIG_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define MAX_EXIT 255
/* secret_file and the admin token files. */
#define SECRET_FILE_MAX_BYTES (64 * 1024)

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

#define WS " \t\r\n\v\f"

enum section_kind { SECT_NONE, SECT_SERVER, SECT_ENDPOINT, SECT_STATUS, SECT_EVENT, SECT_ADMIN };

struct loader;
struct keydef;
typedef bool (*setter_fn)(struct loader *L, const struct keydef *k, void *obj, const char *v);

/*
 * One key of a section: how to parse it and where it goes. `off` is the
 * field's offset in the section's object (struct config, endpoint or
 * event_rule); `min`/`max` bound numbers; `opt` is the delivery_opts bit
 * the key sets; `by_scheme` marks an endpoint key that only the schemes
 * listing it in their entry's `keys` take.
 */
struct keydef {
	const char *name;
	setter_fn set;
	size_t off;
	int64_t min, max;
	unsigned opt;
	bool by_scheme;
};

struct section_def {
	const char *name;
	enum section_kind kind;
	bool named;
	const struct keydef *keys;
	size_t nkeys;
	size_t opts_off; /* where the section's struct delivery_opts is */
};

/* Which keys a section has seen, over all of its appearances. */
struct seen_key {
	char *section;
	char *key;
	int line;
};

struct loader {
	struct config *c;
	char *text;
	size_t len, pos;
	int lineno;

	const struct section_def *def; /* NULL before the first header */
	char *section;                 /* "server", "endpoint NAME", ... */
	size_t idx;                    /* endpoint or event index */

	struct seen_key *seen;
	size_t nseen;
	int status_http[MAX_EXIT + 1];
	int status_line[MAX_EXIT + 1]; /* 0: not given in the file */
	int async_line;                /* first `mode = async` */
	int respond_within_line;       /* first `respond_within` above 0 */

	bool failed;
	int err_line; /* 0: the error has no line */
	char msg[512];
	char shown[2][96];
	int shown_next;
};

/* The field a keydef names in the section's object. */
#define FIELD(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->off))

/* The [endpoint] keys (config.c), for the checks of keys a scheme takes. */
extern const struct keydef endpoint_keys[];
extern const size_t endpoint_keys_n;

/* config.c: errors, small helpers, the seen-key set. */
bool fail_at(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void warn_at(struct loader *L, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *show(struct loader *L, const char *v);
bool bad_value(struct loader *L, const struct keydef *k, const char *v, const char *want);
bool env_name_valid(const char *s);
bool header_name_valid(const char *s);
char **split_words(const char *s, size_t *n);
void free_words(char **v);
char *abs_path(const struct config *c, const char *p);
char *read_file(const char *path, size_t max, size_t *len);
int seen_line(const struct loader *L, const char *section, const char *key);
void secrets_free(struct secret *v, size_t n);

/* config_values.c: the setters of the key tables, one a kind of value. */
void set_string(char **field, char *v);
bool set_duration(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_size(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_int(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_i64(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_bool(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_path(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_optpath(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_optstr(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_limit(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_limit_size(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_limit_cpu(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_listen(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_optlisten(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_env_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_pass_env(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_cidrs(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_log_format(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_url_path(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_scheme(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_algorithm(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_encoding(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_header(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_optheader(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_pass_headers(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_dotted(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_mode(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_respond_within(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_serialize(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_match(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_token_prefix(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_fixed_event(struct loader *L, const struct keydef *k, void *obj, const char *v);

/* config_values.c: [server] journal and instance; the host name as the
 * default instance. */
bool set_journal_url(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_instance(struct loader *L, const struct keydef *k, void *obj, const char *v);
char *default_instance(void);
/* config_secrets.c: [server] journal_password_file. */
bool set_journal_password_file(struct loader *L, const struct keydef *k, void *obj,
                               const char *v);

/* config_secrets.c: secret, secret_file, secret_env; [admin]'s token files. */
bool set_secret(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_secret_file(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_secret_env(struct loader *L, const struct keydef *k, void *obj, const char *v);
bool set_admin_token_file(struct loader *L, const struct keydef *k, void *obj, const char *v);

/* config_checks.c: after the last line, what needs the whole file; also
 * builds the status map. False with the error in L. */
bool check_all(struct loader *L);

#endif
