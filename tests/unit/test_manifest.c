/*
 * test_manifest.c - the manifest v1: building one for a real directory and
 * checking every digest against an independent computation, the parse round
 * trip, and the parser's refusal of each kind of bad input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "digest.h"
#include "manifest.h"

static const char KEY_ID[] = "0123456789abcdef";

struct fixture {
	char dir[64];
};

static void write_file(const char *dir, const char *rel, const uint8_t *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *dir, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mfs-test-manifest-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

/* Checks one entry against the bytes, hashing them independently. */
static void check_entry(const struct mfs_manifest_file *f, const uint8_t *data, size_t len,
			uint32_t cs)
{
	assert_non_null(f);
	assert_int_equal(f->size, len);
	assert_int_equal(f->chunk_size, cs);
	uint8_t dig[32];
	char hex[65];
	mfs_sha256(data, len, dig);
	mfs_hex_encode(dig, 32, hex);
	assert_string_equal(f->sha256, hex);
	assert_int_equal(f->n_chunks, (len + cs - 1) / cs);
	for (uint32_t i = 0; i < f->n_chunks; i++) {
		size_t off = (size_t)i * cs, n = len - off < cs ? len - off : cs;
		mfs_sha256(data + off, n, dig);
		assert_memory_equal(f->chunks[i], dig, 32);
	}
}

static void test_build_and_parse(void **state)
{
	struct fixture *fx = *state;
	const uint32_t cs = 4096;
	static uint8_t a[10000], c[8192];
	fill(a, sizeof(a), 1);
	fill(c, sizeof(c), 2);
	write_file(fx->dir, "model.gguf", a, sizeof(a));
	make_dir(fx->dir, "sub");
	make_dir(fx->dir, "sub/deeper");
	write_file(fx->dir, "sub/empty.txt", NULL, 0);
	write_file(fx->dir, "sub/deeper/c.bin", c, sizeof(c));
	write_file(fx->dir, ".hidden", c, 10);
	make_dir(fx->dir, ".modelfs");
	write_file(fx->dir, ".modelfs/manifest.json", c, 100); /* never listed */

	char *json = NULL;
	size_t len = 0;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_manifest_build(fx->dir, "org/model", 7, cs, KEY_ID, &json, &len,
					    &err), 0);
	assert_int_equal(strlen(json), len);
	assert_int_equal(json[len - 1], '\n');
	assert_non_null(strstr(json, "\"format\":\"modelfs-manifest\""));

	struct mfs_manifest m;
	assert_int_equal(mfs_manifest_parse(json, len, &m, &err), 0);
	assert_int_equal(m.version, 1);
	assert_string_equal(m.repo, "org/model");
	assert_int_equal(m.sequence, 7);
	assert_string_equal(m.key_id, KEY_ID);
	assert_int_equal(m.n_files, 4);
	/* Sorted by path bytes. */
	assert_string_equal(m.files[0].path, ".hidden");
	assert_string_equal(m.files[1].path, "model.gguf");
	assert_string_equal(m.files[2].path, "sub/deeper/c.bin");
	assert_string_equal(m.files[3].path, "sub/empty.txt");
	check_entry(mfs_manifest_find(&m, "model.gguf"), a, sizeof(a), cs);
	check_entry(mfs_manifest_find(&m, "sub/deeper/c.bin"), c, sizeof(c), cs);
	check_entry(mfs_manifest_find(&m, "sub/empty.txt"), NULL, 0, cs);
	check_entry(mfs_manifest_find(&m, ".hidden"), c, 10, cs);
	assert_null(mfs_manifest_find(&m, "sub"));
	assert_null(mfs_manifest_find(&m, ".modelfs/manifest.json"));
	assert_int_equal(m.files[3].n_chunks, 0);
	assert_null(m.files[3].chunks);

	/* Building again gives the same bytes: the signed form is stable. */
	char *again = NULL;
	size_t len2 = 0;
	assert_int_equal(mfs_manifest_build(fx->dir, "org/model", 7, cs, KEY_ID, &again,
					    &len2, NULL), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(again, json, len);

	mfs_manifest_release(&m);
	mfs_manifest_release(&m); /* zeroed: a no-op */
	mfs_manifest_release(NULL);
	free(json);
	free(again);
}

