/*
 * safetensors.c - see safetensors.h.
 *
 * The header is read by a recursive-descent JSON reader written for this one
 * shape: the top-level object, each tensor's {dtype, shape, data_offsets}, and
 * the __metadata__ object of strings. Anything else is validated and skipped
 * without being built (nesting capped at MAX_DEPTH), so memory grows only with
 * the number of tensors: a decoded copy of each name (for duplicate checks and
 * messages) and a 24-byte record. Once the JSON has been read the records are
 * sorted by offset and the layout rules are checked in one sweep.
 */
#include "safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

/* Sorted by name, so that the dtype list comes out sorted. */
static const struct { const char *name; unsigned bits; } dtypes[] = {
	{"BF16", 16}, {"BOOL", 8},     {"F16", 16}, {"F32", 32},
	{"F64", 64},  {"F8_E4M3", 8},  {"F8_E5M2", 8}, {"I16", 16},
	{"I32", 32},  {"I64", 64},     {"I8", 8},    {"U16", 16},
	{"U32", 32},  {"U64", 64},     {"U8", 8},
};
#define N_DTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

static int dtype_index(const char *s, size_t n)
{
	for (size_t i = 0; i < N_DTYPES; i++)
		if (strlen(dtypes[i].name) == n && memcmp(dtypes[i].name, s, n) == 0)
			return (int)i;
	return -1;
}

unsigned mfs_safetensors_dtype_bits(const char *name, size_t len)
{
	int i = dtype_index(name, len);
	return i < 0 ? 0 : dtypes[i].bits;
}

/* A growable byte buffer with a hard cap. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const void *data, size_t n)
{
	if (!b->p || n > b->cap - b->len) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc - b->len < n) {
			if (nc > SIZE_MAX / 2)
				return -ENOMEM;
			nc *= 2;
		}
		char *q = realloc(b->p, nc);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

struct strec {
	size_t name_off;            /* into names */
	uint32_t name_len;          /* capped for messages only */
	uint64_t begin, end;
};

struct jp {
	const uint8_t *s;           /* the JSON: N bytes at file offset 8 */
	size_t n, i;
	struct mfs_err *err;
	uint64_t data_bytes;
	struct sbuf names;          /* decoded tensor names, back to back */
	struct strec *t;
	size_t nt, capt;
	unsigned dtype_seen;        /* bit i: dtypes[i] used */
	bool have_meta;
	json_t *meta;
	size_t meta_bytes;
	bool meta_truncated;
};

static int jerr(struct jp *j, const char *what)
{
	return MFS_ERR(j->err, -EINVAL, MFS_ERR_PARSE,
		       "bad safetensors header JSON at byte %zu of %zu: %s", j->i, j->n, what);
}

