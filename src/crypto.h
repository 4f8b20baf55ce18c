/*
 * libcrypto (OpenSSL 3), loaded when first needed (dynload.h): the one
 * place that knows which of its calls hookd makes. It is loaded by the
 * first MAC or digest hookd computes (a request's credentials: the token
 * schemes compare by HMAC too, sigutil.c; a replay window) or when native
 * TLS is set up (tlslib_load); until then a daemon does not map it (1.4
 * MB of its memory, and OpenSSL's 2 MB more on its first HMAC). Commands
 * that verify nothing (check, journal) never load it.
 *
 * Files that call libcrypto include this header instead of OpenSSL's:
 * every call there then goes through a pointer typed from OpenSSL's own
 * prototype, set by crypto_load. A call before a successful crypto_load
 * is a bug; the modules that use them call crypto_ready first.
 *
 * Wiping a secret, comparing credentials, random bytes and base64 need
 * no library: they are here too, on libc or in a few lines, so that no
 * caller has to load libcrypto for them.
 */
#ifndef HOOKD_CRYPTO_H
#define HOOKD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* HMAC and digests (sigutil.c, replaywin.c). */
#define CRYPTO_MAC_CALLS(X)                                                                   \
	X(EVP_MAC_fetch) X(EVP_MAC_free) X(EVP_MAC_CTX_new) X(EVP_MAC_CTX_free) X(EVP_MAC_init) \
	X(EVP_MAC_update) X(EVP_MAC_final) X(OSSL_PARAM_construct_utf8_string)                  \
	X(OSSL_PARAM_construct_end) X(EVP_MD_CTX_new) X(EVP_MD_CTX_free) X(EVP_DigestInit_ex)   \
	X(EVP_DigestUpdate) X(EVP_DigestFinal_ex) X(EVP_sha256)

/* Native TLS's keys, certificates and errors (tls.c, http.c), beside libssl. */
#define CRYPTO_TLS_CALLS(X)                                                                  \
	X(ERR_reason_error_string) X(ERR_peek_last_error) X(ERR_get_error) X(ERR_clear_error)   \
	X(BIO_new_mem_buf) X(BIO_new) X(BIO_s_mem) X(BIO_read) X(BIO_free)                      \
	X(PEM_read_bio_PrivateKey) X(EVP_PKEY_free) X(X509_NAME_print_ex)                       \
	X(X509_get_subject_name) X(X509_get0_serialNumber) X(X509_get0_notAfter)                \
	X(X509_cmp_current_time) X(ASN1_INTEGER_to_BN) X(ASN1_TIME_to_tm) X(BN_bn2hex) X(BN_free)  \
	X(CRYPTO_free)

#define CRYPTO_POINTER(f) extern __typeof__(f) *dl_##f;
CRYPTO_MAC_CALLS(CRYPTO_POINTER)
CRYPTO_TLS_CALLS(CRYPTO_POINTER)
#undef CRYPTO_POINTER

/* Loads libcrypto (once). false with the reason in err. */
bool crypto_load(char *err, size_t errlen);
/* crypto_load for a call on the request path: false (logged once) when
 * the library cannot be loaded, which the caller treats as libcrypto
 * failing. */
bool crypto_ready(void);

/* Clears n bytes in a way the compiler keeps (a secret's last use). */
void crypto_wipe(void *p, size_t n);
/* Whether a and b (n bytes each) are equal, in time that depends on n
 * only. */
bool crypto_equal(const void *a, const void *b, size_t n);
/* n bytes from the kernel's random generator; false when it fails. */
bool crypto_random(void *buf, size_t n);
/* The padded standard base64 of n bytes, NUL-terminated, into out
 * (4 * ((n + 2) / 3) + 1 bytes); its length. */
size_t crypto_b64_encode(char *out, const unsigned char *in, size_t n);
/* The bytes of n characters of padded standard base64 that the caller has
 * checked (the alphabet, '=' only as the last one or two, n a multiple of
 * four), into out (n / 4 * 3 bytes); how many, the padding not counted. */
size_t crypto_b64_decode(unsigned char *out, const char *in, size_t n);

#define EVP_MAC_fetch dl_EVP_MAC_fetch
#define EVP_MAC_free dl_EVP_MAC_free
#define EVP_MAC_CTX_new dl_EVP_MAC_CTX_new
#define EVP_MAC_CTX_free dl_EVP_MAC_CTX_free
#define EVP_MAC_init dl_EVP_MAC_init
#define EVP_MAC_update dl_EVP_MAC_update
#define EVP_MAC_final dl_EVP_MAC_final
#define OSSL_PARAM_construct_utf8_string dl_OSSL_PARAM_construct_utf8_string
#define OSSL_PARAM_construct_end dl_OSSL_PARAM_construct_end
#define EVP_MD_CTX_new dl_EVP_MD_CTX_new
#define EVP_MD_CTX_free dl_EVP_MD_CTX_free
#define EVP_DigestInit_ex dl_EVP_DigestInit_ex
#define EVP_DigestUpdate dl_EVP_DigestUpdate
#define EVP_DigestFinal_ex dl_EVP_DigestFinal_ex
#define EVP_sha256 dl_EVP_sha256
#define ERR_reason_error_string dl_ERR_reason_error_string
#define ERR_peek_last_error dl_ERR_peek_last_error
#define ERR_get_error dl_ERR_get_error
#define ERR_clear_error dl_ERR_clear_error
#define BIO_new_mem_buf dl_BIO_new_mem_buf
#define BIO_new dl_BIO_new
#define BIO_s_mem dl_BIO_s_mem
#define BIO_read dl_BIO_read
#define BIO_free dl_BIO_free
#define PEM_read_bio_PrivateKey dl_PEM_read_bio_PrivateKey
#define EVP_PKEY_free dl_EVP_PKEY_free
#define X509_NAME_print_ex dl_X509_NAME_print_ex
#define X509_get_subject_name dl_X509_get_subject_name
#define X509_get0_serialNumber dl_X509_get0_serialNumber
#define X509_get0_notAfter dl_X509_get0_notAfter
#define X509_cmp_current_time dl_X509_cmp_current_time
#define ASN1_INTEGER_to_BN dl_ASN1_INTEGER_to_BN
#define ASN1_TIME_to_tm dl_ASN1_TIME_to_tm
#define BN_bn2hex dl_BN_bn2hex
#define BN_free dl_BN_free
#define CRYPTO_free dl_CRYPTO_free

#endif
