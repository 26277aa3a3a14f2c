/*
 * test_repo_hub.c - the hub repository against the test hub on loopback.
 *
 * Starts tests/hub/testhub.py on a fixture tree made here (two commits of
 * org/model, a gated org/gated), waits for its READY line, and drives
 * resolve, list and fetch through every fault switch the hub has. The
 * expected bytes and digests are computed here from the fixture, never
 * copied from the server. Skipped when python3 is absent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "digest.h"
#include "err.h"
#include "repo.h"

#define C_A "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334"
#define C_B "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf00112233"
#define C_G "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
#define TOKEN "hf_unit_token_123"
#define GGUF_SIZE (3u << 20)
#define DATA_SIZE (200u * 1024)

static char root[256];
static pid_t hub_pid = -1;
static int hub_port, cdn_port;
static char endpoint[64];
static uint8_t *gguf, *data;

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
}

static int write_file(const char *rel, const void *buf, size_t n)
{
	char path[512], dir[512];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	/* mkdir -p of the parent */
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *s = dir + strlen(root) + 1; *s; s++) {
		if (*s == '/') {
			*s = 0;
			mkdir(dir, 0755);
			*s = '/';
		}
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(buf, 1, n, f);
	return fclose(f) || w != n ? -1 : 0;
}

static int write_str(const char *rel, const char *s)
{
	return write_file(rel, s, strlen(s));
}

