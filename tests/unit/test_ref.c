/*
 * test_ref.c - model ref parsing (core/ref.c) against facts.md §3.
 *
 * Every example in facts.md's grammar paragraph is here, valid and invalid,
 * plus mesh-llm's own ref tests and the places where modelfs is stricter.
 * Every valid ref is also checked to survive display -> parse unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
}

/* Parses text and checks every field and the display form, then that the
 * display form parses back to the same ref. */
static void expect_ok(const char *text, const char *org, const char *repo, const char *rev,
		      const char *sel, const char *display)
{
	struct mfs_ref r, again;
	struct mfs_err err = { 0 };
	int rc = mfs_ref_parse(text, &r, &err);
	if (rc != 0)
		fail_msg("'%s' should parse, got %d: %s", text, rc, err.msg);
	assert_string_equal(r.org, org);
	assert_string_equal(r.repo, repo);
	assert_str_or_null(r.revision, rev);
	assert_str_or_null(r.selector, sel);
	char *d = mfs_ref_display(&r);
	assert_non_null(d);
	assert_string_equal(d, display);

	assert_int_equal(mfs_ref_parse(d, &again, NULL), 0);
	assert_string_equal(again.org, r.org);
	assert_string_equal(again.repo, r.repo);
	assert_str_or_null(again.revision, r.revision);
	assert_str_or_null(again.selector, r.selector);
	mfs_ref_release(&again);
	free(d);
	mfs_ref_release(&r);
	assert_null(r.org);
	assert_null(r.repo);
}

/* Expects -EINVAL, a parse error whose message names the expected forms and
 * contains why (when given); *out must stay untouched. */
static void expect_err(const char *text, const char *why)
{
	struct mfs_ref sentinel = { .org = (char *)"untouched" };
	struct mfs_ref r = sentinel;
	struct mfs_err err = { 0 };
	int rc = mfs_ref_parse(text, &r, &err);
	if (rc != -EINVAL)
		fail_msg("'%s' should be refused, got %d", text ? text : "(null)", rc);
	assert_int_equal(err.code, -EINVAL);
	assert_int_equal(err.kind, MFS_ERR_PARSE);
	assert_non_null(err.file);
	assert_true(err.line > 0);
	assert_ptr_equal(r.org, sentinel.org);
	assert_null(r.repo);
	if (!strstr(err.msg, "expected org/repo, org/repo:SELECTOR, "
			     "org/repo@REVISION[:SELECTOR] or "
			     "https://huggingface.co/org/repo[/tree/REVISION]"))
		fail_msg("message for '%s' does not name the forms: %s", text, err.msg);
	if (why && !strstr(err.msg, why))
		fail_msg("message for '%s' lacks '%s': %s", text, why, err.msg);
	/* NULL error struct is allowed. */
	assert_int_equal(mfs_ref_parse(text, &r, NULL), -EINVAL);
}

/*
 * The property of finding 15, over many refs: for every text the parser
 * accepts, the display form parses to the same ref and displays the same.
 * The texts are random sequences of pieces chosen to hit the grammar's
 * corners (separators, white space of several kinds, URL prefixes, percent
 * escapes, dots, controls, non-ASCII); a fixed seed keeps it reproducible.
 * (tests/fuzz/fuzz_ref.c checks the same property on fuzzed bytes.)
 */
