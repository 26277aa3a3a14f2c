/*
 * modelfs.c - the `modelfs` command: global options and subcommand dispatch.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cmd.h"
#include "log.h"
#include "store.h"
#include "text.h"

/* Weak, so that the table links while a subcommand is being written. */
#define WEAK(name) int mfs_cmd_##name(struct mfs_cmd *, int, char **) __attribute__((weak))
WEAK(keygen); WEAK(publish); WEAK(trust); WEAK(add); WEAK(pull); WEAK(ls);
WEAK(status); WEAK(verify); WEAK(inspect); WEAK(mount); WEAK(pin); WEAK(unpin);
WEAK(evict); WEAK(gc); WEAK(rm); WEAK(why);

static const struct {
	const char *name;
	int (*fn)(struct mfs_cmd *, int, char **);
	const char *summary;
} commands[] = {
	{ "keygen", mfs_cmd_keygen, "make a publisher key pair" },
	{ "publish", mfs_cmd_publish, "write a signed manifest for a model directory" },
	{ "trust", mfs_cmd_trust, "manage trusted publisher keys and hub prefixes" },
	{ "add", mfs_cmd_add, "resolve and admit a model; print its canonical_ref" },
	{ "pull", mfs_cmd_pull, "add, then fetch and verify every byte (resumable)" },
	{ "ls", mfs_cmd_ls, "list installed artifacts" },
	{ "status", mfs_cmd_status, "quota, usage, pins and counters" },
	{ "verify", mfs_cmd_verify, "re-hash resident bytes; repair what fails" },
	{ "inspect", mfs_cmd_inspect, "GGUF / safetensors compact metadata" },
	{ "mount", mfs_cmd_mount, "mount the store as a read-only filesystem" },
	{ "pin", mfs_cmd_pin, "keep an artifact's bytes in the cache" },
	{ "unpin", mfs_cmd_unpin, "undo pin" },
	{ "evict", mfs_cmd_evict, "drop an artifact's cached bytes" },
	{ "gc", mfs_cmd_gc, "evict down to the low watermark; clean temporary files" },
	{ "rm", mfs_cmd_rm, "uninstall an artifact" },
	{ "why", mfs_cmd_why, "why a file is or is not resident" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: modelfs [--store DIR] COMMAND [ARGS]\n\n"
		     "Verified ML models as plain files, fetched lazily, cached under a quota.\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\noptions:\n"
		     "  --store DIR   the store (cache and index); default $MODELFS_STORE,\n"
		     "                else /var/cache/modelfs as root, else ~/.cache/modelfs\n"
		     "  --group NAME  share the store with group NAME: directories 2750, files\n"
		     "                0440 (a store is otherwise private: 0700, files 0400)\n"
		     "  --allow-other-owner  use a store owned by another (non-root) user;\n"
		     "                refused otherwise, since that user can redirect it\n"
		     "  -v            more log output (repeat for debug)\n"
		     "  --help        this text; 'modelfs COMMAND --help' for a command\n");
}

struct mfs_store *mfs_cmd_store(struct mfs_cmd *cmd)
{
	if (cmd->store)
		return cmd->store;
	struct mfs_err err = { 0 };
	struct mfs_store_opts o = { .any_owner = cmd->any_owner };
	if (cmd->group) {
		struct group *gr = getgrnam(cmd->group);
		if (!gr) {
			fprintf(stderr, "modelfs: --group: no group named '%s'\n", cmd->group);
			return NULL;
		}
		o.share = true;
		o.group = gr->gr_gid;
	}
	if (mfs_store_open_opts(cmd->store_dir, &o, &cmd->store, &err)) {
		mfs_cmd_fail(&err, "cannot open the store",
			     "choose another with --store DIR or MODELFS_STORE");
		return NULL;
	}
	return cmd->store;
}

