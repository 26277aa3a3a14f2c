/*
 * store.c - the store directory and its SQLite index.
 *
 * Workload: many small reads of the index (file tables at open, resident
 * checks on the read path), one insert per chunk committed, rare admissions.
 * One connection per process-level handle, serialised by a mutex; SQLite's
 * WAL and a busy timeout order several processes. The chunk bytes live in
 * files named by their digest; the index only points at them.
 *
 * Crash safety comes from ordering: bytes are written under tmp/ and renamed
 * into chunks/ only after the caller verified them; the index row comes
 * after the rename. A crash leaves at worst an unindexed chunk file (fetched
 * again and renamed over) or a stale file in tmp/ (removed at open). An
 * admission writes its immutable record first and then commits every row in
 * one transaction, so an artifact is either wholly there or not at all.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "evict.h"
#include "log.h"
#include "pin.h"
#include "statefile.h"
#include "store_record.h"

#define TOUCH_BATCH 256
#define OPEN_DEADLINE_S 15 /* opening the index gives up after this */
#define STMT_CACHE 8

struct mfs_store {
	char *dir;
	pthread_mutex_t lock;      /* guards db and the touch batch */
	sqlite3 *db;               /* lock */
	uint8_t touched[TOUCH_BATCH][MFS_SHA256_LEN]; /* lock: pending LRU updates */
	unsigned n_touched;        /* lock */
	time_t touch_flushed;      /* lock */
	struct {                   /* lock: prepared statements of the read path, */
		const char *sql;   /* by the address of their SQL constant */
		sqlite3_stmt *st;
	} stmts[STMT_CACHE];
	bool shared;               /* group-readable store (docs/store.md) */
	int dfd;                   /* the store directory, opened without following links */
	dev_t index_dev;           /* lock: the index file the connection has open */
	ino_t index_ino;           /* lock */
};

/* The prepared statement for sql, a string constant (cached by address):
 * the caller binds, steps and must sqlite3_reset it before unlocking, so no
 * read transaction stays open. Locked. NULL if it cannot be prepared. */
static sqlite3_stmt *cached_stmt(struct mfs_store *s, const char *sql)
{
	for (int i = 0; i < STMT_CACHE; i++) {
		if (s->stmts[i].sql == sql) {
			sqlite3_clear_bindings(s->stmts[i].st);
			return s->stmts[i].st;
		}
		if (!s->stmts[i].sql) {
			if (sqlite3_prepare_v2(s->db, sql, -1, &s->stmts[i].st, NULL) != SQLITE_OK) {
				sqlite3_finalize(s->stmts[i].st);
				s->stmts[i].st = NULL;
				return NULL;
			}
			s->stmts[i].sql = sql;
			return s->stmts[i].st;
		}
	}
	return NULL; /* full: a programming error, seen at once in tests */
}

/* Before the connection closes. Locked. */
static void drop_stmts(struct mfs_store *s)
{
	for (int i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(s->stmts[i].st);
		s->stmts[i].st = NULL;
		s->stmts[i].sql = NULL;
	}
}

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);"
	"CREATE TABLE IF NOT EXISTS artifacts("
	" id INTEGER PRIMARY KEY, canonical_ref TEXT NOT NULL UNIQUE,"
	" endpoint TEXT NOT NULL, org TEXT NOT NULL, name TEXT NOT NULL,"
	" commit_id TEXT NOT NULL, revision TEXT, primary_path TEXT NOT NULL,"
	" distribution_id TEXT NOT NULL, identity TEXT NOT NULL, format TEXT NOT NULL,"
	" trust TEXT NOT NULL, manifest_sha256 TEXT, sequence INTEGER,"
	" meta_json TEXT, record TEXT NOT NULL, added_at INTEGER NOT NULL,"
	" pinned INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS files("
	" id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL, org TEXT NOT NULL,"
	" name TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL,"
	" size INTEGER NOT NULL, sha256 TEXT NOT NULL, chunk_size INTEGER NOT NULL,"
	" n_chunks INTEGER NOT NULL, trust TEXT NOT NULL,"
	" verified INTEGER NOT NULL DEFAULT 0, UNIQUE(org, name, commit_id, path));"
	"CREATE TABLE IF NOT EXISTS artifact_files("
	" artifact_id INTEGER NOT NULL, file_id INTEGER NOT NULL,"
	" PRIMARY KEY(artifact_id, file_id));"
	"CREATE INDEX IF NOT EXISTS artifact_files_file ON artifact_files(file_id);"
	"CREATE TABLE IF NOT EXISTS chunks(file_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
	" digest BLOB NOT NULL, PRIMARY KEY(file_id, idx));"
	"CREATE INDEX IF NOT EXISTS chunks_digest ON chunks(digest);"
	"CREATE TABLE IF NOT EXISTS resident(digest BLOB PRIMARY KEY, size INTEGER NOT NULL,"
	" ino INTEGER, ctime_ns INTEGER, last_read INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS resident_lru ON resident(last_read);"
	"CREATE TABLE IF NOT EXISTS refs(endpoint TEXT NOT NULL, org TEXT NOT NULL,"
	" name TEXT NOT NULL, ref TEXT NOT NULL, commit_id TEXT NOT NULL,"
	" sequence INTEGER, PRIMARY KEY(endpoint, org, name, ref));"
	"CREATE TABLE IF NOT EXISTS evictions(id INTEGER PRIMARY KEY, artifact TEXT,"
	" path TEXT, digest BLOB, bytes INTEGER NOT NULL, at INTEGER NOT NULL,"
	" reason TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS evictions_path ON evictions(artifact, path);"
	"CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	/* Ranges of hub-checksum downloads staged under partial/<key>/, counted
	 * against the quota until adopted or dropped (mfs_store_stage_reserve). */
	"CREATE TABLE IF NOT EXISTS staged(key TEXT NOT NULL, idx INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL, pid INTEGER NOT NULL, starttime INTEGER NOT NULL,"
	" PRIMARY KEY(key, idx));"
	"INSERT OR IGNORE INTO meta(key, value) VALUES('schema', 1), ('generation', 0);"
	/* The usage the quota is checked against, kept exact by triggers so a
	 * commit reads one row instead of summing the table. */
	"INSERT OR IGNORE INTO meta(key, value)"
	" SELECT 'resident_bytes', coalesce(sum(size), 0) FROM resident;"
	"CREATE TRIGGER IF NOT EXISTS resident_add AFTER INSERT ON resident BEGIN"
	" UPDATE meta SET value = value + new.size WHERE key = 'resident_bytes'; END;"
	"CREATE TRIGGER IF NOT EXISTS resident_del AFTER DELETE ON resident BEGIN"
	" UPDATE meta SET value = value - old.size WHERE key = 'resident_bytes'; END;"
	"CREATE TRIGGER IF NOT EXISTS resident_resize AFTER UPDATE OF size ON resident BEGIN"
	" UPDATE meta SET value = value - old.size + new.size WHERE key = 'resident_bytes'; END;";

int mfs_store_sql_err(struct mfs_err *err, struct sqlite3 *db, const char *what)
{
	int code = sqlite3_errcode(db);
	int e = code == SQLITE_FULL ? -ENOSPC : code == SQLITE_BUSY ? -EBUSY : -EIO;
	return MFS_ERR(err, e, MFS_ERR_SQLITE, "%s: %s", what, sqlite3_errmsg(db));
}

#define sql_err mfs_store_sql_err

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static int subpath(const struct mfs_store *s, char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int subpath(const struct mfs_store *s, char *buf, size_t cap, const char *fmt, ...)
{
	int n = snprintf(buf, cap, "%s/", s->dir);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= cap - (size_t)n ? -ENAMETOOLONG : 0;
}

char *mfs_store_default_dir(void)
{
	const char *env = getenv("MODELFS_STORE");
	char buf[PATH_MAX];
	if (env && *env)
		return strdup(env);
	if (geteuid() == 0)
		return strdup("/var/cache/modelfs");
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg && *xdg && snprintf(buf, sizeof(buf), "%s/modelfs", xdg) < (int)sizeof(buf))
		return strdup(buf);
	const char *home = getenv("HOME");
	if (snprintf(buf, sizeof(buf), "%s/.cache/modelfs", home ? home : ".") >= (int)sizeof(buf))
		return strdup(".modelfs");
	return strdup(buf);
}

