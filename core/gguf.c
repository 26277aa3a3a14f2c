/*
 * gguf.c - see gguf.h.
 *
 * One pass over the header with a cursor that never reads past the bytes it
 * was given: every read first asks want() for its length, which fails with
 * -EINVAL when the file itself is too short (a truncated or lying file),
 * -EFBIG past the header cap, and -EAGAIN (recording how far it needs to see)
 * when only the caller's prefix is too short. Lengths and counts are compared
 * with what is left of the file before anything is allocated or looped over,
 * so a hostile count costs nothing. The pass records a small fixed-size entry
 * per key/value pair and per tensor (offsets into the buffer, never copies);
 * the cross-record checks (duplicates, alignment, overlaps) and the compact
 * metadata are computed from those records once the pass has finished.
 */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

#define GGUF_DEFAULT_ALIGNMENT 32
/* Implementation limits, far above any real model (which has tens of keys and
 * a few thousand tensors) and there so that the memory used for the records is
 * bounded (32 and 64 MiB at most). */
#define GGUF_MAX_KV (1u << 20)
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MIN_KV_BYTES 13     /* key length 8 + type 4 + a u8 value */
#define GGUF_MIN_TENSOR_BYTES 24 /* name length 8 + n_dims 4 + type 4 + offset 8 */
#define GGUF_NEED_MIN ((uint64_t)64 << 10)

struct kvrec {
	uint32_t key_off, key_len;  /* into buf: the header is < 4 GiB */
	uint8_t type, elem;
	uint64_t count;             /* arrays */
	uint32_t val_off, val_end;  /* the value's bytes (array payload for arrays) */
};

struct tirec {
	uint32_t name_off;
	uint8_t name_len, n_dims;
	uint32_t type;
	uint64_t ne[MFS_GGUF_MAX_DIMS];
	uint64_t offset, size;
};

struct parser {
	const uint8_t *buf;
	uint64_t len;               /* usable bytes of buf: min(len, file_size) */
	uint64_t file_size;
	uint64_t pos;
	uint64_t need;              /* set with -EAGAIN */
	struct mfs_err *err;
	char where[160];            /* what is being read, for messages */
	struct kvrec *kv;
	size_t nkv, capkv;
	struct tirec *ti;
	size_t nti, capti;
	uint64_t alignment;
	uint64_t data_offset;
	uint32_t version;
	uint64_t tensor_count, kv_count;
};

struct ggml_type_info {
	const char *name;
	uint32_t blck, size;
};

