/*
 * libcrypto loaded on first need, and the few primitives hookd needs no
 * library for (crypto.h).
 */
#include "crypto.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "dynload.h"
#include "log.h"
#include "util.h"

#define CRYPTO_DEFINE(f) __typeof__(dl_##f) dl_##f;
CRYPTO_MAC_CALLS(CRYPTO_DEFINE)
CRYPTO_TLS_CALLS(CRYPTO_DEFINE)
#define CRYPTO_SYMBOL(f) {#f, &dl_##f},
static const struct dynsym crypto_symbols[] = {
	CRYPTO_MAC_CALLS(CRYPTO_SYMBOL) CRYPTO_TLS_CALLS(CRYPTO_SYMBOL)};

bool crypto_load(char *err, size_t errlen)
{
	static bool loaded;
	if (!loaded)
		loaded = dynload("libcrypto.so.3", crypto_symbols, ARRAY_SIZE(crypto_symbols), err,
		                 errlen);
	return loaded;
}

bool crypto_ready(void)
{
	static bool said;
	char err[256];
	if (crypto_load(err, sizeof(err)))
		return true;
	if (!said) {
		said = true;
		log_msg(LOG_LVL_ERROR, "%s", err);
	}
	return false;
}

void crypto_wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
	/* Every byte is read whatever came before: volatile keeps the
	 * compiler from stopping at the first difference. */
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(x[i] ^ y[i]);
	return diff == 0;
}

bool crypto_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

size_t crypto_b64_encode(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = digits[v >> 18 & 63];
		out[o++] = digits[v >> 12 & 63];
		out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? digits[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static unsigned b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0' + 52);
	return c == '+' ? 62 : 63;
}

size_t crypto_b64_decode(unsigned char *out, const char *in, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i + 4 <= n; i += 4) {
		uint32_t v = 0;
		size_t pads = 0;
		for (size_t j = 0; j < 4; j++) {
			bool pad = in[i + j] == '=';
			pads += pad;
			v = v << 6 | (pad ? 0 : b64_value(in[i + j]));
		}
		out[o++] = (unsigned char)(v >> 16);
		if (pads < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pads < 1)
			out[o++] = (unsigned char)v;
	}
	return o;
}