static void ws(struct jp *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
			       j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int expect(struct jp *j, char c)
{
	ws(j);
	if (j->i >= j->n || j->s[j->i] != (uint8_t)c) {
		char msg[32];
		snprintf(msg, sizeof(msg), "expected '%c'", c);
		return jerr(j, msg);
	}
	j->i++;
	return 0;
}

static int hex4(struct jp *j, uint32_t *v)
{
	*v = 0;
	if (j->n - j->i < 4)
		return jerr(j, "truncated \\u escape");
	for (int k = 0; k < 4; k++) {
		uint8_t c = j->s[j->i++];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			*v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			*v |= c - 'A' + 10;
		else
			return jerr(j, "bad \\u escape");
	}
	return 0;
}

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t k;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4;
	else
		return 0;
	if (k > n)
		return 0;
	cp = c & (0x7f >> k);
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return k;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* Reads a JSON string, validating it; its decoded bytes are appended to out
 * when out is non-NULL. */
static int rd_string(struct jp *j, struct sbuf *out)
{
	ws(j);
	if (j->i >= j->n || j->s[j->i] != '"')
		return jerr(j, "expected a string");
	j->i++;
	for (;;) {
		if (j->i >= j->n)
			return jerr(j, "unterminated string");
		uint8_t c = j->s[j->i];
		uint8_t tmp[4];
		size_t k = 0;
		if (c == '"') {
			j->i++;
			return 0;
		}
		if (c < 0x20)
			return jerr(j, "control character in a string");
		if (c == '\\') {
			if (j->n - j->i < 2)
				return jerr(j, "truncated escape");
			uint8_t e = j->s[j->i + 1];
			j->i += 2;
			switch (e) {
			case '"': case '\\': case '/':
				tmp[0] = e; k = 1; break;
			case 'b': tmp[0] = '\b'; k = 1; break;
			case 'f': tmp[0] = '\f'; k = 1; break;
			case 'n': tmp[0] = '\n'; k = 1; break;
			case 'r': tmp[0] = '\r'; k = 1; break;
			case 't': tmp[0] = '\t'; k = 1; break;
			case 'u': {
				uint32_t cp, lo;
				int r = hex4(j, &cp);
				if (r)
					return r;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jerr(j, "lone low surrogate");
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
						return jerr(j, "lone high surrogate");
					j->i += 2;
					if ((r = hex4(j, &lo)))
						return r;
					if (lo < 0xdc00 || lo > 0xdfff)
						return jerr(j, "bad surrogate pair");
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				k = put_utf8(tmp, cp);
				break;
			}
			default:
				return jerr(j, "bad escape");
			}
			if (out && sbuf_add(out, tmp, k))
				return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
			continue;
		}
		k = utf8_seq(j->s + j->i, j->n - j->i);
		if (!k)
			return jerr(j, "invalid UTF-8");
		if (out && sbuf_add(out, j->s + j->i, k))
			return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		j->i += k;
	}
}

/* Reads a non-negative JSON integer that fits in 64 bits. */
static int rd_u64(struct jp *j, uint64_t *v, const char *what)
{
	char msg[96];
	ws(j);
	size_t start = j->i;
	*v = 0;
	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
		unsigned d = j->s[j->i] - '0';
		if (*v > (UINT64_MAX - d) / 10) {
			snprintf(msg, sizeof(msg), "%s does not fit in 64 bits", what);
			return jerr(j, msg);
		}
		*v = *v * 10 + d;
		j->i++;
	}
	if (j->i == start || (j->i - start > 1 && j->s[start] == '0') ||
	    (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))) {
		snprintf(msg, sizeof(msg), "%s is not a non-negative integer", what);
		return jerr(j, msg);
	}
	return 0;
}

static int skip_number(struct jp *j)
{
	if (j->i < j->n && j->s[j->i] == '-')
		j->i++;
	if (j->i < j->n && j->s[j->i] == '0')
		j->i++;
	else if (j->i < j->n && j->s[j->i] >= '1' && j->s[j->i] <= '9')
		while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
			j->i++;
	else
		return jerr(j, "bad number");
	if (j->i < j->n && j->s[j->i] == '.') {
		size_t d = ++j->i;
		while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
			j->i++;
		if (j->i == d)
			return jerr(j, "bad number");
	}
	if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		j->i++;
		if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
			j->i++;
		size_t d = j->i;
		while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
			j->i++;
		if (j->i == d)
			return jerr(j, "bad number");
	}
	return 0;
}

static int skip_value(struct jp *j, int depth)
{
	int r;
	if (depth > MAX_DEPTH)
		return jerr(j, "nesting too deep");
	ws(j);
	if (j->i >= j->n)
		return jerr(j, "expected a value");
	uint8_t c = j->s[j->i];
	if (c == '"')
		return rd_string(j, NULL);
	if (c == '{' || c == '[') {
		uint8_t close = c == '{' ? '}' : ']';
		j->i++;
		ws(j);
		if (j->i < j->n && j->s[j->i] == close) {
			j->i++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				if ((r = rd_string(j, NULL)) || (r = expect(j, ':')))
					return r;
			}
			if ((r = skip_value(j, depth + 1)))
				return r;
			ws(j);
			if (j->i < j->n && j->s[j->i] == ',') {
				j->i++;
				continue;
			}
			return expect(j, (char)close);
		}
	}
	static const char *const lits[] = {"true", "false", "null"};
	for (size_t k = 0; k < 3; k++) {
		size_t l = strlen(lits[k]);
		if (j->n - j->i >= l && memcmp(j->s + j->i, lits[k], l) == 0) {
			j->i += l;
			return 0;
		}
	}
	return skip_number(j);
}

