/*
 * http_parse.c - bounded parsers for response headers (see http_parse.h).
 *
 * Only the headers the engine uses are looked at: the status line,
 * Content-Range (a range answer is used only when it names exactly the range
 * asked), X-Error-Code (the hub's reason for a 4xx), Retry-After (seconds
 * only; an HTTP date is ignored and the engine's own backoff applies) and
 * Link rel="next" (listing pages). A Link longer than MFS_HTTP_LINK_MAX is
 * flagged instead of dropped: a lost next page would cut a listing short.
 */
#include "http_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mfs_http_answer_reset(struct mfs_http_answer *a)
{
	free(a->link_next);
	*a = (struct mfs_http_answer){ .retry_after = -1 };
}

static bool parse_u64(const char *s, const char *end, uint64_t *v)
{
	if (s >= end)
		return false;
	uint64_t n = 0;
	for (; s < end; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return true;
}

bool mfs_http_parse_content_range(const char *v, uint64_t *a, uint64_t *b, uint64_t *t)
{
	if (strncasecmp(v, "bytes ", 6))
		return false;
	v += 6;
	const char *dash = strchr(v, '-'), *slash = strchr(v, '/');
	if (!dash || !slash || dash > slash)
		return false;
	if (!parse_u64(v, dash, a) || !parse_u64(dash + 1, slash, b) || *b < *a)
		return false;
	if (!strcmp(slash + 1, "*")) {
		*t = UINT64_MAX;
		return true;
	}
	return parse_u64(slash + 1, slash + 1 + strlen(slash + 1), t) && *b < *t;
}

char *mfs_http_parse_link_next(const char *v)
{
	const char *p = v;
	for (int guard = 0; *p && guard < 64; guard++) {
		const char *lt = strchr(p, '<');
		if (!lt)
			return NULL;
		const char *gt = strchr(lt, '>');
		if (!gt)
			return NULL;
		const char *end = strchr(gt, ',');
		if (!end)
			end = gt + strlen(gt);
		/* Parameters between '>' and the next ',' (or the end). */
		size_t plen = (size_t)(end - gt);
		char params[256];
		if (plen >= sizeof(params))
			plen = sizeof(params) - 1;
		memcpy(params, gt, plen);
		params[plen] = 0;
		for (char *c = params; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strstr(params, "rel=\"next\"") || strstr(params, "rel=next"))
			return strndup(lt + 1, (size_t)(gt - lt - 1));
		p = *end ? end + 1 : end;
	}
	return NULL;
}

void mfs_http_answer_line(struct mfs_http_answer *a, const char *data, size_t len)
{
	char line[MFS_HTTP_LINK_MAX];
	if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
		/* A new response (after 1xx, too): forget the previous headers. */
		mfs_http_answer_reset(a);
		const char *sp = memchr(data, ' ', len);
		if (sp && (size_t)(sp - data) + 4 <= len) {
			uint64_t st;
			if (parse_u64(sp + 1, sp + 4, &st))
				a->status = (long)st;
		}
		return;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return;
	size_t nlen = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vlen = len - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= sizeof(line)) {
		if (nlen == 4 && !strncasecmp(data, "Link", 4))
			a->link_overlong = true;
		return;
	}
	memcpy(line, v, vlen);
	line[vlen] = 0;
	if (nlen == 13 && !strncasecmp(data, "Content-Range", 13)) {
		a->has_cr = true;
		a->cr_bad = !mfs_http_parse_content_range(line, &a->cr_a, &a->cr_b, &a->cr_total);
	} else if (nlen == 12 && !strncasecmp(data, "X-Error-Code", 12)) {
		snprintf(a->error_code, sizeof(a->error_code), "%s", line);
	} else if (nlen == 11 && !strncasecmp(data, "Retry-After", 11)) {
		uint64_t s;
		if (parse_u64(line, line + strlen(line), &s))
			a->retry_after = s > 3600 ? 3600 : (long)s;
	} else if (nlen == 4 && !strncasecmp(data, "Link", 4) && !a->link_next) {
		/* Out of memory reads as "no next page": the caller's page count
		 * and the listing's own checks still hold. */
		a->link_next = mfs_http_parse_link_next(line);
	}
}
