/*
 * test_pin.c - cross-process pins: holds and drops, visibility from another
 * process, rows of a killed process cleared, pid reuse not mistaken for the
 * original process.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "pin.h"
#include "store.h"

struct fixture {
	char dir[64];
	struct mfs_store *store;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/mfs-test-pin-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	struct mfs_err err = { 0 };
	assert_int_equal(mfs_store_open(fx->dir, &fx->store, &err), 0);
	assert_int_equal(mfs_pin_init(fx->store, &err), 0);
	assert_int_equal(mfs_pin_init(fx->store, &err), 0); /* idempotent */
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	mfs_store_close(fx->store);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static int count_cb(void *ctx, const struct mfs_pin *p)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

static int count_pins(struct mfs_store *s)
{
	int n = 0;
	assert_int_equal(mfs_pin_list(s, count_cb, &n, NULL), 0);
	return n;
}

static void test_starttime(void **state)
{
	(void)state;
	uint64_t a = 0, b = 0;
	assert_int_equal(mfs_pin_proc_starttime(getpid(), &a), 0);
	assert_true(a > 0);
	assert_int_equal(mfs_pin_proc_starttime(getpid(), &b), 0);
	assert_true(a == b);
	/* pid 1 started before us */
	assert_int_equal(mfs_pin_proc_starttime(1, &b), 0);
	assert_true(b <= a);
	/* a pid above pid_max does not exist */
	assert_int_equal(mfs_pin_proc_starttime(0x7ffffff0, &b), -ESRCH);
}

static void test_hold_drop(void **state)
{
	struct fixture *fx = *state;
	assert_false(mfs_pin_active(fx->store, 7));
	assert_int_equal(mfs_pin_hold(fx->store, 7, NULL), 0);
	assert_int_equal(mfs_pin_hold(fx->store, 7, NULL), 0);
	assert_true(mfs_pin_active(fx->store, 7));
	assert_false(mfs_pin_active(fx->store, 8));
	assert_int_equal(count_pins(fx->store), 1);
	assert_int_equal(mfs_pin_drop(fx->store, 7, NULL), 0);
	assert_true(mfs_pin_active(fx->store, 7)); /* one hold left */
	assert_int_equal(mfs_pin_drop(fx->store, 7, NULL), 0);
	assert_false(mfs_pin_active(fx->store, 7));
	assert_int_equal(count_pins(fx->store), 0);
	/* dropping what is not held is a no-op */
	assert_int_equal(mfs_pin_drop(fx->store, 7, NULL), 0);
	assert_false(mfs_pin_active(fx->store, 7));
}

/* A child process pins through its own connection; the parent sees the pin;
 * kill -9 of the child leaves the row behind, and the next look clears it. */
static void test_killed_child(void **state)
{
	struct fixture *fx = *state;
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		struct mfs_store *s;
		if (mfs_store_open(fx->dir, &s, NULL) || mfs_pin_init(s, NULL) ||
		    mfs_pin_hold(s, 42, NULL) || mfs_pin_mount_register(s, "/mnt/x", NULL))
			_exit(1);
		if (write(ready[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);

	assert_true(mfs_pin_active(fx->store, 42));
	assert_int_equal(count_pins(fx->store), 1);

	assert_int_equal(kill(pid, SIGKILL), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));

	unsigned cleared = 0;
	assert_int_equal(mfs_pin_clear_dead(fx->store, &cleared, NULL), 0);
	assert_int_equal(cleared, 2); /* the pin and the mount row */
	assert_false(mfs_pin_active(fx->store, 42));
	assert_int_equal(count_pins(fx->store), 0);
}

/* A row with a live pid but another start time is a dead process whose pid
 * was reused: it is cleared. A row with our own pid and start time stays. */
static void test_pid_reuse(void **state)
{
	struct fixture *fx = *state;
	uint64_t me;
	assert_int_equal(mfs_pin_proc_starttime(getpid(), &me), 0);
	sqlite3 *db = mfs_store_lock(fx->store);
	char sql[256];
	snprintf(sql, sizeof(sql), "INSERT INTO pins VALUES (5, %ld, %llu, 1)",
		 (long)getpid(), (unsigned long long)me + 12345);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	mfs_store_unlock(fx->store);
	assert_int_equal(mfs_pin_hold(fx->store, 6, NULL), 0);

	assert_false(mfs_pin_active(fx->store, 5));
	assert_true(mfs_pin_active(fx->store, 6));
	assert_int_equal(mfs_pin_drop_all(fx->store, NULL), 0);
	assert_false(mfs_pin_active(fx->store, 6));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starttime),
		cmocka_unit_test_setup_teardown(test_hold_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pid_reuse, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