static const struct ggml_type_info ggml_types[] = {
	[0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},
	[2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
	[6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
	[8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},
	[10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},
	[12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
	[14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},
	[16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
	[18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
	[20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
	[22] = {"IQ2_S", 256, 82},  [23] = {"IQ4_XS", 256, 136},
	[24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},
	[26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},
	[28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
	[30] = {"BF16", 1, 2},      [34] = {"TQ1_0", 256, 54},
	[35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};

static const char *const file_type_names[] = {
	[0] = "F32",      [1] = "F16",      [2] = "Q4_0",     [3] = "Q4_1",
	[7] = "Q8_0",     [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",
	[11] = "Q3_K_S",  [12] = "Q3_K_M",  [13] = "Q3_K_L",  [14] = "Q4_K_S",
	[15] = "Q4_K_M",  [16] = "Q5_K_S",  [17] = "Q5_K_M",  [18] = "Q6_K",
	[19] = "IQ2_XXS", [20] = "IQ2_XS",  [21] = "Q2_K_S",  [22] = "IQ3_XS",
	[23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL",  [26] = "IQ3_S",
	[27] = "IQ3_M",   [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",
	[31] = "IQ1_M",   [32] = "BF16",    [36] = "TQ1_0",   [37] = "TQ2_0",
	[38] = "MXFP4_MOE",
};

static const char *const value_type_names[] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
	"u64", "i64", "f64",
};

/* Byte size of a fixed-size value type, 0 for string/array/unknown. */
static uint32_t value_size(uint32_t t)
{
	static const uint8_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	return t < sizeof(sz) ? sz[t] : 0;
}

const char *mfs_ggml_type_name(uint32_t type, uint32_t *blck, uint32_t *size)
{
	if (type >= sizeof(ggml_types) / sizeof(ggml_types[0]) || !ggml_types[type].name)
		return NULL;
	if (blck)
		*blck = ggml_types[type].blck;
	if (size)
		*size = ggml_types[type].size;
	return ggml_types[type].name;
}

const char *mfs_gguf_file_type_name(int64_t ft)
{
	if (ft < 0 || (uint64_t)ft >= sizeof(file_type_names) / sizeof(file_type_names[0]))
		return NULL;
	return file_type_names[ft];
}

const char *mfs_gguf_type_name(uint32_t type)
{
	return type < sizeof(value_type_names) / sizeof(value_type_names[0])
		? value_type_names[type] : NULL;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* A printable, bounded rendering of untrusted bytes for messages. */
static const char *show(char *out, size_t outsz, const uint8_t *s, size_t n)
{
	size_t max = outsz - 4, i;
	for (i = 0; i < n && i < max; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	if (i < n)
		memcpy(out + i, "...", 3), i += 3;
	out[i] = '\0';
	return out;
}

/* Makes sure n bytes at p->pos are readable. */
static int want(struct parser *p, uint64_t n)
{
	if (n > p->file_size || p->pos > p->file_size - n)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "truncated GGUF: %s needs %" PRIu64 " bytes at offset %" PRIu64
			       ", past the end of the file (%" PRIu64 " bytes)",
			       p->where, n, p->pos, p->file_size);
	uint64_t end = p->pos + n;
	if (end > MFS_GGUF_HEADER_MAX)
		return MFS_ERR(p->err, -EFBIG, MFS_ERR_FORMAT,
			       "GGUF header too large: %s reaches offset %" PRIu64
			       ", the limit is %" PRIu64 " bytes", p->where, end, MFS_GGUF_HEADER_MAX);
	if (end > p->len) {
		p->need = end;
		return -EAGAIN;
	}
	return 0;
}

static int rd_u32(struct parser *p, uint32_t *v)
{
	int r = want(p, 4);
	if (r)
		return r;
	*v = le32(p->buf + p->pos);
	p->pos += 4;
	return 0;
}

static int rd_u64(struct parser *p, uint64_t *v)
{
	int r = want(p, 8);
	if (r)
		return r;
	*v = le64(p->buf + p->pos);
	p->pos += 8;
	return 0;
}

/* Reads a string: *off is where its bytes start, *n their length. */
static int rd_str(struct parser *p, uint64_t *off, uint64_t *n)
{
	uint64_t len;
	int r = rd_u64(p, &len);
	if (r)
		return r;
	if (len > p->file_size - p->pos)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "%s: string length %" PRIu64 " at offset %" PRIu64
			       " runs past the end of the file (%" PRIu64 " bytes)",
			       p->where, len, p->pos - 8, p->file_size);
	if ((r = want(p, len)))
		return r;
	*off = p->pos;
	*n = len;
	p->pos += len;
	return 0;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elsz)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	void *a = realloc(*arr, nc * elsz);
	if (!a)
		return -ENOMEM;
	*arr = a;
	*cap = nc;
	return 0;
}

static bool valid_type(uint32_t t) { return t <= MFS_GGUF_F64; }

/* Reads one value of type t (not an array) and checks it. */
static int rd_scalar(struct parser *p, uint32_t t)
{
	if (t == MFS_GGUF_STRING) {
		uint64_t off, n;
		return rd_str(p, &off, &n);
	}
	uint32_t sz = value_size(t);
	int r = want(p, sz);
	if (r)
		return r;
	if (t == MFS_GGUF_BOOL && p->buf[p->pos] > 1)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "%s: bool value %u at offset %" PRIu64 " is not 0 or 1",
			       p->where, p->buf[p->pos], p->pos);
	p->pos += sz;
	return 0;
}

static int parse_kv(struct parser *p, uint64_t i)
{
	struct kvrec rec = {0};
	uint64_t koff, klen, start;
	uint32_t type, elem = 0;
	uint64_t count = 0;
	char name[96];
	int r;

	snprintf(p->where, sizeof(p->where), "key #%" PRIu64 " name", i);
	if ((r = rd_str(p, &koff, &klen)))
		return r;
	snprintf(p->where, sizeof(p->where), "key '%s'",
		 show(name, sizeof(name), p->buf + koff, klen));
	if ((r = rd_u32(p, &type)))
		return r;
	if (!valid_type(type))
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "%s has invalid value type %" PRIu32 " at offset %" PRIu64,
			       p->where, type, p->pos - 4);
	if (type == MFS_GGUF_ARRAY) {
		if ((r = rd_u32(p, &elem)))
			return r;
		if (elem == MFS_GGUF_ARRAY)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
				       "%s is a nested array (arrays of arrays are not allowed)",
				       p->where);
		if (!valid_type(elem))
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
				       "%s is an array of invalid value type %" PRIu32 " at offset %" PRIu64,
				       p->where, elem, p->pos - 4);
		if ((r = rd_u64(p, &count)))
			return r;
		uint64_t min = elem == MFS_GGUF_STRING ? 8 : value_size(elem);
		if (count > (p->file_size - p->pos) / min)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
				       "%s: array of %" PRIu64 " %s elements at offset %" PRIu64
				       " runs past the end of the file (%" PRIu64 " bytes)",
				       p->where, count, mfs_gguf_type_name(elem), p->pos - 8,
				       p->file_size);
		start = p->pos;
		if (elem == MFS_GGUF_STRING) {
			for (uint64_t j = 0; j < count; j++)
				if ((r = rd_scalar(p, elem)))
					return r;
		} else {
			if ((r = want(p, count * min)))
				return r;
			if (elem == MFS_GGUF_BOOL)
				for (uint64_t j = 0; j < count; j++)
					if (p->buf[p->pos + j] > 1)
						return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
							       "%s: bool element %" PRIu64 " is %u, not 0 or 1",
							       p->where, j, p->buf[p->pos + j]);
			p->pos += count * min;
		}
	} else {
		start = p->pos;
		if ((r = rd_scalar(p, type)))
			return r;
	}
	if (grow((void **)&p->kv, &p->capkv, p->nkv, sizeof(*p->kv)))
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory reading %s", p->where);
	rec.key_off = (uint32_t)koff;
	rec.key_len = (uint32_t)klen;
	rec.type = (uint8_t)type;
	rec.elem = (uint8_t)elem;
	rec.count = count;
	rec.val_off = (uint32_t)start;
	rec.val_end = (uint32_t)p->pos;
	p->kv[p->nkv++] = rec;
	return 0;
}

static int parse_tensor(struct parser *p, uint64_t i)
{
	struct tirec t = {0};
	uint64_t noff, nlen;
	uint32_t n_dims, type, blck, tsize;
	char name[96];
	int r;

	snprintf(p->where, sizeof(p->where), "tensor #%" PRIu64 " name", i);
	if ((r = rd_str(p, &noff, &nlen)))
		return r;
	show(name, sizeof(name), p->buf + noff, nlen);
	if (nlen >= MFS_GGUF_NAME_MAX)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "tensor #%" PRIu64 " name '%s' is %" PRIu64 " bytes, the limit is %d",
			       i, name, nlen, MFS_GGUF_NAME_MAX - 1);
	snprintf(p->where, sizeof(p->where), "tensor '%s'", name);
	if ((r = rd_u32(p, &n_dims)))
		return r;
	if (n_dims > MFS_GGUF_MAX_DIMS)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "%s has %" PRIu32 " dimensions, at most %d are allowed",
			       p->where, n_dims, MFS_GGUF_MAX_DIMS);
	uint64_t nel = 1;
	for (uint32_t d = 0; d < MFS_GGUF_MAX_DIMS; d++) {
		t.ne[d] = 1;
		if (d < n_dims && (r = rd_u64(p, &t.ne[d])))
			return r;
		if (t.ne[d] == 0 || t.ne[d] > INT64_MAX)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "%s dimension %" PRIu32 " has invalid size %" PRIu64,
				       p->where, d, t.ne[d]);
		if (__builtin_mul_overflow(nel, t.ne[d], &nel) || nel >= INT64_MAX)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "%s: the number of elements overflows (shape %" PRIu64 " x %" PRIu64
				       " x %" PRIu64 " x %" PRIu64 ")", p->where,
				       t.ne[0], d > 0 ? t.ne[1] : 1, d > 1 ? t.ne[2] : 1, d > 2 ? t.ne[3] : 1);
	}
	if ((r = rd_u32(p, &type)))
		return r;
	if (!mfs_ggml_type_name(type, &blck, &tsize))
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "%s has unknown ggml type %" PRIu32, p->where, type);
	if (t.ne[0] % blck)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "%s of type %s has %" PRIu64 " elements per row, not a multiple of the block size %" PRIu32,
			       p->where, mfs_ggml_type_name(type, NULL, NULL), t.ne[0], blck);
	uint64_t size = t.ne[0] / blck;
	if (__builtin_mul_overflow(size, (uint64_t)tsize, &size) ||
	    __builtin_mul_overflow(size, t.ne[1], &size) ||
	    __builtin_mul_overflow(size, t.ne[2], &size) ||
	    __builtin_mul_overflow(size, t.ne[3], &size))
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT, "%s: the byte size overflows", p->where);
	if ((r = rd_u64(p, &t.offset)))
		return r;
	if (grow((void **)&p->ti, &p->capti, p->nti, sizeof(*p->ti)))
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory reading %s", p->where);
	t.name_off = (uint32_t)noff;
	t.name_len = (uint8_t)nlen;
	t.n_dims = (uint8_t)n_dims;
	t.type = type;
	t.size = size;
	p->ti[p->nti++] = t;
	return 0;
}

