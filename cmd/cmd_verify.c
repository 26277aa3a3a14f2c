/*
 * cmd_verify.c - `modelfs verify`, `modelfs inspect` and `modelfs status`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "binding.h"
#include "cache.h"
#include "cmd.h"
#include "cmd_find.h"
#include "evict.h"
#include "gguf.h"
#include "inventory.h"
#include "pin.h"
#include "safetensors.h"
#include "select.h"
#include "store.h"
#include "text.h"

/* Ids of every file of an artifact. */
static size_t artifact_files(struct mfs_store *s, int64_t aid, int64_t *ids, size_t cap)
{
	sqlite3_stmt *st;
	size_t n = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT file_id FROM artifact_files WHERE artifact_id = ?"
				   " ORDER BY file_id", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, aid);
		while (n < cap && sqlite3_step(st) == SQLITE_ROW)
			ids[n++] = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	return n;
}

static size_t all_artifacts(struct mfs_store *s, int64_t **out)
{
	sqlite3_stmt *st;
	size_t n = 0, cap = 16;
	int64_t *ids = malloc(cap * sizeof(*ids));
	sqlite3 *db = mfs_store_lock(s);
	if (ids && sqlite3_prepare_v2(db, "SELECT id FROM artifacts ORDER BY id", -1, &st, NULL) ==
			   SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (n == cap) {
				int64_t *p = realloc(ids, (cap *= 2) * sizeof(*ids));
				if (!p)
					break;
				ids = p;
			}
			ids[n++] = sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
	}
	mfs_store_unlock(s);
	*out = ids;
	return n;
}

struct unbound_ctx {
	const char *canonical_ref;
	unsigned n;
};

static void report_unbound(void *ctx, const char *path, const char *why)
{
	struct unbound_ctx *u = ctx;
	fprintf(stderr, "modelfs: %s: '%s' does not match the signed manifest it was admitted "
		"on: %s\n", u->canonical_ref, path, why);
	u->n++;
}

/* A signed artifact must serve only what its signed manifest lists: every
 * file's claims are compared with the manifest kept in the store. The number
 * of files that differ, or of artifacts whose manifest could not be read. */
static unsigned check_signed(struct mfs_store *s, int64_t aid)
{
	struct mfs_inv_artifact a;
	struct mfs_err err = { 0 };
	if (mfs_inv_artifact_load(s, aid, &a, &err)) {
		mfs_cmd_fail(&err, "cannot load an artifact", NULL);
		return 1;
	}
	struct unbound_ctx u = { .canonical_ref = a.canonical_ref };
	int rc = mfs_binding_check(s, aid, report_unbound, &u, &err);
	if (rc < 0) {
		fprintf(stderr, "modelfs: %s: cannot check it against its signed manifest: %s\n",
			a.canonical_ref, err.msg);
		u.n++;
	}
	mfs_inv_artifact_release(&a);
	return u.n;
}

int mfs_cmd_verify(struct mfs_cmd *cmd, int argc, char **argv)
{
	int r = mfs_cmd_simple_opts(argc, argv, NULL,
			    "usage: modelfs verify [REF]\n\n"
			    "Hashes every resident chunk again (of REF, or of every installed artifact).\n"
			    "A chunk whose bytes no longer match is quarantined and fetched again from\n"
			    "its repository. Every file of a signed artifact is also compared with the\n"
			    "signed manifest it was admitted on (size, SHA-256, chunk digests); a file\n"
			    "that differs is reported and not repaired. Exits 1 if anything could not\n"
			    "be repaired or does not match its manifest.\n");
	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return mfs_cmd_usage("verify", "expected at most one REF");
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	int64_t *aids;
	size_t na;
	if (optind < argc) {
		if (mfs_cmd_find(cmd, argv[optind], &aids, &na))
			return 1;
	} else {
		na = all_artifacts(s, &aids);
	}
	struct mfs_cache *c;
	struct mfs_err err = { 0 };
	if (mfs_cache_new(s, NULL, &c, &err)) {
		free(aids);
		return mfs_cmd_fail(&err, "cannot start", NULL);
	}
	unsigned files = 0, chunks_bad = 0, failed = 0, unbound = 0;
	uint64_t checked = 0;
	for (size_t i = 0; i < na; i++) {
		unbound += check_signed(s, aids[i]);
		int64_t fids[1024];
		size_t nf = artifact_files(s, aids[i], fids, 1024);
		for (size_t k = 0; k < nf; k++) {
			struct mfs_file f;
			if (mfs_store_file_load(s, fids[k], &f, &err)) {
				mfs_cmd_fail(&err, "cannot load a file", NULL);
				failed++;
				continue;
			}
			unsigned bad = 0;
			uint64_t rb = 0;
			mfs_store_file_resident(s, f.id, &rb, NULL);
			int rc = mfs_cache_verify_file(c, &f, &bad, &err);
			files++;
			checked += rb;
			chunks_bad += bad;
			if (rc) {
				fprintf(stderr, "modelfs: %s/%s@%s/%s: %u bad chunk(s), repair failed: %s\n",
					f.org, f.name, f.commit, f.path, bad, err.msg);
				failed++;
			} else if (bad) {
				printf("repaired %s/%s@%s/%s: %u chunk(s) did not match and were fetched "
				       "again\n", f.org, f.name, f.commit, f.path, bad);
			}
			mfs_file_release(&f);
		}
	}
	mfs_cache_free(c);
	free(aids);
	printf("verified %u file(s), %.1f MiB resident, %u bad chunk(s), %u unrepaired, %u not as "
	       "signed\n", files, (double)checked / 1048576, chunks_bad, failed, unbound);
	return failed || unbound ? 1 : 0;
}

