/*
 * What every fuzz target defines (libFuzzer's entry point) and a few
 * helpers they share. A target is built twice: with libFuzzer (clang,
 * -Dfuzzing=true) and with replay_main.c, which feeds it the committed
 * corpus under `meson test`.
 */
#ifndef HOOKD_FUZZ_H
#define HOOKD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test promises: a violation is a finding,
 * so it must crash loudly for libFuzzer to keep the input. */
#define FUZZ_ASSERT(cond)                                                               \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
			        #cond);                                                 \
			abort();                                                        \
		}                                                                       \
	} while (0)

#endif