static int make_fixture(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(root, sizeof(root), "%s/mfs-hubtest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return -1;
	gguf = malloc(GGUF_SIZE);
	data = malloc(DATA_SIZE);
	if (!gguf || !data)
		return -1;
	fill(gguf, GGUF_SIZE, 7);
	fill(data, DATA_SIZE, 11);
	int rc = 0;
	rc |= write_str("org/model/refs.json",
			"{\"branches\":{\"main\":\"" C_B "\"},\"tags\":{\"v1\":\"" C_A "\"},"
			"\"pulls\":{\"1\":\"" C_A "\"}}");
	rc |= write_str("org/model/" C_A "/README.md", "# model A\n");
	rc |= write_str("org/model/" C_A "/config.json", "{\"arch\":\"llama\"}\n");
	rc |= write_file("org/model/" C_A "/data.bin", data, DATA_SIZE);
	rc |= write_file("org/model/" C_A "/model.gguf", gguf, GGUF_SIZE);
	rc |= write_str("org/model/" C_A "/sub/dir/a b.txt", "nested file\n");
	rc |= write_str("org/model/" C_B "/README.md", "# model B\n");
	rc |= write_str("org/gated/refs.json", "{\"branches\":{\"main\":\"" C_G "\"}}");
	rc |= write_str("org/gated/gated", "");
	rc |= write_file("org/gated/" C_G "/w.gguf", data, 4096);
	return rc;
}

static void remove_tree(void)
{
	if (!root[0] || !strstr(root, "/mfs-hubtest-"))
		return;
	pid_t p = fork();
	if (p == 0) {
		execlp("rm", "rm", "-rf", root, (char *)NULL);
		_exit(127);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}

/* Starts the test hub; 0, or 1 to skip (no python3), -1 on failure. */
static int start_hub(void)
{
	const char *src = getenv("MFS_SOURCE_DIR");
	char script[512];
	snprintf(script, sizeof(script), "%s/tests/hub/testhub.py", src ? src : ".");
	if (access(script, R_OK))
		return -1;
	if (system("python3 -c 'import http.server' >/dev/null 2>&1"))
		return 1;
	int fds[2];
	if (pipe(fds))
		return -1;
	hub_pid = fork();
	if (hub_pid < 0)
		return -1;
	if (hub_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("python3", "python3", script, root, "--lifetime", "150", "--token", TOKEN,
		       "--lfs-threshold", "1048576", "--stall-seconds", "15", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char line[128];
	size_t n = 0;
	struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
	while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
		if (poll(&pfd, 1, 20000) <= 0)
			break;
		ssize_t k = read(fds[0], line + n, sizeof(line) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		line[n] = 0;
	}
	close(fds[0]);
	line[n] = 0;
	if (sscanf(line, "READY %d %d", &hub_port, &cdn_port) != 2)
		return -1;
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", hub_port);
	return 0;
}

static int group_setup(void **state)
{
	if (make_fixture())
		return -1;
	int rc = start_hub();
	if (rc == 1) {
		fprintf(stderr, "python3 missing: skipping hub tests\n");
		return 0;
	}
	return rc;
}

static int group_teardown(void **state)
{
	if (hub_pid > 0) {
		kill(hub_pid, SIGTERM);
		waitpid(hub_pid, NULL, 0);
	}
	remove_tree();
	free(gguf);
	free(data);
	return 0;
}

/* ---- control endpoint ---- */

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	struct { char b[65536]; size_t n; } *o = u;
	size_t len = s * n;
	if (o->n + len >= sizeof(o->b))
		return 0;
	memcpy(o->b + o->n, p, len);
	o->n += len;
	o->b[o->n] = 0;
	return len;
}

static json_t *control(const char *what, bool post)
{
	static struct { char b[65536]; size_t n; } out;
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/%s", hub_port, what);
	CURL *e = curl_easy_init();
	out.n = 0;
	out.b[0] = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	if (post)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	CURLcode cc = curl_easy_perform(e);
	curl_easy_cleanup(e);
	assert_int_equal(cc, CURLE_OK);
	json_error_t je;
	json_t *j = json_loads(out.b, 0, &je);
	assert_non_null(j);
	return j;
}

static void reset_hub(void)
{
	json_decref(control("reset", true));
}

static void fault(const char *name, const char *path, int count)
{
	char q[256];
	snprintf(q, sizeof(q), "fault?name=%s&path=%s&count=%d", name, path, count);
	json_decref(control(q, true));
}

static long stat_int(const char *key, const char *sub)
{
	json_t *s = control("stats", false);
	json_t *v = json_object_get(s, key);
	if (sub)
		v = json_object_get(v, sub);
	long n = json_is_integer(v) ? (long)json_integer_value(v) : 0;
	json_decref(s);
	return n;
}

/* Sum of requests whose "file range" key starts with prefix. */
static long range_requests(const char *prefix)
{
	json_t *s = control("stats", false);
	json_t *r = json_object_get(s, "ranges"), *v;
	const char *k;
	long n = 0;
	json_object_foreach(r, k, v) {
		if (!strncmp(k, prefix, strlen(prefix)))
			n += (long)json_integer_value(v);
	}
	json_decref(s);
	return n;
}

#define SKIP_IF_NO_HUB() do { if (hub_pid <= 0) skip(); } while (0)

static struct mfs_repo *open_hub(const char *token)
{
	if (token)
		setenv("HF_TOKEN", token, 1);
	else
		unsetenv("HF_TOKEN");
	struct mfs_repo *r = NULL;
	struct mfs_err e = { 0 };
	assert_int_equal(mfs_repo_hub_open(endpoint, &r, &e), 0);
	assert_non_null(r);
	assert_string_equal(r->ops->kind, "hub");
	return r;
}

/* ---- a job of many ranges ---- */

struct job {
	pthread_mutex_t lock;
	const char *path;
	uint64_t size, chunk, next_off;
	const uint8_t *truth;      /* for expectations; NULL: none */
	uint8_t *out;
	unsigned done, failed;
	struct mfs_err last;
	size_t bad_len;
};

static bool job_next(void *ctx, struct mfs_fetch_req *req)
{
	struct job *j = ctx;
	if (j->next_off >= j->size)
		return false;
	uint64_t len = j->size - j->next_off < j->chunk ? j->size - j->next_off : j->chunk;
	*req = (struct mfs_fetch_req){ .path = j->path, .off = j->next_off, .len = len,
				       .tag = j->next_off };
	if (j->truth) {
		req->has_expect = true;
		mfs_sha256(j->truth + j->next_off, len, req->expect);
	}
	j->next_off += len;
	return true;
}

static int job_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	struct job *j = ctx;
	pthread_mutex_lock(&j->lock);
	if (len != req->len || req->tag != req->off)
		j->bad_len++;
	else
		memcpy(j->out + req->off, buf, len);
	j->done++;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

static void job_failed(void *ctx, const struct mfs_fetch_req *req, const struct mfs_err *e)
{
	struct job *j = ctx;
	pthread_mutex_lock(&j->lock);
	j->failed++;
	j->last = *e;
	pthread_mutex_unlock(&j->lock);
}

/* Fetches [off, off+len) of path as ranges of chunk bytes. Returns fetch's rc. */
static int run_job(struct mfs_repo *r, const char *commit, const char *path, uint64_t size,
		   uint64_t chunk, const uint8_t *truth, uint8_t *out,
		   const struct mfs_fetch_opts *opts, struct job *j)
{
	memset(j, 0, sizeof(*j));
	pthread_mutex_init(&j->lock, NULL);
	j->path = path;
	j->size = size;
	j->chunk = chunk;
	j->truth = truth;
	j->out = out;
	struct mfs_fetch_job job = { job_next, job_done, job_failed, j };
	struct mfs_err e = { 0 };
	return mfs_repo_fetch(r, "org/model", commit, &job, opts, &e);
}

/* ---- tests ---- */

static void test_open_bad_endpoint(void **state)
{
	struct mfs_repo *r = NULL;
	struct mfs_err e = { 0 };
	assert_int_equal(mfs_repo_hub_open("http://", &r, &e), -EINVAL);
	assert_int_equal(e.kind, MFS_ERR_USAGE);
	assert_non_null(strstr(e.msg, "endpoint"));
	assert_int_equal(mfs_repo_hub_open("ftp://example.org", &r, &e), -EINVAL);
	assert_int_equal(mfs_repo_hub_open("http://h/x?y", &r, &e), -EINVAL);
	assert_null(r);
}

static void test_resolve(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	char c[41];
	assert_int_equal(mfs_repo_resolve(r, "org/model", "main", c, &e), 0);
	assert_string_equal(c, C_B);
	assert_int_equal(mfs_repo_resolve(r, "org/model", "v1", c, &e), 0);
	assert_string_equal(c, C_A);
	assert_int_equal(mfs_repo_resolve(r, "org/model", "refs/pr/1", c, &e), 0);
	assert_string_equal(c, C_A);
	char shortc[8];
	memcpy(shortc, C_A, 7);
	shortc[7] = 0;
	assert_int_equal(mfs_repo_resolve(r, "org/model", shortc, c, &e), 0);
	assert_string_equal(c, C_A);
	assert_int_equal(mfs_repo_resolve(r, "org/model", C_B, c, &e), 0);
	assert_string_equal(c, C_B);
	mfs_repo_close(r);
}

static void test_resolve_errors(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	char c[41] = "unchanged";
	assert_int_equal(mfs_repo_resolve(r, "org/model", "nope", c, &e), -ENOENT);
	assert_int_equal(e.kind, MFS_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "revision 'nope'"));
	assert_int_equal(mfs_repo_resolve(r, "org/x", "main", c, &e), -ENOENT);
	assert_int_equal(e.kind, MFS_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "repository 'org/x' not found on http://127.0.0.1:"));
	assert_non_null(strstr(e.msg, "HF_TOKEN"));
	/* A 40-hex commit the repo does not have. */
	assert_int_equal(mfs_repo_resolve(r, "org/model", "ffffffffffffffffffffffffffffffffffffffff",
					  c, &e), -ENOENT);
	/* Bad input never reaches the network. */
	assert_int_equal(mfs_repo_resolve(r, "../etc", "main", c, &e), -EINVAL);
	assert_int_equal(e.kind, MFS_ERR_USAGE);
	assert_int_equal(mfs_repo_resolve(r, "a/b/c", "main", c, &e), -EINVAL);
	assert_int_equal(mfs_repo_resolve(r, "org/mo del", "main", c, &e), -EINVAL);
	assert_int_equal(mfs_repo_resolve(r, "org/model", "", c, &e), -EINVAL);
	assert_string_equal(c, "unchanged");
	mfs_repo_close(r);
}

static void test_gated(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	char c[41];
	assert_int_equal(mfs_repo_resolve(r, "org/gated", "main", c, &e), -EACCES);
	assert_int_equal(e.kind, MFS_ERR_AUTH);
	assert_non_null(strstr(e.msg, "'org/gated'"));
	assert_non_null(strstr(e.msg, "gated"));
	assert_non_null(strstr(e.msg, "HF_TOKEN"));
	mfs_repo_close(r);

	r = open_hub("wrong-token");
	assert_int_equal(mfs_repo_resolve(r, "org/gated", "main", c, &e), -EACCES);
	assert_int_equal(e.kind, MFS_ERR_AUTH);
	mfs_repo_close(r);

	r = open_hub(TOKEN);
	assert_int_equal(mfs_repo_resolve(r, "org/gated", "main", c, &e), 0);
	assert_string_equal(c, C_G);
	uint8_t buf[4096];
	assert_int_equal(mfs_repo_read(r, "org/gated", C_G, "w.gguf", 0, sizeof(buf), NULL, buf, &e),
			 0);
	assert_memory_equal(buf, data, sizeof(buf));
	mfs_repo_close(r);
	unsetenv("HF_TOKEN");
}

static void blob_oid(const void *buf, size_t n, char out[41])
{
	char hdr[64];
	int hl = snprintf(hdr, sizeof(hdr), "blob %zu", n) + 1; /* with the NUL */
	uint8_t d[20];
	unsigned dl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	EVP_DigestUpdate(ctx, hdr, (size_t)hl);
	EVP_DigestUpdate(ctx, buf, n);
	EVP_DigestFinal_ex(ctx, d, &dl);
	EVP_MD_CTX_free(ctx);
	mfs_hex_encode(d, 20, out);
}

static void test_list_pages(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	struct mfs_repo_listing l = { 0 };
	assert_int_equal(mfs_repo_list(r, "org/model", C_A, &l, &e), 0);
	/* 5 files; "sub" and "sub/dir" are directories and not listed. */
	assert_int_equal(l.n, 5);
	char sha[MFS_SHA256_HEX], oid[41];
	uint8_t d[32];
	bool seen_gguf = false, seen_data = false, seen_nested = false;
	for (size_t i = 0; i < l.n; i++) {
		struct mfs_repo_file *f = &l.files[i];
		if (!strcmp(f->path, "model.gguf")) {
			seen_gguf = true;
			assert_int_equal(f->size, GGUF_SIZE);
			assert_true(f->has_sha256);
			mfs_sha256(gguf, GGUF_SIZE, d);
			mfs_hex_encode(d, 32, sha);
			assert_string_equal(f->sha256, sha);
			assert_string_equal(f->git_oid, "");
		} else if (!strcmp(f->path, "data.bin")) {
			seen_data = true;
			assert_int_equal(f->size, DATA_SIZE);
			assert_false(f->has_sha256);
			blob_oid(data, DATA_SIZE, oid);
			assert_string_equal(f->git_oid, oid);
		} else if (!strcmp(f->path, "sub/dir/a b.txt")) {
			seen_nested = true;
			assert_int_equal(f->size, 12);
		}
	}
	assert_true(seen_gguf && seen_data && seen_nested);
	mfs_repo_listing_release(&l);
	/* 7 entries (5 files, 2 directories) at 2 a page: 4 pages. */
	char key[128];
	snprintf(key, sizeof(key), "hub GET /api/models/org/model/tree/%s", C_A);
	assert_int_equal(stat_int("requests", key), 4);
	/* Bad commit: refused before the network. */
	assert_int_equal(mfs_repo_list(r, "org/model", "main", &l, &e), -EINVAL);
	assert_int_equal(e.kind, MFS_ERR_USAGE);
	assert_int_equal(mfs_repo_list(r, "org/model", "ffffffffffffffffffffffffffffffffffffffff", &l,
				       &e), -ENOENT);
	assert_int_equal(e.kind, MFS_ERR_NOT_FOUND);
	mfs_repo_close(r);
}

static void test_fetch_ranges(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	uint8_t buf[70000], d[32];
	/* Non-LFS, served by the hub itself, with and without an expectation. */
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", 1000, 5000, NULL, buf, &e), 0);
	assert_memory_equal(buf, data + 1000, 5000);
	mfs_sha256(data + 7, 70000, d);
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", 7, 70000, d, buf, &e), 0);
	assert_memory_equal(buf, data + 7, 70000);
	/* The last byte of the file and a path with a space in a subdirectory. */
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", DATA_SIZE - 1, 1, NULL, buf,
				       &e), 0);
	assert_int_equal(buf[0], data[DATA_SIZE - 1]);
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "sub/dir/a b.txt", 0, 12, NULL, buf, &e),
			 0);
	assert_memory_equal(buf, "nested file\n", 12);
	/* LFS, through the CDN redirect. */
	mfs_sha256(gguf + 123456, 65536, d);
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "model.gguf", 123456, 65536, d, buf, &e),
			 0);
	assert_memory_equal(buf, gguf + 123456, 65536);
	assert_true(range_requests("cdn model.gguf") >= 1);
	mfs_repo_close(r);
}

