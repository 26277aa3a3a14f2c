/*
 * test_evict.c - the cache quota and eviction: the quota and its watermarks,
 * LRU order, usage kept under the quota while chunks are committed, active
 * artifacts (open in a process, or pinned) never losing a chunk, ENOSPC when
 * everything left is active, evidence rows, evict and rm refusing active
 * artifacts, rm leaving no rows and no record, gc removing what is stale;
 * several processes never passing the quota together, a resident chunk
 * committed again at no cost, a lost index rebuilt with the same ids, pins
 * and quota.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "digest.h"
#include "evict.h"
#include "inventory.h"
#include "pin.h"
#include "store.h"
#include "store_record.h"

#define CS 4096u       /* chunk size of the test files */
#define NCH 10u        /* chunks per test artifact */
#define ART (CS * NCH) /* bytes of one test artifact */

struct art {
	int64_t id;
	char ref[256];
	uint8_t dg[NCH][MFS_SHA256_LEN];
};

struct fixture {
	char dir[64];
	struct mfs_store *s;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mfs-test-evict-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_store_open(fx->dir, &fx->s, &err), 0);
	assert_int_equal(mfs_pin_init(fx->s, &err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	mfs_store_close(fx->s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s'; rm -rf '%s'", fx->dir, fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 131u + seed * 7919u + (i >> 8) * seed) & 0xff);
	memcpy(buf, &seed, sizeof(seed));
}

/* Commits one chunk of len bytes with content seed; its digest into dg. */
static int put_chunk(struct mfs_store *s, unsigned seed, size_t len, uint8_t dg[MFS_SHA256_LEN],
		     struct mfs_err *err)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	fill(buf, len, seed);
	mfs_sha256(buf, len, dg);
	int rc = mfs_store_chunk_put(s, dg, buf, len, err);
	free(buf);
	return rc;
}

/* Admits org/name with one file of NCH chunks (seeds base .. base+NCH-1),
 * committing its chunks first. shared, if not NULL, replaces chunk 0. */
static void make_artifact(struct mfs_store *s, const char *name, unsigned base, struct art *a,
			  const uint8_t *shared)
{
	struct mfs_err err = { 0 };
	json_t *chunks = json_array();
	for (unsigned i = 0; i < NCH; i++) {
		if (i == 0 && shared)
			memcpy(a->dg[0], shared, MFS_SHA256_LEN);
		else
			assert_int_equal(put_chunk(s, base + i, CS, a->dg[i], &err), 0);
		char hex[MFS_SHA256_HEX];
		mfs_hex_encode(a->dg[i], MFS_SHA256_LEN, hex);
		json_array_append_new(chunks, json_string(hex));
	}
	char commit[41];
	memset(commit, 'a' + (char)(base % 6), 40);
	commit[40] = '\0';
	snprintf(a->ref, sizeof(a->ref), "acme/%s@%s/m.gguf", name, commit);
	json_t *r = json_pack(
		"{s:i,s:s,s:s,s:s,s:s,s:s,s:[s],s:s,s:s,s:s,s:s,s:s,s:I,s:{},s:I,"
		"s:[{s:s,s:I,s:s,s:I,s:o}]}",
		"version", 1, "canonical_ref", a->ref, "endpoint", "mem:test", "org", "acme", "name",
		name, "commit", commit, "revisions", "main", "primary", "m.gguf", "distribution_id",
		name, "identity", "0000000000000000000000000000000000000000000000000000000000000000",
		"format", "gguf", "trust", "hub", "sequence", (json_int_t)0, "meta", "added_at",
		(json_int_t)1, "files", "path", "m.gguf", "size", (json_int_t)ART, "sha256",
		"1111111111111111111111111111111111111111111111111111111111111111", "chunk_size",
		(json_int_t)CS, "chunks", chunks);
	assert_non_null(r);
	assert_int_equal(mfs_store_admit(s, r, &a->id, &err), 0);
	json_decref(r);
}

static int64_t sql_int(struct mfs_store *s, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	sqlite3 *db = mfs_store_lock(s);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	return v;
}

/* Sets last_read of every chunk of a to t (reads are batched by the store). */
static void age(struct mfs_store *s, const struct art *a, int64_t t)
{
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE resident SET last_read = ? WHERE digest = ?",
					    -1, &st, NULL), SQLITE_OK);
	for (unsigned i = 0; i < NCH; i++) {
		sqlite3_bind_int64(st, 1, t);
		sqlite3_bind_blob(st, 2, a->dg[i], MFS_SHA256_LEN, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
}

static unsigned resident_chunks(struct mfs_store *s, const struct art *a)
{
	unsigned n = 0;
	for (unsigned i = 0; i < NCH; i++)
		n += mfs_store_chunk_resident(s, a->dg[i]);
	return n;
}

static bool chunk_file_exists(struct mfs_store *s, const uint8_t *dg)
{
	char path[PATH_MAX];
	mfs_store_chunk_path(s, dg, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static uint64_t usage(struct mfs_store *s)
{
	struct mfs_quota q;
	assert_int_equal(mfs_evict_get_quota(s, &q), 0);
	return q.usage;
}

/* ------------------------------------------------------------------------ */

static void test_quota_settings(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct mfs_quota q;
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_true(q.bytes == 0);
	assert_int_equal(q.high_pct, 90);
	assert_int_equal(q.low_pct, 70);
	/* no quota: every reservation fits */
	assert_int_equal(mfs_evict_reserve(fx->s, UINT64_C(1) << 50, &err), 0);

	assert_int_equal(mfs_evict_set_quota(fx->s, 100000, 0, 0, &err), 0);
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_true(q.bytes == 100000 && q.high == 90000 && q.low == 70000);

	assert_int_equal(mfs_evict_set_quota(fx->s, 100000, 80, 50, &err), 0);
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_true(q.high == 80000 && q.low == 50000);

	/* bad watermarks are refused and change nothing */
	assert_int_equal(mfs_evict_set_quota(fx->s, 200000, 50, 60, &err), -EINVAL);
	assert_int_equal(err.kind, MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "low < high"));
	assert_int_equal(mfs_evict_set_quota(fx->s, 200000, 101, 60, &err), -EINVAL);
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_true(q.bytes == 100000 && q.high_pct == 80 && q.low_pct == 50);

	/* a reservation larger than the quota itself never fits */
	assert_int_equal(mfs_evict_reserve(fx->s, 200000, &err), -ENOSPC);
	assert_int_equal(err.kind, MFS_ERR_QUOTA);

	assert_int_equal(mfs_evict_set_quota(fx->s, 0, 0, 0, &err), 0);
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_true(q.bytes == 0);
}

/* A, B, then C's chunks past the high watermark: A (least recently read)
 * goes, B stays, usage never passes the quota, evidence names A. */
static void test_lru_under_quota(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, b, c;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "b", 200, &b, NULL);
	age(fx->s, &a, 1000);
	age(fx->s, &b, 2000);
	assert_int_equal(mfs_evict_set_quota(fx->s, 100000, 0, 0, &err), 0);
	for (unsigned i = 0; i < NCH; i++) {
		uint8_t dg[MFS_SHA256_LEN];
		assert_int_equal(put_chunk(fx->s, 300 + i, CS, dg, &err), 0);
		assert_true(usage(fx->s) <= 100000);
		assert_true(mfs_store_chunk_resident(fx->s, dg));
	}
	make_artifact(fx->s, "c", 300, &c, NULL); /* the same chunks: nothing new */
	assert_int_equal(resident_chunks(fx->s, &a), 0);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);
	assert_int_equal(resident_chunks(fx->s, &c), NCH);
	for (unsigned i = 0; i < NCH; i++)
		assert_false(chunk_file_exists(fx->s, a.dg[i]));
	assert_true(usage(fx->s) == 2 * ART);

	/* evidence: one row per evicted chunk, reason quota, naming A's file */
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE reason = 'quota'"
					" AND path = 'm.gguf' AND artifact LIKE 'acme/a@%'"), NCH);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE artifact NOT LIKE"
					" 'acme/a@%'"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT value FROM counters WHERE name = 'evicted_chunks'"),
			 NCH);
	assert_int_equal(sql_int(fx->s, "SELECT value FROM counters WHERE name = 'evicted_bytes'"),
			 ART);
	char commit[41];
	memcpy(commit, a.ref + strlen("acme/a@"), 40);
	commit[40] = '\0';
	int64_t fid = mfs_store_file_id(fx->s, "acme", "a", commit, "m.gguf");
	assert_true(fid > 0);
	struct mfs_inv_eviction ev;
	assert_int_equal(mfs_inv_last_eviction(fx->s, fid, &ev, &err), 0);
	assert_true(ev.any);
	assert_string_equal(ev.reason, "quota");
	assert_true(ev.bytes == CS);

	/* an evicted chunk is not served */
	int fd = -1;
	assert_int_equal(mfs_store_chunk_open(fx->s, a.dg[0], CS, &fd, NULL, &err), -ENOENT);

	/* B now least recently read, C touched: the next overflow takes B */
	age(fx->s, &b, 3000);
	age(fx->s, &c, 4000);
	for (unsigned i = 0; i < 3; i++) {
		uint8_t dg[MFS_SHA256_LEN];
		assert_int_equal(put_chunk(fx->s, 400 + i, CS, dg, &err), 0);
		assert_true(usage(fx->s) <= 100000);
	}
	assert_true(resident_chunks(fx->s, &b) < NCH);
	assert_int_equal(resident_chunks(fx->s, &c), NCH);
}