static json_t *inspect_local(const char *path, struct mfs_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		MFS_ERR(err, -errno, MFS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	enum mfs_format fmt = mfs_format_from_path(path);
	uint64_t size = (uint64_t)st.st_size, want = size < (1 << 20) ? size : (1 << 20), need = 0;
	uint8_t *buf = NULL;
	json_t *out = NULL;
	int rc = -EAGAIN;
	for (int round = 0; round < 8 && rc == -EAGAIN; round++) {
		uint8_t *nb = realloc(buf, want ? want : 1);
		if (!nb)
			break;
		buf = nb;
		ssize_t n = pread(fd, buf, want, 0);
		if (n < 0)
			break;
		if (fmt == MFS_FORMAT_SAFETENSORS) {
			struct mfs_safetensors_meta m = { 0 };
			rc = mfs_safetensors_parse(buf, (size_t)n, size, &need, &m, err);
			if (!rc)
				out = mfs_safetensors_meta_json(&m);
			mfs_safetensors_meta_release(&m);
		} else {
			struct mfs_gguf_meta m = { 0 };
			rc = mfs_gguf_parse(buf, (size_t)n, size, &need, &m, err);
			if (!rc)
				out = mfs_gguf_meta_json(&m);
			mfs_gguf_meta_release(&m);
		}
		if (rc == -EAGAIN)
			want = need;
	}
	free(buf);
	close(fd);
	if (out)
		json_object_set_new(out, "format", json_string(fmt == MFS_FORMAT_SAFETENSORS
									? "safetensors" : "gguf"));
	return out;
}

int mfs_cmd_inspect(struct mfs_cmd *cmd, int argc, char **argv)
{
	bool json = false;
	int r = mfs_cmd_simple_opts(argc, argv, &json,
			    "usage: modelfs inspect [--json] FILE-or-REF\n\n"
			    "Prints the compact metadata of a GGUF or safetensors file: a local file\n"
			    "(parsed and validated here) or an installed artifact.\n");
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return mfs_cmd_usage("inspect", "expected one FILE or REF");
	const char *what = argv[optind];
	struct mfs_err err = { 0 };
	json_t *meta = NULL;
	struct stat st;
	if (stat(what, &st) == 0 && S_ISREG(st.st_mode)) {
		meta = inspect_local(what, &err);
		if (!meta)
			return mfs_cmd_fail(&err, "cannot inspect", NULL);
	} else {
		int64_t *ids;
		size_t n;
		if (mfs_cmd_find(cmd, what, &ids, &n))
			return 1;
		struct mfs_inv_artifact a;
		int rc = mfs_inv_artifact_load(cmd->store, ids[0], &a, &err);
		free(ids);
		if (rc)
			return mfs_cmd_fail(&err, "cannot inspect", NULL);
		meta = json_loads(a.meta_json ? a.meta_json : "{}", 0, NULL);
		if (meta) {
			json_object_set_new(meta, "canonical_ref", json_string(a.canonical_ref));
			json_object_set_new(meta, "format", json_string(a.format));
			json_object_set_new(meta, "identity", json_string(a.identity));
		}
		mfs_inv_artifact_release(&a);
	}
	if (!meta)
		return mfs_cmd_fail(NULL, "cannot inspect: no metadata", NULL);
	/* The metadata is the file's author's text (general.name, __metadata__):
	 * as JSON, ASCII with \u escapes; as text, every key and value through
	 * mfs_text_escape, so no control sequence reaches the terminal. */
	if (json) {
		char *t = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
		puts(t ? t : "{}");
		free(t);
	} else {
		const char *k;
		json_t *v;
		json_object_foreach(meta, k, v) {
			char *t = json_is_string(v) ? NULL
						    : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
								    JSON_ENSURE_ASCII);
			char *ek = mfs_text_escape(k, 0);
			char *ev = t ? NULL : mfs_text_escape_n(json_string_value(v),
								json_string_length(v), 0);
			printf("%-22s %s\n", ek ? ek : "?", t ? t : ev ? ev : "?");
			free(ek);
			free(ev);
			free(t);
		}
	}
	json_decref(meta);
	return 0;
}

