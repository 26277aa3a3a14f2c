/*
 * pin.c - cross-process pins (see pin.h).
 *
 * Why pins are rows and not memory: the process that evicts (a `modelfs gc`,
 * the quota logic of another mount) is often not the one that holds the file
 * open. A row written before the open is answered, and removed after the last
 * close, is visible to all of them through the one database they share.
 *
 * Why (pid, starttime): a pid alone names a process only while it lives; after
 * a kill -9 its rows remain, and the pid may be handed to an unrelated process
 * later. The start time in clock ticks since boot is fixed for a process's
 * life and differs between two processes that share a pid, so "the row's
 * process is alive" is exactly "/proc/<pid>/stat exists and shows the same
 * start time". Rows whose process is not alive are deleted by whoever looks at
 * pins next; deleting them is safe because a dead process holds no file open.
 *
 * The daemon keeps its own per-artifact open count in memory and writes a row
 * only on the 0 -> 1 transition and deletes it on 1 -> 0, so open/close of a
 * file already held costs no database write.
 */
#include "pin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

static const char pin_schema[] =
	"CREATE TABLE IF NOT EXISTS pins ("
	" artifact_id INTEGER NOT NULL,"
	" pid INTEGER NOT NULL,"
	" starttime INTEGER NOT NULL,"
	" count INTEGER NOT NULL DEFAULT 1,"
	" PRIMARY KEY (artifact_id, pid, starttime));"
	"CREATE TABLE IF NOT EXISTS mounts ("
	" pid INTEGER NOT NULL,"
	" starttime INTEGER NOT NULL,"
	" mountpoint TEXT NOT NULL,"
	" started INTEGER NOT NULL,"
	" PRIMARY KEY (pid, starttime));";

int mfs_pin_proc_starttime(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return errno == ENOENT ? -ESRCH : -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* comm (field 2) may hold spaces and parentheses: skip to the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	/* p now points before field 3; field 22 is 19 fields further. */
	for (int field = 3; field < 22; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
		if (!*p)
			return -EIO;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p)
		return -EIO;
	*out = v;
	return 0;
}

/* Start time of this process, computed once. */
static uint64_t self_starttime(void)
{
	static uint64_t cached;
	static pid_t cached_pid;
	pid_t me = getpid();
	if (cached_pid != me) { /* also after fork */
		uint64_t st = 0;
		if (mfs_pin_proc_starttime(me, &st) == 0) {
			cached = st;
			cached_pid = me;
		}
	}
	return cached;
}

static bool proc_alive(pid_t pid, uint64_t starttime)
{
	uint64_t st;
	int rc = mfs_pin_proc_starttime(pid, &st);
	if (rc == -ESRCH)
		return false;
	if (rc)
		return true; /* cannot tell: keep the row */
	return st == starttime;
}

#define sql_err mfs_store_sql_err

int mfs_pin_init(struct mfs_store *s, struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	int rc = 0;
	if (sqlite3_exec(db, pin_schema, NULL, NULL, NULL) != SQLITE_OK)
		rc = sql_err(err, db, "cannot create the pins table");
	mfs_store_unlock(s);
	return rc;
}

/* Runs one statement with up to three integer parameters. Store locked. */
static int exec_ints(sqlite3 *db, const char *sql, int n, const int64_t *v)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	for (int i = 0; i < n; i++)
		sqlite3_bind_int64(st, i + 1, v[i]);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int mfs_pin_hold(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err)
{
	int64_t v[3] = { artifact_id, getpid(), (int64_t)self_starttime() };
	sqlite3 *db = mfs_store_lock(s);
	int rc = 0;
	if (exec_ints(db, "INSERT INTO pins(artifact_id, pid, starttime, count)"
			  " VALUES (?1, ?2, ?3, 1) ON CONFLICT(artifact_id, pid, starttime)"
			  " DO UPDATE SET count = count + 1", 3, v))
		rc = sql_err(err, db, "cannot record a pin");
	mfs_store_unlock(s);
	return rc;
}

int mfs_pin_drop(struct mfs_store *s, int64_t artifact_id, struct mfs_err *err)
{
	int64_t v[3] = { artifact_id, getpid(), (int64_t)self_starttime() };
	sqlite3 *db = mfs_store_lock(s);
	int rc = 0;
	if (exec_ints(db, "UPDATE pins SET count = count - 1 WHERE artifact_id = ?1"
			  " AND pid = ?2 AND starttime = ?3", 3, v) ||
	    exec_ints(db, "DELETE FROM pins WHERE artifact_id = ?1 AND pid = ?2"
			  " AND starttime = ?3 AND count <= 0", 3, v))
		rc = sql_err(err, db, "cannot remove a pin");
	mfs_store_unlock(s);
	return rc;
}

int mfs_pin_drop_all(struct mfs_store *s, struct mfs_err *err)
{
	int64_t v[2] = { getpid(), (int64_t)self_starttime() };
	sqlite3 *db = mfs_store_lock(s);
	int rc = 0;
	if (exec_ints(db, "DELETE FROM pins WHERE pid = ?1 AND starttime = ?2", 2, v) ||
	    exec_ints(db, "DELETE FROM mounts WHERE pid = ?1 AND starttime = ?2", 2, v))
		rc = sql_err(err, db, "cannot remove this process's pins");
	mfs_store_unlock(s);
	return rc;
}

struct proc_id {
	int64_t pid, starttime;
};

