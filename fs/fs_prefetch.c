/*
 * fs_prefetch.c - background prefetch (see fs_prefetch.h).
 *
 * The queues are two fixed rings under one mutex; workers sleep on a
 * condition variable. A range larger than one batch is split: the worker
 * takes the first batch and leaves the rest at the head, so a window is
 * fetched in order. A whole file carries a cursor and goes back to the tail
 * after each batch, so several files progress side by side. The mutex is
 * never held while fetching.
 */
#include "fs_prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct item {
	const struct mfs_file *f;
	uint32_t first, count;     /* ranges: what is left; files: cursor, n_chunks */
};

struct ring {
	struct item *v;
	unsigned cap, head, len;
};

struct mfs_prefetch {
	struct mfs_cache *cache;
	mfs_prefetch_done_fn done;
	void *done_ctx;
	pthread_t *threads;
	unsigned n_threads;

	pthread_mutex_t lock;      /* guards everything below */
	pthread_cond_t cond;       /* work queued or stopping */
	bool stop;
	struct ring ranges, files;
	uint64_t batches, failures, dropped;
};

static struct item *ring_at(struct ring *r, unsigned i)
{
	return &r->v[(r->head + i) % r->cap];
}

static bool ring_push(struct ring *r, struct item it)
{
	if (r->len == r->cap)
		return false;
	*ring_at(r, r->len) = it;
	r->len++;
	return true;
}

static struct item ring_pop(struct ring *r)
{
	struct item it = r->v[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return it;
}

static uint32_t batch_chunks(const struct mfs_file *f)
{
	uint32_t n = f->chunk_size ? MFS_PREFETCH_BATCH_BYTES / f->chunk_size : 1;
	return n ? n : 1;
}

/* Takes the next batch under the lock. False when stopping. */
static bool take(struct mfs_prefetch *p, const struct mfs_file **f, uint32_t *first,
		 uint32_t *count)
{
	while (!p->stop && !p->ranges.len && !p->files.len)
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->stop)
		return false;
	if (p->ranges.len) {
		struct item *it = ring_at(&p->ranges, 0);
		uint32_t n = batch_chunks(it->f);
		*f = it->f;
		*first = it->first;
		*count = it->count < n ? it->count : n;
		it->first += *count;
		it->count -= *count;
		if (!it->count)
			ring_pop(&p->ranges);
		return true;
	}
	struct item it = ring_pop(&p->files);
	uint32_t n = batch_chunks(it.f);
	*f = it.f;
	*first = it.first;
	*count = it.count - it.first < n ? it.count - it.first : n;
	it.first += *count;
	if (it.first < it.count)
		ring_push(&p->files, it); /* cannot fail: one slot was just freed */
	return true;
}

/* Drops the queued whole-file work of f (after a failure). Lock held. */
static void drop_file(struct mfs_prefetch *p, const struct mfs_file *f)
{
	struct ring *r = &p->files;
	unsigned kept = 0;
	for (unsigned i = 0; i < r->len; i++) {
		struct item it = *ring_at(r, i);
		if (it.f != f)
			*ring_at(r, kept++) = it;
	}
	r->len = kept;
}

static void *worker(void *arg)
{
	struct mfs_prefetch *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		const struct mfs_file *f;
		uint32_t first, count;
		if (!take(p, &f, &first, &count))
			break;
		pthread_mutex_unlock(&p->lock);

		struct mfs_err err = { 0 };
		int rc = mfs_cache_fetch(p->cache, f, first, count, &err);
		if (rc)
			mfs_log_warning("prefetch of %s/%s@%s/%s chunks %u..%u failed: %s",
					f->org, f->name, f->commit, f->path, first,
					first + count - 1, err.msg[0] ? err.msg : strerror(-rc));
		if (p->done)
			p->done(p->done_ctx, f, rc);

		pthread_mutex_lock(&p->lock);
		p->batches++;
		if (rc) {
			p->failures++;
			drop_file(p, f); /* demand reads will report the fault */
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int mfs_prefetch_new(struct mfs_cache *cache, unsigned threads, mfs_prefetch_done_fn done,
		     void *done_ctx, struct mfs_prefetch **out)
{
	struct mfs_prefetch *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cache = cache;
	p->done = done;
	p->done_ctx = done_ctx;
	p->ranges = (struct ring){ .v = calloc(MFS_PREFETCH_RANGES, sizeof(struct item)),
				   .cap = MFS_PREFETCH_RANGES };
	p->files = (struct ring){ .v = calloc(MFS_PREFETCH_FILES, sizeof(struct item)),
				  .cap = MFS_PREFETCH_FILES };
	p->threads = calloc(threads ? threads : 4, sizeof(*p->threads));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (!p->ranges.v || !p->files.v || !p->threads) {
		mfs_prefetch_free(p);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < (threads ? threads : 4); i++) {
		int rc = pthread_create(&p->threads[i], NULL, worker, p);
		if (rc) {
			mfs_prefetch_free(p);
			return -rc;
		}
		p->n_threads++;
	}
	*out = p;
	return 0;
}

void mfs_prefetch_free(struct mfs_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->threads);
	free(p->ranges.v);
	free(p->files.v);
	free(p);
}

bool mfs_prefetch_range(struct mfs_prefetch *p, const struct mfs_file *f, uint32_t first,
			uint32_t count)
{
	if (first >= f->n_chunks)
		return true;
	if (count > f->n_chunks - first)
		count = f->n_chunks - first;
	if (!count)
		return true;
	pthread_mutex_lock(&p->lock);
	bool ok = ring_push(&p->ranges, (struct item){ .f = f, .first = first, .count = count });
	if (ok)
		pthread_cond_signal(&p->cond);
	else
		p->dropped++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

bool mfs_prefetch_file(struct mfs_prefetch *p, const struct mfs_file *f)
{
	if (!f->n_chunks)
		return true;
	pthread_mutex_lock(&p->lock);
	bool ok = true;
	for (unsigned i = 0; ok && i < p->files.len; i++)
		if (ring_at(&p->files, i)->f == f)
			ok = false;
	if (ok)
		ok = ring_push(&p->files, (struct item){ .f = f, .first = 0, .count = f->n_chunks });
	if (ok)
		pthread_cond_broadcast(&p->cond);
	else
		p->dropped++;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void mfs_prefetch_stats(struct mfs_prefetch *p, struct mfs_prefetch_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = (struct mfs_prefetch_stats){
		.batches = p->batches, .failures = p->failures, .dropped = p->dropped,
		.queued_ranges = p->ranges.len, .queued_files = p->files.len,
	};
	pthread_mutex_unlock(&p->lock);
}
