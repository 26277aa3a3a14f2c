/*
 * store_record.c - admission records and the admitting transaction; the
 * index rebuild that replays them.
 *
 * The record file is written before the transaction. A crash between the
 * two leaves a record with no rows: the artifact is not visible, and the
 * next rebuild (or the next add of the same ref) makes it whole again,
 * since the record holds only verified facts.
 */
#include "store_record.h"

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
#include "rollback.h"
#include "store.h"

#define RECORD_MAX (256u << 20)

int mfs_store_write_file(struct mfs_store *s, const char *sub, const char *name,
			 const void *data, size_t len, struct mfs_err *err)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	if (snprintf(final, sizeof(final), "%s/%s/%s", mfs_store_dir(s), sub, name) >=
		    (int)sizeof(final) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.XXXXXX", mfs_store_dir(s), name) >= (int)sizeof(tmp))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_IO, "store path too long");
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	int rc = 0;
	while (left && !rc) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			p += n, left -= (size_t)n;
	}
	if (!rc && fsync(fd))
		rc = -errno;
	fchmod(fd, mfs_store_file_mode(s));
	close(fd);
	if (!rc && rename(tmp, final))
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot write '%s': %s", final, strerror(-rc));
	}
	return 0;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

#define sql_fail mfs_store_sql_err

/* Validates the shape of a record: every field the index needs, typed. */
static int check_record(json_t *r, struct mfs_err *err)
{
	static const char *const strs[] = { "canonical_ref", "endpoint", "org", "name", "commit",
					    "primary", "distribution_id", "identity", "format",
					    "trust" };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!jstr(r, strs[i]))
			return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "record lacks '%s'", strs[i]);
	json_t *files = json_object_get(r, "files");
	if (!json_is_array(files) || !json_array_size(files))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "record has no files");
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		json_t *chunks = json_object_get(f, "chunks");
		json_int_t size = json_integer_value(json_object_get(f, "size"));
		json_int_t cs = json_integer_value(json_object_get(f, "chunk_size"));
		if (!jstr(f, "path") || !jstr(f, "sha256") || size < 0 || cs <= 0 ||
		    (cs & (cs - 1)) || !json_is_array(chunks) ||
		    json_array_size(chunks) != (size_t)((size + cs - 1) / cs))
			return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "record file %zu is malformed", i);
		size_t k;
		json_t *c;
		json_array_foreach(chunks, k, c)
			if (!json_string_value(c) || !mfs_is_hex(json_string_value(c), 64))
				return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
					       "record file '%s' has a bad chunk digest", jstr(f, "path"));
	}
	return 0;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* How a message names a root: "key K (manifest sequence N)" or "hub
 * checksums". */
static void describe_root(const char *trust, int64_t seq, char *buf, size_t cap)
{
	if (!trust || !strcmp(trust, "hub"))
		snprintf(buf, cap, "hub checksums");
	else if (seq > 0)
		snprintf(buf, cap, "key %s (manifest sequence %lld)", trust, (long long)seq);
	else
		snprintf(buf, cap, "key %s", trust);
}

/* The identity rule of docs/trust.md: a commit id is whatever the server
 * claims, so two admissions under one commit id may carry different claims.
 * An artifact already installed must come again from the same root (the
 * same key and manifest, or hub checksums again), and every path already
 * installed must keep its bytes (size and SHA-256), whichever root offers
 * it; otherwise the admission is refused as a whole. Locked, inside the
 * admitting transaction, so it holds against other processes. */
