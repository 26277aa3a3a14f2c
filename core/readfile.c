/*
 * readfile.c - see readfile.h.
 */
#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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