const char *mfs_store_dir(const struct mfs_store *s)
{
	return s->dir;
}

/* Removes files under tmp/ older than ten minutes: no writer keeps a chunk
 * file open that long, so these were left by a process that died. */
static void clean_tmp(struct mfs_store *s)
{
	char path[PATH_MAX];
	if (subpath(s, path, sizeof(path), "tmp"))
		return;
	DIR *d = opendir(path);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && now - st.st_mtime > 600)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static bool is_link(int dfd, const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* True if SQLite, on a connection of its own, finds index.db damaged
 * (not a database, corrupt, or pages cut off); false if it is sound or
 * cannot tell within two seconds (locked). */
static bool index_confirmed_bad(struct mfs_store *s)
{
	char path[PATH_MAX];
	if (subpath(s, path, sizeof(path), "index.db"))
		return false;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool bad = false;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 2000);
		rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(st, 0);
			bad = !t || strcmp((const char *)t, "ok");
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		int c = db ? sqlite3_extended_errcode(db) : rc;
		bad = (c & 0xff) == SQLITE_CORRUPT || (c & 0xff) == SQLITE_NOTADB ||
		      c == SQLITE_IOERR_SHORT_READ;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return bad;
}

/* What index.db's own bytes say, without SQLite (which, on a file cut
 * short under a live WAL, can wait on locks instead of failing): NULL if
 * it looks sound (or absent, or new and empty), else why not. *ino is the
 * file looked at. The header layout is SQLite's file format: magic, page
 * size at 16, change counter at 24, page count at 28, valid if the
 * "version-valid-for" at 92 equals the change counter. */
static const char *index_damage(struct mfs_store *s, ino_t *ino)
{
	struct stat st, wal;
	char path[PATH_MAX];
	*ino = 0;
	if (fstatat(s->dfd, "index.db", &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) ||
	    subpath(s, path, sizeof(path), "index.db"))
		return NULL; /* absent: created and built; a link: refused at open */
	*ino = st.st_ino;
	/* Read through SQLite's own file layer, never open(2) and close(2):
	 * closing any descriptor of the file would drop the POSIX locks this
	 * process's connection holds on it; SQLite's close defers that. */
	unsigned char h[100];
	const char *why = NULL;
	ssize_t n = 0;
	sqlite3 *db = NULL;
	sqlite3_file *file = NULL;
	sqlite3_int64 fsize = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL) ==
		    SQLITE_OK &&
	    sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) == SQLITE_OK && file &&
	    file->pMethods && file->pMethods->xFileSize(file, &fsize) == SQLITE_OK) {
		st.st_size = (off_t)fsize;
		if (fsize >= (sqlite3_int64)sizeof(h) &&
		    file->pMethods->xRead(file, h, sizeof(h), 0) == SQLITE_OK)
			n = sizeof(h);
	} else {
		sqlite3_close(db);
		return NULL; /* cannot look: SQLite's own open decides */
	}
	sqlite3_close(db);
	if (st.st_size == 0) {
		/* Empty is a new index, unless a WAL holds pages of it: then
		 * it was cut. A new index writes its first page (the header
		 * that says WAL) before any WAL exists, and SQLite takes an
		 * empty file for an empty database, whatever its WAL holds:
		 * certain without asking SQLite. */
		if (fstatat(s->dfd, "index.db-wal", &wal, AT_SYMLINK_NOFOLLOW) == 0 && wal.st_size > 0)
			why = "empty while its write-ahead log is not";
	} else if (n != (ssize_t)sizeof(h) || memcmp(h, "SQLite format 3", 16)) {
		why = "not a SQLite database (its header is damaged)";
	} else {
		uint32_t psz = (uint32_t)h[16] << 8 | h[17];
		if (psz == 1)
			psz = 65536;
		if (psz < 512 || psz > 65536 || (psz & (psz - 1)))
			why = "damaged (page size)";
		else if (be32(h + 92) == be32(h + 24) &&
			 (uint64_t)st.st_size < (uint64_t)be32(h + 28) * psz)
			why = "shorter than its header says (truncated)";
	}
	/* Otherwise the header is a hint, never proof (a checkpoint in
	 * progress can leave it ahead of the file): SQLite, on its own
	 * connection, reading a consistent snapshot, with a short busy
	 * timeout, decides. */
	return why && (st.st_size == 0 || index_confirmed_bad(s)) ? why : NULL;
}

static int open_db(struct mfs_store *s, bool *fresh, struct mfs_err *err)
{
	char path[PATH_MAX];
	int rc = subpath(s, path, sizeof(path), "index.db");
	if (rc)
		return MFS_ERR(err, rc, MFS_ERR_IO, "store path too long");
	static const char *const files[] = { "index.db", "index.db-wal", "index.db-shm" };
	for (int i = 0; i < 3; i++)
		if (is_link(s->dfd, files[i]))
			return MFS_ERR(err, -ENOTDIR, MFS_ERR_IO,
				       "'%s/%s' is a symbolic link: the store's index must be a"
				       " file of its own", s->dir, files[i]);
	/* Not through a link; the -wal and -shm files SQLite creates take the
	 * mode of index.db, which is set before anything is written. */
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
						  SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
			    NULL) != SQLITE_OK) {
		rc = sql_err(err, s->db, "cannot open the index");
		sqlite3_close(s->db);
		s->db = NULL;
		return rc;
	}
	fchmodat(s->dfd, "index.db", s->shared ? 0640 : 0600, AT_SYMLINK_NOFOLLOW);
	sqlite3_busy_timeout(s->db, 10000);
	/* Several processes may create a new index at once: switching it to
	 * WAL or creating the tables can then answer "locked" (or an I/O error
	 * while another connection sets the WAL up) without waiting, which is
	 * a reason to try again, never to take the index for corrupt. */
	int code = SQLITE_OK;
	char *msg = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int attempt = 0; attempt < 100; attempt++) {
		/* Bounded in time too: each attempt may wait out the busy timeout. */
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (attempt && t1.tv_sec - t0.tv_sec >= OPEN_DEADLINE_S)
			break;
		sqlite3_free(msg);
		msg = NULL;
		code = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
				    NULL, NULL, &msg);
		if (code == SQLITE_OK)
			code = sqlite3_exec(s->db, schema, NULL, NULL, &msg);
		if ((code & 0xff) != SQLITE_BUSY && (code & 0xff) != SQLITE_LOCKED &&
		    (code & 0xff) != SQLITE_IOERR)
			break;
		usleep(20000 + (useconds_t)(rand() % 30000));
	}
	if (code != SQLITE_OK) {
		bool corrupt = code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
		rc = MFS_ERR(err, corrupt ? -EBADMSG : code == SQLITE_FULL ? -ENOSPC : -EIO,
			     MFS_ERR_SQLITE, "index '%s' is %s: %s", path,
			     corrupt ? "corrupt" : "unusable", msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(s->db);
		s->db = NULL;
		return rc;
	}
	/* A quick structural check: a corrupt file fails here, not mid-read. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok")) {
		int c = sqlite3_errcode(s->db);
		bool corrupt = c == SQLITE_ROW || c == SQLITE_CORRUPT || c == SQLITE_NOTADB;
		sqlite3_finalize(st);
		rc = MFS_ERR(err, corrupt ? -EBADMSG : -EIO, MFS_ERR_SQLITE, "index '%s' is %s: %s",
			     path, corrupt ? "corrupt" : "unusable", sqlite3_errmsg(s->db));
		sqlite3_close(s->db);
		s->db = NULL;
		return rc;
	}
	sqlite3_finalize(st);
	/* Not built from the records yet: new, or lost and created again. */
	*fresh = sqlite3_prepare_v2(s->db, "SELECT 1 FROM meta WHERE key = 'indexed'", -1, &st,
				    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW;
	sqlite3_finalize(st);
	struct stat sb;
	if (stat(path, &sb) == 0) {
		s->index_dev = sb.st_dev;
		s->index_ino = sb.st_ino;
	}
	return 0;
}

static int64_t stat_ctime_ns(const struct stat *st)
{
	return (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* quarantine/ keeps what was set aside for a person to look at, never
 * more than this: a writer toggling a byte of a chunk file would otherwise
 * leave a copy per detection, outside the quota (docs/store.md). */
#define QUARANTINE_MAX_FILES 32
#define QUARANTINE_MAX_BYTES (64ull << 20)

struct qent {
	char name[NAME_MAX + 1];
	int64_t at_ns;
	uint64_t bytes;
};

static int qent_older(const void *a, const void *b)
{
	const struct qent *x = a, *y = b;
	return x->at_ns < y->at_ns ? -1 : x->at_ns > y->at_ns;
}

/* Removes the oldest files of quarantine/ (by the time they were moved
 * there: a rename sets the ctime) until at most QUARANTINE_MAX_FILES and
 * QUARANTINE_MAX_BYTES are left; the newest file always stays. */
static void prune_quarantine(struct mfs_store *s)
{
	char path[PATH_MAX];
	if (subpath(s, path, sizeof(path), "quarantine"))
		return;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	size_t n = 0, cap = 0;
	struct qent *v = NULL;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct qent *nv = ncap < 1u << 20 ? realloc(v, ncap * sizeof(*v)) : NULL;
			if (!nv)
				break;
			v = nv;
			cap = ncap;
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].at_ns = stat_ctime_ns(&st);
		v[n].bytes = S_ISREG(st.st_mode) ? (uint64_t)st.st_blocks * 512 : 0;
		total += v[n].bytes;
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), qent_older);
	for (size_t i = 0; i + 1 < n && (n - i > QUARANTINE_MAX_FILES || total > QUARANTINE_MAX_BYTES);
	     i++) {
		if (unlinkat(dfd, v[i].name, 0) == 0)
			total -= v[i].bytes;
	}
	free(v);
	closedir(d);
}

