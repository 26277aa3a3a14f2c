/*
 * hub_stage.c - a hub-checksum file downloaded whole, verified, then kept
 * (hub_stage.h).
 *
 * Three parties share struct stage: the fetch job's callbacks (next, done,
 * failed: the engine's threads) stage ranges and mark them in `have`; the
 * hasher thread waits for range i to be staged, hashes it and moves on; the
 * caller waits for both, compares, then adopts the staged ranges as chunks.
 */
#include "hub_stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "digest.h"
#include "evict.h"
#include "log.h"

#define READ_BUF (1u << 20)

struct stage {
	struct mfs_store *s;
	const struct mfs_file *f;
	const char *git_oid;
	const char *key;             /* the expected digest: names the staging */
	char dir[PATH_MAX];          /* partial/<key> */
	int done_fd;                 /* the staged indexes, appended */
	mfs_progress_fn progress;
	void *pctx;

	pthread_mutex_t lock;
	pthread_cond_t cond;         /* broadcast when a range is staged or the fetch ends */
	uint8_t *have;               /* lock: per range, staged */
	uint8_t *old;                /* per range, staged by an earlier run (set before
				      * the fetch starts, then read only) */
	uint32_t next;               /* lock: the job's cursor */
	uint64_t got, resumed;       /* lock: bytes staged; of which before this run */
	bool fetch_over;             /* lock */
	int rc;                      /* lock: first failure of the job's callbacks */
	struct mfs_err err;          /* lock */

	/* The hasher's results, read after it is joined. */
	int hrc;
	struct mfs_err herr;
	uint8_t (*chunks)[MFS_SHA256_LEN];
	uint8_t sha256[MFS_SHA256_LEN];
	char sha1_hex[41];
};

static void staged_path(const struct stage *st, uint32_t idx, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%08u", st->dir, idx);
}

static bool stage_next(void *ctx, struct mfs_fetch_req *req)
{
	struct stage *st = ctx;
	pthread_mutex_lock(&st->lock);
	while (st->next < st->f->n_chunks && st->have[st->next])
		st->next++;
	bool more = st->next < st->f->n_chunks && !st->rc;
	if (more) {
		uint32_t i = st->next++;
		*req = (struct mfs_fetch_req){ .path = st->f->path,
					       .off = (uint64_t)i * st->f->chunk_size,
					       .len = mfs_file_chunk_len(st->f, i), .tag = i };
	}
	pthread_mutex_unlock(&st->lock);
	return more;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0)
		return -errno;
	const char *p = data;
	int rc = 0;
	while (len && !rc) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			p += n, len -= (size_t)n;
	}
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

/* Stages one range: written under a temporary name, renamed to its index,
 * then listed in done (so a listed index always has its whole file). */
