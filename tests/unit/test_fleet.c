/*
 * The shared journal's upkeep (fleet.c): how long after a reconnect an
 * instance takes nobody's deliveries over (fleet_quiet_ms).
 */
#include <stdint.h>

#include "check.h"
#include "fleet.h"

/* Issue: the wait was one lease whatever the reconnect's own bounds: with
 * a short lease, an instance whose reconnect lagged (a connect_timeout on a
 * silent host, then the longest backoff) found its running delivery taken
 * over. The wait covers that lag and two heartbeat ticks (1 s each). */
static void test_quiet_after_reconnect(void)
{
	static const struct {
		int64_t lease_ms, lag_ms, want_ms;
		const char *why;
	} cases[] = {
		{30000, 15000, 30000, "a long lease covers the lag"},
		{3000, 15000, 17000, "a short lease: the lag and two ticks"},
		{17000, 15000, 17000, "equal"},
		{3000, 0, 3000, "a journal that never goes down: the lease"},
		{3000, -1, 3000, "no bound on a reconnect: the lease"},
		{3000, 10000 + 2 * 4000, 20000, "two hosts, connect_timeout=4 each"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = fleet_quiet_ms(cases[i].lease_ms, cases[i].lag_ms);
		CHECK(got == cases[i].want_ms, "%s: %lld ms, want %lld", cases[i].why,
		      (long long)got, (long long)cases[i].want_ms);
	}
}

int main(void)
{
	test_quiet_after_reconnect();
	return check_done("test_fleet");
}
