/*
 * connlimit: per-address connection counts (many addresses, the table
 * growing, entries gone at zero) and the body budget's admission rule.
 */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "connlimit.h"
#include "util.h"

static void test_counts(void)
{
	struct addr_counts *t = addr_counts_new();
	struct addr_count *a1 = addr_counts_add(t, "127.0.0.1");
	struct addr_count *a2 = addr_counts_add(t, "127.0.0.1");
	struct addr_count *b = addr_counts_add(t, "::1");
	CHECK(a1 == a2, "one entry an address");
	CHECK(a1 != b, "one entry each address");
	CHECK(addr_count_value(a1) == 2 && addr_count_value(b) == 1, "counts %d %d",
	      addr_count_value(a1), addr_count_value(b));
	CHECK(addr_counts_size(t) == 2, "two addresses");
	addr_counts_drop(t, a1);
	CHECK(addr_count_value(a2) == 1, "one left");
	addr_counts_drop(t, a2);
	CHECK(addr_counts_size(t) == 1, "gone at zero");
	a1 = addr_counts_add(t, "127.0.0.1");
	CHECK(addr_count_value(a1) == 1, "counted afresh");

	/* Many addresses: the table grows, every count stays right, and
	 * dropping them all leaves it empty. */
	enum { N = 5000 };
	struct addr_count **e = xcalloc(N, sizeof(*e));
	char addr[64];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++) {
			snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
			e[i] = addr_counts_add(t, addr);
		}
	}
	CHECK(addr_counts_size(t) == N + 2, "%zu addresses", addr_counts_size(t));
	int wrong = 0;
	for (int i = 0; i < N; i++)
		wrong += addr_count_value(e[i]) != 3;
	CHECK(wrong == 0, "%d counts wrong", wrong);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			addr_counts_drop(t, e[i]);
	}
	CHECK(addr_counts_size(t) == 2, "%zu addresses after dropping", addr_counts_size(t));
	addr_counts_drop(t, a1);
	addr_counts_drop(t, b);
	CHECK(addr_counts_size(t) == 0, "empty");
	free(e);
	addr_counts_free(t);
	addr_counts_free(NULL);
}

static void test_budget(void)
{
	struct body_budget b = {.limit = 100};
	CHECK(body_budget_fits(&b, 100), "the whole budget");
	CHECK(body_budget_fits(&b, 1000), "more than the budget, nothing reserved: alone");
	body_budget_take(&b, 60);
	CHECK(body_budget_fits(&b, 40), "what is left");
	CHECK(!body_budget_fits(&b, 41), "one byte over");
	CHECK(!body_budget_fits(&b, UINT64_MAX), "no overflow");
	body_budget_take(&b, 40);
	CHECK(!body_budget_fits(&b, 1), "full");
	body_budget_give(&b, 60);
	CHECK(b.used == 40 && body_budget_fits(&b, 60), "given back");
	body_budget_give(&b, 1000);
	CHECK(b.used == 0, "never below zero");
	struct body_budget none = {.limit = 0, .used = UINT64_MAX / 2};
	CHECK(body_budget_fits(&none, UINT64_MAX / 2), "limit 0: no bound");
}

int main(void)
{
	test_counts();
	test_budget();
	return check_done("connlimit");
}
