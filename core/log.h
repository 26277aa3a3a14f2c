/*
 * log.h - leveled logging with a settable sink.
 *
 * The core logs only through here; the program (fs/ or the command) chooses
 * the sink: stderr in the foreground, syslog as a daemon. Never log tokens or
 * signed URLs. "error" and "warning" are for real faults.
 * Rate-limited: the same message (same call site, same text but for its
 * numbers) is shown at most MFS_LOG_BURST times per MFS_LOG_WINDOW_MS; the
 * rest are counted and summed up in one line ("N similar messages left out
 * ..."), so a failure that repeats in a loop cannot fill a disk with log.
 * Debug lines are not limited.
 * Thread-safe: the sink is set once in main before threads start; mfs_log
 * and mfs_log_flush may be called from any thread (the sink is called with
 * an internal lock held, so it must not log).
 */
#ifndef MFS_LOG_H
#define MFS_LOG_H

enum mfs_log_level { MFS_LOG_ERROR = 3, MFS_LOG_WARNING = 4, MFS_LOG_NOTICE = 5,
		     MFS_LOG_INFO = 6, MFS_LOG_DEBUG = 7 };

#include <stdbool.h>

#define MFS_LOG_BURST 10          /* lines per key and window */
#define MFS_LOG_WINDOW_MS 60000   /* the window, milliseconds */

typedef void (*mfs_log_sink_fn)(enum mfs_log_level level, const char *msg);

/* Sets the sink (NULL: stderr) and the most verbose level shown. */
void mfs_log_setup(mfs_log_sink_fn sink, enum mfs_log_level max_level);

void mfs_log(enum mfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes the "left out" line of every key whose window has ended (all: of
 * every key with lines left out, at exit). For a long-lived process to call
 * now and then, so a count is never held back for long. */
void mfs_log_flush(bool all);

#define mfs_log_error(...) mfs_log(MFS_LOG_ERROR, __VA_ARGS__)
#define mfs_log_warning(...) mfs_log(MFS_LOG_WARNING, __VA_ARGS__)
#define mfs_log_notice(...) mfs_log(MFS_LOG_NOTICE, __VA_ARGS__)
#define mfs_log_info(...) mfs_log(MFS_LOG_INFO, __VA_ARGS__)
#define mfs_log_debug(...) mfs_log(MFS_LOG_DEBUG, __VA_ARGS__)

#endif
