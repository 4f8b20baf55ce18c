/*
 * tls: building the server context from a certificate and key, and every
 * way a pair can be wrong. The PEM files are made here, in a fresh
 * temporary directory, with libcrypto: a CA, a leaf it signed, the leaf's
 * chain, other keys, an encrypted key, an expired certificate.
 */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "tls.h"
#include "util.h"

static char tmpdir[PATH_MAX];

static char *in_dir(const char *rel)
{
	return xasprintf("%s/%s", tmpdir, rel);
}

static void die(const char *what)
{
	fprintf(stderr, "test_tls: setup: %s failed\n", what);
	exit(2);
}

static FILE *create(const char *rel, const char *mode)
{
	char *p = in_dir(rel);
	FILE *f = fopen(p, mode);
	if (!f)
		die(p);
	free(p);
	return f;
}

static void write_text(const char *rel, const char *text)
{
	FILE *f = create(rel, "w");
	fputs(text, f);
	fclose(f);
}

static void write_key(const char *rel, EVP_PKEY *k, const char *pass)
{
	FILE *f = create(rel, "w");
	const EVP_CIPHER *enc = pass ? EVP_aes_128_cbc() : NULL;
	if (!PEM_write_PrivateKey(f, k, enc, (unsigned char *)pass, pass ? (int)strlen(pass) : 0,
	                          NULL, NULL))
		die(rel);
	fclose(f);
}

static void write_certs(const char *rel, X509 *a, X509 *b)
{
	FILE *f = create(rel, "w");
	if (!PEM_write_X509(f, a) || (b && !PEM_write_X509(f, b)))
		die(rel);
	fclose(f);
}

/* A certificate for `key`, signed by `signer` (itself when NULL),
 * valid from `from` to `to` seconds from now. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer,
                       EVP_PKEY *signer, long from, long to, bool ca)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	                                          ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ca) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
		                          "IP:127.0.0.1,DNS:localhost");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, signer ? signer : key, EVP_sha256()))
		die("X509_sign");
	return x;
}

static void make_files(void)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
	EVP_PKEY *other_key = EVP_EC_gen("P-256");
	EVP_PKEY *ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!ca_key || !leaf_key || !other_key || !ed_key)
		die("key generation");
	X509 *ca = make_cert(ca_key, "test CA", 1, NULL, NULL, -60, 86400, true);
	X509 *leaf = make_cert(leaf_key, "localhost", 0x1001, ca, ca_key, -60, 86400, false);
	X509 *old = make_cert(leaf_key, "localhost", 0x0bad, ca, ca_key, -7200, -3600, false);
	write_certs("ca.pem", ca, NULL);
	write_certs("leaf.pem", leaf, NULL);
	write_certs("chain.pem", leaf, ca);
	write_certs("expired.pem", old, NULL);
	write_key("leaf.key", leaf_key, NULL);
	write_key("other.key", other_key, NULL);
	write_key("ed.key", ed_key, NULL);
	write_key("enc.key", leaf_key, "pass-phrase-42");
	/* One file holding the key and then the chain. */
	write_key("combined.pem", leaf_key, NULL);
	FILE *f = create("combined.pem", "a");
	PEM_write_X509(f, leaf);
	PEM_write_X509(f, ca);
	fclose(f);
	write_text("garbage.txt", "this is not PEM\n");
	write_text("empty.pem", "");
	write_text("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
	char *d = in_dir("dir.pem");
	if (mkdir(d, 0700) < 0)
		die(d);
	free(d);
	X509_free(ca);
	X509_free(leaf);
	X509_free(old);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(ed_key);
}

/* "$C" and "$K" in a wanted message stand for the cert and key paths. */
static char *expand(const char *tmpl, const char *cert, const char *key)
{
	struct strbuf sb;
	sb_init(&sb);
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '$' && (p[1] == 'C' || p[1] == 'K')) {
			sb_puts(&sb, p[1] == 'C' ? cert : key);
			p++;
		} else {
			sb_putc(&sb, *p);
		}
	}
	return sb_steal(&sb);
}

