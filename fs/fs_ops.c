/*
 * fs_ops.c - the low-level FUSE handlers: kernel requests in, core calls,
 * exactly one reply out.
 *
 * Everything is read-only: every operation that would change the tree or a
 * file answers EROFS (the mount is also "ro", so the kernel refuses most of
 * them before they reach us). Files are immutable, so the kernel may keep
 * their pages across opens (keep_cache) and cache entries and attributes for
 * long; only the two top levels, where artifacts come and go, and st_blocks
 * (resident bytes change as chunks arrive) use short timeouts.
 *
 * The read path: a read serves [off, off+size) through mfs_cache_read,
 * which fetches, verifies and commits any missing chunk before a byte of it
 * is copied out; a failure answers EIO (or ENOSPC) with a log line that
 * says why. A failed read is remembered for a while per caller (the
 * failure memory, fs.h): the same thread asking again for the same chunks
 * gets the same errno at once, with no new fetch and no new log line. The
 * kernel is that caller twice over: it reads a page again after a failed
 * read-ahead, and from inside mmap(MAP_POPULATE) it asks forever; a caller
 * found in that loop is ended with a signal (fs_populate.h), the only thing
 * the kernel's loop obeys. Before that, the handle's read pattern feeds prefetch: a
 * sequential reader gets a window ahead of it that doubles up to
 * MFS_FS_WINDOW_MAX; a reader that jumps around gets the whole file queued
 * in the background (mmap loaders touch tensors out of file order).
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "evict.h"
#include "fs.h"
#include "fs_ops.h"
#include "fs_populate.h"
#include "fs_prefetch.h"
#include "log.h"

#define MFS_FS_TTL_LONG 3600.0     /* immutable entries, seconds */
#define MFS_FS_TTL_SHORT 1.0       /* root and org levels; file attributes */
#define MFS_FS_REFRESH_MS 1000     /* tree check interval off the root */
#define MFS_FS_RESIDENT_MS 500     /* max age of st_blocks */
#define MFS_FS_WINDOW_MAX (64u << 20)  /* sequential prefetch window cap, bytes */
#define MFS_FS_BLKSIZE (1u << 20)  /* st_blksize: the read size we like */

/* One open file handle. */
struct mfs_fs_handle {
	struct mfs_fs_file *ff;
	pthread_mutex_t lock;     /* guards the read pattern below */
	uint64_t next_off;        /* where a sequential reader reads next */
	uint32_t window;          /* prefetch window, chunks */
	uint32_t ahead;           /* chunks below this were queued or read */
	unsigned jumps;           /* out-of-order reads seen */
};

static struct mfs_fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The errno a read or open failure is reported with: no cache space and no
 * memory say so; every fetch or verification failure is EIO. */
static int honest(int rc)
{
	switch (rc) {
	case -ENOSPC: case -ENOMEM: case -ENOENT: case -EROFS: case -EACCES: case -EFBIG:
		return -rc;
	default:
		return EIO;
	}
}

/* Re-reads the inventory when it changed: always for the top levels, at
 * most every MFS_FS_REFRESH_MS otherwise. */
static void maybe_refresh(struct mfs_fs *fs, fuse_ino_t dir)
{
	uint64_t now = mfs_fs_now_ms();
	uint64_t last = atomic_load_explicit(&fs->last_refresh_ms, memory_order_relaxed);
	if (dir != MFS_TREE_ROOT && now - last < MFS_FS_REFRESH_MS)
		return;
	atomic_store_explicit(&fs->last_refresh_ms, now, memory_order_relaxed);
	struct mfs_err err = { 0 };
	bool changed = false;
	if (mfs_tree_refresh(fs->tree, fs->store, false, &changed, &err))
		mfs_log_warning("mount: cannot re-read the inventory: %s", err.msg);
	else if (changed)
		mfs_log_info("mount: inventory changed; tree rebuilt");
}

static void fill_stat(struct mfs_fs *fs, const struct mfs_tree_stat *t, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = t->ino;
	st->st_nlink = t->nlink;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = MFS_FS_BLKSIZE;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = fs->mount_time;
	switch (t->type) {
	case MFS_NODE_DIR:
		st->st_mode = S_IFDIR | 0555;
		break;
	case MFS_NODE_LINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)t->size;
		break;
	case MFS_NODE_FILE: {
		st->st_mode = S_IFREG | 0444;
		st->st_size = (off_t)t->size;
		struct mfs_fs_file *ff = mfs_fs_file_get(fs, t->file_id, t->artifact_id);
		uint64_t bytes = 0;
		uint32_t chunks;
		if (ff)
			mfs_fs_file_resident(fs, ff, MFS_FS_RESIDENT_MS, &bytes, &chunks);
		st->st_blocks = (blkcnt_t)((bytes + 511) / 512);
		break;
	}
	}
}

