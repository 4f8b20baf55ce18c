/*
 * Addresses: the listen address hookd binds ([server] listen, [admin]
 * listen), CIDR lists for allow_from and trusted_proxies, and the
 * X-Forwarded-For walk that decides which address is the client.
 */
#ifndef HOOKD_NETADDR_H
#define HOOKD_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/*
 * A listen address: host:port, where host is an IPv4 address, localhost or
 * * (all); [v6addr]:port; or unix:/path. No name is looked up, so that
 * `check` and the daemon agree. Port 0 asks for an ephemeral port. The
 * parser says what is wrong; its callers (config_values.c, http_listen) word it.
 */
enum listen_error {
	LISTEN_OK,
	LISTEN_PATH_TOO_LONG,     /* unix: the path does not fit a socket address */
	LISTEN_BAD_BRACKETS,      /* '[' without "]:" */
	LISTEN_BAD_IPV6,          /* not an IPv6 address in the brackets */
	LISTEN_NO_COLON,          /* no host:port at all */
	LISTEN_NO_HOST,           /* ":port" */
	LISTEN_V6_NEEDS_BRACKETS, /* "::1:9000" */
	LISTEN_BAD_HOST,          /* not an IPv4 address, localhost or * */
	LISTEN_BAD_PORT,          /* not a number from 0 to 65535 */
};
struct listen_addr {
	struct sockaddr_storage ss; /* AF_INET, AF_INET6 or AF_UNIX */
	socklen_t len;
};
enum listen_error listen_addr_parse(const char *spec, struct listen_addr *out);

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

/*
 * What a client is counted by (its connections, the admin listener's
 * failed logins): its address, an IPv6 one by its /64 ("2001:db8:1:2::/64"),
 * since one host has a whole /64 to hop across; an IPv4-mapped one as it
 * is. Writes into out (>= 64 bytes).
 */
void client_group(const char *addr, char *out, size_t outlen);

/*
 * An accepted connection's peer as text: an IPv4 address dotted, an IPv6
 * one as inet_ntop writes it, anything else "unix". Every connection
 * pays for it, before any credential: IPv4, the common case, is written
 * here, without inet_ntop's sprintf (a twentieth of a rejected request's
 * instructions). out: INET6_ADDRSTRLEN bytes hold every address; into a
 * smaller one an address goes through inet_ntop, or is "?" when it does
 * not fit.
 */
struct sockaddr;
void peer_text(const struct sockaddr *sa, char *out, size_t outlen);

#endif
