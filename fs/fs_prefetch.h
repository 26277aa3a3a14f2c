/*
 * fs_prefetch.h - background prefetch for the mount: a few threads that
 * fetch chunks ahead of readers, from a bounded queue, with no FUSE in it.
 *
 * Two kinds of work:
 *   - a range (a sequential reader's window ahead of it): served first;
 *   - a whole file (a reader that jumps around, as mmap loaders do): served
 *     a batch at a time, round-robin between files, after the ranges.
 * Demand reads never go through here: they call the cache themselves, and
 * the cache's single-flight makes a demand read of a chunk that prefetch is
 * fetching wait for that one chunk only.
 *
 * One global bound: `threads` workers, each with at most one batch (at most
 * MFS_PREFETCH_BATCH_BYTES) in flight, and queues of fixed capacity; a hint
 * that does not fit is dropped (it is only a hint).
 *
 * The struct mfs_file passed in is borrowed and must stay valid until
 * mfs_prefetch_free (the mount keeps loaded files until it ends).
 */
#ifndef MFS_FS_PREFETCH_H
#define MFS_FS_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "cache.h"

#define MFS_PREFETCH_BATCH_BYTES (16u << 20)  /* one worker's fetch at a time */
#define MFS_PREFETCH_RANGES 256              /* queued ranges */
#define MFS_PREFETCH_FILES 64                /* queued whole files */

struct mfs_prefetch;

/* Called after every batch with the file's caller context (e.g. to mark
 * its resident count stale). May be NULL. */
typedef void (*mfs_prefetch_done_fn)(void *ctx, const struct mfs_file *f, int rc);

/* Starts threads workers (0: 4). The cache is borrowed. 0 or -errno. */
int mfs_prefetch_new(struct mfs_cache *cache, unsigned threads, mfs_prefetch_done_fn done,
		     void *done_ctx, struct mfs_prefetch **out);

/* Stops the workers (each finishes its current batch) and frees. */
void mfs_prefetch_free(struct mfs_prefetch *p);

/* Queues chunks [first, first+count) of f. False if the queue is full. */
bool mfs_prefetch_range(struct mfs_prefetch *p, const struct mfs_file *f, uint32_t first,
			uint32_t count);

/* Queues every chunk of f (missing ones are fetched) at low priority. False
 * if the queue is full or f is already queued. */
bool mfs_prefetch_file(struct mfs_prefetch *p, const struct mfs_file *f);

struct mfs_prefetch_stats {
	uint64_t batches;        /* fetches done */
	uint64_t failures;       /* fetches that failed */
	uint64_t dropped;        /* hints dropped: queue full */
	unsigned queued_ranges, queued_files;
};
void mfs_prefetch_stats(struct mfs_prefetch *p, struct mfs_prefetch_stats *out);

#endif