/* Timeouts: entries and attributes that can change are short. */
static double entry_ttl(const struct mfs_tree_stat *t)
{
	return t->level <= MFS_LEVEL_REPO ? MFS_FS_TTL_SHORT : MFS_FS_TTL_LONG;
}

static double attr_ttl(const struct mfs_tree_stat *t)
{
	if (t->type == MFS_NODE_FILE || t->level <= MFS_LEVEL_ORG)
		return MFS_FS_TTL_SHORT;
	return MFS_FS_TTL_LONG;
}

/* --- lifecycle ---------------------------------------------------------- */

static void mfs_fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mfs_fs *fs = userdata;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->max_readahead = 1u << 20;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA; /* immutable: keep the pages */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	mfs_log_notice("mount: ready (max_read %u, max_write %u, max_background %u)",
		       conn->max_read, conn->max_write, conn->max_background);
	if (fs->ready_fd >= 0) {
		if (write(fs->ready_fd, "OK\n", 3) != 3)
			mfs_log_warning("mount: cannot signal readiness: %s", strerror(errno));
		close(fs->ready_fd);
		fs->ready_fd = -1;
	}
	if (fs->on_ready)
		fs->on_ready();
}

/* --- names -------------------------------------------------------------- */

static void mfs_fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mfs_fs *fs = fs_of(req);
	maybe_refresh(fs, parent);
	struct mfs_tree_stat t;
	int rc = mfs_tree_lookup(fs->tree, parent, name, &t);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e = {
		.ino = t.ino,
		.generation = 1,
		.attr_timeout = attr_ttl(&t),
		.entry_timeout = entry_ttl(&t),
	};
	fill_stat(fs, &t, &e.attr);
	if (fuse_reply_entry(req, &e) == -ENOENT) /* interrupted: undo */
		mfs_tree_forget(fs->tree, t.ino, 1);
}

static void mfs_fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	mfs_tree_forget(fs_of(req)->tree, ino, nlookup);
	fuse_reply_none(req);
}

static void mfs_fs_op_forget_multi(fuse_req_t req, size_t count,
				   struct fuse_forget_data *forgets)
{
	struct mfs_fs *fs = fs_of(req);
	for (size_t i = 0; i < count; i++)
		mfs_tree_forget(fs->tree, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void mfs_fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_tree_stat t;
	if (ino == MFS_TREE_ROOT)
		maybe_refresh(fs, ino);
	int rc = mfs_tree_stat(fs->tree, ino, &t);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct stat st;
	fill_stat(fs, &t, &st);
	fuse_reply_attr(req, &st, attr_ttl(&t));
}

static void mfs_fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[1024];
	int rc = mfs_tree_readlink(fs_of(req)->tree, ino, buf, sizeof(buf));
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int dir_add(void *ctx, const char *name, const struct mfs_tree_stat *t, off_t next)
{
	struct dirbuf *d = ctx;
	struct stat st = { .st_ino = t->ino,
			   .st_mode = t->type == MFS_NODE_DIR ? S_IFDIR
				    : t->type == MFS_NODE_LINK ? S_IFLNK : S_IFREG };
	size_t need = fuse_add_direntry(d->req, NULL, 0, name, NULL, 0);
	if (d->used + need > d->size)
		return 1;
	fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, name, &st, next);
	d->used += need;
	return 0;
}

static void mfs_fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	maybe_refresh(fs, ino);
	struct mfs_tree_stat t;
	int rc = mfs_tree_stat(fs->tree, ino, &t);
	if (!rc && t.type != MFS_NODE_DIR)
		rc = -ENOTDIR;
	if (!rc && (fi->flags & O_ACCMODE) != O_RDONLY)
		rc = -EISDIR;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_open(req, fi);
}

static void mfs_fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	struct dirbuf d = { .req = req, .size = size < (1u << 20) ? size : (1u << 20) };
	d.buf = malloc(d.size ? d.size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = mfs_tree_readdir(fs->tree, ino, off, dir_add, &d);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void mfs_fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mfs_fs *fs = fs_of(req);
	uint64_t files, dirs;
	mfs_tree_counts(fs->tree, &files, &dirs);
	struct statvfs sv = {
		.f_bsize = MFS_FS_BLKSIZE,
		.f_frsize = 4096,
		.f_files = files + dirs,
		.f_namemax = 255,
		.f_flag = ST_RDONLY,
	};
	fuse_reply_statfs(req, &sv);
}