/* Moves a corrupt index aside (kept for a person to look at) so a fresh one
 * can be rebuilt: only if index.db is still the file found bad (ino), under
 * a lock on the store directory, so of several processes that find it bad
 * at once one sets it aside and none moves the index another just built. */
static void set_index_aside(struct mfs_store *s, ino_t ino)
{
	char from[PATH_MAX], to[PATH_MAX];
	static const char *const sfx[] = { "", "-wal", "-shm" };
	struct stat st;
	flock(s->dfd, LOCK_EX);
	if (fstatat(s->dfd, "index.db", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == ino) {
		for (int i = 0; i < 3; i++) {
			if (subpath(s, from, sizeof(from), "index.db%s", sfx[i]) ||
			    subpath(s, to, sizeof(to), "quarantine/index.db.%ld.%d%s", (long)time(NULL),
				    (int)getpid(), sfx[i]))
				continue;
			rename(from, to);
		}
	}
	flock(s->dfd, LOCK_UN);
	prune_quarantine(s);
}

/* Opens index.db; a damaged or corrupt one is set aside; one not built yet
 * is built from the records and chunk files. Locked (or not yet shared). */
static int open_index(struct mfs_store *s, struct mfs_err *err)
{
	bool fresh = false;
	struct mfs_err e2 = { 0 };
	ino_t ino;
	const char *why = index_damage(s, &ino);
	int rc = why ? MFS_ERR(&e2, -EBADMSG, MFS_ERR_SQLITE, "index '%s/index.db' is %s", s->dir, why)
		     : open_db(s, &fresh, &e2);
	if (rc == -EBADMSG) { /* corrupt, not merely busy: set aside, start again */
		mfs_log_warning("%s; rebuilding it from records and chunks", e2.msg);
		if (!why) {
			struct stat st;
			ino = fstatat(s->dfd, "index.db", &st, AT_SYMLINK_NOFOLLOW) ? 0 : st.st_ino;
		}
		set_index_aside(s, ino);
		rc = open_db(s, &fresh, err);
		if (rc == -EBADMSG)
			rc = -EIO;
	} else if (rc && err) {
		*err = e2;
	}
	if (!rc && fresh)
		rc = mfs_store_rebuild_locked(s, s->db, false, err);
	if (rc && s->db) {
		sqlite3_close(s->db);
		s->db = NULL;
	}
	return rc;
}

int mfs_store_recheck(struct mfs_store *s, bool *reopened, struct mfs_err *err)
{
	char path[PATH_MAX];
	struct stat sb;
	*reopened = false;
	if (subpath(s, path, sizeof(path), "index.db"))
		return 0;
	pthread_mutex_lock(&s->lock);
	bool gone = stat(path, &sb) != 0;
	ino_t ino;
	const char *why = NULL;
	if (!gone && sb.st_dev == s->index_dev && sb.st_ino == s->index_ino &&
	    !(why = index_damage(s, &ino))) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	/* Damaged in place: open_index finds it so again and sets it aside. */
	mfs_log_warning("the index '%s' was %s while in use: opening it again", path,
			gone ? "deleted" : why ? why : "replaced");
	drop_stmts(s);
	sqlite3 *old = s->db;
	s->db = NULL;
	s->n_touched = 0; /* LRU updates meant for the old index */
	int rc = open_index(s, err);
	if (rc) {
		s->db = old; /* keep serving; the next check tries again */
	} else {
		sqlite3_close_v2(old);
		*reopened = true;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

mode_t mfs_store_file_mode(const struct mfs_store *s)
{
	return s->shared ? 0440 : 0400;
}

mode_t mfs_store_dir_mode(const struct mfs_store *s)
{
	return s->shared ? 02750 : 0700;
}

/* Who owns a store directory may replace anything in it, links included,
 * so a store is used only by its owner or root unless the caller said
 * otherwise (opts->any_owner). */
static int check_owner(const struct stat *st, const char *path, bool any_owner,
		       struct mfs_err *err)
{
	if (st->st_uid == geteuid() || st->st_uid == 0 || any_owner)
		return 0;
	struct passwd *pw = getpwuid(st->st_uid);
	return MFS_ERR(err, -EPERM, MFS_ERR_IO,
		       "'%s' belongs to another user (%s, uid %u): whoever owns a store's"
		       " directories can point them anywhere, so it is used only by its owner or"
		       " root; pass --allow-other-owner if that user is trusted",
		       path, pw ? pw->pw_name : "?", (unsigned)st->st_uid);
}


/* Opens (creating if needed) directory name under dfd without following a
 * link, checks its owner and takes away what it must not have: write for
 * group and others, and read for others (and for the group unless shared).
 * Returns the fd or -errno. */
static int open_subdir(int dfd, const char *name, const char *path, mode_t mode,
		       const struct mfs_store_opts *o, struct mfs_err *err)
{
	if (mkdirat(dfd, name, mode) == 0)
		fchmodat(dfd, name, mode, 0); /* the umask took bits away */
	else if (errno != EEXIST)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create '%s': %s", path,
			       strerror(errno));
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP || e == ENOTDIR)
			return MFS_ERR(err, -ENOTDIR, MFS_ERR_IO,
				       "'%s' is %s: a store's directories must be real directories",
				       path, is_link(dfd, name) ? "a symbolic link" : "not a directory");
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot open '%s': %s", path, strerror(e));
	}
	struct stat st;
	int rc = fstat(fd, &st) ? MFS_ERR(err, -errno, MFS_ERR_IO, "cannot stat '%s'", path)
				: check_owner(&st, path, o && o->any_owner, err);
	mode_t extra = (mode & S_IRGRP) ? 027 : 077; /* bits it must not have */
	if (!rc && (st.st_mode & extra) && st.st_uid == geteuid()) {
		if (fchmod(fd, (st.st_mode & 07777 & ~extra)))
			rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot make '%s' private: %s", path,
				     strerror(errno));
	}
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

