/*
 * fuzz_common.h - what the libFuzzer targets of tests/fuzz share.
 *
 * A target checks properties, not just the absence of crashes: when one does
 * not hold, FUZZ_CHECK aborts, which libFuzzer reports as a crash and saves
 * the input. Built only with MFS_FUZZ=ON (clang, -fsanitize=fuzzer).
 */
#ifndef MFS_FUZZ_COMMON_H
#define MFS_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,     \
				__LINE__, #cond);                                     \
			abort();                                                      \
		}                                                                     \
	} while (0)

#endif