/* --- files -------------------------------------------------------------- */

/*
 * A file larger than the cache quota can never be read through while it is
 * open: an open file's chunks are never evicted, so its own chunks fill the
 * quota and every later read fails with ENOSPC; under mmap(MAP_POPULATE)
 * the kernel would ask for those bytes forever. Such an open is refused
 * with EFBIG, before a loader maps anything, unless the file is wholly
 * resident already (then nothing needs fetching). 0 or -EFBIG.
 */
static int fits_quota(struct mfs_fs *fs, struct mfs_fs_file *ff, struct mfs_err *err)
{
	uint64_t quota = mfs_evict_quota_bytes(fs->store);
	if (!quota || ff->f.size <= quota)
		return 0;
	uint64_t resident;
	uint32_t chunks;
	mfs_fs_file_resident(fs, ff, MFS_FS_RESIDENT_MS, &resident, &chunks);
	if (chunks >= ff->f.n_chunks)
		return 0;
	return MFS_ERR(err, -EFBIG, MFS_ERR_QUOTA,
		       "the file (%llu bytes, %llu resident) is larger than the cache quota"
		       " (%llu bytes): the chunks of an open file are never evicted, so it could"
		       " not be read through; raise the quota ('modelfs gc --quota SIZE')",
		       (unsigned long long)ff->f.size, (unsigned long long)resident,
		       (unsigned long long)quota);
}

