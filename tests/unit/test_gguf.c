/*
 * test_gguf.c - the GGUF validator: valid files built in memory, the
 * -EAGAIN/need protocol on growing prefixes, every refusal facts.md §2 asks
 * for, split sets, the compact metadata, a mutation fuzz, and the real
 * fixtures in ../shared/fixtures when they are there.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "digest.h"
#include "err.h"
#include "gguf.h"

/* ---- an in-memory GGUF builder ---- */

struct b {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct b *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n)
			nc *= 2;
		b->p = realloc(b->p, nc);
		assert_non_null(b->p);
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}
static void u8(struct b *b, uint8_t v) { put(b, &v, 1); }
static void u16(struct b *b, uint16_t v) { u8(b, (uint8_t)v), u8(b, (uint8_t)(v >> 8)); }
static void u32(struct b *b, uint32_t v) { u16(b, (uint16_t)v), u16(b, (uint16_t)(v >> 16)); }
static void u64(struct b *b, uint64_t v) { u32(b, (uint32_t)v), u32(b, (uint32_t)(v >> 32)); }
static void str(struct b *b, const char *s) { u64(b, strlen(s)), put(b, s, strlen(s)); }
static void f32(struct b *b, float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	u32(b, x);
}
static void hdr(struct b *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
	put(b, "GGUF", 4), u32(b, version), u64(b, nt), u64(b, nkv);
}
static void key(struct b *b, const char *k, uint32_t type) { str(b, k), u32(b, type); }
static void kv_u32(struct b *b, const char *k, uint32_t v) { key(b, k, MFS_GGUF_U32), u32(b, v); }
static void kv_str(struct b *b, const char *k, const char *v) { key(b, k, MFS_GGUF_STRING), str(b, v); }
static void arr(struct b *b, const char *k, uint32_t elem, uint64_t n)
{
	key(b, k, MFS_GGUF_ARRAY), u32(b, elem), u64(b, n);
}
static void tinfo(struct b *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
		  uint64_t off)
{
	str(b, name), u32(b, n_dims);
	for (uint32_t i = 0; i < n_dims; i++)
		u64(b, ne[i]);
	u32(b, type), u64(b, off);
}
static void pad(struct b *b, size_t a)
{
	while (b->len % a)
		u8(b, 0);
}
static void data(struct b *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		u8(b, (uint8_t)(i * 131 + 7));
}

static const char *const tokens[] = {"<unk>", "<s>", "</s>", "hello", "\xe2\x96\x81world", ""};
#define N_TOKENS (sizeof(tokens) / sizeof(tokens[0]))

/* A small llama-like model: 14 keys (per-layer head counts as arrays, a
 * vocabulary), 3 tensors (F32, F16, Q4_0), alignment 32, padded like ggml. */
static void build_model(struct b *b)
{
	hdr(b, 3, 3, 14);
	kv_str(b, "general.name", "tiny");        /* before the architecture on purpose */
	kv_u32(b, "tiny.context_length", 2048);
	kv_str(b, "general.architecture", "tiny");
	kv_u32(b, "general.alignment", 32);
	key(b, "general.file_type", MFS_GGUF_I32), u32(b, 15);
	key(b, "tiny.embedding_length", MFS_GGUF_U64), u64(b, 64);
	key(b, "tiny.block_count", MFS_GGUF_U16), u16(b, 2);
	kv_u32(b, "tiny.feed_forward_length", 256);
	arr(b, "tiny.attention.head_count", MFS_GGUF_U32, 2), u32(b, 8), u32(b, 4);
	arr(b, "tiny.attention.head_count_kv", MFS_GGUF_I32, 2), u32(b, 2), u32(b, 1);
	key(b, "tiny.rope.freq_base", MFS_GGUF_F32), f32(b, 10000.0f);
	kv_str(b, "tokenizer.ggml.model", "llama");
	arr(b, "tokenizer.ggml.tokens", MFS_GGUF_STRING, N_TOKENS);
	for (size_t i = 0; i < N_TOKENS; i++)
		str(b, tokens[i]);
	key(b, "some.flag", MFS_GGUF_BOOL), u8(b, 1);
	tinfo(b, "norm", 1, (uint64_t[]){16}, 0, 0);                   /* 64 bytes */
	tinfo(b, "w", 2, (uint64_t[]){8, 3}, 1, 64);                   /* 48 bytes, padded to 64 */
	tinfo(b, "q", 2, (uint64_t[]){64, 2}, 2, 128);                 /* 2*2*18 = 72 bytes */
	pad(b, 32);
	data(b, 64 + 64 + 72);
}

