/*
 * gguf.h - bounded validation of GGUF headers, and their compact metadata.
 *
 * A GGUF file is: magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
 * the key/value pairs, the tensor infos, padding to the alignment, then the
 * tensor data (facts.md §2). Admission (product.md §4 step 4) validates the
 * header of every GGUF before it becomes visible, often before the data has
 * been fetched: so the parser works on a prefix of the file and says how many
 * leading bytes it needs when the prefix is too short (-EAGAIN and *need).
 * The caller fetches at least that many bytes and calls again; the parser
 * starts over each time and keeps no state between calls.
 *
 * Everything read from the file is untrusted: every length and count is
 * checked against the file size before it is used, sizes are computed with
 * overflow checks, memory use is bounded by the bytes actually parsed, and the
 * header (everything up to the end of the tensor infos) is capped at
 * MFS_GGUF_HEADER_MAX. Only little-endian versions 2 and 3 are accepted.
 *
 * Thread-safety: every function is re-entrant; nothing here blocks.
 */
#ifndef MFS_GGUF_H
#define MFS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* Largest header (up to the end of the tensor infos) accepted: 256 MiB. */
#define MFS_GGUF_HEADER_MAX ((uint64_t)256 << 20)
/* Strings copied into the compact metadata are cut to this many bytes. */
#define MFS_GGUF_META_STR_MAX 1024
#define MFS_GGUF_MAX_DIMS 4
/* ggml's GGML_MAX_NAME: tensor names are shorter than this. */
#define MFS_GGUF_NAME_MAX 64

/* GGUF value types. */
enum mfs_gguf_type {
	MFS_GGUF_U8 = 0, MFS_GGUF_I8 = 1, MFS_GGUF_U16 = 2, MFS_GGUF_I16 = 3,
	MFS_GGUF_U32 = 4, MFS_GGUF_I32 = 5, MFS_GGUF_F32 = 6, MFS_GGUF_BOOL = 7,
	MFS_GGUF_STRING = 8, MFS_GGUF_ARRAY = 9, MFS_GGUF_U64 = 10,
	MFS_GGUF_I64 = 11, MFS_GGUF_F64 = 12,
};

/* The compact metadata. Strings are malloc'd, valid UTF-8 (invalid bytes
 * replaced by U+FFFD), cut to MFS_GGUF_META_STR_MAX bytes, or NULL when the
 * key is absent; numbers are 0 when absent unless said otherwise. */
struct mfs_gguf_meta {
	uint32_t version;
	uint64_t tensor_count, kv_count;
	uint64_t data_offset;         /* absolute offset of the tensor data section */
	uint64_t alignment;           /* general.alignment, or 32 */
	uint64_t data_bytes;          /* sum of the tensors' byte sizes (no padding) */
	char *architecture, *name, *tokenizer_model;
	char *file_type_name;         /* from general.file_type via the facts.md table, NULL if absent/unknown */
	int64_t file_type;            /* -1 when absent */
	int64_t quantization_version; /* general.quantization_version, -1 when absent */
	uint64_t context_length, embedding_length, block_count, feed_forward_length;
	uint64_t head_count, head_count_kv, expert_count, expert_used_count; /* per-layer arrays: the max */
	uint64_t key_length, value_length;
	double rope_freq_base;        /* 0 when absent */
	uint64_t vocab_size;          /* number of tokenizer.ggml.tokens, 0 if absent */
	char tokens_sha256[65];       /* hex SHA-256 over the token list (each token: u64 LE length + bytes), "" if absent */
	bool is_split;                /* split.count present */
	uint32_t split_no, split_count; /* split.no is 0-based */
	int64_t split_tensors_count;  /* split.tensors.count, -1 when absent */
};

/* One key/value pair, as shown to a visitor. Pointers point into the caller's
 * buffer and are valid only during the callback; strings are not
 * NUL-terminated and not checked for UTF-8. */
struct mfs_gguf_kv_view {
	const char *key;
	size_t key_len;
	enum mfs_gguf_type type;      /* MFS_GGUF_ARRAY for arrays */
	enum mfs_gguf_type elem_type; /* arrays only */
	uint64_t count;               /* arrays: number of elements */
	/* scalars: integers in u (unsigned types) or i (signed types), floats in
	 * f, bool in b, strings in str/str_len */
	uint64_t u;
	int64_t i;
	double f;
	bool b;
	const char *str;
	size_t str_len;
};

