/*
 * Addresses: the listen address, CIDR lists and the X-Forwarded-For walk.
 *
 * Addresses are compared in one canonical form: an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is the IPv4 address it maps, both in lists and in the
 * addresses checked against them, so a dual-stack listener that reports
 * IPv4 peers as mapped addresses still matches "10.0.0.0/8".
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util.h"

enum listen_error listen_addr_parse(const char *spec, struct listen_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(spec, "unix:", 5) == 0) {
		const char *path = spec + 5;
		struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
		if (strlen(path) >= sizeof(sun->sun_path))
			return LISTEN_PATH_TOO_LONG;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		out->len = sizeof(*sun);
		return LISTEN_OK;
	}
	const char *colon;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':')
			return LISTEN_BAD_BRACKETS;
		char addr[INET6_ADDRSTRLEN + 1];
		size_t n = (size_t)(close - spec - 1);
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
		if (n == 0 || n >= sizeof(addr))
			return LISTEN_BAD_IPV6;
		memcpy(addr, spec + 1, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return LISTEN_BAD_IPV6;
		s6->sin6_family = AF_INET6;
		out->len = sizeof(*s6);
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return LISTEN_NO_COLON;
		if (colon == spec)
			return LISTEN_NO_HOST;
		for (const char *p = spec; p < colon; p++) {
			if (*p == ':')
				return LISTEN_V6_NEEDS_BRACKETS;
		}
		char host[INET_ADDRSTRLEN + 1];
		size_t n = (size_t)(colon - spec);
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
		if (n >= sizeof(host))
			return LISTEN_BAD_HOST;
		memcpy(host, spec, n);
		host[n] = '\0';
		if (strcmp(host, "localhost") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (strcmp(host, "*") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return LISTEN_BAD_HOST;
		s4->sin_family = AF_INET;
		out->len = sizeof(*s4);
	}
	int port;
	if (!parse_int(colon + 1, 0, 65535, &port))
		return LISTEN_BAD_PORT;
	if (out->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
	return LISTEN_OK;
}

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Parses exactly n bytes as an IPv4 or IPv6 address (inet_pton: dotted quad
 * only, no zone ids). A mapped IPv6 address comes back as IPv4. */
static bool addr_parse(const char *s, size_t n, int *family, unsigned char addr[16])
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		if (memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			memmove(addr, addr + 12, 4);
			memset(addr + 4, 0, 12);
			*family = AF_INET;
		}
		return true;
	}
	return false;
}

/* Clears every bit past the prefix. */
static void mask_host_bits(unsigned char addr[16], int prefix)
{
	for (int i = 0; i < 16; i++) {
		int bits = prefix - i * 8;
		if (bits >= 8)
			continue;
		addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
	}
}

static bool prefix_match(const unsigned char *net, const unsigned char *addr, int prefix)
{
	int whole = prefix / 8, rest = prefix % 8;

	if (memcmp(net, addr, (size_t)whole) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char m = (unsigned char)(0xff << (8 - rest));
	return (net[whole] & m) == (addr[whole] & m);
}

/*
 * One entry, "ADDR" or "ADDR/PREFIX". Host bits past the prefix are
 * accepted and cleared ("10.1.2.3/8" is 10.0.0.0/8), as ip(8) and most
 * firewalls do. NULL on success, else what is wrong with it.
 */
static const char *cidr_parse_one(const char *s, size_t n, struct cidr *c)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	int max;
	char pbuf[8];

	/* The mapped form keeps its IPv6 prefix length until it is known. */
	char abuf[INET6_ADDRSTRLEN + 1];
	bool mapped = false;
	if (memchr(s, ',', n))
		return "entries are separated by spaces, not commas";
	if (alen == 0 || alen >= sizeof(abuf))
		return "not an IP address";
	memcpy(abuf, s, alen);
	abuf[alen] = '\0';
	memset(c->addr, 0, sizeof(c->addr));
	if (inet_pton(AF_INET, abuf, c->addr) == 1) {
		c->family = AF_INET;
	} else if (inet_pton(AF_INET6, abuf, c->addr) == 1) {
		c->family = AF_INET6;
		mapped = memcmp(c->addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
	} else {
		return "not an IP address";
	}
	max = c->family == AF_INET ? 32 : 128;
	c->prefix = max;
	if (slash) {
		size_t plen = n - alen - 1;
		if (plen == 0)
			return "prefix length missing";
		if (plen >= sizeof(pbuf))
			return "prefix length out of range";
		memcpy(pbuf, slash + 1, plen);
		pbuf[plen] = '\0';
		if (!parse_int(pbuf, 0, max, &c->prefix) || pbuf[0] == '-')
			return "prefix length out of range";
	}
	if (mapped && c->prefix >= 96) {
		/* ::ffff:10.0.0.0/104 is 10.0.0.0/8. A shorter prefix
		 * reaches outside the mapped range: it stays IPv6. */
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->family = AF_INET;
		c->prefix -= 96;
	}
	mask_host_bits(c->addr, c->prefix);
	return NULL;
}

bool cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen)
{
	size_t cap = 0;

	out->v = NULL;
	out->n = 0;
	if (!s)
		return true;
	for (const char *p = s; *p;) {
		if (is_space(*p)) {
			p++;
			continue;
		}
		const char *e = p;
		while (*e && !is_space(*e))
			e++;
		struct cidr c;
		const char *why = cidr_parse_one(p, (size_t)(e - p), &c);
		if (why) {
			int shown = e - p > 64 ? 64 : (int)(e - p);
			if (err && errlen)
				snprintf(err, errlen, "invalid address '%.*s%s': %s", shown, p,
				         e - p > 64 ? "..." : "", why);
			cidr_list_free(out);
			return false;
		}
		if (out->n == cap) {
			cap = cap ? cap * 2 : 4;
			out->v = xrealloc(out->v, cap * sizeof(*out->v));
		}
		out->v[out->n++] = c;
		p = e;
	}
	return true;
}