/* Open (a pin of a live process) and pinned artifacts never lose a chunk;
 * when nothing else can go, the commit fails with ENOSPC (kind QUOTA). */
static void test_active_never_evicted(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, b;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "b", 200, &b, NULL);
	age(fx->s, &a, 1000);
	age(fx->s, &b, 1000);
	assert_int_equal(mfs_pin_hold(fx->s, a.id, &err), 0);
	assert_int_equal(mfs_evict_pin(fx->s, b.id, true, &err), 0);
	assert_int_equal(mfs_evict_set_quota(fx->s, 100000, 0, 0, &err), 0);

	/* new chunks can only displace each other */
	for (unsigned i = 0; i < 2 * NCH; i++) {
		uint8_t dg[MFS_SHA256_LEN];
		assert_int_equal(put_chunk(fx->s, 500 + i, CS, dg, &err), 0);
		assert_true(usage(fx->s) <= 100000);
	}
	assert_int_equal(resident_chunks(fx->s, &a), NCH);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE artifact IS NOT NULL"),
			 0);

	/* a chunk that cannot fit next to the active set */
	uint8_t big[MFS_SHA256_LEN];
	int rc = put_chunk(fx->s, 900, 5 * CS, big, &err);
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(err.kind, MFS_ERR_QUOTA);
	assert_non_null(strstr(err.msg, "held by open or pinned artifacts"));
	assert_false(mfs_store_chunk_resident(fx->s, big));
	assert_false(chunk_file_exists(fx->s, big));
	assert_true(usage(fx->s) <= 100000);
	assert_int_equal(resident_chunks(fx->s, &a), NCH);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);

	/* with A closed, the user pin alone still keeps B */
	assert_int_equal(mfs_pin_drop(fx->s, a.id, &err), 0);
	assert_int_equal(put_chunk(fx->s, 901, 15 * CS, big, &err), -ENOSPC);
	assert_int_equal(err.kind, MFS_ERR_QUOTA);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);
	assert_true(usage(fx->s) <= 100000);
	/* once nothing is active, it fits */
	assert_int_equal(mfs_evict_pin(fx->s, b.id, false, &err), 0);
	assert_int_equal(put_chunk(fx->s, 901, 15 * CS, big, &err), 0);
	assert_true(mfs_store_chunk_resident(fx->s, big));
	assert_true(usage(fx->s) <= 100000);
	/* down to the low watermark less the new chunk: at most two chunks of 4 KiB left */
	assert_true(resident_chunks(fx->s, &a) + resident_chunks(fx->s, &b) <= 2);
}

