/*
 * evict.c - the cache quota and eviction (evict.h).
 *
 * The invariant this file owns: no chunk of an active artifact is ever
 * evicted. An artifact is active while any live process holds one of its
 * files open (a row in `pins`) or while the user pinned it
 * (artifacts.pinned). A chunk may be shared by several files and artifacts;
 * it is evictable only when none of the artifacts that use it is active.
 * That test is part of the very SQL statement that chooses the victims, run
 * inside the write transaction (BEGIN IMMEDIATE) that deletes their resident
 * rows, so a pin written by another process either commits before the
 * choice (and protects the chunk) or after the deletion (and the reader
 * fetches again). Rows of dead processes are cleared first, so a crashed
 * reader does not keep bytes forever.
 *
 * Order of an eviction, for crash safety: the resident row goes and the
 * evidence row (artifact, path, digest, bytes, time, reason) is written in
 * one transaction; the chunk file is unlinked after the commit, in a second
 * write transaction that first checks that no resident row names the chunk
 * again and that the file's inode is the one the row recorded. A commit
 * renames its file into chunks/ inside its own write transaction, so a chunk
 * committed again between the two keeps its new file. A crash in between
 * leaves an unindexed chunk file, which `gc` removes the same careful way
 * (or a later commit of the same digest renames over).
 *
 * Several processes may evict at once: deleting a resident row that another
 * evictor already deleted changes nothing and leaves no evidence twice.
 *
 * LRU is by resident.last_read (seconds; ties broken by insertion order).
 * Chunks no installed file uses go first, once they are a minute old (an
 * admission commits header chunks just before its rows).
 */
#include "evict.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "digest.h"
#include "log.h"
#include "pin.h"
#include "store.h"
#include "store_record.h"

#define BATCH 1024             /* victims per transaction */
#define ORPHAN_AGE 60          /* seconds before an unused chunk goes first */
#define GC_FILE_AGE 600        /* seconds: stale tmp/ files, unindexed chunks */
#define PARTIAL_AGE 86400      /* seconds: abandoned partial downloads */
#define MAKE_ROOM_MIN (UINT64_C(64) << 20) /* bytes freed at least when the disk is full */

/* Some artifact that uses chunk r.digest is active. */
#define ACTIVE_REF                                                                         \
	"EXISTS (SELECT 1 FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id"  \
	" JOIN artifacts a ON a.id = af.artifact_id WHERE c.digest = r.digest"             \
	" AND (a.pinned != 0 OR EXISTS (SELECT 1 FROM pins p WHERE p.artifact_id = a.id"   \
	" AND p.count > 0)))"

/* Quota eviction: not active, unused-and-old first, then least recently read. */
static const char sql_lru[] =
	"SELECT r.digest, r.size, r.ino FROM resident r WHERE NOT " ACTIVE_REF
	" ORDER BY (NOT EXISTS (SELECT 1 FROM chunks c WHERE c.digest = r.digest)"
	" AND r.last_read < ?2) DESC, r.last_read, r.rowid";

/* An artifact's chunks that no active artifact shares. */
static const char sql_artifact[] =
	"SELECT r.digest, r.size, r.ino FROM resident r WHERE r.digest IN"
	" (SELECT c.digest FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id"
	" WHERE af.artifact_id = ?1) AND NOT " ACTIVE_REF " ORDER BY r.last_read, r.rowid";

/* An artifact's chunks that no other artifact uses (rm). */
static const char sql_own[] =
	"SELECT r.digest, r.size, r.ino FROM resident r WHERE r.digest IN"
	" (SELECT c.digest FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id"
	" WHERE af.artifact_id = ?1) AND NOT EXISTS (SELECT 1 FROM chunks c JOIN"
	" artifact_files af ON af.file_id = c.file_id WHERE c.digest = r.digest"
	" AND af.artifact_id != ?1)";

