/*
 * readfile.h - reading a small file of the store (a policy, a state, a
 * kept manifest) whole, with a cap.
 *
 * Such files may be edited or replaced by hand, so their size is bounded
 * before a byte is allocated, and a link or a non-regular file in their
 * place is refused rather than followed (docs/security.md).
 */
#ifndef MFS_READFILE_H
#define MFS_READFILE_H

#include <stddef.h>

#include "err.h"

/* Reads path (opened with O_NOFOLLOW) whole into *out, NUL-terminated,
 * with its length in *len; the caller frees *out. `what` names the file in
 * messages ("trust policy"). Returns 0; -ENOENT (kind not found) when it
 * does not exist; -EFBIG (kind parse) when it is not a regular file of at
 * most cap bytes, or is a link; -ENOMEM, or -errno of open/read (kind io).
 * The out-parameters are written only on success. Thread-safe. */
int mfs_read_file_capped(const char *path, size_t cap, const char *what, char **out,
			 size_t *len, struct mfs_err *err);

#endif