/* Shares an existing tree with group gid: directories 2750 (new files take
 * their group from it), files group-readable. */
static void share_tree(int fd, gid_t gid, int depth)
{
	DIR *d = depth < 3 ? fdopendir(dup(fd)) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
			continue;
		int cfd = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
					 (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (cfd < 0)
			continue;
		if (fchown(cfd, (uid_t)-1, gid) == 0) {
			if (S_ISDIR(st.st_mode)) {
				fchmod(cfd, 02750);
				share_tree(cfd, gid, depth + 1);
			} else {
				fchmod(cfd, (st.st_mode & 0600) | ((st.st_mode & 0400) ? 040 : 0));
			}
		}
		close(cfd);
	}
	if (d)
		closedir(d);
}

static const char *const subdirs[] = { "chunks", "records", "manifests", "tmp", "quarantine",
				       "partial" };

/* Creates or checks the store directory and its subdirectories: none may be
 * a link or belong to another user; modes private (or shared with a group). */
static int prepare_dirs(struct mfs_store *s, const struct mfs_store_opts *o, struct mfs_err *err)
{
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof(parent), "%s", s->dir) >= (int)sizeof(parent))
		return MFS_ERR(err, -ENAMETOOLONG, MFS_ERR_IO, "store path too long");
	char *slash = strrchr(parent, '/');
	while (slash && slash > parent && !slash[1]) { /* "dir/" */
		*slash = '\0';
		slash = strrchr(parent, '/');
	}
	int rc = 0;
	if (slash && slash > parent) {
		*slash = '\0';
		rc = mkdir_p(parent, 0700);
		*slash = '/';
		if (rc)
			return MFS_ERR(err, rc, MFS_ERR_IO, "cannot create '%s': %s", parent,
				       strerror(-rc));
	}
	bool created = mkdir(s->dir, 0700) == 0;
	if (!created && errno != EEXIST)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create '%s': %s", s->dir,
			       strerror(errno));
	s->dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dfd < 0) {
		int e = errno;
		if ((e == ELOOP || e == ENOTDIR) && is_link(AT_FDCWD, s->dir))
			return MFS_ERR(err, -ENOTDIR, MFS_ERR_IO,
				       "the store '%s' is a symbolic link: give its real path", s->dir);
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot open the store '%s': %s", s->dir,
			       strerror(e));
	}
	struct stat st;
	if (fstat(s->dfd, &st))
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot stat '%s'", s->dir);
	if ((rc = check_owner(&st, s->dir, o && o->any_owner, err)))
		return rc;
	if (o && o->share) {
		if (fchown(s->dfd, (uid_t)-1, o->group) || fchmod(s->dfd, 02750))
			return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot share '%s' with group %u: %s",
				       s->dir, (unsigned)o->group, strerror(errno));
		share_tree(s->dfd, o->group, 0);
		st.st_mode = S_IFDIR | 02750;
	} else if (created) {
		fchmod(s->dfd, 0700); /* whatever the umask */
		st.st_mode = S_IFDIR | 0700;
	}
	/* Shared once (--group): group-readable with the setgid bit. Anything
	 * else is private, and what others could read is taken away (never
	 * widened: a store becomes shared only when asked). */
	s->shared = (st.st_mode & S_ISGID) && (st.st_mode & S_IRGRP);
	mode_t extra = s->shared ? 027 : 077;
	if ((st.st_mode & extra) && st.st_uid == geteuid()) {
		mfs_log_notice("the store '%s' was open to %s: made %s", s->dir,
			       s->shared ? "others" : "other users", s->shared ? "2750" : "private (0700)");
		if (fchmod(s->dfd, st.st_mode & 07777 & ~extra))
			return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot make '%s' private: %s", s->dir,
				       strerror(errno));
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]) && !rc; i++) {
		char path[PATH_MAX];
		if ((rc = subpath(s, path, sizeof(path), "%s", subdirs[i])))
			return MFS_ERR(err, rc, MFS_ERR_IO, "store path too long");
		int fd = open_subdir(s->dfd, subdirs[i], path, mfs_store_dir_mode(s), o, err);
		if (fd < 0)
			return fd;
		/* chunks/xx: the same rules one level down */
		DIR *d = !strcmp(subdirs[i], "chunks") ? fdopendir(fd) : NULL;
		struct dirent *de;
		while (d && !rc && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if ((rc = subpath(s, path, sizeof(path), "chunks/%s", de->d_name)))
				rc = MFS_ERR(err, rc, MFS_ERR_IO, "store path too long");
			int cfd = rc ? -1 : open_subdir(dirfd(d), de->d_name, path,
						       mfs_store_dir_mode(s), o, err);
			if (cfd < 0 && !rc)
				rc = cfd;
			if (cfd >= 0)
				close(cfd);
		}
		if (d)
			closedir(d);
		else
			close(fd);
	}
	return rc;
}

int mfs_store_open(const char *dir, struct mfs_store **out, struct mfs_err *err)
{
	return mfs_store_open_opts(dir, NULL, out, err);
}

int mfs_store_open_opts(const char *dir, const struct mfs_store_opts *opts,
			struct mfs_store **out, struct mfs_err *err)
{
	struct mfs_store *s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
	}
	s->dfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	int rc = prepare_dirs(s, opts, err);
	if (!rc) {
		pthread_mutex_lock(&s->lock);
		rc = open_index(s, err);
		pthread_mutex_unlock(&s->lock);
	}
	if (rc) {
		mfs_store_close(s);
		return rc;
	}
	clean_tmp(s);
	mfs_store_records_settle(s);
	*out = s;
	return 0;
}

static void flush_touches(struct mfs_store *s);

void mfs_store_close(struct mfs_store *s)
{
	if (!s)
		return;
	if (s->db) {
		pthread_mutex_lock(&s->lock);
		flush_touches(s);
		drop_stmts(s);
		pthread_mutex_unlock(&s->lock);
		sqlite3_close(s->db);
	}
	if (s->dfd >= 0)
		close(s->dfd);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

struct sqlite3 *mfs_store_lock(struct mfs_store *s)
{
	pthread_mutex_lock(&s->lock);
	return s->db;
}

void mfs_store_unlock(struct mfs_store *s)
{
	pthread_mutex_unlock(&s->lock);
}

/* --- files --------------------------------------------------------------- */

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

void mfs_file_release(struct mfs_file *f)
{
	if (!f)
		return;
	free(f->endpoint);
	free(f->org);
	free(f->name);
	free(f->commit);
	free(f->path);
	free(f->chunks);
	free(f->trust);
	memset(f, 0, sizeof(*f));
}

int mfs_store_file_load(struct mfs_store *s, int64_t id, struct mfs_file *out,
			struct mfs_err *err)
{
	struct mfs_file f = { .id = id };
	sqlite3_stmt *st = NULL;
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);

	if (sqlite3_prepare_v2(db, "SELECT endpoint, org, name, commit_id, path, size, sha256,"
				   " chunk_size, n_chunks, trust FROM files WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot read file");
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "file %lld is not installed",
			     (long long)id);
		goto out;
	}
	f.endpoint = col_strdup(st, 0);
	f.org = col_strdup(st, 1);
	f.name = col_strdup(st, 2);
	f.commit = col_strdup(st, 3);
	f.path = col_strdup(st, 4);
	f.size = (uint64_t)sqlite3_column_int64(st, 5);
	snprintf(f.sha256, sizeof(f.sha256), "%s", (const char *)sqlite3_column_text(st, 6));
	f.chunk_size = (uint32_t)sqlite3_column_int64(st, 7);
	f.n_chunks = (uint32_t)sqlite3_column_int64(st, 8);
	f.trust = col_strdup(st, 9);
	sqlite3_finalize(st);
	st = NULL;
	f.chunks = calloc(f.n_chunks ? f.n_chunks : 1, MFS_SHA256_LEN);
	if (!f.endpoint || !f.org || !f.name || !f.commit || !f.path || !f.trust || !f.chunks) {
		rc = MFS_ERR(err, -ENOMEM, MFS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT idx, digest FROM chunks WHERE file_id = ? ORDER BY idx",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = sql_err(err, db, "cannot read chunks");
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	uint32_t seen = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t idx = sqlite3_column_int64(st, 0);
		if (idx < 0 || idx >= f.n_chunks || sqlite3_column_bytes(st, 1) != MFS_SHA256_LEN)
			continue;
		memcpy(f.chunks[idx], sqlite3_column_blob(st, 1), MFS_SHA256_LEN);
		seen++;
	}
	if (seen != f.n_chunks)
		rc = MFS_ERR(err, -EIO, MFS_ERR_STATE, "file '%s' has %u of %u chunk digests",
			     f.path, seen, f.n_chunks);
out:
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	if (rc)
		mfs_file_release(&f);
	else
		*out = f;
	return rc;
}

