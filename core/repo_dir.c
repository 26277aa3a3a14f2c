/*
 * repo_dir.c - a local directory as a repository: file:///DIR laid out as
 * DIR/<org>/<name>/<files>.
 *
 * A directory has no commits, so the revision is derived from the bytes of
 * its signed manifest (.modelfs/manifest.json): the first 40 hex digits of
 * their SHA-256. That makes the revision immutable, like a git commit: a
 * republished directory is a new revision. "main" names the current one.
 * Without a manifest a local repository has no revision and no root of
 * trust, and resolve says how to publish one.
 */
#include "repo.h"
#include "select.h"
#include "url.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX (64u << 20)

struct repo_dir {
	struct mfs_repo base;
	char *root; /* DIR, without trailing slash */
};

static bool name_ok(const char *s)
{
	return *s && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

/* DIR/org/name for "org/name"; -EINVAL for anything else. */
static int repo_path(struct repo_dir *d, const char *repo, char *buf, size_t cap,
		     struct mfs_err *err)
{
	const char *slash = strchr(repo, '/');
	char org[256];
	if (!slash || (size_t)(slash - repo) >= sizeof(org))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "bad repository name '%s'", repo);
	memcpy(org, repo, (size_t)(slash - repo));
	org[slash - repo] = '\0';
	if (!name_ok(org) || !name_ok(slash + 1))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "bad repository name '%s'", repo);
	if (snprintf(buf, cap, "%s/%s", d->root, repo) >= (int)cap)
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long for '%s'", repo);
	return 0;
}

/* What a non-regular file is, for messages. */
static const char *kind_of(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : S_ISCHR(m) ? "a character device"
	       : S_ISBLK(m) ? "a block device" : S_ISLNK(m) ? "a symbolic link"
	       : S_ISDIR(m) ? "a directory" : "not a regular file";
}

/*
 * Opens path (relative to dfd) for reading only if it is a regular file.
 * O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever, and a
 * device could do anything; O_NOFOLLOW: a link could lead out of the tree.
 * The type is checked on the open descriptor, so a swap after a listing
 * cannot slip one in. Returns the fd, -ENOENT (err untouched, the caller
 * words it), or -errno with err set.
 */
static int open_regular(int dfd, const char *path, struct mfs_err *err)
{
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0 && errno == ELOOP)
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "refusing '%s' in a local repository: it is a symbolic link (only "
			       "regular files are served)", path);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open '%s': %s", path,
			       strerror(errno));
	struct stat st;
	if (fstat(fd, &st)) {
		int e = -errno;
		close(fd);
		return MFS_ERR(err, e, MFS_ERR_IO, "cannot stat '%s': %s", path, strerror(-e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "refusing '%s' in a local repository: it is %s (only regular files "
			       "are served)", path, kind_of(st.st_mode));
	}
	return fd;
}

static int current_commit(struct repo_dir *d, const char *repo, char commit[41],
			  struct mfs_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	int rc = repo_path(d, repo, dir, sizeof(dir), err);
	if (rc)
		return rc;
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "repository '%s' not found: no directory '%s'", repo, dir);
	snprintf(path, sizeof(path), "%s/.modelfs/manifest.json", dir);
	int fd = open_regular(AT_FDCWD, path, err);
	if (fd == -ENOENT)
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "local repository '%s' has no signed manifest: run 'modelfs publish "
			       "--key KEY --repo %s %s'", repo, repo, dir);
	if (fd < 0)
		return fd;
	struct mfs_sha256 h;
	if ((rc = mfs_sha256_init(&h))) {
		close(fd);
		return MFS_ERR(err, rc, MFS_ERR_NOMEM, "out of memory");
	}
	char buf[65536];
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && total <= MANIFEST_MAX) {
		mfs_sha256_update(&h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	uint8_t dg[MFS_SHA256_LEN];
	mfs_sha256_final(&h, dg);
	if (n < 0 || total > MANIFEST_MAX)
		return MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot read '%s'", path);
	char hex[MFS_SHA256_HEX];
	mfs_hex_encode(dg, sizeof(dg), hex);
	memcpy(commit, hex, 40);
	commit[40] = '\0';
	return 0;
}

static int dir_resolve(struct mfs_repo *r, const char *repo, const char *rev, char commit[41],
		       struct mfs_err *err)
{
	struct repo_dir *d = (struct repo_dir *)r;
	char cur[41];
	int rc = current_commit(d, repo, cur, err);
	if (rc)
		return rc;
	size_t n = rev ? strlen(rev) : 0;
	if (!rev || !strcmp(rev, "main") ||
	    (n >= 4 && n <= 40 && mfs_is_hex(rev, n) && !strncasecmp(rev, cur, n))) {
		memcpy(commit, cur, 41);
		return 0;
	}
	return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
		       "revision '%s' not found in local repository '%s' (it has 'main' = %s)", rev,
		       repo, cur);
}

struct listing {
	struct mfs_repo_listing *l;
	size_t cap;
};

