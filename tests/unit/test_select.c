/*
 * test_select.c - artifact selection (core/select.c) against facts.md §3.
 *
 * Every conformance row of facts.md is a test here. Every selection case runs
 * on every permutation of its listing (up to 7 paths; longer listings run on
 * rotations of the listing and of its reverse), so a result that depends on
 * listing order fails. Error texts are compared exactly where facts.md fixes
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "select.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_LIST 64

/* What one case expects. */
struct want {
	const char *primary;          /* mfs_select_primary's pick; NULL: -ENOENT */
	int rc;                       /* mfs_select's return */
	const char *msg;              /* rc != 0: text the message must contain */
	bool msg_exact;               /* ... or equal */
	const char *const *files;     /* rc == 0: the file set, NULL-terminated */
	const char *dist;             /* rc == 0 */
	enum mfs_format format;       /* rc == 0 */
	unsigned split;               /* rc == 0 */
};

#define FILES(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void check_one_order(const char *const *paths, size_t n, const char *selector,
			    const struct want *w)
{
	struct mfs_err err = { 0 };
	size_t idx = 12345;
	int rc = mfs_select_primary(paths, n, selector, &idx, &err);
	if (w->primary) {
		if (rc != 0)
			fail_msg("select_primary(%s): %d %s", selector ? selector : "-", rc, err.msg);
		assert_true(idx < n);
		assert_string_equal(paths[idx], w->primary);
	} else {
		assert_int_equal(rc, -ENOENT);
		assert_int_equal(idx, 12345);
	}

	struct mfs_selection s = { .primary = (char *)"untouched" };
	mfs_err_clear(&err);
	rc = mfs_select(paths, n, selector, &s, &err);
	if (rc != w->rc)
		fail_msg("select(%s): want %d, got %d: %s", selector ? selector : "-", w->rc, rc,
			 err.msg);
	if (rc != 0) {
		assert_string_equal(s.primary, "untouched");
		assert_null(s.files);
		assert_int_equal(err.code, rc);
		if (w->msg_exact)
			assert_string_equal(err.msg, w->msg);
		else if (w->msg && !strstr(err.msg, w->msg))
			fail_msg("message lacks '%s': %s", w->msg, err.msg);
		return;
	}
	assert_string_equal(s.primary, w->primary);
	size_t nf = 0;
	while (w->files[nf])
		nf++;
	assert_int_equal(s.n_files, nf);
	for (size_t i = 0; i < nf; i++)
		assert_string_equal(s.files[i], w->files[i]);
	assert_string_equal(s.distribution_id, w->dist);
	assert_int_equal(s.format, w->format);
	assert_int_equal(s.split_count, w->split);
	mfs_selection_release(&s);
	assert_null(s.files);
	assert_null(s.primary);
}

/* Heap's algorithm over every permutation of list[0..n). */
static void permute(const char **list, size_t n, size_t k, const char *selector,
		    const struct want *w, unsigned long *runs)
{
	if (k <= 1) {
		check_one_order(list, n, selector, w);
		(*runs)++;
		return;
	}
	for (size_t i = 0; i < k; i++) {
		permute(list, n, k - 1, selector, w, runs);
		size_t j = (k % 2 == 0) ? i : 0;
		const char *t = list[j];
		list[j] = list[k - 1];
		list[k - 1] = t;
	}
}

/* Runs a case on every order of the listing (or, for long listings, on every
 * rotation of it and of its reverse). */
static void check(const char *const *paths, size_t n, const char *selector, const struct want *w)
{
	const char *list[MAX_LIST];
	assert_true(n <= MAX_LIST);
	memcpy(list, paths, n * sizeof(*list));
	unsigned long runs = 0;
	if (n <= 7) {
		permute(list, n, n, selector, w, &runs);
		return;
	}
	for (int rev = 0; rev < 2; rev++) {
		for (size_t r = 0; r < n; r++) {
			for (size_t i = 0; i < n; i++) {
				size_t j = (i + r) % n;
				list[i] = rev ? paths[n - 1 - j] : paths[j];
			}
			check_one_order(list, n, selector, w);
		}
	}
}

#define CHECK(sel, w, ...)                                                        \
	do {                                                                      \
		const char *const list_[] = { __VA_ARGS__ };                      \
		check(list_, NELEM(list_), (sel), (w));                           \
	} while (0)

/* The selector of a ref, the way the command will get it. */
static char *selector_of(const char *ref_text)
{
	struct mfs_ref r;
	assert_int_equal(mfs_ref_parse(ref_text, &r, NULL), 0);
	char *s = r.selector ? strdup(r.selector) : NULL;
	mfs_ref_release(&r);
	return s;
}

/* ---- facts.md §3 conformance cases ------------------------------------- */