/* qsort has no context argument: the buffer being sorted over. */
static _Thread_local const uint8_t *sort_buf;

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static int cmp_kv(const void *x, const void *y)
{
	const struct kvrec *a = x, *b = y;
	return cmp_bytes(sort_buf + a->key_off, a->key_len, sort_buf + b->key_off, b->key_len);
}

static int cmp_ti_name(const void *x, const void *y)
{
	const struct tirec *a = *(const struct tirec *const *)x, *b = *(const struct tirec *const *)y;
	return cmp_bytes(sort_buf + a->name_off, a->name_len, sort_buf + b->name_off, b->name_len);
}

static int cmp_ti_offset(const void *x, const void *y)
{
	const struct tirec *a = *(const struct tirec *const *)x, *b = *(const struct tirec *const *)y;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return (a->size > b->size) - (a->size < b->size);
}

static bool key_is(const struct parser *p, const struct kvrec *k, const char *s)
{
	size_t n = strlen(s);
	return k->key_len == n && memcmp(p->buf + k->key_off, s, n) == 0;
}

static int check_duplicate_keys(struct parser *p)
{
	if (p->nkv < 2)
		return 0;
	struct kvrec *s = malloc(p->nkv * sizeof(*s));
	char name[96];
	int r = 0;
	if (!s)
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory checking keys");
	memcpy(s, p->kv, p->nkv * sizeof(*s));
	sort_buf = p->buf;
	qsort(s, p->nkv, sizeof(*s), cmp_kv);
	for (size_t i = 1; i < p->nkv; i++)
		if (cmp_kv(&s[i - 1], &s[i]) == 0) {
			r = MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT, "duplicate key '%s'",
				    show(name, sizeof(name), p->buf + s[i].key_off, s[i].key_len));
			break;
		}
	free(s);
	return r;
}