static void mfs_fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_tree_stat t;
	int rc = mfs_tree_stat(fs->tree, ino, &t);
	if (!rc && t.type == MFS_NODE_DIR)
		rc = -EISDIR;
	else if (!rc && t.type != MFS_NODE_FILE)
		rc = -EINVAL;
	if (!rc && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)))
		rc = -EROFS;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct mfs_err err = { 0 };
	struct mfs_fs_file *ff = mfs_fs_file_get(fs, t.file_id, t.artifact_id);
	struct mfs_fs_handle *h = calloc(1, sizeof(*h));
	if (!ff || !h) {
		free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = mfs_fs_file_load(fs, ff, &err);
	if (!rc)
		rc = fits_quota(fs, ff, &err);
	if (!rc)
		rc = mfs_fs_file_open(fs, ff, &err);
	if (rc) {
		char path[1024] = "";
		mfs_tree_path(fs->tree, ino, path, sizeof(path));
		mfs_log_error("open of '%s' failed: %s", path, err.msg[0] ? err.msg : strerror(-rc));
		free(h);
		fuse_reply_err(req, honest(rc));
		return;
	}
	h->ff = ff;
	h->window = 1;
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;  /* immutable bytes: pages stay valid across opens */
	fi->noflush = 1;
	atomic_fetch_add_explicit(&fs->n_opens, 1, memory_order_relaxed);
	if (fuse_reply_open(req, fi) == -ENOENT) { /* interrupted: no release will come */
		mfs_fs_file_close(fs, ff);
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
}

/* Feeds prefetch from the handle's read pattern (see the file comment). */
static void prefetch_hint(struct mfs_fs *fs, struct mfs_fs_handle *h, uint64_t off, size_t len)
{
	struct mfs_fs_file *ff = h->ff;
	const struct mfs_file *f = &ff->f;
	if (!fs->prefetch || !f->n_chunks || !len)
		return;
	uint64_t cs = f->chunk_size;
	uint32_t last = (uint32_t)((off + len - 1) / cs);
	uint32_t cap = MFS_FS_WINDOW_MAX / cs ? (uint32_t)(MFS_FS_WINDOW_MAX / cs) : 1;
	uint64_t tol = 2 * cs > (2u << 20) ? 2 * cs : (2u << 20);
	uint32_t qfirst = 0, qcount = 0;
	bool whole = false;

	pthread_mutex_lock(&h->lock);
	bool seq = off + tol >= h->next_off && off <= h->next_off + tol;
	if (seq) {
		if (h->ahead < last + 1)
			h->ahead = last + 1;
		uint64_t want = (uint64_t)last + 1 + h->window;
		if (want > f->n_chunks)
			want = f->n_chunks;
		if (want > h->ahead) {
			qfirst = h->ahead;
			qcount = (uint32_t)want - h->ahead;
			h->ahead = (uint32_t)want;
			h->window = h->window * 2 < cap ? h->window * 2 : cap;
		}
		if (off + len > h->next_off)
			h->next_off = off + len;
	} else {
		h->window = 1;
		h->ahead = last + 1;
		h->next_off = off + len;
		whole = ++h->jumps >= 2;
	}
	pthread_mutex_unlock(&h->lock);

	if (qcount)
		mfs_prefetch_range(fs->prefetch, f, qfirst, qcount);
	if (whole) {
		pthread_mutex_lock(&ff->lock);
		bool go = !ff->whole_queued;
		ff->whole_queued = true;
		pthread_mutex_unlock(&ff->lock);
		if (go && !mfs_prefetch_file(fs->prefetch, f)) {
			pthread_mutex_lock(&ff->lock);
			ff->whole_queued = false; /* queue full: try again later */
			pthread_mutex_unlock(&ff->lock);
		}
	}
}

#define MFS_FS_TERM_GRACE 64 /* repeats after SIGTERM before SIGKILL */

/* A read answered from the failure memory. If the caller is a thread the
 * kernel keeps inside mmap(MAP_POPULATE) (or mlock), the same read would
 * come back forever: end that process, SIGTERM first, SIGKILL if it is
 * still looping (it caught SIGTERM). Logged once per step, with why. */
static void remembered_failure(struct mfs_fs *fs, struct mfs_fs_file *ff, pid_t tid,
			       const struct mfs_fs_fail *m, uint64_t off)
{
	const struct mfs_file *f = &ff->f;
	bool hard = m->ended > 0;
	if (fs->populate_wait || m->ended > 1 || (hard && m->repeats < MFS_FS_TERM_GRACE))
		return;
	char comm[64] = "?";
	if (!mfs_fs_populating(tid, comm, sizeof(comm)))
		return;
	mfs_fs_fail_ended(ff, tid, m->first);
	int rc = mfs_fs_populating_end(tid, hard);
	if (!rc) {
		atomic_fetch_add_explicit(&fs->n_populate_ended, 1, memory_order_relaxed);
		mfs_store_count(fs->store, "populate_loops_ended", 1);
	}
	mfs_log_error("read of %s/%s@%s/%s at %llu: thread %d (%s) is held by the kernel inside"
		      " mmap(MAP_POPULATE) or mlock, asking again for bytes that failed (%s, %u"
		      " times answered at once); %s%s", f->org, f->name, f->commit, f->path,
		      (unsigned long long)off, (int)tid, comm, strerror(m->err), m->repeats,
		      rc ? "cannot end it: " : hard ? "sent SIGKILL (it caught SIGTERM)"
						    : "sent SIGTERM to end the load",
		      rc ? strerror(-rc) : "");
}

static void mfs_fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_fs_handle *h = (struct mfs_fs_handle *)(uintptr_t)fi->fh;
	const struct mfs_file *f = &h->ff->f;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= f->size || !size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > f->size - (uint64_t)off)
		size = (size_t)(f->size - (uint64_t)off);
	uint32_t first = f->chunk_size ? (uint32_t)((uint64_t)off / f->chunk_size) : 0;
	uint32_t last = f->chunk_size ? (uint32_t)(((uint64_t)off + size - 1) / f->chunk_size) : 0;
	pid_t tid = fuse_req_ctx(req)->pid;
	struct mfs_fs_fail mem;
	if (mfs_fs_fail_check(h->ff, tid, first, last, &mem)) {
		atomic_fetch_add_explicit(&fs->n_reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&fs->n_read_errors, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&fs->n_read_remembered, 1, memory_order_relaxed);
		remembered_failure(fs, h->ff, tid, &mem, (uint64_t)off);
		fuse_reply_err(req, mem.err);
		return;
	}
	prefetch_hint(fs, h, (uint64_t)off, size);

	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct mfs_err err = { 0 };
	ssize_t n = mfs_cache_read(fs->cache, f, (uint64_t)off, size, buf, &err);
	atomic_fetch_add_explicit(&fs->n_reads, 1, memory_order_relaxed);
	/* Before the reply: once it is sent the kernel may release the handle
	 * (and free h) while this thread is still here. */
	mfs_fs_file_resident_stale(h->ff);
	if (n < 0) {
		atomic_fetch_add_explicit(&fs->n_read_errors, 1, memory_order_relaxed);
		mfs_fs_fail_note(h->ff, tid, first, last, honest((int)n));
		mfs_log_error("read of %s/%s@%s/%s at %lld (+%zu) failed: %s", f->org, f->name,
			      f->commit, f->path, (long long)off, size,
			      err.msg[0] ? err.msg : strerror((int)-n));
		fuse_reply_err(req, honest((int)n));
	} else {
		atomic_fetch_add_explicit(&fs->n_read_bytes, (uint64_t)n, memory_order_relaxed);
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void mfs_fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void mfs_fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_fs_handle *h = (struct mfs_fs_handle *)(uintptr_t)fi->fh;
	if (h) {
		mfs_fs_file_close(fs, h->ff);
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
	fuse_reply_err(req, 0);
}

/* --- extended attributes ------------------------------------------------ */

static void mfs_fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_tree_stat t;
	int rc = mfs_tree_stat(fs->tree, ino, &t);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* Other namespaces (security.*, system.posix_acl_*) are asked by ls
	 * and exec: answer at once, without the store. */
	if (strncmp(name, MFS_XATTR_PREFIX, strlen(MFS_XATTR_PREFIX)) ||
	    t.type != MFS_NODE_FILE) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	struct mfs_fs_xattrs x;
	struct mfs_err err = { 0 };
	rc = mfs_fs_xattrs_build(fs, &t, &x, &err);
	if (rc) {
		mfs_log_error("getxattr '%s' failed: %s", name, err.msg);
		fuse_reply_err(req, honest(rc));
		return;
	}
	size_t i = 0;
	while (i < x.n && strcmp(x.names[i], name))
		i++;
	if (i == x.n) {
		fuse_reply_err(req, ENODATA);
	} else {
		size_t len = strlen(x.values[i]);
		if (!size)
			fuse_reply_xattr(req, len);
		else if (size < len)
			fuse_reply_err(req, ERANGE);
		else
			fuse_reply_buf(req, x.values[i], len);
	}
	mfs_fs_xattrs_release(&x);
}

