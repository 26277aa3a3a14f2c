/*
 * repo_mem.h - an in-memory repository for tests, with fault injection.
 *
 * A test builds a repository under a name, adds files and revisions, then
 * opens it through mfs_repo_open("mem:NAME"). Faults make fetch misbehave the
 * way a network does: wrong bytes (persistently or once), failures.
 * Registration is process-global and thread-safe.
 */
#ifndef MFS_REPO_MEM_H
#define MFS_REPO_MEM_H

#include "repo.h"

struct mfs_repo_mem;

/* Creates (or returns the existing) repository named name. Never NULL. */
struct mfs_repo_mem *mfs_repo_mem_get(const char *name);
/* Adds or replaces file path of repo "org/name" at commit with a copy of data. */
void mfs_repo_mem_put(struct mfs_repo_mem *m, const char *repo, const char *commit,
		      const char *path, const void *data, size_t len);
/* Points revision name (branch or tag) of repo at commit. */
void mfs_repo_mem_ref(struct mfs_repo_mem *m, const char *repo, const char *name,
		      const char *commit);

enum mfs_repo_mem_fault {
	MFS_MEM_FAULT_NONE = 0,
	MFS_MEM_FAULT_CORRUPT_ONCE,   /* next fetch of path returns flipped bytes */
	MFS_MEM_FAULT_CORRUPT_ALWAYS,
	MFS_MEM_FAULT_FAIL,           /* fetches of path fail with -EIO */
};
void mfs_repo_mem_fault(struct mfs_repo_mem *m, const char *path, enum mfs_repo_mem_fault f);
/* Number of ranges served for path so far (all repos of m). */
unsigned long mfs_repo_mem_fetches(struct mfs_repo_mem *m, const char *path);
/* Forgets every registered repository. */
void mfs_repo_mem_reset(void);

int mfs_repo_mem_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err);

#endif
