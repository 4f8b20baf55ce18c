/*
 * netaddr: the listen address parser, CIDR list parsing, matching (IPv4,
 * IPv6, IPv4-mapped), and the X-Forwarded-For walk behind trusted proxies.
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "netaddr.h"
#include "util.h"

static void test_listen(void)
{
	static const struct {
		const char *in;
		enum listen_error want;
		int family;
		unsigned port;
	} cases[] = {
		{"127.0.0.1:9000", LISTEN_OK, AF_INET, 9000},
		{"localhost:0", LISTEN_OK, AF_INET, 0},
		{"*:80", LISTEN_OK, AF_INET, 80},
		{"[::1]:65535", LISTEN_OK, AF_INET6, 65535},
		{"unix:/run/hookd.sock", LISTEN_OK, AF_UNIX, 0},
		{"127.0.0.1", LISTEN_NO_COLON, 0, 0},
		{":9000", LISTEN_NO_HOST, 0, 0},
		{"::1:9000", LISTEN_V6_NEEDS_BRACKETS, 0, 0},
		{"[::1]9000", LISTEN_BAD_BRACKETS, 0, 0},
		{"[zz]:9000", LISTEN_BAD_IPV6, 0, 0},
		{"[]:9000", LISTEN_BAD_IPV6, 0, 0},
		{"example.com:9000", LISTEN_BAD_HOST, 0, 0},
		{"256.1.1.1:9000", LISTEN_BAD_HOST, 0, 0},
		{"127.0.0.1:70000", LISTEN_BAD_PORT, 0, 0},
		{"127.0.0.1:", LISTEN_BAD_PORT, 0, 0},
		{"[::1]:-1", LISTEN_BAD_PORT, 0, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct listen_addr la;
		enum listen_error e = listen_addr_parse(cases[i].in, &la);
		CHECK(e == cases[i].want, "listen '%s': %d", cases[i].in, (int)e);
		if (e != LISTEN_OK || cases[i].want != LISTEN_OK)
			continue;
		CHECK(la.ss.ss_family == cases[i].family, "listen '%s' family", cases[i].in);
		unsigned port = 0;
		if (la.ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&la.ss)->sin_port);
		else if (la.ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&la.ss)->sin6_port);
		CHECK(port == cases[i].port, "listen '%s' port %u", cases[i].in, port);
	}
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof(longpath) - 1] = '\0';
	struct listen_addr la;
	CHECK(listen_addr_parse(longpath, &la) == LISTEN_PATH_TOO_LONG, "unix path too long");
}

static void test_parse(void)
{
	static const struct {
		const char *in;
		bool ok;
		size_t n;        /* entries when ok */
		const char *err; /* a substring of the message when !ok */
	} cases[] = {
		{"", true, 0, NULL},
		{"   \t ", true, 0, NULL},
		{"10.0.0.0/8", true, 1, NULL},
		{"10.0.0.0/8 ::1 192.168.1.7 fd00::/8", true, 4, NULL},
		{"  10.0.0.0/8\t\t::1  ", true, 2, NULL},
		{"0.0.0.0/0 ::/0", true, 2, NULL},
		{"1.2.3.4/32 ::1/128", true, 2, NULL},
		{"10.1.2.3/8", true, 1, NULL}, /* host bits are masked, not an error */
		{"::ffff:10.0.0.0/104", true, 1, NULL},
		{"10.0.0.0/33", false, 0, "'10.0.0.0/33': prefix length out of range"},
		{"::/129", false, 0, "prefix length out of range"},
		{"10.0.0.0/-1", false, 0, "prefix length out of range"},
		{"10.0.0.0/+8", false, 0, "prefix length out of range"},
		{"10.0.0.0/8a", false, 0, "prefix length out of range"},
		{"10.0.0.0/", false, 0, "prefix length missing"},
		{"10.0.0.0/8/8", false, 0, "prefix length out of range"},
		{"10.0.0.0/99999999999", false, 0, "prefix length out of range"},
		{"/8", false, 0, "not an IP address"},
		{"10.0.0", false, 0, "not an IP address"},
		{"10.0.0.256", false, 0, "not an IP address"},
		{"010.0.0.1", false, 0, "not an IP address"},
		{"0x0a.0.0.1", false, 0, "not an IP address"},
		{"localhost", false, 0, "'localhost': not an IP address"},
		{"fe80::1%eth0", false, 0, "not an IP address"},
		{"[::1]", false, 0, "not an IP address"},
		{"10.0.0.0/8,192.168.0.0/16", false, 0, "separated by spaces, not commas"},
		{"10.0.0.0/8 bogus ::1", false, 0, "'bogus'"},
		{"1.2.3.4 1.2.3.4.5", false, 0, "'1.2.3.4.5'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cidr_list l = {(struct cidr *)1, 99};
		char err[160] = "";
		bool ok = cidr_list_parse(cases[i].in, &l, err, sizeof(err));
		CHECK(ok == cases[i].ok, "parse '%s': %s", cases[i].in, err);
		if (ok) {
			CHECK(l.n == cases[i].n, "parse '%s': %zu entries", cases[i].in, l.n);
		} else {
			CHECK(l.v == NULL && l.n == 0, "parse '%s': list left empty", cases[i].in);
			CHECK(strstr(err, cases[i].err) != NULL, "parse '%s': message '%s'",
			      cases[i].in, err);
		}
		cidr_list_free(&l);
	}

	/* A very long entry is named, cut, in the message. */
	char *longent = xmalloc(10001);
	memset(longent, 'z', 10000);
	longent[10000] = '\0';
	struct cidr_list l;
	char err[160];
	CHECK(!cidr_list_parse(longent, &l, err, sizeof(err)), "long entry rejected");
	CHECK(strstr(err, "...") != NULL && strlen(err) < 120, "long entry message cut: %s", err);
	free(longent);

	CHECK(cidr_list_parse(NULL, &l, err, sizeof(err)) && l.n == 0, "NULL is empty");
	cidr_list_free(&l);
	cidr_list_free(NULL);

	/* Host bits are cleared and mapped entries become IPv4. */
	CHECK(cidr_list_parse("10.1.2.3/8 ::ffff:192.168.0.0/112 ::ffff:0:0/95", &l, err,
	                      sizeof(err)), "%s", err);
	if (l.n == 3) {
		static const unsigned char ten[4] = {10, 0, 0, 0}, c0a8[4] = {192, 168, 0, 0};
		CHECK(l.v[0].family == AF_INET && l.v[0].prefix == 8 &&
		      memcmp(l.v[0].addr, ten, 4) == 0, "10.1.2.3/8 is 10.0.0.0/8");
		CHECK(l.v[1].family == AF_INET && l.v[1].prefix == 16 &&
		      memcmp(l.v[1].addr, c0a8, 4) == 0, "mapped /112 is 192.168.0.0/16");
		CHECK(l.v[2].family == AF_INET6 && l.v[2].prefix == 95, "mapped /95 stays IPv6");
	}
	cidr_list_free(&l);
}