/* The name of tensor number idx (decoded), bounded and printable. */
static const char *tname(const struct jp *j, const struct strec *t, char *out, size_t outsz)
{
	size_t n = t->name_len, i, max = outsz - 4;
	const uint8_t *s = (const uint8_t *)j->names.p + t->name_off;
	for (i = 0; i < n && i < max; i++)
		out[i] = (s[i] >= 0x20 && s[i] != 0x7f) ? (char)s[i] : '?';
	if (i < n)
		memcpy(out + i, "...", 3), i += 3;
	out[i] = '\0';
	return out;
}

static int rd_tensor(struct jp *j, struct strec *t)
{
	char name[160], msg[200];
	bool have_dtype = false, have_shape = false, have_off = false;
	uint64_t numel = 1, bits = 0;
	int di = -1, r;
	struct sbuf key = {0};

	tname(j, t, name, sizeof(name));
	ws(j);
	if (j->i >= j->n || j->s[j->i] != '{') {
		snprintf(msg, sizeof(msg), "tensor '%s' is not an object", name);
		return jerr(j, msg);
	}
	j->i++;
	ws(j);
	if (j->i < j->n && j->s[j->i] == '}')
		j->i++;
	else
		for (;;) {
			key.len = 0;
			if ((r = rd_string(j, &key)) || (r = expect(j, ':')))
				goto out;
			bool *seen = NULL;
			if (key.len == 5 && memcmp(key.p, "dtype", 5) == 0)
				seen = &have_dtype;
			else if (key.len == 5 && memcmp(key.p, "shape", 5) == 0)
				seen = &have_shape;
			else if (key.len == 12 && memcmp(key.p, "data_offsets", 12) == 0)
				seen = &have_off;
			if (seen && *seen) {
				r = MFS_ERR(j->err, -EINVAL, MFS_ERR_PARSE,
					    "tensor '%s' has a duplicate field '%.*s'", name, (int)key.len, key.p);
				goto out;
			}
			if (seen == &have_dtype) {
				key.len = 0;
				if ((r = rd_string(j, &key)))
					goto out;
				di = dtype_index(key.p ? key.p : "", key.len);
				if (di < 0) {
					r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
						    "tensor '%s' has unknown dtype '%.*s'", name,
						    (int)(key.len > 32 ? 32 : key.len), key.p ? key.p : "");
					goto out;
				}
				bits = dtypes[di].bits;
			} else if (seen == &have_shape) {
				if ((r = expect(j, '[')))
					goto out;
				ws(j);
				if (j->i < j->n && j->s[j->i] == ']')
					j->i++;
				else
					for (;;) {
						uint64_t d;
						if ((r = rd_u64(j, &d, "a shape dimension")))
							goto out;
						if (__builtin_mul_overflow(numel, d, &numel)) {
							r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
								    "tensor '%s': the number of elements overflows", name);
							goto out;
						}
						ws(j);
						if (j->i < j->n && j->s[j->i] == ',') {
							j->i++;
							continue;
						}
						if ((r = expect(j, ']')))
							goto out;
						break;
					}
			} else if (seen == &have_off) {
				if ((r = expect(j, '[')) || (r = rd_u64(j, &t->begin, "a data offset")) ||
				    (r = expect(j, ',')) || (r = rd_u64(j, &t->end, "a data offset")))
					goto out;
				ws(j);
				if (j->i < j->n && j->s[j->i] != ']') {
					snprintf(msg, sizeof(msg), "tensor '%s' data_offsets must have 2 elements", name);
					r = jerr(j, msg);
					goto out;
				}
				if ((r = expect(j, ']')))
					goto out;
			} else if ((r = skip_value(j, 2))) {
				goto out;
			}
			if (seen)
				*seen = true;
			ws(j);
			if (j->i < j->n && j->s[j->i] == ',') {
				j->i++;
				continue;
			}
			if ((r = expect(j, '}')))
				goto out;
			break;
		}
	if (!have_dtype || !have_shape || !have_off) {
		r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT, "tensor '%s' has no %s", name,
			    !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
		goto out;
	}
	j->dtype_seen |= 1u << di;
	uint64_t size;
	if (__builtin_mul_overflow(numel, bits / 8, &size)) {
		r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT, "tensor '%s': the byte size overflows", name);
		goto out;
	}
	if (t->end < t->begin) {
		r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
			    "tensor '%s' has data_offsets [%" PRIu64 ", %" PRIu64 ") that end before they begin",
			    name, t->begin, t->end);
		goto out;
	}
	if (t->end > j->data_bytes) {
		r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
			    "tensor '%s' data [%" PRIu64 ", %" PRIu64 ") runs past the end of the file "
			    "(the data section has %" PRIu64 " bytes)", name, t->begin, t->end, j->data_bytes);
		goto out;
	}
	if (t->end - t->begin != size) {
		r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
			    "tensor '%s' has %" PRIu64 " bytes [%" PRIu64 ", %" PRIu64 "), but its dtype %s "
			    "and shape need %" PRIu64, name, t->end - t->begin, t->begin, t->end,
			    dtypes[di].name, size);
		goto out;
	}
	r = 0;