static void test_conf_quant_selector(void **state)
{
	/* Model-Q5_K_M.gguf, Model-Q4_K_M.gguf, README.md | org/repo:Q4_K_M */
	char *sel = selector_of("org/repo:Q4_K_M");
	struct want w = { .primary = "Model-Q4_K_M.gguf", .files = FILES("Model-Q4_K_M.gguf"),
			  .dist = "Model-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK(sel, &w, "Model-Q5_K_M.gguf", "Model-Q4_K_M.gguf", "README.md");

	const char *const list[] = { "Model-Q5_K_M.gguf", "Model-Q4_K_M.gguf", "README.md" };
	struct mfs_selection s;
	struct mfs_ref r;
	assert_int_equal(mfs_ref_parse("org/repo:Q4_K_M", &r, NULL), 0);
	assert_int_equal(mfs_select(list, 3, r.selector, &s, NULL), 0);
	const char *rev = "0123456789abcdef0123456789abcdef01234567";
	char *canon = mfs_canonical_ref(r.org, r.repo, rev, s.primary);
	assert_string_equal(canon, "org/repo@0123456789abcdef0123456789abcdef01234567/Model-Q4_K_M.gguf");
	free(canon);
	mfs_selection_release(&s);
	mfs_ref_release(&r);
	free(sel);
}

static void test_conf_split_gguf_selector(void **state)
{
	/* UD-IQ2_M/GLM-5.1-UD-IQ2_M-0000{3,1,2}-of-00003.gguf + a UD-Q4_K_M shard | :UD-IQ2_M */
	char *sel = selector_of("org/repo:UD-IQ2_M");
	struct want w = {
		.primary = "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00003.gguf",
		.files = FILES("UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00003.gguf",
			       "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00002-of-00003.gguf",
			       "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00003-of-00003.gguf"),
		.dist = "GLM-5.1-UD-IQ2_M",
		.format = MFS_FORMAT_GGUF,
		.split = 3,
	};
	CHECK(sel, &w, "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00003-of-00003.gguf",
	      "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00003.gguf",
	      "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00002-of-00003.gguf",
	      "UD-Q4_K_M/GLM-5.1-UD-Q4_K_M-00001-of-00003.gguf");
	free(sel);
}

static void test_conf_path_order_breaks_ties(void **state)
{
	/* z/Model-Q4_K_M.gguf, a/Model-Q4_K_M.gguf | :Q4_K_M */
	struct want w = { .primary = "a/Model-Q4_K_M.gguf", .files = FILES("a/Model-Q4_K_M.gguf"),
			  .dist = "Model-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK("Q4_K_M", &w, "z/Model-Q4_K_M.gguf", "a/Model-Q4_K_M.gguf");
}

static void test_conf_exact_name_is_rank_0(void **state)
{
	/* A-Q4_K_M.gguf and a file named Q4_K_M | :Q4_K_M -> Q4_K_M (rank 0).
	 * The ranking picks it; mfs_select then refuses its format, as facts.md
	 * says ("else an error"). */
	struct want w = { .primary = "Q4_K_M", .rc = -ENOTSUP, .msg_exact = true,
			  .msg = "unsupported model artifact file format: 'Q4_K_M' (expected "
				 ".gguf, .safetensors or .safetensors.index.json)" };
	CHECK("Q4_K_M", &w, "A-Q4_K_M.gguf", "Q4_K_M");
	/* Same with the exact name in a folder, lower case: B equals S. */
	struct want w2 = { .primary = "dir/q4_k_m", .rc = -ENOTSUP, .msg = "'dir/q4_k_m'" };
	CHECK("Q4_K_M", &w2, "A-Q4_K_M.gguf", "dir/q4_k_m");
}

static void test_conf_safetensors_shard_selector(void **state)
{
	/* model-0000{2,1}-of-00048.safetensors, model.safetensors.index.json | :model.
	 * The 00001 shard is chosen; its set lacks 46 shards, which modelfs
	 * refuses, naming the first missing one. */
	char *sel = selector_of("org/repo:model");
	struct want w = { .primary = "model-00001-of-00048.safetensors", .rc = -ENOENT,
			  .msg_exact = true,
			  .msg = "split model 'model-00001-of-00048.safetensors' is missing shard "
				 "'model-00003-of-00048.safetensors' (46 of 48 missing) in "
				 "repository" };
	CHECK(sel, &w, "model-00002-of-00048.safetensors", "model-00001-of-00048.safetensors",
	      "model.safetensors.index.json");

	/* Complete: the set is the shards, and not the index beside them. */
	struct want ok = { .primary = "model-00001-of-00002.safetensors",
			   .files = FILES("model-00001-of-00002.safetensors",
					  "model-00002-of-00002.safetensors"),
			   .dist = "model", .format = MFS_FORMAT_SAFETENSORS, .split = 2 };
	CHECK(sel, &ok, "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors",
	      "model.safetensors.index.json");
	free(sel);
}

static void test_conf_default_prefers_q4_k_m_skips_mmproj(void **state)
{
	/* Qwen3-8B-Q8_0.gguf, mmproj-BF16.gguf, Qwen3-8B-Q4_K_M.gguf | none */
	struct want w = { .primary = "Qwen3-8B-Q4_K_M.gguf", .files = FILES("Qwen3-8B-Q4_K_M.gguf"),
			  .dist = "Qwen3-8B-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "Qwen3-8B-Q8_0.gguf", "mmproj-BF16.gguf", "Qwen3-8B-Q4_K_M.gguf");
}

static void test_conf_default_prefers_model_safetensors(void **state)
{
	/* Qwen3-8B-Q4_K_M.gguf, model.safetensors | none */
	struct want w = { .primary = "model.safetensors", .files = FILES("model.safetensors"),
			  .dist = "model", .format = MFS_FORMAT_SAFETENSORS };
	CHECK(NULL, &w, "Qwen3-8B-Q4_K_M.gguf", "model.safetensors");
}

static void test_conf_default_equal_scores_path_order(void **state)
{
	/* Qwen-Q6_K.gguf, Qwen-IQ2_XS.gguf | none -> IQ2_XS (both 9; path order) */
	struct want w = { .primary = "Qwen-IQ2_XS.gguf", .files = FILES("Qwen-IQ2_XS.gguf"),
			  .dist = "Qwen-IQ2_XS", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "Qwen-Q6_K.gguf", "Qwen-IQ2_XS.gguf");
}

static void test_conf_score_is_case_sensitive(void **state)
{
	/* x-q4_k_m.gguf, y-Q8_0.gguf | none -> y-Q8_0.gguf */
	struct want w = { .primary = "y-Q8_0.gguf", .files = FILES("y-Q8_0.gguf"),
			  .dist = "y-Q8_0", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "x-q4_k_m.gguf", "y-Q8_0.gguf");
}

static void test_conf_no_match_error_text(void **state)
{
	/* Model-Q4_K_M.gguf only | :Q5_K_M -> "no model artifact matching selector" */
	struct want w = { .rc = -ENOENT, .msg_exact = true,
			  .msg = "no model artifact matching selector 'Q5_K_M' in repository" };
	CHECK("Q5_K_M", &w, "Model-Q4_K_M.gguf");

	struct mfs_err err = { 0 };
	const char *const list[] = { "Model-Q4_K_M.gguf" };
	struct mfs_selection s;
	assert_int_equal(mfs_select(list, 1, "Q5_K_M", &s, &err), -ENOENT);
	assert_int_equal(err.kind, MFS_ERR_NOT_FOUND);
	assert_int_equal(err.code, -ENOENT);
}

static void test_no_supported_files_error_text(void **state)
{
	struct want w = { .rc = -ENOENT, .msg_exact = true,
			  .msg = "no supported model artifact files found in repository" };
	CHECK(NULL, &w, "README.md", "config.json", "tokenizer.json");
	CHECK(NULL, &w, "mmproj-model-f16.gguf");
	CHECK(NULL, &w, "MMPROJ-x.gguf", "sub/mmproj.gguf");
	CHECK(NULL, &w, "x-00002-of-00003.gguf", "x-00003-of-00003.gguf");
	CHECK(NULL, &w, "model.bin", "pytorch_model.bin");
	/* Safetensors need the exact name or a first shard. */
	CHECK(NULL, &w, "model-00002-of-00002.safetensors", "weights.safetensors");
	const char *none[] = { NULL };
	check(none, 0, NULL, &w);
	struct want ws = { .rc = -ENOENT, .msg_exact = true,
			   .msg = "no model artifact matching selector 'Q4_K_M' in repository" };
	check(none, 0, "Q4_K_M", &ws);
}

/* ---- selector ranks ------------------------------------------------------ */

static void test_selector_rank_order(void **state)
{
	/* rank 2 (S.safetensors) < 3 (S-00001-of-*.safetensors) < 4 (S.gguf) < 5. */
	struct want w2 = { .primary = "sub/Model.safetensors" };
	w2.rc = 0;
	w2.files = FILES("sub/Model.safetensors");
	w2.dist = "Model";
	w2.format = MFS_FORMAT_SAFETENSORS;
	CHECK("model", &w2, "model.gguf", "model-00001-of-00001.gguf",
	      "model-00001-of-00001.safetensors", "sub/Model.safetensors");

	struct want w3 = { .primary = "model-00001-of-00001.safetensors",
			   .files = FILES("model-00001-of-00001.safetensors"), .dist = "model",
			   .format = MFS_FORMAT_SAFETENSORS, .split = 1 };
	CHECK("model", &w3, "model.gguf", "model-00001-of-00001.gguf",
	      "model-00001-of-00001.safetensors");

	struct want w4 = { .primary = "model.gguf", .files = FILES("model.gguf"), .dist = "model",
			   .format = MFS_FORMAT_GGUF };
	CHECK("model", &w4, "model.gguf", "model-00001-of-00001.gguf");

	struct want w5 = { .primary = "model-00001-of-00001.gguf",
			   .files = FILES("model-00001-of-00001.gguf"), .dist = "model",
			   .format = MFS_FORMAT_GGUF, .split = 1 };
	CHECK("model", &w5, "model-00001-of-00001.gguf", "model.json");

	/* Rank 1 (quant-like) beats ranks 2..5. */
	struct want w1 = { .primary = "m-Q8_0.gguf", .files = FILES("m-Q8_0.gguf"),
			   .dist = "m-Q8_0", .format = MFS_FORMAT_GGUF };
	CHECK("Q8_0", &w1, "Q8_0.safetensors", "Q8_0.gguf", "m-Q8_0.gguf");
	/* Rank 0 (path equals S) beats rank 1. */
	struct want w0 = { .primary = "a/Q8_0.gguf", .files = FILES("a/Q8_0.gguf"),
			   .dist = "Q8_0", .format = MFS_FORMAT_GGUF };
	CHECK("a/Q8_0.gguf", &w0, "m-Q8_0.gguf", "a/Q8_0.gguf", "b/Q8_0.gguf");
}

static void test_selector_quant_like_forms(void **state)
{
	struct want w;
#define QUANT(path, dist_)                                                         \
	do {                                                                            \
		w = (struct want){ .primary = (path), .files = FILES(path), .dist = (dist_), \
				   .format = MFS_FORMAT_GGUF };                         \
		CHECK("Q4_K_M", &w, (path), "other.gguf", "README.md");               \
	} while (0)
	QUANT("x/Q4_K_M/model.gguf", "model");                             /* /S/ */
	QUANT("model-Q4_K_M-imatrix.gguf", "model-Q4_K_M-imatrix");        /* -S- */
	QUANT("Meta-Llama.Q4_K_M-v2.gguf", "Meta-Llama.Q4_K_M-v2");        /* .S- */
	QUANT("Qwen3-8B-Q4_K_M.gguf", "Qwen3-8B-Q4_K_M");                  /* -S.gguf */
	QUANT("Meta-Llama-3.1-8B-Instruct.Q4_K_M.gguf",
	      "Meta-Llama-3.1-8B-Instruct.Q4_K_M");                         /* .S.gguf */
	QUANT("dir/Q4_K_M.gguf", "Q4_K_M");                                /* /S.gguf */
	QUANT("model-q4_k_m.gguf", "model-q4_k_m");                        /* lower-case */
#undef QUANT
	/* Not quant-like: not .gguf, or S not delimited. */
	struct want none = { .rc = -ENOENT, .msg_exact = true,
			     .msg = "no model artifact matching selector 'Q4_K_M' in repository" };
	CHECK("Q4_K_M", &none, "model-Q4_K_M.bin", "model-Q4_K_Mx.gguf", "modelQ4_K_M.gguf",
	      "model_Q4_K_M.gguf", "Q4_K_M.bin");
	/* A literal substring test on the repo-relative path: a top-level folder
	 * named S has no "/S/" in its path, so it does not match. */
	CHECK("Q4_K_M", &none, "Q4_K_M/model.gguf");
	/* The mesh-llm selector tests. */
	struct want q2 = { .primary = "qwen3.5-moe-0.87B-d0.8B.Q2_K.gguf",
			   .files = FILES("qwen3.5-moe-0.87B-d0.8B.Q2_K.gguf"),
			   .dist = "qwen3.5-moe-0.87B-d0.8B.Q2_K", .format = MFS_FORMAT_GGUF };
	CHECK("Q2_K", &q2, "qwen3.5-moe-0.87B-d0.8B.Q2_K.gguf", "gemma-4-31B-it-Q4_0.gguf",
	      "Qwen3-8B-Q4_K_M.gguf");
	struct want q40 = { .primary = "gemma-4-31B-it-Q4_0.gguf",
			    .files = FILES("gemma-4-31B-it-Q4_0.gguf"), .dist = "gemma-4-31B-it-Q4_0",
			    .format = MFS_FORMAT_GGUF };
	CHECK("Q4_0", &q40, "qwen3.5-moe-0.87B-d0.8B.Q2_K.gguf", "gemma-4-31B-it-Q4_0.gguf",
	      "Qwen3-8B-Q4_K_M.gguf");
	struct want stem = { .primary = "zai-org.GLM-5.1.Q2_K-00001-of-00002.gguf",
			     .files = FILES("zai-org.GLM-5.1.Q2_K-00001-of-00002.gguf",
					    "zai-org.GLM-5.1.Q2_K-00002-of-00002.gguf"),
			     .dist = "zai-org.GLM-5.1.Q2_K", .format = MFS_FORMAT_GGUF, .split = 2 };
	CHECK("zai-org.GLM-5.1.Q2_K", &stem, "zai-org.GLM-5.1.Q2_K-00002-of-00002.gguf",
	      "zai-org.GLM-5.1.Q2_K-00001-of-00002.gguf");
}

static void test_selector_rank0_path_names_later_shard(void **state)
{
	/* An exact path wins even for a later shard; the set is still all shards. */
	const char *p2 = "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00002-of-00003.gguf";
	struct want w = { .primary = p2,
			  .files = FILES("UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00003.gguf", p2,
					 "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00003-of-00003.gguf"),
			  .dist = "GLM-5.1-UD-IQ2_M", .format = MFS_FORMAT_GGUF, .split = 3 };
	CHECK("ud-iq2_m/glm-5.1-ud-iq2_m-00002-of-00003.gguf", &w,
	      "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00003-of-00003.gguf",
	      "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00003.gguf", p2);
}

static void test_selector_index_json_primary(void **state)
{
	struct want w = { .primary = "model.safetensors.index.json",
			  .files = FILES("model.safetensors.index.json"),
			  .dist = "model.safetensors.index.json",
			  .format = MFS_FORMAT_SAFETENSORS };
	CHECK("model.safetensors.index.json", &w, "model-00001-of-00002.safetensors",
	      "model-00002-of-00002.safetensors", "model.safetensors.index.json");
}

static void test_selector_unsupported_format(void **state)
{
	struct want w = { .primary = "README.md", .rc = -ENOTSUP, .msg_exact = true,
			  .msg = "unsupported model artifact file format: 'README.md' (expected "
				 ".gguf, .safetensors or .safetensors.index.json)" };
	CHECK("readme.md", &w, "README.md", "m-Q4_K_M.gguf");
	/* Suffixes are case-sensitive for the format, as in mesh-llm. */
	struct want up = { .primary = "M-Q4_K_M.GGUF", .rc = -ENOTSUP, .msg = "'M-Q4_K_M.GGUF'" };
	CHECK(NULL, &up, "M-Q4_K_M.GGUF", "notes.txt");
}

static void test_selector_bad_arguments(void **state)
{
	const char *const list[] = { "m.gguf" };
	struct mfs_selection s = { 0 };
	struct mfs_err err = { 0 };
	size_t idx;
	assert_int_equal(mfs_select(list, 1, "", &s, &err), -EINVAL);
	assert_int_equal(err.kind, MFS_ERR_USAGE);
	assert_int_equal(mfs_select(list, 1, "Q4\x01", &s, &err), -EINVAL);
	assert_int_equal(mfs_select_primary(list, 1, "", &idx, NULL), -EINVAL);
	assert_int_equal(mfs_select(NULL, 3, NULL, &s, &err), -EINVAL);
	assert_int_equal(mfs_select(NULL, 0, NULL, &s, &err), -ENOENT);
	assert_null(s.primary);

	/* A selector longer than any safe path cannot match. */
	char big[MFS_PATH_MAX + 50];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mfs_select(list, 1, big, &s, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no model artifact matching selector 'aaa"));
}

/* ---- default ranks ------------------------------------------------------- */

static void test_default_rank_order(void **state)
{
	struct want w0 = { .primary = "model.safetensors", .files = FILES("model.safetensors"),
			   .dist = "model", .format = MFS_FORMAT_SAFETENSORS };
	CHECK(NULL, &w0, "model.safetensors", "model-00001-of-00001.safetensors",
	      "m-00001-of-00001.gguf", "m-Q4_K_M.gguf");
	/* model.safetensors in a folder counts too (B, not the path). */
	struct want w0b = { .primary = "sub/model.safetensors",
			    .files = FILES("sub/model.safetensors"), .dist = "model",
			    .format = MFS_FORMAT_SAFETENSORS };
	CHECK(NULL, &w0b, "sub/model.safetensors", "m-Q4_K_M.gguf");

	struct want w1 = { .primary = "model-00001-of-00001.safetensors",
			   .files = FILES("model-00001-of-00001.safetensors"), .dist = "model",
			   .format = MFS_FORMAT_SAFETENSORS, .split = 1 };
	CHECK(NULL, &w1, "model-00001-of-00001.safetensors", "m-00001-of-00001.gguf",
	      "m-Q4_K_M.gguf");

	struct want w2 = { .primary = "m-00001-of-00001.gguf", .files = FILES("m-00001-of-00001.gguf"),
			   .dist = "m", .format = MFS_FORMAT_GGUF, .split = 1 };
	CHECK(NULL, &w2, "m-00001-of-00001.gguf", "m-Q4_K_M.gguf");

	struct want w3 = { .primary = "m-Q4_K_M.gguf", .files = FILES("m-Q4_K_M.gguf"),
			   .dist = "m-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w3, "m-Q4_K_M.gguf", "weights.safetensors");
}

static void test_default_split_gguf(void **state)
{
	/* Two split sets: both score 0, the smaller path wins; only its set. */
	struct want w = { .primary = "A/m-00001-of-00002.gguf",
			  .files = FILES("A/m-00001-of-00002.gguf", "A/m-00002-of-00002.gguf"),
			  .dist = "m", .format = MFS_FORMAT_GGUF, .split = 2 };
	CHECK(NULL, &w, "B/m-00002-of-00002.gguf", "B/m-00001-of-00002.gguf",
	      "A/m-00002-of-00002.gguf", "A/m-00001-of-00002.gguf", "mmproj-F16.gguf");
}

static void test_default_exclusions(void **state)
{
	/* "-000" without "-00001-of-" is excluded, whatever follows. */
	struct want w = { .primary = "b.gguf", .files = FILES("b.gguf"), .dist = "b",
			  .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "a-000.gguf", "a-00002-of-00002.gguf", "b.gguf", "mmproj.gguf",
	      "Mmproj-Q4_K_M.gguf");
	/* mmproj is only excluded at the start of the basename. */
	struct want w2 = { .primary = "x-mmproj.gguf", .files = FILES("x-mmproj.gguf"),
			   .dist = "x-mmproj", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w2, "x-mmproj.gguf", "mmproj/y.gguf.part");
}

static void test_preference_score_order(void **state)
{
	/* Q4_K_M, Q4_K_S, Q4_1, Q5_K_M, Q5_K_S, Q8_0, BF16, then everything else. */
	static const char *const order[] = { "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-Q4_1.gguf",
					     "m-Q5_K_M.gguf", "m-Q5_K_S.gguf", "m-Q8_0.gguf",
					     "m-BF16.gguf",   "m-F16.gguf",    "m-Q6_K.gguf" };
	const size_t n = NELEM(order);
	for (size_t first = 0; first + 1 < n; first++) {
		const char *list[NELEM(order)];
		for (size_t i = first; i < n; i++)
			list[i - first] = order[n - 1 - (i - first)]; /* worst first */
		struct want w = { .primary = order[first], .files = (const char *const[]){ order[first], NULL },
				  .format = MFS_FORMAT_GGUF };
		char dist[64];
		snprintf(dist, sizeof(dist), "%.*s", (int)(strlen(order[first]) - 5), order[first]);
		w.dist = dist;
		check(list, n - first, NULL, &w);
	}
	/* The first preferred name in list order counts, not in the path. */
	struct want w = { .primary = "m-Q8_0-Q4_K_M.gguf", .files = FILES("m-Q8_0-Q4_K_M.gguf"),
			  .dist = "m-Q8_0-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "m-Q4_K_S.gguf", "m-Q8_0-Q4_K_M.gguf");
	/* With a selector: ties in a rank are broken by the score, then path. */
	struct want ws = { .primary = "z/Qwen-UD-Q4_K_M.gguf", .files = FILES("z/Qwen-UD-Q4_K_M.gguf"),
			   .dist = "Qwen-UD-Q4_K_M", .format = MFS_FORMAT_GGUF };
	CHECK("UD", &ws, "a/Qwen-UD-Q6_K.gguf", "z/Qwen-UD-Q4_K_M.gguf", "b/Qwen-UD-Q8_0.gguf");
}

/* ---- split sets ---------------------------------------------------------- */

static void test_split_set_membership(void **state)
{
	/* Same prefix (directory included), same total, same extension only. */
	struct want w = { .primary = "a/m-Q4_K_M-00001-of-00002.gguf",
			  .files = FILES("a/m-Q4_K_M-00001-of-00002.gguf", "a/m-Q4_K_M-00002-of-00002.gguf"),
			  .dist = "m-Q4_K_M", .format = MFS_FORMAT_GGUF, .split = 2 };
	CHECK("Q4_K_M", &w, "a/m-Q4_K_M-00001-of-00002.gguf", "a/m-Q4_K_M-00002-of-00002.gguf",
	      "b/m-Q4_K_M-00002-of-00002.gguf", "a/m-Q4_K_M-00002-of-00003.gguf",
	      "a/m-Q4_K_M-00002-of-00002.safetensors", "a/n-Q4_K_M-00002-of-00002.gguf",
	      "a/m-Q4_K_M-00002-of-00002.gguf.sha256");
}

static void test_split_missing_shard(void **state)
{
	struct want w = { .primary = "m-Q4_K_M-00001-of-00004.gguf", .rc = -ENOENT,
			  .msg_exact = true,
			  .msg = "split model 'm-Q4_K_M-00001-of-00004.gguf' is missing shard "
				 "'m-Q4_K_M-00002-of-00004.gguf' (1 of 4 missing) in repository" };
	CHECK("Q4_K_M", &w, "m-Q4_K_M-00004-of-00004.gguf", "m-Q4_K_M-00001-of-00004.gguf",
	      "m-Q4_K_M-00003-of-00004.gguf");
	/* The last shard missing. */
	struct want wl = { .primary = "d/m-00001-of-00003.safetensors", .rc = -ENOENT,
			   .msg = "missing shard 'd/m-00003-of-00003.safetensors' (1 of 3 missing)" };
	CHECK(NULL, &wl, "d/m-00001-of-00003.safetensors", "d/m-00002-of-00003.safetensors");
	/* Shard 1 missing: the ranking lands on shard 2, which names shard 1. */
	struct want w1 = { .primary = "m-Q4_K_M-00002-of-00003.gguf", .rc = -ENOENT,
			   .msg = "missing shard 'm-Q4_K_M-00001-of-00003.gguf'" };
	CHECK("Q4_K_M", &w1, "m-Q4_K_M-00003-of-00003.gguf", "m-Q4_K_M-00002-of-00003.gguf");
}

static void test_split_bad_numbers(void **state)
{
	struct want w = { .primary = "m-Q4_K_M-00001-of-00002.gguf", .rc = -EINVAL,
			  .msg = "shard 'm-Q4_K_M-00003-of-00002.gguf' is numbered outside 1..2" };
	CHECK("Q4_K_M", &w, "m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf",
	      "m-Q4_K_M-00003-of-00002.gguf");
	struct want w0 = { .primary = "m-00000-of-00000.gguf", .rc = -EINVAL,
			   .msg = "shard 'm-00000-of-00000.gguf' is numbered outside 1..0" };
	CHECK("m-00000-of-00000.gguf", &w0, "m-00000-of-00000.gguf");
}

static void test_split_duplicates_count_once(void **state)
{
	struct want w = { .primary = "m-00001-of-00002.gguf",
			  .files = FILES("m-00001-of-00002.gguf", "m-00002-of-00002.gguf"),
			  .dist = "m", .format = MFS_FORMAT_GGUF, .split = 2 };
	CHECK(NULL, &w, "m-00002-of-00002.gguf", "m-00001-of-00002.gguf", "m-00002-of-00002.gguf",
	      "m-00001-of-00002.gguf");

	const char *const list[] = { "b-Q4_K_M.gguf", "a-Q4_K_M.gguf", "a-Q4_K_M.gguf" };
	size_t idx;
	assert_int_equal(mfs_select_primary(list, 3, NULL, &idx, NULL), 0);
	assert_int_equal(idx, 1);
}

static void test_long_listing_order_independent(void **state)
{
	/* 40 paths: rotations and reversal, plus a full-set split of 12 shards. */
	const char *list[40];
	char buf[40][64];
	size_t n = 0;
	for (unsigned i = 1; i <= 12; i++, n++) {
		snprintf(buf[n], sizeof(buf[n]), "Q8_0/big-Q8_0-%05u-of-00012.gguf", i);
		list[n] = buf[n];
	}
	for (unsigned i = 0; i < 20; i++, n++) {
		snprintf(buf[n], sizeof(buf[n]), "misc/file-%02u.json", i);
		list[n] = buf[n];
	}
	static const char *const extra[] = { "small-Q4_K_S.gguf", "small-Q8_0.gguf",
					     "small-BF16.gguf", "mmproj-Q4_K_M.gguf",
					     "README.md", "Q4_K_M/x-00002-of-00002.gguf",
					     "config.json", "small-IQ2_XS.gguf" };
	for (size_t i = 0; i < NELEM(extra); i++)
		list[n++] = extra[i];
	assert_int_equal(n, 40);

	/* Default: the split set's first shard scores 0 and outranks the rest. */
	const char *shards[13];
	for (size_t i = 0; i < 12; i++)
		shards[i] = buf[i];
	shards[12] = NULL;
	struct want w = { .primary = buf[0], .files = shards, .dist = "big-Q8_0",
			  .format = MFS_FORMAT_GGUF, .split = 12 };
	check(list, n, NULL, &w);
	struct want wq = { .primary = "small-Q4_K_S.gguf", .files = FILES("small-Q4_K_S.gguf"),
			   .dist = "small-Q4_K_S", .format = MFS_FORMAT_GGUF };
	check(list + 12, n - 12, NULL, &wq);
	check(list, n, "Q8_0", &w);
}

/* ---- unsafe listing entries ------------------------------------------------ */

static void test_unsafe_paths_ignored(void **state)
{
	struct want w = { .primary = "ok-Q8_0.gguf", .files = FILES("ok-Q8_0.gguf"),
			  .dist = "ok-Q8_0", .format = MFS_FORMAT_GGUF };
	CHECK(NULL, &w, "../evil-Q4_K_M.gguf", "/abs/Q4_K_M.gguf", "a//b-Q4_K_M.gguf",
	      "a/./c-Q4_K_M.gguf", "x\x01-Q4_K_M.gguf", "w\\d-Q4_K_M.gguf", "ok-Q8_0.gguf");
	CHECK(NULL, &w, NULL, "ok-Q8_0.gguf", "d/-Q4_K_M.gguf/");
	/* An unsafe shard never joins a set. */
	struct want ws = { .primary = "m-00001-of-00002.gguf", .rc = -ENOENT,
			   .msg = "missing shard 'm-00002-of-00002.gguf'" };
	CHECK(NULL, &ws, "m-00001-of-00002.gguf", "./m-00002-of-00002.gguf");
}

/* ---- helpers ------------------------------------------------------------- */

static void test_format_from_path(void **state)
{
	assert_int_equal(mfs_format_from_path("a/m.gguf"), MFS_FORMAT_GGUF);
	assert_int_equal(mfs_format_from_path("m.safetensors"), MFS_FORMAT_SAFETENSORS);
	assert_int_equal(mfs_format_from_path("model.safetensors.index.json"), MFS_FORMAT_SAFETENSORS);
	assert_int_equal(mfs_format_from_path("m.GGUF"), MFS_FORMAT_UNKNOWN);
	assert_int_equal(mfs_format_from_path("m.index.json"), MFS_FORMAT_UNKNOWN);
	assert_int_equal(mfs_format_from_path("README.md"), MFS_FORMAT_UNKNOWN);
	assert_int_equal(mfs_format_from_path("gguf"), MFS_FORMAT_UNKNOWN);
	assert_int_equal(mfs_format_from_path(NULL), MFS_FORMAT_UNKNOWN);
	assert_string_equal(mfs_format_name(MFS_FORMAT_GGUF), "gguf");
	assert_string_equal(mfs_format_name(MFS_FORMAT_SAFETENSORS), "safetensors");
	assert_string_equal(mfs_format_name(MFS_FORMAT_UNKNOWN), "unknown");
	assert_string_equal(mfs_format_name((enum mfs_format)42), "unknown");
}

static void expect_dist(const char *path, const char *want)
{
	char *d = mfs_distribution_id(path);
	assert_non_null(d);
	assert_string_equal(d, want);
	free(d);
}

static void test_distribution_id(void **state)
{
	/* facts.md's example, and mesh-llm's. */
	expect_dist("UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00006.gguf", "GLM-5.1-UD-IQ2_M");
	expect_dist("GLM-5.1-UD-IQ2_M-00001-of-00006.gguf", "GLM-5.1-UD-IQ2_M");
	expect_dist("Qwen3-30B-A3B-Q4_K_M.gguf", "Qwen3-30B-A3B-Q4_K_M");
	expect_dist("Model-Q4_K_M.gguf", "Model-Q4_K_M");
	expect_dist("model-00001-of-00048.safetensors", "model");
	expect_dist("sub/model.safetensors", "model");
	expect_dist("model.safetensors.index.json", "model.safetensors.index.json");
	expect_dist("README.md", "README.md");
	/* Shard suffix needs five digits on both sides. */
	expect_dist("m-0001-of-00002.gguf", "m-0001-of-00002");
	expect_dist("m-00001-of-0002.gguf", "m-00001-of-0002");
	expect_dist("m-00001-Of-00002.gguf", "m-00001-Of-00002");
	expect_dist("m-00002-of-00009.gguf", "m");
	expect_dist("x-of-y-00001-of-00002.gguf", "x-of-y");
	expect_dist(".gguf", "");
	assert_null(mfs_distribution_id(NULL));
	/* mfs_select refuses an empty one. */
	const char *const list[] = { ".gguf" };
	struct mfs_selection s;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_select(list, 1, NULL, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'.gguf' has an empty name"));
}

static void test_canonical_ref(void **state)
{
	char *c = mfs_canonical_ref("org", "repo", "abc123", "model.gguf");
	assert_string_equal(c, "org/repo@abc123/model.gguf");
	free(c);
	c = mfs_canonical_ref("unsloth", "GLM-5.1-GGUF", "0123456789abcdef0123456789abcdef01234567",
			      "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00006.gguf");
	assert_string_equal(c, "unsloth/GLM-5.1-GGUF@0123456789abcdef0123456789abcdef01234567/"
			       "UD-IQ2_M/GLM-5.1-UD-IQ2_M-00001-of-00006.gguf");
	free(c);
	assert_null(mfs_canonical_ref(NULL, "r", "c", "p"));
	assert_null(mfs_canonical_ref("o", "r", "c", NULL));
}

static void test_path_is_safe(void **state)
{
	static const char *const good[] = { "a", "model.gguf", "a/b/c.gguf", "a/.hidden",
					    "..a", "a..", "a/...", ".gguf", "UD-IQ2_M/x y.gguf",
					    "caf\xc3\xa9.gguf" };
	for (size_t i = 0; i < NELEM(good); i++)
		if (!mfs_path_is_safe(good[i]))
			fail_msg("'%s' should be safe", good[i]);
	static const char *const bad[] = { "", "/abs", "/", "..", "../x", "a/../b", "a/..",
					   ".", "./a", "a/./b", "a/.", "a//b", "a/", "//a",
					   "a\\b", "a\x01" "b", "a\x1f", "a\x7f" "b", "a\tb",
					   "a\nb", "\x1b[31m.gguf" };
	for (size_t i = 0; i < NELEM(bad); i++)
		if (mfs_path_is_safe(bad[i]))
			fail_msg("bad[%zu] should be unsafe", i);
	assert_false(mfs_path_is_safe(NULL));

	/* 1024 bytes in components of at most 255 bytes: the longest safe path. */
	char p[MFS_PATH_MAX + 2];
	memset(p, 'a', sizeof(p));
	for (size_t i = 200; i < MFS_PATH_MAX; i += 201)
		p[i] = '/';
	p[MFS_PATH_MAX] = '\0';
	assert_true(mfs_path_is_safe(p));
	p[MFS_PATH_MAX] = 'a';
	p[MFS_PATH_MAX + 1] = '\0';
	assert_false(mfs_path_is_safe(p));
}

/* Issue 9 finding 19: a component longer than NAME_MAX, the usual unsafe
 * names, each refused by mfs_path_check with the rule it breaks. */
static void test_path_check_reasons(void **state)
{
	(void)state;
	char name[300];
	memset(name, 'n', sizeof(name));
	name[255] = '\0';
	assert_true(mfs_path_is_safe(name));
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_path_check(name, &err), 0);
	name[255] = 'n';
	name[256] = '\0';
	assert_false(mfs_path_is_safe(name));
	assert_int_equal(mfs_path_check(name, &err), -EINVAL);
	assert_int_equal(err.kind, MFS_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "longer than 255 bytes"));
	static const struct { const char *p, *why; } cases[] = {
		{ "", "empty" },
		{ "/etc/passwd", "absolute" },
		{ "a/../b", "'..'" },
		{ "./a", "'.'" },
		{ "a//b", "empty component" },
		{ "a/", "empty component" },
		{ "a\\b", "backslash" },
		{ "\x1b]0;pwned\x07.gguf", "control character" },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		memset(&err, 0, sizeof(err));
		if (mfs_path_check(cases[i].p, &err) != -EINVAL || !strstr(err.msg, cases[i].why))
			fail_msg("case %zu: '%s'", i, err.msg);
		/* The message never carries the raw control bytes. */
		for (const char *c = err.msg; *c; c++)
			assert_true((unsigned char)*c >= 0x20 && *c != 0x7f);
	}
}

/* Issue 9 finding 19: "m.gguf" and "m.gguf/n.gguf" in one listing. */
static void test_paths_check_tree(void **state)
{
	(void)state;
	struct mfs_err err = { 0 };
	const char *ok[] = { "m.gguf", "m.gguf-x/n", "m.gguf.d/n", "m/n.gguf", "m.gguf",
			     NULL, "../x" };
	assert_int_equal(mfs_paths_check_tree(ok, NELEM(ok), &err), 0);
	assert_int_equal(mfs_paths_check_tree(NULL, 0, &err), 0);
	const char *bad[] = { "z.gguf", "m.gguf/n.gguf", "m.gguf!", "m.gguf" };
	assert_int_equal(mfs_paths_check_tree(bad, NELEM(bad), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'m.gguf' is listed both as a file and as the directory "
					 "of 'm.gguf/n.gguf'"));
	const char *deep[] = { "a/b/c/d", "a/b" };
	assert_int_equal(mfs_paths_check_tree(deep, NELEM(deep), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'a/b'"));
}

static void test_selection_release(void **state)
{
	mfs_selection_release(NULL);
	struct mfs_selection z = { 0 };
	mfs_selection_release(&z);
	const char *const list[] = { "m-00002-of-00002.gguf", "m-00001-of-00002.gguf" };
	struct mfs_selection s;
	assert_int_equal(mfs_select(list, 2, NULL, &s, NULL), 0);
	mfs_selection_release(&s);
	mfs_selection_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_quant_selector),
		cmocka_unit_test(test_conf_split_gguf_selector),
		cmocka_unit_test(test_conf_path_order_breaks_ties),
		cmocka_unit_test(test_conf_exact_name_is_rank_0),
		cmocka_unit_test(test_conf_safetensors_shard_selector),
		cmocka_unit_test(test_conf_default_prefers_q4_k_m_skips_mmproj),
		cmocka_unit_test(test_conf_default_prefers_model_safetensors),
		cmocka_unit_test(test_conf_default_equal_scores_path_order),
		cmocka_unit_test(test_conf_score_is_case_sensitive),
		cmocka_unit_test(test_conf_no_match_error_text),
		cmocka_unit_test(test_no_supported_files_error_text),
		cmocka_unit_test(test_selector_rank_order),
		cmocka_unit_test(test_selector_quant_like_forms),
		cmocka_unit_test(test_selector_rank0_path_names_later_shard),
		cmocka_unit_test(test_selector_index_json_primary),
		cmocka_unit_test(test_selector_unsupported_format),
		cmocka_unit_test(test_selector_bad_arguments),
		cmocka_unit_test(test_default_rank_order),
		cmocka_unit_test(test_default_split_gguf),
		cmocka_unit_test(test_default_exclusions),
		cmocka_unit_test(test_preference_score_order),
		cmocka_unit_test(test_split_set_membership),
		cmocka_unit_test(test_split_missing_shard),
		cmocka_unit_test(test_split_bad_numbers),
		cmocka_unit_test(test_split_duplicates_count_once),
		cmocka_unit_test(test_long_listing_order_independent),
		cmocka_unit_test(test_unsafe_paths_ignored),
		cmocka_unit_test(test_format_from_path),
		cmocka_unit_test(test_distribution_id),
		cmocka_unit_test(test_canonical_ref),
		cmocka_unit_test(test_path_is_safe),
		cmocka_unit_test(test_path_check_reasons),
		cmocka_unit_test(test_paths_check_tree),
		cmocka_unit_test(test_selection_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
