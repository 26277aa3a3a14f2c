/*
 * rollback.c - rollback protection state in <store>/rollback.json
 * (rollback.h; the rule is in docs/trust.md, the file in docs/store.md).
 *
 *   {"version": 1,
 *    "refs": [{"repo": "org/name", "key_id": "16 hex", "ref": "main",
 *              "sequence": 2, "commit": "40 hex", "updated": "ISO 8601 UTC"}]}
 *
 * The file is small (one entry per repo, key and ref ever admitted) and read
 * whole; entries are kept sorted so that the bytes depend only on the state.
 */
#include "rollback.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "digest.h"
#include "manifest.h"
#include "statefile.h"

#define ROLLBACK_VERSION 1

bool mfs_rollback_is_moving(const char *rev)
{
	return !rev || !(strlen(rev) == 40 && mfs_is_hex(rev, 40));
}

int mfs_rollback_ref_name(const char *rev, char *out, size_t cap, struct mfs_err *err)
{
	static const char *const strip[] = { "refs/heads/", "refs/tags/" };
	const char *name = rev ? rev : "main";
	for (size_t i = 0; i < sizeof(strip) / sizeof(strip[0]); i++) {
		size_t n = strlen(strip[i]);
		if (!strncmp(name, strip[i], n)) {
			name += n;
			break;
		}
	}
	if (!*name)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "revision '%s' names no branch or tag",
			       rev ? rev : "");
	size_t len = strlen(name);
	if (len > MFS_ROLLBACK_REF_MAX || len >= cap)
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE,
			       "revision name is longer than %u bytes", MFS_ROLLBACK_REF_MAX);
	memcpy(out, name, len + 1);
	return 0;
}

static int state_path(const char *dir, const char *name, char *buf, size_t cap,
		      struct mfs_err *err)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "store path '%s' is too long", dir);
	return 0;
}

/* Loads the state as a JSON object with a "refs" array (a new empty one
 * when the file is missing); checks every entry, since the file may be
 * edited by hand and a half-understood state could let a rollback in. */
static int load(const char *dir, json_t **out, struct mfs_err *err)
{
	char path[PATH_MAX];
	int rc = state_path(dir, MFS_ROLLBACK_FILE, path, sizeof(path), err);
	if (rc)
		return rc;
	char *buf = NULL;
	size_t n = 0;
	struct mfs_err rerr = {0};
	rc = mfs_read_file_capped(path, MFS_ROLLBACK_MAX, "rollback state", &buf, &n, &rerr);
	if (rc == -ENOENT) {
		*out = json_pack("{s:i,s:[]}", "version", ROLLBACK_VERSION, "refs");
		return *out ? 0 : MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	if (rc == -EFBIG) /* a damaged state, as below */
		rc = -EINVAL;
	if (rc) {
		if (err) {
			*err = rerr;
			err->code = rc;
		}
		return rc;
	}
	json_error_t je;
	json_t *root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	json_t *refs = json_object_get(root, "refs"), *e;
	bool ok = json_is_object(root) &&
		  json_integer_value(json_object_get(root, "version")) == ROLLBACK_VERSION &&
		  json_is_array(refs);
	size_t i;
	json_array_foreach(refs, i, e) {
		const char *repo = json_string_value(json_object_get(e, "repo"));
		const char *key = json_string_value(json_object_get(e, "key_id"));
		const char *ref = json_string_value(json_object_get(e, "ref"));
		json_t *seq = json_object_get(e, "sequence");
		ok = ok && repo && mfs_manifest_repo_is_valid(repo) && key && strlen(key) == 16 &&
		     mfs_is_hex(key, 16) && ref && *ref && strlen(ref) <= MFS_ROLLBACK_REF_MAX &&
		     json_is_integer(seq) && json_integer_value(seq) >= 1;
	}
	if (!ok) {
		json_decref(root);
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "rollback state '%s' is damaged; fix or remove it (removing it forgets "
			       "which manifest sequences were admitted)", path);
	}
	*out = root;
	return 0;
}

static json_t *find(json_t *root, const char *repo, const char *key_id, const char *ref)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(root, "refs"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "repo")), repo) &&
		    !strcmp(json_string_value(json_object_get(e, "key_id")), key_id) &&
		    !strcmp(json_string_value(json_object_get(e, "ref")), ref))
			return e;
	return NULL;
}

