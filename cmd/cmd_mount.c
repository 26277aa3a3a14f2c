/*
 * cmd_mount.c - `modelfs mount MNT [-o opts] [-f]`: the FUSE daemon.
 *
 * Background mode (the default, and what mount(8) and fstab use) forks
 * before anything is opened: the child opens the store, mounts and serves;
 * the parent waits on a pipe and exits 0 only once the child's mount has
 * answered the kernel's INIT, or 1 if the child failed or died first. So
 * `modelfs mount` returning 0 means the mount is live, and no SQLite
 * connection or thread ever crosses the fork. Until it is ready the child
 * still writes messages to the terminal; from then on to syslog only.
 *
 * Options of ours inside -o: quota=SIZE, quota_high=PCT, quota_low=PCT (set
 * in the store for every process, before the mount starts), threads=N,
 * prefetch=N, timeout=SECS (the deadline of a read, repo.h). Words that only mean
 * something to mount(8) or fstab (defaults, _netdev, nofail, noauto, auto,
 * user, users, nouser, x-*, comment=*, rw, ro) are dropped; everything else
 * goes to libfuse (allow_other, nosuid, ...), which rejects what it does not
 * know.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <mntent.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <fcntl.h>

#include "cmd.h"
#include "evict.h"
#include "fs.h"
#include "log.h"
#include "repo.h"
#include "store.h"

extern char **environ;

/* A daemon killed with SIGKILL can leave its mount behind: the auto_unmount
 * watcher unmounts only when the mount point answers ENOTCONN, and it can
 * look before the kernel has aborted the connection. Such a dead modelfs
 * mount at the mount point is detached before mounting again; a dead mount
 * of anything else is left alone. True if one was detached. */
static bool detach_dead_mount(const char *arg)
{
	char path[PATH_MAX], cwd[PATH_MAX];
	/* stat may still answer from attributes the kernel cached; opening
	 * the directory asks the (dead) daemon. */
	int fd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
	if (fd >= 0 || errno != ENOTCONN)
		return false;
	if (arg[0] == '/')
		snprintf(path, sizeof(path), "%s", arg);
	else if (!getcwd(cwd, sizeof(cwd)) ||
		 snprintf(path, sizeof(path), "%s/%s", cwd, arg) >= (int)sizeof(path))
		return false;
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	FILE *m = setmntent("/proc/self/mounts", "r");
	bool ours = false;
	for (struct mntent *e; m && (e = getmntent(m));)
		ours |= !strcmp(e->mnt_dir, path) && !strcmp(e->mnt_type, "fuse.modelfs");
	if (m)
		endmntent(m);
	if (!ours)
		return false;
	bool done = umount2(path, MNT_DETACH) == 0;
	if (!done) { /* not root: the setuid helper may */
		char *argv[] = { "fusermount3", "-u", "-z", path, NULL };
		pid_t pid;
		int status;
		done = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0 &&
		       waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		       WEXITSTATUS(status) == 0;
	}
	if (done)
		fprintf(stderr, "modelfs: detached the dead mount of a modelfs daemon that was killed"
				" at '%s'\n", path);
	return done;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: modelfs [--store DIR] mount MOUNTPOINT [-o OPTIONS] [-f] [-d] [-v]\n\n"
		"Presents every installed artifact read-only at MOUNTPOINT/<org>/<repo>@<commit>/<path>;\n"
		"bytes are fetched on first read and verified before they are returned.\n\n"
		"options:\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -d, --debug        foreground, with FUSE request tracing\n"
		"  -v, --verbose      more log output\n"
		"  -o OPTIONS         comma-separated:\n"
		"                       quota=SIZE     cache quota (K/M/G/T; 0: none), kept for the store\n"
		"                       quota_high=PCT eviction starts above PCT%% of it (default 90)\n"
		"                       quota_low=PCT  and stops at PCT%% (default 70)\n"
		"                       threads=N      FUSE worker threads (default 16)\n"
		"                       prefetch=N     prefetch threads (default 4)\n"
		"                       timeout=SECS   a read that gets no verified bytes by then fails\n"
		"                                      with EIO (default 30, or $MODELFS_TIMEOUT)\n"
		"                       populate_loop=end|wait  a process that the kernel keeps\n"
		"                                      inside mmap(MAP_POPULATE) retrying a read\n"
		"                                      that keeps failing is sent SIGTERM (end,\n"
		"                                      the default) or left looping (wait)\n"
		"                       allow_other    let other users read the mount\n"
		"                     fstab words (defaults, _netdev, nofail, ...) are ignored\n"
		"  --help             this text\n\n"
		"Unmount with 'fusermount3 -u MOUNTPOINT', 'umount MOUNTPOINT' or SIGTERM.\n");
}

struct mount_args {
	char fuse_opts[2048];
	unsigned threads, prefetch;
	long timeout_ms;                /* 0: default */
	bool populate_wait;             /* populate_loop=wait */
	bool has_quota;
	unsigned long long quota;
	unsigned quota_high, quota_low; /* percent; 0: keep */
};