static int stage_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	struct stage *st = ctx;
	uint32_t idx = (uint32_t)req->tag;
	char tmp[PATH_MAX], final[PATH_MAX];
	staged_path(st, idx, final, sizeof(final));
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	/* The chunk digest, here on the engine's worker threads in parallel;
	 * the whole-file hash over the same bytes decides whether it is kept. */
	mfs_sha256(buf, len, st->chunks[idx]);
	/* Counted against the quota before a byte of it is written. */
	struct mfs_err e = { 0 };
	int rc = mfs_store_stage_reserve(st->s, st->key, idx, len, &e);
	if (rc) {
		pthread_mutex_lock(&st->lock);
		if (!st->rc) {
			st->rc = rc;
			st->err = e;
		}
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	rc = write_file(tmp, buf, len);
	if (!rc && rename(tmp, final))
		rc = -errno;
	if (!rc && write(st->done_fd, &idx, sizeof(idx)) != sizeof(idx))
		rc = -EIO;
	if (rc)
		unlink(tmp);
	pthread_mutex_lock(&st->lock);
	if (rc && !st->rc) {
		st->rc = MFS_ERR(&st->err, rc == -EDQUOT ? -ENOSPC : rc, MFS_ERR_IO,
				 "cannot stage the download of '%s' in '%s': %s", st->f->path,
				 st->dir, strerror(-rc));
	} else if (!rc) {
		st->have[idx] = 1;
		st->got += len;
		if (st->progress)
			st->progress(st->pctx, st->got, st->f->size);
		pthread_cond_broadcast(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
	return rc ? st->rc : 0;
}

static void stage_failed(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *e)
{
	struct stage *st = ctx;
	pthread_mutex_lock(&st->lock);
	if (!st->rc) {
		st->rc = e && e->code ? e->code : -EIO;
		if (e)
			st->err = *e;
	}
	pthread_mutex_unlock(&st->lock);
	(void)req;
}

/* Hashes the staged ranges in order as they arrive: the whole file's
 * SHA-256, each range's SHA-256 (its chunk digest) and, for a git blob id,
 * SHA-1 over "blob <size>\0" and the bytes. */
static void *stage_hasher(void *arg)
{
	struct stage *st = arg;
	const struct mfs_file *f = st->f;
	struct mfs_sha256 whole;
	EVP_MD_CTX *sha1 = NULL;
	uint8_t *buf = malloc(READ_BUF);
	if (!buf || mfs_sha256_init(&whole)) {
		free(buf);
		st->hrc = MFS_ERR(&st->herr, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (st->git_oid) {
		char head[64];
		int hn = snprintf(head, sizeof(head), "blob %llu", (unsigned long long)f->size);
		sha1 = EVP_MD_CTX_new();
		if (!sha1 || !EVP_DigestInit_ex(sha1, EVP_sha1(), NULL) ||
		    !EVP_DigestUpdate(sha1, head, (size_t)hn + 1))
			st->hrc = MFS_ERR(&st->herr, -ENOMEM, MFS_ERR_NOMEM, "cannot start SHA-1");
	}
	for (uint32_t i = 0; i < f->n_chunks && !st->hrc; i++) {
		pthread_mutex_lock(&st->lock);
		while (!st->have[i] && !st->fetch_over)
			pthread_cond_wait(&st->cond, &st->lock);
		bool staged = st->have[i];
		pthread_mutex_unlock(&st->lock);
		if (!staged) {
			st->hrc = -ECANCELED; /* the fetch failed: its error is reported */
			break;
		}
		char path[PATH_MAX];
		staged_path(st, i, path, sizeof(path));
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		/* A range staged by an earlier run has no digest yet. */
		bool resumed = st->old[i];
		struct mfs_sha256 part;
		if (fd < 0 || (resumed && mfs_sha256_init(&part))) {
			st->hrc = MFS_ERR(&st->herr, -EIO, MFS_ERR_IO, "cannot read back '%s': %s",
					  path, strerror(errno));
			if (fd >= 0)
				close(fd);
			break;
		}
		uint64_t len = mfs_file_chunk_len(f, i), off = 0;
		while (off < len) {
			size_t want = len - off < READ_BUF ? (size_t)(len - off) : READ_BUF;
			ssize_t n = pread(fd, buf, want, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			mfs_sha256_update(&whole, buf, (size_t)n);
			if (resumed)
				mfs_sha256_update(&part, buf, (size_t)n);
			if (sha1)
				EVP_DigestUpdate(sha1, buf, (size_t)n);
			off += (uint64_t)n;
		}
		close(fd);
		if (resumed)
			mfs_sha256_final(&part, st->chunks[i]);
		if (off != len)
			st->hrc = MFS_ERR(&st->herr, -EIO, MFS_ERR_IO,
					  "the staged range '%s' is short", path);
	}
	if (st->hrc) {
		mfs_sha256_release(&whole);
	} else {
		mfs_sha256_final(&whole, st->sha256);
		if (sha1) {
			uint8_t d[20];
			unsigned dn = 0;
			EVP_DigestFinal_ex(sha1, d, &dn);
			mfs_hex_encode(d, sizeof(d), st->sha1_hex);
		}
	}
	EVP_MD_CTX_free(sha1);
	free(buf);
	return NULL;
}

/* Removes a staging directory and what is in it. */
static void remove_staging(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

/* Opens (or creates) the staging of st->dir and marks what a previous run
 * staged completely. */
static int open_staging(struct stage *st, struct mfs_err *err)
{
	char done[PATH_MAX];
	if (mkdir(st->dir, 0700) && errno != EEXIST)
		return MFS_ERR(err, errno == EDQUOT ? -ENOSPC : -errno, MFS_ERR_IO,
			       "cannot create '%s': %s", st->dir, strerror(errno));
	snprintf(done, sizeof(done), "%s/done", st->dir);
	st->done_fd = open(done, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (st->done_fd < 0)
		return MFS_ERR(err, errno == EDQUOT ? -ENOSPC : -errno, MFS_ERR_IO,
			       "cannot create '%s': %s", done, strerror(errno));
	uint32_t idx;
	unsigned resumed = 0;
	while (read(st->done_fd, &idx, sizeof(idx)) == sizeof(idx)) {
		char path[PATH_MAX];
		struct stat sb;
		if (idx >= st->f->n_chunks || st->have[idx])
			continue;
		staged_path(st, idx, path, sizeof(path));
		if (lstat(path, &sb) || !S_ISREG(sb.st_mode) ||
		    (uint64_t)sb.st_size != mfs_file_chunk_len(st->f, idx))
			continue;
		/* Counted again (its reservation may have been dropped); if
		 * there is no room for it, it goes and is fetched again. */
		if (mfs_store_stage_reserve(st->s, st->key, idx, (uint64_t)sb.st_size, NULL)) {
			unlink(path);
			continue;
		}
		st->have[idx] = st->old[idx] = 1;
		st->got += (uint64_t)sb.st_size;
		resumed++;
	}
	st->resumed = st->got;
	if (resumed)
		mfs_log_info("resuming '%s': %u of %u ranges already downloaded", st->f->path,
			     resumed, st->f->n_chunks);
	return 0;
}

static const char *mib(uint64_t b, char *buf, size_t cap)
{
	snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
	return buf;
}

int mfs_hub_stage_file(struct mfs_store *s, struct mfs_repo *repo, const char *repo_name,
		       const char *commit, struct mfs_file *f, const char *git_oid,
		       mfs_progress_fn progress, void *pctx, struct mfs_err *err)
{
	struct stage st = { .s = s, .f = f, .git_oid = git_oid, .done_fd = -1,
			    .progress = progress, .pctx = pctx };
	st.key = git_oid ? git_oid : f->sha256;
	snprintf(st.dir, sizeof(st.dir), "%s/partial/%s", mfs_store_dir(s), st.key);
	/* Kept only whole, so a file larger than the quota can never be. */
	struct mfs_quota q;
	if (!mfs_evict_get_quota(s, &q) && q.bytes && f->size > q.bytes) {
		char h1[32], h2[32];
		return MFS_ERR(err, -ENOSPC, MFS_ERR_QUOTA,
			       "'%s' (%s) is larger than the cache quota (%s): a file checked by the"
			       " hub's checksum is downloaded whole before any of it is kept; raise"
			       " the quota ('modelfs gc --quota SIZE')",
			       f->path, mib(f->size, h1, sizeof(h1)), mib(q.bytes, h2, sizeof(h2)));
	}
	st.have = calloc(f->n_chunks ? f->n_chunks : 1, 1);
	st.old = calloc(f->n_chunks ? f->n_chunks : 1, 1);
	st.chunks = calloc(f->n_chunks ? f->n_chunks : 1, MFS_SHA256_LEN);
	if (!st.have || !st.old || !st.chunks) {
		free(st.have);
		free(st.old);
		free(st.chunks);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&st.lock, NULL);
	pthread_cond_init(&st.cond, NULL);
	int rc = open_staging(&st, err);
	if (rc)
		goto out;
	if (progress)
		progress(pctx, st.got, f->size);

	pthread_t hasher;
	bool threaded = pthread_create(&hasher, NULL, stage_hasher, &st) == 0;
	struct mfs_fetch_job job = { .next = stage_next, .done = stage_done,
				     .failed = stage_failed, .ctx = &st };
	rc = mfs_repo_fetch(repo, repo_name, commit, &job, NULL, err);
	pthread_mutex_lock(&st.lock);
	if (!rc && st.rc) {
		rc = st.rc;
		if (err)
			*err = st.err;
	}
	st.fetch_over = true;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
	if (threaded)
		pthread_join(hasher, NULL);
	else if (!rc)
		stage_hasher(&st);
	if (rc)
		goto out; /* what was staged stays for the next run */
	if (st.hrc) {
		rc = st.hrc;
		if (err)
			*err = st.herr;
		goto out;
	}

	/* The whole-file check; only then is anything kept. */
	char hex[MFS_SHA256_HEX];
	mfs_hex_encode(st.sha256, sizeof(st.sha256), hex);
	if (git_oid && strcasecmp(st.sha1_hex, git_oid))
		rc = MFS_ERR(err, -EIO, MFS_ERR_HASH, "git blob id %s does not match the hub's %s",
			     st.sha1_hex, git_oid);
	else if (!git_oid && strcmp(hex, f->sha256))
		rc = MFS_ERR(err, -EIO, MFS_ERR_HASH,
			     "'%s' hashes to %s but the hub says %s: refused, nothing admitted",
			     f->path, hex, f->sha256);
	if (rc) {
		remove_staging(st.dir); /* bad bytes are not worth resuming from */
		mfs_store_stage_release(s, st.key);
		goto out;
	}
	memcpy(f->sha256, hex, sizeof(hex));
	for (uint32_t i = 0; i < f->n_chunks && !rc; i++) {
		char path[PATH_MAX];
		staged_path(&st, i, path, sizeof(path));
		rc = mfs_store_chunk_adopt(s, st.chunks[i], path, mfs_file_chunk_len(f, i), st.key, i,
					   err);
	}
	if (!rc) {
		remove_staging(st.dir);
		mfs_store_stage_release(s, st.key);
		mfs_store_count(s, "fetched_bytes", (int64_t)(st.got - st.resumed));
		f->chunks = st.chunks;
		st.chunks = NULL;
	}
out:
	if (st.done_fd >= 0)
		close(st.done_fd);
	pthread_mutex_destroy(&st.lock);
	pthread_cond_destroy(&st.cond);
	free(st.have);
	free(st.old);
	free(st.chunks);
	return rc;
}