static void test_fetch_parallel_job(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(NULL);
	uint8_t *out = calloc(1, GGUF_SIZE);
	assert_non_null(out);
	struct job j;
	struct mfs_fetch_opts o = { .max_inflight = 8 };
	/* 100,000-byte ranges: the last one is short. */
	assert_int_equal(run_job(r, C_A, "model.gguf", GGUF_SIZE, 100000, gguf, out, &o, &j), 0);
	assert_int_equal(j.failed, 0);
	assert_int_equal(j.bad_len, 0);
	assert_int_equal(j.done, (GGUF_SIZE + 99999) / 100000);
	assert_memory_equal(out, gguf, GGUF_SIZE);
	/* Without expectations too. */
	memset(out, 0, GGUF_SIZE);
	assert_int_equal(run_job(r, C_A, "model.gguf", GGUF_SIZE, 1 << 20, NULL, out, &o, &j), 0);
	assert_int_equal(j.done, 3);
	assert_memory_equal(out, gguf, GGUF_SIZE);
	free(out);
	mfs_repo_close(r);
}

/* The CDN location of an LFS file is reused; when it fails, the hub is asked again. */
static void test_cdn_location_reused(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(TOKEN);
	struct mfs_err e = { 0 };
	uint8_t buf[4096];
	long cdn = 0;
	char key[128];
	for (int i = 0; i < 3; i++) {
		uint64_t off = 1000000 + (uint64_t)i * 8192;
		assert_int_equal(mfs_repo_read(r, "org/model", C_A, "model.gguf", off, sizeof(buf), NULL,
					       buf, &e), 0);
		assert_memory_equal(buf, gguf + off, sizeof(buf));
		snprintf(key, sizeof(key), "cdn model.gguf bytes=%llu-%llu", (unsigned long long)off,
			 (unsigned long long)(off + sizeof(buf) - 1));
		cdn += range_requests(key);
	}
	/* Three ranges from the CDN, one redirect from the hub. */
	assert_int_equal(cdn, 3);
	assert_int_equal(range_requests("model.gguf bytes=10"), 1);
	/* The remembered location fails once: back to the hub, not counted as a retry. */
	fault("503", "model.gguf", 1);
	struct mfs_fetch_opts o = { .max_inflight = 1, .max_retries = 1 };
	struct job j;
	uint8_t *out = calloc(1, 65536);
	assert_int_equal(run_job(r, C_A, "model.gguf", 65536, 65536, gguf, out, &o, &j), 0);
	assert_int_equal(j.done, 1);
	assert_memory_equal(out, gguf, 65536);
	assert_int_equal(stat_int("faults_fired", "503"), 1);
	assert_int_equal(range_requests("model.gguf bytes=0-65535"), 1);
	assert_int_equal(range_requests("cdn model.gguf bytes=0-65535"), 2);
	assert_int_equal(stat_int("cdn_tokens", NULL), 0);
	free(out);
	mfs_repo_close(r);
	unsetenv("HF_TOKEN");
}

