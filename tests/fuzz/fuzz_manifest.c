/*
 * fuzz_manifest.c - libFuzzer target for the manifest reader
 * (core/manifest.c), the first code to touch a manifest from the network,
 * before its signature is checked.
 *
 * Properties of an accepted manifest: files sorted and unique, each path safe
 * and found by mfs_manifest_find, no path also a directory, chunk sizes in
 * the documented range and chunk counts matching the sizes; a refused one
 * leaves *out untouched and says why.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "manifest.h"
#include "select.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_manifest m = { .n_files = 7 };
	struct mfs_err err = { 0 };
	int rc = mfs_manifest_parse((const char *)data, size, &m, &err);
	if (rc) {
		FUZZ_CHECK(rc < 0 && err.msg[0] && m.n_files == 7 && !m.files);
		return 0;
	}
	FUZZ_CHECK(m.n_files >= 1 && m.files && m.repo && mfs_manifest_repo_is_valid(m.repo));
	FUZZ_CHECK(m.sequence >= 1 && strlen(m.key_id) == 16);
	const char **paths = malloc(m.n_files * sizeof(*paths));
	FUZZ_CHECK(paths != NULL);
	for (size_t i = 0; i < m.n_files; i++) {
		const struct mfs_manifest_file *f = &m.files[i];
		paths[i] = f->path;
		FUZZ_CHECK(mfs_manifest_path_is_safe(f->path));
		FUZZ_CHECK(i == 0 || strcmp(m.files[i - 1].path, f->path) < 0);
		FUZZ_CHECK(mfs_manifest_find(&m, f->path) == f);
		FUZZ_CHECK(mfs_manifest_chunk_size_is_valid(f->chunk_size));
		FUZZ_CHECK((uint64_t)f->n_chunks ==
			   f->size / f->chunk_size + (f->size % f->chunk_size != 0));
		FUZZ_CHECK((f->n_chunks == 0) == (f->chunks == NULL));
	}
	FUZZ_CHECK(mfs_paths_check_tree(paths, m.n_files, &err) == 0);
	free(paths);
	mfs_manifest_release(&m);
	return 0;
}
