/*
 * binding.h - checks that what the store serves for a signed artifact is what
 * its signed manifest lists (docs/trust.md, "What each root guarantees").
 *
 * An artifact admitted on a signed manifest keeps that manifest, exactly as
 * admitted, in <store>/manifests/<sha256>.json. The mount serves the index's
 * file rows, so those rows are compared with the manifest: every file's size
 * and SHA-256, and its chunk digests when it is chunked the same way (a file
 * first admitted on hub checksums with the same bytes keeps the chunking it
 * had, with digests computed from those verified bytes). `modelfs verify`
 * runs it for every signed artifact.
 *
 * Blocking (reads the manifest); thread-safe as the store is.
 */
#ifndef MFS_BINDING_H
#define MFS_BINDING_H

#include <stdint.h>

#include "err.h"
#include "store.h"

/* Called for each file that the store serves otherwise than the manifest
 * lists: path inside the repo and what differs. Strings live for the call. */
typedef void (*mfs_binding_report_fn)(void *ctx, const char *path, const char *why);

/*
 * Checks artifact_id. Returns the number of files that differ from the
 * manifest (0 for an artifact admitted on hub checksums, which has none),
 * reporting each through report (may be NULL); or -errno with err when the
 * check cannot be made, itself a failure: -ENOENT kind NOT_FOUND (no such
 * artifact, or its manifest is missing from the store), -EBADMSG kind HASH
 * (the kept manifest's bytes no longer match their name), -EINVAL kind
 * PARSE/FORMAT (a damaged manifest, or one of another repo or key), -EIO
 * kind SQLITE, -ENOMEM.
 */
int mfs_binding_check(struct mfs_store *s, int64_t artifact_id, mfs_binding_report_fn report,
		      void *ctx, struct mfs_err *err);

#endif