static void tokens_sha(char out[65])
{
	struct b t = {0};
	uint8_t d[32];
	for (size_t i = 0; i < N_TOKENS; i++)
		str(&t, tokens[i]);
	mfs_sha256(t.p, t.len, d);
	mfs_hex_encode(d, 32, out);
	free(t.p);
}

static int parse_all(const struct b *b, struct mfs_gguf_meta *m, struct mfs_err *e)
{
	uint64_t need = 0;
	return mfs_gguf_parse(b->p, b->len, b->len, &need, m, e);
}

/* Parses b and checks the error code, kind and a piece of the message. */
static void expect_fail(const struct b *b, int code, enum mfs_err_kind kind, const char *msg)
{
	struct mfs_err e = {0};
	struct mfs_gguf_meta m;
	int r = parse_all(b, &m, &e);
	if (r != code || e.kind != kind || !strstr(e.msg, msg))
		print_error("got %d kind %d '%s', expected %d kind %d containing '%s'\n", r, e.kind,
			    e.msg, code, kind, msg);
	assert_int_equal(r, code);
	assert_int_equal(e.kind, kind);
	assert_non_null(strstr(e.msg, msg));
}

static void test_valid_model(void **state)
{
	struct b b = {0};
	struct mfs_gguf_meta m;
	struct mfs_err e = {0};
	char sha[65];

	build_model(&b);
	assert_int_equal(parse_all(&b, &m, &e), 0);
	assert_int_equal(m.version, 3);
	assert_int_equal(m.tensor_count, 3);
	assert_int_equal(m.kv_count, 14);
	assert_int_equal(m.alignment, 32);
	assert_int_equal(m.data_offset % 32, 0);
	assert_int_equal(m.data_offset + 128 + 72, b.len);
	assert_int_equal(m.data_bytes, 64 + 48 + 72);
	assert_string_equal(m.architecture, "tiny");
	assert_string_equal(m.name, "tiny");
	assert_string_equal(m.tokenizer_model, "llama");
	assert_int_equal(m.file_type, 15);
	assert_string_equal(m.file_type_name, "Q4_K_M");
	assert_int_equal(m.quantization_version, -1);
	assert_int_equal(m.context_length, 2048);
	assert_int_equal(m.embedding_length, 64);
	assert_int_equal(m.block_count, 2);
	assert_int_equal(m.feed_forward_length, 256);
	assert_int_equal(m.head_count, 8);
	assert_int_equal(m.head_count_kv, 2);
	assert_true(m.rope_freq_base == 10000.0);
	assert_int_equal(m.vocab_size, N_TOKENS);
	tokens_sha(sha);
	assert_string_equal(m.tokens_sha256, sha);
	assert_false(m.is_split);
	assert_int_equal(m.split_tensors_count, -1);

	json_t *j = mfs_gguf_meta_json(&m);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "architecture")), "tiny");
	assert_int_equal(json_integer_value(json_object_get(j, "context_length")), 2048);
	assert_string_equal(json_string_value(json_object_get(j, "file_type_name")), "Q4_K_M");
	assert_string_equal(json_string_value(json_object_get(j, "tokens_sha256")), sha);
	assert_null(json_object_get(j, "expert_count"));  /* absent: left out */
	assert_null(json_object_get(j, "split_no"));
	json_decref(j);
	mfs_gguf_meta_release(&m);
	mfs_gguf_meta_release(&m); /* twice is harmless */
	mfs_gguf_meta_release(NULL);
	free(b.p);
}

static void test_minimal_and_v2(void **state)
{
	struct b b = {0};
	struct mfs_gguf_meta m;
	struct mfs_err e = {0};

	hdr(&b, 2, 0, 0);
	assert_int_equal(parse_all(&b, &m, &e), 0);
	assert_int_equal(m.version, 2);
	assert_int_equal(m.data_offset, 32);
	assert_null(m.architecture);
	assert_int_equal(m.file_type, -1);
	assert_null(m.file_type_name);
	assert_string_equal(m.tokens_sha256, "");
	mfs_gguf_meta_release(&m);
	free(b.p);
}

