/*
 * mfs_gen.c - writes GGUF and safetensors test files with real tensor data,
 * hostile files for the validators, and dumps what the validators see.
 *
 *   mfs-gen gguf OUT [--arch A] [--name S] [--tensors N] [--tensor-bytes B]
 *                    [--file-type F] [--vocab V] [--context-length C]
 *                    [--seed S] [--split K] [--extra-keys N]
 *   mfs-gen safetensors OUT [--tensors N] [--tensor-bytes B] [--seed S]
 *                    [--extra-keys N]
 *   mfs-gen bad KIND OUT          (mfs-gen bad --list names the kinds)
 *   mfs-gen dump FILE             (JSON on stdout; GGUF for *.gguf or the
 *                                  GGUF magic, else safetensors; exit 2 with
 *                                  the validator's message when it refuses)
 *
 * GGUF files follow llama.cpp's layout: version 3, general.* keys first, the
 * architecture's hyper-parameters, a tokenizer, general.alignment 32, tensor
 * data padded to the alignment and contiguous in listing order. A split
 * writes OUT-0000i-of-0000K.gguf (OUT minus any .gguf), each a full GGUF with
 * split.no/count/tensors.count, the other metadata only in the first shard.
 * Tensor data are deterministic pseudo-random finite F16/F32/BF16 values from
 * --seed, streamed, so multi-GiB files cost no memory. Sizes take K/M/G
 * suffixes (powers of 1024). Paths written are printed one per line.
 * --extra-keys N adds N string metadata keys with long names (GGUF key/value
 * pairs, or safetensors __metadata__ entries), for the attribute-list tests.
 *
 * This is a test tool: it exits 1 with a message on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "gguf.h"
#include "safetensors.h"

#define ALIGNMENT 32

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mfs-gen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- a growable byte buffer with little-endian writers ---- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n)
			nc *= 2;
		if (!(b->p = realloc(b->p, nc)))
			die("out of memory");
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(b, x, 2);
}
static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(b, x, 4);
}
static void put_u64(struct buf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}
static void put_f32(struct buf *b, float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	put_u32(b, x);
}
static void put_strn(struct buf *b, const char *s, size_t n)
{
	put_u64(b, n);
	put(b, s, n);
}
static void put_str(struct buf *b, const char *s) { put_strn(b, s, strlen(s)); }

/* GGUF key/value writers: key, type, value. */
static void kv_str(struct buf *b, const char *k, const char *v)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_STRING);
	put_str(b, v);
}
static void kv_u32(struct buf *b, const char *k, uint32_t v)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_U32);
	put_u32(b, v);
}
static void kv_u16(struct buf *b, const char *k, uint16_t v)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_U16);
	put_u16(b, v);
}
static void kv_i32(struct buf *b, const char *k, int32_t v)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_I32);
	put_u32(b, (uint32_t)v);
}
static void kv_f32(struct buf *b, const char *k, float v)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_F32);
	put_f32(b, v);
}
static void kv_array(struct buf *b, const char *k, uint32_t elem, uint64_t n)
{
	put_str(b, k);
	put_u32(b, MFS_GGUF_ARRAY);
	put_u32(b, elem);
	put_u64(b, n);
}

/* ---- deterministic data ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

enum dt { DT_F32, DT_F16, DT_BF16 };

/* Finite values of magnitude below 2: random sign and mantissa, an exponent
 * at or below the bias. */
static uint16_t rnd_f16(uint64_t x)
{
	return (uint16_t)((x & 0x8000) | ((((x >> 16) % 15) & 0x1f) << 10) | ((x >> 24) & 0x3ff));
}
static uint32_t rnd_f32(uint64_t x)
{
	return (uint32_t)(((x & 1) << 31) | ((100 + (x >> 1) % 27) << 23) | ((x >> 12) & 0x7fffff));
}

