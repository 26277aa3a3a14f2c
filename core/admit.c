/*
 * admit.c - the admission transaction (admit.h).
 *
 * The steps run in the order of product.md §4 and each one only narrows what
 * the next may trust: the revision is resolved once to a commit and every
 * later request names that commit; the root of trust decides which sizes and
 * digests are believed; selection runs over the trusted file list (the
 * signed manifest's, not the listing's, in signed mode); structure is
 * validated on bytes that were verified against those digests; and the
 * record reaches the index in one transaction at the end.
 */
#include "admit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gguf.h"
#include "hub_stage.h"
#include "inventory.h"
#include "log.h"
#include "manifest.h"
#include "pin.h"
#include "ref.h"
#include "repo.h"
#include "rollback.h"
#include "safetensors.h"
#include "select.h"
#include "store_record.h"
#include "trust.h"

#define SIG_MAX 4096
#define HEADER_FIRST (256u << 10)
#define HUB_CHUNK_SIZE (4u << 20)

char *mfs_admit_default_endpoint(void)
{
	const char *env = getenv("HF_ENDPOINT");
	return strdup(env && *env ? env : "https://huggingface.co");
}

void mfs_admit_result_release(struct mfs_admit_result *r)
{
	if (!r)
		return;
	free(r->canonical_ref);
	free(r->trust);
	memset(r, 0, sizeof(*r));
}

/* What admission knows of one file of the set before it is committed. */
struct afile {
	struct mfs_file f;       /* id 0 until committed */
	const char *git_oid;     /* hub mode, non-LFS: the git blob id to check */
};

struct admission {
	struct mfs_store *s;
	struct mfs_cache *c;
	const struct mfs_admit_opts *opts;
	struct mfs_repo *repo;
	struct mfs_ref ref;
	char repo_name[512];     /* "org/name" */
	char commit[41];
	struct mfs_repo_listing listing;
	bool signed_mode;
	struct mfs_manifest manifest;
	char key_id[17];
	char manifest_sha256[MFS_SHA256_HEX];
	char *manifest_json, *manifest_sig;
	size_t manifest_len, sig_len;
	struct mfs_selection sel;
	struct afile *files;
	size_t n_files;
	json_t *meta;            /* compact metadata of the primary */
	json_t *identity_parts;  /* format details that enter identity */
};

static const struct mfs_repo_file *listed(const struct admission *a, const char *path)
{
	for (size_t i = 0; i < a->listing.n; i++)
		if (!strcmp(a->listing.files[i].path, path))
			return &a->listing.files[i];
	return NULL;
}

/* Reads a whole small repository file (manifest, signature) with a cap. */
static int fetch_small(struct admission *a, const char *path, size_t cap, char **out, size_t *len,
		       struct mfs_err *err)
{
	const struct mfs_repo_file *rf = listed(a, path);
	if (!rf)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "'%s' is not in the repository", path);
	if (rf->size > cap)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE, "'%s' is %llu bytes, more than the %zu allowed",
			       path, (unsigned long long)rf->size, cap);
	char *buf = malloc(rf->size + 1);
	if (!buf)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	int rc = rf->size ? mfs_repo_read(a->repo, a->repo_name, a->commit, path, 0, rf->size, NULL,
					  buf, err)
			  : 0;
	if (rc) {
		free(buf);
		mfs_err_prefix(err, "cannot fetch '%s'", path);
		return rc;
	}
	buf[rf->size] = '\0';
	*out = buf;
	*len = (size_t)rf->size;
	return 0;
}

