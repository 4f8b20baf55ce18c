/*
 * Fuzz target: client addresses (README "Senders and verification schemes", allow_from and trusted_proxies).
 *
 * The input is up to three lines: a CIDR list as a config would give it,
 * a peer address, and an X-Forwarded-For value. The list is parsed
 * (cidr_list_parse); when it does not parse, a fixed list of proxies
 * stands in, so client_address always walks the header. Checked: a parsed
 * entry has a prefix within its family and no host bits set, a failed
 * parse leaves an empty list and a message, and the client address is a
 * NUL-terminated string that fits, either the peer, "unknown", or an
 * entry of the header.
 */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "netaddr.h"
#include "util.h"

static const char fallback[] = "127.0.0.1 10.0.0.0/8 ::1 fd00::/8 ::ffff:192.168.0.0/112";

/* The next line of the input as a C string (cut at a NUL, as headers are). */
static char *next_line(const uint8_t **data, size_t *size)
{
	const uint8_t *nl = memchr(*data, '\n', *size);
	size_t n = nl ? (size_t)(nl - *data) : *size;
	char *s = xstrndup((const char *)*data, n);
	*data += nl ? n + 1 : n;
	*size -= nl ? n + 1 : n;
	return s;
}

static void check_list(const struct cidr_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];
		int max = c->family == AF_INET ? 32 : 128;
		FUZZ_ASSERT(c->family == AF_INET || c->family == AF_INET6);
		FUZZ_ASSERT(c->prefix >= 0 && c->prefix <= max);
		for (int b = c->prefix; b < max; b++)
			FUZZ_ASSERT(!(c->addr[b / 8] & (0x80 >> (b % 8))));
		if (c->family == AF_INET)
			for (int k = 4; k < 16; k++)
				FUZZ_ASSERT(c->addr[k] == 0);
		/* The network address itself is in its own range. */
		char text[INET6_ADDRSTRLEN];
		FUZZ_ASSERT(inet_ntop(c->family, c->addr, text, sizeof(text)) != NULL);
		FUZZ_ASSERT(cidr_list_match(l, text));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *list = next_line(&data, &size);
	char *peer = next_line(&data, &size);
	char *xff = next_line(&data, &size);
	char err[256] = "";
	struct cidr_list l;

	if (cidr_list_parse(list, &l, err, sizeof(err))) {
		check_list(&l);
	} else {
		FUZZ_ASSERT(l.n == 0 && l.v == NULL);
		FUZZ_ASSERT(err[0] != '\0');
		FUZZ_ASSERT(cidr_list_parse(fallback, &l, err, sizeof(err)));
	}
	(void)cidr_list_match(&l, peer);

	/* Every size of output buffer, down to one byte, is cut safely. */
	size_t outlen = 64 - (strlen(peer) % 64);
	char out[64];
	memset(out, 'x', sizeof(out));
	client_address(&l, peer, *xff || (size & 1) ? xff : NULL, out, outlen);
	size_t n = strnlen(out, outlen);
	FUZZ_ASSERT(n < outlen);
	if (!cidr_list_match(&l, peer)) {
		FUZZ_ASSERT(strncmp(out, peer, n) == 0);
	} else if (n > 0 && strncmp(out, peer, n) != 0 && strncmp(out, "unknown", n) != 0) {
		/* An address taken from the header: it is in there. */
		char *cut = xstrndup(out, n);
		FUZZ_ASSERT(strstr(xff, cut) != NULL);
		free(cut);
	}
	cidr_list_free(&l);
	cidr_list_free(&l); /* a freed list is empty, and freeing it again is fine */
	free(list);
	free(peer);
	free(xff);
	return 0;
}
