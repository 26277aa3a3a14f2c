/*
 * test_log.c - the log's rate limit (core/log.c): a message repeated in a
 * loop is shown MFS_LOG_BURST times per window and the rest are summed up
 * in one line, however many come; numbers do not make a message new, other
 * text does; debug lines are never limited. The limiter's state is static,
 * so each test uses its own messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static unsigned n_lines;
static char last[1024];

static void sink(enum mfs_log_level level, const char *msg)
{
	(void)level;
	n_lines++;
	snprintf(last, sizeof(last), "%s", msg);
}

static void reset(void)
{
	mfs_log_setup(sink, MFS_LOG_DEBUG);
	mfs_log_flush(true);
	n_lines = 0;
	last[0] = '\0';
}

static void test_loop_collapsed(void **state)
{
	(void)state;
	reset();
	for (int i = 0; i < 100000; i++)
		mfs_log_error("read of org/m@c/m.gguf at %d (+4096) failed: HTTP 503", i * 4096);
	assert_int_equal(n_lines, MFS_LOG_BURST);
	mfs_log_flush(true);
	assert_int_equal(n_lines, MFS_LOG_BURST + 1);
	char want[128];
	snprintf(want, sizeof(want), "%d similar messages left out", 100000 - MFS_LOG_BURST);
	assert_non_null(strstr(last, want));
	assert_non_null(strstr(last, "HTTP 503"));
	/* Nothing left to say: a second flush is silent. */
	mfs_log_flush(true);
	assert_int_equal(n_lines, MFS_LOG_BURST + 1);
}

static void test_other_text_is_other_key(void **state)
{
	(void)state;
	reset();
	for (int i = 0; i < 50; i++) {
		mfs_log_warning("fetch of '%s' failed", "org/a");
		mfs_log_warning("fetch of '%s' failed", "org/b");
	}
	assert_int_equal(n_lines, 2 * MFS_LOG_BURST);
}

static void test_debug_not_limited(void **state)
{
	(void)state;
	reset();
	for (int i = 0; i < 500; i++)
		mfs_log_debug("request %d", i);
	assert_int_equal(n_lines, 500);
}

static void test_many_keys_bounded(void **state)
{
	(void)state;
	reset();
	/* A hostile server varying its message text: the table is fixed, the
	 * keys that find no slot share one, so output stays bounded. */
	char word[16];
	for (int i = 0; i < 20000; i++) {
		snprintf(word, sizeof(word), "%c%c%c", 'a' + i % 26, 'a' + i / 26 % 26,
			 'a' + i / 676 % 26);
		mfs_log_error("server said '%s'", word);
	}
	assert_true(n_lines < 20000 / 10);
}

static void test_level_filter(void **state)
{
	(void)state;
	mfs_log_setup(sink, MFS_LOG_WARNING);
	n_lines = 0;
	mfs_log_info("not shown");
	assert_int_equal(n_lines, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_collapsed),
		cmocka_unit_test(test_other_text_is_other_key),
		cmocka_unit_test(test_debug_not_limited),
		cmocka_unit_test(test_many_keys_bounded),
		cmocka_unit_test(test_level_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