static void test_build_default_chunk_size(void **state)
{
	struct fixture *fx = *state;
	static uint8_t a[100];
	fill(a, sizeof(a), 3);
	write_file(fx->dir, "w.safetensors", a, sizeof(a));
	char *json = NULL;
	size_t len = 0;
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, MFS_CHUNK_SIZE_DEFAULT, KEY_ID,
					    &json, &len, NULL), 0);
	struct mfs_manifest m;
	assert_int_equal(mfs_manifest_parse(json, len, &m, NULL), 0);
	check_entry(&m.files[0], a, sizeof(a), 4u << 20);
	mfs_manifest_release(&m);
	free(json);
}

static void test_build_refusals(void **state)
{
	struct fixture *fx = *state;
	char *json = NULL;
	size_t len = 0;
	struct mfs_err err = { 0 };

	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 4096, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no files"));

	uint8_t b[4] = { 1, 2, 3, 4 };
	write_file(fx->dir, "ok.bin", b, sizeof(b));
	assert_int_equal(mfs_manifest_build(fx->dir, "noslash", 1, 4096, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_non_null(strstr(err.msg, "noslash"));
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 0, 4096, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 5000, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_non_null(strstr(err.msg, "power of two"));
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 2048, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 4096, "XYZ", &json, &len,
					    &err), -EINVAL);

	char target[256], link[256];
	snprintf(target, sizeof(target), "%s/ok.bin", fx->dir);
	snprintf(link, sizeof(link), "%s/link.bin", fx->dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 4096, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_non_null(strstr(err.msg, "symbolic link"));
	assert_non_null(strstr(err.msg, "link.bin"));
	unlink(link);

	write_file(fx->dir, "back\\slash", b, sizeof(b));
	assert_int_equal(mfs_manifest_build(fx->dir, "o/n", 1, 4096, KEY_ID, &json, &len,
					    &err), -EINVAL);
	assert_non_null(strstr(err.msg, "back\\slash"));
	assert_null(json);
}

/* ---- parser refusals --------------------------------------------------- */

static const char Z64[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* A manifest with the given files array text, other fields valid. */
static char *doc(const char *files)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf),
		 "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"org/name\","
		 "\"sequence\":3,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, files);
	return buf;
}

/* One file entry of size bytes in chunks of cs, with n chunk digests. */
static char *entry(const char *path, unsigned size, unsigned cs, unsigned n)
{
	static char bufs[4][4096];
	static int which;
	char *b = bufs[which++ & 3];
	int k = snprintf(b, 4096, "{\"path\":\"%s\",\"size\":%u,\"sha256\":\"%s\","
				  "\"chunk_size\":%u,\"chunks\":[", path, size, Z64, cs);
	for (unsigned i = 0; i < n; i++)
		k += snprintf(b + k, 4096 - (size_t)k, "%s\"%s\"", i ? "," : "", Z64);
	snprintf(b + k, 4096 - (size_t)k, "]}");
	return b;
}

static void expect_refusal(const char *text, int code, enum mfs_err_kind kind,
			   const char *needle)
{
	struct mfs_manifest m = { .n_files = 12345 };
	struct mfs_err err = { 0 };
	int rc = mfs_manifest_parse(text, strlen(text), &m, &err);
	if (rc != code || err.kind != kind || !strstr(err.msg, needle))
		fail_msg("input %.200s\n  gave %d kind %d '%s'; expected %d kind %d with '%s'",
			 text, rc, err.kind, err.msg, code, kind, needle);
	assert_int_equal(m.n_files, 12345); /* untouched on failure */
}

static void test_parse_valid_minimal(void **state)
{
	(void)state;
	char files[8192];
	snprintf(files, sizeof(files), "%s,%s", entry("b/x.gguf", 8193, 4096, 3),
		 entry("a.txt", 0, 4096, 0));
	const char *text = doc(files);
	struct mfs_manifest m;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_manifest_parse(text, strlen(text), &m, &err), 0);
	assert_int_equal(m.n_files, 2);
	assert_string_equal(m.files[0].path, "a.txt"); /* sorted on parse */
	assert_int_equal(mfs_manifest_find(&m, "b/x.gguf")->n_chunks, 3);
	assert_int_equal(m.sequence, 3);
	mfs_manifest_release(&m);
}