out:
	free(key.p);
	return r;
}

static int rd_metadata(struct jp *j)
{
	struct sbuf k = {0}, v = {0};
	int r = 0;

	if (j->have_meta)
		return MFS_ERR(j->err, -EINVAL, MFS_ERR_PARSE, "duplicate key '__metadata__'");
	j->have_meta = true;
	ws(j);
	if (j->n - j->i >= 4 && memcmp(j->s + j->i, "null", 4) == 0) {
		j->i += 4;
		return 0;
	}
	if ((r = expect(j, '{')))
		return r;
	if (!(j->meta = json_object()))
		return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	ws(j);
	if (j->i < j->n && j->s[j->i] == '}') {
		j->i++;
		return 0;
	}
	for (;;) {
		k.len = v.len = 0;
		if ((r = rd_string(j, &k)) || (r = expect(j, ':')))
			break;
		ws(j);
		if (j->i >= j->n || j->s[j->i] != '"') {
			r = MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
				    "__metadata__ value for '%.*s' is not a string",
				    (int)(k.len > 64 ? 64 : k.len), k.p ? k.p : "");
			break;
		}
		if ((r = rd_string(j, &v)))
			break;
		if (json_object_getn(j->meta, k.p ? k.p : "", k.len)) {
			r = MFS_ERR(j->err, -EINVAL, MFS_ERR_PARSE, "duplicate __metadata__ key '%.*s'",
				    (int)(k.len > 64 ? 64 : k.len), k.p ? k.p : "");
			break;
		}
		if (j->meta_bytes + k.len + v.len > MFS_ST_METADATA_MAX) {
			j->meta_truncated = true;
		} else {
			json_t *s = json_stringn(v.p ? v.p : "", v.len);
			if (!s || json_object_setn_new(j->meta, k.p ? k.p : "", k.len, s)) {
				r = MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
				break;
			}
			j->meta_bytes += k.len + v.len;
		}
		ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		r = expect(j, '}');
		break;
	}
	free(k.p);
	free(v.p);
	return r;
}

static _Thread_local const char *sort_names;