/* Step 3: the root of trust. */
static int establish_trust(struct admission *a, struct mfs_err *err)
{
	struct mfs_policy *policy;
	int rc = mfs_policy_load(mfs_store_dir(a->s), &policy, err);
	if (rc)
		return rc;
	struct mfs_err sig_err = { 0 };
	bool has_manifest = listed(a, MFS_MANIFEST_JSON) != NULL;
	if (has_manifest) {
		rc = fetch_small(a, MFS_MANIFEST_JSON, MFS_MANIFEST_MAX, &a->manifest_json,
				 &a->manifest_len, err);
		if (!rc && listed(a, MFS_MANIFEST_SIG))
			rc = fetch_small(a, MFS_MANIFEST_SIG, SIG_MAX, &a->manifest_sig, &a->sig_len, err);
		if (rc)
			goto out;
		rc = mfs_policy_verify_manifest(policy, a->repo_name, a->manifest_json, a->manifest_len,
						a->manifest_sig, a->sig_len, &a->manifest, a->key_id,
						&sig_err);
		if (!rc) {
			uint8_t d[MFS_SHA256_LEN];
			mfs_sha256(a->manifest_json, a->manifest_len, d);
			mfs_hex_encode(d, sizeof(d), a->manifest_sha256);
			a->signed_mode = true;
			goto out;
		}
		/* A repository that carries a manifest is judged by it alone: a
		 * signature that does not verify, a manifest of another repo or an
		 * untrusted publisher never falls back to weaker evidence. */
		if (err)
			*err = sig_err;
		goto out;
	}
	/* No manifest. A repo that a trusted key covers is never admitted on
	 * a weaker root: a server that hides `.modelfs/` must not downgrade it
	 * to hub checksums allowed for a wider prefix (docs/trust.md). */
	for (size_t i = 0; i < mfs_policy_key_count(policy); i++) {
		struct mfs_policy_key_info k;
		mfs_policy_key_at(policy, i, &k);
		if (!mfs_policy_prefix_matches(k.prefix, a->repo_name))
			continue;
		rc = MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			     "'%s' carries no signed manifest (.modelfs/manifest.json) at %.12s, but "
			     "key %s is trusted for %s%s%s: a repo a trusted key covers is admitted "
			     "only on a manifest signed by a trusted key, never on hub checksums; "
			     "the server may be hiding it, or ask the publisher to run 'modelfs "
			     "publish'", a->repo_name, a->commit, k.key_id, k.prefix[0] ? "'" : "",
			     k.prefix[0] ? k.prefix : "every repo", k.prefix[0] ? "'" : "");
		goto out;
	}
	struct mfs_err hub_err = { 0 };
	rc = mfs_policy_hub_allowed(policy, a->repo_name, a->repo->endpoint, &hub_err);
	if (!rc) {
		a->signed_mode = false;
		goto out;
	}
	/* Neither root: the policy's message names both and how to add one. */
	if (err)
		*err = hub_err;
out:
	mfs_policy_free(policy);
	return rc;
}

/* Step 3 for moving refs: never back to a lower sequence for the same repo,
 * key and ref name, whichever endpoint offers it (rollback.h). This is the
 * early check, before any model byte moves; the store checks again, under
 * its lock, when it commits (mfs_store_admit). */
static int check_rollback(struct admission *a, struct mfs_err *err)
{
	if (!a->signed_mode || !mfs_rollback_is_moving(a->ref.revision))
		return 0;
	uint64_t have = 0;
	char commit[41];
	int rc = mfs_rollback_get(mfs_store_dir(a->s), a->repo_name, a->key_id, a->ref.revision,
				  &have, commit, err);
	if (rc)
		return rc;
	if (have > a->manifest.sequence)
		return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
			       "rollback refused: '%s@%s' was already admitted at manifest sequence "
			       "%llu (key %s%s%.12s), the repository now offers sequence %llu; add it "
			       "by its commit if you really want the older one", a->repo_name,
			       a->ref.revision ? a->ref.revision : "main", (unsigned long long)have,
			       a->key_id, commit[0] ? ", commit " : "", commit,
			       (unsigned long long)a->manifest.sequence);
	return 0;
}

