/*
 * fuzz_ref.c - libFuzzer target for model refs (core/ref.c).
 *
 * The input, up to its first NUL, is a ref as a user would type it. The
 * property (issue 9 finding 15): for every accepted ref, its display form
 * parses again, to the same ref, and displays the same; no accepted
 * component holds a control character or bytes that are not UTF-8, nor
 * whitespace (a selector: none at its ends).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "ref.h"
#include "text.h"

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Valid UTF-8 without controls; no space at all, or (a selector, which may
 * name a file with a space) none at either end. */
static void check_name(const char *s, int inner_space)
{
	if (!s)
		return;
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);
	FUZZ_CHECK(n > 0 && mfs_utf8_is_valid(s, n));
	FUZZ_CHECK(s[0] != ' ' && s[n - 1] != ' ');
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = mfs_utf8_char(u + i, n - i, &cp);
		FUZZ_CHECK(k && !mfs_text_cp_is_control(cp) && (inner_space || cp != ' '));
		i += k;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	struct mfs_ref r, r2;
	struct mfs_err err = { 0 };
	int rc = mfs_ref_parse(text, &r, &err);
	free(text);
	if (rc) {
		FUZZ_CHECK(rc < 0 && err.msg[0]);
		return 0;
	}
	check_name(r.org, 0);
	check_name(r.repo, 0);
	check_name(r.revision, 0);
	check_name(r.selector, 1);
	char *d = mfs_ref_display(&r);
	FUZZ_CHECK(d != NULL);
	rc = mfs_ref_parse(d, &r2, &err);
	if (rc)
		fprintf(stderr, "display form '%s' does not parse: %s\n", d, err.msg);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(same(r.org, r2.org) && same(r.repo, r2.repo) &&
		   same(r.revision, r2.revision) && same(r.selector, r2.selector));
	char *d2 = mfs_ref_display(&r2);
	FUZZ_CHECK(d2 && !strcmp(d, d2));
	free(d2);
	free(d);
	mfs_ref_release(&r2);
	mfs_ref_release(&r);
	return 0;
}
