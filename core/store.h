/*
 * store.h - the store: a directory with a SQLite index (WAL) and the cached
 * bytes, shared safely by the FUSE daemon and any number of commands.
 *
 * Layout of a store directory:
 *   index.db            SQLite database (WAL mode); an index, rebuildable
 *   policy.json         the trust policy (see trust.h); survives index loss
 *   rollback.json       highest manifest sequence per repo, key and ref
 *                       (rollback.h); survives index loss and `rm`
 *   chunks/ab/<hex>     verified chunk bytes, named by their SHA-256
 *   records/<hex>.json  one admission record per artifact, immutable,
 *                       named by the SHA-256 of its canonical_ref
 *   manifests/<hex>.json and .sig  signed manifests as admitted, immutable
 *   tmp/                files being written; removed on open when stale
 *   quarantine/         chunk files whose bytes no longer matched
 *
 * Invariants: a file under chunks/ was verified against its name before it
 * was renamed there; a row in `resident` points only at such a file; an
 * artifact row exists only after its admission committed (one transaction);
 * records/ and manifests/ are written before the transaction and never
 * change, so the index can be rebuilt from them and chunks/.
 *
 * Thread-safety: a struct mfs_store may be used from many threads; calls are
 * serialised on one SQLite connection by an internal mutex and never hold it
 * across network I/O. Several processes may open the same store: SQLite's
 * locking (busy timeout 10 s) orders their transactions.
 *
 * The schema is documented in docs/store.md.
 */
#ifndef MFS_STORE_H
#define MFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "err.h"

struct mfs_store;

/* Opens (creating if needed) the store at dir; rebuilds the index from
 * records/ and chunks/ if index.db is missing or corrupt. 0 or -errno. */
int mfs_store_open(const char *dir, struct mfs_store **out, struct mfs_err *err);

/* How a store is opened (docs/store.md, "Permissions"). */
struct mfs_store_opts {
	bool share;       /* make the store readable by group (dirs 2750, files 0440) */
	gid_t group;      /* with share */
	bool any_owner;   /* accept directories owned by another non-root user */
};
/* mfs_store_open with opts (NULL: private, owner or root only). The store
 * directory and its subdirectories must be real directories (not links)
 * owned by the caller or root: -ENOTDIR or -EPERM (with the path) if not.
 * A new store is private (0700, files 0400); an existing one is never made
 * more open than it is, except by share. */
int mfs_store_open_opts(const char *dir, const struct mfs_store_opts *opts,
			struct mfs_store **out, struct mfs_err *err);
/* The mode of the store's files and directories (private or shared). */
mode_t mfs_store_file_mode(const struct mfs_store *s);
mode_t mfs_store_dir_mode(const struct mfs_store *s);
void mfs_store_close(struct mfs_store *s);
const char *mfs_store_dir(const struct mfs_store *s);
/* The default store: $MODELFS_STORE, else /var/cache/modelfs for root, else
 * $XDG_CACHE_HOME/modelfs or ~/.cache/modelfs. Returns a malloc'd string. */
char *mfs_store_default_dir(void);

/* Rebuilds the index from records/, manifests/ and chunks/ (what open does
 * when index.db is lost). */
int mfs_store_rebuild(struct mfs_store *s, struct mfs_err *err);

/* For a long-lived process (the mount): if index.db is no longer the file
 * this handle has open (deleted, or replaced by another process that found
 * it lost), opens the one now there, building it from the records when it
 * is new. Row ids are derived from names, so ids held before stay valid;
 * rows that live only in the index (this process's pins, the mount
 * registration) must be written again by the caller: *reopened says so.
 * 0, or an error with the old connection kept (try again later). */
int mfs_store_recheck(struct mfs_store *s, bool *reopened, struct mfs_err *err);

/* --- files and artifacts ------------------------------------------------ */

