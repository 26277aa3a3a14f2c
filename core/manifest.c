/*
 * manifest.c - build and parse the signed manifest v1; see manifest.h.
 *
 * The parser is the first code to touch a manifest fetched from a hub or
 * mirror, before its signature is checked, so it trusts nothing: the length is
 * capped, jansson rejects duplicate keys, every string is checked for embedded
 * NUL bytes (jansson is asked to allow them so that the error can name the
 * real problem), every number for its range, and every count is compared with
 * what the sizes imply before any allocation depends on it.
 *
 * The builder walks a local directory the publisher controls. It still
 * refuses what a consumer would refuse (unsafe names, symbolic links), so that
 * a publisher learns about a problem when publishing rather than when a user
 * mounts the model.
 */
#include "manifest.h"
#include "select.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "digest.h"

static const char MANIFEST_FORMAT[] = "modelfs-manifest";

/* ---- validation helpers ------------------------------------------------ */

bool mfs_manifest_chunk_size_is_valid(uint64_t cs)
{
	return cs >= MFS_CHUNK_SIZE_MIN && cs <= MFS_CHUNK_SIZE_MAX && (cs & (cs - 1)) == 0;
}

bool mfs_manifest_name_part_is_valid(const char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

bool mfs_manifest_repo_is_valid(const char *repo)
{
	if (!repo)
		return false;
	size_t n = strnlen(repo, MFS_MANIFEST_REPO_MAX + 1);
	if (n > MFS_MANIFEST_REPO_MAX)
		return false;
	const char *slash = memchr(repo, '/', n);
	if (!slash)
		return false;
	size_t org = (size_t)(slash - repo);
	return mfs_manifest_name_part_is_valid(repo, org) &&
	       mfs_manifest_name_part_is_valid(slash + 1, n - org - 1);
}

bool mfs_manifest_path_is_safe(const char *path)
{
	/* The repository-wide rule, plus: the manifest does not list its own
	 * directory. */
	size_t dn = sizeof(MFS_MANIFEST_DIR) - 1;
	return mfs_path_is_safe(path) &&
	       !(!strncmp(path, MFS_MANIFEST_DIR, dn) && (path[dn] == '/' || path[dn] == '\0'));
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* ---- release / find ---------------------------------------------------- */

static void files_free(struct mfs_manifest_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(files[i].path);
		free(files[i].chunks);
	}
	free(files);
}

void mfs_manifest_release(struct mfs_manifest *m)
{
	if (!m)
		return;
	files_free(m->files, m->n_files);
	free(m->repo);
	memset(m, 0, sizeof(*m));
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mfs_manifest_file *)a)->path,
		      ((const struct mfs_manifest_file *)b)->path);
}

const struct mfs_manifest_file *mfs_manifest_find(const struct mfs_manifest *m,
						  const char *path)
{
	if (!m || !path || !m->n_files)
		return NULL;
	struct mfs_manifest_file key = { .path = (char *)path };
	return bsearch(&key, m->files, m->n_files, sizeof(*m->files), file_cmp);
}

/* ---- parse ------------------------------------------------------------- */

/* A string member without embedded NUL; *s stays owned by the JSON value. */
static int get_string(json_t *obj, const char *key, const char *where, const char **s,
		      size_t *n, struct mfs_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: missing \"%s\"", where, key);
	if (!json_is_string(v))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: \"%s\" must be a string",
			       where, key);
	*s = json_string_value(v);
	*n = json_string_length(v);
	if (strlen(*s) != *n)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "%s: \"%s\" contains a NUL byte",
			       where, key);
	return 0;
}

/* A non-negative integer member. */
static int get_uint(json_t *obj, const char *key, const char *where, uint64_t *out,
		    struct mfs_err *err)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: missing \"%s\"", where, key);
	if (!json_is_integer(v))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: \"%s\" must be an integer",
			       where, key);
	json_int_t i = json_integer_value(v);
	if (i < 0)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "%s: \"%s\" is negative", where, key);
	*out = (uint64_t)i;
	return 0;
}

/* Refuses members other than the allowed ones: v1 is closed, additions make v2. */
static int check_keys(json_t *obj, const char *const *allowed, const char *where,
		      struct mfs_err *err)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok = ok || !strcmp(key, allowed[i]);
		if (!ok)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "%s: unknown member \"%.64s\" (not in manifest version 1)",
				       where, key);
	}
	return 0;
}