static int check_binding_locked(sqlite3 *db, json_t *r, struct mfs_err *err)
{
	const char *org = jstr(r, "org"), *name = jstr(r, "name"), *commit = jstr(r, "commit");
	const char *trust = jstr(r, "trust"), *msha = jstr(r, "manifest_sha256");
	int64_t seq = json_integer_value(json_object_get(r, "sequence"));
	char mine[96], theirs[96];
	describe_root(trust, seq, mine, sizeof(mine));
	sqlite3_stmt *st;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "SELECT trust, manifest_sha256, coalesce(sequence, 0)"
				   " FROM artifacts WHERE canonical_ref = ?", -1, &st, NULL) != SQLITE_OK)
		return sql_fail(err, db, "cannot check the installed artifact");
	sqlite3_bind_text(st, 1, jstr(r, "canonical_ref"), -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		const char *m = (const char *)sqlite3_column_text(st, 1);
		if (!t || strcmp(t, trust) || !m != !msha || (m && strcmp(m, msha))) {
			describe_root(t, sqlite3_column_int64(st, 2), theirs, sizeof(theirs));
			rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
				     "'%s' is installed from %s; the repository now offers the same "
				     "commit from %s: one commit id with other claims is refused, "
				     "nothing was admitted ('modelfs rm' it first to replace it)",
				     jstr(r, "canonical_ref"), theirs, mine);
		}
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(db, "SELECT size, sha256, trust FROM files WHERE org = ? AND name = ?"
				   " AND commit_id = ? AND path = ?", -1, &st, NULL) != SQLITE_OK)
		return sql_fail(err, db, "cannot check the installed files");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(r, "files"), i, v) {
		const char *path = jstr(v, "path"), *sha = jstr(v, "sha256");
		json_int_t size = json_integer_value(json_object_get(v, "size"));
		sqlite3_bind_text(st, 1, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, commit, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *have = (const char *)sqlite3_column_text(st, 1);
			if (sqlite3_column_int64(st, 0) != size || !have || strcmp(have, sha)) {
				describe_root((const char *)sqlite3_column_text(st, 2), 0, theirs,
					      sizeof(theirs));
				rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
					     "'%s/%s@%s/%s' serves %lld bytes with SHA-256 %.16s... "
					     "admitted from %s; %s lists %lld bytes with SHA-256 "
					     "%.16s... for the same path: refused, nothing was admitted "
					     "('modelfs rm' what holds it first to replace it)", org, name,
					     commit, path, (long long)sqlite3_column_int64(st, 0),
					     have ? have : "", theirs, mine, (long long)size, sha);
			}
		}
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Raises the rollback state (rollback.h) for the moving revision names the
 * new record was admitted by. The state is raised inside the admitting
 * transaction, before it commits: a commit that fails afterwards leaves the
 * state raised for a genuine manifest that is not installed, which only
 * refuses older ones, never admits one. */
static int advance_rollback(struct mfs_store *s, json_t *r, struct mfs_err *err)
{
	const char *trust = jstr(r, "trust");
	json_int_t seq = json_integer_value(json_object_get(r, "sequence"));
	if (seq <= 0 || !trust || !strcmp(trust, "hub"))
		return 0;
	char repo[512];
	if (snprintf(repo, sizeof(repo), "%s/%s", jstr(r, "org"), jstr(r, "name")) >=
	    (int)sizeof(repo))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "repo name too long");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(r, "revisions"), i, v) {
		const char *rev = json_string_value(v);
		if (!rev || !mfs_rollback_is_moving(rev))
			continue;
		int rc = mfs_rollback_advance(mfs_store_dir(s), repo, trust, rev, (uint64_t)seq,
					      jstr(r, "commit"), err);
		if (rc)
			return rc;
	}
	return 0;
}

/* Inserts every row of a record. Called inside a transaction, with the lock. */
/* The row id of an artifact or file, derived from what names it, so an index
 * rebuilt from the records gives every row the id it had: a mount that
 * outlives its index keeps valid ids. 62 bits of SHA-256, never 0. */
static int64_t stable_id(const char *a, const char *b, const char *c, const char *d)
{
	struct mfs_sha256 h;
	uint8_t dg[MFS_SHA256_LEN];
	const char *parts[] = { a, b, c, d };
	if (mfs_sha256_init(&h))
		return 0; /* let SQLite choose */
	for (size_t i = 0; i < 4; i++)
		if (parts[i])
			mfs_sha256_update(&h, parts[i], strlen(parts[i]) + 1);
	mfs_sha256_final(&h, dg);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | dg[i];
	v >>= 2;
	return v ? (int64_t)v : 1;
}