/* Visitor: counts and checks what it is shown. */
struct seen {
	int kvs, tensors;
	bool flag, heads;
};
static int see_kv(void *ctx, const struct mfs_gguf_kv_view *kv)
{
	struct seen *s = ctx;
	s->kvs++;
	if (kv->key_len == 9 && !memcmp(kv->key, "some.flag", 9))
		s->flag = kv->type == MFS_GGUF_BOOL && kv->b;
	if (kv->key_len == 25 && !memcmp(kv->key, "tiny.attention.head_count", 25))
		s->heads = kv->type == MFS_GGUF_ARRAY && kv->elem_type == MFS_GGUF_U32 && kv->count == 2;
	return 0;
}
static int see_tensor(void *ctx, const struct mfs_gguf_tensor_view *t)
{
	struct seen *s = ctx;
	if (s->tensors == 2) {
		assert_int_equal(t->name_len, 1);
		assert_memory_equal(t->name, "q", 1);
		assert_int_equal(t->type, 2);
		assert_int_equal(t->dims[0], 64);
		assert_int_equal(t->dims[1], 2);
		assert_int_equal(t->dims[2], 1);
		assert_int_equal(t->offset, 128);
		assert_int_equal(t->size, 72);
	}
	return ++s->tensors == 99 ? -ECANCELED : 0;
}

static void test_visitor(void **state)
{
	struct b b = {0};
	struct seen s = {0};
	struct mfs_gguf_visitor v = {see_kv, see_tensor, &s};

	build_model(&b);
	assert_int_equal(mfs_gguf_parse_ex(b.p, b.len, b.len, NULL, NULL, &v, NULL), 0);
	assert_int_equal(s.kvs, 14);
	assert_int_equal(s.tensors, 3);
	assert_true(s.flag);
	assert_true(s.heads);
	s = (struct seen){.tensors = 98};
	assert_int_equal(mfs_gguf_parse_ex(b.p, b.len, b.len, NULL, NULL, &v, NULL), -ECANCELED);
	free(b.p);
}

/* Feeds growing prefixes: every prefix either asks for more (need > len,
 * need <= size) or succeeds; following need reaches success in few rounds. */
static void check_prefixes(const uint8_t *p, size_t size, size_t step)
{
	struct mfs_gguf_meta m;
	struct mfs_err e;
	uint64_t need;
	size_t header_end = 0;

	for (size_t len = 0; len <= size; len += step) {
		need = 0;
		int r = mfs_gguf_parse(p, len, size, &need, &m, &e);
		if (r == 0) {
			mfs_gguf_meta_release(&m);
			if (!header_end)
				header_end = len;
			continue;
		}
		if (r != -EAGAIN)
			print_error("prefix %zu: %d %s\n", len, r, e.msg);
		assert_int_equal(r, -EAGAIN);
		assert_false(header_end); /* once enough, always enough */
		assert_true(need > len);
		assert_true(need <= size);
	}
	size_t len = 0;
	int rounds = 0, r;
	while ((r = mfs_gguf_parse(p, len, size, &need, &m, &e)) == -EAGAIN) {
		assert_true(need > len);
		len = need;
		assert_true(++rounds < 40);
	}
	assert_int_equal(r, 0);
	mfs_gguf_meta_release(&m);
}