static int stop_done(void *ctx, const struct mfs_fetch_req *req, const void *buf, size_t len)
{
	job_done(ctx, req, buf, len);
	return -EINTR;
}

static void test_fetch_stop(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_repo *r = open_hub(NULL);
	uint8_t *out = calloc(1, GGUF_SIZE);
	struct job j = { 0 };
	pthread_mutex_init(&j.lock, NULL);
	j.path = "model.gguf";
	j.size = GGUF_SIZE;
	j.chunk = 65536;
	j.out = out;
	struct mfs_fetch_job job = { job_next, stop_done, job_failed, &j };
	struct mfs_fetch_opts o = { .max_inflight = 4 };
	struct mfs_err e = { 0 };
	assert_int_equal(mfs_repo_fetch(r, "org/model", C_A, &job, &o, &e), -EINTR);
	/* Stopped early: every request handed out ended in done() or failed(). */
	assert_true(j.done >= 1);
	assert_int_equal((uint64_t)(j.done + j.failed) * 65536, j.next_off);
	assert_true(j.next_off < GGUF_SIZE);
	free(out);
	mfs_repo_close(r);
}

/* One fault that fires `count` times ends in the right bytes. */
static void expect_recovers(const char *name, const char *path, int count, uint64_t off,
			    uint64_t len, const struct mfs_fetch_opts *o)
{
	reset_hub();
	fault(name, path, count);
	struct mfs_repo *r = open_hub(NULL);
	const uint8_t *truth = !strcmp(path, "model.gguf") ? gguf : data;
	uint8_t *out = calloc(1, len);
	struct job j;
	memset(&j, 0, sizeof(j));
	pthread_mutex_init(&j.lock, NULL);
	j.path = path;
	j.size = off + len;
	j.next_off = off;
	j.chunk = len;
	j.truth = truth;
	j.out = out - off;
	struct mfs_fetch_job job = { job_next, job_done, job_failed, &j };
	struct mfs_err e = { 0 };
	assert_int_equal(mfs_repo_fetch(r, "org/model", C_A, &job, o, &e), 0);
	if (j.failed)
		fprintf(stderr, "fault %s: %s\n", name, j.last.msg);
	assert_int_equal(j.failed, 0);
	assert_int_equal(j.done, 1);
	assert_memory_equal(out, truth + off, len);
	assert_int_equal(stat_int("faults_fired", name), count);
	free(out);
	mfs_repo_close(r);
}

