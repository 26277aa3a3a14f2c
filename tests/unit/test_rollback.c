/*
 * test_rollback.c - the rollback state (core/rollback.c): ref name
 * normalisation, persistence in rollback.json, monotonicity per (repo, key,
 * ref) and independence between them, refusal of a damaged file, and several
 * processes raising the same state at once.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rollback.h"

#define KEY_A "0123456789abcdef"
#define KEY_B "fedcba9876543210"
#define COMMIT1 "1111111111111111111111111111111111111111"
#define COMMIT2 "2222222222222222222222222222222222222222"

static int setup(void **state)
{
	char *dir = malloc(64);
	assert_non_null(dir);
	snprintf(dir, 64, "/tmp/mfs-test-rollback-XXXXXX");
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	assert_int_equal(system(cmd), 0);
	free(*state);
	return 0;
}

static char *read_all(const char *dir)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/" MFS_ROLLBACK_FILE, dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_state(const char *dir, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/" MFS_ROLLBACK_FILE, dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static uint64_t get(const char *dir, const char *repo, const char *key, const char *rev)
{
	uint64_t seq = 99;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_rollback_get(dir, repo, key, rev, &seq, NULL, &err), 0);
	return seq;
}

static void name_is(const char *rev, const char *want)
{
	char out[MFS_ROLLBACK_REF_MAX + 1];
	assert_int_equal(mfs_rollback_ref_name(rev, out, sizeof(out), NULL), 0);
	assert_string_equal(out, want);
}

static void test_ref_name(void **state)
{
	(void)state;
	name_is(NULL, "main");
	name_is("main", "main");
	name_is("refs/heads/main", "main");
	name_is("refs/tags/v1", "v1");
	name_is("v1", "v1");
	name_is("refs/pr/1", "refs/pr/1");
	name_is("refs/heads/feature/x", "feature/x");
	/* Stripped once: a branch may itself be named "refs/tags/x". */
	name_is("refs/heads/refs/tags/x", "refs/tags/x");
	name_is("refs/headsX", "refs/headsX");

	char out[MFS_ROLLBACK_REF_MAX + 1];
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_rollback_ref_name("refs/heads/", out, sizeof(out), &err), -EINVAL);
	assert_int_equal(mfs_rollback_ref_name("refs/tags/", out, sizeof(out), &err), -EINVAL);
	char longname[MFS_ROLLBACK_REF_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mfs_rollback_ref_name(longname, out, sizeof(out), &err), -ENAMETOOLONG);
	char small[4];
	assert_int_equal(mfs_rollback_ref_name("main", small, sizeof(small), &err), -ENAMETOOLONG);

	assert_true(mfs_rollback_is_moving(NULL));
	assert_true(mfs_rollback_is_moving("main"));
	assert_true(mfs_rollback_is_moving("1234abcd")); /* a short id may move */
	assert_true(mfs_rollback_is_moving(COMMIT1 "1"));
	assert_false(mfs_rollback_is_moving(COMMIT1));
}

static void test_monotonic_and_persistent(void **state)
{
	const char *dir = *state;
	struct mfs_err err = { 0 };
	/* No file: an empty state. */
	assert_int_equal(get(dir, "acme/m", KEY_A, "main"), 0);

	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "refs/heads/main", 2, COMMIT2,
					      &err), 0);
	/* Read back from the file, under every spelling of the ref. */
	assert_int_equal(get(dir, "acme/m", KEY_A, "main"), 2);
	assert_int_equal(get(dir, "acme/m", KEY_A, NULL), 2);
	assert_int_equal(get(dir, "acme/m", KEY_A, "refs/heads/main"), 2);
	char commit[41];
	uint64_t seq = 0;
	assert_int_equal(mfs_rollback_get(dir, "acme/m", KEY_A, "main", &seq, commit, &err), 0);
	assert_string_equal(commit, COMMIT2);

	/* Lower: refused, with the numbers and the way out, and nothing written. */
	char *before = read_all(dir);
	assert_non_null(before);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main", 1, COMMIT1, &err),
			 -EPERM);
	assert_int_equal(err.kind, MFS_ERR_POLICY);
	assert_non_null(strstr(err.msg, "rollback refused"));
	assert_non_null(strstr(err.msg, "sequence 2"));
	assert_non_null(strstr(err.msg, "sequence 1"));
	assert_non_null(strstr(err.msg, "by its commit"));
	char *after = read_all(dir);
	assert_string_equal(before, after);
	free(after);

	/* Equal: accepted, unchanged. Higher: raised. */
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, NULL, 2, COMMIT2, &err), 0);
	after = read_all(dir);
	assert_string_equal(before, after);
	free(after);
	free(before);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main", 3, COMMIT1, &err), 0);
	assert_int_equal(get(dir, "acme/m", KEY_A, "main"), 3);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "refs/heads/main", 2, COMMIT2,
					      &err), -EPERM);

	/* Each of repo, key and ref is its own state. */
	assert_int_equal(get(dir, "acme/m", KEY_B, "main"), 0);
	assert_int_equal(get(dir, "acme/other", KEY_A, "main"), 0);
	assert_int_equal(get(dir, "acme/m", KEY_A, "v1"), 0);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_B, "main", 1, COMMIT1, &err), 0);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "refs/tags/v1", 1, COMMIT1,
					      &err), 0);
	assert_int_equal(get(dir, "acme/m", KEY_A, "v1"), 1);
	assert_int_equal(get(dir, "acme/m", KEY_A, "main"), 3);
	assert_int_equal(get(dir, "acme/m", KEY_B, "main"), 1);

	/* The file is the whole truth: valid JSON naming every entry, no
	 * temporary file left beside it. */
	char *text = read_all(dir);
	assert_non_null(strstr(text, "\"version\": 1"));
	assert_non_null(strstr(text, "\"ref\": \"v1\""));
	assert_null(strstr(text, "refs/tags"));
	free(text);
	DIR *d = opendir(dir);
	struct dirent *de;
	while ((de = readdir(d)))
		assert_null(strstr(de->d_name, ".tmp"));
	closedir(d);
}

