/*
 * statefile.h - the small files of a store that live beside the index (the
 * trust policy, the rollback state, a kept manifest): read whole with a cap,
 * written atomically, changed under a lock.
 *
 * Such files may be edited or replaced by hand, so their size is bounded
 * before a byte is allocated, and a link or a non-regular file in their
 * place is refused rather than followed (docs/security.md). A write goes to
 * a temporary file that is flushed and renamed over the old one, and the
 * directory is flushed, so a crash leaves the old file or the new one.
 */
#ifndef MFS_STATEFILE_H
#define MFS_STATEFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Reads path (opened with O_NOFOLLOW) whole into *out, NUL-terminated,
 * with its length in *len; the caller frees *out. `what` names the file in
 * messages ("trust policy"). Returns 0; -ENOENT (kind not found) when it
 * does not exist; -EFBIG (kind parse) when it is not a regular file of at
 * most cap bytes, or is a link; -ENOMEM, or -errno of open/read (kind io).
 * The out-parameters are written only on success. Thread-safe. */
int mfs_read_file_capped(const char *path, size_t cap, const char *what, char **out,
			 size_t *len, struct mfs_err *err);

/* Writes all len bytes of buf to fd, going on after short writes and
 * EINTR. 0 or -errno. */
int mfs_write_all(int fd, const void *buf, size_t len);

/* Replaces path (a file in directory dir) with text and a final newline:
 * path.tmp.<pid>, written, fsync'd, chmod'ed to mode, renamed over path,
 * then dir fsync'd. `what` names the file in messages. 0 or -errno (kind
 * io); on failure path is unchanged and the temporary file removed. */
int mfs_write_text_atomic(const char *dir, const char *path, const char *text, mode_t mode,
			  const char *what, struct mfs_err *err);

/* Opens (creating, mode 0644, never through a link) the lock file path and
 * takes an exclusive flock on it, waiting for other holders. On success
 * *fd holds the lock until it is closed. 0 or -errno (kind io). */
int mfs_lock_file(const char *path, int *fd, struct mfs_err *err);

#endif