int mfs_store_walk(struct mfs_store *s,
		   int (*file_cb)(void *ctx, const struct mfs_store_entry *e),
		   int (*alias_cb)(void *ctx, const struct mfs_store_alias *a),
		   void *ctx, struct mfs_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (file_cb) {
		if (sqlite3_prepare_v2(db, "SELECT f.id, min(af.artifact_id), f.org, f.name,"
					   " f.commit_id, f.path, f.size FROM files f"
					   " JOIN artifact_files af ON af.file_id = f.id"
					   " GROUP BY f.id ORDER BY f.org, f.name, f.commit_id, f.path",
				       -1, &st, NULL) != SQLITE_OK) {
			rc = sql_err(err, db, "cannot list files");
			goto out;
		}
		int step;
		while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
			struct mfs_store_entry e = {
				.file_id = sqlite3_column_int64(st, 0),
				.artifact_id = sqlite3_column_int64(st, 1),
				.org = (const char *)sqlite3_column_text(st, 2),
				.name = (const char *)sqlite3_column_text(st, 3),
				.commit = (const char *)sqlite3_column_text(st, 4),
				.path = (const char *)sqlite3_column_text(st, 5),
				.size = (uint64_t)sqlite3_column_int64(st, 6),
			};
			rc = file_cb(ctx, &e);
		}
		/* A query that fails part way is an error, never a shorter list:
		 * the mount keeps the tree it has (never an empty one). */
		if (!rc && step != SQLITE_DONE) {
			rc = sql_err(err, db, "cannot list files");
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (alias_cb && !rc) {
		if (sqlite3_prepare_v2(db, "SELECT DISTINCT r.org, r.name, r.ref, r.commit_id FROM refs r"
					   " JOIN artifacts a ON a.org = r.org AND a.name = r.name"
					   " AND a.commit_id = r.commit_id WHERE r.ref != r.commit_id"
					   " ORDER BY r.org, r.name, r.ref",
				       -1, &st, NULL) != SQLITE_OK) {
			rc = sql_err(err, db, "cannot list aliases");
			goto out;
		}
		int step;
		while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
			struct mfs_store_alias a = {
				.org = (const char *)sqlite3_column_text(st, 0),
				.name = (const char *)sqlite3_column_text(st, 1),
				.ref = (const char *)sqlite3_column_text(st, 2),
				.commit = (const char *)sqlite3_column_text(st, 3),
			};
			rc = alias_cb(ctx, &a);
		}
		if (!rc && step != SQLITE_DONE)
			rc = sql_err(err, db, "cannot list aliases");
	}
out:
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	return rc;
}

static int64_t meta_get(sqlite3 *db, const char *key)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

int64_t mfs_store_generation(struct mfs_store *s)
{
	sqlite3 *db = mfs_store_lock(s);
	int64_t v = meta_get(db, "generation");
	mfs_store_unlock(s);
	return v;
}

/* --- chunks ------------------------------------------------------------ */

void mfs_store_chunk_path(const struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  char *buf, size_t cap)
{
	char hex[MFS_SHA256_HEX];
	mfs_hex_encode(digest, MFS_SHA256_LEN, hex);
	snprintf(buf, cap, "%s/chunks/%.2s/%s", s->dir, hex, hex);
}


/* Records digest as resident with the stamp of its file. Locked. */
static int set_resident_locked(sqlite3 *db, const uint8_t digest[MFS_SHA256_LEN], uint64_t size,
			       const struct stat *stamp, struct mfs_err *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT INTO resident(digest, size, ino, ctime_ns, last_read)"
				   " VALUES(?, ?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET"
				   " size = excluded.size, ino = excluded.ino,"
				   " ctime_ns = excluded.ctime_ns, last_read = excluded.last_read",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_err(err, db, "cannot record chunk");
	sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	if (stamp) {
		sqlite3_bind_int64(st, 3, (int64_t)stamp->st_ino);
		sqlite3_bind_int64(st, 4, stat_ctime_ns(stamp));
	}
	sqlite3_bind_int64(st, 5, (int64_t)time(NULL));
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_err(err, db, "cannot record chunk");
	sqlite3_finalize(st);
	return rc;
}

static int set_resident(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			uint64_t size, const struct stat *stamp, struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	int rc = set_resident_locked(db, digest, size, stamp, err);
	mfs_store_unlock(s);
	return rc;
}

static bool resident_locked(sqlite3 *db, const uint8_t digest[MFS_SHA256_LEN])
{
	sqlite3_stmt *st;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM resident WHERE digest = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

/* Writes a chunk's bytes to a new file under tmp/ (path in tmp). */
static int write_tmp(struct mfs_store *s, const char *hex, const void *data, size_t len,
		     char tmp[PATH_MAX], struct mfs_err *err)
{
	int rc = subpath(s, tmp, PATH_MAX, "tmp/%.16s.XXXXXX", hex);
	if (rc)
		return MFS_ERR(err, rc, MFS_ERR_IO, "store path too long");
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return MFS_ERR(err, -errno, MFS_ERR_IO, "cannot create a chunk file in '%s/tmp': %s",
			       s->dir, strerror(errno));
	rc = mfs_write_all(fd, data, len);
	fchmod(fd, mfs_store_file_mode(s));
	if (close(fd) && !rc)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot write chunk %.16s in '%s': %s", hex,
			       s->dir, strerror(-rc));
	}
	return 0;
}

/* Moves a written chunk file into chunks/ and marks it resident, in one
 * write transaction that also checks the quota: a chunk that is not yet
 * resident is committed only if usage + len fits (-EAGAIN otherwise, the
 * caller evicts and tries again). Since every process checks and inserts
 * under SQLite's write lock, several processes together cannot pass the
 * quota. Re-committing a resident chunk costs nothing. */
static int hash_fd(int fd, uint64_t len, uint8_t out[MFS_SHA256_LEN]);

/* True if the open chunk file holds exactly data (or, data NULL, bytes
 * that hash to digest). */
