/*
 * inventory.c - queries on the store's index for inspection (see
 * inventory.h). Nothing here writes; every answer is copied out before the
 * store's lock is released.
 */
#include "inventory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store.h"

static char *col_dup(sqlite3_stmt *st, int i, bool *nomem)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t)
		return NULL;
	char *d = strdup((const char *)t);
	if (!d)
		*nomem = true;
	return d;
}

int mfs_inv_artifact_load(struct mfs_store *s, int64_t id, struct mfs_inv_artifact *out,
			  struct mfs_err *err)
{
	struct mfs_inv_artifact a = { .id = id };
	bool nomem = false;
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT canonical_ref, endpoint, org, name, commit_id,"
				   " revision, primary_path, distribution_id, identity, format,"
				   " trust, meta_json, pinned, added_at FROM artifacts WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_SQLITE, "cannot read artifact %lld: %s",
			     (long long)id, sqlite3_errmsg(db));
		mfs_store_unlock(s);
		return rc;
	}
	sqlite3_bind_int64(st, 1, id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		char **cols[] = { &a.canonical_ref, &a.endpoint, &a.org, &a.name, &a.commit,
				  &a.revision, &a.primary_path, &a.distribution_id, &a.identity,
				  &a.format, &a.trust, &a.meta_json };
		for (int i = 0; i < (int)(sizeof(cols) / sizeof(cols[0])); i++)
			*cols[i] = col_dup(st, i, &nomem);
		a.pinned = sqlite3_column_int(st, 12) != 0;
		a.added_at = sqlite3_column_int64(st, 13);
		if (nomem)
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory reading artifact %lld",
				     (long long)id);
	} else if (step == SQLITE_DONE) {
		rc = MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "no artifact %lld", (long long)id);
	} else {
		rc = MFS_ERR(err, -EIO, MFS_ERR_SQLITE, "cannot read artifact %lld: %s",
			     (long long)id, sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	if (rc)
		mfs_inv_artifact_release(&a);
	else
		*out = a;
	return rc;
}

void mfs_inv_artifact_release(struct mfs_inv_artifact *a)
{
	if (!a)
		return;
	free(a->canonical_ref);
	free(a->endpoint);
	free(a->org);
	free(a->name);
	free(a->commit);
	free(a->revision);
	free(a->primary_path);
	free(a->distribution_id);
	free(a->identity);
	free(a->format);
	free(a->trust);
	free(a->meta_json);
	memset(a, 0, sizeof(*a));
}

bool mfs_inv_file_verified(struct mfs_store *s, int64_t file_id)
{
	bool yes = false;
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT verified FROM files WHERE id = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, file_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			yes = sqlite3_column_int(st, 0) != 0;
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return yes;
}

int mfs_inv_last_eviction(struct mfs_store *s, int64_t file_id, struct mfs_inv_eviction *out,
			  struct mfs_err *err)
{
	struct mfs_inv_eviction ev = { 0 };
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT e.at, e.bytes, e.reason FROM evictions e WHERE"
				   " (e.path = (SELECT path FROM files WHERE id = ?1) AND e.artifact IN"
				   "  (SELECT a.canonical_ref FROM artifacts a JOIN artifact_files af"
				   "   ON af.artifact_id = a.id WHERE af.file_id = ?1))"
				   " OR e.digest IN (SELECT digest FROM chunks WHERE file_id = ?1)"
				   " ORDER BY e.at DESC, e.id DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_SQLITE, "cannot read evictions: %s",
			     sqlite3_errmsg(db));
		mfs_store_unlock(s);
		return rc;
	}
	sqlite3_bind_int64(st, 1, file_id);
	int step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		ev.any = true;
		ev.at = sqlite3_column_int64(st, 0);
		ev.bytes = sqlite3_column_int64(st, 1);
		const unsigned char *r = sqlite3_column_text(st, 2);
		strncpy(ev.reason, r ? (const char *)r : "", sizeof(ev.reason) - 1);
	} else if (step != SQLITE_DONE) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_SQLITE, "cannot read evictions: %s",
			     sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	if (!rc)
		*out = ev;
	return rc;
}
