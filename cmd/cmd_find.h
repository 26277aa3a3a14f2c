/*
 * cmd_find.h - finding installed artifacts from what a person types.
 */
#ifndef MFS_CMD_FIND_H
#define MFS_CMD_FIND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"

/* Artifacts matching text: a canonical_ref, a path ending in one, or a model
 * ref (org/repo[@rev][:sel]) matched on repo, revision name or commit prefix,
 * and selector. 0 with a malloc'd *ids (n >= 1), or -1 after printing why. */
int mfs_cmd_find(struct mfs_cmd *cmd, const char *text, int64_t **ids, size_t *n);

/* The inventory as a JSON array (one object per artifact, with files,
 * sizes, resident bytes and state). Caller decrefs. */
json_t *mfs_cmd_inventory(struct mfs_store *s);

#endif
