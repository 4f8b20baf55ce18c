#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "dynload.h"
#include "tlslib.h"
#include "util.h"

/* The pointers tlslib.h declares; set by tlslib_load. */
#define TLSLIB_DEFINE(f) __typeof__(dl_##f) dl_##f;
TLSLIB_SSL_CALLS(TLSLIB_DEFINE)
TLSLIB_EVENT_CALLS(TLSLIB_DEFINE)
#define TLSLIB_SYMBOL(f) {#f, &dl_##f},
static const struct dynsym ssl_symbols[] = {TLSLIB_SSL_CALLS(TLSLIB_SYMBOL)};
static const struct dynsym event_symbols[] = {TLSLIB_EVENT_CALLS(TLSLIB_SYMBOL)};

bool tlslib_load(char *err, size_t errlen)
{
	static bool loaded;
	if (!loaded)
		loaded = crypto_load(err, errlen) &&
		         dynload("libssl.so.3", ssl_symbols, ARRAY_SIZE(ssl_symbols), err, errlen) &&
		         dynload("libevent_openssl-2.1.so.7", event_symbols,
		                 ARRAY_SIZE(event_symbols), err, errlen);
	return loaded;
}

/* A private key file is a few KiB; anything much larger is not one. */
#define KEY_FILE_MAX (1024 * 1024)

/* The reason of OpenSSL's most recent error, for messages. */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());
	return r ? r : "unknown error";
}

/*
 * Opens `path` (named `what` in messages) and checks that it is a regular
 * file, so that a missing or unreadable file gets the system's own words
 * rather than OpenSSL's, and a FIFO cannot block the event loop. Returns
 * the open fd, or -1 with err set.
 */
static int open_regular(const char *what, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Called by OpenSSL when a key is encrypted: hookd starts unattended and
 * never prompts, so it refuses, and notes why for the message. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	if (arg)
		*(bool *)arg = true;
	return -1;
}

/*
 * Reads and parses the private key. The file is read through our own
 * O_CLOEXEC descriptor into memory that is wiped afterwards, so no copy of
 * the key outlives this call except the parsed EVP_PKEY.
 */
static EVP_PKEY *load_key(const char *path, char *err, size_t errlen)
{
	int fd = open_regular("tls_key", path, err, errlen);
	if (fd < 0)
		return NULL;
	unsigned char *buf = xmalloc(KEY_FILE_MAX + 1);
	size_t len = 0;
	EVP_PKEY *pkey = NULL;
	while (len <= KEY_FILE_MAX) {
		ssize_t n = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "tls_key %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > KEY_FILE_MAX) {
		snprintf(err, errlen, "tls_key %s: larger than 1MiB, not a private key", path);
		goto out;
	}
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio) {
		snprintf(err, errlen, "tls_key %s: %s", path, ossl_reason());
		goto out;
	}
	bool encrypted = false;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &encrypted);
	BIO_free(bio);
	if (!pkey && encrypted)
		snprintf(err, errlen,
		         "tls_key %s: the key is encrypted; hookd needs it without a passphrase", path);
	else if (!pkey)
		snprintf(err, errlen, "tls_key %s: not a PEM private key", path);
out:
	crypto_wipe(buf, len);
	free(buf);
	close(fd);
	return pkey;
}

static bool load_cert(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
	/* OpenSSL opens the file itself here; its descriptor lives only for
	 * the length of this call, in which no hook can be spawned. */
	if (SSL_CTX_use_certificate_chain_file(ctx, path) == 1)
		return true;
	/* A PEM decoding failure anywhere in the queue means the file is not
	 * (or does not start with) a PEM certificate; anything else, such as a
	 * key too small for the security level, is said in OpenSSL's words. */
	const char *reason = ossl_reason();
	bool pem = false;
	unsigned long e;
	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == ERR_LIB_PEM || ERR_GET_REASON(e) == ERR_R_PEM_LIB)
			pem = true;
		else
			reason = ERR_reason_error_string(e) ? ERR_reason_error_string(e) : reason;
	}
	if (pem)
		snprintf(err, errlen, "tls_cert %s: not a PEM certificate", path);
	else
		snprintf(err, errlen, "tls_cert %s: %s", path, reason);
	return false;
}

struct ssl_ctx_st *tls_ctx_new(const char *cert, const char *key, const char *ciphers, char *err,
                               size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	SSL_CTX *ctx = NULL;
	if (!tlslib_load(err, errlen))
		return NULL;
	ERR_clear_error();
	/* Both files must exist before anything is parsed: a missing file is
	 * the likeliest mistake and gets the plainest message. */
	int fd = open_regular("tls_cert", cert, err, errlen);
	if (fd < 0)
		goto fail;
	close(fd);
	/* The key is parsed on its own, so a key that is no key at all is
	 * never reported as a mismatch. */
	if (!(pkey = load_key(key, err, errlen)))
		goto fail;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context: %s", ossl_reason());
		goto fail;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	/* The system's OpenSSL config may already demand more than TLS 1.2:
	 * only ever raise the floor. */
	int min = SSL_CTX_get_min_proto_version(ctx);
	if (min == 0 || min < TLS1_2_VERSION) {
		if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
			snprintf(err, errlen, "cannot require TLS 1.2: %s", ossl_reason());
			goto fail;
		}
	}
	/*
	 * No compression (CRIME), no renegotiation (a client-driven CPU cost
	 * with no use for a webhook sender), and no stateless TLS 1.2 session
	 * tickets: their key would live as long as the process and undo
	 * forward secrecy. Resumption still works through the server's own
	 * bounded session cache (session IDs, stateful TLS 1.3 tickets).
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	/* Idle keep-alive connections give their buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 1024);
	static const unsigned char sid_ctx[] = "hookd";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	if (SSL_CTX_set_cipher_list(ctx, ciphers ? ciphers : TLS_DEFAULT_CIPHERS) != 1) {
		snprintf(err, errlen, "tls_ciphers '%s' selects no cipher OpenSSL knows",
		         ciphers ? ciphers : TLS_DEFAULT_CIPHERS);
		goto fail;
	}
	if (!load_cert(ctx, cert, err, errlen))
		goto fail;
	/* Fails when the key is not the certificate's (or not of its type). */
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key %s does not match tls_cert %s", key, cert);
		goto fail;
	}
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ctx;
fail:
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	/* Leave no stale error behind for the next connection's checks. */
	ERR_clear_error();
	return NULL;
}

void tls_ctx_free(struct ssl_ctx_st *ctx)
{
	/* Without a ctx libssl may never have been loaded. */
	if (ctx)
		SSL_CTX_free(ctx);
}

void tls_ctx_info(struct ssl_ctx_st *ctx, struct tls_cert_info *out)
{
	memset(out, 0, sizeof(*out));
	X509 *x = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;
	if (!x)
		return;
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio) {
		/* RFC 2253 escapes control characters: safe to log. */
		X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
		int n = BIO_read(bio, out->subject, (int)sizeof(out->subject) - 1);
		out->subject[n > 0 ? n : 0] = '\0';
		BIO_free(bio);
	}
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex)
		snprintf(out->serial, sizeof(out->serial), "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	const ASN1_TIME *na = X509_get0_notAfter(x);
	struct tm tm;
	if (ASN1_TIME_to_tm(na, &tm) == 1)
		strftime(out->not_after, sizeof(out->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	out->expired = X509_cmp_current_time(na) < 0;
	ERR_clear_error();
}