static int add_file(struct admission *a, const char *path, struct mfs_err *err)
{
	for (size_t i = 0; i < a->n_files; i++)
		if (!strcmp(a->files[i].f.path, path))
			return 0;
	if (mfs_path_check(path, err)) {
		mfs_err_prefix(err, "'%s'", a->repo_name);
		return -EINVAL;
	}
	struct afile *fs = realloc(a->files, (a->n_files + 1) * sizeof(*fs));
	if (!fs)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	a->files = fs;
	struct afile *af = &a->files[a->n_files];
	memset(af, 0, sizeof(*af));
	af->f.endpoint = a->repo->endpoint;
	af->f.org = a->ref.org;
	af->f.name = a->ref.repo;
	af->f.commit = a->commit;
	af->f.path = (char *)path;
	if (a->signed_mode) {
		const struct mfs_manifest_file *mf = mfs_manifest_find(&a->manifest, path);
		if (!mf)
			return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
				       "'%s' is not in the signed manifest of '%s'", path, a->repo_name);
		const struct mfs_repo_file *rf = listed(a, path);
		if (!rf)
			return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND,
				       "'%s' is in the manifest but missing from the repository", path);
		if (rf->size != mf->size)
			return MFS_ERR(err, -EINVAL, MFS_ERR_HASH,
				       "'%s' is %llu bytes in the repository but %llu in the signed "
				       "manifest", path, (unsigned long long)rf->size,
				       (unsigned long long)mf->size);
		af->f.size = mf->size;
		memcpy(af->f.sha256, mf->sha256, sizeof(af->f.sha256));
		af->f.chunk_size = mf->chunk_size;
		af->f.n_chunks = mf->n_chunks;
		af->f.chunks = mf->chunks; /* borrowed from the manifest */
		af->f.trust = a->key_id;
	} else {
		const struct mfs_repo_file *rf = listed(a, path);
		if (!rf)
			return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "'%s' is not in '%s' at %s", path,
				       a->repo_name, a->commit);
		if (!rf->has_sha256 && !rf->git_oid[0])
			return MFS_ERR(err, -EPERM, MFS_ERR_POLICY,
				       "the hub lists no checksum for '%s': it cannot be verified", path);
		af->f.size = rf->size;
		if (rf->has_sha256)
			memcpy(af->f.sha256, rf->sha256, sizeof(af->f.sha256));
		af->git_oid = rf->has_sha256 ? NULL : rf->git_oid;
		af->f.chunk_size = HUB_CHUNK_SIZE;
		af->f.n_chunks = (uint32_t)((rf->size + HUB_CHUNK_SIZE - 1) / HUB_CHUNK_SIZE);
		af->f.trust = "hub";
	}
	a->n_files++;
	return 0;
}

/* Step 4 (selection half): the artifact and its file set. */
static int select_files(struct admission *a, struct mfs_err *err)
{
	size_t n = a->signed_mode ? a->manifest.n_files : a->listing.n;
	const char **paths = calloc(n ? n : 1, sizeof(*paths));
	if (!paths)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		paths[i] = a->signed_mode ? a->manifest.files[i].path : a->listing.files[i].path;
	/* A commit whose listing makes a path both a file and a directory is
	 * refused whole: one of the two could never be opened (select.h). */
	int rc = mfs_paths_check_tree(paths, n, err);
	if (!rc)
		rc = mfs_select(paths, n, a->ref.selector, &a->sel, err);
	free(paths);
	if (rc) {
		mfs_err_prefix(err, "'%s' at %.12s", a->repo_name, a->commit);
		return rc;
	}
	for (size_t i = 0; i < a->sel.n_files && !rc; i++)
		rc = add_file(a, a->sel.files[i], err);
	for (size_t i = 0; i < a->opts->n_sidecars && !rc; i++)
		rc = add_file(a, a->opts->sidecars[i], err);
	return rc;
}

/* --- hub mode: whole files, verified before anything is kept -------------- */

/* The same file of the same commit already installed and verified (an
 * `add` run again): its chunk digests are known, so only its missing chunks
 * are fetched, each verified against its digest. 1 if it was, 0 if there is
 * no such file, or an error. */
