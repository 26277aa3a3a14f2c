/*
 * safetensors.h - bounded validation of safetensors headers.
 *
 * A safetensors file is a u64 little-endian header length N, N bytes of UTF-8
 * JSON mapping tensor names to {dtype, shape, data_offsets} (plus an optional
 * "__metadata__" object of strings), then the tensor data (facts.md §4).
 * Like gguf.h, the parser works on a prefix of the file and asks for more with
 * -EAGAIN; it keeps no state between calls.
 *
 * The JSON is read by a small purpose-built parser rather than a general one,
 * so that a hostile header (up to 100,000,000 bytes) costs memory in
 * proportion to its tensors, not to its nesting or its numbers: values it does
 * not need are skipped without being built, nesting is capped, and the
 * __metadata__ copy kept for display is capped at MFS_ST_METADATA_MAX bytes.
 *
 * Thread-safety: every function is re-entrant; nothing here blocks.
 */
#ifndef MFS_SAFETENSORS_H
#define MFS_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* Largest header length N accepted (the safetensors rule). */
#define MFS_ST_HEADER_MAX 100000000ull
/* __metadata__ entries kept in meta->metadata: key and value bytes summed. */
#define MFS_ST_METADATA_MAX (1u << 20)

struct mfs_safetensors_meta {
	uint64_t header_len;        /* N */
	uint64_t tensor_count;
	uint64_t data_bytes;        /* file size - 8 - N */
	char *dtypes;               /* distinct dtypes, sorted, comma-separated: "F16,F32"; "" if none */
	json_t *metadata;           /* __metadata__ (string values) or NULL; owned */
	bool metadata_truncated;    /* entries past MFS_ST_METADATA_MAX were left out */
};

/* Same contract as mfs_gguf_parse: parses the file whose first len bytes are
 * buf and whose size is file_size. Rules (facts.md §4): 8 <= file_size,
 * N <= 100,000,000 and 8 + N <= file_size; the JSON starts with '{', is valid
 * UTF-8 JSON, may end with whitespace; keys are unique; each tensor has a known
 * dtype, a shape of non-negative integers and data_offsets [begin, end);
 * sorted by offset the first begins at 0, each begins where the previous one
 * ends, end - begin = numel * bits / 8 (overflow-checked), and the last end is
 * exactly the end of the file; __metadata__ maps strings to strings.
 * Returns 0 with *out filled (release with mfs_safetensors_meta_release);
 * -EAGAIN with *need = 8 or 8 + N (never more than file_size); -EINVAL
 * (MFS_ERR_PARSE for bad JSON or truncation, MFS_ERR_FORMAT for an invalid
 * layout) with a message naming the tensor and offsets; -ENOMEM. */
int mfs_safetensors_parse(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
			  struct mfs_safetensors_meta *out, struct mfs_err *err);

/* Frees what m owns and zeroes it; NULL and a zeroed meta are no-ops. */
void mfs_safetensors_meta_release(struct mfs_safetensors_meta *m);

/* {"header_len", "tensor_count", "data_bytes", "dtypes": [..], "metadata": {..}}
 * ("metadata" only when present, "metadata_truncated": true when cut).
 * Caller decrefs; NULL on allocation failure. */
json_t *mfs_safetensors_meta_json(const struct mfs_safetensors_meta *m);

/* Bits per element of a safetensors dtype name ("F16" -> 16), 0 if unknown. */
unsigned mfs_safetensors_dtype_bits(const char *name, size_t len);

#endif
