/*
 * fuzz_select.c - libFuzzer target for artifact selection (core/select.c).
 *
 * The input is lines: the first is the selector ("-" for none), the others
 * the paths of a listing (at most 512). Properties: the result never
 * depends on the listing order (facts.md §3), so the listing reversed gives
 * the same answer; an accepted selection has a safe primary that is in its
 * file set, a set sorted by path, and a known format; the tree check and
 * the distribution id never fail on any path.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "select.h"

#define MAX_PATHS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	const char *paths[MAX_PATHS], *rev[MAX_PATHS];
	size_t n = 0;
	char *save = NULL, *line = strtok_r(text, "\n", &save);
	const char *selector = line && strcmp(line, "-") ? line : NULL;
	while (line && n < MAX_PATHS && (line = strtok_r(NULL, "\n", &save)))
		paths[n++] = line;
	for (size_t i = 0; i < n; i++)
		rev[i] = paths[n - 1 - i];

	struct mfs_err err = { 0 };
	struct mfs_selection a = { 0 }, b = { 0 };
	int ra = mfs_select(paths, n, selector, &a, &err);
	int rb = mfs_select(rev, n, selector, &b, &err);
	FUZZ_CHECK(ra == rb);
	if (ra == 0) {
		FUZZ_CHECK(!strcmp(a.primary, b.primary) && a.n_files == b.n_files);
		FUZZ_CHECK(mfs_path_is_safe(a.primary));
		FUZZ_CHECK(a.format == MFS_FORMAT_GGUF || a.format == MFS_FORMAT_SAFETENSORS);
		int found = 0;
		for (size_t i = 0; i < a.n_files; i++) {
			FUZZ_CHECK(!strcmp(a.files[i], b.files[i]));
			FUZZ_CHECK(i == 0 || strcmp(a.files[i - 1], a.files[i]) < 0);
			found |= !strcmp(a.files[i], a.primary);
		}
		FUZZ_CHECK(found);
		FUZZ_CHECK(a.distribution_id && a.distribution_id[0]);
	}
	mfs_selection_release(&a);
	mfs_selection_release(&b);

	int ta = mfs_paths_check_tree(paths, n, &err);
	int tb = mfs_paths_check_tree(rev, n, &err);
	FUZZ_CHECK((ta == 0) == (tb == 0));
	for (size_t i = 0; i < n; i++) {
		char *d = mfs_distribution_id(paths[i]);
		FUZZ_CHECK(d != NULL);
		free(d);
		FUZZ_CHECK(mfs_path_is_safe(paths[i]) == (mfs_path_check(paths[i], &err) == 0));
	}
	free(text);
	return 0;
}