static int hub_reuse_installed(struct admission *a, struct afile *af, struct mfs_err *err)
{
	struct mfs_file *f = &af->f;
	int64_t id = mfs_store_file_id(a->s, a->ref.org, a->ref.repo, a->commit, f->path);
	struct mfs_file have;
	if (!a->c || id <= 0 || !mfs_inv_file_verified(a->s, id) ||
	    mfs_store_file_load(a->s, id, &have, NULL))
		return 0;
	int rc = 0;
	if (have.size != f->size || have.chunk_size != f->chunk_size ||
	    have.n_chunks != f->n_chunks || (!af->git_oid && strcmp(have.sha256, f->sha256))) {
		mfs_file_release(&have);
		return 0;
	}
	if (!(rc = mfs_cache_fetch(a->c, &have, 0, have.n_chunks, err))) {
		memcpy(f->sha256, have.sha256, sizeof(f->sha256));
		f->chunks = have.chunks;
		have.chunks = NULL;
		rc = 1;
	}
	mfs_file_release(&have);
	return rc;
}

/* An earlier add of this artifact that wrote its record and was killed
 * before its rows committed: the record holds the file's chunk digests,
 * taken from bytes whose whole-file SHA-256 had matched. 1 if they were
 * used (and the missing chunks fetched against them), 0 if there is no
 * such record, or an error. */
static int hub_reuse_record(struct admission *a, struct afile *af, struct mfs_err *err)
{
	struct mfs_file *f = &af->f;
	char *canonical = mfs_canonical_ref(a->ref.org, a->ref.repo, a->commit, a->sel.primary);
	json_t *r = canonical && a->c ? mfs_store_record_find(a->s, canonical) : NULL;
	free(canonical);
	const char *trust = json_string_value(json_object_get(r, "trust"));
	const char *commit = json_string_value(json_object_get(r, "commit"));
	json_t *fj = NULL, *v;
	size_t i;
	json_array_foreach(json_object_get(r, "files"), i, v) {
		const char *p = json_string_value(json_object_get(v, "path"));
		if (p && !strcmp(p, f->path))
			fj = v;
	}
	json_t *chunks = json_object_get(fj, "chunks");
	const char *sha = json_string_value(json_object_get(fj, "sha256"));
	if (!fj || !trust || strcmp(trust, "hub") || !commit || strcmp(commit, a->commit) || !sha ||
	    strlen(sha) != MFS_SHA256_HEX - 1 || (!af->git_oid && strcmp(sha, f->sha256)) ||
	    (uint64_t)json_integer_value(json_object_get(fj, "size")) != f->size ||
	    (uint64_t)json_integer_value(json_object_get(fj, "chunk_size")) != f->chunk_size ||
	    json_array_size(chunks) != f->n_chunks) {
		json_decref(r);
		return 0;
	}
	uint8_t (*dg)[MFS_SHA256_LEN] = calloc(f->n_chunks ? f->n_chunks : 1, MFS_SHA256_LEN);
	bool ok = dg != NULL;
	json_array_foreach(chunks, i, v)
		ok = ok && json_string_value(v) &&
		     !mfs_hex_decode(json_string_value(v), dg[i], MFS_SHA256_LEN);
	if (!ok) {
		free(dg);
		json_decref(r);
		return 0;
	}
	memcpy(f->sha256, sha, MFS_SHA256_HEX);
	json_decref(r);
	f->chunks = dg;
	int rc = mfs_cache_fetch(a->c, f, 0, f->n_chunks, err);
	if (rc) {
		free(dg);
		f->chunks = NULL;
		return rc;
	}
	return 1;
}

static int hub_fetch_file(struct admission *a, struct afile *af, struct mfs_err *err)
{
	int rc = hub_reuse_installed(a, af, err);
	if (!rc)
		rc = hub_reuse_record(a, af, err);
	if (rc)
		return rc < 0 ? rc : 0;
	return mfs_hub_stage_file(a->s, a->repo, a->repo_name, a->commit, &af->f, af->git_oid,
				  a->opts->progress, a->opts->progress_ctx, err);
}

/* --- step 4: structure, from verified bytes ----------------------------- */

typedef int (*parse_fn)(const uint8_t *buf, size_t len, uint64_t size, uint64_t *need, void *out,
			struct mfs_err *err);

