/*
 * hub_stage.h - a hub-checksum file downloaded whole, verified, then kept.
 *
 * In hub-checksum mode a file has no chunk digests, only the whole-file
 * SHA-256 the hub lists (or, for a small non-LFS file, its git blob id), so
 * no byte of it may be kept before the whole file hashes right (product.md
 * §3). The download goes to a staging directory, one file per chunk-sized
 * range, in parallel; beside it a thread hashes the staged ranges in order
 * (the whole-file SHA-256 and the git blob id if asked, over bytes just
 * written, so from the page cache), while each range's own SHA-256, its
 * chunk digest, is taken from the buffer on the engine's worker threads.
 * When the whole file matches, each staged range becomes a chunk by a rename
 * into chunks/ (nothing is written twice); when it does not, the staging is
 * deleted and nothing is kept.
 *
 * Staging: <store>/partial/<key>/<index> (key: the expected SHA-256 or git
 * blob id), each file complete before it gets its name, and
 * <store>/partial/<key>/done listing the indexes staged, so a killed
 * download resumes with what it has. gc removes stagings untouched for a day.
 */
#ifndef MFS_HUB_STAGE_H
#define MFS_HUB_STAGE_H

#include "cache.h"
#include "err.h"
#include "repo.h"
#include "store.h"

/*
 * Downloads f (path, size, chunk_size, n_chunks and, unless git_oid is
 * given, sha256 set; chunks NULL) of repo_name at commit from repo, checks
 * it whole, commits its chunks to s and fills f->chunks (malloc'd; the
 * caller's mfs_file_release frees it) and f->sha256. 0; -EIO with kind HASH
 * when the bytes do not match (nothing kept); -ENOSPC; or the fetch's error
 * (the staging is kept for a resume).
 */
int mfs_hub_stage_file(struct mfs_store *s, struct mfs_repo *repo, const char *repo_name,
		       const char *commit, struct mfs_file *f, const char *git_oid,
		       mfs_progress_fn progress, void *pctx, struct mfs_err *err);

#endif