/* Writes size bytes of tensor data for tensor idx of the given type. */
static void write_data(FILE *f, enum dt dt, uint64_t size, uint64_t seed, uint64_t idx)
{
	static uint8_t chunk[1 << 16];
	uint64_t s = seed * 0x2545f4914f6cdd1dull + idx * 0x9e3779b97f4a7c15ull + 1;
	while (size) {
		size_t n = size < sizeof(chunk) ? (size_t)size : sizeof(chunk);
		for (size_t i = 0; i < n; i += 8) {
			uint64_t x = splitmix64(&s), y = splitmix64(&s);
			uint8_t w[8];
			if (dt == DT_F32) {
				uint32_t a = rnd_f32(x), c = rnd_f32(y);
				for (int k = 0; k < 4; k++)
					w[k] = (uint8_t)(a >> 8 * k), w[4 + k] = (uint8_t)(c >> 8 * k);
			} else {
				for (int k = 0; k < 4; k++) {
					uint64_t z = k < 2 ? x >> 32 * k : y >> 32 * (k - 2);
					uint16_t h = dt == DT_F16 ? rnd_f16(z) : (uint16_t)(rnd_f32(z) >> 16);
					w[2 * k] = (uint8_t)h;
					w[2 * k + 1] = (uint8_t)(h >> 8);
				}
			}
			memcpy(chunk + i, w, n - i < 8 ? n - i : 8);
		}
		if (fwrite(chunk, 1, n, f) != n)
			die("write failed: %s", strerror(errno));
		size -= n;
	}
}

static void write_zeros(FILE *f, uint64_t n)
{
	static const uint8_t z[ALIGNMENT];
	while (n) {
		size_t k = n < sizeof(z) ? (size_t)n : sizeof(z);
		if (fwrite(z, 1, k, f) != k)
			die("write failed: %s", strerror(errno));
		n -= k;
	}
}

static FILE *create(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		die("cannot create '%s': %s", path, strerror(errno));
	return f;
}

static void finish(FILE *f, const char *path)
{
	if (fflush(f) || ferror(f) || fclose(f))
		die("cannot write '%s': %s", path, strerror(errno));
	printf("%s\n", path);
}

/* ---- options ---- */

static uint64_t num(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	uint64_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30, end++;
	if (errno || end == s || *end || s[0] == '-' || (v && mul > UINT64_MAX / v))
		die("bad number '%s' for %s", s, opt);
	return v * mul;
}

struct opts {
	const char *arch, *name;
	uint64_t tensors, tensor_bytes, file_type, vocab, seed, split, context_length;
	uint64_t extra_keys; /* --extra-keys: that many more metadata keys (attack tests) */
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			die("option '%s' needs a value (or is unknown)", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--arch"))
			o->arch = v;
		else if (!strcmp(a, "--name"))
			o->name = v;
		else if (!strcmp(a, "--tensors"))
			o->tensors = num(a, v);
		else if (!strcmp(a, "--tensor-bytes"))
			o->tensor_bytes = num(a, v);
		else if (!strcmp(a, "--file-type"))
			o->file_type = num(a, v);
		else if (!strcmp(a, "--vocab"))
			o->vocab = num(a, v);
		else if (!strcmp(a, "--seed"))
			o->seed = num(a, v);
		else if (!strcmp(a, "--extra-keys"))
			o->extra_keys = num(a, v);
		else if (!strcmp(a, "--split"))
			o->split = num(a, v);
		else if (!strcmp(a, "--context-length"))
			o->context_length = num(a, v);
		else
			die("unknown option '%s'", a);
	}
}

/* ---- the model plan: tensor names, types and shapes ---- */

struct tensor {
	char name[64];
	enum dt dt;
	uint32_t n_dims;
	uint64_t ne[2];
	uint64_t size;
};

static const char *const block_parts[] = {
	"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
	"ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
};
#define N_PARTS (sizeof(block_parts) / sizeof(block_parts[0]))

/* Embedding width: a power of two near sqrt(B/2), between 32 and 4096, so
 * that an F16 [E, rows] matrix of about B bytes is roughly square. */
static uint64_t embedding_for(uint64_t b)
{
	uint64_t e = 32;
	while (e < 4096 && 2 * e * 2 * e * 2 <= b)
		e *= 2;
	return e;
}