static int parse_file(json_t *v, size_t index, struct mfs_manifest_file *f,
		      struct mfs_err *err)
{
	static const char *const keys[] = { "path", "size", "sha256", "chunk_size", "chunks",
					    NULL };
	char where[1200];
	const char *s;
	size_t n;
	uint64_t cs;
	int rc;

	snprintf(where, sizeof(where), "manifest file #%zu", index);
	if (!json_is_object(v))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: must be an object", where);
	if ((rc = get_string(v, "path", where, &s, &n, err)))
		return rc;
	if (mfs_path_check(s, err)) {
		mfs_err_prefix(err, "%s: unsafe path", where);
		return -EINVAL;
	}
	if (!mfs_manifest_path_is_safe(s))
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "%s: unsafe path '%.256s': a manifest does not list .modelfs/",
			       where, s);
	snprintf(where, sizeof(where), "manifest file '%s'", s);
	if ((rc = check_keys(v, keys, where, err)))
		return rc;
	if (!(f->path = strdup(s)))
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "%s: out of memory", where);
	if ((rc = get_uint(v, "size", where, &f->size, err)))
		return rc;
	if ((rc = get_string(v, "sha256", where, &s, &n, err)))
		return rc;
	if (n != 64 || !is_lower_hex(s, n))
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "%s: \"sha256\" must be 64 lowercase hex digits", where);
	memcpy(f->sha256, s, 65);
	if ((rc = get_uint(v, "chunk_size", where, &cs, err)))
		return rc;
	if (!mfs_manifest_chunk_size_is_valid(cs))
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "%s: chunk size %llu is not a power of two between %u (4 KiB) "
			       "and %u (64 MiB), the limits of manifest version 1",
			       where, (unsigned long long)cs, MFS_CHUNK_SIZE_MIN,
			       MFS_CHUNK_SIZE_MAX);
	f->chunk_size = (uint32_t)cs;
	json_t *chunks = json_object_get(v, "chunks");
	if (!chunks)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: missing \"chunks\"", where);
	if (!json_is_array(chunks))
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "%s: \"chunks\" must be an array",
			       where);
	uint64_t want = f->size / cs + (f->size % cs != 0);
	size_t have = json_array_size(chunks);
	if (want != have)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "%s: %zu chunk digests for %llu bytes in chunks of %llu "
			       "(expected %llu)", where, have, (unsigned long long)f->size,
			       (unsigned long long)cs, (unsigned long long)want);
	if (want > UINT32_MAX)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "%s: too many chunks", where);
	f->n_chunks = (uint32_t)want;
	if (want) {
		f->chunks = calloc(want, sizeof(*f->chunks));
		if (!f->chunks)
			return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "%s: out of memory", where);
	}
	for (size_t i = 0; i < have; i++) {
		json_t *c = json_array_get(chunks, i);
		if (!json_is_string(c) || json_string_length(c) != 64 ||
		    !is_lower_hex(json_string_value(c), 64) ||
		    mfs_hex_decode(json_string_value(c), f->chunks[i], 32) != 0)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "%s: chunk digest #%zu must be 64 lowercase hex digits",
				       where, i);
	}
	return 0;
}

/* True if some proper directory prefix of path is itself a listed file. */
static const char *dir_conflict(const struct mfs_manifest *m, const char *path)
{
	char buf[MFS_MANIFEST_PATH_MAX + 1];
	size_t n = strlen(path);
	memcpy(buf, path, n + 1);
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		const struct mfs_manifest_file *f = mfs_manifest_find(m, buf);
		buf[i] = '/';
		if (f)
			return f->path;
	}
	return NULL;
}

int mfs_manifest_parse(const char *json, size_t len, struct mfs_manifest *out,
		       struct mfs_err *err)
{
	static const char *const keys[] = { "format", "version", "repo", "sequence", "key_id",
					    "files", NULL };
	const char *where = "manifest";
	struct mfs_manifest m = { 0 };
	json_error_t jerr;
	const char *s;
	size_t n;
	uint64_t u;
	int rc;

