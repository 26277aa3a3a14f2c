/*
 * select.h - which files of a repository listing make up the model artifact.
 *
 * Given the paths of one commit's listing and an optional selector (from a
 * model ref), pick the primary file and its file set, per facts.md §3
 * (mesh-llm's model-artifact rules), restated here.
 *
 * With a selector S (compared in ASCII lower case; B = basename of the path),
 * a path ranks:
 *   0  the path or B equals S;
 *   1  "quant-like": the path ends ".gguf" and contains "/S/", "-S-" or ".S-",
 *      or ends "-S.gguf", ".S.gguf" or "/S.gguf" (a literal substring test on
 *      the repo-relative path, so "Q8_0/x.gguf" has no "/q8_0/" in it);
 *   2  B = S.safetensors;   3  B starts "S-00001-of-" and ends ".safetensors";
 *   4  B = S.gguf;          5  B starts "S-00001-of-" and ends ".gguf".
 * Without a selector (B lower-cased, the path too):
 *   0  B = "model.safetensors";
 *   1  B is a first safetensors shard "P-00001-of-MMMMM.safetensors";
 *   2  a ".gguf" path containing "-00001-of-";   3  any other ".gguf" path;
 *   GGUF candidates exclude basenames starting "mmproj" and paths that contain
 *   "-000" without "-00001-of-" (later shards).
 * Ties within a rank go to the lower preference score (0 if the path contains
 * "-00001-of-"; else 1 + the index of the first of Q4_K_M, Q4_K_S, Q4_1,
 * Q5_K_M, Q5_K_S, Q8_0, BF16 that the path contains, case-sensitively; else 9),
 * then to the smaller path in byte order. The ranking is a total order on
 * distinct paths, so the result never depends on the listing order.
 *
 * Split sets. A path is a shard when it ends "-NNNNN-of-MMMMM.gguf" or
 * "-NNNNN-of-MMMMM.safetensors" (exactly five digits each, case-sensitive);
 * its prefix is everything before "-NNNNN", directory included.
 * The file set of a shard primary is every listed shard with the same prefix,
 * the same MMMMM and the same extension, sorted by path bytes; any other
 * primary's set is the primary alone. A safetensors index
 * ("model.safetensors.index.json") beside safetensors shards is NOT part of
 * the set: facts.md says the set of a split primary is its shards, nothing
 * more (product.md: sidecars are what the user names). modelfs goes further
 * than mesh-llm (which only groups GGUF shards): the set must hold every shard
 * 1..MMMMM, else -ENOENT naming the first missing shard; a shard numbered 0 or
 * above its total, or a total of 0, is -EINVAL.
 *
 * Paths that fail mfs_path_is_safe are ignored: they can never be served, and
 * a hostile listing entry such as "../x.gguf" must not stop a good artifact
 * in the same repository from being selected. Duplicate paths count once.
 *
 * No function here blocks or keeps state; all are thread-safe.
 */
#ifndef MFS_SELECT_H
#define MFS_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum mfs_format { MFS_FORMAT_UNKNOWN = 0, MFS_FORMAT_GGUF, MFS_FORMAT_SAFETENSORS };

/* Longest repo-relative path mfs_path_is_safe accepts, in bytes. With the
 * mount point, "org/repo@commit/" and this, a full path stays well under the
 * kernel's PATH_MAX (4096) for any sensible mount point. */
#define MFS_PATH_MAX 1024
/* Longest path component, in bytes: the kernel's NAME_MAX. A longer name
 * could be listed but never looked up through the mount. */
#define MFS_PATH_NAME_MAX 255

struct mfs_selection {
	char *primary;            /* path of the primary file (also in files[]) */
	char **files;             /* the file set, sorted by path bytes; each malloc'd */
	size_t n_files;           /* >= 1 */
	enum mfs_format format;   /* GGUF or SAFETENSORS, never UNKNOWN */
	char *distribution_id;    /* non-empty, see mfs_distribution_id */
	unsigned split_count;     /* 0 when not split, else MMMMM of -NNNNN-of-MMMMM */
};