/* A chunk shared with an active artifact stays when the other one goes. */
static void test_shared_chunk(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, d;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "d", 600, &d, a.dg[3]);
	assert_int_equal(mfs_evict_pin(fx->s, a.id, true, &err), 0);
	uint64_t freed = 0;
	assert_int_equal(mfs_evict_artifact(fx->s, d.id, "manual", &freed, &err), 0);
	assert_true(freed == (NCH - 1) * CS);
	assert_int_equal(resident_chunks(fx->s, &d), 1);
	assert_true(mfs_store_chunk_resident(fx->s, a.dg[3]));
	assert_int_equal(resident_chunks(fx->s, &a), NCH);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE reason = 'manual'"),
			 NCH - 1);
}

static void test_evict_rm_refuse_active(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, b;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "b", 200, &b, NULL);
	int64_t gen = mfs_store_generation(fx->s);

	assert_int_equal(mfs_pin_hold(fx->s, a.id, &err), 0);
	uint64_t freed = 1;
	assert_int_equal(mfs_evict_artifact(fx->s, a.id, "manual", &freed, &err), -EBUSY);
	assert_int_equal(err.kind, MFS_ERR_BUSY);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	assert_non_null(strstr(err.msg, pid));
	assert_non_null(strstr(err.msg, a.ref));
	assert_int_equal(mfs_evict_remove(fx->s, a.id, &err), -EBUSY);
	assert_int_equal(resident_chunks(fx->s, &a), NCH);

	assert_int_equal(mfs_evict_pin(fx->s, b.id, true, &err), 0);
	assert_int_equal(mfs_evict_artifact(fx->s, b.id, "manual", NULL, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "unpin"));
	assert_int_equal(mfs_evict_remove(fx->s, b.id, &err), -EBUSY);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);

	/* once idle: evict drops the bytes, keeps the artifact */
	assert_int_equal(mfs_pin_drop(fx->s, a.id, &err), 0);
	assert_int_equal(mfs_evict_artifact(fx->s, a.id, "manual", &freed, &err), 0);
	assert_true(freed == ART);
	assert_int_equal(resident_chunks(fx->s, &a), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts"), 2);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE reason = 'manual'"),
			 NCH);

	/* rm: no rows, no record, generation bumped, evidence kept */
	char record[PATH_MAX];
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(fx->s);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT record FROM artifacts WHERE id = ?", -1, &st,
					    NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, b.id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(record, sizeof(record), "%s/records/%s", fx->dir, sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	mfs_store_unlock(fx->s);
	assert_int_equal(access(record, F_OK), 0);

	assert_int_equal(mfs_evict_pin(fx->s, b.id, false, &err), 0);
	assert_int_equal(mfs_evict_remove(fx->s, b.id, &err), 0);
	assert_int_equal(resident_chunks(fx->s, &b), 0);
	for (unsigned i = 0; i < NCH; i++)
		assert_false(chunk_file_exists(fx->s, b.dg[i]));
	assert_int_not_equal(access(record, F_OK), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts WHERE name = 'b'"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM files WHERE name = 'b'"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifact_files WHERE file_id NOT IN"
					" (SELECT id FROM files)"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM chunks WHERE file_id NOT IN"
					" (SELECT id FROM files)"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM refs WHERE name = 'b'"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts"), 1);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE artifact LIKE"
					" 'acme/b@%' AND reason = 'manual'"), NCH);
	assert_true(mfs_store_generation(fx->s) > gen);

	/* gone: clear errors */
	assert_int_equal(mfs_evict_remove(fx->s, b.id, &err), -ENOENT);
	assert_int_equal(err.kind, MFS_ERR_NOT_FOUND);
	assert_int_equal(mfs_evict_artifact(fx->s, b.id, "manual", NULL, &err), -ENOENT);
	assert_int_equal(mfs_evict_pin(fx->s, b.id, true, &err), -ENOENT);

	/* the index still opens and rebuilds without b */
	mfs_store_close(fx->s);
	char idx[PATH_MAX];
	snprintf(idx, sizeof(idx), "%s/index.db", fx->dir);
	assert_int_equal(unlink(idx), 0);
	assert_int_equal(mfs_store_open(fx->dir, &fx->s, &err), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts"), 1);
}

