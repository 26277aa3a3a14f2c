/*
 * fs_file.c - per-file state of a mount and open pins per artifact.
 *
 * A file's chunk digests are loaded on its first open and kept until the
 * mount ends (about 32 bytes per chunk: 8 KiB for a 1 GiB file in 4 MiB
 * chunks), so a read never waits for the index. Resident bytes, which
 * getattr shows as st_blocks, are asked of the store at most every few
 * hundred milliseconds per file: getattr must stay cheap under `ls -lR`.
 *
 * Pins: the first open of an artifact in this mount writes its pin row, the
 * last close removes it (see core/pin.h). The artifact's own mutex is held
 * across that row write so that a second open cannot be answered before the
 * first open's pin is visible to other processes; it is per artifact, so it
 * never holds up reads or opens of other artifacts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "log.h"
#include "pin.h"

uint64_t mfs_fs_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t bucket(int64_t key)
{
	uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ULL;
	return (size_t)(h >> 54) & (MFS_FS_BUCKETS - 1);
}

struct mfs_fs_file *mfs_fs_file_get(struct mfs_fs *fs, int64_t file_id, int64_t artifact_id)
{
	size_t b = bucket(file_id);
	pthread_mutex_lock(&fs->files_lock);
	struct mfs_fs_file *ff = fs->files[b];
	while (ff && ff->file_id != file_id)
		ff = ff->next;
	if (!ff) {
		ff = calloc(1, sizeof(*ff));
		if (ff) {
			ff->file_id = file_id;
			ff->artifact_id = artifact_id;
			pthread_mutex_init(&ff->lock, NULL);
			ff->next = fs->files[b];
			fs->files[b] = ff;
		}
	}
	pthread_mutex_unlock(&fs->files_lock);
	return ff;
}

int mfs_fs_file_load(struct mfs_fs *fs, struct mfs_fs_file *ff, struct mfs_err *err)
{
	int rc = 0;
	/* Held across the load: concurrent first opens of one file share it. */
	pthread_mutex_lock(&ff->lock);
	if (!ff->loaded) {
		rc = mfs_store_file_load(fs->store, ff->file_id, &ff->f, err);
		if (!rc)
			ff->loaded = true;
	}
	pthread_mutex_unlock(&ff->lock);
	return rc;
}

void mfs_fs_file_resident(struct mfs_fs *fs, struct mfs_fs_file *ff, uint64_t max_age_ms,
			  uint64_t *bytes, uint32_t *chunks)
{
	uint64_t now = mfs_fs_now_ms();
	pthread_mutex_lock(&ff->lock);
	bool fresh = ff->resident_at_ms && now - ff->resident_at_ms <= max_age_ms;
	uint64_t b = ff->resident_bytes;
	uint32_t c = ff->resident_chunks;
	pthread_mutex_unlock(&ff->lock);
	if (!fresh) {
		/* Asked without the lock; two threads may both ask, harmlessly. */
		if (mfs_store_file_resident(fs->store, ff->file_id, &b, &c) == 0) {
			pthread_mutex_lock(&ff->lock);
			ff->resident_bytes = b;
			ff->resident_chunks = c;
			ff->resident_at_ms = now;
			pthread_mutex_unlock(&ff->lock);
		}
	}
	*bytes = b;
	*chunks = c;
}

void mfs_fs_file_resident_stale(struct mfs_fs_file *ff)
{
	pthread_mutex_lock(&ff->lock);
	ff->resident_at_ms = 0;
	pthread_mutex_unlock(&ff->lock);
}

bool mfs_fs_fail_check(struct mfs_fs_file *ff, pid_t tid, uint32_t first, uint32_t last,
		       struct mfs_fs_fail *out)
{
	uint64_t now = mfs_fs_now_ms();
	bool hit = false;
	pthread_mutex_lock(&ff->lock);
	for (size_t i = 0; i < MFS_FS_FAILS && !hit; i++) {
		struct mfs_fs_fail *e = &ff->fails[i];
		if (e->err && e->tid == tid && now < e->until_ms && first <= e->last &&
		    e->first <= last) {
			e->repeats++;
			*out = *e;
			hit = true;
		}
	}
	pthread_mutex_unlock(&ff->lock);
	return hit;
}

void mfs_fs_fail_note(struct mfs_fs_file *ff, pid_t tid, uint32_t first, uint32_t last, int err)
{
	uint64_t now = mfs_fs_now_ms();
	pthread_mutex_lock(&ff->lock);
	struct mfs_fs_fail *slot = NULL;
	for (size_t i = 0; i < MFS_FS_FAILS && !slot; i++) /* the same read again */
		if (ff->fails[i].err && ff->fails[i].tid == tid && ff->fails[i].first == first &&
		    ff->fails[i].last == last)
			slot = &ff->fails[i];
	for (size_t i = 0; i < MFS_FS_FAILS && !slot; i++) /* a free or expired entry */
		if (!ff->fails[i].err || now >= ff->fails[i].until_ms)
			slot = &ff->fails[i];
	if (!slot) { /* the one that ends first */
		slot = &ff->fails[0];
		for (size_t i = 1; i < MFS_FS_FAILS; i++)
			if (ff->fails[i].until_ms < slot->until_ms)
				slot = &ff->fails[i];
	}
	bool same = slot->err && slot->tid == tid && slot->first == first && slot->last == last;
	*slot = (struct mfs_fs_fail){ .first = first, .last = last, .tid = tid, .err = err,
				      .until_ms = now + MFS_FS_FAIL_MS,
				      .repeats = same ? slot->repeats : 0,
				      .ended = same ? slot->ended : 0 };
	pthread_mutex_unlock(&ff->lock);
}

