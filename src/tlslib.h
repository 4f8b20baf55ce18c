/*
 * libssl and libevent_openssl, loaded when TLS is first configured
 * (dynload.h): a daemon that serves plain HTTP, the common case behind a
 * proxy, never maps them. Included by the two files that use them, after
 * <openssl/ssl.h> and <event2/bufferevent_ssl.h>: every call there then
 * goes through these pointers, typed from the libraries' own prototypes.
 * (OpenSSL's SSL_CTX_set_mode and the like are macros over SSL_CTX_ctrl.)
 */
#ifndef HOOKD_TLSLIB_H
#define HOOKD_TLSLIB_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "crypto.h" /* after OpenSSL's headers: libcrypto's calls through pointers too */

#define TLSLIB_SSL_CALLS(X)                                                               \
	X(TLS_server_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_up_ref) X(SSL_CTX_ctrl) \
	X(SSL_CTX_set_options) X(SSL_CTX_set_cipher_list) X(SSL_CTX_set_session_id_context) \
	X(SSL_CTX_set_default_passwd_cb) X(SSL_CTX_set_default_passwd_cb_userdata)          \
	X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey)                     \
	X(SSL_CTX_check_private_key) X(SSL_CTX_get0_certificate) X(SSL_new)                 \
	X(SSL_get_shutdown) X(SSL_shutdown) X(SSL_write)

#define TLSLIB_EVENT_CALLS(X) X(bufferevent_openssl_socket_new) X(bufferevent_openssl_get_ssl)

#define TLSLIB_POINTER(f) extern __typeof__(f) *dl_##f;
TLSLIB_SSL_CALLS(TLSLIB_POINTER)
TLSLIB_EVENT_CALLS(TLSLIB_POINTER)
#undef TLSLIB_POINTER

/* Loads both libraries and libcrypto (once). false with the reason in err. */
bool tlslib_load(char *err, size_t errlen);

#define TLS_server_method dl_TLS_server_method
#define SSL_CTX_new dl_SSL_CTX_new
#define SSL_CTX_free dl_SSL_CTX_free
#define SSL_CTX_up_ref dl_SSL_CTX_up_ref
#define SSL_CTX_ctrl dl_SSL_CTX_ctrl
#define SSL_CTX_set_options dl_SSL_CTX_set_options
#define SSL_CTX_set_cipher_list dl_SSL_CTX_set_cipher_list
#define SSL_CTX_set_session_id_context dl_SSL_CTX_set_session_id_context
#define SSL_CTX_set_default_passwd_cb dl_SSL_CTX_set_default_passwd_cb
#define SSL_CTX_set_default_passwd_cb_userdata dl_SSL_CTX_set_default_passwd_cb_userdata
#define SSL_CTX_use_certificate_chain_file dl_SSL_CTX_use_certificate_chain_file
#define SSL_CTX_use_PrivateKey dl_SSL_CTX_use_PrivateKey
#define SSL_CTX_check_private_key dl_SSL_CTX_check_private_key
#define SSL_CTX_get0_certificate dl_SSL_CTX_get0_certificate
#define SSL_new dl_SSL_new
#define SSL_get_shutdown dl_SSL_get_shutdown
#define SSL_shutdown dl_SSL_shutdown
#define SSL_write dl_SSL_write
#define bufferevent_openssl_socket_new dl_bufferevent_openssl_socket_new
#define bufferevent_openssl_get_ssl dl_bufferevent_openssl_get_ssl

#endif