static int walk(const char *base, const char *rel, struct listing *ls, unsigned depth,
		struct mfs_err *err)
{
	char path[PATH_MAX];
	if (depth > 32)
		return MFS_ERR(err, -ELOOP, MFS_ERR_IO, "directory tree too deep at '%s'", rel);
	snprintf(path, sizeof(path), "%s%s%s", base, *rel ? "/" : "", rel);
	DIR *dir = opendir(path);
	if (!dir)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
	struct dirent *de;
	int rc = 0;
	while (!rc && (de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
		    (int)sizeof(sub))
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
			if (errno == ENOENT)
				continue; /* removed since readdir */
			rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot stat '%s': %s", sub,
				     strerror(errno));
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = walk(base, sub, ls, depth + 1, err);
		} else if (!S_ISREG(st.st_mode)) {
			/* Refused, not skipped: a repository that holds a FIFO or a
			 * link is not what its publisher signed, and saying so
			 * beats a listing that silently differs. */
			rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
				     "refusing local repository: '%s' is %s (only regular files and "
				     "directories are served)", sub, kind_of(st.st_mode));
		} else {
			if (ls->l->n == ls->cap) {
				size_t cap = ls->cap ? ls->cap * 2 : 16;
				void *p = realloc(ls->l->files, cap * sizeof(*ls->l->files));
				if (!p) {
					rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
					break;
				}
				ls->l->files = p;
				ls->cap = cap;
			}
			struct mfs_repo_file *f = &ls->l->files[ls->l->n];
			memset(f, 0, sizeof(*f));
			if (!(f->path = strdup(sub))) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				break;
			}
			f->size = (uint64_t)st.st_size;
			ls->l->n++;
		}
	}
	closedir(dir);
	return rc;
}

static int dir_list(struct mfs_repo *r, const char *repo, const char *commit,
		    struct mfs_repo_listing *out, struct mfs_err *err)
{
	struct repo_dir *d = (struct repo_dir *)r;
	char cur[41], dir[PATH_MAX];
	int rc = current_commit(d, repo, cur, err);
	if (rc)
		return rc;
	if (strcmp(cur, commit))
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
			       "revision %s of '%s' is gone: the directory was published again", commit,
			       repo);
	repo_path(d, repo, dir, sizeof(dir), NULL);
	struct mfs_repo_listing l = { 0 };
	struct listing ls = { .l = &l };
	rc = walk(dir, "", &ls, 0, err);
	if (rc) {
		mfs_repo_listing_release(&l);
		return rc;
	}
	*out = l;
	return 0;
}

static int read_range(int dfd, const struct mfs_fetch_req *q, void *buf, struct mfs_err *err)
{
	if (!mfs_path_is_safe(q->path))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "unsafe path '%s'", q->path);
	int fd = open_regular(dfd, q->path, err);
	if (fd == -ENOENT)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "cannot open '%s': %s", q->path,
			       strerror(ENOENT));
	if (fd < 0)
		return fd;
	uint64_t done = 0;
	int rc = 0;
	while (done < q->len) {
		ssize_t n = pread(fd, (char *)buf + done, (size_t)(q->len - done),
				  (off_t)(q->off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? MFS_ERR(err, -errno, MFS_ERR_IO, "cannot read '%s': %s", q->path,
					     strerror(errno))
				   : MFS_ERR(err, -EIO, MFS_ERR_IO, "'%s' is shorter than expected",
					     q->path);
			break;
		}
		done += (uint64_t)n;
	}
	close(fd);
	return rc;
}

static int dir_fetch(struct mfs_repo *r, const char *repo, const char *commit,
		     const struct mfs_fetch_job *job, const struct mfs_fetch_opts *opts,
		     struct mfs_err *err)
{
	struct repo_dir *d = (struct repo_dir *)r;
	char dir[PATH_MAX];
	int rc = repo_path(d, repo, dir, sizeof(dir), err);
	if (rc)
		return rc;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_NOT_FOUND, "cannot open '%s': %s", dir,
			       strerror(errno));
	struct mfs_fetch_req q;
	void *buf = NULL;
	size_t cap = 0;
	while (!rc && job->next(job->ctx, &q)) {
		struct mfs_err e = { 0 };
		if (q.len > cap) {
			void *p = realloc(buf, q.len);
			if (!p) {
				MFS_ERR(&e, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				job->failed(job->ctx, &q, &e);
				continue;
			}
			buf = p;
			cap = q.len;
		}
		int got = -1;
		for (int attempt = 0; attempt < 2 && got; attempt++) {
			if (read_range(dfd, &q, buf, &e))
				break;
			got = mfs_fetch_req_verify(&q, buf, q.len) ? 0 : -1;
			if (got)
				MFS_ERR(&e, -EIO, MFS_ERR_HASH, "bytes %llu-%llu of '%s' do not match their "
					"SHA-256", (unsigned long long)q.off,
					(unsigned long long)(q.off + q.len - 1), q.path);
		}
		if (got)
			job->failed(job->ctx, &q, &e);
		else
			rc = job->done(job->ctx, &q, buf, q.len);
	}
	free(buf);
	close(dfd);
	(void)commit;
	(void)opts;
	return rc;
}

static void dir_close(struct mfs_repo *r)
{
	struct repo_dir *d = (struct repo_dir *)r;
	free(d->root);
	free(d->base.endpoint);
	free(d);
}

static const struct mfs_repo_ops dir_ops = {
	.kind = "dir",
	.resolve = dir_resolve,
	.list = dir_list,
	.fetch = dir_fetch,
	.close = dir_close,
};

int mfs_repo_dir_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err)
{
	const char *p = endpoint + strlen("file://");
	char shown[512];
	if (*p != '/' || strpbrk(p, "?#"))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "'%s' is not a local repository: use file:///ABSOLUTE/DIR",
			       mfs_url_redact(endpoint, shown, sizeof(shown)));
	struct repo_dir *d = calloc(1, sizeof(*d));
	if (!d || !(d->root = strdup(p)) || !(d->base.endpoint = strdup(endpoint))) {
		if (d)
			free(d->root);
		free(d);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	size_t n = strlen(d->root);
	while (n > 1 && d->root[n - 1] == '/')
		d->root[--n] = '\0';
	d->base.ops = &dir_ops;
	*out = &d->base;
	return 0;
}
