/*
 * test_safetensors.c - the safetensors validator: valid files, the -EAGAIN
 * protocol, every layout rule of facts.md §4, the JSON reader's refusals,
 * __metadata__, and a mutation fuzz.
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

#include "err.h"
#include "safetensors.h"

/* A file: u64 N, the JSON, then data_bytes of data. */
static uint8_t *make(const char *json, size_t data_bytes, size_t *size)
{
	size_t n = strlen(json);
	uint8_t *p = malloc(8 + n + data_bytes + 1);
	assert_non_null(p);
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)n >> 8 * i);
	memcpy(p + 8, json, n);
	for (size_t i = 0; i < data_bytes; i++)
		p[8 + n + i] = (uint8_t)(i * 31);
	*size = 8 + n + data_bytes;
	return p;
}

static int parse(const char *json, size_t data_bytes, struct mfs_safetensors_meta *m,
		 struct mfs_err *e)
{
	size_t size;
	uint8_t *p = make(json, data_bytes, &size);
	uint64_t need = 0;
	int r = mfs_safetensors_parse(p, size, size, &need, m, e);
	free(p);
	return r;
}

static void expect_fail(const char *json, size_t data_bytes, enum mfs_err_kind kind, const char *msg)
{
	struct mfs_safetensors_meta m;
	struct mfs_err e = {0};
	int r = parse(json, data_bytes, &m, &e);
	if (r != -EINVAL || e.kind != kind || !strstr(e.msg, msg))
		print_error("%s\n  got %d kind %d '%s', expected kind %d containing '%s'\n", json, r,
			    e.kind, e.msg, kind, msg);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(e.kind, kind);
	assert_non_null(strstr(e.msg, msg));
}

static void expect_ok(const char *json, size_t data_bytes, uint64_t tensors, const char *dtypes)
{
	struct mfs_safetensors_meta m;
	struct mfs_err e = {0};
	int r = parse(json, data_bytes, &m, &e);
	if (r)
		print_error("%s\n  got %d '%s'\n", json, r, e.msg);
	assert_int_equal(r, 0);
	assert_int_equal(m.tensor_count, tensors);
	assert_int_equal(m.data_bytes, data_bytes);
	assert_int_equal(m.header_len, strlen(json));
	assert_string_equal(m.dtypes, dtypes);
	mfs_safetensors_meta_release(&m);
}

#define T(name, dtype, shape, b, e) \
	"\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_valid(void **state)
{
	struct mfs_safetensors_meta m;
	struct mfs_err e = {0};
	/* listed out of offset order, with __metadata__ in the middle, spaces,
	 * and trailing padding */
	const char *j = "{" T("b", "F32", "[2, 3]", 16, 40) ",\n"
			"\"__metadata__\": {\"format\": \"pt\", \"note\": \"caf\\u00e9 \\ud83d\\ude00\"},"
			T("a", "F16", "[8]", 0, 16) "," T("z", "BF16", "[0, 4]", 40, 40) "," T("c", "U8", "[]", 40, 41)
			"}      ";
	assert_int_equal(parse(j, 41, &m, &e), 0);
	assert_int_equal(m.tensor_count, 4);
	assert_int_equal(m.data_bytes, 41);
	assert_string_equal(m.dtypes, "BF16,F16,F32,U8");
	assert_non_null(m.metadata);
	assert_string_equal(json_string_value(json_object_get(m.metadata, "format")), "pt");
	assert_string_equal(json_string_value(json_object_get(m.metadata, "note")),
			    "caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_false(m.metadata_truncated);

	json_t *o = mfs_safetensors_meta_json(&m);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "tensor_count")), 4);
	assert_int_equal(json_array_size(json_object_get(o, "dtypes")), 4);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "dtypes"), 2)), "F32");
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "metadata"), "format")), "pt");
	json_decref(o);
	mfs_safetensors_meta_release(&m);
	mfs_safetensors_meta_release(&m);
	mfs_safetensors_meta_release(NULL);

	expect_ok("{}", 0, 0, "");
	expect_ok("{ }  ", 0, 0, "");
	expect_ok("{\"__metadata__\":null}", 0, 0, "");
	expect_ok("{\"__metadata__\":{}}", 0, 0, "");
	/* unknown fields are skipped, whatever they hold */
	expect_ok("{\"x\":{\"extra\":[1,{\"y\":[true,null,-1.5e3]}],\"dtype\":\"I64\",\"shape\":[2],"
		  "\"data_offsets\":[0,16]}}", 16, 1, "I64");
	/* every dtype with its size */
	expect_ok("{" T("a", "BOOL", "[3]", 0, 3) "," T("b", "I8", "[1]", 3, 4) ","
		  T("c", "F8_E5M2", "[1]", 4, 5) "," T("d", "F8_E4M3", "[1]", 5, 6) ","
		  T("e", "I16", "[1]", 6, 8) "," T("f", "U16", "[1]", 8, 10) ","
		  T("g", "I32", "[1]", 10, 14) "," T("h", "U32", "[1]", 14, 18) ","
		  T("i", "F64", "[1]", 18, 26) "," T("j", "U64", "[1]", 26, 34) "}",
		  34, 10, "BOOL,F64,F8_E4M3,F8_E5M2,I16,I32,I8,U16,U32,U64");
	/* escaped names are decoded before the duplicate check */
	expect_fail("{" T("a", "U8", "[1]", 0, 1) "," T("\\u0061", "U8", "[1]", 1, 2) "}", 2,
		    MFS_ERR_PARSE, "duplicate tensor name 'a'");
	assert_int_equal(mfs_safetensors_dtype_bits("BF16", 4), 16);
	assert_int_equal(mfs_safetensors_dtype_bits("F4", 2), 0);
}