/* Chunks no installed file uses, older than ?2 (gc). */
static const char sql_unused[] =
	"SELECT r.digest, r.size, r.ino FROM resident r WHERE NOT EXISTS"
	" (SELECT 1 FROM chunks c WHERE c.digest = r.digest) AND r.last_read < ?2";

struct victim {
	uint8_t digest[MFS_SHA256_LEN];
	uint64_t size;
	int64_t ino;           /* -1: no stamp recorded */
};

#define sql_err mfs_store_sql_err

static int exec_int(sqlite3 *db, const char *sql, int64_t v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, v);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int64_t query_int(sqlite3 *db, const char *sql, int64_t arg, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return dflt;
	sqlite3_bind_int64(st, 1, arg);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t meta_get(sqlite3 *db, const char *key, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return dflt;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int meta_set(sqlite3 *db, const char *key, int64_t v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES(?1, ?2)"
				   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Pins must be readable (table present) and free of dead processes before
 * any choice of victims. */
static int prepare_pins(struct mfs_store *s, struct mfs_err *err)
{
	int rc = mfs_pin_init(s, err);
	if (!rc)
		rc = mfs_pin_clear_dead(s, NULL, err);
	return rc;
}

/* --- the quota ----------------------------------------------------------- */

/* Resident bytes, kept by the store's triggers, and the ranges of
 * downloads being staged (reserved against the quota, docs/store.md). */
static uint64_t usage_locked(sqlite3 *db)
{
	int64_t v = meta_get(db, "resident_bytes", 0) +
		    query_int(db, "SELECT coalesce(sum(bytes), 0) FROM staged", 0, 0);
	return v > 0 ? (uint64_t)v : 0;
}

static void quota_locked(sqlite3 *db, struct mfs_quota *q)
{
	memset(q, 0, sizeof(*q));
	int64_t b = meta_get(db, "quota_bytes", 0);
	int64_t h = meta_get(db, "quota_high_pct", MFS_EVICT_HIGH_PCT);
	int64_t l = meta_get(db, "quota_low_pct", MFS_EVICT_LOW_PCT);
	q->bytes = b > 0 ? (uint64_t)b : 0;
	q->high_pct = h > 0 && h <= 100 ? (unsigned)h : MFS_EVICT_HIGH_PCT;
	q->low_pct = l > 0 && l < (int64_t)q->high_pct ? (unsigned)l : q->high_pct * 7 / 9;
	q->high = q->bytes / 100 * q->high_pct + q->bytes % 100 * q->high_pct / 100;
	q->low = q->bytes / 100 * q->low_pct + q->bytes % 100 * q->low_pct / 100;
	q->usage = usage_locked(db);
}

/* The quota alone, without the usage scan (the commit path with no quota). */
static uint64_t quota_bytes_locked(sqlite3 *db)
{
	int64_t b = meta_get(db, "quota_bytes", 0);
	return b > 0 ? (uint64_t)b : 0;
}

uint64_t mfs_evict_quota_bytes(struct mfs_store *s)
{
	uint64_t b = quota_bytes_locked(mfs_store_lock(s));
	mfs_store_unlock(s);
	return b;
}

int mfs_evict_get_quota(struct mfs_store *s, struct mfs_quota *out)
{
	sqlite3 *db = mfs_store_lock(s);
	quota_locked(db, out);
	/* Without the pins table nothing is held open. */
	out->active = (uint64_t)query_int(db, "SELECT coalesce(sum(r.size), 0) FROM resident r"
					      " WHERE " ACTIVE_REF, 0, -1);
	if (out->active == (uint64_t)-1)
		out->active = (uint64_t)query_int(
			db, "SELECT coalesce(sum(r.size), 0) FROM resident r WHERE EXISTS (SELECT 1"
			    " FROM chunks c JOIN artifact_files af ON af.file_id = c.file_id"
			    " JOIN artifacts a ON a.id = af.artifact_id WHERE c.digest = r.digest"
			    " AND a.pinned != 0)", 0, 0);
	mfs_store_unlock(s);
	return 0;
}

int mfs_evict_set_quota(struct mfs_store *s, uint64_t bytes, unsigned high_pct,
			unsigned low_pct, struct mfs_err *err)
{
	if (bytes > (uint64_t)INT64_MAX)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "quota %llu is too large",
			       (unsigned long long)bytes);
	sqlite3 *db = mfs_store_lock(s);
	struct mfs_quota q;
	quota_locked(db, &q);
	unsigned h = high_pct ? high_pct : q.high_pct;
	unsigned l = low_pct ? low_pct : q.low_pct;
	if (high_pct && !low_pct && l >= h)
		l = h * 7 / 9; /* keep the default spacing when only high moves below low */
	int rc = 0;
	if (h > 100 || l == 0 || l >= h) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "watermarks low %u%% and high %u%% must satisfy 0 < low < high <= 100",
			     l, h);
	} else if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot set the quota");
	} else if (meta_set(db, "quota_bytes", (int64_t)bytes) ||
		   meta_set(db, "quota_high_pct", h) || meta_set(db, "quota_low_pct", l) ||
		   sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot set the quota");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	mfs_store_unlock(s);
	if (!rc) {
		/* Kept beside the records, so a rebuilt index has it too. */
		char text[160];
		int n = snprintf(text, sizeof(text),
				 "{\"quota_bytes\": %llu, \"quota_high_pct\": %u, \"quota_low_pct\": %u}\n",
				 (unsigned long long)bytes, h, l);
		struct mfs_err e = { 0 };
		if (mfs_store_write_file(s, ".", "quota.json", text, (size_t)n, &e))
			mfs_log_warning("the quota is set but not saved beside the index: %s", e.msg);
	}
	return rc;
}

