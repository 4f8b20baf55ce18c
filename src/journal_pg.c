/* placeholder until the PostgreSQL backend lands (not committed) */
#include "journal_backend.h"
#include <stdio.h>
static struct journal *pg_open(const struct journal_opts *o, bool ro, char *err, size_t errlen)
{
	(void)o; (void)ro;
	snprintf(err, errlen, "no PostgreSQL backend in this build");
	return NULL;
}
const struct journal_ops journal_pg_ops = {.name = "postgresql", .open = pg_open};