static void test_need_protocol(void **state)
{
	const char *j = "{" T("a", "F32", "[4]", 0, 16) "}";
	size_t size;
	uint8_t *p = make(j, 16, &size);
	struct mfs_safetensors_meta m;
	struct mfs_err e;
	uint64_t need;

	for (size_t len = 0; len <= size; len++) {
		need = 0;
		int r = mfs_safetensors_parse(p, len, size, &need, &m, &e);
		if (len < 8) {
			assert_int_equal(r, -EAGAIN);
			assert_int_equal(need, 8);
		} else if (len < 8 + strlen(j)) {
			assert_int_equal(r, -EAGAIN);
			assert_int_equal(need, 8 + strlen(j));
		} else {
			assert_int_equal(r, 0);
			mfs_safetensors_meta_release(&m);
		}
	}
	/* the header is checked against the file size before asking for it */
	assert_int_equal(mfs_safetensors_parse(p, 8, 20, &need, &m, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "truncated"));
	free(p);
}

static void test_bad_framing(void **state)
{
	struct mfs_safetensors_meta m;
	struct mfs_err e = {0};
	uint64_t need;
	uint8_t b[16] = {0};

	/* shorter than the length field */
	assert_int_equal(mfs_safetensors_parse(b, 5, 5, &need, &m, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "too few for the header length"));
	/* N > 100,000,000 */
	uint64_t n = 100000001;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(n >> 8 * i);
	assert_int_equal(mfs_safetensors_parse(b, 16, 1ull << 40, &need, &m, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "header length 100000001 exceeds the limit"));
	/* N = 2^64 - 1 */
	memset(b, 0xff, 8);
	assert_int_equal(mfs_safetensors_parse(b, 16, 16, &need, &m, &e), -EINVAL);
	/* truncated header */
	memset(b, 0, sizeof(b));
	b[0] = 100;
	memcpy(b + 8, "{\"a\":", 5);
	assert_int_equal(mfs_safetensors_parse(b, 13, 13, &need, &m, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "truncated safetensors: the header needs 108 bytes but the file has 13"));
	assert_int_equal(e.kind, MFS_ERR_PARSE);
	/* N = 0 */
	b[0] = 0;
	assert_int_equal(mfs_safetensors_parse(b, 8, 8, &need, &m, &e), -EINVAL);
}