/* A file of an installed artifact, as the read path needs it. */
struct mfs_file {
	int64_t id;
	char *endpoint;       /* where its bytes come from */
	char *org, *name;     /* repo "org/name" */
	char *commit;         /* 40 hex */
	char *path;           /* path inside the repo */
	uint64_t size;
	char sha256[MFS_SHA256_HEX];  /* whole-file digest */
	uint32_t chunk_size;  /* power of two */
	uint32_t n_chunks;    /* ceil(size / chunk_size); 0 for an empty file */
	uint8_t (*chunks)[MFS_SHA256_LEN]; /* n_chunks digests */
	char *trust;          /* key id or "hub" */
};

/* Loads file id with its chunk digests. Caller releases. -ENOENT if absent. */
int mfs_store_file_load(struct mfs_store *s, int64_t id, struct mfs_file *out,
			struct mfs_err *err);
void mfs_file_release(struct mfs_file *f);
static inline uint64_t mfs_file_chunk_len(const struct mfs_file *f, uint32_t idx)
{
	uint64_t off = (uint64_t)idx * f->chunk_size;
	return f->size - off < f->chunk_size ? f->size - off : f->chunk_size;
}

/* The id of file path of org/name at commit; 0 if not installed. */
int64_t mfs_store_file_id(struct mfs_store *s, const char *org, const char *name,
			  const char *commit, const char *path);

/* One installed file for the mount's tree. */
struct mfs_store_entry {
	int64_t file_id;
	int64_t artifact_id;  /* one artifact that holds it (the first) */
	const char *org, *name, *commit, *path;
	uint64_t size;
};
/* One alias: <org>/<name>@<ref> -> commit. */
struct mfs_store_alias {
	const char *org, *name, *ref, *commit;
};
/* Calls file_cb for every installed file and alias_cb for every alias.
 * Strings are valid only during the callback. A non-zero return stops. */
int mfs_store_walk(struct mfs_store *s,
		   int (*file_cb)(void *ctx, const struct mfs_store_entry *e),
		   int (*alias_cb)(void *ctx, const struct mfs_store_alias *a),
		   void *ctx, struct mfs_err *err);
/* A counter bumped by every admission and removal (any process); the mount
 * re-reads its tree when it changes. */
int64_t mfs_store_generation(struct mfs_store *s);

/* --- resident chunks ---------------------------------------------------- */

/* Path of the chunk file for digest (buf of at least PATH_MAX). */
void mfs_store_chunk_path(const struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  char *buf, size_t cap);

/* Commits verified bytes of a chunk: writes them under tmp/, renames into
 * chunks/, records the stamp (inode, size, ctime) and marks it resident.
 * The caller must already have verified data against digest. Idempotent.
 * -ENOSPC when the disk or the quota has no room (nothing changed). */
int mfs_store_chunk_put(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			const void *data, size_t len, struct mfs_err *err);

/* mfs_store_chunk_put for bytes already in a file of the store's
 * filesystem (path, len bytes, verified against digest by the caller): the
 * file is renamed into chunks/, not copied. On failure it stays where it
 * was. */
int mfs_store_chunk_adopt(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  const char *path, uint64_t len, const char *stage_key, uint32_t stage_idx,
			  struct mfs_err *err);

/* Staging (hub-checksum downloads under partial/<key>/, core/hub_stage.h)
 * counts against the quota: a range is reserved before it is written, and
 * its reservation ends when mfs_store_chunk_adopt (given key and idx)
 * commits it or mfs_store_stage_release drops the download. A reservation
 * outlives its process (the bytes stay on disk for a resume), but one whose
 * process died is dropped, with its file, when room is needed. 0, or
 * -ENOSPC (kind QUOTA) when resident + staged + len would pass the quota
 * after eviction. Thread-safe. */
int mfs_store_stage_reserve(struct mfs_store *s, const char *key, uint32_t idx, uint64_t len,
			    struct mfs_err *err);
void mfs_store_stage_release(struct mfs_store *s, const char *key);
/* Drops the staged ranges of downloads whose process died (other than
 * key's, if not NULL): their files are unlinked and their reservations
 * deleted; they are unverified bytes a later run fetches again. Called
 * before eviction when room is needed. Returns the bytes freed. */
uint64_t mfs_store_stage_drop_orphans(struct mfs_store *s, const char *key);

