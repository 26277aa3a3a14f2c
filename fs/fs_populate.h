/*
 * fs_populate.h - readers that the kernel keeps inside mmap(MAP_POPULATE).
 *
 * When a page of a MAP_POPULATE (or mlock) mapping cannot be read, the
 * kernel does not give up: the populate loop drops the mmap lock to wait
 * for the read, treats the failed read as "try again", and asks the daemon
 * for the same page again, forever; the syscall never returns and only a
 * fatal signal ends it (docs/mount.md, "Loaders that map with
 * MAP_POPULATE"). These helpers tell such a caller from one that can see
 * the error (read(2), a plain page fault), and end it. No FUSE here.
 */
#ifndef MFS_FS_POPULATE_H
#define MFS_FS_POPULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * True if thread tid (as the FUSE request names it) is inside a system
 * call that populates a mapping and retries a failed page read forever:
 * mmap, mremap, mlock, mlock2, mlockall, remap_file_pages. Read from
 * /proc/<tid>/syscall; false when that cannot be read (another user's
 * process, a pid namespace the daemon cannot see, tid 0). comm (cap bytes,
 * may be NULL) gets the thread's command name for the log. Thread-safe.
 */
bool mfs_fs_populating(pid_t tid, char *comm, size_t cap);

/*
 * Ends the process of thread tid, which mfs_fs_populating said is stuck,
 * with a signal that the kernel's loop obeys: SIGTERM first (the process
 * may clean up if it returns to user space at all), SIGKILL when hard is
 * set (a process that caught SIGTERM is still looping). tgkill checks that
 * tid still belongs to the same process. 0 or -errno (-ESRCH gone, -EPERM
 * another user's process). Thread-safe.
 */
int mfs_fs_populating_end(pid_t tid, bool hard);

#endif