static int cmp_name(const void *x, const void *y)
{
	const struct strec *a = *(const struct strec *const *)x, *b = *(const struct strec *const *)y;
	size_t an = a->name_len, bn = b->name_len;
	int c = memcmp(sort_names + a->name_off, sort_names + b->name_off, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static int cmp_offset(const void *x, const void *y)
{
	const struct strec *a = x, *b = y;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	return (a->end > b->end) - (a->end < b->end);
}

static int check_layout(struct jp *j)
{
	char an[160], bn[160];
	int r = 0;

	if (j->nt > 1) {
		const struct strec **s = malloc(j->nt * sizeof(*s));
		if (!s)
			return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < j->nt; i++)
			s[i] = &j->t[i];
		sort_names = j->names.p;
		qsort(s, j->nt, sizeof(*s), cmp_name);
		for (size_t i = 1; i < j->nt && !r; i++)
			if (cmp_name(&s[i - 1], &s[i]) == 0)
				r = MFS_ERR(j->err, -EINVAL, MFS_ERR_PARSE, "duplicate tensor name '%s'",
					    tname(j, s[i], an, sizeof(an)));
		free(s);
		if (r)
			return r;
	}
	if (j->nt > 1)
		qsort(j->t, j->nt, sizeof(*j->t), cmp_offset);
	uint64_t prev_end = 0;
	for (size_t i = 0; i < j->nt; i++) {
		const struct strec *t = &j->t[i];
		if (i == 0 && t->begin != 0)
			return MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
				       "hole in the data: the first tensor '%s' begins at %" PRIu64 ", not 0",
				       tname(j, t, an, sizeof(an)), t->begin);
		if (i > 0 && t->begin > prev_end)
			return MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
				       "hole in the data: tensor '%s' begins at %" PRIu64
				       " but tensor '%s' ends at %" PRIu64, tname(j, t, an, sizeof(an)),
				       t->begin, tname(j, t - 1, bn, sizeof(bn)), prev_end);
		if (i > 0 && t->begin < prev_end)
			return MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
				       "tensor '%s' [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s', which ends at %" PRIu64,
				       tname(j, t, an, sizeof(an)), t->begin, t->end,
				       tname(j, t - 1, bn, sizeof(bn)), prev_end);
		prev_end = t->end;
	}
	if (prev_end != j->data_bytes)
		return MFS_ERR(j->err, -EINVAL, MFS_ERR_FORMAT,
			       "%" PRIu64 " trailing bytes: the tensors end at data offset %" PRIu64
			       " but the data section has %" PRIu64 " bytes",
			       j->data_bytes - prev_end, prev_end, j->data_bytes);
	return 0;
}