/* want NULL: the pair loads. A want ending in '*' is a prefix. */
static const struct {
	const char *cert, *key, *ciphers, *want;
} cases[] = {
	{"leaf.pem", "leaf.key", NULL, NULL},
	{"chain.pem", "leaf.key", NULL, NULL},
	{"combined.pem", "combined.pem", NULL, NULL},
	{"expired.pem", "leaf.key", NULL, NULL}, /* served, with a warning */
	{"leaf.pem", "leaf.key", "ECDHE-ECDSA-CHACHA20-POLY1305", NULL},
	{"leaf.pem", "leaf.key", "HIGH:!aNULL", NULL},
	{"leaf.pem", "other.key", NULL, "tls_key $K does not match tls_cert $C"},
	{"chain.pem", "other.key", NULL, "tls_key $K does not match tls_cert $C"},
	{"leaf.pem", "ed.key", NULL, "tls_key $K does not match tls_cert $C"},
	{"missing.pem", "leaf.key", NULL, "tls_cert $C: No such file or directory"},
	{"leaf.pem", "missing.key", NULL, "tls_key $K: No such file or directory"},
	{"missing.pem", "missing.key", NULL, "tls_cert $C: No such file or directory"},
	{"dir.pem", "leaf.key", NULL, "tls_cert $C: not a regular file"},
	{"leaf.pem", "dir.pem", NULL, "tls_key $K: not a regular file"},
	{"garbage.txt", "leaf.key", NULL, "tls_cert $C: not a PEM certificate"},
	{"empty.pem", "leaf.key", NULL, "tls_cert $C: not a PEM certificate"},
	{"truncated.pem", "leaf.key", NULL, "tls_cert $C: not a PEM certificate"},
	{"leaf.key", "leaf.key", NULL, "tls_cert $C: not a PEM certificate"},
	{"leaf.pem", "garbage.txt", NULL, "tls_key $K: not a PEM private key"},
	{"leaf.pem", "empty.pem", NULL, "tls_key $K: not a PEM private key"},
	{"leaf.pem", "leaf.pem", NULL, "tls_key $K: not a PEM private key"},
	{"leaf.pem", "enc.key", NULL,
	 "tls_key $K: the key is encrypted; hookd needs it without a passphrase"},
	{"leaf.pem", "leaf.key", "NO-SUCH-CIPHER",
	 "tls_ciphers 'NO-SUCH-CIPHER' selects no cipher OpenSSL knows"},
	{"leaf.pem", "leaf.key", "", "tls_ciphers '' selects no cipher OpenSSL knows"},
};

static void test_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *cert = in_dir(cases[i].cert), *key = in_dir(cases[i].key);
		char err[1024] = "";
		SSL_CTX *ctx = tls_ctx_new(cert, key, cases[i].ciphers, err, sizeof(err));
		if (!cases[i].want) {
			CHECK(ctx != NULL, "case %zu (%s, %s): %s", i, cases[i].cert, cases[i].key, err);
		} else {
			char *want = expand(cases[i].want, cert, key);
			CHECK(ctx == NULL, "case %zu (%s, %s) loaded", i, cases[i].cert, cases[i].key);
			CHECK_STR(err, want, "case %zu", i);
			CHECK(strstr(err, "pass-phrase-42") == NULL, "case %zu", i);
			free(want);
		}
		tls_ctx_free(ctx);
		free(cert);
		free(key);
	}
}

