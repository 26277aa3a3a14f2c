/*
 * mfs_mmap_loader.c - a model loader that maps its file the way llama.cpp's
 * default loader does, for the mount tests.
 *
 * llama.cpp (src/llama-mmap.cpp) opens the model, maps the whole file with
 * PROT_READ and MAP_SHARED | MAP_POPULATE, advises POSIX_MADV_WILLNEED and
 * then reads the tensors through the mapping. MAP_POPULATE makes mmap()
 * itself fault in every page before it returns, so a page that cannot be
 * read is met inside mmap(), not at the first touch. This program does the
 * same, times each step and reports how it ended, so a test can tell a load
 * that fails cleanly from one that loops:
 *
 *   mfs-mmap-loader [--no-populate] [--private] [--no-willneed] [--catch-term] FILE
 *
 * --catch-term installs a SIGTERM handler first, as a program that wants to
 * shut down gracefully does (then only SIGKILL ends a populate loop).
 *
 * Output (stdout, one line per step):
 *   open <seconds>
 *   mmap <seconds> ok|errno <N>
 *   touch <seconds> ok sha256 <hex>          every page read, digest of the file
 *   touch <seconds> sigbus at <offset>       a page could not be read
 * Exit: 0 loaded; 2 open failed; 3 mmap failed; 4 SIGBUS while touching;
 * 1 usage or other errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"

static sigjmp_buf on_bus;
static volatile sig_atomic_t bus_seen;

static void bus_handler(int sig)
{
	(void)sig;
	bus_seen = 1;
	siglongjmp(on_bus, 1);
}

static void term_handler(int sig)
{
	(void)sig;
	static const char msg[] = "mfs-mmap-loader: SIGTERM caught\n";
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(5);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	bool populate = true, shared = true, willneed = true, catch_term = false;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-populate"))
			populate = false;
		else if (!strcmp(argv[i], "--private"))
			shared = false;
		else if (!strcmp(argv[i], "--no-willneed"))
			willneed = false;
		else if (!strcmp(argv[i], "--catch-term"))
			catch_term = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: mfs-mmap-loader [--no-populate] [--private]"
					" [--no-willneed] [--catch-term] FILE\n");
			return 1;
		}
	}
	if (!path) {
		fprintf(stderr, "mfs-mmap-loader: no file\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (catch_term) {
		struct sigaction st = { .sa_handler = term_handler };
		sigemptyset(&st.sa_mask);
		sigaction(SIGTERM, &st, NULL);
	}

	double t0 = now_s();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("open %.3f errno %d\n", now_s() - t0, errno);
		return 2;
	}
	struct stat st;
	if (fstat(fd, &st) || st.st_size <= 0) {
		printf("open %.3f errno %d\n", now_s() - t0, errno ? errno : EINVAL);
		return 2;
	}
	printf("open %.3f\n", now_s() - t0);

	size_t size = (size_t)st.st_size;
	int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | (populate ? MAP_POPULATE : 0);
	double t1 = now_s();
	void *addr = mmap(NULL, size, PROT_READ, flags, fd, 0);
	if (addr == MAP_FAILED) {
		printf("mmap %.3f errno %d\n", now_s() - t1, errno);
		return 3;
	}
	printf("mmap %.3f ok\n", now_s() - t1);
	if (willneed)
		posix_madvise(addr, size, POSIX_MADV_WILLNEED);

	/* Touch every page in file order, as tensors are read after the load. */
	struct sigaction sa = { .sa_handler = bus_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	struct mfs_sha256 h;
	if (mfs_sha256_init(&h)) {
		fprintf(stderr, "mfs-mmap-loader: out of memory\n");
		return 1;
	}
	long page = sysconf(_SC_PAGESIZE);
	volatile size_t off = 0;
	double t2 = now_s();
	if (sigsetjmp(on_bus, 1)) {
		printf("touch %.3f sigbus at %zu\n", now_s() - t2, (size_t)off);
		mfs_sha256_release(&h);
		return 4;
	}
	for (off = 0; off < size; off += (size_t)page) {
		size_t n = size - off < (size_t)page ? size - off : (size_t)page;
		mfs_sha256_update(&h, (const char *)addr + off, n);
	}
	uint8_t d[MFS_SHA256_LEN];
	char hex[MFS_SHA256_HEX];
	mfs_sha256_final(&h, d);
	mfs_hex_encode(d, sizeof(d), hex);
	printf("touch %.3f ok sha256 %s\n", now_s() - t2, hex);
	munmap(addr, size);
	close(fd);
	return 0;
}