static void test_need_protocol(void **state)
{
	struct b b = {0};
	build_model(&b);
	check_prefixes(b.p, b.len, 1);

	/* A large header (a 300,000-token vocabulary): the hint doubles, so
	 * few rounds, and each answer is at least what the failing read needs. */
	struct b big = {0};
	hdr(&big, 3, 0, 1);
	arr(&big, "tokenizer.ggml.tokens", MFS_GGUF_STRING, 300000);
	for (int i = 0; i < 300000; i++) {
		char t[32];
		snprintf(t, sizeof(t), "token-%d", i);
		str(&big, t);
	}
	struct mfs_gguf_meta m;
	uint64_t need;
	size_t len = 100;
	int rounds = 0, r;
	while ((r = mfs_gguf_parse(big.p, len, big.len, &need, &m, NULL)) == -EAGAIN) {
		assert_true(need > len && need <= big.len);
		len = need;
		rounds++;
	}
	assert_int_equal(r, 0);
	assert_true(rounds <= 10);
	assert_int_equal(m.vocab_size, 300000);
	mfs_gguf_meta_release(&m);

	/* len past file_size is ignored; a string whose length is known asks for
	 * all of it at once. */
	struct b s = {0};
	hdr(&s, 3, 0, 1);
	kv_str(&s, "general.name", "");
	size_t before = s.len - 8;
	s.len = before;
	char big_name[200000];
	memset(big_name, 'x', sizeof(big_name));
	u64(&s, sizeof(big_name));
	put(&s, big_name, sizeof(big_name));
	assert_int_equal(mfs_gguf_parse(s.p, before + 8, s.len, &need, &m, NULL), -EAGAIN);
	assert_int_equal(need, s.len);
	assert_int_equal(mfs_gguf_parse(s.p, s.len, s.len, &need, &m, NULL), 0);
	assert_int_equal(strlen(m.name), MFS_GGUF_META_STR_MAX);
	mfs_gguf_meta_release(&m);
	free(s.p);
	free(big.p);
	free(b.p);
}

static void test_header_cap(void **state)
{
	/* A 300 MiB string in a 1 GiB file: refused as too large without
	 * asking for the bytes. */
	struct b b = {0};
	uint64_t need = 0;
	struct mfs_err e = {0};
	struct mfs_gguf_meta m;
	hdr(&b, 3, 0, 1);
	str(&b, "general.name");
	u32(&b, MFS_GGUF_STRING);
	u64(&b, 300ull << 20);
	assert_int_equal(mfs_gguf_parse(b.p, b.len, 1ull << 30, &need, &m, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "general.name"));
	/* kv_count beyond the implementation limit */
	b.len = 0;
	hdr(&b, 3, 0, 2000000);
	assert_int_equal(mfs_gguf_parse(b.p, b.len, 1ull << 30, &need, &m, &e), -EFBIG);
	free(b.p);
}

static void test_bad_header(void **state)
{
	struct b b = {0};

	build_model(&b);
	memcpy(b.p, "GGUX", 4);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "bad magic 'GGUX'");
	b.len = 0;

	hdr(&b, 1, 0, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "version 1 is not supported");
	b.len = 0;
	hdr(&b, 4, 0, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "unsupported GGUF version 4");
	b.len = 0;
	hdr(&b, 0x03000000, 0, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "big-endian");
	b.len = 0;

	/* counts a file of this size cannot hold */
	hdr(&b, 3, 0, 1ull << 60);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "more than a file");
	b.len = 0;
	hdr(&b, 3, UINT64_MAX, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "more than a file");
	b.len = 0;

	/* too short for the header itself */
	put(&b, "GGUF\x03\x00", 6);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "truncated");
	b.len = 0;
	put(&b, "GG", 2);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "truncated");
	free(b.p);
}