void mfs_fs_fail_ended(struct mfs_fs_file *ff, pid_t tid, uint32_t first)
{
	pthread_mutex_lock(&ff->lock);
	for (size_t i = 0; i < MFS_FS_FAILS; i++) {
		struct mfs_fs_fail *e = &ff->fails[i];
		if (e->err && e->tid == tid && e->first <= first && first <= e->last)
			e->ended++;
	}
	pthread_mutex_unlock(&ff->lock);
}

static struct mfs_fs_art *art_get(struct mfs_fs *fs, int64_t artifact_id, bool create)
{
	size_t b = bucket(artifact_id);
	pthread_mutex_lock(&fs->files_lock);
	struct mfs_fs_art *a = fs->arts[b];
	while (a && a->artifact_id != artifact_id)
		a = a->next;
	if (!a && create) {
		a = calloc(1, sizeof(*a));
		if (a) {
			a->artifact_id = artifact_id;
			pthread_mutex_init(&a->lock, NULL);
			a->next = fs->arts[b];
			fs->arts[b] = a;
		}
	}
	pthread_mutex_unlock(&fs->files_lock);
	return a;
}

int mfs_fs_file_open(struct mfs_fs *fs, struct mfs_fs_file *ff, struct mfs_err *err)
{
	struct mfs_fs_art *a = art_get(fs, ff->artifact_id, true);
	if (!a)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	int rc = 0;
	pthread_mutex_lock(&a->lock);
	if (a->opens == 0 && a->drop_pending) {
		a->drop_pending = false; /* the row a failed drop left serves again */
		atomic_fetch_sub(&fs->n_drop_pending, 1);
	}
	else if (a->opens == 0)
		rc = mfs_pin_hold(fs->store, a->artifact_id, err);
	if (!rc)
		a->opens++;
	pthread_mutex_unlock(&a->lock);
	if (!rc) {
		pthread_mutex_lock(&ff->lock);
		ff->opens++;
		pthread_mutex_unlock(&ff->lock);
		atomic_fetch_add_explicit(&fs->n_open_files, 1, memory_order_relaxed);
	}
	return rc;
}

void mfs_fs_file_close(struct mfs_fs *fs, struct mfs_fs_file *ff)
{
	pthread_mutex_lock(&ff->lock);
	if (ff->opens)
		ff->opens--;
	pthread_mutex_unlock(&ff->lock);
	atomic_fetch_sub_explicit(&fs->n_open_files, 1, memory_order_relaxed);

	struct mfs_fs_art *a = art_get(fs, ff->artifact_id, false);
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->opens && --a->opens == 0) {
		struct mfs_err err = { 0 };
		if (mfs_pin_drop(fs->store, a->artifact_id, &err)) {
			/* The row stays (the artifact only stays active longer)
			 * until the housekeeping thread removes it. */
			a->drop_pending = true;
			atomic_fetch_add(&fs->n_drop_pending, 1);
			mfs_log_warning("mount: cannot remove the pin of artifact %lld (tried again"
					" later): %s", (long long)a->artifact_id, err.msg);
		}
	}
	pthread_mutex_unlock(&a->lock);
}

int mfs_fs_pins_rewrite(struct mfs_fs *fs, struct mfs_err *err)
{
	int rc = 0;
	pthread_mutex_lock(&fs->files_lock);
	for (size_t b = 0; b < MFS_FS_BUCKETS; b++)
		for (struct mfs_fs_art *a = fs->arts[b]; a; a = a->next) {
			pthread_mutex_lock(&a->lock);
			int r = a->opens ? mfs_pin_hold(fs->store, a->artifact_id, err) : 0;
			if (a->drop_pending) { /* its row went with the old index */
				a->drop_pending = false;
				atomic_fetch_sub(&fs->n_drop_pending, 1);
			}
			pthread_mutex_unlock(&a->lock);
			if (r && !rc)
				rc = r;
		}
	pthread_mutex_unlock(&fs->files_lock);
	return rc;
}

void mfs_fs_pins_retry_drops(struct mfs_fs *fs)
{
	if (!atomic_load(&fs->n_drop_pending))
		return;
	pthread_mutex_lock(&fs->files_lock);
	for (size_t b = 0; b < MFS_FS_BUCKETS; b++)
		for (struct mfs_fs_art *a = fs->arts[b]; a; a = a->next) {
			pthread_mutex_lock(&a->lock);
			if (a->drop_pending && !a->opens && !mfs_pin_drop(fs->store, a->artifact_id, NULL)) {
				a->drop_pending = false;
				atomic_fetch_sub(&fs->n_drop_pending, 1);
			}
			pthread_mutex_unlock(&a->lock);
		}
	pthread_mutex_unlock(&fs->files_lock);
}

bool mfs_fs_art_open(struct mfs_fs *fs, int64_t artifact_id)
{
	struct mfs_fs_art *a = art_get(fs, artifact_id, false);
	if (!a)
		return false;
	pthread_mutex_lock(&a->lock);
	bool open = a->opens > 0;
	pthread_mutex_unlock(&a->lock);
	return open;
}

void mfs_fs_files_free(struct mfs_fs *fs)
{
	for (size_t b = 0; b < MFS_FS_BUCKETS; b++) {
		struct mfs_fs_file *ff = fs->files[b], *fnext;
		for (; ff; ff = fnext) {
			fnext = ff->next;
			if (ff->loaded)
				mfs_file_release(&ff->f);
			pthread_mutex_destroy(&ff->lock);
			free(ff);
		}
		fs->files[b] = NULL;
		struct mfs_fs_art *a = fs->arts[b], *anext;
		for (; a; a = anext) {
			anext = a->next;
			pthread_mutex_destroy(&a->lock);
			free(a);
		}
		fs->arts[b] = NULL;
	}
}