/* Fills t[0..n) and returns the number of blocks used. */
static uint64_t plan(struct tensor *t, uint64_t n, uint64_t b, uint64_t e)
{
	uint64_t blocks = 0;
	for (uint64_t i = 0; i < n; i++) {
		bool norm = false;
		if (i == 0) {
			snprintf(t[i].name, sizeof(t[i].name), "token_embd.weight");
		} else if (n >= 3 && i == n - 2) {
			snprintf(t[i].name, sizeof(t[i].name), "output_norm.weight");
			norm = true;
		} else if (n >= 2 && i == n - 1) {
			snprintf(t[i].name, sizeof(t[i].name), "output.weight");
		} else {
			uint64_t blk = (i - 1) / N_PARTS, part = (i - 1) % N_PARTS;
			snprintf(t[i].name, sizeof(t[i].name), "blk.%" PRIu64 ".%s.weight", blk,
				 block_parts[part]);
			norm = strstr(block_parts[part], "norm") != NULL;
			if (blk + 1 > blocks)
				blocks = blk + 1;
		}
		if (norm) {
			t[i].dt = DT_F32;
			t[i].n_dims = 1;
			t[i].ne[0] = b / 4 ? b / 4 : 1;
			t[i].ne[1] = 1;
			t[i].size = t[i].ne[0] * 4;
		} else {
			t[i].dt = DT_F16;
			t[i].n_dims = 2;
			t[i].ne[0] = e;
			t[i].ne[1] = b / (2 * e) ? b / (2 * e) : 1;
			t[i].size = t[i].ne[0] * t[i].ne[1] * 2;
		}
	}
	return blocks ? blocks : 1;
}