static void test_bad_json(void **state)
{
	expect_fail(" {}", 0, MFS_ERR_PARSE, "does not start with '{'");
	expect_fail("[]", 0, MFS_ERR_PARSE, "does not start with '{'");
	expect_fail("{\"a\":1}", 0, MFS_ERR_PARSE, "tensor 'a' is not an object");
	expect_fail("{" T("a", "U8", "[1]", 0, 1), 1, MFS_ERR_PARSE, "expected '}'");
	expect_fail("{" T("a", "U8", "[1]", 0, 1) ",}", 1, MFS_ERR_PARSE, "expected a string");
	expect_fail("{" T("a", "U8", "[1]", 0, 1) "}x", 1, MFS_ERR_PARSE, "only spaces may follow");
	expect_fail("{\"a\\q\":{}}", 0, MFS_ERR_PARSE, "bad escape");
	expect_fail("{\"\\ud800\":{}}", 0, MFS_ERR_PARSE, "lone high surrogate");
	expect_fail("{\"\\udc00\":{}}", 0, MFS_ERR_PARSE, "lone low surrogate");
	expect_fail("{\"a\xff\":{}}", 0, MFS_ERR_PARSE, "invalid UTF-8");
	expect_fail("{\"a\xc0\x80\":{}}", 0, MFS_ERR_PARSE, "invalid UTF-8");
	expect_fail("{\"a\tb\":{}}", 0, MFS_ERR_PARSE, "control character");
	expect_fail("{\"a", 0, MFS_ERR_PARSE, "unterminated string");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, MFS_ERR_PARSE,
		    "a shape dimension is not a non-negative integer");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, MFS_ERR_PARSE,
		    "not a non-negative integer");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, MFS_ERR_PARSE,
		    "not a non-negative integer");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4,
		    MFS_ERR_PARSE, "does not fit in 64 bits");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, MFS_ERR_PARSE,
		    "data_offsets must have 2 elements");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, MFS_ERR_PARSE,
		    "expected ','");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    MFS_ERR_PARSE, "duplicate field 'dtype'");
	expect_fail("{\"__metadata__\":{},\"__metadata__\":{}}", 0, MFS_ERR_PARSE, "duplicate key '__metadata__'");
	expect_fail("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, MFS_ERR_PARSE, "duplicate __metadata__ key 'k'");
	expect_fail("{\"__metadata__\":{\"k\":1}}", 0, MFS_ERR_FORMAT, "__metadata__ value for 'k' is not a string");
	expect_fail("{\"__metadata__\":[]}", 0, MFS_ERR_PARSE, "expected '{'");
	expect_fail("{" T("a", "U8", "[1]", 0, 1) "," T("a", "U8", "[1]", 1, 2) "}", 2, MFS_ERR_PARSE,
		    "duplicate tensor name 'a'");
	/* deep nesting in a skipped field is capped */
	char deep[600];
	size_t k = (size_t)snprintf(deep, sizeof(deep), "{\"a\":{\"x\":");
	for (int i = 0; i < 200; i++)
		deep[k++] = '[';
	deep[k] = '\0';
	expect_fail(deep, 0, MFS_ERR_PARSE, "nesting too deep");
}