	if (len > MFS_MANIFEST_MAX)
		return MFS_ERR(err, -EFBIG, MFS_ERR_PARSE,
			       "manifest is %zu bytes, more than the limit of %u", len,
			       MFS_MANIFEST_MAX);
	if (!json || len == 0)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "manifest is empty");
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "manifest is not valid JSON: %s (line %d, column %d)", jerr.text,
			       jerr.line, jerr.column);
	if (!json_is_object(root)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE, "manifest must be a JSON object");
		goto fail;
	}
	if ((rc = get_string(root, "format", where, &s, &n, err)))
		goto fail;
	if (strcmp(s, MANIFEST_FORMAT)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			     "manifest: \"format\" is '%.64s', not '%s'", s, MANIFEST_FORMAT);
		goto fail;
	}
	if ((rc = get_uint(root, "version", where, &u, err)))
		goto fail;
	if (u != MFS_MANIFEST_VERSION) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			     "manifest version %llu is not supported (this modelfs reads "
			     "version %d; upgrade modelfs)", (unsigned long long)u,
			     MFS_MANIFEST_VERSION);
		goto fail;
	}
	m.version = (uint32_t)u;
	if ((rc = check_keys(root, keys, where, err)))
		goto fail;
	if ((rc = get_string(root, "repo", where, &s, &n, err)))
		goto fail;
	if (!mfs_manifest_repo_is_valid(s)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			     "manifest: repo '%.256s' is not of the form 'org/name'", s);
		goto fail;
	}
	if (!(m.repo = strdup(s))) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "manifest: out of memory");
		goto fail;
	}
	if ((rc = get_uint(root, "sequence", where, &m.sequence, err)))
		goto fail;
	if (m.sequence < 1) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "manifest: sequence must be at least 1");
		goto fail;
	}
	if ((rc = get_string(root, "key_id", where, &s, &n, err)))
		goto fail;
	if (n != 16 || !is_lower_hex(s, n)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			     "manifest: \"key_id\" must be 16 lowercase hex digits");
		goto fail;
	}
	memcpy(m.key_id, s, 17);

	json_t *files = json_object_get(root, "files");
	if (!files || !json_is_array(files)) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			     files ? "manifest: \"files\" must be an array"
				   : "manifest: missing \"files\"");
		goto fail;
	}
	/* An empty list is refused before anything else: it is no release
	 * (the builder never writes one), and everything below (calloc, qsort,
	 * bsearch) may then assume at least one entry. */
	size_t nf = json_array_size(files);
	if (nf == 0) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "manifest: \"files\" is empty");
		goto fail;
	}
	m.files = calloc(nf, sizeof(*m.files));
	if (!m.files) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "manifest: out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nf; i++) {
		m.n_files = i + 1; /* so that release frees a partly parsed entry */
		if ((rc = parse_file(json_array_get(files, i), i, &m.files[i], err)))
			goto fail;
	}
	qsort(m.files, m.n_files, sizeof(*m.files), file_cmp);
	for (size_t i = 1; i < m.n_files; i++) {
		if (!strcmp(m.files[i - 1].path, m.files[i].path)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				     "manifest: duplicate path '%.256s'", m.files[i].path);
			goto fail;
		}
	}
	for (size_t i = 0; i < m.n_files; i++) {
		const char *d = dir_conflict(&m, m.files[i].path);
		if (d) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				     "manifest: '%.256s' is listed as a file and as a directory",
				     d);
			goto fail;
		}
	}
	json_decref(root);
	*out = m;
	return 0;
fail:
	json_decref(root);
	mfs_manifest_release(&m);
	return rc;
}

/* ---- build ------------------------------------------------------------- */

struct walk {
	char **paths;      /* repo-relative, malloc'd */
	size_t n, cap;
};

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->paths[i]);
	free(w->paths);
}

static int walk_push(struct walk *w, const char *rel, struct mfs_err *err)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		char **p = realloc(w->paths, cap * sizeof(*p));
		if (!p)
			return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory listing files");
		w->paths = p;
		w->cap = cap;
	}
	if (!(w->paths[w->n] = strdup(rel)))
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory listing files");
	w->n++;
	return 0;
}