int mfs_cmd_fail(const struct mfs_err *err, const char *what, const char *hint)
{
	/* Messages quote names and text from repositories and files: escaped,
	 * so that none can drive the terminal (text.h). */
	char *msg = err && err->msg[0] ? mfs_text_escape(err->msg, 0) : NULL;
	if (msg)
		fprintf(stderr, "modelfs: %s: %s\n", what, msg);
	else if (err && err->msg[0])
		fprintf(stderr, "modelfs: %s: (out of memory)\n", what);
	else
		fprintf(stderr, "modelfs: %s\n", what);
	free(msg);
	if (hint)
		fprintf(stderr, "  %s\n", hint);
	if (getenv("MODELFS_DEBUG") && err && err->file)
		fprintf(stderr, "  (%s:%d, %s)\n", err->file, err->line, mfs_err_kind_name(err->kind));
	return 1;
}

int mfs_cmd_usage(const char *name, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "modelfs %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'modelfs %s --help'.\n", name);
	return 2;
}

int mfs_cmd_parse_size(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

int mfs_cmd_simple_opts(int argc, char **argv, bool *json, const char *help)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j' && json)
			*json = true;
		else if (c == 'h') {
			fputs(help, stdout);
			return 0;
		} else
			return mfs_cmd_usage(argv[0], "unknown option");
	}
	return -1;
}

static void log_to_stderr(enum mfs_log_level level, const char *msg)
{
	fprintf(stderr, "modelfs: %s%s\n",
		level <= MFS_LOG_ERROR ? "error: " : level == MFS_LOG_WARNING ? "warning: " : "",
		msg);
}

int main(int argc, char **argv)
{
	struct mfs_cmd cmd = { .tty = isatty(2) };
	int verbose = 0, i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--store") && i + 1 < argc) {
			cmd.store_dir = argv[++i];
		} else if (!strncmp(argv[i], "--store=", 8)) {
			cmd.store_dir = argv[i] + 8;
		} else if (!strcmp(argv[i], "--group") && i + 1 < argc) {
			cmd.group = argv[++i];
		} else if (!strncmp(argv[i], "--group=", 8)) {
			cmd.group = argv[i] + 8;
		} else if (!strcmp(argv[i], "--allow-other-owner")) {
			cmd.any_owner = true;
		} else if (!strcmp(argv[i], "-v")) {
			verbose++;
		} else if (!strcmp(argv[i], "-vv")) {
			verbose += 2;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("modelfs 0.1.0\n");
			return 0;
		} else {
			fprintf(stderr, "modelfs: unknown option '%s'\nTry 'modelfs --help'.\n", argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	char *default_dir = NULL;
	if (!cmd.store_dir)
		cmd.store_dir = default_dir = mfs_store_default_dir();

	mfs_log_setup(log_to_stderr, verbose >= 2 ? MFS_LOG_DEBUG
				     : verbose ? MFS_LOG_INFO : MFS_LOG_WARNING);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	int rc = -1;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name))
			continue;
		if (!commands[k].fn) {
			fprintf(stderr, "modelfs: '%s' is not built into this binary\n", argv[i]);
			rc = 1;
		} else {
			optind = 0; /* full getopt reset for the subcommand */
			rc = commands[k].fn(&cmd, argc - i, argv + i);
		}
		break;
	}
	if (rc < 0) {
		fprintf(stderr, "modelfs: unknown command '%s'\nTry 'modelfs --help'.\n", argv[i]);
		rc = 2;
	}
	if (cmd.store)
		mfs_store_close(cmd.store);
	free(default_dir);
	curl_global_cleanup();
	return rc;
}

void mfs_cmd_progress(void *ctx, unsigned long long done, unsigned long long total)
{
	struct mfs_cmd *cmd = ctx;
	static struct timespec t0;
	struct timespec now;
	if (!cmd || !cmd->tty)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!t0.tv_sec || done == 0)
		t0 = now;
	double secs = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
	double rate = secs > 0 ? (double)done / secs : 0;
	double left = rate > 0 && total > done ? (double)(total - done) / rate : 0;
	int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
	char bar[64];
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %6.1f / %.1f MiB  %6.1f MiB/s  %3.0fs left ", bar,
		(double)done / 1048576, (double)total / 1048576, rate / 1048576, left);
	fflush(stderr);
}