static void test_bad_layout(void **state)
{
	/* hole, first not at 0, overlap, trailing bytes, past the end */
	expect_fail("{" T("a", "F32", "[16]", 0, 64) "," T("b", "F32", "[16]", 128, 192) "}", 192,
		    MFS_ERR_FORMAT, "hole in the data: tensor 'b' begins at 128 but tensor 'a' ends at 64");
	expect_fail("{" T("a", "F32", "[1]", 4, 8) "}", 8, MFS_ERR_FORMAT,
		    "the first tensor 'a' begins at 4, not 0");
	expect_fail("{" T("a", "F32", "[16]", 0, 64) "," T("b", "F32", "[16]", 32, 96) "}", 96,
		    MFS_ERR_FORMAT, "tensor 'b' [32, 96) overlaps tensor 'a'");
	expect_fail("{" T("a", "F32", "[16]", 0, 64) "}", 80, MFS_ERR_FORMAT, "16 trailing bytes");
	expect_fail("{}", 1, MFS_ERR_FORMAT, "1 trailing bytes");
	expect_fail("{" T("a", "F32", "[4,4]", 0, 64) "}", 32, MFS_ERR_FORMAT,
		    "tensor 'a' data [0, 64) runs past the end of the file (the data section has 32 bytes)");
	/* wrong size for dtype and shape; unknown dtype; end before begin */
	expect_fail("{" T("a", "F16", "[4,4]", 0, 64) "}", 64, MFS_ERR_FORMAT,
		    "tensor 'a' has 64 bytes [0, 64), but its dtype F16 and shape need 32");
	expect_fail("{" T("a", "F4", "[4]", 0, 2) "}", 2, MFS_ERR_FORMAT, "tensor 'a' has unknown dtype 'F4'");
	expect_fail("{" T("a", "f32", "[4]", 0, 16) "}", 16, MFS_ERR_FORMAT, "unknown dtype 'f32'");
	expect_fail("{" T("a", "U8", "[0]", 8, 4) "}", 8, MFS_ERR_FORMAT, "end before they begin");
	/* overflowing element counts and byte sizes */
	expect_fail("{" T("a", "U8", "[4294967296,4294967296]", 0, 0) "}", 0, MFS_ERR_FORMAT,
		    "number of elements overflows");
	expect_fail("{" T("a", "F64", "[4611686018427387904]", 0, 0) "}", 0, MFS_ERR_FORMAT,
		    "byte size overflows");
	/* missing fields */
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, MFS_ERR_FORMAT, "tensor 'a' has no data_offsets");
	expect_fail("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MFS_ERR_FORMAT, "tensor 'a' has no dtype");
	expect_fail("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, MFS_ERR_FORMAT, "tensor 'a' has no shape");
}

static void test_metadata_cap(void **state)
{
	/* 2,000 entries of ~1 KiB: kept up to the cap, then marked truncated */
	size_t cap = 2100 * 1100, k = 0;
	char *j = malloc(cap);
	assert_non_null(j);
	k += (size_t)snprintf(j + k, cap - k, "{\"__metadata__\":{");
	char v[1001];
	memset(v, 'v', 1000);
	v[1000] = '\0';
	for (int i = 0; i < 2000; i++)
		k += (size_t)snprintf(j + k, cap - k, "%s\"k%d\":\"%s\"", i ? "," : "", i, v);
	k += (size_t)snprintf(j + k, cap - k, "}}");
	struct mfs_safetensors_meta m;
	struct mfs_err e = {0};
	assert_int_equal(parse(j, 0, &m, &e), 0);
	assert_true(m.metadata_truncated);
	assert_true(json_object_size(m.metadata) > 900 && json_object_size(m.metadata) < 1100);
	json_t *o = mfs_safetensors_meta_json(&m);
	assert_true(json_is_true(json_object_get(o, "metadata_truncated")));
	json_decref(o);
	mfs_safetensors_meta_release(&m);
	free(j);
}

static void test_many_tensors(void **state)
{
	/* 20,000 tensors listed in reverse offset order */
	size_t n = 20000, cap = n * 100, k = 0;
	char *j = malloc(cap);
	assert_non_null(j);
	j[k++] = '{';
	for (size_t i = n; i-- > 0;)
		k += (size_t)snprintf(j + k, cap - k,
				      "%s\"model.layers.%zu.weight\":{\"dtype\":\"F16\",\"shape\":[2],"
				      "\"data_offsets\":[%zu,%zu]}", i == n - 1 ? "" : ",", i, i * 4, i * 4 + 4);
	j[k++] = '}';
	j[k] = '\0';
	expect_ok(j, n * 4, n, "F16");
	free(j);
}

static void test_mutations(void **state)
{
	const char *j = "{\"__metadata__\":{\"format\":\"pt\"}," T("a", "F16", "[2,3]", 0, 12) ","
			T("b\\u00e9", "F32", "[2]", 12, 20) "," T("c", "BOOL", "[4]", 20, 24) "}  ";
	size_t size;
	uint8_t *p = make(j, 24, &size), *c = malloc(size);
	uint64_t s = 99;
	assert_non_null(c);
	for (int iter = 0; iter < 30000; iter++) {
		memcpy(c, p, size);
		for (int k = 0; k <= iter % 3; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			size_t at = 8 + (size_t)(s >> 33) % (size - 8);
			static const char pool[] = "{}[]\",:0123456789 \\u.e-aFx";
			c[at] = (iter & 1) ? (uint8_t)pool[(s >> 20) % (sizeof(pool) - 1)] : (uint8_t)(s >> 13);
		}
		struct mfs_safetensors_meta m;
		struct mfs_err e = {0};
		uint64_t need;
		int r = mfs_safetensors_parse(c, size, size, &need, &m, &e);
		assert_true(r == 0 || r == -EINVAL);
		if (r == 0)
			mfs_safetensors_meta_release(&m);
		else
			assert_true(e.msg[0] != '\0');
	}
	free(c);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_need_protocol),
		cmocka_unit_test(test_bad_framing),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_bad_layout),
		cmocka_unit_test(test_metadata_cap),
		cmocka_unit_test(test_many_tensors),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests_name("safetensors", tests, NULL, NULL);
}