static void test_faults_recover(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_fetch_opts o = { .max_inflight = 1, .low_speed_time_s = 1 };
	const char *faults[] = { "cut", "full200", "corrupt", "429", "503", "badrange", "stall" };
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		/* Hub-served and CDN-served files. */
		expect_recovers(faults[i], "data.bin", 1, 4096, 100000, &o);
		expect_recovers(faults[i], "model.gguf", 1, 1 << 20, 1 << 20, &o);
	}
	expect_recovers("503", "data.bin", 3, 0, DATA_SIZE, &o);
	expect_recovers("cut", "model.gguf", 2, 0, GGUF_SIZE, &o);
}

/* A fault that never stops ends in failed(), never in done(), in bounded time. */
static void expect_fails(const char *name, const char *path, enum mfs_err_kind kind,
			 const char *msg, const struct mfs_fetch_opts *o, int count)
{
	reset_hub();
	fault(name, path, count);
	struct mfs_repo *r = open_hub(NULL);
	uint8_t *out = calloc(1, 65536);
	struct job j;
	time_t t0 = time(NULL);
	int rc = run_job(r, C_A, path, 65536, 65536,
			 !strcmp(path, "model.gguf") ? gguf : data, out, o, &j);
	assert_int_equal(rc, 0);
	assert_int_equal(j.done, 0);
	assert_int_equal(j.failed, 1);
	if (!strstr(j.last.msg, msg) || j.last.kind != kind)
		fprintf(stderr, "fault %s: kind %d: %s\n", name, j.last.kind, j.last.msg);
	assert_int_equal(j.last.kind, kind);
	assert_non_null(strstr(j.last.msg, msg));
	assert_non_null(strstr(j.last.msg, path));
	assert_true(j.last.code < 0);
	assert_true(time(NULL) - t0 < 30);
	free(out);
	mfs_repo_close(r);
}

