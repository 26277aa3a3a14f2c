/*
 * fs.h - the FUSE driver: what cmd_mount calls, and the per-mount state the
 * fs/ files share.
 *
 * fs/ turns kernel requests into core calls and nothing more. The split:
 *   fs_tree.c      the namespace (no FUSE)
 *   fs_file.c      per-file state (chunk digests, resident bytes) and open
 *                  pins per artifact (no FUSE)
 *   fs_prefetch.c  background prefetch threads with a bounded queue (no FUSE)
 *   fs_xattr.c     the user.modelfs.* attributes (no FUSE)
 *   fs_maint.c     once a second: the index still there, the quota kept (no FUSE)
 *   fs_populate.c  readers the kernel holds inside mmap(MAP_POPULATE) (no FUSE)
 *   fs_ops.c       the low-level FUSE handlers mfs_fs_op_<op>
 *   fs_main.c      session setup, mount options, readiness, signals
 *
 * There is no global state: everything a handler needs hangs off struct
 * mfs_fs, reached through fuse_req_userdata().
 */
#ifndef MFS_FS_H
#define MFS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "err.h"
#include "fs_tree.h"
#include "store.h"

struct mfs_prefetch;

/* What `modelfs mount` asks for. */
struct mfs_fs_opts {
	const char *mountpoint;   /* absolute path */
	const char *fuse_opts;    /* extra -o options passed to libfuse, or NULL */
	bool debug;               /* libfuse request tracing */
	unsigned threads;         /* max FUSE worker threads (0: default 16) */
	unsigned prefetch_threads;/* 0: default 4 */
	long timeout_ms;          /* a read gives up after this (EIO); 0: default
				   * (MODELFS_TIMEOUT, else 30 s; repo.h) */
	bool populate_wait;       /* never signal a reader looping in
				   * mmap(MAP_POPULATE); answer it from the
				   * failure memory only (docs/mount.md) */
	int ready_fd;             /* >= 0: written "OK\n" once the mount answers,
				   * by the first request (INIT), then closed */
	void (*on_ready)(void);   /* called once right after that, or NULL */
};

/*
 * Mounts store at o->mountpoint and serves requests until unmounted or
 * signalled (SIGTERM, SIGINT, SIGHUP: clean unmount). The store is
 * borrowed. Returns 0 after a clean unmount, or -errno with err set when the
 * mount could not be set up.
 */
int mfs_fs_run(struct mfs_store *store, const struct mfs_fs_opts *o, struct mfs_err *err);

/* --- per-file state (fs_file.c) ----------------------------------------- */

/*
 * A read of this file that failed, remembered for a while (the failure
 * memory, docs/mount.md): the same caller asking again for the same chunks
 * within MFS_FS_FAIL_MS gets the same error at once, without a new fetch
 * and without a new log line. The kernel asks again by itself: once after a
 * failed read-ahead, and forever from inside mmap(MAP_POPULATE).
 */
#define MFS_FS_FAILS 8             /* remembered failures per file */
#define MFS_FS_FAIL_MS 10000       /* how long one is remembered */
struct mfs_fs_fail {
	uint32_t first, last;       /* chunks of the failed read */
	pid_t tid;                  /* the caller, as the request names it */
	int err;                    /* the errno it was answered (> 0); 0: free */
	uint64_t until_ms;          /* monotonic ms the memory ends */
	unsigned repeats;           /* answered from memory since */
	unsigned ended;             /* signals sent to end a populate loop */
};

/* One installed file as the mount sees it; lives until the mount ends. */
struct mfs_fs_file {
	int64_t file_id;
	int64_t artifact_id;        /* the artifact whose pin an open takes */
	pthread_mutex_t lock;       /* guards the fields below */
	bool loaded;                /* f is filled (then never changes) */
	struct mfs_file f;          /* chunk digests; read without the lock once loaded */
	uint64_t resident_bytes;    /* cached answer of mfs_store_file_resident */
	uint32_t resident_chunks;
	uint64_t resident_at_ms;    /* monotonic ms of that answer; 0: none */
	unsigned opens;             /* open handles in this mount */
	bool whole_queued;          /* out-of-order pattern: whole file queued */
	struct mfs_fs_fail fails[MFS_FS_FAILS]; /* the failure memory */
	struct mfs_fs_file *next;   /* files_lock: hash chain */
};

/* Open pins of one artifact held by this mount. */
struct mfs_fs_art {
	int64_t artifact_id;
	pthread_mutex_t lock;       /* guards opens; held across the pin row write
				     * so that no open is answered before its pin
				     * is visible (contends only within the artifact) */
	unsigned opens;
	bool drop_pending;          /* the last close could not remove the pin
				     * row (disk full): it is still there */
	struct mfs_fs_art *next;    /* files_lock: hash chain */
};

#define MFS_FS_BUCKETS 1024