static int check_alignment(struct parser *p)
{
	p->alignment = GGUF_DEFAULT_ALIGNMENT;
	for (size_t i = 0; i < p->nkv; i++) {
		const struct kvrec *k = &p->kv[i];
		if (!key_is(p, k, "general.alignment"))
			continue;
		if (k->type != MFS_GGUF_U32)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "key 'general.alignment' has type %s, expected u32",
				       mfs_gguf_type_name(k->type));
		uint32_t a = le32(p->buf + k->val_off);
		if (a == 0 || (a & (a - 1)))
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "key 'general.alignment' is %" PRIu32 ", not a power of two", a);
		p->alignment = a;
	}
	return 0;
}

static int check_tensors(struct parser *p)
{
	char name[96];
	int r = 0;

	for (size_t i = 0; i < p->nti; i++) {
		const struct tirec *t = &p->ti[i];
		show(name, sizeof(name), p->buf + t->name_off, t->name_len);
		if (t->offset % p->alignment)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "tensor '%s' offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
				       name, t->offset, p->alignment);
		uint64_t begin, end;
		if (__builtin_add_overflow(p->data_offset, t->offset, &begin) ||
		    __builtin_add_overflow(begin, t->size, &end) || end > p->file_size)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "tensor '%s' (offset %" PRIu64 " in the data section at %" PRIu64
				       ", %" PRIu64 " bytes) runs past the end of the file (%" PRIu64 " bytes)",
				       name, t->offset, p->data_offset, t->size, p->file_size);
	}
	if (p->nti < 2)
		return 0;
	const struct tirec **s = malloc(p->nti * sizeof(*s));
	if (!s)
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory checking tensors");
	for (size_t i = 0; i < p->nti; i++)
		s[i] = &p->ti[i];
	sort_buf = p->buf;
	qsort(s, p->nti, sizeof(*s), cmp_ti_name);
	for (size_t i = 1; i < p->nti; i++)
		if (cmp_ti_name(&s[i - 1], &s[i]) == 0) {
			r = MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT, "duplicate tensor name '%s'",
				    show(name, sizeof(name), p->buf + s[i]->name_off, s[i]->name_len));
			goto out;
		}
	qsort(s, p->nti, sizeof(*s), cmp_ti_offset);
	for (size_t i = 1; i < p->nti; i++) {
		const struct tirec *a = s[i - 1], *b = s[i];
		if (b->offset < a->offset + a->size) {
			char other[96];
			r = MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				    "tensor '%s' [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' [%" PRIu64 ", %" PRIu64 ")",
				    show(name, sizeof(name), p->buf + b->name_off, b->name_len),
				    b->offset, b->offset + b->size,
				    show(other, sizeof(other), p->buf + a->name_off, a->name_len),
				    a->offset, a->offset + a->size);
			goto out;
		}
	}
out:
	free(s);
	return r;
}

/* Copies untrusted bytes as valid UTF-8: invalid sequences and NUL become
 * U+FFFD; the result is cut at a character boundary to max bytes. */
static char *utf8_dup(const uint8_t *s, size_t n, size_t max)
{
	char *out = malloc(max + 1);
	size_t o = 0, i = 0;
	if (!out)
		return NULL;
	while (i < n) {
		uint8_t c = s[i];
		uint32_t cp = 0;
		size_t k = 0;
		if (c >= 0x01 && c < 0x80)
			k = 1;
		else if (c >= 0xc2 && c <= 0xdf)
			k = 2;
		else if (c >= 0xe0 && c <= 0xef)
			k = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 4;
		bool ok = k > 0 && i + k <= n;
		if (ok && k > 1) {
			cp = c & (0x7f >> k);
			for (size_t j = 1; j < k; j++) {
				if ((s[i + j] & 0xc0) != 0x80) {
					ok = false;
					break;
				}
				cp = cp << 6 | (s[i + j] & 0x3f);
			}
			if (ok && ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
				   (k == 4 && (cp < 0x10000 || cp > 0x10ffff))))
				ok = false;
		}
		const uint8_t *src = s + i;
		size_t m = k;
		if (!ok) {
			src = (const uint8_t *)"\xef\xbf\xbd";
			m = 3;
			k = 1;
		}
		if (o + m > max)
			break;
		memcpy(out + o, src, m);
		o += m;
		i += k;
	}
	out[o] = '\0';
	return out;
}