static bool dropped_word(const char *w)
{
	static const char *const words[] = { "defaults", "_netdev", "nofail", "noauto", "auto",
					     "user", "users", "nouser", "rw", "ro", "owner",
					     "group", "" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcmp(w, words[i]))
			return true;
	return !strncmp(w, "x-", 2) || !strncmp(w, "comment=", 8);
}

static int parse_num(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* Splits one -o argument into ours and libfuse's. 0 or a usage status. */
static int parse_opts(struct mount_args *a, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	if (!copy)
		return mfs_cmd_usage("mount", "out of memory");
	int rc = 0;
	for (char *w = strtok_r(copy, ",", &save); w && !rc; w = strtok_r(NULL, ",", &save)) {
		unsigned long long q;
		if (!strncmp(w, "quota=", 6)) {
			if (mfs_cmd_parse_size(w + 6, &q))
				rc = mfs_cmd_usage("mount", "bad quota '%s' (examples: 500M, 20G)", w + 6);
			a->has_quota = true;
			a->quota = q;
		} else if (!strncmp(w, "quota_high=", 11)) {
			if (parse_num(w + 11, 2, 100, &a->quota_high))
				rc = mfs_cmd_usage("mount", "bad quota_high '%s' (2 to 100)", w + 11);
		} else if (!strncmp(w, "quota_low=", 10)) {
			if (parse_num(w + 10, 1, 99, &a->quota_low))
				rc = mfs_cmd_usage("mount", "bad quota_low '%s' (1 to 99)", w + 10);
		} else if (!strncmp(w, "threads=", 8)) {
			if (parse_num(w + 8, 1, 256, &a->threads))
				rc = mfs_cmd_usage("mount", "bad threads '%s' (1 to 256)", w + 8);
		} else if (!strncmp(w, "timeout=", 8)) {
			if (mfs_fetch_parse_timeout(w + 8, &a->timeout_ms))
				rc = mfs_cmd_usage("mount", "bad timeout '%s' (whole seconds, 1 to %d)",
						   w + 8, MFS_FETCH_DEADLINE_MAX_S);
		} else if (!strncmp(w, "populate_loop=", 14)) {
			if (!strcmp(w + 14, "end") || !strcmp(w + 14, "wait"))
				a->populate_wait = !strcmp(w + 14, "wait");
			else
				rc = mfs_cmd_usage("mount", "bad populate_loop '%s' (end or wait)",
						   w + 14);
		} else if (!strncmp(w, "prefetch=", 9)) {
			if (parse_num(w + 9, 1, 64, &a->prefetch))
				rc = mfs_cmd_usage("mount", "bad prefetch '%s' (1 to 64)", w + 9);
		} else if (!dropped_word(w)) {
			size_t len = strlen(a->fuse_opts);
			if (len + strlen(w) + 2 > sizeof(a->fuse_opts))
				rc = mfs_cmd_usage("mount", "mount options too long");
			else
				snprintf(a->fuse_opts + len, sizeof(a->fuse_opts) - len, "%s%s",
					 len ? "," : "", w);
		}
	}
	free(copy);
	return rc;
}

/* Background logging: syslog always; stderr too until the mount is ready. */
static atomic_bool bg_ready;

static void log_bg(enum mfs_log_level level, const char *msg)
{
	syslog((int)level, "%s", msg);
	if (!atomic_load(&bg_ready))
		fprintf(stderr, "modelfs: %s%s\n",
			level <= MFS_LOG_ERROR ? "error: " : level == MFS_LOG_WARNING ? "warning: " : "",
			msg);
}

/* The mount answers: the terminal may go away now. */
static void bg_on_ready(void)
{
	int null = open("/dev/null", O_WRONLY);
	if (null >= 0) {
		dup2(null, 2);
		close(null);
	}
	atomic_store(&bg_ready, true);
}

static void log_fg(enum mfs_log_level level, const char *msg)
{
	fprintf(stderr, "modelfs: %s%s\n",
		level <= MFS_LOG_ERROR ? "error: " : level == MFS_LOG_WARNING ? "warning: " : "",
		msg);
}

/* Parent side of background mode: 0 once the child says OK. */
static int wait_ready(pid_t child, int fd)
{
	char buf[8] = "";
	size_t got = 0;
	while (got < 3) {
		ssize_t n = read(fd, buf + got, 3 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got == 3 && !memcmp(buf, "OK\n", 3))
		return 0;
	int status;
	if (got == 0 && waitpid(child, &status, WNOHANG) == child && WIFSIGNALED(status))
		fprintf(stderr, "modelfs: the mount daemon died (signal %d) before the mount was ready\n",
			WTERMSIG(status));
	return 1;
}

int mfs_cmd_mount(struct mfs_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount_args a = { 0 };
	bool foreground = false, debug = false;
	int verbose = 0, c, rc;

	while ((c = getopt_long(argc, argv, "fdvo:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': foreground = true; break;
		case 'd': debug = foreground = true; break;
		case 'v': verbose++; break;
		case 'o':
			if ((rc = parse_opts(&a, optarg)))
				return rc;
			break;
		case 'h': usage(stdout); return 0;
		default: return mfs_cmd_usage("mount", "unknown option");
		}
	}
	/* Options may also follow the mount point (getopt moves them first; this
	 * loop takes what is left: the mount point). */
	const char *mnt_arg = NULL;
	for (int i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			if ((rc = parse_opts(&a, argv[++i])))
				return rc;
		} else if (!strcmp(argv[i], "-f")) {
			foreground = true;
		} else if (!mnt_arg) {
			mnt_arg = argv[i];
		} else {
			return mfs_cmd_usage("mount", "unexpected argument '%s'", argv[i]);
		}
	}
	if (!mnt_arg)
		return mfs_cmd_usage("mount", "missing the mount point");

	char mnt[PATH_MAX];
	struct stat st;
	detach_dead_mount(mnt_arg);
	if ((!realpath(mnt_arg, mnt) || stat(mnt, &st)) && errno == ENOTCONN) {
		fprintf(stderr, "modelfs: mount point '%s' is the dead mount of a FUSE daemon that"
				" is gone\n  unmount it first (fusermount3 -u -z '%s')\n", mnt_arg,
			mnt_arg);
		return 1;
	}
	if (!realpath(mnt_arg, mnt) || stat(mnt, &st)) {
		fprintf(stderr, "modelfs: mount point '%s' does not exist: %s\n"
				"  create it first (mkdir -p '%s')\n", mnt_arg, strerror(errno), mnt_arg);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "modelfs: mount point '%s' is not a directory\n", mnt_arg);
		return 1;
	}

	/* The store by absolute path: the daemon leaves the directory, and the
	 * path names the mount's source in /proc/mounts. */
	char store_abs[PATH_MAX];
	if (cmd->store_dir && cmd->store_dir[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(store_abs, sizeof(store_abs), "%s/%s", cwd, cmd->store_dir) >=
			    (int)sizeof(store_abs)) {
			fprintf(stderr, "modelfs: store path '%s' too long\n", cmd->store_dir);
			return 1;
		}
		cmd->store_dir = store_abs;
	}

	enum mfs_log_level level = debug ? MFS_LOG_DEBUG : verbose ? MFS_LOG_INFO : MFS_LOG_NOTICE;
	int ready[2] = { -1, -1 };
	if (!foreground) {
		if (pipe2(ready, O_CLOEXEC)) {
			fprintf(stderr, "modelfs: cannot create a pipe: %s\n", strerror(errno));
			return 1;
		}
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "modelfs: cannot fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid > 0) {
			close(ready[1]);
			return wait_ready(pid, ready[0]);
		}
		close(ready[0]);
		setsid();
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			if (null > 2)
				close(null);
		}
		openlog("modelfs", LOG_PID, LOG_DAEMON);
		mfs_log_setup(log_bg, level);
	} else {
		mfs_log_setup(log_fg, level);
	}

	struct mfs_store *store = mfs_cmd_store(cmd);
	rc = store ? 0 : -EIO;
	if (!rc && (a.has_quota || a.quota_high || a.quota_low)) {
		struct mfs_err qerr = { 0 };
		struct mfs_quota now;
		if (!a.has_quota && !mfs_evict_get_quota(store, &now))
			a.quota = now.bytes;
		rc = mfs_evict_set_quota(store, a.quota, a.quota_high, a.quota_low, &qerr);
		if (rc)
			mfs_log_error("mount: cannot set the quota: %s", qerr.msg);
	}
	if (!rc) {
		if (!foreground && chdir("/"))
			mfs_log_warning("mount: cannot change directory to /: %s", strerror(errno));
		struct mfs_fs_opts o = {
			.mountpoint = mnt,
			.fuse_opts = a.fuse_opts[0] ? a.fuse_opts : NULL,
			.debug = debug,
			.threads = a.threads,
			.timeout_ms = a.timeout_ms,
			.populate_wait = a.populate_wait,
			.prefetch_threads = a.prefetch,
			.ready_fd = foreground ? -1 : ready[1],
			.on_ready = foreground ? NULL : bg_on_ready,
		};
		struct mfs_err err = { 0 };
		rc = mfs_fs_run(store, &o, &err);
		if (rc)
			mfs_cmd_fail(&err, "cannot mount", NULL);
	}
	if (rc && ready[1] >= 0) {
		/* Failures come before readiness; the parent is still reading. */
		if (write(ready[1], "E\n", 2) != 2)
			mfs_log_debug("mount: parent gone");
		close(ready[1]);
	}
	if (!foreground) {
		atomic_store(&bg_ready, true);
		closelog();
	}
	return rc ? 1 : 0;
}
