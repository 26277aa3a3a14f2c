/*
 * admit.h - the admission transaction (product.md §4).
 *
 * For one model ref: resolve the revision to a commit, list the files,
 * establish the root of trust (a signed manifest, or hub checksums where the
 * policy allows them), select the artifact and its file set, validate the
 * structure of every file from verified bytes, compute identity, and commit
 * the record in one transaction. Nothing is visible before that commit; an
 * error at any step leaves the store as it was (verified chunks fetched on
 * the way may stay cached, unreferenced, for a later attempt).
 *
 * Signed mode fetches only the header bytes it validates; hub-checksum mode
 * fetches each file whole (resumably) and checks its SHA-256 before anything
 * is kept, since there are no chunk digests to check a part against.
 *
 * Blocking (network); thread-safe as long as store and cache are.
 */
#ifndef MFS_ADMIT_H
#define MFS_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "err.h"
#include "store.h"

struct mfs_admit_opts {
	const char *endpoint;          /* repository URL; NULL: $HF_ENDPOINT or huggingface.co */
	const char *const *sidecars;   /* extra repo paths to include in the file set */
	size_t n_sidecars;
	mfs_progress_fn progress;      /* for hub-mode downloads; may be NULL */
	void *progress_ctx;
};

struct mfs_admit_result {
	int64_t artifact_id;
	char *canonical_ref;           /* malloc'd */
	char *trust;                   /* malloc'd: key id or "hub" */
};

/* Admits ref. 0 and *out (release with mfs_admit_result_release), or -errno
 * with err saying which step failed and what to do. */
int mfs_admit(struct mfs_store *s, struct mfs_cache *c, const char *ref,
	      const struct mfs_admit_opts *opts, struct mfs_admit_result *out,
	      struct mfs_err *err);
void mfs_admit_result_release(struct mfs_admit_result *r);

/* The endpoint admission uses when none is given. malloc'd. */
char *mfs_admit_default_endpoint(void);

/* Fetches every byte of an installed artifact's files and checks each
 * whole-file SHA-256 (`pull`). Resumable. */
int mfs_admit_pull(struct mfs_store *s, struct mfs_cache *c, int64_t artifact_id,
		   mfs_progress_fn progress, void *pctx, struct mfs_err *err);

#endif