/* Every TLS 1.2 suite the context offers is forward secret and AEAD. */
static void test_defaults(void)
{
	char *cert = in_dir("leaf.pem"), *key = in_dir("leaf.key");
	char err[1024] = "";
	SSL_CTX *ctx = tls_ctx_new(cert, key, NULL, err, sizeof(err));
	CHECK(ctx != NULL, "%s", err);
	if (!ctx)
		goto out;
	CHECK(SSL_CTX_get_min_proto_version(ctx) >= TLS1_2_VERSION, "min %lx",
	      (unsigned long)SSL_CTX_get_min_proto_version(ctx));
	uint64_t opts = SSL_CTX_get_options(ctx);
	CHECK(opts & SSL_OP_NO_COMPRESSION, "compression is on");
	CHECK(opts & SSL_OP_NO_RENEGOTIATION, "renegotiation is on");
	CHECK(opts & SSL_OP_NO_TICKET, "stateless tickets are on");
	STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
	int tls12 = 0;
	for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
		const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
		if (strncmp(SSL_CIPHER_get_name(c), "TLS_", 4) == 0)
			continue; /* a TLS 1.3 suite: all of them are AEAD */
		tls12++;
		CHECK(SSL_CIPHER_get_kx_nid(c) == NID_kx_ecdhe, "%s", SSL_CIPHER_get_name(c));
		CHECK(SSL_CIPHER_is_aead(c), "%s", SSL_CIPHER_get_name(c));
	}
	CHECK(tls12 >= 2, "%d TLS 1.2 suites", tls12);

	struct tls_cert_info ti;
	tls_ctx_info(ctx, &ti);
	CHECK_STR(ti.serial, "1001", "serial");
	CHECK_STR(ti.subject, "CN=localhost", "subject");
	CHECK(strlen(ti.not_after) == 20 && ti.not_after[19] == 'Z', "%s", ti.not_after);
	CHECK(!ti.expired, "expired");
	tls_ctx_free(ctx);

	/* tls_ciphers replaces the TLS 1.2 list. */
	ctx = tls_ctx_new(cert, key, "ECDHE-ECDSA-CHACHA20-POLY1305", err, sizeof(err));
	CHECK(ctx != NULL, "%s", err);
	if (ctx) {
		ciphers = SSL_CTX_get_ciphers(ctx);
		int n = 0;
		for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
			const char *name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i));
			if (strncmp(name, "TLS_", 4) != 0) {
				n++;
				CHECK_STR(name, "ECDHE-ECDSA-CHACHA20-POLY1305", "override");
			}
		}
		CHECK(n == 1, "%d TLS 1.2 suites", n);
		tls_ctx_free(ctx);
	}
out:
	free(cert);
	free(key);
}

static void test_info(void)
{
	char *cert = in_dir("expired.pem"), *key = in_dir("leaf.key");
	char err[1024] = "";
	SSL_CTX *ctx = tls_ctx_new(cert, key, NULL, err, sizeof(err));
	CHECK(ctx != NULL, "%s", err);
	struct tls_cert_info ti;
	tls_ctx_info(ctx, &ti);
	CHECK(ti.expired, "expired.pem is not taken as expired");
	CHECK_STR(ti.serial, "0BAD", "serial");
	tls_ctx_free(ctx);
	tls_ctx_info(NULL, &ti);
	CHECK_STR(ti.serial, "", "no context");
	tls_ctx_free(NULL);
	free(cert);
	free(key);
}

/* A mode-000 key is unreadable, except to root. */
static void test_unreadable(void)
{
	if (geteuid() == 0)
		return;
	char *cert = in_dir("leaf.pem"), *key = in_dir("locked.key");
	write_text("locked.key", "x");
	chmod(key, 0);
	char err[1024] = "";
	SSL_CTX *ctx = tls_ctx_new(cert, key, NULL, err, sizeof(err));
	CHECK(ctx == NULL, "locked.key loaded");
	char *want = expand("tls_key $K: Permission denied", cert, key);
	CHECK_STR(err, want, "unreadable");
	free(want);
	free(cert);
	free(key);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/hookd-test-tls-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	make_files();
	test_cases();
	test_defaults();
	test_info();
	test_unreadable();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done("tls");
}