static bool holds(int fd, const void *data, const uint8_t digest[MFS_SHA256_LEN], uint64_t len)
{
	if (!data) {
		uint8_t d[MFS_SHA256_LEN];
		return hash_fd(fd, len, d) == 0 && !memcmp(d, digest, MFS_SHA256_LEN);
	}
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	bool same = buf != NULL;
	for (uint64_t off = 0; same && off < len;) {
		size_t want = len - off < cap ? (size_t)(len - off) : cap;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		same = n > 0 && !memcmp(buf, (const uint8_t *)data + off, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	return same;
}

static int64_t staged_locked(sqlite3 *db)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT coalesce(sum(bytes), 0) FROM staged", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Deletes the reservation of staged range (key, idx) in the caller's
 * transaction: its bytes become resident instead. */
static void unstage_locked(sqlite3 *db, const char *key, int64_t idx)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM staged WHERE key = ? AND idx = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, idx);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

static int commit_chunk(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			const void *data, const char *tmp, const char *final, uint64_t len,
			const char *stage_key, int64_t stage_idx, struct mfs_err *err)
{
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = sql_err(err, db, "cannot commit a chunk");
		mfs_store_unlock(s);
		return rc;
	}
	bool present = resident_locked(db, digest);
	if (stage_key) /* its reservation ends here (or comes back with a rollback) */
		unstage_locked(db, stage_key, stage_idx);
	int64_t quota = meta_get(db, "quota_bytes");
	int rc = 0;
	if (!present && quota > 0 &&
	    meta_get(db, "resident_bytes") + staged_locked(db) + (int64_t)len > quota)
		rc = -EAGAIN;
	bool moved = false;
	if (!rc) {
		int r = rename(tmp, final);
		if (r && errno == ENOENT) { /* the first chunk of its chunks/xx directory */
			char dir[PATH_MAX];
			snprintf(dir, sizeof(dir), "%s", final);
			*strrchr(dir, '/') = '\0';
			if (mkdir(dir, mfs_store_dir_mode(s)) == 0 || errno == EEXIST)
				r = rename(tmp, final);
		}
		if (r)
			rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot commit chunk '%s': %s", final,
				     strerror(errno));
		else
			moved = true;
	}
	/* The stamp is taken from the file in place, and its bytes compared
	 * after that: the rename itself sets the ctime, and a write that came
	 * between it and the stat might have left the ctime as it was; one that
	 * comes after the stat changes it (docs/store.md). So the stamp
	 * recorded vouches for exactly the bytes verified. */
	struct stat st;
	int cfd = -1;
	if (!rc && (cfd = open(final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0 &&
	    !fstat(cfd, &st) && (st.st_mode & 07777) != mfs_store_file_mode(s))
		fchmod(cfd, mfs_store_file_mode(s)); /* an adopted file: read-only, private */
	if (!rc && (cfd < 0 || fstat(cfd, &st)))
		rc = MFS_ERR(err, -errno, MFS_ERR_IO, "cannot stat '%s': %s", final, strerror(errno));
	if (!rc && ((uint64_t)st.st_size != len || !holds(cfd, data, digest, len)))
		rc = MFS_ERR(err, -EIO, MFS_ERR_HASH,
			     "chunk file '%s' changed while it was committed: not kept", final);
	if (cfd >= 0)
		close(cfd);
	if (!rc)
		rc = set_resident_locked(db, digest, len, &st, err);
	if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = sql_err(err, db, "cannot commit a chunk");
	if (rc) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		/* Without its row the file would only take space; a file that
		 * was resident before stays (its row still points at it). */
		if (moved && !present)
			unlink(final);
	}
	mfs_store_unlock(s);
	return rc;
}

/* Room for a new chunk first (evicting at the high watermark), unless it is
 * already resident: committing it again costs nothing. */
static int reserve_room(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN], uint64_t len,
			struct mfs_err *err)
{
	return mfs_store_chunk_resident(s, digest) ? 0 : mfs_evict_reserve(s, len, err);
}

/* commit_chunk, evicting and trying again when another process took the
 * room reserved before. */
static int commit_retrying(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			   const void *data, const char *tmp, const char *final, uint64_t len,
			   const char *stage_key, int64_t stage_idx, struct mfs_err *err)
{
	int rc = 0;
	for (int attempt = 0; attempt < 4; attempt++) {
		rc = commit_chunk(s, digest, data, tmp, final, len, stage_key, stage_idx, err);
		if (rc != -EAGAIN)
			break;
		if ((rc = mfs_evict_reserve(s, len, err)))
			break;
		rc = MFS_ERR(err, -ENOSPC, MFS_ERR_QUOTA,
			     "cache quota is full: other processes keep filling it");
	}
	return rc;
}

int mfs_store_chunk_put(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			const void *data, size_t len, struct mfs_err *err)
{
	char tmp[PATH_MAX], final[PATH_MAX], hex[MFS_SHA256_HEX];
	int rc;

	mfs_hex_encode(digest, MFS_SHA256_LEN, hex);
	if ((rc = reserve_room(s, digest, len, err)))
		return rc;
	rc = write_tmp(s, hex, data, len, tmp, err);
	if (rc == -ENOSPC || rc == -EDQUOT) {
		/* The disk, not the quota, is full: make room among the chunks
		 * nobody is using and try once more. */
		if (!mfs_evict_make_room(s, len, NULL))
			rc = write_tmp(s, hex, data, len, tmp, err);
		if (rc == -ENOSPC || rc == -EDQUOT) {
			rc = MFS_ERR(err, -ENOSPC, MFS_ERR_IO,
				     "the filesystem of the store '%s' is full: cannot write chunk"
				     " %.16s (%zu bytes); free space there or lower the quota",
				     s->dir, hex, len);
			mfs_log_warning("%s", err ? err->msg : "the store's filesystem is full");
		}
	}
	if (rc)
		return rc;
	mfs_store_chunk_path(s, digest, final, sizeof(final));
	rc = commit_retrying(s, digest, data, tmp, final, len, NULL, 0, err);
	if (rc)
		unlink(tmp);
	return rc;
}

int mfs_store_chunk_adopt(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  const char *path, uint64_t len, const char *stage_key, uint32_t stage_idx,
			  struct mfs_err *err)
{
	char final[PATH_MAX];
	struct stat sb;
	if (lstat(path, &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != len)
		return MFS_ERR(err, -EIO, MFS_ERR_IO, "'%s' is not a chunk of %llu bytes", path,
			       (unsigned long long)len);
	/* A staged range was counted when it was reserved. */
	int rc = stage_key ? 0 : reserve_room(s, digest, len, err);
	if (rc)
		return rc;
	mfs_store_chunk_path(s, digest, final, sizeof(final));
	return commit_retrying(s, digest, NULL, path, final, len, stage_key, stage_idx, err);
}

static bool owner_alive(int64_t pid, int64_t starttime)
{
	uint64_t st;
	int rc = mfs_pin_proc_starttime((pid_t)pid, &st);
	return rc == -ESRCH ? false : rc ? true : st == (uint64_t)starttime;
}

uint64_t mfs_store_stage_drop_orphans(struct mfs_store *s, const char *key)
{
	struct orphan {
		char key[80];
		int64_t idx, bytes;
	} v[64];
	size_t n = 0;
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT key, idx, bytes, pid, starttime FROM staged"
				   " WHERE key IS NOT ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		while (n < 64 && sqlite3_step(st) == SQLITE_ROW) {
			const char *k = (const char *)sqlite3_column_text(st, 0);
			if (!k || strlen(k) >= sizeof(v[n].key) || strchr(k, '/') || k[0] == '.' ||
			    owner_alive(sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4)))
				continue;
			snprintf(v[n].key, sizeof(v[n].key), "%s", k);
			v[n].idx = sqlite3_column_int64(st, 1);
			v[n].bytes = sqlite3_column_int64(st, 2);
			n++;
		}
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
	uint64_t freed = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		/* The range, and its file half written when its process died
		 * (core/hub_stage.c writes "<index>.tmp", then renames). */
		if (!subpath(s, path, sizeof(path), "partial/%s/%08lld", v[i].key, (long long)v[i].idx))
			unlink(path);
		if (!subpath(s, path, sizeof(path), "partial/%s/%08lld.tmp", v[i].key,
			     (long long)v[i].idx))
			unlink(path);
		db = mfs_store_lock(s);
		unstage_locked(db, v[i].key, v[i].idx);
		mfs_store_unlock(s);
		freed += (uint64_t)v[i].bytes;
	}
	if (n)
		mfs_log_notice("dropped %zu staged ranges of downloads that were stopped, to make room",
			       n);
	return freed;
}