/* One tensor info, as shown to a visitor. */
struct mfs_gguf_tensor_view {
	const char *name;             /* not NUL-terminated, valid during the callback */
	size_t name_len;
	uint32_t n_dims;
	uint64_t dims[MFS_GGUF_MAX_DIMS]; /* ne0 first; 1 past n_dims */
	uint32_t type;                /* ggml type id */
	uint64_t offset;              /* relative to the data section */
	uint64_t size;                /* bytes */
};

/* Callbacks called once per key/value pair and per tensor, in file order,
 * only after the whole header has been validated. A non-zero return stops
 * the walk and is returned by mfs_gguf_parse_ex. Either callback may be NULL. */
struct mfs_gguf_visitor {
	int (*kv)(void *ctx, const struct mfs_gguf_kv_view *kv);
	int (*tensor)(void *ctx, const struct mfs_gguf_tensor_view *t);
	void *ctx;
};

/* Parses and validates a GGUF whose first len bytes are buf and whose total
 * size is file_size (bytes of buf past file_size are ignored).
 * Checks everything in facts.md §2: magic, version 2/3 (1 and big-endian
 * refused clearly), value types, bool 0/1, nested arrays refused, string
 * lengths and array counts bounded by the file, duplicate keys and tensor
 * names, tensor names < 64 bytes, n_dims <= 4, known ggml types, block
 * divisibility, overflow-checked sizes, general.alignment a u32 power of two,
 * each tensor offset aligned, tensors not overlapping and every tensor's range
 * inside file_size; split.* keys consistent within the file.
 * Returns:
 *   0        *out filled (release it with mfs_gguf_meta_release);
 *   -EAGAIN  buf is too short to finish: *need is set to the number of leading
 *            bytes to pass next time (at least the bytes the failing read
 *            needs, rounded up to about twice len so a big header takes few
 *            round trips; never more than file_size nor MFS_GGUF_HEADER_MAX);
 *   -EFBIG   the header is larger than MFS_GGUF_HEADER_MAX, or has more than
 *            2^20 key/value pairs or tensors (implementation limits);
 *   -EINVAL  (kind MFS_ERR_PARSE for bad encoding or truncation, MFS_ERR_FORMAT
 *            for a well-encoded but invalid structure) with a message naming
 *            what is wrong (key name, tensor name, offsets);
 *   -ENOMEM.
 * *out and *need are written only on the returns that say so. need may be
 * NULL if len >= file_size. */
int mfs_gguf_parse(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
		   struct mfs_gguf_meta *out, struct mfs_err *err);

/* mfs_gguf_parse, then (on success, if vis is non-NULL) a walk of every
 * key/value pair and tensor. out may be NULL when only the walk is wanted. */
int mfs_gguf_parse_ex(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
		      struct mfs_gguf_meta *out, const struct mfs_gguf_visitor *vis,
		      struct mfs_err *err);

/* Frees the strings of m and zeroes it; NULL and a zeroed meta are no-ops. */
void mfs_gguf_meta_release(struct mfs_gguf_meta *m);

/* Checks a split set: metas[i] are the shards in order 1..n (metas[0] is
 * shard 00001): split.count == n everywhere, split.no == i, and
 * split.tensors.count (where present) equals the sum of tensor_count.
 * A single file (n == 1) that is not split passes.
 * Returns 0, or -EINVAL (MFS_ERR_FORMAT) with a message naming the shard. */
int mfs_gguf_check_split(const struct mfs_gguf_meta *const *metas, size_t n, struct mfs_err *err);

/* Serialises the compact metadata as a jansson object (caller decrefs):
 * version, tensor_count, kv_count, data_offset, alignment, data_bytes always;
 * architecture, name, tokenizer_model, file_type, file_type_name,
 * quantization_version, context_length, embedding_length, block_count,
 * feed_forward_length, head_count, head_count_kv, expert_count,
 * expert_used_count, key_length, value_length, rope_freq_base, vocab_size,
 * tokens_sha256, split_no, split_count, split_tensors_count only when
 * present. Returns NULL on allocation failure. */
json_t *mfs_gguf_meta_json(const struct mfs_gguf_meta *m);

/* Name of a ggml tensor type ("F16", "Q4_K", ...), NULL if unknown.
 * block elements and bytes per block through *blck and *size (may be NULL). */
const char *mfs_ggml_type_name(uint32_t type, uint32_t *blck, uint32_t *size);
/* Name of a general.file_type value ("Q4_K_M", ...), NULL if unknown. */
const char *mfs_gguf_file_type_name(int64_t file_type);
/* Name of a GGUF value type ("u32", "string", ...), NULL if unknown. */
const char *mfs_gguf_type_name(uint32_t type);

#endif