static void test_parse_truncated_and_oversized(void **state)
{
	(void)state;
	const char *full = doc(entry("a", 1, 4096, 1));
	char cut[4096];
	size_t n = strlen(full) / 2;
	memcpy(cut, full, n);
	cut[n] = '\0';
	expect_refusal(cut, -EINVAL, MFS_ERR_PARSE, "not valid JSON");
	expect_refusal("", -EINVAL, MFS_ERR_PARSE, "empty");
	expect_refusal("[1,2]", -EINVAL, MFS_ERR_PARSE, "object");

	size_t big = (size_t)MFS_MANIFEST_MAX + 1;
	char *huge = malloc(big);
	assert_non_null(huge);
	memset(huge, ' ', big);
	struct mfs_manifest m;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_manifest_parse(huge, big, &m, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "limit"));
	free(huge);
}

static void test_parse_header_refusals(void **state)
{
	(void)state;
	char t[8192];
	const char *e = entry("a", 1, 4096, 1);
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":2,\"repo\":\"o/n\","
			       "\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "version 2 is not supported");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":\"1\",\"repo\":"
			       "\"o/n\",\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_PARSE, "\"version\" must be an integer");
	snprintf(t, sizeof(t), "{\"format\":\"other\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "format");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"on\","
			       "\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "'org/name'");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/..\","
			       "\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "'org/name'");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":0,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "sequence must be at least 1");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":-4,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "negative");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":1.5,\"key_id\":\"%s\",\"files\":[%s]}", KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_PARSE, "\"sequence\" must be an integer");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":1,\"key_id\":\"0123\",\"files\":[%s]}", e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "key_id");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":1,\"key_id\":\"%s\",\"files\":[%s],\"extra\":1}",
		 KEY_ID, e);
	expect_refusal(t, -EINVAL, MFS_ERR_FORMAT, "unknown member \"extra\"");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"sequence\":1,\"key_id\":\"%s\"}", KEY_ID);
	expect_refusal(t, -EINVAL, MFS_ERR_PARSE, "missing \"files\"");
	snprintf(t, sizeof(t), "{\"format\":\"modelfs-manifest\",\"version\":1,\"repo\":\"o/n\","
			       "\"repo\":\"o/m\",\"sequence\":1,\"key_id\":\"%s\",\"files\":[]}",
		 KEY_ID);
	expect_refusal(t, -EINVAL, MFS_ERR_PARSE, "duplicate");
}