static int rd_header(struct jp *j)
{
	int r;
	if (j->n == 0 || j->s[0] != '{')
		return jerr(j, "the header does not start with '{'");
	j->i = 1;
	ws(j);
	if (sbuf_add(&j->names, "", 0))
		return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (j->i < j->n && j->s[j->i] == '}') {
		j->i++;
	} else {
		for (;;) {
			size_t off = j->names.len;
			if ((r = rd_string(j, &j->names)) || (r = expect(j, ':')))
				return r;
			size_t klen = j->names.len - off;
			if (klen == 12 && memcmp(j->names.p + off, "__metadata__", 12) == 0) {
				j->names.len = off;
				if ((r = rd_metadata(j)))
					return r;
			} else {
				if (j->nt == j->capt) {
					size_t nc = j->capt ? j->capt * 2 : 64;
					struct strec *t = realloc(j->t, nc * sizeof(*t));
					if (!t)
						return MFS_ERR(j->err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
					j->t = t;
					j->capt = nc;
				}
				struct strec *t = &j->t[j->nt];
				*t = (struct strec){.name_off = off,
						    .name_len = klen > UINT32_MAX ? UINT32_MAX : (uint32_t)klen};
				if ((r = rd_tensor(j, t)))
					return r;
				j->nt++;
			}
			ws(j);
			if (j->i < j->n && j->s[j->i] == ',') {
				j->i++;
				continue;
			}
			if ((r = expect(j, '}')))
				return r;
			break;
		}
	}
	ws(j);
	if (j->i != j->n)
		return jerr(j, "unexpected bytes after the closing '}' (only spaces may follow)");
	return check_layout(j);
}

int mfs_safetensors_parse(const uint8_t *buf, size_t len, uint64_t file_size, uint64_t *need,
			  struct mfs_safetensors_meta *out, struct mfs_err *err)
{
	uint64_t have = len < file_size ? len : file_size, n;
	int r;

	if (file_size < 8)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "truncated safetensors: the file has %" PRIu64 " bytes, too few for the header length",
			       file_size);
	if (have < 8) {
		if (need)
			*need = 8;
		return MFS_ERR(err, -EAGAIN, MFS_ERR_PARSE, "safetensors header needs the first 8 bytes");
	}
	n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | buf[i];
	if (n > MFS_ST_HEADER_MAX)
		return MFS_ERR(err, -EINVAL, MFS_ERR_FORMAT,
			       "safetensors header length %" PRIu64 " exceeds the limit of %llu bytes",
			       n, MFS_ST_HEADER_MAX);
	if (n < 2)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "safetensors header length %" PRIu64 " is too short for a JSON object", n);
	if (8 + n > file_size)
		return MFS_ERR(err, -EINVAL, MFS_ERR_PARSE,
			       "truncated safetensors: the header needs %" PRIu64 " bytes but the file has %" PRIu64,
			       8 + n, file_size);
	if (have < 8 + n) {
		if (need)
			*need = 8 + n;
		return MFS_ERR(err, -EAGAIN, MFS_ERR_PARSE,
			       "safetensors header needs the first %" PRIu64 " bytes, have %" PRIu64, 8 + n, have);
	}

	struct jp j = {.s = buf + 8, .n = (size_t)n, .err = err, .data_bytes = file_size - 8 - n};
	struct sbuf list = {0};
	r = rd_header(&j);
	for (size_t i = 0; r == 0 && i < N_DTYPES; i++)
		if (j.dtype_seen & (1u << i))
			if ((list.len && sbuf_add(&list, ",", 1)) ||
			    sbuf_add(&list, dtypes[i].name, strlen(dtypes[i].name)))
				r = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (r == 0 && sbuf_add(&list, "", 1))
		r = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	if (r == 0) {
		*out = (struct mfs_safetensors_meta){
			.header_len = n, .tensor_count = j.nt, .data_bytes = j.data_bytes,
			.dtypes = list.p, .metadata = j.meta, .metadata_truncated = j.meta_truncated,
		};
		j.meta = NULL;
		list.p = NULL;
	}
	free(list.p);
	json_decref(j.meta);
	free(j.names.p);
	free(j.t);
	return r;
}

void mfs_safetensors_meta_release(struct mfs_safetensors_meta *m)
{
	if (!m)
		return;
	free(m->dtypes);
	json_decref(m->metadata);
	memset(m, 0, sizeof(*m));
}

json_t *mfs_safetensors_meta_json(const struct mfs_safetensors_meta *m)
{
	json_t *o = json_object(), *d = json_array();
	int r = 0;
	if (!o || !d) {
		json_decref(o);
		json_decref(d);
		return NULL;
	}
	r |= json_object_set_new(o, "header_len", json_integer((json_int_t)m->header_len));
	r |= json_object_set_new(o, "tensor_count", json_integer((json_int_t)m->tensor_count));
	r |= json_object_set_new(o, "data_bytes",
				 json_integer(m->data_bytes > INT64_MAX ? INT64_MAX : (json_int_t)m->data_bytes));
	for (const char *p = m->dtypes; p && *p;) {
		size_t l = strcspn(p, ",");
		r |= json_array_append_new(d, json_stringn(p, l));
		p += l + (p[l] == ',');
	}
	r |= json_object_set_new(o, "dtypes", d);
	if (m->metadata)
		r |= json_object_set(o, "metadata", m->metadata);
	if (m->metadata_truncated)
		r |= json_object_set_new(o, "metadata_truncated", json_true());
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}