static void test_faults_persistent(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_fetch_opts o = { .max_inflight = 2, .max_retries = 2, .low_speed_time_s = 1 };
	expect_fails("503", "data.bin", MFS_ERR_HTTP, "HTTP 503", &o, 0);
	expect_fails("full200", "model.gguf", MFS_ERR_HTTP, "instead of 206", &o, 0);
	expect_fails("badrange", "data.bin", MFS_ERR_HTTP, "Content-Range", &o, 0);
	expect_fails("cut", "model.gguf", MFS_ERR_NET, "after 3 attempts", &o, 0);
	expect_fails("stall", "data.bin", MFS_ERR_NET, "after 3 attempts", &o, 0);
	/* A mismatch is retried once with no-cache, then reported. */
	expect_fails("corrupt", "model.gguf", MFS_ERR_HASH, "SHA-256", &o, 2);
	assert_int_equal(range_requests("cdn model.gguf"), 2);
	assert_int_equal(stat_int("faults_fired", "corrupt"), 2);
	/* Refused redirects: nothing reaches the third host. */
	expect_fails("redirect-file", "data.bin", MFS_ERR_HTTP, "'file:' URL", &o, 0);
	expect_fails("redirect-third", "model.gguf", MFS_ERR_HTTP, "host 'localhost'", &o, 0);
	assert_int_equal(stat_int("third_requests", NULL), 0);
	expect_fails("redirect-loop", "data.bin", MFS_ERR_HTTP, "too many redirects", &o, 0);
}

