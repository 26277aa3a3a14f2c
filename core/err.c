/* err.c - see err.h. */
#include "err.h"

#include <stdio.h>
#include <string.h>

int mfs_err_set(struct mfs_err *err, int code, enum mfs_err_kind kind,
		const char *file, int line, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	err->code = code;
	err->kind = kind;
	err->file = file;
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void mfs_err_prefix(struct mfs_err *err, const char *fmt, ...)
{
	if (!err)
		return;
	char head[256], old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", head, old);
}

void mfs_err_clear(struct mfs_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *mfs_err_kind_name(enum mfs_err_kind kind)
{
	static const char *const names[] = {
		[MFS_ERR_NONE] = "none",           [MFS_ERR_IO] = "i/o",
		[MFS_ERR_NOMEM] = "out of memory", [MFS_ERR_USAGE] = "usage",
		[MFS_ERR_PARSE] = "parse",         [MFS_ERR_FORMAT] = "format",
		[MFS_ERR_HASH] = "hash mismatch",  [MFS_ERR_SIGNATURE] = "signature",
		[MFS_ERR_POLICY] = "policy",       [MFS_ERR_NOT_FOUND] = "not found",
		[MFS_ERR_AUTH] = "auth",           [MFS_ERR_HTTP] = "http",
		[MFS_ERR_NET] = "network",         [MFS_ERR_SQLITE] = "sqlite",
		[MFS_ERR_QUOTA] = "quota",         [MFS_ERR_BUSY] = "busy",
		[MFS_ERR_STATE] = "state",
	};
	if ((unsigned)kind < sizeof(names) / sizeof(names[0]) && names[kind])
		return names[kind];
	return "unknown";
}