static int parse_gguf(const uint8_t *b, size_t l, uint64_t s, uint64_t *n, void *o, struct mfs_err *e)
{
	return mfs_gguf_parse(b, l, s, n, o, e);
}

static int parse_st(const uint8_t *b, size_t l, uint64_t s, uint64_t *n, void *o, struct mfs_err *e)
{
	return mfs_safetensors_parse(b, l, s, n, o, e);
}

/* Reads growing verified prefixes of f until the parser has what it needs. */
static int parse_header(struct admission *a, const struct mfs_file *f, parse_fn parse, void *out,
			struct mfs_err *err)
{
	uint64_t want = f->size < HEADER_FIRST ? f->size : HEADER_FIRST;
	uint8_t *buf = NULL;
	int rc = -EAGAIN;
	for (int round = 0; round < 8 && rc == -EAGAIN; round++) {
		uint8_t *nb = realloc(buf, want ? want : 1);
		if (!nb) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			break;
		}
		buf = nb;
		ssize_t n = want ? mfs_cache_read(a->c, f, 0, (size_t)want, buf, err) : 0;
		if (n < 0) {
			rc = (int)n;
			break;
		}
		uint64_t need = 0;
		rc = parse(buf, (size_t)n, f->size, &need, out, err);
		if (rc == -EAGAIN) {
			if (need <= want || need > f->size) {
				rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "header of '%s' cannot be read",
					     f->path);
				break;
			}
			want = need;
		}
	}
	free(buf);
	if (rc && err && (err->kind == MFS_ERR_PARSE || err->kind == MFS_ERR_FORMAT))
		mfs_err_prefix(err, "'%s' is not a valid %s file", f->path,
			       parse == parse_gguf ? "GGUF" : "safetensors");
	else if (rc)
		mfs_err_prefix(err, "cannot read the header of '%s'", f->path);
	return rc;
}

static int validate(struct admission *a, struct mfs_err *err)
{
	int rc = 0;
	if (a->sel.format == MFS_FORMAT_GGUF) {
		size_t n = a->sel.n_files;
		struct mfs_gguf_meta *metas = calloc(n, sizeof(*metas));
		const struct mfs_gguf_meta **ptrs = calloc(n, sizeof(*ptrs));
		if (!metas || !ptrs)
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < n && !rc; i++) {
			rc = parse_header(a, &a->files[i].f, parse_gguf, &metas[i], err);
			ptrs[i] = &metas[i];
		}
		if (!rc && a->sel.split_count)
			rc = mfs_gguf_check_split(ptrs, n, err);
		if (!rc) {
			a->meta = mfs_gguf_meta_json(&metas[0]);
			a->identity_parts = json_pack("{s:s,s:I,s:s?,s:{s:s?,s:s},s:s?}",
				"format", "gguf", "format_version", (json_int_t)metas[0].version,
				"architecture", metas[0].architecture, "tokenizer",
				"model", metas[0].tokenizer_model, "tokens_sha256",
				metas[0].tokens_sha256, "quantization", metas[0].file_type_name);
		}
		for (size_t i = 0; metas && i < n; i++)
			mfs_gguf_meta_release(&metas[i]);
		free(metas);
		free(ptrs);
	} else if (a->sel.format == MFS_FORMAT_SAFETENSORS) {
		for (size_t i = 0; i < a->sel.n_files && !rc; i++) {
			const struct mfs_file *f = &a->files[i].f;
			if (mfs_format_from_path(f->path) != MFS_FORMAT_SAFETENSORS ||
			    strstr(f->path, ".index.json"))
				continue;
			struct mfs_safetensors_meta m = { 0 };
			rc = parse_header(a, f, parse_st, &m, err);
			if (!rc && !a->meta) {
				a->meta = mfs_safetensors_meta_json(&m);
				a->identity_parts = json_pack("{s:s,s:i,s:s}", "format", "safetensors",
							      "format_version", 1, "dtypes",
							      m.dtypes ? m.dtypes : "");
			}
			mfs_safetensors_meta_release(&m);
		}
	}
	if (!rc && !a->identity_parts)
		a->identity_parts = json_pack("{s:s}", "format", mfs_format_name(a->sel.format));
	if (!rc && !a->meta)
		a->meta = json_object();
	return rc;
}

