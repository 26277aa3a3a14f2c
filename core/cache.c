/*
 * cache.c - verified reads of installed files, chunk by chunk (cache.h).
 *
 * The invariant this file keeps: a byte leaves mfs_cache_read only if it was
 * read from a chunk file that mfs_store_chunk_open vouched for and that still
 * carried the same stamp after the bytes were read, and a chunk
 * file exists only for bytes the repository layer verified against the
 * chunk's SHA-256 (the request carries the expected digest; a repository
 * hands over only matching bytes). So nothing here hashes on the read path
 * except where the store's stamp says a cached file changed.
 *
 * Single-flight: `inflight` holds one entry per chunk digest being fetched
 * by this process. The thread that creates an entry fetches it (together
 * with the other chunks it owns, in one parallel job); threads that find it
 * wait on `cond` until the owner marks it finished. Entries are freed by the
 * last holder (refs).
 */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inventory.h"
#include "log.h"

struct flight {
	uint8_t digest[MFS_SHA256_LEN];
	bool finished;           /* cache lock */
	int rc;                  /* cache lock: result once finished */
	struct mfs_err err;      /* cache lock */
	unsigned refs;           /* cache lock */
	struct flight *next;     /* cache lock: in c->inflight while !finished */
};

struct repo_slot {
	struct mfs_repo *repo;
	struct repo_slot *next;
};

struct mfs_cache {
	struct mfs_store *store;
	struct mfs_cache_opts opts;
	pthread_mutex_t lock;
	pthread_cond_t cond;     /* broadcast when any flight finishes */
	struct flight *inflight; /* lock */
	struct repo_slot *repos; /* lock: opened repositories, one per endpoint */
};