static uint64_t align_up(uint64_t x) { return (x + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT; }

/* The token list: special tokens, byte tokens, then words (a few non-ASCII,
 * as real SentencePiece vocabularies have). */
static void token(uint64_t i, char *out, size_t n)
{
	if (i == 0)
		snprintf(out, n, "<unk>");
	else if (i == 1)
		snprintf(out, n, "<s>");
	else if (i == 2)
		snprintf(out, n, "</s>");
	else if (i < 3 + 256)
		snprintf(out, n, "<0x%02X>", (unsigned)(i - 3));
	else if (i % 7 == 0)
		snprintf(out, n, "\xe2\x96\x81w%" PRIu64, i); /* U+2581, SentencePiece's space */
	else
		snprintf(out, n, "tok%" PRIu64, i);
}

/* Builds the header of shard s (0-based) of k (k == 1: not split) holding
 * tensors [first, first + count) of t. */
static void gguf_header(struct buf *h, const struct opts *o, const struct tensor *t,
			uint64_t n_total, uint64_t first, uint64_t count, uint64_t s, uint64_t k,
			uint64_t e, uint64_t blocks)
{
	struct buf kv = {0};
	uint64_t n_kv = 0;
	char key[256];
	const char *arch = o->arch;

	if (s == 0) {
		kv_str(&kv, "general.architecture", arch), n_kv++;
		kv_str(&kv, "general.name", o->name), n_kv++;
		kv_u32(&kv, "general.alignment", ALIGNMENT), n_kv++;
		kv_u32(&kv, "general.file_type", (uint32_t)o->file_type), n_kv++;
		kv_u32(&kv, "general.quantization_version", 2), n_kv++;
#define ARCH_KEY(suffix) (snprintf(key, sizeof(key), "%s.%s", arch, suffix), key)
		kv_u32(&kv, ARCH_KEY("context_length"), (uint32_t)o->context_length), n_kv++;
		kv_u32(&kv, ARCH_KEY("embedding_length"), (uint32_t)e), n_kv++;
		kv_u32(&kv, ARCH_KEY("block_count"), (uint32_t)blocks), n_kv++;
		kv_u32(&kv, ARCH_KEY("feed_forward_length"), (uint32_t)(e * 4)), n_kv++;
		uint32_t heads = e >= 64 ? (uint32_t)(e / 64) : 1;
		kv_u32(&kv, ARCH_KEY("attention.head_count"), heads), n_kv++;
		kv_u32(&kv, ARCH_KEY("attention.head_count_kv"), heads > 1 ? heads / 2 : 1), n_kv++;
		kv_f32(&kv, ARCH_KEY("rope.freq_base"), 10000.0f), n_kv++;
		kv_f32(&kv, ARCH_KEY("attention.layer_norm_rms_epsilon"), 1e-5f), n_kv++;
#undef ARCH_KEY
		if (o->vocab) {
			char tok[64];
			kv_str(&kv, "tokenizer.ggml.model", "llama"), n_kv++;
			kv_array(&kv, "tokenizer.ggml.tokens", MFS_GGUF_STRING, o->vocab), n_kv++;
			for (uint64_t i = 0; i < o->vocab; i++)
				token(i, tok, sizeof(tok)), put_str(&kv, tok);
			kv_array(&kv, "tokenizer.ggml.scores", MFS_GGUF_F32, o->vocab), n_kv++;
			for (uint64_t i = 0; i < o->vocab; i++)
				put_f32(&kv, -(float)i);
			kv_array(&kv, "tokenizer.ggml.token_type", MFS_GGUF_I32, o->vocab), n_kv++;
			for (uint64_t i = 0; i < o->vocab; i++)
				put_u32(&kv, i < 3 ? 3 : i < 259 ? 6 : 1);
			kv_u32(&kv, "tokenizer.ggml.bos_token_id", 1), n_kv++;
			kv_u32(&kv, "tokenizer.ggml.eos_token_id", 2), n_kv++;
		}
		for (uint64_t i = 0; i < o->extra_keys; i++) {
			char val[64];
			snprintf(key, sizeof(key), "extra.meta.key_%06" PRIu64 ".padding_to_make_it_long", i);
			snprintf(val, sizeof(val), "value %" PRIu64, i);
			kv_str(&kv, key, val), n_kv++;
		}
	}
	if (k > 1) {
		kv_u16(&kv, "split.no", (uint16_t)s), n_kv++;
		kv_u16(&kv, "split.count", (uint16_t)k), n_kv++;
		kv_i32(&kv, "split.tensors.count", (int32_t)n_total), n_kv++;
	}

	put(h, "GGUF", 4);
	put_u32(h, 3);
	put_u64(h, count);
	put_u64(h, n_kv);
	put(h, kv.p, kv.len);
	free(kv.p);
	uint64_t off = 0;
	for (uint64_t i = first; i < first + count; i++) {
		put_str(h, t[i].name);
		put_u32(h, t[i].n_dims);
		for (uint32_t d = 0; d < t[i].n_dims; d++)
			put_u64(h, t[i].ne[d]);
		put_u32(h, t[i].dt == DT_F32 ? 0 : 1);
		put_u64(h, off);
		off = align_up(off + t[i].size);
	}
	while (h->len % ALIGNMENT)
		put_u8(h, 0);
}

static int cmd_gguf(const char *out, int argc, char **argv)
{
	struct opts o = {
		.arch = "llama", .tensors = 8, .tensor_bytes = 4096, .file_type = 1,
		.vocab = 256, .seed = 1, .split = 1, .context_length = 4096,
	};
	parse_opts(argc, argv, &o);
	char name[128];
	if (!o.name) {
		snprintf(name, sizeof(name), "mfs-gen %s test model", o.arch);
		o.name = name;
	}
	if (o.tensors == 0 || o.tensors > 100000)
		die("--tensors must be 1 to 100000");
	if (o.split == 0 || o.split > 99999 || o.split > o.tensors)
		die("--split must be 1 to the number of tensors");
	if (o.tensor_bytes == 0 || o.tensor_bytes > (1ull << 40))
		die("--tensor-bytes must be 1 to 1T");
	if (strlen(o.arch) == 0 || strlen(o.arch) > 64)
		die("--arch must be 1 to 64 bytes");

	struct tensor *t = calloc(o.tensors, sizeof(*t));
	if (!t)
		die("out of memory");
	uint64_t e = embedding_for(o.tensor_bytes);
	uint64_t blocks = plan(t, o.tensors, o.tensor_bytes, e);

	char prefix[4096];
	snprintf(prefix, sizeof(prefix), "%s", out);
	size_t pl = strlen(prefix);
	if (o.split > 1 && pl > 5 && !strcmp(prefix + pl - 5, ".gguf"))
		prefix[pl - 5] = '\0';

	uint64_t per = (o.tensors + o.split - 1) / o.split, first = 0;
	for (uint64_t s = 0; s < o.split; s++) {
		uint64_t count = o.tensors - first < per ? o.tensors - first : per;
		/* Keep every later shard non-empty when the division is uneven. */
		uint64_t left_shards = o.split - s - 1;
		if (o.tensors - first - count < left_shards)
			count = o.tensors - first - left_shards;
		char path[4200];
		if (o.split > 1)
			snprintf(path, sizeof(path), "%s-%05" PRIu64 "-of-%05" PRIu64 ".gguf", prefix, s + 1,
				 o.split);
		else
			snprintf(path, sizeof(path), "%s", out);
		struct buf h = {0};
		gguf_header(&h, &o, t, o.tensors, first, count, s, o.split, e, blocks);
		FILE *f = create(path);
		if (fwrite(h.p, 1, h.len, f) != h.len)
			die("cannot write '%s': %s", path, strerror(errno));
		free(h.p);
		for (uint64_t i = first; i < first + count; i++) {
			write_data(f, t[i].dt, t[i].size, o.seed, i);
			write_zeros(f, align_up(t[i].size) - t[i].size);
		}
		finish(f, path);
		first += count;
	}
	free(t);
	return 0;
}

/* ---- safetensors ---- */

static void st_header(struct buf *j, const struct tensor *t, uint64_t n, const char *const *names,
		      uint64_t extra_keys)
{
	char tmp[512];
	uint64_t off = 0;
	static const char meta[] = "{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"mfs-gen\"";
	put(j, meta, strlen(meta));
	for (uint64_t i = 0; i < extra_keys; i++) {
		int k = snprintf(tmp, sizeof(tmp), ",\"extra.key_%06" PRIu64
				 ".padding_to_make_it_long\":\"value %" PRIu64 "\"", i, i);
		put(j, tmp, (size_t)k);
	}
	put(j, "}", 1);
	for (uint64_t i = 0; i < n; i++) {
		const char *dt = t[i].dt == DT_F32 ? "F32" : t[i].dt == DT_F16 ? "F16" : "BF16";
		int k;
		if (t[i].n_dims == 1)
			k = snprintf(tmp, sizeof(tmp),
				     ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%" PRIu64 "],\"data_offsets\":[%" PRIu64
				     ",%" PRIu64 "]}", names[i], dt, t[i].ne[0], off, off + t[i].size);
		else
			k = snprintf(tmp, sizeof(tmp),
				     ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%" PRIu64 ",%" PRIu64
				     "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", names[i], dt,
				     t[i].ne[1], t[i].ne[0], off, off + t[i].size);
		put(j, tmp, (size_t)k);
		off += t[i].size;
	}
	put(j, "}", 1);
	/* Pad with spaces so the data starts 8-aligned, as the reference writer does. */
	while ((8 + j->len) % 8)
		put(j, " ", 1);
}