int mfs_rollback_get(const char *store_dir, const char *repo, const char *key_id,
		     const char *rev, uint64_t *seq, char commit[41], struct mfs_err *err)
{
	char ref[MFS_ROLLBACK_REF_MAX + 1];
	json_t *root;
	int rc = mfs_rollback_ref_name(rev, ref, sizeof(ref), err);
	if (rc || (rc = load(store_dir, &root, err)))
		return rc;
	json_t *e = find(root, repo, key_id, ref);
	*seq = e ? (uint64_t)json_integer_value(json_object_get(e, "sequence")) : 0;
	if (commit) {
		const char *c = json_string_value(json_object_get(e, "commit"));
		snprintf(commit, 41, "%s", c && strlen(c) == 40 ? c : "");
	}
	json_decref(root);
	return 0;
}

static int compare_entries(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	static const char *const keys[] = { "repo", "key_id", "ref" };
	for (size_t i = 0; i < 3; i++) {
		int c = strcmp(json_string_value(json_object_get(x, keys[i])),
			       json_string_value(json_object_get(y, keys[i])));
		if (c)
			return c;
	}
	return 0;
}

/* Writes root to the file: temporary file, fsync, rename, fsync of the
 * directory, so a crash leaves the old state or the new one. */
static int save(const char *dir, json_t *root, struct mfs_err *err)
{
	char path[PATH_MAX];
	int rc = state_path(dir, MFS_ROLLBACK_FILE, path, sizeof(path), err);
	if (rc)
		return rc;
	json_t *refs = json_object_get(root, "refs");
	size_t count = json_array_size(refs);
	json_t **sorted = calloc(count ? count : 1, sizeof(*sorted));
	json_t *out = json_array();
	if (!sorted || !out) {
		free(sorted);
		json_decref(out);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < count; i++)
		sorted[i] = json_array_get(refs, i);
	qsort(sorted, count, sizeof(*sorted), compare_entries);
	for (size_t i = 0; i < count; i++)
		json_array_append(out, sorted[i]);
	free(sorted);
	json_object_set_new(root, "refs", out);
	char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");

	rc = mfs_write_text_atomic(dir, path, text, 0644, "rollback state", err);
	free(text);
	return rc;
}

static void utc_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

int mfs_rollback_advance(const char *store_dir, const char *repo, const char *key_id,
			 const char *rev, uint64_t sequence, const char *commit,
			 struct mfs_err *err)
{
	char ref[MFS_ROLLBACK_REF_MAX + 1], lpath[PATH_MAX];
	int rc = mfs_rollback_ref_name(rev, ref, sizeof(ref), err);
	if (rc)
		return rc;
	if (!repo || !mfs_manifest_repo_is_valid(repo) || !key_id || strlen(key_id) != 16 ||
	    !mfs_is_hex(key_id, 16) || sequence < 1 || sequence > INT64_MAX)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "bad rollback entry for '%s'",
			       repo ? repo : "");
	if ((rc = state_path(store_dir, MFS_ROLLBACK_LOCK, lpath, sizeof(lpath), err)))
		return rc;
	int lfd;
	if ((rc = mfs_lock_file(lpath, &lfd, err)))
		return rc;
	json_t *root = NULL;
	if ((rc = load(store_dir, &root, err)))
		goto out;
	json_t *e = find(root, repo, key_id, ref);
	uint64_t have = e ? (uint64_t)json_integer_value(json_object_get(e, "sequence")) : 0;
	if (have > sequence) {
		const char *c = json_string_value(json_object_get(e, "commit"));
		rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			     "rollback refused: '%s@%s' was already admitted at manifest sequence "
			     "%llu (key %s%s%.12s), the repository now offers sequence %llu; add it "
			     "by its commit if you really want the older one", repo, ref,
			     (unsigned long long)have, key_id, c ? ", commit " : "", c ? c : "",
			     (unsigned long long)sequence);
		goto out;
	}
	if (have == sequence)
		goto out;
	char now[32];
	utc_now(now);
	json_t *entry = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s}", "repo", repo, "key_id", key_id,
				  "ref", ref, "sequence", (json_int_t)sequence, "commit",
				  commit ? commit : "", "updated", now);
	if (!entry) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (e) {
		json_object_update(e, entry);
		json_decref(entry);
	} else {
		json_array_append_new(json_object_get(root, "refs"), entry);
	}
	rc = save(store_dir, root, err);
out:
	json_decref(root);
	close(lfd); /* releases the flock */
	return rc;
}