/* identity key (product.md §2): SHA-256 over the canonical JSON of the
 * files' digests, format facts, and the source repo and revision. */
static char *identity(struct admission *a)
{
	json_t *shas = json_array();
	for (size_t i = 0; i < a->n_files; i++)
		json_array_append_new(shas, json_string(a->files[i].f.sha256));
	json_t *id = json_pack("{s:o,s:O,s:s,s:s}", "files", shas, "format", a->identity_parts,
			       "repo", a->repo_name, "revision", a->commit);
	char *text = json_dumps(id, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(id);
	if (!text)
		return NULL;
	uint8_t d[MFS_SHA256_LEN];
	char *hex = malloc(MFS_SHA256_HEX);
	mfs_sha256(text, strlen(text), d);
	free(text);
	if (hex)
		mfs_hex_encode(d, sizeof(d), hex);
	return hex;
}

static json_t *make_record(struct admission *a, const char *canonical, const char *ident)
{
	json_t *files = json_array();
	for (size_t i = 0; i < a->n_files; i++) {
		const struct mfs_file *f = &a->files[i].f;
		json_t *chunks = json_array();
		for (uint32_t k = 0; k < f->n_chunks; k++) {
			char hex[MFS_SHA256_HEX];
			mfs_hex_encode(f->chunks[k], MFS_SHA256_LEN, hex);
			json_array_append_new(chunks, json_string(hex));
		}
		json_array_append_new(files, json_pack("{s:s,s:I,s:s,s:I,s:o}", "path", f->path,
						       "size", (json_int_t)f->size, "sha256", f->sha256,
						       "chunk_size", (json_int_t)f->chunk_size,
						       "chunks", chunks));
	}
	const char *rev = a->ref.revision ? a->ref.revision : "main";
	json_t *r = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:[s],s:s,s:s,s:s,s:s,s:s,s:O,s:I,s:o}",
			      "version", 1, "canonical_ref", canonical, "endpoint", a->repo->endpoint,
			      "org", a->ref.org, "name", a->ref.repo, "commit", a->commit,
			      "revisions", rev, "primary", a->sel.primary, "distribution_id",
			      a->sel.distribution_id, "identity", ident, "format",
			      mfs_format_name(a->sel.format), "trust",
			      a->signed_mode ? a->key_id : "hub", "meta", a->meta, "added_at",
			      (json_int_t)time(NULL), "files", files);
	if (r && a->signed_mode) {
		json_object_set_new(r, "manifest_sha256", json_string(a->manifest_sha256));
		json_object_set_new(r, "sequence", json_integer((json_int_t)a->manifest.sequence));
	}
	return r;
}

static void admission_release(struct admission *a)
{
	for (size_t i = 0; i < a->n_files; i++)
		if (!a->signed_mode)
			free(a->files[i].f.chunks);
	free(a->files);
	mfs_selection_release(&a->sel);
	mfs_manifest_release(&a->manifest);
	free(a->manifest_json);
	free(a->manifest_sig);
	mfs_repo_listing_release(&a->listing);
	json_decref(a->meta);
	json_decref(a->identity_parts);
	mfs_ref_release(&a->ref);
	mfs_repo_close(a->repo);
}

int mfs_admit(struct mfs_store *s, struct mfs_cache *c, const char *ref_text,
	      const struct mfs_admit_opts *opts, struct mfs_admit_result *out,
	      struct mfs_err *err)
{
	static const struct mfs_admit_opts no_opts;
	struct admission a = { .s = s, .c = c, .opts = opts ? opts : &no_opts };
	char *endpoint = a.opts->endpoint ? strdup(a.opts->endpoint) : mfs_admit_default_endpoint();
	char *canonical = NULL, *ident = NULL;
	json_t *record = NULL;
	int rc;