/* Integer value of a scalar or the max of an integer array. *neg set when a
 * signed value is negative. Returns false if the type is not an integer. */
static bool kv_int(const struct parser *p, const struct kvrec *k, uint64_t *u, bool *neg)
{
	uint32_t t = k->type == MFS_GGUF_ARRAY ? k->elem : k->type;
	uint32_t sz = value_size(t);
	uint64_t n = k->type == MFS_GGUF_ARRAY ? k->count : 1, max = 0;
	bool signed_t = t == MFS_GGUF_I8 || t == MFS_GGUF_I16 || t == MFS_GGUF_I32 || t == MFS_GGUF_I64;
	if (t == MFS_GGUF_F32 || t == MFS_GGUF_F64 || t == MFS_GGUF_BOOL || sz == 0)
		return false;
	*neg = false;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *v = p->buf + k->val_off + i * sz;
		uint64_t x = sz == 1 ? v[0] : sz == 2 ? le16(v) : sz == 4 ? le32(v) : le64(v);
		if (signed_t) {
			int64_t sx = sz == 1 ? (int8_t)x : sz == 2 ? (int16_t)x : sz == 4 ? (int32_t)x : (int64_t)x;
			if (sx < 0) {
				*neg = true;
				continue;
			}
			x = (uint64_t)sx;
		}
		if (x > max)
			max = x;
	}
	*u = max;
	return true;
}

static int get_uint(struct parser *p, const struct kvrec *k, uint64_t *out, bool array_ok)
{
	char name[96];
	bool neg;
	show(name, sizeof(name), p->buf + k->key_off, k->key_len);
	if ((k->type == MFS_GGUF_ARRAY && !array_ok) || !kv_int(p, k, out, &neg))
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "key '%s' has type %s%s%s, expected an integer", name,
			       mfs_gguf_type_name(k->type), k->type == MFS_GGUF_ARRAY ? " of " : "",
			       k->type == MFS_GGUF_ARRAY ? mfs_gguf_type_name(k->elem) : "");
	if (neg)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT, "key '%s' is negative", name);
	return 0;
}

static int get_str(struct parser *p, const struct kvrec *k, char **out)
{
	char name[96];
	if (k->type != MFS_GGUF_STRING)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
			       "key '%s' has type %s, expected string",
			       show(name, sizeof(name), p->buf + k->key_off, k->key_len),
			       mfs_gguf_type_name(k->type));
	free(*out);
	*out = utf8_dup(p->buf + k->val_off + 8, k->val_end - k->val_off - 8, MFS_GGUF_META_STR_MAX);
	if (!*out)
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	return 0;
}

static double get_float(const struct parser *p, const struct kvrec *k)
{
	const uint8_t *v = p->buf + k->val_off;
	if (k->type == MFS_GGUF_F32) {
		uint32_t x = le32(v);
		float f;
		memcpy(&f, &x, 4);
		return f;
	}
	if (k->type == MFS_GGUF_F64) {
		uint64_t x = le64(v);
		double d;
		memcpy(&d, &x, 8);
		return d;
	}
	uint64_t u;
	bool neg;
	return kv_int(p, k, &u, &neg) && !neg ? (double)u : 0;
}

/* The arch-prefixed keys: suffix and where its value goes. */
struct arch_key {
	const char *suffix;
	size_t field;
	bool array_ok;
};

#define F(x) offsetof(struct mfs_gguf_meta, x)
static const struct arch_key arch_keys[] = {
	{".context_length", F(context_length), false},
	{".embedding_length", F(embedding_length), false},
	{".block_count", F(block_count), false},
	{".feed_forward_length", F(feed_forward_length), true},
	{".attention.head_count", F(head_count), true},
	{".attention.head_count_kv", F(head_count_kv), true},
	{".attention.key_length", F(key_length), false},
	{".attention.value_length", F(value_length), false},
	{".expert_count", F(expert_count), false},
	{".expert_used_count", F(expert_used_count), false},
};
#undef F

