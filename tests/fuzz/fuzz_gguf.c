/*
 * fuzz_gguf.c - libFuzzer target for the GGUF header parser (core/gguf.c).
 *
 * The input is a whole file. Properties: the parser never reads outside the
 * buffer (ASan); parsing growing prefixes the way admission does (start
 * small, pass *need bytes next time) ends with the same answer as parsing the
 * whole file at once, and every -EAGAIN asks for more than it was given and
 * no more than the file; a successful parse serialises to JSON, and the
 * visitor sees only views inside the buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "gguf.h"
#include "text.h"

struct walk {
	const uint8_t *buf;
	size_t len;
	size_t kvs, tensors;
};

static int inside(const struct walk *w, const char *p, size_t n)
{
	return (const uint8_t *)p >= w->buf && n <= w->len &&
	       (size_t)((const uint8_t *)p - w->buf) <= w->len - n;
}

static int on_kv(void *ctx, const struct mfs_gguf_kv_view *kv)
{
	struct walk *w = ctx;
	FUZZ_CHECK(inside(w, kv->key, kv->key_len));
	char *k = mfs_text_escape_n(kv->key, kv->key_len, 256);
	FUZZ_CHECK(k != NULL);
	free(k);
	if (kv->type == MFS_GGUF_STRING) {
		FUZZ_CHECK(inside(w, kv->str, kv->str_len));
		char *v = mfs_text_escape_n(kv->str, kv->str_len, 256);
		FUZZ_CHECK(v != NULL);
		free(v);
	}
	w->kvs++;
	return 0;
}

static int on_tensor(void *ctx, const struct mfs_gguf_tensor_view *t)
{
	struct walk *w = ctx;
	FUZZ_CHECK(inside(w, t->name, t->name_len));
	FUZZ_CHECK(t->n_dims <= MFS_GGUF_MAX_DIMS);
	w->tensors++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_gguf_meta whole = { 0 };
	struct mfs_err err = { 0 };
	uint64_t need = 0;
	struct walk w = { .buf = data, .len = size };
	struct mfs_gguf_visitor vis = { .kv = on_kv, .tensor = on_tensor, .ctx = &w };
	int rc_whole = mfs_gguf_parse_ex(data, size, size, &need, &whole, &vis, &err);
	/* Given the whole file there is nothing more to ask for. */
	FUZZ_CHECK(rc_whole != -EAGAIN);
	if (rc_whole == 0) {
		FUZZ_CHECK(w.kvs == whole.kv_count && w.tensors == whole.tensor_count);
		/* A file without tensors may end before its (empty) data section. */
		FUZZ_CHECK(whole.tensor_count == 0 || whole.data_offset <= size);
		json_t *j = mfs_gguf_meta_json(&whole);
		FUZZ_CHECK(j != NULL);
		char *t = json_dumps(j, JSON_ENSURE_ASCII | JSON_COMPACT);
		FUZZ_CHECK(t != NULL);
		free(t);
		json_decref(j);
	} else {
		FUZZ_CHECK(rc_whole < 0 && err.msg[0]);
	}

	/* Growing prefixes, as admission reads them. */
	size_t want = size < 32 ? size : 32;
	int rc = -EAGAIN;
	for (int round = 0; round < 64 && rc == -EAGAIN; round++) {
		struct mfs_gguf_meta part = { 0 };
		struct mfs_err perr = { 0 };
		/* A copy of exactly `want` bytes, so ASan sees any read past it. */
		uint8_t *prefix = malloc(want ? want : 1);
		FUZZ_CHECK(prefix != NULL);
		memcpy(prefix, data, want);
		need = 0;
		rc = mfs_gguf_parse(prefix, want, size, &need, &part, &perr);
		free(prefix);
		if (rc == -EAGAIN) {
			FUZZ_CHECK(need > want && need <= size);
			want = (size_t)need;
		} else if (rc == 0) {
			FUZZ_CHECK(part.data_offset == whole.data_offset &&
				   part.tensor_count == whole.tensor_count);
			mfs_gguf_meta_release(&part);
		}
	}
	FUZZ_CHECK(rc == rc_whole);
	mfs_gguf_meta_release(&whole);
	return 0;
}