static void make_old_file(const char *path, size_t len, time_t age_s)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (size_t i = 0; i < len; i++)
		fputc('x', fp);
	fclose(fp);
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= age_s;
	tv[1] = tv[0];
	assert_int_equal(utimes(path, tv), 0);
}

static void test_gc(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, b;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "b", 200, &b, NULL);
	age(fx->s, &a, 1000);
	age(fx->s, &b, 2000);

	/* a resident chunk no file uses, read long ago; one read just now */
	uint8_t unused[MFS_SHA256_LEN], fresh[MFS_SHA256_LEN];
	assert_int_equal(put_chunk(fx->s, 700, CS, unused, &err), 0);
	assert_int_equal(put_chunk(fx->s, 701, CS, fresh, &err), 0);
	sqlite3 *db = mfs_store_lock(fx->s);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "UPDATE resident SET last_read = 5 WHERE digest = ?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, unused, MFS_SHA256_LEN, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	mfs_store_unlock(fx->s);

	/* chunk files without a row (a crash after rename): old and new */
	char old_orphan[PATH_MAX], new_orphan[PATH_MAX], p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/chunks/ee", fx->dir);
	mkdir(p, 0755);
	snprintf(old_orphan, sizeof(old_orphan), "%s/ee%062d", p, 0);
	snprintf(new_orphan, sizeof(new_orphan), "%s/ee%062d", p, 1);
	make_old_file(old_orphan, 100, 3600);
	make_old_file(new_orphan, 100, 0);
	/* stale tmp/ and partial/ files, and fresh ones */
	char tmp_old[PATH_MAX], tmp_new[PATH_MAX], part_old[PATH_MAX], part_new[PATH_MAX];
	snprintf(tmp_old, sizeof(tmp_old), "%s/tmp/old.XXXX", fx->dir);
	snprintf(tmp_new, sizeof(tmp_new), "%s/tmp/new.XXXX", fx->dir);
	snprintf(part_old, sizeof(part_old), "%s/partial/old.part", fx->dir);
	snprintf(part_new, sizeof(part_new), "%s/partial/new.part", fx->dir);
	make_old_file(tmp_old, 10, 3600);
	make_old_file(tmp_new, 10, 0);
	make_old_file(part_old, 10, 2 * 86400);
	make_old_file(part_new, 10, 3600);
	/* hub downloads staged in directories: one abandoned, one recent */
	char st_old[PATH_MAX], st_new[PATH_MAX], st_file[PATH_MAX + 16];
	snprintf(st_old, sizeof(st_old), "%s/partial/aaaa", fx->dir);
	snprintf(st_new, sizeof(st_new), "%s/partial/bbbb", fx->dir);
	assert_int_equal(mkdir(st_old, 0700), 0);
	assert_int_equal(mkdir(st_new, 0700), 0);
	snprintf(st_file, sizeof(st_file), "%s/00000000", st_old);
	make_old_file(st_file, 10, 2 * 86400);
	snprintf(st_file, sizeof(st_file), "%s/00000000", st_new);
	make_old_file(st_file, 10, 2 * 86400);
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 2 * 86400;
	tv[1] = tv[0];
	assert_int_equal(utimes(st_old, tv), 0);

	/* no quota: only the stale things go */
	uint64_t freed = 0;
	assert_int_equal(mfs_evict_gc(fx->s, &freed, &err), 0);
	assert_false(mfs_store_chunk_resident(fx->s, unused));
	assert_false(chunk_file_exists(fx->s, unused));
	assert_true(mfs_store_chunk_resident(fx->s, fresh));
	assert_int_not_equal(access(old_orphan, F_OK), 0);
	assert_int_equal(access(new_orphan, F_OK), 0);
	assert_int_not_equal(access(tmp_old, F_OK), 0);
	assert_int_equal(access(tmp_new, F_OK), 0);
	assert_int_not_equal(access(part_old, F_OK), 0);
	assert_int_equal(access(part_new, F_OK), 0);
	assert_int_not_equal(access(st_old, F_OK), 0);
	assert_int_equal(access(st_file, F_OK), 0);
	assert_true(freed == CS + 100 + 10 + 10 + 10);
	assert_int_equal(resident_chunks(fx->s, &a), NCH);
	assert_int_equal(resident_chunks(fx->s, &b), NCH);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE artifact IS NULL"
					" AND reason = 'manual'"), 1);

	/* with a quota set while above it: gc brings usage to the low watermark,
	 * least recently read first */
	assert_int_equal(mfs_evict_set_quota(fx->s, 50000, 90, 50, &err), 0);
	assert_int_equal(mfs_evict_gc(fx->s, &freed, &err), 0);
	assert_true(usage(fx->s) <= 25000);
	assert_int_equal(resident_chunks(fx->s, &a), 0);
	assert_int_equal(resident_chunks(fx->s, &b), NCH / 2);
	assert_true(mfs_store_chunk_resident(fx->s, fresh));
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions WHERE reason = 'quota'"),
			 NCH + NCH / 2);
}