static int fill_meta(struct parser *p, struct mfs_gguf_meta *m)
{
	const struct kvrec *arch = NULL, *split_no = NULL, *split_count = NULL, *split_tc = NULL;
	uint64_t u;
	int r;

	memset(m, 0, sizeof(*m));
	m->version = p->version;
	m->tensor_count = p->tensor_count;
	m->kv_count = p->kv_count;
	m->data_offset = p->data_offset;
	m->alignment = p->alignment;
	m->file_type = -1;
	m->quantization_version = -1;
	m->split_tensors_count = -1;
	for (size_t i = 0; i < p->nti; i++)
		m->data_bytes += p->ti[i].size; /* no overflow: each range lies in the file */

	for (size_t i = 0; i < p->nkv; i++) {
		const struct kvrec *k = &p->kv[i];
		if (key_is(p, k, "general.architecture")) {
			if ((r = get_str(p, k, &m->architecture)))
				return r;
			arch = k;
		} else if (key_is(p, k, "general.name")) {
			if ((r = get_str(p, k, &m->name)))
				return r;
		} else if (key_is(p, k, "tokenizer.ggml.model")) {
			if ((r = get_str(p, k, &m->tokenizer_model)))
				return r;
		} else if (key_is(p, k, "general.file_type")) {
			if ((r = get_uint(p, k, &u, false)))
				return r;
			m->file_type = u > INT64_MAX ? INT64_MAX : (int64_t)u;
		} else if (key_is(p, k, "general.quantization_version")) {
			if ((r = get_uint(p, k, &u, false)))
				return r;
			m->quantization_version = u > INT64_MAX ? INT64_MAX : (int64_t)u;
		} else if (key_is(p, k, "tokenizer.ggml.tokens")) {
			if (k->type != MFS_GGUF_ARRAY || k->elem != MFS_GGUF_STRING)
				return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
					       "key 'tokenizer.ggml.tokens' is not an array of strings");
			uint8_t d[MFS_SHA256_LEN];
			m->vocab_size = k->count;
			/* The array payload is exactly the token list as hashed:
			 * each token's u64 LE length, then its bytes. */
			mfs_sha256(p->buf + k->val_off, k->val_end - k->val_off, d);
			mfs_hex_encode(d, sizeof(d), m->tokens_sha256);
		} else if (key_is(p, k, "split.no")) {
			split_no = k;
		} else if (key_is(p, k, "split.count")) {
			split_count = k;
		} else if (key_is(p, k, "split.tensors.count")) {
			split_tc = k;
		}
	}
	if (m->file_type >= 0 && mfs_gguf_file_type_name(m->file_type) &&
	    !(m->file_type_name = strdup(mfs_gguf_file_type_name(m->file_type))))
		return MFS_ERR(p->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");

	if (arch) {
		/* Match against the raw key bytes, not the sanitised copy. */
		const uint8_t *a = p->buf + arch->val_off + 8;
		size_t an = arch->val_end - arch->val_off - 8;
		for (size_t i = 0; i < p->nkv; i++) {
			const struct kvrec *k = &p->kv[i];
			if (k->key_len <= an || memcmp(p->buf + k->key_off, a, an) != 0)
				continue;
			const char *suf = (const char *)p->buf + k->key_off + an;
			size_t sn = k->key_len - an;
			for (size_t j = 0; j < sizeof(arch_keys) / sizeof(arch_keys[0]); j++) {
				if (strlen(arch_keys[j].suffix) != sn || memcmp(suf, arch_keys[j].suffix, sn))
					continue;
				if ((r = get_uint(p, k, &u, arch_keys[j].array_ok)))
					return r;
				memcpy((char *)m + arch_keys[j].field, &u, sizeof(u));
			}
			if (sn == strlen(".rope.freq_base") && memcmp(suf, ".rope.freq_base", sn) == 0)
				m->rope_freq_base = get_float(p, k);
		}
	}

	if (split_count || split_no || split_tc) {
		uint64_t no = 0, count = 0, tc = 0;
		if (!split_count || !split_no)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "split GGUF has '%s' but not '%s'",
				       split_count ? "split.count" : split_no ? "split.no" : "split.tensors.count",
				       !split_count ? "split.count" : "split.no");
		if ((r = get_uint(p, split_count, &count, false)) || (r = get_uint(p, split_no, &no, false)))
			return r;
		if (split_tc && (r = get_uint(p, split_tc, &tc, false)))
			return r;
		if (count == 0 || count > UINT16_MAX)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "split.count is %" PRIu64 ", expected 1 to 65535", count);
		if (no >= count)
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "split.no %" PRIu64 " is not below split.count %" PRIu64, no, count);
		if (split_tc && (tc < p->tensor_count || tc > INT32_MAX))
			return MFS_ERR(p->err, -EINVAL, MFS_ERR_FORMAT,
				       "split.tensors.count %" PRIu64 " is impossible: this shard alone has %" PRIu64 " tensors",
				       tc, p->tensor_count);
		m->is_split = true;
		m->split_no = (uint32_t)no;
		m->split_count = (uint32_t)count;
		m->split_tensors_count = split_tc ? (int64_t)tc : -1;
	}
	return 0;
}