/* Reads the distinct (pid, starttime) of table into a malloc'd array. */
static int read_procs(sqlite3 *db, const char *sql, struct proc_id **out, size_t *n)
{
	sqlite3_stmt *st;
	size_t cap = 0, len = 0;
	struct proc_id *v = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct proc_id *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[len].pid = sqlite3_column_int64(st, 0);
		v[len].starttime = sqlite3_column_int64(st, 1);
		len++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return -1;
	}
	*out = v;
	*n = len;
	return 0;
}

int mfs_pin_clear_dead(struct mfs_store *s, unsigned *cleared, struct mfs_err *err)
{
	struct proc_id *procs = NULL;
	size_t n = 0;
	unsigned removed = 0;
	int rc = 0;

	sqlite3 *db = mfs_store_lock(s);
	if (read_procs(db, "SELECT DISTINCT pid, starttime FROM pins UNION"
			   " SELECT pid, starttime FROM mounts", &procs, &n)) {
		rc = sql_err(err, db, "cannot read the pins table");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (proc_alive((pid_t)procs[i].pid, (uint64_t)procs[i].starttime))
			continue;
		int64_t v[2] = { procs[i].pid, procs[i].starttime };
		if (exec_ints(db, "DELETE FROM pins WHERE pid = ?1 AND starttime = ?2", 2, v)) {
			rc = sql_err(err, db, "cannot remove a dead process's pins");
			goto out;
		}
		removed += (unsigned)sqlite3_changes(db);
		if (exec_ints(db, "DELETE FROM mounts WHERE pid = ?1 AND starttime = ?2", 2, v)) {
			rc = sql_err(err, db, "cannot remove a dead process's mount");
			goto out;
		}
		removed += (unsigned)sqlite3_changes(db);
	}
out:
	mfs_store_unlock(s);
	free(procs);
	if (!rc && cleared)
		*cleared = removed;
	return rc;
}

bool mfs_pin_active(struct mfs_store *s, int64_t artifact_id)
{
	if (mfs_pin_clear_dead(s, NULL, NULL))
		return true;
	sqlite3 *db = mfs_store_lock(s);
	bool active = true;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT EXISTS (SELECT 1 FROM pins WHERE"
				   " artifact_id = ?1 AND count > 0)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, artifact_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			active = sqlite3_column_int(st, 0) != 0;
		sqlite3_finalize(st);
	}
	/* The user pin; a store without the column has no user pins. */
	if (!active && sqlite3_prepare_v2(db, "SELECT pinned FROM artifacts WHERE id = ?1",
					  -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, artifact_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			active = sqlite3_column_int(st, 0) != 0;
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return active;
}

int mfs_pin_list(struct mfs_store *s, int (*cb)(void *ctx, const struct mfs_pin *p),
		 void *ctx, struct mfs_err *err)
{
	int rc = mfs_pin_clear_dead(s, NULL, err);
	if (rc)
		return rc;
	/* Copy out under the lock; call back without it. */
	struct mfs_pin *v = NULL;
	size_t len = 0, cap = 0;
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT artifact_id, pid, starttime, count FROM pins"
				   " ORDER BY artifact_id, pid", -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot read the pins table");
		mfs_store_unlock(s);
		return rc;
	}
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct mfs_pin *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory listing pins");
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = (struct mfs_pin){
			.artifact_id = sqlite3_column_int64(st, 0),
			.pid = (pid_t)sqlite3_column_int64(st, 1),
			.starttime = (uint64_t)sqlite3_column_int64(st, 2),
			.count = sqlite3_column_int64(st, 3),
		};
	}
	if (!rc && step != SQLITE_DONE)
		rc = sql_err(err, db, "cannot read the pins table");
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	for (size_t i = 0; !rc && i < len; i++)
		rc = cb(ctx, &v[i]);
	free(v);
	return rc;
}

int mfs_pin_mount_register(struct mfs_store *s, const char *mountpoint,
			   struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO mounts(pid, starttime,"
				   " mountpoint, started) VALUES (?1, ?2, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot register the mount");
		goto out;
	}
	sqlite3_bind_int64(st, 1, getpid());
	sqlite3_bind_int64(st, 2, (int64_t)self_starttime());
	sqlite3_bind_text(st, 3, mountpoint, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = sql_err(err, db, "cannot register the mount");
	sqlite3_finalize(st);
out:
	mfs_store_unlock(s);
	return rc;
}

int mfs_pin_mount_list(struct mfs_store *s,
		       int (*cb)(void *ctx, const struct mfs_pin_mount *m),
		       void *ctx, struct mfs_err *err)
{
	int rc = mfs_pin_clear_dead(s, NULL, err);
	if (rc)
		return rc;
	struct row {
		pid_t pid;
		char *mnt;
		int64_t started;
	} *v = NULL;
	size_t len = 0, cap = 0;
	sqlite3 *db = mfs_store_lock(s);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT pid, mountpoint, started FROM mounts"
				   " ORDER BY started, pid", -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot read the mounts table");
		mfs_store_unlock(s);
		return rc;
	}
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct row *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory listing mounts");
				break;
			}
			v = nv;
			cap = ncap;
		}
		const char *m = (const char *)sqlite3_column_text(st, 1);
		v[len].pid = (pid_t)sqlite3_column_int64(st, 0);
		v[len].mnt = strdup(m ? m : "");
		v[len].started = sqlite3_column_int64(st, 2);
		if (!v[len].mnt) {
			rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory listing mounts");
			break;
		}
		len++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = sql_err(err, db, "cannot read the mounts table");
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	for (size_t i = 0; i < len; i++) {
		if (!rc) {
			struct mfs_pin_mount m = { .pid = v[i].pid, .mountpoint = v[i].mnt,
						   .started = v[i].started };
			rc = cb(ctx, &m);
		}
		free(v[i].mnt);
	}
	free(v);
	return rc;
}
