/*
 * cache.h - verified reads of installed files, chunk by chunk.
 *
 * This is the read path every consumer shares (the FUSE daemon, `pull`,
 * `verify`): a byte range of a file is served only from chunks that are
 * resident and verified; a missing chunk is fetched from the file's
 * repository, verified against its SHA-256 and committed to the store before
 * any of its bytes are returned.
 *
 * Single-flight: concurrent misses on one chunk (from any thread of this
 * process) share one fetch; the others wait on the in-flight entry. Waits are
 * bounded by the deadline of the options: a waiter gives up on its own.
 *
 * Thread-safe. May block on network and disk I/O; holds no lock while doing so.
 */
#ifndef MFS_CACHE_H
#define MFS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"
#include "store.h"

struct mfs_cache;

struct mfs_cache_opts {
	unsigned max_inflight;     /* range requests in flight per fetch (0: 8) */
	long deadline_ms;          /* a read (or fetch) gives up after this, waiting
				    * for another thread's fetch included; 0: the
				    * default of mfs_fetch_deadline_ms (repo.h) */
};

/* Creates a cache over store (borrowed: it must outlive the cache). */
int mfs_cache_new(struct mfs_store *store, const struct mfs_cache_opts *opts,
		  struct mfs_cache **out, struct mfs_err *err);
void mfs_cache_free(struct mfs_cache *c);

/* Makes chunks [first, first+count) of f resident and verified, fetching the
 * missing ones in parallel. 0, or the first error: -EIO (fetch failed, kind
 * says why: HTTP, NET, HASH), -ENOSPC (no cache space). Chunks that did
 * arrive stay committed. */
int mfs_cache_fetch(struct mfs_cache *c, const struct mfs_file *f, uint32_t first,
		    uint32_t count, struct mfs_err *err);

/* Reads [off, off+len) of f into buf, fetching what is missing. Returns the
 * number of bytes read (short only at end of file) or -errno. */
ssize_t mfs_cache_read(struct mfs_cache *c, const struct mfs_file *f, uint64_t off,
		       size_t len, void *buf, struct mfs_err *err);

/* Progress callback for long operations: bytes done of total. */
typedef void (*mfs_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Fetches every missing chunk of f, then checks the whole-file SHA-256 over
 * the resident chunks and marks the file verified. Resumable: what is
 * resident is not fetched again. */
int mfs_cache_pull_file(struct mfs_cache *c, const struct mfs_file *f,
			mfs_progress_fn progress, void *pctx, struct mfs_err *err);

/* Re-hashes every resident chunk of f; a chunk that fails is quarantined
 * and fetched again (repaired). *bad counts the chunks that failed. */
int mfs_cache_verify_file(struct mfs_cache *c, const struct mfs_file *f,
			  unsigned *bad, struct mfs_err *err);

#endif
