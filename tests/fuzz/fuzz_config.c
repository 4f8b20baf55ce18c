/*
 * Fuzz target: the configuration file (README "Configuration").
 *
 * The input is written to hookd.ini in a directory made once per process
 * under /tmp (config_load reads a path; a fixed file is rewritten in
 * place, which is fast), next to a secret file and with an environment
 * variable set, so secret_file = secret.txt and secret_env =
 * HOOKD_FUZZ_SECRET work. A config that loads is then used the way the
 * daemon uses it, and checked for what the header promises: at least one
 * endpoint, each with a path starting with '/', a secret unless scheme =
 * none, an absolute hooks_dir, and found again by its path and name. An
 * error message never holds a secret read from the file or environment.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

#define FILE_SECRET "s3cret-from-the-file"
#define ENV_SECRET "s3cret-from-the-env"

static char dir[64];
static char *ini_path, *secret_path;

static void cleanup(void)
{
	unlink(ini_path);
	unlink(secret_path);
	rmdir(dir);
	free(ini_path);
	free(secret_path);
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	const char *p = data;
	while (size > 0) {
		ssize_t n = write(fd, p, size);
		if (n <= 0)
			abort();
		p += n;
		size -= (size_t)n;
	}
	close(fd);
}

static void setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	snprintf(dir, sizeof(dir), "/tmp/hookd-fuzz-config.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	ini_path = xasprintf("%s/hookd.ini", dir);
	secret_path = xasprintf("%s/secret.txt", dir);
	static const char secrets[] = FILE_SECRET "\n" "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
	write_file(secret_path, secrets, strlen(secrets));
	setenv("HOOKD_FUZZ_SECRET", ENV_SECRET, 1);
	atexit(cleanup);
}

static bool contains(const uint8_t *data, size_t size, const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i + n <= size; i++) {
		if (memcmp(data + i, s, n) == 0)
			return true;
	}
	return false;
}

static void use_config(struct config *c)
{
	static const char *const events[] = {
		"build:start", "build", "a.b:c", "_default", "x", "push:opened:now",
	};
	FUZZ_ASSERT(c->nendpoints > 0);
	FUZZ_ASSERT(c->env_prefix && c->env_prefix[0]);
	FUZZ_ASSERT(c->hooks_dir && c->hooks_dir[0] == '/');
	for (size_t i = 0; i < c->nendpoints; i++) {
		const struct endpoint *ep = &c->endpoints[i];
		FUZZ_ASSERT(ep->path && ep->path[0] == '/');
		FUZZ_ASSERT(ep->hooks_dir && ep->hooks_dir[0] == '/');
		FUZZ_ASSERT(ep->scheme && ep->scheme->takes_secret == (ep->nsecrets > 0));
		for (size_t k = 0; k < ep->nsecrets; k++)
			FUZZ_ASSERT(ep->secrets[k].data && ep->secrets[k].len > 0);
		FUZZ_ASSERT(config_endpoint_by_path(c, ep->path) == ep);
		FUZZ_ASSERT(config_endpoint_by_name(c, ep->name) == ep);
		FUZZ_ASSERT(scheme_name(ep->scheme) != NULL);
		struct delivery_opts o;
		for (size_t e = 0; e < ARRAY_SIZE(events); e++)
			config_delivery_opts(c, ep, events[e], &o);
		for (size_t e = 0; e < c->nevents; e++) {
			config_delivery_opts(c, ep, c->events[e].name, &o);
			FUZZ_ASSERT(o.timeout_ms >= 0 && o.retries >= 0);
		}
	}
	for (int code = -1; code <= 256; code++) {
		int http = status_for_exit(&c->status, code);
		FUZZ_ASSERT(http >= 100 && http <= 599);
	}
	/* A reload keeps the old config alive until its last user. */
	config_unref(config_ref(c));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	setup();
	write_file(ini_path, data, size);
	struct config *c = config_load(ini_path, err, sizeof(err));
	if (c) {
		use_config(c);
		config_unref(c);
	} else {
		FUZZ_ASSERT(err[0] != '\0');
		if (!contains(data, size, FILE_SECRET))
			FUZZ_ASSERT(!strstr(err, FILE_SECRET));
		if (!contains(data, size, ENV_SECRET))
			FUZZ_ASSERT(!strstr(err, ENV_SECRET));
	}
	return 0;
}
