/*
 * bench_fetch.c - pulls one file from a hub through the range engine and
 * prints its SHA-256 and the time taken.
 *
 *   bench_fetch ENDPOINT REPO REV PATH [--chunk MIB] [--inflight N] [--per-range] [--no-hash]
 *
 * Default mode is the hub-checksum root: ranges arrive in any order, the
 * whole-file SHA-256 is computed in file order (a range that arrives early
 * waits, copied, until its turn) and compared with the hub's LFS SHA-256.
 * --per-range instead gives every range an expected digest (the manifest
 * root) taken from a first, whole-file-checked pass, so the engine's workers
 * verify each range and no whole-file digest is needed; only the second pass
 * is timed. --no-hash times the transfer alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "repo.h"

struct pull {
	pthread_mutex_t lock;
	const char *path;
	uint64_t size, chunk, next_off;
	uint8_t (*expect)[MFS_SHA256_LEN]; /* per-range digests, or NULL */
	uint8_t (*seen)[MFS_SHA256_LEN];   /* per-range digests recorded in pass 1 */
	struct mfs_sha256 whole;           /* in file order */
	uint64_t hashed;                   /* bytes fed to whole */
	uint8_t **pending;                 /* early ranges, by index */
	bool no_hash;                      /* no whole-file digest */
	bool hashing;                      /* a thread is feeding whole */
	unsigned failed;
	char why[512];
};

static bool pull_next(void *ctx, struct mfs_fetch_req *req)
{
	struct pull *p = ctx;
	if (p->next_off >= p->size)
		return false;
	uint64_t len = p->size - p->next_off < p->chunk ? p->size - p->next_off : p->chunk;
	*req = (struct mfs_fetch_req){ .path = p->path, .off = p->next_off, .len = len };
	if (p->expect) {
		req->has_expect = true;
		memcpy(req->expect, p->expect[p->next_off / p->chunk], MFS_SHA256_LEN);
	}
	p->next_off += len;
	return true;
}

/*
 * The whole-file digest needs the ranges in order. The thread whose range is
 * next hashes it outside the lock, then any early ranges that follow it;
 * others leave a copy behind and return at once, so workers keep flowing.
 */