void cidr_list_free(struct cidr_list *l)
{
	if (!l)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool match_n(const struct cidr_list *l, const char *s, size_t n)
{
	int family;
	unsigned char addr[16];

	if (!l || !addr_parse(s, n, &family, addr))
		return false;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].family == family && prefix_match(l->v[i].addr, addr, l->v[i].prefix))
			return true;
	}
	return false;
}

bool cidr_list_match(const struct cidr_list *l, const char *addr)
{
	return addr && match_n(l, addr, strlen(addr));
}

/* Copies n bytes of s, cut to fit out. */
static void copy_n(char *out, size_t outlen, const char *s, size_t n)
{
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

/*
 * Walks X-Forwarded-For from the right: each trusted proxy appended the
 * address it saw, so the first untrusted entry is the client. An entry
 * that is not an address (RFC 7239's "unknown", a port, garbage) ends the
 * walk with the client "unknown": it cannot be vouched for, and "unknown"
 * matches no allow_from entry, so such a request fails closed instead of
 * being credited to a proxy's address.
 */
void client_address(const struct cidr_list *trusted, const char *peer, const char *xff,
                    char *out, size_t outlen)
{
	const char *end, *last = NULL;
	size_t lastlen = 0;

	if (!out || outlen == 0)
		return;
	copy_n(out, outlen, peer ? peer : "", peer ? strlen(peer) : 0);
	if (!peer || !xff || !cidr_list_match(trusted, peer))
		return;
	end = xff + strlen(xff);
	while (end > xff && is_space(end[-1]))
		end--;
	if (end == xff)
		return; /* an empty header says nothing */
	for (;;) {
		const char *start = end, *a, *b;
		while (start > xff && start[-1] != ',')
			start--;
		a = start;
		b = end;
		while (a < b && is_space(*a))
			a++;
		while (b > a && is_space(b[-1]))
			b--;
		int family;
		unsigned char addr[16];
		if (!addr_parse(a, (size_t)(b - a), &family, addr)) {
			copy_n(out, outlen, "unknown", strlen("unknown"));
			return;
		}
		if (!match_n(trusted, a, (size_t)(b - a))) {
			copy_n(out, outlen, a, (size_t)(b - a));
			return;
		}
		last = a;
		lastlen = (size_t)(b - a);
		if (start == xff)
			break;
		end = start - 1;
	}
	/* Every hop is trusted: the leftmost is the furthest one known. */
	copy_n(out, outlen, last, lastlen);
}

void client_group(const char *addr, char *out, size_t outlen)
{
	unsigned char a[16];
	char text[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET6, addr, a) == 1 && !IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)) {
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, text, sizeof(text));
		snprintf(out, outlen, "%s/64", text);
		return;
	}
	str_copy(out, outlen, addr);
}

void peer_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	if (sa->sa_family == AF_INET && outlen >= INET_ADDRSTRLEN) {
		const unsigned char *b =
		        (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		char *p = out;
		for (int i = 0; i < 4; i++) {
			unsigned v = b[i];
			if (v >= 100)
				*p++ = (char)('0' + v / 100);
			if (v >= 10)
				*p++ = (char)('0' + v / 10 % 10);
			*p++ = (char)('0' + v % 10);
			*p++ = i < 3 ? '.' : '\0';
		}
	} else if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		/* IPv4 here only into a buffer too small for every address:
		 * inet_ntop's, or "?" when it does not fit (not "unix", not counted). */
		const void *in4 = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		const void *in6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		const void *a = sa->sa_family == AF_INET ? in4 : in6;
		if (!inet_ntop(sa->sa_family, a, out, (socklen_t)outlen))
			snprintf(out, outlen, "?");
	} else {
		snprintf(out, outlen, "unix");
	}
}
