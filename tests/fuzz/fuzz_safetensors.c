/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors header parser
 * (core/safetensors.c).
 *
 * The input is a whole file. Properties: no read outside the buffer (ASan);
 * growing prefixes (8 bytes, then *need) end with the same answer as the
 * whole file; -EAGAIN always asks for more than it was given and no more than
 * the file; a successful parse serialises to JSON.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_safetensors_meta whole = { 0 };
	struct mfs_err err = { 0 };
	uint64_t need = 0;
	int rc_whole = mfs_safetensors_parse(data, size, size, &need, &whole, &err);
	FUZZ_CHECK(rc_whole != -EAGAIN);
	if (rc_whole == 0) {
		FUZZ_CHECK(8 + whole.header_len + whole.data_bytes == size);
		json_t *j = mfs_safetensors_meta_json(&whole);
		FUZZ_CHECK(j != NULL);
		char *t = json_dumps(j, JSON_ENSURE_ASCII | JSON_COMPACT);
		FUZZ_CHECK(t != NULL);
		free(t);
		json_decref(j);
	} else {
		FUZZ_CHECK(rc_whole < 0 && err.msg[0]);
	}

	size_t want = size < 8 ? size : 8;
	int rc = -EAGAIN;
	for (int round = 0; round < 8 && rc == -EAGAIN; round++) {
		struct mfs_safetensors_meta part = { 0 };
		struct mfs_err perr = { 0 };
		uint8_t *prefix = malloc(want ? want : 1);
		FUZZ_CHECK(prefix != NULL);
		memcpy(prefix, data, want);
		need = 0;
		rc = mfs_safetensors_parse(prefix, want, size, &need, &part, &perr);
		free(prefix);
		if (rc == -EAGAIN) {
			FUZZ_CHECK(need > want && need <= size);
			want = (size_t)need;
		} else if (rc == 0) {
			FUZZ_CHECK(part.tensor_count == whole.tensor_count);
			mfs_safetensors_meta_release(&part);
		}
	}
	FUZZ_CHECK(rc == rc_whole);
	mfs_safetensors_meta_release(&whole);
	return 0;
}
