/*
 * A tiny table-test harness: CHECK records a failure with file:line and
 * goes on; check_done() prints the summary line and gives the exit status.
 */
#ifndef HOOKD_CHECK_H
#define HOOKD_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed;
static int check_count;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		check_count++;                                                \
		if (!(cond)) {                                                \
			check_failed++;                                       \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
			        __LINE__, #cond);                             \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

#define CHECK_STR(got, want, ...)                                             \
	do {                                                                  \
		const char *g_ = (got), *w_ = (want);                         \
		check_count++;                                                \
		if ((g_ == NULL) != (w_ == NULL) ||                           \
		    (g_ && strcmp(g_, w_) != 0)) {                            \
			check_failed++;                                       \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\": ",   \
			        __FILE__, __LINE__, g_ ? g_ : "(null)",       \
			        w_ ? w_ : "(null)");                          \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failed);
	if (check_count == 0) {
		printf("%s: no checks ran\n", name);
		return 1;
	}
	return check_failed ? 1 : 0;
}

#endif
