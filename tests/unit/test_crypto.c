/*
 * crypto: hookd's own base64 gives libcrypto's text and bytes for every
 * length a scheme or the journal uses; the compare and the random bytes;
 * and libcrypto is not mapped until something loads it.
 */
#include "check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

/* Whether libcrypto is in this process's memory map. */
static bool libcrypto_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;
	while (f && fgets(line, sizeof(line), f))
		found |= strstr(line, "libcrypto.so") != NULL;
	if (f)
		fclose(f);
	return found;
}

int main(void)
{
	unsigned char in[200], bytes[200];
	char mine[280];
	unsigned char theirs[280];

	/* The test itself links libcrypto (for the reference encoder), so
	 * only the loader's answer is checked here; test_schemes.py
	 * (TestLibcryptoOnDemand) shows a daemon without it until its first
	 * MAC. */
	char err[256];
	CHECK(crypto_load(err, sizeof(err)), "crypto_load: %s", err);
	CHECK(libcrypto_mapped(), "libcrypto mapped once loaded");

	CHECK(crypto_random(in, sizeof(in)), "crypto_random");
	for (size_t n = 0; n <= sizeof(in); n++) {
		size_t len = crypto_b64_encode(mine, in, n);
		int want = EVP_EncodeBlock(theirs, in, (int)n);
		CHECK((int)len == want && memcmp(mine, theirs, len + 1) == 0,
		      "encode %zu bytes: %s against %s", n, mine, (const char *)theirs);
		size_t got = crypto_b64_decode(bytes, mine, len);
		CHECK(got == n && memcmp(bytes, in, n) == 0, "decode %zu bytes: %zu", n, got);
	}
	CHECK(crypto_b64_encode(mine, (const unsigned char *)"hi", 2) == 4 &&
	          strcmp(mine, "aGk=") == 0,
	      "encode \"hi\": %s", mine);

	CHECK(crypto_equal("abc", "abc", 3), "equal");
	CHECK(!crypto_equal("abc", "abd", 3), "last byte differs");
	CHECK(!crypto_equal("xbc", "abc", 3), "first byte differs");
	CHECK(crypto_equal("a", "b", 0), "zero bytes are equal");

	unsigned char a[32] = {0}, b[32] = {0};
	CHECK(crypto_random(a, sizeof(a)) && crypto_random(b, sizeof(b)) &&
	          memcmp(a, b, sizeof(a)) != 0,
	      "two draws differ");
	crypto_wipe(a, sizeof(a));
	CHECK(crypto_equal(a, (unsigned char[32]){0}, sizeof(a)), "wiped");

	return check_done("crypto");
}