/* Several processes commit chunks under one quota at once: usage, sampled
 * all along by another process, never passes the quota, and the usage the
 * triggers keep equals the sum of the resident rows. */
static void test_quota_across_processes(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art p;
	make_artifact(fx->s, "p", 100, &p, NULL);
	assert_int_equal(mfs_evict_pin(fx->s, p.id, true, &err), 0);
	/* 10 pinned chunks, room for four big ones: each kid's check and its
	 * commit are a big write apart, so unchecked commits would pass it */
	enum { KIDS = 8, EACH = 12, BIG = 256 * 1024 };
	const uint64_t quota = ART + 4 * BIG;
	assert_int_equal(mfs_evict_set_quota(fx->s, quota, 99, 98, &err), 0);

	int go[2];
	assert_int_equal(pipe(go), 0);
	for (int k = 0; k < KIDS; k++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct mfs_store *s;
			struct mfs_err e = { 0 };
			char c;
			close(go[1]);
			if (mfs_store_open(fx->dir, &s, &e) || read(go[0], &c, 1) != 0)
				_exit(2); /* starts when the parent closes the pipe */
			int bad = 0;
			for (int i = 0; i < EACH; i++) {
				uint8_t dg[MFS_SHA256_LEN];
				int rc = put_chunk(s, 1000 + (unsigned)(k * EACH + i), BIG, dg, &e);
				bad |= rc != 0 && rc != -ENOSPC;
			}
			mfs_store_close(s);
			_exit(bad);
		}
	}
	close(go[0]);
	close(go[1]);
	uint64_t peak = 0;
	int left = KIDS;
	while (left) {
		uint64_t u = (uint64_t)sql_int(fx->s, "SELECT coalesce(sum(size), 0) FROM resident");
		if (u > peak)
			peak = u;
		int st;
		pid_t w = waitpid(-1, &st, WNOHANG);
		if (w > 0) {
			assert_true(WIFEXITED(st));
			assert_int_equal(WEXITSTATUS(st), 0);
			left--;
		}
	}
	assert_true(peak <= quota);
	assert_true(usage(fx->s) <= quota);
	assert_int_equal(resident_chunks(fx->s, &p), NCH);
	assert_int_equal(sql_int(fx->s, "SELECT value FROM meta WHERE key = 'resident_bytes'"),
			 sql_int(fx->s, "SELECT coalesce(sum(size), 0) FROM resident"));
}