static void test_property_display_parses_back(void **state)
{
	(void)state;
	static const char *const pieces[] = {
		"o", "r", "x", "/", "/", "@", "@", ":", ":", " ", "\t", "\xc2\xa0",
		"\xe3\x80\x80", "\xe2\x80\xa8", "%20", "%2F", "%41", "%", "https://huggingface.co/",
		"http://huggingface.co/", "tree/", "main", "Q4_K_M", "..", ".", "x y", "\xc3\xa9",
		"\x1b", "\xc2\x85", "\xff", "?q", "#f", "-00001-of-00002.gguf", "refs/pr/1",
	};
	const size_t np = sizeof(pieces) / sizeof(pieces[0]);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	size_t accepted = 0;
	for (int iter = 0; iter < 200000; iter++) {
		char text[256] = "";
		size_t len = 0;
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		int k = 1 + (int)((seed >> 33) % 9);
		/* Most accepted refs start "org/": give half the texts that start. */
		if (iter & 1) {
			memcpy(text, "org/", 5);
			len = 4;
		}
		for (int j = 0; j < k; j++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			const char *p = pieces[(seed >> 33) % np];
			size_t pl = strlen(p);
			if (len + pl + 1 > sizeof(text))
				break;
			memcpy(text + len, p, pl + 1);
			len += pl;
		}
		struct mfs_ref r, again;
		if (mfs_ref_parse(text, &r, NULL) != 0)
			continue;
		accepted++;
		char *d = mfs_ref_display(&r);
		assert_non_null(d);
		struct mfs_err err = { 0 };
		if (mfs_ref_parse(d, &again, &err) != 0)
			fail_msg("'%s' parsed, its display form '%s' does not: %s", text, d, err.msg);
		if (strcmp(again.org, r.org) || strcmp(again.repo, r.repo) ||
		    !!again.revision != !!r.revision || !!again.selector != !!r.selector ||
		    (r.revision && strcmp(again.revision, r.revision)) ||
		    (r.selector && strcmp(again.selector, r.selector)))
			fail_msg("'%s' -> '%s' parses to another ref", text, d);
		char *d2 = mfs_ref_display(&again);
		assert_string_equal(d, d2);
		free(d2);
		free(d);
		mfs_ref_release(&again);
		mfs_ref_release(&r);
	}
	/* The generator must reach the accepting side often enough to mean
	 * something. */
	if (accepted < 5000)
		fail_msg("only %zu of 200000 generated refs were accepted", accepted);
}

/* ---- facts.md §3 grammar examples ------------------------------------- */

static void test_facts_selector_then_revision(void **state)
{
	/* "org/repo:Q4_K_M@abc123 -> org/repo@abc123:Q4_K_M" */
	expect_ok("org/repo:Q4_K_M@abc123", "org", "repo", "abc123", "Q4_K_M",
		  "org/repo@abc123:Q4_K_M");
	expect_ok("org/repo@abc123:Q4_K_M", "org", "repo", "abc123", "Q4_K_M",
		  "org/repo@abc123:Q4_K_M");
}

static void test_facts_revision_takes_the_rest(void **state)
{
	/* "org/repo@main/file.gguf -> revision main/file.gguf" */
	expect_ok("org/repo@main/file.gguf", "org", "repo", "main/file.gguf", NULL,
		  "org/repo@main/file.gguf");
}

static void test_facts_errors(void **state)
{
	expect_err("org/repo/file.gguf", "has a '/'");
	expect_err("repo-only", "no '/'");
	expect_err("org/", "empty repository name");
	expect_err("org/repo:", "empty selector");
	expect_err("org/repo@:Q4", "empty revision");
	expect_err("https://huggingface.co/org/repo/resolve/main/file.gguf", "file URL");
	expect_err("http://huggingface.co/org/repo/resolve/main/file.gguf", "file URL");
}

