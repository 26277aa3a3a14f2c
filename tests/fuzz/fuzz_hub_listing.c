/*
 * fuzz_hub_listing.c - libFuzzer target for the hub's file listing: the
 * Link header that leads to the next page (core/http_parse.h) and the tree
 * page JSON (mfs_hub_listing_add_page, core/repo_hub.h).
 *
 * Input: the first line is a Link header value, the rest one tree page; the
 * page is added twice, so that the second pass runs against what the first
 * one accumulated. Properties checked besides the sanitizers': every listed
 * file has a path of at most MFS_HUB_PATH_MAX bytes, the listing stays within
 * its file and memory limits, and a failed page leaves the listing as valid
 * as before.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "repo_hub.h"

static void check(const struct mfs_hub_listing *acc)
{
	if (acc->l.n > MFS_HUB_FILES_MAX || acc->bytes > MFS_HUB_LISTING_BYTES_MAX ||
	    acc->l.n > acc->alloc)
		abort();
	for (size_t i = 0; i < acc->l.n; i++) {
		const struct mfs_repo_file *f = &acc->l.files[i];
		if (!f->path || !f->path[0] || strlen(f->path) > MFS_HUB_PATH_MAX)
			abort();
		if (f->has_sha256 && strlen(f->sha256) != 64)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl ? (size_t)(nl - data) : size;
	char *link = malloc(hlen + 1);
	if (!link)
		return 0;
	memcpy(link, data, hlen);
	link[hlen] = 0;
	free(mfs_http_parse_link_next(link));
	free(link);
	if (!nl)
		return 0;
	size_t blen = size - hlen - 1;
	char *body = malloc(blen ? blen : 1);
	if (!body)
		return 0;
	memcpy(body, nl + 1, blen);
	struct mfs_hub_listing acc = { 0 };
	struct mfs_err err = { 0 };
	for (int pass = 0; pass < 2; pass++) {
		mfs_hub_listing_add_page(&acc, "org/fuzz", "http://fuzz", body, blen, &err);
		check(&acc);
	}
	mfs_hub_listing_release(&acc);
	free(body);
	return 0;
}