static void test_bad_input(void **state)
{
	const char *dir = *state;
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main", 0, COMMIT1, &err),
			 -EINVAL);
	assert_int_equal(mfs_rollback_advance(dir, "nope", KEY_A, "main", 1, COMMIT1, &err),
			 -EINVAL);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", "hub", "main", 1, COMMIT1, &err),
			 -EINVAL);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main",
					      (uint64_t)INT64_MAX + 1, COMMIT1, &err), -EINVAL);

	/* A damaged file is refused as a whole, by reads and by changes,
	 * and a change leaves it as it was. */
	static const char *const damaged[] = {
		"{",
		"[]",
		"{\"version\": 2, \"refs\": []}",
		"{\"version\": 1}",
		"{\"version\": 1, \"refs\": [{\"repo\": \"acme/m\", \"key_id\": \"" KEY_A "\","
		" \"ref\": \"main\", \"sequence\": 0}]}",
		"{\"version\": 1, \"refs\": [{\"repo\": \"acme/m\", \"key_id\": \"xyz\","
		" \"ref\": \"main\", \"sequence\": 4}]}",
		"{\"version\": 1, \"refs\": [{\"repo\": \"acme/m\", \"key_id\": \"" KEY_A "\","
		" \"ref\": \"main\", \"sequence\": \"4\"}]}",
	};
	for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
		write_state(dir, damaged[i]);
		uint64_t seq = 0;
		assert_int_equal(mfs_rollback_get(dir, "acme/m", KEY_A, "main", &seq, NULL, &err),
				 -EINVAL);
		assert_int_equal(err.kind, MFS_ERR_PARSE);
		assert_non_null(strstr(err.msg, "fix or remove it"));
		assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main", 9, COMMIT1, &err),
				 -EINVAL);
		char *text = read_all(dir);
		assert_string_equal(text, damaged[i]);
		free(text);
	}
	/* A hand-written valid file is honoured. */
	write_state(dir, "{\"version\": 1, \"refs\": [{\"repo\": \"acme/m\", \"key_id\": \"" KEY_A
			 "\", \"ref\": \"main\", \"sequence\": 7}]}");
	assert_int_equal(get(dir, "acme/m", KEY_A, "refs/heads/main"), 7);
	assert_int_equal(mfs_rollback_advance(dir, "acme/m", KEY_A, "main", 6, COMMIT1, &err),
			 -EPERM);
}

/* Four processes raise one state in different orders, each ignoring its
 * refusals: the lock makes check and raise one step, so the end state is
 * the highest sequence and no accepted raise ever went below an earlier one. */
static void test_concurrent(void **state)
{
	const char *dir = *state;
	enum { PROCS = 4, STEPS = 40 };
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			uint64_t last = 0;
			for (int i = 0; i < STEPS; i++) {
				uint64_t seq = (uint64_t)((i * 7 + p * 13) % STEPS) + 1;
				struct mfs_err err = { 0 };
				int rc = mfs_rollback_advance(dir, "acme/m", KEY_A, "main", seq, COMMIT1,
							      &err);
				if (rc && rc != -EPERM)
					_exit(2);
				uint64_t now = 0;
				if (mfs_rollback_get(dir, "acme/m", KEY_A, "main", &now, NULL, &err))
					_exit(3);
				if (now < last || (rc == 0 && now < seq))
					_exit(4); /* went down */
				last = now;
			}
			_exit(0);
		}
	}
	for (int p = 0; p < PROCS; p++) {
		int st = 0;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(get(dir, "acme/m", KEY_A, "main"), STEPS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_name),
		cmocka_unit_test_setup_teardown(test_monotonic_and_persistent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
