/*
 * fs_main.c - one mount's life: state, FUSE session, multi-threaded loop,
 * clean unmount.
 *
 * Mount options always given to libfuse: ro (the kernel refuses writes
 * itself), default_permissions (the kernel checks the 0444/0555 modes),
 * auto_unmount (fusermount3 keeps watch and unmounts if this process dies,
 * so the mount point never stays "Transport endpoint is not connected"),
 * fsname=<store> and subtype=modelfs (mount shows "fuse.modelfs"). The
 * kernel's request size follows max_write (libfuse asks for max_pages to
 * match), which libfuse sets to its 1 MiB buffer.
 *
 * Startup order: the store's tables for pins, the cache, the tree, then the
 * session and the mount, then the prefetch threads; the loop's first
 * request (INIT) writes readiness and closes the descriptor. So a failure
 * returned by mfs_fs_run always precedes readiness, and the caller reports
 * it on the descriptor itself. SIGTERM, SIGINT and SIGHUP end the loop;
 * the mount is then removed and this process's pin rows dropped.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "fs_ops.h"
#include "fs_maint.h"
#include "fs_prefetch.h"
#include "log.h"
#include "pin.h"

/* libfuse writes one line in several calls: collect until the newline. */
static void fuse_log_to_mfs(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	size_t used = strlen(line);
	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	size_t n = strlen(line);
	if (n && line[n - 1] != '\n' && n + 1 < sizeof(line))
		return;
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	enum mfs_log_level l = level <= FUSE_LOG_ERR ? MFS_LOG_ERROR
			     : level == FUSE_LOG_WARNING ? MFS_LOG_WARNING
			     : level == FUSE_LOG_NOTICE ? MFS_LOG_NOTICE
			     : level == FUSE_LOG_INFO ? MFS_LOG_INFO : MFS_LOG_DEBUG;
	mfs_log(l, "%s%s", strncmp(line, "fuse: ", 6) ? "fuse: " : "", line);
	line[0] = '\0';
}

/* A batch of prefetch finished: the file's resident count is stale. */
static void prefetch_done(void *ctx, const struct mfs_file *f, int rc)
{
	struct mfs_fs_file *ff = (struct mfs_fs_file *)((char *)f - offsetof(struct mfs_fs_file, f));
	mfs_fs_file_resident_stale(ff);
}

/* Appends s to the option string, escaping ',' and '\' as libfuse wants. */
static int opt_escape(char *out, size_t cap, const char *s)
{
	size_t k = strlen(out);
	for (; *s; s++) {
		if (k + 3 >= cap)
			return -ENAMETOOLONG;
		if (*s == ',' || *s == '\\')
			out[k++] = '\\';
		out[k++] = *s;
	}
	out[k] = '\0';
	return 0;
}

int mfs_fs_run(struct mfs_store *store, const struct mfs_fs_opts *o, struct mfs_err *err)
{
	int rc;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *cfg = NULL;
	struct mfs_maint *maint = NULL;
	bool mounted = false, handlers = false;
	struct mfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	fs->store = store;
	fs->ready_fd = o->ready_fd;
	fs->populate_wait = o->populate_wait;
	fs->on_ready = o->on_ready;
	fs->mount_time = (int64_t)time(NULL);
	fs->uid = getuid();
	fs->gid = getgid();
	pthread_mutex_init(&fs->files_lock, NULL);

	/* Pin rows of a previous daemon that was killed go first. */
	rc = mfs_pin_init(store, err);
	if (!rc)
		rc = mfs_pin_clear_dead(store, NULL, err);
	if (!rc)
		rc = mfs_cache_new(store, &(struct mfs_cache_opts){ .max_inflight = 8,
								    .deadline_ms = o->timeout_ms },
				   &fs->cache, err);
	if (!rc && (rc = mfs_tree_new(&fs->tree)))
		MFS_ERR(err, rc, MFS_ERR_NOMEM, "out of memory");
	if (!rc)
		rc = mfs_tree_refresh(fs->tree, store, true, NULL, err);
	if (rc)
		goto out;
	fs->last_refresh_ms = mfs_fs_now_ms();

	char opts[4096] = "ro,default_permissions,auto_unmount,subtype=modelfs,fsname=";
	if (opt_escape(opts, sizeof(opts), mfs_store_dir(store)) ||
	    (o->fuse_opts && *o->fuse_opts &&
	     snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), ",%s", o->fuse_opts) >=
		     (int)(sizeof(opts) - strlen(opts)))) {
		rc = MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_USAGE, "mount options too long");
		goto out;
	}
	char *argv[] = { "modelfs", "-o", opts, o->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
	fuse_set_log_func(fuse_log_to_mfs);
	se = fuse_session_new(&args, mfs_fs_ops_table(), sizeof(struct fuse_lowlevel_ops), fs);
	fuse_opt_free_args(&args);
	if (!se) {
		rc = MFS_ERR(err, -EINVAL, MFS_ERR_USAGE,
			     "cannot start a FUSE session with options '%s' (see the message above)",
			     opts);
		goto out;
	}
	fs->session = se;
	if (fuse_set_signal_handlers(se)) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_IO, "cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, o->mountpoint)) {
		rc = MFS_ERR(err, -EIO, MFS_ERR_IO,
			     "cannot mount at '%s' (see the message above; is /dev/fuse there, "
			     "and fusermount3 installed?)", o->mountpoint);
		goto out;
	}
	mounted = true;
	struct mfs_err perr = { 0 };
	if (mfs_pin_mount_register(store, o->mountpoint, &perr))
		mfs_log_warning("mount: cannot register the mount for status: %s", perr.msg);
	rc = mfs_prefetch_new(fs->cache, o->prefetch_threads, prefetch_done, fs, &fs->prefetch);
	if (rc) {
		MFS_ERR(err, rc, MFS_ERR_NOMEM, "cannot start the prefetch threads");
		goto out;
	}
	rc = mfs_maint_start(fs, o->mountpoint, &maint);
	if (rc) {
		MFS_ERR(err, rc, MFS_ERR_NOMEM, "cannot start the housekeeping thread");
		goto out;
	}
	mfs_log_notice("mount: serving %s at %s", mfs_store_dir(store), o->mountpoint);

	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}
	fuse_loop_cfg_set_max_threads(cfg, o->threads ? o->threads : 16);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	int lrc = fuse_session_loop_mt(se, cfg);
	if (lrc < 0)
		mfs_log_warning("mount: session loop ended: %s", strerror(-lrc));
	mfs_log_notice("mount: unmounting %s (%llu reads, %llu bytes, %llu failed reads, %llu"
		       " answered from the failure memory, %llu populate loops ended)",
		       o->mountpoint, (unsigned long long)fs->n_reads,
		       (unsigned long long)fs->n_read_bytes,
		       (unsigned long long)fs->n_read_errors,
		       (unsigned long long)fs->n_read_remembered,
		       (unsigned long long)fs->n_populate_ended);
	mfs_log_flush(true);
out:
	mfs_maint_stop(maint);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	mfs_prefetch_free(fs->prefetch);
	if (mounted)
		mfs_pin_drop_all(store, NULL);
	mfs_cache_free(fs->cache);
	mfs_tree_free(fs->tree);
	mfs_fs_files_free(fs);
	pthread_mutex_destroy(&fs->files_lock);
	free(fs);
	return rc;
}