int mfs_cache_new(struct mfs_store *store, const struct mfs_cache_opts *opts,
		  struct mfs_cache **out, struct mfs_err *err)
{
	struct mfs_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	c->store = store;
	if (opts)
		c->opts = *opts;
	if (!c->opts.max_inflight)
		c->opts.max_inflight = 8;
	if (c->opts.deadline_ms <= 0)
		c->opts.deadline_ms = mfs_fetch_deadline_ms(NULL);
	pthread_mutex_init(&c->lock, NULL);
	/* Waits are timed on the monotonic clock: a clock step must not
	 * shorten or stretch a reader's deadline. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = c;
	return 0;
}

void mfs_cache_free(struct mfs_cache *c)
{
	if (!c)
		return;
	while (c->repos) {
		struct repo_slot *r = c->repos;
		c->repos = r->next;
		mfs_repo_close(r->repo);
		free(r);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* The repository for an endpoint, opened once per cache. Opening happens
 * outside the lock; a racing opener's copy is closed. */
static int get_repo(struct mfs_cache *c, const char *endpoint, struct mfs_repo **out,
		    struct mfs_err *err)
{
	pthread_mutex_lock(&c->lock);
	for (struct repo_slot *r = c->repos; r; r = r->next)
		if (!strcmp(r->repo->endpoint, endpoint)) {
			*out = r->repo;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
	pthread_mutex_unlock(&c->lock);

	struct mfs_repo *repo;
	int rc = mfs_repo_open(endpoint, &repo, err);
	if (rc)
		return rc;
	struct repo_slot *slot = malloc(sizeof(*slot));
	if (!slot) {
		mfs_repo_close(repo);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	pthread_mutex_lock(&c->lock);
	for (struct repo_slot *r = c->repos; r; r = r->next)
		if (!strcmp(r->repo->endpoint, endpoint)) {
			pthread_mutex_unlock(&c->lock);
			mfs_repo_close(repo);
			free(slot);
			*out = r->repo;
			return 0;
		}
	slot->repo = repo;
	slot->next = c->repos;
	c->repos = slot;
	pthread_mutex_unlock(&c->lock);
	*out = repo;
	return 0;
}

static void flight_put(struct mfs_cache *c, struct flight *fl)
{
	if (--fl->refs == 0)
		free(fl);
	(void)c;
}

/* Marks fl finished with rc (cache lock held). */
static void flight_finish(struct mfs_cache *c, struct flight *fl, int rc, const struct mfs_err *e)
{
	if (fl->finished)
		return;
	fl->finished = true;
	fl->rc = rc;
	if (e)
		fl->err = *e;
	for (struct flight **p = &c->inflight; *p; p = &(*p)->next)
		if (*p == fl) {
			*p = fl->next;
			break;
		}
	pthread_cond_broadcast(&c->cond);
}

/* Told of every chunk this fetch committed (idx), from a worker thread. */
typedef void (*landed_fn)(void *ctx, uint32_t idx);

struct job_state {
	struct mfs_cache *c;
	const struct mfs_file *f;
	landed_fn landed;
	void *landed_ctx;
	pthread_mutex_t lock;     /* guards next_i */
	uint32_t *idx;            /* owned chunk indexes */
	struct flight **fl;       /* their flights */
	uint32_t n, next_i;
	struct mfs_err first_err; /* lock: the first chunk's failure, told to
				   * those whose chunks the job then dropped */
};

static void job_keep_err(struct job_state *js, const struct mfs_err *e)
{
	pthread_mutex_lock(&js->lock);
	if (!js->first_err.code && e && e->code)
		js->first_err = *e;
	pthread_mutex_unlock(&js->lock);
}

static bool job_next(void *ctx, struct mfs_fetch_req *req)
{
	struct job_state *js = ctx;
	pthread_mutex_lock(&js->lock);
	bool more = js->next_i < js->n;
	if (more) {
		uint32_t k = js->next_i++;
		uint32_t i = js->idx[k];
		*req = (struct mfs_fetch_req){
			.path = js->f->path,
			.off = (uint64_t)i * js->f->chunk_size,
			.len = mfs_file_chunk_len(js->f, i),
			.has_expect = true,
			.tag = k,
		};
		memcpy(req->expect, js->f->chunks[i], MFS_SHA256_LEN);
	}
	pthread_mutex_unlock(&js->lock);
	return more;
}

static int job_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	struct job_state *js = ctx;
	struct flight *fl = js->fl[req->tag];
	struct mfs_err e = { 0 };
	/* The repository verified the bytes against req->expect before this
	 * call (repo.h); hashing them again here would double the cost. */
	int rc = len == req->len && req->has_expect
			 ? mfs_store_chunk_put(js->c->store, fl->digest, buf, len, &e)
			 : MFS_ERR(&e, -EIO, MFS_ERR_HASH, "chunk %llu of '%s' failed verification",
				   (unsigned long long)(req->off / js->f->chunk_size), js->f->path);
	if (!rc) {
		mfs_store_count(js->c->store, "fetched_bytes", (int64_t)len);
		mfs_store_count(js->c->store, "verified_chunks", 1);
		if (js->landed)
			js->landed(js->landed_ctx, js->idx[req->tag]);
	}
	if (rc)
		job_keep_err(js, &e);
	pthread_mutex_lock(&js->c->lock);
	flight_finish(js->c, fl, rc, &e);
	pthread_mutex_unlock(&js->c->lock);
	/* A full disk stops the job: nothing else can be committed either. */
	return rc == -ENOSPC ? rc : 0;
}

static void job_failed(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *e)
{
	struct job_state *js = ctx;
	struct flight *fl = js->fl[req->tag];
	mfs_store_count(js->c->store, e && e->kind == MFS_ERR_HASH ? "hash_failures"
								    : "fetch_failures", 1);
	mfs_log_warning("fetch of chunk %llu of '%s/%s/%s' failed: %s",
			(unsigned long long)(req->off / js->f->chunk_size), js->f->org, js->f->name,
			js->f->path,
			e ? e->msg : "unknown error");
	job_keep_err(js, e);
	pthread_mutex_lock(&js->c->lock);
	flight_finish(js->c, fl, e && e->code ? e->code : -EIO, e);
	pthread_mutex_unlock(&js->c->lock);
}

static int fetch_chunks(struct mfs_cache *c, const struct mfs_file *f, uint32_t first,
			uint32_t count, landed_fn landed, void *landed_ctx, struct mfs_err *err)
{
	if (first >= f->n_chunks || count == 0)
		return 0;
	if (count > f->n_chunks - first)
		count = f->n_chunks - first;

	struct flight **all = calloc(count, sizeof(*all));
	uint32_t *owned_idx = calloc(count, sizeof(*owned_idx));
	struct flight **owned = calloc(count, sizeof(*owned));
	uint32_t n_all = 0, n_owned = 0;
	int rc = 0;
	if (!all || !owned_idx || !owned) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}

