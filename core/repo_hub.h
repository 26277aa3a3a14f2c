/*
 * repo_hub.h - the parts of the hub repository that are not a repository:
 * the bounded reader of its file listing (the tree API's pages), kept
 * callable on its own so that a fuzzer can drive it without a network
 * (tests/fuzz/fuzz_hub_listing.c). The repository itself is opened through
 * mfs_repo_open (repo.h).
 *
 * A listing is what a hostile hub controls most directly, so every dimension
 * of it has a documented limit (docs/network.md, "Limits of a hub listing"):
 * when one is passed, listing fails with -EFBIG and says which.
 */
#ifndef MFS_REPO_HUB_H
#define MFS_REPO_HUB_H

#include <stddef.h>

#include "repo.h"

#define MFS_HUB_PAGES_MAX 1000                 /* pages of one listing */
#define MFS_HUB_PAGE_MAX (4 << 20)             /* bytes of one page */
#define MFS_HUB_PAGE_VALUES_MAX 200000         /* JSON values of one page */
#define MFS_HUB_FILES_MAX 100000               /* files of one listing */
#define MFS_HUB_PATH_MAX 1024                  /* bytes of one file's path */
#define MFS_HUB_LISTING_BYTES_MAX (16 << 20)   /* memory held by one listing */
#define MFS_HUB_LISTING_DEADLINES 10           /* a listing's time, in request deadlines */

/* A listing being read page by page. Zero-initialise; release when done
 * (unless its l was handed on, then release nothing). */
struct mfs_hub_listing {
	struct mfs_repo_listing l;   /* the files so far; owned */
	size_t alloc;                /* slots allocated in l.files */
	size_t bytes;                /* memory counted against MFS_HUB_LISTING_BYTES_MAX */
	unsigned pages;              /* pages taken so far */
};

/*
 * Adds the files of one tree page (a JSON array of entries; directories are
 * skipped) to acc. repo and where (the endpoint, redacted) name the listing
 * in messages. Returns 0, -EPROTO (kind PARSE) for a page that is not what
 * the hub's API answers, -EFBIG (kind PARSE) when a limit above is passed,
 * -ENOMEM. On error acc keeps what it had (release it). Not thread-safe on
 * one acc.
 */
int mfs_hub_listing_add_page(struct mfs_hub_listing *acc, const char *repo, const char *where,
			     const char *body, size_t len, struct mfs_err *err);

/* Frees what acc holds; acc may be reused. NULL is a no-op. */
void mfs_hub_listing_release(struct mfs_hub_listing *acc);

#endif