struct mfs_fs {
	struct mfs_store *store;    /* borrowed */
	struct mfs_cache *cache;
	struct mfs_tree *tree;
	struct mfs_prefetch *prefetch;
	void *session;              /* struct fuse_session * (fs_main.c) */
	bool populate_wait;         /* set once: populate loops are not ended */
	int ready_fd;               /* -1 once readiness was written */
	void (*on_ready)(void);
	int64_t mount_time;         /* unix time: mtime/ctime of every node */
	uid_t uid;                  /* owner shown for every node */
	gid_t gid;

	pthread_mutex_t files_lock; /* guards the two hash tables (chains only) */
	struct mfs_fs_file *files[MFS_FS_BUCKETS];
	struct mfs_fs_art *arts[MFS_FS_BUCKETS];

	_Atomic uint64_t last_refresh_ms; /* monotonic ms of the last tree check */
	_Atomic unsigned n_drop_pending;  /* artifacts with drop_pending set */

	/* Counters (relaxed atomics; shown by status and the log at exit). */
	_Atomic uint64_t n_reads, n_read_bytes, n_read_errors, n_opens, n_open_files;
	_Atomic uint64_t n_read_remembered; /* failed reads answered from memory */
	_Atomic uint64_t n_populate_ended;  /* populate loops ended by a signal */
};

uint64_t mfs_fs_now_ms(void);

/* The state of file_id, created on first use (no I/O). NULL only when out of
 * memory. */
struct mfs_fs_file *mfs_fs_file_get(struct mfs_fs *fs, int64_t file_id, int64_t artifact_id);

/* Loads the chunk digests once (blocks on the store). 0 or -errno. */
int mfs_fs_file_load(struct mfs_fs *fs, struct mfs_fs_file *ff, struct mfs_err *err);

/* Resident bytes and chunks, from a cached answer at most max_age_ms old. */
void mfs_fs_file_resident(struct mfs_fs *fs, struct mfs_fs_file *ff, uint64_t max_age_ms,
			  uint64_t *bytes, uint32_t *chunks);

/* Forgets the cached resident answer (after this mount fetched bytes). */
void mfs_fs_file_resident_stale(struct mfs_fs_file *ff);

/*
 * The failure memory. mfs_fs_fail_check: if tid failed a read of chunks
 * overlapping [first, last] less than MFS_FS_FAIL_MS ago, counts a repeat
 * and returns a copy of that entry (the errno to answer is out->err > 0);
 * else returns false. mfs_fs_fail_note: remembers a failed read (err > 0),
 * replacing an entry of the same caller and range, an expired one or the
 * one that ends first. mfs_fs_fail_ended: counts a signal sent for the
 * entry of tid and first. Thread-safe (ff->lock); no I/O.
 */
bool mfs_fs_fail_check(struct mfs_fs_file *ff, pid_t tid, uint32_t first, uint32_t last,
		       struct mfs_fs_fail *out);
void mfs_fs_fail_note(struct mfs_fs_file *ff, pid_t tid, uint32_t first, uint32_t last, int err);
void mfs_fs_fail_ended(struct mfs_fs_file *ff, pid_t tid, uint32_t first);

/* An open of ff: counts it and, on the artifact's first open in this mount,
 * writes the pin row. 0 or -EIO (pin not recorded; the open must fail). */
int mfs_fs_file_open(struct mfs_fs *fs, struct mfs_fs_file *ff, struct mfs_err *err);

/* The matching close: on the artifact's last close, removes the pin row. */
void mfs_fs_file_close(struct mfs_fs *fs, struct mfs_fs_file *ff);

/* Writes the pin row again for every artifact open in this mount (after
 * the store's index was replaced). 0 or the first error. */
int mfs_fs_pins_rewrite(struct mfs_fs *fs, struct mfs_err *err);

/* Removes the pin rows that a last close could not remove (the index could
 * not be written then); retried by the housekeeping thread. */
void mfs_fs_pins_retry_drops(struct mfs_fs *fs);

/* True if the artifact has open handles in this mount. */
bool mfs_fs_art_open(struct mfs_fs *fs, int64_t artifact_id);

/* Frees every file and artifact state (at unmount). */
void mfs_fs_files_free(struct mfs_fs *fs);

/* --- extended attributes (fs_xattr.c) ----------------------------------- */

#define MFS_XATTR_PREFIX "user.modelfs."

/* A list of attribute names and values, built per request. */
struct mfs_fs_xattrs {
	size_t n, cap;
	char **names;               /* full names, "user.modelfs.sha256" */
	char **values;
};

/* Builds every attribute of a node (files only; other nodes have none).
 * 0 or -errno (-ENOMEM, -EIO from the store). */
int mfs_fs_xattrs_build(struct mfs_fs *fs, const struct mfs_tree_stat *st,
			struct mfs_fs_xattrs *out, struct mfs_err *err);
void mfs_fs_xattrs_release(struct mfs_fs_xattrs *x);

#endif
