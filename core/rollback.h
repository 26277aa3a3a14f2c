/*
 * rollback.h - rollback protection state: the highest manifest sequence
 * admitted for each (repo, signing key, ref name).
 *
 * A signed manifest binds a repo ("org/name"), the key that signed it and a
 * sequence number; it does not bind a ref name (docs/manifest.md). So the
 * state is keyed by what it binds plus the ref name the user asked for,
 * normalised ("refs/heads/main" and "main" are one ref, "refs/tags/v1" and
 * "v1" one tag), and never by the endpoint the manifest came from: a second
 * mirror, or the same hub spelled another way, reaches the same state.
 * A moving ref is anything but a full 40-hex commit id; an explicit commit is
 * never checked, so a user may still ask for an older release by its commit.
 *
 * The state lives in <store dir>/rollback.json (MFS_ROLLBACK_FILE), beside
 * the records and outside the SQLite index, so neither `rm` nor the loss and
 * rebuild of the index forgets it. Changes are made under an advisory lock
 * on <store dir>/rollback.lock: the file is read, changed, written to a
 * temporary file, flushed and renamed over the old one, then the directory is
 * flushed; a reader sees the old state or the new one. docs/trust.md states
 * the rule, docs/store.md the file.
 *
 * A damaged file is refused as a whole (-EINVAL kind PARSE, naming it): a
 * half-read state could admit a rollback. A missing file is an empty state.
 *
 * Functions block on disk I/O and the lock; they keep no state in memory and
 * are safe from any thread and any number of processes.
 */
#ifndef MFS_ROLLBACK_H
#define MFS_ROLLBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MFS_ROLLBACK_FILE "rollback.json"
#define MFS_ROLLBACK_LOCK "rollback.lock"
#define MFS_ROLLBACK_MAX (16u << 20) /* cap on the file's bytes */
#define MFS_ROLLBACK_REF_MAX 256      /* longest normalised ref name, bytes */

/* True if rev names a moving ref: NULL (which means "main") or anything that
 * is not a full 40-hex commit id. */
bool mfs_rollback_is_moving(const char *rev);

/* The state's name for revision rev: NULL is "main"; a leading "refs/heads/"
 * or "refs/tags/" is dropped (once); anything else is kept as it is
 * ("refs/pr/1" stays). Writes it to out (cap bytes). 0, or -ENAMETOOLONG
 * (kind USAGE) when it does not fit or exceeds MFS_ROLLBACK_REF_MAX, or
 * -EINVAL (kind USAGE) when nothing is left ("refs/heads/"). */
int mfs_rollback_ref_name(const char *rev, char *out, size_t cap, struct mfs_err *err);

/* The highest sequence on file for (repo, key_id, rev) in *seq (0: none)
 * and, when commit is non-NULL, the commit admitted with it (41 bytes; ""
 * when none). Reads without the lock (the file is replaced by rename).
 * 0, or -EINVAL kind PARSE for a damaged file, -errno kind IO. */
int mfs_rollback_get(const char *store_dir, const char *repo, const char *key_id,
		     const char *rev, uint64_t *seq, char commit[41], struct mfs_err *err);

/*
 * Check and raise, atomically under the lock: if the state for (repo,
 * key_id, rev) is above sequence, -EPERM kind POLICY with a message naming
 * the repo, the ref, both sequences and the way out (add by commit), and
 * nothing changes; otherwise the state becomes sequence (with commit) and is
 * written durably before 0 is returned. An equal sequence is accepted and
 * leaves the file as it is. Also -EINVAL kind PARSE (damaged file) or USAGE
 * (bad argument: sequence 0, a repo or key id that is not valid), -errno kind
 * IO.
 */
int mfs_rollback_advance(const char *store_dir, const char *repo, const char *key_id,
			 const char *rev, uint64_t sequence, const char *commit,
			 struct mfs_err *err);

#endif
