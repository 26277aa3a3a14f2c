/*
 * cmd.h - what every `modelfs` subcommand shares.
 *
 * Each subcommand lives in cmd/cmd_<name>.c as
 *     int mfs_cmd_<name>(struct mfs_cmd *cmd, int argc, char **argv);
 * argv[0] is the subcommand's name; options are parsed with getopt_long
 * (optind is reset by the dispatcher). It returns the process exit status:
 * 0 success, 1 failure (after printing an error with mfs_cmd_fail), 2 usage.
 * `--help` prints the usage to stdout and returns 0.
 */
#ifndef MFS_CMD_H
#define MFS_CMD_H

#include <stdbool.h>

#include "err.h"

struct mfs_store;

struct mfs_cmd {
	const char *store_dir;   /* --store, $MODELFS_STORE or the default */
	struct mfs_store *store; /* opened on first mfs_cmd_store() */
	bool tty;                /* stderr is a terminal: progress bars allowed */
	const char *group;       /* --group NAME: share the store with that group */
	bool any_owner;          /* --allow-other-owner */
};

/* Opens the store once; prints an error and returns NULL on failure. */
struct mfs_store *mfs_cmd_store(struct mfs_cmd *cmd);

/* Prints "modelfs: <what>: <err->msg>" (plus a hint line if hint != NULL)
 * to stderr and returns 1. */
int mfs_cmd_fail(const struct mfs_err *err, const char *what, const char *hint);
/* Prints "modelfs <name>: <message>\nTry 'modelfs <name> --help'." and returns 2. */
int mfs_cmd_usage(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parses the options of a command that takes only --json (when json is
 * non-NULL) and --help (prints help to stdout). Returns -1 to go on (optind
 * at the first operand), else the exit status to return at once. */
int mfs_cmd_simple_opts(int argc, char **argv, bool *json, const char *help);

/* Parses "123", "4K", "16M", "2G", "1T" (binary units). 0 or -EINVAL. */
int mfs_cmd_parse_size(const char *s, unsigned long long *out);

/* Progress bar on a terminal: bytes, rate, time left. No-op when !tty. */
void mfs_cmd_progress(void *cmd, unsigned long long done, unsigned long long total);

#define MFS_CMD(name) int mfs_cmd_##name(struct mfs_cmd *cmd, int argc, char **argv)
MFS_CMD(keygen); MFS_CMD(publish); MFS_CMD(trust); MFS_CMD(add); MFS_CMD(pull);
MFS_CMD(ls); MFS_CMD(status); MFS_CMD(verify); MFS_CMD(inspect); MFS_CMD(mount);
MFS_CMD(pin); MFS_CMD(unpin); MFS_CMD(evict); MFS_CMD(gc); MFS_CMD(rm); MFS_CMD(why);

#endif
