/*
 * err.h - error detail for the modelfs core.
 *
 * Fallible functions return 0 or a negative errno. Detail goes into an optional
 * caller-owned struct mfs_err: the errno, a stable kind, a message that says
 * what failed first with the subject quoted, and the file and line that set it,
 * so a log line leads back to the code. Passing NULL for the error is always
 * allowed. The library never prints, exits or aborts.
 */
#ifndef MFS_ERR_H
#define MFS_ERR_H

#include <stdarg.h>

enum mfs_err_kind {
	MFS_ERR_NONE = 0,
	MFS_ERR_IO,          /* local file or directory I/O */
	MFS_ERR_NOMEM,
	MFS_ERR_USAGE,       /* a bad argument from the user */
	MFS_ERR_PARSE,       /* malformed input: ref, JSON, GGUF, safetensors */
	MFS_ERR_FORMAT,      /* well-formed but invalid model structure */
	MFS_ERR_HASH,        /* bytes do not match their SHA-256 */
	MFS_ERR_SIGNATURE,   /* manifest signature missing or wrong */
	MFS_ERR_POLICY,      /* no trusted root for this repo, rollback, ... */
	MFS_ERR_NOT_FOUND,   /* repo, revision, file or artifact not found */
	MFS_ERR_AUTH,        /* gated or private: a token is needed */
	MFS_ERR_HTTP,        /* unexpected HTTP answer */
	MFS_ERR_NET,         /* connection, TLS, timeout */
	MFS_ERR_SQLITE,
	MFS_ERR_QUOTA,       /* no cache space: everything is pinned */
	MFS_ERR_BUSY,        /* artifact is active (open or pinned) */
	MFS_ERR_STATE,       /* operation does not fit the current state */
};

struct mfs_err {
	int code;                 /* negative errno, 0 when unset */
	enum mfs_err_kind kind;
	const char *file;         /* source file that set the error */
	int line;
	char msg[512];
};

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return MFS_ERR(err, -EINVAL, MFS_ERR_USAGE, "bad ref '%s'", s);`. */
#define MFS_ERR(err, code, kind, ...) \
	mfs_err_set((err), (code), (kind), __FILE__, __LINE__, __VA_ARGS__)

int mfs_err_set(struct mfs_err *err, int code, enum mfs_err_kind kind,
		const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Prefixes the existing message with "what: " (keeps code, kind, origin). */
void mfs_err_prefix(struct mfs_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void mfs_err_clear(struct mfs_err *err);

/* A fixed lowercase name for a kind ("hash mismatch", "http", ...). */
const char *mfs_err_kind_name(enum mfs_err_kind kind);

#endif
