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

#include <stdbool.h>
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

/* If a quota is set and usage is above its high watermark, evicts down to
 * the low one (reason "quota"); for a long-lived process to call now and
 * then, so a quota lowered elsewhere holds without new fetches. 0 or -EIO. */
int mfs_evict_enforce(struct mfs_store *s, struct mfs_err *err);

/*
 * Called by the store when the disk under it is full (a write failed with
 * ENOSPC): evicts least recently read chunks of inactive artifacts, at least
 * 64 MiB or eight times len, with reason "disk full". 0 when something was
 * freed; -ENOSPC when nothing could be (every chunk is active), -EIO.
 * Must be called without the store lock held.
 */
int mfs_evict_make_room(struct mfs_store *s, uint64_t len, struct mfs_err *err);

/* Defaults of the watermarks, in percent of the quota. */
#define MFS_EVICT_HIGH_PCT 90u
#define MFS_EVICT_LOW_PCT 70u

/* The quota as stored (meta keys quota_bytes, quota_high_pct, quota_low_pct)
 * and the usage (the sum of resident chunk sizes). */
struct mfs_quota {
	uint64_t bytes;        /* 0: no quota */
	unsigned high_pct, low_pct;
	uint64_t high, low;    /* the watermarks in bytes (0 with no quota) */
	uint64_t usage;        /* resident bytes */
	uint64_t active;       /* resident bytes of active artifacts (not evictable) */
};

/* Sets the quota (0 removes it) and its watermarks, percentages with
 * 0 < low_pct < high_pct <= 100; 0 for either keeps its stored value. Takes
 * effect at the next reservation in every process. 0, -EINVAL (USAGE), -EIO. */
int mfs_evict_set_quota(struct mfs_store *s, uint64_t bytes, unsigned high_pct,
			unsigned low_pct, struct mfs_err *err);

/* The quota in bytes alone (0: none), without the usage scans: cheap
 * enough for every open. */
uint64_t mfs_evict_quota_bytes(struct mfs_store *s);

/* Reads the quota and usage. 0 or -EIO. */
int mfs_evict_get_quota(struct mfs_store *s, struct mfs_quota *out);

/* Evicts the resident chunks of artifact_id that no active artifact shares,
 * leaving evidence with reason ("manual", "quota", ...). *bytes (may be NULL)
 * gets the bytes freed. -ENOENT (NOT_FOUND), -EBUSY (BUSY) when the artifact
 * is open in some process or pinned, -EIO. */
int mfs_evict_artifact(struct mfs_store *s, int64_t artifact_id, const char *reason,
		       uint64_t *bytes, struct mfs_err *err);

/* Garbage collection: evicts down to the low watermark (reason "quota"),
 * evicts resident chunks no installed file uses, removes chunk files with no
 * resident row, stale files in tmp/ (older than ten minutes) and partial
 * downloads older than a day. *bytes (may be NULL) gets the bytes freed. */
int mfs_evict_gc(struct mfs_store *s, uint64_t *bytes, struct mfs_err *err);

/* Uninstalls artifact_id: refuses an active one (-EBUSY), evicts its chunks
 * no other artifact uses (reason "manual"), deletes its rows (and those of
 * its files, chunk digests and revision names that nothing else uses) in
 * one transaction, bumps the generation, then deletes its record file.
 * -ENOENT when not installed. */
int mfs_evict_remove(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err);

/* Sets or clears the user pin (artifacts.pinned). -ENOENT when not installed. */
int mfs_evict_pin(struct mfs_store *s, int64_t artifact_id, bool pinned, struct mfs_err *err);

#endif