/*
 * Picks the primary artifact among paths[0..n) (any order; NULL entries and
 * unsafe paths are ignored) for selector (NULL = none), and builds its file
 * set. On success returns 0 and fills *out (all malloc'd; release with
 * mfs_selection_release); *out is written only on success. Errors:
 *   -ENOENT (MFS_ERR_NOT_FOUND): no match, with exactly the text
 *       "no model artifact matching selector 'S' in repository" or
 *       "no supported model artifact files found in repository";
 *       or a split set misses a shard: the message names the missing path;
 *   -ENOTSUP (MFS_ERR_FORMAT): the primary is neither .gguf, .safetensors
 *       nor .safetensors.index.json (e.g. selector "README.md");
 *   -EINVAL (MFS_ERR_FORMAT): a shard numbered out of range, or the primary's
 *       distribution id would be empty (".gguf");
 *   -EINVAL (MFS_ERR_USAGE): selector is "" or has a control character, or
 *       paths is NULL while n > 0;
 *   -ENOMEM.
 */
int mfs_select(const char *const *paths, size_t n, const char *selector,
	       struct mfs_selection *out, struct mfs_err *err);

/*
 * The ranking step alone: the index in paths of the primary that the rules
 * above pick, without the format, distribution-id and shard checks that
 * mfs_select adds (so facts.md's "a file named Q4_K_M" case can be seen to
 * pick "Q4_K_M" before mfs_select refuses its format). Returns 0 and sets
 * *index (to the lowest index when a path is listed twice); -ENOENT with the
 * texts above; -EINVAL for a bad selector; -ENOMEM.
 */
int mfs_select_primary(const char *const *paths, size_t n, const char *selector,
		       size_t *index, struct mfs_err *err);

/* Frees everything and zeroes *sel. NULL, or a zeroed selection, is a no-op. */
void mfs_selection_release(struct mfs_selection *sel);

/* Format from a path's suffix, case-sensitively: ".gguf" -> GGUF;
 * ".safetensors" or ".safetensors.index.json" -> SAFETENSORS; else UNKNOWN. */
enum mfs_format mfs_format_from_path(const char *path);

/* "gguf", "safetensors", "unknown" (static strings). */
const char *mfs_format_name(enum mfs_format f);

/*
 * distribution_id of a path: the basename minus a ".gguf" or ".safetensors"
 * suffix (case-sensitive; other names keep their suffix), then minus a shard
 * suffix "-NNNNN-of-MMMMM". "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00006.gguf"
 * gives "GLM-5.1-UD-IQ2_M". malloc'd; may be "" (for ".gguf"); NULL on ENOMEM
 * or a NULL path.
 */
char *mfs_distribution_id(const char *path);

/* canonical_ref "org/repo@commit/primary", malloc'd; NULL on ENOMEM or a
 * NULL argument. The arguments are not validated. */
char *mfs_canonical_ref(const char *org, const char *repo, const char *commit,
			const char *primary);

/*
 * A repo-relative path is safe: non-empty, at most MFS_PATH_MAX bytes,
 * relative (no leading '/'), every component at most MFS_PATH_NAME_MAX bytes,
 * no empty, "." or ".." components (so no "//" and no trailing '/'), no byte
 * below 0x20, no 0x7f, no backslash. NULL is unsafe.
 */
bool mfs_path_is_safe(const char *path);

/*
 * The same rules as mfs_path_is_safe, with the reason: 0 if path is safe,
 * else -EINVAL (MFS_ERR_FORMAT) and a message that quotes the path (control
 * characters escaped) and names the rule it breaks.
 */
int mfs_path_check(const char *path, struct mfs_err *err);

/*
 * The paths of one commit as a tree: 0 if no safe path among paths[0..n) is
 * also a directory of another ("m.gguf" and "m.gguf/n.gguf": the first could
 * never be opened once the second made it a directory), else -EINVAL
 * (MFS_ERR_FORMAT) naming both. Unsafe and NULL entries are skipped (they
 * are never served); duplicates are not a conflict. -ENOMEM. Sorts a copy of
 * the pointers, O(n log n).
 */
int mfs_paths_check_tree(const char *const *paths, size_t n, struct mfs_err *err);

#endif