static int parse(struct parser *p)
{
	uint32_t magic;
	int r;

	snprintf(p->where, sizeof(p->where), "the magic");
	if ((r = want(p, 4)))
		return r;
	if (memcmp(p->buf, "GGUF", 4) != 0) {
		char m[16];
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "not a GGUF file: bad magic '%s' (expected 'GGUF')",
			       show(m, sizeof(m), p->buf, 4));
	}
	p->pos = 4;
	snprintf(p->where, sizeof(p->where), "the header");
	if ((r = rd_u32(p, &p->version)))
		return r;
	if (p->version == 1)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "GGUF version 1 is not supported (only versions 2 and 3)");
	if (p->version != 0 && (p->version & 0xffff) == 0) {
		magic = __builtin_bswap32(p->version);
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "big-endian GGUF (version %" PRIu32 ") is not supported", magic);
	}
	if (p->version != 2 && p->version != 3)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "unsupported GGUF version %" PRIu32 " (only versions 2 and 3)", p->version);
	if ((r = rd_u64(p, &p->tensor_count)) || (r = rd_u64(p, &p->kv_count)))
		return r;
	uint64_t left = p->file_size - p->pos;
	if (p->kv_count > left / GGUF_MIN_KV_BYTES || p->tensor_count > left / GGUF_MIN_TENSOR_BYTES ||
	    p->kv_count * GGUF_MIN_KV_BYTES + p->tensor_count * GGUF_MIN_TENSOR_BYTES > left)
		return MFS_ERR(p->err, -EINVAL, MFS_ERR_PARSE,
			       "GGUF header claims %" PRIu64 " key/value pairs and %" PRIu64
			       " tensors, more than a file of %" PRIu64 " bytes can hold",
			       p->kv_count, p->tensor_count, p->file_size);
	if (p->kv_count > GGUF_MAX_KV || p->tensor_count > GGUF_MAX_TENSORS)
		return MFS_ERR(p->err, -EFBIG, MFS_ERR_FORMAT,
			       "GGUF header has %" PRIu64 " key/value pairs and %" PRIu64
			       " tensors, the limit is %u of each",
			       p->kv_count, p->tensor_count, GGUF_MAX_KV);

	for (uint64_t i = 0; i < p->kv_count; i++)
		if ((r = parse_kv(p, i)))
			return r;
	if ((r = check_duplicate_keys(p)) || (r = check_alignment(p)))
		return r;
	for (uint64_t i = 0; i < p->tensor_count; i++)
		if ((r = parse_tensor(p, i)))
			return r;
	p->data_offset = (p->pos + p->alignment - 1) / p->alignment * p->alignment;
	return check_tensors(p);
}

static int walk(struct parser *p, const struct mfs_gguf_visitor *vis)
{
	int r;
	for (size_t i = 0; vis->kv && i < p->nkv; i++) {
		const struct kvrec *k = &p->kv[i];
		const uint8_t *v = p->buf + k->val_off;
		struct mfs_gguf_kv_view kv = {
			.key = (const char *)p->buf + k->key_off, .key_len = k->key_len,
			.type = k->type, .elem_type = k->elem, .count = k->count,
		};
		bool neg;
		switch (k->type) {
		case MFS_GGUF_ARRAY:
			break;
		case MFS_GGUF_STRING:
			kv.str = (const char *)v + 8;
			kv.str_len = k->val_end - k->val_off - 8;
			break;
		case MFS_GGUF_BOOL:
			kv.b = v[0] != 0;
			kv.u = v[0];
			break;
		case MFS_GGUF_F32:
		case MFS_GGUF_F64:
			kv.f = get_float(p, k);
			break;
		case MFS_GGUF_I8:
			kv.i = (int8_t)v[0];
			break;
		case MFS_GGUF_I16:
			kv.i = (int16_t)le16(v);
			break;
		case MFS_GGUF_I32:
			kv.i = (int32_t)le32(v);
			break;
		case MFS_GGUF_I64:
			kv.i = (int64_t)le64(v);
			break;
		default:
			kv_int(p, k, &kv.u, &neg);
			kv.i = (int64_t)kv.u;
			break;
		}
		if (k->type == MFS_GGUF_I8 || k->type == MFS_GGUF_I16 || k->type == MFS_GGUF_I32 ||
		    k->type == MFS_GGUF_I64)
			kv.u = (uint64_t)kv.i;
		if ((r = vis->kv(vis->ctx, &kv)))
			return r;
	}
	for (size_t i = 0; vis->tensor && i < p->nti; i++) {
		const struct tirec *t = &p->ti[i];
		struct mfs_gguf_tensor_view tv = {
			.name = (const char *)p->buf + t->name_off, .name_len = t->name_len,
			.n_dims = t->n_dims, .type = t->type, .offset = t->offset, .size = t->size,
		};
		memcpy(tv.dims, t->ne, sizeof(tv.dims));
		if ((r = vis->tensor(vis->ctx, &tv)))
			return r;
	}
	return 0;
}

int mfs_gguf_parse_ex(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
		      struct mfs_gguf_meta *out, const struct mfs_gguf_visitor *vis,
		      struct mfs_err *err)
{
	struct parser p = {
		.buf = buf, .len = len < file_size ? len : file_size,
		.file_size = file_size, .err = err,
	};
	struct mfs_gguf_meta m;
	int r = parse(&p);