int mfs_store_stage_reserve(struct mfs_store *s, const char *key, uint32_t idx, uint64_t len,
			    struct mfs_err *err)
{
	uint64_t me_start = 0;
	mfs_pin_proc_starttime(getpid(), &me_start);
	for (int attempt = 0; attempt < 4; attempt++) {
		sqlite3_stmt *st;
		sqlite3 *db = mfs_store_lock(s);
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			int rc = sql_err(err, db, "cannot reserve room for a download");
			mfs_store_unlock(s);
			return rc;
		}
		int64_t quota = meta_get(db, "quota_bytes");
		bool fits = quota <= 0 || meta_get(db, "resident_bytes") + staged_locked(db) +
							  (int64_t)len <= quota;
		int rc = 0;
		/* Counted once: a resumed range may hold its row already. */
		if (fits && sqlite3_prepare_v2(db, "INSERT INTO staged(key, idx, bytes, pid, starttime)"
						   " VALUES(?, ?, ?, ?, ?) ON CONFLICT(key, idx) DO UPDATE"
						   " SET pid = excluded.pid, starttime = excluded.starttime",
					       -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, idx);
			sqlite3_bind_int64(st, 3, (int64_t)len);
			sqlite3_bind_int64(st, 4, getpid());
			sqlite3_bind_int64(st, 5, (int64_t)me_start);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = sql_err(err, db, "cannot reserve room for a download");
			sqlite3_finalize(st);
		} else if (fits) {
			rc = sql_err(err, db, "cannot reserve room for a download");
		}
		if (fits && !rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			rc = sql_err(err, db, "cannot reserve room for a download");
		if (!fits || rc)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		mfs_store_unlock(s);
		if (fits || rc)
			return rc;
		/* No room: stopped downloads first, then the chunks nobody uses. */
		if (!mfs_store_stage_drop_orphans(s, key) && (rc = mfs_evict_reserve(s, len, err)))
			return rc;
	}
	return MFS_ERR(err, -ENOSPC, MFS_ERR_QUOTA,
		       "cache quota is full: other processes keep filling it");
}

void mfs_store_stage_release(struct mfs_store *s, const char *key)
{
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "DELETE FROM staged WHERE key = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	mfs_store_unlock(s);
}

static const char sql_is_resident[] = "SELECT 1 FROM resident WHERE digest = ?";

bool mfs_store_chunk_resident(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN])
{
	bool yes = false;
	mfs_store_lock(s);
	sqlite3_stmt *st = cached_stmt(s, sql_is_resident);
	if (st) {
		sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_reset(st);
	}
	mfs_store_unlock(s);
	return yes;
}

int mfs_store_record_eviction_locked(struct sqlite3 *db, const uint8_t digest[MFS_SHA256_LEN],
				     uint64_t bytes, int64_t at, const char *reason)
{
	static const char *const sql[] = {
		"INSERT INTO evictions(artifact, path, digest, bytes, at, reason)"
		" SELECT (SELECT a.canonical_ref FROM artifacts a JOIN artifact_files af"
		"  ON af.artifact_id = a.id WHERE af.file_id = f.id ORDER BY a.added_at, a.id LIMIT 1),"
		" f.path, ?1, ?2, ?3, ?4 FROM files f"
		" WHERE f.id IN (SELECT file_id FROM chunks WHERE digest = ?1)",
		"INSERT INTO evictions(artifact, path, digest, bytes, at, reason)"
		" VALUES(NULL, NULL, ?1, ?2, ?3, ?4)",
	};
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
			return -1;
		sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)bytes);
		sqlite3_bind_int64(st, 3, at);
		sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
		if (sqlite3_changes(db) > 0)
			return 0;
	}
	return 0;
}

void mfs_store_count_locked(struct sqlite3 *db, const char *name, int64_t delta)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "INSERT INTO counters(name, value) VALUES(?1, ?2)"
				   " ON CONFLICT(name) DO UPDATE SET value = value + ?2",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, delta);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

void mfs_store_count(struct mfs_store *s, const char *name, int64_t delta)
{
	sqlite3 *db = mfs_store_lock(s);
	mfs_store_count_locked(db, name, delta);
	mfs_store_unlock(s);
}

/* Forgets a resident chunk whose file turned out bad or gone: the row read
 * with stamp (row_ino, row_ctime; -1: none) is deleted only if it still has
 * that stamp, and the file moves into quarantine/ only if it is still the
 * one that was hashed (file_ino; -1: it was missing). Both under the write
 * lock, so of two readers that found the same bad file only one drops it,
 * and a good copy committed meanwhile (a commit renames inside its own
 * write transaction) is neither forgotten nor quarantined. The evidence,
 * the counter and the log line come with the drop that happened. */
static void drop_bad_chunk(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			   uint64_t bytes, const char *reason, int64_t row_ino, int64_t row_ctime,
			   int64_t file_ino)
{
	static _Atomic unsigned seq;
	char from[PATH_MAX], to[PATH_MAX], hex[MFS_SHA256_HEX];
	mfs_hex_encode(digest, MFS_SHA256_LEN, hex);
	mfs_store_chunk_path(s, digest, from, sizeof(from));
	bool dropped = false;
	sqlite3_stmt *st;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		mfs_store_unlock(s);
		return; /* the next open finds it again */
	}
	if (sqlite3_prepare_v2(db, "DELETE FROM resident WHERE digest = ? AND ino IS ?"
				   " AND ctime_ns IS ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
		if (row_ino >= 0)
			sqlite3_bind_int64(st, 2, row_ino);
		if (row_ctime >= 0)
			sqlite3_bind_int64(st, 3, row_ctime);
		dropped = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) > 0;
		sqlite3_finalize(st);
	}
	struct stat sb;
	if (dropped && file_ino >= 0 && lstat(from, &sb) == 0 && (int64_t)sb.st_ino == file_ino &&
	    !subpath(s, to, sizeof(to), "quarantine/%s.%ld.%d.%u", hex, (long)time(NULL),
		     (int)getpid(), atomic_fetch_add(&seq, 1)))
		rename(from, to);
	if (dropped) {
		mfs_store_record_eviction_locked(db, digest, bytes, (int64_t)time(NULL), reason);
		mfs_store_count_locked(db, "corrupt_chunks", 1);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	mfs_store_unlock(s);
	if (dropped)
		prune_quarantine(s);
	if (dropped)
		mfs_log_warning("cached chunk %.16s was %s: quarantined, it will be fetched again",
				hex, !strcmp(reason, "corrupt") ? "corrupt" : "missing");
}

static int hash_fd(int fd, uint64_t len, uint8_t out[MFS_SHA256_LEN])
{
	struct mfs_sha256 h;
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	int rc = buf ? mfs_sha256_init(&h) : -ENOMEM;
	if (rc) {
		free(buf);
		return rc;
	}
	uint64_t off = 0;
	while (off < len) {
		size_t want = len - off < cap ? (size_t)(len - off) : cap;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EBADMSG; /* short file: does not match */
			break;
		}
		mfs_sha256_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (rc) {
		mfs_sha256_release(&h);
		return rc;
	}
	mfs_sha256_final(&h, out);
	return 0;
}

static void fill_stamp(struct mfs_chunk_stamp *stamp, const struct stat *st)
{
	if (stamp)
		*stamp = (struct mfs_chunk_stamp){ .ino = (uint64_t)st->st_ino,
						   .size = (uint64_t)st->st_size,
						   .ctime_ns = stat_ctime_ns(st) };
}

/*
 * A read lease on a chunk file's descriptor closes the window the ctime
 * leaves open: the kernel updates the ctime when a write begins, before it
 * copies the bytes, so a stamp taken while a write is under way vouches for
 * bytes that are still changing. A read lease cannot be taken while any
 * process holds the file open for writing (EAGAIN), and any later open for
 * writing breaks it (F_GETLEASE then answers F_UNLCK), so "leased before and
 * still leased after" means no writer could touch the bytes in between.
 * A lease needs the file's owner or CAP_LEASE, and a filesystem that has
 * leases: where it cannot be had (a group member reading a shared store),
 * the stamp checks alone apply, as before. A broken lease would signal the
 * process (SIGIO, fatal by default): the store ignores SIGIO unless the
 * program set its own handler.
 */
static void ignore_sigio(void)
{
	struct sigaction sa;
	if (sigaction(SIGIO, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGIO, &sa, NULL);
	}
}

static int take_read_lease(int fd, bool *leased)
{
	/* A broken lease signals its holder, SIGIO by default, whose default
	 * action ends the process; the break is read with F_GETLEASE instead. */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, ignore_sigio);
	*leased = fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
	return *leased || errno != EAGAIN ? 0 : -EAGAIN;
}

