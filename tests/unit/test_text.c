/*
 * test_text.c - escaping untrusted strings for terminals (issue 9 finding
 * 17): terminal control sequences, C1 controls, bidirectional overrides and
 * invalid UTF-8 come out as visible \xHH escapes; ordinary text, including
 * non-ASCII letters, comes out unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "text.h"

static void expect(const char *in, size_t n, size_t max, const char *want)
{
	char *got = mfs_text_escape_n(in, n, max);
	assert_non_null(got);
	if (strcmp(got, want))
		fail_msg("escape gave '%s', expected '%s'", got, want);
	/* Whatever the input, the output has no control byte and is UTF-8. */
	for (const unsigned char *c = (const unsigned char *)got; *c; c++)
		assert_true(*c >= 0x20 && *c != 0x7f);
	assert_true(mfs_utf8_is_valid(got, strlen(got)));
	free(got);
}

static void test_plain_text_unchanged(void **state)
{
	(void)state;
	expect("Llama-2 7B", 10, 0, "Llama-2 7B");
	expect("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14, 0,
	       "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80");
	expect("", 0, 0, "");
	char *e = mfs_text_escape(NULL, 0);
	assert_string_equal(e, "");
	free(e);
}

static void test_terminal_sequences_escaped(void **state)
{
	(void)state;
	/* A window-title rewrite, a colour, a clear screen, a newline forging a
	 * second line of output. */
	expect("\x1b]0;owned\x07name", 14, 0, "\\x1b]0;owned\\x07name");
	expect("\x1b[2J\x1b[31mred", 12, 0, "\\x1b[2J\\x1b[31mred");
	expect("a\nverified: yes", 15, 0, "a\\x0averified: yes");
	expect("a\rb\tc\x7f", 6, 0, "a\\x0db\\x09c\\x7f");
	expect("nul\0after", 9, 0, "nul\\x00after");
	/* C1: U+009B is CSI for terminals that take 8-bit controls. */
	expect("\xc2\x9b" "31m", 5, 0, "\\xc2\\x9b31m");
	/* Bidirectional override (U+202E) and a line separator (U+2028). */
	expect("evil\xe2\x80\xae" "fdp.gguf", 15, 0, "evil\\xe2\\x80\\xaefdp.gguf");
	expect("a\xe2\x80\xa8" "b", 5, 0, "a\\xe2\\x80\\xa8b");
	/* A backslash is doubled, so "\x1b" typed literally stays distinguishable. */
	expect("\\x1b", 4, 0, "\\\\x1b");
}

static void test_invalid_utf8_escaped(void **state)
{
	(void)state;
	expect("\xff\xfe", 2, 0, "\\xff\\xfe");
	expect("\xc0\xaf", 2, 0, "\\xc0\\xaf");          /* overlong '/' */
	expect("\xed\xa0\x80", 3, 0, "\\xed\\xa0\\x80"); /* a surrogate */
	expect("\xf4\x90\x80\x80", 4, 0, "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
	expect("ok\xe4\xb8", 4, 0, "ok\\xe4\\xb8");       /* truncated */
	expect("\x80" "a", 2, 0, "\\x80a");               /* stray continuation */
	assert_false(mfs_utf8_is_valid("\xc3", 1));
	assert_true(mfs_utf8_is_valid("\xc3\xa9", 2));
}

static void test_cut(void **state)
{
	(void)state;
	expect("abcdef", 6, 3, "abc...");
	expect("abc", 3, 3, "abc");
	/* A cut never splits a character. */
	expect("ab\xc3\xa9", 4, 3, "ab...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_text_unchanged),
		cmocka_unit_test(test_terminal_sequences_escaped),
		cmocka_unit_test(test_invalid_utf8_escaped),
		cmocka_unit_test(test_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
