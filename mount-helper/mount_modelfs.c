/*
 * mount_modelfs.c - `mount.modelfs`, the helper mount(8) runs for
 * `mount -t modelfs STORE MNT -o opts` and for fstab lines of type modelfs.
 *
 * mount(8) calls it as
 *     mount.modelfs SOURCE TARGET [-s] [-f] [-n] [-v] [-o OPTIONS] [-t TYPE]
 * and it only rewrites that into
 *     modelfs --store SOURCE mount TARGET [-o OPTIONS] [-v]
 * and executes the daemon, which backgrounds itself and exits 0 once the
 * mount answers. -f (fake) does nothing and succeeds; -n and -s mean nothing
 * here. The `modelfs` program is looked for beside this one, then in
 * ../bin relative to it (sbin/ and bin/ of one prefix), then in PATH.
 * No store or FUSE code is linked in.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: mount.modelfs STORE MOUNTPOINT [-o OPTIONS] [-fnsv]\n"
		     "  called by mount(8): mount -t modelfs STORE MOUNTPOINT -o OPTIONS\n"
		     "  fstab: STORE MOUNTPOINT modelfs defaults,_netdev 0 0\n");
}

/* Sets out to dir/name if that is an executable file. */
static int try_exe(char *out, size_t cap, const char *dir, const char *name)
{
	if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap)
		return -1;
	return access(out, X_OK) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *pos[2] = { NULL, NULL };
	const char *opts = NULL;
	int npos = 0, fake = 0, verbose = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "-o")) {
			if (i + 1 >= argc) {
				usage(stderr);
				return 1;
			}
			opts = argv[++i];
		} else if (!strncmp(a, "-o", 2)) {
			opts = a + 2;
		} else if (!strcmp(a, "-t")) {
			i++; /* the type: modelfs */
		} else if (a[0] == '-' && a[1]) {
			for (const char *f = a + 1; *f; f++) {
				if (*f == 'f')
					fake = 1;
				else if (*f == 'v')
					verbose = 1;
				else if (*f != 'n' && *f != 's' && *f != 'i')
					fprintf(stderr, "mount.modelfs: ignoring option -%c\n", *f);
			}
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "mount.modelfs: unexpected argument '%s'\n", a);
			usage(stderr);
			return 1;
		}
	}
	if (npos != 2) {
		usage(stderr);
		return 1;
	}
	if (fake)
		return 0;

	/* Find the daemon. */
	char self[PATH_MAX], dir[PATH_MAX], exe[PATH_MAX + 32];
	const char *prog = "modelfs";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		strcpy(dir, self);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			if (!try_exe(exe, sizeof(exe), dir, "modelfs") ||
			    !try_exe(exe, sizeof(exe), dir, "../bin/modelfs"))
				prog = exe;
		}
	}
	/* Also when mount(8) runs us through a symlink: look beside the link. */
	if (prog != exe && strchr(argv[0], '/')) {
		char link_dir[PATH_MAX];
		snprintf(link_dir, sizeof(link_dir), "%s", argv[0]);
		char *slash = strrchr(link_dir, '/');
		*slash = '\0';
		if (!try_exe(exe, sizeof(exe), link_dir, "modelfs"))
			prog = exe;
	}

	const char *args[12];
	int k = 0;
	args[k++] = prog;
	args[k++] = "--store";
	args[k++] = pos[0];
	if (verbose)
		args[k++] = "-v";
	args[k++] = "mount";
	args[k++] = pos[1];
	if (opts && *opts) {
		args[k++] = "-o";
		args[k++] = opts;
	}
	args[k] = NULL;
	if (verbose) {
		fprintf(stderr, "mount.modelfs: running");
		for (int i = 0; i < k; i++)
			fprintf(stderr, " %s", args[i]);
		fprintf(stderr, "\n");
	}
	if (prog == exe)
		execv(prog, (char *const *)args);
	else
		execvp(prog, (char *const *)args);
	fprintf(stderr, "mount.modelfs: cannot run '%s': %s\n"
			"  install modelfs beside mount.modelfs or in PATH\n", prog, strerror(errno));
	return 1;
}
