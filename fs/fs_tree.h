/*
 * fs_tree.h - the mount's namespace: an in-memory tree of the installed
 * files, built from the store's inventory, with no FUSE in it.
 *
 * Layout:
 *   /                              root
 *   /<org>/                        one directory per organisation
 *   /<org>/<name>@<commit>/        one directory per repository commit
 *   /<org>/<name>@<commit>/<path>  the installed files (and the directories
 *                                  of their paths)
 *   /<org>/<name>@<ref>            symlink to "<name>@<commit>" for every
 *                                  branch or tag used when adding ('/' in a
 *                                  ref is written %2F)
 *
 * Inode numbers are stable for the life of the tree: a path keeps its number
 * across rebuilds, and a node is never freed before the tree, so a number the
 * kernel holds (lookup count > 0) or an open file always resolves, even after
 * its artifact was removed (the node is then "absent": stat works, lookups by
 * name do not find it). Memory is bounded by the number of distinct paths
 * installed during the tree's life.
 *
 * Thread-safety: every function may be called from any thread. Readers share
 * a read lock; a rebuild takes the write lock only to swap in the new shape
 * (the store is read before, without the lock).
 */
#ifndef MFS_FS_TREE_H
#define MFS_FS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct mfs_store;
struct mfs_tree;

#define MFS_TREE_ROOT 1 /* inode number of the root */

enum mfs_node_type { MFS_NODE_DIR, MFS_NODE_FILE, MFS_NODE_LINK };

/* Depth of a directory below the root: the layout's levels. */
enum mfs_node_level {
	MFS_LEVEL_ROOT = 0,
	MFS_LEVEL_ORG = 1,     /* /<org> */
	MFS_LEVEL_REPO = 2,    /* /<org>/<name>@<commit> and the aliases */
	MFS_LEVEL_INNER = 3,   /* anything deeper */
};

/* A copy of a node's attributes, valid after the lock is dropped. */
struct mfs_tree_stat {
	uint64_t ino;
	enum mfs_node_type type;
	enum mfs_node_level level;
	bool present;          /* in the current inventory */
	uint64_t size;         /* files: bytes; links: target length */
	uint32_t nlink;
	int64_t file_id;       /* files only, else 0 */
	int64_t artifact_id;   /* files only, else 0 */
};

/* 0 or -ENOMEM. */
int mfs_tree_new(struct mfs_tree **out);
void mfs_tree_free(struct mfs_tree *t);

/* Re-reads the inventory if the store's generation changed since the last
 * build (or always when force). *changed (may be NULL) tells whether the
 * shape was rebuilt. Concurrent callers are serialised (a caller that waited
 * finds the generation current and returns). Readers are held off only while
 * the new shape is swapped in. 0 or the store's -errno. */
int mfs_tree_refresh(struct mfs_tree *t, struct mfs_store *s, bool force,
		     bool *changed, struct mfs_err *err);

/* Finds name in directory parent. On success fills *out and adds one to the
 * node's lookup count. -ENOENT, -ENOTDIR (parent is not a directory),
 * -ENAMETOOLONG. */
int mfs_tree_lookup(struct mfs_tree *t, uint64_t parent, const char *name,
		    struct mfs_tree_stat *out);

/* Attributes of ino (present or not). -ENOENT for an unknown number. */
int mfs_tree_stat(struct mfs_tree *t, uint64_t ino, struct mfs_tree_stat *out);

/* Subtracts n from ino's lookup count (the kernel's forget). */
void mfs_tree_forget(struct mfs_tree *t, uint64_t ino, uint64_t n);

/* Sum of every node's lookup count (for tests and status). */
uint64_t mfs_tree_lookups(struct mfs_tree *t);

/* Copies a symlink's target (NUL-terminated) into buf. -EINVAL if ino is
 * not a link, -ERANGE if cap is too small, -ENOENT. */
int mfs_tree_readlink(struct mfs_tree *t, uint64_t ino, char *buf, size_t cap);

/* Path of ino from the root, without a leading '/'. -ERANGE, -ENOENT. */
int mfs_tree_path(struct mfs_tree *t, uint64_t ino, char *buf, size_t cap);

/*
 * Lists directory ino from position off: entry k (0 ".", 1 "..", 2.. the
 * children in name order) is passed to cb with next = k + 1. cb returns
 * non-zero when it has no room left (that entry is not consumed). Runs under
 * the read lock: cb must not call back into the tree. 0, -ENOTDIR, -ENOENT.
 */
int mfs_tree_readdir(struct mfs_tree *t, uint64_t ino, off_t off,
		     int (*cb)(void *ctx, const char *name, const struct mfs_tree_stat *st,
			       off_t next),
		     void *ctx);

/* Number of present files and directories (for status). */
void mfs_tree_counts(struct mfs_tree *t, uint64_t *files, uint64_t *dirs);

#endif