/* --- one eviction transaction -------------------------------------------- */

/* Collects victims chosen by sql (?1 = arg, ?2 = orphan age limit) until
 * their sizes reach want. Locked, in the transaction. */
static int collect(sqlite3 *db, const char *sql, int64_t arg, int64_t now, uint64_t want,
		   struct victim **out, size_t *n)
{
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, arg);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, now - ORPHAN_AGE);
	struct victim *v = malloc(BATCH * sizeof(*v));
	uint64_t sum = 0;
	int rc = 0;
	while (v && *n < BATCH && sum < want && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != MFS_SHA256_LEN)
			continue;
		struct victim *x = &v[(*n)++];
		memcpy(x->digest, sqlite3_column_blob(st, 0), MFS_SHA256_LEN);
		x->size = (uint64_t)sqlite3_column_int64(st, 1);
		x->ino = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
		sum += x->size;
	}
	sqlite3_finalize(st);
	if (!v || (rc != SQLITE_ROW && rc != SQLITE_DONE && rc != 0)) {
		free(v);
		*n = 0;
		return -1;
	}
	*out = v;
	return 0;
}

/* What a transaction must check first and do last, besides evicting. */
struct evict_job {
	const char *sql;          /* chooses victims */
	int64_t arg;              /* ?1 */
	uint64_t want;            /* bytes to free; UINT64_MAX: every candidate */
	const char *reason;
	int64_t busy_check;       /* > 0: refuse (-EBUSY) if this artifact is active */
	int (*extra)(sqlite3 *db, int64_t arg, struct mfs_err *err); /* before COMMIT */
	const char *aside_from, *aside_to; /* renamed after extra, before COMMIT,
					    * put back if the commit fails */
};

/* Fails with -EBUSY (kind BUSY) or -ENOENT if artifact id is active or gone.
 * Locked, in the transaction, pins cleared of dead processes. */
