/*
 * http_parse.h - the parsers for what an HTTP server says in its headers.
 *
 * Everything here reads bytes a server chose: each parser is bounded (fixed
 * buffers, overflow-checked numbers) and never trusts a length it was given
 * inside the data. Kept apart from http.c so that a fuzzer can drive them
 * without a network (tests/fuzz/fuzz_http_header.c).
 *
 * Pure functions, thread-safe.
 */
#ifndef MFS_HTTP_PARSE_H
#define MFS_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MFS_HTTP_LINK_MAX 8192          /* longest Link header accepted */

/* What one response's headers said. Reset by mfs_http_answer_reset. */
struct mfs_http_answer {
	long status;             /* from the status line; 0 until one is seen */
	bool has_cr;             /* a Content-Range header was present */
	uint64_t cr_a, cr_b, cr_total; /* its range; cr_total UINT64_MAX for '*' */
	bool cr_bad;             /* present but unparsable */
	char error_code[64];     /* X-Error-Code, "" when absent, cut to fit */
	char *link_next;         /* Link rel="next" target, owned, NULL when absent */
	bool link_overlong;      /* a Link header longer than MFS_HTTP_LINK_MAX */
	long retry_after;        /* seconds (at most 3600), -1 when absent */
};

/* Forgets everything (frees link_next). Also the initialiser: a zeroed struct is fine. */
void mfs_http_answer_reset(struct mfs_http_answer *a);

/*
 * Takes one raw header line as libcurl hands it (status line "HTTP/..." or
 * "Name: value", with or without CRLF, not NUL-terminated) into a. A status
 * line starts a new response (after a 1xx too) and resets a. Other headers
 * are ignored.
 */
void mfs_http_answer_line(struct mfs_http_answer *a, const char *data, size_t len);

/* "bytes A-B/T" (T may be '*': *t = UINT64_MAX). True when well formed with A <= B < T. */
bool mfs_http_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *t);

/* The rel="next" target of a Link header value (NUL-terminated); malloc'd or NULL. */
char *mfs_http_parse_link_next(const char *v);

#endif
