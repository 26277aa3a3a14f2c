/*
 * repo_hub.c - placeholder while the hub repository is written.
 */
#include <errno.h>
#include "repo.h"

int mfs_repo_hub_open(const char *endpoint, struct mfs_repo **out, struct mfs_err *err)
{
	return MFS_ERR(err, -ENOSYS, MFS_ERR_USAGE, "hub repository '%s' not available yet", endpoint);
}
