/*
 * fs_populate.c - see fs_populate.h.
 *
 * Why a signal: mm/gup.c's populate loop (__mm_populate ->
 * populate_vma_page_range) calls the fault handler without FOLL_TRIED, so
 * filemap_fault always thinks it is the first attempt: it drops the mmap
 * lock for the read, and when the read fails it answers VM_FAULT_RETRY
 * instead of VM_FAULT_SIGBUS. The loop only checks fatal_signal_pending().
 * What the daemon answers (any errno) does not change that, and SIGBUS does
 * not count as fatal there (a core-dumping signal waits for the return to
 * user space, which never comes). SIGTERM with its default action does, and
 * SIGKILL always does. Measured on 6.x kernels; see docs/mount.md.
 */
#include "fs_populate.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Reads a small /proc file into buf (NUL-terminated); 0 or -errno. */
static int read_proc(pid_t tid, const char *what, char *buf, size_t cap)
{
	char path[64];
	int n = snprintf(path, sizeof(path), "/proc/%d/%s", (int)tid, what);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t got = read(fd, buf, cap - 1);
	int e = errno;
	close(fd);
	if (got < 0)
		return -e;
	buf[got] = '\0';
	return 0;
}

static bool populating_call(long nr)
{
	switch (nr) {
#ifdef SYS_mmap
	case SYS_mmap:
#endif
#ifdef SYS_mmap2
	case SYS_mmap2:
#endif
#ifdef SYS_mremap
	case SYS_mremap:
#endif
#ifdef SYS_mlock
	case SYS_mlock:
#endif
#ifdef SYS_mlock2
	case SYS_mlock2:
#endif
#ifdef SYS_mlockall
	case SYS_mlockall:
#endif
#ifdef SYS_remap_file_pages
	case SYS_remap_file_pages:
#endif
		return true;
	default:
		return false;
	}
}

bool mfs_fs_populating(pid_t tid, char *comm, size_t cap)
{
	char buf[256];
	if (tid <= 0 || read_proc(tid, "syscall", buf, sizeof(buf)))
		return false;
	/* "NR arg1 ... sp pc" while in a call; "-1 sp pc" or "running" else. */
	char *end;
	errno = 0;
	long nr = strtol(buf, &end, 10);
	if (errno || end == buf || nr < 0 || !populating_call(nr))
		return false;
	if (comm && cap) {
		comm[0] = '\0';
		if (!read_proc(tid, "comm", buf, sizeof(buf))) {
			buf[strcspn(buf, "\n")] = '\0';
			/* Any process names itself: no control bytes into the log. */
			for (char *p = buf; *p; p++)
				if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
					*p = '?';
			snprintf(comm, cap, "%s", buf);
		}
	}
	return true;
}

/* The thread group (process) of tid, from /proc/<tid>/status. */
static pid_t tgid_of(pid_t tid)
{
	char buf[2048];
	if (read_proc(tid, "status", buf, sizeof(buf)))
		return 0;
	const char *p = strstr(buf, "\nTgid:");
	if (!p)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(p + 6, &end, 10);
	return errno || end == p + 6 || v <= 0 ? 0 : (pid_t)v;
}

int mfs_fs_populating_end(pid_t tid, bool hard)
{
	pid_t tgid = tgid_of(tid);
	if (!tgid)
		return -ESRCH;
	if (syscall(SYS_tgkill, (long)tgid, (long)tid, hard ? SIGKILL : SIGTERM))
		return -errno;
	return 0;
}