static int count_pin(void *ctx, const struct mfs_pin *p)
{
	json_array_append_new(ctx, json_pack("{s:I,s:i,s:I}", "artifact_id",
					     (json_int_t)p->artifact_id, "pid", (int)p->pid, "count",
					     (json_int_t)p->count));
	return 0;
}

static int list_mount(void *ctx, const struct mfs_pin_mount *m)
{
	json_array_append_new(ctx, json_pack("{s:s,s:i,s:I}", "mountpoint", m->mountpoint, "pid",
					     (int)m->pid, "started", (json_int_t)m->started));
	return 0;
}

int mfs_cmd_status(struct mfs_cmd *cmd, int argc, char **argv)
{
	bool json = false;
	int r = mfs_cmd_simple_opts(argc, argv, &json,
			    "usage: modelfs status [--json]\n\n"
			    "Shows the store: installed artifacts, cache usage, live mounts, open\n"
			    "pins and counters (fetched, verified, evicted, failures).\n");
	if (r >= 0)
		return r;
	struct mfs_store *s = mfs_cmd_store(cmd);
	if (!s)
		return 1;
	struct mfs_err err = { 0 };
	mfs_pin_init(s, &err);
	json_t *st = json_object(), *counters = json_object(), *pins = json_array(),
	       *mounts = json_array();
	sqlite3_stmt *q;
	int64_t artifacts = 0, usage = 0, chunks = 0;
	sqlite3 *db = mfs_store_lock(s);
	if (sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM artifacts),"
				   " (SELECT coalesce(sum(size), 0) FROM resident),"
				   " (SELECT count(*) FROM resident)", -1, &q, NULL) == SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW) {
			artifacts = sqlite3_column_int64(q, 0);
			usage = sqlite3_column_int64(q, 1);
			chunks = sqlite3_column_int64(q, 2);
		}
		sqlite3_finalize(q);
	}
	if (sqlite3_prepare_v2(db, "SELECT name, value FROM counters ORDER BY name", -1, &q, NULL) ==
	    SQLITE_OK) {
		while (sqlite3_step(q) == SQLITE_ROW)
			json_object_set_new(counters, (const char *)sqlite3_column_text(q, 0),
					    json_integer(sqlite3_column_int64(q, 1)));
		sqlite3_finalize(q);
	}
	mfs_store_unlock(s);
	mfs_pin_list(s, count_pin, pins, NULL);
	mfs_pin_mount_list(s, list_mount, mounts, NULL);
	json_object_set_new(st, "store", json_string(mfs_store_dir(s)));
	json_object_set_new(st, "artifacts", json_integer(artifacts));
	json_object_set_new(st, "usage_bytes", json_integer(usage));
	json_object_set_new(st, "resident_chunks", json_integer(chunks));
	struct mfs_quota quota = { 0 };
	mfs_evict_get_quota(s, &quota);
	json_object_set_new(st, "quota", json_pack("{s:I,s:i,s:i,s:I,s:I,s:I}", "bytes",
						   (json_int_t)quota.bytes, "high_pct", (int)quota.high_pct,
						   "low_pct", (int)quota.low_pct, "high", (json_int_t)quota.high,
						   "low", (json_int_t)quota.low, "active",
						   (json_int_t)quota.active));
	json_object_set_new(st, "mounts", mounts);
	json_object_set_new(st, "open_pins", pins);
	json_object_set_new(st, "counters", counters);
	if (json) {
		char *t = json_dumps(st, JSON_INDENT(2));
		puts(t);
		free(t);
	} else {
		printf("store:      %s\nartifacts:  %lld\nusage:      %.1f MiB in %lld chunks\n",
		       mfs_store_dir(s), (long long)artifacts, (double)usage / 1048576,
		       (long long)chunks);
		if (quota.bytes)
			printf("quota:      %.1f MiB (evict from %u%% = %.1f MiB down to %u%% = %.1f MiB);"
			       " %.1f MiB active\n", (double)quota.bytes / 1048576, quota.high_pct,
			       (double)quota.high / 1048576, quota.low_pct, (double)quota.low / 1048576,
			       (double)quota.active / 1048576);
		else
			printf("quota:      none ('modelfs gc --quota SIZE' or mount -o quota=SIZE)\n");
		size_t i;
		json_t *v;
		json_array_foreach(mounts, i, v)
			printf("mount:      %s (pid %lld)\n",
			       json_string_value(json_object_get(v, "mountpoint")),
			       (long long)json_integer_value(json_object_get(v, "pid")));
		printf("open pins:  %zu\n", json_array_size(pins));
		const char *k;
		json_object_foreach(counters, k, v)
			printf("%-20s %lld\n", k, (long long)json_integer_value(v));
	}
	json_decref(st);
	return 0;
}