static void test_bad_kv(void **state)
{
	struct b b = {0};

	/* truncated in the middle of the key/values */
	build_model(&b);
	b.len = 330; /* inside a key's name */
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "runs past the end of the file (330 bytes)");
	b.len = 0;
	build_model(&b);
	b.len = (size_t)((uint8_t *)memmem(b.p, b.len, "tokenizer.ggml.tokens", 21) - b.p) + 40;
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "'tokenizer.ggml.tokens'");
	b.len = 0;

	/* string length 2^62 */
	hdr(&b, 3, 0, 1);
	key(&b, "general.name", MFS_GGUF_STRING);
	u64(&b, 1ull << 62);
	put(&b, "abc", 3);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "key 'general.name': string length 4611686018427387904");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	u64(&b, 1ull << 62);
	put(&b, "general.name", 12);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "key #0 name");
	b.len = 0;

	/* array counts beyond the file */
	hdr(&b, 3, 0, 1);
	arr(&b, "a.strings", MFS_GGUF_STRING, 1ull << 61);
	u64(&b, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "array of 2305843009213693952 string elements");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	arr(&b, "a.u64s", MFS_GGUF_U64, 1ull << 62);
	u64(&b, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "'a.u64s'");
	b.len = 0;

	/* bool 2, scalar and in an array */
	hdr(&b, 3, 0, 1);
	key(&b, "a.flag", MFS_GGUF_BOOL), u8(&b, 2);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "key 'a.flag': bool value 2");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	arr(&b, "a.flags", MFS_GGUF_BOOL, 3), u8(&b, 0), u8(&b, 1), u8(&b, 7);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "bool element 2 is 7");
	b.len = 0;

	/* nested array; invalid value and element types */
	hdr(&b, 3, 0, 1);
	arr(&b, "a.nested", MFS_GGUF_ARRAY, 1), u32(&b, MFS_GGUF_U8), u64(&b, 1), u8(&b, 1);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "key 'a.nested' is a nested array");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	key(&b, "a.weird", 13), u64(&b, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "key 'a.weird' has invalid value type 13");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	arr(&b, "a.weird", 0xffffffff, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "invalid value type 4294967295");
	b.len = 0;

	/* duplicate keys */
	hdr(&b, 3, 0, 2);
	kv_u32(&b, "a.x", 1);
	kv_u32(&b, "a.x", 2);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "duplicate key 'a.x'");
	b.len = 0;

	/* alignment: wrong type, not a power of two, zero */
	hdr(&b, 3, 0, 1);
	key(&b, "general.alignment", MFS_GGUF_U64), u64(&b, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "expected u32");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	kv_u32(&b, "general.alignment", 48);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "not a power of two");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	kv_u32(&b, "general.alignment", 0);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "not a power of two");
	b.len = 0;

	/* planning keys of the wrong type */
	hdr(&b, 3, 0, 1);
	kv_u32(&b, "general.architecture", 7);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "'general.architecture' has type u32, expected string");
	b.len = 0;
	hdr(&b, 3, 0, 2);
	kv_str(&b, "general.architecture", "x");
	key(&b, "x.context_length", MFS_GGUF_F32), f32(&b, 1.0f);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "'x.context_length' has type f32");
	b.len = 0;
	hdr(&b, 3, 0, 2);
	kv_str(&b, "general.architecture", "x");
	key(&b, "x.block_count", MFS_GGUF_I32), u32(&b, (uint32_t)-3);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "'x.block_count' is negative");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	arr(&b, "tokenizer.ggml.tokens", MFS_GGUF_U32, 0);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "not an array of strings");
	free(b.p);
}

/* One tensor "t" with the given shape, type and offset, then data. */
static void one_tensor(struct b *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
		       size_t data_bytes)
{
	b->len = 0;
	hdr(b, 3, 1, 0);
	tinfo(b, "t", n_dims, ne, type, off);
	pad(b, 32);
	data(b, data_bytes);
}