static int check_idle(sqlite3 *db, int64_t id, struct mfs_err *err)
{
	sqlite3_stmt *st;
	char ref[1024] = "";
	int pinned = 0;
	if (sqlite3_prepare_v2(db, "SELECT canonical_ref, pinned FROM artifacts WHERE id = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return sql_err(err, db, "cannot read the artifact");
	sqlite3_bind_int64(st, 1, id);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	if (found) {
		snprintf(ref, sizeof(ref), "%s", (const char *)sqlite3_column_text(st, 0));
		pinned = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (!found)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "artifact %lld is not installed",
			       (long long)id);
	char pids[256] = "";
	size_t len = 0;
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT pid FROM pins WHERE artifact_id = ? AND count > 0"
				   " ORDER BY pid", -1, &st, NULL) != SQLITE_OK)
		return sql_err(err, db, "cannot read the pins");
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW && len < sizeof(pids) - 16) {
		int n = snprintf(pids + len, sizeof(pids) - len, "%s%lld", len ? ", " : "",
				 (long long)sqlite3_column_int64(st, 0));
		if (n > 0)
			len += (size_t)n;
	}
	sqlite3_finalize(st);
	if (pinned && len)
		return MFS_ERR(err, -EBUSY, MFS_ERR_BUSY,
			       "'%s' is open (pid %s) and pinned; close it and 'modelfs unpin' it first",
			       ref, pids);
	if (len)
		return MFS_ERR(err, -EBUSY, MFS_ERR_BUSY, "'%s' is open (pid %s); close it first",
			       ref, pids);
	if (pinned)
		return MFS_ERR(err, -EBUSY, MFS_ERR_BUSY, "'%s' is pinned; 'modelfs unpin' it first",
			       ref);
	return 0;
}

/* Removes the chunk files of victims that no resident row names, each only
 * if its inode is still the one recorded (v->ino; -1: any). The check and
 * the unlink happen under the write lock: a commit renames its file into
 * chunks/ inside its own write transaction, so a chunk committed again
 * meanwhile keeps its new file. Without the lock (another process held it
 * past the timeout) nothing is removed; gc finds the files later. Returns
 * the bytes removed. */
static uint64_t unlink_unindexed(struct mfs_store *s, const struct victim *v, size_t n)
{
	uint64_t freed = 0;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		mfs_store_unlock(s);
		return 0;
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM resident WHERE digest = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_blob(st, 1, v[i].digest, MFS_SHA256_LEN, SQLITE_STATIC);
		bool indexed = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_reset(st);
		char path[PATH_MAX];
		struct stat sb;
		mfs_store_chunk_path(s, v[i].digest, path, sizeof(path));
		if (indexed || lstat(path, &sb) || (v[i].ino >= 0 && (int64_t)sb.st_ino != v[i].ino))
			continue;
		if (unlink(path) == 0)
			freed += (uint64_t)sb.st_size;
		else if (errno != ENOENT)
			mfs_log_warning("cannot remove chunk file '%s': %s", path, strerror(errno));
	}
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* wrote nothing */
	mfs_store_unlock(s);
	return freed;
}

/* One transaction: check, choose, delete rows, leave evidence, extra; then
 * the files. *freed and *count add what was evicted. */