/* Committing a chunk that is already resident costs no quota: with usage
 * exactly at the quota and everything pinned, it still succeeds. */
static void test_recommit_is_free(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a;
	make_artifact(fx->s, "a", 100, &a, NULL);
	assert_int_equal(mfs_evict_pin(fx->s, a.id, true, &err), 0);
	assert_int_equal(mfs_evict_set_quota(fx->s, ART, 99, 98, &err), 0);
	uint8_t dg[MFS_SHA256_LEN];
	assert_int_equal(put_chunk(fx->s, 100 + 3, CS, dg, &err), 0);
	assert_memory_equal(dg, a.dg[3], MFS_SHA256_LEN);
	assert_int_equal(usage(fx->s), ART);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM evictions"), 0);
	/* a new one does not fit: ENOSPC, kind QUOTA, nothing changed */
	assert_int_equal(put_chunk(fx->s, 999, CS, dg, &err), -ENOSPC);
	assert_int_equal(err.kind, MFS_ERR_QUOTA);
	assert_false(mfs_store_chunk_resident(fx->s, dg));
	assert_false(chunk_file_exists(fx->s, dg));
	assert_int_equal(usage(fx->s), ART);
}

static void remove_index(const char *dir)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (int i = 0; i < 3; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/index.db%s", dir, sfx[i]);
		unlink(p);
	}
}

