/*
 * statefile.c - see statefile.h.
 */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/file.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mfs_read_file_capped(const char *path, size_t cap, const char *what, char **out,
			 size_t *len, struct mfs_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "%s '%s' does not exist",
				       what, path);
		if (e == ELOOP)
			return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
				       "%s '%s' is a symbolic link; replace it with the file", what,
				       path);
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot open %s '%s': %s", what, path,
			       strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > cap) {
		close(fd);
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "%s '%s' is not a regular file of at most %zu bytes; fix or remove it",
			       what, path, cap);
	}
	size_t size = (size_t)st.st_size, n = 0;
	char *buf = malloc(size + 1);
	if (!buf) {
		close(fd);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory reading %s '%s'", what,
			       path);
	}
	while (n < size) { /* a file that shrank meanwhile ends early: fine */
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return MFS_ERR(err, -e, MFS_ERR_IO, "cannot read %s '%s': %s", what, path,
				       strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int mfs_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mfs_write_text_atomic(const char *dir, const char *path, const char *text, mode_t mode,
			  const char *what, struct mfs_err *err)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path '%s' is too long", path);
	unlink(tmp); /* a leftover of a crashed writer with our pid */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	int rc = fd < 0 ? -errno : 0;
	if (!rc && fchmod(fd, mode))
		rc = -errno;
	if (!rc)
		rc = mfs_write_all(fd, text, strlen(text));
	if (!rc)
		rc = mfs_write_all(fd, "\n", 1);
	if (!rc && fsync(fd))
		rc = -errno;
	if (fd >= 0 && close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot write %s '%s': %s", what, path,
			       strerror(-rc));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* the rename, durable */
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int mfs_lock_file(const char *path, int *fd, struct mfs_err *err)
{
	int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lfd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open '%s': %s", path,
			       strerror(errno));
	while (flock(lfd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			int rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot lock '%s': %s", path,
					 strerror(errno));
			close(lfd);
			return rc;
		}
	}
	*fd = lfd;
	return 0;
}