/* Malformed API answers end in clear parse errors, never in a listing. */
static void test_bad_api_answers(void **state)
{
	SKIP_IF_NO_HUB();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	struct mfs_repo_listing l = { 0 };
	char c[41] = "unchanged";
	static const struct {
		const char *fault, *kind, *msg;
	} cases[] = {
		{ "badjson", "revision", "not JSON" },
		{ "badsha", "revision", "no 40-hex 'sha'" },
		{ "badtypes", "revision", "no 40-hex 'sha'" },
		{ "badjson", "tree", "not a JSON array" },
		{ "badtypes", "tree", "'size' must be a non-negative integer" },
		{ "link-offsite", "tree", "next page is on another host" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		reset_hub();
		fault(cases[i].fault, cases[i].kind, 1);
		int rc;
		if (!strcmp(cases[i].kind, "revision"))
			rc = mfs_repo_resolve(r, "org/model", "main", c, &e);
		else
			rc = mfs_repo_list(r, "org/model", C_A, &l, &e);
		if (!strstr(e.msg, cases[i].msg))
			fprintf(stderr, "%s/%s: %s\n", cases[i].fault, cases[i].kind, e.msg);
		assert_int_equal(rc, -EPROTO);
		assert_non_null(strstr(e.msg, cases[i].msg));
		assert_non_null(strstr(e.msg, "'org/model'"));
		assert_null(l.files);
		assert_string_equal(c, "unchanged");
	}
	assert_int_equal(stat_int("third_requests", NULL), 0);
	mfs_repo_close(r);
}

static void test_hash_mismatch_bad_expect(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	uint8_t buf[1000], d[32];
	mfs_sha256(data + 1, 1000, d); /* the digest of other bytes */
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", 0, 1000, d, buf, &e), -EIO);
	assert_int_equal(e.kind, MFS_ERR_HASH);
	assert_non_null(strstr(e.msg, "'data.bin' bytes 0-999"));
	assert_int_equal(range_requests("data.bin bytes=0-999"), 2);
	mfs_repo_close(r);
}

static void test_token_never_reaches_cdn(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(TOKEN);
	struct mfs_err e = { 0 };
	char c[41];
	uint8_t buf[4096];
	assert_int_equal(mfs_repo_resolve(r, "org/model", "main", c, &e), 0);
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "model.gguf", 0, sizeof(buf), NULL, buf,
				       &e), 0);
	assert_memory_equal(buf, gguf, sizeof(buf));
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", 0, sizeof(buf), NULL, buf,
				       &e), 0);
	assert_true(stat_int("hub_tokens", NULL) >= 3);
	assert_true(range_requests("cdn model.gguf") >= 1);
	assert_int_equal(stat_int("cdn_tokens", NULL), 0);
	mfs_repo_close(r);
	unsetenv("HF_TOKEN");
}

