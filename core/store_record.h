/*
 * store_record.h - admission records: the immutable document an admission
 * leaves in records/, and the one transaction that makes it visible.
 *
 * A record is a JSON object holding everything the index keeps about an
 * artifact (docs/store.md spells it out):
 *   {"version":1, "canonical_ref", "endpoint", "org", "name", "commit",
 *    "revisions":[names used to add it], "primary", "distribution_id",
 *    "identity", "format", "trust", "manifest_sha256", "sequence", "meta",
 *    "added_at", "files":[{"path","size","sha256","chunk_size","chunks":[hex]}]}
 * The index is rebuilt from these records and the chunk files.
 */
#ifndef MFS_STORE_RECORD_H
#define MFS_STORE_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct mfs_store;

/*
 * Commits an admission: writes (or extends with a new revision name) the
 * record file, then inserts the artifact, its files, chunk digests and the
 * revision alias in one SQLite transaction and bumps the generation.
 * Refused (-EPERM kind POLICY, nothing changes) when the artifact is already
 * installed from another root or manifest, or when a path it lists is
 * already installed with other bytes (docs/trust.md, identity), and when a
 * moving revision name would go back to a lower manifest sequence
 * (rollback.h; the state is raised here, in the same critical section).
 * Idempotent for an artifact installed from the same root.
 * record is borrowed. Writes the artifact's id to *artifact_id if non-NULL.
 */
int mfs_store_admit(struct mfs_store *s, json_t *record, int64_t *artifact_id,
		    struct mfs_err *err);

/* Writes data atomically to <store>/<sub>/<name> (tmp + rename); 0 or -errno. */
int mfs_store_write_file(struct mfs_store *s, const char *sub, const char *name,
			 const void *data, size_t len, struct mfs_err *err);

/* Loads the record of an installed artifact by id (caller decrefs). */
int mfs_store_record_load(struct mfs_store *s, int64_t artifact_id, json_t **out,
			  struct mfs_err *err);

/* The record of canonical_ref if records/ has a valid one (whether or not
 * the index has its rows), else NULL. Caller decrefs. */
json_t *mfs_store_record_find(struct mfs_store *s, const char *canonical_ref);

/* A record being removed (`rm`) is renamed to <name>.json MFS_RECORD_ASIDE
 * before its rows are deleted; a rebuild ignores such files. */
#define MFS_RECORD_ASIDE ".removing"

/* Settles records a crash left aside: put back if the index still has the
 * artifact (the removal did not commit), deleted if not. At store open,
 * under the write lock (which a running removal holds until it commits). */
void mfs_store_records_settle(struct mfs_store *s);

/* The rebuild of mfs_store_rebuild, for the store itself (db locked). With
 * force false it does nothing if the index is already marked built. */
struct sqlite3;
int mfs_store_rebuild_locked(struct mfs_store *s, struct sqlite3 *db, bool force,
			     struct mfs_err *err);

#endif