static void test_bad_tensors(void **state)
{
	struct b b = {0};
	struct mfs_gguf_meta m;

	one_tensor(&b, 1, (uint64_t[]){8}, 0, 0, 32);
	assert_int_equal(parse_all(&b, &m, NULL), 0);
	mfs_gguf_meta_release(&m);

	/* past the end of the file, by one byte and by an overflowing offset */
	one_tensor(&b, 1, (uint64_t[]){8}, 0, 0, 31);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "tensor 't' (offset 0 in the data section at 64, 32 bytes) runs past the end");
	one_tensor(&b, 1, (uint64_t[]){8}, 0, UINT64_MAX - 31, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "runs past the end of the file");
	/* misaligned */
	one_tensor(&b, 1, (uint64_t[]){8}, 0, 16, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "tensor 't' offset 16 is not a multiple of the alignment 32");
	/* unknown ggml types: a removed id, one past the table, a huge one */
	one_tensor(&b, 1, (uint64_t[]){32}, 4, 0, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "tensor 't' has unknown ggml type 4");
	one_tensor(&b, 1, (uint64_t[]){32}, 40, 0, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "unknown ggml type 40");
	one_tensor(&b, 1, (uint64_t[]){32}, 0xffffffff, 0, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "unknown ggml type 4294967295");
	/* n_dims > 4 */
	one_tensor(&b, 5, (uint64_t[]){1, 1, 1, 1, 1}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "tensor 't' has 5 dimensions");
	/* overflowing dimensions */
	one_tensor(&b, 4, (uint64_t[]){1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "number of elements overflows");
	one_tensor(&b, 2, (uint64_t[]){1ull << 62, 1ull << 1}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "number of elements overflows");
	one_tensor(&b, 1, (uint64_t[]){1ull << 62}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "byte size overflows");
	one_tensor(&b, 1, (uint64_t[]){UINT64_MAX}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "dimension 0 has invalid size");
	one_tensor(&b, 2, (uint64_t[]){8, 0}, 0, 0, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "dimension 1 has invalid size 0");
	/* row not a multiple of the block size */
	one_tensor(&b, 1, (uint64_t[]){33}, 2, 0, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "not a multiple of the block size 32");
	/* name of 64 bytes */
	b.len = 0;
	hdr(&b, 3, 1, 0);
	tinfo(&b, "0123456789012345678901234567890123456789012345678901234567890123", 1,
	      (uint64_t[]){8}, 0, 0);
	pad(&b, 32);
	data(&b, 32);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "is 64 bytes, the limit is 63");
	/* duplicate names; overlapping ranges */
	b.len = 0;
	hdr(&b, 3, 2, 0);
	tinfo(&b, "a", 1, (uint64_t[]){8}, 0, 0);
	tinfo(&b, "a", 1, (uint64_t[]){8}, 0, 32);
	pad(&b, 32);
	data(&b, 64);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "duplicate tensor name 'a'");
	b.len = 0;
	hdr(&b, 3, 2, 0);
	tinfo(&b, "a", 1, (uint64_t[]){16}, 0, 0);
	tinfo(&b, "b", 1, (uint64_t[]){16}, 0, 32);
	pad(&b, 32);
	data(&b, 96);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "tensor 'b' [32, 96) overlaps tensor 'a' [0, 64)");
	/* truncated inside the tensor infos */
	b.len = 0;
	hdr(&b, 3, 1, 0);
	str(&b, "t");
	u32(&b, 4);
	u64(&b, 8);
	u64(&b, 8);
	expect_fail(&b, -EINVAL, MFS_ERR_PARSE, "truncated GGUF: tensor 't'");
	free(b.p);
}

static void split_file(struct b *b, int no, int count, int total, int n_tensors)
{
	b->len = 0;
	hdr(b, 3, (uint64_t)n_tensors, 3);
	key(b, "split.no", MFS_GGUF_U16), u16(b, (uint16_t)no);
	key(b, "split.count", MFS_GGUF_U16), u16(b, (uint16_t)count);
	key(b, "split.tensors.count", MFS_GGUF_I32), u32(b, (uint32_t)total);
	for (int i = 0; i < n_tensors; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		tinfo(b, name, 1, (uint64_t[]){8}, 0, (uint64_t)i * 32);
	}
	pad(b, 32);
	data(b, (size_t)n_tensors * 32);
}