	if ((rc = mfs_ref_parse(ref_text, &a.ref, err)))
		goto out;
	snprintf(a.repo_name, sizeof(a.repo_name), "%s/%s", a.ref.org, a.ref.repo);
	if ((rc = mfs_repo_open(endpoint, &a.repo, err)))
		goto out;
	/* 1. the revision, once, to an immutable commit */
	if ((rc = mfs_repo_resolve(a.repo, a.repo_name, a.ref.revision ? a.ref.revision : "main",
				   a.commit, err)))
		goto out;
	if ((rc = mfs_repo_list(a.repo, a.repo_name, a.commit, &a.listing, err)))
		goto out;
	/* 3. the root of trust and the policy, before any model byte moves */
	if ((rc = establish_trust(&a, err)) || (rc = check_rollback(&a, err)))
		goto out;
	if ((rc = select_files(&a, err)))
		goto out;
	/* 1-2 in hub mode: whole files, verified before they are kept */
	for (size_t i = 0; i < a.n_files && !rc && !a.signed_mode; i++)
		rc = hub_fetch_file(&a, &a.files[i], err);
	if (rc)
		goto out;
	/* 4. structure, from verified bytes */
	if ((rc = validate(&a, err)))
		goto out;
	canonical = mfs_canonical_ref(a.ref.org, a.ref.repo, a.commit, a.sel.primary);
	ident = identity(&a);
	record = canonical && ident ? make_record(&a, canonical, ident) : NULL;
	if (!record) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* 5. keep the manifest, then promote in one transaction */
	if (a.signed_mode) {
		char name[MFS_SHA256_HEX + 8];
		snprintf(name, sizeof(name), "%s.json", a.manifest_sha256);
		rc = mfs_store_write_file(s, "manifests", name, a.manifest_json, a.manifest_len, err);
		snprintf(name, sizeof(name), "%s.sig", a.manifest_sha256);
		if (!rc)
			rc = mfs_store_write_file(s, "manifests", name, a.manifest_sig, a.sig_len, err);
		if (rc)
			goto out;
	}
	int64_t id = 0;
	if ((rc = mfs_store_admit(s, record, &id, err)))
		goto out;
	out->artifact_id = id;
	out->canonical_ref = canonical;
	out->trust = strdup(a.signed_mode ? a.key_id : "hub");
	canonical = NULL;
out:
	json_decref(record);
	free(canonical);
	free(ident);
	free(endpoint);
	admission_release(&a);
	return rc;
}

int mfs_admit_pull(struct mfs_store *s, struct mfs_cache *c, int64_t artifact_id,
		   mfs_progress_fn progress, void *pctx, struct mfs_err *err)
{
	json_t *rec;
	int rc = mfs_store_record_load(s, artifact_id, &rec, err);
	if (rc)
		return rc;
	/* Held like an open file, so the quota never evicts what this pull
	 * has just fetched: a model that cannot fit fails with ENOSPC. */
	if ((rc = mfs_pin_init(s, err)) || (rc = mfs_pin_hold(s, artifact_id, err))) {
		json_decref(rec);
		return rc;
	}
	size_t i;
	json_t *fj;
	json_array_foreach(json_object_get(rec, "files"), i, fj) {
		int64_t fid = mfs_store_file_id(s, json_string_value(json_object_get(rec, "org")),
						json_string_value(json_object_get(rec, "name")),
						json_string_value(json_object_get(rec, "commit")),
						json_string_value(json_object_get(fj, "path")));
		struct mfs_file f;
		if (fid <= 0) {
			rc = MFS_ERR(err, -ENOENT, MFS_ERR_STATE, "file '%s' is not indexed",
				     json_string_value(json_object_get(fj, "path")));
			break;
		}
		if ((rc = mfs_store_file_load(s, fid, &f, err)))
			break;
		rc = mfs_cache_pull_file(c, &f, progress, pctx, err);
		if (rc)
			mfs_err_prefix(err, "'%s'", f.path);
		mfs_file_release(&f);
		if (rc)
			break;
	}
	mfs_pin_drop(s, artifact_id, NULL);
	json_decref(rec);
	return rc;
}