static int evict_once(struct mfs_store *s, const struct evict_job *job, uint64_t *freed,
		      size_t *count, struct mfs_err *err)
{
	struct victim *v = NULL;
	size_t n = 0, done = 0;
	uint64_t bytes = 0;
	int64_t now = (int64_t)time(NULL);
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot begin an eviction");
		mfs_store_unlock(s);
		return rc;
	}
	if (job->busy_check > 0)
		rc = check_idle(db, job->busy_check, err);
	if (!rc && collect(db, job->sql, job->arg, now, job->want, &v, &n))
		rc = sql_err(err, db, "cannot choose chunks to evict");
	sqlite3_stmt *del = NULL;
	if (!rc && n && sqlite3_prepare_v2(db, "DELETE FROM resident WHERE digest = ?", -1, &del,
					   NULL) != SQLITE_OK)
		rc = sql_err(err, db, "cannot evict");
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_bind_blob(del, 1, v[i].digest, MFS_SHA256_LEN, SQLITE_STATIC);
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = sql_err(err, db, "cannot evict");
			break;
		}
		sqlite3_reset(del);
		if (sqlite3_changes(db) == 0)
			continue; /* evicted by another process meanwhile */
		if (mfs_store_record_eviction_locked(db, v[i].digest, v[i].size, now, job->reason)) {
			rc = sql_err(err, db, "cannot record an eviction");
			break;
		}
		v[done++] = v[i];
		bytes += v[i].size;
	}
	sqlite3_finalize(del);
	if (!rc && done) {
		mfs_store_count_locked(db, "evicted_bytes", (int64_t)bytes);
		mfs_store_count_locked(db, "evicted_chunks", (int64_t)done);
	}
	if (!rc && job->extra)
		rc = job->extra(db, job->arg, err);
	bool aside = false;
	if (!rc && job->aside_from && rename(job->aside_from, job->aside_to) == 0)
		aside = true;
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sql_err(err, db, "cannot commit an eviction");
	if (rc) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (aside)
			rename(job->aside_to, job->aside_from);
	}
	mfs_store_unlock(s);
	if (!rc) {
		unlink_unindexed(s, v, done);
		if (freed)
			*freed += bytes;
		if (count)
			*count += n; /* candidates seen, so callers know when to stop */
	}
	free(v);
	return rc;
}

/* Evicts LRU chunks of inactive artifacts until usage <= target. */
static int evict_down_to(struct mfs_store *s, uint64_t target, const char *reason,
			 uint64_t *freed, struct mfs_err *err)
{
	for (;;) {
		sqlite3 *db = mfs_store_lock(s);
		uint64_t usage = usage_locked(db);
		mfs_store_unlock(s);
		if (usage <= target)
			return 0;
		struct evict_job job = { .sql = sql_lru, .want = usage - target, .reason = reason };
		size_t seen = 0;
		int rc = evict_once(s, &job, freed, &seen, err);
		if (rc || !seen)
			return rc;
	}
}

/* A size for messages: "512 KiB", "3.5 MiB", "1.2 GiB". */
static const char *human(uint64_t b, char *buf, size_t cap)
{
	if (b < (UINT64_C(1) << 20))
		snprintf(buf, cap, "%llu KiB", (unsigned long long)((b + 1023) >> 10));
	else if (b < (UINT64_C(1) << 30))
		snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
	else
		snprintf(buf, cap, "%.1f GiB", (double)b / (1 << 30));
	return buf;
}

/* The watermarks at work: if a quota is set and usage + len is above the
 * high watermark, evicts until usage + len is at the low one (or nothing
 * evictable is left). *q gets the quota as read first (bytes 0: none). */
static int evict_for(struct mfs_store *s, uint64_t len, struct mfs_quota *q,
		     struct mfs_err *err)
{
	memset(q, 0, sizeof(*q));
	sqlite3 *db = mfs_store_lock(s);
	if (quota_bytes_locked(db))
		quota_locked(db, q);
	mfs_store_unlock(s);
	if (!q->bytes || q->usage + len <= q->high)
		return 0;
	/* Downloads stopped half way hold bytes nobody can use: first. */
	if (mfs_store_stage_drop_orphans(s, NULL)) {
		db = mfs_store_lock(s);
		q->usage = usage_locked(db);
		mfs_store_unlock(s);
		if (q->usage + len <= q->high)
			return 0;
	}
	uint64_t freed = 0;
	int rc = prepare_pins(s, err);
	if (!rc)
		rc = evict_down_to(s, q->low > len ? q->low - len : 0, "quota", &freed, err);
	char h[32];
	if (freed)
		mfs_log_info("cache over its high watermark: evicted %s", human(freed, h, sizeof(h)));
	return rc;
}