static int cmd_safetensors(const char *out, int argc, char **argv)
{
	struct opts o = {.tensors = 8, .tensor_bytes = 4096, .seed = 1};
	parse_opts(argc, argv, &o);
	if (o.tensors == 0 || o.tensors > 100000)
		die("--tensors must be 1 to 100000");
	if (o.tensor_bytes == 0 || o.tensor_bytes > (1ull << 40))
		die("--tensor-bytes must be 1 to 1T");
	struct tensor *t = calloc(o.tensors, sizeof(*t));
	char **names = calloc(o.tensors, sizeof(*names));
	if (!t || !names)
		die("out of memory");
	plan(t, o.tensors, o.tensor_bytes, embedding_for(o.tensor_bytes));
	for (uint64_t i = 0; i < o.tensors; i++) {
		char n[128];
		if (i == 0) {
			snprintf(n, sizeof(n), "model.embed_tokens.weight");
			t[i].dt = DT_BF16;
		} else if (!strcmp(t[i].name, "output_norm.weight")) {
			snprintf(n, sizeof(n), "model.norm.weight");
		} else if (!strcmp(t[i].name, "output.weight")) {
			snprintf(n, sizeof(n), "lm_head.weight");
		} else {
			uint64_t blk = (i - 1) / N_PARTS, part = (i - 1) % N_PARTS;
			static const char *const hf[] = {
				"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
				"self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
				"mlp.down_proj",
			};
			snprintf(n, sizeof(n), "model.layers.%" PRIu64 ".%s.weight", blk, hf[part]);
		}
		if (!(names[i] = strdup(n)))
			die("out of memory");
	}
	struct buf j = {0}, h = {0};
	st_header(&j, t, o.tensors, (const char *const *)names, o.extra_keys);
	put_u64(&h, j.len);
	put(&h, j.p, j.len);
	FILE *f = create(out);
	if (fwrite(h.p, 1, h.len, f) != h.len)
		die("cannot write '%s': %s", out, strerror(errno));
	for (uint64_t i = 0; i < o.tensors; i++)
		write_data(f, t[i].dt, t[i].size, o.seed, i);
	finish(f, out);
	for (uint64_t i = 0; i < o.tensors; i++)
		free(names[i]);
	free(names);
	free(t);
	free(j.p);
	free(h.p);
	return 0;
}

/* ---- hostile files ---- */

static void write_buf(const char *path, const struct buf *b)
{
	FILE *f = create(path);
	if (b->len && fwrite(b->p, 1, b->len, f) != b->len)
		die("cannot write '%s': %s", path, strerror(errno));
	finish(f, path);
}