static bool lease_held(int fd, const struct mfs_chunk_stamp *stamp)
{
	return !stamp->leased || fcntl(fd, F_GETLEASE) == F_RDLCK;
}

bool mfs_store_chunk_unchanged(int fd, const struct mfs_chunk_stamp *stamp)
{
	struct stat st;
	return lease_held(fd, stamp) && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == stamp->ino &&
	       (uint64_t)st.st_size == stamp->size && stat_ctime_ns(&st) == stamp->ctime_ns;
}

static int chunk_open(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN], uint64_t len,
		      bool force, int *fdp, struct mfs_chunk_stamp *stamp, struct mfs_err *err)
{
	static const char sql[] = "SELECT size, ino, ctime_ns FROM resident WHERE digest = ?";
	int64_t ino = -1, ctime_ns = -1, size = -1;
	mfs_store_lock(s);
	sqlite3_stmt *st = cached_stmt(s, sql);
	if (st) {
		sqlite3_bind_blob(st, 1, digest, MFS_SHA256_LEN, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			size = sqlite3_column_int64(st, 0);
			ino = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
			ctime_ns = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1
									    : sqlite3_column_int64(st, 2);
		}
		sqlite3_reset(st);
	}
	mfs_store_unlock(s);
	if (size < 0)
		return MFS_ERR(err, -ENOENT, MFS_ERR_NOT_FOUND, "chunk not resident");

	char path[PATH_MAX];
	mfs_store_chunk_path(s, digest, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT) {
			drop_bad_chunk(s, digest, (uint64_t)size, "missing", ino, ctime_ns, -1);
			return MFS_ERR(err, -EBADMSG, MFS_ERR_HASH, "cached chunk file '%s' is missing",
				       path);
		}
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot open '%s': %s", path, strerror(e));
	}
	struct stat stb;
	if (fstat(fd, &stb)) {
		int e = errno;
		close(fd);
		return MFS_ERR(err, -e, MFS_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
	}
	bool leased;
	if (take_read_lease(fd, &leased)) {
		/* Open for writing somewhere: whatever a hash says now may be
		 * untrue a moment later. Set aside, fetched again. */
		close(fd);
		drop_bad_chunk(s, digest, (uint64_t)size, "corrupt", ino, ctime_ns,
			       (int64_t)stb.st_ino);
		return MFS_ERR(err, -EBADMSG, MFS_ERR_HASH,
			       "cached chunk '%s' is open for writing by another process", path);
	}
	if (!force && (uint64_t)stb.st_size == len && (int64_t)stb.st_ino == ino &&
	    stat_ctime_ns(&stb) == ctime_ns) {
		fill_stamp(stamp, &stb);
		if (stamp)
			stamp->leased = leased;
		*fdp = fd;
		return 0;
	}
	/* The file changed since it was verified (or the index was rebuilt):
	 * hash it again before a byte of it is used. */
	uint8_t d[MFS_SHA256_LEN];
	int rc = (uint64_t)stb.st_size == len ? hash_fd(fd, len, d) : -EBADMSG;
	if (rc && rc != -EBADMSG) {
		close(fd);
		return MFS_ERR(err, rc, MFS_ERR_IO, "cannot read '%s': %s", path, strerror(-rc));
	}
	if (rc || memcmp(d, digest, MFS_SHA256_LEN)) {
		close(fd);
		drop_bad_chunk(s, digest, (uint64_t)size, "corrupt", ino, ctime_ns,
			       (int64_t)stb.st_ino);
		return MFS_ERR(err, -EBADMSG, MFS_ERR_HASH, "cached chunk '%s' does not match its digest",
			       path);
	}
	/* The stamp taken before hashing vouches for the bytes hashed only if
	 * nothing began to write meanwhile: the lease still held (no writer
	 * opened the file) and the ctime unchanged (no writer that had it
	 * open already, where no lease could be had). */
	struct mfs_chunk_stamp before;
	fill_stamp(&before, &stb);
	before.leased = leased;
	if (!mfs_store_chunk_unchanged(fd, &before)) {
		close(fd);
		drop_bad_chunk(s, digest, (uint64_t)size, "corrupt", ino, ctime_ns,
			       (int64_t)stb.st_ino);
		return MFS_ERR(err, -EBADMSG, MFS_ERR_HASH,
			       "cached chunk '%s' was written while it was hashed", path);
	}
	set_resident(s, digest, len, &stb, NULL);
	if (stamp)
		*stamp = before;
	*fdp = fd;
	return 0;
}

int mfs_store_file_resident(struct mfs_store *s, int64_t file_id, uint64_t *bytes,
			    uint32_t *chunks)
{
	static const char sql[] = "SELECT count(r.digest), coalesce(sum(r.size), 0) FROM chunks c"
				  " JOIN resident r ON r.digest = c.digest WHERE c.file_id = ?";
	int rc = -EIO;
	mfs_store_lock(s);
	sqlite3_stmt *st = cached_stmt(s, sql);
	if (st) {
		sqlite3_bind_int64(st, 1, file_id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			if (chunks)
				*chunks = (uint32_t)sqlite3_column_int64(st, 0);
			if (bytes)
				*bytes = (uint64_t)sqlite3_column_int64(st, 1);
			rc = 0;
		}
		sqlite3_reset(st);
	}
	mfs_store_unlock(s);
	return rc;
}

static void flush_touches(struct mfs_store *s)
{
	sqlite3_stmt *st;
	if (!s->n_touched)
		return;
	if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK) {
		if (sqlite3_prepare_v2(s->db, "UPDATE resident SET last_read = ? WHERE digest = ?",
				       -1, &st, NULL) == SQLITE_OK) {
			for (unsigned i = 0; i < s->n_touched; i++) {
				sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
				sqlite3_bind_blob(st, 2, s->touched[i], MFS_SHA256_LEN, SQLITE_STATIC);
				sqlite3_step(st);
				sqlite3_reset(st);
			}
			sqlite3_finalize(st);
		}
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	}
	s->n_touched = 0;
	s->touch_flushed = time(NULL);
}

void mfs_store_chunk_touch(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN])
{
	pthread_mutex_lock(&s->lock);
	if (!s->n_touched || memcmp(s->touched[s->n_touched - 1], digest, MFS_SHA256_LEN))
		memcpy(s->touched[s->n_touched++], digest, MFS_SHA256_LEN);
	if (s->n_touched == TOUCH_BATCH || time(NULL) - s->touch_flushed >= 2)
		flush_touches(s);
	pthread_mutex_unlock(&s->lock);
}

int mfs_store_file_set_verified(struct mfs_store *s, int64_t file_id, struct mfs_err *err)
{
	sqlite3_stmt *st;
	int rc = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "UPDATE files SET verified = 1 WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK) {
		rc = sql_err(err, db, "cannot mark file verified");
	} else {
		sqlite3_bind_int64(st, 1, file_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sql_err(err, db, "cannot mark file verified");
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return rc;
}

int mfs_store_chunk_open(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			 uint64_t len, int *fd, struct mfs_chunk_stamp *stamp,
			 struct mfs_err *err)
{
	return chunk_open(s, digest, len, false, fd, stamp, err);
}

int mfs_store_chunk_check(struct mfs_store *s, const uint8_t digest[MFS_SHA256_LEN],
			  uint64_t len, struct mfs_err *err)
{
	int fd = -1;
	int rc = chunk_open(s, digest, len, true, &fd, NULL, err);
	if (!rc)
		close(fd);
	return rc;
}

int64_t mfs_store_file_id(struct mfs_store *s, const char *org, const char *name,
			  const char *commit, const char *path)
{
	sqlite3_stmt *st;
	int64_t id = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (org && name && commit && path &&
	    sqlite3_prepare_v2(db, "SELECT id FROM files WHERE org = ? AND name = ? AND commit_id = ?"
				   " AND path = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, org, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, commit, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return id;
}