/* Lists the plain files under root/rel (rel "" for root itself). */
static int walk_dir(const char *root, const char *rel, struct walk *w, struct mfs_err *err)
{
	char dpath[PATH_MAX];
	int k = snprintf(dpath, sizeof(dpath), "%s%s%s", root, *rel ? "/" : "", rel);
	if (k < 0 || (size_t)k >= sizeof(dpath))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long: '%s/%s'", root,
			       rel);
	DIR *d = opendir(dpath);
	if (!d)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open directory '%s': %s", dpath,
			       strerror(errno));
	int rc = 0;
	struct dirent *e;
	while ((errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!*rel && !strcmp(e->d_name, MFS_MANIFEST_DIR))
			continue;
		char crel[MFS_MANIFEST_PATH_MAX + 2], cpath[PATH_MAX];
		k = snprintf(crel, sizeof(crel), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (k < 0 || (size_t)k > MFS_MANIFEST_PATH_MAX) {
			rc = MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE,
				     "path '%s/%s' is longer than %d bytes", rel, e->d_name,
				     MFS_MANIFEST_PATH_MAX);
			break;
		}
		k = snprintf(cpath, sizeof(cpath), "%s/%s", root, crel);
		if (k < 0 || (size_t)k >= sizeof(cpath)) {
			rc = MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long: '%s/%s'",
				     root, crel);
			break;
		}
		struct stat st;
		if (lstat(cpath, &st) != 0) {
			rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot stat '%s': %s", cpath,
				     strerror(errno));
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if ((rc = walk_dir(root, crel, w, err)))
				break;
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
				     "'%s' is a symbolic link; a manifest lists plain files only "
				     "(replace it with a copy of the file or remove it)", cpath);
			break;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
				     "'%s' is not a regular file (device, socket or FIFO); "
				     "remove it before publishing", cpath);
			break;
		}
		if (!mfs_manifest_path_is_safe(crel)) {
			rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
				     "file name '%s' cannot be published: it contains control "
				     "characters or a backslash (rename it)", crel);
			break;
		}
		if ((rc = walk_push(w, crel, err)))
			break;
	}
	if (!rc && errno)
		rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot read directory '%s': %s", dpath,
			     strerror(errno));
	closedir(d);
	return rc;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hashes one file into a JSON object {path, size, sha256, chunk_size, chunks}. */
static int hash_file(const char *root, const char *rel, uint32_t cs, uint8_t *buf,
		     size_t buf_len, json_t **out, struct mfs_err *err)
{
	char path[PATH_MAX];
	int k = snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (k < 0 || (size_t)k >= sizeof(path))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "path too long: '%s/%s'", root,
			       rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open '%s': %s", path,
			       strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return MFS_ERR(err, -EINVAL, MFS_ERR_IO, "'%s' is not a regular file", path);
	}
	uint64_t size = (uint64_t)st.st_size, done = 0, in_chunk = 0;
	struct mfs_sha256 whole = { 0 }, chunk = { 0 };
	json_t *obj = json_object(), *chunks = json_array();
	char hex[MFS_SHA256_HEX];
	uint8_t dig[MFS_SHA256_LEN];
	int rc = 0;

	if (!obj || !chunks || mfs_sha256_init(&whole) || mfs_sha256_init(&chunk)) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory hashing '%s'", path);
		goto out;
	}
	for (;;) {
		size_t want = buf_len;
		if (want > cs - in_chunk)
			want = (size_t)(cs - in_chunk);
		ssize_t r = read(fd, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot read '%s': %s", path,
				     strerror(errno));
			goto out;
		}
		if (r > 0) {
			mfs_sha256_update(&whole, buf, (size_t)r);
			mfs_sha256_update(&chunk, buf, (size_t)r);
			done += (uint64_t)r;
			in_chunk += (uint64_t)r;
		}
		if (in_chunk && (in_chunk == cs || r == 0)) {
			mfs_sha256_final(&chunk, dig);
			mfs_hex_encode(dig, sizeof(dig), hex);
			if (json_array_append_new(chunks, json_string(hex)) ||
			    mfs_sha256_init(&chunk)) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory hashing '%s'",
					     path);
				goto out;
			}
			in_chunk = 0;
		}
		if (r == 0)
			break;
	}
	if (done != size) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_IO,
			     "'%s' changed size while being hashed (%llu bytes, then %llu); "
			     "publish again when nothing writes to it", path,
			     (unsigned long long)size, (unsigned long long)done);
		goto out;
	}
	mfs_sha256_final(&whole, dig);
	mfs_hex_encode(dig, sizeof(dig), hex);
	json_t *jpath = json_string(rel);
	if (!jpath) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "file name '%s' is not valid UTF-8 (rename it)", rel);
		goto out;
	}
	if (json_object_set_new(obj, "path", jpath) ||
	    json_object_set_new(obj, "size", json_integer((json_int_t)size)) ||
	    json_object_set_new(obj, "sha256", json_string(hex)) ||
	    json_object_set_new(obj, "chunk_size", json_integer(cs)) ||
	    json_object_set(obj, "chunks", chunks)) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory hashing '%s'", path);
		goto out;
	}
	*out = obj;
	obj = NULL;