int mfs_evict_enforce(struct mfs_store *s, struct mfs_err *err)
{
	struct mfs_quota q;
	return evict_for(s, 0, &q, err);
}

int mfs_evict_reserve(struct mfs_store *s, uint64_t len, struct mfs_err *err)
{
	struct mfs_quota q;
	struct mfs_err e = { 0 };
	int rc = evict_for(s, len, &q, &e);
	/* Staged ranges of stopped downloads go before a full quota is
	 * reported (evict_for dropped them first if it had to evict). */
	if (!q.bytes || q.usage + len <= q.high)
		return 0;
	if (rc)
		mfs_log_warning("eviction failed: %s", e.msg);
	if (mfs_evict_get_quota(s, &q))
		return MFS_ERR(err, -EIO, MFS_ERR_SQLITE, "cannot read the cache usage");
	if (q.usage + len <= q.bytes)
		return 0;
	char h1[32], h2[32], h3[32], h4[32];
	rc = MFS_ERR(&e, -ENOSPC, MFS_ERR_QUOTA,
		     "cache quota of %s is full: %s are held by open or pinned artifacts"
		     " (%s used, %s more needed); raise the quota ('modelfs gc --quota SIZE')"
		     " or close or 'modelfs unpin' something",
		     human(q.bytes, h1, 32), human(q.active, h2, 32), human(q.usage, h3, 32),
		     human(len, h4, 32));
	mfs_log_warning("%s", e.msg);
	if (err)
		*err = e;
	return -ENOSPC;
}

int mfs_evict_make_room(struct mfs_store *s, uint64_t len, struct mfs_err *err)
{
	uint64_t want = len * 8 > MAKE_ROOM_MIN ? len * 8 : MAKE_ROOM_MIN, freed = 0;
	int rc = prepare_pins(s, err);
	while (!rc && freed < want) {
		struct evict_job job = { .sql = sql_lru, .want = want - freed,
					 .reason = "disk full" };
		size_t seen = 0;
		rc = evict_once(s, &job, &freed, &seen, err);
		if (!seen)
			break;
	}
	char h[32];
	if (freed)
		mfs_log_notice("the store's filesystem is full: evicted %s of chunks no one is using",
			       human(freed, h, sizeof(h)));
	if (!rc && !freed)
		rc = MFS_ERR(err, -ENOSPC, MFS_ERR_IO,
			     "the store's filesystem is full and every cached chunk is in use");
	return rc;
}

/* --- commands ------------------------------------------------------------ */

int mfs_evict_artifact(struct mfs_store *s, int64_t artifact_id, const char *reason,
		       uint64_t *bytes, struct mfs_err *err)
{
	int rc = prepare_pins(s, err);
	uint64_t freed = 0;
	if (rc)
		return rc;
	for (;;) {
		struct evict_job job = { .sql = sql_artifact, .arg = artifact_id, .want = UINT64_MAX,
					 .reason = reason ? reason : "manual",
					 .busy_check = artifact_id };
		size_t seen = 0;
		rc = evict_once(s, &job, &freed, &seen, err);
		if (rc || seen < BATCH)
			break;
	}
	if (bytes)
		*bytes = freed;
	return rc;
}

/* The rows of an uninstalled artifact: its files that no other artifact
 * holds (with their chunk digests), its revision names that no other
 * artifact of the same commit uses, the artifact; then the generation. */