static void mfs_fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mfs_fs *fs = fs_of(req);
	struct mfs_tree_stat t;
	int rc = mfs_tree_stat(fs->tree, ino, &t);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct mfs_fs_xattrs x;
	struct mfs_err err = { 0 };
	rc = mfs_fs_xattrs_build(fs, &t, &x, &err);
	if (rc) {
		mfs_log_error("listxattr failed: %s", err.msg);
		fuse_reply_err(req, honest(rc));
		return;
	}
	size_t total = 0;
	for (size_t i = 0; i < x.n; i++)
		total += strlen(x.names[i]) + 1;
	if (!size) {
		fuse_reply_xattr(req, total);
	} else if (size < total) {
		fuse_reply_err(req, ERANGE);
	} else {
		char *buf = malloc(total ? total : 1), *p = buf;
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
		} else {
			for (size_t i = 0; i < x.n; i++)
				p = stpcpy(p, x.names[i]) + 1;
			fuse_reply_buf(req, buf, total);
			free(buf);
		}
	}
	mfs_fs_xattrs_release(&x);
}

static void mfs_fs_op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct mfs_tree_stat t;
	int rc = mfs_tree_stat(fs_of(req)->tree, ino, &t);
	if (!rc && (mask & W_OK))
		rc = -EROFS;
	else if (!rc && (mask & X_OK) && t.type == MFS_NODE_FILE)
		rc = -EACCES;
	fuse_reply_err(req, -rc);
}

/* --- everything that would write: EROFS --------------------------------- */

static void mfs_fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			      struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			    dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			      const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			     fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
			   const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			     mode_t mode, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			       const char *value, size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void mfs_fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
				off_t length, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops mfs_fs_ops = {
	.init = mfs_fs_op_init,
	.lookup = mfs_fs_op_lookup,
	.forget = mfs_fs_op_forget,
	.forget_multi = mfs_fs_op_forget_multi,
	.getattr = mfs_fs_op_getattr,
	.readlink = mfs_fs_op_readlink,
	.opendir = mfs_fs_op_opendir,
	.readdir = mfs_fs_op_readdir,
	.statfs = mfs_fs_op_statfs,
	.open = mfs_fs_op_open,
	.read = mfs_fs_op_read,
	.flush = mfs_fs_op_flush,
	.release = mfs_fs_op_release,
	.getxattr = mfs_fs_op_getxattr,
	.listxattr = mfs_fs_op_listxattr,
	.access = mfs_fs_op_access,
	.setattr = mfs_fs_op_setattr,
	.mknod = mfs_fs_op_mknod,
	.mkdir = mfs_fs_op_mkdir,
	.unlink = mfs_fs_op_unlink,
	.rmdir = mfs_fs_op_rmdir,
	.symlink = mfs_fs_op_symlink,
	.rename = mfs_fs_op_rename,
	.link = mfs_fs_op_link,
	.write = mfs_fs_op_write,
	.create = mfs_fs_op_create,
	.setxattr = mfs_fs_op_setxattr,
	.removexattr = mfs_fs_op_removexattr,
	.fallocate = mfs_fs_op_fallocate,
};

const struct fuse_lowlevel_ops *mfs_fs_ops_table(void)
{
	return &mfs_fs_ops;
}