static void test_split(void **state)
{
	struct b b = {0};
	struct mfs_gguf_meta m[3];
	const struct mfs_gguf_meta *pm[3] = {&m[0], &m[1], &m[2]};
	struct mfs_err e = {0};

	int n[3] = {2, 2, 1};
	for (int i = 0; i < 3; i++) {
		split_file(&b, i, 3, 5, n[i]);
		assert_int_equal(parse_all(&b, &m[i], &e), 0);
		assert_true(m[i].is_split);
		assert_int_equal(m[i].split_no, i);
		assert_int_equal(m[i].split_count, 3);
		assert_int_equal(m[i].split_tensors_count, 5);
	}
	json_t *j = mfs_gguf_meta_json(&m[1]);
	assert_int_equal(json_integer_value(json_object_get(j, "split_no")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "split_count")), 3);
	json_decref(j);
	assert_int_equal(mfs_gguf_check_split(pm, 3, &e), 0);
	/* a missing shard */
	assert_int_equal(mfs_gguf_check_split(pm, 2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "shard 00001-of-00002 has split.count 3, expected 2"));
	/* out of order */
	const struct mfs_gguf_meta *swapped[3] = {&m[0], &m[2], &m[1]};
	assert_int_equal(mfs_gguf_check_split(swapped, 3, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "shard 00002-of-00003 has split.no 2, expected 1"));
	/* wrong total */
	m[2].split_tensors_count = 6;
	assert_int_equal(mfs_gguf_check_split(pm, 3, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "shard 00003-of-00003 has split.tensors.count 6"));
	assert_int_equal(e.kind, MFS_ERR_FORMAT);
	for (int i = 0; i < 3; i++)
		mfs_gguf_meta_release(&m[i]);

	/* a plain file is a set of one; in a set of two it is refused */
	b.len = 0;
	hdr(&b, 3, 0, 0);
	assert_int_equal(parse_all(&b, &m[0], &e), 0);
	assert_int_equal(mfs_gguf_check_split(pm, 1, &e), 0);
	m[1] = m[0];
	assert_int_equal(mfs_gguf_check_split(pm, 2, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "shard 00001-of-00002 has no split.count"));
	mfs_gguf_meta_release(&m[0]);

	/* inconsistent within one file */
	split_file(&b, 3, 3, 5, 1);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "split.no 3 is not below split.count 3");
	split_file(&b, 0, 2, 1, 2);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "split.tensors.count 1 is impossible");
	b.len = 0;
	hdr(&b, 3, 0, 1);
	key(&b, "split.count", MFS_GGUF_U16), u16(&b, 2);
	expect_fail(&b, -EINVAL, MFS_ERR_FORMAT, "has 'split.count' but not 'split.no'");
	free(b.p);
}

static void test_meta_strings(void **state)
{
	/* invalid UTF-8 and NUL in metadata strings come out as valid UTF-8 */
	struct b b = {0};
	struct mfs_gguf_meta m;
	hdr(&b, 3, 0, 1);
	key(&b, "general.name", MFS_GGUF_STRING);
	u64(&b, 6);
	put(&b, "a\xff" "b\0c\xc3", 6);
	assert_int_equal(parse_all(&b, &m, NULL), 0);
	assert_string_equal(m.name, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd");
	json_t *j = mfs_gguf_meta_json(&m);
	assert_non_null(j);
	assert_non_null(json_object_get(j, "name"));
	json_decref(j);
	mfs_gguf_meta_release(&m);
	assert_string_equal(mfs_ggml_type_name(12, NULL, NULL), "Q4_K");
	assert_null(mfs_ggml_type_name(31, NULL, NULL));
	assert_string_equal(mfs_gguf_file_type_name(38), "MXFP4_MOE");
	assert_null(mfs_gguf_file_type_name(4));
	assert_null(mfs_gguf_file_type_name(-1));
	free(b.p);
}

/* Random byte mutations of a valid file: the parser must answer 0 or
 * -EINVAL/-EFBIG, never crash or read out of bounds (run under ASan with
 * MFS_SANITIZE=ON), and every prefix of a mutated file behaves. */
static void test_mutations(void **state)
{
	struct b b = {0};
	build_model(&b);
	uint8_t *c = malloc(b.len);
	uint64_t s = 12345;
	assert_non_null(c);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(c, b.p, b.len);
		int edits = 1 + iter % 4;
		for (int k = 0; k < edits; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			size_t at = (size_t)(s >> 33) % b.len;
			uint8_t v = (uint8_t)(s >> 13);
			c[at] = (iter & 1) ? v : (uint8_t)(c[at] ^ (1u << (v & 7)));
		}
		size_t size = (iter % 5 == 0) ? (size_t)(s >> 40) % (b.len + 1) : b.len;
		struct mfs_gguf_meta m;
		struct mfs_err e = {0};
		uint64_t need = 0;
		int r = mfs_gguf_parse(c, size, size, &need, &m, &e);
		assert_true(r == 0 || r == -EINVAL || r == -EFBIG);
		if (r == 0)
			mfs_gguf_meta_release(&m);
		else
			assert_true(e.msg[0] != '\0');
	}
	free(c);
	free(b.p);
}

/* ---- the real fixtures ---- */

