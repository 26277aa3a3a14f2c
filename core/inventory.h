/*
 * inventory.h - read-only questions about installed artifacts and files that
 * the mount's extended attributes and `status` ask: what an artifact is
 * (its admission row), whether a file was verified whole, and the last time
 * bytes of a file were evicted and why.
 *
 * These are plain queries on the store's index (tables artifacts, files,
 * artifact_files, chunks, evictions of docs/store.md) through
 * mfs_store_lock(). Thread-safe; each call blocks on SQLite only.
 */
#ifndef MFS_INVENTORY_H
#define MFS_INVENTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct mfs_store;

/* An artifact's admission row. Every string is malloc'd (NULL when the
 * column is NULL); release with mfs_inv_artifact_release. */
struct mfs_inv_artifact {
	int64_t id;
	char *canonical_ref;
	char *endpoint;
	char *org, *name;
	char *commit;
	char *revision;        /* the name used when adding (may be NULL) */
	char *primary_path;
	char *distribution_id;
	char *identity;
	char *format;          /* "gguf", "safetensors" */
	char *trust;           /* key id or "hub" */
	char *meta_json;       /* compact metadata as JSON text (may be NULL) */
	bool pinned;           /* the user pin */
	int64_t added_at;      /* unix time */
};

/* Loads artifact id. 0, -ENOENT (kind NOT_FOUND), -EIO (SQLITE), -ENOMEM. */
int mfs_inv_artifact_load(struct mfs_store *s, int64_t id, struct mfs_inv_artifact *out,
			  struct mfs_err *err);
void mfs_inv_artifact_release(struct mfs_inv_artifact *a);

/* True if the file's whole-file SHA-256 was checked over its resident
 * chunks (files.verified). False also on error. */
bool mfs_inv_file_verified(struct mfs_store *s, int64_t file_id);

/* The most recent eviction of bytes of a file: by its path in one of its
 * artifacts, or by one of its chunk digests. */
struct mfs_inv_eviction {
	bool any;              /* false: never evicted */
	int64_t at;            /* unix time */
	int64_t bytes;
	char reason[64];       /* "quota", "corrupt", "user", ... */
};

/* 0 (out->any tells whether one exists) or -EIO. */
int mfs_inv_last_eviction(struct mfs_store *s, int64_t file_id, struct mfs_inv_eviction *out,
			  struct mfs_err *err);

#endif
