/*
 * pin.h - cross-process pins: which artifacts are held open, by whom.
 *
 * An artifact is "active" while a file of it is held open through a mount
 * (an open pin) or while the user pinned it (`modelfs pin`, the column
 * artifacts.pinned). Eviction and removal, in any process, must see open pins
 * of every other process, so open pins live in the store's SQLite database,
 * table `pins(artifact_id, pid, starttime, count)`, not in the daemon's memory.
 *
 * A row names its process by pid and by the process start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot), so a recycled pid never keeps a
 * dead process's pin alive. Rows of processes that died without cleaning up
 * (kill -9, crash) are removed by mfs_pin_clear_dead(), which every reader of
 * pins (mfs_pin_active, mfs_pin_list) runs first. Assumption: every process
 * that uses one store sees the same /proc (one pid namespace).
 *
 * The table `mounts(pid, starttime, mountpoint, started)` registers the live
 * mounts of the store in the same way, for `modelfs status`.
 *
 * Thread-safe (serialised on the store's connection); blocks on SQLite I/O.
 */
#ifndef MFS_PIN_H
#define MFS_PIN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct mfs_store;

/* Creates the pins and mounts tables if missing. Idempotent. 0 or -EIO
 * (kind SQLITE). */
int mfs_pin_init(struct mfs_store *s, struct mfs_err *err);

/* Adds one hold of this process on artifact_id (count + 1; the row is
 * created on the first). 0, -ENOSPC (the index cannot grow: disk full) or
 * -EIO. */
int mfs_pin_hold(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err);

/* Removes one hold of this process (the row goes when its count reaches 0).
 * Dropping a hold that does not exist is a no-op. 0, -ENOSPC or -EIO. */
int mfs_pin_drop(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err);

/* Removes every pin and mount row of this process (clean shutdown). */
int mfs_pin_drop_all(struct mfs_store *s, struct mfs_err *err);

/* Removes the rows of processes that are gone (pid absent, or pid reused by a
 * process with another start time). *cleared (may be NULL) gets the number of
 * rows removed. 0 or -EIO. */
int mfs_pin_clear_dead(struct mfs_store *s, unsigned *cleared, struct mfs_err *err);

/* True if artifact_id is held open by a live process or pinned by the user.
 * Clears dead rows first. On a database error it answers true: callers use it
 * to refuse eviction, and refusing is the safe side. */
bool mfs_pin_active(struct mfs_store *s, int64_t artifact_id);

/* One open pin, as listed. */
struct mfs_pin {
	int64_t artifact_id;
	pid_t pid;
	uint64_t starttime;   /* clock ticks since boot */
	int64_t count;        /* holds (the daemon keeps one per artifact) */
};

/* Calls cb for every open pin of a live process (dead rows cleared first),
 * ordered by artifact. A non-zero return of cb stops and is returned. */
int mfs_pin_list(struct mfs_store *s, int (*cb)(void *ctx, const struct mfs_pin *p),
		 void *ctx, struct mfs_err *err);

/* Registers this process as serving a mount at mountpoint (absolute path). */
int mfs_pin_mount_register(struct mfs_store *s, const char *mountpoint,
			   struct mfs_err *err);

/* One live mount of the store. Strings valid only during the callback. */
struct mfs_pin_mount {
	pid_t pid;
	const char *mountpoint;
	int64_t started;      /* unix time */
};

/* Calls cb for every live mount (dead rows cleared first). */
int mfs_pin_mount_list(struct mfs_store *s,
		       int (*cb)(void *ctx, const struct mfs_pin_mount *m),
		       void *ctx, struct mfs_err *err);

/* Start time of pid (field 22 of /proc/<pid>/stat). 0, or -ESRCH when the
 * process does not exist, -EIO when the file cannot be parsed. */
int mfs_pin_proc_starttime(pid_t pid, uint64_t *out);

#endif
