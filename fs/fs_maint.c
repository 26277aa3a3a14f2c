/*
 * fs_maint.c - a mount's housekeeping thread (fs_maint.h).
 */
#include "fs_maint.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "evict.h"
#include "fs.h"
#include "log.h"
#include "pin.h"

#define PERIOD_S 1
#define READ_AHEAD_KB 1024 /* the kernel's FUSE default is 128: 128 KiB requests */

struct mfs_maint {
	struct mfs_fs *fs;
	char *mountpoint;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;               /* lock */
};

/* Undoes the octal escapes of /proc/self/mountinfo ("\040" for a space). */
static void unescape(char *p)
{
	char *q = p;
	while (*p) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*q++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 4;
		} else {
			*q++ = *p++;
		}
	}
	*q = '\0';
}

/* Raises the kernel's read-ahead for this mount (its backing device info,
 * named by the mount's device number), so sequential reads arrive as 1 MiB
 * requests instead of 128 KiB ones. The device number comes from
 * /proc/self/mountinfo, not from a stat of the mount point, which the mount
 * itself would have to answer. Only root may; otherwise it stays. */
static void tune_read_ahead(struct mfs_maint *m)
{
	char line[4096], dev[32] = "", path[96];
	FILE *mi = fopen("/proc/self/mountinfo", "r");
	while (mi && !dev[0] && fgets(line, sizeof(line), mi)) {
		char majmin[32], mnt[PATH_MAX];
		/* id parent major:minor root mount-point ... - fstype ... */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", majmin, mnt) != 2 ||
		    !strstr(line, " - fuse.modelfs "))
			continue;
		unescape(mnt);
		if (!strcmp(mnt, m->mountpoint))
			snprintf(dev, sizeof(dev), "%s", majmin);
	}
	if (mi)
		fclose(mi);
	if (!dev[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	FILE *fp = fopen(path, "w");
	bool ok = fp && fprintf(fp, "%d\n", READ_AHEAD_KB) >= 0;
	if (fp && fclose(fp))
		ok = false;
	if (!ok) {
		mfs_log_info("mount: read-ahead left at the kernel's default (%s: %s)", path,
			     strerror(errno));
		return;
	}
	mfs_log_info("mount: read-ahead %d KiB", READ_AHEAD_KB);
}

/* The index was replaced: what lived only in the old one is written again. */
static void after_reopen(struct mfs_maint *m)
{
	struct mfs_fs *fs = m->fs;
	struct mfs_err e = { 0 };
	if (mfs_pin_init(fs->store, &e) || mfs_fs_pins_rewrite(fs, &e))
		mfs_log_warning("mount: cannot record the open files in the new index: %s", e.msg);
	if (mfs_pin_mount_register(fs->store, m->mountpoint, &e))
		mfs_log_warning("mount: cannot register the mount in the new index: %s", e.msg);
	if (mfs_tree_refresh(fs->tree, fs->store, true, NULL, &e))
		mfs_log_warning("mount: cannot re-read the installed files: %s", e.msg);
	mfs_log_notice("mount: serving from the new index");
}

static void tick(struct mfs_maint *m)
{
	struct mfs_err e = { 0 };
	bool reopened = false;
	if (mfs_store_recheck(m->fs->store, &reopened, &e))
		mfs_log_warning("mount: cannot open the store's index again: %s", e.msg);
	else if (reopened)
		after_reopen(m);
	mfs_fs_pins_retry_drops(m->fs);
	mfs_log_flush(false); /* a rate-limited count is not held back for long */
	if (mfs_evict_enforce(m->fs->store, &e))
		mfs_log_warning("mount: cannot keep the quota: %s", e.msg);
}

static void *run(void *arg)
{
	struct mfs_maint *m = arg;
	tune_read_ahead(m); /* the mount exists already: before the first read */
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += PERIOD_S;
		while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
			;
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->lock);
		tick(m);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int mfs_maint_start(struct mfs_fs *fs, const char *mountpoint, struct mfs_maint **out)
{
	struct mfs_maint *m = calloc(1, sizeof(*m));
	if (!m || !(m->mountpoint = strdup(mountpoint))) {
		free(m);
		return -ENOMEM;
	}
	m->fs = fs;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	int rc = pthread_create(&m->thread, NULL, run, m);
	if (rc) {
		pthread_mutex_destroy(&m->lock);
		pthread_cond_destroy(&m->cond);
		free(m->mountpoint);
		free(m);
		return -rc;
	}
	*out = m;
	return 0;
}

void mfs_maint_stop(struct mfs_maint *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->mountpoint);
	free(m);
}