static void test_parse_path_refusals(void **state)
{
	(void)state;
	expect_refusal(doc(entry("../etc/passwd", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT,
		       "unsafe path");
	expect_refusal(doc(entry("a/../b", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry("/abs/path", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT,
		       "unsafe path");
	expect_refusal(doc(entry("a//b", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry("./a", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry("", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry("a\\\\b", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT,
		       "unsafe path");
	expect_refusal(doc(entry("a\\nb", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry(".modelfs/manifest.sig", 1, 4096, 1)), -EINVAL,
		       MFS_ERR_FORMAT, "unsafe path");
	expect_refusal(doc(entry("evil\\u0000.gguf", 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT,
		       "NUL");

	char files[8192];
	snprintf(files, sizeof(files), "%s,%s", entry("same.bin", 1, 4096, 1),
		 entry("same.bin", 2, 4096, 1));
	expect_refusal(doc(files), -EINVAL, MFS_ERR_FORMAT, "duplicate path 'same.bin'");
	snprintf(files, sizeof(files), "%s,%s,%s", entry("d", 1, 4096, 1),
		 entry("d-x", 1, 4096, 1), entry("d/x", 1, 4096, 1));
	expect_refusal(doc(files), -EINVAL, MFS_ERR_FORMAT, "as a file and as a directory");
}

static void test_parse_chunk_refusals(void **state)
{
	(void)state;
	expect_refusal(doc(entry("a", 8193, 4096, 2)), -EINVAL, MFS_ERR_FORMAT,
		       "2 chunk digests for 8193 bytes");
	expect_refusal(doc(entry("a", 8192, 4096, 3)), -EINVAL, MFS_ERR_FORMAT, "expected 2");
	expect_refusal(doc(entry("a", 0, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "expected 0");
	expect_refusal(doc(entry("a", 1, 5000, 1)), -EINVAL, MFS_ERR_FORMAT, "power of two");
	expect_refusal(doc(entry("a", 1, 2048, 1)), -EINVAL, MFS_ERR_FORMAT, "power of two");
	expect_refusal(doc(entry("a", 1, 0, 1)), -EINVAL, MFS_ERR_FORMAT, "power of two");
	expect_refusal(doc("{\"path\":\"a\",\"size\":1,\"sha256\":\"00\",\"chunk_size\":4096,"
			   "\"chunks\":[]}"),
		       -EINVAL, MFS_ERR_FORMAT, "\"sha256\" must be 64");

	/* Bad hex: a non-hex digit, upper case, a short chunk digest, a number. */
	char e[1024], bad[65];
	memcpy(bad, Z64, 65);
	bad[63] = 'g';
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":1,\"sha256\":\"%s\",\"chunk_size\":4096,"
			       "\"chunks\":[\"%s\"]}", bad, Z64);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_FORMAT, "\"sha256\" must be 64");
	bad[63] = 'A';
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":1,\"sha256\":\"%s\",\"chunk_size\":4096,"
			       "\"chunks\":[\"%s\"]}", Z64, bad);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_FORMAT, "chunk digest #0");
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":1,\"sha256\":\"%s\",\"chunk_size\":4096,"
			       "\"chunks\":[\"abc\"]}", Z64);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_FORMAT, "chunk digest #0");
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":1,\"sha256\":\"%s\",\"chunk_size\":4096,"
			       "\"chunks\":[7]}", Z64);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_FORMAT, "chunk digest #0");
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":\"1\",\"sha256\":\"%s\","
			       "\"chunk_size\":4096,\"chunks\":[]}", Z64);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_PARSE, "\"size\" must be an integer");
	snprintf(e, sizeof(e), "{\"path\":\"a\",\"size\":1,\"sha256\":\"%s\",\"chunk_size\":4096,"
			       "\"chunks\":[\"%s\"],\"mode\":420}", Z64, Z64);
	expect_refusal(doc(e), -EINVAL, MFS_ERR_FORMAT, "unknown member \"mode\"");
	expect_refusal(doc("\"a\""), -EINVAL, MFS_ERR_PARSE, "must be an object");
}

/* Issue 9 finding 14: an empty "files" array reached qsort(NULL, 0, ...)
 * (undefined behaviour that aborts the sanitizer build) before any signature
 * was checked. Now it is refused as a manifest that lists nothing. */
static void test_parse_empty_files_refused(void **state)
{
	(void)state;
	expect_refusal(doc(""), -EINVAL, MFS_ERR_FORMAT, "\"files\" is empty");
	/* A single entry is the other edge of the sort and the search. */
	struct mfs_manifest m;
	struct mfs_err err = { 0 };
	const char *one = doc(entry("only.gguf", 1, 4096, 1));
	assert_int_equal(mfs_manifest_parse(one, strlen(one), &m, &err), 0);
	assert_non_null(mfs_manifest_find(&m, "only.gguf"));
	assert_null(mfs_manifest_find(&m, "only"));
	assert_null(mfs_manifest_find(&m, ""));
	mfs_manifest_release(&m);
}

/* Issue 9 finding 11 (manifest part): a chunk size above 64 MiB made one
 * small read cost a whole chunk of memory; it is refused at parse. */
static void test_parse_chunk_size_limits(void **state)
{
	(void)state;
	expect_refusal(doc(entry("a", 1, 1u << 30, 1)), -EINVAL, MFS_ERR_FORMAT,
		       "chunk size 1073741824 is not a power of two between 4096 (4 KiB) and "
		       "67108864 (64 MiB)");
	expect_refusal(doc(entry("a", 1, 128u << 20, 1)), -EINVAL, MFS_ERR_FORMAT, "64 MiB");
	expect_refusal(doc(entry("a", 1, 2048, 1)), -EINVAL, MFS_ERR_FORMAT, "4 KiB");
	/* Both limits themselves are accepted. */
	struct mfs_manifest m;
	struct mfs_err err = { 0 };
	const char *t = doc(entry("a", (64u << 20) + 1, 64u << 20, 2));
	assert_int_equal(mfs_manifest_parse(t, strlen(t), &m, &err), 0);
	assert_int_equal(m.files[0].chunk_size, 64u << 20);
	mfs_manifest_release(&m);
	t = doc(entry("a", 4097, 4096, 2));
	assert_int_equal(mfs_manifest_parse(t, strlen(t), &m, &err), 0);
	mfs_manifest_release(&m);
}

/* Issue 9 finding 19: a component longer than NAME_MAX (255 bytes) could be
 * listed but never opened; it is an unsafe path now. 255 bytes is fine. */
static void test_parse_long_component_refused(void **state)
{
	(void)state;
	char name[300], files[4096];
	memset(name, 'a', 256);
	memcpy(name + 256, ".gguf", 6);
	snprintf(files, sizeof(files), "%s", entry(name + 5, 1, 4096, 1)); /* 256 bytes */
	expect_refusal(doc(files), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
	snprintf(files, sizeof(files), "%s", entry(name + 6, 1, 4096, 1)); /* 255 bytes */
	struct mfs_manifest m;
	struct mfs_err err = { 0 };
	const char *t = doc(files);
	assert_int_equal(mfs_manifest_parse(t, strlen(t), &m, &err), 0);
	mfs_manifest_release(&m);
	char deep[600];
	snprintf(deep, sizeof(deep), "d/%s", name + 5);
	expect_refusal(doc(entry(deep, 1, 4096, 1)), -EINVAL, MFS_ERR_FORMAT, "unsafe path");
}

static void test_predicates(void **state)
{
	(void)state;
	assert_true(mfs_manifest_repo_is_valid("TheBloke/Llama-2-7B.GGUF_x"));
	assert_false(mfs_manifest_repo_is_valid("a/b/c"));
	assert_false(mfs_manifest_repo_is_valid("/b"));
	assert_false(mfs_manifest_repo_is_valid("a/"));
	assert_false(mfs_manifest_repo_is_valid("a b/c"));
	assert_false(mfs_manifest_repo_is_valid(".."));
	assert_false(mfs_manifest_repo_is_valid(NULL));
	assert_true(mfs_manifest_path_is_safe("a/b.gguf"));
	assert_true(mfs_manifest_path_is_safe(".modelfsx/a"));
	assert_true(mfs_manifest_path_is_safe("sub/.modelfs/a"));
	assert_false(mfs_manifest_path_is_safe(".modelfs"));
	assert_false(mfs_manifest_path_is_safe("a/"));
	assert_false(mfs_manifest_path_is_safe("a\x7f"));
	assert_true(mfs_manifest_chunk_size_is_valid(4096));
	assert_true(mfs_manifest_chunk_size_is_valid(64u << 20));
	assert_false(mfs_manifest_chunk_size_is_valid(128u << 20));
	assert_false(mfs_manifest_chunk_size_is_valid(1u << 30));
	assert_false(mfs_manifest_chunk_size_is_valid(2u << 30));
	assert_false(mfs_manifest_chunk_size_is_valid(12288));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_and_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_default_chunk_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_build_refusals, setup, teardown),
		cmocka_unit_test(test_parse_valid_minimal),
		cmocka_unit_test(test_parse_truncated_and_oversized),
		cmocka_unit_test(test_parse_header_refusals),
		cmocka_unit_test(test_parse_path_refusals),
		cmocka_unit_test(test_parse_chunk_refusals),
		cmocka_unit_test(test_parse_empty_files_refused),
		cmocka_unit_test(test_parse_chunk_size_limits),
		cmocka_unit_test(test_parse_long_component_refused),
		cmocka_unit_test(test_predicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