static void test_facts_empty_and_trim(void **state)
{
	struct mfs_ref r;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_ref_parse("", &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty model ref"));
	assert_non_null(strstr(err.msg, "expected org/repo"));
	assert_int_equal(mfs_ref_parse(" \t\r\n ", &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty model ref"));
	assert_int_equal(mfs_ref_parse(NULL, &r, &err), -EINVAL);

	expect_ok("  org/repo:Q4_K_M \t\n", "org", "repo", NULL, "Q4_K_M", "org/repo:Q4_K_M");
	/* Unicode White_Space, as Rust's trim: NBSP, ideographic space, U+2003, U+0085. */
	expect_ok("\xc2\xa0org/repo\xe3\x80\x80", "org", "repo", NULL, NULL, "org/repo");
	expect_ok("\xe2\x80\x83\xc2\x85org/repo@v1\xe2\x80\xa8", "org", "repo", "v1", NULL,
		  "org/repo@v1");
	/* Inner white space in a selector is kept (selectors name files). */
	expect_ok("org/repo:my model", "org", "repo", NULL, "my model", "org/repo:my model");
}

/* Issue 9 finding 15: whitespace inside names was kept, so printing and
 * re-parsing a ref gave another ref ("org/repo:sel @rev" has selector
 * "sel " and displays as "org/repo@rev:sel ", which trims to "sel"). */
static void test_whitespace_in_names_refused(void **state)
{
	(void)state;
	expect_err("org/repo:sel @rev", "the selector contains whitespace at its start or end");
	expect_err("org/repo: sel", "the selector contains whitespace at its start or end");
	expect_err("org/repo:sel\xc2\xa0@main", "selector contains whitespace");
	expect_err("org/re po", "the repository name contains whitespace");
	expect_err("org/repo @main", "the repository name contains whitespace");
	expect_err("or g/repo", "the organisation contains whitespace");
	expect_err("org/repo@ma in", "the revision contains whitespace");
	expect_err("org/repo@main :Q4", "the revision contains whitespace");
	expect_err("org/repo@v1\xe3\x80\x80:Q4", "the revision contains whitespace");
	expect_err("https://huggingface.co/org/repo/tree/a%20b", "the revision contains whitespace");
	expect_err("https://huggingface.co/org/repo/tree/a%C2%A0b", "revision contains whitespace");
	/* C1 and bidirectional controls, and bytes that are not UTF-8. */
	expect_err("org/repo:Q4\xc2\x9b" "31m", "the selector contains a control character");
	expect_err("org/repo:evil\xe2\x80\xae" "fdp", "control character");
	expect_err("org/re\xffpo", "the repository name contains bytes that are not UTF-8");
	expect_err("https://huggingface.co/org/repo/tree/a%FFb", "not UTF-8");
}

static void test_facts_component_rules(void **state)
{
	/* Split at the first '/': org non-empty, no ':'. */
	expect_err("/repo", "empty organisation");
	expect_err("org:x/repo", "has a ':'");
	expect_err(":Q4_K_M", "no '/'");
	/* The repo part has no '/'; present components are non-empty. */
	expect_err("org/:Q4_K_M", "empty repository name");
	expect_err("org/@main", "empty repository name");
	expect_err("org/repo@", "empty revision");
	expect_err("org/repo:Q4@", "empty revision");
	expect_err("org/repo:@main", "empty selector");
	expect_err("org/repo@main:", "empty selector");
	expect_err("org//repo", "has a '/'");
	expect_err("org/repo/", "has a '/'");
	/* The first '@' and first ':' split; the rest belongs to the last part. */
	expect_ok("org/repo@rev:sel:x", "org", "repo", "rev", "sel:x", "org/repo@rev:sel:x");
	expect_ok("org/repo@a@b", "org", "repo", "a@b", NULL, "org/repo@a@b");
	expect_ok("org/repo:sel@rev@x", "org", "repo", "rev@x", "sel", "org/repo@rev@x:sel");
	expect_ok("org/repo@rev:s@x", "org", "repo", "rev", "s@x", "org/repo@rev:s@x");
	expect_ok("org/repo:UD-IQ2_M/GLM-5.1.gguf", "org", "repo", NULL, "UD-IQ2_M/GLM-5.1.gguf",
		  "org/repo:UD-IQ2_M/GLM-5.1.gguf");
	expect_ok("org/repo:sel/x@refs/pr/1", "org", "repo", "refs/pr/1", "sel/x",
		  "org/repo@refs/pr/1:sel/x");
	expect_ok("org/repo", "org", "repo", NULL, NULL, "org/repo");
	expect_ok("org/repo:Q4_K_M", "org", "repo", NULL, "Q4_K_M", "org/repo:Q4_K_M");
	expect_ok("org/repo@0123456789abcdef0123456789abcdef01234567", "org", "repo",
		  "0123456789abcdef0123456789abcdef01234567", NULL,
		  "org/repo@0123456789abcdef0123456789abcdef01234567");
	expect_ok("unsloth/GLM-5.1-GGUF:UD-IQ2_M", "unsloth", "GLM-5.1-GGUF", NULL, "UD-IQ2_M",
		  "unsloth/GLM-5.1-GGUF:UD-IQ2_M");
}

/* ---- URLs -------------------------------------------------------------- */

static void test_url_forms(void **state)
{
	expect_ok("https://huggingface.co/org/repo", "org", "repo", NULL, NULL, "org/repo");
	expect_ok("http://huggingface.co/org/repo", "org", "repo", NULL, NULL, "org/repo");
	expect_ok("https://huggingface.co/org/repo/tree/main", "org", "repo", "main", NULL,
		  "org/repo@main");
	expect_ok("https://huggingface.co/org/repo:BF16", "org", "repo", NULL, "BF16",
		  "org/repo:BF16");
	expect_ok("https://huggingface.co/org/repo@v1:Q4_K_M", "org", "repo", "v1", "Q4_K_M",
		  "org/repo@v1:Q4_K_M");
	/* Trailing slashes, query and fragment are dropped. */
	expect_ok("https://huggingface.co/org/repo/", "org", "repo", NULL, NULL, "org/repo");
	expect_ok("https://huggingface.co/org/repo/tree/main/", "org", "repo", "main", NULL,
		  "org/repo@main");
	expect_ok("https://huggingface.co/org/repo?library=gguf#files", "org", "repo", NULL,
		  NULL, "org/repo");
	expect_ok("  https://huggingface.co/org/repo/tree/v2  ", "org", "repo", "v2", NULL,
		  "org/repo@v2");
}

static void test_url_tree_overrides_at(void **state)
{
	/* "a /tree/REV revision overrides @rev" */
	expect_ok("https://huggingface.co/org/repo@v1/tree/main", "org", "repo", "main", NULL,
		  "org/repo@main");
	expect_ok("https://huggingface.co/org/repo:Q4_K_M@v1/tree/dev", "org", "repo", "dev",
		  "Q4_K_M", "org/repo@dev:Q4_K_M");
}

static void test_url_tree_revision_is_decoded(void **state)
{
	expect_ok("https://huggingface.co/org/repo/tree/refs%2Fpr%2F1", "org", "repo",
		  "refs/pr/1", NULL, "org/repo@refs/pr/1");
	expect_ok("https://huggingface.co/org/repo/tree/refs%2fpr%2f7", "org", "repo",
		  "refs/pr/7", NULL, "org/repo@refs/pr/7");
	expect_err("https://huggingface.co/org/repo/tree/a%2", "percent-escape");
	expect_err("https://huggingface.co/org/repo/tree/a%zz", "percent-escape");
	expect_err("https://huggingface.co/org/repo/tree/%", "percent-escape");
	expect_err("https://huggingface.co/org/repo/tree/a%00b", "percent-escape");
	expect_err("https://huggingface.co/org/repo/tree/a%3Ab", "cannot contain ':'");
}

static void test_url_errors(void **state)
{
	expect_err("https://huggingface.co/", "/org/repo");
	expect_err("https://huggingface.co/org", "/org/repo");
	expect_err("https://huggingface.co/org/repo/blob/main/x.gguf", "file URL");
	expect_err("https://huggingface.co/org/repo/tree/", "/org/repo/tree/REVISION");
	expect_err("https://huggingface.co/org/repo/tree/main/subdir", "at most");
	expect_err("https://huggingface.co/org/repo/discussions", "/org/repo/tree/REVISION");
	expect_err("https://huggingface.co/datasets/org/repo", "/org/repo/tree/REVISION");
	expect_err("https://huggingface.co/org//repo", NULL);
	expect_err("https://huggingface.co/org/repo:", "empty selector");
	expect_err("https://huggingface.co/org/repo@/tree/main", "empty revision");
	/* The prefix is case-sensitive and exact: anything else is an org with ':'. */
	expect_err("HTTPS://huggingface.co/org/repo", "has a ':'");
	expect_err("https://HuggingFace.co/org/repo", "has a ':'");
	expect_err("https://hf.co/org/repo", "has a ':'");
	expect_err("https://huggingface.co.evil/org/repo", "has a ':'");
	expect_err("ftp://huggingface.co/org/repo", "has a ':'");
}

/* ---- modelfs strictness ------------------------------------------------- */

static void test_control_characters_refused(void **state)
{
	expect_err("org/re\x01po", "control character");
	expect_err("org/repo:Q4\x7f", "control character");
	expect_err("org/repo:a\tb", "control character");
	expect_err("org/repo@ma\nin", "control character");
}

static void test_dot_names_refused(void **state)
{
	expect_err("../repo", "'.' and '..'");
	expect_err("./repo", "'.' and '..'");
	expect_err("org/..", "'.' and '..'");
	expect_err("org/.:Q4", "'.' and '..'");
	expect_err("https://huggingface.co/../etc", "'.' and '..'");
	expect_ok("org/.hidden", "org", ".hidden", NULL, NULL, "org/.hidden");
	expect_ok("org/...", "org", "...", NULL, NULL, "org/...");
}

static void test_revision_with_colon_refused(void **state)
{
	/* mesh-llm would read revision "re:v", which displays as another ref. */
	expect_err("org/repo:sel@re:v", "cannot contain ':'");
}

static void test_error_quotes_input(void **state)
{
	struct mfs_ref r;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_ref_parse("  repo-only  ", &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "invalid model ref 'repo-only'"));
	assert_int_equal(mfs_ref_parse("org/re\x01po", &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'org/re?po'"));

	char long_ref[600];
	memset(long_ref, 'x', sizeof(long_ref) - 1);
	long_ref[sizeof(long_ref) - 1] = '\0';
	assert_int_equal(mfs_ref_parse(long_ref, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "xxx...'"));
	assert_non_null(strstr(err.msg, "expected org/repo"));

	/* A cut never splits a UTF-8 character. */
	char utf8[1 + 2 * 300 + 1];
	utf8[0] = 'x';
	for (size_t i = 0; i < 300; i++)
		memcpy(utf8 + 1 + 2 * i, "\xc3\xa9", 2);
	utf8[sizeof(utf8) - 1] = '\0';
	assert_int_equal(mfs_ref_parse(utf8, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "\xc3\xa9...'"));
}

/* ---- display and release ----------------------------------------------- */

static void test_display_forms(void **state)
{
	struct mfs_ref r = { .org = (char *)"o", .repo = (char *)"r" };
	char *d = mfs_ref_display(&r);
	assert_string_equal(d, "o/r");
	free(d);
	r.selector = (char *)"S";
	d = mfs_ref_display(&r);
	assert_string_equal(d, "o/r:S");
	free(d);
	r.revision = (char *)"v";
	d = mfs_ref_display(&r);
	assert_string_equal(d, "o/r@v:S");
	free(d);
	r.selector = NULL;
	d = mfs_ref_display(&r);
	assert_string_equal(d, "o/r@v");
	free(d);
	assert_null(mfs_ref_display(NULL));
	r.org = NULL;
	assert_null(mfs_ref_display(&r));
}

static void test_release_is_idempotent(void **state)
{
	struct mfs_ref r;
	assert_int_equal(mfs_ref_parse("org/repo@v:s", &r, NULL), 0);
	mfs_ref_release(&r);
	mfs_ref_release(&r);
	mfs_ref_release(NULL);
	struct mfs_ref zero = { 0 };
	mfs_ref_release(&zero);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_facts_selector_then_revision),
		cmocka_unit_test(test_facts_revision_takes_the_rest),
		cmocka_unit_test(test_facts_errors),
		cmocka_unit_test(test_facts_empty_and_trim),
		cmocka_unit_test(test_facts_component_rules),
		cmocka_unit_test(test_url_forms),
		cmocka_unit_test(test_url_tree_overrides_at),
		cmocka_unit_test(test_url_tree_revision_is_decoded),
		cmocka_unit_test(test_url_errors),
		cmocka_unit_test(test_control_characters_refused),
		cmocka_unit_test(test_dot_names_refused),
		cmocka_unit_test(test_revision_with_colon_refused),
		cmocka_unit_test(test_error_quotes_input),
		cmocka_unit_test(test_display_forms),
		cmocka_unit_test(test_release_is_idempotent),
		cmocka_unit_test(test_whitespace_in_names_refused),
		cmocka_unit_test(test_property_display_parses_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