static uint8_t *load_fixture(const char *name, size_t *size)
{
	const char *src = getenv("MFS_SOURCE_DIR");
	char path[4096];
	if (!src)
		return NULL;
	snprintf(path, sizeof(path), "%s/../shared/fixtures/%s", src, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return p;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

struct fixture_walk {
	uint64_t end;           /* max offset + size */
	int types[64];
	uint64_t tensors;
};
static int walk_tensor(void *ctx, const struct mfs_gguf_tensor_view *t)
{
	struct fixture_walk *w = ctx;
	if (t->offset + t->size > w->end)
		w->end = t->offset + t->size;
	if (t->type < 64)
		w->types[t->type]++;
	w->tensors++;
	return 0;
}

static void test_fixture_llama(void **state)
{
	size_t size;
	uint8_t *p = load_fixture("llama-2-tiny-random.gguf", &size);
	if (!p) {
		print_message("skipped: ../shared/fixtures/llama-2-tiny-random.gguf is absent (MFS_SOURCE_DIR unset or no ../shared)\n");
		skip();
	}
	struct mfs_gguf_meta m;
	struct mfs_err e = {0};
	struct fixture_walk w = {0};
	struct mfs_gguf_visitor v = {NULL, walk_tensor, &w};
	assert_int_equal(mfs_gguf_parse_ex(p, size, size, NULL, &m, &v, &e), 0);
	/* the facts the file states in its own header */
	assert_int_equal(m.version, p[4]);
	assert_int_equal(m.tensor_count, rd64(p + 8));
	assert_int_equal(m.kv_count, rd64(p + 16));
	assert_int_equal(w.tensors, m.tensor_count);
	/* the README: llama, 12 tensors (the README says F16: the three norms
	 * are F32 in the file, as llama.cpp writes them), 18 keys, a
	 * 32,000-token vocabulary */
	assert_int_equal(m.tensor_count, 12);
	assert_int_equal(m.kv_count, 18);
	assert_int_equal(w.types[0] + w.types[1], 12);
	assert_true(w.types[1] >= 9);
	assert_string_equal(m.architecture, "llama");
	assert_int_equal(m.vocab_size, 32000);
	assert_string_equal(m.file_type_name, "F16");
	assert_int_equal(m.data_offset % m.alignment, 0);
	assert_true(m.data_offset + w.end <= size);
	assert_int_equal(strlen(m.tokens_sha256), 64);
	assert_true(m.context_length > 0 && m.embedding_length > 0 && m.block_count > 0);
	mfs_gguf_meta_release(&m);
	check_prefixes(p, size, 997);
	free(p);
}

static void test_fixture_dummy(void **state)
{
	size_t size;
	uint8_t *p = load_fixture("dummy.gguf", &size);
	if (!p) {
		print_message("skipped: ../shared/fixtures/dummy.gguf is absent (MFS_SOURCE_DIR unset or no ../shared)\n");
		skip();
	}
	struct mfs_gguf_meta m;
	struct mfs_err e = {0};
	struct fixture_walk w = {0};
	struct mfs_gguf_visitor v = {NULL, walk_tensor, &w};
	assert_int_equal(mfs_gguf_parse_ex(p, size, size, NULL, &m, &v, &e), 0);
	assert_int_equal(m.tensor_count, rd64(p + 8));
	assert_int_equal(m.kv_count, rd64(p + 16));
	/* the README: 15 key/values, 10 F32 tensors, data at 1216, the last
	 * tensor ends exactly at EOF */
	assert_int_equal(m.kv_count, 15);
	assert_int_equal(w.types[0], 10);
	assert_int_equal(m.data_offset, 1216);
	assert_int_equal(m.data_offset + w.end, size);
	assert_null(m.architecture);
	mfs_gguf_meta_release(&m);
	check_prefixes(p, size, 1);
	/* one byte short: the last tensor runs past the end */
	assert_int_equal(mfs_gguf_parse(p, size - 1, size - 1, NULL, &m, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "runs past the end of the file"));
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_model),
		cmocka_unit_test(test_minimal_and_v2),
		cmocka_unit_test(test_visitor),
		cmocka_unit_test(test_need_protocol),
		cmocka_unit_test(test_header_cap),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_kv),
		cmocka_unit_test(test_bad_tensors),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_meta_strings),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_fixture_llama),
		cmocka_unit_test(test_fixture_dummy),
	};
	return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
