/*
 * fuzz_http_header.c - libFuzzer target for the response-header parsers
 * (core/http_parse.h): status lines, Content-Range, X-Error-Code,
 * Retry-After and Link, fed one line at a time as libcurl hands them over.
 *
 * The input is split at '\n' into header lines (each kept with its line
 * ending, as libcurl passes them, and without a NUL terminator); the whole
 * input, as a string, also goes straight to the Content-Range and Link
 * parsers. Properties checked besides the sanitizers': a parsed range is
 * ordered, Retry-After is capped, X-Error-Code is terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_http_answer a = { .retry_after = -1 };
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			size_t end = i < size ? i + 1 : i;
			if (end > start) {
				/* An exact-size copy, so reading past the line is caught. */
				char *line = malloc(end - start);
				if (!line)
					break;
				memcpy(line, data + start, end - start);
				mfs_http_answer_line(&a, line, end - start);
				free(line);
			}
			start = end;
		}
	}
	if (a.has_cr && !a.cr_bad && a.cr_b < a.cr_a)
		abort();
	if (a.retry_after > 3600)
		abort();
	if (memchr(a.error_code, 0, sizeof(a.error_code)) == NULL)
		abort();
	mfs_http_answer_reset(&a);

	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	uint64_t x, y, t;
	if (mfs_http_parse_content_range(s, &x, &y, &t) && (y < x || (t != UINT64_MAX && y >= t)))
		abort();
	free(mfs_http_parse_link_next(s));
	free(s);
	return 0;
}
