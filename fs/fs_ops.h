/*
 * fs_ops.h - the table of low-level FUSE handlers (fs_ops.c), for fs_main.c.
 * Every handler finds its mount through fuse_req_userdata() as a struct
 * mfs_fs (fs.h).
 */
#ifndef MFS_FS_OPS_H
#define MFS_FS_OPS_H

struct fuse_lowlevel_ops;

const struct fuse_lowlevel_ops *mfs_fs_ops_table(void);

#endif