/* A lost index comes back with the same row ids, the user's pin and the
 * quota: from a fresh open, and under a handle that had it open. */
static void test_index_lost(void **state)
{
	struct fixture *fx = *state;
	struct mfs_err err = { 0 };
	struct art a, b;
	make_artifact(fx->s, "a", 100, &a, NULL);
	make_artifact(fx->s, "b", 200, &b, NULL);
	assert_int_equal(mfs_evict_pin(fx->s, b.id, true, &err), 0);
	assert_int_equal(mfs_evict_set_quota(fx->s, 12345678, 80, 60, &err), 0);
	int64_t fa = sql_int(fx->s, "SELECT file_id FROM artifact_files ORDER BY file_id LIMIT 1");

	/* under the open handle: nothing to do until the file goes */
	bool reopened = true;
	assert_int_equal(mfs_store_recheck(fx->s, &reopened, &err), 0);
	assert_false(reopened);
	remove_index(fx->dir);
	assert_int_equal(mfs_store_recheck(fx->s, &reopened, &err), 0);
	assert_true(reopened);
	for (int round = 0; round < 2; round++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT pinned FROM artifacts WHERE id = %lld",
			 (long long)b.id);
		assert_int_equal(sql_int(fx->s, sql), 1);
		snprintf(sql, sizeof(sql), "SELECT pinned FROM artifacts WHERE id = %lld",
			 (long long)a.id);
		assert_int_equal(sql_int(fx->s, sql), 0);
		assert_int_equal(sql_int(fx->s, "SELECT file_id FROM artifact_files ORDER BY file_id"
						" LIMIT 1"), fa);
		struct mfs_quota q;
		assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
		assert_int_equal(q.bytes, 12345678);
		assert_int_equal(q.high_pct, 80);
		assert_int_equal(q.low_pct, 60);
		assert_int_equal(resident_chunks(fx->s, &a), NCH);
		assert_int_equal(usage(fx->s), 2 * ART);
		/* then from a fresh open, after unpinning a (kept as no pin) */
		mfs_store_close(fx->s);
		remove_index(fx->dir);
		assert_int_equal(mfs_store_open(fx->dir, &fx->s, &err), 0);
	}
	/* unpin survives a rebuild too */
	assert_int_equal(mfs_evict_pin(fx->s, b.id, false, &err), 0);
	mfs_store_close(fx->s);
	remove_index(fx->dir);
	assert_int_equal(mfs_store_open(fx->dir, &fx->s, &err), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts WHERE pinned != 0"), 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts"), 2);

	/* a garbled quota.json is ignored: no quota, nothing else lost */
	char qpath[PATH_MAX];
	snprintf(qpath, sizeof(qpath), "%s/quota.json", fx->dir);
	FILE *fp = fopen(qpath, "w");
	assert_non_null(fp);
	fputs("{\"quota_bytes\": \"lots\", \"quota_high_pct\": [", fp);
	fclose(fp);
	mfs_store_close(fx->s);
	remove_index(fx->dir);
	assert_int_equal(mfs_store_open(fx->dir, &fx->s, &err), 0);
	struct mfs_quota q;
	assert_int_equal(mfs_evict_get_quota(fx->s, &q), 0);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(sql_int(fx->s, "SELECT count(*) FROM artifacts"), 2);
	assert_int_equal(resident_chunks(fx->s, &a), NCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_quota_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_under_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_never_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_rm_refuse_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recommit_is_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_lost, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