static int pull_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	struct pull *p = ctx;
	uint64_t ix = req->off / p->chunk;
	if (p->seen)
		mfs_sha256(buf, len, p->seen[ix]);
	pthread_mutex_lock(&p->lock);
	if (p->no_hash) {
		p->hashed += len;
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	if (req->off != p->hashed || p->hashing) {
		uint8_t *copy = malloc(len);
		if (!copy) {
			pthread_mutex_unlock(&p->lock);
			return -ENOMEM;
		}
		memcpy(copy, buf, len);
		p->pending[ix] = copy;
		if (p->hashing || req->off != p->hashed) {
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		p->pending[ix] = NULL;
		free(copy);
	}
	p->hashing = true;
	const void *cur = buf;
	uint8_t *owned = NULL;
	size_t l = len;
	for (;;) {
		pthread_mutex_unlock(&p->lock);
		mfs_sha256_update(&p->whole, cur, l);
		free(owned);
		pthread_mutex_lock(&p->lock);
		p->hashed += l;
		uint64_t k = p->hashed / p->chunk;
		if (p->hashed >= p->size || !p->pending[k])
			break;
		owned = p->pending[k];
		p->pending[k] = NULL;
		cur = owned;
		l = p->size - p->hashed < p->chunk ? p->size - p->hashed : p->chunk;
	}
	p->hashing = false;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pull_failed(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *e)
{
	struct pull *p = ctx;
	pthread_mutex_lock(&p->lock);
	if (!p->failed++)
		snprintf(p->why, sizeof(p->why), "%s", e->msg);
	pthread_mutex_unlock(&p->lock);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the file; 0 and the whole-file digest, or -1. */
static int pass(struct mfs_repo *r, const char *repo, const char *commit, struct pull *p,
		unsigned inflight, uint8_t out[MFS_SHA256_LEN])
{
	uint64_t n = (p->size + p->chunk - 1) / p->chunk;
	p->next_off = 0;
	p->hashed = 0;
	p->failed = 0;
	p->pending = calloc(n ? n : 1, sizeof(*p->pending));
	if (!p->pending || mfs_sha256_init(&p->whole))
		return -1;
	struct mfs_fetch_job job = { pull_next, pull_done, pull_failed, p };
	struct mfs_fetch_opts o = { .max_inflight = inflight };
	struct mfs_err e = { 0 };
	int rc = mfs_repo_fetch(r, repo, commit, &job, &o, &e);
	for (uint64_t i = 0; i < n; i++)
		free(p->pending[i]);
	free(p->pending);
	if (rc || p->failed || p->hashed != p->size) {
		fprintf(stderr, "bench_fetch: pull failed: %s\n",
			rc ? e.msg : p->failed ? p->why : "bytes missing");
		mfs_sha256_release(&p->whole);
		return -1;
	}
	mfs_sha256_final(&p->whole, out);
	if (p->no_hash)
		memset(out, 0, MFS_SHA256_LEN);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_fetch ENDPOINT REPO REV PATH [--chunk MIB] [--inflight N] [--per-range] [--no-hash]\n");
		return 2;
	}
	uint64_t chunk = 8ull << 20;
	unsigned inflight = 8;
	bool per_range = false, no_hash = false;
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
			chunk = strtoull(argv[++i], NULL, 10) << 20;
		else if (!strcmp(argv[i], "--inflight") && i + 1 < argc)
			inflight = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--per-range"))
			per_range = true;
		else if (!strcmp(argv[i], "--no-hash"))
			no_hash = true;
		else {
			fprintf(stderr, "bench_fetch: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!chunk || !inflight) {
		fprintf(stderr, "bench_fetch: --chunk and --inflight must be positive\n");
		return 2;
	}
	struct mfs_repo *r;
	struct mfs_err e = { 0 };
	char commit[41];
	struct mfs_repo_listing l = { 0 };
	if (mfs_repo_open(argv[1], &r, &e) || mfs_repo_resolve(r, argv[2], argv[3], commit, &e) ||
	    mfs_repo_list(r, argv[2], commit, &l, &e)) {
		fprintf(stderr, "bench_fetch: %s\n", e.msg);
		return 1;
	}
	struct mfs_repo_file *f = NULL;
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.files[i].path, argv[4]))
			f = &l.files[i];
	if (!f || !f->has_sha256) {
		fprintf(stderr, "bench_fetch: '%s' is not an LFS file of '%s'\n", argv[4], argv[2]);
		return 1;
	}
	struct pull p = { .path = argv[4], .size = f->size, .chunk = chunk };
	pthread_mutex_init(&p.lock, NULL);
	p.no_hash = no_hash;
	uint64_t n = (f->size + chunk - 1) / chunk;
	uint8_t d[MFS_SHA256_LEN];
	char hex[MFS_SHA256_HEX];
	if (per_range) {
		/* Pass 1 records each range's digest and checks the whole file. */
		p.seen = calloc(n ? n : 1, MFS_SHA256_LEN);
		if (!p.seen || pass(r, argv[2], commit, &p, inflight, d))
			return 1;
		mfs_hex_encode(d, MFS_SHA256_LEN, hex);
		if (strcmp(hex, f->sha256)) {
			fprintf(stderr, "bench_fetch: SHA-256 of '%s' does not match the hub's\n",
				argv[4]);
			return 1;
		}
		p.expect = p.seen;
		p.seen = NULL;
		p.no_hash = true; /* pass 2: the engine verifies every range */
	}
	double t0 = now_s();
	if (pass(r, argv[2], commit, &p, inflight, d))
		return 1;
	double t = now_s() - t0;
	mfs_hex_encode(d, MFS_SHA256_LEN, hex);
	if (!p.no_hash && strcmp(hex, f->sha256)) {
		fprintf(stderr, "bench_fetch: SHA-256 of '%s' does not match the hub's\n", argv[4]);
		return 1;
	}
	printf("%s %.3f\n", p.no_hash ? f->sha256 : hex, t);
	free(p.expect);
	mfs_repo_listing_release(&l);
	mfs_repo_close(r);
	return 0;
}