	for (uint32_t i = first; i < first + count; i++) {
		if (mfs_store_chunk_resident(c->store, f->chunks[i]))
			continue;
		pthread_mutex_lock(&c->lock);
		struct flight *fl = c->inflight;
		while (fl && memcmp(fl->digest, f->chunks[i], MFS_SHA256_LEN))
			fl = fl->next;
		/* The check above raced with a flight that may have finished
		 * since: a flight ends only after its chunk is committed, so with
		 * no flight in the table a second look is decisive. */
		if (!fl && mfs_store_chunk_resident(c->store, f->chunks[i])) {
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		if (!fl) {
			fl = calloc(1, sizeof(*fl));
			if (!fl) {
				pthread_mutex_unlock(&c->lock);
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				break;
			}
			memcpy(fl->digest, f->chunks[i], MFS_SHA256_LEN);
			fl->refs = 1; /* the owner's */
			fl->next = c->inflight;
			c->inflight = fl;
			owned_idx[n_owned] = i;
			owned[n_owned++] = fl;
		}
		fl->refs++;
		all[n_all++] = fl;
		pthread_mutex_unlock(&c->lock);
	}

	if (n_owned) {
		struct mfs_repo *repo = NULL;
		struct mfs_err e = { 0 };
		int frc = get_repo(c, f->endpoint, &repo, &e);
		if (!frc) {
			struct job_state js = { .c = c, .f = f, .idx = owned_idx, .fl = owned,
						.n = n_owned, .landed = landed,
						.landed_ctx = landed_ctx };
			pthread_mutex_init(&js.lock, NULL);
			struct mfs_fetch_job job = { .next = job_next, .done = job_done,
						     .failed = job_failed, .ctx = &js };
			struct mfs_fetch_opts fo = { .max_inflight = c->opts.max_inflight,
						     .deadline_ms = c->opts.deadline_ms };
			char repo_name[512];
			snprintf(repo_name, sizeof(repo_name), "%s/%s", f->org, f->name);
			frc = mfs_repo_fetch(repo, repo_name, f->commit, &job, &fo, &e);
			if (frc && !e.code && js.first_err.code)
				e = js.first_err; /* the job stopped on it */
			pthread_mutex_destroy(&js.lock);
		}
		/* Whatever the job did not finish ends here, so no waiter hangs. */
		pthread_mutex_lock(&c->lock);
		for (uint32_t k = 0; k < n_owned; k++) {
			flight_finish(c, owned[k], frc ? frc : -EIO, &e);
			flight_put(c, owned[k]);
		}
		pthread_mutex_unlock(&c->lock);
	}

	/* A waiter gives up at the read's deadline (a little after the owner's
	 * own requests would have), so a stalled owner cannot hold it. */
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	long wait_ms = c->opts.deadline_ms + 1000;
	until.tv_sec += wait_ms / 1000 + (until.tv_nsec + (wait_ms % 1000) * 1000000L) / 1000000000L;
	until.tv_nsec = (until.tv_nsec + (wait_ms % 1000) * 1000000L) % 1000000000L;
	bool late = false;
	pthread_mutex_lock(&c->lock);
	for (uint32_t k = 0; k < n_all; k++) {
		while (!all[k]->finished && !late)
			late = pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT;
		if (!all[k]->finished && !rc) {
			rc = MFS_ERR(err, -ETIMEDOUT, MFS_ERR_NET,
				     "no answer for '%s' within the timeout of %ld s", f->path,
				     c->opts.deadline_ms / 1000);
		} else if (all[k]->finished && all[k]->rc && !rc) {
			rc = all[k]->rc;
			if (err)
				*err = all[k]->err;
			if (err && !err->code)
				MFS_ERR(err, rc, MFS_ERR_IO, "fetch of '%s' failed", f->path);
		}
		flight_put(c, all[k]);
	}
	pthread_mutex_unlock(&c->lock);
out:
	free(all);
	free(owned_idx);
	free(owned);
	return rc;
}

int mfs_cache_fetch(struct mfs_cache *c, const struct mfs_file *f, uint32_t first,
		    uint32_t count, struct mfs_err *err)
{
	return fetch_chunks(c, f, first, count, NULL, NULL, err);
}

/* Opens chunk idx of f, verified, fetching it (again) when it is missing or
 * its cached copy turned out bad. */
static int open_chunk(struct mfs_cache *c, const struct mfs_file *f, uint32_t idx, int *fd,
		      struct mfs_chunk_stamp *stamp, struct mfs_err *err)
{
	uint64_t len = mfs_file_chunk_len(f, idx);
	for (int attempt = 0; attempt < 3; attempt++) {
		int rc = mfs_store_chunk_open(c->store, f->chunks[idx], len, fd, stamp, err);
		if (rc != -ENOENT && rc != -EBADMSG)
			return rc;
		rc = mfs_cache_fetch(c, f, idx, 1, err);
		if (rc)
			return rc;
	}
	return MFS_ERR(err, -EIO, MFS_ERR_STATE, "chunk %u of '%s' keeps disappearing", idx, f->path);
}

/* Reads len bytes at from of an open chunk file. 0 or -errno. */
static int pread_all(int fd, void *buf, size_t len, uint64_t from)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(from + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* How often one read opens a chunk again because its file changed while
 * it was read, before it gives up (-EIO): a file that keeps changing is
 * under attack or on a failing disk, and is never served. */
#define CHANGED_RETRIES 4

ssize_t mfs_cache_read(struct mfs_cache *c, const struct mfs_file *f, uint64_t off,
		       size_t len, void *buf, struct mfs_err *err)
{
	if (off >= f->size || !len)
		return 0;
	if (len > f->size - off)
		len = (size_t)(f->size - off);
	uint32_t first = (uint32_t)(off / f->chunk_size);
	uint32_t last = (uint32_t)((off + len - 1) / f->chunk_size);
	size_t done = 0;
	int rc = 0;
	for (uint32_t i = first; i <= last; i++) {
		uint64_t cstart = (uint64_t)i * f->chunk_size;
		uint64_t from = off + done - cstart;
		size_t want = (size_t)(mfs_file_chunk_len(f, i) - from);
		if (want > len - done)
			want = len - done;
		for (int attempt = 0;; attempt++) {
			/* The common case, a resident chunk, costs one lookup; a
			 * miss fetches the rest of the range in one parallel job. */
			int fd;
			struct mfs_chunk_stamp stamp;
			rc = mfs_store_chunk_open(c->store, f->chunks[i], mfs_file_chunk_len(f, i), &fd,
						  &stamp, err);
			if (rc == -ENOENT || rc == -EBADMSG) {
				if (!attempt && (rc = mfs_cache_fetch(c, f, i, last - i + 1, err)))
					return rc;
				rc = open_chunk(c, f, i, &fd, &stamp, err);
			}
			if (rc)
				return rc;
			/* A read from the start of a chunk: have the kernel read
			 * the rest of its file from disk while this part is served. */
			if (from == 0)
				posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
			rc = pread_all(fd, (char *)buf + done, want, from);
			/* The stamp was checked before the read; a writer may have
			 * changed the file since. Checked again after it, the
			 * bytes are used only if nothing wrote in between. */
			bool same = !rc && mfs_store_chunk_unchanged(fd, &stamp);
			close(fd);
			if (rc)
				return MFS_ERR(err, rc, MFS_ERR_IO, "cannot read cached chunk %u of '%s'",
					       i, f->path);
			if (same)
				break;
			mfs_store_count(c->store, "changed_reads", 1);
			if (attempt + 1 >= CHANGED_RETRIES)
				return MFS_ERR(err, -EIO, MFS_ERR_HASH,
					       "chunk %u of '%s': its cached file keeps changing while"
					       " it is read; not served", i, f->path);
		}
		mfs_store_chunk_touch(c->store, f->chunks[i]);
		done += want;
	}
	return (ssize_t)done;
}

/*
 * Pull: one fetch job over every missing chunk, and beside it a thread that
 * computes the whole-file SHA-256 in order, reading each chunk back (from the
 * page cache, just written) as soon as it is committed. So the whole-file
 * check costs no second pass at the end, and no window of chunks has to
 * drain before the next starts.
 */
struct pull {
	struct mfs_cache *c;
	const struct mfs_file *f;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *ready;          /* lock: per chunk, committed */
	bool fetch_over;         /* lock: no more chunks will land */
	int fetch_rc;            /* lock: the fetch's result, once over */
	uint64_t landed_bytes;   /* lock: for progress */
	mfs_progress_fn progress;
	void *pctx;
	int rc;                  /* hasher's result */
	struct mfs_err err;
	uint8_t digest[MFS_SHA256_LEN];
};

static void pull_landed(void *ctx, uint32_t idx)
{
	struct pull *p = ctx;
	pthread_mutex_lock(&p->lock);
	p->ready[idx] = 1;
	p->landed_bytes += mfs_file_chunk_len(p->f, idx);
	if (p->progress)
		p->progress(p->pctx, p->landed_bytes, p->f->size);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Hashes chunk idx from its verified file into h. */
static int hash_chunk(struct mfs_cache *c, const struct mfs_file *f, uint32_t idx,
		      struct mfs_sha256 *h, uint8_t *buf, size_t cap, struct mfs_err *err)
{
	int fd;
	int rc = open_chunk(c, f, idx, &fd, NULL, err);
	if (rc)
		return rc;
	uint64_t len = mfs_file_chunk_len(f, idx), off = 0;
	while (off < len && !rc) {
		ssize_t n = pread(fd, buf, len - off < cap ? (size_t)(len - off) : cap, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot read chunk %u of '%s'", idx, f->path);
		else {
			mfs_sha256_update(h, buf, (size_t)n);
			off += (uint64_t)n;
		}
	}
	close(fd);
	return rc;
}

static void *pull_hasher(void *arg)
{
	struct pull *p = arg;
	struct mfs_sha256 h;
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	p->rc = buf ? mfs_sha256_init(&h) : -ENOMEM;
	if (p->rc) {
		free(buf);
		MFS_ERR(&p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < p->f->n_chunks && !p->rc; i++) {
		pthread_mutex_lock(&p->lock);
		while (!p->ready[i] && !p->fetch_over)
			pthread_cond_wait(&p->cond, &p->lock);
		bool failed = !p->ready[i] && p->fetch_rc;
		pthread_mutex_unlock(&p->lock);
		if (failed) {
			p->rc = -ECANCELED; /* the fetch's error is the one to report */
			break;
		}
		/* A chunk that did not land here (the fetch failed, or another
		 * thread owned it) is opened, or fetched, on its own. */
		p->rc = hash_chunk(p->c, p->f, i, &h, buf, cap, &p->err);
	}
	free(buf);
	if (p->rc)
		mfs_sha256_release(&h);
	else
		mfs_sha256_final(&h, p->digest);
	return NULL;
}

int mfs_cache_pull_file(struct mfs_cache *c, const struct mfs_file *f,
			mfs_progress_fn progress, void *pctx, struct mfs_err *err)
{
	/* Once the chunk digests are known to make up the whole file, every
	 * chunk verified against its digest is enough: fetch what is missing. */
	struct pull p = { .c = c, .f = f, .progress = progress, .pctx = pctx };
	if (f->id > 0 && mfs_inv_file_verified(c->store, f->id)) {
		uint32_t n = 0;
		mfs_store_file_resident(c->store, f->id, &p.landed_bytes, &n);
		if (progress)
			progress(pctx, p.landed_bytes, f->size);
		pthread_mutex_init(&p.lock, NULL);
		pthread_cond_init(&p.cond, NULL);
		p.ready = calloc(f->n_chunks ? f->n_chunks : 1, 1);
		int rc = p.ready ? fetch_chunks(c, f, 0, f->n_chunks, pull_landed, &p, err)
				 : MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		free(p.ready);
		pthread_mutex_destroy(&p.lock);
		pthread_cond_destroy(&p.cond);
		return rc;
	}
	p.ready = calloc(f->n_chunks ? f->n_chunks : 1, 1);
	if (!p.ready)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	for (uint32_t i = 0; i < f->n_chunks; i++)
		if ((p.ready[i] = mfs_store_chunk_resident(c->store, f->chunks[i])))
			p.landed_bytes += mfs_file_chunk_len(f, i);
	if (progress)
		progress(pctx, p.landed_bytes, f->size);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	pthread_t hasher;
	bool threaded = pthread_create(&hasher, NULL, pull_hasher, &p) == 0;

	int rc = fetch_chunks(c, f, 0, f->n_chunks, pull_landed, &p, err);
	pthread_mutex_lock(&p.lock);
	p.fetch_rc = rc;
	p.fetch_over = true;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.lock);
	if (threaded)
		pthread_join(hasher, NULL);
	else if (!rc)
		pull_hasher(&p);
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.cond);
	free(p.ready);
	if (rc)
		return rc;
	if (p.rc) {
		if (err)
			*err = p.err;
		return p.rc;
	}
	char hex[MFS_SHA256_HEX];
	mfs_hex_encode(p.digest, sizeof(p.digest), hex);
	if (strcmp(hex, f->sha256))
		return MFS_ERR(err, -EIO, MFS_ERR_HASH,
			       "'%s': the chunks verify but the whole file hashes to %s, not %s; the "
			       "manifest is inconsistent", f->path, hex, f->sha256);
	return mfs_store_file_set_verified(c->store, f->id, err);
}

int mfs_cache_verify_file(struct mfs_cache *c, const struct mfs_file *f, unsigned *bad,
			  struct mfs_err *err)
{
	unsigned n_bad = 0;
	int rc = 0;
	for (uint32_t i = 0; i < f->n_chunks && !rc; i++) {
		struct mfs_err e = { 0 };
		int r = mfs_store_chunk_check(c->store, f->chunks[i], mfs_file_chunk_len(f, i), &e);
		if (r == -EBADMSG) {
			n_bad++;
			rc = mfs_cache_fetch(c, f, i, 1, err); /* repair */
		} else if (r && r != -ENOENT) {
			rc = r;
			if (err)
				*err = e;
		}
	}
	if (bad)
		*bad = n_bad;
	return rc;
}
