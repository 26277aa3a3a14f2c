/*
 * evict.h - the cache quota and eviction (product.md §6).
 *
 * The quota (bytes, with high and low watermarks) lives in the index's meta
 * table so every process sees the same one. Eviction is LRU by last read, at
 * chunk granularity, over chunks of artifacts that are not active (no open
 * pin in any live process, not pinned by the user); each eviction leaves
 * evidence in the evictions table.
 */
#ifndef MFS_EVICT_H
#define MFS_EVICT_H

#include <stdint.h>

#include "err.h"

struct mfs_store;

/*
 * Called by the store before it commits len new bytes of chunks: if a quota
 * is set and usage + len would pass the high watermark, evicts down to the
 * low watermark first; if the bytes still do not fit under the quota
 * (everything left is active), returns -ENOSPC (kind QUOTA) with a message
 * that says so. 0 when there is room (always, with no quota).
 * Must be called without the store lock held.
 */
int mfs_evict_reserve(struct mfs_store *s, uint64_t len, struct mfs_err *err);

#endif