static void test_match(void)
{
	static const struct {
		const char *list;
		const char *addr;
		bool want;
	} cases[] = {
		{"10.0.0.0/8", "10.0.0.1", true},
		{"10.0.0.0/8", "10.255.255.255", true},
		{"10.0.0.0/8", "11.0.0.0", false},
		{"10.0.0.0/8", "9.255.255.255", false},
		{"192.168.1.7", "192.168.1.7", true},
		{"192.168.1.7", "192.168.1.8", false},
		{"192.168.1.0/25", "192.168.1.127", true},
		{"192.168.1.0/25", "192.168.1.128", false},
		{"172.16.0.0/12", "172.31.255.1", true},
		{"172.16.0.0/12", "172.32.0.1", false},
		{"0.0.0.0/0", "203.0.113.9", true},
		{"0.0.0.0/0", "::1", false},
		{"::/0", "2001:db8::1", true},
		{"::/0", "1.2.3.4", false},
		{"::1", "::1", true},
		{"::1", "0:0:0:0:0:0:0:1", true},
		{"::1", "::2", false},
		{"::1", "127.0.0.1", false},
		{"fd00::/8", "fd12:3456::1", true},
		{"fd00::/8", "fe80::1", false},
		{"2001:db8::/33", "2001:db8:7fff::1", true},
		{"2001:db8::/33", "2001:db8:8000::1", false},
		{"2001:DB8::/32", "2001:db8::1", true},
		/* IPv4-mapped IPv6 addresses match IPv4 entries, and back */
		{"10.0.0.0/8", "::ffff:10.1.2.3", true},
		{"10.0.0.0/8", "::FFFF:10.1.2.3", true},
		{"10.0.0.0/8", "::ffff:0a01:0203", true},
		{"10.0.0.0/8", "::ffff:11.1.2.3", false},
		{"127.0.0.1", "::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.0/104", "10.9.9.9", true},
		{"::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true},
		{"::ffff:10.0.0.0/104", "11.0.0.1", false},
		/* IPv4-compatible and NAT64 forms are not mapped addresses */
		{"10.0.0.0/8", "::10.1.2.3", false},
		{"10.0.0.0/8", "64:ff9b::10.1.2.3", false},
		/* what does not parse never matches */
		{"0.0.0.0/0 ::/0", "", false},
		{"0.0.0.0/0 ::/0", "unknown", false},
		{"0.0.0.0/0 ::/0", "1.2.3.4:80", false},
		{"0.0.0.0/0 ::/0", "[::1]", false},
		{"0.0.0.0/0 ::/0", " 1.2.3.4", false},
		{"0.0.0.0/0 ::/0", "fe80::1%eth0", false},
		{"0.0.0.0/0 ::/0", "1.2.3.4\n", false},
		/* an empty list matches nothing */
		{"", "10.0.0.1", false},
		/* several entries: any one */
		{"10.0.0.0/8 ::1 192.168.1.7 fd00::/8", "192.168.1.7", true},
		{"10.0.0.0/8 ::1 192.168.1.7 fd00::/8", "fdff::1", true},
		{"10.0.0.0/8 ::1 192.168.1.7 fd00::/8", "8.8.8.8", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cidr_list l;
		char err[128] = "";
		CHECK(cidr_list_parse(cases[i].list, &l, err, sizeof(err)), "%s", err);
		CHECK(cidr_list_match(&l, cases[i].addr) == cases[i].want, "'%s' in '%s'",
		      cases[i].addr, cases[i].list);
		cidr_list_free(&l);
	}
	struct cidr_list l;
	char err[64];
	cidr_list_parse("0.0.0.0/0", &l, err, sizeof(err));
	CHECK(!cidr_list_match(&l, NULL), "NULL address");
	CHECK(!cidr_list_match(NULL, "1.2.3.4"), "NULL list");
	cidr_list_free(&l);
}

static void test_client_address(void)
{
	static const struct {
		const char *trusted;
		const char *peer;
		const char *xff; /* NULL: no header */
		const char *want;
	} cases[] = {
		/* an untrusted peer is the client; its X-Forwarded-For is ignored */
		{"10.0.0.0/8", "203.0.113.5", NULL, "203.0.113.5"},
		{"10.0.0.0/8", "203.0.113.5", "1.1.1.1", "203.0.113.5"},
		{"", "10.0.0.1", "1.1.1.1", "10.0.0.1"},
		/* a trusted peer without the header is the client */
		{"10.0.0.0/8", "10.0.0.1", NULL, "10.0.0.1"},
		{"10.0.0.0/8", "10.0.0.1", "", "10.0.0.1"},
		{"10.0.0.0/8", "10.0.0.1", "  ", "10.0.0.1"},
		/* the rightmost untrusted entry */
		{"10.0.0.0/8", "10.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", "6.6.6.6,198.51.100.7,10.0.0.2,10.9.9.9", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", " \t198.51.100.7 \t", "198.51.100.7"},
		/* a client cannot spoof past the first untrusted hop */
		{"10.0.0.0/8", "10.0.0.1", "10.0.0.5, 198.51.100.7", "198.51.100.7"},
		/* all trusted: the leftmost */
		{"10.0.0.0/8", "10.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"},
		/* IPv6 and mapped forms */
		{"::1 fd00::/8", "::1", "2001:db8::5", "2001:db8::5"},
		{"::1 fd00::/8", "::1", "2001:db8::5, fd00::9", "2001:db8::5"},
		{"127.0.0.1", "::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", "::ffff:10.0.0.3, ::ffff:198.51.100.7", "::ffff:198.51.100.7"},
		/* an entry that is not an address: the client is unknown */
		{"10.0.0.0/8", "10.0.0.1", "unknown", "unknown"},
		{"10.0.0.0/8", "10.0.0.1", "198.51.100.7:4711", "unknown"},
		{"10.0.0.0/8", "10.0.0.1", "[2001:db8::5]", "unknown"},
		{"10.0.0.0/8", "10.0.0.1", "1.1.1.1, garbage, 10.0.0.2", "unknown"},
		{"10.0.0.0/8", "10.0.0.1", "1.1.1.1,,10.0.0.2", "unknown"},
		{"10.0.0.0/8", "10.0.0.1", "10.0.0.2,", "unknown"},
		/* garbage left of the client does not matter */
		{"10.0.0.0/8", "10.0.0.1", "<script>, 198.51.100.7", "198.51.100.7"},
		{"10.0.0.0/8", "10.0.0.1", ",,, 198.51.100.7, 10.0.0.3", "198.51.100.7"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cidr_list l;
		char err[128] = "", out[64] = "junk";
		CHECK(cidr_list_parse(cases[i].trusted, &l, err, sizeof(err)), "%s", err);
		client_address(&l, cases[i].peer, cases[i].xff, out, sizeof(out));
		CHECK_STR(out, cases[i].want, "peer %s xff '%s'", cases[i].peer,
		          cases[i].xff ? cases[i].xff : "(none)");
		cidr_list_free(&l);
	}

	/* An X-Forwarded-For of absurd length: 100,000 trusted hops then the
	 * client, and a 1 MiB single entry. */
	struct cidr_list l;
	char err[64], out[64];
	cidr_list_parse("10.0.0.0/8", &l, err, sizeof(err));
	struct strbuf sb;
	sb_init(&sb);
	sb_puts(&sb, "198.51.100.7");
	for (int i = 0; i < 100000; i++)
		sb_puts(&sb, ", 10.0.0.2");
	client_address(&l, "10.0.0.1", sb.buf, out, sizeof(out));
	CHECK_STR(out, "198.51.100.7", "100,000 hops");
	sb_free(&sb);
	char *huge = xmalloc((1u << 20) + 1);
	memset(huge, '1', 1u << 20);
	huge[1u << 20] = '\0';
	client_address(&l, "10.0.0.1", huge, out, sizeof(out));
	CHECK_STR(out, "unknown", "1 MiB entry");
	free(huge);

	/* NULL peer and a small buffer are handled. */
	client_address(&l, NULL, "1.2.3.4", out, sizeof(out));
	CHECK_STR(out, "", "NULL peer");
	char tiny[8];
	client_address(&l, "10.0.0.1", "2001:db8::1234:5678", tiny, sizeof(tiny));
	CHECK_STR(tiny, "2001:db", "cut to the buffer");
	client_address(NULL, "10.0.0.1", "1.2.3.4", out, sizeof(out));
	CHECK_STR(out, "10.0.0.1", "no trusted list");
	cidr_list_free(&l);
}

/* What a client is counted by: an IPv6 address by its /64. */
static void test_client_group(void)
{
	static const struct {
		const char *addr, *group;
	} cases[] = {
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},     /* the same /64 */
		{"2001:db8:1:3::9", "2001:db8:1:3::/64"},     /* the next one */
		{"::1", "::/64"},
		{"fe80::1:2:3:4", "fe80::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},     /* IPv4-mapped: one address */
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"},
		{"unix", "unix"},
		{"", ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char out[64];
		client_group(cases[i].addr, out, sizeof(out));
		CHECK(strcmp(out, cases[i].group) == 0, "%s -> %s, not %s", cases[i].addr, out,
		      cases[i].group);
	}
}

/* peer_text's IPv4 writing against inet_ntop's, at each digit count, and
 * its IPv6 and other families. */
static void test_peer_text(void)
{
	static const char *const v4[] = {
		"0.0.0.0", "127.0.0.1", "9.10.99.100", "192.0.2.7", "255.255.255.255", "10.200.3.40",
	};
	for (size_t i = 0; i < ARRAY_SIZE(v4); i++) {
		struct sockaddr_in in = {.sin_family = AF_INET};
		CHECK(inet_pton(AF_INET, v4[i], &in.sin_addr) == 1, "%s", v4[i]);
		char out[INET6_ADDRSTRLEN];
		memset(out, 'x', sizeof(out));
		peer_text((struct sockaddr *)&in, out, sizeof(out));
		CHECK_STR(out, v4[i], "IPv4");
	}
	static const char *const v6[] = {"::1", "2001:db8::7", "::ffff:192.0.2.7"};
	for (size_t i = 0; i < ARRAY_SIZE(v6); i++) {
		struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
		CHECK(inet_pton(AF_INET6, v6[i], &in6.sin6_addr) == 1, "%s", v6[i]);
		char out[INET6_ADDRSTRLEN];
		peer_text((struct sockaddr *)&in6, out, sizeof(out));
		CHECK_STR(out, v6[i], "IPv6");
	}
	/* Into less than INET_ADDRSTRLEN: still an address (inet_ntop's, or
	 * "?" when it does not fit), never "unix", which is not counted. */
	struct sockaddr_in small = {.sin_family = AF_INET};
	CHECK(inet_pton(AF_INET, "10.0.0.1", &small.sin_addr) == 1, "10.0.0.1");
	char cut[10];
	peer_text((struct sockaddr *)&small, cut, sizeof(cut));
	CHECK_STR(cut, "10.0.0.1", "IPv4 into %zu bytes", sizeof(cut));
	peer_text((struct sockaddr *)&small, cut, 4);
	CHECK_STR(cut, "?", "IPv4 into 4 bytes");
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char out[INET6_ADDRSTRLEN];
	peer_text((struct sockaddr *)&un, out, sizeof(out));
	CHECK_STR(out, "unix", "a unix socket");
}

int main(void)
{
	test_listen();
	test_parse();
	test_match();
	test_client_address();
	test_client_group();
	test_peer_text();
	return check_done("netaddr");
}
