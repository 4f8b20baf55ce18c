/*
 * Client addresses: CIDR lists for allow_from and trusted_proxies, and the
 * X-Forwarded-For walk that decides which address is the client.
 */
#ifndef HOOKD_NETADDR_H
#define HOOKD_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};
struct cidr_list {
	struct cidr *v;
	size_t n;
};

/* Parses "10.0.0.0/8 ::1 192.168.1.7" (space separated; a bare address is
 * a /32 or /128). false with a message naming the bad entry. */
bool cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen);
void cidr_list_free(struct cidr_list *l);
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 entries. */
bool cidr_list_match(const struct cidr_list *l, const char *addr);

/*
 * The client address: `peer` unless it is trusted, then the rightmost
 * X-Forwarded-For entry that is not itself trusted (or the leftmost entry
 * when all are). Writes into out (>= 64 bytes).
 */
void client_address(const struct cidr_list *trusted, const char *peer,
                    const char *xff, char *out, size_t outlen);

#endif