/* The identity of a chunk file as it was when it was vouched for. */
struct mfs_chunk_stamp {
	uint64_t ino;
	uint64_t size;
	int64_t ctime_ns;
	bool leased;  /* fd holds a read lease (F_SETLEASE): an open for
		       * writing anywhere breaks it (docs/store.md) */
};

/* Opens the resident chunk for reading, verified: if its file's stamp differs
 * from the one recorded at commit (written since, replaced, truncated), the
 * bytes are hashed again; a mismatch quarantines the file, records an
 * eviction with reason "corrupt" and returns -EBADMSG (caller fetches again).
 * -ENOENT when not resident. On success *fd is the caller's to close and
 * *stamp (if not NULL) the file's stamp at the moment it was vouched for:
 * bytes read from fd may be used only if mfs_store_chunk_unchanged says so
 * after they were read (a writer may have changed the file meanwhile).
 * A chunk file that some process holds open for writing (the store never
 * does) is treated as corrupt: its bytes can change under any check. */
int mfs_store_chunk_open(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			 uint64_t len, int *fd, struct mfs_chunk_stamp *stamp,
			 struct mfs_err *err);

/* After bytes were read from fd (of mfs_store_chunk_open): true if the file
 * still carries stamp, so the bytes read are the ones vouched for. False if
 * it was written or truncated in between, or opened for writing (its read
 * lease broken), or cannot be checked: the bytes must not be used; open the
 * chunk again, which hashes it again. One fstat and one fcntl, no lock. docs/store.md says why the ctime changes with every write. */
bool mfs_store_chunk_unchanged(int fd, const struct mfs_chunk_stamp *stamp);

/* Hashes the resident chunk again whatever its stamp says (`verify`): 0 if
 * it matches, -EBADMSG if it did not (quarantined, as above), -ENOENT if it
 * is not resident. */
int mfs_store_chunk_check(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  uint64_t len, struct mfs_err *err);

/* True if the chunk is recorded resident (no disk check). */
bool mfs_store_chunk_resident(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN]);

/* Resident bytes and chunks of a file. */
int mfs_store_file_resident(struct mfs_store *s, int64_t file_id, uint64_t *bytes,
			    uint32_t *chunks);

/* Records reads of chunks for LRU (cheap; may be batched internally). */
void mfs_store_chunk_touch(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN]);

/* Marks a file whose whole-file SHA-256 was checked over resident chunks. */
int mfs_store_file_set_verified(struct mfs_store *s, int64_t file_id, struct mfs_err *err);

/* --- counters ----------------------------------------------------------- */

/* Adds delta to a named counter ("fetched_bytes", "verified_chunks",
 * "evicted_bytes", "hash_failures", "corrupt_chunks", ...). */
void mfs_store_count(struct mfs_store *s, const char *name, int64_t delta);

/* --- raw access for modules of the core --------------------------------- */

/* The SQLite connection, locked for the caller until mfs_store_unlock.
 * For core modules only (admit, evict, pins); never hold across I/O. */
struct sqlite3 *mfs_store_lock(struct mfs_store *s);
void mfs_store_unlock(struct mfs_store *s);
/* Leaves the evidence of an evicted chunk (reason "quota", "manual",
 * "corrupt", ...): one row per installed file that uses it, named by its
 * first-added artifact, or one row without artifact and path for a chunk
 * nothing uses. Locked, in the caller's transaction. 0 or -1. */
int mfs_store_record_eviction_locked(struct sqlite3 *db, const uint8_t digest[MFS_SHA256_LEN],
				     uint64_t bytes, int64_t at, const char *reason);
/* Fills err from the connection's last error: -ENOSPC for a full disk
 * (SQLITE_FULL), -EBUSY for a lock held too long, -EIO otherwise; kind
 * SQLITE; "what: sqlite's message". Returns the code. */
int mfs_store_sql_err(struct mfs_err *err, struct sqlite3 *db, const char *what);
/* mfs_store_count for a caller that already holds the lock (db from
 * mfs_store_lock), e.g. inside its own transaction. */
void mfs_store_count_locked(struct sqlite3 *db, const char *name, int64_t delta);

#endif