static void test_not_found_and_416(void **state)
{
	SKIP_IF_NO_HUB();
	reset_hub();
	struct mfs_repo *r = open_hub(NULL);
	struct mfs_err e = { 0 };
	uint8_t buf[16];
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "nope.bin", 0, 16, NULL, buf, &e),
			 -ENOENT);
	assert_int_equal(e.kind, MFS_ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "'nope.bin'"));
	assert_non_null(strstr(e.msg, "EntryNotFound"));
	assert_int_equal(mfs_repo_read(r, "org/x", C_A, "a", 0, 16, NULL, buf, &e), -ENOENT);
	assert_int_equal(e.kind, MFS_ERR_NOT_FOUND);
	/* A range past the end of the file. */
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", DATA_SIZE + 10, 16, NULL, buf,
				       &e), -EINVAL);
	assert_int_equal(e.kind, MFS_ERR_HTTP);
	assert_non_null(strstr(e.msg, "416"));
	/* A range that crosses the end: the hub clamps it, which is not what was asked. */
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", DATA_SIZE - 8, 16, NULL, buf,
				       &e), -EINVAL);
	assert_non_null(strstr(e.msg, "past the end of the file"));
	/* Bad requests fail cleanly. */
	assert_int_equal(mfs_repo_read(r, "org/model", "abc", "data.bin", 0, 16, NULL, buf, &e),
			 -EINVAL);
	assert_int_equal(mfs_repo_read(r, "org/model", C_A, "data.bin", 0, 0, NULL, buf, &e), -EINVAL);
	mfs_repo_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_bad_endpoint),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_errors),
		cmocka_unit_test(test_gated),
		cmocka_unit_test(test_list_pages),
		cmocka_unit_test(test_fetch_ranges),
		cmocka_unit_test(test_fetch_parallel_job),
		cmocka_unit_test(test_cdn_location_reused),
		cmocka_unit_test(test_faults_recover),
		cmocka_unit_test(test_faults_persistent),
		cmocka_unit_test(test_bad_api_answers),
		cmocka_unit_test(test_hash_mismatch_bad_expect),
		cmocka_unit_test(test_token_never_reaches_cdn),
		cmocka_unit_test(test_not_found_and_416),
		/* Last: the transfers it cancels may still reach the hub afterwards. */
		cmocka_unit_test(test_fetch_stop),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