	if (r == -EAGAIN) {
		uint64_t hint = p.len * 2 > GGUF_NEED_MIN ? p.len * 2 : GGUF_NEED_MIN;
		if (hint > file_size)
			hint = file_size;
		if (hint > MFS_GGUF_HEADER_MAX)
			hint = MFS_GGUF_HEADER_MAX;
		if (need)
			*need = p.need > hint ? p.need : hint;
		MFS_ERR(err, -EAGAIN, MFS_ERR_PARSE,
			"GGUF header needs the first %" PRIu64 " bytes, have %" PRIu64,
			p.need, p.len);
	}
	/* fill_meta also validates (key types, split keys): run it even when
	 * the caller does not want the metadata. */
	if (r == 0 && (r = fill_meta(&p, &m)) != 0)
		mfs_gguf_meta_release(&m);
	if (r == 0 && vis && (r = walk(&p, vis)) != 0)
		mfs_gguf_meta_release(&m);
	if (r == 0) {
		if (out)
			*out = m;
		else
			mfs_gguf_meta_release(&m);
	}
	free(p.kv);
	free(p.ti);
	return r;
}

int mfs_gguf_parse(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
		   struct mfs_gguf_meta *out, struct mfs_err *err)
{
	return mfs_gguf_parse_ex(buf, len, file_size, need, out, NULL, err);
}

void mfs_gguf_meta_release(struct mfs_gguf_meta *m)
{
	if (!m)
		return;
	free(m->architecture);
	free(m->name);
	free(m->tokenizer_model);
	free(m->file_type_name);
	memset(m, 0, sizeof(*m));
}

int mfs_gguf_check_split(const struct mfs_gguf_meta *const *metas, size_t n, struct mfs_err *err)
{
	uint64_t total = 0;
	if (n == 0)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT, "empty GGUF split set");
	if (n == 1 && !metas[0]->is_split)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct mfs_gguf_meta *m = metas[i];
		if (!m->is_split)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "shard %05zu-of-%05zu has no split.count/split.no keys", i + 1, n);
		if (m->split_count != n)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "shard %05zu-of-%05zu has split.count %" PRIu32 ", expected %zu",
				       i + 1, n, m->split_count, n);
		if (m->split_no != i)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "shard %05zu-of-%05zu has split.no %" PRIu32 ", expected %zu",
				       i + 1, n, m->split_no, i);
		total += m->tensor_count;
	}
	for (size_t i = 0; i < n; i++) {
		const struct mfs_gguf_meta *m = metas[i];
		if (m->split_tensors_count >= 0 && (uint64_t)m->split_tensors_count != total)
			return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
				       "shard %05zu-of-%05zu has split.tensors.count %" PRId64
				       ", but the shards hold %" PRIu64 " tensors",
				       i + 1, n, m->split_tensors_count, total);
	}
	return 0;
}

static int set_u64(json_t *o, const char *k, uint64_t v)
{
	return json_object_set_new(o, k, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

json_t *mfs_gguf_meta_json(const struct mfs_gguf_meta *m)
{
	json_t *o = json_object();
	int r = 0;
	if (!o)
		return NULL;
	r |= json_object_set_new(o, "version", json_integer(m->version));
	r |= set_u64(o, "tensor_count", m->tensor_count);
	r |= set_u64(o, "kv_count", m->kv_count);
	r |= set_u64(o, "data_offset", m->data_offset);
	r |= set_u64(o, "alignment", m->alignment);
	r |= set_u64(o, "data_bytes", m->data_bytes);
	const struct { const char *k; const char *v; } strs[] = {
		{"architecture", m->architecture}, {"name", m->name},
		{"tokenizer_model", m->tokenizer_model}, {"file_type_name", m->file_type_name},
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strs[i].v)
			r |= json_object_set_new(o, strs[i].k, json_string(strs[i].v));
	if (m->file_type >= 0)
		r |= json_object_set_new(o, "file_type", json_integer(m->file_type));
	if (m->quantization_version >= 0)
		r |= json_object_set_new(o, "quantization_version", json_integer(m->quantization_version));
	const struct { const char *k; uint64_t v; } nums[] = {
		{"context_length", m->context_length}, {"embedding_length", m->embedding_length},
		{"block_count", m->block_count}, {"feed_forward_length", m->feed_forward_length},
		{"head_count", m->head_count}, {"head_count_kv", m->head_count_kv},
		{"expert_count", m->expert_count}, {"expert_used_count", m->expert_used_count},
		{"key_length", m->key_length}, {"value_length", m->value_length},
		{"vocab_size", m->vocab_size},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (nums[i].v)
			r |= set_u64(o, nums[i].k, nums[i].v);
	if (m->rope_freq_base != 0)
		r |= json_object_set_new(o, "rope_freq_base", json_real(m->rope_freq_base));
	if (m->tokens_sha256[0])
		r |= json_object_set_new(o, "tokens_sha256", json_string(m->tokens_sha256));
	if (m->is_split) {
		r |= json_object_set_new(o, "split_no", json_integer(m->split_no));
		r |= json_object_set_new(o, "split_count", json_integer(m->split_count));
		if (m->split_tensors_count >= 0)
			r |= json_object_set_new(o, "split_tensors_count", json_integer(m->split_tensors_count));
	}
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}
