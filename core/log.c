/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static mfs_log_sink_fn log_sink;
static enum mfs_log_level log_max = MFS_LOG_WARNING;

void mfs_log_setup(mfs_log_sink_fn sink, enum mfs_log_level max_level)
{
	log_sink = sink;
	log_max = max_level;
}

void mfs_log(enum mfs_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { [MFS_LOG_ERROR] = "error",
		[MFS_LOG_WARNING] = "warning", [MFS_LOG_NOTICE] = "notice",
		[MFS_LOG_INFO] = "info", [MFS_LOG_DEBUG] = "debug" };
	char msg[1024];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_sink)
		log_sink(level, msg);
	else
		fprintf(stderr, "modelfs: %s: %s\n", names[level], msg);
}
