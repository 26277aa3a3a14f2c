/*
 * binding.c - the installed files of a signed artifact against its kept
 * manifest (binding.h).
 */
#include "binding.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "digest.h"
#include "manifest.h"
#include "statefile.h"

struct signed_artifact {
	char repo[512];
	char key_id[17];
	char manifest_sha256[MFS_SHA256_HEX];
	int64_t *file_ids;
	size_t n_files;
};

/* The artifact's root and file ids from the index. 1 for a signed
 * artifact, 0 for a hub one, or -errno. */
static int load_artifact(struct mfs_store *s, int64_t id, struct signed_artifact *a,
			 struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st = NULL;
	int rc = -ENOENT;
	if (sqlite3_prepare_v2(db, "SELECT org, name, trust, manifest_sha256 FROM artifacts"
				   " WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
		rc = mfs_store_sql_err(err, db, "cannot load the artifact");
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "artifact %lld is not installed",
			     (long long)id);
		goto out;
	}
	const char *org = (const char *)sqlite3_column_text(st, 0);
	const char *name = (const char *)sqlite3_column_text(st, 1);
	const char *trust = (const char *)sqlite3_column_text(st, 2);
	const char *msha = (const char *)sqlite3_column_text(st, 3);
	if (!trust || !strcmp(trust, "hub")) {
		rc = 0;
		goto out;
	}
	/* Signed, so it must name its manifest: a row that does not is itself
	 * a binding failure, not a hub artifact. */
	if (!org || !name || strlen(trust) != 16 || !msha || strlen(msha) != 64 ||
	    !mfs_is_hex(msha, 64)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			     "artifact %lld claims key '%s' but names no admitted manifest",
			     (long long)id, trust);
		goto out;
	}
	snprintf(a->repo, sizeof(a->repo), "%s/%s", org, name);
	snprintf(a->key_id, sizeof(a->key_id), "%s", trust);
	snprintf(a->manifest_sha256, sizeof(a->manifest_sha256), "%s", msha);
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT file_id FROM artifact_files WHERE artifact_id = ?"
				   " ORDER BY file_id", -1, &st, NULL) != SQLITE_OK) {
		rc = mfs_store_sql_err(err, db, "cannot list the artifact's files");
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	size_t cap = 0;
	rc = 1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (a->n_files == cap) {
			cap = cap ? 2 * cap : 16;
			int64_t *p = realloc(a->file_ids, cap * sizeof(*p));
			if (!p) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				break;
			}
			a->file_ids = p;
		}
		a->file_ids[a->n_files++] = sqlite3_column_int64(st, 0);
	}
out:
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	return rc;
}

/* What differs between a served file and its manifest entry, or NULL. */
static const char *compare(const struct mfs_file *f, const struct mfs_manifest_file *mf,
			   char *buf, size_t cap)
{
	if (!mf)
		return "the signed manifest does not list it";
	if (f->size != mf->size || strcmp(f->sha256, mf->sha256)) {
		snprintf(buf, cap, "serves %llu bytes with SHA-256 %.16s..., the signed manifest "
			 "lists %llu bytes with SHA-256 %.16s...", (unsigned long long)f->size,
			 f->sha256, (unsigned long long)mf->size, mf->sha256);
		return buf;
	}
	if (f->chunk_size == mf->chunk_size) {
		if (f->n_chunks != mf->n_chunks)
			return "its chunk count differs from the signed manifest's";
		for (uint32_t k = 0; k < f->n_chunks; k++)
			if (memcmp(f->chunks[k], mf->chunks[k], MFS_SHA256_LEN)) {
				snprintf(buf, cap, "the digest of its chunk %u differs from the signed "
					 "manifest's", k);
				return buf;
			}
	}
	return NULL;
}

int mfs_binding_check(struct mfs_store *s, int64_t artifact_id, mfs_binding_report_fn report,
		      void *ctx, struct mfs_err *err)
{
	struct signed_artifact a = { 0 };
	struct mfs_manifest m = { 0 };
	char *json = NULL;
	size_t len = 0;
	int rc = load_artifact(s, artifact_id, &a, err);
	if (rc <= 0)
		goto out;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/manifests/%s.json", mfs_store_dir(s),
		     a.manifest_sha256) >= (int)sizeof(path)) {
		rc = MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_IO, "store path too long");
		goto out;
	}
	if ((rc = mfs_read_file_capped(path, MFS_MANIFEST_MAX, "the admitted manifest", &json, &len,
					 err)))
		goto out;
	uint8_t d[MFS_SHA256_LEN];
	char hex[MFS_SHA256_HEX];
	mfs_sha256(json, len, d);
	mfs_hex_encode(d, sizeof(d), hex);
	if (strcmp(hex, a.manifest_sha256)) {
		rc = MFS_ERR(err, -EBADMSG, MFS_ERR_HASH,
			     "the admitted manifest '%s' no longer matches its SHA-256", path);
		goto out;
	}
	if ((rc = mfs_manifest_parse(json, len, &m, err))) {
		mfs_err_prefix(err, "admitted manifest '%s'", path);
		goto out;
	}
	if (strcmp(m.repo, a.repo) || strcmp(m.key_id, a.key_id)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			     "the admitted manifest '%s' is for '%s' signed by %s, the artifact is "
			     "'%s' shown as signed by %s", path, m.repo, m.key_id, a.repo, a.key_id);
		goto out;
	}
	int bad = 0;
	for (size_t i = 0; i < a.n_files; i++) {
		struct mfs_file f;
		if ((rc = mfs_store_file_load(s, a.file_ids[i], &f, err)))
			goto out;
		char buf[256];
		const char *why = compare(&f, mfs_manifest_find(&m, f.path), buf, sizeof(buf));
		if (why) {
			bad++;
			if (report)
				report(ctx, f.path, why);
		}
		mfs_file_release(&f);
	}
	rc = bad;
out:
	mfs_manifest_release(&m);
	free(json);
	free(a.file_ids);
	return rc;
}