/* A small valid model, header and data, in memory. */
static void small_gguf(struct buf *b, size_t *header_len)
{
	struct opts o = {.arch = "llama", .name = "bad", .tensors = 3, .tensor_bytes = 256,
			 .file_type = 1, .vocab = 8, .seed = 7, .split = 1, .context_length = 128};
	struct tensor t[3];
	uint64_t e = embedding_for(o.tensor_bytes), blocks = plan(t, 3, o.tensor_bytes, e);
	gguf_header(b, &o, t, 3, 0, 3, 0, 1, e, blocks);
	*header_len = b->len;
	for (int i = 0; i < 3; i++) {
		uint64_t s = 1;
		for (uint64_t k = 0; k < align_up(t[i].size); k += 8) {
			uint64_t x = splitmix64(&s);
			put(b, &x, 8);
		}
	}
}

static void gguf_start(struct buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	put(b, "GGUF", 4);
	put_u32(b, version);
	put_u64(b, n_tensors);
	put_u64(b, n_kv);
}

static void st_file(struct buf *b, const char *json, uint64_t data_bytes)
{
	put_u64(b, strlen(json));
	put(b, json, strlen(json));
	for (uint64_t i = 0; i < data_bytes; i++)
		put_u8(b, (uint8_t)(i * 37));
}

static const char *const bad_kinds[] = {
	"gguf-truncated-header", "gguf-oversized-string", "gguf-tensor-past-eof",
	"gguf-bad-magic", "gguf-version1", "gguf-nested-array", "gguf-bad-type",
	"gguf-misaligned", "gguf-bad-ggml-type", "gguf-bool2",
	"st-truncated-header", "st-oversized-header", "st-tensor-past-eof", "st-hole",
	"st-bad-json", "st-overlap", "st-trailing",
};

static int cmd_bad(const char *kind, const char *out)
{
	struct buf b = {0};
	size_t hl;

	if (!strcmp(kind, "gguf-truncated-header")) {
		small_gguf(&b, &hl);
		b.len = hl / 2; /* in the middle of the key/values */
	} else if (!strcmp(kind, "gguf-oversized-string")) {
		gguf_start(&b, 3, 0, 1);
		put_u64(&b, 1ull << 62);
		put(&b, "general.name", 12);
		put_u32(&b, MFS_GGUF_STRING);
	} else if (!strcmp(kind, "gguf-tensor-past-eof")) {
		small_gguf(&b, &hl);
		b.len -= 64; /* the last tensor's data is cut */
	} else if (!strcmp(kind, "gguf-bad-magic")) {
		small_gguf(&b, &hl);
		memcpy(b.p, "GGUX", 4);
	} else if (!strcmp(kind, "gguf-version1")) {
		/* version 1 used 32-bit counts and string lengths */
		put(&b, "GGUF", 4);
		put_u32(&b, 1);
		put_u32(&b, 0);
		put_u32(&b, 1);
		put_u32(&b, 12);
		put(&b, "general.name", 12);
		put_u32(&b, MFS_GGUF_STRING);
		put_u32(&b, 2);
		put(&b, "v1", 2);
	} else if (!strcmp(kind, "gguf-nested-array")) {
		gguf_start(&b, 3, 0, 1);
		kv_array(&b, "some.nested", MFS_GGUF_ARRAY, 1);
		put_u32(&b, MFS_GGUF_U8);
		put_u64(&b, 1);
		put_u8(&b, 1);
	} else if (!strcmp(kind, "gguf-bad-type")) {
		gguf_start(&b, 3, 0, 1);
		put_str(&b, "some.key");
		put_u32(&b, 13);
		put_u64(&b, 0);
	} else if (!strcmp(kind, "gguf-misaligned") || !strcmp(kind, "gguf-bad-ggml-type")) {
		bool mis = kind[5] == 'm';
		gguf_start(&b, 3, 1, 0);
		put_str(&b, "t");
		put_u32(&b, 1);
		put_u64(&b, 8);
		put_u32(&b, mis ? 0 : 4); /* 4: Q4_2, removed */
		put_u64(&b, mis ? 4 : 0);
		while (b.len % ALIGNMENT)
			put_u8(&b, 0);
		for (int i = 0; i < 64; i++)
			put_u8(&b, 0);
	} else if (!strcmp(kind, "gguf-bool2")) {
		gguf_start(&b, 3, 0, 1);
		put_str(&b, "some.flag");
		put_u32(&b, MFS_GGUF_BOOL);
		put_u8(&b, 2);
	} else if (!strcmp(kind, "st-truncated-header")) {
		put_u64(&b, 1000);
		put(&b, "{\"a\":{\"dtype\":\"F32\"", 19);
	} else if (!strcmp(kind, "st-oversized-header")) {
		put_u64(&b, 200000000);
		put(&b, "{}", 2);
	} else if (!strcmp(kind, "st-tensor-past-eof")) {
		st_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]}}", 32);
	} else if (!strcmp(kind, "st-hole")) {
		st_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]},"
			    "\"b\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[128,192]}}", 192);
	} else if (!strcmp(kind, "st-overlap")) {
		st_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]},"
			    "\"b\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[32,96]}}", 96);
	} else if (!strcmp(kind, "st-trailing")) {
		st_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", 80);
	} else if (!strcmp(kind, "st-bad-json")) {
		st_file(&b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]]}   ", 64);
	} else {
		fprintf(stderr, "mfs-gen: unknown kind '%s'; kinds:", kind);
		for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++)
			fprintf(stderr, " %s", bad_kinds[i]);
		fputc('\n', stderr);
		return 1;
	}
	write_buf(out, &b);
	free(b.p);
	return 0;
}