static int delete_rows(sqlite3 *db, int64_t id, struct mfs_err *err)
{
	static const char *const sql[] = {
		"DELETE FROM chunks WHERE file_id IN (SELECT file_id FROM artifact_files"
		" WHERE artifact_id = ?1 AND file_id NOT IN"
		" (SELECT file_id FROM artifact_files WHERE artifact_id != ?1))",
		"DELETE FROM files WHERE id IN (SELECT file_id FROM artifact_files"
		" WHERE artifact_id = ?1 AND file_id NOT IN"
		" (SELECT file_id FROM artifact_files WHERE artifact_id != ?1))",
		"DELETE FROM artifact_files WHERE artifact_id = ?1",
		"DELETE FROM refs WHERE EXISTS (SELECT 1 FROM artifacts a WHERE a.id = ?1"
		" AND a.endpoint = refs.endpoint AND a.org = refs.org AND a.name = refs.name"
		" AND a.commit_id = refs.commit_id) AND NOT EXISTS (SELECT 1 FROM artifacts b"
		" WHERE b.id != ?1 AND b.endpoint = refs.endpoint AND b.org = refs.org"
		" AND b.name = refs.name AND b.commit_id = refs.commit_id)",
		"DELETE FROM pins WHERE artifact_id = ?1",
		"DELETE FROM artifacts WHERE id = ?1",
		"UPDATE meta SET value = value + 1 WHERE key = 'generation'",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (exec_int(db, sql[i], id))
			return sql_err(err, db, "cannot remove the artifact's rows");
	return 0;
}

int mfs_evict_remove(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err)
{
	int rc = prepare_pins(s, err);
	if (rc)
		return rc;
	char record[PATH_MAX] = "";
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT record FROM artifacts WHERE id = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, artifact_id);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			snprintf(record, sizeof(record), "%s/records/%s", mfs_store_dir(s),
				 (const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	/* Evict in batches, each refusing an artifact that became active
	 * meanwhile; the last transaction also deletes the rows. */
	struct evict_job job = { .sql = sql_own, .arg = artifact_id, .want = UINT64_MAX,
				 .reason = "manual", .busy_check = artifact_id };
	for (;;) {
		size_t seen = 0;
		rc = evict_once(s, &job, NULL, &seen, err);
		if (rc || seen < BATCH)
			break;
	}
	if (rc)
		return rc;
	/* The record goes aside inside the transaction that deletes the rows,
	 * so no moment leaves a record without rows that a rebuild would
	 * install again; a crash before the commit leaves the rows and an
	 * aside record, which the next open of the store puts back (under the
	 * write lock, so never while this transaction is open). */
	char aside[PATH_MAX + 16] = "";
	if (record[0]) {
		snprintf(aside, sizeof(aside), "%s" MFS_RECORD_ASIDE, record);
		job.aside_from = record;
		job.aside_to = aside;
	}
	job.extra = delete_rows;
	rc = evict_once(s, &job, NULL, NULL, err);
	if (rc)
		return rc;
	if (aside[0] && unlink(aside) && errno != ENOENT)
		mfs_log_warning("cannot remove the record '%s': %s", aside, strerror(errno));
	return 0;
}

int mfs_evict_pin(struct mfs_store *s, int64_t artifact_id, bool pinned, struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	int rc = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "UPDATE artifacts SET pinned = ?2 WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot set the pin");
	} else {
		sqlite3_bind_int64(st, 1, artifact_id);
		sqlite3_bind_int(st, 2, pinned ? 1 : 0);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sql_err(err, db, "cannot set the pin");
		else if (sqlite3_changes(db) == 0)
			rc = MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "artifact %lld is not installed",
				     (long long)artifact_id);
		sqlite3_finalize(st);
	}
	/* The pin is also a file beside the artifact's record, so a rebuilt
	 * index has it too. */
	char path[PATH_MAX] = "";
	if (!rc && sqlite3_prepare_v2(db, "SELECT record FROM artifacts WHERE id = ?", -1, &st,
				      NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, artifact_id);
		const char *rec = sqlite3_step(st) == SQLITE_ROW
					  ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (rec && strlen(rec) == 69)
			snprintf(path, sizeof(path), "%s/records/%.64s.pinned", mfs_store_dir(s), rec);
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	if (*path) {
		int fd = pinned ? open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
		if (fd >= 0)
			close(fd);
		else if (pinned || (unlink(path) && errno != ENOENT))
			mfs_log_warning("the pin is set but not saved beside the record '%s': %s",
					path, strerror(errno));
	}
	return rc;
}