out:
	mfs_sha256_release(&whole);
	mfs_sha256_release(&chunk);
	json_decref(obj);
	json_decref(chunks);
	close(fd);
	return rc;
}

int mfs_manifest_build(const char *dir, const char *repo, uint64_t sequence,
		       uint32_t chunk_size, const char *key_id, char **json, size_t *len,
		       struct mfs_err *err)
{
	if (!mfs_manifest_repo_is_valid(repo))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad repo '%s': expected 'org/name' (letters, digits, '-', '_', '.')",
			       repo ? repo : "");
	if (sequence < 1 || sequence > INT64_MAX)
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad sequence %llu: must be between 1 and %lld",
			       (unsigned long long)sequence, (long long)INT64_MAX);
	if (!mfs_manifest_chunk_size_is_valid(chunk_size))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad chunk size %u: must be a power of two between %u and %u",
			       chunk_size, MFS_CHUNK_SIZE_MIN, MFS_CHUNK_SIZE_MAX);
	if (!key_id || strlen(key_id) != 16 || !is_lower_hex(key_id, 16))
		return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			       "bad key id '%s': expected 16 lowercase hex digits",
			       key_id ? key_id : "");

	struct walk w = { 0 };
	json_t *root = NULL, *files = NULL;
	uint8_t *buf = NULL;
	char *text = NULL;
	int rc = walk_dir(dir, "", &w, err);
	if (rc)
		goto out;
	if (!w.n) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "no files to publish in '%s'", dir);
		goto out;
	}
	qsort(w.paths, w.n, sizeof(*w.paths), str_cmp);

	size_t buf_len = chunk_size < (1u << 20) ? chunk_size : (1u << 20);
	buf = malloc(buf_len);
	root = json_object();
	files = json_array();
	if (!buf || !root || !files) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory building the manifest");
		goto out;
	}
	for (size_t i = 0; i < w.n; i++) {
		json_t *f = NULL;
		if ((rc = hash_file(dir, w.paths[i], chunk_size, buf, buf_len, &f, err)))
			goto out;
		if (json_array_append_new(files, f)) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM,
				     "out of memory building the manifest");
			goto out;
		}
	}
	if (json_object_set_new(root, "format", json_string(MANIFEST_FORMAT)) ||
	    json_object_set_new(root, "version", json_integer(MFS_MANIFEST_VERSION)) ||
	    json_object_set_new(root, "repo", json_string(repo)) ||
	    json_object_set_new(root, "sequence", json_integer((json_int_t)sequence)) ||
	    json_object_set_new(root, "key_id", json_string(key_id)) ||
	    json_object_set(root, "files", files) ||
	    !(text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT))) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory building the manifest");
		goto out;
	}
	size_t n = strlen(text);
	if (n + 1 > MFS_MANIFEST_MAX) {
		rc = MFS_ERR(err, -EFBIG, MFS_ERR_USAGE,
			     "the manifest for '%s' would be %zu bytes, above the limit of %u; "
			     "use a larger --chunk-size", dir, n + 1, MFS_MANIFEST_MAX);
		goto out;
	}
	/* A final newline makes the file pleasant to view; it is signed like the rest. */
	char *t = realloc(text, n + 2);
	if (!t) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory building the manifest");
		goto out;
	}
	text = t;
	text[n] = '\n';
	text[n + 1] = '\0';
	*json = text;
	*len = n + 1;
	text = NULL;
out:
	free(text);
	free(buf);
	json_decref(files);
	json_decref(root);
	walk_free(&w);
	return rc;
}