/* ---- dump ---- */

struct dump_ctx {
	json_t *kv, *tensors;
};

/* Shortest decimal that reads back as the same double. */
static json_t *json_num_str(double d)
{
	char s[64];
	for (int p = 1; p <= 17; p++) {
		snprintf(s, sizeof(s), "%.*g", p, d);
		if (strtod(s, NULL) == d)
			break;
	}
	return json_string(s);
}

static json_t *json_bytes(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	return j ? j : json_string("<invalid UTF-8>");
}

static int dump_kv(void *ctx, const struct mfs_gguf_kv_view *kv)
{
	struct dump_ctx *d = ctx;
	char s[32];
	json_t *v;
	switch (kv->type) {
	case MFS_GGUF_ARRAY:
		v = json_pack("{s:s, s:I, s:s}", "type", "array", "len", (json_int_t)kv->count,
			      "elem", mfs_gguf_type_name(kv->elem_type));
		break;
	case MFS_GGUF_STRING:
		v = json_bytes(kv->str, kv->str_len);
		break;
	case MFS_GGUF_BOOL:
		v = json_boolean(kv->b);
		break;
	case MFS_GGUF_F32:
	case MFS_GGUF_F64:
		v = json_num_str(kv->f);
		break;
	case MFS_GGUF_I8:
	case MFS_GGUF_I16:
	case MFS_GGUF_I32:
	case MFS_GGUF_I64:
		snprintf(s, sizeof(s), "%" PRId64, kv->i);
		v = json_string(s);
		break;
	default:
		snprintf(s, sizeof(s), "%" PRIu64, kv->u);
		v = json_string(s);
		break;
	}
	if (!v)
		die("out of memory");
	if (json_object_setn_new(d->kv, kv->key, kv->key_len, v))
		die("key '%.*s' is not UTF-8", (int)(kv->key_len > 64 ? 64 : kv->key_len), kv->key);
	return 0;
}

static int dump_tensor(void *ctx, const struct mfs_gguf_tensor_view *t)
{
	struct dump_ctx *d = ctx;
	char s[32];
	json_t *shape = json_array(), *o;
	for (uint32_t i = 0; i < t->n_dims; i++) {
		snprintf(s, sizeof(s), "%" PRIu64, t->dims[i]);
		json_array_append_new(shape, json_string(s));
	}
	o = json_object();
	json_object_set_new(o, "name", json_bytes(t->name, t->name_len));
	json_object_set_new(o, "shape", shape);
	json_object_set_new(o, "type", json_integer(t->type));
	snprintf(s, sizeof(s), "%" PRIu64, t->offset);
	json_object_set_new(o, "offset", json_string(s));
	snprintf(s, sizeof(s), "%" PRIu64, t->size);
	json_object_set_new(o, "size", json_string(s));
	json_array_append_new(d->tensors, o);
	return 0;
}

/* Reads the header through the -EAGAIN protocol: start with 4 KiB, fetch
 * what the parser asks for, and report how many rounds it took. */