/* --- gc ------------------------------------------------------------------ */

/* Removes regular files directly under dir last modified more than
 * age seconds. */
static uint64_t sweep_dir(const char *dir, time_t age)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	time_t now = time(NULL);
	uint64_t freed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		time_t t = st.st_mtime;
		if (now - t <= age)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			freed += (uint64_t)st.st_size;
	}
	closedir(d);
	return freed;
}

/* Hub downloads staged under partial/<key>/ (hub_stage.h) whose directory
 * has not changed for PARTIAL_AGE: the files in it, then the directory. */
static uint64_t sweep_stagings(struct mfs_store *s, const char *partial)
{
	DIR *d = opendir(partial);
	if (!d)
		return 0;
	uint64_t freed = 0;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		char sub[PATH_MAX];
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) ||
		    now - st.st_mtime <= PARTIAL_AGE ||
		    snprintf(sub, sizeof(sub), "%s/%s", partial, de->d_name) >= (int)sizeof(sub))
			continue;
		freed += sweep_dir(sub, -1);
		rmdir(sub);
		mfs_store_stage_release(s, de->d_name); /* its reservations with it */
	}
	closedir(d);
	return freed;
}

/* Chunk files of one chunks/xx directory that no resident row names, last
 * modified more than GC_FILE_AGE ago (a commit writes its file just before
 * the rename and the row), removed in batches under the write lock. */
static uint64_t sweep_chunks(struct mfs_store *s, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct victim *v = malloc(BATCH * sizeof(*v));
	size_t n = 0;
	uint64_t freed = 0;
	time_t now = time(NULL);
	struct dirent *de;
	while (v && (de = readdir(d))) {
		struct stat st;
		struct victim *x = &v[n];
		if (strlen(de->d_name) != 2 * MFS_SHA256_LEN ||
		    mfs_hex_decode(de->d_name, x->digest, sizeof(x->digest)) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
		    now - st.st_mtime <= GC_FILE_AGE || mfs_store_chunk_resident(s, x->digest))
			continue;
		x->ino = (int64_t)st.st_ino;
		x->size = (uint64_t)st.st_size;
		if (++n == BATCH) {
			freed += unlink_unindexed(s, v, n);
			n = 0;
		}
	}
	if (n)
		freed += unlink_unindexed(s, v, n);
	free(v);
	closedir(d);
	return freed;
}

int mfs_evict_gc(struct mfs_store *s, uint64_t *bytes, struct mfs_err *err)
{
	uint64_t freed = 0;
	int rc = prepare_pins(s, err);
	struct mfs_quota q;
	if (!rc && !(rc = mfs_evict_get_quota(s, &q)) && q.bytes && q.usage > q.low)
		rc = evict_down_to(s, q.low, "quota", &freed, err);
	/* Resident chunks that no installed file uses any more. */
	while (!rc) {
		struct evict_job job = { .sql = sql_unused, .arg = 0, .want = UINT64_MAX,
					 .reason = "manual" };
		size_t seen = 0;
		rc = evict_once(s, &job, &freed, &seen, err);
		if (seen < BATCH)
			break;
	}
	if (rc)
		return rc;
	char path[PATH_MAX];
	/* Chunk files without a row: left by a crash between rename and index. */
	snprintf(path, sizeof(path), "%s/chunks", mfs_store_dir(s));
	DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) < (int)sizeof(sub))
			freed += sweep_chunks(s, sub);
	}
	if (d)
		closedir(d);
	snprintf(path, sizeof(path), "%s/tmp", mfs_store_dir(s));
	freed += sweep_dir(path, GC_FILE_AGE);
	snprintf(path, sizeof(path), "%s/partial", mfs_store_dir(s));
	freed += sweep_dir(path, PARTIAL_AGE);
	freed += sweep_stagings(s, path);
	if (bytes)
		*bytes = freed;
	return 0;
}