static int insert_record(sqlite3 *db, json_t *r, const char *record_name, bool check_binding,
			 int64_t *artifact_id, struct mfs_err *err)
{
	const char *endpoint = jstr(r, "endpoint"), *org = jstr(r, "org"), *name = jstr(r, "name");
	const char *commit = jstr(r, "commit");
	json_int_t seq = json_integer_value(json_object_get(r, "sequence"));
	json_t *revs = json_object_get(r, "revisions");
	size_t i;
	json_t *v;

	/* A path serves the bytes of the root that first admitted it: a later
	 * admission under the same commit id must agree (docs/trust.md). */
	if (check_binding) {
		int brc = check_binding_locked(db, r, err);
		if (brc)
			return brc;
	}

	sqlite3_stmt *st = NULL, *fst = NULL, *cst = NULL, *ast = NULL;
	int rc = 0;
	char *meta = json_dumps(json_object_get(r, "meta") ? json_object_get(r, "meta")
							   : json_object(), JSON_COMPACT);
	if (sqlite3_prepare_v2(db, "INSERT INTO artifacts(canonical_ref, endpoint, org, name, commit_id,"
				   " revision, primary_path, distribution_id, identity, format, trust,"
				   " manifest_sha256, sequence, meta_json, record, added_at, id)"
				   " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,nullif(?,0))"
				   " ON CONFLICT(canonical_ref) DO UPDATE SET record = excluded.record",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot prepare artifact insert");
		goto out;
	}
	sqlite3_bind_text(st, 1, jstr(r, "canonical_ref"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, endpoint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, org, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, commit, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, json_string_value(json_array_get(revs, 0)), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, jstr(r, "primary"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, jstr(r, "distribution_id"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, jstr(r, "identity"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, jstr(r, "format"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, jstr(r, "trust"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, jstr(r, "manifest_sha256"), -1, SQLITE_STATIC);
	if (seq > 0)
		sqlite3_bind_int64(st, 13, seq);
	sqlite3_bind_text(st, 14, meta, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 15, record_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, json_integer_value(json_object_get(r, "added_at")));
	sqlite3_bind_int64(st, 17, stable_id("artifact", jstr(r, "canonical_ref"), NULL, NULL));
	if (step_done(st)) {
		rc = sql_fail(err, db, "cannot insert artifact");
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT id FROM artifacts WHERE canonical_ref = ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		rc = sql_fail(err, db, "cannot find artifact");
		goto out;
	}
	sqlite3_bind_text(st, 1, jstr(r, "canonical_ref"), -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = sql_fail(err, db, "cannot find artifact");
		goto out;
	}
	int64_t aid = sqlite3_column_int64(st, 0);

	/* A hub-checksum file's chunk digests were taken from bytes whose
	 * whole-file SHA-256 had just matched: it is verified from the start. */
	if (sqlite3_prepare_v2(db, "INSERT INTO files(endpoint, org, name, commit_id, path, size, sha256,"
				   " chunk_size, n_chunks, trust, id, verified)"
				   " VALUES(?,?,?,?,?,?,?,?,?,?,nullif(?,0),?10 = 'hub')"
				   " ON CONFLICT(org, name, commit_id, path) DO UPDATE SET size = size"
				   " RETURNING id", -1, &fst, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO chunks(file_id, idx, digest) VALUES(?,?,?)",
			       -1, &cst, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO artifact_files(artifact_id, file_id)"
				   " VALUES(?,?)", -1, &ast, NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot prepare file insert");
		goto out;
	}
	json_array_foreach(json_object_get(r, "files"), i, v) {
		json_t *chunks = json_object_get(v, "chunks");
		sqlite3_bind_text(fst, 1, endpoint, -1, SQLITE_STATIC);
		sqlite3_bind_text(fst, 2, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(fst, 3, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(fst, 4, commit, -1, SQLITE_STATIC);
		sqlite3_bind_text(fst, 5, jstr(v, "path"), -1, SQLITE_STATIC);
		sqlite3_bind_int64(fst, 6, json_integer_value(json_object_get(v, "size")));
		sqlite3_bind_text(fst, 7, jstr(v, "sha256"), -1, SQLITE_STATIC);
		sqlite3_bind_int64(fst, 8, json_integer_value(json_object_get(v, "chunk_size")));
		sqlite3_bind_int64(fst, 9, (int64_t)json_array_size(chunks));
		sqlite3_bind_text(fst, 10, jstr(r, "trust"), -1, SQLITE_STATIC);
		sqlite3_bind_int64(fst, 11, stable_id(org, name, commit, jstr(v, "path")));
		if (sqlite3_step(fst) != SQLITE_ROW) {
			rc = sql_fail(err, db, "cannot insert file");
			goto out;
		}
		int64_t fid = sqlite3_column_int64(fst, 0);
		sqlite3_reset(fst);
		sqlite3_clear_bindings(fst);
		size_t k;
		json_t *c;
		json_array_foreach(chunks, k, c) {
			uint8_t d[MFS_SHA256_LEN];
			mfs_hex_decode(json_string_value(c), d, sizeof(d));
			sqlite3_bind_int64(cst, 1, fid);
			sqlite3_bind_int64(cst, 2, (int64_t)k);
			sqlite3_bind_blob(cst, 3, d, sizeof(d), SQLITE_TRANSIENT);
			if (step_done(cst)) {
				rc = sql_fail(err, db, "cannot insert chunk");
				goto out;
			}
		}
		sqlite3_bind_int64(ast, 1, aid);
		sqlite3_bind_int64(ast, 2, fid);
		if (step_done(ast)) {
			rc = sql_fail(err, db, "cannot link file");
			goto out;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO refs(endpoint, org, name, ref, commit_id, sequence)"
				   " VALUES(?,?,?,?,?,?) ON CONFLICT(endpoint, org, name, ref) DO UPDATE"
				   " SET commit_id = excluded.commit_id, sequence = excluded.sequence"
				   " WHERE coalesce(excluded.sequence, 0) >= coalesce(sequence, 0)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot prepare ref insert");
		goto out;
	}
	json_array_foreach(revs, i, v) {
		if (!json_string_value(v))
			continue;
		sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, json_string_value(v), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, commit, -1, SQLITE_STATIC);
		if (seq > 0)
			sqlite3_bind_int64(st, 6, seq);
		if (step_done(st)) {
			rc = sql_fail(err, db, "cannot insert ref");
			goto out;
		}
	}
	if (sqlite3_exec(db, "UPDATE meta SET value = value + 1 WHERE key = 'generation'", NULL, NULL,
			 NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot bump generation");
		goto out;
	}
	if (artifact_id)
		*artifact_id = aid;
out:
	free(meta);
	sqlite3_finalize(st);
	sqlite3_finalize(fst);
	sqlite3_finalize(cst);
	sqlite3_finalize(ast);
	return rc;
}

static void record_name(const char *canonical_ref, char out[MFS_SHA256_HEX + 5])
{
	uint8_t d[MFS_SHA256_LEN];
	mfs_sha256(canonical_ref, strlen(canonical_ref), d);
	mfs_hex_encode(d, sizeof(d), out);
	strcat(out, ".json");
}

static json_t *load_json_file(const char *path, struct mfs_err *err)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "cannot parse '%s': %s (line %d)", path, je.text,
			je.line);
	return j;
}

int mfs_store_admit(struct mfs_store *s, json_t *record, int64_t *artifact_id,
		    struct mfs_err *err)
{
	int rc = check_record(record, err);
	if (rc)
		return rc;
	char name[MFS_SHA256_HEX + 5], path[PATH_MAX];
	record_name(jstr(record, "canonical_ref"), name);
	if (snprintf(path, sizeof(path), "%s/records/%s", mfs_store_dir(s), name) >= (int)sizeof(path))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_IO, "store path too long");

	/* Re-adding under another revision name extends the kept record. */
	json_t *merged = json_deep_copy(record);
	json_t *old = access(path, F_OK) == 0 ? load_json_file(path, NULL) : NULL;
	if (old) {
		json_t *revs = json_object_get(merged, "revisions"), *v;
		size_t i;
		json_array_foreach(json_object_get(old, "revisions"), i, v) {
			bool have = false;
			size_t k;
			json_t *w;
			json_array_foreach(revs, k, w)
				have |= json_equal(v, w);
			if (!have)
				json_array_append(revs, v);
		}
		json_object_set(merged, "added_at", json_object_get(old, "added_at"));
		json_decref(old);
	}

	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot begin admission");
		mfs_store_unlock(s);
		json_decref(merged);
		return rc;
	}
	/* Binding check first, so a refused admission writes nothing at all. */
	rc = insert_record(db, merged, name, true, artifact_id, err);
	if (!rc)
		rc = advance_rollback(s, record, err);
	if (!rc) {
		char *text = json_dumps(merged, JSON_SORT_KEYS | JSON_INDENT(1));
		rc = text ? mfs_store_write_file(s, "records", name, text, strlen(text), err)
			  : MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		free(text);
	}
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sql_fail(err, db, "cannot commit admission");
	if (rc)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	mfs_store_unlock(s);
	json_decref(merged);
	return rc;
}

int mfs_store_record_load(struct mfs_store *s, int64_t artifact_id, json_t **out,
			  struct mfs_err *err)
{
	sqlite3_stmt *st;
	char path[PATH_MAX] = "";
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT record FROM artifacts WHERE id = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, artifact_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(path, sizeof(path), "%s/records/%s", mfs_store_dir(s),
				 (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	if (!path[0])
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "artifact %lld is not installed",
			       (long long)artifact_id);
	json_t *j = load_json_file(path, err);
	if (!j)
		return -EINVAL;
	*out = j;
	return 0;
}

json_t *mfs_store_record_find(struct mfs_store *s, const char *canonical_ref)
{
	char name[MFS_SHA256_HEX + 5], path[PATH_MAX];
	record_name(canonical_ref, name);
	snprintf(path, sizeof(path), "%s/records/%s", mfs_store_dir(s), name);
	if (access(path, F_OK))
		return NULL;
	json_t *r = load_json_file(path, NULL);
	const char *ref = r ? jstr(r, "canonical_ref") : NULL;
	if (!r || check_record(r, NULL) || !ref || strcmp(ref, canonical_ref)) {
		json_decref(r);
		return NULL;
	}
	return r;
}

void mfs_store_records_settle(struct mfs_store *s)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/records", mfs_store_dir(s));
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t sfx = strlen(MFS_RECORD_ASIDE);
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n != 69 + sfx || strcmp(de->d_name + 69, MFS_RECORD_ASIDE))
			continue;
		char name[70], from[PATH_MAX + 80], to[PATH_MAX + 80];
		snprintf(name, sizeof(name), "%.69s", de->d_name);
		snprintf(from, sizeof(from), "%s/%s", dir, de->d_name);
		snprintf(to, sizeof(to), "%s/%s", dir, name);
		/* Under the write lock: an `rm` sets its record aside inside its
		 * transaction, so one that is running holds it until it commits. */
		sqlite3_stmt *st;
		sqlite3 *db = mfs_store_lock(s);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			mfs_store_unlock(s);
			continue;
		}
		int r = SQLITE_ERROR;
		if (sqlite3_prepare_v2(db, "SELECT 1 FROM artifacts WHERE record = ?", -1, &st, NULL) ==
		    SQLITE_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			r = sqlite3_step(st);
			sqlite3_finalize(st);
		}
		/* On doubt (an error), leave it for a later open. */
		int done = r == SQLITE_ROW ? rename(from, to) : r == SQLITE_DONE ? unlink(from) : 0;
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		mfs_store_unlock(s);
		if (done)
			mfs_log_warning("cannot settle the record '%s': %s", from, strerror(errno));
	}
	if (d)
		closedir(d);
}

/* What the user set that is not in a record survives in small files beside
 * them: the quota in quota.json, a user pin as records/<record>.pinned. */
static void restore_settings_locked(struct mfs_store *s, sqlite3 *db)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/quota.json", mfs_store_dir(s));
	json_t *q = json_load_file(path, 0, NULL);
	static const char *const keys[] = { "quota_bytes", "quota_high_pct", "quota_low_pct" };
	sqlite3_stmt *st;
	for (size_t i = 0; q && i < 3; i++) {
		json_t *v = json_object_get(q, keys[i]);
		if (!json_is_integer(v) || sqlite3_prepare_v2(db, "INSERT INTO meta(key, value)"
				" VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
				-1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_text(st, 1, keys[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, json_integer_value(v));
		step_done(st);
		sqlite3_finalize(st);
	}
	json_decref(q);
	if (sqlite3_prepare_v2(db, "SELECT id, record FROM artifacts", -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *rec = (const char *)sqlite3_column_text(st, 1);
		if (!rec || strlen(rec) != 69)
			continue;
		snprintf(path, sizeof(path), "%s/records/%.64s.pinned", mfs_store_dir(s), rec);
		if (access(path, F_OK) == 0) {
			char sql[96];
			snprintf(sql, sizeof(sql), "UPDATE artifacts SET pinned = 1 WHERE id = %lld",
				 (long long)sqlite3_column_int64(st, 0));
			sqlite3_exec(db, sql, NULL, NULL, NULL);
		}
	}
	sqlite3_finalize(st);
}

/* Rebuild: replay every record, then index the chunk files (with no stamp,
 * so each is hashed again before its first use), then restore the settings.
 * Without force, an index already marked built (by another process that got
 * here first) is left as it is. */
int mfs_store_rebuild_locked(struct mfs_store *s, struct sqlite3 *db, bool force,
			     struct mfs_err *err)
{
	char path[PATH_MAX];
	unsigned records = 0, chunks = 0, bad = 0;
	int rc = 0;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sql_fail(err, db, "cannot rebuild the index");
	sqlite3_stmt *st = NULL;
	bool built = false;
	if (!force && sqlite3_prepare_v2(db, "SELECT 1 FROM meta WHERE key = 'indexed'", -1, &st,
					 NULL) == SQLITE_OK)
		built = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	st = NULL;
	if (built) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/records", mfs_store_dir(s));
	DIR *d = opendir(path);
	if (!d) {
		rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}

	struct dirent *de;
	while ((de = readdir(d)) && !rc) {
		size_t n = strlen(de->d_name);
		if (n != 69 || strcmp(de->d_name + 64, ".json"))
			continue;
		char file[PATH_MAX];
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		struct mfs_err e = { 0 };
		json_t *r = load_json_file(file, &e);
		sqlite3_exec(db, "SAVEPOINT record", NULL, NULL, NULL);
		if (!r || check_record(r, &e) || insert_record(db, r, de->d_name, false, NULL, &e)) {
			mfs_log_warning("skipping record '%s': %s", file, e.msg);
			sqlite3_exec(db, "ROLLBACK TO record", NULL, NULL, NULL);
			bad++;
		} else {
			records++;
		}
		sqlite3_exec(db, "RELEASE record", NULL, NULL, NULL);
		json_decref(r);
	}
	closedir(d);

	snprintf(path, sizeof(path), "%s/chunks", mfs_store_dir(s));
	d = opendir(path);
	if (d && sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO resident(digest, size, last_read)"
					" VALUES(?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
		while ((de = readdir(d))) {
			if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
				continue;
			char sub[PATH_MAX];
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			DIR *d2 = opendir(sub);
			struct dirent *e2;
			while (d2 && (e2 = readdir(d2))) {
				uint8_t dg[MFS_SHA256_LEN];
				struct stat sb;
				if (mfs_hex_decode(e2->d_name, dg, sizeof(dg)) ||
				    fstatat(dirfd(d2), e2->d_name, &sb, 0) || !S_ISREG(sb.st_mode))
					continue;
				sqlite3_bind_blob(st, 1, dg, sizeof(dg), SQLITE_TRANSIENT);
				sqlite3_bind_int64(st, 2, sb.st_size);
				sqlite3_bind_int64(st, 3, (int64_t)sb.st_mtime);
				step_done(st);
				chunks++;
			}
			if (d2)
				closedir(d2);
		}
	}
	sqlite3_finalize(st);
	if (d)
		closedir(d);
	restore_settings_locked(s, db);
	if (sqlite3_exec(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('indexed', 1);"
			     "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = sql_fail(err, db, "cannot commit the rebuilt index");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (records || chunks || bad)
		mfs_log_notice("index rebuilt: %u artifacts, %u chunk files, %u bad records", records,
			       chunks, bad);
	return rc;
}

int mfs_store_rebuild(struct mfs_store *s, struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	int rc = mfs_store_rebuild_locked(s, db, true, err);
	mfs_store_unlock(s);
	return rc;
}