static int cmd_dump(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		die("cannot open '%s': %s", path, strerror(errno));
	uint64_t size = (uint64_t)st.st_size, need = size < 4096 ? size : 4096, have = 0;
	uint8_t *buf = NULL;
	int rounds = 0, r;
	bool is_gguf = false;
	struct mfs_err err = {0};
	struct mfs_gguf_meta gm;
	struct mfs_safetensors_meta sm;
	struct dump_ctx d = {json_object(), json_array()};
	struct mfs_gguf_visitor vis = {dump_kv, dump_tensor, &d};

	for (;;) {
		if (need > have) {
			if (!(buf = realloc(buf, need)))
				die("out of memory");
			while (have < need) {
				ssize_t n = pread(fd, buf + have, need - have, (off_t)have);
				if (n <= 0)
					die("cannot read '%s': %s", path, n ? strerror(errno) : "short file");
				have += (uint64_t)n;
			}
		}
		if (rounds == 0) {
			/* The extension decides; the magic only for other names. */
			size_t pl = strlen(path);
			if (pl > 5 && !strcmp(path + pl - 5, ".gguf"))
				is_gguf = true;
			else if (pl > 12 && !strcmp(path + pl - 12, ".safetensors"))
				is_gguf = false;
			else
				is_gguf = have >= 4 && memcmp(buf, "GGUF", 4) == 0;
		}
		rounds++;
		if (is_gguf)
			r = mfs_gguf_parse_ex(buf, have, size, &need, &gm, &vis, &err);
		else
			r = mfs_safetensors_parse(buf, have, size, &need, &sm, &err);
		if (r != -EAGAIN)
			break;
		if (need <= have || need > size)
			die("parser asked for %" PRIu64 " bytes with %" PRIu64 " in hand (file %" PRIu64 ")",
			    need, have, size);
	}
	close(fd);
	free(buf);
	if (r) {
		fprintf(stderr, "mfs-gen: %s: %s (%s)\n", path, err.msg, mfs_err_kind_name(err.kind));
		return 2;
	}
	json_t *o;
	char s[32];
	if (is_gguf) {
		o = json_object();
		json_object_set_new(o, "format", json_string("gguf"));
		json_object_set_new(o, "version", json_integer(gm.version));
		snprintf(s, sizeof(s), "%" PRIu64, gm.tensor_count);
		json_object_set_new(o, "tensor_count", json_string(s));
		snprintf(s, sizeof(s), "%" PRIu64, gm.kv_count);
		json_object_set_new(o, "kv_count", json_string(s));
		snprintf(s, sizeof(s), "%" PRIu64, gm.data_offset);
		json_object_set_new(o, "data_offset", json_string(s));
		json_object_set_new(o, "kv", d.kv);
		json_object_set_new(o, "tensors", d.tensors);
		json_object_set_new(o, "meta", mfs_gguf_meta_json(&gm));
		mfs_gguf_meta_release(&gm);
	} else {
		json_decref(d.kv);
		json_decref(d.tensors);
		o = mfs_safetensors_meta_json(&sm);
		json_object_set_new(o, "format", json_string("safetensors"));
		mfs_safetensors_meta_release(&sm);
	}
	json_object_set_new(o, "parse_rounds", json_integer(rounds));
	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		die("out of memory");
	puts(text);
	free(text);
	json_decref(o);
	return 0;
}

static void usage(void)
{
	fputs("usage: mfs-gen gguf OUT [--arch A] [--name S] [--tensors N] [--tensor-bytes B]\n"
	      "                        [--file-type F] [--vocab V] [--context-length C] [--seed S] [--split K]\n"
	      "                        [--extra-keys N]\n"
	      "       mfs-gen safetensors OUT [--tensors N] [--tensor-bytes B] [--seed S] [--extra-keys N]\n"
	      "       mfs-gen bad KIND OUT\n"
	      "       mfs-gen dump FILE\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "gguf"))
		return cmd_gguf(argv[2], argc - 3, argv + 3);
	if (!strcmp(cmd, "safetensors"))
		return cmd_safetensors(argv[2], argc - 3, argv + 3);
	if (!strcmp(cmd, "bad") && argc == 3 && !strcmp(argv[2], "--list")) {
		for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++)
			puts(bad_kinds[i]);
		return 0;
	}
	if (!strcmp(cmd, "bad") && argc == 4)
		return cmd_bad(argv[2], argv[3]);
	if (!strcmp(cmd, "dump") && argc == 3)
		return cmd_dump(argv[2]);
	usage();
}
