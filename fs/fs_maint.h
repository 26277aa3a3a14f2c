/*
 * fs_maint.h - a mount's housekeeping thread.
 *
 * First, it raises the kernel's read-ahead for the mount to 1 MiB (root only).
 * Then once a second, without blocking any request:
 *   - if the store's index.db was deleted or replaced while mounted, opens
 *     the new one (built from the records when it is new), writes this
 *     mount's pin rows and mount registration again and re-reads the tree;
 *   - removes the pin rows that a last close could not (disk full);
 *   - if a quota is set (or lowered by another process with
 *     `modelfs gc --quota`) and usage is above its high watermark, evicts
 *     down to the low one, so the quota holds even while nobody fetches.
 */
#ifndef MFS_FS_MAINT_H
#define MFS_FS_MAINT_H

#include "err.h"

struct mfs_fs;
struct mfs_maint;

/* Starts the thread for fs mounted at mountpoint (copied). 0 or -errno. */
int mfs_maint_start(struct mfs_fs *fs, const char *mountpoint, struct mfs_maint **out);

/* Stops and joins the thread; NULL is a no-op. */
void mfs_maint_stop(struct mfs_maint *m);

#endif
